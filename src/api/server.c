/* server.c: the local API's transport: the Unix socket, libmicrohttpd, peer checks, request
 * bodies, answers, and the long-poll machinery (suspend, waker, resume).
 *
 * DESIGN: libmicrohttpd runs a fixed pool of `threads` workers, each with its own epoll set
 * over the shared listening socket, so a client trickling a request byte by byte occupies
 * a connection slot, not a thread, and is cut at the connection timeout. A long-poll never
 * holds a thread either: its connection is suspended and linked into api->waiters. One
 * waker thread resumes it: it sleeps in pvm_queue_wait_change() while operation long-polls
 * exist (at most API_WAKER_TICK_MS, to notice new registrations and deadlines) and on its
 * own condition variable otherwise. Event long-polls are resumed straight from the event
 * log's notify hook, in the publishing thread. A request is always unlinked before it is
 * resumed, so libmicrohttpd's completion callback never needs api->mu.
 *
 * Lock order: eventlog notify_mu -> api->mu -> (libmicrohttpd's internal mutexes, taken by
 * MHD_suspend_connection/MHD_resume_connection) and api->mu -> eventlog mu.
 */
#include "internal.h"

#include "pvm/error.h"
#include "pvm/eventlog.h"
#include "pvm/log.h"
#include "pvm/metrics.h"
#include "pvm/queue.h"
#include "pvm/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_BODY   (1024 * 1024)
#define DEFAULT_MAX_WAIT_S 300
#define DEFAULT_THREADS    4
#define DEFAULT_TIMEOUT_S  30
#define DEFAULT_MAX_CONN   256
#define DEFAULT_EVENTS_MAX 1000
#define CONN_MEMORY_LIMIT  (64 * 1024)
#define MAX_THREADS        64

/* ---- answers ---- */

static void count_request(struct request *r, unsigned status)
{
	char labels[160];
	snprintf(labels, sizeof(labels), "endpoint=\"%s\",method=\"%s\",status=\"%u\"",
	         api_route_endpoint(r->route), r->method, status);
	pvm_metrics_inc(r->api->metrics, "pvm_api_requests_total", labels, 1);
	snprintf(labels, sizeof(labels), "endpoint=\"%s\"", api_route_endpoint(r->route));
	pvm_metrics_observe(r->api->metrics, "pvm_api_request_duration_seconds", labels,
	                    (double)(pvm_mono_ns() - r->start_ns) / 1e9);
}

static enum MHD_Result queue(struct request *r, unsigned status, struct MHD_Response *resp,
                             const char *ctype, bool close_conn)
{
	if (!resp)
		return MHD_NO; /* out of memory: MHD closes the connection */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (close_conn)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, api_route_allow(r->route));
	enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	r->answered = true;
	count_request(r, status);
	return ret;
}

enum MHD_Result api_reply_json(struct request *r, unsigned status, json_t *body, bool close_conn)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text)
		return MHD_NO;
	size_t len = strlen(text);
	/* Newline-terminated: friendlier to curl and to line-reading clients. */
	char *t2 = realloc(text, len + 2);
	if (!t2) {
		free(text);
		return MHD_NO;
	}
	t2[len] = '\n';
	t2[len + 1] = 0;
	struct MHD_Response *resp =
	        MHD_create_response_from_buffer(len + 1, t2, MHD_RESPMEM_MUST_FREE);
	if (!resp)
		free(t2);
	return queue(r, status, resp, "application/json", close_conn);
}

enum MHD_Result api_reply_text(struct request *r, unsigned status, const char *ctype, char *text)
{
	if (!text)
		return MHD_NO;
	struct MHD_Response *resp =
	        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!resp)
		free(text);
	return queue(r, status, resp, ctype, false);
}

enum MHD_Result api_reply_error(struct request *r, unsigned status, const char *code,
                                const char *field, json_t *extra, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *err = json_pack("{s:s, s:s}", "code", code, "message", msg);
	if (err && field)
		json_object_set_new(err, "field", json_string(field));
	if (err && extra)
		json_object_update(err, extra);
	json_decref(extra);
	if (status >= 500 && status != MHD_HTTP_SERVICE_UNAVAILABLE)
		pvm_warn("api: %s %s: %u %s: %s", r->method, api_route_endpoint(r->route), status,
		         code, msg);
	/* 403 and 413-before-the-body close the connection: what follows is not read. */
	bool close_conn = status == MHD_HTTP_FORBIDDEN;
	return api_reply_json(r, status, json_pack("{s:o}", "error", err), close_conn);
}

/* ---- long-polls ---- */

static void link_waiter(struct pvm_api *api, struct request *r)
{
	r->wprev = NULL;
	r->wnext = api->waiters;
	if (api->waiters)
		api->waiters->wprev = r;
	api->waiters = r;
	r->linked = true;
	api->nwaiters++;
}

static void unlink_waiter(struct pvm_api *api, struct request *r)
{
	if (r->wprev)
		r->wprev->wnext = r->wnext;
	else
		api->waiters = r->wnext;
	if (r->wnext)
		r->wnext->wprev = r->wprev;
	r->wprev = r->wnext = NULL;
	r->linked = false;
	api->nwaiters--;
}

/* Caller holds api->mu. */
static void resume_locked(struct pvm_api *api, struct request *r)
{
	unlink_waiter(api, r);
	r->resumed = true;
	MHD_resume_connection(r->conn);
}

bool api_suspend(struct request *r)
{
	struct pvm_api *api = r->api;
	bool ok = false;
	pthread_mutex_lock(&api->mu);
	if (api->stopping || r->resumed)
		goto out;
	/* Re-checked under mu: a publish after this sees the request linked. */
	if (r->wait_kind == WAIT_EVENTS && pvm_eventlog_ready(api->o.events, r->wait_arg))
		goto out;
	MHD_suspend_connection(r->conn);
	link_waiter(api, r);
	pthread_cond_signal(&api->cv);
	ok = true;
out:
	pthread_mutex_unlock(&api->mu);
	if (ok)
		pvm_metrics_add(api->metrics, "pvm_api_long_polls", NULL, 1);
	return ok;
}

bool api_was_resumed(struct request *r)
{
	pthread_mutex_lock(&r->api->mu);
	bool res = r->resumed;
	pthread_mutex_unlock(&r->api->mu);
	if (res) {
		r->resumed = false; /* read once: the next answer is final anyway */
		pvm_metrics_add(r->api->metrics, "pvm_api_long_polls", NULL, -1);
	}
	return res;
}

/* Event log notify hook: runs in the publishing thread. */
static void on_event(void *arg, uint64_t seq)
{
	struct pvm_api *api = arg;
	pthread_mutex_lock(&api->mu);
	struct request *r = api->waiters, *next;
	for (; r; r = next) {
		next = r->wnext;
		if (r->wait_kind == WAIT_EVENTS && r->wait_arg < seq)
			resume_locked(api, r);
	}
	pthread_mutex_unlock(&api->mu);
}

static void timespec_after_ns(struct timespec *ts, int64_t ns)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	int64_t t = ts->tv_nsec + ns;
	ts->tv_sec += t / 1000000000;
	ts->tv_nsec = t % 1000000000;
}

/* Reads the states of the operations of long-polls whose state was read before generation
 * cur, and resumes those that ended. Called and returns with api->mu held; drops it while
 * reading the journal. Returns true when it looked at anything. */
static bool check_ops(struct pvm_api *api, uint64_t cur)
{
	uint64_t ids[64];
	size_t n = 0;
	for (struct request *r = api->waiters; r && n < 64; r = r->wnext) {
		if (r->wait_kind != WAIT_OP || r->gen_seen == cur)
			continue;
		r->gen_seen = cur;
		bool dup = false;
		for (size_t i = 0; i < n && !dup; i++)
			dup = ids[i] == r->wait_arg;
		if (!dup)
			ids[n++] = r->wait_arg;
	}
	if (n == 0)
		return false;
	bool done[64];
	pthread_mutex_unlock(&api->mu);
	for (size_t i = 0; i < n; i++) {
		/* The state index only: no record is decoded after every commit. */
		enum pvm_op_state st = PVM_OP_QUEUED;
		int rc = pvm_queue_state(api->o.queue, ids[i], &st);
		/* Gone (purged) or unreadable: answer, the handler reports it. */
		done[i] = rc != 0 || !pvm_op_state_active(st);
	}
	pthread_mutex_lock(&api->mu);
	struct request *r = api->waiters, *next;
	for (; r; r = next) {
		next = r->wnext;
		if (r->wait_kind != WAIT_OP)
			continue;
		for (size_t i = 0; i < n; i++)
			if (done[i] && ids[i] == r->wait_arg) {
				resume_locked(api, r);
				break;
			}
	}
	return true;
}

static void *waker_main(void *arg)
{
	struct pvm_api *api = arg;
	pthread_setname_np(pthread_self(), "pvm-api-waker");
	pthread_mutex_lock(&api->mu);
	while (!api->stopping) {
		int64_t now = pvm_mono_ns();
		int64_t next = INT64_MAX;
		bool have_op = false;
		struct request *r = api->waiters, *nx;
		for (; r; r = nx) {
			nx = r->wnext;
			if (r->deadline_ns <= now) {
				resume_locked(api, r);
				continue;
			}
			if (r->deadline_ns < next)
				next = r->deadline_ns;
			have_op |= r->wait_kind == WAIT_OP;
		}
		uint64_t cur = pvm_queue_generation(api->o.queue);
		if (have_op && check_ops(api, cur))
			continue; /* the list changed while unlocked: look again */
		if (have_op) {
			int64_t ms = (next - now) / 1000000 + 1;
			if (ms > API_WAKER_TICK_MS)
				ms = API_WAKER_TICK_MS;
			pthread_mutex_unlock(&api->mu);
			pvm_queue_wait_change(api->o.queue, cur, (int)ms);
			pthread_mutex_lock(&api->mu);
		} else {
			struct timespec ts;
			int64_t wait_ns = next == INT64_MAX ? 3600LL * 1000000000 : next - now;
			timespec_after_ns(&ts, wait_ns);
			pthread_cond_timedwait(&api->cv, &api->mu, &ts);
		}
	}
	/* Stopping: every long-poll answers now with what it has. */
	while (api->waiters)
		resume_locked(api, api->waiters);
	pthread_mutex_unlock(&api->mu);
	return NULL;
}

/* ---- libmicrohttpd callbacks ---- */

static bool uid_allowed(const struct pvm_api *api, uid_t uid)
{
	if (uid == 0 || uid == geteuid())
		return true;
	for (size_t i = 0; i < api->nallowed; i++)
		if (api->allowed[i] == uid)
			return true;
	return false;
}

/* Names an MHD worker thread the first time it serves a connection, in case the rename at
 * start (rename_mhd_threads) missed it. */
static void name_thread(void)
{
	static _Atomic int seq;
	static _Thread_local bool named;
	if (named)
		return;
	named = true;
	char cur[16] = "";
	pthread_getname_np(pthread_self(), cur, sizeof(cur));
	if (strncmp(cur, "pvm-api-", 8) == 0)
		return;
	char name[16];
	snprintf(name, sizeof(name), "pvm-api-x%d", seq++);
	pthread_setname_np(pthread_self(), name);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
	struct pvm_api *api = cls;
	if (toe != MHD_CONNECTION_NOTIFY_STARTED) {
		free(*socket_context);
		*socket_context = NULL;
		return;
	}
	name_thread();
	struct peer *p = calloc(1, sizeof(*p));
	*socket_context = p;
	if (!p)
		return;
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (ci && getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0) {
		p->known = true;
		p->uid = cr.uid;
		p->pid = cr.pid;
		p->allowed = uid_allowed(api, cr.uid);
	}
	if (!p->allowed) {
		if (p->known)
			pvm_warn("api: refused a connection from uid %u (pid %d): uid not allowed",
			         (unsigned)p->uid, (int)p->pid);
		else
			pvm_warn("api: refused a connection whose peer credentials are unknown");
		pvm_metrics_inc(api->metrics, "pvm_api_peers_refused_total", NULL, 1);
	}
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	struct request *r = *req_cls;
	if (!r)
		return;
	api_submission_free(r->sub);
	api_upload_free(r);
	free(r->body);
	free(r);
	*req_cls = NULL;
}

static bool header_is_json(struct MHD_Connection *conn)
{
	const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
	if (!ct)
		return false;
	while (*ct == ' ')
		ct++;
	size_t l = strlen("application/json");
	return strncasecmp(ct, "application/json", l) == 0 &&
	       (ct[l] == 0 || ct[l] == ';' || ct[l] == ' ');
}

/* Is method one of the comma-separated tokens of allow? */
static bool method_allowed(const char *allow, const char *method)
{
	size_t ml = strlen(method);
	for (const char *p = allow; *p;) {
		while (*p == ' ' || *p == ',')
			p++;
		size_t l = strcspn(p, ", ");
		if (l == ml && strncmp(p, method, l) == 0)
			return true;
		p += l;
	}
	return false;
}

/* First call of a request: its headers are in. Answers now what needs no body. */
static enum MHD_Result begin(struct request *r, const char *url)
{
	struct pvm_api *api = r->api;
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	r->peer = ci ? ci->socket_context : NULL;
	r->route = api_route(r, url);
	if (!r->peer || !r->peer->allowed) {
		if (r->peer && r->peer->known)
			return api_reply_error(r, MHD_HTTP_FORBIDDEN, "forbidden", NULL, NULL,
			                       "uid %u may not use this API",
			                       (unsigned)r->peer->uid);
		return api_reply_error(r, MHD_HTTP_FORBIDDEN, "forbidden", NULL, NULL,
		                       "peer credentials unavailable");
	}
	if (r->route == R_NONE)
		return api_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, NULL,
		                       "no such endpoint: %s %.200s", r->method, url);
	const char *allow = api_route_allow(r->route);
	bool ok = r->is_get ? strstr(allow, "GET") != NULL : method_allowed(allow, r->method);
	if (!ok)
		return api_reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", NULL,
		                       NULL, "%s is not allowed on %s (allowed: %s)", r->method,
		                       api_route_endpoint(r->route), allow);
	if (api_upload_route(r))
		return api_upload_begin(r); /* streamed, with its own limits */
	const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
	if (cl) {
		char *end;
		errno = 0;
		unsigned long long n = strtoull(cl, &end, 10);
		if (errno || *end || n > atomic_load(&api->max_body)) {
			/* The body is not read: the connection closes after the answer. */
			json_t *err = json_pack("{s:{s:s,s:s}}", "error", "code", "too_large",
			                        "message", "request body exceeds the limit");
			json_object_set_new(json_object_get(err, "error"), "limit",
			                    json_integer((json_int_t)atomic_load(&api->max_body)));
			return api_reply_json(r, MHD_HTTP_CONTENT_TOO_LARGE, err, true);
		}
		if (n > 0 && !header_is_json(r->conn))
			return api_reply_json(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
			                      json_pack("{s:{s:s,s:s}}", "error", "code",
			                                "unsupported_media_type", "message",
			                                "request bodies must be application/json"),
			                      true);
	}
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
	(void)version;
	struct pvm_api *api = cls;
	struct request *r = *req_cls;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		*req_cls = r;
		r->api = api;
		r->conn = conn;
		r->start_ns = pvm_mono_ns();
		snprintf(r->method, sizeof(r->method), "%s", method);
		r->is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
		return begin(r, url);
	}
	if (r->answered)
		return MHD_YES;
	if (*upload_data_size && r->up) {
		api_upload_data(r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (r->too_large)
			return MHD_YES;
		if (r->len + n > atomic_load(&api->max_body)) {
			r->too_large = true; /* the rest is read and dropped */
			free(r->body);
			r->body = NULL;
			r->len = r->cap = 0;
			return MHD_YES;
		}
		if (r->len + n + 1 > r->cap) {
			size_t ncap = r->cap ? r->cap : 1024;
			while (ncap < r->len + n + 1)
				ncap *= 2;
			char *b = realloc(r->body, ncap);
			if (!b)
				return MHD_NO;
			r->body = b;
			r->cap = ncap;
		}
		memcpy(r->body + r->len, upload_data, n);
		r->len += n;
		r->body[r->len] = 0;
		return MHD_YES;
	}
	if (r->too_large) {
		json_t *err = json_pack("{s:{s:s,s:s}}", "error", "code", "too_large", "message",
		                        "request body exceeds the limit");
		json_object_set_new(json_object_get(err, "error"), "limit",
		                    json_integer((json_int_t)atomic_load(&api->max_body)));
		return api_reply_json(r, MHD_HTTP_CONTENT_TOO_LARGE, err, false);
	}
	if (r->len > 0 && !header_is_json(conn))
		return api_reply_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
		                       NULL, NULL, "request bodies must be application/json");
	return api_dispatch(r);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t l = strlen(msg);
	while (l && msg[l - 1] == '\n')
		msg[--l] = 0;
	pvm_warn("api: libmicrohttpd: %s", msg);
}

/* Collector: the journal's depth per state and its size, read before each /metrics. */
static void collect_journal(struct pvm_metrics *m, void *arg)
{
	struct pvm_api *api = arg;
	struct pvm_queue_stats st;
	if (pvm_queue_stats(api->o.queue, &st) != 0)
		return;
	for (int s = 0; s < PVM_OP_STATE_COUNT; s++) {
		char labels[48];
		snprintf(labels, sizeof(labels), "state=\"%s\"", pvm_op_state_name(s));
		pvm_metrics_set(m, "pvm_queue_operations", labels, (double)st.by_state[s]);
	}
	pvm_metrics_set(m, "pvm_queue_quarantined", NULL, (double)st.quarantined);
	pvm_metrics_set(m, "pvm_queue_map_used_bytes", NULL, (double)st.map_used);
	pvm_metrics_set(m, "pvm_queue_map_size_bytes", NULL, (double)st.map_size);
	pvm_metrics_set(m, "pvm_queue_map_size_max_bytes", NULL, (double)st.map_size_max);
}

static void describe_metrics(struct pvm_metrics *m)
{
	static const struct {
		const char *name;
		enum pvm_metric_kind kind;
		const char *help;
	} d[] = {
	        {"pvm_api_requests_total", PVM_METRIC_COUNTER,
	         "API requests answered, by endpoint, method and status."},
	        {"pvm_api_request_duration_seconds", PVM_METRIC_HISTOGRAM,
	         "API request latency (long-polls include their wait)."},
	        {"pvm_api_long_polls", PVM_METRIC_GAUGE, "Long-polls suspended now."},
	        {"pvm_api_peers_refused_total", PVM_METRIC_COUNTER,
	         "Connections refused by the peer credential check."},
	        {"pvm_queue_operations", PVM_METRIC_GAUGE, "Operations in the journal, by state."},
	        {"pvm_queue_quarantined", PVM_METRIC_GAUGE, "Journal records quarantined."},
	        {"pvm_queue_map_used_bytes", PVM_METRIC_GAUGE, "Journal map bytes in use."},
	        {"pvm_queue_map_size_bytes", PVM_METRIC_GAUGE, "Journal map size now."},
	        {"pvm_queue_map_size_max_bytes", PVM_METRIC_GAUGE,
	         "Journal map size it may grow to."},
	};
	for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++)
		pvm_metrics_describe(m, d[i].name, d[i].kind, d[i].help);
	pvm_metrics_set(m, "pvm_api_long_polls", NULL, 0);
	pvm_metrics_inc(m, "pvm_api_peers_refused_total", NULL, 0);
}

/* ---- start and stop ---- */

static int make_socket(struct pvm_api *api)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(api->socket_path) >= sizeof(sa.sun_path)) {
		pvm_error("api: socket path too long: %s", api->socket_path);
		return PVM_EINVAL;
	}
	strcpy(sa.sun_path, api->socket_path);
	struct stat st;
	if (lstat(api->socket_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			pvm_error("api: %s exists and is not a socket: refusing to replace it",
			          api->socket_path);
			return PVM_EEXIST;
		}
		if (unlink(api->socket_path) != 0 && errno != ENOENT) {
			int e = errno;
			pvm_error("api: unlink stale socket %s: %s", api->socket_path, strerror(e));
			return -e;
		}
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* Created 0660 from the start: no window in which others may connect. */
	mode_t old = umask(0117);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	umask(old);
	if (rc != 0) {
		pvm_error("api: bind %s: %s", api->socket_path, strerror(e));
		close(fd);
		return -e;
	}
	if (chmod(api->socket_path, 0660) != 0 || listen(fd, 128) != 0 ||
	    stat(api->socket_path, &st) != 0) {
		e = errno;
		pvm_error("api: socket %s: %s", api->socket_path, strerror(e));
		close(fd);
		unlink(api->socket_path);
		return -e;
	}
	api->sock_dev = st.st_dev;
	api->sock_ino = st.st_ino;
	api->listen_fd = fd;
	return 0;
}

/* Thread ids of this process, into ids (at most max). */
static size_t list_tasks(pid_t *ids, size_t max)
{
	size_t n = 0;
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d)) && n < max)
		if (de->d_name[0] != '.')
			ids[n++] = (pid_t)atoi(de->d_name);
	closedir(d);
	return n;
}

static bool read_comm(pid_t tid, char *comm, size_t n)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	bool ok = fgets(comm, (int)n, f) != NULL;
	fclose(f);
	return ok;
}

/* Threads started since `before` (at most max), into out. */
static size_t new_tasks(const pid_t *before, size_t nbefore, pid_t *out, size_t max)
{
	pid_t now[1024];
	size_t n = list_tasks(now, 1024), k = 0;
	for (size_t i = 0; i < n && k < max; i++) {
		bool old = false;
		for (size_t j = 0; j < nbefore && !old; j++)
			old = before[j] == now[i];
		if (!old)
			out[k++] = now[i];
	}
	return k;
}

/* Renames the threads libmicrohttpd started (new since `before`) to "pvm-api-N", through
 * /proc: libmicrohttpd offers no naming hook. It names its threads "MHD-worker" itself
 * once they run, so first wait (bounded) for that, or our name would be overwritten. */
static void rename_mhd_threads(const pid_t *before, size_t nbefore, int expect)
{
	pid_t t[MAX_THREADS * 2];
	size_t n = 0;
	char comm[32];
	int64_t end = pvm_mono_ns() + 500 * 1000000LL;
	for (int i = 0; i < 250; i++) {
		n = new_tasks(before, nbefore, t, MAX_THREADS * 2);
		int named = 0;
		for (size_t j = 0; j < n; j++)
			if (read_comm(t[j], comm, sizeof(comm)) && strncmp(comm, "MHD", 3) == 0)
				named++;
		if (named >= expect || pvm_mono_ns() > end)
			break;
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	int seq = 0;
	for (size_t j = 0; j < n; j++) {
		char path[64];
		if (!read_comm(t[j], comm, sizeof(comm)) || strncmp(comm, "MHD", 3) != 0)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)t[j]);
		FILE *f = fopen(path, "w");
		if (!f)
			continue;
		fprintf(f, "pvm-api-%d", seq++);
		fclose(f);
	}
}

int pvm_api_start(const struct pvm_api_opts *opts, struct pvm_api **out)
{
	if (!opts || !opts->socket_path || !opts->socket_path[0] || !opts->queue)
		return PVM_EINVAL;
	int rc = PVM_ENOMEM;
	struct pvm_api *api = calloc(1, sizeof(*api));
	if (!api)
		return PVM_ENOMEM;
	api->o = *opts;
	api->listen_fd = -1;
	if (!api->o.max_body_bytes)
		api->o.max_body_bytes = DEFAULT_MAX_BODY;
	atomic_store(&api->max_body, api->o.max_body_bytes);
	if (api->o.max_wait_s <= 0)
		api->o.max_wait_s = DEFAULT_MAX_WAIT_S;
	if (api->o.threads <= 0)
		api->o.threads = DEFAULT_THREADS;
	if (api->o.threads > MAX_THREADS)
		api->o.threads = MAX_THREADS;
	if (api->o.connection_timeout_s <= 0)
		api->o.connection_timeout_s = DEFAULT_TIMEOUT_S;
	if (api->o.max_connections <= 0)
		api->o.max_connections = DEFAULT_MAX_CONN;
	if (!api->o.events_max)
		api->o.events_max = DEFAULT_EVENTS_MAX;
	pthread_mutex_init(&api->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&api->cv, &ca);
	pthread_cond_init(&api->sub_cv, NULL);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&api->sub_mu, NULL);
	pthread_mutex_init(&api->busy_mu, NULL);
	api->nbusy = 128;
	api->busy = calloc(api->nbusy, sizeof(*api->busy));
	if (!api->busy)
		goto fail;

	api->socket_path = strdup(opts->socket_path);
	if (!api->socket_path)
		goto fail;
	if (opts->n_allowed_uids) {
		api->allowed = calloc(opts->n_allowed_uids, sizeof(uid_t));
		if (!api->allowed)
			goto fail;
		memcpy(api->allowed, opts->allowed_uids, opts->n_allowed_uids * sizeof(uid_t));
		api->nallowed = opts->n_allowed_uids;
	}
	api->metrics = opts->metrics;
	if (!api->metrics) {
		if (pvm_metrics_create(&api->metrics))
			goto fail;
		api->own_metrics = true;
	}
	describe_metrics(api->metrics);
	if (pvm_metrics_add_collector(api->metrics, collect_journal, api))
		goto fail;
	api->collecting = true;

	api_images_cleanup(api);
	rc = make_socket(api);
	if (rc)
		goto fail;

	if (pthread_create(&api->waker, NULL, waker_main, api) != 0) {
		rc = PVM_ENOMEM;
		goto fail;
	}
	api->waker_started = true;
	/* Named here too: the name is visible as soon as start returns. */
	pthread_setname_np(api->waker, "pvm-api-waker");
	rc = api_submitter_start(api);
	if (rc)
		goto fail;

	pid_t before[1024];
	size_t nbefore = list_tasks(before, 1024);
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	                 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_ERROR_LOG;
	api->mhd = MHD_start_daemon(
	        flags, 0, NULL, NULL, on_request, api, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, api,
	        MHD_OPTION_LISTEN_SOCKET, api->listen_fd, MHD_OPTION_THREAD_POOL_SIZE,
	        (unsigned)api->o.threads, MHD_OPTION_CONNECTION_TIMEOUT,
	        (unsigned)api->o.connection_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
	        (unsigned)api->o.max_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	        (size_t)CONN_MEMORY_LIMIT, MHD_OPTION_NOTIFY_CONNECTION, on_connection, api,
	        MHD_OPTION_NOTIFY_COMPLETED, on_completed, api, MHD_OPTION_END);
	if (!api->mhd) {
		pvm_error("api: libmicrohttpd did not start on %s", api->socket_path);
		rc = PVM_EIO;
		goto fail;
	}
	rename_mhd_threads(before, nbefore, api->o.threads);
	if (api->o.events &&
	    pvm_eventlog_subscribe(api->o.events, on_event, api, &api->event_handle)) {
		rc = PVM_ENOMEM;
		goto fail;
	}
	pvm_info("api: listening on %s (%d threads, body limit %zu, wait cap %d s)",
	         api->socket_path, api->o.threads, api->o.max_body_bytes, api->o.max_wait_s);
	*out = api;
	return 0;
fail:
	pvm_api_stop(api);
	return rc;
}

void pvm_api_stop(struct pvm_api *api)
{
	if (!api)
		return;
	if (api->event_handle)
		pvm_eventlog_unsubscribe(api->o.events, api->event_handle);
	pthread_mutex_lock(&api->mu);
	api->stopping = true;
	pthread_cond_broadcast(&api->cv);
	pthread_mutex_unlock(&api->mu);
	if (api->waker_started)
		pthread_join(api->waker, NULL);
	api_submitter_stop(api);
	if (api->mhd) {
		/* Take the listening socket back (quiesce), so it is closed once, here. */
		MHD_socket fd = MHD_quiesce_daemon(api->mhd);
		if (fd == MHD_INVALID_SOCKET)
			api->listen_fd = -1; /* MHD keeps and closes it */
		MHD_stop_daemon(api->mhd);
	}
	if (api->listen_fd >= 0)
		close(api->listen_fd);
	if (api->socket_path) {
		struct stat st;
		if (api->sock_ino && lstat(api->socket_path, &st) == 0 &&
		    st.st_ino == api->sock_ino && st.st_dev == api->sock_dev)
			unlink(api->socket_path);
	}
	if (api->collecting)
		pvm_metrics_remove_collector(api->metrics, collect_journal, api);
	if (api->own_metrics)
		pvm_metrics_destroy(api->metrics);
	pthread_cond_destroy(&api->cv);
	pthread_mutex_destroy(&api->mu);
	pthread_cond_destroy(&api->sub_cv);
	pthread_mutex_destroy(&api->sub_mu);
	pthread_mutex_destroy(&api->busy_mu);
	free(api->busy);
	free(api->allowed);
	free(api->socket_path);
	free(api);
}

int pvm_api_thread_count(const struct pvm_api *api)
{
	return api ? api->o.threads + 2 : 0;
}

void pvm_api_set_max_body(struct pvm_api *api, size_t bytes)
{
	if (api && bytes)
		atomic_store(&api->max_body, bytes);
}
