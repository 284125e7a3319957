# `scripts/bench engine` (tests/bench/engine.sh; docs/performance.md): build/bin/bench_engine,
# the engine, submission-rate and CPU benchmark run against a stack (scripts/stack).
if(TARGET pvm_client AND TARGET pvm_queue)
  add_executable(bench_engine bench/bench_engine.c)
  target_link_libraries(bench_engine PRIVATE pvm_queue pvm_client pvm_common
    PkgConfig::JANSSON Threads::Threads)
  foreach(dep powervmd pvmsim)
    if(TARGET ${dep})
      add_dependencies(bench_engine ${dep})
    endif()
  endforeach()
endif()
