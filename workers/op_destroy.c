/* op_destroy.c: the operation type `destroy` (nova's ComputeDriver.destroy).
 *
 * DESIGN
 * Destroy never fails because something is missing: every step finds its objects by their
 * deterministic names (names.h), whether or not the partition still exists, and takes an
 * object already gone as done. So it cleans a fully spawned instance and a half-spawned
 * one alike (a spawn that failed or was interrupted: a partition without disk, a disk
 * without partition, media without mapping, mappings left without their partition).
 *   power_off         PowerOff immediate unless off, in error or gone;
 *   unplug_vifs       an unplug event per client network adapter (vif.c);
 *   unmap             every vSCSI mapping of the partition, one POST per VIOS;
 *   config_drive      the media cfg_<hex>.iso;
 *   boot_disk         (destroy_disks, default true) the virtual disk b_<hex>, and with ssp
 *                     the logical units boot_<hex>;
 *   delete_partition  DELETE (its client network adapters go with it);
 *   cleanup           a config drive spool file left by a spawn that never used it.
 * Each step reads before it changes, so a step re-run after a crash sends nothing twice
 * that matters. There is nothing to undo: a permanent failure leaves the instance for a
 * retry (the operator's, or nova's next destroy).
 *
 * params (docs/api.md): instance, network_info, block_device_info, destroy_disks.
 */
#include "names.h"
#include "op_power.h"
#include "op_spawn.h"
#include "op_storage.h"
#include "ops.h"
#include "vif.h"

#include "pvm/config.h"
#include "pvm/error.h"
#include "pvm/pvm_objects.h"
#include "pvm/util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void off_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!pwr_check_instance(ctx, res) || !pwr_need_client(ctx, res))
		return;
	bool gone = false;
	if (!spawn_ensure_off(ctx, "off", res, &gone))
		return;
	if (gone)
		json_object_set_new(ctx->data, "partition_gone", json_true());
	res->verdict = PVM_STEP_DONE;
	res->progress = 20;
}

static void unmap_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!pwr_need_client(ctx, res))
		return;
	struct names n;
	spawn_names(ctx, &n);
	struct sto_vioses vs;
	struct pvm_rest_error err = {0};
	int rc = sto_vioses(ctx, &vs, &err);
	if (rc == 0)
		rc = spawn_unmap_everywhere(ctx, &vs, n.lpar_uuid, NULL, &err);
	sto_vioses_free(&vs);
	if (rc) {
		pwr_rest_failure(res, rc, &err, "removing the partition's mappings");
		return;
	}
	res->verdict = PVM_STEP_DONE;
	res->progress = 40;
}

static void media_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!pwr_need_client(ctx, res))
		return;
	spawn_delete_media(ctx, res);
	if (res->verdict == PVM_STEP_DONE)
		res->progress = 55;
}

static bool destroy_disks(const struct pvm_step_ctx *ctx)
{
	return !json_is_false(json_object_get(ctx->op->params, "destroy_disks"));
}

static void disk_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!destroy_disks(ctx)) {
		json_object_set_new(ctx->data, "kept", json_true());
		res->verdict = PVM_STEP_DONE;
		return;
	}
	if (!pwr_need_client(ctx, res))
		return;
	spawn_delete_disk(ctx, res, ctx->config && ctx->config->disk_driver == PVM_DISK_SSP);
	if (res->verdict == PVM_STEP_DONE)
		res->progress = 75;
}

static void delete_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!pwr_need_client(ctx, res))
		return;
	spawn_delete_partition(ctx, res);
	if (res->verdict == PVM_STEP_DONE)
		res->progress = 90;
}

static void cleanup_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	char path[1024];
	const char *sd = ctx->config ? ctx->config->state_dir : NULL;
	if (sd && pvm_path_config_drive(sd, ctx->op->instance_uuid, path, sizeof(path)) == 0 &&
	    unlink(path) == 0)
		pvm_log(PVM_LOG_INFO, &ctx->log, "deleted the leftover config drive spool file %s",
		        path);
	const json_t *cp = ctx->op->checkpoints;
	bool existed =
	        !json_is_true(json_object_get(json_object_get(cp, "power_off"), "partition_gone"));
	res->result = pwr_result(ctx, NULL,
	                         json_pack("{s:b, s:b}", "partition_existed", existed,
	                                   "disks_deleted", destroy_disks(ctx)));
	json_object_del(res->result, "power_state");
	json_object_del(res->result, "state");
	res->verdict = PVM_STEP_DONE;
	res->progress = 100;
}

static const struct pvm_step_def steps[] = {
        {"power_off", off_run, NULL, spawn_off_or_gone, NULL},
        {"unplug_vifs", pvm_vif_destroy_run, NULL, NULL, NULL},
        {"unmap", unmap_run, NULL, NULL, NULL},
        {"config_drive", media_run, NULL, NULL, NULL},
        {"boot_disk", disk_run, NULL, NULL, NULL},
        {"delete_partition", delete_run, NULL, spawn_off_or_gone, NULL},
        {"cleanup", cleanup_run, NULL, NULL, NULL},
};

static int validate(const json_t *p, char *field, size_t fn, char *msg, size_t mn)
{
	static const char *const known[] = {"instance", "network_info", "block_device_info",
	                                    "destroy_disks", NULL};
	int rc = pwr_validate_known(p, "destroy", known, field, fn, msg, mn);
	if (rc)
		return rc;
	json_t *dd = json_object_get(p, "destroy_disks");
	if (dd && !json_is_null(dd) && !json_is_boolean(dd)) {
		snprintf(field, fn, "params.destroy_disks");
		snprintf(msg, mn, "must be true or false");
		return PVM_EINVAL;
	}
	json_t *ni = json_object_get(p, "network_info");
	if (ni && !json_is_null(ni) && !json_is_array(ni)) {
		snprintf(field, fn, "params.network_info");
		snprintf(msg, mn, "must be an array of VIFs");
		return PVM_EINVAL;
	}
	json_t *bdi = json_object_get(p, "block_device_info");
	if (bdi && !json_is_null(bdi) && !json_is_object(bdi)) {
		snprintf(field, fn, "params.block_device_info");
		snprintf(msg, mn, "must be an object or null");
		return PVM_EINVAL;
	}
	return 0;
}

const struct pvm_op_type pvm_op_destroy = {
        .name = "destroy",
        .version = 1,
        .steps = steps,
        .nsteps = sizeof(steps) / sizeof(steps[0]),
        .max_attempts = 40,
        .deadline_ms = 60LL * 60 * 1000,
        .validate = validate,
        .requires_instance = true,
};
