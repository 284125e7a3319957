/* util.c: pvmsim's small helpers: a growable string with XML escaping, hashes, UUIDs and
 * session tokens. */
#include "sim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* The renderer's buffers: never NULL, "" after an allocation failure. */
char *sb_take(struct pvm_buf *b)
{
	char *p = pvm_buf_take(b);
	return p ? p : strdup("");
}

uint64_t sim_mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

uint64_t sim_hash_str(uint64_t h, const char *s)
{
	h ^= 0xcbf29ce484222325ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return sim_mix64(h);
}

static void fmt_uuid(const unsigned char b[16], bool upper, char out[SIM_UUID_LEN])
{
	snprintf(out, SIM_UUID_LEN,
	         upper ? "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X"
	               : "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
	         b[13], b[14], b[15]);
}

void sim_uuid_from(const char *seed, bool upper, char out[SIM_UUID_LEN])
{
	uint64_t h1 = sim_hash_str(1, seed), h2 = sim_hash_str(2, seed);
	unsigned char b[16];
	for (int i = 0; i < 8; i++) {
		b[i] = (unsigned char)(h1 >> (8 * i));
		b[8 + i] = (unsigned char)(h2 >> (8 * i));
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x30); /* name-based, like the HMC's v3 ids */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	fmt_uuid(b, upper, out);
}

static void rand_bytes(unsigned char *p, size_t n)
{
	while (n) {
		ssize_t r = getrandom(p, n, 0);
		if (r <= 0)
			abort(); /* the kernel always has entropy after boot */
		p += r;
		n -= (size_t)r;
	}
}

void sim_uuid_random(char out[SIM_UUID_LEN])
{
	unsigned char b[16];
	rand_bytes(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	fmt_uuid(b, false, out);
}

void sim_token(char *out, size_t n)
{
	static const char alpha[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char r[128];
	if (n > sizeof(r))
		n = sizeof(r);
	rand_bytes(r, n);
	for (size_t i = 0; i < n; i++)
		out[i] = alpha[r[i] & 63];
	out[n] = '\0';
}
