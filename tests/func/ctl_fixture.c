/* ctl_fixture.c: writes a journal with known contents for powervmctl's tests
 * (tests/func/ctl_test.py), through the journal's own API.
 *
 * ctl_fixture DIR: creates the journal in DIR (with DIR/secret.key) holding, in id order:
 *   1 test_steps  inst A  succeeded (result set)
 *   2 test_steps  inst A  failed after two transient attempts (HSCL1234), then a permanent
 *                         error (its undo ran)
 *   3 power_on    inst B  running (left so: a crash; recovery returns it to the queue)
 *   4 power_off   inst B  queued behind 3
 *   5 spawn       inst C  waiting for an hour at 40%, with secret params and a param whose
 *                         name says it is secret
 *   6 spawn       inst D  cancelled before it started
 *   7 test_steps  inst D  queued
 * Exit status 0, or 1 with the failing call named.
 */
#include "pvm/error.h"
#include "pvm/queue.h"
#include "pvm/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INST_A "11111111-1111-4111-8111-111111111111"
#define INST_B "22222222-2222-4222-8222-222222222222"
#define INST_C "33333333-3333-4333-8333-333333333333"
#define INST_D "44444444-4444-4444-8444-444444444444"

static int check(int rc, const char *what)
{
	if (rc)
		fprintf(stderr, "ctl_fixture: %s: %s\n", what, pvm_strerror(rc));
	return rc;
}

static int submit(struct pvm_queue *q, const char *type, const char *inst, const char *key,
                  json_t *params, json_t *secrets, uint64_t *id)
{
	struct pvm_op_submit s = {.type = type,
	                          .instance_uuid = inst,
	                          .idempotency_key = key,
	                          .request_id = "req-fixture",
	                          .table_version = 1,
	                          .params = params,
	                          .secrets = secrets};
	bool existed;
	int rc = pvm_queue_submit(q, &s, id, &existed);
	json_decref(params);
	json_decref(secrets);
	return check(rc, "submit");
}

static int claim(struct pvm_queue *q, uint64_t want)
{
	struct pvm_op *op = NULL;
	int rc = pvm_queue_claim(q, pvm_now_ms(), &op, NULL);
	if (check(rc, "claim"))
		return rc;
	if (op->id != want) {
		fprintf(stderr, "ctl_fixture: claimed %llu, expected %llu\n",
		        (unsigned long long)op->id, (unsigned long long)want);
		rc = PVM_EINVAL;
	}
	pvm_op_free(op);
	return rc;
}

static int update(struct pvm_queue *q, struct pvm_op_update *u)
{
	return check(pvm_queue_update(q, u), "update");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: ctl_fixture DIR\n");
		return 2;
	}
	char key[4200];
	snprintf(key, sizeof(key), "%s/secret.key", argv[1]);
	struct pvm_queue_opts o = {.dir = argv[1], .secret_key_file = key, .create_key = true};
	struct pvm_queue *q;
	if (check(pvm_queue_open(&o, &q), "open"))
		return 1;
	int64_t now = pvm_now_ms();
	uint64_t id;
	struct pvm_op_update u;
	int rc = 0;

	/* 1: succeeded. */
	rc = rc ? rc
	        : submit(q, "test_steps", INST_A, "fx-1",
	                 json_pack("{s:s}", "partition_name", "fx1"), NULL, &id);
	rc = rc ? rc : claim(q, 1);
	pvm_op_update_init(&u, 1);
	u.new_state = PVM_OP_SUCCEEDED;
	u.progress = 100;
	u.step = 5;
	json_t *res = json_pack("{s:s}", "partition_uuid", "5A1B2C3D-0000-4000-8000-000000000001");
	u.result = res;
	rc = rc ? rc : update(q, &u);
	json_decref(res);

	/* 2: two transient failures, then a permanent one: failed. */
	rc = rc ? rc
	        : submit(q, "test_steps", INST_A, "fx-2",
	                 json_pack("{s:s}", "partition_name", "fx2"), NULL, &id);
	for (int i = 0; i < 2 && !rc; i++) {
		rc = claim(q, 2);
		pvm_op_update_init(&u, 2);
		u.new_state = PVM_OP_WAITING;
		u.step = i == 0 ? 1 : PVM_KEEP;
		u.due_ms = pvm_now_ms();
		u.error = "VIOS busy";
		u.error_code = "HSCL1234";
		u.record_attempt = true;
		rc = rc ? rc : update(q, &u);
	}
	rc = rc ? rc : claim(q, 2);
	pvm_op_update_init(&u, 2);
	u.new_state = PVM_OP_REVERTING;
	u.direction = PVM_DIR_REVERT;
	u.error = "partition profile refused";
	u.error_code = "HSCL9999";
	u.record_attempt = true;
	rc = rc ? rc : update(q, &u);
	pvm_op_update_init(&u, 2);
	u.new_state = PVM_OP_FAILED;
	rc = rc ? rc : update(q, &u);

	/* 3: running (claimed, never finished); 4 queued behind it. */
	rc = rc ? rc
	        : submit(q, "power_on", INST_B, "fx-3", json_pack("{s:b}", "force", 0), NULL, &id);
	rc = rc ? rc : claim(q, 3);
	pvm_op_update_init(&u, 3);
	u.progress = 30;
	json_t *cp = json_pack("{s:{s:s}}", "power_on", "job_id", "1234");
	u.checkpoint_set = cp;
	rc = rc ? rc : update(q, &u);
	json_decref(cp);
	rc = rc ? rc : submit(q, "power_off", INST_B, "fx-4", json_object(), NULL, &id);

	/* 5: waiting an hour, with secrets. */
	rc = rc ? rc
	        : submit(q, "spawn", INST_C, "fx-5",
	                 json_pack("{s:{s:i, s:i}, s:s}", "flavor", "vcpus", 2, "memory_mb", 2048,
	                           "auth_token", "tok-must-not-show"),
	                 json_pack("{s:s}", "admin_password", "hunter2-must-not-show"), &id);
	rc = rc ? rc : claim(q, 5);
	pvm_op_update_init(&u, 5);
	u.new_state = PVM_OP_WAITING;
	u.step = 2;
	u.progress = 40;
	u.due_ms = now + 3600 * 1000;
	cp = json_pack("{s:{s:s}}", "create_partition", "uuid",
	               "5A1B2C3D-0000-4000-8000-000000000005");
	u.checkpoint_set = cp;
	rc = rc ? rc : update(q, &u);
	json_decref(cp);

	/* 6: cancelled before it started; 7 queued. */
	rc = rc ? rc : submit(q, "spawn", INST_D, "fx-6", json_object(), NULL, &id);
	enum pvm_op_state st;
	rc = rc ? rc : check(pvm_queue_cancel(q, 6, &st), "cancel");
	rc = rc ? rc : submit(q, "test_steps", INST_D, "fx-7", json_object(), NULL, &id);

	pvm_queue_close(q);
	return rc ? 1 : 0;
}
