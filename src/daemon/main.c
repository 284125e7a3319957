/* main.c: the powervmd command line.
 *
 * Parses the arguments, loads the configuration (or only checks it, --check-config), sets
 * up logging as configured and hands over to pvm_daemon_run() (daemon.c). A configuration
 * with problems never starts the daemon: every problem is printed, one per line, as
 * "FILE:LINE: KEY: MESSAGE" on stderr, and powervmd exits 1.
 *
 * Exit status: 0 success, 1 bad configuration or daemon failure, 2 bad usage.
 */
#include "daemon.h"

#include "pvm/config.h"
#include "pvm/error.h"
#include "pvm/log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef PVM_VERSION
#define PVM_VERSION "unknown"
#endif

#define EXIT_USAGE 2

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: powervmd [--config FILE] [--foreground] [--paused]\n"
	        "       powervmd --check-config FILE\n"
	        "\n"
	        "PowerVM engine of the OpenStack Nova compute driver.\n"
	        "\n"
	        "  --config FILE        configuration file (default %s)\n"
	        "  --check-config FILE  validate FILE, print every problem, and exit\n"
	        "  --foreground         do not detach; log to the configured target\n"
	        "  --paused             recover and serve the API, but run no operation step\n"
	        "                       until resumed (powervmctl resume)\n"
	        "  --help               show this help and exit\n"
	        "  --version            show the version and exit\n"
	        "\n"
	        "Configuration keys: docs/configuration.md.\n",
	        PVM_CONFIG_DEFAULT_PATH);
}

/* Loads path; on failure prints every problem to stderr. Returns the config or NULL. */
static struct pvm_config *load(const char *path)
{
	struct pvm_config *cfg = NULL;
	struct pvm_config_problems problems = {0};
	int rc = pvm_config_load(path, &cfg, &problems);
	if (rc == 0)
		return cfg;
	if (problems.count)
		pvm_config_problems_print(&problems, stderr);
	else
		fprintf(stderr, "%s: %s\n", path, pvm_strerror(rc));
	pvm_config_problems_free(&problems);
	return NULL;
}

int main(int argc, char **argv)
{
	enum { OPT_CONFIG = 256, OPT_CHECK, OPT_FOREGROUND, OPT_PAUSED, OPT_HELP, OPT_VERSION };
	static const struct option options[] = {
	        {"config", required_argument, NULL, OPT_CONFIG},
	        {"check-config", required_argument, NULL, OPT_CHECK},
	        {"foreground", no_argument, NULL, OPT_FOREGROUND},
	        {"paused", no_argument, NULL, OPT_PAUSED},
	        {"help", no_argument, NULL, OPT_HELP},
	        {"version", no_argument, NULL, OPT_VERSION},
	        {NULL, 0, NULL, 0},
	};
	const char *config_path = PVM_CONFIG_DEFAULT_PATH;
	const char *check_path = NULL;
	struct pvm_daemon_opts opts = {0};

	int c;
	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case OPT_CONFIG:
			config_path = optarg;
			break;
		case OPT_CHECK:
			check_path = optarg;
			break;
		case OPT_FOREGROUND:
			opts.foreground = true;
			break;
		case OPT_PAUSED:
			opts.paused = true;
			break;
		case OPT_HELP:
			usage(stdout);
			return EXIT_SUCCESS;
		case OPT_VERSION:
			printf("powervmd %s\n", PVM_VERSION);
			return EXIT_SUCCESS;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "powervmd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}

	if (check_path) {
		struct pvm_config *cfg = load(check_path);
		if (!cfg)
			return EXIT_FAILURE;
		printf("%s: configuration OK\n", check_path);
		pvm_config_free(cfg);
		return EXIT_SUCCESS;
	}

	struct pvm_config *cfg = load(config_path);
	if (!cfg) {
		fprintf(stderr, "powervmd: not starting: %s has problems (see above)\n",
		        config_path);
		return EXIT_FAILURE;
	}
	struct pvm_config_problems cred = {0};
	if (pvm_config_check_credentials(cfg, &cred) != 0) {
		pvm_config_problems_print(&cred, stderr);
		pvm_config_problems_free(&cred);
		fprintf(stderr,
		        "powervmd: not starting: %s lacks PowerVM credentials (see above)\n",
		        config_path);
		pvm_config_free(cfg);
		return EXIT_FAILURE;
	}
	pvm_log_setup("powervmd", cfg->log_target, cfg->log_level);
	pvm_info("powervmd %s: configuration loaded from %s", PVM_VERSION, cfg->path);
	int rc = pvm_daemon_run(cfg, &opts);
	if (rc != 0)
		pvm_error("powervmd stopped: %s", pvm_strerror(rc));
	pvm_config_free(cfg);
	return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
