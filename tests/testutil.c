/* testutil.c: see testutil.h. */
#include "testutil.h"

#include "pvm/util.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

char *pvm_test_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *path = NULL;
	if (asprintf(&path, "%s/pvmtest-%s-XXXXXX", base && *base ? base : "/tmp", tag) < 0)
		abort();
	if (!mkdtemp(path)) {
		fprintf(stderr, "mkdtemp %s: %s\n", path, strerror(errno));
		abort();
	}
	return path;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

void pvm_test_rmtree(char *path)
{
	if (!path)
		return;
	if (!getenv("PVM_TEST_KEEP"))
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(path);
}

int pvm_test_scale(void)
{
	const char *s = getenv("PVM_TEST_SCALE");
	int v = s ? atoi(s) : 1;
	return v > 0 ? v : 1;
}

bool pvm_test_wait(bool (*cond)(void *), void *arg, int timeout_ms)
{
	int64_t end = pvm_mono_ns() + (int64_t)timeout_ms * pvm_test_scale() * 1000000;
	for (;;) {
		if (cond(arg))
			return true;
		if (pvm_mono_ns() > end)
			return false;
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

uint64_t pvm_test_seed(const char *what)
{
	const char *s = getenv("PVM_TEST_SEED");
	uint64_t seed =
	        s ? strtoull(s, NULL, 0) : (uint64_t)pvm_mono_ns() ^ ((uint64_t)getpid() << 32);
	if (seed == 0)
		seed = 1;
	fprintf(stderr, "%s: seed=%llu (set PVM_TEST_SEED=%llu to replay)\n", what,
	        (unsigned long long)seed, (unsigned long long)seed);
	return seed;
}

uint64_t pvm_test_rand(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static char *join_env(const char *var, const char *rel)
{
	const char *base = getenv(var);
	char *p = NULL;
	if (asprintf(&p, "%s/%s", base ? base : ".", rel) < 0)
		abort();
	return p;
}

char *pvm_test_build_path(const char *rel)
{
	return join_env("PVM_BUILD_DIR", rel);
}
char *pvm_test_source_path(const char *rel)
{
	return join_env("PVM_SOURCE_DIR", rel);
}
