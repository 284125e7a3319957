/* vif.c: nova's VIFs as PowerVM client network adapters (vif.h).
 *
 * DESIGN
 * The MAC is an adapter's identity: a VIF's adapter is the partition's adapter with the
 * VIF's MAC, whoever created it, so every step starts by reading the partition's adapter
 * feed and creates only what is missing. A create is a non-idempotent PUT: it goes through
 * the engine's intent-before-effect guard (pvm_step_send_guard) under the key
 * "cna_<MAC>", so a create whose answer was lost is found again by its MAC (and counted as
 * ours), and a create that may still be in flight is waited for before the step decides
 * the adapter is absent (or, undoing, before it deletes what is there). The RMC management
 * adapter has no MAC of ours (the server picks it): it is the partition's adapter on
 * switch MGMTSWITCH, and its create uses the key "mgmt_cna".
 *
 * Plug and unplug events are PUTs of uom/Event with the adapter's URI and nova-powervm's
 * JSON detail. They change no object, so sending one again after a crash is harmless: a
 * step sends the plug event after the adapter exists and records it, and sends the unplug
 * event before it deletes the adapter (a crash between the two sends it again, then
 * deletes). Per-VIF progress is committed after each VIF (pvm_step_intent), so a restart
 * goes on with the next VIF instead of reading everything again.
 */
#include "vif.h"

#include "op_power.h"

#include "pvm/buf.h"
#include "pvm/client.h"
#include "pvm/config.h"
#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/pvm_objects.h"
#include "pvm/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const pvm_vif_types[] = {"pvm_sea", NULL};

#define NS_UOM         "http://www.ibm.com/xmlns/systems/power/firmware/uom/mc/2012_10/"
#define CT_CNA         "application/vnd.ibm.powervm.uom+xml; type=ClientNetworkAdapter"
#define CT_EVENT       "application/vnd.ibm.powervm.uom+xml; type=Event"
#define EVENT_PROVIDER "NOVA_PVM_VIF"
#define DEFAULT_TYPE   "pvm_sea"

/* ---- MAC addresses ---- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)toupper((unsigned char)c);
	return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int pvm_vif_mac_normalize(const char *in, char out[13])
{
	out[0] = '\0';
	if (!in)
		return PVM_EINVAL;
	size_t len = strlen(in), k = 0;
	char sep = len == 17 ? in[2] : 0;
	if (len == 17 && sep != ':' && sep != '-')
		return PVM_EINVAL;
	if (len != 17 && len != 12)
		return PVM_EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (sep && i % 3 == 2) {
			if (in[i] != sep)
				goto bad;
			continue;
		}
		if (hexval(in[i]) < 0)
			goto bad;
		out[k++] = (char)toupper((unsigned char)in[i]);
	}
	out[k] = '\0';
	return 0;
bad:
	out[0] = '\0';
	return PVM_EINVAL;
}

/* ---- validation ---- */

/* A VLAN as nova passes it (an integer, or a decimal string): the id, 0 when v is not a
 * VLAN id from 1 to 4094, -1 when v is absent or null. */
static int64_t vlan_value(const json_t *v)
{
	if (!v || json_is_null(v))
		return -1;
	int64_t id = 0;
	if (json_is_integer(v)) {
		id = (int64_t)json_integer_value(v);
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = strlen(s);
		if (n == 0 || n > 4 || strspn(s, "0123456789") != n)
			return 0;
		id = strtoll(s, NULL, 10);
	} else {
		return 0;
	}
	return id >= 1 && id <= 4094 ? id : 0;
}

static const json_t *vif_meta_vlan(const json_t *vif)
{
	return json_object_get(json_object_get(json_object_get(vif, "network"), "meta"), "vlan");
}

static int64_t vif_vlan(const json_t *vif)
{
	int64_t v = vlan_value(json_object_get(json_object_get(vif, "details"), "vlan"));
	return v < 0 ? vlan_value(vif_meta_vlan(vif)) : v;
}

static bool type_supported(const char *t)
{
	for (const char *const *p = pvm_vif_types; t && *p; p++)
		if (strcmp(t, *p) == 0)
			return true;
	return false;
}

static int refuse(char *field, size_t fn, char *msg, size_t mn, const char *prefix, const char *sub,
                  const char *why)
{
	snprintf(field, fn, "%s%s", prefix, sub);
	snprintf(msg, mn, "%s", why);
	return PVM_EINVAL;
}

int pvm_vif_validate_one(const json_t *vif, const char *prefix, char *field, size_t fn, char *msg,
                         size_t mn)
{
	if (!json_is_object(vif))
		return refuse(field, fn, msg, mn, prefix, "",
		              "required: an object (a VIF of nova's network_info)");
	char mac[13];
	const char *addr = json_string_value(json_object_get(vif, "address"));
	if (!addr || pvm_vif_mac_normalize(addr, mac) != 0)
		return refuse(field, fn, msg, mn, prefix, ".address",
		              "required: the VIF's MAC address (aa:bb:cc:dd:ee:ff)");
	if (hexval(mac[1]) & 1)
		return refuse(field, fn, msg, mn, prefix, ".address",
		              "must be a unicast MAC address (the first octet even)");
	if (strcmp(mac, "000000000000") == 0)
		return refuse(field, fn, msg, mn, prefix, ".address",
		              "must not be 00:00:00:00:00:00");
	json_t *t = json_object_get(vif, "type");
	if (!json_is_string(t))
		return refuse(field, fn, msg, mn, prefix, ".type",
		              "required: the vif type (supported: pvm_sea)");
	if (!type_supported(json_string_value(t))) {
		char why[160];
		snprintf(why, sizeof(why), "vif type '%.40s' is not supported (supported: pvm_sea)",
		         json_string_value(t));
		return refuse(field, fn, msg, mn, prefix, ".type", why);
	}
	json_t *id = json_object_get(vif, "id");
	if (id && !json_is_null(id) && !json_is_string(id))
		return refuse(field, fn, msg, mn, prefix, ".id", "must be a string (the port id)");
	json_t *d = json_object_get(vif, "details");
	if (d && !json_is_null(d) && !json_is_object(d))
		return refuse(field, fn, msg, mn, prefix, ".details", "must be an object");
	if (vlan_value(json_object_get(d, "vlan")) == 0)
		return refuse(field, fn, msg, mn, prefix, ".details.vlan",
		              "must be a VLAN id from 1 to 4094");
	json_t *sw = json_object_get(d, "vswitch");
	if (sw && !json_is_null(sw) &&
	    (!json_is_string(sw) || json_string_length(sw) < 1 || json_string_length(sw) > 63))
		return refuse(field, fn, msg, mn, prefix, ".details.vswitch",
		              "must be a virtual switch name of 1 to 63 characters");
	json_t *net = json_object_get(vif, "network");
	if (net && !json_is_null(net) && !json_is_object(net))
		return refuse(field, fn, msg, mn, prefix, ".network", "must be an object");
	json_t *meta = json_object_get(net, "meta");
	if (meta && !json_is_null(meta) && !json_is_object(meta))
		return refuse(field, fn, msg, mn, prefix, ".network.meta", "must be an object");
	if (vlan_value(vif_meta_vlan(vif)) == 0)
		return refuse(field, fn, msg, mn, prefix, ".network.meta.vlan",
		              "must be a VLAN id from 1 to 4094");
	if (vif_vlan(vif) < 0)
		return refuse(field, fn, msg, mn, prefix, ".details.vlan",
		              "required: the VIF's VLAN id, 1 to 4094 (or network.meta.vlan)");
	return 0;
}

int pvm_vif_validate_list(const json_t *list, const char *prefix, char *field, size_t fn, char *msg,
                          size_t mn)
{
	if (!list || json_is_null(list))
		return 0;
	if (!json_is_array(list))
		return refuse(field, fn, msg, mn, prefix, "",
		              "must be an array of VIFs (nova's network_info)");
	if (json_array_size(list) > PVM_VIF_MAX) {
		char why[80];
		snprintf(why, sizeof(why), "at most %d VIFs", PVM_VIF_MAX);
		return refuse(field, fn, msg, mn, prefix, "", why);
	}
	char macs[PVM_VIF_MAX][13];
	for (size_t i = 0; i < json_array_size(list); i++) {
		char p[160];
		snprintf(p, sizeof(p), "%s[%zu]", prefix, i);
		const json_t *v = json_array_get(list, i);
		int rc = pvm_vif_validate_one(v, p, field, fn, msg, mn);
		if (rc)
			return rc;
		pvm_vif_mac_normalize(json_string_value(json_object_get(v, "address")), macs[i]);
		for (size_t j = 0; j < i; j++) {
			if (strcmp(macs[i], macs[j]) == 0) {
				char why[200];
				snprintf(why, sizeof(why), "the same MAC address as %s[%zu]",
				         prefix, j);
				return refuse(field, fn, msg, mn, p, ".address", why);
			}
		}
	}
	return 0;
}

/* ---- one VIF, as the steps use it ---- */

struct vif {
	char mac[13];
	int64_t vlan;
	const char *vswitch; /* details.vswitch, else the configured default */
	bool vswitch_given;  /* from details.vswitch */
	const char *type;
	char field[160]; /* its params path: "params.network_info[1]" */
};

static const char *default_vswitch(const struct pvm_step_ctx *ctx)
{
	const struct pvm_config *c = ctx->config;
	return c && c->default_vswitch && *c->default_vswitch ? c->default_vswitch
	                                                      : PVM_VIF_DEFAULT_VSWITCH;
}

/* Reads vifs[i] (validated at submission; checked again, since a journal is only data). */
static int vif_at(struct pvm_step_ctx *ctx, const json_t *vifs, size_t i, const char *prefix,
                  bool single, struct vif *w, struct pvm_step_result *res)
{
	const json_t *v = json_array_get(vifs, i);
	memset(w, 0, sizeof(*w));
	if (single)
		pvm_strlcpy(w->field, prefix, sizeof(w->field));
	else
		snprintf(w->field, sizeof(w->field), "%s[%zu]", prefix, i);
	char field[200], msg[200];
	if (pvm_vif_validate_one(v, w->field, field, sizeof(field), msg, sizeof(msg)) != 0) {
		pvm_step_fail(res, PVM_EINVAL, "%s: %s", field, msg);
		return PVM_EINVAL;
	}
	pvm_vif_mac_normalize(json_string_value(json_object_get(v, "address")), w->mac);
	w->vlan = vif_vlan(v);
	w->type = json_string_value(json_object_get(v, "type"));
	const char *sw =
	        json_string_value(json_object_get(json_object_get(v, "details"), "vswitch"));
	w->vswitch_given = sw != NULL;
	w->vswitch = sw ? sw : default_vswitch(ctx);
	return 0;
}

/* ---- PowerVM reads ---- */

static const char *req_id(const struct pvm_step_ctx *ctx)
{
	return ctx->op->request_id[0] ? ctx->op->request_id : NULL;
}

static void lpar_uuid(const struct pvm_step_ctx *ctx, char out[37])
{
	pvm_lpar_uuid_from_instance(ctx->op->instance_uuid, out);
}

void pvm_vif_not_found(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	char uuid[37];
	lpar_uuid(ctx, uuid);
	pvm_step_fail(res, PVM_ENOTFOUND, "instance %s not found: no partition %s",
	              ctx->op->instance_uuid, uuid);
	pvm_strlcpy(res->error_code, "instance_not_found", sizeof(res->error_code));
}

/* Reads the partition's adapters into *out (NULL: none). Returns 0, 1 when the partition
 * does not exist, or -1 with res set (RETRY or FAIL). */
static int read_cnas(struct pvm_step_ctx *ctx, struct pvm_step_result *res,
                     struct pvm_cna_list **out)
{
	*out = NULL;
	char uuid[37], path[160];
	lpar_uuid(ctx, uuid);
	snprintf(path, sizeof(path), "uom/LogicalPartition/%s/ClientNetworkAdapter", uuid);
	struct pvm_rest_error err = {0};
	struct pvm_resp resp = {0};
	int rc = pvm_client_get(ctx->client, path, NULL, req_id(ctx), &resp, &err);
	if (rc == 0)
		rc = pvm_parse_cna(resp.body, resp.len, resp.etag, out, &err);
	pvm_resp_fini(&resp);
	if (rc == 0)
		return 0;
	if (rc == PVM_ENOTFOUND) {
		/* The partition is gone, or the server has no adapter feed for it: ask the
		 * partition itself. */
		struct pwr_quick q;
		struct pvm_rest_error e2 = {0};
		int r2 = pwr_read(ctx, &q, &e2);
		if (r2 == PVM_ENOTFOUND)
			return 1;
		if (r2 == 0)
			return 0;
		pwr_rest_failure(res, r2, &e2, "reading the partition");
		return -1;
	}
	pwr_rest_failure(res, rc, &err, "reading the partition's network adapters");
	return -1;
}

static int read_vswitches(struct pvm_step_ctx *ctx, struct pvm_step_result *res,
                          struct pvm_vswitch_list **out)
{
	*out = NULL;
	char path[160];
	snprintf(path, sizeof(path), "uom/ManagedSystem/%s/VirtualSwitch", ctx->ms_uuid);
	struct pvm_rest_error err = {0};
	struct pvm_resp resp = {0};
	int rc = pvm_client_get(ctx->client, path, NULL, req_id(ctx), &resp, &err);
	if (rc == 0)
		rc = pvm_parse_vswitch(resp.body, resp.len, resp.etag, out, &err);
	pvm_resp_fini(&resp);
	if (rc) {
		pwr_rest_failure(res, rc, &err, "reading the virtual switches");
		return -1;
	}
	return 0;
}

static const struct pvm_vswitch *find_vswitch(const struct pvm_vswitch_list *l, const char *name)
{
	for (size_t i = 0; l && i < l->count; i++)
		if (strcmp(l->items[i].name, name) == 0)
			return &l->items[i];
	for (size_t i = 0; l && i < l->count; i++)
		if (strcasecmp(l->items[i].name, name) == 0)
			return &l->items[i];
	return NULL;
}

static const struct pvm_cna *find_cna(const struct pvm_cna_list *l, const char *mac)
{
	for (size_t i = 0; l && i < l->count; i++) {
		char m[13];
		if (pvm_vif_mac_normalize(l->items[i].mac, m) == 0 && strcmp(m, mac) == 0)
			return &l->items[i];
	}
	return NULL;
}

/* The UUID at the end of an href, compared without case. */
static bool href_names(const char *href, const char *uuid)
{
	if (!href || !uuid)
		return false;
	size_t hl = strlen(href), ul = strlen(uuid);
	while (hl > 0 && href[hl - 1] == '/')
		hl--;
	return hl >= ul && strncasecmp(href + hl - ul, uuid, ul) == 0 &&
	       (hl == ul || href[hl - ul - 1] == '/');
}

static bool cna_on_switch(const struct pvm_cna *c, const struct pvm_vswitch *sw)
{
	if (!sw)
		return false;
	if (c->vswitch_href)
		return href_names(c->vswitch_href, sw->meta.uuid);
	return c->vswitch_id >= 0 && c->vswitch_id == sw->id;
}

static const struct pvm_cna *find_on_switch(const struct pvm_cna_list *l,
                                            const struct pvm_vswitch *sw)
{
	for (size_t i = 0; l && i < l->count; i++)
		if (cna_on_switch(&l->items[i], sw))
			return &l->items[i];
	return NULL;
}

static void vswitch_href(const struct pvm_step_ctx *ctx, const struct pvm_vswitch *sw, char *out,
                         size_t n)
{
	if (sw->meta.href && *sw->meta.href)
		pvm_strlcpy(out, sw->meta.href, n);
	else
		snprintf(out, n, "/rest/api/uom/ManagedSystem/%s/VirtualSwitch/%s", ctx->ms_uuid,
		         sw->meta.uuid ? sw->meta.uuid : "");
}

/* The adapter's URI for events (its SELF link, else the path built from the UUIDs). */
static void cna_uri(const struct pvm_step_ctx *ctx, const struct pvm_cna *c, char *out, size_t n)
{
	char uuid[37];
	lpar_uuid(ctx, uuid);
	if (c->meta.href && *c->meta.href)
		pvm_strlcpy(out, c->meta.href, n);
	else
		snprintf(out, n, "/rest/api/uom/LogicalPartition/%s/ClientNetworkAdapter/%s", uuid,
		         c->meta.uuid ? c->meta.uuid : "");
}

/* ---- PowerVM changes ---- */

/* PUT uom/Event: nova-powervm's custom VIF event. */
static int send_event(struct pvm_step_ctx *ctx, const char *action, const char *uri,
                      const char *mac, const char *type, struct pvm_rest_error *err)
{
	json_t *d = json_pack("{s:s, s:s, s:s, s:s}", "provider", EVENT_PROVIDER, "action", action,
	                      "mac", mac, "type", type ? type : DEFAULT_TYPE);
	char *detail = d ? json_dumps(d, 0) : NULL;
	json_decref(d);
	if (!detail)
		return PVM_ENOMEM;
	struct pvm_buf b;
	pvm_buf_init(&b);
	pvm_buf_add(&b, "<Event:Event xmlns:Event=\"" NS_UOM "\" xmlns=\"" NS_UOM
	                "\" schemaVersion=\"V1_0\"><Metadata><Atom/></Metadata><EventData>");
	pvm_buf_xml(&b, uri);
	pvm_buf_add(&b, "</EventData><EventDetail>");
	pvm_buf_xml(&b, detail);
	pvm_buf_add(&b, "</EventDetail></Event:Event>");
	free(detail);
	char *body = pvm_buf_take(&b);
	if (!body)
		return PVM_ENOMEM;
	struct pvm_req rq = {.method = PVM_PUT,
	                     .path = "uom/Event",
	                     .content_type = CT_EVENT,
	                     .body = body,
	                     .body_len = strlen(body),
	                     .request_id = req_id(ctx)};
	struct pvm_resp resp = {0};
	int rc = pvm_client_request(ctx->client, &rq, &resp, err);
	pvm_resp_fini(&resp);
	free(body);
	if (rc == 0)
		pvm_log(PVM_LOG_INFO, &ctx->log, "sent the %s event of adapter %s (%s)", action,
		        mac, uri);
	return rc;
}

enum put_outcome {
	PUT_CREATED = 0, /* *made holds the answer (parsed; NULL when it did not parse) */
	PUT_HELD,        /* not sent: res says wait or retry */
	PUT_FAILED       /* sent and refused or unanswered: rc, status and err say why */
};

/* PUTs a new adapter with intent before effect under ctx->data[key]. */
static enum put_outcome put_cna(struct pvm_step_ctx *ctx, struct pvm_step_result *res,
                                const char *key, const struct pvm_cna_spec *spec,
                                struct pvm_cna_list **made, int *rc_out, int *status,
                                struct pvm_rest_error *err)
{
	*made = NULL;
	*status = 0;
	char *body = pvm_build_cna(spec, err);
	if (!body) {
		*rc_out = err->code ? err->code : PVM_EINVAL;
		return PUT_FAILED;
	}
	if (!pvm_step_send_guard(ctx, key, res)) {
		free(body);
		return PUT_HELD;
	}
	char uuid[37], path[160];
	lpar_uuid(ctx, uuid);
	snprintf(path, sizeof(path), "uom/LogicalPartition/%s/ClientNetworkAdapter", uuid);
	struct pvm_req rq = {.method = PVM_PUT,
	                     .path = path,
	                     .content_type = CT_CNA,
	                     .body = body,
	                     .body_len = strlen(body),
	                     .request_id = req_id(ctx)};
	struct pvm_resp resp = {0};
	int rc = pvm_client_request(ctx->client, &rq, &resp, err);
	free(body);
	*status = resp.status;
	if (resp.status > 0) /* answered: nothing of ours is in flight any more */
		pvm_step_send_answered(ctx, key);
	if (rc == 0) {
		struct pvm_rest_error perr = {0};
		if (pvm_parse_cna(resp.body, resp.len, resp.etag, made, &perr) != 0 ||
		    (*made)->count == 0) {
			pvm_cna_list_free(*made);
			*made = NULL;
		}
	}
	pvm_resp_fini(&resp);
	*rc_out = rc;
	return rc == 0 ? PUT_CREATED : PUT_FAILED;
}

static int delete_cna(struct pvm_step_ctx *ctx, const struct pvm_cna *c, struct pvm_rest_error *err)
{
	char uuid[37], path[200];
	lpar_uuid(ctx, uuid);
	snprintf(path, sizeof(path), "uom/LogicalPartition/%s/ClientNetworkAdapter/%s", uuid,
	         c->meta.uuid ? c->meta.uuid : "");
	return pvm_client_delete(ctx->client, path, NULL, req_id(ctx), err);
}

/* An earlier create under key may still be in flight: true once the in-flight window has
 * passed (the key is cleared), false with res set (WAIT until then, or RETRY). */
static bool inflight_settled(struct pvm_step_ctx *ctx, const char *key, struct pvm_step_result *res)
{
	json_t *ent = json_object_get(ctx->data, key);
	if (!ent)
		return true;
	if (json_is_integer(json_object_get(ent, "sent_at")) && !pvm_step_send_guard(ctx, key, res))
		return false;
	pvm_step_send_answered(ctx, key);
	return true;
}

static json_t *child_object(json_t *parent, const char *key)
{
	json_t *o = json_object_get(parent, key);
	if (!json_is_object(o)) {
		o = json_object();
		json_object_set_new(parent, key, o);
	}
	return o;
}

static void record_cna(json_t *st, const struct pvm_cna *c, const char *vswitch)
{
	if (c->meta.uuid)
		json_object_set_new(st, "uuid", json_string(c->meta.uuid));
	if (c->meta.href)
		json_object_set_new(st, "href", json_string(c->meta.href));
	json_object_set_new(st, "mac", json_string(c->mac));
	json_object_set_new(st, "slot", json_integer(c->slot));
	json_object_set_new(st, "vlan", json_integer(c->pvid));
	if (vswitch)
		json_object_set_new(st, "vswitch", json_string(vswitch));
}

/* Commits the step's data now (the progress of one VIF), keeping the claim. */
static bool commit_progress(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	int rc = pvm_step_intent(ctx, NULL);
	if (rc) {
		pvm_step_retry(res, rc, "recording the progress: %s", pvm_strerror(rc));
		return false;
	}
	return true;
}

/* ---- ensuring adapters ---- */

static bool all_done(const json_t *states, const json_t *vifs)
{
	for (size_t i = 0; i < json_array_size(vifs); i++) {
		char mac[13];
		const char *a =
		        json_string_value(json_object_get(json_array_get(vifs, i), "address"));
		if (pvm_vif_mac_normalize(a, mac) != 0)
			return false;
		if (!json_is_true(json_object_get(json_object_get(states, mac), "done")))
			return false;
	}
	return true;
}

/* Creates the adapter of w (not on the partition when read). Returns true with *made set
 * (the adapter, to free), false with res set. */
static bool create_vif(struct pvm_step_ctx *ctx, struct pvm_step_result *res, const struct vif *w,
                       struct pvm_vswitch_list **sws, struct pvm_cna_list **made)
{
	*made = NULL;
	if (!*sws && read_vswitches(ctx, res, sws) != 0)
		return false;
	const struct pvm_vswitch *sw = find_vswitch(*sws, w->vswitch);
	if (!sw) {
		pvm_step_fail(res, PVM_ENOTFOUND,
		              "virtual switch '%s' (%s) not found on managed system %s", w->vswitch,
		              w->vswitch_given ? "the VIF's details.vswitch"
		                               : "powervm_default_vswitch",
		              ctx->ms_uuid);
		pvm_strlcpy(res->error_code, "vswitch_not_found", sizeof(res->error_code));
		return false;
	}
	char href[512], key[32];
	vswitch_href(ctx, sw, href, sizeof(href));
	snprintf(key, sizeof(key), "cna_%s", w->mac);
	struct pvm_cna_spec spec = {.mac = w->mac, .pvid = w->vlan, .vswitch_href = href};
	struct pvm_rest_error err = {0};
	int rc = 0, status = 0;
	enum put_outcome po = put_cna(ctx, res, key, &spec, made, &rc, &status, &err);
	if (po == PUT_HELD)
		return false;
	if (po == PUT_CREATED) {
		pvm_log(PVM_LOG_INFO, &ctx->log, "created adapter %s (VLAN %lld, switch %s)",
		        w->mac, (long long)w->vlan, sw->name);
		if (*made)
			return true;
		/* created, but the answer did not parse: read it back by its MAC */
		struct pvm_cna_list *l = NULL;
		int r = read_cnas(ctx, res, &l);
		if (r == 0 && find_cna(l, w->mac)) {
			*made = l;
			return true;
		}
		pvm_cna_list_free(l);
		if (r == 0)
			pvm_step_retry(res, PVM_ECORRUPT, "adapter %s: created but not found again",
			               w->mac);
		else if (r == 1)
			pvm_vif_not_found(ctx, res);
		return false;
	}
	if (status == 409) {
		/* The MAC is taken: by our own earlier create (it landed late), or by another
		 * partition's adapter. */
		struct pvm_cna_list *l = NULL;
		int r = read_cnas(ctx, res, &l);
		if (r == 0 && find_cna(l, w->mac)) {
			pvm_log(PVM_LOG_WARNING, &ctx->log,
			        "adapter %s: a duplicate create was refused and the adapter is "
			        "there: settled",
			        w->mac);
			*made = l;
			return true;
		}
		pvm_cna_list_free(l);
		if (r == 1) {
			pvm_vif_not_found(ctx, res);
			return false;
		}
		if (r != 0)
			return false;
	}
	if (status == 404 && read_cnas(ctx, res, made) == 1) {
		pvm_cna_list_free(*made);
		*made = NULL;
		pvm_vif_not_found(ctx, res);
		return false;
	}
	pvm_cna_list_free(*made);
	*made = NULL;
	char what[320];
	snprintf(what, sizeof(what), "creating the adapter of %s (MAC %s)", w->field, w->mac);
	pwr_rest_failure(res, rc, &err, what);
	return false;
}

void pvm_vif_ensure(struct pvm_step_ctx *ctx, struct pvm_step_result *res, const json_t *vifs,
                    const char *prefix, bool single, enum pvm_vif_events events)
{
	json_t *states = child_object(ctx->data, "vifs");
	size_t n = json_array_size(vifs);
	if (n == 0 || all_done(states, vifs)) {
		res->verdict = PVM_STEP_DONE;
		return;
	}
	if (!pwr_need_client(ctx, res))
		return;
	struct pvm_cna_list *cnas = NULL;
	struct pvm_vswitch_list *sws = NULL;
	int r = read_cnas(ctx, res, &cnas);
	if (r == 1)
		pvm_vif_not_found(ctx, res);
	if (r != 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct vif w;
		if (vif_at(ctx, vifs, i, prefix, single, &w, res) != 0)
			goto out;
		json_t *st = child_object(states, w.mac);
		if (json_is_true(json_object_get(st, "done")))
			continue;
		char key[32];
		snprintf(key, sizeof(key), "cna_%s", w.mac);
		struct pvm_cna_list *made = NULL;
		const struct pvm_cna *c = find_cna(cnas, w.mac);
		if (c) {
			if (json_object_get(ctx->data, key)) {
				pvm_log(PVM_LOG_WARNING, &ctx->log,
				        "adapter %s: the create had an intent without a recorded "
				        "outcome; the adapter exists, so it is settled as done and "
				        "not sent again",
				        w.mac);
				json_object_del(ctx->data, key);
				json_object_set_new(st, "created", json_true());
			} else if (!json_object_get(st, "created")) {
				json_object_set_new(st, "created", json_false());
			}
			/* report the switch it is really on */
			if (!sws && read_vswitches(ctx, res, &sws) != 0)
				goto out;
			const struct pvm_vswitch *on = NULL;
			for (size_t k = 0; sws && k < sws->count && !on; k++)
				if (cna_on_switch(c, &sws->items[k]))
					on = &sws->items[k];
			if (c->pvid != w.vlan || !on || strcasecmp(on->name, w.vswitch) != 0)
				pvm_log(PVM_LOG_WARNING, &ctx->log,
				        "adapter %s exists with VLAN %lld on switch %s, not VLAN "
				        "%lld on %s as %s asks: left as it is",
				        w.mac, (long long)c->pvid, on ? on->name : "?",
				        (long long)w.vlan, w.vswitch, w.field);
			record_cna(st, c, on ? on->name : NULL);
		} else {
			if (!create_vif(ctx, res, &w, &sws, &made))
				goto out;
			c = find_cna(made, w.mac);
			if (!c)
				c = &made->items[0];
			json_object_set_new(st, "created", json_true());
			record_cna(st, c, w.vswitch);
		}
		json_object_set_new(st, "type", json_string(w.type));
		bool want_event = events == PVM_VIF_EVENTS_ALL ||
		                  json_is_true(json_object_get(st, "created"));
		if (want_event && !json_is_true(json_object_get(st, "plugged"))) {
			char uri[512];
			cna_uri(ctx, c, uri, sizeof(uri));
			struct pvm_rest_error err = {0};
			int rc = send_event(ctx, "plug", uri, w.mac, w.type, &err);
			pvm_cna_list_free(made);
			if (rc) {
				char what[320];
				snprintf(what, sizeof(what),
				         "sending the plug event of %s (MAC %s)", w.field, w.mac);
				pwr_rest_failure(res, rc, &err, what);
				goto out;
			}
			json_object_set_new(st, "plugged", json_true());
		} else {
			pvm_cna_list_free(made);
			if (!json_object_get(st, "plugged"))
				json_object_set_new(st, "plugged", json_false());
		}
		json_object_set_new(st, "done", json_true());
		if (i + 1 < n && !commit_progress(ctx, res))
			goto out;
	}
	res->verdict = PVM_STEP_DONE;
out:
	pvm_cna_list_free(cnas);
	pvm_vswitch_list_free(sws);
}

/* ---- removing adapters ---- */

void pvm_vif_remove(struct pvm_step_ctx *ctx, struct pvm_step_result *res, const json_t *vifs,
                    bool only_created)
{
	size_t n = json_array_size(vifs);
	json_t *removed = child_object(ctx->data, "removed");
	json_t *states = json_object_get(ctx->data, "vifs");
	if (n == 0) {
		res->verdict = PVM_STEP_DONE;
		return;
	}
	if (!pwr_need_client(ctx, res))
		return;
	/* A create of ours that may still land must land before we look. */
	for (size_t i = 0; i < n; i++) {
		char mac[13], key[32];
		if (pvm_vif_mac_normalize(
		            json_string_value(json_object_get(json_array_get(vifs, i), "address")),
		            mac) != 0)
			continue;
		snprintf(key, sizeof(key), "cna_%s", mac);
		if (json_object_get(ctx->data, key)) {
			json_object_set_new(child_object(child_object(ctx->data, "vifs"), mac),
			                    "created", json_true()); /* possibly ours */
			states = json_object_get(ctx->data, "vifs");
			if (!inflight_settled(ctx, key, res))
				return;
		}
	}
	struct pvm_cna_list *cnas = NULL;
	int r = read_cnas(ctx, res, &cnas);
	if (r < 0)
		return;
	json_object_set_new(ctx->data, "partition_found", json_boolean(r == 0));
	for (size_t i = 0; i < n; i++) {
		const json_t *v = json_array_get(vifs, i);
		char mac[13];
		if (pvm_vif_mac_normalize(json_string_value(json_object_get(v, "address")), mac) !=
		    0)
			continue;
		if (json_object_get(removed, mac))
			continue;
		if (only_created &&
		    !json_is_true(json_object_get(json_object_get(states, mac), "created"))) {
			json_object_set_new(removed, mac, json_string("kept"));
			continue;
		}
		const struct pvm_cna *c = r == 0 ? find_cna(cnas, mac) : NULL;
		if (!c) {
			json_object_set_new(removed, mac, json_string("absent"));
			continue;
		}
		const char *type = json_string_value(json_object_get(v, "type"));
		char uri[512];
		cna_uri(ctx, c, uri, sizeof(uri));
		struct pvm_rest_error err = {0};
		int rc = send_event(ctx, "unplug", uri, mac, type, &err);
		if (rc && pvm_client_transient(rc)) {
			pwr_rest_failure(res, rc, &err, "sending an unplug event");
			goto out;
		}
		if (rc)
			pvm_log(PVM_LOG_WARNING, &ctx->log,
			        "the unplug event of adapter %s was refused (%s); deleting it "
			        "anyway",
			        mac, err.message[0] ? err.message : pvm_strerror(rc));
		memset(&err, 0, sizeof(err));
		rc = delete_cna(ctx, c, &err);
		if (rc) {
			char what[120];
			snprintf(what, sizeof(what), "deleting adapter %s", mac);
			pwr_rest_failure(res, rc, &err, what);
			goto out;
		}
		pvm_log(PVM_LOG_INFO, &ctx->log, "deleted adapter %s", mac);
		json_object_set_new(removed, mac, json_string("removed"));
		if (i + 1 < n && !commit_progress(ctx, res))
			goto out;
	}
	res->verdict = PVM_STEP_DONE;
out:
	pvm_cna_list_free(cnas);
}

/* ---- spawn's vifs step ---- */

static const json_t *network_info(const struct pvm_step_ctx *ctx)
{
	const json_t *l = json_object_get(ctx->op->params, "network_info");
	return json_is_array(l) ? l : NULL;
}

void pvm_vif_spawn_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	pvm_vif_ensure(ctx, res, network_info(ctx), "params.network_info", false,
	               PVM_VIF_EVENTS_ALL);
}

void pvm_vif_spawn_undo(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	pvm_vif_remove(ctx, res, network_info(ctx), false);
}

void pvm_vif_spawn_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	pvm_vif_reconcile(ctx, res, network_info(ctx));
}

void pvm_vif_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res, const json_t *vifs)
{
	if (json_array_size(vifs) == 0) {
		res->verdict = PVM_STEP_DONE;
		return;
	}
	if (!pwr_need_client(ctx, res))
		return;
	struct pvm_cna_list *cnas = NULL;
	int r = read_cnas(ctx, res, &cnas);
	if (r == 1)
		pvm_vif_not_found(ctx, res);
	if (r != 0)
		return;
	bool all = true;
	for (size_t i = 0; i < json_array_size(vifs) && all; i++) {
		char mac[13];
		all = pvm_vif_mac_normalize(json_string_value(json_object_get(
		                                    json_array_get(vifs, i), "address")),
		                            mac) == 0 &&
		      find_cna(cnas, mac);
	}
	pvm_cna_list_free(cnas);
	if (all)
		res->verdict = PVM_STEP_DONE;
	else
		pvm_step_wait(res, 0, "not done");
}

/* ---- spawn's mgmt_vif step ---- */

static bool use_mgmt(const struct pvm_step_ctx *ctx)
{
	return !ctx->config || ctx->config->use_rmc_mgmt_vif;
}

/* Reads MGMTSWITCH and the partition's adapters. Returns 0 (*sw may be NULL: no such
 * switch), 1 when the partition does not exist, -1 with res set. */
static int read_mgmt(struct pvm_step_ctx *ctx, struct pvm_step_result *res,
                     struct pvm_vswitch_list **sws, const struct pvm_vswitch **sw,
                     struct pvm_cna_list **cnas)
{
	*cnas = NULL;
	*sw = NULL;
	if (read_vswitches(ctx, res, sws) != 0)
		return -1;
	*sw = find_vswitch(*sws, PVM_VIF_MGMT_SWITCH);
	return read_cnas(ctx, res, cnas);
}

void pvm_vif_mgmt_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!use_mgmt(ctx)) {
		json_object_set_new(ctx->data, "skipped", json_true());
		res->verdict = PVM_STEP_DONE;
		return;
	}
	if (json_is_true(json_object_get(ctx->data, "done"))) {
		res->verdict = PVM_STEP_DONE;
		return;
	}
	if (!pwr_need_client(ctx, res))
		return;
	struct pvm_vswitch_list *sws = NULL;
	struct pvm_cna_list *cnas = NULL, *made = NULL;
	const struct pvm_vswitch *sw = NULL;
	int r = read_mgmt(ctx, res, &sws, &sw, &cnas);
	if (r == 1)
		pvm_vif_not_found(ctx, res);
	if (r != 0)
		goto out;
	if (!sw) {
		pvm_step_fail(res, PVM_ENOTFOUND,
		              "virtual switch %s not found on managed system %s: the RMC "
		              "management adapter needs it (powervm_use_rmc_mgmt_vif = false "
		              "leaves the adapter out)",
		              PVM_VIF_MGMT_SWITCH, ctx->ms_uuid);
		pvm_strlcpy(res->error_code, "vswitch_not_found", sizeof(res->error_code));
		goto out;
	}
	const struct pvm_cna *c = find_on_switch(cnas, sw);
	if (c) {
		if (json_object_get(ctx->data, "mgmt_cna")) {
			pvm_log(PVM_LOG_WARNING, &ctx->log,
			        "management adapter: the create had an intent without a recorded "
			        "outcome; the adapter exists, so it is settled as done and not "
			        "sent again");
			json_object_del(ctx->data, "mgmt_cna");
		}
	} else {
		char href[512];
		vswitch_href(ctx, sw, href, sizeof(href));
		struct pvm_cna_spec spec = {.pvid = PVM_VIF_MGMT_VLAN, .vswitch_href = href};
		struct pvm_rest_error err = {0};
		int rc = 0, status = 0;
		enum put_outcome po =
		        put_cna(ctx, res, "mgmt_cna", &spec, &made, &rc, &status, &err);
		if (po == PUT_HELD)
			goto out;
		if (po == PUT_FAILED) {
			if (status == 404 && read_cnas(ctx, res, &made) == 1) {
				pvm_vif_not_found(ctx, res);
				goto out;
			}
			pwr_rest_failure(res, rc, &err, "creating the RMC management adapter");
			goto out;
		}
		if (!made) {
			pvm_step_retry(res, PVM_ECORRUPT,
			               "the management adapter's create answered no adapter");
			goto out;
		}
		c = &made->items[0];
		pvm_log(PVM_LOG_INFO, &ctx->log, "created the RMC management adapter %s", c->mac);
	}
	json_t *a = json_object();
	record_cna(a, c, PVM_VIF_MGMT_SWITCH);
	json_object_set_new(ctx->data, "adapter", a);
	json_object_set_new(ctx->data, "done", json_true());
	res->verdict = PVM_STEP_DONE;
out:
	pvm_cna_list_free(made);
	pvm_cna_list_free(cnas);
	pvm_vswitch_list_free(sws);
}

void pvm_vif_mgmt_undo(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!json_object_get(ctx->data, "mgmt_cna") && !json_object_get(ctx->data, "done")) {
		res->verdict = PVM_STEP_DONE; /* nothing was sent */
		return;
	}
	if (!pwr_need_client(ctx, res) || !inflight_settled(ctx, "mgmt_cna", res))
		return;
	struct pvm_vswitch_list *sws = NULL;
	struct pvm_cna_list *cnas = NULL;
	const struct pvm_vswitch *sw = NULL;
	int r = read_mgmt(ctx, res, &sws, &sw, &cnas);
	if (r < 0)
		goto out;
	const struct pvm_cna *c = r == 0 ? find_on_switch(cnas, sw) : NULL;
	if (c) {
		struct pvm_rest_error err = {0};
		int rc = delete_cna(ctx, c, &err);
		if (rc) {
			pwr_rest_failure(res, rc, &err, "deleting the RMC management adapter");
			goto out;
		}
		pvm_log(PVM_LOG_INFO, &ctx->log, "deleted the RMC management adapter %s", c->mac);
	}
	json_object_del(ctx->data, "done");
	res->verdict = PVM_STEP_DONE;
out:
	pvm_cna_list_free(cnas);
	pvm_vswitch_list_free(sws);
}

void pvm_vif_mgmt_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!use_mgmt(ctx)) {
		res->verdict = PVM_STEP_DONE;
		return;
	}
	if (!pwr_need_client(ctx, res))
		return;
	struct pvm_vswitch_list *sws = NULL;
	struct pvm_cna_list *cnas = NULL;
	const struct pvm_vswitch *sw = NULL;
	int r = read_mgmt(ctx, res, &sws, &sw, &cnas);
	if (r == 1)
		pvm_vif_not_found(ctx, res);
	else if (r == 0 && find_on_switch(cnas, sw))
		res->verdict = PVM_STEP_DONE;
	else if (r == 0)
		pvm_step_wait(res, 0, "not done");
	pvm_cna_list_free(cnas);
	pvm_vswitch_list_free(sws);
}

/* ---- destroy's unplug_vifs step ---- */

static const char *type_of_mac(const json_t *vifs, const char *mac)
{
	for (size_t i = 0; i < json_array_size(vifs); i++) {
		const json_t *v = json_array_get(vifs, i);
		char m[13];
		if (pvm_vif_mac_normalize(json_string_value(json_object_get(v, "address")), m) ==
		            0 &&
		    strcmp(m, mac) == 0 && json_is_string(json_object_get(v, "type")))
			return json_string_value(json_object_get(v, "type"));
	}
	return DEFAULT_TYPE;
}

void pvm_vif_destroy_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!pwr_need_client(ctx, res))
		return;
	struct pvm_vswitch_list *sws = NULL;
	struct pvm_cna_list *cnas = NULL;
	const struct pvm_vswitch *mgmt = NULL;
	int r = read_mgmt(ctx, res, &sws, &mgmt, &cnas);
	if (r < 0)
		goto out;
	if (r == 1) {
		json_object_set_new(ctx->data, "partition_found", json_false());
		res->verdict = PVM_STEP_DONE;
		goto out;
	}
	json_t *sent = child_object(ctx->data, "unplugged");
	const json_t *vifs = network_info(ctx);
	for (size_t i = 0; cnas && i < cnas->count; i++) {
		const struct pvm_cna *c = &cnas->items[i];
		char mac[13];
		if (pvm_vif_mac_normalize(c->mac, mac) != 0 || json_object_get(sent, mac) ||
		    cna_on_switch(c, mgmt))
			continue;
		char uri[512];
		cna_uri(ctx, c, uri, sizeof(uri));
		struct pvm_rest_error err = {0};
		int rc = send_event(ctx, "unplug", uri, mac, type_of_mac(vifs, mac), &err);
		if (rc && pvm_client_transient(rc)) {
			pwr_rest_failure(res, rc, &err, "sending an unplug event");
			goto out;
		}
		if (rc)
			pvm_log(PVM_LOG_WARNING, &ctx->log,
			        "the unplug event of adapter %s was refused: %s", mac,
			        err.message[0] ? err.message : pvm_strerror(rc));
		json_object_set_new(sent, mac, json_boolean(rc == 0));
		if (i + 1 < cnas->count && !commit_progress(ctx, res))
			goto out;
	}
	res->verdict = PVM_STEP_DONE;
out:
	pvm_cna_list_free(cnas);
	pvm_vswitch_list_free(sws);
}
