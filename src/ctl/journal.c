/* journal.c: the commands that read the journal directly: queue list, show, stats, watch.
 *
 * The journal is opened read-only (pvm_queue_open with read_only: no writes, no recovery,
 * no committer thread), so these commands work whether powervmd runs or not and never
 * change anything; LMDB gives each read a consistent snapshot while the daemon writes.
 * LMDB still records its readers in lock.mdb, so the caller needs write access to that one
 * file (docs/operations.md, Permissions). When powervmd is not running, the commands say
 * which operations will resume when it starts: every active one (queued, running, waiting,
 * reverting), running ones returning to the queue at their last checkpoint.
 *
 * queue watch prefers the daemon (GET /v1/operations/{id}?wait=, which answers at once when
 * the operation ends) and falls back to reading the journal a few times a second.
 */
#include "ctl.h"

#include "pvm/error.h"
#include "pvm/queue.h"
#include "pvm/util.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* Opens the journal read-only. Returns CTL_OK or an exit status after saying what to do. */
static int open_journal(const struct ctl *c, struct pvm_queue **q)
{
	struct pvm_queue_opts o = {
	        .dir = c->state_dir, .read_only = true, .map_size_max = c->map_size_max};
	int rc = pvm_queue_open(&o, q);
	if (rc == 0)
		return CTL_OK;
	*q = NULL;
	switch (rc) {
	case -ENOENT:
	case PVM_ENOTFOUND:
		ctl_err("no journal in %s: powervmd creates it when it first starts. Is "
		        "powervm_state_dir right (--config FILE, or --state-dir DIR)?",
		        c->state_dir);
		return CTL_ERROR;
	case -EACCES:
	case -EPERM:
	case -EROFS:
		ctl_err("cannot open the journal in %s: %s. powervmctl needs search (x) on the "
		        "directory, read on data.mdb and read+write on lock.mdb (LMDB registers "
		        "readers there): run it as root or as a member of the operators' group "
		        "(docs/operations.md, Permissions)",
		        c->state_dir, pvm_strerror(rc));
		return CTL_ERROR;
	case PVM_ENOTJOURNAL:
	case PVM_EVERSION:
		ctl_err("%s does not hold a journal this powervmctl can read (%s); see the message "
		        "above",
		        c->state_dir, pvm_strerror(rc));
		return CTL_ERROR;
	default:
		ctl_err("cannot open the journal in %s: %s", c->state_dir, pvm_strerror(rc));
		return CTL_ERROR;
	}
}

/* The active operations' ids (those that resume when powervmd starts), in id order. */
static json_t *active_ids(struct pvm_queue *q)
{
	json_t *ids = json_array();
	struct pvm_queue_filter f = {.state = PVM_KEEP};
	struct pvm_op **ops = NULL;
	size_t n = 0;
	if (pvm_queue_list(q, &f, &ops, &n, NULL) != 0)
		return ids;
	for (size_t i = 0; i < n; i++)
		if (pvm_op_state_active(ops[i]->state))
			json_array_append_new(ids, json_integer((json_int_t)ops[i]->id));
	pvm_op_list_free(ops, n);
	return ids;
}

/* What people see under a read when the daemon is not serving. */
static void daemon_note(const struct ctl_daemon *d, const struct pvm_queue_stats *st, FILE *f)
{
	if (d->state == CTL_DAEMON_RUNNING) {
		if (d->paused)
			fprintf(f,
			        "\npowervmd is paused: no step runs until `powervmctl resume`.\n");
		return;
	}
	if (d->state == CTL_DAEMON_STARTING) {
		fprintf(f, "\npowervmd holds the journal but its API does not answer (starting, "
		           "stopping or stuck): see its log.\n");
		return;
	}
	if (d->state != CTL_DAEMON_STOPPED)
		return;
	size_t active = st->by_state[PVM_OP_QUEUED] + st->by_state[PVM_OP_RUNNING] +
	                st->by_state[PVM_OP_WAITING] + st->by_state[PVM_OP_REVERTING];
	if (!active) {
		fprintf(f, "\npowervmd is not running; no operation is waiting for it.\n");
		return;
	}
	fprintf(f, "\npowervmd is not running. When it starts, %zu operation%s resume%s:", active,
	        active == 1 ? "" : "s", active == 1 ? "s" : "");
	const char *sep = " ";
	if (st->by_state[PVM_OP_QUEUED]) {
		fprintf(f, "%s%zu queued", sep, st->by_state[PVM_OP_QUEUED]);
		sep = ", ";
	}
	if (st->by_state[PVM_OP_RUNNING]) {
		fprintf(f, "%s%zu running (returned to the queue at their last checkpoint)", sep,
		        st->by_state[PVM_OP_RUNNING]);
		sep = ", ";
	}
	if (st->by_state[PVM_OP_WAITING]) {
		fprintf(f, "%s%zu waiting (at their due time)", sep, st->by_state[PVM_OP_WAITING]);
		sep = ", ";
	}
	if (st->by_state[PVM_OP_REVERTING])
		fprintf(f, "%s%zu reverting (they go on undoing)", sep,
		        st->by_state[PVM_OP_REVERTING]);
	fprintf(f, ".\nTo hold or cancel some first, start it with `powervmd --paused` "
	           "(docs/operations.md).\n");
}

static int parse_filter(const struct ctl *c, struct pvm_queue_filter *f, char *inst, size_t inst_n)
{
	memset(f, 0, sizeof(*f));
	f->state = PVM_KEEP;
	if (c->opt_state) {
		enum pvm_op_state s;
		if (pvm_op_state_parse(c->opt_state, &s) != 0) {
			ctl_err("--state: unknown state '%s' (one of queued, running, waiting, "
			        "reverting, succeeded, failed, cancelled)",
			        c->opt_state);
			return CTL_USAGE;
		}
		f->state = (int)s;
	}
	if (c->opt_instance) {
		if (!pvm_is_uuid(c->opt_instance)) {
			ctl_err("--instance: '%s' is not an instance UUID "
			        "(8-4-4-4-12 hexadecimal digits)",
			        c->opt_instance);
			return CTL_USAGE;
		}
		size_t i = 0;
		for (; c->opt_instance[i] && i < inst_n - 1; i++)
			inst[i] = (char)tolower((unsigned char)c->opt_instance[i]);
		inst[i] = '\0';
		f->instance_uuid = inst;
	}
	if (c->opt_type) {
		if (!c->opt_type[0] || strlen(c->opt_type) >= PVM_OP_TYPE_MAX) {
			ctl_err("--type: '%s' is not an operation type name", c->opt_type);
			return CTL_USAGE;
		}
		f->type = c->opt_type;
	}
	if (c->opt_limit) {
		char *end;
		long v = strtol(c->opt_limit, &end, 10);
		if (*end || end == c->opt_limit || v < 1 || v > 1000000) {
			ctl_err("--limit: '%s' is not a number from 1 to 1000000", c->opt_limit);
			return CTL_USAGE;
		}
		f->limit = (size_t)v;
	}
	return CTL_OK;
}

/* "[CODE] message", or NULL. */
static const char *op_error(const struct pvm_op *op, char *buf, size_t n)
{
	if (!op->error && !op->error_code)
		return NULL;
	if (op->error_code && op->error)
		snprintf(buf, n, "[%s] %s", op->error_code, op->error);
	else
		snprintf(buf, n, "%s", op->error ? op->error : op->error_code);
	return buf;
}

static json_t *op_json(const struct pvm_op *op)
{
	json_t *j = pvm_op_to_json(op);
	if (j) {
		ctl_redact(json_object_get(j, "params"));
		ctl_redact(json_object_get(j, "checkpoints"));
		ctl_redact(json_object_get(j, "signals"));
		ctl_redact(json_object_get(j, "result"));
	}
	return j;
}

int ctl_queue_list(struct ctl *c)
{
	struct pvm_queue_filter f;
	char inst[PVM_UUID_LEN + 1];
	int ex = parse_filter(c, &f, inst, sizeof(inst));
	if (ex)
		return ex;
	struct pvm_queue *q;
	if ((ex = open_journal(c, &q)))
		return ex;
	struct pvm_op **ops = NULL;
	size_t n = 0, damaged = 0;
	int rc = pvm_queue_list(q, &f, &ops, &n, &damaged);
	if (rc) {
		ctl_err("cannot list the journal in %s: %s", c->state_dir, pvm_strerror(rc));
		ex = CTL_ERROR;
		goto close_q;
	}
	struct ctl_daemon d;
	ctl_daemon_probe(c, &d);
	struct pvm_queue_stats st;
	memset(&st, 0, sizeof(st));
	pvm_queue_stats(q, &st);
	if (c->json) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, op_json(ops[i]));
		json_t *out = json_pack("{s:o, s:I, s:o}", "operations", arr, "damaged",
		                        (json_int_t)damaged, "daemon", ctl_daemon_json(&d));
		if (d.state == CTL_DAEMON_STOPPED)
			json_object_set_new(out, "resume_on_start", active_ids(q));
		ex = ctl_print_json(out);
		json_decref(out);
		goto free_ops;
	}
	static const char *const hdr[] = {"ID",       "TYPE",    "INSTANCE", "STATE",   "STEP",
	                                  "PROGRESS", "RETRIES", "CREATED",  "UPDATED", "ERROR"};
	struct ctl_table *t = ctl_table_create(10, hdr);
	int64_t now = pvm_now_ms();
	for (size_t i = 0; i < n; i++) {
		const struct pvm_op *op = ops[i];
		char b1[64], b2[64], eb[1024], tb[96];
		ctl_table_addf(t, "%llu", (unsigned long long)op->id);
		ctl_table_add(t, op->type);
		ctl_table_add(t, op->instance_uuid);
		if (op->flags & PVM_OPF_CANCEL_REQUESTED)
			ctl_table_addf(t, "%s (cancel requested)", pvm_op_state_name(op->state));
		else if (op->direction == PVM_DIR_REVERT && op->state == PVM_OP_WAITING)
			ctl_table_add(t, "waiting (undo)");
		else
			ctl_table_add(t, pvm_op_state_name(op->state));
		ctl_table_addf(t, "%d", (int)op->step);
		ctl_table_addf(t, "%d%%", (int)op->progress);
		ctl_table_addf(t, "%u", op->retries);
		ctl_table_add(t, ctl_fmt_local(op->created_ms, b1, sizeof(b1)));
		ctl_table_addf(t, "%s ago", ctl_fmt_duration(now - op->updated_ms, b2, sizeof(b2)));
		ctl_table_add(t, ctl_trunc(op_error(op, eb, sizeof(eb)), 60, tb, sizeof(tb)));
	}
	if (n == 0)
		printf("No operation matches.\n");
	else
		ctl_table_print(t, stdout, 1u << 0 | 1u << 4 | 1u << 5 | 1u << 6);
	ctl_table_destroy(t);
	if (damaged)
		printf("\n%zu damaged record%s skipped (see `powervmctl queue stats`).\n", damaged,
		       damaged == 1 ? "" : "s");
	daemon_note(&d, &st, stdout);
	ex = CTL_OK;
free_ops:
	pvm_op_list_free(ops, n);
close_q:
	pvm_queue_close(q);
	return ex;
}

/* Reads one operation, saying what to do when it cannot. */
static int get_op(const struct ctl *c, struct pvm_queue *q, uint64_t id, struct pvm_op **op)
{
	int rc = pvm_queue_get(q, id, op);
	if (rc == 0)
		return CTL_OK;
	if (rc == PVM_ENOTFOUND) {
		ctl_err("no operation %llu in the journal in %s (finished operations are purged "
		        "after powervm_retention_hours; `powervmctl queue list` shows what is "
		        "there)",
		        (unsigned long long)id, c->state_dir);
		return CTL_NOT_FOUND;
	}
	if (rc == PVM_ECORRUPT || rc == PVM_EVERSION) {
		ctl_err("the record of operation %llu is %s: powervmd moves it to quarantine at "
		        "its "
		        "next write (`powervmctl queue stats` lists the quarantine)",
		        (unsigned long long)id,
		        rc == PVM_ECORRUPT ? "damaged" : "of a newer format than this powervmctl");
		return CTL_ERROR;
	}
	ctl_err("cannot read operation %llu: %s", (unsigned long long)id, pvm_strerror(rc));
	return CTL_ERROR;
}

static int id_arg(const struct ctl *c, uint64_t *id)
{
	if (c->nargs != 1 || ctl_parse_id(c->args[0], id) != 0) {
		ctl_err("expected one operation id (a number from 1), got %s%s%s",
		        c->nargs ? "'" : "nothing", c->nargs ? c->args[0] : "",
		        c->nargs ? "'" : "");
		return CTL_USAGE;
	}
	return CTL_OK;
}

static void print_time_line(const char *label, int64_t ms, int64_t now)
{
	char ts[40], d[32];
	if (!ms) {
		printf("  %-17s -\n", label);
		return;
	}
	if (ms <= now)
		printf("  %-17s %s (%s ago)\n", label, pvm_fmt_time(ms, ts, sizeof(ts)),
		       ctl_fmt_duration(now - ms, d, sizeof(d)));
	else
		printf("  %-17s %s (in %s)\n", label, pvm_fmt_time(ms, ts, sizeof(ts)),
		       ctl_fmt_duration(ms - now, d, sizeof(d)));
}

static void print_json_block(const char *title, json_t *v)
{
	size_t n = json_is_object(v) ? json_object_size(v) : json_array_size(v);
	if (!n) {
		printf("%s: none\n", title);
		return;
	}
	printf("%s:\n", title);
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!s)
		return;
	for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n"))
		printf("  %s\n", line);
	free(s);
}

int ctl_queue_show(struct ctl *c)
{
	uint64_t id;
	int ex = id_arg(c, &id);
	if (ex)
		return ex;
	struct pvm_queue *q;
	if ((ex = open_journal(c, &q)))
		return ex;
	struct pvm_op *op = NULL;
	if ((ex = get_op(c, q, id, &op)))
		goto close_q;
	json_t *j = op_json(op);
	if (c->json) {
		ex = ctl_print_json(j);
		goto free_j;
	}
	int64_t now = pvm_now_ms();
	char bar[64], eb[2048];
	printf("Operation %llu: %s, %s%s\n", (unsigned long long)op->id, op->type,
	       pvm_op_state_name(op->state),
	       op->direction == PVM_DIR_REVERT && pvm_op_state_active(op->state)
	               ? " (undoing its completed steps)"
	               : "");
	printf("  %-17s %s\n", "Instance:", op->instance_uuid[0] ? op->instance_uuid : "-");
	printf("  %-17s %s\n",
	       "Idempotency key:", op->idempotency_key[0] ? op->idempotency_key : "-");
	printf("  %-17s %s\n", "Request id:", op->request_id[0] ? op->request_id : "-");
	ctl_fmt_bar(op->progress, 30, bar, sizeof(bar));
	printf("  %-17s %s %d%%\n", "Progress:", bar, (int)op->progress);
	printf("  %-17s %d, attempt %u (%u retr%s over its life)\n", "Step:", (int)op->step,
	       op->attempts, op->retries, op->retries == 1 ? "y" : "ies");
	print_time_line("Created:", op->created_ms, now);
	print_time_line("Started:", op->started_ms, now);
	print_time_line("Updated:", op->updated_ms, now);
	print_time_line("Due:", pvm_op_state_active(op->state) ? op->due_ms : 0, now);
	print_time_line("Deadline:", op->deadline_ms, now);
	print_time_line("Finished:", op->finished_ms, now);
	printf("  %-17s", "Flags:");
	if (!op->flags)
		printf(" -");
	if (op->flags & PVM_OPF_CANCEL_REQUESTED)
		printf(" cancel_requested");
	if (op->flags & PVM_OPF_HAS_SECRETS)
		printf(" has_secrets");
	if (op->flags & PVM_OPF_SECRETS_ERASED)
		printf(" secrets_erased");
	if (op->flags & PVM_OPF_RECOVERED)
		printf(" recovered");
	printf("\n");
	if (op->flags & PVM_OPF_SECRETS_ERASED)
		printf("  %-17s erased when it ended\n", "Secret params:");
	else if (op->flags & PVM_OPF_HAS_SECRETS)
		printf("  %-17s kept encrypted in the journal, never shown\n", "Secret params:");
	printf("  %-17s %u (record format %u)\n", "Step table:", op->table_version,
	       op->format_version);
	const char *e = op_error(op, eb, sizeof(eb));
	printf("  %-17s %s\n", "Last error:", e ? e : "-");
	printf("\n");
	print_json_block("Params", json_object_get(j, "params"));
	print_json_block("Checkpoints", json_object_get(j, "checkpoints"));
	print_json_block("Signals", json_object_get(j, "signals"));
	print_json_block("Result", json_object_get(j, "result"));
	json_t *hist = json_object_get(j, "history");
	if (!json_array_size(hist)) {
		printf("History: none\n");
	} else {
		printf("History (attempts and events, oldest first):\n");
		static const char *const hdr[] = {"  TIME", "STEP", "ATTEMPT", "STATE",
		                                  "EVENT",  "CODE", "ERROR"};
		struct ctl_table *t = ctl_table_create(7, hdr);
		size_t i;
		json_t *h;
		json_array_foreach(hist, i, h)
		{
			char ts[40];
			ctl_table_addf(t, "  %s",
			               pvm_fmt_time(json_integer_value(json_object_get(h, "ts")),
			                            ts, sizeof(ts)));
			ctl_table_addf(t, "%lld", json_integer_value(json_object_get(h, "step")));
			ctl_table_addf(t, "%lld",
			               json_integer_value(json_object_get(h, "attempt")));
			ctl_table_add(t, json_string_value(json_object_get(h, "state")));
			ctl_table_add(t, json_string_value(json_object_get(h, "event")));
			ctl_table_add(t, json_string_value(json_object_get(h, "code")));
			ctl_table_add(t, json_string_value(json_object_get(h, "error")));
		}
		ctl_table_print(t, stdout, 0);
		ctl_table_destroy(t);
	}
	struct ctl_daemon d;
	ctl_daemon_probe(c, &d);
	if (d.state == CTL_DAEMON_STOPPED && pvm_op_state_active(op->state))
		printf("\npowervmd is not running: this operation resumes when it starts%s. To "
		       "hold "
		       "or cancel it first, start it with `powervmd --paused`.\n",
		       op->state == PVM_OP_RUNNING
		               ? " (it returns to the queue at its last checkpoint)"
		               : "");
	else if (d.state == CTL_DAEMON_RUNNING && d.paused && pvm_op_state_active(op->state))
		printf("\npowervmd is paused: this operation waits for `powervmctl resume`.\n");
	ex = CTL_OK;
free_j:
	json_decref(j);
	pvm_op_free(op);
close_q:
	pvm_queue_close(q);
	return ex;
}

/* Per type: counts by state and retries. */
struct type_stats {
	char type[PVM_OP_TYPE_MAX];
	size_t by_state[PVM_OP_STATE_COUNT];
	size_t total;
	uint64_t retries;
};

static int cmp_type(const void *a, const void *b)
{
	return strcmp(((const struct type_stats *)a)->type, ((const struct type_stats *)b)->type);
}

int ctl_queue_stats(struct ctl *c)
{
	if (c->nargs) {
		ctl_err("queue stats takes no argument");
		return CTL_USAGE;
	}
	struct pvm_queue *q;
	int ex = open_journal(c, &q);
	if (ex)
		return ex;
	struct pvm_queue_stats st;
	struct pvm_op **ops = NULL;
	size_t n = 0, damaged = 0, ntypes = 0, nquar = 0;
	struct type_stats *types = NULL;
	struct pvm_quarantine_entry *quar = NULL;
	const struct pvm_op *oldest = NULL; /* the queued or waiting one submitted first */
	struct pvm_queue_filter f = {.state = PVM_KEEP};
	int rc;
	if ((rc = pvm_queue_stats(q, &st)) || (rc = pvm_queue_list(q, &f, &ops, &n, &damaged)) ||
	    (rc = pvm_queue_quarantine_list(q, &quar, &nquar))) {
		ctl_err("cannot read the journal in %s: %s", c->state_dir, pvm_strerror(rc));
		ex = CTL_ERROR;
		goto free_all;
	}
	types = calloc(n ? n : 1, sizeof(*types));
	if (!types) {
		ex = CTL_ERROR;
		goto free_all;
	}
	uint64_t retries_all = 0, retries_active = 0;
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;
		while (k < ntypes && strcmp(types[k].type, ops[i]->type) != 0)
			k++;
		if (k == ntypes)
			memcpy(types[ntypes++].type, ops[i]->type, sizeof(types[k].type));
		types[k].by_state[ops[i]->state]++;
		types[k].total++;
		types[k].retries += ops[i]->retries;
		retries_all += ops[i]->retries;
		if (pvm_op_state_active(ops[i]->state))
			retries_active += ops[i]->retries;
		if ((ops[i]->state == PVM_OP_QUEUED || ops[i]->state == PVM_OP_WAITING) &&
		    (!oldest || ops[i]->created_ms < oldest->created_ms))
			oldest = ops[i];
	}
	qsort(types, ntypes, sizeof(*types), cmp_type);
	struct ctl_daemon d;
	ctl_daemon_probe(c, &d);
	int64_t now = pvm_now_ms();
	char ts[40], dur[32];

	if (c->json) {
		json_t *bys = json_object();
		for (int s = 0; s < PVM_OP_STATE_COUNT; s++)
			json_object_set_new(bys, pvm_op_state_name((enum pvm_op_state)s),
			                    json_integer((json_int_t)st.by_state[s]));
		json_t *byt = json_object();
		for (size_t k = 0; k < ntypes; k++) {
			json_t *o = json_object();
			for (int s = 0; s < PVM_OP_STATE_COUNT; s++)
				json_object_set_new(o, pvm_op_state_name((enum pvm_op_state)s),
				                    json_integer((json_int_t)types[k].by_state[s]));
			json_object_set_new(o, "total", json_integer((json_int_t)types[k].total));
			json_object_set_new(o, "retries",
			                    json_integer((json_int_t)types[k].retries));
			json_object_set_new(byt, types[k].type, o);
		}
		json_t *old = json_null();
		if (oldest)
			old = json_pack(
			        "{s:I, s:s, s:s?, s:s, s:s, s:I}", "id", (json_int_t)oldest->id,
			        "type", oldest->type, "instance_uuid",
			        oldest->instance_uuid[0] ? oldest->instance_uuid : NULL, "state",
			        pvm_op_state_name(oldest->state), "due",
			        pvm_fmt_time(oldest->due_ms, ts, sizeof(ts)), "waiting_ms",
			        (json_int_t)(now > oldest->created_ms ? now - oldest->created_ms
			                                              : 0));
		json_t *qa = json_array();
		for (size_t i = 0; i < nquar; i++)
			json_array_append_new(
			        qa, json_pack("{s:I, s:s, s:s}", "id", (json_int_t)quar[i].id,
			                      "reason", quar[i].reason, "when",
			                      pvm_fmt_time(quar[i].when_ms, ts, sizeof(ts))));
		json_t *out = json_pack(
		        "{s:I, s:o, s:o, s:o, s:{s:I, s:I}, s:I, s:o, s:I, s:{s:I, s:I, s:I}, s:o}",
		        "total", (json_int_t)st.total, "by_state", bys, "by_type", byt,
		        "oldest_waiting", old, "retries", "total", (json_int_t)retries_all,
		        "active", (json_int_t)retries_active, "quarantined",
		        (json_int_t)st.quarantined, "quarantine", qa, "damaged",
		        (json_int_t)damaged, "journal", "map_bytes", (json_int_t)st.map_size,
		        "used_bytes", (json_int_t)st.map_used, "max_bytes",
		        (json_int_t)st.map_size_max, "daemon", ctl_daemon_json(&d));
		if (d.state == CTL_DAEMON_STOPPED)
			json_object_set_new(out, "resume_on_start", active_ids(q));
		ex = ctl_print_json(out);
		json_decref(out);
		goto free_all;
	}

	size_t active = 0;
	for (int s = 0; s < PVM_OP_STATE_COUNT; s++)
		if (pvm_op_state_active((enum pvm_op_state)s))
			active += st.by_state[s];
	printf("Journal %s: %zu operation%s, %zu active\n\n", c->state_dir, st.total,
	       st.total == 1 ? "" : "s", active);
	static const char *const hdr[] = {"TYPE",      "QUEUED",    "RUNNING", "WAITING",
	                                  "REVERTING", "SUCCEEDED", "FAILED",  "CANCELLED",
	                                  "TOTAL",     "RETRIES"};
	struct ctl_table *t = ctl_table_create(10, hdr);
	for (size_t k = 0; k < ntypes; k++) {
		ctl_table_add(t, types[k].type);
		for (int s = 0; s < PVM_OP_STATE_COUNT; s++)
			ctl_table_addf(t, "%zu", types[k].by_state[s]);
		ctl_table_addf(t, "%zu", types[k].total);
		ctl_table_addf(t, "%llu", (unsigned long long)types[k].retries);
	}
	ctl_table_add(t, "all");
	for (int s = 0; s < PVM_OP_STATE_COUNT; s++)
		ctl_table_addf(t, "%zu", st.by_state[s]);
	ctl_table_addf(t, "%zu", st.total);
	ctl_table_addf(t, "%llu", (unsigned long long)retries_all);
	ctl_table_print(t, stdout, 0x3feu);
	ctl_table_destroy(t);
	printf("\n");
	if (oldest)
		printf("Oldest waiting:  operation %llu (%s%s%s, %s), due %s, submitted %s ago\n",
		       (unsigned long long)oldest->id, oldest->type,
		       oldest->instance_uuid[0] ? " on " : "", oldest->instance_uuid,
		       pvm_op_state_name(oldest->state),
		       pvm_fmt_time(oldest->due_ms, ts, sizeof(ts)),
		       ctl_fmt_duration(now - oldest->created_ms, dur, sizeof(dur)));
	else
		printf("Oldest waiting:  none\n");
	printf("Retries:         %llu in all, %llu on active operations\n",
	       (unsigned long long)retries_all, (unsigned long long)retries_active);
	printf("Journal map:     %.1f MiB used of %.1f MiB (grows to at most %.0f MiB)\n",
	       (double)st.map_used / 1048576.0, (double)st.map_size / 1048576.0,
	       (double)st.map_size_max / 1048576.0);
	printf("Quarantined:     %zu%s\n", st.quarantined,
	       st.quarantined ? " (damaged records kept apart; listed below)" : "");
	for (size_t i = 0; i < nquar; i++)
		printf("  operation %llu, %s: %s\n", (unsigned long long)quar[i].id,
		       pvm_fmt_time(quar[i].when_ms, ts, sizeof(ts)), quar[i].reason);
	if (damaged)
		printf("Damaged:         %zu record%s not yet quarantined\n", damaged,
		       damaged == 1 ? "" : "s");
	printf("powervmd:        %s%s\n", ctl_daemon_state_name(d.state),
	       d.state == CTL_DAEMON_RUNNING && d.paused ? " (paused)" : "");
	daemon_note(&d, &st, stdout);
	ex = CTL_OK;
free_all:
	free(quar);
	free(types);
	pvm_op_list_free(ops, n);
	pvm_queue_close(q);
	return ex;
}

/* ---- queue watch ---------------------------------------------------------------------- */

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !interrupted)
		;
}

/* Parses "2026-11-26T10:00:00.123Z" (pvm_fmt_time's form) into epoch ms; 0 when absent. */
static int64_t parse_time(const json_t *v)
{
	const char *s = json_string_value(v);
	struct tm tm = {0};
	int ms = 0;
	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
	                 &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

static int term_cols(void)
{
	struct winsize ws;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

struct watch_view {
	char state[16];
	int progress, step, attempts;
};

/* Formats the one status line of an operation (without a newline). */
static void status_line(const json_t *op, int cols, char *buf, size_t n)
{
	const char *state = json_string_value(json_object_get(op, "state"));
	const char *type = json_string_value(json_object_get(op, "type"));
	int progress = (int)json_integer_value(json_object_get(op, "progress"));
	int step = (int)json_integer_value(json_object_get(op, "step"));
	int attempts = (int)json_integer_value(json_object_get(op, "attempts"));
	bool revert = state && strcmp(state, "failed") != 0 && strcmp(state, "succeeded") != 0 &&
	              strcmp(state, "cancelled") != 0 &&
	              json_is_string(json_object_get(op, "direction")) &&
	              strcmp(json_string_value(json_object_get(op, "direction")), "revert") == 0;
	int64_t start = parse_time(json_object_get(op, "started"));
	if (!start)
		start = parse_time(json_object_get(op, "created"));
	int64_t end = parse_time(json_object_get(op, "finished"));
	int64_t now = end ? end : pvm_now_ms();
	char bar[64], dur[32], extra[96] = "";
	int bw = cols >= 110 ? 30 : cols >= 90 ? 20 : 10;
	ctl_fmt_bar(progress, bw, bar, sizeof(bar));
	if (state && strcmp(state, "waiting") == 0) {
		int64_t due = parse_time(json_object_get(op, "due"));
		if (due > now) {
			char d2[32];
			snprintf(extra, sizeof(extra), ", due in %s",
			         ctl_fmt_duration(due - now, d2, sizeof(d2)));
		}
	}
	snprintf(buf, n, "operation %lld %s %s %3d%%  %s%s  step %d attempt %d%s  %s",
	         json_integer_value(json_object_get(op, "id")), type ? type : "?", bar, progress,
	         state ? state : "?", revert ? " (undo)" : "", step, attempts, extra,
	         ctl_fmt_duration(now - start, dur, sizeof(dur)));
	if ((int)strlen(buf) >= cols && cols > 20)
		buf[cols - 1] = '\0';
}

/* Fetches the operation: from the daemon when it answers, else from the journal.
 * Returns CTL_OK with *out, CTL_NOT_FOUND, or CTL_ERROR (said). *via_daemon tells which. */
static int fetch(struct ctl *c, uint64_t id, const char *wait, struct pvm_queue **q,
                 bool try_daemon, json_t **out, bool *via_daemon)
{
	*out = NULL;
	if (try_daemon) {
		char path[96];
		snprintf(path, sizeof(path), "/v1/operations/%llu%s%s", (unsigned long long)id,
		         wait ? "?wait=" : "", wait ? wait : "");
		struct ctl_http_resp r;
		int rc = ctl_http(c->socket_path, "GET", path, NULL, 30000, &r);
		if (rc == 0 && r.status == 200) {
			*out = json_loads(r.body, 0, NULL);
			ctl_http_resp_fini(&r);
			if (*out) {
				*via_daemon = true;
				return CTL_OK;
			}
		} else if (rc == 0 && r.status == 404) {
			ctl_http_resp_fini(&r);
			ctl_err("no operation %llu (powervmd does not know it; finished operations "
			        "are purged after powervm_retention_hours)",
			        (unsigned long long)id);
			return CTL_NOT_FOUND;
		} else {
			ctl_http_resp_fini(&r);
		}
	}
	*via_daemon = false;
	int ex;
	if (!*q && (ex = open_journal(c, q)))
		return ex;
	struct pvm_op *op = NULL;
	if ((ex = get_op(c, *q, id, &op)))
		return ex;
	*out = op_json(op);
	pvm_op_free(op);
	return *out ? CTL_OK : CTL_ERROR;
}

int ctl_watch_id(struct ctl *c, uint64_t id)
{
	bool tty = isatty(STDOUT_FILENO) && !c->json;
	struct sigaction sa = {.sa_handler = on_sigint}, old_int, old_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	struct pvm_queue *q = NULL;
	struct watch_view last = {.progress = -1};
	bool first = true, said_stopped = false, line_open = false;
	int ex = CTL_OK, journal_rounds = 0;
	json_t *op = NULL;
	for (;;) {
		bool via_daemon = false;
		/* In journal mode, look for the daemon again every 2 s. */
		bool try_daemon = journal_rounds % 8 == 0;
		json_decref(op);
		ex = fetch(c, id, first ? NULL : "0.5", &q, try_daemon, &op, &via_daemon);
		if (ex)
			break;
		journal_rounds = via_daemon ? 0 : journal_rounds + 1;
		const char *state = json_string_value(json_object_get(op, "state"));
		enum pvm_op_state s = PVM_OP_QUEUED;
		if (!state || pvm_op_state_parse(state, &s) != 0) {
			ctl_err("operation %llu has an unknown state", (unsigned long long)id);
			ex = CTL_ERROR;
			break;
		}
		bool done = s == PVM_OP_SUCCEEDED || s == PVM_OP_FAILED || s == PVM_OP_CANCELLED;
		struct watch_view v = {
		        .progress = (int)json_integer_value(json_object_get(op, "progress")),
		        .step = (int)json_integer_value(json_object_get(op, "step")),
		        .attempts = (int)json_integer_value(json_object_get(op, "attempts"))};
		snprintf(v.state, sizeof(v.state), "%s", state);
		bool changed = strcmp(v.state, last.state) != 0 || v.progress != last.progress ||
		               v.step != last.step || v.attempts != last.attempts;
		last = v;
		if (!via_daemon && !said_stopped && !done) {
			struct ctl_daemon d;
			ctl_daemon_probe(c, &d);
			if (d.state == CTL_DAEMON_STOPPED) {
				if (line_open)
					fputc('\n', stdout);
				line_open = false;
				fprintf(stderr,
				        "powervmctl: powervmd is not running: operation %llu makes "
				        "no "
				        "progress until it starts; watching the journal (Ctrl-C "
				        "stops)\n",
				        (unsigned long long)id);
				said_stopped = true;
			}
		}
		if (c->json) {
			if (changed || done) {
				char *s1 = json_dumps(op, JSON_COMPACT | JSON_PRESERVE_ORDER);
				if (s1)
					printf("%s\n", s1);
				free(s1);
			}
		} else if (tty) {
			char line[512];
			status_line(op, term_cols(), line, sizeof(line));
			printf("\r%s\033[K", line);
			line_open = true;
		} else if (changed || done) {
			char line[512];
			status_line(op, 1000, line, sizeof(line));
			printf("%s\n", line);
		}
		fflush(stdout);
		first = false;
		if (done) {
			if (line_open)
				fputc('\n', stdout);
			line_open = false;
			if (!c->json) {
				const char *err = json_string_value(json_object_get(op, "error"));
				const char *code =
				        json_string_value(json_object_get(op, "error_code"));
				if (s == PVM_OP_SUCCEEDED)
					printf("operation %llu succeeded\n",
					       (unsigned long long)id);
				else
					printf("operation %llu %s%s%s%s%s%s (details: powervmctl "
					       "queue "
					       "show %llu)\n",
					       (unsigned long long)id, state,
					       err || code ? ": " : "", code ? "[" : "",
					       code ? code : "", code ? "] " : "", err ? err : "",
					       (unsigned long long)id);
			}
			ex = s == PVM_OP_SUCCEEDED ? CTL_OK : CTL_OP_FAILED;
			break;
		}
		if (interrupted) {
			if (line_open)
				fputc('\n', stdout);
			line_open = false;
			ex = 130;
			break;
		}
		if (!via_daemon)
			sleep_ms(250);
		if (interrupted) {
			if (line_open)
				fputc('\n', stdout);
			line_open = false;
			ex = 130;
			break;
		}
	}
	if (line_open)
		fputc('\n', stdout);
	fflush(stdout);
	json_decref(op);
	pvm_queue_close(q);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	return ex;
}

int ctl_queue_watch(struct ctl *c)
{
	uint64_t id;
	int ex = id_arg(c, &id);
	if (ex)
		return ex;
	return ctl_watch_id(c, id);
}
