/* server.c: pvmsim's HTTP(S) front: routing, sessions, faults, long-polls, audit.
 *
 * DESIGN: libmicrohttpd with an internal thread pool (epoll) and keep-alive. A request is
 * handled in three phases: (1) under sim->lock, decide faults, authenticate, read or change
 * the model and build the answer into a struct out; (2) without the lock, persist the state
 * when the model changed and append the audit line of a mutating request; (3) queue the
 * answer. Waiting never holds a thread: an added latency or an Event long-poll suspends
 * the connection (MHD suspend/resume) and parks it in sim->parked; the ticker thread
 * (sim.c) resumes it when its time comes or an event arrives, and MHD calls the handler
 * again to finish it. PUT web/File/contents/{uuid} is the one body that is not buffered:
 * it is hashed (SHA-256) chunk by chunk as MHD hands it over, so uploads of any size take
 * bounded memory. The storage, file and metrics handlers live in storage.c and pcm.c
 * (srv.h is what they share with this file).
 */
#include "sim.h"
#include "srv.h"

#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define EVENTS_BATCH 100

/* ---- small helpers ---- */

void srv_out_body(struct out *o, int status, const char *ctype, struct pvm_buf *b)
{
	o->status = status;
	o->ctype = ctype;
	free(o->body);
	o->body = sb_take(b);
}

void srv_out_error(struct out *o, int status, const char *uri, const char *reason, const char *msg)
{
	struct pvm_buf b;
	pvm_buf_init(&b);
	sim_render_error(&b, status, uri, reason, msg);
	srv_out_body(o, status, "application/atom+xml", &b);
	snprintf(o->outcome, sizeof(o->outcome), "error %d: %.120s", status, msg);
}

void srv_out_json(struct out *o, int status, json_t *j)
{
	o->status = status;
	o->ctype = "application/json";
	free(o->body);
	o->body = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(j);
}

xmlNode *srv_xchild(xmlNode *n, const char *name)
{
	for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
			return c;
	return NULL;
}

xmlNode *srv_xpath(xmlNode *n, const char *path)
{
	char buf[256];
	pvm_strlcpy(buf, path, sizeof(buf));
	char *save = NULL;
	for (char *t = strtok_r(buf, "/", &save); t && n; t = strtok_r(NULL, "/", &save))
		n = srv_xchild(n, t);
	return n;
}

/* Trimmed text of the element at path, or NULL. Caller frees. */
char *srv_xtext(xmlNode *root, const char *path)
{
	xmlNode *n = srv_xpath(root, path);
	if (!n)
		return NULL;
	xmlChar *c = xmlNodeGetContent(n);
	if (!c)
		return NULL;
	char *s = (char *)c, *e;
	while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
		s++;
	char *r = strdup(s);
	xmlFree(c);
	if (r)
		for (e = r + strlen(r);
		     e > r && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\t' || e[-1] == '\r');)
			*--e = '\0';
	return r;
}

/* Parses a request body; returns the object element (unwrapping an Atom entry) or NULL. */
xmlNode *srv_parse_body(const struct sim_req *r, xmlDoc **doc)
{
	*doc = NULL;
	if (!r->body.len)
		return NULL;
	*doc = xmlReadMemory(r->body.p, (int)r->body.len, "request.xml", NULL,
	                     XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOERROR |
	                             XML_PARSE_NOWARNING);
	xmlNode *root = *doc ? xmlDocGetRootElement(*doc) : NULL;
	if (root && strcmp((const char *)root->name, "entry") == 0) {
		xmlNode *c = srv_xchild(root, "content");
		root = NULL;
		for (xmlNode *k = c ? c->children : NULL; k; k = k->next)
			if (k->type == XML_ELEMENT_NODE) {
				root = k;
				break;
			}
	}
	return root;
}

bool srv_parse_ll(const char *s, long long *v)
{
	if (!s || !*s)
		return false;
	char *e;
	errno = 0;
	*v = strtoll(s, &e, 10);
	return errno == 0 && *e == '\0';
}

bool srv_parse_dbl(const char *s, double *v)
{
	if (!s || !*s)
		return false;
	char *e;
	*v = strtod(s, &e);
	return *e == '\0';
}

/* ---- audit ---- */

void sim_audit(struct pvm_sim *sim, const char *method, const char *path, const char *object,
               int status, const char *outcome)
{
	char t[32];
	pvm_fmt_time(pvm_now_ms(), t, sizeof(t));
	pthread_mutex_lock(&sim->audit_lock);
	uint64_t seq = ++sim->audit_count;
	json_t *j = json_pack("{s:I, s:s, s:s, s:s, s:s?, s:i, s:s}", "seq", (json_int_t)seq,
	                      "time", t, "method", method, "path", path, "object",
	                      object && *object ? object : NULL, "status", status, "outcome",
	                      outcome && *outcome ? outcome : (status < 400 ? "ok" : "error"));
	char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (line) {
		if (sim->audit_fd >= 0) {
			size_t n = strlen(line);
			line[n] = '\n'; /* temporarily: one write per line */
			ssize_t w = write(sim->audit_fd, line, n + 1);
			line[n] = '\0';
			if (w != (ssize_t)(n + 1))
				pvm_warn("pvmsim: audit write failed: %s", strerror(errno));
		}
		size_t slot = seq % SIM_AUDIT_RING;
		free(sim->audit_ring[slot]);
		sim->audit_ring[slot] = line;
	}
	pthread_mutex_unlock(&sim->audit_lock);
}

static json_t *audit_dump(struct pvm_sim *sim, uint64_t since)
{
	json_t *arr = json_array();
	pthread_mutex_lock(&sim->audit_lock);
	uint64_t last = sim->audit_count;
	uint64_t first = last >= SIM_AUDIT_RING ? last - SIM_AUDIT_RING + 1 : 1;
	if (since + 1 > first)
		first = since + 1;
	for (uint64_t s = first; s <= last; s++) {
		const char *line = sim->audit_ring[s % SIM_AUDIT_RING];
		json_t *j = line ? json_loads(line, 0, NULL) : NULL;
		if (j)
			json_array_append_new(arr, j);
	}
	pthread_mutex_unlock(&sim->audit_lock);
	return json_pack("{s:o, s:I}", "entries", arr, "count", (json_int_t)last);
}

/* ---- sessions (under lock) ---- */

static void session_free(struct sim_session *s)
{
	if (s->file)
		unlink(s->file);
	free(s->file);
	free(s);
}

static void session_remove(struct pvm_sim *sim, struct sim_session *s)
{
	for (struct sim_session **pp = &sim->sessions; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			sim->nsessions--;
			session_free(s);
			return;
		}
	}
}

void sim_sessions_clear(struct pvm_sim *sim)
{
	while (sim->sessions) {
		struct sim_session *s = sim->sessions;
		sim->sessions = s->next;
		session_free(s);
	}
	sim->nsessions = 0;
}

static struct sim_session *session_new(struct pvm_sim *sim, bool file)
{
	if (sim->nsessions >= SIM_MAX_SESSIONS) {
		struct sim_session *old = sim->sessions;
		for (struct sim_session *s = sim->sessions; s; s = s->next)
			if (s->last_ns < old->last_ns)
				old = s;
		session_remove(sim, old);
	}
	struct sim_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	sim_token(s->token, 88);
	s->last_ns = pvm_mono_ns();
	if (file) {
		char *path = NULL;
		char name[24];
		sim_token(name, 16);
		if (asprintf(&path, "%s/tokens/%s.token", sim->state_dir, name) < 0) {
			free(s);
			return NULL;
		}
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || write(fd, s->token, strlen(s->token)) != (ssize_t)strlen(s->token)) {
			if (fd >= 0)
				close(fd);
			free(path);
			free(s);
			return NULL;
		}
		close(fd);
		s->file = path;
	}
	s->next = sim->sessions;
	sim->sessions = s;
	sim->nsessions++;
	return s;
}

/* Validates the token of a request; 0 or 401 with a reason. Counts the request. */
static int authenticate(struct pvm_sim *sim, const char *token, const char **why)
{
	if (!token || !*token) {
		*why = "No X-API-Session header: log on first.";
		return 401;
	}
	int64_t now = pvm_mono_ns();
	for (struct sim_session *s = sim->sessions; s; s = s->next) {
		if (strcmp(s->token, token) != 0)
			continue;
		if (now - s->last_ns > (int64_t)sim->timing.session_idle_ms * 1000000) {
			session_remove(sim, s);
			*why = "The session has expired.";
			return 401;
		}
		s->requests++;
		uint64_t n = sim->faults.session_expiry_requests;
		if (n && s->requests > n) {
			session_remove(sim, s);
			*why = "The session has expired (pvmsim session_expiry_requests).";
			return 401;
		}
		s->last_ns = now;
		return 0;
	}
	*why = "The X-API-Session is not valid.";
	return 401;
}

/* ---- context for rendering ---- */

void srv_ctx_for(struct pvm_sim *sim, const struct route *rt, struct sim_render_ctx *c,
                 const char *self_prefix)
{
	c->base = rt->base;
	c->self_prefix = self_prefix;
	c->group_q = rt->group_q;
	c->groups = rt->groups;
	c->hmc = sim->mode == PVM_SIM_HMC;
	c->console_uuid = sim->console_uuid;
}

static bool served_kind(enum sim_kind k)
{
	return k == SIM_MS || k == SIM_LPAR || k == SIM_VIOS || k == SIM_VSWITCH;
}

/* ---- handlers (under lock) ---- */

void srv_get_feed(struct pvm_sim *sim, struct route *rt, struct out *o, enum sim_kind kind,
                  const char *parent, const char *search_name)
{
	struct pvm_buf b;
	pvm_buf_init(&b);
	char prefix[256];
	snprintf(prefix, sizeof(prefix), "rest/api/uom/%s", rt->rel);
	char *q = strstr(prefix, "/search/");
	if (q && !search_name)
		*q = '\0';
	struct sim_render_ctx c;
	srv_ctx_for(sim, rt, &c, prefix);
	if (search_name) { /* SELF links of search results name the collection */
		if (q)
			*q = '\0';
	}
	size_t n = 0;
	uint64_t h = 0;
	for (size_t i = 0; i < sim->nobjs; i++) {
		const struct sim_obj *obj = sim->objs[i];
		if (obj->kind != kind || (parent && strcasecmp(obj->parent, parent) != 0))
			continue;
		if (search_name && strcmp(sim_str(obj, "name", ""), search_name) != 0)
			continue;
		if (n == 0)
			sim_render_feed_open(&b, &c, rt->rel);
		sim_render_entry(sim, &b, &c, obj, true);
		h = sim_mix64(h ^ (uint32_t)sim_etag(obj, rt->groups));
		n++;
	}
	if (n == 0) {
		pvm_buf_fini(&b);
		o->status = 204;
		return;
	}
	sim_render_feed_close(&b);
	srv_out_body(o, 200, "application/atom+xml", &b);
	snprintf(o->etag, sizeof(o->etag), "%d", (int)(int32_t)(h >> 32));
}

void srv_get_entry(struct pvm_sim *sim, struct route *rt, struct out *o, struct sim_obj *obj)
{
	char et[24];
	snprintf(et, sizeof(et), "%d", (int)sim_etag(obj, rt->groups));
	const char *inm = MHD_lookup_connection_value(rt->conn, MHD_HEADER_KIND, "If-None-Match");
	if (inm && strcmp(inm, et) == 0) {
		o->status = 304;
		memcpy(o->etag, et, sizeof(et));
		return;
	}
	struct pvm_buf b;
	pvm_buf_init(&b);
	char prefix[256];
	snprintf(prefix, sizeof(prefix), "rest/api/uom/%s", rt->rel);
	struct sim_render_ctx c;
	srv_ctx_for(sim, rt, &c, prefix);
	sim_render_entry(sim, &b, &c, obj, false);
	srv_out_body(o, 200, "application/atom+xml", &b);
	memcpy(o->etag, et, sizeof(et));
}

const char *srv_if_match(const struct route *rt)
{
	return MHD_lookup_connection_value(rt->conn, MHD_HEADER_KIND, "If-Match");
}

bool srv_etag_matches(const struct sim_obj *obj, const char *im, unsigned groups)
{
	char t[24];
	unsigned masks[] = {groups, SIM_G_ALL, 0};
	for (size_t i = 0; i < 3; i++) {
		snprintf(t, sizeof(t), "%d", (int)sim_etag(obj, masks[i]));
		if (strcmp(t, im) == 0)
			return true;
	}
	return false;
}

/* Reads the partition fields of a LogicalPartition body into props (create or update).
 * Returns NULL or a message naming the bad field. */
static const char *read_partition(struct pvm_sim *sim, xmlNode *root, json_t *p, bool create,
                                  const struct sim_obj *ms)
{
	static char why[160];
	char *v;
	long long ll;
	double d;
	if ((v = srv_xtext(root, "PartitionName"))) {
		size_t n = strlen(v);
		if (n == 0 || n > 31) {
			free(v);
			return "PartitionName: 1 to 31 characters";
		}
		json_object_set_new(p, "name", json_string(v));
		free(v);
	} else if (create) {
		return "PartitionName: required";
	}
	if ((v = srv_xtext(root, "PartitionType"))) {
		if (strcmp(v, "AIX/Linux") != 0 && strcmp(v, "OS400") != 0) {
			free(v);
			return "PartitionType: AIX/Linux or OS400";
		}
		json_object_set_new(p, "type", json_string(v));
		free(v);
	}
	static const struct {
		const char *path, *key;
		bool real;
	} f[] = {
	        {"PartitionMemoryConfiguration/DesiredMemory", "desired_mem", false},
	        {"PartitionMemoryConfiguration/MinimumMemory", "min_mem", false},
	        {"PartitionMemoryConfiguration/MaximumMemory", "max_mem", false},
	        {"PartitionIOConfiguration/MaximumVirtualIOSlots", "max_slots", false},
	        {"AvailabilityPriority", "avail_priority", false},
	        {"PartitionProcessorConfiguration/SharedProcessorConfiguration/"
	         "DesiredProcessingUnits",
	         "desired_units", true},
	        {"PartitionProcessorConfiguration/SharedProcessorConfiguration/"
	         "MinimumProcessingUnits",
	         "min_units", true},
	        {"PartitionProcessorConfiguration/SharedProcessorConfiguration/"
	         "MaximumProcessingUnits",
	         "max_units", true},
	        {"PartitionProcessorConfiguration/SharedProcessorConfiguration/"
	         "DesiredVirtualProcessors",
	         "desired_vcpus", false},
	        {"PartitionProcessorConfiguration/SharedProcessorConfiguration/"
	         "MinimumVirtualProcessors",
	         "min_vcpus", false},
	        {"PartitionProcessorConfiguration/SharedProcessorConfiguration/"
	         "MaximumVirtualProcessors",
	         "max_vcpus", false},
	        {"PartitionProcessorConfiguration/SharedProcessorConfiguration/"
	         "SharedProcessorPoolID",
	         "pool_id", false},
	        {"PartitionProcessorConfiguration/SharedProcessorConfiguration/UncappedWeight",
	         "weight", false},
	        {"PartitionProcessorConfiguration/DedicatedProcessorConfiguration/"
	         "DesiredProcessors",
	         "desired_vcpus", false},
	        {"PartitionProcessorConfiguration/DedicatedProcessorConfiguration/"
	         "MinimumProcessors",
	         "min_vcpus", false},
	        {"PartitionProcessorConfiguration/DedicatedProcessorConfiguration/"
	         "MaximumProcessors",
	         "max_vcpus", false},
	};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		v = srv_xtext(root, f[i].path);
		if (!v)
			continue;
		bool ok = f[i].real ? srv_parse_dbl(v, &d) && d >= 0
		                    : srv_parse_ll(v, &ll) && ll >= 0;
		free(v);
		if (!ok) {
			snprintf(why, sizeof(why), "%s: not a valid number", f[i].path);
			return why;
		}
		json_object_set_new(p, f[i].key, f[i].real ? json_real(d) : json_integer(ll));
	}
	if ((v = srv_xtext(root, "PartitionProcessorConfiguration/HasDedicatedProcessors"))) {
		json_object_set_new(p, "dedicated", json_boolean(strcmp(v, "true") == 0));
		free(v);
	}
	if ((v = srv_xtext(root, "PartitionProcessorConfiguration/SharingMode"))) {
		json_object_set_new(p, "sharing_mode", json_string(v));
		free(v);
	}
	if ((v = srv_xtext(root, "SimplifiedRemoteRestartCapable"))) {
		json_object_set_new(p, "srr", json_boolean(strcmp(v, "true") == 0));
		free(v);
	}
	if ((v = srv_xtext(root, "PendingProcessorCompatibilityMode"))) {
		bool ok = false;
		json_t *m;
		size_t i;
		json_array_foreach(json_object_get(ms->props, "compat_modes"), i,
		                   m) if (strcmp(json_string_value(m), v) == 0) ok = true;
		if (!ok) {
			snprintf(why, sizeof(why),
			         "PendingProcessorCompatibilityMode: %.40s is not supported by the "
			         "system",
			         v);
			free(v);
			return why;
		}
		json_object_set_new(p, "compat_mode", json_string(v));
		free(v);
	}
	/* Defaults, then consistency. */
	json_t *dm = json_object_get(p, "desired_mem");
	if (!dm)
		return "PartitionMemoryConfiguration/DesiredMemory: required";
	if (!json_object_get(p, "min_mem"))
		json_object_set(p, "min_mem", dm);
	if (!json_object_get(p, "max_mem"))
		json_object_set(p, "max_mem", dm);
	json_t *dv = json_object_get(p, "desired_vcpus");
	if (!dv)
		json_object_set_new(p, "desired_vcpus", dv = json_integer(1));
	if (!json_object_get(p, "min_vcpus"))
		json_object_set(p, "min_vcpus", dv);
	if (!json_object_get(p, "max_vcpus"))
		json_object_set(p, "max_vcpus", dv);
	if (!json_object_get(p, "desired_units")) {
		double u = (double)json_integer_value(dv) * 0.1;
		json_object_set_new(p, "desired_units", json_real(u < 0.05 ? 0.05 : u));
	}
	if (!json_object_get(p, "min_units"))
		json_object_set(p, "min_units", json_object_get(p, "desired_units"));
	if (!json_object_get(p, "max_units"))
		json_object_set(p, "max_units", json_object_get(p, "desired_units"));
	long long mn = json_integer_value(json_object_get(p, "min_mem")),
	          de = json_integer_value(dm),
	          mx = json_integer_value(json_object_get(p, "max_mem"));
	long long region = (long long)sim_int(ms, "memory_region_mb", 256);
	if (de <= 0 || mn > de || de > mx)
		return "PartitionMemoryConfiguration: need 0 < MinimumMemory <= DesiredMemory <= "
		       "MaximumMemory";
	if (region > 0 && (de % region || mn % region || mx % region)) {
		snprintf(why, sizeof(why),
		         "PartitionMemoryConfiguration: memory must be a multiple of the memory "
		         "region "
		         "size (%lld MB)",
		         region);
		return why;
	}
	long long vmin = json_integer_value(json_object_get(p, "min_vcpus")),
	          vde = json_integer_value(json_object_get(p, "desired_vcpus")),
	          vmax = json_integer_value(json_object_get(p, "max_vcpus"));
	if (vde <= 0 || vmin > vde || vde > vmax || vmax > 256)
		return "PartitionProcessorConfiguration: need 0 < Minimum <= Desired <= Maximum "
		       "processors <= 256";
	double umin = json_number_value(json_object_get(p, "min_units")),
	       ude = json_number_value(json_object_get(p, "desired_units")),
	       umax = json_number_value(json_object_get(p, "max_units"));
	if (!json_is_true(json_object_get(p, "dedicated")) &&
	    (umin > ude + 1e-9 || ude > umax + 1e-9 || ude < 0.05 * (double)vde - 1e-9 ||
	     ude > (double)vde + 1e-9))
		return "SharedProcessorConfiguration: need MinimumProcessingUnits <= "
		       "DesiredProcessingUnits <= MaximumProcessingUnits and 0.05 to 1.0 units per "
		       "virtual processor";
	(void)sim;
	return NULL;
}

static void create_partition(struct pvm_sim *sim, struct route *rt, struct out *o,
                             struct sim_obj *ms)
{
	xmlDoc *doc;
	xmlNode *root = srv_parse_body(rt->req, &doc);
	if (!root || strcmp((const char *)root->name, "LogicalPartition") != 0) {
		srv_out_error(o, 400, rt->path, "Bad request",
		              "The body is not a LogicalPartition.");
		goto out;
	}
	char uuid[SIM_UUID_LEN] = "";
	char *id = srv_xtext(root, "Metadata/Atom/AtomID");
	if (id && *id) {
		if (!pvm_is_uuid(id)) {
			srv_out_error(o, 400, rt->path, "Bad request",
			              "Metadata/Atom/AtomID: not a UUID");
			free(id);
			goto out;
		}
		pvm_strlcpy(uuid, id, sizeof(uuid));
	} else {
		sim_uuid_random(uuid);
		for (char *c = uuid; *c; c++)
			if (*c >= 'a' && *c <= 'f')
				*c = (char)(*c - 'a' + 'A');
	}
	free(id);
	snprintf(o->object, sizeof(o->object), "%s", uuid);
	if (sim_obj_find(sim, SIM_LPAR, uuid) || sim_obj_find(sim, SIM_VIOS, uuid)) {
		srv_out_error(o, 409, rt->path, "Conflict",
		              "HSCL0DB6 A partition with this UUID exists already.");
		goto out;
	}
	json_t *p = sim_partition_props("", 0, "AIX/Linux", "not activated", 0, 1, 0);
	json_object_del(p, "desired_mem");
	json_object_del(p, "min_mem");
	json_object_del(p, "max_mem");
	json_object_del(p, "desired_vcpus");
	json_object_del(p, "min_vcpus");
	json_object_del(p, "max_vcpus");
	json_object_del(p, "desired_units");
	json_object_del(p, "min_units");
	json_object_del(p, "max_units");
	json_object_del(p, "name");
	const char *why = read_partition(sim, root, p, true, ms);
	if (why) {
		srv_out_error(o, 400, rt->path, "Bad request", why);
		json_decref(p);
		goto out;
	}
	const char *name = json_string_value(json_object_get(p, "name"));
	for (size_t i = 0; i < sim->nobjs; i++) {
		struct sim_obj *x = sim->objs[i];
		if ((x->kind == SIM_LPAR || x->kind == SIM_VIOS) &&
		    strcasecmp(x->parent, ms->uuid) == 0 &&
		    strcmp(sim_str(x, "name", ""), name) == 0) {
			srv_out_error(o, 409, rt->path, "Conflict",
			              "HSCL0DB5 A partition with this name exists already on the "
			              "system.");
			json_decref(p);
			goto out;
		}
	}
	size_t nparts = 0;
	for (size_t i = 0; i < sim->nobjs; i++)
		if ((sim->objs[i]->kind == SIM_LPAR || sim->objs[i]->kind == SIM_VIOS) &&
		    strcasecmp(sim->objs[i]->parent, ms->uuid) == 0)
			nparts++;
	if ((int64_t)nparts >= sim_int(ms, "max_partitions", 800)) {
		srv_out_error(o, 409, rt->path, "Conflict",
		              "The system has its maximum of partitions.");
		json_decref(p);
		goto out;
	}
	json_object_set_new(p, "id", json_integer(sim_next_partition_id(sim, ms->uuid)));
	struct sim_obj *obj = sim_obj_new(sim, SIM_LPAR, uuid, ms->uuid, p);
	if (!obj) {
		srv_out_error(o, 500, rt->path, "Internal error", "out of memory");
		goto out;
	}
	char uri[128];
	sim_obj_uri(obj, uri, sizeof(uri));
	sim_event_add(sim, "ADD_URI", uri, "Other");
	char rel[256];
	snprintf(rel, sizeof(rel), "ManagedSystem/%s/LogicalPartition/%s", ms->uuid, uuid);
	const char *saved = rt->rel;
	rt->rel = rel;
	srv_get_entry(sim, rt, o, obj);
	rt->rel = saved;
	o->persist = true;
	snprintf(o->outcome, sizeof(o->outcome), "created");
out:
	xmlFreeDoc(doc);
}

static void update_partition(struct pvm_sim *sim, struct route *rt, struct out *o,
                             struct sim_obj *obj)
{
	snprintf(o->object, sizeof(o->object), "%s", obj->uuid);
	const char *im = MHD_lookup_connection_value(rt->conn, MHD_HEADER_KIND, "If-Match");
	if (im && !srv_etag_matches(obj, im, rt->groups)) {
		srv_out_error(o, 412, rt->path, "Precondition Failed",
		              "The object has changed since it was read (ETag mismatch).");
		return;
	}
	xmlDoc *doc;
	xmlNode *root = srv_parse_body(rt->req, &doc);
	if (!root || strcmp((const char *)root->name, sim_kind_name(obj->kind)) != 0) {
		srv_out_error(o, 400, rt->path, "Bad request",
		              "The body does not match the object type.");
		xmlFreeDoc(doc);
		return;
	}
	struct sim_obj *ms = sim_obj_find(sim, SIM_MS, obj->parent);
	sim_pcm_account(obj, pvm_now_ms()); /* cycles at the old sizes up to now */
	json_t *p = json_deep_copy(obj->props);
	const char *why = ms ? read_partition(sim, root, p, false, ms) : "no managed system";
	xmlFreeDoc(doc);
	if (why) {
		json_decref(p);
		srv_out_error(o, 400, rt->path, "Bad request", why);
		return;
	}
	const char *nn = json_string_value(json_object_get(p, "name"));
	for (size_t i = 0; i < sim->nobjs; i++) {
		struct sim_obj *x = sim->objs[i];
		if (x != obj && (x->kind == SIM_LPAR || x->kind == SIM_VIOS) &&
		    strcasecmp(x->parent, obj->parent) == 0 &&
		    strcmp(sim_str(x, "name", ""), nn) == 0) {
			json_decref(p);
			srv_out_error(o, 409, rt->path, "Conflict",
			              "HSCL0DB5 A partition with this name exists already on the "
			              "system.");
			return;
		}
	}
	json_object_set(p, "state", json_object_get(obj->props, "state")); /* not by update */
	json_decref(obj->props);
	obj->props = p;
	sim_obj_touch(sim, obj);
	char uri[128];
	sim_obj_uri(obj, uri, sizeof(uri));
	sim_event_add(sim, "MODIFY_URI", uri, "Other");
	srv_get_entry(sim, rt, o, obj);
	o->persist = true;
	snprintf(o->outcome, sizeof(o->outcome), "updated");
}

static void delete_partition(struct pvm_sim *sim, struct route *rt, struct out *o,
                             struct sim_obj *obj)
{
	snprintf(o->object, sizeof(o->object), "%s", obj->uuid);
	const char *im = MHD_lookup_connection_value(rt->conn, MHD_HEADER_KIND, "If-Match");
	if (im && !srv_etag_matches(obj, im, rt->groups)) {
		srv_out_error(o, 412, rt->path, "Precondition Failed",
		              "The object has changed since it was read (ETag mismatch).");
		return;
	}
	if (obj->kind != SIM_LPAR || sim_bool(obj, "is_mgmt", false)) {
		srv_out_error(o, 403, rt->path, "Forbidden", "This partition cannot be deleted.");
		return;
	}
	const char *st = sim_str(obj, "state", "");
	if (strcmp(st, "not activated") != 0 && strcmp(st, "error") != 0) {
		srv_out_error(
		        o, 409, rt->path, "Conflict",
		        "HSCL0DB7 The partition must be shut down (not activated) to be deleted.");
		return;
	}
	sim_lpar_cascade(sim, obj); /* its adapters, the client side of its mappings */
	char uri[128];
	sim_obj_uri(obj, uri, sizeof(uri));
	sim_obj_remove(sim, obj);
	sim_event_add(sim, "DELETE_URI", uri, "Other");
	o->status = 204;
	o->persist = true;
	snprintf(o->outcome, sizeof(o->outcome), "deleted");
}

static void quick(struct pvm_sim *sim, struct route *rt, struct out *o, struct sim_obj *obj,
                  const char *prop)
{
	(void)rt;
	json_t *q = sim_quick(sim, obj);
	if (!q) {
		srv_out_error(o, 404, rt->path, "Not Found",
		              "No quick properties for this object.");
		return;
	}
	if (!prop) {
		srv_out_json(o, 200, q);
		return;
	}
	json_t *v = json_object_get(q, prop);
	if (!v) {
		json_decref(q);
		srv_out_error(o, 404, rt->path, "Not Found", "No such quick property.");
		return;
	}
	json_incref(v);
	json_decref(q);
	srv_out_json(o, 200, v);
}

static void job_template(struct pvm_sim *sim, struct route *rt, struct out *o, struct sim_obj *obj,
                         const char *op)
{
	(void)sim;
	if (!sim_job_known(obj->kind, op)) {
		srv_out_error(o, 404, rt->path, "Not Found", "No such operation.");
		return;
	}
	struct pvm_buf b;
	pvm_buf_init(&b);
	sim_render_job_request(&b, op, sim_kind_name(obj->kind));
	srv_out_body(o, 200, "application/atom+xml", &b);
}

static void job_start(struct pvm_sim *sim, struct route *rt, struct out *o, struct sim_obj *obj,
                      const char *op)
{
	snprintf(o->object, sizeof(o->object), "%s", obj->uuid);
	if (!sim_job_known(obj->kind, op)) {
		srv_out_error(o, 404, rt->path, "Not Found", "No such operation.");
		return;
	}
	xmlDoc *doc;
	xmlNode *root = srv_parse_body(rt->req, &doc);
	if (!root || strcmp((const char *)root->name, "JobRequest") != 0) {
		srv_out_error(o, 400, rt->path, "Bad request", "The body is not a JobRequest.");
		xmlFreeDoc(doc);
		return;
	}
	char *name = srv_xtext(root, "RequestedOperation/OperationName");
	bool bad = name && strcmp(name, op) != 0;
	free(name);
	if (bad) {
		srv_out_error(o, 400, rt->path, "Bad request",
		              "RequestedOperation/OperationName does not match the URL.");
		xmlFreeDoc(doc);
		return;
	}
	json_t *params = json_array();
	for (xmlNode *c = srv_xpath(root, "JobParameters")
	                          ? srv_xpath(root, "JobParameters")->children
	                          : NULL;
	     c; c = c->next) {
		if (c->type != XML_ELEMENT_NODE ||
		    strcmp((const char *)c->name, "JobParameter") != 0)
			continue;
		char *k = srv_xtext(c, "ParameterName"), *v = srv_xtext(c, "ParameterValue");
		if (k)
			json_array_append_new(params, json_pack("[s,s]", k, v ? v : ""));
		free(k);
		free(v);
	}
	xmlFreeDoc(doc);
	char url[256];
	snprintf(url, sizeof(url), "%s/%s/do/%s", sim_kind_name(obj->kind), obj->uuid, op);
	int status = 0;
	char msg[256];
	struct sim_job *j = sim_job_start(sim, obj, op, params, url, &status, msg, sizeof(msg));
	json_decref(params);
	if (!j) {
		srv_out_error(o, status, rt->path, status == 409 ? "Conflict" : "Internal error",
		              msg);
		return;
	}
	struct pvm_buf b;
	pvm_buf_init(&b);
	sim_render_job_response(&b, rt->base, j);
	srv_out_body(o, 200, "application/atom+xml", &b);
	snprintf(o->object, sizeof(o->object), "%s", obj->uuid);
	snprintf(o->outcome, sizeof(o->outcome), "job %llu %s started", (unsigned long long)j->id,
	         op);
}

static void jobs_route(struct pvm_sim *sim, struct route *rt, struct out *o)
{
	char *end;
	uint64_t id = rt->nsegs >= 2 ? strtoull(rt->segs[1], &end, 10) : 0;
	struct sim_job *j = id ? sim_job_find(sim, id) : NULL;
	if (!j) {
		srv_out_error(o, 404, rt->path, "Not Found", "No such job.");
		return;
	}
	snprintf(o->object, sizeof(o->object), "%llu", (unsigned long long)id);
	if (rt->nsegs == 2 && strcmp(rt->method, "GET") == 0) {
		struct pvm_buf b;
		pvm_buf_init(&b);
		sim_render_job_response(&b, rt->base, j);
		srv_out_body(o, 200, "application/atom+xml", &b);
	} else if (rt->nsegs == 2 && strcmp(rt->method, "DELETE") == 0) {
		if (!sim_job_terminal(j)) {
			srv_out_error(
			        o, 409, rt->path, "Conflict",
			        "The job is still running: cancel it and wait for it to end.");
			return;
		}
		sim_job_delete(sim, j);
		o->status = 204;
		snprintf(o->outcome, sizeof(o->outcome), "job deleted");
	} else if (rt->nsegs == 3 && strcmp(rt->segs[2], "cancel") == 0 &&
	           (strcmp(rt->method, "POST") == 0 || strcmp(rt->method, "PUT") == 0)) {
		sim_job_cancel(sim, j);
		o->status = 200;
		o->ctype = "application/atom+xml";
		struct pvm_buf b;
		pvm_buf_init(&b);
		sim_render_job_response(&b, rt->base, j);
		srv_out_body(o, 200, "application/atom+xml", &b);
		snprintf(o->outcome, sizeof(o->outcome), "job cancel requested");
	} else {
		srv_out_error(o, 405, rt->path, "Method Not Allowed", "Not supported on a job.");
	}
}

/* ---- events ---- */

static struct sim_evclient *evclient(struct pvm_sim *sim, const char *key, bool *is_new)
{
	struct sim_evclient *free_slot = NULL, *oldest = NULL;
	for (int i = 0; i < SIM_EVENT_CLIENTS; i++) {
		struct sim_evclient *c = &sim->clients[i];
		if (c->used && strcmp(c->key, key) == 0) {
			*is_new = false;
			return c;
		}
		if (!c->used && !free_slot)
			free_slot = c;
		if (c->used && (!oldest || c->last_seen_ns < oldest->last_seen_ns))
			oldest = c;
	}
	struct sim_evclient *c = free_slot ? free_slot : oldest;
	memset(c, 0, sizeof(*c));
	c->used = true;
	pvm_strlcpy(c->key, key, sizeof(c->key));
	c->cursor = sim->next_event_id;
	*is_new = true;
	return c;
}

static void event_key(struct route *rt, const char *token, char *key, size_t n)
{
	const char *app =
	        MHD_lookup_connection_value(rt->conn, MHD_GET_ARGUMENT_KIND, "QUEUE_APPLICATIONID");
	snprintf(key, n, "%s", app && *app ? app : (token ? token : "anonymous"));
}

/* GET Event: NEW_CLIENT first, then batches; parks when there is nothing to say. */
static void get_events(struct pvm_sim *sim, struct route *rt, struct out *o, const char *token)
{
	char key[96];
	event_key(rt, token, key, sizeof(key));
	bool is_new;
	struct sim_evclient *c = evclient(sim, key, &is_new);
	c->last_seen_ns = pvm_mono_ns();
	struct pvm_buf b;
	pvm_buf_init(&b);
	struct sim_render_ctx ctx;
	srv_ctx_for(sim, rt, &ctx, "rest/api/uom/Event");
	ctx.group_q = NULL;
	if (is_new) {
		struct sim_event e = {
		        .id = sim->next_event_id, .data = "", .detail = "", .ms = pvm_now_ms()};
		pvm_strlcpy(e.type, "NEW_CLIENT", sizeof(e.type));
		sim_render_feed_open(&b, &ctx, "Event");
		sim_render_event(&b, rt->base, &e);
		sim_render_feed_close(&b);
		srv_out_body(o, 200, "application/atom+xml", &b);
		return;
	}
	uint64_t oldest =
	        sim->next_event_id > SIM_EVENT_RING ? sim->next_event_id - SIM_EVENT_RING : 1;
	if (c->cursor < oldest) {
		struct sim_event e = {
		        .id = sim->next_event_id, .data = "", .detail = "", .ms = pvm_now_ms()};
		pvm_strlcpy(e.type, "MISSING_EVENTS", sizeof(e.type));
		c->cursor = sim->next_event_id;
		sim_render_feed_open(&b, &ctx, "Event");
		sim_render_event(&b, rt->base, &e);
		sim_render_feed_close(&b);
		srv_out_body(o, 200, "application/atom+xml", &b);
		return;
	}
	if (c->cursor >= sim->next_event_id && !rt->req->ev_waited && !sim->no_park) {
		struct sim_parked *p = calloc(1, sizeof(*p));
		if (p) {
			p->conn = rt->conn;
			p->req = rt->req;
			p->event_wait = true;
			p->wake_ns = pvm_mono_ns() + (int64_t)sim->timing.event_wait_ms * 1000000;
			pvm_strlcpy(p->evkey, key, sizeof(p->evkey));
			MHD_suspend_connection(rt->conn);
			p->next = sim->parked;
			sim->parked = p;
			rt->req->ev_waited = true;
			sim_kick(sim);
			o->parked = true;
			pvm_buf_fini(&b);
			return;
		}
	}
	sim_render_feed_open(&b, &ctx, "Event");
	int n = 0;
	while (c->cursor < sim->next_event_id && n < EVENTS_BATCH) {
		sim_render_event(&b, rt->base, &sim->ring[c->cursor % SIM_EVENT_RING]);
		c->cursor++;
		n++;
	}
	sim_render_feed_close(&b);
	srv_out_body(o, 200, "application/atom+xml", &b);
}

static void put_event(struct pvm_sim *sim, struct route *rt, struct out *o)
{
	xmlDoc *doc;
	xmlNode *root = srv_parse_body(rt->req, &doc);
	if (!root || strcmp((const char *)root->name, "Event") != 0) {
		srv_out_error(o, 400, rt->path, "Bad request", "The body is not an Event.");
		xmlFreeDoc(doc);
		return;
	}
	char *type = srv_xtext(root, "EventType");
	char *data = srv_xtext(root, "EventData"), *detail = srv_xtext(root, "EventDetail");
	xmlFreeDoc(doc);
	if (type && (!*type || strlen(type) >= sizeof(((struct sim_event *)0)->type) ||
	             strspn(type, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") != strlen(type))) {
		srv_out_error(o, 400, rt->path, "Bad request",
		              "EventType: upper-case letters and _ (at most 23)");
		free(type);
		free(data);
		free(detail);
		return;
	}
	const char *rel = data ? strstr(data, "/rest/api/uom/") : NULL;
	const char *uri = rel ? rel + 14 : (data ? data : "");
	const char *t = type ? type : "CUSTOM_CLIENT_EVENT";
	sim_event_add(sim, t, uri, detail ? detail : "");
	const char *tail = strrchr(uri, '/');
	snprintf(o->object, sizeof(o->object), "%.60s", tail ? tail + 1 : uri);
	snprintf(o->outcome, sizeof(o->outcome), "event %s %.400s", t, detail ? detail : "");
	free(type);
	free(data);
	free(detail);
	o->status = 200;
}

/* ---- /rest/api/uom routing ---- */

static void uom(struct pvm_sim *sim, struct route *rt, struct out *o, const char *token)
{
	char **s = rt->segs;
	int n = rt->nsegs;
	bool get = strcmp(rt->method, "GET") == 0;
	if (n == 0) {
		srv_out_error(o, 404, rt->path, "Not Found", "No such resource.");
		return;
	}
	if (strcmp(s[0], "Event") == 0 && n == 1) {
		if (get)
			get_events(sim, rt, o, token);
		else if (strcmp(rt->method, "PUT") == 0)
			put_event(sim, rt, o);
		else
			srv_out_error(o, 405, rt->path, "Method Not Allowed", "GET or PUT.");
		return;
	}
	if (strcmp(s[0], "jobs") == 0) {
		jobs_route(sim, rt, o);
		return;
	}
	if (sim_storage_route(sim, rt, o))
		return;
	enum sim_kind kind;
	const char *parent = NULL;
	int i;
	struct sim_obj *ms = NULL;
	if (strcmp(s[0], "ManagedSystem") == 0 && n >= 3 && sim_kind_parse(s[2], &kind) == 0 &&
	    kind != SIM_MS) {
		ms = sim_obj_find(sim, SIM_MS, s[1]);
		if (!ms || !served_kind(kind)) {
			srv_out_error(o, 404, rt->path, "Not Found", "No such resource.");
			return;
		}
		parent = ms->uuid;
		i = 3;
	} else if (sim_kind_parse(s[0], &kind) == 0 && served_kind(kind) && kind != SIM_VSWITCH) {
		i = 1;
	} else {
		srv_out_error(o, 404, rt->path, "Not Found", "No such resource.");
		return;
	}
	if (n == i) { /* the collection */
		if (get)
			srv_get_feed(sim, rt, o, kind, parent, NULL);
		else if (strcmp(rt->method, "PUT") == 0 && kind == SIM_LPAR && ms)
			create_partition(sim, rt, o, ms);
		else
			srv_out_error(o, 405, rt->path, "Method Not Allowed",
			              "Not supported here.");
		return;
	}
	if (strcmp(s[i], "search") == 0 && n == i + 2 && get) {
		/* (PartitionName=='name') or (PartitionName==name) */
		char name[128] = "";
		const char *q = s[i + 1];
		if (sscanf(q, "(PartitionName==%127[^)])", name) != 1 ||
		    (kind != SIM_LPAR && kind != SIM_VIOS)) {
			srv_out_error(o, 400, rt->path, "Bad request",
			              "Search supports PartitionName== only.");
			return;
		}
		size_t l = strlen(name);
		if (l >= 2 && name[0] == '\'' && name[l - 1] == '\'') {
			memmove(name, name + 1, l - 2);
			name[l - 2] = '\0';
		}
		srv_get_feed(sim, rt, o, kind, parent, name);
		return;
	}
	struct sim_obj *obj = sim_obj_find(sim, kind, s[i]);
	if (obj && parent && strcasecmp(obj->parent, parent) != 0)
		obj = NULL;
	if (!obj) {
		srv_out_error(o, 404, rt->path, "Not Found", "The object does not exist.");
		if (!get)
			snprintf(o->object, sizeof(o->object), "%s", s[i]);
		return;
	}
	i++;
	if (n == i) {
		if (get)
			srv_get_entry(sim, rt, o, obj);
		else if (strcmp(rt->method, "POST") == 0 && kind == SIM_LPAR)
			update_partition(sim, rt, o, obj);
		else if (strcmp(rt->method, "DELETE") == 0 && kind == SIM_LPAR)
			delete_partition(sim, rt, o, obj);
		else if (strcmp(rt->method, "POST") == 0 && kind == SIM_VIOS)
			sim_update_vios(sim, rt, o, obj);
		else
			srv_out_error(o, 405, rt->path, "Method Not Allowed",
			              "Not supported on this object.");
		return;
	}
	if (sim_sub_route(sim, rt, o, obj, i))
		return;
	if (strcmp(s[i], "quick") == 0 && n <= i + 2 && get) {
		quick(sim, rt, o, obj, n == i + 2 ? s[i + 1] : NULL);
		return;
	}
	if (strcmp(s[i], "do") == 0 && n == i + 2) {
		if (get)
			job_template(sim, rt, o, obj, s[i + 1]);
		else if (strcmp(rt->method, "PUT") == 0)
			job_start(sim, rt, o, obj, s[i + 1]);
		else
			srv_out_error(o, 405, rt->path, "Method Not Allowed", "GET or PUT.");
		return;
	}
	srv_out_error(o, 404, rt->path, "Not Found", "No such resource.");
}

/* ---- logon ---- */

static void logon(struct pvm_sim *sim, struct route *rt, struct out *o, const char *token)
{
	if (strcmp(rt->method, "DELETE") == 0) {
		for (struct sim_session *s = sim->sessions; token && s; s = s->next) {
			if (strcmp(s->token, token) == 0) {
				session_remove(sim, s);
				o->status = 204;
				snprintf(o->outcome, sizeof(o->outcome), "logged off");
				return;
			}
		}
		srv_out_error(o, 401, rt->path, "Unauthorized", "The X-API-Session is not valid.");
		return;
	}
	if (strcmp(rt->method, "PUT") != 0) {
		srv_out_error(o, 405, rt->path, "Method Not Allowed", "PUT or DELETE.");
		return;
	}
	xmlDoc *doc;
	xmlNode *root = srv_parse_body(rt->req, &doc);
	if (!root || strcmp((const char *)root->name, "LogonRequest") != 0) {
		srv_out_error(o, 400, rt->path, "Bad request", "The body is not a LogonRequest.");
		xmlFreeDoc(doc);
		return;
	}
	char *user = srv_xtext(root, "UserID"), *pw = srv_xtext(root, "Password");
	char *gen = srv_xtext(root, "GenerateX-API-SessionFile");
	xmlFreeDoc(doc);
	bool file = gen && strcmp(gen, "true") == 0;
	bool ok = user && strcmp(user, sim->user) == 0 &&
	          (file || (pw && strcmp(pw, sim->password) == 0));
	free(pw);
	free(gen);
	if (!ok) {
		snprintf(o->object, sizeof(o->object), "%.60s", user ? user : "");
		free(user);
		srv_out_error(o, 401, rt->path, "Unauthorized",
		              "HSCL350B The user ID or password is not valid.");
		return;
	}
	snprintf(o->object, sizeof(o->object), "%.60s", user);
	free(user);
	struct sim_session *s = session_new(sim, file);
	if (!s) {
		srv_out_error(o, 500, rt->path, "Internal error", "Could not create the session.");
		return;
	}
	struct pvm_buf b;
	pvm_buf_init(&b);
	sim_render_logon(&b, s->token, s->file);
	srv_out_body(o, 200, "application/vnd.ibm.powervm.web+xml; type=LogonResponse", &b);
	snprintf(o->outcome, sizeof(o->outcome), file ? "logged on (file)" : "logged on");
}

/* ---- /sim control ---- */

void sim_reset_model(struct pvm_sim *sim); /* sim.c */

static void sim_control(struct pvm_sim *sim, struct route *rt, struct out *o)
{
	const char *p = rt->path + 5;
	bool get = strcmp(rt->method, "GET") == 0;
	if (strcmp(p, "state") == 0 && get) {
		uint64_t seq;
		char *text = sim_state_snapshot(sim, &seq);
		json_t *st = text ? json_loads(text, 0, NULL) : json_object();
		free(text);
		json_t *jobs = json_array();
		for (struct sim_job *j = sim->jobs; j; j = j->next)
			json_array_append_new(jobs, json_pack("{s:I, s:s, s:s, s:s}", "id",
			                                      (json_int_t)j->id, "op", j->op,
			                                      "target", j->target, "status",
			                                      sim_job_status_name(j->status)));
		json_object_set_new(st, "jobs", jobs);
		json_object_set_new(st, "sessions", json_integer((json_int_t)sim->nsessions));
		json_object_set_new(st, "next_event_id",
		                    json_integer((json_int_t)sim->next_event_id));
		json_object_set_new(st, "seed", json_integer((json_int_t)sim->faults.seed));
		srv_out_json(o, 200, st);
	} else if (strcmp(p, "reset") == 0 &&
	           (strcmp(rt->method, "POST") == 0 || strcmp(rt->method, "PUT") == 0)) {
		sim_reset_model(sim);
		o->persist = true;
		srv_out_json(o, 200, json_pack("{s:b}", "reset", 1));
		snprintf(o->outcome, sizeof(o->outcome), "reset");
	} else if (strcmp(p, "faults") == 0 && get) {
		srv_out_json(o, 200, sim_faults_dump(&sim->faults));
	} else if (strcmp(p, "faults") == 0 && strcmp(rt->method, "PUT") == 0) {
		json_error_t je;
		json_t *j = rt->req->body.len
		                    ? json_loadb(rt->req->body.p, rt->req->body.len, 0, &je)
		                    : NULL;
		char err[200];
		if (!j || sim_faults_parse(j, &sim->faults, err, sizeof(err)) != 0) {
			if (!j)
				snprintf(err, sizeof(err), "faults: not JSON");
			json_decref(j);
			srv_out_json(o, 400, json_pack("{s:s}", "error", err));
			return;
		}
		json_decref(j);
		memset(sim->counters, 0, SIM_COUNTERS * sizeof(*sim->counters));
		sim->ncounters = 0;
		pvm_info("pvmsim: faults replaced, seed=%llu",
		         (unsigned long long)sim->faults.seed);
		srv_out_json(o, 200, sim_faults_dump(&sim->faults));
		snprintf(o->outcome, sizeof(o->outcome), "faults set");
	} else if (strcmp(p, "audit") == 0 && get) {
		const char *since =
		        MHD_lookup_connection_value(rt->conn, MHD_GET_ARGUMENT_KIND, "since");
		o->status = -1; /* filled after unlocking: the audit has its own lock */
		o->object[0] = '\0';
		snprintf(o->outcome, sizeof(o->outcome), "%s", since ? since : "0");
	} else if (strcmp(p, "health") == 0 && get) {
		srv_out_json(o, 200, json_pack("{s:s}", "status", "ok"));
	} else {
		srv_out_json(o, 404, json_pack("{s:s}", "error", "no such /sim endpoint"));
	}
}

/* ---- the MHD handler ---- */

static void fault_answer(struct pvm_sim *sim, struct route *rt, struct out *o,
                         const struct sim_fault_rule *f)
{
	switch (f->kind) {
	case SIM_F_VIOS_BUSY: {
		uint64_t h = sim_hash_str(sim->faults.seed, rt->path);
		srv_out_error(
		        o, 500, rt->path, "Unknown internal error.",
		        (h & 1) ? "HSCL3205 Unable to send command to VIOS at this moment. VIOS is "
		                  "busy processing some other request. Please retry the operation "
		                  "after sometime."
		                : "VIOS0014 The VIOS is busy processing another request. Retry the "
		                  "operation later.");
		break;
	}
	case SIM_F_500:
		srv_out_error(o, 500, rt->path, "Unknown internal error.",
		              "Unexpected error occurred (pvmsim injected fault).");
		break;
	case SIM_F_503:
		srv_out_error(o, 503, rt->path, "Service Unavailable",
		              "The REST server is not available (pvmsim injected fault).");
		break;
	case SIM_F_412:
		srv_out_error(o, 412, rt->path, "Precondition Failed",
		              "The object has changed since it was read (pvmsim 412 storm).");
		break;
	case SIM_F_RESET:
		o->reset = true;
		break;
	default:
		break;
	}
	snprintf(o->outcome, sizeof(o->outcome), "fault %s", sim_fault_kind_name(f->kind));
}

static void base_url(struct pvm_sim *sim, struct MHD_Connection *conn, char *buf, size_t n)
{
	const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
	if (host && *host && strlen(host) < 100 && !strpbrk(host, "\"<>& /"))
		snprintf(buf, n, "%s://%s", sim->tls ? "https" : "http", host);
	else
		snprintf(buf, n, "%s", sim->base);
}

/* libmicrohttpd's own messages (a client that speaks HTTP to the HTTPS port, a connection
 * closed by the reset fault) are debug noise for a simulator. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char buf[256];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	pvm_debug("pvmsim: libmicrohttpd: %s", buf);
}

static enum MHD_Result queue(struct pvm_sim *sim, struct MHD_Connection *conn, struct out *o)
{
	struct MHD_Response *resp;
	if (o->body)
		resp = MHD_create_response_from_buffer(strlen(o->body), o->body,
		                                       MHD_RESPMEM_MUST_FREE);
	else
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(o->body);
		return MHD_NO;
	}
	o->body = NULL;
	if (o->ctype && o->status != 204 && o->status != 304)
		MHD_add_response_header(resp, "Content-Type", o->ctype);
	MHD_add_response_header(resp, "X-MC-Type", sim->mode == PVM_SIM_HMC ? "HMC" : "PVM");
	MHD_add_response_header(resp, "X-HMC-Schema-Version", "V1_3_0");
	MHD_add_response_header(
	        resp, "Cache-Control",
	        "no-transform, must-revalidate, proxy-revalidate, no-cache=set-cookie");
	if (o->etag[0])
		MHD_add_response_header(resp, "ETag", o->etag);
	enum MHD_Result rc = MHD_queue_response(conn, (unsigned)o->status, resp);
	MHD_destroy_response(resp);
	return rc;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
	(void)version;
	struct pvm_sim *sim = cls;
	struct sim_req *r = *con_cls;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		*con_cls = r;
		if (strcmp(method, "PUT") == 0 &&
		    strncmp(url, "/rest/api/web/File/contents/", 28) == 0) {
			r->stream = true; /* hashed as it arrives: never held in memory */
			r->sha = EVP_MD_CTX_new();
			if (!r->sha || EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL) != 1)
				return MHD_NO;
		}
		return MHD_YES;
	}
	if (*upload_size && r->stream) {
		if (r->sha)
			EVP_DigestUpdate(r->sha, upload, *upload_size);
		r->stream_bytes += *upload_size;
		*upload_size = 0;
		return MHD_YES;
	}
	if (*upload_size) {
		if (r->body.len + *upload_size > MAX_BODY)
			r->too_big = true;
		else
			pvm_buf_addn(&r->body, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	struct out o = {.status = 500};
	struct route rt = {.method = method, .path = url, .conn = conn, .req = r};
	base_url(sim, conn, rt.base, sizeof(rt.base));
	rt.group_q = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "group");
	rt.groups = sim_groups_parse(rt.group_q);
	bool is_sim = strncmp(url, "/sim/", 5) == 0;
	bool is_api = strncmp(url, "/rest/api/", 10) == 0;
	bool mutating =
	        (is_api || is_sim) && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
	const char *token = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-API-Session");
	char pathbuf[512];

	pthread_mutex_lock(&sim->lock);
	if (r->too_big) {
		srv_out_error(&o, 413, url, "Request Entity Too Large", "The body is too large.");
		goto unlock;
	}
	if (is_sim) {
		sim_control(sim, &rt, &o);
		goto unlock;
	}
	if (!is_api) {
		srv_out_error(&o, 404, url, "Not Found", "No such resource.");
		goto unlock;
	}
	if (!r->decided) {
		r->decided = true;
		r->fault = sim_fault_decide(sim, method, url,
		                            strcmp(method, "POST") == 0 ||
		                                    strcmp(method, "DELETE") == 0);
	}
	if (r->fault && r->fault->kind == SIM_F_LATENCY && !r->latency_done && !sim->no_park) {
		struct sim_parked *p = calloc(1, sizeof(*p));
		if (p) {
			p->conn = conn;
			p->req = r;
			p->wake_ns = pvm_mono_ns() + (int64_t)r->fault->latency_ms * 1000000;
			MHD_suspend_connection(conn);
			p->next = sim->parked;
			sim->parked = p;
			r->latency_done = true;
			sim_kick(sim);
			pthread_mutex_unlock(&sim->lock);
			return MHD_YES;
		}
	}
	if (r->fault && r->fault->kind != SIM_F_LATENCY) {
		fault_answer(sim, &rt, &o, r->fault);
		goto unlock;
	}
	if (strcmp(url, "/rest/api/web/Logon") == 0) {
		logon(sim, &rt, &o, token);
		goto unlock;
	}
	const char *why;
	if (!r->authed && authenticate(sim, token, &why)) {
		srv_out_error(&o, 401, url, "Unauthorized", why);
		goto unlock;
	}
	r->authed = true;
	if (strncmp(url, "/rest/api/web/File", 18) == 0 && (url[18] == '\0' || url[18] == '/')) {
		sim_web_file(sim, &rt, &o);
		goto unlock;
	}
	if (strncmp(url, "/rest/api/pcm/", 14) == 0) {
		sim_pcm(sim, &rt, &o);
		goto unlock;
	}
	if (strncmp(url, "/rest/api/uom/", 14) != 0) {
		srv_out_error(&o, 404, url, "Not Found", "No such resource.");
		goto unlock;
	}
	rt.rel = url + 14;
	pvm_strlcpy(pathbuf, rt.rel, sizeof(pathbuf));
	char *save = NULL;
	for (char *t = strtok_r(pathbuf, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
		if (rt.nsegs == MAX_SEGS) {
			rt.nsegs = 0;
			break;
		}
		rt.segs[rt.nsegs++] = t;
	}
	uom(sim, &rt, &o, token);
unlock:
	pthread_mutex_unlock(&sim->lock);
	if (o.parked)
		return MHD_YES;
	if (o.persist)
		sim_persist(sim);
	if (o.status == -1) { /* /sim/audit */
		srv_out_json(&o, 200, audit_dump(sim, strtoull(o.outcome, NULL, 10)));
		o.outcome[0] = '\0';
	}
	if (mutating)
		sim_audit(sim, method, url, o.object, o.reset ? 0 : o.status, o.outcome);
	if (o.reset) {
		free(o.body);
		return MHD_NO;
	}
	return queue(sim, conn, &o);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	struct sim_req *r = *con_cls;
	if (!r)
		return;
	pvm_buf_fini(&r->body);
	EVP_MD_CTX_free(r->sha);
	free(r);
	*con_cls = NULL;
}

/* ---- start / stop ---- */

int sim_server_start(struct pvm_sim *sim, const char *host, int port, const char *cert,
                     const char *key)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		pvm_error("pvmsim: --listen: %s is not an IPv4 address", host);
		return PVM_EINVAL;
	}
	char *certpem = NULL, *keypem = NULL;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	                 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	if (cert && key) {
		int rc = pvm_read_file(cert, 1 << 20, &certpem, NULL);
		if (!rc)
			rc = pvm_read_file(key, 1 << 20, &keypem, NULL);
		if (rc) {
			pvm_error("pvmsim: reading TLS files: %s", pvm_strerror(rc));
			free(certpem);
			free(keypem);
			return rc;
		}
		flags |= MHD_USE_TLS;
		sim->tls = true;
	}
	struct MHD_Daemon *d;
	if (sim->tls)
		d = MHD_start_daemon(flags, 0, NULL, NULL, handle, sim, MHD_OPTION_SOCK_ADDR, &sa,
		                     MHD_OPTION_THREAD_POOL_SIZE, 4u, MHD_OPTION_CONNECTION_TIMEOUT,
		                     120u, MHD_OPTION_NOTIFY_COMPLETED, completed, sim,
		                     MHD_OPTION_CONNECTION_LIMIT, 1000u, MHD_OPTION_EXTERNAL_LOGGER,
		                     mhd_log, NULL, MHD_OPTION_HTTPS_MEM_KEY, keypem,
		                     MHD_OPTION_HTTPS_MEM_CERT, certpem, MHD_OPTION_END);
	else
		d = MHD_start_daemon(flags, 0, NULL, NULL, handle, sim, MHD_OPTION_SOCK_ADDR, &sa,
		                     MHD_OPTION_THREAD_POOL_SIZE, 4u, MHD_OPTION_CONNECTION_TIMEOUT,
		                     120u, MHD_OPTION_NOTIFY_COMPLETED, completed, sim,
		                     MHD_OPTION_CONNECTION_LIMIT, 1000u, MHD_OPTION_EXTERNAL_LOGGER,
		                     mhd_log, NULL, MHD_OPTION_END);
	free(certpem);
	free(keypem);
	if (!d) {
		pvm_error("pvmsim: cannot listen on %s:%d", host, port);
		return PVM_EIO;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	sim->port = info ? info->port : port;
	snprintf(sim->base, sizeof(sim->base), "%s://%s:%d", sim->tls ? "https" : "http", host,
	         sim->port);
	sim->daemon = d;
	return 0;
}

/* Resumes every parked connection (at stop, their answers are then built normally). */
void sim_resume_all(struct pvm_sim *sim)
{
	pthread_mutex_lock(&sim->lock);
	/* From now on nothing parks: libmicrohttpd aborts when stopped with a suspended
	 * connection, and a request could otherwise park between this and the stop. */
	sim->no_park = true;
	struct sim_parked *p = sim->parked;
	sim->parked = NULL;
	pthread_mutex_unlock(&sim->lock);
	while (p) {
		struct sim_parked *next = p->next;
		MHD_resume_connection(p->conn);
		free(p);
		p = next;
	}
}

void sim_server_stop(struct pvm_sim *sim)
{
	if (!sim->daemon)
		return;
	MHD_socket lfd = MHD_quiesce_daemon(sim->daemon); /* ours to close from now on */
	sim_resume_all(sim);
	MHD_stop_daemon(sim->daemon);
	if (lfd != MHD_INVALID_SOCKET)
		close(lfd);
	sim->daemon = NULL;
}

/* Called by the ticker under lock: detaches the parked connections that are due (time or
 * event); returns them as a list for resuming after the lock is released. */
struct sim_parked *sim_parked_due(struct pvm_sim *sim, int64_t now, int64_t *next_due)
{
	struct sim_parked *due = NULL;
	for (struct sim_parked **pp = &sim->parked; *pp;) {
		struct sim_parked *p = *pp;
		bool wake = now >= p->wake_ns;
		if (!wake && p->event_wait) {
			for (int i = 0; i < SIM_EVENT_CLIENTS; i++) {
				struct sim_evclient *c = &sim->clients[i];
				if (c->used && strcmp(c->key, p->evkey) == 0) {
					wake = c->cursor < sim->next_event_id;
					break;
				}
			}
		}
		if (wake) {
			*pp = p->next;
			p->next = due;
			due = p;
			continue;
		}
		if (p->wake_ns < *next_due)
			*next_due = p->wake_ns;
		pp = &p->next;
	}
	return due;
}

void sim_parked_resume(struct sim_parked *list)
{
	while (list) {
		struct sim_parked *next = list->next;
		MHD_resume_connection(list->conn);
		free(list);
		list = next;
	}
}
