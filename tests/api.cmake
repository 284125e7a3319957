# Local API (src/api/) tests, with the real step engine (workers/ is configured before
# tests/), and the metrics registry and event log they rely on.
if(TARGET pvm_api AND TARGET pvm_workers AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_api.c)
  pvm_add_unit_test(test_api SOURCES unit/test_api.c
    LIBS pvm_api pvm_workers pvm_queue pvm_testutil Threads::Threads TIMEOUT 600)
endif()
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_metrics.c)
  pvm_add_unit_test(test_metrics SOURCES unit/test_metrics.c
    LIBS pvm_common pvm_testutil Threads::Threads)
endif()
