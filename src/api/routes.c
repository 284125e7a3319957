/* routes.c: the local API's endpoints (docs/api.md): routing, validation of paths, query
 * arguments and bodies, and the calls into the journal, the engine and the callbacks.
 *
 * Every handler answers exactly once, with JSON; a 400 always names the field. Handlers
 * run in libmicrohttpd's worker threads; the journal and engine calls they make are
 * thread-safe. A long-poll handler runs twice: once to suspend, once when resumed.
 */
#include "internal.h"

#include "pvm/engine.h"
#include "pvm/error.h"
#include "pvm/eventlog.h"
#include "pvm/log.h"
#include "pvm/metrics.h"
#include "pvm/queue.h"
#include "pvm/util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LIST_DEFAULT_LIMIT 100
#define LIST_MAX_LIMIT     1000
#define DEADLINE_MAX_S     (30 * 24 * 3600)
#define SIGNAL_NAME_MAX    64

static const struct {
	const char *endpoint;
	const char *allow;
} routes[R_COUNT] = {
        [R_NONE] = {"other", ""},
        [R_OPS] = {"/v1/operations", "GET, HEAD, POST"},
        [R_OPS_PURGE] = {"/v1/operations/purge", "POST"},
        [R_OP] = {"/v1/operations/{id}", "GET, HEAD"},
        [R_OP_CANCEL] = {"/v1/operations/{id}/cancel", "POST"},
        [R_OP_RETRY] = {"/v1/operations/{id}/retry", "POST"},
        [R_OP_SIGNAL] = {"/v1/operations/{id}/signal", "POST"},
        [R_RECONCILE] = {"/v1/reconcile", "POST"},
        [R_PAUSE] = {"/v1/pause", "POST"},
        [R_RESUME] = {"/v1/resume", "POST"},
        [R_HOST] = {"/v1/host", "GET, HEAD"},
        [R_INSTANCES] = {"/v1/instances", "GET, HEAD"},
        [R_INSTANCE] = {"/v1/instances/{uuid}", "GET, HEAD"},
        [R_EVENTS] = {"/v1/events", "GET, HEAD"},
        [R_METRICS] = {"/metrics", "GET, HEAD"},
        [R_HEALTHZ] = {"/healthz", "GET, HEAD"},
        [R_SCRUB] = {"/v1/scrub", "GET, HEAD"},
        [R_IMAGES] = {"/v1/images", "GET, HEAD"},
        [R_IMAGE] = {"/v1/images/{id}", "GET, HEAD, PUT, DELETE"},
        [R_CDRIVE] = {"/v1/config-drives/{uuid}", "GET, HEAD, PUT, DELETE"},
};

const char *api_route_endpoint(enum route rt)
{
	return rt < R_COUNT ? routes[rt].endpoint : "other";
}

const char *api_route_allow(enum route rt)
{
	return rt < R_COUNT ? routes[rt].allow : "";
}

/* Decimal id without sign or leading zero, 1 .. UINT64_MAX. */
static bool parse_id(const char *s, size_t len, uint64_t *out)
{
	if (len == 0 || len > 20 || s[0] == '0')
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

enum route api_route(struct request *r, const char *url)
{
	static const struct {
		const char *path;
		enum route rt;
	} fixed[] = {
	        {"/v1/operations", R_OPS},      {"/v1/operations/purge", R_OPS_PURGE},
	        {"/v1/reconcile", R_RECONCILE}, {"/v1/pause", R_PAUSE},
	        {"/v1/resume", R_RESUME},       {"/v1/host", R_HOST},
	        {"/v1/instances", R_INSTANCES}, {"/v1/events", R_EVENTS},
	        {"/metrics", R_METRICS},        {"/healthz", R_HEALTHZ},
	        {"/v1/scrub", R_SCRUB},         {"/v1/images", R_IMAGES},
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (strcmp(url, fixed[i].path) == 0)
			return fixed[i].rt;
	static const char ops[] = "/v1/operations/";
	if (strncmp(url, ops, sizeof(ops) - 1) == 0) {
		const char *p = url + sizeof(ops) - 1;
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (!parse_id(p, len, &r->id))
			return R_NONE;
		if (!slash)
			return R_OP;
		if (strcmp(slash, "/cancel") == 0)
			return R_OP_CANCEL;
		if (strcmp(slash, "/retry") == 0)
			return R_OP_RETRY;
		if (strcmp(slash, "/signal") == 0)
			return R_OP_SIGNAL;
		return R_NONE;
	}
	static const char img[] = "/v1/images/";
	if (strncmp(url, img, sizeof(img) - 1) == 0) {
		const char *p = url + sizeof(img) - 1;
		/* any one segment: the handler checks the id and names it in a 400 */
		if (!*p || strchr(p, '/') || strlen(p) >= sizeof(r->image_id))
			return R_NONE;
		pvm_strlcpy(r->image_id, p, sizeof(r->image_id));
		return R_IMAGE;
	}
	static const char cd[] = "/v1/config-drives/";
	if (strncmp(url, cd, sizeof(cd) - 1) == 0) {
		const char *p = url + sizeof(cd) - 1;
		if (!pvm_is_uuid(p))
			return R_NONE;
		for (size_t i = 0; i <= PVM_UUID_LEN; i++)
			r->uuid[i] = (char)tolower((unsigned char)p[i]);
		return R_CDRIVE;
	}
	static const char inst[] = "/v1/instances/";
	if (strncmp(url, inst, sizeof(inst) - 1) == 0) {
		const char *p = url + sizeof(inst) - 1;
		if (!pvm_is_uuid(p))
			return R_NONE;
		for (size_t i = 0; i <= PVM_UUID_LEN; i++)
			r->uuid[i] = (char)tolower((unsigned char)p[i]);
		return R_INSTANCE;
	}
	return R_NONE;
}

/* ---- helpers ---- */

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

static enum MHD_Result not_ready(struct request *r, const char *what)
{
	return api_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "not_ready", NULL, NULL,
	                       "%s is not available yet", what);
}

/* Answers a journal error about operation id. */
static enum MHD_Result queue_error(struct request *r, int rc, uint64_t id, const char *doing)
{
	unsigned long long uid = (unsigned long long)id;
	switch (rc) {
	case PVM_ENOTFOUND:
		return api_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, NULL,
		                       "operation %llu not found", uid);
	case PVM_ECORRUPT:
	case PVM_EVERSION:
		return api_reply_error(
		        r, MHD_HTTP_INTERNAL_SERVER_ERROR, "corrupt", NULL, NULL,
		        "operation %llu: record is unreadable (%s); it is quarantined", uid,
		        pvm_strerror(rc));
	case PVM_EFULL:
		return api_reply_error(r, MHD_HTTP_INSUFFICIENT_STORAGE, "journal_full", NULL, NULL,
		                       "the journal is full: %s", pvm_strerror(rc));
	case PVM_ECLOSED:
		return api_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "not_ready", NULL, NULL,
		                       "the journal is closing");
	default:
		return api_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, NULL,
		                       "%s operation %llu: %s", doing, uid, pvm_strerror(rc));
	}
}

/* Parses the body as a JSON object. NULL body: *out = NULL when optional, else 400.
 * Returns MHD_YES with *answered = false on success. */
static enum MHD_Result parse_body(struct request *r, bool optional, json_t **out, bool *answered)
{
	*out = NULL;
	*answered = true;
	if (!r->body || r->len == 0) {
		if (optional) {
			*answered = false;
			return MHD_YES;
		}
		return bad(r, "body", "a JSON object body is required");
	}
	json_error_t je;
	json_t *j = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return bad(r, "body", "malformed JSON at line %d column %d: %s", je.line, je.column,
		           je.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return bad(r, "body", "the body must be a JSON object");
	}
	*out = j;
	*answered = false;
	return MHD_YES;
}

/* First key of obj that is not in allowed (NULL-terminated), or NULL. */
static const char *unknown_key(const json_t *obj, const char *const *allowed)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v)
	{
		bool ok = false;
		for (size_t i = 0; allowed[i] && !ok; i++)
			ok = strcmp(k, allowed[i]) == 0;
		if (!ok)
			return k;
	}
	return NULL;
}

struct args_check {
	const char *const *allowed;
	const char *unknown;
};

static enum MHD_Result arg_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
	(void)kind;
	(void)value;
	struct args_check *c = cls;
	for (size_t i = 0; c->allowed[i]; i++)
		if (strcmp(key, c->allowed[i]) == 0)
			return MHD_YES;
	c->unknown = key;
	return MHD_NO;
}

/* NULL when every query argument is in allowed, else the first unknown one. */
static const char *unknown_arg(struct request *r, const char *const *allowed)
{
	struct args_check c = {allowed, NULL};
	MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, arg_iter, &c);
	return c.unknown;
}

static const char *arg(struct request *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

static bool parse_u64(const char *s, uint64_t *out)
{
	if (!s || !*s)
		return false;
	if (strcmp(s, "0") == 0) {
		*out = 0;
		return true;
	}
	return parse_id(s, strlen(s), out);
}

/* ?wait=S: seconds (fractions allowed), >= 0, capped at max_wait_s. */
static bool parse_wait(struct request *r, double *out)
{
	const char *s = arg(r, "wait");
	*out = 0;
	if (!s)
		return true;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (!*s || *end || errno || !isfinite(v) || v < 0)
		return false;
	if (v > r->api->o.max_wait_s)
		v = r->api->o.max_wait_s;
	*out = v;
	return true;
}

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* ---- operations ---- */

static enum MHD_Result unknown_type(struct request *r, const char *type)
{
	const char *names[64];
	size_t n = pvm_engine_type_names(r->api->o.engine, names, 64);
	char list[512] = "";
	size_t o = 0;
	for (size_t i = 0; i < n && i < 64 && o < sizeof(list); i++)
		o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", names[i]);
	return bad(r, "type", "unknown operation type \"%.64s\" (known: %s)", type,
	           n ? list : "none");
}

/* Second half of POST /v1/operations: the submitter journaled it and resumed r. */
static enum MHD_Result submit_finish(struct request *r)
{
	struct pvm_api *api = r->api;
	int rc;
	uint64_t id;
	bool existed;
	if (!api_submit_result(r, &rc, &id, &existed))
		return api_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, NULL,
		                       "submission resumed before it was journaled");
	if (rc == PVM_ECONFLICT)
		return api_reply_error(r, MHD_HTTP_CONFLICT, "conflict", NULL,
		                       json_pack("{s:I}", "existing_id", (json_int_t)id),
		                       "idempotency key already used by operation %llu with other "
		                       "type, instance or params",
		                       (unsigned long long)id);
	if (rc == PVM_EINVAL)
		return bad(r, "body", "the journal refused the operation: %s", pvm_strerror(rc));
	if (rc)
		return queue_error(r, rc, 0, "submitting");
	if (existed) {
		struct pvm_op *op = NULL;
		const char *state = "queued";
		if (pvm_queue_get(api->o.queue, id, &op) == 0)
			state = pvm_op_state_name(op->state);
		enum MHD_Result ret =
		        api_reply_json(r, MHD_HTTP_OK,
		                       json_pack("{s:I, s:s, s:b}", "id", (json_int_t)id, "state",
		                                 state, "existing", 1),
		                       false);
		pvm_op_free(op);
		return ret;
	}
	return api_reply_json(r, MHD_HTTP_ACCEPTED,
	                      json_pack("{s:I, s:s}", "id", (json_int_t)id, "state", "queued"),
	                      false);
}

static enum MHD_Result submit(struct request *r)
{
	struct pvm_api *api = r->api;
	if (r->sub)
		return submit_finish(r);
	static const char *const fields[] = {"type",       "instance_uuid", "idempotency_key",
	                                     "request_id", "params",        "deadline_s",
	                                     NULL};
	json_t *body, *clean = NULL, *secrets = NULL;
	bool answered;
	enum MHD_Result ret = parse_body(r, false, &body, &answered);
	if (answered)
		return ret;
	const char *k = unknown_key(body, fields);
	if (k) {
		ret = bad(r, k, "unknown field \"%.64s\"", k);
		goto out;
	}
	json_t *jt = json_object_get(body, "type");
	if (!json_is_string(jt)) {
		ret = bad(r, "type", jt ? "type must be a string" : "type is required");
		goto out;
	}
	const char *type = json_string_value(jt);
	const struct pvm_op_type *t = pvm_engine_type(api->o.engine, type);
	if (!t) {
		ret = unknown_type(r, type);
		goto out;
	}
	if (t->internal) {
		ret = bad(r, "type",
		          "operation type %s is internal: powervmd submits it itself (see the "
		          "image endpoints of docs/api.md)",
		          t->name);
		goto out;
	}
	char uuid[PVM_UUID_LEN + 1] = "";
	json_t *ju = json_object_get(body, "instance_uuid");
	if (ju && !json_is_null(ju)) {
		if (!json_is_string(ju) || !pvm_is_uuid(json_string_value(ju))) {
			ret = bad(r, "instance_uuid",
			          "instance_uuid must be a UUID (8-4-4-4-12 hex digits)");
			goto out;
		}
		for (size_t i = 0; i <= PVM_UUID_LEN; i++)
			uuid[i] = (char)tolower((unsigned char)json_string_value(ju)[i]);
	}
	if (t->requires_instance && !uuid[0]) {
		ret = bad(r, "instance_uuid", "operations of type %s require an instance_uuid",
		          t->name);
		goto out;
	}
	/* Params that mirror nova's arguments carry the instance too: both must agree. */
	const char *pu = json_string_value(json_object_get(
	        json_object_get(json_object_get(body, "params"), "instance"), "uuid"));
	if (pu && strcasecmp(pu, uuid) != 0) {
		ret = bad(r, "params.instance.uuid",
		          "params.instance.uuid (%.40s) is not the operation's instance_uuid (%s)",
		          pu, uuid[0] ? uuid : "none");
		goto out;
	}
	const char *key = NULL, *reqid = NULL;
	json_t *jk = json_object_get(body, "idempotency_key");
	if (jk && !json_is_null(jk)) {
		key = json_string_value(jk);
		if (!key || !*key || strlen(key) >= PVM_IDEM_KEY_MAX || !printable(key)) {
			ret = bad(r, "idempotency_key",
			          "idempotency_key must be a string of 1 to %d printable bytes",
			          PVM_IDEM_KEY_MAX - 1);
			goto out;
		}
	}
	json_t *jr = json_object_get(body, "request_id");
	if (jr && !json_is_null(jr)) {
		reqid = json_string_value(jr);
		if (!reqid || strlen(reqid) >= PVM_REQUEST_ID_MAX || !printable(reqid)) {
			ret = bad(r, "request_id",
			          "request_id must be a string of at most %d printable bytes",
			          PVM_REQUEST_ID_MAX - 1);
			goto out;
		}
	}
	json_t *jp = json_object_get(body, "params");
	json_t *params = jp ? json_incref(jp) : json_object();
	if (!json_is_object(params)) {
		json_decref(params);
		ret = bad(r, "params", "params must be an object");
		goto out;
	}
	double deadline_s = 0;
	json_t *jd = json_object_get(body, "deadline_s");
	if (jd && !json_is_null(jd)) {
		deadline_s = json_number_value(jd);
		if (!json_is_number(jd) || !(deadline_s > 0) || deadline_s > DEADLINE_MAX_S) {
			json_decref(params);
			ret = bad(r, "deadline_s",
			          "deadline_s must be a number of seconds in (0, %d]",
			          DEADLINE_MAX_S);
			goto out;
		}
	}

	uint32_t version = 0;
	int64_t deadline_ms = 0;
	char field[128] = "", msg[512] = "";
	int rc = pvm_engine_prepare(api->o.engine, type, params, &clean, &secrets, &version,
	                            &deadline_ms, field, sizeof(field), msg, sizeof(msg));
	json_decref(params);
	if (rc == PVM_EINVAL) {
		char full[160];
		if (!field[0])
			snprintf(full, sizeof(full), "params");
		else if (strncmp(field, "params", 6) == 0 || strcmp(field, "type") == 0)
			snprintf(full, sizeof(full), "%s", field);
		else
			snprintf(full, sizeof(full), "params.%s", field);
		ret = bad(r, full, "%s", msg[0] ? msg : "invalid params");
		goto out;
	}
	if (rc) {
		ret = api_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, NULL,
		                      "preparing the operation: %s", pvm_strerror(rc));
		goto out;
	}
	int64_t now = pvm_now_ms();
	/* The engine's deadline is the type's default duration from now; an epoch value
	 * (later than 2001) is taken as it is. The request's deadline_s wins. */
	if (deadline_s > 0)
		deadline_ms = now + (int64_t)(deadline_s * 1000);
	else if (deadline_ms > 0 && deadline_ms < 1000000000000LL)
		deadline_ms += now;

	struct submission *sub = calloc(1, sizeof(*sub));
	if (!sub) {
		ret = MHD_NO;
		goto out;
	}
	pvm_strlcpy(sub->type, type, sizeof(sub->type));
	pvm_strlcpy(sub->uuid, uuid, sizeof(sub->uuid));
	if (key)
		pvm_strlcpy(sub->key, key, sizeof(sub->key));
	if (reqid)
		pvm_strlcpy(sub->reqid, reqid, sizeof(sub->reqid));
	sub->params = clean;
	sub->secrets = secrets;
	clean = secrets = NULL;
	sub->s = (struct pvm_op_submit){
	        .type = sub->type,
	        .instance_uuid = sub->uuid[0] ? sub->uuid : NULL,
	        .idempotency_key = key ? sub->key : NULL,
	        .request_id = reqid ? sub->reqid : NULL,
	        .table_version = version,
	        .params = sub->params,
	        .secrets = sub->secrets,
	        .deadline_ms = deadline_ms,
	};
	r->sub = sub; /* freed with the request */
	if (api_submit_enqueue(r))
		ret = MHD_YES; /* answered by submit_finish() once journaled */
	else
		ret = not_ready(r, "the API (stopping)");
out:
	json_decref(secrets);
	json_decref(clean);
	json_decref(body);
	return ret;
}

static enum MHD_Result get_op(struct request *r)
{
	static const char *const args[] = {"wait", NULL};
	const char *u = unknown_arg(r, args);
	if (u)
		return bad(r, u, "unknown query argument \"%.64s\"", u);
	double wait;
	if (!parse_wait(r, &wait))
		return bad(r, "wait", "wait must be a number of seconds >= 0");
	bool resumed = api_was_resumed(r);
	uint64_t gen = pvm_queue_generation(r->api->o.queue);
	struct pvm_op *op = NULL;
	int rc = pvm_queue_get(r->api->o.queue, r->id, &op);
	if (rc)
		return queue_error(r, rc, r->id, "reading");
	if (wait > 0 && !resumed && pvm_op_state_active(op->state)) {
		r->wait_kind = WAIT_OP;
		r->wait_arg = r->id;
		r->gen_seen = gen;
		r->deadline_ns = pvm_mono_ns() + (int64_t)(wait * 1e9);
		if (api_suspend(r)) {
			pvm_op_free(op);
			return MHD_YES;
		}
	}
	json_t *j = pvm_op_to_json(op);
	pvm_op_free(op);
	return api_reply_json(r, MHD_HTTP_OK, j, false);
}

static enum MHD_Result list_ops(struct request *r)
{
	static const char *const args[] = {"state", "instance", "type", "limit", "after", NULL};
	const char *u = unknown_arg(r, args);
	if (u)
		return bad(r, u, "unknown query argument \"%.64s\"", u);
	struct pvm_queue_filter f = {.state = PVM_KEEP};
	const char *s;
	if ((s = arg(r, "state"))) {
		enum pvm_op_state st;
		if (pvm_op_state_parse(s, &st))
			return bad(r, "state",
			           "state must be one of queued, running, waiting, reverting, "
			           "succeeded, failed, cancelled");
		f.state = (int)st;
	}
	char uuid[PVM_UUID_LEN + 1];
	if ((s = arg(r, "instance"))) {
		if (!pvm_is_uuid(s))
			return bad(r, "instance", "instance must be a UUID");
		for (size_t i = 0; i <= PVM_UUID_LEN; i++)
			uuid[i] = (char)tolower((unsigned char)s[i]);
		f.instance_uuid = uuid;
	}
	if ((s = arg(r, "type"))) {
		if (!*s || strlen(s) >= PVM_OP_TYPE_MAX || !printable(s))
			return bad(r, "type", "type must be an operation type name");
		f.type = s;
	}
	uint64_t limit = LIST_DEFAULT_LIMIT;
	if ((s = arg(r, "limit")) && (!parse_u64(s, &limit) || limit < 1 || limit > LIST_MAX_LIMIT))
		return bad(r, "limit", "limit must be an integer from 1 to %d", LIST_MAX_LIMIT);
	if ((s = arg(r, "after")) && !parse_u64(s, &f.after_id))
		return bad(r, "after", "after must be an operation id (integer >= 0)");
	f.limit = (size_t)limit + 1; /* one more tells whether there is a next page */
	struct pvm_op **ops = NULL;
	size_t n = 0, damaged = 0;
	int rc = pvm_queue_list(r->api->o.queue, &f, &ops, &n, &damaged);
	if (rc)
		return queue_error(r, rc, 0, "listing");
	json_t *arr = json_array();
	size_t shown = n > limit ? (size_t)limit : n;
	for (size_t i = 0; i < shown; i++)
		json_array_append_new(arr, pvm_op_to_json(ops[i]));
	json_t *next = n > limit ? json_integer((json_int_t)ops[shown - 1]->id) : json_null();
	pvm_op_list_free(ops, n);
	return api_reply_json(r, MHD_HTTP_OK,
	                      json_pack("{s:o, s:o, s:I}", "operations", arr, "next_after", next,
	                                "damaged", (json_int_t)damaged),
	                      false);
}

static enum MHD_Result cancel_op(struct request *r)
{
	json_t *body;
	bool answered;
	enum MHD_Result ret = parse_body(r, true, &body, &answered);
	if (answered)
		return ret;
	static const char *const none[] = {NULL};
	const char *k = body ? unknown_key(body, none) : NULL;
	if (k) {
		ret = bad(r, k, "unknown field \"%.64s\"", k);
		json_decref(body);
		return ret;
	}
	json_decref(body);
	enum pvm_op_state st = PVM_OP_QUEUED;
	int rc = pvm_queue_cancel(r->api->o.queue, r->id, &st);
	if (rc == PVM_ETRANSITION)
		return api_reply_error(r, MHD_HTTP_CONFLICT, "conflict", NULL,
		                       json_pack("{s:s}", "state", pvm_op_state_name(st)),
		                       "operation %llu is %s: it cannot be cancelled",
		                       (unsigned long long)r->id, pvm_op_state_name(st));
	if (rc)
		return queue_error(r, rc, r->id, "cancelling");
	pvm_engine_notify(r->api->o.engine);
	return api_reply_json(r, MHD_HTTP_OK,
	                      json_pack("{s:I, s:s, s:b}", "id", (json_int_t)r->id, "state",
	                                pvm_op_state_name(st), "cancel_requested",
	                                pvm_op_state_active(st)),
	                      false);
}

static enum MHD_Result op_state_conflict(struct request *r, const char *what)
{
	struct pvm_op *op = NULL;
	const char *state = "?";
	if (pvm_queue_get(r->api->o.queue, r->id, &op) == 0)
		state = pvm_op_state_name(op->state);
	enum MHD_Result ret = api_reply_error(
	        r, MHD_HTTP_CONFLICT, "conflict", NULL, json_pack("{s:s}", "state", state),
	        "operation %llu is %s: %s", (unsigned long long)r->id, state, what);
	pvm_op_free(op);
	return ret;
}

static enum MHD_Result retry_op(struct request *r)
{
	json_t *body;
	bool answered;
	enum MHD_Result ret = parse_body(r, true, &body, &answered);
	if (answered)
		return ret;
	static const char *const none[] = {NULL};
	const char *k = body ? unknown_key(body, none) : NULL;
	if (k) {
		ret = bad(r, k, "unknown field \"%.64s\"", k);
		json_decref(body);
		return ret;
	}
	json_decref(body);
	int rc = pvm_queue_retry(r->api->o.queue, r->id);
	if (rc == PVM_ETRANSITION)
		return op_state_conflict(r, "only a failed operation can be retried");
	if (rc == PVM_ENOSECRET)
		return api_reply_error(r, MHD_HTTP_CONFLICT, "secrets_erased", NULL, NULL,
		                       "operation %llu had secret params, erased when it failed: "
		                       "submit it again instead",
		                       (unsigned long long)r->id);
	if (rc)
		return queue_error(r, rc, r->id, "retrying");
	pvm_engine_notify(r->api->o.engine);
	return api_reply_json(r, MHD_HTTP_OK,
	                      json_pack("{s:I, s:s}", "id", (json_int_t)r->id, "state", "queued"),
	                      false);
}

static bool signal_name_ok(const char *s)
{
	if (!s || !*s || strlen(s) >= SIGNAL_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
			return false;
	return true;
}

static enum MHD_Result signal_op(struct request *r)
{
	static const char *const fields[] = {"name", "value", NULL};
	json_t *body;
	bool answered;
	enum MHD_Result ret = parse_body(r, false, &body, &answered);
	if (answered)
		return ret;
	const char *k = unknown_key(body, fields);
	json_t *jn = json_object_get(body, "name"), *jv = json_object_get(body, "value");
	if (k) {
		ret = bad(r, k, "unknown field \"%.64s\"", k);
	} else if (!signal_name_ok(json_string_value(jn))) {
		ret = bad(r, "name",
		          "name must be a string of 1 to %d letters, digits, '_', '-' or '.'",
		          SIGNAL_NAME_MAX - 1);
	} else if (!jv) {
		ret = bad(r, "value", "value is required (any JSON value)");
	} else {
		int rc = pvm_queue_signal(r->api->o.queue, r->id, json_string_value(jn), jv);
		if (rc == PVM_ETRANSITION) {
			ret = op_state_conflict(r, "only an active operation takes signals");
		} else if (rc) {
			ret = queue_error(r, rc, r->id, "signalling");
		} else {
			pvm_engine_notify(r->api->o.engine);
			ret = api_reply_json(r, MHD_HTTP_OK,
			                     json_pack("{s:I, s:s}", "id", (json_int_t)r->id,
			                               "signal", json_string_value(jn)),
			                     false);
		}
	}
	json_decref(body);
	return ret;
}

static enum MHD_Result purge(struct request *r)
{
	static const char *const fields[] = {"older_than_s", NULL};
	json_t *body;
	bool answered;
	enum MHD_Result ret = parse_body(r, true, &body, &answered);
	if (answered)
		return ret;
	const char *k = body ? unknown_key(body, fields) : NULL;
	json_t *jo = body ? json_object_get(body, "older_than_s") : NULL;
	size_t n = 0;
	int rc;
	if (k) {
		ret = bad(r, k, "unknown field \"%.64s\"", k);
		goto out;
	}
	if (jo && !json_is_null(jo)) {
		double s = json_number_value(jo);
		if (!json_is_number(jo) || !(s >= 0) || s > 1e10) {
			ret = bad(r, "older_than_s",
			          "older_than_s must be a number of seconds >= 0");
			goto out;
		}
		rc = pvm_queue_purge(r->api->o.queue, pvm_now_ms() - (int64_t)(s * 1000), 0, &n);
	} else {
		rc = pvm_queue_purge_expired(r->api->o.queue, &n);
	}
	if (rc)
		ret = queue_error(r, rc, 0, "purging");
	else
		ret = api_reply_json(r, MHD_HTTP_OK, json_pack("{s:I}", "purged", (json_int_t)n),
		                     false);
out:
	json_decref(body);
	return ret;
}

static enum MHD_Result reconcile(struct request *r)
{
	static const char *const fields[] = {"instances", NULL};
	json_t *body, *report = NULL;
	bool answered;
	enum MHD_Result ret = parse_body(r, false, &body, &answered);
	if (answered)
		return ret;
	const char *k = unknown_key(body, fields);
	json_t *insts = json_object_get(body, "instances");
	char field[64];
	if (k) {
		ret = bad(r, k, "unknown field \"%.64s\"", k);
		goto out;
	}
	if (!json_is_array(insts)) {
		ret = bad(r, "instances", "instances must be an array");
		goto out;
	}
	size_t i;
	json_t *el;
	json_array_foreach(insts, i, el)
	{
		json_t *ju = json_object_get(el, "uuid"), *jvs = json_object_get(el, "vm_state");
		json_t *jts = json_object_get(el, "task_state");
		if (!json_is_object(el)) {
			snprintf(field, sizeof(field), "instances[%zu]", i);
			ret = bad(r, field, "each instance must be an object");
			goto out;
		}
		if (!json_is_string(ju) || !pvm_is_uuid(json_string_value(ju))) {
			snprintf(field, sizeof(field), "instances[%zu].uuid", i);
			ret = bad(r, field, "uuid must be a UUID");
			goto out;
		}
		if (!json_is_string(jvs)) {
			snprintf(field, sizeof(field), "instances[%zu].vm_state", i);
			ret = bad(r, field, "vm_state must be a string");
			goto out;
		}
		if (jts && !json_is_null(jts) && !json_is_string(jts)) {
			snprintf(field, sizeof(field), "instances[%zu].task_state", i);
			ret = bad(r, field, "task_state must be a string or null");
			goto out;
		}
	}
	int rc = pvm_engine_reconcile(r->api->o.engine, body, &report);
	if (rc == PVM_EINVAL)
		ret = bad(r, "instances", "the engine refused the view: %s", pvm_strerror(rc));
	else if (rc)
		ret = queue_error(r, rc, 0, "reconciling");
	else {
		if (r->api->o.reconciled)
			r->api->o.reconciled(r->api->o.arg, body);
		ret = api_reply_json(r, MHD_HTTP_OK, report ? report : json_object(), false);
	}
out:
	json_decref(body);
	return ret;
}

static enum MHD_Result pause_resume(struct request *r, bool pause)
{
	json_t *body;
	bool answered;
	enum MHD_Result ret = parse_body(r, true, &body, &answered);
	if (answered)
		return ret;
	static const char *const none[] = {NULL};
	const char *k = body ? unknown_key(body, none) : NULL;
	if (k) {
		ret = bad(r, k, "unknown field \"%.64s\"", k);
		json_decref(body);
		return ret;
	}
	json_decref(body);
	if (pause)
		pvm_engine_pause(r->api->o.engine);
	else
		pvm_engine_resume(r->api->o.engine);
	pvm_info("api: engine %s by uid %u", pause ? "paused" : "resumed",
	         r->peer ? (unsigned)r->peer->uid : 0u);
	return api_reply_json(r, MHD_HTTP_OK,
	                      json_pack("{s:b}", "paused", pvm_engine_paused(r->api->o.engine)),
	                      false);
}

/* ---- reads ---- */

static enum MHD_Result events(struct request *r)
{
	struct pvm_api *api = r->api;
	static const char *const args[] = {"after", "wait", "limit", NULL};
	const char *u = unknown_arg(r, args);
	if (u)
		return bad(r, u, "unknown query argument \"%.64s\"", u);
	if (!api->o.events)
		return not_ready(r, "the event log");
	uint64_t after = 0, limit = api->o.events_max;
	const char *s;
	if ((s = arg(r, "after")) && !parse_u64(s, &after))
		return bad(r, "after", "after must be an event sequence number (integer >= 0)");
	if ((s = arg(r, "limit")) &&
	    (!parse_u64(s, &limit) || limit < 1 || limit > api->o.events_max))
		return bad(r, "limit", "limit must be an integer from 1 to %zu", api->o.events_max);
	double wait;
	if (!parse_wait(r, &wait))
		return bad(r, "wait", "wait must be a number of seconds >= 0");
	bool resumed = api_was_resumed(r);
	if (wait > 0 && !resumed && !pvm_eventlog_ready(api->o.events, after)) {
		r->wait_kind = WAIT_EVENTS;
		r->wait_arg = after;
		r->deadline_ns = pvm_mono_ns() + (int64_t)(wait * 1e9);
		if (api_suspend(r))
			return MHD_YES;
	}
	json_t *arr = NULL;
	uint64_t last = 0;
	bool missed = false;
	int rc = pvm_eventlog_read(api->o.events, after, (size_t)limit, &arr, &last, &missed);
	if (rc)
		return queue_error(r, rc, 0, "reading events");
	return api_reply_json(r, MHD_HTTP_OK,
	                      json_pack("{s:o, s:I, s:b}", "events", arr, "last", (json_int_t)last,
	                                "missed", missed),
	                      false);
}

static enum MHD_Result host(struct request *r)
{
	json_t *j = r->api->o.host ? r->api->o.host(r->api->o.arg) : NULL;
	if (!j)
		return not_ready(r, "host information");
	return api_reply_json(r, MHD_HTTP_OK, j, false);
}

static enum MHD_Result scrub(struct request *r)
{
	json_t *j = r->api->o.scrub ? r->api->o.scrub(r->api->o.arg) : NULL;
	if (!j)
		return not_ready(r, "the scrub report");
	return api_reply_json(r, MHD_HTTP_OK, j, false);
}

static enum MHD_Result instances(struct request *r, bool one)
{
	if (!r->api->o.instances)
		return not_ready(r, "instance information");
	json_t *j = r->api->o.instances(r->api->o.arg, one ? r->uuid : NULL);
	if (!j && one)
		return api_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, NULL,
		                       "instance %s not found", r->uuid);
	if (!j)
		return not_ready(r, "instance information");
	return api_reply_json(r, MHD_HTTP_OK, j, false);
}

static enum MHD_Result metrics(struct request *r)
{
	char *text = pvm_metrics_render(r->api->metrics);
	if (!text)
		return api_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL, NULL,
		                       "out of memory rendering metrics");
	return api_reply_text(r, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text);
}

static enum MHD_Result healthz(struct request *r)
{
	struct pvm_api *api = r->api;
	bool ready = api->o.ready ? api->o.ready(api->o.arg) : true;
	if (!ready)
		return api_reply_json(r, MHD_HTTP_SERVICE_UNAVAILABLE,
		                      json_pack("{s:s}", "status", "starting"), false);
	bool paused = api->o.engine ? pvm_engine_paused(api->o.engine) : false;
	return api_reply_json(r, MHD_HTTP_OK,
	                      json_pack("{s:s, s:b}", "status", "ready", "paused", paused), false);
}

/* Endpoints that take a query string: the others refuse any argument. */
static bool takes_args(enum route rt, bool is_get)
{
	return (rt == R_OPS && is_get) || rt == R_OP || rt == R_EVENTS ||
	       (rt == R_IMAGE && !is_get);
}

bool api_route_takes_body(enum route rt, bool is_get)
{
	return !is_get && rt != R_NONE;
}

enum MHD_Result api_dispatch(struct request *r)
{
	static const char *const none[] = {NULL};
	if (!takes_args(r->route, r->is_get)) {
		const char *u = unknown_arg(r, none);
		if (u)
			return bad(r, u, "unknown query argument \"%.64s\"", u);
	}
	if (r->len > 0 && !api_route_takes_body(r->route, r->is_get))
		return bad(r, "body", "this endpoint takes no body");
	/* Reads of the journal work without an engine; what changes work needs it. */
	bool needs_engine = !r->is_get && r->route != R_OPS_PURGE && r->route != R_NONE;
	if (needs_engine && !r->api->o.engine)
		return not_ready(r, "the step engine");
	switch (r->route) {
	case R_OPS:
		return r->is_get ? list_ops(r) : submit(r);
	case R_OPS_PURGE:
		return purge(r);
	case R_OP:
		return get_op(r);
	case R_OP_CANCEL:
		return cancel_op(r);
	case R_OP_RETRY:
		return retry_op(r);
	case R_OP_SIGNAL:
		return signal_op(r);
	case R_RECONCILE:
		return reconcile(r);
	case R_PAUSE:
		return pause_resume(r, true);
	case R_RESUME:
		return pause_resume(r, false);
	case R_HOST:
		return host(r);
	case R_INSTANCES:
		return instances(r, false);
	case R_INSTANCE:
		return instances(r, true);
	case R_EVENTS:
		return events(r);
	case R_METRICS:
		return metrics(r);
	case R_HEALTHZ:
		return healthz(r);
	case R_SCRUB:
		return scrub(r);
	case R_IMAGES:
	case R_IMAGE:
	case R_CDRIVE:
		return api_images_dispatch(r);
	default:
		return api_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, NULL,
		                       "no such endpoint");
	}
}
