/* faults.c: pvmsim's fault injection.
 *
 * DESIGN: every decision is a pure function of (seed, method, path, n, rule), where n counts
 * the requests with that method and path so far. Concurrent clients touching different
 * paths cannot change each other's decisions, so a run replays exactly whatever the
 * interleaving. Counters exist only for paths that match a rule (bounded table,
 * SIM_COUNTERS slots; when it fills, it is cleared and a warning logged). Job failures use
 * the same hash over ("JOB", op, target, n). All functions run under sim->lock.
 */
#include "sim.h"

#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/util.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const kind_names[] = {"none",  "vios_busy", "http_500", "http_503",
                                         "reset", "latency",   "412"};

const char *sim_fault_kind_name(enum sim_fault_kind k)
{
	return (unsigned)k < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[k] : "?";
}

void sim_faults_fini(struct sim_faults *f)
{
	json_decref(f->job_failure_rates);
	f->job_failure_rates = NULL;
	f->nrules = 0;
}

int sim_faults_parse(json_t *j, struct sim_faults *f, char *err, size_t errn)
{
	struct sim_faults n = {.seed = f->seed};
	if (!json_is_object(j)) {
		snprintf(err, errn, "faults: expected a JSON object");
		return PVM_EINVAL;
	}
	json_t *v = json_object_get(j, "seed");
	if (v) {
		if (!json_is_integer(v)) {
			snprintf(err, errn, "faults.seed: expected an integer");
			return PVM_EINVAL;
		}
		n.seed = (uint64_t)json_integer_value(v);
	}
	v = json_object_get(j, "session_expiry_requests");
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			snprintf(err, errn,
			         "faults.session_expiry_requests: expected an integer >= 0");
			return PVM_EINVAL;
		}
		n.session_expiry_requests = (uint64_t)json_integer_value(v);
	}
	v = json_object_get(j, "job_failure_rates");
	if (v) {
		const char *k;
		json_t *r;
		if (!json_is_object(v)) {
			snprintf(err, errn, "faults.job_failure_rates: expected an object");
			return PVM_EINVAL;
		}
		json_object_foreach(v, k, r)
		{
			if (!json_is_number(r) || json_number_value(r) < 0 ||
			    json_number_value(r) > 1) {
				snprintf(err, errn, "faults.job_failure_rates.%s: expected 0..1",
				         k);
				return PVM_EINVAL;
			}
		}
	}
	json_t *rules = json_object_get(j, "rules");
	if (rules && !json_is_array(rules)) {
		snprintf(err, errn, "faults.rules: expected an array");
		return PVM_EINVAL;
	}
	if (json_array_size(rules) > SIM_MAX_RULES) {
		snprintf(err, errn, "faults.rules: at most %d rules", SIM_MAX_RULES);
		return PVM_EINVAL;
	}
	json_t *r;
	size_t i;
	json_array_foreach(rules, i, r)
	{
		struct sim_fault_rule *ru = &n.rules[i];
		const char *kind = json_string_value(json_object_get(r, "kind"));
		const char *pat = json_string_value(json_object_get(r, "path"));
		const char *meth = json_string_value(json_object_get(r, "method"));
		json_t *rate = json_object_get(r, "rate"), *first = json_object_get(r, "first");
		json_t *lat = json_object_get(r, "latency_ms");
		ru->kind = SIM_F_NONE;
		for (size_t k = 1; kind && k < sizeof(kind_names) / sizeof(kind_names[0]); k++)
			if (strcmp(kind, kind_names[k]) == 0)
				ru->kind = (enum sim_fault_kind)k;
		if (ru->kind == SIM_F_NONE) {
			snprintf(err, errn,
			         "faults.rules[%zu].kind: one of vios_busy, http_500, http_503, "
			         "reset, "
			         "latency, 412",
			         i);
			return PVM_EINVAL;
		}
		if (!pat || pvm_strlcpy(ru->pattern, pat, sizeof(ru->pattern)) != 0) {
			snprintf(err, errn, "faults.rules[%zu].path: a pattern of 1-255 characters",
			         i);
			return PVM_EINVAL;
		}
		if (pvm_strlcpy(ru->method, meth ? meth : "*", sizeof(ru->method)) != 0) {
			snprintf(err, errn, "faults.rules[%zu].method: too long", i);
			return PVM_EINVAL;
		}
		if ((rate && (!json_is_number(rate) || json_number_value(rate) < 0 ||
		              json_number_value(rate) > 1)) ||
		    (first && (!json_is_integer(first) || json_integer_value(first) < 0)) ||
		    (lat && (!json_is_integer(lat) || json_integer_value(lat) < 0 ||
		             json_integer_value(lat) > 600000))) {
			snprintf(err, errn,
			         "faults.rules[%zu]: rate 0..1, first >= 0, latency_ms 0..600000",
			         i);
			return PVM_EINVAL;
		}
		ru->rate = rate ? json_number_value(rate) : 0;
		ru->first = first ? (uint64_t)json_integer_value(first) : 0;
		ru->latency_ms = lat ? (int)json_integer_value(lat) : 1000;
		if (!rate && !first)
			ru->rate = 1.0;
	}
	n.nrules = (int)json_array_size(rules);
	n.job_failure_rates = v ? json_deep_copy(v) : json_object();
	sim_faults_fini(f);
	*f = n;
	return 0;
}

json_t *sim_faults_dump(const struct sim_faults *f)
{
	json_t *rules = json_array();
	for (int i = 0; i < f->nrules; i++) {
		const struct sim_fault_rule *r = &f->rules[i];
		json_array_append_new(rules, json_pack("{s:s, s:s, s:s, s:f, s:I, s:i}", "method",
		                                       r->method, "path", r->pattern, "kind",
		                                       sim_fault_kind_name(r->kind), "rate",
		                                       r->rate, "first", (json_int_t)r->first,
		                                       "latency_ms", r->latency_ms));
	}
	return json_pack("{s:I, s:o, s:I, s:O}", "seed", (json_int_t)f->seed, "rules", rules,
	                 "session_expiry_requests", (json_int_t)f->session_expiry_requests,
	                 "job_failure_rates",
	                 f->job_failure_rates ? f->job_failure_rates : json_object());
}

uint64_t sim_decision_hash(uint64_t seed, const char *method, const char *path, uint64_t n,
                           uint64_t salt)
{
	uint64_t h = sim_mix64(seed ^ 0x5eed5eed5eedULL);
	h = sim_hash_str(h, method);
	h = sim_hash_str(h, path);
	h = sim_mix64(h ^ sim_mix64(n + 1));
	return sim_mix64(h ^ sim_mix64(salt + 0x51));
}

static bool below(uint64_t h, double rate)
{
	return (double)(h >> 11) * (1.0 / 9007199254740992.0) < rate;
}

/* Returns this request's 0-based index among requests with the same key, counting it. */
static uint64_t counter_next(struct pvm_sim *sim, uint64_t key)
{
	if (!sim->counters)
		return 0;
	if (sim->ncounters >= SIM_COUNTERS * 3 / 4) {
		pvm_warn("pvmsim: fault counter table full (%u paths): counters restart",
		         SIM_COUNTERS * 3 / 4);
		memset(sim->counters, 0, SIM_COUNTERS * sizeof(*sim->counters));
		sim->ncounters = 0;
	}
	if (key == 0)
		key = 1;
	size_t i = key & (SIM_COUNTERS - 1);
	for (;;) {
		struct sim_counter *c = &sim->counters[i];
		if (c->key == key)
			return c->count++;
		if (c->key == 0) {
			c->key = key;
			c->count = 1;
			sim->ncounters++;
			return 0;
		}
		i = (i + 1) & (SIM_COUNTERS - 1);
	}
}

const struct sim_fault_rule *sim_fault_decide(struct pvm_sim *sim, const char *method,
                                              const char *path, bool mutating)
{
	struct sim_faults *f = &sim->faults;
	bool matched = false;
	for (int i = 0; i < f->nrules && !matched; i++) {
		const struct sim_fault_rule *r = &f->rules[i];
		if ((strcmp(r->method, "*") == 0 || strcasecmp(r->method, method) == 0) &&
		    fnmatch(r->pattern, path, 0) == 0)
			matched = true;
	}
	if (!matched)
		return NULL;
	uint64_t key = sim_hash_str(sim_hash_str(0x9a7b, method), path);
	uint64_t n = counter_next(sim, key);
	for (int i = 0; i < f->nrules; i++) {
		const struct sim_fault_rule *r = &f->rules[i];
		if ((strcmp(r->method, "*") != 0 && strcasecmp(r->method, method) != 0) ||
		    fnmatch(r->pattern, path, 0) != 0)
			continue;
		if (r->kind == SIM_F_412 && !mutating)
			continue;
		if (n < r->first ||
		    below(sim_decision_hash(f->seed, method, path, n, (uint64_t)i), r->rate))
			return r;
	}
	return NULL;
}

bool sim_fault_job(struct pvm_sim *sim, const char *op, const char *target)
{
	json_t *rate = json_object_get(sim->faults.job_failure_rates, op);
	if (!json_is_number(rate) || json_number_value(rate) <= 0)
		return false;
	uint64_t key = sim_hash_str(sim_hash_str(0x10b, op), target);
	uint64_t n = counter_next(sim, key);
	return below(sim_decision_hash(sim->faults.seed, "JOB", op, n, sim_hash_str(0, target)),
	             json_number_value(rate));
}
