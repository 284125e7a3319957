/* journal.c: the durable operation journal on LMDB (pvm/queue.h).
 *
 * DESIGN
 * One LMDB environment in the state directory, opened with full sync. Named databases:
 *   meta        "format", "next_id" (ids, and places in line after an operator retry)
 *   ops         id(8, big endian)              -> record (record.c)
 *   due         due_ms(8) id(8)                -> ""   operations free to be claimed
 *   line        instance(36) seq(8)            -> id   each instance's active operations
 *   inst        instance(36) id(8)             -> ""   every operation of an instance
 *   idem        idempotency key                -> id
 *   state       state(1) id(8)                 -> ""
 *   fin         finished_ms(8) id(8)           -> ""   finished operations, for retention
 *   secrets     id(8)                          -> sealed secret params (secrets.c)
 *   quarantine  id(8)                          -> {"reason","when","raw"} damaged records
 * Every hot query is a range scan: the first due entry is the next operation to claim, and
 * only the head of an instance's line is ever in `due`, so per-instance FIFO costs nothing
 * at claim time.
 *
 * Writes: every write is a request handed to one committer thread ("pvm-journal"). It takes
 * all pending requests, runs each in a nested transaction of one write transaction and
 * commits once (group commit): concurrent submitters and step results share one sync, and
 * nobody waits for a sync that does not include them. A request that fails softly (a
 * conflict, an illegal transition) does so before it writes; one that fails hard makes the
 * batch run again with a nested transaction per request, so one caller's error never undoes
 * another's (run_txn). Reads use read transactions in the caller's thread.
 *
 * Map growth: the map starts at opts.map_size and doubles when the high-water mark passes
 * 75% of it, up to opts.map_size_max. Near the maximum, new submissions are refused
 * (PVM_EFULL) while pages in use exceed the maximum less a reserve, so that updates, claims
 * and purges, which let the queue drain, still have room. A MDB_MAP_FULL that happens anyway
 * is an error for the requests of that batch, never a crash.
 *
 * LOCKS (order: q->mu before nothing; q->rw alone)
 *   q->mu  guards the pending request list, stopping, and request done flags.
 *   q->rw  read-held around every read transaction; write-held by the committer to resize
 *          the map (LMDB requires no transaction in the process then).
 * Neither is held across a commit's sync except rw in read mode by readers.
 */
#include "internal.h"

#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/util.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define JOURNAL_FORMAT         "powervmd-journal/1"
#define JOURNAL_FORMAT_PREFIX  "powervmd-journal/"
#define JOURNAL_FORMAT_VERSION 1
#define MAX_BATCH              1024
#define MAX_RECORD             (1024 * 1024)
#define HISTORY_MAX            64
#define PURGE_INTERVAL_NS      (60LL * 1000000000LL)
#define PURGE_CHUNK            1000

enum dbi_index {
	D_META,
	D_OPS,
	D_DUE,
	D_LINE,
	D_INST,
	D_IDEM,
	D_STATE,
	D_FIN,
	D_SECRETS,
	D_QUAR,
	D_COUNT
};
static const char *const dbi_names[D_COUNT] = {"meta", "ops",   "due", "line",    "inst",
                                               "idem", "state", "fin", "secrets", "quarantine"};

struct req;
typedef int (*apply_fn)(struct pvm_queue *q, MDB_txn *txn, struct req *r);

struct req {
	apply_fn apply;
	void *arg;
	int rc;
	bool done;         /* guarded by q->mu */
	bool async;        /* nobody waits: the committer frees it */
	bool isolate;      /* always in its own nested transaction (all-or-nothing batches) */
	pthread_cond_t cv; /* signalled when done (waits with q->mu) */
	struct req *next;
};

struct pvm_queue {
	MDB_env *env;
	MDB_dbi dbi[D_COUNT];
	char *dir;
	char data_path[4096];
	bool read_only;
	bool has_key;
	unsigned char key[PVM_SECRET_KEY_LEN];
	int lock_fd;
	size_t map_size; /* written by the committer under rw (write) */
	size_t map_max;
	size_t page_size;
	int64_t retention_ms;
	size_t recovered;

	pthread_rwlock_t rw;
	pthread_mutex_t mu;
	pthread_cond_t work_cv;                  /* committer waits for requests */
	struct req *pending_head, *pending_tail; /* guarded by mu */
	bool stopping;                           /* guarded by mu */
	bool running;
	pthread_t committer;

	uint64_t next_id;    /* committer only: the next id; persisted in meta once per batch */
	uint64_t generation; /* guarded by mu; bumped after every committed batch */
	pthread_cond_t change_cv; /* broadcast with every generation */
	_Atomic uint64_t commits;
	_Atomic uint64_t commit_requests;
};

/* ---- keys ---------------------------------------------------------------------------- */

static void be64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (56 - 8 * i));
}

static uint64_t get_be64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint64_t due_key_time(int64_t ms)
{
	return ms < 0 ? 0 : (uint64_t)ms;
}

/* Set by lmdb_err() on the committer thread when LMDB failed inside a write transaction,
 * which LMDB then refuses to commit. */
static _Thread_local bool txn_poisoned;

static int lmdb_err(int rc, const char *what)
{
	if (rc != 0 && rc != MDB_NOTFOUND)
		txn_poisoned = true;
	switch (rc) {
	case 0:
		return 0;
	case MDB_NOTFOUND:
		return PVM_ENOTFOUND;
	case MDB_MAP_FULL:
		return PVM_EFULL;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
		pvm_error("journal: %s: %s", what, mdb_strerror(rc));
		return PVM_ECORRUPT;
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
		return PVM_ENOTJOURNAL;
	default:
		if (rc > 0 && rc < 4096)
			return -rc;
		pvm_error("journal: %s: %s", what, mdb_strerror(rc));
		return PVM_EJOURNAL;
	}
}

/* ---- read transactions --------------------------------------------------------------- */

static int read_begin(struct pvm_queue *q, MDB_txn **txn)
{
	for (int tries = 0; tries < 3; tries++) {
		pthread_rwlock_rdlock(&q->rw);
		int rc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, txn);
		if (rc == 0)
			return 0;
		pthread_rwlock_unlock(&q->rw);
		if (rc != MDB_MAP_RESIZED)
			return lmdb_err(rc, "begin read");
		/* Another process grew the map: adopt its size. */
		pthread_rwlock_wrlock(&q->rw);
		mdb_env_set_mapsize(q->env, 0);
		pthread_rwlock_unlock(&q->rw);
	}
	return PVM_EJOURNAL;
}

static void read_end(struct pvm_queue *q, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&q->rw);
}

/* ---- records ------------------------------------------------------------------------- */

static void quarantine_later(struct pvm_queue *q, uint64_t id, int why);

/* Loads an operation. ECORRUPT/EVERSION records are scheduled for quarantine. */
static int load_op(struct pvm_queue *q, MDB_txn *txn, uint64_t id, struct pvm_op **out)
{
	unsigned char k[8];
	be64(k, id);
	MDB_val key = {8, k}, val;
	int rc = mdb_get(txn, q->dbi[D_OPS], &key, &val);
	if (rc)
		return lmdb_err(rc, "get op");
	rc = pvm_rec_decode(id, val.mv_data, val.mv_size, out);
	if (rc == PVM_ECORRUPT || rc == PVM_EVERSION) {
		struct pvm_log_ctx ctx = {.op_id = id};
		pvm_log(PVM_LOG_ERROR, &ctx, "journal: record %llu %s; it will be quarantined",
		        (unsigned long long)id,
		        rc == PVM_ECORRUPT ? "fails its checksum or does not parse"
		                           : "is of a newer format than this build reads");
		if (!q->read_only)
			quarantine_later(q, id, rc);
	}
	return rc;
}

static int store_op_text(struct pvm_queue *q, MDB_txn *txn, const struct pvm_op *op,
                         const char *params_text, size_t params_len)
{
	void *buf;
	size_t len;
	int rc = pvm_rec_encode(op, params_text, params_len, &buf, &len);
	if (rc)
		return rc;
	if (len > MAX_RECORD) {
		free(buf);
		return PVM_ETOOBIG;
	}
	unsigned char k[8];
	be64(k, op->id);
	MDB_val key = {8, k}, val = {len, buf};
	rc = mdb_put(txn, q->dbi[D_OPS], &key, &val, 0);
	free(buf);
	return lmdb_err(rc, "put op");
}

static int store_op(struct pvm_queue *q, MDB_txn *txn, const struct pvm_op *op)
{
	return store_op_text(q, txn, op, NULL, 0);
}

static int put_empty(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen)
{
	MDB_val key = {klen, (void *)k}, val = {0, ""};
	return lmdb_err(mdb_put(txn, dbi, &key, &val, 0), "put index");
}

static int del_key(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen)
{
	MDB_val key = {klen, (void *)k};
	int rc = mdb_del(txn, dbi, &key, NULL);
	return rc == MDB_NOTFOUND ? 0 : lmdb_err(rc, "del index");
}

static void state_key(unsigned char k[9], enum pvm_op_state s, uint64_t id)
{
	k[0] = (unsigned char)s;
	be64(k + 1, id);
}

static void pair_key(unsigned char k[16], uint64_t a, uint64_t b)
{
	be64(k, a);
	be64(k + 8, b);
}

static void inst_key(unsigned char k[44], const char *inst, uint64_t v)
{
	memcpy(k, inst, PVM_UUID_LEN);
	be64(k + PVM_UUID_LEN, v);
}

/* Takes the next id (also used for places in line after a retry). The committer owns the
 * counter; run_txn() persists it with each batch and rolls it back with an aborted one. */
static uint64_t next_id(struct pvm_queue *q)
{
	return q->next_id++;
}

static int load_next_id(struct pvm_queue *q, MDB_txn *txn)
{
	MDB_val key = {7, "next_id"}, val;
	int rc = mdb_get(txn, q->dbi[D_META], &key, &val);
	q->next_id = 1;
	if (rc == 0 && val.mv_size == 8)
		q->next_id = get_be64(val.mv_data);
	else if (rc != MDB_NOTFOUND)
		return lmdb_err(rc, "get next_id");
	return 0;
}

static int save_next_id(struct pvm_queue *q, MDB_txn *txn)
{
	unsigned char nb[8];
	be64(nb, q->next_id);
	MDB_val key = {7, "next_id"}, val = {8, nb};
	return lmdb_err(mdb_put(txn, q->dbi[D_META], &key, &val, 0), "put next_id");
}

/* ---- due listing and instance lines --------------------------------------------------- */

static int set_listed(struct pvm_queue *q, MDB_txn *txn, struct pvm_op *op, bool listed,
                      int64_t due)
{
	unsigned char k[16];
	int rc;
	if (op->listed) {
		pair_key(k, due_key_time(op->due_ms), op->id);
		if ((rc = del_key(txn, q->dbi[D_DUE], k, 16)))
			return rc;
	}
	op->listed = listed;
	op->due_ms = due;
	if (listed) {
		pair_key(k, due_key_time(due), op->id);
		if ((rc = put_empty(txn, q->dbi[D_DUE], k, 16)))
			return rc;
	}
	return 0;
}

/* True when op is first in its instance's line (or has no instance). */
static int is_head(struct pvm_queue *q, MDB_txn *txn, const struct pvm_op *op, bool *head)
{
	if (!op->instance_uuid[0]) {
		*head = true;
		return 0;
	}
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, q->dbi[D_LINE], &c);
	if (rc)
		return lmdb_err(rc, "cursor");
	unsigned char k[44];
	inst_key(k, op->instance_uuid, 0);
	MDB_val key = {44, k}, val;
	rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
	*head = rc == 0 && key.mv_size == 44 && memcmp(key.mv_data, op->instance_uuid, 36) == 0 &&
	        val.mv_size == 8 && get_be64(val.mv_data) == op->id;
	mdb_cursor_close(c);
	return (rc == 0 || rc == MDB_NOTFOUND) ? 0 : lmdb_err(rc, "line scan");
}

/* Makes the first operation of an instance's line due, if it is waiting for its turn. */
static int promote_head(struct pvm_queue *q, MDB_txn *txn, const char *inst, int64_t now)
{
	for (int guard = 0; guard < 1000; guard++) {
		MDB_cursor *c;
		int rc = mdb_cursor_open(txn, q->dbi[D_LINE], &c);
		if (rc)
			return lmdb_err(rc, "cursor");
		unsigned char k[44];
		inst_key(k, inst, 0);
		MDB_val key = {44, k}, val;
		rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
		bool found = rc == 0 && key.mv_size == 44 && memcmp(key.mv_data, inst, 36) == 0 &&
		             val.mv_size == 8;
		uint64_t id = found ? get_be64(val.mv_data) : 0;
		unsigned char lk[44];
		if (found)
			memcpy(lk, key.mv_data, 44);
		mdb_cursor_close(c);
		if (rc && rc != MDB_NOTFOUND)
			return lmdb_err(rc, "line scan");
		if (!found)
			return 0;
		struct pvm_op *op;
		rc = load_op(q, txn, id, &op);
		if (rc == PVM_ECORRUPT || rc == PVM_EVERSION || rc == PVM_ENOTFOUND) {
			/* Damaged head: drop it from the line so the instance is not stuck. */
			if ((rc = del_key(txn, q->dbi[D_LINE], lk, 44)))
				return rc;
			continue;
		}
		if (rc)
			return rc;
		if (!op->listed && (op->state == PVM_OP_QUEUED || op->state == PVM_OP_WAITING ||
		                    op->state == PVM_OP_REVERTING)) {
			rc = set_listed(q, txn, op, true, op->due_ms > now ? op->due_ms : now);
			if (!rc)
				rc = store_op(q, txn, op);
		}
		pvm_op_free(op);
		return rc;
	}
	return PVM_EJOURNAL;
}

/* Puts op at the end of its instance's line. Its place: its id when it is new (ids grow
 * with arrival), a fresh number from the same counter when an operator retries it. */
static int line_put(struct pvm_queue *q, MDB_txn *txn, struct pvm_op *op, bool fresh)
{
	if (!op->instance_uuid[0])
		return 0;
	op->line_seq = fresh ? op->id : next_id(q);
	unsigned char k[44], v[8];
	inst_key(k, op->instance_uuid, op->line_seq);
	be64(v, op->id);
	MDB_val key = {44, k}, val = {8, v};
	return lmdb_err(mdb_put(txn, q->dbi[D_LINE], &key, &val, 0), "put line");
}

static int line_del(struct pvm_queue *q, MDB_txn *txn, const struct pvm_op *op)
{
	if (!op->instance_uuid[0])
		return 0;
	unsigned char k[44];
	inst_key(k, op->instance_uuid, op->line_seq);
	return del_key(txn, q->dbi[D_LINE], k, 44);
}

static void history_add(struct pvm_op *op, int64_t now, const char *what, const char *code,
                        const char *error)
{
	json_t *e = json_pack("{s:I, s:i, s:I, s:s, s:s?, s:s?, s:s?}", "ts", (json_int_t)now,
	                      "step", (int)op->step, "attempt", (json_int_t)op->attempts, "state",
	                      pvm_op_state_name(op->state), "event", what, "code", code, "error",
	                      error);
	if (!e)
		return;
	json_array_append_new(op->history, e);
	while (json_array_size(op->history) > HISTORY_MAX)
		json_array_remove(op->history, 0);
}

static int set_error(struct pvm_op *op, const char *error, const char *code)
{
	free(op->error);
	free(op->error_code);
	op->error = error ? strdup(error) : NULL;
	op->error_code = code ? strdup(code) : NULL;
	return ((error && !op->error) || (code && !op->error_code)) ? PVM_ENOMEM : 0;
}

/* Moves op to state `to`, keeping the state index; the caller stores op. */
static int change_state(struct pvm_queue *q, MDB_txn *txn, struct pvm_op *op, enum pvm_op_state to,
                        int64_t now)
{
	if (!pvm_op_transition_ok(op->state, to)) {
		struct pvm_log_ctx ctx = {op->id, op->instance_uuid, op->request_id};
		pvm_log(PVM_LOG_WARNING, &ctx, "journal: illegal transition %s -> %s refused",
		        pvm_op_state_name(op->state), pvm_op_state_name(to));
		return PVM_ETRANSITION;
	}
	unsigned char k[9];
	int rc;
	state_key(k, op->state, op->id);
	if ((rc = del_key(txn, q->dbi[D_STATE], k, 9)))
		return rc;
	enum pvm_op_state from = op->state;
	op->state = to;
	state_key(k, to, op->id);
	if ((rc = put_empty(txn, q->dbi[D_STATE], k, 9)))
		return rc;
	if (to == PVM_OP_RUNNING && !op->started_ms)
		op->started_ms = now;
	/* Entering running or reverting, a worker holds it: it is nobody else's to claim
	 * (apply_update lists it again when the update releases it with a due time). */
	if ((to == PVM_OP_RUNNING || to == PVM_OP_REVERTING) && op->listed &&
	    (rc = set_listed(q, txn, op, false, op->due_ms)))
		return rc;

	bool finished = to == PVM_OP_SUCCEEDED || to == PVM_OP_FAILED || to == PVM_OP_CANCELLED;
	if (finished) {
		/* Leaves its instance's line: the next one becomes due. */
		if ((rc = set_listed(q, txn, op, false, op->due_ms)) || (rc = line_del(q, txn, op)))
			return rc;
		op->finished_ms = now;
		unsigned char fk[16];
		pair_key(fk, (uint64_t)now, op->id);
		if ((rc = put_empty(txn, q->dbi[D_FIN], fk, 16)))
			return rc;
		if (op->flags & PVM_OPF_HAS_SECRETS) {
			unsigned char sk[8];
			be64(sk, op->id);
			if ((rc = del_key(txn, q->dbi[D_SECRETS], sk, 8)))
				return rc;
			op->flags = (op->flags & ~PVM_OPF_HAS_SECRETS) | PVM_OPF_SECRETS_ERASED;
		}
		history_add(op, now, "finished", op->error_code, op->error);
		if (op->instance_uuid[0] && (rc = promote_head(q, txn, op->instance_uuid, now)))
			return rc;
	} else if (from == PVM_OP_FAILED) {
		/* Operator retry: back in line at its end, from the first step. */
		unsigned char fk[16];
		pair_key(fk, (uint64_t)op->finished_ms, op->id);
		if ((rc = del_key(txn, q->dbi[D_FIN], fk, 16)) ||
		    (rc = line_put(q, txn, op, false)))
			return rc;
		op->finished_ms = 0;
		op->step = 0;
		op->attempts = 0;
		op->direction = PVM_DIR_FORWARD;
		op->progress = 0;
		op->flags &= ~PVM_OPF_CANCEL_REQUESTED;
		json_object_clear(op->checkpoints);
		json_object_clear(op->signals);
		history_add(op, now, "retried by operator", NULL, NULL);
	} else if (to == PVM_OP_REVERTING && from == PVM_OP_RUNNING) {
		history_add(op, now, "reverting", op->error_code, op->error);
	}
	return 0;
}

/* Lists or unlists an active op per its state (queued and waiting: when head). */
static int relist(struct pvm_queue *q, MDB_txn *txn, struct pvm_op *op, int64_t due)
{
	if (op->state != PVM_OP_QUEUED && op->state != PVM_OP_WAITING)
		return 0;
	bool head;
	int rc = is_head(q, txn, op, &head);
	if (rc)
		return rc;
	return set_listed(q, txn, op, head, due);
}

/* ---- the committer ------------------------------------------------------------------- */

static size_t high_water(struct pvm_queue *q)
{
	MDB_envinfo info;
	mdb_env_info(q->env, &info);
	return ((size_t)info.me_last_pgno + 1) * q->page_size;
}

/* Pages on the free list (reusable), counted only near the map's maximum. LMDB opens no
 * cursor on the free list in a write transaction, so this reads the last committed one
 * (MDB_NOTLS lets the committer hold both). */
static size_t free_bytes(struct pvm_queue *q)
{
	MDB_txn *txn;
	MDB_cursor *c;
	size_t pages = 0;
	if (mdb_txn_begin(q->env, NULL, MDB_RDONLY, &txn))
		return 0;
	if (mdb_cursor_open(txn, 0, &c)) {
		mdb_txn_abort(txn);
		return 0;
	} /* Pages freed by the last committed transaction are not reusable yet: LMDB keeps them
	 * for the previous meta page until one more transaction commits. */
	MDB_envinfo info;
	mdb_env_info(q->env, &info);
	MDB_val key, val;
	int rc = mdb_cursor_get(c, &key, &val, MDB_FIRST);
	while (rc == 0) {
		size_t txnid = 0;
		if (key.mv_size == sizeof(size_t))
			memcpy(&txnid, key.mv_data, sizeof(txnid));
		if (txnid >= info.me_last_txnid)
			break;
		if (val.mv_size >= sizeof(size_t)) {
			size_t n;
			memcpy(&n, val.mv_data, sizeof(n));
			pages += n;
		}
		rc = mdb_cursor_get(c, &key, &val, MDB_NEXT);
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return pages * q->page_size;
}

static size_t reserve_bytes(const struct pvm_queue *q)
{
	size_t r = q->map_max / 16;
	return r < 256 * 1024 ? 256 * 1024 : r;
}

/* Submissions are refused when the map may not grow and what is in use leaves less than
 * the reserve. */
static bool submissions_full(struct pvm_queue *q)
{
	if (q->map_size < q->map_max)
		return false;
	size_t hw = high_water(q);
	if (hw + reserve_bytes(q) < q->map_max)
		return false;
	size_t fb = free_bytes(q);
	size_t used = hw > fb ? hw - fb : 0;
	return used + reserve_bytes(q) >= q->map_max;
}

static int grow_map(struct pvm_queue *q, const char *why)
{
	if (q->map_size >= q->map_max)
		return PVM_EFULL;
	size_t ns = q->map_size * 2;
	if (ns > q->map_max)
		ns = q->map_max;
	pthread_rwlock_wrlock(&q->rw);
	int rc = mdb_env_set_mapsize(q->env, ns);
	if (rc == 0)
		q->map_size = ns;
	pthread_rwlock_unlock(&q->rw);
	if (rc)
		return lmdb_err(rc, "grow map");
	pvm_info("journal: map grown to %zu MiB (%s; maximum %zu MiB)", ns >> 20, why,
	         q->map_max >> 20);
	return 0;
}

/* Errors a request returns before it writes anything: its batch goes on without it. */
static bool soft_error(int rc)
{
	return rc == PVM_ECONFLICT || rc == PVM_ETRANSITION || rc == PVM_ENOTFOUND ||
	       rc == PVM_EEXIST || rc == PVM_ENOSECRET || rc == PVM_EINVAL || rc == PVM_ECORRUPT ||
	       rc == PVM_EVERSION || rc == PVM_EFULL;
}

/* Applies every request of the batch in one write transaction and commits it (one sync).
 * Fast path (nested = false): requests write straight into the transaction, which is safe
 * because a request fails softly only before its first write; a request that fails hard
 * (an LMDB error, which poisons the transaction, or any other error) makes the caller run
 * the batch again with nested = true, where each request has its own nested transaction
 * (LMDB allocates megabytes for each, so that is the slow path). Requests marked isolate
 * always get a nested transaction. Returns 0 or the commit's code; *hard tells that the
 * fast path must be abandoned. */
static int run_txn(struct pvm_queue *q, struct req **batch, size_t n, bool nested, bool *hard)
{
	MDB_txn *txn;
	*hard = false;
	uint64_t id0 = q->next_id;
	int rc = mdb_txn_begin(q->env, NULL, 0, &txn);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		struct req *r = batch[i];
		if (nested || r->isolate) {
			MDB_txn *child;
			rc = mdb_txn_begin(q->env, txn, 0, &child);
			if (rc) {
				r->rc = lmdb_err(rc, "begin nested");
				continue;
			}
			txn_poisoned = false;
			r->rc = r->apply(q, child, r);
			if (r->rc == 0 && (rc = mdb_txn_commit(child)))
				r->rc = lmdb_err(rc, "commit nested");
			else if (r->rc)
				mdb_txn_abort(child);
			continue;
		}
		txn_poisoned = false;
		r->rc = r->apply(q, txn, r);
		if (r->rc && (txn_poisoned || !soft_error(r->rc))) {
			mdb_txn_abort(txn);
			q->next_id = id0;
			*hard = true;
			return 0;
		}
	}
	if (q->next_id != id0 && (rc = save_next_id(q, txn))) {
		mdb_txn_abort(txn);
		q->next_id = id0;
		return rc == PVM_EFULL ? MDB_MAP_FULL : MDB_PANIC;
	}
	rc = mdb_txn_commit(txn);
	if (rc)
		q->next_id = id0;
	return rc;
}

/* Runs a batch of requests in one synced write transaction; every request gets its rc. */
static void run_batch(struct pvm_queue *q, struct req **batch, size_t n)
{
	struct req *again[MAX_BATCH];
	bool nested = false;
	for (int attempt = 0; attempt < 16; attempt++) {
		bool hard = false;
		int rc = run_txn(q, batch, n, nested, &hard);
		if (hard) {
			nested = true;
			continue;
		}
		if (rc == MDB_MAP_FULL && grow_map(q, "a commit did not fit") == 0)
			continue;
		if (rc) {
			rc = lmdb_err(rc, "commit");
			for (size_t i = 0; i < n; i++)
				batch[i]->rc = rc;
			return;
		}
		atomic_fetch_add(&q->commits, 1);
		atomic_fetch_add(&q->commit_requests, n);
		bool want_grow = high_water(q) > q->map_size / 4 * 3;
		size_t m = 0;
		for (size_t i = 0; i < n; i++)
			if (batch[i]->rc == PVM_EFULL && q->map_size < q->map_max) {
				want_grow = true;
				again[m++] = batch[i];
			}
		if (!want_grow || grow_map(q, "75% in use") != 0 || m == 0)
			return;
		/* The map grew: run again, in a copy of the list, the requests that did not fit
		 * (the caller still holds the whole batch to mark it done). */
		batch = again;
		n = m;
	}
}

static int apply_purge_expired(struct pvm_queue *q, MDB_txn *txn, struct req *r);

static void *committer_main(void *arg)
{
	struct pvm_queue *q = arg;
	pthread_setname_np(pthread_self(), "pvm-journal");
	struct req *batch[MAX_BATCH];
	int64_t next_purge = pvm_mono_ns() + PURGE_INTERVAL_NS / 6;
	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (!q->pending_head && !q->stopping) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			int64_t now = pvm_mono_ns();
			if (now >= next_purge)
				break;
			int64_t wait = next_purge - now;
			ts.tv_sec += wait / 1000000000;
			ts.tv_nsec += wait % 1000000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&q->work_cv, &q->mu, &ts);
		}
		if (!q->pending_head && q->stopping)
			break;
		size_t n = 0;
		while (q->pending_head && n < MAX_BATCH) {
			batch[n++] = q->pending_head;
			q->pending_head = q->pending_head->next;
		}
		if (!q->pending_head)
			q->pending_tail = NULL;
		pthread_mutex_unlock(&q->mu);

		struct req purge = {.apply = apply_purge_expired};
		if (pvm_mono_ns() >= next_purge && n < MAX_BATCH) {
			batch[n++] = &purge;
			next_purge = pvm_mono_ns() + PURGE_INTERVAL_NS;
		}
		run_batch(q, batch, n);

		pthread_mutex_lock(&q->mu);
		for (size_t i = 0; i < n; i++) {
			if (batch[i] == &purge)
				continue;
			if (batch[i]->async) {
				free(batch[i]->arg);
				free(batch[i]);
			} else {
				batch[i]->done = true;
				pthread_cond_signal(&batch[i]->cv);
			}
		}
		q->generation++;
		pthread_cond_broadcast(&q->change_cv);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

/* Hands r to the committer and waits until its batch is committed. Returns r->rc. */
static int run_request(struct pvm_queue *q, struct req *r)
{
	if (q->read_only)
		return PVM_EPERM;
	r->done = false;
	r->next = NULL;
	pthread_cond_init(&r->cv, NULL);
	pthread_mutex_lock(&q->mu);
	if (q->stopping) {
		pthread_mutex_unlock(&q->mu);
		pthread_cond_destroy(&r->cv);
		return PVM_ECLOSED;
	}
	if (q->pending_tail)
		q->pending_tail->next = r;
	else
		q->pending_head = r;
	q->pending_tail = r;
	pthread_cond_signal(&q->work_cv);
	while (!r->done)
		pthread_cond_wait(&r->cv, &q->mu);
	pthread_mutex_unlock(&q->mu);
	pthread_cond_destroy(&r->cv);
	return r->rc;
}

/* ---- quarantine ---------------------------------------------------------------------- */

struct quarantine_arg {
	uint64_t id;
	int why;
};

/* Deletes every entry of an index whose key ends with (or whose value is) id. */
static int scrub_index(struct pvm_queue *q, MDB_txn *txn, enum dbi_index d, uint64_t id,
                       bool by_value, int64_t now)
{
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, q->dbi[d], &c);
	if (rc)
		return lmdb_err(rc, "cursor");
	MDB_val key, val;
	char promote[PVM_UUID_LEN + 1] = "";
	rc = mdb_cursor_get(c, &key, &val, MDB_FIRST);
	while (rc == 0) {
		const unsigned char *p = by_value ? val.mv_data : key.mv_data;
		size_t len = by_value ? val.mv_size : key.mv_size;
		bool match = false;
		if (d == D_LINE)
			match = val.mv_size == 8 && get_be64(val.mv_data) == id;
		else
			match = len >= 8 && get_be64(p + len - 8) == id;
		if (match) {
			if (d == D_LINE && key.mv_size == 44) {
				memcpy(promote, key.mv_data, PVM_UUID_LEN);
				promote[PVM_UUID_LEN] = '\0';
			}
			if ((rc = mdb_cursor_del(c, 0)))
				break;
		}
		rc = mdb_cursor_get(c, &key, &val, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND)
		return lmdb_err(rc, "scrub index");
	if (promote[0])
		return promote_head(q, txn, promote, now);
	return 0;
}

static int apply_quarantine(struct pvm_queue *q, MDB_txn *txn, struct req *r)
{
	struct quarantine_arg *a = r->arg;
	unsigned char k[8];
	be64(k, a->id);
	MDB_val key = {8, k}, val;
	int rc = mdb_get(txn, q->dbi[D_OPS], &key, &val);
	if (rc == MDB_NOTFOUND)
		return 0; /* already quarantined */
	if (rc)
		return lmdb_err(rc, "get op");
	struct pvm_op *op;
	int drc = pvm_rec_decode(a->id, val.mv_data, val.mv_size, &op);
	if (drc == 0) { /* healthy after all (rewritten since) */
		pvm_op_free(op);
		return 0;
	}
	char *hex = malloc(val.mv_size * 2 + 1);
	if (!hex)
		return PVM_ENOMEM;
	for (size_t i = 0; i < val.mv_size; i++)
		snprintf(hex + 2 * i, 3, "%02x", ((unsigned char *)val.mv_data)[i]);
	int64_t now = pvm_now_ms();
	json_t *qj = json_pack("{s:s, s:I, s:s}", "reason",
	                       drc == PVM_EVERSION ? "newer record format" : "checksum or format",
	                       "when", (json_int_t)now, "raw", hex);
	free(hex);
	char *text = qj ? json_dumps(qj, JSON_COMPACT) : NULL;
	json_decref(qj);
	if (!text)
		return PVM_ENOMEM;
	MDB_val qv = {strlen(text), text};
	rc = mdb_put(txn, q->dbi[D_QUAR], &key, &qv, 0);
	free(text);
	if (rc)
		return lmdb_err(rc, "put quarantine");
	if ((rc = mdb_del(txn, q->dbi[D_OPS], &key, NULL)))
		return lmdb_err(rc, "del op");
	static const enum dbi_index idx[] = {D_DUE, D_LINE, D_INST, D_STATE, D_FIN, D_SECRETS};
	for (size_t i = 0; i < sizeof(idx) / sizeof(idx[0]); i++)
		if ((rc = scrub_index(q, txn, idx[i], a->id, false, now)))
			return rc;
	if ((rc = scrub_index(q, txn, D_IDEM, a->id, true, now)))
		return rc;
	struct pvm_log_ctx ctx = {.op_id = a->id};
	pvm_log(PVM_LOG_ERROR, &ctx,
	        "journal: record %llu quarantined (%s); see powervmctl queue stats",
	        (unsigned long long)a->id, pvm_strerror(drc));
	return 0;
}

static void quarantine_later(struct pvm_queue *q, uint64_t id, int why)
{
	struct req *r = calloc(1, sizeof(*r));
	struct quarantine_arg *a = calloc(1, sizeof(*a));
	if (!r || !a) {
		free(r);
		free(a);
		return;
	}
	a->id = id;
	a->why = why;
	r->apply = apply_quarantine;
	r->arg = a;
	r->async = true;
	r->isolate = true;
	pthread_mutex_lock(&q->mu);
	if (q->stopping || !q->running) {
		pthread_mutex_unlock(&q->mu);
		free(r);
		free(a);
		return;
	}
	if (q->pending_tail)
		q->pending_tail->next = r;
	else
		q->pending_head = r;
	q->pending_tail = r;
	pthread_cond_signal(&q->work_cv);
	pthread_mutex_unlock(&q->mu);
}

/* ---- submit -------------------------------------------------------------------------- */

struct submit_arg {
	const struct pvm_op_submit *s;
	const char *params_text; /* s[0].params serialized by the submitter, or NULL */
	size_t params_len;
	size_t n;
	uint64_t *ids;
	bool existed;
	bool allow_existing;
};

static bool valid_type(const char *t)
{
	size_t n = strlen(t);
	if (n == 0 || n >= PVM_OP_TYPE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= '0' && t[i] <= '9') || t[i] == '_'))
			return false;
	return true;
}

static int check_submit(const struct pvm_queue *q, const struct pvm_op_submit *s)
{
	if (!s->type || !valid_type(s->type)) {
		pvm_warn(
		        "journal: submission refused: type must be 1-47 characters of a-z, 0-9, _");
		return PVM_EINVAL;
	}
	if (!json_is_object(s->params)) {
		pvm_warn("journal: submission refused: params must be a JSON object");
		return PVM_EINVAL;
	}
	if (s->instance_uuid && s->instance_uuid[0] && !pvm_is_uuid(s->instance_uuid)) {
		pvm_warn("journal: submission refused: instance_uuid is not a UUID");
		return PVM_EINVAL;
	}
	if ((s->idempotency_key && strlen(s->idempotency_key) >= PVM_IDEM_KEY_MAX) ||
	    (s->request_id && strlen(s->request_id) >= PVM_REQUEST_ID_MAX))
		return PVM_ETOOBIG;
	if (s->secrets && !json_is_object(s->secrets))
		return PVM_EINVAL;
	if (s->secrets && json_object_size(s->secrets) && !q->has_key) {
		pvm_warn(
		        "journal: submission with secret params refused: no secret key configured");
		return PVM_ENOSECRET;
	}
	return 0;
}

static int submit_one(struct pvm_queue *q, MDB_txn *txn, const struct pvm_op_submit *s,
                      const char *params_text, size_t params_len, bool allow_existing,
                      uint64_t *id_out, bool *existed)
{
	int rc;
	const char *key = s->idempotency_key && s->idempotency_key[0] ? s->idempotency_key : NULL;
	const char *inst = s->instance_uuid ? s->instance_uuid : "";
	*existed = false;
	if (key) {
		MDB_val k = {strlen(key), (void *)key}, v;
		rc = mdb_get(txn, q->dbi[D_IDEM], &k, &v);
		if (rc == 0 && v.mv_size == 8) {
			uint64_t id = get_be64(v.mv_data);
			*id_out = id;
			if (!allow_existing)
				return PVM_EEXIST;
			struct pvm_op *old;
			if ((rc = load_op(q, txn, id, &old)))
				return rc;
			bool same = strcmp(old->type, s->type) == 0 &&
			            strcasecmp(old->instance_uuid, inst) == 0 &&
			            json_equal(old->params, (json_t *)s->params);
			pvm_op_free(old);
			if (!same)
				return PVM_ECONFLICT;
			*existed = true;
			return 0;
		}
		if (rc != MDB_NOTFOUND)
			return lmdb_err(rc, "get idem");
	}
	if (submissions_full(q))
		return PVM_EFULL;

	struct pvm_op *op = pvm_op_new();
	if (!op)
		return PVM_ENOMEM;
	int64_t now = pvm_now_ms();
	op->id = next_id(q);
	pvm_strlcpy(op->type, s->type, sizeof(op->type));
	for (size_t i = 0; inst[i] && i < PVM_UUID_LEN; i++)
		op->instance_uuid[i] =
		        (char)(inst[i] >= 'A' && inst[i] <= 'F' ? inst[i] + 32 : inst[i]);
	if (key)
		pvm_strlcpy(op->idempotency_key, key, sizeof(op->idempotency_key));
	if (s->request_id)
		pvm_strlcpy(op->request_id, s->request_id, sizeof(op->request_id));
	op->table_version = s->table_version;
	op->state = PVM_OP_QUEUED;
	op->created_ms = op->updated_ms = now;
	op->due_ms = s->not_before_ms > now ? s->not_before_ms : now;
	op->deadline_ms = s->deadline_ms;
	/* A reference, not a copy: the submitter waits, unchanged params in hand, until the
	 * batch is committed. */
	json_decref(op->params);
	op->params = json_incref((json_t *)s->params);
	unsigned char k9[9], k44[44], k8[8];
	state_key(k9, PVM_OP_QUEUED, op->id);
	if ((rc = put_empty(txn, q->dbi[D_STATE], k9, 9)))
		goto out;
	if (op->instance_uuid[0]) {
		inst_key(k44, op->instance_uuid, op->id);
		if ((rc = put_empty(txn, q->dbi[D_INST], k44, 44)) ||
		    (rc = line_put(q, txn, op, true)))
			goto out;
	}
	if (key) {
		be64(k8, op->id);
		MDB_val kk = {strlen(key), (void *)key}, vv = {8, k8};
		if ((rc = lmdb_err(mdb_put(txn, q->dbi[D_IDEM], &kk, &vv, 0), "put idem")))
			goto out;
	}
	if (s->secrets && json_object_size(s->secrets)) {
		char *plain = json_dumps(s->secrets, JSON_COMPACT);
		unsigned char *blob = NULL;
		size_t blen = 0;
		rc = plain ? pvm_secret_seal(q->key, op->id, plain, strlen(plain), &blob, &blen)
		           : PVM_ENOMEM;
		if (plain) {
			memset(plain, 0, strlen(plain));
			free(plain);
		}
		if (rc)
			goto out;
		be64(k8, op->id);
		MDB_val kk = {8, k8}, vv = {blen, blob};
		rc = lmdb_err(mdb_put(txn, q->dbi[D_SECRETS], &kk, &vv, 0), "put secret");
		free(blob);
		if (rc)
			goto out;
		op->flags |= PVM_OPF_HAS_SECRETS;
	}
	if ((rc = relist(q, txn, op, op->due_ms)))
		goto out;
	if ((rc = store_op_text(q, txn, op, params_text, params_len)))
		goto out;
	*id_out = op->id;
out:
	pvm_op_free(op);
	return rc;
}

static int apply_submit(struct pvm_queue *q, MDB_txn *txn, struct req *r)
{
	struct submit_arg *a = r->arg;
	for (size_t i = 0; i < a->n; i++) {
		bool existed = false;
		int rc = submit_one(q, txn, &a->s[i], i == 0 ? a->params_text : NULL,
		                    i == 0 ? a->params_len : 0, a->allow_existing, &a->ids[i],
		                    &existed);
		if (rc)
			return rc;
		a->existed = existed;
	}
	return 0;
}

int pvm_queue_submit(struct pvm_queue *q, const struct pvm_op_submit *s, uint64_t *id_out,
                     bool *existed)
{
	int rc = check_submit(q, s);
	if (rc)
		return rc;
	uint64_t id = 0;
	/* Serialized here, in the submitter's thread, not in the committer's. */
	char *text = json_dumps(s->params, JSON_COMPACT);
	if (!text)
		return PVM_ENOMEM;
	struct submit_arg a = {.s = s,
	                       .params_text = text,
	                       .params_len = strlen(text),
	                       .n = 1,
	                       .ids = &id,
	                       .allow_existing = true};
	struct req r = {.apply = apply_submit, .arg = &a};
	rc = run_request(q, &r);
	free(text);
	if (id_out && (rc == 0 || rc == PVM_ECONFLICT))
		*id_out = id;
	if (existed)
		*existed = rc == 0 && a.existed;
	return rc;
}

int pvm_queue_submit_many(struct pvm_queue *q, const struct pvm_op_submit *s, size_t n,
                          uint64_t *ids_out)
{
	for (size_t i = 0; i < n; i++) {
		int rc = check_submit(q, &s[i]);
		if (rc)
			return rc;
	}
	struct submit_arg a = {.s = s, .n = n, .ids = ids_out, .allow_existing = false};
	struct req r = {.apply = apply_submit, .arg = &a, .isolate = true};
	return run_request(q, &r);
}

/* ---- update, claim and control ------------------------------------------------------- */

void pvm_op_update_init(struct pvm_op_update *u, uint64_t id)
{
	memset(u, 0, sizeof(*u));
	u->id = id;
	u->expect_state = PVM_KEEP;
	u->new_state = PVM_KEEP;
	u->direction = PVM_KEEP;
	u->step = PVM_KEEP;
	u->due_ms = PVM_KEEP;
	u->progress = PVM_KEEP;
}

static int apply_update(struct pvm_queue *q, MDB_txn *txn, struct req *r)
{
	const struct pvm_op_update *u = r->arg;
	struct pvm_op *op;
	int rc = load_op(q, txn, u->id, &op);
	if (rc)
		return rc;
	int64_t now = pvm_now_ms();
	if (u->expect_state != PVM_KEEP && (int)op->state != u->expect_state) {
		rc = PVM_ETRANSITION;
		goto out;
	}
	if (u->direction != PVM_KEEP)
		op->direction = u->direction == PVM_DIR_REVERT ? PVM_DIR_REVERT : PVM_DIR_FORWARD;
	if (u->step != PVM_KEEP && u->step != op->step) {
		op->step = u->step;
		op->attempts = 0;
	}
	if (u->progress != PVM_KEEP)
		op->progress = u->progress < 0 ? 0 : u->progress > 100 ? 100 : u->progress;
	if (u->checkpoint_set && json_object_update(op->checkpoints, (json_t *)u->checkpoint_set)) {
		rc = PVM_ENOMEM;
		goto out;
	}
	if (u->signals_set) {
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)u->signals_set, k, v)
		{
			if (json_is_null(v))
				json_object_del(op->signals, k);
			else
				json_object_set(op->signals, k, v);
		}
	}
	if (u->result) {
		json_decref(op->result);
		op->result = json_deep_copy(u->result);
		if (!op->result) {
			rc = PVM_ENOMEM;
			goto out;
		}
	}
	if ((u->error || u->error_code) && !(u->record_attempt && u->keep_error) &&
	    (rc = set_error(op, u->error, u->error_code)))
		goto out;
	if (u->record_attempt) {
		op->attempts++;
		op->retries++;
		history_add(op, now, "attempt failed",
		            u->error_code ? u->error_code : op->error_code,
		            u->error ? u->error : op->error);
	}
	op->flags = (op->flags | u->set_flags) & ~u->clear_flags;
	if (u->new_state != PVM_KEEP && (rc = change_state(q, txn, op, u->new_state, now)))
		goto out;
	if (pvm_op_state_active(op->state)) {
		int64_t due = u->due_ms != PVM_KEEP ? u->due_ms : op->due_ms;
		/* A signal or cancel that came while the step ran found nothing to wake: the
		 * step, which read the operation before it, now parks; make it due at once so
		 * that its next run sees the mark (a gate would otherwise sleep until its
		 * own due time). */
		if ((op->flags & PVM_OPF_KICKED) && u->due_ms != PVM_KEEP) {
			if (due > now)
				due = now;
			op->flags &= ~PVM_OPF_KICKED;
		}
		if (op->state == PVM_OP_QUEUED || op->state == PVM_OP_WAITING)
			rc = relist(q, txn, op, due);
		else if (u->due_ms != PVM_KEEP)
			rc = set_listed(q, txn, op, true, due);
		if (rc)
			goto out;
	}
	if (!pvm_op_state_active(op->state))
		op->flags &= ~PVM_OPF_KICKED;
	op->updated_ms = now;
	rc = store_op(q, txn, op);
out:
	pvm_op_free(op);
	return rc;
}

int pvm_queue_update(struct pvm_queue *q, const struct pvm_op_update *u)
{
	if (u->new_state != PVM_KEEP && (u->new_state < 0 || u->new_state >= PVM_OP_STATE_COUNT))
		return PVM_EINVAL;
	if (u->progress != PVM_KEEP && (u->progress < 0 || u->progress > 100))
		return PVM_EINVAL;
	if (u->direction != PVM_KEEP && u->direction != PVM_DIR_FORWARD &&
	    u->direction != PVM_DIR_REVERT)
		return PVM_EINVAL;
	if (u->step != PVM_KEEP && u->step < 0)
		return PVM_EINVAL;
	if (u->checkpoint_set && !json_is_object(u->checkpoint_set))
		return PVM_EINVAL;
	if (u->signals_set && !json_is_object(u->signals_set))
		return PVM_EINVAL;
	if (u->result && !json_is_object(u->result))
		return PVM_EINVAL;
	struct req r = {.apply = apply_update, .arg = (void *)u};
	return run_request(q, &r);
}

struct claim_arg {
	int64_t now;
	struct pvm_op *out;
	int64_t next_due;
};

static int apply_claim(struct pvm_queue *q, MDB_txn *txn, struct req *r)
{
	struct claim_arg *a = r->arg;
	a->next_due = INT64_MAX;
	for (int guard = 0; guard < 10000; guard++) {
		MDB_cursor *c;
		int rc = mdb_cursor_open(txn, q->dbi[D_DUE], &c);
		if (rc)
			return lmdb_err(rc, "cursor");
		MDB_val key, val;
		rc = mdb_cursor_get(c, &key, &val, MDB_FIRST);
		unsigned char k[16];
		if (rc == 0 && key.mv_size == 16)
			memcpy(k, key.mv_data, 16);
		mdb_cursor_close(c);
		if (rc == MDB_NOTFOUND)
			return PVM_ENOTFOUND;
		if (rc)
			return lmdb_err(rc, "due scan");
		if (key.mv_size != 16) {
			if ((rc = del_key(txn, q->dbi[D_DUE], key.mv_data, key.mv_size)))
				return rc;
			continue;
		}
		uint64_t due = get_be64(k), id = get_be64(k + 8);
		if ((int64_t)due > a->now) {
			a->next_due = (int64_t)due;
			return PVM_ENOTFOUND;
		}
		struct pvm_op *op;
		rc = load_op(q, txn, id, &op);
		if (rc == PVM_ENOTFOUND || rc == PVM_ECORRUPT || rc == PVM_EVERSION) {
			if ((rc = del_key(txn, q->dbi[D_DUE], k, 16)))
				return rc;
			continue;
		}
		if (rc)
			return rc;
		if (!op->listed || due_key_time(op->due_ms) != due ||
		    !pvm_op_state_active(op->state)) {
			/* A stale entry: the record is the truth. */
			pvm_op_free(op);
			if ((rc = del_key(txn, q->dbi[D_DUE], k, 16)))
				return rc;
			continue;
		}
		rc = set_listed(q, txn, op, false, op->due_ms);
		if (!rc && op->state == PVM_OP_QUEUED)
			rc = change_state(q, txn, op, PVM_OP_RUNNING, a->now);
		else if (!rc && op->state == PVM_OP_WAITING)
			rc = change_state(q, txn, op,
			                  op->direction == PVM_DIR_REVERT ? PVM_OP_REVERTING
			                                                  : PVM_OP_RUNNING,
			                  a->now);
		if (!rc) {
			op->updated_ms = a->now;
			rc = store_op(q, txn, op);
		}
		if (rc) {
			pvm_op_free(op);
			return rc;
		}
		a->out = op;
		return 0;
	}
	return PVM_EJOURNAL;
}

int pvm_queue_claim(struct pvm_queue *q, int64_t now_ms, struct pvm_op **out, int64_t *next_due_ms)
{
	struct claim_arg a = {.now = now_ms};
	struct req r = {.apply = apply_claim, .arg = &a};
	int rc = run_request(q, &r);
	if (rc == 0) {
		*out = a.out;
	} else {
		pvm_op_free(a.out);
		if (rc == PVM_ENOTFOUND && next_due_ms)
			*next_due_ms = a.next_due;
	}
	return rc;
}

int pvm_queue_next_due(struct pvm_queue *q, int64_t *due_ms)
{
	MDB_txn *txn;
	int rc = read_begin(q, &txn);
	if (rc)
		return rc;
	MDB_cursor *c;
	*due_ms = INT64_MAX;
	rc = mdb_cursor_open(txn, q->dbi[D_DUE], &c);
	if (rc == 0) {
		MDB_val key, val;
		rc = mdb_cursor_get(c, &key, &val, MDB_FIRST);
		if (rc == 0 && key.mv_size == 16)
			*due_ms = (int64_t)get_be64(key.mv_data);
		mdb_cursor_close(c);
		rc = rc == MDB_NOTFOUND ? 0 : rc;
	}
	read_end(q, txn);
	return lmdb_err(rc, "next due");
}

enum control_kind { C_CANCEL, C_SIGNAL, C_WAKE, C_RETRY };

struct control_arg {
	enum control_kind kind;
	uint64_t id;
	const char *name;
	const json_t *value;
	int64_t now;
	enum pvm_op_state state_after;
};

static int apply_control(struct pvm_queue *q, MDB_txn *txn, struct req *r)
{
	struct control_arg *a = r->arg;
	struct pvm_op *op;
	int rc = load_op(q, txn, a->id, &op);
	if (rc)
		return rc;
	int64_t now = a->now;
	bool store = true;
	switch (a->kind) {
	case C_CANCEL:
		if (op->state == PVM_OP_QUEUED && op->step == 0 && !op->started_ms) {
			rc = set_error(op, "cancelled before it started", "cancelled");
			if (!rc)
				rc = change_state(q, txn, op, PVM_OP_CANCELLED, now);
		} else if (pvm_op_state_active(op->state)) {
			op->flags |= PVM_OPF_CANCEL_REQUESTED;
			if (op->state == PVM_OP_WAITING || op->state == PVM_OP_QUEUED)
				rc = relist(q, txn, op, now);
			else
				op->flags |= PVM_OPF_KICKED; /* a step runs: see apply_update */
		} else {
			rc = PVM_ETRANSITION;
		}
		break;
	case C_SIGNAL:
		if (!pvm_op_state_active(op->state)) {
			rc = PVM_ETRANSITION;
			break;
		}
		json_object_set(op->signals, a->name, (json_t *)a->value);
		if (op->state == PVM_OP_WAITING || op->state == PVM_OP_QUEUED)
			rc = relist(q, txn, op, now);
		else
			op->flags |= PVM_OPF_KICKED; /* a step runs: see apply_update */
		break;
	case C_WAKE:
		if (op->state == PVM_OP_WAITING && op->listed && op->due_ms > now)
			rc = relist(q, txn, op, now);
		else
			store = false;
		break;
	case C_RETRY:
		if (op->state != PVM_OP_FAILED) {
			rc = PVM_ETRANSITION;
		} else if (op->flags & PVM_OPF_SECRETS_ERASED) {
			rc = PVM_ENOSECRET;
		} else {
			rc = change_state(q, txn, op, PVM_OP_QUEUED, now);
			if (!rc)
				rc = relist(q, txn, op, now);
		}
		break;
	}
	if (!rc && store) {
		op->updated_ms = now;
		rc = store_op(q, txn, op);
	}
	a->state_after = op->state;
	pvm_op_free(op);
	return rc;
}

static int control(struct pvm_queue *q, struct control_arg *a)
{
	struct req r = {.apply = apply_control, .arg = a};
	return run_request(q, &r);
}

int pvm_queue_cancel(struct pvm_queue *q, uint64_t id, enum pvm_op_state *state_out)
{
	struct control_arg a = {.kind = C_CANCEL, .id = id, .now = pvm_now_ms()};
	int rc = control(q, &a);
	if (state_out && (rc == 0 || rc == PVM_ETRANSITION))
		*state_out = a.state_after;
	return rc;
}

int pvm_queue_signal(struct pvm_queue *q, uint64_t id, const char *name, const json_t *value)
{
	if (!name || !name[0] || !value)
		return PVM_EINVAL;
	struct control_arg a = {
	        .kind = C_SIGNAL, .id = id, .name = name, .value = value, .now = pvm_now_ms()};
	return control(q, &a);
}

int pvm_queue_wake(struct pvm_queue *q, uint64_t id, int64_t now_ms)
{
	struct control_arg a = {.kind = C_WAKE, .id = id, .now = now_ms};
	return control(q, &a);
}

int pvm_queue_retry(struct pvm_queue *q, uint64_t id)
{
	struct control_arg a = {.kind = C_RETRY, .id = id, .now = pvm_now_ms()};
	return control(q, &a);
}

/* ---- purge --------------------------------------------------------------------------- */

struct purge_arg {
	int64_t before;
	size_t max;
	size_t purged;
};

static int purge_one(struct pvm_queue *q, MDB_txn *txn, uint64_t id, const unsigned char fk[16])
{
	int rc;
	struct pvm_op *op = NULL;
	rc = load_op(q, txn, id, &op);
	if (rc == 0) {
		unsigned char k[44];
		state_key(k, op->state, id);
		if ((rc = del_key(txn, q->dbi[D_STATE], k, 9)))
			goto out;
		if (op->instance_uuid[0]) {
			inst_key(k, op->instance_uuid, id);
			if ((rc = del_key(txn, q->dbi[D_INST], k, 44)))
				goto out;
		}
		if (op->idempotency_key[0]) {
			MDB_val kk = {strlen(op->idempotency_key), op->idempotency_key}, vv;
			if (mdb_get(txn, q->dbi[D_IDEM], &kk, &vv) == 0 && vv.mv_size == 8 &&
			    get_be64(vv.mv_data) == id &&
			    (rc = del_key(txn, q->dbi[D_IDEM], kk.mv_data, kk.mv_size)))
				goto out;
		}
		unsigned char ik[8];
		be64(ik, id);
		if ((rc = del_key(txn, q->dbi[D_SECRETS], ik, 8)) ||
		    (rc = del_key(txn, q->dbi[D_OPS], ik, 8)))
			goto out;
	} else if (rc != PVM_ENOTFOUND && rc != PVM_ECORRUPT && rc != PVM_EVERSION) {
		return rc;
	}
	rc = del_key(txn, q->dbi[D_FIN], fk, 16);
out:
	pvm_op_free(op);
	return rc;
}

static int apply_purge(struct pvm_queue *q, MDB_txn *txn, struct req *r)
{
	struct purge_arg *a = r->arg;
	a->purged = 0;
	for (;;) {
		if (a->max && a->purged >= a->max)
			return 0;
		MDB_cursor *c;
		int rc = mdb_cursor_open(txn, q->dbi[D_FIN], &c);
		if (rc)
			return lmdb_err(rc, "cursor");
		MDB_val key, val;
		rc = mdb_cursor_get(c, &key, &val, MDB_FIRST);
		unsigned char fk[16];
		if (rc == 0 && key.mv_size == 16)
			memcpy(fk, key.mv_data, 16);
		mdb_cursor_close(c);
		if (rc == MDB_NOTFOUND)
			return 0;
		if (rc)
			return lmdb_err(rc, "fin scan");
		if (key.mv_size != 16 || (int64_t)get_be64(fk) >= a->before)
			return 0;
		if ((rc = purge_one(q, txn, get_be64(fk + 8), fk)))
			return rc;
		a->purged++;
	}
}

static int apply_purge_expired(struct pvm_queue *q, MDB_txn *txn, struct req *r)
{
	struct purge_arg a = {.before = pvm_now_ms() - q->retention_ms, .max = PURGE_CHUNK};
	struct req inner = {.arg = &a};
	int rc = apply_purge(q, txn, &inner);
	(void)r;
	if (rc == 0 && a.purged)
		pvm_info("journal: purged %zu finished operations past their retention", a.purged);
	return rc;
}

/* Records when the last purge ran: a real change, so that the purge's freed pages become
 * reusable. */
static int apply_touch(struct pvm_queue *q, MDB_txn *txn, struct req *r)
{
	(void)r;
	unsigned char v[8];
	be64(v, (uint64_t)pvm_now_ms());
	MDB_val key = {9, "purged_at"}, val = {8, v};
	return lmdb_err(mdb_put(txn, q->dbi[D_META], &key, &val, 0), "put purged_at");
}

int pvm_queue_purge(struct pvm_queue *q, int64_t before_ms, size_t max, size_t *purged)
{
	size_t total = 0, step = PURGE_CHUNK;
	int rc = 0;
	/* In chunks, so one purge never makes one huge transaction. A chunk that does not fit
	 * a nearly full map (deleting needs fresh pages too, and freed ones are reusable only
	 * after the commit) is retried smaller, down to one operation, which the reserve
	 * kept for draining always holds. */
	for (;;) {
		size_t chunk = step;
		if (max && max - total < chunk)
			chunk = max - total;
		struct purge_arg a = {.before = before_ms, .max = chunk};
		struct req r = {.apply = apply_purge, .arg = &a};
		rc = run_request(q, &r);
		if (rc == PVM_EFULL && step > 1) {
			step = step / 8 ? step / 8 : 1;
			continue;
		}
		if (rc)
			break;
		total += a.purged;
		if (a.purged < chunk || (max && total >= max))
			break;
		if (step < PURGE_CHUNK)
			step *= 2;
	}
	/* One more small commit makes the pages the last chunk freed reusable at once (LMDB
	 * reuses a transaction's freed pages only after a later one commits). */
	if (rc == 0 && total) {
		struct req touch = {.apply = apply_touch};
		rc = run_request(q, &touch);
	}
	if (purged)
		*purged = total;
	return rc;
}

int pvm_queue_purge_expired(struct pvm_queue *q, size_t *purged)
{
	return pvm_queue_purge(q, pvm_now_ms() - q->retention_ms, 0, purged);
}

/* ---- reads --------------------------------------------------------------------------- */

int pvm_queue_get(struct pvm_queue *q, uint64_t id, struct pvm_op **out)
{
	MDB_txn *txn;
	int rc = read_begin(q, &txn);
	if (rc)
		return rc;
	rc = load_op(q, txn, id, out);
	read_end(q, txn);
	return rc;
}

int pvm_queue_state(struct pvm_queue *q, uint64_t id, enum pvm_op_state *out)
{
	MDB_txn *txn;
	int rc = read_begin(q, &txn);
	if (rc)
		return rc;
	/* Finished states first: long-polls ask until they see one. */
	static const enum pvm_op_state order[] = {
	        PVM_OP_SUCCEEDED, PVM_OP_FAILED, PVM_OP_CANCELLED, PVM_OP_RUNNING,
	        PVM_OP_WAITING,   PVM_OP_QUEUED, PVM_OP_REVERTING};
	rc = PVM_ENOTFOUND;
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		unsigned char k[9];
		state_key(k, order[i], id);
		MDB_val key = {9, k}, val;
		if (mdb_get(txn, q->dbi[D_STATE], &key, &val) == 0) {
			*out = order[i];
			rc = 0;
			break;
		}
	}
	read_end(q, txn);
	return rc;
}

int pvm_queue_find_key(struct pvm_queue *q, const char *key, uint64_t *id_out)
{
	if (!key || !key[0] || strlen(key) >= PVM_IDEM_KEY_MAX)
		return PVM_EINVAL;
	MDB_txn *txn;
	int rc = read_begin(q, &txn);
	if (rc)
		return rc;
	MDB_val k = {strlen(key), (void *)key}, v;
	rc = mdb_get(txn, q->dbi[D_IDEM], &k, &v);
	if (rc == 0 && v.mv_size == 8)
		*id_out = get_be64(v.mv_data);
	read_end(q, txn);
	return lmdb_err(rc, "find key");
}

int pvm_queue_get_secrets(struct pvm_queue *q, uint64_t id, json_t **out)
{
	if (!q->has_key)
		return PVM_ENOSECRET;
	MDB_txn *txn;
	int rc = read_begin(q, &txn);
	if (rc)
		return rc;
	unsigned char k[8];
	be64(k, id);
	MDB_val key = {8, k}, val;
	rc = mdb_get(txn, q->dbi[D_SECRETS], &key, &val);
	char *plain = NULL;
	size_t plen = 0;
	if (rc == 0) {
		rc = pvm_secret_unseal(q->key, id, val.mv_data, val.mv_size, &plain, &plen);
	} else if (rc == MDB_NOTFOUND) {
		MDB_val oval;
		rc = mdb_get(txn, q->dbi[D_OPS], &key, &oval) == 0 ? PVM_ENOSECRET : PVM_ENOTFOUND;
	} else {
		rc = lmdb_err(rc, "get secret");
	}
	read_end(q, txn);
	if (rc)
		return rc;
	*out = json_loadb(plain, plen, 0, NULL);
	memset(plain, 0, plen);
	free(plain);
	return *out ? 0 : PVM_ECORRUPT;
}

static bool op_matches(const struct pvm_op *op, const struct pvm_queue_filter *f)
{
	if (f->state != PVM_KEEP && (int)op->state != f->state)
		return false;
	if (f->type && strcmp(op->type, f->type) != 0)
		return false;
	if (f->instance_uuid && strcasecmp(op->instance_uuid, f->instance_uuid) != 0)
		return false;
	return true;
}

int pvm_queue_list(struct pvm_queue *q, const struct pvm_queue_filter *fin, struct pvm_op ***ops,
                   size_t *n, size_t *damaged)
{
	struct pvm_queue_filter f = {.state = PVM_KEEP};
	if (fin)
		f = *fin;
	if (f.instance_uuid && !pvm_is_uuid(f.instance_uuid))
		return PVM_EINVAL;
	if (f.state != PVM_KEEP && (f.state < 0 || f.state >= PVM_OP_STATE_COUNT))
		return PVM_EINVAL;
	*ops = NULL;
	*n = 0;
	if (damaged)
		*damaged = 0;
	MDB_txn *txn;
	int rc = read_begin(q, &txn);
	if (rc)
		return rc;
	/* Scan the narrowest index that answers the filter; ids come out ascending. */
	enum dbi_index d = D_OPS;
	unsigned char start[44];
	size_t prefix = 0, start_len = 8, id_off = 0;
	if (f.instance_uuid) {
		d = D_INST;
		for (int i = 0; i < PVM_UUID_LEN; i++)
			start[i] = (unsigned char)(f.instance_uuid[i] >= 'A' &&
			                                           f.instance_uuid[i] <= 'F'
			                                   ? f.instance_uuid[i] + 32
			                                   : f.instance_uuid[i]);
		be64(start + PVM_UUID_LEN, f.after_id + 1);
		prefix = PVM_UUID_LEN;
		start_len = 44;
		id_off = PVM_UUID_LEN;
	} else if (f.state != PVM_KEEP) {
		d = D_STATE;
		start[0] = (unsigned char)f.state;
		be64(start + 1, f.after_id + 1);
		prefix = 1;
		start_len = 9;
		id_off = 1;
	} else {
		be64(start, f.after_id + 1);
	}
	MDB_cursor *c;
	size_t cap = 0;
	if ((rc = mdb_cursor_open(txn, q->dbi[d], &c))) {
		read_end(q, txn);
		return lmdb_err(rc, "cursor");
	}
	MDB_val key = {start_len, start}, val;
	rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
	while (rc == 0) {
		if (key.mv_size != id_off + 8 || memcmp(key.mv_data, start, prefix) != 0) {
			rc = MDB_NOTFOUND; /* past the filter's range: done */
			break;
		}
		uint64_t id = get_be64((unsigned char *)key.mv_data + id_off);
		struct pvm_op *op = NULL;
		int lrc = d == D_OPS ? pvm_rec_decode(id, val.mv_data, val.mv_size, &op)
		                     : load_op(q, txn, id, &op);
		if (lrc == PVM_ECORRUPT || lrc == PVM_EVERSION || lrc == PVM_ENOTFOUND) {
			if (damaged)
				(*damaged)++;
			if (d == D_OPS && !q->read_only)
				quarantine_later(q, id, lrc);
		} else if (lrc) {
			rc = lrc;
			break;
		} else if (op_matches(op, &f)) {
			if (*n == cap) {
				cap = cap ? cap * 2 : 64;
				struct pvm_op **nv = realloc(*ops, cap * sizeof(*nv));
				if (!nv) {
					pvm_op_free(op);
					rc = PVM_ENOMEM;
					break;
				}
				*ops = nv;
			}
			(*ops)[(*n)++] = op;
			op = NULL;
			if (f.limit && *n >= f.limit) {
				rc = MDB_NOTFOUND;
				break;
			}
		}
		pvm_op_free(op);
		rc = mdb_cursor_get(c, &key, &val, MDB_NEXT);
	}
	mdb_cursor_close(c);
	read_end(q, txn);
	if (rc == MDB_NOTFOUND)
		return 0;
	pvm_op_list_free(*ops, *n);
	*ops = NULL;
	*n = 0;
	return rc < 0 ? rc : lmdb_err(rc, "list");
}

int pvm_queue_stats(struct pvm_queue *q, struct pvm_queue_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->oldest_due_ms = INT64_MAX;
	MDB_txn *txn;
	int rc = read_begin(q, &txn);
	if (rc)
		return rc;
	MDB_cursor *c;
	MDB_val key, val;
	if ((rc = mdb_cursor_open(txn, q->dbi[D_STATE], &c)) == 0) {
		rc = mdb_cursor_get(c, &key, &val, MDB_FIRST);
		while (rc == 0) {
			unsigned s = key.mv_size ? ((unsigned char *)key.mv_data)[0] : 255;
			if (s < PVM_OP_STATE_COUNT) {
				st->by_state[s]++;
				st->total++;
			}
			rc = mdb_cursor_get(c, &key, &val, MDB_NEXT);
		}
		mdb_cursor_close(c);
	}
	if ((rc = mdb_cursor_open(txn, q->dbi[D_DUE], &c)) == 0) {
		rc = mdb_cursor_get(c, &key, &val, MDB_FIRST);
		if (rc == 0 && key.mv_size == 16) {
			st->oldest_due_ms = (int64_t)get_be64(key.mv_data);
			st->oldest_due_id = get_be64((unsigned char *)key.mv_data + 8);
		}
		mdb_cursor_close(c);
	}
	MDB_stat ms;
	if (mdb_stat(txn, q->dbi[D_QUAR], &ms) == 0)
		st->quarantined = ms.ms_entries;
	MDB_envinfo info;
	mdb_env_info(q->env, &info);
	st->map_size = info.me_mapsize;
	st->map_used = ((size_t)info.me_last_pgno + 1) * q->page_size;
	st->map_size_max = q->map_max;
	st->commits = atomic_load(&q->commits);
	st->commit_requests = atomic_load(&q->commit_requests);
	read_end(q, txn);
	return 0;
}

int pvm_queue_quarantine_list(struct pvm_queue *q, struct pvm_quarantine_entry **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	MDB_txn *txn;
	int rc = read_begin(q, &txn);
	if (rc)
		return rc;
	MDB_cursor *c;
	size_t cap = 0;
	if ((rc = mdb_cursor_open(txn, q->dbi[D_QUAR], &c)) == 0) {
		MDB_val key, val;
		rc = mdb_cursor_get(c, &key, &val, MDB_FIRST);
		while (rc == 0) {
			if (*n == cap) {
				cap = cap ? cap * 2 : 16;
				struct pvm_quarantine_entry *nv = realloc(*out, cap * sizeof(*nv));
				if (!nv) {
					rc = ENOMEM;
					break;
				}
				*out = nv;
			}
			struct pvm_quarantine_entry *e = &(*out)[(*n)++];
			memset(e, 0, sizeof(*e));
			e->id = key.mv_size == 8 ? get_be64(key.mv_data) : 0;
			json_t *j = json_loadb(val.mv_data, val.mv_size, 0, NULL);
			const char *reason = json_string_value(json_object_get(j, "reason"));
			pvm_strlcpy(e->reason, reason ? reason : "?", sizeof(e->reason));
			e->when_ms = (int64_t)json_integer_value(json_object_get(j, "when"));
			json_decref(j);
			rc = mdb_cursor_get(c, &key, &val, MDB_NEXT);
		}
		mdb_cursor_close(c);
	}
	read_end(q, txn);
	if (rc == MDB_NOTFOUND)
		return 0;
	free(*out);
	*out = NULL;
	*n = 0;
	return rc == ENOMEM ? PVM_ENOMEM : lmdb_err(rc, "quarantine list");
}

/* ---- verify -------------------------------------------------------------------------- */

static bool has_key(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t len)
{
	MDB_val key = {len, (void *)k}, val;
	return mdb_get(txn, dbi, &key, &val) == 0;
}

/* Index entry -> record checks for one index whose keys end with an id. */
static size_t verify_index(struct pvm_queue *q, MDB_txn *txn, enum dbi_index d)
{
	size_t problems = 0;
	MDB_cursor *c;
	if (mdb_cursor_open(txn, q->dbi[d], &c))
		return 1;
	MDB_val key, val;
	int rc = mdb_cursor_get(c, &key, &val, MDB_FIRST);
	while (rc == 0) {
		uint64_t id = 0;
		if (d == D_LINE || d == D_IDEM)
			id = val.mv_size == 8 ? get_be64(val.mv_data) : 0;
		else if (key.mv_size >= 8)
			id = get_be64((unsigned char *)key.mv_data + key.mv_size - 8);
		unsigned char k8[8];
		be64(k8, id);
		if (!id || !has_key(txn, q->dbi[D_OPS], k8, 8)) {
			pvm_error("journal verify: index %s has an entry for operation %llu, which "
			          "does not exist",
			          dbi_names[d], (unsigned long long)id);
			problems++;
		}
		rc = mdb_cursor_get(c, &key, &val, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return problems;
}

int pvm_queue_verify(struct pvm_queue *q, size_t *problems)
{
	size_t bad = 0;
	uint64_t *damaged = NULL;
	size_t ndamaged = 0, cap = 0;
	MDB_txn *txn;
	int rc = read_begin(q, &txn);
	if (rc)
		return rc;
	MDB_cursor *c;
	if ((rc = mdb_cursor_open(txn, q->dbi[D_OPS], &c))) {
		read_end(q, txn);
		return lmdb_err(rc, "cursor");
	}
	MDB_val key, val;
	rc = mdb_cursor_get(c, &key, &val, MDB_FIRST);
	while (rc == 0) {
		uint64_t id = key.mv_size == 8 ? get_be64(key.mv_data) : 0;
		struct pvm_op *op = NULL;
		int drc = pvm_rec_decode(id, val.mv_data, val.mv_size, &op);
		if (drc) {
			pvm_error("journal verify: record %llu: %s", (unsigned long long)id,
			          pvm_strerror(drc));
			bad++;
			if (ndamaged == cap) {
				cap = cap ? cap * 2 : 8;
				uint64_t *nv = realloc(damaged, cap * sizeof(*nv));
				if (nv)
					damaged = nv;
			}
			if (ndamaged < cap)
				damaged[ndamaged++] = id;
		} else {
			unsigned char k[44];
			const char *what = NULL;
			state_key(k, op->state, id);
			if (!has_key(txn, q->dbi[D_STATE], k, 9))
				what = "state index entry missing";
			if (op->idempotency_key[0]) {
				MDB_val kk = {strlen(op->idempotency_key), op->idempotency_key}, vv;
				if (mdb_get(txn, q->dbi[D_IDEM], &kk, &vv) || vv.mv_size != 8 ||
				    get_be64(vv.mv_data) != id)
					what = "idempotency index entry missing";
			}
			if (op->instance_uuid[0]) {
				inst_key(k, op->instance_uuid, id);
				if (!has_key(txn, q->dbi[D_INST], k, 44))
					what = "instance index entry missing";
				inst_key(k, op->instance_uuid, op->line_seq);
				if (pvm_op_state_active(op->state) !=
				    has_key(txn, q->dbi[D_LINE], k, 44))
					what = "instance line entry wrong";
			}
			pair_key(k, due_key_time(op->due_ms), id);
			if (op->listed != has_key(txn, q->dbi[D_DUE], k, 16))
				what = "due index entry wrong";
			pair_key(k, (uint64_t)op->finished_ms, id);
			if (op->finished_ms && !has_key(txn, q->dbi[D_FIN], k, 16))
				what = "finished index entry missing";
			if (what) {
				pvm_error("journal verify: operation %llu: %s",
				          (unsigned long long)id, what);
				bad++;
			}
			pvm_op_free(op);
		}
		rc = mdb_cursor_get(c, &key, &val, MDB_NEXT);
	}
	mdb_cursor_close(c);
	static const enum dbi_index idx[] = {D_DUE,   D_LINE, D_INST,   D_IDEM,
	                                     D_STATE, D_FIN,  D_SECRETS};
	for (size_t i = 0; i < sizeof(idx) / sizeof(idx[0]); i++)
		bad += verify_index(q, txn, idx[i]);
	read_end(q, txn);
	for (size_t i = 0; !q->read_only && i < ndamaged; i++) {
		struct quarantine_arg a = {.id = damaged[i]};
		struct req r = {.apply = apply_quarantine, .arg = &a, .isolate = true};
		run_request(q, &r);
	}
	free(damaged);
	if (problems)
		*problems = bad;
	return rc == MDB_NOTFOUND ? 0 : lmdb_err(rc, "verify");
}

/* ---- open, recovery, close ----------------------------------------------------------- */

/* Refuses a data file that is not LMDB's before LMDB touches anything. */
static int precheck_data_file(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISREG(st.st_mode)) {
		pvm_error("journal: %s is not a regular file; refusing to use this state directory",
		          path);
		return PVM_ENOTJOURNAL;
	}
	if (st.st_size == 0)
		return 0;
	unsigned char hdr[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t r = pread(fd, hdr, sizeof(hdr), 0);
	close(fd);
	/* An LMDB meta page: page header (16 bytes, flags at 10 with P_META 0x08), then the
	 * magic 0xBEEFC0DE. */
	uint32_t magic = r == (ssize_t)sizeof(hdr)
	                         ? (uint32_t)hdr[16] | (uint32_t)hdr[17] << 8 |
	                                   (uint32_t)hdr[18] << 16 | (uint32_t)hdr[19] << 24
	                         : 0;
	if (magic != 0xBEEFC0DEu || !(hdr[10] & 0x08)) {
		pvm_error("journal: %s is not an LMDB environment; refusing to start (nothing was "
		          "changed; move it away or point powervm_state_dir elsewhere)",
		          path);
		return PVM_ENOTJOURNAL;
	}
	return 0;
}

static int take_dir_lock(struct pvm_queue *q)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/powervmd.lock", q->dir);
	q->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (q->lock_fd < 0) {
		int e = errno;
		pvm_error("journal: cannot open %s: %s", path, strerror(e));
		return -e;
	}
	if (flock(q->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		if (e == EWOULDBLOCK) {
			pvm_error("journal: %s is in use by another powervmd process; only one may "
			          "write a journal",
			          q->dir);
			return -EBUSY;
		}
		return -e;
	}
	return 0;
}

static int open_dbis(struct pvm_queue *q)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(q->env, NULL, q->read_only ? MDB_RDONLY : 0, &txn);
	if (rc)
		return lmdb_err(rc, "begin");
	/* A foreign LMDB environment has no "meta" database, or one without our format. */
	MDB_dbi main;
	MDB_stat ms;
	rc = mdb_dbi_open(txn, NULL, 0, &main);
	if (rc == 0)
		rc = mdb_stat(txn, main, &ms);
	if (rc) {
		mdb_txn_abort(txn);
		return lmdb_err(rc, "main db");
	}
	bool fresh = ms.ms_entries == 0;
	if (fresh && q->read_only) {
		mdb_txn_abort(txn);
		pvm_error("journal: %s holds no journal yet", q->dir);
		return PVM_ENOTFOUND;
	}
	for (int i = 0; i < D_COUNT; i++) {
		rc = mdb_dbi_open(txn, dbi_names[i], fresh ? MDB_CREATE : 0, &q->dbi[i]);
		if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) {
			mdb_txn_abort(txn);
			pvm_error("journal: %s/data.mdb is an LMDB environment, but not a powervmd "
			          "journal (no database '%s'); nothing was changed",
			          q->dir, dbi_names[i]);
			return PVM_ENOTJOURNAL;
		}
		if (rc) {
			mdb_txn_abort(txn);
			return lmdb_err(rc, "open db");
		}
	}
	MDB_val key = {6, "format"}, val;
	if (fresh) {
		MDB_val v = {strlen(JOURNAL_FORMAT), JOURNAL_FORMAT};
		rc = mdb_put(txn, q->dbi[D_META], &key, &v, 0);
	} else {
		rc = mdb_get(txn, q->dbi[D_META], &key, &val);
		size_t pl = strlen(JOURNAL_FORMAT_PREFIX);
		if (rc == MDB_NOTFOUND ||
		    (rc == 0 &&
		     (val.mv_size <= pl || memcmp(val.mv_data, JOURNAL_FORMAT_PREFIX, pl)))) {
			mdb_txn_abort(txn);
			pvm_error("journal: %s/data.mdb is not a powervmd journal (no format "
			          "marker); nothing was changed",
			          q->dir);
			return PVM_ENOTJOURNAL;
		}
		if (rc == 0) {
			char ver[16] = "";
			size_t vl = val.mv_size - pl < sizeof(ver) - 1 ? val.mv_size - pl
			                                               : sizeof(ver) - 1;
			memcpy(ver, (char *)val.mv_data + pl, vl);
			if (atoi(ver) > JOURNAL_FORMAT_VERSION) {
				mdb_txn_abort(txn);
				pvm_error("journal: %s holds a journal of format %s, newer than "
				          "this build reads (%d); nothing was changed",
				          q->dir, ver, JOURNAL_FORMAT_VERSION);
				return PVM_EVERSION;
			}
		}
	}
	if (rc) {
		mdb_txn_abort(txn);
		return lmdb_err(rc, "format marker");
	}
	/* Committed even when read-only: LMDB keeps database handles only from a transaction
	 * that commits. */
	rc = mdb_txn_commit(txn);
	return lmdb_err(rc, "commit open");
}

/* Returns operations left running to queued and reverting ones to due, in one transaction. */
static int recover(struct pvm_queue *q)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(q->env, NULL, 0, &txn);
	if (rc)
		return lmdb_err(rc, "begin recovery");
	int64_t now = pvm_now_ms();
	size_t count = 0;
	enum pvm_op_state states[] = {PVM_OP_RUNNING, PVM_OP_REVERTING};
	for (int si = 0; si < 2 && rc == 0; si++) {
		/* Collect first: changing state moves entries within the index we scan. */
		uint64_t *ids = NULL;
		size_t n = 0, cap = 0;
		MDB_cursor *c;
		if ((rc = mdb_cursor_open(txn, q->dbi[D_STATE], &c)))
			break;
		unsigned char k[9];
		state_key(k, states[si], 0);
		MDB_val key = {9, k}, val;
		int crc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
		while (crc == 0 && key.mv_size == 9 &&
		       ((unsigned char *)key.mv_data)[0] == (unsigned char)states[si]) {
			if (n == cap) {
				cap = cap ? cap * 2 : 256;
				uint64_t *nv = realloc(ids, cap * sizeof(*nv));
				if (!nv) {
					crc = ENOMEM;
					break;
				}
				ids = nv;
			}
			ids[n++] = get_be64((unsigned char *)key.mv_data + 1);
			crc = mdb_cursor_get(c, &key, &val, MDB_NEXT);
		}
		mdb_cursor_close(c);
		if (crc == ENOMEM) {
			free(ids);
			rc = PVM_ENOMEM;
			break;
		}
		for (size_t i = 0; i < n && rc == 0; i++) {
			struct pvm_op *op;
			int lrc = load_op(q, txn, ids[i], &op);
			if (lrc) /* damaged: left for verify/quarantine, the rest goes on */
				continue;
			struct pvm_log_ctx ctx = {op->id, op->instance_uuid, op->request_id};
			if (op->state == PVM_OP_RUNNING) {
				rc = change_state(q, txn, op, PVM_OP_QUEUED, now);
				if (!rc)
					rc = relist(q, txn, op, now);
				pvm_log(PVM_LOG_INFO, &ctx,
				        "journal: %s was running when the process stopped; it "
				        "resumes at step %d",
				        op->type, (int)op->step);
			} else if (!op->listed) {
				rc = set_listed(q, txn, op, true, now);
				pvm_log(PVM_LOG_INFO, &ctx,
				        "journal: %s was reverting when the process stopped; it "
				        "resumes reverting at step %d",
				        op->type, (int)op->step);
			}
			op->flags |= PVM_OPF_RECOVERED;
			history_add(op, now, "recovered after a restart", NULL, NULL);
			op->updated_ms = now;
			if (!rc)
				rc = store_op(q, txn, op);
			pvm_op_free(op);
			count++;
		}
		free(ids);
	}
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	rc = mdb_txn_commit(txn);
	if (rc)
		return lmdb_err(rc, "commit recovery");
	q->recovered = count;
	return 0;
}

int pvm_queue_open(const struct pvm_queue_opts *opts, struct pvm_queue **out)
{
	if (!opts || !opts->dir || !opts->dir[0])
		return PVM_EINVAL;
	struct pvm_queue *q = calloc(1, sizeof(*q));
	if (!q)
		return PVM_ENOMEM;
	int rc;
	q->lock_fd = -1;
	q->read_only = opts->read_only;
	q->map_size = opts->map_size ? opts->map_size : 64u << 20;
	q->map_max = opts->map_size_max ? opts->map_size_max : (size_t)4 << 30;
	if (q->map_max < q->map_size)
		q->map_max = q->map_size;
	q->retention_ms = opts->retention_ms > 0 ? opts->retention_ms : 7LL * 24 * 3600 * 1000;
	q->dir = strdup(opts->dir);
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&q->rw, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&q->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->work_cv, &ca);
	pthread_cond_init(&q->change_cv, &ca);
	pthread_condattr_destroy(&ca);
	if (!q->dir) {
		rc = PVM_ENOMEM;
		goto fail;
	}
	snprintf(q->data_path, sizeof(q->data_path), "%s/data.mdb", q->dir);

	struct stat st;
	if (stat(q->dir, &st) != 0) {
		if (errno != ENOENT || q->read_only || mkdir(q->dir, 0700) != 0) {
			rc = -errno;
			pvm_error("journal: state directory %s: %s", q->dir, strerror(errno));
			goto fail;
		}
	} else if (!S_ISDIR(st.st_mode)) {
		pvm_error("journal: state directory %s is not a directory", q->dir);
		rc = PVM_ENOTJOURNAL;
		goto fail;
	}
	if ((rc = precheck_data_file(q->data_path)))
		goto fail;
	if (!q->read_only && (rc = take_dir_lock(q)))
		goto fail;
	if (opts->secret_key_file) {
		if ((rc = pvm_secret_key_load(opts->secret_key_file,
		                              opts->create_key && !q->read_only, q->key)))
			goto fail;
		q->has_key = true;
	}

	if ((rc = mdb_env_create(&q->env))) {
		rc = lmdb_err(rc, "env create");
		goto fail;
	}
	mdb_env_set_maxdbs(q->env, D_COUNT + 2);
	mdb_env_set_maxreaders(q->env, 256);
	mdb_env_set_mapsize(q->env, q->map_size);
	/* Full sync: never MDB_NOSYNC, MDB_NOMETASYNC or MDB_WRITEMAP|MDB_MAPASYNC. */
	unsigned flags = MDB_NOTLS | (q->read_only ? MDB_RDONLY : 0);
	rc = mdb_env_open(q->env, q->dir, flags, 0600);
	if (rc) {
		if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH)
			pvm_error("journal: %s is not a usable LMDB environment (%s); nothing was "
			          "changed",
			          q->data_path, mdb_strerror(rc));
		else
			pvm_error("journal: cannot open %s: %s", q->dir, mdb_strerror(rc));
		rc = lmdb_err(rc, "env open");
		goto fail;
	}
	MDB_stat es;
	mdb_env_stat(q->env, &es);
	q->page_size = es.ms_psize;
	MDB_envinfo info;
	mdb_env_info(q->env, &info);
	if (stat(q->data_path, &st) == 0 &&
	    (uint64_t)st.st_size < ((uint64_t)info.me_last_pgno + 1) * q->page_size) {
		pvm_error("journal: %s is %lld bytes, shorter than its header says (%llu); it "
		          "was truncated. Nothing was changed: restore it from a backup",
		          q->data_path, (long long)st.st_size,
		          (unsigned long long)(info.me_last_pgno + 1) * q->page_size);
		rc = PVM_ENOTJOURNAL;
		goto fail;
	}
	q->map_size = info.me_mapsize;
	if (!q->read_only) {
		/* Start with room: a journal that grew before starts at a fitting size. */
		size_t used = ((size_t)info.me_last_pgno + 1) * q->page_size;
		while (used > q->map_size / 4 * 3 && q->map_size < q->map_max) {
			size_t ns = q->map_size * 2 > q->map_max ? q->map_max : q->map_size * 2;
			if (mdb_env_set_mapsize(q->env, ns))
				break;
			q->map_size = ns;
		}
	}
	if ((rc = open_dbis(q)))
		goto fail;
	if (!q->read_only) {
		MDB_txn *txn;
		if ((rc = mdb_txn_begin(q->env, NULL, MDB_RDONLY, &txn))) {
			rc = lmdb_err(rc, "begin");
			goto fail;
		}
		rc = load_next_id(q, txn);
		mdb_txn_abort(txn);
		if (rc)
			goto fail;
	}
	if (!q->read_only && opts->recover && (rc = recover(q)))
		goto fail;
	if (!q->read_only) {
		q->running = true;
		if (pthread_create(&q->committer, NULL, committer_main, q)) {
			q->running = false;
			rc = PVM_ENOMEM;
			goto fail;
		}
	}
	*out = q;
	return 0;
fail:
	pvm_queue_close(q);
	return rc;
}

uint64_t pvm_queue_generation(struct pvm_queue *q)
{
	pthread_mutex_lock(&q->mu);
	uint64_t g = q->generation;
	pthread_mutex_unlock(&q->mu);
	return g;
}

uint64_t pvm_queue_wait_change(struct pvm_queue *q, uint64_t gen, int timeout_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t ns = ts.tv_nsec + (int64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;
	ts.tv_sec += ns / 1000000000;
	ts.tv_nsec = ns % 1000000000;
	pthread_mutex_lock(&q->mu);
	while (q->generation == gen && !q->stopping && q->running)
		if (pthread_cond_timedwait(&q->change_cv, &q->mu, &ts) == ETIMEDOUT)
			break;
	uint64_t g = q->generation;
	pthread_mutex_unlock(&q->mu);
	return g;
}

size_t pvm_queue_recovered(const struct pvm_queue *q)
{
	return q->recovered;
}

void pvm_queue_close(struct pvm_queue *q)
{
	if (!q)
		return;
	if (q->running) {
		pthread_mutex_lock(&q->mu);
		q->stopping = true;
		pthread_cond_signal(&q->work_cv);
		pthread_cond_broadcast(&q->change_cv);
		pthread_mutex_unlock(&q->mu);
		pthread_join(q->committer, NULL);
		q->running = false;
	}
	/* Requests queued after the last batch (async quarantines) are dropped. */
	while (q->pending_head) {
		struct req *r = q->pending_head;
		q->pending_head = r->next;
		if (r->async) {
			free(r->arg);
			free(r);
		}
	}
	if (q->env)
		mdb_env_close(q->env);
	if (q->lock_fd >= 0)
		close(q->lock_fd);
	memset(q->key, 0, sizeof(q->key));
	pthread_rwlock_destroy(&q->rw);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->work_cv);
	pthread_cond_destroy(&q->change_cv);
	free(q->dir);
	free(q);
}
