/* util.c: clocks, bounded copies, whole-file reads, private-file checks (pvm/util.h). */
#include "pvm/util.h"

#include "pvm/error.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t pvm_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pvm_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int pvm_strlcpy(char *dst, const char *src, size_t n)
{
	size_t len = strlen(src);
	if (n == 0 || len >= n) {
		if (n)
			dst[0] = '\0';
		return PVM_ETOOBIG;
	}
	memcpy(dst, src, len + 1);
	return 0;
}

char *pvm_fmt_time(int64_t ms, char *buf, size_t n)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	return buf;
}

int pvm_read_file(const char *path, size_t max, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = 0;
	size_t cap = 4096, used = 0;
	char *buf = malloc(cap + 1);
	if (!buf) {
		rc = PVM_ENOMEM;
		goto out_close;
	}
	for (;;) {
		if (used == cap) {
			if (cap >= max) {
				rc = PVM_ETOOBIG;
				goto out_free;
			}
			cap = cap * 2 > max ? max : cap * 2;
			char *nb = realloc(buf, cap + 1);
			if (!nb) {
				rc = PVM_ENOMEM;
				goto out_free;
			}
			buf = nb;
		}
		ssize_t r = read(fd, buf + used, cap - used);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			goto out_free;
		}
		if (r == 0)
			break;
		used += (size_t)r;
		if (used > max) {
			rc = PVM_ETOOBIG;
			goto out_free;
		}
	}
	buf[used] = '\0';
	*out = buf;
	if (len)
		*len = used;
	close(fd);
	return 0;
out_free:
	free(buf);
out_close:
	close(fd);
	return rc;
}

int pvm_check_private_file(const char *path, unsigned uid, char *why, size_t n)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		int e = errno;
		snprintf(why, n, "%s: %s", path, strerror(e));
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, n, "%s is not a regular file", path);
		return PVM_EPERM;
	}
	if (st.st_uid != uid) {
		snprintf(why, n, "%s is owned by uid %u, not by the daemon's user (uid %u)", path,
		         (unsigned)st.st_uid, uid);
		return PVM_EPERM;
	}
	if (st.st_mode & 077) {
		snprintf(why, n, "%s has mode %04o; it must be 0600 or stricter (chmod 600 %s)",
		         path, (unsigned)(st.st_mode & 07777), path);
		return PVM_EPERM;
	}
	return 0;
}

int pvm_is_uuid(const char *s)
{
	if (!s || strlen(s) != 36)
		return 0;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}
