/* op_test_steps.c: the test operation type `test_steps` (powervm_enable_test_ops only).
 *
 * It exercises the engine against real PowerVM objects, apart from the driver operations:
 * create a partition (derived UUID, so a create is checkable after a crash), an optional
 * gate that waits for the signal "go", a PowerOn job, a PowerOff job, and an optional
 * delete. Every step has its undo and its reconcile, which read the partition's real state,
 * so crash, restart and fault tests have something true to settle against.
 *
 * params (docs/api.md): partition_name (string, at most 31 characters), memory_mb (128..
 * 1048576, default 512), vcpus (1..64, default 1), gate (bool), fail_at (a step name: that
 * step fails on purpose, to exercise undo), delete_at_end (bool).
 */
#include "op_power.h"
#include "ops.h"

#include "pvm/client.h"
#include "pvm/error.h"
#include "pvm/pvm_objects.h"
#include "pvm/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads the partition's state: 0 with state, PVM_ENOTFOUND when it does not exist. */
static int partition_state(struct pvm_step_ctx *ctx, char *state, size_t n,
                           struct pvm_rest_error *err)
{
	struct pwr_quick q;
	int rc = pwr_read(ctx, &q, err);
	if (rc == 0)
		pvm_strlcpy(state, q.state, n);
	return rc;
}

static bool forced(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	const char *f = json_string_value(json_object_get(ctx->op->params, "fail_at"));
	const struct pvm_step_def *sd = pvm_step_def(ctx);
	if (f && sd && strcmp(f, sd->name) == 0) {
		pvm_step_fail(res, PVM_EINVAL, "step %s fails on purpose (params.fail_at)",
		              sd->name);
		return true;
	}
	return false;
}

static void rest_failure(struct pvm_step_result *res, int rc, const struct pvm_rest_error *err,
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

/* ---- create_partition ---- */

static void create_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	char st[64];
	struct pvm_rest_error err = {0};
	int rc = partition_state(ctx, st, sizeof(st), &err);
	if (rc == 0)
		res->verdict = PVM_STEP_DONE;
	else if (rc == PVM_ENOTFOUND)
		pvm_step_wait(res, 0, "not created");
	else
		rest_failure(res, rc, &err, "reading the partition");
}

static void create_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (forced(ctx, res))
		return;
	struct pvm_rest_error err = {0};
	char st[64];
	int rc = partition_state(ctx, st, sizeof(st), &err);
	if (rc == 0) { /* an earlier attempt created it */
		if (json_object_get(json_object_get(ctx->data, "create"), "sent_at"))
			pvm_log(PVM_LOG_WARNING, &ctx->log,
			        "step create_partition: the create had an intent without a "
			        "recorded "
			        "outcome; the partition exists, so it is settled as done and not "
			        "sent again");
		res->verdict = PVM_STEP_DONE;
		return;
	}
	if (rc != PVM_ENOTFOUND) {
		rest_failure(res, rc, &err, "reading the partition");
		return;
	}
	char uuid[37];
	pvm_lpar_uuid_from_instance(ctx->op->instance_uuid, uuid);
	const json_t *p = ctx->op->params;
	char name[32];
	const char *pn = json_string_value(json_object_get(p, "partition_name"));
	if (pn)
		pvm_strlcpy(name, pn, sizeof(name));
	else
		snprintf(name, sizeof(name), "pvmtest-%.8s", ctx->op->instance_uuid);
	json_t *mem = json_object_get(p, "memory_mb"), *vc = json_object_get(p, "vcpus");
	struct pvm_lpar_spec spec = {.uuid = uuid,
	                             .name = name,
	                             .memory_mb = mem ? json_integer_value(mem) : 512,
	                             .vcpus = vc ? json_integer_value(vc) : 1};
	char *body = pvm_build_lpar_create(&spec, &err);
	if (!body) {
		pvm_step_fail(res, PVM_EINVAL, "building the partition: %s", err.message);
		return;
	}
	char path[160];
	snprintf(path, sizeof(path), "uom/ManagedSystem/%s/LogicalPartition", ctx->ms_uuid);
	struct pvm_req rq = {
	        .method = PVM_PUT,
	        .path = path,
	        .content_type = "application/vnd.ibm.powervm.uom+xml; type=LogicalPartition",
	        .body = body,
	        .body_len = strlen(body),
	        .request_id =
	                ctx->op->request_id[0]
	                        ? ctx->op->request_id
	                        : NULL}; /* Intent before effect: a create sent before a crash may still land. */
	if (!pvm_step_send_guard(ctx, "create", res)) {
		free(body);
		return;
	}
	struct pvm_resp resp = {0};
	rc = pvm_client_request(ctx->client, &rq, &resp, &err);
	int status = resp.status;
	free(body);
	pvm_resp_fini(&resp);
	if (status > 0) /* answered: nothing of ours is in flight any more */
		pvm_step_send_answered(ctx, "create");
	if (rc == 0) {
		res->verdict = PVM_STEP_DONE;
		return;
	}
	if (status == 409 || rc == -EPROTO) {
		/* A duplicate create (the first one landed before a crash or a timeout): the
		 * server refused it; the partition is there. */
		create_reconcile(ctx, res);
		if (res->verdict == PVM_STEP_DONE) {
			pvm_log(PVM_LOG_WARNING, &ctx->log,
			        "partition %s already existed: a duplicate create was refused by "
			        "the server and settled",
			        uuid);
			return;
		}
	}
	rest_failure(res, rc, &err, "creating the partition");
}

static void create_undo(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	/* a create that may still land must land before the delete (or it is an orphan) */
	if (!pvm_step_settle_inflight(ctx, "create", res))
		return;
	char path[128];
	pwr_root(ctx, path, sizeof(path));
	struct pvm_rest_error err = {0};
	int rc = pvm_client_delete(ctx->client, path, NULL,
	                           ctx->op->request_id[0] ? ctx->op->request_id : NULL, &err);
	if (rc && rc != PVM_ENOTFOUND)
		rest_failure(res, rc, &err, "deleting the partition");
	else
		res->verdict = PVM_STEP_DONE;
}

/* ---- gate ---- */

static void gate_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (forced(ctx, res))
		return;
	if (!json_is_true(json_object_get(ctx->op->params, "gate")) ||
	    json_object_get(ctx->op->signals, "go")) {
		res->verdict = PVM_STEP_DONE;
		return;
	}
	/* Parked until the signal (a control request makes it due at once). */
	pvm_step_wait(res, ctx->now_ms + 3600 * 1000, "gate: waiting for signal go");
}

/* ---- power_on / power_off ---- */

static void power_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res, bool on)
{
	char st[64];
	struct pvm_rest_error err = {0};
	int rc = partition_state(ctx, st, sizeof(st), &err);
	if (rc) {
		rest_failure(res, rc, &err, "reading the partition state");
		return;
	}
	bool is_on = strcmp(st, "running") == 0 || strcmp(st, "open firmware") == 0;
	bool is_off = strcmp(st, "not activated") == 0;
	bool starting = strcmp(st, "starting") == 0, stopping = strcmp(st, "shutting down") == 0;
	if ((on && is_on) || (!on && is_off))
		res->verdict = PVM_STEP_DONE;
	else if (on && starting && ctx->job_gone) /* no job runs: firmware boots it on */
		res->verdict = PVM_STEP_DONE;
	else if ((starting || stopping) && !ctx->job_gone)
		pvm_step_retry(res, -EAGAIN, "partition is %s: a job may still be running", st);
	else
		pvm_step_wait(res, 0, "not done"); /* e.g. stuck shutting down: send it again */
}

static void power_on_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	power_reconcile(ctx, res, true);
}

static void power_off_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	power_reconcile(ctx, res, false);
}

static void job_step(struct pvm_step_ctx *ctx, struct pvm_step_result *res, const char *key,
                     const char *op, const char *const *params)
{
	char root[128];
	pwr_root(ctx, root, sizeof(root));
	bool done = false, unsettled = false;
	pvm_step_job(ctx, key, root, op, params, res, &done, &unsettled);
	if (done)
		res->verdict = PVM_STEP_DONE;
	else if (unsettled)
		pvm_step_fail(res, PVM_EINVAL, "job %s unsettled", op);
}

static void power_on_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (forced(ctx, res))
		return;
	job_step(ctx, res, "power_on", "PowerOn", NULL);
}

static const char *const off_params[] = {"operation", "shutdown", "immediate", "true", NULL};

static void power_on_undo(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	char st[64];
	struct pvm_rest_error err = {0};
	int rc = partition_state(ctx, st, sizeof(st), &err);
	if (rc == PVM_ENOTFOUND || (rc == 0 && strcmp(st, "not activated") == 0 &&
	                            !json_object_get(ctx->data, "undo_off"))) {
		res->verdict = PVM_STEP_DONE;
		return;
	}
	if (rc) {
		rest_failure(res, rc, &err, "reading the partition state");
		return;
	}
	job_step(ctx, res, "undo_off", "PowerOff", off_params);
}

static void power_off_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (forced(ctx, res))
		return;
	job_step(ctx, res, "power_off", "PowerOff", off_params);
}

/* ---- finish ---- */

static void finish_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (forced(ctx, res))
		return;
	if (json_is_true(json_object_get(ctx->op->params, "delete_at_end")))
		create_undo(ctx, res);
	else
		res->verdict = PVM_STEP_DONE;
	if (res->verdict == PVM_STEP_DONE) {
		char uuid[37];
		pvm_lpar_uuid_from_instance(ctx->op->instance_uuid, uuid);
		res->result = json_pack("{s:s}", "partition_uuid", uuid);
	}
}

static const struct pvm_step_def steps[] = {
        {"create_partition", create_run, create_undo, create_reconcile, NULL},
        {"gate", gate_run, NULL, NULL, NULL},
        {"power_on", power_on_run, power_on_undo, power_on_reconcile, power_off_reconcile},
        {"power_off", power_off_run, NULL, power_off_reconcile, NULL},
        {"finish", finish_run, NULL, NULL, NULL},
};

static int validate(const json_t *p, char *field, size_t fn, char *msg, size_t mn)
{
	static const char *const known[] = {"partition_name", "memory_mb",     "vcpus", "gate",
	                                    "fail_at",        "delete_at_end", NULL};
	int rc = pwr_validate_only(p, "test_steps", known, field, fn, msg, mn);
	if (rc)
		return rc;
	json_t *name = json_object_get(p, "partition_name");
	if (name &&
	    (!json_is_string(name) || !json_string_length(name) || json_string_length(name) > 31)) {
		snprintf(field, fn, "params.partition_name");
		snprintf(msg, mn, "must be a string of 1 to 31 characters");
		return PVM_EINVAL;
	}
	json_t *mem = json_object_get(p, "memory_mb");
	if (mem && (!json_is_integer(mem) || json_integer_value(mem) < 128 ||
	            json_integer_value(mem) > 1048576)) {
		snprintf(field, fn, "params.memory_mb");
		snprintf(msg, mn, "must be an integer from 128 to 1048576");
		return PVM_EINVAL;
	}
	json_t *vc = json_object_get(p, "vcpus");
	if (vc &&
	    (!json_is_integer(vc) || json_integer_value(vc) < 1 || json_integer_value(vc) > 64)) {
		snprintf(field, fn, "params.vcpus");
		snprintf(msg, mn, "must be an integer from 1 to 64");
		return PVM_EINVAL;
	}
	const char *bools[] = {"gate", "delete_at_end"};
	for (int i = 0; i < 2; i++) {
		json_t *b = json_object_get(p, bools[i]);
		if (b && !json_is_boolean(b)) {
			snprintf(field, fn, "params.%s", bools[i]);
			snprintf(msg, mn, "must be true or false");
			return PVM_EINVAL;
		}
	}
	json_t *fa = json_object_get(p, "fail_at");
	if (fa) {
		bool ok = false;
		for (size_t i = 0; json_is_string(fa) && i < sizeof(steps) / sizeof(steps[0]); i++)
			ok = ok || strcmp(json_string_value(fa), steps[i].name) == 0;
		if (!ok) {
			snprintf(field, fn, "params.fail_at");
			snprintf(msg, mn,
			         "must name a step: create_partition, gate, power_on, power_off, "
			         "finish");
			return PVM_EINVAL;
		}
	}
	return 0;
}

const struct pvm_op_type pvm_op_test_steps = {
        .name = "test_steps",
        .version = 1,
        .steps = steps,
        .nsteps = sizeof(steps) / sizeof(steps[0]),
        .max_attempts = 20,
        .deadline_ms = 30LL * 60 * 1000,
        .validate = validate,
        .requires_instance = true,
        .test_only = true,
};

/* ---- test_jobs: five steps, each one PowerVM job (for the engine benchmark) ----
 *
 * Each step runs a MigrateValidate job on the instance's partition, which must exist
 * (the benchmark creates it first): a job that changes nothing and takes the server's
 * generic job time. params: {"target": "<managed system name>"} (optional). */

static void job_n(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	const char *target = json_string_value(json_object_get(ctx->op->params, "target"));
	const char *const params[] = {"TargetManagedSystemName", target ? target : "sim-target",
	                              NULL};
	job_step(ctx, res, "job", "MigrateValidate", params);
}

static void job_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	/* MigrateValidate changes nothing: running it again is harmless. */
	(void)ctx;
	pvm_step_wait(res, 0, "not done");
}

static const struct pvm_step_def job_steps[] = {
        {"job1", job_n, NULL, job_reconcile, NULL}, {"job2", job_n, NULL, job_reconcile, NULL},
        {"job3", job_n, NULL, job_reconcile, NULL}, {"job4", job_n, NULL, job_reconcile, NULL},
        {"job5", job_n, NULL, job_reconcile, NULL},
};

static int validate_jobs(const json_t *p, char *field, size_t fn, char *msg, size_t mn)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)p, k, v)
	{
		if (strcmp(k, "target") != 0 || !json_is_string(v)) {
			snprintf(field, fn, "params.%s", k);
			snprintf(msg, mn, "test_jobs takes only params.target (a string)");
			return PVM_EINVAL;
		}
	}
	return 0;
}

const struct pvm_op_type pvm_op_test_jobs = {
        .name = "test_jobs",
        .version = 1,
        .steps = job_steps,
        .nsteps = sizeof(job_steps) / sizeof(job_steps[0]),
        .max_attempts = 20,
        .deadline_ms = 30LL * 60 * 1000,
        .validate = validate_jobs,
        .requires_instance = true,
        .test_only = true,
};
