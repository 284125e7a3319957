/* op_power.h: what the power operations (power_off, power_on, reboot,
 * resume_state_on_host_boot) share, and what the daemon's reads use of them: the mapping of
 * PowerVM partition states to nova power states, and the set of instances being rebooted.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef PVM_WORKERS_OP_POWER_H
#define PVM_WORKERS_OP_POWER_H

#include "pvm/client.h"
#include "pvm/engine.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* nova.compute.power_state values. */
enum pvm_nova_power_state {
	PVM_NOVA_NOSTATE = 0,
	PVM_NOVA_RUNNING = 1,
	PVM_NOVA_PAUSED = 3,
	PVM_NOVA_SHUTDOWN = 4,
	PVM_NOVA_CRASHED = 6,
	PVM_NOVA_SUSPENDED = 7,
};

/* The nova power state of a PowerVM PartitionState (nova-powervm's mapping; case is
 * ignored; NULL or an unknown state: NOSTATE). */
enum pvm_nova_power_state pvm_nova_power_state(const char *partition_state);
/* "NOSTATE", "RUNNING", "PAUSED", "SHUTDOWN", "CRASHED", "SUSPENDED" ("NOSTATE" for others). */
const char *pvm_nova_power_state_name(int state);

/* Instances with a reboot operation between its first step and its end (in this process):
 * GET /v1/instances reports them as rebooting, for nova's poll_rebooting_instances. */
bool pvm_ops_rebooting(const char *instance_uuid);
void pvm_ops_rebooting_set(const char *instance_uuid, bool on);

/* ---- internal to workers/op_power*.c and op_reboot.c ---- */

/* Partition state as the quick properties tell it. */
struct pwr_quick {
	char state[48]; /* PartitionState */
	char rmc[32];   /* RMCState ("" when not given) */
};

/* Reads LogicalPartition/{derived uuid}/quick. 0, PVM_ENOTFOUND or a client error. */
int pwr_read(struct pvm_step_ctx *ctx, struct pwr_quick *q, struct pvm_rest_error *err);
/* Sets res from a client error (RETRY when transient, FAIL otherwise). */
void pwr_rest_failure(struct pvm_step_result *res, int rc, const struct pvm_rest_error *err,
                      const char *what);
/* Reads the state into res on failure; returns false then (res set). A missing partition
 * fails the step (nova's InstanceNotFound). */
bool pwr_read_or_fail(struct pvm_step_ctx *ctx, struct pwr_quick *q, struct pvm_step_result *res);
/* True when the engine runs with a PowerVM client; FAIL otherwise (unit-test engines). */
bool pwr_need_client(struct pvm_step_ctx *ctx, struct pvm_step_result *res);
/* Checks that params.instance.uuid is the operation's instance_uuid; FAIL otherwise. */
bool pwr_check_instance(struct pvm_step_ctx *ctx, struct pvm_step_result *res);
/* The root of the derived partition: "uom/LogicalPartition/UUID". */
void pwr_root(const struct pvm_step_ctx *ctx, char *out, size_t n);
/* A result object {"partition_uuid", "state", "power_state"} plus extra (stolen; may be
 * NULL). */
json_t *pwr_result(struct pvm_step_ctx *ctx, const char *state, json_t *extra);

bool pwr_is_off(const char *state);    /* not activated */
bool pwr_is_on(const char *state);     /* running, open firmware, migrating running */
bool pwr_is_moving(const char *state); /* starting, shutting down, suspending, resuming */
bool pwr_rmc_active(const struct pwr_quick *q);

/* The progressive power off of one step (power_off, and reboot with restart): stages
 * "os" (PowerOff operation=osshutdown, when RMC is active), "vsp" (operation=shutdown),
 * "hard" (operation=shutdown immediate=true); the first two end at stage_timeout_ms (0:
 * start at "hard"), then the job is cancelled and the next stage starts; a failed job of
 * a clean stage escalates as well. restart adds restart=true to every stage. DONE when
 * the last job sent completed (or reconcile found its effect present). Checkpoint keys in
 * ctx->data: "stage", "stage_started", "escalations", and one per stage. */
void pwr_off_progressive(struct pvm_step_ctx *ctx, struct pvm_step_result *res, bool restart,
                         int64_t stage_timeout_ms, bool start_hard);
/* The power-on logic of power_on (also used by resume_state_on_host_boot): on, or
 * starting = done (*already when no job was sent); shutting down = wait; not activated or
 * error = PowerOn job (pwr_on_job). Records the state seen under "state" in ctx->data. */
void pwr_power_on_step(struct pvm_step_ctx *ctx, struct pvm_step_result *res, bool *already);
/* A PowerOn job under key "on" (job failures retried up to 3 times). DONE when it
 * completed or the partition is on. */
void pwr_on_job(struct pvm_step_ctx *ctx, struct pvm_step_result *res);

/* Reconciles (struct pvm_step_def.reconcile) of the steps above. */
void pwr_off_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res);
void pwr_on_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res);
void pwr_restart_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res);

/* Validation shared by the four types: params.instance (an object with "uuid", a UUID, and
 * an optional "name" string; other members nova passes are accepted). */
int pwr_validate_instance(const json_t *p, char *field, size_t fn, char *msg, size_t mn);
/* Refuses top-level params not in known (NULL-terminated), naming the first unknown one. */
int pwr_validate_only(const json_t *p, const char *type, const char *const *known, char *field,
                      size_t fn, char *msg, size_t mn);
/* pwr_validate_only, then pwr_validate_instance. */
int pwr_validate_known(const json_t *p, const char *type, const char *const *known, char *field,
                       size_t fn, char *msg, size_t mn);
/* A number of seconds in [0, max] at key (absent: ok). */
int pwr_validate_seconds(const json_t *p, const char *key, double max, char *field, size_t fn,
                         char *msg, size_t mn);
/* params[key] in seconds as ms, or def_ms when absent. */
int64_t pwr_param_ms(const json_t *p, const char *key, int64_t def_ms);

#endif
