# src/common tests: errors, logging, helpers.
pvm_add_unit_test(test_common SOURCES unit/test_common.c LIBS pvm_common pvm_testutil)
