/* op_cache_image.c: the internal operation types `cache_image` and `uncache_image`
 * (powervm_disk_driver = ssp), submitted by the API's image endpoints (docs/api.md,
 * Images), never by callers.
 *
 * cache_image puts a verified spool file (<state_dir>/images/<id>.raw) into the shared
 * storage pool as the image LU `image_<id>`, coordinating with the other hosts of the pool
 * through marker LUs, as the REST reference describes ("Shared storage pool image upload
 * across hosts"):
 *   find_pool  the pool (powervm_cluster_name, or the only one), its default tier, a VIOS
 *              of this managed system for the upload;
 *   claim      image_<id> present and no marker for it: cached, done. Else our marker
 *              `part<host tag>image_<id>` is created (only while no other marker exists)
 *              and the LUs listed again: the lowest-named marker wins, but goes on only
 *              once it is the only marker; a loser deletes its marker and waits 30-60 s
 *              (jitter; at most a quarter of powervm_image_marker_timeout_s) before looking
 *              again. Another host's marker seen continuously (first-seen times are kept
 *              in the checkpoint) for powervm_image_marker_timeout_s is deleted as stale.
 *              Why the winner waits for the others to go: a host that listed before our
 *              marker existed may have won alone and be uploading under a higher name; it
 *              never sees ours as long as it found none, so at most one uploads.
 *   upload     (winner) the image LU (VirtualIO_Image, thin, ceil(size) GB), a web File
 *              for it (BROKERED_DISK_IMAGE, SHA256, size), the contents streamed from the
 *              spool file, the File deleted. An image LU present without a recorded
 *              outcome (a crash, a lost answer) is incomplete: deleted and made again.
 *   release    our marker deleted, the spool file deleted, the metadata marked ready.
 * Undo: the upload's partial LU and File, then our marker (the marker always goes).
 *
 * uncache_image removes image_<id> from the pool (refused while linked clones use it:
 * the server answers 409, HSCL2975) and the local metadata.
 *
 * params: {"image_id", "sha256", "size", "os_hash_algo", "os_hash_value"} (cache_image),
 * {"image_id"} (uncache_image).
 */
#include "image.h"
#include "names.h"
#include "op_power.h"
#include "ops.h"

#include "pvm/client.h"
#include "pvm/config.h"
#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/metrics.h"
#include "pvm/pvm_objects.h"
#include "pvm/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MARKER_GB          0.001
#define LOSER_WAIT_MIN_MS  30000
#define LOSER_WAIT_SPAN_MS 30000
#define WINNER_WAIT_MS     2000
#define DEFAULT_TIMEOUT_S  1800

static const char *reqid(const struct pvm_step_ctx *ctx)
{
	return ctx->op->request_id[0] ? ctx->op->request_id : NULL;
}

static const char *image_id(const struct pvm_step_ctx *ctx)
{
	return json_string_value(json_object_get(ctx->op->params, "image_id"));
}

static void rest_failure(struct pvm_step_result *res, int rc, const struct pvm_rest_error *err,
                         const char *what)
{
	if (err->reason[0])
		pvm_strlcpy(res->error_code, err->reason, sizeof(res->error_code));
	const char *m = err->message[0] ? err->message : pvm_strerror(rc);
	if (pvm_client_transient(rc))
		pvm_step_retry(res, rc, "%s: %s", what, m);
	else
		pvm_step_fail(res, rc, "%s: %s", what, m);
}

static int64_t timeout_ms(const struct pvm_step_ctx *ctx)
{
	int64_t s = ctx->config ? ctx->config->image_marker_timeout_s : DEFAULT_TIMEOUT_S;
	return (s > 0 ? s : DEFAULT_TIMEOUT_S) * 1000;
}

/* The pool found by find_pool (its checkpoint). */
static bool ref_of(const struct pvm_step_ctx *ctx, struct pvm_ssp_ref *ref, char *vios, size_t vn)
{
	json_t *d = json_object_get(ctx->op->checkpoints, "find_pool");
	const char *su = json_string_value(json_object_get(d, "ssp_uuid"));
	const char *tu = json_string_value(json_object_get(d, "tier_uuid"));
	if (!su || !tu)
		return false;
	memset(ref, 0, sizeof(*ref));
	pvm_strlcpy(ref->ssp_uuid, su, sizeof(ref->ssp_uuid));
	pvm_strlcpy(ref->tier_uuid, tu, sizeof(ref->tier_uuid));
	const char *n = json_string_value(json_object_get(d, "ssp_name"));
	pvm_strlcpy(ref->ssp_name, n ? n : "", sizeof(ref->ssp_name));
	const char *h = json_string_value(json_object_get(d, "tier_href"));
	pvm_strlcpy(ref->tier_href, h ? h : "", sizeof(ref->tier_href));
	if (vios) {
		const char *v = json_string_value(json_object_get(d, "vios_uuid"));
		pvm_strlcpy(vios, v ? v : "", vn);
	}
	return true;
}

static bool need_ref(struct pvm_step_ctx *ctx, struct pvm_ssp_ref *ref, char *vios, size_t vn,
                     struct pvm_step_result *res)
{
	if (ref_of(ctx, ref, vios, vn))
		return true;
	pvm_step_fail(res, PVM_EINVAL, "step find_pool left no pool in its checkpoint");
	return false;
}

/* ---- find_pool ---- */

static void find_pool_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	struct pvm_ssp_ref ref;
	struct pvm_rest_error err = {0};
	int rc = pvm_image_ssp_ref(ctx, &ref, &err);
	if (rc) {
		rest_failure(res, rc, &err, "finding the shared storage pool");
		return;
	}
	json_object_set_new(ctx->data, "ssp_uuid", json_string(ref.ssp_uuid));
	json_object_set_new(ctx->data, "tier_uuid", json_string(ref.tier_uuid));
	json_object_set_new(ctx->data, "ssp_name", json_string(ref.ssp_name));
	json_object_set_new(ctx->data, "tier_href", json_string(ref.tier_href));
	if (strcmp(ctx->op->type, "cache_image") == 0) {
		/* the VIOS that receives the upload: the first of this managed system */
		char path[160];
		snprintf(path, sizeof(path), "uom/ManagedSystem/%s/VirtualIOServer", ctx->ms_uuid);
		struct pvm_resp resp = {0};
		struct pvm_vios_list *vl = NULL;
		rc = pvm_client_get(ctx->client, path, "group=None", reqid(ctx), &resp, &err);
		if (rc == 0)
			rc = pvm_parse_vios(resp.body, resp.len, resp.etag, &vl, &err);
		pvm_resp_fini(&resp);
		if (rc) {
			rest_failure(res, rc, &err, "listing the managed system's VIOSes");
			return;
		}
		const char *vu = NULL;
		for (size_t i = 0; i < vl->count && !vu; i++)
			vu = vl->items[i].lpar.uuid ? vl->items[i].lpar.uuid
			                            : vl->items[i].lpar.meta.uuid;
		if (vu)
			json_object_set_new(ctx->data, "vios_uuid", json_string(vu));
		pvm_vios_list_free(vl);
		if (!vu) {
			pvm_step_fail(res, PVM_ENOTFOUND,
			              "managed system %s has no VIOS to receive the upload",
			              ctx->ms_uuid);
			return;
		}
	}
	res->verdict = PVM_STEP_DONE;
}

/* ---- claim ---- */

struct lus_view {
	struct pvm_logical_unit_list *l;
	const struct pvm_logical_unit *image; /* image_<id> (the first, when several) */
	const struct pvm_logical_unit *mine;  /* our marker */
	const struct pvm_logical_unit *others[32];
	size_t nothers;
	const char *lowest; /* lowest-named marker, ours included */
	bool removed_stale; /* settle_stale deleted a dead uploader's marker */
};

static int view_lus(struct pvm_step_ctx *ctx, const struct pvm_ssp_ref *ref, struct lus_view *v,
                    struct pvm_rest_error *err)
{
	memset(v, 0, sizeof(*v));
	char img[PVM_NAME_MAX], tag[9];
	pvm_name_image_lu(image_id(ctx), img);
	pvm_name_host_tag(ctx->ms_uuid, tag);
	int rc = pvm_image_list_lus(ctx, ref, &v->l, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < v->l->count; i++) {
		const struct pvm_logical_unit *lu = &v->l->items[i];
		char id[PVM_IMAGE_ID_MAX], t[9];
		if (strcmp(lu->name, img) == 0) {
			if (!v->image)
				v->image = lu;
			continue;
		}
		if (!pvm_name_parse_marker(lu->name, id, sizeof(id), t) ||
		    strcmp(id, image_id(ctx)) != 0)
			continue;
		if (!v->lowest || strcmp(lu->name, v->lowest) < 0)
			v->lowest = lu->name;
		if (strcmp(t, tag) == 0)
			v->mine = lu;
		else if (v->nothers < 32)
			v->others[v->nothers++] = lu;
	}
	return 0;
}

static void view_free(struct lus_view *v)
{
	pvm_logical_unit_list_free(v->l);
	v->l = NULL;
}

static int64_t jitter(const struct pvm_step_ctx *ctx, int64_t span)
{
	uint64_t x =
	        (uint64_t)ctx->now_ms * 0x9E3779B97F4A7C15ULL ^ ctx->op->id * 0xBF58476D1CE4E5B9ULL;
	x ^= x >> 31;
	return span > 0 ? (int64_t)(x % (uint64_t)span) : 0;
}

static int64_t capped(const struct pvm_step_ctx *ctx, int64_t ms)
{
	int64_t cap = timeout_ms(ctx) / 4;
	if (ms > cap)
		ms = cap;
	return ms < 500 ? 500 : ms;
}

/* Keeps the first-seen times of the other hosts' markers (dropping those gone) and deletes
 * the ones seen for the timeout. Returns 0, or a client error. */
static int settle_stale(struct pvm_step_ctx *ctx, const struct pvm_ssp_ref *ref, struct lus_view *v,
                        struct pvm_rest_error *err)
{
	json_t *old = json_object_get(ctx->data, "seen");
	json_t *seen = json_object();
	size_t keep = 0;
	for (size_t i = 0; i < v->nothers; i++) {
		const struct pvm_logical_unit *lu = v->others[i];
		/* keyed by UUID: a marker deleted and made again is a new one */
		const char *key = lu->meta.uuid ? lu->meta.uuid : lu->name;
		json_t *at = json_object_get(old, key);
		int64_t first = json_is_integer(at) ? json_integer_value(at) : ctx->now_ms;
		if (ctx->now_ms - first >= timeout_ms(ctx) && lu->meta.uuid) {
			pvm_log(PVM_LOG_WARNING, &ctx->log,
			        "image %s: marker %s of another host seen for %lld s (at least "
			        "powervm_image_marker_timeout_s): its uploader is taken as dead "
			        "and "
			        "the marker is deleted",
			        image_id(ctx), lu->name, (long long)((ctx->now_ms - first) / 1000));
			int rc = pvm_image_delete_lu(ctx, ref, lu->meta.uuid, err);
			if (rc) {
				json_decref(seen);
				return rc;
			}
			pvm_metrics_inc(pvm_engine_metrics(ctx->engine),
			                "powervmd_image_stale_markers_removed_total", NULL, 1);
			v->removed_stale = true;
			continue;
		}
		json_object_set_new(seen, key, json_integer(first));
		v->others[keep++] = lu;
	}
	v->nothers = keep;
	json_object_set_new(ctx->data, "seen", seen);
	/* the lowest marker may have been a stale one */
	v->lowest = v->mine ? v->mine->name : NULL;
	for (size_t i = 0; i < v->nothers; i++)
		if (!v->lowest || strcmp(v->others[i]->name, v->lowest) < 0)
			v->lowest = v->others[i]->name;
	return 0;
}

static int create_marker(struct pvm_step_ctx *ctx, const struct pvm_ssp_ref *ref,
                         struct pvm_rest_error *err, int *status)
{
	char tag[9], name[PVM_NAME_MAX];
	pvm_name_host_tag(ctx->ms_uuid, tag);
	pvm_name_marker_lu(tag, image_id(ctx), name);
	struct pvm_lu_spec spec = {.name = name, .capacity_gb = MARKER_GB, .thin = true};
	char *body = pvm_build_logical_unit(&spec, err);
	if (!body)
		return PVM_EINVAL;
	char path[160];
	snprintf(path, sizeof(path), "uom/Tier/%s/LogicalUnit", ref->tier_uuid);
	struct pvm_req rq = {.method = PVM_PUT,
	                     .path = path,
	                     .content_type =
	                             "application/vnd.ibm.powervm.uom+xml; type=LogicalUnit",
	                     .body = body,
	                     .body_len = strlen(body),
	                     .request_id = reqid(ctx)};
	struct pvm_resp resp = {0};
	int rc = pvm_client_request(ctx->client, &rq, &resp, err);
	*status = resp.status;
	pvm_resp_fini(&resp);
	free(body);
	return rc;
}

static void claim_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	struct pvm_ssp_ref ref;
	if (!need_ref(ctx, &ref, NULL, 0, res))
		return;
	struct pvm_rest_error err = {0};
	struct lus_view v;
	for (int round = 0; round < 4; round++) {
		int rc = view_lus(ctx, &ref, &v, &err);
		if (rc == 0)
			rc = settle_stale(ctx, &ref, &v, &err);
		if (rc) {
			view_free(&v);
			rest_failure(res, rc, &err, "listing the pool's logical units");
			return;
		}
		if (v.removed_stale && v.image) {
			/* An image LU that was there beside a dead uploader's marker is its
			 * unfinished upload: delete it, unless linked clones use it (then it was
			 * complete: the server refuses with 409 and it stays). */
			for (size_t i = 0; rc == 0 && i < v.l->count; i++) {
				const struct pvm_logical_unit *lu = &v.l->items[i];
				if (strcmp(lu->name, v.image->name) != 0 || !lu->meta.uuid)
					continue;
				pvm_log(PVM_LOG_WARNING, &ctx->log,
				        "image %s: LU %s (%s) was left by the dead uploader: "
				        "deleted as incomplete",
				        image_id(ctx), lu->name, lu->udid ? lu->udid : "");
				rc = pvm_image_delete_lu(ctx, &ref, lu->meta.uuid, &err);
				if (rc && err.http_status == 409)
					rc = 0;
			}
			view_free(&v);
			if (rc) {
				rest_failure(res, rc, &err, "deleting a dead uploader's image LU");
				return;
			}
			continue; /* look again */
		}
		if (v.image && v.nothers == 0) {
			/* complete (someone, maybe another host, uploaded it) */
			if (v.mine) {
				rc = pvm_image_delete_lu(ctx, &ref, v.mine->meta.uuid, &err);
				if (rc) {
					view_free(&v);
					rest_failure(res, rc, &err, "deleting our marker");
					return;
				}
			}
			json_object_set_new(ctx->data, "cached",
			                    json_string(v.image->udid ? v.image->udid : ""));
			json_object_del(ctx->data, "seen");
			pvm_log(PVM_LOG_INFO, &ctx->log,
			        "image %s is already in pool %s (%s): nothing to upload",
			        image_id(ctx), ref.ssp_name, v.image->udid ? v.image->udid : "");
			view_free(&v);
			res->verdict = PVM_STEP_DONE;
			return;
		}
		if (v.nothers > 0 && !(v.mine && v.lowest == v.mine->name)) {
			/* another host uploads (or competes with a lower name): withdraw, wait */
			const char *who = v.others[0]->name;
			if (v.mine) {
				rc = pvm_image_delete_lu(ctx, &ref, v.mine->meta.uuid, &err);
				if (rc) {
					view_free(&v);
					rest_failure(res, rc, &err, "withdrawing our marker");
					return;
				}
				pvm_log(PVM_LOG_INFO, &ctx->log,
				        "image %s: marker %s is lower than ours: we withdraw and "
				        "look again later",
				        image_id(ctx), who);
			}
			int64_t w =
			        capped(ctx, LOSER_WAIT_MIN_MS + jitter(ctx, LOSER_WAIT_SPAN_MS));
			static char reason[] = "another host uploads the image (marker LU)";
			pvm_step_wait(res, ctx->now_ms + w, reason);
			view_free(&v);
			return;
		}
		if (v.mine && v.nothers == 0) {
			/* ours is the only marker: we upload */
			json_object_set_new(ctx->data, "won", json_true());
			pvm_log(PVM_LOG_INFO, &ctx->log,
			        "image %s: our marker %s holds the pool: uploading", image_id(ctx),
			        v.mine->name);
			view_free(&v);
			res->verdict = PVM_STEP_DONE;
			return;
		}
		if (v.mine) {
			/* lowest, but others still there: losers withdraw soon */
			view_free(&v);
			pvm_step_wait(res, ctx->now_ms + capped(ctx, WINNER_WAIT_MS),
			              "waiting for the other hosts' markers to go");
			return;
		}
		view_free(&v);
		/* nobody: make our marker, then look again */
		if (!pvm_step_send_guard(ctx, "marker", res))
			return;
		int status = 0;
		rc = create_marker(ctx, &ref, &err, &status);
		if (status > 0)
			pvm_step_send_answered(ctx, "marker");
		if (rc) {
			rest_failure(res, rc, &err, "creating our marker LU");
			return;
		}
	}
	pvm_step_retry(res, -EAGAIN, "the pool's logical units keep changing");
}

static void claim_undo(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	/* a marker create that may still land must land before the look for it */
	if (!pvm_step_settle_inflight(ctx, "marker", res))
		return;
	struct pvm_ssp_ref ref;
	if (!ref_of(ctx, &ref, NULL, 0)) {
		res->verdict = PVM_STEP_DONE;
		return;
	}
	struct pvm_rest_error err = {0};
	struct lus_view v;
	int rc = view_lus(ctx, &ref, &v, &err);
	if (rc == 0 && v.mine)
		rc = pvm_image_delete_lu(ctx, &ref, v.mine->meta.uuid, &err);
	view_free(&v);
	if (rc)
		rest_failure(res, rc, &err, "deleting our marker");
	else
		res->verdict = PVM_STEP_DONE;
}

/* ---- upload ---- */

static bool cached(const struct pvm_step_ctx *ctx)
{
	return json_is_string(
	        json_object_get(json_object_get(ctx->op->checkpoints, "claim"), "cached"));
}

static void forget_lu(struct pvm_step_ctx *ctx)
{
	/* "file": a late File create for the deleted LU is refused by the server (no such
	 * device), and a File without target is harmless: no need to wait it out */
	static const char *const keys[] = {"udid",          "lu_uuid",      "file_uuid",
	                                   "contents_done", "file_deleted", "file"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		json_object_del(ctx->data, keys[i]);
}

static int delete_file(struct pvm_step_ctx *ctx, const char *file_uuid, struct pvm_rest_error *err)
{
	char path[128];
	snprintf(path, sizeof(path), "web/File/%s", file_uuid);
	return pvm_client_delete(ctx->client, path, NULL, reqid(ctx), err);
}

/* Makes the image LU: 0 with udid and uuid in ctx->data. */
static void create_image_lu(struct pvm_step_ctx *ctx, const struct pvm_ssp_ref *ref,
                            struct pvm_step_result *res)
{
	/* The guard first: a create sent before a crash may still land, and must have
	 * landed (or never will) before we decide what in the pool is ours to delete. */
	if (!pvm_step_send_guard(ctx, "create_lu", res))
		return;
	struct pvm_rest_error err = {0};
	struct lus_view v;
	int rc = view_lus(ctx, ref, &v, &err);
	if (rc) {
		view_free(&v);
		rest_failure(res, rc, &err, "listing the pool's logical units");
		return;
	}
	/* We hold the only marker: an image LU here is an incomplete one of ours (a crash,
	 * a lost answer). Delete it, all of them when a lost create made two. */
	for (size_t i = 0; i < v.l->count; i++) {
		const struct pvm_logical_unit *lu = &v.l->items[i];
		if (lu != v.image && !(v.image && strcmp(lu->name, v.image->name) == 0))
			continue;
		pvm_log(PVM_LOG_WARNING, &ctx->log,
		        "image %s: LU %s (%s) is incomplete (our marker is still there): "
		        "deleting it to upload again",
		        image_id(ctx), lu->name, lu->udid ? lu->udid : "");
		rc = pvm_image_delete_lu(ctx, ref, lu->meta.uuid, &err);
		if (rc) {
			view_free(&v);
			rest_failure(res, rc, &err, "deleting an incomplete image LU");
			return;
		}
	}
	view_free(&v);
	char name[PVM_NAME_MAX];
	pvm_name_image_lu(image_id(ctx), name);
	int64_t size = json_integer_value(json_object_get(ctx->op->params, "size"));
	double gb = ceil((double)size / (1024.0 * 1024 * 1024));
	struct pvm_lu_spec spec = {.name = name,
	                           .capacity_gb = gb < 1 ? 1 : gb,
	                           .lu_type = "VirtualIO_Image",
	                           .thin = true};
	char *body = pvm_build_logical_unit(&spec, &err);
	if (!body) {
		pvm_step_fail(res, PVM_EINVAL, "building the image LU: %s", err.message);
		return;
	}
	char path[160];
	snprintf(path, sizeof(path), "uom/Tier/%s/LogicalUnit", ref->tier_uuid);
	struct pvm_req rq = {.method = PVM_PUT,
	                     .path = path,
	                     .content_type =
	                             "application/vnd.ibm.powervm.uom+xml; type=LogicalUnit",
	                     .body = body,
	                     .body_len = strlen(body),
	                     .request_id = reqid(ctx)};
	struct pvm_resp resp = {0};
	rc = pvm_client_request(ctx->client, &rq, &resp, &err);
	free(body);
	if (resp.status > 0)
		pvm_step_send_answered(ctx, "create_lu");
	struct pvm_logical_unit_list *l = NULL;
	if (rc == 0)
		rc = pvm_parse_logical_unit(resp.body, resp.len, resp.etag, &l, &err);
	pvm_resp_fini(&resp);
	if (rc) {
		rest_failure(res, rc, &err, "creating the image LU");
		return;
	}
	if (l->count < 1 || !l->items[0].udid || !l->items[0].meta.uuid) {
		pvm_logical_unit_list_free(l);
		pvm_step_retry(res, PVM_ECORRUPT, "the image LU's answer has no UDID");
		return;
	}
	json_object_set_new(ctx->data, "udid", json_string(l->items[0].udid));
	json_object_set_new(ctx->data, "lu_uuid", json_string(l->items[0].meta.uuid));
	pvm_logical_unit_list_free(l);
	res->verdict = PVM_STEP_DONE;
}

static void create_file(struct pvm_step_ctx *ctx, const char *vios, struct pvm_step_result *res)
{
	if (!pvm_step_send_guard(ctx, "file", res))
		return;
	struct pvm_rest_error err = {0};
	char name[PVM_NAME_MAX];
	pvm_name_image_lu(image_id(ctx), name);
	struct pvm_file_spec fs = {
	        .name = name,
	        .media_type = "application/octet-stream",
	        .enum_type = "BROKERED_DISK_IMAGE",
	        .size = json_integer_value(json_object_get(ctx->op->params, "size")),
	        .vios_uuid = vios,
	        .target_udid = json_string_value(json_object_get(ctx->data, "udid")),
	        .sha256 = json_string_value(json_object_get(ctx->op->params, "sha256")),
	};
	char *body = pvm_build_file(&fs, &err);
	if (!body) {
		pvm_step_fail(res, PVM_EINVAL, "building the File: %s", err.message);
		return;
	}
	struct pvm_req rq = {.method = PVM_PUT,
	                     .path = "web/File",
	                     .content_type = "application/vnd.ibm.powervm.web+xml; type=File",
	                     .body = body,
	                     .body_len = strlen(body),
	                     .request_id = reqid(ctx)};
	struct pvm_resp resp = {0};
	int rc = pvm_client_request(ctx->client, &rq, &resp, &err);
	free(body);
	if (resp.status > 0)
		pvm_step_send_answered(ctx, "file");
	struct pvm_file_list *fl = NULL;
	if (rc == 0)
		rc = pvm_parse_file(resp.body, resp.len, resp.etag, &fl, &err);
	pvm_resp_fini(&resp);
	if (rc) {
		rest_failure(res, rc, &err, "creating the upload File");
		return;
	}
	if (fl->count < 1 || !fl->items[0].file_uuid) {
		pvm_file_list_free(fl);
		pvm_step_retry(res, PVM_ECORRUPT, "the File's answer has no FileUUID");
		return;
	}
	json_object_set_new(ctx->data, "file_uuid", json_string(fl->items[0].file_uuid));
	pvm_file_list_free(fl);
	res->verdict = PVM_STEP_DONE;
}

static void put_contents(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	char spool[1024];
	const char *sd = ctx->config ? ctx->config->state_dir : NULL;
	if (pvm_path_image(sd, image_id(ctx), spool, sizeof(spool)) != 0) {
		pvm_step_fail(res, PVM_EINVAL, "no spool file path (state_dir unknown)");
		return;
	}
	int fd = open(spool, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		pvm_step_fail(res, -errno, "the spool file %s is gone (%s): PUT the image again",
		              spool, strerror(errno));
		return;
	}
	int64_t size = json_integer_value(json_object_get(ctx->op->params, "size"));
	struct stat st;
	if (fstat(fd, &st) != 0 || st.st_size != size) {
		close(fd);
		pvm_step_fail(res, PVM_EINVAL, "the spool file %s is not %lld bytes long", spool,
		              (long long)size);
		return;
	}
	const char *fu = json_string_value(json_object_get(ctx->data, "file_uuid"));
	char path[128];
	snprintf(path, sizeof(path), "web/File/contents/%s", fu);
	struct pvm_body_file bf = {.fd = fd, .offset = 0, .size = size};
	struct pvm_req rq = {.method = PVM_PUT,
	                     .path = path,
	                     .content_type = "application/octet-stream",
	                     .request_id = reqid(ctx),
	                     .file = &bf};
	struct pvm_resp resp = {0};
	struct pvm_rest_error err = {0};
	int rc = pvm_client_request(ctx->client, &rq, &resp, &err);
	int status = resp.status;
	pvm_resp_fini(&resp);
	close(fd);
	if (rc == 0 || status == 409) {
		/* 409: a second upload of this File: the first one (its answer lost) landed */
		if (status == 409)
			pvm_log(PVM_LOG_WARNING, &ctx->log,
			        "image %s: the server says the File's contents were uploaded "
			        "already (an earlier answer was lost)",
			        image_id(ctx));
		json_object_set_new(ctx->data, "contents_done", json_true());
		res->verdict = PVM_STEP_DONE;
		return;
	}
	if (status == 404) { /* the File is gone: make another */
		json_object_del(ctx->data, "file_uuid");
		pvm_step_retry(res, rc, "the upload File vanished: making another");
		return;
	}
	rest_failure(res, rc, &err, "uploading the image contents");
}

static void upload_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (cached(ctx)) {
		res->verdict = PVM_STEP_DONE;
		return;
	}
	struct pvm_ssp_ref ref;
	char vios[64];
	if (!need_ref(ctx, &ref, vios, sizeof(vios), res))
		return;
	struct pvm_rest_error err = {0};
	if (ctx->resumed && json_object_get(ctx->data, "lu_uuid") &&
	    !json_is_true(json_object_get(ctx->data, "contents_done"))) {
		/* a crash mid-upload: the LU's contents are unknown; start it over */
		const char *lu = json_string_value(json_object_get(ctx->data, "lu_uuid"));
		pvm_log(PVM_LOG_WARNING, &ctx->log,
		        "image %s: resumed after a restart with the upload unfinished: the image "
		        "LU is deleted and made again",
		        image_id(ctx));
		int rc = pvm_image_delete_lu(ctx, &ref, lu, &err);
		if (rc) {
			rest_failure(res, rc, &err, "deleting the incomplete image LU");
			return;
		}
		forget_lu(ctx);
	}
	if (!json_object_get(ctx->data, "lu_uuid")) {
		create_image_lu(ctx, &ref, res);
		if (res->verdict != PVM_STEP_DONE)
			return;
		res->progress = 40;
	}
	if (!json_is_true(json_object_get(ctx->data, "contents_done"))) {
		if (!json_object_get(ctx->data, "file_uuid")) {
			create_file(ctx, vios, res);
			if (res->verdict != PVM_STEP_DONE)
				return;
		}
		put_contents(ctx, res);
		if (res->verdict != PVM_STEP_DONE)
			return;
		res->progress = 80;
	}
	const char *fu = json_string_value(json_object_get(ctx->data, "file_uuid"));
	if (fu && !json_is_true(json_object_get(ctx->data, "file_deleted"))) {
		int rc = delete_file(ctx, fu, &err);
		if (rc && rc != PVM_ENOTFOUND) {
			rest_failure(res, rc, &err, "deleting the upload File");
			return;
		}
		json_object_set_new(ctx->data, "file_deleted", json_true());
	}
	res->verdict = PVM_STEP_DONE;
}

static void upload_undo(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!pvm_step_settle_inflight(ctx, "create_lu", res) ||
	    !pvm_step_settle_inflight(ctx, "file", res))
		return;
	struct pvm_ssp_ref ref;
	struct pvm_rest_error err = {0};
	if (!ref_of(ctx, &ref, NULL, 0) || cached(ctx)) {
		res->verdict = PVM_STEP_DONE;
		return;
	}
	const char *fu = json_string_value(json_object_get(ctx->data, "file_uuid"));
	if (fu && !json_is_true(json_object_get(ctx->data, "file_deleted"))) {
		int rc = delete_file(ctx, fu, &err);
		if (rc && rc != PVM_ENOTFOUND) {
			rest_failure(res, rc, &err, "deleting the upload File");
			return;
		}
		json_object_set_new(ctx->data, "file_deleted", json_true());
	}
	/* The image LU (any by its name: a lost create may have made one we do not know),
	 * unless it is complete. */
	if (json_is_true(json_object_get(ctx->data, "contents_done"))) {
		res->verdict = PVM_STEP_DONE;
		return;
	}
	struct lus_view v;
	int rc = view_lus(ctx, &ref, &v, &err);
	for (size_t i = 0; rc == 0 && i < v.l->count; i++) {
		const struct pvm_logical_unit *lu = &v.l->items[i];
		if (v.mine && v.image && strcmp(lu->name, v.image->name) == 0)
			rc = pvm_image_delete_lu(ctx, &ref, lu->meta.uuid, &err);
	}
	view_free(&v);
	if (rc) {
		rest_failure(res, rc, &err, "deleting the incomplete image LU");
		return;
	}
	forget_lu(ctx);
	res->verdict = PVM_STEP_DONE;
}

/* ---- release ---- */

static void release_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	struct pvm_ssp_ref ref;
	if (!need_ref(ctx, &ref, NULL, 0, res))
		return;
	struct pvm_rest_error err = {0};
	struct lus_view v;
	int rc = view_lus(ctx, &ref, &v, &err);
	if (rc == 0 && v.mine)
		rc = pvm_image_delete_lu(ctx, &ref, v.mine->meta.uuid, &err);
	view_free(&v);
	if (rc) {
		rest_failure(res, rc, &err, "deleting our marker");
		return;
	}
	json_t *claim = json_object_get(ctx->op->checkpoints, "claim");
	json_t *up = json_object_get(ctx->op->checkpoints, "upload");
	const char *udid = json_string_value(json_object_get(claim, "cached"));
	if (!udid)
		udid = json_string_value(json_object_get(up, "udid"));
	struct pvm_image_meta m = {0};
	const json_t *p = ctx->op->params;
	pvm_strlcpy(m.image_id, image_id(ctx), sizeof(m.image_id));
	const char *s = json_string_value(json_object_get(p, "sha256"));
	pvm_strlcpy(m.sha256, s ? s : "", sizeof(m.sha256));
	m.size = json_integer_value(json_object_get(p, "size"));
	s = json_string_value(json_object_get(p, "os_hash_algo"));
	pvm_strlcpy(m.algo, s ? s : "", sizeof(m.algo));
	s = json_string_value(json_object_get(p, "os_hash_value"));
	pvm_strlcpy(m.value, s ? s : "", sizeof(m.value));
	pvm_strlcpy(m.driver, "ssp", sizeof(m.driver));
	pvm_strlcpy(m.state, "ready", sizeof(m.state));
	m.operation = ctx->op->id;
	char lu[PVM_NAME_MAX];
	pvm_name_image_lu(m.image_id, lu);
	snprintf(m.location, sizeof(m.location), "ssp:%.100s/%.140s", ref.ssp_name, lu);
	pvm_strlcpy(m.udid, udid ? udid : "", sizeof(m.udid));
	m.time_ms = ctx->now_ms;
	const char *sd = ctx->config ? ctx->config->state_dir : NULL;
	if (sd) {
		/* The metadata says ready first: a crash in between leaves a spool file that
		 * the next PUT replaces, never a ready image without its record. */
		rc = pvm_image_meta_write(sd, &m);
		if (rc) {
			pvm_step_retry(res, rc, "writing the image metadata: %s", pvm_strerror(rc));
			return;
		}
		char spool[1024];
		if (pvm_path_image(sd, m.image_id, spool, sizeof(spool)) == 0 && unlink(spool) == 0)
			pvm_fsync_parent(spool);
	}
	res->result = pvm_image_meta_json(&m);
	json_object_set_new(res->result, "uploaded", json_boolean(udid && !cached(ctx)));
	res->verdict = PVM_STEP_DONE;
}

static const struct pvm_step_def steps[] = {
        {"find_pool", find_pool_run, NULL, NULL, NULL},
        {"claim", claim_run, claim_undo, NULL, NULL},
        {"upload", upload_run, upload_undo, NULL, NULL},
        {"release", release_run, NULL, NULL, NULL},
};

static bool hex_of_len(const char *s, size_t n)
{
	if (!s || strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* params.image_id: an id the cache accepts. */
static int validate_image_id(const json_t *p, char *field, size_t fn, char *msg, size_t mn)
{
	if (pvm_name_image_id_ok(json_string_value(json_object_get(p, "image_id"))))
		return 0;
	snprintf(field, fn, "params.image_id");
	snprintf(msg, mn, "must be 1 to 64 characters of [A-Za-z0-9._-]");
	return PVM_EINVAL;
}

static int validate(const json_t *p, char *field, size_t fn, char *msg, size_t mn)
{
	static const char *const known[] = {"image_id",     "sha256",        "size",
	                                    "os_hash_algo", "os_hash_value", NULL};
	int rc = pwr_validate_only(p, "cache_image", known, field, fn, msg, mn);
	if (!rc)
		rc = validate_image_id(p, field, fn, msg, mn);
	if (rc)
		return rc;
	if (!hex_of_len(json_string_value(json_object_get(p, "sha256")), 64)) {
		snprintf(field, fn, "params.sha256");
		snprintf(msg, mn, "must be 64 hex digits");
		return PVM_EINVAL;
	}
	json_t *sz = json_object_get(p, "size");
	if (!json_is_integer(sz) || json_integer_value(sz) < 1) {
		snprintf(field, fn, "params.size");
		snprintf(msg, mn, "must be a positive integer (bytes)");
		return PVM_EINVAL;
	}
	return 0;
}

const struct pvm_op_type pvm_op_cache_image = {
        .name = "cache_image",
        .version = 1,
        .steps = steps,
        .nsteps = sizeof(steps) / sizeof(steps[0]),
        .max_attempts = 30,
        .deadline_ms = 6LL * 3600 * 1000,
        .validate = validate,
        .internal = true,
};

/* ---- uncache_image ---- */

static void uncache_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	struct pvm_ssp_ref ref;
	if (!need_ref(ctx, &ref, NULL, 0, res))
		return;
	struct pvm_rest_error err = {0};
	struct lus_view v;
	int rc = view_lus(ctx, &ref, &v, &err);
	if (rc) {
		view_free(&v);
		rest_failure(res, rc, &err, "listing the pool's logical units");
		return;
	}
	if (v.mine || v.nothers) {
		view_free(&v);
		pvm_strlcpy(res->error_code, "upload_in_progress", sizeof(res->error_code));
		pvm_step_fail(res, -EBUSY, "image %s is being uploaded (a marker LU exists)",
		              image_id(ctx));
		return;
	}
	int n = 0;
	for (size_t i = 0; v.image && i < v.l->count; i++) {
		const struct pvm_logical_unit *lu = &v.l->items[i];
		if (strcmp(lu->name, v.image->name) != 0)
			continue;
		rc = pvm_image_delete_lu(ctx, &ref, lu->meta.uuid, &err);
		if (rc) {
			char name[160]; /* the view's strings go with it */
			pvm_strlcpy(name, lu->name, sizeof(name));
			view_free(&v);
			if (err.http_status == 409) {
				pvm_strlcpy(res->error_code, "in_use", sizeof(res->error_code));
				pvm_step_fail(res, rc, "image LU %s is in use: %s", name,
				              err.message[0] ? err.message : pvm_strerror(rc));
			} else {
				rest_failure(res, rc, &err, "deleting the image LU");
			}
			return;
		}
		n++;
	}
	view_free(&v);
	const char *sd = ctx->config ? ctx->config->state_dir : NULL;
	char path[1024];
	if (sd && pvm_image_meta_path(sd, image_id(ctx), path, sizeof(path)) == 0 &&
	    unlink(path) == 0)
		pvm_fsync_parent(path);
	if (sd && pvm_path_image(sd, image_id(ctx), path, sizeof(path)) == 0)
		unlink(path);
	res->result = json_pack("{s:s, s:i}", "image_id", image_id(ctx), "deleted_lus", n);
	res->verdict = PVM_STEP_DONE;
}

static const struct pvm_step_def uncache_steps[] = {
        {"find_pool", find_pool_run, NULL, NULL, NULL},
        {"delete", uncache_run, NULL, NULL, NULL},
};

static int validate_uncache(const json_t *p, char *field, size_t fn, char *msg, size_t mn)
{
	static const char *const known[] = {"image_id", NULL};
	int rc = pwr_validate_only(p, "uncache_image", known, field, fn, msg, mn);
	return rc ? rc : validate_image_id(p, field, fn, msg, mn);
}

const struct pvm_op_type pvm_op_uncache_image = {
        .name = "uncache_image",
        .version = 1,
        .steps = uncache_steps,
        .nsteps = sizeof(uncache_steps) / sizeof(uncache_steps[0]),
        .max_attempts = 20,
        .deadline_ms = 30LL * 60 * 1000,
        .validate = validate_uncache,
        .internal = true,
};
