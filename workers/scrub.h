/* scrub.h: the start-up scrub (powervm_scrub = off | dry-run | on; docs/operations.md,
 * Scrub). It looks at THIS managed system's VIOSes only: their vSCSI mappings and the
 * virtual disks and optical media of their volume groups, and finds
 *   - mappings that serve nothing: no Storage, no ClientAdapter (server side only: the
 *     client partition was deleted), or an AssociatedLogicalPartition that no longer exists;
 *   - virtual disks `b_<13 hex>` and media `cfg_<29 hex>.iso` (ours, by name: workers/names.h)
 *     whose instance has no partition (none whose UUID starts with the derived prefix) and
 *     is not in nova's list.
 * It never touches an object of an instance with an operation in flight in the journal,
 * an object still mapped to a live partition, a logical unit of a shared storage pool
 * (LU mappings of dead partitions are unmapped, the LU is left), physical volumes, or any
 * object of another managed system. Disks and media are removed only once nova's list is
 * known (POST /v1/reconcile); before, they are reported as deferred.
 *
 * The decision logic (pvm_scrub_judge_*, pvm_scrub_plan_vios) is pure: the unit tests
 * drive it with views built by hand. pvm_scrubber runs passes against PowerVM: one at
 * start-up (pvm_scrubber_run, in the caller's thread, before the workers start), then one
 * each time nova's list arrives (its own thread, "pvm-scrub").
 *
 * Thread-safety: the judge and plan functions are reentrant. A scrubber's functions may be
 * called from any thread, except pvm_scrubber_destroy() (once, at shutdown).
 */
#ifndef PVM_WORKERS_SCRUB_H
#define PVM_WORKERS_SCRUB_H

#include "pvm/config.h"
#include "pvm/pvm_objects.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct pvm_client;
struct pvm_queue;
struct pvm_metrics;

enum pvm_scrub_kind {
	PVM_SCRUB_KIND_MAPPING = 0,
	PVM_SCRUB_KIND_VDISK,
	PVM_SCRUB_KIND_MEDIA,
	PVM_SCRUB_KIND_COUNT
};
/* "mapping", "vdisk", "media" (the metrics' kind label). */
const char *pvm_scrub_kind_name(enum pvm_scrub_kind k);

enum pvm_scrub_verdict {
	PVM_SCRUB_KEEP = 0,  /* not an orphan, or not ours */
	PVM_SCRUB_ORPHAN,    /* removed (on), reported (dry-run) */
	PVM_SCRUB_DEFER,     /* a disk or media without partition while nova's list is unknown */
	PVM_SCRUB_IN_FLIGHT, /* would be an orphan, but its instance has an operation in flight */
	PVM_SCRUB_VERDICT_COUNT
};
const char *pvm_scrub_verdict_name(enum pvm_scrub_verdict v);

/* What one pass knows. UUIDs in any case. */
struct pvm_scrub_facts {
	const char *const *partitions; /* every partition and VIOS of this managed system */
	size_t n_partitions;
	const char *const *in_flight; /* instances with an operation in flight */
	size_t n_in_flight;
	bool nova_known; /* nova's list has been received */
	const char *const *nova;
	size_t n_nova;
};

/* A mapping: ORPHAN when it has no ClientAdapter, its partition is gone, or it has no
 * Storage; IN_FLIGHT when its partition is the derived partition of an instance in flight,
 * or its storage is ours by name for such an instance; else KEEP. *why: a static text. */
enum pvm_scrub_verdict pvm_scrub_judge_mapping(const struct pvm_scrub_facts *f,
                                               const struct pvm_vscsi_mapping *m, const char **why);

/* A virtual disk (kind VDISK: `b_` names) or media (kind MEDIA: `cfg_` names) by name.
 * Other names are KEEP ("not ours"). prefix (33 bytes) receives the instance's hex prefix
 * ("" when not ours). */
enum pvm_scrub_verdict pvm_scrub_judge_object(const struct pvm_scrub_facts *f,
                                              enum pvm_scrub_kind kind, const char *name,
                                              char prefix[33], const char **why);

struct pvm_scrub_finding {
	enum pvm_scrub_kind kind;
	enum pvm_scrub_verdict verdict; /* never KEEP */
	const char *why;
	char name[64];      /* disk or media name; for a mapping its server adapter (vhostN) */
	char partition[40]; /* mapping: the partition UUID of its link ("" when none) */
	char storage[96];   /* mapping: "virtual disk b_..." / "none" */
	char prefix[33];    /* disk or media: the instance's hex prefix */
	size_t index;       /* mapping: position among the VIOS's mappings */
	size_t group;       /* disk or media: index of its volume group in vgs */
};

/* Plans one VIOS: its mappings, then the disks and media of its volume groups vgs[0..nvg).
 * A disk or media still carried by a mapping that is kept (a live partition's) is kept;
 * one carried by a mapping in flight is in flight. *out (heap array, free()) holds the
 * findings that are not KEEP, mappings first. Returns 0 or PVM_ENOMEM. */
int pvm_scrub_plan_vios(const struct pvm_scrub_facts *f, const struct pvm_vios *v,
                        const struct pvm_volume_group *vgs, size_t nvg,
                        struct pvm_scrub_finding **out, size_t *n);

/* ---- the scrubber: passes against PowerVM ---- */
struct pvm_scrubber;

struct pvm_scrubber_opts {
	enum pvm_scrub_mode mode;
	struct pvm_client *client;   /* required */
	struct pvm_queue *queue;     /* required: the journal, for operations in flight */
	struct pvm_metrics *metrics; /* optional: the powervmd_scrub_* series */
	const char *ms_uuid;         /* required: this managed system */
	/* Optional: while it returns true (powervmd is paused), passes of mode on only report,
	 * as dry-run does, so that nothing changes before the operator resumes. */
	bool (*hold)(void *arg);
	void *hold_arg;
};

/* Declares the metrics (zero series per kind). Returns 0, PVM_EINVAL, PVM_ENOMEM. */
int pvm_scrubber_create(const struct pvm_scrubber_opts *opts, struct pvm_scrubber **out);
/* One pass now, in the calling thread (trigger: "start-up", "reconcile"). Does nothing when
 * the mode is off. Errors are logged and counted; returns 0 or the pass's first error. */
int pvm_scrubber_run(struct pvm_scrubber *s, const char *trigger);
/* Starts the thread that runs a pass after each pvm_scrubber_nova_list() (not when off). */
int pvm_scrubber_start(struct pvm_scrubber *s);
/* Nova's view as POSTed to /v1/reconcile ({"instances":[{"uuid",...}]}): its UUIDs replace
 * the list kept in memory, and a pass is scheduled. */
void pvm_scrubber_nova_list(struct pvm_scrubber *s, const json_t *view);
/* GET /v1/scrub: {"mode","passes","running","nova_list":{...},"last":report|null}. */
json_t *pvm_scrubber_report(struct pvm_scrubber *s);
/* Stops the thread (a pass in progress ends at its next request boundary) and frees.
 * NULL is a no-op. */
void pvm_scrubber_destroy(struct pvm_scrubber *s);

#endif
