/* engine.c: the worker pool and the step engine (pvm/engine.h).
 *
 * DESIGN
 * Workers loop: look at the journal's earliest due time; when something is due, claim it
 * (one synced transaction), run one step of it without any lock held, commit the step's
 * result (one synced transaction, shared with other workers by group commit), and loop.
 * When nothing is due a worker waits on the engine's condition variable until the earliest
 * due time or a kick (a submission, a control request, a step released due now, a server
 * event, resume, stop). A step never sleeps: a PowerVM job in flight is a due time.
 *
 * Forward: done moves to the next step (the operation is released due now, so other
 * operations get their turn between steps) or finishes it; wait parks it (waiting) until
 * its due time; retry parks it with exponential back-off and jitter, and becomes a failure
 * after the type's max_attempts; fail, a cancel mark or a passed deadline turn it around.
 * Reverse: the undo of the failing step and of every completed step before it runs in
 * reverse order (undos are idempotent: they tolerate "already gone"); then the operation
 * is failed, or cancelled when a cancel mark turned it around.
 *
 * LOCKS: e->mu guards paused, stopping, kicks, learned durations and busy; it is never held
 * while calling the journal or PowerVM.
 */
#include "pvm/engine.h"

#include "pvm/client.h"
#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/metrics.h"
#include "pvm/pvm_objects.h"
#include "pvm/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_TYPES   64
#define MAX_LEARNED 64

struct learned {
	char op[48];
	double ewma_ms;
	unsigned samples;
};

struct pvm_engine {
	struct pvm_engine_opts opts;
	struct pvm_queue *q;
	struct pvm_client *client;
	const struct pvm_op_type *types[MAX_TYPES];
	size_t ntypes;
	uint64_t boot_id; /* marks intents written by this process */
	char ms_uuid[64];
	char ms_href[512];

	pthread_t *workers;
	int nstarted;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool paused;                         /* guarded by mu */
	bool stopping;                       /* guarded by mu */
	uint64_t kicks;                      /* guarded by mu */
	int busy;                            /* guarded by mu */
	int running_workers;                 /* guarded by mu */
	struct learned learned[MAX_LEARNED]; /* guarded by mu */
	size_t nlearned;                     /* Limits SIGHUP may change while workers read them. */
	_Atomic int64_t retry_base_ms, retry_max_ms, poll_min_ms, poll_max_ms;

	_Atomic uint64_t steps_run, steps_retried, steps_failed;
	_Atomic uint64_t ops_succeeded, ops_failed, ops_cancelled, reconciles, duplicate_jobs;
	_Atomic uint64_t rand_state;
};

/* The step running on this thread: for pvm_step_def(). */
static _Thread_local const struct pvm_step_def *cur_step;

static uint64_t next_rand(struct pvm_engine *e)
{
	uint64_t x = atomic_load(&e->rand_state), n;
	do {
		n = x;
		n ^= n >> 12;
		n ^= n << 25;
		n ^= n >> 27;
	} while (!atomic_compare_exchange_weak(&e->rand_state, &x, n));
	return n * 0x2545F4914F6CDD1DULL;
}

/* ---- types --------------------------------------------------------------------------- */

int pvm_engine_register(struct pvm_engine *e, const struct pvm_op_type *t)
{
	if (!t || !t->name || !t->steps || !t->nsteps || !t->version)
		return PVM_EINVAL;
	if (e->ntypes == MAX_TYPES)
		return PVM_ETOOBIG;
	for (size_t i = 0; i < e->ntypes; i++)
		if (strcmp(e->types[i]->name, t->name) == 0 && e->types[i]->version == t->version)
			return PVM_EEXIST;
	e->types[e->ntypes++] = t;
	return 0;
}

static const struct pvm_op_type *find_version(struct pvm_engine *e, const char *name,
                                              uint32_t version)
{
	for (size_t i = 0; i < e->ntypes; i++)
		if (strcmp(e->types[i]->name, name) == 0 && e->types[i]->version == version)
			return e->types[i];
	return NULL;
}

const struct pvm_op_type *pvm_engine_type(struct pvm_engine *e, const char *name)
{
	const struct pvm_op_type *best = NULL;
	for (size_t i = 0; name && i < e->ntypes; i++) {
		const struct pvm_op_type *t = e->types[i];
		if (strcmp(t->name, name) != 0 || (t->test_only && !e->opts.enable_test_ops))
			continue;
		if (!best || t->version > best->version)
			best = t;
	}
	return best;
}

size_t pvm_engine_type_names(struct pvm_engine *e, const char **names, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < e->ntypes && n < max; i++) {
		const struct pvm_op_type *t = e->types[i];
		if (t->test_only && !e->opts.enable_test_ops)
			continue;
		bool seen = false;
		for (size_t j = 0; j < n; j++)
			seen = seen || strcmp(names[j], t->name) == 0;
		if (!seen)
			names[n++] = t->name;
	}
	return n;
}

int pvm_engine_prepare(struct pvm_engine *e, const char *type, const json_t *params, json_t **clean,
                       json_t **secrets, uint32_t *version, int64_t *deadline_ms, char *field,
                       size_t fn, char *msg, size_t mn)
{
	*clean = NULL;
	*secrets = NULL;
	const struct pvm_op_type *t = pvm_engine_type(e, type);
	if (!t) {
		snprintf(field, fn, "type");
		snprintf(msg, mn, "unknown operation type '%s'", type ? type : "");
		return PVM_EINVAL;
	}
	if (!json_is_object(params)) {
		snprintf(field, fn, "params");
		snprintf(msg, mn, "params must be a JSON object");
		return PVM_EINVAL;
	}
	if (t->validate && t->validate(params, field, fn, msg, mn) != 0)
		return PVM_EINVAL;
	json_t *c = json_deep_copy(params);
	json_t *s = json_object();
	if (!c || !s) {
		json_decref(c);
		json_decref(s);
		return PVM_ENOMEM;
	}
	for (const char *const *f = t->secret_fields; f && *f; f++) {
		json_t *v = json_object_get(c, *f);
		if (v) {
			json_object_set(s, *f, v);
			json_object_del(c, *f);
		}
	}
	*clean = c;
	if (json_object_size(s))
		*secrets = s;
	else
		json_decref(s);
	*version = t->version;
	*deadline_ms = t->deadline_ms ? pvm_now_ms() + t->deadline_ms : 0;
	return 0;
}

/* ---- learned job durations ------------------------------------------------------------ */

static int64_t expected_ms(struct pvm_engine *e, const char *op)
{
	int64_t v = 2000;
	pthread_mutex_lock(&e->mu);
	for (size_t i = 0; i < e->nlearned; i++)
		if (strcmp(e->learned[i].op, op) == 0) {
			v = (int64_t)e->learned[i].ewma_ms;
			break;
		}
	pthread_mutex_unlock(&e->mu);
	return v;
}

static void learn(struct pvm_engine *e, const char *op, int64_t ms)
{
	pthread_mutex_lock(&e->mu);
	size_t i;
	for (i = 0; i < e->nlearned; i++)
		if (strcmp(e->learned[i].op, op) == 0)
			break;
	if (i == e->nlearned && i < MAX_LEARNED) {
		pvm_strlcpy(e->learned[i].op, op, sizeof(e->learned[i].op));
		e->learned[i].ewma_ms = (double)ms;
		e->learned[i].samples = 0;
		e->nlearned++;
	}
	if (i < MAX_LEARNED) {
		struct learned *l = &e->learned[i];
		l->ewma_ms = l->samples ? 0.7 * l->ewma_ms + 0.3 * (double)ms : (double)ms;
		l->samples++;
	}
	pthread_mutex_unlock(&e->mu);
}

/* ---- step helpers ---------------------------------------------------------------------- */

const struct pvm_step_def *pvm_step_def(const struct pvm_step_ctx *ctx)
{
	(void)ctx;
	return cur_step;
}

static void vset(struct pvm_step_result *res, enum pvm_step_verdict v, int code, const char *fmt,
                 va_list ap)
{
	res->verdict = v;
	res->code = code;
	vsnprintf(res->error, sizeof(res->error), fmt, ap);
	if (!res->error_code[0])
		pvm_strlcpy(res->error_code, pvm_errname(code), sizeof(res->error_code));
}

void pvm_step_fail(struct pvm_step_result *res, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(res, PVM_STEP_FAIL, code, fmt, ap);
	va_end(ap);
}

void pvm_step_retry(struct pvm_step_result *res, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(res, PVM_STEP_RETRY, code, fmt, ap);
	va_end(ap);
}

void pvm_step_wait(struct pvm_step_result *res, int64_t due_ms, const char *reason)
{
	res->verdict = PVM_STEP_WAIT;
	res->due_ms = due_ms;
	res->wait_reason = reason;
}

static const char *step_key(const struct pvm_op_type *t, int step)
{
	return t->steps[step].name;
}

int pvm_step_intent(struct pvm_step_ctx *ctx, json_t *data)
{
	if (data && json_object_update(ctx->data, data)) {
		json_decref(data);
		return PVM_ENOMEM;
	}
	json_decref(data);
	json_t *set = json_pack("{s:O}", cur_step ? cur_step->name : "?", ctx->data);
	if (!set)
		return PVM_ENOMEM;
	struct pvm_op_update u;
	pvm_op_update_init(&u, ctx->op->id);
	u.checkpoint_set = set;
	int rc = pvm_queue_update(ctx->engine->q, &u);
	json_decref(set);
	return rc;
}

static void set_from_rest(struct pvm_step_result *res, int rc, const struct pvm_rest_error *err,
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

/* Next poll of a job that has run for elapsed ms: near the expected duration first, then a
 * quarter of the time it has run so far, within [poll_min, poll_max]. */
static int64_t next_poll(struct pvm_engine *e, const char *op, int64_t elapsed)
{
	int64_t exp = expected_ms(e, op);
	if (elapsed < exp) {
		/* The first poll goes just after the expected end, however long that is (the
		 * cap is for back-off, not for this one): jobs of 30 minutes need no polls
		 * every 30 s before they can have finished. */
		int64_t d = exp - elapsed + exp / 50 + 50;
		return d < atomic_load(&e->poll_min_ms) ? atomic_load(&e->poll_min_ms) : d;
	}
	int64_t d = elapsed / 8;
	if (d < atomic_load(&e->poll_min_ms))
		d = atomic_load(&e->poll_min_ms);
	if (d > atomic_load(&e->poll_max_ms))
		d = atomic_load(&e->poll_max_ms);
	return d;
}

/* An intent without a JobID (the request may or may not have reached the server), or a
 * job the server forgot (gone: an HMC restart): the step's reconcile (its undo reconcile
 * while undoing) reads the objects. Returns true when the caller should send the job
 * (again); false when res, *done or *unsettled say what happened. */
static bool settle(struct pvm_step_ctx *ctx, const char *key, const char *op, bool gone,
                   struct pvm_step_result *res, bool *done, bool *unsettled)
{
	struct pvm_engine *e = ctx->engine;
	const struct pvm_step_def *sd = cur_step;
	pvm_step_fn fn = sd ? (ctx->undoing ? sd->reconcile_undo : sd->reconcile) : NULL;
	json_t *ent = json_object_get(ctx->data, key);
	if (!fn) {
		if (ctx->undoing) { /* undo requests are meant to be repeatable */
			pvm_log(PVM_LOG_INFO, &ctx->log,
			        "step %s (undo): job %s %s; undo requests are repeatable, so it is "
			        "sent again",
			        sd ? sd->name : "?", op,
			        gone ? "vanished from the server"
			             : "had an intent without a recorded outcome");
			json_object_del(ctx->data, key);
			return true;
		}
		*unsettled = true;
		return false;
	}
	atomic_fetch_add(&e->reconciles, 1);
	const char *why =
	        gone ? "vanished from the server" : "had an intent without a recorded outcome";
	struct pvm_step_result r = {.verdict = PVM_STEP_WAIT, .progress = -1};
	ctx->job_gone = gone;
	fn(ctx, &r);
	ctx->job_gone = false;
	if (r.verdict == PVM_STEP_DONE) {
		atomic_fetch_add(&e->duplicate_jobs, 1);
		pvm_log(PVM_LOG_WARNING, &ctx->log,
		        "step %s%s: job %s %s; reconcile found its effect present, so it is "
		        "settled as done and not sent again",
		        sd->name, ctx->undoing ? " (undo)" : "", op, why);
		json_object_set_new(ent, "done", json_true());
		json_object_set_new(ent, "settled", json_string("reconcile"));
		*done = true;
		return false;
	}
	/* A transitional state while the job is known to be gone will not settle by itself. */
	if (r.verdict == PVM_STEP_FAIL || (r.verdict == PVM_STEP_RETRY && !gone)) {
		*res = r;
		return false;
	}
	pvm_log(PVM_LOG_INFO, &ctx->log,
	        "step %s%s: job %s %s; reconcile found its effect absent, so it is sent again",
	        sd->name, ctx->undoing ? " (undo)" : "", op, why);
	json_object_del(ctx->data, key);
	return true;
}

void pvm_step_job(struct pvm_step_ctx *ctx, const char *key, const char *root, const char *op,
                  const char *const *params, struct pvm_step_result *res, bool *done,
                  bool *unsettled)
{
	struct pvm_engine *e = ctx->engine;
	*done = false;
	*unsettled = false;
	json_t *ent = json_object_get(ctx->data, key);
	const char *job_id = json_string_value(json_object_get(ent, "job_id"));
	struct pvm_rest_error err = {0};
	const char *req = ctx->op->request_id[0] ? ctx->op->request_id : NULL;

	if (json_is_true(json_object_get(ent, "done"))) {
		*done = true;
		return;
	}
	if (!ctx->client) {
		pvm_step_fail(res, PVM_EINVAL, "no PowerVM client");
		return;
	}
	if (job_id) {
		int64_t started = (int64_t)json_integer_value(json_object_get(ent, "submitted"));
		if (ctx->op->deadline_ms && ctx->now_ms > ctx->op->deadline_ms) {
			pvm_job_cancel(ctx->client, job_id, req, &err);
			pvm_step_fail(res, PVM_ETIMEDOUT,
			              "job %s %s passed the operation's deadline and was cancelled",
			              op, job_id);
			return;
		}
		struct pvm_job *job = NULL;
		int rc = pvm_job_poll(ctx->client, job_id, req, &job, &err);
		if (rc == PVM_ENOTFOUND) {
			/* The server forgot the job (an HMC restart): settle from the objects. */
			pvm_log(PVM_LOG_WARNING, &ctx->log,
			        "job %s %s vanished from the server; settling the step from the "
			        "objects' state",
			        op, job_id);
			json_object_del(ent, "job_id");
			if (!settle(ctx, key, op, true, res, done, unsettled))
				return;
			goto submit;
		}
		if (rc) {
			set_from_rest(res, rc, &err, "polling job");
			return;
		}
		rc = pvm_job_outcome(job, &err);
		/* The job's own clock says how long it ran; the time of the poll that saw it
		 * finished is always later and would only ever raise the estimate. */
		int64_t ran = job->time_started > 0 && job->time_completed >= job->time_started
		                      ? job->time_completed - job->time_started
		                      : ctx->now_ms - started;
		pvm_job_free(job);
		if (rc == -EINPROGRESS) {
			int64_t el = ctx->now_ms - started;
			pvm_step_wait(res, ctx->now_ms + next_poll(e, op, el), "job running");
			return;
		}
		pvm_job_delete(ctx->client, job_id, req, NULL);
		if (rc) {
			/* A job sent twice (an intent without outcome, then again) can fail
			 * because the first one did the work: the objects decide. */
			const struct pvm_step_def *sd = cur_step;
			pvm_step_fn fn =
			        sd ? (ctx->undoing ? sd->reconcile_undo : sd->reconcile) : NULL;
			struct pvm_step_result r = {.verdict = PVM_STEP_WAIT, .progress = -1};
			ctx->job_gone = true;
			if (fn)
				fn(ctx, &r);
			ctx->job_gone = false;
			if (r.verdict == PVM_STEP_DONE) {
				pvm_log(PVM_LOG_WARNING, &ctx->log,
				        "job %s %s failed (%s) but its effect is present: the step "
				        "is "
				        "done",
				        op, job_id, err.message);
				json_object_set_new(ent, "done", json_true());
				json_object_set_new(ent, "settled", json_string("reconcile"));
				*done = true;
				return;
			}
			if (err.reason[0])
				pvm_strlcpy(res->error_code, err.reason, sizeof(res->error_code));
			pvm_step_fail(res, rc, "job %s failed: %s", op,
			              err.message[0] ? err.message : pvm_strerror(rc));
			return;
		}
		learn(e, op, ran);
		json_object_set_new(ent, "done", json_true());
		*done = true;
		return;
	}
	if (ent && json_object_get(ent, "intent") &&
	    !settle(ctx, key, op, false, res, done, unsettled))
		return;
submit:;
	/* Intent before effect. */
	json_t *intent = json_pack("{s:{s:s, s:I, s:I}}", key, "intent", op, "boot",
	                           (json_int_t)e->boot_id, "submitted", (json_int_t)ctx->now_ms);
	int rc = pvm_step_intent(ctx, intent);
	if (rc) {
		pvm_step_retry(res, rc, "recording the intent to run %s: %s", op, pvm_strerror(rc));
		return;
	}
	size_t np = 0;
	struct pvm_job_param jp[16];
	for (; params && params[2 * np] && np < 16; np++) {
		jp[np].name = params[2 * np];
		jp[np].value = params[2 * np + 1];
	}
	char id[64];
	rc = pvm_job_submit(ctx->client, root, op, jp, np, req, id, sizeof(id), &err);
	if (rc && err.http_status == 409) {
		/* "A job of this kind already runs for this object" (HSCL3B16): ours, sent
		 * before a crash, or another client's. Keep the intent: the next run settles it
		 * from the objects once that job has finished. */
		pvm_log(PVM_LOG_INFO, &ctx->log, "%s refused: %s; waiting for the running job", op,
		        err.message);
		pvm_step_wait(res, ctx->now_ms + 4 * atomic_load(&e->poll_min_ms),
		              "a job of this kind runs");
		return;
	}
	if (rc) {
		if (!pvm_client_transient(rc)) /* refused: it certainly did not start */
			json_object_del(ctx->data, key);
		set_from_rest(res, rc, &err, op);
		return;
	}
	/* Recorded by the step's own commit, which follows at once: a second synced write here
	 * would not narrow the window between the server accepting the job and the journal
	 * knowing its id (a crash there leaves an intent without JobID, which reconcile
	 * settles). */
	json_object_set_new(json_object_get(ctx->data, key), "job_id", json_string(id));
	pvm_step_wait(res, ctx->now_ms + next_poll(e, op, 0), "job submitted");
}

bool pvm_step_send_guard(struct pvm_step_ctx *ctx, const char *key, struct pvm_step_result *res)
{
	json_t *ent = json_object_get(ctx->data, key);
	json_t *at = json_object_get(ent, "sent_at");
	if (json_is_integer(at)) {
		int64_t until =
		        (int64_t)json_integer_value(at) + ctx->engine->opts.inflight_window_ms;
		if (ctx->now_ms < until) {
			pvm_log(PVM_LOG_INFO, &ctx->log,
			        "%s: an earlier request got no answer and may still land; looking "
			        "again in %lld ms before sending it again",
			        key, (long long)(until - ctx->now_ms));
			pvm_step_wait(res, until, "an earlier request may still be in flight");
			return false;
		}
	}
	int rc = pvm_step_intent(ctx,
	                         json_pack("{s:{s:I}}", key, "sent_at", (json_int_t)ctx->now_ms));
	if (rc) {
		pvm_step_retry(res, rc, "recording the intent of %s: %s", key, pvm_strerror(rc));
		return false;
	}
	return true;
}

void pvm_step_send_answered(struct pvm_step_ctx *ctx, const char *key)
{
	json_object_del(ctx->data, key);
}

bool pvm_step_settle_inflight(struct pvm_step_ctx *ctx, const char *key,
                              struct pvm_step_result *res)
{
	if (!json_object_get(json_object_get(ctx->data, key), "sent_at"))
		return true;
	if (!pvm_step_send_guard(ctx, key, res))
		return false;
	pvm_step_send_answered(ctx, key);
	return true;
}

/* ---- running one step -------------------------------------------------------------------- */

static int64_t backoff_ms(struct pvm_engine *e, uint32_t attempt)
{
	int64_t d = atomic_load(&e->retry_base_ms);
	for (uint32_t i = 1; i < attempt && d < atomic_load(&e->retry_max_ms); i++)
		d *= 2;
	if (d > atomic_load(&e->retry_max_ms))
		d = atomic_load(&e->retry_max_ms);
	/* Jitter: between half and the whole delay. */
	return d / 2 + (int64_t)(next_rand(e) % (uint64_t)(d / 2 + 1));
}

static void count_final(struct pvm_engine *e, const char *type, enum pvm_op_state s)
{
	if (e->opts.metrics && (pvm_op_state_final(s) || s == PVM_OP_FAILED)) {
		char labels[128];
		snprintf(labels, sizeof(labels), "type=\"%s\",outcome=\"%s\"", type,
		         pvm_op_state_name(s));
		pvm_metrics_inc(e->opts.metrics, "powervmd_operations_finished_total", labels, 1);
	}
	if (s == PVM_OP_SUCCEEDED)
		atomic_fetch_add(&e->ops_succeeded, 1);
	else if (s == PVM_OP_FAILED)
		atomic_fetch_add(&e->ops_failed, 1);
	else if (s == PVM_OP_CANCELLED)
		atomic_fetch_add(&e->ops_cancelled, 1);
}

/* Commits u; logs a failure to commit (the operation stays claimed in the journal and
 * returns to the queue at the next start). */
static int commit(struct pvm_engine *e, const char *type, struct pvm_op_update *u,
                  const struct pvm_log_ctx *log)
{
	int rc = pvm_queue_update(e->q, u);
	if (rc)
		pvm_log(PVM_LOG_ERROR, log, "cannot record the step's result: %s",
		        pvm_strerror(rc));
	else if (u->due_ms != PVM_KEEP)
		pvm_engine_notify(e);
	if (rc == 0 && u->new_state != PVM_KEEP)
		count_final(e, type, (enum pvm_op_state)u->new_state);
	return rc;
}

/* Starts the way back from a forward step: reverting, undo from the current step. */
static void turn_around(struct pvm_engine *e, const struct pvm_op *op, const char *why,
                        const char *code, const struct pvm_log_ctx *log)
{
	pvm_log(PVM_LOG_WARNING, log, "%s at step %d: %s; undoing the completed steps", op->type,
	        (int)op->step, why);
	struct pvm_op_update u;
	pvm_op_update_init(&u, op->id);
	u.new_state = PVM_OP_REVERTING;
	u.direction = PVM_DIR_REVERT;
	u.error = why;
	u.error_code = code;
	u.due_ms = pvm_now_ms();
	commit(e, op->type, &u, log);
}

/* The end of the way back. */
static void finish_revert(struct pvm_engine *e, const struct pvm_op *op,
                          const struct pvm_log_ctx *log)
{
	bool cancel = op->flags & PVM_OPF_CANCEL_REQUESTED;
	struct pvm_op_update u;
	pvm_op_update_init(&u, op->id);
	u.new_state = cancel ? PVM_OP_CANCELLED : PVM_OP_FAILED;
	u.step = 0;
	commit(e, op->type, &u, log);
	pvm_log(cancel ? PVM_LOG_INFO : PVM_LOG_WARNING, log, "%s %s: %s", op->type,
	        cancel ? "cancelled" : "failed", op->error ? op->error : "");
}

/* Runs one step of op (claimed by this worker) and commits its result. Returns true when
 * the step was done, another forward step follows, and the worker keeps the operation to
 * run it at once (may_keep): that saves releasing and claiming it again (two synced
 * transactions). Otherwise the operation is released, parked or finished. */
static bool run_step(struct pvm_engine *e, struct pvm_op *op, bool may_keep)
{
	bool keep = false;
	struct pvm_log_ctx log = {op->id, op->instance_uuid, op->request_id};
	const struct pvm_op_type *t = find_version(e, op->type, op->table_version);
	if (!t) {
		const struct pvm_op_type *cur = pvm_engine_type(e, op->type);
		char why[256];
		if (cur)
			snprintf(why, sizeof(why),
			         "started under step table v%u of %s, which this build no longer "
			         "has (it runs v%u); submit it again",
			         op->table_version, op->type, cur->version);
		else
			snprintf(why, sizeof(why), "operation type %s is not known to this build",
			         op->type);
		if (op->state == PVM_OP_RUNNING) {
			turn_around(e, op, why, "PVM_EVERSION", &log);
		} else {
			struct pvm_op_update u;
			pvm_op_update_init(&u, op->id);
			u.new_state = PVM_OP_FAILED;
			u.error = why;
			u.error_code = "PVM_EVERSION";
			commit(e, op->type, &u, &log);
		}
		return false;
	}
	bool reverse = op->state == PVM_OP_REVERTING;
	int64_t now = pvm_now_ms();
	if (!reverse) {
		if (op->flags & PVM_OPF_CANCEL_REQUESTED) {
			turn_around(e, op, "cancel requested", "cancelled", &log);
			return false;
		}
		if (op->deadline_ms && now > op->deadline_ms &&
		    !json_object_get(json_object_get(op->checkpoints, step_key(t, op->step)),
		                     "job_id")) {
			turn_around(e, op, "the operation's deadline passed", "PVM_ETIMEDOUT",
			            &log);
			return false;
		}
	}
	if (op->step < 0 || (size_t)op->step >= t->nsteps) {
		if (reverse) {
			finish_revert(e, op, &log);
			return false;
		}
		struct pvm_op_update u;
		pvm_op_update_init(&u, op->id);
		u.new_state = PVM_OP_SUCCEEDED;
		u.progress = 100;
		commit(e, op->type, &u, &log);
		return false;
	}
	const struct pvm_step_def *sd = &t->steps[op->step];
	if (reverse && !sd->undo) {
		struct pvm_op_update u;
		pvm_op_update_init(&u, op->id);
		u.step = op->step - 1;
		u.due_ms = now;
		if (op->step == 0) {
			finish_revert(e, op, &log);
			return false;
		}
		commit(e, op->type, &u, &log);
		return false;
	}

	json_t *data = json_object_get(op->checkpoints, sd->name);
	data = data ? json_deep_copy(data) : json_object();
	json_t *secrets = NULL;
	if (op->flags & PVM_OPF_HAS_SECRETS)
		pvm_queue_get_secrets(e->q, op->id, &secrets);
	struct pvm_step_ctx ctx = {.engine = e,
	                           .client = e->client,
	                           .op = op,
	                           .data = data,
	                           .secrets = secrets,
	                           .step = op->step,
	                           .undoing = reverse,
	                           .resumed = (op->flags & PVM_OPF_RECOVERED) != 0,
	                           .now_ms = now,
	                           .log = log,
	                           .ms_uuid = e->ms_uuid,
	                           .ms_href = e->ms_href,
	                           .config = e->opts.config};
	struct pvm_step_result res = {.verdict = PVM_STEP_DONE, .progress = -1};
	cur_step = sd;
	int64_t t0 = pvm_mono_ns();
	(reverse ? sd->undo : sd->run)(&ctx, &res);
	cur_step = NULL;
	if (e->opts.metrics) {
		char labels[160];
		snprintf(labels, sizeof(labels), "type=\"%s\",step=\"%s\"", op->type,
		         reverse ? "undo" : sd->name);
		pvm_metrics_observe(e->opts.metrics, "powervmd_step_seconds", labels,
		                    (double)(pvm_mono_ns() - t0) / 1e9);
		if (res.verdict == PVM_STEP_RETRY)
			pvm_metrics_inc(e->opts.metrics, "powervmd_step_retries_total", labels, 1);
	}
	atomic_fetch_add(&e->steps_run, 1);
	json_decref(secrets);

	struct pvm_op_update u;
	pvm_op_update_init(&u, op->id);
	json_t *cp = json_pack("{s:O}", sd->name, data);
	u.checkpoint_set = cp;
	if (res.result)
		u.result = res.result;
	if (res.progress >= 0 && res.progress <= 100)
		u.progress = res.progress;
	now = pvm_now_ms();
	switch (res.verdict) {
	case PVM_STEP_DONE:
		if (!reverse) {
			u.step = op->step + 1;
			if ((size_t)u.step >= t->nsteps) {
				u.new_state = PVM_OP_SUCCEEDED;
				u.progress = 100;
			} else {
				if (may_keep)
					keep = true; /* no due time: still claimed by this worker */
				else
					u.due_ms = now;
				if (res.progress < 0)
					u.progress = (int32_t)(100 * u.step / (int32_t)t->nsteps);
			}
		} else if (op->step == 0) {
			json_decref(cp);
			if (res.result)
				json_decref(res.result);
			u.checkpoint_set = NULL;
			/* record the last undo's data, then finish */
			struct pvm_op_update last;
			pvm_op_update_init(&last, op->id);
			json_t *cp2 = json_pack("{s:O}", sd->name, data);
			last.checkpoint_set = cp2;
			pvm_queue_update(e->q, &last);
			json_decref(cp2);
			json_decref(data);
			finish_revert(e, op, &log);
			return false;
		} else {
			u.step = op->step - 1;
			u.due_ms = now;
		}
		break;
	case PVM_STEP_WAIT:
		u.new_state = PVM_OP_WAITING;
		u.due_ms = res.due_ms > 0 ? res.due_ms : now + atomic_load(&e->poll_min_ms);
		break;
	case PVM_STEP_RETRY:
		atomic_fetch_add(&e->steps_retried, 1);
		u.record_attempt = true;
		u.keep_error = reverse; /* the failure that turned it around stays its error */
		u.error = res.error;
		u.error_code = res.error_code;
		if (op->attempts + 1 >= (t->max_attempts ? t->max_attempts : 5) && !reverse) {
			char why[700];
			snprintf(why, sizeof(why), "gave up after %u attempts: %s",
			         op->attempts + 1, res.error);
			u.error = why;
			u.new_state = PVM_OP_REVERTING;
			u.direction = PVM_DIR_REVERT;
			u.due_ms = now;
			pvm_log(PVM_LOG_WARNING, &log, "step %s %s; undoing", sd->name, why);
			commit(e, op->type, &u, &log);
			goto out;
		}
		pvm_log(PVM_LOG_INFO, &log, "step %s: %s; retrying (attempt %u)", sd->name,
		        res.error, op->attempts + 2);
		u.new_state = PVM_OP_WAITING;
		u.due_ms = now +
		           (res.due_ms > now ? res.due_ms - now : backoff_ms(e, op->attempts + 1));
		break;
	case PVM_STEP_FAIL:
		atomic_fetch_add(&e->steps_failed, 1);
		u.record_attempt = true;
		u.keep_error = reverse;
		u.error = res.error;
		u.error_code = res.error_code;
		if (!reverse) {
			pvm_log(PVM_LOG_WARNING, &log, "step %s failed: %s; undoing", sd->name,
			        res.error);
			u.new_state = PVM_OP_REVERTING;
			u.direction = PVM_DIR_REVERT;
			u.due_ms = now;
		} else {
			/* An undo that cannot complete: note it and go on undoing. */
			pvm_log(PVM_LOG_ERROR, &log,
			        "undo of step %s failed: %s; continuing (the start-up scrub "
			        "removes what is left)",
			        sd->name, res.error);
			if (op->step == 0) {
				commit(e, op->type, &u, &log);
				finish_revert(e, op, &log);
				goto out;
			}
			u.step = op->step - 1;
			u.due_ms = now;
		}
		break;
	}
	if (commit(e, op->type, &u, &log) != 0)
		keep = false;
out:
	json_decref(cp);
	json_decref(res.result);
	json_decref(data);
	return keep;
}

/* ---- the pool ------------------------------------------------------------------------ */

struct worker_arg {
	struct pvm_engine *e;
	int index;
};

static void wait_for_work(struct pvm_engine *e, uint64_t seen, int64_t until_ms)
{
	pthread_mutex_lock(&e->mu);
	if (e->kicks == seen && !e->stopping) {
		int64_t wait_ms = until_ms - pvm_now_ms();
		if (wait_ms > 1000)
			wait_ms = 1000; /* bounded: also notices due times set by others */
		if (wait_ms > 0) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			int64_t ns = ts.tv_nsec + wait_ms * 1000000;
			ts.tv_sec += ns / 1000000000;
			ts.tv_nsec = ns % 1000000000;
			pthread_cond_timedwait(&e->cv, &e->mu, &ts);
		}
	}
	pthread_mutex_unlock(&e->mu);
}

static void *worker_main(void *arg)
{
	struct worker_arg *wa = arg;
	struct pvm_engine *e = wa->e;
	char name[16];
	snprintf(name, sizeof(name), "pvm-worker-%d", wa->index);
	pthread_setname_np(pthread_self(), name);
	free(wa);
	for (;;) {
		pthread_mutex_lock(&e->mu);
		while (e->paused && !e->stopping)
			pthread_cond_wait(&e->cv, &e->mu);
		bool stop = e->stopping;
		uint64_t seen = e->kicks;
		pthread_mutex_unlock(&e->mu);
		if (stop)
			break;
		int64_t now = pvm_now_ms(), due = INT64_MAX;
		if (pvm_queue_next_due(e->q, &due) != 0 || due > now) {
			wait_for_work(e, seen, due);
			continue;
		}
		struct pvm_op *op = NULL;
		int rc = pvm_queue_claim(e->q, now, &op, &due);
		if (rc == PVM_ENOTFOUND)
			continue;
		if (rc) {
			pvm_error("worker: cannot claim from the journal: %s", pvm_strerror(rc));
			wait_for_work(e, seen, pvm_now_ms() + 1000);
			continue;
		}
		pthread_mutex_lock(&e->mu);
		e->busy++;
		pthread_mutex_unlock(
		        &e->mu); /* Consecutive forward steps of one operation run here without releasing it,
		 * a bounded number of times, unless the engine is stopping or pausing. */
		uint64_t id = op->id;
		for (int chain = 0; op; chain++) {
			pthread_mutex_lock(&e->mu);
			bool may_keep = chain < 16 && !e->stopping && !e->paused;
			pthread_mutex_unlock(&e->mu);
			bool keep = run_step(e, op, may_keep);
			pvm_op_free(op);
			op = NULL;
			if (!keep)
				break;
			int grc = pvm_queue_get(e->q, id, &op);
			if (grc == 0 && op->state == PVM_OP_RUNNING)
				continue;
			pvm_op_free(op);
			op = NULL;
			if (grc) { /* cannot read it back: release it for a later claim */
				struct pvm_op_update u;
				pvm_op_update_init(&u, id);
				u.due_ms = pvm_now_ms();
				pvm_queue_update(e->q, &u);
				pvm_engine_notify(e);
			}
		}
		pthread_mutex_lock(&e->mu);
		e->busy--;
		pthread_mutex_unlock(&e->mu);
	}
	pthread_mutex_lock(&e->mu);
	e->running_workers--;
	pthread_cond_broadcast(&e->cv);
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

void pvm_engine_set_limits(struct pvm_engine *e, int64_t retry_base_ms, int64_t retry_max_ms,
                           int64_t poll_min_ms, int64_t poll_max_ms)
{
	atomic_store(&e->retry_base_ms, retry_base_ms > 0 ? retry_base_ms : 1000);
	atomic_store(&e->retry_max_ms, retry_max_ms > 0 ? retry_max_ms : 60000);
	atomic_store(&e->poll_min_ms, poll_min_ms > 0 ? poll_min_ms : 500);
	atomic_store(&e->poll_max_ms, poll_max_ms > 0 ? poll_max_ms : 30000);
}

int pvm_engine_create(const struct pvm_engine_opts *opts, struct pvm_queue *q,
                      struct pvm_client *client, struct pvm_engine **out)
{
	if (!opts || !q || opts->workers < 0 || opts->workers > 1024)
		return PVM_EINVAL;
	struct pvm_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return PVM_ENOMEM;
	e->opts = *opts;
	if (!e->opts.retry_base_ms)
		e->opts.retry_base_ms = 1000;
	if (!e->opts.retry_max_ms)
		e->opts.retry_max_ms = 60000;
	if (!e->opts.poll_min_ms)
		e->opts.poll_min_ms = 500;
	if (!e->opts.poll_max_ms)
		e->opts.poll_max_ms = 30000;
	if (e->opts.inflight_window_ms <= 0)
		e->opts.inflight_window_ms = 120000;
	pvm_engine_set_limits(e, e->opts.retry_base_ms, e->opts.retry_max_ms, e->opts.poll_min_ms,
	                      e->opts.poll_max_ms);
	e->q = q;
	e->client = client;
	e->paused = opts->paused;
	if (opts->ms_uuid)
		pvm_strlcpy(e->ms_uuid, opts->ms_uuid, sizeof(e->ms_uuid));
	if (opts->ms_href)
		pvm_strlcpy(e->ms_href, opts->ms_href, sizeof(e->ms_href));
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	e->boot_id =
	        ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 40);
	if (!e->boot_id)
		e->boot_id = 1;
	atomic_store(&e->rand_state, e->boot_id | 1);
	if (opts->metrics) {
		pvm_metrics_describe(opts->metrics, "powervmd_operations_finished_total",
		                     PVM_METRIC_COUNTER,
		                     "Operations finished, by type and outcome");
		pvm_metrics_describe(opts->metrics, "powervmd_step_seconds", PVM_METRIC_HISTOGRAM,
		                     "Time one step took, by operation type and step");
		pvm_metrics_describe(opts->metrics, "powervmd_step_retries_total",
		                     PVM_METRIC_COUNTER, "Steps that ended in a transient error");
	}
	pthread_mutex_init(&e->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&e->cv, &ca);
	pthread_condattr_destroy(&ca);
	*out = e;
	return 0;
}

int pvm_engine_start(struct pvm_engine *e)
{
	e->workers = calloc((size_t)e->opts.workers + 1, sizeof(pthread_t));
	if (!e->workers)
		return PVM_ENOMEM;
	for (int i = 0; i < e->opts.workers; i++) {
		struct worker_arg *wa = malloc(sizeof(*wa));
		if (!wa)
			return PVM_ENOMEM;
		wa->e = e;
		wa->index = i;
		pthread_mutex_lock(&e->mu);
		e->running_workers++;
		pthread_mutex_unlock(&e->mu);
		int rc = pthread_create(&e->workers[i], NULL, worker_main, wa);
		if (rc) {
			free(wa);
			pthread_mutex_lock(&e->mu);
			e->running_workers--;
			pthread_mutex_unlock(&e->mu);
			return -rc;
		}
		e->nstarted++;
	}
	pvm_info("engine: %d workers started%s", e->nstarted, e->paused ? " (paused)" : "");
	return 0;
}

void pvm_engine_stop(struct pvm_engine *e, int64_t grace_ms)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->mu);
	e->stopping = true;
	pthread_cond_broadcast(&e->cv);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t ns = ts.tv_nsec + (grace_ms > 0 ? grace_ms : 0) * 1000000;
	ts.tv_sec += ns / 1000000000;
	ts.tv_nsec = ns % 1000000000;
	while (e->running_workers > 0)
		if (pthread_cond_timedwait(&e->cv, &e->mu, &ts) == ETIMEDOUT)
			break;
	int left = e->running_workers;
	pthread_mutex_unlock(&e->mu);
	if (left) {
		pvm_warn("engine: %d steps still running after the %lld ms grace period; they "
		         "resume from their last checkpoint at the next start",
		         left, (long long)grace_ms);
		return;
	}
	for (int i = 0; i < e->nstarted; i++)
		pthread_join(e->workers[i], NULL);
	e->nstarted = 0;
}

void pvm_engine_destroy(struct pvm_engine *e)
{
	if (!e)
		return;
	free(e->workers);
	pthread_mutex_destroy(&e->mu);
	pthread_cond_destroy(&e->cv);
	free(e);
}

void pvm_engine_pause(struct pvm_engine *e)
{
	pthread_mutex_lock(&e->mu);
	e->paused = true;
	pthread_mutex_unlock(&e->mu);
	pvm_info("engine: paused; no step starts until resumed");
}

void pvm_engine_resume(struct pvm_engine *e)
{
	pthread_mutex_lock(&e->mu);
	e->paused = false;
	e->kicks++;
	pthread_cond_broadcast(&e->cv);
	pthread_mutex_unlock(&e->mu);
	pvm_info("engine: resumed");
}

bool pvm_engine_paused(struct pvm_engine *e)
{
	pthread_mutex_lock(&e->mu);
	bool p = e->paused;
	pthread_mutex_unlock(&e->mu);
	return p;
}

void pvm_engine_notify(struct pvm_engine *e)
{
	pthread_mutex_lock(&e->mu);
	e->kicks++;
	pthread_cond_broadcast(&e->cv);
	pthread_mutex_unlock(&e->mu);
}

void pvm_engine_instance_event(struct pvm_engine *e, const char *instance_uuid)
{
	struct pvm_queue_filter f = {.state = PVM_OP_WAITING, .instance_uuid = instance_uuid};
	struct pvm_op **ops = NULL;
	size_t n = 0;
	if (!instance_uuid || pvm_queue_list(e->q, &f, &ops, &n, NULL) != 0)
		return;
	int64_t now = pvm_now_ms();
	for (size_t i = 0; i < n; i++)
		pvm_queue_wake(e->q, ops[i]->id, now);
	pvm_op_list_free(ops, n);
	if (n)
		pvm_engine_notify(e);
}

void pvm_engine_partition_event(struct pvm_engine *e, const char *partition_uuid)
{
	struct pvm_queue_filter f = {.state = PVM_OP_WAITING};
	struct pvm_op **ops = NULL;
	size_t n = 0, woken = 0;
	if (!partition_uuid || pvm_queue_list(e->q, &f, &ops, &n, NULL) != 0)
		return;
	int64_t now = pvm_now_ms();
	for (size_t i = 0; i < n; i++) {
		char derived[37];
		if (ops[i]->instance_uuid[0] &&
		    pvm_lpar_uuid_from_instance(ops[i]->instance_uuid, derived) == 0 &&
		    strcasecmp(derived, partition_uuid) == 0 &&
		    pvm_queue_wake(e->q, ops[i]->id, now) == 0)
			woken++;
	}
	pvm_op_list_free(ops, n);
	if (woken)
		pvm_engine_notify(e);
}

struct pvm_metrics *pvm_engine_metrics(struct pvm_engine *e)
{
	return e ? e->opts.metrics : NULL;
}

int pvm_engine_reconcile(struct pvm_engine *e, const json_t *view, json_t **report)
{
	json_t *insts = json_object_get(view, "instances");
	if (!json_is_array(insts))
		return PVM_EINVAL;
	json_t *cancelled = json_array(), *kept = json_array(), *unknown = json_array();
	struct pvm_op **ops = NULL;
	size_t n = 0;
	int rc = 0;
	for (int s = PVM_OP_QUEUED; s <= PVM_OP_REVERTING && rc == 0; s++) {
		struct pvm_queue_filter f = {.state = s};
		rc = pvm_queue_list(e->q, &f, &ops, &n, NULL);
		for (size_t i = 0; rc == 0 && i < n; i++) {
			struct pvm_op *op = ops[i];
			if (!op->instance_uuid[0])
				continue;
			json_t *match = NULL, *it;
			size_t k;
			json_array_foreach(insts, k, it)
			{
				const char *u = json_string_value(json_object_get(it, "uuid"));
				if (u && strcasecmp(u, op->instance_uuid) == 0)
					match = it;
			}
			json_t *task = match ? json_object_get(match, "task_state") : NULL;
			bool waited_for = match && task && !json_is_null(task);
			if (waited_for || op->state == PVM_OP_REVERTING) {
				json_array_append_new(kept, json_integer((json_int_t)op->id));
				continue;
			}
			enum pvm_op_state after;
			if (pvm_queue_cancel(e->q, op->id, &after) == 0) {
				json_array_append_new(cancelled, json_integer((json_int_t)op->id));
				struct pvm_log_ctx log = {op->id, op->instance_uuid,
				                          op->request_id};
				pvm_log(PVM_LOG_WARNING, &log,
				        "reconcile: nova no longer waits for this %s (%s); rolling "
				        "it "
				        "back",
				        op->type,
				        match ? "no task in progress" : "instance unknown to nova");
			}
			if (!match)
				json_array_append_new(unknown, json_string(op->instance_uuid));
		}
		pvm_op_list_free(ops, n);
		ops = NULL;
		n = 0;
	}
	atomic_fetch_add(&e->reconciles, 1);
	pvm_engine_notify(e);
	if (rc) {
		json_decref(cancelled);
		json_decref(kept);
		json_decref(unknown);
		return rc;
	}
	*report = json_pack("{s:o, s:o, s:o}", "cancelled", cancelled, "kept", kept,
	                    "unknown_instances", unknown);
	return *report ? 0 : PVM_ENOMEM;
}

void pvm_engine_stats(struct pvm_engine *e, struct pvm_engine_stats *st)
{
	st->steps_run = atomic_load(&e->steps_run);
	st->steps_retried = atomic_load(&e->steps_retried);
	st->steps_failed = atomic_load(&e->steps_failed);
	st->ops_succeeded = atomic_load(&e->ops_succeeded);
	st->ops_failed = atomic_load(&e->ops_failed);
	st->ops_cancelled = atomic_load(&e->ops_cancelled);
	st->reconciles = atomic_load(&e->reconciles);
	st->duplicate_jobs = atomic_load(&e->duplicate_jobs);
	pthread_mutex_lock(&e->mu);
	st->busy_workers = e->busy;
	pthread_mutex_unlock(&e->mu);
}
