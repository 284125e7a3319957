/* test_sim_storage.c: pvmsim's storage, network, file, event and metrics endpoints, driven
 * by the real PowerVM client (pvm_client_* with the builders of pvm/pvm_objects.h and their
 * parsers), so every builder round-trips through the simulator.
 *
 * Each case starts a simulator in-process (port 0, fresh directory). Waits are deadlines
 * on conditions scaled by pvm_test_scale(); nothing sleeps a fixed time.
 */
#include "sim.h"
#include "testutil.h"

#include "pvm/client.h"
#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/pvm_objects.h"
#include "pvm/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <strings.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define CT_UOM(t) "application/vnd.ibm.powervm.uom+xml; type=" t
#define CT_WEB(t) "application/vnd.ibm.powervm.web+xml; type=" t

struct env {
	char *dir;
	struct pvm_sim *sim;
	char endpoint[128];
	struct pvm_client *c;
	char ms[40], vios[40], vg[40], ssp[40], tier[40];
	int vios_id;
};

/* ---------------------------------------------------------------- plumbing -------- */

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
	struct pvm_resp *r = arg;
	char *nb = realloc(r->body, r->len + sz * n + 1);
	assert_non_null(nb);
	memcpy(nb + r->len, p, sz * n);
	r->len += sz * n;
	nb[r->len] = '\0';
	r->body = nb;
	return sz * n;
}

/* A /sim/ control request (no session). Returns the status; *out the body (caller frees). */
static long simctl(struct env *e, const char *method, const char *path, const char *body,
                   char **out)
{
	CURL *c = curl_easy_init();
	assert_non_null(c);
	char url[512];
	snprintf(url, sizeof(url), "%s%s", e->endpoint, path);
	struct pvm_resp r = {0};
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L * pvm_test_scale());
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	long st = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	curl_easy_cleanup(c);
	if (out)
		*out = r.body ? r.body : strdup("");
	else
		free(r.body);
	return st;
}

static json_t *sim_state(struct env *e)
{
	char *out = NULL;
	assert_int_equal(simctl(e, "GET", "/sim/state", NULL, &out), 200);
	json_t *j = json_loads(out, 0, NULL);
	free(out);
	assert_non_null(j);
	return j;
}

/* The props of the object uuid in /sim/state (a new reference), or NULL. */
static json_t *state_props(struct env *e, const char *uuid)
{
	json_t *st = sim_state(e), *a, *res = NULL;
	size_t i;
	json_array_foreach(json_object_get(st, "objects"), i, a)
	{
		if (strcasecmp(json_string_value(json_object_get(a, "uuid")), uuid) == 0) {
			res = json_incref(json_object_get(a, "props"));
			break;
		}
	}
	json_decref(st);
	return res;
}

static void sim_open(struct env *e, bool reuse_dir)
{
	int s = pvm_test_scale();
	if (!reuse_dir)
		e->dir = pvm_test_tmpdir("simstor");
	char cfg[1024];
	snprintf(cfg, sizeof(cfg),
	         "{\"timing\": {\"job_not_started_ms\": %d, \"job_duration_ms\": %d,"
	         " \"job_immediate_ms\": %d, \"job_generic_ms\": %d, \"event_wait_ms\": %d,"
	         " \"pcm_interval_ms\": 10}}",
	         50 * s, 300 * s, 150 * s, 100 * s, 500 * s);
	char *path = NULL, *st = NULL;
	assert_true(asprintf(&path, "%s/pvmsim.json", e->dir) > 0);
	assert_true(asprintf(&st, "%s/state", e->dir) > 0);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(cfg, f);
	fclose(f);
	struct pvm_sim_opts o = {.listen_host = "127.0.0.1",
	                         .port = 0,
	                         .mode = PVM_SIM_HMC,
	                         .state_dir = st,
	                         .config_path = path,
	                         .quiet = true};
	assert_int_equal(pvm_sim_create(&o, &e->sim), 0);
	free(path);
	free(st);
	snprintf(e->endpoint, sizeof(e->endpoint), "http://127.0.0.1:%d", pvm_sim_port(e->sim));
	struct pvm_client_opts co = {.endpoint = e->endpoint,
	                             .user = "hscroot",
	                             .password = "abc123",
	                             .connect_retry_ms = -1,
	                             .etag_retry_delay_ms = 5};
	struct pvm_rest_error err;
	assert_int_equal(pvm_client_create(&co, &e->c, &err), 0);
	assert_int_equal(pvm_client_logon(e->c, &err), 0);
}

static void sim_close(struct env *e, bool keep_dir)
{
	pvm_client_destroy(e->c);
	e->c = NULL;
	pvm_sim_destroy(e->sim);
	e->sim = NULL;
	if (!keep_dir) {
		pvm_test_rmtree(e->dir);
		e->dir = NULL;
	}
}

/* GET path (?query); asserts success; returns the response (pvm_resp_fini it). */
static struct pvm_resp get_ok(struct env *e, const char *path, const char *query)
{
	struct pvm_resp r;
	struct pvm_rest_error err;
	int rc = pvm_client_get(e->c, path, query, NULL, &r, &err);
	if (rc)
		fprintf(stderr, "GET %s: %d %s\n", path, rc, err.message);
	assert_int_equal(rc, 0);
	return r;
}

static int request(struct env *e, enum pvm_method m, const char *path, const char *query,
                   const char *ctype, const char *body, size_t len, const char *if_match,
                   struct pvm_resp *r, struct pvm_rest_error *err)
{
	struct pvm_req rq = {.method = m,
	                     .path = path,
	                     .query = query,
	                     .content_type = ctype,
	                     .body = body,
	                     .body_len = body ? (len ? len : strlen(body)) : 0,
	                     .if_match = if_match,
	                     .request_id = "test-storage"};
	memset(err, 0, sizeof(*err));
	return pvm_client_request(e->c, &rq, r, err);
}

/* Fills ms, vios, vg, ssp, tier of the first system. */
static void discover(struct env *e)
{
	struct pvm_rest_error err;
	struct pvm_resp r = get_ok(e, "uom/ManagedSystem", NULL);
	struct pvm_managed_system_list *ml = NULL;
	assert_int_equal(pvm_parse_managed_system(r.body, r.len, NULL, &ml, &err), 0);
	long k = pvm_managed_system_find(ml, "sim-8408-E8E-SN10678CV");
	assert_true(k >= 0);
	snprintf(e->ms, sizeof(e->ms), "%s", ml->items[k].meta.uuid);
	pvm_managed_system_list_free(ml);
	pvm_resp_fini(&r);
	char path[256];
	snprintf(path, sizeof(path), "uom/ManagedSystem/%s/VirtualIOServer", e->ms);
	r = get_ok(e, path, "group=None");
	struct pvm_vios_list *vl = NULL;
	assert_int_equal(pvm_parse_vios(r.body, r.len, NULL, &vl, &err), 0);
	assert_int_equal(vl->count, 1);
	snprintf(e->vios, sizeof(e->vios), "%s", vl->items[0].lpar.uuid);
	e->vios_id = (int)vl->items[0].lpar.id;
	pvm_vios_list_free(vl);
	pvm_resp_fini(&r);
	snprintf(path, sizeof(path), "uom/VirtualIOServer/%s/VolumeGroup", e->vios);
	r = get_ok(e, path, NULL);
	struct pvm_volume_group_list *gl = NULL;
	assert_int_equal(pvm_parse_volume_group(r.body, r.len, NULL, &gl, &err), 0);
	assert_int_equal(gl->count, 1);
	snprintf(e->vg, sizeof(e->vg), "%s", gl->items[0].meta.uuid);
	pvm_volume_group_list_free(gl);
	pvm_resp_fini(&r);
	r = get_ok(e, "uom/SharedStoragePool", NULL);
	struct pvm_ssp_list *sl = NULL;
	assert_int_equal(pvm_parse_ssp(r.body, r.len, NULL, &sl, &err), 0);
	assert_int_equal(sl->count, 1);
	snprintf(e->ssp, sizeof(e->ssp), "%s", sl->items[0].meta.uuid);
	pvm_ssp_list_free(sl);
	pvm_resp_fini(&r);
	snprintf(path, sizeof(path), "uom/SharedStoragePool/%s/Tier", e->ssp);
	r = get_ok(e, path, NULL);
	struct pvm_tier_list *tl = NULL;
	assert_int_equal(pvm_parse_tier(r.body, r.len, NULL, &tl, &err), 0);
	assert_int_equal(tl->count, 1);
	snprintf(e->tier, sizeof(e->tier), "%s", tl->items[0].meta.uuid);
	pvm_tier_list_free(tl);
	pvm_resp_fini(&r);
}

static void create_lpar(struct env *e, const char *uuid, const char *name)
{
	struct pvm_rest_error err;
	struct pvm_lpar_spec s = {.uuid = uuid, .name = name, .memory_mb = 2048, .vcpus = 2};
	char *body = pvm_build_lpar_create(&s, &err);
	assert_non_null(body);
	char path[200];
	snprintf(path, sizeof(path), "uom/ManagedSystem/%s/LogicalPartition", e->ms);
	struct pvm_resp r;
	int rc = request(e, PVM_PUT, path, NULL, CT_UOM("LogicalPartition"), body, 0, NULL, &r,
	                 &err);
	if (rc)
		fprintf(stderr, "create lpar: %s\n", err.message);
	assert_int_equal(rc, 0);
	free(body);
	pvm_resp_fini(&r);
}

static struct pvm_volume_group_list *read_vg(struct env *e)
{
	char path[200];
	snprintf(path, sizeof(path), "uom/VirtualIOServer/%s/VolumeGroup/%s", e->vios, e->vg);
	struct pvm_resp r = get_ok(e, path, NULL);
	struct pvm_volume_group_list *l = NULL;
	struct pvm_rest_error err;
	assert_int_equal(pvm_parse_volume_group(r.body, r.len, r.etag, &l, &err), 0);
	assert_int_equal(l->count, 1);
	pvm_resp_fini(&r);
	return l;
}

static const struct pvm_vdisk *vdisk_named(const struct pvm_volume_group *g, const char *n)
{
	for (size_t i = 0; i < g->n_vdisks; i++)
		if (!strcmp(g->vdisks[i].name, n))
			return &g->vdisks[i];
	return NULL;
}

/* ---- updates through pvm_client_update with the builders ---- */

struct vd_change {
	struct pvm_vdisk_spec add;
	const char *remove;
};

static int vg_change(void *arg, const char *entry, size_t len, char **body)
{
	struct vd_change *ch = arg;
	struct pvm_rest_error err;
	*body = ch->remove ? pvm_build_vg_remove_vdisk(entry, len, ch->remove, &err)
	                   : pvm_build_vg_add_vdisk(entry, len, &ch->add, &err);
	return *body ? 0 : err.code;
}

static int vg_update(struct env *e, struct vd_change *ch, struct pvm_rest_error *err)
{
	char path[200];
	snprintf(path, sizeof(path), "uom/VirtualIOServer/%s/VolumeGroup/%s", e->vios, e->vg);
	struct pvm_update u = {.path = path,
	                       .content_type = CT_UOM("VolumeGroup"),
	                       .change = vg_change,
	                       .arg = ch};
	struct pvm_resp r = {0};
	memset(err, 0, sizeof(*err));
	int rc = pvm_client_update(e->c, &u, &r, err);
	pvm_resp_fini(&r);
	return rc;
}

static void add_vdisk(struct env *e, const char *name, double gb)
{
	struct vd_change ch = {.add = {.name = name, .capacity_gb = gb}};
	struct pvm_rest_error err;
	int rc = vg_update(e, &ch, &err);
	if (rc)
		fprintf(stderr, "add vdisk %s: %d %s\n", name, rc, err.message);
	assert_int_equal(rc, 0);
}

struct map_change {
	struct pvm_scsi_map_spec add;
	const char *rm_lpar, *rm_storage;
};

static int vios_change(void *arg, const char *entry, size_t len, char **body)
{
	struct map_change *ch = arg;
	struct pvm_rest_error err;
	*body = ch->rm_storage
	                ? pvm_build_vios_remove_scsi(entry, len, ch->rm_lpar, ch->rm_storage, &err)
	                : pvm_build_vios_add_scsi(entry, len, &ch->add, &err);
	return *body ? 0 : err.code;
}

static int vios_update(struct env *e, struct map_change *ch, struct pvm_rest_error *err)
{
	char path[200];
	snprintf(path, sizeof(path), "uom/VirtualIOServer/%s", e->vios);
	struct pvm_update u = {.path = path,
	                       .query = "group=ViosSCSIMapping",
	                       .content_type = CT_UOM("VirtualIOServer"),
	                       .change = vios_change,
	                       .arg = ch};
	struct pvm_resp r = {0};
	memset(err, 0, sizeof(*err));
	int rc = pvm_client_update(e->c, &u, &r, err);
	pvm_resp_fini(&r);
	return rc;
}

static struct pvm_vios_list *read_vios(struct env *e)
{
	char path[200];
	snprintf(path, sizeof(path), "uom/VirtualIOServer/%s", e->vios);
	struct pvm_resp r = get_ok(e, path, "group=ViosSCSIMapping,ViosStorage");
	struct pvm_vios_list *l = NULL;
	struct pvm_rest_error err;
	assert_int_equal(pvm_parse_vios(r.body, r.len, r.etag, &l, &err), 0);
	assert_int_equal(l->count, 1);
	pvm_resp_fini(&r);
	return l;
}

static void lpar_href(struct env *e, const char *uuid, char *out, size_t n)
{
	snprintf(out, n, "%s/rest/api/uom/ManagedSystem/%s/LogicalPartition/%s", e->endpoint, e->ms,
	         uuid);
}

static struct pvm_logical_unit_list *create_lu(struct env *e, const struct pvm_lu_spec *s,
                                               int *rc_out, struct pvm_rest_error *err)
{
	char *body = pvm_build_logical_unit(s, err);
	assert_non_null(body);
	char path[200];
	snprintf(path, sizeof(path), "uom/Tier/%s/LogicalUnit", e->tier);
	struct pvm_resp r;
	int rc = request(e, PVM_PUT, path, NULL, CT_UOM("LogicalUnit"), body, 0, NULL, &r, err);
	free(body);
	*rc_out = rc;
	struct pvm_logical_unit_list *l = NULL;
	if (!rc) {
		assert_int_equal(pvm_parse_logical_unit(r.body, r.len, r.etag, &l, err), 0);
		assert_int_equal(l->count, 1);
	}
	pvm_resp_fini(&r);
	return l;
}

static void ssp_sizes(struct env *e, double *free_gb, size_t *n_lus)
{
	char path[200];
	snprintf(path, sizeof(path), "uom/SharedStoragePool/%s", e->ssp);
	struct pvm_resp r = get_ok(e, path, NULL);
	struct pvm_ssp_list *l = NULL;
	struct pvm_rest_error err;
	assert_int_equal(pvm_parse_ssp(r.body, r.len, r.etag, &l, &err), 0);
	*free_gb = l->items[0].free_gb;
	*n_lus = l->items[0].n_lus;
	pvm_ssp_list_free(l);
	pvm_resp_fini(&r);
}

static bool audit_has(struct env *e, const char *needle)
{
	char *out = NULL;
	assert_int_equal(simctl(e, "GET", "/sim/audit", NULL, &out), 200);
	bool b = strstr(out, needle) != NULL;
	free(out);
	return b;
}

/* ---- file upload ---- */

static void sha256_hex(const unsigned char *p, size_t n, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int l = 0;
	assert_int_equal(EVP_Digest(p, n, md, &l, EVP_sha256(), NULL), 1);
	for (unsigned i = 0; i < l; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int create_file(struct env *e, const struct pvm_file_spec *s, char uuid[40],
                       struct pvm_rest_error *err)
{
	char *body = pvm_build_file(s, err);
	assert_non_null(body);
	struct pvm_resp r;
	int rc = request(e, PVM_PUT, "web/File", NULL, CT_WEB("File"), body, 0, NULL, &r, err);
	free(body);
	if (!rc) {
		struct pvm_file_list *fl = NULL;
		assert_int_equal(pvm_parse_file(r.body, r.len, NULL, &fl, err), 0);
		assert_int_equal(fl->count, 1);
		assert_string_equal(fl->items[0].name, s->name);
		assert_int_equal(fl->items[0].expected_size, s->size);
		assert_int_equal(fl->items[0].current_size, 0);
		assert_string_equal(fl->items[0].target_vios_uuid, s->vios_uuid);
		snprintf(uuid, 40, "%s", fl->items[0].file_uuid);
		pvm_file_list_free(fl);
	}
	pvm_resp_fini(&r);
	return rc;
}

static int upload(struct env *e, const char *uuid, const unsigned char *data, size_t n,
                  struct pvm_rest_error *err, long *status)
{
	char path[200];
	snprintf(path, sizeof(path), "web/File/contents/%s", uuid);
	struct pvm_resp r;
	int rc = request(e, PVM_PUT, path, NULL, "application/octet-stream", (const char *)data, n,
	                 NULL, &r, err);
	*status = r.status;
	pvm_resp_fini(&r);
	return rc;
}

/* The same from a file, streamed by the client (pvm_req.file), from a non-zero offset. */
static int upload_file(struct env *e, const char *uuid, const unsigned char *data, size_t n,
                       struct pvm_rest_error *err, long *status)
{
	char tmpl[] = "/tmp/pvm-upload-XXXXXX";
	int fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	unlink(tmpl);
	assert_int_equal(write(fd, "skip", 4), 4);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	struct pvm_body_file bf = {.fd = fd, .offset = 4, .size = (int64_t)n};
	char path[200];
	snprintf(path, sizeof(path), "web/File/contents/%s", uuid);
	struct pvm_req rq = {.method = PVM_PUT,
	                     .path = path,
	                     .content_type = "application/octet-stream",
	                     .request_id = "test-storage",
	                     .file = &bf};
	struct pvm_resp r;
	memset(err, 0, sizeof(*err));
	int rc = pvm_client_request(e->c, &rq, &r, err);
	*status = r.status;
	pvm_resp_fini(&r);
	close(fd);
	return rc;
}

/* ---------------------------------------------------------------- cases ------------ */

static void test_storage_volume_group(void **state)
{
	(void)state;
	struct env e = {0};
	sim_open(&e, false);
	discover(&e);
	struct pvm_volume_group_list *l = read_vg(&e);
	const struct pvm_volume_group *g = &l->items[0];
	assert_string_equal(g->name, "rootvg");
	assert_true(g->capacity_gb > 1062.9 && g->capacity_gb < 1063.1);
	assert_true(g->free_gb > 999.9 && g->free_gb < 1000.1);
	assert_true(g->has_media_repo);
	assert_string_equal(g->media_repo_name, "VMLibrary");
	assert_true(g->media_repo_size_gb > 10.9);
	assert_int_equal(g->n_vdisks, 0);
	assert_non_null(g->meta.etag);
	char old_etag[80];
	snprintf(old_etag, sizeof(old_etag), "%s", g->meta.etag);
	pvm_volume_group_list_free(l);

	add_vdisk(&e, "boot_inst1", 20);
	add_vdisk(&e, "data_inst1", 5.5);
	l = read_vg(&e);
	g = &l->items[0];
	assert_int_equal(g->n_vdisks, 2);
	const struct pvm_vdisk *d = vdisk_named(g, "boot_inst1");
	assert_non_null(d);
	assert_true(d->capacity_gb > 19.99 && d->capacity_gb < 20.01);
	assert_non_null(d->udid);
	assert_true(strlen(d->udid) > 4);
	assert_string_equal(d->label, "None");
	assert_true(g->free_gb > 974.49 && g->free_gb < 974.51);
	assert_string_not_equal(g->meta.etag, old_etag);
	pvm_volume_group_list_free(l);

	/* a stale ETag: 412 */
	char path[200];
	snprintf(path, sizeof(path), "uom/VirtualIOServer/%s/VolumeGroup/%s", e.vios, e.vg);
	struct pvm_resp r = get_ok(&e, path, NULL);
	struct pvm_rest_error err;
	struct pvm_vdisk_spec sp = {.name = "stale1", .capacity_gb = 1};
	char *body = pvm_build_vg_add_vdisk(r.body, r.len, &sp, &err);
	assert_non_null(body);
	pvm_resp_fini(&r);
	struct pvm_resp pr;
	request(&e, PVM_POST, path, NULL, CT_UOM("VolumeGroup"), body, 0, old_etag, &pr, &err);
	assert_int_equal(pr.status, 412);
	pvm_resp_fini(&pr);
	/* a name over 15 characters (the builder refuses it, so edit the body) */
	char *p = strstr(body, "<DiskName>stale1</DiskName>");
	assert_non_null(p);
	char *long_body = NULL;
	assert_true(asprintf(&long_body, "%.*s<DiskName>abcdefghijklmnop</DiskName>%s",
	                     (int)(p - body), body, p + strlen("<DiskName>stale1</DiskName>")) > 0);
	int rc = request(&e, PVM_POST, path, NULL, CT_UOM("VolumeGroup"), long_body, 0, NULL, &pr,
	                 &err);
	assert_int_equal(pr.status, 400);
	assert_int_equal(rc, PVM_EINVAL);
	assert_non_null(strstr(err.message, "DiskName"));
	pvm_resp_fini(&pr);
	free(long_body);
	free(body);
	/* larger than the free space */
	struct vd_change big = {.add = {.name = "huge", .capacity_gb = 5000}};
	assert_int_equal(vg_update(&e, &big, &err), PVM_EINVAL);
	assert_non_null(strstr(err.message, "free space"));

	/* optical media added and removed by POSTing the group (the repository's list) */
	r = get_ok(&e, path, NULL);
	const char *close = strstr(r.body, "</OpticalMedia>");
	char *with_media = NULL;
	if (close) {
		assert_true(
		        asprintf(&with_media,
		                 "%.*s<VirtualOpticalMedia schemaVersion=\"V1_0\"><Metadata><Atom/>"
		                 "</Metadata><MediaName>cfg_inst1.iso</MediaName><MountType>ro"
		                 "</MountType><Size>0.0005</Size></VirtualOpticalMedia>%s",
		                 (int)(close - r.body), r.body, close) > 0);
	} else { /* an empty OpticalMedia element */
		const char *om = strstr(r.body, "<OpticalMedia");
		assert_non_null(om);
		const char *end = strstr(om, "</Metadata>");
		assert_non_null(end);
		end += strlen("</Metadata>");
		assert_true(
		        asprintf(&with_media,
		                 "%.*s<VirtualOpticalMedia schemaVersion=\"V1_0\"><Metadata><Atom/>"
		                 "</Metadata><MediaName>cfg_inst1.iso</MediaName><MountType>ro"
		                 "</MountType><Size>0.0005</Size></VirtualOpticalMedia>%s",
		                 (int)(end - r.body), r.body, end) > 0);
	}
	rc = request(&e, PVM_POST, path, NULL, CT_UOM("VolumeGroup"), with_media, 0, r.etag, &pr,
	             &err);
	if (rc)
		fprintf(stderr, "media add: %s\n", err.message);
	assert_int_equal(rc, 0);
	pvm_resp_fini(&pr);
	pvm_resp_fini(&r);
	free(with_media);
	l = read_vg(&e);
	g = &l->items[0];
	assert_int_equal(g->n_media, 1);
	assert_string_equal(g->media[0].name, "cfg_inst1.iso");
	assert_string_equal(g->media[0].udid, "0ecfg_inst1.iso");
	assert_string_equal(g->media[0].mount_type, "ro");
	pvm_volume_group_list_free(l);
	/* the VIOS shows the media in its repository too */
	struct pvm_vios_list *vl = read_vios(&e);
	assert_int_equal(vl->items[0].n_media_repos, 1);
	assert_int_equal(vl->items[0].media_repos[0].n_media, 1);
	pvm_vios_list_free(vl);

	/* remove a disk with the builder: the space comes back */
	struct vd_change rm = {.remove = "data_inst1"};
	assert_int_equal(vg_update(&e, &rm, &err), 0);
	l = read_vg(&e);
	g = &l->items[0];
	assert_int_equal(g->n_vdisks, 1);
	assert_null(vdisk_named(g, "data_inst1"));
	assert_true(g->free_gb > 979.99 && g->free_gb < 980.01);
	assert_int_equal(g->n_media, 1); /* the builder kept the media */
	pvm_volume_group_list_free(l);
	/* the remove builder refuses an unknown disk */
	r = get_ok(&e, path, NULL);
	assert_null(pvm_build_vg_remove_vdisk(r.body, r.len, "nosuch", &err));
	assert_int_equal(err.code, PVM_ENOTFOUND);
	pvm_resp_fini(&r);
	/* audit and events: one updated line per change */
	assert_true(audit_has(&e, "updated: 1 added, 0 removed"));
	assert_true(audit_has(&e, "updated: 0 added, 1 removed"));
	sim_close(&e, false);
}

static void test_storage_ssp_lu(void **state)
{
	(void)state;
	struct env e = {0};
	sim_open(&e, false);
	discover(&e);
	struct pvm_rest_error err;
	char path[200];
	snprintf(path, sizeof(path), "uom/Tier/%s", e.tier);
	struct pvm_resp r = get_ok(&e, path, NULL);
	struct pvm_tier_list *tl = NULL;
	assert_int_equal(pvm_parse_tier(r.body, r.len, r.etag, &tl, &err), 0);
	assert_string_equal(tl->items[0].name, "SYSTEM");
	assert_true(tl->items[0].is_default);
	assert_non_null(tl->items[0].ssp_href);
	assert_non_null(strstr(tl->items[0].ssp_href, e.ssp));
	assert_true(tl->items[0].capacity_gb > 2047);
	pvm_tier_list_free(tl);
	pvm_resp_fini(&r);
	double free0, free1;
	size_t nlu;
	ssp_sizes(&e, &free0, &nlu);
	assert_true(free0 > 1999.9 && free0 < 2000.1);
	assert_int_equal(nlu, 0);

	int rc;
	struct pvm_lu_spec img = {.name = "image_base_abc123",
	                          .capacity_gb = 10,
	                          .lu_type = "VirtualIO_Image",
	                          .thin = false};
	struct pvm_logical_unit_list *il = create_lu(&e, &img, &rc, &err);
	assert_int_equal(rc, 0);
	const struct pvm_logical_unit *image = &il->items[0];
	assert_string_equal(image->name, "image_base_abc123");
	assert_string_equal(image->lu_type, "VirtualIO_Image");
	assert_false(image->thin);
	assert_non_null(image->udid);
	assert_true(strncmp(image->udid, "29", 2) == 0);
	assert_false(image->in_use);
	ssp_sizes(&e, &free1, &nlu);
	assert_true(free1 > 1989.9 && free1 < 1990.1); /* a thick LU takes its size */
	assert_int_equal(nlu, 1);

	struct pvm_lu_spec cl = {.name = "boot_inst1",
	                         .capacity_gb = 20,
	                         .lu_type = "VirtualIO_Disk",
	                         .thin = true,
	                         .cloned_from = image->udid};
	struct pvm_logical_unit_list *cll = create_lu(&e, &cl, &rc, &err);
	assert_int_equal(rc, 0);
	assert_string_equal(cll->items[0].cloned_from, image->udid);
	assert_true(cll->items[0].thin);
	assert_true(strncmp(cll->items[0].udid, "27", 2) == 0);
	ssp_sizes(&e, &free1, &nlu);
	assert_true(free1 > 1989.9 && free1 < 1990.1); /* a linked clone takes nothing */
	assert_int_equal(nlu, 2);
	/* refusals: an unknown source, a source that is not an image, a thick LU too large */
	struct pvm_lu_spec bad = {.name = "x", .capacity_gb = 1, .cloned_from = "27deadbeef"};
	assert_null(create_lu(&e, &bad, &rc, &err));
	assert_int_equal(rc, PVM_EINVAL);
	assert_non_null(strstr(err.message, "ClonedFrom"));
	bad.cloned_from = cll->items[0].udid;
	assert_null(create_lu(&e, &bad, &rc, &err));
	assert_int_equal(rc, PVM_EINVAL);
	struct pvm_lu_spec thick = {.name = "big", .capacity_gb = 5000, .thin = false};
	assert_null(create_lu(&e, &thick, &rc, &err));
	assert_int_equal(rc, PVM_EINVAL);
	/* listed in the tier's feed */
	snprintf(path, sizeof(path), "uom/Tier/%s/LogicalUnit", e.tier);
	r = get_ok(&e, path, NULL);
	struct pvm_logical_unit_list *all = NULL;
	assert_int_equal(pvm_parse_logical_unit(r.body, r.len, NULL, &all, &err), 0);
	assert_int_equal(all->count, 2);
	pvm_logical_unit_list_free(all);
	pvm_resp_fini(&r);
	/* the image cannot go while a clone exists */
	char lupath[256];
	snprintf(lupath, sizeof(lupath), "uom/Tier/%s/LogicalUnit/%s", e.tier, image->meta.uuid);
	struct pvm_resp dr;
	rc = request(&e, PVM_DELETE, lupath, NULL, NULL, NULL, 0, NULL, &dr, &err);
	assert_int_equal(dr.status, 409);
	pvm_resp_fini(&dr);
	/* a stale ETag on delete: 412 */
	rc = request(&e, PVM_DELETE, lupath, NULL, NULL, NULL, 0, "12345", &dr, &err);
	assert_int_equal(dr.status, 412);
	pvm_resp_fini(&dr);
	char clpath[256];
	snprintf(clpath, sizeof(clpath), "uom/Tier/%s/LogicalUnit/%s", e.tier,
	         cll->items[0].meta.uuid);
	assert_int_equal(pvm_client_delete(e.c, clpath, cll->items[0].meta.etag, NULL, &err), 0);
	assert_int_equal(pvm_client_delete(e.c, lupath, NULL, NULL, &err), 0);
	ssp_sizes(&e, &free1, &nlu);
	assert_true(free1 > 1999.9 && free1 < 2000.1);
	assert_int_equal(nlu, 0);
	assert_true(audit_has(&e, "created LU image_base_abc123"));
	assert_true(audit_has(&e, "deleted LU boot_inst1"));
	pvm_logical_unit_list_free(cll);
	pvm_logical_unit_list_free(il);
	sim_close(&e, false);
}

#define LPAR1 "1A2B3C4D-0000-4000-8000-00000000A001"
#define LPAR2 "1A2B3C4D-0000-4000-8000-00000000A002"

static const struct pvm_vscsi_mapping *mapping_of(const struct pvm_vios *v, const char *name)
{
	for (size_t i = 0; i < v->n_scsi_mappings; i++)
		if (v->scsi_mappings[i].storage_name &&
		    !strcmp(v->scsi_mappings[i].storage_name, name))
			return &v->scsi_mappings[i];
	return NULL;
}

static void test_storage_mappings(void **state)
{
	(void)state;
	struct env e = {0};
	sim_open(&e, false);
	discover(&e);
	create_lpar(&e, LPAR1, "inst-map-1");
	add_vdisk(&e, "boot_map1", 10);
	struct pvm_rest_error err;
	int rc;
	struct pvm_lu_spec img = {
	        .name = "image_m", .capacity_gb = 1, .lu_type = "VirtualIO_Image"};
	struct pvm_logical_unit_list *il = create_lu(&e, &img, &rc, &err);
	assert_int_equal(rc, 0);
	struct pvm_lu_spec cl = {.name = "boot_map1_lu",
	                         .capacity_gb = 5,
	                         .thin = true,
	                         .cloned_from = il->items[0].udid};
	struct pvm_logical_unit_list *cll = create_lu(&e, &cl, &rc, &err);
	assert_int_equal(rc, 0);
	char href[300];
	lpar_href(&e, LPAR1, href, sizeof(href));

	struct map_change ch = {.add = {.lpar_href = href,
	                                .server_lpar_id = e.vios_id,
	                                .kind = PVM_STORAGE_VDISK,
	                                .storage_name = "boot_map1"}};
	rc = vios_update(&e, &ch, &err);
	if (rc)
		fprintf(stderr, "map vdisk: %s\n", err.message);
	assert_int_equal(rc, 0);
	struct pvm_vios_list *vl = read_vios(&e);
	assert_int_equal(vl->items[0].n_scsi_mappings, 1);
	const struct pvm_vscsi_mapping *m = mapping_of(&vl->items[0], "boot_map1");
	assert_non_null(m);
	assert_int_equal(m->storage_kind, PVM_STORAGE_VDISK);
	assert_true(m->has_client && m->has_server);
	assert_true(m->client.slot >= 2);
	assert_true(m->server.slot >= 2);
	assert_int_equal(m->client.remote_slot, m->server.slot);
	assert_int_equal(m->server.remote_slot, m->client.slot);
	assert_int_equal(m->server.lpar_id, e.vios_id);
	assert_string_equal(m->server.name, "vhost0");
	assert_string_equal(m->target_name, "vtscsi0");
	assert_non_null(m->storage_udid);
	assert_non_null(strstr(m->lpar_href, LPAR1));
	int64_t cslot = m->client.slot, sslot = m->server.slot;
	pvm_vios_list_free(vl);

	/* more storage for the same partition shares its adapter pair */
	ch.add.kind = PVM_STORAGE_PV;
	ch.add.storage_name = "hdisk1";
	assert_int_equal(vios_update(&e, &ch, &err), 0);
	ch.add.kind = PVM_STORAGE_LU;
	ch.add.storage_name = "boot_map1_lu";
	ch.add.storage_udid = cll->items[0].udid;
	assert_int_equal(vios_update(&e, &ch, &err), 0);
	ch.add.storage_udid = NULL;
	vl = read_vios(&e);
	assert_int_equal(vl->items[0].n_scsi_mappings, 3);
	m = mapping_of(&vl->items[0], "hdisk1");
	assert_non_null(m);
	assert_int_equal(m->storage_kind, PVM_STORAGE_PV);
	assert_int_equal(m->client.slot, cslot);
	assert_int_equal(m->server.slot, sslot);
	m = mapping_of(&vl->items[0], "boot_map1_lu");
	assert_non_null(m);
	assert_int_equal(m->storage_kind, PVM_STORAGE_LU);
	assert_string_equal(m->storage_udid, cll->items[0].udid);
	assert_string_equal(m->target_name, "vtscsi2");
	pvm_vios_list_free(vl);
	/* optical media (a config drive uploaded as an ISO) */
	struct pvm_file_spec iso = {.name = "cfg_map1.iso",
	                            .enum_type = "BROKERED_MEDIA_ISO",
	                            .size = 2048,
	                            .vios_uuid = e.vios};
	char fu[40];
	long st;
	unsigned char zeros[2048] = {0};
	assert_int_equal(create_file(&e, &iso, fu, &err), 0);
	assert_int_equal(upload(&e, fu, zeros, sizeof(zeros), &err, &st), 0);
	ch.add.kind = PVM_STORAGE_VOPT;
	ch.add.storage_name = "cfg_map1.iso";
	assert_int_equal(vios_update(&e, &ch, &err), 0);
	vl = read_vios(&e);
	m = mapping_of(&vl->items[0], "cfg_map1.iso");
	assert_non_null(m);
	assert_int_equal(m->storage_kind, PVM_STORAGE_VOPT);
	assert_string_equal(m->storage_udid, "0ecfg_map1.iso");
	assert_string_equal(m->target_name, "vtopt0");
	assert_int_equal(m->client.slot, cslot);
	pvm_vios_list_free(vl);
	/* mapped media cannot leave the repository */
	char vgpath[200];
	snprintf(vgpath, sizeof(vgpath), "uom/VirtualIOServer/%s/VolumeGroup/%s", e.vios, e.vg);
	struct pvm_resp gr = get_ok(&e, vgpath, NULL);
	char *vo = strstr(gr.body, "<VirtualOpticalMedia");
	char *vo_end = vo ? strstr(vo, "</VirtualOpticalMedia>") : NULL;
	assert_non_null(vo_end);
	char *no_media = NULL;
	assert_true(asprintf(&no_media, "%.*s%s", (int)(vo - gr.body), gr.body,
	                     vo_end + strlen("</VirtualOpticalMedia>")) > 0);
	struct pvm_resp nr;
	request(&e, PVM_POST, vgpath, NULL, CT_UOM("VolumeGroup"), no_media, 0, gr.etag, &nr, &err);
	assert_int_equal(nr.status, 409);
	assert_non_null(strstr(err.message, "cfg_map1.iso"));
	pvm_resp_fini(&nr);
	free(no_media);
	pvm_resp_fini(&gr);
	struct map_change rmo = {.rm_lpar = href, .rm_storage = "cfg_map1.iso"};
	assert_int_equal(vios_update(&e, &rmo, &err), 0);
	/* the LU shows InUse and cannot be deleted */
	char lupath[256];
	snprintf(lupath, sizeof(lupath), "uom/Tier/%s/LogicalUnit/%s", e.tier,
	         cll->items[0].meta.uuid);
	struct pvm_resp r = get_ok(&e, lupath, NULL);
	struct pvm_logical_unit_list *lu = NULL;
	assert_int_equal(pvm_parse_logical_unit(r.body, r.len, r.etag, &lu, &err), 0);
	assert_true(lu->items[0].in_use);
	pvm_logical_unit_list_free(lu);
	pvm_resp_fini(&r);
	struct pvm_resp dr;
	request(&e, PVM_DELETE, lupath, NULL, NULL, NULL, 0, NULL, &dr, &err);
	assert_int_equal(dr.status, 409);
	pvm_resp_fini(&dr);
	/* a mapped disk cannot be removed from its group */
	struct vd_change rmd = {.remove = "boot_map1"};
	assert_int_equal(vg_update(&e, &rmd, &err), -EPROTO);
	assert_int_equal(err.http_status, 409);

	/* validation: storage that does not exist, a partition that does not exist */
	ch.add.kind = PVM_STORAGE_VDISK;
	ch.add.storage_name = "nosuchdisk";
	assert_int_equal(vios_update(&e, &ch, &err), PVM_EINVAL);
	assert_int_equal(err.http_status, 400);
	assert_non_null(strstr(err.message, "does not exist"));
	ch.add.kind = PVM_STORAGE_VOPT;
	ch.add.storage_name = "nosuch.iso";
	assert_int_equal(vios_update(&e, &ch, &err), PVM_EINVAL);
	ch.add.kind = PVM_STORAGE_LU;
	ch.add.storage_name = "x";
	ch.add.storage_udid = "27ffff";
	assert_int_equal(vios_update(&e, &ch, &err), PVM_EINVAL);
	ch.add.storage_udid = NULL;
	char bad_href[300];
	lpar_href(&e, "1A2B3C4D-0000-4000-8000-0000000FFFFF", bad_href, sizeof(bad_href));
	struct map_change bad = {
	        .add = {.lpar_href = bad_href, .kind = PVM_STORAGE_PV, .storage_name = "hdisk0"}};
	assert_int_equal(vios_update(&e, &bad, &err), PVM_EINVAL);
	assert_non_null(strstr(err.message, "AssociatedLogicalPartition"));

	/* a stale VIOS ETag: 412 */
	char vpath[200];
	snprintf(vpath, sizeof(vpath), "uom/VirtualIOServer/%s", e.vios);
	r = get_ok(&e, vpath, "group=ViosSCSIMapping");
	char old_etag[80];
	snprintf(old_etag, sizeof(old_etag), "%s", r.etag);
	ch.add.kind = PVM_STORAGE_PV;
	ch.add.storage_name = "hdisk0";
	char *body = pvm_build_vios_add_scsi(r.body, r.len, &ch.add, &err);
	assert_non_null(body);
	pvm_resp_fini(&r);
	struct map_change rm = {.rm_lpar = href, .rm_storage = "hdisk1"};
	assert_int_equal(vios_update(&e, &rm, &err), 0); /* the VIOS changes meanwhile */
	struct pvm_resp pr;
	request(&e, PVM_POST, vpath, "group=ViosSCSIMapping", CT_UOM("VirtualIOServer"), body, 0,
	        old_etag, &pr, &err);
	assert_int_equal(pr.status, 412);
	pvm_resp_fini(&pr);
	free(body);
	vl = read_vios(&e);
	assert_int_equal(vl->items[0].n_scsi_mappings, 2);
	assert_null(mapping_of(&vl->items[0], "hdisk1"));
	pvm_vios_list_free(vl);

	/* unmapped, the disk can go */
	struct map_change rm2 = {.rm_lpar = href, .rm_storage = "boot_map1"};
	assert_int_equal(vios_update(&e, &rm2, &err), 0);
	assert_int_equal(vg_update(&e, &rmd, &err), 0);

	/* deleting the partition drops the client side of its mappings */
	char lp[200];
	snprintf(lp, sizeof(lp), "uom/LogicalPartition/%s", LPAR1);
	assert_int_equal(pvm_client_delete(e.c, lp, NULL, NULL, &err), 0);
	vl = read_vios(&e);
	assert_int_equal(vl->items[0].n_scsi_mappings, 1);
	m = &vl->items[0].scsi_mappings[0];
	assert_false(m->has_client);
	assert_true(m->has_server);
	assert_string_equal(m->storage_name, "boot_map1_lu");
	pvm_vios_list_free(vl);
	assert_true(audit_has(&e, "mappings 1 added, 0 removed"));
	pvm_logical_unit_list_free(cll);
	pvm_logical_unit_list_free(il);
	sim_close(&e, false);
}

static void test_storage_cna(void **state)
{
	(void)state;
	struct env e = {0};
	sim_open(&e, false);
	discover(&e);
	struct pvm_rest_error err;
	char path[256];
	snprintf(path, sizeof(path), "uom/ManagedSystem/%s/VirtualSwitch", e.ms);
	struct pvm_resp r = get_ok(&e, path, NULL);
	struct pvm_vswitch_list *sw = NULL;
	assert_int_equal(pvm_parse_vswitch(r.body, r.len, NULL, &sw, &err), 0);
	pvm_resp_fini(&r);
	assert_int_equal(sw->count, 2);
	const struct pvm_vswitch *mgmt = NULL, *dflt = NULL;
	for (size_t i = 0; i < sw->count; i++) {
		if (!strcmp(sw->items[i].name, "MGMTSWITCH"))
			mgmt = &sw->items[i];
		if (!strcmp(sw->items[i].name, "ETHERNET0(Default)"))
			dflt = &sw->items[i];
	}
	assert_non_null(mgmt);
	assert_non_null(dflt);
	assert_int_equal(dflt->id, 0);
	assert_int_equal(mgmt->id, 1);
	assert_string_equal(mgmt->mode, "Veb");
	assert_non_null(mgmt->meta.href);
	create_lpar(&e, LPAR2, "inst-cna");

	struct pvm_cna_spec s = {.mac = "fa:d4:43:3e:d1:20",
	                         .pvid = 100,
	                         .vswitch_href = dflt->meta.href,
	                         .tagged_vlans = "53 54"};
	char *body = pvm_build_cna(&s, &err);
	assert_non_null(body);
	snprintf(path, sizeof(path), "uom/LogicalPartition/%s/ClientNetworkAdapter", LPAR2);
	struct pvm_resp cr;
	int rc = request(&e, PVM_PUT, path, NULL, CT_UOM("ClientNetworkAdapter"), body, 0, NULL,
	                 &cr, &err);
	if (rc)
		fprintf(stderr, "cna: %s\n", err.message);
	assert_int_equal(rc, 0);
	free(body);
	struct pvm_cna_list *cl = NULL;
	assert_int_equal(pvm_parse_cna(cr.body, cr.len, cr.etag, &cl, &err), 0);
	assert_string_equal(cl->items[0].mac, "FAD4433ED120");
	assert_int_equal(cl->items[0].pvid, 100);
	assert_true(cl->items[0].slot >= 2);
	assert_string_equal(cl->items[0].tagged_vlans, "53 54");
	assert_true(cl->items[0].tagged_vlan_supported);
	assert_int_equal(cl->items[0].vswitch_id, 0);
	assert_non_null(strstr(cl->items[0].vswitch_href, dflt->meta.uuid));
	int64_t slot1 = cl->items[0].slot;
	char cna1[320];
	snprintf(cna1, sizeof(cna1), "%s/%s", path, cl->items[0].meta.uuid);
	pvm_cna_list_free(cl);
	pvm_resp_fini(&cr);

	/* the RMC adapter: MGMTSWITCH, VLAN 4094, MAC and slot picked by the server */
	struct pvm_cna_spec s2 = {.pvid = 4094, .vswitch_href = mgmt->meta.href};
	body = pvm_build_cna(&s2, &err);
	rc = request(&e, PVM_PUT, path, NULL, CT_UOM("ClientNetworkAdapter"), body, 0, NULL, &cr,
	             &err);
	assert_int_equal(rc, 0);
	free(body);
	assert_int_equal(pvm_parse_cna(cr.body, cr.len, cr.etag, &cl, &err), 0);
	assert_int_equal(strlen(cl->items[0].mac), 12);
	for (const char *p = cl->items[0].mac; *p; p++)
		assert_true((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'F'));
	assert_true(cl->items[0].slot >= 2 && cl->items[0].slot != slot1);
	assert_int_equal(cl->items[0].vswitch_id, 1);
	pvm_cna_list_free(cl);
	pvm_resp_fini(&cr);

	/* refusals: a duplicate MAC, a switch that does not exist */
	body = pvm_build_cna(&s, &err);
	request(&e, PVM_PUT, path, NULL, CT_UOM("ClientNetworkAdapter"), body, 0, NULL, &cr, &err);
	assert_int_equal(cr.status, 409);
	pvm_resp_fini(&cr);
	free(body);
	char bad_sw[300];
	snprintf(bad_sw, sizeof(bad_sw), "%s/rest/api/uom/ManagedSystem/%s/VirtualSwitch/%s",
	         e.endpoint, e.ms, "00000000-0000-0000-0000-000000000000");
	struct pvm_cna_spec s3 = {.pvid = 5, .vswitch_href = bad_sw};
	body = pvm_build_cna(&s3, &err);
	rc = request(&e, PVM_PUT, path, NULL, CT_UOM("ClientNetworkAdapter"), body, 0, NULL, &cr,
	             &err);
	assert_int_equal(rc, PVM_EINVAL);
	assert_non_null(strstr(err.message, "AssociatedVirtualSwitch"));
	pvm_resp_fini(&cr);
	free(body);

	/* listed, linked from the partition, deleted */
	r = get_ok(&e, path, NULL);
	assert_int_equal(pvm_parse_cna(r.body, r.len, NULL, &cl, &err), 0);
	assert_int_equal(cl->count, 2);
	pvm_cna_list_free(cl);
	pvm_resp_fini(&r);
	char lp[200];
	snprintf(lp, sizeof(lp), "uom/LogicalPartition/%s", LPAR2);
	r = get_ok(&e, lp, NULL);
	assert_non_null(strstr(r.body, "/ClientNetworkAdapter/"));
	pvm_resp_fini(&r);
	assert_int_equal(pvm_client_delete(e.c, cna1, NULL, NULL, &err), 0);
	r = get_ok(&e, path, NULL);
	assert_int_equal(pvm_parse_cna(r.body, r.len, NULL, &cl, &err), 0);
	assert_int_equal(cl->count, 1);
	pvm_cna_list_free(cl);
	pvm_resp_fini(&r);
	/* the partition goes with its adapters */
	assert_int_equal(pvm_client_delete(e.c, lp, NULL, NULL, &err), 0);
	json_t *st = sim_state(&e), *a;
	size_t i;
	json_array_foreach(json_object_get(st, "objects"), i, a) assert_string_not_equal(
	        json_string_value(json_object_get(a, "kind")), "ClientNetworkAdapter");
	json_decref(st);
	assert_true(audit_has(&e, "created CNA FAD4433ED120 vlan 100"));
	pvm_vswitch_list_free(sw);
	sim_close(&e, false);
}

static void test_storage_file_upload(void **state)
{
	(void)state;
	struct env e = {0};
	sim_open(&e, false);
	discover(&e);
	add_vdisk(&e, "boot_up1", 1);
	struct pvm_volume_group_list *l = read_vg(&e);
	char udid[128];
	snprintf(udid, sizeof(udid), "%s", vdisk_named(&l->items[0], "boot_up1")->udid);
	pvm_volume_group_list_free(l);
	/* 20 MiB + a bit: more than the 8 MiB any other body may have, so it must stream */
	size_t n = (20u << 20) + 12345;
	unsigned char *data = malloc(n);
	assert_non_null(data);
	uint64_t x = 0x9E3779B97F4A7C15ULL;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		data[i] = (unsigned char)x;
	}
	char sha[65];
	sha256_hex(data, n, sha);
	struct pvm_rest_error err;
	struct pvm_file_spec fs = {.name = "boot_up1",
	                           .enum_type = "BROKERED_DISK_IMAGE",
	                           .size = (int64_t)n,
	                           .vios_uuid = e.vios,
	                           .target_udid = udid,
	                           .sha256 = sha};
	char fu[40];
	assert_int_equal(create_file(&e, &fs, fu, &err), 0);
	long st;
	int rc = upload_file(&e, fu, data, n, &err, &st);
	if (rc)
		fprintf(stderr, "upload: %s\n", err.message);
	assert_int_equal(rc, 0);
	assert_int_equal(st, 204);
	/* the file shows its size; the disk its contents */
	char path[200];
	snprintf(path, sizeof(path), "web/File/%s", fu);
	struct pvm_resp r = get_ok(&e, path, NULL);
	struct pvm_file_list *fl = NULL;
	assert_int_equal(pvm_parse_file(r.body, r.len, NULL, &fl, &err), 0);
	assert_int_equal(fl->items[0].current_size, (int64_t)n);
	pvm_file_list_free(fl);
	pvm_resp_fini(&r);
	json_t *vg = state_props(&e, e.vg);
	assert_non_null(vg);
	json_t *d = json_array_get(json_object_get(vg, "vdisks"), 0);
	json_t *ct = json_object_get(d, "contents");
	assert_non_null(ct);
	assert_int_equal(json_integer_value(json_object_get(ct, "size")), (json_int_t)n);
	assert_string_equal(json_string_value(json_object_get(ct, "sha256")), sha);
	json_decref(vg);
	/* a second upload of the same file is refused; the file can be deleted */
	rc = upload(&e, fu, data, 10, &err, &st);
	assert_int_equal(st, 409);
	assert_int_equal(pvm_client_delete(e.c, path, NULL, NULL, &err), 0);
	assert_true(audit_has(&e, sha));

	/* a SHA-256 mismatch is an error the client sees, and nothing lands */
	add_vdisk(&e, "boot_up2", 1);
	l = read_vg(&e);
	snprintf(udid, sizeof(udid), "%s", vdisk_named(&l->items[0], "boot_up2")->udid);
	pvm_volume_group_list_free(l);
	char wrong[65];
	memset(wrong, 'a', 64);
	wrong[64] = '\0';
	fs.name = "boot_up2";
	fs.size = 4096;
	fs.sha256 = wrong;
	assert_int_equal(create_file(&e, &fs, fu, &err), 0);
	rc = upload(&e, fu, data, 4096, &err, &st);
	assert_int_equal(st, 400);
	assert_int_equal(rc, PVM_EINVAL);
	assert_non_null(strstr(err.message, "SHA-256"));
	/* a size mismatch too */
	fs.sha256 = NULL;
	assert_int_equal(create_file(&e, &fs, fu, &err), 0);
	rc = upload(&e, fu, data, 4000, &err, &st);
	assert_int_equal(st, 400);
	assert_non_null(strstr(err.message, "ExpectedFileSizeInBytes"));
	vg = state_props(&e, e.vg);
	d = json_array_get(json_object_get(vg, "vdisks"), 1);
	assert_string_equal(json_string_value(json_object_get(d, "name")), "boot_up2");
	assert_null(json_object_get(d, "contents"));
	json_decref(vg);
	/* bad files: no such target, too large for the disk */
	fs.target_udid = "0300nosuch.1";
	assert_int_equal(create_file(&e, &fs, fu, &err), PVM_EINVAL);
	fs.target_udid = udid;
	fs.size = (int64_t)2 << 30;
	assert_int_equal(create_file(&e, &fs, fu, &err), PVM_EINVAL);

	/* an ISO without a target becomes optical media in the repository */
	struct pvm_file_spec iso = {.name = "cfg_0123456789abcdef.iso",
	                            .enum_type = "BROKERED_MEDIA_ISO",
	                            .size = 65536,
	                            .vios_uuid = e.vios};
	assert_int_equal(create_file(&e, &iso, fu, &err), 0);
	assert_int_equal(upload(&e, fu, data, 65536, &err, &st), 0);
	l = read_vg(&e);
	assert_int_equal(l->items[0].n_media, 1);
	assert_string_equal(l->items[0].media[0].name, "cfg_0123456789abcdef.iso");
	pvm_volume_group_list_free(l);

	/* an image logical unit */
	struct pvm_lu_spec img = {
	        .name = "image_up", .capacity_gb = 1, .lu_type = "VirtualIO_Image"};
	struct pvm_logical_unit_list *il = create_lu(&e, &img, &rc, &err);
	assert_int_equal(rc, 0);
	struct pvm_file_spec luf = {.name = "image_up",
	                            .enum_type = "BROKERED_DISK_IMAGE",
	                            .size = 100000,
	                            .vios_uuid = e.vios,
	                            .target_udid = il->items[0].udid};
	assert_int_equal(create_file(&e, &luf, fu, &err), 0);
	assert_int_equal(upload(&e, fu, data, 100000, &err, &st), 0);
	json_t *lu = state_props(&e, il->items[0].meta.uuid);
	assert_int_equal(
	        json_integer_value(json_object_get(json_object_get(lu, "contents"), "size")),
	        100000);
	json_decref(lu);
	pvm_logical_unit_list_free(il);
	free(data);
	sim_close(&e, false);
}

/* ---- events ---- */

struct evs {
	pthread_mutex_t lock;
	int custom, add, resync;
	char detail[512];
};

static void on_event(void *arg, const struct pvm_event *ev)
{
	struct evs *e = arg;
	pthread_mutex_lock(&e->lock);
	if (ev->kind == PVM_EVENT_CUSTOM) {
		e->custom++;
		snprintf(e->detail, sizeof(e->detail), "%s", ev->detail);
	}
	if (ev->kind == PVM_EVENT_ADD && strstr(ev->data, "/ClientNetworkAdapter/"))
		e->add++;
	if (ev->kind == PVM_EVENT_RESYNC)
		e->resync++;
	pthread_mutex_unlock(&e->lock);
}

static bool got_resync(void *arg)
{
	struct evs *e = arg;
	pthread_mutex_lock(&e->lock);
	bool b = e->resync > 0;
	pthread_mutex_unlock(&e->lock);
	return b;
}

static bool got_custom(void *arg)
{
	struct evs *e = arg;
	pthread_mutex_lock(&e->lock);
	bool b = e->custom > 0 && e->add > 0;
	pthread_mutex_unlock(&e->lock);
	return b;
}

static void test_storage_events(void **state)
{
	(void)state;
	struct env e = {0};
	sim_open(&e, false);
	discover(&e);
	struct evs ev = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct pvm_event_listener_opts lo = {.app_id = "storagetest",
	                                     .fn = on_event,
	                                     .arg = &ev,
	                                     .backoff_min_ms = 20,
	                                     .backoff_max_ms = 200};
	struct pvm_event_listener *l = NULL;
	assert_int_equal(pvm_event_listener_start(e.c, &lo, &l), 0);
	assert_true(pvm_test_wait(got_resync, &ev, 10000));
	create_lpar(&e, LPAR1, "inst-ev");
	struct pvm_rest_error err;
	char path[256];
	snprintf(path, sizeof(path), "uom/ManagedSystem/%s/VirtualSwitch", e.ms);
	struct pvm_resp r = get_ok(&e, path, NULL);
	struct pvm_vswitch_list *sw = NULL;
	assert_int_equal(pvm_parse_vswitch(r.body, r.len, NULL, &sw, &err), 0);
	pvm_resp_fini(&r);
	struct pvm_cna_spec s = {.pvid = 7, .vswitch_href = sw->items[0].meta.href};
	char *body = pvm_build_cna(&s, &err);
	snprintf(path, sizeof(path), "uom/LogicalPartition/%s/ClientNetworkAdapter", LPAR1);
	struct pvm_resp cr;
	assert_int_equal(request(&e, PVM_PUT, path, NULL, CT_UOM("ClientNetworkAdapter"), body, 0,
	                         NULL, &cr, &err),
	                 0);
	pvm_resp_fini(&cr);
	free(body);
	pvm_vswitch_list_free(sw);
	/* the plug event the network agent listens for */
	char ev_body[1024];
	snprintf(ev_body, sizeof(ev_body),
	         "<Event:Event xmlns:Event=\"%s\" xmlns=\"%s\" schemaVersion=\"V1_0\"><Metadata>"
	         "<Atom/></Metadata><EventType>CUSTOM_CLIENT_EVENT</EventType><EventData>"
	         "%s/rest/api/uom/LogicalPartition/%s</EventData><EventDetail>{\"provider\": "
	         "\"NOVA_PVM_VIF\", \"action\": \"plug\", \"mac\": \"FAD4433ED120\", \"type\": "
	         "\"pvm_sea\"}</EventDetail></Event:Event>",
	         SIM_NS_UOM, SIM_NS_UOM, e.endpoint, LPAR1);
	assert_int_equal(request(&e, PVM_PUT, "uom/Event", NULL, CT_UOM("Event"), ev_body, 0, NULL,
	                         &cr, &err),
	                 0);
	assert_int_equal(cr.status, 200);
	pvm_resp_fini(&cr);
	assert_true(pvm_test_wait(got_custom, &ev, 10000));
	pthread_mutex_lock(&ev.lock);
	assert_non_null(strstr(ev.detail, "\"action\": \"plug\""));
	pthread_mutex_unlock(&ev.lock);
	pvm_event_listener_stop(l);
	assert_true(audit_has(&e, "event CUSTOM_CLIENT_EVENT"));
	assert_true(audit_has(&e, "\\\"action\\\": \\\"plug\\\""));
	sim_close(&e, false);
}

/* ---- pcm ---- */

static json_t *ltm_sample(struct env *e, char *name_out, size_t n)
{
	char path[256];
	snprintf(path, sizeof(path), "pcm/ManagedSystem/%s/RawMetrics/LongTermMonitor", e->ms);
	struct pvm_resp r = get_ok(e, path, NULL);
	assert_int_equal(r.status, 200);
	const char *h =
	        strstr(r.body, "<link type=\"application/vnd.ibm.powervm.pcm.json\" href=\"");
	assert_non_null(h);
	h = strstr(h, "href=\"") + 6;
	const char *q = strchr(h, '"');
	char href[512];
	snprintf(href, sizeof(href), "%.*s", (int)(q - h), h);
	const char *base = strrchr(href, '/');
	snprintf(name_out, n, "%s", base + 1);
	pvm_resp_fini(&r);
	struct pvm_req rq = {.method = PVM_GET, .path = href, .accept = "application/json"};
	struct pvm_rest_error err;
	int rc = pvm_client_request(e->c, &rq, &r, &err);
	if (rc)
		fprintf(stderr, "sample %s: %s\n", href, err.message);
	assert_int_equal(rc, 0);
	json_t *j = json_loads(r.body, 0, NULL);
	assert_non_null(j);
	pvm_resp_fini(&r);
	return j;
}

struct newer {
	struct env *e;
	char last[200];
	json_t *doc;
};

static bool new_sample(void *arg)
{
	struct newer *nw = arg;
	char name[200];
	json_t *j = ltm_sample(nw->e, name, sizeof(name));
	if (strcmp(name, nw->last) == 0) {
		json_decref(j);
		return false;
	}
	nw->doc = j;
	snprintf(nw->last, sizeof(nw->last), "%s", name);
	return true;
}

static double num(json_t *o, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	char *save = NULL;
	for (char *t = strtok_r(buf, "/", &save); t && o; t = strtok_r(NULL, "/", &save))
		o = json_object_get(o, t);
	assert_true(json_is_number(o));
	return json_number_value(o);
}

/* Every key of the captured object cap is in ours (nested objects not descended). */
static void assert_keys(json_t *cap, json_t *ours)
{
	assert_true(json_is_object(cap));
	assert_true(json_is_object(ours));
	const char *k;
	json_t *v;
	json_object_foreach(cap, k, v)
	{
		if (!json_object_get(ours, k))
			fprintf(stderr, "pcm sample: no key %s\n", k);
		assert_non_null(json_object_get(ours, k));
		assert_int_equal(json_typeof(v) == JSON_INTEGER || json_typeof(v) == JSON_REAL,
		                 json_is_number(json_object_get(ours, k)));
	}
}

static void assert_keys_of(json_t *cap, json_t *ours, ...)
{
	va_list ap;
	va_start(ap, ours);
	for (const char *k; (k = va_arg(ap, const char *));) {
		assert_non_null(json_object_get(cap, k));
		assert_non_null(json_object_get(ours, k));
	}
	va_end(ap);
}

static json_t *part_in(json_t *sample, const char *list, const char *uuid)
{
	json_t *a;
	size_t i;
	json_array_foreach(
	        json_object_get(
	                json_object_get(json_object_get(sample, "systemUtil"), "utilSample"), list),
	        i, a) if (strcasecmp(json_string_value(json_object_get(a, "uuid")), uuid) ==
	                  0) return a;
	return NULL;
}

static bool running(void *arg)
{
	struct env *e = arg;
	char path[200];
	snprintf(path, sizeof(path), "uom/LogicalPartition/%s/quick/PartitionState", LPAR1);
	struct pvm_resp r = get_ok(e, path, NULL);
	bool b = strstr(r.body, "\"running\"") != NULL;
	pvm_resp_fini(&r);
	return b;
}

static void test_storage_pcm(void **state)
{
	(void)state;
	struct env e = {0};
	sim_open(&e, false);
	discover(&e);
	create_lpar(&e, LPAR1, "inst-pcm-on");
	create_lpar(&e, LPAR2, "inst-pcm-off");
	struct pvm_rest_error err;
	char jid[64];
	char root[200];
	snprintf(root, sizeof(root), "uom/LogicalPartition/%s", LPAR1);
	assert_int_equal(
	        pvm_job_submit(e.c, root, "PowerOn", NULL, 0, NULL, jid, sizeof(jid), &err), 0);
	assert_true(pvm_test_wait(running, &e, 10000));

	char path[256];
	snprintf(path, sizeof(path), "pcm/ManagedSystem/%s/preferences", e.ms);
	struct pvm_resp r = get_ok(&e, path, NULL);
	assert_non_null(strstr(r.body, "<LongTermMonitorEnabled kb=\"UOD\" kxe=\"false\">false<"));
	char old_etag[80];
	snprintf(old_etag, sizeof(old_etag), "%s", r.etag);
	assert_true(old_etag[0] != '\0');
	/* off: no samples */
	char ltm[256];
	snprintf(ltm, sizeof(ltm), "pcm/ManagedSystem/%s/RawMetrics/LongTermMonitor", e.ms);
	struct pvm_resp lr = get_ok(&e, ltm, NULL);
	assert_int_equal(lr.status, 204);
	pvm_resp_fini(&lr);
	/* enable long-term monitoring by POSTing the preferences back */
	const char *k = "<LongTermMonitorEnabled kb=\"UOD\" kxe=\"false\">false<";
	char *p = strstr(r.body, k);
	char *body = NULL;
	assert_true(asprintf(&body, "%.*s<LongTermMonitorEnabled kb=\"UOD\" kxe=\"false\">true<%s",
	                     (int)(p - r.body), r.body, p + strlen(k)) > 0);
	struct pvm_resp pr;
	assert_int_equal(request(&e, PVM_POST, path, NULL,
	                         "application/vnd.ibm.powervm.pcm+xml; "
	                         "type=ManagedSystemPcmPreference",
	                         body, 0, old_etag, &pr, &err),
	                 0);
	assert_non_null(strstr(pr.body, ">true</LongTermMonitorEnabled>"));
	pvm_resp_fini(&pr);
	/* the old ETag is stale now */
	request(&e, PVM_POST, path, NULL, "application/xml", body, 0, old_etag, &pr, &err);
	assert_int_equal(pr.status, 412);
	pvm_resp_fini(&pr);
	free(body);
	pvm_resp_fini(&r);

	struct newer nw = {.e = &e};
	assert_true(pvm_test_wait(new_sample, &nw, 10000));
	json_t *s1 = nw.doc;
	nw.doc = NULL;
	assert_true(pvm_test_wait(new_sample, &nw, 10000)); /* names have a 1 s resolution */
	json_t *s2 = nw.doc;
	json_t *u1 = json_object_get(json_object_get(s1, "systemUtil"), "utilSample");
	json_t *u2 = json_object_get(json_object_get(s2, "systemUtil"), "utilSample");
	double conf = num(u2, "processor/configurableProcUnits");
	assert_true(conf > 39.9);
	double dt = num(u2, "timeBasedCycles") - num(u1, "timeBasedCycles");
	double total = dt * conf;
	double fw = num(u2, "systemFirmware/utilizedProcCycles") -
	            num(u1, "systemFirmware/utilizedProcCycles");
	assert_true(dt > 0);
	assert_true(fw > 0);
	/* the running partition and the VIOS used cycles; the stopped one none */
	json_t *a1 = part_in(s1, "lparsUtil", LPAR1), *a2 = part_in(s2, "lparsUtil", LPAR1);
	json_t *b1 = part_in(s1, "lparsUtil", LPAR2), *b2 = part_in(s2, "lparsUtil", LPAR2);
	json_t *v1 = part_in(s1, "viosUtil", e.vios), *v2 = part_in(s2, "viosUtil", e.vios);
	assert_non_null(a1);
	assert_non_null(a2);
	assert_non_null(b2);
	assert_non_null(v2);
	double ua = num(a2, "processor/utilizedCappedProcCycles") -
	            num(a1, "processor/utilizedCappedProcCycles");
	double ub = num(b2, "processor/utilizedCappedProcCycles") -
	            num(b1, "processor/utilizedCappedProcCycles");
	double uv = num(v2, "processor/utilizedCappedProcCycles") -
	            num(v1, "processor/utilizedCappedProcCycles");
	double ea =
	        num(a2, "processor/entitledProcCycles") - num(a1, "processor/entitledProcCycles");
	assert_true(ua > 0);
	assert_true(ub == 0);
	assert_true(uv > 0);
	assert_true(ua <= ea);
	/* entitled cycles of the running partition: its 0.2 units over the interval */
	assert_true(ea > dt * 0.2 * 0.99 && ea < dt * 0.2 * 1.01);
	assert_true(ua + uv + fw < total);
	assert_string_equal(json_string_value(json_object_get(a2, "state")), "Running");
	/* the shape of the captured sample: every key it has, ours has */
	char *fx = pvm_test_source_path("tests/fixtures/powervm/phyp_pcm_data.body.json");
	json_t *cap = json_load_file(fx, JSON_DECODE_INT_AS_REAL, NULL); /* 64-bit WWPNs */
	free(fx);
	assert_non_null(cap);
	json_t *cu = json_object_get(json_object_get(cap, "systemUtil"), "utilSample");
	assert_keys(json_object_get(json_object_get(cap, "systemUtil"), "utilInfo"),
	            json_object_get(json_object_get(s2, "systemUtil"), "utilInfo"));
	assert_keys(cu, u2);
	const char *subs[] = {"systemFirmware", "processor", "memory"};
	for (size_t i = 0; i < 3; i++)
		assert_keys(json_object_get(cu, subs[i]), json_object_get(u2, subs[i]));
	assert_keys(json_array_get(json_object_get(cu, "sharedProcessorPool"), 0),
	            json_array_get(json_object_get(u2, "sharedProcessorPool"), 0));
	json_t *cl0 = json_array_get(json_object_get(cu, "lparsUtil"), 0);
	assert_keys_of(cl0, a2, "id", "uuid", "type", "name", "state", "memory", "processor",
	               (const char *)NULL);
	assert_keys(json_object_get(cl0, "processor"), json_object_get(a2, "processor"));
	assert_keys(json_object_get(cl0, "memory"), json_object_get(a2, "memory"));
	json_t *cv0 = json_array_get(json_object_get(cu, "viosUtil"), 0);
	assert_keys(json_object_get(cv0, "processor"), json_object_get(v2, "processor"));
	assert_keys(json_object_get(cv0, "memory"), json_object_get(v2, "memory"));
	json_decref(cap);
	assert_string_equal(json_string_value(json_object_get(b2, "state")), "Not Activated");
	json_decref(s1);
	json_decref(s2);
	sim_close(&e, false);
}

/* ---- restart and faults ---- */

static void test_storage_persist(void **state)
{
	(void)state;
	struct env e = {0};
	sim_open(&e, false);
	discover(&e);
	create_lpar(&e, LPAR1, "inst-persist");
	add_vdisk(&e, "boot_p1", 3);
	struct pvm_rest_error err;
	int rc;
	struct pvm_lu_spec img = {
	        .name = "image_p", .capacity_gb = 2, .lu_type = "VirtualIO_Image"};
	struct pvm_logical_unit_list *il = create_lu(&e, &img, &rc, &err);
	assert_int_equal(rc, 0);
	char href[300];
	lpar_href(&e, LPAR1, href, sizeof(href));
	struct map_change ch = {.add = {.lpar_href = href,
	                                .server_lpar_id = e.vios_id,
	                                .kind = PVM_STORAGE_VDISK,
	                                .storage_name = "boot_p1"}};
	assert_int_equal(vios_update(&e, &ch, &err), 0);
	char path[256];
	snprintf(path, sizeof(path), "uom/ManagedSystem/%s/VirtualSwitch", e.ms);
	struct pvm_resp r = get_ok(&e, path, NULL);
	struct pvm_vswitch_list *sw = NULL;
	assert_int_equal(pvm_parse_vswitch(r.body, r.len, NULL, &sw, &err), 0);
	pvm_resp_fini(&r);
	struct pvm_cna_spec s = {
	        .mac = "0A0B0C0D0E0F", .pvid = 9, .vswitch_href = sw->items[0].meta.href};
	char *body = pvm_build_cna(&s, &err);
	snprintf(path, sizeof(path), "uom/LogicalPartition/%s/ClientNetworkAdapter", LPAR1);
	struct pvm_resp cr;
	assert_int_equal(request(&e, PVM_PUT, path, NULL, CT_UOM("ClientNetworkAdapter"), body, 0,
	                         NULL, &cr, &err),
	                 0);
	pvm_resp_fini(&cr);
	free(body);
	pvm_vswitch_list_free(sw);
	struct pvm_file_spec fs = {.name = "f1",
	                           .enum_type = "BROKERED_DISK_IMAGE",
	                           .size = 10,
	                           .vios_uuid = e.vios,
	                           .target_udid = il->items[0].udid};
	char fu[40];
	assert_int_equal(create_file(&e, &fs, fu, &err), 0);
	char lu_uuid[40];
	snprintf(lu_uuid, sizeof(lu_uuid), "%s", il->items[0].meta.uuid);
	pvm_logical_unit_list_free(il);

	sim_close(&e, true); /* restart on the same state */
	sim_open(&e, true);
	struct pvm_volume_group_list *l = read_vg(&e);
	const struct pvm_vdisk *d = vdisk_named(&l->items[0], "boot_p1");
	assert_non_null(d);
	assert_true(l->items[0].free_gb > 996.99 && l->items[0].free_gb < 997.01);
	pvm_volume_group_list_free(l);
	struct pvm_vios_list *vl = read_vios(&e);
	assert_int_equal(vl->items[0].n_scsi_mappings, 1);
	assert_string_equal(vl->items[0].scsi_mappings[0].storage_name, "boot_p1");
	pvm_vios_list_free(vl);
	r = get_ok(&e, path, NULL);
	struct pvm_cna_list *cl = NULL;
	assert_int_equal(pvm_parse_cna(r.body, r.len, NULL, &cl, &err), 0);
	assert_int_equal(cl->count, 1);
	assert_string_equal(cl->items[0].mac, "0A0B0C0D0E0F");
	pvm_cna_list_free(cl);
	pvm_resp_fini(&r);
	snprintf(path, sizeof(path), "uom/Tier/%s/LogicalUnit/%s", e.tier, lu_uuid);
	r = get_ok(&e, path, NULL);
	struct pvm_logical_unit_list *lu = NULL;
	assert_int_equal(pvm_parse_logical_unit(r.body, r.len, NULL, &lu, &err), 0);
	assert_string_equal(lu->items[0].name, "image_p");
	pvm_logical_unit_list_free(lu);
	pvm_resp_fini(&r);
	snprintf(path, sizeof(path), "web/File/%s", fu);
	r = get_ok(&e, path, NULL);
	pvm_resp_fini(&r);
	sim_close(&e, false);
}

static void test_storage_faults(void **state)
{
	(void)state;
	struct env e = {0};
	sim_open(&e, false);
	discover(&e);
	char *out = NULL;
	long st = simctl(
	        &e, "PUT", "/sim/faults",
	        "{\"rules\": [{\"method\": \"GET\", \"path\": "
	        "\"/rest/api/uom/VirtualIOServer/*/VolumeGroup*\", \"kind\": \"vios_busy\", "
	        "\"first\": 1}, {\"method\": \"DELETE\", \"path\": "
	        "\"/rest/api/uom/Tier/*/LogicalUnit/*\", \"kind\": \"412\", \"first\": 2}, "
	        "{\"method\": \"PUT\", \"path\": \"/rest/api/web/File\", \"kind\": \"http_503\", "
	        "\"first\": 1}, {\"method\": \"GET\", \"path\": \"/rest/api/pcm/*\", \"kind\": "
	        "\"http_500\", \"first\": 1}]}",
	        &out);
	assert_int_equal(st, 200);
	free(out);
	struct pvm_rest_error err;
	char path[200];
	snprintf(path, sizeof(path), "uom/VirtualIOServer/%s/VolumeGroup", e.vios);
	struct pvm_resp r;
	assert_int_equal(pvm_client_get(e.c, path, NULL, NULL, &r, &err), -EBUSY);
	pvm_resp_fini(&r);
	r = get_ok(&e, path, NULL);
	pvm_resp_fini(&r);
	/* a 412 storm on LU deletes: the client re-reads and retries */
	int rc;
	struct pvm_lu_spec s = {.name = "faulty", .capacity_gb = 1};
	struct pvm_logical_unit_list *l = create_lu(&e, &s, &rc, &err);
	assert_int_equal(rc, 0);
	snprintf(path, sizeof(path), "uom/Tier/%s/LogicalUnit/%s", e.tier, l->items[0].meta.uuid);
	struct pvm_client_stats before, after;
	pvm_client_stats(e.c, &before);
	assert_int_equal(pvm_client_delete(e.c, path, l->items[0].meta.etag, NULL, &err), 0);
	pvm_client_stats(e.c, &after);
	assert_true(after.retries_412 >= before.retries_412 + 2);
	pvm_logical_unit_list_free(l);
	/* web File and pcm are faulted too */
	struct pvm_file_spec fs = {
	        .name = "x", .enum_type = "BROKERED_MEDIA_ISO", .size = 1, .vios_uuid = e.vios};
	char *body = pvm_build_file(&fs, &err);
	rc = request(&e, PVM_PUT, "web/File", NULL, CT_WEB("File"), body, 0, NULL, &r, &err);
	assert_int_equal(r.status, 503);
	assert_int_equal(rc, -EAGAIN);
	pvm_resp_fini(&r);
	free(body);
	snprintf(path, sizeof(path), "pcm/ManagedSystem/%s/preferences", e.ms);
	rc = pvm_client_get(e.c, path, NULL, NULL, &r, &err);
	assert_int_equal(r.status, 500);
	pvm_resp_fini(&r);
	assert_true(audit_has(&e, "fault 412"));
	assert_true(audit_has(&e, "fault http_503"));
	sim_close(&e, false);
}

/* ---- structure: what pvmsim serves against the captures ---- */

static xmlNode *find_el(xmlNode *n, const char *name)
{
	for (; n; n = n->next) {
		if (n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name))
			return n;
		xmlNode *c = find_el(n->children, name);
		if (c)
			return c;
	}
	return NULL;
}

/* Child element names of n, consecutive repeats folded, in order. */
static size_t child_names(xmlNode *n, const char **out, size_t max)
{
	size_t k = 0;
	for (xmlNode *c = n ? n->children : NULL; c && k < max; c = c->next)
		if (c->type == XML_ELEMENT_NODE &&
		    (!k || strcmp(out[k - 1], (const char *)c->name) != 0))
			out[k++] = (const char *)c->name;
	return k;
}

static bool in_list(const char *s, const char **l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(s, l[i]))
			return true;
	return false;
}

/* The first element el of ours and of the capture: same namespace, the children both have
 * in the same relative order, at least min_common of them, and the required ones present. */
static void same_shape(const char *ours, size_t len, const char *fixture, const char *el,
                       size_t min_common, const char *const *required)
{
	char rel[200];
	snprintf(rel, sizeof(rel), "tests/fixtures/powervm/%s", fixture);
	char *path = pvm_test_source_path(rel);
	xmlDoc *cd = xmlReadFile(path, NULL, XML_PARSE_NONET | XML_PARSE_NOBLANKS);
	free(path);
	xmlDoc *od = xmlReadMemory(ours, (int)len, "ours.xml", NULL,
	                           XML_PARSE_NONET | XML_PARSE_NOBLANKS);
	assert_non_null(cd);
	assert_non_null(od);
	xmlNode *c = find_el(xmlDocGetRootElement(cd), el);
	xmlNode *o = find_el(xmlDocGetRootElement(od), el);
	assert_non_null(c);
	if (!o)
		fprintf(stderr, "%s: no %s in what pvmsim served\n", fixture, el);
	assert_non_null(o);
	assert_true(c->ns && o->ns);
	assert_string_equal((const char *)c->ns->href, (const char *)o->ns->href);
	const char *a[256], *b[256];
	size_t na = child_names(o, a, 256), nb = child_names(c, b, 256);
	const char *ca[256], *cb[256];
	size_t ka = 0, kb = 0;
	for (size_t i = 0; i < na; i++)
		if (in_list(a[i], b, nb))
			ca[ka++] = a[i];
	for (size_t i = 0; i < nb; i++)
		if (in_list(b[i], a, na))
			cb[kb++] = b[i];
	if (ka != kb || ka < min_common)
		fprintf(stderr, "%s %s: %zu / %zu common children\n", fixture, el, ka, kb);
	assert_int_equal(ka, kb);
	assert_true(ka >= min_common);
	for (size_t i = 0; i < ka; i++) {
		if (strcmp(ca[i], cb[i]) != 0)
			fprintf(stderr, "%s %s: child %zu is %s here, %s in the capture\n", fixture,
			        el, i, ca[i], cb[i]);
		assert_string_equal(ca[i], cb[i]);
	}
	for (size_t i = 0; required && required[i]; i++) {
		if (!in_list(required[i], a, na))
			fprintf(stderr, "%s %s: no %s\n", fixture, el, required[i]);
		assert_true(in_list(required[i], a, na));
	}
	xmlFreeDoc(cd);
	xmlFreeDoc(od);
}

static void test_storage_structure(void **state)
{
	(void)state;
	struct env e = {0};
	sim_open(&e, false);
	discover(&e);
	create_lpar(&e, LPAR1, "inst-shape");
	add_vdisk(&e, "boot_shape", 1);
	struct pvm_rest_error err;
	int rc;
	struct pvm_lu_spec img = {
	        .name = "image_s", .capacity_gb = 1, .lu_type = "VirtualIO_Image"};
	struct pvm_logical_unit_list *il = create_lu(&e, &img, &rc, &err);
	assert_int_equal(rc, 0);
	struct pvm_lu_spec cl = {
	        .name = "boot_s", .capacity_gb = 1, .thin = true, .cloned_from = il->items[0].udid};
	struct pvm_logical_unit_list *cll = create_lu(&e, &cl, &rc, &err);
	assert_int_equal(rc, 0);
	char href[300];
	lpar_href(&e, LPAR1, href, sizeof(href));
	struct map_change ch = {.add = {.lpar_href = href,
	                                .server_lpar_id = e.vios_id,
	                                .kind = PVM_STORAGE_PV,
	                                .storage_name = "hdisk1"}};
	assert_int_equal(vios_update(&e, &ch, &err), 0);
	char path[300];
	snprintf(path, sizeof(path), "uom/ManagedSystem/%s/VirtualSwitch", e.ms);
	struct pvm_resp r = get_ok(&e, path, NULL);
	struct pvm_vswitch_list *sw = NULL;
	assert_int_equal(pvm_parse_vswitch(r.body, r.len, NULL, &sw, &err), 0);
	pvm_resp_fini(&r);
	struct pvm_cna_spec cs = {
	        .pvid = 100, .vswitch_href = sw->items[0].meta.href, .tagged_vlans = "53 54"};
	char *body = pvm_build_cna(&cs, &err);
	snprintf(path, sizeof(path), "uom/LogicalPartition/%s/ClientNetworkAdapter", LPAR1);
	struct pvm_resp cr;
	assert_int_equal(request(&e, PVM_PUT, path, NULL, CT_UOM("ClientNetworkAdapter"), body, 0,
	                         NULL, &cr, &err),
	                 0);
	free(body);
	pvm_vswitch_list_free(sw);

	static const char *const vg_req[] = {"GroupName",    "FreeSpace",         "GroupCapacity",
	                                     "VirtualDisks", "MediaRepositories", NULL};
	snprintf(path, sizeof(path), "uom/VirtualIOServer/%s/VolumeGroup/%s", e.vios, e.vg);
	r = get_ok(&e, path, NULL);
	same_shape(r.body, r.len, "fake_volume_group.xml", "VolumeGroup", 10, vg_req);
	same_shape(r.body, r.len, "fake_volume_group.xml", "VirtualDisk", 4, NULL);
	same_shape(r.body, r.len, "get_volume_group.xml", "VirtualMediaRepository", 3, NULL);
	pvm_resp_fini(&r);
	static const char *const ssp_req[] = {"StoragePoolName", "Capacity", "FreeSpace",
	                                      "LogicalUnits", NULL};
	snprintf(path, sizeof(path), "uom/SharedStoragePool/%s", e.ssp);
	r = get_ok(&e, path, NULL);
	same_shape(r.body, r.len, "ssp.xml", "SharedStoragePool", 9, ssp_req);
	pvm_resp_fini(&r);
	snprintf(path, sizeof(path), "uom/Tier/%s", e.tier);
	r = get_ok(&e, path, NULL);
	same_shape(r.body, r.len, "tier.xml", "Tier", 6, NULL);
	pvm_resp_fini(&r);
	static const char *const lu_req[] = {"UnitName", "UniqueDeviceID", "ClonedFrom", NULL};
	snprintf(path, sizeof(path), "uom/Tier/%s/LogicalUnit/%s", e.tier, cll->items[0].meta.uuid);
	r = get_ok(&e, path, NULL);
	same_shape(r.body, r.len, "lufeed.xml", "LogicalUnit", 7, lu_req);
	pvm_resp_fini(&r);
	static const char *const cna_req[] = {"MACAddress", "PortVLANID", "VirtualSlotNumber",
	                                      "AssociatedVirtualSwitch", NULL};
	same_shape(cr.body, cr.len, "fake_cna.xml", "ClientNetworkAdapter", 15, cna_req);
	pvm_resp_fini(&cr);
	snprintf(path, sizeof(path), "uom/VirtualIOServer/%s", e.vios);
	r = get_ok(&e, path, "group=ViosSCSIMapping");
	same_shape(r.body, r.len, "vscsibus_feed.xml", "ClientAdapter", 6, NULL);
	same_shape(r.body, r.len, "vscsibus_feed.xml", "ServerAdapter", 9, NULL);
	same_shape(r.body, r.len, "vscsibus_feed.xml", "PhysicalVolumeVirtualTargetDevice", 3,
	           NULL);
	pvm_resp_fini(&r);
	struct pvm_file_spec fs = {.name = "boot_s",
	                           .enum_type = "BROKERED_DISK_IMAGE",
	                           .size = 10,
	                           .vios_uuid = e.vios,
	                           .target_udid = cll->items[0].udid};
	char fu[40];
	assert_int_equal(create_file(&e, &fs, fu, &err), 0);
	snprintf(path, sizeof(path), "web/File/%s", fu);
	r = get_ok(&e, path, NULL);
	same_shape(r.body, r.len, "upload_file.xml", "File", 9, NULL);
	pvm_resp_fini(&r);
	snprintf(path, sizeof(path), "pcm/ManagedSystem/%s/preferences", e.ms);
	r = get_ok(&e, path, NULL);
	same_shape(r.body, r.len, "pcm_pref.xml", "ManagedSystemPcmPreference", 8, NULL);
	same_shape(r.body, r.len, "pcm_pref.xml", "entry", 6, NULL);
	pvm_resp_fini(&r);
	pvm_logical_unit_list_free(cll);
	pvm_logical_unit_list_free(il);
	sim_close(&e, false);
}

static int setup(void **state)
{
	(void)state;
	pvm_log_setup("test_sim_storage", PVM_LOG_STDERR, PVM_LOG_WARNING);
	assert_int_equal(pvm_client_global_init(), 0);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_storage_volume_group),
	        cmocka_unit_test(test_storage_ssp_lu),
	        cmocka_unit_test(test_storage_mappings),
	        cmocka_unit_test(test_storage_cna),
	        cmocka_unit_test(test_storage_file_upload),
	        cmocka_unit_test(test_storage_events),
	        cmocka_unit_test(test_storage_pcm),
	        cmocka_unit_test(test_storage_persist),
	        cmocka_unit_test(test_storage_faults),
	        cmocka_unit_test(test_storage_structure),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
