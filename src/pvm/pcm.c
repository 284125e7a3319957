/* pcm.c: the performance-monitoring (pcm) documents the host's CPU statistics need: the
 * ManagedSystemPcmPreference (long-term monitoring switched on by POSTing it back) and the
 * LongTermMonitor feed, whose entries link to the JSON samples (pvm_objects.h). */
#include "internal.h"

#include "pvm/buf.h"
#include "pvm/error.h"
#include "pvm/pvm_objects.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PCM "http://www.ibm.com/xmlns/systems/power/firmware/pcm/mc/2012_10/"

static const char *attr(const struct xn *n, const char *name)
{
	for (const struct xattr *a = n ? n->attrs : NULL; a; a = a->next)
		if (strcmp(a->name, name) == 0)
			return a->value;
	return NULL;
}

int pvm_parse_ltm_feed(const char *xml, size_t len, struct pvm_ltm_list **out,
                       struct pvm_rest_error *err)
{
	*out = NULL;
	struct pvm_ltm_list *l = calloc(1, sizeof(*l));
	if (!l)
		return perr(err, PVM_ENOMEM, 0, "out of memory");
	if (!xml || len == 0) { /* 204: monitoring off, or no sample yet */
		*out = l;
		return 0;
	}
	struct xdoc *d = NULL;
	int rc = xml_parse(xml, len, 0, true, NULL, &d, err);
	if (rc) {
		free(l);
		return rc;
	}
	l->doc_ = d;
	if (!d->root || strcmp(d->root->name, "feed") != 0) {
		char root[64]; /* the tree goes with the list */
		snprintf(root, sizeof(root), "%s", d->root ? d->root->name : "?");
		pvm_ltm_list_free(l);
		return perr(err, PVM_ECORRUPT, 0,
		            "LongTermMonitor: expected an Atom feed, not <%s>", root);
	}
	size_t n = xn_count(d->root, "entry");
	l->items = n ? arena_alloc(d->arena, n * sizeof(*l->items)) : NULL;
	if (n && !l->items) {
		pvm_ltm_list_free(l);
		return perr(err, PVM_ENOMEM, 0, "out of memory");
	}
	for (struct xn *e = xn_child(d->root, "entry"); e; e = xn_next(e, "entry")) {
		struct pvm_ltm_sample *s = &l->items[l->count];
		s->title = xn_text(e, "title");
		s->updated = xn_text(e, "updated");
		for (struct xn *k = xn_child(e, "link"); k; k = xn_next(k, "link"))
			if (k->href)
				s->href = k->href;
		s->category = attr(xn_child(e, "category"), "term");
		if (!s->href || !s->title) {
			int line = e->line;
			const char *what = s->href ? "title" : "link"; /* read before the free */
			pvm_ltm_list_free(l);
			return perr(err, PVM_ECORRUPT, 0,
			            "LongTermMonitor: the entry at line %d has no %s", line, what);
		}
		l->count++;
	}
	*out = l;
	return 0;
}

void pvm_ltm_list_free(struct pvm_ltm_list *l)
{
	if (!l)
		return;
	xml_free(l->doc_);
	free(l);
}

char *pvm_build_pcm_ltm_enable(const char *body, size_t len, bool *changed,
                               struct pvm_rest_error *err)
{
	struct xdoc *d = NULL;
	*changed = false;
	if (xml_parse(body ? body : "", body ? len : 0, 0, true, NULL, &d, err))
		return NULL;
	struct xn *o = d->root;
	if (o && strcmp(o->name, "feed") == 0)
		o = xn_child(o, "entry");
	if (o && strcmp(o->name, "entry") == 0)
		o = xn_entry_object(o);
	if (!o || strcmp(o->name, "ManagedSystemPcmPreference") != 0) {
		xml_free(d);
		perr(err, PVM_ECORRUPT, 0, "expected a ManagedSystemPcmPreference");
		return NULL;
	}
	static const char *const flags[] = {"LongTermMonitorEnabled", "AggregationEnabled"};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		struct xn *x = xn_child(o, flags[i]);
		if (!x || x->child) {
			xml_free(d);
			perr(err, PVM_ECORRUPT, 0, "ManagedSystemPcmPreference: missing %s",
			     flags[i]);
			return NULL;
		}
		if (strcmp(x->text ? x->text : "", "true") != 0) {
			*changed = true;
			if (xn_set_text(d, x, "true")) {
				xml_free(d);
				perr(err, PVM_ENOMEM, 0, "out of memory");
				return NULL;
			}
		}
	}
	struct pvm_buf b;
	pvm_buf_init(&b);
	xml_write(&b, o, NS_PCM, true);
	xml_free(d);
	char *s = pvm_buf_take(&b);
	if (!s)
		perr(err, PVM_ENOMEM, 0, "out of memory");
	return s;
}
