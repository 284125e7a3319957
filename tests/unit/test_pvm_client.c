/* test_pvm_client.c: the PowerVM client's session, requests, ETags, jobs and events against
 * a real pvmsim process (started per case on a free 127.0.0.1 port, in a fresh state
 * directory, killed at the end): partition and JobRequest round trips, one re-logon for 8
 * threads, refused logon, 412 retries, transient faults, connect retries, TLS with a CA made
 * at test time, file logon, the event listener, the response size limit. */
#include "testutil.h"

#include "pvm/client.h"
#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/pvm_objects.h"
#include "pvm/util.h"

#include <curl/curl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

/* ---------------------------------------------------------------- pvmsim harness --- */

struct sim {
	pid_t pid;
	int port;
	char *dir;
	char *bin;
	bool tls;
	char endpoint[64];
};

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t l = sizeof(a);
	getsockname(fd, (struct sockaddr *)&a, &l);
	close(fd);
	return ntohs(a.sin_port);
}

static size_t sink(char *p, size_t sz, size_t n, void *ud)
{
	struct {
		char *p;
		size_t len;
	} *b = ud;
	char *q = realloc(b->p, b->len + sz * n + 1);
	if (!q)
		return 0;
	memcpy(q + b->len, p, sz * n);
	b->p = q;
	b->len += sz * n;
	b->p[b->len] = '\0';
	return sz * n;
}

/* A plain libcurl request to pvmsim (control endpoints). Returns the status; body in *out. */
static long sim_http(struct sim *s, const char *method, const char *path, const char *body,
                     char **out)
{
	CURL *h = curl_easy_init();
	char url[256];
	snprintf(url, sizeof(url), "%s%s", s->endpoint, path);
	struct {
		char *p;
		size_t len;
	} b = {NULL, 0};
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L * pvm_test_scale());
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	long status = 0;
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	if (out)
		*out = b.p ? b.p : strdup("");
	else
		free(b.p);
	return status;
}

static bool sim_up(void *arg)
{
	struct sim *s = arg;
	int st;
	if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
		s->pid = -1;
		return true; /* died: stop waiting */
	}
	return sim_http(s, "GET", "/sim/health", NULL, NULL) == 200;
}

/* Starts pvmsim on port (0: a free one) with an optional JSON config. */
static void sim_start_on(struct sim *s, int port, const char *config, const char *cert,
                         const char *key)
{
	if (!s->bin)
		s->bin = pvm_test_build_path("bin/pvmsim");
	if (!s->dir)
		s->dir = pvm_test_tmpdir("pvmclient");
	char cfg[512] = "";
	if (config) {
		snprintf(cfg, sizeof(cfg), "%s/sim.json", s->dir);
		FILE *f = fopen(cfg, "w");
		assert_non_null(f);
		fputs(config, f);
		fclose(f);
	}
	for (int attempt = 0; attempt < 5; attempt++) {
		s->port = port ? port : free_port();
		s->tls = cert != NULL;
		snprintf(s->endpoint, sizeof(s->endpoint), "%s://127.0.0.1:%d",
		         s->tls ? "https" : "http", s->port);
		char listen[64], state[512];
		snprintf(listen, sizeof(listen), "127.0.0.1:%d", s->port);
		snprintf(state, sizeof(state), "%s/state", s->dir);
		s->pid = fork();
		assert_true(s->pid >= 0);
		if (s->pid == 0) {
			const char *argv[16];
			int n = 0;
			argv[n++] = s->bin;
			argv[n++] = "--listen";
			argv[n++] = listen;
			argv[n++] = "--mode";
			argv[n++] = "novalink";
			argv[n++] = "--state-dir";
			argv[n++] = state;
			argv[n++] = "--quiet";
			if (config) {
				argv[n++] = "--config";
				argv[n++] = cfg;
			}
			if (cert) {
				argv[n++] = "--tls-cert";
				argv[n++] = cert;
				argv[n++] = "--tls-key";
				argv[n++] = key;
			}
			argv[n] = NULL;
			execv(s->bin, (char *const *)argv);
			_exit(127);
		}
		assert_true(pvm_test_wait(sim_up, s, 10000));
		if (s->pid > 0)
			return;
		if (port)
			break;
	}
	fail_msg("pvmsim did not start (%s)", s->bin);
}

static void sim_start(struct sim *s, const char *config)
{
	sim_start_on(s, 0, config, NULL, NULL);
}

static void sim_kill(struct sim *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		int st;
		int64_t end = pvm_mono_ns() + (int64_t)10000 * pvm_test_scale() * 1000000;
		while (waitpid(s->pid, &st, WNOHANG) == 0) {
			if (pvm_mono_ns() > end) {
				kill(s->pid, SIGKILL);
				waitpid(s->pid, &st, 0);
				break;
			}
			struct timespec ts = {0, 5 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	s->pid = -1;
}

static void sim_stop(struct sim *s)
{
	sim_kill(s);
	pvm_test_rmtree(s->dir);
	free(s->bin);
	memset(s, 0, sizeof(*s));
}

static void sim_faults(struct sim *s, const char *json)
{
	char *out = NULL;
	long st = sim_http(s, "PUT", "/sim/faults", json, &out);
	if (st != 200)
		fprintf(stderr, "faults %s: %ld %s\n", json, st, out);
	assert_int_equal(st, 200);
	free(out);
}

/* Counts audited logons (PUT web/Logon answered 200). */
static int sim_logons(struct sim *s)
{
	char *out = NULL;
	assert_int_equal(sim_http(s, "GET", "/sim/audit", NULL, &out), 200);
	int n = 0;
	for (const char *p = out; (p = strstr(p, "/rest/api/web/Logon")); p++) {
		const char *e = strchr(p, '}');
		const char *m = p;
		while (m > out && *m != '{')
			m--;
		if (e && strstr(m, "\"PUT\"") && strstr(m, "\"PUT\"") < e &&
		    (strstr(m, "200") && strstr(m, "200") < e))
			n++;
	}
	free(out);
	return n;
}

static struct pvm_client *client_for(struct sim *s, struct pvm_client_opts *extra)
{
	struct pvm_client_opts o = {0};
	if (extra)
		o = *extra;
	o.endpoint = s->endpoint;
	if (!o.user)
		o.user = "hscroot";
	if (!o.password && !o.file_logon)
		o.password = "abc123";
	if (!o.connect_retry_ms)
		o.connect_retry_ms = -1;
	if (!o.etag_retry_delay_ms)
		o.etag_retry_delay_ms = 5;
	struct pvm_client *c = NULL;
	struct pvm_rest_error err;
	int rc = pvm_client_create(&o, &c, &err);
	if (rc)
		fprintf(stderr, "create: %s\n", err.message);
	assert_int_equal(rc, 0);
	return c;
}

static int setup(void **state)
{
	(void)state;
	pvm_log_setup("test_pvm_client", PVM_LOG_STDERR, PVM_LOG_WARNING);
	assert_int_equal(pvm_client_global_init(), 0);
	return 0;
}

/* The managed system's UUID. */
static void ms_uuid(struct pvm_client *c, char out[40])
{
	struct pvm_resp r;
	struct pvm_rest_error err;
	assert_int_equal(pvm_client_get(c, "uom/ManagedSystem", NULL, "req-ms", &r, &err), 0);
	struct pvm_managed_system_list *l = NULL;
	assert_int_equal(pvm_parse_managed_system(r.body, r.len, NULL, &l, &err), 0);
	assert_int_equal(l->count, 1);
	snprintf(out, 40, "%s", l->items[0].meta.uuid);
	assert_true(l->items[0].memory_configurable_mb > 0);
	pvm_managed_system_list_free(l);
	pvm_resp_fini(&r);
}

static int create_lpar(struct pvm_client *c, const char *ms, const char *uuid, const char *name,
                       struct pvm_rest_error *err)
{
	struct pvm_lpar_spec s = {.uuid = uuid, .name = name, .memory_mb = 2048, .vcpus = 2};
	char *body = pvm_build_lpar_create(&s, err);
	assert_non_null(body);
	char path[200];
	snprintf(path, sizeof(path), "uom/ManagedSystem/%s/LogicalPartition", ms);
	struct pvm_req rq = {.method = PVM_PUT,
	                     .path = path,
	                     .content_type = "application/vnd.ibm.powervm.uom+xml; "
	                                     "type=LogicalPartition",
	                     .body = body,
	                     .body_len = strlen(body),
	                     .request_id = "req-create"};
	struct pvm_resp r;
	int rc = pvm_client_request(c, &rq, &r, err);
	if (rc)
		fprintf(stderr, "create: %s\n%s\n", err->message, r.body);
	free(body);
	pvm_resp_fini(&r);
	return rc;
}

/* ---------------------------------------------------------------- cases ------------ */

static void test_pvm_client_logon_and_feeds(void **state)
{
	(void)state;
	struct sim s = {0};
	sim_start(&s, NULL);
	struct pvm_client *c = client_for(&s, NULL);
	struct pvm_rest_error err;
	assert_int_equal(pvm_client_logon(c, &err), 0);
	char ms[40];
	ms_uuid(c, ms);
	struct pvm_resp r;
	assert_int_equal(pvm_client_get(c, "uom/LogicalPartition", NULL, NULL, &r, &err), 0);
	struct pvm_lpar_list *l = NULL;
	assert_int_equal(pvm_parse_lpar(r.body, r.len, NULL, &l, &err), 0);
	for (size_t i = 0; i < l->count; i++) {
		assert_non_null(l->items[i].name);
		assert_non_null(l->items[i].meta.etag);
	}
	pvm_lpar_list_free(l);
	pvm_resp_fini(&r);
	assert_int_equal(pvm_client_get(c, "uom/VirtualIOServer", NULL, NULL, &r, &err), 0);
	struct pvm_vios_list *v = NULL;
	assert_int_equal(pvm_parse_vios(r.body, r.len, NULL, &v, &err), 0);
	assert_true(v->count >= 1);
	pvm_vios_list_free(v);
	pvm_resp_fini(&r);
	/* 404 is permanent, names the path */
	assert_int_equal(pvm_client_get(c,
	                                "uom/LogicalPartition/11111111-2222-3333-4444-"
	                                "555555555555",
	                                NULL, NULL, &r, &err),
	                 PVM_ENOTFOUND);
	assert_false(err.transient);
	assert_int_equal(err.http_status, 404);
	pvm_resp_fini(&r);
	struct pvm_client_stats st;
	pvm_client_stats(c, &st);
	assert_int_equal(st.logons, 1);
	assert_true(st.novalink);
	pvm_client_destroy(c); /* logs off */
	assert_int_equal(sim_logons(&s), 1);
	char *out = NULL;
	assert_int_equal(sim_http(&s, "GET", "/sim/audit", NULL, &out), 200);
	assert_non_null(strstr(out, "DELETE"));
	free(out);
	sim_stop(&s);
}

static int set_memory(void *arg, const char *entry, size_t len, char **body)
{
	struct pvm_lpar_spec *u = arg;
	struct pvm_rest_error err;
	*body = pvm_build_lpar_update(entry, len, u, &err);
	return *body ? 0 : err.code;
}

static void test_pvm_client_lpar_roundtrip(void **state)
{
	(void)state;
	struct sim s = {0};
	sim_start(&s, NULL);
	struct pvm_client *c = client_for(&s, NULL);
	struct pvm_rest_error err;
	char ms[40], uuid[37];
	ms_uuid(c, ms);
	assert_int_equal(pvm_lpar_uuid_from_instance("f4f2ad6c-28a1-4ac4-9f4e-5a2bd0f8d8a7", uuid),
	                 0);
	assert_int_equal(create_lpar(c, ms, uuid, "inst-roundtrip", &err), 0);
	/* the same UUID again: the server refuses it (a create is checkable after a crash) */
	assert_int_equal(create_lpar(c, ms, uuid, "inst-roundtrip", &err), -EPROTO);
	assert_int_equal(err.http_status, 409);
	assert_false(err.transient);

	char path[128];
	snprintf(path, sizeof(path), "uom/LogicalPartition/%s", uuid);
	struct pvm_resp r;
	assert_int_equal(pvm_client_get(c, path, NULL, NULL, &r, &err), 0);
	assert_true(r.etag[0] != '\0');
	struct pvm_lpar_list *l = NULL;
	assert_int_equal(pvm_parse_lpar(r.body, r.len, r.etag, &l, &err), 0);
	assert_string_equal(l->items[0].name, "inst-roundtrip");
	assert_string_equal(l->items[0].uuid, uuid);
	assert_int_equal(l->items[0].memory_mb, 2048);
	assert_int_equal(l->items[0].vcpus, 2);
	assert_true(l->items[0].proc_units > 0.19 && l->items[0].proc_units < 0.21);
	assert_string_equal(l->items[0].state, "not activated");
	assert_string_equal(l->items[0].type, "AIX/Linux");
	char etag[80];
	snprintf(etag, sizeof(etag), "%s", l->items[0].meta.etag);
	pvm_lpar_list_free(l);

	/* update with If-Match, starting from the entry just read */
	struct pvm_lpar_spec u = {.memory_mb = 4096, .vcpus = 3};
	struct pvm_update up = {.path = path,
	                        .content_type = "application/vnd.ibm.powervm.uom+xml; "
	                                        "type=LogicalPartition",
	                        .request_id = "req-update",
	                        .change = set_memory,
	                        .arg = &u,
	                        .entry = r.body,
	                        .entry_len = r.len,
	                        .etag = etag};
	struct pvm_resp ur;
	int rc = pvm_client_update(c, &up, &ur, &err);
	if (rc)
		fprintf(stderr, "update: %s\n", err.message);
	assert_int_equal(rc, 0);
	pvm_resp_fini(&ur);
	pvm_resp_fini(&r);
	assert_int_equal(pvm_client_get(c, path, NULL, NULL, &r, &err), 0);
	assert_int_equal(pvm_parse_lpar(r.body, r.len, r.etag, &l, &err), 0);
	assert_int_equal(l->items[0].memory_mb, 4096);
	assert_int_equal(l->items[0].vcpus, 3);
	assert_string_equal(l->items[0].name, "inst-roundtrip");
	/* the old ETag is stale now: a delete with it re-reads and succeeds */
	assert_string_not_equal(l->items[0].meta.etag, etag);
	pvm_lpar_list_free(l);
	pvm_resp_fini(&r);
	assert_int_equal(pvm_client_delete(c, path, etag, "req-delete", &err), 0);
	struct pvm_client_stats st;
	pvm_client_stats(c, &st);
	assert_int_equal(st.retries_412, 1);
	assert_int_equal(pvm_client_get(c, path, NULL, NULL, &r, &err), PVM_ENOTFOUND);
	pvm_resp_fini(&r);
	/* deleting what is gone is done */
	assert_int_equal(pvm_client_delete(c, path, NULL, NULL, &err), 0);
	pvm_client_destroy(c);
	sim_stop(&s);
}

struct job_wait {
	struct pvm_client *c;
	const char *id;
	struct pvm_job *last;
};

static bool job_done(void *arg)
{
	struct job_wait *w = arg;
	pvm_job_free(w->last);
	w->last = NULL;
	struct pvm_rest_error err;
	assert_int_equal(pvm_job_poll(w->c, w->id, "req-poll", &w->last, &err), 0);
	return pvm_job_status_terminal(w->last->status);
}

static void test_pvm_client_jobs(void **state)
{
	(void)state;
	struct sim s = {0};
	sim_start(&s, "{\"timing\": {\"job_not_started_ms\": 10, \"job_duration_ms\": 50, "
	              "\"job_generic_ms\": 50, \"job_immediate_ms\": 20}}");
	struct pvm_client *c = client_for(&s, NULL);
	struct pvm_rest_error err;
	char ms[40], uuid[37] = "2C1E4D2A-0B7B-4F6F-9D8E-3A1B2C3D4E5F";
	ms_uuid(c, ms);
	assert_int_equal(create_lpar(c, ms, uuid, "inst-jobs", &err), 0);
	char root[128], id[32];
	snprintf(root, sizeof(root), "uom/LogicalPartition/%s", uuid);
	struct pvm_job_param on[] = {{"force", "true"}};
	int rc = pvm_job_submit(c, root, "PowerOn", on, 1, "req-job", id, sizeof(id), &err);
	if (rc)
		fprintf(stderr, "submit: %s\n", err.message);
	assert_int_equal(rc, 0);
	assert_true(id[0] != '\0');
	struct job_wait w = {.c = c, .id = id};
	assert_true(pvm_test_wait(job_done, &w, 10000));
	assert_int_equal(w.last->status, PVM_JOB_COMPLETED_OK);
	assert_int_equal(pvm_job_outcome(w.last, &err), 0);
	assert_string_equal(w.last->job_id, id);
	pvm_job_free(w.last);
	w.last = NULL;
	assert_int_equal(pvm_job_delete(c, id, NULL, &err), 0);
	assert_int_equal(pvm_job_delete(c, id, NULL, &err), 0); /* gone: done */

	/* a job that fails: permanent, with the server's message */
	sim_faults(&s, "{\"job_failure_rates\": {\"PowerOff\": 1.0}}");
	struct pvm_job_param off[] = {{"operation", "shutdown"}, {"immediate", "true"}};
	assert_int_equal(pvm_job_submit(c, root, "PowerOff", off, 2, NULL, id, sizeof(id), &err),
	                 0);
	w.id = id;
	assert_true(pvm_test_wait(job_done, &w, 10000));
	assert_int_equal(pvm_job_outcome(w.last, &err), -EREMOTEIO);
	assert_false(err.transient);
	assert_true(strlen(err.message) > 10);
	pvm_job_free(w.last);
	w.last = NULL;
	/* cancel of a finished job is answered by the server; bad ids are refused here */
	assert_int_equal(pvm_job_cancel(c, "12ab", NULL, &err), PVM_EINVAL);
	assert_int_equal(pvm_job_poll(c, "999999999", NULL, &w.last, &err), PVM_ENOTFOUND);
	pvm_client_destroy(c);
	sim_stop(&s);
}

struct par {
	struct pvm_client *c;
	pthread_barrier_t *bar;
	int rc;
	char msg[512];
};

static void *par_get(void *arg)
{
	struct par *p = arg;
	pthread_barrier_wait(p->bar);
	struct pvm_resp r;
	struct pvm_rest_error err;
	p->rc = pvm_client_get(p->c, "uom/LogicalPartition", NULL, NULL, &r, &err);
	snprintf(p->msg, sizeof(p->msg), "%s", err.message);
	pvm_resp_fini(&r);
	return NULL;
}

static void test_pvm_client_relogon_8_threads(void **state)
{
	(void)state;
	struct sim s = {0};
	sim_start(&s, NULL);
	sim_faults(&s, "{\"session_expiry_requests\": 16}");
	struct pvm_client *c = client_for(&s, NULL);
	struct pvm_rest_error err;
	assert_int_equal(pvm_client_logon(c, &err), 0);
	struct pvm_resp r;
	for (int i = 0; i < 16; i++) {
		assert_int_equal(pvm_client_get(c, "uom/ManagedSystem", NULL, NULL, &r, &err), 0);
		pvm_resp_fini(&r);
	}
	/* the session is used up: the next request of each of 8 threads gets a 401 */
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, 8);
	struct par p[8];
	pthread_t t[8];
	for (int i = 0; i < 8; i++) {
		p[i] = (struct par){.c = c, .bar = &bar};
		pthread_create(&t[i], NULL, par_get, &p[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		if (p[i].rc)
			fprintf(stderr, "thread %d: %s\n", i, p[i].msg);
		assert_int_equal(p[i].rc, 0);
	}
	pthread_barrier_destroy(&bar);
	struct pvm_client_stats st;
	pvm_client_stats(c, &st);
	assert_int_equal(st.logons, 2); /* the first and exactly one re-logon */
	assert_true(st.retries_401 >= 1);
	assert_int_equal(sim_logons(&s), 2);
	pvm_client_destroy(c);
	sim_stop(&s);
}

static void test_pvm_client_refused_logon(void **state)
{
	(void)state;
	struct sim s = {0};
	sim_start(&s, NULL);
	struct pvm_client_opts o = {.password = "wrong"};
	struct pvm_client *c = client_for(&s, &o);
	struct pvm_rest_error err;
	assert_int_equal(pvm_client_logon(c, &err), -EACCES);
	assert_false(err.transient);
	struct pvm_resp r;
	/* no further logon is tried: the account is protected */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pvm_client_get(c, "uom/ManagedSystem", NULL, NULL, &r, &err),
		                 -EACCES);
		assert_non_null(strstr(err.message, "re-logon disabled"));
		pvm_resp_fini(&r);
	}
	struct pvm_client_stats st;
	pvm_client_stats(c, &st);
	assert_true(st.relogon_disabled);
	assert_int_equal(st.logons, 0);
	assert_int_equal(st.requests, 1);
	pvm_client_destroy(c);
	sim_stop(&s);
}

static int touch_name(void *arg, const char *entry, size_t len, char **body)
{
	int *calls = arg;
	(*calls)++;
	struct pvm_lpar_spec u = {.memory_mb = 2048 + 256 * (*calls)};
	struct pvm_rest_error err;
	*body = pvm_build_lpar_update(entry, len, &u, &err);
	return *body ? 0 : err.code;
}

static void test_pvm_client_412_retry(void **state)
{
	(void)state;
	struct sim s = {0};
	sim_start(&s, NULL);
	struct pvm_client_opts o = {.etag_retries = 4};
	struct pvm_client *c = client_for(&s, &o);
	struct pvm_rest_error err;
	char ms[40], uuid[37] = "3C1E4D2A-0B7B-4F6F-9D8E-3A1B2C3D4E5F";
	ms_uuid(c, ms);
	assert_int_equal(create_lpar(c, ms, uuid, "inst-412", &err), 0);
	char path[128];
	snprintf(path, sizeof(path), "uom/LogicalPartition/%s", uuid);
	/* the first two updates of the path get 412: re-read and re-apply twice */
	sim_faults(&s, "{\"rules\": [{\"method\": \"POST\", \"path\": "
	               "\"/rest/api/uom/LogicalPartition/*\", \"kind\": \"412\", \"first\": 2}]}");
	int calls = 0;
	struct pvm_update up = {.path = path,
	                        .content_type = "application/vnd.ibm.powervm.uom+xml; "
	                                        "type=LogicalPartition",
	                        .change = touch_name,
	                        .arg = &calls};
	struct pvm_resp r;
	int rc = pvm_client_update(c, &up, &r, &err);
	if (rc)
		fprintf(stderr, "update: %s\n", err.message);
	assert_int_equal(rc, 0);
	pvm_resp_fini(&r);
	assert_int_equal(calls, 3);
	struct pvm_client_stats st;
	pvm_client_stats(c, &st);
	assert_int_equal(st.retries_412, 2);
	/* a 412 storm: bounded, then -ESTALE, transient */
	sim_faults(&s, "{\"rules\": [{\"method\": \"POST\", \"path\": "
	               "\"/rest/api/uom/LogicalPartition/*\", \"kind\": \"412\", \"rate\": 1.0}]}");
	calls = 0;
	assert_int_equal(pvm_client_update(c, &up, &r, &err), -ESTALE);
	pvm_resp_fini(&r);
	assert_true(err.transient);
	assert_int_equal(calls, 4);
	pvm_client_destroy(c);
	sim_stop(&s);
}

static void test_pvm_client_transient_faults(void **state)
{
	(void)state;
	struct sim s = {0};
	sim_start(&s, NULL);
	struct pvm_client *c = client_for(&s, NULL);
	struct pvm_rest_error err;
	assert_int_equal(pvm_client_logon(c, &err), 0);
	struct {
		const char *kind;
		int code;
	} cases[] = {{"vios_busy", -EBUSY},
	             {"http_500", -EAGAIN},
	             {"http_503", -EAGAIN},
	             {"reset", -ECONNRESET}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char f[256];
		snprintf(f, sizeof(f),
		         "{\"rules\": [{\"method\": \"GET\", \"path\": \"/rest/api/uom/"
		         "VirtualIOServer*\", \"kind\": \"%s\", \"rate\": 1.0}]}",
		         cases[i].kind);
		sim_faults(&s, f);
		struct pvm_resp r;
		int rc = pvm_client_get(c, "uom/VirtualIOServer", NULL, NULL, &r, &err);
		if (rc != cases[i].code)
			fprintf(stderr, "%s: %s (%s)\n", cases[i].kind, pvm_errname(rc),
			        err.message);
		assert_int_equal(rc, cases[i].code);
		assert_true(err.transient);
		assert_true(pvm_client_transient(rc));
		pvm_resp_fini(&r);
	}
	sim_faults(&s, "{}");
	/* the server gone: connection refused, transient */
	sim_kill(&s);
	struct pvm_resp r;
	assert_int_equal(pvm_client_get(c, "uom/ManagedSystem", NULL, NULL, &r, &err),
	                 -ECONNREFUSED);
	assert_true(err.transient);
	pvm_resp_fini(&r);
	pvm_client_destroy(c);
	sim_stop(&s);
}

struct bg_logon {
	struct pvm_client *c;
	int rc;
	atomic_bool done;
};

static void *bg_logon_main(void *arg)
{
	struct bg_logon *b = arg;
	struct pvm_rest_error err;
	b->rc = pvm_client_logon(b->c, &err);
	atomic_store(&b->done, true);
	return NULL;
}

static void test_pvm_client_connect_retry(void **state)
{
	(void)state;
	struct sim s = {0};
	int port = free_port();
	snprintf(s.endpoint, sizeof(s.endpoint), "http://127.0.0.1:%d", port);
	struct pvm_client_opts o = {.connect_retry_ms = 30000 * pvm_test_scale(),
	                            .connect_retry_interval_ms = 50};
	struct pvm_client *c = client_for(&s, &o);
	struct bg_logon b = {.c = c};
	pthread_t t;
	pthread_create(&t, NULL, bg_logon_main, &b);
	/* the server comes up while logon keeps retrying */
	struct timespec ts = {0, 200 * 1000 * 1000};
	nanosleep(&ts, NULL);
	assert_false(atomic_load(&b.done));
	sim_start_on(&s, port, NULL, NULL, NULL);
	pthread_join(t, NULL);
	assert_int_equal(b.rc, 0);
	pvm_client_destroy(c);
	/* bounded: with no server, logon gives up after the window */
	sim_kill(&s);
	o.connect_retry_ms = 300;
	c = client_for(&s, &o);
	int64_t t0 = pvm_mono_ns();
	struct pvm_rest_error err;
	assert_int_equal(pvm_client_logon(c, &err), -ECONNREFUSED);
	assert_true(pvm_mono_ns() - t0 < (int64_t)5000 * pvm_test_scale() * 1000000);
	pvm_client_destroy(c);
	sim_stop(&s);
}

static int run(const char *cmd)
{
	int rc = system(cmd);
	if (rc)
		fprintf(stderr, "failed (%d): %s\n", rc, cmd);
	return rc;
}

static void test_pvm_client_tls(void **state)
{
	(void)state;
	struct sim s = {0};
	s.dir = pvm_test_tmpdir("pvmtls");
	char cmd[4096];
	/* a CA, and a server certificate for 127.0.0.1 signed by it */
	snprintf(cmd, sizeof(cmd),
	         "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem "
	         "-days 2 -subj /CN=pvmtest-ca 2>/dev/null && "
	         "openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr "
	         "-subj /CN=127.0.0.1 2>/dev/null && "
	         "printf 'subjectAltName=IP:127.0.0.1\\n' > ext.cnf && "
	         "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
	         "-out srv.pem -days 2 -extfile ext.cnf 2>/dev/null && "
	         "openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem "
	         "-days 2 -subj /CN=other-ca 2>/dev/null",
	         s.dir);
	assert_int_equal(run(cmd), 0);
	char cert[512], key[512], ca[512], other[512];
	snprintf(cert, sizeof(cert), "%s/srv.pem", s.dir);
	snprintf(key, sizeof(key), "%s/srv.key", s.dir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", s.dir);
	snprintf(other, sizeof(other), "%s/other.pem", s.dir);
	sim_start_on(&s, 0, NULL, cert, key);
	assert_true(s.tls);

	struct pvm_client_opts o = {.ca_file = ca};
	struct pvm_client *c = client_for(&s, &o);
	struct pvm_rest_error err;
	int rc = pvm_client_logon(c, &err);
	if (rc)
		fprintf(stderr, "tls logon: %s\n", err.message);
	assert_int_equal(rc, 0);
	struct pvm_resp r;
	assert_int_equal(pvm_client_get(c, "uom/ManagedSystem", NULL, NULL, &r, &err), 0);
	pvm_resp_fini(&r);
	pvm_client_destroy(c);

	/* an untrusted certificate: refused, permanent, nothing sent */
	o.ca_file = other;
	c = client_for(&s, &o);
	assert_int_equal(pvm_client_logon(c, &err), PVM_ECRYPTO);
	assert_false(err.transient);
	pvm_client_destroy(c);
	o.ca_file = NULL; /* the system's CAs do not know ours either */
	c = client_for(&s, &o);
	assert_int_equal(pvm_client_logon(c, &err), PVM_ECRYPTO);
	pvm_client_destroy(c);
	/* the explicit insecure mode works (and warns) */
	o.tls_insecure = true;
	c = client_for(&s, &o);
	assert_int_equal(pvm_client_logon(c, &err), 0);
	pvm_client_destroy(c);
	assert_int_equal(sim_logons(&s), 2);
	sim_stop(&s);
}

static void test_pvm_client_file_logon(void **state)
{
	(void)state;
	struct sim s = {0};
	sim_start(&s, NULL);
	char tokdir[512];
	snprintf(tokdir, sizeof(tokdir), "%s/state/tokens", s.dir);
	struct pvm_client_opts o = {.file_logon = true, .token_dir = tokdir};
	struct pvm_client *c = client_for(&s, &o);
	struct pvm_rest_error err;
	int rc = pvm_client_logon(c, &err);
	if (rc)
		fprintf(stderr, "file logon: %s\n", err.message);
	assert_int_equal(rc, 0);
	struct pvm_resp r;
	assert_int_equal(pvm_client_get(c, "uom/ManagedSystem", NULL, NULL, &r, &err), 0);
	pvm_resp_fini(&r);
	pvm_client_destroy(c);
	/* a token file outside the allowed directory is refused */
	char other[512];
	snprintf(other, sizeof(other), "%s", s.dir);
	o.token_dir = other;
	snprintf(other, sizeof(other), "%s/elsewhere", s.dir);
	mkdir(other, 0700);
	o.token_dir = other;
	c = client_for(&s, &o);
	assert_int_equal(pvm_client_logon(c, &err), PVM_EPERM);
	assert_non_null(strstr(err.message, "outside the allowed directory"));
	pvm_client_destroy(c);
	/* owned by someone else: refused */
	o.token_dir = tokdir;
	o.token_uid = 4242;
	c = client_for(&s, &o);
	assert_int_equal(pvm_client_logon(c, &err), PVM_EPERM);
	assert_non_null(strstr(err.message, "owned by uid"));
	pvm_client_destroy(c);
	sim_stop(&s);
}

struct evs {
	pthread_mutex_t lock;
	int resync, add, total;
};

static void on_event(void *arg, const struct pvm_event *ev)
{
	struct evs *e = arg;
	pthread_mutex_lock(&e->lock);
	e->total++;
	if (ev->kind == PVM_EVENT_RESYNC)
		e->resync++;
	if (ev->kind == PVM_EVENT_ADD)
		e->add++;
	pthread_mutex_unlock(&e->lock);
}

static bool got_resync(void *arg)
{
	struct evs *e = arg;
	pthread_mutex_lock(&e->lock);
	bool b = e->resync > 0;
	pthread_mutex_unlock(&e->lock);
	return b;
}

static bool got_add(void *arg)
{
	struct evs *e = arg;
	pthread_mutex_lock(&e->lock);
	bool b = e->add > 0;
	pthread_mutex_unlock(&e->lock);
	return b;
}

static void test_pvm_client_events(void **state)
{
	(void)state;
	struct sim s = {0};
	sim_start(&s, "{\"timing\": {\"event_wait_ms\": 5000}}");
	struct pvm_client *c = client_for(&s, NULL);
	struct pvm_rest_error err;
	assert_int_equal(pvm_client_logon(c, &err), 0);
	struct evs e = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct pvm_event_listener_opts lo = {.app_id = "pvmtest",
	                                     .fn = on_event,
	                                     .arg = &e,
	                                     .backoff_min_ms = 20,
	                                     .backoff_max_ms = 200};
	struct pvm_event_listener *l = NULL;
	assert_int_equal(pvm_event_listener_start(c, &lo, &l), 0);
	assert_true(pvm_test_wait(got_resync, &e, 10000)); /* NEW_CLIENT first */
	char ms[40];
	ms_uuid(c, ms);
	assert_int_equal(
	        create_lpar(c, ms, "4C1E4D2A-0B7B-4F6F-9D8E-3A1B2C3D4E5F", "inst-ev", &err), 0);
	assert_true(pvm_test_wait(got_add, &e, 10000));
	/* the listener is parked in a 5 s long-poll now: stop must not wait for it */
	struct timespec ts = {0, 100 * 1000 * 1000};
	nanosleep(&ts, NULL);
	int64_t t0 = pvm_mono_ns();
	pvm_event_listener_stop(l);
	int64_t ms_taken = (pvm_mono_ns() - t0) / 1000000;
	fprintf(stderr, "listener stop took %lld ms\n", (long long)ms_taken);
	assert_true(ms_taken < 1000 * pvm_test_scale());
	/* errors back off and the listener still stops promptly */
	sim_kill(&s);
	l = NULL;
	assert_int_equal(pvm_event_listener_start(c, &lo, &l), 0);
	uint64_t nev, nerr = 0;
	for (int i = 0; i < 2000 && nerr < 2; i++) {
		pvm_event_listener_counts(l, &nev, &nerr);
		nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
	}
	assert_true(nerr >= 2);
	pvm_event_listener_stop(l);
	pvm_client_destroy(c);
	sim_stop(&s);
}

static void test_pvm_client_limits(void **state)
{
	(void)state;
	struct sim s = {0};
	sim_start(&s, NULL);
	struct pvm_client_opts o = {.max_response_bytes = 2000};
	struct pvm_client *c = client_for(&s, &o);
	struct pvm_rest_error err;
	assert_int_equal(pvm_client_logon(c, &err), 0);
	struct pvm_resp r;
	assert_int_equal(pvm_client_get(c, "uom/ManagedSystem", NULL, NULL, &r, &err), PVM_ETOOBIG);
	assert_false(err.transient);
	pvm_resp_fini(&r);
	/* header injection through a request id is refused before sending */
	assert_int_equal(pvm_client_get(c, "uom/ManagedSystem", NULL, "a\r\nX-Evil: 1", &r, &err),
	                 PVM_EINVAL);
	pvm_resp_fini(&r);
	/* an href from a response keeps only its path: the configured endpoint is used */
	assert_int_equal(pvm_client_get(c, "https://elsewhere.example:12443/rest/api/web/Logon",
	                                NULL, NULL, &r, &err) != -EHOSTUNREACH,
	                 1);
	pvm_resp_fini(&r);
	pvm_client_destroy(c);
	struct pvm_client_opts bad = {.endpoint = "ftp://x", .user = "u", .password = "p"};
	assert_int_equal(pvm_client_create(&bad, &c, &err), PVM_EINVAL);
	bad.endpoint = "https://x";
	bad.password = NULL;
	assert_int_equal(pvm_client_create(&bad, &c, &err), PVM_EINVAL);
	sim_stop(&s);
}

/* A one-thread HTTP server that records the request heads it gets: logon answers a token,
 * anything else 404. Bounded: it serves at most max_conns connections. */
struct spy {
	int fd, port, max_conns;
	pthread_t t;
	char heads[4][8192];
	int n;
};

static void *spy_main(void *arg)
{
	struct spy *s = arg;
	for (int k = 0; k < s->max_conns; k++) {
		int c = accept(s->fd, NULL, NULL);
		if (c < 0)
			return NULL;
		for (int req = 0; req < 4 && s->n < 4; req++) {
			char buf[8192];
			size_t len = 0;
			ssize_t r;
			while (len < sizeof(buf) - 1 &&
			       (r = read(c, buf + len, sizeof(buf) - 1 - len)) > 0) {
				len += (size_t)r;
				buf[len] = '\0';
				char *end = strstr(buf, "\r\n\r\n");
				if (!end)
					continue;
				const char *cl = strcasestr(buf, "Content-Length:");
				size_t body = cl ? (size_t)atol(cl + 15) : 0;
				if (len >= (size_t)(end + 4 - buf) + body)
					break;
			}
			if (len == 0)
				break;
			snprintf(s->heads[s->n++], sizeof(s->heads[0]), "%s", buf);
			const char *ok =
			        "<LogonResponse xmlns=\"http://www.ibm.com/xmlns/systems/power/"
			        "firmware/web/mc/2012_10/\"><X-API-Session>tok-1</X-API-Session>"
			        "</LogonResponse>";
			char out[1024];
			if (!strncmp(buf, "PUT /rest/api/web/Logon", 23))
				snprintf(out, sizeof(out),
				         "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n"
				         "Content-Length: %zu\r\n\r\n%s",
				         strlen(ok), ok);
			else
				snprintf(out, sizeof(out),
				         "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
			if (write(c, out, strlen(out)) < 0)
				break;
		}
		close(c);
	}
	return NULL;
}

static void test_pvm_client_headers(void **state)
{
	(void)state;
	struct spy s = {.max_conns = 3};
	s.fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(s.fd, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t l = sizeof(a);
	getsockname(s.fd, (struct sockaddr *)&a, &l);
	assert_int_equal(listen(s.fd, 4), 0);
	struct sim fake = {0};
	snprintf(fake.endpoint, sizeof(fake.endpoint), "http://127.0.0.1:%d", ntohs(a.sin_port));
	pthread_create(&s.t, NULL, spy_main, &s);
	struct pvm_client *c = client_for(&fake, NULL);
	struct pvm_req rq = {.method = PVM_POST,
	                     .path = "uom/LogicalPartition/X",
	                     .query = "group=None",
	                     .content_type = "application/vnd.ibm.powervm.uom+xml; "
	                                     "type=LogicalPartition",
	                     .body = "<x/>",
	                     .body_len = 4,
	                     .if_match = "-384789939",
	                     .request_id = "req-0123456789abcdef"};
	struct pvm_resp r;
	struct pvm_rest_error err;
	assert_int_equal(pvm_client_request(c, &rq, &r, &err), PVM_ENOTFOUND);
	pvm_resp_fini(&r);
	pvm_client_destroy(c); /* logoff: the third request */
	shutdown(s.fd, SHUT_RDWR);
	close(s.fd);
	pthread_join(s.t, NULL);
	assert_true(s.n >= 2);
	assert_non_null(strstr(s.heads[0], "PUT /rest/api/web/Logon HTTP/1.1"));
	assert_non_null(strstr(s.heads[0], "type=LogonRequest"));
	assert_null(strstr(s.heads[0], "X-API-Session"));
	const char *h = s.heads[1];
	assert_non_null(strstr(h, "POST /rest/api/uom/LogicalPartition/X?group=None HTTP/1.1"));
	assert_non_null(strstr(h, "X-API-Session: tok-1\r\n"));
	assert_non_null(strstr(h, "X-Audit-Memento: req-0123456789abcdef\r\n"));
	assert_non_null(strstr(h, "If-Match: -384789939\r\n"));
	assert_non_null(strstr(h, "Accept: application/atom+xml\r\n"));
	assert_non_null(strstr(h, "Content-Type: application/vnd.ibm.powervm.uom+xml; "
	                          "type=LogicalPartition\r\n"));
	if (s.n >= 3)
		assert_non_null(strstr(s.heads[2], "DELETE /rest/api/web/Logon"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_pvm_client_logon_and_feeds),
	        cmocka_unit_test(test_pvm_client_lpar_roundtrip),
	        cmocka_unit_test(test_pvm_client_jobs),
	        cmocka_unit_test(test_pvm_client_relogon_8_threads),
	        cmocka_unit_test(test_pvm_client_refused_logon),
	        cmocka_unit_test(test_pvm_client_412_retry),
	        cmocka_unit_test(test_pvm_client_transient_faults),
	        cmocka_unit_test(test_pvm_client_connect_retry),
	        cmocka_unit_test(test_pvm_client_tls),
	        cmocka_unit_test(test_pvm_client_file_logon),
	        cmocka_unit_test(test_pvm_client_events),
	        cmocka_unit_test(test_pvm_client_limits),
	        cmocka_unit_test(test_pvm_client_headers),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, NULL);
}
