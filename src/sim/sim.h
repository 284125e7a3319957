/* sim.h: pvmsim, a stateful TEST DOUBLE of the PowerVM REST API (HMC and NovaLink).
 *
 * pvmsim is never a backend for a real cloud: it stands in for an HMC or NovaLink in the
 * demo, the functional and crash tests and the benchmarks.
 *
 * Public part (top of this file): start and stop a simulator in-process, as the pvmsim
 * program and the tests do. Internal part (below "internal"): the object model, jobs,
 * events, faults and rendering shared by the files of src/sim.
 *
 * Thread-safety: pvm_sim_create() and pvm_sim_destroy() are called by one thread; the
 * accessors may be called from any thread while the simulator runs.
 */
#ifndef PVM_SIM_H
#define PVM_SIM_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pvm_sim;

enum pvm_sim_mode { PVM_SIM_HMC = 0, PVM_SIM_NOVALINK };

struct pvm_sim_opts {
	const char *listen_host; /* "127.0.0.1" */
	int port;                /* 0: any free port, see pvm_sim_port() */
	enum pvm_sim_mode mode;
	const char *state_dir;   /* required; created when missing */
	const char *config_path; /* optional JSON config file (docs/pvmsim.md) */
	const char *tls_cert;    /* both or neither: PEM files, serve HTTPS */
	const char *tls_key;
	bool quiet; /* no start-up banner on stdout */
};

/* Loads config, inventory and saved state, then serves. Returns 0, PVM_ECONFIG (bad config
 * or inventory, logged), PVM_ECORRUPT (unreadable state file), -errno. */
int pvm_sim_create(const struct pvm_sim_opts *opts, struct pvm_sim **out);
/* Stops serving (resuming parked long-polls first), joins threads, frees. NULL is a no-op. */
void pvm_sim_destroy(struct pvm_sim *sim);
/* The bound TCP port. */
int pvm_sim_port(const struct pvm_sim *sim);
/* The fault seed in effect (printed at start). */
uint64_t pvm_sim_seed(struct pvm_sim *sim);
/* Parses "hmc" / "novalink". Returns 0 or PVM_EINVAL. */
int pvm_sim_mode_parse(const char *s, enum pvm_sim_mode *out);

/* ---------------------------------------------------------------- internal ---------- */

#define SIM_NS_UOM   "http://www.ibm.com/xmlns/systems/power/firmware/uom/mc/2012_10/"
#define SIM_NS_WEB   "http://www.ibm.com/xmlns/systems/power/firmware/web/mc/2012_10/"
#define SIM_NS_ATOM  "http://www.w3.org/2005/Atom"
#define SIM_UUID_LEN 37

/* A growable string. */
#include "pvm/buf.h"
char *sb_take(struct pvm_buf *b); /* hands the buffer over (never NULL) */

/* Hashes and identifiers. */
uint64_t sim_mix64(uint64_t x);
uint64_t sim_hash_str(uint64_t h, const char *s);
/* Deterministic name-based UUID (upper-case when upper) from a seed string. */
void sim_uuid_from(const char *seed, bool upper, char out[SIM_UUID_LEN]);
/* Random UUID (lower-case). */
void sim_uuid_random(char out[SIM_UUID_LEN]);
/* Random URL-safe token of n characters (n < size). */
void sim_token(char *out, size_t n);

/* Object kinds. Physical volumes and FC ports are served inside their VIOS; the others
 * have URLs of their own (docs/pvmsim.md). */
enum sim_kind {
	SIM_MS = 0,  /* ManagedSystem */
	SIM_LPAR,    /* LogicalPartition */
	SIM_VIOS,    /* VirtualIOServer */
	SIM_VSWITCH, /* VirtualSwitch (child of a ManagedSystem) */
	SIM_VG,      /* VolumeGroup (child of a VIOS), with its media repository */
	SIM_PV,      /* PhysicalVolume (of a VIOS) */
	SIM_FCPORT,  /* physical FC port (of a VIOS) */
	SIM_SSP,     /* SharedStoragePool, props.tiers[] */
	SIM_TIER,    /* Tier (child of an SSP) */
	SIM_LU,      /* LogicalUnit (child of a Tier) */
	SIM_CNA,     /* ClientNetworkAdapter (child of a LogicalPartition) */
	SIM_FILE,    /* web File (upload), no parent */
	SIM_KIND_COUNT
};
const char *sim_kind_name(enum sim_kind k); /* schema type: "LogicalPartition" */
int sim_kind_parse(const char *s, enum sim_kind *out);

/* One object. props holds the kind's fields (docs/pvmsim.md, "state file"). */
struct sim_obj {
	enum sim_kind kind;
	char uuid[SIM_UUID_LEN];
	char parent[SIM_UUID_LEN]; /* owning ManagedSystem / VIOS / SSP, "" for none */
	uint64_t gen;              /* bumped by every change: part of the ETag */
	int64_t created_ms;
	json_t *props;
};

/* Extended attribute groups (?group=). */
enum {
	SIM_G_HYPERVISOR = 1 << 0,
	SIM_G_SYSNET = 1 << 1,
	SIM_G_VIOS_STORAGE = 1 << 2,
	SIM_G_VIOS_NETWORK = 1 << 3,
	SIM_G_VIOS_FC = 1 << 4,
	SIM_G_VIOS_SCSI = 1 << 5,
	SIM_G_ADVANCED = 1 << 6,
	SIM_G_ALL = (1 << 7) - 1
};
/* Parses a ?group= value (NULL: all groups). */
unsigned sim_groups_parse(const char *q);
/* ETag of one representation. */
int32_t sim_etag(const struct sim_obj *o, unsigned groups);

/* Jobs. */
enum sim_job_status {
	SIM_JOB_NOT_STARTED = 0,
	SIM_JOB_RUNNING,
	SIM_JOB_COMPLETED_OK,
	SIM_JOB_COMPLETED_WITH_WARNINGS,
	SIM_JOB_COMPLETED_WITH_ERROR,
	SIM_JOB_FAILED_BEFORE_COMPLETION
};
const char *sim_job_status_name(enum sim_job_status s);

#define SIM_JOB_MAX_STEPS 6
/* One timed step of a job: at t_ms after acceptance, set the target's state. */
struct sim_job_step {
	int64_t at_ms;
	char state[24]; /* "" : no partition change */
};

struct sim_job {
	uint64_t id;
	char op[48];
	char group[32]; /* schema type of the target: LogicalPartition, ... */
	char target[SIM_UUID_LEN];
	char *request_url; /* relative: LogicalPartition/UUID/do/PowerOn */
	json_t *params;    /* array of [name, value] */
	enum sim_job_status status;
	int64_t accepted_ms, started_ms, completed_ms; /* wall clock */
	int64_t t0_ns;                                 /* monotonic acceptance time */
	int64_t run_at_ms, end_at_ms;                  /* offsets from t0 */
	struct sim_job_step steps[SIM_JOB_MAX_STEPS];
	int nsteps, next_step;
	char start_state[24];
	bool fail; /* decided at start: ends COMPLETED_WITH_ERROR */
	char *fail_msg;
	bool cancel;
	int64_t done_ns; /* monotonic time it became terminal */
	struct sim_job *next;
};

/* Events. */
struct sim_event {
	uint64_t id;
	char type[24];
	char *data;   /* object URI (relative path: "LogicalPartition/UUID") */
	char *detail; /* "PartitionState,Other", ... */
	int64_t ms;
};

#define SIM_EVENT_RING    4096
#define SIM_EVENT_CLIENTS 64
struct sim_evclient {
	char key[96];
	uint64_t cursor; /* next event id to deliver */
	int64_t last_seen_ns;
	bool used;
};

/* Fault configuration (GET/PUT /sim/faults, "faults" of the config file). */
enum sim_fault_kind {
	SIM_F_NONE = 0,
	SIM_F_VIOS_BUSY, /* 500, HttpErrorResponse with HSCL3205 / VIOS0014 */
	SIM_F_500,
	SIM_F_503,
	SIM_F_RESET,   /* connection closed without an answer */
	SIM_F_LATENCY, /* answer delayed by latency_ms (the request thread is not held) */
	SIM_F_412      /* 412 on updates and deletes (a "412 storm") */
};
struct sim_fault_rule {
	char method[12];   /* "*" or a verb */
	char pattern[256]; /* fnmatch(3) pattern over the path */
	enum sim_fault_kind kind;
	double rate;    /* probability per request */
	uint64_t first; /* also: the first N requests of each matching path */
	int latency_ms;
};
#define SIM_MAX_RULES 32
struct sim_faults {
	uint64_t seed;
	struct sim_fault_rule rules[SIM_MAX_RULES];
	int nrules;
	uint64_t session_expiry_requests; /* 0: never */
	json_t *job_failure_rates;        /* {"PowerOff": 0.5, ...} */
};
const char *sim_fault_kind_name(enum sim_fault_kind k);
/* Parses a faults JSON object into f (replacing it). keep_seed: seed absent keeps f->seed.
 * Returns 0 or PVM_EINVAL with a message in err. */
int sim_faults_parse(json_t *j, struct sim_faults *f, char *err, size_t errn);
json_t *sim_faults_dump(const struct sim_faults *f);
void sim_faults_fini(struct sim_faults *f);

/* Per-(method, path) request counters feeding fault decisions. */
struct sim_counter {
	uint64_t key;
	uint64_t count;
};
#define SIM_COUNTERS (1u << 16)

/* Sessions. */
struct sim_session {
	char token[96];
	char *file; /* token file (file-based logon) or NULL */
	int64_t last_ns;
	uint64_t requests;
	struct sim_session *next;
};
#define SIM_MAX_SESSIONS 1024

/* Audit. */
#define SIM_AUDIT_RING 10000

/* Timing of jobs and sessions (config "timing"). */
struct sim_timing {
	int job_not_started_ms; /* NOT_STARTED before RUNNING */
	int job_duration_ms;    /* normal power on / off */
	int job_immediate_ms;   /* immediate power off */
	int job_generic_ms;     /* other operations */
	int session_idle_ms;    /* token expiry after this idle time */
	int event_wait_ms;      /* long-poll wait before an empty feed */
	int finished_job_keep_s;
	int max_finished_jobs;
	int pcm_interval_ms; /* a new LongTermMonitor sample at most this often */
};

/* One LongTermMonitor sample (pcm): the phyp JSON document of a system at a time. */
#define SIM_PCM_SAMPLES 16
struct sim_pcm_sample {
	char ms[SIM_UUID_LEN];
	char name[160]; /* LTM_<mtms>_phyp_<time>.json */
	int64_t t_ms;
	char *doc;
};

/* A connection parked (suspended) for latency or an event long-poll. */
struct sim_parked {
	void *conn; /* struct MHD_Connection * */
	void *req;  /* struct sim_req * */
	int64_t wake_ns;
	bool event_wait;
	char evkey[96];
	struct sim_parked *next;
};

struct pvm_sim {
	/* Fixed after create. */
	enum pvm_sim_mode mode;
	char *state_dir;
	char *user, *password;
	char base[128]; /* scheme://host:port */
	bool tls;
	int port;
	json_t *inventory; /* the inventory as loaded (for /sim/reset) */
	struct sim_timing timing;
	char console_uuid[SIM_UUID_LEN];
	void *daemon; /* struct MHD_Daemon * */
	bool quiet;

	/* lock guards everything below it up to "persist". Lock order: lock, then MHD's own
	 * locks (the handler suspends under lock); persist_lock and audit_lock are never
	 * taken with lock held, and never together. */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* wakes the ticker: new job, parked connection, stop */
	uint64_t kicks;      /* bumped with every signal of cond, so none is lost */
	struct sim_obj **objs;
	size_t nobjs, capobjs;
	uint64_t state_seq; /* bumped by every mutation */
	struct sim_job *jobs;
	uint64_t next_job_id;
	size_t njobs;
	struct sim_session *sessions;
	size_t nsessions;
	struct sim_event ring[SIM_EVENT_RING];
	uint64_t next_event_id; /* ids start at 1; ring[id % SIM_EVENT_RING] */
	struct sim_evclient clients[SIM_EVENT_CLIENTS];
	struct sim_faults faults;
	struct sim_counter *counters; /* open addressing, SIM_COUNTERS slots */
	size_t ncounters;
	struct sim_parked *parked;
	bool no_park; /* guarded by lock: set at stop, nothing parks after */
	bool stopping;
	pthread_t ticker;
	bool ticker_started;
	struct sim_pcm_sample pcm[SIM_PCM_SAMPLES];
	uint64_t pcm_next;

	/* persist */
	pthread_mutex_t persist_lock; /* guards persisted_seq and the state file */
	uint64_t persisted_seq;

	pthread_mutex_t audit_lock; /* guards audit_fd and the ring */
	int audit_fd;
	char *audit_ring[SIM_AUDIT_RING];
	uint64_t audit_count;
};

/* model.c (callers hold sim->lock unless noted) */
struct sim_obj *sim_obj_new(struct pvm_sim *sim, enum sim_kind kind, const char *uuid,
                            const char *parent, json_t *props);
struct sim_obj *sim_obj_find(struct pvm_sim *sim, enum sim_kind kind, const char *uuid);
void sim_obj_remove(struct pvm_sim *sim, struct sim_obj *o);
void sim_obj_touch(struct pvm_sim *sim, struct sim_obj *o); /* gen++, state_seq++ */
void sim_objs_clear(struct pvm_sim *sim);
/* Builds objects from an inventory JSON (NULL: the default inventory). */
int sim_inventory_load(struct pvm_sim *sim, json_t *inv, char *err, size_t errn);
json_t *sim_inventory_default(void);
/* State file: load (0, -ENOENT, PVM_ECORRUPT) and snapshot (under lock) / write (no lock). */
int sim_state_load(struct pvm_sim *sim);
char *sim_state_snapshot(struct pvm_sim *sim, uint64_t *seq);
int sim_state_write(struct pvm_sim *sim, const char *text, uint64_t seq);
/* Persists the current state: snapshot under lock, then writes without it. Call unlocked. */
int sim_persist(struct pvm_sim *sim);
/* Partition helpers. */
const char *sim_str(const struct sim_obj *o, const char *key, const char *dflt);
int64_t sim_int(const struct sim_obj *o, const char *key, int64_t dflt);
double sim_real(const struct sim_obj *o, const char *key, double dflt);
bool sim_bool(const struct sim_obj *o, const char *key, bool dflt);
void sim_set_str(struct sim_obj *o, const char *key, const char *v);
/* Sets PartitionState and records a MODIFY_URI event. Caller holds lock. */
void sim_set_state(struct pvm_sim *sim, struct sim_obj *o, const char *state);
int sim_next_partition_id(struct pvm_sim *sim, const char *ms);
/* Capacity left on a system (configurable minus hypervisor minus activated partitions). */
void sim_ms_available(struct pvm_sim *sim, const struct sim_obj *ms, int64_t *mem_mb,
                      double *units);
/* Object's URI relative to /rest/api/uom/ (for events and job URLs). */
void sim_obj_uri(const struct sim_obj *o, char *buf, size_t n);

/* Wakes the ticker (caller holds lock). */
void sim_kick(struct pvm_sim *sim);
/* Properties of a partition from simple sizes (units 0: vcpus x 0.1, floor 0.05). */
json_t *sim_partition_props(const char *name, int id, const char *type, const char *state,
                            int64_t mem, int vcpus, double units);

/* events.c-like helpers in model.c */
void sim_event_add(struct pvm_sim *sim, const char *type, const char *data, const char *detail);

/* render.c: XML and JSON bodies. base is "scheme://host:port". */
struct sim_render_ctx {
	const char *base;
	const char *self_prefix; /* "rest/api/uom/LogicalPartition" for SELF links */
	const char *group_q;     /* raw ?group= value echoed in links, or NULL */
	unsigned groups;
	bool hmc;
	const char *console_uuid;
};
void sim_render_entry(struct pvm_sim *sim, struct pvm_buf *b, const struct sim_render_ctx *c,
                      const struct sim_obj *o, bool in_feed);
void sim_render_feed_open(struct pvm_buf *b, const struct sim_render_ctx *c, const char *feed_path);
void sim_render_feed_close(struct pvm_buf *b);
void sim_render_error(struct pvm_buf *b, int status, const char *uri, const char *reason,
                      const char *msg);
void sim_render_job_request(struct pvm_buf *b, const char *op, const char *group);
void sim_render_job_response(struct pvm_buf *b, const char *base, const struct sim_job *j);
void sim_render_logon(struct pvm_buf *b, const char *token, const char *file);
void sim_render_event(struct pvm_buf *b, const char *base, const struct sim_event *e);
json_t *sim_quick(struct pvm_sim *sim, const struct sim_obj *o);

/* jobs.c (callers hold lock) */
bool sim_job_known(enum sim_kind kind, const char *op);
/* Starts a job; returns it, or NULL with *status and msg set (409 same kind running, ...). */
struct sim_job *sim_job_start(struct pvm_sim *sim, struct sim_obj *target, const char *op,
                              json_t *params, const char *request_url, int *status, char *msg,
                              size_t msgn);
struct sim_job *sim_job_find(struct pvm_sim *sim, uint64_t id);
void sim_job_delete(struct pvm_sim *sim, struct sim_job *j);
void sim_job_cancel(struct pvm_sim *sim, struct sim_job *j);
/* Advances every job to now; returns true when the model changed (to persist). Sets
 * *next_due_ns to the next time something is due (unchanged when nothing is). */
bool sim_jobs_tick(struct pvm_sim *sim, int64_t now_ns, int64_t *next_due_ns);
void sim_jobs_clear(struct pvm_sim *sim);
bool sim_job_terminal(const struct sim_job *j);

/* faults.c */
/* Decides the fault for one request (caller holds lock; increments the path's count). */
const struct sim_fault_rule *sim_fault_decide(struct pvm_sim *sim, const char *method,
                                              const char *path, bool mutating);
/* Decides whether a job of op on target fails (caller holds lock). */
bool sim_fault_job(struct pvm_sim *sim, const char *op, const char *target);
uint64_t sim_decision_hash(uint64_t seed, const char *method, const char *path, uint64_t n,
                           uint64_t salt);

/* server.c */
int sim_server_start(struct pvm_sim *sim, const char *host, int port, const char *cert,
                     const char *key);
void sim_server_stop(struct pvm_sim *sim);
void sim_sessions_clear(struct pvm_sim *sim);
/* Ticker helpers: detach parked connections that are due (under lock), resume them (not). */
struct sim_parked *sim_parked_due(struct pvm_sim *sim, int64_t now, int64_t *next_due);
void sim_parked_resume(struct sim_parked *list);
/* storage.c (callers hold lock) */
void sim_render_storage(struct pvm_sim *sim, struct pvm_buf *b, const struct sim_render_ctx *c,
                        const struct sim_obj *o);
/* VIOS parts: media repositories (ViosStorage) and VirtualSCSIMappings (ViosSCSIMapping). */
void sim_render_vios_media(struct pvm_sim *sim, struct pvm_buf *b, const struct sim_render_ctx *c,
                           const struct sim_obj *vios);
void sim_render_vios_scsi(struct pvm_sim *sim, struct pvm_buf *b, const struct sim_render_ctx *c,
                          const struct sim_obj *vios);
/* LogicalPartition's ClientNetworkAdapters links. */
void sim_render_lpar_cnas(struct pvm_sim *sim, struct pvm_buf *b, const struct sim_render_ctx *c,
                          const struct sim_obj *lpar);
/* Before a partition is deleted: its adapters go, the client side of its mappings too. */
void sim_lpar_cascade(struct pvm_sim *sim, struct sim_obj *lpar);
/* pcm: accounts the processor cycles of a partition up to now (before a state change). */
void sim_pcm_account(struct sim_obj *o, int64_t now_ms);
void sim_pcm_clear(struct pvm_sim *sim);

/* sim.c: back to the inventory (under lock). */
void sim_reset_model(struct pvm_sim *sim);
void sim_audit(struct pvm_sim *sim, const char *method, const char *path, const char *object,
               int status, const char *outcome);

#endif
