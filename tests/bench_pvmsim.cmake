# bench_pvmsim: pvmsim's GET rate (scripts/bench pvmsim). Not a ctest test.
if(TARGET pvmsim AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench_pvmsim.c)
  add_executable(bench_pvmsim bench/bench_pvmsim.c)
  target_link_libraries(bench_pvmsim PRIVATE PkgConfig::LIBCURL Threads::Threads)
  add_dependencies(bench_pvmsim pvmsim)
endif()
