# Functional tests of the driver operations (issue 7): real pvmsim + powervmd through
# scripts/stack, in HMC and NovaLink mode (tests/func/ops_*.py, helpers in stacklib.py).
# Label "func":  ctest --test-dir BUILD -L func -R func_ops
if(TARGET powervmd AND TARGET pvmsim)
  set(PVM_FUNC_OPS_TESTS
    ops_power:900
    ops_spawn:900)
  foreach(entry ${PVM_FUNC_OPS_TESTS})
    string(REPLACE ":" ";" parts ${entry})
    list(GET parts 0 name)
    list(GET parts 1 timeout)
    add_test(NAME func_${name}
      COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/func/${name}.py)
    set_tests_properties(func_${name} PROPERTIES
      ENVIRONMENT "PVM_BUILD_DIR=${CMAKE_BINARY_DIR};PVM_TEST_SCALE=${PVM_TEST_SCALE};PVM_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
      TIMEOUT ${timeout}
      LABELS func
      RUN_SERIAL TRUE)
  endforeach()
endif()
