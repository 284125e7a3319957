/* op_reboot.c: the operation type `reboot` (nova's ComputeDriver.reboot).
 *
 * Steps:
 *   restart       SOFT: PowerOff restart=true as an OS shutdown when RMC is active, else a
 *                 VSP normal shutdown; past params.timeout (default 120 s) the job is
 *                 cancelled and escalated, ending with VSP immediate restart=true (HARD).
 *                 HARD: PowerOff immediate=true restart=true at once. A partition that is
 *                 off (not activated, or error) is not restarted: the next step powers it
 *                 on, as nova expects of a reboot.
 *   wait_running  done when the partition runs again (running or open firmware); powers
 *                 it on (PowerOn job) when it is off, waits while it starts.
 * While the operation runs its instance is reported `rebooting` by GET /v1/instances (for
 * nova's poll_rebooting_instances). Every step reconciles an unknown job outcome from the
 * partition state; a restart whose job is lost while the partition runs cannot be told
 * from one that never happened, so it is sent again (logged by the engine).
 *
 * params (docs/api.md): instance {uuid, name, ...}, reboot_type "SOFT" | "HARD", timeout
 * (seconds, SOFT only).
 */
#include "op_power.h"
#include "ops.h"

#include "pvm/error.h"

#include <string.h>
#include <strings.h>

#define DEFAULT_SOFT_TIMEOUT_MS (120 * 1000)

static bool hard(const struct pvm_step_ctx *ctx)
{
	const char *t = json_string_value(json_object_get(ctx->op->params, "reboot_type"));
	return t && strcmp(t, "HARD") == 0;
}

static void restart_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!pwr_check_instance(ctx, res))
		return;
	pvm_ops_rebooting_set(ctx->op->instance_uuid, true);
	if (json_is_true(json_object_get(ctx->data, "power_on_instead"))) {
		res->verdict = PVM_STEP_DONE;
		return;
	}
	if (!json_object_get(ctx->data, "stage")) {
		struct pwr_quick q;
		if (!pwr_read_or_fail(ctx, &q, res))
			return;
		if (pwr_is_off(q.state) || strcasecmp(q.state, "error") == 0) {
			json_object_set_new(ctx->data, "power_on_instead", json_true());
			res->verdict = PVM_STEP_DONE;
			return;
		}
	}
	int64_t timeout = pwr_param_ms(ctx->op->params, "timeout", DEFAULT_SOFT_TIMEOUT_MS);
	pwr_off_progressive(ctx, res, true, timeout, hard(ctx));
}

static void clear_flag(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	pvm_ops_rebooting_set(ctx->op->instance_uuid, false);
	res->verdict = PVM_STEP_DONE;
}

static void wait_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	pvm_ops_rebooting_set(ctx->op->instance_uuid, true);
	json_t *on = json_object_get(ctx->data, "on");
	if (on && !json_is_true(json_object_get(on, "done"))) {
		pwr_on_job(ctx, res);
		if (res->verdict != PVM_STEP_DONE)
			return;
	}
	struct pwr_quick q;
	if (!pwr_read_or_fail(ctx, &q, res))
		return;
	if (pwr_is_on(q.state) || (on && strcasecmp(q.state, "starting") == 0)) {
		json_t *rs = json_object_get(ctx->op->checkpoints, "restart");
		res->result =
		        pwr_result(ctx, q.state,
		                   json_pack("{s:s, s:b, s:s?, s:O?}", "reboot_type",
		                             hard(ctx) ? "HARD" : "SOFT", "powered_on", on != NULL,
		                             "first_stage",
		                             json_string_value(json_object_get(rs, "first_stage")),
		                             "escalations", json_object_get(rs, "escalations")));
		pvm_ops_rebooting_set(ctx->op->instance_uuid, false);
		res->verdict = PVM_STEP_DONE;
		return;
	}
	if (pwr_is_off(q.state) || strcasecmp(q.state, "error") == 0) {
		if (on) /* powered on once already, and off again: start over */
			json_object_del(ctx->data, "on");
		pwr_on_job(ctx, res);
		return;
	}
	if (pwr_is_moving(q.state)) {
		pvm_step_wait(res, ctx->now_ms + 1000, "waiting for the partition to run again");
		return;
	}
	pvm_step_fail(res, PVM_EINVAL, "the partition is %s after the restart", q.state);
}

static const struct pvm_step_def steps[] = {
        {"restart", restart_run, clear_flag, pwr_restart_reconcile, NULL},
        {"wait_running", wait_run, clear_flag, pwr_on_reconcile, NULL},
};

static int validate(const json_t *p, char *field, size_t fn, char *msg, size_t mn)
{
	static const char *const known[] = {"instance", "reboot_type", "timeout", NULL};
	int rc = pwr_validate_known(p, "reboot", known, field, fn, msg, mn);
	if (rc)
		return rc;
	json_t *t = json_object_get(p, "reboot_type");
	if (!json_is_string(t) || (strcmp(json_string_value(t), "SOFT") != 0 &&
	                           strcmp(json_string_value(t), "HARD") != 0)) {
		snprintf(field, fn, "params.reboot_type");
		snprintf(msg, mn, "required: \"SOFT\" or \"HARD\"");
		return PVM_EINVAL;
	}
	return pwr_validate_seconds(p, "timeout", 86400, field, fn, msg, mn);
}

const struct pvm_op_type pvm_op_reboot = {
        .name = "reboot",
        .version = 1,
        .steps = steps,
        .nsteps = sizeof(steps) / sizeof(steps[0]),
        .max_attempts = 30,
        .deadline_ms = 30LL * 60 * 1000,
        .validate = validate,
        .requires_instance = true,
};
