/* pvm/api.h: the local API of powervmd (src/api/): HTTP/1.1 on a Unix socket.
 *
 * The endpoints, bodies and errors are documented in docs/api.md. The server runs on a
 * FIXED number of threads: `threads` libmicrohttpd workers ("pvm-api-N"), one waker
 * ("pvm-api-waker") and one submitter ("pvm-api-submit"), which journals the submissions
 * the workers validated in batches, so that they share the journal's synced commits
 * without holding a worker each. Long-polls (GET /v1/operations/{id}?wait=S, GET /v1/events?wait=S)
 * hold no thread: the connection is suspended and the waker resumes it when the journal
 * generation moves and its operation is terminal, when an event is published, or at its
 * deadline.
 *
 * Peers are checked with SO_PEERCRED: root, the daemon's own euid and allowed_uids may
 * talk to the API; anyone else gets 403 and the connection is closed.
 *
 * The caller ignores SIGPIPE (the daemon does, once, for every module).
 *
 * Thread-safety: pvm_api_start() and pvm_api_stop() are called by one thread (start-up and
 * shutdown). The callbacks are called from the API's threads, concurrently.
 */
#ifndef PVM_API_H
#define PVM_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct pvm_api;
struct pvm_queue;
struct pvm_engine;
struct pvm_metrics;
struct pvm_eventlog;

struct pvm_api_opts {
	const char *socket_path;   /* powervm_api_socket; required */
	const uid_t *allowed_uids; /* powervm_api_allowed_uids (root and euid always allowed) */
	size_t n_allowed_uids;
	size_t max_body_bytes;         /* request body limit (0: 1 MiB); 413 beyond */
	int max_wait_s;                /* cap of ?wait=S long-polls (0: 300) */
	int threads;                   /* HTTP worker threads (0: 4) */
	int connection_timeout_s;      /* idle or trickling connection is closed after (0: 30) */
	int max_connections;           /* concurrent connections (0: 256) */
	size_t events_max;             /* events per GET /v1/events answer (0: 1000) */
	const char *state_dir;         /* powervm_state_dir: the image cache and config-drive spools
				     live under it (NULL: those endpoints answer 503) */
	bool disk_ssp;                 /* powervm_disk_driver = ssp: images go to the pool through
				     the internal operation cache_image */
	size_t config_drive_max_bytes; /* config-drive ISO limit (0: 64 MiB); 413 beyond */

	struct pvm_queue *queue;     /* required */
	struct pvm_engine *engine;   /* NULL: operation endpoints answer 503 not_ready */
	struct pvm_metrics *metrics; /* NULL: the API keeps a private registry */
	struct pvm_eventlog *events; /* NULL: GET /v1/events answers 503 not_ready */

	void *arg; /* passed to the callbacks */
	/* /healthz: true once the daemon is ready (NULL: always ready). */
	bool (*ready)(void *arg);
	/* GET /v1/host: a new reference, or NULL while not available yet (503). */
	json_t *(*host)(void *arg);
	/* GET /v1/instances (uuid NULL: {"instances":[...]}) and /v1/instances/{uuid} (lower
	 * case): a new reference, or NULL for an unknown uuid (404). NULL callback: 503. */
	json_t *(*instances)(void *arg, const char *uuid);
	/* GET /v1/scrub: the start-up scrub's state and last report (a new reference).
	 * NULL callback or NULL answer: 503. */
	json_t *(*scrub)(void *arg);
	/* Called after POST /v1/reconcile succeeded, with nova's view as posted (validated:
	 * {"instances":[{"uuid","vm_state","task_state"}]}); optional. */
	void (*reconciled)(void *arg, const json_t *view);
};

/* Creates the socket (an existing socket file is replaced; any other file at the path is
 * refused with PVM_EEXIST), mode 0660, and starts serving.
 * Returns 0 and *out, PVM_EINVAL for bad options, PVM_EEXIST, PVM_ENOMEM, PVM_EIO when
 * libmicrohttpd does not start, or -errno of a socket call. */
int pvm_api_start(const struct pvm_api_opts *opts, struct pvm_api **out);

/* Stops accepting, answers suspended long-polls with the current state, stops the threads,
 * closes every connection, removes the socket file and frees the API. NULL is a no-op. */
void pvm_api_stop(struct pvm_api *api);

/* Changes the request body limit (SIGHUP); requests that start after it use it. */
void pvm_api_set_max_body(struct pvm_api *api, size_t bytes);

/* Number of threads the API runs (threads + the waker + the submitter): for the daemon's
 * thread budget. */
int pvm_api_thread_count(const struct pvm_api *api);

#endif
