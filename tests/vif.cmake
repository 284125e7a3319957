# Network interfaces (workers/vif.c, op_interfaces.c): MAC normalisation and validation.
pvm_add_unit_test(test_vif SOURCES unit/test_vif.c LIBS pvm_workers pvm_testutil)
