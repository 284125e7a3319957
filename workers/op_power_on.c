/* op_power_on.c: the operation type `power_on` (nova's ComputeDriver.power_on).
 *
 * One step, `power_on`: a partition already running, starting or in open firmware is left
 * as it is (success); one that is shutting down is waited for; one that is not activated
 * (or in error) gets a PowerOn job. The step reconciles an unknown job outcome from the
 * partition state (running, or starting with no job left = done). A failed PowerOn job is
 * sent again a few times (5) before the operation fails.
 *
 * params (docs/api.md): instance {uuid, name, ...}.
 */
#include "op_power.h"
#include "ops.h"

#include "pvm/error.h"

#include <string.h>
#include <strings.h>

/* Shared with resume_state_on_host_boot and reboot's last step. */
void pwr_power_on_step(struct pvm_step_ctx *ctx, struct pvm_step_result *res, bool *already)
{
	*already = false;
	if (!json_object_get(ctx->data, "on")) {
		struct pwr_quick q;
		if (!pwr_read_or_fail(ctx, &q, res))
			return;
		json_object_set_new(ctx->data, "state", json_string(q.state));
		if (pwr_is_on(q.state) || strcasecmp(q.state, "starting") == 0) {
			*already = !json_object_get(ctx->data, "on_failures");
			res->verdict = PVM_STEP_DONE;
			return;
		}
		if (pwr_is_moving(q.state)) {
			/* shutting down (or suspending, resuming): an event or the poll brings
			 * it back here once it has settled */
			pvm_step_wait(res, ctx->now_ms + 1000,
			              "waiting for the partition to settle");
			return;
		}
		if (!pwr_is_off(q.state) && strcasecmp(q.state, "error") != 0) {
			pvm_step_fail(res, PVM_EINVAL,
			              "the partition is %s: it cannot be powered on", q.state);
			return;
		}
	}
	pwr_on_job(ctx, res);
}

static void on_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!pwr_check_instance(ctx, res))
		return;
	bool already = false;
	pwr_power_on_step(ctx, res, &already);
	if (res->verdict == PVM_STEP_DONE) {
		if (already)
			json_object_set_new(ctx->data, "already_on", json_true());
		const char *st = json_string_value(json_object_get(ctx->data, "state"));
		res->result = pwr_result(
		        ctx, already && st ? st : "running",
		        json_pack("{s:b}", "already_on",
		                  json_is_true(json_object_get(ctx->data, "already_on"))));
	}
}

static const struct pvm_step_def steps[] = {
        {"power_on", on_run, NULL, pwr_on_reconcile, NULL},
};

static int validate(const json_t *p, char *field, size_t fn, char *msg, size_t mn)
{
	static const char *const known[] = {"instance", NULL};
	return pwr_validate_known(p, "power_on", known, field, fn, msg, mn);
}

const struct pvm_op_type pvm_op_power_on = {
        .name = "power_on",
        .version = 1,
        .steps = steps,
        .nsteps = sizeof(steps) / sizeof(steps[0]),
        .max_attempts = 30,
        .deadline_ms = 30LL * 60 * 1000,
        .validate = validate,
        .requires_instance = true,
};
