/* test_vif.c: the pure parts of workers/vif.c and op_interfaces.c: MAC normalisation, the
 * validation of a VIF and of network_info (the field named in every refusal), and the
 * params validation of attach_interface, detach_interface, plug_vifs and unplug_vifs
 * through pvm_engine_prepare. The steps themselves run against pvmsim in
 * tests/func/ops_vifs.py. */
#include "ops.h"
#include "pvm/engine.h"
#include "pvm/error.h"
#include "pvm/queue.h"
#include "testutil.h"
#include "vif.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_vif_mac_normalize(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out; /* out NULL: refused */
	} cases[] = {
	        {"fa:16:3e:00:00:01", "FA163E000001"},
	        {"FA:16:3E:AB:cd:Ef", "FA163EABCDEF"},
	        {"fa-16-3e-00-00-01", "FA163E000001"},
	        {"fa163e0000ff", "FA163E0000FF"},
	        {"FA163E0000FF", "FA163E0000FF"},
	        {"fa:16:3e-00:00:01", NULL}, /* mixed separators */
	        {"fa:16:3e:00:00:0", NULL},
	        {"fa:16:3e:00:00:001", NULL},
	        {"fa:16:3e:00:00:0g", NULL},
	        {"fa.16.3e.00.00.01", NULL},
	        {"fa163e00000", NULL},
	        {"fa163e0000011", NULL},
	        {"fa163e00000g", NULL},
	        {"fa1:6:3e:00:00:01", NULL},
	        {"", NULL},
	        {" fa163e000001", NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[13] = "junk";
		int rc = pvm_vif_mac_normalize(cases[i].in, out);
		if (cases[i].out) {
			if (rc != 0)
				fail_msg("'%s' refused", cases[i].in);
			assert_string_equal(out, cases[i].out);
		} else {
			if (rc != PVM_EINVAL)
				fail_msg("'%s' accepted as %s", cases[i].in, out);
			assert_string_equal(out, "");
		}
	}
	char out[13];
	assert_int_equal(pvm_vif_mac_normalize(NULL, out), PVM_EINVAL);
}

/* Validates one VIF (JSON text) under "params.vif"; returns the field refused ("" when
 * accepted). */
static const char *one(const char *text)
{
	static char field[160];
	char msg[256] = "";
	json_error_t je;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
	if (!v)
		fail_msg("bad test JSON %s: %s", text, je.text);
	field[0] = '\0';
	int rc = pvm_vif_validate_one(v, "params.vif", field, sizeof(field), msg, sizeof(msg));
	json_decref(v);
	if (rc == 0)
		return "";
	assert_int_equal(rc, PVM_EINVAL);
	assert_true(msg[0] != '\0');
	return field;
}

static const char *list(const char *text)
{
	static char field[160];
	char msg[256] = "";
	json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
	if (!v)
		fail_msg("bad test JSON %s", text);
	field[0] = '\0';
	int rc = pvm_vif_validate_list(v, "params.network_info", field, sizeof(field), msg,
	                               sizeof(msg));
	json_decref(v);
	if (rc == 0)
		return "";
	assert_int_equal(rc, PVM_EINVAL);
	assert_true(msg[0] != '\0');
	return field;
}

#define MAC1 "\"address\": \"fa:16:3e:00:00:01\""
#define MAC2 "\"address\": \"fa:16:3e:00:00:02\""
#define SEA  "\"type\": \"pvm_sea\""

static void test_vif_validate_one(void **state)
{
	(void)state;
	/* accepted */
	assert_string_equal(one("{" MAC1 ", " SEA ", \"details\": {\"vlan\": 100}}"), "");
	assert_string_equal(one("{" MAC1 ", " SEA ", \"details\": {\"vlan\": \"4094\"}}"), "");
	assert_string_equal(one("{" MAC1 ", " SEA ", \"id\": \"port-1\", \"details\": {\"vlan\": "
	                        "1, \"vswitch\": \"ETHERNET1\"}, \"devname\": \"tap1\"}"),
	                    "");
	assert_string_equal(
	        one("{" MAC1 ", " SEA ", \"network\": {\"id\": \"n\", \"meta\": {\"vlan\": 7}}}"),
	        "");
	assert_string_equal(one("{\"address\": \"FA163E000001\", " SEA ", \"details\": {\"vlan\": "
	                        "7, \"vswitch\": null}, \"id\": null}"),
	                    "");
	/* refused, naming the field */
	assert_string_equal(one("[]"), "params.vif");
	assert_string_equal(one("null"), "params.vif");
	assert_string_equal(one("{" SEA ", \"details\": {\"vlan\": 1}}"), "params.vif.address");
	assert_string_equal(one("{\"address\": 5, " SEA ", \"details\": {\"vlan\": 1}}"),
	                    "params.vif.address");
	assert_string_equal(
	        one("{\"address\": \"fa:16:3e:00:00\", " SEA ", \"details\": {\"vlan\": 1}}"),
	        "params.vif.address");
	/* multicast and zero addresses */
	assert_string_equal(
	        one("{\"address\": \"01:00:5e:00:00:01\", " SEA ", \"details\": {\"vlan\": 1}}"),
	        "params.vif.address");
	assert_string_equal(
	        one("{\"address\": \"00:00:00:00:00:00\", " SEA ", \"details\": {\"vlan\": 1}}"),
	        "params.vif.address");
	assert_string_equal(one("{" MAC1 ", \"details\": {\"vlan\": 1}}"), "params.vif.type");
	assert_string_equal(one("{" MAC1 ", \"type\": \"ovs\", \"details\": {\"vlan\": 1}}"),
	                    "params.vif.type");
	assert_string_equal(one("{" MAC1 ", \"type\": \"pvm_sriov\", \"details\": {\"vlan\": 1}}"),
	                    "params.vif.type");
	assert_string_equal(one("{" MAC1 ", \"type\": \"bridge\", \"details\": {\"vlan\": 1}}"),
	                    "params.vif.type");
	assert_string_equal(one("{" MAC1 ", " SEA ", \"id\": 5, \"details\": {\"vlan\": 1}}"),
	                    "params.vif.id");
	assert_string_equal(one("{" MAC1 ", " SEA ", \"details\": [1]}"), "params.vif.details");
	assert_string_equal(one("{" MAC1 ", " SEA "}"), "params.vif.details.vlan");
	assert_string_equal(one("{" MAC1 ", " SEA ", \"details\": {}}"), "params.vif.details.vlan");
	assert_string_equal(one("{" MAC1 ", " SEA ", \"details\": {\"vlan\": 0}}"),
	                    "params.vif.details.vlan");
	assert_string_equal(one("{" MAC1 ", " SEA ", \"details\": {\"vlan\": 4095}}"),
	                    "params.vif.details.vlan");
	assert_string_equal(one("{" MAC1 ", " SEA ", \"details\": {\"vlan\": \"12a\"}}"),
	                    "params.vif.details.vlan");
	assert_string_equal(one("{" MAC1 ", " SEA ", \"details\": {\"vlan\": 1.5}}"),
	                    "params.vif.details.vlan");
	assert_string_equal(
	        one("{" MAC1 ", " SEA ", \"details\": {\"vlan\": 1, \"vswitch\": \"\"}}"),
	        "params.vif.details.vswitch");
	assert_string_equal(one("{" MAC1 ", " SEA ", \"details\": {\"vlan\": 1, \"vswitch\": 3}}"),
	                    "params.vif.details.vswitch");
	assert_string_equal(one("{" MAC1 ", " SEA ", \"network\": 3, \"details\": {\"vlan\": 1}}"),
	                    "params.vif.network");
	assert_string_equal(one("{" MAC1 ", " SEA ", \"network\": {\"meta\": 3}}"),
	                    "params.vif.network.meta");
	assert_string_equal(one("{" MAC1 ", " SEA ", \"network\": {\"meta\": {\"vlan\": -2}}}"),
	                    "params.vif.network.meta.vlan");
	assert_string_equal(one("{" MAC1 ", " SEA ", \"network\": {\"meta\": {}}}"),
	                    "params.vif.details.vlan");
}

static void test_vif_validate_list(void **state)
{
	(void)state;
	assert_string_equal(list("[]"), "");
	assert_string_equal(list("null"), "");
	assert_string_equal(list("[{" MAC1 ", " SEA ", \"details\": {\"vlan\": 1}}, {" MAC2 ", " SEA
	                         ", \"details\": {\"vlan\": 2}}]"),
	                    "");
	assert_string_equal(list("{}"), "params.network_info");
	assert_string_equal(list("[{" MAC1 ", " SEA ", \"details\": {\"vlan\": 1}}, {" MAC2
	                         ", \"type\": \"ovs\", \"details\": {\"vlan\": 2}}]"),
	                    "params.network_info[1].type");
	assert_string_equal(list("[{" MAC1 ", " SEA ", \"details\": {\"vlan\": 1}}, 7]"),
	                    "params.network_info[1]");
	/* the same MAC twice, in another spelling */
	assert_string_equal(
	        list("[{" MAC1 ", " SEA ", \"details\": {\"vlan\": 1}}, {" MAC2 ", " SEA
	             ", \"details\": {\"vlan\": 2}}, {\"address\": \"FA-16-3E-00-00-01\", " SEA
	             ", \"details\": {\"vlan\": 3}}]"),
	        "params.network_info[2].address");
	/* at most PVM_VIF_MAX */
	char big[16384] = "[";
	for (int i = 0; i <= PVM_VIF_MAX; i++) {
		char one_vif[128];
		snprintf(one_vif, sizeof(one_vif),
		         "%s{\"address\": \"fa:16:3e:00:01:%02x\", " SEA
		         ", \"details\": {\"vlan\": 1}}",
		         i ? ", " : "", i);
		strcat(big, one_vif);
	}
	strcat(big, "]");
	assert_string_equal(list(big), "params.network_info");
	assert_int_equal(strcmp(pvm_vif_types[0], "pvm_sea"), 0);
	assert_null(pvm_vif_types[1]);
}

struct fixture {
	char *dir;
	struct pvm_queue *q;
	struct pvm_engine *e;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->dir = pvm_test_tmpdir("vif");
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
#define VIF1 "{" MAC1 ", " SEA ", \"id\": \"p1\", \"details\": {\"vlan\": 100}}"
#define VIF2 "{" MAC2 ", " SEA ", \"id\": \"p2\", \"details\": {\"vlan\": 200}}"

static const char *prep(struct fixture *f, const char *type, const char *params_json)
{
	static char field[160];
	char msg[512] = "";
	json_t *p = json_loads(params_json, 0, NULL);
	if (!p)
		fail_msg("bad test JSON %s", params_json);
	json_t *clean = NULL, *secrets = NULL;
	uint32_t version = 0;
	int64_t deadline = 0;
	field[0] = '\0';
	int rc = pvm_engine_prepare(f->e, type, p, &clean, &secrets, &version, &deadline, field,
	                            sizeof(field), msg, sizeof(msg));
	json_decref(p);
	json_decref(clean);
	json_decref(secrets);
	if (rc == 0)
		return "";
	assert_int_equal(rc, PVM_EINVAL);
	assert_true(msg[0] != '\0');
	return field;
}

static void test_vif_op_validation(void **state)
{
	struct fixture *f = *state;
	const char *one_types[] = {"attach_interface", "detach_interface"};
	for (int i = 0; i < 2; i++) {
		const char *t = one_types[i];
		assert_string_equal(prep(f, t, "{\"instance\": " INST ", \"vif\": " VIF1 "}"), "");
		assert_string_equal(prep(f, t, "{\"vif\": " VIF1 "}"), "params.instance");
		assert_string_equal(prep(f, t, "{\"instance\": " INST "}"), "params.vif");
		assert_string_equal(prep(f, t,
		                         "{\"instance\": " INST ", \"vif\": " VIF1
		                         ", \"network_info\": []}"),
		                    "params.network_info");
		assert_string_equal(prep(f, t,
		                         "{\"instance\": " INST
		                         ", \"vif\": {\"address\": \"x\", " SEA "}}"),
		                    "params.vif.address");
	}
	const char *list_types[] = {"plug_vifs", "unplug_vifs"};
	for (int i = 0; i < 2; i++) {
		const char *t = list_types[i];
		assert_string_equal(prep(f, t,
		                         "{\"instance\": " INST ", \"network_info\": [" VIF1
		                         ", " VIF2 "]}"),
		                    "");
		assert_string_equal(prep(f, t, "{\"instance\": " INST ", \"network_info\": []}"),
		                    "");
		assert_string_equal(prep(f, t, "{\"instance\": " INST "}"), "params.network_info");
		assert_string_equal(prep(f, t, "{\"instance\": " INST ", \"network_info\": {}}"),
		                    "params.network_info");
		assert_string_equal(prep(f, t,
		                         "{\"instance\": " INST ", \"network_info\": [" VIF1
		                         ", {" MAC2 ", " SEA "}]}"),
		                    "params.network_info[1].details.vlan");
		assert_string_equal(prep(f, t,
		                         "{\"instance\": " INST ", \"network_info\": [" VIF1
		                         ", " VIF1 "]}"),
		                    "params.network_info[1].address");
		assert_string_equal(
		        prep(f, t, "{\"instance\": " INST ", \"network_info\": [], \"vif\": {}}"),
		        "params.vif");
	}
	/* production types, every step with a reconcile where it creates something */
	const char *types[] = {"attach_interface", "detach_interface", "plug_vifs", "unplug_vifs"};
	for (int i = 0; i < 4; i++) {
		const struct pvm_op_type *t = pvm_engine_type(f->e, types[i]);
		assert_non_null(t);
		assert_false(t->test_only);
		assert_true(t->requires_instance);
		assert_int_equal(t->nsteps, 1);
	}
	assert_non_null(pvm_engine_type(f->e, "attach_interface")->steps[0].undo);
	assert_non_null(pvm_engine_type(f->e, "plug_vifs")->steps[0].reconcile);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_vif_mac_normalize),
	        cmocka_unit_test(test_vif_validate_one),
	        cmocka_unit_test(test_vif_validate_list),
	        cmocka_unit_test_setup_teardown(test_vif_op_validation, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
