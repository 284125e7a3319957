/* log.c: one line per event, to stderr or syslog (pvm/log.h).
 *
 * A line is formatted whole into a buffer and written with one write(2), so lines from
 * concurrent threads never interleave. When stderr is the systemd journal
 * (JOURNAL_STREAM names it), lines carry the "<N>" priority prefix that journald parses
 * and no timestamp of their own.
 */
#include "pvm/log.h"

#include "pvm/error.h"
#include "pvm/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

static _Atomic int cur_level = PVM_LOG_INFO;
static _Atomic int cur_target = PVM_LOG_STDERR;
static _Atomic int to_journal;
static char ident_buf[32] = "powervmd"; /* written only by pvm_log_setup at start-up */

static const char *const level_names[] = {"debug", "info", "warning", "error"};
static const int syslog_prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};

/* True when stderr is the stream JOURNAL_STREAM ("dev:ino") names. */
static int stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	struct stat st;
	unsigned long long dev, ino;
	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) != 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void pvm_log_setup(const char *ident, enum pvm_log_target target, enum pvm_log_level level)
{
	if (ident)
		pvm_strlcpy(ident_buf, ident, sizeof(ident_buf));
	atomic_store(&cur_level, level);
	atomic_store(&cur_target, target);
	atomic_store(&to_journal, stderr_is_journal());
	if (target == PVM_LOG_SYSLOG)
		openlog(ident_buf, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void pvm_log_set_level(enum pvm_log_level level)
{
	atomic_store(&cur_level, level);
}

enum pvm_log_level pvm_log_get_level(void)
{
	return (enum pvm_log_level)atomic_load(&cur_level);
}

int pvm_log_level_parse(const char *s, enum pvm_log_level *out)
{
	for (int i = 0; i < 4; i++)
		if (s && strcmp(s, level_names[i]) == 0) {
			*out = (enum pvm_log_level)i;
			return 0;
		}
	return PVM_EINVAL;
}

const char *pvm_log_level_name(enum pvm_log_level level)
{
	return (level >= PVM_LOG_DEBUG && level <= PVM_LOG_ERROR) ? level_names[level] : "?";
}

void pvm_log(enum pvm_log_level level, const struct pvm_log_ctx *ctx, const char *fmt, ...)
{
	if ((int)level < atomic_load(&cur_level) || (int)level > PVM_LOG_ERROR)
		return;
	int saved_errno = errno;
	char line[2048];
	size_t n = 0;
	int journal = atomic_load(&to_journal);
	int sys = atomic_load(&cur_target) == PVM_LOG_SYSLOG;

	if (!sys && journal) {
		n += (size_t)snprintf(line, sizeof(line), "<%d>", syslog_prio[level]);
	} else if (!sys) {
		char ts[40];
		n += (size_t)snprintf(line, sizeof(line), "%s %s[%d] ",
		                      pvm_fmt_time(pvm_now_ms(), ts, sizeof(ts)), ident_buf,
		                      (int)getpid());
	}
	n += (size_t)snprintf(line + n, sizeof(line) - n, "%s", level_names[level]);
	if (ctx && ctx->op_id && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, " op=%llu",
		                      (unsigned long long)ctx->op_id);
	if (ctx && ctx->instance_uuid && ctx->instance_uuid[0] && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, " instance=%s",
		                      ctx->instance_uuid);
	if (ctx && ctx->request_id && ctx->request_id[0] && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, " req=%s", ctx->request_id);
	if (n < sizeof(line) - 1) {
		line[n++] = ' ';
		va_list ap;
		va_start(ap, fmt);
		int w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
		if (w > 0)
			n += (size_t)w;
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	/* One event, one line: fold embedded newlines. */
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	if (sys) {
		line[n] = '\0';
		syslog(syslog_prio[level], "%s", line);
	} else {
		line[n++] = '\n';
		ssize_t off = 0;
		while (off < (ssize_t)n) {
			ssize_t w = write(2, line + off, n - (size_t)off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			off += w;
		}
	}
	errno = saved_errno;
}
