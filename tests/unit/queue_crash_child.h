/* queue_crash_child.h: what the crash test's child (queue_crash_child.c) submits.
 *
 * Every submission is derived from (generation, thread, n) alone, so the parent of a killed
 * child can check each acknowledged submission (type, instance, params, idempotency key)
 * knowing only its key. Shared by the child and by tests/unit/test_queue_crash.c.
 */
#ifndef PVM_QUEUE_CRASH_CHILD_H
#define PVM_QUEUE_CRASH_CHILD_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define CRASH_KEY_MAX   64
#define CRASH_BLOB_MAX  6000 /* the largest params span LMDB overflow pages */
#define CRASH_INSTANCES 12   /* instances shared by all threads (FIFO lines interleave) */

struct crash_sub {
	char key[CRASH_KEY_MAX];
	char type[24];
	char instance[40]; /* "" for an operation on no instance */
	json_t *params;    /* new reference */
};

static inline uint64_t crash_mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ULL;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	return x ^ (x >> 31);
}

/* Fills *out for submission n of thread t of child generation gen. Returns 0, -1 on ENOMEM. */
static inline int crash_derive(unsigned gen, unsigned t, unsigned n, struct crash_sub *out)
{
	static const char *const types[] = {"spawn", "power_on", "reboot", "attach_volume"};
	uint64_t h = crash_mix(((uint64_t)gen << 44) ^ ((uint64_t)t << 32) ^ n);
	snprintf(out->key, sizeof(out->key), "crash-g%u-t%u-n%u", gen, t, n);
	snprintf(out->type, sizeof(out->type), "%s", types[h % 4]);
	unsigned inst = (unsigned)((h >> 8) % (CRASH_INSTANCES + 1));
	if (inst == CRASH_INSTANCES)
		out->instance[0] = '\0';
	else
		snprintf(out->instance, sizeof(out->instance), "c0ffee%02x-0000-4000-8000-%012x",
		         inst, inst + 1);
	/* Mostly small params; one in ten spans LMDB overflow pages. */
	size_t len = (h >> 16) % 10 == 0 ? 2000 + (size_t)((h >> 24) % (CRASH_BLOB_MAX - 2000))
	                                 : (size_t)((h >> 24) % 400);
	char *blob = malloc(len + 1);
	if (!blob)
		return -1;
	uint64_t s = h;
	for (size_t i = 0; i < len; i++) {
		if (i % 8 == 0)
			s = crash_mix(s);
		blob[i] = (char)('a' + (int)((s >> ((i % 8) * 8)) % 26));
	}
	blob[len] = '\0';
	out->params =
	        json_pack("{s:s, s:i, s:i, s:i, s:s, s:{s:b, s:f}}", "key", out->key, "gen",
	                  (json_int_t)gen, "thread", (json_int_t)t, "n", (json_int_t)n, "blob",
	                  blob, "nested", "odd", (int)(n & 1), "ratio", (double)(h % 1000) / 8.0);
	free(blob);
	return out->params ? 0 : -1;
}

/* Parses a key written by crash_derive(). Returns 0 or -1. */
static inline int crash_parse_key(const char *key, unsigned *gen, unsigned *t, unsigned *n)
{
	char tail;
	if (sscanf(key, "crash-g%u-t%u-n%u%c", gen, t, n, &tail) != 3)
		return -1;
	return 0;
}

#endif
