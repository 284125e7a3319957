/* scrub.c: the start-up scrub (scrub.h; docs/operations.md, Scrub).
 *
 * DESIGN: a pass reads, then decides, then acts, and reads again right before each change.
 *   1. Read: the operations in flight in the journal (A0), this managed system's VIOSes
 *      with their mappings (?group=ViosSCSIMapping) and each VIOS's volume groups, THEN the
 *      partitions and the journal again: a partition that existed when an object was read
 *      still exists then, unless an operation (in flight, so protected) deleted it. Any
 *      read that fails ends the pass with nothing changed: a decision made from a partial
 *      view could remove a live instance's storage.
 *   2. Decide (pure, unit-tested): pvm_scrub_plan_vios() per VIOS.
 *   3. Act (mode on): per VIOS, ONE update of the VIOS removing every orphan mapping, then
 *      ONE update per volume group removing its orphan disks and media (they must be
 *      unmapped first: PowerVM refuses to delete mapped storage). Each update goes through
 *      pvm_client_update(), whose change function re-reads the partitions and the journal
 *      and judges the entry it is given again, so that a 412 re-read, a partition created
 *      meanwhile or an operation submitted meanwhile is taken into account.
 * Operations that were in flight when the pass started stay protected for the whole pass
 * (they may finish meanwhile, leaving a partition created after our read). What is left:
 * an operation submitted after the pass started that creates an object AND finishes
 * between two of our reads; at start-up none runs (the pass comes before the workers).
 *
 * LOCKS: s->mu guards the nova list, the pending flag, the report and the counters of
 * passes; s->pass_mu serializes passes. Neither is held across a PowerVM request except
 * pass_mu, which only passes take. Lock order: pass_mu, then mu.
 */
#include "scrub.h"

#include "names.h"

#include "pvm/client.h"
#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/metrics.h"
#include "pvm/queue.h"
#include "pvm/util.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *pvm_scrub_kind_name(enum pvm_scrub_kind k)
{
	static const char *const n[] = {"mapping", "vdisk", "media"};
	return k < PVM_SCRUB_KIND_COUNT ? n[k] : "?";
}

const char *pvm_scrub_verdict_name(enum pvm_scrub_verdict v)
{
	static const char *const n[] = {"keep", "orphan", "deferred", "in_flight"};
	return v < PVM_SCRUB_VERDICT_COUNT ? n[v] : "?";
}

/* ---------------------------------------------------------------- decisions -------- */

/* The 32 hex digits of a UUID (dashes dropped), lower case; false when malformed. */
static bool uuid_hex(const char *u, char hex[33])
{
	size_t k = 0;
	for (const char *p = u; p && *p; p++) {
		if (*p == '-')
			continue;
		if (!isxdigit((unsigned char)*p) || k >= 32)
			return false;
		hex[k++] = (char)tolower((unsigned char)*p);
	}
	hex[k] = '\0';
	return k == 32;
}

/* Some UUID of list starts with the hex prefix (lower case). */
static bool any_starts(const char *const *list, size_t n, const char *prefix)
{
	size_t pl = strlen(prefix);
	for (size_t i = 0; i < n; i++) {
		char h[33];
		if (uuid_hex(list[i], h) && strncmp(h, prefix, pl) == 0)
			return true;
	}
	return false;
}

/* The last path component of an href (without a query): the partition UUID. */
static void href_uuid(const char *href, char *out, size_t n)
{
	out[0] = '\0';
	if (!href)
		return;
	const char *q = strchr(href, '?');
	size_t len = q ? (size_t)(q - href) : strlen(href);
	const char *s = href + len;
	while (s > href && s[-1] != '/')
		s--;
	size_t tl = (size_t)(href + len - s);
	if (tl >= n)
		tl = n - 1;
	memcpy(out, s, tl);
	out[tl] = '\0';
}

static bool partition_exists(const struct pvm_scrub_facts *f, const char *uuid)
{
	char h[33], x[33];
	if (!uuid_hex(uuid, h))
		return false;
	for (size_t i = 0; i < f->n_partitions; i++)
		if (uuid_hex(f->partitions[i], x) && !strcmp(h, x))
			return true;
	return false;
}

/* The partition is the derived partition of an instance in flight. */
static bool partition_in_flight(const struct pvm_scrub_facts *f, const char *uuid)
{
	char h[33], d[37], x[33];
	if (!uuid_hex(uuid, h))
		return false;
	for (size_t i = 0; i < f->n_in_flight; i++)
		if (pvm_lpar_uuid_from_instance(f->in_flight[i], d) == 0 && uuid_hex(d, x) &&
		    !strcmp(h, x))
			return true;
	return false;
}

enum pvm_scrub_verdict pvm_scrub_judge_mapping(const struct pvm_scrub_facts *f,
                                               const struct pvm_vscsi_mapping *m, const char **why)
{
	char part[64];
	href_uuid(m->lpar_href, part, sizeof(part));
	const char *reason = NULL;
	if (!m->has_client)
		reason = "no client adapter (its partition is gone)";
	else if (part[0] && !partition_exists(f, part))
		reason = "its partition is gone";
	else if (m->storage_kind == PVM_STORAGE_NONE)
		reason = "no storage";
	if (!reason) {
		*why = "in use";
		return PVM_SCRUB_KEEP;
	}
	char prefix[33];
	if (part[0] && partition_in_flight(f, part)) {
		*why = "its partition's instance has an operation in flight";
		return PVM_SCRUB_IN_FLIGHT;
	}
	if (m->storage_name && pvm_name_instance_object(m->storage_name, prefix, sizeof(prefix)) &&
	    any_starts(f->in_flight, f->n_in_flight, prefix)) {
		*why = "its storage's instance has an operation in flight";
		return PVM_SCRUB_IN_FLIGHT;
	}
	*why = reason;
	return PVM_SCRUB_ORPHAN;
}

enum pvm_scrub_verdict pvm_scrub_judge_object(const struct pvm_scrub_facts *f,
                                              enum pvm_scrub_kind kind, const char *name,
                                              char prefix[33], const char **why)
{
	prefix[0] = '\0';
	const char *lead = kind == PVM_SCRUB_KIND_VDISK ? "b_" : "cfg_";
	if ((kind != PVM_SCRUB_KIND_VDISK && kind != PVM_SCRUB_KIND_MEDIA) || !name ||
	    strncmp(name, lead, strlen(lead)) != 0 || !pvm_name_instance_object(name, prefix, 33)) {
		prefix[0] = '\0';
		*why = "not ours";
		return PVM_SCRUB_KEEP;
	}
	/* the derived partition UUID: the top bit of the first hex digit cleared */
	char derived[33];
	memcpy(derived, prefix, strlen(prefix) + 1);
	int d0 = isdigit((unsigned char)derived[0]) ? derived[0] - '0' : derived[0] - 'a' + 10;
	derived[0] = "0123456789abcdef"[d0 & 7];
	if (any_starts(f->partitions, f->n_partitions, derived)) {
		*why = "its instance's partition exists";
		return PVM_SCRUB_KEEP;
	}
	if (any_starts(f->in_flight, f->n_in_flight, prefix)) {
		*why = "its instance has an operation in flight";
		return PVM_SCRUB_IN_FLIGHT;
	}
	if (f->nova_known && any_starts(f->nova, f->n_nova, prefix)) {
		*why = "its instance is in nova's list";
		return PVM_SCRUB_KEEP;
	}
	if (!f->nova_known) {
		*why = "no partition; nova's list not received yet";
		return PVM_SCRUB_DEFER;
	}
	*why = "no partition, not in nova's list";
	return PVM_SCRUB_ORPHAN;
}

static const char *storage_kind_text(enum pvm_storage_kind k)
{
	switch (k) {
	case PVM_STORAGE_VDISK:
		return "virtual disk";
	case PVM_STORAGE_PV:
		return "physical volume";
	case PVM_STORAGE_LU:
		return "logical unit";
	case PVM_STORAGE_VOPT:
		return "optical media";
	default:
		return "none";
	}
}

static void mapping_finding(const struct pvm_vscsi_mapping *m, size_t i,
                            struct pvm_scrub_finding *x)
{
	x->kind = PVM_SCRUB_KIND_MAPPING;
	x->index = i;
	pvm_strlcpy(x->name, m->has_server && m->server.name ? m->server.name : "?",
	            sizeof(x->name));
	href_uuid(m->lpar_href, x->partition, sizeof(x->partition));
	if (m->storage_kind == PVM_STORAGE_NONE)
		snprintf(x->storage, sizeof(x->storage), "none");
	else
		snprintf(x->storage, sizeof(x->storage), "%s %.60s",
		         storage_kind_text(m->storage_kind),
		         m->storage_name ? m->storage_name : "?");
}

/* Verdict of the mappings of v that carry storage (kind, name): KEEP when any is kept,
 * IN_FLIGHT when any is in flight, ORPHAN otherwise (none, or only orphan mappings). */
static enum pvm_scrub_verdict carriers(const enum pvm_scrub_verdict *mv, const struct pvm_vios *v,
                                       enum pvm_storage_kind kind, const char *name)
{
	enum pvm_scrub_verdict worst = PVM_SCRUB_ORPHAN;
	for (size_t i = 0; i < v->n_scsi_mappings; i++) {
		const struct pvm_vscsi_mapping *m = &v->scsi_mappings[i];
		if (m->storage_kind != kind || !m->storage_name || strcmp(m->storage_name, name))
			continue;
		if (mv[i] == PVM_SCRUB_KEEP)
			return PVM_SCRUB_KEEP;
		if (mv[i] == PVM_SCRUB_IN_FLIGHT)
			worst = PVM_SCRUB_IN_FLIGHT;
	}
	return worst;
}

int pvm_scrub_plan_vios(const struct pvm_scrub_facts *f, const struct pvm_vios *v,
                        const struct pvm_volume_group *vgs, size_t nvg,
                        struct pvm_scrub_finding **out, size_t *n)
{
	size_t cap = v->n_scsi_mappings;
	for (size_t g = 0; g < nvg; g++)
		cap += vgs[g].n_vdisks + vgs[g].n_media;
	struct pvm_scrub_finding *fs = calloc(cap + 1, sizeof(*fs));
	enum pvm_scrub_verdict *mv = calloc(v->n_scsi_mappings + 1, sizeof(*mv));
	if (!fs || !mv) {
		free(fs);
		free(mv);
		return PVM_ENOMEM;
	}
	size_t k = 0;
	for (size_t i = 0; i < v->n_scsi_mappings; i++) {
		const char *why;
		mv[i] = pvm_scrub_judge_mapping(f, &v->scsi_mappings[i], &why);
		if (mv[i] == PVM_SCRUB_KEEP)
			continue;
		struct pvm_scrub_finding *x = &fs[k++];
		mapping_finding(&v->scsi_mappings[i], i, x);
		x->verdict = mv[i];
		x->why = why;
	}
	for (size_t g = 0; g < nvg; g++) {
		const struct pvm_volume_group *vg = &vgs[g];
		for (size_t j = 0; j < vg->n_vdisks + vg->n_media; j++) {
			bool disk = j < vg->n_vdisks;
			const char *name =
			        disk ? vg->vdisks[j].name : vg->media[j - vg->n_vdisks].name;
			enum pvm_scrub_kind kind =
			        disk ? PVM_SCRUB_KIND_VDISK : PVM_SCRUB_KIND_MEDIA;
			struct pvm_scrub_finding *x = &fs[k];
			const char *why;
			enum pvm_scrub_verdict vd =
			        pvm_scrub_judge_object(f, kind, name, x->prefix, &why);
			if (vd == PVM_SCRUB_KEEP)
				continue;
			enum pvm_scrub_verdict c =
			        carriers(mv, v, disk ? PVM_STORAGE_VDISK : PVM_STORAGE_VOPT, name);
			if (c == PVM_SCRUB_KEEP)
				continue; /* mapped to a live partition: not ours to judge */
			if (c == PVM_SCRUB_IN_FLIGHT && vd != PVM_SCRUB_IN_FLIGHT) {
				vd = PVM_SCRUB_IN_FLIGHT;
				why = "mapped to a partition whose instance has an operation in "
				      "flight";
			}
			x->kind = kind;
			x->verdict = vd;
			x->why = why;
			x->group = g;
			x->index = j;
			pvm_strlcpy(x->name, name, sizeof(x->name));
			k++;
		}
	}
	free(mv);
	*out = fs;
	*n = k;
	return 0;
}

/* ---------------------------------------------------------------- the scrubber ----- */

struct strv {
	char **v;
	size_t n, cap;
};

static int strv_push(struct strv *s, const char *x)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 16;
		char **nv = realloc(s->v, nc * sizeof(*nv));
		if (!nv)
			return PVM_ENOMEM;
		s->v = nv;
		s->cap = nc;
	}
	if (!(s->v[s->n] = strdup(x)))
		return PVM_ENOMEM;
	s->n++;
	return 0;
}

static void strv_clear(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	s->n = 0;
}

static void strv_free(struct strv *s)
{
	strv_clear(s);
	free(s->v);
	s->v = NULL;
	s->cap = 0;
}

struct pvm_scrubber {
	enum pvm_scrub_mode mode;
	struct pvm_client *client;
	struct pvm_queue *queue;
	struct pvm_metrics *metrics;
	bool (*hold)(void *arg);
	void *hold_arg;
	char ms_uuid[64];
	atomic_bool stop;
	pthread_mutex_t pass_mu; /* one pass at a time */
	pthread_mutex_t mu;      /* guards what follows */
	pthread_cond_t cv;
	struct strv nova; /* nova's instance UUIDs (lower case) */
	bool nova_known;
	int64_t nova_ms;
	bool pending, running, started;
	uint64_t passes;
	json_t *last; /* the last pass's report */
	pthread_t thread;
};

static const char *const families[][3] = {
        {"powervmd_scrub_runs_total", "c", "Scrub passes run (start-up and after nova's list)"},
        {"powervmd_scrub_found_total", "c",
         "Orphans found by the scrub, by kind (mapping, vdisk, media), deferred ones included"},
        {"powervmd_scrub_removed_total", "c", "Orphans removed by the scrub, by kind"},
        {"powervmd_scrub_in_flight_total", "c",
         "Would-be orphans kept because their instance has an operation in flight"},
        {"powervmd_scrub_errors_total", "c", "Scrub reads or removals that failed"},
        {"powervmd_scrub_last_run_timestamp_seconds", "g", "When the last scrub pass ended"},
        {"powervmd_scrub_last_run_seconds", "g", "How long the last scrub pass took"},
};

int pvm_scrubber_create(const struct pvm_scrubber_opts *o, struct pvm_scrubber **out)
{
	if (!o || !o->client || !o->queue || !o->ms_uuid || !o->ms_uuid[0])
		return PVM_EINVAL;
	struct pvm_scrubber *s = calloc(1, sizeof(*s));
	if (!s)
		return PVM_ENOMEM;
	s->mode = o->mode;
	s->client = o->client;
	s->queue = o->queue;
	s->metrics = o->metrics;
	s->hold = o->hold;
	s->hold_arg = o->hold_arg;
	pvm_strlcpy(s->ms_uuid, o->ms_uuid, sizeof(s->ms_uuid));
	pthread_mutex_init(&s->pass_mu, NULL);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (s->metrics) {
		for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
			pvm_metrics_describe(s->metrics, families[i][0],
			                     families[i][1][0] == 'c' ? PVM_METRIC_COUNTER
			                                              : PVM_METRIC_GAUGE,
			                     families[i][2]);
		pvm_metrics_inc(s->metrics, "powervmd_scrub_runs_total", NULL, 0);
		pvm_metrics_inc(s->metrics, "powervmd_scrub_errors_total", NULL, 0);
		for (int k = 0; k < PVM_SCRUB_KIND_COUNT; k++) {
			char l[32];
			snprintf(l, sizeof(l), "kind=\"%s\"", pvm_scrub_kind_name(k));
			pvm_metrics_inc(s->metrics, "powervmd_scrub_found_total", l, 0);
			pvm_metrics_inc(s->metrics, "powervmd_scrub_removed_total", l, 0);
			pvm_metrics_inc(s->metrics, "powervmd_scrub_in_flight_total", l, 0);
		}
	}
	*out = s;
	return 0;
}

/* One pass's state. */
struct pass {
	struct pvm_scrubber *s;
	const char *trigger;
	bool remove; /* mode on */
	int64_t start_ms;
	struct strv a0;    /* instances in flight when the pass started */
	struct strv parts; /* partitions, refreshed before each change */
	struct strv fly;   /* a0 + instances in flight now, refreshed with parts */
	struct strv nova;
	bool nova_known;
	struct pvm_scrub_facts facts;
	size_t found[PVM_SCRUB_KIND_COUNT], removed[PVM_SCRUB_KIND_COUNT],
	        in_flight[PVM_SCRUB_KIND_COUNT], deferred;
	size_t errors;
	int first_err;
	json_t *findings;
	json_t *errs;
};

static void pass_error(struct pass *p, int rc, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void pass_error(struct pass *p, int rc, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pvm_error("scrub: %s", msg);
	p->errors++;
	if (!p->first_err)
		p->first_err = rc ? rc : PVM_EIO;
	json_array_append_new(p->errs, json_string(msg));
}

static const char *rest_msg(const struct pvm_rest_error *e, int rc)
{
	return e->message[0] ? e->message : pvm_strerror(rc);
}

static int read_in_flight(struct pvm_queue *q, struct strv *out)
{
	for (int st = 0; st < PVM_OP_STATE_COUNT; st++) {
		if (!pvm_op_state_active((enum pvm_op_state)st))
			continue;
		struct pvm_queue_filter f = {.state = st};
		struct pvm_op **ops = NULL;
		size_t n = 0;
		int rc = pvm_queue_list(q, &f, &ops, &n, NULL);
		for (size_t i = 0; rc == 0 && i < n; i++)
			if (ops[i]->instance_uuid[0])
				rc = strv_push(out, ops[i]->instance_uuid);
		pvm_op_list_free(ops, n);
		if (rc)
			return rc;
	}
	return 0;
}

static int read_partitions(struct pvm_scrubber *s, struct strv *out, struct pvm_rest_error *err)
{
	char path[128];
	snprintf(path, sizeof(path), "uom/ManagedSystem/%s/LogicalPartition", s->ms_uuid);
	struct pvm_resp resp = {0};
	struct pvm_lpar_list *l = NULL;
	int rc = pvm_client_get(s->client, path, NULL, NULL, &resp, err);
	if (rc == 0)
		rc = pvm_parse_lpar(resp.body, resp.len, NULL, &l, err);
	pvm_resp_fini(&resp);
	for (size_t i = 0; rc == 0 && i < l->count; i++)
		if (l->items[i].meta.uuid)
			rc = strv_push(out, l->items[i].meta.uuid);
	pvm_lpar_list_free(l);
	return rc;
}

static void facts_update(struct pass *p)
{
	p->facts = (struct pvm_scrub_facts){
	        .partitions = (const char *const *)p->parts.v,
	        .n_partitions = p->parts.n,
	        .in_flight = (const char *const *)p->fly.v,
	        .n_in_flight = p->fly.n,
	        .nova_known = p->nova_known,
	        .nova = (const char *const *)p->nova.v,
	        .n_nova = p->nova.n,
	};
}

/* Re-reads the partitions and the operations in flight (before each change). */
static int refresh(struct pass *p, struct pvm_rest_error *err)
{
	if (atomic_load(&p->s->stop))
		return PVM_ECLOSED;
	struct strv parts = {0}, fly = {0};
	int rc = read_partitions(p->s, &parts, err);
	if (rc == 0)
		rc = read_in_flight(p->s->queue, &fly);
	for (size_t i = 0; rc == 0 && i < p->a0.n; i++)
		rc = strv_push(&fly, p->a0.v[i]);
	if (rc) {
		strv_free(&parts);
		strv_free(&fly);
		return rc;
	}
	strv_free(&p->parts);
	strv_free(&p->fly);
	p->parts = parts;
	p->fly = fly;
	facts_update(p);
	return 0;
}

static const char *kind_text(enum pvm_scrub_kind k)
{
	return k == PVM_SCRUB_KIND_VDISK   ? "virtual disk"
	       : k == PVM_SCRUB_KIND_MEDIA ? "media"
	                                   : "mapping";
}

/* "vhost2|PARTITION|virtual disk b_..." : a mapping's identity across re-reads. */
static void mapping_id(const struct pvm_scrub_finding *x, char *out, size_t n)
{
	snprintf(out, n, "%s|%s|%s", x->name, x->partition, x->storage);
}

struct vios_change {
	struct pass *p;
	struct strv removed; /* identities of the mappings the last body removes */
	bool nothing;        /* the change found nothing (left) to remove */
	struct pvm_rest_error err;
};

static int vios_change(void *arg, const char *entry, size_t len, char **body)
{
	struct vios_change *vc = arg;
	struct pass *p = vc->p;
	strv_clear(&vc->removed);
	int rc = refresh(p, &vc->err);
	struct pvm_vios_list *l = NULL;
	if (rc == 0)
		rc = pvm_parse_vios(entry, len, NULL, &l, &vc->err);
	if (rc == 0 && l->count != 1)
		rc = PVM_ECORRUPT;
	size_t *idx = NULL, n = 0;
	if (rc == 0 && !(idx = calloc(l->items[0].n_scsi_mappings + 1, sizeof(*idx))))
		rc = PVM_ENOMEM;
	for (size_t i = 0; rc == 0 && i < l->items[0].n_scsi_mappings; i++) {
		const char *why;
		const struct pvm_vscsi_mapping *m = &l->items[0].scsi_mappings[i];
		if (pvm_scrub_judge_mapping(&p->facts, m, &why) != PVM_SCRUB_ORPHAN)
			continue;
		struct pvm_scrub_finding x = {0};
		char id[256];
		mapping_finding(m, i, &x);
		mapping_id(&x, id, sizeof(id));
		idx[n++] = i;
		rc = strv_push(&vc->removed, id);
	}
	vc->nothing = rc == 0 && n == 0;
	if (vc->nothing)
		rc = PVM_ENOTFOUND; /* nothing (left) to remove: no request */
	if (rc == 0 && !(*body = pvm_build_vios_remove_scsi_at(entry, len, idx, n, &vc->err)))
		rc = vc->err.code ? vc->err.code : PVM_ENOMEM;
	free(idx);
	pvm_vios_list_free(l);
	return rc;
}

struct vg_change {
	struct pass *p;
	const struct pvm_scrub_finding *fs; /* the findings of this VIOS */
	size_t nf;
	size_t group;
	struct strv disks, media; /* what the last body removes */
	bool nothing;             /* the change found nothing (left) to remove */
	struct pvm_rest_error err;
};

static bool vg_has(const struct pvm_volume_group *vg, enum pvm_scrub_kind k, const char *name)
{
	size_t n = k == PVM_SCRUB_KIND_VDISK ? vg->n_vdisks : vg->n_media;
	for (size_t i = 0; i < n; i++) {
		const char *x = k == PVM_SCRUB_KIND_VDISK ? vg->vdisks[i].name : vg->media[i].name;
		if (x && !strcmp(x, name))
			return true;
	}
	return false;
}

static int vg_change(void *arg, const char *entry, size_t len, char **body)
{
	struct vg_change *gc = arg;
	struct pass *p = gc->p;
	strv_clear(&gc->disks);
	strv_clear(&gc->media);
	int rc = refresh(p, &gc->err);
	struct pvm_volume_group_list *l = NULL;
	if (rc == 0)
		rc = pvm_parse_volume_group(entry, len, NULL, &l, &gc->err);
	if (rc == 0 && l->count != 1)
		rc = PVM_ECORRUPT;
	for (size_t i = 0; rc == 0 && i < gc->nf; i++) {
		const struct pvm_scrub_finding *x = &gc->fs[i];
		if (x->kind == PVM_SCRUB_KIND_MAPPING || x->group != gc->group ||
		    x->verdict != PVM_SCRUB_ORPHAN || !vg_has(&l->items[0], x->kind, x->name))
			continue;
		char prefix[33];
		const char *why;
		if (pvm_scrub_judge_object(&p->facts, x->kind, x->name, prefix, &why) !=
		    PVM_SCRUB_ORPHAN) {
			pvm_info("scrub: %s %s is no longer an orphan (%s): kept",
			         kind_text(x->kind), x->name, why);
			continue;
		}
		rc = strv_push(x->kind == PVM_SCRUB_KIND_VDISK ? &gc->disks : &gc->media, x->name);
	}
	gc->nothing = rc == 0 && gc->disks.n + gc->media.n == 0;
	if (gc->nothing)
		rc = PVM_ENOTFOUND;
	size_t removed = 0;
	if (rc == 0 &&
	    !(*body = pvm_build_vg_remove_objects(entry, len, (const char *const *)gc->disks.v,
	                                          gc->disks.n, (const char *const *)gc->media.v,
	                                          gc->media.n, &removed, &gc->err)))
		rc = gc->err.code ? gc->err.code : PVM_ENOMEM;
	pvm_volume_group_list_free(l);
	return rc;
}

static void set_action(json_t *fj, const char *action)
{
	json_object_set_new(fj, "action", json_string(action));
}

static bool in_strv(const struct strv *s, const char *x)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], x))
			return true;
	return false;
}

/* Plans one VIOS, reports its findings, and (mode on) removes its orphans. */
static void scrub_vios(struct pass *p, const struct pvm_vios *v,
                       const struct pvm_volume_group_list *vgl)
{
	const char *vname = v->lpar.name ? v->lpar.name : "?";
	const struct pvm_volume_group *vgs = vgl ? vgl->items : NULL;
	size_t nvg = vgl ? vgl->count : 0;
	struct pvm_scrub_finding *fs = NULL;
	size_t nf = 0;
	if (pvm_scrub_plan_vios(&p->facts, v, vgs, nvg, &fs, &nf)) {
		pass_error(p, PVM_ENOMEM, "planning %s: out of memory", vname);
		return;
	}
	json_t **fj = calloc(nf + 1, sizeof(*fj));
	if (!fj) {
		free(fs);
		pass_error(p, PVM_ENOMEM, "planning %s: out of memory", vname);
		return;
	}
	size_t orphan_maps = 0, orphan_objs = 0;
	for (size_t i = 0; i < nf; i++) {
		const struct pvm_scrub_finding *x = &fs[i];
		const char *gname = x->kind == PVM_SCRUB_KIND_MAPPING ? ""
		                    : vgs[x->group].name              ? vgs[x->group].name
		                                                      : "?";
		fj[i] = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kind",
		                  pvm_scrub_kind_name(x->kind), "vios", vname, "name", x->name,
		                  "verdict", pvm_scrub_verdict_name(x->verdict), "reason", x->why,
		                  "action", "");
		if (x->kind == PVM_SCRUB_KIND_MAPPING) {
			json_object_set_new(fj[i], "partition", json_string(x->partition));
			json_object_set_new(fj[i], "storage", json_string(x->storage));
		} else {
			json_object_set_new(fj[i], "group", json_string(gname));
			json_object_set_new(fj[i], "instance_prefix", json_string(x->prefix));
		}
		json_array_append(p->findings, fj[i]);
		char what[256];
		if (x->kind == PVM_SCRUB_KIND_MAPPING)
			snprintf(what, sizeof(what),
			         "vSCSI mapping %s on %s (partition %s, storage %s)", x->name,
			         vname, x->partition[0] ? x->partition : "none", x->storage);
		else
			snprintf(what, sizeof(what), "%s %s of instance prefix %s on %s/%s",
			         kind_text(x->kind), x->name, x->prefix, vname, gname);
		switch (x->verdict) {
		case PVM_SCRUB_ORPHAN:
			p->found[x->kind]++;
			if (x->kind == PVM_SCRUB_KIND_MAPPING)
				orphan_maps++;
			else
				orphan_objs++;
			if (!p->remove) {
				pvm_info("scrub: would remove %s: %s", what, x->why);
				set_action(fj[i], "would remove");
			}
			break;
		case PVM_SCRUB_DEFER:
			p->found[x->kind]++;
			p->deferred++;
			if (p->remove)
				pvm_info("scrub: found %s: %s; kept until nova's list is known "
				         "(POST "
				         "/v1/reconcile)",
				         what, x->why);
			else
				pvm_info("scrub: would remove %s once nova's list confirms it: %s",
				         what, x->why);
			set_action(fj[i], "kept until nova's list is known");
			break;
		case PVM_SCRUB_IN_FLIGHT:
			p->in_flight[x->kind]++;
			pvm_info("scrub: keeping %s: %s", what, x->why);
			set_action(fj[i], "kept: operation in flight");
			break;
		default:
			break;
		}
	}
	if (!p->remove || atomic_load(&p->s->stop))
		goto out;
	/* 1. the mappings, in one update of the VIOS */
	bool maps_ok = true;
	if (orphan_maps) {
		struct vios_change vc = {.p = p};
		char path[128];
		snprintf(path, sizeof(path), "uom/VirtualIOServer/%s", v->lpar.meta.uuid);
		struct pvm_update u = {
		        .path = path,
		        .query = "group=ViosSCSIMapping",
		        .content_type = "application/vnd.ibm.powervm.uom+xml; type=VirtualIOServer",
		        .change = vios_change,
		        .arg = &vc,
		};
		struct pvm_resp resp = {0};
		struct pvm_rest_error err = {0};
		int rc = pvm_client_update(p->s->client, &u, &resp, &err);
		pvm_resp_fini(&resp);
		if (rc && vc.nothing) {
			strv_clear(&vc.removed);
		} else if (rc) {
			maps_ok = false;
			strv_clear(&vc.removed);
			pass_error(p, rc, "removing the orphan mappings of %s: %s", vname,
			           vc.err.message[0] ? vc.err.message : rest_msg(&err, rc));
		}
		for (size_t i = 0; i < nf; i++) {
			const struct pvm_scrub_finding *x = &fs[i];
			char id[256];
			if (x->kind != PVM_SCRUB_KIND_MAPPING || x->verdict != PVM_SCRUB_ORPHAN)
				continue;
			mapping_id(x, id, sizeof(id));
			if (in_strv(&vc.removed, id)) {
				p->removed[PVM_SCRUB_KIND_MAPPING]++;
				set_action(fj[i], "removed");
				pvm_info("scrub: removed vSCSI mapping %s on %s (partition %s, "
				         "storage %s): %s",
				         x->name, vname, x->partition[0] ? x->partition : "none",
				         x->storage, x->why);
			} else {
				set_action(fj[i], maps_ok ? "kept: no longer an orphan" : "failed");
			}
		}
		strv_free(&vc.removed);
	}
	/* 2. the disks and media, one update per volume group */
	for (size_t g = 0; g < nvg && orphan_objs; g++) {
		bool any = false;
		for (size_t i = 0; i < nf && !any; i++)
			any = fs[i].kind != PVM_SCRUB_KIND_MAPPING && fs[i].group == g &&
			      fs[i].verdict == PVM_SCRUB_ORPHAN;
		if (!any || atomic_load(&p->s->stop))
			continue;
		struct vg_change gc = {.p = p, .fs = fs, .nf = nf, .group = g};
		char path[256];
		snprintf(path, sizeof(path), "uom/VirtualIOServer/%s/VolumeGroup/%s",
		         v->lpar.meta.uuid, vgs[g].meta.uuid ? vgs[g].meta.uuid : "");
		struct pvm_update u = {
		        .path = path,
		        .content_type = "application/vnd.ibm.powervm.uom+xml; type=VolumeGroup",
		        .change = vg_change,
		        .arg = &gc,
		};
		struct pvm_resp resp = {0};
		struct pvm_rest_error err = {0};
		int rc = pvm_client_update(p->s->client, &u, &resp, &err);
		pvm_resp_fini(&resp);
		bool ok = rc == 0;
		if (rc && gc.nothing) {
			strv_clear(&gc.disks);
			strv_clear(&gc.media);
		} else if (rc) {
			pass_error(p, rc, "removing orphan disks and media of %s/%s%s: %s", vname,
			           vgs[g].name ? vgs[g].name : "?",
			           maps_ok ? "" : " (their mappings could not be removed first)",
			           gc.err.message[0] ? gc.err.message : rest_msg(&err, rc));
		}
		for (size_t i = 0; i < nf; i++) {
			const struct pvm_scrub_finding *x = &fs[i];
			if (x->kind == PVM_SCRUB_KIND_MAPPING || x->group != g ||
			    x->verdict != PVM_SCRUB_ORPHAN)
				continue;
			bool done = ok &&
			            in_strv(x->kind == PVM_SCRUB_KIND_VDISK ? &gc.disks : &gc.media,
			                    x->name);
			if (done) {
				p->removed[x->kind]++;
				set_action(fj[i], "removed");
				pvm_info("scrub: removed %s %s of instance prefix %s on %s/%s: %s",
				         kind_text(x->kind), x->name, x->prefix, vname,
				         vgs[g].name ? vgs[g].name : "?", x->why);
			} else {
				set_action(fj[i], rc && !gc.nothing ? "failed"
				                                    : "kept: no longer an orphan");
			}
		}
		strv_free(&gc.disks);
		strv_free(&gc.media);
	}
out:
	for (size_t i = 0; i < nf; i++)
		json_decref(fj[i]);
	free(fj);
	free(fs);
}

static json_t *counts_json(const size_t *c)
{
	json_t *o = json_object();
	for (int k = 0; k < PVM_SCRUB_KIND_COUNT; k++)
		json_object_set_new(o, pvm_scrub_kind_name(k), json_integer((json_int_t)c[k]));
	return o;
}

static const char *mode_name(enum pvm_scrub_mode m)
{
	return m == PVM_SCRUB_ON ? "on" : m == PVM_SCRUB_DRY_RUN ? "dry-run" : "off";
}

/* Reads everything, then scrubs each VIOS. */
static void pass_body(struct pass *p, size_t *nvios)
{
	struct pvm_scrubber *s = p->s;
	struct pvm_rest_error err = {0};
	struct pvm_resp resp = {0};
	struct pvm_vios_list *vl = NULL;
	struct pvm_volume_group_list **vgls = NULL;
	int rc = read_in_flight(s->queue, &p->a0);
	if (rc) {
		pass_error(p, rc, "reading the journal: %s", pvm_strerror(rc));
		return;
	}
	char path[256];
	snprintf(path, sizeof(path), "uom/ManagedSystem/%s/VirtualIOServer", s->ms_uuid);
	rc = pvm_client_get(s->client, path, "group=ViosSCSIMapping", NULL, &resp, &err);
	if (rc == 0)
		rc = pvm_parse_vios(resp.body, resp.len, NULL, &vl, &err);
	pvm_resp_fini(&resp);
	if (rc) {
		pass_error(p, rc, "reading the VIOSes of %s: %s", s->ms_uuid, rest_msg(&err, rc));
		return;
	}
	*nvios = vl->count;
	vgls = calloc(vl->count + 1, sizeof(*vgls));
	if (!vgls) {
		pass_error(p, PVM_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < vl->count; i++) {
		const struct pvm_vios *v = &vl->items[i];
		if (!v->lpar.meta.uuid) {
			pass_error(p, PVM_ECORRUPT, "a VIOS of %s has no UUID", s->ms_uuid);
			goto out;
		}
		snprintf(path, sizeof(path), "uom/VirtualIOServer/%s/VolumeGroup",
		         v->lpar.meta.uuid);
		memset(&err, 0, sizeof(err));
		rc = pvm_client_get(s->client, path, NULL, NULL, &resp, &err);
		if (rc == 0)
			rc = pvm_parse_volume_group(resp.body, resp.len, NULL, &vgls[i], &err);
		pvm_resp_fini(&resp);
		if (rc) {
			pass_error(p, rc, "reading the volume groups of %s: %s",
			           v->lpar.name ? v->lpar.name : v->lpar.meta.uuid,
			           rest_msg(&err, rc));
			goto out;
		}
	}
	/* The journal again, after the reads: an operation that created one of the objects
	 * just read was submitted before the read. */
	if ((rc = refresh(p, &err))) {
		pass_error(p, rc, "reading the partitions of %s: %s", s->ms_uuid,
		           rest_msg(&err, rc));
		goto out;
	}
	for (size_t i = 0; i < vl->count && !atomic_load(&s->stop); i++)
		scrub_vios(p, &vl->items[i], vgls[i]);
out:
	for (size_t i = 0; vgls && i < vl->count; i++)
		pvm_volume_group_list_free(vgls[i]);
	free(vgls);
	pvm_vios_list_free(vl);
}

int pvm_scrubber_run(struct pvm_scrubber *s, const char *trigger)
{
	if (!s || s->mode == PVM_SCRUB_OFF)
		return 0;
	pthread_mutex_lock(&s->pass_mu);
	struct pass p = {.s = s, .trigger = trigger, .remove = s->mode == PVM_SCRUB_ON};
	bool held = p.remove && s->hold && s->hold(s->hold_arg);
	if (held) {
		p.remove = false;
		pvm_info("scrub: powervmd is paused: this pass only reports (as dry-run); resume, "
		         "then a later pass removes");
	}
	p.findings = json_array();
	p.errs = json_array();
	p.start_ms = pvm_now_ms();
	int64_t t0 = pvm_mono_ns();
	pthread_mutex_lock(&s->mu);
	s->running = true;
	p.nova_known = s->nova_known;
	for (size_t i = 0; i < s->nova.n; i++)
		strv_push(&p.nova, s->nova.v[i]);
	int64_t nova_ms = s->nova_ms;
	pthread_mutex_unlock(&s->mu);
	facts_update(&p);

	size_t nvios = 0;
	pass_body(&p, &nvios);

	double secs = (double)(pvm_mono_ns() - t0) / 1e9;
	size_t found = 0, removed = 0, fly = 0;
	for (int k = 0; k < PVM_SCRUB_KIND_COUNT; k++) {
		found += p.found[k];
		removed += p.removed[k];
		fly += p.in_flight[k];
		if (s->metrics) {
			char l[32];
			snprintf(l, sizeof(l), "kind=\"%s\"", pvm_scrub_kind_name(k));
			pvm_metrics_inc(s->metrics, "powervmd_scrub_found_total", l,
			                (double)p.found[k]);
			pvm_metrics_inc(s->metrics, "powervmd_scrub_removed_total", l,
			                (double)p.removed[k]);
			pvm_metrics_inc(s->metrics, "powervmd_scrub_in_flight_total", l,
			                (double)p.in_flight[k]);
		}
	}
	if (s->metrics) {
		pvm_metrics_inc(s->metrics, "powervmd_scrub_runs_total", NULL, 1);
		pvm_metrics_inc(s->metrics, "powervmd_scrub_errors_total", NULL, (double)p.errors);
		pvm_metrics_set(s->metrics, "powervmd_scrub_last_run_timestamp_seconds", NULL,
		                (double)pvm_now_ms() / 1000.0);
		pvm_metrics_set(s->metrics, "powervmd_scrub_last_run_seconds", NULL, secs);
	}
	pvm_log(p.errors ? PVM_LOG_WARNING : PVM_LOG_INFO, NULL,
	        "scrub (%s, %s): %zu VIOS; found %zu mappings, %zu virtual disks, %zu media (%zu "
	        "deferred until nova's list is known); %zu kept for operations in flight; "
	        "removed %zu; %zu errors; %.3f s",
	        trigger, mode_name(s->mode), nvios, p.found[PVM_SCRUB_KIND_MAPPING],
	        p.found[PVM_SCRUB_KIND_VDISK], p.found[PVM_SCRUB_KIND_MEDIA], p.deferred, fly,
	        removed, p.errors, secs);
	char started[32], ended[32], novat[32];
	pvm_fmt_time(p.start_ms, started, sizeof(started));
	pvm_fmt_time(pvm_now_ms(), ended, sizeof(ended));
	json_t *rep = json_pack(
	        "{s:s, s:s, s:s, s:s, s:f, s:b, s:I, s:I, s:o, s:o, s:o, s:I, s:I, s:o, s:o}",
	        "trigger", trigger, "mode", mode_name(s->mode), "started", started, "finished",
	        ended, "seconds", secs, "nova_list_known", (int)p.nova_known, "nova_instances",
	        (json_int_t)p.nova.n, "vios", (json_int_t)nvios, "found", counts_json(p.found),
	        "removed", counts_json(p.removed), "in_flight", counts_json(p.in_flight),
	        "deferred", (json_int_t)p.deferred, "errors", (json_int_t)p.errors,
	        "error_messages", p.errs, "findings", p.findings);
	if (rep)
		json_object_set_new(rep, "held", json_boolean(held));
	if (rep && p.nova_known)
		json_object_set_new(rep, "nova_list_received",
		                    json_string(pvm_fmt_time(nova_ms, novat, sizeof(novat))));
	pthread_mutex_lock(&s->mu);
	s->running = false;
	s->passes++;
	if (rep) {
		json_decref(s->last);
		s->last = rep;
	}
	pthread_mutex_unlock(&s->mu);
	strv_free(&p.a0);
	strv_free(&p.parts);
	strv_free(&p.fly);
	strv_free(&p.nova);
	int rc = p.first_err;
	pthread_mutex_unlock(&s->pass_mu);
	return rc;
}

static void *thread_main(void *arg)
{
	struct pvm_scrubber *s = arg;
	pthread_setname_np(pthread_self(), "pvm-scrub");
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->pending && !atomic_load(&s->stop))
			pthread_cond_wait(&s->cv, &s->mu);
		if (atomic_load(&s->stop))
			break;
		s->pending = false;
		pthread_mutex_unlock(&s->mu);
		pvm_scrubber_run(s, "reconcile");
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int pvm_scrubber_start(struct pvm_scrubber *s)
{
	if (!s || s->mode == PVM_SCRUB_OFF || s->started)
		return 0;
	int rc = pthread_create(&s->thread, NULL, thread_main, s);
	if (rc)
		return -rc;
	s->started = true;
	return 0;
}

void pvm_scrubber_nova_list(struct pvm_scrubber *s, const json_t *view)
{
	if (!s || s->mode == PVM_SCRUB_OFF)
		return;
	json_t *insts = json_object_get(view, "instances"), *it;
	size_t i;
	struct strv nv = {0};
	json_array_foreach(insts, i, it)
	{
		const char *u = json_string_value(json_object_get(it, "uuid"));
		char low[40];
		if (!u || !pvm_is_uuid(u))
			continue;
		pvm_strlcpy(low, u, sizeof(low));
		for (char *c = low; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		if (strv_push(&nv, low)) {
			strv_free(&nv);
			pvm_error("scrub: out of memory keeping nova's list");
			return;
		}
	}
	pthread_mutex_lock(&s->mu);
	strv_free(&s->nova);
	s->nova = nv;
	s->nova_known = true;
	s->nova_ms = pvm_now_ms();
	s->pending = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pvm_info("scrub: nova's list received (%zu instances); a scrub pass follows", nv.n);
}

json_t *pvm_scrubber_report(struct pvm_scrubber *s)
{
	if (!s)
		return json_pack("{s:s, s:I, s:b, s:{s:b}, s:n}", "mode", "off", "passes",
		                 (json_int_t)0, "running", 0, "nova_list", "known", 0, "last");
	pthread_mutex_lock(&s->mu);
	char t[32] = "";
	if (s->nova_known)
		pvm_fmt_time(s->nova_ms, t, sizeof(t));
	json_t *nova = s->nova_known ? json_pack("{s:b, s:I, s:s}", "known", 1, "instances",
	                                         (json_int_t)s->nova.n, "received", t)
	                             : json_pack("{s:b}", "known", 0);
	json_t *r = json_pack("{s:s, s:I, s:b, s:b, s:o, s:O?}", "mode", mode_name(s->mode),
	                      "passes", (json_int_t)s->passes, "running", (int)s->running,
	                      "pending", (int)s->pending, "nova_list", nova, "last", s->last);
	if (r && !s->last)
		json_object_set_new(r, "last", json_null());
	pthread_mutex_unlock(&s->mu);
	return r;
}

void pvm_scrubber_destroy(struct pvm_scrubber *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	atomic_store(&s->stop, true);
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	if (s->started)
		pthread_join(s->thread, NULL);
	strv_free(&s->nova);
	json_decref(s->last);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->pass_mu);
	free(s);
}
