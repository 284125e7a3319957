/* daemon.c: powervmd's start-up, run loop and shutdown.
 *
 * Start-up, in order: the journal (open and recovery), the PowerVM session (logon, retried
 * while the REST server boots; the managed system chosen and its partitions read), the
 * event listener, the worker pool, the local API. Only then is /healthz 200 and, under
 * systemd (Type=notify), READY=1 sent. --paused recovers and serves the API but runs no
 * step until POST /v1/resume.
 *
 * Signals are handled here only: the main thread blocks them before any thread starts and
 * takes them with sigwait(). SIGTERM/SIGINT: stop taking steps, give running steps the
 * grace period, then stop the API and the listener, log off and close the journal. SIGHUP
 * reloads the log level and says which changed keys need a restart.
 */
#include "daemon.h"

#include "cache.h"
#include "ops.h"
#include "hostinfo.h"
#include "scrub.h"
#include "pvm/api.h"
#include "pvm/client.h"
#include "pvm/engine.h"
#include "pvm/error.h"
#include "pvm/eventlog.h"
#include "pvm/log.h"
#include "pvm/metrics.h"
#include "pvm/queue.h"
#include "pvm/util.h"

#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

_Static_assert(sizeof(uid_t) == sizeof(unsigned), "allowed uids are passed as uid_t");

struct daemon {
	const struct pvm_config *cfg;
	struct pvm_queue *q;
	struct pvm_client *client;
	struct pvm_cache *cache;
	struct pvm_event_listener *listener;
	struct pvm_engine *engine;
	struct pvm_metrics *metrics;
	struct pvm_eventlog *events;
	struct pvm_api *api;
	struct pvm_scrubber *scrubber;
	struct pvm_hostinfo *hostinfo;
	bool start_paused; /* --paused */
	atomic_bool ready;
};

/* sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET. */
static void sd_notify_msg(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !path[0] || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, path, strlen(path));
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract namespace */
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, len) < 0)
		pvm_warn("sd_notify: %s", pvm_strerror(-errno));
	close(fd);
}

static bool api_ready(void *arg)
{
	return atomic_load(&((struct daemon *)arg)->ready);
}

static json_t *api_host(void *arg)
{
	struct daemon *d = arg;
	return d->cache ? pvm_cache_host(d->cache) : NULL;
}

static json_t *api_instances(void *arg, const char *uuid)
{
	struct daemon *d = arg;
	return d->cache ? pvm_cache_instances(d->cache, uuid) : NULL;
}

static json_t *api_scrub(void *arg)
{
	struct daemon *d = arg;
	return pvm_scrubber_report(d->scrubber);
}

/* The scrub removes nothing while powervmd is paused (--paused, POST /v1/pause). */
static bool scrub_hold(void *arg)
{
	struct daemon *d = arg;
	return d->engine ? pvm_engine_paused(d->engine) : d->start_paused;
}

static void api_reconciled(void *arg, const json_t *view)
{
	struct daemon *d = arg;
	pvm_scrubber_nova_list(d->scrubber, view);
}

static int count_threads(void)
{
	DIR *dir = opendir("/proc/self/task");
	int n = 0;
	struct dirent *de;
	while (dir && (de = readdir(dir)))
		if (de->d_name[0] != '.')
			n++;
	if (dir)
		closedir(dir);
	return n;
}

/* Gauges read from elsewhere, refreshed before each /metrics render. */
static void collect(struct pvm_metrics *m, void *arg)
{
	struct daemon *d = arg;
	struct pvm_queue_stats st;
	if (pvm_queue_stats(d->q, &st) == 0) {
		for (int s = 0; s < PVM_OP_STATE_COUNT; s++) {
			char l[48];
			snprintf(l, sizeof(l), "state=\"%s\"",
			         pvm_op_state_name((enum pvm_op_state)s));
			pvm_metrics_set(m, "powervmd_queue_operations", l, (double)st.by_state[s]);
		}
		pvm_metrics_set(m, "powervmd_journal_quarantined", NULL, (double)st.quarantined);
		pvm_metrics_set(m, "powervmd_journal_map_bytes", NULL, (double)st.map_size);
		pvm_metrics_set(m, "powervmd_journal_used_bytes", NULL, (double)st.map_used);
		pvm_metrics_set(m, "powervmd_journal_commits_total", NULL, (double)st.commits);
	}
	if (d->engine) {
		struct pvm_engine_stats es;
		pvm_engine_stats(d->engine, &es);
		pvm_metrics_set(m, "powervmd_workers_busy", NULL, es.busy_workers);
		pvm_metrics_set(m, "powervmd_steps_total", NULL, (double)es.steps_run);
		pvm_metrics_set(m, "powervmd_retries_total", NULL, (double)es.steps_retried);
		pvm_metrics_set(m, "powervmd_reconciles_total", NULL, (double)es.reconciles);
		pvm_metrics_set(m, "powervmd_duplicate_jobs_settled_total", NULL,
		                (double)es.duplicate_jobs);
	}
	if (d->client) {
		struct pvm_client_stats cs;
		pvm_client_stats(d->client, &cs);
		pvm_metrics_set(m, "powervmd_powervm_requests_total", NULL, (double)cs.requests);
		pvm_metrics_set(m, "powervmd_powervm_logons_total", NULL, (double)cs.logons);
		pvm_metrics_set(m, "powervmd_powervm_retries_total", "reason=\"412\"",
		                (double)cs.retries_412);
		pvm_metrics_set(m, "powervmd_powervm_retries_total", "reason=\"401\"",
		                (double)cs.retries_401);
	}
	if (d->listener) {
		uint64_t ev = 0, err = 0;
		pvm_event_listener_counts(d->listener, &ev, &err);
		pvm_metrics_set(m, "powervmd_powervm_events_total", NULL, (double)ev);
		pvm_metrics_set(m, "powervmd_powervm_errors_total", "source=\"events\"",
		                (double)err);
	}
	pvm_metrics_set(m, "powervmd_threads", NULL, count_threads());
}

static void describe_metrics(struct pvm_metrics *m)
{
	static const struct {
		const char *name, *help;
	} gauges[] = {
	        {"powervmd_queue_operations", "Operations in the journal, by state"},
	        {"powervmd_journal_quarantined", "Damaged records moved to quarantine"},
	        {"powervmd_journal_map_bytes", "Size of the journal's LMDB map"},
	        {"powervmd_journal_used_bytes", "High-water mark of the journal's map"},
	        {"powervmd_journal_commits_total", "Synced journal transactions since start"},
	        {"powervmd_workers_busy", "Workers running a step now"},
	        {"powervmd_steps_total", "Steps run since start"},
	        {"powervmd_retries_total", "Steps retried after a transient error since start"},
	        {"powervmd_reconciles_total", "Steps settled from the objects' state since start"},
	        {"powervmd_duplicate_jobs_settled_total",
	         "Intents without outcome found already done by reconcile"},
	        {"powervmd_powervm_requests_total", "HTTP requests sent to PowerVM since start"},
	        {"powervmd_powervm_logons_total", "PowerVM logons since start"},
	        {"powervmd_powervm_retries_total", "PowerVM requests retried (412, 401)"},
	        {"powervmd_powervm_events_total", "PowerVM events received"},
	        {"powervmd_powervm_errors_total", "PowerVM errors, by source"},
	        {"powervmd_threads", "Threads of the daemon"},
	};
	for (size_t i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++)
		pvm_metrics_describe(m, gauges[i].name, PVM_METRIC_GAUGE, gauges[i].help);
}

static int open_journal(struct daemon *d)
{
	const struct pvm_config *cfg = d->cfg;
	struct pvm_queue_opts qo = {
	        .dir = cfg->state_dir,
	        .secret_key_file = cfg->secret_key_file,
	        .create_key = true,
	        .map_size = (size_t)cfg->journal_map_size_mb << 20,
	        .map_size_max = (size_t)cfg->journal_max_size_mb << 20,
	        .retention_ms = cfg->retention_hours * 3600 * 1000,
	        .recover = true,
	};
	int rc = pvm_queue_open(&qo, &d->q);
	if (rc) {
		pvm_error("cannot open the journal in %s: %s", cfg->state_dir, pvm_strerror(rc));
		return rc;
	}
	struct pvm_queue_stats st;
	if (pvm_queue_stats(d->q, &st) == 0)
		pvm_info("journal %s: %zu operations (%zu queued, %zu waiting, %zu reverting, %zu "
		         "failed), %zu returned to the queue by recovery, %zu quarantined",
		         cfg->state_dir, st.total, st.by_state[PVM_OP_QUEUED],
		         st.by_state[PVM_OP_WAITING], st.by_state[PVM_OP_REVERTING],
		         st.by_state[PVM_OP_FAILED], pvm_queue_recovered(d->q), st.quarantined);
	return 0;
}

static int connect_powervm(struct daemon *d)
{
	const struct pvm_config *cfg = d->cfg;
	struct pvm_client_opts co = {
	        .endpoint = cfg->endpoint,
	        .user = cfg->user,
	        .password = cfg->password,
	        .file_logon = cfg->file_logon,
	        .token_dir = cfg->token_dir,
	        .ca_file = cfg->ca_file,
	        .tls_insecure = !cfg->tls_verify,
	        .connect_timeout_ms = (int)cfg->connect_timeout_s * 1000,
	        .timeout_ms = (int)cfg->request_timeout_s * 1000,
	        .connect_retry_ms = cfg->connect_retry_s ? (int)cfg->connect_retry_s * 1000 : -1,
	        .audit_memento = "powervmd",
	};
	struct pvm_rest_error err = {0};
	int rc = pvm_client_create(&co, &d->client, &err);
	if (rc) {
		pvm_error("PowerVM client: %s", err.message[0] ? err.message : pvm_strerror(rc));
		return rc;
	}
	rc = pvm_client_logon(d->client, &err);
	if (rc) {
		pvm_error("cannot log on to %s: %s", cfg->endpoint,
		          err.message[0] ? err.message : pvm_strerror(rc));
		return rc;
	}
	pvm_info("logged on to %s as %s", cfg->endpoint, cfg->user ? cfg->user : "(token file)");
	rc = pvm_cache_create(d->client, cfg->managed_system, d->events, &d->cache);
	if (rc == 0 && cfg->proc_units_factor)
		pvm_cache_set_proc_units_factor(d->cache, strtod(cfg->proc_units_factor, NULL));
	return rc;
}

/* The host sampler (hostinfo.c): disk, CPU statistics and uptime for GET /v1/host. A
 * failure to start it is logged, not fatal: /v1/host then lacks those keys. */
static int start_hostinfo(struct daemon *d)
{
	int rc = pvm_hostinfo_start(d->client, d->cache, d->cfg, d->cfg->host_sample_s * 1000,
	                            &d->hostinfo);
	if (rc)
		pvm_error("host sampler: cannot start: %s; /v1/host has no disk or CPU "
		          "statistics",
		          pvm_strerror(rc));
	return 0;
}

/* The start-up scrub (workers/scrub.h): one pass now, before the workers take any step
 * and before the API accepts submissions, then one after each nova list (POST
 * /v1/reconcile) on its own thread. Its errors are logged and counted, never fatal. */
static int start_scrub(struct daemon *d)
{
	const struct pvm_config *cfg = d->cfg;
	struct pvm_scrubber_opts so = {
	        .mode = cfg->scrub,
	        .client = d->client,
	        .queue = d->q,
	        .metrics = d->metrics,
	        .ms_uuid = pvm_cache_ms_uuid(d->cache),
	        .hold = scrub_hold,
	        .hold_arg = d,
	};
	int rc = pvm_scrubber_create(&so, &d->scrubber);
	if (rc) {
		pvm_error("scrub: %s; continuing without it", pvm_strerror(rc));
		return 0;
	}
	if (cfg->scrub == PVM_SCRUB_OFF) {
		pvm_info("scrub: off (powervm_scrub)");
		return 0;
	}
	pvm_scrubber_run(d->scrubber, "start-up");
	rc = pvm_scrubber_start(d->scrubber);
	if (rc)
		pvm_error("scrub: cannot start its thread: %s; later passes will not run",
		          pvm_strerror(rc));
	return 0;
}

static int start_engine(struct daemon *d, bool paused)
{
	const struct pvm_config *cfg = d->cfg;
	struct pvm_engine_opts eo = {
	        .workers = (int)cfg->workers,
	        .paused = paused,
	        .enable_test_ops = cfg->enable_test_ops,
	        .retry_base_ms = cfg->retry_base_ms,
	        .retry_max_ms = cfg->retry_max_ms,
	        .poll_min_ms = cfg->job_poll_min_ms,
	        .poll_max_ms = cfg->job_poll_max_ms,
	        .metrics = d->metrics,
	        .ms_uuid = pvm_cache_ms_uuid(d->cache),
	        .ms_href = pvm_cache_ms_href(d->cache),
	        /* A request the daemon gave up on after its timeout may still be processed. */
	        .inflight_window_ms = cfg->request_timeout_s * 1000,
	        .config = cfg,
	};
	int rc = pvm_engine_create(&eo, d->q, d->client, &d->engine);
	if (rc == 0)
		rc = pvm_ops_register_all(d->engine);
	if (rc == 0)
		pvm_cache_set_engine(d->cache, d->engine);
	if (rc == 0)
		rc = pvm_engine_start(d->engine);
	if (rc)
		pvm_error("cannot start the worker pool: %s", pvm_strerror(rc));
	if (cfg->enable_test_ops)
		pvm_warn("powervm_enable_test_ops is on: the test operation type test_steps is "
		         "accepted (never in production)");
	return rc;
}

static int start_listener(struct daemon *d)
{
	char app[64];
	snprintf(app, sizeof(app), "powervmd-%.32s", pvm_cache_ms_uuid(d->cache));
	struct pvm_event_listener_opts lo = {
	        .app_id = app,
	        .fn = pvm_cache_on_event,
	        .arg = d->cache,
	};
	int rc = pvm_event_listener_start(d->client, &lo, &d->listener);
	if (rc)
		pvm_error("cannot start the PowerVM event listener: %s", pvm_strerror(rc));
	return rc;
}

static int start_api(struct daemon *d)
{
	const struct pvm_config *cfg = d->cfg;
	struct pvm_api_opts ao = {
	        .socket_path = cfg->api_socket,
	        .allowed_uids = (const uid_t *)cfg->api_allowed_uids,
	        .n_allowed_uids = cfg->n_api_allowed_uids,
	        .max_body_bytes = (size_t)cfg->api_max_body_kb * 1024,
	        .queue = d->q,
	        .engine = d->engine,
	        .metrics = d->metrics,
	        .events = d->events,
	        .state_dir = cfg->state_dir,
	        .disk_ssp = cfg->disk_driver == PVM_DISK_SSP,
	        .arg = d,
	        .ready = api_ready,
	        .host = api_host,
	        .instances = api_instances,
	        .scrub = api_scrub,
	        .reconciled = api_reconciled,
	};
	int rc = pvm_api_start(&ao, &d->api);
	if (rc)
		pvm_error("cannot serve the API on %s: %s", cfg->api_socket, pvm_strerror(rc));
	return rc;
}

/* SIGHUP: re-reads the file. Applies what can change while running (the log level, the
 * back-off and job-poll limits, the API's body limit) and names every other changed key,
 * which takes effect at the next restart. */
static void reload(struct daemon *d)
{
	const struct pvm_config *cur = d->cfg;
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
		pvm_info("SIGHUP: powervm_log_level is now %s",
		         pvm_log_level_name(next->log_level));
	}
	if (next->retry_base_ms != cur->retry_base_ms || next->retry_max_ms != cur->retry_max_ms ||
	    next->job_poll_min_ms != cur->job_poll_min_ms ||
	    next->job_poll_max_ms != cur->job_poll_max_ms) {
		pvm_engine_set_limits(d->engine, next->retry_base_ms, next->retry_max_ms,
		                      next->job_poll_min_ms, next->job_poll_max_ms);
		pvm_info("SIGHUP: back-off %lld..%lld ms, job polls %lld..%lld ms",
		         (long long)next->retry_base_ms, (long long)next->retry_max_ms,
		         (long long)next->job_poll_min_ms, (long long)next->job_poll_max_ms);
	}
	if (next->api_max_body_kb != cur->api_max_body_kb) {
		pvm_api_set_max_body(d->api, (size_t)next->api_max_body_kb * 1024);
		pvm_info("SIGHUP: powervm_api_max_body_kb is now %lld",
		         (long long)next->api_max_body_kb);
	}
	/* Everything else needs a restart: say which. */
	char later[512] = "";
	struct {
		const char *key;
		bool changed;
	} restart_keys[] = {
	        {"powervm_endpoint", strcmp(next->endpoint, cur->endpoint) != 0},
	        {"powervm_managed_system",
	         strcmp(next->managed_system ? next->managed_system : "",
	                cur->managed_system ? cur->managed_system : "") != 0},
	        {"powervm_state_dir", strcmp(next->state_dir, cur->state_dir) != 0},
	        {"powervm_api_socket", strcmp(next->api_socket, cur->api_socket) != 0},
	        {"powervm_api_allowed_uids",
	         next->n_api_allowed_uids != cur->n_api_allowed_uids ||
	                 (next->n_api_allowed_uids &&
	                  memcmp(next->api_allowed_uids, cur->api_allowed_uids,
	                         next->n_api_allowed_uids * sizeof(unsigned)) != 0)},
	        {"powervm_workers", next->workers != cur->workers},
	        {"powervm_journal_map_size_mb",
	         next->journal_map_size_mb != cur->journal_map_size_mb},
	        {"powervm_journal_max_size_mb",
	         next->journal_max_size_mb != cur->journal_max_size_mb},
	        {"powervm_retention_hours", next->retention_hours != cur->retention_hours},
	        {"powervm_log_target", next->log_target != cur->log_target},
	        {"powervm_enable_test_ops", next->enable_test_ops != cur->enable_test_ops},
	        {"powervm_tls_verify", next->tls_verify != cur->tls_verify},
	        {"powervm_shutdown_grace_s", next->shutdown_grace_s != cur->shutdown_grace_s},
	        {"powervm_scrub", next->scrub != cur->scrub},
	};
	for (size_t i = 0; i < sizeof(restart_keys) / sizeof(restart_keys[0]); i++)
		if (restart_keys[i].changed &&
		    strlen(later) + strlen(restart_keys[i].key) + 3 < sizeof(later)) {
			if (later[0])
				strcat(later, ", ");
			strcat(later, restart_keys[i].key);
		}
	if (later[0])
		pvm_warn(
		        "SIGHUP: changed but not reloadable, taking effect at the next restart: %s",
		        later);
	pvm_config_free(next);
}

static void shutdown_all(struct daemon *d, bool clean)
{
	atomic_store(&d->ready, false);
	if (d->engine)
		pvm_engine_stop(d->engine, d->cfg->shutdown_grace_s * 1000);
	pvm_api_stop(d->api);
	pvm_scrubber_destroy(d->scrubber);
	d->scrubber = NULL;
	pvm_hostinfo_stop(d->hostinfo);
	d->hostinfo = NULL;
	pvm_event_listener_stop(d->listener);
	struct pvm_engine_stats es = {0};
	if (d->engine)
		pvm_engine_stats(d->engine, &es);
	if (es.busy_workers > 0) {
		/* Steps still running past the grace period: their operations stay running in
		 * the journal and resume from their checkpoint at the next start. Leaving
		 * without closing is safe: every acknowledged change is already synced. */
		pvm_warn("exiting with %d steps still running", es.busy_workers);
		_exit(clean ? 0 : 1);
	}
	pvm_engine_destroy(d->engine);
	pvm_cache_destroy(d->cache);
	if (d->client) {
		struct pvm_rest_error err = {0};
		pvm_client_logoff(d->client, &err);
	}
	pvm_client_destroy(d->client);
	pvm_queue_close(d->q);
	pvm_eventlog_destroy(d->events);
	pvm_metrics_destroy(d->metrics);
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

	struct daemon d = {.cfg = cfg, .start_paused = opts->paused};
	int rc = pvm_client_global_init();
	if (rc == 0)
		rc = pvm_metrics_create(&d.metrics);
	if (rc == 0)
		rc = pvm_eventlog_create(4096, &d.events);
	if (rc) {
		pvm_error("start-up: %s", pvm_strerror(rc));
		return rc;
	}
	describe_metrics(d.metrics);
	pvm_metrics_add_collector(d.metrics, collect, &d);
	if ((rc = open_journal(&d)) || (rc = connect_powervm(&d)) || (rc = start_listener(&d)) ||
	    (rc = start_hostinfo(&d)) || (rc = start_scrub(&d)) ||
	    (rc = start_engine(&d, opts->paused)) || (rc = start_api(&d))) {
		shutdown_all(&d, false);
		pvm_client_global_cleanup();
		return rc;
	}
	atomic_store(&d.ready, true);
	sd_notify_msg("READY=1\nSTATUS=serving");
	pvm_info("powervmd ready: API on %s, %d workers%s", cfg->api_socket, (int)cfg->workers,
	         opts->paused ? ", paused (POST /v1/resume or powervmctl resume starts the steps)"
	                      : "");
	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			sd_notify_msg("RELOADING=1");
			reload(&d);
			sd_notify_msg("READY=1");
			continue;
		}
		pvm_info("%s received: stopping (running steps get %lld s to finish)",
		         sig == SIGTERM ? "SIGTERM" : "SIGINT", (long long)cfg->shutdown_grace_s);
		break;
	}
	sd_notify_msg("STOPPING=1");
	shutdown_all(&d, true);
	pvm_client_global_cleanup();
	pvm_info("powervmd stopped cleanly");
	return 0;
}
