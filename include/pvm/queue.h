/* pvm/queue.h: the durable operation journal (queue/), the only code that touches LMDB.
 *
 * Every driver request is an operation record journaled here before it is acknowledged.
 * The journal is an LMDB environment under the state directory, always opened with full
 * sync: when a call that writes returns 0, the change is on disk and survives kill -9 and
 * power loss.
 *
 * Writes (submit, update, claim, cancel, retry, purge) go through one committer thread:
 * concurrent callers share one synced write transaction (group commit). Each caller's change
 * runs in its own nested transaction, so one caller's error never undoes another's.
 * Reads (get, list, stats) run in read transactions and never wait for writes.
 *
 * States and transitions are those of docs/architecture.md; pvm_op_transition_ok() is the
 * one table. Only the head operation of an instance (the oldest active one) is ever due.
 *
 * Thread-safety: a struct pvm_queue may be used by any number of threads at once, except
 * pvm_queue_close(), which must be called once, after every other call has returned.
 * struct pvm_op values returned to callers are owned by the caller (pvm_op_free()).
 */
#ifndef PVM_QUEUE_H
#define PVM_QUEUE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PVM_OP_TYPE_MAX          48  /* bytes including NUL */
#define PVM_UUID_LEN             36  /* canonical text form, without NUL */
#define PVM_IDEM_KEY_MAX         256 /* bytes including NUL */
#define PVM_REQUEST_ID_MAX       128 /* bytes including NUL */
#define PVM_QUEUE_RECORD_VERSION 1   /* format version written by this build */

enum pvm_op_state {
	PVM_OP_QUEUED = 0,
	PVM_OP_RUNNING,
	PVM_OP_WAITING,
	PVM_OP_REVERTING,
	PVM_OP_SUCCEEDED,
	PVM_OP_FAILED,
	PVM_OP_CANCELLED,
	PVM_OP_STATE_COUNT
};

/* Direction an operation runs its steps in. */
enum pvm_op_dir { PVM_DIR_FORWARD = 0, PVM_DIR_REVERT = 1 };

/* Operation flags (struct pvm_op.flags). */
#define PVM_OPF_CANCEL_REQUESTED 0x1u /* a cancel mark: the next step acts on it */
#define PVM_OPF_HAS_SECRETS      0x2u /* secret params are held in the secrets table */
#define PVM_OPF_SECRETS_ERASED   0x4u /* they were, and were erased when it ended */
#define PVM_OPF_RECOVERED        0x8u /* was found running by recovery at least once */
#define PVM_OPF_KICKED                                                                             \
	0x10u /* a signal or cancel arrived while a step ran: the
					  step's next park comes due at once, so the mark is
					  acted on without waiting for the park's due time */

/* "queued", "running", ...; "?" for a value out of range. */
const char *pvm_op_state_name(enum pvm_op_state s);
/* Parses a state name. Returns 0 or PVM_EINVAL. */
int pvm_op_state_parse(const char *name, enum pvm_op_state *out);
/* The one transition table: true when from -> to is legal. */
bool pvm_op_transition_ok(enum pvm_op_state from, enum pvm_op_state to);
/* succeeded or cancelled: nothing can happen to it any more. */
bool pvm_op_state_final(enum pvm_op_state s);
/* queued, running, waiting or reverting: it holds its instance's place in line. */
bool pvm_op_state_active(enum pvm_op_state s);

/* One operation as stored. Strings are NUL-terminated; json_t members are owned by the
 * record and never NULL in a record returned by the queue (empty object/array instead). */
struct pvm_op {
	uint64_t id;                            /* assigned by the journal, from 1 */
	char type[PVM_OP_TYPE_MAX];             /* "spawn", "test_steps", ... */
	char instance_uuid[PVM_UUID_LEN + 1];   /* "" for an operation on no instance */
	char idempotency_key[PVM_IDEM_KEY_MAX]; /* "" when none was given */
	char request_id[PVM_REQUEST_ID_MAX];    /* nova's global request id, or "" */
	uint32_t table_version;                 /* step-table version it started with */
	uint32_t format_version;                /* record format it was read from */
	enum pvm_op_state state;
	enum pvm_op_dir direction;
	int32_t step;       /* index of the current step */
	uint32_t attempts;  /* attempts of the current step so far */
	uint32_t retries;   /* retries over the whole life of the operation */
	uint32_t flags;     /* PVM_OPF_* */
	int32_t progress;   /* 0..100 */
	int64_t created_ms; /* epoch ms */
	int64_t updated_ms;
	int64_t started_ms;  /* first queued -> running; 0 before */
	int64_t finished_ms; /* when it became succeeded, failed or cancelled; 0 before */
	int64_t due_ms;      /* when it is due next (queued/waiting/reverting) */
	int64_t deadline_ms; /* 0: none */
	uint64_t line_seq;   /* its place in its instance's line (arrival order) */
	bool listed;         /* in the due index: free for a worker to claim at due_ms */
	json_t *params;      /* the request's params, secret fields removed */
	json_t *checkpoints; /* object: step key -> step data (intent, results) */
	json_t *signals;     /* object: pending signals (control requests) */
	json_t *result;      /* object: the operation's result, {} until set */
	json_t *history;     /* array of {"ts","step","attempt","state","code","error"} */
	char *error;         /* last error message, or NULL */
	char *error_code;    /* last error code ("PVM_ETIMEDOUT", "HSCL3205"...), or NULL */
};

void pvm_op_free(struct pvm_op *op);
/* Serializes an operation for reads (API, CLI): never includes secrets. New reference. */
json_t *pvm_op_to_json(const struct pvm_op *op);

struct pvm_queue;

struct pvm_queue_opts {
	const char *dir; /* state directory: created 0700 if missing (not read_only) */
	const char *
	        secret_key_file; /* key file (64 hex digits or 32 raw bytes), mode 0600; NULL refuses secret params */
	bool create_key;      /* create secret_key_file (0600, random) when missing */
	size_t map_size;      /* initial map size in bytes (0: 64 MiB) */
	size_t map_size_max;  /* the map never grows past this (0: 4 GiB) */
	int64_t retention_ms; /* finished ops older than this are purged (0: 7 days) */
	bool read_only;       /* powervmctl: no writes, no recovery, no committer */
	bool recover;         /* return operations left running to queued at open */
};

/* Opens (creating if needed) the journal in opts->dir.
 * Refuses, with PVM_ENOTJOURNAL and the path logged, a directory whose data file is not an
 * LMDB environment of powervmd's, is shorter than its header says, or is of a future format
 * (PVM_EVERSION); nothing is overwritten then. With opts->recover, operations left running
 * by a dead process return to queued at their last checkpoint (due now) and reverting ones
 * become due again; pvm_queue_recovered() tells how many.
 * Returns 0 and *out, or a negative code. */
int pvm_queue_open(const struct pvm_queue_opts *opts, struct pvm_queue **out);
/* Stops the committer after its last batch and closes the environment. NULL is a no-op. */
void pvm_queue_close(struct pvm_queue *q);
/* A counter bumped after every committed write batch (0 for a read-only queue): the
 * engine and long-polls wait on it instead of polling the journal. */
uint64_t pvm_queue_generation(struct pvm_queue *q);
/* Waits until the generation differs from gen, or timeout_ms passes, or the queue closes.
 * Returns the generation then. */
uint64_t pvm_queue_wait_change(struct pvm_queue *q, uint64_t gen, int timeout_ms);
/* Number of operations recovery returned to due at open. */
size_t pvm_queue_recovered(const struct pvm_queue *q);

/* A new operation. type, params required; the rest optional (NULL/0). */
struct pvm_op_submit {
	const char *type;
	const char *instance_uuid;   /* canonical UUID or NULL */
	const char *idempotency_key; /* NULL: none */
	const char *request_id;
	uint32_t table_version;
	const json_t *params;  /* object, without secret fields */
	const json_t *secrets; /* object of secret fields, or NULL */
	int64_t deadline_ms;   /* epoch ms, 0: none */
	int64_t not_before_ms; /* not due before this, 0: now */
};

/* Journals a new operation in state queued and returns once it is synced.
 * Same idempotency key with the same type, instance and params: *id_out is the existing
 * operation, *existed = true, returns 0. Same key, anything else different: PVM_ECONFLICT
 * (and *id_out is the existing operation). PVM_EFULL when the journal may not grow. */
int pvm_queue_submit(struct pvm_queue *q, const struct pvm_op_submit *s, uint64_t *id_out,
                     bool *existed);
/* Journals n submissions in one transaction (all or nothing; no idempotency hits allowed:
 * a reused key fails the batch with PVM_EEXIST). ids_out receives n ids. */
int pvm_queue_submit_many(struct pvm_queue *q, const struct pvm_op_submit *s, size_t n,
                          uint64_t *ids_out);

/* Reads one operation. PVM_ENOTFOUND, or PVM_ECORRUPT / PVM_EVERSION for a damaged or
 * future record (which is then quarantined by the next write batch). */
int pvm_queue_get(struct pvm_queue *q, uint64_t id, struct pvm_op **out);
/* The state of one operation, from the state index alone (no record is decoded): cheap
 * enough to call after every commit for each long-polled operation. PVM_ENOTFOUND. */
int pvm_queue_state(struct pvm_queue *q, uint64_t id, enum pvm_op_state *out);
/* Finds the operation holding an idempotency key. */
int pvm_queue_find_key(struct pvm_queue *q, const char *key, uint64_t *id_out);

/* Takes the operation due first (due_ms <= now_ms; only heads of instances are due) and
 * marks it taken, in one synced transaction: queued -> running; waiting -> running or
 * reverting by its direction; a reverting one (after recovery) stays reverting.
 * Returns 0 and the operation as updated, or PVM_ENOTFOUND when none is due; then
 * *next_due_ms (optional) is the earliest due time (INT64_MAX when nothing is due). */
int pvm_queue_claim(struct pvm_queue *q, int64_t now_ms, struct pvm_op **out, int64_t *next_due_ms);
/* The earliest due time of any operation, INT64_MAX when none. */
int pvm_queue_next_due(struct pvm_queue *q, int64_t *due_ms);

#define PVM_KEEP (-1)

/* A change to one operation, applied atomically. Fields left at PVM_KEEP / NULL / false
 * keep their value. Use pvm_op_update_init() to fill the defaults. */
struct pvm_op_update {
	uint64_t id;
	int expect_state; /* PVM_KEEP, or the state the caller believes it is in:
				    PVM_ETRANSITION when it is not */
	int new_state;    /* PVM_KEEP or enum pvm_op_state: checked by the table */
	int direction;    /* PVM_KEEP or enum pvm_op_dir */
	int32_t step;     /* PVM_KEEP or the new current step (resets attempts) */
	int64_t due_ms;   /* PVM_KEEP or when it is due next. An operation left running or
			   reverting is released for a worker to claim at due_ms only when
			   due_ms is set; without it the caller keeps it (e.g. an intent
			   committed in the middle of a step) */
	int32_t progress; /* PVM_KEEP or 0..100 */
	const json_t *checkpoint_set; /* object: keys set (replacing) in op->checkpoints */
	const json_t *signals_set;    /* object: keys set in op->signals (null value deletes) */
	const json_t *result;         /* replaces op->result */
	const char *error;            /* sets the last error (message); with error_code */
	const char *error_code;
	bool record_attempt; /* counts an attempt (and a retry) and appends to history */
	bool keep_error;     /* with record_attempt: the attempt's error goes to the history only,
			   the operation keeps its error (undo retries after a failure) */
	uint32_t set_flags;
	uint32_t clear_flags;
};
void pvm_op_update_init(struct pvm_op_update *u, uint64_t id);
/* Applies u in one synced transaction. PVM_ETRANSITION for an illegal new_state (the
 * logged message names both states), PVM_ENOTFOUND, PVM_EINVAL for a bad field.
 * Entering succeeded, failed or cancelled erases the operation's secrets, removes it
 * from its instance's line and makes the next operation of that instance due. */
int pvm_queue_update(struct pvm_queue *q, const struct pvm_op_update *u);

/* Control: cancel. A queued operation that never started becomes cancelled at once; an active one gets the
 * cancel mark (and, when waiting, becomes due now) for its next step to act on.
 * PVM_ETRANSITION for a finished one. *state_out (optional) receives the state after. */
int pvm_queue_cancel(struct pvm_queue *q, uint64_t id, enum pvm_op_state *state_out);
/* Control: sets signal name=value on an active operation and makes it due now if waiting. */
int pvm_queue_signal(struct pvm_queue *q, uint64_t id, const char *name, const json_t *value);
/* Makes a waiting operation due now (an event from the server). PVM_ENOTFOUND, or 0 when
 * it was not waiting (nothing to do). */
int pvm_queue_wake(struct pvm_queue *q, uint64_t id, int64_t now_ms);
/* Operator retry: failed -> queued, from its first step, history kept. PVM_ENOSECRET when
 * it had secret params (they were erased when it failed). */
int pvm_queue_retry(struct pvm_queue *q, uint64_t id);

/* Secret params of an active operation, decrypted. New reference in *out.
 * PVM_ENOSECRET when it has none or they were erased. */
int pvm_queue_get_secrets(struct pvm_queue *q, uint64_t id, json_t **out);

/* Deletes finished operations (succeeded, failed, cancelled) that finished before
 * before_ms, at most max (0: no limit) per call. *purged (optional) counts them. */
int pvm_queue_purge(struct pvm_queue *q, int64_t before_ms, size_t max, size_t *purged);
/* pvm_queue_purge() with the retention the queue was opened with. */
int pvm_queue_purge_expired(struct pvm_queue *q, size_t *purged);

/* Filter for pvm_queue_list(); NULL/PVM_KEEP/0 fields do not filter. */
struct pvm_queue_filter {
	int state; /* PVM_KEEP or a state */
	const char *instance_uuid;
	const char *type;
	size_t limit;      /* 0: no limit */
	uint64_t after_id; /* only ids greater than this (paging) */
};
/* Lists matching operations in id order (= arrival order). *ops is a heap array of *n records; free with
 * pvm_op_list_free(). Damaged records are skipped and reported in *damaged (optional). */
int pvm_queue_list(struct pvm_queue *q, const struct pvm_queue_filter *f, struct pvm_op ***ops,
                   size_t *n, size_t *damaged);
void pvm_op_list_free(struct pvm_op **ops, size_t n);

struct pvm_queue_stats {
	size_t by_state[PVM_OP_STATE_COUNT];
	size_t total;
	size_t quarantined;
	int64_t oldest_due_ms; /* earliest due among queued/waiting, INT64_MAX if none */
	uint64_t oldest_due_id;
	size_t map_size; /* bytes */
	size_t map_used; /* bytes in use */
	size_t map_size_max;
	uint64_t commits;         /* write transactions committed by this handle */
	uint64_t commit_requests; /* requests they carried */
};
int pvm_queue_stats(struct pvm_queue *q, struct pvm_queue_stats *st);

/* Reads every record and index entry, checks checksums and that indexes match records.
 * Damaged records found are quarantined (not read_only). *problems counts what was wrong;
 * each problem is logged. */
int pvm_queue_verify(struct pvm_queue *q, size_t *problems);

/* Quarantined record ids, with the reason each was quarantined (heap array). */
struct pvm_quarantine_entry {
	uint64_t id;
	char reason[128];
	int64_t when_ms;
};
int pvm_queue_quarantine_list(struct pvm_queue *q, struct pvm_quarantine_entry **out, size_t *n);

#endif
