/* hostinfo.c: the host sampler (hostinfo.h): what GET /v1/host needs beyond the managed
 * system entry, read every interval on its own thread ("pvm-host"), so that a read of
 * /v1/host never waits on PowerVM:
 *   disk       the configured storage: the volume group powervm_volume_group_name (on
 *              powervm_volume_group_vios_name, or the first VIOS that has it) for localdisk,
 *              the shared storage pool powervm_cluster_name (or the only one) for ssp:
 *              total, used and free GB (nova's local_gb and the DISK_GB inventory);
 *   cpu_stats  from the newest phyp sample of the pcm LongTermMonitor (long-term monitoring
 *              is switched on through the system's pcm preferences when it is off): the
 *              hypervisor's cumulative cycle counters turned into nanoseconds, as nova's
 *              get_host_cpu_stats reports them (kernel: firmware; user: every partition's
 *              and VIOS's utilized cycles; idle: the rest of the capacity; iowait 0;
 *              frequency in MHz). Consumers take the difference of two readings;
 *   uptime_s   the system's time base: timeBasedCycles / procCyclesPerSecond.
 * A failed read keeps the previous value (with its sampled_at) and is logged once per
 * change of error.
 */
#include "hostinfo.h"

#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/pvm_objects.h"
#include "pvm/util.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct pvm_hostinfo {
	struct pvm_client *client;
	struct pvm_cache *cache;
	const struct pvm_config *cfg;
	char ms_uuid[64];
	int64_t interval_ms;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping; /* guarded by mu */
	char last_err[2][256];
};

static void note_error(struct pvm_hostinfo *h, int which, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void note_error(struct pvm_hostinfo *h, int which, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (strcmp(msg, h->last_err[which]) != 0)
		pvm_warn("host sampler: %s", msg);
	pvm_strlcpy(h->last_err[which], msg, sizeof(h->last_err[which]));
}

static void clear_error(struct pvm_hostinfo *h, int which)
{
	if (h->last_err[which][0])
		pvm_info("host sampler: %s read again", which ? "cpu statistics" : "disk");
	h->last_err[which][0] = 0;
}

/* ---- disk ---- */

static int read_vg(struct pvm_hostinfo *h, double *cap, double *free_gb, double *ours, char *where,
                   size_t wn, struct pvm_rest_error *err)
{
	char path[160];
	snprintf(path, sizeof(path), "uom/ManagedSystem/%s/VirtualIOServer", h->ms_uuid);
	struct pvm_resp r = {0};
	struct pvm_vios_list *vl = NULL;
	int rc = pvm_client_get(h->client, path, "group=None", NULL, &r, err);
	if (!rc)
		rc = pvm_parse_vios(r.body, r.len, NULL, &vl, err);
	pvm_resp_fini(&r);
	if (rc)
		return rc;
	const char *want = h->cfg->volume_group_name ? h->cfg->volume_group_name : "rootvg";
	rc = PVM_ENOTFOUND;
	for (size_t i = 0; i < vl->count && rc == PVM_ENOTFOUND; i++) {
		const struct pvm_vios *v = &vl->items[i];
		if (h->cfg->volume_group_vios_name &&
		    strcmp(v->lpar.name ? v->lpar.name : "", h->cfg->volume_group_vios_name) != 0)
			continue;
		snprintf(path, sizeof(path), "uom/VirtualIOServer/%s/VolumeGroup",
		         v->lpar.meta.uuid);
		struct pvm_volume_group_list *gl = NULL;
		int grc = pvm_client_get(h->client, path, NULL, NULL, &r, err);
		if (!grc)
			grc = pvm_parse_volume_group(r.body, r.len, NULL, &gl, err);
		pvm_resp_fini(&r);
		if (grc) {
			rc = grc;
			break;
		}
		for (size_t k = 0; k < gl->count; k++)
			if (strcmp(gl->items[k].name, want) == 0) {
				*cap = gl->items[k].capacity_gb;
				*free_gb = gl->items[k].available_gb > 0 ? gl->items[k].available_gb
				                                         : gl->items[k].free_gb;
				snprintf(where, wn, "%s/%s", v->lpar.name ? v->lpar.name : "?",
				         want);
				/* boot disks (names.h: b_ + 13 hex digits) are nova's own use */
				for (size_t j = 0; j < gl->items[k].n_vdisks; j++) {
					const struct pvm_vdisk *vd = &gl->items[k].vdisks[j];
					if (vd->name && strlen(vd->name) == 15 &&
					    strncmp(vd->name, "b_", 2) == 0)
						*ours += vd->capacity_gb;
				}
				rc = 0;
				break;
			}
		pvm_volume_group_list_free(gl);
	}
	if (rc == PVM_ENOTFOUND)
		snprintf(err->message, sizeof(err->message),
		         "no VIOS%s%s of this managed system has the volume group %s "
		         "(powervm_volume_group_name)",
		         h->cfg->volume_group_vios_name ? " named " : "",
		         h->cfg->volume_group_vios_name ? h->cfg->volume_group_vios_name : "",
		         want);
	pvm_vios_list_free(vl);
	return rc;
}

static int read_ssp(struct pvm_hostinfo *h, double *cap, double *free_gb, char *where, size_t wn,
                    struct pvm_rest_error *err)
{
	struct pvm_resp r = {0};
	struct pvm_ssp_list *l = NULL;
	int rc = pvm_client_get(h->client, "uom/SharedStoragePool", "group=None", NULL, &r, err);
	if (!rc)
		rc = pvm_parse_ssp(r.body, r.len, NULL, &l, err);
	pvm_resp_fini(&r);
	if (rc)
		return rc;
	const char *want = h->cfg->cluster_name;
	const struct pvm_ssp *hit = NULL;
	for (size_t i = 0; i < l->count; i++)
		if (want ? strcmp(l->items[i].name, want) == 0 : l->count == 1)
			hit = &l->items[i];
	if (hit) {
		*cap = hit->capacity_gb;
		*free_gb = hit->free_gb;
		snprintf(where, wn, "%s", hit->name);
	} else {
		rc = PVM_ENOTFOUND;
		if (want)
			snprintf(err->message, sizeof(err->message),
			         "no shared storage pool named %s (powervm_cluster_name)", want);
		else
			snprintf(err->message, sizeof(err->message),
			         "%zu shared storage pools: set powervm_cluster_name", l->count);
	}
	pvm_ssp_list_free(l);
	return rc;
}

static void sample_disk(struct pvm_hostinfo *h)
{
	struct pvm_rest_error err = {0};
	double cap = 0, free_gb = 0, ours = 0;
	char where[200] = "";
	bool ssp = h->cfg->disk_driver == PVM_DISK_SSP;
	int rc = ssp ? read_ssp(h, &cap, &free_gb, where, sizeof(where), &err)
	             : read_vg(h, &cap, &free_gb, &ours, where, sizeof(where), &err);
	if (rc) {
		note_error(h, 0, "reading the %s: %s", ssp ? "shared storage pool" : "volume group",
		           err.message[0] ? err.message : pvm_strerror(rc));
		return;
	}
	clear_error(h, 0);
	json_int_t total = (json_int_t)cap, freeg = (json_int_t)free_gb;
	if (freeg > total)
		freeg = total;
	/* Reserved for nova's inventory: what is used by others than this host's boot disks
	 * (the VIOS's own volumes; in a shared pool, everything already used: other hosts
	 * share it, and linked clones take next to nothing) */
	json_int_t reserved = total - freeg - (json_int_t)(ours + 0.999);
	if (reserved < 0)
		reserved = 0;
	pvm_cache_set_host_extra(h->cache, "disk",
	                         json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "driver",
	                                   ssp ? "ssp" : "localdisk", "storage", where, "total_gb",
	                                   total, "used_gb", total - freeg, "free_gb", freeg,
	                                   "reserved_gb", reserved, "sampled_at",
	                                   (json_int_t)pvm_now_ms()));
}

/* ---- cpu statistics ---- */

static double num(json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

static double sum_utilized(json_t *arr)
{
	double s = 0;
	size_t i;
	json_t *p;
	json_array_foreach(arr, i, p)
	{
		json_t *pr = json_object_get(p, "processor");
		s += num(pr, "utilizedCappedProcCycles") + num(pr, "utilizedUnCappedProcCycles");
	}
	return s;
}

int pvm_hostinfo_cpu_stats(const char *json, size_t len, json_t **stats, double *uptime_s,
                           char *why, size_t wn)
{
	json_error_t je;
	/* counters are unsigned 64-bit: beyond jansson's integers, so read every number as real */
	json_t *doc = json_loadb(json, len, JSON_DECODE_INT_AS_REAL, &je);
	if (!doc) {
		snprintf(why, wn, "the sample is not JSON (line %d: %s)", je.line, je.text);
		return PVM_ECORRUPT;
	}
	json_t *s = json_object_get(json_object_get(doc, "systemUtil"), "utilSample");
	json_t *proc = json_object_get(s, "processor");
	double tb = num(s, "timeBasedCycles"), hz = num(proc, "procCyclesPerSecond");
	double units = num(proc, "configurableProcUnits");
	if (!json_is_object(s) || !(tb > 0) || !(hz > 0) || !(units > 0)) {
		json_decref(doc);
		snprintf(why, wn,
		         "the sample lacks systemUtil.utilSample timeBasedCycles, "
		         "processor.procCyclesPerSecond or configurableProcUnits");
		return PVM_ECORRUPT;
	}
	double total = tb * units;
	double kernel = num(json_object_get(s, "systemFirmware"), "utilizedProcCycles");
	double user = sum_utilized(json_object_get(s, "lparsUtil")) +
	              sum_utilized(json_object_get(s, "viosUtil"));
	double idle = total - kernel - user;
	if (idle < 0)
		idle = 0;
	double ns = 1e9 / hz;
	*stats = json_pack("{s:I, s:I, s:I, s:I, s:I, s:s?}", "kernel", (json_int_t)(kernel * ns),
	                   "user", (json_int_t)(user * ns), "idle", (json_int_t)(idle * ns),
	                   "iowait", (json_int_t)0, "frequency", (json_int_t)(hz / 1e6),
	                   "sample_time", json_string_value(json_object_get(s, "timeStamp")));
	*uptime_s = tb / hz;
	json_decref(doc);
	return *stats ? 0 : PVM_ENOMEM;
}

static int enable_ltm(void *arg, const char *entry, size_t len, char **body)
{
	bool *changed = arg;
	struct pvm_rest_error err = {0};
	*body = pvm_build_pcm_ltm_enable(entry, len, changed, &err);
	return *body ? 0 : err.code ? err.code : PVM_ENOMEM;
}

static int read_feed(struct pvm_hostinfo *h, const char *path, struct pvm_ltm_list **l,
                     struct pvm_rest_error *err)
{
	struct pvm_resp r = {0};
	int rc = pvm_client_get(h->client, path, NULL, NULL, &r, err);
	if (!rc)
		rc = pvm_parse_ltm_feed(r.body, r.len, l, err);
	pvm_resp_fini(&r);
	return rc;
}

static void sample_cpu(struct pvm_hostinfo *h)
{
	struct pvm_rest_error err = {0};
	char path[200];
	snprintf(path, sizeof(path), "pcm/ManagedSystem/%s/RawMetrics/LongTermMonitor", h->ms_uuid);
	struct pvm_resp r = {0};
	struct pvm_ltm_list *l = NULL;
	int rc = read_feed(h, path, &l, &err);
	if (!rc && l->count == 0) {
		/* monitoring is off (204): switch it on, then read the feed again */
		pvm_ltm_list_free(l);
		l = NULL;
		bool changed = false;
		char pref[160];
		snprintf(pref, sizeof(pref), "pcm/ManagedSystem/%s/preferences", h->ms_uuid);
		struct pvm_update u = {.path = pref,
		                       .content_type = "application/vnd.ibm.powervm.pcm+xml; "
		                                       "type=ManagedSystemPcmPreference",
		                       .change = enable_ltm,
		                       .arg = &changed};
		rc = pvm_client_update(h->client, &u, &r, &err);
		pvm_resp_fini(&r);
		if (!rc) {
			if (changed)
				pvm_info("host sampler: long-term monitoring switched on for %s "
				         "(pcm preferences)",
				         h->ms_uuid);
			rc = read_feed(h, path, &l, &err);
		}
	}
	if (rc) {
		note_error(h, 1, "reading %s: %s", path,
		           err.message[0] ? err.message : pvm_strerror(rc));
		pvm_ltm_list_free(l);
		return;
	}
	/* the newest phyp sample: names carry the time, so the greatest title */
	const struct pvm_ltm_sample *best = NULL;
	for (size_t i = 0; i < l->count; i++) {
		const struct pvm_ltm_sample *s = &l->items[i];
		bool phyp = s->category ? strcasecmp(s->category, "phyp") == 0
		                        : strstr(s->title, "_phyp_") != NULL;
		if (phyp && (!best || strcmp(s->title, best->title) > 0))
			best = s;
	}
	if (!best) {
		note_error(h, 1, "the LongTermMonitor feed has no phyp sample yet");
		pvm_ltm_list_free(l);
		return;
	}
	struct pvm_req rq = {.method = PVM_GET, .path = best->href, .accept = "application/json"};
	rc = pvm_client_request(h->client, &rq, &r, &err);
	json_t *stats = NULL;
	double up = 0;
	char why[256] = "";
	if (!rc && pvm_hostinfo_cpu_stats(r.body, r.len, &stats, &up, why, sizeof(why)) != 0) {
		rc = PVM_ECORRUPT;
		pvm_strlcpy(err.message, why, sizeof(err.message));
	}
	pvm_resp_fini(&r);
	if (rc) {
		note_error(h, 1, "reading sample %s: %s", best->title,
		           err.message[0] ? err.message : pvm_strerror(rc));
		pvm_ltm_list_free(l);
		return;
	}
	pvm_ltm_list_free(l);
	clear_error(h, 1);
	json_object_set_new(stats, "sampled_at", json_integer(pvm_now_ms()));
	pvm_cache_set_host_extra(h->cache, "cpu_stats", stats);
	pvm_cache_set_host_extra(h->cache, "uptime_s", json_integer((json_int_t)up));
}

static void *run(void *arg)
{
	struct pvm_hostinfo *h = arg;
	pthread_setname_np(pthread_self(), "pvm-host");
	pthread_mutex_lock(&h->mu);
	while (!h->stopping) {
		pthread_mutex_unlock(&h->mu);
		sample_disk(h);
		sample_cpu(h);
		pthread_mutex_lock(&h->mu);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += h->interval_ms / 1000;
		ts.tv_nsec += (h->interval_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (!h->stopping && pthread_cond_timedwait(&h->cv, &h->mu, &ts) == 0)
			;
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

int pvm_hostinfo_start(struct pvm_client *client, struct pvm_cache *cache,
                       const struct pvm_config *cfg, int64_t interval_ms, struct pvm_hostinfo **out)
{
	struct pvm_hostinfo *h = calloc(1, sizeof(*h));
	if (!h)
		return PVM_ENOMEM;
	h->client = client;
	h->cache = cache;
	h->cfg = cfg;
	h->interval_ms = interval_ms > 0 ? interval_ms : 30000;
	pvm_strlcpy(h->ms_uuid, pvm_cache_ms_uuid(cache), sizeof(h->ms_uuid));
	pthread_mutex_init(&h->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cv, &ca);
	pthread_condattr_destroy(&ca);
	/* the first sample before the API serves, so /v1/host is complete from the start */
	sample_disk(h);
	sample_cpu(h);
	int rc = pthread_create(&h->thread, NULL, run, h);
	if (rc) {
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		free(h);
		return -rc;
	}
	h->started = true;
	*out = h;
	return 0;
}

void pvm_hostinfo_stop(struct pvm_hostinfo *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	h->stopping = true;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	if (h->started)
		pthread_join(h->thread, NULL);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h);
}
