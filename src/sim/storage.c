/* storage.c: pvmsim's storage and network objects: volume groups (virtual disks, the media
 * repository and its optical media), the shared storage pool with tiers and logical units,
 * vSCSI mappings (POST of the VIOS, applied as a diff), client network adapters, and the
 * web File upload (contents hashed as they stream in, recorded on the target device).
 *
 * DESIGN: everything lives in the props of struct sim_obj, so persistence, ETags (the
 * object's generation) and /sim/state need nothing new: a volume group holds "vdisks" and
 * "media_repository.media"; a VIOS holds "scsi_mappings"; logical units, adapters and
 * files are objects of their own (SIM_LU under a Tier, SIM_CNA under a LogicalPartition,
 * SIM_FILE). Every handler runs under sim->lock (server.c), records events with
 * sim_event_add and fills o->object / o->outcome for the audit line.
 */
#include "sim.h"
#include "srv.h"
#include "xmlw.h"

#include "pvm/util.h"

#include <ctype.h>
#include <math.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SV "V1_2_0"

/* ---------------------------------------------------------------- helpers ---------- */

/* Sizes in GB as the HMC prints them: "1051.1", "1", "0.0977". */
static void fmt_gb(char *t, size_t n, double v)
{
	snprintf(t, n, "%.4f", v);
	char *dot = strchr(t, '.');
	if (!dot)
		return;
	char *e = t + strlen(t);
	while (e > dot + 1 && e[-1] == '0')
		*--e = '\0';
	if (e == dot + 1)
		*dot = '\0';
}

static void elg(struct pvm_buf *b, int n, const char *name, const char *attrs, double v)
{
	char t[48];
	fmt_gb(t, sizeof(t), v);
	el(b, n, name, attrs, t);
}

static double round6(double v)
{
	return round(v * 1e6) / 1e6;
}

/* Last path component of an href (no query), into out. */
static const char *href_tail(const char *href, char *out, size_t n)
{
	out[0] = '\0';
	if (!href)
		return out;
	size_t l = strcspn(href, "?#");
	const char *s = href + l;
	while (s > href && s[-1] != '/')
		s--;
	size_t k = (size_t)(href + l - s);
	if (k >= n)
		k = n - 1;
	memcpy(out, s, k);
	out[k] = '\0';
	return out;
}

/* The href of an element (attribute) or of its <link> child. Caller frees. */
static char *node_href(xmlNode *n)
{
	if (!n)
		return NULL;
	xmlChar *h = xmlGetProp(n, (const xmlChar *)"href");
	if (!h) {
		xmlNode *l = srv_xchild(n, "link");
		h = l ? xmlGetProp(l, (const xmlChar *)"href") : NULL;
	}
	if (!h)
		return NULL;
	char *r = strdup((const char *)h);
	xmlFree(h);
	return r;
}

static bool is_true(const char *v)
{
	return v && (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static json_t *arr_of(json_t *obj, const char *key)
{
	json_t *a = json_object_get(obj, key);
	if (!json_is_array(a)) {
		a = json_array();
		json_object_set_new(obj, key, a);
	}
	return a;
}

static const char *js(json_t *o, const char *k, const char *d)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : d;
}

static double jnum(json_t *o, const char *k, double d)
{
	json_t *v = json_object_get(o, k);
	return json_is_number(v) ? json_number_value(v) : d;
}

static void event_for(struct pvm_sim *sim, const char *type, const struct sim_obj *o)
{
	char uri[200];
	sim_obj_uri(o, uri, sizeof(uri));
	sim_event_add(sim, type, uri, "Other");
}

static void answer_entry(struct pvm_sim *sim, struct route *rt, struct out *o, struct sim_obj *obj,
                         const char *rel)
{
	const char *saved = rt->rel;
	rt->rel = rel;
	srv_get_entry(sim, rt, o, obj);
	rt->rel = saved;
}

static bool stale(struct route *rt, struct out *o, const struct sim_obj *obj)
{
	const char *im = srv_if_match(rt);
	if (im && !srv_etag_matches(obj, im, rt->groups)) {
		srv_out_error(o, 412, rt->path, "Precondition Failed",
		              "The object has changed since it was read (ETag mismatch).");
		return true;
	}
	return false;
}

static void location(const struct sim_obj *ms, long long id, long long slot, char *out, size_t n)
{
	snprintf(out, n, "U%s.%s.%s-V%lld-C%lld", ms ? sim_str(ms, "machine_type", "8408") : "8408",
	         ms ? sim_str(ms, "model", "E8E") : "E8E", ms ? sim_str(ms, "serial", "0") : "0",
	         id, slot);
}

/* ---------------------------------------------------------------- lookups ---------- */

static const char *vg_serial(const struct sim_obj *vg, char *buf, size_t n)
{
	const char *s = sim_str(vg, "serial", NULL);
	if (s)
		return s;
	snprintf(buf, n, "00f8d6de0000%016llx", (unsigned long long)sim_hash_str(41, vg->uuid));
	return buf;
}

static json_t *vg_repo(const struct sim_obj *vg)
{
	json_t *r = json_object_get(vg->props, "media_repository");
	return json_is_object(r) ? r : NULL;
}

/* A virtual disk of a VIOS's volume groups by name or UDID. */
static json_t *find_vdisk(struct pvm_sim *sim, const char *vios, const char *name, const char *udid,
                          struct sim_obj **vg_out)
{
	for (size_t i = 0; i < sim->nobjs; i++) {
		struct sim_obj *vg = sim->objs[i];
		if (vg->kind != SIM_VG || (vios && strcasecmp(vg->parent, vios) != 0))
			continue;
		json_t *d;
		size_t k;
		json_array_foreach(json_object_get(vg->props, "vdisks"), k, d)
		{
			if ((name && strcmp(js(d, "name", ""), name) == 0) ||
			    (udid && strcmp(js(d, "udid", ""), udid) == 0)) {
				if (vg_out)
					*vg_out = vg;
				return d;
			}
		}
	}
	return NULL;
}

static json_t *find_media(struct pvm_sim *sim, const char *vios, const char *name, const char *udid,
                          struct sim_obj **vg_out)
{
	for (size_t i = 0; i < sim->nobjs; i++) {
		struct sim_obj *vg = sim->objs[i];
		json_t *r;
		if (vg->kind != SIM_VG || (vios && strcasecmp(vg->parent, vios) != 0) ||
		    !(r = vg_repo(vg)))
			continue;
		json_t *m;
		size_t k;
		json_array_foreach(json_object_get(r, "media"), k, m)
		{
			if ((name && strcmp(js(m, "name", ""), name) == 0) ||
			    (udid && strcmp(js(m, "udid", ""), udid) == 0)) {
				if (vg_out)
					*vg_out = vg;
				return m;
			}
		}
	}
	return NULL;
}

static struct sim_obj *find_pv(struct pvm_sim *sim, const char *vios, const char *name,
                               const char *udid)
{
	for (size_t i = 0; i < sim->nobjs; i++) {
		struct sim_obj *pv = sim->objs[i];
		if (pv->kind != SIM_PV || strcasecmp(pv->parent, vios) != 0)
			continue;
		if ((udid && *udid && strcmp(sim_str(pv, "udid", ""), udid) == 0) ||
		    (name && strcmp(sim_str(pv, "name", ""), name) == 0))
			return pv;
	}
	return NULL;
}

/* The SSP a tier or LU belongs to. */
static struct sim_obj *lu_ssp(struct pvm_sim *sim, const struct sim_obj *lu)
{
	struct sim_obj *t = sim_obj_find(sim, SIM_TIER, lu->parent);
	return t ? sim_obj_find(sim, SIM_SSP, t->parent) : NULL;
}

/* Is the pool one of system ms's: its owner, or a member sharing it (the same pool name
 * listed under several systems of the inventory)? */
static bool ssp_visible(const struct sim_obj *ssp, const char *ms)
{
	if (strcasecmp(ssp->parent, ms) == 0)
		return true;
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(ssp->props, "members"), i, m)
	{
		if (json_is_string(m) && strcasecmp(json_string_value(m), ms) == 0)
			return true;
	}
	return false;
}

/* A logical unit in the pools of a system (ms NULL: any) by UDID, else by name. */
static struct sim_obj *find_lu(struct pvm_sim *sim, const char *ms, const char *name,
                               const char *udid)
{
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < sim->nobjs; i++) {
			struct sim_obj *lu = sim->objs[i];
			if (lu->kind != SIM_LU)
				continue;
			struct sim_obj *ssp = lu_ssp(sim, lu);
			if (ms && (!ssp || !ssp_visible(ssp, ms)))
				continue;
			if (pass == 0 && udid && *udid &&
			    strcmp(sim_str(lu, "udid", ""), udid) == 0)
				return lu;
			if (pass == 1 && !(udid && *udid) && name &&
			    strcmp(sim_str(lu, "name", ""), name) == 0)
				return lu;
		}
	return NULL;
}

/* Is this storage mapped? kind "vdisk"/"pv"/"lu"/"vopt"; vios: a VIOS UUID, or a system
 * UUID (its VIOSes), or NULL (any VIOS). Matched by UDID when both have one, else name. */
static bool storage_mapped(struct pvm_sim *sim, const char *vios, const char *kind,
                           const char *name, const char *udid)
{
	for (size_t i = 0; i < sim->nobjs; i++) {
		struct sim_obj *v = sim->objs[i];
		if (v->kind != SIM_VIOS ||
		    (vios && strcasecmp(v->parent, vios) != 0 && strcasecmp(v->uuid, vios) != 0))
			continue;
		json_t *m;
		size_t k;
		json_array_foreach(json_object_get(v->props, "scsi_mappings"), k, m)
		{
			json_t *st = json_object_get(m, "storage");
			if (!json_is_object(st) || strcmp(js(st, "kind", ""), kind) != 0)
				continue;
			if (udid && *udid && *js(st, "udid", "")) {
				if (strcmp(js(st, "udid", ""), udid) == 0)
					return true;
			} else if (name && strcmp(js(st, "name", ""), name) == 0) {
				return true;
			}
		}
	}
	return false;
}

/* ---------------------------------------------------------------- slots ------------ */

static bool lpar_slot_used(struct pvm_sim *sim, const struct sim_obj *lpar, long long slot,
                           json_t *pending)
{
	if (slot < 2)
		return true;
	for (size_t i = 0; i < sim->nobjs; i++) {
		struct sim_obj *x = sim->objs[i];
		if (x->kind == SIM_CNA && strcasecmp(x->parent, lpar->uuid) == 0 &&
		    sim_int(x, "slot", -1) == slot)
			return true;
		if (x->kind != SIM_VIOS)
			continue;
		json_t *m;
		size_t k;
		json_array_foreach(json_object_get(x->props, "scsi_mappings"), k, m)
		{
			if (strcasecmp(js(m, "lpar", ""), lpar->uuid) == 0 &&
			    !json_is_true(json_object_get(m, "orphan")) &&
			    (long long)jnum(m, "client_slot", -1) == slot)
				return true;
		}
	}
	json_t *m;
	size_t k;
	json_array_foreach(pending, k, m)
	{
		if (strcasecmp(js(m, "lpar", ""), lpar->uuid) == 0 &&
		    (long long)jnum(m, "client_slot", -1) == slot)
			return true;
	}
	return false;
}

static long long lpar_slot_alloc(struct pvm_sim *sim, const struct sim_obj *lpar, json_t *pending)
{
	long long max = sim_int(lpar, "max_slots", 64);
	for (long long s = 2; s < max; s++)
		if (!lpar_slot_used(sim, lpar, s, pending))
			return s;
	return -1;
}

/* ---------------------------------------------------------------- rendering -------- */

static void render_media_list(struct pvm_buf *b, int n, json_t *repo)
{
	json_t *media = json_object_get(repo, "media");
	if (!json_array_size(media)) {
		empty_block(b, n, "OpticalMedia", CUD, SV);
		return;
	}
	open_el(b, n, "OpticalMedia", CUD, SV);
	json_t *m;
	size_t k;
	json_array_foreach(media, k, m)
	{
		open_el(b, n + 1, "VirtualOpticalMedia", "", SV);
		el(b, n + 2, "MediaName", CUR, js(m, "name", ""));
		el(b, n + 2, "MediaUDID", ROR, js(m, "udid", ""));
		el(b, n + 2, "MountType", CUD, js(m, "mount_type", "rw"));
		elg(b, n + 2, "Size", CUR, jnum(m, "size_gb", 0));
		close_el(b, n + 1, "VirtualOpticalMedia");
	}
	close_el(b, n, "OpticalMedia");
}

static void render_repo(struct pvm_buf *b, int n, json_t *repo)
{
	open_el(b, n, "VirtualMediaRepository", "", SV);
	render_media_list(b, n + 1, repo);
	el(b, n + 1, "RepositoryName", CUR, js(repo, "name", "VMLibrary"));
	eli(b, n + 1, "RepositorySize", CUR, (long long)ceil(jnum(repo, "size_gb", 0)));
	close_el(b, n, "VirtualMediaRepository");
}

void sim_render_vios_media(struct pvm_sim *sim, struct pvm_buf *b, const struct sim_render_ctx *c,
                           const struct sim_obj *vios)
{
	(void)c;
	open_el(b, 1, "MediaRepositories", "group=\"ViosStorage\" " CUD, SV);
	for (size_t i = 0; i < sim->nobjs; i++) {
		const struct sim_obj *vg = sim->objs[i];
		json_t *r;
		if (vg->kind == SIM_VG && strcasecmp(vg->parent, vios->uuid) == 0 &&
		    (r = vg_repo(vg)))
			render_repo(b, 2, r);
	}
	close_el(b, 1, "MediaRepositories");
}

static void render_pv_body(struct pvm_buf *b, int n, const struct sim_obj *pv)
{
	bool fc = sim_bool(pv, "fc_backed", false);
	el(b, n, "Description", CUD, fc ? "MPIO IBM 2076 FC Disk" : "SAS RAID 0 Disk Array");
	el(b, n, "UniqueDeviceID", ROR, sim_str(pv, "udid", ""));
	eli(b, n, "VolumeCapacity", CUR, sim_int(pv, "capacity_mb", 0));
	el(b, n, "VolumeName", CUR, sim_str(pv, "name", ""));
	el(b, n, "VolumeState", ROR, "active");
	elb(b, n, "IsFibreChannelBacked", ROR, fc);
}

static void render_vg(struct pvm_sim *sim, struct pvm_buf *b, const struct sim_render_ctx *c,
                      const struct sim_obj *o)
{
	obj_open(b, "VolumeGroup", SIM_NS_UOM, SV);
	obj_meta(b, o);
	double free_gb = sim_real(o, "free_gb", 0);
	char ser[48];
	const char *serial = vg_serial(o, ser, sizeof(ser));
	elg(b, 1, "AvailableSize", ROR, free_gb);
	elg(b, 1, "FreeSpace", ROR, free_gb);
	elg(b, 1, "GroupCapacity", CUR, sim_real(o, "capacity_gb", 0));
	el(b, 1, "GroupName", CUR, sim_str(o, "name", ""));
	el(b, 1, "GroupSerialID", ROR, serial);
	eli(b, 1, "MaximumLogicalVolumes", ROR, 1024);
	json_t *repo = vg_repo(o);
	if (repo) {
		open_el(b, 1, "MediaRepositories", CUD, SV);
		render_repo(b, 2, repo);
		close_el(b, 1, "MediaRepositories");
	} else {
		empty_block(b, 1, "MediaRepositories", CUD, SV);
	}
	/* The VIOS's physical volumes that are not FC backed hold its volume groups. */
	bool any = false;
	for (size_t i = 0; i < sim->nobjs; i++) {
		const struct sim_obj *pv = sim->objs[i];
		if (pv->kind != SIM_PV || strcasecmp(pv->parent, o->parent) != 0 ||
		    sim_bool(pv, "fc_backed", false))
			continue;
		if (!any)
			open_el(b, 1, "PhysicalVolumes", CUD, SV);
		any = true;
		open_el(b, 2, "PhysicalVolume", "", SV);
		render_pv_body(b, 3, pv);
		close_el(b, 2, "PhysicalVolume");
		break; /* the first one: the group's disk */
	}
	if (any)
		close_el(b, 1, "PhysicalVolumes");
	else
		empty_block(b, 1, "PhysicalVolumes", CUD, SV);
	char t[80];
	snprintf(t, sizeof(t), "04%s", serial);
	el(b, 1, "UniqueDeviceID", ROR, t);
	json_t *disks = json_object_get(o->props, "vdisks");
	if (!json_array_size(disks)) {
		empty_block(b, 1, "VirtualDisks", CUD, SV);
	} else {
		open_el(b, 1, "VirtualDisks", CUD, SV);
		char path[200];
		snprintf(path, sizeof(path), "VirtualIOServer/%s/VolumeGroup/%s", o->parent,
		         o->uuid);
		json_t *d;
		size_t k;
		json_array_foreach(disks, k, d)
		{
			open_el(b, 2, "VirtualDisk", "", SV);
			elg(b, 3, "DiskCapacity", CUR, jnum(d, "capacity_gb", 0));
			el(b, 3, "DiskLabel", CUR, js(d, "label", "None"));
			el(b, 3, "DiskName", CUR, js(d, "name", ""));
			link_el(b, 3, "VolumeGroup", ROR, c->base, path);
			el(b, 3, "UniqueDeviceID", ROR, js(d, "udid", ""));
			close_el(b, 2, "VirtualDisk");
		}
		close_el(b, 1, "VirtualDisks");
	}
	pvm_buf_add(b, "</VolumeGroup:VolumeGroup>\n");
}

static bool lu_in_use(struct pvm_sim *sim, const struct sim_obj *lu)
{
	return storage_mapped(sim, NULL, "lu", sim_str(lu, "name", ""), sim_str(lu, "udid", ""));
}

static void render_lu_body(struct pvm_sim *sim, struct pvm_buf *b, int n, const struct sim_obj *lu)
{
	elb(b, n, "ThinDevice", CUR, sim_bool(lu, "thin", true));
	el(b, n, "UniqueDeviceID", ROR, sim_str(lu, "udid", ""));
	elg(b, n, "UnitCapacity", "kb=\"COR\" kxe=\"false\"", sim_real(lu, "capacity_gb", 0));
	el(b, n, "LogicalUnitType", COD, sim_str(lu, "type", "VirtualIO_Disk"));
	const char *cf = sim_str(lu, "cloned_from", NULL);
	if (cf && *cf)
		el(b, n, "ClonedFrom", COD, cf);
	elb(b, n, "InUse", ROR, lu_in_use(sim, lu));
	el(b, n, "UnitName", CUR, sim_str(lu, "name", ""));
}

/* GB a logical unit takes from its pool: thick ones their size, thin ones what was
 * written into them (an upload), linked clones nothing until written. */
static double lu_used_gb(const struct sim_obj *lu)
{
	const char *cf = sim_str(lu, "cloned_from", NULL);
	if (cf && *cf)
		return 0;
	if (!sim_bool(lu, "thin", true))
		return sim_real(lu, "capacity_gb", 0);
	json_t *ct = json_object_get(lu->props, "contents");
	return ct ? jnum(ct, "size", 0) / 1073741824.0 : 0;
}

static void ssp_sizes(struct pvm_sim *sim, const struct sim_obj *ssp, double *free_gb,
                      double *total_lu, double *overcommit)
{
	double used = 0, tot = 0;
	for (size_t i = 0; i < sim->nobjs; i++) {
		const struct sim_obj *lu = sim->objs[i];
		if (lu->kind != SIM_LU)
			continue;
		struct sim_obj *t = sim_obj_find(sim, SIM_TIER, lu->parent);
		if (!t || strcasecmp(t->parent, ssp->uuid) != 0)
			continue;
		used += lu_used_gb(lu);
		tot += sim_real(lu, "capacity_gb", 0);
	}
	double base = sim_real(ssp, "free_gb", 0);
	*free_gb = round6(base - used);
	*total_lu = round6(tot);
	double oc = tot - base;
	*overcommit = oc > 0 ? round6(oc) : 0;
}

static void ssp_udid(const struct sim_obj *ssp, char *out, size_t n)
{
	snprintf(out, n, "24cfc907d2abf511e4b2d540f2e95daf3%016llx%016llx",
	         (unsigned long long)sim_hash_str(1, ssp->uuid),
	         (unsigned long long)sim_hash_str(2, ssp->uuid));
}

static void render_ssp(struct pvm_sim *sim, struct pvm_buf *b, const struct sim_render_ctx *c,
                       const struct sim_obj *o)
{
	(void)c;
	obj_open(b, "SharedStoragePool", SIM_NS_UOM, SV);
	obj_meta(b, o);
	bool any = false;
	for (size_t i = 0; i < sim->nobjs; i++) {
		const struct sim_obj *lu = sim->objs[i];
		if (lu->kind != SIM_LU)
			continue;
		struct sim_obj *t = sim_obj_find(sim, SIM_TIER, lu->parent);
		if (!t || strcasecmp(t->parent, o->uuid) != 0)
			continue;
		if (!any)
			open_el(b, 1, "LogicalUnits", CUD, SV);
		any = true;
		open_el(b, 2, "LogicalUnit", "", SV);
		render_lu_body(sim, b, 3, lu);
		close_el(b, 2, "LogicalUnit");
	}
	if (any)
		close_el(b, 1, "LogicalUnits");
	else
		empty_block(b, 1, "LogicalUnits", CUD, SV);
	el(b, 1, "MultiDataTierConfigured", CUD, "false");
	el(b, 1, "MultiFailureGroupConfigured", CUD, "false");
	empty_block(b, 1, "PhysicalVolumes", CUR, SV);
	double fr, tot, oc;
	ssp_sizes(sim, o, &fr, &tot, &oc);
	elg(b, 1, "Capacity", CUR, sim_real(o, "capacity_gb", 0));
	elg(b, 1, "FreeSpace", CUR, fr);
	elg(b, 1, "OverCommitSpace", CUR, oc);
	elg(b, 1, "TotalLogicalUnitSize", CUR, tot);
	el(b, 1, "AlertThreshold", CUD, "35%");
	el(b, 1, "StoragePoolName", CUR, sim_str(o, "name", ""));
	char u[96];
	ssp_udid(o, u, sizeof(u));
	el(b, 1, "UniqueDeviceID", ROR, u);
	pvm_buf_add(b, "</SharedStoragePool:SharedStoragePool>\n");
}

static void render_tier(struct pvm_sim *sim, struct pvm_buf *b, const struct sim_render_ctx *c,
                        const struct sim_obj *o)
{
	const char *k = "ksv=\"V1_3_0\" ";
	char a[96];
	obj_open(b, "Tier", SIM_NS_UOM, "V1_3_0");
	obj_meta(b, o);
	snprintf(a, sizeof(a), "%s" CUR, k);
	el(b, 1, "Name", a, sim_str(o, "name", "SYSTEM"));
	char u[96];
	snprintf(u, sizeof(u), "256c097502d44311e580040000%016llx%08llx",
	         (unsigned long long)sim_hash_str(3, o->uuid),
	         (unsigned long long)(sim_hash_str(4, o->uuid) & 0xffffffffULL));
	snprintf(a, sizeof(a), "%s" ROR, k);
	el(b, 1, "UniqueDeviceID", a, u);
	snprintf(a, sizeof(a), "%s" CUD, k);
	el(b, 1, "Type", a, "UnrestrictedSystemTier");
	elb(b, 1, "IsDefault", a, sim_bool(o, "default", false));
	struct sim_obj *ssp = sim_obj_find(sim, SIM_SSP, o->parent);
	snprintf(a, sizeof(a), "%s" ROR, k);
	elg(b, 1, "Capacity", a, ssp ? sim_real(ssp, "capacity_gb", 0) : 0);
	el(b, 1, "MirrorState", a, "NotMirrored");
	char path[128];
	snprintf(path, sizeof(path), "SharedStoragePool/%s", o->parent);
	snprintf(a, sizeof(a), "%s" CUD, k);
	link_el(b, 1, "AssociatedSharedStoragePool", a, c->base, path);
	pvm_buf_add(b, "</Tier:Tier>\n");
}

static void render_lu(struct pvm_sim *sim, struct pvm_buf *b, const struct sim_obj *o)
{
	obj_open(b, "LogicalUnit", SIM_NS_UOM, "V1_3_0");
	obj_meta(b, o);
	render_lu_body(sim, b, 1, o);
	pvm_buf_add(b, "</LogicalUnit:LogicalUnit>\n");
}

static void render_cna(struct pvm_sim *sim, struct pvm_buf *b, const struct sim_render_ctx *c,
                       const struct sim_obj *o)
{
	struct sim_obj *lpar = sim_obj_find(sim, SIM_LPAR, o->parent);
	struct sim_obj *ms = lpar ? sim_obj_find(sim, SIM_MS, lpar->parent) : NULL;
	long long id = lpar ? sim_int(lpar, "id", 0) : 0, slot = sim_int(o, "slot", 0);
	char loc[96];
	location(ms, id, slot, loc, sizeof(loc));
	obj_open(b, "ClientNetworkAdapter", SIM_NS_UOM, "V1_1_0");
	obj_meta(b, o);
	el(b, 1, "DynamicReconfigurationConnectorName", CUD, loc);
	el(b, 1, "LocationCode", ROR, loc);
	eli(b, 1, "LocalPartitionID", CUR, id);
	el(b, 1, "RequiredAdapter", CUD, "false");
	el(b, 1, "VariedOn", "kb=\"CUD\" kxe=\"true\"", "true");
	eli(b, 1, "VirtualSlotNumber", COD, slot);
	elb(b, 1, "Enabled", "ksv=\"V1_3_0\" " UOD, sim_bool(o, "enabled", true));
	el(b, 1, "AllowedOperatingSystemMACAddresses", CUD, "ALL");
	el(b, 1, "MACAddress", CUR, sim_str(o, "mac", ""));
	eli(b, 1, "PortVLANID", CUR, sim_int(o, "pvid", 1));
	eli(b, 1, "QualityOfServicePriority", CUD, 0);
	el(b, 1, "QualityOfServicePriorityEnabled", CUD, "false");
	const char *tv = sim_str(o, "tagged_vlans", "");
	if (*tv)
		el(b, 1, "TaggedVLANIDs", CUA, tv);
	elb(b, 1, "TaggedVLANSupported", CUA, sim_bool(o, "tagged_supported", false));
	struct sim_obj *vs = sim_obj_find(sim, SIM_VSWITCH, sim_str(o, "vswitch", ""));
	pvm_buf_add(b, "    <AssociatedVirtualSwitch " CUD ">\n");
	ind(b, 2);
	pvm_buf_printf(b,
	               "<link href=\"%s/rest/api/uom/ManagedSystem/%s/VirtualSwitch/%s\" "
	               "rel=\"related\"/>\n",
	               c->base, vs ? vs->parent : "", sim_str(o, "vswitch", ""));
	pvm_buf_add(b, "    </AssociatedVirtualSwitch>\n");
	eli(b, 1, "VirtualSwitchID", ROR, vs ? sim_int(vs, "switch_id", 0) : 0);
	el(b, 1, "VirtualNetworks", CUR, NULL);
	pvm_buf_add(b, "</ClientNetworkAdapter:ClientNetworkAdapter>\n");
}

void sim_render_storage(struct pvm_sim *sim, struct pvm_buf *b, const struct sim_render_ctx *c,
                        const struct sim_obj *o)
{
	switch (o->kind) {
	case SIM_VG:
		render_vg(sim, b, c, o);
		break;
	case SIM_SSP:
		render_ssp(sim, b, c, o);
		break;
	case SIM_TIER:
		render_tier(sim, b, c, o);
		break;
	case SIM_LU:
		render_lu(sim, b, o);
		break;
	case SIM_CNA:
		render_cna(sim, b, c, o);
		break;
	default:
		break;
	}
}

void sim_render_lpar_cnas(struct pvm_sim *sim, struct pvm_buf *b, const struct sim_render_ctx *c,
                          const struct sim_obj *lpar)
{
	bool any = false;
	for (size_t i = 0; i < sim->nobjs; i++) {
		const struct sim_obj *x = sim->objs[i];
		if (x->kind != SIM_CNA || strcasecmp(x->parent, lpar->uuid) != 0)
			continue;
		if (!any)
			pvm_buf_add(b, "    <ClientNetworkAdapters " CUR ">\n");
		any = true;
		ind(b, 2);
		pvm_buf_printf(
		        b,
		        "<link "
		        "href=\"%s/rest/api/uom/LogicalPartition/%s/ClientNetworkAdapter/%s\" "
		        "rel=\"related\"/>\n",
		        c->base, lpar->uuid, x->uuid);
	}
	if (any)
		pvm_buf_add(b, "    </ClientNetworkAdapters>\n");
	else
		el(b, 1, "ClientNetworkAdapters", CUR, NULL);
}

static const char *const kinds[] = {"vdisk", "pv", "lu", "vopt"};
static const char *const storage_el[] = {"VirtualDisk", "PhysicalVolume", "LogicalUnit",
                                         "VirtualOpticalMedia"};
static const char *const storage_name_el[] = {"DiskName", "VolumeName", "UnitName", "MediaName"};
static const char *const target_el[] = {
        "LogicalVolumeVirtualTargetDevice", "PhysicalVolumeVirtualTargetDevice",
        "SharedStoragePoolLogicalUnitVirtualTargetDevice", "VirtualOpticalTargetDevice"};

static int kind_index(const char *k)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(kinds[i], k) == 0)
			return i;
	return -1;
}

static void render_mapping(struct pvm_sim *sim, struct pvm_buf *b, const struct sim_render_ctx *c,
                           const struct sim_obj *vios, json_t *m)
{
	struct sim_obj *ms = sim_obj_find(sim, SIM_MS, vios->parent);
	const char *lu = js(m, "lpar", "");
	long long vid = sim_int(vios, "id", 0), lid = (long long)jnum(m, "client_id", 0);
	long long cs = (long long)jnum(m, "client_slot", 0),
	          ss = (long long)jnum(m, "server_slot", 0);
	bool orphan = json_is_true(json_object_get(m, "orphan"));
	char loc[96], path[200], name[32];
	open_el(b, 2, "VirtualSCSIMapping", "", SV);
	ind(b, 3);
	pvm_buf_printf(b,
	               "<AssociatedLogicalPartition " CUR
	               " href=\"%s/rest/api/uom/ManagedSystem/%s/LogicalPartition/%s\" "
	               "rel=\"related\"/>\n",
	               c->base, vios->parent, lu);
	if (!orphan) {
		open_el(b, 3, "ClientAdapter", CUR, SV);
		location(ms, lid, cs, loc, sizeof(loc));
		el(b, 4, "AdapterType", ROR, "Client");
		el(b, 4, "DynamicReconfigurationConnectorName", CUD, loc);
		el(b, 4, "LocationCode", ROR, loc);
		eli(b, 4, "LocalPartitionID", CUR, lid);
		el(b, 4, "RequiredAdapter", CUD, "false");
		el(b, 4, "VariedOn", CUD, "true");
		el(b, 4, "UseNextAvailableSlotID", CUD, "false");
		eli(b, 4, "VirtualSlotNumber", COD, cs);
		eli(b, 4, "RemoteLogicalPartitionID", CUR, vid);
		eli(b, 4, "RemoteSlotNumber", CUA, ss);
		close_el(b, 3, "ClientAdapter");
	}
	json_t *st = json_object_get(m, "storage");
	int ki = json_is_object(st) ? kind_index(js(st, "kind", "")) : -1;
	open_el(b, 3, "ServerAdapter", CUR, SV);
	location(ms, vid, ss, loc, sizeof(loc));
	el(b, 4, "AdapterType", ROR, "Server");
	el(b, 4, "DynamicReconfigurationConnectorName", CUD, loc);
	el(b, 4, "LocationCode", ROR, loc);
	eli(b, 4, "LocalPartitionID", CUR, vid);
	el(b, 4, "RequiredAdapter", CUD, "false");
	el(b, 4, "VariedOn", CUD, "true");
	el(b, 4, "UseNextAvailableSlotID", CUD, "false");
	eli(b, 4, "VirtualSlotNumber", COD, ss);
	snprintf(name, sizeof(name), "vhost%lld", (long long)jnum(m, "vhost", 0));
	el(b, 4, "AdapterName", CUR, name);
	if (ki >= 0)
		el(b, 4, "BackingDeviceName", CUR, js(st, "name", ""));
	eli(b, 4, "RemoteLogicalPartitionID", CUR, lid);
	eli(b, 4, "RemoteSlotNumber", CUA, orphan ? 0 : cs);
	snprintf(path, sizeof(path), "1e%s", loc);
	el(b, 4, "UniqueDeviceID", ROR, path);
	close_el(b, 3, "ServerAdapter");
	if (ki >= 0) {
		const char *sn = js(st, "name", ""), *su = js(st, "udid", "");
		pvm_buf_add(b, "            <Storage " CUR ">\n");
		open_el(b, 4, storage_el[ki], "", SV);
		if (ki == 0) {
			json_t *d = find_vdisk(sim, vios->uuid, sn, NULL, NULL);
			elg(b, 5, "DiskCapacity", CUR, d ? jnum(d, "capacity_gb", 0) : 0);
			el(b, 5, "DiskLabel", CUR, d ? js(d, "label", "None") : "None");
			el(b, 5, "DiskName", CUR, sn);
			el(b, 5, "UniqueDeviceID", ROR, d ? js(d, "udid", su) : su);
		} else if (ki == 1) {
			struct sim_obj *pv = find_pv(sim, vios->uuid, sn, su);
			if (pv) {
				render_pv_body(b, 5, pv);
			} else {
				el(b, 5, "UniqueDeviceID", ROR, su);
				el(b, 5, "VolumeName", CUR, sn);
			}
		} else if (ki == 2) {
			struct sim_obj *l = find_lu(sim, vios->parent, sn, su);
			if (l) {
				render_lu_body(sim, b, 5, l);
			} else {
				el(b, 5, "UniqueDeviceID", ROR, su);
				el(b, 5, "UnitName", CUR, sn);
			}
		} else {
			json_t *md = find_media(sim, vios->uuid, sn, NULL, NULL);
			el(b, 5, "MediaName", CUR, sn);
			el(b, 5, "MediaUDID", ROR, md ? js(md, "udid", su) : su);
			el(b, 5, "MountType", CUD, md ? js(md, "mount_type", "rw") : "rw");
			elg(b, 5, "Size", CUR, md ? jnum(md, "size_gb", 0) : 0);
		}
		close_el(b, 4, storage_el[ki]);
		pvm_buf_add(b, "            </Storage>\n");
		pvm_buf_add(b, "            <TargetDevice " CUR ">\n");
		open_el(b, 4, target_el[ki], "", SV);
		char lua[32];
		snprintf(lua, sizeof(lua), "0x8%lld00000000000000", (long long)jnum(m, "lun", 1));
		el(b, 5, "LogicalUnitAddress", CUR, lua);
		el(b, 5, "TargetName", CUR, js(m, "target", ""));
		snprintf(path, sizeof(path), "09%016llx",
		         (unsigned long long)sim_hash_str(ss, js(m, "target", "")));
		el(b, 5, "UniqueDeviceID", ROR, path);
		close_el(b, 4, target_el[ki]);
		pvm_buf_add(b, "            </TargetDevice>\n");
	}
	close_el(b, 2, "VirtualSCSIMapping");
}

void sim_render_vios_scsi(struct pvm_sim *sim, struct pvm_buf *b, const struct sim_render_ctx *c,
                          const struct sim_obj *vios)
{
	json_t *maps = json_object_get(vios->props, "scsi_mappings");
	if (!json_array_size(maps)) {
		empty_block(b, 1, "VirtualSCSIMappings", "group=\"ViosSCSIMapping\" " CUD, SV);
		return;
	}
	open_el(b, 1, "VirtualSCSIMappings", "group=\"ViosSCSIMapping\" " CUD, SV);
	json_t *m;
	size_t k;
	json_array_foreach(maps, k, m) render_mapping(sim, b, c, vios, m);
	close_el(b, 1, "VirtualSCSIMappings");
}

/* ---------------------------------------------------------------- volume groups ---- */

struct item {
	char *name;
	double size;
	char *label;
	char *mount;
	json_t *keep; /* the existing entry it matches, or NULL: new */
};

static void items_free(struct item *it, size_t n)
{
	if (!it)
		return;
	for (size_t i = 0; i < n; i++) {
		free(it[i].name);
		free(it[i].label);
		free(it[i].mount);
	}
	free(it);
}

/* Reads the children named elname of parent (VirtualDisk / VirtualOpticalMedia). Returns
 * NULL with why set on a bad entry; *n items. */
static struct item *read_items(xmlNode *parent, bool disks, size_t *n, char *why, size_t whyn)
{
	*n = 0;
	const char *elname = disks ? "VirtualDisk" : "VirtualOpticalMedia";
	size_t cap = 0;
	for (xmlNode *c = parent->children; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, elname) == 0)
			cap++;
	struct item *it = calloc(cap + 1, sizeof(*it));
	if (!it) {
		snprintf(why, whyn, "out of memory");
		return NULL;
	}
	for (xmlNode *c = parent->children; c; c = c->next) {
		if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, elname) != 0)
			continue;
		struct item *x = &it[(*n)++];
		x->name = srv_xtext(c, disks ? "DiskName" : "MediaName");
		size_t maxlen = disks ? 15 : 37;
		if (!x->name || !*x->name || strlen(x->name) > maxlen) {
			snprintf(why, whyn, "%s: %s of 1 to %zu characters required (%.40s)",
			         elname, disks ? "DiskName" : "MediaName", maxlen,
			         x->name ? x->name : "");
			items_free(it, *n);
			*n = 0;
			return NULL;
		}
		char *v = srv_xtext(c, disks ? "DiskCapacity" : "Size");
		double d = 0;
		if (v && *v && (!srv_parse_dbl(v, &d) || d < 0 || (disks && d <= 0))) {
			snprintf(why, whyn, "%s %s: bad %s '%.30s'", elname, x->name,
			         disks ? "DiskCapacity" : "Size", v);
			free(v);
			items_free(it, *n);
			*n = 0;
			return NULL;
		}
		if (disks && !v) {
			snprintf(why, whyn, "VirtualDisk %s: DiskCapacity required", x->name);
			items_free(it, *n);
			*n = 0;
			return NULL;
		}
		free(v);
		x->size = d;
		x->label = srv_xtext(c, "DiskLabel");
		x->mount = srv_xtext(c, "MountType");
		for (size_t j = 0; j + 1 < *n; j++)
			if (strcmp(it[j].name, x->name) == 0) {
				snprintf(why, whyn, "%s %s: named twice", elname, x->name);
				items_free(it, *n);
				*n = 0;
				return NULL;
			}
	}
	return it;
}

static void update_vg(struct pvm_sim *sim, struct route *rt, struct out *o, struct sim_obj *vg)
{
	snprintf(o->object, sizeof(o->object), "%s", vg->uuid);
	if (stale(rt, o, vg))
		return;
	xmlDoc *doc;
	xmlNode *root = srv_parse_body(rt->req, &doc);
	struct item *dk = NULL, *md = NULL;
	size_t ndk = 0, nmd = 0;
	char why[256] = "";
	if (!root || strcmp((const char *)root->name, "VolumeGroup") != 0) {
		srv_out_error(o, 400, rt->path, "Bad request", "The body is not a VolumeGroup.");
		goto out;
	}
	xmlNode *vds = srv_xchild(root, "VirtualDisks");
	xmlNode *om = srv_xpath(root, "MediaRepositories/VirtualMediaRepository/OpticalMedia");
	json_t *repo = vg_repo(vg);
	if ((vds && !(dk = read_items(vds, true, &ndk, why, sizeof(why)))) ||
	    (om && repo && !(md = read_items(om, false, &nmd, why, sizeof(why))))) {
		srv_out_error(o, 400, rt->path, "Bad request", why);
		goto out;
	}
	json_t *disks = arr_of(vg->props, "vdisks");
	json_t *media = repo ? arr_of(repo, "media") : NULL;
	double need = 0, freed = 0;
	int added = 0, removed = 0, resized = 0;
	/* disks: match by name; new ones need space; missing ones go unless mapped */
	json_t *d;
	size_t k;
	if (vds) {
		for (size_t i = 0; i < ndk; i++)
			json_array_foreach(disks, k,
			                   d) if (strcmp(js(d, "name", ""), dk[i].name) == 0) dk[i]
			        .keep = d;
		for (size_t i = 0; i < ndk; i++) {
			if (!dk[i].keep) {
				need += dk[i].size;
				continue;
			}
			double old = jnum(dk[i].keep, "capacity_gb", 0);
			if (dk[i].size < old - 1e-6) {
				snprintf(
				        why, sizeof(why),
				        "VirtualDisk %s: a disk cannot shrink (%.4g GB to %.4g GB)",
				        dk[i].name, old, dk[i].size);
				srv_out_error(o, 400, rt->path, "Bad request", why);
				goto out;
			}
			need += dk[i].size - old;
		}
		json_array_foreach(disks, k, d)
		{
			bool kept = false;
			for (size_t i = 0; i < ndk && !kept; i++)
				kept = dk[i].keep == d;
			if (kept)
				continue;
			if (storage_mapped(sim, vg->parent, "vdisk", js(d, "name", ""), NULL)) {
				snprintf(why, sizeof(why),
				         "HSCL2971 The virtual disk %s is in use (mapped to a "
				         "partition): remove its mapping first.",
				         js(d, "name", ""));
				srv_out_error(o, 409, rt->path, "Conflict", why);
				goto out;
			}
			freed += jnum(d, "capacity_gb", 0);
		}
		double free_gb = sim_real(vg, "free_gb", 0);
		if (need > free_gb + freed + 1e-6) {
			snprintf(why, sizeof(why),
			         "HSCL2970 Not enough free space in volume group %s: %.4g GB "
			         "needed, %.4g GB free.",
			         sim_str(vg, "name", ""), need, free_gb + freed);
			srv_out_error(o, 400, rt->path, "Bad request", why);
			goto out;
		}
	}
	double media_total = 0;
	if (md) {
		for (size_t i = 0; i < nmd; i++)
			json_array_foreach(media, k,
			                   d) if (strcmp(js(d, "name", ""), md[i].name) == 0) md[i]
			        .keep = d;
		for (size_t i = 0; i < nmd; i++)
			media_total += md[i].keep ? jnum(md[i].keep, "size_gb", 0) : md[i].size;
		json_array_foreach(media, k, d)
		{
			bool kept = false;
			for (size_t i = 0; i < nmd && !kept; i++)
				kept = md[i].keep == d;
			if (!kept &&
			    storage_mapped(sim, vg->parent, "vopt", js(d, "name", ""), NULL)) {
				snprintf(why, sizeof(why),
				         "HSCL2972 The virtual optical media %s is in use (mapped "
				         "to "
				         "a partition): remove its mapping first.",
				         js(d, "name", ""));
				srv_out_error(o, 409, rt->path, "Conflict", why);
				goto out;
			}
		}
		if (media_total > jnum(repo, "size_gb", 0) + 1e-6) {
			snprintf(why, sizeof(why),
			         "HSCL2973 Not enough space in the media repository (%.4g GB of "
			         "%.4g GB).",
			         media_total, jnum(repo, "size_gb", 0));
			srv_out_error(o, 400, rt->path, "Bad request", why);
			goto out;
		}
	}
	/* apply */
	char ser[48], udid[96];
	const char *serial = vg_serial(vg, ser, sizeof(ser));
	if (vds) {
		json_t *nd = json_array();
		for (size_t i = 0; i < ndk; i++) {
			if (dk[i].keep) {
				if (fabs(jnum(dk[i].keep, "capacity_gb", 0) - dk[i].size) > 1e-9)
					resized++;
				json_object_set_new(dk[i].keep, "capacity_gb",
				                    json_real(round6(dk[i].size)));
				json_array_append(nd, dk[i].keep);
				continue;
			}
			long long lv = sim_int(vg, "next_lv", 0) + 1;
			json_object_set_new(vg->props, "next_lv", json_integer(lv));
			snprintf(udid, sizeof(udid), "03%s.%lld", serial, lv);
			json_array_append_new(
			        nd, json_pack("{s:s, s:f, s:s, s:s}", "name", dk[i].name,
			                      "capacity_gb", round6(dk[i].size), "label",
			                      dk[i].label && *dk[i].label ? dk[i].label : "None",
			                      "udid", udid));
			added++;
		}
		size_t kept = 0;
		for (size_t i = 0; i < ndk; i++)
			kept += dk[i].keep != NULL;
		removed += (int)(json_array_size(disks) - kept);
		json_object_set_new(vg->props, "free_gb",
		                    json_real(round6(sim_real(vg, "free_gb", 0) + freed - need)));
		json_object_set_new(vg->props, "vdisks", nd);
	}
	if (md) {
		json_t *nm = json_array();
		for (size_t i = 0; i < nmd; i++) {
			if (md[i].keep) {
				json_array_append(nm, md[i].keep);
				continue;
			}
			snprintf(udid, sizeof(udid), "0e%s", md[i].name);
			json_array_append_new(
			        nm, json_pack("{s:s, s:s, s:f, s:s}", "name", md[i].name, "udid",
			                      udid, "size_gb", round6(md[i].size), "mount_type",
			                      md[i].mount && *md[i].mount ? md[i].mount : "rw"));
			added++;
		}
		size_t kept = 0;
		for (size_t i = 0; i < nmd; i++)
			kept += md[i].keep != NULL;
		removed += (int)(json_array_size(media) - kept);
		json_object_set_new(repo, "media", nm);
	}
	sim_obj_touch(sim, vg);
	event_for(sim, "MODIFY_URI", vg);
	srv_get_entry(sim, rt, o, vg);
	o->persist = true;
	snprintf(o->outcome, sizeof(o->outcome), "updated: %d added, %d removed, %d resized", added,
	         removed, resized);
out:
	items_free(dk, ndk);
	items_free(md, nmd);
	xmlFreeDoc(doc);
}

/* ---------------------------------------------------------------- logical units ---- */

static void lu_udid(const char *uuid, bool image, char *out, size_t n)
{
	snprintf(out, n, "%s6c097502d44311e58004000040f2e95d%016llx%016llx", image ? "29" : "27",
	         (unsigned long long)sim_hash_str(5, uuid),
	         (unsigned long long)sim_hash_str(6, uuid));
}

static void create_lu(struct pvm_sim *sim, struct route *rt, struct out *o, struct sim_obj *tier)
{
	xmlDoc *doc;
	xmlNode *root = srv_parse_body(rt->req, &doc);
	char why[256];
	char *name = NULL, *cap = NULL, *type = NULL, *thin = NULL, *clone = NULL;
	if (!root || strcmp((const char *)root->name, "LogicalUnit") != 0) {
		srv_out_error(o, 400, rt->path, "Bad request", "The body is not a LogicalUnit.");
		goto out;
	}
	name = srv_xtext(root, "UnitName");
	cap = srv_xtext(root, "UnitCapacity");
	type = srv_xtext(root, "LogicalUnitType");
	thin = srv_xtext(root, "ThinDevice");
	clone = srv_xtext(root, "ClonedFrom");
	double gb = 0;
	if (!name || !*name || strlen(name) > 127) {
		srv_out_error(o, 400, rt->path, "Bad request", "UnitName: 1 to 127 characters");
		goto out;
	}
	if (!cap || !srv_parse_dbl(cap, &gb) || gb <= 0) {
		srv_out_error(o, 400, rt->path, "Bad request",
		              "UnitCapacity: a positive size in GB");
		goto out;
	}
	if (type && strcmp(type, "VirtualIO_Disk") != 0 && strcmp(type, "VirtualIO_Image") != 0) {
		srv_out_error(o, 400, rt->path, "Bad request",
		              "LogicalUnitType: VirtualIO_Disk or VirtualIO_Image");
		goto out;
	}
	struct sim_obj *ssp = sim_obj_find(sim, SIM_SSP, tier->parent);
	if (!ssp) {
		srv_out_error(o, 404, rt->path, "Not Found", "The tier has no pool.");
		goto out;
	}
	if (clone && *clone) {
		struct sim_obj *src = find_lu(sim, ssp->parent, NULL, clone);
		if (!src || !lu_ssp(sim, src) ||
		    strcasecmp(lu_ssp(sim, src)->uuid, ssp->uuid) != 0) {
			snprintf(why, sizeof(why),
			         "HSCL2987 ClonedFrom: no logical unit with UDID %.80s in pool %s.",
			         clone, sim_str(ssp, "name", ""));
			srv_out_error(o, 400, rt->path, "Bad request", why);
			goto out;
		}
		if (strcmp(sim_str(src, "type", ""), "VirtualIO_Image") != 0) {
			srv_out_error(o, 400, rt->path, "Bad request",
			              "HSCL2988 ClonedFrom: the source is not a VirtualIO_Image "
			              "logical unit.");
			goto out;
		}
	}
	bool is_thin = thin ? is_true(thin) : true;
	bool linked = clone && *clone;
	double fr, tot, oc;
	ssp_sizes(sim, ssp, &fr, &tot, &oc);
	if (!is_thin && !linked && gb > fr + 1e-6) {
		snprintf(why, sizeof(why),
		         "HSCL2989 Not enough free space in shared storage pool %s: %.4g GB "
		         "needed, %.4g GB free.",
		         sim_str(ssp, "name", ""), gb, fr);
		srv_out_error(o, 400, rt->path, "Bad request", why);
		goto out;
	}
	char uuid[SIM_UUID_LEN], udid[128];
	sim_uuid_random(uuid);
	bool image = type && strcmp(type, "VirtualIO_Image") == 0;
	lu_udid(uuid, image, udid, sizeof(udid));
	json_t *p =
	        json_pack("{s:s, s:s, s:f, s:s, s:b}", "name", name, "udid", udid, "capacity_gb",
	                  round6(gb), "type", type ? type : "VirtualIO_Disk", "thin", is_thin);
	if (linked)
		json_object_set_new(p, "cloned_from", json_string(clone));
	struct sim_obj *lu = sim_obj_new(sim, SIM_LU, uuid, tier->uuid, p);
	if (!lu) {
		srv_out_error(o, 500, rt->path, "Internal error", "out of memory");
		goto out;
	}
	snprintf(o->object, sizeof(o->object), "%s", uuid);
	sim_obj_touch(sim, ssp);
	sim_obj_touch(sim, tier);
	event_for(sim, "ADD_URI", lu);
	char uri[128];
	snprintf(uri, sizeof(uri), "SharedStoragePool/%s", ssp->uuid);
	sim_event_add(sim, "MODIFY_URI", uri, "Other");
	char rel[200];
	snprintf(rel, sizeof(rel), "Tier/%s/LogicalUnit/%s", tier->uuid, uuid);
	answer_entry(sim, rt, o, lu, rel);
	o->persist = true;
	snprintf(o->outcome, sizeof(o->outcome), "created LU %.60s %s", name, udid);
out:
	free(name);
	free(cap);
	free(type);
	free(thin);
	free(clone);
	xmlFreeDoc(doc);
}

static void delete_lu(struct pvm_sim *sim, struct route *rt, struct out *o, struct sim_obj *lu)
{
	snprintf(o->object, sizeof(o->object), "%s", lu->uuid);
	if (stale(rt, o, lu))
		return;
	const char *udid = sim_str(lu, "udid", "");
	if (lu_in_use(sim, lu)) {
		srv_out_error(o, 409, rt->path, "Conflict",
		              "HSCL2974 The logical unit is in use (mapped to a partition): remove "
		              "its mapping first.");
		return;
	}
	for (size_t i = 0; i < sim->nobjs; i++) {
		struct sim_obj *x = sim->objs[i];
		if (x->kind == SIM_LU && x != lu &&
		    strcmp(sim_str(x, "cloned_from", ""), udid) == 0) {
			srv_out_error(o, 409, rt->path, "Conflict",
			              "HSCL2975 The logical unit has linked clones: delete them "
			              "first.");
			return;
		}
	}
	struct sim_obj *ssp = lu_ssp(sim, lu);
	struct sim_obj *tier = sim_obj_find(sim, SIM_TIER, lu->parent);
	char uri[200];
	sim_obj_uri(lu, uri, sizeof(uri));
	snprintf(o->outcome, sizeof(o->outcome), "deleted LU %.60s %s", sim_str(lu, "name", ""),
	         udid);
	sim_obj_remove(sim, lu);
	sim_event_add(sim, "DELETE_URI", uri, "Other");
	if (ssp) {
		sim_obj_touch(sim, ssp);
		snprintf(uri, sizeof(uri), "SharedStoragePool/%s", ssp->uuid);
		sim_event_add(sim, "MODIFY_URI", uri, "Other");
	}
	if (tier)
		sim_obj_touch(sim, tier);
	o->status = 204;
	o->persist = true;
}

/* ---------------------------------------------------------------- adapters --------- */

static bool mac_ok(const char *m)
{
	if (strlen(m) != 12)
		return false;
	for (const char *p = m; *p; p++)
		if (!isxdigit((unsigned char)*p) || (isalpha((unsigned char)*p) && !isupper(*p)))
			return false;
	return true;
}

static bool mac_used(struct pvm_sim *sim, const char *ms, const char *mac)
{
	for (size_t i = 0; i < sim->nobjs; i++) {
		struct sim_obj *x = sim->objs[i];
		if (x->kind != SIM_CNA || strcmp(sim_str(x, "mac", ""), mac) != 0)
			continue;
		struct sim_obj *l = sim_obj_find(sim, SIM_LPAR, x->parent);
		if (l && strcasecmp(l->parent, ms) == 0)
			return true;
	}
	return false;
}

static void create_cna(struct pvm_sim *sim, struct route *rt, struct out *o, struct sim_obj *lpar)
{
	snprintf(o->object, sizeof(o->object), "%s", lpar->uuid);
	xmlDoc *doc;
	xmlNode *root = srv_parse_body(rt->req, &doc);
	char *mac = NULL, *pvid = NULL, *slot = NULL, *vlans = NULL, *tagged = NULL, *href = NULL;
	char why[256];
	if (!root || strcmp((const char *)root->name, "ClientNetworkAdapter") != 0) {
		srv_out_error(o, 400, rt->path, "Bad request",
		              "The body is not a ClientNetworkAdapter.");
		goto out;
	}
	mac = srv_xtext(root, "MACAddress");
	pvid = srv_xtext(root, "PortVLANID");
	slot = srv_xtext(root, "VirtualSlotNumber");
	vlans = srv_xtext(root, "TaggedVLANIDs");
	tagged = srv_xtext(root, "TaggedVLANSupported");
	href = node_href(srv_xchild(root, "AssociatedVirtualSwitch"));
	long long vid = 0, sl = -1;
	if (!pvid || !srv_parse_ll(pvid, &vid) || vid < 1 || vid > 4094) {
		srv_out_error(o, 400, rt->path, "Bad request", "PortVLANID: 1 to 4094 required");
		goto out;
	}
	char vsu[SIM_UUID_LEN + 8];
	href_tail(href, vsu, sizeof(vsu));
	struct sim_obj *vs = *vsu ? sim_obj_find(sim, SIM_VSWITCH, vsu) : NULL;
	if (!vs || strcasecmp(vs->parent, lpar->parent) != 0) {
		srv_out_error(o, 400, rt->path, "Bad request",
		              "AssociatedVirtualSwitch: a link to a virtual switch of the "
		              "partition's system is required");
		goto out;
	}
	if (mac && *mac) {
		if (!mac_ok(mac)) {
			srv_out_error(o, 400, rt->path, "Bad request",
			              "MACAddress: 12 upper-case hexadecimal digits");
			goto out;
		}
		if (mac_used(sim, lpar->parent, mac)) {
			snprintf(why, sizeof(why),
			         "HSCL1B71 The MAC address %s is used by another adapter.", mac);
			srv_out_error(o, 409, rt->path, "Conflict", why);
			goto out;
		}
	}
	if (slot && *slot) {
		if (!srv_parse_ll(slot, &sl) || sl < 2 || sl >= sim_int(lpar, "max_slots", 64)) {
			srv_out_error(o, 400, rt->path, "Bad request",
			              "VirtualSlotNumber: 2 to MaximumVirtualIOSlots - 1");
			goto out;
		}
		if (lpar_slot_used(sim, lpar, sl, NULL)) {
			snprintf(why, sizeof(why), "HSCL1B72 Virtual slot %lld is in use.", sl);
			srv_out_error(o, 409, rt->path, "Conflict", why);
			goto out;
		}
	} else if ((sl = lpar_slot_alloc(sim, lpar, NULL)) < 0) {
		srv_out_error(o, 409, rt->path, "Conflict",
		              "HSCL1B73 The partition has no free virtual slot.");
		goto out;
	}
	char gen[16];
	if (!mac || !*mac) {
		for (uint64_t n = 0;; n++) {
			snprintf(gen, sizeof(gen), "%02llX%010llX",
			         (unsigned long long)((sim_hash_str(n, lpar->uuid) & 0x3f) | 0x82) &
			                 0xfe,
			         (unsigned long long)(sim_hash_str(n * 31 + (uint64_t)sl,
			                                           lpar->uuid) &
			                              0xffffffffffULL));
			if (!mac_used(sim, lpar->parent, gen))
				break;
		}
	}
	char uuid[SIM_UUID_LEN];
	sim_uuid_random(uuid);
	json_t *p = json_pack("{s:s, s:I, s:I, s:s, s:s, s:b, s:b}", "mac", mac && *mac ? mac : gen,
	                      "pvid", (json_int_t)vid, "slot", (json_int_t)sl, "vswitch", vs->uuid,
	                      "tagged_vlans", vlans ? vlans : "", "tagged_supported",
	                      is_true(tagged) || (vlans && *vlans), "enabled", 1);
	struct sim_obj *cna = sim_obj_new(sim, SIM_CNA, uuid, lpar->uuid, p);
	if (!cna) {
		srv_out_error(o, 500, rt->path, "Internal error", "out of memory");
		goto out;
	}
	snprintf(o->object, sizeof(o->object), "%s", uuid);
	sim_obj_touch(sim, lpar);
	event_for(sim, "ADD_URI", cna);
	event_for(sim, "MODIFY_URI", lpar);
	char rel[200];
	snprintf(rel, sizeof(rel), "LogicalPartition/%s/ClientNetworkAdapter/%s", lpar->uuid, uuid);
	answer_entry(sim, rt, o, cna, rel);
	o->persist = true;
	snprintf(o->outcome, sizeof(o->outcome), "created CNA %s vlan %lld slot %lld on %s",
	         sim_str(cna, "mac", ""), vid, sl, lpar->uuid);
out:
	free(mac);
	free(pvid);
	free(slot);
	free(vlans);
	free(tagged);
	free(href);
	xmlFreeDoc(doc);
}

static void delete_cna(struct pvm_sim *sim, struct route *rt, struct out *o, struct sim_obj *cna)
{
	snprintf(o->object, sizeof(o->object), "%s", cna->uuid);
	if (stale(rt, o, cna))
		return;
	struct sim_obj *lpar = sim_obj_find(sim, SIM_LPAR, cna->parent);
	char uri[200];
	sim_obj_uri(cna, uri, sizeof(uri));
	snprintf(o->outcome, sizeof(o->outcome), "deleted CNA %s", sim_str(cna, "mac", ""));
	sim_obj_remove(sim, cna);
	sim_event_add(sim, "DELETE_URI", uri, "Other");
	if (lpar) {
		sim_obj_touch(sim, lpar);
		event_for(sim, "MODIFY_URI", lpar);
	}
	o->status = 204;
	o->persist = true;
}

void sim_lpar_cascade(struct pvm_sim *sim, struct sim_obj *lpar)
{
	for (size_t i = 0; i < sim->nobjs;) {
		struct sim_obj *x = sim->objs[i];
		if (x->kind == SIM_CNA && strcasecmp(x->parent, lpar->uuid) == 0) {
			char uri[200];
			sim_obj_uri(x, uri, sizeof(uri));
			sim_obj_remove(sim, x);
			sim_event_add(sim, "DELETE_URI", uri, "Other");
			continue;
		}
		i++;
	}
	for (size_t i = 0; i < sim->nobjs; i++) {
		struct sim_obj *v = sim->objs[i];
		if (v->kind != SIM_VIOS || strcasecmp(v->parent, lpar->parent) != 0)
			continue;
		bool changed = false;
		json_t *m;
		size_t k;
		json_array_foreach(json_object_get(v->props, "scsi_mappings"), k, m)
		{
			if (strcasecmp(js(m, "lpar", ""), lpar->uuid) == 0 &&
			    !json_is_true(json_object_get(m, "orphan"))) {
				json_object_set_new(m, "orphan", json_true());
				changed = true;
			}
		}
		if (changed) {
			sim_obj_touch(sim, v);
			event_for(sim, "MODIFY_URI", v);
		}
	}
}

/* ---------------------------------------------------------------- vSCSI mappings --- */

struct bmap {
	char lpar[SIM_UUID_LEN + 8];
	int ki; /* storage kind, -1: none */
	char *sname, *sudid, *target;
	long long cslot, sslot;
	json_t *keep;
};

static void bmaps_free(struct bmap *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(b[i].sname);
		free(b[i].sudid);
		free(b[i].target);
	}
	free(b);
}

static long long opt_ll(xmlNode *n, const char *path)
{
	char *v = srv_xtext(n, path);
	long long x = -1;
	if (!v || !srv_parse_ll(v, &x))
		x = -1;
	free(v);
	return x;
}

static bool same_storage(const struct bmap *b, json_t *m)
{
	json_t *st = json_object_get(m, "storage");
	int ki = json_is_object(st) ? kind_index(js(st, "kind", "")) : -1;
	if (ki != b->ki)
		return false;
	if (ki < 0)
		return true;
	if (ki == 2 && b->sudid && *b->sudid && *js(st, "udid", ""))
		return strcmp(b->sudid, js(st, "udid", "")) == 0;
	return b->sname && strcmp(b->sname, js(st, "name", "")) == 0;
}

/* The VirtualSCSIMappings of a body. NULL with why on a bad one (or out of memory). */
static struct bmap *read_mappings(xmlNode *maps, size_t *n, char *why, size_t whyn)
{
	*n = 0;
	size_t cap = 0;
	for (xmlNode *c = maps->children; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE &&
		    strcmp((const char *)c->name, "VirtualSCSIMapping") == 0)
			cap++;
	struct bmap *bm = calloc(cap + 1, sizeof(*bm));
	if (!bm) {
		snprintf(why, whyn, "out of memory");
		return NULL;
	}
	for (xmlNode *c = maps->children; c; c = c->next) {
		if (c->type != XML_ELEMENT_NODE ||
		    strcmp((const char *)c->name, "VirtualSCSIMapping") != 0)
			continue;
		struct bmap *x = &bm[(*n)++];
		char *h = node_href(srv_xchild(c, "AssociatedLogicalPartition"));
		href_tail(h, x->lpar, sizeof(x->lpar));
		free(h);
		x->cslot = opt_ll(c, "ClientAdapter/VirtualSlotNumber");
		x->sslot = opt_ll(c, "ServerAdapter/VirtualSlotNumber");
		x->ki = -1;
		xmlNode *st = srv_xchild(c, "Storage");
		for (xmlNode *e = st ? st->children : NULL; e && x->ki < 0; e = e->next) {
			if (e->type != XML_ELEMENT_NODE ||
			    strcmp((const char *)e->name, "Metadata") == 0)
				continue;
			for (int k = 0; k < 4 && x->ki < 0; k++)
				if (strcmp((const char *)e->name, storage_el[k]) == 0) {
					x->ki = k;
					x->sname = srv_xtext(e, storage_name_el[k]);
					x->sudid = srv_xtext(e, k == 3 ? "MediaUDID"
					                               : "UniqueDeviceID");
				}
			if (x->ki < 0) {
				snprintf(why, whyn,
				         "VirtualSCSIMapping: unknown storage element %.40s",
				         (const char *)e->name);
				bmaps_free(bm, *n);
				*n = 0;
				return NULL;
			}
		}
		xmlNode *td = srv_xchild(c, "TargetDevice");
		for (xmlNode *e = td ? td->children : NULL; e && !x->target; e = e->next)
			if (e->type == XML_ELEMENT_NODE)
				x->target = srv_xtext(e, "TargetName");
	}
	return bm;
}

/* Finds the storage of a new mapping on this VIOS; its name and UDID into nm / udid. */
static bool resolve_storage(struct pvm_sim *sim, const struct sim_obj *vios, const struct bmap *x,
                            char *nm, char *udid, size_t n)
{
	const char *name = NULL, *u = NULL;
	if (x->ki == 0) {
		json_t *d = find_vdisk(sim, vios->uuid, x->sname, NULL, NULL);
		if (d) {
			name = js(d, "name", "");
			u = js(d, "udid", "");
		}
	} else if (x->ki == 1) {
		struct sim_obj *pv = find_pv(sim, vios->uuid, x->sname, x->sudid);
		if (pv) {
			name = sim_str(pv, "name", "");
			u = sim_str(pv, "udid", "");
		}
	} else if (x->ki == 2) {
		struct sim_obj *lu = find_lu(sim, vios->parent, x->sname, x->sudid);
		if (lu) {
			name = sim_str(lu, "name", "");
			u = sim_str(lu, "udid", "");
		}
	} else {
		json_t *md = find_media(sim, vios->uuid, x->sname, NULL, NULL);
		if (md) {
			name = js(md, "name", "");
			u = js(md, "udid", "");
		}
	}
	if (!name)
		return false;
	snprintf(nm, n, "%s", name);
	snprintf(udid, n, "%s", u);
	return true;
}

/* Does the body keep the current mapping m? */
static bool kept_by_body(const struct bmap *bm, size_t nb, json_t *m)
{
	for (size_t q = 0; q < nb; q++)
		if (bm[q].keep == m)
			return true;
	return false;
}

/* Is key == v in a mapping of list a or b? */
static bool used_in(json_t *a, json_t *b, const char *key, long long v)
{
	json_t *lists[2] = {a, b}, *m;
	size_t k;
	for (int i = 0; i < 2; i++)
		json_array_foreach(lists[i], k, m)
		{
			if ((long long)jnum(m, key, -1) == v)
				return true;
		}
	return false;
}

void sim_update_vios(struct pvm_sim *sim, struct route *rt, struct out *o, struct sim_obj *vios)
{
	snprintf(o->object, sizeof(o->object), "%s", vios->uuid);
	if (stale(rt, o, vios))
		return;
	xmlDoc *doc;
	xmlNode *root = srv_parse_body(rt->req, &doc);
	struct bmap *bm = NULL;
	size_t nb = 0;
	json_t *pending = NULL;
	char why[300];
	if (!root || strcmp((const char *)root->name, "VirtualIOServer") != 0) {
		srv_out_error(o, 400, rt->path, "Bad request",
		              "The body is not a VirtualIOServer.");
		goto out;
	}
	xmlNode *maps = srv_xchild(root, "VirtualSCSIMappings");
	if (!maps) { /* nothing this simulator changes on a VIOS */
		srv_get_entry(sim, rt, o, vios);
		snprintf(o->outcome, sizeof(o->outcome), "updated: no mapping change");
		goto out;
	}
	if (!(bm = read_mappings(maps, &nb, why, sizeof(why)))) {
		srv_out_error(o, 400, rt->path, "Bad request", why);
		goto out;
	}
	json_t *cur = arr_of(vios->props, "scsi_mappings");
	size_t ncur = json_array_size(cur);
	/* match the body's mappings with the current ones */
	for (size_t i = 0; i < nb; i++) {
		for (size_t j = 0; j < ncur; j++) {
			json_t *m = json_array_get(cur, j);
			bool taken = false;
			for (size_t q = 0; q < i && !taken; q++)
				taken = bm[q].keep == m;
			if (taken || strcasecmp(js(m, "lpar", ""), bm[i].lpar) != 0 ||
			    !same_storage(&bm[i], m) ||
			    (bm[i].sslot >= 0 &&
			     (long long)jnum(m, "server_slot", -1) != bm[i].sslot))
				continue;
			bm[i].keep = m;
			break;
		}
	}
	/* removals: mapped storage is freed; nothing to refuse */
	/* additions: validate, then place */
	pending = json_array();
	int added = 0;
	long long next_vtscsi = sim_int(vios, "next_vtscsi", 0),
	          next_vtopt = sim_int(vios, "next_vtopt", 0);
	for (size_t i = 0; i < nb; i++) {
		struct bmap *x = &bm[i];
		if (x->keep)
			continue;
		struct sim_obj *lpar = *x->lpar ? sim_obj_find(sim, SIM_LPAR, x->lpar) : NULL;
		if (!lpar || strcasecmp(lpar->parent, vios->parent) != 0) {
			snprintf(why, sizeof(why),
			         "VirtualSCSIMapping: AssociatedLogicalPartition %.40s is not a "
			         "partition of this system.",
			         *x->lpar ? x->lpar : "(missing)");
			srv_out_error(o, 400, rt->path, "Bad request", why);
			goto out;
		}
		char nm[160] = "", udid[160] = "";
		if (x->ki >= 0 && !resolve_storage(sim, vios, x, nm, udid, sizeof(nm))) {
			snprintf(why, sizeof(why),
			         "VirtualSCSIMapping: Storage %s %.60s%s%.80s does not exist on "
			         "this "
			         "VIOS.",
			         storage_el[x->ki], x->sname ? x->sname : "", x->sudid ? " / " : "",
			         x->sudid ? x->sudid : "");
			srv_out_error(o, 400, rt->path, "Bad request", why);
			goto out;
		}
		/* adapters: one pair per partition and VIOS, shared by its storage */
		long long cs = -1, ss = -1, vh = -1, lun = 1;
		json_t *all[2] = {cur, pending};
		for (int a = 0; a < 2; a++) {
			json_t *m;
			size_t k;
			json_array_foreach(all[a], k, m)
			{
				if ((a == 0 && !kept_by_body(bm, nb, m)) ||
				    json_is_true(json_object_get(m, "orphan")) ||
				    strcasecmp(js(m, "lpar", ""), lpar->uuid) != 0 ||
				    (x->sslot >= 0 &&
				     (long long)jnum(m, "server_slot", -1) != x->sslot))
					continue;
				cs = (long long)jnum(m, "client_slot", -1);
				ss = (long long)jnum(m, "server_slot", -1);
				vh = (long long)jnum(m, "vhost", 0);
				if ((long long)jnum(m, "lun", 1) >= lun)
					lun = (long long)jnum(m, "lun", 1) + 1;
			}
		}
		if (ss < 0) {
			if (x->cslot >= 0) {
				if (x->cslot < 2 || x->cslot >= sim_int(lpar, "max_slots", 64) ||
				    lpar_slot_used(sim, lpar, x->cslot, pending)) {
					snprintf(why, sizeof(why),
					         "ClientAdapter: VirtualSlotNumber %lld is not "
					         "free on the "
					         "partition.",
					         x->cslot);
					srv_out_error(o, 400, rt->path, "Bad request", why);
					goto out;
				}
				cs = x->cslot;
			} else if ((cs = lpar_slot_alloc(sim, lpar, pending)) < 0) {
				srv_out_error(o, 409, rt->path, "Conflict",
				              "HSCL1B73 The partition has no free virtual slot.");
				goto out;
			}
			/* server slot and vhost: the lowest free on this VIOS (orphans keep theirs) */
			if (x->sslot >= 0 && used_in(cur, pending, "server_slot", x->sslot)) {
				snprintf(why, sizeof(why),
				         "ServerAdapter: VirtualSlotNumber %lld is in use on the "
				         "VIOS.",
				         x->sslot);
				srv_out_error(o, 400, rt->path, "Bad request", why);
				goto out;
			}
			for (ss = x->sslot >= 0 ? x->sslot : 2;
			     used_in(cur, pending, "server_slot", ss); ss++)
				;
			for (vh = 0; used_in(cur, pending, "vhost", vh); vh++)
				;
		}
		char target[64];
		if (x->target && *x->target) {
			snprintf(target, sizeof(target), "%.60s", x->target);
		} else if (x->ki >= 0) {
			long long *t = x->ki == 3 ? &next_vtopt : &next_vtscsi;
			snprintf(target, sizeof(target), "%s%lld", x->ki == 3 ? "vtopt" : "vtscsi",
			         (*t)++);
		} else {
			target[0] = '\0';
		}
		json_t *m =
		        json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:s}", "lpar", lpar->uuid,
		                  "client_id", (json_int_t)sim_int(lpar, "id", 0), "client_slot",
		                  (json_int_t)cs, "server_slot", (json_int_t)ss, "vhost",
		                  (json_int_t)vh, "lun", (json_int_t)lun, "target", target);
		if (x->ki >= 0)
			json_object_set_new(m, "storage",
			                    json_pack("{s:s, s:s, s:s}", "kind", kinds[x->ki],
			                              "name", nm, "udid", udid));
		json_array_append_new(pending, m);
		added++;
	}
	/* apply: kept ones in their order, then the new ones */
	json_t *nl = json_array();
	int removed = 0;
	for (size_t j = 0; j < ncur; j++) {
		json_t *m = json_array_get(cur, j);
		if (kept_by_body(bm, nb, m))
			json_array_append(nl, m);
		else
			removed++;
	}
	json_array_extend(nl, pending);
	json_object_set_new(vios->props, "scsi_mappings", nl);
	json_object_set_new(vios->props, "next_vtscsi", json_integer(next_vtscsi));
	json_object_set_new(vios->props, "next_vtopt", json_integer(next_vtopt));
	sim_obj_touch(sim, vios);
	if (added || removed)
		event_for(sim, "MODIFY_URI", vios);
	/* logical units show InUse: their ETags change with it (no event: the VIOS has one) */
	for (size_t i = 0; i < sim->nobjs; i++)
		if (sim->objs[i]->kind == SIM_LU && (added || removed))
			sim->objs[i]->gen++;
	srv_get_entry(sim, rt, o, vios);
	o->persist = true;
	snprintf(o->outcome, sizeof(o->outcome), "updated: mappings %d added, %d removed", added,
	         removed);
out:
	json_decref(pending);
	bmaps_free(bm, nb);
	xmlFreeDoc(doc);
}

/* ---------------------------------------------------------------- web File --------- */

static void render_file(struct pvm_buf *b, const char *base, const struct sim_obj *f)
{
	char t[32];
	pvm_fmt_time(f->created_ms, t, sizeof(t));
	pvm_buf_printf(b,
	               "<entry " ATOM_ROOT_ATTRS ">\n    <id>%s</id>\n    <title>File</title>\n"
	               "    <published>%s</published>\n"
	               "    <link rel=\"SELF\" href=\"%s/rest/api/web/File/%s\"/>\n"
	               "    <author>\n        <name>" GENERATOR "</name>\n    </author>\n"
	               "    <content type=\"application/vnd.ibm.powervm.web+xml; type=File\">\n",
	               f->uuid, t, base, f->uuid);
	obj_open(b, "File", SIM_NS_WEB, "V1_0");
	obj_meta(b, f);
	const char *cor = "kb=\"COR\" kxe=\"false\"";
	el(b, 1, "Filename", cor, sim_str(f, "name", ""));
	eli(b, 1, "DateModified", ROR, sim_int(f, "modified_ms", f->created_ms));
	el(b, 1, "InternetMediaType", cor, sim_str(f, "media_type", "application/octet-stream"));
	el(b, 1, "FileUUID", ROR, f->uuid);
	eli(b, 1, "ExpectedFileSizeInBytes", COD, sim_int(f, "expected", 0));
	eli(b, 1, "CurrentFileSizeInBytes", ROR, sim_int(f, "current", 0));
	el(b, 1, "FileEnumType", cor, sim_str(f, "enum_type", ""));
	el(b, 1, "TargetVirtualIOServerUUID", cor, sim_str(f, "vios", ""));
	const char *tu = sim_str(f, "target_udid", "");
	if (*tu)
		el(b, 1, "TargetDeviceUniqueDeviceID", cor, tu);
	const char *sh = sim_str(f, "sha256", "");
	if (*sh)
		el(b, 1, "SHA256", COD, sh);
	pvm_buf_add(b, "</File:File>\n    </content>\n</entry>\n");
}

/* The device a file lands on: a virtual disk, optical media or logical unit by UDID.
 * Returns the JSON holding it (vdisk / media entry or the LU's props) and its owner. */
static json_t *target_device(struct pvm_sim *sim, const struct sim_obj *vios, const char *udid,
                             struct sim_obj **owner, double *capacity_gb)
{
	json_t *d = find_vdisk(sim, vios->uuid, NULL, udid, owner);
	if (d) {
		*capacity_gb = jnum(d, "capacity_gb", 0);
		return d;
	}
	d = find_media(sim, vios->uuid, NULL, udid, owner);
	if (d) {
		*capacity_gb = -1; /* media: any size that fits the repository */
		return d;
	}
	struct sim_obj *lu = find_lu(sim, vios->parent, NULL, udid);
	if (lu) {
		*owner = lu;
		*capacity_gb = sim_real(lu, "capacity_gb", 0);
		return lu->props;
	}
	return NULL;
}

static bool hex64(const char *s)
{
	if (strlen(s) != 64)
		return false;
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s))
			return false;
	return true;
}

static void create_file(struct pvm_sim *sim, struct route *rt, struct out *o)
{
	xmlDoc *doc;
	xmlNode *root = srv_parse_body(rt->req, &doc);
	char *f[7] = {0};
	static const char *const names[7] = {
	        "Filename",     "InternetMediaType",         "ExpectedFileSizeInBytes",
	        "FileEnumType", "TargetVirtualIOServerUUID", "TargetDeviceUniqueDeviceID",
	        "SHA256"};
	char why[256];
	if (!root || strcmp((const char *)root->name, "File") != 0) {
		srv_out_error(o, 400, rt->path, "Bad request", "The body is not a File.");
		goto out;
	}
	for (int i = 0; i < 7; i++)
		f[i] = srv_xtext(root, names[i]);
	long long size = -1;
	if (!f[0] || !*f[0] || strlen(f[0]) > 255) {
		srv_out_error(o, 400, rt->path, "Bad request", "Filename: 1 to 255 characters");
		goto out;
	}
	if (!f[2] || !srv_parse_ll(f[2], &size) || size < 0) {
		srv_out_error(o, 400, rt->path, "Bad request",
		              "ExpectedFileSizeInBytes: a size in bytes is required");
		goto out;
	}
	bool iso = f[3] && strcmp(f[3], "BROKERED_MEDIA_ISO") == 0;
	if (!f[3] || (!iso && strcmp(f[3], "BROKERED_DISK_IMAGE") != 0)) {
		srv_out_error(o, 400, rt->path, "Bad request",
		              "FileEnumType: BROKERED_DISK_IMAGE or BROKERED_MEDIA_ISO");
		goto out;
	}
	struct sim_obj *vios = f[4] ? sim_obj_find(sim, SIM_VIOS, f[4]) : NULL;
	if (!vios) {
		srv_out_error(o, 400, rt->path, "Bad request",
		              "TargetVirtualIOServerUUID: no such Virtual I/O Server");
		goto out;
	}
	if (f[6] && *f[6] && !hex64(f[6])) {
		srv_out_error(o, 400, rt->path, "Bad request", "SHA256: 64 hexadecimal digits");
		goto out;
	}
	if (f[5] && *f[5]) {
		struct sim_obj *owner = NULL;
		double cap = 0;
		if (!target_device(sim, vios, f[5], &owner, &cap)) {
			snprintf(why, sizeof(why),
			         "TargetDeviceUniqueDeviceID: no device %.80s on this VIOS", f[5]);
			srv_out_error(o, 400, rt->path, "Bad request", why);
			goto out;
		}
		if (cap >= 0 && (double)size > cap * 1073741824.0 + 0.5) {
			snprintf(
			        why, sizeof(why),
			        "ExpectedFileSizeInBytes: %lld bytes do not fit the %.4g GB device",
			        size, cap);
			srv_out_error(o, 400, rt->path, "Bad request", why);
			goto out;
		}
	} else if (!iso) {
		srv_out_error(o, 400, rt->path, "Bad request",
		              "TargetDeviceUniqueDeviceID: required for BROKERED_DISK_IMAGE");
		goto out;
	} else if (strlen(f[0]) > 37) {
		srv_out_error(o, 400, rt->path, "Bad request",
		              "Filename: a new optical media name has at most 37 characters");
		goto out;
	}
	char uuid[SIM_UUID_LEN];
	sim_uuid_random(uuid);
	char shalow[72] = "";
	if (f[6] && *f[6]) {
		snprintf(shalow, sizeof(shalow), "%s", f[6]);
		for (char *c = shalow; *c; c++)
			*c = (char)tolower((unsigned char)*c);
	}
	json_t *p = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:s, s:s}", "name", f[0],
	                      "media_type", f[1] && *f[1] ? f[1] : "application/octet-stream",
	                      "expected", (json_int_t)size, "current", (json_int_t)0, "enum_type",
	                      f[3], "vios", vios->uuid, "target_udid", f[5] ? f[5] : "", "sha256",
	                      shalow, "status", "created");
	struct sim_obj *fo = sim_obj_new(sim, SIM_FILE, uuid, "", p);
	if (!fo) {
		srv_out_error(o, 500, rt->path, "Internal error", "out of memory");
		goto out;
	}
	snprintf(o->object, sizeof(o->object), "%s", uuid);
	struct pvm_buf b;
	pvm_buf_init(&b);
	render_file(&b, rt->base, fo);
	srv_out_body(o, 200, "application/atom+xml", &b);
	o->persist = true;
	snprintf(o->outcome, sizeof(o->outcome), "created file %.60s (%lld bytes)", f[0], size);
out:
	for (int i = 0; i < 7; i++)
		free(f[i]);
	xmlFreeDoc(doc);
}

static void upload_contents(struct pvm_sim *sim, struct route *rt, struct out *o, struct sim_obj *f)
{
	struct sim_req *r = rt->req;
	char hex[65] = "";
	if (r->sha) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int mdlen = 0;
		if (EVP_DigestFinal_ex(r->sha, md, &mdlen) == 1)
			for (unsigned i = 0; i < mdlen && i < 32; i++)
				snprintf(hex + 2 * i, 3, "%02x", md[i]);
		EVP_MD_CTX_free(r->sha);
		r->sha = NULL;
	}
	char why[300];
	const char *st = sim_str(f, "status", "created");
	if (strcmp(st, "created") != 0) {
		snprintf(why, sizeof(why), "HSCL2D02 The file has been uploaded already (%s).", st);
		srv_out_error(o, 409, rt->path, "Conflict", why);
		return;
	}
	long long got = (long long)r->stream_bytes, want = sim_int(f, "expected", 0);
	json_object_set_new(f->props, "current", json_integer(got));
	json_object_set_new(f->props, "received_sha256", json_string(hex));
	json_object_set_new(f->props, "modified_ms", json_integer(pvm_now_ms()));
	sim_obj_touch(sim, f);
	o->persist = true;
	if (got != want) {
		json_object_set_new(f->props, "status", json_string("error"));
		snprintf(why, sizeof(why),
		         "HSCL2D03 The upload has %lld bytes, ExpectedFileSizeInBytes is %lld.",
		         got, want);
		srv_out_error(o, 400, rt->path, "Bad request", why);
		return;
	}
	const char *sha = sim_str(f, "sha256", "");
	if (*sha && strcmp(sha, hex) != 0) {
		json_object_set_new(f->props, "status", json_string("error"));
		snprintf(why, sizeof(why),
		         "HSCL2D04 The SHA-256 of the upload (%s) is not the expected one (%s).",
		         hex, sha);
		srv_out_error(o, 400, rt->path, "Bad request", why);
		return;
	}
	struct sim_obj *vios = sim_obj_find(sim, SIM_VIOS, sim_str(f, "vios", ""));
	if (!vios) {
		json_object_set_new(f->props, "status", json_string("error"));
		srv_out_error(o, 409, rt->path, "Conflict", "The target VIOS is gone.");
		return;
	}
	json_t *contents = json_pack("{s:I, s:s, s:s, s:s}", "size", (json_int_t)got, "sha256", hex,
	                             "file", sim_str(f, "name", ""), "file_uuid", f->uuid);
	const char *tu = sim_str(f, "target_udid", "");
	struct sim_obj *owner = NULL;
	if (*tu) {
		double cap;
		json_t *dev = target_device(sim, vios, tu, &owner, &cap);
		if (!dev) {
			json_decref(contents);
			json_object_set_new(f->props, "status", json_string("error"));
			srv_out_error(o, 409, rt->path, "Conflict", "The target device is gone.");
			return;
		}
		json_object_set_new(dev, "contents", contents);
	} else { /* an ISO: new optical media named after the file */
		double gb = round6((double)got / 1073741824.0);
		json_t *m = find_media(sim, vios->uuid, sim_str(f, "name", ""), NULL, &owner);
		if (!m) {
			for (size_t i = 0; i < sim->nobjs && !owner; i++) {
				struct sim_obj *vg = sim->objs[i];
				if (vg->kind == SIM_VG && strcasecmp(vg->parent, vios->uuid) == 0 &&
				    vg_repo(vg))
					owner = vg;
			}
			if (!owner) {
				json_decref(contents);
				json_object_set_new(f->props, "status", json_string("error"));
				srv_out_error(o, 409, rt->path, "Conflict",
				              "HSCL2D05 The VIOS has no media repository.");
				return;
			}
			json_t *repo = vg_repo(owner);
			double used = 0;
			json_t *x;
			size_t k;
			json_array_foreach(json_object_get(repo, "media"), k, x) used +=
			        jnum(x, "size_gb", 0);
			if (used + gb > jnum(repo, "size_gb", 0) + 1e-6) {
				json_decref(contents);
				json_object_set_new(f->props, "status", json_string("error"));
				srv_out_error(o, 409, rt->path, "Conflict",
				              "HSCL2973 Not enough space in the media repository.");
				return;
			}
			char udid[64];
			snprintf(udid, sizeof(udid), "0e%.60s", sim_str(f, "name", ""));
			m = json_pack("{s:s, s:s, s:f, s:s}", "name", sim_str(f, "name", ""),
			              "udid", udid, "size_gb", gb, "mount_type", "ro");
			json_array_append_new(arr_of(repo, "media"), m);
		}
		json_object_set_new(m, "contents", contents);
	}
	json_object_set_new(f->props, "status", json_string("uploaded"));
	sim_obj_touch(sim, owner);
	event_for(sim, "MODIFY_URI", owner);
	if (owner->kind == SIM_LU) {
		struct sim_obj *ssp = lu_ssp(sim, owner);
		if (ssp)
			sim_obj_touch(sim, ssp); /* a thin LU's used space changed */
	}
	o->status = 204;
	snprintf(o->outcome, sizeof(o->outcome), "uploaded %lld bytes sha256 %s to %s", got, hex,
	         *tu ? tu : sim_str(f, "name", ""));
}

void sim_web_file(struct pvm_sim *sim, struct route *rt, struct out *o)
{
	char buf[512];
	pvm_strlcpy(buf, rt->path + strlen("/rest/api/web/"), sizeof(buf));
	char *segs[4];
	int n = 0;
	char *save = NULL;
	for (char *t = strtok_r(buf, "/", &save); t && n < 4; t = strtok_r(NULL, "/", &save))
		segs[n++] = t;
	bool get = strcmp(rt->method, "GET") == 0;
	if (n == 1) {
		if (strcmp(rt->method, "PUT") == 0) {
			create_file(sim, rt, o);
		} else if (get) {
			struct pvm_buf b;
			pvm_buf_init(&b);
			size_t k = 0;
			struct sim_render_ctx c;
			srv_ctx_for(sim, rt, &c, "rest/api/web/File");
			for (size_t i = 0; i < sim->nobjs; i++) {
				const struct sim_obj *f = sim->objs[i];
				if (f->kind != SIM_FILE)
					continue;
				if (k++ == 0)
					sim_render_feed_open(&b, &c, "web/File");
				struct pvm_buf e;
				pvm_buf_init(&e);
				render_file(&e, rt->base, f);
				/* entries of a feed carry no namespace declarations of their own */
				const char *p = strstr(e.p, "<id>");
				pvm_buf_add(&b, "    <entry>\n    ");
				pvm_buf_add(&b, p ? p : "");
				pvm_buf_fini(&e);
			}
			if (!k) {
				pvm_buf_fini(&b);
				o->status = 204;
				return;
			}
			sim_render_feed_close(&b);
			srv_out_body(o, 200, "application/atom+xml", &b);
		} else {
			srv_out_error(o, 405, rt->path, "Method Not Allowed", "GET or PUT.");
		}
		return;
	}
	bool contents = n == 3 && strcmp(segs[1], "contents") == 0;
	const char *id = contents ? segs[2] : (n == 2 ? segs[1] : NULL);
	struct sim_obj *f = id ? sim_obj_find(sim, SIM_FILE, id) : NULL;
	if (id && !get)
		snprintf(o->object, sizeof(o->object), "%s", id);
	if (!f) {
		srv_out_error(o, 404, rt->path, "Not Found", "No such file.");
		return;
	}
	if (contents) {
		if (strcmp(rt->method, "PUT") == 0)
			upload_contents(sim, rt, o, f);
		else
			srv_out_error(o, 405, rt->path, "Method Not Allowed", "PUT the contents.");
		return;
	}
	if (get) {
		struct pvm_buf b;
		pvm_buf_init(&b);
		render_file(&b, rt->base, f);
		srv_out_body(o, 200, "application/atom+xml", &b);
		snprintf(o->etag, sizeof(o->etag), "%d", (int)sim_etag(f, 0));
	} else if (strcmp(rt->method, "DELETE") == 0) {
		if (stale(rt, o, f))
			return;
		snprintf(o->outcome, sizeof(o->outcome), "deleted file %.60s",
		         sim_str(f, "name", ""));
		sim_obj_remove(sim, f);
		o->status = 204;
		o->persist = true;
	} else {
		srv_out_error(o, 405, rt->path, "Method Not Allowed", "GET or DELETE.");
	}
}

/* ---------------------------------------------------------------- routing ---------- */

static bool uuid_match(const struct sim_obj *o, const char *parent)
{
	return strcasecmp(o->parent, parent) == 0;
}

/* GET feed / GET entry / PUT create / POST update / DELETE of one sub-collection. */
bool sim_storage_route(struct pvm_sim *sim, struct route *rt, struct out *o)
{
	char **s = rt->segs;
	int n = rt->nsegs;
	bool get = strcmp(rt->method, "GET") == 0;
	bool put = strcmp(rt->method, "PUT") == 0;
	bool del = strcmp(rt->method, "DELETE") == 0;
	if (strcmp(s[0], "SharedStoragePool") == 0) {
		if (n == 1 && get) {
			srv_get_feed(sim, rt, o, SIM_SSP, NULL, NULL);
			return true;
		}
		struct sim_obj *ssp = n >= 2 ? sim_obj_find(sim, SIM_SSP, s[1]) : NULL;
		if (!ssp) {
			srv_out_error(o, 404, rt->path, "Not Found", "The object does not exist.");
			return true;
		}
		if (n == 2 && get)
			srv_get_entry(sim, rt, o, ssp);
		else if (n == 3 && get && strcmp(s[2], "Tier") == 0)
			srv_get_feed(sim, rt, o, SIM_TIER, ssp->uuid, NULL);
		else if (n == 3 && get && strcmp(s[2], "LogicalUnit") == 0) {
			struct pvm_buf b;
			pvm_buf_init(&b);
			struct sim_render_ctx c;
			char prefix[200];
			snprintf(prefix, sizeof(prefix), "rest/api/uom/%s", rt->rel);
			srv_ctx_for(sim, rt, &c, prefix);
			size_t k = 0;
			for (size_t i = 0; i < sim->nobjs; i++) {
				struct sim_obj *lu = sim->objs[i];
				if (lu->kind != SIM_LU || lu_ssp(sim, lu) != ssp)
					continue;
				if (k++ == 0)
					sim_render_feed_open(&b, &c, rt->rel);
				sim_render_entry(sim, &b, &c, lu, true);
			}
			if (!k) {
				pvm_buf_fini(&b);
				o->status = 204;
			} else {
				sim_render_feed_close(&b);
				srv_out_body(o, 200, "application/atom+xml", &b);
			}
		} else
			srv_out_error(o, 405, rt->path, "Method Not Allowed",
			              "Not supported here.");
		return true;
	}
	if (strcmp(s[0], "Tier") == 0) {
		if (n == 1 && get) {
			srv_get_feed(sim, rt, o, SIM_TIER, NULL, NULL);
			return true;
		}
		struct sim_obj *tier = n >= 2 ? sim_obj_find(sim, SIM_TIER, s[1]) : NULL;
		if (!tier) {
			srv_out_error(o, 404, rt->path, "Not Found", "The object does not exist.");
			if (!get)
				snprintf(o->object, sizeof(o->object), "%.40s", n >= 2 ? s[1] : "");
			return true;
		}
		if (n == 2 && get) {
			srv_get_entry(sim, rt, o, tier);
			return true;
		}
		if (n < 3 || strcmp(s[2], "LogicalUnit") != 0) {
			srv_out_error(o, 404, rt->path, "Not Found", "No such resource.");
			return true;
		}
		if (n == 3) {
			if (get)
				srv_get_feed(sim, rt, o, SIM_LU, tier->uuid, NULL);
			else if (put)
				create_lu(sim, rt, o, tier);
			else
				srv_out_error(o, 405, rt->path, "Method Not Allowed",
				              "GET or PUT.");
			return true;
		}
		struct sim_obj *lu = sim_obj_find(sim, SIM_LU, s[3]);
		if (!lu || !uuid_match(lu, tier->uuid)) {
			srv_out_error(o, 404, rt->path, "Not Found", "The object does not exist.");
			if (!get)
				snprintf(o->object, sizeof(o->object), "%.40s", s[3]);
			return true;
		}
		if (n == 4 && get)
			srv_get_entry(sim, rt, o, lu);
		else if (n == 4 && del)
			delete_lu(sim, rt, o, lu);
		else
			srv_out_error(o, 405, rt->path, "Method Not Allowed", "GET or DELETE.");
		return true;
	}
	return false;
}

/* Sub-collections of an object: s[i] names it (VolumeGroup of a VIOS, ClientNetworkAdapter
 * of a partition). Returns false when s[i] is none of them. */
bool sim_sub_route(struct pvm_sim *sim, struct route *rt, struct out *o, struct sim_obj *obj, int i)
{
	char **s = rt->segs;
	int n = rt->nsegs;
	bool get = strcmp(rt->method, "GET") == 0;
	enum sim_kind kind;
	if (obj->kind == SIM_VIOS && strcmp(s[i], "VolumeGroup") == 0)
		kind = SIM_VG;
	else if (obj->kind == SIM_LPAR && strcmp(s[i], "ClientNetworkAdapter") == 0)
		kind = SIM_CNA;
	else
		return false;
	if (n == i + 1) {
		if (get)
			srv_get_feed(sim, rt, o, kind, obj->uuid, NULL);
		else if (strcmp(rt->method, "PUT") == 0 && kind == SIM_CNA)
			create_cna(sim, rt, o, obj);
		else
			srv_out_error(o, 405, rt->path, "Method Not Allowed",
			              "Not supported here.");
		return true;
	}
	struct sim_obj *x = sim_obj_find(sim, kind, s[i + 1]);
	if (!x || !uuid_match(x, obj->uuid) || n != i + 2) {
		srv_out_error(o, 404, rt->path, "Not Found", "The object does not exist.");
		if (!get)
			snprintf(o->object, sizeof(o->object), "%.40s", s[i + 1]);
		return true;
	}
	if (get)
		srv_get_entry(sim, rt, o, x);
	else if (strcmp(rt->method, "POST") == 0 && kind == SIM_VG)
		update_vg(sim, rt, o, x);
	else if (strcmp(rt->method, "DELETE") == 0 && kind == SIM_CNA)
		delete_cna(sim, rt, o, x);
	else
		srv_out_error(o, 405, rt->path, "Method Not Allowed",
		              "Not supported on this object.");
	return true;
}
