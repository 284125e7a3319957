/* pvm/metrics.h: a small Prometheus registry (counters, gauges, histograms) for /metrics.
 *
 * A metric family has a name, a kind and a help text; its series are keyed by a label
 * string written as it appears between the braces of the exposition format, e.g.
 * `type="spawn",outcome="succeeded"` ("" or NULL: no labels). Use pvm_metrics_escape()
 * for label values that come from outside. A family is created by pvm_metrics_describe()
 * or, without help text, by its first use. Using a name with the wrong kind is ignored
 * (and logged once).
 *
 * Histograms use fixed buckets suited to step and request latencies, in seconds:
 * 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 30 60 120 300 600 +Inf.
 *
 * Collectors are callbacks run before each render, to refresh gauges read from elsewhere
 * (queue depth per state, busy workers).
 *
 * Thread-safety: every function may be called from any thread at once, except
 * pvm_metrics_destroy(). Collectors run in the rendering thread, one render at a time, and
 * may call the setters (never pvm_metrics_render() or the collector functions).
 */
#ifndef PVM_METRICS_H
#define PVM_METRICS_H

#include <stddef.h>

struct pvm_metrics;

enum pvm_metric_kind { PVM_METRIC_COUNTER = 0, PVM_METRIC_GAUGE, PVM_METRIC_HISTOGRAM };

/* Number of finite histogram buckets, and their upper bounds in seconds. */
#define PVM_METRICS_BUCKETS 16
extern const double pvm_metrics_buckets[PVM_METRICS_BUCKETS];

/* Returns 0 and *out, or PVM_ENOMEM. */
int pvm_metrics_create(struct pvm_metrics **out);
/* NULL is a no-op. */
void pvm_metrics_destroy(struct pvm_metrics *m);

/* Declares a family: name ([a-zA-Z_:][a-zA-Z0-9_:]*), kind and help (one line).
 * Returns 0, PVM_EINVAL for a bad name, PVM_EEXIST when it exists with another kind,
 * PVM_ENOMEM. Declaring an existing family again sets its help text. */
int pvm_metrics_describe(struct pvm_metrics *m, const char *name, enum pvm_metric_kind kind,
                         const char *help);

/* Counter: adds by (>= 0). */
void pvm_metrics_inc(struct pvm_metrics *m, const char *name, const char *labels, double by);
/* Gauge: sets to v / adds d (may be negative). */
void pvm_metrics_set(struct pvm_metrics *m, const char *name, const char *labels, double v);
void pvm_metrics_add(struct pvm_metrics *m, const char *name, const char *labels, double d);
/* Histogram: records one observation v (seconds). */
void pvm_metrics_observe(struct pvm_metrics *m, const char *name, const char *labels, double v);

/* The current value of a counter or gauge, or the count of a histogram; 0 when the series
 * does not exist. For tests and health checks. */
double pvm_metrics_value(struct pvm_metrics *m, const char *name, const char *labels);

/* Collector: fn(m, arg) runs before every render. Returns 0 or PVM_ENOMEM. */
typedef void (*pvm_metrics_collector_fn)(struct pvm_metrics *m, void *arg);
int pvm_metrics_add_collector(struct pvm_metrics *m, pvm_metrics_collector_fn fn, void *arg);
/* Removes the collector (fn, arg). Once it returns, fn is not running and will not run
 * again for this arg. */
void pvm_metrics_remove_collector(struct pvm_metrics *m, pvm_metrics_collector_fn fn, void *arg);

/* Runs the collectors, then renders every family in Prometheus text format 0.0.4 (families
 * in the order they were created, series in the order they were first used). Returns a
 * heap string (free()), or NULL when out of memory. */
char *pvm_metrics_render(struct pvm_metrics *m);

/* Escapes a label value (backslash, double quote, newline) into dst of size n, always
 * NUL-terminated, truncating when it does not fit. Returns dst. */
char *pvm_metrics_escape(char *dst, size_t n, const char *value);

#endif
