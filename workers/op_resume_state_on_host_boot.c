/* op_resume_state_on_host_boot.c: the operation type `resume_state_on_host_boot` (nova's
 * ComputeDriver.resume_state_on_host_boot, called at nova-compute start for instances nova
 * believes running).
 *
 * One step, `resume`: when nova says the instance was running (params.power_state_before,
 * else params.instance.power_state, is RUNNING = 1) and the partition is not running, it is
 * powered on exactly as power_on does; otherwise nothing is sent.
 *
 * params (docs/api.md): instance {uuid, name, power_state, ...}, power_state_before.
 */
#include "op_power.h"
#include "ops.h"

#include "pvm/error.h"

#include <stdio.h>
#include <string.h>

static int wanted(const json_t *p)
{
	json_t *b = json_object_get(p, "power_state_before");
	if (!b || json_is_null(b))
		b = json_object_get(json_object_get(p, "instance"), "power_state");
	return json_is_integer(b) ? (int)json_integer_value(b) : -1;
}

static void resume_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!pwr_check_instance(ctx, res))
		return;
	int w = wanted(ctx->op->params);
	if (w != PVM_NOVA_RUNNING) {
		struct pwr_quick q;
		if (!pwr_read_or_fail(ctx, &q, res))
			return;
		res->verdict = PVM_STEP_DONE;
		res->result = pwr_result(ctx, q.state, json_pack("{s:s}", "action", "none"));
		return;
	}
	bool already = false;
	pwr_power_on_step(ctx, res, &already);
	if (res->verdict == PVM_STEP_DONE) {
		if (already)
			json_object_set_new(ctx->data, "already_on", json_true());
		bool was_on = json_is_true(json_object_get(ctx->data, "already_on"));
		const char *st = json_string_value(json_object_get(ctx->data, "state"));
		res->result =
		        pwr_result(ctx, was_on && st ? st : "running",
		                   json_pack("{s:s}", "action", was_on ? "none" : "powered_on"));
	}
}

static const struct pvm_step_def steps[] = {
        {"resume", resume_run, NULL, pwr_on_reconcile, NULL},
};

static int validate(const json_t *p, char *field, size_t fn, char *msg, size_t mn)
{
	static const char *const known[] = {"instance", "power_state_before", NULL};
	int rc = pwr_validate_known(p, "resume_state_on_host_boot", known, field, fn, msg, mn);
	if (rc)
		return rc;
	json_t *b = json_object_get(p, "power_state_before");
	if (b && !json_is_null(b) &&
	    (!json_is_integer(b) || json_integer_value(b) < 0 || json_integer_value(b) > 7)) {
		snprintf(field, fn, "params.power_state_before");
		snprintf(msg, mn, "must be a nova power state (an integer from 0 to 7)");
		return PVM_EINVAL;
	}
	if (wanted(p) < 0) {
		snprintf(field, fn, "params.power_state_before");
		snprintf(msg, mn,
		         "required (or params.instance.power_state): the power state nova "
		         "recorded before the host booted");
		return PVM_EINVAL;
	}
	return 0;
}

const struct pvm_op_type pvm_op_resume_state_on_host_boot = {
        .name = "resume_state_on_host_boot",
        .version = 1,
        .steps = steps,
        .nsteps = sizeof(steps) / sizeof(steps[0]),
        .max_attempts = 30,
        .deadline_ms = 30LL * 60 * 1000,
        .validate = validate,
        .requires_instance = true,
};
