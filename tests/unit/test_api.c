/* test_api.c: the local API (src/api/) against its contract, include/pvm/api.h and
 * docs/api.md.
 *
 * Every case starts the API on a socket in a fresh temporary directory, over a real
 * journal and the real step engine, created with no workers and paused so that nothing
 * runs: operations stay where the test puts them (with the journal's own calls). The client
 * is a raw HTTP/1.1 client over AF_UNIX written here, so that requests can trickle in byte
 * by byte. Waits are deadlines on conditions scaled by pvm_test_scale().
 */
#include "testutil.h"

#include "ops.h"
#include "pvm/api.h"
#include "pvm/engine.h"
#include "pvm/error.h"
#include "pvm/eventlog.h"
#include "pvm/log.h"
#include "pvm/metrics.h"
#include "pvm/queue.h"
#include "pvm/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define UUID1        "11111111-2222-3333-4444-555555555555"
#define UUID2        "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
#define MAX_BODY     (64 * 1024)
#define CONN_TIMEOUT 2 /* seconds: the trickle case waits for the cut */
#define EVENTS_RING  8
#define API_THREADS  4
#define STR_(x)      #x
#define STR(x)       STR_(x)

struct fixture {
	char *root;
	char sock[256];
	struct pvm_queue *q;
	struct pvm_engine *e;
	struct pvm_metrics *m;
	struct pvm_eventlog *ev;
	struct pvm_api *api;
	atomic_bool ready;
	atomic_bool have_host;
	atomic_int reconciled;  /* calls of the reconciled callback */
	atomic_int nova_listed; /* instances in the last view it got */
};

/* ---- callbacks ---- */

static bool cb_ready(void *arg)
{
	struct fixture *f = arg;
	return atomic_load(&f->ready);
}

static json_t *cb_host(void *arg)
{
	struct fixture *f = arg;
	if (!atomic_load(&f->have_host))
		return NULL;
	return json_pack("{s:s, s:i}", "name", "sys1", "vcpus", 64);
}

static json_t *cb_instances(void *arg, const char *uuid)
{
	(void)arg;
	if (!uuid)
		return json_pack("{s:[{s:s, s:s}]}", "instances", "uuid", UUID1, "state",
		                 "running");
	if (strcmp(uuid, UUID1) == 0)
		return json_pack("{s:s, s:s}", "uuid", UUID1, "state", "running");
	return NULL;
}

static json_t *cb_scrub(void *arg)
{
	struct fixture *f = arg;
	return json_pack("{s:s, s:i}", "mode", "dry-run", "seen", atomic_load(&f->reconciled));
}

static void cb_reconciled(void *arg, const json_t *view)
{
	struct fixture *f = arg;
	atomic_store(&f->nova_listed, (int)json_array_size(json_object_get(view, "instances")));
	atomic_fetch_add(&f->reconciled, 1);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->root = pvm_test_tmpdir("api");
	/* The uid check case connects as nobody: it must reach the socket. */
	chmod(f->root, 0755);
	char dir[300], key[300];
	snprintf(dir, sizeof(dir), "%s/state", f->root);
	snprintf(key, sizeof(key), "%s/secret.key", f->root);
	snprintf(f->sock, sizeof(f->sock), "%s/api.sock", f->root);
	struct pvm_queue_opts qo = {.dir = dir, .secret_key_file = key, .create_key = true};
	assert_int_equal(pvm_queue_open(&qo, &f->q), 0);
	assert_int_equal(pvm_metrics_create(&f->m), 0);
	assert_int_equal(pvm_eventlog_create(EVENTS_RING, &f->ev), 0);
	struct pvm_engine_opts eo = {.workers = 0,
	                             .paused = true,
	                             .enable_test_ops = true,
	                             .metrics = f->m,
	                             .ms_uuid = "00000000-0000-0000-0000-000000000001"};
	assert_int_equal(pvm_engine_create(&eo, f->q, NULL, &f->e), 0);
	assert_int_equal(pvm_ops_register_all(f->e), 0);
	struct pvm_api_opts ao = {.socket_path = f->sock,
	                          .max_body_bytes = MAX_BODY,
	                          .max_wait_s = 30,
	                          .threads = API_THREADS,
	                          .connection_timeout_s = CONN_TIMEOUT,
	                          .queue = f->q,
	                          .engine = f->e,
	                          .metrics = f->m,
	                          .events = f->ev,
	                          .state_dir = f->root,
	                          .config_drive_max_bytes = 4096,
	                          .arg = f,
	                          .ready = cb_ready,
	                          .host = cb_host,
	                          .instances = cb_instances,
	                          .scrub = cb_scrub,
	                          .reconciled = cb_reconciled};
	assert_int_equal(pvm_api_start(&ao, &f->api), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	pvm_api_stop(f->api);
	struct stat st;
	assert_int_not_equal(lstat(f->sock, &st), 0); /* the socket file is gone */
	pvm_engine_destroy(f->e);
	pvm_queue_close(f->q);
	pvm_eventlog_destroy(f->ev);
	pvm_metrics_destroy(f->m);
	pvm_test_rmtree(f->root);
	free(f);
	return 0;
}

/* ---- a raw HTTP client ---- */

struct resp {
	int status;
	char head[4096];
	char *body;
	size_t len;
	json_t *json;
};

static void resp_fini(struct resp *r)
{
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

static int64_t scaled_ms(int ms)
{
	return (int64_t)ms * pvm_test_scale();
}

static int conn_open(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

static bool send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* Reads up to n bytes before deadline (monotonic ns). Returns bytes, 0 at EOF, -1 on
 * timeout or error. */
static ssize_t read_some(int fd, char *p, size_t n, int64_t deadline)
{
	for (int i = 0; i < 100000; i++) {
		int64_t left = (deadline - pvm_mono_ns()) / 1000000;
		if (left <= 0)
			return -1;
		struct pollfd pfd = {fd, POLLIN, 0};
		int pr = poll(&pfd, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			return -1;
		ssize_t r = recv(fd, p, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		return r < 0 ? -1 : r;
	}
	return -1;
}

static const char *header(const struct resp *r, const char *name)
{
	static _Thread_local char val[256];
	size_t nl = strlen(name);
	for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
		const char *line = p + 2;
		if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
			const char *v = line + nl + 1;
			while (*v == ' ')
				v++;
			const char *e = strstr(v, "\r\n");
			size_t l = e ? (size_t)(e - v) : strlen(v);
			snprintf(val, sizeof(val), "%.*s", (int)(l < 255 ? l : 255), v);
			return val;
		}
	}
	return NULL;
}

/* Reads one response (status line, headers, Content-Length body). Returns 0, -1 on timeout,
 * -2 when the connection closed first. */
static int read_resp(int fd, struct resp *r, int timeout_ms, bool head_only)
{
	memset(r, 0, sizeof(*r));
	int64_t deadline = pvm_mono_ns() + scaled_ms(timeout_ms) * 1000000;
	char buf[65536];
	size_t have = 0;
	char *end = NULL;
	while (!end) {
		if (have >= sizeof(buf) - 1)
			return -1;
		ssize_t n = read_some(fd, buf + have, 1, deadline); /* byte-wise: no overread */
		if (n < 0)
			return -1;
		if (n == 0)
			return -2;
		have += (size_t)n;
		buf[have] = 0;
		end = strstr(buf, "\r\n\r\n");
	}
	size_t hl = (size_t)(end - buf) + 2;
	snprintf(r->head, sizeof(r->head), "%.*s", (int)hl, buf);
	if (sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1)
		return -1;
	const char *cl = header(r, "Content-Length");
	size_t want = cl && !head_only ? (size_t)strtoull(cl, NULL, 10) : 0;
	r->body = calloc(1, want + 1);
	assert_non_null(r->body);
	while (r->len < want) {
		ssize_t n = read_some(fd, r->body + r->len, want - r->len, deadline);
		if (n <= 0)
			return -1;
		r->len += (size_t)n;
	}
	const char *ct = header(r, "Content-Type");
	if (ct && strncmp(ct, "application/json", 16) == 0 && r->len)
		r->json = json_loadb(r->body, r->len, 0, NULL);
	return 0;
}

static char *format_req(const char *method, const char *path, const char *ctype, const char *body)
{
	char *req = NULL;
	size_t bl = body ? strlen(body) : 0;
	int n;
	if (body)
		n = asprintf(&req,
		             "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: %s\r\n"
		             "Content-Length: %zu\r\n\r\n%s",
		             method, path, ctype ? ctype : "application/json", bl, body);
	else
		n = asprintf(&req, "%s %s HTTP/1.1\r\nHost: localhost\r\n\r\n", method, path);
	assert_true(n > 0);
	return req;
}

/* One request on a fresh connection. */
static void http(struct fixture *f, const char *method, const char *path, const char *ctype,
                 const char *body, struct resp *out)
{
	int fd = conn_open(f->sock);
	assert_true(fd >= 0);
	char *req = format_req(method, path, ctype, body);
	assert_true(send_all(fd, req, strlen(req)));
	free(req);
	int rc = read_resp(fd, out, 10000, strcmp(method, "HEAD") == 0);
	if (rc)
		print_error("%s %s: no answer (%d)\n", method, path, rc);
	assert_int_equal(rc, 0);
	close(fd);
}

static void GET(struct fixture *f, const char *path, struct resp *out)
{
	http(f, "GET", path, NULL, NULL, out);
}

static void POST(struct fixture *f, const char *path, const char *body, struct resp *out)
{
	http(f, "POST", path, NULL, body, out);
}

/* Asserts an error answer: status, code and (when not NULL) field. */
static void assert_error(const struct resp *r, int status, const char *code, const char *field)
{
	if (r->status != status)
		print_error("status %d, want %d: %.*s\n", r->status, status, (int)r->len, r->body);
	assert_int_equal(r->status, status);
	json_t *err = json_object_get(r->json, "error");
	assert_non_null(err);
	assert_string_equal(json_string_value(json_object_get(err, "code")), code);
	assert_non_null(json_string_value(json_object_get(err, "message")));
	if (field) {
		const char *got = json_string_value(json_object_get(err, "field"));
		if (!got || strcmp(got, field) != 0)
			print_error("field %s, want %s: %.*s\n", got ? got : "(none)", field,
			            (int)r->len, r->body);
		assert_non_null(got);
		assert_string_equal(got, field);
	}
}

static uint64_t submit_test_op(struct fixture *f, const char *uuid, const char *key)
{
	char body[512];
	snprintf(body, sizeof(body),
	         "{\"type\":\"test_steps\",\"instance_uuid\":\"%s\",%s%s%s"
	         "\"params\":{\"vcpus\":2}}",
	         uuid, key ? "\"idempotency_key\":\"" : "", key ? key : "", key ? "\"," : "");
	struct resp r;
	POST(f, "/v1/operations", body, &r);
	assert_int_equal(r.status, key ? r.status : 202);
	json_t *id = json_object_get(r.json, "id");
	assert_true(json_is_integer(id));
	uint64_t v = (uint64_t)json_integer_value(id);
	resp_fini(&r);
	return v;
}

/* Moves a running operation to failed, through reverting as the table wants. */
static void fail_running(struct fixture *f, uint64_t id)
{
	struct pvm_op_update u;
	pvm_op_update_init(&u, id);
	u.new_state = PVM_OP_REVERTING;
	u.direction = PVM_DIR_REVERT;
	assert_int_equal(pvm_queue_update(f->q, &u), 0);
	pvm_op_update_init(&u, id);
	u.new_state = PVM_OP_FAILED;
	u.error = "failed on purpose";
	u.error_code = "TEST";
	assert_int_equal(pvm_queue_update(f->q, &u), 0);
}

/* Moves operation id to failed through the journal (claim, then fail). */
static void fail_op(struct fixture *f, uint64_t id)
{
	struct pvm_op *op = NULL;
	assert_int_equal(pvm_queue_claim(f->q, pvm_now_ms() + 1000, &op, NULL), 0);
	assert_int_equal(op->id, id);
	pvm_op_free(op);
	fail_running(f, id);
}

/* ---- cases ---- */

static void test_api_socket_mode(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	assert_int_equal(lstat(f->sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0660);
	/* A path that is not a socket is refused; a stale socket is replaced. */
	char other[300];
	snprintf(other, sizeof(other), "%s/file", f->root);
	FILE *fp = fopen(other, "w");
	assert_non_null(fp);
	fclose(fp);
	struct pvm_api_opts ao = {.socket_path = other, .queue = f->q, .engine = f->e};
	struct pvm_api *a2 = NULL;
	assert_int_equal(pvm_api_start(&ao, &a2), PVM_EEXIST);
	assert_int_equal(lstat(other, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	char stale[300];
	snprintf(stale, sizeof(stale), "%s/stale.sock", f->root);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	assert_true(strlen(stale) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, stale, strlen(stale) + 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	ao.socket_path = stale;
	assert_int_equal(pvm_api_start(&ao, &a2), 0);
	int c = conn_open(stale);
	assert_true(c >= 0);
	close(c);
	pvm_api_stop(a2);
	assert_int_not_equal(lstat(stale, &st), 0);
}

static void test_api_submit_get_list(void **state)
{
	struct fixture *f = *state;
	struct resp r;
	POST(f, "/v1/operations",
	     "{\"type\":\"test_steps\",\"instance_uuid\":\"" UUID1 "\",\"request_id\":\"req-1\","
	     "\"params\":{\"vcpus\":2,\"memory_mb\":256},\"deadline_s\":600}",
	     &r);
	assert_int_equal(r.status, 202);
	assert_true(json_is_integer(json_object_get(r.json, "id")));
	assert_string_equal(json_string_value(json_object_get(r.json, "state")), "queued");
	uint64_t id = (uint64_t)json_integer_value(json_object_get(r.json, "id"));
	resp_fini(&r);

	char path[128];
	snprintf(path, sizeof(path), "/v1/operations/%llu", (unsigned long long)id);
	GET(f, path, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(json_string_value(json_object_get(r.json, "type")), "test_steps");
	assert_string_equal(json_string_value(json_object_get(r.json, "state")), "queued");
	resp_fini(&r);
	struct pvm_op *op = NULL;
	assert_int_equal(pvm_queue_get(f->q, id, &op), 0);
	assert_string_equal(op->instance_uuid, UUID1);
	assert_string_equal(op->request_id, "req-1");
	assert_true(op->deadline_ms > pvm_now_ms() + 500 * 1000);
	assert_true(op->deadline_ms < pvm_now_ms() + 700 * 1000);
	assert_int_equal(json_integer_value(json_object_get(op->params, "vcpus")), 2);
	pvm_op_free(op);

	/* HEAD answers the headers only. */
	http(f, "HEAD", path, NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_fini(&r);

	uint64_t id2 = submit_test_op(f, UUID2, NULL);
	uint64_t id3 = submit_test_op(f, UUID2, NULL);
	GET(f, "/v1/operations", &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_array_size(json_object_get(r.json, "operations")), 3);
	assert_true(json_is_null(json_object_get(r.json, "next_after")));
	resp_fini(&r);

	GET(f, "/v1/operations?instance=" UUID2 "&state=queued&type=test_steps&limit=1", &r);
	assert_int_equal(r.status, 200);
	json_t *ops = json_object_get(r.json, "operations");
	assert_int_equal(json_array_size(ops), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(ops, 0), "id")), id2);
	assert_int_equal(json_integer_value(json_object_get(r.json, "next_after")), id2);
	resp_fini(&r);
	snprintf(path, sizeof(path), "/v1/operations?instance=%s&limit=1&after=%llu", UUID2,
	         (unsigned long long)id2);
	GET(f, path, &r);
	ops = json_object_get(r.json, "operations");
	assert_int_equal(json_array_size(ops), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(ops, 0), "id")), id3);
	assert_true(json_is_null(json_object_get(r.json, "next_after")));
	resp_fini(&r);
	GET(f, "/v1/operations?state=failed", &r);
	assert_int_equal(json_array_size(json_object_get(r.json, "operations")), 0);
	resp_fini(&r);

	/* Each filter is validated. */
	static const struct {
		const char *q, *field;
	} badq[] = {
	        {"state=bogus", "state"}, {"instance=xyz", "instance"},
	        {"limit=0", "limit"},     {"limit=5000", "limit"},
	        {"limit=abc", "limit"},   {"after=-1", "after"},
	        {"colour=red", "colour"}, {"type=", "type"},
	};
	for (size_t i = 0; i < sizeof(badq) / sizeof(badq[0]); i++) {
		snprintf(path, sizeof(path), "/v1/operations?%s", badq[i].q);
		GET(f, path, &r);
		assert_error(&r, 400, "invalid", badq[i].field);
		resp_fini(&r);
	}
	GET(f, "/v1/operations/999999", &r);
	assert_error(&r, 404, "not_found", NULL);
	resp_fini(&r);
	GET(f, "/v1/operations/abc", &r);
	assert_error(&r, 404, "not_found", NULL);
	resp_fini(&r);
}

/* Every docs/examples/<type>.json is accepted as it is, only its UUIDs replaced, and
 * journaled with the type and params it shows. */
static void test_api_example_bodies(void **state)
{
	struct fixture *f = *state;
	char *dirpath = pvm_test_source_path("docs/examples");
	DIR *dir = opendir(dirpath);
	assert_non_null(dir);
	struct dirent *de;
	int seen = 0;
	while ((de = readdir(dir))) {
		size_t len = strlen(de->d_name);
		if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0)
			continue;
		char path[1024];
		snprintf(path, sizeof(path), "%s/%s", dirpath, de->d_name);
		char *text = NULL;
		assert_int_equal(pvm_read_file(path, 1 << 20, &text, NULL), 0);
		for (char *p = text; strlen(p) >= PVM_UUID_LEN; p++) {
			char c = p[PVM_UUID_LEN];
			p[PVM_UUID_LEN] = 0;
			bool is = pvm_is_uuid(p);
			p[PVM_UUID_LEN] = c;
			if (is)
				memcpy(p, UUID2, PVM_UUID_LEN);
		}
		/* as submitted: params may name the instance too (params.instance.uuid) */
		json_t *orig = json_loads(text, 0, NULL);
		assert_non_null(orig);
		struct resp r;
		POST(f, "/v1/operations", text, &r);
		free(text);
		if (r.status != 202)
			fail_msg("%s: status %d: %s", de->d_name, r.status, r.body);
		uint64_t id = (uint64_t)json_integer_value(json_object_get(r.json, "id"));
		resp_fini(&r);
		struct pvm_op *op = NULL;
		assert_int_equal(pvm_queue_get(f->q, id, &op), 0);
		assert_string_equal(op->instance_uuid, UUID2);
		/* the file is named after its type, and its params are journaled as they are */
		assert_string_equal(op->type, json_string_value(json_object_get(orig, "type")));
		assert_int_equal(strncmp(de->d_name, op->type, strlen(op->type)), 0);
		assert_true(json_equal(op->params, json_object_get(orig, "params")));
		pvm_op_free(op);
		json_decref(orig);
		seen++;
	}
	closedir(dir);
	free(dirpath);
	assert_true(seen >= 2);
}

/* A raw PUT with extra header lines (each ending in \r\n). */
static void put_raw(struct fixture *f, const char *path, const char *hdrs, const char *body,
                    struct resp *out)
{
	int fd = conn_open(f->sock);
	assert_true(fd >= 0);
	char *req = NULL;
	assert_true(asprintf(&req,
	                     "PUT %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
	                     "application/octet-stream\r\n%sContent-Length: %zu\r\n\r\n%s",
	                     path, hdrs, strlen(body), body) > 0);
	assert_true(send_all(fd, req, strlen(req)));
	free(req);
	assert_int_equal(read_resp(fd, out, 10000, false), 0);
	close(fd);
}

#define IMG_BYTES  "powervmd image bytes"
#define IMG_SHA256 "6d8fddd6c41412b68370609119bccd76fadd46c951c7f47dc04ff0985362eeb6"
#define IMG_MD5    "99512B76118017D77114F08C29D15DDE" /* upper case: compared without case */

/* The image cache (localdisk: no operation) and config drives: digests checked at the
 * end, the field named in every 400, the bytes in the spool file, re-PUT, delete. */
static void test_api_images(void **state)
{
	struct fixture *f = *state;
	struct resp r;
	put_raw(f, "/v1/images/img-1", "os_hash_algo: md5\r\nos_hash_value: " IMG_MD5 "\r\n",
	        IMG_BYTES, &r);
	assert_int_equal(r.status, 201);
	assert_string_equal(json_string_value(json_object_get(r.json, "sha256")), IMG_SHA256);
	assert_string_equal(json_string_value(json_object_get(r.json, "state")), "ready");
	assert_int_equal(json_integer_value(json_object_get(r.json, "size")), strlen(IMG_BYTES));
	resp_fini(&r);
	char path[600], *text = NULL;
	snprintf(path, sizeof(path), "%s/images/img-1.raw", f->root);
	assert_int_equal(pvm_read_file(path, 1 << 20, &text, NULL), 0);
	assert_string_equal(text, IMG_BYTES);
	free(text);

	put_raw(f, "/v1/images/img-1", "os_hash_algo: md5\r\nos_hash_value: " IMG_MD5 "\r\n",
	        IMG_BYTES, &r);
	assert_int_equal(r.status, 200); /* cached already */
	assert_true(json_is_true(json_object_get(r.json, "existing")));
	resp_fini(&r);
	put_raw(f, "/v1/images/img-1", "", "other bytes", &r);
	assert_error(&r, 409, "conflict", NULL);
	resp_fini(&r);

	static const struct {
		const char *path, *hdrs, *field;
	} bad[] = {
	        {"/v1/images/img-2",
	         "os_hash_algo: md5\r\nos_hash_value: 6eff3450105497cc2ce22ea267f564bb\r\n",
	         "os_hash_value"},
	        {"/v1/images/img-2", "os_hash_algo: sha1\r\nos_hash_value: 00\r\n", "os_hash_algo"},
	        {"/v1/images/img-2", "os_hash_value: " IMG_MD5 "\r\n", "os_hash_algo"},
	        {"/v1/images/img-2", "os_hash_algo: sha256\r\n", "os_hash_value"},
	        {"/v1/images/img-2", "os_hash_algo: sha256\r\nos_hash_value: " IMG_MD5 "\r\n",
	         "os_hash_value"},
	        {"/v1/images/img%202", "", "image_id"},
	        {"/v1/images/img-2?colour=red", "", "colour"},
	        {"/v1/images/img-2?wait=-1", "", "wait"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put_raw(f, bad[i].path, bad[i].hdrs, "other bytes", &r);
		if (r.status != 400 || !strstr(r.body, bad[i].field))
			print_error("case %zu: %.*s\n", i, (int)r.len, r.body);
		assert_int_equal(r.status, 400);
		assert_string_equal(json_string_value(json_object_get(
		                            json_object_get(r.json, "error"), "field")),
		                    bad[i].field);
		resp_fini(&r);
	}
	GET(f, "/v1/images/img-2", &r);
	assert_error(&r, 404, "not_found", NULL);
	resp_fini(&r);
	/* nothing of the refused uploads is left */
	snprintf(path, sizeof(path), "%s/images", f->root);
	DIR *d = opendir(path);
	assert_non_null(d);
	struct dirent *de;
	int files = 0;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.') {
			assert_true(strncmp(de->d_name, "img-1.", 6) == 0);
			files++;
		}
	closedir(d);
	assert_int_equal(files, 2); /* img-1.raw, img-1.json */

	GET(f, "/v1/images", &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_array_size(json_object_get(r.json, "images")), 1);
	resp_fini(&r);
	http(f, "DELETE", "/v1/images/img-1", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_fini(&r);
	http(f, "DELETE", "/v1/images/img-1", NULL, NULL, &r);
	assert_error(&r, 404, "not_found", NULL);
	resp_fini(&r);

	/* config drives: 64 KiB over the fixture's 4 KiB limit is refused before the body */
	put_raw(f, "/v1/config-drives/" UUID1, "", "ISO bytes", &r);
	assert_int_equal(r.status, 201);
	resp_fini(&r);
	GET(f, "/v1/config-drives/" UUID1, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_integer_value(json_object_get(r.json, "size")), 9);
	resp_fini(&r);
	char *big = malloc(8192);
	assert_non_null(big);
	memset(big, 'i', 8191);
	big[8191] = 0;
	put_raw(f, "/v1/config-drives/" UUID2, "", big, &r);
	free(big);
	assert_error(&r, 413, "too_large", NULL);
	resp_fini(&r);
	http(f, "DELETE", "/v1/config-drives/" UUID1, NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_fini(&r);
	GET(f, "/v1/config-drives/" UUID1, &r);
	assert_error(&r, 404, "not_found", NULL);
	resp_fini(&r);

	/* the internal type is not for callers */
	POST(f, "/v1/operations", "{\"type\":\"cache_image\",\"params\":{}}", &r);
	assert_error(&r, 400, "invalid", "type");
	resp_fini(&r);
}

static void test_api_idempotency(void **state)
{
	struct fixture *f = *state;
	uint64_t id = submit_test_op(f, UUID1, "key-1");
	struct resp r;
	const char *same = "{\"type\":\"test_steps\",\"instance_uuid\":\"" UUID1
	                   "\",\"idempotency_key\":\"key-1\",\"params\":{\"vcpus\":2}}";
	POST(f, "/v1/operations", same, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_integer_value(json_object_get(r.json, "id")), id);
	assert_true(json_is_true(json_object_get(r.json, "existing")));
	assert_string_equal(json_string_value(json_object_get(r.json, "state")), "queued");
	resp_fini(&r);
	POST(f, "/v1/operations",
	     "{\"type\":\"test_steps\",\"instance_uuid\":\"" UUID1
	     "\",\"idempotency_key\":\"key-1\",\"params\":{\"vcpus\":3}}",
	     &r);
	assert_error(&r, 409, "conflict", NULL);
	assert_int_equal(json_integer_value(
	                         json_object_get(json_object_get(r.json, "error"), "existing_id")),
	                 id);
	resp_fini(&r);
}

/* Concurrent submissions share journal batches: distinct ones all land, one key is one
 * operation however many ask for it at once. */
static void test_api_concurrent_submissions(void **state)
{
	struct fixture *f = *state;
	enum { N = 24 };
	int fds[N];
	for (int i = 0; i < N; i++) {
		char body[512];
		if (i % 2)
			snprintf(body, sizeof(body),
			         "{\"type\":\"test_steps\",\"instance_uuid\":\"" UUID1
			         "\",\"idempotency_key\":\"same\",\"params\":{}}");
		else
			snprintf(body, sizeof(body),
			         "{\"type\":\"test_steps\",\"instance_uuid\":\"" UUID2
			         "\",\"idempotency_key\":\"k%d\",\"params\":{}}",
			         i);
		fds[i] = conn_open(f->sock);
		assert_true(fds[i] >= 0);
		char *req = format_req("POST", "/v1/operations", NULL, body);
		assert_true(send_all(fds[i], req, strlen(req)));
		free(req);
	}
	int created = 0, existing = 0;
	uint64_t same_id = 0;
	for (int i = 0; i < N; i++) {
		struct resp r;
		assert_int_equal(read_resp(fds[i], &r, 10000, false), 0);
		uint64_t id = (uint64_t)json_integer_value(json_object_get(r.json, "id"));
		if (r.status == 202)
			created++;
		else if (r.status == 200 && json_is_true(json_object_get(r.json, "existing")))
			existing++;
		else
			fail_msg("status %d: %.*s", r.status, (int)r.len, r.body);
		if (i % 2) {
			if (!same_id)
				same_id = id;
			assert_int_equal(id, same_id);
		}
		resp_fini(&r);
		close(fds[i]);
	}
	assert_int_equal(created, N / 2 + 1);
	assert_int_equal(existing, N / 2 - 1);
	struct pvm_queue_stats st;
	assert_int_equal(pvm_queue_stats(f->q, &st), 0);
	assert_int_equal(st.total, N / 2 + 1);
}

static void test_api_bad_input(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *body, *field;
	} cases[] = {
	        {"{\"type\":\"test_steps\",", "body"},
	        {"[1,2]", "body"},
	        {"{\"type\":\"test_steps\",\"type\":\"x\"}", "body"},
	        {"{\"params\":{}}", "type"},
	        {"{\"type\":42}", "type"},
	        {"{\"type\":\"no_such_type\"}", "type"},
	        {"{\"type\":\"test_steps\",\"instance_uuid\":\"nope\"}", "instance_uuid"},
	        {"{\"type\":\"test_steps\"}", "instance_uuid"},
	        {"{\"type\":\"test_steps\",\"instance_uuid\":\"" UUID1 "\",\"params\":[]}",
	         "params"},
	        {"{\"type\":\"test_steps\",\"instance_uuid\":\"" UUID1
	         "\",\"params\":{\"vcpus\":\"two\"}}",
	         "params.vcpus"},
	        {"{\"type\":\"test_steps\",\"instance_uuid\":\"" UUID1
	         "\",\"params\":{\"colour\":1}}",
	         "params.colour"},
	        {"{\"type\":\"test_steps\",\"instance_uuid\":\"" UUID1 "\",\"deadline_s\":-5}",
	         "deadline_s"},
	        {"{\"type\":\"test_steps\",\"instance_uuid\":\"" UUID1 "\",\"idempotency_key\":7}",
	         "idempotency_key"},
	        {"{\"type\":\"test_steps\",\"instance_uuid\":\"" UUID1 "\",\"request_id\":[]}",
	         "request_id"},
	        {"{\"type\":\"test_steps\",\"instance_uuid\":\"" UUID1 "\",\"extra\":1}", "extra"},
	        {"{\"type\":\"power_on\",\"instance_uuid\":\"" UUID1
	         "\",\"params\":{\"instance\":{\"uuid\":\"" UUID2 "\"}}}",
	         "params.instance.uuid"},
	};
	struct resp r;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		POST(f, "/v1/operations", cases[i].body, &r);
		assert_error(&r, 400, "invalid", cases[i].field);
		resp_fini(&r);
	}
	/* The unknown type's message lists the known ones. */
	POST(f, "/v1/operations", "{\"type\":\"no_such_type\"}", &r);
	assert_non_null(strstr(
	        json_string_value(json_object_get(json_object_get(r.json, "error"), "message")),
	        "test_steps"));
	resp_fini(&r);
	/* A key of 256 bytes is one too many. */
	char key[300], body[600];
	memset(key, 'k', 256);
	key[256] = 0;
	snprintf(body, sizeof(body),
	         "{\"type\":\"test_steps\",\"instance_uuid\":\"" UUID1
	         "\",\"idempotency_key\":\"%s\"}",
	         key);
	POST(f, "/v1/operations", body, &r);
	assert_error(&r, 400, "invalid", "idempotency_key");
	resp_fini(&r);
	/* Empty body. */
	http(f, "POST", "/v1/operations", NULL, NULL, &r);
	assert_error(&r, 400, "invalid", "body");
	resp_fini(&r);
	/* Wrong media type. */
	http(f, "POST", "/v1/operations", "text/plain", "{\"type\":\"test_steps\"}", &r);
	assert_error(&r, 415, "unsupported_media_type", NULL);
	resp_fini(&r);
	/* Oversized body: refused from its Content-Length, the connection is closed. */
	char *big = malloc(MAX_BODY + 100);
	assert_non_null(big);
	memset(big, ' ', MAX_BODY + 99);
	big[0] = '{';
	big[MAX_BODY + 98] = '}';
	big[MAX_BODY + 99] = 0;
	POST(f, "/v1/operations", big, &r);
	assert_error(&r, 413, "too_large", NULL);
	resp_fini(&r);
	/* ... and when chunked, by counting: the body is read and dropped. */
	int fd = conn_open(f->sock);
	assert_true(fd >= 0);
	const char *hdr = "POST /v1/operations HTTP/1.1\r\nHost: x\r\nContent-Type: "
	                  "application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
	assert_true(send_all(fd, hdr, strlen(hdr)));
	for (int i = 0; i < 5; i++) {
		char chunk[40];
		snprintf(chunk, sizeof(chunk), "%x\r\n", MAX_BODY / 4);
		assert_true(send_all(fd, chunk, strlen(chunk)));
		assert_true(send_all(fd, big, MAX_BODY / 4));
		assert_true(send_all(fd, "\r\n", 2));
	}
	assert_true(send_all(fd, "0\r\n\r\n", 5));
	assert_int_equal(read_resp(fd, &r, 10000, false), 0);
	assert_error(&r, 413, "too_large", NULL);
	resp_fini(&r);
	close(fd);
	free(big);
	/* Unknown path, wrong method (with Allow). */
	GET(f, "/v2/nothing", &r);
	assert_error(&r, 404, "not_found", NULL);
	resp_fini(&r);
	http(f, "DELETE", "/v1/operations", NULL, NULL, &r);
	assert_error(&r, 405, "method_not_allowed", NULL);
	assert_string_equal(header(&r, "Allow"), "GET, HEAD, POST");
	resp_fini(&r);
	GET(f, "/v1/pause", &r);
	assert_error(&r, 405, "method_not_allowed", NULL);
	assert_string_equal(header(&r, "Allow"), "POST");
	resp_fini(&r);
	GET(f, "/healthz?x=1", &r);
	assert_error(&r, 400, "invalid", "x");
	resp_fini(&r);
	/* Nothing was journaled by all this. */
	struct pvm_queue_stats st;
	assert_int_equal(pvm_queue_stats(f->q, &st), 0);
	assert_int_equal(st.total, 0);
}

static bool clock_past(void *arg)
{
	return pvm_now_ms() > *(int64_t *)arg;
}

static void test_api_control(void **state)
{
	struct fixture *f = *state;
	struct resp r;
	char path[128];
	/* cancel: a queued operation that never started is cancelled at once */
	uint64_t a = submit_test_op(f, UUID1, NULL);
	snprintf(path, sizeof(path), "/v1/operations/%llu/cancel", (unsigned long long)a);
	http(f, "POST", path, NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(json_string_value(json_object_get(r.json, "state")), "cancelled");
	assert_true(json_is_false(json_object_get(r.json, "cancel_requested")));
	resp_fini(&r);
	http(f, "POST", path, NULL, NULL, &r);
	assert_error(&r, 409, "conflict", NULL);
	resp_fini(&r);
	http(f, "POST", "/v1/operations/4242/cancel", NULL, NULL, &r);
	assert_error(&r, 404, "not_found", NULL);
	resp_fini(&r);

	/* signal: needs an active operation, a name and a value */
	uint64_t b = submit_test_op(f, UUID2, NULL);
	snprintf(path, sizeof(path), "/v1/operations/%llu/signal", (unsigned long long)b);
	POST(f, path, "{\"name\":\"go\",\"value\":{\"ok\":true}}", &r);
	assert_int_equal(r.status, 200);
	resp_fini(&r);
	struct pvm_op *op = NULL;
	assert_int_equal(pvm_queue_get(f->q, b, &op), 0);
	assert_true(json_is_true(json_object_get(json_object_get(op->signals, "go"), "ok")));
	pvm_op_free(op);
	POST(f, path, "{\"name\":\"go\"}", &r);
	assert_error(&r, 400, "invalid", "value");
	resp_fini(&r);
	POST(f, path, "{\"name\":\"bad name!\",\"value\":1}", &r);
	assert_error(&r, 400, "invalid", "name");
	resp_fini(&r);
	snprintf(path, sizeof(path), "/v1/operations/%llu/signal", (unsigned long long)a);
	POST(f, path, "{\"name\":\"go\",\"value\":1}", &r);
	assert_error(&r, 409, "conflict", NULL);
	resp_fini(&r);

	/* retry: only a failed operation */
	snprintf(path, sizeof(path), "/v1/operations/%llu/retry", (unsigned long long)b);
	http(f, "POST", path, NULL, NULL, &r);
	assert_error(&r, 409, "conflict", NULL);
	resp_fini(&r);
	fail_op(f, b);
	http(f, "POST", path, NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(json_string_value(json_object_get(r.json, "state")), "queued");
	resp_fini(&r);

	/* retry of a failed operation whose secrets were erased */
	json_t *params = json_object(), *secrets = json_pack("{s:s}", "password", "x");
	struct pvm_op_submit s = {.type = "test_steps",
	                          .instance_uuid = "cccccccc-bbbb-cccc-dddd-eeeeeeeeeeee",
	                          .params = params,
	                          .secrets = secrets};
	uint64_t c = 0;
	bool existed = false;
	assert_int_equal(pvm_queue_submit(f->q, &s, &c, &existed), 0);
	json_decref(params);
	json_decref(secrets);
	/* b (queued again) is due before c only on its own instance: claim takes the oldest */
	struct pvm_op *cl = NULL;
	assert_int_equal(pvm_queue_claim(f->q, pvm_now_ms() + 1000, &cl, NULL), 0);
	uint64_t first = cl->id;
	pvm_op_free(cl);
	assert_int_equal(pvm_queue_claim(f->q, pvm_now_ms() + 1000, &cl, NULL), 0);
	assert_true(cl->id == c || first == c);
	pvm_op_free(cl);
	fail_running(f, c);
	snprintf(path, sizeof(path), "/v1/operations/%llu/retry", (unsigned long long)c);
	http(f, "POST", path, NULL, NULL, &r);
	assert_error(&r, 409, "secrets_erased", NULL);
	resp_fini(&r);

	/* purge: the cancelled and failed ones, once the clock moved past their end */
	int64_t mark = pvm_now_ms();
	assert_true(pvm_test_wait(clock_past, &mark, 1000));
	POST(f, "/v1/operations/purge", "{\"older_than_s\":-1}", &r);
	assert_error(&r, 400, "invalid", "older_than_s");
	resp_fini(&r);
	POST(f, "/v1/operations/purge", "{\"older_than_s\":0}", &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_integer_value(json_object_get(r.json, "purged")), 2);
	resp_fini(&r);
	http(f, "POST", "/v1/operations/purge", NULL, NULL, &r); /* default: the retention */
	assert_int_equal(r.status, 200);
	assert_int_equal(json_integer_value(json_object_get(r.json, "purged")), 0);
	resp_fini(&r);
}

static void test_api_engine_endpoints(void **state)
{
	struct fixture *f = *state;
	struct resp r;
	GET(f, "/healthz", &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(json_string_value(json_object_get(r.json, "status")), "starting");
	resp_fini(&r);
	atomic_store(&f->ready, true);
	GET(f, "/healthz", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(json_string_value(json_object_get(r.json, "status")), "ready");
	assert_true(json_is_true(json_object_get(r.json, "paused")));
	resp_fini(&r);
	http(f, "POST", "/v1/resume", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_true(json_is_false(json_object_get(r.json, "paused")));
	resp_fini(&r);
	assert_false(pvm_engine_paused(f->e));
	http(f, "POST", "/v1/pause", NULL, NULL, &r);
	assert_true(json_is_true(json_object_get(r.json, "paused")));
	resp_fini(&r);
	assert_true(pvm_engine_paused(f->e));

	/* reconcile: nova waits for UUID1's operation only */
	uint64_t a = submit_test_op(f, UUID1, NULL);
	uint64_t b = submit_test_op(f, UUID2, NULL);
	POST(f, "/v1/reconcile",
	     "{\"instances\":[{\"uuid\":\"" UUID1
	     "\",\"vm_state\":\"building\",\"task_state\":\"spawning\"}]}",
	     &r);
	assert_int_equal(r.status, 200);
	json_t *cancelled = json_object_get(r.json, "cancelled");
	json_t *kept = json_object_get(r.json, "kept");
	assert_int_equal(json_array_size(cancelled), 1);
	assert_int_equal(json_integer_value(json_array_get(cancelled, 0)), b);
	assert_int_equal(json_integer_value(json_array_get(kept, 0)), a);
	resp_fini(&r);
	/* the scrub gets nova's list once the reconcile succeeded */
	assert_int_equal(atomic_load(&f->reconciled), 1);
	assert_int_equal(atomic_load(&f->nova_listed), 1);
	GET(f, "/v1/scrub", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(json_string_value(json_object_get(r.json, "mode")), "dry-run");
	assert_int_equal(json_integer_value(json_object_get(r.json, "seen")), 1);
	resp_fini(&r);
	GET(f, "/v1/scrub?x=1", &r);
	assert_error(&r, 400, "invalid", "x");
	resp_fini(&r);
	http(f, "POST", "/v1/scrub", NULL, NULL, &r);
	assert_int_equal(r.status, 405);
	resp_fini(&r);
	static const struct {
		const char *body, *field;
	} bad[] = {
	        {"{}", "instances"},
	        {"{\"instances\":{}}", "instances"},
	        {"{\"instances\":[1]}", "instances[0]"},
	        {"{\"instances\":[{\"uuid\":\"x\",\"vm_state\":\"active\"}]}", "instances[0].uuid"},
	        {"{\"instances\":[{\"uuid\":\"" UUID1 "\"}]}", "instances[0].vm_state"},
	        {"{\"instances\":[{\"uuid\":\"" UUID1
	         "\",\"vm_state\":\"active\",\"task_state\":3}]}",
	         "instances[0].task_state"},
	        {"{\"instances\":[],\"more\":1}", "more"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		POST(f, "/v1/reconcile", bad[i].body, &r);
		assert_error(&r, 400, "invalid", bad[i].field);
		resp_fini(&r);
	}
	assert_int_equal(atomic_load(&f->reconciled), 1); /* refused views are not passed on */

	/* host and instances come from the callbacks */
	GET(f, "/v1/host", &r);
	assert_error(&r, 503, "not_ready", NULL);
	resp_fini(&r);
	atomic_store(&f->have_host, true);
	GET(f, "/v1/host", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(json_string_value(json_object_get(r.json, "name")), "sys1");
	resp_fini(&r);
	GET(f, "/v1/instances", &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_array_size(json_object_get(r.json, "instances")), 1);
	resp_fini(&r);
	GET(f, "/v1/instances/" UUID1, &r);
	assert_int_equal(r.status, 200);
	resp_fini(&r);
	GET(f, "/v1/instances/11111111-2222-3333-4444-55555555555A", &r);
	assert_error(&r, 404, "not_found", NULL);
	resp_fini(&r);
	GET(f, "/v1/instances/not-a-uuid", &r);
	assert_error(&r, 404, "not_found", NULL);
	resp_fini(&r);
}

struct pending {
	int fd;
	int64_t sent_ns;
};

static struct pending start_req(struct fixture *f, const char *method, const char *path)
{
	struct pending p = {conn_open(f->sock), pvm_mono_ns()};
	assert_true(p.fd >= 0);
	char *req = format_req(method, path, NULL, NULL);
	assert_true(send_all(p.fd, req, strlen(req)));
	free(req);
	return p;
}

/* True when fd has something to read within ms. */
static bool readable(int fd, int ms)
{
	struct pollfd pfd = {fd, POLLIN, 0};
	return poll(&pfd, 1, ms) == 1;
}

static void test_api_long_poll_operation(void **state)
{
	struct fixture *f = *state;
	uint64_t id = submit_test_op(f, UUID1, NULL);
	char path[128];
	struct resp r;
	/* At the deadline: the state as it is. */
	snprintf(path, sizeof(path), "/v1/operations/%llu?wait=0.5", (unsigned long long)id);
	int64_t t0 = pvm_mono_ns();
	GET(f, path, &r);
	int64_t took_ms = (pvm_mono_ns() - t0) / 1000000;
	assert_int_equal(r.status, 200);
	assert_string_equal(json_string_value(json_object_get(r.json, "state")), "queued");
	assert_true(took_ms >= 490);
	assert_true(took_ms < 500 + scaled_ms(1000));
	resp_fini(&r);

	/* On change: answered promptly once it is terminal, not at the deadline. */
	snprintf(path, sizeof(path), "/v1/operations/%llu?wait=20", (unsigned long long)id);
	struct pending p = start_req(f, "GET", path);
	assert_false(readable(p.fd, 200)); /* suspended */
	/* A change that leaves it active does not answer. */
	assert_int_equal(pvm_queue_signal(f->q, id, "x", json_true()), 0);
	assert_false(readable(p.fd, 200));
	enum pvm_op_state st;
	int64_t t1 = pvm_mono_ns();
	assert_int_equal(pvm_queue_cancel(f->q, id, &st), 0);
	assert_int_equal(read_resp(p.fd, &r, 5000, false), 0);
	took_ms = (pvm_mono_ns() - t1) / 1000000;
	assert_int_equal(r.status, 200);
	assert_string_equal(json_string_value(json_object_get(r.json, "state")), "cancelled");
	assert_true(took_ms < scaled_ms(500));
	resp_fini(&r);
	/* Keep-alive: the same connection serves the next request. */
	char *req = format_req("GET", "/healthz", NULL, NULL);
	assert_true(send_all(p.fd, req, strlen(req)));
	free(req);
	assert_int_equal(read_resp(p.fd, &r, 5000, false), 0);
	assert_int_equal(r.status, 503);
	resp_fini(&r);
	close(p.fd);

	/* Terminal already: at once. */
	t0 = pvm_mono_ns();
	GET(f, path, &r);
	assert_int_equal(r.status, 200);
	assert_true((pvm_mono_ns() - t0) / 1000000 < scaled_ms(1000));
	resp_fini(&r);
	snprintf(path, sizeof(path), "/v1/operations/%llu?wait=soon", (unsigned long long)id);
	GET(f, path, &r);
	assert_error(&r, 400, "invalid", "wait");
	resp_fini(&r);
}

static void test_api_events(void **state)
{
	struct fixture *f = *state;
	struct resp r;
	for (int i = 0; i < 3; i++)
		assert_int_equal(
		        pvm_eventlog_publish(f->ev, json_pack("{s:s, s:i}", "type", "test", "n", i),
		                             NULL),
		        0);
	GET(f, "/v1/events?after=0", &r);
	assert_int_equal(r.status, 200);
	json_t *evs = json_object_get(r.json, "events");
	assert_int_equal(json_array_size(evs), 3);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(evs, 0), "seq")), 1);
	assert_non_null(json_string_value(json_object_get(json_array_get(evs, 0), "time")));
	assert_int_equal(json_integer_value(json_object_get(r.json, "last")), 3);
	assert_true(json_is_false(json_object_get(r.json, "missed")));
	resp_fini(&r);
	GET(f, "/v1/events?after=1&limit=1", &r);
	assert_int_equal(json_array_size(json_object_get(r.json, "events")), 1);
	assert_int_equal(json_integer_value(json_object_get(r.json, "last")), 2);
	resp_fini(&r);

	/* Long-poll: answered by the next publish. */
	struct pending p = start_req(f, "GET", "/v1/events?after=3&wait=20");
	assert_false(readable(p.fd, 200));
	int64_t t1 = pvm_mono_ns();
	assert_int_equal(pvm_eventlog_publish(f->ev, json_pack("{s:s}", "type", "late"), NULL), 0);
	assert_int_equal(read_resp(p.fd, &r, 5000, false), 0);
	assert_true((pvm_mono_ns() - t1) / 1000000 < scaled_ms(500));
	evs = json_object_get(r.json, "events");
	assert_int_equal(json_array_size(evs), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(evs, 0), "type")),
	                    "late");
	resp_fini(&r);
	close(p.fd);

	/* At the deadline: no events, last unchanged. */
	int64_t t0 = pvm_mono_ns();
	GET(f, "/v1/events?after=4&wait=0.3", &r);
	assert_true((pvm_mono_ns() - t0) / 1000000 >= 290);
	assert_int_equal(json_array_size(json_object_get(r.json, "events")), 0);
	assert_int_equal(json_integer_value(json_object_get(r.json, "last")), 4);
	resp_fini(&r);

	/* A long-poll longer than the connection timeout is not cut: suspended connections
	 * do not time out, and the timeout starts again when it is resumed. */
	t0 = pvm_mono_ns();
	GET(f, "/v1/events?after=4&wait=" STR(CONN_TIMEOUT) ".5", &r);
	assert_int_equal(r.status, 200);
	assert_true((pvm_mono_ns() - t0) / 1000000 >= CONN_TIMEOUT * 1000 + 490);
	resp_fini(&r);

	/* Missed: the ring keeps EVENTS_RING events. */
	for (int i = 0; i < 2 * EVENTS_RING; i++)
		pvm_eventlog_publish(f->ev, json_pack("{s:s}", "type", "flood"), NULL);
	GET(f, "/v1/events?after=1", &r);
	assert_true(json_is_true(json_object_get(r.json, "missed")));
	assert_int_equal(json_array_size(json_object_get(r.json, "events")), EVENTS_RING);
	assert_int_equal(json_integer_value(json_object_get(r.json, "last")), 4 + 2 * EVENTS_RING);
	resp_fini(&r);
	GET(f, "/v1/events?after=99999&wait=5", &r); /* beyond the newest: a restart */
	assert_true(json_is_true(json_object_get(r.json, "missed")));
	resp_fini(&r);
	GET(f, "/v1/events?after=x", &r);
	assert_error(&r, 400, "invalid", "after");
	resp_fini(&r);
}

static void test_api_metrics(void **state)
{
	struct fixture *f = *state;
	struct resp r;
	submit_test_op(f, UUID1, NULL);
	GET(f, "/v1/nowhere", &r);
	resp_fini(&r);
	pvm_metrics_observe(f->m, "pvm_step_duration_seconds", "type=\"test_steps\"", 0.7);
	GET(f, "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(header(&r, "Content-Type"), "text/plain; version=0.0.4"));
	/* Every line parses: comments, or `name{labels} value` with a number. */
	char *save = NULL;
	int samples = 0;
	for (char *line = strtok_r(r.body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#') {
			assert_true(strncmp(line, "# HELP ", 7) == 0 ||
			            strncmp(line, "# TYPE ", 7) == 0);
			continue;
		}
		char *sp = strrchr(line, ' ');
		assert_non_null(sp);
		char *end;
		strtod(sp + 1, &end);
		assert_true(*end == 0 || strcmp(sp + 1, "+Inf") == 0);
		char *brace = strchr(line, '{');
		if (brace && brace < sp)
			assert_true(sp[-1] == '}');
		samples++;
	}
	assert_true(samples > 10);
	resp_fini(&r);
	GET(f, "/metrics", &r);
	assert_non_null(strstr(r.body, "pvm_api_requests_total{endpoint=\"/v1/operations\","
	                               "method=\"POST\",status=\"202\"} 1"));
	assert_non_null(strstr(r.body, "pvm_api_requests_total{endpoint=\"other\",method=\"GET\","
	                               "status=\"404\"} 1"));
	assert_non_null(strstr(r.body, "# TYPE pvm_api_request_duration_seconds histogram"));
	assert_non_null(strstr(r.body, "pvm_queue_operations{state=\"queued\"} 1\n"));
	assert_non_null(strstr(r.body, "pvm_step_duration_seconds_bucket{type=\"test_steps\","
	                               "le=\"1\"} 1"));
	resp_fini(&r);
}

/* A request trickling in byte by byte holds no thread: others are served meanwhile; a
 * trickle that stops is cut at the connection timeout. */
static void test_api_trickle(void **state)
{
	struct fixture *f = *state;
	enum { NT = 2 * API_THREADS };
	int t[NT];
	const char *req = "POST /v1/operations HTTP/1.1\r\nHost: x\r\nContent-Type: "
	                  "application/json\r\nContent-Length: 30\r\n\r\n{\"type\":";
	for (int i = 0; i < NT; i++) {
		t[i] = conn_open(f->sock);
		assert_true(t[i] >= 0);
	}
	size_t len = strlen(req);
	int64_t worst = 0;
	for (size_t b = 0; b < len; b++) {
		for (int i = 0; i < NT; i++)
			assert_true(send_all(t[i], req + b, 1));
		if (b % 8 == 0) {
			struct resp r;
			int64_t t0 = pvm_mono_ns();
			GET(f, "/healthz", &r);
			int64_t ms = (pvm_mono_ns() - t0) / 1000000;
			if (ms > worst)
				worst = ms;
			resp_fini(&r);
		}
	}
	print_message("trickle: worst healthz latency %lld ms with %d trickling clients\n",
	              (long long)worst, NT);
	assert_true(worst < scaled_ms(500));
	/* Now silent: each is cut at the timeout (with MHD's one-second granularity). */
	int64_t deadline = pvm_mono_ns() + (CONN_TIMEOUT + 3) * scaled_ms(1000) * 1000000;
	for (int i = 0; i < NT; i++) {
		char buf[4096];
		bool closed = false;
		for (int k = 0; k < 64 && !closed; k++) {
			ssize_t n = read_some(t[i], buf, sizeof(buf), deadline);
			if (n <= 0)
				closed = n == 0;
			if (n < 0)
				break;
		}
		assert_true(closed);
		close(t[i]);
	}
}

/* A peer whose uid is not allowed gets 403 and the connection is closed; the API keeps
 * serving everyone else. */
static void test_api_forbidden_uid(void **state)
{
	struct fixture *f = *state;
	if (geteuid() != 0) {
		print_message("not root: skipping the setuid peer\n");
		skip();
	}
	/* The socket is 0660 root: open it up so that nobody can connect at all. */
	assert_int_equal(chmod(f->sock, 0666), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(10);
		int fd = conn_open(f->sock);
		if (fd < 0)
			_exit(11);
		char *req = format_req("GET", "/v1/operations", NULL, NULL);
		if (!send_all(fd, req, strlen(req)))
			_exit(12);
		struct resp r;
		if (read_resp(fd, &r, 5000, false) != 0)
			_exit(13);
		if (r.status != 403)
			_exit(14);
		json_t *code = json_object_get(json_object_get(r.json, "error"), "code");
		if (!json_is_string(code) || strcmp(json_string_value(code), "forbidden") != 0)
			_exit(15);
		/* Closed after the answer: EOF, not a second answer. */
		char c;
		int64_t dl = pvm_mono_ns() + scaled_ms(5000) * 1000000;
		if (read_some(fd, &c, 1, dl) != 0)
			_exit(16);
		_exit(0);
	}
	int status = 0;
	int64_t deadline = pvm_mono_ns() + scaled_ms(15000) * 1000000;
	pid_t w = 0;
	for (int i = 0; i < 10000 && w == 0; i++) {
		w = waitpid(pid, &status, WNOHANG);
		if (w == 0) {
			if (pvm_mono_ns() > deadline) {
				kill(pid, SIGKILL);
				waitpid(pid, &status, 0);
				fail_msg("the uid 65534 child did not finish");
			}
			usleep(5000);
		}
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	struct resp r;
	GET(f, "/v1/operations", &r);
	assert_int_equal(r.status, 200);
	resp_fini(&r);
	assert_true(pvm_metrics_value(f->m, "pvm_api_peers_refused_total", NULL) >= 1);
}

static int count_tasks(int *named_api, int *have_waker)
{
	DIR *d = opendir("/proc/self/task");
	assert_non_null(d);
	int n = 0;
	*named_api = 0;
	*have_waker = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		n++;
		char path[300], comm[32] = "";
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
		FILE *fp = fopen(path, "r");
		if (fp) {
			if (fgets(comm, sizeof(comm), fp)) {
				comm[strcspn(comm, "\n")] = 0;
				if (strcmp(comm, "pvm-api-waker") == 0 ||
				    strcmp(comm, "pvm-api-submit") == 0)
					(*have_waker)++;
				else if (strncmp(comm, "pvm-api-", 8) == 0)
					(*named_api)++;
			}
			fclose(fp);
		}
	}
	closedir(d);
	return n;
}

static bool all_suspended(void *arg)
{
	struct fixture *f = arg;
	return pvm_metrics_value(f->m, "pvm_api_long_polls", NULL) >= 32;
}

/* 32 concurrent long-polls run on the fixed threads: the process's thread count stays. */
static void test_api_threads_fixed(void **state)
{
	struct fixture *f = *state;
	int named, waker;
	int before = count_tasks(&named, &waker);
	print_message("threads: %d in the process, %d named pvm-api-N, waker and submitter %d\n",
	              before, named, waker);
	assert_int_equal(named, API_THREADS);
	assert_int_equal(waker, 2);
	assert_int_equal(pvm_api_thread_count(f->api), API_THREADS + 2);
	uint64_t id = submit_test_op(f, UUID1, NULL);
	struct pending p[32];
	char path[128];
	for (int i = 0; i < 32; i++) {
		if (i % 2)
			snprintf(path, sizeof(path), "/v1/operations/%llu?wait=30",
			         (unsigned long long)id);
		else
			snprintf(path, sizeof(path), "/v1/events?after=0&wait=30");
		p[i] = start_req(f, "GET", path);
	}
	assert_true(pvm_test_wait(all_suspended, f, 10000));
	int during = count_tasks(&named, &waker);
	print_message("threads: %d with 32 long-polls suspended\n", during);
	assert_int_equal(during, before);
	/* Others are still served. */
	struct resp r;
	GET(f, "/healthz", &r);
	assert_int_equal(r.status, 503);
	resp_fini(&r);
	/* One event answers the 16 event polls, one cancel the 16 operation polls. */
	assert_int_equal(pvm_eventlog_publish(f->ev, json_pack("{s:s}", "type", "t"), NULL), 0);
	enum pvm_op_state st;
	assert_int_equal(pvm_queue_cancel(f->q, id, &st), 0);
	for (int i = 0; i < 32; i++) {
		assert_int_equal(read_resp(p[i].fd, &r, 5000, false), 0);
		assert_int_equal(r.status, 200);
		if (i % 2)
			assert_string_equal(json_string_value(json_object_get(r.json, "state")),
			                    "cancelled");
		else
			assert_int_equal(json_array_size(json_object_get(r.json, "events")), 1);
		resp_fini(&r);
		close(p[i].fd);
	}
	assert_int_equal(count_tasks(&named, &waker), before);
	assert_true(pvm_metrics_value(f->m, "pvm_api_long_polls", NULL) == 0);
}

static bool one_suspended(void *arg)
{
	struct fixture *f = arg;
	return pvm_metrics_value(f->m, "pvm_api_long_polls", NULL) >= 1;
}

/* Stopping the API answers suspended long-polls instead of leaving them hanging. */
static void test_api_stop_answers_long_polls(void **state)
{
	struct fixture *f = *state;
	struct pending p = start_req(f, "GET", "/v1/events?after=0&wait=30");
	assert_true(pvm_test_wait(one_suspended, f, 10000));
	assert_false(readable(p.fd, 200));
	pvm_api_stop(f->api);
	f->api = NULL;
	struct resp r;
	int rc = read_resp(p.fd, &r, 5000, false);
	/* Either the answer made it out before the connection closed, or it was closed. */
	assert_true(rc == 0 || rc == -2);
	if (rc == 0)
		assert_int_equal(r.status, 200);
	resp_fini(&r);
	close(p.fd);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	pvm_log_setup("test_api", PVM_LOG_STDERR, PVM_LOG_WARNING);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_api_socket_mode, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_api_submit_get_list, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_api_example_bodies, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_api_images, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_api_idempotency, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_api_concurrent_submissions, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_api_bad_input, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_api_control, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_api_engine_endpoints, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_api_long_poll_operation, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_api_events, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_api_metrics, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_api_trickle, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_api_forbidden_uid, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_api_threads_fixed, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_api_stop_answers_long_polls, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
