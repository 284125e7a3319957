/* test_ops_spawn.c: the pure parts of spawn and destroy (workers/op_spawn.c,
 * op_destroy.c): the params validation (the field named in every refusal, nova-powervm's
 * extra specs and their consistency), and the request bodies they need that the client
 * builds (partition create with compatibility mode and SRR, media removal from a volume
 * group). The operations themselves run against pvmsim in tests/func/ops_spawn.py. */
#include "ops.h"
#include "pvm/error.h"
#include "pvm/pvm_objects.h"
#include "pvm/util.h"
#include "testutil.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define UUID "3f1c2b7e-9a4d-4c1e-8b2a-6d5e4f3a2b1c"

/* A valid spawn's params with extra specs es (JSON object text) merged into the flavor and
 * the top-level members of over (JSON object text) replacing the defaults. */
static json_t *spawn_params(const char *es, const char *over)
{
	json_t *p = json_pack("{s:{s:s, s:s}, s:{s:s, s:i, s:i, s:i, s:{}}, s:{s:s, s:s}, s:[], "
	                      "s:n, s:b}",
	                      "instance", "uuid", UUID, "name", "instance-00000001", "flavor",
	                      "name", "m1", "memory_mb", 512, "vcpus", 2, "root_gb", 1,
	                      "extra_specs", "image_meta", "id", "img-1", "disk_format", "raw",
	                      "network_info", "block_device_info", "config_drive", 0);
	assert_non_null(p);
	if (es) {
		json_t *e = json_loads(es, 0, NULL);
		assert_non_null(e);
		json_object_update(json_object_get(json_object_get(p, "flavor"), "extra_specs"), e);
		json_decref(e);
	}
	if (over) {
		json_t *o = json_loads(over, 0, NULL);
		assert_non_null(o);
		json_object_update(p, o);
		json_decref(o);
	}
	return p;
}

static int check(const struct pvm_op_type *t, json_t *p, char *field)
{
	char msg[512] = "";
	field[0] = 0;
	int rc = t->validate(p, field, 128, msg, sizeof(msg));
	if (rc)
		assert_true(msg[0] != 0);
	json_decref(p);
	return rc;
}

static void test_ops_spawn_valid(void **state)
{
	(void)state;
	char field[128];
	assert_int_equal(check(&pvm_op_spawn, spawn_params(NULL, NULL), field), 0);
	const char *ok[] = {
	        "{\"powervm:min_mem\": \"256\", \"powervm:max_mem\": \"4096\"}",
	        "{\"powervm:min_vcpu\": \"1\", \"powervm:max_vcpu\": \"8\", "
	        "\"powervm:proc_units\": \"0.4\", \"powervm:min_proc_units\": \"0.1\", "
	        "\"powervm:max_proc_units\": \"4\"}",
	        "{\"powervm:dedicated_proc\": \"true\"}",
	        "{\"powervm:uncapped\": \"false\"}",
	        "{\"powervm:uncapped\": \"yes\", \"powervm:shared_weight\": \"0\"}",
	        "{\"powervm:availability_priority\": 255, \"powervm:srr_capability\": false}",
	        "{\"powervm:processor_compatibility\": \"power9_base\"}",
	        "{\"hw:cpu_policy\": \"dedicated\", \"resources:VCPU\": \"2\"}",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int rc = check(&pvm_op_spawn, spawn_params(ok[i], NULL), field);
		if (rc)
			fail_msg("%s refused (%s)", ok[i], field);
	}
	assert_int_equal(check(&pvm_op_spawn,
	                       spawn_params(NULL, "{\"config_drive\": true, "
	                                          "\"network_plugged_timeout\": 300, "
	                                          "\"network_plugged_fatal\": true, "
	                                          "\"network_info\": [{\"id\": \"v\", \"address\": "
	                                          "\"fa:16:3e:00:00:01\", \"type\": \"pvm_sea\", "
	                                          "\"details\": {\"vlan\": 100}}]}"),
	                       field),
	                 0);
}

static void test_ops_spawn_refusals(void **state)
{
	(void)state;
	static const struct {
		const char *es, *over, *field;
	} cases[] = {
	        {NULL, "{\"flavor\": null}", "params.flavor"},
	        {NULL, "{\"flavor\": {\"memory_mb\": 512, \"vcpus\": 300}}", "params.flavor.vcpus"},
	        {NULL, "{\"flavor\": {\"memory_mb\": 0, \"vcpus\": 1}}", "params.flavor.memory_mb"},
	        {NULL, "{\"flavor\": {\"memory_mb\": 512, \"vcpus\": 1, \"root_gb\": -1}}",
	         "params.flavor.root_gb"},
	        {NULL, "{\"image_meta\": {}}", "params.image_meta.id"},
	        {NULL, "{\"image_meta\": {\"id\": \"a/b\"}}", "params.image_meta.id"},
	        {NULL, "{\"image_meta\": {\"id\": \"x\", \"disk_format\": \"qcow2\"}}",
	         "params.image_meta.disk_format"},
	        {NULL, "{\"image_meta\": {\"id\": \"x\", \"size\": -5}}", "params.image_meta.size"},
	        {NULL, "{\"network_info\": {}}", "params.network_info"},
	        {NULL, "{\"network_info\": [1]}", "params.network_info[0]"},
	        {NULL, "{\"block_device_info\": {\"block_device_mapping\": [{}]}}",
	         "params.block_device_info.block_device_mapping"},
	        {NULL, "{\"config_drive\": \"yes\"}", "params.config_drive"},
	        {NULL, "{\"network_plugged_timeout\": 99999}", "params.network_plugged_timeout"},
	        {NULL, "{\"network_plugged_fatal\": 1}", "params.network_plugged_fatal"},
	        {NULL, "{\"admin_pass\": \"x\"}", "params.admin_pass"},
	        {NULL, "{\"instance\": {\"uuid\": \"nope\"}}", "params.instance.uuid"},
	        {"{\"powervm:bogus\": \"1\"}", NULL, "params.flavor.extra_specs.powervm:bogus"},
	        {"{\"powervm:min_mem\": \"1024\"}", NULL,
	         "params.flavor.extra_specs.powervm:min_mem"},
	        {"{\"powervm:max_mem\": \"256\"}", NULL,
	         "params.flavor.extra_specs.powervm:max_mem"},
	        {"{\"powervm:max_mem\": \"lots\"}", NULL,
	         "params.flavor.extra_specs.powervm:max_mem"},
	        {"{\"powervm:min_vcpu\": \"3\"}", NULL,
	         "params.flavor.extra_specs.powervm:min_vcpu"},
	        {"{\"powervm:max_vcpu\": \"1\"}", NULL,
	         "params.flavor.extra_specs.powervm:max_vcpu"},
	        {"{\"powervm:max_vcpu\": \"999\"}", NULL,
	         "params.flavor.extra_specs.powervm:max_vcpu"},
	        {"{\"powervm:proc_units\": \"0.05\"}", NULL,
	         "params.flavor.extra_specs.powervm:proc_units"}, /* < 0.05 x 2 vCPUs */
	        {"{\"powervm:proc_units\": \"2.5\"}", NULL,
	         "params.flavor.extra_specs.powervm:proc_units"},
	        {"{\"powervm:proc_units\": \"0.555\"}", NULL,
	         "params.flavor.extra_specs.powervm:proc_units"},
	        {"{\"powervm:proc_units\": \"0.5\", \"powervm:min_proc_units\": \"0.6\"}", NULL,
	         "params.flavor.extra_specs.powervm:min_proc_units"},
	        {"{\"powervm:proc_units\": \"0.5\", \"powervm:max_proc_units\": \"0.4\"}", NULL,
	         "params.flavor.extra_specs.powervm:max_proc_units"},
	        {"{\"powervm:dedicated_proc\": \"2\"}", NULL,
	         "params.flavor.extra_specs.powervm:dedicated_proc"},
	        {"{\"powervm:dedicated_proc\": true, \"powervm:shared_weight\": \"5\"}", NULL,
	         "params.flavor.extra_specs.powervm:shared_weight"},
	        {"{\"powervm:dedicated_proc\": \"true\", \"powervm:uncapped\": \"true\"}", NULL,
	         "params.flavor.extra_specs.powervm:uncapped"},
	        {"{\"powervm:uncapped\": \"false\", \"powervm:shared_weight\": \"5\"}", NULL,
	         "params.flavor.extra_specs.powervm:shared_weight"},
	        {"{\"powervm:shared_weight\": \"256\"}", NULL,
	         "params.flavor.extra_specs.powervm:shared_weight"},
	        {"{\"powervm:availability_priority\": \"x\"}", NULL,
	         "params.flavor.extra_specs.powervm:availability_priority"},
	        {"{\"powervm:processor_compatibility\": \"POWER5\"}", NULL,
	         "params.flavor.extra_specs.powervm:processor_compatibility"},
	        {"{\"powervm:srr_capability\": [true]}", NULL,
	         "params.flavor.extra_specs.powervm:srr_capability"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char field[128];
		int rc = check(&pvm_op_spawn, spawn_params(cases[i].es, cases[i].over), field);
		if (rc != PVM_EINVAL || strcmp(field, cases[i].field) != 0)
			fail_msg("case %zu (%s %s): rc %d field '%s', want %s", i,
			         cases[i].es ? cases[i].es : "", cases[i].over ? cases[i].over : "",
			         rc, field, cases[i].field);
	}
}

static void test_ops_destroy_validation(void **state)
{
	(void)state;
	char field[128];
	assert_int_equal(check(&pvm_op_destroy,
	                       json_pack("{s:{s:s}, s:[], s:n, s:b}", "instance", "uuid", UUID,
	                                 "network_info", "block_device_info", "destroy_disks", 0),
	                       field),
	                 0);
	assert_int_equal(
	        check(&pvm_op_destroy,
	              json_pack("{s:{s:s}, s:s}", "instance", "uuid", UUID, "destroy_disks", "no"),
	              field),
	        PVM_EINVAL);
	assert_string_equal(field, "params.destroy_disks");
	assert_int_equal(check(&pvm_op_destroy, json_pack("{s:b}", "destroy_disks", 1), field),
	                 PVM_EINVAL);
	assert_string_equal(field, "params.instance");
	assert_int_equal(check(&pvm_op_destroy,
	                       json_pack("{s:{s:s}, s:i}", "instance", "uuid", UUID, "force", 1),
	                       field),
	                 PVM_EINVAL);
	assert_string_equal(field, "params.force");
	assert_true(pvm_op_spawn.requires_instance && pvm_op_destroy.requires_instance);
	assert_false(pvm_op_spawn.test_only || pvm_op_destroy.test_only);
}

static void test_ops_spawn_builders(void **state)
{
	(void)state;
	struct pvm_rest_error err = {0};
	struct pvm_lpar_spec s = {.uuid = "3F1C2B7E-9A4D-4C1E-8B2A-6D5E4F3A2B1C",
	                          .name = "instance-1",
	                          .memory_mb = 512,
	                          .vcpus = 1,
	                          .compat_mode = "POWER8",
	                          .srr = 1,
	                          .availability_priority = -1};
	char *b = pvm_build_lpar_create(&s, &err);
	assert_non_null(b);
	assert_non_null(strstr(b, "<PendingProcessorCompatibilityMode>POWER8<"));
	assert_non_null(strstr(b, "<SimplifiedRemoteRestartCapable>true<"));
	assert_non_null(strstr(b, "<AvailabilityPriority>0<"));
	/* schema order: PartitionType before the two */
	assert_true(strstr(b, "<PartitionType>") < strstr(b, "<PendingProcessor"));
	free(b);
	s.compat_mode = NULL;
	s.srr = 0;
	s.availability_priority = 0;
	b = pvm_build_lpar_create(&s, &err);
	assert_null(strstr(b, "PendingProcessorCompatibilityMode"));
	assert_null(strstr(b, "SimplifiedRemoteRestartCapable"));
	assert_non_null(strstr(b, "<AvailabilityPriority>127<"));
	free(b);

	char *path = pvm_test_source_path("tests/fixtures/powervm/get_volume_group.xml");
	char *xml = NULL;
	size_t len = 0;
	assert_int_equal(pvm_read_file(path, 1 << 24, &xml, &len), 0);
	free(path);
	const char *name = "vopt_1cdb7958692945c58da79d761f7e8f6a";
	b = pvm_build_vg_remove_media(xml, len, name, &err);
	assert_non_null(b);
	assert_null(strstr(b, name));
	assert_non_null(strstr(b, "vopt_089ee7c70e47480892bc20148a45d955"));
	struct pvm_volume_group_list *before = NULL, *after = NULL;
	assert_int_equal(pvm_parse_volume_group(xml, len, NULL, &before, &err), 0);
	assert_int_equal(pvm_parse_volume_group(b, strlen(b), NULL, &after, &err), 0);
	assert_int_equal(after->items[0].n_media + 1, before->items[0].n_media);
	assert_int_equal(after->items[0].n_vdisks, before->items[0].n_vdisks);
	pvm_volume_group_list_free(before);
	pvm_volume_group_list_free(after);
	free(b);
	memset(&err, 0, sizeof(err));
	assert_null(pvm_build_vg_remove_media(xml, len, "cfg_nothere.iso", &err));
	assert_int_equal(err.code, PVM_ENOTFOUND);
	free(xml);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_ops_spawn_valid),
	        cmocka_unit_test(test_ops_spawn_refusals),
	        cmocka_unit_test(test_ops_destroy_validation),
	        cmocka_unit_test(test_ops_spawn_builders),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
