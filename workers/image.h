/* image.h: the image cache (docs/api.md, Images), shared by the API that fills it, the
 * operation `cache_image` that puts an image into a shared storage pool, and spawn, which
 * makes boot disks from it.
 *
 * On disk, under <state_dir>/images/ (names.h): `<id>.raw`, the image bytes (localdisk:
 * the cache itself; ssp: a spool file, deleted once the image LU is complete), and
 * `<id>.json`, its metadata (sha256, size, the digest nova gave, driver, state, where it
 * lives). Both are written atomically (temporary file, fsync, rename, directory fsync).
 * With ssp the cache is the image logical unit `image_<id>` of the pool; an upload in
 * progress on some host is marked by a marker LU `part<host tag>image_<id>` (names.h).
 *
 * Thread-safety: every function is reentrant; callers serialize writers of one image
 * (the API refuses a second upload of an id that is being written).
 */
#ifndef PVM_WORKERS_IMAGE_H
#define PVM_WORKERS_IMAGE_H

#include "pvm/client.h"
#include "pvm/engine.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pvm_logical_unit_list;

struct pvm_ssp_ref {
	char ssp_uuid[40];
	char tier_uuid[40];
	char ssp_name[128];
	char tier_href[512];
};

/* The configured pool (powervm_cluster_name, or the only one) and its default tier.
 * Returns 0, PVM_ENOTFOUND (no such pool, or several and none configured: err->message
 * says which), or a client error. */
int pvm_image_ssp_ref(struct pvm_step_ctx *ctx, struct pvm_ssp_ref *out,
                      struct pvm_rest_error *err);

/* image_<id> when complete (no marker for it exists): 0 with its UDID and capacity;
 * PVM_ENOTFOUND when absent; -EAGAIN while an upload is in progress (a marker exists). */
int pvm_image_ssp_lookup(struct pvm_step_ctx *ctx, const struct pvm_ssp_ref *ssp,
                         const char *image_id, char udid[128], double *capacity_gb,
                         struct pvm_rest_error *err);

/* localdisk: the cached image file (its metadata says ready): 0 with its path and size;
 * PVM_ENOTFOUND; PVM_EINVAL for a bad id. */
int pvm_image_local_lookup(const char *state_dir, const char *image_id, char *path, size_t n,
                           int64_t *size);

/* ---- metadata ---- */

enum { PVM_IMAGE_ID_MAX = 65, PVM_IMAGE_DIGEST_MAX = 129 };

struct pvm_image_meta {
	char image_id[PVM_IMAGE_ID_MAX];
	char sha256[65];                  /* of the bytes, lower-case hex */
	int64_t size;                     /* bytes */
	char algo[16];                    /* os_hash_algo as given ("" when none) */
	char value[PVM_IMAGE_DIGEST_MAX]; /* os_hash_value, lower-case ("" when none) */
	char driver[16];                  /* "localdisk" or "ssp" */
	char state[16];                   /* "ready" or "uploading" */
	uint64_t operation;               /* ssp: the cache_image operation (0: none yet) */
	char location[256];               /* the file, or "ssp:<pool>/image_<id>" */
	char udid[128];                   /* ssp: the image LU's UDID once ready */
	char key[160];   /* ssp: the operation's idempotency key (known before its id is) */
	int64_t time_ms; /* when it was written */
};

/* <state_dir>/images/<id>.json. Returns 0, PVM_EINVAL, -ENAMETOOLONG. */
int pvm_image_meta_path(const char *state_dir, const char *image_id, char *out, size_t n);
/* Returns 0, PVM_ENOTFOUND (no metadata), PVM_ECORRUPT (unreadable), PVM_EINVAL. */
int pvm_image_meta_read(const char *state_dir, const char *image_id, struct pvm_image_meta *m);
/* Writes it atomically (the directory is created when missing). Returns 0 or -errno. */
int pvm_image_meta_write(const char *state_dir, const struct pvm_image_meta *m);
/* The metadata as the API shows it (new reference). */
json_t *pvm_image_meta_json(const struct pvm_image_meta *m);

/* Writes len bytes to path atomically: a temporary file in the same directory, fsync,
 * rename, fsync of the directory. Returns 0 or -errno. */
int pvm_file_write_atomic(const char *path, const void *buf, size_t len);
/* fsync of the directory that holds path. Returns 0 or -errno. */
int pvm_fsync_parent(const char *path);

/* ---- the pool's logical units (for cache_image and spawn) ---- */

/* GETs the default tier's logical units. *out is freed with pvm_logical_unit_list_free. */
int pvm_image_list_lus(struct pvm_step_ctx *ctx, const struct pvm_ssp_ref *ssp,
                       struct pvm_logical_unit_list **out, struct pvm_rest_error *err);
/* DELETE of one LU of the tier by its UUID (404 counts as done). */
int pvm_image_delete_lu(struct pvm_step_ctx *ctx, const struct pvm_ssp_ref *ssp,
                        const char *lu_uuid, struct pvm_rest_error *err);

#endif
