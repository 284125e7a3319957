/* op_test_vifs.c: the test operation type `test_vifs` (powervm_enable_test_ops only).
 *
 * It runs the network steps spawn and destroy use (vif.h) on an existing partition, so
 * that they are tested through the real stack before those operations exist: `vifs`
 * (spawn's: an adapter and a plug event per VIF), `mgmt_vif` (spawn's RMC management
 * adapter, when params.mgmt and powervm_use_rmc_mgmt_vif), `check` (fails on purpose when
 * params.fail, to exercise the undo of the two steps before it) and `unplug` (destroy's
 * unplug events, when params.unplug).
 *
 * params (docs/api.md): network_info (array of VIFs), mgmt (bool, default true), fail
 * (bool), unplug (bool).
 */
#include "op_power.h"
#include "ops.h"
#include "vif.h"

#include "pvm/error.h"
#include "pvm/pvm_objects.h"

#include <stdio.h>
#include <string.h>

static bool flag(const struct pvm_step_ctx *ctx, const char *key, bool def)
{
	json_t *v = json_object_get(ctx->op->params, key);
	return v ? json_is_true(v) : def;
}

static void mgmt_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (flag(ctx, "mgmt", true))
		pvm_vif_mgmt_run(ctx, res);
	else
		res->verdict = PVM_STEP_DONE;
}

static void check_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (flag(ctx, "fail", false)) {
		pvm_step_fail(res, PVM_EINVAL, "step check fails on purpose (params.fail)");
		return;
	}
	res->verdict = PVM_STEP_DONE;
}

static void unplug_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (flag(ctx, "unplug", false))
		pvm_vif_destroy_run(ctx, res);
	else
		res->verdict = PVM_STEP_DONE;
	if (res->verdict == PVM_STEP_DONE) {
		char uuid[37];
		pvm_lpar_uuid_from_instance(ctx->op->instance_uuid, uuid);
		const json_t *cp = ctx->op->checkpoints;
		json_t *mg = json_object_get(json_object_get(cp, "mgmt_vif"), "adapter");
		res->result = json_pack("{s:s, s:O?, s:O?, s:O?}", "partition_uuid", uuid, "vifs",
		                        json_object_get(json_object_get(cp, "vifs"), "vifs"),
		                        "mgmt_adapter", mg, "unplugged",
		                        json_object_get(ctx->data, "unplugged"));
	}
}

static const struct pvm_step_def steps[] = {
        {"vifs", pvm_vif_spawn_run, pvm_vif_spawn_undo, pvm_vif_spawn_reconcile, NULL},
        {"mgmt_vif", mgmt_run, pvm_vif_mgmt_undo, pvm_vif_mgmt_reconcile, NULL},
        {"check", check_run, NULL, NULL, NULL},
        {"unplug", unplug_run, NULL, NULL, NULL},
};

static int validate(const json_t *p, char *field, size_t fn, char *msg, size_t mn)
{
	static const char *const known[] = {"network_info", "mgmt", "fail", "unplug"};
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)p, k, v)
	{
		size_t i = 0;
		while (i < sizeof(known) / sizeof(known[0]) && strcmp(k, known[i]) != 0)
			i++;
		if (i == sizeof(known) / sizeof(known[0])) {
			snprintf(field, fn, "params.%s", k);
			snprintf(msg, mn, "unknown parameter of test_vifs");
			return PVM_EINVAL;
		}
		if (i > 0 && !json_is_boolean(v)) {
			snprintf(field, fn, "params.%s", k);
			snprintf(msg, mn, "must be true or false");
			return PVM_EINVAL;
		}
	}
	return pvm_vif_validate_list(json_object_get(p, "network_info"), "params.network_info",
	                             field, fn, msg, mn);
}

const struct pvm_op_type pvm_op_test_vifs = {
        .name = "test_vifs",
        .version = 1,
        .steps = steps,
        .nsteps = sizeof(steps) / sizeof(steps[0]),
        .max_attempts = 30,
        .deadline_ms = 10LL * 60 * 1000,
        .validate = validate,
        .requires_instance = true,
        .test_only = true,
};
