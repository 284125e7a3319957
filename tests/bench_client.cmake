# `scripts/bench client`: typed parse of the largest captured feeds against python3-lxml,
# and GET + parse of a 500-partition feed served by pvmsim (tests/bench/bench_client.c).
if(TARGET pvm_client)
  add_executable(bench_client bench/bench_client.c)
  target_compile_definitions(bench_client PRIVATE SOURCE_DIR="${CMAKE_SOURCE_DIR}"
                             BINARY_DIR="${CMAKE_BINARY_DIR}")
  target_link_libraries(bench_client PRIVATE pvm_client PkgConfig::LIBCURL)
  if(TARGET pvmsim)
    add_dependencies(bench_client pvmsim)
  endif()
endif()
