# pvmsim (src/sim) tests: the simulator in-process and as a program (test_sim_process).
if(TARGET pvm_sim AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_sim.c)
  pvm_add_unit_test(test_sim SOURCES unit/test_sim.c
                    LIBS pvm_sim pvm_testutil PkgConfig::LIBCURL PkgConfig::LIBXML2 TIMEOUT 600)
  add_dependencies(test_sim pvmsim)
endif()
if(TARGET pvm_sim AND TARGET pvm_client AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_sim_storage.c)
  pvm_add_unit_test(test_sim_storage SOURCES unit/test_sim_storage.c
                    LIBS pvm_sim pvm_client pvm_testutil PkgConfig::LIBCURL PkgConfig::LIBXML2
                         PkgConfig::LIBCRYPTO TIMEOUT 600)
endif()
