/* config.c: loading and validating powervmd's configuration (pvm/config.h).
 *
 * DESIGN: one table, keys[] below, describes every key: type, default, range or allowed
 * values, whether it is required or a path or a secret, its meaning and an example. Adding
 * a key is adding a field to struct pvm_config and one entry here (plus its section in
 * docs/configuration.md and its line in conf/powervmd.conf.sample; the unit tests fail
 * until both exist). Rules between keys live in finish(), the only other place to touch.
 *
 * Loading runs in passes, and collects every problem instead of stopping at the first:
 *   1. The main file and every @include it names must be regular files. libconfig 1.5
 *      exits the whole process when an include names a directory, and blocks on a FIFO,
 *      so this is checked before libconfig sees them.
 *   2. libconfig parses. A syntax error stops libconfig, so it is reported alone.
 *   3. Each top-level setting is checked against the table (unknown key, wrong type, out
 *      of range, bad value) and stored.
 *   4. finish(): missing required keys, defaults, and the rules between keys (password
 *      sources, ordered pairs of sizes and delays), then the password is read, the CA file
 *      is checked and the API's allowed users are resolved.
 *
 * The credentials rule (a user, and a password unless file logon) is not part of loading:
 * pvm_config_check_credentials() is the daemon's start-up check.
 *
 * Secrets (the password file's content, the encoded password) are never copied into a
 * problem, never logged, and wiped from memory when no longer needed.
 */
#include "pvm/config.h"

#include "pvm/error.h"
#include "pvm/util.h"

#include <libconfig.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_INCLUDE_DEPTH 10         /* libconfig's own limit */
#define MAX_CONFIG_FILE   (16 << 20) /* bytes, for the @include pre-scan */
#define MAX_PASSWORD_FILE 4096       /* bytes */
#define MAX_STRING_VALUE  4096       /* bytes, any string key */
#define FIELD(f)          offsetof(struct pvm_config, f)

_Static_assert(sizeof(enum pvm_log_level) == sizeof(int), "enum keys are stored as int");
_Static_assert(sizeof(enum pvm_log_target) == sizeof(int), "enum keys are stored as int");
_Static_assert(sizeof(enum pvm_disk_driver) == sizeof(int), "enum keys are stored as int");
_Static_assert(sizeof(enum pvm_scrub_mode) == sizeof(int), "enum keys are stored as int");

static int check_endpoint(const char *v, char *why, size_t n);
static int check_managed_system(const char *v, char *why, size_t n);
static int check_printable(const char *v, char *why, size_t n);
static int check_base64(const char *v, char *why, size_t n);
static int check_socket_path(const char *v, char *why, size_t n);
static int check_uid_list(const char *v, char *why, size_t n);
static int check_proc_units_factor(const char *v, char *why, size_t n);

static const char *const log_levels[] = {"debug", "info", "warning", "error", NULL};
static const char *const log_targets[] = {"stderr", "syslog", NULL};
static const char *const disk_drivers[] = {"localdisk", "ssp", NULL};
static const char *const scrub_modes[] = {"off", "dry-run", "on", NULL};

/* Enum keys store the index of the value: the order of values[] is the C enum's. */
static const struct pvm_config_key keys[] = {
        /* PowerVM endpoint and credentials */
        {
                .name = "powervm_endpoint",
                .type = PVM_CONFIG_STRING,
                .required = true,
                .meaning = "URL of the HMC or NovaLink REST API: http:// or https://, a "
                           "host and an optional port",
                .example = "\"https://hmc.example.com:12443\"",
                .offset = FIELD(endpoint),
                .check = check_endpoint,
        },
        {
                .name = "powervm_managed_system",
                .type = PVM_CONFIG_STRING,
                .meaning = "the managed system to use: its name, its MTMS "
                           "(<type>-<model>*<serial>) or its UUID; unset: the only one",
                .example = "\"8286-42A*21C1B6V\"",
                .offset = FIELD(managed_system),
                .check = check_managed_system,
        },
        {
                .name = "powervm_user",
                .type = PVM_CONFIG_STRING,
                .meaning = "user name for the REST API logon",
                .example = "\"hscroot\"",
                .offset = FIELD(user),
                .check = check_printable,
        },
        {
                .name = "powervm_password_file",
                .type = PVM_CONFIG_STRING,
                .abs_path = true,
                .meaning = "file holding the password (regular file owned by the daemon's "
                           "user, mode 0600 or stricter; one trailing newline is ignored)",
                .example = "\"/etc/powervmd/password\"",
                .offset = FIELD(password_file),
        },
        {
                .name = "powervm_password_encoded",
                .type = PVM_CONFIG_STRING,
                .secret = true,
                .meaning = "the password in base64: obfuscation only, not security; prefer "
                           "powervm_password_file",
                .example = "\"cGFzc3cwcmQ=\"",
                .offset = PVM_CONFIG_NO_FIELD,
                .check = check_base64,
        },
        {
                .name = "powervm_file_logon",
                .type = PVM_CONFIG_BOOL,
                .def = "false",
                .meaning = "NovaLink local logon: the server hands the token over in a file, "
                           "no password is needed",
                .example = "true",
                .offset = FIELD(file_logon),
        },
        {
                .name = "powervm_token_dir",
                .type = PVM_CONFIG_STRING,
                .def = "/run/powervmd",
                .abs_path = true,
                .meaning = "with powervm_file_logon, the token file the server names must lie "
                           "inside this directory",
                .example = "\"/var/lib/powervmd/tokens\"",
                .offset = FIELD(token_dir),
        },
        /* connection to the REST server */
        {
                .name = "powervm_ca_file",
                .type = PVM_CONFIG_STRING,
                .abs_path = true,
                .meaning = "PEM CA bundle that verifies the HMC or NovaLink certificate "
                           "(must exist and be readable); unset: the system's CA bundle",
                .example = "\"/etc/powervmd/hmc-ca.pem\"",
                .offset = FIELD(ca_file),
        },
        {
                .name = "powervm_tls_verify",
                .type = PVM_CONFIG_BOOL,
                .def = "true",
                .meaning = "verify the server's certificate; false turns verification off "
                           "(warned at every start; never in production)",
                .example = "false",
                .offset = FIELD(tls_verify),
        },
        {
                .name = "powervm_connect_timeout_s",
                .type = PVM_CONFIG_INT,
                .def = "10",
                .min = 1,
                .max = 600,
                .meaning = "longest wait for a connection to the REST server, in seconds",
                .example = "30",
                .offset = FIELD(connect_timeout_s),
        },
        {
                .name = "powervm_request_timeout_s",
                .type = PVM_CONFIG_INT,
                .def = "120",
                .min = 1,
                .max = 3600,
                .meaning = "longest a whole REST request may take, in seconds (event "
                           "long-polls excepted)",
                .example = "300",
                .offset = FIELD(request_timeout_s),
        },
        {
                .name = "powervm_connect_retry_s",
                .type = PVM_CONFIG_INT,
                .def = "300",
                .min = 0,
                .max = 86400,
                .meaning = "how long start-up retries an unreachable REST server (it may "
                           "still be booting), in seconds; 0: no retry",
                .example = "900",
                .offset = FIELD(connect_retry_s),
        },
        /* state and journal */
        {
                .name = "powervm_state_dir",
                .type = PVM_CONFIG_STRING,
                .def = "/var/lib/powervmd",
                .abs_path = true,
                .meaning = "directory of the journal (LMDB environment) and other state",
                .example = "\"/srv/powervmd\"",
                .offset = FIELD(state_dir),
        },
        {
                .name = "powervm_secret_key_file",
                .type = PVM_CONFIG_STRING,
                .def = "<powervm_state_dir>/secret.key",
                .derived_default = true,
                .abs_path = true,
                .meaning = "key that encrypts the secret params of queued operations (mode "
                           "0600)",
                .example = "\"/etc/powervmd/secret.key\"",
                .offset = FIELD(secret_key_file),
        },
        {
                .name = "powervm_journal_map_size_mb",
                .type = PVM_CONFIG_INT,
                .def = "64",
                .min = 1,
                .max = 1048576,
                .meaning = "initial size of the journal's memory map, in MiB",
                .example = "256",
                .offset = FIELD(journal_map_size_mb),
        },
        {
                .name = "powervm_journal_max_size_mb",
                .type = PVM_CONFIG_INT,
                .def = "4096",
                .min = 1,
                .max = 1048576,
                .meaning = "largest size the journal's map may grow to, in MiB (at least "
                           "powervm_journal_map_size_mb)",
                .example = "16384",
                .offset = FIELD(journal_max_size_mb),
        },
        {
                .name = "powervm_retention_hours",
                .type = PVM_CONFIG_INT,
                .def = "168",
                .min = 1,
                .max = 87600,
                .meaning = "how long finished operations are kept before they are purged, "
                           "in hours",
                .example = "720",
                .offset = FIELD(retention_hours),
        },
        /* local API */
        {
                .name = "powervm_api_socket",
                .type = PVM_CONFIG_STRING,
                .def = "/run/powervmd/powervmd.sock",
                .abs_path = true,
                .meaning = "Unix socket of the local API (created with mode 0660)",
                .example = "\"/run/powervmd/api.sock\"",
                .offset = FIELD(api_socket),
                .check = check_socket_path,
        },
        {
                .name = "powervm_api_allowed_uids",
                .type = PVM_CONFIG_STRING,
                .def = "",
                .allow_empty = true,
                .meaning = "comma-separated user names or numeric uids allowed to use the API "
                           "besides root and the daemon's own user (nova-compute's user)",
                .example = "\"nova\"",
                .offset = PVM_CONFIG_NO_FIELD, /* resolved into api_allowed_uids */
                .check = check_uid_list,
        },
        {
                .name = "powervm_api_max_body_kb",
                .type = PVM_CONFIG_INT,
                .def = "1024",
                .min = 1,
                .max = 65536,
                .meaning = "largest request body the API accepts, in KiB",
                .example = "4096",
                .offset = FIELD(api_max_body_kb),
        },
        /* engine */
        {
                .name = "powervm_workers",
                .type = PVM_CONFIG_INT,
                .def = "8",
                .min = 1,
                .max = 256,
                .meaning = "worker threads running operation steps",
                .example = "16",
                .offset = FIELD(workers),
        },
        {
                .name = "powervm_retry_base_ms",
                .type = PVM_CONFIG_INT,
                .def = "1000",
                .min = 10,
                .max = 600000,
                .meaning = "first delay of the exponential back-off of transient failures, "
                           "in ms",
                .example = "2000",
                .offset = FIELD(retry_base_ms),
        },
        {
                .name = "powervm_retry_max_ms",
                .type = PVM_CONFIG_INT,
                .def = "60000",
                .min = 100,
                .max = 3600000,
                .meaning = "longest delay of the back-off of transient failures, in ms (at "
                           "least powervm_retry_base_ms)",
                .example = "300000",
                .offset = FIELD(retry_max_ms),
        },
        {
                .name = "powervm_job_poll_min_ms",
                .type = PVM_CONFIG_INT,
                .def = "500",
                .min = 50,
                .max = 60000,
                .meaning = "shortest delay before a REST job is polled, in ms",
                .example = "1000",
                .offset = FIELD(job_poll_min_ms),
        },
        {
                .name = "powervm_job_poll_max_ms",
                .type = PVM_CONFIG_INT,
                .def = "30000",
                .min = 100,
                .max = 600000,
                .meaning = "longest gap between two polls of a REST job, in ms (at least "
                           "powervm_job_poll_min_ms)",
                .example = "10000",
                .offset = FIELD(job_poll_max_ms),
        },
        {
                .name = "powervm_shutdown_grace_s",
                .type = PVM_CONFIG_INT,
                .def = "30",
                .min = 0,
                .max = 3600,
                .meaning = "on SIGTERM, how long running steps may take to finish, in seconds",
                .example = "120",
                .offset = FIELD(shutdown_grace_s),
        },
        /* nova */
        {
                .name = "powervm_proc_units_factor",
                .type = PVM_CONFIG_STRING,
                .def = "0.1",
                .meaning = "processing units per vCPU, a decimal from 0.05 to 1: the host's "
                           "vCPUs for nova are its configurable processing units divided "
                           "by it (as nova-powervm's proc_units_factor)",
                .example = "\"0.2\"",
                .offset = FIELD(proc_units_factor),
                .check = check_proc_units_factor,
        },
        {
                .name = "powervm_host_sample_s",
                .type = PVM_CONFIG_INT,
                .def = "30",
                .min = 1,
                .max = 3600,
                .meaning = "how often the host's disk, CPU statistics and uptime (GET "
                           "/v1/host) are read from PowerVM, in seconds",
                .example = "60",
                .offset = FIELD(host_sample_s),
        },
        /* storage and network */
        {
                .name = "powervm_disk_driver",
                .type = PVM_CONFIG_ENUM,
                .def = "localdisk",
                .values = disk_drivers,
                .meaning = "where boot disks and the image cache live: localdisk (a VIOS "
                           "volume group) or ssp (a shared storage pool, linked clones)",
                .example = "\"ssp\"",
                .offset = FIELD(disk_driver),
        },
        {
                .name = "powervm_volume_group_name",
                .type = PVM_CONFIG_STRING,
                .def = "rootvg",
                .meaning = "localdisk: the VIOS volume group that holds boot disks",
                .example = "\"datavg\"",
                .offset = FIELD(volume_group_name),
                .check = check_printable,
        },
        {
                .name = "powervm_volume_group_vios_name",
                .type = PVM_CONFIG_STRING,
                .meaning = "localdisk: the VIOS whose volume group is used; unset: the "
                           "first VIOS of the managed system that has the group",
                .example = "\"vios1\"",
                .offset = FIELD(volume_group_vios_name),
                .check = check_printable,
        },
        {
                .name = "powervm_cluster_name",
                .type = PVM_CONFIG_STRING,
                .meaning = "ssp: the shared storage pool (its name); unset: the only pool "
                           "the managed system's VIOSes belong to",
                .example = "\"ssp1\"",
                .offset = FIELD(cluster_name),
                .check = check_printable,
        },
        {
                .name = "powervm_image_marker_timeout_s",
                .type = PVM_CONFIG_INT,
                .def = "1800",
                .min = 5,
                .max = 86400,
                .meaning = "ssp: a marker logical unit of another host's image upload "
                           "seen for this long is taken as left by a dead uploader and "
                           "removed, in seconds",
                .example = "600",
                .offset = FIELD(image_marker_timeout_s),
        },
        {
                .name = "powervm_use_rmc_mgmt_vif",
                .type = PVM_CONFIG_BOOL,
                .def = "true",
                .meaning = "spawn gives each partition an RMC management network adapter "
                           "(virtual switch MGMTSWITCH, VLAN 4094)",
                .example = "false",
                .offset = FIELD(use_rmc_mgmt_vif),
        },
        {
                .name = "powervm_default_vswitch",
                .type = PVM_CONFIG_STRING,
                .def = "ETHERNET0(Default)",
                .meaning = "virtual switch of a VIF whose network_info names none",
                .example = "\"ETHERNET1\"",
                .offset = FIELD(default_vswitch),
                .check = check_printable,
        },
        {
                .name = "powervm_scrub",
                .type = PVM_CONFIG_ENUM,
                .def = "dry-run",
                .values = scrub_modes,
                .meaning = "start-up scrub of orphaned VIOS mappings, disks and media: "
                           "off, dry-run (log and count only) or on (remove them)",
                .example = "\"on\"",
                .offset = FIELD(scrub),
        },
        {
                .name = "powervm_enable_test_ops",
                .type = PVM_CONFIG_BOOL,
                .def = "false",
                .meaning = "accept the test operation type test_steps (tests and "
                           "scripts/stack only; never in production)",
                .example = "true",
                .offset = FIELD(enable_test_ops),
        },
        /* logging */
        {
                .name = "powervm_log_level",
                .type = PVM_CONFIG_ENUM,
                .def = "info",
                .values = log_levels,
                .meaning = "least severe level that is logged",
                .example = "\"debug\"",
                .offset = FIELD(log_level),
        },
        {
                .name = "powervm_log_target",
                .type = PVM_CONFIG_ENUM,
                .def = "stderr",
                .values = log_targets,
                .meaning = "where log lines go: stderr (the journal under systemd) or syslog",
                .example = "\"syslog\"",
                .offset = FIELD(log_target),
        },
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

const struct pvm_config_key *pvm_config_keys(size_t *n)
{
	if (n)
		*n = NKEYS;
	return keys;
}

const struct pvm_config_key *pvm_config_key_find(const char *name)
{
	for (size_t i = 0; name && i < NKEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

const char *pvm_config_type_name(enum pvm_config_type type)
{
	switch (type) {
	case PVM_CONFIG_STRING:
		return "string";
	case PVM_CONFIG_INT:
		return "integer";
	case PVM_CONFIG_ENUM:
		return "enum";
	case PVM_CONFIG_BOOL:
		return "boolean";
	}
	return "?";
}

/* ---- value checks (they never echo the value: the reason is shown next to the key) ---- */

static int has_ctrl_or_space(const char *s)
{
	for (; *s; s++)
		if (iscntrl((unsigned char)*s) || *s == ' ')
			return 1;
	return 0;
}

/* A decimal from 0.05 to 1 ("0.1", "1", ".5"): digits and one point, nothing else. */
static int check_proc_units_factor(const char *v, char *why, size_t n)
{
	size_t digits = 0, points = 0;
	for (const char *p = v; *p; p++) {
		if (*p >= '0' && *p <= '9')
			digits++;
		else if (*p == '.')
			points++;
		else
			digits = 1000; /* any other character */
	}
	double d = digits && digits < 1000 && points <= 1 ? strtod(v, NULL) : -1;
	if (!(d >= 0.05 && d <= 1.0)) {
		snprintf(why, n, "must be a decimal from 0.05 to 1 (e.g. \"0.1\")");
		return -1;
	}
	return 0;
}

static int check_printable(const char *v, char *why, size_t n)
{
	for (const char *p = v; *p; p++)
		if (iscntrl((unsigned char)*p)) {
			snprintf(why, n, "must not contain control characters");
			return -1;
		}
	return 0;
}

static int is_host_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

/* http(s)://host[:port][/path]; host a name, an IPv4 address or a [bracketed] IPv6 one. */
static int check_endpoint(const char *v, char *why, size_t n)
{
	const char *p;
	if (strncasecmp(v, "https://", 8) == 0) {
		p = v + 8;
	} else if (strncasecmp(v, "http://", 7) == 0) {
		p = v + 7;
	} else {
		snprintf(why, n,
		         "must be an http:// or https:// URL, such as "
		         "\"https://hmc.example.com:12443\"");
		return -1;
	}
	if (has_ctrl_or_space(v)) {
		snprintf(why, n, "must not contain spaces or control characters");
		return -1;
	}
	size_t auth_len = strcspn(p, "/?#");
	if (memchr(p, '@', auth_len)) {
		snprintf(why, n,
		         "must not contain a user or password; use powervm_user and "
		         "powervm_password_file");
		return -1;
	}
	const char *host = p;
	size_t host_len;
	if (*p == '[') {
		const char *end = memchr(p, ']', auth_len);
		if (!end || end == p + 1) {
			snprintf(why, n, "has a malformed [IPv6] host");
			return -1;
		}
		for (const char *q = p + 1; q < end; q++)
			if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.') {
				snprintf(why, n, "has a malformed [IPv6] host");
				return -1;
			}
		host_len = (size_t)(end - p) + 1;
		p = end + 1;
	} else {
		while (is_host_char(*p))
			p++;
		host_len = (size_t)(p - host);
	}
	if (host_len == 0) {
		snprintf(why, n, "has no host");
		return -1;
	}
	if (*p == ':') {
		p++;
		long port = 0;
		const char *digits = p;
		while (isdigit((unsigned char)*p) && port <= 65535)
			port = port * 10 + (*p++ - '0');
		if (p == digits || port < 1 || port > 65535 || (*p && !strchr("/?#", *p))) {
			snprintf(why, n, "has a bad port (1 to 65535)");
			return -1;
		}
	}
	if (strpbrk(p, "?#")) {
		snprintf(why, n, "must not have a query or fragment");
		return -1;
	}
	if (*p != '\0' && *p != '/') {
		snprintf(why, n, "has a bad character in its host or port");
		return -1;
	}
	return 0;
}

static int all_alnum(const char *s, size_t len)
{
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]))
			return 0;
	return 1;
}

/* A name, an MTMS (<type>-<model>*<serial>) or a UUID. The '*' is what marks an MTMS, so a
 * value with one must be a well-formed MTMS: a typo there would otherwise pass as a name. */
static int check_managed_system(const char *v, char *why, size_t n)
{
	if (check_printable(v, why, n) != 0)
		return -1;
	const char *star = strchr(v, '*');
	if (!star)
		return 0;
	const char *dash = memchr(v, '-', (size_t)(star - v));
	if (!dash || !all_alnum(v, (size_t)(dash - v)) ||
	    !all_alnum(dash + 1, (size_t)(star - dash - 1)) ||
	    !all_alnum(star + 1, strlen(star + 1))) {
		snprintf(why, n,
		         "is not a valid MTMS: expected <type>-<model>*<serial>, such as "
		         "\"8286-42A*21C1B6V\"");
		return -1;
	}
	return 0;
}

/* A Unix socket path must fit sun_path (NUL included) and name a file, not a directory. */
static int check_socket_path(const char *v, char *why, size_t n)
{
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
	if (check_printable(v, why, n) != 0)
		return -1;
	if (strlen(v) > max) {
		snprintf(why, n, "is longer than %zu bytes, the limit of a Unix socket path", max);
		return -1;
	}
	if (v[strlen(v) - 1] == '/') {
		snprintf(why, n, "must name the socket file, not a directory");
		return -1;
	}
	return 0;
}

#define BLANKS " \t"

/* Where a comma-separated list starts: NULL for an empty or all-blank list (no entries). */
static const char *list_start(const char *v)
{
	return v[strspn(v, BLANKS)] ? v : NULL;
}

/* The next entry of a list (from list_start()), blanks around it trimmed: *start and *len
 * (0 for an empty entry, as in "a,,b" or "a,"). Returns 0 at the end of the list. */
static int next_entry(const char **p, const char **start, size_t *len)
{
	const char *s = *p;
	if (!s)
		return 0;
	const char *comma = strchr(s, ',');
	const char *end = comma ? comma : s + strlen(s);
	s += strspn(s, BLANKS);
	const char *e = end;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*start = s;
	*len = s < e ? (size_t)(e - s) : 0;
	*p = comma ? comma + 1 : NULL;
	return 1;
}

/* A numeric uid: only digits, at most 4294967294 ((uid_t)-1 is no uid). Returns 1 and *uid,
 * 0 when the entry is not all digits (a name), -1 when it is out of range. */
static int parse_uid(const char *s, size_t len, unsigned *uid)
{
	if (len == 0 || strspn(s, "0123456789") < len)
		return 0;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v >= UINT32_MAX)
			return -1;
	}
	*uid = (unsigned)v;
	return 1;
}

/* The syntax of powervm_api_allowed_uids; the names are resolved in finish(). */
static int check_uid_list(const char *v, char *why, size_t n)
{
	const char *p = list_start(v), *e;
	size_t len;
	for (int i = 1; next_entry(&p, &e, &len); i++) {
		unsigned uid;
		if (len == 0) {
			snprintf(why, n,
			         "entry %d is empty (expected user names or uids separated "
			         "by commas, such as \"nova,1001\")",
			         i);
			return -1;
		}
		if (parse_uid(e, len, &uid) < 0) {
			snprintf(why, n, "uid %.*s is out of range (0 to 4294967294)",
			         (int)(len > 20 ? 20 : len), e);
			return -1;
		}
		for (size_t j = 0; j < len; j++)
			if (iscntrl((unsigned char)e[j]) || e[j] == ' ' || e[j] == '\t' ||
			    e[j] == ':') {
				snprintf(why, n,
				         "entry %d is not a user name or uid (no blanks, colons or "
				         "control characters inside an entry)",
				         i);
				return -1;
			}
		if (len > 256) {
			snprintf(why, n, "entry %d is longer than 256 bytes", i);
			return -1;
		}
	}
	return 0;
}

/* Decodes standard base64 (padding optional, no whitespace). Returns a NUL-terminated heap
 * buffer and its length, or NULL when s is not base64 (*oom set when memory ran out). */
static char *base64_decode(const char *s, size_t *out_len, int *oom)
{
	static const char alphabet[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t len = strlen(s), pad = 0;
	*oom = 0;
	if (len % 4 == 0) {
		while (pad < 2 && len > pad && s[len - 1 - pad] == '=')
			pad++;
	}
	size_t data = len - pad;
	if (data == 0 || data % 4 == 1)
		return NULL;
	char *out = malloc(data * 3 / 4 + 1);
	if (!out) {
		*oom = 1;
		return NULL;
	}
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;
	for (size_t i = 0; i < data; i++) {
		const char *c = s[i] ? strchr(alphabet, s[i]) : NULL;
		if (!c) {
			explicit_bzero(out, data * 3 / 4 + 1);
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (uint32_t)(c - alphabet);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	*out_len = o;
	return out;
}

static int check_base64(const char *v, char *why, size_t n)
{
	size_t len = 0;
	int oom = 0;
	char *pw = base64_decode(v, &len, &oom);
	if (!pw) {
		if (oom)
			return 0; /* decode_password() meets it again and reports it */
		snprintf(why, n, "is not valid base64 (value not shown)");
		return -1;
	}
	explicit_bzero(pw, len);
	free(pw);
	return 0;
}

/* Strips one trailing "\n" (or "\r\n"): what `echo` and editors add. */
static void strip_newline(char *s, size_t *len)
{
	if (*len == 0 || s[*len - 1] != '\n')
		return;
	s[--*len] = '\0';
	if (*len > 0 && s[*len - 1] == '\r')
		s[--*len] = '\0';
}

/* ---- the loader ---- */

struct loader {
	struct pvm_config_problems list; /* collected problems */
	int oom;
	const char *main_path;
	char *inc_dir; /* the main file's directory: where @include paths start */
	config_t lc;   /* libconfig state, alive until the end of the load */
	struct pvm_config *cfg;
	/* per key, in table order */
	const config_setting_t *seen[NKEYS]; /* the setting, when the file has it */
	bool bad[NKEYS];                     /* it had a problem: skip rules that use it */
};

static void copy_trunc(char *dst, size_t n, const char *src)
{
	size_t len = strlen(src);
	if (len >= n)
		len = n - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

/* Appends a problem to pl. Returns 0, or -1 when memory ran out (nothing appended). */
static int vadd_problem(struct pvm_config_problems *pl, const char *file, int line, const char *key,
                        const char *fmt, va_list ap)
{
	if (pl->count % 16 == 0) {
		struct pvm_config_problem *n =
		        realloc(pl->items, (pl->count + 16) * sizeof(*pl->items));
		if (!n)
			return -1;
		pl->items = n;
	}
	struct pvm_config_problem *p = &pl->items[pl->count++];
	memset(p, 0, sizeof(*p));
	copy_trunc(p->file, sizeof(p->file), file ? file : "");
	p->line = line;
	copy_trunc(p->key, sizeof(p->key), key ? key : "");
	vsnprintf(p->message, sizeof(p->message), fmt, ap);
	return 0;
}

static int add_problem(struct pvm_config_problems *pl, const char *file, int line, const char *key,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int add_problem(struct pvm_config_problems *pl, const char *file, int line, const char *key,
                       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vadd_problem(pl, file, line, key, fmt, ap);
	va_end(ap);
	return rc;
}

static void problem(struct loader *L, const char *file, int line, const char *key, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));

static void problem(struct loader *L, const char *file, int line, const char *key, const char *fmt,
                    ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (vadd_problem(&L->list, file, line, key, fmt, ap) != 0)
		L->oom = 1;
	va_end(ap);
}

/* libconfig 1.5 joins include_dir and the @include path even when that is absolute; a
 * relative path is the one form every libconfig version reads the same way. */
static char *include_path(const struct loader *L, const char *name)
{
	char *p = NULL;
	if (strcmp(L->inc_dir, ".") == 0)
		p = strdup(name);
	else if (asprintf(&p, "%s%s%s", L->inc_dir,
	                  L->inc_dir[strlen(L->inc_dir) - 1] == '/' ? "" : "/", name) < 0)
		p = NULL;
	return p;
}

/* The file a setting or an error is in, as the user will recognise it: the main path as
 * given, an included file joined to the include directory. Returns a heap string. */
static char *source_file(struct loader *L, const char *file)
{
	char *p;
	if (!file || strcmp(file, L->main_path) == 0 || file[0] == '/')
		p = strdup(file ? file : L->main_path);
	else
		p = include_path(L, file);
	if (!p)
		L->oom = 1;
	return p;
}

static void setting_problem(struct loader *L, const config_setting_t *s, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void setting_problem(struct loader *L, const config_setting_t *s, const char *fmt, ...)
{
	char msg[sizeof(((struct pvm_config_problem *)0)->message)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!s) { /* a rule about keys the file does not set */
		problem(L, L->main_path, 0, "", "%s", msg);
		return;
	}
	char *file = source_file(L, config_setting_source_file(s));
	problem(L, file ? file : L->main_path, (int)config_setting_source_line(s),
	        config_setting_name(s), "%s", msg);
	free(file);
}

/* Pass 1: every @include (resolved from the main file's directory) must name a regular
 * file. Line-based, as libconfig's own scanner: an @include starts its line. */
static void prescan(struct loader *L, const char *display, const char *path, int depth)
{
	char *text = NULL;
	if (depth > MAX_INCLUDE_DEPTH || pvm_read_file(path, MAX_CONFIG_FILE, &text, NULL) != 0)
		return; /* libconfig reports both */
	int line = 0;
	for (char *p = text; p && *p;) {
		line++;
		char *eol = strchr(p, '\n');
		if (eol)
			*eol = '\0';
		char *q = p + strspn(p, " \t");
		p = eol ? eol + 1 : NULL;
		if (strncmp(q, "@include", 8) != 0)
			continue;
		q += 8;
		q += strspn(q, " \t");
		char *end = *q == '"' ? strchr(q + 1, '"') : NULL;
		if (!end)
			continue; /* libconfig reports the syntax */
		*end = '\0';
		const char *name = q + 1;
		if (name[0] == '/') {
			problem(L, display, line, "",
			        "@include \"%s\": write include paths relative to the main file's "
			        "directory (%s)",
			        name, L->inc_dir);
			continue;
		}
		char *inc = include_path(L, name);
		if (!inc) {
			L->oom = 1;
			break;
		}
		struct stat st;
		if (stat(inc, &st) != 0)
			problem(L, display, line, "", "@include \"%s\": cannot open %s: %s", name,
			        inc, strerror(errno));
		else if (!S_ISREG(st.st_mode))
			problem(L, display, line, "", "@include \"%s\": %s is not a regular file",
			        name, inc);
		else
			prescan(L, inc, inc, depth + 1);
		free(inc);
	}
	free(text);
}

/* Returns a heap copy of line (1-based) of file, or NULL when it cannot be read. */
static char *source_line(const char *file, int line)
{
	char *text = NULL, *copy = NULL;
	if (!file || line < 1 || pvm_read_file(file, MAX_CONFIG_FILE, &text, NULL) != 0)
		return NULL;
	char *p = text;
	for (int i = 1; p && i < line; i++) {
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	if (p)
		copy = strndup(p, strcspn(p, "\n"));
	free(text);
	return copy;
}

/* libconfig 1.5 silently wraps an integer without the L suffix to 32 bits: read the
 * number back from the source line so that 4294967297 is out of range, not 1. Returns
 * the value written in the file, or fallback when it cannot be found there. */
static int64_t source_int(struct loader *L, const config_setting_t *s, int64_t fallback)
{
	char *file = source_file(L, config_setting_source_file(s));
	char *p = source_line(file, (int)config_setting_source_line(s));
	int64_t v = fallback;
	const char *name = config_setting_name(s);
	size_t nl = strlen(name);
	for (char *k = p; k && (k = strstr(k, name)) != NULL; k++) {
		if (k > p && (isalnum((unsigned char)k[-1]) || k[-1] == '_' || k[-1] == '-'))
			continue;
		char *q = k + nl;
		q += strspn(q, " \t");
		if (*q != '=' && *q != ':')
			continue;
		q++;
		q += strspn(q, " \t");
		const char *digits = q + (*q == '-' || *q == '+');
		int base = digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X') ? 16 : 10;
		errno = 0;
		char *end;
		long long parsed = strtoll(q, &end, base);
		if (end == q)
			break;
		if (errno == ERANGE)
			parsed = parsed < 0 ? INT64_MIN : INT64_MAX;
		/* Trust the text only where libconfig cannot hold the value. */
		if (parsed > INT32_MAX || parsed < INT32_MIN)
			v = parsed;
		break;
	}
	free(p);
	free(file);
	return v;
}

/* libconfig's "duplicate setting name" does not say which: the name is the first word of
 * the line it points at. Copies it into key (size n), or leaves key empty. */
static void duplicate_name(const char *file, int line, char *key, size_t n)
{
	char *text = source_line(file, line);
	key[0] = '\0';
	if (!text)
		return;
	const char *p = text + strspn(text, " \t");
	size_t len = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                       "0123456789_-*");
	if (len > 0 && len < n && !isdigit((unsigned char)p[0]) && p[0] != '-') {
		memcpy(key, p, len);
		key[len] = '\0';
	}
	free(text);
}

static const char *lc_type_name(int type)
{
	switch (type) {
	case CONFIG_TYPE_GROUP:
		return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return "an integer";
	case CONFIG_TYPE_FLOAT:
		return "a floating-point number";
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_ARRAY:
		return "an array";
	case CONFIG_TYPE_LIST:
		return "a list";
	}
	return "an unknown type";
}

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return SIZE_MAX;
	size_t row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static void unknown_key(struct loader *L, const config_setting_t *s)
{
	const char *name = config_setting_name(s);
	const char *best = NULL;
	size_t best_d = SIZE_MAX;
	for (size_t i = 0; i < NKEYS; i++) {
		size_t d = edit_distance(name, keys[i].name);
		size_t d2 = edit_distance(name, keys[i].name + strlen("powervm_"));
		if (d2 < d)
			d = d2;
		if (d < best_d) {
			best_d = d;
			best = keys[i].name;
		}
	}
	if (best && best_d <= 3)
		setting_problem(L, s, "unknown key; did you mean %s?", best);
	else if (strncmp(name, "powervm_", 8) != 0)
		setting_problem(L, s, "unknown key; every key starts with powervm_");
	else
		setting_problem(L, s, "unknown key");
}

static void *field(struct pvm_config *cfg, const struct pvm_config_key *k)
{
	return (char *)cfg + k->offset;
}

static int store_string(struct loader *L, const struct pvm_config_key *k, const char *v)
{
	if (k->offset == PVM_CONFIG_NO_FIELD)
		return 0;
	char **slot = field(L->cfg, k);
	free(*slot);
	*slot = strdup(v);
	if (!*slot) {
		L->oom = 1;
		return -1;
	}
	return 0;
}

static void store_int(struct loader *L, const struct pvm_config_key *k, int64_t v)
{
	if (k->type == PVM_CONFIG_ENUM) {
		int iv = (int)v;
		memcpy(field(L->cfg, k), &iv, sizeof(iv));
	} else {
		memcpy(field(L->cfg, k), &v, sizeof(v));
	}
}

static void store_bool(struct loader *L, const struct pvm_config_key *k, bool v)
{
	memcpy(field(L->cfg, k), &v, sizeof(v));
}

static int enum_index(const struct pvm_config_key *k, const char *v)
{
	for (int i = 0; k->values[i]; i++)
		if (strcmp(k->values[i], v) == 0)
			return i;
	return -1;
}

/* Pass 3: one top-level setting. Returns with L->bad[i] set when it had a problem. */
static void check_setting(struct loader *L, const config_setting_t *s)
{
	const struct pvm_config_key *k = pvm_config_key_find(config_setting_name(s));
	if (!k) {
		unknown_key(L, s);
		return;
	}
	size_t i = (size_t)(k - keys);
	L->seen[i] = s;
	L->bad[i] = true;
	int t = config_setting_type(s);
	if (k->type == PVM_CONFIG_INT) {
		if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
			setting_problem(L, s, "wrong type: expected an integer, got %s",
			                lc_type_name(t));
			return;
		}
		int64_t v = config_setting_get_int64(s);
		if (t == CONFIG_TYPE_INT)
			v = source_int(L, s, v);
		if (v < k->min || v > k->max) {
			setting_problem(L, s,
			                "out of range: %" PRId64 " is not in %" PRId64 "..%" PRId64,
			                v, k->min, k->max);
			return;
		}
		store_int(L, k, v);
		L->bad[i] = false;
		return;
	}
	if (k->type == PVM_CONFIG_BOOL) {
		if (t != CONFIG_TYPE_BOOL) {
			setting_problem(L, s,
			                "wrong type: expected a boolean (true or false, unquoted), "
			                "got %s",
			                lc_type_name(t));
			return;
		}
		store_bool(L, k, config_setting_get_bool(s) != 0);
		L->bad[i] = false;
		return;
	}
	if (t != CONFIG_TYPE_STRING) {
		setting_problem(L, s, "wrong type: expected a string, got %s", lc_type_name(t));
		return;
	}
	const char *v = config_setting_get_string(s);
	char why[200];
	if (!v || (!*v && !k->allow_empty)) {
		setting_problem(L, s, "empty value; remove the line to use the default");
		return;
	}
	if (strlen(v) > MAX_STRING_VALUE) {
		setting_problem(L, s, "value is longer than %d bytes", MAX_STRING_VALUE);
		return;
	}
	if (k->type == PVM_CONFIG_ENUM) {
		int idx = enum_index(k, v);
		if (idx < 0) {
			char list[160] = "";
			for (int j = 0; k->values[j]; j++) {
				size_t used = strlen(list);
				snprintf(list + used, sizeof(list) - used, "%s%s", j ? ", " : "",
				         k->values[j]);
			}
			if (k->secret)
				setting_problem(L, s, "bad value: expected one of %s", list);
			else
				setting_problem(L, s, "bad value \"%.40s\": expected one of %s", v,
				                list);
			return;
		}
		store_int(L, k, idx);
		L->bad[i] = false;
		return;
	}
	if (k->abs_path && v[0] != '/') {
		if (k->secret)
			setting_problem(L, s, "must be an absolute path (starting with /)");
		else
			setting_problem(L, s,
			                "must be an absolute path (starting with /), not "
			                "\"%.100s\"",
			                v);
		return;
	}
	if (k->abs_path && strlen(v) >= PATH_MAX) {
		setting_problem(L, s, "path is longer than %d bytes", PATH_MAX - 1);
		return;
	}
	if (k->check && k->check(v, why, sizeof(why)) != 0) {
		setting_problem(L, s, "%s", why);
		return;
	}
	if (store_string(L, k, v) == 0)
		L->bad[i] = false;
}

static size_t key_index(const char *name)
{
	return (size_t)(pvm_config_key_find(name) - keys);
}

/* Reads the password file (already known to be an absolute path) into cfg->password. */
static void read_password_file(struct loader *L, const config_setting_t *s, const char *path)
{
	char why[200];
	int rc = pvm_check_private_file(path, (unsigned)geteuid(), why, sizeof(why));
	if (rc == -ENOENT) {
		setting_problem(L, s, "%s does not exist", path);
		return;
	}
	if (rc != 0) {
		setting_problem(L, s, "%s", why);
		return;
	}
	char *text = NULL;
	size_t len = 0;
	rc = pvm_read_file(path, MAX_PASSWORD_FILE, &text, &len);
	if (rc == PVM_ETOOBIG) {
		setting_problem(L, s, "%s is larger than %d bytes", path, MAX_PASSWORD_FILE);
		return;
	}
	if (rc == PVM_ENOMEM) {
		L->oom = 1;
		return;
	}
	if (rc != 0) {
		setting_problem(L, s, "cannot read %s: %s", path, pvm_strerror(rc));
		return;
	}
	size_t alloc_len = len;
	strip_newline(text, &len);
	if (len == 0)
		setting_problem(L, s, "%s is empty", path);
	else if (strlen(text) != len)
		setting_problem(L, s, "%s contains a NUL byte", path);
	else {
		L->cfg->password = text;
		return;
	}
	explicit_bzero(text, alloc_len);
	free(text);
}

static void decode_password(struct loader *L, const config_setting_t *s)
{
	const char *v = config_setting_get_string(s);
	size_t len = 0;
	int oom = 0;
	char *pw = base64_decode(v, &len, &oom);
	if (!pw) {
		if (oom)
			L->oom = 1;
		else /* check_base64() let it through: cannot happen */
			setting_problem(L, s, "is not valid base64 (value not shown)");
		return;
	}
	size_t alloc_len = len;
	strip_newline(pw, &len);
	if (len == 0)
		setting_problem(L, s, "decodes to an empty password");
	else if (strlen(pw) != len)
		setting_problem(L, s, "decodes to a password containing a NUL byte");
	else {
		L->cfg->password = pw;
		return;
	}
	explicit_bzero(pw, alloc_len);
	free(pw);
}

/* Rule: the integer key hi_name must be at least lo_name. The problem points at the setting
 * the operator wrote: hi, or lo when hi is the default. */
static void check_at_least(struct loader *L, const char *lo_name, const char *hi_name)
{
	size_t lo = key_index(lo_name), hi = key_index(hi_name);
	if (L->bad[lo] || L->bad[hi])
		return;
	int64_t vlo, vhi;
	memcpy(&vlo, field(L->cfg, &keys[lo]), sizeof(vlo));
	memcpy(&vhi, field(L->cfg, &keys[hi]), sizeof(vhi));
	if (vhi >= vlo)
		return;
	const config_setting_t *at = L->seen[hi] ? L->seen[hi] : L->seen[lo];
	setting_problem(L, at, "%s (%" PRId64 "%s) must be at least %s (%" PRId64 ")", hi_name, vhi,
	                L->seen[hi] ? "" : ", the default", lo_name, vlo);
}

/* powervm_ca_file must be a readable regular file (its content is curl's to judge). */
static void check_ca_file(struct loader *L, const config_setting_t *s, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			setting_problem(L, s, "%s does not exist", path);
		else
			setting_problem(L, s, "cannot read %s: %s", path, strerror(errno));
		return;
	}
	struct stat st;
	if (fstat(fd, &st) != 0)
		setting_problem(L, s, "cannot read %s: %s", path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		setting_problem(L, s, "%s is not a regular file", path);
	close(fd);
}

/* Looks name up with getpwnam_r. Returns 0 and *uid, -ENOENT when there is no such user,
 * or another negative errno. */
static int lookup_user(const char *name, unsigned *uid)
{
	long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t size = hint > 0 ? (size_t)hint : 16384;
	for (;;) {
		char *buf = malloc(size);
		if (!buf)
			return -ENOMEM;
		struct passwd pw, *res = NULL;
		int rc = getpwnam_r(name, &pw, buf, size, &res);
		if (rc == 0 && res)
			*uid = (unsigned)res->pw_uid;
		free(buf);
		if (rc == ERANGE && size < (1u << 20)) {
			size *= 2;
			continue;
		}
		if (rc == 0)
			return res ? 0 : -ENOENT;
		/* getpwnam_r(3): these may also mean "not found". */
		if (rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM)
			return -ENOENT;
		return -rc;
	}
}

/* Resolves powervm_api_allowed_uids (its syntax already checked) into cfg->api_allowed_uids:
 * one problem per name that does not resolve. */
static void resolve_allowed_uids(struct loader *L, const config_setting_t *s, const char *v)
{
	struct pvm_config *cfg = L->cfg;
	const char *p = list_start(v), *e;
	size_t len;
	while (next_entry(&p, &e, &len)) {
		unsigned uid;
		int rc = parse_uid(e, len, &uid);
		if (rc < 0 || len == 0)
			continue; /* check_uid_list() refused it already */
		if (rc == 0) {
			char *name = strndup(e, len);
			if (!name) {
				L->oom = 1;
				return;
			}
			rc = lookup_user(name, &uid);
			if (rc == -ENOENT)
				setting_problem(L, s, "unknown user \"%.64s\" (no such user)",
				                name);
			else if (rc == -ENOMEM)
				L->oom = 1;
			else if (rc != 0)
				setting_problem(L, s, "cannot look up user \"%.64s\": %s", name,
				                strerror(-rc));
			free(name);
			if (rc != 0)
				continue;
		}
		bool dup = false;
		for (size_t j = 0; j < cfg->n_api_allowed_uids; j++)
			dup = dup || cfg->api_allowed_uids[j] == uid;
		if (dup)
			continue;
		unsigned *n =
		        realloc(cfg->api_allowed_uids, (cfg->n_api_allowed_uids + 1) * sizeof(*n));
		if (!n) {
			L->oom = 1;
			return;
		}
		cfg->api_allowed_uids = n;
		cfg->api_allowed_uids[cfg->n_api_allowed_uids++] = uid;
	}
}

/* Pass 4: required keys, defaults, and the rules between keys. */
static void finish(struct loader *L)
{
	struct pvm_config *cfg = L->cfg;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct pvm_config_key *k = &keys[i];
		if (L->seen[i])
			continue;
		if (k->required)
			problem(L, L->main_path, 0, k->name,
			        "required key is missing (example: %s = %s;)", k->name, k->example);
		if (!k->def || k->derived_default)
			continue;
		if (k->type == PVM_CONFIG_STRING)
			store_string(L, k, k->def);
		else if (k->type == PVM_CONFIG_INT)
			store_int(L, k, strtoll(k->def, NULL, 10));
		else if (k->type == PVM_CONFIG_BOOL)
			store_bool(L, k, strcmp(k->def, "true") == 0);
		else
			store_int(L, k, enum_index(k, k->def));
	}

	size_t sd = key_index("powervm_state_dir"), sk = key_index("powervm_secret_key_file");
	if (!L->seen[sk] && !L->bad[sd] && cfg->state_dir) {
		const char *dir = cfg->state_dir;
		size_t dl = strlen(dir);
		if (asprintf(&cfg->secret_key_file, "%s%ssecret.key", dir,
		             dl && dir[dl - 1] == '/' ? "" : "/") < 0) {
			cfg->secret_key_file = NULL;
			L->oom = 1;
		}
	}

	check_at_least(L, "powervm_journal_map_size_mb", "powervm_journal_max_size_mb");
	check_at_least(L, "powervm_retry_base_ms", "powervm_retry_max_ms");
	check_at_least(L, "powervm_job_poll_min_ms", "powervm_job_poll_max_ms");

	size_t ica = key_index("powervm_ca_file");
	if (L->seen[ica] && !L->bad[ica])
		check_ca_file(L, L->seen[ica], cfg->ca_file);

	size_t iau = key_index("powervm_api_allowed_uids");
	if (L->seen[iau] && !L->bad[iau])
		resolve_allowed_uids(L, L->seen[iau], config_setting_get_string(L->seen[iau]));

	size_t ipf = key_index("powervm_password_file");
	size_t ipe = key_index("powervm_password_encoded");
	if (L->seen[ipf] && L->seen[ipe]) {
		setting_problem(L, L->seen[ipe],
		                "powervm_password_file and powervm_password_encoded are both set; "
		                "keep one");
	} else if (L->seen[ipf] && !L->bad[ipf]) {
		read_password_file(L, L->seen[ipf], cfg->password_file);
	} else if (L->seen[ipe] && !L->bad[ipe]) {
		decode_password(L, L->seen[ipe]);
	}
}

/* libconfig frees its strings without clearing them: wipe the secret ones first. */
static void wipe_secrets(struct loader *L)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (!keys[i].secret || !L->seen[i] ||
		    config_setting_type(L->seen[i]) != CONFIG_TYPE_STRING)
			continue;
		const char *v = config_setting_get_string(L->seen[i]);
		if (v)
			explicit_bzero((char *)v, strlen(v));
	}
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

int pvm_config_load(const char *path, struct pvm_config **out, struct pvm_config_problems *problems)
{
	struct loader *L = calloc(1, sizeof(*L));
	int rc = 0;
	if (problems)
		*problems = (struct pvm_config_problems){0};
	*out = NULL;
	if (!L)
		return PVM_ENOMEM;
	L->main_path = path;
	config_init(&L->lc);

	L->inc_dir = dir_of(path);
	L->cfg = calloc(1, sizeof(*L->cfg));
	if (!L->inc_dir || !L->cfg || !(L->cfg->path = strdup(path))) {
		rc = PVM_ENOMEM;
		goto out_free;
	}

	/* Pass 1: the main file, then its includes. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block */
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		rc = -errno;
		problem(L, path, 0, "", "cannot open the configuration file: %s", strerror(-rc));
	} else if (!S_ISREG(st.st_mode)) {
		rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		problem(L, path, 0, "", "is not a regular file");
	}
	if (fd >= 0)
		close(fd);
	if (rc == 0)
		prescan(L, path, path, 1);
	if (L->list.count || L->oom)
		goto out_result;

	/* Pass 2: parse. */
	config_set_include_dir(&L->lc, L->inc_dir);
	if (config_read_file(&L->lc, path) != CONFIG_TRUE) {
		if (config_error_type(&L->lc) == CONFIG_ERR_FILE_IO) {
			rc = -EIO;
			problem(L, path, 0, "", "cannot read the configuration file");
		} else {
			char *file = source_file(L, config_error_file(&L->lc));
			const char *text = config_error_text(&L->lc);
			char key[64] = "";
			if (text && strcmp(text, "duplicate setting name") == 0)
				duplicate_name(file, config_error_line(&L->lc), key, sizeof(key));
			problem(L, file ? file : path, config_error_line(&L->lc), key, "%s",
			        key[0] ? "set more than once"
			        : text ? text
			               : "syntax error");
			free(file);
		}
		goto out_result;
	}

	/* Passes 3 and 4. */
	config_setting_t *root = config_root_setting(&L->lc);
	for (int i = 0; i < config_setting_length(root); i++)
		check_setting(L, config_setting_get_elem(root, i));
	finish(L);
	wipe_secrets(L);

out_result:
	if (L->oom) {
		rc = PVM_ENOMEM;
	} else if (L->list.count) {
		if (rc == 0)
			rc = PVM_ECONFIG;
	} else {
		*out = L->cfg;
		L->cfg = NULL;
	}
	if (problems && rc != 0 && rc != PVM_ENOMEM) {
		*problems = L->list;
		L->list = (struct pvm_config_problems){0};
	}
out_free:
	config_destroy(&L->lc);
	pvm_config_free(L->cfg);
	pvm_config_problems_free(&L->list);
	free(L->inc_dir);
	free(L);
	return rc;
}

void pvm_config_free(struct pvm_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].type == PVM_CONFIG_STRING && keys[i].offset != PVM_CONFIG_NO_FIELD)
			free(*(char **)field(cfg, &keys[i]));
	if (cfg->password) {
		explicit_bzero(cfg->password, strlen(cfg->password));
		free(cfg->password);
	}
	free(cfg->api_allowed_uids);
	free(cfg->path);
	free(cfg);
}

void pvm_config_problems_free(struct pvm_config_problems *p)
{
	if (!p)
		return;
	free(p->items);
	p->items = NULL;
	p->count = 0;
}

void pvm_config_problems_print(const struct pvm_config_problems *p, void *f)
{
	FILE *fp = f;
	for (size_t i = 0; p && i < p->count; i++) {
		const struct pvm_config_problem *q = &p->items[i];
		fputs(q->file[0] ? q->file : "powervmd", fp);
		if (q->line > 0)
			fprintf(fp, ":%d", q->line);
		fputs(": ", fp);
		if (q->key[0])
			fprintf(fp, "%s: ", q->key);
		fprintf(fp, "%s\n", q->message);
	}
}

int pvm_config_check_credentials(const struct pvm_config *cfg, struct pvm_config_problems *p)
{
	size_t before = p->count;
	int oom = 0;
	const struct pvm_config_key *user = pvm_config_key_find("powervm_user");
	if (!cfg->user)
		oom |= add_problem(p, cfg->path, 0, user->name,
		                   "required key is missing (example: %s = %s;)", user->name,
		                   user->example);
	if (!cfg->file_logon && !cfg->password)
		oom |= add_problem(p, cfg->path, 0, "powervm_password_file",
		                   "required key is missing: without powervm_file_logon, set "
		                   "powervm_password_file (or powervm_password_encoded)");
	if (oom) {
		p->count = before; /* the other one may have been added: keep the list as it was */
		return PVM_ENOMEM;
	}
	return p->count > before ? PVM_ECONFIG : 0;
}
