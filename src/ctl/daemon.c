/* daemon.c: the commands that go through powervmd's local API (host, instances, queue
 * retry|cancel|purge, submit, pause, resume), and the probe that tells the journal
 * commands whether powervmd runs.
 *
 * Changes always go through the daemon, never into the journal directly: the daemon is the
 * journal's one writer (it holds powervmd.lock), and its engine must hear of every change.
 * When it does not answer, a command says so and what to do, and exits CTL_NO_DAEMON.
 *
 * The probe asks /healthz and, when nothing answers, whether some process holds the
 * journal's flock (powervmd.lock) by reading /proc/locks: it never takes the lock itself,
 * which could make a powervmd starting at that moment refuse to start.
 */
#include "ctl.h"

#include "pvm/error.h"
#include "pvm/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define CALL_TIMEOUT_MS 30000

/* 1 when a process holds a flock on <state_dir>/powervmd.lock, 0 when none does (or the
 * file does not exist), -1 when it cannot be told. */
static int journal_lock_held(const char *state_dir)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/powervmd.lock", state_dir);
	struct stat st;
	if (stat(path, &st) != 0)
		return errno == ENOENT ? 0 : -1;
	FILE *f = fopen("/proc/locks", "re");
	if (!f)
		return -1;
	char line[256];
	int held = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		unsigned long long ino;
		char kind[16];
		/* "7: FLOCK  ADVISORY  WRITE 11357 fe:00:10953222 0 EOF"; waiters carry "->". */
		if (sscanf(line, "%*d: %15s %*s %*s %*d %x:%x:%llu", kind, &maj, &min, &ino) != 4)
			continue;
		if (strcmp(kind, "FLOCK") == 0 && maj == major(st.st_dev) &&
		    min == minor(st.st_dev) && ino == (unsigned long long)st.st_ino) {
			held = 1;
			break;
		}
	}
	fclose(f);
	return held;
}

const char *ctl_daemon_state_name(enum ctl_daemon_state s)
{
	switch (s) {
	case CTL_DAEMON_RUNNING:
		return "running";
	case CTL_DAEMON_STARTING:
		return "holds the journal, API not answering";
	case CTL_DAEMON_STOPPED:
		return "not running";
	default:
		return "unknown (cannot connect to its socket)";
	}
}

void ctl_daemon_probe(const struct ctl *c, struct ctl_daemon *d)
{
	memset(d, 0, sizeof(*d));
	struct ctl_http_resp r;
	int rc = ctl_http(c->socket_path, "GET", "/healthz", NULL, 3000, &r);
	if (rc == 0) {
		d->state = CTL_DAEMON_RUNNING;
		json_t *j = json_loads(r.body, 0, NULL);
		const char *s = json_string_value(json_object_get(j, "status"));
		d->ready = r.status == 200 && s && strcmp(s, "ready") == 0;
		d->paused = json_is_true(json_object_get(j, "paused"));
		json_decref(j);
		ctl_http_resp_fini(&r);
		return;
	}
	int held = journal_lock_held(c->state_dir);
	if (rc == -EACCES || rc == -EPERM)
		d->state = held == 0 ? CTL_DAEMON_STOPPED : CTL_DAEMON_UNKNOWN;
	else if (held == 1 || rc == PVM_ETIMEDOUT)
		d->state = CTL_DAEMON_STARTING;
	else
		d->state = CTL_DAEMON_STOPPED;
}

json_t *ctl_daemon_json(const struct ctl_daemon *d)
{
	static const char *const names[] = {"unknown", "running", "starting", "stopped"};
	json_t *running = d->state == CTL_DAEMON_RUNNING   ? json_true()
	                  : d->state == CTL_DAEMON_UNKNOWN ? json_null()
	                                                   : json_false();
	return json_pack("{s:s, s:o, s:o}", "state", names[d->state], "running", running, "paused",
	                 d->state == CTL_DAEMON_RUNNING ? json_boolean(d->paused) : json_null());
}

/* One call to the API. Transport failures are said here (CTL_NO_DAEMON, CTL_ERROR); on an
 * answer returns CTL_OK with *status and *json (the body parsed; NULL when not JSON). */
static int call(const struct ctl *c, const char *method, const char *path, const char *body,
                int *status, json_t **json)
{
	*json = NULL;
	struct ctl_http_resp r;
	int rc = ctl_http(c->socket_path, method, path, body, CALL_TIMEOUT_MS, &r);
	if (rc == 0) {
		*status = r.status;
		*json = json_loads(r.body, JSON_DECODE_ANY, NULL);
		ctl_http_resp_fini(&r);
		return CTL_OK;
	}
	if (rc == -ENOENT || rc == -ECONNREFUSED) {
		if (journal_lock_held(c->state_dir) == 1) {
			ctl_err("powervmd holds the journal in %s but does not answer on %s: it is "
			        "starting (journal recovery, PowerVM logon) or stopping. Wait and "
			        "try "
			        "again; its log says what it is doing",
			        c->state_dir, c->socket_path);
			return CTL_NO_DAEMON;
		}
		ctl_err("powervmd is not running (nothing answers on %s). Start it "
		        "(`systemctl start powervmd`, or `powervmd --paused` to inspect the queue "
		        "before any step runs) and try again. The journal reads (queue list, show, "
		        "stats, watch) work without it",
		        c->socket_path);
		return CTL_NO_DAEMON;
	}
	if (rc == -EACCES || rc == -EPERM) {
		ctl_err("not allowed to connect to %s (%s): the socket is mode 0660; run as root "
		        "or "
		        "as a member of its group, with your uid in powervm_api_allowed_uids "
		        "(docs/operations.md, Permissions)",
		        c->socket_path, pvm_strerror(rc));
		return CTL_ERROR;
	}
	if (rc == PVM_ETIMEDOUT) {
		ctl_err("powervmd did not answer on %s within %d s: it may be overloaded or stuck; "
		        "see its log and /metrics",
		        c->socket_path, CALL_TIMEOUT_MS / 1000);
		return CTL_NO_DAEMON;
	}
	ctl_err("cannot talk to powervmd on %s: %s", c->socket_path, pvm_strerror(rc));
	return CTL_ERROR;
}

static const char *err_field(const json_t *j, const char *name)
{
	return json_string_value(json_object_get(json_object_get(j, "error"), name));
}

/* Says what an error answer means and returns its exit status. what names the object
 * ("operation 12") or is NULL. */
static int api_error(const struct ctl *c, int status, const json_t *j, const char *what)
{
	const char *msg = err_field(j, "message");
	const char *field = err_field(j, "field");
	if (!msg)
		msg = "(no message)";
	switch (status) {
	case 400:
		ctl_err("powervmd refused the request: %s%s%s", field ? field : "",
		        field ? ": " : "", msg);
		return CTL_ERROR;
	case 403:
		ctl_err("powervmd refused your user (uid %u): add it to powervm_api_allowed_uids "
		        "in "
		        "%s and reload powervmd (root and powervmd's own user are always allowed)",
		        (unsigned)geteuid(), c->config ? c->config : "its configuration");
		return CTL_ERROR;
	case 404:
		ctl_err("%s: not found (%s)", what ? what : "powervmd", msg);
		return CTL_NOT_FOUND;
	case 409:
		ctl_err("%s: refused: %s", what ? what : "powervmd", msg);
		return CTL_CONFLICT;
	case 503:
		ctl_err("powervmd is not ready (%s): it is starting; try again in a moment", msg);
		return CTL_NO_DAEMON;
	case 507:
		ctl_err("the journal is full (%s): purge finished operations (`powervmctl queue "
		        "purge --older-than 1d`) or raise powervm_journal_max_size_mb",
		        msg);
		return CTL_ERROR;
	default:
		ctl_err("powervmd answered %d: %s (see its log)", status, msg);
		return CTL_ERROR;
	}
}

static int no_args(const struct ctl *c, const char *cmd)
{
	if (c->nargs) {
		ctl_err("%s takes no argument (got '%s'); see powervmctl %s --help", cmd,
		        c->args[0], cmd);
		return CTL_USAGE;
	}
	return CTL_OK;
}

static int id_arg(const struct ctl *c, const char *cmd, uint64_t *id)
{
	if (c->nargs != 1 || ctl_parse_id(c->args[0], id) != 0) {
		ctl_err("%s needs one operation id (a number from 1); see powervmctl %s --help",
		        cmd, cmd);
		return CTL_USAGE;
	}
	return CTL_OK;
}

/* Prints a scalar JSON value as text into buf. */
static const char *scalar(const json_t *v, char *buf, size_t n)
{
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v))
		snprintf(buf, n, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, n, "%g", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, n, "%s", json_is_true(v) ? "yes" : "no");
	else if (json_is_null(v))
		snprintf(buf, n, "-");
	else {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		snprintf(buf, n, "%s", s ? s : "?");
		free(s);
	}
	return buf;
}

/* GET path; prints the JSON body with --json, else hands it to show(). */
static int get_and_show(struct ctl *c, const char *path, const char *what,
                        void (*show)(const json_t *))
{
	int status;
	json_t *j;
	int ex = call(c, "GET", path, NULL, &status, &j);
	if (ex)
		return ex;
	if (status != 200) {
		if (status == 503)
			ctl_err("powervmd has not read the %s from PowerVM yet (%s): try again in "
			        "a "
			        "moment",
			        what,
			        err_field(j, "message") ? err_field(j, "message") : "not ready");
		ex = status == 503 ? CTL_NO_DAEMON : api_error(c, status, j, what);
		json_decref(j);
		return ex;
	}
	if (!j) {
		ctl_err("powervmd answered %s with something that is not JSON", path);
		return CTL_ERROR;
	}
	if (c->json)
		ex = ctl_print_json(j);
	else
		show(j);
	json_decref(j);
	return ex;
}

static void show_host(const json_t *h)
{
	static const char *const hdr[] = {"FIELD", "VALUE"};
	struct ctl_table *t = ctl_table_create(2, hdr);
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)h, k, v)
	{
		char b[256];
		ctl_table_add(t, k);
		ctl_table_add(t, scalar(v, b, sizeof(b)));
	}
	ctl_table_print(t, stdout, 0);
	ctl_table_destroy(t);
}

int ctl_host(struct ctl *c)
{
	int ex = no_args(c, "host");
	return ex ? ex : get_and_show(c, "/v1/host", "managed system", show_host);
}

static void show_instances(const json_t *j)
{
	static const char *const cols[] = {"name",      "uuid",           "id",    "state",
	                                   "type",      "memory_mb",      "vcpus", "proc_units",
	                                   "rmc_state", "migration_state"};
	static const char *const hdr[] = {"NAME",      "UUID",  "ID",         "STATE", "TYPE",
	                                  "MEMORY_MB", "VCPUS", "PROC_UNITS", "RMC",   "MIGRATION"};
	const json_t *arr = json_object_get(j, "instances");
	struct ctl_table *t = ctl_table_create(10, hdr);
	size_t i;
	const json_t *p;
	json_array_foreach(arr, i, p)
	{
		for (size_t k = 0; k < 10; k++) {
			char b[128];
			ctl_table_add(t, scalar(json_object_get(p, cols[k]), b, sizeof(b)));
		}
	}
	if (!json_array_size(arr))
		printf("No partition on this managed system.\n");
	else
		ctl_table_print(t, stdout, 1u << 2 | 1u << 5 | 1u << 6 | 1u << 7);
	ctl_table_destroy(t);
}

int ctl_instances(struct ctl *c)
{
	int ex = no_args(c, "instances");
	return ex ? ex : get_and_show(c, "/v1/instances", "partitions", show_instances);
}

/* POST a control request to operation id; prints the JSON with --json. */
static int op_post(struct ctl *c, uint64_t id, const char *verb, json_t **out)
{
	char path[96], what[64];
	snprintf(path, sizeof(path), "/v1/operations/%llu/%s", (unsigned long long)id, verb);
	snprintf(what, sizeof(what), "operation %llu", (unsigned long long)id);
	int status;
	json_t *j;
	int ex = call(c, "POST", path, "{}", &status, &j);
	if (ex)
		return ex;
	if (status == 404) {
		ctl_err("no operation %llu (powervmd does not know it: finished operations are "
		        "purged after powervm_retention_hours; `powervmctl queue list` shows what "
		        "is there)",
		        (unsigned long long)id);
		json_decref(j);
		return CTL_NOT_FOUND;
	}
	if (status == 409) {
		const char *code = err_field(j, "code");
		const char *state =
		        json_string_value(json_object_get(json_object_get(j, "error"), "state"));
		if (code && strcmp(code, "secrets_erased") == 0)
			ctl_err("operation %llu cannot be retried: its secret params were erased "
			        "when "
			        "it failed. Submit it again (with a new idempotency key)",
			        (unsigned long long)id);
		else if (strcmp(verb, "retry") == 0)
			ctl_err("operation %llu is %s: only a failed operation can be retried%s",
			        (unsigned long long)id, state ? state : "not failed",
			        state && strcmp(state, "succeeded") != 0 &&
			                        strcmp(state, "cancelled") != 0
			                ? " (it is still active: `powervmctl queue watch` it)"
			                : "");
		else
			ctl_err("operation %llu has already finished (%s): nothing to cancel",
			        (unsigned long long)id, state ? state : "finished");
		json_decref(j);
		return CTL_CONFLICT;
	}
	if (status != 200) {
		ex = api_error(c, status, j, what);
		json_decref(j);
		return ex;
	}
	*out = j;
	return CTL_OK;
}

int ctl_queue_retry(struct ctl *c)
{
	uint64_t id;
	json_t *j = NULL;
	int ex = id_arg(c, "queue retry", &id);
	if (ex || (ex = op_post(c, id, "retry", &j)))
		return ex;
	if (c->json)
		ex = ctl_print_json(j);
	else
		printf("operation %llu is %s again: it starts over from its first step (its "
		       "history is kept). Follow it: powervmctl queue watch %llu\n",
		       (unsigned long long)id,
		       json_string_value(json_object_get(j, "state"))
		               ? json_string_value(json_object_get(j, "state"))
		               : "queued",
		       (unsigned long long)id);
	json_decref(j);
	return ex;
}

int ctl_queue_cancel(struct ctl *c)
{
	uint64_t id;
	json_t *j = NULL;
	int ex = id_arg(c, "queue cancel", &id);
	if (ex || (ex = op_post(c, id, "cancel", &j)))
		return ex;
	if (c->json) {
		ex = ctl_print_json(j);
	} else {
		const char *state = json_string_value(json_object_get(j, "state"));
		if (state && strcmp(state, "cancelled") == 0) {
			printf("operation %llu cancelled (it had not started)\n",
			       (unsigned long long)id);
		} else {
			printf("operation %llu (%s): cancel requested. Its next step undoes what "
			       "it "
			       "did, then it ends cancelled. Follow it: powervmctl queue watch "
			       "%llu\n",
			       (unsigned long long)id, state ? state : "active",
			       (unsigned long long)id);
			struct ctl_daemon d;
			ctl_daemon_probe(c, &d);
			if (d.state == CTL_DAEMON_RUNNING && d.paused)
				printf("powervmd is paused: the undo runs after `powervmctl "
				       "resume`.\n");
		}
	}
	json_decref(j);
	return ex;
}

int ctl_queue_purge(struct ctl *c)
{
	int ex = no_args(c, "queue purge");
	if (ex)
		return ex;
	int64_t secs = -1;
	if (c->opt_older_than && ctl_parse_duration(c->opt_older_than, &secs) != 0) {
		ctl_err("--older-than: '%s' is not a duration (e.g. 90s, 30m, 12h, 7d, 1w, 1d12h)",
		        c->opt_older_than);
		return CTL_USAGE;
	}
	char body[64] = "{}";
	if (secs >= 0)
		snprintf(body, sizeof(body), "{\"older_than_s\": %lld}", (long long)secs);
	int status;
	json_t *j;
	if ((ex = call(c, "POST", "/v1/operations/purge", body, &status, &j)))
		return ex;
	if (status != 200) {
		ex = api_error(c, status, j, "purge");
		json_decref(j);
		return ex;
	}
	if (c->json) {
		ex = ctl_print_json(j);
	} else {
		long long n = json_integer_value(json_object_get(j, "purged"));
		char d[32];
		if (secs >= 0)
			printf("purged %lld finished operation%s (finished more than %s ago)\n", n,
			       n == 1 ? "" : "s", ctl_fmt_duration(secs * 1000, d, sizeof(d)));
		else
			printf("purged %lld finished operation%s (older than the retention, "
			       "powervm_retention_hours)\n",
			       n, n == 1 ? "" : "s");
	}
	json_decref(j);
	return ex;
}

int ctl_submit(struct ctl *c)
{
	if (c->nargs != 1) {
		ctl_err("submit needs one file: the operation as JSON ('-' reads standard input); "
		        "see docs/examples/test_steps.json");
		return CTL_USAGE;
	}
	const char *file = c->args[0];
	json_error_t jerr;
	json_t *req = strcmp(file, "-") == 0 ? json_loadf(stdin, 0, &jerr)
	                                     : json_load_file(file, 0, &jerr);
	if (!req) {
		if (jerr.line > 0)
			ctl_err("%s:%d:%d: not valid JSON: %s", file, jerr.line, jerr.column,
			        jerr.text);
		else
			ctl_err("%s: %s", file, jerr.text);
		return CTL_ERROR;
	}
	if (!json_is_object(req)) {
		ctl_err("%s: the operation must be a JSON object with \"type\" and \"params\" "
		        "(see docs/examples/test_steps.json)",
		        file);
		json_decref(req);
		return CTL_ERROR;
	}
	char *body = json_dumps(req, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(req);
	if (!body)
		return CTL_ERROR;
	int status, ex;
	json_t *j;
	ex = call(c, "POST", "/v1/operations", body, &status, &j);
	free(body);
	if (ex)
		return ex;
	if (status == 400) {
		const char *field = err_field(j, "field");
		ctl_err("%s: %s%s%s", file, field ? field : "", field ? ": " : "",
		        err_field(j, "message") ? err_field(j, "message") : "refused");
		json_decref(j);
		return CTL_ERROR;
	}
	if (status == 409) {
		json_t *eid = json_object_get(json_object_get(j, "error"), "existing_id");
		ctl_err("%s: its idempotency key is already used by operation %lld with another "
		        "type, instance or params: use another idempotency_key, or look at that "
		        "operation (powervmctl queue show %lld)",
		        file, (long long)json_integer_value(eid),
		        (long long)json_integer_value(eid));
		json_decref(j);
		return CTL_CONFLICT;
	}
	if (status != 200 && status != 202) {
		ex = api_error(c, status, j, file);
		json_decref(j);
		return ex;
	}
	uint64_t id = (uint64_t)json_integer_value(json_object_get(j, "id"));
	const char *state = json_string_value(json_object_get(j, "state"));
	if (c->json) {
		if (!c->opt_watch)
			ex = ctl_print_json(j);
	} else if (status == 202) {
		printf("submitted operation %llu (%s). Follow it: powervmctl queue watch %llu\n",
		       (unsigned long long)id, state ? state : "queued", (unsigned long long)id);
	} else {
		printf("operation %llu already holds this idempotency key with the same request: "
		       "nothing new was submitted (it is %s)\n",
		       (unsigned long long)id, state ? state : "known");
	}
	json_decref(j);
	if (ex == CTL_OK && c->opt_watch)
		ex = ctl_watch_id(c, id);
	return ex;
}

static int pause_resume(struct ctl *c, const char *cmd)
{
	int ex = no_args(c, cmd);
	if (ex)
		return ex;
	char path[32];
	snprintf(path, sizeof(path), "/v1/%s", cmd);
	int status;
	json_t *j;
	if ((ex = call(c, "POST", path, "{}", &status, &j)))
		return ex;
	if (status != 200) {
		ex = api_error(c, status, j, cmd);
		json_decref(j);
		return ex;
	}
	if (c->json)
		ex = ctl_print_json(j);
	else if (json_is_true(json_object_get(j, "paused")))
		printf("powervmd paused: running steps finish, no new step starts; operations are "
		       "still accepted. `powervmctl resume` starts the steps again.\n");
	else
		printf("powervmd resumed: steps run again.\n");
	json_decref(j);
	return ex;
}

int ctl_pause(struct ctl *c)
{
	return pause_resume(c, "pause");
}

int ctl_resume(struct ctl *c)
{
	return pause_resume(c, "resume");
}
