/* daemon.c: powervmd's run loop.
 *
 * Start-up order: journal open and recovery (the configuration is already loaded and
 * logging set up by main.c), then the main thread waits for signals, handled here in one
 * place: SIGTERM and SIGINT stop, SIGHUP reloads what can be reloaded (the log level) and
 * says what it could not. The worker pool, the PowerVM session and the local API join
 * this loop as they are built (docs/architecture.md); until then the daemon keeps the
 * journal open, recovered, and purged past its retention.
 */
#include "daemon.h"

#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/queue.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static int open_journal(const struct pvm_config *cfg, struct pvm_queue **q)
{
	struct pvm_queue_opts qo = {
	        .dir = cfg->state_dir,
	        .secret_key_file = cfg->secret_key_file,
	        .create_key = true,
	        .map_size = (size_t)cfg->journal_map_size_mb << 20,
	        .map_size_max = (size_t)cfg->journal_max_size_mb << 20,
	        .retention_ms = cfg->retention_hours * 3600 * 1000,
	        .recover = true,
	};
	int rc = pvm_queue_open(&qo, q);
	if (rc) {
		pvm_error("cannot open the journal in %s: %s", cfg->state_dir, pvm_strerror(rc));
		return rc;
	}
	struct pvm_queue_stats st;
	if (pvm_queue_stats(*q, &st) == 0)
		pvm_info("journal %s: %zu operations (%zu queued, %zu waiting, %zu reverting, %zu "
		         "failed), %zu returned to the queue by recovery, %zu quarantined",
		         cfg->state_dir, st.total, st.by_state[PVM_OP_QUEUED],
		         st.by_state[PVM_OP_WAITING], st.by_state[PVM_OP_REVERTING],
		         st.by_state[PVM_OP_FAILED], pvm_queue_recovered(*q), st.quarantined);
	return 0;
}

/* SIGHUP: re-reads the file; applies the log level, reports keys that need a restart. */
static void reload(const struct pvm_config *cur)
{
	struct pvm_config *next = NULL;
	struct pvm_config_problems problems = {0};
	int rc = pvm_config_load(cur->path, &next, &problems);
	if (rc) {
		pvm_error("SIGHUP: %s has %zu problem(s); keeping the running configuration",
		          cur->path, problems.count);
		for (size_t i = 0; i < problems.count; i++)
			pvm_error("SIGHUP: %s:%d: %s: %s", problems.items[i].file,
			          problems.items[i].line, problems.items[i].key,
			          problems.items[i].message);
		pvm_config_problems_free(&problems);
		return;
	}
	if (next->log_level != cur->log_level) {
		pvm_log_set_level(next->log_level);
		pvm_info("SIGHUP: log level is now %s", pvm_log_level_name(next->log_level));
	}
	if (strcmp(next->state_dir, cur->state_dir) || strcmp(next->endpoint, cur->endpoint) ||
	    next->journal_map_size_mb != cur->journal_map_size_mb ||
	    next->journal_max_size_mb != cur->journal_max_size_mb ||
	    next->retention_hours != cur->retention_hours || next->log_target != cur->log_target)
		pvm_warn("SIGHUP: only powervm_log_level is reloaded; other changed keys take "
		         "effect at the next restart");
	pvm_config_free(next);
}

int pvm_daemon_run(const struct pvm_config *cfg, const struct pvm_daemon_opts *opts)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/* Blocked before any thread starts, so every thread inherits the mask and signals are
	 * taken only by sigwait() below. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct pvm_queue *q = NULL;
	int rc = open_journal(cfg, &q);
	if (rc)
		return rc;
	pvm_info("powervmd ready (journal only: the worker pool and the API are not built yet)%s",
	         opts->paused ? "; paused" : "");
	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			reload(cfg);
			continue;
		}
		pvm_info("%s received: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		break;
	}
	pvm_queue_close(q);
	pvm_info("powervmd stopped cleanly");
	return 0;
}
