/* main.c: the powervmctl command line.
 *
 * powervmctl [GLOBAL OPTIONS] COMMAND [ARGS] [OPTIONS]: options may come before or after the
 * command words. The paths powervmctl needs (powervm_state_dir for the journal,
 * powervm_api_socket for the daemon, powervm_journal_max_size_mb) come from powervmd's
 * configuration: --config FILE, else $POWERVMD_CONFIG, else /etc/powervmd/powervmd.conf (and
 * the built-in defaults when that file does not exist); --state-dir and --socket override
 * them. pvm_config_load() also checks the PowerVM password file, which belongs to
 * powervmd's user: when the only problems it finds are in keys powervmctl does not use, the
 * keys it needs are read from the same file with libconfig directly.
 *
 * Exit statuses: enum ctl_exit (ctl.h), listed in --help and docs/operations.md.
 */
#include "ctl.h"

#include "pvm/config.h"
#include "pvm/error.h"
#include "pvm/log.h"

#include <errno.h>
#include <libconfig.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef PVM_VERSION
#define PVM_VERSION "unknown"
#endif

enum {
	O_STATE = 1u << 0,
	O_INSTANCE = 1u << 1,
	O_TYPE = 1u << 2,
	O_LIMIT = 1u << 3,
	O_OLDER = 1u << 4,
	O_WATCH = 1u << 5,
};

struct cmd {
	const char *name;
	int (*fn)(struct ctl *);
	unsigned opts;
	const char *synopsis;
	const char *help;
	const char *summary; /* one line for the command list */
};

static const struct cmd cmds[] = {
        {"queue list", ctl_queue_list, O_STATE | O_INSTANCE | O_TYPE | O_LIMIT,
         "[--state S] [--instance UUID] [--type T] [--limit N]",
         "Lists the operations in the journal, oldest first (read directly from the journal:\n"
         "works with powervmd stopped, and then says which operations resume when it starts).\n"
         "\n"
         "  --state S        only operations in state S: queued, running, waiting, reverting,\n"
         "                   succeeded, failed, cancelled\n"
         "  --instance UUID  only operations of this nova instance\n"
         "  --type T         only operations of this type (spawn, test_steps, ...)\n"
         "  --limit N        at most N operations (the oldest matching ones)\n",
         "operations, oldest first"},
        {"queue show", ctl_queue_show, 0, "ID",
         "Shows one operation from the journal: state, progress, step and attempts, timestamps,\n"
         "params, checkpoints, signals, result, and the history of failed attempts with their\n"
         "errors. Secret params are never shown (the journal keeps them encrypted apart; the\n"
         "has_secrets flag says there are some).\n",
         "one operation in full (secrets never shown)"},
        {"queue stats", ctl_queue_stats, 0, "",
         "Counts operations per state and per type, names the oldest waiting operation, totals\n"
         "the retries, and shows the journal's map usage and quarantined records.\n",
         "counts per state and type, oldest waiting, retries"},
        {"queue watch", ctl_queue_watch, 0, "ID",
         "Shows a live progress bar of one operation and exits when it ends: status 0 when it\n"
         "succeeded, 6 when it failed or was cancelled. Follows powervmd when it answers\n"
         "(long-poll), else reads the journal a few times a second. With --json, prints the\n"
         "operation as one JSON line at each change.\n",
         "live progress bar until it ends"},
        {"queue retry", ctl_queue_retry, 0, "ID",
         "Queues a failed operation again, from its first step (through powervmd). Only failed\n"
         "operations can be retried, and not those whose secret params were erased.\n",
         "queue a failed operation again"},
        {"queue cancel", ctl_queue_cancel, 0, "ID",
         "Cancels an operation (through powervmd): one that never started is cancelled at once;\n"
         "an active one undoes its completed steps, then ends cancelled.\n",
         "cancel an operation (undoing what it did)"},
        {"queue purge", ctl_queue_purge, O_OLDER, "[--older-than DURATION]",
         "Deletes finished operations (succeeded, failed, cancelled) from the journal, through\n"
         "powervmd.\n"
         "\n"
         "  --older-than DURATION  those that finished more than DURATION ago: 90s, 30m, 12h,\n"
         "                         7d, 1w, 1d12h (default: powervm_retention_hours)\n",
         "delete finished operations"},
        {"submit", ctl_submit, O_WATCH, "FILE [--watch]",
         "Submits an operation from a JSON file ('-': standard input), as POST /v1/operations\n"
         "takes it: {\"type\", \"instance_uuid\", \"idempotency_key\", \"params\", ...}. See\n"
         "docs/examples/test_steps.json and docs/api.md.\n"
         "\n"
         "  --watch  then watch it as `queue watch` does (same exit statuses)\n",
         "submit an operation from a JSON file"},
        {"host", ctl_host, 0, "", "Shows the managed system as powervmd last read it.\n",
         "the managed system"},
        {"instances", ctl_instances, 0, "",
         "Lists the partitions of the managed system from powervmd's cache.\n", "the partitions"},
        {"pause", ctl_pause, 0, "",
         "Pauses powervmd's workers: running steps finish, no new step starts; the API keeps\n"
         "accepting operations.\n",
         "run no new step"},
        {"resume", ctl_resume, 0, "", "Lets powervmd's workers run steps again.\n",
         "run steps again"},
};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static const char global_help[] =
        "Global options (before or after the command):\n"
        "  --config FILE     powervmd's configuration (default: $POWERVMD_CONFIG, else\n"
        "                    " PVM_CONFIG_DEFAULT_PATH ")\n"
        "  --state-dir DIR   the journal's directory (default: powervm_state_dir)\n"
        "  --socket PATH     powervmd's API socket (default: powervm_api_socket)\n"
        "  --json            JSON output for scripts\n"
        "  --verbose         also print the journal library's log lines\n"
        "  --help, -h        help (of a command: powervmctl queue list --help)\n";

static const char exit_help[] =
        "Exit status:\n"
        "  0  done\n"
        "  1  error (the message says what to do)\n"
        "  2  bad command line\n"
        "  3  powervmd is not running or not ready (commands that need it)\n"
        "  4  no such operation\n"
        "  5  refused in the operation's state (retry of an operation that did not fail,\n"
        "     cancel of a finished one) or idempotency key used with another request\n"
        "  6  the watched operation ended failed or cancelled (queue watch, submit --watch)\n"
        "  130 interrupted (Ctrl-C during a watch)\n";

static void main_usage(FILE *f)
{
	fprintf(f, "Usage: powervmctl [GLOBAL OPTIONS] COMMAND [ARGS] [OPTIONS]\n"
	           "\n"
	           "The administration tool of powervmd: inspect and steer the operation queue.\n"
	           "\n"
	           "Read straight from the journal (work with powervmd stopped):\n");
	for (size_t i = 0; i < NCMDS; i++) {
		if (i == 4)
			fprintf(f, "\nThrough powervmd (it must be running):\n");
		char s[96];
		snprintf(s, sizeof(s), "%s %s", cmds[i].name, cmds[i].synopsis);
		if (strlen(s) > 36)
			fprintf(f, "  %s\n  %-36s  %s\n", s, "", cmds[i].summary);
		else
			fprintf(f, "  %-36s  %s\n", s, cmds[i].summary);
	}
	fprintf(f, "\n%s\n%s\nOperators' runbook: docs/operations.md.\n", global_help, exit_help);
}

static void cmd_usage(const struct cmd *c, FILE *f)
{
	fprintf(f, "Usage: powervmctl [GLOBAL OPTIONS] %s%s%s\n\n%s\n%s\n%s", c->name,
	        c->synopsis[0] ? " " : "", c->synopsis, c->help, global_help, exit_help);
}

static void queue_usage(FILE *f)
{
	fprintf(f, "Usage: powervmctl [GLOBAL OPTIONS] queue SUBCOMMAND ...\n\n");
	for (size_t i = 0; i < NCMDS; i++)
		if (strncmp(cmds[i].name, "queue ", 6) == 0)
			fprintf(f, "  %s %s\n", cmds[i].name, cmds[i].synopsis);
	fprintf(f, "\n`powervmctl queue SUBCOMMAND --help` explains one.\n");
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d) {
		ctl_err("out of memory");
		exit(CTL_ERROR);
	}
	return d;
}

/* True when every problem is about a key powervmctl does not read. */
static bool problems_ignorable(const struct pvm_config_problems *p)
{
	static const char *const used[] = {"powervm_state_dir", "powervm_api_socket",
	                                   "powervm_journal_max_size_mb",
	                                   "powervm_retention_hours"};
	for (size_t i = 0; i < p->count; i++) {
		if (!p->items[i].key[0])
			return false; /* a syntax error */
		for (size_t k = 0; k < sizeof(used) / sizeof(used[0]); k++)
			if (strcmp(p->items[i].key, used[k]) == 0)
				return false;
	}
	return true;
}

static const char *key_default(const char *name)
{
	const struct pvm_config_key *k = pvm_config_key_find(name);
	return k && k->def ? k->def : "";
}

/* Reads the keys powervmctl needs with libconfig (the file is known to parse). */
static int read_keys_direct(struct ctl *c, const char *path)
{
	config_t lc;
	config_init(&lc);
	char *dup = xstrdup(path);
	config_set_include_dir(&lc, dirname(dup));
	int ex = CTL_OK;
	if (config_read_file(&lc, path) != CONFIG_TRUE) {
		ctl_err("%s:%d: %s", config_error_file(&lc) ? config_error_file(&lc) : path,
		        config_error_line(&lc), config_error_text(&lc));
		ex = CTL_ERROR;
		goto out;
	}
	const char *s;
	long long v;
	c->state_dir = xstrdup(config_lookup_string(&lc, "powervm_state_dir", &s) == CONFIG_TRUE
	                               ? s
	                               : key_default("powervm_state_dir"));
	c->socket_path = xstrdup(config_lookup_string(&lc, "powervm_api_socket", &s) == CONFIG_TRUE
	                                 ? s
	                                 : key_default("powervm_api_socket"));
	if (config_lookup_int64(&lc, "powervm_journal_max_size_mb", &v) == CONFIG_TRUE && v > 0)
		c->map_size_max = (size_t)v << 20;
	if (config_lookup_int64(&lc, "powervm_retention_hours", &v) == CONFIG_TRUE && v > 0)
		c->retention_h = v;
out:
	free(dup);
	config_destroy(&lc);
	return ex;
}

/* Fills c->state_dir, c->socket_path and the rest from the configuration. */
static int resolve_paths(struct ctl *c, const char *opt_config, const char *opt_state_dir,
                         const char *opt_socket, bool verbose)
{
	const char *env = getenv("POWERVMD_CONFIG");
	const char *path = opt_config ? opt_config : env && env[0] ? env : PVM_CONFIG_DEFAULT_PATH;
	bool explicit = opt_config || (env && env[0]);
	int ex = CTL_OK;
	if (opt_state_dir && opt_socket && !opt_config) {
		/* Both paths given: no configuration needed. */
	} else if (!explicit && access(path, F_OK) != 0 && errno == ENOENT) {
		c->state_dir = xstrdup(key_default("powervm_state_dir"));
		c->socket_path = xstrdup(key_default("powervm_api_socket"));
	} else {
		struct pvm_config *cfg = NULL;
		struct pvm_config_problems p = {0};
		int rc = pvm_config_load(path, &cfg, &p);
		c->config = path;
		if (rc == 0) {
			c->state_dir = xstrdup(cfg->state_dir);
			c->socket_path = xstrdup(cfg->api_socket);
			c->map_size_max = (size_t)cfg->journal_max_size_mb << 20;
			c->retention_h = cfg->retention_hours;
			pvm_config_free(cfg);
		} else if (rc == PVM_ECONFIG && problems_ignorable(&p)) {
			if (verbose) {
				fprintf(stderr,
				        "powervmctl: %s has problems in keys powervmctl does "
				        "not use (read as powervmd's user they may not be "
				        "problems):\n",
				        path);
				pvm_config_problems_print(&p, stderr);
			}
			ex = read_keys_direct(c, path);
		} else if (rc == PVM_ECONFIG) {
			pvm_config_problems_print(&p, stderr);
			ctl_err("%s has problems (above): fix them, or name the paths with "
			        "--state-dir and --socket",
			        path);
			ex = CTL_ERROR;
		} else {
			ctl_err("cannot read the configuration %s: %s. powervmctl reads "
			        "powervm_state_dir and powervm_api_socket from it: give the "
			        "operators' group read access to it, name another one with "
			        "--config, "
			        "or name the paths with --state-dir and --socket",
			        path, pvm_strerror(rc));
			ex = CTL_ERROR;
		}
		pvm_config_problems_free(&p);
	}
	if (ex == CTL_OK && opt_state_dir) {
		free(c->state_dir);
		c->state_dir = xstrdup(opt_state_dir);
	}
	if (ex == CTL_OK && opt_socket) {
		free(c->socket_path);
		c->socket_path = xstrdup(opt_socket);
	}
	return ex;
}

int main(int argc, char **argv)
{
	struct ctl c = {0};
	const char *opt_config = NULL, *opt_state_dir = NULL, *opt_socket = NULL;
	bool help = false, verbose = false;
	unsigned seen = 0;
	const char **pos = calloc((size_t)argc + 1, sizeof(*pos));
	size_t npos = 0;
	if (!pos)
		return CTL_ERROR;
	static const struct {
		const char *name;
		unsigned bit; /* 0: global */
	} vopts[] = {
	        {"config", 0},      {"state-dir", 0},         {"socket", 0},
	        {"state", O_STATE}, {"instance", O_INSTANCE}, {"type", O_TYPE},
	        {"limit", O_LIMIT}, {"older-than", O_OLDER},
	};
	const char **targets[] = {&opt_config,     &opt_state_dir, &opt_socket,  &c.opt_state,
	                          &c.opt_instance, &c.opt_type,    &c.opt_limit, &c.opt_older_than};
	int ex = CTL_OK;
	bool rest = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (rest || a[0] != '-' || strcmp(a, "-") == 0) {
			pos[npos++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			rest = true;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			help = true;
			continue;
		}
		if (strcmp(a, "--json") == 0) {
			c.json = true;
			continue;
		}
		if (strcmp(a, "--verbose") == 0) {
			verbose = true;
			continue;
		}
		if (strcmp(a, "--watch") == 0) {
			c.opt_watch = true;
			seen |= O_WATCH;
			continue;
		}
		if (strcmp(a, "--version") == 0) {
			printf("powervmctl %s\n", PVM_VERSION);
			free(pos);
			return CTL_OK;
		}
		size_t k = 0, nv = sizeof(vopts) / sizeof(vopts[0]);
		const char *eq = strchr(a, '=');
		size_t nlen = eq ? (size_t)(eq - a) - 2 : strlen(a) - 2;
		for (; k < nv; k++)
			if (strncmp(a, "--", 2) == 0 && strlen(vopts[k].name) == nlen &&
			    strncmp(a + 2, vopts[k].name, nlen) == 0)
				break;
		if (k == nv) {
			ctl_err("unknown option '%s' (see powervmctl --help)", a);
			free(pos);
			return CTL_USAGE;
		}
		const char *v = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
		if (!v) {
			ctl_err("option --%s needs a value", vopts[k].name);
			free(pos);
			return CTL_USAGE;
		}
		*targets[k] = v;
		seen |= vopts[k].bit;
	}

	/* The command: "queue SUB" or one word. */
	const struct cmd *cmd = NULL;
	size_t used = 0;
	if (npos && strcmp(pos[0], "help") == 0) {
		help = true;
		used = 1;
	}
	if (npos > used && strcmp(pos[used], "queue") == 0) {
		if (npos < used + 2) {
			queue_usage(help ? stdout : stderr);
			free(pos);
			return help ? CTL_OK : CTL_USAGE;
		}
		char name[64];
		snprintf(name, sizeof(name), "queue %s", pos[used + 1]);
		for (size_t i = 0; i < NCMDS; i++)
			if (strcmp(cmds[i].name, name) == 0)
				cmd = &cmds[i];
		if (!cmd) {
			ctl_err("unknown command 'queue %s'", pos[used + 1]);
			queue_usage(stderr);
			free(pos);
			return CTL_USAGE;
		}
		used += 2;
	} else if (npos > used) {
		for (size_t i = 0; i < NCMDS; i++)
			if (strcmp(cmds[i].name, pos[used]) == 0)
				cmd = &cmds[i];
		if (!cmd) {
			ctl_err("unknown command '%s' (see powervmctl --help)", pos[used]);
			free(pos);
			return CTL_USAGE;
		}
		used += 1;
	}
	if (help) {
		if (cmd)
			cmd_usage(cmd, stdout);
		else
			main_usage(stdout);
		free(pos);
		return CTL_OK;
	}
	if (!cmd) {
		main_usage(stderr);
		free(pos);
		return CTL_USAGE;
	}
	if (seen & ~cmd->opts) {
		ctl_err("an option given does not apply to '%s' (see powervmctl %s --help)",
		        cmd->name, cmd->name);
		free(pos);
		return CTL_USAGE;
	}
	c.args = pos + used;
	c.nargs = npos - used;

	pvm_log_setup("powervmctl", PVM_LOG_STDERR, verbose ? PVM_LOG_DEBUG : PVM_LOG_ERROR);
	ex = resolve_paths(&c, opt_config, opt_state_dir, opt_socket, verbose);
	if (ex == CTL_OK)
		ex = cmd->fn(&c);
	free(c.state_dir);
	free(c.socket_path);
	free(pos);
	return ex;
}
