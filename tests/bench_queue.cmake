# The journal benchmark (scripts/bench queue; docs/performance.md): build/bin/bench_queue and
# the LD_PRELOAD shim that counts real fdatasync/fsync/msync calls (build/lib/pvm_fsync_count.so).
# bench_queue re-executes itself with the shim preloaded; PVM_FSYNC_SHIM overrides its path.
add_library(pvm_fsync_count MODULE bench/fsync_count.c)
set_target_properties(pvm_fsync_count PROPERTIES PREFIX "" OUTPUT_NAME pvm_fsync_count)
target_link_libraries(pvm_fsync_count PRIVATE ${CMAKE_DL_LIBS})

add_executable(bench_queue bench/bench_queue.c)
target_link_libraries(bench_queue PRIVATE pvm_queue pvm_common PkgConfig::JANSSON
  Threads::Threads ${CMAKE_DL_LIBS} m)
target_compile_definitions(bench_queue PRIVATE
  PVM_FSYNC_SHIM="$<TARGET_FILE:pvm_fsync_count>")
add_dependencies(bench_queue pvm_fsync_count)
