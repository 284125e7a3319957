/* test_queue.c: the journal (queue/) against its contract, include/pvm/queue.h and the
 * Operations / The journal sections of docs/architecture.md.
 *
 * Every case opens a real LMDB journal in a fresh temporary directory. Cases that damage the
 * data file open the environment with LMDB directly after pvm_queue_close(). Cases that
 * need a second process (a read-only reader next to a writer) exec queue_crash_child.
 * Deadlines are scaled by pvm_test_scale(); random runs print their seed.
 */
#include "testutil.h"

#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/queue.h"
#include "pvm/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define HOUR_MS (3600 * 1000LL)

/* Fails with both codes named when rc is not want. */
#define assert_rc(expr, want)                                                                      \
	do {                                                                                       \
		int rc_ = (expr);                                                                  \
		int want_ = (want);                                                                \
		if (rc_ != want_) {                                                                \
			print_error("%s:%d: %s = %s (%d), want %s (%d)\n", __FILE__, __LINE__,     \
			            #expr, pvm_errname(rc_), rc_, pvm_errname(want_), want_);      \
			fail();                                                                    \
		}                                                                                  \
	} while (0)

/* Fails when rc is 0 (some error is all the contract promises). */
#define assert_rc_fails(expr)                                                                      \
	do {                                                                                       \
		int rc_ = (expr);                                                                  \
		if (rc_ >= 0) {                                                                    \
			print_error("%s:%d: %s = %d, want an error\n", __FILE__, __LINE__, #expr,  \
			            rc_);                                                          \
			fail();                                                                    \
		}                                                                                  \
	} while (0)

#define assert_state(q, id, want)                                                                  \
	do {                                                                                       \
		enum pvm_op_state st_ = state_of((q), (id));                                       \
		if (st_ != (want)) {                                                               \
			print_error("%s:%d: op %llu is %s, want %s\n", __FILE__, __LINE__,         \
			            (unsigned long long)(id), pvm_op_state_name(st_),              \
			            pvm_op_state_name(want));                                      \
			fail();                                                                    \
		}                                                                                  \
	} while (0)

/* ---- fixture ---------------------------------------------------------------------------- */

struct fx {
	char *root;          /* fresh temporary directory */
	char dir[PATH_MAX];  /* root/state: the journal (created by pvm_queue_open) */
	char key[PATH_MAX];  /* root/secret.key (created by pvm_queue_open) */
	struct pvm_queue *q; /* open handle, or NULL */
};

static void fx_opts(const struct fx *f, struct pvm_queue_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->dir = f->dir;
	o->secret_key_file = f->key;
	o->create_key = true;
}

static void fx_open_with(struct fx *f, const struct pvm_queue_opts *o)
{
	assert_null(f->q);
	assert_rc(pvm_queue_open(o, &f->q), 0);
	assert_non_null(f->q);
}

static void fx_close(struct fx *f)
{
	pvm_queue_close(f->q);
	f->q = NULL;
}

/* Closes and opens again with the default options, recover as given. */
static void fx_reopen(struct fx *f, bool recover)
{
	fx_close(f);
	struct pvm_queue_opts o;
	fx_opts(f, &o);
	o.recover = recover;
	fx_open_with(f, &o);
}

static struct fx *fx_new(void)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f)
		abort();
	f->root = pvm_test_tmpdir("queue");
	snprintf(f->dir, sizeof(f->dir), "%s/state", f->root);
	snprintf(f->key, sizeof(f->key), "%s/secret.key", f->root);
	return f;
}

static int setup_open(void **state)
{
	struct fx *f = fx_new();
	struct pvm_queue_opts o;
	fx_opts(f, &o);
	int rc = pvm_queue_open(&o, &f->q);
	if (rc != 0) {
		print_error("pvm_queue_open(%s): %s\n", f->dir, pvm_errname(rc));
		pvm_test_rmtree(f->root);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int setup_closed(void **state)
{
	*state = fx_new();
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	if (!f)
		return 0;
	pvm_queue_close(f->q);
	pvm_test_rmtree(f->root);
	free(f);
	return 0;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static void uuid_n(char out[PVM_UUID_LEN + 1], unsigned n)
{
	snprintf(out, PVM_UUID_LEN + 1, "%08x-0000-4000-8000-%012x", n, n * 7u + 1u);
}

/* Submits a fresh operation; inst may be NULL, key may be NULL. */
static uint64_t sub_full(struct pvm_queue *q, const char *type, const char *inst, const char *key,
                         int64_t not_before, const json_t *params, const json_t *secrets)
{
	json_t *own = NULL;
	if (!params)
		params = own = json_pack("{s:s, s:i}", "flavor", "m1.small", "vcpus", 2);
	struct pvm_op_submit s = {
	        .type = type,
	        .instance_uuid = inst,
	        .idempotency_key = key,
	        .request_id = "req-0123",
	        .table_version = 1,
	        .params = params,
	        .secrets = secrets,
	        .not_before_ms = not_before,
	};
	uint64_t id = 0;
	bool existed = true;
	assert_rc(pvm_queue_submit(q, &s, &id, &existed), 0);
	assert_false(existed);
	assert_true(id >= 1);
	json_decref(own);
	return id;
}

static uint64_t sub(struct pvm_queue *q, const char *inst, int64_t not_before)
{
	return sub_full(q, "spawn", inst, NULL, not_before, NULL, NULL);
}

/* Submits on a fresh instance of its own (no FIFO interplay). */
static uint64_t sub_alone(struct pvm_queue *q)
{
	static atomic_uint counter = 1000;
	char u[PVM_UUID_LEN + 1];
	uuid_n(u, atomic_fetch_add(&counter, 1));
	return sub(q, u, 0);
}

static struct pvm_op *get_op(struct pvm_queue *q, uint64_t id)
{
	struct pvm_op *op = NULL;
	assert_rc(pvm_queue_get(q, id, &op), 0);
	assert_non_null(op);
	assert_int_equal(op->id, id);
	return op;
}

static enum pvm_op_state state_of(struct pvm_queue *q, uint64_t id)
{
	struct pvm_op *op = get_op(q, id);
	enum pvm_op_state s = op->state;
	pvm_op_free(op);
	return s;
}

static int set_state(struct pvm_queue *q, uint64_t id, int st)
{
	struct pvm_op_update u;
	pvm_op_update_init(&u, id);
	u.new_state = st;
	if (st == PVM_OP_REVERTING)
		u.direction = PVM_DIR_REVERT;
	if (st == PVM_OP_WAITING)
		u.due_ms = pvm_now_ms() + 10 * HOUR_MS;
	return pvm_queue_update(q, &u);
}

/* Moves a queued operation to target along legal transitions, through pvm_queue_update. */
static void drive_to(struct pvm_queue *q, uint64_t id, enum pvm_op_state target)
{
	static const int paths[PVM_OP_STATE_COUNT][4] = {
	        [PVM_OP_QUEUED] = {-1},
	        [PVM_OP_RUNNING] = {PVM_OP_RUNNING, -1},
	        [PVM_OP_WAITING] = {PVM_OP_RUNNING, PVM_OP_WAITING, -1},
	        [PVM_OP_REVERTING] = {PVM_OP_RUNNING, PVM_OP_REVERTING, -1},
	        [PVM_OP_SUCCEEDED] = {PVM_OP_RUNNING, PVM_OP_SUCCEEDED, -1},
	        [PVM_OP_FAILED] = {PVM_OP_RUNNING, PVM_OP_REVERTING, PVM_OP_FAILED, -1},
	        [PVM_OP_CANCELLED] = {PVM_OP_CANCELLED, -1},
	};
	for (int i = 0; paths[target][i] >= 0; i++)
		assert_rc(set_state(q, id, paths[target][i]), 0);
	assert_state(q, id, target);
}

static struct pvm_op *claim_ok(struct pvm_queue *q, int64_t now)
{
	struct pvm_op *op = NULL;
	int64_t next = 0;
	assert_rc(pvm_queue_claim(q, now, &op, &next), 0);
	assert_non_null(op);
	return op;
}

static uint64_t claim_id(struct pvm_queue *q, int64_t now)
{
	struct pvm_op *op = claim_ok(q, now);
	uint64_t id = op->id;
	pvm_op_free(op);
	return id;
}

/* Asserts that nothing is due at now; returns the next due time claim reported. */
static int64_t claim_none(struct pvm_queue *q, int64_t now)
{
	struct pvm_op *op = NULL;
	int64_t next = 0;
	int rc = pvm_queue_claim(q, now, &op, &next);
	if (rc != PVM_ENOTFOUND) {
		print_error("claim at %lld: %s, op %llu (%s), want PVM_ENOTFOUND\n", (long long)now,
		            pvm_errname(rc), op ? (unsigned long long)op->id : 0ULL,
		            op ? pvm_op_state_name(op->state) : "-");
		pvm_op_free(op);
		fail();
	}
	return next;
}

static size_t verify_problems(struct pvm_queue *q)
{
	size_t problems = 12345;
	assert_rc(pvm_queue_verify(q, &problems), 0);
	return problems;
}

static void assert_verify_clean(struct pvm_queue *q)
{
	assert_int_equal(verify_problems(q), 0);
}

static struct pvm_queue_stats stats_of(struct pvm_queue *q)
{
	struct pvm_queue_stats st;
	memset(&st, 0xa5, sizeof(st));
	assert_rc(pvm_queue_stats(q, &st), 0);
	return st;
}

/* ids of a list result, for comparisons. */
struct idlist {
	uint64_t ids[64];
	size_t n;
	size_t damaged;
};

static struct idlist list_ids(struct pvm_queue *q, const struct pvm_queue_filter *f)
{
	struct idlist l = {.n = 0};
	struct pvm_op **ops = NULL;
	size_t n = 0;
	l.damaged = 999;
	assert_rc(pvm_queue_list(q, f, &ops, &n, &l.damaged), 0);
	assert_true(n <= 64);
	for (size_t i = 0; i < n; i++)
		l.ids[i] = ops[i]->id;
	l.n = n;
	pvm_op_list_free(ops, n);
	return l;
}

static void assert_ids_at(int line, const struct idlist *l, size_t n, ...)
{
	va_list ap;
	va_start(ap, n);
	bool ok = l->n == n;
	uint64_t want[64];
	for (size_t i = 0; i < n && i < 64; i++) {
		want[i] = va_arg(ap, uint64_t);
		if (ok && l->ids[i] != want[i])
			ok = false;
	}
	va_end(ap);
	if (!ok) {
		char got[512] = "", exp[512] = "";
		size_t a = 0, b = 0;
		for (size_t i = 0; i < l->n && a < sizeof(got) - 24; i++)
			a += (size_t)snprintf(got + a, sizeof(got) - a, " %llu",
			                      (unsigned long long)l->ids[i]);
		for (size_t i = 0; i < n && i < 64 && b < sizeof(exp) - 24; i++)
			b += (size_t)snprintf(exp + b, sizeof(exp) - b, " %llu",
			                      (unsigned long long)want[i]);
		print_error("line %d: list gave [%s ], want [%s ]\n", line, got, exp);
		fail();
	}
}

#define assert_ids(...) assert_ids_at(__LINE__, __VA_ARGS__)

static size_t history_len(const struct pvm_op *op)
{
	assert_true(json_is_array(op->history));
	return json_array_size(op->history);
}

/* Reads a whole file; returns a heap buffer (NULL on error) and its size. */
static unsigned char *slurp(const char *path, size_t *len)
{
	char *buf = NULL;
	int rc = pvm_read_file(path, (size_t)1 << 31, &buf, len);
	if (rc != 0) {
		print_error("read %s: %s\n", path, pvm_errname(rc));
		return NULL;
	}
	return (unsigned char *)buf;
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fsync(fd), 0);
	close(fd);
}

struct wait_ms_arg {
	int64_t after;
};
static bool clock_passed(void *p)
{
	return pvm_now_ms() > ((struct wait_ms_arg *)p)->after;
}
/* Waits (bounded) until the wall clock is past t, so later timestamps are strictly greater. */
static void wait_clock_past(int64_t t)
{
	struct wait_ms_arg a = {t};
	assert_true(pvm_test_wait(clock_passed, &a, 5000));
}

/* Path of the helper program next to this executable. */
static char *helper_path(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	assert_non_null(slash);
	*slash = '\0';
	char *p = NULL;
	assert_true(asprintf(&p, "%s/queue_crash_child", self) > 0);
	assert_int_equal(access(p, X_OK), 0);
	return p;
}

/* Runs the helper with argv and returns its wait status (bounded by a scaled deadline). */
static int run_helper(char *const argv[])
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	int64_t end = pvm_mono_ns() + (int64_t)60000 * pvm_test_scale() * 1000000;
	int status = 0;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		assert_true(r == 0);
		if (pvm_mono_ns() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			print_error("helper did not finish in time\n");
			fail();
		}
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

/* ---- states and the transition table --------------------------------------------------- */

static const bool legal[PVM_OP_STATE_COUNT][PVM_OP_STATE_COUNT] = {
        [PVM_OP_QUEUED][PVM_OP_RUNNING] = true,      [PVM_OP_QUEUED][PVM_OP_CANCELLED] = true,
        [PVM_OP_RUNNING][PVM_OP_WAITING] = true,     [PVM_OP_RUNNING][PVM_OP_QUEUED] = true,
        [PVM_OP_RUNNING][PVM_OP_SUCCEEDED] = true,   [PVM_OP_RUNNING][PVM_OP_REVERTING] = true,
        [PVM_OP_WAITING][PVM_OP_RUNNING] = true,     [PVM_OP_WAITING][PVM_OP_REVERTING] = true,
        [PVM_OP_REVERTING][PVM_OP_WAITING] = true,   [PVM_OP_REVERTING][PVM_OP_FAILED] = true,
        [PVM_OP_REVERTING][PVM_OP_CANCELLED] = true, [PVM_OP_FAILED][PVM_OP_QUEUED] = true,
};

static void test_queue_state_names(void **state)
{
	(void)state;
	static const char *const names[] = {"queued",    "running", "waiting",  "reverting",
	                                    "succeeded", "failed",  "cancelled"};
	for (int s = 0; s < PVM_OP_STATE_COUNT; s++) {
		assert_string_equal(pvm_op_state_name((enum pvm_op_state)s), names[s]);
		enum pvm_op_state back = PVM_OP_STATE_COUNT;
		assert_rc(pvm_op_state_parse(names[s], &back), 0);
		assert_int_equal(back, s);
	}
	assert_string_equal(pvm_op_state_name(PVM_OP_STATE_COUNT), "?");
	assert_string_equal(pvm_op_state_name((enum pvm_op_state) - 3), "?");
	enum pvm_op_state out = PVM_OP_QUEUED;
	assert_rc(pvm_op_state_parse("bogus", &out), PVM_EINVAL);
	assert_rc(pvm_op_state_parse("", &out), PVM_EINVAL);
	assert_rc(pvm_op_state_parse("Queued ", &out), PVM_EINVAL);

	for (int s = 0; s < PVM_OP_STATE_COUNT; s++) {
		bool final = s == PVM_OP_SUCCEEDED || s == PVM_OP_CANCELLED;
		bool active = s == PVM_OP_QUEUED || s == PVM_OP_RUNNING || s == PVM_OP_WAITING ||
		              s == PVM_OP_REVERTING;
		assert_int_equal(pvm_op_state_final((enum pvm_op_state)s), final);
		assert_int_equal(pvm_op_state_active((enum pvm_op_state)s), active);
	}
}

static void test_queue_transition_table(void **state)
{
	(void)state;
	for (int a = 0; a < PVM_OP_STATE_COUNT; a++)
		for (int b = 0; b < PVM_OP_STATE_COUNT; b++) {
			bool got = pvm_op_transition_ok((enum pvm_op_state)a, (enum pvm_op_state)b);
			if (got != legal[a][b]) {
				print_error("pvm_op_transition_ok(%s, %s) = %d, want %d\n",
				            pvm_op_state_name((enum pvm_op_state)a),
				            pvm_op_state_name((enum pvm_op_state)b), got,
				            legal[a][b]);
				fail();
			}
		}
	/* Out of range never passes. */
	assert_false(pvm_op_transition_ok(PVM_OP_QUEUED, PVM_OP_STATE_COUNT));
	assert_false(pvm_op_transition_ok(PVM_OP_STATE_COUNT, PVM_OP_QUEUED));
	assert_false(pvm_op_transition_ok((enum pvm_op_state) - 1, PVM_OP_RUNNING));
}

/* Every one of the 7x7 pairs through pvm_queue_update: legal ones apply, all others
 * (self-transitions included) are refused with PVM_ETRANSITION and change nothing. */
static void test_queue_update_all_transition_pairs(void **state)
{
	struct fx *f = *state;
	for (int a = 0; a < PVM_OP_STATE_COUNT; a++)
		for (int b = 0; b < PVM_OP_STATE_COUNT; b++) {
			uint64_t id = sub_alone(f->q);
			drive_to(f->q, id, (enum pvm_op_state)a);
			struct pvm_op *before = get_op(f->q, id);
			struct pvm_op_update u;
			pvm_op_update_init(&u, id);
			u.new_state = b;
			u.progress = 42;
			if (b == PVM_OP_WAITING || b == PVM_OP_QUEUED)
				u.due_ms = pvm_now_ms() + HOUR_MS;
			if (b == PVM_OP_REVERTING)
				u.direction = PVM_DIR_REVERT;
			int rc = pvm_queue_update(f->q, &u);
			int want = legal[a][b] ? 0 : PVM_ETRANSITION;
			struct pvm_op *after = get_op(f->q, id);
			if (rc != want || (int)after->state != (legal[a][b] ? b : a)) {
				print_error("update %s -> %s: %s, now %s; want %s\n",
				            pvm_op_state_name((enum pvm_op_state)a),
				            pvm_op_state_name((enum pvm_op_state)b),
				            pvm_errname(rc), pvm_op_state_name(after->state),
				            pvm_errname(want));
				fail();
			}
			if (legal[a][b]) {
				/* failed -> queued starts over (progress 0); elsewhere it sticks. */
				if (after->progress != (a == PVM_OP_FAILED ? 0 : 42)) {
					print_error("update %s -> %s: progress %d\n",
					            pvm_op_state_name((enum pvm_op_state)a),
					            pvm_op_state_name((enum pvm_op_state)b),
					            (int)after->progress);
					fail();
				}
				bool fin = b == PVM_OP_SUCCEEDED || b == PVM_OP_FAILED ||
				           b == PVM_OP_CANCELLED;
				if (fin)
					assert_true(after->finished_ms > 0);
			} else {
				/* A refused update is refused whole. */
				assert_int_equal(after->progress, before->progress);
				assert_int_equal(after->updated_ms, before->updated_ms);
			}
			pvm_op_free(before);
			pvm_op_free(after);
		}
	assert_verify_clean(f->q);
}

static void test_queue_update_expect_state(void **state)
{
	struct fx *f = *state;
	uint64_t id = sub_alone(f->q);
	struct pvm_op_update u;
	pvm_op_update_init(&u, id);
	u.expect_state = PVM_OP_RUNNING; /* it is queued */
	u.new_state = PVM_OP_CANCELLED;
	assert_rc(pvm_queue_update(f->q, &u), PVM_ETRANSITION);
	assert_state(f->q, id, PVM_OP_QUEUED);

	pvm_op_update_init(&u, id);
	u.expect_state = PVM_OP_RUNNING;
	u.progress = 10; /* no state change, still checked */
	assert_rc(pvm_queue_update(f->q, &u), PVM_ETRANSITION);
	struct pvm_op *op = get_op(f->q, id);
	assert_int_equal(op->progress, 0);
	pvm_op_free(op);

	pvm_op_update_init(&u, id);
	u.expect_state = PVM_OP_QUEUED;
	u.new_state = PVM_OP_RUNNING;
	assert_rc(pvm_queue_update(f->q, &u), 0);
	assert_state(f->q, id, PVM_OP_RUNNING);

	pvm_op_update_init(&u, id);
	u.expect_state = PVM_OP_RUNNING;
	u.progress = 15;
	assert_rc(pvm_queue_update(f->q, &u), 0);
	op = get_op(f->q, id);
	assert_int_equal(op->progress, 15);
	assert_true(op->started_ms > 0);
	pvm_op_free(op);
}

static void test_queue_update_fields(void **state)
{
	struct fx *f = *state;
	uint64_t id = sub_alone(f->q);
	drive_to(f->q, id, PVM_OP_RUNNING);
	struct pvm_op *op = get_op(f->q, id);
	int64_t updated0 = op->updated_ms;
	size_t h0 = history_len(op);
	pvm_op_free(op);
	struct pvm_op_update u;

	/* An update with nothing set keeps everything. */
	pvm_op_update_init(&u, id);
	assert_int_equal(u.id, id);
	assert_int_equal(u.expect_state, PVM_KEEP);
	assert_int_equal(u.new_state, PVM_KEEP);
	assert_int_equal(u.direction, PVM_KEEP);
	assert_int_equal(u.step, PVM_KEEP);
	assert_int_equal(u.due_ms, PVM_KEEP);
	assert_int_equal(u.progress, PVM_KEEP);
	assert_null(u.checkpoint_set);
	assert_false(u.record_attempt);
	assert_rc(pvm_queue_update(f->q, &u), 0);

	/* An attempt counts, in attempts, retries and history. */
	pvm_op_update_init(&u, id);
	u.step = 2;
	assert_rc(pvm_queue_update(f->q, &u), 0);
	pvm_op_update_init(&u, id);
	u.record_attempt = true;
	u.error = "VIOS busy";
	u.error_code = "HSCL3205";
	assert_rc(pvm_queue_update(f->q, &u), 0);
	pvm_op_update_init(&u, id);
	u.record_attempt = true;
	u.error = "timed out";
	u.error_code = "PVM_ETIMEDOUT";
	assert_rc(pvm_queue_update(f->q, &u), 0);
	op = get_op(f->q, id);
	assert_int_equal(op->step, 2);
	assert_int_equal(op->attempts, 2);
	assert_int_equal(op->retries, 2);
	assert_int_equal(history_len(op), h0 + 2);
	assert_non_null(op->error);
	assert_string_equal(op->error, "timed out");
	assert_non_null(op->error_code);
	assert_string_equal(op->error_code, "PVM_ETIMEDOUT");
	assert_true(op->updated_ms >= updated0);
	pvm_op_free(op);

	/* A new step resets attempts, not retries. */
	pvm_op_update_init(&u, id);
	u.step = 3;
	assert_rc(pvm_queue_update(f->q, &u), 0);
	op = get_op(f->q, id);
	assert_int_equal(op->step, 3);
	assert_int_equal(op->attempts, 0);
	assert_int_equal(op->retries, 2);
	pvm_op_free(op);

	/* Checkpoints merge key by key, replacing; signals set and delete; result replaces. */
	json_t *c1 = json_pack("{s:{s:s}, s:i}", "create_lpar", "intent", "sent", "n", 1);
	json_t *c2 = json_pack("{s:{s:s, s:s}}", "create_lpar", "intent", "sent", "job", "J42");
	json_t *s1 = json_pack("{s:b, s:s}", "vif_plugged", 1, "abort", "soon");
	json_t *s2 = json_pack("{s:n}", "abort");
	json_t *r1 = json_pack("{s:s}", "lpar", "x");
	json_t *r2 = json_pack("{s:i}", "bytes", 7);
	pvm_op_update_init(&u, id);
	u.checkpoint_set = c1;
	u.signals_set = s1;
	u.result = r1;
	assert_rc(pvm_queue_update(f->q, &u), 0);
	pvm_op_update_init(&u, id);
	u.checkpoint_set = c2;
	u.signals_set = s2;
	u.result = r2;
	assert_rc(pvm_queue_update(f->q, &u), 0);
	op = get_op(f->q, id);
	json_t *want_cp = json_pack("{s:{s:s, s:s}, s:i}", "create_lpar", "intent", "sent", "job",
	                            "J42", "n", 1);
	json_t *want_sig = json_pack("{s:b}", "vif_plugged", 1);
	assert_true(json_equal(op->checkpoints, want_cp));
	assert_true(json_equal(op->signals, want_sig));
	assert_true(json_equal(op->result, r2));
	pvm_op_free(op);
	json_decref(want_cp);
	json_decref(want_sig);

	/* Progress, flags, direction, due. */
	int64_t due = pvm_now_ms() + 5 * HOUR_MS;
	pvm_op_update_init(&u, id);
	u.progress = 60;
	u.set_flags = PVM_OPF_CANCEL_REQUESTED;
	u.direction = PVM_DIR_REVERT;
	u.due_ms = due;
	assert_rc(pvm_queue_update(f->q, &u), 0);
	op = get_op(f->q, id);
	assert_int_equal(op->progress, 60);
	assert_true(op->flags & PVM_OPF_CANCEL_REQUESTED);
	assert_int_equal(op->direction, PVM_DIR_REVERT);
	assert_int_equal(op->due_ms, due);
	pvm_op_free(op);
	pvm_op_update_init(&u, id);
	u.clear_flags = PVM_OPF_CANCEL_REQUESTED;
	u.direction = PVM_DIR_FORWARD;
	assert_rc(pvm_queue_update(f->q, &u), 0);
	op = get_op(f->q, id);
	assert_false(op->flags & PVM_OPF_CANCEL_REQUESTED);
	assert_int_equal(op->direction, PVM_DIR_FORWARD);
	pvm_op_free(op);

	/* Bad fields are refused whole. */
	json_t *arr = json_array();
	pvm_op_update_init(&u, id);
	u.progress = 101;
	u.step = 9;
	assert_rc(pvm_queue_update(f->q, &u), PVM_EINVAL);
	pvm_op_update_init(&u, id);
	u.progress = -2;
	assert_rc(pvm_queue_update(f->q, &u), PVM_EINVAL);
	pvm_op_update_init(&u, id);
	u.direction = 7;
	u.step = 9;
	assert_rc(pvm_queue_update(f->q, &u), PVM_EINVAL);
	pvm_op_update_init(&u, id);
	u.checkpoint_set = arr;
	u.step = 9;
	assert_rc(pvm_queue_update(f->q, &u), PVM_EINVAL);
	pvm_op_update_init(&u, id);
	u.new_state = 42;
	assert_rc_fails(pvm_queue_update(f->q, &u));
	op = get_op(f->q, id);
	assert_int_equal(op->step, 3);
	assert_int_equal(op->progress, 60);
	assert_int_equal(op->state, PVM_OP_RUNNING);
	pvm_op_free(op);

	pvm_op_update_init(&u, 987654321);
	u.progress = 5;
	assert_rc(pvm_queue_update(f->q, &u), PVM_ENOTFOUND);

	/* All of it survives a restart. */
	fx_reopen(f, false);
	op = get_op(f->q, id);
	assert_int_equal(op->step, 3);
	assert_int_equal(op->retries, 2);
	assert_int_equal(op->progress, 60);
	assert_true(json_equal(op->result, r2));
	assert_string_equal(op->error_code, "PVM_ETIMEDOUT");
	pvm_op_free(op);

	json_decref(arr);
	json_decref(c1);
	json_decref(c2);
	json_decref(s1);
	json_decref(s2);
	json_decref(r1);
	json_decref(r2);
	assert_verify_clean(f->q);
}

/* ---- submission ------------------------------------------------------------------------- */

static void assert_op_as_submitted(const struct pvm_op *op, const char *inst, int64_t t0,
                                   int64_t t1, int64_t not_before, int64_t deadline,
                                   const json_t *params)
{
	assert_string_equal(op->type, "spawn");
	assert_string_equal(op->instance_uuid, inst);
	assert_string_equal(op->idempotency_key, "req-1/inst/spawn");
	assert_string_equal(op->request_id, "req-1");
	assert_int_equal(op->table_version, 3);
	assert_int_equal(op->format_version, PVM_QUEUE_RECORD_VERSION);
	assert_int_equal(op->state, PVM_OP_QUEUED);
	assert_int_equal(op->direction, PVM_DIR_FORWARD);
	assert_int_equal(op->step, 0);
	assert_int_equal(op->attempts, 0);
	assert_int_equal(op->retries, 0);
	assert_int_equal(op->flags, 0);
	assert_int_equal(op->progress, 0);
	assert_true(op->created_ms >= t0 && op->created_ms <= t1);
	assert_true(op->updated_ms >= op->created_ms);
	assert_int_equal(op->started_ms, 0);
	assert_int_equal(op->finished_ms, 0);
	assert_int_equal(op->due_ms, not_before);
	assert_int_equal(op->deadline_ms, deadline);
	assert_true(json_equal(op->params, params));
	assert_true(json_is_object(op->checkpoints) && json_object_size(op->checkpoints) == 0);
	assert_true(json_is_object(op->signals) && json_object_size(op->signals) == 0);
	assert_true(json_is_object(op->result) && json_object_size(op->result) == 0);
	assert_true(json_is_array(op->history));
	assert_null(op->error);
	assert_null(op->error_code);
}

static void test_queue_submit_records_fields(void **state)
{
	struct fx *f = *state;
	char inst[PVM_UUID_LEN + 1];
	uuid_n(inst, 1);
	json_t *params = json_pack("{s:{s:s, s:i}, s:[{s:s}], s:n, s:f, s:s}", "flavor", "name",
	                           "m1.large", "vcpus", 8, "network_info", "id", "port-1", "image",
	                           "ratio", 0.25, "utf8", "\xc3\xa9t\xc3\xa9 \xe2\x9c\x93");
	int64_t nb = pvm_now_ms() + HOUR_MS;
	int64_t deadline = nb + HOUR_MS;
	struct pvm_op_submit s = {
	        .type = "spawn",
	        .instance_uuid = inst,
	        .idempotency_key = "req-1/inst/spawn",
	        .request_id = "req-1",
	        .table_version = 3,
	        .params = params,
	        .deadline_ms = deadline,
	        .not_before_ms = nb,
	};
	int64_t t0 = pvm_now_ms();
	uint64_t id = 0;
	bool existed = true;
	assert_rc(pvm_queue_submit(f->q, &s, &id, &existed), 0);
	int64_t t1 = pvm_now_ms();
	assert_false(existed);
	assert_int_equal(id, 1); /* ids are assigned from 1 */

	struct pvm_op *op = get_op(f->q, id);
	assert_op_as_submitted(op, inst, t0, t1, nb, deadline, params);
	json_t *j = pvm_op_to_json(op);
	assert_true(json_is_object(j));
	json_decref(j);
	pvm_op_free(op);

	/* The minimal submission: no instance, key or request id, due now. */
	json_t *empty = json_object();
	struct pvm_op_submit m = {.type = "power_on", .params = empty};
	t0 = pvm_now_ms();
	uint64_t id2 = 0;
	assert_rc(pvm_queue_submit(f->q, &m, &id2, NULL), 0);
	t1 = pvm_now_ms();
	assert_true(id2 > id);
	op = get_op(f->q, id2);
	assert_string_equal(op->type, "power_on");
	assert_string_equal(op->instance_uuid, "");
	assert_string_equal(op->idempotency_key, "");
	assert_string_equal(op->request_id, "");
	assert_int_equal(op->deadline_ms, 0);
	assert_true(op->due_ms >= t0 - 1000 && op->due_ms <= t1);
	assert_true(json_is_object(op->params) && json_object_size(op->params) == 0);
	pvm_op_free(op);

	/* Durable: the same after close and open. */
	fx_reopen(f, true);
	op = get_op(f->q, id);
	assert_op_as_submitted(op, inst, t0 - HOUR_MS, t1, nb, deadline, params);
	pvm_op_free(op);
	assert_rc(pvm_queue_get(f->q, 424242, &op), PVM_ENOTFOUND);
	assert_rc(pvm_queue_get(f->q, 0, &op), PVM_ENOTFOUND);

	/* The state directory was created private. */
	struct stat st;
	assert_int_equal(stat(f->dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	json_decref(params);
	json_decref(empty);
	assert_verify_clean(f->q);
}

static void test_queue_submit_rejects_invalid(void **state)
{
	struct fx *f = *state;
	json_t *params = json_object();
	json_t *arr = json_array();
	json_t *str = json_string("x");
	char longtype[PVM_OP_TYPE_MAX + 8];
	memset(longtype, 't', sizeof(longtype) - 1);
	longtype[sizeof(longtype) - 1] = '\0';
	char longkey[PVM_IDEM_KEY_MAX + 8];
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	char longreq[PVM_REQUEST_ID_MAX + 8];
	memset(longreq, 'r', sizeof(longreq) - 1);
	longreq[sizeof(longreq) - 1] = '\0';
	uint64_t id = 0;
	bool existed = false;

	struct pvm_op_submit s = {.type = NULL, .params = params};
	assert_rc(pvm_queue_submit(f->q, &s, &id, &existed), PVM_EINVAL);
	s = (struct pvm_op_submit){.type = "spawn", .params = NULL};
	assert_rc(pvm_queue_submit(f->q, &s, &id, &existed), PVM_EINVAL);
	s = (struct pvm_op_submit){.type = "spawn", .params = arr};
	assert_rc(pvm_queue_submit(f->q, &s, &id, &existed), PVM_EINVAL);
	s = (struct pvm_op_submit){.type = "spawn", .params = str};
	assert_rc(pvm_queue_submit(f->q, &s, &id, &existed), PVM_EINVAL);
	s = (struct pvm_op_submit){.type = "", .params = params};
	assert_rc_fails(pvm_queue_submit(f->q, &s, &id, &existed));
	s = (struct pvm_op_submit){.type = longtype, .params = params};
	assert_rc_fails(pvm_queue_submit(f->q, &s, &id, &existed));
	s = (struct pvm_op_submit){
	        .type = "spawn", .instance_uuid = "not-a-uuid", .params = params};
	assert_rc_fails(pvm_queue_submit(f->q, &s, &id, &existed));
	s = (struct pvm_op_submit){.type = "spawn", .idempotency_key = longkey, .params = params};
	assert_rc_fails(pvm_queue_submit(f->q, &s, &id, &existed));
	s = (struct pvm_op_submit){.type = "spawn", .request_id = longreq, .params = params};
	assert_rc_fails(pvm_queue_submit(f->q, &s, &id, &existed));
	s = (struct pvm_op_submit){.type = "spawn", .params = params, .secrets = arr};
	assert_rc_fails(pvm_queue_submit(f->q, &s, &id, &existed));

	struct pvm_queue_stats st = stats_of(f->q);
	assert_int_equal(st.total, 0);
	json_decref(params);
	json_decref(arr);
	json_decref(str);
}

static void test_queue_idempotent_resubmit(void **state)
{
	struct fx *f = *state;
	char inst[PVM_UUID_LEN + 1];
	uuid_n(inst, 2);
	json_t *p1 = json_pack("{s:s, s:i, s:[i,i]}", "volume", "vol-1", "lun", 3, "paths", 1, 2);
	json_t *p1_reordered =
	        json_pack("{s:[i,i], s:i, s:s}", "paths", 1, 2, "lun", 3, "volume", "vol-1");
	uint64_t id = sub_full(f->q, "attach_volume", inst, "k-attach", 0, p1, NULL);

	struct pvm_op_submit s = {.type = "attach_volume",
	                          .instance_uuid = inst,
	                          .idempotency_key = "k-attach",
	                          .request_id = "req-0123",
	                          .table_version = 1,
	                          .params = p1};
	uint64_t again = 0;
	bool existed = false;
	assert_rc(pvm_queue_submit(f->q, &s, &again, &existed), 0);
	assert_true(existed);
	assert_int_equal(again, id);

	/* Equal JSON is the same params, whatever the order of its members. */
	s.params = p1_reordered;
	again = 0;
	existed = false;
	assert_rc(pvm_queue_submit(f->q, &s, &again, &existed), 0);
	assert_true(existed);
	assert_int_equal(again, id);

	uint64_t found = 0;
	assert_rc(pvm_queue_find_key(f->q, "k-attach", &found), 0);
	assert_int_equal(found, id);
	assert_rc(pvm_queue_find_key(f->q, "k-unknown", &found), PVM_ENOTFOUND);

	/* Still the same operation once it finished (until it is purged). */
	drive_to(f->q, id, PVM_OP_SUCCEEDED);
	s.params = p1;
	again = 0;
	existed = false;
	assert_rc(pvm_queue_submit(f->q, &s, &again, &existed), 0);
	assert_true(existed);
	assert_int_equal(again, id);
	assert_state(f->q, id, PVM_OP_SUCCEEDED);

	/* And after a restart. */
	fx_reopen(f, true);
	again = 0;
	existed = false;
	assert_rc(pvm_queue_submit(f->q, &s, &again, &existed), 0);
	assert_true(existed);
	assert_int_equal(again, id);

	/* Another key with the same params is another operation. */
	uint64_t other = sub_full(f->q, "attach_volume", inst, "k-attach-2", 0, p1, NULL);
	assert_true(other != id);
	assert_int_equal(stats_of(f->q).total, 2);
	json_decref(p1);
	json_decref(p1_reordered);
	assert_verify_clean(f->q);
}

static void test_queue_conflicting_resubmit(void **state)
{
	struct fx *f = *state;
	char inst[PVM_UUID_LEN + 1], inst2[PVM_UUID_LEN + 1];
	uuid_n(inst, 3);
	uuid_n(inst2, 4);
	json_t *p1 = json_pack("{s:s}", "port", "p-1");
	json_t *p2 = json_pack("{s:s}", "port", "p-2");
	json_t *p3 = json_pack("{s:s, s:n}", "port", "p-1", "extra");
	uint64_t id = sub_full(f->q, "attach_interface", inst, "k-vif", 0, p1, NULL);

	struct {
		const char *type;
		const char *inst;
		json_t *params;
	} cases[] = {
	        {"attach_interface", inst, p2}, {"attach_interface", inst, p3},
	        {"detach_interface", inst, p1}, {"attach_interface", inst2, p1},
	        {"attach_interface", NULL, p1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pvm_op_submit s = {.type = cases[i].type,
		                          .instance_uuid = cases[i].inst,
		                          .idempotency_key = "k-vif",
		                          .params = cases[i].params};
		uint64_t got = 0;
		bool existed = false;
		int rc = pvm_queue_submit(f->q, &s, &got, &existed);
		if (rc != PVM_ECONFLICT || got != id) {
			print_error("conflict case %zu: %s, id %llu; want PVM_ECONFLICT, id %llu\n",
			            i, pvm_errname(rc), (unsigned long long)got,
			            (unsigned long long)id);
			fail();
		}
	}
	assert_int_equal(stats_of(f->q).total, 1);
	struct pvm_op *op = get_op(f->q, id);
	assert_true(json_equal(op->params, p1));
	pvm_op_free(op);
	json_decref(p1);
	json_decref(p2);
	json_decref(p3);
	assert_verify_clean(f->q);
}

#define SAMEKEY_THREADS 8
struct samekey_arg {
	struct pvm_queue *q;
	pthread_barrier_t *bar;
	uint64_t id;
	bool existed;
	int rc;
};

static void *samekey_thread(void *p)
{
	struct samekey_arg *a = p;
	json_t *params = json_pack("{s:s}", "target", "vol-9");
	char inst[PVM_UUID_LEN + 1];
	uuid_n(inst, 5);
	struct pvm_op_submit s = {.type = "attach_volume",
	                          .instance_uuid = inst,
	                          .idempotency_key = "k-same",
	                          .params = params};
	pthread_barrier_wait(a->bar);
	a->rc = pvm_queue_submit(a->q, &s, &a->id, &a->existed);
	json_decref(params);
	return NULL;
}

/* Concurrent submissions of one key (they land in one group commit) make one operation. */
static void test_queue_idempotent_concurrent(void **state)
{
	struct fx *f = *state;
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, SAMEKEY_THREADS);
	struct samekey_arg args[SAMEKEY_THREADS];
	pthread_t th[SAMEKEY_THREADS];
	for (int i = 0; i < SAMEKEY_THREADS; i++) {
		args[i] = (struct samekey_arg){.q = f->q, .bar = &bar};
		assert_int_equal(pthread_create(&th[i], NULL, samekey_thread, &args[i]), 0);
	}
	for (int i = 0; i < SAMEKEY_THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	int fresh = 0;
	for (int i = 0; i < SAMEKEY_THREADS; i++) {
		assert_rc(args[i].rc, 0);
		assert_int_equal(args[i].id, args[0].id);
		fresh += !args[i].existed;
	}
	assert_int_equal(fresh, 1);
	assert_int_equal(stats_of(f->q).total, 1);
	assert_verify_clean(f->q);
}

static void test_queue_submit_many(void **state)
{
	struct fx *f = *state;
	json_t *params = json_pack("{s:i}", "n", 1);
	char inst[PVM_UUID_LEN + 1];
	uuid_n(inst, 6);
	const char *keys[] = {"m0", "m1", "m2", "m3", "m4"};
	struct pvm_op_submit s[5];
	for (int i = 0; i < 5; i++)
		s[i] = (struct pvm_op_submit){.type = "reboot",
		                              .instance_uuid = i % 2 ? inst : NULL,
		                              .idempotency_key = keys[i],
		                              .params = params};
	uint64_t ids[5] = {0};
	assert_rc(pvm_queue_submit_many(f->q, s, 5, ids), 0);
	for (int i = 0; i < 5; i++) {
		assert_true(ids[i] >= 1);
		for (int j = 0; j < i; j++)
			assert_true(ids[i] != ids[j]);
		uint64_t found = 0;
		assert_rc(pvm_queue_find_key(f->q, keys[i], &found), 0);
		assert_int_equal(found, ids[i]);
		struct pvm_op *op = get_op(f->q, ids[i]);
		assert_string_equal(op->type, "reboot");
		assert_int_equal(op->state, PVM_OP_QUEUED);
		pvm_op_free(op);
	}
	/* The instance's line is in batch order. */
	struct pvm_queue_filter fl = {.state = PVM_KEEP, .instance_uuid = inst};
	struct idlist l = list_ids(f->q, &fl);
	assert_ids(&l, 2, ids[1], ids[3]);

	/* A reused key fails the whole batch, as does a key used twice in it. */
	const char *keys2[] = {"n0", "m2", "n2"};
	struct pvm_op_submit s2[3];
	for (int i = 0; i < 3; i++)
		s2[i] = (struct pvm_op_submit){
		        .type = "reboot", .idempotency_key = keys2[i], .params = params};
	uint64_t ids2[3];
	assert_rc(pvm_queue_submit_many(f->q, s2, 3, ids2), PVM_EEXIST);
	s2[1].idempotency_key = "n0";
	assert_rc(pvm_queue_submit_many(f->q, s2, 3, ids2), PVM_EEXIST);
	uint64_t found = 0;
	assert_rc(pvm_queue_find_key(f->q, "n0", &found), PVM_ENOTFOUND);
	assert_rc(pvm_queue_find_key(f->q, "n2", &found), PVM_ENOTFOUND);
	assert_int_equal(stats_of(f->q).total, 5);

	/* An invalid member fails the whole batch. */
	s2[1].idempotency_key = "n1";
	s2[1].type = NULL;
	assert_rc(pvm_queue_submit_many(f->q, s2, 3, ids2), PVM_EINVAL);
	assert_int_equal(stats_of(f->q).total, 5);
	json_decref(params);
	assert_verify_clean(f->q);
}

/* ---- order: per-instance FIFO and due time ---------------------------------------------- */

static void test_queue_instance_fifo(void **state)
{
	struct fx *f = *state;
	char A[PVM_UUID_LEN + 1], B[PVM_UUID_LEN + 1];
	uuid_n(A, 10);
	uuid_n(B, 11);
	int64_t base = pvm_now_ms() + HOUR_MS;
	int64_t now = base + 1000;
	uint64_t a1 = sub(f->q, A, base + 3);
	uint64_t a2 = sub(f->q, A, base + 1); /* due before a1, but behind it in line */
	uint64_t a3 = sub(f->q, A, base + 2);
	uint64_t b1 = sub(f->q, B, base + 4);
	/* The same instance written in upper case is the same line. */
	char A_upper[PVM_UUID_LEN + 1];
	for (int i = 0; i <= PVM_UUID_LEN; i++)
		A_upper[i] = (char)(A[i] >= 'a' && A[i] <= 'f' ? A[i] - 32 : A[i]);
	uint64_t a4 = sub(f->q, A_upper, base);

	struct pvm_op *op = claim_ok(f->q, now);
	assert_int_equal(op->id, a1);
	assert_int_equal(op->state, PVM_OP_RUNNING);
	assert_true(op->started_ms > 0);
	pvm_op_free(op);
	assert_state(f->q, a1, PVM_OP_RUNNING);
	assert_int_equal(claim_id(f->q, now), b1); /* other instances are unaffected */
	/* a2 is not its instance's head: not due, and not reported as due (no busy loop). */
	int64_t next = claim_none(f->q, now);
	assert_true(next > now);
	int64_t nd = 0;
	assert_rc(pvm_queue_next_due(f->q, &nd), 0);

	/* A head that waits holds the line. */
	assert_rc(set_state(f->q, a1, PVM_OP_WAITING), 0);
	assert_true(claim_none(f->q, now) > now);

	/* When the head finishes, the next becomes due. */
	op = claim_ok(f->q, now + 20 * HOUR_MS);
	assert_int_equal(op->id, a1);
	pvm_op_free(op);
	assert_rc(set_state(f->q, a1, PVM_OP_SUCCEEDED), 0);
	assert_int_equal(claim_id(f->q, now), a2);
	claim_none(f->q, now);

	/* A failed head leaves the line too. */
	assert_rc(set_state(f->q, a2, PVM_OP_REVERTING), 0);
	assert_rc(set_state(f->q, a2, PVM_OP_FAILED), 0);
	assert_int_equal(claim_id(f->q, now), a3);
	claim_none(f->q, now);
	assert_rc(set_state(f->q, a3, PVM_OP_SUCCEEDED), 0);
	assert_int_equal(claim_id(f->q, now), a4);
	assert_rc(set_state(f->q, a4, PVM_OP_SUCCEEDED), 0);
	assert_rc(set_state(f->q, b1, PVM_OP_SUCCEEDED), 0);
	next = claim_none(f->q, now);
	assert_int_equal(next, INT64_MAX);
	assert_verify_clean(f->q);
}

static void test_queue_due_order(void **state)
{
	struct fx *f = *state;
	int64_t nd = 0;
	assert_rc(pvm_queue_next_due(f->q, &nd), 0);
	assert_int_equal(nd, INT64_MAX);
	assert_int_equal(claim_none(f->q, pvm_now_ms()), INT64_MAX);

	char u1[PVM_UUID_LEN + 1], u2[PVM_UUID_LEN + 1], u3[PVM_UUID_LEN + 1];
	uuid_n(u1, 21);
	uuid_n(u2, 22);
	uuid_n(u3, 23);
	int64_t base = pvm_now_ms() + HOUR_MS;
	uint64_t x = sub(f->q, u1, base + 30);
	uint64_t y = sub(f->q, u2, base + 10);
	uint64_t z = sub(f->q, u3, base + 20);

	/* not_before in the future: not claimable yet, and the next due time is reported. */
	assert_int_equal(claim_none(f->q, pvm_now_ms()), base + 10);
	assert_rc(pvm_queue_next_due(f->q, &nd), 0);
	assert_int_equal(nd, base + 10);
	assert_int_equal(claim_none(f->q, base + 9), base + 10);
	assert_int_equal(claim_id(f->q, base + 10), y);
	assert_int_equal(claim_none(f->q, base + 15), base + 20);
	assert_int_equal(claim_id(f->q, base + 100), z); /* earliest due first */
	assert_int_equal(claim_id(f->q, base + 100), x);
	/* Running operations are taken: never claimed twice, not due. */
	assert_int_equal(claim_none(f->q, base + 100), INT64_MAX);
	assert_rc(pvm_queue_next_due(f->q, &nd), 0);
	assert_int_equal(nd, INT64_MAX);

	/* A waiting operation is due at its due time. */
	struct pvm_op_update u;
	pvm_op_update_init(&u, x);
	u.new_state = PVM_OP_WAITING;
	u.due_ms = base + 200;
	assert_rc(pvm_queue_update(f->q, &u), 0);
	assert_int_equal(claim_none(f->q, base + 150), base + 200);
	assert_rc(pvm_queue_next_due(f->q, &nd), 0);
	assert_int_equal(nd, base + 200);
	struct pvm_op *op = claim_ok(f->q, base + 200);
	assert_int_equal(op->id, x);
	assert_int_equal(op->state, PVM_OP_RUNNING);
	pvm_op_free(op);

	/* Waiting in the revert direction comes back as reverting. */
	pvm_op_update_init(&u, z);
	u.new_state = PVM_OP_REVERTING;
	u.direction = PVM_DIR_REVERT;
	assert_rc(pvm_queue_update(f->q, &u), 0);
	pvm_op_update_init(&u, z);
	u.new_state = PVM_OP_WAITING;
	u.due_ms = base + 300;
	assert_rc(pvm_queue_update(f->q, &u), 0);
	op = get_op(f->q, z);
	assert_int_equal(op->direction, PVM_DIR_REVERT);
	pvm_op_free(op);
	assert_int_equal(claim_none(f->q, base + 299), base + 300);
	op = claim_ok(f->q, base + 300);
	assert_int_equal(op->id, z);
	assert_int_equal(op->state, PVM_OP_REVERTING);
	assert_int_equal(op->direction, PVM_DIR_REVERT);
	pvm_op_free(op);
	assert_verify_clean(f->q);
}

/* A running operation is held by the worker running it: however it became running (a claim,
 * or an update such as an event handler resuming a waiting one), no claim hands it out
 * again, and it is not reported due. */
static void test_queue_running_never_claimed_twice(void **state)
{
	struct fx *f = *state;
	int64_t far = pvm_now_ms() + 100 * HOUR_MS;
	/* queued -> running through pvm_queue_update. */
	uint64_t a = sub_alone(f->q);
	assert_rc(set_state(f->q, a, PVM_OP_RUNNING), 0);
	assert_int_equal(claim_none(f->q, far), INT64_MAX);
	int64_t nd = 0;
	assert_rc(pvm_queue_next_due(f->q, &nd), 0);
	assert_int_equal(nd, INT64_MAX);
	/* waiting -> running through pvm_queue_update. */
	uint64_t b = sub_alone(f->q);
	assert_int_equal(claim_id(f->q, pvm_now_ms()), b);
	struct pvm_op_update u;
	pvm_op_update_init(&u, b);
	u.new_state = PVM_OP_WAITING;
	u.due_ms = pvm_now_ms();
	assert_rc(pvm_queue_update(f->q, &u), 0);
	assert_rc(set_state(f->q, b, PVM_OP_RUNNING), 0);
	assert_int_equal(claim_none(f->q, far), INT64_MAX);
	/* And once it is given back it is due again. */
	pvm_op_update_init(&u, a);
	u.new_state = PVM_OP_QUEUED;
	u.due_ms = pvm_now_ms();
	assert_rc(pvm_queue_update(f->q, &u), 0);
	assert_int_equal(claim_id(f->q, far), a);
	assert_verify_clean(f->q);
}

/* ---- control requests ------------------------------------------------------------------- */

static void test_queue_cancel(void **state)
{
	struct fx *f = *state;
	char A[PVM_UUID_LEN + 1], B[PVM_UUID_LEN + 1], C[PVM_UUID_LEN + 1];
	uuid_n(A, 31);
	uuid_n(B, 32);
	uuid_n(C, 33);
	enum pvm_op_state st = PVM_OP_STATE_COUNT;

	/* A queued operation is cancelled at once; the next of its instance becomes due. */
	uint64_t a1 = sub(f->q, A, 0);
	uint64_t a2 = sub(f->q, A, 0);
	assert_rc(pvm_queue_cancel(f->q, a1, &st), 0);
	assert_int_equal(st, PVM_OP_CANCELLED);
	struct pvm_op *op = get_op(f->q, a1);
	assert_int_equal(op->state, PVM_OP_CANCELLED);
	assert_true(op->finished_ms > 0);
	pvm_op_free(op);
	assert_int_equal(claim_id(f->q, pvm_now_ms()), a2);

	/* A running one gets the mark; a queued one behind it is cancelled at once. */
	uint64_t a3 = sub(f->q, A, 0);
	uint64_t a4 = sub(f->q, A, 0);
	assert_rc(pvm_queue_cancel(f->q, a2, &st), 0);
	assert_int_equal(st, PVM_OP_RUNNING);
	op = get_op(f->q, a2);
	assert_int_equal(op->state, PVM_OP_RUNNING);
	assert_true(op->flags & PVM_OPF_CANCEL_REQUESTED);
	pvm_op_free(op);
	assert_rc(pvm_queue_cancel(f->q, a3, NULL), 0);
	assert_state(f->q, a3, PVM_OP_CANCELLED);
	/* Its next step acts on the mark: revert, then cancelled. */
	assert_rc(set_state(f->q, a2, PVM_OP_REVERTING), 0);
	assert_rc(pvm_queue_cancel(f->q, a2, &st), 0); /* marking again is harmless */
	assert_int_equal(st, PVM_OP_REVERTING);
	assert_rc(set_state(f->q, a2, PVM_OP_CANCELLED), 0);
	assert_int_equal(claim_id(f->q, pvm_now_ms()), a4);

	/* A waiting one gets the mark and becomes due now. */
	uint64_t b1 = sub(f->q, B, 0);
	assert_int_equal(claim_id(f->q, pvm_now_ms()), b1);
	assert_rc(set_state(f->q, b1, PVM_OP_WAITING), 0); /* due in 10 hours */
	claim_none(f->q, pvm_now_ms());
	assert_rc(pvm_queue_cancel(f->q, b1, &st), 0);
	assert_int_equal(st, PVM_OP_WAITING);
	op = claim_ok(f->q, pvm_now_ms());
	assert_int_equal(op->id, b1);
	assert_true(op->flags & PVM_OPF_CANCEL_REQUESTED);
	pvm_op_free(op);

	/* Finished ones refuse. */
	uint64_t c1 = sub(f->q, C, 0);
	drive_to(f->q, c1, PVM_OP_SUCCEEDED);
	assert_rc(pvm_queue_cancel(f->q, c1, &st), PVM_ETRANSITION);
	assert_rc(pvm_queue_cancel(f->q, a1, &st), PVM_ETRANSITION);
	uint64_t c2 = sub(f->q, C, 0);
	drive_to(f->q, c2, PVM_OP_FAILED);
	assert_rc(pvm_queue_cancel(f->q, c2, &st), PVM_ETRANSITION);
	assert_state(f->q, c2, PVM_OP_FAILED);
	assert_rc(pvm_queue_cancel(f->q, 999999, &st), PVM_ENOTFOUND);
	assert_verify_clean(f->q);
}

static void test_queue_signal(void **state)
{
	struct fx *f = *state;
	uint64_t id = sub_alone(f->q);
	json_t *t = json_true();
	json_t *obj = json_pack("{s:s}", "mode", "force");
	/* A queued operation takes signals too (it is active). */
	assert_rc(pvm_queue_signal(f->q, id, "vif_plugged", t), 0);
	drive_to(f->q, id, PVM_OP_RUNNING);
	assert_rc(pvm_queue_signal(f->q, id, "force_complete", obj), 0);
	struct pvm_op *op = get_op(f->q, id);
	assert_true(json_equal(json_object_get(op->signals, "vif_plugged"), t));
	assert_true(json_equal(json_object_get(op->signals, "force_complete"), obj));
	pvm_op_free(op);

	/* Waiting: due now. (The signal above came while it ran: its park is due at once,
	 * test_queue_mark_while_running; the second park is not.) */
	assert_rc(set_state(f->q, id, PVM_OP_WAITING), 0);
	pvm_op_free(claim_ok(f->q, pvm_now_ms()));
	assert_rc(set_state(f->q, id, PVM_OP_WAITING), 0);
	claim_none(f->q, pvm_now_ms());
	json_t *v2 = json_integer(2);
	assert_rc(pvm_queue_signal(f->q, id, "vif_plugged", v2), 0);
	op = claim_ok(f->q, pvm_now_ms());
	assert_int_equal(op->id, id);
	assert_true(json_equal(json_object_get(op->signals, "vif_plugged"), v2));
	pvm_op_free(op);

	/* Finished or unknown: refused. */
	assert_rc(set_state(f->q, id, PVM_OP_SUCCEEDED), 0);
	assert_rc_fails(pvm_queue_signal(f->q, id, "late", t));
	op = get_op(f->q, id);
	assert_null(json_object_get(op->signals, "late"));
	pvm_op_free(op);
	assert_rc(pvm_queue_signal(f->q, 999999, "x", t), PVM_ENOTFOUND);
	json_decref(t);
	json_decref(obj);
	json_decref(v2);
	assert_verify_clean(f->q);
}

/* A signal or cancel that arrives while a step runs (state running, or reverting) makes the
 * step's next park due at once: the step read the operation before the mark came. */
static void test_queue_mark_while_running(void **state)
{
	struct fx *f = *state;
	json_t *t = json_true();
	uint64_t id = sub_alone(f->q);
	drive_to(f->q, id, PVM_OP_RUNNING);
	assert_rc(pvm_queue_signal(f->q, id, "network_plugged", t), 0);
	struct pvm_op *op = get_op(f->q, id);
	assert_true(op->flags & PVM_OPF_KICKED);
	pvm_op_free(op);
	/* the step parks for 10 hours: due now instead, the mark cleared */
	assert_rc(set_state(f->q, id, PVM_OP_WAITING), 0);
	op = claim_ok(f->q, pvm_now_ms());
	assert_int_equal(op->id, id);
	assert_false(op->flags & PVM_OPF_KICKED);
	assert_true(json_equal(json_object_get(op->signals, "network_plugged"), t));
	pvm_op_free(op);
	/* a park without a new mark keeps its due time */
	assert_rc(set_state(f->q, id, PVM_OP_WAITING), 0);
	claim_none(f->q, pvm_now_ms());

	/* cancel of a running step: the same */
	uint64_t id2 = sub_alone(f->q);
	drive_to(f->q, id2, PVM_OP_RUNNING);
	enum pvm_op_state st;
	assert_rc(pvm_queue_cancel(f->q, id2, &st), 0);
	assert_rc(set_state(f->q, id2, PVM_OP_WAITING), 0);
	op = claim_ok(f->q, pvm_now_ms());
	assert_int_equal(op->id, id2);
	assert_true(op->flags & PVM_OPF_CANCEL_REQUESTED);
	pvm_op_free(op);
	json_decref(t);
	assert_verify_clean(f->q);
}

static void test_queue_wake(void **state)
{
	struct fx *f = *state;
	uint64_t id = sub_alone(f->q);
	struct pvm_op *op0 = get_op(f->q, id);
	int64_t queued_due = op0->due_ms;
	pvm_op_free(op0);
	int64_t later = pvm_now_ms() + 3 * HOUR_MS;
	/* Not waiting: nothing to do. */
	assert_rc(pvm_queue_wake(f->q, id, later), 0);
	struct pvm_op *op = get_op(f->q, id);
	assert_int_equal(op->state, PVM_OP_QUEUED);
	assert_int_equal(op->due_ms, queued_due);
	pvm_op_free(op);

	assert_int_equal(claim_id(f->q, pvm_now_ms()), id);
	assert_rc(pvm_queue_wake(f->q, id, pvm_now_ms()), 0);
	assert_state(f->q, id, PVM_OP_RUNNING);
	assert_rc(set_state(f->q, id, PVM_OP_WAITING), 0);
	int64_t now = pvm_now_ms();
	claim_none(f->q, now);
	assert_rc(pvm_queue_wake(f->q, id, now), 0);
	op = get_op(f->q, id);
	assert_int_equal(op->state, PVM_OP_WAITING);
	assert_true(op->due_ms <= now);
	pvm_op_free(op);
	assert_int_equal(claim_id(f->q, now), id);
	assert_rc(pvm_queue_wake(f->q, 999999, now), PVM_ENOTFOUND);
	assert_verify_clean(f->q);
}

static void test_queue_retry(void **state)
{
	struct fx *f = *state;
	char A[PVM_UUID_LEN + 1];
	uuid_n(A, 41);
	uint64_t id = sub(f->q, A, 0);
	assert_int_equal(claim_id(f->q, pvm_now_ms()), id);
	struct pvm_op_update u;
	pvm_op_update_init(&u, id);
	u.step = 3;
	assert_rc(pvm_queue_update(f->q, &u), 0);
	pvm_op_update_init(&u, id);
	u.record_attempt = true;
	u.error = "create failed";
	u.error_code = "HSCL1234";
	u.new_state = PVM_OP_REVERTING;
	u.direction = PVM_DIR_REVERT;
	assert_rc(pvm_queue_update(f->q, &u), 0);
	assert_rc(set_state(f->q, id, PVM_OP_FAILED), 0);
	struct pvm_op *op = get_op(f->q, id);
	size_t h = history_len(op);
	assert_true(h >= 1);
	assert_true(op->finished_ms > 0);
	pvm_op_free(op);

	assert_rc(pvm_queue_retry(f->q, id), 0);
	op = get_op(f->q, id);
	assert_int_equal(op->state, PVM_OP_QUEUED);
	assert_int_equal(op->step, 0);
	assert_int_equal(op->direction, PVM_DIR_FORWARD);
	assert_true(history_len(op) >= h); /* history kept */
	assert_true(op->due_ms <= pvm_now_ms());
	pvm_op_free(op);
	op = claim_ok(f->q, pvm_now_ms());
	assert_int_equal(op->id, id);
	assert_int_equal(op->state, PVM_OP_RUNNING);
	pvm_op_free(op);

	/* Retry applies to failed operations only. */
	assert_rc(pvm_queue_retry(f->q, id), PVM_ETRANSITION);
	assert_rc(set_state(f->q, id, PVM_OP_SUCCEEDED), 0);
	assert_rc(pvm_queue_retry(f->q, id), PVM_ETRANSITION);
	uint64_t q2 = sub_alone(f->q);
	assert_rc(pvm_queue_retry(f->q, q2), PVM_ETRANSITION);
	assert_state(f->q, q2, PVM_OP_QUEUED);
	assert_rc(pvm_queue_retry(f->q, 999999), PVM_ENOTFOUND);
	assert_verify_clean(f->q);
}

/* ---- retention -------------------------------------------------------------------------- */

static int64_t finished_at(struct pvm_queue *q, uint64_t id)
{
	struct pvm_op *op = get_op(q, id);
	int64_t t = op->finished_ms;
	pvm_op_free(op);
	assert_true(t > 0);
	return t;
}

static void test_queue_purge(void **state)
{
	struct fx *f = *state;
	uint64_t a = sub_full(f->q, "spawn", NULL, "k-a", 0, NULL, NULL);
	uint64_t b = sub_alone(f->q);
	uint64_t c = sub_alone(f->q);
	drive_to(f->q, a, PVM_OP_SUCCEEDED);
	drive_to(f->q, b, PVM_OP_FAILED);
	drive_to(f->q, c, PVM_OP_CANCELLED);
	uint64_t active[4];
	enum pvm_op_state act_st[4] = {PVM_OP_QUEUED, PVM_OP_RUNNING, PVM_OP_WAITING,
	                               PVM_OP_REVERTING};
	for (int i = 0; i < 4; i++) {
		active[i] = sub_alone(f->q);
		drive_to(f->q, active[i], act_st[i]);
	}
	int64_t cutoff = finished_at(f->q, a);
	if (finished_at(f->q, b) > cutoff)
		cutoff = finished_at(f->q, b);
	if (finished_at(f->q, c) > cutoff)
		cutoff = finished_at(f->q, c);
	cutoff += 1;
	wait_clock_past(cutoff);
	uint64_t late = sub_alone(f->q);
	drive_to(f->q, late, PVM_OP_SUCCEEDED);
	assert_true(finished_at(f->q, late) >= cutoff);

	size_t purged = 99;
	assert_rc(pvm_queue_purge(f->q, cutoff, 0, &purged), 0);
	assert_int_equal(purged, 3);
	struct pvm_op *op = NULL;
	assert_rc(pvm_queue_get(f->q, a, &op), PVM_ENOTFOUND);
	assert_rc(pvm_queue_get(f->q, b, &op), PVM_ENOTFOUND);
	assert_rc(pvm_queue_get(f->q, c, &op), PVM_ENOTFOUND);
	uint64_t found = 0;
	assert_rc(pvm_queue_find_key(f->q, "k-a", &found), PVM_ENOTFOUND);
	assert_state(f->q, late, PVM_OP_SUCCEEDED);
	for (int i = 0; i < 4; i++)
		assert_state(f->q, active[i], act_st[i]);
	assert_verify_clean(f->q);

	/* Active operations are never purged, whatever the cutoff. */
	assert_rc(pvm_queue_purge(f->q, INT64_MAX, 0, &purged), 0);
	assert_int_equal(purged, 1);
	for (int i = 0; i < 4; i++)
		assert_state(f->q, active[i], act_st[i]);
	struct pvm_queue_stats st = stats_of(f->q);
	assert_int_equal(st.total, 4);
	assert_int_equal(st.by_state[PVM_OP_SUCCEEDED], 0);

	/* At most max per call. */
	uint64_t more[5];
	for (int i = 0; i < 5; i++) {
		more[i] = sub_alone(f->q);
		drive_to(f->q, more[i], PVM_OP_CANCELLED);
	}
	size_t counts[4];
	for (int i = 0; i < 4; i++)
		assert_rc(pvm_queue_purge(f->q, INT64_MAX, 2, &counts[i]), 0);
	assert_int_equal(counts[0], 2);
	assert_int_equal(counts[1], 2);
	assert_int_equal(counts[2], 1);
	assert_int_equal(counts[3], 0);
	assert_rc(pvm_queue_purge(f->q, INT64_MAX, 0, NULL), 0);

	/* A purged key is free again. */
	uint64_t a2 = sub_full(f->q, "spawn", NULL, "k-a", 0, NULL, NULL);
	assert_true(a2 != a);
	assert_verify_clean(f->q);
}

static void test_queue_purge_expired(void **state)
{
	struct fx *f = *state;
	uint64_t fin[3], act[2];
	for (int i = 0; i < 3; i++) {
		fin[i] = sub_alone(f->q);
		drive_to(f->q, fin[i],
		         i == 0 ? PVM_OP_SUCCEEDED : (i == 1 ? PVM_OP_FAILED : PVM_OP_CANCELLED));
	}
	for (int i = 0; i < 2; i++) {
		act[i] = sub_alone(f->q);
		drive_to(f->q, act[i], i ? PVM_OP_WAITING : PVM_OP_QUEUED);
	}
	/* Default retention (7 days): nothing is old enough. */
	size_t purged = 99;
	assert_rc(pvm_queue_purge_expired(f->q, &purged), 0);
	assert_int_equal(purged, 0);

	fx_close(f);
	struct pvm_queue_opts o;
	fx_opts(f, &o);
	o.retention_ms = 1;
	fx_open_with(f, &o);
	int64_t last = 0;
	for (int i = 0; i < 3; i++)
		if (finished_at(f->q, fin[i]) > last)
			last = finished_at(f->q, fin[i]);
	wait_clock_past(last + 2);
	assert_rc(pvm_queue_purge_expired(f->q, &purged), 0);
	assert_int_equal(purged, 3);
	for (int i = 0; i < 2; i++)
		assert_state(f->q, act[i], i ? PVM_OP_WAITING : PVM_OP_QUEUED);
	assert_int_equal(stats_of(f->q).total, 2);
	assert_verify_clean(f->q);
}

/* ids are never handed out twice, even once the highest was purged and across restarts. */
static void test_queue_ids_never_reused(void **state)
{
	struct fx *f = *state;
	uint64_t max = 0;
	for (int i = 0; i < 3; i++) {
		uint64_t id = sub_alone(f->q);
		drive_to(f->q, id, PVM_OP_CANCELLED);
		if (id > max)
			max = id;
	}
	assert_rc(pvm_queue_purge(f->q, INT64_MAX, 0, NULL), 0);
	assert_int_equal(stats_of(f->q).total, 0);
	uint64_t next = sub_alone(f->q);
	assert_true(next > max);
	drive_to(f->q, next, PVM_OP_CANCELLED);
	assert_rc(pvm_queue_purge(f->q, INT64_MAX, 0, NULL), 0);
	fx_reopen(f, true);
	assert_true(sub_alone(f->q) > next);
}

/* ---- secrets ---------------------------------------------------------------------------- */

#define SECRET1 "Pl41nT3xt-CHAP-s3cr3t-9d8e7f"
#define SECRET2 "Pl41nT3xt-passw0rd-1a2b3c"

static json_t *secrets_obj(void)
{
	return json_pack("{s:s, s:{s:s}}", "chap_secret", SECRET1, "auth", "password", SECRET2);
}

static bool mem_has(const void *hay, size_t n, const char *needle)
{
	return memmem(hay, n, needle, strlen(needle)) != NULL;
}

static void assert_no_secret_in_json(const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	assert_non_null(s);
	if (strstr(s, SECRET1) || strstr(s, SECRET2)) {
		print_error("secret in JSON: %s\n", s);
		free(s);
		fail();
	}
	free(s);
}

static void assert_no_secret_in_op(const struct pvm_op *op)
{
	json_t *j = pvm_op_to_json(op);
	assert_non_null(j);
	assert_no_secret_in_json(j);
	json_decref(j);
	assert_no_secret_in_json(op->params);
	assert_no_secret_in_json(op->checkpoints);
	assert_no_secret_in_json(op->result);
	assert_no_secret_in_json(op->history);
}

/* No file of the state directory holds a secret in plain text. */
static void assert_no_secret_on_disk(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *e;
	int files = 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char path[PATH_MAX + 300];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		struct stat st;
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		size_t len = 0;
		unsigned char *buf = slurp(path, &len);
		assert_non_null(buf);
		bool leak = mem_has(buf, len, SECRET1) || mem_has(buf, len, SECRET2);
		free(buf);
		if (leak) {
			print_error("plaintext secret found in %s\n", path);
			fail();
		}
		files++;
	}
	closedir(d);
	assert_true(files >= 1);
}

static void test_queue_secrets_roundtrip_and_redaction(void **state)
{
	struct fx *f = *state;
	json_t *sec = secrets_obj();
	json_t *params = json_pack("{s:s, s:s}", "volume", "vol-7", "target_iqn", "iqn.x");
	char A[PVM_UUID_LEN + 1];
	uuid_n(A, 51);
	uint64_t id = sub_full(f->q, "attach_volume", A, "k-sec", 0, params, sec);
	char P[PVM_UUID_LEN + 1];
	uuid_n(P, 52);
	uint64_t plain = sub(f->q, P, pvm_now_ms() + 10 * HOUR_MS); /* never due here */

	struct pvm_op *op = get_op(f->q, id);
	assert_true(op->flags & PVM_OPF_HAS_SECRETS);
	assert_false(op->flags & PVM_OPF_SECRETS_ERASED);
	assert_true(json_equal(op->params, params));
	assert_no_secret_in_op(op);
	pvm_op_free(op);

	json_t *got = NULL;
	assert_rc(pvm_queue_get_secrets(f->q, id, &got), 0);
	assert_true(json_equal(got, sec));
	json_decref(got);
	got = NULL;
	assert_rc(pvm_queue_get_secrets(f->q, plain, &got), PVM_ENOSECRET);
	assert_null(got);
	assert_rc_fails(pvm_queue_get_secrets(f->q, 999999, &got)); /* code unspecified */
	assert_null(got);

	/* Never in a list either. */
	struct pvm_queue_filter fl = {.state = PVM_KEEP};
	struct pvm_op **ops = NULL;
	size_t n = 0;
	assert_rc(pvm_queue_list(f->q, &fl, &ops, &n, NULL), 0);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++)
		assert_no_secret_in_op(ops[i]);
	pvm_op_list_free(ops, n);

	/* Idempotent resubmission with the same secrets is the same operation. */
	struct pvm_op_submit s = {.type = "attach_volume",
	                          .instance_uuid = A,
	                          .idempotency_key = "k-sec",
	                          .request_id = "req-0123",
	                          .table_version = 1,
	                          .params = params,
	                          .secrets = sec};
	uint64_t again = 0;
	bool existed = false;
	assert_rc(pvm_queue_submit(f->q, &s, &again, &existed), 0);
	assert_true(existed);
	assert_int_equal(again, id);

	/* A resumed operation still has them after a restart, running or waiting. */
	assert_int_equal(claim_id(f->q, pvm_now_ms()), id);
	fx_reopen(f, true);
	assert_rc(pvm_queue_get_secrets(f->q, id, &got), 0);
	assert_true(json_equal(got, sec));
	json_decref(got);
	assert_int_equal(claim_id(f->q, pvm_now_ms()), id);
	assert_rc(set_state(f->q, id, PVM_OP_WAITING), 0);
	assert_rc(pvm_queue_get_secrets(f->q, id, &got), 0);
	json_decref(got);

	/* Gone when it ends. */
	assert_rc(pvm_queue_wake(f->q, id, pvm_now_ms()), 0);
	assert_int_equal(claim_id(f->q, pvm_now_ms()), id);
	assert_rc(set_state(f->q, id, PVM_OP_SUCCEEDED), 0);
	got = NULL;
	assert_rc(pvm_queue_get_secrets(f->q, id, &got), PVM_ENOSECRET);
	assert_null(got);
	op = get_op(f->q, id);
	assert_true(op->flags & PVM_OPF_SECRETS_ERASED);
	assert_no_secret_in_op(op);
	pvm_op_free(op);
	fx_reopen(f, false);
	assert_rc(pvm_queue_get_secrets(f->q, id, &got), PVM_ENOSECRET);
	json_decref(sec);
	json_decref(params);
	assert_verify_clean(f->q);
}

static void test_queue_secrets_never_on_disk_in_plaintext(void **state)
{
	struct fx *f = *state;
	json_t *sec = secrets_obj();
	uint64_t ids[20];
	for (int i = 0; i < 20; i++) {
		char key[32];
		snprintf(key, sizeof(key), "k-disk-%d", i);
		ids[i] = sub_full(f->q, "attach_volume", NULL, key, 0, NULL, sec);
	}
	json_t *s2 = json_pack("{s:s}", "token", SECRET2);
	struct pvm_op_submit many[2] = {
	        {.type = "rescue", .params = json_object(), .secrets = s2},
	        {.type = "rescue", .params = json_object(), .secrets = sec},
	};
	uint64_t mids[2];
	assert_rc(pvm_queue_submit_many(f->q, many, 2, mids), 0);
	json_decref((json_t *)many[0].params);
	json_decref((json_t *)many[1].params);
	json_t *got = NULL;
	assert_rc(pvm_queue_get_secrets(f->q, mids[0], &got), 0);
	assert_true(json_equal(got, s2));
	json_decref(got);
	/* Synced data while open, then after close; some of them erased in between. */
	assert_no_secret_on_disk(f->dir);
	for (int i = 0; i < 10; i++)
		drive_to(f->q, ids[i], i % 2 ? PVM_OP_SUCCEEDED : PVM_OP_CANCELLED);
	assert_no_secret_on_disk(f->dir);
	fx_close(f);
	assert_no_secret_on_disk(f->dir);
	/* Nor does the key live next to the journal: the key file is where it was named. */
	struct stat st;
	assert_int_equal(stat(f->key, &st), 0);
	json_decref(sec);
	json_decref(s2);
}

static void test_queue_secrets_erased_at_end(void **state)
{
	struct fx *f = *state;
	json_t *sec = secrets_obj();
	enum pvm_op_state ends[3] = {PVM_OP_SUCCEEDED, PVM_OP_FAILED, PVM_OP_CANCELLED};
	uint64_t ids[3];
	for (int i = 0; i < 3; i++) {
		char A[PVM_UUID_LEN + 1];
		uuid_n(A, 60 + (unsigned)i);
		ids[i] = sub_full(f->q, "attach_volume", A, NULL, 0, NULL, sec);
		json_t *got = NULL;
		assert_rc(pvm_queue_get_secrets(f->q, ids[i], &got), 0);
		json_decref(got);
		drive_to(f->q, ids[i], ends[i]);
		got = NULL;
		assert_rc(pvm_queue_get_secrets(f->q, ids[i], &got), PVM_ENOSECRET);
		assert_null(got);
		struct pvm_op *op = get_op(f->q, ids[i]);
		assert_true(op->flags & PVM_OPF_SECRETS_ERASED);
		pvm_op_free(op);
	}
	/* Cancelled while queued, through the control request. */
	uint64_t c = sub_full(f->q, "attach_volume", NULL, NULL, 0, NULL, sec);
	assert_rc(pvm_queue_cancel(f->q, c, NULL), 0);
	json_t *got = NULL;
	assert_rc(pvm_queue_get_secrets(f->q, c, &got), PVM_ENOSECRET);
	/* A failed operation with secrets cannot be retried: they are gone. */
	assert_rc(pvm_queue_retry(f->q, ids[1]), PVM_ENOSECRET);
	assert_state(f->q, ids[1], PVM_OP_FAILED);
	json_decref(sec);
	assert_verify_clean(f->q);
}

static void test_queue_secrets_refused_without_key(void **state)
{
	struct fx *f = *state;
	struct pvm_queue_opts o;
	fx_opts(f, &o);
	o.secret_key_file = NULL;
	o.create_key = false;
	fx_open_with(f, &o);
	json_t *sec = secrets_obj();
	json_t *params = json_object();
	struct pvm_op_submit s = {.type = "attach_volume", .params = params, .secrets = sec};
	uint64_t id = 0;
	bool existed = false;
	assert_rc(pvm_queue_submit(f->q, &s, &id, &existed), PVM_ENOSECRET);
	assert_rc(pvm_queue_submit_many(f->q, &s, 1, &id), PVM_ENOSECRET);
	assert_int_equal(stats_of(f->q).total, 0);
	s.secrets = NULL;
	assert_rc(pvm_queue_submit(f->q, &s, &id, &existed), 0);
	json_decref(sec);
	json_decref(params);
}

static void test_queue_secret_key_file(void **state)
{
	struct fx *f = *state;
	struct stat st;
	/* Created 0600 by the first open (setup): a 32-byte key, raw or as hex. */
	fx_close(f);
	assert_int_equal(stat(f->key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_true(st.st_size == 32 || st.st_size == 64 || st.st_size == 65);

	/* Refused when others may read it. */
	assert_int_equal(chmod(f->key, 0644), 0);
	struct pvm_queue_opts o;
	fx_opts(f, &o);
	struct pvm_queue *q = NULL;
	assert_rc(pvm_queue_open(&o, &q), PVM_EPERM);
	assert_null(q);
	assert_int_equal(chmod(f->key, 0600), 0);

	/* Missing, without create_key. */
	char missing[PATH_MAX];
	snprintf(missing, sizeof(missing), "%s/none.key", f->root);
	o.secret_key_file = missing;
	o.create_key = false;
	assert_rc_fails(pvm_queue_open(&o, &q));
	assert_null(q);

	/* Of the wrong size. */
	char shortk[PATH_MAX];
	snprintf(shortk, sizeof(shortk), "%s/short.key", f->root);
	write_file(shortk, "0123456789abcdef", 16, 0600);
	o.secret_key_file = shortk;
	assert_rc_fails(pvm_queue_open(&o, &q));
	assert_null(q);

	/* Another key never yields the secrets: open or the read refuses. */
	fx_opts(f, &o);
	fx_open_with(f, &o);
	json_t *sec = secrets_obj();
	uint64_t id = sub_full(f->q, "attach_volume", NULL, NULL, 0, NULL, sec);
	fx_close(f);
	char other[PATH_MAX];
	snprintf(other, sizeof(other), "%s/other.key", f->root);
	write_file(other, "abcdefghijklmnopqrstuvwxyz012345", 32, 0600);
	o.secret_key_file = other;
	o.create_key = false;
	if (pvm_queue_open(&o, &f->q) == 0) {
		json_t *got = NULL;
		assert_rc_fails(pvm_queue_get_secrets(f->q, id, &got));
		assert_null(got);
		fx_close(f);
	}
	json_decref(sec);
}

/* ---- damaged and foreign data ----------------------------------------------------------- */

/* Opens the closed journal with LMDB directly and applies mut to record id's value. */
static void poke_record(const char *dir, uint64_t id, void (*mut)(unsigned char *, size_t))
{
	MDB_env *env = NULL;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 64), 0);
	int rc = mdb_env_open(env, dir, 0, 0600);
	if (rc != 0) {
		print_error("mdb_env_open(%s): %s\n", dir, mdb_strerror(rc));
		fail();
	}
	MDB_txn *txn = NULL;
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	MDB_dbi dbi;
	rc = mdb_dbi_open(txn, "ops", 0, &dbi);
	if (rc != 0) {
		print_error("mdb_dbi_open(ops): %s\n", mdb_strerror(rc));
		fail();
	}
	unsigned char kb[8];
	for (int i = 0; i < 8; i++)
		kb[i] = (unsigned char)(id >> (56 - 8 * i));
	MDB_val k = {sizeof(kb), kb}, v;
	rc = mdb_get(txn, dbi, &k, &v);
	if (rc != 0) {
		print_error("record %llu not found under its 8-byte big-endian key: %s\n",
		            (unsigned long long)id, mdb_strerror(rc));
		fail();
	}
	unsigned char *copy = malloc(v.mv_size);
	assert_non_null(copy);
	memcpy(copy, v.mv_data, v.mv_size);
	mut(copy, v.mv_size);
	MDB_val nv = {v.mv_size, copy};
	assert_int_equal(mdb_put(txn, dbi, &k, &nv, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	free(copy);
}

static void flip_middle(unsigned char *v, size_t n)
{
	v[n / 2] ^= 0x5a;
	v[n - 1] ^= 0x01;
}

static bool quarantined(struct pvm_queue *q, uint64_t id)
{
	struct pvm_quarantine_entry *e = NULL;
	size_t n = 0;
	assert_rc(pvm_queue_quarantine_list(q, &e, &n), 0);
	bool found = false;
	for (size_t i = 0; i < n; i++)
		if (e[i].id == id) {
			found = true;
			assert_true(e[i].reason[0] != '\0');
			assert_true(e[i].when_ms > 0);
		}
	free(e);
	return found;
}

/* Finished operations on no instance: damaging them holds no instance's line. */
static void make_three(struct fx *f, uint64_t ids[3])
{
	for (int i = 0; i < 3; i++) {
		json_t *p = json_pack("{s:i, s:s}", "n", i, "pad", "some params to damage");
		ids[i] = sub_full(f->q, "snapshot", NULL, NULL, 0, p, NULL);
		json_decref(p);
		drive_to(f->q, ids[i], PVM_OP_SUCCEEDED);
	}
}

static void test_queue_corrupt_record_quarantined(void **state)
{
	struct fx *f = *state;
	uint64_t ids[3];
	make_three(f, ids);
	fx_close(f);
	poke_record(f->dir, ids[1], flip_middle);
	fx_reopen(f, true);

	struct pvm_op *op = NULL;
	assert_rc(pvm_queue_get(f->q, ids[1], &op), PVM_ECORRUPT);
	assert_null(op);
	pvm_op_free(get_op(f->q, ids[0]));
	pvm_op_free(get_op(f->q, ids[2]));

	struct pvm_queue_filter fl = {.state = PVM_KEEP};
	struct idlist l = list_ids(f->q, &fl);
	assert_ids(&l, 2, ids[0], ids[2]);
	assert_int_equal(l.damaged, 1);

	assert_true(verify_problems(f->q) >= 1);
	assert_true(quarantined(f->q, ids[1]));
	assert_false(quarantined(f->q, ids[0]));
	assert_int_equal(stats_of(f->q).quarantined, 1);
	/* Once quarantined, the journal is consistent again, and stays so. */
	assert_verify_clean(f->q);
	pvm_op_free(get_op(f->q, ids[0]));
	fx_reopen(f, true);
	assert_true(quarantined(f->q, ids[1]));
	assert_verify_clean(f->q);
	sub_alone(f->q);
}

static void test_queue_corrupt_record_quarantined_by_next_write(void **state)
{
	struct fx *f = *state;
	uint64_t ids[3];
	make_three(f, ids);
	fx_close(f);
	poke_record(f->dir, ids[0], flip_middle);
	fx_reopen(f, true);
	assert_false(quarantined(f->q, ids[0]));
	struct pvm_op *op = NULL;
	assert_rc(pvm_queue_get(f->q, ids[0], &op), PVM_ECORRUPT);
	sub_alone(f->q); /* a write batch */
	assert_true(quarantined(f->q, ids[0]));
	assert_verify_clean(f->q);
}

/* Rewrites a record as a newer build would write it (below). */
static void bump_version(unsigned char *v, size_t n);

static void test_queue_future_record_version(void **state)
{
	struct fx *f = *state;
	uint64_t ids[3];
	make_three(f, ids);
	fx_close(f);
	poke_record(f->dir, ids[2], bump_version);
	fx_reopen(f, true);
	struct pvm_op *op = NULL;
	assert_rc(pvm_queue_get(f->q, ids[2], &op), PVM_EVERSION);
	assert_null(op);
	pvm_op_free(get_op(f->q, ids[1]));
	struct pvm_queue_filter fl = {.state = PVM_KEEP};
	struct idlist l = list_ids(f->q, &fl);
	assert_ids(&l, 2, ids[0], ids[1]);
	assert_int_equal(l.damaged, 1);
	assert_true(verify_problems(f->q) >= 1);
	assert_true(quarantined(f->q, ids[2]));
	assert_verify_clean(f->q);
}

/* Runs pvm_queue_open on dir in a child process (a crash there must not take the suite down)
 * and returns its result, or fails when the child died. */
static int open_in_child(const char *dir)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		struct pvm_queue_opts o = {.dir = dir};
		struct pvm_queue *q = NULL;
		int rc = pvm_queue_open(&o, &q);
		if (rc == 0)
			pvm_queue_close(q);
		ssize_t w = write(fds[1], &rc, sizeof(rc));
		_exit(w == sizeof(rc) ? 0 : 1);
	}
	close(fds[1]);
	int rc = 1;
	ssize_t r = -1;
	struct pollfd p = {.fd = fds[0], .events = POLLIN};
	int waited = 0, limit = 60000 * pvm_test_scale();
	while (waited < limit && poll(&p, 1, 100) == 0)
		waited += 100;
	if (p.revents)
		r = read(fds[0], &rc, sizeof(rc));
	else
		kill(pid, SIGKILL); /* pvm_queue_open hung */
	close(fds[0]);
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || r != sizeof(rc)) {
		print_error("pvm_queue_open(%s) child died: status 0x%x (signal %d)\n", dir, status,
		            WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		fail();
	}
	return rc;
}

static void assert_same_bytes(const char *path, const unsigned char *want, size_t len)
{
	size_t got_len = 0;
	unsigned char *got = slurp(path, &got_len);
	assert_non_null(got);
	if (got_len != len || memcmp(got, want, len) != 0) {
		print_error("%s was modified (%zu bytes, was %zu)\n", path, got_len, len);
		free(got);
		fail();
	}
	free(got);
}

static void test_queue_open_refuses_foreign_file(void **state)
{
	struct fx *f = *state;
	assert_int_equal(mkdir(f->dir, 0700), 0);
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	size_t len = 0;
	char *text = NULL;
	/* Longer than two LMDB pages, so that nothing can mistake it for a short header. */
	for (int i = 0; i < 400; i++) {
		char *t = NULL;
		assert_true(asprintf(&t, "%sline %d: these are my notes, not a journal\n",
		                     text ? text : "", i) > 0);
		free(text);
		text = t;
	}
	len = strlen(text);
	write_file(path, text, len, 0600);
	assert_rc(open_in_child(f->dir), PVM_ENOTJOURNAL);
	assert_same_bytes(path, (unsigned char *)text, len);

	/* The same in-process, for the error and nothing left open. */
	struct pvm_queue_opts o;
	fx_opts(f, &o);
	struct pvm_queue *q = NULL;
	assert_rc(pvm_queue_open(&o, &q), PVM_ENOTJOURNAL);
	assert_null(q);
	assert_same_bytes(path, (unsigned char *)text, len);
	o.read_only = true;
	assert_rc(pvm_queue_open(&o, &q), PVM_ENOTJOURNAL);
	assert_same_bytes(path, (unsigned char *)text, len);
	free(text);
}

/* A valid LMDB environment that some other program wrote is not a journal either. */
static void test_queue_open_refuses_foreign_lmdb(void **state)
{
	struct fx *f = *state;
	assert_int_equal(mkdir(f->dir, 0700), 0);
	MDB_env *env = NULL;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
	assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
	MDB_txn *txn = NULL;
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	MDB_dbi dbi;
	assert_int_equal(mdb_dbi_open(txn, "customers", MDB_CREATE, &dbi), 0);
	MDB_val k = {5, "alice"}, v = {9, "wonderland"};
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	size_t len = 0;
	unsigned char *before = slurp(path, &len);
	assert_non_null(before);
	assert_rc(open_in_child(f->dir), PVM_ENOTJOURNAL);
	assert_same_bytes(path, before, len);
	free(before);
}

/* A journal written by a newer build (its format marker says so) is refused, untouched. */
static void test_queue_open_refuses_future_journal(void **state)
{
	struct fx *f = *state;
	sub_alone(f->q);
	fx_close(f);
	/* The marker (queue/journal.c): database "meta", key "format" = "powervmd-journal/N". */
	MDB_env *env = NULL;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 64), 0);
	assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
	MDB_txn *txn = NULL;
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	MDB_dbi dbi;
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	MDB_val k = {6, "format"}, v;
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_true(v.mv_size == strlen("powervmd-journal/1") &&
	            memcmp(v.mv_data, "powervmd-journal/1", v.mv_size) == 0);
	MDB_val nv = {strlen("powervmd-journal/2"), "powervmd-journal/2"};
	assert_int_equal(mdb_put(txn, dbi, &k, &nv, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	size_t len = 0;
	unsigned char *before = slurp(path, &len);
	assert_non_null(before);
	assert_rc(open_in_child(f->dir), PVM_EVERSION);
	assert_same_bytes(path, before, len);
	struct pvm_queue_opts o;
	fx_opts(f, &o);
	o.recover = true;
	struct pvm_queue *q = NULL;
	assert_rc(pvm_queue_open(&o, &q), PVM_EVERSION);
	assert_null(q);
	o.read_only = true;
	assert_rc(pvm_queue_open(&o, &q), PVM_EVERSION);
	assert_same_bytes(path, before, len);
	free(before);
}

static void test_queue_open_refuses_truncated_file(void **state)
{
	struct fx *f = *state;
	json_t *p = json_pack("{s:s}", "pad", "0123456789abcdef0123456789abcdef0123456789abcdef");
	for (int i = 0; i < 300; i++) {
		char key[32];
		snprintf(key, sizeof(key), "k-trunc-%d", i);
		uint64_t id = sub_full(f->q, "spawn", NULL, key, 0, p, NULL);
		(void)id;
	}
	json_decref(p);
	fx_close(f);
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	size_t full_len = 0;
	unsigned char *full = slurp(path, &full_len);
	assert_non_null(full);
	long page = sysconf(_SC_PAGESIZE);
	assert_true(full_len > (size_t)page * 8);

	/* Both meta pages intact, the data they point at gone. */
	size_t cut[] = {(size_t)page * 3, (size_t)page * 2 + 100, 100};
	for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		write_file(path, full, cut[i], 0600);
		int rc = open_in_child(f->dir);
		if (rc != PVM_ENOTJOURNAL) {
			print_error("open of data.mdb cut to %zu bytes: %s, want PVM_ENOTJOURNAL\n",
			            cut[i], pvm_errname(rc));
			fail();
		}
		assert_same_bytes(path, full, cut[i]);
	}
	/* Put back whole, it opens and holds everything. */
	write_file(path, full, full_len, 0600);
	free(full);
	struct pvm_queue_opts o;
	fx_opts(f, &o);
	fx_open_with(f, &o);
	assert_int_equal(stats_of(f->q).total, 300);
	assert_verify_clean(f->q);
}

/* ---- map growth and a full journal ------------------------------------------------------ */

struct small_sub_arg {
	struct pvm_queue *q;
	atomic_bool *stop;
	uint64_t ids[500];
	size_t n;
	size_t full;
	int bad_rc;
};

static void *small_submitter(void *p)
{
	struct small_sub_arg *a = p;
	json_t *params = json_pack("{s:s}", "small", "x");
	int64_t end = pvm_mono_ns() + (int64_t)120000 * pvm_test_scale() * 1000000;
	while (!atomic_load(a->stop) && a->n < 500 && pvm_mono_ns() < end) {
		struct pvm_op_submit s = {.type = "power_off", .params = params};
		uint64_t id = 0;
		int rc = pvm_queue_submit(a->q, &s, &id, NULL);
		if (rc == 0)
			a->ids[a->n++] = id;
		else if (rc == PVM_EFULL)
			a->full++;
		else if (!a->bad_rc)
			a->bad_rc = rc;
	}
	json_decref(params);
	return NULL;
}

static char *big_string(size_t len, unsigned seed)
{
	char *s = malloc(len + 1);
	assert_non_null(s);
	for (size_t i = 0; i < len; i++)
		s[i] = (char)('A' + (int)((i * 31 + seed * 7) % 26));
	s[len] = '\0';
	return s;
}

static void test_queue_map_growth_and_full(void **state)
{
	struct fx *f = *state;
	struct pvm_queue_opts o;
	fx_opts(f, &o);
	o.map_size = 1u << 20;
	o.map_size_max = 4u << 20;
	fx_open_with(f, &o);
	struct pvm_queue_stats st0 = stats_of(f->q);
	assert_true(st0.map_size >= (1u << 20));
	assert_int_equal(st0.map_size_max, 4u << 20);

	uint64_t keep[3];
	for (int i = 0; i < 3; i++)
		keep[i] = sub_alone(f->q);

	atomic_bool stop = false;
	struct small_sub_arg *sa = calloc(1, sizeof(*sa));
	assert_non_null(sa);
	sa->q = f->q;
	sa->stop = &stop;
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, small_submitter, sa), 0);

	enum { BIG = 48 * 1024, MAXN = 400 };
	uint64_t *big = calloc(MAXN, sizeof(*big));
	bool *cancelled = calloc(MAXN, sizeof(*cancelled));
	assert_non_null(big);
	assert_non_null(cancelled);
	size_t n = 0;
	int rc = 0;
	int64_t end = pvm_mono_ns() + (int64_t)120000 * pvm_test_scale() * 1000000;
	for (unsigned i = 0; i < MAXN && pvm_mono_ns() < end; i++) {
		char *blob = big_string(BIG, i);
		json_t *p = json_pack("{s:i, s:s}", "i", (int)i, "blob", blob);
		free(blob);
		struct pvm_op_submit s = {.type = "snapshot", .params = p};
		uint64_t id = 0;
		rc = pvm_queue_submit(f->q, &s, &id, NULL);
		json_decref(p);
		if (rc != 0)
			break;
		big[n] = id;
		int crc = pvm_queue_cancel(f->q, id, NULL);
		if (crc != 0 && crc != PVM_EFULL) {
			print_error("cancel near full: %s\n", pvm_errname(crc));
			fail();
		}
		cancelled[n] = crc == 0;
		n++;
	}
	atomic_store(&stop, true);
	pthread_join(th, NULL);
	assert_rc(rc, PVM_EFULL);
	assert_rc(sa->bad_rc, 0);
	print_message("map test: %zu big submissions acknowledged, %zu small (%zu refused full)\n",
	              n, sa->n, sa->full);
	/* It grew well past its initial size before refusing, and never past its limit. */
	assert_true(n * BIG > (2u << 20));
	struct pvm_queue_stats st = stats_of(f->q);
	assert_true(st.map_size > (1u << 20));
	assert_true(st.map_size <= (4u << 20));
	assert_true(st.map_used <= st.map_size);

	/* Everything acknowledged is readable and intact. */
	for (size_t i = 0; i < n; i++) {
		struct pvm_op *op = get_op(f->q, big[i]);
		json_t *blob = json_object_get(op->params, "blob");
		assert_true(json_is_string(blob));
		assert_int_equal(json_string_length(blob), BIG);
		char *want = big_string(BIG, (unsigned)i);
		assert_memory_equal(json_string_value(blob), want, BIG);
		free(want);
		pvm_op_free(op);
	}
	for (size_t i = 0; i < sa->n; i++)
		pvm_op_free(get_op(f->q, sa->ids[i]));
	for (int i = 0; i < 3; i++)
		assert_state(f->q, keep[i], PVM_OP_QUEUED);
	assert_verify_clean(f->q);

	/* Purging makes room again; active operations stay. */
	size_t purged = 0;
	assert_rc(pvm_queue_purge(f->q, INT64_MAX, 0, &purged), 0);
	size_t ncancelled = 0;
	for (size_t i = 0; i < n; i++)
		ncancelled += cancelled[i];
	assert_int_equal(purged, ncancelled);
	for (int i = 0; i < 3; i++)
		assert_state(f->q, keep[i], PVM_OP_QUEUED);
	for (unsigned i = 0; i < 5; i++) {
		char *blob = big_string(BIG, 1000 + i);
		json_t *p = json_pack("{s:s}", "blob", blob);
		free(blob);
		struct pvm_op_submit s = {.type = "snapshot", .params = p};
		uint64_t id = 0;
		assert_rc(pvm_queue_submit(f->q, &s, &id, NULL), 0);
		json_decref(p);
	}
	assert_verify_clean(f->q);
	/* And a restart with the same limits reads it all. */
	fx_close(f);
	fx_open_with(f, &o);
	assert_verify_clean(f->q);
	free(big);
	free(cancelled);
	free(sa);
}

struct reader_arg {
	struct pvm_queue *q;
	atomic_bool *stop;
	int bad_rc;
	size_t reads;
};

static void *map_reader(void *p)
{
	struct reader_arg *a = p;
	int64_t end = pvm_mono_ns() + (int64_t)120000 * pvm_test_scale() * 1000000;
	for (int iter = 0; iter < 1000000 && !atomic_load(a->stop) && pvm_mono_ns() < end; iter++) {
		struct pvm_queue_filter fl = {.state = PVM_KEEP, .limit = 8};
		struct pvm_op **ops = NULL;
		size_t n = 0;
		int rc = pvm_queue_list(a->q, &fl, &ops, &n, NULL);
		if (rc == 0) {
			for (size_t i = 0; i < n; i++) {
				struct pvm_op *op = NULL;
				int grc = pvm_queue_get(a->q, ops[i]->id, &op);
				if (grc != 0 && !a->bad_rc)
					a->bad_rc = grc;
				pvm_op_free(op);
			}
			pvm_op_list_free(ops, n);
		} else if (!a->bad_rc) {
			a->bad_rc = rc;
		}
		struct pvm_queue_stats st;
		rc = pvm_queue_stats(a->q, &st);
		if (rc != 0 && !a->bad_rc)
			a->bad_rc = rc;
		a->reads++;
	}
	return NULL;
}

/* The map grows while other threads read (LMDB may not resize under live readers). */
static void test_queue_map_growth_with_readers(void **state)
{
	struct fx *f = *state;
	struct pvm_queue_opts o;
	fx_opts(f, &o);
	o.map_size = 1u << 20;
	o.map_size_max = 64u << 20;
	fx_open_with(f, &o);
	atomic_bool stop = false;
	struct reader_arg ra[2] = {{.q = f->q, .stop = &stop}, {.q = f->q, .stop = &stop}};
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, map_reader, &ra[i]), 0);
	enum { BIG = 32 * 1024 };
	size_t n = 0;
	int64_t end = pvm_mono_ns() + (int64_t)120000 * pvm_test_scale() * 1000000;
	while (stats_of(f->q).map_size < (6u << 20) && n < 600 && pvm_mono_ns() < end) {
		char *blob = big_string(BIG, (unsigned)n);
		json_t *p = json_pack("{s:s}", "blob", blob);
		free(blob);
		struct pvm_op_submit s = {.type = "snapshot", .params = p};
		uint64_t id = 0;
		int rc = pvm_queue_submit(f->q, &s, &id, NULL);
		json_decref(p);
		assert_rc(rc, 0);
		n++;
	}
	atomic_store(&stop, true);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		assert_rc(ra[i].bad_rc, 0);
		assert_true(ra[i].reads > 0);
	}
	assert_true(stats_of(f->q).map_size >= (6u << 20));
	assert_int_equal(stats_of(f->q).total, n);
	assert_verify_clean(f->q);
}

/* ---- concurrency ------------------------------------------------------------------------ */

#define SUB_THREADS 16
#define SUB_EACH    200

struct subthr_arg {
	struct pvm_queue *q;
	pthread_barrier_t *bar;
	unsigned t;
	uint64_t ids[SUB_EACH];
	int bad_rc;
};

static void *sub_thread(void *p)
{
	struct subthr_arg *a = p;
	char inst[PVM_UUID_LEN + 1];
	uuid_n(inst, 100 + a->t % 4); /* four instances shared by all threads */
	pthread_barrier_wait(a->bar);
	for (unsigned n = 0; n < SUB_EACH; n++) {
		char key[64];
		snprintf(key, sizeof(key), "k-conc-%u-%u", a->t, n);
		json_t *params = json_pack("{s:i, s:i}", "t", (int)a->t, "n", (int)n);
		struct pvm_op_submit s = {.type = "reboot",
		                          .instance_uuid = (n % 3) ? inst : NULL,
		                          .idempotency_key = key,
		                          .params = params};
		bool existed = true;
		int rc = pvm_queue_submit(a->q, &s, &a->ids[n], &existed);
		json_decref(params);
		if (rc != 0 || existed) {
			a->bad_rc = rc ? rc : PVM_EEXIST;
			break;
		}
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_queue_concurrent_submitters(void **state)
{
	struct fx *f = *state;
	struct pvm_queue_stats st0 = stats_of(f->q);
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, SUB_THREADS);
	struct subthr_arg *args = calloc(SUB_THREADS, sizeof(*args));
	assert_non_null(args);
	pthread_t th[SUB_THREADS];
	int64_t t0 = pvm_mono_ns();
	for (unsigned i = 0; i < SUB_THREADS; i++) {
		args[i].q = f->q;
		args[i].bar = &bar;
		args[i].t = i;
		assert_int_equal(pthread_create(&th[i], NULL, sub_thread, &args[i]), 0);
	}
	for (unsigned i = 0; i < SUB_THREADS; i++)
		pthread_join(th[i], NULL);
	int64_t t1 = pvm_mono_ns();
	pthread_barrier_destroy(&bar);
	for (unsigned i = 0; i < SUB_THREADS; i++)
		assert_rc(args[i].bad_rc, 0);

	uint64_t *all = calloc(SUB_THREADS * SUB_EACH, sizeof(*all));
	assert_non_null(all);
	size_t k = 0;
	for (unsigned i = 0; i < SUB_THREADS; i++)
		for (unsigned n = 0; n < SUB_EACH; n++) {
			struct pvm_op *op = get_op(f->q, args[i].ids[n]);
			assert_int_equal(json_integer_value(json_object_get(op->params, "t")), i);
			assert_int_equal(json_integer_value(json_object_get(op->params, "n")), n);
			pvm_op_free(op);
			all[k++] = args[i].ids[n];
		}
	qsort(all, k, sizeof(*all), cmp_u64);
	for (size_t i = 1; i < k; i++)
		assert_true(all[i] != all[i - 1]);

	struct pvm_queue_stats st = stats_of(f->q);
	assert_int_equal(st.total, SUB_THREADS * SUB_EACH);
	uint64_t commits = st.commits - st0.commits;
	uint64_t reqs = st.commit_requests - st0.commit_requests;
	print_message("%d submissions from %d threads in %.0f ms: %llu commits carrying %llu "
	              "requests (%.1f per commit)\n",
	              SUB_THREADS * SUB_EACH, SUB_THREADS, (double)(t1 - t0) / 1e6,
	              (unsigned long long)commits, (unsigned long long)reqs,
	              commits ? (double)reqs / (double)commits : 0.0);
	assert_true(reqs >= SUB_THREADS * SUB_EACH);
	assert_true(commits >= 1);
	assert_true(reqs > commits); /* group commit: more than one request per commit */
	free(all);
	free(args);
	assert_verify_clean(f->q);
}

/* Submitters, claimers and readers at once: at most one operation per instance runs, in
 * arrival order, and every submission is run exactly once to its end. */
#define MIX_SUBMITTERS 3
#define MIX_CLAIMERS   3
#define MIX_INSTANCES  5
#define MIX_EACH       120

struct mix {
	struct pvm_queue *q;
	atomic_int running[MIX_INSTANCES];
	_Atomic uint64_t last[MIX_INSTANCES];
	atomic_int finished;
	atomic_int submitted;
	atomic_int submitters_done;
	atomic_int violations;   /* sum of the kinds below */
	atomic_int two_running;  /* a claim while another of its instance ran */
	atomic_int out_of_order; /* a claim of an instance out of arrival order */
	atomic_int bad_line;     /* a list of an instance wrong (order, instance, running) */
	atomic_int bad_rc;
	int64_t end_ns;
	uint64_t seed;
};

static int inst_index(const char *uuid)
{
	for (int i = 0; i < MIX_INSTANCES; i++) {
		char u[PVM_UUID_LEN + 1];
		uuid_n(u, 200 + (unsigned)i);
		if (strcmp(u, uuid) == 0)
			return i;
	}
	return -1;
}

static void mix_bad(struct mix *m, int rc)
{
	int zero = 0;
	atomic_compare_exchange_strong(&m->bad_rc, &zero, rc);
}

static void *mix_submitter(void *p)
{
	struct mix *m = p;
	for (int n = 0; n < MIX_EACH && pvm_mono_ns() < m->end_ns; n++) {
		char u[PVM_UUID_LEN + 1];
		uuid_n(u, 200 + (unsigned)(n % MIX_INSTANCES));
		json_t *params = json_pack("{s:i}", "n", n);
		struct pvm_op_submit s = {.type = "power_on", .instance_uuid = u, .params = params};
		uint64_t id = 0;
		int rc = pvm_queue_submit(m->q, &s, &id, NULL);
		json_decref(params);
		if (rc != 0) {
			mix_bad(m, rc);
			break;
		}
		atomic_fetch_add(&m->submitted, 1);
	}
	atomic_fetch_add(&m->submitters_done, 1);
	return NULL;
}

static void *mix_claimer(void *p)
{
	struct mix *m = p;
	for (int iter = 0; iter < 10000000 && pvm_mono_ns() < m->end_ns; iter++) {
		if (atomic_load(&m->submitters_done) == MIX_SUBMITTERS &&
		    atomic_load(&m->finished) == atomic_load(&m->submitted))
			break;
		struct pvm_op *op = NULL;
		int rc = pvm_queue_claim(m->q, pvm_now_ms(), &op, NULL);
		if (rc == PVM_ENOTFOUND) {
			sched_yield();
			continue;
		}
		if (rc != 0) {
			mix_bad(m, rc);
			break;
		}
		int i = inst_index(op->instance_uuid);
		if (i < 0 || atomic_fetch_add(&m->running[i], 1) != 0) {
			atomic_fetch_add(&m->two_running, 1);
			atomic_fetch_add(&m->violations, 1);
		} else if (op->id < atomic_load(&m->last[i])) {
			atomic_fetch_add(&m->out_of_order, 1);
			atomic_fetch_add(&m->violations, 1);
		}
		if (i >= 0)
			atomic_store(&m->last[i], op->id);
		struct pvm_op_update u;
		pvm_op_update_init(&u, op->id);
		u.expect_state = PVM_OP_RUNNING;
		bool again = op->id % 4 == 0 && !json_object_get(op->checkpoints, "waited");
		json_t *cp = json_pack("{s:b}", "waited", 1);
		if (again) {
			u.new_state = PVM_OP_WAITING;
			u.due_ms = pvm_now_ms();
			u.checkpoint_set = cp;
		} else {
			u.new_state = PVM_OP_SUCCEEDED;
		}
		/* Leave the line before the commit that lets the next one be claimed. */
		if (i >= 0)
			atomic_fetch_sub(&m->running[i], 1);
		rc = pvm_queue_update(m->q, &u);
		json_decref(cp);
		pvm_op_free(op);
		if (rc != 0) {
			mix_bad(m, rc);
			break;
		}
		if (!again)
			atomic_fetch_add(&m->finished, 1);
	}
	return NULL;
}

static void *mix_reader(void *p)
{
	struct mix *m = p;
	uint64_t rs = m->seed;
	for (int iter = 0; iter < 1000000 && pvm_mono_ns() < m->end_ns &&
	                   atomic_load(&m->submitters_done) < MIX_SUBMITTERS;
	     iter++) {
		char u[PVM_UUID_LEN + 1];
		uuid_n(u, 200 + (unsigned)(pvm_test_rand(&rs) % MIX_INSTANCES));
		struct pvm_queue_filter fl = {.state = PVM_KEEP, .instance_uuid = u};
		struct pvm_op **ops = NULL;
		size_t n = 0;
		int rc = pvm_queue_list(m->q, &fl, &ops, &n, NULL);
		if (rc != 0) {
			mix_bad(m, rc);
			break;
		}
		/* That instance's operations, in id (= arrival) order; at most one running. */
		int running = 0;
		for (size_t i = 0; i < n; i++) {
			running += ops[i]->state == PVM_OP_RUNNING;
			bool bad = (i > 0 && ops[i]->id <= ops[i - 1]->id) ||
			           strcmp(ops[i]->instance_uuid, u) != 0 || running > 1;
			if (bad) {
				atomic_fetch_add(&m->bad_line, 1);
				atomic_fetch_add(&m->violations, 1);
			}
		}
		pvm_op_list_free(ops, n);
		struct pvm_queue_stats st;
		memset(&st, 0, sizeof(st));
		if (pvm_queue_stats(m->q, &st) != 0)
			mix_bad(m, PVM_EJOURNAL);
		if (st.by_state[PVM_OP_RUNNING] > MIX_INSTANCES) {
			atomic_fetch_add(&m->two_running, 1);
			atomic_fetch_add(&m->violations, 1);
		}
	}
	return NULL;
}

static void test_queue_concurrent_mixed_fifo(void **state)
{
	struct fx *f = *state;
	struct mix *m = calloc(1, sizeof(*m));
	assert_non_null(m);
	m->q = f->q;
	m->seed = pvm_test_seed("test_queue_concurrent_mixed_fifo");
	m->end_ns = pvm_mono_ns() + (int64_t)120000 * pvm_test_scale() * 1000000;
	pthread_t th[MIX_SUBMITTERS + MIX_CLAIMERS + 1];
	int k = 0;
	for (int i = 0; i < MIX_SUBMITTERS; i++)
		assert_int_equal(pthread_create(&th[k++], NULL, mix_submitter, m), 0);
	for (int i = 0; i < MIX_CLAIMERS; i++)
		assert_int_equal(pthread_create(&th[k++], NULL, mix_claimer, m), 0);
	assert_int_equal(pthread_create(&th[k++], NULL, mix_reader, m), 0);
	for (int i = 0; i < k; i++)
		pthread_join(th[i], NULL);
	print_message("mixed: %d claims with two running, %d out of order, %d bad lines\n",
	              atomic_load(&m->two_running), atomic_load(&m->out_of_order),
	              atomic_load(&m->bad_line));
	assert_rc(atomic_load(&m->bad_rc), 0);
	assert_int_equal(atomic_load(&m->violations), 0);
	assert_int_equal(atomic_load(&m->submitted), MIX_SUBMITTERS * MIX_EACH);
	assert_int_equal(atomic_load(&m->finished), MIX_SUBMITTERS * MIX_EACH);
	struct pvm_queue_stats st = stats_of(f->q);
	assert_int_equal(st.by_state[PVM_OP_SUCCEEDED], MIX_SUBMITTERS * MIX_EACH);
	assert_int_equal(st.total, MIX_SUBMITTERS * MIX_EACH);
	free(m);
	assert_verify_clean(f->q);
}

/* ---- recovery --------------------------------------------------------------------------- */

static void test_queue_recovery(void **state)
{
	struct fx *f = *state;
	char A[PVM_UUID_LEN + 1], B[PVM_UUID_LEN + 1], C[PVM_UUID_LEN + 1], D[PVM_UUID_LEN + 1];
	uuid_n(A, 71);
	uuid_n(B, 72);
	uuid_n(C, 73);
	uuid_n(D, 74);
	uint64_t r1 = sub(f->q, A, 0);
	uint64_t a2 = sub(f->q, A, 0);
	uint64_t r2 = sub(f->q, B, 0);
	uint64_t w = sub(f->q, C, 0);
	uint64_t v = sub(f->q, D, 0);
	int64_t later = pvm_now_ms() + 2 * HOUR_MS;
	char E[PVM_UUID_LEN + 1];
	uuid_n(E, 75);
	uint64_t q1 = sub(f->q, E, later);
	for (int i = 0; i < 4; i++)
		claim_id(f->q, pvm_now_ms()); /* r1, r2, w, v */
	assert_state(f->q, r1, PVM_OP_RUNNING);
	assert_state(f->q, r2, PVM_OP_RUNNING);
	assert_state(f->q, w, PVM_OP_RUNNING);
	assert_state(f->q, v, PVM_OP_RUNNING);
	struct pvm_op_update u;

	json_t *cp = json_pack("{s:{s:s}, s:{s:s, s:s}}", "s0", "lpar", "done", "s1", "intent",
	                       "create_vdisk", "job", "J77");
	pvm_op_update_init(&u, r1);
	u.step = 2;
	u.checkpoint_set = cp;
	u.progress = 30;
	assert_rc(pvm_queue_update(f->q, &u), 0);
	pvm_op_update_init(&u, w);
	u.new_state = PVM_OP_WAITING;
	u.due_ms = later;
	assert_rc(pvm_queue_update(f->q, &u), 0);
	pvm_op_update_init(&u, v);
	u.new_state = PVM_OP_REVERTING;
	u.direction = PVM_DIR_REVERT;
	u.step = 1;
	assert_rc(pvm_queue_update(f->q, &u), 0);

	/* Without recover, a reopen changes nothing. */
	fx_reopen(f, false);
	assert_int_equal(pvm_queue_recovered(f->q), 0);
	assert_state(f->q, r1, PVM_OP_RUNNING);
	assert_state(f->q, r2, PVM_OP_RUNNING);

	/* The process "died": running ones return to queued, due now, at their checkpoint. */
	fx_reopen(f, true);
	int64_t now = pvm_now_ms();
	assert_int_equal(pvm_queue_recovered(f->q), 3); /* r1, r2 and v were returned to due */
	struct pvm_op *op = get_op(f->q, r1);
	assert_int_equal(op->state, PVM_OP_QUEUED);
	assert_int_equal(op->step, 2);
	assert_true(json_equal(op->checkpoints, cp));
	assert_true(op->flags & PVM_OPF_RECOVERED);
	assert_true(op->due_ms <= now);
	pvm_op_free(op);
	assert_state(f->q, r2, PVM_OP_QUEUED);
	op = get_op(f->q, w);
	assert_int_equal(op->state, PVM_OP_WAITING);
	assert_int_equal(op->due_ms, later); /* waiting ones keep their due time */
	assert_false(op->flags & PVM_OPF_RECOVERED);
	pvm_op_free(op);
	op = get_op(f->q, v);
	assert_int_equal(op->state, PVM_OP_REVERTING); /* resumes reverting */
	assert_int_equal(op->direction, PVM_DIR_REVERT);
	assert_int_equal(op->step, 1);
	assert_true(op->due_ms <= now);
	pvm_op_free(op);
	op = get_op(f->q, q1);
	assert_int_equal(op->state, PVM_OP_QUEUED);
	assert_int_equal(op->due_ms, later);
	pvm_op_free(op);
	assert_int_equal(stats_of(f->q).by_state[PVM_OP_RUNNING], 0);

	/* Due again: r1, r2 and v (which stays reverting); a2 still waits behind r1. */
	bool got_r1 = false, got_r2 = false, got_v = false;
	for (int i = 0; i < 3; i++) {
		op = claim_ok(f->q, now);
		if (op->id == r1) {
			got_r1 = true;
			assert_int_equal(op->state, PVM_OP_RUNNING);
			assert_int_equal(op->step, 2);
		} else if (op->id == r2) {
			got_r2 = true;
		} else if (op->id == v) {
			got_v = true;
			assert_int_equal(op->state, PVM_OP_REVERTING);
		} else {
			print_error("claimed %llu after recovery\n", (unsigned long long)op->id);
			fail();
		}
		pvm_op_free(op);
	}
	assert_true(got_r1 && got_r2 && got_v);
	claim_none(f->q, now);
	assert_state(f->q, a2, PVM_OP_QUEUED);

	/* Recovered twice: still counted, flag kept. */
	fx_reopen(f, true);
	assert_int_equal(pvm_queue_recovered(f->q), 3);
	json_decref(cp);
	assert_verify_clean(f->q);
}

/* ---- reads ------------------------------------------------------------------------------ */

static void test_queue_list_filters(void **state)
{
	struct fx *f = *state;
	char A[PVM_UUID_LEN + 1], B[PVM_UUID_LEN + 1];
	uuid_n(A, 81);
	uuid_n(B, 82);
	uint64_t a1 = sub_full(f->q, "spawn", A, NULL, 0, NULL, NULL);
	uint64_t a2 = sub_full(f->q, "reboot", A, NULL, 0, NULL, NULL);
	uint64_t b1 = sub_full(f->q, "spawn", B, NULL, 0, NULL, NULL);
	uint64_t n1 = sub_full(f->q, "power_on", NULL, NULL, 0, NULL, NULL);
	uint64_t a3 = sub_full(f->q, "destroy", A, NULL, 0, NULL, NULL);
	drive_to(f->q, a1, PVM_OP_SUCCEEDED);
	drive_to(f->q, b1, PVM_OP_RUNNING);
	drive_to(f->q, n1, PVM_OP_CANCELLED);

	struct pvm_queue_filter fl = {.state = PVM_KEEP};
	struct idlist l = list_ids(f->q, &fl);
	assert_ids(&l, 5, a1, a2, b1, n1, a3);
	assert_int_equal(l.damaged, 0);
	struct pvm_op **all = NULL;
	size_t nall = 0;
	assert_rc(pvm_queue_list(f->q, &fl, &all, &nall, NULL), 0); /* damaged is optional */
	assert_int_equal(nall, 5);
	pvm_op_list_free(all, nall);

	fl = (struct pvm_queue_filter){.state = PVM_OP_QUEUED};
	l = list_ids(f->q, &fl);
	assert_ids(&l, 2, a2, a3);
	fl.state = PVM_OP_SUCCEEDED;
	l = list_ids(f->q, &fl);
	assert_ids(&l, 1, a1);
	fl.state = PVM_OP_RUNNING;
	l = list_ids(f->q, &fl);
	assert_ids(&l, 1, b1);
	fl.state = PVM_OP_FAILED;
	l = list_ids(f->q, &fl);
	assert_ids(&l, 0);

	/* An instance: its operations in id (= arrival) order, whatever their state. */
	fl = (struct pvm_queue_filter){.state = PVM_KEEP, .instance_uuid = A};
	l = list_ids(f->q, &fl);
	assert_ids(&l, 3, a1, a2, a3);
	fl.after_id = a1;
	l = list_ids(f->q, &fl);
	assert_ids(&l, 2, a2, a3);
	fl.after_id = 0;
	fl.type = "spawn";
	l = list_ids(f->q, &fl);
	assert_ids(&l, 1, a1);
	fl = (struct pvm_queue_filter){.state = PVM_OP_QUEUED, .instance_uuid = A};
	l = list_ids(f->q, &fl);
	assert_ids(&l, 2, a2, a3);
	fl = (struct pvm_queue_filter){.state = PVM_KEEP, .type = "spawn"};
	l = list_ids(f->q, &fl);
	assert_ids(&l, 2, a1, b1);
	char none[PVM_UUID_LEN + 1];
	uuid_n(none, 89);
	fl = (struct pvm_queue_filter){.state = PVM_KEEP, .instance_uuid = none};
	l = list_ids(f->q, &fl);
	assert_ids(&l, 0);

	/* Limit and paging. */
	fl = (struct pvm_queue_filter){.state = PVM_KEEP, .limit = 2};
	l = list_ids(f->q, &fl);
	assert_ids(&l, 2, a1, a2);
	fl.after_id = a2;
	l = list_ids(f->q, &fl);
	assert_ids(&l, 2, b1, n1);
	fl.after_id = n1;
	l = list_ids(f->q, &fl);
	assert_ids(&l, 1, a3);
	fl.after_id = a3;
	l = list_ids(f->q, &fl);
	assert_ids(&l, 0);
	fl = (struct pvm_queue_filter){.state = PVM_OP_QUEUED, .limit = 1, .after_id = a2};
	l = list_ids(f->q, &fl);
	assert_ids(&l, 1, a3);

	/* A list returns whole records. */
	struct pvm_op **ops = NULL;
	size_t n = 0;
	fl = (struct pvm_queue_filter){.state = PVM_OP_RUNNING};
	assert_rc(pvm_queue_list(f->q, &fl, &ops, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ops[0]->type, "spawn");
	assert_string_equal(ops[0]->instance_uuid, B);
	assert_true(json_is_object(ops[0]->params));
	pvm_op_list_free(ops, n);
}

static void test_queue_stats(void **state)
{
	struct fx *f = *state;
	struct pvm_queue_stats st = stats_of(f->q);
	assert_int_equal(st.total, 0);
	for (int s = 0; s < PVM_OP_STATE_COUNT; s++)
		assert_int_equal(st.by_state[s], 0);
	assert_int_equal(st.quarantined, 0);
	assert_int_equal(st.oldest_due_ms, INT64_MAX);
	assert_true(st.map_size >= 1u << 20);
	assert_true(st.map_used <= st.map_size);
	assert_true(st.map_size <= st.map_size_max);

	int64_t base = pvm_now_ms() + HOUR_MS;
	enum pvm_op_state want[] = {PVM_OP_QUEUED,    PVM_OP_QUEUED,    PVM_OP_RUNNING,
	                            PVM_OP_WAITING,   PVM_OP_REVERTING, PVM_OP_SUCCEEDED,
	                            PVM_OP_SUCCEEDED, PVM_OP_FAILED,    PVM_OP_CANCELLED};
	uint64_t ids[9];
	for (int i = 0; i < 9; i++) {
		char u[PVM_UUID_LEN + 1];
		uuid_n(u, 300 + (unsigned)i);
		ids[i] = sub(f->q, u, base + 100 + i);
		drive_to(f->q, ids[i], want[i]);
	}
	/* The waiting one is due earliest. */
	struct pvm_op_update u;
	pvm_op_update_init(&u, ids[3]);
	u.due_ms = base + 5;
	assert_rc(pvm_queue_update(f->q, &u), 0);
	st = stats_of(f->q);
	assert_int_equal(st.total, 9);
	assert_int_equal(st.by_state[PVM_OP_QUEUED], 2);
	assert_int_equal(st.by_state[PVM_OP_RUNNING], 1);
	assert_int_equal(st.by_state[PVM_OP_WAITING], 1);
	assert_int_equal(st.by_state[PVM_OP_REVERTING], 1);
	assert_int_equal(st.by_state[PVM_OP_SUCCEEDED], 2);
	assert_int_equal(st.by_state[PVM_OP_FAILED], 1);
	assert_int_equal(st.by_state[PVM_OP_CANCELLED], 1);
	assert_int_equal(st.oldest_due_ms, base + 5);
	assert_int_equal(st.oldest_due_id, ids[3]);
	assert_true(st.map_used > 0);
	assert_true(st.commits >= 1);
	assert_true(st.commit_requests >= st.commits);

	/* Then the first queued one. */
	pvm_op_update_init(&u, ids[3]);
	u.due_ms = base + 500;
	assert_rc(pvm_queue_update(f->q, &u), 0);
	st = stats_of(f->q);
	assert_int_equal(st.oldest_due_ms, base + 100);
	assert_int_equal(st.oldest_due_id, ids[0]);

	/* The limits are those opened with. */
	fx_close(f);
	struct pvm_queue_opts o;
	fx_opts(f, &o);
	o.map_size = 8u << 20;
	o.map_size_max = 256u << 20;
	fx_open_with(f, &o);
	st = stats_of(f->q);
	assert_int_equal(st.map_size_max, 256u << 20);
	assert_true(st.map_size >= 8u << 20);
	assert_int_equal(st.total, 9);
}

/* A read-only handle in another process (powervmctl) works next to the writer. */
static void test_queue_read_only_next_to_writer(void **state)
{
	struct fx *f = *state;
	uint64_t id = sub_full(f->q, "reboot", NULL, "k-ro", 0, NULL, NULL);
	sub_alone(f->q);
	char *helper = helper_path();
	char ids[32];
	snprintf(ids, sizeof(ids), "%llu", (unsigned long long)id);
	char *argv[] = {helper, "readonly", f->dir, ids, "reboot", "k-ro", NULL};
	int status = run_helper(argv);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		print_error("read-only helper: status 0x%x\n", status);
		fail();
	}
	/* The writer carries on. */
	sub_alone(f->q);
	assert_int_equal(stats_of(f->q).total, 3);
	assert_verify_clean(f->q);
	free(helper);

	/* Read-only never creates a journal. */
	char missing[PATH_MAX];
	snprintf(missing, sizeof(missing), "%s/absent", f->root);
	struct pvm_queue_opts o = {.dir = missing, .read_only = true};
	struct pvm_queue *q = NULL;
	assert_rc_fails(pvm_queue_open(&o, &q));
	assert_null(q);
	struct stat st;
	assert_int_equal(stat(missing, &st), -1);
}

struct watcher {
	pid_t pid;
	int to;   /* its stdin */
	int from; /* its stdout */
	char buf[4096];
	size_t len;
};

/* Reads one line from the watcher within a scaled deadline; returns false on EOF/timeout. */
static bool watch_line(struct watcher *w, char *out, size_t n)
{
	int64_t end = pvm_mono_ns() + (int64_t)30000 * pvm_test_scale() * 1000000;
	for (;;) {
		char *nl = memchr(w->buf, '\n', w->len);
		if (nl) {
			size_t l = (size_t)(nl - w->buf);
			snprintf(out, n, "%.*s", (int)l, w->buf);
			memmove(w->buf, nl + 1, w->len - l - 1);
			w->len -= l + 1;
			return true;
		}
		if (pvm_mono_ns() > end || w->len == sizeof(w->buf))
			return false;
		struct pollfd p = {.fd = w->from, .events = POLLIN};
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t r = read(w->from, w->buf + w->len, sizeof(w->buf) - w->len);
		if (r <= 0)
			return false;
		w->len += (size_t)r;
	}
}

/* Asks the watcher for id; false (after printing why) unless it read it, of type. */
static bool watch_ask(struct watcher *w, uint64_t id, const char *type)
{
	char q[32], want[96], got[160] = "";
	int n = snprintf(q, sizeof(q), "%llu\n", (unsigned long long)id);
	if (write(w->to, q, (size_t)n) != n)
		return false;
	snprintf(want, sizeof(want), "OK %llu %s", (unsigned long long)id, type);
	if (!watch_line(w, got, sizeof(got)) || strcmp(got, want) != 0) {
		print_error("read-only reader: got '%s', want '%s'\n", got, want);
		return false;
	}
	return true;
}

/* A read-only reader in another process keeps reading while the writer grows the map. */
static void test_queue_read_only_follows_map_growth(void **state)
{
	struct fx *f = *state;
	struct pvm_queue_opts o;
	fx_opts(f, &o);
	o.map_size = 1u << 20;
	o.map_size_max = 64u << 20;
	fx_open_with(f, &o);
	uint64_t first = sub_full(f->q, "reboot", NULL, NULL, 0, NULL, NULL);

	char *helper = helper_path();
	int in[2], out[2];
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	struct watcher *w = calloc(1, sizeof(*w));
	assert_non_null(w);
	w->pid = fork();
	assert_true(w->pid >= 0);
	if (w->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		char *argv[] = {helper, "readwatch", f->dir, NULL};
		execv(helper, argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	w->to = in[1];
	w->from = out[0];
	char line[160] = "";
	bool ok = watch_line(w, line, sizeof(line)) && strcmp(line, "R") == 0;
	if (!ok)
		print_error("read-only reader did not start: '%s'\n", line);
	ok = ok && watch_ask(w, first, "reboot");

	enum { BIG = 32 * 1024 };
	uint64_t last = 0;
	size_t n = 0;
	int rc = 0;
	struct pvm_queue_stats st = stats_of(f->q);
	int64_t grow_end = pvm_mono_ns() + (int64_t)120000 * pvm_test_scale() * 1000000;
	while (ok && rc == 0 && st.map_size < (8u << 20) && n < 600 && pvm_mono_ns() < grow_end) {
		char *blob = big_string(BIG, (unsigned)n);
		json_t *p = json_pack("{s:s}", "blob", blob);
		free(blob);
		struct pvm_op_submit s = {.type = "snapshot", .params = p};
		rc = pvm_queue_submit(f->q, &s, &last, NULL);
		json_decref(p);
		n++;
		st = stats_of(f->q);
	}
	bool grew = st.map_size >= (8u << 20);
	ok = ok && rc == 0 && grew && watch_ask(w, last, "snapshot") &&
	     watch_ask(w, first, "reboot");
	if (ok && write(w->to, "q\n", 2) != 2)
		ok = false;
	close(w->to);
	int status = 0;
	int64_t end = pvm_mono_ns() + (int64_t)30000 * pvm_test_scale() * 1000000;
	while (waitpid(w->pid, &status, WNOHANG) == 0) {
		if (pvm_mono_ns() > end) {
			kill(w->pid, SIGKILL);
			waitpid(w->pid, &status, 0);
			break;
		}
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	close(w->from);
	free(w);
	free(helper);
	assert_rc(rc, 0);
	assert_true(ok);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- the future-version poke: a record as a newer build would write it ----------------- */

/* CRC32C (Castagnoli, reflected), bit by bit: independent of queue/crc32c.c. */
static uint32_t crc32c_bitwise(uint32_t crc, const unsigned char *p, size_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
	}
	return ~crc;
}

/* The record header (queue/internal.h): "PVMR", u16 version, u16 0, u32 body length,
 * u32 CRC32C of bytes 0..11 and the body, all little endian. A newer build writes a
 * higher version with a valid checksum. */
static void bump_version(unsigned char *v, size_t n)
{
	assert_true(n > 16);
	assert_memory_equal(v, "PVMR", 4);
	assert_int_equal(v[4] | v[5] << 8, PVM_QUEUE_RECORD_VERSION);
	v[4] = PVM_QUEUE_RECORD_VERSION + 1;
	v[5] = 0;
	uint32_t crc = crc32c_bitwise(0, v, 12);
	crc = crc32c_bitwise(crc, v + 16, n - 16);
	uint32_t old = (uint32_t)v[12] | (uint32_t)v[13] << 8 | (uint32_t)v[14] << 16 |
	               (uint32_t)v[15] << 24;
	/* Sanity: the same CRC recomputed over the original bytes matched. */
	v[4] = PVM_QUEUE_RECORD_VERSION;
	assert_int_equal(crc32c_bitwise(crc32c_bitwise(0, v, 12), v + 16, n - 16), old);
	v[4] = PVM_QUEUE_RECORD_VERSION + 1;
	for (int i = 0; i < 4; i++)
		v[12 + i] = (unsigned char)(crc >> (8 * i));
}

/* ---- generation: what the engine and long-polls wait on ---- */

struct gen_arg {
	struct pvm_queue *q;
	uint64_t seen;
	uint64_t after;
	int64_t waited_ns;
};

static void *gen_waiter(void *p)
{
	struct gen_arg *a = p;
	int64_t t0 = pvm_mono_ns();
	a->after = pvm_queue_wait_change(a->q, a->seen, 30000 * pvm_test_scale());
	a->waited_ns = pvm_mono_ns() - t0;
	return NULL;
}

static void test_queue_generation_wakes_waiters(void **state)
{
	struct fx *f = *state;
	uint64_t g0 = pvm_queue_generation(f->q);
	/* nothing committed: a wait times out with the same generation */
	int64_t t0 = pvm_mono_ns();
	assert_int_equal(pvm_queue_wait_change(f->q, g0, 50), g0);
	assert_true(pvm_mono_ns() - t0 >= 45 * 1000000LL);
	/* a commit from another thread wakes a waiter long before its timeout */
	struct gen_arg a = {.q = f->q, .seen = g0};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, gen_waiter, &a), 0);
	sub_alone(f->q);
	pthread_join(t, NULL);
	assert_true(a.after > g0);
	assert_true(a.waited_ns < 20000LL * 1000000LL * pvm_test_scale());
	assert_true(pvm_queue_generation(f->q) > g0);
}

int main(void)
{
	pvm_log_setup("test_queue", PVM_LOG_STDERR,
	              getenv("PVM_TEST_VERBOSE") ? PVM_LOG_DEBUG : PVM_LOG_ERROR);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_queue_state_names),
	        cmocka_unit_test(test_queue_transition_table),
#define T(name)        cmocka_unit_test_setup_teardown(name, setup_open, teardown)
#define T_CLOSED(name) cmocka_unit_test_setup_teardown(name, setup_closed, teardown)
	        T(test_queue_update_all_transition_pairs),
	        T(test_queue_update_expect_state),
	        T(test_queue_update_fields),
	        T(test_queue_submit_records_fields),
	        T(test_queue_submit_rejects_invalid),
	        T(test_queue_idempotent_resubmit),
	        T(test_queue_conflicting_resubmit),
	        T(test_queue_idempotent_concurrent),
	        T(test_queue_submit_many),
	        T(test_queue_instance_fifo),
	        T(test_queue_due_order),
	        T(test_queue_running_never_claimed_twice),
	        T(test_queue_cancel),
	        T(test_queue_signal),
	        T(test_queue_mark_while_running),
	        T(test_queue_wake),
	        T(test_queue_retry),
	        T(test_queue_purge),
	        T(test_queue_purge_expired),
	        T(test_queue_ids_never_reused),
	        T(test_queue_secrets_roundtrip_and_redaction),
	        T(test_queue_secrets_never_on_disk_in_plaintext),
	        T(test_queue_secrets_erased_at_end),
	        T_CLOSED(test_queue_secrets_refused_without_key),
	        T(test_queue_secret_key_file),
	        T(test_queue_corrupt_record_quarantined),
	        T(test_queue_corrupt_record_quarantined_by_next_write),
	        T(test_queue_future_record_version),
	        T_CLOSED(test_queue_open_refuses_foreign_file),
	        T_CLOSED(test_queue_open_refuses_foreign_lmdb),
	        T(test_queue_open_refuses_truncated_file),
	        T(test_queue_open_refuses_future_journal),
	        T_CLOSED(test_queue_map_growth_and_full),
	        T_CLOSED(test_queue_map_growth_with_readers),
	        T(test_queue_concurrent_submitters),
	        T(test_queue_concurrent_mixed_fifo),
	        T(test_queue_recovery),
	        T(test_queue_list_filters),
	        T(test_queue_stats),
	        T(test_queue_read_only_next_to_writer),
	        T(test_queue_generation_wakes_waiters),
	        T_CLOSED(test_queue_read_only_follows_map_growth),
#undef T
#undef T_CLOSED
	};
	return cmocka_run_group_tests_name("queue", tests, NULL, NULL);
}
