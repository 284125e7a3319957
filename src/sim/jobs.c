/* jobs.c: pvmsim's jobs (PUT .../do/<Op>).
 *
 * DESIGN: a job is a plan of timed steps computed when it is accepted: NOT_STARTED until
 * run_at, RUNNING until end_at, then terminal; partition state changes are steps at fixed
 * offsets. The ticker thread (server.c) calls sim_jobs_tick(), which applies every step
 * whose time has come; no request thread ever waits for a job. Preconditions (a PowerOff
 * of a partition that is not running...) are checked when the job starts RUNNING, as the
 * HMC checks them, so they fail the job rather than the request. Jobs live in memory only:
 * a restart forgets them. Finished jobs are dropped after timing.finished_job_keep_s, or
 * oldest first beyond timing.max_finished_jobs, so memory stays bounded.
 * All functions run under sim->lock.
 */
#include "sim.h"

#include "pvm/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const status_names[] = {
        "NOT_STARTED",          "RUNNING",
        "COMPLETED_OK",         "COMPLETED_WITH_WARNINGS",
        "COMPLETED_WITH_ERROR", "FAILED_BEFORE_COMPLETION",
};

const char *sim_job_status_name(enum sim_job_status s)
{
	return (unsigned)s < sizeof(status_names) / sizeof(status_names[0]) ? status_names[s]
	                                                                    : "UNKNOWN";
}

bool sim_job_terminal(const struct sim_job *j)
{
	return j->status >= SIM_JOB_COMPLETED_OK;
}

/* Operations with templates, per target kind. PowerOn/PowerOff move partition states; the
 * others complete without changing the model (later issues give them effects). */
static const struct {
	enum sim_kind kind;
	const char *op;
} known_ops[] = {
        {SIM_LPAR, "PowerOn"},      {SIM_LPAR, "PowerOff"},     {SIM_LPAR, "MigrateValidate"},
        {SIM_LPAR, "Migrate"},      {SIM_LPAR, "MigrateAbort"}, {SIM_LPAR, "MigrateRecover"},
        {SIM_VIOS, "PowerOn"},      {SIM_VIOS, "PowerOff"},     {SIM_VIOS, "LUARecovery"},
        {SIM_VIOS, "RemoveDevice"}, {SIM_MS, "GetNextWWPNs"},
};

bool sim_job_known(enum sim_kind kind, const char *op)
{
	for (size_t i = 0; i < sizeof(known_ops) / sizeof(known_ops[0]); i++)
		if (known_ops[i].kind == kind && strcmp(known_ops[i].op, op) == 0)
			return true;
	return false;
}

static const char *param(json_t *params, const char *name)
{
	json_t *p;
	size_t i;
	json_array_foreach(params, i, p)
	{
		const char *n = json_string_value(json_array_get(p, 0));
		if (n && strcasecmp(n, name) == 0)
			return json_string_value(json_array_get(p, 1));
	}
	return NULL;
}

static bool param_true(json_t *params, const char *name)
{
	const char *v = param(params, name);
	return v && strcasecmp(v, "true") == 0;
}

static void add_step(struct sim_job *j, int64_t at, const char *state)
{
	if (j->nsteps >= SIM_JOB_MAX_STEPS)
		return;
	j->steps[j->nsteps].at_ms = at;
	pvm_strlcpy(j->steps[j->nsteps].state, state, sizeof(j->steps[0].state));
	j->nsteps++;
}

struct sim_job *sim_job_find(struct pvm_sim *sim, uint64_t id)
{
	for (struct sim_job *j = sim->jobs; j; j = j->next)
		if (j->id == id)
			return j;
	return NULL;
}

static void job_free(struct sim_job *j)
{
	json_decref(j->params);
	free(j->request_url);
	free(j->fail_msg);
	free(j);
}

void sim_job_delete(struct pvm_sim *sim, struct sim_job *j)
{
	for (struct sim_job **pp = &sim->jobs; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			sim->njobs--;
			job_free(j);
			return;
		}
	}
}

void sim_jobs_clear(struct pvm_sim *sim)
{
	while (sim->jobs) {
		struct sim_job *j = sim->jobs;
		sim->jobs = j->next;
		job_free(j);
	}
	sim->njobs = 0;
}

void sim_job_cancel(struct pvm_sim *sim, struct sim_job *j)
{
	if (!sim_job_terminal(j)) {
		j->cancel = true;
		sim_kick(sim);
	}
}

struct sim_job *sim_job_start(struct pvm_sim *sim, struct sim_obj *target, const char *op,
                              json_t *params, const char *request_url, int *status, char *msg,
                              size_t msgn)
{
	for (struct sim_job *o = sim->jobs; o; o = o->next) {
		if (!sim_job_terminal(o) && strcmp(o->op, op) == 0 &&
		    strcasecmp(o->target, target->uuid) == 0) {
			*status = 409;
			snprintf(msg, msgn,
			         "HSCL3B16 A %s job (%llu) is already running for %s; wait for it "
			         "to "
			         "complete.",
			         op, (unsigned long long)o->id, target->uuid);
			return NULL;
		}
	}
	struct sim_job *j = calloc(1, sizeof(*j));
	if (!j) {
		*status = 500;
		snprintf(msg, msgn, "out of memory");
		return NULL;
	}
	j->id = sim->next_job_id++;
	pvm_strlcpy(j->op, op, sizeof(j->op));
	pvm_strlcpy(j->group, sim_kind_name(target->kind), sizeof(j->group));
	pvm_strlcpy(j->target, target->uuid, sizeof(j->target));
	j->request_url = strdup(request_url);
	j->params = json_incref(params);
	j->status = SIM_JOB_NOT_STARTED;
	j->accepted_ms = pvm_now_ms();
	j->t0_ns = pvm_mono_ns();
	const struct sim_timing *t = &sim->timing;
	int64_t ns = t->job_not_started_ms, d = t->job_generic_ms;
	j->run_at_ms = ns;
	bool part = target->kind == SIM_LPAR || target->kind == SIM_VIOS;
	if (part && strcmp(op, "PowerOn") == 0) {
		d = t->job_duration_ms;
		add_step(j, ns, "starting");
		add_step(j, ns + d, "running");
	} else if (part && strcmp(op, "PowerOff") == 0) {
		const char *oper = param(params, "operation");
		bool restart =
		        param_true(params, "restart") || (oper && strcmp(oper, "dumprestart") == 0);
		d = param_true(params, "immediate") ? t->job_immediate_ms : t->job_duration_ms;
		add_step(j, ns, "shutting down");
		if (restart) {
			add_step(j, ns + d * 4 / 10, "not activated");
			add_step(j, ns + d * 6 / 10, "starting");
			add_step(j, ns + d, "running");
		} else {
			add_step(j, ns + d, "not activated");
		}
	}
	j->end_at_ms = ns + d;
	j->fail = sim_fault_job(sim, op, target->uuid);
	if (j->fail)
		j->fail_msg = strdup("HSCL1400 The operation failed: an internal error occurred "
		                     "(pvmsim injected job failure).");
	j->next = sim->jobs;
	sim->jobs = j;
	sim->njobs++;
	sim_kick(sim);
	return j;
}

/* The precondition of a power job on its partition, checked when it starts running. */
static const char *precondition(struct pvm_sim *sim, const struct sim_job *j,
                                const struct sim_obj *o)
{
	const char *st = sim_str(o, "state", "not activated");
	if (strcmp(j->op, "PowerOn") == 0) {
		if (strcmp(st, "not activated") != 0 && strcmp(st, "error") != 0)
			return "HSCL05DF The partition is not in a state under which this "
			       "operation "
			       "can be performed. Check the state of the partition.\n";
		struct sim_obj *ms = sim_obj_find(sim, SIM_MS, o->parent);
		int64_t mem = 0;
		double units = 0;
		if (ms)
			sim_ms_available(sim, ms, &mem, &units);
		if (!ms || sim_int(o, "desired_mem", 0) > mem)
			return "The partition cannot be activated: there is not enough memory "
			       "available on the managed system.\n";
		double need = sim_bool(o, "dedicated", false)
		                      ? (double)sim_int(o, "desired_vcpus", 0)
		                      : sim_real(o, "desired_units", 0);
		if (need > units + 1e-9)
			return "The partition cannot be activated: there are not enough processing "
			       "units available on the managed system.\n";
	} else if (strcmp(j->op, "PowerOff") == 0) {
		if (strcmp(st, "not activated") == 0)
			return "HSCL05DF The partition is not in a state under which this "
			       "operation "
			       "can be performed. Check the state of the partition.\n";
		const char *oper = param(j->params, "operation");
		if (oper && strcmp(oper, "osshutdown") == 0 &&
		    strcmp(sim_str(o, "rmc_state", "inactive"), "active") != 0)
			return "HSCL0DB4 The OS shutdown cannot be performed: the RMC connection "
			       "to "
			       "the partition is not active.\n";
	}
	return NULL;
}

static void finish(struct sim_job *j, enum sim_job_status st, int64_t now_ns)
{
	j->status = st;
	j->completed_ms = pvm_now_ms();
	if (!j->started_ms)
		j->started_ms = j->completed_ms;
	j->done_ns = now_ns;
}

static bool transitional(const char *s)
{
	return strcmp(s, "starting") == 0 || strcmp(s, "shutting down") == 0;
}

/* Advances one job; returns true when the model changed. */
static bool advance(struct pvm_sim *sim, struct sim_job *j, int64_t now_ns, int64_t *next_due)
{
	if (sim_job_terminal(j))
		return false;
	struct sim_obj *o = NULL;
	enum sim_kind k;
	if (sim_kind_parse(j->group, &k) == 0)
		o = sim_obj_find(sim, k, j->target);
	bool changed = false;
	int64_t el = (now_ns - j->t0_ns) / 1000000;
	if (j->cancel) {
		if (o && transitional(sim_str(o, "state", "")) && j->start_state[0]) {
			sim_set_state(sim, o, j->start_state);
			changed = true;
		}
		free(j->fail_msg);
		j->fail_msg = strdup("The job was cancelled.");
		finish(j, SIM_JOB_FAILED_BEFORE_COMPLETION, now_ns);
		return changed;
	}
	if (j->status == SIM_JOB_NOT_STARTED) {
		if (el < j->run_at_ms) {
			int64_t due = j->t0_ns + j->run_at_ms * 1000000;
			if (due < *next_due)
				*next_due = due;
			return false;
		}
		j->status = SIM_JOB_RUNNING;
		j->started_ms = pvm_now_ms();
		if (!o && (k == SIM_LPAR || k == SIM_VIOS || k == SIM_MS)) {
			j->fail_msg = strdup("HSCL1500 The object of the job no longer exists.");
			finish(j, SIM_JOB_COMPLETED_WITH_ERROR, now_ns);
			return false;
		}
		if (o) {
			pvm_strlcpy(j->start_state, sim_str(o, "state", ""),
			            sizeof(j->start_state));
			const char *why = precondition(sim, j, o);
			if (why) {
				free(j->fail_msg);
				j->fail_msg = strdup(why);
				j->nsteps = 0;
				finish(j, SIM_JOB_COMPLETED_WITH_ERROR, now_ns);
				return false;
			}
		}
		if (j->fail)
			j->nsteps = 0; /* an injected failure changes nothing */
	}
	while (j->next_step < j->nsteps && el >= j->steps[j->next_step].at_ms) {
		if (o && j->steps[j->next_step].state[0]) {
			sim_set_state(sim, o, j->steps[j->next_step].state);
			changed = true;
		}
		j->next_step++;
	}
	if (el >= j->end_at_ms) {
		finish(j, j->fail ? SIM_JOB_COMPLETED_WITH_ERROR : SIM_JOB_COMPLETED_OK, now_ns);
		return changed;
	}
	int64_t due = j->end_at_ms;
	if (j->next_step < j->nsteps && j->steps[j->next_step].at_ms < due)
		due = j->steps[j->next_step].at_ms;
	due = j->t0_ns + due * 1000000;
	if (due < *next_due)
		*next_due = due;
	return changed;
}

bool sim_jobs_tick(struct pvm_sim *sim, int64_t now_ns, int64_t *next_due_ns)
{
	bool changed = false;
	size_t finished = 0;
	for (struct sim_job *j = sim->jobs; j; j = j->next) {
		if (advance(sim, j, now_ns, next_due_ns))
			changed = true;
		if (sim_job_terminal(j))
			finished++;
	}
	/* Bound memory: drop old finished jobs; the list is newest first. */
	int64_t keep_ns = (int64_t)sim->timing.finished_job_keep_s * 1000000000;
	size_t seen = 0;
	for (struct sim_job **pp = &sim->jobs; *pp;) {
		struct sim_job *j = *pp;
		if (sim_job_terminal(j)) {
			seen++;
			if (now_ns - j->done_ns > keep_ns ||
			    seen > (size_t)sim->timing.max_finished_jobs) {
				*pp = j->next;
				sim->njobs--;
				job_free(j);
				continue;
			}
		}
		pp = &j->next;
	}
	(void)finished;
	return changed;
}
