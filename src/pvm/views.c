/* views.c: typed views of the PowerVM objects (pvm/pvm_objects.h). One walk over the feed
 * or entry, then per type a fill function that reads the fields it needs from the compact
 * tree. Required fields are few on purpose (what the driver cannot work without); a
 * missing one is an error that names the element and the entry. */
#include "internal.h"

#include "pvm/error.h"
#include "pvm/util.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- values ----------- */

static void v_fail(struct vctx *v, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void v_fail(struct vctx *v, int code, const char *fmt, ...)
{
	if (v->rc)
		return;
	v->rc = code;
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	perr(v->err, code, 0, "%s entry %s: %s", v->type, v->entry ? v->entry : "(no id)", what);
}

const char *v_str(struct vctx *v, const struct xn *n, const char *path, bool required)
{
	const struct xn *x = xn_path(n, path);
	if (x && x->text)
		return x->text;
	if (required)
		v_fail(v, PVM_ECORRUPT, "missing required element %s", path);
	return NULL;
}

int64_t v_int(struct vctx *v, const struct xn *n, const char *path, bool required, int64_t dflt)
{
	const char *s = v_str(v, n, path, required);
	if (!s || !*s)
		return dflt;
	char *end;
	errno = 0;
	long long x = strtoll(s, &end, 10);
	if (errno || *end) {
		v_fail(v, PVM_ECORRUPT, "element %s: not an integer: '%.60s'", path, s);
		return dflt;
	}
	return x;
}

double v_real(struct vctx *v, const struct xn *n, const char *path, bool required, double dflt)
{
	const char *s = v_str(v, n, path, required);
	if (!s || !*s)
		return dflt;
	char *end;
	errno = 0;
	double x = strtod(s, &end);
	if (errno || *end) {
		v_fail(v, PVM_ECORRUPT, "element %s: not a number: '%.60s'", path, s);
		return dflt;
	}
	return x;
}

bool v_bool(struct vctx *v, const struct xn *n, const char *path, bool required, bool dflt)
{
	const char *s = v_str(v, n, path, required);
	if (!s || !*s)
		return dflt;
	if (!strcasecmp(s, "true") || !strcmp(s, "1"))
		return true;
	if (!strcasecmp(s, "false") || !strcmp(s, "0"))
		return false;
	v_fail(v, PVM_ECORRUPT, "element %s: not a boolean: '%.60s'", path, s);
	return dflt;
}

const char *v_link(struct vctx *v, const struct xn *n, const char *path, bool required)
{
	const struct xn *x = xn_path(n, path);
	if (x && x->href)
		return x->href;
	const struct xn *l = x ? xn_child(x, "link") : NULL;
	if (l && l->href)
		return l->href;
	if (required)
		v_fail(v, PVM_ECORRUPT, "missing required link %s", path);
	return NULL;
}

/* Collects the href of every <link> child of n. */
static const char **links(struct vctx *v, const struct xn *n, size_t *count)
{
	*count = 0;
	size_t k = xn_count(n, "link");
	if (!k)
		return NULL;
	const char **out = arena_alloc(v->a, k * sizeof(*out));
	if (!out) {
		v_fail(v, PVM_ENOMEM, "out of memory");
		return NULL;
	}
	for (struct xn *c = n->child; c; c = c->next)
		if (!strcmp(c->name, "link") && c->href)
			out[(*count)++] = c->href;
	return out;
}

/* Allocates an array for the children of n named name. */
static void *array_for(struct vctx *v, const struct xn *n, const char *name, size_t size,
                       size_t *count)
{
	*count = 0;
	size_t k = xn_count(n, name);
	if (!k)
		return NULL;
	void *p = arena_alloc(v->a, k * size);
	if (!p)
		v_fail(v, PVM_ENOMEM, "out of memory");
	return p;
}

/* ---------------------------------------------------------------- walk ------------- */

typedef void (*fill_fn)(struct vctx *v, const struct xn *obj, void *item);

struct walk {
	const char *type; /* object element name expected */
	size_t item_size;
	fill_fn fill;
};

static void meta_fill(struct vctx *v, const struct xn *entry, const struct xn *obj,
                      struct pvm_meta *m, const char *etag_header)
{
	if (entry && entry != obj) {
		m->uuid = xn_text(entry, "id");
		const struct xn *et = xn_child(entry, "etag");
		if (et && et->text && *et->text)
			m->etag = et->text;
		for (const struct xn *l = xn_child(entry, "link"); l; l = xn_next(l, "link"))
			if (l->rel && !strcmp(l->rel, "SELF") && l->href) {
				m->href = l->href;
				break;
			}
	}
	if (!m->uuid)
		m->uuid = xn_text(obj, "Metadata/Atom/AtomID");
	if (!m->etag && etag_header && *etag_header) {
		size_t l = strlen(etag_header);
		if (l >= 2 && etag_header[0] == '"' && etag_header[l - 1] == '"')
			m->etag = arena_strndup(v->a, etag_header + 1, l - 2);
		else
			m->etag = arena_strdup(v->a, etag_header);
	}
	v->entry = m->uuid;
}

/* Parses xml and fills an array of views; items and count go into the caller's list. */
static int walk_doc(const char *xml, size_t len, const char *etag_header, const struct walk *w,
                    struct pvm_arena **arena_out, void **items_out, size_t *count_out,
                    struct pvm_rest_error *err)
{
	*arena_out = NULL;
	*items_out = NULL;
	*count_out = 0;
	struct pvm_arena *a = arena_new();
	if (!a)
		return perr(err, PVM_ENOMEM, 0, "out of memory");
	*arena_out = a;
	size_t i = 0;
	while (i < len && isspace((unsigned char)xml[i]))
		i++;
	if (i == len) /* 204: an empty feed */
		return 0;

	struct xdoc *d = NULL;
	int rc = xml_parse(xml, len, 0, false, a, &d, err);
	if (rc)
		return rc;
	const struct xn *root = d->root;
	bool feed = root->ns == XNS_ATOM && !strcmp(root->name, "feed");
	size_t n = feed ? xn_count(root, "entry") : 1;
	struct vctx v = {.a = a, .type = w->type, .err = err};
	char *items = n ? arena_alloc(a, n * w->item_size) : NULL;
	if (n && !items) {
		xml_free(d);
		return perr(err, PVM_ENOMEM, 0, "out of memory");
	}
	size_t k = 0;
	const struct xn *entry = feed ? xn_child(root, "entry") : root;
	for (; entry && !v.rc; entry = feed ? xn_next(entry, "entry") : NULL) {
		const struct xn *obj = xn_entry_object(entry);
		const char *eid = entry != obj ? xn_text(entry, "id") : NULL;
		if (!obj) {
			v.rc = perr(err, PVM_ECORRUPT, 0,
			            "%s entry %s: missing required element content", w->type,
			            eid ? eid : "(no id)");
			break;
		}
		if (strcmp(obj->name, w->type)) {
			v.rc = perr(err, PVM_ECORRUPT, 0, "entry %s: expected %s, found %s",
			            eid ? eid : "(no id)", w->type, obj->name);
			break;
		}
		void *item = items + k * w->item_size;
		meta_fill(&v, entry, obj, item, etag_header);
		w->fill(&v, obj, item);
		k++;
	}
	xml_free(d);
	if (v.rc)
		return v.rc;
	*items_out = items;
	*count_out = k;
	return 0;
}

#define DEFINE_RESULT(tag, type, objname, fillfn)                                                  \
	int pvm_parse_##tag(const char *xml, size_t len, const char *etag_header,                  \
	                    struct pvm_##tag##_list **out, struct pvm_rest_error *err)             \
	{                                                                                          \
		static const struct walk w = {objname, sizeof(type), fillfn};                      \
		*out = NULL;                                                                       \
		struct pvm_##tag##_list *l = calloc(1, sizeof(*l));                                \
		if (!l)                                                                            \
			return perr(err, PVM_ENOMEM, 0, "out of memory");                          \
		void *items = NULL;                                                                \
		int rc = walk_doc(xml ? xml : "", xml ? len : 0, etag_header, &w, &l->arena_,      \
		                  &items, &l->count, err);                                         \
		if (rc) {                                                                          \
			pvm_##tag##_list_free(l);                                                  \
			return rc;                                                                 \
		}                                                                                  \
		l->items = items;                                                                  \
		*out = l;                                                                          \
		return 0;                                                                          \
	}                                                                                          \
	void pvm_##tag##_list_free(struct pvm_##tag##_list *l)                                     \
	{                                                                                          \
		if (!l)                                                                            \
			return;                                                                    \
		arena_free(l->arena_);                                                             \
		free(l);                                                                           \
	}

/* ---------------------------------------------------------------- ManagedSystem ---- */

static void fill_ms(struct vctx *v, const struct xn *o, void *item)
{
	struct pvm_managed_system *m = item;
	m->name = v_str(v, o, "SystemName", true);
	m->ip_address = v_str(v, o, "PrimaryIPAddress", false);
	const struct xn *mtms = xn_child(o, "MachineTypeModelAndSerialNumber");
	m->machine_type = v_str(v, mtms, "MachineType", true);
	m->model = v_str(v, mtms, "Model", true);
	m->serial = v_str(v, mtms, "SerialNumber", true);
	if (m->machine_type && m->model && m->serial) {
		size_t l = strlen(m->machine_type) + strlen(m->model) + strlen(m->serial) + 3;
		char *s = arena_alloc(v->a, l);
		if (s)
			snprintf(s, l, "%s-%s*%s", m->machine_type, m->model, m->serial);
		m->mtms = s;
	}
	m->state = v_str(v, o, "State", false);
	const struct xn *mem = xn_child(o, "AssociatedSystemMemoryConfiguration");
	m->memory_configurable_mb = v_int(v, mem, "ConfigurableSystemMemory", true, -1);
	m->memory_available_mb = v_int(v, mem, "CurrentAvailableSystemMemory", true, -1);
	m->memory_region_mb = v_int(v, mem, "MemoryRegionSize", false, -1);
	const struct xn *proc = xn_child(o, "AssociatedSystemProcessorConfiguration");
	m->proc_units_configurable = v_real(v, proc, "ConfigurableSystemProcessorUnits", true, 0);
	m->proc_units_available = v_real(v, proc, "CurrentAvailableSystemProcessorUnits", true, 0);
	size_t k = 0;
	const char *cm = "SupportedPartitionProcessorCompatibilityModes";
	for (const struct xn *c = xn_child(proc, cm); c; c = xn_next(c, cm))
		k++;
	if (k) {
		m->compat_modes = arena_alloc(v->a, k * sizeof(char *));
		if (m->compat_modes)
			for (const struct xn *c = xn_child(proc, cm); c; c = xn_next(c, cm))
				if (c->text)
					m->compat_modes[m->n_compat_modes++] = c->text;
	}
	const struct xn *caps = xn_child(o, "AssociatedSystemCapabilities");
	m->active_migration_capable =
	        v_bool(v, caps, "ActiveLogicalPartitionMobilityCapable", false, false);
	m->inactive_migration_capable =
	        v_bool(v, caps, "InactiveLogicalPartitionMobilityCapable", false, false);
	const struct xn *mig = xn_child(o, "SystemMigrationInformation");
	m->max_active_migrations = v_int(v, mig, "MaximumActiveMigrations", false, -1);
	m->max_inactive_migrations = v_int(v, mig, "MaximumInactiveMigrations", false, -1);
	m->active_migrations_in_progress =
	        v_int(v, mig, "NumberOfActiveMigrationsInProgress", false, -1);
	m->inactive_migrations_in_progress =
	        v_int(v, mig, "NumberOfInactiveMigrationsInProgress", false, -1);
}
DEFINE_RESULT(managed_system, struct pvm_managed_system, "ManagedSystem", fill_ms)

long pvm_managed_system_find(const struct pvm_managed_system_list *l, const char *which)
{
	if (!l)
		return -1;
	if (!which || !*which)
		return l->count == 1 ? 0 : -1;
	for (size_t i = 0; i < l->count; i++) {
		const struct pvm_managed_system *m = &l->items[i];
		if ((m->name && !strcmp(m->name, which)) || (m->mtms && !strcmp(m->mtms, which)) ||
		    (m->meta.uuid && !strcasecmp(m->meta.uuid, which)))
			return (long)i;
	}
	return -1;
}

/* ---------------------------------------------------------------- partitions ------- */

static void fill_lpar_fields(struct vctx *v, const struct xn *o, struct pvm_lpar *p)
{
	p->name = v_str(v, o, "PartitionName", true);
	p->id = v_int(v, o, "PartitionID", true, -1);
	p->uuid = v_str(v, o, "PartitionUUID", false);
	if (!p->uuid)
		p->uuid = p->meta.uuid;
	p->state = v_str(v, o, "PartitionState", true);
	p->type = v_str(v, o, "PartitionType", false);
	const struct xn *mem = xn_child(o, "PartitionMemoryConfiguration");
	p->memory_mb = v_int(v, mem, "DesiredMemory", false, -1);
	p->memory_min_mb = v_int(v, mem, "MinimumMemory", false, -1);
	p->memory_max_mb = v_int(v, mem, "MaximumMemory", false, -1);
	p->memory_current_mb = v_int(v, mem, "CurrentMemory", false, -1);
	const struct xn *pc = xn_child(o, "PartitionProcessorConfiguration");
	p->dedicated_procs = v_bool(v, pc, "HasDedicatedProcessors", false, false);
	p->sharing_mode = v_str(v, pc, "SharingMode", false);
	const struct xn *sh = xn_child(pc, "SharedProcessorConfiguration");
	const struct xn *de = xn_child(pc, "DedicatedProcessorConfiguration");
	if (sh && !p->dedicated_procs) {
		p->vcpus = v_int(v, sh, "DesiredVirtualProcessors", false, -1);
		p->vcpus_min = v_int(v, sh, "MinimumVirtualProcessors", false, -1);
		p->vcpus_max = v_int(v, sh, "MaximumVirtualProcessors", false, -1);
		p->proc_units = v_real(v, sh, "DesiredProcessingUnits", false, 0);
		p->proc_units_min = v_real(v, sh, "MinimumProcessingUnits", false, 0);
		p->proc_units_max = v_real(v, sh, "MaximumProcessingUnits", false, 0);
		p->uncapped_weight = v_int(v, sh, "UncappedWeight", false, -1);
	} else {
		p->vcpus = v_int(v, de, "DesiredProcessors", false, -1);
		p->vcpus_min = v_int(v, de, "MinimumProcessors", false, -1);
		p->vcpus_max = v_int(v, de, "MaximumProcessors", false, -1);
		p->uncapped_weight = -1;
	}
	p->rmc_state = v_str(v, o, "ResourceMonitoringControlState", false);
	p->migration_state = v_str(v, o, "MigrationState", false);
	p->is_mgmt = v_bool(v, o, "IsManagementPartition", false, false);
	p->compat_mode = v_str(v, o, "CurrentProcessorCompatibilityMode", false);
	p->os_version = v_str(v, o, "OperatingSystemVersion", false);
}

static void fill_lpar(struct vctx *v, const struct xn *o, void *item)
{
	fill_lpar_fields(v, o, item);
}
DEFINE_RESULT(lpar, struct pvm_lpar, "LogicalPartition", fill_lpar)

/* ---------------------------------------------------------------- storage ---------- */

static void fill_pv(struct vctx *v, const struct xn *o, struct pvm_pv *pv)
{
	pv->name = v_str(v, o, "VolumeName", true);
	pv->udid = v_str(v, o, "UniqueDeviceID", false);
	pv->capacity_mb = v_int(v, o, "VolumeCapacity", false, -1);
	pv->description = v_str(v, o, "Description", false);
	pv->fc_backed = v_bool(v, o, "IsFibreChannelBacked", false, false);
}

static struct pvm_pv *fill_pvs(struct vctx *v, const struct xn *pvs, size_t *n)
{
	struct pvm_pv *a = array_for(v, pvs, "PhysicalVolume", sizeof(*a), n);
	if (a)
		for (const struct xn *c = xn_child(pvs, "PhysicalVolume"); c;
		     c = xn_next(c, "PhysicalVolume"))
			fill_pv(v, c, &a[(*n)++]);
	return a;
}

static void fill_vdisk(struct vctx *v, const struct xn *o, struct pvm_vdisk *d)
{
	d->name = v_str(v, o, "DiskName", true);
	d->capacity_gb = v_real(v, o, "DiskCapacity", false, 0);
	d->label = v_str(v, o, "DiskLabel", false);
	d->udid = v_str(v, o, "UniqueDeviceID", false);
}

static void fill_vopt(struct vctx *v, const struct xn *o, struct pvm_vopt *m)
{
	m->name = v_str(v, o, "MediaName", true);
	m->udid = v_str(v, o, "MediaUDID", false);
	m->mount_type = v_str(v, o, "MountType", false);
	m->size_gb = v_real(v, o, "Size", false, 0);
}

/* VirtualMediaRepository into the media fields of g. */
static void fill_repo(struct vctx *v, const struct xn *r, struct pvm_volume_group *g)
{
	g->has_media_repo = true;
	g->media_repo_name = v_str(v, r, "RepositoryName", false);
	g->media_repo_size_gb = v_real(v, r, "RepositorySize", false, 0);
	const struct xn *om = xn_child(r, "OpticalMedia");
	g->media = array_for(v, om, "VirtualOpticalMedia", sizeof(*g->media), &g->n_media);
	if (g->media)
		for (const struct xn *c = xn_child(om, "VirtualOpticalMedia"); c;
		     c = xn_next(c, "VirtualOpticalMedia"))
			fill_vopt(v, c, &g->media[g->n_media++]);
}

static void fill_vg(struct vctx *v, const struct xn *o, void *item)
{
	struct pvm_volume_group *g = item;
	g->name = v_str(v, o, "GroupName", true);
	g->capacity_gb = v_real(v, o, "GroupCapacity", false, 0);
	g->available_gb = v_real(v, o, "AvailableSize", false, 0);
	g->free_gb = v_real(v, o, "FreeSpace", false, 0);
	g->serial_id = v_str(v, o, "GroupSerialID", false);
	g->udid = v_str(v, o, "UniqueDeviceID", false);
	const struct xn *vds = xn_child(o, "VirtualDisks");
	g->vdisks = array_for(v, vds, "VirtualDisk", sizeof(*g->vdisks), &g->n_vdisks);
	if (g->vdisks)
		for (const struct xn *c = xn_child(vds, "VirtualDisk"); c;
		     c = xn_next(c, "VirtualDisk"))
			fill_vdisk(v, c, &g->vdisks[g->n_vdisks++]);
	const struct xn *repo = xn_path(o, "MediaRepositories/VirtualMediaRepository");
	if (repo)
		fill_repo(v, repo, g);
	g->pvs = fill_pvs(v, xn_child(o, "PhysicalVolumes"), &g->n_pvs);
}
DEFINE_RESULT(volume_group, struct pvm_volume_group, "VolumeGroup", fill_vg)

static void fill_lu_fields(struct vctx *v, const struct xn *o, struct pvm_logical_unit *lu)
{
	lu->name = v_str(v, o, "UnitName", true);
	lu->udid = v_str(v, o, "UniqueDeviceID", false);
	lu->capacity_gb = v_real(v, o, "UnitCapacity", false, 0);
	lu->lu_type = v_str(v, o, "LogicalUnitType", false);
	lu->thin = v_bool(v, o, "ThinDevice", false, false);
	lu->in_use = v_bool(v, o, "InUse", false, false);
	lu->cloned_from = v_str(v, o, "ClonedFrom", false);
}

static void fill_lu(struct vctx *v, const struct xn *o, void *item)
{
	fill_lu_fields(v, o, item);
}
DEFINE_RESULT(logical_unit, struct pvm_logical_unit, "LogicalUnit", fill_lu)

static void fill_ssp(struct vctx *v, const struct xn *o, void *item)
{
	struct pvm_ssp *s = item;
	s->name = v_str(v, o, "StoragePoolName", true);
	s->udid = v_str(v, o, "UniqueDeviceID", false);
	s->capacity_gb = v_real(v, o, "Capacity", false, 0);
	s->free_gb = v_real(v, o, "FreeSpace", false, 0);
	s->over_commit_gb = v_real(v, o, "OverCommitSpace", false, 0);
	s->total_lu_size_gb = v_real(v, o, "TotalLogicalUnitSize", false, 0);
	const struct xn *lus = xn_child(o, "LogicalUnits");
	s->lus = array_for(v, lus, "LogicalUnit", sizeof(*s->lus), &s->n_lus);
	if (s->lus)
		for (const struct xn *c = xn_child(lus, "LogicalUnit"); c;
		     c = xn_next(c, "LogicalUnit"))
			fill_lu_fields(v, c, &s->lus[s->n_lus++]);
	s->pvs = fill_pvs(v, xn_child(o, "PhysicalVolumes"), &s->n_pvs);
}
DEFINE_RESULT(ssp, struct pvm_ssp, "SharedStoragePool", fill_ssp)

static void fill_tier(struct vctx *v, const struct xn *o, void *item)
{
	struct pvm_tier *t = item;
	t->name = v_str(v, o, "Name", true);
	t->udid = v_str(v, o, "UniqueDeviceID", false);
	t->tier_type = v_str(v, o, "Type", false);
	t->is_default = v_bool(v, o, "IsDefault", false, false);
	t->capacity_gb = v_real(v, o, "Capacity", false, 0);
	t->ssp_href = v_link(v, o, "AssociatedSharedStoragePool", false);
}
DEFINE_RESULT(tier, struct pvm_tier, "Tier", fill_tier)

/* ---------------------------------------------------------------- VIOS ------------- */

static void fill_adapter(struct vctx *v, const struct xn *o, struct pvm_vadapter *ad)
{
	ad->type = v_str(v, o, "AdapterType", false);
	ad->lpar_id = v_int(v, o, "LocalPartitionID", false, -1);
	ad->slot = v_int(v, o, "VirtualSlotNumber", false, -1);
	ad->remote_lpar_id = v_int(v, o, "RemoteLogicalPartitionID", false, -1);
	ad->remote_slot = v_int(v, o, "RemoteSlotNumber", false, -1);
	ad->name = v_str(v, o, "AdapterName", false);
	ad->location = v_str(v, o, "LocationCode", false);
	ad->udid = v_str(v, o, "UniqueDeviceID", false);
	ad->wwpns = v_str(v, o, "WWPNs", false);
	ad->backing = v_str(v, o, "BackingDeviceName", false);
}

static void fill_scsi(struct vctx *v, const struct xn *o, struct pvm_vscsi_mapping *m)
{
	m->lpar_href = v_link(v, o, "AssociatedLogicalPartition", false);
	const struct xn *ca = xn_child(o, "ClientAdapter");
	const struct xn *sa = xn_child(o, "ServerAdapter");
	if ((m->has_client = ca != NULL))
		fill_adapter(v, ca, &m->client);
	if ((m->has_server = sa != NULL))
		fill_adapter(v, sa, &m->server);
	const struct xn *st = xn_child(o, "Storage");
	const struct xn *s = st ? st->child : NULL;
	while (s && !strcmp(s->name, "Metadata"))
		s = s->next;
	if (s) {
		if (!strcmp(s->name, "VirtualDisk")) {
			m->storage_kind = PVM_STORAGE_VDISK;
			m->storage_name = v_str(v, s, "DiskName", false);
		} else if (!strcmp(s->name, "PhysicalVolume")) {
			m->storage_kind = PVM_STORAGE_PV;
			m->storage_name = v_str(v, s, "VolumeName", false);
		} else if (!strcmp(s->name, "LogicalUnit")) {
			m->storage_kind = PVM_STORAGE_LU;
			m->storage_name = v_str(v, s, "UnitName", false);
		} else if (!strcmp(s->name, "VirtualOpticalMedia")) {
			m->storage_kind = PVM_STORAGE_VOPT;
			m->storage_name = v_str(v, s, "MediaName", false);
		}
		m->storage_udid = v_str(v, s, "UniqueDeviceID", false);
		if (!m->storage_udid && m->storage_kind == PVM_STORAGE_VOPT)
			m->storage_udid = v_str(v, s, "MediaUDID", false); /* media have no UDID */
	}
	const struct xn *td = xn_child(o, "TargetDevice");
	for (const struct xn *c = td ? td->child : NULL; c; c = c->next)
		if (xn_child(c, "TargetName")) {
			m->target_name = xn_text(c, "TargetName");
			break;
		}
}

static void fill_vfc(struct vctx *v, const struct xn *o, struct pvm_vfc_mapping *m)
{
	m->lpar_href = v_link(v, o, "AssociatedLogicalPartition", false);
	const struct xn *ca = xn_child(o, "ClientAdapter");
	const struct xn *sa = xn_child(o, "ServerAdapter");
	if ((m->has_client = ca != NULL))
		fill_adapter(v, ca, &m->client);
	if ((m->has_server = sa != NULL))
		fill_adapter(v, sa, &m->server);
	const struct xn *port = xn_child(o, "Port");
	m->port_name = v_str(v, port, "PortName", false);
	m->port_wwpn = v_str(v, port, "WWPN", false);
}

struct fc_collect {
	struct vctx *v;
	struct pvm_vios *vios;
	size_t cap;
	bool count_only;
};

static void fc_port_cb(const struct xn *n, void *arg)
{
	struct fc_collect *fc = arg;
	if (fc->count_only) {
		fc->cap++;
		return;
	}
	if (fc->vios->n_fc_ports >= fc->cap)
		return;
	struct pvm_fc_port *p = &fc->vios->fc_ports[fc->vios->n_fc_ports++];
	p->name = v_str(fc->v, n, "PortName", true);
	p->wwpn = v_str(fc->v, n, "WWPN", false);
	p->location = v_str(fc->v, n, "LocationCode", false);
	p->udid = v_str(fc->v, n, "UniqueDeviceID", false);
	p->available_ports = v_int(fc->v, n, "AvailablePorts", false, -1);
	p->total_ports = v_int(fc->v, n, "TotalPorts", false, -1);
}

static void fill_vios(struct vctx *v, const struct xn *o, void *item)
{
	struct pvm_vios *x = item;
	fill_lpar_fields(v, o, &x->lpar);
	x->vg_hrefs = links(v, xn_child(o, "StoragePools"), &x->n_vg_hrefs);
	const struct xn *repos = xn_child(o, "MediaRepositories");
	x->media_repos = array_for(v, repos, "VirtualMediaRepository", sizeof(*x->media_repos),
	                           &x->n_media_repos);
	if (x->media_repos)
		for (const struct xn *c = xn_child(repos, "VirtualMediaRepository"); c;
		     c = xn_next(c, "VirtualMediaRepository")) {
			struct pvm_volume_group *g = &x->media_repos[x->n_media_repos++];
			fill_repo(v, c, g);
			g->name = g->media_repo_name;
		}
	x->pvs = fill_pvs(v, xn_child(o, "PhysicalVolumes"), &x->n_pvs);
	const struct xn *sm = xn_child(o, "VirtualSCSIMappings");
	x->scsi_mappings = array_for(v, sm, "VirtualSCSIMapping", sizeof(*x->scsi_mappings),
	                             &x->n_scsi_mappings);
	if (x->scsi_mappings)
		for (const struct xn *c = xn_child(sm, "VirtualSCSIMapping"); c;
		     c = xn_next(c, "VirtualSCSIMapping"))
			fill_scsi(v, c, &x->scsi_mappings[x->n_scsi_mappings++]);
	const struct xn *fm = xn_child(o, "VirtualFibreChannelMappings");
	x->vfc_mappings = array_for(v, fm, "VirtualFibreChannelMapping", sizeof(*x->vfc_mappings),
	                            &x->n_vfc_mappings);
	if (x->vfc_mappings)
		for (const struct xn *c = xn_child(fm, "VirtualFibreChannelMapping"); c;
		     c = xn_next(c, "VirtualFibreChannelMapping"))
			fill_vfc(v, c, &x->vfc_mappings[x->n_vfc_mappings++]);
	struct fc_collect fc = {.v = v, .vios = x, .count_only = true};
	xn_find_all(o, "PhysicalFibreChannelPort", fc_port_cb, &fc);
	if (fc.cap) {
		x->fc_ports = arena_alloc(v->a, fc.cap * sizeof(*x->fc_ports));
		if (x->fc_ports) {
			fc.count_only = false;
			xn_find_all(o, "PhysicalFibreChannelPort", fc_port_cb, &fc);
		}
	}
}
DEFINE_RESULT(vios, struct pvm_vios, "VirtualIOServer", fill_vios)

/* ---------------------------------------------------------------- network ---------- */

static void fill_cna(struct vctx *v, const struct xn *o, void *item)
{
	struct pvm_cna *c = item;
	c->mac = v_str(v, o, "MACAddress", true);
	c->pvid = v_int(v, o, "PortVLANID", true, -1);
	c->slot = v_int(v, o, "VirtualSlotNumber", false, -1);
	c->lpar_id = v_int(v, o, "LocalPartitionID", false, -1);
	c->tagged_vlans = v_str(v, o, "TaggedVLANIDs", false);
	c->tagged_vlan_supported = v_bool(v, o, "TaggedVLANSupported", false, false);
	c->enabled = v_bool(v, o, "Enabled", false, true);
	c->vswitch_href = v_link(v, o, "AssociatedVirtualSwitch", false);
	c->vswitch_id = v_int(v, o, "VirtualSwitchID", false, -1);
	c->location = v_str(v, o, "LocationCode", false);
}
DEFINE_RESULT(cna, struct pvm_cna, "ClientNetworkAdapter", fill_cna)

static void fill_vswitch(struct vctx *v, const struct xn *o, void *item)
{
	struct pvm_vswitch *s = item;
	s->name = v_str(v, o, "SwitchName", true);
	s->id = v_int(v, o, "SwitchID", false, -1);
	s->mode = v_str(v, o, "SwitchMode", false);
	s->network_hrefs = links(v, xn_child(o, "VirtualNetworks"), &s->n_network_hrefs);
}
DEFINE_RESULT(vswitch, struct pvm_vswitch, "VirtualSwitch", fill_vswitch)

/* ---------------------------------------------------------------- events, files ---- */

static enum pvm_event_kind event_kind(const char *t)
{
	static const struct {
		const char *name;
		enum pvm_event_kind kind;
	} map[] = {
	        {"ADD_URI", PVM_EVENT_ADD},           {"MODIFY_URI", PVM_EVENT_MODIFY},
	        {"DELETE_URI", PVM_EVENT_DELETE},     {"INVALID_URI", PVM_EVENT_INVALID},
	        {"NEW_CLIENT", PVM_EVENT_RESYNC},     {"CACHE_CLEARED", PVM_EVENT_RESYNC},
	        {"MISSING_EVENTS", PVM_EVENT_RESYNC}, {"CUSTOM_CLIENT_EVENT", PVM_EVENT_CUSTOM},
	};
	for (size_t i = 0; t && i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(map[i].name, t))
			return map[i].kind;
	return PVM_EVENT_OTHER;
}

static void fill_event(struct vctx *v, const struct xn *o, void *item)
{
	struct pvm_event_view *e = item;
	e->ev.type = v_str(v, o, "EventType", true);
	e->ev.kind = event_kind(e->ev.type);
	e->ev.id = v_str(v, o, "EventID", true);
	e->ev.data = v_str(v, o, "EventData", false);
	e->ev.detail = v_str(v, o, "EventDetail", false);
	if (!e->ev.data)
		e->ev.data = "";
	if (!e->ev.detail)
		e->ev.detail = "";
}
DEFINE_RESULT(event, struct pvm_event_view, "Event", fill_event)

static void fill_file(struct vctx *v, const struct xn *o, void *item)
{
	struct pvm_file *f = item;
	f->name = v_str(v, o, "Filename", true);
	f->file_uuid = v_str(v, o, "FileUUID", false);
	f->media_type = v_str(v, o, "InternetMediaType", false);
	f->enum_type = v_str(v, o, "FileEnumType", false);
	f->expected_size = v_int(v, o, "ExpectedFileSizeInBytes", false, -1);
	f->current_size = v_int(v, o, "CurrentFileSizeInBytes", false, -1);
	f->target_vios_uuid = v_str(v, o, "TargetVirtualIOServerUUID", false);
	f->target_udid = v_str(v, o, "TargetDeviceUniqueDeviceID", false);
}
DEFINE_RESULT(file, struct pvm_file, "File", fill_file)

/* ---------------------------------------------------------------- jobs ------------- */

static const char *const job_status_names[] = {
        "NOT_STARTED",
        "RUNNING",
        "COMPLETED_OK",
        "COMPLETED_WITH_WARNINGS",
        "COMPLETED_WITH_ERROR",
        "FAILED_BEFORE_COMPLETION",
        "UNKNOWN",
};

const char *pvm_job_status_name(enum pvm_job_status s)
{
	return (unsigned)s <= PVM_JOB_STATUS_UNKNOWN ? job_status_names[s] : "UNKNOWN";
}

enum pvm_job_status pvm_job_status_parse(const char *s)
{
	for (int i = 0; s && i < PVM_JOB_STATUS_UNKNOWN; i++)
		if (!strcmp(job_status_names[i], s))
			return (enum pvm_job_status)i;
	return PVM_JOB_STATUS_UNKNOWN;
}

bool pvm_job_status_terminal(enum pvm_job_status s)
{
	return s >= PVM_JOB_COMPLETED_OK && s <= PVM_JOB_FAILED_BEFORE_COMPLETION;
}

static void fill_job(struct vctx *v, const struct xn *o, void *item)
{
	struct pvm_job *j = item;
	j->job_id = v_str(v, o, "JobID", true);
	j->status_name = v_str(v, o, "Status", true);
	j->status = pvm_job_status_parse(j->status_name);
	j->time_started = v_int(v, o, "TimeStarted", false, -1);
	j->time_completed = v_int(v, o, "TimeCompleted", false, -1);
	j->progress = v_real(v, o, "Progress/LinearProgress", false, -1);
	j->operation = v_str(v, o, "JobRequestInstance/RequestedOperation/OperationName", false);
	j->group = v_str(v, o, "JobRequestInstance/RequestedOperation/GroupName", false);
	j->target_uuid = v_str(v, o, "TargetUuid", false);
	const struct xn *ru = xn_child(o, "RequestURL");
	j->request_url = ru ? ru->href : NULL;
	j->exception_message = v_str(v, o, "ResponseException/Message", false);
	const struct xn *res = xn_child(o, "Results");
	j->results = array_for(v, res, "JobParameter", sizeof(*j->results), &j->n_results);
	if (j->results)
		for (const struct xn *c = xn_child(res, "JobParameter"); c;
		     c = xn_next(c, "JobParameter")) {
			struct pvm_job_param *p = &j->results[j->n_results++];
			p->name = v_str(v, c, "ParameterName", true);
			p->value = v_str(v, c, "ParameterValue", false);
			if (p->name && !strcmp(p->name, "result"))
				j->result_message = p->value;
		}
}

int pvm_parse_job(const char *xml, size_t len, struct pvm_job **out, struct pvm_rest_error *err)
{
	static const struct walk w = {"JobResponse", sizeof(struct pvm_job), fill_job};
	*out = NULL;
	struct pvm_arena *a = NULL;
	void *items = NULL;
	size_t n = 0;
	int rc = walk_doc(xml ? xml : "", xml ? len : 0, NULL, &w, &a, &items, &n, err);
	if (!rc && n != 1)
		rc = perr(err, PVM_ECORRUPT, 0, "JobResponse: expected one entry, found %zu", n);
	if (rc) {
		arena_free(a);
		return rc;
	}
	struct pvm_job *j = items;
	j->arena_ = a;
	*out = j;
	return 0;
}

void pvm_job_free(struct pvm_job *j)
{
	if (j)
		arena_free(j->arena_); /* j lives in its own arena */
}

/* ---------------------------------------------------------------- web singletons --- */

static int parse_web(const char *xml, size_t len, const char *type, struct xdoc **d,
                     const struct xn **obj, struct pvm_rest_error *err)
{
	int rc = xml_parse(xml ? xml : "", xml ? len : 0, 0, false, NULL, d, err);
	if (rc)
		return rc;
	*obj = xn_entry_object((*d)->root);
	if (!*obj || strcmp((*obj)->name, type)) {
		xml_free(*d);
		*d = NULL;
		return perr(err, PVM_ECORRUPT, 0, "expected %s", type);
	}
	return 0;
}

int pvm_parse_http_error(const char *xml, size_t len, struct pvm_rest_error *err)
{
	struct xdoc *d = NULL;
	const struct xn *o = NULL;
	struct pvm_rest_error tmp;
	int rc = parse_web(xml, len, "HttpErrorResponse", &d, &o, &tmp);
	if (rc)
		return rc;
	if (err) {
		const char *s = xn_text(o, "HTTPStatus");
		if (s && *s)
			err->http_status = atoi(s);
		snprintf(err->reason, sizeof(err->reason), "%s", xn_text(o, "ReasonCode") ?: "");
		snprintf(err->message, sizeof(err->message), "%s", xn_text(o, "Message") ?: "");
		const char *uri = xn_text(o, "RequestURI");
		if (uri && *uri)
			snprintf(err->uri, sizeof(err->uri), "%s", uri);
	}
	xml_free(d);
	return 0;
}

int pvm_parse_logon(const char *xml, size_t len, char *token, size_t tn, char *file, size_t fn,
                    struct pvm_rest_error *err)
{
	struct xdoc *d = NULL;
	const struct xn *o = NULL;
	int rc = parse_web(xml, len, "LogonResponse", &d, &o, err);
	if (rc)
		return rc;
	const char *t = xn_text(o, "X-API-Session");
	const char *f = xn_text(o, "X-API-SessionFile");
	if (token && tn)
		token[0] = '\0';
	if (file && fn)
		file[0] = '\0';
	if ((!t || !*t) && (!f || !*f))
		rc = perr(err, PVM_ECORRUPT, 0,
		          "LogonResponse: missing required element X-API-Session");
	else if (t && *t && token && pvm_strlcpy(token, t, tn))
		rc = perr(err, PVM_ETOOBIG, 0, "LogonResponse: session token too long");
	else if (f && *f && file && pvm_strlcpy(file, f, fn))
		rc = perr(err, PVM_ETOOBIG, 0, "LogonResponse: token file path too long");
	xml_free(d);
	return rc;
}
