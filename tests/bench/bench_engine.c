/* bench_engine.c: the engine benchmark (scripts/bench engine; docs/performance.md).
 *
 * Runs against a stack that tests/bench/engine.sh brought up (pvmsim with 2-second generic
 * jobs, powervmd with test operations and POOL workers), and measures:
 *
 * 1. Engine: OPS operations of type test_jobs (five steps, each a MigrateValidate job on
 *    the instance's partition). The partitions are created in pvmsim first with the PowerVM
 *    client library (setup, not timed; the first system holds at most 800, the rest go to
 *    the second: the steps address partitions without their system). Wall time runs from
 *    the first submission to the last operation's "finished" time (from its record); the
 *    ideal is the submission time plus five job durations (not-started + running time).
 *    A sampler reads /proc/PID/task every 10 ms (largest thread count, thread ids seen: a
 *    pool that re-creates threads shows more ids than threads, names) and /metrics every
 *    100 ms (powervmd_workers_busy). PowerVM requests per operation: the delta of
 *    powervmd_powervm_requests_total. CPU: utime+stime of /proc/PID/stat before and after,
 *    with pvmsim's, this process's and the machine's (/proc/stat) for context. Also
 *    printed: step runs, time inside steps and journal commits, from /metrics.
 * 2. Submissions: with the engine paused (POST /v1/pause, so nothing runs), CLIENTS
 *    threads, each with one keep-alive connection over the Unix socket, POST the same
 *    test_jobs body for PHASE_S seconds; only 202s count. Against it, the journal's
 *    in-process rate in the same run: a fresh journal (pvm_queue_open in JOURNAL_DIR, on
 *    the daemon's disk), CLIENTS threads calling pvm_queue_submit with the same type and
 *    params. RUNS runs of each, alternating; medians.
 *
 * The HTTP/1.1 client is written here (no libcurl): one connection per thread, keep-alive,
 * Content-Length or chunked answers. Every loop is bounded in count and in time.
 *
 * Usage: bench_engine --socket PATH --pvmsim URL --pid PID --journal-dir DIR
 *        [--sim-pid PID] [--ops N] [--pool N] [--job-ms MS] [--not-started-ms MS]
 *        [--clients N] [--runs N] [--phase-s S] [--timeout-s S] [--wait longpoll|list]
 *
 * --wait: how the clients learn that the operations finished. longpoll (the default, what
 * a client of the API does): each client thread long-polls GET /v1/operations/{id}?wait=20
 * for its operations in turn. list (a diagnostic that takes the API's long-poll machinery
 * out of the engine run): one GET /v1/operations?state=S&limit=1 per active state every
 * 200 ms until none is left; the records are read afterwards.
 */
#include "pvm/client.h"
#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/pvm_objects.h"
#include "pvm/queue.h"
#include "pvm/util.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS  256
#define MAX_RESP     (16u << 20)
#define MAX_TIDS     8192
#define MAX_NAMES    128
#define TARGET_MS    "sim-9009-42A-SN21F64EV"
#define SETUP_THREAD 4

static struct {
	const char *socket, *pvmsim, *journal_dir;
	int pid, sim_pid, ops, pool, job_ms, not_started_ms, clients, runs, phase_s, timeout_s;
	bool wait_list; /* --wait list: poll the list endpoint instead of per-op long-polls */
} cfg = {.ops = 1000,
         .pool = 8,
         .job_ms = 2000,
         .not_started_ms = 50,
         .clients = 32,
         .runs = 3,
         .phase_s = 3,
         .timeout_s = 300};

static double mono_s(void)
{
	return (double)pvm_mono_ns() / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	if (n <= 0)
		return 0;
	qsort(v, (size_t)n, sizeof(double), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- HTTP/1.1 over AF_UNIX ------------------------------------------------------------- */

struct conn {
	int fd;
	char *buf; /* received bytes not consumed yet */
	size_t len, cap;
	bool reused; /* at least one answer came on this connection */
};

static int conn_open(struct conn *c)
{
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (strlen(cfg.socket) >= sizeof(a.sun_path)) {
		close(c->fd);
		c->fd = -1;
		return PVM_ETOOBIG;
	}
	memcpy(a.sun_path, cfg.socket, strlen(cfg.socket) + 1);
	if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		int e = -errno;
		close(c->fd);
		c->fd = -1;
		return e;
	}
	c->len = 0;
	c->reused = false;
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->len = 0;
}

static void conn_fini(struct conn *c)
{
	conn_close(c);
	free(c->buf);
	c->buf = NULL;
	c->cap = 0;
}

/* Reads more bytes into c->buf before deadline (monotonic s). 0, -ECONNRESET at EOF,
 * PVM_ETIMEDOUT, PVM_ETOOBIG. */
static int conn_fill(struct conn *c, double deadline)
{
	if (c->len + 65536 > c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 131072;
		if (ncap > MAX_RESP + 65536)
			return PVM_ETOOBIG;
		char *nb = realloc(c->buf, ncap);
		if (!nb)
			return PVM_ENOMEM;
		c->buf = nb;
		c->cap = ncap;
	}
	for (;;) {
		double left = deadline - mono_s();
		if (left <= 0)
			return PVM_ETIMEDOUT;
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		int r = poll(&p, 1, (int)(left * 1000) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			continue;
		ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		c->len += (size_t)n;
		c->buf[c->len] = '\0';
		return 0;
	}
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static const char *find_header(const char *head, size_t hlen, const char *name)
{
	size_t nl = strlen(name);
	for (const char *p = head; p && p < head + hlen;) {
		const char *eol = strstr(p, "\r\n");
		if (!eol)
			return NULL;
		if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			return v;
		}
		p = eol + 2;
	}
	return NULL;
}

/* Parses one complete answer at the start of c->buf, reading more as needed. On 0:
 * *status, *body (malloc'd, NUL-terminated), *blen; the bytes are consumed. */
static int read_answer(struct conn *c, double deadline, int *status, char **body, size_t *blen,
                       bool *close_after)
{
	int rc;
	char *end;
	while (!(c->buf && c->len && (end = strstr(c->buf, "\r\n\r\n"))))
		if ((rc = conn_fill(c, deadline)))
			return rc;
	size_t hlen = (size_t)(end - c->buf) + 4;
	int maj = 0, min = 0;
	if (sscanf(c->buf, "HTTP/%d.%d %d", &maj, &min, status) != 3)
		return PVM_ECORRUPT;
	const char *cl = find_header(c->buf, hlen, "Content-Length");
	const char *te = find_header(c->buf, hlen, "Transfer-Encoding");
	const char *cn = find_header(c->buf, hlen, "Connection");
	*close_after = cn && strncasecmp(cn, "close", 5) == 0;
	if (te && strncasecmp(te, "chunked", 7) == 0) {
		/* De-chunk into out; the chunks follow the head. */
		size_t pos = hlen, olen = 0;
		char *out = malloc(1);
		if (!out)
			return PVM_ENOMEM;
		for (int guard = 0; guard < 1000000; guard++) {
			char *crlf;
			while (!(crlf = strstr(c->buf + pos, "\r\n")))
				if ((rc = conn_fill(c, deadline))) {
					free(out);
					return rc;
				}
			unsigned long sz = strtoul(c->buf + pos, NULL, 16);
			if (sz > MAX_RESP || olen + sz > MAX_RESP) {
				free(out);
				return PVM_ETOOBIG;
			}
			size_t data = (size_t)(crlf - c->buf) + 2;
			while (c->len < data + sz + 2)
				if ((rc = conn_fill(c, deadline))) {
					free(out);
					return rc;
				}
			if (sz == 0) { /* no trailers expected: the last CRLF */
				pos = data + 2;
				break;
			}
			char *no = realloc(out, olen + sz + 1);
			if (!no) {
				free(out);
				return PVM_ENOMEM;
			}
			out = no;
			memcpy(out + olen, c->buf + data, sz);
			olen += sz;
			pos = data + sz + 2;
		}
		out[olen] = '\0';
		memmove(c->buf, c->buf + pos, c->len - pos);
		c->len -= pos;
		*body = out;
		*blen = olen;
		return 0;
	}
	size_t n = cl ? (size_t)strtoull(cl, NULL, 10) : 0;
	if (n > MAX_RESP)
		return PVM_ETOOBIG;
	while (c->len < hlen + n)
		if ((rc = conn_fill(c, deadline)))
			return rc;
	char *out = malloc(n + 1);
	if (!out)
		return PVM_ENOMEM;
	memcpy(out, c->buf + hlen, n);
	out[n] = '\0';
	memmove(c->buf, c->buf + hlen + n, c->len - hlen - n);
	c->len -= hlen + n;
	*body = out;
	*blen = n;
	return 0;
}

/* One request on c (opened as needed). A keep-alive connection the server closed before
 * answering anything is reopened and the request sent once more. */
static int http(struct conn *c, const char *method, const char *target, const char *json,
                double timeout_s, int *status, char **body)
{
	char head[512];
	size_t jl = json ? strlen(json) : 0;
	int hl = json ? snprintf(head, sizeof(head),
	                         "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
	                         "application/json\r\nContent-Length: %zu\r\n\r\n",
	                         method, target, jl)
	              : snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: localhost\r\n\r\n",
	                         method, target);
	if (hl < 0 || (size_t)hl >= sizeof(head))
		return PVM_ETOOBIG;
	*body = NULL;
	for (int attempt = 0; attempt < 2; attempt++) {
		int rc = 0;
		if (c->fd < 0 && (rc = conn_open(c)))
			return rc;
		bool reused = c->reused;
		c->len = 0;
		/* header and body in one send when small: one packet for the server to read */
		char one[4096];
		if ((size_t)hl + jl <= sizeof(one)) {
			memcpy(one, head, (size_t)hl);
			if (jl)
				memcpy(one + hl, json, jl);
			rc = send_all(c->fd, one, (size_t)hl + jl);
		} else {
			rc = send_all(c->fd, head, (size_t)hl);
			if (!rc && jl)
				rc = send_all(c->fd, json, jl);
		}
		size_t blen = 0;
		bool close_after = false;
		if (!rc)
			rc = read_answer(c, mono_s() + timeout_s, status, body, &blen,
			                 &close_after);
		if (rc == 0) {
			c->reused = true;
			if (close_after)
				conn_close(c);
			return 0;
		}
		bool nothing = c->len == 0;
		conn_close(c);
		if (!(reused && nothing && (rc == -ECONNRESET || rc == -EPIPE)))
			return rc;
	}
	return -ECONNRESET;
}

/* ---- /proc and /metrics ---------------------------------------------------------------- */

static double proc_cpu_s(int pid)
{
	char path[64], buf[2048];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	/* after ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
	 * utime(14) stime(15) */
	unsigned long long ut = 0, st = 0;
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Busy and total jiffies of the whole machine (/proc/stat "cpu" line). */
static void machine_cpu(double *busy, double *total)
{
	unsigned long long v[8] = {0};
	FILE *f = fopen("/proc/stat", "r");
	*busy = *total = 0;
	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
	           &v[4], &v[5], &v[6], &v[7]) == 8) {
		for (int i = 0; i < 8; i++)
			*total += (double)v[i];
		*busy = *total - (double)v[3] - (double)v[4]; /* minus idle and iowait */
	}
	fclose(f);
}

/* Thread ids of pid into tids (at most max); returns the count or -1. */
static int proc_tids(int pid, int *tids, int max)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) && n < max)
		if (de->d_name[0] != '.')
			tids[n++] = atoi(de->d_name);
	closedir(d);
	return n;
}

static void thread_name(int pid, int tid, char *out, size_t n)
{
	char path[96];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", pid, tid);
	FILE *f = fopen(path, "r");
	out[0] = '\0';
	if (f) {
		if (fgets(out, (int)n, f))
			out[strcspn(out, "\n")] = '\0';
		fclose(f);
	}
	if (!out[0])
		snprintf(out, n, "?");
}

/* Names of pid's threads, grouped: "pvm-worker-N x8, pvm-api-N x4, ..." style. Counts
 * workers (names starting with "pvm-worker") into *workers. */
static void thread_names(int pid, char *out, size_t n, int *total, int *workers)
{
	int tids[512];
	int nt = proc_tids(pid, tids, 512);
	char names[MAX_NAMES][20];
	int counts[MAX_NAMES] = {0}, nn = 0;
	*total = nt;
	*workers = 0;
	for (int i = 0; i < nt; i++) {
		char nm[20];
		thread_name(pid, tids[i], nm, sizeof(nm));
		if (strncmp(nm, "pvm-worker", 10) == 0)
			(*workers)++;
		/* group numbered names: "pvm-worker-3", "pvm-api-x1" -> "...-N" */
		size_t l = strlen(nm), d = l;
		while (d > 0 && nm[d - 1] >= '0' && nm[d - 1] <= '9')
			d--;
		if (d < l && d > 0) {
			if (d > 1 && nm[d - 1] == 'x' && nm[d - 2] == '-')
				d--;
			if (nm[d - 1] == '-')
				snprintf(nm + d, sizeof(nm) - d, "N");
		}
		int j;
		for (j = 0; j < nn; j++)
			if (strcmp(names[j], nm) == 0)
				break;
		if (j == nn && nn < MAX_NAMES)
			snprintf(names[nn++], sizeof(names[0]), "%s", nm);
		if (j < MAX_NAMES)
			counts[j]++;
	}
	size_t off = 0;
	out[0] = '\0';
	for (int j = 0; j < nn && off < n; j++) {
		int w = counts[j] > 1
		                ? snprintf(out + off, n - off, "%s%s x%d", j ? ", " : "", names[j],
		                           counts[j])
		                : snprintf(out + off, n - off, "%s%s", j ? ", " : "", names[j]);
		if (w < 0)
			break;
		off += (size_t)w;
	}
}

struct sampler {
	pthread_t th;
	atomic_bool stop;
	int max_threads;
	int samples;
	int ntids;
	int tids[MAX_TIDS]; /* distinct ids seen */
	char names_at_max[512];
	double busy_sum; /* powervmd_workers_busy, read every 100 ms */
	int busy_samples;
};

static double metric(struct conn *c, const char *name);

static void *sampler_main(void *arg)
{
	struct sampler *s = arg;
	int tids[1024];
	struct conn mc = {.fd = -1};
	/* bounded: at most timeout_s of samples every 10 ms */
	for (long i = 0; !atomic_load(&s->stop) && i < (long)cfg.timeout_s * 100 + 1000; i++) {
		int n = proc_tids(cfg.pid, tids, 1024);
		if (n > 0) {
			s->samples++;
			for (int k = 0; k < n; k++) {
				int j;
				for (j = 0; j < s->ntids; j++)
					if (s->tids[j] == tids[k])
						break;
				if (j == s->ntids && s->ntids < MAX_TIDS)
					s->tids[s->ntids++] = tids[k];
			}
			if (n > s->max_threads) {
				int tot, w;
				s->max_threads = n;
				thread_names(cfg.pid, s->names_at_max, sizeof(s->names_at_max),
				             &tot, &w);
			}
		}
		if (i % 10 == 0) {
			double b = metric(&mc, "powervmd_workers_busy");
			if (b >= 0) {
				s->busy_sum += b;
				s->busy_samples++;
			}
		}
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	conn_fini(&mc);
	return NULL;
}

/* Value of an unlabelled metric in the /metrics text, or -1. */
static double metric(struct conn *c, const char *name)
{
	int st = 0;
	char *body = NULL;
	double v = -1;
	if (http(c, "GET", "/metrics", NULL, 10, &st, &body) == 0 && st == 200) {
		size_t nl = strlen(name);
		for (char *p = body; p && *p;) {
			if (strncmp(p, name, nl) == 0 && p[nl] == ' ') {
				v = strtod(p + nl + 1, NULL);
				break;
			}
			p = strchr(p, '\n');
			if (p)
				p++;
		}
	}
	free(body);
	return v;
}

/* Sum of every series of a metric (all labels) in the /metrics text, or -1. */
static double metric_sum(struct conn *c, const char *name)
{
	int st = 0;
	char *body = NULL;
	double v = -1;
	if (http(c, "GET", "/metrics", NULL, 10, &st, &body) == 0 && st == 200) {
		size_t nl = strlen(name);
		v = 0;
		for (char *p = body; p && *p;) {
			if (strncmp(p, name, nl) == 0 && (p[nl] == ' ' || p[nl] == '{')) {
				char *sp = strchr(p, p[nl] == '{' ? '}' : ' ');
				if (sp)
					v += strtod(sp + 1, NULL);
			}
			p = strchr(p, '\n');
			if (p)
				p++;
		}
	}
	free(body);
	return v;
}

/* ---- setup: the partitions ------------------------------------------------------------- */

static void instance_uuid(int i, char out[37])
{
	snprintf(out, 37, "b0000000-0000-4000-8000-%012x", (unsigned)i);
}

struct setup {
	struct pvm_client *client;
	char ms[4][64];
	int nms;
	atomic_int next, ms_index, failed;
	char err[640];
};

static void *setup_main(void *arg)
{
	struct setup *s = arg;
	for (int guard = 0; guard < cfg.ops; guard++) {
		int i = atomic_fetch_add(&s->next, 1);
		if (i >= cfg.ops || atomic_load(&s->failed))
			break;
		char inst[37], uuid[37], name[32];
		instance_uuid(i, inst);
		pvm_lpar_uuid_from_instance(inst, uuid);
		snprintf(name, sizeof(name), "bench-%04d", i);
		struct pvm_rest_error err = {0};
		struct pvm_lpar_spec spec = {
		        .uuid = uuid, .name = name, .memory_mb = 512, .vcpus = 1};
		char *body = pvm_build_lpar_create(&spec, &err);
		if (!body) {
			atomic_store(&s->failed, 1);
			snprintf(s->err, sizeof(s->err), "building a partition: %s", err.message);
			break;
		}
		int rc = -1;
		/* a full system answers 409: move on to the next system (bounded) */
		for (int k = atomic_load(&s->ms_index); k < s->nms; k = atomic_load(&s->ms_index)) {
			char path[160];
			snprintf(path, sizeof(path), "uom/ManagedSystem/%s/LogicalPartition",
			         s->ms[k]);
			struct pvm_req rq = {.method = PVM_PUT,
			                     .path = path,
			                     .content_type = "application/vnd.ibm.powervm.uom+xml; "
			                                     "type=LogicalPartition",
			                     .body = body,
			                     .body_len = strlen(body)};
			struct pvm_resp r = {0};
			rc = pvm_client_request(s->client, &rq, &r, &err);
			int status = r.status;
			pvm_resp_fini(&r);
			if (rc == 0 || status != 409 || !strstr(err.message, "maximum"))
				break;
			int expect = k;
			atomic_compare_exchange_strong(&s->ms_index, &expect, k + 1);
		}
		free(body);
		if (rc) {
			atomic_store(&s->failed, 1);
			snprintf(s->err, sizeof(s->err), "creating partition %s: %s", name,
			         err.message);
			break;
		}
	}
	return NULL;
}

static int create_partitions(double *secs)
{
	double t0 = mono_s();
	struct setup s = {0};
	struct pvm_client_opts o = {.endpoint = cfg.pvmsim,
	                            .user = "hscroot",
	                            .password = "abc123",
	                            .connect_retry_ms = 10000};
	struct pvm_rest_error err = {0};
	int rc = pvm_client_create(&o, &s.client, &err);
	if (!rc)
		rc = pvm_client_logon(s.client, &err);
	struct pvm_resp r = {0};
	if (!rc)
		rc = pvm_client_get(s.client, "uom/ManagedSystem", "group=None", NULL, &r, &err);
	if (!rc) {
		struct pvm_managed_system_list *l = NULL;
		rc = pvm_parse_managed_system(r.body, r.len, NULL, &l, &err);
		/* the daemon's system first (the stack's powervm_managed_system) */
		for (size_t i = 0; !rc && i < l->count && s.nms < 4; i++)
			if (l->items[i].name && strcmp(l->items[i].name, TARGET_MS) != 0)
				snprintf(s.ms[s.nms++], sizeof(s.ms[0]), "%s",
				         l->items[i].meta.uuid);
		for (size_t i = 0; !rc && i < l->count && s.nms < 4; i++)
			if (l->items[i].name && strcmp(l->items[i].name, TARGET_MS) == 0)
				snprintf(s.ms[s.nms++], sizeof(s.ms[0]), "%s",
				         l->items[i].meta.uuid);
		pvm_managed_system_list_free(l);
	}
	pvm_resp_fini(&r);
	if (rc) {
		fprintf(stderr, "bench_engine: pvmsim: %s\n", err.message);
		pvm_client_destroy(s.client);
		return rc;
	}
	pthread_t th[SETUP_THREAD];
	for (int i = 0; i < SETUP_THREAD; i++)
		pthread_create(&th[i], NULL, setup_main, &s);
	for (int i = 0; i < SETUP_THREAD; i++)
		pthread_join(th[i], NULL);
	pvm_client_destroy(s.client);
	*secs = mono_s() - t0;
	if (atomic_load(&s.failed)) {
		fprintf(stderr, "bench_engine: setup: %s\n", s.err);
		return PVM_EIO;
	}
	printf("setup: %d partitions created in pvmsim in %.1f s (%d system%s)\n", cfg.ops, *secs,
	       atomic_load(&s.ms_index) + 1, atomic_load(&s.ms_index) ? "s" : "");
	return 0;
}

/* ---- part 1: the engine run ------------------------------------------------------------ */

static const char *op_body(const char *inst, char *buf, size_t n)
{
	snprintf(buf, n,
	         "{\"type\":\"test_jobs\",\"instance_uuid\":\"%s\",\"params\":{\"target\":\"%s\"}}",
	         inst, TARGET_MS);
	return buf;
}

struct p1 {
	uint64_t *ids;
	double *finished_ms; /* epoch ms from the records, 0 while unknown */
	char (*state)[16];
	double deadline; /* monotonic */
	double submit_end[MAX_CLIENTS];
	atomic_int submit_err, wait_err, retries;
};

static struct p1 P1;

/* "2026-11-26T10:00:00.123Z" -> epoch ms, 0 on failure. */
static double parse_time_ms(const char *s)
{
	struct tm tm = {0};
	int ms = 0;
	if (!s || sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
	                 &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) < 6)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (double)timegm(&tm) * 1000.0 + ms;
}

static bool terminal(const char *st)
{
	return strcmp(st, "succeeded") == 0 || strcmp(st, "failed") == 0 ||
	       strcmp(st, "cancelled") == 0;
}

static void *p1_collect(int t, struct conn *cp, int wait_s);

static void *p1_client(void *arg)
{
	int t = (int)(intptr_t)arg;
	struct conn c = {.fd = -1};
	char body[256], inst[37];
	for (int i = t; i < cfg.ops && mono_s() < P1.deadline; i += cfg.clients) {
		instance_uuid(i, inst);
		int st = 0;
		char *resp = NULL;
		int rc = http(&c, "POST", "/v1/operations", op_body(inst, body, sizeof(body)), 30,
		              &st, &resp);
		json_t *j = rc == 0 && st == 202 ? json_loads(resp, 0, NULL) : NULL;
		if (j)
			P1.ids[i] = (uint64_t)json_integer_value(json_object_get(j, "id"));
		if (!P1.ids[i] && atomic_fetch_add(&P1.submit_err, 1) < 3)
			fprintf(stderr, "bench_engine: submit: rc %d status %d %s\n", rc, st,
			        resp ? resp : "");
		json_decref(j);
		free(resp);
	}
	P1.submit_end[t] = mono_s();
	if (cfg.wait_list) { /* --wait list: main() watches; the records are read after */
		conn_fini(&c);
		return NULL;
	}
	return p1_collect(t, &c, 20);
}

/* --wait list: no long-polls; every 200 ms, one GET per active state with limit=1 until
 * none is left (bounded by the run's deadline). */
static void wait_by_list(void)
{
	struct conn c = {.fd = -1};
	static const char *const states[] = {"queued", "running", "waiting", "reverting"};
	for (int guard = 0; guard < 100000 && mono_s() < P1.deadline; guard++) {
		bool any = false;
		for (int k = 0; k < 4 && !any; k++) {
			char target[96], *resp = NULL;
			int st = 0;
			snprintf(target, sizeof(target), "/v1/operations?state=%s&limit=1",
			         states[k]);
			json_t *j = http(&c, "GET", target, NULL, 10, &st, &resp) == 0 && st == 200
			                    ? json_loads(resp, 0, NULL)
			                    : NULL;
			any = !j || json_array_size(json_object_get(j, "operations")) > 0;
			json_decref(j);
			free(resp);
		}
		if (!any)
			break;
		struct timespec ts = {0, 200 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	conn_fini(&c);
}

static void *p1_reader(void *arg)
{
	struct conn c = {.fd = -1};
	return p1_collect((int)(intptr_t)arg, &c, 0);
}

/* The records of client t's operations: with wait_s > 0, long-polls until each is final. */
static void *p1_collect(int t, struct conn *cp, int wait_s)
{
	struct conn c = *cp;
	char target[96];
	for (int i = t; i < cfg.ops; i += cfg.clients) {
		if (!P1.ids[i])
			continue;
		/* long-polls, bounded by the run's deadline */
		for (int guard = 0; guard < 100000 && mono_s() < P1.deadline; guard++) {
			int st = 0;
			char *resp = NULL;
			snprintf(target, sizeof(target), "/v1/operations/%" PRIu64 "?wait=%d",
			         P1.ids[i], wait_s);
			int rc = http(&c, "GET", target, NULL, 40, &st, &resp);
			json_t *j = rc == 0 && st == 200 ? json_loads(resp, 0, NULL) : NULL;
			free(resp);
			if (!j) {
				if (atomic_fetch_add(&P1.wait_err, 1) < 3)
					fprintf(stderr,
					        "bench_engine: wait for %" PRIu64
					        ": rc %d status %d\n",
					        P1.ids[i], rc, st);
				struct timespec ts = {0, 100 * 1000 * 1000};
				nanosleep(&ts, NULL);
				continue;
			}
			const char *s = json_string_value(json_object_get(j, "state"));
			if (s && (terminal(s) || wait_s == 0)) {
				snprintf(P1.state[i], sizeof(P1.state[i]), "%s", s);
				P1.finished_ms[i] = parse_time_ms(
				        json_string_value(json_object_get(j, "finished")));
				atomic_fetch_add(
				        &P1.retries,
				        (int)json_integer_value(json_object_get(j, "retries")));
				json_decref(j);
				break;
			}
			json_decref(j);
		}
	}
	conn_fini(&c);
	return NULL;
}

struct p1_result {
	double submit_s, wall_s, wall_seen_s, ideal_s, cpu_s, requests, setup_s;
	double commits, step_s, steps, busy_mean;
	int succeeded, failed, unfinished, max_threads, idle_threads, idle_workers, tids_seen;
	int samples;
	char idle_names[512], names_at_max[512];
};

static int part1(struct p1_result *r)
{
	struct conn mc = {.fd = -1};
	P1.ids = calloc((size_t)cfg.ops, sizeof(uint64_t));
	P1.finished_ms = calloc((size_t)cfg.ops, sizeof(double));
	P1.state = calloc((size_t)cfg.ops, sizeof(*P1.state));
	if (!P1.ids || !P1.finished_ms || !P1.state)
		return PVM_ENOMEM;

	/* Let the daemon digest the setup's events (each partition created is re-read):
	 * wait until its PowerVM request counter holds still for a second (at most 60 s). */
	double prev = -2;
	for (int i = 0; i < 120; i++) {
		double v = metric(&mc, "powervmd_powervm_requests_total");
		if (v >= 0 && v == prev)
			break;
		prev = v;
		struct timespec ts = {1, 0};
		nanosleep(&ts, NULL);
	}
	thread_names(cfg.pid, r->idle_names, sizeof(r->idle_names), &r->idle_threads,
	             &r->idle_workers);

	static struct sampler smp;
	pthread_create(&smp.th, NULL, sampler_main, &smp);
	double req0 = metric(&mc, "powervmd_powervm_requests_total");
	double com0 = metric(&mc, "powervmd_journal_commits_total");
	double ss0 = metric_sum(&mc, "powervmd_step_seconds_sum");
	double sc0 = metric_sum(&mc, "powervmd_step_seconds_count");
	double cpu0 = proc_cpu_s(cfg.pid);
	double sim0 = cfg.sim_pid ? proc_cpu_s(cfg.sim_pid) : 0, self0 = proc_cpu_s(getpid());
	double mb0, mt0;
	machine_cpu(&mb0, &mt0);
	double t0_epoch = (double)pvm_now_ms();
	double t0 = mono_s();
	P1.deadline = t0 + cfg.timeout_s;
	pthread_t th[MAX_CLIENTS];
	for (int t = 0; t < cfg.clients; t++)
		pthread_create(&th[t], NULL, p1_client, (void *)(intptr_t)t);
	for (int t = 0; t < cfg.clients; t++)
		pthread_join(th[t], NULL);
	if (cfg.wait_list)
		wait_by_list();
	double t_seen = mono_s();
	double cpu1 = proc_cpu_s(cfg.pid);
	double mb1, mt1;
	machine_cpu(&mb1, &mt1);
	double sim_cpu = cfg.sim_pid ? proc_cpu_s(cfg.sim_pid) - sim0 : -1;
	double self_cpu = proc_cpu_s(getpid()) - self0;
	double req1 = metric(&mc, "powervmd_powervm_requests_total");
	r->commits = metric(&mc, "powervmd_journal_commits_total") - com0;
	r->step_s = metric_sum(&mc, "powervmd_step_seconds_sum") - ss0;
	r->steps = metric_sum(&mc, "powervmd_step_seconds_count") - sc0;
	atomic_store(&smp.stop, true);
	pthread_join(smp.th, NULL);
	conn_fini(&mc);
	if (cfg.wait_list) { /* read the records now, outside the measured window */
		for (int t = 0; t < cfg.clients; t++)
			pthread_create(&th[t], NULL, p1_reader, (void *)(intptr_t)t);
		for (int t = 0; t < cfg.clients; t++)
			pthread_join(th[t], NULL);
	}

	double sub_end = t0, last = 0;
	for (int t = 0; t < cfg.clients; t++)
		if (P1.submit_end[t] > sub_end)
			sub_end = P1.submit_end[t];
	for (int i = 0; i < cfg.ops; i++) {
		if (!P1.state[i][0] || !terminal(P1.state[i]))
			r->unfinished++;
		else if (strcmp(P1.state[i], "succeeded") == 0)
			r->succeeded++;
		else
			r->failed++;
		if (P1.finished_ms[i] > last)
			last = P1.finished_ms[i];
	}
	r->submit_s = sub_end - t0;
	r->wall_s = last > 0 ? (last - t0_epoch) / 1000.0 : t_seen - t0;
	r->wall_seen_s = t_seen - t0;
	r->ideal_s = r->submit_s + 5.0 * (cfg.job_ms + cfg.not_started_ms) / 1000.0;
	r->cpu_s = cpu1 - cpu0;
	r->requests = req1 - req0;
	r->max_threads = smp.max_threads;
	r->tids_seen = smp.ntids;
	r->samples = smp.samples;
	r->busy_mean = smp.busy_samples ? smp.busy_sum / smp.busy_samples : -1;
	snprintf(r->names_at_max, sizeof(r->names_at_max), "%s", smp.names_at_max);
	printf("engine run (clients wait by %s): %d ops submitted in %.2f s by %d clients; "
	       "%d succeeded, %d failed, "
	       "%d unfinished; %d step retries; last finished %.2f s after the first submission "
	       "(seen by the clients at %.2f s)\n",
	       cfg.wait_list ? "polling the list" : "long-polls", cfg.ops, r->submit_s, cfg.clients,
	       r->succeeded, r->failed, r->unfinished, atomic_load(&P1.retries), r->wall_s,
	       r->wall_seen_s);
	{
		double ncpu = (double)sysconf(_SC_NPROCESSORS_ONLN), el = r->wall_seen_s;
		double busy = mt1 > mt0 ? (mb1 - mb0) / (mt1 - mt0) * ncpu : 0;
		printf("CPU during the run (%.1f s, %.0f cores): machine busy %.2f cores; powervmd "
		       "%.2f, pvmsim %.2f, this benchmark %.2f, everything else %.2f\n",
		       el, ncpu, busy, r->cpu_s / el, sim_cpu / el, self_cpu / el,
		       busy - (r->cpu_s + (sim_cpu > 0 ? sim_cpu : 0) + self_cpu) / el);
	}
	printf("engine internals: %.0f step runs (%.1f per op; at least 10: a job step runs "
	       "once to submit and once per poll), mean %.1f ms each inside the step (PowerVM "
	       "requests and intents); %.0f journal commits (%.1f per op); %d workers x %.2f s = "
	       "%.1f worker-seconds, %.0f%% of them inside steps, %.0f%% holding an operation "
	       "(step and its commit; powervmd_workers_busy, mean %.2f of %d)\n",
	       r->steps, r->steps / cfg.ops, r->steps > 0 ? r->step_s * 1000 / r->steps : 0,
	       r->commits, r->commits / cfg.ops, cfg.pool, r->wall_s, cfg.pool * r->wall_s,
	       100 * r->step_s / (cfg.pool * r->wall_s), 100 * r->busy_mean / cfg.pool,
	       r->busy_mean, cfg.pool);
	printf("threads: idle before the run %d [%s]; during the run max %d [%s]; %d thread ids "
	       "seen in %d samples\n",
	       r->idle_threads, r->idle_names, r->max_threads, r->names_at_max, r->tids_seen,
	       r->samples);
	free(P1.ids);
	free(P1.finished_ms);
	free(P1.state);
	return r->succeeded == cfg.ops ? 0 : PVM_EIO;
}

/* ---- part 2: submission rates ---------------------------------------------------------- */

struct p2 {
	atomic_int ready;
	atomic_bool go;
	double t_end;     /* monotonic: stop submitting */
	long cap;         /* per thread: at most this many submissions */
	atomic_long ok;   /* acknowledged (202 / 0) */
	atomic_long errs; /* anything else */
	struct pvm_queue *q;
	double finished[MAX_CLIENTS];
	double daemon_cpu_s, self_cpu_s; /* CPU used during the last phase */
	double other_cores;              /* the machine's other load during it */
};

static struct p2 P2;

static void start_barrier(void)
{
	atomic_fetch_add(&P2.ready, 1);
	for (int i = 0; i < 100000 && !atomic_load(&P2.go); i++) {
		struct timespec ts = {0, 100 * 1000};
		nanosleep(&ts, NULL);
	}
}

static void rand_instance(unsigned *seed, char out[37])
{
	snprintf(out, 37, "%08x-%04x-4%03x-8%03x-%04x%08x", (unsigned)rand_r(seed),
	         (unsigned)rand_r(seed) & 0xffff, (unsigned)rand_r(seed) & 0xfff,
	         (unsigned)rand_r(seed) & 0xfff, (unsigned)rand_r(seed) & 0xffff,
	         (unsigned)rand_r(seed));
}

static void *api_client(void *arg)
{
	int t = (int)(intptr_t)arg;
	unsigned seed = (unsigned)(t * 7919 + (int)pvm_now_ms());
	struct conn c = {.fd = -1};
	char body[256], inst[37];
	conn_open(&c); /* connected before the clock starts */
	start_barrier();
	for (long i = 0; i < P2.cap && mono_s() < P2.t_end; i++) {
		rand_instance(&seed, inst);
		int st = 0;
		char *resp = NULL;
		int rc = http(&c, "POST", "/v1/operations", op_body(inst, body, sizeof(body)), 30,
		              &st, &resp);
		if (rc == 0 && st == 202)
			atomic_fetch_add(&P2.ok, 1);
		else if (atomic_fetch_add(&P2.errs, 1) < 3)
			fprintf(stderr, "bench_engine: api submit: rc %d status %d %s\n", rc, st,
			        resp ? resp : "");
		free(resp);
	}
	P2.finished[t] = mono_s();
	conn_fini(&c);
	return NULL;
}

static void *journal_client(void *arg)
{
	int t = (int)(intptr_t)arg;
	unsigned seed = (unsigned)(t * 7919 + (int)pvm_now_ms());
	char inst[37];
	json_t *params = json_pack("{s:s}", "target", TARGET_MS);
	start_barrier();
	for (long i = 0; i < P2.cap && mono_s() < P2.t_end; i++) {
		rand_instance(&seed, inst);
		struct pvm_op_submit s = {.type = "test_jobs",
		                          .instance_uuid = inst,
		                          .table_version = 1,
		                          .params = params,
		                          .deadline_ms = pvm_now_ms() + 30LL * 60 * 1000};
		uint64_t id = 0;
		bool existed = false;
		if (pvm_queue_submit(P2.q, &s, &id, &existed) == 0)
			atomic_fetch_add(&P2.ok, 1);
		else
			atomic_fetch_add(&P2.errs, 1);
	}
	P2.finished[t] = mono_s();
	json_decref(params);
	return NULL;
}

/* Runs one phase with cfg.clients threads of fn; returns acknowledged submissions/s. */
static double phase(void *(*fn)(void *), long *errs, long *ok)
{
	atomic_store(&P2.ready, 0);
	atomic_store(&P2.go, false);
	atomic_store(&P2.ok, 0);
	atomic_store(&P2.errs, 0);
	P2.cap = 200000 / cfg.clients + 1;
	P2.t_end = 1e18;
	pthread_t th[MAX_CLIENTS];
	for (int t = 0; t < cfg.clients; t++)
		pthread_create(&th[t], NULL, fn, (void *)(intptr_t)t);
	for (int i = 0; i < 100000 && atomic_load(&P2.ready) < cfg.clients; i++) {
		struct timespec ts = {0, 100 * 1000};
		nanosleep(&ts, NULL);
	}
	double t0 = mono_s(), dc0 = proc_cpu_s(cfg.pid), sc0 = proc_cpu_s(getpid());
	double mb0, mt0, mb1, mt1;
	machine_cpu(&mb0, &mt0);
	P2.t_end = t0 + cfg.phase_s;
	atomic_store(&P2.go, true);
	for (int t = 0; t < cfg.clients; t++)
		pthread_join(th[t], NULL);
	P2.daemon_cpu_s = proc_cpu_s(cfg.pid) - dc0;
	P2.self_cpu_s = proc_cpu_s(getpid()) - sc0;
	machine_cpu(&mb1, &mt1);
	double end = t0;
	for (int t = 0; t < cfg.clients; t++)
		if (P2.finished[t] > end)
			end = P2.finished[t];
	*errs = atomic_load(&P2.errs);
	*ok = atomic_load(&P2.ok);
	double el = end - t0, ncpu = (double)sysconf(_SC_NPROCESSORS_ONLN);
	P2.other_cores = (mt1 > mt0 ? (mb1 - mb0) / (mt1 - mt0) * ncpu : 0) -
	                 (P2.daemon_cpu_s + P2.self_cpu_s) / el;
	return (double)atomic_load(&P2.ok) / (end - t0);
}

static int journal_phase(int run, double *rate, long *errs, long *ok)
{
	char dir[600];
	snprintf(dir, sizeof(dir), "%s/journal-%d", cfg.journal_dir, run);
	struct pvm_queue_opts o = {.dir = dir};
	int rc = pvm_queue_open(&o, &P2.q);
	if (rc) {
		fprintf(stderr, "bench_engine: journal %s: %s\n", dir, pvm_strerror(rc));
		return rc;
	}
	*rate = phase(journal_client, errs, ok);
	pvm_queue_close(P2.q);
	P2.q = NULL;
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_engine: could not remove %s\n", dir);
	return 0;
}

/* ---- main ------------------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr,
	        "usage: bench_engine --socket PATH --pvmsim URL --pid PID --journal-dir DIR "
	        "[--sim-pid PID] [--ops N] [--pool N] [--job-ms MS] [--not-started-ms MS] "
	        "[--clients N] "
	        "[--runs N] [--phase-s S] [--timeout-s S] [--wait longpoll|list]\n");
	exit(2);
}

static const char *verdict(bool ok)
{
	return ok ? "PASS" : "MISS";
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage();
		i++;
		if (strcmp(a, "--socket") == 0)
			cfg.socket = v;
		else if (strcmp(a, "--pvmsim") == 0)
			cfg.pvmsim = v;
		else if (strcmp(a, "--journal-dir") == 0)
			cfg.journal_dir = v;
		else if (strcmp(a, "--pid") == 0)
			cfg.pid = atoi(v);
		else if (strcmp(a, "--sim-pid") == 0)
			cfg.sim_pid = atoi(v);
		else if (strcmp(a, "--ops") == 0)
			cfg.ops = atoi(v);
		else if (strcmp(a, "--pool") == 0)
			cfg.pool = atoi(v);
		else if (strcmp(a, "--job-ms") == 0)
			cfg.job_ms = atoi(v);
		else if (strcmp(a, "--not-started-ms") == 0)
			cfg.not_started_ms = atoi(v);
		else if (strcmp(a, "--clients") == 0)
			cfg.clients = atoi(v);
		else if (strcmp(a, "--runs") == 0)
			cfg.runs = atoi(v);
		else if (strcmp(a, "--phase-s") == 0)
			cfg.phase_s = atoi(v);
		else if (strcmp(a, "--timeout-s") == 0)
			cfg.timeout_s = atoi(v);
		else if (strcmp(a, "--wait") == 0 && (!strcmp(v, "list") || !strcmp(v, "longpoll")))
			cfg.wait_list = strcmp(v, "list") == 0;
		else
			usage();
	}
	if (!cfg.socket || !cfg.pvmsim || !cfg.journal_dir || cfg.pid <= 0 || cfg.ops < 1 ||
	    cfg.ops > 1000000 || cfg.clients < 1 || cfg.clients > MAX_CLIENTS || cfg.runs < 1 ||
	    cfg.runs > 99 || cfg.phase_s < 1 || cfg.timeout_s < 10)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	pvm_log_set_level(PVM_LOG_WARNING);
	if (pvm_client_global_init() != 0)
		return 1;

	/* Preflight: does the daemon know test_jobs? A bad parameter is refused without
	 * creating anything; the field named says whether the type or the parameter was. */
	{
		struct conn pc = {.fd = -1};
		int pst = 0;
		char *pr = NULL;
		int prc = http(&pc, "POST", "/v1/operations",
		               "{\"type\":\"test_jobs\",\"instance_uuid\":"
		               "\"b0000000-0000-4000-8000-000000000000\",\"params\":{\"probe\":1}}",
		               10, &pst, &pr);
		conn_fini(&pc);
		bool known = prc == 0 && pst == 400 && pr && strstr(pr, "params.probe");
		if (!known) {
			fprintf(stderr,
			        "bench_engine: powervmd does not accept operations of type "
			        "test_jobs "
			        "(rc %d, status %d: %s); it must register pvm_op_test_jobs "
			        "(workers/ops.c) and enable test operations\n",
			        prc, pst, pr ? pr : "");
			free(pr);
			return 1;
		}
		free(pr);
	}

	struct p1_result r1 = {0};
	if (create_partitions(&r1.setup_s) != 0)
		return 1;
	int rc1 = part1(&r1);

	/* part 2: nothing runs while paused; only submissions are timed */
	struct conn c = {.fd = -1};
	int st = 0;
	char *resp = NULL;
	if (http(&c, "POST", "/v1/pause", "{}", 10, &st, &resp) != 0 || st != 200) {
		fprintf(stderr, "bench_engine: POST /v1/pause: status %d %s\n", st,
		        resp ? resp : "");
		free(resp);
		return 1;
	}
	free(resp);
	double api[99], jr[99], ratio[99];
	long api_errs = 0, j_errs = 0;
	for (int run = 0; run < cfg.runs; run++) {
		long e = 0, ok_a = 0, ok_j = 0;
		api[run] = phase(api_client, &e, &ok_a);
		double a_dcpu = P2.daemon_cpu_s, a_scpu = P2.self_cpu_s, a_other = P2.other_cores;
		api_errs += e;
		if (journal_phase(run, &jr[run], &e, &ok_j) != 0)
			return 1;
		j_errs += e;
		ratio[run] = jr[run] > 0 ? api[run] / jr[run] : 0;
		printf("submissions run %d (%d clients, %d s each): api %.0f/s (daemon CPU %.0f us "
		       "and client CPU %.0f us per submission; other load %.2f cores), journal "
		       "%.0f/s (in-process CPU %.0f us per submission; other load %.2f cores); "
		       "ratio %.2f\n",
		       run + 1, cfg.clients, cfg.phase_s, api[run],
		       ok_a ? a_dcpu * 1e6 / (double)ok_a : 0,
		       ok_a ? a_scpu * 1e6 / (double)ok_a : 0, a_other, jr[run],
		       ok_j ? P2.self_cpu_s * 1e6 / (double)ok_j : 0, P2.other_cores, ratio[run]);
	}
	if (http(&c, "POST", "/v1/resume", "{}", 10, &st, &resp) == 0)
		free(resp);
	conn_fini(&c);
	double api_m = median(api, cfg.runs), j_m = median(jr, cfg.runs);
	double ratio_m = median(ratio, cfg.runs);

	int fixed = r1.idle_threads - r1.idle_workers;
	double wall_vs_ideal = r1.wall_s / r1.ideal_s;
	double req_per_op = r1.requests / cfg.ops;
	double api_vs_journal = j_m > 0 ? api_m / j_m : 0;
	double cpu_ms_per_op = r1.cpu_s * 1000.0 / cfg.ops;
	bool threads_ok = r1.idle_workers == cfg.pool && r1.max_threads == cfg.pool + fixed &&
	                  r1.tids_seen == r1.max_threads;

	printf("\n| figure | value | target / baseline | verdict |\n|---|---:|---|---|\n");
	printf("| wall time, first submission to last op finished | %.2f s | ideal %.2f s = "
	       "submission %.2f s + 5 x %.2f s job | |\n",
	       r1.wall_s, r1.ideal_s, r1.submit_s, (cfg.job_ms + cfg.not_started_ms) / 1000.0);
	printf("| wall / ideal | %.2f | at most 1.5 | %s |\n", wall_vs_ideal,
	       verdict(wall_vs_ideal <= 1.5 && rc1 == 0));
	printf("| daemon threads (max seen during the run) | %d | pool %d + fixed %d = %d, no "
	       "thread created or ended (%d ids seen) | %s |\n",
	       r1.max_threads, cfg.pool, fixed, cfg.pool + fixed, r1.tids_seen,
	       verdict(threads_ok));
	printf("| PowerVM requests per operation | %.1f | minimum 20 = 5 jobs x (template GET, "
	       "job PUT, one poll, DELETE) | info (%+.0f%%) |\n",
	       req_per_op, (req_per_op / 20 - 1) * 100);
	printf("| API submissions/s (%d clients, median of %d) | %.0f | | |\n", cfg.clients,
	       cfg.runs, api_m);
	printf("| journal submissions/s in-process (%d threads, median of %d) | %.0f | | |\n",
	       cfg.clients, cfg.runs, j_m);
	printf("| API / journal (median rates; median of the per-run ratios: %.2f) | %.2f | at "
	       "least 0.70 | %s |\n",
	       ratio_m, api_vs_journal, verdict(api_vs_journal >= 0.70));
	printf("| daemon CPU per operation (engine run: %.2f s CPU for %d ops) | %.2f ms | no "
	       "target "
	       "| info |\n",
	       r1.cpu_s, cfg.ops, cpu_ms_per_op);
	if (api_errs || j_errs)
		printf("errors: api %ld, journal %ld (not counted)\n", api_errs, j_errs);
	char load[64] = "?";
	FILE *lf = fopen("/proc/loadavg", "r");
	if (lf) {
		if (fgets(load, sizeof(load), lf))
			load[strcspn(load, "\n")] = '\0';
		fclose(lf);
	}
	printf("setup (not timed): %.1f s; load average after: %s\n", r1.setup_s, load);
	printf("wall_vs_ideal=%.2f threads=%d pool=%d requests_per_op=%.1f api_vs_journal=%.2f "
	       "cpu_ms_per_op=%.2f\n",
	       wall_vs_ideal, r1.max_threads, cfg.pool, req_per_op, api_vs_journal, cpu_ms_per_op);
	pvm_client_global_cleanup();
	return rc1 == 0 ? 0 : 1;
}
