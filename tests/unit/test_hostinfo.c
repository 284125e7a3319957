/* test_hostinfo.c: the host sampler's CPU statistics (src/daemon/hostinfo.c) from the
 * captured phyp long-term-monitor sample, and refusals of samples without the counters.
 * The sampler itself runs against pvmsim in tests/func/daemon_host.py. */
#include "hostinfo.h"

#include "pvm/error.h"
#include "pvm/util.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_hostinfo_captured_sample(void **state)
{
	(void)state;
	char *path = pvm_test_source_path("tests/fixtures/powervm/phyp_pcm_data.body.json");
	char *data = NULL;
	size_t len = 0;
	assert_int_equal(pvm_read_file(path, 1 << 20, &data, &len), 0);
	free(path);
	json_t *st = NULL;
	double up = 0;
	char why[256];
	int rc = pvm_hostinfo_cpu_stats(data, len, &st, &up, why, sizeof(why));
	if (rc)
		fail_msg("%s", why);
	/* The capture: 512e6 cycles/s, 20 configurable units, timeBasedCycles 8.06297e14,
	 * firmware 58599310268 cycles, partitions and VIOSes 819913508028 utilized cycles
	 * (capped + uncapped summed by hand): x 1e9 / 512e6 ns each. */
	assert_int_equal(json_integer_value(json_object_get(st, "frequency")), 512);
	assert_int_equal(json_integer_value(json_object_get(st, "kernel")) / 1000000, 114451);
	assert_int_equal(json_integer_value(json_object_get(st, "user")) / 1000000, 1601393);
	assert_int_equal(json_integer_value(json_object_get(st, "idle")) / 1000000000, 31494270);
	assert_int_equal(json_integer_value(json_object_get(st, "iowait")), 0);
	assert_string_equal(json_string_value(json_object_get(st, "sample_time")),
	                    "2015-05-27T08:17:45+0000");
	assert_int_equal((long)up, 1574799);
	json_decref(st);
	free(data);
}

static void test_hostinfo_bad_samples(void **state)
{
	(void)state;
	json_t *st = NULL;
	double up = 0;
	char why[256];
	const char *cases[] = {
	        "not json",
	        "{}",
	        "{\"systemUtil\": {\"utilSample\": {\"timeBasedCycles\": 10}}}",
	        "{\"systemUtil\": {\"utilSample\": {\"timeBasedCycles\": 10, \"processor\": "
	        "{\"procCyclesPerSecond\": 0, \"configurableProcUnits\": 2}}}}",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		why[0] = 0;
		assert_int_equal(pvm_hostinfo_cpu_stats(cases[i], strlen(cases[i]), &st, &up, why,
		                                        sizeof(why)),
		                 PVM_ECORRUPT);
		assert_true(why[0] != 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_hostinfo_captured_sample),
	        cmocka_unit_test(test_hostinfo_bad_samples),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
