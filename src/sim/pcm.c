/* pcm.c: pvmsim's performance and capacity monitoring (/rest/api/pcm): the preferences of a
 * managed system (long-term monitoring on or off) and its LongTermMonitor samples, JSON
 * documents in the shape of the captured phyp sample (phyp_pcm_data.body.json).
 *
 * DESIGN: processor counters are cumulative cycles. Each partition accumulates entitled
 * and utilized cycles while it is active (any state but not activated / error / not
 * available): sim_pcm_account() adds the cycles of the elapsed time at every state change
 * (model.c), and a sample adds the time since the last change, so counters advance exactly
 * with the partitions running and never go back (they are in the persisted props).
 * timeBasedCycles grows with the system's uptime at procCyclesPerSecond. A sample is taken
 * when the feed is read and the last one is older than timing.pcm_interval_ms; the last 16
 * are kept in memory (a restart forgets them, as the counters keep counting). Callers hold
 * sim->lock.
 */
#include "sim.h"
#include "srv.h"
#include "xmlw.h"

#include "pvm/util.h"

#include <ctype.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define NS_PCM   "http://www.ibm.com/xmlns/systems/power/firmware/pcm/mc/2012_10/"
#define CYCLES_S 512000000.0 /* procCyclesPerSecond */

static bool on(const struct sim_obj *o)
{
	const char *s = sim_str(o, "state", "not activated");
	return strcmp(s, "not activated") != 0 && strcmp(s, "error") != 0 &&
	       strcmp(s, "not available") != 0;
}

static double units_of(const struct sim_obj *o)
{
	return sim_bool(o, "dedicated", false) ? (double)sim_int(o, "desired_vcpus", 1)
	                                       : sim_real(o, "desired_units", 0.1);
}

/* The share of its entitlement a partition uses: 0.2 to 0.59, fixed per partition. */
static double util_of(const struct sim_obj *o)
{
	return 0.2 + (double)(sim_hash_str(17, o->uuid) % 40) / 100.0;
}

static int64_t since_of(const struct sim_obj *o)
{
	return sim_int(o, "pcm_t", o->created_ms);
}

void sim_pcm_account(struct sim_obj *o, int64_t now_ms)
{
	if (o->kind != SIM_LPAR && o->kind != SIM_VIOS)
		return;
	int64_t t0 = since_of(o);
	if (now_ms > t0 && on(o)) {
		double ent = (double)(now_ms - t0) / 1000.0 * units_of(o) * CYCLES_S;
		json_object_set_new(o->props, "pcm_ent",
		                    json_real(sim_real(o, "pcm_ent", 0) + ent));
		json_object_set_new(o->props, "pcm_util",
		                    json_real(sim_real(o, "pcm_util", 0) + ent * util_of(o)));
	}
	if (now_ms > t0)
		json_object_set_new(o->props, "pcm_t", json_integer(now_ms));
}

/* Counters of a partition at time t (>= its last accounting). */
static void counters_at(const struct sim_obj *o, int64_t t, double *ent, double *util)
{
	*ent = sim_real(o, "pcm_ent", 0);
	*util = sim_real(o, "pcm_util", 0);
	int64_t t0 = since_of(o);
	if (t > t0 && on(o)) {
		double e = (double)(t - t0) / 1000.0 * units_of(o) * CYCLES_S;
		*ent += e;
		*util += e * util_of(o);
	}
}

void sim_pcm_clear(struct pvm_sim *sim)
{
	for (int i = 0; i < SIM_PCM_SAMPLES; i++) {
		free(sim->pcm[i].doc);
		memset(&sim->pcm[i], 0, sizeof(sim->pcm[i]));
	}
}

static const char *title_state(const char *s, char *buf, size_t n)
{
	snprintf(buf, n, "%s", s);
	bool start = true;
	for (char *p = buf; *p; p++) {
		if (start)
			*p = (char)toupper((unsigned char)*p);
		start = *p == ' ';
	}
	return buf;
}

static json_t *part_util(const struct sim_obj *o, int64_t t, bool vios)
{
	double ent, util;
	counters_at(o, t, &ent, &util);
	char st[48];
	bool capped = strcmp(sim_str(o, "sharing_mode", "uncapped"), "capped") == 0;
	json_t *proc = json_pack(
	        "{s:i, s:s, s:I, s:f, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "poolId",
	        (int)sim_int(o, "pool_id", 0), "mode", capped ? "cap" : "uncap",
	        "maxVirtualProcessors", (json_int_t)sim_int(o, "max_vcpus", 1), "maxProcUnits",
	        sim_real(o, "max_units", 0.1), "weight", (json_int_t)sim_int(o, "weight", 128),
	        "entitledProcCycles", ent, "utilizedCappedProcCycles", util,
	        "utilizedUnCappedProcCycles", 0.0, "idleProcCycles", ent - util,
	        "donatedProcCycles", 0.0, "timeSpentWaitingForDispatch", 0.0, "totalInstructions",
	        util * 0.6, "totalInstructionsExecutionTime", util * 0.7);
	json_t *mem =
	        vios ? json_pack("{s:I}", "assignedMem", (json_int_t)sim_int(o, "desired_mem", 0))
	             : json_pack("{s:I, s:I}", "logicalMem",
	                         (json_int_t)sim_int(o, "desired_mem", 0), "backedPhysicalMem",
	                         (json_int_t)(on(o) ? sim_int(o, "desired_mem", 0) : 0));
	json_t *p = json_pack("{s:I, s:s, s:s, s:s, s:i, s:o, s:o}", "id",
	                      (json_int_t)sim_int(o, "id", 0), "uuid", o->uuid, "name",
	                      sim_str(o, "name", ""), "state",
	                      title_state(sim_str(o, "state", "not activated"), st, sizeof(st)),
	                      "affinityScore", 100, "memory", mem, "processor", proc);
	if (!vios)
		json_object_set_new(p, "type", json_string("aixlinux"));
	return p;
}

static void iso_time(int64_t ms, char *buf, size_t n, bool compact)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	strftime(buf, n, compact ? "%Y%m%dT%H%M%S+0000" : "%Y-%m-%dT%H:%M:%S+0000", &tm);
}

static char *sample_doc(struct pvm_sim *sim, const struct sim_obj *ms, int64_t t)
{
	char mtms[96], ts[40];
	snprintf(mtms, sizeof(mtms), "%s-%s*%s", sim_str(ms, "machine_type", ""),
	         sim_str(ms, "model", ""), sim_str(ms, "serial", ""));
	iso_time(t, ts, sizeof(ts), false);
	double conf = sim_real(ms, "processor_units", 0);
	int64_t avail_mem;
	double avail_units;
	sim_ms_available(sim, ms, &avail_mem, &avail_units);
	double up = (double)(t - sim_int(ms, "boot_ms", ms->created_ms)) / 1000.0;
	if (up < 0)
		up = 0;
	double tbc = up * CYCLES_S;
	json_t *lpars = json_array(), *vioses = json_array();
	double util_sum = 0;
	for (size_t i = 0; i < sim->nobjs; i++) {
		const struct sim_obj *o = sim->objs[i];
		if ((o->kind != SIM_LPAR && o->kind != SIM_VIOS) || strcasecmp(o->parent, ms->uuid))
			continue;
		json_t *p = part_util(o, t, o->kind == SIM_VIOS);
		util_sum += json_number_value(json_object_get(json_object_get(p, "processor"),
		                                              "utilizedCappedProcCycles"));
		json_array_append_new(o->kind == SIM_VIOS ? vioses : lpars, p);
	}
	/* firmware: half a percent of one processor unit's time per configured unit */
	double fw = tbc * conf * 0.005;
	json_t *j = json_pack(
	        "{s:{s:{s:s, s:s, s:s, s:s, s:s}, s:{s:s, s:i, s:[], s:f, s:{s:f, s:I},"
	        " s:{s:f, s:f, s:f, s:f}, s:{s:I, s:I, s:I}, s:[{s:i, s:s, s:f, s:f, s:f, s:f}],"
	        " s:o, s:o}}}",
	        "systemUtil", "utilInfo", "version", "1.3.0", "metricType", "Raw", "monitoringType",
	        "LTM", "mtms", mtms, "name", sim_str(ms, "name", ""), "utilSample", "timeStamp", ts,
	        "status", 0, "errorInfo", "timeBasedCycles", tbc, "systemFirmware",
	        "utilizedProcCycles", fw, "assignedMem",
	        (json_int_t)sim_int(ms, "hypervisor_memory_mb", 0), "processor", "totalProcUnits",
	        conf, "configurableProcUnits", conf, "availableProcUnits", avail_units,
	        "procCyclesPerSecond", CYCLES_S, "memory", "totalMem",
	        (json_int_t)sim_int(ms, "memory_mb", 0), "availableMem", (json_int_t)avail_mem,
	        "configurableMem", (json_int_t)sim_int(ms, "memory_mb", 0), "sharedProcessorPool",
	        "id", 0, "name", "DefaultPool", "assignedProcCycles", tbc * conf,
	        "utilizedPoolCycles", util_sum, "maxProcUnits", conf, "borrowedPoolProcUnits",
	        avail_units, "lparsUtil", lpars, "viosUtil", vioses);
	char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(17)) : NULL;
	json_decref(j);
	return s;
}

static bool ltm_on(const struct sim_obj *ms)
{
	return json_is_true(json_object_get(json_object_get(ms->props, "pcm"), "ltm"));
}

static void pref_etag(const struct sim_obj *ms, char *out, size_t n)
{
	char *s = json_dumps(json_object_get(ms->props, "pcm"), JSON_COMPACT | JSON_SORT_KEYS);
	uint64_t h = sim_hash_str(sim_hash_str(9, ms->uuid), s ? s : "");
	free(s);
	snprintf(out, n, "%d", (int)(int32_t)(h >> 33));
}

static bool pflag(const struct sim_obj *ms, const char *k)
{
	return json_is_true(json_object_get(json_object_get(ms->props, "pcm"), k));
}

static void prefs_feed(struct pvm_sim *sim, struct route *rt, struct out *o, struct sim_obj *ms)
{
	(void)sim;
	struct pvm_buf b;
	pvm_buf_init(&b);
	char t[32], id[SIM_UUID_LEN], seed[80];
	pvm_fmt_time(pvm_now_ms(), t, sizeof(t));
	snprintf(seed, sizeof(seed), "pcmpref:%s", ms->uuid);
	sim_uuid_from(seed, false, id);
	pvm_buf_printf(
	        &b,
	        "<feed " ATOM_ROOT_ATTRS ">\n    <id>%s</id>\n"
	        "    <title type=\"text\">Performance and Capacity Monitoring Preferences</title>\n"
	        "    <subtitle type=\"text\"/>\n"
	        "    <link rel=\"self\" href=\"%s/rest/api/pcm/ManagedSystem/%s/preferences\"/>\n"
	        "    <generator uri=\"" GENERATOR "\" version=\"1\"/>\n    <entry>\n"
	        "        <id>%s</id>\n        <updated>%s</updated>\n"
	        "        <title type=\"text\">Performance and Capacity Monitoring "
	        "Preferences</title>\n        <published>%s</published>\n"
	        "        <author>\n            <name>" GENERATOR "</name>\n        </author>\n"
	        "        <content type=\"application/xml\">\n",
	        ms->uuid, rt->base, ms->uuid, id, t, t);
	obj_open(&b, "ManagedSystemPcmPreference", NS_PCM, "V1_2_0");
	obj_meta(&b, ms);
	el(&b, 1, "SystemName", ROR, sim_str(ms, "name", ""));
	open_el(&b, 1, "MachineTypeModelSerialNumber", ROR, "V1_2_0");
	el(&b, 2, "MachineType", ROR, sim_str(ms, "machine_type", ""));
	el(&b, 2, "Model", ROR, sim_str(ms, "model", ""));
	el(&b, 2, "SerialNumber", ROR, sim_str(ms, "serial", ""));
	close_el(&b, 1, "MachineTypeModelSerialNumber");
	elb(&b, 1, "LongTermMonitorEnabled", UOD, pflag(ms, "ltm"));
	elb(&b, 1, "AggregationEnabled", UOD, pflag(ms, "aggregation"));
	elb(&b, 1, "ShortTermMonitorEnabled", UOD, pflag(ms, "stm"));
	elb(&b, 1, "ComputeLTMEnabled", "ksv=\"V1_1_0\" " UOD, pflag(ms, "compute_ltm"));
	ind(&b, 1);
	pvm_buf_printf(&b,
	               "<AssociatedManagedSystem kb=\"ROO\" kxe=\"false\" "
	               "href=\"%s/rest/api/uom/ManagedSystem/%s\" rel=\"related\"/>\n",
	               rt->base, ms->uuid);
	pvm_buf_add(&b, "</ManagedSystemPcmPreference:ManagedSystemPcmPreference>\n"
	                "        </content>\n    </entry>\n</feed>\n");
	srv_out_body(o, 200, "application/atom+xml", &b);
	pref_etag(ms, o->etag, sizeof(o->etag));
}

/* The preference element of a POSTed body: bare, an entry or the feed as read. */
static xmlNode *pref_root(xmlNode *root)
{
	if (root && strcmp((const char *)root->name, "feed") == 0) {
		xmlNode *e = srv_xchild(root, "entry");
		xmlNode *c = e ? srv_xchild(e, "content") : NULL;
		for (xmlNode *k = c ? c->children : NULL; k; k = k->next)
			if (k->type == XML_ELEMENT_NODE)
				return k;
		return NULL;
	}
	return root;
}

static void prefs_post(struct pvm_sim *sim, struct route *rt, struct out *o, struct sim_obj *ms)
{
	snprintf(o->object, sizeof(o->object), "%s", ms->uuid);
	const char *im = srv_if_match(rt);
	char et[24];
	pref_etag(ms, et, sizeof(et));
	if (im && strcmp(im, et) != 0) {
		srv_out_error(o, 412, rt->path, "Precondition Failed",
		              "The preferences have changed since they were read (ETag mismatch).");
		return;
	}
	xmlDoc *doc;
	xmlNode *root = pref_root(srv_parse_body(rt->req, &doc));
	if (!root || strcmp((const char *)root->name, "ManagedSystemPcmPreference") != 0) {
		srv_out_error(o, 400, rt->path, "Bad request",
		              "The body is not a ManagedSystemPcmPreference.");
		xmlFreeDoc(doc);
		return;
	}
	static const struct {
		const char *el, *key;
	} f[] = {{"LongTermMonitorEnabled", "ltm"},
	         {"AggregationEnabled", "aggregation"},
	         {"ShortTermMonitorEnabled", "stm"},
	         {"ComputeLTMEnabled", "compute_ltm"}};
	json_t *p = json_object_get(ms->props, "pcm");
	if (!json_is_object(p)) {
		p = json_object();
		json_object_set_new(ms->props, "pcm", p);
	}
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		char *v = srv_xtext(root, f[i].el);
		if (v)
			json_object_set_new(p, f[i].key, json_boolean(strcasecmp(v, "true") == 0));
		free(v);
	}
	xmlFreeDoc(doc);
	sim->state_seq++; /* persisted; the system's own ETag does not change */
	o->persist = true;
	prefs_feed(sim, rt, o, ms);
	snprintf(o->outcome, sizeof(o->outcome), "pcm preferences: long-term monitor %s",
	         ltm_on(ms) ? "on" : "off");
}

static struct sim_pcm_sample *latest(struct pvm_sim *sim, const char *ms)
{
	struct sim_pcm_sample *best = NULL;
	for (int i = 0; i < SIM_PCM_SAMPLES; i++) {
		struct sim_pcm_sample *s = &sim->pcm[i];
		if (s->doc && strcasecmp(s->ms, ms) == 0 && (!best || s->t_ms > best->t_ms))
			best = s;
	}
	return best;
}

static void ltm_feed(struct pvm_sim *sim, struct route *rt, struct out *o, struct sim_obj *ms)
{
	if (!ltm_on(ms)) {
		o->status = 204; /* long-term monitoring is off: no samples */
		return;
	}
	int64_t now = pvm_now_ms();
	struct sim_pcm_sample *last = latest(sim, ms->uuid);
	char mtms[96], ts[40], name[160];
	snprintf(mtms, sizeof(mtms), "%s-%s*%s", sim_str(ms, "machine_type", ""),
	         sim_str(ms, "model", ""), sim_str(ms, "serial", ""));
	iso_time(now, ts, sizeof(ts), true);
	snprintf(name, sizeof(name), "LTM_%s_phyp_%s.json", mtms, ts);
	if (!last ||
	    (now - last->t_ms >= sim->timing.pcm_interval_ms && strcmp(last->name, name) != 0)) {
		char *doc = sample_doc(sim, ms, now);
		if (doc) {
			struct sim_pcm_sample *s = &sim->pcm[sim->pcm_next++ % SIM_PCM_SAMPLES];
			free(s->doc);
			pvm_strlcpy(s->ms, ms->uuid, sizeof(s->ms));
			pvm_strlcpy(s->name, name, sizeof(s->name));
			s->t_ms = now;
			s->doc = doc;
		}
	}
	struct pvm_buf b;
	pvm_buf_init(&b);
	char t[32];
	pvm_fmt_time(now, t, sizeof(t));
	pvm_buf_printf(&b,
	               "<feed " ATOM_ROOT_ATTRS ">\n    <id>%s</id>\n    <updated>%s</updated>\n"
	               "    <title type=\"text\">LongTermMetrics</title>\n"
	               "    <subtitle type=\"text\">ManagedSystem %s</subtitle>\n"
	               "    <link rel=\"self\" "
	               "href=\"%s/rest/api/pcm/ManagedSystem/%s/RawMetrics/LongTermMonitor\"/>\n"
	               "    <generator uri=\"" GENERATOR "\" version=\"1\"/>\n",
	               ms->uuid, t, ms->uuid, rt->base, ms->uuid);
	for (int k = 0; k < SIM_PCM_SAMPLES; k++) { /* newest first */
		struct sim_pcm_sample *s =
		        &sim->pcm[(sim->pcm_next + SIM_PCM_SAMPLES - 1 - (uint64_t)k) %
		                  SIM_PCM_SAMPLES];
		if (!s->doc || strcasecmp(s->ms, ms->uuid) != 0)
			continue;
		char id[SIM_UUID_LEN];
		sim_uuid_from(s->name, false, id);
		pvm_fmt_time(s->t_ms, t, sizeof(t));
		pvm_buf_printf(
		        &b,
		        "    <entry>\n        <id>%s</id>\n        <updated>%s</updated>\n"
		        "        <title type=\"text\">%s</title>\n"
		        "        <published>%s</published>\n"
		        "        <link type=\"application/vnd.ibm.powervm.pcm.json\" "
		        "href=\"%s/rest/api/pcm/ManagedSystem/%s/RawMetrics/LongTermMonitor/%s\"/"
		        ">\n"
		        "        <author>\n            <name>" GENERATOR "</name>\n"
		        "        </author>\n        <category term=\"phyp\"/>\n    </entry>\n",
		        id, t, s->name, t, rt->base, ms->uuid, s->name);
	}
	pvm_buf_add(&b, "</feed>\n");
	srv_out_body(o, 200, "application/atom+xml", &b);
}

void sim_pcm(struct pvm_sim *sim, struct route *rt, struct out *o)
{
	char buf[512];
	pvm_strlcpy(buf, rt->path + strlen("/rest/api/pcm/"), sizeof(buf));
	char *s[6];
	int n = 0;
	char *save = NULL;
	for (char *t = strtok_r(buf, "/", &save); t && n < 6; t = strtok_r(NULL, "/", &save))
		s[n++] = t;
	bool get = strcmp(rt->method, "GET") == 0;
	struct sim_obj *ms = n >= 2 && strcmp(s[0], "ManagedSystem") == 0
	                             ? sim_obj_find(sim, SIM_MS, s[1])
	                             : NULL;
	if (!ms || n < 3) {
		srv_out_error(o, 404, rt->path, "Not Found", "No such resource.");
		return;
	}
	if (n == 3 && strcmp(s[2], "preferences") == 0) {
		if (get)
			prefs_feed(sim, rt, o, ms);
		else if (strcmp(rt->method, "POST") == 0)
			prefs_post(sim, rt, o, ms);
		else
			srv_out_error(o, 405, rt->path, "Method Not Allowed", "GET or POST.");
		return;
	}
	if (n >= 4 && strcmp(s[2], "RawMetrics") == 0 && strcmp(s[3], "LongTermMonitor") == 0 &&
	    get) {
		if (n == 4) {
			ltm_feed(sim, rt, o, ms);
			return;
		}
		if (n == 5) {
			for (int i = 0; i < SIM_PCM_SAMPLES; i++) {
				struct sim_pcm_sample *x = &sim->pcm[i];
				if (x->doc && strcasecmp(x->ms, ms->uuid) == 0 &&
				    strcmp(x->name, s[4]) == 0) {
					o->status = 200;
					o->ctype = "application/json";
					o->body = strdup(x->doc);
					return;
				}
			}
			srv_out_error(
			        o, 404, rt->path, "Not Found",
			        "No such sample (samples are kept for the last 16 intervals).");
			return;
		}
	}
	srv_out_error(o, 404, rt->path, "Not Found", "No such resource.");
}
