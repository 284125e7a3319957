/* sim.c: pvmsim's life cycle: configuration, inventory and state at start, the ticker
 * thread, and shutdown.
 *
 * DESIGN: one ticker thread ("pvmsim-ticker") advances jobs and wakes parked connections.
 * It sleeps on sim->cond until the next due time; every place that adds work calls
 * sim_kick(), which bumps sim->kicks so a signal sent while the ticker is busy is never
 * lost. Start order: config, state directory, model (state file, else inventory), audit
 * file, ticker, HTTP server. Stop order: HTTP server (parked connections are resumed and
 * answered), ticker, memory.
 */
#include "sim.h"

#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <libxml/parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void sim_kick(struct pvm_sim *sim)
{
	sim->kicks++;
	pthread_cond_broadcast(&sim->cond);
}

int pvm_sim_mode_parse(const char *s, enum pvm_sim_mode *out)
{
	if (strcmp(s, "hmc") == 0)
		*out = PVM_SIM_HMC;
	else if (strcmp(s, "novalink") == 0)
		*out = PVM_SIM_NOVALINK;
	else
		return PVM_EINVAL;
	return 0;
}

int pvm_sim_port(const struct pvm_sim *sim)
{
	return sim->port;
}

uint64_t pvm_sim_seed(struct pvm_sim *sim)
{
	pthread_mutex_lock(&sim->lock); /* PUT /sim/faults replaces sim->faults under it */
	uint64_t seed = sim->faults.seed;
	pthread_mutex_unlock(&sim->lock);
	return seed;
}

void sim_reset_model(struct pvm_sim *sim)
{
	sim_jobs_clear(sim);
	sim_objs_clear(sim);
	sim_pcm_clear(sim);
	char err[200];
	if (sim_inventory_load(sim, sim->inventory, err, sizeof(err)) != 0)
		pvm_error("pvmsim: reset: %s", err); /* validated at start: cannot happen */
	sim_event_add(sim, "CACHE_CLEARED", "", "");
}

static void *ticker(void *arg)
{
	struct pvm_sim *sim = arg;
	pthread_setname_np(pthread_self(), "pvmsim-ticker");
	pthread_mutex_lock(&sim->lock);
	while (!sim->stopping) {
		uint64_t kicks = sim->kicks;
		int64_t now = pvm_mono_ns();
		int64_t next = now + 1000000000;
		bool changed = sim_jobs_tick(sim, now, &next);
		struct sim_parked *due = sim_parked_due(sim, now, &next);
		if (changed || due) {
			pthread_mutex_unlock(&sim->lock);
			sim_parked_resume(due);
			if (changed)
				sim_persist(sim);
			pthread_mutex_lock(&sim->lock);
			continue; /* state changed: recompute before sleeping */
		}
		if (sim->stopping || sim->kicks != kicks)
			continue;
		struct timespec ts = {.tv_sec = next / 1000000000, .tv_nsec = next % 1000000000};
		pthread_cond_timedwait(&sim->cond, &sim->lock, &ts);
	}
	pthread_mutex_unlock(&sim->lock);
	return NULL;
}

static int timing_parse(json_t *t, struct sim_timing *out, char *err, size_t errn)
{
	static const struct {
		const char *key;
		size_t off;
		int min, max;
	} keys[] = {
	        {"job_not_started_ms", offsetof(struct sim_timing, job_not_started_ms), 0, 600000},
	        {"job_duration_ms", offsetof(struct sim_timing, job_duration_ms), 1, 3600000},
	        {"job_immediate_ms", offsetof(struct sim_timing, job_immediate_ms), 1, 3600000},
	        {"job_generic_ms", offsetof(struct sim_timing, job_generic_ms), 1, 3600000},
	        {"session_idle_ms", offsetof(struct sim_timing, session_idle_ms), 10, 86400000},
	        {"event_wait_ms", offsetof(struct sim_timing, event_wait_ms), 10, 600000},
	        {"finished_job_keep_s", offsetof(struct sim_timing, finished_job_keep_s), 1, 86400},
	        {"max_finished_jobs", offsetof(struct sim_timing, max_finished_jobs), 1, 100000},
	        {"pcm_interval_ms", offsetof(struct sim_timing, pcm_interval_ms), 10, 3600000},
	};
	const char *k;
	json_t *v;
	json_object_foreach(t, k, v)
	{
		size_t i;
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (strcmp(keys[i].key, k) == 0)
				break;
		if (i == sizeof(keys) / sizeof(keys[0])) {
			snprintf(err, errn, "config: timing.%s: unknown key", k);
			return PVM_ECONFIG;
		}
		if (!json_is_integer(v) || json_integer_value(v) < keys[i].min ||
		    json_integer_value(v) > keys[i].max) {
			snprintf(err, errn, "config: timing.%s: an integer %d..%d", k, keys[i].min,
			         keys[i].max);
			return PVM_ECONFIG;
		}
		*(int *)((char *)out + keys[i].off) = (int)json_integer_value(v);
	}
	return 0;
}

/* Reads the config file (NULL: defaults). Fills sim and *inventory (a new reference). */
static int config_load(struct pvm_sim *sim, const char *path, json_t **inventory, char *err,
                       size_t errn)
{
	sim->timing = (struct sim_timing){.job_not_started_ms = 200,
	                                  .job_duration_ms = 3000,
	                                  .job_immediate_ms = 1000,
	                                  .job_generic_ms = 1000,
	                                  .session_idle_ms = 7200000,
	                                  .event_wait_ms = 10000,
	                                  .finished_job_keep_s = 3600,
	                                  .max_finished_jobs = 1000,
	                                  .pcm_interval_ms = 30000};
	sim->user = strdup("hscroot");
	sim->password = strdup("abc123");
	*inventory = NULL;
	if (!path)
		return 0;
	json_error_t je;
	json_t *c = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(c)) {
		snprintf(err, errn, "config %s: line %d: %s", path, je.line,
		         c ? "not an object" : je.text);
		json_decref(c);
		return PVM_ECONFIG;
	}
	int rc = 0;
	const char *k;
	json_t *v;
	json_object_foreach(c, k, v)
	{
		if (strcmp(k, "user") == 0 || strcmp(k, "password") == 0) {
			if (!json_is_string(v) || !*json_string_value(v)) {
				snprintf(err, errn, "config: %s: a non-empty string", k);
				rc = PVM_ECONFIG;
				break;
			}
			char **dst = strcmp(k, "user") == 0 ? &sim->user : &sim->password;
			free(*dst);
			*dst = strdup(json_string_value(v));
		} else if (strcmp(k, "seed") == 0) {
			if (!json_is_integer(v)) {
				snprintf(err, errn, "config: seed: an integer");
				rc = PVM_ECONFIG;
				break;
			}
			sim->faults.seed = (uint64_t)json_integer_value(v);
		} else if (strcmp(k, "timing") == 0) {
			if (!json_is_object(v) || (rc = timing_parse(v, &sim->timing, err, errn))) {
				if (!rc)
					snprintf(err, errn, "config: timing: an object");
				rc = PVM_ECONFIG;
				break;
			}
		} else if (strcmp(k, "faults") == 0) {
			if (sim_faults_parse(v, &sim->faults, err, errn)) {
				rc = PVM_ECONFIG;
				break;
			}
		} else if (strcmp(k, "inventory") == 0) {
			if (json_is_object(v)) {
				*inventory = json_incref(v);
			} else if (json_is_string(v)) {
				char *dup = strdup(path), *ipath = NULL;
				const char *iv = json_string_value(v);
				if (iv[0] == '/')
					ipath = strdup(iv);
				else if (asprintf(&ipath, "%s/%s", dirname(dup), iv) < 0)
					ipath = NULL;
				free(dup);
				*inventory =
				        ipath ? json_load_file(ipath, JSON_REJECT_DUPLICATES, &je)
				              : NULL;
				if (!*inventory)
					snprintf(err, errn, "inventory %s: line %d: %s",
					         ipath ? ipath : iv, je.line, je.text);
				free(ipath);
				if (!*inventory) {
					rc = PVM_ECONFIG;
					break;
				}
			} else {
				snprintf(err, errn, "config: inventory: a file name or an object");
				rc = PVM_ECONFIG;
				break;
			}
		} else {
			snprintf(err, errn, "config: %s: unknown key", k);
			rc = PVM_ECONFIG;
			break;
		}
	}
	json_decref(c);
	return rc;
}

static uint64_t count_lines(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	uint64_t n = 0;
	int ch;
	while ((ch = getc_unlocked(f)) != EOF)
		if (ch == '\n')
			n++;
	fclose(f);
	return n;
}

int pvm_sim_create(const struct pvm_sim_opts *opts, struct pvm_sim **out)
{
	*out = NULL;
	if (!opts->state_dir)
		return PVM_EINVAL;
	struct pvm_sim *sim = calloc(1, sizeof(*sim));
	if (!sim)
		return PVM_ENOMEM;
	pthread_mutex_init(&sim->lock, NULL);
	pthread_mutex_init(&sim->persist_lock, NULL);
	pthread_mutex_init(&sim->audit_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sim->cond, &ca);
	pthread_condattr_destroy(&ca);
	sim->audit_fd = -1;
	sim->mode = opts->mode;
	sim->quiet = opts->quiet;
	sim->next_event_id = 1;
	sim->next_job_id = (uint64_t)pvm_now_ms();
	sim->faults.seed = 0;
	sim->faults.job_failure_rates = json_object();
	sim->counters = calloc(SIM_COUNTERS, sizeof(*sim->counters));
	sim->state_dir = strdup(opts->state_dir);
	xmlInitParser();
	char err[256] = "";
	json_t *inv = NULL;
	bool seeded = false;
	int rc = config_load(sim, opts->config_path, &inv, err, sizeof(err));
	if (rc) {
		pvm_error("pvmsim: %s", err);
		goto fail;
	}
	if (!sim->counters || !sim->state_dir || !sim->user || !sim->password) {
		rc = PVM_ENOMEM;
		goto fail;
	}
	seeded = sim->faults.seed != 0;
	if (!seeded)
		sim->faults.seed =
		        sim_mix64((uint64_t)pvm_mono_ns() ^ ((uint64_t)getpid() << 32)) >> 1;
	sim->inventory = inv ? inv : sim_inventory_default();
	inv = NULL;
	sim_uuid_from("console", false, sim->console_uuid);

	if (mkdir(sim->state_dir, 0700) != 0 && errno != EEXIST) {
		rc = -errno;
		pvm_error("pvmsim: mkdir %s: %s", sim->state_dir, strerror(errno));
		goto fail;
	}
	char *tokens = NULL;
	if (asprintf(&tokens, "%s/tokens", sim->state_dir) < 0) {
		rc = PVM_ENOMEM;
		goto fail;
	}
	if (mkdir(tokens, 0700) != 0 && errno != EEXIST) {
		rc = -errno;
		free(tokens);
		goto fail;
	}
	free(tokens);

	rc = sim_state_load(sim);
	if (rc == -ENOENT) {
		rc = sim_inventory_load(sim, sim->inventory, err, sizeof(err));
		if (rc) {
			pvm_error("pvmsim: %s", err);
			goto fail;
		}
		rc = sim_persist(sim);
	}
	if (rc)
		goto fail;

	char *apath = NULL;
	if (asprintf(&apath, "%s/audit.jsonl", sim->state_dir) < 0) {
		rc = PVM_ENOMEM;
		goto fail;
	}
	sim->audit_count = count_lines(apath);
	sim->audit_fd = open(apath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	free(apath);
	if (sim->audit_fd < 0) {
		rc = -errno;
		goto fail;
	}

	if (pthread_create(&sim->ticker, NULL, ticker, sim) != 0) {
		rc = PVM_ENOMEM;
		goto fail;
	}
	sim->ticker_started = true;
	/* Read before serving: from then on PUT /sim/faults may replace sim->faults. */
	unsigned long long seed = (unsigned long long)sim->faults.seed;
	rc = sim_server_start(sim, opts->listen_host ? opts->listen_host : "127.0.0.1", opts->port,
	                      opts->tls_cert, opts->tls_key);
	if (rc)
		goto fail;
	pvm_info("pvmsim: %s mode, listening on %s, state in %s, fault seed=%llu%s",
	         sim->mode == PVM_SIM_HMC ? "hmc" : "novalink", sim->base, sim->state_dir, seed,
	         seeded ? "" : " (random)");
	if (!sim->quiet) {
		printf("pvmsim: listening on %s mode=%s seed=%llu\n", sim->base,
		       sim->mode == PVM_SIM_HMC ? "hmc" : "novalink", seed);
		fflush(stdout);
	}
	*out = sim;
	return 0;
fail:
	json_decref(inv);
	pvm_sim_destroy(sim);
	return rc ? rc : PVM_ECONFIG;
}

void pvm_sim_destroy(struct pvm_sim *sim)
{
	if (!sim)
		return;
	sim_server_stop(sim);
	if (sim->ticker_started) {
		pthread_mutex_lock(&sim->lock);
		sim->stopping = true;
		sim_kick(sim);
		pthread_mutex_unlock(&sim->lock);
		pthread_join(sim->ticker, NULL);
	}
	sim_jobs_clear(sim);
	sim_objs_clear(sim);
	sim_pcm_clear(sim);
	free(sim->objs);
	sim_sessions_clear(sim);
	for (int i = 0; i < SIM_EVENT_RING; i++) {
		free(sim->ring[i].data);
		free(sim->ring[i].detail);
	}
	for (int i = 0; i < SIM_AUDIT_RING; i++)
		free(sim->audit_ring[i]);
	while (sim->parked) { /* only when the server never started */
		struct sim_parked *p = sim->parked;
		sim->parked = p->next;
		free(p);
	}
	if (sim->audit_fd >= 0)
		close(sim->audit_fd);
	sim_faults_fini(&sim->faults);
	json_decref(sim->inventory);
	free(sim->counters);
	free(sim->state_dir);
	free(sim->user);
	free(sim->password);
	pthread_cond_destroy(&sim->cond);
	pthread_mutex_destroy(&sim->lock);
	pthread_mutex_destroy(&sim->persist_lock);
	pthread_mutex_destroy(&sim->audit_lock);
	free(sim);
}
