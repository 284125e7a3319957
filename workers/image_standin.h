/* image_standin.h: the contract of workers/image.h (the image cache, written by another
 * branch), declared here so spawn and destroy build before it lands.
 *
 * REPLACE WITH image.h at merge: delete image_standin.h and image_standin.c, include
 * "image.h" instead in op_spawn.c and op_storage.c. The declarations below are the agreed
 * contract, word for word.
 */
#ifndef PVM_WORKERS_IMAGE_STANDIN_H
#define PVM_WORKERS_IMAGE_STANDIN_H

#include "pvm/client.h"
#include "pvm/engine.h"

#include <stddef.h>
#include <stdint.h>

struct pvm_ssp_ref {
	char ssp_uuid[40];
	char tier_uuid[40];
	char ssp_name[128];
	char tier_href[512];
};

/* The shared storage pool of this host (powervm_cluster_name, or the only one) and its
 * default tier. 0, PVM_ENOTFOUND, or a client error. */
int pvm_image_ssp_ref(struct pvm_step_ctx *ctx, struct pvm_ssp_ref *out,
                      struct pvm_rest_error *err);
/* The image LU of image_id in the pool: 0 with its UDID and capacity, PVM_ENOTFOUND, or
 * -EAGAIN while it is being uploaded. */
int pvm_image_ssp_lookup(struct pvm_step_ctx *ctx, const struct pvm_ssp_ref *ssp,
                         const char *image_id, char udid[128], double *capacity_gb,
                         struct pvm_rest_error *err);
/* The cached image file of image_id under state_dir: 0 with its path and size,
 * PVM_ENOTFOUND, PVM_EINVAL for a bad id. */
int pvm_image_local_lookup(const char *state_dir, const char *image_id, char *path, size_t n,
                           int64_t *size);

#endif
