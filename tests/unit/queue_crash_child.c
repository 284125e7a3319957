/* queue_crash_child.c: a clean child process for the journal tests.
 *
 *   queue_crash_child submit DIR GEN THREADS MAX_MS
 *     Opens the journal in DIR (recover=true, a small initial map so that it grows while it
 *     is killed), prints "R\n" on stdout, then THREADS threads stream submissions derived
 *     by queue_crash_child.h; after each one pvm_queue_submit() acknowledged, one line
 *     "A <id> <key>\n" goes to stdout with a single write(2) (atomic on a pipe). One more
 *     thread claims due operations and moves them on (waiting, succeeded, reverting ->
 *     failed) so that kills also land in the middle of index updates. The parent SIGKILLs
 *     it; if it is not killed it stops after MAX_MS and exits 0.
 *   queue_crash_child readonly DIR ID TYPE KEY
 *     Opens DIR read-only while another process holds it open for writing, reads ID (which
 *     must be of TYPE and hold KEY), lists, stats and verifies, and checks that a write is
 *     refused. Exits 0 when all of that held, else non-zero with the reason on stderr.
 *   queue_crash_child readwatch DIR
 *     Opens DIR read-only, prints "R\n", then for each id read from stdin prints
 *     "OK <id> <type>\n" or "ERR <id> <code name>\n" (a reader that lives while the writer
 *     grows the map). Exits 0 at "q" or end of input.
 */
#include "queue_crash_child.h"

#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/queue.h"
#include "pvm/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS    32
#define MAX_PER_THREAD 200000

static struct pvm_queue *queue;
static unsigned generation;
static int64_t stop_ns;

static void die(int code, const char *what, int rc)
{
	fprintf(stderr, "queue_crash_child: %s: %s (%d)\n", what, pvm_errname(rc), rc);
	fflush(stderr);
	_exit(code);
}

static void out_line(const char *buf, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(1, buf + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(0); /* the parent is gone */
		off += (size_t)w;
	}
}

static void nap_ms(long ms)
{
	struct timespec ts = {0, ms * 1000000L};
	nanosleep(&ts, NULL);
}

static void *submitter(void *arg)
{
	unsigned t = (unsigned)(uintptr_t)arg;
	for (unsigned n = 0; n < MAX_PER_THREAD && pvm_mono_ns() < stop_ns; n++) {
		struct crash_sub cs;
		if (crash_derive(generation, t, n, &cs) != 0)
			die(2, "crash_derive", PVM_ENOMEM);
		struct pvm_op_submit s = {
		        .type = cs.type,
		        .instance_uuid = cs.instance[0] ? cs.instance : NULL,
		        .idempotency_key = cs.key,
		        .request_id = "req-crash",
		        .params = cs.params,
		};
		uint64_t id = 0;
		bool existed = true;
		int rc = pvm_queue_submit(queue, &s, &id, &existed);
		json_decref(cs.params);
		if (rc != 0)
			die(2, "pvm_queue_submit", rc);
		if (existed)
			die(2, "pvm_queue_submit: a fresh key reported existed", 0);
		char line[128];
		int len =
		        snprintf(line, sizeof(line), "A %llu %s\n", (unsigned long long)id, cs.key);
		out_line(line, (size_t)len);
	}
	return NULL;
}

/* Moves claimed operations on, so that kills also hit claims and state index updates. */
static void *claimer(void *arg)
{
	(void)arg;
	for (long i = 0; i < 100000000L && pvm_mono_ns() < stop_ns; i++) {
		struct pvm_op *op = NULL;
		int rc = pvm_queue_claim(queue, pvm_now_ms(), &op, NULL);
		if (rc == PVM_ENOTFOUND) {
			nap_ms(1);
			continue;
		}
		if (rc != 0)
			die(3, "pvm_queue_claim", rc);
		struct pvm_op_update u;
		pvm_op_update_init(&u, op->id);
		json_t *cp = json_pack("{s:I}", "seen", (json_int_t)op->id);
		u.checkpoint_set = cp;
		u.expect_state = (int)op->state;
		if (op->state == PVM_OP_RUNNING && op->id % 3 == 0 &&
		    !json_object_get(op->checkpoints, "seen")) {
			u.new_state = PVM_OP_WAITING;
			u.due_ms = pvm_now_ms() + 2;
			rc = pvm_queue_update(queue, &u);
		} else if (op->state == PVM_OP_RUNNING && op->id % 7 == 0) {
			u.new_state = PVM_OP_REVERTING;
			u.direction = PVM_DIR_REVERT;
			u.error = "injected failure";
			u.error_code = "PVM_EIO";
			u.record_attempt = true;
			rc = pvm_queue_update(queue, &u);
			if (rc == 0) {
				pvm_op_update_init(&u, op->id);
				u.new_state = PVM_OP_FAILED;
				rc = pvm_queue_update(queue, &u);
			}
		} else if (op->state == PVM_OP_REVERTING) {
			u.new_state = PVM_OP_FAILED;
			rc = pvm_queue_update(queue, &u);
		} else {
			u.new_state = PVM_OP_SUCCEEDED;
			u.progress = 100;
			rc = pvm_queue_update(queue, &u);
		}
		json_decref(cp);
		pvm_op_free(op);
		if (rc != 0)
			die(3, "pvm_queue_update", rc);
	}
	return NULL;
}

static int run_submit(const char *dir, unsigned gen, unsigned nthreads, long max_ms)
{
	if (nthreads < 1 || nthreads > MAX_THREADS)
		die(1, "bad thread count", PVM_EINVAL);
	generation = gen;
	stop_ns = pvm_mono_ns() + (int64_t)max_ms * 1000000;
	struct pvm_queue_opts o = {
	        .dir = dir,
	        .map_size = 2u << 20, /* grows while the child is being killed */
	        .recover = true,
	};
	int rc = pvm_queue_open(&o, &queue);
	if (rc != 0)
		die(1, "pvm_queue_open", rc);
	out_line("R\n", 2);
	pthread_t th[MAX_THREADS + 1];
	for (unsigned t = 0; t < nthreads; t++)
		if (pthread_create(&th[t], NULL, submitter, (void *)(uintptr_t)t) != 0)
			die(1, "pthread_create", -errno);
	if (pthread_create(&th[nthreads], NULL, claimer, NULL) != 0)
		die(1, "pthread_create", -errno);
	for (unsigned t = 0; t <= nthreads; t++)
		pthread_join(th[t], NULL);
	pvm_queue_close(queue);
	return 0;
}

static int run_readonly(const char *dir, uint64_t id, const char *type, const char *key)
{
	struct pvm_queue_opts o = {.dir = dir, .read_only = true};
	struct pvm_queue *q = NULL;
	int rc = pvm_queue_open(&o, &q);
	if (rc != 0)
		die(10, "read-only pvm_queue_open", rc);
	struct pvm_op *op = NULL;
	rc = pvm_queue_get(q, id, &op);
	if (rc != 0)
		die(11, "read-only pvm_queue_get", rc);
	if (strcmp(op->type, type) != 0 || strcmp(op->idempotency_key, key) != 0)
		die(12, "read-only pvm_queue_get: wrong record", 0);
	pvm_op_free(op);
	uint64_t found = 0;
	rc = pvm_queue_find_key(q, key, &found);
	if (rc != 0 || found != id)
		die(13, "read-only pvm_queue_find_key", rc);
	struct pvm_queue_filter f = {.state = PVM_KEEP};
	struct pvm_op **ops = NULL;
	size_t n = 0, damaged = 0;
	rc = pvm_queue_list(q, &f, &ops, &n, &damaged);
	if (rc != 0 || n < 1 || damaged != 0)
		die(14, "read-only pvm_queue_list", rc);
	pvm_op_list_free(ops, n);
	struct pvm_queue_stats st;
	rc = pvm_queue_stats(q, &st);
	if (rc != 0 || st.total < 1)
		die(15, "read-only pvm_queue_stats", rc);
	size_t problems = 99;
	rc = pvm_queue_verify(q, &problems);
	if (rc != 0 || problems != 0)
		die(16, "read-only pvm_queue_verify", rc);
	json_t *params = json_object();
	struct pvm_op_submit s = {.type = "spawn", .params = params};
	uint64_t nid = 0;
	bool existed = false;
	rc = pvm_queue_submit(q, &s, &nid, &existed);
	json_decref(params);
	if (rc == 0)
		die(17, "read-only pvm_queue_submit succeeded", rc);
	pvm_queue_close(q);
	return 0;
}

static int run_readwatch(const char *dir)
{
	struct pvm_queue_opts o = {.dir = dir, .read_only = true};
	struct pvm_queue *q = NULL;
	int rc = pvm_queue_open(&o, &q);
	if (rc != 0)
		die(20, "read-only pvm_queue_open", rc);
	out_line("R\n", 2);
	char in[64];
	for (int i = 0; i < 100000 && fgets(in, sizeof(in), stdin); i++) {
		if (in[0] == 'q')
			break;
		uint64_t id = strtoull(in, NULL, 10);
		struct pvm_op *op = NULL;
		rc = pvm_queue_get(q, id, &op);
		char line[128];
		int len = rc == 0 ? snprintf(line, sizeof(line), "OK %llu %s\n",
		                             (unsigned long long)id, op->type)
		                  : snprintf(line, sizeof(line), "ERR %llu %s\n",
		                             (unsigned long long)id, pvm_errname(rc));
		pvm_op_free(op);
		out_line(line, (size_t)len);
	}
	pvm_queue_close(q);
	return 0;
}

int main(int argc, char **argv)
{
	pvm_log_setup("queue_crash_child", PVM_LOG_STDERR,
	              getenv("PVM_TEST_VERBOSE") ? PVM_LOG_DEBUG : PVM_LOG_WARNING);
	if (argc == 6 && strcmp(argv[1], "submit") == 0)
		return run_submit(argv[2], (unsigned)strtoul(argv[3], NULL, 10),
		                  (unsigned)strtoul(argv[4], NULL, 10), strtol(argv[5], NULL, 10));
	if (argc == 6 && strcmp(argv[1], "readonly") == 0)
		return run_readonly(argv[2], strtoull(argv[3], NULL, 10), argv[4], argv[5]);
	if (argc == 3 && strcmp(argv[1], "readwatch") == 0)
		return run_readwatch(argv[2]);
	fprintf(stderr, "usage: queue_crash_child submit DIR GEN THREADS MAX_MS\n"
	                "       queue_crash_child readonly DIR ID TYPE KEY\n"
	                "       queue_crash_child readwatch DIR\n");
	return 64;
}
