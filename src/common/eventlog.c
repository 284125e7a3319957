/* eventlog.c: the bounded ring of lifecycle events of pvm/eventlog.h.
 *
 * DESIGN: a fixed array of json_t pointers indexed by seq % capacity; the newest seq and
 * the count kept say which slots are live. Readers copy the events they return, so no JSON
 * value is ever shared between threads. Subscribers are notified outside the ring lock,
 * under notify_mu, which makes unsubscribe a barrier: once it has taken notify_mu, no
 * callback of that subscriber runs. Lock order: notify_mu before mu.
 */
#include "pvm/eventlog.h"

#include "pvm/error.h"
#include "pvm/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct subscriber {
	pvm_eventlog_notify_fn fn;
	void *arg;
	int handle; /* 0: free slot */
};

struct pvm_eventlog {
	pthread_mutex_t mu; /* guards ring, last, count */
	pthread_cond_t cv;  /* broadcast with every publish */
	json_t **ring;
	size_t capacity;
	uint64_t last;             /* newest seq, 0: none */
	size_t count;              /* events kept: seqs last-count+1 .. last */
	pthread_mutex_t notify_mu; /* guards subs, nsubs, next_handle; held while notifying */
	struct subscriber *subs;
	size_t nsubs;
	int next_handle;
};

int pvm_eventlog_create(size_t capacity, struct pvm_eventlog **out)
{
	struct pvm_eventlog *log = calloc(1, sizeof(*log));
	if (!log)
		return PVM_ENOMEM;
	log->capacity = capacity ? capacity : PVM_EVENTLOG_DEFAULT_CAPACITY;
	log->ring = calloc(log->capacity, sizeof(*log->ring));
	if (!log->ring) {
		free(log);
		return PVM_ENOMEM;
	}
	pthread_mutex_init(&log->mu, NULL);
	pthread_mutex_init(&log->notify_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&log->cv, &ca);
	pthread_condattr_destroy(&ca);
	log->next_handle = 1;
	*out = log;
	return 0;
}

void pvm_eventlog_destroy(struct pvm_eventlog *log)
{
	if (!log)
		return;
	for (size_t i = 0; i < log->capacity; i++)
		json_decref(log->ring[i]);
	free(log->ring);
	free(log->subs);
	pthread_cond_destroy(&log->cv);
	pthread_mutex_destroy(&log->mu);
	pthread_mutex_destroy(&log->notify_mu);
	free(log);
}

int pvm_eventlog_publish(struct pvm_eventlog *log, json_t *event, uint64_t *seq_out)
{
	if (!json_is_object(event)) {
		json_decref(event);
		return PVM_EINVAL;
	}
	char ts[32];
	json_object_set_new(event, "time", json_string(pvm_fmt_time(pvm_now_ms(), ts, sizeof(ts))));
	/* notify_mu first: subscribers see publishes in seq order. */
	pthread_mutex_lock(&log->notify_mu);
	pthread_mutex_lock(&log->mu);
	uint64_t seq = ++log->last;
	json_object_set_new(event, "seq", json_integer((json_int_t)seq));
	size_t slot = (size_t)(seq % log->capacity);
	json_t *old = log->ring[slot];
	log->ring[slot] = event;
	if (log->count < log->capacity)
		log->count++;
	pthread_cond_broadcast(&log->cv);
	pthread_mutex_unlock(&log->mu);
	json_decref(old);
	for (size_t i = 0; i < log->nsubs; i++)
		if (log->subs[i].handle)
			log->subs[i].fn(log->subs[i].arg, seq);
	pthread_mutex_unlock(&log->notify_mu);
	if (seq_out)
		*seq_out = seq;
	return 0;
}

uint64_t pvm_eventlog_last(struct pvm_eventlog *log)
{
	pthread_mutex_lock(&log->mu);
	uint64_t l = log->last;
	pthread_mutex_unlock(&log->mu);
	return l;
}

/* The oldest seq kept (last + 1 when empty). Caller holds mu. */
static uint64_t oldest(const struct pvm_eventlog *log)
{
	return log->last - log->count + 1;
}

/* Caller holds mu. */
static bool missed_locked(const struct pvm_eventlog *log, uint64_t after)
{
	return after > log->last || after + 1 < oldest(log);
}

int pvm_eventlog_read(struct pvm_eventlog *log, uint64_t after, size_t max, json_t **events,
                      uint64_t *last, bool *missed)
{
	json_t *arr = json_array();
	if (!arr)
		return PVM_ENOMEM;
	int rc = 0;
	pthread_mutex_lock(&log->mu);
	bool miss = missed_locked(log, after);
	uint64_t from = miss ? oldest(log) : after + 1;
	uint64_t got = 0;
	for (uint64_t s = from; s <= log->last && (max == 0 || json_array_size(arr) < max); s++) {
		json_t *c = json_deep_copy(log->ring[s % log->capacity]);
		if (!c || json_array_append_new(arr, c)) {
			rc = PVM_ENOMEM;
			break;
		}
		got = s;
	}
	uint64_t newest = log->last;
	pthread_mutex_unlock(&log->mu);
	if (rc) {
		json_decref(arr);
		return rc;
	}
	*events = arr;
	if (last)
		*last = got ? got : newest;
	if (missed)
		*missed = miss;
	return 0;
}

bool pvm_eventlog_ready(struct pvm_eventlog *log, uint64_t after)
{
	pthread_mutex_lock(&log->mu);
	bool r = log->last > after || missed_locked(log, after);
	pthread_mutex_unlock(&log->mu);
	return r;
}

uint64_t pvm_eventlog_wait(struct pvm_eventlog *log, uint64_t after, int timeout_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t ns = ts.tv_nsec + (int64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;
	ts.tv_sec += ns / 1000000000;
	ts.tv_nsec = ns % 1000000000;
	pthread_mutex_lock(&log->mu);
	while (log->last <= after) {
		if (pthread_cond_timedwait(&log->cv, &log->mu, &ts) == ETIMEDOUT)
			break;
	}
	uint64_t l = log->last;
	pthread_mutex_unlock(&log->mu);
	return l;
}

int pvm_eventlog_subscribe(struct pvm_eventlog *log, pvm_eventlog_notify_fn fn, void *arg,
                           int *handle)
{
	int rc = 0;
	pthread_mutex_lock(&log->notify_mu);
	size_t i;
	for (i = 0; i < log->nsubs; i++)
		if (!log->subs[i].handle)
			break;
	if (i == log->nsubs) {
		struct subscriber *n = realloc(log->subs, (log->nsubs + 1) * sizeof(*n));
		if (!n) {
			rc = PVM_ENOMEM;
			goto out;
		}
		log->subs = n;
		log->nsubs++;
	}
	log->subs[i] = (struct subscriber){fn, arg, log->next_handle++};
	*handle = log->subs[i].handle;
out:
	pthread_mutex_unlock(&log->notify_mu);
	return rc;
}

void pvm_eventlog_unsubscribe(struct pvm_eventlog *log, int handle)
{
	if (!log || handle <= 0)
		return;
	pthread_mutex_lock(&log->notify_mu);
	for (size_t i = 0; i < log->nsubs; i++)
		if (log->subs[i].handle == handle)
			log->subs[i].handle = 0;
	pthread_mutex_unlock(&log->notify_mu);
}
