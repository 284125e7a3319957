/* ops.c: the table of operation types this build runs. */
#include "ops.h"

static const struct pvm_op_type *const all_types[] = {
        &pvm_op_test_steps, &pvm_op_test_jobs, &pvm_op_power_off,
        &pvm_op_power_on,   &pvm_op_reboot,    &pvm_op_resume_state_on_host_boot,
        &pvm_op_spawn,      &pvm_op_destroy,
};

int pvm_ops_register_all(struct pvm_engine *e)
{
	for (size_t i = 0; i < sizeof(all_types) / sizeof(all_types[0]); i++) {
		int rc = pvm_engine_register(e, all_types[i]);
		if (rc)
			return rc;
	}
	return 0;
}
