/* vif.h: the network interfaces of an instance (nova's VIFs) as PowerVM client network
 * adapters, and the steps that create, announce and remove them.
 *
 * A VIF (an entry of nova's network_info) becomes one client network adapter (CNA) on the
 * partition derived from the instance UUID: its MAC is the VIF's "address" (nova's
 * aa:bb:cc:dd:ee:ff, written as PowerVM wants it: 12 upper-case hex digits), its PVID the
 * VIF's VLAN (details.vlan, else network.meta.vlan), its virtual switch details.vswitch
 * or powervm_default_vswitch. The MAC is the adapter's identity: every step finds what an
 * earlier attempt created by it. After creating an adapter a step announces it to the
 * PowerVM network agent with a custom event (PUT uom/Event, EventData the adapter's URI,
 * EventDetail {"provider": "NOVA_PVM_VIF", "action": "plug", "mac", "type"}); removing one
 * sends the same with "unplug" first. Events are idempotent enough to send again after a
 * crash.
 *
 * Supported vif types: "pvm_sea" (a client adapter bridged by a VIOS Shared Ethernet
 * Adapter, nova-powervm's PvmSeaVifDriver). The other types nova-powervm knew ("ovs",
 * "bridge": a trunk adapter on the NovaLink partition; "pvm_sriov": a vNIC) are refused at
 * validation.
 *
 * Thread-safety: every function is reentrant (steps run on any worker thread).
 */
#ifndef PVM_WORKERS_VIF_H
#define PVM_WORKERS_VIF_H

#include "pvm/engine.h"

#include <jansson.h>
#include <stddef.h>

#define PVM_VIF_MAX             64           /* VIFs in one network_info */
#define PVM_VIF_MGMT_SWITCH     "MGMTSWITCH" /* the RMC management adapter's virtual switch */
#define PVM_VIF_MGMT_VLAN       4094
#define PVM_VIF_DEFAULT_VSWITCH "ETHERNET0(Default)"

/* The vif types this build plugs, NULL-terminated ("pvm_sea"). */
extern const char *const pvm_vif_types[];

/* Normalises a MAC address: "aa:bb:cc:dd:ee:ff", "aa-bb-cc-dd-ee-ff" (one separator kind)
 * or 12 hex digits, any case, into 12 upper-case hex digits (out: 13 bytes). Returns 0 or
 * PVM_EINVAL (out is then ""). Syntax only: multicast and zero addresses pass here. */
int pvm_vif_mac_normalize(const char *in, char out[13]);

/* Validation of params.network_info (an array; NULL or JSON null is an empty list) or of
 * one VIF, naming the bad field under prefix ("params.network_info" gives
 * "params.network_info[1].address"; "params.vif" gives "params.vif.details.vlan"). A VIF
 * is an object with "address" (a unicast MAC, required), "type" (a supported vif type,
 * required), "id" (string, optional), "details" (object, optional: "vlan" 1..4094 as an
 * integer or a decimal string, "vswitch" a switch name of 1 to 63 characters), "network"
 * (object, optional: "meta.vlan" as details.vlan); a VLAN is required in one of the two.
 * A list holds at most PVM_VIF_MAX VIFs with distinct MACs. Returns 0 or PVM_EINVAL with
 * field and msg filled. */
int pvm_vif_validate_list(const json_t *network_info, const char *prefix, char *field, size_t fn,
                          char *msg, size_t mn);
int pvm_vif_validate_one(const json_t *vif, const char *prefix, char *field, size_t fn, char *msg,
                         size_t mn);

/* ---- steps of spawn and destroy (struct pvm_step_def functions) ----
 *
 * Each acts on the partition derived from ctx->op->instance_uuid and reads its VIFs from
 * ctx->op->params.network_info (validated at submission with pvm_vif_validate_list). None
 * sets res->result: the operation's own steps report. Each owns its step's checkpoint
 * (ctx->data: keys "vifs", "removed", "unplugged", "partition_found", "adapter", "done",
 * "skipped", "cna_<MAC>", "mgmt_cna"): give each its own step, do not share one step
 * between two of them. */

/* spawn's "vifs": one adapter per VIF, each followed by its plug event; the progress is
 * committed after each VIF, so a restart continues with the next one. An adapter already
 * there with the VIF's MAC is taken as it is (an earlier attempt's). A missing partition
 * fails (error_code instance_not_found); an unknown switch fails naming it. */
void pvm_vif_spawn_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res);
/* Unplug event and delete of every adapter of the partition with a MAC of network_info
 * (waiting first for a create that may still be in flight). A missing partition is done. */
void pvm_vif_spawn_undo(struct pvm_step_ctx *ctx, struct pvm_step_result *res);
/* DONE when every VIF of network_info has its adapter (by MAC), else WAIT ("not done"). */
void pvm_vif_spawn_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res);

/* spawn's "mgmt_vif": when ctx->config->use_rmc_mgmt_vif (true when ctx->config is NULL),
 * one adapter on switch MGMTSWITCH, PVID 4094, its MAC chosen by the server; found again
 * by its switch. No plug event (the network agent does not manage it). MGMTSWITCH missing
 * fails naming it. */
void pvm_vif_mgmt_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res);
void pvm_vif_mgmt_undo(struct pvm_step_ctx *ctx, struct pvm_step_result *res);
void pvm_vif_mgmt_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res);

/* destroy's "unplug_vifs": an unplug event for each adapter of the partition but the RMC
 * management one (type: the VIF's of network_info with that MAC, else "pvm_sea"); the
 * adapters themselves go with the partition's delete. A missing partition is done. */
void pvm_vif_destroy_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res);

/* ---- shared with the interface operations (op_interfaces.c) ---- */

enum pvm_vif_events {
	PVM_VIF_EVENTS_ALL = 0, /* a plug event for every VIF (spawn, attach_interface) */
	PVM_VIF_EVENTS_CREATED  /* only for adapters this operation created (plug_vifs) */
};

/* Ensures an adapter per VIF of vifs (an array of validated VIFs; field names under prefix,
 * indexed unless single) with plug events as events says. Per-VIF state in
 * ctx->data["vifs"][MAC]: {"uuid", "href", "slot", "vlan", "vswitch", "type", "created",
 * "plugged", "done"}. DONE when all are done. */
void pvm_vif_ensure(struct pvm_step_ctx *ctx, struct pvm_step_result *res, const json_t *vifs,
                    const char *prefix, bool single, enum pvm_vif_events events);
/* Unplug event and delete of the adapters of vifs found on the partition (only those
 * ctx->data["vifs"] marks created when only_created). State in ctx->data["removed"][MAC]:
 * "removed" or "absent". A missing partition is done, with ctx->data["partition_found"]
 * false. */
void pvm_vif_remove(struct pvm_step_ctx *ctx, struct pvm_step_result *res, const json_t *vifs,
                    bool only_created);
/* DONE when every VIF of vifs has its adapter on the partition (by MAC), else WAIT. */
void pvm_vif_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res, const json_t *vifs);
/* The failure of a missing partition, as the power operations report it (error_code
 * instance_not_found). */
void pvm_vif_not_found(struct pvm_step_ctx *ctx, struct pvm_step_result *res);

#endif
