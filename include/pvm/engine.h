/* pvm/engine.h: the step engine and worker pool (workers/).
 *
 * An operation type is a versioned table of steps. A fixed pool of worker threads claims
 * due operations from the journal (pvm/queue.h) and runs ONE step of each, then commits the
 * result and takes the next due operation. A step returns done, wait (a PowerVM job in
 * flight, a gate), retry (a transient error: back-off with jitter) or fail (permanent: the
 * completed steps are undone in reverse order, then the operation is failed, or cancelled
 * when a cancel mark caused it). Threads never sleep on PowerVM: waiting is a due time in
 * the journal, woken by the timer, a submission, a control request or a server event.
 *
 * Intent before effect: a step that sends a non-idempotent request first commits an intent
 * (pvm_step_intent), then sends, then commits the outcome (the JobID). After a restart a
 * step whose intent has no outcome is settled by its reconcile function from the objects'
 * state before anything is sent again; a recorded JobID is polled, never resubmitted.
 *
 * Thread-safety: every function may be called from any thread once the engine is created,
 * except pvm_engine_destroy(), called once after pvm_engine_stop().
 */
#ifndef PVM_ENGINE_H
#define PVM_ENGINE_H

#include "pvm/log.h"
#include "pvm/queue.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct pvm_client;
struct pvm_engine;
struct pvm_metrics;
struct pvm_config;

enum pvm_step_verdict {
	PVM_STEP_DONE = 0, /* the step is complete: go on to the next */
	PVM_STEP_WAIT,     /* in flight: come back at res->due_ms (0: the engine's poll time) */
	PVM_STEP_RETRY,    /* transient failure: come back after back-off (counts an attempt) */
	PVM_STEP_FAIL      /* permanent failure: undo the completed steps, then failed */
};

struct pvm_step_result {
	enum pvm_step_verdict verdict;
	int64_t due_ms;          /* WAIT/RETRY: when to run again (epoch ms); 0: engine's choice */
	int code;                /* PVM_E* / -errno of a failure */
	char error[512];         /* message of a failure (kept in the operation's history) */
	char error_code[64];     /* "HSCL3205", "PVM_ETIMEDOUT", ... */
	const char *wait_reason; /* WAIT: "job PowerOn 12 running", "gate network_plugged" */
	json_t *result;          /* optional: replaces the operation's result (stolen) */
	int progress;            /* 0..100, or -1: unchanged */
};

struct pvm_step_ctx {
	struct pvm_engine *engine;
	struct pvm_client *client; /* NULL when the engine runs without PowerVM (unit tests) */
	const struct pvm_op *op;   /* the operation as claimed (params, signals, checkpoints) */
	json_t *data;              /* this step's checkpoint object; changes are committed with
				       the step's result, or at once by pvm_step_intent() */
	json_t *secrets;           /* the operation's secret params, or NULL */
	int step;                  /* index of the step running */
	bool undoing;              /* running the undo of this step */
	bool resumed;              /* first run of this step in this process after a restart */
	int64_t now_ms;
	struct pvm_log_ctx log; /* op id, instance, request id: for pvm_log() */
	const char *ms_uuid;    /* the managed system (pvm_engine_opts.ms_uuid) */
	const char *ms_href;    /* its SELF link (pvm_engine_opts.ms_href; "" when unknown) */
	const struct pvm_config *config; /* pvm_engine_opts.config: NULL in unit tests */
	bool job_gone;                   /* in a reconcile: the step's job is known not to run any
				       more (it vanished from the server, or it ended), so a
				       transitional state will not move on by itself */
};

/* The step definition running (for helpers that call its reconcile). */
const struct pvm_step_def *pvm_step_def(const struct pvm_step_ctx *ctx);

typedef void (*pvm_step_fn)(struct pvm_step_ctx *ctx, struct pvm_step_result *res);

struct pvm_step_def {
	const char *name;
	pvm_step_fn run;            /* do */
	pvm_step_fn undo;           /* NULL: the step changed nothing that needs undoing */
	pvm_step_fn reconcile;      /* settles an intent without outcome: DONE when the effect is
				   there, FAIL when it cannot be, RETRY to read again later;
				   any other verdict means "not done: run the step again" */
	pvm_step_fn reconcile_undo; /* the same for the undo's own requests (NULL: an undo
				       intent without outcome is sent again) */
};

struct pvm_op_type {
	const char *name;
	uint32_t version; /* step-table version, recorded on each operation */
	const struct pvm_step_def *steps;
	size_t nsteps;
	uint32_t max_attempts; /* per step before a transient error becomes permanent */
	int64_t deadline_ms;   /* default deadline from submission (0: none) */
	/* Checks params; on error names the field (e.g. "params.flavor.vcpus") and says why. */
	int (*validate)(const json_t *params, char *field, size_t fn, char *msg, size_t mn);
	const char *const *secret_fields; /* NULL-terminated top-level params moved to the
					     journal's secrets table, or NULL */
	bool test_only;                   /* accepted only with powervm_enable_test_ops */
	bool requires_instance;           /* refused without an instance_uuid */
	bool internal;                    /* submitted by powervmd itself (the image cache),
					     refused by POST /v1/operations */
};

/* ---- step helpers ---- */

/* Commits ctx->data merged with data (stolen) as this step's intent, synchronously, keeping
 * the claim. Call it before a non-idempotent request. Returns 0 or a journal error. */
int pvm_step_intent(struct pvm_step_ctx *ctx, json_t *data);

/* Sets res to a failure from code and message (printf-style). */
void pvm_step_fail(struct pvm_step_result *res, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
void pvm_step_retry(struct pvm_step_result *res, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
void pvm_step_wait(struct pvm_step_result *res, int64_t due_ms, const char *reason);

/* Runs PowerVM job `op` on `root` (e.g. "uom/LogicalPartition/UUID") as part of a step,
 * with intent before effect, recorded under ctx->data[key]: the first call commits the
 * intent, submits and records the JobID, and returns WAIT until the first poll (near the
 * expected duration learned for `op`); later calls poll once and return WAIT with back-off,
 * DONE when the job completed OK (*done = true), or FAIL/RETRY with the server's message.
 * A job past the operation's deadline is cancelled. When the intent has no JobID (a crash
 * between submitting and recording) it returns with *unsettled = true: the caller settles
 * it from the objects' state (its reconcile) before calling again with a fresh key. */
void pvm_step_job(struct pvm_step_ctx *ctx, const char *key, const char *root, const char *op,
                  const char *const *params, struct pvm_step_result *res, bool *done,
                  bool *unsettled);

/* A non-idempotent request that is not a job (a create), sent with intent before effect:
 * pvm_step_send_guard() returns true when the caller may send it now, after committing an
 * intent under ctx->data[key]. When an earlier attempt's request may still be in flight
 * (no answer was seen: a crash, a reset or a timeout) and is younger than the in-flight
 * window (pvm_engine_opts.inflight_window_ms), it returns false with res set to WAIT until
 * the window has passed: a request that reaches the server late must land before the step
 * decides the object is absent, or a late create would leave an orphan behind an undo.
 * The caller reads the object's state before calling it each time. After the request,
 * pvm_step_send_answered() says the server answered (whatever it said): no longer in
 * flight. */
bool pvm_step_send_guard(struct pvm_step_ctx *ctx, const char *key, struct pvm_step_result *res);
void pvm_step_send_answered(struct pvm_step_ctx *ctx, const char *key);
/* For an undo (or a reconcile) about to decide from what it reads that the object a
 * create under key made is absent: when that create's request got no answer and may still
 * land, returns false with res set to WAIT until the in-flight window has passed (a cancel
 * or a failure must not outrun a late create and leave an orphan); true when there is
 * nothing in flight (the key's intent is then cleared). */
bool pvm_step_settle_inflight(struct pvm_step_ctx *ctx, const char *key,
                              struct pvm_step_result *res);

/* ---- the engine ---- */

struct pvm_engine_opts {
	int workers;                     /* powervm_workers */
	bool paused;                     /* --paused: run no step until pvm_engine_resume() */
	bool enable_test_ops;            /* powervm_enable_test_ops */
	int64_t retry_base_ms;           /* first back-off (1000) */
	int64_t retry_max_ms;            /* back-off cap (60000) */
	int64_t poll_min_ms;             /* earliest job poll (500) */
	int64_t poll_max_ms;             /* longest gap between job polls (30000) */
	struct pvm_metrics *metrics;     /* optional */
	const char *ms_uuid;             /* the managed system operations act on */
	const char *ms_href;             /* its SELF link, for partition creates */
	int64_t inflight_window_ms;      /* how long a request without answer may still land
					 (0: 120000; the daemon uses the request timeout) */
	const struct pvm_config *config; /* the daemon's configuration, for the operations'
					    storage and network settings; must outlive the
					    engine (NULL: defaults, unit tests) */
};

int pvm_engine_create(const struct pvm_engine_opts *opts, struct pvm_queue *q,
                      struct pvm_client *client, struct pvm_engine **out);
/* Starts the worker threads ("pvm-worker-N") and the timer. */
int pvm_engine_start(struct pvm_engine *e);
/* Stops taking steps; running steps get grace_ms to finish; joins the workers. */
void pvm_engine_stop(struct pvm_engine *e, int64_t grace_ms);
void pvm_engine_destroy(struct pvm_engine *e);

/* Changes the back-off and job-poll limits (SIGHUP): steps read them at once. */
void pvm_engine_set_limits(struct pvm_engine *e, int64_t retry_base_ms, int64_t retry_max_ms,
                           int64_t poll_min_ms, int64_t poll_max_ms);

void pvm_engine_pause(struct pvm_engine *e);
void pvm_engine_resume(struct pvm_engine *e);
bool pvm_engine_paused(struct pvm_engine *e);
/* Something may have become due (a submission, a control request): wake a worker. */
void pvm_engine_notify(struct pvm_engine *e);
/* A server event about an instance: makes its waiting operations due now. */
void pvm_engine_instance_event(struct pvm_engine *e, const char *instance_uuid);

/* A server event about a partition: makes the waiting operations of the instance whose
 * derived partition UUID it is due now. */
void pvm_engine_partition_event(struct pvm_engine *e, const char *partition_uuid);

/* The metrics registry of pvm_engine_opts (NULL when none), for steps' own counters. */
struct pvm_metrics *pvm_engine_metrics(struct pvm_engine *e);

/* Registers an operation type (at start-up, before pvm_engine_start). Several versions of
 * one name may be registered: new operations take the highest. */
int pvm_engine_register(struct pvm_engine *e, const struct pvm_op_type *t);
/* The type new operations of this name get; NULL when unknown (or a test type while test
 * operations are disabled). */
const struct pvm_op_type *pvm_engine_type(struct pvm_engine *e, const char *name);
/* Registered type names, for errors and docs (NULL-terminated static array view). */
size_t pvm_engine_type_names(struct pvm_engine *e, const char **names, size_t max);

/* Validates params of a new operation of type name; splits secret fields off into
 * *secrets (new object, or NULL when none) and returns the remaining params in *clean.
 * Returns 0, or PVM_EINVAL with field and msg filled. */
int pvm_engine_prepare(struct pvm_engine *e, const char *type, const json_t *params, json_t **clean,
                       json_t **secrets, uint32_t *version, int64_t *deadline_ms, char *field,
                       size_t fn, char *msg, size_t mn);

/* Nova's view after a nova-compute restart: {"instances":[{"uuid","vm_state","task_state"}]}.
 * Operations nova no longer waits for are cancelled (rolled back); *report (new) says what
 * was done: {"cancelled":[ids],"kept":[ids],"unknown_instances":[uuids]}. */
int pvm_engine_reconcile(struct pvm_engine *e, const json_t *nova_view, json_t **report);

struct pvm_engine_stats {
	uint64_t steps_run;
	uint64_t steps_retried;
	uint64_t steps_failed;
	uint64_t ops_succeeded;
	uint64_t ops_failed;
	uint64_t ops_cancelled;
	uint64_t reconciles;
	uint64_t duplicate_jobs; /* intents settled by reconcile as already done */
	int busy_workers;
};
void pvm_engine_stats(struct pvm_engine *e, struct pvm_engine_stats *st);

#endif
