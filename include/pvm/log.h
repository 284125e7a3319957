/* pvm/log.h: logging for powervmd and its tools.
 *
 * One line per event, to stderr (journald-friendly: with a "<N>" priority prefix when
 * stderr is connected to the journal) or to syslog. Each line carries the operation id,
 * the instance uuid and nova's request id when the caller knows them.
 * Secrets must never be passed to these functions: callers log names of things, never
 * passwords, keys or tokens.
 *
 * Thread-safety: pvm_log*() may be called from any thread at any time; pvm_log_setup()
 * and pvm_log_set_level() are meant for start-up and SIGHUP but are safe at any time.
 */
#ifndef PVM_LOG_H
#define PVM_LOG_H

#include <stdint.h>

enum pvm_log_level { PVM_LOG_DEBUG = 0, PVM_LOG_INFO, PVM_LOG_WARNING, PVM_LOG_ERROR };
enum pvm_log_target { PVM_LOG_STDERR = 0, PVM_LOG_SYSLOG };

/* Context fields of a log line; any may be 0/NULL when unknown. */
struct pvm_log_ctx {
	uint64_t op_id;
	const char *instance_uuid;
	const char *request_id;
};

/* ident names the program ("powervmd"); target and level as configured. */
void pvm_log_setup(const char *ident, enum pvm_log_target target, enum pvm_log_level level);
void pvm_log_set_level(enum pvm_log_level level);
enum pvm_log_level pvm_log_get_level(void);

/* Parses "debug", "info", "warning", "error". Returns 0 or PVM_EINVAL. */
int pvm_log_level_parse(const char *s, enum pvm_log_level *out);
const char *pvm_log_level_name(enum pvm_log_level level);

void pvm_log(enum pvm_log_level level, const struct pvm_log_ctx *ctx, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#define pvm_debug(...) pvm_log(PVM_LOG_DEBUG, NULL, __VA_ARGS__)
#define pvm_info(...)  pvm_log(PVM_LOG_INFO, NULL, __VA_ARGS__)
#define pvm_warn(...)  pvm_log(PVM_LOG_WARNING, NULL, __VA_ARGS__)
#define pvm_error(...) pvm_log(PVM_LOG_ERROR, NULL, __VA_ARGS__)

#endif
