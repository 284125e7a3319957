/* events.c: the event listener (pvm/client.h): one thread long-polls uom/Event with the
 * application id, hands every event to the callback, backs off on errors (doubling, capped,
 * jittered) and stops promptly: the stop flag aborts an in-flight long-poll through a
 * curl multi handle (curl_multi_wakeup) and wakes a back-off sleep through a condition. */
#include "internal.h"

#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/util.h"

#include <curl/curl.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int client_request_wake(struct pvm_client *c, const struct pvm_req *rq, struct pvm_resp *resp,
                        struct pvm_rest_error *err, void *easy, void *multi, atomic_bool *stop);

struct pvm_event_listener {
	struct pvm_client *c;
	struct pvm_event_listener_opts o;
	char *app_id;
	CURL *easy; /* the listener thread's own handle */
	CURLM *multi;
	pthread_t thread;
	atomic_bool stop;
	pthread_mutex_t lock; /* guards the back-off wait */
	pthread_cond_t cond;
	atomic_uint_fast64_t events, errors;
};

static void backoff_wait(struct pvm_event_listener *l, int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&l->lock);
	while (!atomic_load(&l->stop))
		if (pthread_cond_timedwait(&l->cond, &l->lock, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&l->lock);
}

static void *listener_main(void *arg)
{
	struct pvm_event_listener *l = arg;
	pthread_setname_np(pthread_self(), "pvm-events");
	char query[300];
	snprintf(query, sizeof(query),
	         "QUEUE_CLIENTKEY_METHOD=USE_APPLICATIONID&QUEUE_APPLICATIONID=%s", l->app_id);
	int delay = 0;
	uint64_t seed = (uint64_t)pvm_mono_ns() | 1;
	while (!atomic_load(&l->stop)) {
		struct pvm_req rq = {.method = PVM_GET,
		                     .path = "uom/Event",
		                     .query = query,
		                     .timeout_ms = l->o.poll_timeout_ms};
		struct pvm_resp resp;
		struct pvm_rest_error err;
		int rc = client_request_wake(l->c, &rq, &resp, &err, l->easy, l->multi, &l->stop);
		struct pvm_event_list *evs = NULL;
		if (!rc && resp.status != 204)
			rc = pvm_parse_event(resp.body, resp.len, NULL, &evs, &err);
		pvm_resp_fini(&resp);
		if (atomic_load(&l->stop)) {
			pvm_event_list_free(evs);
			break;
		}
		if (rc) {
			atomic_fetch_add(&l->errors, 1);
			delay = delay ? delay * 2 : l->o.backoff_min_ms;
			if (delay > l->o.backoff_max_ms)
				delay = l->o.backoff_max_ms;
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			int wait = delay / 2 + (int)(seed % (uint64_t)(delay / 2 + 1));
			pvm_warn("powervm events: %s (%s); next poll in %d ms", err.message,
			         pvm_errname(rc), wait);
			backoff_wait(l, wait);
			continue;
		}
		delay = 0;
		for (size_t i = 0; evs && i < evs->count && !atomic_load(&l->stop); i++) {
			atomic_fetch_add(&l->events, 1);
			l->o.fn(l->o.arg, &evs->items[i].ev);
		}
		pvm_event_list_free(evs);
	}
	return NULL;
}

int pvm_event_listener_start(struct pvm_client *c, const struct pvm_event_listener_opts *o,
                             struct pvm_event_listener **out)
{
	*out = NULL;
	if (!c || !o || !o->fn || !o->app_id || !*o->app_id)
		return PVM_EINVAL;
	for (const char *p = o->app_id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
			return PVM_EINVAL;
	struct pvm_event_listener *l = calloc(1, sizeof(*l));
	if (!l)
		return PVM_ENOMEM;
	l->c = c;
	l->o = *o;
	if (l->o.poll_timeout_ms <= 0)
		l->o.poll_timeout_ms = 60000;
	if (l->o.backoff_min_ms <= 0)
		l->o.backoff_min_ms = 500;
	if (l->o.backoff_max_ms <= 0)
		l->o.backoff_max_ms = 30000;
	if (l->o.backoff_max_ms < l->o.backoff_min_ms)
		l->o.backoff_max_ms = l->o.backoff_min_ms;
	l->app_id = strdup(o->app_id);
	l->easy = curl_easy_init();
	l->multi = curl_multi_init();
	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (!l->app_id || !l->easy || !l->multi) {
		pvm_event_listener_stop(l);
		return PVM_ENOMEM;
	}
	int rc = pthread_create(&l->thread, NULL, listener_main, l);
	if (rc) {
		l->thread = 0;
		pvm_event_listener_stop(l);
		return -rc;
	}
	*out = l;
	return 0;
}

void pvm_event_listener_stop(struct pvm_event_listener *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	atomic_store(&l->stop, true);
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	if (l->multi)
		curl_multi_wakeup(l->multi);
	if (l->thread)
		pthread_join(l->thread, NULL);
	if (l->multi)
		curl_multi_cleanup(l->multi);
	if (l->easy)
		curl_easy_cleanup(l->easy);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cond);
	free(l->app_id);
	free(l);
}

void pvm_event_listener_counts(struct pvm_event_listener *l, uint64_t *events, uint64_t *errors)
{
	if (events)
		*events = atomic_load(&l->events);
	if (errors)
		*errors = atomic_load(&l->errors);
}
