/* test_engine.c: the step engine and worker pool (workers/engine.c) over a real journal,
 * with operation types whose steps need no PowerVM: their behaviour comes from params.
 *
 * params of the "fake" type: {"script": {"<step>": ["done" | "wait" | "retry" | "fail"...]}}
 * Each run of a step takes the next verdict of its list (the last one repeats); every run and
 * undo is appended to a shared trace so tests can check order. */
#include "pvm/engine.h"
#include "pvm/error.h"
#include "pvm/queue.h"
#include "pvm/util.h"
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static pthread_mutex_t trace_mu = PTHREAD_MUTEX_INITIALIZER;
static char trace[8192];

static void trace_add(const char *fmt, ...)
{
	char buf[128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&trace_mu);
	if (strlen(trace) + strlen(buf) + 2 < sizeof(trace)) {
		strcat(trace, buf);
		strcat(trace, " ");
	}
	pthread_mutex_unlock(&trace_mu);
}

static void trace_get(char *out, size_t n)
{
	pthread_mutex_lock(&trace_mu);
	pvm_strlcpy(out, trace, n);
	pthread_mutex_unlock(&trace_mu);
}

static void scripted(struct pvm_step_ctx *ctx, struct pvm_step_result *res, bool undo)
{
	const struct pvm_step_def *sd = pvm_step_def(ctx);
	char key[64];
	snprintf(key, sizeof(key), "%s%s", undo ? "undo_" : "", sd->name);
	json_t *list = json_object_get(json_object_get(ctx->op->params, "script"), key);
	char counter[80];
	snprintf(counter, sizeof(counter), "runs_%s", key);
	json_int_t runs = json_integer_value(json_object_get(ctx->data, counter));
	json_object_set_new(ctx->data, counter, json_integer(runs + 1));
	const char *v = "done";
	if (json_array_size(list)) {
		size_t i = (size_t)runs < json_array_size(list) ? (size_t)runs
		                                                : json_array_size(list) - 1;
		v = json_string_value(json_array_get(list, i));
	}
	trace_add("%.8s:%s:%s", ctx->op->instance_uuid[0] ? ctx->op->instance_uuid : "none", key,
	          v);
	if (strcmp(v, "wait") == 0)
		pvm_step_wait(res, ctx->now_ms + 30, "scripted wait");
	else if (strcmp(v, "park") == 0)
		pvm_step_wait(res, ctx->now_ms + 3600 * 1000, "parked until a signal");
	else if (strcmp(v, "retry") == 0)
		pvm_step_retry(res, -EAGAIN, "scripted transient error");
	else if (strcmp(v, "fail") == 0)
		pvm_step_fail(res, PVM_EINVAL, "scripted permanent error");
	else if (strcmp(v, "gate") == 0 && !json_object_get(ctx->op->signals, "go"))
		pvm_step_wait(res, ctx->now_ms + 3600 * 1000, "gate");
	else
		res->verdict = PVM_STEP_DONE;
}

static void s_run(struct pvm_step_ctx *c, struct pvm_step_result *r)
{
	scripted(c, r, false);
}
static void s_undo(struct pvm_step_ctx *c, struct pvm_step_result *r)
{
	scripted(c, r, true);
}

static const struct pvm_step_def fake_steps[] = {
        {"a", s_run, s_undo, NULL, NULL},
        {"b", s_run, NULL, NULL, NULL},
        {"c", s_run, s_undo, NULL, NULL},
};

static const struct pvm_op_type fake_v2 = {
        .name = "fake", .version = 2, .steps = fake_steps, .nsteps = 3, .max_attempts = 3};
static const struct pvm_op_type fake_v1 = {
        .name = "fake", .version = 1, .steps = fake_steps, .nsteps = 2, .max_attempts = 3};
static const char *const secret_fields[] = {"admin_password", NULL};
static const struct pvm_op_type secretive = {.name = "secretive",
                                             .version = 1,
                                             .steps = fake_steps,
                                             .nsteps = 1,
                                             .secret_fields = secret_fields};
static const struct pvm_op_type testonly = {
        .name = "testonly", .version = 1, .steps = fake_steps, .nsteps = 1, .test_only = true};

struct fx {
	char *dir;
	struct pvm_queue *q;
	struct pvm_engine *e;
};

static int setup_n(void **state, int workers, bool paused)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->dir = pvm_test_tmpdir("engine");
	char key[512];
	snprintf(key, sizeof(key), "%s/secret.key", f->dir);
	struct pvm_queue_opts qo = {
	        .dir = f->dir, .secret_key_file = key, .create_key = true, .recover = true};
	assert_int_equal(pvm_queue_open(&qo, &f->q), 0);
	struct pvm_engine_opts eo = {.workers = workers,
	                             .paused = paused,
	                             .retry_base_ms = 20,
	                             .retry_max_ms = 80,
	                             .poll_min_ms = 20,
	                             .poll_max_ms = 100};
	assert_int_equal(pvm_engine_create(&eo, f->q, NULL, &f->e), 0);
	assert_int_equal(pvm_engine_register(f->e, &fake_v1), 0);
	assert_int_equal(pvm_engine_register(f->e, &fake_v2), 0);
	assert_int_equal(pvm_engine_register(f->e, &secretive), 0);
	assert_int_equal(pvm_engine_register(f->e, &testonly), 0);
	assert_int_equal(pvm_engine_register(f->e, &fake_v2), PVM_EEXIST);
	assert_int_equal(pvm_engine_start(f->e), 0);
	pthread_mutex_lock(&trace_mu);
	trace[0] = '\0';
	pthread_mutex_unlock(&trace_mu);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_n(state, 4, false);
}

static int setup_paused(void **state)
{
	return setup_n(state, 2, true);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	pvm_engine_stop(f->e, 5000);
	pvm_engine_destroy(f->e);
	pvm_queue_close(f->q);
	pvm_test_rmtree(f->dir);
	free(f);
	return 0;
}

static uint64_t submit(struct fx *f, const char *type, const char *inst, const char *script_json)
{
	json_t *params = json_loads(script_json, 0, NULL);
	assert_non_null(params);
	json_t *clean = NULL, *secrets = NULL;
	uint32_t version = 0;
	int64_t deadline = 0;
	char field[64], msg[256];
	assert_int_equal(pvm_engine_prepare(f->e, type, params, &clean, &secrets, &version,
	                                    &deadline, field, sizeof(field), msg, sizeof(msg)),
	                 0);
	struct pvm_op_submit s = {.type = type,
	                          .instance_uuid = inst,
	                          .table_version = version,
	                          .params = clean,
	                          .secrets = secrets,
	                          .deadline_ms = deadline};
	uint64_t id = 0;
	bool existed;
	assert_int_equal(pvm_queue_submit(f->q, &s, &id, &existed), 0);
	json_decref(params);
	json_decref(clean);
	json_decref(secrets);
	pvm_engine_notify(f->e);
	return id;
}

struct wait_arg {
	struct fx *f;
	uint64_t id;
	enum pvm_op_state want;
};

static bool op_in_state(void *p)
{
	struct wait_arg *a = p;
	struct pvm_op *op;
	if (pvm_queue_get(a->f->q, a->id, &op))
		return false;
	bool ok = op->state == a->want;
	pvm_op_free(op);
	return ok;
}

static struct pvm_op *wait_state(struct fx *f, uint64_t id, enum pvm_op_state want)
{
	struct wait_arg a = {f, id, want};
	if (!pvm_test_wait(op_in_state, &a, 10000)) {
		struct pvm_op *op;
		pvm_queue_get(f->q, id, &op);
		fail_msg("op %llu is %s, wanted %s", (unsigned long long)id,
		         pvm_op_state_name(op->state), pvm_op_state_name(want));
	}
	struct pvm_op *op;
	assert_int_equal(pvm_queue_get(f->q, id, &op), 0);
	return op;
}

static const char *A = "aaaaaaaa-0000-4000-8000-000000000001";
static const char *B = "bbbbbbbb-0000-4000-8000-000000000002";

static void test_engine_runs_steps_in_order(void **state)
{
	struct fx *f = *state;
	uint64_t id = submit(f, "fake", A, "{}");
	struct pvm_op *op = wait_state(f, id, PVM_OP_SUCCEEDED);
	assert_int_equal(op->table_version, 2);
	assert_int_equal(op->progress, 100);
	/* each step's checkpoint was committed */
	assert_int_equal(json_integer_value(
	                         json_object_get(json_object_get(op->checkpoints, "c"), "runs_c")),
	                 1);
	pvm_op_free(op);
	char t[1024];
	trace_get(t, sizeof(t));
	assert_string_equal(t, "aaaaaaaa:a:done aaaaaaaa:b:done aaaaaaaa:c:done ");
}

static void test_engine_wait_then_done(void **state)
{
	struct fx *f = *state;
	uint64_t id = submit(f, "fake", A, "{\"script\":{\"b\":[\"wait\",\"wait\",\"done\"]}}");
	struct pvm_op *op = wait_state(f, id, PVM_OP_SUCCEEDED);
	assert_int_equal(json_integer_value(
	                         json_object_get(json_object_get(op->checkpoints, "b"), "runs_b")),
	                 3);
	assert_int_equal(op->retries, 0);
	pvm_op_free(op);
}

static void test_engine_retry_with_backoff_then_done(void **state)
{
	struct fx *f = *state;
	uint64_t id = submit(f, "fake", A, "{\"script\":{\"a\":[\"retry\",\"retry\",\"done\"]}}");
	struct pvm_op *op = wait_state(f, id, PVM_OP_SUCCEEDED);
	assert_int_equal(op->retries, 2);
	/* the error of every attempt is kept */
	size_t attempts = 0, i;
	json_t *h;
	json_array_foreach(op->history, i, h)
	{
		if (strcmp(json_string_value(json_object_get(h, "event")), "attempt failed") == 0) {
			attempts++;
			assert_string_equal(json_string_value(json_object_get(h, "error")),
			                    "scripted transient error");
		}
	}
	assert_int_equal(attempts, 2);
	pvm_op_free(op);
	struct pvm_engine_stats st;
	pvm_engine_stats(f->e, &st);
	assert_int_equal(st.steps_retried, 2);
}

static void test_engine_retries_exhausted_undo_then_failed(void **state)
{
	struct fx *f = *state;
	uint64_t id = submit(f, "fake", A, "{\"script\":{\"c\":[\"retry\"]}}");
	struct pvm_op *op = wait_state(f, id, PVM_OP_FAILED);
	assert_non_null(strstr(op->error, "gave up after 3 attempts"));
	pvm_op_free(op);
	char t[1024];
	trace_get(t, sizeof(t));
	/* c retried 3 times, then the undo of c (the failing step) and of a, in reverse; b has
	 * no undo. */
	assert_string_equal(t, "aaaaaaaa:a:done aaaaaaaa:b:done aaaaaaaa:c:retry aaaaaaaa:c:retry "
	                       "aaaaaaaa:c:retry aaaaaaaa:undo_c:done aaaaaaaa:undo_a:done ");
}

static void test_engine_fail_undoes_in_reverse(void **state)
{
	struct fx *f = *state;
	uint64_t id = submit(f, "fake", A,
	                     "{\"script\":{\"c\":[\"fail\"],\"undo_a\":[\"wait\",\"done\"]}}");
	struct pvm_op *op = wait_state(f, id, PVM_OP_FAILED);
	assert_string_equal(op->error, "scripted permanent error");
	assert_int_equal(op->direction, PVM_DIR_REVERT);
	pvm_op_free(op);
	char t[1024];
	trace_get(t, sizeof(t));
	assert_string_equal(t, "aaaaaaaa:a:done aaaaaaaa:b:done aaaaaaaa:c:fail "
	                       "aaaaaaaa:undo_c:done aaaaaaaa:undo_a:wait aaaaaaaa:undo_a:done ");
}

static void test_engine_cancel_mark_reverts_to_cancelled(void **state)
{
	struct fx *f = *state;
	uint64_t id = submit(f, "fake", A, "{\"script\":{\"b\":[\"park\"]}}");
	struct pvm_op *op = wait_state(f, id, PVM_OP_WAITING);
	pvm_op_free(op);
	enum pvm_op_state after;
	assert_int_equal(pvm_queue_cancel(f->q, id, &after), 0);
	pvm_engine_notify(f->e);
	op = wait_state(f, id, PVM_OP_CANCELLED);
	pvm_op_free(op);
	char t[1024];
	trace_get(t, sizeof(t));
	assert_string_equal(t, "aaaaaaaa:a:done aaaaaaaa:b:park aaaaaaaa:undo_a:done ");
}

static void test_engine_signal_opens_gate(void **state)
{
	struct fx *f = *state;
	uint64_t id = submit(f, "fake", A, "{\"script\":{\"b\":[\"gate\"]}}");
	struct pvm_op *op = wait_state(f, id, PVM_OP_WAITING);
	pvm_op_free(op);
	json_t *v = json_true();
	assert_int_equal(pvm_queue_signal(f->q, id, "go", v), 0);
	json_decref(v);
	pvm_engine_notify(f->e);
	op = wait_state(f, id, PVM_OP_SUCCEEDED);
	pvm_op_free(op);
}

static void test_engine_per_instance_order(void **state)
{
	struct fx *f = *state;
	uint64_t a1 = submit(f, "fake", A, "{\"script\":{\"b\":[\"wait\",\"wait\",\"done\"]}}");
	uint64_t a2 = submit(f, "fake", A, "{}");
	uint64_t b1 = submit(f, "fake", B, "{}");
	pvm_op_free(wait_state(f, a2, PVM_OP_SUCCEEDED));
	pvm_op_free(wait_state(f, b1, PVM_OP_SUCCEEDED));
	struct pvm_op *o1, *o2;
	assert_int_equal(pvm_queue_get(f->q, a1, &o1), 0);
	assert_int_equal(pvm_queue_get(f->q, a2, &o2), 0);
	assert_int_equal(o1->state, PVM_OP_SUCCEEDED);
	/* the second operation of A started only after the first finished */
	assert_true(o2->started_ms >= o1->finished_ms);
	pvm_op_free(o1);
	pvm_op_free(o2);
	/* steps of A's two operations never interleave */
	char t[2048];
	trace_get(t, sizeof(t));
	const char *first_done = strstr(t, "aaaaaaaa:c:done");
	const char *second_a = strstr(first_done, "aaaaaaaa:a:done");
	assert_non_null(second_a);
	assert_null(strstr(t, "aaaaaaaa:a:done aaaaaaaa:a:done"));
}

static void test_engine_old_table_version_fails_cleanly(void **state)
{
	struct fx *f = *state;
	/* An operation journaled under a table this build does not have. */
	json_t *params = json_object();
	struct pvm_op_submit s = {
	        .type = "fake", .instance_uuid = A, .table_version = 7, .params = params};
	uint64_t id;
	bool ex;
	assert_int_equal(pvm_queue_submit(f->q, &s, &id, &ex), 0);
	json_decref(params);
	pvm_engine_notify(f->e);
	struct pvm_op *op = wait_state(f, id, PVM_OP_FAILED);
	assert_non_null(strstr(op->error, "step table v7 of fake"));
	assert_string_equal(op->error_code, "PVM_EVERSION");
	pvm_op_free(op);
	/* An operation under the older table that still exists finishes under it. */
	params = json_object();
	s.table_version = 1;
	s.params = params;
	assert_int_equal(pvm_queue_submit(f->q, &s, &id, &ex), 0);
	json_decref(params);
	pvm_engine_notify(f->e);
	op = wait_state(f, id, PVM_OP_SUCCEEDED);
	pvm_op_free(op);
	char t[1024];
	trace_get(t, sizeof(t));
	assert_null(strstr(t, ":c:")); /* v1 has two steps */
}

static void test_engine_deadline_turns_around(void **state)
{
	struct fx *f = *state;
	json_t *params = json_loads("{\"script\":{\"b\":[\"wait\"]}}", 0, NULL);
	struct pvm_op_submit s = {.type = "fake",
	                          .instance_uuid = A,
	                          .table_version = 2,
	                          .params = params,
	                          .deadline_ms = pvm_now_ms() + 300};
	uint64_t id;
	bool ex;
	assert_int_equal(pvm_queue_submit(f->q, &s, &id, &ex), 0);
	json_decref(params);
	pvm_engine_notify(f->e);
	struct pvm_op *op = wait_state(f, id, PVM_OP_FAILED);
	assert_string_equal(op->error_code, "PVM_ETIMEDOUT");
	pvm_op_free(op);
}

static void test_engine_prepare_validates_and_splits_secrets(void **state)
{
	struct fx *f = *state;
	json_t *params = json_pack("{s:s, s:i}", "admin_password", "s3cr3t", "x", 1);
	json_t *clean = NULL, *secrets = NULL;
	uint32_t v;
	int64_t dl;
	char field[64] = "", msg[256] = "";
	assert_int_equal(pvm_engine_prepare(f->e, "secretive", params, &clean, &secrets, &v, &dl,
	                                    field, sizeof(field), msg, sizeof(msg)),
	                 0);
	assert_null(json_object_get(clean, "admin_password"));
	assert_string_equal(json_string_value(json_object_get(secrets, "admin_password")),
	                    "s3cr3t");
	json_decref(clean);
	json_decref(secrets);
	assert_int_equal(pvm_engine_prepare(f->e, "nope", params, &clean, &secrets, &v, &dl, field,
	                                    sizeof(field), msg, sizeof(msg)),
	                 PVM_EINVAL);
	assert_string_equal(field, "type");
	/* test-only types are unknown unless enabled */
	assert_null(pvm_engine_type(f->e, "testonly"));
	assert_int_equal(pvm_engine_prepare(f->e, "testonly", params, &clean, &secrets, &v, &dl,
	                                    field, sizeof(field), msg, sizeof(msg)),
	                 PVM_EINVAL);
	assert_int_equal(pvm_engine_type(f->e, "fake")->version, 2);
	const char *names[8];
	size_t n = pvm_engine_type_names(f->e, names, 8);
	assert_int_equal(n, 2);
	json_decref(params);
}

static int count_threads(const char *prefix)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	int n = 0;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char path[300], name[64] = "";
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
		FILE *fp = fopen(path, "r");
		if (fp && fgets(name, sizeof(name), fp) &&
		    strncmp(name, prefix, strlen(prefix)) == 0)
			n++;
		if (fp)
			fclose(fp);
	}
	if (d)
		closedir(d);
	return n;
}

static bool four_workers(void *arg)
{
	(void)arg;
	return count_threads("pvm-worker-") == 4;
}

static void test_engine_pool_threads_named_and_fixed(void **state)
{
	struct fx *f = *state;
	/* the workers name themselves as they start */
	assert_true(pvm_test_wait(four_workers, NULL, 5000));
	uint64_t ids[40];
	char inst[40];
	for (int i = 0; i < 40; i++) {
		snprintf(inst, sizeof(inst), "cccccccc-0000-4000-8000-%012d", i);
		ids[i] = submit(f, "fake", inst, "{\"script\":{\"b\":[\"wait\",\"done\"]}}");
	}
	for (int i = 0; i < 40; i++)
		pvm_op_free(wait_state(f, ids[i], PVM_OP_SUCCEEDED));
	assert_int_equal(count_threads("pvm-worker-"), 4);
}

static void test_engine_paused_runs_nothing_until_resumed(void **state)
{
	struct fx *f = *state;
	assert_true(pvm_engine_paused(f->e));
	uint64_t id = submit(f, "fake", A, "{}");
	/* nothing runs while paused: the operation stays queued across several kicks */
	for (int i = 0; i < 5; i++)
		pvm_engine_notify(f->e);
	struct pvm_op *op;
	assert_int_equal(pvm_queue_get(f->q, id, &op), 0);
	assert_int_equal(op->state, PVM_OP_QUEUED);
	pvm_op_free(op);
	char t[256];
	trace_get(t, sizeof(t));
	assert_string_equal(t, "");
	pvm_engine_resume(f->e);
	pvm_op_free(wait_state(f, id, PVM_OP_SUCCEEDED));
}

static void test_engine_reconcile_cancels_what_nova_abandoned(void **state)
{
	struct fx *f = *state;
	uint64_t a = submit(f, "fake", A, "{\"script\":{\"b\":[\"park\"]}}");
	uint64_t b = submit(f, "fake", B, "{\"script\":{\"b\":[\"park\"]}}");
	pvm_op_free(wait_state(f, a, PVM_OP_WAITING));
	pvm_op_free(wait_state(f, b, PVM_OP_WAITING));
	/* nova still waits for B (task_state set), has no task for A */
	json_t *view = json_pack("{s:[{s:s, s:s, s:n}, {s:s, s:s, s:s}]}", "instances", "uuid", A,
	                         "vm_state", "error", "task_state", "uuid", B, "vm_state", "active",
	                         "task_state", "spawning");
	json_t *report = NULL;
	assert_int_equal(pvm_engine_reconcile(f->e, view, &report), 0);
	assert_int_equal(json_array_size(json_object_get(report, "cancelled")), 1);
	assert_int_equal(
	        json_integer_value(json_array_get(json_object_get(report, "cancelled"), 0)),
	        (json_int_t)a);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(report, "kept"), 0)),
	                 (json_int_t)b);
	json_decref(view);
	json_decref(report);
	pvm_op_free(wait_state(f, a, PVM_OP_CANCELLED));
	struct pvm_op *op;
	assert_int_equal(pvm_queue_get(f->q, b, &op), 0);
	assert_int_equal(op->state, PVM_OP_WAITING);
	pvm_op_free(op);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_engine_runs_steps_in_order, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_engine_wait_then_done, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_engine_retry_with_backoff_then_done, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_engine_retries_exhausted_undo_then_failed,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_engine_fail_undoes_in_reverse, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_engine_cancel_mark_reverts_to_cancelled, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_engine_signal_opens_gate, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_engine_per_instance_order, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_engine_old_table_version_fails_cleanly, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_engine_deadline_turns_around, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_engine_prepare_validates_and_splits_secrets,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_engine_pool_threads_named_and_fixed, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_engine_paused_runs_nothing_until_resumed,
	                                        setup_paused, teardown),
	        cmocka_unit_test_setup_teardown(test_engine_reconcile_cancels_what_nova_abandoned,
	                                        setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
