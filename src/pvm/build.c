/* build.c: request bodies in schema order (pvm/pvm_objects.h). New objects are written
 * element by element in the order the captured server responses show; changed objects
 * (partition update, volume group disks, VIOS mappings) are parsed with their attributes,
 * edited in the compact tree and written back whole, as PowerVM expects on POST. */
#include "internal.h"

#include "pvm/error.h"
#include "pvm/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define META_EMPTY "<Metadata><Atom/></Metadata>"
#define K2_NS      "http://www.w3.org/XML/1998/namespace/k2"

static void open_obj(struct pvm_buf *b, const char *type, const char *ns)
{
	pvm_buf_printf(
	        b, "<%s:%s xmlns:%s=\"%s\" xmlns=\"%s\" xmlns:ns2=\"%s\" schemaVersion=\"V1_0\">",
	        type, type, type, ns, ns, K2_NS);
}

static void close_obj(struct pvm_buf *b, const char *type)
{
	pvm_buf_printf(b, "</%s:%s>", type, type);
}

static void el(struct pvm_buf *b, const char *name, const char *val)
{
	pvm_buf_printf(b, "<%s>", name);
	pvm_buf_xml(b, val);
	pvm_buf_printf(b, "</%s>", name);
}

static void eli(struct pvm_buf *b, const char *name, long long v)
{
	pvm_buf_printf(b, "<%s>%lld</%s>", name, v, name);
}

static void elf(struct pvm_buf *b, const char *name, double v)
{
	pvm_buf_printf(b, "<%s>%.2f</%s>", name, v, name);
}

static void elg(struct pvm_buf *b, const char *name, double v)
{
	pvm_buf_printf(b, "<%s>%.6g</%s>", name, v, name);
}

static void elb(struct pvm_buf *b, const char *name, bool v)
{
	pvm_buf_printf(b, "<%s>%s</%s>", name, v ? "true" : "false", name);
}

static void sub_open(struct pvm_buf *b, const char *name)
{
	pvm_buf_printf(b, "<%s schemaVersion=\"V1_0\">" META_EMPTY, name);
}

static char *finish(struct pvm_buf *b, struct pvm_rest_error *err)
{
	char *s = pvm_buf_take(b);
	if (!s)
		perr(err, PVM_ENOMEM, 0, "out of memory");
	return s;
}

/* ---------------------------------------------------------------- partitions ------- */

int pvm_lpar_uuid_from_instance(const char *instance_uuid, char out[37])
{
	if (!instance_uuid || !pvm_is_uuid(instance_uuid))
		return PVM_EINVAL;
	for (int i = 0; i < 36; i++)
		out[i] = (char)toupper((unsigned char)instance_uuid[i]);
	out[36] = '\0';
	int d = isdigit((unsigned char)out[0]) ? out[0] - '0' : out[0] - 'A' + 10;
	d &= 0x7;
	out[0] = "0123456789ABCDEF"[d];
	return 0;
}

struct lpar_num {
	int64_t mem, mem_min, mem_max, vcpus, vcpus_min, vcpus_max, weight;
	double pu, pu_min, pu_max;
};

static double default_units(int64_t vcpus)
{
	double u = (double)vcpus * 0.1;
	return u < 0.05 ? 0.05 : u;
}

static int lpar_check(const struct pvm_lpar_spec *s, struct lpar_num *n, bool create,
                      struct pvm_rest_error *err)
{
	if (create && (!s->name || !*s->name))
		return perr(err, PVM_EINVAL, 0, "partition name is required");
	if (s->name && strlen(s->name) > 31)
		return perr(err, PVM_EINVAL, 0, "partition name '%s' is longer than 31 characters",
		            s->name);
	if (create && (s->memory_mb <= 0 || s->vcpus <= 0))
		return perr(err, PVM_EINVAL, 0, "memory_mb and vcpus must be positive");
	if (s->uuid && !pvm_is_uuid(s->uuid))
		return perr(err, PVM_EINVAL, 0, "partition uuid '%s' is not a UUID", s->uuid);
	n->mem = s->memory_mb;
	n->mem_min = s->memory_min_mb ? s->memory_min_mb : s->memory_mb;
	n->mem_max = s->memory_max_mb ? s->memory_max_mb : s->memory_mb;
	n->vcpus = s->vcpus;
	n->vcpus_min = s->vcpus_min ? s->vcpus_min : s->vcpus;
	n->vcpus_max = s->vcpus_max ? s->vcpus_max : s->vcpus;
	n->pu = s->proc_units > 0 ? s->proc_units : default_units(s->vcpus);
	n->pu_min = s->proc_units_min > 0 ? s->proc_units_min : default_units(n->vcpus_min);
	n->pu_max = s->proc_units_max > 0 ? s->proc_units_max : default_units(n->vcpus_max);
	n->weight = s->uncapped_weight ? s->uncapped_weight : 64;
	if (n->mem_min > n->mem || n->mem > n->mem_max || n->vcpus_min > n->vcpus ||
	    n->vcpus > n->vcpus_max)
		return perr(err, PVM_EINVAL, 0, "minimum <= desired <= maximum does not hold");
	return 0;
}

char *pvm_build_lpar_create(const struct pvm_lpar_spec *s, struct pvm_rest_error *err)
{
	struct lpar_num n;
	if (lpar_check(s, &n, true, err))
		return NULL;
	struct pvm_buf b;
	pvm_buf_init(&b);
	open_obj(&b, "LogicalPartition", NS_UOM);
	if (s->uuid) {
		char up[37];
		for (int i = 0; i < 37; i++)
			up[i] = (char)toupper((unsigned char)s->uuid[i]);
		pvm_buf_printf(&b, "<Metadata><Atom><AtomID>%s</AtomID></Atom></Metadata>", up);
	} else {
		pvm_buf_add(&b, META_EMPTY);
	}
	elb(&b, "AllowPerformanceDataCollection", false);
	eli(&b, "AvailabilityPriority",
	    s->availability_priority < 0 ? 0
	    : s->availability_priority   ? s->availability_priority
	                                 : 127);
	sub_open(&b, "PartitionIOConfiguration");
	eli(&b, "MaximumVirtualIOSlots", s->max_virtual_slots ? s->max_virtual_slots : 64);
	pvm_buf_add(&b, "</PartitionIOConfiguration>");
	sub_open(&b, "PartitionMemoryConfiguration");
	eli(&b, "DesiredMemory", n.mem);
	eli(&b, "MaximumMemory", n.mem_max);
	eli(&b, "MinimumMemory", n.mem_min);
	pvm_buf_add(&b, "</PartitionMemoryConfiguration>");
	el(&b, "PartitionName", s->name);
	sub_open(&b, "PartitionProcessorConfiguration");
	elb(&b, "HasDedicatedProcessors", s->dedicated);
	if (s->dedicated) {
		sub_open(&b, "DedicatedProcessorConfiguration");
		eli(&b, "DesiredProcessors", n.vcpus);
		eli(&b, "MaximumProcessors", n.vcpus_max);
		eli(&b, "MinimumProcessors", n.vcpus_min);
		pvm_buf_add(&b, "</DedicatedProcessorConfiguration>");
		el(&b, "SharingMode", "sre idle proces");
	} else {
		sub_open(&b, "SharedProcessorConfiguration");
		elf(&b, "DesiredProcessingUnits", n.pu);
		eli(&b, "DesiredVirtualProcessors", n.vcpus);
		elf(&b, "MaximumProcessingUnits", n.pu_max);
		eli(&b, "MaximumVirtualProcessors", n.vcpus_max);
		elf(&b, "MinimumProcessingUnits", n.pu_min);
		eli(&b, "MinimumVirtualProcessors", n.vcpus_min);
		eli(&b, "SharedProcessorPoolID", s->shared_pool_id);
		if (n.weight >= 0)
			eli(&b, "UncappedWeight", n.weight);
		pvm_buf_add(&b, "</SharedProcessorConfiguration>");
		el(&b, "SharingMode", n.weight >= 0 ? "uncapped" : "capped");
	}
	pvm_buf_add(&b, "</PartitionProcessorConfiguration>");
	el(&b, "PartitionType", s->type ? s->type : "AIX/Linux");
	if (s->compat_mode)
		el(&b, "PendingProcessorCompatibilityMode", s->compat_mode);
	if (s->srr)
		elb(&b, "SimplifiedRemoteRestartCapable", s->srr > 0);
	close_obj(&b, "LogicalPartition");
	return finish(&b, err);
}

/* Parses an entry for editing; *obj is its object, checked to be of type. */
int edit_open(const char *entry, size_t len, const char *type, struct xdoc **d, struct xn **obj,
              struct pvm_rest_error *err)
{
	int rc = xml_parse(entry ? entry : "", entry ? len : 0, 0, true, NULL, d, err);
	if (rc)
		return rc;
	*obj = xn_entry_object((*d)->root);
	if (!*obj || strcmp((*obj)->name, type)) {
		xml_free(*d);
		*d = NULL;
		return perr(err, PVM_ECORRUPT, 0, "expected a %s entry", type);
	}
	return 0;
}

char *edit_close(struct xdoc *d, struct xn *obj, const char *ns, struct pvm_rest_error *err)
{
	struct pvm_buf b;
	pvm_buf_init(&b);
	xml_write(&b, obj, ns, true);
	xml_free(d);
	return finish(&b, err);
}

static int set_path(struct xdoc *d, struct xn *obj, const char *path, const char *val,
                    struct pvm_rest_error *err)
{
	struct xn *x = xn_path(obj, path);
	if (!x || x->child)
		return perr(err, PVM_ECORRUPT, 0, "%s: missing required element %s", obj->name,
		            path);
	return xn_set_text(d, x, val) ? perr(err, PVM_ENOMEM, 0, "out of memory") : 0;
}

char *pvm_build_lpar_update(const char *entry, size_t len, const struct pvm_lpar_spec *s,
                            struct pvm_rest_error *err)
{
	struct lpar_num n;
	if (lpar_check(s, &n, false, err))
		return NULL;
	struct xdoc *d;
	struct xn *o;
	if (edit_open(entry, len, "LogicalPartition", &d, &o, err))
		return NULL;
	char v[64];
	int rc = 0;
	if (s->name)
		rc = set_path(d, o, "PartitionName", s->name, err);
#define SETI(path, val)                                                                            \
	do {                                                                                       \
		if (!rc) {                                                                         \
			snprintf(v, sizeof(v), "%lld", (long long)(val));                          \
			rc = set_path(d, o, path, v, err);                                         \
		}                                                                                  \
	} while (0)
#define SETF(path, val)                                                                            \
	do {                                                                                       \
		if (!rc) {                                                                         \
			snprintf(v, sizeof(v), "%.2f", (double)(val));                             \
			rc = set_path(d, o, path, v, err);                                         \
		}                                                                                  \
	} while (0)
	if (s->memory_mb > 0) {
		SETI("PartitionMemoryConfiguration/DesiredMemory", n.mem);
		SETI("PartitionMemoryConfiguration/MaximumMemory", n.mem_max);
		SETI("PartitionMemoryConfiguration/MinimumMemory", n.mem_min);
	}
	if (s->vcpus > 0) {
		const char *sh = "PartitionProcessorConfiguration/SharedProcessorConfiguration/";
		const char *de = "PartitionProcessorConfiguration/DedicatedProcessorConfiguration/";
		char p[160];
		if (xn_path(o, "PartitionProcessorConfiguration/SharedProcessorConfiguration") &&
		    !s->dedicated) {
			snprintf(p, sizeof(p), "%sDesiredVirtualProcessors", sh);
			SETI(p, n.vcpus);
			snprintf(p, sizeof(p), "%sMaximumVirtualProcessors", sh);
			SETI(p, n.vcpus_max);
			snprintf(p, sizeof(p), "%sMinimumVirtualProcessors", sh);
			SETI(p, n.vcpus_min);
			snprintf(p, sizeof(p), "%sDesiredProcessingUnits", sh);
			SETF(p, n.pu);
			snprintf(p, sizeof(p), "%sMaximumProcessingUnits", sh);
			SETF(p, n.pu_max);
			snprintf(p, sizeof(p), "%sMinimumProcessingUnits", sh);
			SETF(p, n.pu_min);
		} else {
			snprintf(p, sizeof(p), "%sDesiredProcessors", de);
			SETI(p, n.vcpus);
			snprintf(p, sizeof(p), "%sMaximumProcessors", de);
			SETI(p, n.vcpus_max);
			snprintf(p, sizeof(p), "%sMinimumProcessors", de);
			SETI(p, n.vcpus_min);
		}
	}
#undef SETI
#undef SETF
	if (rc) {
		xml_free(d);
		return NULL;
	}
	return edit_close(d, o, NS_UOM, err);
}

/* ---------------------------------------------------------------- jobs ------------- */

static bool needs_cdata(const char *s)
{
	return strpbrk(s, "<>&") != NULL;
}

static void cdata(struct pvm_buf *b, const char *s)
{
	pvm_buf_add(b, "<![CDATA[");
	const char *p;
	while ((p = strstr(s, "]]>"))) {
		pvm_buf_addn(b, s, (size_t)(p - s) + 2);
		pvm_buf_add(b, "]]><![CDATA[");
		s = p + 2;
	}
	pvm_buf_add(b, s);
	pvm_buf_add(b, "]]>");
}

char *pvm_build_job_request(const char *op, const char *group, const struct pvm_job_param *params,
                            size_t n)
{
	struct pvm_buf b;
	pvm_buf_init(&b);
	open_obj(&b, "JobRequest", NS_WEB);
	pvm_buf_add(&b, META_EMPTY);
	pvm_buf_add(
	        &b,
	        "<RequestedOperation kb=\"CUR\" kxe=\"false\" schemaVersion=\"V1_0\">" META_EMPTY);
	pvm_buf_add(&b, "<OperationName kb=\"ROR\" kxe=\"false\">");
	pvm_buf_xml(&b, op);
	pvm_buf_add(&b, "</OperationName><GroupName kb=\"ROR\" kxe=\"false\">");
	pvm_buf_xml(&b, group);
	pvm_buf_add(&b, "</GroupName></RequestedOperation>");
	pvm_buf_add(&b,
	            "<JobParameters kb=\"CUR\" kxe=\"false\" schemaVersion=\"V1_0\">" META_EMPTY);
	for (size_t i = 0; i < n; i++) {
		pvm_buf_add(&b, "<JobParameter schemaVersion=\"V1_0\">" META_EMPTY);
		pvm_buf_add(&b, "<ParameterName kb=\"ROR\" kxe=\"false\">");
		pvm_buf_xml(&b, params[i].name);
		pvm_buf_add(&b, "</ParameterName><ParameterValue kb=\"CUR\" kxe=\"false\">");
		const char *v = params[i].value ? params[i].value : "";
		if (needs_cdata(v))
			cdata(&b, v);
		else
			pvm_buf_xml(&b, v);
		pvm_buf_add(&b, "</ParameterValue></JobParameter>");
	}
	pvm_buf_add(&b, "</JobParameters>");
	close_obj(&b, "JobRequest");
	return pvm_buf_take(&b);
}

/* ---------------------------------------------------------------- network ---------- */

char *pvm_build_cna(const struct pvm_cna_spec *s, struct pvm_rest_error *err)
{
	char mac[13] = "";
	if (s->mac) {
		size_t k = 0;
		for (const char *p = s->mac; *p; p++) {
			if (*p == ':' || *p == '-')
				continue;
			if (!isxdigit((unsigned char)*p) || k >= 12) {
				perr(err, PVM_EINVAL, 0, "bad MAC address '%s'", s->mac);
				return NULL;
			}
			mac[k++] = (char)toupper((unsigned char)*p);
		}
		if (k != 12) {
			perr(err, PVM_EINVAL, 0, "bad MAC address '%s'", s->mac);
			return NULL;
		}
		mac[12] = '\0';
	}
	if (!s->vswitch_href || s->pvid < 1 || s->pvid > 4094) {
		perr(err, PVM_EINVAL, 0, "a virtual switch and a PVID in 1..4094 are required");
		return NULL;
	}
	struct pvm_buf b;
	pvm_buf_init(&b);
	open_obj(&b, "ClientNetworkAdapter", NS_UOM);
	pvm_buf_add(&b, META_EMPTY);
	if (s->slot > 0)
		eli(&b, "VirtualSlotNumber", s->slot);
	else
		elb(&b, "UseNextAvailableSlotID", true);
	if (*mac)
		el(&b, "MACAddress", mac);
	eli(&b, "PortVLANID", s->pvid);
	if (s->tagged_vlans && *s->tagged_vlans)
		el(&b, "TaggedVLANIDs", s->tagged_vlans);
	elb(&b, "TaggedVLANSupported", s->tagged_vlans && *s->tagged_vlans);
	pvm_buf_add(&b, "<AssociatedVirtualSwitch><link href=\"");
	pvm_buf_xml(&b, s->vswitch_href);
	pvm_buf_add(&b, "\" rel=\"related\"/></AssociatedVirtualSwitch>");
	close_obj(&b, "ClientNetworkAdapter");
	return finish(&b, err);
}

/* ---------------------------------------------------------------- storage ---------- */

char *pvm_build_vg_add_vdisk(const char *entry, size_t len, const struct pvm_vdisk_spec *dk,
                             struct pvm_rest_error *err)
{
	if (!dk->name || !*dk->name || strlen(dk->name) > 15 || dk->capacity_gb <= 0) {
		perr(err, PVM_EINVAL, 0,
		     "virtual disk needs a name of 1..15 characters and a size");
		return NULL;
	}
	struct xdoc *d;
	struct xn *o;
	if (edit_open(entry, len, "VolumeGroup", &d, &o, err))
		return NULL;
	struct xn *vds = xn_child(o, "VirtualDisks");
	if (!vds) {
		perr(err, PVM_ECORRUPT, 0, "VolumeGroup: missing required element VirtualDisks");
		xml_free(d);
		return NULL;
	}
	struct pvm_buf f;
	pvm_buf_init(&f);
	pvm_buf_add(&f, "<VirtualDisk schemaVersion=\"V1_0\">" META_EMPTY);
	elg(&f, "DiskCapacity", dk->capacity_gb);
	el(&f, "DiskLabel", dk->label ? dk->label : "None");
	el(&f, "DiskName", dk->name);
	pvm_buf_add(&f, "</VirtualDisk>");
	char *frag = pvm_buf_take(&f);
	int rc = frag ? xn_append_xml(d, vds, frag, err) : perr(err, PVM_ENOMEM, 0, "oom");
	free(frag);
	if (rc) {
		xml_free(d);
		return NULL;
	}
	return edit_close(d, o, NS_UOM, err);
}

char *pvm_build_vg_remove_vdisk(const char *entry, size_t len, const char *name,
                                struct pvm_rest_error *err)
{
	struct xdoc *d;
	struct xn *o;
	if (edit_open(entry, len, "VolumeGroup", &d, &o, err))
		return NULL;
	struct xn *vds = xn_child(o, "VirtualDisks");
	struct xn *hit = NULL;
	for (struct xn *c = xn_child(vds, "VirtualDisk"); c; c = xn_next(c, "VirtualDisk")) {
		const char *dn = xn_text(c, "DiskName");
		if (dn && !strcmp(dn, name)) {
			hit = c;
			break;
		}
	}
	if (!hit) {
		perr(err, PVM_ENOTFOUND, 0, "VolumeGroup has no virtual disk %s", name);
		xml_free(d);
		return NULL;
	}
	xn_unlink(hit);
	return edit_close(d, o, NS_UOM, err);
}

char *pvm_build_vg_remove_media(const char *entry, size_t len, const char *name,
                                struct pvm_rest_error *err)
{
	struct xdoc *d;
	struct xn *o;
	if (edit_open(entry, len, "VolumeGroup", &d, &o, err))
		return NULL;
	struct xn *hit = NULL;
	struct xn *repos = xn_child(o, "MediaRepositories");
	for (struct xn *r = xn_child(repos, "VirtualMediaRepository"); r && !hit;
	     r = xn_next(r, "VirtualMediaRepository"))
		for (struct xn *c = xn_child(xn_child(r, "OpticalMedia"), "VirtualOpticalMedia"); c;
		     c = xn_next(c, "VirtualOpticalMedia")) {
			const char *mn = xn_text(c, "MediaName");
			if (mn && !strcmp(mn, name)) {
				hit = c;
				break;
			}
		}
	if (!hit) {
		perr(err, PVM_ENOTFOUND, 0, "VolumeGroup has no virtual optical media %s", name);
		xml_free(d);
		return NULL;
	}
	xn_unlink(hit);
	return edit_close(d, o, NS_UOM, err);
}

char *pvm_build_logical_unit(const struct pvm_lu_spec *s, struct pvm_rest_error *err)
{
	if (!s->name || !*s->name || s->capacity_gb <= 0) {
		perr(err, PVM_EINVAL, 0, "logical unit needs a name and a size");
		return NULL;
	}
	struct pvm_buf b;
	pvm_buf_init(&b);
	open_obj(&b, "LogicalUnit", NS_UOM);
	pvm_buf_add(&b, META_EMPTY);
	elb(&b, "ThinDevice", s->thin);
	elg(&b, "UnitCapacity", s->capacity_gb);
	el(&b, "LogicalUnitType", s->lu_type ? s->lu_type : "VirtualIO_Disk");
	if (s->cloned_from && *s->cloned_from)
		el(&b, "ClonedFrom", s->cloned_from);
	el(&b, "UnitName", s->name);
	close_obj(&b, "LogicalUnit");
	return finish(&b, err);
}

/* ---------------------------------------------------------------- VIOS mappings ---- */

static const char *const storage_el[] = {NULL, "VirtualDisk", "PhysicalVolume", "LogicalUnit",
                                         "VirtualOpticalMedia"};
static const char *const storage_name_el[] = {NULL, "DiskName", "VolumeName", "UnitName",
                                              "MediaName"};
static const char *const target_el[] = {
        NULL, "LogicalVolumeVirtualTargetDevice", "PhysicalVolumeVirtualTargetDevice",
        "SharedStoragePoolLogicalUnitVirtualTargetDevice", "VirtualOpticalTargetDevice"};

static void adapter(struct pvm_buf *b, const char *name, const char *type, int64_t lpar_id)
{
	sub_open(b, name);
	el(b, "AdapterType", type);
	if (lpar_id > 0)
		eli(b, "LocalPartitionID", lpar_id);
	elb(b, "UseNextAvailableSlotID", true);
	pvm_buf_printf(b, "</%s>", name);
}

char *pvm_build_vios_add_scsi(const char *entry, size_t len, const struct pvm_scsi_map_spec *m,
                              struct pvm_rest_error *err)
{
	if (!m->lpar_href || m->kind <= PVM_STORAGE_NONE || m->kind > PVM_STORAGE_VOPT ||
	    !m->storage_name) {
		perr(err, PVM_EINVAL, 0, "mapping needs a partition link, a storage kind and name");
		return NULL;
	}
	struct xdoc *d;
	struct xn *o;
	if (edit_open(entry, len, "VirtualIOServer", &d, &o, err))
		return NULL;
	struct xn *maps = xn_child(o, "VirtualSCSIMappings");
	if (!maps) {
		perr(err, PVM_ECORRUPT, 0,
		     "VirtualIOServer: missing required element VirtualSCSIMappings (read it with "
		     "group=ViosSCSIMapping)");
		xml_free(d);
		return NULL;
	}
	struct pvm_buf f;
	pvm_buf_init(&f);
	pvm_buf_add(&f, "<VirtualSCSIMapping schemaVersion=\"V1_0\">" META_EMPTY);
	pvm_buf_add(&f, "<AssociatedLogicalPartition href=\"");
	pvm_buf_xml(&f, m->lpar_href);
	pvm_buf_add(&f, "\" rel=\"related\"/>");
	adapter(&f, "ClientAdapter", "Client", m->client_lpar_id);
	adapter(&f, "ServerAdapter", "Server", m->server_lpar_id);
	pvm_buf_add(&f, "<Storage>");
	sub_open(&f, storage_el[m->kind]);
	if (m->storage_udid && (m->kind == PVM_STORAGE_LU || m->kind == PVM_STORAGE_PV))
		el(&f, "UniqueDeviceID", m->storage_udid);
	el(&f, storage_name_el[m->kind], m->storage_name);
	pvm_buf_printf(&f, "</%s></Storage>", storage_el[m->kind]);
	if (m->target_name) {
		pvm_buf_add(&f, "<TargetDevice>");
		sub_open(&f, target_el[m->kind]);
		el(&f, "TargetName", m->target_name);
		pvm_buf_printf(&f, "</%s></TargetDevice>", target_el[m->kind]);
	}
	pvm_buf_add(&f, "</VirtualSCSIMapping>");
	char *frag = pvm_buf_take(&f);
	int rc = frag ? xn_append_xml(d, maps, frag, err) : perr(err, PVM_ENOMEM, 0, "oom");
	free(frag);
	if (rc) {
		xml_free(d);
		return NULL;
	}
	return edit_close(d, o, NS_UOM, err);
}

/* The last path component of an href (the UUID), without a query. */
static size_t href_tail(const char *h, const char **tail)
{
	const char *q = strchr(h, '?');
	size_t n = q ? (size_t)(q - h) : strlen(h);
	const char *s = h + n;
	while (s > h && s[-1] != '/')
		s--;
	*tail = s;
	return (size_t)(h + n - s);
}

static bool same_object(const char *a, const char *b)
{
	const char *ta, *tb;
	size_t la = href_tail(a, &ta), lb = href_tail(b, &tb);
	return la == lb && !strncasecmp(ta, tb, la);
}

char *pvm_build_vios_remove_scsi(const char *entry, size_t len, const char *lpar_href,
                                 const char *storage_name, struct pvm_rest_error *err)
{
	struct xdoc *d;
	struct xn *o;
	if (edit_open(entry, len, "VirtualIOServer", &d, &o, err))
		return NULL;
	struct xn *maps = xn_child(o, "VirtualSCSIMappings");
	size_t removed = 0;
	struct xn *c = xn_child(maps, "VirtualSCSIMapping");
	while (c) {
		struct xn *next = xn_next(c, "VirtualSCSIMapping");
		struct xn *al = xn_child(c, "AssociatedLogicalPartition");
		const char *href =
		        al ? (al->href ? al->href
		                       : (xn_child(al, "link") ? xn_child(al, "link")->href : NULL))
		           : NULL;
		bool lpar_ok = !lpar_href || (href && same_object(href, lpar_href));
		bool stor_ok = !storage_name;
		const struct xn *st = xn_child(c, "Storage");
		for (const struct xn *s = st ? st->child : NULL; s && !stor_ok; s = s->next)
			for (int k = 1; k <= PVM_STORAGE_VOPT; k++) {
				const char *nm = xn_text(s, storage_name_el[k]);
				if (!strcmp(s->name, storage_el[k]) && nm &&
				    !strcmp(nm, storage_name))
					stor_ok = true;
			}
		if (lpar_ok && stor_ok) {
			xn_unlink(c);
			removed++;
		}
		c = next;
	}
	if (!removed) {
		perr(err, PVM_ENOTFOUND, 0, "VirtualIOServer has no such mapping");
		xml_free(d);
		return NULL;
	}
	return edit_close(d, o, NS_UOM, err);
}

/* ---------------------------------------------------------------- web -------------- */

char *pvm_build_file(const struct pvm_file_spec *s, struct pvm_rest_error *err)
{
	if (!s->name || !s->enum_type || !s->vios_uuid || s->size < 0) {
		perr(err, PVM_EINVAL, 0, "file needs a name, an enum type, a VIOS and a size");
		return NULL;
	}
	struct pvm_buf b;
	pvm_buf_init(&b);
	open_obj(&b, "File", NS_WEB);
	pvm_buf_add(&b, META_EMPTY);
	el(&b, "Filename", s->name);
	el(&b, "InternetMediaType", s->media_type ? s->media_type : "application/octet-stream");
	eli(&b, "ExpectedFileSizeInBytes", s->size);
	el(&b, "FileEnumType", s->enum_type);
	el(&b, "TargetVirtualIOServerUUID", s->vios_uuid);
	if (s->target_udid)
		el(&b, "TargetDeviceUniqueDeviceID", s->target_udid);
	if (s->sha256)
		el(&b, "SHA256", s->sha256);
	close_obj(&b, "File");
	return finish(&b, err);
}

char *pvm_build_logon(const char *user, const char *password, bool file_logon)
{
	struct pvm_buf b;
	pvm_buf_init(&b);
	pvm_buf_printf(&b, "<LogonRequest xmlns=\"%s\" schemaVersion=\"V1_0\">" META_EMPTY, NS_WEB);
	el(&b, "UserID", user ? user : "");
	if (file_logon)
		el(&b, "GenerateX-API-SessionFile", "true");
	else
		el(&b, "Password", password ? password : "");
	pvm_buf_add(&b, "</LogonRequest>");
	return pvm_buf_take(&b);
}
