# The nova compute driver shim (src/nova/powervmd): its own unit tests and nova's generic
# driver test case against a real powervmd + pvmsim, with Debian's python3 and stestr
# (tests/nova/run_stestr.sh). Label "nova":  ctest --test-dir BUILD -L nova
if(TARGET powervmd AND TARGET pvmsim)
  add_test(NAME nova_shim
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/nova/run_stestr.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(nova_shim PROPERTIES
    # Every operation the shim relies on is in this daemon: a "PENDING DAEMON" skip would
    # hide a regression, so it fails instead.
    ENVIRONMENT "PVM_BUILD_DIR=${CMAKE_BINARY_DIR};PVM_TEST_SCALE=${PVM_TEST_SCALE};PVM_SOURCE_DIR=${CMAKE_SOURCE_DIR};PVM_SHIM_REQUIRE_ALL=1"
    TIMEOUT 900
    LABELS "nova;func"
    RUN_SERIAL TRUE)
endif()
