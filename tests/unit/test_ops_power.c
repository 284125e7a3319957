/* test_ops_power.c: the power operations' pure parts (workers/op_power*.c): the mapping of
 * every PowerVM partition state to a nova power state, the rebooting set, and the params
 * validation of the four types through pvm_engine_prepare (field names in every refusal).
 * The operations themselves run against pvmsim in tests/func/ops_power.py. */
#include "op_power.h"
#include "ops.h"
#include "pvm/engine.h"
#include "pvm/error.h"
#include "pvm/queue.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_power_state_mapping(void **state)
{
	(void)state;
	static const struct {
		const char *pvm;
		int nova;
		const char *name;
	} cases[] = {
	        {"running", 1, "RUNNING"},
	        {"starting", 1, "RUNNING"},
	        {"open firmware", 1, "RUNNING"},
	        {"shutting down", 1, "RUNNING"},
	        {"suspending", 1, "RUNNING"},
	        {"migrating running", 1, "RUNNING"},
	        {"not activated", 4, "SHUTDOWN"},
	        {"migrating not active", 4, "SHUTDOWN"},
	        {"error", 6, "CRASHED"},
	        {"suspended", 7, "SUSPENDED"},
	        {"resuming", 7, "SUSPENDED"},
	        {"not available", 0, "NOSTATE"},
	        {"hardware discovery", 0, "NOSTATE"},
	        {"Unknown", 0, "NOSTATE"},
	        {"unknown", 0, "NOSTATE"},
	        {"Running", 1, "RUNNING"}, /* case is ignored */
	        {"NOT ACTIVATED", 4, "SHUTDOWN"},
	        {"something new", 0, "NOSTATE"},
	        {"", 0, "NOSTATE"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = (int)pvm_nova_power_state(cases[i].pvm);
		if (got != cases[i].nova)
			fail_msg("state '%s': %d, expected %d", cases[i].pvm, got, cases[i].nova);
		assert_string_equal(pvm_nova_power_state_name(got), cases[i].name);
	}
	assert_int_equal(pvm_nova_power_state(NULL), PVM_NOVA_NOSTATE);
	assert_string_equal(pvm_nova_power_state_name(3), "PAUSED");
	assert_string_equal(pvm_nova_power_state_name(42), "NOSTATE");
}

static void test_rebooting_set(void **state)
{
	(void)state;
	/* instance 9f..: its partition is 1f.. (top bit of the first digit cleared) */
	const char *inst = "9f1c2b7e-9a4d-4c1e-8b2a-6d5e4f3a2b1c";
	const char *lpar = "1F1C2B7E-9A4D-4C1E-8B2A-6D5E4F3A2B1C";
	assert_false(pvm_ops_rebooting(inst));
	pvm_ops_rebooting_set(inst, true);
	pvm_ops_rebooting_set(inst, true); /* once */
	assert_true(pvm_ops_rebooting(inst));
	assert_true(pvm_ops_rebooting(lpar));
	assert_false(pvm_ops_rebooting("3f1c2b7e-9a4d-4c1e-8b2a-6d5e4f3a2b1c"));
	pvm_ops_rebooting_set(lpar, false);
	assert_false(pvm_ops_rebooting(inst));
	assert_false(pvm_ops_rebooting(NULL));
	assert_false(pvm_ops_rebooting("not-a-uuid"));
}

struct fixture {
	char *dir;
	struct pvm_queue *q;
	struct pvm_engine *e;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->dir = pvm_test_tmpdir("ops-power");
	assert_int_equal(pvm_queue_open(&(struct pvm_queue_opts){.dir = f->dir}, &f->q), 0);
	struct pvm_engine_opts eo = {.workers = 0};
	assert_int_equal(pvm_engine_create(&eo, f->q, NULL, &f->e), 0);
	assert_int_equal(pvm_ops_register_all(f->e), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	pvm_engine_destroy(f->e);
	pvm_queue_close(f->q);
	pvm_test_rmtree(f->dir); /* frees it */
	free(f);
	return 0;
}

#define INST "{\"uuid\": \"3f1c2b7e-9a4d-4c1e-8b2a-6d5e4f3a2b1c\", \"name\": \"i-1\"}"

/* Prepares params of type; returns the field refused ("" when accepted). */
static const char *prep(struct fixture *f, const char *type, const char *params_json)
{
	static char field[128];
	char msg[512] = "";
	json_t *p = json_loads(params_json, 0, NULL);
	assert_non_null(p);
	json_t *clean = NULL, *secrets = NULL;
	uint32_t version = 0;
	int64_t deadline = 0;
	field[0] = '\0';
	int rc = pvm_engine_prepare(f->e, type, p, &clean, &secrets, &version, &deadline, field,
	                            sizeof(field), msg, sizeof(msg));
	json_decref(p);
	json_decref(clean);
	json_decref(secrets);
	if (rc == 0) {
		assert_int_equal(version, 1);
		assert_true(deadline > 0);
		return "";
	}
	assert_int_equal(rc, PVM_EINVAL);
	assert_true(msg[0] != '\0');
	return field;
}

static void test_validation(void **state)
{
	struct fixture *f = *state;
	assert_string_equal(prep(f, "power_off",
	                         "{\"instance\": " INST ", \"timeout\": 60, "
	                         "\"retry_interval\": 10}"),
	                    "");
	assert_string_equal(prep(f, "power_off", "{\"instance\": " INST ", \"timeout\": 0.5}"), "");
	assert_string_equal(prep(f, "power_off", "{\"instance\": " INST "}"), "");
	assert_string_equal(prep(f, "power_off", "{}"), "params.instance");
	assert_string_equal(prep(f, "power_off", "{\"instance\": {\"name\": \"x\"}}"),
	                    "params.instance.uuid");
	assert_string_equal(prep(f, "power_off", "{\"instance\": {\"uuid\": \"nope\"}}"),
	                    "params.instance.uuid");
	assert_string_equal(prep(f, "power_off", "{\"instance\": " INST ", \"timeout\": -1}"),
	                    "params.timeout");
	assert_string_equal(prep(f, "power_off", "{\"instance\": " INST ", \"timeout\": \"60\"}"),
	                    "params.timeout");
	assert_string_equal(
	        prep(f, "power_off", "{\"instance\": " INST ", \"retry_interval\": 1e9}"),
	        "params.retry_interval");
	assert_string_equal(prep(f, "power_off", "{\"instance\": " INST ", \"force\": true}"),
	                    "params.force");
	assert_string_equal(prep(f, "power_on", "{\"instance\": " INST "}"), "");
	assert_string_equal(prep(f, "power_on", "{\"instance\": 5}"), "params.instance");
	assert_string_equal(
	        prep(f, "power_on",
	             "{\"instance\": {\"uuid\": \"3f1c2b7e-9a4d-4c1e-8b2a-6d5e4f3a2b1c\", "
	             "\"name\": 7}}"),
	        "params.instance.name");
	/* other instance fields nova passes are accepted */
	assert_string_equal(
	        prep(f, "power_on",
	             "{\"instance\": {\"uuid\": \"3f1c2b7e-9a4d-4c1e-8b2a-6d5e4f3a2b1c\", "
	             "\"vm_state\": \"active\", \"task_state\": null, \"power_state\": 1}}"),
	        "");
	assert_string_equal(
	        prep(f, "reboot", "{\"instance\": " INST ", \"reboot_type\": \"SOFT\"}"), "");
	assert_string_equal(prep(f, "reboot",
	                         "{\"instance\": " INST ", \"reboot_type\": \"HARD\", "
	                         "\"timeout\": 30}"),
	                    "");
	assert_string_equal(prep(f, "reboot", "{\"instance\": " INST "}"), "params.reboot_type");
	assert_string_equal(
	        prep(f, "reboot", "{\"instance\": " INST ", \"reboot_type\": \"soft\"}"),
	        "params.reboot_type");
	assert_string_equal(prep(f, "resume_state_on_host_boot",
	                         "{\"instance\": " INST ", \"power_state_before\": 1}"),
	                    "");
	assert_string_equal(
	        prep(f, "resume_state_on_host_boot",
	             "{\"instance\": {\"uuid\": \"3f1c2b7e-9a4d-4c1e-8b2a-6d5e4f3a2b1c\", "
	             "\"power_state\": 4}}"),
	        "");
	assert_string_equal(prep(f, "resume_state_on_host_boot", "{\"instance\": " INST "}"),
	                    "params.power_state_before");
	assert_string_equal(prep(f, "resume_state_on_host_boot",
	                         "{\"instance\": " INST ", \"power_state_before\": 9}"),
	                    "params.power_state_before");
	assert_string_equal(
	        prep(f, "resume_state_on_host_boot",
	             "{\"instance\": {\"uuid\": \"3f1c2b7e-9a4d-4c1e-8b2a-6d5e4f3a2b1c\", "
	             "\"power_state\": \"on\"}, \"power_state_before\": 1}"),
	        "params.instance.power_state");
	/* the four types are production types: known without powervm_enable_test_ops */
	const char *types[] = {"power_off", "power_on", "reboot", "resume_state_on_host_boot"};
	for (int i = 0; i < 4; i++) {
		const struct pvm_op_type *t = pvm_engine_type(f->e, types[i]);
		assert_non_null(t);
		assert_false(t->test_only);
		assert_true(t->requires_instance);
		for (size_t s = 0; s < t->nsteps; s++)
			assert_non_null(t->steps[s].reconcile);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_power_state_mapping),
	        cmocka_unit_test(test_rebooting_set),
	        cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
