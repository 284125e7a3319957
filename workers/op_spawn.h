/* op_spawn.h: what spawn (op_spawn.c) shares with destroy (op_destroy.c): the names of an
 * instance's objects and the removals, each tolerating objects already gone.
 *
 * Thread-safety: every function may be called from any worker thread.
 */
#ifndef PVM_WORKERS_OP_SPAWN_H
#define PVM_WORKERS_OP_SPAWN_H

#include "names.h"
#include "op_storage.h"

#include "pvm/engine.h"

#include <stdbool.h>

/* The deterministic names of an instance's objects (names.h). */
struct names {
	char lpar_uuid[37];
	char lpar_name[PVM_NAME_MAX];
	char vdisk[PVM_NAME_MAX];
	char lu[PVM_NAME_MAX];
	char media[PVM_NAME_MAX];
};
/* From ctx->op (instance_uuid, params.instance.name). 0 or PVM_EINVAL. */
int spawn_names(const struct pvm_step_ctx *ctx, struct names *n);

/* Powers the partition off at once (PowerOff immediate, a job under ctx->data[key]) unless
 * it is off, in error, or gone (*gone). True when it is off or gone; false with res set
 * (WAIT for the job, RETRY, FAIL). */
bool spawn_ensure_off(struct pvm_step_ctx *ctx, const char *key, struct pvm_step_result *res,
                      bool *gone);
/* The reconcile of that job: DONE when the partition is off, in error, or gone. */
void spawn_off_or_gone(struct pvm_step_ctx *ctx, struct pvm_step_result *res);
/* Powers off (key "undo_off") and deletes the partition; DONE when it is gone. */
void spawn_delete_partition(struct pvm_step_ctx *ctx, struct pvm_step_result *res);
/* Removes the partition's mappings of storage name (NULL: all of them) on every VIOS. */
int spawn_unmap_everywhere(struct pvm_step_ctx *ctx, const struct sto_vioses *vs,
                           const char *lpar_uuid, const char *name, struct pvm_rest_error *err);
/* Deletes the boot disk: the virtual disk b_<hex> wherever it is, and with ssp every
 * logical unit boot_<hex> of the pool's tier; each unmapped first. DONE when none is left. */
void spawn_delete_disk(struct pvm_step_ctx *ctx, struct pvm_step_result *res, bool ssp);
/* Deletes the config drive media cfg_<hex>.iso wherever it is, unmapped first. */
void spawn_delete_media(struct pvm_step_ctx *ctx, struct pvm_step_result *res);

#endif
