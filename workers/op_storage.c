/* op_storage.c: storage helpers of spawn and destroy (op_storage.h).
 *
 * DESIGN
 * Objects are found by their deterministic names (names.h) rather than by what a
 * checkpoint remembers, so the same helpers serve a spawn resumed after a crash, its undo,
 * and a destroy of an instance whose spawn never finished. Changes to a volume group or a
 * VIOS are computed from the entry as read (the change callbacks below), so a 412 re-read
 * re-applies the change to the fresh entry, and a change with nothing left to do sends
 * nothing (the callback answers PVM_EEXIST, taken as success).
 */
#include "op_storage.h"

#include "pvm/error.h"
#include "pvm/util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define VG_TYPE   "application/vnd.ibm.powervm.uom+xml; type=VolumeGroup"
#define VIOS_TYPE "application/vnd.ibm.powervm.uom+xml; type=VirtualIOServer"
#define FILE_TYPE "application/vnd.ibm.powervm.web+xml; type=File"

const char *sto_req_id(const struct pvm_step_ctx *ctx)
{
	return ctx->op->request_id[0] ? ctx->op->request_id : NULL;
}

static void clear_err(struct pvm_rest_error *err)
{
	memset(err, 0, sizeof(*err));
}

/* The UUID at the end of an href (without a query), compared case-insensitively. */
static bool href_is(const char *href, const char *uuid)
{
	if (!href || !uuid)
		return false;
	const char *q = strchr(href, '?');
	size_t n = q ? (size_t)(q - href) : strlen(href);
	size_t u = strlen(uuid);
	return n >= u && strncasecmp(href + n - u, uuid, u) == 0 &&
	       (n == u || href[n - u - 1] == '/');
}

/* ---- reading ---- */

int sto_vioses(struct pvm_step_ctx *ctx, struct sto_vioses *out, struct pvm_rest_error *err)
{
	memset(out, 0, sizeof(*out));
	char path[160];
	snprintf(path, sizeof(path), "uom/ManagedSystem/%s/VirtualIOServer", ctx->ms_uuid);
	struct pvm_resp resp = {0};
	struct pvm_vios_list *l = NULL;
	int rc = pvm_client_get(ctx->client, path, "group=None", sto_req_id(ctx), &resp, err);
	if (rc == 0)
		rc = pvm_parse_vios(resp.body, resp.len, resp.etag, &l, err);
	pvm_resp_fini(&resp);
	if (rc)
		return rc;
	out->v = calloc(l->count + 1, sizeof(*out->v));
	if (!out->v) {
		pvm_vios_list_free(l);
		return PVM_ENOMEM;
	}
	for (size_t i = 0; i < l->count; i++) {
		const struct pvm_lpar *p = &l->items[i].lpar;
		const char *u = p->meta.uuid ? p->meta.uuid : p->uuid;
		pvm_strlcpy(out->v[out->n].uuid, u ? u : "", sizeof(out->v[0].uuid));
		pvm_strlcpy(out->v[out->n].name, p->name ? p->name : "", sizeof(out->v[0].name));
		out->v[out->n].id = p->id;
		out->n++;
	}
	pvm_vios_list_free(l);
	return 0;
}

void sto_vioses_free(struct sto_vioses *vs)
{
	if (vs) {
		free(vs->v);
		vs->v = NULL;
		vs->n = 0;
	}
}

int sto_vgs(struct pvm_step_ctx *ctx, const char *vios_uuid, struct pvm_volume_group_list **out,
            struct pvm_rest_error *err)
{
	char path[160];
	snprintf(path, sizeof(path), "uom/VirtualIOServer/%s/VolumeGroup", vios_uuid);
	struct pvm_resp resp = {0};
	int rc = pvm_client_get(ctx->client, path, NULL, sto_req_id(ctx), &resp, err);
	if (rc == 0)
		rc = pvm_parse_volume_group(resp.body, resp.len, resp.etag, out, err);
	pvm_resp_fini(&resp);
	return rc;
}

int sto_find_vg(struct pvm_step_ctx *ctx, const struct sto_vioses *vs, const char *vg_name,
                const char *vios_name, struct sto_where *w, struct pvm_rest_error *err)
{
	bool vios_seen = false;
	for (size_t i = 0; i < vs->n; i++) {
		if (vios_name && strcmp(vs->v[i].name, vios_name) != 0)
			continue;
		vios_seen = true;
		struct pvm_volume_group_list *l = NULL;
		int rc = sto_vgs(ctx, vs->v[i].uuid, &l, err);
		if (rc)
			return rc;
		for (size_t k = 0; k < l->count; k++)
			if (strcmp(l->items[k].name, vg_name) == 0) {
				w->vios = i;
				pvm_strlcpy(w->vg_uuid, l->items[k].meta.uuid, sizeof(w->vg_uuid));
				pvm_volume_group_list_free(l);
				return 0;
			}
		pvm_volume_group_list_free(l);
	}
	clear_err(err);
	if (vios_name && !vios_seen)
		snprintf(err->message, sizeof(err->message),
		         "no VIOS named %s (powervm_volume_group_vios_name) on the managed system",
		         vios_name);
	else
		snprintf(err->message, sizeof(err->message),
		         "no volume group %s (powervm_volume_group_name) on %s", vg_name,
		         vios_name ? vios_name : "any VIOS of the managed system");
	return PVM_ENOTFOUND;
}

/* Looks for name among the disks (kind VDISK) or media (VOPT) of every group of every VIOS. */
static int find_in_vgs(struct pvm_step_ctx *ctx, const struct sto_vioses *vs,
                       enum pvm_storage_kind kind, const char *name, struct sto_where *w,
                       struct pvm_rest_error *err)
{
	for (size_t i = 0; i < vs->n; i++) {
		struct pvm_volume_group_list *l = NULL;
		int rc = sto_vgs(ctx, vs->v[i].uuid, &l, err);
		if (rc)
			return rc;
		for (size_t k = 0; k < l->count; k++) {
			const struct pvm_volume_group *g = &l->items[k];
			const char *udid = NULL;
			double gb = 0;
			bool hit = false;
			for (size_t d = 0; kind == PVM_STORAGE_VDISK && d < g->n_vdisks && !hit;
			     d++)
				if (g->vdisks[d].name && strcmp(g->vdisks[d].name, name) == 0) {
					hit = true;
					udid = g->vdisks[d].udid;
					gb = g->vdisks[d].capacity_gb;
				}
			for (size_t d = 0; kind == PVM_STORAGE_VOPT && d < g->n_media && !hit; d++)
				if (g->media[d].name && strcmp(g->media[d].name, name) == 0) {
					hit = true;
					udid = g->media[d].udid;
					gb = g->media[d].size_gb;
				}
			if (hit) {
				w->vios = i;
				pvm_strlcpy(w->vg_uuid, g->meta.uuid, sizeof(w->vg_uuid));
				pvm_strlcpy(w->udid, udid ? udid : "", sizeof(w->udid));
				w->capacity_gb = gb;
				pvm_volume_group_list_free(l);
				return 0;
			}
		}
		pvm_volume_group_list_free(l);
	}
	return PVM_ENOTFOUND;
}

int sto_find_vdisk(struct pvm_step_ctx *ctx, const struct sto_vioses *vs, const char *name,
                   struct sto_where *w, struct pvm_rest_error *err)
{
	return find_in_vgs(ctx, vs, PVM_STORAGE_VDISK, name, w, err);
}

int sto_find_media(struct pvm_step_ctx *ctx, const struct sto_vioses *vs, const char *name,
                   struct sto_where *w, struct pvm_rest_error *err)
{
	return find_in_vgs(ctx, vs, PVM_STORAGE_VOPT, name, w, err);
}

int sto_media_vios(struct pvm_step_ctx *ctx, const struct sto_vioses *vs, const char *prefer,
                   size_t *vios, struct pvm_rest_error *err)
{
	for (int pass = prefer ? 0 : 1; pass < 2; pass++)
		for (size_t i = 0; i < vs->n; i++) {
			if (pass == 0 && strcmp(vs->v[i].name, prefer) != 0)
				continue;
			struct pvm_volume_group_list *l = NULL;
			int rc = sto_vgs(ctx, vs->v[i].uuid, &l, err);
			if (rc)
				return rc;
			bool has = false;
			for (size_t k = 0; k < l->count; k++)
				has = has || l->items[k].has_media_repo;
			pvm_volume_group_list_free(l);
			if (has) {
				*vios = i;
				return 0;
			}
		}
	clear_err(err);
	snprintf(err->message, sizeof(err->message),
	         "no VIOS of the managed system has a media repository");
	return PVM_ENOTFOUND;
}

/* ---- volume group changes ---- */

struct vg_change {
	bool add;
	enum pvm_storage_kind kind;
	const char *name;
	double gb;
};

static int vg_change_fn(void *arg, const char *entry, size_t len, char **body)
{
	struct vg_change *c = arg;
	struct pvm_rest_error e = {0};
	struct pvm_volume_group_list *l = NULL;
	int rc = pvm_parse_volume_group(entry, len, NULL, &l, &e);
	if (rc)
		return rc;
	bool present = false;
	for (size_t k = 0; k < l->count; k++) {
		const struct pvm_volume_group *g = &l->items[k];
		for (size_t d = 0; c->kind == PVM_STORAGE_VDISK && d < g->n_vdisks; d++)
			present = present ||
			          (g->vdisks[d].name && !strcmp(g->vdisks[d].name, c->name));
		for (size_t d = 0; c->kind == PVM_STORAGE_VOPT && d < g->n_media; d++)
			present =
			        present || (g->media[d].name && !strcmp(g->media[d].name, c->name));
	}
	pvm_volume_group_list_free(l);
	if (present == c->add)
		return PVM_EEXIST; /* nothing to do */
	if (c->add) {
		struct pvm_vdisk_spec d = {.name = c->name, .capacity_gb = c->gb};
		*body = pvm_build_vg_add_vdisk(entry, len, &d, &e);
	} else if (c->kind == PVM_STORAGE_VDISK) {
		*body = pvm_build_vg_remove_vdisk(entry, len, c->name, &e);
	} else {
		*body = pvm_build_vg_remove_media(entry, len, c->name, &e);
	}
	return *body ? 0 : (e.code ? e.code : PVM_ENOMEM);
}

static int vg_update(struct pvm_step_ctx *ctx, const char *vios_uuid, const char *vg_uuid,
                     struct vg_change *c, struct pvm_resp *resp, struct pvm_rest_error *err)
{
	char path[200];
	snprintf(path, sizeof(path), "uom/VirtualIOServer/%s/VolumeGroup/%s", vios_uuid, vg_uuid);
	struct pvm_update u = {.path = path,
	                       .content_type = VG_TYPE,
	                       .request_id = sto_req_id(ctx),
	                       .change = vg_change_fn,
	                       .arg = c};
	int rc = pvm_client_update(ctx->client, &u, resp, err);
	if (rc == PVM_EEXIST) {
		clear_err(err);
		return 1; /* nothing was sent */
	}
	return rc;
}

int sto_vg_add_vdisk(struct pvm_step_ctx *ctx, const char *vios_uuid, const char *vg_uuid,
                     const char *name, double gb, char udid[128], struct pvm_rest_error *err)
{
	struct vg_change c = {.add = true, .kind = PVM_STORAGE_VDISK, .name = name, .gb = gb};
	struct pvm_resp resp = {0};
	int rc = vg_update(ctx, vios_uuid, vg_uuid, &c, &resp, err);
	pvm_resp_fini(&resp);
	if (rc < 0)
		return rc;
	/* the UDID: read the group again (the answer of a POST need not hold the new disk's) */
	struct sto_vioses one = {
	        .v = &(struct sto_vios){.id = 0},
	        .n = 1,
	};
	pvm_strlcpy(one.v[0].uuid, vios_uuid, sizeof(one.v[0].uuid));
	struct sto_where w;
	rc = sto_find_vdisk(ctx, &one, name, &w, err);
	if (rc == 0)
		pvm_strlcpy(udid, w.udid, 128);
	else if (rc == PVM_ENOTFOUND)
		snprintf(err->message, sizeof(err->message),
		         "virtual disk %s not found after it was added", name);
	return rc;
}

int sto_vg_remove(struct pvm_step_ctx *ctx, const char *vios_uuid, const char *vg_uuid,
                  enum pvm_storage_kind kind, const char *name, struct pvm_rest_error *err)
{
	struct vg_change c = {.add = false, .kind = kind, .name = name};
	struct pvm_resp resp = {0};
	int rc = vg_update(ctx, vios_uuid, vg_uuid, &c, &resp, err);
	pvm_resp_fini(&resp);
	if (rc == PVM_ENOTFOUND) { /* the group itself is gone: so is the object */
		clear_err(err);
		return 0;
	}
	return rc < 0 ? rc : 0;
}

/* ---- uploads ---- */

static int file_sha256(int fd, int64_t size, char hex[65])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md)
		return PVM_ENOMEM;
	int rc = 0;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		rc = PVM_ECRYPTO;
		goto out;
	}
	static __thread char buf[1 << 16];
	int64_t off = 0;
	while (off < size) {
		ssize_t n = pread(fd, buf, sizeof(buf), (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : PVM_EIO;
			goto out;
		}
		EVP_DigestUpdate(md, buf, (size_t)n);
		off += n;
	}
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dl = 0;
	if (EVP_DigestFinal_ex(md, d, &dl) != 1 || dl != 32) {
		rc = PVM_ECRYPTO;
		goto out;
	}
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
out:
	EVP_MD_CTX_free(md);
	return rc;
}

void sto_delete_files(struct pvm_step_ctx *ctx, const char *name)
{
	struct pvm_resp resp = {0};
	struct pvm_rest_error err = {0};
	struct pvm_file_list *l = NULL;
	int rc = pvm_client_get(ctx->client, "web/File", NULL, sto_req_id(ctx), &resp, &err);
	if (rc == 0)
		rc = pvm_parse_file(resp.body, resp.len, resp.etag, &l, &err);
	pvm_resp_fini(&resp);
	if (rc)
		return; /* best effort: a stale File only takes a little space */
	for (size_t i = 0; i < l->count; i++) {
		const struct pvm_file *f = &l->items[i];
		const char *u = f->file_uuid ? f->file_uuid : f->meta.uuid;
		if (f->name && strcmp(f->name, name) == 0 && u) {
			char path[128];
			snprintf(path, sizeof(path), "web/File/%s", u);
			pvm_client_delete(ctx->client, path, NULL, sto_req_id(ctx), &err);
		}
	}
	pvm_file_list_free(l);
}

int sto_upload(struct pvm_step_ctx *ctx, const char *vios_uuid, const char *target_udid,
               const char *enum_type, const char *name, const char *path,
               struct pvm_rest_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = -errno;
		clear_err(err);
		snprintf(err->message, sizeof(err->message), "%s: %s", path, strerror(-e));
		return e == -ENOENT ? PVM_ENOTFOUND : e;
	}
	struct stat st;
	char sha[65] = "";
	int rc = fstat(fd, &st) == 0 ? 0 : -errno;
	if (rc == 0)
		rc = file_sha256(fd, (int64_t)st.st_size, sha);
	if (rc) {
		clear_err(err);
		snprintf(err->message, sizeof(err->message), "reading %s: %s", path,
		         pvm_strerror(rc));
		close(fd);
		return rc;
	}
	sto_delete_files(ctx, name);
	struct pvm_file_spec fs = {.name = name,
	                           .enum_type = enum_type,
	                           .size = (int64_t)st.st_size,
	                           .vios_uuid = vios_uuid,
	                           .target_udid = target_udid,
	                           .sha256 = sha};
	char *body = pvm_build_file(&fs, err);
	if (!body) {
		close(fd);
		return err->code ? err->code : PVM_ENOMEM;
	}
	struct pvm_req rq = {.method = PVM_PUT,
	                     .path = "web/File",
	                     .content_type = FILE_TYPE,
	                     .body = body,
	                     .body_len = strlen(body),
	                     .request_id = sto_req_id(ctx)};
	struct pvm_resp resp = {0};
	struct pvm_file_list *fl = NULL;
	rc = pvm_client_request(ctx->client, &rq, &resp, err);
	free(body);
	if (rc == 0)
		rc = pvm_parse_file(resp.body, resp.len, resp.etag, &fl, err);
	pvm_resp_fini(&resp);
	if (rc) {
		close(fd);
		return rc;
	}
	char file_uuid[64] = "";
	if (fl->count && (fl->items[0].file_uuid || fl->items[0].meta.uuid))
		pvm_strlcpy(file_uuid,
		            fl->items[0].file_uuid ? fl->items[0].file_uuid
		                                   : fl->items[0].meta.uuid,
		            sizeof(file_uuid));
	pvm_file_list_free(fl);
	if (!file_uuid[0]) {
		close(fd);
		clear_err(err);
		snprintf(err->message, sizeof(err->message), "web/File answered without FileUUID");
		return PVM_ECORRUPT;
	}
	char cpath[128];
	snprintf(cpath, sizeof(cpath), "web/File/contents/%s", file_uuid);
	struct pvm_body_file bf = {.fd = fd, .offset = 0, .size = (int64_t)st.st_size};
	struct pvm_req up = {.method = PVM_PUT,
	                     .path = cpath,
	                     .content_type = "application/octet-stream",
	                     .request_id = sto_req_id(ctx),
	                     .file = &bf};
	rc = pvm_client_request(ctx->client, &up, &resp, err);
	pvm_resp_fini(&resp);
	close(fd);
	char fpath[128];
	snprintf(fpath, sizeof(fpath), "web/File/%s", file_uuid);
	struct pvm_rest_error derr = {0};
	int drc = pvm_client_delete(ctx->client, fpath, NULL, sto_req_id(ctx), &derr);
	if (drc && rc == 0)
		pvm_log(PVM_LOG_INFO, &ctx->log, "deleting web/File %s after the upload: %s",
		        file_uuid, derr.message[0] ? derr.message : pvm_strerror(drc));
	return rc;
}

/* ---- mappings ---- */

struct map_change {
	const char *lpar_uuid, *lpar_href;
	int64_t vios_id;
	const struct sto_map *maps;
	size_t n;
	const char *const *names; /* unmap */
	size_t nnames;
	bool unmap;
	int count;
};

static bool mapping_has(const struct pvm_vscsi_mapping *m, const char *lpar_uuid,
                        enum pvm_storage_kind kind, const char *name)
{
	return href_is(m->lpar_href, lpar_uuid) && m->storage_kind == kind && m->storage_name &&
	       strcmp(m->storage_name, name) == 0;
}

static int map_change_fn(void *arg, const char *entry, size_t len, char **body)
{
	struct map_change *c = arg;
	struct pvm_rest_error e = {0};
	struct pvm_vios_list *l = NULL;
	int rc = pvm_parse_vios(entry, len, NULL, &l, &e);
	if (rc)
		return rc;
	if (l->count != 1) {
		pvm_vios_list_free(l);
		return PVM_ECORRUPT;
	}
	const struct pvm_vios *v = &l->items[0];
	char *cur = malloc(len + 1);
	if (!cur) {
		pvm_vios_list_free(l);
		return PVM_ENOMEM;
	}
	memcpy(cur, entry, len);
	cur[len] = '\0';
	c->count = 0;
	rc = 0;
	if (!c->unmap) {
		for (size_t i = 0; i < c->n && !rc; i++) {
			bool have = false;
			for (size_t k = 0; k < v->n_scsi_mappings && !have; k++)
				have = mapping_has(&v->scsi_mappings[k], c->lpar_uuid,
				                   c->maps[i].kind, c->maps[i].name);
			if (have)
				continue;
			struct pvm_scsi_map_spec s = {.lpar_href = c->lpar_href,
			                              .server_lpar_id = c->vios_id,
			                              .kind = c->maps[i].kind,
			                              .storage_name = c->maps[i].name,
			                              .storage_udid = c->maps[i].udid};
			char *nb = pvm_build_vios_add_scsi(cur, strlen(cur), &s, &e);
			if (!nb)
				rc = e.code ? e.code : PVM_ENOMEM;
			free(cur);
			cur = nb;
			c->count++;
		}
	} else {
		for (size_t k = 0; k < v->n_scsi_mappings && !rc; k++) {
			const struct pvm_vscsi_mapping *m = &v->scsi_mappings[k];
			if (!href_is(m->lpar_href, c->lpar_uuid))
				continue;
			bool want = !c->names;
			for (size_t j = 0; j < c->nnames && !want; j++)
				want = m->storage_name && strcmp(m->storage_name, c->names[j]) == 0;
			if (!want)
				continue;
			/* removes every mapping of the partition carrying that storage (or, for
			 * a mapping without storage, every storage-less one of the partition) */
			char *nb = pvm_build_vios_remove_scsi(cur, strlen(cur), c->lpar_uuid,
			                                      m->storage_name, &e);
			if (!nb && e.code == PVM_ENOTFOUND) {
				memset(&e, 0, sizeof(e));
				continue; /* removed with an earlier one of the same storage */
			}
			if (!nb)
				rc = e.code ? e.code : PVM_ENOMEM;
			free(cur);
			cur = nb;
			c->count++;
		}
	}
	pvm_vios_list_free(l);
	if (rc) {
		free(cur);
		return rc;
	}
	if (c->count == 0) {
		free(cur);
		return PVM_EEXIST;
	}
	*body = cur;
	return 0;
}

static int vios_update(struct pvm_step_ctx *ctx, const char *vios_uuid, struct map_change *c,
                       struct pvm_rest_error *err)
{
	char path[160];
	snprintf(path, sizeof(path), "uom/VirtualIOServer/%s", vios_uuid);
	struct pvm_update u = {.path = path,
	                       .query = "group=ViosSCSIMapping",
	                       .content_type = VIOS_TYPE,
	                       .request_id = sto_req_id(ctx),
	                       .change = map_change_fn,
	                       .arg = c};
	struct pvm_resp resp = {0};
	int rc = pvm_client_update(ctx->client, &u, &resp, err);
	pvm_resp_fini(&resp);
	if (rc == PVM_EEXIST) {
		clear_err(err);
		c->count = 0;
		return 0;
	}
	return rc;
}

int sto_map(struct pvm_step_ctx *ctx, const struct sto_vios *vios, const char *lpar_uuid,
            const char *lpar_href, const struct sto_map *maps, size_t n, int *added,
            struct pvm_rest_error *err)
{
	struct map_change c = {.lpar_uuid = lpar_uuid,
	                       .lpar_href = lpar_href,
	                       .vios_id = vios->id,
	                       .maps = maps,
	                       .n = n};
	int rc = vios_update(ctx, vios->uuid, &c, err);
	*added = rc ? 0 : c.count;
	return rc;
}

int sto_unmap(struct pvm_step_ctx *ctx, const char *vios_uuid, const char *lpar_uuid,
              const char *const *names, size_t nnames, int *removed, struct pvm_rest_error *err)
{
	struct map_change c = {
	        .lpar_uuid = lpar_uuid, .names = names, .nnames = nnames, .unmap = true};
	int rc = vios_update(ctx, vios_uuid, &c, err);
	if (rc == PVM_ENOTFOUND) { /* the VIOS is gone: so are its mappings */
		clear_err(err);
		rc = 0;
		c.count = 0;
	}
	*removed = rc ? 0 : c.count;
	return rc;
}

/* ---- logical units ---- */

int sto_tier_lus(struct pvm_step_ctx *ctx, const char *tier_uuid, const char *name,
                 char (*uuids)[40], char (*udids)[128], size_t max, size_t *n,
                 struct pvm_rest_error *err)
{
	*n = 0;
	char path[160];
	snprintf(path, sizeof(path), "uom/Tier/%s/LogicalUnit", tier_uuid);
	struct pvm_resp resp = {0};
	struct pvm_logical_unit_list *l = NULL;
	int rc = pvm_client_get(ctx->client, path, NULL, sto_req_id(ctx), &resp, err);
	if (rc == 0)
		rc = pvm_parse_logical_unit(resp.body, resp.len, resp.etag, &l, err);
	pvm_resp_fini(&resp);
	if (rc)
		return rc;
	for (size_t i = 0; i < l->count && *n < max; i++) {
		const struct pvm_logical_unit *lu = &l->items[i];
		if (strcmp(lu->name, name) != 0)
			continue;
		pvm_strlcpy(uuids[*n], lu->meta.uuid ? lu->meta.uuid : "", 40);
		pvm_strlcpy(udids[*n], lu->udid ? lu->udid : "", 128);
		(*n)++;
	}
	pvm_logical_unit_list_free(l);
	return 0;
}
