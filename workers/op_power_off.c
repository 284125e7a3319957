/* op_power_off.c: the operation type `power_off` (nova's ComputeDriver.power_off).
 *
 * One step, `power_off`: the progressive power off of op_power_common.c. With RMC active
 * the OS is asked to shut down (PowerOff operation=osshutdown); without, the VSP shuts the
 * partition down (operation=shutdown). A stage not finished by the caller's timeout is
 * cancelled and escalated (osshutdown -> VSP normal -> VSP immediate); timeout 0 goes
 * straight to VSP immediate, as nova's force. A partition already off is success; the step
 * reconciles an unknown job outcome from the partition state (not activated = done).
 *
 * params (docs/api.md): instance {uuid, name, ...}, timeout (seconds, default 60; 0: hard),
 * retry_interval (seconds: the longest gap between two looks at a clean stage).
 */
#include "op_power.h"
#include "ops.h"

#include "pvm/error.h"

#include <string.h>

#define DEFAULT_TIMEOUT_MS (60 * 1000)

static void off_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!pwr_check_instance(ctx, res))
		return;
	const json_t *p = ctx->op->params;
	int64_t timeout = pwr_param_ms(p, "timeout", DEFAULT_TIMEOUT_MS);
	pwr_off_progressive(ctx, res, false, timeout, timeout <= 0);
	int64_t ri = pwr_param_ms(p, "retry_interval", 0);
	if (res->verdict == PVM_STEP_WAIT && ri > 0 && timeout > 0 &&
	    (res->due_ms <= 0 || res->due_ms > ctx->now_ms + ri))
		res->due_ms = ctx->now_ms + ri;
	if (res->verdict == PVM_STEP_DONE) {
		json_t *esc = json_object_get(ctx->data, "escalations");
		res->result = pwr_result(
		        ctx, "not activated",
		        json_pack("{s:b, s:s?, s:O?}", "already_off",
		                  json_is_true(json_object_get(ctx->data, "already_off")),
		                  "first_stage",
		                  json_string_value(json_object_get(ctx->data, "first_stage")),
		                  "escalations", esc));
	}
}

static const struct pvm_step_def steps[] = {
        {"power_off", off_run, NULL, pwr_off_reconcile, NULL},
};

static int validate(const json_t *p, char *field, size_t fn, char *msg, size_t mn)
{
	static const char *const known[] = {"instance", "timeout", "retry_interval", NULL};
	int rc = pwr_validate_known(p, "power_off", known, field, fn, msg, mn);
	if (!rc)
		rc = pwr_validate_seconds(p, "timeout", 86400, field, fn, msg, mn);
	if (!rc)
		rc = pwr_validate_seconds(p, "retry_interval", 3600, field, fn, msg, mn);
	return rc;
}

const struct pvm_op_type pvm_op_power_off = {
        .name = "power_off",
        .version = 1,
        .steps = steps,
        .nsteps = sizeof(steps) / sizeof(steps[0]),
        .max_attempts = 30,
        .deadline_ms = 30LL * 60 * 1000,
        .validate = validate,
        .requires_instance = true,
};
