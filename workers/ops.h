/* ops.h: the operation types the engine runs (one file each in workers/). */
#ifndef PVM_WORKERS_OPS_H
#define PVM_WORKERS_OPS_H

#include "pvm/engine.h"

extern const struct pvm_op_type pvm_op_test_steps;
extern const struct pvm_op_type pvm_op_test_jobs;
extern const struct pvm_op_type pvm_op_power_off;
extern const struct pvm_op_type pvm_op_power_on;
extern const struct pvm_op_type pvm_op_reboot;
extern const struct pvm_op_type pvm_op_resume_state_on_host_boot;
extern const struct pvm_op_type pvm_op_attach_interface;
extern const struct pvm_op_type pvm_op_detach_interface;
extern const struct pvm_op_type pvm_op_plug_vifs;
extern const struct pvm_op_type pvm_op_unplug_vifs;
extern const struct pvm_op_type pvm_op_test_vifs;
extern const struct pvm_op_type pvm_op_cache_image;   /* internal: the image API's */
extern const struct pvm_op_type pvm_op_uncache_image; /* internal: the image API's */
extern const struct pvm_op_type pvm_op_spawn;
extern const struct pvm_op_type pvm_op_destroy;

/* Registers every operation type with e. Returns 0 or the first error. */
int pvm_ops_register_all(struct pvm_engine *e);

#endif
