/* image.c: the image cache's files, metadata and pool look-ups (image.h). */
#include "image.h"

#include "names.h"

#include "pvm/config.h"
#include "pvm/error.h"
#include "pvm/pvm_objects.h"
#include "pvm/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- files ---- */

int pvm_fsync_parent(const char *path)
{
	char dir[1024];
	pvm_strlcpy(dir, path, sizeof(dir));
	char *slash = strrchr(dir, '/');
	if (!slash)
		pvm_strlcpy(dir, ".", sizeof(dir));
	else if (slash == dir)
		dir[1] = 0;
	else
		*slash = 0;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) ? -errno : 0;
	close(fd);
	return rc;
}

int pvm_file_write_atomic(const char *path, const void *buf, size_t len)
{
	char tmp[1100];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-%d", path, (int)getpid()) >= sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	const char *p = buf;
	size_t left = len;
	int rc = 0;
	while (left > 0) {
		ssize_t w = write(fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = w < 0 ? -errno : -EIO;
			break;
		}
		p += w;
		left -= (size_t)w;
	}
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return rc;
	}
	return pvm_fsync_parent(path);
}

/* ---- metadata ---- */

int pvm_image_meta_path(const char *state_dir, const char *image_id, char *out, size_t n)
{
	if (!state_dir || !pvm_name_image_id_ok(image_id))
		return PVM_EINVAL;
	if ((size_t)snprintf(out, n, "%s/images/%s.json", state_dir, image_id) >= n)
		return -ENAMETOOLONG;
	return 0;
}

static void copy_str(json_t *o, const char *k, char *dst, size_t n)
{
	const char *s = json_string_value(json_object_get(o, k));
	pvm_strlcpy(dst, s ? s : "", n);
}

int pvm_image_meta_read(const char *state_dir, const char *image_id, struct pvm_image_meta *m)
{
	char path[1024];
	int rc = pvm_image_meta_path(state_dir, image_id, path, sizeof(path));
	if (rc)
		return rc;
	char *text = NULL;
	size_t len = 0;
	rc = pvm_read_file(path, 1 << 16, &text, &len);
	if (rc == -ENOENT)
		return PVM_ENOTFOUND;
	if (rc)
		return rc;
	json_t *j = json_loadb(text, len, 0, NULL);
	free(text);
	if (!json_is_object(j) || !json_is_string(json_object_get(j, "sha256")) ||
	    !json_is_integer(json_object_get(j, "size"))) {
		json_decref(j);
		return PVM_ECORRUPT;
	}
	memset(m, 0, sizeof(*m));
	pvm_strlcpy(m->image_id, image_id, sizeof(m->image_id));
	copy_str(j, "sha256", m->sha256, sizeof(m->sha256));
	m->size = json_integer_value(json_object_get(j, "size"));
	copy_str(j, "os_hash_algo", m->algo, sizeof(m->algo));
	copy_str(j, "os_hash_value", m->value, sizeof(m->value));
	copy_str(j, "driver", m->driver, sizeof(m->driver));
	copy_str(j, "state", m->state, sizeof(m->state));
	m->operation = (uint64_t)json_integer_value(json_object_get(j, "operation"));
	copy_str(j, "location", m->location, sizeof(m->location));
	copy_str(j, "udid", m->udid, sizeof(m->udid));
	copy_str(j, "idempotency_key", m->key, sizeof(m->key));
	m->time_ms = json_integer_value(json_object_get(j, "time_ms"));
	json_decref(j);
	return 0;
}

json_t *pvm_image_meta_json(const struct pvm_image_meta *m)
{
	json_t *j = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "id", m->image_id, "sha256",
	                      m->sha256, "size", (json_int_t)m->size, "driver", m->driver, "state",
	                      m->state, "location", m->location);
	if (!j)
		return NULL;
	json_object_set_new(j, "os_hash_algo", m->algo[0] ? json_string(m->algo) : json_null());
	json_object_set_new(j, "os_hash_value", m->value[0] ? json_string(m->value) : json_null());
	if (m->operation)
		json_object_set_new(j, "operation", json_integer((json_int_t)m->operation));
	if (m->udid[0])
		json_object_set_new(j, "udid", json_string(m->udid));
	if (m->key[0])
		json_object_set_new(j, "idempotency_key", json_string(m->key));
	char t[40];
	json_object_set_new(j, "time", json_string(pvm_fmt_time(m->time_ms, t, sizeof(t))));
	json_object_set_new(j, "time_ms", json_integer(m->time_ms));
	return j;
}

int pvm_image_meta_write(const char *state_dir, const struct pvm_image_meta *m)
{
	char path[1024], dir[1024];
	int rc = pvm_image_meta_path(state_dir, m->image_id, path, sizeof(path));
	if (rc)
		return rc;
	snprintf(dir, sizeof(dir), "%s/images", state_dir);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return -errno;
	json_t *j = pvm_image_meta_json(m);
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	if (!text)
		return PVM_ENOMEM;
	rc = pvm_file_write_atomic(path, text, strlen(text));
	free(text);
	return rc;
}

int pvm_image_local_lookup(const char *state_dir, const char *image_id, char *path, size_t n,
                           int64_t *size)
{
	struct pvm_image_meta m;
	int rc = pvm_image_meta_read(state_dir, image_id, &m);
	if (rc == PVM_ECORRUPT)
		return PVM_ENOTFOUND;
	if (rc)
		return rc;
	if (strcmp(m.state, "ready") != 0 || strcmp(m.driver, "localdisk") != 0)
		return PVM_ENOTFOUND;
	rc = pvm_path_image(state_dir, image_id, path, n);
	if (rc)
		return rc;
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != m.size)
		return PVM_ENOTFOUND;
	*size = st.st_size;
	return 0;
}

/* ---- the pool ---- */

static const char *reqid(const struct pvm_step_ctx *ctx)
{
	return ctx->op && ctx->op->request_id[0] ? ctx->op->request_id : NULL;
}

static void set_err(struct pvm_rest_error *err, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void set_err(struct pvm_rest_error *err, int code, const char *fmt, ...)
{
	if (!err)
		return;
	memset(err, 0, sizeof(*err));
	err->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

int pvm_image_ssp_ref(struct pvm_step_ctx *ctx, struct pvm_ssp_ref *out, struct pvm_rest_error *err)
{
	const char *want = ctx->config ? ctx->config->cluster_name : NULL;
	struct pvm_resp resp = {0};
	int rc = pvm_client_get(ctx->client, "uom/SharedStoragePool", "group=None", reqid(ctx),
	                        &resp, err);
	struct pvm_ssp_list *sl = NULL;
	if (rc == 0)
		rc = pvm_parse_ssp(resp.body, resp.len, resp.etag, &sl, err);
	pvm_resp_fini(&resp);
	if (rc)
		return rc;
	long pick = -1;
	for (size_t i = 0; i < sl->count; i++) {
		if (want && want[0] ? strcmp(sl->items[i].name, want) == 0 : sl->count == 1)
			pick = (long)i;
	}
	if (pick < 0) {
		if (want && want[0])
			set_err(err, PVM_ENOTFOUND,
			        "no shared storage pool named %s (powervm_cluster_name)", want);
		else
			set_err(err, PVM_ENOTFOUND, "%s: set powervm_cluster_name to choose one",
			        sl->count ? "several shared storage pools"
			                  : "no shared storage pool");
		pvm_ssp_list_free(sl);
		return PVM_ENOTFOUND;
	}
	memset(out, 0, sizeof(*out));
	pvm_strlcpy(out->ssp_uuid, sl->items[pick].meta.uuid ? sl->items[pick].meta.uuid : "",
	            sizeof(out->ssp_uuid));
	pvm_strlcpy(out->ssp_name, sl->items[pick].name, sizeof(out->ssp_name));
	pvm_ssp_list_free(sl);

	char path[160];
	snprintf(path, sizeof(path), "uom/SharedStoragePool/%s/Tier", out->ssp_uuid);
	rc = pvm_client_get(ctx->client, path, NULL, reqid(ctx), &resp, err);
	struct pvm_tier_list *tl = NULL;
	if (rc == 0)
		rc = pvm_parse_tier(resp.body, resp.len, resp.etag, &tl, err);
	pvm_resp_fini(&resp);
	if (rc)
		return rc;
	pick = -1;
	for (size_t i = 0; i < tl->count; i++)
		if (tl->items[i].is_default || tl->count == 1)
			pick = (long)i;
	if (pick < 0) {
		set_err(err, PVM_ENOTFOUND, "shared storage pool %s has no default tier",
		        out->ssp_name);
		pvm_tier_list_free(tl);
		return PVM_ENOTFOUND;
	}
	pvm_strlcpy(out->tier_uuid, tl->items[pick].meta.uuid ? tl->items[pick].meta.uuid : "",
	            sizeof(out->tier_uuid));
	pvm_strlcpy(out->tier_href, tl->items[pick].meta.href ? tl->items[pick].meta.href : "",
	            sizeof(out->tier_href));
	pvm_tier_list_free(tl);
	return 0;
}

int pvm_image_list_lus(struct pvm_step_ctx *ctx, const struct pvm_ssp_ref *ssp,
                       struct pvm_logical_unit_list **out, struct pvm_rest_error *err)
{
	char path[160];
	snprintf(path, sizeof(path), "uom/Tier/%s/LogicalUnit", ssp->tier_uuid);
	struct pvm_resp resp = {0};
	int rc = pvm_client_get(ctx->client, path, NULL, reqid(ctx), &resp, err);
	if (rc == 0)
		rc = pvm_parse_logical_unit(resp.body, resp.len, resp.etag, out, err);
	pvm_resp_fini(&resp);
	return rc;
}

int pvm_image_delete_lu(struct pvm_step_ctx *ctx, const struct pvm_ssp_ref *ssp,
                        const char *lu_uuid, struct pvm_rest_error *err)
{
	char path[200];
	snprintf(path, sizeof(path), "uom/Tier/%s/LogicalUnit/%s", ssp->tier_uuid, lu_uuid);
	return pvm_client_delete(ctx->client, path, NULL, reqid(ctx), err);
}

int pvm_image_ssp_lookup(struct pvm_step_ctx *ctx, const struct pvm_ssp_ref *ssp,
                         const char *image_id, char udid[128], double *capacity_gb,
                         struct pvm_rest_error *err)
{
	char want[PVM_NAME_MAX];
	int rc = pvm_name_image_lu(image_id, want);
	if (rc)
		return rc;
	struct pvm_logical_unit_list *l = NULL;
	rc = pvm_image_list_lus(ctx, ssp, &l, err);
	if (rc)
		return rc;
	const struct pvm_logical_unit *img = NULL;
	bool marked = false;
	for (size_t i = 0; i < l->count; i++) {
		char id[PVM_IMAGE_ID_MAX], tag[9];
		if (strcmp(l->items[i].name, want) == 0)
			img = &l->items[i];
		else if (pvm_name_parse_marker(l->items[i].name, id, sizeof(id), tag) &&
		         strcmp(id, image_id) == 0)
			marked = true;
	}
	if (marked)
		rc = -EAGAIN;
	else if (!img)
		rc = PVM_ENOTFOUND;
	else {
		pvm_strlcpy(udid, img->udid ? img->udid : "", 128);
		if (capacity_gb)
			*capacity_gb = img->capacity_gb;
	}
	pvm_logical_unit_list_free(l);
	return rc;
}
