/* test_common.c: errors, logging and helpers of src/common. */
#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/util.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* Runs fn with stderr redirected to a file; returns what it wrote (heap). */
static char *capture_stderr(void (*fn)(void))
{
	char *dir = pvm_test_tmpdir("log");
	char path[512];
	snprintf(path, sizeof(path), "%s/err", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	int saved = dup(2);
	dup2(fd, 2);
	fn();
	dup2(saved, 2);
	close(saved);
	close(fd);
	char *out = NULL;
	assert_int_equal(pvm_read_file(path, 1 << 20, &out, NULL), 0);
	pvm_test_rmtree(dir);
	return out;
}

static void log_with_context(void)
{
	pvm_log_setup("powervmd", PVM_LOG_STDERR, PVM_LOG_INFO);
	struct pvm_log_ctx ctx = {42, "6c3a1f1e-0d2b-4c55-9a77-1b2c3d4e5f60", "req-abc"};
	pvm_log(PVM_LOG_WARNING, &ctx, "step %d of %s failed:\nline two", 3, "spawn");
	pvm_log(PVM_LOG_DEBUG, &ctx, "not shown at info");
}

static void test_common_log_line_carries_context(void **state)
{
	(void)state;
	unsetenv("JOURNAL_STREAM");
	char *out = capture_stderr(log_with_context);
	assert_non_null(strstr(out, "powervmd["));
	assert_non_null(strstr(out, " warning op=42 instance=6c3a1f1e-0d2b-4c55-9a77-1b2c3d4e5f60 "
	                            "req=req-abc step 3 of spawn failed: line two\n"));
	assert_null(strstr(out, "not shown"));
	/* One event, one line. */
	assert_int_equal(strchr(out, '\n') - out + 1, (long)strlen(out));
	free(out);
}

static void log_plain(void)
{
	pvm_log_setup("powervmd", PVM_LOG_STDERR, PVM_LOG_DEBUG);
	pvm_error("journal full");
}

static void test_common_log_journald_prefix(void **state)
{
	(void)state;
	char *dir = pvm_test_tmpdir("jlog");
	char path[512];
	snprintf(path, sizeof(path), "%s/err", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	struct stat st;
	fstat(fd, &st);
	char js[64];
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	int saved = dup(2);
	dup2(fd, 2);
	log_plain();
	dup2(saved, 2);
	close(saved);
	close(fd);
	unsetenv("JOURNAL_STREAM");
	char *out = NULL;
	assert_int_equal(pvm_read_file(path, 1 << 20, &out, NULL), 0);
	assert_string_equal(out, "<3>error journal full\n");
	free(out);
	pvm_test_rmtree(dir);
	pvm_log_setup("powervmd", PVM_LOG_STDERR, PVM_LOG_INFO);
}

static void test_common_log_levels_parse(void **state)
{
	(void)state;
	enum pvm_log_level l;
	assert_int_equal(pvm_log_level_parse("warning", &l), 0);
	assert_int_equal(l, PVM_LOG_WARNING);
	assert_int_equal(pvm_log_level_parse("verbose", &l), PVM_EINVAL);
	assert_string_equal(pvm_log_level_name(PVM_LOG_DEBUG), "debug");
}

static void test_common_errors_named(void **state)
{
	(void)state;
	for (int e = PVM_E_BASE; e < PVM_E_END; e++) {
		assert_string_not_equal(pvm_strerror(e), "unknown error");
		assert_memory_equal(pvm_errname(e), "PVM_E", 5);
	}
	assert_string_equal(pvm_errname(-ENOENT), "ENOENT");
	assert_string_equal(pvm_strerror(-ENOENT), strerror(ENOENT));
	assert_string_equal(pvm_strerror(0), "success");
}

static void test_common_strlcpy_and_uuid(void **state)
{
	(void)state;
	char buf[4];
	assert_int_equal(pvm_strlcpy(buf, "abc", sizeof(buf)), 0);
	assert_string_equal(buf, "abc");
	assert_int_equal(pvm_strlcpy(buf, "abcd", sizeof(buf)), PVM_ETOOBIG);
	assert_string_equal(buf, "");
	assert_true(pvm_is_uuid("6C3A1F1E-0d2b-4c55-9a77-1b2c3d4e5f60"));
	assert_false(pvm_is_uuid("6c3a1f1e-0d2b-4c55-9a77-1b2c3d4e5f6"));
	assert_false(pvm_is_uuid("6c3a1f1e+0d2b-4c55-9a77-1b2c3d4e5f60"));
	assert_false(pvm_is_uuid(NULL));
	char t[40];
	assert_string_equal(pvm_fmt_time(1764115200123LL, t, sizeof(t)),
	                    "2025-11-26T00:00:00.123Z");
}

static void test_common_private_file_checks(void **state)
{
	(void)state;
	char *dir = pvm_test_tmpdir("priv");
	char path[512], why[512];
	snprintf(path, sizeof(path), "%s/key", dir);
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(write(fd, "x", 1) == 1);
	close(fd);
	assert_int_equal(pvm_check_private_file(path, (unsigned)geteuid(), why, sizeof(why)), 0);
	chmod(path, 0640);
	assert_int_equal(pvm_check_private_file(path, (unsigned)geteuid(), why, sizeof(why)),
	                 PVM_EPERM);
	assert_non_null(strstr(why, "0640"));
	chmod(path, 0600);
	assert_int_equal(pvm_check_private_file(path, (unsigned)geteuid() + 1, why, sizeof(why)),
	                 PVM_EPERM);
	assert_non_null(strstr(why, "owned by"));
	assert_int_equal(pvm_check_private_file(dir, (unsigned)geteuid(), why, sizeof(why)),
	                 PVM_EPERM);
	strcat(path, ".missing");
	assert_int_equal(pvm_check_private_file(path, (unsigned)geteuid(), why, sizeof(why)),
	                 -ENOENT);
	pvm_test_rmtree(dir);
}

static void test_common_read_file_limit(void **state)
{
	(void)state;
	char *dir = pvm_test_tmpdir("read");
	char path[512];
	snprintf(path, sizeof(path), "%s/f", dir);
	FILE *f = fopen(path, "w");
	for (int i = 0; i < 10000; i++)
		fputc('a' + i % 26, f);
	fclose(f);
	char *out = NULL;
	size_t len = 0;
	assert_int_equal(pvm_read_file(path, 20000, &out, &len), 0);
	assert_int_equal(len, 10000);
	assert_int_equal(out[9999], 'a' + 9999 % 26);
	free(out);
	assert_int_equal(pvm_read_file(path, 5000, &out, &len), PVM_ETOOBIG);
	pvm_test_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_common_log_line_carries_context),
	        cmocka_unit_test(test_common_log_journald_prefix),
	        cmocka_unit_test(test_common_log_levels_parse),
	        cmocka_unit_test(test_common_errors_named),
	        cmocka_unit_test(test_common_strlcpy_and_uuid),
	        cmocka_unit_test(test_common_private_file_checks),
	        cmocka_unit_test(test_common_read_file_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
