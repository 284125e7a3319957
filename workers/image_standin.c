/* image_standin.c: stand-ins for the image cache's lookups (image_standin.h), enough for
 * spawn and destroy to run until workers/image.c lands. REPLACE WITH image.h at merge:
 * delete this file.
 *
 * local: the file <state_dir>/images/<id>.raw (pvm_path_image). ssp: the pool named
 * powervm_cluster_name (else the only one), its default tier, and the image LU named
 * image_<id> (pvm_name_image_lu) of type VirtualIO_Image; a marker LU for the image
 * (an upload in progress) makes the lookup -EAGAIN.
 */
#include "image_standin.h"
#include "names.h"

#include "pvm/config.h"
#include "pvm/error.h"
#include "pvm/pvm_objects.h"
#include "pvm/util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

int pvm_image_local_lookup(const char *state_dir, const char *image_id, char *path, size_t n,
                           int64_t *size)
{
	if (!state_dir || !pvm_name_image_id_ok(image_id))
		return PVM_EINVAL;
	int rc = pvm_path_image(state_dir, image_id, path, n);
	if (rc)
		return rc;
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return PVM_ENOTFOUND;
	*size = (int64_t)st.st_size;
	return 0;
}

static const char *req_id(struct pvm_step_ctx *ctx)
{
	return ctx->op->request_id[0] ? ctx->op->request_id : NULL;
}

int pvm_image_ssp_ref(struct pvm_step_ctx *ctx, struct pvm_ssp_ref *out, struct pvm_rest_error *err)
{
	memset(out, 0, sizeof(*out));
	struct pvm_resp resp = {0};
	int rc =
	        pvm_client_get(ctx->client, "uom/SharedStoragePool", NULL, req_id(ctx), &resp, err);
	struct pvm_ssp_list *l = NULL;
	if (rc == 0)
		rc = pvm_parse_ssp(resp.body, resp.len, resp.etag, &l, err);
	pvm_resp_fini(&resp);
	if (rc)
		return rc;
	const char *want = ctx->config ? ctx->config->cluster_name : NULL;
	const struct pvm_ssp *hit = NULL;
	for (size_t i = 0; i < l->count; i++)
		if (want ? strcmp(l->items[i].name, want) == 0 : l->count == 1)
			hit = &l->items[i];
	if (!hit) {
		snprintf(err->message, sizeof(err->message),
		         want ? "no shared storage pool named %s" : "%s",
		         want ? want : "not exactly one shared storage pool");
		pvm_ssp_list_free(l);
		return PVM_ENOTFOUND;
	}
	pvm_strlcpy(out->ssp_uuid, hit->meta.uuid ? hit->meta.uuid : "", sizeof(out->ssp_uuid));
	pvm_strlcpy(out->ssp_name, hit->name, sizeof(out->ssp_name));
	pvm_ssp_list_free(l);
	char path[160];
	snprintf(path, sizeof(path), "uom/SharedStoragePool/%s/Tier", out->ssp_uuid);
	struct pvm_tier_list *t = NULL;
	rc = pvm_client_get(ctx->client, path, NULL, req_id(ctx), &resp, err);
	if (rc == 0)
		rc = pvm_parse_tier(resp.body, resp.len, resp.etag, &t, err);
	pvm_resp_fini(&resp);
	if (rc)
		return rc;
	const struct pvm_tier *tier = NULL;
	for (size_t i = 0; i < t->count; i++)
		if (t->items[i].is_default || (!tier && i == t->count - 1))
			tier = tier ? tier : &t->items[i];
	if (!tier) {
		snprintf(err->message, sizeof(err->message), "pool %s has no tier", out->ssp_name);
		pvm_tier_list_free(t);
		return PVM_ENOTFOUND;
	}
	pvm_strlcpy(out->tier_uuid, tier->meta.uuid ? tier->meta.uuid : "", sizeof(out->tier_uuid));
	pvm_strlcpy(out->tier_href, tier->meta.href ? tier->meta.href : "", sizeof(out->tier_href));
	pvm_tier_list_free(t);
	return 0;
}

int pvm_image_ssp_lookup(struct pvm_step_ctx *ctx, const struct pvm_ssp_ref *ssp,
                         const char *image_id, char udid[128], double *capacity_gb,
                         struct pvm_rest_error *err)
{
	char name[PVM_NAME_MAX], path[160];
	if (pvm_name_image_lu(image_id, name))
		return PVM_EINVAL;
	snprintf(path, sizeof(path), "uom/Tier/%s/LogicalUnit", ssp->tier_uuid);
	struct pvm_resp resp = {0};
	struct pvm_logical_unit_list *l = NULL;
	int rc = pvm_client_get(ctx->client, path, NULL, req_id(ctx), &resp, err);
	if (rc == 0)
		rc = pvm_parse_logical_unit(resp.body, resp.len, resp.etag, &l, err);
	pvm_resp_fini(&resp);
	if (rc)
		return rc;
	bool found = false, marker = false;
	for (size_t i = 0; i < l->count; i++) {
		const struct pvm_logical_unit *lu = &l->items[i];
		char img[96], tag[9];
		if (!found && strcmp(lu->name, name) == 0 && lu->lu_type &&
		    strcmp(lu->lu_type, "VirtualIO_Image") == 0) {
			pvm_strlcpy(udid, lu->udid ? lu->udid : "", 128);
			*capacity_gb = lu->capacity_gb;
			found = true;
		}
		if (pvm_name_parse_marker(lu->name, img, sizeof(img), tag) &&
		    strcmp(img, image_id) == 0)
			marker =
			        true; /* an upload in progress (the winner deletes it at the end) */
	}
	rc = marker ? -EAGAIN : found ? 0 : PVM_ENOTFOUND;
	pvm_logical_unit_list_free(l);
	if (rc == PVM_ENOTFOUND)
		snprintf(err->message, sizeof(err->message), "no image LU %s in pool %s", name,
		         ssp->ssp_name);
	return rc;
}
