/* cache.c: what powervmd knows of its host and partitions, kept fresh by the event listener.
 *
 * At start-up the daemon reads the managed systems and picks its own (by name, MTMS or UUID
 * from powervm_managed_system, or the only one), then reads that system's partitions. Server
 * events re-read the partition they name (or everything, after NEW_CLIENT, CACHE_CLEARED or
 * MISSING_EVENTS), wake operations waiting on that partition, and are published to the
 * lifecycle event log that GET /v1/events serves. GET /v1/host and /v1/instances answer
 * from here, never from a request to PowerVM.
 *
 * LOCKS: c->mu guards host and parts; it is never held across a PowerVM request.
 */
#include "cache.h"

#include "op_power.h"

#include "pvm/error.h"
#include "pvm/eventlog.h"
#include "pvm/log.h"
#include "pvm/pvm_objects.h"
#include "pvm/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct pvm_cache {
	struct pvm_client *client;
	_Atomic(struct pvm_engine *) engine; /* set once the workers run; read by the listener */
	struct pvm_eventlog *events;
	char ms_uuid[64];
	char ms_href[512];
	pthread_mutex_t mu;
	json_t *host;  /* guarded by mu */
	json_t *parts; /* guarded by mu: object partition uuid (upper case) -> partition */
	double proc_units_factor; /* guarded by mu: powervm_proc_units_factor */
	json_t *extra;            /* guarded by mu: the host sampler's keys (hostinfo.c) */
};

static json_t *lpar_json(const struct pvm_lpar *l)
{
	return json_pack("{s:s?, s:s?, s:I, s:s?, s:s?, s:I, s:I, s:f, s:s?, s:s?, s:b}", "uuid",
	                 l->meta.uuid, "name", l->name, "id", (json_int_t)l->id, "state", l->state,
	                 "type", l->type, "memory_mb", (json_int_t)l->memory_mb, "vcpus",
	                 (json_int_t)l->vcpus, "proc_units", l->proc_units, "rmc_state",
	                 l->rmc_state, "migration_state", l->migration_state, "management",
	                 (int)l->is_mgmt);
}

/* Reads the managed systems and keeps `which`. refresh: a re-read of the one chosen at
 * start (its UUID and href, read by other threads without the lock, are left alone). */
static int read_host(struct pvm_cache *c, const char *which, bool refresh,
                     struct pvm_rest_error *err)
{
	struct pvm_resp resp = {0};
	int rc = pvm_client_get(c->client, "uom/ManagedSystem", NULL, NULL, &resp, err);
	struct pvm_managed_system_list *l = NULL;
	if (rc == 0)
		rc = pvm_parse_managed_system(resp.body, resp.len, NULL, &l, err);
	pvm_resp_fini(&resp);
	if (rc)
		return rc;
	long i = pvm_managed_system_find(l, which);
	if (i < 0) {
		pvm_error("powervm_managed_system \"%s\" matches none of the %zu managed systems "
		          "this endpoint manages%s",
		          which ? which : "", l->count,
		          (!which || !which[0]) && l->count > 1
		                  ? " (several: set powervm_managed_system to a name, MTMS or UUID)"
		                  : "");
		for (size_t k = 0; k < l->count; k++)
			pvm_error("  managed system: name %s, MTMS %s, UUID %s",
			          l->items[k].name ? l->items[k].name : "?",
			          l->items[k].mtms ? l->items[k].mtms : "?",
			          l->items[k].meta.uuid ? l->items[k].meta.uuid : "?");
		pvm_managed_system_list_free(l);
		return PVM_ENOTFOUND;
	}
	const struct pvm_managed_system *m = &l->items[i];
	json_t *h = json_pack(
	        "{s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:I, s:I, s:I, s:f, s:f, "
	        "s:b, s:b}",
	        "uuid", m->meta.uuid, "name", m->name, "ip_address", m->ip_address, "mtms", m->mtms,
	        "machine_type", m->machine_type, "model", m->model, "serial", m->serial, "state",
	        m->state, "memory_configurable_mb", (json_int_t)m->memory_configurable_mb,
	        "memory_available_mb", (json_int_t)m->memory_available_mb, "memory_region_mb",
	        (json_int_t)m->memory_region_mb, "proc_units_configurable",
	        m->proc_units_configurable, "proc_units_available", m->proc_units_available,
	        "active_migration_capable", (int)m->active_migration_capable,
	        "inactive_migration_capable", (int)m->inactive_migration_capable);
	if (!refresh) {
		pvm_strlcpy(c->ms_uuid, m->meta.uuid ? m->meta.uuid : "", sizeof(c->ms_uuid));
		pvm_strlcpy(c->ms_href, m->meta.href ? m->meta.href : "", sizeof(c->ms_href));
	}
	pvm_managed_system_list_free(l);
	if (!h)
		return PVM_ENOMEM;
	pthread_mutex_lock(&c->mu);
	json_decref(c->host);
	c->host = h;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

static int read_parts(struct pvm_cache *c, struct pvm_rest_error *err)
{
	char path[128];
	snprintf(path, sizeof(path), "uom/ManagedSystem/%s/LogicalPartition", c->ms_uuid);
	struct pvm_resp resp = {0};
	int rc = pvm_client_get(c->client, path, NULL, NULL, &resp, err);
	struct pvm_lpar_list *l = NULL;
	if (rc == 0)
		rc = pvm_parse_lpar(resp.body, resp.len, NULL, &l, err);
	pvm_resp_fini(&resp);
	if (rc)
		return rc;
	json_t *parts = json_object();
	for (size_t i = 0; parts && i < l->count; i++)
		if (l->items[i].meta.uuid)
			json_object_set_new(parts, l->items[i].meta.uuid, lpar_json(&l->items[i]));
	pvm_lpar_list_free(l);
	if (!parts)
		return PVM_ENOMEM;
	pthread_mutex_lock(&c->mu);
	json_decref(c->parts);
	c->parts = parts;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

/* Re-reads one partition; a 404 removes it. Returns its new state in st (or ""). */
static void read_part(struct pvm_cache *c, const char *uuid, char *st, size_t n)
{
	char path[128];
	snprintf(path, sizeof(path), "uom/LogicalPartition/%s", uuid);
	struct pvm_resp resp = {0};
	struct pvm_rest_error err = {0};
	st[0] = '\0';
	int rc = pvm_client_get(c->client, path, NULL, NULL, &resp, &err);
	struct pvm_lpar_list *l = NULL;
	if (rc == 0)
		rc = pvm_parse_lpar(resp.body, resp.len, resp.etag, &l, &err);
	pvm_resp_fini(&resp);
	pthread_mutex_lock(&c->mu);
	if (rc == PVM_ENOTFOUND) {
		json_object_del(c->parts, uuid);
	} else if (rc == 0 && l->count == 1) {
		json_object_set_new(c->parts, uuid, lpar_json(&l->items[0]));
		if (l->items[0].state)
			pvm_strlcpy(st, l->items[0].state, n);
	}
	pthread_mutex_unlock(&c->mu);
	pvm_lpar_list_free(l);
}

int pvm_cache_create(struct pvm_client *client, const char *managed_system,
                     struct pvm_eventlog *events, struct pvm_cache **out)
{
	struct pvm_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return PVM_ENOMEM;
	c->client = client;
	c->events = events;
	c->parts = json_object();
	c->proc_units_factor = 0.1;
	pthread_mutex_init(&c->mu, NULL);
	struct pvm_rest_error err = {0};
	int rc = read_host(c, managed_system, false, &err);
	if (rc == 0)
		rc = read_parts(c, &err);
	if (rc) {
		if (rc != PVM_ENOTFOUND || err.message[0])
			pvm_error("reading the managed system and its partitions: %s",
			          err.message[0] ? err.message : pvm_strerror(rc));
		pvm_cache_destroy(c);
		return rc;
	}
	pvm_info("managed system %s; %zu partitions", c->ms_uuid, json_object_size(c->parts));
	*out = c;
	return 0;
}

void pvm_cache_set_engine(struct pvm_cache *c, struct pvm_engine *e)
{
	atomic_store(&c->engine, e);
}

void pvm_cache_destroy(struct pvm_cache *c)
{
	if (!c)
		return;
	json_decref(c->host);
	json_decref(c->parts);
	json_decref(c->extra);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

const char *pvm_cache_ms_uuid(const struct pvm_cache *c)
{
	return c->ms_uuid;
}

const char *pvm_cache_ms_href(const struct pvm_cache *c)
{
	return c->ms_href;
}

void pvm_cache_set_proc_units_factor(struct pvm_cache *c, double f)
{
	if (!(f >= 0.05 && f <= 1.0))
		return;
	pthread_mutex_lock(&c->mu);
	c->proc_units_factor = f;
	pthread_mutex_unlock(&c->mu);
}

static bool is_instance(json_t *part)
{
	const char *type = json_string_value(json_object_get(part, "type"));
	return !json_is_true(json_object_get(part, "management")) &&
	       !(type && strcmp(type, "Virtual IO Server") == 0);
}

static json_t *inventory_class(json_int_t total, json_int_t reserved)
{
	return json_pack("{s:I, s:I, s:i, s:I, s:i, s:f}", "total", total, "reserved", reserved,
	                 "min_unit", 1, "max_unit", total, "step_size", 1, "allocation_ratio", 1.0);
}

/* What nova's get_available_resource and update_provider_tree need (docs/api.md). Called
 * with c->mu held; adds to h. */
static void add_nova_resources(struct pvm_cache *c, json_t *h)
{
	double f = c->proc_units_factor;
	double units = json_number_value(json_object_get(h, "proc_units_configurable"));
	json_int_t mem = json_integer_value(json_object_get(h, "memory_configurable_mb"));
	json_int_t avail = json_integer_value(json_object_get(h, "memory_available_mb"));
	/* 40 / 0.1 is 399.99...: round down only what is below a whole vCPU by more than
	 * floating-point noise. */
	json_int_t vcpus = (json_int_t)(units / f + 1e-6);
	/* Reserved: what the hypervisor, the VIOSes and the management partition hold (what
	 * is not available and not held by an active instance). */
	json_int_t vcpus_used = 0, inst_mem = 0, n_inst = 0;
	double inst_units = 0;
	const char *k;
	json_t *v;
	json_object_foreach(c->parts, k, v)
	{
		if (!is_instance(v))
			continue;
		vcpus_used += json_integer_value(json_object_get(v, "vcpus"));
		n_inst++;
		const char *st = json_string_value(json_object_get(v, "state"));
		if (st && strcmp(st, "not activated") != 0) {
			inst_mem += json_integer_value(json_object_get(v, "memory_mb"));
			inst_units += json_number_value(json_object_get(v, "proc_units"));
		}
	}
	double units_avail = json_number_value(json_object_get(h, "proc_units_available"));
	double r = (units - units_avail - inst_units) / f - 1e-6; /* rounded up, no libm */
	json_int_t vcpus_reserved = r > 0 ? (json_int_t)r + ((double)(json_int_t)r < r) : 0;
	if (vcpus_reserved > vcpus)
		vcpus_reserved = vcpus;
	json_int_t sys_mem = mem - avail - inst_mem;
	if (sys_mem < 0)
		sys_mem = 0;
	if (sys_mem > mem)
		sys_mem = mem;
	const char *mt = json_string_value(json_object_get(h, "machine_type"));
	const char *model = json_string_value(json_object_get(h, "model"));
	char cpu_info[160];
	snprintf(cpu_info, sizeof(cpu_info),
	         "{\"arch\": \"ppc64le\", \"vendor\": \"IBM\", \"model\": \"%s-%s\"}", mt ? mt : "",
	         model ? model : "");
	const char *name = json_string_value(json_object_get(h, "name"));
	json_t *add = json_pack(
	        "{s:I, s:I, s:I, s:I, s:s, s:i, s:s?, s:s, s:[[s,s,s],[s,s,s]], s:f, s:I, s:[s?], "
	        "s:{s:o, s:o}}",
	        "vcpus", vcpus, "vcpus_used", vcpus_used, "memory_mb", mem, "memory_mb_used",
	        mem - avail, "hypervisor_type", "phyp", "hypervisor_version", 7,
	        "hypervisor_hostname", name, "cpu_info", cpu_info, "supported_instances", "ppc64",
	        "phyp", "hvm", "ppc64le", "phyp", "hvm", "proc_units_factor", f, "instances",
	        n_inst, "nodes", name, "inventory", "VCPU", inventory_class(vcpus, vcpus_reserved),
	        "MEMORY_MB", inventory_class(mem, sys_mem));
	/* Disk from the configured storage (the host sampler's "disk"): the volume group of
	 * localdisk, or the shared storage pool. Until the first sample: 0 (nova then
	 * schedules no disk here rather than too much). */
	json_t *disk = json_object_get(h, "disk");
	json_int_t disk_total = json_integer_value(json_object_get(disk, "total_gb"));
	json_int_t disk_used = json_integer_value(json_object_get(disk, "used_gb"));
	if (add) {
		json_object_set_new(add, "local_gb", json_integer(disk_total));
		json_object_set_new(add, "local_gb_used", json_integer(disk_used));
		json_t *inv = json_object_get(add, "inventory");
		if (inv && disk_total > 0)
			json_object_set_new(
			        inv, "DISK_GB",
			        inventory_class(disk_total, json_integer_value(json_object_get(
			                                            disk, "reserved_gb"))));
	}
	if (add)
		json_object_update(h, add);
	json_decref(add);
}

void pvm_cache_set_host_extra(struct pvm_cache *c, const char *key, json_t *value)
{
	pthread_mutex_lock(&c->mu);
	if (!c->extra)
		c->extra = json_object();
	if (c->extra && value)
		json_object_set(c->extra, key, value);
	pthread_mutex_unlock(&c->mu);
	json_decref(value);
}

json_t *pvm_cache_host(struct pvm_cache *c)
{
	pthread_mutex_lock(&c->mu);
	json_t *h = c->host ? json_deep_copy(c->host) : NULL;
	if (h && c->extra) {
		json_t *x = json_deep_copy(c->extra);
		json_object_update(h, x);
		json_decref(x);
	}
	if (h)
		add_nova_resources(c, h);
	pthread_mutex_unlock(&c->mu);
	return h;
}

/* An instance as the API shows it: the partition, its nova power state, whether a reboot
 * runs. */
static json_t *instance_json(json_t *part, const char *instance_uuid)
{
	json_t *o = json_deep_copy(part);
	const char *st = json_string_value(json_object_get(part, "state"));
	const char *pu = json_string_value(json_object_get(part, "uuid"));
	int ps = (int)pvm_nova_power_state(st);
	json_object_set_new(o, "partition_uuid", json_string(pu ? pu : ""));
	if (instance_uuid)
		json_object_set_new(o, "instance_uuid", json_string(instance_uuid));
	json_object_set_new(o, "power_state", json_integer(ps));
	json_object_set_new(o, "power_state_name", json_string(pvm_nova_power_state_name(ps)));
	json_object_set_new(o, "rebooting", json_boolean(pu && pvm_ops_rebooting(pu)));
	return o;
}

json_t *pvm_cache_instances(struct pvm_cache *c, const char *uuid)
{
	json_t *out = NULL;
	pthread_mutex_lock(&c->mu);
	if (uuid) {
		/* By the nova instance UUID (or the partition's own: the derivation leaves a
		 * partition UUID as it is). */
		char derived[37] = "";
		if (pvm_lpar_uuid_from_instance(uuid, derived) != 0)
			pvm_strlcpy(derived, uuid, sizeof(derived));
		const char *k;
		json_t *v;
		json_object_foreach(c->parts, k, v)
		{
			if (strcasecmp(k, derived) == 0 && is_instance(v))
				out = instance_json(v, uuid);
		}
	} else {
		json_t *arr = json_array();
		const char *k;
		json_t *v;
		json_object_foreach(c->parts, k, v)
		{
			if (is_instance(v))
				json_array_append_new(arr, instance_json(v, NULL));
		}
		out = json_pack("{s:o}", "instances", arr);
	}
	pthread_mutex_unlock(&c->mu);
	return out;
}

/* The partition UUID an event's URI names, if it names one. */
static bool uri_partition(const char *uri, char *out, size_t n)
{
	const char *p = uri ? strstr(uri, "/LogicalPartition/") : NULL;
	if (!p)
		return false;
	p += strlen("/LogicalPartition/");
	size_t len = strcspn(p, "/?");
	if (len != 36 || len >= n)
		return false;
	memcpy(out, p, len);
	out[len] = '\0';
	return pvm_is_uuid(out);
}

void pvm_cache_on_event(void *arg, const struct pvm_event *ev)
{
	struct pvm_cache *c = arg;
	if (ev->kind == PVM_EVENT_RESYNC) {
		struct pvm_rest_error err = {0};
		if (read_parts(c, &err) == 0)
			pvm_info("events: %s: partitions re-read", ev->type);
		read_host(c, c->ms_uuid, true, &err);
		if (c->events)
			pvm_eventlog_publish(c->events,
			                     json_pack("{s:s, s:s}", "type", "resync", "reason",
			                               ev->type ? ev->type : ""),
			                     NULL);
		return;
	}
	char uuid[40];
	if (!uri_partition(ev->data, uuid, sizeof(uuid)))
		return;
	char state[64] = "";
	if (ev->kind == PVM_EVENT_DELETE) {
		pthread_mutex_lock(&c->mu);
		json_object_del(c->parts, uuid);
		pthread_mutex_unlock(&c->mu);
	} else {
		read_part(c, uuid, state, sizeof(state));
	}
	/* A partition that starts, stops, appears or goes changes what the host has
	 * available (GET /v1/host): read it again. */
	struct pvm_rest_error herr = {0};
	int hrc = read_host(c, c->ms_uuid, true, &herr);
	if (hrc)
		pvm_warn("events: re-reading the managed system: %s",
		         herr.message[0] ? herr.message : pvm_strerror(hrc));
	struct pvm_engine *e = atomic_load(&c->engine);
	if (e)
		pvm_engine_partition_event(e, uuid);
	if (c->events)
		pvm_eventlog_publish(c->events,
		                     json_pack("{s:s, s:s, s:s, s:s?, s:s?}", "type", "partition",
		                               "partition_uuid", uuid, "event",
		                               ev->type ? ev->type : "", "detail", ev->detail,
		                               "state", state[0] ? state : NULL),
		                     NULL);
}
