/* main.c: the pvmsim program, a TEST DOUBLE of the PowerVM REST API (see docs/pvmsim.md).
 *
 *   pvmsim --listen 127.0.0.1:PORT --mode hmc|novalink --state-dir DIR [--config FILE]
 *          [--tls-cert CERT --tls-key KEY] [--quiet]
 *
 * PORT 0 picks a free port; the first line on stdout names the URL and the fault seed.
 * SIGINT and SIGTERM stop it cleanly; SIGKILL is what crash tests use.
 */
#include "sim.h"

#include "pvm/error.h"
#include "pvm/log.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: pvmsim --listen HOST:PORT --mode hmc|novalink --state-dir DIR\n"
	           "              [--config FILE] [--tls-cert CERT --tls-key KEY] [--quiet]\n"
	           "pvmsim is a test double of the PowerVM REST API, never a backend for a real "
	           "cloud.\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"listen", required_argument, NULL, 'l'},
	        {"mode", required_argument, NULL, 'm'},
	        {"state-dir", required_argument, NULL, 's'},
	        {"config", required_argument, NULL, 'c'},
	        {"tls-cert", required_argument, NULL, 'C'},
	        {"tls-key", required_argument, NULL, 'K'},
	        {"quiet", no_argument, NULL, 'q'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	struct pvm_sim_opts o = {.listen_host = "127.0.0.1", .port = 12080, .mode = PVM_SIM_HMC};
	char host[64] = "127.0.0.1";
	int c;
	pvm_log_setup("pvmsim", PVM_LOG_STDERR, PVM_LOG_INFO);
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'l': {
			const char *colon = strrchr(optarg, ':');
			char *end;
			long port = colon ? strtol(colon + 1, &end, 10) : -1;
			if (!colon || *end || port < 0 || port > 65535 ||
			    (size_t)(colon - optarg) >= sizeof(host)) {
				fprintf(stderr, "pvmsim: --listen: HOST:PORT expected\n");
				return 2;
			}
			memcpy(host, optarg, (size_t)(colon - optarg));
			host[colon - optarg] = '\0';
			o.port = (int)port;
			break;
		}
		case 'm':
			if (pvm_sim_mode_parse(optarg, &o.mode)) {
				fprintf(stderr, "pvmsim: --mode: hmc or novalink\n");
				return 2;
			}
			break;
		case 's':
			o.state_dir = optarg;
			break;
		case 'c':
			o.config_path = optarg;
			break;
		case 'C':
			o.tls_cert = optarg;
			break;
		case 'K':
			o.tls_key = optarg;
			break;
		case 'q':
			o.quiet = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!o.state_dir || optind != argc || (!o.tls_cert != !o.tls_key)) {
		usage(stderr);
		return 2;
	}
	o.listen_host = host;
	/* Signals are handled in this thread only: block them before any thread starts. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	struct pvm_sim *sim;
	int rc = pvm_sim_create(&o, &sim);
	if (rc) {
		fprintf(stderr, "pvmsim: cannot start: %s\n", pvm_strerror(rc));
		return 1;
	}
	int sig = 0;
	sigwait(&set, &sig);
	pvm_info("pvmsim: signal %d, stopping", sig);
	pvm_sim_destroy(sim);
	return 0;
}
