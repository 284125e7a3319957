/* client.c: transport and session of the PowerVM REST client (pvm/client.h).
 *
 * DESIGN
 * - libcurl: global init once (pvm_client_global_init, before threads). Easy handles live in
 *   a pool: a thread takes a free handle for one request and gives it back, so a handle is
 *   used by one thread at a time and keeps its connections alive between requests. Every
 *   request resets the handle and sets NOSIGNAL, an error buffer, connect and total
 *   timeouts, TCP keep-alive, TLS verification (or the explicit insecure mode), http/https
 *   only, no redirects.
 * - Session: one token for all threads, guarded by c->lock. A 401 calls relogon() with the
 *   generation of the token the request used: if the generation moved on, another thread
 *   already logged on again and the request just retries; otherwise the first thread sets
 *   c->relogging and logs on WITHOUT the lock held (network I/O), the others wait on
 *   c->cond. A refused logon sets relogon_disabled for good.
 * - Errors are mapped here once: pvm_client_http_code() for HTTP statuses, curl_code() for
 *   transport failures, pvm_client_transient() for the verdict.
 *
 * Lock order: c->lock, then c->pool_lock (never both in practice); neither is held across
 * network I/O.
 */
#include "internal.h"

#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/util.h"

#include <curl/curl.h>
#include <libxml/parser.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TOKEN_MAX 1024

struct pvm_client {
	/* Fixed after create. */
	char *endpoint; /* without trailing slash */
	char *user, *password, *token_dir, *ca_file, *audit;
	bool file_logon, insecure;
	uid_t token_uid;
	int connect_timeout_ms, timeout_ms, connect_retry_ms, connect_retry_interval_ms;
	size_t max_response;
	int etag_retries, etag_delay_ms;

	/* lock guards the session below. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char token[TOKEN_MAX];
	uint64_t gen;   /* bumped by every successful logon */
	bool relogging; /* one thread is logging on */
	bool relogon_disabled;

	/* pool_lock guards the free handles. */
	pthread_mutex_t pool_lock;
	CURL **pool;
	size_t npool, cappool;

	atomic_uint_fast64_t n_logons, n_requests, n_412, n_401;
	atomic_bool novalink;
};

/* ---------------------------------------------------------------- errors ----------- */

bool pvm_client_transient(int code)
{
	switch (code) {
	case -EAGAIN:
	case -EBUSY:
	case -ESTALE:
	case -ECONNREFUSED:
	case -ECONNRESET:
	case -EHOSTUNREACH:
	case PVM_ETIMEDOUT:
		return true;
	default:
		return false;
	}
}

static bool vios_busy(const char *m)
{
	return m && (strstr(m, "HSCL3205") || strstr(m, "VIOS0014") ||
	             strstr(m, "is busy processing some other request"));
}

int pvm_client_http_code(int status, const char *message)
{
	if (status < 400)
		return 0;
	if (status >= 500)
		return vios_busy(message) ? -EBUSY : -EAGAIN;
	switch (status) {
	case 400:
		return PVM_EINVAL;
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return PVM_ENOTFOUND;
	case 412:
		return -ESTALE;
	case 413:
		return PVM_ETOOBIG;
	default:
		return -EPROTO;
	}
}

static int curl_code(CURLcode cc)
{
	switch (cc) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return PVM_ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		return PVM_ETOOBIG;
	case CURLE_ABORTED_BY_CALLBACK:
		return PVM_ECLOSED;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
		return PVM_ECRYPTO;
	case CURLE_OUT_OF_MEMORY:
		return PVM_ENOMEM;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return PVM_EINVAL;
	default:
		return PVM_EIO;
	}
}

/* ---------------------------------------------------------------- global ----------- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_rc;

static void global_init_once(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : PVM_EIO;
	xmlInitParser();
}

int pvm_client_global_init(void)
{
	pthread_once(&global_once, global_init_once);
	return global_rc;
}

void pvm_client_global_cleanup(void)
{
	curl_global_cleanup();
}

/* ---------------------------------------------------------------- helpers ---------- */

static _Thread_local uint64_t rng_state;

static uint64_t rnd(void)
{
	if (!rng_state)
		rng_state = (uint64_t)pvm_mono_ns() ^ ((uint64_t)(uintptr_t)&rng_state << 16) ^ 1;
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static void sleep_ms(int64_t ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

void pvm_resp_fini(struct pvm_resp *r)
{
	if (!r)
		return;
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* ---------------------------------------------------------------- create ----------- */

int pvm_client_create(const struct pvm_client_opts *o, struct pvm_client **out,
                      struct pvm_rest_error *err)
{
	*out = NULL;
	if (!o || !o->endpoint ||
	    (strncmp(o->endpoint, "https://", 8) && strncmp(o->endpoint, "http://", 7)))
		return perr(err, PVM_EINVAL, 0, "endpoint must be http(s)://host[:port]");
	if (!o->user || !*o->user)
		return perr(err, PVM_EINVAL, 0, "user is required");
	if (!o->file_logon && !o->password)
		return perr(err, PVM_EINVAL, 0, "password is required (or file_logon)");
	if (o->file_logon && (!o->token_dir || o->token_dir[0] != '/'))
		return perr(err, PVM_EINVAL, 0, "file_logon needs an absolute token_dir");
	int rc = pvm_client_global_init();
	if (rc)
		return perr(err, rc, 0, "curl_global_init failed");
	struct pvm_client *c = calloc(1, sizeof(*c));
	if (!c)
		return perr(err, PVM_ENOMEM, 0, "out of memory");
	c->endpoint = strdup(o->endpoint);
	c->user = strdup(o->user);
	c->password = dup_or_null(o->password);
	c->token_dir = dup_or_null(o->token_dir);
	c->ca_file = dup_or_null(o->ca_file);
	c->audit = strdup(o->audit_memento ? o->audit_memento : "powervmd");
	if (!c->endpoint || !c->user || !c->audit || (o->password && !c->password) ||
	    (o->token_dir && !c->token_dir) || (o->ca_file && !c->ca_file)) {
		pvm_client_destroy(c);
		return perr(err, PVM_ENOMEM, 0, "out of memory");
	}
	size_t l = strlen(c->endpoint);
	while (l && c->endpoint[l - 1] == '/')
		c->endpoint[--l] = '\0';
	c->file_logon = o->file_logon;
	c->insecure = o->tls_insecure;
	c->token_uid = o->token_uid > 0 ? (uid_t)o->token_uid : geteuid();
	c->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000;
	c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 120000;
	c->connect_retry_ms =
	        o->connect_retry_ms ? (o->connect_retry_ms < 0 ? 0 : o->connect_retry_ms) : 300000;
	c->connect_retry_interval_ms =
	        o->connect_retry_interval_ms > 0 ? o->connect_retry_interval_ms : 2000;
	c->max_response = o->max_response_bytes ? o->max_response_bytes : (size_t)64 << 20;
	c->etag_retries = o->etag_retries > 0 ? o->etag_retries : 10;
	c->etag_delay_ms = o->etag_retry_delay_ms > 0 ? o->etag_retry_delay_ms : 250;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	pthread_mutex_init(&c->pool_lock, NULL);
	if (c->insecure)
		pvm_warn("powervm client: TLS verification of %s is DISABLED (tls_insecure): "
		         "the connection can be intercepted",
		         c->endpoint);
	else if (!strncmp(c->endpoint, "http://", 7))
		pvm_info("powervm client: %s is plain HTTP, not encrypted", c->endpoint);
	*out = c;
	return 0;
}

void pvm_client_destroy(struct pvm_client *c)
{
	if (!c)
		return;
	if (c->token[0])
		pvm_client_logoff(c, NULL);
	for (size_t i = 0; i < c->npool; i++)
		curl_easy_cleanup(c->pool[i]);
	free(c->pool);
	if (c->password) {
		explicit_bzero(c->password, strlen(c->password));
		free(c->password);
	}
	explicit_bzero(c->token, sizeof(c->token));
	free(c->endpoint);
	free(c->user);
	free(c->token_dir);
	free(c->ca_file);
	free(c->audit);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->pool_lock);
	free(c);
}

void pvm_client_stats(struct pvm_client *c, struct pvm_client_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->logons = atomic_load(&c->n_logons);
	out->requests = atomic_load(&c->n_requests);
	out->retries_412 = atomic_load(&c->n_412);
	out->retries_401 = atomic_load(&c->n_401);
	out->novalink = atomic_load(&c->novalink);
	pthread_mutex_lock(&c->lock);
	out->relogon_disabled = c->relogon_disabled;
	pthread_mutex_unlock(&c->lock);
}

/* ---------------------------------------------------------------- handles ---------- */

static CURL *handle_get(struct pvm_client *c)
{
	CURL *h = NULL;
	pthread_mutex_lock(&c->pool_lock);
	if (c->npool)
		h = c->pool[--c->npool];
	pthread_mutex_unlock(&c->pool_lock);
	return h ? h : curl_easy_init();
}

static void handle_put(struct pvm_client *c, CURL *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&c->pool_lock);
	if (c->npool == c->cappool) {
		size_t cap = c->cappool ? c->cappool * 2 : 8;
		CURL **p = realloc(c->pool, cap * sizeof(*p));
		if (!p) {
			pthread_mutex_unlock(&c->pool_lock);
			curl_easy_cleanup(h);
			return;
		}
		c->pool = p;
		c->cappool = cap;
	}
	c->pool[c->npool++] = h;
	pthread_mutex_unlock(&c->pool_lock);
}

/* ---------------------------------------------------------------- transfer --------- */

/* A streamed request body (pvm_req.file). */
struct upload {
	const struct pvm_body_file *f;
	int64_t sent;
	bool failed;
};

static size_t on_read(char *p, size_t sz, size_t n, void *ud)
{
	struct upload *u = ud;
	int64_t left = u->f->size - u->sent;
	size_t want = sz * n;
	if (left <= 0)
		return 0;
	if ((int64_t)want > left)
		want = (size_t)left;
	ssize_t r;
	do
		r = pread(u->f->fd, p, want, (off_t)(u->f->offset + u->sent));
	while (r < 0 && errno == EINTR);
	if (r <= 0) {
		/* a short file is an error, not a short body */
		u->failed = true;
		return CURL_READFUNC_ABORT;
	}
	u->sent += r;
	return (size_t)r;
}

struct xfer {
	struct pvm_buf body;
	size_t max;
	bool too_big;
	struct pvm_resp *resp;
	bool novalink;
};

static size_t on_write(char *p, size_t sz, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = sz * n;
	if (x->body.len + len > x->max) {
		x->too_big = true;
		return 0;
	}
	pvm_buf_addn(&x->body, p, len);
	return x->body.oom ? 0 : len;
}

static void header_value(const char *p, size_t len, size_t skip, char *out, size_t n)
{
	p += skip;
	len -= skip;
	while (len && (*p == ' ' || *p == '\t')) {
		p++;
		len--;
	}
	while (len && (p[len - 1] == '\r' || p[len - 1] == '\n' || p[len - 1] == ' '))
		len--;
	if (len >= 2 && p[0] == '"' && p[len - 1] == '"') {
		p++;
		len -= 2;
	}
	if (len >= n)
		len = n - 1;
	memcpy(out, p, len);
	out[len] = '\0';
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = sz * n;
	if (len > 5 && !strncasecmp(p, "ETag:", 5))
		header_value(p, len, 5, x->resp->etag, sizeof(x->resp->etag));
	else if (len > 13 && !strncasecmp(p, "Content-Type:", 13))
		header_value(p, len, 13, x->resp->content_type, sizeof(x->resp->content_type));
	else if (len > 9 && !strncasecmp(p, "X-MC-Type:", 10)) {
		char v[16];
		header_value(p, len, 10, v, sizeof(v));
		x->novalink = !strcasecmp(v, "PVM");
	} else if (len >= 5 && !strncmp(p, "HTTP/", 5)) {
		/* a new response (after 100 Continue): forget earlier headers */
		x->resp->etag[0] = '\0';
		x->resp->content_type[0] = '\0';
	}
	return len;
}

/* Where listener requests can be interrupted: a multi handle and a stop flag. */
struct waker {
	CURLM *multi;
	atomic_bool *stop;
};

/* Builds the URL of rq into u. An absolute URL keeps only its path: the daemon talks to
 * its configured endpoint only. */
static int build_url(struct pvm_client *c, const struct pvm_req *rq, struct pvm_buf *u)
{
	const char *p = rq->path;
	if (!p || !*p)
		return PVM_EINVAL;
	if (!strncmp(p, "https://", 8) || !strncmp(p, "http://", 7)) {
		const char *s = strstr(p, "://") + 3;
		p = strchr(s, '/');
		if (!p)
			return PVM_EINVAL;
	}
	pvm_buf_add(u, c->endpoint);
	if (p[0] != '/')
		pvm_buf_add(u, "/rest/api/");
	pvm_buf_add(u, p);
	if (rq->query && *rq->query)
		pvm_buf_printf(u, "%c%s", strchr(p, '?') ? '&' : '?', rq->query);
	for (const char *q = u->p; q && *q; q++)
		if ((unsigned char)*q <= ' ')
			return PVM_EINVAL;
	return u->oom ? PVM_ENOMEM : 0;
}

static bool header_safe(const char *v)
{
	for (; *v; v++)
		if ((unsigned char)*v < ' ' || *v == 0x7f)
			return false;
	return true;
}

static const char *method_name(enum pvm_method m)
{
	static const char *const n[] = {"GET", "PUT", "POST", "DELETE"};
	return (unsigned)m <= PVM_DELETE ? n[m] : "GET";
}

static int perform_multi(struct waker *w, CURL *h, CURLcode *cc)
{
	if (curl_multi_add_handle(w->multi, h) != CURLM_OK)
		return PVM_ENOMEM;
	int running = 1;
	*cc = CURLE_OK;
	int rc = 0;
	for (;;) {
		if (atomic_load(w->stop)) {
			rc = PVM_ECLOSED;
			break;
		}
		if (curl_multi_perform(w->multi, &running) != CURLM_OK) {
			rc = PVM_EIO;
			break;
		}
		if (!running) {
			int left;
			CURLMsg *m;
			while ((m = curl_multi_info_read(w->multi, &left)))
				if (m->msg == CURLMSG_DONE)
					*cc = m->data.result;
			break;
		}
		curl_multi_poll(w->multi, NULL, 0, 1000, NULL);
	}
	curl_multi_remove_handle(w->multi, h);
	return rc;
}

/* One HTTP exchange. token "" sends no session header. Returns 0 for 2xx, else the
 * mapped code; resp holds status and body in every case. */
static int do_http(struct pvm_client *c, CURL *h, const struct pvm_req *rq, const char *token,
                   struct pvm_resp *resp, struct pvm_rest_error *err, struct waker *w)
{
	memset(resp, 0, sizeof(*resp));
	struct pvm_buf url;
	pvm_buf_init(&url);
	int rc = build_url(c, rq, &url);
	if (rc) {
		pvm_buf_fini(&url);
		return perr(err, rc, 0, "bad request path");
	}
	if (err)
		snprintf(err->uri, sizeof(err->uri), "%s", rq->path);
	const char *audit = rq->request_id && *rq->request_id ? rq->request_id : c->audit;
	if (!header_safe(audit) || (rq->if_match && !header_safe(rq->if_match)) ||
	    (rq->content_type && !header_safe(rq->content_type)) || !header_safe(token)) {
		pvm_buf_fini(&url);
		return perr(err, PVM_EINVAL, 0, "control character in a header value");
	}

	struct curl_slist *hdrs = NULL;
	char line[TOKEN_MAX + 64];
	snprintf(line, sizeof(line), "Accept: %s",
	         rq->accept ? rq->accept : "application/atom+xml");
	hdrs = curl_slist_append(hdrs, line);
	if (*token) {
		snprintf(line, sizeof(line), "X-API-Session: %s", token);
		hdrs = curl_slist_append(hdrs, line);
	}
	snprintf(line, sizeof(line), "X-Audit-Memento: %.256s", audit);
	hdrs = curl_slist_append(hdrs, line);
	if (rq->content_type) {
		snprintf(line, sizeof(line), "Content-Type: %.200s", rq->content_type);
		hdrs = curl_slist_append(hdrs, line);
	}
	if (rq->if_match) {
		snprintf(line, sizeof(line), "If-Match: %.100s", rq->if_match);
		hdrs = curl_slist_append(hdrs, line);
	}
	hdrs = curl_slist_append(hdrs, "Expect:");

	char ebuf[CURL_ERROR_SIZE] = "";
	struct xfer x = {.max = c->max_response, .resp = resp};
	struct upload up = {.f = rq->file};
	pvm_buf_init(&x.body);
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(h, CURLOPT_URL, url.p);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
	                 (long)(rq->timeout_ms > 0 ? rq->timeout_ms : c->timeout_ms));
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, c->insecure ? 0L : 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, c->insecure ? 0L : 2L);
	if (c->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	switch (rq->method) {
	case PVM_GET:
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
		break;
	case PVM_PUT:
		if (rq->file) {
			long stall_s = (rq->timeout_ms > 0 ? rq->timeout_ms : c->timeout_ms) / 1000;
			curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
			curl_easy_setopt(h, CURLOPT_READDATA, &up);
			curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->file->size);
			curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 0L);
			curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
			curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, stall_s > 0 ? stall_s : 1L);
			break;
		}
		/* fall through */
	case PVM_POST:
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method_name(rq->method));
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
		                 (curl_off_t)(rq->body ? rq->body_len : 0));
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
		break;
	case PVM_DELETE:
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
		break;
	}
	atomic_fetch_add(&c->n_requests, 1);
	CURLcode cc = CURLE_OK;
	int mrc = w ? perform_multi(w, h, &cc) : 0;
	if (!w)
		cc = curl_easy_perform(h);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	pvm_buf_fini(&url);
	resp->status = (int)status;
	resp->len = x.body.len;
	resp->body = pvm_buf_take(&x.body);
	if (!resp->body) {
		resp->len = 0;
		return perr(err, PVM_ENOMEM, resp->status, "out of memory reading the response");
	}
	if (x.novalink)
		atomic_store(&c->novalink, true);
	if (mrc)
		return perr(err, mrc, 0, "%s %s: %s", method_name(rq->method), rq->path,
		            mrc == PVM_ECLOSED ? "stopped" : "transfer failed");
	if (x.too_big)
		return perr(err, PVM_ETOOBIG, resp->status, "%s %s: response larger than %zu bytes",
		            method_name(rq->method), rq->path, c->max_response);
	if (up.failed)
		return perr(err, PVM_EIO, 0, "%s %s: cannot read the body's file: %s",
		            method_name(rq->method), rq->path, "short read");
	if (cc != CURLE_OK)
		return perr(err, curl_code(cc), 0, "%s %s: %s", method_name(rq->method), rq->path,
		            *ebuf ? ebuf : curl_easy_strerror(cc));
	if (status >= 200 && status < 300) {
		if (err)
			err->http_status = (int)status;
		return 0;
	}
	/* An error answer: the server's HttpErrorResponse gives reason and message. */
	struct pvm_rest_error tmp;
	memset(&tmp, 0, sizeof(tmp));
	const char *msg = NULL;
	if (resp->len && !pvm_parse_http_error(resp->body, resp->len, &tmp))
		msg = tmp.message;
	rc = pvm_client_http_code((int)status, msg);
	if (err) {
		perr(err, rc, (int)status, "%s %s: HTTP %ld%s%s", method_name(rq->method), rq->path,
		     status, msg && *msg ? ": " : "", msg ? msg : "");
		snprintf(err->reason, sizeof(err->reason), "%s", tmp.reason);
	}
	return rc;
}

/* ---------------------------------------------------------------- session ---------- */

/* Opens the token file of a local logon safely: an absolute path inside token_dir, no
 * symlink, a regular file owned by the expected user and not writable by others. */
static int read_token_file(struct pvm_client *c, const char *path, char *tok, size_t n,
                           struct pvm_rest_error *err)
{
	if (path[0] != '/')
		return perr(err, PVM_EPERM, 0, "token file '%s' is not an absolute path", path);
	char dircopy[PATH_MAX], rdir[PATH_MAX], rallowed[PATH_MAX];
	if (pvm_strlcpy(dircopy, path, sizeof(dircopy)))
		return perr(err, PVM_EPERM, 0, "token file path too long");
	if (!realpath(dirname(dircopy), rdir) || !realpath(c->token_dir, rallowed))
		return perr(err, PVM_EPERM, 0, "token file '%s': directory not found", path);
	size_t al = strlen(rallowed);
	if (strncmp(rdir, rallowed, al) || (rdir[al] != '\0' && rdir[al] != '/' && al > 1))
		return perr(err, PVM_EPERM, 0,
		            "token file '%s' is outside the allowed directory %s", path,
		            c->token_dir);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return perr(err, PVM_EPERM, 0, "token file '%s': %s", path, strerror(errno));
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st))
		rc = perr(err, PVM_EPERM, 0, "token file '%s': %s", path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		rc = perr(err, PVM_EPERM, 0, "token file '%s' is not a regular file", path);
	else if (st.st_uid != c->token_uid)
		rc = perr(err, PVM_EPERM, 0, "token file '%s' is owned by uid %u, not %u", path,
		          (unsigned)st.st_uid, (unsigned)c->token_uid);
	else if (st.st_mode & (S_IWGRP | S_IWOTH))
		rc = perr(err, PVM_EPERM, 0, "token file '%s' is writable by others", path);
	if (!rc) {
		ssize_t k = read(fd, tok, n - 1);
		if (k <= 0)
			rc = perr(err, PVM_EPERM, 0, "token file '%s' is empty or unreadable",
			          path);
		else {
			while (k && (tok[k - 1] == '\n' || tok[k - 1] == '\r' || tok[k - 1] == ' '))
				k--;
			tok[k] = '\0';
			if (!k || !header_safe(tok))
				rc = perr(err, PVM_EPERM, 0, "token file '%s' holds no valid token",
				          path);
		}
	}
	close(fd);
	return rc;
}

/* One logon exchange; on success the token is in tok. */
static int logon_once(struct pvm_client *c, char *tok, size_t n, struct pvm_rest_error *err)
{
	char *body = pvm_build_logon(c->user, c->password, c->file_logon);
	if (!body)
		return perr(err, PVM_ENOMEM, 0, "out of memory");
	struct pvm_req rq = {
	        .method = PVM_PUT,
	        .path = "web/Logon",
	        .content_type = "application/vnd.ibm.powervm.web+xml; type=LogonRequest",
	        .accept = "application/vnd.ibm.powervm.web+xml; type=LogonResponse",
	        .body = body,
	        .body_len = strlen(body),
	};
	struct pvm_resp resp;
	CURL *h = handle_get(c);
	int rc = h ? do_http(c, h, &rq, "", &resp, err, NULL) : PVM_ENOMEM;
	handle_put(c, h);
	explicit_bzero(body, strlen(body));
	free(body);
	if (!h)
		return perr(err, rc, 0, "out of memory");
	if (!rc) {
		char file[PATH_MAX];
		rc = pvm_parse_logon(resp.body, resp.len, tok, n, file, sizeof(file), err);
		if (!rc && c->file_logon) {
			if (!*file)
				rc = perr(err, PVM_ECORRUPT, resp.status,
				          "LogonResponse: missing required element "
				          "X-API-SessionFile");
			else
				rc = read_token_file(c, file, tok, n, err);
		} else if (!rc && !*tok) {
			rc = perr(err, PVM_ECORRUPT, resp.status,
			          "LogonResponse: missing required element X-API-Session");
		}
	}
	pvm_resp_fini(&resp);
	return rc;
}

/* Logs on again unless another thread already did since generation seen. */
static int relogon(struct pvm_client *c, uint64_t seen, struct pvm_rest_error *err)
{
	pthread_mutex_lock(&c->lock);
	for (;;) {
		if (c->gen != seen && c->token[0]) {
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
		if (c->relogon_disabled) {
			pthread_mutex_unlock(&c->lock);
			pvm_error("powervm client: session lost and re-logon is disabled after a "
			          "refused logon for user %s: fix the credentials and restart",
			          c->user);
			return perr(err, -EACCES, 401,
			            "re-logon disabled after a refused logon (account protection)");
		}
		if (!c->relogging)
			break;
		pthread_cond_wait(&c->cond, &c->lock);
	}
	c->relogging = true;
	pthread_mutex_unlock(&c->lock);

	char tok[TOKEN_MAX];
	int rc = logon_once(c, tok, sizeof(tok), err);

	pthread_mutex_lock(&c->lock);
	c->relogging = false;
	if (!rc) {
		memcpy(c->token, tok, sizeof(tok));
		c->gen++;
		atomic_fetch_add(&c->n_logons, 1);
	} else if (rc == -EACCES) {
		c->relogon_disabled = true;
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	explicit_bzero(tok, sizeof(tok));
	if (rc == -EACCES)
		pvm_error("powervm client: logon of user %s REFUSED by %s (%s); no further logon "
		          "attempts will be made",
		          c->user, c->endpoint, err ? err->message : "");
	else if (!rc)
		pvm_info("powervm client: logged on to %s as %s", c->endpoint, c->user);
	return rc;
}

static uint64_t session_token(struct pvm_client *c, char *tok)
{
	pthread_mutex_lock(&c->lock);
	memcpy(tok, c->token, TOKEN_MAX);
	uint64_t g = c->gen;
	pthread_mutex_unlock(&c->lock);
	return g;
}

int pvm_client_logon(struct pvm_client *c, struct pvm_rest_error *err)
{
	int64_t end = pvm_mono_ns() + (int64_t)c->connect_retry_ms * 1000000;
	char tok[TOKEN_MAX];
	for (int attempt = 0;; attempt++) {
		uint64_t g = session_token(c, tok);
		int rc = relogon(c, g, err);
		if (!rc || !(rc == -ECONNREFUSED || rc == -ECONNRESET || rc == -EHOSTUNREACH ||
		             rc == PVM_ETIMEDOUT || rc == -EAGAIN))
			return rc;
		if (pvm_mono_ns() >= end)
			return rc;
		if (attempt == 0)
			pvm_warn("powervm client: %s not reachable yet (%s); retrying for up to %d "
			         "s",
			         c->endpoint, err ? err->message : "", c->connect_retry_ms / 1000);
		int64_t left = (end - pvm_mono_ns()) / 1000000;
		sleep_ms(left < c->connect_retry_interval_ms ? left : c->connect_retry_interval_ms);
	}
}

int pvm_client_logoff(struct pvm_client *c, struct pvm_rest_error *err)
{
	char tok[TOKEN_MAX];
	session_token(c, tok);
	if (!tok[0])
		return 0;
	struct pvm_req rq = {.method = PVM_DELETE,
	                     .path = "web/Logon",
	                     .accept = "application/vnd.ibm.powervm.web+xml"};
	struct pvm_resp resp;
	CURL *h = handle_get(c);
	int rc = h ? do_http(c, h, &rq, tok, &resp, err, NULL) : PVM_ENOMEM;
	handle_put(c, h);
	if (h)
		pvm_resp_fini(&resp);
	pthread_mutex_lock(&c->lock);
	if (!strcmp(c->token, tok))
		explicit_bzero(c->token, sizeof(c->token));
	pthread_mutex_unlock(&c->lock);
	explicit_bzero(tok, sizeof(tok));
	return rc == PVM_ENOTFOUND || rc == -EACCES ? 0 : rc;
}

/* ---------------------------------------------------------------- requests --------- */

static int request_ex(struct pvm_client *c, const struct pvm_req *rq, struct pvm_resp *resp,
                      struct pvm_rest_error *err, CURL *own, struct waker *w)
{
	if (err)
		memset(err, 0, sizeof(*err));
	memset(resp, 0, sizeof(*resp));
	char tok[TOKEN_MAX];
	uint64_t g = session_token(c, tok);
	if (!tok[0]) {
		int rc = relogon(c, g, err);
		if (rc)
			return rc;
		g = session_token(c, tok);
	}
	CURL *h = own ? own : handle_get(c);
	if (!h)
		return perr(err, PVM_ENOMEM, 0, "out of memory (curl handle)");
	int rc = do_http(c, h, rq, tok, resp, err, w);
	if (resp->status == 401) {
		atomic_fetch_add(&c->n_401, 1);
		pvm_resp_fini(resp);
		rc = relogon(c, g, err);
		if (!rc) {
			session_token(c, tok);
			rc = do_http(c, h, rq, tok, resp, err, w);
			/* The new session expired too (other threads used it up, or the
			 * server drops sessions quickly): transient, the caller retries later;
			 * a logon that is refused is the permanent case (relogon above). */
			if (resp->status == 401)
				rc = perr(err, -EAGAIN, 401,
				          "%s %s: 401 again after a successful re-logon (the new "
				          "session expired too)",
				          method_name(rq->method), rq->path);
		}
	}
	explicit_bzero(tok, sizeof(tok));
	if (!own)
		handle_put(c, h);
	return rc;
}

int client_request(struct pvm_client *c, const struct pvm_req *rq, struct pvm_resp *resp,
                   struct pvm_rest_error *err)
{
	return request_ex(c, rq, resp, err, NULL, NULL);
}

int pvm_client_request(struct pvm_client *c, const struct pvm_req *rq, struct pvm_resp *resp,
                       struct pvm_rest_error *err)
{
	return request_ex(c, rq, resp, err, NULL, NULL);
}

int pvm_client_get(struct pvm_client *c, const char *path, const char *query,
                   const char *request_id, struct pvm_resp *resp, struct pvm_rest_error *err)
{
	struct pvm_req rq = {
	        .method = PVM_GET, .path = path, .query = query, .request_id = request_id};
	return request_ex(c, &rq, resp, err, NULL, NULL);
}

/* For events.c: a request on the listener's own handle, interruptible by stop. */
int client_request_wake(struct pvm_client *c, const struct pvm_req *rq, struct pvm_resp *resp,
                        struct pvm_rest_error *err, void *easy, void *multi, atomic_bool *stop)
{
	struct waker w = {.multi = multi, .stop = stop};
	return request_ex(c, rq, resp, err, easy, &w);
}

/* ---------------------------------------------------------------- ETags ------------ */

static void etag_delay(struct pvm_client *c, int round)
{
	int64_t step = c->etag_delay_ms;
	sleep_ms(step * round + (int64_t)(rnd() % (uint64_t)(step + 1)));
}

int pvm_client_update(struct pvm_client *c, const struct pvm_update *u, struct pvm_resp *resp,
                      struct pvm_rest_error *err)
{
	memset(resp, 0, sizeof(*resp));
	char *cur = NULL;
	size_t cur_len = 0;
	char etag[80] = "";
	int rc = 0;
	if (u->entry && u->etag) {
		cur = malloc(u->entry_len + 1);
		if (!cur)
			return perr(err, PVM_ENOMEM, 0, "out of memory");
		memcpy(cur, u->entry, u->entry_len);
		cur[u->entry_len] = '\0';
		cur_len = u->entry_len;
		snprintf(etag, sizeof(etag), "%s", u->etag);
	}
	for (int round = 0;; round++) {
		if (!cur) {
			struct pvm_resp g;
			rc = pvm_client_get(c, u->path, u->query, u->request_id, &g, err);
			if (rc) {
				pvm_resp_fini(&g);
				return rc;
			}
			cur = g.body;
			cur_len = g.len;
			snprintf(etag, sizeof(etag), "%s", g.etag);
			g.body = NULL;
		}
		char *body = NULL;
		rc = u->change(u->arg, cur, cur_len, &body);
		free(cur);
		cur = NULL;
		if (rc) {
			free(body);
			return err && !err->code
			               ? perr(err, rc, 0, "update of %s: change refused", u->path)
			               : rc;
		}
		struct pvm_req rq = {.method = PVM_POST,
		                     .path = u->path,
		                     .query = u->query,
		                     .content_type = u->content_type,
		                     .body = body,
		                     .body_len = body ? strlen(body) : 0,
		                     .if_match = *etag ? etag : NULL,
		                     .request_id = u->request_id};
		pvm_resp_fini(resp);
		rc = request_ex(c, &rq, resp, err, NULL, NULL);
		free(body);
		if (rc != -ESTALE)
			return rc;
		if (round + 1 >= c->etag_retries)
			return perr(err, -ESTALE, 412,
			            "update of %s: ETag still stale after %d rounds (412)", u->path,
			            c->etag_retries);
		atomic_fetch_add(&c->n_412, 1);
		etag_delay(c, round + 1);
	}
}

int pvm_client_delete(struct pvm_client *c, const char *path, const char *etag,
                      const char *request_id, struct pvm_rest_error *err)
{
	char cur[80] = "";
	if (etag)
		snprintf(cur, sizeof(cur), "%s", etag);
	for (int round = 0;; round++) {
		struct pvm_req rq = {.method = PVM_DELETE,
		                     .path = path,
		                     .if_match = *cur ? cur : NULL,
		                     .request_id = request_id};
		struct pvm_resp resp;
		int rc = request_ex(c, &rq, &resp, err, NULL, NULL);
		pvm_resp_fini(&resp);
		if (rc == PVM_ENOTFOUND)
			return 0;
		if (rc != -ESTALE)
			return rc;
		if (round + 1 >= c->etag_retries)
			return perr(err, -ESTALE, 412,
			            "delete of %s: ETag still stale after %d rounds", path,
			            c->etag_retries);
		atomic_fetch_add(&c->n_412, 1);
		etag_delay(c, round + 1);
		struct pvm_resp g;
		rc = pvm_client_get(c, path, NULL, request_id, &g, err);
		snprintf(cur, sizeof(cur), "%s", g.etag);
		pvm_resp_fini(&g);
		if (rc == PVM_ENOTFOUND)
			return 0;
		if (rc)
			return rc;
	}
}
