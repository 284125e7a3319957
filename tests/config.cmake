# Configuration (src/config/) and powervmd command-line tests.
pvm_add_unit_test(test_config SOURCES unit/test_config.c LIBS pvm_config pvm_testutil)

# Functional: powervmd --check-config on the sample and on a bad file, and powervmd refusing
# to start with a bad --config.
add_test(NAME func_check_config COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/func/check_config.sh)
set_tests_properties(func_check_config PROPERTIES ENVIRONMENT "${PVM_TEST_ENV}" TIMEOUT 120)
