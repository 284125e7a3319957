# Journal (queue/) tests.
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_queue.c)
  # A clean child process: the crash test's submitter, and a read-only reader next to a writer.
  add_executable(queue_crash_child unit/queue_crash_child.c)
  target_link_libraries(queue_crash_child PRIVATE pvm_queue pvm_common Threads::Threads)
  # Tests that damage records open the environment with LMDB directly.
  pvm_add_unit_test(test_queue SOURCES unit/test_queue.c
    LIBS pvm_queue pvm_testutil PkgConfig::LMDB Threads::Threads TIMEOUT 900)
  add_dependencies(test_queue queue_crash_child)
endif()
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_queue_crash.c)
  pvm_add_unit_test(test_queue_crash SOURCES unit/test_queue_crash.c
    LIBS pvm_queue pvm_testutil PkgConfig::LMDB Threads::Threads TIMEOUT 900 LABELS slow)
  add_dependencies(test_queue_crash queue_crash_child)
endif()
