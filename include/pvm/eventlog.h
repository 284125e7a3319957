/* pvm/eventlog.h: the in-memory ring of lifecycle events served by GET /v1/events.
 *
 * Events are JSON objects (e.g. {"type":"instance.state","instance_uuid":...,"state":...}).
 * Publishing adds "seq" (1, 2, 3, ... per process: the log restarts at 1 with the daemon)
 * and "time" (RFC 3339 UTC). The ring keeps the newest `capacity` events; a reader asking
 * for events after a sequence number the ring no longer holds (or one it has not reached,
 * as after a daemon restart) is told so with *missed = true, and should re-read the state
 * it follows (instances, operations) before reading on from *last.
 *
 * Readers that want to wait do not block a thread here: they subscribe a notify callback,
 * called after every publish, and re-read when it fires (the API resumes its suspended
 * long-polls from it). pvm_eventlog_wait() is a blocking variant for tools and tests.
 *
 * Thread-safety: every function may be called from any thread at once, except
 * pvm_eventlog_destroy(). Notify callbacks run in the publishing thread, after the event
 * is readable, one publish at a time; they must be short and must not publish, subscribe
 * or unsubscribe.
 */
#ifndef PVM_EVENTLOG_H
#define PVM_EVENTLOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pvm_eventlog;

#define PVM_EVENTLOG_DEFAULT_CAPACITY 4096

/* capacity 0: PVM_EVENTLOG_DEFAULT_CAPACITY. Returns 0 and *out, or PVM_ENOMEM. */
int pvm_eventlog_create(size_t capacity, struct pvm_eventlog **out);
/* NULL is a no-op. */
void pvm_eventlog_destroy(struct pvm_eventlog *log);

/* Appends event (an object; the reference is stolen, even on error), adding "seq" and
 * "time". *seq_out (optional) receives its sequence number. Returns 0, or PVM_EINVAL when
 * event is not an object. */
int pvm_eventlog_publish(struct pvm_eventlog *log, json_t *event, uint64_t *seq_out);

/* The sequence number of the newest event (0: none yet). */
uint64_t pvm_eventlog_last(struct pvm_eventlog *log);

/* Reads at most max (0: no limit) events with seq > after, oldest first, into *events (a
 * new array of copies, the caller's own). *last
 * receives the seq of the last event returned, or when none, the newest seq of the log.
 * *missed (optional) is true when events after `after` were dropped from the ring, or
 * when after is beyond the newest event; the events returned then start at the oldest one
 * kept. Returns 0 or PVM_ENOMEM. */
int pvm_eventlog_read(struct pvm_eventlog *log, uint64_t after, size_t max, json_t **events,
                      uint64_t *last, bool *missed);

/* True when a read after `after` would return at once (an event, or missed). */
bool pvm_eventlog_ready(struct pvm_eventlog *log, uint64_t after);

/* Waits until an event newer than after exists or timeout_ms passes. Returns the newest seq. */
uint64_t pvm_eventlog_wait(struct pvm_eventlog *log, uint64_t after, int timeout_ms);

/* Notify hook: fn(arg, seq) after each publish. Returns 0 and a handle for
 * pvm_eventlog_unsubscribe() in *handle, or PVM_ENOMEM. */
typedef void (*pvm_eventlog_notify_fn)(void *arg, uint64_t seq);
int pvm_eventlog_subscribe(struct pvm_eventlog *log, pvm_eventlog_notify_fn fn, void *arg,
                           int *handle);
/* Once it returns, fn is not running and will not be called again. */
void pvm_eventlog_unsubscribe(struct pvm_eventlog *log, int handle);

#endif
