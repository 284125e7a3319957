/* internal.h: what the API's server (server.c) and endpoint handlers (routes.c) share. */
#ifndef PVM_API_INTERNAL_H
#define PVM_API_INTERNAL_H

#include "pvm/api.h"
#include "pvm/queue.h"

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* How long the waker may sleep in pvm_queue_wait_change() before it looks at new
 * registrations again: the worst lateness of a long-poll deadline shorter than this. */
#define API_WAKER_TICK_MS 100

enum route {
	R_NONE = 0,
	R_OPS,       /* GET list, POST submit */
	R_OPS_PURGE, /* POST */
	R_OP,        /* GET */
	R_OP_CANCEL, /* POST */
	R_OP_RETRY,  /* POST */
	R_OP_SIGNAL, /* POST */
	R_RECONCILE, /* POST */
	R_PAUSE,     /* POST */
	R_RESUME,    /* POST */
	R_HOST,      /* GET */
	R_INSTANCES, /* GET */
	R_INSTANCE,  /* GET */
	R_EVENTS,    /* GET */
	R_METRICS,   /* GET */
	R_HEALTHZ,   /* GET */
	R_SCRUB,     /* GET */
	R_IMAGES,    /* GET list */
	R_IMAGE,     /* GET, PUT (streamed body), DELETE */
	R_CDRIVE,    /* GET, PUT (streamed body), DELETE */
	R_COUNT
};

enum wait_kind { WAIT_NONE = 0, WAIT_OP, WAIT_EVENTS };

/* One connection's peer, read with SO_PEERCRED when it was accepted. */
struct peer {
	uid_t uid;
	pid_t pid;
	bool known;
	bool allowed;
};

/* A submission handed to the submitter thread: it owns what pvm_op_submit points to. */
struct submission {
	struct pvm_op_submit s;
	char type[PVM_OP_TYPE_MAX];
	char uuid[PVM_UUID_LEN + 1];
	char key[PVM_IDEM_KEY_MAX];
	char reqid[PVM_REQUEST_ID_MAX];
	json_t *params;
	json_t *secrets;
	/* results: written by the submitter, read by the handler, under api->sub_mu */
	bool done;
	int rc;
	uint64_t id;
	bool existed;
	struct request *req;
	struct submission *next;
};

/* One HTTP request, from its headers to its completion (MHD's req_cls). Only the MHD
 * thread serving the connection touches it, except the wait fields below. */
struct request {
	struct pvm_api *api;
	struct MHD_Connection *conn;
	struct peer *peer;
	enum route route;
	bool is_get; /* GET or HEAD */
	char method[8];
	uint64_t id;       /* R_OP*: the operation id of the path */
	char uuid[40];     /* R_INSTANCE, R_CDRIVE: the uuid of the path, lower case */
	char image_id[72]; /* R_IMAGE: the id of the path, as given (checked by the handler) */
	char *body;        /* NUL-terminated */
	size_t len, cap;
	bool too_large;
	bool answered;
	int64_t start_ns;

	struct submission *sub; /* POST /v1/operations once handed to the submitter */
	struct upload *up;      /* PUT of an image or a config drive: its spool (images.c) */

	/* long-poll: the wait fields are guarded by api->mu once the request is linked */
	enum wait_kind wait_kind;
	uint64_t wait_arg;   /* WAIT_OP: op id; WAIT_EVENTS: after */
	uint64_t gen_seen;   /* WAIT_OP: journal generation its state was read at */
	int64_t deadline_ns; /* monotonic */
	bool linked;         /* in api->waiters */
	bool resumed;        /* the waker resumed it: answer now, never suspend again */
	struct request *wprev, *wnext;
};

struct pvm_api {
	struct pvm_api_opts o;   /* copy; callbacks and handles as given */
	_Atomic size_t max_body; /* o.max_body_bytes, changed by SIGHUP (pvm_api_set_max_body) */
	uid_t *allowed;
	size_t nallowed;
	char *socket_path;
	dev_t sock_dev;
	ino_t sock_ino;
	int listen_fd;
	struct MHD_Daemon *mhd;
	struct pvm_metrics *metrics;
	bool own_metrics;
	bool collecting; /* collect_journal registered with metrics */
	int event_handle;

	pthread_t waker;
	bool waker_started;
	pthread_mutex_t mu; /* guards waiters, nwaiters, stopping; before MHD's own locks */
	pthread_cond_t cv;  /* signalled on registration and stop */
	struct request *waiters;
	size_t nwaiters;
	bool stopping;

	pthread_t submitter;
	bool submitter_started;
	pthread_mutex_t sub_mu; /* guards the submission queue, sub_stopping, results */
	pthread_cond_t sub_cv;  /* signalled when a submission is queued, and on stop */
	struct submission *sub_head, *sub_tail;
	bool sub_stopping;

	pthread_mutex_t busy_mu; /* guards busy: the images and config drives being written */
	char (*busy)[80];        /* "image:<id>" / "cdrive:<uuid>", "" when free */
	size_t nbusy;
};

/* server.c */
/* Queues a JSON answer (body stolen). close_conn adds "Connection: close". */
enum MHD_Result api_reply_json(struct request *r, unsigned status, json_t *body, bool close_conn);
/* {"error":{"code","message"[,"field"]}}; extra (stolen, may be NULL) is merged into
 * the error object. */
enum MHD_Result api_reply_error(struct request *r, unsigned status, const char *code,
                                const char *field, json_t *extra, const char *fmt, ...)
        __attribute__((format(printf, 6, 7)));
enum MHD_Result api_reply_text(struct request *r, unsigned status, const char *ctype, char *text);
/* Suspends r until cond or deadline (wait_kind, wait_arg, gen_seen, deadline_ns set).
 * Returns false when the API is stopping or the condition already holds: answer now. */
bool api_suspend(struct request *r);
/* True once the waker resumed r. */
bool api_was_resumed(struct request *r);

/* submit.c */
int api_submitter_start(struct pvm_api *api);
/* Answers every queued submission, then joins the thread. */
void api_submitter_stop(struct pvm_api *api);
/* Queues r->sub and suspends r until it is journaled. False when the API is stopping
 * (r->sub is left to the caller). */
bool api_submit_enqueue(struct request *r);
/* Copies the results of r->sub once done; false while it is pending. */
bool api_submit_result(struct request *r, int *rc, uint64_t *id, bool *existed);
void api_submission_free(struct submission *s);

/* images.c: PUT, GET, DELETE of /v1/images and /v1/config-drives. */
/* True for a PUT whose body is streamed to a spool file instead of being buffered. */
bool api_upload_route(const struct request *r);
/* First call of such a PUT (headers in): checks them and opens the spool file. Problems
 * are answered once the body has been read (the client is not cut off mid-send). */
enum MHD_Result api_upload_begin(struct request *r);
/* A piece of the body: hashed and written, never held. */
void api_upload_data(struct request *r, const char *data, size_t n);
/* Closes and removes what the request left (a temporary file), frees r->up. */
void api_upload_free(struct request *r);
enum MHD_Result api_images_dispatch(struct request *r);
/* Removes temporary spool files a crash left behind (at start). */
void api_images_cleanup(struct pvm_api *api);

/* routes.c */
enum route api_route(struct request *r, const char *url);
const char *api_route_endpoint(enum route rt);
const char *api_route_allow(enum route rt); /* "GET, HEAD", "POST" or "GET, HEAD, POST" */
bool api_route_takes_body(enum route rt, bool is_get);
enum MHD_Result api_dispatch(struct request *r);

#endif
