# Functional test of the image cache and config-drive endpoints (issue 7, Images): real
# pvmsim + powervmd through scripts/stack, localdisk and ssp (two daemons on one pool).
# Label "func":  ctest --test-dir BUILD -L func -R func_images
if(TARGET powervmd AND TARGET pvmsim)
  add_test(NAME func_images
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/func/images.py)
  set_tests_properties(func_images PROPERTIES
    ENVIRONMENT "PVM_BUILD_DIR=${CMAKE_BINARY_DIR};PVM_TEST_SCALE=${PVM_TEST_SCALE};PVM_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
    TIMEOUT 600
    LABELS func
    RUN_SERIAL TRUE)
endif()
