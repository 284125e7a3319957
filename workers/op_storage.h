/* op_storage.h: the storage work spawn and destroy share (workers/op_storage.c): the
 * managed system's VIOSes, volume groups with their virtual disks and optical media, logical
 * units of the shared storage pool, web File uploads and vSCSI mappings.
 *
 * Every helper reads before it changes, so a repeated call finds the work done and sends
 * nothing: adding a disk that is there, removing one that is gone, mapping storage that is
 * mapped, unmapping what is not mapped all return 0. Updates go through pvm_client_update
 * (If-Match, 412 re-read and re-applied), one POST per object.
 *
 * Thread-safety: every function may be called from any worker thread.
 */
#ifndef PVM_WORKERS_OP_STORAGE_H
#define PVM_WORKERS_OP_STORAGE_H

#include "pvm/client.h"
#include "pvm/engine.h"
#include "pvm/pvm_objects.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sto_vios {
	char uuid[40];
	char name[64];
	int64_t id; /* partition id */
};

struct sto_vioses {
	struct sto_vios *v;
	size_t n;
};

/* The VIOSes of ctx's managed system (GET ManagedSystem/{ms}/VirtualIOServer). */
int sto_vioses(struct pvm_step_ctx *ctx, struct sto_vioses *out, struct pvm_rest_error *err);
void sto_vioses_free(struct sto_vioses *vs);

/* The volume groups of one VIOS (a feed; zero items when it has none). */
int sto_vgs(struct pvm_step_ctx *ctx, const char *vios_uuid, struct pvm_volume_group_list **out,
            struct pvm_rest_error *err);

/* Where an object lies: the VIOS (index into the list) and the volume group. */
struct sto_where {
	size_t vios;
	char vg_uuid[40];
	char udid[128];
	double capacity_gb;
};

/* The volume group vg_name: on the VIOS named vios_name when given, else on the first VIOS
 * that has it. 0, PVM_ENOTFOUND (err->message says what is missing). */
int sto_find_vg(struct pvm_step_ctx *ctx, const struct sto_vioses *vs, const char *vg_name,
                const char *vios_name, struct sto_where *w, struct pvm_rest_error *err);
/* The virtual disk / optical media named name in any volume group of any VIOS. */
int sto_find_vdisk(struct pvm_step_ctx *ctx, const struct sto_vioses *vs, const char *name,
                   struct sto_where *w, struct pvm_rest_error *err);
int sto_find_media(struct pvm_step_ctx *ctx, const struct sto_vioses *vs, const char *name,
                   struct sto_where *w, struct pvm_rest_error *err);
/* The first VIOS with a media repository, preferring the one named prefer. */
int sto_media_vios(struct pvm_step_ctx *ctx, const struct sto_vioses *vs, const char *prefer,
                   size_t *vios, struct pvm_rest_error *err);

/* Adds the virtual disk (0 when it is there already; *udid from the group as answered). */
int sto_vg_add_vdisk(struct pvm_step_ctx *ctx, const char *vios_uuid, const char *vg_uuid,
                     const char *name, double gb, char udid[128], struct pvm_rest_error *err);
/* Removes a virtual disk (kind PVM_STORAGE_VDISK) or optical media (PVM_STORAGE_VOPT) from
 * the group; 0 when it is not there. */
int sto_vg_remove(struct pvm_step_ctx *ctx, const char *vios_uuid, const char *vg_uuid,
                  enum pvm_storage_kind kind, const char *name, struct pvm_rest_error *err);

/* Uploads the local file path into PowerVM: PUT web/File (enum_type, target_udid or NULL
 * for new optical media named name, SHA-256 and size of the file), PUT its contents
 * streamed from the file, DELETE the File. Files of the same name left by an earlier
 * attempt are deleted first. */
int sto_upload(struct pvm_step_ctx *ctx, const char *vios_uuid, const char *target_udid,
               const char *enum_type, const char *name, const char *path,
               struct pvm_rest_error *err);

/* Deletes the web Files named name (left by an upload that died before its DELETE); best
 * effort. */
void sto_delete_files(struct pvm_step_ctx *ctx, const char *name);

/* vSCSI mappings. */
struct sto_map {
	enum pvm_storage_kind kind;
	const char *name;
	const char *udid; /* LU: its UDID */
};
/* Maps, in one POST of the VIOS, those of maps not yet mapped to the partition. *added
 * counts them (0: nothing was sent). */
int sto_map(struct pvm_step_ctx *ctx, const struct sto_vios *vios, const char *lpar_uuid,
            const char *lpar_href, const struct sto_map *maps, size_t n, int *added,
            struct pvm_rest_error *err);
/* Removes, in one POST of the VIOS, the partition's mappings whose storage is one of names
 * (names NULL: all of them). *removed counts them (0: nothing was sent). */
int sto_unmap(struct pvm_step_ctx *ctx, const char *vios_uuid, const char *lpar_uuid,
              const char *const *names, size_t nnames, int *removed, struct pvm_rest_error *err);

/* Logical units named name in a tier (tier_uuid): up to max UUIDs (40 bytes each), their
 * count in *n. */
int sto_tier_lus(struct pvm_step_ctx *ctx, const char *tier_uuid, const char *name,
                 char (*uuids)[40], char (*udids)[128], size_t max, size_t *n,
                 struct pvm_rest_error *err);

/* The request id of the operation, or NULL. */
const char *sto_req_id(const struct pvm_step_ctx *ctx);

#endif
