# Functional test of the start-up scrub (issue 7; workers/scrub.c): real pvmsim + powervmd
# through scripts/stack (--scrub), orphans and look-alikes seeded over pvmsim's REST API,
# in HMC mode (two managed systems) and NovaLink mode (tests/func/scrub.py).
# Label "func":  ctest --test-dir BUILD -L func -R func_scrub
if(TARGET powervmd AND TARGET pvmsim)
  add_test(NAME func_scrub
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/func/scrub.py)
  set_tests_properties(func_scrub PROPERTIES
    ENVIRONMENT "PVM_BUILD_DIR=${CMAKE_BINARY_DIR};PVM_TEST_SCALE=${PVM_TEST_SCALE};PVM_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
    TIMEOUT 300
    LABELS func
    RUN_SERIAL TRUE)
endif()
