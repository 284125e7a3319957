/* pvm/config.h: powervmd's configuration (libconfig file, every key prefixed powervm_).
 *
 * One table in src/config/config.c lists every key with its type, default, range and
 * whether it is required; loading, --check-config, conf/powervmd.conf.sample and
 * docs/configuration.md all follow that table. Validation collects every problem (unknown
 * key, wrong type, out of range, missing required, unreadable or badly protected file) with
 * file, line and key, instead of stopping at the first.
 *
 * Secrets: the PowerVM password is read from powervm_password_file (owned by the daemon's
 * user, mode 0600 or stricter) or from powervm_password_encoded (base64: obfuscation only).
 * Its value is never logged, never printed in a problem, and kept only in cfg->password.
 *
 * Credentials: whether a logon password and powervm_user are present is not checked by
 * pvm_config_load() (the sample, and --check-config, accept a file without them); the daemon
 * checks it at start-up with pvm_config_check_credentials().
 *
 * Thread-safety: a loaded struct pvm_config is immutable and may be read by any thread.
 */
#ifndef PVM_CONFIG_H
#define PVM_CONFIG_H

#include "pvm/log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PVM_CONFIG_DEFAULT_PATH "/etc/powervmd/powervmd.conf"

enum pvm_disk_driver { PVM_DISK_LOCALDISK = 0, PVM_DISK_SSP };
enum pvm_scrub_mode { PVM_SCRUB_OFF = 0, PVM_SCRUB_DRY_RUN, PVM_SCRUB_ON };

struct pvm_config {
	char *path; /* the main file it was loaded from */

	/* PowerVM endpoint and credentials */
	char *endpoint;       /* powervm_endpoint: required, http(s)://host[:port] */
	char *managed_system; /* powervm_managed_system: name, MTMS or UUID; NULL: the only one */
	char *user;           /* powervm_user */
	char *password_file;  /* powervm_password_file, or NULL */
	char *password;       /* from the file or the encoded value; NULL when neither */
	bool file_logon;      /* powervm_file_logon: NovaLink local logon, token in a file */
	char *token_dir;      /* powervm_token_dir: with file logon, the token file lies here */

	/* connection to the REST server */
	char *ca_file;             /* powervm_ca_file: PEM CA bundle, or NULL: the system's */
	bool tls_verify;           /* powervm_tls_verify */
	int64_t connect_timeout_s; /* powervm_connect_timeout_s */
	int64_t request_timeout_s; /* powervm_request_timeout_s */
	int64_t connect_retry_s;   /* powervm_connect_retry_s: start-up retries, 0: none */

	/* state and journal */
	char *state_dir;             /* powervm_state_dir */
	char *secret_key_file;       /* powervm_secret_key_file (default: <state_dir>/secret.key) */
	int64_t journal_map_size_mb; /* powervm_journal_map_size_mb */
	int64_t journal_max_size_mb; /* powervm_journal_max_size_mb */
	int64_t retention_hours;     /* powervm_retention_hours */

	/* local API */
	char *api_socket;           /* powervm_api_socket */
	unsigned *api_allowed_uids; /* powervm_api_allowed_uids, resolved (no duplicates); NULL
	                               when empty (root and the daemon's own user only) */
	size_t n_api_allowed_uids;
	int64_t api_max_body_kb; /* powervm_api_max_body_kb */

	/* engine */
	int64_t workers;          /* powervm_workers */
	int64_t retry_base_ms;    /* powervm_retry_base_ms */
	int64_t retry_max_ms;     /* powervm_retry_max_ms (>= retry_base_ms) */
	int64_t job_poll_min_ms;  /* powervm_job_poll_min_ms */
	int64_t job_poll_max_ms;  /* powervm_job_poll_max_ms (>= job_poll_min_ms) */
	int64_t shutdown_grace_s; /* powervm_shutdown_grace_s */
	bool enable_test_ops;     /* powervm_enable_test_ops: tests only, never in production */

	/* nova */
	char *proc_units_factor; /* powervm_proc_units_factor: a decimal 0.05..1 (checked) */
	int64_t host_sample_s;   /* powervm_host_sample_s */

	/* storage and network */
	enum pvm_disk_driver disk_driver; /* powervm_disk_driver */
	char *volume_group_name;          /* powervm_volume_group_name */
	char *volume_group_vios_name;     /* powervm_volume_group_vios_name, or NULL */
	char *cluster_name;               /* powervm_cluster_name, or NULL */
	int64_t image_marker_timeout_s;   /* powervm_image_marker_timeout_s */
	bool use_rmc_mgmt_vif;            /* powervm_use_rmc_mgmt_vif */
	char *default_vswitch;            /* powervm_default_vswitch */
	enum pvm_scrub_mode scrub;        /* powervm_scrub */

	/* logging */
	enum pvm_log_level log_level;   /* powervm_log_level */
	enum pvm_log_target log_target; /* powervm_log_target */
};

/* One problem found while loading. */
struct pvm_config_problem {
	char file[256]; /* file the setting is in ("" when not known) */
	int line;       /* 0 when not known */
	char key[64];   /* the key ("" for a syntax error) */
	char message[256];
};

struct pvm_config_problems {
	struct pvm_config_problem *items;
	size_t count;
};

/* The key table: one entry per key, in the order the docs and the sample list them. It
 * drives loading, validation, the defaults, conf/powervmd.conf.sample and
 * docs/configuration.md (the unit tests check that both cover every entry). */
enum pvm_config_type {
	PVM_CONFIG_STRING = 0, /* libconfig string */
	PVM_CONFIG_INT,        /* libconfig integer, with or without the L suffix */
	PVM_CONFIG_ENUM,       /* libconfig string, one of values[] */
	PVM_CONFIG_BOOL,       /* libconfig boolean: true or false (stored as bool) */
};

struct pvm_config_key {
	const char *name;          /* "powervm_..." */
	enum pvm_config_type type; /* as written in the file */
	const char *def;           /* default as the docs show it; NULL: no default */
	bool derived_default;      /* def names a value computed from other keys */
	int64_t min, max;          /* PVM_CONFIG_INT: inclusive range */
	const char *const *values; /* PVM_CONFIG_ENUM: allowed values, NULL-terminated */
	bool required;             /* a missing key is a problem */
	bool abs_path;             /* the value must be an absolute path */
	bool secret;               /* the value is a secret: never echoed or logged */
	bool allow_empty;          /* PVM_CONFIG_STRING: "" is a valid value */
	const char *meaning;       /* one line */
	const char *example;       /* a value as written in the file: "\"https://...\"", 64 */

	/* Internal to config.c. */
	size_t offset; /* of the field in struct pvm_config, or PVM_CONFIG_NO_FIELD */
	/* Extra check of a string value: returns 0, or -1 with a reason in why that must not
	 * echo a secret value. NULL: none. */
	int (*check)(const char *value, char *why, size_t n);
};

#define PVM_CONFIG_NO_FIELD ((size_t)-1)

/* Returns the key table and its length in *n. Static, never NULL. */
const struct pvm_config_key *pvm_config_keys(size_t *n);
/* Returns the entry of name, or NULL when name is not a key. */
const struct pvm_config_key *pvm_config_key_find(const char *name);
/* "string", "integer", "enum", "boolean". */
const char *pvm_config_type_name(enum pvm_config_type type);

/* Loads and validates path. On success returns 0 and *out. On failure returns PVM_ECONFIG
 * (or a negative errno for an unreadable main file) and fills *problems with every problem
 * found (free with pvm_config_problems_free()). problems may be NULL.
 *
 * Relative @include paths are resolved against the main file's directory (also inside
 * nested includes); a problem in an included file names that file and its line. A syntax
 * error stops the parse, so it is reported alone. Returns PVM_ENOMEM when memory runs out.
 * Logs nothing: the caller prints the problems. Reentrant. */
int pvm_config_load(const char *path, struct pvm_config **out,
                    struct pvm_config_problems *problems);
void pvm_config_free(struct pvm_config *cfg);
void pvm_config_problems_free(struct pvm_config_problems *p);
/* Prints each problem as "FILE:LINE: KEY: MESSAGE" to f (a FILE *); ":LINE" is left out
 * when the line is not known (a missing key) and "KEY: " when there is no key (a syntax
 * error). p may be NULL. */
void pvm_config_problems_print(const struct pvm_config_problems *p, void *f);

/* The credentials rule, checked by the daemon at start-up (not by pvm_config_load(), so
 * that the sample and --check-config accept a file whose credentials are still commented
 * out): powervm_user is required; without powervm_file_logon, a password
 * (powervm_password_file or powervm_password_encoded) is required too. Each missing key is
 * appended to *p (zeroed, or as pvm_config_load() left it) as a "required key is
 * missing" problem naming the key and cfg->path. Returns 0 when both are present,
 * PVM_ECONFIG when a problem was added, PVM_ENOMEM (nothing added). */
int pvm_config_check_credentials(const struct pvm_config *cfg, struct pvm_config_problems *p);

#endif
