# Functional test of the network interface operations (issue 7): real pvmsim + powervmd
# through scripts/stack, in HMC and NovaLink mode (tests/func/ops_vifs.py).
# Label "func":  ctest --test-dir BUILD -L func -R func_ops_vifs
if(TARGET powervmd AND TARGET pvmsim)
  add_test(NAME func_ops_vifs COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/func/ops_vifs.py)
  set_tests_properties(func_ops_vifs PROPERTIES
    ENVIRONMENT "PVM_BUILD_DIR=${CMAKE_BINARY_DIR};PVM_TEST_SCALE=${PVM_TEST_SCALE};PVM_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
    TIMEOUT 600
    LABELS func
    RUN_SERIAL TRUE)
endif()
