/* submit.c: the submitter thread of the local API (POST /v1/operations).
 *
 * DESIGN: a submission is acknowledged only once it is synced in the journal, and a synced
 * write costs a disk flush. The journal shares one flush among concurrent callers (group
 * commit), but the API has only a few HTTP threads: if each blocked in pvm_queue_submit(),
 * at most `threads` submissions could share a flush. So a handler validates and prepares
 * the operation, queues it here and suspends its connection; the one submitter thread
 * takes everything queued and journals it with pvm_queue_submit_many() in one transaction,
 * then resumes the connections. While a batch is being synced the next one gathers, so the
 * batch grows with the load. A batch the journal refuses as a whole (an idempotency key
 * seen before, a bad record) is submitted again one by one, so that each request gets its
 * own answer (existing operation, conflict, error).
 *
 * Lock order: api->sub_mu -> libmicrohttpd's internal mutexes (MHD_suspend_connection).
 */
#include "internal.h"

#include "pvm/engine.h"
#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/queue.h"

#include <stdlib.h>

#define BATCH_MAX 256

void api_submission_free(struct submission *s)
{
	if (!s)
		return;
	json_decref(s->params);
	json_decref(s->secrets);
	free(s);
}

bool api_submit_enqueue(struct request *r)
{
	struct pvm_api *api = r->api;
	bool ok = false;
	pthread_mutex_lock(&api->sub_mu);
	if (!api->sub_stopping) {
		/* Suspended before it is visible to the submitter, which resumes it. */
		MHD_suspend_connection(r->conn);
		r->sub->req = r;
		r->sub->next = NULL;
		if (api->sub_tail)
			api->sub_tail->next = r->sub;
		else
			api->sub_head = r->sub;
		api->sub_tail = r->sub;
		pthread_cond_signal(&api->sub_cv);
		ok = true;
	}
	pthread_mutex_unlock(&api->sub_mu);
	return ok;
}

bool api_submit_result(struct request *r, int *rc, uint64_t *id, bool *existed)
{
	struct pvm_api *api = r->api;
	pthread_mutex_lock(&api->sub_mu);
	bool done = r->sub->done;
	*rc = r->sub->rc;
	*id = r->sub->id;
	*existed = r->sub->existed;
	pthread_mutex_unlock(&api->sub_mu);
	return done;
}

/* Journals batch[0..n) and records each result (not yet visible: no lock held). */
static void journal_batch(struct pvm_api *api, struct submission **batch, size_t n, int *rcs,
                          uint64_t *ids, bool *existed)
{
	struct pvm_op_submit s[BATCH_MAX];
	for (size_t i = 0; i < n; i++) {
		s[i] = batch[i]->s;
		existed[i] = false;
	}
	int rc = pvm_queue_submit_many(api->o.queue, s, n, ids);
	if (rc == 0) {
		for (size_t i = 0; i < n; i++)
			rcs[i] = 0;
		return;
	}
	if (rc == PVM_EFULL || rc == PVM_ECLOSED) {
		for (size_t i = 0; i < n; i++)
			rcs[i] = rc;
		return;
	}
	/* Refused as a whole: one by one, each with its own answer. */
	for (size_t i = 0; i < n; i++)
		rcs[i] = pvm_queue_submit(api->o.queue, &s[i], &ids[i], &existed[i]);
}

static void *submitter_main(void *arg)
{
	struct pvm_api *api = arg;
	pthread_setname_np(pthread_self(), "pvm-api-submit");
	struct submission *batch[BATCH_MAX];
	int rcs[BATCH_MAX];
	uint64_t ids[BATCH_MAX];
	bool existed[BATCH_MAX];
	pthread_mutex_lock(&api->sub_mu);
	for (;;) {
		while (!api->sub_head && !api->sub_stopping)
			pthread_cond_wait(&api->sub_cv, &api->sub_mu);
		if (!api->sub_head)
			break; /* stopping, and nothing left to answer */
		size_t n = 0;
		while (api->sub_head && n < BATCH_MAX) {
			batch[n++] = api->sub_head;
			api->sub_head = api->sub_head->next;
		}
		if (!api->sub_head)
			api->sub_tail = NULL;
		pthread_mutex_unlock(&api->sub_mu);

		journal_batch(api, batch, n, rcs, ids, existed);
		bool any_new = false;
		for (size_t i = 0; i < n; i++)
			any_new |= rcs[i] == 0 && !existed[i];
		if (any_new)
			pvm_engine_notify(api->o.engine);

		pthread_mutex_lock(&api->sub_mu);
		for (size_t i = 0; i < n; i++) {
			batch[i]->rc = rcs[i];
			batch[i]->id = ids[i];
			batch[i]->existed = existed[i];
			batch[i]->done = true;
			MHD_resume_connection(batch[i]->req->conn);
		}
	}
	pthread_mutex_unlock(&api->sub_mu);
	return NULL;
}

int api_submitter_start(struct pvm_api *api)
{
	if (pthread_create(&api->submitter, NULL, submitter_main, api) != 0)
		return PVM_ENOMEM;
	api->submitter_started = true;
	pthread_setname_np(api->submitter, "pvm-api-submit");
	return 0;
}

void api_submitter_stop(struct pvm_api *api)
{
	pthread_mutex_lock(&api->sub_mu);
	api->sub_stopping = true;
	pthread_cond_broadcast(&api->sub_cv);
	pthread_mutex_unlock(&api->sub_mu);
	if (api->submitter_started)
		pthread_join(api->submitter, NULL);
	api->submitter_started = false;
}
