/* pvm/client.h: the PowerVM REST client (src/pvm/): session, requests, ETags, jobs, events.
 *
 * Every operation of powervmd talks to the HMC or NovaLink through this layer. One client
 * (struct pvm_client) holds ONE logical session for the whole daemon: it logs on once; on a
 * 401 exactly one re-logon runs for all threads (the others wait for it) and the request is
 * retried once; a refused re-logon disables further re-logons (no account lockout) and is
 * logged as an error at every use. Each thread that makes requests uses its own libcurl easy
 * handle (a pool hands a free handle to one thread at a time; the handles keep their
 * connections alive). TLS is verified by default; turning it off takes opts.tls_insecure and
 * logs a warning at every client creation.
 *
 * Errors: one error space (pvm/error.h). Codes this module returns, and whether
 * pvm_client_transient() calls them transient (retry later) or permanent:
 *   transient: -EAGAIN (HTTP 5xx, 503; a 401 again right after a successful re-logon),
 *              -EBUSY (VIOS busy: HSCL3205 / VIOS0014),
 *              -ESTALE (412 after the bounded re-read and re-apply), -ECONNREFUSED,
 *              -ECONNRESET (reset, empty answer, send/receive error), PVM_ETIMEDOUT,
 *              -EHOSTUNREACH (name or route)
 *   permanent: PVM_EINVAL (400, bad argument), -EACCES (403, logon refused, re-logon
 *              disabled), PVM_ENOTFOUND (404), -EPROTO (other 4xx), PVM_ETOOBIG (response
 *              over the limit, 413), PVM_ECORRUPT (malformed XML, missing required element),
 *              PVM_ECRYPTO (TLS: untrusted certificate, handshake), -EREMOTEIO (a job that
 *              ended COMPLETED_WITH_ERROR, _WITH_WARNINGS or FAILED_BEFORE_COMPLETION),
 *              PVM_EPERM (token file refused), PVM_ECLOSED (stopped), PVM_ENOMEM, PVM_EIO.
 * Functions that fail fill an optional struct pvm_rest_error with the HTTP status, the
 * server's ReasonCode and Message (or curl's or libxml2's message) and the verdict.
 *
 * Thread-safety: pvm_client_global_init() must run once before any thread starts (it calls
 * curl_global_init and xmlInitParser). A client may be used by any number of threads at
 * once after pvm_client_create() returns; pvm_client_destroy() is called once, after every
 * other user stopped. Event listeners run on their own thread (pvm_event_listener_*).
 */
#ifndef PVM_CLIENT_H
#define PVM_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pvm_client;

/* Details of a failure. */
struct pvm_rest_error {
	int code;          /* the code the function returned */
	int http_status;   /* HTTP status, 0 when there was no answer */
	bool transient;    /* pvm_client_transient(code) */
	char reason[128];  /* HttpErrorResponse/ReasonCode, or "" */
	char message[512]; /* server Message, curl or libxml2 message, or ours */
	char uri[256];     /* the request path */
};

/* Client options; zero values take the defaults shown. The strings are copied. */
struct pvm_client_opts {
	const char *endpoint;   /* required: "https://host:12443" (or http://host:12080) */
	const char *user;       /* required */
	const char *password;   /* password logon; not used with file_logon */
	bool file_logon;        /* NovaLink local logon: the token comes in a file */
	const char *token_dir;  /* file_logon: the token file must lie inside this directory */
	long token_uid;         /* file_logon: the file's expected owner; 0: geteuid() */
	const char *ca_file;    /* PEM CA bundle; NULL: the system's */
	bool tls_insecure;      /* do not verify the server (warned at every create) */
	int connect_timeout_ms; /* 10000 */
	int timeout_ms;         /* 120000: whole request, event long-polls excepted */
	int connect_retry_ms;   /* 300000: how long logon retries an unreachable server;
	                                  -1: no retry */
	int connect_retry_interval_ms; /* 2000 */
	size_t max_response_bytes;     /* 64 MiB */
	int etag_retries;              /* 10: re-read + re-apply rounds on 412 */
	int etag_retry_delay_ms;       /* 250: delay step; attempt n waits n*step plus jitter */
	const char *audit_memento;     /* "powervmd": X-Audit-Memento without a request id */
};

/* Once per process, before any thread: curl_global_init and xmlInitParser. Returns 0 or
 * PVM_EIO. Idempotent. */
int pvm_client_global_init(void);
/* At exit, after every client is destroyed. */
void pvm_client_global_cleanup(void);

/* Checks opts, logs the TLS warning when verification is off. Does not connect.
 * Returns 0, PVM_EINVAL (err->message names the option), PVM_ENOMEM. */
int pvm_client_create(const struct pvm_client_opts *opts, struct pvm_client **out,
                      struct pvm_rest_error *err);
/* Logs on. Retries refused or timed-out connections for opts.connect_retry_ms (the REST
 * server may still be booting); a refused logon (401/403) is -EACCES at once. */
int pvm_client_logon(struct pvm_client *c, struct pvm_rest_error *err);
/* Logs off (DELETE web/Logon) when a session is open. */
int pvm_client_logoff(struct pvm_client *c, struct pvm_rest_error *err);
/* Logs off when logged on, then frees everything. NULL is a no-op. */
void pvm_client_destroy(struct pvm_client *c);

/* Counters for tests and /metrics. */
struct pvm_client_stats {
	uint64_t logons;   /* successful logons, first one included */
	uint64_t requests; /* HTTP requests sent (logons included) */
	uint64_t retries_412;
	uint64_t retries_401;
	bool relogon_disabled;
	bool novalink; /* the server answered X-MC-Type: PVM */
};
void pvm_client_stats(struct pvm_client *c, struct pvm_client_stats *out);

/* ---- requests ---- */
enum pvm_method { PVM_GET = 0, PVM_PUT, PVM_POST, PVM_DELETE };

struct pvm_req {
	enum pvm_method method;
	/* Path under /rest/api/ ("uom/LogicalPartition"), an absolute path ("/rest/api/..."),
	 * or a full URL on the endpoint (an href read from a response). */
	const char *path;
	const char *query;        /* "group=None", or NULL */
	const char *content_type; /* of body; NULL: none */
	const char *body;
	size_t body_len;
	const char *if_match;   /* ETag for updates and deletes, or NULL */
	const char *request_id; /* nova's request id: X-Audit-Memento; NULL: the default */
	const char *accept;     /* NULL: "application/atom+xml" */
	int timeout_ms;         /* 0: the client's */
	/* Optional streamed body (PUT only, instead of body): `size` bytes of the file `fd`
	 * from `offset`, read with pread (the descriptor's position is not used, so a retry
	 * sends the same bytes). The request's timeout then bounds only a stall: the upload
	 * fails when less than 1 byte per second arrives for timeout_ms (or the client's). */
	const struct pvm_body_file *file;
};

struct pvm_body_file {
	int fd;
	int64_t offset;
	int64_t size;
};

struct pvm_resp {
	int status; /* HTTP status */
	char *body; /* NUL-terminated (heap), "" for none */
	size_t len;
	char etag[80]; /* ETag header, "" when none */
	char content_type[128];
};
void pvm_resp_fini(struct pvm_resp *r);

/* Sends one request within the session: adds X-API-Session, X-Audit-Memento, Accept; on
 * 401 takes part in the single re-logon and retries once. Returns 0 for 2xx (204 included)
 * with *resp filled; otherwise the mapped code (see the top), *resp still holding status
 * and body (free it with pvm_resp_fini in every case). */
int pvm_client_request(struct pvm_client *c, const struct pvm_req *rq, struct pvm_resp *resp,
                       struct pvm_rest_error *err);
/* GET with Accept atom. */
int pvm_client_get(struct pvm_client *c, const char *path, const char *query,
                   const char *request_id, struct pvm_resp *resp, struct pvm_rest_error *err);

/* The one transient/permanent decision (see the top of this file). */
bool pvm_client_transient(int code);
/* The code for an HTTP status and the server's message (which may be NULL). */
int pvm_client_http_code(int status, const char *message);

/* ---- updates with ETags ---- */
/* Given the current entry (its XML, as read with the group of the update) writes the new
 * body into *body (malloc'd). Returns 0, or an error that ends the update. */
typedef int (*pvm_change_fn)(void *arg, const char *entry, size_t len, char **body);

struct pvm_update {
	const char *path;         /* the entry: "uom/VirtualIOServer/UUID" (or its href) */
	const char *query;        /* group of the representation, e.g. "group=ViosSCSIMapping" */
	const char *content_type; /* "application/vnd.ibm.powervm.uom+xml; type=VirtualIOServer" */
	const char *request_id;
	pvm_change_fn change;
	void *arg;
	/* Optional: an entry already read and its ETag (saves the first GET). */
	const char *entry;
	size_t entry_len;
	const char *etag;
};
/* POSTs change(entry) with If-Match; on 412 re-reads the entry and re-applies change, at
 * most opts.etag_retries times, sleeping n*step plus a random part of a step before round
 * n. Returns 0 with *resp (the server's answer), -ESTALE when the rounds run out, or the
 * request's error. */
int pvm_client_update(struct pvm_client *c, const struct pvm_update *u, struct pvm_resp *resp,
                      struct pvm_rest_error *err);
/* DELETE with If-Match (etag may be NULL: unconditional). On 412 re-reads the ETag and
 * retries, bounded as above. 404 counts as done: returns 0. */
int pvm_client_delete(struct pvm_client *c, const char *path, const char *etag,
                      const char *request_id, struct pvm_rest_error *err);

/* ---- jobs (nothing here sleeps: the engine schedules the polls) ---- */
enum pvm_job_status {
	PVM_JOB_NOT_STARTED = 0,
	PVM_JOB_RUNNING,
	PVM_JOB_COMPLETED_OK,
	PVM_JOB_COMPLETED_WITH_WARNINGS,
	PVM_JOB_COMPLETED_WITH_ERROR,
	PVM_JOB_FAILED_BEFORE_COMPLETION,
	PVM_JOB_STATUS_UNKNOWN
};
const char *pvm_job_status_name(enum pvm_job_status s);
enum pvm_job_status pvm_job_status_parse(const char *s);
bool pvm_job_status_terminal(enum pvm_job_status s);

struct pvm_job_param {
	const char *name, *value;
};

struct pvm_job; /* the typed JobResponse view, pvm/pvm_objects.h */

/* GETs the JobRequest template of root/do/op (root: "uom/LogicalPartition/UUID"), fills
 * in params and PUTs it. On success the new JobID is in job_id (size n). */
int pvm_job_submit(struct pvm_client *c, const char *root, const char *op,
                   const struct pvm_job_param *params, size_t nparams, const char *request_id,
                   char *job_id, size_t n, struct pvm_rest_error *err);
/* One GET of uom/jobs/ID; *out owns its memory (pvm_job_free). */
int pvm_job_poll(struct pvm_client *c, const char *job_id, const char *request_id,
                 struct pvm_job **out, struct pvm_rest_error *err);
/* The verdict of a polled job: 0 completed OK, -EINPROGRESS not terminal, -EREMOTEIO
 * failed (err->message: the ResponseException message or the "result" parameter). */
int pvm_job_outcome(const struct pvm_job *job, struct pvm_rest_error *err);
int pvm_job_cancel(struct pvm_client *c, const char *job_id, const char *request_id,
                   struct pvm_rest_error *err);
/* 404 counts as done. */
int pvm_job_delete(struct pvm_client *c, const char *job_id, const char *request_id,
                   struct pvm_rest_error *err);

/* ---- events ---- */
enum pvm_event_kind {
	PVM_EVENT_ADD = 0, /* ADD_URI */
	PVM_EVENT_MODIFY,  /* MODIFY_URI */
	PVM_EVENT_DELETE,  /* DELETE_URI */
	PVM_EVENT_INVALID, /* INVALID_URI */
	PVM_EVENT_RESYNC,  /* NEW_CLIENT, CACHE_CLEARED, MISSING_EVENTS: re-read everything */
	PVM_EVENT_CUSTOM,  /* CUSTOM_CLIENT_EVENT */
	PVM_EVENT_OTHER
};

struct pvm_event {
	enum pvm_event_kind kind;
	const char *type;   /* EventType as sent */
	const char *id;     /* EventID */
	const char *data;   /* EventData: the object's URI, "" when none */
	const char *detail; /* EventDetail, "" when none */
};

/* Called on the listener's thread, one event at a time; the strings live for the call. */
typedef void (*pvm_event_fn)(void *arg, const struct pvm_event *ev);

struct pvm_event_listener_opts {
	const char *app_id; /* QUEUE_APPLICATIONID; required */
	pvm_event_fn fn;    /* required */
	void *arg;
	int poll_timeout_ms; /* 60000: longest one long-poll may take */
	int backoff_min_ms;  /* 500: first delay after an error */
	int backoff_max_ms;  /* 30000: cap of the doubling delay */
};
struct pvm_event_listener;

/* Starts the long-poll loop on its own thread ("pvm-events"). Errors back off (doubling,
 * capped, with jitter); NEW_CLIENT, CACHE_CLEARED and MISSING_EVENTS are delivered as
 * PVM_EVENT_RESYNC. Returns 0, PVM_EINVAL, PVM_ENOMEM, -errno from pthread_create. */
int pvm_event_listener_start(struct pvm_client *c, const struct pvm_event_listener_opts *opts,
                             struct pvm_event_listener **out);
/* Stops promptly (an in-flight long-poll is aborted) and joins. NULL is a no-op. */
void pvm_event_listener_stop(struct pvm_event_listener *l);
/* Events delivered and errors seen so far. */
void pvm_event_listener_counts(struct pvm_event_listener *l, uint64_t *events, uint64_t *errors);

#endif
