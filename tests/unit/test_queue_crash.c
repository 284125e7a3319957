/* test_queue_crash.c: kill -9 never loses an acknowledged submission.
 *
 * A child process (queue_crash_child, exec'd so that it is a clean process) streams group-
 * committed submissions from 8 threads into one journal while another thread claims and
 * moves operations on; after each submission the journal acknowledged, the child writes
 * "A <id> <key>" to a pipe. The parent SIGKILLs it at a random moment (drawn from the printed
 * seed: sometimes while it is still opening and recovering, mostly while it streams), then
 * opens the same directory with recover=true and checks that every submission ever
 * acknowledged is there, intact (type, instance, params, key, found by its key), that
 * pvm_queue_verify() finds nothing wrong and that nothing is left running. The next child
 * continues in the same directory.
 *
 * Bounds: 40 kills within about 60 s in a normal build; under sanitizers (PVM_TEST_SCALE > 1)
 * 30 kills within 240 s. Fewer than 30 kills is a failure.
 */
#include "testutil.h"
#include "unit/queue_crash_child.h"

#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/queue.h"
#include "pvm/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define CHILD_THREADS 8
#define MIN_KILLS     30

struct ack {
	uint64_t id;
	unsigned gen, t, n;
};

struct acks {
	struct ack *v;
	size_t n, cap;
};

static void acks_add(struct acks *a, uint64_t id, unsigned gen, unsigned t, unsigned n)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 4096;
		a->v = realloc(a->v, a->cap * sizeof(*a->v));
		assert_non_null(a->v);
	}
	a->v[a->n++] = (struct ack){id, gen, t, n};
}

static int64_t mono_ms(void)
{
	return pvm_mono_ns() / 1000000;
}

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

/* Line reader over the child's pipe. */
struct reader {
	int fd;
	char buf[1 << 16];
	size_t len;
	bool eof;
	bool ready;
	unsigned gen;
	struct acks *acks;
	size_t new_acks;
};

static void parse_lines(struct reader *r)
{
	size_t start = 0;
	for (size_t i = 0; i < r->len; i++) {
		if (r->buf[i] != '\n')
			continue;
		r->buf[i] = '\0';
		const char *line = r->buf + start;
		start = i + 1;
		if (strcmp(line, "R") == 0) {
			r->ready = true;
			continue;
		}
		unsigned long long id = 0;
		char key[CRASH_KEY_MAX];
		unsigned gen, t, n;
		if (sscanf(line, "A %llu %63s", &id, key) != 2 ||
		    crash_parse_key(key, &gen, &t, &n) != 0 || gen != r->gen || id == 0) {
			print_error("child wrote a bad line: '%s'\n", line);
			fail();
		}
		acks_add(r->acks, id, gen, t, n);
		r->new_acks++;
	}
	memmove(r->buf, r->buf + start, r->len - start);
	r->len -= start;
}

/* Reads what the child wrote for up to timeout_ms (or until stop(r) holds or EOF). */
static void pump(struct reader *r, int64_t timeout_ms, bool (*stop)(struct reader *))
{
	int64_t end = mono_ms() + timeout_ms;
	for (int i = 0; i < 10000000 && !r->eof && !(stop && stop(r)); i++) {
		int64_t left = end - mono_ms();
		if (left <= 0)
			break;
		struct pollfd p = {.fd = r->fd, .events = POLLIN};
		int pr = poll(&p, 1, (int)(left > 100 ? 100 : left));
		if (pr < 0 && errno == EINTR)
			continue;
		assert_true(pr >= 0);
		if (pr == 0)
			continue;
		ssize_t got = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		assert_true(got >= 0);
		if (got == 0) {
			r->eof = true;
			break;
		}
		r->len += (size_t)got;
		parse_lines(r);
		assert_true(r->len < sizeof(r->buf));
	}
}

static bool is_ready(struct reader *r)
{
	return r->ready;
}

static pid_t spawn_child(const char *helper, const char *dir, unsigned gen, long max_ms, int *rfd)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	char gens[16], threads[16], maxs[32];
	snprintf(gens, sizeof(gens), "%u", gen);
	snprintf(threads, sizeof(threads), "%d", CHILD_THREADS);
	snprintf(maxs, sizeof(maxs), "%ld", max_ms);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		char *argv[] = {(char *)helper, "submit", (char *)dir, gens, threads, maxs, NULL};
		execv(helper, argv);
		_exit(127);
	}
	close(fds[1]);
	fcntl(fds[0], F_SETFD, FD_CLOEXEC);
	*rfd = fds[0];
	return pid;
}

/* Every acknowledged submission is present, intact and found by its key. */
static void check_journal(const char *dir, const struct acks *acks, unsigned gen)
{
	struct pvm_queue_opts o = {.dir = dir, .recover = true};
	struct pvm_queue *q = NULL;
	int rc = pvm_queue_open(&o, &q);
	if (rc != 0) {
		print_error("after kill %u: pvm_queue_open: %s\n", gen, pvm_errname(rc));
		fail();
	}
	size_t problems = 999;
	rc = pvm_queue_verify(q, &problems);
	if (rc != 0 || problems != 0) {
		print_error("after kill %u: verify: %s, %zu problems\n", gen, pvm_errname(rc),
		            problems);
		fail();
	}
	struct pvm_queue_stats st;
	assert_int_equal(pvm_queue_stats(q, &st), 0);
	assert_int_equal(st.by_state[PVM_OP_RUNNING], 0); /* recovery left nothing running */
	assert_int_equal(st.quarantined, 0);
	assert_true(st.total >= acks->n);
	for (size_t i = 0; i < acks->n; i++) {
		const struct ack *a = &acks->v[i];
		struct crash_sub cs;
		assert_int_equal(crash_derive(a->gen, a->t, a->n, &cs), 0);
		struct pvm_op *op = NULL;
		rc = pvm_queue_get(q, a->id, &op);
		bool ok = rc == 0 && strcmp(op->type, cs.type) == 0 &&
		          strcmp(op->instance_uuid, cs.instance) == 0 &&
		          strcmp(op->idempotency_key, cs.key) == 0 &&
		          strcmp(op->request_id, "req-crash") == 0 &&
		          json_equal(op->params, cs.params);
		if (!ok) {
			char *got = op ? json_dumps(op->params, JSON_COMPACT) : NULL;
			print_error("after kill %u: acknowledged op %llu (%s) is %s: %s%.200s\n",
			            gen, (unsigned long long)a->id, cs.key,
			            rc ? "unreadable" : "not as submitted", pvm_errname(rc),
			            got ? got : "");
			free(got);
			pvm_op_free(op);
			json_decref(cs.params);
			pvm_queue_close(q);
			fail();
		}
		pvm_op_free(op);
		uint64_t found = 0;
		rc = pvm_queue_find_key(q, cs.key, &found);
		json_decref(cs.params);
		if (rc != 0 || found != a->id) {
			print_error("after kill %u: key %s: %s, id %llu, want %llu\n", gen, cs.key,
			            pvm_errname(rc), (unsigned long long)found,
			            (unsigned long long)a->id);
			pvm_queue_close(q);
			fail();
		}
	}
	pvm_queue_close(q);
}

static int cmp_ack_id(const void *x, const void *y)
{
	uint64_t a = ((const struct ack *)x)->id, b = ((const struct ack *)y)->id;
	return a < b ? -1 : a > b;
}

static void test_queue_crash_kill9_keeps_acknowledged(void **state)
{
	(void)state;
	uint64_t seed = pvm_test_seed("test_queue_crash");
	uint64_t rs = seed;
	int scale = pvm_test_scale();
	const int target = scale > 1 ? MIN_KILLS : 40;
	const int64_t budget_ms = scale > 1 ? 240000 : 60000;
	const long child_max_ms = 60000L * scale;
	char *root = pvm_test_tmpdir("queue-crash");
	char dir[PATH_MAX + 16];
	snprintf(dir, sizeof(dir), "%s/state", root);
	char *helper = helper_path();
	struct acks acks = {0};
	int kills = 0, early = 0;
	int64_t t0 = mono_ms(), verify_ms = 0;

	for (unsigned gen = 0; kills < target && mono_ms() - t0 < budget_ms; gen++) {
		int rfd = -1;
		pid_t pid = spawn_child(helper, dir, gen, child_max_ms, &rfd);
		struct reader *r = calloc(1, sizeof(*r));
		assert_non_null(r);
		r->fd = rfd;
		r->gen = gen;
		r->acks = &acks;
		/* One kill in four lands anywhere from the start (open, recovery); the others
		 * while it streams. */
		bool from_start = pvm_test_rand(&rs) % 4 == 0;
		int64_t delay = from_start ? (int64_t)(pvm_test_rand(&rs) % 150)
		                           : (int64_t)(pvm_test_rand(&rs) % 250);
		if (from_start) {
			early++;
		} else {
			pump(r, 30000LL * scale, is_ready);
			if (!r->ready) {
				kill(pid, SIGKILL);
				waitpid(pid, NULL, 0);
				print_error("child %u never became ready\n", gen);
				fail();
			}
		}
		pump(r, delay, NULL);
		bool exited_early = r->eof;
		kill(pid, SIGKILL);
		pump(r, 30000LL * scale, NULL); /* the rest, up to EOF */
		int status = 0;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		close(rfd);
		if (exited_early || !WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
			print_error("child %u ended by itself: status 0x%x\n", gen, status);
			fail();
		}
		assert_true(r->eof);
		free(r);
		kills++;
		int64_t v0 = mono_ms();
		check_journal(dir, &acks, gen);
		verify_ms += mono_ms() - v0;
	}

	qsort(acks.v, acks.n, sizeof(*acks.v), cmp_ack_id);
	for (size_t i = 1; i < acks.n; i++)
		assert_true(acks.v[i].id != acks.v[i - 1].id);
	print_message("crash: %d kills (%d early), %zu acknowledged submissions, all intact; "
	              "%.1f s (%.1f s checking)\n",
	              kills, early, acks.n, (double)(mono_ms() - t0) / 1000.0,
	              (double)verify_ms / 1000.0);
	assert_true(kills >= MIN_KILLS);
	assert_true(acks.n > 0);
	free(acks.v);
	free(helper);
	pvm_test_rmtree(root);
}

int main(void)
{
	pvm_log_setup("test_queue_crash", PVM_LOG_STDERR,
	              getenv("PVM_TEST_VERBOSE") ? PVM_LOG_DEBUG : PVM_LOG_WARNING);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_queue_crash_kill9_keeps_acknowledged),
	};
	return cmocka_run_group_tests_name("queue_crash", tests, NULL, NULL);
}
