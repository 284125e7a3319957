/* test_config.c: the configuration module (src/config/config.c, pvm/config.h).
 *
 * Each case writes its files into a fresh temporary directory and loads them with
 * pvm_config_load(); problems are checked by file, line and key, and secrets are checked
 * never to appear in a problem. The last cases check that conf/powervmd.conf.sample and
 * docs/configuration.md cover every key of the table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"

#include "pvm/config.h"
#include "pvm/error.h"
#include "pvm/util.h"

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ENDPOINT "powervm_endpoint = \"https://hmc.example.com:12443\";\n"

struct fx {
	char *dir;
	struct pvm_config *cfg;
	struct pvm_config_problems problems;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->dir = pvm_test_tmpdir("config");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	pvm_config_free(f->cfg);
	pvm_config_problems_free(&f->problems);
	pvm_test_rmtree(f->dir);
	free(f);
	return 0;
}

/* Writes text to dir/name with mode; returns the heap path. */
static char *write_file_mode(struct fx *f, const char *name, const char *text, mode_t mode)
{
	char *path = NULL;
	assert_true(asprintf(&path, "%s/%s", f->dir, name) > 0);
	char *slash = strrchr(path, '/');
	if (slash > path + strlen(f->dir)) { /* a subdirectory */
		*slash = '\0';
		mkdir(path, 0755);
		*slash = '/';
	}
	unlink(path); /* an earlier read-only version cannot be rewritten by a non-root user */
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static char *write_file(struct fx *f, const char *name, const char *text)
{
	return write_file_mode(f, name, text, 0644);
}

static char *path_in(struct fx *f, const char *name)
{
	char *path = NULL;
	assert_true(asprintf(&path, "%s/%s", f->dir, name) > 0);
	return path;
}

/* Writes powervmd.conf with text and loads it into f. Returns pvm_config_load's code. */
static int load_text(struct fx *f, const char *text)
{
	char *path = write_file(f, "powervmd.conf", text);
	pvm_config_free(f->cfg);
	f->cfg = NULL;
	pvm_config_problems_free(&f->problems);
	int rc = pvm_config_load(path, &f->cfg, &f->problems);
	free(path);
	return rc;
}

static void dump(const struct fx *f)
{
	pvm_config_problems_print(&f->problems, stderr);
}

static const struct pvm_config_problem *find(const struct fx *f, const char *key)
{
	for (size_t i = 0; i < f->problems.count; i++)
		if (strcmp(f->problems.items[i].key, key) == 0)
			return &f->problems.items[i];
	return NULL;
}

/* Asserts a problem of key at file (a name in the temp dir) and line, whose message holds
 * part. */
static void assert_problem(const struct fx *f, const char *file, int line, const char *key,
                           const char *part)
{
	const struct pvm_config_problem *p = find(f, key);
	if (!p) {
		dump(f);
		fail_msg("no problem for key '%s'", key);
	}
	char *want = NULL;
	assert_true(asprintf(&want, "%s/%s", f->dir, file) > 0);
	assert_string_equal(p->file, want);
	free(want);
	assert_int_equal(p->line, line);
	if (part && !strstr(p->message, part))
		fail_msg("problem '%s' lacks '%s'", p->message, part);
}

static void assert_ok(const struct fx *f, int rc)
{
	if (rc != 0)
		dump(f);
	assert_int_equal(rc, 0);
	assert_non_null(f->cfg);
	assert_int_equal(f->problems.count, 0);
}

static void assert_one_problem(struct fx *f, const char *text, const char *key, const char *part)
{
	int rc = load_text(f, text);
	assert_int_equal(rc, PVM_ECONFIG);
	assert_null(f->cfg);
	if (f->problems.count != 1) {
		dump(f);
		fail_msg("%zu problems for: %s", f->problems.count, text);
	}
	const struct pvm_config_problem *p = &f->problems.items[0];
	assert_string_equal(p->key, key);
	if (part && !strstr(p->message, part))
		fail_msg("problem '%s' lacks '%s'", p->message, part);
}

static void test_config_minimal_defaults(void **state)
{
	struct fx *f = *state;
	assert_ok(f, load_text(f, ENDPOINT));
	const struct pvm_config *c = f->cfg;
	assert_string_equal(c->endpoint, "https://hmc.example.com:12443");
	assert_null(c->managed_system);
	assert_null(c->user);
	assert_null(c->password_file);
	assert_null(c->password);
	assert_string_equal(c->state_dir, "/var/lib/powervmd");
	assert_string_equal(c->secret_key_file, "/var/lib/powervmd/secret.key");
	assert_int_equal(c->journal_map_size_mb, 64);
	assert_int_equal(c->journal_max_size_mb, 4096);
	assert_int_equal(c->retention_hours, 168);
	assert_int_equal(c->log_level, PVM_LOG_INFO);
	assert_int_equal(c->log_target, PVM_LOG_STDERR);
	assert_false(c->file_logon);
	assert_string_equal(c->token_dir, "/run/powervmd");
	assert_null(c->ca_file);
	assert_true(c->tls_verify);
	assert_int_equal(c->connect_timeout_s, 10);
	assert_int_equal(c->request_timeout_s, 120);
	assert_int_equal(c->connect_retry_s, 300);
	assert_string_equal(c->api_socket, "/run/powervmd/powervmd.sock");
	assert_null(c->api_allowed_uids);
	assert_int_equal(c->n_api_allowed_uids, 0);
	assert_int_equal(c->api_max_body_kb, 1024);
	assert_int_equal(c->workers, 8);
	assert_int_equal(c->retry_base_ms, 1000);
	assert_int_equal(c->retry_max_ms, 60000);
	assert_int_equal(c->job_poll_min_ms, 500);
	assert_int_equal(c->job_poll_max_ms, 30000);
	assert_int_equal(c->shutdown_grace_s, 30);
	assert_false(c->enable_test_ops);
	char *want = path_in(f, "powervmd.conf");
	assert_string_equal(c->path, want);
	free(want);
}

static void test_config_every_key_set(void **state)
{
	struct fx *f = *state;
	assert_ok(f, load_text(f, "powervm_endpoint = \"http://[fe80::1]:8080\";\n"
	                          "powervm_managed_system = \"8286-42A*21C1B6V\";\n"
	                          "powervm_user = \"hscroot\";\n"
	                          "powervm_state_dir = \"/srv/pvm/\";\n"
	                          "powervm_journal_map_size_mb = 0x80;\n"
	                          "powervm_journal_max_size_mb = 1048576L;\n"
	                          "powervm_retention_hours = 87600;\n"
	                          "powervm_log_level = \"debug\";\n"
	                          "powervm_log_target = \"syslog\";\n"
	                          "powervm_file_logon = true;\n"
	                          "powervm_token_dir = \"/var/lib/powervmd/tokens\";\n"
	                          "powervm_tls_verify = false;\n"
	                          "powervm_connect_timeout_s = 600;\n"
	                          "powervm_request_timeout_s = 3600;\n"
	                          "powervm_connect_retry_s = 0;\n"
	                          "powervm_api_socket = \"/tmp/p.sock\";\n"
	                          "powervm_api_allowed_uids = \"root, 1001,65534\";\n"
	                          "powervm_api_max_body_kb = 65536;\n"
	                          "powervm_workers = 256;\n"
	                          "powervm_retry_base_ms = 10;\n"
	                          "powervm_retry_max_ms = 100;\n"
	                          "powervm_job_poll_min_ms = 50;\n"
	                          "powervm_job_poll_max_ms = 600000;\n"
	                          "powervm_shutdown_grace_s = 0;\n"
	                          "powervm_enable_test_ops = true;\n"));
	const struct pvm_config *c = f->cfg;
	assert_string_equal(c->endpoint, "http://[fe80::1]:8080");
	assert_string_equal(c->managed_system, "8286-42A*21C1B6V");
	assert_string_equal(c->user, "hscroot");
	assert_string_equal(c->state_dir, "/srv/pvm/");
	assert_string_equal(c->secret_key_file, "/srv/pvm/secret.key");
	assert_int_equal(c->journal_map_size_mb, 128);
	assert_int_equal(c->journal_max_size_mb, 1048576);
	assert_int_equal(c->retention_hours, 87600);
	assert_int_equal(c->log_level, PVM_LOG_DEBUG);
	assert_int_equal(c->log_target, PVM_LOG_SYSLOG);
	assert_true(c->file_logon);
	assert_string_equal(c->token_dir, "/var/lib/powervmd/tokens");
	assert_false(c->tls_verify);
	assert_int_equal(c->connect_timeout_s, 600);
	assert_int_equal(c->request_timeout_s, 3600);
	assert_int_equal(c->connect_retry_s, 0);
	assert_string_equal(c->api_socket, "/tmp/p.sock");
	assert_int_equal(c->n_api_allowed_uids, 3);
	assert_int_equal(c->api_allowed_uids[0], 0);
	assert_int_equal(c->api_allowed_uids[1], 1001);
	assert_int_equal(c->api_allowed_uids[2], 65534);
	assert_int_equal(c->api_max_body_kb, 65536);
	assert_int_equal(c->workers, 256);
	assert_int_equal(c->retry_base_ms, 10);
	assert_int_equal(c->retry_max_ms, 100);
	assert_int_equal(c->job_poll_min_ms, 50);
	assert_int_equal(c->job_poll_max_ms, 600000);
	assert_int_equal(c->shutdown_grace_s, 0);
	assert_true(c->enable_test_ops);

	assert_ok(f, load_text(f, ENDPOINT "powervm_secret_key_file = \"/etc/powervmd/key\";\n"));
	assert_string_equal(f->cfg->secret_key_file, "/etc/powervmd/key");
}

/* Every example of the table is a valid value of its key. The examples naming a file or a
 * user that this host may not have can only fail on that. */
static void test_config_table_examples_valid(void **state)
{
	struct fx *f = *state;
	size_t n;
	const struct pvm_config_key *keys = pvm_config_keys(&n);
	assert_true(n >= 29);
	for (size_t i = 0; i < n; i++) {
		const struct pvm_config_key *k = &keys[i];
		assert_non_null(k->meaning);
		assert_non_null(k->example);
		assert_ptr_equal(pvm_config_key_find(k->name), k);
		assert_true(strncmp(k->name, "powervm_", 8) == 0);
		if (strcmp(k->name, "powervm_password_file") == 0)
			continue; /* needs the file: test_config_password_file_good */
		char *text = NULL;
		assert_true(asprintf(&text, "%s%s = %s;\n",
		                     strcmp(k->name, "powervm_endpoint") ? ENDPOINT : "", k->name,
		                     k->example) > 0);
		int rc = load_text(f, text);
		const char *absent = strcmp(k->name, "powervm_ca_file") == 0 ? "does not exist"
		                     : strcmp(k->name, "powervm_api_allowed_uids") == 0
		                             ? "unknown user \"nova\""
		                             : NULL;
		if (rc != 0 && absent && f->problems.count == 1 &&
		    strstr(f->problems.items[0].message, absent))
			rc = 0;
		if (rc != 0)
			fail_msg("example of %s refused: %s", k->name,
			         f->problems.count ? f->problems.items[0].message : "?");
		free(text);
	}
	assert_null(pvm_config_key_find("powervm_nope"));
}

/* PVM_CONFIG_BOOL: libconfig's true and false (any case), nothing else. */
static void test_config_bool(void **state)
{
	struct fx *f = *state;
	assert_ok(f, load_text(f, ENDPOINT "powervm_tls_verify = FALSE;\n"
	                                   "powervm_enable_test_ops = True;\n"
	                                   "powervm_file_logon = false;\n"));
	assert_false(f->cfg->tls_verify);
	assert_true(f->cfg->enable_test_ops);
	assert_false(f->cfg->file_logon);
	assert_string_equal(pvm_config_type_name(PVM_CONFIG_BOOL), "boolean");
	assert_int_equal(pvm_config_key_find("powervm_tls_verify")->type, PVM_CONFIG_BOOL);

	assert_int_equal(load_text(f, ENDPOINT "powervm_tls_verify = \"false\";\n"
	                                       "powervm_enable_test_ops = 1;\n"
	                                       "powervm_file_logon = 0.0;\n"
	                                       "powervm_workers = true;\n"
	                                       "powervm_api_socket = false;\n"),
	                 PVM_ECONFIG);
	assert_int_equal(f->problems.count, 5);
	assert_problem(f, "powervmd.conf", 2, "powervm_tls_verify",
	               "wrong type: expected a boolean (true or false, unquoted), got a string");
	assert_problem(f, "powervmd.conf", 3, "powervm_enable_test_ops",
	               "expected a boolean (true or false, unquoted), got an integer");
	assert_problem(f, "powervmd.conf", 4, "powervm_file_logon", "got a floating-point number");
	assert_problem(f, "powervmd.conf", 5, "powervm_workers",
	               "expected an integer, got a boolean");
	assert_problem(f, "powervmd.conf", 6, "powervm_api_socket",
	               "expected a string, got a boolean");
	/* Groups, arrays and lists are wrong types too. */
	assert_one_problem(f, ENDPOINT "powervm_tls_verify = [true];\n", "powervm_tls_verify",
	                   "got an array");
	/* A bare word other than true/false is a syntax error (libconfig). */
	assert_int_equal(load_text(f, ENDPOINT "powervm_tls_verify = yes;\n"), PVM_ECONFIG);
	assert_int_equal(f->problems.count, 1);
	assert_problem(f, "powervmd.conf", 2, "", NULL);
}

static void test_config_syntax_error(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load_text(f, ENDPOINT "\n# comment\npowervm_user = ;\n"), PVM_ECONFIG);
	assert_int_equal(f->problems.count, 1);
	assert_problem(f, "powervmd.conf", 4, "", "syntax error");
}

static void test_config_duplicate_key(void **state)
{
	struct fx *f = *state;
	assert_one_problem(f, ENDPOINT "powervm_user = \"a\";\npowervm_user = \"b\";\n",
	                   "powervm_user", "set more than once");
	assert_problem(f, "powervmd.conf", 3, "powervm_user", NULL);

	/* Across an include: the second one, in the included file, is named. */
	free(write_file(f, "sub.conf", "\npowervm_user = \"b\";\n"));
	assert_one_problem(f, ENDPOINT "powervm_user = \"a\";\n@include \"sub.conf\"\n",
	                   "powervm_user", "set more than once");
	assert_problem(f, "sub.conf", 2, "powervm_user", NULL);
}

static void test_config_unknown_key(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load_text(f, ENDPOINT "powervm_log_lvel = \"info\";\n"
	                                       "log_level = \"info\";\n"
	                                       "powervm_completely_different = 1;\n"),
	                 PVM_ECONFIG);
	assert_int_equal(f->problems.count, 3);
	assert_problem(f, "powervmd.conf", 2, "powervm_log_lvel",
	               "unknown key; did you mean powervm_log_level?");
	assert_problem(f, "powervmd.conf", 3, "log_level", "did you mean powervm_log_level?");
	assert_problem(f, "powervmd.conf", 4, "powervm_completely_different", "unknown key");
}

static void test_config_wrong_type(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load_text(f, ENDPOINT "powervm_user = 5;\n"
	                                       "powervm_retention_hours = \"168\";\n"
	                                       "powervm_journal_map_size_mb = 64.0;\n"
	                                       "powervm_log_level = true;\n"
	                                       "powervm_state_dir = { path = \"/x\"; };\n"
	                                       "powervm_managed_system = [\"a\", \"b\"];\n"
	                                       "powervm_secret_key_file = (\"/a\");\n"),
	                 PVM_ECONFIG);
	assert_int_equal(f->problems.count, 7);
	assert_problem(f, "powervmd.conf", 2, "powervm_user", "expected a string, got an integer");
	assert_problem(f, "powervmd.conf", 3, "powervm_retention_hours",
	               "expected an integer, got a string");
	assert_problem(f, "powervmd.conf", 4, "powervm_journal_map_size_mb",
	               "got a floating-point number");
	assert_problem(f, "powervmd.conf", 5, "powervm_log_level", "got a boolean");
	assert_problem(f, "powervmd.conf", 6, "powervm_state_dir", "got a group");
	assert_problem(f, "powervmd.conf", 7, "powervm_managed_system", "got an array");
	assert_problem(f, "powervmd.conf", 8, "powervm_secret_key_file", "got a list");
}

static void test_config_out_of_range(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load_text(f, ENDPOINT "powervm_journal_map_size_mb = 0;\n"
	                                       "powervm_journal_max_size_mb = 1048577L;\n"
	                                       "powervm_retention_hours = -1;\n"),
	                 PVM_ECONFIG);
	assert_int_equal(f->problems.count, 3);
	assert_problem(f, "powervmd.conf", 2, "powervm_journal_map_size_mb",
	               "out of range: 0 is not in 1..1048576");
	assert_problem(f, "powervmd.conf", 3, "powervm_journal_max_size_mb",
	               "1048577 is not in 1..1048576");
	assert_problem(f, "powervmd.conf", 4, "powervm_retention_hours", "-1 is not in 1..87600");
}

/* The ranges of the integer keys, at both ends. */
static void test_config_new_int_ranges(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *key;
		int64_t min, max;
	} r[] = {
	        {"powervm_workers", 1, 256},
	        {"powervm_api_max_body_kb", 1, 65536},
	        {"powervm_connect_timeout_s", 1, 600},
	        {"powervm_request_timeout_s", 1, 3600},
	        {"powervm_connect_retry_s", 0, 86400},
	        {"powervm_shutdown_grace_s", 0, 3600},
	        {"powervm_retry_base_ms", 10, 600000},
	        {"powervm_retry_max_ms", 100, 3600000},
	        {"powervm_job_poll_min_ms", 50, 60000},
	        {"powervm_job_poll_max_ms", 100, 600000},
	};
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		const struct pvm_config_key *k = pvm_config_key_find(r[i].key);
		assert_non_null(k);
		assert_int_equal(k->type, PVM_CONFIG_INT);
		assert_int_equal(k->min, r[i].min);
		assert_int_equal(k->max, r[i].max);
		char *text = NULL, *want = NULL;
		assert_true(asprintf(&text, ENDPOINT "%s = %" PRId64 ";\n", r[i].key,
		                     r[i].min - 1) > 0);
		assert_true(asprintf(&want, "%" PRId64 " is not in %" PRId64 "..%" PRId64,
		                     r[i].min - 1, r[i].min, r[i].max) > 0);
		assert_one_problem(f, text, r[i].key, want);
		free(text);
		free(want);
		assert_true(asprintf(&text, ENDPOINT "%s = %" PRId64 ";\n", r[i].key,
		                     r[i].max + 1) > 0);
		assert_one_problem(f, text, r[i].key, "out of range");
		free(text);
	}
}

/* max >= base for the back-off, max >= min for job polls. */
static void test_config_retry_and_poll_order(void **state)
{
	struct fx *f = *state;
	assert_one_problem(f,
	                   ENDPOINT "powervm_retry_base_ms = 5000;\n"
	                            "powervm_retry_max_ms = 4000;\n",
	                   "powervm_retry_max_ms",
	                   "powervm_retry_max_ms (4000) must be at least powervm_retry_base_ms "
	                   "(5000)");
	assert_problem(f, "powervmd.conf", 3, "powervm_retry_max_ms", NULL);
	/* Only the base set, above the default max: the base's line is named. */
	assert_one_problem(f, ENDPOINT "powervm_retry_base_ms = 120000;\n", "powervm_retry_base_ms",
	                   "powervm_retry_max_ms (60000, the default) must be at least "
	                   "powervm_retry_base_ms (120000)");
	assert_problem(f, "powervmd.conf", 2, "powervm_retry_base_ms", NULL);

	assert_one_problem(f,
	                   ENDPOINT "powervm_job_poll_min_ms = 1000;\n"
	                            "powervm_job_poll_max_ms = 999;\n",
	                   "powervm_job_poll_max_ms",
	                   "powervm_job_poll_max_ms (999) must be at least powervm_job_poll_min_ms "
	                   "(1000)");
	assert_problem(f, "powervmd.conf", 3, "powervm_job_poll_max_ms", NULL);
	/* Only the max set, below the default min. */
	assert_one_problem(f, ENDPOINT "powervm_job_poll_max_ms = 100;\n",
	                   "powervm_job_poll_max_ms",
	                   "(100) must be at least powervm_job_poll_min_ms (500)");

	/* Equal is fine; an out-of-range one is reported alone, not also as an order problem. */
	assert_ok(f, load_text(f, ENDPOINT "powervm_retry_base_ms = 2000;\n"
	                                   "powervm_retry_max_ms = 2000;\n"
	                                   "powervm_job_poll_min_ms = 700;\n"
	                                   "powervm_job_poll_max_ms = 700;\n"));
	assert_one_problem(f,
	                   ENDPOINT "powervm_retry_base_ms = 5000;\n"
	                            "powervm_retry_max_ms = 1;\n",
	                   "powervm_retry_max_ms", "out of range");
}

/* libconfig 1.5 wraps integers without L to 32 bits; the problem shows what was written. */
static void test_config_int_without_suffix_not_wrapped(void **state)
{
	struct fx *f = *state;
	assert_one_problem(f, ENDPOINT "powervm_retention_hours = 4294967297;\n",
	                   "powervm_retention_hours", "4294967297 is not in 1..87600");
	assert_one_problem(f, ENDPOINT "powervm_retention_hours = 0x100000001;\n",
	                   "powervm_retention_hours", "4294967297 is not in");
	assert_ok(f, load_text(f, ENDPOINT "powervm_retention_hours = 010;\n"));
	assert_int_equal(f->cfg->retention_hours, 10);
}

static void test_config_bad_enum(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load_text(f, ENDPOINT "powervm_log_level = \"verbose\";\n"
	                                       "powervm_log_target = \"journal\";\n"),
	                 PVM_ECONFIG);
	assert_int_equal(f->problems.count, 2);
	assert_problem(f, "powervmd.conf", 2, "powervm_log_level",
	               "bad value \"verbose\": expected one of debug, info, warning, error");
	assert_problem(f, "powervmd.conf", 3, "powervm_log_target",
	               "expected one of stderr, syslog");
}

static void test_config_missing_required(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load_text(f, "powervm_user = \"hscroot\";\n"), PVM_ECONFIG);
	assert_int_equal(f->problems.count, 1);
	assert_problem(f, "powervmd.conf", 0, "powervm_endpoint", "required key is missing");

	/* An empty file, too. */
	assert_int_equal(load_text(f, ""), PVM_ECONFIG);
	assert_problem(f, "powervmd.conf", 0, "powervm_endpoint", "required");
}

static void test_config_empty_string(void **state)
{
	struct fx *f = *state;
	assert_one_problem(f, ENDPOINT "powervm_user = \"\";\n", "powervm_user", "empty value");
}

static void test_config_relative_path(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load_text(f, ENDPOINT "powervm_state_dir = \"var/lib/powervmd\";\n"
	                                       "powervm_secret_key_file = \"secret.key\";\n"
	                                       "powervm_password_file = \"./pw\";\n"),
	                 PVM_ECONFIG);
	assert_int_equal(f->problems.count, 3);
	assert_problem(f, "powervmd.conf", 2, "powervm_state_dir",
	               "must be an absolute path (starting with /), not \"var/lib/powervmd\"");
	assert_problem(f, "powervmd.conf", 3, "powervm_secret_key_file", "absolute path");
	assert_problem(f, "powervmd.conf", 4, "powervm_password_file", "absolute path");
}

static void test_config_endpoint(void **state)
{
	struct fx *f = *state;
	static const char *const good[] = {
	        "https://hmc.example.com:12443",
	        "http://10.0.0.1",
	        "https://[fe80::1]:12443",
	        "https://hmc/",
	        "HTTPS://HMC:1",
	        "https://novalink.local:65535/rest",
	};
	static const struct {
		const char *url, *why;
	} bad[] = {
	        {"hmc.example.com", "must be an http:// or https:// URL"},
	        {"ftp://hmc", "must be an http:// or https:// URL"},
	        {"https://", "has no host"},
	        {"https://:12443", "has no host"},
	        {"https://hscroot:pw@hmc", "must not contain a user or password"},
	        {"https://hmc:0", "bad port"},
	        {"https://hmc:65536", "bad port"},
	        {"https://hmc:", "bad port"},
	        {"https://hmc:12a", "bad port"},
	        {"https://hmc name", "spaces"},
	        {"https://hmc?x=1", "query or fragment"},
	        {"https://hmc/a#b", "query or fragment"},
	        {"https://[zz]", "IPv6"},
	        {"https://hm!c", "bad character"},
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char *text = NULL;
		assert_true(asprintf(&text, "powervm_endpoint = \"%s\";\n", good[i]) > 0);
		assert_ok(f, load_text(f, text));
		assert_string_equal(f->cfg->endpoint, good[i]);
		free(text);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *text = NULL;
		assert_true(asprintf(&text, "\npowervm_endpoint = \"%s\";\n", bad[i].url) > 0);
		assert_one_problem(f, text, "powervm_endpoint", bad[i].why);
		assert_problem(f, "powervmd.conf", 2, "powervm_endpoint", NULL);
		free(text);
	}
	/* A URL with credentials is not echoed. */
	assert_one_problem(f, "powervm_endpoint = \"https://u:Hunter2@hmc\";\n", "powervm_endpoint",
	                   NULL);
	assert_null(strstr(f->problems.items[0].message, "Hunter2"));
}

static void test_config_managed_system(void **state)
{
	struct fx *f = *state;
	static const char *const good[] = {
	        "Server-8286-42A-SN21C1B6V",
	        "8286-42A*21C1B6V",
	        "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
	        "my system",
	};
	static const char *const bad[] = {"8286*42A", "8286-42A*", "-42A*123", "82 86-42A*1",
	                                  "a\\tb"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char *text = NULL;
		assert_true(asprintf(&text, ENDPOINT "powervm_managed_system = \"%s\";\n",
		                     good[i]) > 0);
		assert_ok(f, load_text(f, text));
		assert_string_equal(f->cfg->managed_system, good[i]);
		free(text);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *text = NULL;
		assert_true(asprintf(&text, ENDPOINT "powervm_managed_system = \"%s\";\n", bad[i]) >
		            0);
		assert_one_problem(f, text, "powervm_managed_system", NULL);
		assert_problem(f, "powervmd.conf", 2, "powervm_managed_system", NULL);
		free(text);
	}
}

static void test_config_api_socket(void **state)
{
	struct fx *f = *state;
	assert_ok(f, load_text(f, ENDPOINT "powervm_api_socket = \"/run/x/api.sock\";\n"));
	assert_string_equal(f->cfg->api_socket, "/run/x/api.sock");
	assert_one_problem(f, ENDPOINT "powervm_api_socket = \"run/api.sock\";\n",
	                   "powervm_api_socket", "absolute path");
	assert_one_problem(f, ENDPOINT "powervm_api_socket = \"/run/powervmd/\";\n",
	                   "powervm_api_socket", "not a directory");
	assert_one_problem(f, ENDPOINT "powervm_api_socket = \"\";\n", "powervm_api_socket",
	                   "empty value");
	/* sun_path holds 107 bytes and the NUL. */
	char path[120];
	memset(path, 'a', sizeof(path));
	path[0] = '/';
	path[107] = '\0';
	char *text = NULL;
	assert_true(asprintf(&text, ENDPOINT "powervm_api_socket = \"%s\";\n", path) > 0);
	assert_ok(f, load_text(f, text));
	free(text);
	path[107] = 'a';
	path[108] = '\0';
	assert_true(asprintf(&text, ENDPOINT "powervm_api_socket = \"%s\";\n", path) > 0);
	assert_one_problem(f, text, "powervm_api_socket", "longer than 107 bytes");
	free(text);
}

/* Loads powervm_api_allowed_uids = value; asserts success and the uids. */
static void assert_uids(struct fx *f, const char *value, const unsigned *want, size_t n)
{
	char *text = NULL;
	assert_true(asprintf(&text, ENDPOINT "powervm_api_allowed_uids = \"%s\";\n", value) > 0);
	assert_ok(f, load_text(f, text));
	free(text);
	if (f->cfg->n_api_allowed_uids != n)
		fail_msg("\"%s\": %zu uids, expected %zu", value, f->cfg->n_api_allowed_uids, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(f->cfg->api_allowed_uids[i], want[i]);
	if (n == 0)
		assert_null(f->cfg->api_allowed_uids);
}

static void test_config_api_allowed_uids(void **state)
{
	struct fx *f = *state;
	/* A name of this host other than root, when there is one: the current user's. */
	struct passwd *me = getpwuid(geteuid());
	assert_non_null(me);
	char *my_name = strdup(me->pw_name);
	unsigned my_uid = (unsigned)me->pw_uid;

	assert_uids(f, "", NULL, 0);
	assert_uids(f, "  ", NULL, 0);
	assert_uids(f, "root", (const unsigned[]){0}, 1);
	assert_uids(f, "1001", (const unsigned[]){1001}, 1);
	assert_uids(f, " 1001 ,\t0,4294967294", (const unsigned[]){1001, 0, 4294967294u}, 3);
	/* Duplicates, by name or number, are kept once. */
	assert_uids(f, "0,root,0", (const unsigned[]){0}, 1);
	char *list = NULL;
	assert_true(asprintf(&list, "%s,42", my_name) > 0);
	assert_uids(f, list, (const unsigned[]){my_uid, 42}, my_uid == 42 ? 1 : 2);
	free(list);
	free(my_name);

	/* A name that does not resolve is a problem naming it, one per name. */
	assert_one_problem(f, ENDPOINT "powervm_api_allowed_uids = \"root,pvm-no-such-user\";\n",
	                   "powervm_api_allowed_uids", "unknown user \"pvm-no-such-user\"");
	assert_problem(f, "powervmd.conf", 2, "powervm_api_allowed_uids", NULL);
	assert_int_equal(load_text(f, ENDPOINT "\npowervm_api_allowed_uids = \"pvm-nobody-a, 7, "
	                                       "pvm-nobody-b\";\n"),
	                 PVM_ECONFIG);
	assert_int_equal(f->problems.count, 2);
	assert_non_null(strstr(f->problems.items[0].message, "\"pvm-nobody-a\""));
	assert_non_null(strstr(f->problems.items[1].message, "\"pvm-nobody-b\""));
	assert_int_equal(f->problems.items[1].line, 3);

	/* Syntax: empty entries, out-of-range uids, blanks or colons inside an entry. */
	static const struct {
		const char *value, *why;
	} bad[] = {
	        {"nova,", "entry 2 is empty"},
	        {",nova", "entry 1 is empty"},
	        {"root,,0", "entry 2 is empty"},
	        {",", "entry 1 is empty"},
	        {"4294967295", "uid 4294967295 is out of range"},
	        {"99999999999999999999999", "out of range"},
	        {"no va", "entry 1 is not a user name or uid"},
	        {"root:x", "not a user name or uid"},
	        {"root,a\\tb", "entry 2"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *text = NULL;
		assert_true(asprintf(&text, ENDPOINT "powervm_api_allowed_uids = \"%s\";\n",
		                     bad[i].value) > 0);
		assert_one_problem(f, text, "powervm_api_allowed_uids", bad[i].why);
		free(text);
	}
	assert_one_problem(f, ENDPOINT "powervm_api_allowed_uids = 1001;\n",
	                   "powervm_api_allowed_uids", "expected a string, got an integer");
}

static void test_config_ca_file(void **state)
{
	struct fx *f = *state;
	char *ca = write_file(f, "ca.pem", "-----BEGIN CERTIFICATE-----\n");
	char *text = NULL;
	assert_true(asprintf(&text, ENDPOINT "powervm_ca_file = \"%s\";\n", ca) > 0);
	assert_ok(f, load_text(f, text));
	assert_string_equal(f->cfg->ca_file, ca);
	free(text);

	char *missing = path_in(f, "none.pem");
	assert_true(asprintf(&text, ENDPOINT "powervm_ca_file = \"%s\";\n", missing) > 0);
	assert_one_problem(f, text, "powervm_ca_file", "does not exist");
	assert_problem(f, "powervmd.conf", 2, "powervm_ca_file", missing);
	free(text);

	char *dir = path_in(f, "cadir");
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_true(asprintf(&text, ENDPOINT "powervm_ca_file = \"%s\";\n", dir) > 0);
	assert_one_problem(f, text, "powervm_ca_file", "is not a regular file");
	free(text);

	char *fifo = path_in(f, "ca.fifo"); /* refused without blocking */
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_true(asprintf(&text, ENDPOINT "powervm_ca_file = \"%s\";\n", fifo) > 0);
	assert_one_problem(f, text, "powervm_ca_file", "is not a regular file");
	free(text);

	assert_one_problem(f, ENDPOINT "powervm_ca_file = \"ca.pem\";\n", "powervm_ca_file",
	                   "absolute path");

	if (geteuid() != 0) { /* root reads any file */
		assert_int_equal(chmod(ca, 0), 0);
		assert_true(asprintf(&text, ENDPOINT "powervm_ca_file = \"%s\";\n", ca) > 0);
		assert_one_problem(f, text, "powervm_ca_file", "cannot read");
		assert_problem(f, "powervmd.conf", 2, "powervm_ca_file", "Permission denied");
		free(text);
	}
	free(fifo);
	free(dir);
	free(missing);
	free(ca);
}

static void test_config_map_larger_than_max(void **state)
{
	struct fx *f = *state;
	assert_one_problem(f,
	                   ENDPOINT "powervm_journal_map_size_mb = 128;\n"
	                            "powervm_journal_max_size_mb = 64;\n",
	                   "powervm_journal_max_size_mb", "must be at least");
	assert_problem(f, "powervmd.conf", 3, "powervm_journal_max_size_mb", "(64)");
	/* Only the map set: the default max (4096) is too small; the map's line is named. */
	assert_one_problem(f, ENDPOINT "powervm_journal_map_size_mb = 8192;\n",
	                   "powervm_journal_map_size_mb",
	                   "powervm_journal_max_size_mb (4096, the default) must be at least "
	                   "powervm_journal_map_size_mb (8192)");
	assert_problem(f, "powervmd.conf", 2, "powervm_journal_map_size_mb", NULL);
	/* Equal is fine. */
	assert_ok(f, load_text(f, ENDPOINT "powervm_journal_map_size_mb = 100;\n"
	                                   "powervm_journal_max_size_mb = 100;\n"));
}

static void test_config_many_problems_at_once(void **state)
{
	struct fx *f = *state;
	int rc = load_text(f, "powervm_user = 1;\n"
	                      "powervm_loglevel = \"info\";\n"
	                      "powervm_retention_hours = 0;\n"
	                      "powervm_log_target = \"file\";\n"
	                      "powervm_state_dir = \"rel\";\n"
	                      "powervm_password_encoded = \"***\";\n");
	assert_int_equal(rc, PVM_ECONFIG);
	assert_int_equal(f->problems.count, 7);
	assert_problem(f, "powervmd.conf", 1, "powervm_user", "wrong type");
	assert_problem(f, "powervmd.conf", 2, "powervm_loglevel", "unknown key");
	assert_problem(f, "powervmd.conf", 3, "powervm_retention_hours", "out of range");
	assert_problem(f, "powervmd.conf", 4, "powervm_log_target", "bad value");
	assert_problem(f, "powervmd.conf", 5, "powervm_state_dir", "absolute");
	assert_problem(f, "powervmd.conf", 6, "powervm_password_encoded", "base64");
	assert_problem(f, "powervmd.conf", 0, "powervm_endpoint", "required");
}

static void test_config_include(void **state)
{
	struct fx *f = *state;
	char *sub = write_file(f, "conf.d/sub.conf",
	                       "# included\n\npowervm_retention_hours = 0;\n"
	                       "@include \"conf.d/nested.conf\"\n");
	char *nested = write_file(f, "conf.d/nested.conf",
	                          "powervm_user = \"hscroot\";\n"
	                          "powervm_bogus = 1;\n");
	int rc = load_text(f, ENDPOINT "@include \"conf.d/sub.conf\"\n"
	                               "powervm_log_level = \"loud\";\n");
	assert_int_equal(rc, PVM_ECONFIG);
	assert_int_equal(f->problems.count, 3);
	assert_problem(f, "conf.d/sub.conf", 3, "powervm_retention_hours", "out of range");
	assert_problem(f, "conf.d/nested.conf", 2, "powervm_bogus", "unknown key");
	assert_problem(f, "powervmd.conf", 3, "powervm_log_level", "bad value");

	/* A good include is read. */
	free(write_file(f, "conf.d/sub.conf", "powervm_retention_hours = 5;\n"));
	assert_ok(f, load_text(f, ENDPOINT "@include \"conf.d/sub.conf\"\n"));
	assert_int_equal(f->cfg->retention_hours, 5);
	free(sub);
	free(nested);
}

static void test_config_include_syntax_error(void **state)
{
	struct fx *f = *state;
	char *sub = write_file(f, "sub.conf", "\n\npowervm_user = ;\n");
	assert_int_equal(load_text(f, ENDPOINT "@include \"sub.conf\"\n"), PVM_ECONFIG);
	assert_int_equal(f->problems.count, 1);
	assert_problem(f, "sub.conf", 3, "", "syntax error");
	free(sub);
}

static void test_config_include_bad_target(void **state)
{
	struct fx *f = *state;
	char *sub = path_in(f, "subdir");
	assert_int_equal(mkdir(sub, 0755), 0);
	/* A directory would make libconfig 1.5 exit the process: it must be a problem. */
	assert_int_equal(load_text(f, ENDPOINT "@include \"subdir\"\n"
	                                       "@include \"missing.conf\"\n"
	                                       "@include \"/etc/powervmd/x.conf\"\n"),
	                 PVM_ECONFIG);
	assert_int_equal(f->problems.count, 3);
	const struct pvm_config_problem *p = f->problems.items;
	assert_int_equal(p[0].line, 2);
	assert_non_null(strstr(p[0].message, "is not a regular file"));
	assert_int_equal(p[1].line, 3);
	assert_non_null(strstr(p[1].message, "No such file or directory"));
	assert_int_equal(p[2].line, 4);
	assert_non_null(strstr(p[2].message, "relative to the main file's directory"));
	free(sub);
}

static void test_config_main_file_unreadable(void **state)
{
	struct fx *f = *state;
	char *missing = path_in(f, "nope.conf");
	assert_int_equal(pvm_config_load(missing, &f->cfg, &f->problems), -ENOENT);
	assert_null(f->cfg);
	assert_int_equal(f->problems.count, 1);
	assert_string_equal(f->problems.items[0].file, missing);
	assert_non_null(strstr(f->problems.items[0].message, "No such file or directory"));
	pvm_config_problems_free(&f->problems);
	assert_int_equal(pvm_config_load(f->dir, &f->cfg, &f->problems), -EISDIR);
	assert_int_equal(f->problems.count, 1);
	pvm_config_problems_free(&f->problems);
	/* A FIFO is refused without blocking on it. */
	char *fifo = path_in(f, "fifo.conf");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(pvm_config_load(fifo, &f->cfg, &f->problems), -EINVAL);
	assert_int_equal(f->problems.count, 1);
	assert_non_null(strstr(f->problems.items[0].message, "not a regular file"));
	free(fifo);
	free(missing);
}

static void test_config_null_problems(void **state)
{
	struct fx *f = *state;
	char *path = write_file(f, "bad.conf", "powervm_x = 1;\n");
	assert_int_equal(pvm_config_load(path, &f->cfg, NULL), PVM_ECONFIG);
	assert_null(f->cfg);
	free(path);
	path = write_file(f, "good.conf", ENDPOINT);
	assert_int_equal(pvm_config_load(path, &f->cfg, NULL), 0);
	assert_non_null(f->cfg);
	free(path);
}

static void test_config_problems_print_format(void **state)
{
	struct fx *f = *state;
	assert_int_equal(load_text(f, "\npowervm_x = 1;\nbad = ;\n"), PVM_ECONFIG);
	assert_int_equal(load_text(f, "\npowervm_x = 1;\n"), PVM_ECONFIG);
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);
	assert_non_null(mem);
	pvm_config_problems_print(&f->problems, mem);
	fclose(mem);
	char *want = NULL;
	assert_true(asprintf(&want,
	                     "%1$s/powervmd.conf:2: powervm_x: unknown key\n"
	                     "%1$s/powervmd.conf: powervm_endpoint: required key is missing "
	                     "(example: powervm_endpoint = \"https://hmc.example.com:12443\";)\n",
	                     f->dir) > 0);
	assert_string_equal(buf, want);
	free(buf);
	free(want);

	assert_int_equal(load_text(f, "\n\nbad = ;\n"), PVM_ECONFIG);
	mem = open_memstream(&buf, &len);
	pvm_config_problems_print(&f->problems, mem);
	pvm_config_problems_print(NULL, mem);
	fclose(mem);
	assert_true(asprintf(&want, "%s/powervmd.conf:3: syntax error\n", f->dir) > 0);
	assert_string_equal(buf, want);
	free(buf);
	free(want);
}

/* ---- credentials ---- */

static char *password_conf(const char *pw_path)
{
	char *text = NULL;
	assert_true(asprintf(&text,
	                     ENDPOINT "powervm_user = \"hscroot\";\n"
	                              "powervm_password_file = \"%s\";\n",
	                     pw_path) > 0);
	return text;
}

static void test_config_password_file_good(void **state)
{
	struct fx *f = *state;
	char *pw = write_file_mode(f, "password", "s3cret pass\n", 0600);
	char *text = password_conf(pw);
	assert_ok(f, load_text(f, text));
	assert_string_equal(f->cfg->password_file, pw);
	assert_string_equal(f->cfg->password, "s3cret pass");
	free(text);

	/* 0400 is stricter: fine. No newline and CRLF too. */
	free(write_file_mode(f, "password", "abc", 0400));
	text = password_conf(pw);
	assert_ok(f, load_text(f, text));
	assert_string_equal(f->cfg->password, "abc");
	free(write_file_mode(f, "password", "abc\r\n", 0600));
	assert_ok(f, load_text(f, text));
	assert_string_equal(f->cfg->password, "abc");
	free(text);
	free(pw);
}

static void test_config_password_file_mode_refused(void **state)
{
	struct fx *f = *state;
	char *pw = write_file_mode(f, "password", "s3cret\n", 0644);
	char *text = password_conf(pw);
	assert_one_problem(f, text, "powervm_password_file",
	                   "has mode 0644; it must be 0600 or stricter");
	assert_problem(f, "powervmd.conf", 3, "powervm_password_file", pw);
	chmod(pw, 0640);
	assert_one_problem(f, text, "powervm_password_file", "has mode 0640");
	free(text);
	free(pw);
}

static void test_config_password_file_other_owner(void **state)
{
	struct fx *f = *state;
	if (geteuid() != 0)
		skip();
	char *pw = write_file_mode(f, "password", "s3cret\n", 0600);
	assert_int_equal(chown(pw, 1, (gid_t)-1), 0);
	char *text = password_conf(pw);
	assert_one_problem(f, text, "powervm_password_file", "is owned by uid 1, not by");
	assert_problem(f, "powervmd.conf", 3, "powervm_password_file", NULL);
	free(text);
	free(pw);
}

static void test_config_password_file_missing(void **state)
{
	struct fx *f = *state;
	char *pw = path_in(f, "no-password");
	char *text = password_conf(pw);
	assert_one_problem(f, text, "powervm_password_file", "does not exist");
	assert_problem(f, "powervmd.conf", 3, "powervm_password_file", pw);
	free(text);
	free(pw);
}

static void test_config_password_file_empty_or_not_regular(void **state)
{
	struct fx *f = *state;
	char *pw = write_file_mode(f, "password", "\n", 0600);
	char *text = password_conf(pw);
	assert_one_problem(f, text, "powervm_password_file", "is empty");
	free(text);
	free(pw);

	pw = path_in(f, "pwdir");
	assert_int_equal(mkdir(pw, 0700), 0);
	text = password_conf(pw);
	assert_one_problem(f, text, "powervm_password_file", "not a regular file");
	free(text);
	free(pw);
}

static void test_config_password_encoded(void **state)
{
	struct fx *f = *state;
	/* "passw0rd", and "echo hunter2 | base64" with its newline, and no padding. */
	assert_ok(f, load_text(f, ENDPOINT "powervm_password_encoded = \"cGFzc3cwcmQ=\";\n"));
	assert_string_equal(f->cfg->password, "passw0rd");
	assert_null(f->cfg->password_file);
	assert_ok(f, load_text(f, ENDPOINT "powervm_password_encoded = \"aHVudGVyMgo=\";\n"));
	assert_string_equal(f->cfg->password, "hunter2");
	assert_ok(f, load_text(f, ENDPOINT "powervm_password_encoded = \"YWJjZA\";\n"));
	assert_string_equal(f->cfg->password, "abcd");

	static const char *const bad[] = {"not base64!", "YWJjZA=", "Y", "====", "YW Jj"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *text = NULL;
		assert_true(asprintf(&text, ENDPOINT "powervm_password_encoded = \"%s\";\n",
		                     bad[i]) > 0);
		assert_one_problem(f, text, "powervm_password_encoded", "not valid base64");
		assert_problem(f, "powervmd.conf", 2, "powervm_password_encoded", NULL);
		free(text);
	}
	assert_one_problem(f, ENDPOINT "powervm_password_encoded = \"Cg==\";\n",
	                   "powervm_password_encoded", "empty password");
	assert_one_problem(f, ENDPOINT "powervm_password_encoded = \"YQBi\";\n",
	                   "powervm_password_encoded", "NUL byte");
}

static void test_config_password_both_set(void **state)
{
	struct fx *f = *state;
	char *pw = write_file_mode(f, "password", "s3cret\n", 0600);
	char *text = NULL;
	assert_true(asprintf(&text,
	                     ENDPOINT "powervm_password_file = \"%s\";\n"
	                              "powervm_password_encoded = \"cGFzc3cwcmQ=\";\n",
	                     pw) > 0);
	assert_one_problem(f, text, "powervm_password_encoded", "both set");
	assert_problem(f, "powervmd.conf", 3, "powervm_password_encoded", NULL);
	free(text);
	free(pw);
}

/* Runs pvm_config_check_credentials() on the config loaded from text. */
static int check_credentials(struct fx *f, const char *text)
{
	assert_ok(f, load_text(f, text));
	return pvm_config_check_credentials(f->cfg, &f->problems);
}

static void test_config_check_credentials(void **state)
{
	struct fx *f = *state;
	char *pw = write_file_mode(f, "password", "s3cret\n", 0600);
	char *text = password_conf(pw);
	assert_int_equal(check_credentials(f, text), 0);
	assert_int_equal(f->problems.count, 0);
	free(text);
	assert_int_equal(check_credentials(f, ENDPOINT "powervm_user = \"u\";\n"
	                                               "powervm_password_encoded = \"YWJj\";\n"),
	                 0);

	/* Neither user nor password: both missing, naming the keys, without a line. */
	assert_int_equal(check_credentials(f, ENDPOINT), PVM_ECONFIG);
	assert_int_equal(f->problems.count, 2);
	assert_problem(f, "powervmd.conf", 0, "powervm_user",
	               "required key is missing (example: powervm_user = \"hscroot\";)");
	assert_problem(f, "powervmd.conf", 0, "powervm_password_file",
	               "required key is missing: without powervm_file_logon, set "
	               "powervm_password_file (or powervm_password_encoded)");

	/* A user without a password, a password without a user. */
	assert_int_equal(check_credentials(f, ENDPOINT "powervm_user = \"u\";\n"), PVM_ECONFIG);
	assert_int_equal(f->problems.count, 1);
	assert_problem(f, "powervmd.conf", 0, "powervm_password_file", "required key is missing");
	assert_int_equal(check_credentials(f, ENDPOINT "powervm_password_encoded = \"YWJj\";\n"),
	                 PVM_ECONFIG);
	assert_int_equal(f->problems.count, 1);
	assert_problem(f, "powervmd.conf", 0, "powervm_user", "required key is missing");

	/* File logon: no password needed, the user still is. */
	assert_int_equal(check_credentials(f, ENDPOINT "powervm_file_logon = true;\n"
	                                               "powervm_user = \"neo\";\n"),
	                 0);
	assert_int_equal(f->problems.count, 0);
	assert_int_equal(check_credentials(f, ENDPOINT "powervm_file_logon = true;\n"),
	                 PVM_ECONFIG);
	assert_int_equal(f->problems.count, 1);
	assert_problem(f, "powervmd.conf", 0, "powervm_user", "required key is missing");

	/* Problems already in the list are kept; the new ones are appended. */
	assert_ok(f, load_text(f, ENDPOINT));
	f->problems.items = calloc(16, sizeof(*f->problems.items));
	assert_non_null(f->problems.items);
	strcpy(f->problems.items[0].key, "earlier");
	f->problems.count = 1;
	assert_int_equal(pvm_config_check_credentials(f->cfg, &f->problems), PVM_ECONFIG);
	assert_int_equal(f->problems.count, 3);
	assert_string_equal(f->problems.items[0].key, "earlier");
	assert_string_equal(f->problems.items[1].key, "powervm_user");
	assert_string_equal(f->problems.items[2].key, "powervm_password_file");

	/* pvm_config_load() itself does not apply the rule (the sample has no credentials). */
	assert_ok(f, load_text(f, ENDPOINT));
	free(pw);
}

/* No problem (file, key, message, or the printed lines) ever carries a secret. */
static void assert_no_secret(const struct fx *f, const char *const *secrets, size_t n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);
	assert_non_null(mem);
	pvm_config_problems_print(&f->problems, mem);
	fclose(mem);
	for (size_t i = 0; i < n; i++)
		if (strstr(buf, secrets[i]))
			fail_msg("secret '%s' in problems:\n%s", secrets[i], buf);
	free(buf);
}

static void test_config_secrets_never_in_problems(void **state)
{
	struct fx *f = *state;
	/* The file's password (and its base64) in badly protected, empty-after-strip and
	 * good-but-conflicting files; invalid and valid encoded values. */
	static const char *const secrets[] = {"Sw0rdfish-42", "U3cwcmRmaXNoLTQy", "T0pS3cr3t",
	                                      "VDBwUzNjcjN0", "Hunter2"};
	char *pw = write_file_mode(f, "password", "Sw0rdfish-42\n", 0644);
	char *text = NULL;
	assert_true(asprintf(&text,
	                     "powervm_endpoint = \"https://admin:Hunter2@hmc\";\n"
	                     "powervm_password_file = \"%s\";\n"
	                     "powervm_password_encoded = \"!!T0pS3cr3t!!\";\n",
	                     pw) > 0);
	assert_int_equal(load_text(f, text), PVM_ECONFIG);
	assert_true(f->problems.count >= 3);
	assert_no_secret(f, secrets, sizeof(secrets) / sizeof(secrets[0]));
	free(text);

	/* Mode problem alone: the content is not read into the message. */
	text = password_conf(pw);
	assert_int_equal(load_text(f, text), PVM_ECONFIG);
	assert_no_secret(f, secrets, sizeof(secrets) / sizeof(secrets[0]));
	free(text);

	/* A valid encoded value that conflicts with the file. */
	chmod(pw, 0600);
	assert_true(asprintf(&text,
	                     ENDPOINT "powervm_password_file = \"%s\";\n"
	                              "powervm_password_encoded = \"VDBwUzNjcjN0\";\n",
	                     pw) > 0);
	assert_int_equal(load_text(f, text), PVM_ECONFIG);
	assert_no_secret(f, secrets, sizeof(secrets) / sizeof(secrets[0]));
	free(text);

	/* The table marks the encoded password as the secret key. */
	size_t n;
	const struct pvm_config_key *keys = pvm_config_keys(&n);
	for (size_t i = 0; i < n; i++)
		if (keys[i].secret)
			assert_string_equal(keys[i].name, "powervm_password_encoded");
	free(pw);
}

/* ---- the sample and the docs cover the table ---- */

static void test_config_sample_passes(void **state)
{
	struct fx *f = *state;
	char *sample = pvm_test_source_path("conf/powervmd.conf.sample");
	int rc = pvm_config_load(sample, &f->cfg, &f->problems);
	if (rc != 0)
		dump(f);
	assert_int_equal(rc, 0);

	/* Every value the sample sets is the default. */
	struct pvm_config *sample_cfg = f->cfg;
	f->cfg = NULL;
	assert_ok(f, load_text(f, ENDPOINT));
	const struct pvm_config *d = f->cfg;
	assert_string_equal(sample_cfg->endpoint, d->endpoint);
	assert_null(sample_cfg->managed_system);
	assert_null(sample_cfg->user);
	assert_null(sample_cfg->password);
	assert_string_equal(sample_cfg->state_dir, d->state_dir);
	assert_string_equal(sample_cfg->secret_key_file, d->secret_key_file);
	assert_int_equal(sample_cfg->journal_map_size_mb, d->journal_map_size_mb);
	assert_int_equal(sample_cfg->journal_max_size_mb, d->journal_max_size_mb);
	assert_int_equal(sample_cfg->retention_hours, d->retention_hours);
	assert_int_equal(sample_cfg->log_level, d->log_level);
	assert_int_equal(sample_cfg->log_target, d->log_target);
	assert_int_equal(sample_cfg->file_logon, d->file_logon);
	assert_string_equal(sample_cfg->token_dir, d->token_dir);
	assert_null(sample_cfg->ca_file);
	assert_int_equal(sample_cfg->tls_verify, d->tls_verify);
	assert_int_equal(sample_cfg->connect_timeout_s, d->connect_timeout_s);
	assert_int_equal(sample_cfg->request_timeout_s, d->request_timeout_s);
	assert_int_equal(sample_cfg->connect_retry_s, d->connect_retry_s);
	assert_string_equal(sample_cfg->api_socket, d->api_socket);
	assert_int_equal(sample_cfg->n_api_allowed_uids, 0);
	assert_int_equal(sample_cfg->api_max_body_kb, d->api_max_body_kb);
	assert_int_equal(sample_cfg->workers, d->workers);
	assert_int_equal(sample_cfg->retry_base_ms, d->retry_base_ms);
	assert_int_equal(sample_cfg->retry_max_ms, d->retry_max_ms);
	assert_int_equal(sample_cfg->job_poll_min_ms, d->job_poll_min_ms);
	assert_int_equal(sample_cfg->job_poll_max_ms, d->job_poll_max_ms);
	assert_int_equal(sample_cfg->shutdown_grace_s, d->shutdown_grace_s);
	assert_int_equal(sample_cfg->enable_test_ops, d->enable_test_ops);
	pvm_config_free(sample_cfg);
	free(sample);
}

static char *read_source(const char *rel)
{
	char *path = pvm_test_source_path(rel);
	char *text = NULL;
	int rc = pvm_read_file(path, 1 << 20, &text, NULL);
	if (rc != 0)
		fail_msg("cannot read %s: %s", path, pvm_strerror(rc));
	free(path);
	return text;
}

static void test_config_sample_covers_every_key(void **state)
{
	(void)state;
	char *text = read_source("conf/powervmd.conf.sample");
	size_t n;
	const struct pvm_config_key *keys = pvm_config_keys(&n);
	for (size_t i = 0; i < n; i++) {
		/* At the start of a line, set or commented out: "key = " or "#key = ". */
		char *set = NULL, *commented = NULL;
		assert_true(asprintf(&set, "\n%s = ", keys[i].name) > 0);
		assert_true(asprintf(&commented, "\n#%s = ", keys[i].name) > 0);
		if (!strstr(text, set) && !strstr(text, commented))
			fail_msg("conf/powervmd.conf.sample lacks %s", keys[i].name);
		/* The sample sets a key exactly when it has a default (or is required). */
		bool should_set = keys[i].def || keys[i].required;
		if (should_set != (strstr(text, set) != NULL))
			fail_msg("conf/powervmd.conf.sample: %s should %sbe set", keys[i].name,
			         should_set ? "" : "not ");
		/* ... to its default, as written in the file. */
		if (keys[i].def && !keys[i].derived_default) {
			char *line = NULL;
			bool quoted = keys[i].type == PVM_CONFIG_STRING ||
			              keys[i].type == PVM_CONFIG_ENUM;
			assert_true(asprintf(&line, "\n%s = %s%s%s;\n", keys[i].name,
			                     quoted ? "\"" : "", keys[i].def,
			                     quoted ? "\"" : "") > 0);
			if (!strstr(text, line))
				fail_msg("conf/powervmd.conf.sample: %s is not set to its default "
				         "%s",
				         keys[i].name, keys[i].def);
			free(line);
		}
		free(set);
		free(commented);
	}
	free(text);
}

static void test_config_docs_cover_every_key(void **state)
{
	(void)state;
	char *text = read_source("docs/configuration.md");
	size_t n;
	const struct pvm_config_key *keys = pvm_config_keys(&n);
	for (size_t i = 0; i < n; i++) {
		const struct pvm_config_key *k = &keys[i];
		char *heading = NULL;
		assert_true(asprintf(&heading, "\n### %s\n", k->name) > 0);
		char *sec = strstr(text, heading);
		if (!sec)
			fail_msg("docs/configuration.md has no section '### %s'", k->name);
		sec += strlen(heading);
		/* The section runs to the next heading. */
		char *end = strstr(sec, "\n#");
		size_t len = end ? (size_t)(end - sec) : strlen(sec);
		char *body = strndup(sec, len);
		assert_non_null(body);

		char *type = NULL, *example = NULL, *def = NULL;
		assert_true(asprintf(&type, "- Type: %s", pvm_config_type_name(k->type)) > 0);
		assert_true(asprintf(&example, "%s = %s;", k->name, k->example) > 0);
		/* An empty default is shown as `""`. */
		assert_true(asprintf(&def, "`%s`", k->def && *k->def ? k->def : "\"\"") > 0);
		if (!strstr(body, type))
			fail_msg("docs: %s lacks '%s'", k->name, type);
		if (!strstr(body, "- Default: "))
			fail_msg("docs: %s lacks its default", k->name);
		if (k->def && !strstr(body, def))
			fail_msg("docs: %s lacks its default %s", k->name, def);
		if (k->required && !strstr(body, "required"))
			fail_msg("docs: %s does not say it is required", k->name);
		if (!strstr(body, "- Meaning: "))
			fail_msg("docs: %s lacks its meaning", k->name);
		if (!strstr(body, example))
			fail_msg("docs: %s lacks its example '%s'", k->name, example);
		for (int j = 0; k->values && k->values[j]; j++) {
			char *v = NULL;
			assert_true(asprintf(&v, "`%s`", k->values[j]) > 0);
			if (!strstr(body, v))
				fail_msg("docs: %s does not list %s", k->name, v);
			free(v);
		}
		free(type);
		free(example);
		free(def);
		free(body);
		free(heading);
	}
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_config_minimal_defaults, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_every_key_set, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_table_examples_valid, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_bool, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_syntax_error, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_duplicate_key, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_unknown_key, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_wrong_type, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_out_of_range, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_new_int_ranges, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_retry_and_poll_order, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_int_without_suffix_not_wrapped, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_config_bad_enum, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_missing_required, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_empty_string, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_relative_path, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_endpoint, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_managed_system, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_api_socket, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_api_allowed_uids, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_ca_file, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_map_larger_than_max, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_many_problems_at_once, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_include, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_include_syntax_error, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_include_bad_target, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_main_file_unreadable, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_null_problems, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_problems_print_format, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_password_file_good, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_password_file_mode_refused, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_config_password_file_other_owner, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_config_password_file_missing, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_password_file_empty_or_not_regular,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_password_encoded, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_password_both_set, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_check_credentials, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_config_secrets_never_in_problems, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_config_sample_passes, setup, teardown),
	        cmocka_unit_test(test_config_sample_covers_every_key),
	        cmocka_unit_test(test_config_docs_cover_every_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
