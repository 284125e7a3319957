# Operation types (workers/op_*.c): their pure parts (power-state mapping, validation).
pvm_add_unit_test(test_ops_power SOURCES unit/test_ops_power.c LIBS pvm_workers pvm_testutil)
pvm_add_unit_test(test_names SOURCES unit/test_names.c LIBS pvm_workers)
pvm_add_unit_test(test_scrub SOURCES unit/test_scrub.c LIBS pvm_workers pvm_testutil)
pvm_add_unit_test(test_image SOURCES unit/test_image.c LIBS pvm_workers pvm_testutil)
pvm_add_unit_test(test_ops_spawn SOURCES unit/test_ops_spawn.c LIBS pvm_workers pvm_testutil)
