/* op_spawn.c: the operation type `spawn` (nova's ComputeDriver.spawn).
 *
 * DESIGN
 * Nine steps, each idempotent given its checkpoint and named objects:
 *   create_partition  the partition, UUID derived from the instance (an existing one, left by
 *                     an earlier attempt, is adopted), from the flavor and its powervm:*
 *                     extra specs;
 *   boot_disk         localdisk: virtual disk b_<hex> in the VIOS volume group, the cached
 *                     image copied into it (web File upload); ssp: linked clone boot_<hex>
 *                     of the image LU;
 *   vifs              one client network adapter per VIF, each with its plug event
 *                     (workers/vif.c);
 *   mgmt_vif          the RMC management adapter when powervm_use_rmc_mgmt_vif (vif.c);
 *   config_drive      the ISO the caller PUT to /v1/config-drives/{uuid}, uploaded as
 *                     virtual optical media cfg_<hex>.iso; the spool file is deleted after;
 *   map_storage       one POST per VIOS mapping the boot disk and the media to the partition;
 *   network_gate      holds power-on until the signal network_plugged (or its timeout);
 *   power_on          pwr_power_on_step (op_power_on.c).
 * Objects are found by name, never only through a checkpoint, so a step re-run after a crash
 * adopts what an earlier attempt made, and each undo removes what is there whether or not
 * its own step finished. Creates are sent with pvm_step_send_guard (intent before effect);
 * an undo that finds such an intent waits out the in-flight window before it decides an
 * object is absent, so a late request cannot leave an orphan behind it.
 *
 * params (docs/api.md): instance, flavor {memory_mb, vcpus, root_gb, extra_specs}, image_meta
 * {id, disk_format, size}, network_info, block_device_info, config_drive,
 * network_plugged_timeout, network_plugged_fatal.
 */
#include "image.h"
#include "names.h"
#include "op_power.h"
#include "op_spawn.h"
#include "op_storage.h"
#include "ops.h"
#include "vif.h"

#include "pvm/config.h"
#include "pvm/error.h"
#include "pvm/pvm_objects.h"
#include "pvm/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define GIB (1024.0 * 1024.0 * 1024.0)

/* ---- the partition's shape: flavor + extra specs ---- */

struct shape {
	int64_t mem, mem_min, mem_max;
	int64_t vcpus, vcpu_min, vcpu_max;
	double pu, pu_min, pu_max; /* 0: derived */
	int dedicated;             /* -1 unset, 0, 1 */
	int uncapped;              /* -1 unset, 0, 1 */
	int64_t weight;            /* -1 unset */
	int64_t avail_priority;    /* -1 unset */
	const char *compat;        /* canonical mode, or NULL */
	int srr;                   /* -1 unset, 0, 1 */
};

static const char *const compat_modes[] = {
        "default", "POWER6",          "POWER6_Plus",     "POWER6_Plus_Enhanced",
        "POWER7",  "POWER8",          "POWER8_Enhanced", "POWER9_Base",
        "POWER9",  "POWER9_Enhanced", "POWER10",         NULL};

static const char *const spec_keys[] = {"min_mem",
                                        "max_mem",
                                        "min_vcpu",
                                        "max_vcpu",
                                        "proc_units",
                                        "min_proc_units",
                                        "max_proc_units",
                                        "dedicated_proc",
                                        "uncapped",
                                        "shared_weight",
                                        "availability_priority",
                                        "processor_compatibility",
                                        "srr_capability",
                                        NULL};

#define ERR(fieldfmt, key, ...)                                                                    \
	do {                                                                                       \
		snprintf(field, fn, fieldfmt, key);                                                \
		snprintf(msg, mn, __VA_ARGS__);                                                    \
		return PVM_EINVAL;                                                                 \
	} while (0)

/* A spec value as text (extra specs are strings in nova; numbers and booleans are taken). */
static const char *spec_text(json_t *v, char *buf, size_t n)
{
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v))
		snprintf(buf, n, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, n, "%.17g", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, n, "%s", json_is_true(v) ? "true" : "false");
	else
		return NULL;
	return buf;
}

static bool parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
	char *end;
	if (!s || !*s)
		return false;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	while (*end == ' ')
		end++;
	if (errno || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static bool parse_units(const char *s, double *out)
{
	char *end;
	if (!s || !*s)
		return false;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || !(v > 0) || v > 256)
		return false;
	/* at most two decimals: PowerVM counts processing units in hundredths */
	double c = v * 100.0;
	if (fabs(c - round(c)) > 1e-6)
		return false;
	*out = round(c) / 100.0;
	return true;
}

static int parse_bool(const char *s)
{
	static const char *const t[] = {"true", "yes", "on", "1", "t", "y"};
	static const char *const f[] = {"false", "no", "off", "0", "f", "n"};
	for (size_t i = 0; s && i < sizeof(t) / sizeof(t[0]); i++) {
		if (strcasecmp(s, t[i]) == 0)
			return 1;
		if (strcasecmp(s, f[i]) == 0)
			return 0;
	}
	return -1;
}

#define FLAVOR_MAX_MEM  (16LL * 1024 * 1024) /* MB */
#define FLAVOR_MAX_CPUS 256

/* Reads and checks flavor + extra specs into sh. Names the field on error. */
static int shape_from(const json_t *p, struct shape *sh, char *field, size_t fn, char *msg,
                      size_t mn)
{
	memset(sh, 0, sizeof(*sh));
	sh->dedicated = sh->uncapped = sh->srr = -1;
	sh->weight = sh->avail_priority = -1;
	json_t *fl = json_object_get(p, "flavor");
	if (!json_is_object(fl))
		ERR("%s", "params.flavor",
		    "required: nova's flavor (memory_mb, vcpus, root_gb, "
		    "extra_specs)");
	json_t *v = json_object_get(fl, "memory_mb");
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > FLAVOR_MAX_MEM)
		ERR("%s", "params.flavor.memory_mb", "required: an integer from 1 to %lld (MB)",
		    FLAVOR_MAX_MEM);
	sh->mem = json_integer_value(v);
	v = json_object_get(fl, "vcpus");
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > FLAVOR_MAX_CPUS)
		ERR("%s", "params.flavor.vcpus", "required: an integer from 1 to %d",
		    FLAVOR_MAX_CPUS);
	sh->vcpus = json_integer_value(v);
	static const char *const gbs[] = {"root_gb", "ephemeral_gb", "swap"};
	for (size_t i = 0; i < 3; i++) {
		v = json_object_get(fl, gbs[i]);
		if (v && !json_is_null(v) &&
		    (!json_is_integer(v) || json_integer_value(v) < 0 ||
		     json_integer_value(v) > 1048576))
			ERR("params.flavor.%s", gbs[i], "must be an integer from 0 to 1048576");
	}
	v = json_object_get(fl, "name");
	if (v && !json_is_null(v) && !json_is_string(v))
		ERR("%s", "params.flavor.name", "must be a string");
	sh->mem_min = sh->mem_max = sh->mem;
	sh->vcpu_min = sh->vcpu_max = sh->vcpus;
	json_t *es = json_object_get(fl, "extra_specs");
	if (es && !json_is_null(es) && !json_is_object(es))
		ERR("%s", "params.flavor.extra_specs", "must be an object of strings");
	const char *k;
	json_object_foreach(es, k, v)
	{
		if (strncmp(k, "powervm:", 8) != 0)
			continue; /* other drivers' and scheduler keys are not ours */
		const char *key = k + 8;
		bool known = false;
		for (const char *const *s = spec_keys; *s && !known; s++)
			known = strcmp(key, *s) == 0;
		if (!known)
			ERR("params.flavor.extra_specs.%s", k,
			    "unknown PowerVM extra spec (known: min_mem, max_mem, min_vcpu, "
			    "max_vcpu, proc_units, min_proc_units, max_proc_units, dedicated_proc, "
			    "uncapped, shared_weight, availability_priority, "
			    "processor_compatibility, srr_capability)");
		char buf[64];
		const char *t = spec_text(v, buf, sizeof(buf));
		bool ok = t != NULL;
		if (!strcmp(key, "min_mem") || !strcmp(key, "max_mem")) {
			int64_t x = 0;
			ok = ok && parse_int(t, 1, FLAVOR_MAX_MEM, &x);
			if (!ok)
				ERR("params.flavor.extra_specs.%s", k,
				    "must be an integer number of MB from 1 to %lld",
				    FLAVOR_MAX_MEM);
			*(key[1] == 'i' ? &sh->mem_min : &sh->mem_max) = x;
		} else if (!strcmp(key, "min_vcpu") || !strcmp(key, "max_vcpu")) {
			int64_t x = 0;
			ok = ok && parse_int(t, 1, FLAVOR_MAX_CPUS, &x);
			if (!ok)
				ERR("params.flavor.extra_specs.%s", k,
				    "must be an integer from 1 to %d", FLAVOR_MAX_CPUS);
			*(key[1] == 'i' ? &sh->vcpu_min : &sh->vcpu_max) = x;
		} else if (!strcmp(key, "proc_units") || !strcmp(key, "min_proc_units") ||
		           !strcmp(key, "max_proc_units")) {
			double x = 0;
			ok = ok && parse_units(t, &x);
			if (!ok)
				ERR("params.flavor.extra_specs.%s", k,
				    "must be a number of processing units above 0 with at most two "
				    "decimals (e.g. 0.5)");
			*(key[0] == 'p' ? &sh->pu : key[1] == 'i' ? &sh->pu_min : &sh->pu_max) = x;
		} else if (!strcmp(key, "dedicated_proc") || !strcmp(key, "uncapped") ||
		           !strcmp(key, "srr_capability")) {
			int b = ok ? parse_bool(t) : -1;
			if (b < 0)
				ERR("params.flavor.extra_specs.%s", k, "must be true or false");
			*(key[0] == 'd'   ? &sh->dedicated
			  : key[0] == 'u' ? &sh->uncapped
			                  : &sh->srr) = b;
		} else if (!strcmp(key, "shared_weight") || !strcmp(key, "availability_priority")) {
			int64_t x = 0;
			ok = ok && parse_int(t, 0, 255, &x);
			if (!ok)
				ERR("params.flavor.extra_specs.%s", k,
				    "must be an integer from 0 to 255");
			*(key[0] == 's' ? &sh->weight : &sh->avail_priority) = x;
		} else { /* processor_compatibility */
			sh->compat = NULL;
			for (const char *const *m = compat_modes; t && *m && !sh->compat; m++)
				if (strcasecmp(t, *m) == 0)
					sh->compat = *m;
			if (!sh->compat)
				ERR("params.flavor.extra_specs.%s", k,
				    "must be a processor compatibility mode: default, POWER6, "
				    "POWER6_Plus, POWER6_Plus_Enhanced, POWER7, POWER8, "
				    "POWER8_Enhanced, POWER9_Base, POWER9, POWER9_Enhanced, "
				    "POWER10");
		}
	}
	/* consistency: min <= desired <= max, units per virtual processor, dedicated vs shared */
	if (sh->mem_min > sh->mem)
		ERR("%s", "params.flavor.extra_specs.powervm:min_mem",
		    "%lld MB is above the flavor's memory_mb (%lld)", (long long)sh->mem_min,
		    (long long)sh->mem);
	if (sh->mem_max < sh->mem)
		ERR("%s", "params.flavor.extra_specs.powervm:max_mem",
		    "%lld MB is below the flavor's memory_mb (%lld)", (long long)sh->mem_max,
		    (long long)sh->mem);
	if (sh->vcpu_min > sh->vcpus)
		ERR("%s", "params.flavor.extra_specs.powervm:min_vcpu",
		    "%lld is above the flavor's vcpus (%lld)", (long long)sh->vcpu_min,
		    (long long)sh->vcpus);
	if (sh->vcpu_max < sh->vcpus)
		ERR("%s", "params.flavor.extra_specs.powervm:max_vcpu",
		    "%lld is below the flavor's vcpus (%lld)", (long long)sh->vcpu_max,
		    (long long)sh->vcpus);
	if (sh->dedicated == 1) {
		static const char *const shared_only[] = {"proc_units", "min_proc_units",
		                                          "max_proc_units", "shared_weight"};
		for (size_t i = 0; i < 4; i++) {
			char key[64];
			snprintf(key, sizeof(key), "powervm:%s", shared_only[i]);
			if (json_object_get(es, key))
				ERR("params.flavor.extra_specs.%s", key,
				    "applies to shared processors only, and powervm:dedicated_proc "
				    "is true");
		}
		if (sh->uncapped == 1)
			ERR("%s", "params.flavor.extra_specs.powervm:uncapped",
			    "applies to shared processors only, and powervm:dedicated_proc is "
			    "true");
	}
	if (sh->uncapped == 0 && sh->weight >= 0)
		ERR("%s", "params.flavor.extra_specs.powervm:shared_weight",
		    "applies to uncapped partitions only, and powervm:uncapped is false");
	if (sh->pu > 0 &&
	    (sh->pu < 0.05 * (double)sh->vcpus - 1e-9 || sh->pu > (double)sh->vcpus + 1e-9))
		ERR("%s", "params.flavor.extra_specs.powervm:proc_units",
		    "%.2f units for %lld virtual processors: each takes 0.05 to 1.0 units", sh->pu,
		    (long long)sh->vcpus);
	if (sh->pu_min > 0 && sh->pu_min < 0.05 * (double)sh->vcpu_min - 1e-9)
		ERR("%s", "params.flavor.extra_specs.powervm:min_proc_units",
		    "below 0.05 units for each of the %lld minimum virtual processors",
		    (long long)sh->vcpu_min);
	if (sh->pu_max > 0 && sh->pu_max > (double)sh->vcpu_max + 1e-9)
		ERR("%s", "params.flavor.extra_specs.powervm:max_proc_units",
		    "above 1.0 unit for each of the %lld maximum virtual processors",
		    (long long)sh->vcpu_max);
	if (sh->pu_min > 0 && sh->pu > 0 && sh->pu_min > sh->pu + 1e-9)
		ERR("%s", "params.flavor.extra_specs.powervm:min_proc_units",
		    "above powervm:proc_units");
	if (sh->pu_max > 0 && sh->pu > 0 && sh->pu_max < sh->pu - 1e-9)
		ERR("%s", "params.flavor.extra_specs.powervm:max_proc_units",
		    "below powervm:proc_units");
	return 0;
}

static double r2(double x)
{
	return round(x * 100.0) / 100.0;
}

/* The builder's spec from a checked shape; factor: powervm_proc_units_factor. */
static void shape_spec(const struct shape *sh, double factor, struct pvm_lpar_spec *s)
{
	s->memory_mb = sh->mem;
	s->memory_min_mb = sh->mem_min;
	s->memory_max_mb = sh->mem_max;
	s->vcpus = sh->vcpus;
	s->vcpus_min = sh->vcpu_min;
	s->vcpus_max = sh->vcpu_max;
	s->dedicated = sh->dedicated == 1;
	if (!s->dedicated) {
		double pu = sh->pu > 0 ? sh->pu : r2(fmax(0.05, (double)sh->vcpus * factor));
		double lo = 0.05 * (double)sh->vcpu_min, hi = (double)sh->vcpu_max;
		double pmin = sh->pu_min > 0
		                      ? sh->pu_min
		                      : fmin(pu, r2(fmax(lo, (double)sh->vcpu_min * factor)));
		double pmax = sh->pu_max > 0
		                      ? sh->pu_max
		                      : fmax(pu, r2(fmin(hi, (double)sh->vcpu_max * factor)));
		s->proc_units = pu;
		s->proc_units_min = pmin;
		s->proc_units_max = pmax;
		/* uncapped weight 0 gets no spare capacity: the same as capped */
		if (sh->uncapped == 0 || sh->weight == 0)
			s->uncapped_weight = -1;
		else
			s->uncapped_weight = sh->weight > 0 ? sh->weight : 64;
	}
	if (sh->avail_priority >= 0)
		s->availability_priority = sh->avail_priority ? sh->avail_priority : -1;
	s->compat_mode = sh->compat;
	s->srr = sh->srr < 0 ? 0 : sh->srr ? 1 : -1;
}

static double units_factor(const struct pvm_step_ctx *ctx)
{
	const char *f = ctx->config ? ctx->config->proc_units_factor : NULL;
	double d = f ? strtod(f, NULL) : 0.1;
	return d >= 0.05 && d <= 1.0 ? d : 0.1;
}

/* ---- common ---- */

int spawn_names(const struct pvm_step_ctx *ctx, struct names *n)
{
	const char *u = ctx->op->instance_uuid;
	const char *nm = json_string_value(
	        json_object_get(json_object_get(ctx->op->params, "instance"), "name"));
	if (pvm_lpar_uuid_from_instance(u, n->lpar_uuid) ||
	    pvm_name_partition(u, nm, n->lpar_name) || pvm_name_boot_vdisk(u, n->vdisk) ||
	    pvm_name_boot_lu(u, n->lu) || pvm_name_config_drive(u, n->media))
		return PVM_EINVAL;
	return 0;
}

static bool use_ssp(const struct pvm_step_ctx *ctx)
{
	return ctx->config && ctx->config->disk_driver == PVM_DISK_SSP;
}

static const char *state_dir(const struct pvm_step_ctx *ctx)
{
	return ctx->config ? ctx->config->state_dir : NULL;
}

static void lpar_href(const struct pvm_step_ctx *ctx, const char *lpar_uuid, char *out, size_t n)
{
	if (ctx->ms_href && ctx->ms_href[0])
		snprintf(out, n, "%s/LogicalPartition/%s", ctx->ms_href, lpar_uuid);
	else
		snprintf(out, n, "uom/ManagedSystem/%s/LogicalPartition/%s", ctx->ms_uuid,
		         lpar_uuid);
}

/* ---- create_partition ---- */

static void create_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!pwr_check_instance(ctx, res) || !pwr_need_client(ctx, res))
		return;
	struct names n;
	if (spawn_names(ctx, &n)) {
		pvm_step_fail(res, PVM_EINVAL, "bad instance UUID");
		return;
	}
	struct pwr_quick q;
	struct pvm_rest_error err = {0};
	int rc = pwr_read(ctx, &q, &err);
	if (rc == 0) {
		if (json_object_get(json_object_get(ctx->data, "create"), "sent_at"))
			pvm_log(PVM_LOG_WARNING, &ctx->log,
			        "create_partition: the create had an intent without a recorded "
			        "outcome; partition %s exists, so it is adopted and not sent again",
			        n.lpar_uuid);
		else
			pvm_log(PVM_LOG_INFO, &ctx->log,
			        "create_partition: partition %s exists already (an earlier "
			        "attempt): adopted",
			        n.lpar_uuid);
		json_object_del(ctx->data, "create");
		json_object_set_new(ctx->data, "adopted", json_true());
		goto done;
	}
	if (rc != PVM_ENOTFOUND) {
		pwr_rest_failure(res, rc, &err, "reading the partition");
		return;
	}
	char field[128], msg[256];
	struct shape sh;
	if (shape_from(ctx->op->params, &sh, field, sizeof(field), msg, sizeof(msg))) {
		pvm_step_fail(res, PVM_EINVAL, "%s: %s", field, msg);
		return;
	}
	struct pvm_lpar_spec spec = {.uuid = n.lpar_uuid, .name = n.lpar_name};
	shape_spec(&sh, units_factor(ctx), &spec);
	char *body = pvm_build_lpar_create(&spec, &err);
	if (!body) {
		pvm_step_fail(res, PVM_EINVAL, "building the partition: %s", err.message);
		return;
	}
	if (!pvm_step_send_guard(ctx, "create", res)) {
		free(body);
		return;
	}
	char path[160];
	snprintf(path, sizeof(path), "uom/ManagedSystem/%s/LogicalPartition", ctx->ms_uuid);
	struct pvm_req rq = {.method = PVM_PUT,
	                     .path = path,
	                     .content_type =
	                             "application/vnd.ibm.powervm.uom+xml; type=LogicalPartition",
	                     .body = body,
	                     .body_len = strlen(body),
	                     .request_id = sto_req_id(ctx)};
	struct pvm_resp resp = {0};
	rc = pvm_client_request(ctx->client, &rq, &resp, &err);
	int status = resp.status;
	free(body);
	pvm_resp_fini(&resp);
	if (status > 0)
		pvm_step_send_answered(ctx, "create");
	if (status == 409 || rc == -EPROTO) {
		/* a duplicate create (the first landed before a crash): refused, and there */
		struct pvm_rest_error e2 = {0};
		if (pwr_read(ctx, &q, &e2) == 0) {
			pvm_log(PVM_LOG_WARNING, &ctx->log,
			        "partition %s already existed: a duplicate create was refused and "
			        "settled",
			        n.lpar_uuid);
			goto done;
		}
	}
	if (rc) {
		pwr_rest_failure(res, rc, &err, "creating the partition");
		return;
	}
done:
	json_object_set_new(ctx->data, "partition_uuid", json_string(n.lpar_uuid));
	json_object_set_new(ctx->data, "partition_name", json_string(n.lpar_name));
	res->verdict = PVM_STEP_DONE;
	res->progress = 15;
}

/* Reconcile of the undo's power-off job: off, or gone. */
void spawn_off_or_gone(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	struct pwr_quick q;
	struct pvm_rest_error err = {0};
	int rc = pwr_read(ctx, &q, &err);
	if (rc == PVM_ENOTFOUND ||
	    (rc == 0 && (pwr_is_off(q.state) || strcasecmp(q.state, "error") == 0)))
		res->verdict = PVM_STEP_DONE;
	else if (rc)
		pwr_rest_failure(res, rc, &err, "reading the partition");
	else if (pwr_is_moving(q.state) && !ctx->job_gone)
		pvm_step_retry(res, -EAGAIN, "partition is %s: a job may still be running",
		               q.state);
	else
		pvm_step_wait(res, 0, "not off");
}

static const char *const hard_off[] = {"operation", "shutdown", "immediate", "true", NULL};

/* Powers the partition off at once (PowerOff immediate, under key) unless it is off, in
 * error, or gone. True when it is (res untouched); false with res set. */
bool spawn_ensure_off(struct pvm_step_ctx *ctx, const char *key, struct pvm_step_result *res,
                      bool *gone)
{
	*gone = false;
	if (json_is_true(json_object_get(json_object_get(ctx->data, key), "done")))
		return true;
	if (!json_object_get(json_object_get(ctx->data, key), "job_id")) {
		struct pwr_quick q;
		struct pvm_rest_error err = {0};
		int rc = pwr_read(ctx, &q, &err);
		if (rc == PVM_ENOTFOUND) {
			*gone = true;
			return true;
		}
		if (rc) {
			pwr_rest_failure(res, rc, &err, "reading the partition");
			return false;
		}
		if (pwr_is_off(q.state) || strcasecmp(q.state, "error") == 0)
			return true;
		if (pwr_is_moving(q.state) && strcasecmp(q.state, "shutting down") == 0) {
			pvm_step_wait(res, ctx->now_ms + 1000, "waiting for the partition to stop");
			return false;
		}
	}
	char root[128];
	pwr_root(ctx, root, sizeof(root));
	bool done = false, unsettled = false;
	struct pvm_step_result r = {.verdict = PVM_STEP_DONE, .progress = -1};
	pvm_step_job(ctx, key, root, "PowerOff", hard_off, &r, &done, &unsettled);
	if (done)
		return true;
	if (unsettled) {
		json_object_del(ctx->data, key); /* off_or_gone settles it next time */
		pvm_step_retry(res, -EAGAIN, "PowerOff unsettled: reading the partition again");
		return false;
	}
	if (r.verdict == PVM_STEP_FAIL && r.code != PVM_ETIMEDOUT) {
		/* a failed immediate power off: the partition may have stopped anyway, or
		 * may need another one; look again and send a fresh job (bounded) */
		char fk[64];
		snprintf(fk, sizeof(fk), "%s_failures", key);
		json_int_t nf = json_integer_value(json_object_get(ctx->data, fk));
		if (nf < 5) {
			json_object_set_new(ctx->data, fk, json_integer(nf + 1));
			json_object_del(ctx->data, key);
			pvm_step_retry(res, r.code, "%s", r.error);
			return false;
		}
	}
	*res = r;
	return false;
}

void spawn_delete_partition(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	bool gone = false;
	if (!spawn_ensure_off(ctx, "undo_off", res, &gone))
		return;
	if (!gone) {
		char path[128];
		pwr_root(ctx, path, sizeof(path));
		struct pvm_rest_error err = {0};
		int rc = pvm_client_delete(ctx->client, path, NULL, sto_req_id(ctx), &err);
		if (rc && rc != PVM_ENOTFOUND) {
			pwr_rest_failure(res, rc, &err, "deleting the partition");
			if (err.http_status == 409) /* e.g. started again meanwhile: look again */
				pvm_step_retry(res, rc, "deleting the partition: %s", err.message);
			json_object_del(ctx->data, "undo_off");
			return;
		}
	}
	res->verdict = PVM_STEP_DONE;
}

static void create_undo(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	/* Only what this operation created or adopted: a spawn refused before that (a
	 * params.instance.uuid of another instance, say) must not delete a partition. */
	if (!json_object_get(ctx->data, "partition_uuid") &&
	    !json_object_get(ctx->data, "create")) {
		res->verdict = PVM_STEP_DONE;
		return;
	}
	if (!pwr_need_client(ctx, res) || !pvm_step_settle_inflight(ctx, "create", res))
		return;
	spawn_delete_partition(ctx, res);
}

static void create_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	struct pwr_quick q;
	struct pvm_rest_error err = {0};
	int rc = pwr_read(ctx, &q, &err);
	if (rc == 0)
		res->verdict = PVM_STEP_DONE;
	else if (rc == PVM_ENOTFOUND)
		pvm_step_wait(res, 0, "not created");
	else
		pwr_rest_failure(res, rc, &err, "reading the partition");
}

/* ---- boot_disk ---- */

static void image_missing(struct pvm_step_result *res, const char *id, const char *where)
{
	pvm_step_fail(res, PVM_ENOTFOUND,
	              "image %s is not in the image cache (%s): PUT /v1/images/%s first", id, where,
	              id);
	pvm_strlcpy(res->error_code, "image_not_cached", sizeof(res->error_code));
}

static void disk_ssp_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res,
                         const struct names *n, const char *image_id, int64_t root_gb)
{
	struct pvm_ssp_ref ssp;
	struct pvm_rest_error err = {0};
	int rc = pvm_image_ssp_ref(ctx, &ssp, &err);
	if (rc) {
		pwr_rest_failure(res, rc, &err, "finding the shared storage pool");
		return;
	}
	char img_udid[128];
	double img_gb = 0;
	rc = pvm_image_ssp_lookup(ctx, &ssp, image_id, img_udid, &img_gb, &err);
	if (rc == PVM_ENOTFOUND) {
		image_missing(res, image_id, ssp.ssp_name);
		return;
	}
	if (rc == -EAGAIN) {
		pvm_step_wait(res, ctx->now_ms + 5000, "image upload in progress");
		return;
	}
	if (rc) {
		pwr_rest_failure(res, rc, &err, "looking up the image");
		return;
	}
	char uuids[4][40], udids[4][128];
	size_t nl = 0;
	rc = sto_tier_lus(ctx, ssp.tier_uuid, n->lu, uuids, udids, 4, &nl, &err);
	if (rc) {
		pwr_rest_failure(res, rc, &err, "reading the logical units");
		return;
	}
	if (nl == 0) {
		struct pvm_lu_spec ls = {.name = n->lu,
		                         .capacity_gb = fmax((double)root_gb, img_gb),
		                         .thin = true,
		                         .cloned_from = img_udid};
		if (ls.capacity_gb < 1)
			ls.capacity_gb = 1;
		char *body = pvm_build_logical_unit(&ls, &err);
		if (!body) {
			pvm_step_fail(res, PVM_EINVAL, "building the logical unit: %s",
			              err.message);
			return;
		}
		if (!pvm_step_send_guard(ctx, "lu", res)) {
			free(body);
			return;
		}
		char path[160];
		snprintf(path, sizeof(path), "uom/Tier/%s/LogicalUnit", ssp.tier_uuid);
		struct pvm_req rq = {
		        .method = PVM_PUT,
		        .path = path,
		        .content_type = "application/vnd.ibm.powervm.uom+xml; type=LogicalUnit",
		        .body = body,
		        .body_len = strlen(body),
		        .request_id = sto_req_id(ctx)};
		struct pvm_resp resp = {0};
		rc = pvm_client_request(ctx->client, &rq, &resp, &err);
		free(body);
		if (resp.status > 0)
			pvm_step_send_answered(ctx, "lu");
		struct pvm_logical_unit_list *l = NULL;
		if (rc == 0)
			rc = pvm_parse_logical_unit(resp.body, resp.len, resp.etag, &l, &err);
		pvm_resp_fini(&resp);
		if (rc) {
			pwr_rest_failure(res, rc, &err, "creating the linked clone");
			return;
		}
		if (l->count) {
			pvm_strlcpy(udids[0], l->items[0].udid ? l->items[0].udid : "", 128);
			pvm_strlcpy(uuids[0], l->items[0].meta.uuid ? l->items[0].meta.uuid : "",
			            40);
		}
		pvm_logical_unit_list_free(l);
	} else {
		json_object_del(ctx->data, "lu"); /* an unanswered create did land */
	}
	if (nl > 1) {
		pvm_log(PVM_LOG_WARNING, &ctx->log,
		        "boot_disk: %zu logical units named %s (duplicate creates); using the "
		        "first, the undo or destroy removes them all",
		        nl, n->lu);
	}
	json_object_set_new(ctx->data, "kind", json_string("lu"));
	json_object_set_new(ctx->data, "name", json_string(n->lu));
	json_object_set_new(ctx->data, "udid", json_string(udids[0]));
	json_object_set_new(ctx->data, "lu_uuid", json_string(uuids[0]));
	json_object_set_new(ctx->data, "tier_uuid", json_string(ssp.tier_uuid));
	json_object_set_new(ctx->data, "image_udid", json_string(img_udid));
	res->verdict = PVM_STEP_DONE;
	res->progress = 50;
}

static void disk_local_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res,
                           const struct names *n, const char *image_id, int64_t root_gb)
{
	char path[1024];
	int64_t size = 0;
	int rc = pvm_image_local_lookup(state_dir(ctx), image_id, path, sizeof(path), &size);
	if (rc == PVM_ENOTFOUND || rc == PVM_EINVAL) {
		image_missing(res, image_id, "powervm_state_dir/images");
		return;
	}
	if (rc) {
		pvm_step_fail(res, rc, "image %s: %s", image_id, pvm_strerror(rc));
		return;
	}
	struct sto_vioses vs;
	struct pvm_rest_error err = {0};
	rc = sto_vioses(ctx, &vs, &err);
	if (rc) {
		pwr_rest_failure(res, rc, &err, "reading the VIOSes");
		return;
	}
	struct sto_where w = {0};
	char udid[128] = "";
	rc = sto_find_vdisk(ctx, &vs, n->vdisk, &w, &err);
	if (rc == PVM_ENOTFOUND) {
		const char *vg = ctx->config && ctx->config->volume_group_name
		                         ? ctx->config->volume_group_name
		                         : "rootvg";
		const char *vn = ctx->config ? ctx->config->volume_group_vios_name : NULL;
		rc = sto_find_vg(ctx, &vs, vg, vn, &w, &err);
		if (rc == PVM_ENOTFOUND) {
			pvm_step_fail(res, rc, "boot disk: %s", err.message);
			goto out;
		}
		if (rc)
			goto rest;
		double gb = ceil((double)size / GIB);
		if (gb < (double)root_gb)
			gb = (double)root_gb;
		if (gb < 1)
			gb = 1;
		if (!pvm_step_send_guard(ctx, "vdisk", res))
			goto out;
		rc = sto_vg_add_vdisk(ctx, vs.v[w.vios].uuid, w.vg_uuid, n->vdisk, gb, udid, &err);
		if (rc == 0 || err.http_status > 0)
			pvm_step_send_answered(ctx, "vdisk");
		if (rc)
			goto rest;
		json_object_del(ctx->data, "uploaded");
	} else if (rc) {
		goto rest;
	} else {
		pvm_strlcpy(udid, w.udid, sizeof(udid));
		json_object_del(ctx->data, "vdisk"); /* an unanswered create did land */
	}
	json_object_set_new(ctx->data, "kind", json_string("vdisk"));
	json_object_set_new(ctx->data, "name", json_string(n->vdisk));
	json_object_set_new(ctx->data, "vios_uuid", json_string(vs.v[w.vios].uuid));
	json_object_set_new(ctx->data, "vg_uuid", json_string(w.vg_uuid));
	json_object_set_new(ctx->data, "udid", json_string(udid));
	if (!json_is_true(json_object_get(ctx->data, "uploaded"))) {
		/* the disk exists: its contents are the image's once this upload ends (a
		 * repeated upload after a crash writes the same bytes again) */
		/* a web File create of an attempt that died unanswered may still land: wait
		 * it out, so the stale-File clean-up of this attempt sees it */
		if (!pvm_step_send_guard(ctx, "upload", res))
			goto out;
		rc = sto_upload(ctx, vs.v[w.vios].uuid, udid, "BROKERED_DISK_IMAGE", n->vdisk, path,
		                &err);
		if (rc == 0 || err.http_status > 0)
			pvm_step_send_answered(ctx, "upload");
		if (rc == PVM_ENOTFOUND && !err.http_status) {
			image_missing(res, image_id, "powervm_state_dir/images");
			goto out;
		}
		if (rc)
			goto rest;
		json_object_set_new(ctx->data, "uploaded", json_true());
		json_object_set_new(ctx->data, "image_bytes", json_integer((json_int_t)size));
	}
	res->verdict = PVM_STEP_DONE;
	res->progress = 50;
	goto out;
rest:
	pwr_rest_failure(res, rc, &err, "boot disk");
out:
	sto_vioses_free(&vs);
}

static void disk_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!pwr_need_client(ctx, res))
		return;
	struct names n;
	spawn_names(ctx, &n);
	const json_t *p = ctx->op->params;
	const char *image_id =
	        json_string_value(json_object_get(json_object_get(p, "image_meta"), "id"));
	json_int_t root_gb =
	        json_integer_value(json_object_get(json_object_get(p, "flavor"), "root_gb"));
	if (use_ssp(ctx))
		disk_ssp_run(ctx, res, &n, image_id, root_gb);
	else
		disk_local_run(ctx, res, &n, image_id, root_gb);
}

/* Removes the partition's mappings of storage name on every VIOS, then calls back. */
int spawn_unmap_everywhere(struct pvm_step_ctx *ctx, const struct sto_vioses *vs,
                           const char *lpar_uuid, const char *name, struct pvm_rest_error *err)
{
	const char *names[1] = {name};
	for (size_t i = 0; i < vs->n; i++) {
		int removed = 0;
		int rc = sto_unmap(ctx, vs->v[i].uuid, lpar_uuid, name ? names : NULL, name ? 1 : 0,
		                   &removed, err);
		if (rc)
			return rc;
		if (removed)
			pvm_log(PVM_LOG_INFO, &ctx->log, "removed %d mapping(s) of %s from VIOS %s",
			        removed, name ? name : "the partition", vs->v[i].name);
	}
	return 0;
}

/* Finds name (a virtual disk or optical media of kind) in this system's volume groups,
 * unmaps it everywhere, deletes it, then any web File left for it. Absent: 0. */
static int remove_vg_object(struct pvm_step_ctx *ctx, const struct sto_vioses *vs,
                            const char *lpar_uuid, enum pvm_storage_kind kind, const char *name,
                            const char *what, struct pvm_rest_error *err)
{
	struct sto_where w;
	int rc = kind == PVM_STORAGE_VDISK ? sto_find_vdisk(ctx, vs, name, &w, err)
	                                   : sto_find_media(ctx, vs, name, &w, err);
	if (rc == 0) {
		rc = spawn_unmap_everywhere(ctx, vs, lpar_uuid, name, err);
		if (rc == 0)
			rc = sto_vg_remove(ctx, vs->v[w.vios].uuid, w.vg_uuid, kind, name, err);
		if (rc == 0)
			pvm_log(PVM_LOG_INFO, &ctx->log, "deleted %s %s", what, name);
	} else if (rc == PVM_ENOTFOUND) {
		rc = 0;
	}
	if (rc == 0)
		sto_delete_files(ctx, name);
	return rc;
}

/* Deletes the boot disk of the instance (localdisk vdisk; with ssp also its LUs), unmapped
 * first. Shared with destroy (spawn_delete_disk). */
void spawn_delete_disk(struct pvm_step_ctx *ctx, struct pvm_step_result *res, bool ssp)
{
	struct names n;
	spawn_names(ctx, &n);
	struct sto_vioses vs;
	struct pvm_rest_error err = {0};
	int rc = sto_vioses(ctx, &vs, &err);
	if (rc) {
		pwr_rest_failure(res, rc, &err, "reading the VIOSes");
		return;
	}
	rc = remove_vg_object(ctx, &vs, n.lpar_uuid, PVM_STORAGE_VDISK, n.vdisk, "virtual disk",
	                      &err);
	if (rc == 0 && ssp) {
		struct pvm_ssp_ref ref;
		rc = pvm_image_ssp_ref(ctx, &ref, &err);
		char uuids[8][40], udids[8][128];
		size_t nl = 0;
		if (rc == 0)
			rc = sto_tier_lus(ctx, ref.tier_uuid, n.lu, uuids, udids, 8, &nl, &err);
		if (nl)
			rc = spawn_unmap_everywhere(ctx, &vs, n.lpar_uuid, n.lu, &err);
		for (size_t i = 0; rc == 0 && i < nl; i++) {
			char path[200];
			snprintf(path, sizeof(path), "uom/Tier/%s/LogicalUnit/%s", ref.tier_uuid,
			         uuids[i]);
			rc = pvm_client_delete(ctx->client, path, NULL, sto_req_id(ctx), &err);
			if (rc == PVM_ENOTFOUND)
				rc = 0;
			if (rc == 0)
				pvm_log(PVM_LOG_INFO, &ctx->log, "deleted logical unit %s (%s)",
				        n.lu, uuids[i]);
		}
	}
	sto_vioses_free(&vs);
	if (rc)
		pwr_rest_failure(res, rc, &err, "deleting the boot disk");
	else
		res->verdict = PVM_STEP_DONE;
}

static void disk_undo(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!pwr_need_client(ctx, res) || !pvm_step_settle_inflight(ctx, "vdisk", res) ||
	    !pvm_step_settle_inflight(ctx, "lu", res))
		return;
	spawn_delete_disk(ctx, res, use_ssp(ctx));
}

/* ---- config_drive ---- */

static bool wants_config_drive(const struct pvm_step_ctx *ctx)
{
	return json_is_true(json_object_get(ctx->op->params, "config_drive"));
}

static void unlink_spool(struct pvm_step_ctx *ctx)
{
	char path[1024];
	if (!state_dir(ctx) ||
	    pvm_path_config_drive(state_dir(ctx), ctx->op->instance_uuid, path, sizeof(path)))
		return;
	if (unlink(path) == 0)
		pvm_log(PVM_LOG_INFO, &ctx->log, "deleted the config drive spool file %s", path);
}

static void cfg_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!wants_config_drive(ctx)) {
		res->verdict = PVM_STEP_DONE;
		res->progress = 60;
		return;
	}
	if (!pwr_need_client(ctx, res))
		return;
	struct names n;
	spawn_names(ctx, &n);
	struct sto_vioses vs;
	struct pvm_rest_error err = {0};
	int rc = sto_vioses(ctx, &vs, &err);
	if (rc) {
		pwr_rest_failure(res, rc, &err, "reading the VIOSes");
		return;
	}
	struct sto_where w;
	rc = sto_find_media(ctx, &vs, n.media, &w, &err);
	if (rc == PVM_ENOTFOUND) {
		char path[1024];
		struct stat st;
		if (!state_dir(ctx) ||
		    pvm_path_config_drive(state_dir(ctx), ctx->op->instance_uuid, path,
		                          sizeof(path)) ||
		    stat(path, &st) != 0) {
			pvm_step_fail(res, PVM_ENOTFOUND,
			              "config drive requested (params.config_drive) but no ISO was "
			              "uploaded for instance %s: PUT /v1/config-drives/%s before "
			              "submitting spawn",
			              ctx->op->instance_uuid, ctx->op->instance_uuid);
			pvm_strlcpy(res->error_code, "config_drive_missing",
			            sizeof(res->error_code));
			goto out;
		}
		size_t vi = 0;
		rc = sto_media_vios(ctx, &vs,
		                    ctx->config ? ctx->config->volume_group_vios_name : NULL, &vi,
		                    &err);
		if (rc == PVM_ENOTFOUND) {
			pvm_step_fail(res, rc, "config drive: %s", err.message);
			goto out;
		}
		if (rc)
			goto rest;
		if (!pvm_step_send_guard(ctx, "media", res))
			goto out;
		rc = sto_upload(ctx, vs.v[vi].uuid, NULL, "BROKERED_MEDIA_ISO", n.media, path,
		                &err);
		if (rc == 0 || err.http_status > 0)
			pvm_step_send_answered(ctx, "media");
		if (rc)
			goto rest;
		w.vios = vi;
		pvm_log(PVM_LOG_INFO, &ctx->log, "uploaded the config drive as %s on VIOS %s",
		        n.media, vs.v[vi].name);
	} else if (rc) {
		goto rest;
	} else {
		sto_delete_files(ctx, n.media); /* an upload that died before its DELETE */
		json_object_del(ctx->data, "media");
	}
	json_object_set_new(ctx->data, "media", json_string(n.media));
	json_object_set_new(ctx->data, "vios_uuid", json_string(vs.v[w.vios].uuid));
	unlink_spool(ctx);
	res->verdict = PVM_STEP_DONE;
	res->progress = 60;
	goto out;
rest:
	pwr_rest_failure(res, rc, &err, "config drive");
out:
	sto_vioses_free(&vs);
}

/* Removes the config drive media (unmapped first). Shared with destroy. */
void spawn_delete_media(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	struct names n;
	spawn_names(ctx, &n);
	struct sto_vioses vs;
	struct pvm_rest_error err = {0};
	int rc = sto_vioses(ctx, &vs, &err);
	if (rc) {
		pwr_rest_failure(res, rc, &err, "reading the VIOSes");
		return;
	}
	rc = remove_vg_object(ctx, &vs, n.lpar_uuid, PVM_STORAGE_VOPT, n.media,
	                      "config drive media", &err);
	sto_vioses_free(&vs);
	if (rc)
		pwr_rest_failure(res, rc, &err, "deleting the config drive media");
	else
		res->verdict = PVM_STEP_DONE;
}

static void cfg_undo(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!wants_config_drive(ctx)) {
		res->verdict = PVM_STEP_DONE;
		return;
	}
	if (!pwr_need_client(ctx, res) || !pvm_step_settle_inflight(ctx, "media", res))
		return;
	spawn_delete_media(ctx, res);
}

/* ---- map_storage ---- */

static void map_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!pwr_need_client(ctx, res))
		return;
	struct names n;
	spawn_names(ctx, &n);
	char href[700];
	lpar_href(ctx, n.lpar_uuid, href, sizeof(href));
	json_t *disk = json_object_get(ctx->op->checkpoints, "boot_disk");
	json_t *cfg = json_object_get(ctx->op->checkpoints, "config_drive");
	struct sto_vioses vs;
	struct pvm_rest_error err = {0};
	int rc = sto_vioses(ctx, &vs, &err);
	if (rc) {
		pwr_rest_failure(res, rc, &err, "reading the VIOSes");
		return;
	}
	/* which VIOS serves what: found by name again (the checkpoints only say what kind) */
	struct sto_map maps[2][2];
	size_t nm[2] = {0, 0};
	size_t at[2] = {0, 0};
	int nv = 0;
	struct sto_where w;
	bool lu = json_is_string(json_object_get(disk, "kind")) &&
	          !strcmp(json_string_value(json_object_get(disk, "kind")), "lu");
	const char *lu_udid = json_string_value(json_object_get(disk, "udid"));
	if (lu) {
		/* a logical unit is reachable from every VIOS of the pool: the media's VIOS, or
		 * the configured one, or the first */
		size_t vi = 0;
		const char *want = ctx->config ? ctx->config->volume_group_vios_name : NULL;
		for (size_t i = 0; want && i < vs.n; i++)
			if (!strcmp(vs.v[i].name, want))
				vi = i;
		const char *cv = json_string_value(json_object_get(cfg, "vios_uuid"));
		for (size_t i = 0; cv && i < vs.n; i++)
			if (!strcasecmp(vs.v[i].uuid, cv))
				vi = i;
		at[0] = vi;
		maps[0][nm[0]++] = (struct sto_map){PVM_STORAGE_LU, n.lu, lu_udid};
		nv = 1;
	} else {
		rc = sto_find_vdisk(ctx, &vs, n.vdisk, &w, &err);
		if (rc == PVM_ENOTFOUND) {
			pvm_step_fail(res, rc, "the boot disk %s is gone", n.vdisk);
			goto out;
		}
		if (rc)
			goto rest;
		at[0] = w.vios;
		maps[0][nm[0]++] = (struct sto_map){PVM_STORAGE_VDISK, n.vdisk, NULL};
		nv = 1;
	}
	if (wants_config_drive(ctx)) {
		rc = sto_find_media(ctx, &vs, n.media, &w, &err);
		if (rc == PVM_ENOTFOUND) {
			pvm_step_fail(res, rc, "the config drive media %s is gone", n.media);
			goto out;
		}
		if (rc)
			goto rest;
		int slot = w.vios == at[0] ? 0 : 1;
		at[slot] = w.vios;
		maps[slot][nm[slot]++] = (struct sto_map){PVM_STORAGE_VOPT, n.media, NULL};
		if (slot == 1)
			nv = 2;
	}
	if (!pvm_step_send_guard(ctx, "map", res))
		goto out;
	json_t *done = json_array();
	for (int i = 0; i < nv && rc == 0; i++) {
		int added = 0;
		rc = sto_map(ctx, &vs.v[at[i]], n.lpar_uuid, href, maps[i], nm[i], &added, &err);
		if (rc == 0) {
			json_array_append_new(done, json_string(vs.v[at[i]].uuid));
			if (added)
				pvm_log(PVM_LOG_INFO, &ctx->log, "mapped %d device(s) on VIOS %s",
				        added, vs.v[at[i]].name);
		}
	}
	if (rc == 0 || err.http_status > 0)
		pvm_step_send_answered(ctx, "map");
	json_object_set_new(ctx->data, "vioses", done);
	if (rc)
		goto rest;
	res->verdict = PVM_STEP_DONE;
	res->progress = 70;
	goto out;
rest:
	pwr_rest_failure(res, rc, &err, "mapping the storage");
out:
	sto_vioses_free(&vs);
}

static void map_undo(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!pwr_need_client(ctx, res) || !pvm_step_settle_inflight(ctx, "map", res))
		return;
	struct names n;
	spawn_names(ctx, &n);
	struct sto_vioses vs;
	struct pvm_rest_error err = {0};
	int rc = sto_vioses(ctx, &vs, &err);
	const char *names[3] = {n.vdisk, n.lu, n.media};
	for (size_t i = 0; rc == 0 && i < vs.n; i++) {
		int removed = 0;
		rc = sto_unmap(ctx, vs.v[i].uuid, n.lpar_uuid, names, 3, &removed, &err);
	}
	sto_vioses_free(&vs);
	if (rc)
		pwr_rest_failure(res, rc, &err, "removing the mappings");
	else
		res->verdict = PVM_STEP_DONE;
}

/* ---- network_gate ---- */

/* The signal wakes the gate at once (a signal that arrives while a step runs makes its next
 * park due: PVM_OPF_KICKED); the gate also looks again this often, so that a partition
 * deleted behind powervmd's back is noticed while it waits. */
#define GATE_LOOK_MS 5000

static void gate_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	const json_t *p = ctx->op->params;
	int64_t timeout = pwr_param_ms(p, "network_plugged_timeout", 0);
	json_t *ni = json_object_get(p, "network_info");
	res->progress = 80;
	if (timeout <= 0 || json_array_size(ni) == 0) {
		json_object_set_new(ctx->data, "outcome", json_string("not_waited"));
		res->verdict = PVM_STEP_DONE;
		return;
	}
	json_t *sig = json_object_get(ctx->op->signals, "network_plugged");
	if (sig) {
		if (json_is_false(sig)) {
			pvm_step_fail(res, PVM_EINVAL,
			              "networking failed to plug (signal network_plugged false)");
			pvm_strlcpy(res->error_code, "vif_plug_failed", sizeof(res->error_code));
			return;
		}
		json_object_set_new(ctx->data, "outcome", json_string("signalled"));
		res->verdict = PVM_STEP_DONE;
		return;
	}
	json_t *st = json_object_get(ctx->data, "started");
	if (!json_is_integer(st)) {
		json_object_set_new(ctx->data, "started", json_integer((json_int_t)ctx->now_ms));
		st = json_object_get(ctx->data, "started");
	}
	int64_t until = (int64_t)json_integer_value(st) + timeout;
	if (ctx->now_ms < until) {
		/* Parked until the signal (a control request wakes a waiting operation) or the
		 * timeout. A signal that arrives while this step runs does not wake it (the
		 * journal sets it on a running operation without making it due again), so it
		 * looks again every GATE_LOOK_MS at the latest. */
		int64_t due = ctx->now_ms + GATE_LOOK_MS;
		pvm_step_wait(res, due < until ? due : until, "gate network_plugged");
		return;
	}
	if (json_is_true(json_object_get(p, "network_plugged_fatal"))) {
		pvm_step_fail(res, PVM_ETIMEDOUT,
		              "networking was not plugged within %.1f s (network_plugged_timeout; "
		              "network_plugged_fatal is true)",
		              (double)timeout / 1000.0);
		pvm_strlcpy(res->error_code, "vif_plug_timeout", sizeof(res->error_code));
		return;
	}
	pvm_log(PVM_LOG_WARNING, &ctx->log,
	        "network_gate: networking was not plugged within %.1f s; powering on anyway "
	        "(network_plugged_fatal is false)",
	        (double)timeout / 1000.0);
	json_object_set_new(ctx->data, "outcome", json_string("timed_out"));
	res->verdict = PVM_STEP_DONE;
}

/* ---- power_on ---- */

static void on_run(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!pwr_need_client(ctx, res))
		return;
	bool already = false;
	pwr_power_on_step(ctx, res, &already);
	if (res->verdict != PVM_STEP_DONE)
		return;
	struct names n;
	spawn_names(ctx, &n);
	const json_t *cp = ctx->op->checkpoints;
	json_t *disk = json_object_get(cp, "boot_disk");
	json_t *cfg = json_object_get(cp, "config_drive");
	json_t *gate = json_object_get(cp, "network_gate");
	json_t *extra = json_pack(
	        "{s:s, s:{s:O?, s:O?, s:O?}, s:O?, s:O?, s:b}", "partition_name", n.lpar_name,
	        "boot_disk", "kind", json_object_get(disk, "kind"), "name",
	        json_object_get(disk, "name"), "udid", json_object_get(disk, "udid"),
	        "config_drive", json_object_get(cfg, "media"), "network_plugged",
	        json_object_get(gate, "outcome"), "adopted_partition",
	        json_is_true(json_object_get(json_object_get(cp, "create_partition"), "adopted")));
	const char *st = json_string_value(json_object_get(ctx->data, "state"));
	res->result = pwr_result(ctx, already && st ? st : "running", extra);
	res->progress = 100;
}

static void on_undo(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!pwr_need_client(ctx, res))
		return;
	bool gone = false;
	if (spawn_ensure_off(ctx, "undo_off", res, &gone))
		res->verdict = PVM_STEP_DONE;
}

/* ---- reconciles: each step reads before it changes, so these say whether its effect is
 * there (the engine calls them for the steps' jobs; they document the settled state) ---- */

static void found_or_not(struct pvm_step_result *res, int rc, const struct pvm_rest_error *err,
                         const char *what)
{
	if (rc == 0)
		res->verdict = PVM_STEP_DONE;
	else if (rc == PVM_ENOTFOUND)
		pvm_step_wait(res, 0, "not there");
	else
		pwr_rest_failure(res, rc, err, what);
}

static void disk_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	struct names n;
	spawn_names(ctx, &n);
	struct sto_vioses vs;
	struct pvm_rest_error err = {0};
	int rc = sto_vioses(ctx, &vs, &err);
	struct sto_where w;
	if (rc == 0 && use_ssp(ctx)) {
		struct pvm_ssp_ref ref;
		char uuids[1][40], udids[1][128];
		size_t nl = 0;
		rc = pvm_image_ssp_ref(ctx, &ref, &err);
		if (rc == 0)
			rc = sto_tier_lus(ctx, ref.tier_uuid, n.lu, uuids, udids, 1, &nl, &err);
		if (rc == 0 && nl == 0)
			rc = PVM_ENOTFOUND;
	} else if (rc == 0) {
		rc = sto_find_vdisk(ctx, &vs, n.vdisk, &w, &err);
		if (rc == 0 && !json_is_true(json_object_get(ctx->data, "uploaded")))
			rc = PVM_ENOTFOUND; /* there, but its contents are not known to be */
	}
	sto_vioses_free(&vs);
	found_or_not(res, rc, &err, "reading the boot disk");
}

static void cfg_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	if (!wants_config_drive(ctx)) {
		res->verdict = PVM_STEP_DONE;
		return;
	}
	struct names n;
	spawn_names(ctx, &n);
	struct sto_vioses vs;
	struct pvm_rest_error err = {0};
	struct sto_where w;
	int rc = sto_vioses(ctx, &vs, &err);
	if (rc == 0)
		rc = sto_find_media(ctx, &vs, n.media, &w, &err);
	sto_vioses_free(&vs);
	found_or_not(res, rc, &err, "reading the config drive media");
}

static void map_reconcile(struct pvm_step_ctx *ctx, struct pvm_step_result *res)
{
	/* the mappings are there when mapping them again would send nothing */
	struct names n;
	spawn_names(ctx, &n);
	const char *want[2] = {use_ssp(ctx) ? n.lu : n.vdisk, n.media};
	size_t nw = wants_config_drive(ctx) ? 2 : 1, seen = 0;
	struct sto_vioses vs;
	struct pvm_rest_error err = {0};
	int rc = sto_vioses(ctx, &vs, &err);
	for (size_t i = 0; rc == 0 && i < vs.n; i++) {
		char path[160];
		snprintf(path, sizeof(path), "uom/VirtualIOServer/%s", vs.v[i].uuid);
		struct pvm_resp resp = {0};
		struct pvm_vios_list *l = NULL;
		rc = pvm_client_get(ctx->client, path, "group=ViosSCSIMapping", sto_req_id(ctx),
		                    &resp, &err);
		if (rc == 0)
			rc = pvm_parse_vios(resp.body, resp.len, resp.etag, &l, &err);
		pvm_resp_fini(&resp);
		for (size_t k = 0; rc == 0 && l && k < l->count; k++)
			for (size_t m = 0; m < l->items[k].n_scsi_mappings; m++) {
				const struct pvm_vscsi_mapping *x = &l->items[k].scsi_mappings[m];
				const char *h = x->lpar_href ? strrchr(x->lpar_href, '/') : NULL;
				if (!h || strcasecmp(h + 1, n.lpar_uuid) != 0 || !x->storage_name)
					continue;
				for (size_t j = 0; j < nw; j++)
					seen += strcmp(x->storage_name, want[j]) == 0;
			}
		pvm_vios_list_free(l);
	}
	sto_vioses_free(&vs);
	found_or_not(res, rc ? rc : seen >= nw ? 0 : PVM_ENOTFOUND, &err, "reading the mappings");
}

/* ---- the table ---- */

static const struct pvm_step_def steps[] = {
        {"create_partition", create_run, create_undo, create_reconcile, spawn_off_or_gone},
        {"boot_disk", disk_run, disk_undo, disk_reconcile, NULL},
        {"vifs", pvm_vif_spawn_run, pvm_vif_spawn_undo, pvm_vif_spawn_reconcile, NULL},
        {"mgmt_vif", pvm_vif_mgmt_run, pvm_vif_mgmt_undo, pvm_vif_mgmt_reconcile, NULL},
        {"config_drive", cfg_run, cfg_undo, cfg_reconcile, NULL},
        {"map_storage", map_run, map_undo, map_reconcile, NULL},
        {"network_gate", gate_run, NULL, NULL, NULL},
        {"power_on", on_run, on_undo, pwr_on_reconcile, spawn_off_or_gone},
};

/* ---- validation ---- */

static int validate(const json_t *p, char *field, size_t fn, char *msg, size_t mn)
{
	static const char *const known[] = {"instance",
	                                    "flavor",
	                                    "image_meta",
	                                    "network_info",
	                                    "block_device_info",
	                                    "config_drive",
	                                    "network_plugged_timeout",
	                                    "network_plugged_fatal",
	                                    NULL};
	int rc = pwr_validate_known(p, "spawn", known, field, fn, msg, mn);
	if (rc)
		return rc;
	struct shape sh;
	rc = shape_from(p, &sh, field, fn, msg, mn);
	if (rc)
		return rc;
	json_t *im = json_object_get(p, "image_meta");
	if (!json_is_object(im))
		ERR("%s", "params.image_meta",
		    "required: nova's image meta (id, disk_format, ...)");
	json_t *id = json_object_get(im, "id");
	if (!json_is_string(id) || !pvm_name_image_id_ok(json_string_value(id)))
		ERR("%s", "params.image_meta.id",
		    "required: the image id (1 to 64 characters of letters, digits, '.', '_', "
		    "'-'; the id it was cached under with PUT /v1/images/{id})");
	json_t *df = json_object_get(im, "disk_format");
	if (df && !json_is_null(df) &&
	    (!json_is_string(df) || strcmp(json_string_value(df), "raw") != 0))
		ERR("%s", "params.image_meta.disk_format",
		    "only \"raw\" is supported (the format powervmd advertises)");
	json_t *sz = json_object_get(im, "size");
	if (sz && !json_is_null(sz) && (!json_is_integer(sz) || json_integer_value(sz) < 0))
		ERR("%s", "params.image_meta.size", "must be a number of bytes (an integer >= 0)");
	json_t *ni = json_object_get(p, "network_info");
	if (ni && !json_is_null(ni)) {
		rc = pvm_vif_validate_list(ni, "params.network_info", field, fn, msg, mn);
		if (rc)
			return rc;
	}
	json_t *bdi = json_object_get(p, "block_device_info");
	if (bdi && !json_is_null(bdi)) {
		if (!json_is_object(bdi))
			ERR("%s", "params.block_device_info", "must be an object or null");
		if (json_array_size(json_object_get(bdi, "block_device_mapping")) > 0)
			ERR("%s", "params.block_device_info.block_device_mapping",
			    "volumes are not supported by spawn yet (boot from the image)");
	}
	json_t *cd = json_object_get(p, "config_drive");
	if (cd && !json_is_null(cd) && !json_is_boolean(cd))
		ERR("%s", "params.config_drive", "must be true or false");
	json_t *nf = json_object_get(p, "network_plugged_fatal");
	if (nf && !json_is_null(nf) && !json_is_boolean(nf))
		ERR("%s", "params.network_plugged_fatal", "must be true or false");
	return pwr_validate_seconds(p, "network_plugged_timeout", 3600, field, fn, msg, mn);
}

const struct pvm_op_type pvm_op_spawn = {
        .name = "spawn",
        .version = 1,
        .steps = steps,
        .nsteps = sizeof(steps) / sizeof(steps[0]),
        .max_attempts = 30,
        .deadline_ms = 60LL * 60 * 1000,
        .validate = validate,
        .requires_instance = true,
};
