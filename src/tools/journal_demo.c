/* journal_demo.c: what scripts/demo shows of the journal until the lifecycle lands.
 *
 * Opens a journal in a directory, then: submits operations for two instances and claims
 * them (per-instance order), resubmits with the same idempotency key (the same operation)
 * and with other params (a conflict), walks one operation through a failure and its undo,
 * streams submissions from a child process that is killed with SIGKILL mid-stream, and
 * reopens the journal to show that every acknowledged submission survived.
 */
#include "pvm/error.h"
#include "pvm/queue.h"
#include "pvm/util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *inst_a = "6c3a1f1e-0d2b-4c55-9a77-1b2c3d4e5f60";
static const char *inst_b = "0b9e8d7c-6a5f-4e3d-8c2b-a1b2c3d4e5f6";

static int submit(struct pvm_queue *q, const char *type, const char *inst, const char *key,
                  int flavor_mb, uint64_t *id, bool *existed)
{
	json_t *params = json_pack("{s:{s:i}}", "flavor", "memory_mb", flavor_mb);
	struct pvm_op_submit s = {.type = type,
	                          .instance_uuid = inst,
	                          .idempotency_key = key,
	                          .request_id = "req-demo",
	                          .table_version = 1,
	                          .params = params};
	int rc = pvm_queue_submit(q, &s, id, existed);
	json_decref(params);
	return rc;
}

static void show_claims(struct pvm_queue *q)
{
	struct pvm_op *op;
	int64_t next;
	while (pvm_queue_claim(q, pvm_now_ms(), &op, &next) == 0) {
		printf("  claimed op %llu (%s on %.8s...) -> %s\n", (unsigned long long)op->id,
		       op->type, op->instance_uuid, pvm_op_state_name(op->state));
		struct pvm_op_update u;
		pvm_op_update_init(&u, op->id);
		u.new_state = PVM_OP_SUCCEEDED;
		pvm_queue_update(q, &u);
		pvm_op_free(op);
	}
}

static int child_stream(const char *dir, int fd)
{
	struct pvm_queue_opts o = {.dir = dir, .recover = true};
	struct pvm_queue *q;
	if (pvm_queue_open(&o, &q))
		return 1;
	for (unsigned i = 0;; i++) {
		char key[64];
		snprintf(key, sizeof(key), "stream-%d-%u", (int)getpid(), i);
		uint64_t id;
		bool ex;
		if (submit(q, "power_on", i % 2 ? inst_a : inst_b, key, 512, &id, &ex) == 0) {
			if (write(fd, &id, sizeof(id)) != (ssize_t)sizeof(id))
				return 1;
		}
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: pvm_journal_demo DIR\n");
		return 2;
	}
	const char *dir = argv[1];
	struct pvm_queue_opts o = {.dir = dir, .recover = true};
	struct pvm_queue *q;
	int rc = pvm_queue_open(&o, &q);
	if (rc) {
		fprintf(stderr, "open %s: %s\n", dir, pvm_strerror(rc));
		return 1;
	}
	uint64_t id, id2;
	bool ex;
	printf("1. Per-instance order: spawn, power_off on instance A; spawn on B\n");
	submit(q, "spawn", inst_a, "req-1:A:spawn", 2048, &id, &ex);
	submit(q, "power_off", inst_a, "req-2:A:power_off", 2048, &id, &ex);
	submit(q, "spawn", inst_b, "req-3:B:spawn", 4096, &id, &ex);
	show_claims(q);

	printf("2. Idempotency: the same key and params again, then other params\n");
	submit(q, "reboot", inst_b, "req-4:B:reboot", 4096, &id, &ex);
	rc = submit(q, "reboot", inst_b, "req-4:B:reboot", 4096, &id2, &ex);
	printf("  resubmit: rc=%s id=%llu (first was %llu), existed=%s\n", pvm_errname(rc),
	       (unsigned long long)id2, (unsigned long long)id, ex ? "yes" : "no");
	rc = submit(q, "reboot", inst_b, "req-4:B:reboot", 8192, &id2, &ex);
	printf("  other params: rc=%s (%s) -> the API answers 409\n", pvm_errname(rc),
	       pvm_strerror(rc));

	printf("3. A failing operation: running -> reverting -> failed, each transition "
	       "journaled\n");
	struct pvm_op *op;
	int64_t next;
	if (pvm_queue_claim(q, pvm_now_ms(), &op, &next) == 0) {
		struct pvm_op_update u;
		pvm_op_update_init(&u, op->id);
		u.new_state = PVM_OP_REVERTING;
		u.direction = PVM_DIR_REVERT;
		u.error = "PowerOn job failed: HSCL1234 partition has no boot device";
		u.error_code = "HSCL1234";
		u.record_attempt = true;
		pvm_queue_update(q, &u);
		pvm_op_update_init(&u, op->id);
		u.new_state = PVM_OP_FAILED;
		pvm_queue_update(q, &u);
		struct pvm_op_update bad;
		pvm_op_update_init(&bad, op->id);
		bad.new_state = PVM_OP_SUCCEEDED;
		rc = pvm_queue_update(q, &bad);
		printf("  op %llu failed; a failed -> succeeded update is refused: %s\n",
		       (unsigned long long)op->id, pvm_errname(rc));
		pvm_op_free(op);
	}
	pvm_queue_close(q);

	printf("4. Crash: a child streams submissions and is killed with SIGKILL\n");
	int fds[2];
	if (pipe(fds))
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		_exit(child_stream(dir, fds[1]));
	}
	close(fds[1]);
	uint64_t acked[65536];
	size_t nacked = 0;
	int64_t end = pvm_mono_ns() + 400 * 1000000LL;
	while (pvm_mono_ns() < end && nacked < 65536) {
		ssize_t r = read(fds[0], &acked[nacked], sizeof(uint64_t));
		if (r != (ssize_t)sizeof(uint64_t))
			break;
		nacked++;
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	while (nacked < 65536 && read(fds[0], &acked[nacked], sizeof(uint64_t)) == sizeof(uint64_t))
		nacked++;
	close(fds[0]);
	if ((rc = pvm_queue_open(&o, &q))) {
		fprintf(stderr, "reopen: %s\n", pvm_strerror(rc));
		return 1;
	}
	size_t present = 0;
	for (size_t i = 0; i < nacked; i++) {
		if (pvm_queue_get(q, acked[i], &op) == 0) {
			present++;
			pvm_op_free(op);
		}
	}
	size_t problems = 0;
	pvm_queue_verify(q, &problems);
	printf("  child killed after %zu acknowledged submissions; after reopening: %zu present, "
	       "journal check found %zu problems\n",
	       nacked, present, problems);
	struct pvm_queue_stats st;
	pvm_queue_stats(q, &st);
	printf("5. Journal now: %zu operations (queued %zu, succeeded %zu, failed %zu), map %zu of "
	       "%zu KiB in use\n",
	       st.total, st.by_state[PVM_OP_QUEUED], st.by_state[PVM_OP_SUCCEEDED],
	       st.by_state[PVM_OP_FAILED], st.map_used >> 10, st.map_size >> 10);
	pvm_queue_close(q);
	return present == nacked && problems == 0 ? 0 : 1;
}
