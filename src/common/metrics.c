/* metrics.c: the Prometheus registry of pvm/metrics.h.
 *
 * DESIGN: one mutex guards every family and series; updates are a lookup plus an add, so
 * the lock is held for microseconds. Families and series live in growing arrays searched
 * linearly: a daemon has a few dozen families of a few dozen series each, and insertion
 * order is the render order, which keeps /metrics stable between scrapes. Rendering copies
 * nothing: it formats under the lock into one growing buffer. Collectors run before that,
 * outside the registry lock but under render_mu, so two scrapes never interleave them.
 */
#include "pvm/metrics.h"

#include "pvm/buf.h"

#include "pvm/error.h"
#include "pvm/log.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double pvm_metrics_buckets[PVM_METRICS_BUCKETS] = {
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};

struct series {
	char *labels;
	double value;                          /* counter, gauge; histogram: sum */
	uint64_t count;                        /* histogram */
	uint64_t buckets[PVM_METRICS_BUCKETS]; /* histogram, not cumulative */
};

struct family {
	char *name;
	char *help;
	enum pvm_metric_kind kind;
	bool kind_warned;
	struct series **series;
	size_t nseries, capseries;
};

struct collector {
	pvm_metrics_collector_fn fn;
	void *arg;
};

struct pvm_metrics {
	pthread_mutex_t mu; /* guards families and collectors */
	struct family **families;
	size_t nfamilies, capfamilies;
	struct collector *collectors;
	size_t ncollectors, capcollectors;
	pthread_mutex_t render_mu; /* one render (and its collectors) at a time; before mu */
};

int pvm_metrics_create(struct pvm_metrics **out)
{
	struct pvm_metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return PVM_ENOMEM;
	pthread_mutex_init(&m->mu, NULL);
	pthread_mutex_init(&m->render_mu, NULL);
	*out = m;
	return 0;
}

static void family_free(struct family *f)
{
	for (size_t i = 0; i < f->nseries; i++) {
		free(f->series[i]->labels);
		free(f->series[i]);
	}
	free(f->series);
	free(f->name);
	free(f->help);
	free(f);
}

void pvm_metrics_destroy(struct pvm_metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nfamilies; i++)
		family_free(m->families[i]);
	free(m->families);
	free(m->collectors);
	pthread_mutex_destroy(&m->mu);
	pthread_mutex_destroy(&m->render_mu);
	free(m);
}

static bool name_ok(const char *name)
{
	if (!name || !name[0] || isdigit((unsigned char)name[0]))
		return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != ':')
			return false;
	return true;
}

static bool grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return true;
	size_t ncap = *cap ? *cap * 2 : 8;
	void *p = realloc(*arr, ncap * elem);
	if (!p)
		return false;
	*arr = p;
	*cap = ncap;
	return true;
}

/* Caller holds m->mu. */
static struct family *family_find(struct pvm_metrics *m, const char *name)
{
	for (size_t i = 0; i < m->nfamilies; i++)
		if (strcmp(m->families[i]->name, name) == 0)
			return m->families[i];
	return NULL;
}

/* Caller holds m->mu. */
static struct family *family_add(struct pvm_metrics *m, const char *name, enum pvm_metric_kind kind)
{
	if (!grow((void **)&m->families, &m->capfamilies, m->nfamilies, sizeof(*m->families)))
		return NULL;
	struct family *f = calloc(1, sizeof(*f));
	if (!f || !(f->name = strdup(name))) {
		free(f);
		return NULL;
	}
	f->kind = kind;
	m->families[m->nfamilies++] = f;
	return f;
}

int pvm_metrics_describe(struct pvm_metrics *m, const char *name, enum pvm_metric_kind kind,
                         const char *help)
{
	if (!name_ok(name))
		return PVM_EINVAL;
	int rc = 0;
	char *h = help ? strdup(help) : NULL;
	if (help && !h)
		return PVM_ENOMEM;
	if (h)
		for (char *p = h; *p; p++)
			if (*p == '\n')
				*p = ' ';
	pthread_mutex_lock(&m->mu);
	struct family *f = family_find(m, name);
	if (!f)
		f = family_add(m, name, kind);
	if (!f) {
		rc = PVM_ENOMEM;
	} else if (f->kind != kind) {
		rc = PVM_EEXIST;
	} else {
		free(f->help);
		f->help = h;
		h = NULL;
	}
	pthread_mutex_unlock(&m->mu);
	free(h);
	return rc;
}

/* Finds or creates the series of name{labels} of the given kind. Caller holds m->mu.
 * NULL on a kind mismatch (logged once per family) or out of memory. */
static struct series *series_get(struct pvm_metrics *m, const char *name, const char *labels,
                                 enum pvm_metric_kind kind)
{
	if (!labels)
		labels = "";
	struct family *f = family_find(m, name);
	if (!f) {
		if (!name_ok(name))
			return NULL;
		f = family_add(m, name, kind);
		if (!f)
			return NULL;
	}
	if (f->kind != kind) {
		if (!f->kind_warned)
			pvm_warn("metrics: %s used with the wrong kind; ignored", name);
		f->kind_warned = true;
		return NULL;
	}
	for (size_t i = 0; i < f->nseries; i++)
		if (strcmp(f->series[i]->labels, labels) == 0)
			return f->series[i];
	if (!grow((void **)&f->series, &f->capseries, f->nseries, sizeof(*f->series)))
		return NULL;
	struct series *s = calloc(1, sizeof(*s));
	if (!s || !(s->labels = strdup(labels))) {
		free(s);
		return NULL;
	}
	f->series[f->nseries++] = s;
	return s;
}

void pvm_metrics_inc(struct pvm_metrics *m, const char *name, const char *labels, double by)
{
	if (!m || !(by >= 0))
		return;
	pthread_mutex_lock(&m->mu);
	struct series *s = series_get(m, name, labels, PVM_METRIC_COUNTER);
	if (s)
		s->value += by;
	pthread_mutex_unlock(&m->mu);
}

void pvm_metrics_set(struct pvm_metrics *m, const char *name, const char *labels, double v)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	struct series *s = series_get(m, name, labels, PVM_METRIC_GAUGE);
	if (s)
		s->value = v;
	pthread_mutex_unlock(&m->mu);
}

void pvm_metrics_add(struct pvm_metrics *m, const char *name, const char *labels, double d)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	struct series *s = series_get(m, name, labels, PVM_METRIC_GAUGE);
	if (s)
		s->value += d;
	pthread_mutex_unlock(&m->mu);
}

void pvm_metrics_observe(struct pvm_metrics *m, const char *name, const char *labels, double v)
{
	if (!m || isnan(v))
		return;
	pthread_mutex_lock(&m->mu);
	struct series *s = series_get(m, name, labels, PVM_METRIC_HISTOGRAM);
	if (s) {
		s->count++;
		s->value += v;
		for (size_t i = 0; i < PVM_METRICS_BUCKETS; i++) {
			if (v <= pvm_metrics_buckets[i]) {
				s->buckets[i]++;
				break;
			}
		}
	}
	pthread_mutex_unlock(&m->mu);
}

double pvm_metrics_value(struct pvm_metrics *m, const char *name, const char *labels)
{
	double v = 0;
	if (!m || !name)
		return 0;
	pthread_mutex_lock(&m->mu);
	struct family *f = family_find(m, name);
	for (size_t i = 0; f && i < f->nseries; i++) {
		if (strcmp(f->series[i]->labels, labels ? labels : "") == 0) {
			v = f->kind == PVM_METRIC_HISTOGRAM ? (double)f->series[i]->count
			                                    : f->series[i]->value;
			break;
		}
	}
	pthread_mutex_unlock(&m->mu);
	return v;
}

int pvm_metrics_add_collector(struct pvm_metrics *m, pvm_metrics_collector_fn fn, void *arg)
{
	int rc = 0;
	pthread_mutex_lock(&m->mu);
	if (!grow((void **)&m->collectors, &m->capcollectors, m->ncollectors,
	          sizeof(*m->collectors)))
		rc = PVM_ENOMEM;
	else
		m->collectors[m->ncollectors++] = (struct collector){fn, arg};
	pthread_mutex_unlock(&m->mu);
	return rc;
}

void pvm_metrics_remove_collector(struct pvm_metrics *m, pvm_metrics_collector_fn fn, void *arg)
{
	if (!m)
		return;
	/* render_mu first: a render running this collector finishes before it goes. */
	pthread_mutex_lock(&m->render_mu);
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->ncollectors; i++) {
		if (m->collectors[i].fn == fn && m->collectors[i].arg == arg) {
			memmove(&m->collectors[i], &m->collectors[i + 1],
			        (m->ncollectors - i - 1) * sizeof(*m->collectors));
			m->ncollectors--;
			break;
		}
	}
	pthread_mutex_unlock(&m->mu);
	pthread_mutex_unlock(&m->render_mu);
}

char *pvm_metrics_escape(char *dst, size_t n, const char *value)
{
	size_t o = 0;
	if (n == 0)
		return dst;
	for (const char *p = value ? value : ""; *p; p++) {
		const char *rep = NULL;
		char one[2] = {*p, 0};
		if (*p == '\\')
			rep = "\\\\";
		else if (*p == '"')
			rep = "\\\"";
		else if (*p == '\n')
			rep = "\\n";
		else
			rep = one;
		size_t l = strlen(rep);
		if (o + l >= n)
			break;
		memcpy(dst + o, rep, l);
		o += l;
	}
	dst[o] = 0;
	return dst;
}

/* Prometheus renders special values by name. */
static const char *fmt_num(double v, char *tmp, size_t n)
{
	if (isnan(v))
		return "NaN";
	if (isinf(v))
		return v > 0 ? "+Inf" : "-Inf";
	snprintf(tmp, n, "%.15g", v);
	return tmp;
}

static const char *kind_name(enum pvm_metric_kind k)
{
	switch (k) {
	case PVM_METRIC_COUNTER:
		return "counter";
	case PVM_METRIC_GAUGE:
		return "gauge";
	case PVM_METRIC_HISTOGRAM:
		return "histogram";
	}
	return "untyped";
}

static void render_histogram(struct pvm_buf *b, const struct family *f, const struct series *s)
{
	const char *sep = s->labels[0] ? "," : "";
	char tmp[64];
	uint64_t cum = 0;
	for (size_t i = 0; i < PVM_METRICS_BUCKETS; i++) {
		cum += s->buckets[i];
		pvm_buf_printf(b, "%s_bucket{%s%sle=\"%s\"} %llu\n", f->name, s->labels, sep,
		               fmt_num(pvm_metrics_buckets[i], tmp, sizeof(tmp)),
		               (unsigned long long)cum);
	}
	pvm_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, s->labels, sep,
	               (unsigned long long)s->count);
	const char *lo = s->labels[0] ? "{" : "", *lc = s->labels[0] ? "}" : "";
	pvm_buf_printf(b, "%s_sum%s%s%s %s\n", f->name, lo, s->labels, lc,
	               fmt_num(s->value, tmp, sizeof(tmp)));
	pvm_buf_printf(b, "%s_count%s%s%s %llu\n", f->name, lo, s->labels, lc,
	               (unsigned long long)s->count);
}

char *pvm_metrics_render(struct pvm_metrics *m)
{
	struct pvm_buf b;
	pvm_buf_init(&b);
	pthread_mutex_lock(&m->render_mu);
	/* Collectors may register nothing new while they run: copy the list first. */
	pthread_mutex_lock(&m->mu);
	size_t nc = m->ncollectors;
	struct collector *cs = nc ? malloc(nc * sizeof(*cs)) : NULL;
	if (cs)
		memcpy(cs, m->collectors, nc * sizeof(*cs));
	else
		nc = 0;
	pthread_mutex_unlock(&m->mu);
	for (size_t i = 0; i < nc; i++)
		cs[i].fn(m, cs[i].arg);
	free(cs);

	pthread_mutex_lock(&m->mu);
	char tmp[64];
	for (size_t i = 0; i < m->nfamilies; i++) {
		const struct family *f = m->families[i];
		if (f->help && f->help[0])
			pvm_buf_printf(&b, "# HELP %s %s\n", f->name, f->help);
		pvm_buf_printf(&b, "# TYPE %s %s\n", f->name, kind_name(f->kind));
		for (size_t j = 0; j < f->nseries; j++) {
			const struct series *s = f->series[j];
			if (f->kind == PVM_METRIC_HISTOGRAM)
				render_histogram(&b, f, s);
			else if (s->labels[0])
				pvm_buf_printf(&b, "%s{%s} %s\n", f->name, s->labels,
				               fmt_num(s->value, tmp, sizeof(tmp)));
			else
				pvm_buf_printf(&b, "%s %s\n", f->name,
				               fmt_num(s->value, tmp, sizeof(tmp)));
		}
	}
	pthread_mutex_unlock(&m->mu);
	pthread_mutex_unlock(&m->render_mu);
	return pvm_buf_take(&b);
}
