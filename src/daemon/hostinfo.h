/* hostinfo.h: the host sampler: disk of the configured storage, CPU statistics and uptime
 * from the pcm long-term monitor, kept in the cache for GET /v1/host (hostinfo.c). */
#ifndef PVM_DAEMON_HOSTINFO_H
#define PVM_DAEMON_HOSTINFO_H

#include "cache.h"

#include "pvm/client.h"
#include "pvm/config.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct pvm_hostinfo;

/* Samples once at once (so /v1/host is complete before the API serves), then every
 * interval_ms (0: 30 s) on the thread "pvm-host". cfg must outlive it. */
int pvm_hostinfo_start(struct pvm_client *client, struct pvm_cache *cache,
                       const struct pvm_config *cfg, int64_t interval_ms,
                       struct pvm_hostinfo **out);
void pvm_hostinfo_stop(struct pvm_hostinfo *h);

/* nova's host CPU statistics from one phyp LTM sample (JSON): *stats = {"kernel", "user",
 * "idle", "iowait" (ns, cumulative), "frequency" (MHz), "sample_time"}, *uptime_s the
 * system's time base in seconds. PVM_ECORRUPT with why filled for a sample without the
 * counters. */
int pvm_hostinfo_cpu_stats(const char *json, size_t len, json_t **stats, double *uptime_s,
                           char *why, size_t wn);

#endif
