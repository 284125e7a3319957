/* pvm/util.h: small helpers shared by every module: clocks, bounded string copies,
 * whole-file reads. All functions are thread-safe. */
#ifndef PVM_UTIL_H
#define PVM_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME): persisted timestamps. */
int64_t pvm_now_ms(void);
/* Monotonic nanoseconds (CLOCK_MONOTONIC): durations and deadlines inside one process. */
int64_t pvm_mono_ns(void);

/* Copies src into dst of size n, always NUL-terminated. Returns PVM_ETOOBIG (and copies
 * nothing) when src does not fit, else 0. */
int pvm_strlcpy(char *dst, const char *src, size_t n);

/* Formats ms (epoch milliseconds) as RFC 3339 UTC "2026-11-26T10:00:00.123Z" into buf
 * (at least 25 bytes). Returns buf. */
char *pvm_fmt_time(int64_t ms, char *buf, size_t n);

/* Reads a whole file of at most max bytes into a NUL-terminated heap buffer.
 * Returns 0, -errno, or PVM_ETOOBIG. *len (optional) receives the size. */
int pvm_read_file(const char *path, size_t max, char **out, size_t *len);

/* Checks that path is a regular file owned by uid with no group or other permission bits.
 * Returns 0, -errno from stat, or PVM_EPERM with a reason in why (size n). */
int pvm_check_private_file(const char *path, unsigned uid, char *why, size_t n);

/* True when s is a canonical 8-4-4-4-12 hex UUID (either case). */
int pvm_is_uuid(const char *s);

#endif
