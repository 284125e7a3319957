/* pvm/pvm_objects.h: typed views of PowerVM REST objects and the builders of request bodies.
 *
 * Parsers take a response body (an Atom feed, an Atom entry, or a bare object such as a
 * LogonResponse), parse it with libxml2 (no DTD, no entity expansion, no network, a size
 * limit) and fill an array of typed views. Unknown elements are ignored; a missing required
 * element is PVM_ECORRUPT with a message naming the element and the entry; malformed XML is
 * PVM_ECORRUPT with line and column. An empty body (the 204 of an empty feed) gives zero
 * items. Each result owns its memory: free it with the matching _free(), which accepts NULL.
 * Strings are NULL when the element is absent; numbers are -1 (or 0.0 / false) then.
 *
 * Builders return a malloc'd body (NULL when out of memory) whose children are in schema
 * order (the order of the captured server responses); values are XML-escaped. Builders that
 * change an existing object (partition update, volume group, VIOS mappings) take the entry
 * as read and return the whole object with the change applied, as PowerVM expects on POST.
 *
 * Thread-safety: every function is reentrant; results may be read by any thread.
 */
#ifndef PVM_PVM_OBJECTS_H
#define PVM_PVM_OBJECTS_H

#include "pvm/client.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PVM_PARSE_MAX_BYTES ((size_t)256 << 20) /* hard limit of one document */

/* Identity of an entry: Atom id (the UUID), ETag (<etag:etag> or the header), SELF link. */
struct pvm_meta {
	const char *uuid;
	const char *etag;
	const char *href;
};

/* ---- ManagedSystem ---- */
struct pvm_managed_system {
	struct pvm_meta meta;
	const char *name; /* SystemName */
	const char *mtms; /* "8408-E8E*10678CV" */
	const char *machine_type, *model, *serial;
	const char *state;      /* "operating", ... */
	const char *ip_address; /* PrimaryIPAddress, or NULL */
	int64_t memory_configurable_mb, memory_available_mb, memory_region_mb;
	double proc_units_configurable, proc_units_available;
	const char **compat_modes; /* SupportedPartitionProcessorCompatibilityModes */
	size_t n_compat_modes;
	bool active_migration_capable, inactive_migration_capable;
	int64_t max_active_migrations, max_inactive_migrations;
	int64_t active_migrations_in_progress, inactive_migrations_in_progress;
};

/* ---- LogicalPartition (and the partition part of a VirtualIOServer) ---- */
struct pvm_lpar {
	struct pvm_meta meta;
	const char *name;  /* PartitionName (required) */
	int64_t id;        /* PartitionID (required) */
	const char *uuid;  /* PartitionUUID, else the Atom id */
	const char *state; /* PartitionState (required) */
	const char *type;  /* PartitionType: "AIX/Linux", "OS400", "Virtual IO Server" */
	int64_t memory_mb; /* DesiredMemory */
	int64_t memory_min_mb, memory_max_mb, memory_current_mb;
	bool dedicated_procs; /* HasDedicatedProcessors */
	int64_t vcpus;        /* DesiredVirtualProcessors (or DesiredProcessors) */
	int64_t vcpus_min, vcpus_max;
	double proc_units; /* DesiredProcessingUnits; 0 when dedicated */
	double proc_units_min, proc_units_max;
	int64_t uncapped_weight;
	const char *sharing_mode;
	const char *rmc_state;       /* ResourceMonitoringControlState */
	const char *migration_state; /* MigrationState */
	bool is_mgmt;                /* IsManagementPartition */
	const char *compat_mode;     /* CurrentProcessorCompatibilityMode */
	const char *os_version;      /* OperatingSystemVersion */
};

/* ---- storage pieces ---- */
struct pvm_vdisk {
	const char *name;   /* DiskName */
	double capacity_gb; /* DiskCapacity */
	const char *label;
	const char *udid;
};
struct pvm_vopt {
	const char *name; /* MediaName */
	const char *udid;
	const char *mount_type;
	double size_gb;
};
struct pvm_pv {
	const char *name; /* VolumeName */
	const char *udid;
	int64_t capacity_mb;
	const char *description;
	bool fc_backed;
};
struct pvm_volume_group {
	struct pvm_meta meta;
	const char *name; /* GroupName (required) */
	double capacity_gb, available_gb, free_gb;
	const char *serial_id, *udid;
	struct pvm_vdisk *vdisks;
	size_t n_vdisks;
	bool has_media_repo;
	const char *media_repo_name;
	double media_repo_size_gb;
	struct pvm_vopt *media;
	size_t n_media;
	struct pvm_pv *pvs;
	size_t n_pvs;
};

struct pvm_logical_unit {
	struct pvm_meta meta;
	const char *name; /* UnitName (required) */
	const char *udid;
	double capacity_gb;
	const char *lu_type; /* VirtualIO_Disk, VirtualIO_Image */
	bool thin, in_use;
	const char *cloned_from; /* UDID of the image LU, or NULL */
};

struct pvm_ssp {
	struct pvm_meta meta;
	const char *name; /* StoragePoolName (required) */
	const char *udid;
	double capacity_gb, free_gb, over_commit_gb, total_lu_size_gb;
	struct pvm_logical_unit *lus;
	size_t n_lus;
	struct pvm_pv *pvs;
	size_t n_pvs;
};

struct pvm_tier {
	struct pvm_meta meta;
	const char *name; /* Name (required) */
	const char *udid;
	const char *tier_type;
	bool is_default;
	double capacity_gb;
	const char *ssp_href; /* AssociatedSharedStoragePool */
};

/* ---- VIOS ---- */
struct pvm_vadapter {
	const char *type; /* AdapterType: Client / Server */
	int64_t lpar_id, slot, remote_lpar_id, remote_slot;
	const char *name;     /* AdapterName (vhost0) */
	const char *location; /* LocationCode */
	const char *udid;
	const char *wwpns;   /* vFC client: WWPNs */
	const char *backing; /* BackingDeviceName */
};
enum pvm_storage_kind {
	PVM_STORAGE_NONE = 0,
	PVM_STORAGE_VDISK,
	PVM_STORAGE_PV,
	PVM_STORAGE_LU,
	PVM_STORAGE_VOPT
};
struct pvm_vscsi_mapping {
	const char *lpar_href; /* AssociatedLogicalPartition link */
	bool has_client, has_server;
	struct pvm_vadapter client, server;
	enum pvm_storage_kind storage_kind;
	const char *storage_name; /* DiskName / VolumeName / UnitName / MediaName */
	const char *storage_udid;
	const char *target_name; /* TargetDevice/.../TargetName */
};
struct pvm_vfc_mapping {
	const char *lpar_href;
	bool has_client, has_server;
	struct pvm_vadapter client, server;
	const char *port_name; /* Port/PortName (fcs0) */
	const char *port_wwpn;
};
struct pvm_fc_port {
	const char *name; /* PortName */
	const char *wwpn;
	const char *location;
	const char *udid;
	int64_t available_ports, total_ports;
};
struct pvm_vios {
	struct pvm_lpar lpar;
	const char **vg_hrefs; /* StoragePools links (VolumeGroup) */
	size_t n_vg_hrefs;
	struct pvm_volume_group *media_repos; /* MediaRepositories (name, media) */
	size_t n_media_repos;
	struct pvm_pv *pvs;
	size_t n_pvs;
	struct pvm_vscsi_mapping *scsi_mappings;
	size_t n_scsi_mappings;
	struct pvm_vfc_mapping *vfc_mappings;
	size_t n_vfc_mappings;
	struct pvm_fc_port *fc_ports;
	size_t n_fc_ports;
};

/* ---- network ---- */
struct pvm_cna {
	struct pvm_meta meta;
	const char *mac; /* MACAddress: 12 upper-case hex (required) */
	int64_t pvid;    /* PortVLANID (required) */
	int64_t slot;    /* VirtualSlotNumber */
	int64_t lpar_id; /* LocalPartitionID */
	const char *tagged_vlans;
	bool tagged_vlan_supported;
	bool enabled;
	const char *vswitch_href; /* AssociatedVirtualSwitch link */
	int64_t vswitch_id;
	const char *location;
};
struct pvm_vswitch {
	struct pvm_meta meta;
	const char *name; /* SwitchName (required) */
	int64_t id;       /* SwitchID */
	const char *mode; /* SwitchMode */
	const char **network_hrefs;
	size_t n_network_hrefs;
};

/* ---- web objects ---- */
struct pvm_job {
	struct pvm_meta meta;
	const char *job_id;         /* JobID (required) */
	enum pvm_job_status status; /* Status (required) */
	const char *status_name;
	int64_t time_started, time_completed; /* epoch ms; -1 when absent */
	double progress;                      /* LinearProgress 0..1; -1 when absent */
	const char *operation, *group;        /* RequestedOperation */
	const char *target_uuid;
	const char *request_url;
	const char *exception_message; /* ResponseException/Message */
	struct pvm_job_param *results; /* Results/JobParameter */
	size_t n_results;
	const char *result_message; /* the "result" parameter, or NULL */
	struct pvm_arena *arena_;   /* private */
};
struct pvm_event_view {
	struct pvm_meta meta;
	struct pvm_event ev;
};
struct pvm_http_error {
	int status;          /* HTTPStatus */
	const char *uri;     /* RequestURI */
	const char *reason;  /* ReasonCode */
	const char *message; /* Message */
};
struct pvm_logon {
	const char *token;      /* X-API-Session, or NULL */
	const char *token_file; /* X-API-SessionFile, or NULL */
};
struct pvm_file {
	struct pvm_meta meta;
	const char *name; /* Filename */
	const char *file_uuid;
	const char *media_type;
	const char *enum_type;
	int64_t expected_size, current_size;
	const char *target_vios_uuid, *target_udid;
};

/* A parse result: count items of the view type, memory owned by the result. */
#define PVM_DECLARE_RESULT(tag, type)                                                              \
	struct pvm_##tag##_list {                                                                  \
		type *items;                                                                       \
		size_t count;                                                                      \
		struct pvm_arena *arena_;                                                          \
	};                                                                                         \
	int pvm_parse_##tag(const char *xml, size_t len, const char *etag_header,                  \
	                    struct pvm_##tag##_list **out, struct pvm_rest_error *err);            \
	void pvm_##tag##_list_free(struct pvm_##tag##_list *l);

PVM_DECLARE_RESULT(managed_system, struct pvm_managed_system)
PVM_DECLARE_RESULT(lpar, struct pvm_lpar)
PVM_DECLARE_RESULT(vios, struct pvm_vios)
PVM_DECLARE_RESULT(volume_group, struct pvm_volume_group)
PVM_DECLARE_RESULT(ssp, struct pvm_ssp)
PVM_DECLARE_RESULT(tier, struct pvm_tier)
PVM_DECLARE_RESULT(logical_unit, struct pvm_logical_unit)
PVM_DECLARE_RESULT(cna, struct pvm_cna)
PVM_DECLARE_RESULT(vswitch, struct pvm_vswitch)
PVM_DECLARE_RESULT(event, struct pvm_event_view)
PVM_DECLARE_RESULT(file, struct pvm_file)

/* Single documents. */
int pvm_parse_job(const char *xml, size_t len, struct pvm_job **out, struct pvm_rest_error *err);
void pvm_job_free(struct pvm_job *j);
/* HttpErrorResponse (entry or bare): fills *out with strings copied into the fixed buffers
 * of err (err->reason, err->message, err->uri) and err->http_status. Returns 0 or
 * PVM_ECORRUPT when the body is not one. */
int pvm_parse_http_error(const char *xml, size_t len, struct pvm_rest_error *err);
/* LogonResponse: token or token file path, copied into buffers of size n. */
int pvm_parse_logon(const char *xml, size_t len, char *token, size_t tn, char *file, size_t fn,
                    struct pvm_rest_error *err);

/* Chooses one managed system by name, MTMS or UUID (case-insensitive for UUID); NULL or ""
 * matches when there is exactly one. Returns the index or -1. */
long pvm_managed_system_find(const struct pvm_managed_system_list *l, const char *which);

/* ---- builders ---- */
struct pvm_lpar_spec {
	const char *uuid; /* create: the client-chosen UUID (Metadata/Atom/AtomID), or NULL */
	const char *name; /* at most 31 characters */
	const char *type; /* "AIX/Linux" (default), "OS400" */
	int64_t memory_mb, memory_min_mb, memory_max_mb; /* min/max 0: = memory_mb */
	bool dedicated;
	int64_t vcpus, vcpus_min, vcpus_max;               /* min/max 0: = vcpus */
	double proc_units, proc_units_min, proc_units_max; /* 0: vcpus x 0.1, floor 0.05 */
	int64_t uncapped_weight;                           /* 0: 64; -1: capped */
	int64_t max_virtual_slots;                         /* 0: 64 */
	int64_t availability_priority;                     /* 0: 127; -1: 0 */
	int64_t shared_pool_id;                            /* 0 */
	const char *compat_mode; /* PendingProcessorCompatibilityMode ("POWER8"), or NULL */
	int srr;                 /* SimplifiedRemoteRestartCapable: 1 true, -1 false, 0 not sent */
};
/* The derived partition UUID of a nova instance UUID: top bit of the first hex digit
 * cleared, upper-cased. out: 37 bytes. Returns 0 or PVM_EINVAL. */
int pvm_lpar_uuid_from_instance(const char *instance_uuid, char out[37]);
/* Partition create body (type=LogicalPartition). Returns NULL on a bad spec (err set). */
char *pvm_build_lpar_create(const struct pvm_lpar_spec *s, struct pvm_rest_error *err);
/* Partition update: the entry as read with the memory, processor and name fields of s
 * applied (fields left 0 / NULL keep their value). */
char *pvm_build_lpar_update(const char *entry, size_t len, const struct pvm_lpar_spec *s,
                            struct pvm_rest_error *err);
/* JobRequest: operation, group and parameters (values with markup go in CDATA). */
char *pvm_build_job_request(const char *op, const char *group, const struct pvm_job_param *params,
                            size_t n);

struct pvm_cna_spec {
	const char *mac; /* 12 hex digits (colons allowed, upper-cased); NULL: server picks */
	int64_t pvid;    /* PortVLANID */
	const char *vswitch_href; /* AssociatedVirtualSwitch link (required) */
	int64_t slot;             /* 0: UseNextAvailableSlotID */
	const char *tagged_vlans; /* "53 54" or NULL */
};
char *pvm_build_cna(const struct pvm_cna_spec *s, struct pvm_rest_error *err);

struct pvm_vdisk_spec {
	const char *name; /* at most 15 characters */
	double capacity_gb;
	const char *label; /* NULL: "None" */
};
/* VolumeGroup with one VirtualDisk appended to VirtualDisks. */
char *pvm_build_vg_add_vdisk(const char *entry, size_t len, const struct pvm_vdisk_spec *d,
                             struct pvm_rest_error *err);
/* VolumeGroup without the VirtualDisk named name (PVM_ENOTFOUND in err when absent). */
char *pvm_build_vg_remove_vdisk(const char *entry, size_t len, const char *name,
                                struct pvm_rest_error *err);
/* VolumeGroup without the VirtualOpticalMedia named name in its media repository
 * (PVM_ENOTFOUND in err when absent). */
char *pvm_build_vg_remove_media(const char *entry, size_t len, const char *name,
                                struct pvm_rest_error *err);

struct pvm_lu_spec {
	const char *name;
	double capacity_gb;
	const char *lu_type; /* "VirtualIO_Disk" (default) or "VirtualIO_Image" */
	bool thin;
	const char *cloned_from; /* image LU UDID for a linked clone, or NULL */
};
char *pvm_build_logical_unit(const struct pvm_lu_spec *s, struct pvm_rest_error *err);

struct pvm_scsi_map_spec {
	const char *lpar_href;      /* AssociatedLogicalPartition (required) */
	int64_t client_lpar_id;     /* ClientAdapter LocalPartitionID (0: none, server picks) */
	int64_t server_lpar_id;     /* VIOS partition id */
	enum pvm_storage_kind kind; /* VDISK, PV, LU or VOPT */
	const char *storage_name;   /* DiskName / VolumeName / UnitName / MediaName */
	const char *storage_udid;   /* for LU and PV, or NULL */
	const char *target_name;    /* optional TargetDevice name */
};
/* VIOS (group ViosSCSIMapping) with a VirtualSCSIMapping appended. */
char *pvm_build_vios_add_scsi(const char *entry, size_t len, const struct pvm_scsi_map_spec *m,
                              struct pvm_rest_error *err);
/* VIOS without the mappings of lpar_href (or of client id) that carry storage_name; at
 * least one must match (PVM_ENOTFOUND in err). */
char *pvm_build_vios_remove_scsi(const char *entry, size_t len, const char *lpar_href,
                                 const char *storage_name, struct pvm_rest_error *err);

/* Batch removals (build_batch.c), for the start-up scrub. */
/* VIOS (group ViosSCSIMapping) without the mappings at positions idx[0..n) of its
 * VirtualSCSIMappings (document order, the order pvm_parse_vios() gives). PVM_EINVAL in err
 * when a position does not exist. */
char *pvm_build_vios_remove_scsi_at(const char *entry, size_t len, const size_t *idx, size_t n,
                                    struct pvm_rest_error *err);
/* VolumeGroup without the virtual disks named in vdisks and the optical media named in
 * media (names absent from the group are skipped); *removed counts what was taken out. */
char *pvm_build_vg_remove_objects(const char *entry, size_t len, const char *const *vdisks,
                                  size_t nv, const char *const *media, size_t nm, size_t *removed,
                                  struct pvm_rest_error *err);

struct pvm_file_spec {
	const char *name;
	const char *media_type;  /* NULL: application/octet-stream */
	const char *enum_type;   /* BROKERED_DISK_IMAGE or BROKERED_MEDIA_ISO */
	int64_t size;            /* ExpectedFileSizeInBytes */
	const char *vios_uuid;   /* TargetVirtualIOServerUUID */
	const char *target_udid; /* TargetDeviceUniqueDeviceID, or NULL */
	const char *sha256;      /* or NULL */
};
char *pvm_build_file(const struct pvm_file_spec *s, struct pvm_rest_error *err);

/* LogonRequest (password or, with file_logon, GenerateX-API-SessionFile). */
char *pvm_build_logon(const char *user, const char *password, bool file_logon);

/* ---- performance monitoring (pcm) ---- */
struct xdoc;
/* One entry of the LongTermMonitor feed: a link to a JSON sample. */
struct pvm_ltm_sample {
	const char *title;    /* "LTM_<mtms>_phyp_<yyyymmddThhmmss>+0000.json" */
	const char *href;     /* the sample's link (required) */
	const char *category; /* "phyp", "vios_1", ... (category term), or NULL */
	const char *updated;
};
struct pvm_ltm_list {
	struct pvm_ltm_sample *items;
	size_t count;
	struct xdoc *doc_; /* private */
};
/* The LongTermMonitor feed (an empty body, the 204 while monitoring is off, gives zero
 * items). PVM_ECORRUPT for an entry without link or title. */
int pvm_parse_ltm_feed(const char *xml, size_t len, struct pvm_ltm_list **out,
                       struct pvm_rest_error *err);
void pvm_ltm_list_free(struct pvm_ltm_list *l);
/* The ManagedSystemPcmPreference (feed, entry or bare object, as read) with long-term
 * monitoring and aggregation switched on, as a bare object to POST back; *changed says
 * whether anything was off. */
char *pvm_build_pcm_ltm_enable(const char *body, size_t len, bool *changed,
                               struct pvm_rest_error *err);

#endif
