/* cache.h: the daemon's view of its managed system and partitions (cache.c). */
#ifndef PVM_DAEMON_CACHE_H
#define PVM_DAEMON_CACHE_H

#include "pvm/client.h"
#include "pvm/engine.h"

#include <jansson.h>

struct pvm_cache;
struct pvm_eventlog;

/* Reads the managed systems, picks managed_system (name, MTMS, UUID; NULL: the only one),
 * and reads its partitions. Returns 0, PVM_ENOTFOUND (no such system: the candidates are
 * logged) or a client error. */
int pvm_cache_create(struct pvm_client *client, const char *managed_system,
                     struct pvm_eventlog *events, struct pvm_cache **out);
void pvm_cache_set_engine(struct pvm_cache *c, struct pvm_engine *e);
void pvm_cache_destroy(struct pvm_cache *c);
const char *pvm_cache_ms_uuid(const struct pvm_cache *c);
const char *pvm_cache_ms_href(const struct pvm_cache *c);
/* powervm_proc_units_factor (0.05..1; others are ignored; default 0.1). */
void pvm_cache_set_proc_units_factor(struct pvm_cache *c, double factor);
/* Sets key of GET /v1/host to value (stolen): the host sampler's disk, cpu_stats, uptime. */
void pvm_cache_set_host_extra(struct pvm_cache *c, const char *key, json_t *value);
/* GET /v1/host and /v1/instances[/{uuid}]: new references. */
json_t *pvm_cache_host(struct pvm_cache *c);
json_t *pvm_cache_instances(struct pvm_cache *c, const char *uuid);
/* The event listener's callback (arg: the cache). */
void pvm_cache_on_event(void *arg, const struct pvm_event *ev);

#endif
