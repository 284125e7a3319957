# Functional tests of the daemon (issue 5, Proofs): real pvmsim + powervmd processes started
# through scripts/stack, driven by standard-library Python over the Unix socket
# (tests/func/daemon_*.py, helpers in tests/func/stacklib.py). Label "func":
#   ctest --test-dir BUILD -L func
# PVM_TEST_SCALE stretches every deadline; PVM_TEST_SEED replays a random run.
if(TARGET powervmd AND TARGET pvmsim)
  set(PVM_FUNC_DAEMON_TESTS
    daemon_crash:900
    daemon_hmc_restart:600
    daemon_faults:600
    daemon_bad_input:600
    daemon_lifecycle:300
    daemon_host:300)
  foreach(entry ${PVM_FUNC_DAEMON_TESTS})
    string(REPLACE ":" ";" parts ${entry})
    list(GET parts 0 name)
    list(GET parts 1 timeout)
    add_test(NAME func_${name}
      COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/func/${name}.py)
    set_tests_properties(func_${name} PROPERTIES
      ENVIRONMENT "PVM_BUILD_DIR=${CMAKE_BINARY_DIR};PVM_TEST_SCALE=${PVM_TEST_SCALE};PVM_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
      TIMEOUT ${timeout}
      LABELS func
      # Each test starts its own stack in its own directory; they may run in parallel,
      # but on 2 cores the timing-sensitive ones are better alone.
      RUN_SERIAL TRUE)
  endforeach()
endif()

# The host sampler's pure part (CPU statistics from a captured pcm sample).
if(TARGET powervmd)
  pvm_add_unit_test(test_hostinfo SOURCES unit/test_hostinfo.c
                    ${CMAKE_SOURCE_DIR}/src/daemon/hostinfo.c ${CMAKE_SOURCE_DIR}/src/daemon/cache.c
                    LIBS pvm_workers pvm_client pvm_common pvm_testutil)
  target_include_directories(test_hostinfo PRIVATE ${CMAKE_SOURCE_DIR}/src/daemon)
endif()
