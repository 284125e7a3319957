/* ctl.h: what the parts of powervmctl share (src/ctl/ only; not a public header).
 *
 * powervmctl has two ways in: the journal, opened read-only (queue list, show, stats,
 * watch), which works whether powervmd runs or not, and the local API on powervmd's Unix
 * socket (everything that changes something, and the host and instance views). main.c
 * parses the command line and resolves the paths, journal.c and daemon.c hold the commands,
 * http.c is the small HTTP/1.1 client, format.c the output helpers.
 *
 * Every command returns an exit status of enum ctl_exit; messages go to stderr, results to
 * stdout (tables for people, one JSON document with --json).
 */
#ifndef PVM_CTL_H
#define PVM_CTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses (documented in --help and docs/operations.md). */
enum ctl_exit {
	CTL_OK = 0,        /* done */
	CTL_ERROR = 1,     /* anything else: the message says what to do */
	CTL_USAGE = 2,     /* bad command line */
	CTL_NO_DAEMON = 3, /* the command needs powervmd, and it does not answer */
	CTL_NOT_FOUND = 4, /* no such operation */
	CTL_CONFLICT = 5,  /* refused in the operation's state, or idempotency key conflict */
	CTL_OP_FAILED = 6, /* queue watch, submit --watch: the operation ended failed/cancelled */
};

/* The resolved invocation. Paths are heap strings owned by main.c. */
struct ctl {
	bool json;               /* --json */
	const char *config;      /* configuration file actually used, or NULL (defaults) */
	char *state_dir;         /* journal directory */
	char *socket_path;       /* powervmd's API socket */
	size_t map_size_max;     /* powervm_journal_max_size_mb, in bytes (0: unknown) */
	int64_t retention_h;     /* powervm_retention_hours (0: unknown) */
	const char *const *args; /* positional arguments after the command words */
	size_t nargs;
	const char *opt_state, *opt_instance, *opt_type, *opt_limit, *opt_older_than;
	bool opt_watch;
};

/* ---- journal.c: commands that read the journal ---- */
int ctl_queue_list(struct ctl *c);
int ctl_queue_show(struct ctl *c);
int ctl_queue_stats(struct ctl *c);
int ctl_queue_watch(struct ctl *c);
/* Watches operation id until it ends (used by submit --watch too). */
int ctl_watch_id(struct ctl *c, uint64_t id);

/* ---- daemon.c: commands that go through powervmd ---- */
int ctl_host(struct ctl *c);
int ctl_instances(struct ctl *c);
int ctl_queue_retry(struct ctl *c);
int ctl_queue_cancel(struct ctl *c);
int ctl_queue_purge(struct ctl *c);
int ctl_submit(struct ctl *c);
int ctl_pause(struct ctl *c);
int ctl_resume(struct ctl *c);

/* What is known about powervmd. */
enum ctl_daemon_state {
	CTL_DAEMON_UNKNOWN = 0, /* the socket could not be tried (permission) */
	CTL_DAEMON_RUNNING,     /* the API answers */
	CTL_DAEMON_STARTING,    /* it holds the journal, the API does not answer (yet) */
	CTL_DAEMON_STOPPED,     /* nothing answers and nobody holds the journal */
};
struct ctl_daemon {
	enum ctl_daemon_state state;
	bool paused; /* RUNNING only */
	bool ready;  /* RUNNING only: /healthz said ready */
};
/* Asks /healthz (short timeout) and looks at the journal's lock. Never fails. */
void ctl_daemon_probe(const struct ctl *c, struct ctl_daemon *d);
const char *ctl_daemon_state_name(enum ctl_daemon_state s);
/* {"running": bool|null, "state": "...", "paused": bool|null} as a new reference. */
json_t *ctl_daemon_json(const struct ctl_daemon *d);

/* ---- http.c: HTTP/1.1 over the Unix socket ---- */
struct ctl_http_resp {
	int status;
	char *body; /* NUL-terminated, heap */
	size_t len;
};
/* Sends one request (body: JSON text or NULL) and reads the answer, within timeout_ms.
 * Returns 0 (any HTTP status), -errno from socket/connect (-ENOENT, -ECONNREFUSED: nothing
 * listens; -EACCES: not allowed to connect), PVM_ETIMEDOUT, or PVM_EIO for an answer that is
 * not HTTP. */
int ctl_http(const char *socket_path, const char *method, const char *path, const char *body,
             int timeout_ms, struct ctl_http_resp *out);
void ctl_http_resp_fini(struct ctl_http_resp *r);

/* ---- format.c: output helpers ---- */
/* A table: add cells row by row, then print with columns aligned. */
struct ctl_table;
struct ctl_table *ctl_table_create(size_t ncols, const char *const *headers);
/* Appends a cell to the current row (a row ends after ncols cells). Copies s (NULL: "-"). */
void ctl_table_add(struct ctl_table *t, const char *s);
void ctl_table_addf(struct ctl_table *t, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* Prints with every column padded to its widest cell (the last one unpadded); columns
 * listed in right_cols (bitmask) are right-aligned. */
void ctl_table_print(struct ctl_table *t, FILE *f, unsigned right_cols);
size_t ctl_table_rows(const struct ctl_table *t);
void ctl_table_destroy(struct ctl_table *t);

/* "3s", "4m12s", "2h05m", "6d03h": a duration in ms, compact. */
char *ctl_fmt_duration(int64_t ms, char *buf, size_t n);
/* "2026-11-26 10:00:02" in local time (or "-" for 0). */
char *ctl_fmt_local(int64_t ms, char *buf, size_t n);
/* Parses "90", "90s", "30m", "12h", "7d", "1w", "1h30m" into seconds. Returns 0 or -1. */
int ctl_parse_duration(const char *s, int64_t *seconds);
/* Parses an operation id (decimal, >= 1). Returns 0 or -1. */
int ctl_parse_id(const char *s, uint64_t *id);
/* A progress bar "[#######-------]" of width cells (without the brackets). */
void ctl_fmt_bar(int progress, int width, char *buf, size_t n);
/* Replaces in place the values of object members whose name says they are secret
 * (password, secret, token, ...) with "<redacted>", recursively. The journal already keeps
 * secret params apart: this is a second guard for anything else. */
void ctl_redact(json_t *v);
/* Prints v as JSON to stdout (indented, newline-terminated). Returns CTL_OK or CTL_ERROR. */
int ctl_print_json(const json_t *v);
/* Truncates s to at most max display bytes with "..." (in place copy into buf). */
const char *ctl_trunc(const char *s, size_t max, char *buf, size_t n);

/* Prints "powervmctl: " + message to stderr. */
void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
