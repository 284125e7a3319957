/* images.c: the data endpoints of the local API (docs/api.md, Images and Config drives):
 * PUT, GET and DELETE of /v1/images/{id} (GET /v1/images lists) and of
 * /v1/config-drives/{instance_uuid}.
 *
 * DESIGN: a PUT body is never held in memory: each piece libmicrohttpd hands over (at
 * most its connection buffer) is hashed and written to a temporary spool file next to its
 * final name, so any size passes with bounded memory. Problems found before or during the
 * body (a bad id or header, a concurrent upload of the same id, the size limit) are
 * answered once the body is in, so that a client that sends everything before reading
 * gets the error rather than a broken pipe; only a config drive whose Content-Length is
 * over the limit is refused at once (413, connection closed). At the end the digests are
 * checked, the file is fsynced and renamed over the spool name, and the directory fsynced,
 * before the answer. With powervm_disk_driver = ssp the image then goes to the shared
 * storage pool through the internal operation cache_image (journaled, resumed after a
 * crash): the handler hands it to the submitter, then waits for it like a long-poll
 * (suspended, no thread held) up to ?wait=S, and answers with the image (201), the
 * operation still running (202) or its error.
 *
 * Uploads of one image id (or config drive) in this daemon are exclusive: a second one
 * while the first streams gets 409 (api->busy). Lock order: api->busy_mu is a leaf.
 */
#include "internal.h"

#include "image.h"
#include "names.h"

#include "pvm/engine.h"
#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/queue.h"
#include "pvm/util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CDRIVE_MAX_DEFAULT ((size_t)64 * 1024 * 1024)
#define WAIT_DEFAULT_S     120

enum up_kind { UP_IMAGE = 0, UP_CDRIVE };
enum up_phase { PH_STREAM = 0, PH_SUBMITTED, PH_WAITING };

struct upload {
	enum up_kind kind;
	bool del; /* a DELETE waiting for uncache_image */
	int fd;
	char tmp[1100];    /* the temporary spool file; "" once renamed or removed */
	char final[1024];  /* its name once complete */
	char busy_key[80]; /* held in api->busy; "" when not */
	EVP_MD_CTX *sha, *alg;
	char algo[16];
	char value[PVM_IMAGE_DIGEST_MAX];
	int64_t size;
	size_t limit; /* 0: none */
	/* a problem found while streaming: answered once the body is in */
	unsigned err_status;
	char err_code[40], err_field[40], err_msg[600];
	enum up_phase phase;
	uint64_t op_id;
	char sha256[65];
	bool had_meta; /* DELETE: this daemon had the image's metadata */
};

static _Atomic unsigned spool_seq;

/* ---- the busy set ---- */

/* 0, -EBUSY when key is held, -ENOSPC when the set is full. */
static int busy_take(struct pvm_api *api, const char *key)
{
	int rc = -ENOSPC;
	pthread_mutex_lock(&api->busy_mu);
	size_t free_at = api->nbusy;
	for (size_t i = 0; i < api->nbusy; i++) {
		if (strcmp(api->busy[i], key) == 0) {
			rc = -EBUSY;
			goto out;
		}
		if (!api->busy[i][0] && free_at == api->nbusy)
			free_at = i;
	}
	if (free_at < api->nbusy) {
		pvm_strlcpy(api->busy[free_at], key, sizeof(api->busy[free_at]));
		rc = 0;
	}
out:
	pthread_mutex_unlock(&api->busy_mu);
	return rc;
}

static void busy_release(struct pvm_api *api, const char *key)
{
	pthread_mutex_lock(&api->busy_mu);
	for (size_t i = 0; i < api->nbusy; i++)
		if (strcmp(api->busy[i], key) == 0)
			api->busy[i][0] = 0;
	pthread_mutex_unlock(&api->busy_mu);
}

/* ---- helpers ---- */

static void defer(struct upload *up, unsigned status, const char *code, const char *field,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void defer(struct upload *up, unsigned status, const char *code, const char *field,
                  const char *fmt, ...)
{
	if (up->err_status)
		return; /* the first problem is the one answered */
	up->err_status = status;
	pvm_strlcpy(up->err_code, code, sizeof(up->err_code));
	pvm_strlcpy(up->err_field, field ? field : "", sizeof(up->err_field));
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(up->err_msg, sizeof(up->err_msg), fmt, ap);
	va_end(ap);
}

static void drop_tmp(struct upload *up)
{
	if (up->fd >= 0) {
		close(up->fd);
		up->fd = -1;
	}
	if (up->tmp[0]) {
		unlink(up->tmp);
		up->tmp[0] = 0;
	}
}

static enum MHD_Result bad(struct request *r, const char *field, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static enum MHD_Result bad(struct request *r, const char *field, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return api_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid", field, NULL, "%s", msg);
}

static void to_hex(const unsigned char *d, unsigned n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (unsigned i = 0; i < n; i++) {
		out[2 * i] = hx[d[i] >> 4];
		out[2 * i + 1] = hx[d[i] & 15];
	}
	out[2 * n] = 0;
}

static const EVP_MD *algo_md(const char *algo)
{
	if (strcmp(algo, "md5") == 0)
		return EVP_md5();
	if (strcmp(algo, "sha256") == 0)
		return EVP_sha256();
	if (strcmp(algo, "sha512") == 0)
		return EVP_sha512();
	return NULL;
}

static bool is_hex(const char *s)
{
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s))
			return false;
	return true;
}

struct args_check {
	const char *unknown;
};

static enum MHD_Result arg_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
	(void)kind;
	(void)value;
	struct args_check *c = cls;
	if (strcmp(key, "wait") == 0)
		return MHD_YES;
	c->unknown = key;
	return MHD_NO;
}

/* ?wait=S (the only argument of PUT and DELETE of an image): false when malformed. */
static bool wait_arg(struct request *r, double *out, const char **unknown)
{
	struct args_check c = {NULL};
	MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, arg_iter, &c);
	*unknown = c.unknown;
	if (c.unknown)
		return false;
	const char *s = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "wait");
	double v = WAIT_DEFAULT_S;
	if (s) {
		char *end;
		errno = 0;
		v = strtod(s, &end);
		if (!*s || *end || errno || !isfinite(v) || v < 0)
			return false;
	}
	if (v > r->api->o.max_wait_s)
		v = r->api->o.max_wait_s;
	*out = v;
	return true;
}

/* Sends the metadata as the API shows it: the state of an ssp upload from its
 * operation ("uploading", "failed" with the error, or "ready"). */
static json_t *meta_view(struct pvm_api *api, const struct pvm_image_meta *m)
{
	json_t *j = pvm_image_meta_json(m);
	if (!j || strcmp(m->state, "uploading") != 0 || !m->operation)
		return j;
	struct pvm_op *op = NULL;
	if (pvm_queue_get(api->o.queue, m->operation, &op) == 0) {
		if (op->state == PVM_OP_FAILED || op->state == PVM_OP_CANCELLED) {
			json_object_set_new(j, "state", json_string("failed"));
			json_object_set_new(j, "error", json_string(op->error ? op->error : ""));
		} else if (op->state == PVM_OP_SUCCEEDED) {
			json_object_set_new(j, "state", json_string("ready"));
		}
	} else {
		json_object_set_new(j, "state", json_string("failed"));
		json_object_set_new(j, "error", json_string("its operation is gone"));
	}
	pvm_op_free(op);
	return j;
}

/* ---- streaming ---- */

bool api_upload_route(const struct request *r)
{
	return (r->route == R_IMAGE || r->route == R_CDRIVE) && strcmp(r->method, "PUT") == 0;
}

enum MHD_Result api_upload_begin(struct request *r)
{
	struct pvm_api *api = r->api;
	struct upload *up = calloc(1, sizeof(*up));
	if (!up)
		return MHD_NO;
	up->fd = -1;
	r->up = up;
	up->kind = r->route == R_IMAGE ? UP_IMAGE : UP_CDRIVE;
	const char *sd = api->o.state_dir;
	if (!sd) {
		defer(up, MHD_HTTP_SERVICE_UNAVAILABLE, "not_ready", NULL,
		      "the image cache is not available (no state directory)");
		return MHD_YES;
	}
	if (up->kind == UP_IMAGE) {
		if (!pvm_name_image_id_ok(r->image_id)) {
			defer(up, MHD_HTTP_BAD_REQUEST, "invalid", "image_id",
			      "the image id must be 1 to 64 characters of [A-Za-z0-9._-], not "
			      "starting with a dot");
			return MHD_YES;
		}
		const char *a =
		        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "os_hash_algo");
		const char *v =
		        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "os_hash_value");
		if (a) {
			size_t i = 0;
			for (; a[i] && i + 1 < sizeof(up->algo); i++)
				up->algo[i] = (char)tolower((unsigned char)a[i]);
			up->algo[i] = 0;
			if (a[i] || !algo_md(up->algo)) {
				defer(up, MHD_HTTP_BAD_REQUEST, "invalid", "os_hash_algo",
				      "unknown os_hash_algo \"%.32s\" (md5, sha256, sha512)", a);
				return MHD_YES;
			}
			if (!v) {
				defer(up, MHD_HTTP_BAD_REQUEST, "invalid", "os_hash_value",
				      "os_hash_value is required with os_hash_algo");
				return MHD_YES;
			}
			size_t want = (size_t)EVP_MD_size(algo_md(up->algo)) * 2;
			if (strlen(v) != want || !is_hex(v)) {
				defer(up, MHD_HTTP_BAD_REQUEST, "invalid", "os_hash_value",
				      "os_hash_value must be %zu hex digits for %s", want,
				      up->algo);
				return MHD_YES;
			}
			for (i = 0; v[i]; i++)
				up->value[i] = (char)tolower((unsigned char)v[i]);
			up->value[i] = 0;
		} else if (v) {
			defer(up, MHD_HTTP_BAD_REQUEST, "invalid", "os_hash_algo",
			      "os_hash_algo is required with os_hash_value");
			return MHD_YES;
		}
		pvm_path_image(sd, r->image_id, up->final, sizeof(up->final));
		snprintf(up->busy_key, sizeof(up->busy_key), "image:%s", r->image_id);
	} else {
		up->limit = api->o.config_drive_max_bytes ? api->o.config_drive_max_bytes
		                                          : CDRIVE_MAX_DEFAULT;
		const char *cl =
		        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
		if (cl && strtoull(cl, NULL, 10) > up->limit) {
			/* Refused before the body: the connection closes after the answer. */
			json_t *err = json_pack("{s:{s:s,s:s,s:I}}", "error", "code", "too_large",
			                        "message", "the config drive exceeds the limit",
			                        "limit", (json_int_t)up->limit);
			return api_reply_json(r, MHD_HTTP_CONTENT_TOO_LARGE, err, true);
		}
		pvm_path_config_drive(sd, r->uuid, up->final, sizeof(up->final));
		snprintf(up->busy_key, sizeof(up->busy_key), "cdrive:%s", r->uuid);
	}
	int rc = busy_take(api, up->busy_key);
	if (rc) {
		const char *what = up->kind == UP_IMAGE ? r->image_id : r->uuid;
		up->busy_key[0] = 0;
		defer(up, rc == -EBUSY ? MHD_HTTP_CONFLICT : MHD_HTTP_SERVICE_UNAVAILABLE,
		      rc == -EBUSY ? "conflict" : "busy", NULL,
		      rc == -EBUSY ? "an upload of %s is in progress in this daemon: try again "
		                     "when it has finished"
		                   : "too many uploads at once (%s): try again later",
		      what);
		return MHD_YES;
	}
	char dir[1024];
	pvm_strlcpy(dir, up->final, sizeof(dir));
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		defer(up, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "mkdir %s: %s", dir,
		      strerror(errno));
		return MHD_YES;
	}
	snprintf(up->tmp, sizeof(up->tmp), "%s.part-%d-%u", up->final, (int)getpid(),
	         atomic_fetch_add(&spool_seq, 1));
	up->fd = open(up->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (up->fd < 0) {
		defer(up, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "creating %s: %s",
		      up->tmp, strerror(errno));
		up->tmp[0] = 0;
		return MHD_YES;
	}
	up->sha = EVP_MD_CTX_new();
	if (!up->sha || !EVP_DigestInit_ex(up->sha, EVP_sha256(), NULL)) {
		defer(up, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, "digest init failed");
		return MHD_YES;
	}
	if (up->algo[0]) {
		up->alg = EVP_MD_CTX_new();
		if (!up->alg || !EVP_DigestInit_ex(up->alg, algo_md(up->algo), NULL))
			defer(up, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
			      "digest init failed");
	}
	return MHD_YES;
}

void api_upload_data(struct request *r, const char *data, size_t n)
{
	struct upload *up = r->up;
	if (up->err_status || up->fd < 0)
		return; /* drained */
	if (up->limit && (size_t)up->size + n > up->limit) {
		defer(up, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", NULL,
		      "the config drive exceeds the limit of %zu bytes", up->limit);
		drop_tmp(up);
		return;
	}
	size_t left = n;
	const char *p = data;
	while (left > 0) {
		ssize_t w = write(up->fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = w < 0 ? errno : EIO;
			defer(up,
			      e == ENOSPC ? MHD_HTTP_INSUFFICIENT_STORAGE
			                  : MHD_HTTP_INTERNAL_SERVER_ERROR,
			      e == ENOSPC ? "no_space" : "internal", NULL, "writing %s: %s",
			      up->tmp, strerror(e));
			drop_tmp(up);
			return;
		}
		p += w;
		left -= (size_t)w;
	}
	EVP_DigestUpdate(up->sha, data, n);
	if (up->alg)
		EVP_DigestUpdate(up->alg, data, n);
	up->size += (int64_t)n;
}

void api_upload_free(struct request *r)
{
	struct upload *up = r->up;
	if (!up)
		return;
	drop_tmp(up);
	if (up->busy_key[0])
		busy_release(r->api, up->busy_key);
	EVP_MD_CTX_free(up->sha);
	EVP_MD_CTX_free(up->alg);
	free(up);
	r->up = NULL;
}

/* fsync, rename over the final name, fsync the directory. */
static int install(struct upload *up)
{
	int rc = 0;
	if (fsync(up->fd) != 0)
		rc = -errno;
	if (close(up->fd) != 0 && rc == 0)
		rc = -errno;
	up->fd = -1;
	if (rc == 0 && rename(up->tmp, up->final) != 0)
		rc = -errno;
	if (rc == 0) {
		up->tmp[0] = 0;
		rc = pvm_fsync_parent(up->final);
	}
	return rc;
}

/* ---- operations (ssp) ---- */

/* Hands an internal operation to the submitter; the request is resumed once it is
 * journaled (PH_SUBMITTED). */
static enum MHD_Result submit_internal(struct request *r, const char *type, json_t *params,
                                       const char *key)
{
	struct pvm_api *api = r->api;
	if (!api->o.engine) {
		json_decref(params);
		return api_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "not_ready", NULL, NULL,
		                       "the step engine is not available yet");
	}
	json_t *clean = NULL, *secrets = NULL;
	uint32_t version = 0;
	int64_t deadline_ms = 0;
	char field[128] = "", msg[512] = "";
	int rc = pvm_engine_prepare(api->o.engine, type, params, &clean, &secrets, &version,
	                            &deadline_ms, field, sizeof(field), msg, sizeof(msg));
	json_decref(params);
	if (rc) {
		json_decref(clean);
		json_decref(secrets);
		return api_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, NULL,
		                       "preparing %s: %s %s", type, field, msg);
	}
	if (deadline_ms > 0 && deadline_ms < 1000000000000LL)
		deadline_ms += pvm_now_ms();
	struct submission *sub = calloc(1, sizeof(*sub));
	if (!sub) {
		json_decref(clean);
		json_decref(secrets);
		return MHD_NO;
	}
	pvm_strlcpy(sub->type, type, sizeof(sub->type));
	pvm_strlcpy(sub->key, key, sizeof(sub->key));
	sub->params = clean;
	sub->secrets = secrets;
	sub->s = (struct pvm_op_submit){
	        .type = sub->type,
	        .idempotency_key = sub->key,
	        .table_version = version,
	        .params = sub->params,
	        .secrets = sub->secrets,
	        .deadline_ms = deadline_ms,
	};
	r->sub = sub;
	r->up->phase = PH_SUBMITTED;
	if (api_submit_enqueue(r))
		return MHD_YES;
	return api_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "not_ready", NULL, NULL,
	                       "the API is stopping");
}

/* The answer for the operation's state now. */
static enum MHD_Result answer_op(struct request *r)
{
	struct upload *up = r->up;
	struct pvm_op *op = NULL;
	int rc = pvm_queue_get(r->api->o.queue, up->op_id, &op);
	if (rc)
		return api_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, NULL,
		                       "reading operation %llu: %s", (unsigned long long)up->op_id,
		                       pvm_strerror(rc));
	enum MHD_Result ret;
	json_t *opid = json_pack("{s:I}", "operation", (json_int_t)op->id);
	if (op->state == PVM_OP_SUCCEEDED) {
		json_decref(opid);
		json_t *dl = json_object_get(op->result, "deleted_lus");
		if (up->del && !up->had_meta && json_integer_value(dl) == 0) {
			ret = api_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, NULL,
			                      "image %s is not cached (no metadata, no image LU)",
			                      r->image_id);
		} else if (up->del) {
			json_t *j = json_pack("{s:s, s:b, s:I}", "id", r->image_id, "deleted", 1,
			                      "operation", (json_int_t)op->id);
			json_object_update(j, op->result);
			ret = api_reply_json(r, MHD_HTTP_OK, j, false);
		} else {
			struct pvm_image_meta m;
			json_t *j = pvm_image_meta_read(r->api->o.state_dir, r->image_id, &m) == 0
			                    ? meta_view(r->api, &m)
			                    : json_deep_copy(op->result);
			ret = api_reply_json(r, MHD_HTTP_CREATED, j, false);
		}
	} else if (op->state == PVM_OP_FAILED || op->state == PVM_OP_CANCELLED) {
		const char *code = op->error_code ? op->error_code : "";
		json_object_set_new(opid, "error_code", json_string(code));
		bool in_use = strncmp(code, "HSCL297", 7) == 0 || strcmp(code, "in_use") == 0 ||
		              strcmp(code, "upload_in_progress") == 0;
		if (up->del && in_use)
			ret = api_reply_error(r, MHD_HTTP_CONFLICT, "in_use", NULL, opid,
			                      "image %s cannot be deleted: %s", r->image_id,
			                      op->error ? op->error : "in use");
		else
			ret = api_reply_error(r, MHD_HTTP_BAD_GATEWAY,
			                      up->del ? "delete_failed" : "upload_failed", NULL,
			                      opid, "operation %llu (%s) %s: %s",
			                      (unsigned long long)op->id, op->type,
			                      pvm_op_state_name(op->state),
			                      op->error ? op->error : "no error recorded");
	} else {
		json_object_set_new(opid, "state", json_string(pvm_op_state_name(op->state)));
		json_object_set_new(opid, "id", json_string(r->image_id));
		ret = api_reply_json(r, MHD_HTTP_ACCEPTED, opid, false);
	}
	pvm_op_free(op);
	return ret;
}

/* Waits (suspended) for the operation up to ?wait, then answers. */
static enum MHD_Result wait_op(struct request *r)
{
	struct upload *up = r->up;
	double wait = WAIT_DEFAULT_S;
	const char *unknown = NULL;
	wait_arg(r, &wait, &unknown); /* checked before the upload started */
	uint64_t gen = pvm_queue_generation(r->api->o.queue);
	enum pvm_op_state st = PVM_OP_QUEUED;
	if (wait > 0 && pvm_queue_state(r->api->o.queue, up->op_id, &st) == 0 &&
	    pvm_op_state_active(st)) {
		r->wait_kind = WAIT_OP;
		r->wait_arg = up->op_id;
		r->gen_seen = gen;
		r->deadline_ns = pvm_mono_ns() + (int64_t)(wait * 1e9);
		up->phase = PH_WAITING;
		if (api_suspend(r))
			return MHD_YES;
	}
	return answer_op(r);
}

static enum MHD_Result submitted(struct request *r)
{
	struct upload *up = r->up;
	int rc;
	uint64_t id;
	bool existed;
	if (!api_submit_result(r, &rc, &id, &existed))
		return api_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, NULL,
		                       "resumed before the operation was journaled");
	if (rc)
		return api_reply_error(r,
		                       rc == PVM_EFULL ? MHD_HTTP_INSUFFICIENT_STORAGE
		                                       : MHD_HTTP_INTERNAL_SERVER_ERROR,
		                       rc == PVM_EFULL ? "journal_full" : "internal", NULL, NULL,
		                       "journaling the operation: %s", pvm_strerror(rc));
	up->op_id = id;
	if (!up->del) {
		struct pvm_image_meta m;
		if (pvm_image_meta_read(r->api->o.state_dir, r->image_id, &m) == 0 &&
		    strcmp(m.state, "uploading") == 0) {
			m.operation = id;
			rc = pvm_image_meta_write(r->api->o.state_dir, &m);
			if (rc)
				pvm_warn("api: image %s: recording operation %llu: %s", r->image_id,
				         (unsigned long long)id, pvm_strerror(rc));
		}
	}
	return wait_op(r);
}

/* ---- images ---- */

static void fill_meta(struct request *r, struct pvm_image_meta *m)
{
	struct upload *up = r->up;
	memset(m, 0, sizeof(*m));
	pvm_strlcpy(m->image_id, r->image_id, sizeof(m->image_id));
	pvm_strlcpy(m->sha256, up->sha256, sizeof(m->sha256));
	m->size = up->size;
	pvm_strlcpy(m->algo, up->algo, sizeof(m->algo));
	pvm_strlcpy(m->value, up->value, sizeof(m->value));
	pvm_strlcpy(m->driver, r->api->o.disk_ssp ? "ssp" : "localdisk", sizeof(m->driver));
	pvm_strlcpy(m->state, r->api->o.disk_ssp ? "uploading" : "ready", sizeof(m->state));
	if (r->api->o.disk_ssp) {
		char lu[PVM_NAME_MAX];
		pvm_name_image_lu(r->image_id, lu);
		snprintf(m->location, sizeof(m->location), "ssp:%.200s", lu);
	} else {
		pvm_strlcpy(m->location, up->final, sizeof(m->location));
	}
	m->time_ms = pvm_now_ms();
	if (r->api->o.disk_ssp)
		snprintf(m->key, sizeof(m->key), "cache_image:%s:%s:%lld", m->image_id, m->sha256,
		         (long long)m->time_ms);
}

static enum MHD_Result put_image_end(struct request *r)
{
	struct pvm_api *api = r->api;
	struct upload *up = r->up;
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned dn = 0;
	EVP_DigestFinal_ex(up->sha, d, &dn);
	to_hex(d, dn, up->sha256);
	if (up->alg) {
		char hex[2 * EVP_MAX_MD_SIZE + 1];
		EVP_DigestFinal_ex(up->alg, d, &dn);
		to_hex(d, dn, hex);
		if (strcmp(hex, up->value) != 0) {
			drop_tmp(up);
			pvm_warn("api: image %s: %s digest %s, os_hash_value %s: refused",
			         r->image_id, up->algo, hex, up->value);
			return api_reply_error(
			        r, MHD_HTTP_BAD_REQUEST, "digest_mismatch", "os_hash_value",
			        json_pack("{s:s, s:s}", "computed", hex, "os_hash_algo", up->algo),
			        "the image's %s digest is %s, not the os_hash_value given (%s): "
			        "nothing was kept",
			        up->algo, hex, up->value);
		}
	}
	if (up->size == 0) {
		drop_tmp(up);
		return bad(r, "body", "the image is empty");
	}
	struct pvm_image_meta m;
	int rc = pvm_image_meta_read(api->o.state_dir, r->image_id, &m);
	if (rc == 0 && !m.operation && m.key[0]) {
		/* journaled, but its id not recorded (a crash in between): find it by key */
		uint64_t id = 0;
		if (pvm_queue_find_key(api->o.queue, m.key, &id) == 0)
			m.operation = id;
	}
	if (rc == 0) {
		bool same = strcmp(m.sha256, up->sha256) == 0;
		enum pvm_op_state st = PVM_OP_FAILED;
		bool active = strcmp(m.state, "uploading") == 0 && m.operation &&
		              pvm_queue_state(api->o.queue, m.operation, &st) == 0 &&
		              pvm_op_state_active(st);
		bool ready = strcmp(m.state, "ready") == 0 ||
		             (strcmp(m.state, "uploading") == 0 && m.operation &&
		              pvm_queue_state(api->o.queue, m.operation, &st) == 0 &&
		              st == PVM_OP_SUCCEEDED);
		if ((ready || active) && !same) {
			drop_tmp(up);
			return api_reply_error(r, MHD_HTTP_CONFLICT, "conflict", NULL,
			                       json_pack("{s:s}", "sha256", m.sha256),
			                       "image %s is cached with another digest (sha256 "
			                       "%s): DELETE it first",
			                       r->image_id, m.sha256);
		}
		if (ready) {
			drop_tmp(up);
			pvm_info("api: image %s is cached already (sha256 %s): not uploaded again",
			         r->image_id, m.sha256);
			json_t *j = meta_view(api, &m);
			json_object_set_new(j, "existing", json_true());
			return api_reply_json(r, MHD_HTTP_OK, j, false);
		}
		if (active) { /* the same image is on its way (an earlier PUT): wait for it */
			drop_tmp(up);
			up->op_id = m.operation;
			return wait_op(r);
		}
	} else if (rc != PVM_ENOTFOUND) {
		pvm_warn("api: image %s: unreadable metadata (%s): replaced", r->image_id,
		         pvm_strerror(rc));
	}
	rc = install(up);
	if (rc) {
		drop_tmp(up);
		return api_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, NULL,
		                       "storing image %s: %s", r->image_id, pvm_strerror(rc));
	}
	fill_meta(r, &m);
	rc = pvm_image_meta_write(api->o.state_dir, &m);
	if (rc) {
		unlink(up->final);
		return api_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, NULL,
		                       "writing the metadata of image %s: %s", r->image_id,
		                       pvm_strerror(rc));
	}
	pvm_info("api: image %s stored: %lld bytes, sha256 %s%s", r->image_id, (long long)m.size,
	         m.sha256, api->o.disk_ssp ? "; uploading it to the shared storage pool" : "");
	if (!api->o.disk_ssp)
		return api_reply_json(r, MHD_HTTP_CREATED, pvm_image_meta_json(&m), false);
	json_t *params = json_pack("{s:s, s:s, s:I}", "image_id", r->image_id, "sha256", m.sha256,
	                           "size", (json_int_t)m.size);
	if (m.algo[0]) {
		json_object_set_new(params, "os_hash_algo", json_string(m.algo));
		json_object_set_new(params, "os_hash_value", json_string(m.value));
	}
	return submit_internal(r, "cache_image", params, m.key);
}

static enum MHD_Result list_images(struct request *r)
{
	struct pvm_api *api = r->api;
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/images", api->o.state_dir);
	json_t *arr = json_array();
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0 || l - 5 >= PVM_IMAGE_ID_MAX)
			continue;
		char id[PVM_IMAGE_ID_MAX];
		memcpy(id, de->d_name, l - 5);
		id[l - 5] = 0;
		struct pvm_image_meta m;
		if (pvm_name_image_id_ok(id) && pvm_image_meta_read(api->o.state_dir, id, &m) == 0)
			json_array_append_new(arr, meta_view(api, &m));
	}
	if (d)
		closedir(d);
	return api_reply_json(r, MHD_HTTP_OK, json_pack("{s:o}", "images", arr), false);
}

static enum MHD_Result get_image(struct request *r)
{
	struct pvm_image_meta m;
	int rc = pvm_image_meta_read(r->api->o.state_dir, r->image_id, &m);
	if (rc == PVM_ENOTFOUND)
		return api_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, NULL,
		                       "image %s is not cached", r->image_id);
	if (rc)
		return api_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, NULL,
		                       "reading the metadata of image %s: %s", r->image_id,
		                       pvm_strerror(rc));
	return api_reply_json(r, MHD_HTTP_OK, meta_view(r->api, &m), false);
}

static enum MHD_Result delete_image(struct request *r)
{
	struct pvm_api *api = r->api;
	char key[80];
	snprintf(key, sizeof(key), "image:%s", r->image_id);
	if (busy_take(api, key) != 0)
		return api_reply_error(r, MHD_HTTP_CONFLICT, "conflict", NULL, NULL,
		                       "an upload of image %s is in progress in this daemon",
		                       r->image_id);
	struct pvm_image_meta m;
	int mrc = pvm_image_meta_read(api->o.state_dir, r->image_id, &m);
	enum pvm_op_state st;
	if (mrc == 0 && strcmp(m.state, "uploading") == 0 && m.operation &&
	    pvm_queue_state(api->o.queue, m.operation, &st) == 0 && pvm_op_state_active(st)) {
		busy_release(api, key);
		return api_reply_error(r, MHD_HTTP_CONFLICT, "conflict", NULL,
		                       json_pack("{s:I}", "operation", (json_int_t)m.operation),
		                       "image %s is being uploaded by operation %llu", r->image_id,
		                       (unsigned long long)m.operation);
	}
	if (api->o.disk_ssp) {
		busy_release(api, key);
		struct upload *up = calloc(1, sizeof(*up));
		if (!up)
			return MHD_NO;
		up->fd = -1;
		up->del = true;
		up->had_meta = mrc == 0;
		r->up = up;
		char ikey[PVM_IDEM_KEY_MAX];
		snprintf(ikey, sizeof(ikey), "uncache_image:%s:%lld", r->image_id,
		         (long long)pvm_now_ms());
		return submit_internal(r, "uncache_image",
		                       json_pack("{s:s}", "image_id", r->image_id), ikey);
	}
	char raw[1024], meta[1024];
	pvm_path_image(api->o.state_dir, r->image_id, raw, sizeof(raw));
	pvm_image_meta_path(api->o.state_dir, r->image_id, meta, sizeof(meta));
	/* The metadata first: a crash in between leaves a file no lookup takes as cached. */
	bool had = unlink(meta) == 0;
	had = (unlink(raw) == 0) || had;
	if (had)
		pvm_fsync_parent(meta);
	busy_release(api, key);
	if (!had)
		return api_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, NULL,
		                       "image %s is not cached", r->image_id);
	pvm_info("api: image %s removed from the cache", r->image_id);
	return api_reply_json(r, MHD_HTTP_OK,
	                      json_pack("{s:s, s:b}", "id", r->image_id, "deleted", 1), false);
}

/* ---- config drives ---- */

static enum MHD_Result put_cdrive_end(struct request *r)
{
	struct upload *up = r->up;
	if (up->size == 0) {
		drop_tmp(up);
		return bad(r, "body", "the config drive is empty");
	}
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned dn = 0;
	EVP_DigestFinal_ex(up->sha, d, &dn);
	to_hex(d, dn, up->sha256);
	int rc = install(up);
	if (rc) {
		drop_tmp(up);
		return api_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, NULL,
		                       "storing the config drive of %s: %s", r->uuid,
		                       pvm_strerror(rc));
	}
	pvm_info("api: config drive of instance %s stored: %lld bytes", r->uuid,
	         (long long)up->size);
	return api_reply_json(r, MHD_HTTP_CREATED,
	                      json_pack("{s:s, s:I, s:s}", "instance_uuid", r->uuid, "size",
	                                (json_int_t)up->size, "sha256", up->sha256),
	                      false);
}

static enum MHD_Result cdrive(struct request *r)
{
	char path[1024];
	pvm_path_config_drive(r->api->o.state_dir, r->uuid, path, sizeof(path));
	if (r->is_get) {
		struct stat st;
		if (stat(path, &st) != 0)
			return api_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, NULL,
			                       "no config drive for instance %s", r->uuid);
		char t[40];
		pvm_fmt_time((int64_t)st.st_mtime * 1000, t, sizeof(t));
		return api_reply_json(r, MHD_HTTP_OK,
		                      json_pack("{s:s, s:I, s:s}", "instance_uuid", r->uuid, "size",
		                                (json_int_t)st.st_size, "time", t),
		                      false);
	}
	char key[80];
	snprintf(key, sizeof(key), "cdrive:%s", r->uuid);
	if (busy_take(r->api, key) != 0)
		return api_reply_error(r, MHD_HTTP_CONFLICT, "conflict", NULL, NULL,
		                       "the config drive of %s is being uploaded", r->uuid);
	int rc = unlink(path) == 0 ? 0 : -errno;
	if (rc == 0)
		pvm_fsync_parent(path);
	busy_release(r->api, key);
	if (rc == -ENOENT)
		return api_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, NULL,
		                       "no config drive for instance %s", r->uuid);
	if (rc)
		return api_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, NULL,
		                       "deleting %s: %s", path, pvm_strerror(rc));
	return api_reply_json(r, MHD_HTTP_OK,
	                      json_pack("{s:s, s:b}", "instance_uuid", r->uuid, "deleted", 1),
	                      false);
}

static enum MHD_Result dispatch(struct request *r);

enum MHD_Result api_images_dispatch(struct request *r)
{
	enum MHD_Result ret = dispatch(r);
	/* The upload's slot is free as soon as it is answered (not at the connection's
	 * completion, which may come after the client's next request), or once its
	 * operation is recorded and it only waits. */
	struct upload *up = r->up;
	if (up && up->busy_key[0] && (r->answered || up->phase == PH_WAITING)) {
		busy_release(r->api, up->busy_key);
		up->busy_key[0] = 0;
	}
	return ret;
}

static enum MHD_Result dispatch(struct request *r)
{
	struct pvm_api *api = r->api;
	struct upload *up = r->up;
	if (up && up->phase == PH_SUBMITTED)
		return submitted(r);
	if (up && up->phase == PH_WAITING) {
		api_was_resumed(r);
		return answer_op(r);
	}
	if (up && up->err_status) {
		drop_tmp(up);
		return api_reply_error(r, up->err_status, up->err_code,
		                       up->err_field[0] ? up->err_field : NULL, NULL, "%s",
		                       up->err_msg);
	}
	if (!api->o.state_dir)
		return api_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "not_ready", NULL, NULL,
		                       "the image cache is not available (no state directory)");
	if (r->route == R_IMAGES)
		return list_images(r);
	if (r->route == R_CDRIVE)
		return up ? put_cdrive_end(r) : cdrive(r);
	if (!pvm_name_image_id_ok(r->image_id))
		return bad(r, "image_id",
		           "the image id must be 1 to 64 characters of [A-Za-z0-9._-], not "
		           "starting with a dot");
	if (!r->is_get) {
		double w;
		const char *unknown = NULL;
		if (!wait_arg(r, &w, &unknown)) {
			if (up)
				drop_tmp(up);
			if (unknown)
				return bad(r, unknown, "unknown query argument \"%.64s\"", unknown);
			return bad(r, "wait", "wait must be a number of seconds >= 0");
		}
	}
	if (r->is_get)
		return get_image(r);
	if (strcmp(r->method, "DELETE") == 0)
		return delete_image(r);
	return put_image_end(r);
}

static void cleanup_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	char mine[32];
	snprintf(mine, sizeof(mine), ".tmp-%d", (int)getpid());
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		bool part = strstr(n, ".part-") != NULL;
		bool tmp = strstr(n, ".tmp-") != NULL && !strstr(n, mine);
		if (!part && !tmp)
			continue;
		char path[1200];
		snprintf(path, sizeof(path), "%s/%s", dir, n);
		if (unlink(path) == 0)
			pvm_info("api: removed %s, left by an interrupted upload", path);
	}
	closedir(d);
}

void api_images_cleanup(struct pvm_api *api)
{
	if (!api->o.state_dir)
		return;
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/images", api->o.state_dir);
	cleanup_dir(dir);
	snprintf(dir, sizeof(dir), "%s/config-drives", api->o.state_dir);
	cleanup_dir(dir);
}
