/* op_interfaces.c: the operation types of nova's network interface calls:
 * attach_interface, detach_interface, plug_vifs and unplug_vifs (vif.h does the work).
 *
 * Each has one step on the partition derived from instance_uuid:
 * - attach_interface {"instance", "vif"}: `attach` ensures the VIF's adapter (an adapter
 *   with its MAC already there is success) and sends its plug event; the undo (a cancel,
 *   the deadline, a plug event refused) unplugs and deletes the adapter when this
 *   operation created it.
 * - detach_interface {"instance", "vif"}: `detach` sends the unplug event and deletes the
 *   adapter with the VIF's MAC; an absent adapter or partition is success.
 * - plug_vifs {"instance", "network_info"} (nova calls it at host start-up): `plug_vifs`
 *   creates the adapters that are missing, with a plug event for each one created, as
 *   nova-powervm did; the undo deletes those it created.
 * - unplug_vifs {"instance", "network_info"}: `unplug_vifs` sends an unplug event and
 *   deletes the adapter of each VIF found; an absent partition is success.
 * A missing partition fails attach_interface and plug_vifs with error_code
 * instance_not_found.
 */
#include "op_power.h"
#include "ops.h"
#include "vif.h"

#include "pvm/error.h"
#include "pvm/pvm_objects.h"

#include <stdio.h>
#include <string.h>

/* params.vif as a one-element array, for the list functions of vif.h (new reference). */
static json_t *vif_array(const struct pvm_step_ctx *ctx)
{
	json_t *a = json_array();
	json_t *v = json_object_get(ctx->op->params, "vif");
	if (a && v)
		json_array_append(a, v);
	return a;
}

static const json_t *param_list(const struct pvm_step_ctx *ctx)
{
	return json_object_get(ctx->op->params, "network_info");
}

static json_t *base_result(const struct pvm_step_ctx *ctx)
{
	char uuid[37];
	pvm_lpar_uuid_from_instance(ctx->op->instance_uuid, uuid);
	return json_pack("{s:s}", "partition_uuid", uuid);
}

/* One adapter's entry of a result, from the step's per-VIF state. */
static json_t *adapter_entry(const char *mac, const json_t *st)
{
	json_t *e = json_pack("{s:s}", "mac", mac);
	static const char *const keys[] = {"uuid", "slot",    "vlan",   "vswitch",
	                                   "type", "created", "plugged"};
	for (size_t i = 0; e && i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *v = json_object_get(st, keys[i]);
		if (v)
			json_object_set(e, i == 6 ? "plug_event_sent" : keys[i], v);
	}
	return e;
}

static json_t *adapters_of(const struct pvm_step_ctx *ctx, const json_t *vifs)
{
	json_t *out = json_array();
	json_t *states = json_object_get(ctx->data, "vifs");
	for (size_t i = 0; out && i < json_array_size(vifs); i++) {
		char mac[13];
		if (pvm_vif_mac_normalize(
		            json_string_value(json_object_get(json_array_get(vifs, i), "address")),
		            mac) == 0)
			json_array_append_new(out,
			                      adapter_entry(mac, json_object_get(states, mac)));
	}
	return out;
}

/* {"removed": [...], "absent": [...], "partition_found"} from ctx->data["removed"]. */
static json_t *removal_result(const struct pvm_step_ctx *ctx, const json_t *vifs)
{
	json_t *r = base_result(ctx);
	json_t *rm = json_array(), *ab = json_array();
	json_t *removed = json_object_get(ctx->data, "removed");
	for (size_t i = 0; i < json_array_size(vifs); i++) {
		char mac[13];
		if (pvm_vif_mac_normalize(
		            json_string_value(json_object_get(json_array_get(vifs, i), "address")),
		            mac) != 0)
			continue;
		const char *what = json_string_value(json_object_get(removed, mac));
		json_array_append_new(what && strcmp(what, "removed") == 0 ? rm : ab,
		                      json_string(mac));
	}
	json_object_set_new(r, "removed", rm);
	json_object_set_new(r, "absent", ab);
	json_t *pf = json_object_get(ctx->data, "partition_found");
	json_object_set_new(r, "partition_found", json_boolean(!pf || json_is_true(pf)));
	return r;
}

/* ---- attach_interface ---- */

static void attach_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!pwr_check_instance(ctx, res))
		return;
	json_t *vifs = vif_array(ctx);
	pvm_vif_ensure(ctx, res, vifs, "params.vif", true, PVM_VIF_EVENTS_ALL);
	if (res->verdict == PVM_STEP_DONE) {
		json_t *a = adapters_of(ctx, vifs);
		json_t *r = base_result(ctx);
		json_t *e = json_array_get(a, 0);
		json_object_set(r, "mac", json_object_get(e, "mac"));
		json_object_set_new(r, "created",
		                    json_boolean(json_is_true(json_object_get(e, "created"))));
		json_object_set(r, "adapter", e);
		json_decref(a);
		res->result = r;
	}
	json_decref(vifs);
}

static void attach_undo(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	json_t *vifs = vif_array(ctx);
	pvm_vif_remove(ctx, res, vifs, true);
	json_decref(vifs);
}

static void attach_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	json_t *vifs = vif_array(ctx);
	pvm_vif_reconcile(ctx, res, vifs);
	json_decref(vifs);
}

static const struct pvm_step_def attach_steps[] = {
        {"attach", attach_run, attach_undo, attach_reconcile, NULL},
};

static int validate_vif_op(const json_t *p, const char *type, char *field, size_t fn, char *msg,
                           size_t mn)
{
	static const char *const known[] = {"instance", "vif", NULL};
	int rc = pwr_validate_known(p, type, known, field, fn, msg, mn);
	if (rc)
		return rc;
	return pvm_vif_validate_one(json_object_get(p, "vif"), "params.vif", field, fn, msg, mn);
}

static int validate_attach(const json_t *p, char *field, size_t fn, char *msg, size_t mn)
{
	return validate_vif_op(p, "attach_interface", field, fn, msg, mn);
}

const struct pvm_op_type pvm_op_attach_interface = {
        .name = "attach_interface",
        .version = 1,
        .steps = attach_steps,
        .nsteps = sizeof(attach_steps) / sizeof(attach_steps[0]),
        .max_attempts = 30,
        .deadline_ms = 10LL * 60 * 1000,
        .validate = validate_attach,
        .requires_instance = true,
};

/* ---- detach_interface ---- */

static void detach_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!pwr_check_instance(ctx, res))
		return;
	json_t *vifs = vif_array(ctx);
	pvm_vif_remove(ctx, res, vifs, false);
	if (res->verdict == PVM_STEP_DONE) {
		json_t *r = removal_result(ctx, vifs);
		json_t *rm = json_object_get(r, "removed");
		json_t *mac = json_array_size(rm) ? json_array_get(rm, 0)
		                                  : json_array_get(json_object_get(r, "absent"), 0);
		json_object_set(r, "mac", mac);
		json_object_set_new(r, "found", json_boolean(json_array_size(rm) > 0));
		json_object_del(r, "removed");
		json_object_del(r, "absent");
		res->result = r;
	}
	json_decref(vifs);
}

static const struct pvm_step_def detach_steps[] = {
        {"detach", detach_run, NULL, NULL, NULL},
};

static int validate_detach(const json_t *p, char *field, size_t fn, char *msg, size_t mn)
{
	return validate_vif_op(p, "detach_interface", field, fn, msg, mn);
}

const struct pvm_op_type pvm_op_detach_interface = {
        .name = "detach_interface",
        .version = 1,
        .steps = detach_steps,
        .nsteps = sizeof(detach_steps) / sizeof(detach_steps[0]),
        .max_attempts = 30,
        .deadline_ms = 10LL * 60 * 1000,
        .validate = validate_detach,
        .requires_instance = true,
};

/* ---- plug_vifs ---- */

static void plug_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!pwr_check_instance(ctx, res))
		return;
	const json_t *vifs = param_list(ctx);
	if (json_array_size(vifs) == 0) {
		/* nothing to plug, but the instance must exist (nova's InstanceNotFound) */
		struct pwr_quick q;
		if (!pwr_read_or_fail(ctx, &q, res))
			return;
	}
	pvm_vif_ensure(ctx, res, vifs, "params.network_info", false, PVM_VIF_EVENTS_CREATED);
	if (res->verdict == PVM_STEP_DONE) {
		json_t *r = base_result(ctx);
		json_t *a = adapters_of(ctx, vifs);
		size_t created = 0;
		for (size_t i = 0; i < json_array_size(a); i++)
			created += json_is_true(json_object_get(json_array_get(a, i), "created"));
		json_object_set_new(r, "adapters", a);
		json_object_set_new(r, "created", json_integer((json_int_t)created));
		res->result = r;
	}
}

static void plug_undo(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	pvm_vif_remove(ctx, res, param_list(ctx), true);
}

static void plug_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	pvm_vif_reconcile(ctx, res, param_list(ctx));
}

static const struct pvm_step_def plug_steps[] = {
        {"plug_vifs", plug_run, plug_undo, plug_reconcile, NULL},
};

static int validate_list_op(const json_t *p, const char *type, char *field, size_t fn, char *msg,
                            size_t mn)
{
	static const char *const known[] = {"instance", "network_info", NULL};
	int rc = pwr_validate_known(p, type, known, field, fn, msg, mn);
	if (rc)
		return rc;
	const json_t *l = json_object_get(p, "network_info");
	if (!json_is_array(l)) {
		snprintf(field, fn, "params.network_info");
		snprintf(msg, mn, "required: an array of VIFs (nova's network_info)");
		return PVM_EINVAL;
	}
	return pvm_vif_validate_list(l, "params.network_info", field, fn, msg, mn);
}

static int validate_plug(const json_t *p, char *field, size_t fn, char *msg, size_t mn)
{
	return validate_list_op(p, "plug_vifs", field, fn, msg, mn);
}

const struct pvm_op_type pvm_op_plug_vifs = {
        .name = "plug_vifs",
        .version = 1,
        .steps = plug_steps,
        .nsteps = sizeof(plug_steps) / sizeof(plug_steps[0]),
        .max_attempts = 30,
        .deadline_ms = 10LL * 60 * 1000,
        .validate = validate_plug,
        .requires_instance = true,
};

/* ---- unplug_vifs ---- */

static void unplug_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!pwr_check_instance(ctx, res))
		return;
	const json_t *vifs = param_list(ctx);
	pvm_vif_remove(ctx, res, vifs, false);
	if (res->verdict == PVM_STEP_DONE)
		res->result = removal_result(ctx, vifs);
}

static const struct pvm_step_def unplug_steps[] = {
        {"unplug_vifs", unplug_run, NULL, NULL, NULL},
};

static int validate_unplug(const json_t *p, char *field, size_t fn, char *msg, size_t mn)
{
	return validate_list_op(p, "unplug_vifs", field, fn, msg, mn);
}

const struct pvm_op_type pvm_op_unplug_vifs = {
        .name = "unplug_vifs",
        .version = 1,
        .steps = unplug_steps,
        .nsteps = sizeof(unplug_steps) / sizeof(unplug_steps[0]),
        .max_attempts = 30,
        .deadline_ms = 10LL * 60 * 1000,
        .validate = validate_unplug,
        .requires_instance = true,
};
