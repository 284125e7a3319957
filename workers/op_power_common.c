/* op_power_common.c: what the power operations share (op_power.h).
 *
 * DESIGN
 * Each power operation acts on the partition derived from its instance UUID and reads the
 * partition's quick properties (PartitionState, RMCState) before it sends anything, so a
 * repeated operation finds the work done and sends nothing. Jobs go through
 * pvm_step_job() (intent before effect, JobID recorded, polled, never resubmitted); the
 * step's reconcile settles a job whose outcome is unknown from the partition state.
 *
 * The progressive power off keeps its stage in the step's checkpoint: "os" (osshutdown,
 * only with RMC active), then "vsp" (VSP normal), then "hard" (VSP immediate). A clean
 * stage has a deadline (the caller's timeout), checked at every poll (and a poll is never
 * later than that deadline): past it, its job is cancelled and the next stage starts. A
 * clean stage whose job fails escalates too; a failed immediate job is sent again (a few
 * times) since there is nothing left to escalate to.
 */
#include "op_power.h"

#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/pvm_objects.h"
#include "pvm/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- nova power states ---- */

static const struct {
	const char *pvm;
	enum pvm_nova_power_state nova;
} state_map[] = {
        /* as nova-powervm (nova_powervm/virt/powervm/vm.py, _POWERVM_TO_NOVA_STATE) */
        {"migrating running", PVM_NOVA_RUNNING},
        {"running", PVM_NOVA_RUNNING},
        {"starting", PVM_NOVA_RUNNING},
        {"open firmware", PVM_NOVA_RUNNING}, /* can be shut down: active */
        {"shutting down", PVM_NOVA_RUNNING}, /* running until it is off */
        {"suspending", PVM_NOVA_RUNNING},    /* running until the suspend completes */
        {"migrating not active", PVM_NOVA_SHUTDOWN},
        {"not activated", PVM_NOVA_SHUTDOWN},
        {"unknown", PVM_NOVA_NOSTATE},
        {"hardware discovery", PVM_NOVA_NOSTATE},
        {"not available", PVM_NOVA_NOSTATE},
        {"resuming", PVM_NOVA_SUSPENDED}, /* suspended until resumed */
        {"suspended", PVM_NOVA_SUSPENDED},
        {"error", PVM_NOVA_CRASHED},
};

enum pvm_nova_power_state pvm_nova_power_state(const char *s)
{
	for (size_t i = 0; s && i < sizeof(state_map) / sizeof(state_map[0]); i++)
		if (strcasecmp(s, state_map[i].pvm) == 0)
			return state_map[i].nova;
	return PVM_NOVA_NOSTATE;
}

const char *pvm_nova_power_state_name(int s)
{
	switch (s) {
	case PVM_NOVA_RUNNING:
		return "RUNNING";
	case PVM_NOVA_PAUSED:
		return "PAUSED";
	case PVM_NOVA_SHUTDOWN:
		return "SHUTDOWN";
	case PVM_NOVA_CRASHED:
		return "CRASHED";
	case PVM_NOVA_SUSPENDED:
		return "SUSPENDED";
	default:
		return "NOSTATE";
	}
}

/* ---- instances being rebooted ---- */

#define MAX_REBOOTING 4096

static pthread_mutex_t reboot_mu = PTHREAD_MUTEX_INITIALIZER;
static char (*rebooting)[37]; /* guarded by reboot_mu */
static size_t n_rebooting;    /* guarded by reboot_mu */

/* Kept by partition UUID: the derivation maps an instance UUID and its partition's UUID
 * alike to the partition's. */
bool pvm_ops_rebooting(const char *uuid)
{
	char p[37];
	if (!uuid || pvm_lpar_uuid_from_instance(uuid, p) != 0)
		return false;
	bool found = false;
	pthread_mutex_lock(&reboot_mu);
	for (size_t i = 0; i < n_rebooting && !found; i++)
		found = strcasecmp(rebooting[i], p) == 0;
	pthread_mutex_unlock(&reboot_mu);
	return found;
}

void pvm_ops_rebooting_set(const char *uuid, bool on)
{
	char p[37];
	if (!uuid || pvm_lpar_uuid_from_instance(uuid, p) != 0)
		return;
	pthread_mutex_lock(&reboot_mu);
	size_t i;
	for (i = 0; i < n_rebooting; i++)
		if (strcasecmp(rebooting[i], p) == 0)
			break;
	if (on && i == n_rebooting && n_rebooting < MAX_REBOOTING) {
		if (!rebooting)
			rebooting = calloc(MAX_REBOOTING, sizeof(*rebooting));
		if (rebooting)
			memcpy(rebooting[n_rebooting++], p, 37);
	} else if (!on && i < n_rebooting) {
		memmove(rebooting[i], rebooting[n_rebooting - 1], 37);
		n_rebooting--;
	}
	pthread_mutex_unlock(&reboot_mu);
}

/* ---- reading the partition ---- */

void pwr_root(const struct pvm_step_ctx *ctx, char *out, size_t n)
{
	char uuid[37];
	pvm_lpar_uuid_from_instance(ctx->op->instance_uuid, uuid);
	snprintf(out, n, "uom/LogicalPartition/%s", uuid);
}

int pwr_read(struct pvm_step_ctx *ctx, struct pwr_quick *q, struct pvm_rest_error *err)
{
	memset(q, 0, sizeof(*q));
	if (!ctx->client)
		return PVM_EINVAL;
	char path[128];
	pwr_root(ctx, path, sizeof(path));
	strncat(path, "/quick", sizeof(path) - strlen(path) - 1);
	struct pvm_req rq = {.method = PVM_GET,
	                     .path = path,
	                     .accept = "application/json",
	                     .request_id = ctx->op->request_id[0] ? ctx->op->request_id : NULL};
	struct pvm_resp resp = {0};
	int rc = pvm_client_request(ctx->client, &rq, &resp, err);
	if (rc == 0) {
		json_t *v = json_loadb(resp.body, resp.len, 0, NULL);
		const char *st = json_string_value(json_object_get(v, "PartitionState"));
		const char *rmc = json_string_value(json_object_get(v, "RMCState"));
		if (st) {
			pvm_strlcpy(q->state, st, sizeof(q->state));
			pvm_strlcpy(q->rmc, rmc ? rmc : "", sizeof(q->rmc));
		} else {
			rc = PVM_ECORRUPT;
			snprintf(err->message, sizeof(err->message),
			         "quick properties without PartitionState");
		}
		json_decref(v);
	}
	pvm_resp_fini(&resp);
	return rc;
}

void pwr_rest_failure(struct pvm_step_result *res, int rc, const struct pvm_rest_error *err,
                      const char *what)
{
	if (err->reason[0])
		pvm_strlcpy(res->error_code, err->reason, sizeof(res->error_code));
	if (pvm_client_transient(rc))
		pvm_step_retry(res, rc, "%s: %s", what,
		               err->message[0] ? err->message : pvm_strerror(rc));
	else
		pvm_step_fail(res, rc, "%s: %s", what,
		              err->message[0] ? err->message : pvm_strerror(rc));
}

bool pwr_read_or_fail(struct pvm_step_ctx *ctx, struct pwr_quick *q, struct pvm_step_result *res)
{
	struct pvm_rest_error err = {0};
	int rc = pwr_read(ctx, q, &err);
	if (rc == PVM_ENOTFOUND) {
		char uuid[37];
		pvm_lpar_uuid_from_instance(ctx->op->instance_uuid, uuid);
		pvm_step_fail(res, rc, "instance %s not found: no partition %s",
		              ctx->op->instance_uuid, uuid);
		pvm_strlcpy(res->error_code, "instance_not_found", sizeof(res->error_code));
		return false;
	}
	if (rc) {
		pwr_rest_failure(res, rc, &err, "reading the partition state");
		return false;
	}
	return true;
}

bool pwr_check_instance(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	const char *u = json_string_value(
	        json_object_get(json_object_get(ctx->op->params, "instance"), "uuid"));
	if (!u || strcasecmp(u, ctx->op->instance_uuid) != 0) {
		pvm_step_fail(
		        res, PVM_EINVAL,
		        "params.instance.uuid (%s) must be the operation's instance_uuid (%s)",
		        u ? u : "missing", ctx->op->instance_uuid);
		return false;
	}
	return true;
}

json_t *pwr_result(struct pvm_step_ctx *ctx, const char *state, json_t *extra)
{
	char uuid[37];
	pvm_lpar_uuid_from_instance(ctx->op->instance_uuid, uuid);
	json_t *r = json_pack("{s:s, s:s?, s:i}", "partition_uuid", uuid, "state", state,
	                      "power_state", (int)pvm_nova_power_state(state));
	if (r && extra)
		json_object_update(r, extra);
	json_decref(extra);
	return r;
}

bool pwr_is_off(const char *s)
{
	return strcasecmp(s, "not activated") == 0;
}

bool pwr_is_on(const char *s)
{
	return strcasecmp(s, "running") == 0 || strcasecmp(s, "open firmware") == 0 ||
	       strcasecmp(s, "migrating running") == 0;
}

bool pwr_is_moving(const char *s)
{
	return strcasecmp(s, "starting") == 0 || strcasecmp(s, "shutting down") == 0 ||
	       strcasecmp(s, "suspending") == 0 || strcasecmp(s, "resuming") == 0;
}

bool pwr_rmc_active(const struct pwr_quick *q)
{
	return strcasecmp(q->rmc, "active") == 0;
}

/* ---- reconciles ---- */

static bool reconcile_read(struct pvm_step_ctx *ctx, struct pwr_quick *q,
                           struct pvm_step_result *res)
{
	return pwr_read_or_fail(ctx, q, res);
}

void pwr_off_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	struct pwr_quick q;
	if (!reconcile_read(ctx, &q, res))
		return;
	if (pwr_is_off(q.state))
		res->verdict = PVM_STEP_DONE;
	else if (pwr_is_moving(q.state) && !ctx->job_gone)
		pvm_step_retry(res, -EAGAIN, "partition is %s: a job may still be running",
		               q.state);
	else
		pvm_step_wait(res, 0, "not off");
}

void pwr_on_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	struct pwr_quick q;
	if (!reconcile_read(ctx, &q, res))
		return;
	bool starting = strcasecmp(q.state, "starting") == 0;
	if (pwr_is_on(q.state) || (starting && ctx->job_gone))
		res->verdict = PVM_STEP_DONE; /* no job runs: the firmware boots it on */
	else if (pwr_is_moving(q.state) && !ctx->job_gone)
		pvm_step_retry(res, -EAGAIN, "partition is %s: a job may still be running",
		               q.state);
	else
		pvm_step_wait(res, 0, "not on");
}

void pwr_restart_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	struct pwr_quick q;
	if (!reconcile_read(ctx, &q, res))
		return;
	bool half = pwr_is_off(q.state) || strcasecmp(q.state, "starting") == 0;
	if (half && ctx->job_gone)
		res->verdict = PVM_STEP_DONE; /* it went down: the next step brings it up */
	else if ((half || pwr_is_moving(q.state)) && !ctx->job_gone)
		pvm_step_retry(res, -EAGAIN, "partition is %s: a restart may be under way",
		               q.state);
	else
		pvm_step_wait(res, 0, "not restarted"); /* running: it cannot tell; send again */
}

/* ---- progressive power off ---- */

static const char *const stages[] = {"os", "vsp", "hard"};
static const char *const stage_what[] = {"OS shutdown", "VSP normal shutdown",
                                         "VSP immediate shutdown"};

static int stage_index(const char *s)
{
	for (int i = 0; s && i < 3; i++)
		if (strcmp(s, stages[i]) == 0)
			return i;
	return -1;
}

static void escalate(struct pvm_step_ctx *ctx, int from, const char *why)
{
	json_t *esc = json_object_get(ctx->data, "escalations");
	if (!json_is_array(esc)) {
		esc = json_array();
		json_object_set_new(ctx->data, "escalations", esc);
	}
	json_array_append_new(esc, json_pack("{s:s, s:s, s:s}", "from", stages[from], "to",
	                                     stages[from + 1], "why", why));
	json_object_set_new(ctx->data, "stage", json_string(stages[from + 1]));
	json_object_set_new(ctx->data, "stage_started", json_integer((json_int_t)ctx->now_ms));
	pvm_log(PVM_LOG_WARNING, &ctx->log, "power off: %s %s; escalating to %s", stage_what[from],
	        why, stage_what[from + 1]);
}

void pwr_off_progressive(struct pvm_step_ctx *ctx, struct pvm_step_result *res, bool restart,
                         int64_t timeout_ms, bool start_hard)
{
	const char *rs = restart ? "true" : NULL;
	const char *const params[3][7] = {
	        {"operation", "osshutdown", rs ? "restart" : NULL, rs, NULL},
	        {"operation", "shutdown", rs ? "restart" : NULL, rs, NULL},
	        {"operation", "shutdown", "immediate", "true", rs ? "restart" : NULL, rs, NULL},
	};
	const char *stage = json_string_value(json_object_get(ctx->data, "stage"));
	if (!stage) {
		struct pwr_quick q;
		if (!pwr_read_or_fail(ctx, &q, res))
			return;
		if (!restart && pwr_is_off(q.state)) {
			json_object_set_new(ctx->data, "already_off", json_true());
			res->verdict = PVM_STEP_DONE;
			return;
		}
		if (!pwr_is_on(q.state) && !pwr_is_moving(q.state) &&
		    strcasecmp(q.state, "error") != 0 && !pwr_is_off(q.state)) {
			pvm_step_fail(res, PVM_EINVAL, "the partition is %s: it cannot be %s",
			              q.state, restart ? "restarted" : "powered off");
			return;
		}
		stage = start_hard || timeout_ms <= 0 ? "hard" : pwr_rmc_active(&q) ? "os" : "vsp";
		json_object_set_new(ctx->data, "stage", json_string(stage));
		json_object_set_new(ctx->data, "stage_started",
		                    json_integer((json_int_t)ctx->now_ms));
		json_object_set_new(ctx->data, "rmc_state", json_string(q.rmc));
		json_object_set_new(ctx->data, "first_stage", json_string(stage));
	}
	char root[128];
	pwr_root(ctx, root, sizeof(root));
	const char *req = ctx->op->request_id[0] ? ctx->op->request_id : NULL;
	for (int guard = 0; guard < 4; guard++) {
		stage = json_string_value(json_object_get(ctx->data, "stage"));
		int i = stage_index(stage);
		if (i < 0) {
			pvm_step_fail(res, PVM_ECORRUPT, "bad stage in the checkpoint");
			return;
		}
		json_t *ent = json_object_get(ctx->data, stage);
		int64_t started = json_integer_value(json_object_get(ctx->data, "stage_started"));
		bool clean = i < 2 && timeout_ms > 0;
		if (clean && ent && !json_is_true(json_object_get(ent, "done")) &&
		    ctx->now_ms >= started + timeout_ms) {
			const char *job = json_string_value(json_object_get(ent, "job_id"));
			if (job) {
				struct pvm_rest_error err = {0};
				int rc = pvm_job_cancel(ctx->client, job, req, &err);
				if (rc)
					pvm_log(PVM_LOG_INFO, &ctx->log,
					        "cancelling job %s: %s (it may have ended)", job,
					        err.message[0] ? err.message : pvm_strerror(rc));
			}
			char why[96];
			snprintf(why, sizeof(why), "did not finish within %.1f s",
			         (double)timeout_ms / 1000.0);
			escalate(ctx, i, why);
			continue;
		}
		bool done = false, unsettled = false;
		struct pvm_step_result r = {.verdict = PVM_STEP_DONE, .progress = -1};
		pvm_step_job(ctx, stage, root, "PowerOff", params[i], &r, &done, &unsettled);
		if (done) {
			res->verdict = PVM_STEP_DONE;
			return;
		}
		if (unsettled) {
			pvm_step_fail(res, PVM_EINVAL, "PowerOff unsettled");
			return;
		}
		if (r.verdict == PVM_STEP_FAIL && r.code != PVM_ENOTFOUND &&
		    r.code != PVM_ETIMEDOUT) {
			if (i < 2) {
				char why[200];
				snprintf(why, sizeof(why), "failed (%.150s)", r.error);
				escalate(ctx, i, why);
				continue;
			}
			json_int_t nf =
			        json_integer_value(json_object_get(ctx->data, "hard_failures"));
			if (nf < 5) {
				json_object_set_new(ctx->data, "hard_failures",
				                    json_integer(nf + 1));
				json_object_del(ctx->data, stage); /* send a fresh job */
				pvm_step_retry(res, r.code, "%s", r.error);
				pvm_strlcpy(res->error_code, r.error_code, sizeof(res->error_code));
				return;
			}
		}
		if (r.verdict == PVM_STEP_WAIT && clean) {
			int64_t dl = started + timeout_ms + 5;
			if (r.due_ms <= 0 || r.due_ms > dl)
				r.due_ms = dl;
		}
		*res = r;
		return;
	}
	pvm_step_fail(res, PVM_EINVAL, "power off: no stage left");
}

void pwr_on_job(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	char root[128];
	pwr_root(ctx, root, sizeof(root));
	bool done = false, unsettled = false;
	struct pvm_step_result r = {.verdict = PVM_STEP_DONE, .progress = -1};
	pvm_step_job(ctx, "on", root, "PowerOn", NULL, &r, &done, &unsettled);
	if (done) {
		res->verdict = PVM_STEP_DONE;
		return;
	}
	if (unsettled) {
		pvm_step_fail(res, PVM_EINVAL, "PowerOn unsettled");
		return;
	}
	if (r.verdict == PVM_STEP_FAIL && r.code != PVM_ENOTFOUND && r.code != PVM_ETIMEDOUT) {
		json_int_t nf = json_integer_value(json_object_get(ctx->data, "on_failures"));
		if (nf < 5) {
			json_object_set_new(ctx->data, "on_failures", json_integer(nf + 1));
			json_object_del(ctx->data, "on");
			pvm_log(PVM_LOG_WARNING, &ctx->log, "PowerOn failed (%s); sending it again",
			        r.error);
			pvm_step_retry(res, r.code, "%s", r.error);
			pvm_strlcpy(res->error_code, r.error_code, sizeof(res->error_code));
			return;
		}
	}
	*res = r;
}

/* ---- validation ---- */

int pwr_validate_instance(const json_t *p, char *field, size_t fn, char *msg, size_t mn)
{
	json_t *inst = json_object_get(p, "instance");
	if (!json_is_object(inst)) {
		snprintf(field, fn, "params.instance");
		snprintf(msg, mn, "required: an object with the instance's uuid and name");
		return PVM_EINVAL;
	}
	json_t *u = json_object_get(inst, "uuid");
	if (!json_is_string(u) || !pvm_is_uuid(json_string_value(u))) {
		snprintf(field, fn, "params.instance.uuid");
		snprintf(msg, mn, "required: the instance's UUID (the operation's instance_uuid)");
		return PVM_EINVAL;
	}
	json_t *n = json_object_get(inst, "name");
	if (n && !json_is_null(n) && !json_is_string(n)) {
		snprintf(field, fn, "params.instance.name");
		snprintf(msg, mn, "must be a string");
		return PVM_EINVAL;
	}
	json_t *ps = json_object_get(inst, "power_state");
	if (ps && !json_is_null(ps) &&
	    (!json_is_integer(ps) || json_integer_value(ps) < 0 || json_integer_value(ps) > 7)) {
		snprintf(field, fn, "params.instance.power_state");
		snprintf(msg, mn, "must be a nova power state (an integer from 0 to 7) or null");
		return PVM_EINVAL;
	}
	return 0;
}

int pwr_validate_only(const json_t *p, const char *type, const char *const *known, char *field,
                      size_t fn, char *msg, size_t mn)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)p, k, v)
	{
		bool ok = false;
		for (const char *const *kk = known; *kk; kk++)
			ok = ok || strcmp(k, *kk) == 0;
		if (!ok) {
			snprintf(field, fn, "params.%s", k);
			snprintf(msg, mn, "unknown parameter of %s", type);
			return PVM_EINVAL;
		}
	}
	return 0;
}

int pwr_validate_known(const json_t *p, const char *type, const char *const *known, char *field,
                       size_t fn, char *msg, size_t mn)
{
	int rc = pwr_validate_only(p, type, known, field, fn, msg, mn);
	return rc ? rc : pwr_validate_instance(p, field, fn, msg, mn);
}

bool pwr_need_client(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (ctx->client)
		return true;
	pvm_step_fail(res, PVM_EINVAL, "no PowerVM client");
	return false;
}

int pwr_validate_seconds(const json_t *p, const char *key, double max, char *field, size_t fn,
                         char *msg, size_t mn)
{
	json_t *v = json_object_get(p, key);
	if (!v || json_is_null(v))
		return 0;
	double d = json_number_value(v);
	if (!json_is_number(v) || !(d >= 0) || d > max) {
		snprintf(field, fn, "params.%s", key);
		snprintf(msg, mn, "must be a number of seconds from 0 to %.0f", max);
		return PVM_EINVAL;
	}
	return 0;
}

int64_t pwr_param_ms(const json_t *p, const char *key, int64_t def_ms)
{
	json_t *v = json_object_get(p, key);
	if (!v || !json_is_number(v))
		return def_ms;
	return (int64_t)(json_number_value(v) * 1000.0);
}
