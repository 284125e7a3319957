/* test_sim.c: pvmsim, the PowerVM REST API test double.
 *
 * Each case starts a simulator in-process on a free loopback port (port 0) in a fresh
 * directory, talks to it with libcurl as a real client would, and stops it. Waits are
 * deadlines on conditions scaled by pvm_test_scale(); job durations are scaled the same
 * way so that sanitizer builds observe the same state sequences. test_sim_process runs the
 * real pvmsim binary and kills it with SIGKILL.
 */
#include "sim.h"
#include "testutil.h"

#include "pvm/util.h"

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stddef.h>
#include <cmocka.h>

#define NS_UOM SIM_NS_UOM
#define NS_WEB SIM_NS_WEB

/* ---- a client ---- */

struct resp {
	long status;
	int curl_rc;
	char *body;
	size_t len;
	char etag[64];
	char mctype[16];
	double secs;
};

static void resp_free(struct resp *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
	struct resp *r = arg;
	char *nb = realloc(r->body, r->len + sz * n + 1);
	assert_non_null(nb);
	memcpy(nb + r->len, p, sz * n);
	r->len += sz * n;
	nb[r->len] = '\0';
	r->body = nb;
	return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t len = sz * n;
	char line[256];
	if (len >= sizeof(line))
		return len;
	memcpy(line, p, len);
	line[len] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if (strncasecmp(line, "ETag: ", 6) == 0)
		snprintf(r->etag, sizeof(r->etag), "%.31s", line + 6);
	if (strncasecmp(line, "X-MC-Type: ", 11) == 0)
		snprintf(r->mctype, sizeof(r->mctype), "%.15s", line + 11);
	return len;
}

struct t {
	char *dir;
	struct pvm_sim *sim;
	char url[128];
	char token[128];
	char ms[SIM_UUID_LEN];
	const char *cafile; /* HTTPS: verify with this CA */
};

/* One request. extra: "Header: value" or NULL. */
static struct resp req(struct t *t, const char *method, const char *path, const char *body,
                       const char *extra)
{
	struct resp r = {0};
	CURL *c = curl_easy_init();
	assert_non_null(c);
	char url[1024];
	snprintf(url, sizeof(url), "%s%s", t->url, path);
	struct curl_slist *h = NULL;
	char hdr[256];
	if (t->token[0]) {
		snprintf(hdr, sizeof(hdr), "X-API-Session: %s", t->token);
		h = curl_slist_append(h, hdr);
	}
	if (extra)
		h = curl_slist_append(h, extra);
	h = curl_slist_append(h, "Expect:");
	char errbuf[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L * pvm_test_scale());
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
	if (t->cafile)
		curl_easy_setopt(c, CURLOPT_CAINFO, t->cafile);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	int64_t t0 = pvm_mono_ns();
	r.curl_rc = (int)curl_easy_perform(c);
	r.secs = (double)(pvm_mono_ns() - t0) / 1e9;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return r;
}

static long status_of(struct t *t, const char *method, const char *path, const char *body,
                      const char *extra)
{
	struct resp r = req(t, method, path, body, extra);
	long s = r.status;
	resp_free(&r);
	return s;
}

/* Text of the first element with this local name, or "" (static buffer). */
static const char *find(const char *xml, const char *name)
{
	static char out[512];
	out[0] = '\0';
	char open[96];
	snprintf(open, sizeof(open), "<%s", name);
	const char *p = xml;
	while (p && (p = strstr(p, open))) {
		char after = p[strlen(open)];
		if (after == '>' || after == ' ' || after == '/')
			break;
		p++;
	}
	if (!p)
		return out;
	const char *gt = strchr(p, '>');
	if (!gt || gt[-1] == '/')
		return out;
	const char *end = strstr(gt, "</");
	if (!end)
		return out;
	size_t n = (size_t)(end - gt - 1);
	if (n >= sizeof(out))
		n = sizeof(out) - 1;
	memcpy(out, gt + 1, n);
	out[n] = '\0';
	return out;
}

static int count(const char *s, const char *needle)
{
	int n = 0;
	for (const char *p = s; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

#define LOGON_BODY                                                                                 \
	"<LogonRequest xmlns=\"" NS_WEB "\" schemaVersion=\"V1_0\"><UserID>hscroot</UserID>"       \
	"<Password>%s</Password></LogonRequest>"

static long logon_as(struct t *t, const char *password)
{
	char body[512];
	snprintf(body, sizeof(body), LOGON_BODY, password);
	char saved[128];
	snprintf(saved, sizeof(saved), "%s", t->token);
	t->token[0] = '\0';
	struct resp r = req(t, "PUT", "/rest/api/web/Logon", body,
	                    "Content-Type: application/vnd.ibm.powervm.web+xml; type=LogonRequest");
	long s = r.status;
	if (s == 200)
		snprintf(t->token, sizeof(t->token), "%s", find(r.body, "X-API-Session"));
	else
		snprintf(t->token, sizeof(t->token), "%s", saved);
	resp_free(&r);
	return s;
}

/* Timing and extra config keys (a JSON fragment without braces, may be empty). */
static void start_in(struct t *t, enum pvm_sim_mode mode, const char *extra, const char *tls_cert,
                     const char *tls_key)
{
	int s = pvm_test_scale();
	char cfg[4096];
	snprintf(cfg, sizeof(cfg),
	         "{\"timing\": {\"job_not_started_ms\": %d, \"job_duration_ms\": %d,"
	         " \"job_immediate_ms\": %d, \"job_generic_ms\": %d, \"event_wait_ms\": %d}%s%s}",
	         80 * s, 600 * s, 250 * s, 200 * s, 600 * s, extra && *extra ? ", " : "",
	         extra ? extra : "");
	char *path = NULL;
	assert_true(asprintf(&path, "%s/pvmsim.json", t->dir) > 0);
	write_text(path, cfg);
	char *st = NULL;
	assert_true(asprintf(&st, "%s/state", t->dir) > 0);
	struct pvm_sim_opts o = {.listen_host = "127.0.0.1",
	                         .port = 0,
	                         .mode = mode,
	                         .state_dir = st,
	                         .config_path = path,
	                         .tls_cert = tls_cert,
	                         .tls_key = tls_key,
	                         .quiet = true};
	assert_int_equal(pvm_sim_create(&o, &t->sim), 0);
	snprintf(t->url, sizeof(t->url), "%s://%s:%d", tls_cert ? "https" : "http",
	         tls_cert ? "localhost" : "127.0.0.1", pvm_sim_port(t->sim));
	free(path);
	free(st);
	t->token[0] = '\0';
	if (logon_as(t, "abc123") == 200) {
		struct resp r = req(t, "GET", "/rest/api/uom/ManagedSystem", NULL, NULL);
		snprintf(t->ms, sizeof(t->ms), "%s", find(r.body, "AtomID"));
		resp_free(&r);
	}
}

static struct t *start(enum pvm_sim_mode mode, const char *extra)
{
	struct t *t = calloc(1, sizeof(*t));
	t->dir = pvm_test_tmpdir("sim");
	start_in(t, mode, extra, NULL, NULL);
	assert_true(t->token[0] != '\0');
	return t;
}

static void stop_sim(struct t *t)
{
	pvm_sim_destroy(t->sim);
	t->sim = NULL;
}

static void finish(struct t *t)
{
	stop_sim(t);
	pvm_test_rmtree(t->dir);
	free(t);
}

static char *lpar_body(const char *uuid, const char *name, int mem)
{
	char *b = NULL;
	assert_true(
	        asprintf(
	                &b,
	                "<LogicalPartition:LogicalPartition xmlns:LogicalPartition=\"" NS_UOM
	                "\" xmlns=\"" NS_UOM "\" schemaVersion=\"V1_0\"><Metadata><Atom>"
	                "<AtomID>%s</AtomID></Atom></Metadata>"
	                "<AllowPerformanceDataCollection>false</AllowPerformanceDataCollection>"
	                "<AvailabilityPriority>127</AvailabilityPriority>"
	                "<PartitionIOConfiguration><MaximumVirtualIOSlots>64</"
	                "MaximumVirtualIOSlots>"
	                "</PartitionIOConfiguration><PartitionMemoryConfiguration>"
	                "<DesiredMemory>%d</DesiredMemory><MaximumMemory>%d</MaximumMemory>"
	                "<MinimumMemory>%d</MinimumMemory></PartitionMemoryConfiguration>"
	                "<PartitionName>%s</PartitionName><PartitionProcessorConfiguration>"
	                "<HasDedicatedProcessors>false</HasDedicatedProcessors>"
	                "<SharedProcessorConfiguration><DesiredProcessingUnits>0.2"
	                "</DesiredProcessingUnits><DesiredVirtualProcessors>2"
	                "</DesiredVirtualProcessors><MaximumProcessingUnits>0.4"
	                "</MaximumProcessingUnits><MaximumVirtualProcessors>4"
	                "</MaximumVirtualProcessors><MinimumProcessingUnits>0.1"
	                "</MinimumProcessingUnits><MinimumVirtualProcessors>1"
	                "</MinimumVirtualProcessors><SharedProcessorPoolID>0"
	                "</SharedProcessorPoolID><UncappedWeight>64</UncappedWeight>"
	                "</SharedProcessorConfiguration><SharingMode>uncapped</SharingMode>"
	                "</PartitionProcessorConfiguration><PartitionType>AIX/Linux</PartitionType>"
	                "</LogicalPartition:LogicalPartition>",
	                uuid, mem, mem * 2, mem / 2, name) > 0);
	return b;
}

static long create_lpar(struct t *t, const char *uuid, const char *name)
{
	char *b = lpar_body(uuid, name, 2048);
	char path[256];
	snprintf(path, sizeof(path), "/rest/api/uom/ManagedSystem/%s/LogicalPartition", t->ms);
	long s = status_of(
	        t, "PUT", path, b,
	        "Content-Type: application/vnd.ibm.powervm.uom+xml; type=LogicalPartition");
	free(b);
	return s;
}

static char *state_of(struct t *t, const char *uuid)
{
	char path[256];
	snprintf(path, sizeof(path), "/rest/api/uom/LogicalPartition/%s/quick/PartitionState",
	         uuid);
	struct resp r = req(t, "GET", path, NULL, NULL);
	char *s = strdup(r.status == 200 && r.body ? r.body : "?");
	resp_free(&r);
	return s;
}

/* Starts a job and returns its id (0 on failure); *status gets the HTTP status. */
static unsigned long long start_job(struct t *t, const char *uuid, const char *op,
                                    const char *params, long *status)
{
	char path[256];
	snprintf(path, sizeof(path), "/rest/api/uom/LogicalPartition/%s/do/%s", uuid, op);
	struct resp tpl = req(t, "GET", path, NULL, NULL);
	assert_int_equal(tpl.status, 200);
	/* Insert the parameters into the template's empty JobParameters, as clients do. */
	char *body = NULL;
	const char *end = strstr(tpl.body, "</JobParameters>");
	assert_non_null(end);
	assert_true(asprintf(&body, "%.*s%s%s", (int)(end - tpl.body), tpl.body,
	                     params ? params : "", end) > 0);
	resp_free(&tpl);
	struct resp r = req(t, "PUT", path, body,
	                    "Content-Type: application/vnd.ibm.powervm.web+xml; type=JobRequest");
	free(body);
	*status = r.status;
	unsigned long long id = r.status == 200 ? strtoull(find(r.body, "JobID"), NULL, 10) : 0;
	resp_free(&r);
	return id;
}

static char *job_status(struct t *t, unsigned long long id)
{
	char path[128];
	snprintf(path, sizeof(path), "/rest/api/uom/jobs/%llu", id);
	struct resp r = req(t, "GET", path, NULL, NULL);
	char *s = strdup(r.status == 200 ? find(r.body, "Status") : "GONE");
	resp_free(&r);
	return s;
}

static bool terminal(const char *s)
{
	return strncmp(s, "COMPLETED", 9) == 0 || strcmp(s, "FAILED_BEFORE_COMPLETION") == 0 ||
	       strcmp(s, "GONE") == 0;
}

/* Polls job and partition until the job ends (bounded); records distinct states in seq
 * ("a>b>c") and job statuses in jseq. Returns the terminal status (heap). */
static char *follow_job(struct t *t, unsigned long long id, const char *uuid, char *seq,
                        size_t seqn, char *jseq, size_t jseqn)
{
	seq[0] = jseq[0] = '\0';
	char last[64] = "", lastj[64] = "";
	int64_t deadline = pvm_mono_ns() + (int64_t)20000 * pvm_test_scale() * 1000000;
	for (int i = 0; i < 100000 && pvm_mono_ns() < deadline; i++) {
		char *js = job_status(t, id);
		char *ps = state_of(t, uuid);
		if (strcmp(ps, last) != 0) {
			snprintf(seq + strlen(seq), seqn - strlen(seq), "%s%s", seq[0] ? ">" : "",
			         ps);
			snprintf(last, sizeof(last), "%s", ps);
		}
		if (strcmp(js, lastj) != 0) {
			snprintf(jseq + strlen(jseq), jseqn - strlen(jseq), "%s%s",
			         jseq[0] ? ">" : "", js);
			snprintf(lastj, sizeof(lastj), "%s", js);
		}
		free(ps);
		if (terminal(js)) {
			/* one more partition read: the final state */
			ps = state_of(t, uuid);
			if (strcmp(ps, last) != 0)
				snprintf(seq + strlen(seq), seqn - strlen(seq), ">%s", ps);
			free(ps);
			return js;
		}
		free(js);
		struct timespec ts = {0, 3 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return strdup("TIMEOUT");
}

/* ---- logon ---- */

static bool after_ns(void *arg)
{
	return pvm_mono_ns() > *(int64_t *)arg;
}

static void test_sim_logon(void **state)
{
	(void)state;
	int s = pvm_test_scale();
	char extra[128];
	snprintf(extra, sizeof(extra), "\"password\": \"s3cret\"");
	struct t *t = calloc(1, sizeof(*t));
	t->dir = pvm_test_tmpdir("sim");
	start_in(t, PVM_SIM_HMC, extra, NULL, NULL);
	assert_string_equal(t->token, "");
	assert_int_equal(logon_as(t, "abc123"), 401); /* the config's password rules */
	assert_int_equal(logon_as(t, "s3cret"), 200);
	assert_true(strlen(t->token) > 32);
	assert_int_equal(status_of(t, "GET", "/rest/api/uom/ManagedSystem", NULL, NULL), 200);
	/* missing, wrong token */
	char saved[128];
	snprintf(saved, sizeof(saved), "%s", t->token);
	t->token[0] = '\0';
	struct resp r = req(t, "GET", "/rest/api/uom/ManagedSystem", NULL, NULL);
	assert_int_equal(r.status, 401);
	assert_non_null(strstr(r.body, "HttpErrorResponse"));
	resp_free(&r);
	snprintf(t->token, sizeof(t->token), "not-a-token");
	assert_int_equal(status_of(t, "GET", "/rest/api/uom/ManagedSystem", NULL, NULL), 401);
	/* file-based logon: the token is in the named file */
	t->token[0] = '\0';
	r = req(t, "PUT", "/rest/api/web/Logon",
	        "<LogonRequest xmlns=\"" NS_WEB "\" schemaVersion=\"V1_0\"><UserID>hscroot</UserID>"
	        "<GenerateX-API-SessionFile>true</GenerateX-API-SessionFile></LogonRequest>",
	        NULL);
	assert_int_equal(r.status, 200);
	const char *file = find(r.body, "X-API-SessionFile");
	assert_true(file[0] == '/');
	char *tok = NULL;
	assert_int_equal(pvm_read_file(file, 4096, &tok, NULL), 0);
	struct stat st;
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 077, 0);
	resp_free(&r);
	snprintf(t->token, sizeof(t->token), "%s", tok);
	free(tok);
	assert_int_equal(status_of(t, "GET", "/rest/api/uom/ManagedSystem", NULL, NULL), 200);
	/* logoff */
	assert_int_equal(status_of(t, "DELETE", "/rest/api/web/Logon", NULL, NULL), 204);
	assert_int_equal(status_of(t, "GET", "/rest/api/uom/ManagedSystem", NULL, NULL), 401);
	assert_int_equal(status_of(t, "DELETE", "/rest/api/web/Logon", NULL, NULL), 401);
	snprintf(t->token, sizeof(t->token), "%s", saved);
	assert_int_equal(status_of(t, "GET", "/rest/api/uom/ManagedSystem", NULL, NULL), 200);
	stop_sim(t);

	/* expiry after idle time */
	pvm_test_rmtree(t->dir);
	t->dir = pvm_test_tmpdir("sim");
	{
		char *path = NULL;
		assert_true(asprintf(&path, "%s/c.json", t->dir) > 0);
		char text[256];
		snprintf(text, sizeof(text), "{\"timing\": {\"session_idle_ms\": %d}}", 300 * s);
		write_text(path, text);
		char *stdir = NULL;
		assert_true(asprintf(&stdir, "%s/state", t->dir) > 0);
		struct pvm_sim_opts o = {.listen_host = "127.0.0.1",
		                         .state_dir = stdir,
		                         .config_path = path,
		                         .quiet = true};
		assert_int_equal(pvm_sim_create(&o, &t->sim), 0);
		snprintf(t->url, sizeof(t->url), "http://127.0.0.1:%d", pvm_sim_port(t->sim));
		free(path);
		free(stdir);
	}
	t->token[0] = '\0';
	assert_int_equal(logon_as(t, "abc123"), 200);
	assert_int_equal(status_of(t, "GET", "/rest/api/uom/ManagedSystem", NULL, NULL), 200);
	int64_t until = pvm_mono_ns() + (int64_t)400 * s * 1000000;
	assert_true(pvm_test_wait(after_ns, &until, 2000));
	r = req(t, "GET", "/rest/api/uom/ManagedSystem", NULL, NULL);
	assert_int_equal(r.status, 401);
	assert_non_null(strstr(r.body, "expired"));
	resp_free(&r);
	finish(t);
}

/* ---- feeds and entries ---- */

static void test_sim_feeds(void **state)
{
	(void)state;
	struct t *t = start(PVM_SIM_HMC, NULL);
	struct resp r = req(t, "GET", "/rest/api/uom/ManagedSystem", NULL, NULL);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.mctype, "HMC");
	assert_int_equal(count(r.body, "<entry>"), 2);
	assert_int_equal(count(r.body, "<etag:etag"), 2);
	resp_free(&r);

	char path[512];
	snprintf(path, sizeof(path), "/rest/api/uom/ManagedSystem/%s", t->ms);
	r = req(t, "GET", path, NULL, NULL);
	assert_int_equal(r.status, 200);
	assert_true(r.etag[0] != '\0');
	assert_string_equal(find(r.body, "etag:etag"), r.etag);
	assert_string_equal(find(r.body, "MemoryRegionSize"), "256");
	char etag[96];
	snprintf(etag, sizeof(etag), "If-None-Match: %s", r.etag);
	resp_free(&r);
	assert_int_equal(status_of(t, "GET", path, NULL, etag), 304);

	/* children under the parent; empty feed is 204 */
	snprintf(path, sizeof(path), "/rest/api/uom/ManagedSystem/%s/LogicalPartition", t->ms);
	r = req(t, "GET", path, NULL, NULL);
	assert_int_equal(r.status, 204);
	assert_int_equal(r.len, 0);
	resp_free(&r);
	snprintf(path, sizeof(path), "/rest/api/uom/ManagedSystem/%s/VirtualSwitch", t->ms);
	r = req(t, "GET", path, NULL, NULL);
	assert_int_equal(r.status, 200);
	assert_int_equal(count(r.body, "<entry>"), 2);
	assert_non_null(strstr(r.body, "<SwitchName kb=\"CUD\" kxe=\"false\">MGMTSWITCH<"));
	resp_free(&r);
	snprintf(path, sizeof(path), "/rest/api/uom/ManagedSystem/%s/VirtualIOServer", t->ms);
	r = req(t, "GET", path, NULL, NULL);
	assert_int_equal(r.status, 200);
	assert_int_equal(count(r.body, "<entry>"), 1);
	char vios[SIM_UUID_LEN];
	snprintf(vios, sizeof(vios), "%s", find(r.body, "AtomID"));
	resp_free(&r);
	r = req(t, "GET", "/rest/api/uom/VirtualIOServer", NULL, NULL);
	assert_int_equal(count(r.body, "<entry>"), 2); /* both systems */
	resp_free(&r);

	/* ?group= */
	snprintf(path, sizeof(path), "/rest/api/uom/VirtualIOServer/%s?group=None", vios);
	r = req(t, "GET", path, NULL, NULL);
	assert_null(strstr(r.body, "<PhysicalVolumes"));
	char e1[64];
	snprintf(e1, sizeof(e1), "%s", r.etag);
	resp_free(&r);
	snprintf(path, sizeof(path), "/rest/api/uom/VirtualIOServer/%s?group=ViosStorage", vios);
	r = req(t, "GET", path, NULL, NULL);
	assert_non_null(strstr(r.body, "<PhysicalVolumes group=\"ViosStorage\""));
	assert_non_null(strstr(r.body, "<RepositoryName kb=\"CUR\" kxe=\"false\">VMLibrary<"));
	assert_string_not_equal(e1, r.etag); /* an ETag belongs to its representation */
	resp_free(&r);

	/* 404 with HttpErrorResponse */
	r = req(t, "GET", "/rest/api/uom/LogicalPartition/0A0B0C0D-0000-4000-8000-000000000000",
	        NULL, NULL);
	assert_int_equal(r.status, 404);
	assert_non_null(strstr(r.body, "<HttpErrorResponse:HttpErrorResponse"));
	assert_string_equal(find(r.body, "HTTPStatus"), "404");
	resp_free(&r);

	/* search, quick */
	const char *u = "1B2C3D4E-0000-4000-8000-0000000000A1";
	assert_int_equal(create_lpar(t, u, "web-1"), 200);
	assert_int_equal(create_lpar(t, "1B2C3D4E-0000-4000-8000-0000000000A2", "web-2"), 200);
	r = req(t, "GET", "/rest/api/uom/LogicalPartition/search/(PartitionName=='web-2')", NULL,
	        NULL);
	assert_int_equal(r.status, 200);
	assert_int_equal(count(r.body, "<entry>"), 1);
	assert_string_equal(find(r.body, "PartitionName"), "web-2");
	resp_free(&r);
	assert_int_equal(status_of(t, "GET",
	                           "/rest/api/uom/LogicalPartition/search/(PartitionName==nosuch)",
	                           NULL, NULL),
	                 204);
	snprintf(path, sizeof(path), "/rest/api/uom/LogicalPartition/%s/quick", u);
	r = req(t, "GET", path, NULL, NULL);
	assert_int_equal(r.status, 200);
	json_t *q = json_loads(r.body, 0, NULL);
	assert_non_null(q);
	assert_string_equal(json_string_value(json_object_get(q, "PartitionState")),
	                    "not activated");
	assert_string_equal(json_string_value(json_object_get(q, "PartitionName")), "web-1");
	assert_true(json_is_integer(json_object_get(q, "PartitionID")));
	assert_string_equal(json_string_value(json_object_get(q, "MigrationState")),
	                    "Not_Migrating");
	json_decref(q);
	resp_free(&r);
	snprintf(path, sizeof(path), "/rest/api/uom/LogicalPartition/%s/quick/PartitionState", u);
	r = req(t, "GET", path, NULL, NULL);
	assert_string_equal(r.body, "\"not activated\"");
	resp_free(&r);
	snprintf(path, sizeof(path), "/rest/api/uom/ManagedSystem/%s/LogicalPartition", t->ms);
	r = req(t, "GET", path, NULL, NULL);
	assert_int_equal(count(r.body, "<entry>"), 2);
	resp_free(&r);
	finish(t);
}

/* ---- partitions ---- */

static void test_sim_partition_crud(void **state)
{
	(void)state;
	struct t *t = start(PVM_SIM_HMC, NULL);
	const char *u = "4AC82E78-0EFF-4BAA-87C9-6B243D0C1359";
	assert_int_equal(create_lpar(t, u, "inst-1"), 200);
	assert_int_equal(create_lpar(t, u, "inst-1b"), 409); /* same UUID */
	assert_int_equal(create_lpar(t, "4AC82E78-0EFF-4BAA-87C9-6B243D0C1350", "inst-1"),
	                 409); /* same name */
	assert_int_equal(create_lpar(t, "4AC82E78-0EFF-4BAA-87C9-6B243D0C1351",
	                             "a-name-that-is-longer-than-31-chars"),
	                 400);
	char path[256];
	snprintf(path, sizeof(path), "/rest/api/uom/LogicalPartition/%s", u);
	struct resp r = req(t, "GET", path, NULL, NULL);
	assert_int_equal(r.status, 200);
	assert_string_equal(find(r.body, "DesiredMemory"), "2048");
	assert_string_equal(find(r.body, "PartitionUUID"), u);
	char im[96];
	snprintf(im, sizeof(im), "If-Match: %s", r.etag);
	resp_free(&r);
	/* update with the current ETag, then with the stale one */
	char *b = lpar_body(u, "inst-1-renamed", 4096);
	r = req(t, "POST", path, b, im);
	assert_int_equal(r.status, 200);
	assert_string_equal(find(r.body, "PartitionName"), "inst-1-renamed");
	assert_string_equal(find(r.body, "DesiredMemory"), "4096");
	char im2[96];
	snprintf(im2, sizeof(im2), "If-Match: %s", r.etag);
	resp_free(&r);
	assert_int_equal(status_of(t, "POST", path, b, im), 412);
	free(b);
	/* delete: stale ETag refused, then done; 404 after */
	assert_int_equal(status_of(t, "DELETE", path, NULL, im), 412);
	assert_int_equal(status_of(t, "DELETE", path, NULL, im2), 204);
	assert_int_equal(status_of(t, "GET", path, NULL, NULL), 404);
	assert_int_equal(status_of(t, "DELETE", path, NULL, NULL), 404);
	finish(t);
}

/* ---- jobs ---- */

#define P(k, v)                                                                                    \
	"<JobParameter schemaVersion=\"V1_0\"><Metadata><Atom/></Metadata><ParameterName>" k       \
	"</ParameterName><ParameterValue>" v "</ParameterValue></JobParameter>"

static void expect_states(const char *seq, const char *want)
{
	if (strcmp(seq, want) != 0)
		fprintf(stderr, "states seen: %s\nexpected:    %s\n", seq, want);
	assert_string_equal(seq, want);
}

static void test_sim_jobs(void **state)
{
	(void)state;
	struct t *t = start(PVM_SIM_HMC, NULL);
	const char *u = "5B000000-0000-4000-8000-000000000001";
	assert_int_equal(create_lpar(t, u, "job-1"), 200);
	long st;
	char seq[512], jseq[256];
	unsigned long long id = start_job(t, u, "PowerOn", P("bootmode", "norm"), &st);
	assert_int_equal(st, 200);
	/* same kind on the same partition while one runs: refused */
	long st2;
	assert_int_equal(start_job(t, u, "PowerOn", NULL, &st2), 0);
	assert_int_equal(st2, 409);
	char *fin = follow_job(t, id, u, seq, sizeof(seq), jseq, sizeof(jseq));
	assert_string_equal(fin, "COMPLETED_OK");
	free(fin);
	assert_string_equal(jseq, "NOT_STARTED>RUNNING>COMPLETED_OK");
	expect_states(seq, "\"not activated\">\"starting\">\"running\"");
	/* delete the finished job */
	char path[128];
	snprintf(path, sizeof(path), "/rest/api/uom/jobs/%llu", id);
	assert_int_equal(status_of(t, "DELETE", path, NULL, NULL), 204);
	assert_int_equal(status_of(t, "GET", path, NULL, NULL), 404);

	/* PowerOn of a running partition: the job fails, as on the HMC */
	id = start_job(t, u, "PowerOn", NULL, &st);
	fin = follow_job(t, id, u, seq, sizeof(seq), jseq, sizeof(jseq));
	assert_string_equal(fin, "COMPLETED_WITH_ERROR");
	free(fin);
	snprintf(path, sizeof(path), "/rest/api/uom/jobs/%llu", id);
	struct resp r = req(t, "GET", path, NULL, NULL);
	assert_non_null(strstr(r.body, "HSCL05DF"));
	assert_non_null(strstr(r.body, "<ParameterName kb=\"ROR\" kxe=\"false\">result<"));
	resp_free(&r);

	/* PowerOff, each operation */
	struct {
		const char *params, *want;
	} offs[] = {
	        {P("operation", "shutdown"), "\"running\">\"shutting down\">\"not activated\""},
	        {NULL, NULL}, /* power on again */
	        {P("operation", "shutdown") P("immediate", "true"),
	         "\"running\">\"shutting down\">\"not activated\""},
	        {NULL, NULL},
	        {P("operation", "osshutdown"), "\"running\">\"shutting down\">\"not activated\""},
	        {NULL, NULL},
	        {P("operation", "shutdown") P("restart", "true"),
	         "\"running\">\"shutting down\">\"not activated\">\"starting\">\"running\""},
	        {P("operation", "dumprestart"),
	         "\"running\">\"shutting down\">\"not activated\">\"starting\">\"running\""},
	        {P("operation", "osshutdown") P("immediate", "true") P("restart", "true"),
	         "\"running\">\"shutting down\">\"not activated\">\"starting\">\"running\""},
	};
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		bool on = offs[i].want == NULL;
		int64_t t0 = pvm_mono_ns();
		id = start_job(t, u, on ? "PowerOn" : "PowerOff", offs[i].params, &st);
		assert_int_equal(st, 200);
		fin = follow_job(t, id, u, seq, sizeof(seq), jseq, sizeof(jseq));
		double secs = (double)(pvm_mono_ns() - t0) / 1e9;
		fprintf(stderr, "job %zu %s: %s in %.2fs\n", i, on ? "PowerOn" : "PowerOff", seq,
		        secs);
		assert_string_equal(fin, "COMPLETED_OK");
		free(fin);
		if (!on)
			expect_states(seq, offs[i].want);
	}
	/* immediate is faster than normal: checked through the plan, not the clock */
	/* PowerOff of a partition that is off: fails */
	id = start_job(t, u, "PowerOff", P("operation", "shutdown"), &st);
	fin = follow_job(t, id, u, seq, sizeof(seq), jseq, sizeof(jseq));
	assert_string_equal(fin, "COMPLETED_OK"); /* it was running after the restart above */
	free(fin);
	id = start_job(t, u, "PowerOff", P("operation", "shutdown"), &st);
	fin = follow_job(t, id, u, seq, sizeof(seq), jseq, sizeof(jseq));
	assert_string_equal(fin, "COMPLETED_WITH_ERROR");
	free(fin);

	/* cancel: the job ends, the partition returns to where it started */
	id = start_job(t, u, "PowerOn", NULL, &st);
	snprintf(path, sizeof(path), "/rest/api/uom/jobs/%llu", id);
	assert_int_equal(status_of(t, "DELETE", path, NULL, NULL), 409); /* still running */
	char cpath[160];
	snprintf(cpath, sizeof(cpath), "%s/cancel", path);
	assert_int_equal(status_of(t, "POST", cpath, NULL, NULL), 200);
	fin = follow_job(t, id, u, seq, sizeof(seq), jseq, sizeof(jseq));
	assert_string_equal(fin, "FAILED_BEFORE_COMPLETION");
	free(fin);
	char *ps = state_of(t, u);
	assert_string_equal(ps, "\"not activated\"");
	free(ps);
	assert_int_equal(status_of(t, "DELETE", path, NULL, NULL), 204);
	/* not enough memory on the system: created, but the activation fails */
	const char *big_u = "5B000000-0000-4000-8000-000000000002";
	char *big = lpar_body(big_u, "too-big", 1048576);
	char cp[160];
	snprintf(cp, sizeof(cp), "/rest/api/uom/ManagedSystem/%s/LogicalPartition", t->ms);
	assert_int_equal(status_of(t, "PUT", cp, big, NULL), 200);
	free(big);
	id = start_job(t, big_u, "PowerOn", NULL, &st);
	fin = follow_job(t, id, big_u, seq, sizeof(seq), jseq, sizeof(jseq));
	assert_string_equal(fin, "COMPLETED_WITH_ERROR");
	free(fin);
	snprintf(path, sizeof(path), "/rest/api/uom/jobs/%llu", id);
	r = req(t, "GET", path, NULL, NULL);
	assert_non_null(strstr(r.body, "not enough memory"));
	resp_free(&r);
	/* unknown operation: no template */
	snprintf(path, sizeof(path), "/rest/api/uom/LogicalPartition/%s/do/Explode", u);
	assert_int_equal(status_of(t, "GET", path, NULL, NULL), 404);
	finish(t);
}

/* ---- events ---- */

struct evq {
	struct t *t;
	char path[256];
	struct resp r;
};

static void *evget(void *arg)
{
	struct evq *q = arg;
	q->r = req(q->t, "GET", q->path, NULL, NULL);
	return NULL;
}

static void test_sim_events(void **state)
{
	(void)state;
	struct t *t = start(PVM_SIM_HMC, NULL);
	const char *ev = "/rest/api/uom/Event?QUEUE_CLIENTKEY_METHOD=USE_APPLICATIONID&"
	                 "QUEUE_APPLICATIONID=test";
	struct resp r = req(t, "GET", ev, NULL, NULL);
	assert_int_equal(r.status, 200);
	assert_int_equal(count(r.body, "<entry>"), 1);
	assert_string_equal(find(r.body, "EventType"), "NEW_CLIENT");
	resp_free(&r);
	/* nothing happened: an empty feed after the wait, without holding a thread */
	r = req(t, "GET", ev, NULL, NULL);
	assert_int_equal(r.status, 200);
	assert_int_equal(count(r.body, "<entry>"), 0);
	assert_true(r.secs >= 0.5 * pvm_test_scale());
	resp_free(&r);
	/* a waiting poll is answered as soon as something changes */
	struct evq q = {.t = t};
	snprintf(q.path, sizeof(q.path), "%s", ev);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, evget, &q), 0);
	const char *u = "6C000000-0000-4000-8000-000000000001";
	assert_int_equal(create_lpar(t, u, "ev-1"), 200);
	pthread_join(th, NULL);
	assert_int_equal(q.r.status, 200);
	assert_string_equal(find(q.r.body, "EventType"), "ADD_URI");
	assert_non_null(strstr(find(q.r.body, "EventData"), u));
	assert_true(q.r.secs < 0.6 * pvm_test_scale());
	resp_free(&q.r);
	/* state changes */
	long st;
	char seq[256], jseq[128];
	unsigned long long id = start_job(t, u, "PowerOn", NULL, &st);
	char *fin = follow_job(t, id, u, seq, sizeof(seq), jseq, sizeof(jseq));
	free(fin);
	r = req(t, "GET", ev, NULL, NULL);
	assert_int_equal(count(r.body, "<EventType kb=\"ROR\" kxe=\"false\">MODIFY_URI<"), 2);
	assert_int_equal(count(r.body, "PartitionState,Other"), 2);
	resp_free(&r);
	/* update, delete */
	char path[256];
	snprintf(path, sizeof(path), "/rest/api/uom/LogicalPartition/%s", u);
	char *b = lpar_body(u, "ev-1b", 2048);
	assert_int_equal(status_of(t, "POST", path, b, NULL), 200);
	free(b);
	id = start_job(t, u, "PowerOff", P("operation", "shutdown") P("immediate", "true"), &st);
	fin = follow_job(t, id, u, seq, sizeof(seq), jseq, sizeof(jseq));
	free(fin);
	assert_int_equal(status_of(t, "DELETE", path, NULL, NULL), 204);
	r = req(t, "GET", ev, NULL, NULL);
	assert_non_null(strstr(r.body, "MODIFY_URI"));
	assert_non_null(strstr(r.body, "DELETE_URI"));
	int last = 0;
	for (const char *p = r.body; (p = strstr(p, "<EventID kb=\"ROR\" kxe=\"false\">"));) {
		p += strlen("<EventID kb=\"ROR\" kxe=\"false\">");
		int id2 = atoi(p);
		assert_true(id2 > last); /* in order */
		last = id2;
	}
	resp_free(&r);
	/* another client starts with NEW_CLIENT */
	r = req(t, "GET", "/rest/api/uom/Event?QUEUE_APPLICATIONID=other", NULL, NULL);
	assert_string_equal(find(r.body, "EventType"), "NEW_CLIENT");
	resp_free(&r);
	finish(t);
}

/* ---- restart ---- */

static bool state_is_shutting_down(void *arg)
{
	struct t *t = arg;
	char *s = state_of(t, "7D000000-0000-4000-8000-000000000001");
	bool ok = strcmp(s, "\"shutting down\"") == 0;
	free(s);
	return ok;
}

static void test_sim_restart(void **state)
{
	(void)state;
	struct t *t = calloc(1, sizeof(*t));
	t->dir = pvm_test_tmpdir("sim");
	/* a long PowerOff, so that the restart happens in its middle */
	start_in(t, PVM_SIM_HMC, NULL, NULL, NULL);
	const char *u = "7D000000-0000-4000-8000-000000000001";
	assert_int_equal(create_lpar(t, u, "keep-me"), 200);
	long st;
	char seq[256], jseq[128];
	unsigned long long id = start_job(t, u, "PowerOn", NULL, &st);
	char *fin = follow_job(t, id, u, seq, sizeof(seq), jseq, sizeof(jseq));
	assert_string_equal(fin, "COMPLETED_OK");
	free(fin);
	stop_sim(t);
	/* restart with slow jobs: same directory, partitions kept */
	{
		char *path = NULL, *stdir = NULL;
		assert_true(asprintf(&path, "%s/slow.json", t->dir) > 0);
		write_text(
		        path,
		        "{\"timing\": {\"job_not_started_ms\": 10, \"job_duration_ms\": 600000}}");
		assert_true(asprintf(&stdir, "%s/state", t->dir) > 0);
		struct pvm_sim_opts o = {.listen_host = "127.0.0.1",
		                         .state_dir = stdir,
		                         .config_path = path,
		                         .quiet = true};
		assert_int_equal(pvm_sim_create(&o, &t->sim), 0);
		snprintf(t->url, sizeof(t->url), "http://127.0.0.1:%d", pvm_sim_port(t->sim));
		t->token[0] = '\0';
		assert_int_equal(logon_as(t, "abc123"), 200);
		char *s = state_of(t, u);
		assert_string_equal(s, "\"running\"");
		free(s);
		id = start_job(t, u, "PowerOff", P("operation", "shutdown"), &st);
		assert_int_equal(st, 200);
		assert_true(pvm_test_wait(state_is_shutting_down, t, 5000));
		stop_sim(t);
		/* and again: the job is forgotten, the state it reached is kept */
		assert_int_equal(pvm_sim_create(&o, &t->sim), 0);
		snprintf(t->url, sizeof(t->url), "http://127.0.0.1:%d", pvm_sim_port(t->sim));
		free(path);
		free(stdir);
	}
	t->token[0] = '\0';
	assert_int_equal(logon_as(t, "abc123"), 200);
	char jp[128];
	snprintf(jp, sizeof(jp), "/rest/api/uom/jobs/%llu", id);
	assert_int_equal(status_of(t, "GET", jp, NULL, NULL), 404);
	char *s = state_of(t, u);
	assert_string_equal(s, "\"shutting down\"");
	free(s);
	char path[128];
	snprintf(path, sizeof(path), "/rest/api/uom/LogicalPartition/%s", u);
	struct resp r = req(t, "GET", path, NULL, NULL);
	assert_string_equal(find(r.body, "PartitionName"), "keep-me");
	resp_free(&r);
	finish(t);
}

/* ---- faults ---- */

struct replay_arg {
	struct t *t;
	const char *path;
	char out[64];
};

static void *replay_run(void *arg)
{
	struct replay_arg *a = arg;
	for (int i = 0; i < 40; i++) {
		long s = status_of(a->t, "GET", a->path, NULL, NULL);
		a->out[i] = s == 200 ? '.' : s == 503 ? 'x' : '?';
	}
	a->out[40] = '\0';
	return NULL;
}

static void replay_once(uint64_t seed, bool concurrent, char a[64], char b[64])
{
	char extra[512];
	snprintf(extra, sizeof(extra),
	         "\"faults\": {\"seed\": %llu, \"rules\": [{\"method\": \"GET\", \"path\": "
	         "\"/rest/api/uom/ManagedSystem*\", \"kind\": \"http_503\", \"rate\": 0.4}]}",
	         (unsigned long long)seed);
	struct t *t = start(PVM_SIM_HMC, extra);
	assert_int_equal(pvm_sim_seed(t->sim), seed);
	char p1[128], p2[128];
	snprintf(p1, sizeof(p1), "/rest/api/uom/ManagedSystem/%s", t->ms);
	snprintf(p2, sizeof(p2), "/rest/api/uom/ManagedSystem/%s/LogicalPartition", t->ms);
	struct replay_arg x = {.t = t, .path = p1}, y = {.t = t, .path = p2};
	if (concurrent) {
		pthread_t th;
		assert_int_equal(pthread_create(&th, NULL, replay_run, &x), 0);
		replay_run(&y);
		pthread_join(th, NULL);
	} else {
		replay_run(&x);
		replay_run(&y);
	}
	memcpy(a, x.out, 41);
	memcpy(b, y.out, 41);
	finish(t);
}

static void test_sim_fault_replay(void **state)
{
	(void)state;
	uint64_t seed = pvm_test_seed("test_sim_fault_replay") & 0x7fffffffffffULL;
	char a1[64], b1[64], a2[64], b2[64], a3[64], b3[64];
	replay_once(seed, false, a1, b1);
	replay_once(seed, true, a2, b2);
	fprintf(stderr, "seed %llu: %s | %s\n", (unsigned long long)seed, a1, b1);
	assert_string_equal(a1, a2); /* same seed => same decisions, whatever the interleaving */
	assert_string_equal(b1, b2);
	assert_non_null(strchr(a1, 'x'));
	assert_non_null(strchr(a1, '.'));
	replay_once(seed + 1, false, a3, b3);
	assert_true(strcmp(a1, a3) != 0 || strcmp(b1, b3) != 0);
}

static void test_sim_session_expiry(void **state)
{
	(void)state;
	struct t *t = start(PVM_SIM_HMC, "\"faults\": {\"session_expiry_requests\": 5}");
	/* start() used one request (the ManagedSystem read) */
	for (int i = 0; i < 4; i++)
		assert_int_equal(status_of(t, "GET", "/rest/api/uom/ManagedSystem", NULL, NULL),
		                 200);
	assert_int_equal(status_of(t, "GET", "/rest/api/uom/ManagedSystem", NULL, NULL), 401);
	assert_int_equal(logon_as(t, "abc123"), 200); /* a new session works again */
	assert_int_equal(status_of(t, "GET", "/rest/api/uom/ManagedSystem", NULL, NULL), 200);
	finish(t);
}

static void test_sim_412_storm(void **state)
{
	(void)state;
	struct t *t =
	        start(PVM_SIM_HMC, "\"faults\": {\"rules\": [{\"method\": \"POST\", \"path\": "
	                           "\"/rest/api/uom/LogicalPartition/*\", \"kind\": \"412\", "
	                           "\"first\": 3}]}");
	const char *u = "8E000000-0000-4000-8000-000000000001";
	assert_int_equal(create_lpar(t, u, "storm"), 200);
	char path[128];
	snprintf(path, sizeof(path), "/rest/api/uom/LogicalPartition/%s", u);
	int n412 = 0;
	long s = 0;
	for (int i = 0; i < 10; i++) {
		struct resp r = req(t, "GET", path, NULL, NULL);
		assert_int_equal(r.status, 200);
		char im[96];
		snprintf(im, sizeof(im), "If-Match: %s", r.etag);
		resp_free(&r);
		char *b = lpar_body(u, "storm", 2048 + 512 * i);
		s = status_of(t, "POST", path, b, im);
		free(b);
		if (s != 412)
			break;
		n412++;
	}
	assert_int_equal(n412, 3);
	assert_int_equal(s, 200);
	finish(t);
}

static void test_sim_faults_endpoint(void **state)
{
	(void)state;
	struct t *t = start(PVM_SIM_HMC, NULL);
	assert_int_equal(
	        status_of(t, "PUT", "/sim/faults", "{\"rules\": [{\"kind\": \"boom\"}]}", NULL),
	        400);
	assert_int_equal(status_of(t, "PUT", "/sim/faults", "not json", NULL), 400);
	char body[512];
	snprintf(
	        body, sizeof(body),
	        "{\"seed\": 7, \"rules\": [{\"path\": \"/rest/api/uom/VirtualIOServer\", \"kind\": "
	        "\"vios_busy\"}, {\"path\": \"/rest/api/uom/ManagedSystem\", \"kind\": \"latency\","
	        " \"latency_ms\": %d}, {\"path\": \"/rest/api/uom/LogicalPartition\", \"kind\": "
	        "\"reset\"}]}",
	        300 * pvm_test_scale());
	assert_int_equal(status_of(t, "PUT", "/sim/faults", body, NULL), 200);
	struct resp r = req(t, "GET", "/sim/faults", NULL, NULL);
	json_t *j = json_loads(r.body, 0, NULL);
	assert_int_equal(json_integer_value(json_object_get(j, "seed")), 7);
	assert_int_equal(json_array_size(json_object_get(j, "rules")), 3);
	json_decref(j);
	resp_free(&r);
	r = req(t, "GET", "/rest/api/uom/VirtualIOServer", NULL, NULL);
	assert_int_equal(r.status, 500);
	assert_true(strstr(r.body, "HSCL3205") || strstr(r.body, "VIOS0014"));
	resp_free(&r);
	r = req(t, "GET", "/rest/api/uom/ManagedSystem", NULL, NULL);
	assert_int_equal(r.status, 200);
	assert_true(r.secs >= 0.3 * pvm_test_scale());
	resp_free(&r);
	r = req(t, "GET", "/rest/api/uom/LogicalPartition", NULL, NULL);
	assert_int_equal(r.curl_rc, CURLE_GOT_NOTHING);
	resp_free(&r);
	/* other paths untouched */
	char path[128];
	snprintf(path, sizeof(path), "/rest/api/uom/ManagedSystem/%s/VirtualSwitch", t->ms);
	assert_int_equal(status_of(t, "GET", path, NULL, NULL), 200);
	assert_int_equal(status_of(t, "PUT", "/sim/faults", "{}", NULL), 200);
	assert_int_equal(status_of(t, "GET", "/rest/api/uom/VirtualIOServer", NULL, NULL), 200);
	/* job failure rates */
	assert_int_equal(status_of(t, "PUT", "/sim/faults",
	                           "{\"job_failure_rates\": {\"PowerOn\": 1.0}}", NULL),
	                 200);
	const char *u = "9F000000-0000-4000-8000-000000000001";
	assert_int_equal(create_lpar(t, u, "fails"), 200);
	long st;
	char seq[128], jseq[128];
	unsigned long long id = start_job(t, u, "PowerOn", NULL, &st);
	char *fin = follow_job(t, id, u, seq, sizeof(seq), jseq, sizeof(jseq));
	assert_string_equal(fin, "COMPLETED_WITH_ERROR");
	free(fin);
	expect_states(seq, "\"not activated\"");
	finish(t);
}

/* ---- audit, state, reset ---- */

static void test_sim_audit(void **state)
{
	(void)state;
	struct t *t = start(PVM_SIM_HMC, NULL);
	const char *u = "AA000000-0000-4000-8000-000000000001";
	assert_int_equal(create_lpar(t, u, "once"), 200);
	assert_int_equal(create_lpar(t, u, "once"), 409); /* a retry that must not create twice */
	struct resp r = req(t, "GET", "/sim/audit", NULL, NULL);
	json_t *j = json_loads(r.body, 0, NULL);
	resp_free(&r);
	assert_non_null(j);
	int created = 0, refused = 0;
	json_t *e;
	size_t i;
	json_array_foreach(json_object_get(j, "entries"), i, e)
	{
		const char *obj = json_string_value(json_object_get(e, "object"));
		assert_non_null(json_object_get(e, "time"));
		if (!obj || strcmp(obj, u) != 0)
			continue;
		assert_string_equal(json_string_value(json_object_get(e, "method")), "PUT");
		if (json_integer_value(json_object_get(e, "status")) == 200)
			created++;
		else
			refused++;
	}
	json_decref(j);
	assert_int_equal(created, 1);
	assert_int_equal(refused, 1);
	/* the file says the same */
	char *path = NULL, *text = NULL;
	assert_true(asprintf(&path, "%s/state/audit.jsonl", t->dir) > 0);
	assert_int_equal(pvm_read_file(path, 1 << 20, &text, NULL), 0);
	int lines = 0, ok = 0;
	for (char *save = NULL, *l = strtok_r(text, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		json_t *x = json_loads(l, 0, NULL);
		assert_non_null(x);
		const char *obj = json_string_value(json_object_get(x, "object"));
		if (obj && strcmp(obj, u) == 0 &&
		    json_integer_value(json_object_get(x, "status")) == 200)
			ok++;
		json_decref(x);
		lines++;
	}
	assert_int_equal(ok, 1);
	assert_true(lines >= 3); /* logon, create, refused create */
	free(text);
	free(path);
	/* /sim/state and /sim/reset */
	r = req(t, "GET", "/sim/state", NULL, NULL);
	assert_non_null(strstr(r.body, u));
	resp_free(&r);
	assert_int_equal(status_of(t, "POST", "/sim/reset", NULL, NULL), 200);
	r = req(t, "GET", "/sim/state", NULL, NULL);
	assert_null(strstr(r.body, u));
	assert_non_null(strstr(r.body, "ManagedSystem"));
	resp_free(&r);
	char lp[128];
	snprintf(lp, sizeof(lp), "/rest/api/uom/LogicalPartition/%s", u);
	assert_int_equal(status_of(t, "GET", lp, NULL, NULL), 404);
	finish(t);
}

static void test_sim_novalink(void **state)
{
	(void)state;
	struct t *t = start(PVM_SIM_NOVALINK, NULL);
	struct resp r = req(t, "GET", "/rest/api/uom/ManagedSystem", NULL, NULL);
	assert_string_equal(r.mctype, "PVM");
	assert_int_equal(count(r.body, "<entry>"), 1);
	assert_string_equal(find(r.body, "IsPowerVMManagementMaster"), "true");
	resp_free(&r);
	r = req(t, "GET", "/rest/api/uom/LogicalPartition", NULL, NULL);
	assert_int_equal(r.status, 200);
	assert_int_equal(count(r.body, "<entry>"), 1);
	assert_string_equal(find(r.body, "IsManagementPartition"), "true");
	assert_string_equal(find(r.body, "PartitionState"), "running");
	char mgmt[SIM_UUID_LEN];
	snprintf(mgmt, sizeof(mgmt), "%s", find(r.body, "PartitionUUID"));
	resp_free(&r);
	char path[128];
	snprintf(path, sizeof(path), "/rest/api/uom/LogicalPartition/%s", mgmt);
	assert_int_equal(status_of(t, "DELETE", path, NULL, NULL), 403);
	finish(t);
}

/* ---- HTTPS ---- */

static int run(const char *cmd)
{
	int rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_sim_https(void **state)
{
	(void)state;
	char *d = pvm_test_tmpdir("simtls");
	char *cmd = NULL;
	assert_true(
	        asprintf(&cmd,
	                 "cd %s && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n"
	                 "basicConstraints=CA:FALSE\\n' > ext.cnf && "
	                 "timeout 60 openssl req -x509 -newkey ec -pkeyopt "
	                 "ec_paramgen_curve:prime256v1 "
	                 "-nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=pvmsim test CA' "
	                 ">/dev/null 2>&1 && "
	                 "timeout 60 openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
	                 "-nodes -keyout srv.key -out srv.csr -subj '/CN=localhost' >/dev/null "
	                 "2>&1 && "
	                 "timeout 60 openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key "
	                 "-CAcreateserial -out srv.pem -days 2 -extfile ext.cnf >/dev/null 2>&1",
	                 d) > 0);
	assert_int_equal(run(cmd), 0);
	free(cmd);
	char *cert = NULL, *key = NULL, *ca = NULL;
	assert_true(asprintf(&cert, "%s/srv.pem", d) > 0);
	assert_true(asprintf(&key, "%s/srv.key", d) > 0);
	assert_true(asprintf(&ca, "%s/ca.pem", d) > 0);
	struct t *t = calloc(1, sizeof(*t));
	t->dir = pvm_test_tmpdir("sim");
	t->cafile = ca;
	start_in(t, PVM_SIM_HMC, NULL, cert, key);
	assert_true(t->token[0] != '\0'); /* logged on over verified TLS */
	struct resp r = req(t, "GET", "/rest/api/uom/ManagedSystem", NULL, NULL);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "https://localhost:"));
	resp_free(&r);
	/* without the CA: refused */
	t->cafile = NULL;
	r = req(t, "GET", "/rest/api/uom/ManagedSystem", NULL, NULL);
	assert_int_equal(r.curl_rc, CURLE_PEER_FAILED_VERIFICATION);
	resp_free(&r);
	/* plain HTTP to the TLS port gets no answer */
	char saved[128];
	snprintf(saved, sizeof(saved), "%s", t->url);
	snprintf(t->url, sizeof(t->url), "http://127.0.0.1:%d", pvm_sim_port(t->sim));
	r = req(t, "GET", "/rest/api/uom/ManagedSystem", NULL, NULL);
	assert_true(r.status != 200);
	resp_free(&r);
	finish(t);
	free(cert);
	free(key);
	free(ca);
	pvm_test_rmtree(d);
}

/* ---- the program, killed for real ---- */

static pid_t spawn(const char *bin, const char *dir, int *outfd)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		char sd[512];
		snprintf(sd, sizeof(sd), "%s/state", dir);
		execl(bin, bin, "--listen", "127.0.0.1:0", "--mode", "novalink", "--state-dir", sd,
		      (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	*outfd = p[0];
	return pid;
}

/* Reads the banner line (bounded in time). */
static void banner(int fd, char *line, size_t n)
{
	size_t len = 0;
	int64_t deadline = pvm_mono_ns() + (int64_t)20000 * pvm_test_scale() * 1000000;
	while (len + 1 < n && pvm_mono_ns() < deadline) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		ssize_t r = read(fd, line + len, 1);
		if (r <= 0)
			break;
		if (line[len] == '\n')
			break;
		len++;
	}
	line[len] = '\0';
}

static void test_sim_process(void **state)
{
	(void)state;
	char *bin = pvm_test_build_path("bin/pvmsim");
	struct t *t = calloc(1, sizeof(*t));
	t->dir = pvm_test_tmpdir("simproc");
	int fd;
	pid_t pid = spawn(bin, t->dir, &fd);
	char line[256];
	banner(fd, line, sizeof(line));
	fprintf(stderr, "banner: %s\n", line);
	assert_non_null(strstr(line, "seed="));
	char *url = strstr(line, "http://");
	assert_non_null(url);
	*strchr(url, ' ') = '\0';
	snprintf(t->url, sizeof(t->url), "%s", url);
	assert_int_equal(logon_as(t, "abc123"), 200);
	struct resp r = req(t, "GET", "/rest/api/uom/ManagedSystem", NULL, NULL);
	snprintf(t->ms, sizeof(t->ms), "%s", find(r.body, "AtomID"));
	resp_free(&r);
	const char *u = "BB000000-0000-4000-8000-000000000001";
	assert_int_equal(create_lpar(t, u, "survivor"), 200);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(fd);
	pid = spawn(bin, t->dir, &fd);
	banner(fd, line, sizeof(line));
	url = strstr(line, "http://");
	assert_non_null(url);
	*strchr(url, ' ') = '\0';
	snprintf(t->url, sizeof(t->url), "%s", url);
	t->token[0] = '\0';
	assert_int_equal(logon_as(t, "abc123"), 200);
	char *s = state_of(t, u);
	assert_string_equal(s, "\"not activated\"");
	free(s);
	kill(pid, SIGTERM);
	int ws = 0;
	waitpid(pid, &ws, 0);
	assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	close(fd);
	pvm_test_rmtree(t->dir);
	free(t);
	free(bin);
}

/* ---- structure against the captured fixtures ---- */

static xmlDoc *parse_text(const char *text)
{
	return xmlReadMemory(text, (int)strlen(text), "x.xml", NULL,
	                     XML_PARSE_NONET | XML_PARSE_NOBLANKS);
}

static xmlDoc *parse_fixture(const char *name)
{
	char rel[128];
	snprintf(rel, sizeof(rel), "tests/fixtures/powervm/%s", name);
	char *path = pvm_test_source_path(rel);
	xmlDoc *d = xmlReadFile(path, NULL, XML_PARSE_NONET | XML_PARSE_NOBLANKS);
	if (!d)
		fprintf(stderr, "cannot parse %s\n", path);
	free(path);
	return d;
}

static xmlNode *first_el(xmlNode *n)
{
	for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE)
			return c;
	return NULL;
}

static xmlNode *child(xmlNode *n, const char *name)
{
	for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
			return c;
	return NULL;
}

static const char *ns_of(xmlNode *n)
{
	return n && n->ns ? (const char *)n->ns->href : "";
}

/* The object inside the first entry of a feed, or of an entry. */
static xmlNode *object_of(xmlDoc *d, xmlNode **entry_out)
{
	xmlNode *root = xmlDocGetRootElement(d);
	xmlNode *entry =
	        strcmp((const char *)root->name, "feed") == 0 ? child(root, "entry") : root;
	if (entry_out)
		*entry_out = entry;
	if (strcmp((const char *)entry->name, "entry") != 0)
		return entry; /* a bare document (LogonResponse) */
	return first_el(child(entry, "content"));
}

static int index_of(xmlNode *parent, const char *name)
{
	int i = 0;
	for (xmlNode *c = parent->children; c; c = c->next) {
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (strcmp((const char *)c->name, name) == 0)
			return i;
		i++;
	}
	return -1;
}

/* Children both have appear in the same relative order; same namespace; attribute noise
 * (kb / kxe / schemaVersion) present where the fixture has it. Recurses `depth` levels. */
static void compare(xmlNode *served, xmlNode *fix, const char *where, int depth)
{
	assert_string_equal((const char *)served->name, (const char *)fix->name);
	assert_string_equal(ns_of(served), ns_of(fix));
	int last = -1;
	const char *last_name = "";
	for (xmlNode *c = fix->children; c; c = c->next) {
		if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, "link") == 0)
			continue;
		int i = index_of(served, (const char *)c->name);
		if (i < 0)
			continue;
		if (i < last) {
			fprintf(stderr,
			        "%s: %s comes before %s in pvmsim's answer, after it in the "
			        "fixture\n",
			        where, (const char *)c->name, last_name);
			fail();
		}
		if (i > last) {
			last = i;
			last_name = (const char *)c->name;
		}
		xmlNode *s = child(served, (const char *)c->name);
		static const char *const attrs[] = {"kb", "kxe", "schemaVersion"};
		for (size_t a = 0; a < 3; a++) {
			if (xmlHasProp(c, (const xmlChar *)attrs[a]) &&
			    !xmlHasProp(s, (const xmlChar *)attrs[a])) {
				fprintf(stderr, "%s/%s: attribute %s missing\n", where,
				        (const char *)c->name, attrs[a]);
				fail();
			}
		}
		if (depth > 0 && first_el(c) && first_el(s)) {
			char w[256];
			snprintf(w, sizeof(w), "%s/%s", where, (const char *)c->name);
			compare(s, c, w, depth - 1);
		}
	}
}

/* The fields a driver reads: each path must exist in the served object. */
static void require(xmlNode *obj, const char *const *paths)
{
	for (; *paths; paths++) {
		char buf[256];
		snprintf(buf, sizeof(buf), "%s", *paths);
		xmlNode *n = obj;
		char *save = NULL;
		for (char *tk = strtok_r(buf, "/", &save); tk && n; tk = strtok_r(NULL, "/", &save))
			n = child(n, tk);
		if (!n)
			fprintf(stderr, "missing field %s\n", *paths);
		assert_non_null(n);
	}
}

static void compare_docs(const char *served_text, const char *fixture, int depth,
                         const char *const *fields)
{
	xmlDoc *s = parse_text(served_text), *f = parse_fixture(fixture);
	assert_non_null(s);
	assert_non_null(f);
	xmlNode *sr = xmlDocGetRootElement(s), *fr = xmlDocGetRootElement(f);
	fprintf(stderr, "structure: pvmsim's %s vs %s\n", (const char *)sr->name, fixture);
	assert_string_equal((const char *)sr->name, (const char *)fr->name);
	assert_string_equal(ns_of(sr), ns_of(fr));
	xmlNode *se, *fe;
	xmlNode *so = object_of(s, &se), *fo = object_of(f, &fe);
	assert_non_null(so);
	assert_non_null(fo);
	if (strcmp((const char *)fe->name, "entry") == 0) {
		/* entry wrapper: same children in the same order, etag where the fixture has it */
		compare(se, fe, fixture, 0);
		xmlNode *c = child(se, "content"), *fc = child(fe, "content");
		xmlChar *st = xmlGetProp(c, (const xmlChar *)"type");
		xmlChar *ft = xmlGetProp(fc, (const xmlChar *)"type");
		assert_non_null(st);
		assert_non_null(ft);
		assert_string_equal((const char *)st, (const char *)ft);
		xmlFree(st);
		xmlFree(ft);
		if (child(fe, "etag"))
			assert_non_null(child(se, "etag"));
	}
	/* the object root: qualified name and namespaces as captured */
	assert_string_equal((const char *)so->name, (const char *)fo->name);
	assert_string_equal(ns_of(so), ns_of(fo));
	if (fo->ns && fo->ns->prefix) {
		assert_non_null(so->ns->prefix);
		assert_string_equal((const char *)so->ns->prefix, (const char *)fo->ns->prefix);
	}
	compare(so, fo, fixture, depth);
	if (fields)
		require(so, fields);
	xmlFreeDoc(s);
	xmlFreeDoc(f);
}

static void test_sim_structure(void **state)
{
	(void)state;
	struct t *t = start(PVM_SIM_NOVALINK, NULL);
	static const char *const ms_fields[] = {
	        "Metadata/Atom/AtomID",
	        "AssociatedSystemCapabilities/ActiveLogicalPartitionMobilityCapable",
	        "AssociatedSystemCapabilities/IBMiCapable",
	        "AssociatedSystemCapabilities/VirtualSwitchCapable",
	        "AssociatedSystemMemoryConfiguration/ConfigurableSystemMemory",
	        "AssociatedSystemMemoryConfiguration/CurrentAvailableSystemMemory",
	        "AssociatedSystemMemoryConfiguration/MemoryRegionSize",
	        "AssociatedSystemProcessorConfiguration/ConfigurableSystemProcessorUnits",
	        "AssociatedSystemProcessorConfiguration/CurrentAvailableSystemProcessorUnits",
	        "AssociatedSystemProcessorConfiguration/"
	        "SupportedPartitionProcessorCompatibilityModes",
	        "MachineTypeModelAndSerialNumber/MachineType",
	        "MachineTypeModelAndSerialNumber/Model",
	        "MachineTypeModelAndSerialNumber/SerialNumber",
	        "SystemMigrationInformation/MaximumActiveMigrations",
	        "SystemMigrationInformation/MaximumInactiveMigrations",
	        "SystemName",
	        "State",
	        NULL};
	struct resp r = req(t, "GET", "/rest/api/uom/ManagedSystem?group=None", NULL, NULL);
	compare_docs(r.body, "sys_with_sriov.xml", 2, ms_fields);
	resp_free(&r);

	const char *u = "CC000000-0000-4000-8000-000000000001";
	assert_int_equal(create_lpar(t, u, "shape"), 200);
	static const char *const lpar_fields[] = {
	        "PartitionName",
	        "PartitionID",
	        "PartitionState",
	        "PartitionType",
	        "PartitionUUID",
	        "PartitionMemoryConfiguration/DesiredMemory",
	        "PartitionMemoryConfiguration/CurrentMemory",
	        "PartitionProcessorConfiguration/HasDedicatedProcessors",
	        "PartitionProcessorConfiguration/SharedProcessorConfiguration/"
	        "DesiredVirtualProcessors",
	        "PartitionProcessorConfiguration/SharedProcessorConfiguration/"
	        "DesiredProcessingUnits",
	        "ResourceMonitoringControlState",
	        "MigrationState",
	        "AssociatedManagedSystem",
	        "IsManagementPartition",
	        NULL};
	char path[256];
	snprintf(path, sizeof(path), "/rest/api/uom/ManagedSystem/%s/LogicalPartition", t->ms);
	r = req(t, "GET", path, NULL, NULL);
	/* the feed holds the management partition first; compare each partition */
	compare_docs(r.body, "fake_lpar_feed.xml", 3, lpar_fields);
	resp_free(&r);
	r = req(t, "GET", "/rest/api/uom/LogicalPartition", NULL, NULL);
	compare_docs(r.body, "lpar_ibmi.xml", 3, lpar_fields);
	resp_free(&r);

	r = req(t, "GET", "/rest/api/uom/VirtualIOServer", NULL, NULL);
	char vios[SIM_UUID_LEN];
	snprintf(vios, sizeof(vios), "%s", find(r.body, "AtomID"));
	resp_free(&r);
	snprintf(path, sizeof(path), "/rest/api/uom/VirtualIOServer/%s", vios);
	r = req(t, "GET", path, NULL, NULL);
	static const char *const vios_fields[] = {
	        "PartitionName",     "PartitionState",  "PartitionID", "PartitionType",
	        "MediaRepositories", "PhysicalVolumes", NULL};
	compare_docs(r.body, "fake_vios.xml", 2, vios_fields);
	resp_free(&r);

	snprintf(path, sizeof(path), "/rest/api/uom/ManagedSystem/%s/VirtualSwitch", t->ms);
	r = req(t, "GET", path, NULL, NULL);
	static const char *const vs_fields[] = {"SwitchID", "SwitchMode", "SwitchName", NULL};
	compare_docs(r.body, "fake_vswitch_feed.xml", 1, vs_fields);
	resp_free(&r);

	snprintf(path, sizeof(path), "/rest/api/uom/LogicalPartition/%s/do/PowerOff", u);
	r = req(t, "GET", path, NULL, NULL);
	static const char *const jr_fields[] = {"RequestedOperation/OperationName",
	                                        "RequestedOperation/GroupName", "JobParameters",
	                                        NULL};
	compare_docs(r.body, "job_request_power_off.xml", 2, jr_fields);
	resp_free(&r);

	long st;
	char seq[128], jseq[128];
	unsigned long long id = start_job(t, u, "PowerOn", NULL, &st);
	char *fin = follow_job(t, id, u, seq, sizeof(seq), jseq, sizeof(jseq));
	free(fin);
	snprintf(path, sizeof(path), "/rest/api/uom/jobs/%llu", id);
	r = req(t, "GET", path, NULL, NULL);
	static const char *const job_fields[] = {"JobID",
	                                         "Status",
	                                         "TimeStarted",
	                                         "TimeCompleted",
	                                         "Results/JobParameter/ParameterName",
	                                         "Results/JobParameter/ParameterValue",
	                                         NULL};
	compare_docs(r.body, "job_response_completed_ok.xml", 1, job_fields);
	resp_free(&r);
	id = start_job(t, u, "PowerOn", NULL, &st); /* fails: running already */
	fin = follow_job(t, id, u, seq, sizeof(seq), jseq, sizeof(jseq));
	free(fin);
	snprintf(path, sizeof(path), "/rest/api/uom/jobs/%llu", id);
	r = req(t, "GET", path, NULL, NULL);
	compare_docs(r.body, "job_response_completed_failed.xml", 1, job_fields);
	resp_free(&r);
	id = start_job(t, u, "PowerOff", P("operation", "shutdown"), &st);
	snprintf(path, sizeof(path), "/rest/api/uom/jobs/%llu/cancel", id);
	assert_int_equal(status_of(t, "POST", path, NULL, NULL), 200);
	fin = follow_job(t, id, u, seq, sizeof(seq), jseq, sizeof(jseq));
	assert_string_equal(fin, "FAILED_BEFORE_COMPLETION");
	free(fin);
	snprintf(path, sizeof(path), "/rest/api/uom/jobs/%llu", id);
	r = req(t, "GET", path, NULL, NULL);
	static const char *const exc_fields[] = {"ResponseException/Message", "Status", NULL};
	compare_docs(r.body, "job_response_exception.xml", 1, exc_fields);
	resp_free(&r);

	r = req(t, "GET", "/rest/api/uom/LogicalPartition/DD000000-0000-4000-8000-000000000001",
	        NULL, NULL);
	static const char *const err_fields[] = {"HTTPStatus", "RequestURI", "ReasonCode",
	                                         "Message", NULL};
	compare_docs(r.body, "fake_httperror.xml", 0, err_fields);
	resp_free(&r);

	r = req(t, "GET", "/rest/api/uom/Event?QUEUE_APPLICATIONID=shape", NULL, NULL);
	static const char *const ev_fields[] = {"EventType", "EventID", "EventData", "EventDetail",
	                                        NULL};
	compare_docs(r.body, "event.xml", 0, ev_fields);
	resp_free(&r);

	char body[512];
	snprintf(body, sizeof(body), LOGON_BODY, "abc123");
	char saved[128];
	snprintf(saved, sizeof(saved), "%s", t->token);
	t->token[0] = '\0';
	r = req(t, "PUT", "/rest/api/web/Logon", body, NULL);
	static const char *const logon_fields[] = {"X-API-Session", NULL};
	compare_docs(r.body, "logon.xml", 0, logon_fields);
	resp_free(&r);
	r = req(t, "PUT", "/rest/api/web/Logon",
	        "<LogonRequest xmlns=\"" NS_WEB "\" schemaVersion=\"V1_0\"><UserID>hscroot</UserID>"
	        "<GenerateX-API-SessionFile>true</GenerateX-API-SessionFile></LogonRequest>",
	        NULL);
	static const char *const logonf_fields[] = {"X-API-SessionFile", NULL};
	compare_docs(r.body, "logon_file.xml", 0, logonf_fields);
	resp_free(&r);
	snprintf(t->token, sizeof(t->token), "%s", saved);
	finish(t);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_ALL);
	xmlInitParser();
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_sim_logon),
	        cmocka_unit_test(test_sim_feeds),
	        cmocka_unit_test(test_sim_partition_crud),
	        cmocka_unit_test(test_sim_jobs),
	        cmocka_unit_test(test_sim_events),
	        cmocka_unit_test(test_sim_restart),
	        cmocka_unit_test(test_sim_fault_replay),
	        cmocka_unit_test(test_sim_session_expiry),
	        cmocka_unit_test(test_sim_412_storm),
	        cmocka_unit_test(test_sim_faults_endpoint),
	        cmocka_unit_test(test_sim_audit),
	        cmocka_unit_test(test_sim_novalink),
	        cmocka_unit_test(test_sim_https),
	        cmocka_unit_test(test_sim_process),
	        cmocka_unit_test(test_sim_structure),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	xmlCleanupParser();
	curl_global_cleanup();
	return rc;
}
