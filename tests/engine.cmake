# Step engine and worker pool (workers/) tests.
pvm_add_unit_test(test_engine SOURCES unit/test_engine.c LIBS pvm_workers pvm_testutil)
