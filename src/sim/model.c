/* model.c: pvmsim's object model, inventory and state file.
 *
 * DESIGN: every simulated object (system, partition, VIOS, switch, volume group, pool,
 * tier, logical unit, adapter, file) is one struct sim_obj: a kind, a UUID, a parent UUID,
 * a generation (ETag source) and a JSON object of properties. New kinds add an enum value, inventory
 * parsing and a renderer; persistence, events and lookups need no change. The whole model
 * is saved as one JSON file (state.json: written to a temporary file, fsynced, renamed,
 * directory fsynced) after each mutation; jobs are not part of it, so a restart forgets
 * jobs in flight and leaves partitions in the state they had reached.
 *
 * Locking: functions here run under sim->lock, except sim_state_write()/sim_persist(),
 * which take persist_lock alone (no lock is held across disk I/O).
 */
#include "sim.h"

#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define STATE_VERSION 1

static const char *const kind_names[SIM_KIND_COUNT] = {
        "ManagedSystem", "LogicalPartition", "VirtualIOServer",      "VirtualSwitch",
        "VolumeGroup",   "PhysicalVolume",   "FibreChannelPort",     "SharedStoragePool",
        "Tier",          "LogicalUnit",      "ClientNetworkAdapter", "File",
};

const char *sim_kind_name(enum sim_kind k)
{
	return (unsigned)k < SIM_KIND_COUNT ? kind_names[k] : "Unknown";
}

int sim_kind_parse(const char *s, enum sim_kind *out)
{
	for (int i = 0; i < SIM_KIND_COUNT; i++) {
		if (strcmp(s, kind_names[i]) == 0) {
			*out = (enum sim_kind)i;
			return 0;
		}
	}
	return PVM_EINVAL;
}

unsigned sim_groups_parse(const char *q)
{
	static const struct {
		const char *name;
		unsigned bit;
	} names[] = {
	        {"Hypervisor", SIM_G_HYPERVISOR},    {"SystemNetwork", SIM_G_SYSNET},
	        {"ViosStorage", SIM_G_VIOS_STORAGE}, {"ViosNetwork", SIM_G_VIOS_NETWORK},
	        {"ViosFCMapping", SIM_G_VIOS_FC},    {"ViosSCSIMapping", SIM_G_VIOS_SCSI},
	        {"Advanced", SIM_G_ADVANCED},
	};
	if (!q)
		return SIM_G_ALL;
	unsigned m = 0;
	const char *p = q;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strlen(names[i].name) == n && strncmp(p, names[i].name, n) == 0)
				m |= names[i].bit;
		p += n;
		if (*p == ',')
			p++;
	}
	return m;
}

int32_t sim_etag(const struct sim_obj *o, unsigned groups)
{
	uint64_t h = sim_hash_str(o->gen * 0x100000001b3ULL + groups, o->uuid);
	return (int32_t)(uint32_t)(h >> 17);
}

/* ---- objects ---- */

struct sim_obj *sim_obj_new(struct pvm_sim *sim, enum sim_kind kind, const char *uuid,
                            const char *parent, json_t *props)
{
	if (sim->nobjs == sim->capobjs) {
		size_t cap = sim->capobjs ? sim->capobjs * 2 : 64;
		struct sim_obj **n = realloc(sim->objs, cap * sizeof(*n));
		if (!n)
			return NULL;
		sim->objs = n;
		sim->capobjs = cap;
	}
	struct sim_obj *o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->kind = kind;
	pvm_strlcpy(o->uuid, uuid, sizeof(o->uuid));
	pvm_strlcpy(o->parent, parent ? parent : "", sizeof(o->parent));
	o->gen = 1;
	o->created_ms = pvm_now_ms();
	o->props = props ? props : json_object();
	sim->objs[sim->nobjs++] = o;
	sim->state_seq++;
	return o;
}

struct sim_obj *sim_obj_find(struct pvm_sim *sim, enum sim_kind kind, const char *uuid)
{
	for (size_t i = 0; i < sim->nobjs; i++) {
		struct sim_obj *o = sim->objs[i];
		if (o->kind == kind && strcasecmp(o->uuid, uuid) == 0)
			return o;
	}
	return NULL;
}

static void obj_free(struct sim_obj *o)
{
	if (!o)
		return;
	json_decref(o->props);
	free(o);
}

void sim_obj_remove(struct pvm_sim *sim, struct sim_obj *o)
{
	for (size_t i = 0; i < sim->nobjs; i++) {
		if (sim->objs[i] == o) {
			memmove(&sim->objs[i], &sim->objs[i + 1],
			        (sim->nobjs - i - 1) * sizeof(sim->objs[0]));
			sim->nobjs--;
			break;
		}
	}
	obj_free(o);
	sim->state_seq++;
}

void sim_obj_touch(struct pvm_sim *sim, struct sim_obj *o)
{
	o->gen++;
	sim->state_seq++;
}

void sim_objs_clear(struct pvm_sim *sim)
{
	for (size_t i = 0; i < sim->nobjs; i++)
		obj_free(sim->objs[i]);
	sim->nobjs = 0;
	sim->state_seq++;
}

const char *sim_str(const struct sim_obj *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o->props, key));
	return s ? s : dflt;
}

int64_t sim_int(const struct sim_obj *o, const char *key, int64_t dflt)
{
	json_t *v = json_object_get(o->props, key);
	return json_is_number(v) ? (int64_t)json_number_value(v) : dflt;
}

double sim_real(const struct sim_obj *o, const char *key, double dflt)
{
	json_t *v = json_object_get(o->props, key);
	return json_is_number(v) ? json_number_value(v) : dflt;
}

bool sim_bool(const struct sim_obj *o, const char *key, bool dflt)
{
	json_t *v = json_object_get(o->props, key);
	return json_is_boolean(v) ? json_is_true(v) : dflt;
}

void sim_set_str(struct sim_obj *o, const char *key, const char *v)
{
	json_object_set_new(o->props, key, json_string(v));
}

void sim_obj_uri(const struct sim_obj *o, char *buf, size_t n)
{
	if (o->kind == SIM_VSWITCH)
		snprintf(buf, n, "ManagedSystem/%s/VirtualSwitch/%s", o->parent, o->uuid);
	else if (o->kind == SIM_VG)
		snprintf(buf, n, "VirtualIOServer/%s/VolumeGroup/%s", o->parent, o->uuid);
	else if (o->kind == SIM_LU)
		snprintf(buf, n, "Tier/%s/LogicalUnit/%s", o->parent, o->uuid);
	else if (o->kind == SIM_CNA)
		snprintf(buf, n, "LogicalPartition/%s/ClientNetworkAdapter/%s", o->parent, o->uuid);
	else
		snprintf(buf, n, "%s/%s", sim_kind_name(o->kind), o->uuid);
}

void sim_event_add(struct pvm_sim *sim, const char *type, const char *data, const char *detail)
{
	uint64_t id = sim->next_event_id++;
	struct sim_event *e = &sim->ring[id % SIM_EVENT_RING];
	free(e->data);
	free(e->detail);
	e->id = id;
	pvm_strlcpy(e->type, type, sizeof(e->type));
	e->data = strdup(data ? data : "");
	e->detail = strdup(detail ? detail : "");
	e->ms = pvm_now_ms();
	sim_kick(sim); /* the ticker resumes waiting long-polls */
}

void sim_set_state(struct pvm_sim *sim, struct sim_obj *o, const char *state)
{
	if (strcmp(sim_str(o, "state", ""), state) == 0)
		return;
	sim_pcm_account(o, pvm_now_ms()); /* cycles of the old state up to now */
	sim_set_str(o, "state", state);
	/* RMC comes up with the OS and goes with it. */
	sim_set_str(o, "rmc_state", strcmp(state, "running") == 0 ? "active" : "inactive");
	sim_obj_touch(sim, o);
	char uri[128];
	sim_obj_uri(o, uri, sizeof(uri));
	sim_event_add(sim, "MODIFY_URI", uri, "PartitionState,Other");
}

int sim_next_partition_id(struct pvm_sim *sim, const char *ms)
{
	int id = 1;
	for (;;) {
		bool used = false;
		for (size_t i = 0; i < sim->nobjs && !used; i++) {
			struct sim_obj *o = sim->objs[i];
			if ((o->kind == SIM_LPAR || o->kind == SIM_VIOS) &&
			    strcasecmp(o->parent, ms) == 0 && sim_int(o, "id", 0) == id)
				used = true;
		}
		if (!used)
			return id;
		id++;
	}
}

static bool state_active(const char *s)
{
	return strcmp(s, "not activated") != 0 && strcmp(s, "error") != 0 &&
	       strcmp(s, "not available") != 0;
}

void sim_ms_available(struct pvm_sim *sim, const struct sim_obj *ms, int64_t *mem_mb, double *units)
{
	int64_t mem = sim_int(ms, "memory_mb", 0) - sim_int(ms, "hypervisor_memory_mb", 0);
	double u = sim_real(ms, "processor_units", 0);
	for (size_t i = 0; i < sim->nobjs; i++) {
		struct sim_obj *o = sim->objs[i];
		if ((o->kind != SIM_LPAR && o->kind != SIM_VIOS) ||
		    strcasecmp(o->parent, ms->uuid) != 0 || !state_active(sim_str(o, "state", "")))
			continue;
		mem -= sim_int(o, "desired_mem", 0);
		u -= sim_bool(o, "dedicated", false) ? (double)sim_int(o, "desired_vcpus", 0)
		                                     : sim_real(o, "desired_units", 0);
	}
	*mem_mb = mem;
	*units = u < 0 ? 0 : u;
}

/* ---- inventory ---- */

static const char default_inventory[] =
        "{\"managed_systems\": ["
        " {\"name\": \"sim-8408-E8E-SN10678CV\", \"machine_type\": \"8408\", \"model\": \"E8E\","
        "  \"serial\": \"10678CV\", \"memory_mb\": 524288, \"memory_region_mb\": 256,"
        "  \"hypervisor_memory_mb\": 8192, \"processor_units\": 40, \"max_partitions\": 800,"
        "  \"ip\": \"127.0.0.10\","
        "  \"compat_modes\": [\"default\", \"POWER6\", \"POWER6_Plus\", \"POWER7\", \"POWER8\"],"
        "  \"migration\": {\"max_active\": 16, \"max_inactive\": 16},"
        "  \"virtual_switches\": [{\"name\": \"ETHERNET0(Default)\", \"mode\": \"Veb\"},"
        "                         {\"name\": \"MGMTSWITCH\", \"mode\": \"Veb\"}],"
        "  \"vioses\": [{\"name\": \"vios1\", \"id\": 1, \"memory_mb\": 8192,"
        "    \"processor_units\": 2.0, \"vcpus\": 4,"
        "    \"volume_groups\": [{\"name\": \"rootvg\", \"capacity_gb\": 1063, \"free_gb\": 1000,"
        "      \"media_repository\": {\"name\": \"VMLibrary\", \"size_gb\": 11}}],"
        "    \"physical_volumes\": [{\"name\": \"hdisk0\", \"capacity_mb\": 1089592},"
        "                           {\"name\": \"hdisk1\", \"capacity_mb\": 1089592},"
        "                           {\"name\": \"hdisk2\", \"capacity_mb\": 102400,"
        "                            \"fc_backed\": true}],"
        "    \"fc_ports\": [{\"name\": \"fcs0\", \"wwpn\": \"10000090FA1B6898\"},"
        "                   {\"name\": \"fcs1\", \"wwpn\": \"10000090FA1B6899\"}]}],"
        "  \"shared_storage_pools\": [{\"name\": \"ssp1\", \"capacity_gb\": 2048,"
        "    \"free_gb\": 2000, \"tiers\": [{\"name\": \"SYSTEM\", \"default\": true}]}]"
        " },"
        " {\"name\": \"sim-9009-42A-SN21F64EV\", \"machine_type\": \"9009\", \"model\": \"42A\","
        "  \"serial\": \"21F64EV\", \"memory_mb\": 262144, \"memory_region_mb\": 256,"
        "  \"hypervisor_memory_mb\": 6144, \"processor_units\": 20, \"max_partitions\": 400,"
        "  \"ip\": \"127.0.0.11\","
        "  \"compat_modes\": [\"default\", \"POWER7\", \"POWER8\", \"POWER9_Base\", \"POWER9\"],"
        "  \"migration\": {\"max_active\": 16, \"max_inactive\": 16},"
        "  \"virtual_switches\": [{\"name\": \"ETHERNET0(Default)\", \"mode\": \"Veb\"},"
        "                         {\"name\": \"MGMTSWITCH\", \"mode\": \"Veb\"}],"
        "  \"vioses\": [{\"name\": \"vios1\", \"id\": 1, \"memory_mb\": 8192,"
        "    \"processor_units\": 2.0, \"vcpus\": 4,"
        "    \"volume_groups\": [{\"name\": \"rootvg\", \"capacity_gb\": 558, \"free_gb\": 500,"
        "      \"media_repository\": {\"name\": \"VMLibrary\", \"size_gb\": 11}}],"
        "    \"physical_volumes\": [{\"name\": \"hdisk0\", \"capacity_mb\": 571392}],"
        "    \"fc_ports\": [{\"name\": \"fcs0\", \"wwpn\": \"10000090FA2C7700\"}]}],"
        "  \"shared_storage_pools\": [{\"name\": \"ssp1\"}]"
        " }]}";

json_t *sim_inventory_default(void)
{
	return json_loads(default_inventory, 0, NULL);
}

static const char *jstr(json_t *o, const char *k, const char *d)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : d;
}

static double jnum(json_t *o, const char *k, double d)
{
	json_t *v = json_object_get(o, k);
	return json_is_number(v) ? json_number_value(v) : d;
}

static void uuid_for(json_t *spec, const char *seed, bool upper, char out[SIM_UUID_LEN])
{
	const char *u = jstr(spec, "uuid", NULL);
	if (u && pvm_is_uuid(u))
		pvm_strlcpy(out, u, SIM_UUID_LEN);
	else
		sim_uuid_from(seed, upper, out);
}

/* Builds the properties of a partition (LPAR or VIOS) from simple sizes. */
json_t *sim_partition_props(const char *name, int id, const char *type, const char *state,
                            int64_t mem, int vcpus, double units)
{
	if (units <= 0)
		units = vcpus * 0.1 < 0.05 ? 0.05 : vcpus * 0.1;
	return json_pack("{s:s, s:i, s:s, s:s, s:I, s:I, s:I, s:b, s:f, s:f, s:f, s:i, s:i, s:i,"
	                 " s:i, s:i, s:s, s:i, s:i, s:s, s:s, s:s, s:b, s:s, s:s}",
	                 "name", name, "id", id, "type", type, "state", state, "desired_mem",
	                 (json_int_t)mem, "min_mem", (json_int_t)mem, "max_mem", (json_int_t)mem,
	                 "dedicated", 0, "desired_units", units, "min_units", units, "max_units",
	                 units, "desired_vcpus", vcpus, "min_vcpus", vcpus, "max_vcpus", vcpus,
	                 "pool_id", 0, "weight", 128, "sharing_mode", "uncapped", "max_slots", 64,
	                 "avail_priority", 127, "compat_mode", "default", "current_compat",
	                 "POWER8", "rmc_state",
	                 strcmp(state, "running") == 0 ? "active" : "inactive", "is_mgmt", 0,
	                 "os_version", "Unknown", "ref_code", "");
}

static int load_vios(struct pvm_sim *sim, struct sim_obj *ms, json_t *v, size_t idx)
{
	char uuid[SIM_UUID_LEN], seed[256];
	const char *name = jstr(v, "name", NULL);
	if (!name)
		return PVM_ECONFIG;
	snprintf(seed, sizeof(seed), "vios:%s:%s", ms->uuid, name);
	uuid_for(v, seed, true, uuid);
	int id = (int)jnum(v, "id", 0);
	if (id <= 0)
		id = sim_next_partition_id(sim, ms->uuid);
	json_t *p = sim_partition_props(name, id, "Virtual IO Server", "running",
	                                (int64_t)jnum(v, "memory_mb", 4096),
	                                (int)jnum(v, "vcpus", 2), jnum(v, "processor_units", 1.0));
	json_object_set_new(p, "os_version", json_string("VIOS 3.1.0.21"));
	json_object_set_new(p, "avail_priority", json_integer(191));
	struct sim_obj *vo = sim_obj_new(sim, SIM_VIOS, uuid, ms->uuid, p);
	if (!vo)
		return PVM_ENOMEM;
	json_t *a;
	size_t i;
	json_array_foreach(json_object_get(v, "volume_groups"), i, a)
	{
		snprintf(seed, sizeof(seed), "vg:%s:%s", uuid, jstr(a, "name", "vg"));
		char u[SIM_UUID_LEN];
		uuid_for(a, seed, false, u);
		json_t *mr = json_object_get(a, "media_repository");
		json_t *pp = json_pack("{s:s, s:f, s:f, s:O}", "name", jstr(a, "name", "vg"),
		                       "capacity_gb", jnum(a, "capacity_gb", 100), "free_gb",
		                       jnum(a, "free_gb", jnum(a, "capacity_gb", 100)),
		                       "media_repository", mr ? mr : json_null());
		if (!sim_obj_new(sim, SIM_VG, u, uuid, pp))
			return PVM_ENOMEM;
	}
	json_array_foreach(json_object_get(v, "physical_volumes"), i, a)
	{
		const char *pn = jstr(a, "name", "hdisk");
		snprintf(seed, sizeof(seed), "pv:%s:%s", uuid, pn);
		char u[SIM_UUID_LEN], udid[80];
		uuid_for(a, seed, false, u);
		snprintf(udid, sizeof(udid), "01M0lCTU%016llx",
		         (unsigned long long)sim_hash_str(idx, seed));
		json_t *pp =
		        json_pack("{s:s, s:s, s:I, s:b}", "name", pn, "udid", jstr(a, "udid", udid),
		                  "capacity_mb", (json_int_t)jnum(a, "capacity_mb", 102400),
		                  "fc_backed", json_is_true(json_object_get(a, "fc_backed")));
		if (!sim_obj_new(sim, SIM_PV, u, uuid, pp))
			return PVM_ENOMEM;
	}
	json_array_foreach(json_object_get(v, "fc_ports"), i, a)
	{
		const char *pn = jstr(a, "name", "fcs");
		snprintf(seed, sizeof(seed), "fc:%s:%s", uuid, pn);
		char u[SIM_UUID_LEN];
		uuid_for(a, seed, false, u);
		json_t *pp = json_pack("{s:s, s:s, s:s}", "name", pn, "wwpn",
		                       jstr(a, "wwpn", "10000090FA000000"), "location",
		                       jstr(a, "location", ""));
		if (!sim_obj_new(sim, SIM_FCPORT, u, uuid, pp))
			return PVM_ENOMEM;
	}
	return 0;
}

static int load_ms(struct pvm_sim *sim, json_t *m, char *err, size_t errn)
{
	const char *name = jstr(m, "name", NULL);
	if (!name) {
		snprintf(err, errn, "a managed system has no name");
		return PVM_ECONFIG;
	}
	char uuid[SIM_UUID_LEN], seed[256];
	snprintf(seed, sizeof(seed), "ms:%s", name);
	uuid_for(m, seed, false, uuid);
	json_t *caps = json_object_get(m, "capabilities");
	json_t *modes = json_object_get(m, "compat_modes");
	json_t *mig = json_object_get(m, "migration");
	caps = json_is_object(caps) ? json_incref(caps) : json_object();
	modes = json_is_array(modes)
	                ? json_incref(modes)
	                : json_pack("[s,s,s,s]", "default", "POWER7", "POWER8", "POWER9");
	json_t *p = json_pack(
	        "{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:f, s:I, s:s, s:s, s:o, s:o, s:i, s:i}",
	        "name", name, "machine_type", jstr(m, "machine_type", "8408"), "model",
	        jstr(m, "model", "E8E"), "serial", jstr(m, "serial", "0000000"), "memory_mb",
	        (json_int_t)jnum(m, "memory_mb", 524288), "memory_region_mb",
	        (json_int_t)jnum(m, "memory_region_mb", 256), "hypervisor_memory_mb",
	        (json_int_t)jnum(m, "hypervisor_memory_mb", 8192), "processor_units",
	        jnum(m, "processor_units", 40), "max_partitions",
	        (json_int_t)jnum(m, "max_partitions", 800), "ip", jstr(m, "ip", "127.0.0.10"),
	        "state", jstr(m, "state", "operating"), "capabilities", caps, "compat_modes", modes,
	        "max_active_migrations", (int)jnum(mig, "max_active", 16),
	        "max_inactive_migrations", (int)jnum(mig, "max_inactive", 16));
	if (!p) {
		snprintf(err, errn, "managed system %s: bad fields", name);
		return PVM_ECONFIG;
	}
	struct sim_obj *ms = sim_obj_new(sim, SIM_MS, uuid, NULL, p);
	if (!ms)
		return PVM_ENOMEM;
	json_t *a;
	size_t i;
	int sid = 0;
	json_array_foreach(json_object_get(m, "virtual_switches"), i, a)
	{
		const char *sn = jstr(a, "name", "ETHERNET0(Default)");
		snprintf(seed, sizeof(seed), "vswitch:%s:%s", uuid, sn);
		char u[SIM_UUID_LEN];
		uuid_for(a, seed, false, u);
		json_t *pp = json_pack("{s:s, s:i, s:s}", "name", sn, "switch_id", sid++, "mode",
		                       jstr(a, "mode", "Veb"));
		if (!sim_obj_new(sim, SIM_VSWITCH, u, uuid, pp))
			return PVM_ENOMEM;
	}
	json_array_foreach(json_object_get(m, "vioses"), i, a)
	{
		int rc = load_vios(sim, ms, a, i);
		if (rc) {
			snprintf(err, errn, "managed system %s: bad VIOS %zu", name, i);
			return rc;
		}
	}
	json_array_foreach(json_object_get(m, "shared_storage_pools"), i, a)
	{
		const char *sn = jstr(a, "name", "ssp");
		snprintf(seed, sizeof(seed), "ssp:%s", sn);
		char u[SIM_UUID_LEN];
		uuid_for(a, seed, false, u);
		/* A pool listed (by name) under several systems is one pool that their VIOSes
		 * share: the first listing owns it, the others join it as members. */
		struct sim_obj *shared = sim_obj_find(sim, SIM_SSP, u);
		if (shared) {
			json_t *mem = json_object_get(shared->props, "members");
			if (!mem) {
				mem = json_array();
				json_object_set_new(shared->props, "members", mem);
			}
			json_array_append_new(mem, json_string(uuid));
			continue;
		}
		json_t *pp = json_pack("{s:s, s:f, s:f}", "name", sn, "capacity_gb",
		                       jnum(a, "capacity_gb", 1024), "free_gb",
		                       jnum(a, "free_gb", jnum(a, "capacity_gb", 1024)));
		if (!sim_obj_new(sim, SIM_SSP, u, uuid, pp))
			return PVM_ENOMEM;
		json_t *t;
		size_t k;
		json_array_foreach(json_object_get(a, "tiers"), k, t)
		{
			snprintf(seed, sizeof(seed), "tier:%s:%s", u, jstr(t, "name", "SYSTEM"));
			char tu[SIM_UUID_LEN];
			uuid_for(t, seed, false, tu);
			json_t *tp =
			        json_pack("{s:s, s:b}", "name", jstr(t, "name", "SYSTEM"),
			                  "default", json_is_true(json_object_get(t, "default")));
			if (!sim_obj_new(sim, SIM_TIER, tu, u, tp))
				return PVM_ENOMEM;
		}
	}
	if (sim->mode == PVM_SIM_NOVALINK) {
		json_t *mp = json_object_get(m, "management_partition");
		char mname[64];
		snprintf(mname, sizeof(mname), "novalink_%s", jstr(m, "serial", "0000000"));
		snprintf(seed, sizeof(seed), "mgmt:%s", uuid);
		char u[SIM_UUID_LEN];
		uuid_for(mp, seed, true, u);
		json_t *pp = sim_partition_props(
		        jstr(mp, "name", mname), sim_next_partition_id(sim, uuid), "AIX/Linux",
		        "running", (int64_t)jnum(mp, "memory_mb", 4096), (int)jnum(mp, "vcpus", 2),
		        jnum(mp, "processor_units", 0.5));
		json_object_set_new(pp, "is_mgmt", json_true());
		json_object_set_new(pp, "os_version", json_string("Linux/Ubuntu 16.04"));
		if (!sim_obj_new(sim, SIM_LPAR, u, uuid, pp))
			return PVM_ENOMEM;
	}
	json_array_foreach(json_object_get(m, "partitions"), i, a)
	{
		const char *pn = jstr(a, "name", NULL);
		if (!pn || strlen(pn) > 31) {
			snprintf(err, errn, "managed system %s: partition %zu needs a name of 1-31",
			         name, i);
			return PVM_ECONFIG;
		}
		snprintf(seed, sizeof(seed), "lpar:%s:%s", uuid, pn);
		char u[SIM_UUID_LEN];
		uuid_for(a, seed, true, u);
		json_t *pp = sim_partition_props(
		        pn, sim_next_partition_id(sim, uuid), jstr(a, "type", "AIX/Linux"),
		        jstr(a, "state", "not activated"), (int64_t)jnum(a, "memory_mb", 2048),
		        (int)jnum(a, "vcpus", 1), jnum(a, "processing_units", 0));
		if (!sim_obj_new(sim, SIM_LPAR, u, uuid, pp))
			return PVM_ENOMEM;
	}
	return 0;
}

int sim_inventory_load(struct pvm_sim *sim, json_t *inv, char *err, size_t errn)
{
	json_t *systems = json_object_get(inv, "managed_systems");
	if (!json_is_array(systems) || json_array_size(systems) == 0) {
		snprintf(err, errn, "inventory: managed_systems must be a non-empty array");
		return PVM_ECONFIG;
	}
	size_t n = sim->mode == PVM_SIM_NOVALINK ? 1 : json_array_size(systems);
	for (size_t i = 0; i < n; i++) {
		int rc = load_ms(sim, json_array_get(systems, i), err, errn);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- state file ---- */

static char *state_path(struct pvm_sim *sim, const char *name)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s", sim->state_dir, name) < 0)
		return NULL;
	return p;
}

int sim_state_load(struct pvm_sim *sim)
{
	char *path = state_path(sim, "state.json");
	if (!path)
		return PVM_ENOMEM;
	char *text = NULL;
	int rc = pvm_read_file(path, 256u << 20, &text, NULL);
	if (rc) {
		free(path);
		return rc;
	}
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	free(text);
	if (!j || json_integer_value(json_object_get(j, "version")) != STATE_VERSION) {
		pvm_error("pvmsim: %s: unreadable state (%s)", path, j ? "version" : je.text);
		json_decref(j);
		free(path);
		return PVM_ECORRUPT;
	}
	const char *mode = json_string_value(json_object_get(j, "mode"));
	if (mode && strcmp(mode, sim->mode == PVM_SIM_HMC ? "hmc" : "novalink") != 0)
		pvm_warn("pvmsim: state was saved in mode %s", mode);
	json_t *a;
	size_t i;
	rc = 0;
	json_array_foreach(json_object_get(j, "objects"), i, a)
	{
		enum sim_kind k;
		const char *ks = json_string_value(json_object_get(a, "kind"));
		const char *u = json_string_value(json_object_get(a, "uuid"));
		json_t *props = json_object_get(a, "props");
		if (!ks || sim_kind_parse(ks, &k) || !u || !json_is_object(props)) {
			rc = PVM_ECORRUPT;
			break;
		}
		struct sim_obj *o =
		        sim_obj_new(sim, k, u, json_string_value(json_object_get(a, "parent")),
		                    json_incref(props));
		if (!o) {
			rc = PVM_ENOMEM;
			break;
		}
		o->gen = (uint64_t)json_integer_value(json_object_get(a, "gen"));
		o->created_ms = json_integer_value(json_object_get(a, "created"));
	}
	if (rc)
		pvm_error("pvmsim: %s: bad object %zu", path, i);
	json_decref(j);
	free(path);
	return rc;
}

char *sim_state_snapshot(struct pvm_sim *sim, uint64_t *seq)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < sim->nobjs; i++) {
		struct sim_obj *o = sim->objs[i];
		json_array_append_new(arr,
		                      json_pack("{s:s, s:s, s:s, s:I, s:I, s:O}", "kind",
		                                sim_kind_name(o->kind), "uuid", o->uuid, "parent",
		                                o->parent, "gen", (json_int_t)o->gen, "created",
		                                (json_int_t)o->created_ms, "props", o->props));
	}
	json_t *j = json_pack("{s:i, s:s, s:o}", "version", STATE_VERSION, "mode",
	                      sim->mode == PVM_SIM_HMC ? "hmc" : "novalink", "objects", arr);
	char *text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	*seq = sim->state_seq;
	return text;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int sim_state_write(struct pvm_sim *sim, const char *text, uint64_t seq)
{
	int rc = 0;
	pthread_mutex_lock(&sim->persist_lock);
	if (seq <= sim->persisted_seq)
		goto out; /* a newer snapshot is on disk already */
	char *tmp = state_path(sim, "state.json.tmp"), *dst = state_path(sim, "state.json");
	if (!tmp || !dst) {
		rc = PVM_ENOMEM;
		goto out_free;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out_free;
	}
	rc = write_all(fd, text, strlen(text));
	if (!rc && fsync(fd) != 0)
		rc = -errno;
	close(fd);
	if (!rc && rename(tmp, dst) != 0)
		rc = -errno;
	if (!rc) {
		int dfd = open(sim->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
		sim->persisted_seq = seq;
	}
	if (rc)
		pvm_error("pvmsim: writing %s: %s", dst, pvm_strerror(rc));
out_free:
	free(tmp);
	free(dst);
out:
	pthread_mutex_unlock(&sim->persist_lock);
	return rc;
}

int sim_persist(struct pvm_sim *sim)
{
	uint64_t seq;
	pthread_mutex_lock(&sim->lock);
	char *text = sim_state_snapshot(sim, &seq);
	pthread_mutex_unlock(&sim->lock);
	if (!text)
		return PVM_ENOMEM;
	int rc = sim_state_write(sim, text, seq);
	free(text);
	return rc;
}
