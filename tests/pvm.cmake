# PowerVM client (src/pvm/) tests: parsers and builders against the captured responses,
# the transport and session against an in-test HTTP server, round trips against pvmsim.
if(TARGET pvm_client)
  pvm_add_unit_test(test_pvm_views SOURCES unit/test_pvm_views.c
                    LIBS pvm_client pvm_testutil)
endif()
if(TARGET pvm_client AND TARGET pvmsim)
  pvm_add_unit_test(test_pvm_client SOURCES unit/test_pvm_client.c
                    LIBS pvm_client pvm_testutil PkgConfig::LIBCURL TIMEOUT 600)
  add_dependencies(test_pvm_client pvmsim)
endif()

# libFuzzer targets (clang, -DPVM_FUZZ=ON): one per parser (and one for the builders that
# edit what the server sent), each run for
# PVM_FUZZ_SECONDS by ctest, seeded with the captured responses.
if(PVM_FUZZ AND TARGET pvm_client)
  set(PVM_FUZZ_SECONDS 10 CACHE STRING "Seconds each fuzz target runs under ctest")
  set(PVM_FUZZ_NAMES lpar managedsystem vios volumegroup ssp tier logicalunit cna vswitch
      event file job logon httperror edit pcm)
  list(LENGTH PVM_FUZZ_NAMES _n)
  math(EXPR _last "${_n} - 1")
  foreach(i RANGE ${_last})
    list(GET PVM_FUZZ_NAMES ${i} name)
    add_executable(fuzz_pvm_${name} fuzz/fuzz_pvm.c)
    target_compile_definitions(fuzz_pvm_${name} PRIVATE FUZZ_KIND=${i})
    target_compile_options(fuzz_pvm_${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(fuzz_pvm_${name} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(fuzz_pvm_${name} PRIVATE pvm_client)
    file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz-corpus/${name})
    add_test(NAME fuzz_pvm_${name}
             COMMAND fuzz_pvm_${name} -max_total_time=${PVM_FUZZ_SECONDS} -timeout=10
                     -rss_limit_mb=2048 -print_final_stats=1
                     ${CMAKE_BINARY_DIR}/fuzz-corpus/${name}
                     ${CMAKE_SOURCE_DIR}/tests/fixtures/powervm)
    set_tests_properties(fuzz_pvm_${name} PROPERTIES LABELS fuzz
                         TIMEOUT 900)
  endforeach()
endif()
