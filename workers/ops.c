/* ops.c: the table of operation types this build runs. */
#include "ops.h"

#include "pvm/metrics.h"

static const struct pvm_op_type *const all_types[] = {
        &pvm_op_test_steps,
        &pvm_op_test_jobs,
        &pvm_op_power_off,
        &pvm_op_power_on,
        &pvm_op_reboot,
        &pvm_op_resume_state_on_host_boot,
        &pvm_op_spawn,
        &pvm_op_destroy,
        &pvm_op_attach_interface,
        &pvm_op_detach_interface,
        &pvm_op_plug_vifs,
        &pvm_op_unplug_vifs,
        &pvm_op_test_vifs,
        &pvm_op_cache_image,
        &pvm_op_uncache_image,
};

int pvm_ops_register_all(struct pvm_engine *e)
{
	struct pvm_metrics *m = pvm_engine_metrics(e);
	if (m) {
		pvm_metrics_describe(m, "powervmd_image_stale_markers_removed_total",
		                     PVM_METRIC_COUNTER,
		                     "Marker LUs of other hosts' image uploads deleted as stale "
		                     "(seen for powervm_image_marker_timeout_s).");
		pvm_metrics_inc(m, "powervmd_image_stale_markers_removed_total", NULL, 0);
	}
	for (size_t i = 0; i < sizeof(all_types) / sizeof(all_types[0]); i++) {
		int rc = pvm_engine_register(e, all_types[i]);
		if (rc)
			return rc;
	}
	return 0;
}
