/* test_metrics.c: the metrics registry (pvm/metrics.h) and the event log (pvm/eventlog.h)
 * of pvm_common, against their headers. */
#include "testutil.h"

#include "pvm/error.h"
#include "pvm/eventlog.h"
#include "pvm/log.h"
#include "pvm/metrics.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_metrics_render(void **state)
{
	(void)state;
	struct pvm_metrics *m;
	assert_int_equal(pvm_metrics_create(&m), 0);
	assert_int_equal(pvm_metrics_describe(m, "ops_total", PVM_METRIC_COUNTER, "Ops.\nDone."),
	                 0);
	assert_int_equal(pvm_metrics_describe(m, "ops_total", PVM_METRIC_GAUGE, "x"), PVM_EEXIST);
	assert_int_equal(pvm_metrics_describe(m, "9bad", PVM_METRIC_GAUGE, "x"), PVM_EINVAL);
	pvm_metrics_inc(m, "ops_total", "type=\"spawn\",outcome=\"succeeded\"", 1);
	pvm_metrics_inc(m, "ops_total", "type=\"spawn\",outcome=\"succeeded\"", 2);
	pvm_metrics_inc(m, "ops_total", "type=\"spawn\",outcome=\"succeeded\"", -5); /* ignored */
	pvm_metrics_set(m, "ops_total", NULL, 3); /* wrong kind: ignored */
	pvm_metrics_set(m, "depth", "state=\"queued\"", 7);
	pvm_metrics_add(m, "depth", "state=\"queued\"", -2);
	pvm_metrics_observe(m, "lat_seconds", NULL, 0.003);
	pvm_metrics_observe(m, "lat_seconds", NULL, 0.7);
	pvm_metrics_observe(m, "lat_seconds", NULL, 1000);
	assert_true(pvm_metrics_value(m, "ops_total", "type=\"spawn\",outcome=\"succeeded\"") == 3);
	assert_true(pvm_metrics_value(m, "depth", "state=\"queued\"") == 5);
	assert_true(pvm_metrics_value(m, "lat_seconds", NULL) == 3);
	assert_true(pvm_metrics_value(m, "nothing", NULL) == 0);
	char *text = pvm_metrics_render(m);
	assert_non_null(text);
	assert_non_null(strstr(text, "# HELP ops_total Ops. Done.\n# TYPE ops_total counter\n"
	                             "ops_total{type=\"spawn\",outcome=\"succeeded\"} 3\n"));
	assert_non_null(strstr(text, "# TYPE depth gauge\ndepth{state=\"queued\"} 5\n"));
	assert_non_null(strstr(text, "lat_seconds_bucket{le=\"0.005\"} 1\n"));
	assert_non_null(strstr(text, "lat_seconds_bucket{le=\"1\"} 2\n"));
	assert_non_null(strstr(text, "lat_seconds_bucket{le=\"600\"} 2\n"));
	assert_non_null(strstr(text, "lat_seconds_bucket{le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(text, "lat_seconds_count 3\n"));
	assert_non_null(strstr(text, "lat_seconds_sum 1000.703\n"));
	free(text);
	pvm_metrics_destroy(m);
}

static void collect(struct pvm_metrics *m, void *arg)
{
	int *calls = arg;
	(*calls)++;
	pvm_metrics_set(m, "collected", NULL, *calls);
}

static void test_metrics_collector_escape(void **state)
{
	(void)state;
	struct pvm_metrics *m;
	assert_int_equal(pvm_metrics_create(&m), 0);
	int calls = 0;
	assert_int_equal(pvm_metrics_add_collector(m, collect, &calls), 0);
	char *t1 = pvm_metrics_render(m), *t2 = pvm_metrics_render(m);
	assert_non_null(strstr(t1, "collected 1\n"));
	assert_non_null(strstr(t2, "collected 2\n"));
	free(t1);
	free(t2);
	pvm_metrics_remove_collector(m, collect, &calls);
	free(pvm_metrics_render(m));
	assert_int_equal(calls, 2);
	char esc[32];
	assert_string_equal(pvm_metrics_escape(esc, sizeof(esc), "a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
	assert_string_equal(pvm_metrics_escape(esc, 4, "abcdef"), "abc");
	pvm_metrics_destroy(m);
}

struct hammer {
	struct pvm_metrics *m;
	int n;
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	for (int i = 0; i < h->n; i++) {
		pvm_metrics_inc(h->m, "c_total", "k=\"v\"", 1);
		pvm_metrics_observe(h->m, "h_seconds", NULL, 0.01);
		if (i % 100 == 0)
			free(pvm_metrics_render(h->m));
	}
	return NULL;
}

static void test_metrics_threads(void **state)
{
	(void)state;
	struct hammer h = {.n = 2000};
	assert_int_equal(pvm_metrics_create(&h.m), 0);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_true(pvm_metrics_value(h.m, "c_total", "k=\"v\"") == 8000);
	assert_true(pvm_metrics_value(h.m, "h_seconds", NULL) == 8000);
	pvm_metrics_destroy(h.m);
}

static void on_pub(void *arg, uint64_t seq)
{
	uint64_t *last = arg;
	*last = seq;
}

static void test_eventlog_ring(void **state)
{
	(void)state;
	struct pvm_eventlog *log;
	assert_int_equal(pvm_eventlog_create(4, &log), 0);
	uint64_t notified = 0, seq = 0;
	int h = 0;
	assert_int_equal(pvm_eventlog_subscribe(log, on_pub, &notified, &h), 0);
	assert_int_equal(pvm_eventlog_publish(log, json_integer(1), NULL), PVM_EINVAL);
	assert_false(pvm_eventlog_ready(log, 0));
	json_t *arr;
	uint64_t last;
	bool missed;
	assert_int_equal(pvm_eventlog_read(log, 0, 0, &arr, &last, &missed), 0);
	assert_int_equal(json_array_size(arr), 0);
	assert_int_equal(last, 0);
	assert_false(missed);
	json_decref(arr);
	for (int i = 1; i <= 6; i++)
		assert_int_equal(pvm_eventlog_publish(log, json_pack("{s:i}", "n", i), &seq), 0);
	assert_int_equal(seq, 6);
	assert_int_equal(notified, 6);
	assert_int_equal(pvm_eventlog_last(log), 6);
	/* after=3: 4, 5, 6 are kept */
	assert_int_equal(pvm_eventlog_read(log, 3, 0, &arr, &last, &missed), 0);
	assert_int_equal(json_array_size(arr), 3);
	assert_false(missed);
	assert_int_equal(last, 6);
	json_decref(arr);
	/* after=1: 2 was dropped */
	assert_int_equal(pvm_eventlog_read(log, 1, 2, &arr, &last, &missed), 0);
	assert_true(missed);
	assert_int_equal(json_array_size(arr), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 0), "seq")), 3);
	assert_int_equal(last, 4);
	json_decref(arr);
	/* after beyond the newest: missed */
	assert_true(pvm_eventlog_ready(log, 10));
	assert_int_equal(pvm_eventlog_read(log, 10, 0, &arr, &last, &missed), 0);
	assert_true(missed);
	json_decref(arr);
	assert_int_equal(pvm_eventlog_wait(log, 6, 10), 6);
	pvm_eventlog_unsubscribe(log, h);
	pvm_eventlog_publish(log, json_object(), NULL);
	assert_int_equal(notified, 6);
	pvm_eventlog_destroy(log);
}

int main(void)
{
	pvm_log_setup("test_metrics", PVM_LOG_STDERR, PVM_LOG_ERROR);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_metrics_render),
	        cmocka_unit_test(test_metrics_collector_escape),
	        cmocka_unit_test(test_metrics_threads),
	        cmocka_unit_test(test_eventlog_ring),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
