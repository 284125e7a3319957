/* bench_queue.c: the journal benchmark, `scripts/bench queue` (docs/performance.md).
 *
 * DESIGN
 * One run, one disk (a fresh work dir under $TMPDIR or the build dir), five measurements,
 * each compared with a baseline taken in the same run (the machine is shared and noisy, so
 * figures from other runs are not comparable):
 *   1. the physical floor: 4 KiB pwrite in place + fdatasync, rate and p50/p99;
 *   2. durable journal submissions (pvm_queue_submit, ~1 KiB spawn-like params, a distinct
 *      idempotency key each, 1000 instances) with 1, 8 and 32 concurrent submitters:
 *      throughput, p50/p99 acknowledgement latency, submissions per commit (the journal's
 *      own counters) and submissions per sync. Syncs are counted, not derived: the
 *      LD_PRELOAD shim fsync_count.c counts fdatasync/fsync/msync calls and writes to
 *      O_DSYNC descriptors (LMDB writes its meta page that way: 2 syncs per commit); this
 *      program re-executes itself with the shim preloaded;
 *   3. beanstalkd (`beanstalkd -b DIR -f 0`: binlog, fsync on every put) on loopback, with
 *      the same client counts and payload, one TCP connection per client thread; its
 *      syncs are counted by the same shim through a shared counter file;
 *   4. start-up recovery time of a journal of 100,000 operations, 10,000 of them not
 *      finished (5,000 running, 2,500 waiting, 2,500 queued): each measurement is the first
 *      open, in a fresh process, of a fresh copy of the same closed journal, so every one
 *      recovers the same 5,000 running operations (warm page cache, then dropped);
 *   5. resident anonymous memory (RssAnon) of a fresh process that opens a journal of 1k
 *      and of 100k operations (recover; already recovered once), reads stats and lists one
 *      page of queued ops.
 * For each throughput run it also reads, for the one thread every operation passes
 * through (the committer "pvm-journal", beanstalkd's only thread), its CPU time, its time
 * waiting for a CPU (/proc/.../schedstat) and the bytes it wrote (/proc/.../io wchar):
 * this says where the time goes, and how noisy the machine was during the run.
 * Each throughput run is bounded by a count and a time; each client count runs once per
 * repetition (3 by default), journal and beanstalkd back to back, and medians are quoted.
 * Every loop is bounded. beanstalkd and child processes are reaped on every exit path:
 * atexit, one signal thread for SIGINT/SIGTERM/SIGHUP, PR_SET_PDEATHSIG if this dies.
 *
 * Output: the runs as they happen, the tables, each target with PASS/MISS, and a final
 * line of key=value pairs. The exit status is 0 when the benchmark ran, whatever the
 * targets; 1 when it could not run (beanstalkd missing, a run failed).
 */
#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/queue.h"
#include "pvm/util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PVM_FSYNC_SHIM
#define PVM_FSYNC_SHIM ""
#endif

#define N_INST       1000 /* instances the submissions are spread over */
#define MAX_CLIENTS  64
#define N_COUNTS     3
#define MAX_REPS     9
#define BUILD_BATCH  1000
#define BUILD_THREAD 64
#define CHILD_WAIT_S 300
#define LIST_PAGE    50 /* queued ops listed by the memory child: one API page */

static const int client_counts[N_COUNTS] = {1, 8, 32};

/* Keep in step with fsync_count.c. */
struct pvm_fsync_counts {
	_Atomic unsigned long long fdatasync_calls;
	_Atomic unsigned long long fsync_calls;
	_Atomic unsigned long long msync_calls;
	_Atomic unsigned long long dsync_writes; /* writes to O_DSYNC/O_SYNC descriptors */
};
typedef struct pvm_fsync_counts *(*counts_fn)(void);

struct cfg {
	int reps;
	double seconds;   /* per throughput run */
	size_t max_ops;   /* per throughput run */
	size_t rec_ops;   /* operations in the large recovery journal */
	size_t rec_insts; /* its instances (ops per instance = rec_ops / rec_insts) */
	size_t mem_small; /* operations in the small journal */
	const char *parent;
	bool keep;
	bool quick;
};

static struct cfg C = {.reps = 3,
                       .seconds = 5.0,
                       .max_ops = 20000,
                       .rec_ops = 100000,
                       .rec_insts = 10000,
                       .mem_small = 1000};

/* The spawn-like payload of each instance: params object and its compact text. */
static struct {
	char uuid[N_INST][PVM_UUID_LEN + 1];
	json_t *params[N_INST];
	char *text[N_INST];
	size_t text_len[N_INST];
} P;

static char self_exe[4096];
static char work_dir[4096];
static struct pvm_fsync_counts *self_counts;
static struct pvm_fsync_counts *bean_counts; /* shared mapping of beanstalkd's counters */
static _Atomic pid_t bean_pid = -1;          /* whoever exchanges it for -1 reaps it */
static _Atomic pid_t child_pid = -1;         /* the --child-open process running, if any */
static int bean_port;

/* ---- small helpers ------------------------------------------------------------------- */

static double now_s(void)
{
	return (double)pvm_mono_ns() / 1e9;
}

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* A deterministic canonical v4-shaped UUID from (space, n). */
static void make_uuid(char out[PVM_UUID_LEN + 1], uint64_t space, uint64_t n)
{
	uint64_t a = mix64(space * 1000003ULL + n), b = mix64(a ^ (n << 1) ^ space);
	snprintf(out, PVM_UUID_LEN + 1, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
	         (unsigned)(a >> 16) & 0xffffu, (unsigned)a & 0xfffu,
	         (unsigned)(0x8000u | ((b >> 48) & 0x3fffu)),
	         (unsigned long long)(b & 0xffffffffffffULL));
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted nanoseconds, in milliseconds. */
static double pct_ms(const int64_t *sorted, size_t n, double p)
{
	if (n == 0)
		return NAN;
	size_t k = (size_t)ceil(p / 100.0 * (double)n);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return (double)sorted[k - 1] / 1e6;
}

static double median(const double *v, int n)
{
	double s[MAX_REPS];
	int m = 0;
	for (int i = 0; i < n && i < MAX_REPS; i++)
		if (!isnan(v[i]))
			s[m++] = v[i];
	if (m == 0)
		return NAN;
	qsort(s, (size_t)m, sizeof(double), cmp_dbl);
	return m % 2 ? s[m / 2] : (s[m / 2 - 1] + s[m / 2]) / 2;
}

static unsigned long long sync_total(const struct pvm_fsync_counts *c)
{
	if (!c)
		return 0;
	return atomic_load(&c->fdatasync_calls) + atomic_load(&c->fsync_calls) +
	       atomic_load(&c->msync_calls) + atomic_load(&c->dsync_writes);
}

/* "RssAnon" etc. of /proc/self/status in KiB, -1 when absent. */
static long status_kib(const char *field)
{
	FILE *f = fopen("/proc/self/status", "re");
	if (!f)
		return -1;
	char line[256];
	long v = -1;
	size_t fl = strlen(field);
	for (int i = 0; i < 200 && fgets(line, sizeof(line), f); i++)
		if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
			v = strtol(line + fl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void path_join(char *out, size_t n, const char *a, const char *b)
{
	if ((size_t)snprintf(out, n, "%s/%s", a, b) >= n) {
		fprintf(stderr, "bench_queue: path too long: %s/%s\n", a, b);
		exit(1);
	}
}

static long long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* ---- processes: beanstalkd and children, killed on every exit path ------------------- */

static void stop_pid(pid_t pid, int grace_ms)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < grace_ms / 10; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void stop_beanstalkd(void)
{
	stop_pid(atomic_exchange(&bean_pid, -1), 3000);
}

static void at_exit_cleanup(void)
{
	pid_t c = atomic_exchange(&child_pid, -1);
	if (c > 0) {
		kill(c, SIGKILL);
		waitpid(c, NULL, 0);
	}
	stop_beanstalkd();
}

static sigset_t fatal_signals;
static _Atomic bool work_ready; /* work_dir is made and complete */

/* The one place signals are handled: SIGINT, SIGTERM and SIGHUP are blocked in every
 * thread and taken here, which kills and reaps beanstalkd and any child, removes the work
 * dir (unless --keep) and exits. */
static void *signal_main(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "bench-signals");
	int sig = 0;
	if (sigwait(&fatal_signals, &sig) != 0)
		return NULL;
	pid_t c = atomic_exchange(&child_pid, -1);
	if (c > 0) {
		kill(c, SIGKILL);
		waitpid(c, NULL, 0);
	}
	pid_t b = atomic_exchange(&bean_pid, -1);
	if (b > 0) {
		kill(b, SIGKILL);
		waitpid(b, NULL, 0);
	}
	if (atomic_load(&work_ready) && !C.keep)
		rm_tree(work_dir);
	fprintf(stderr, "bench_queue: %s: beanstalkd and children killed, work dir %s\n",
	        strsignal(sig), C.keep ? "kept" : "removed");
	_exit(128 + sig);
}

/* In a forked child before exec: default signal mask. */
static void child_unblock(void)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* An environment: this process's, with name=value set. The strings are environ's except
 * *added, which the caller frees (with the array). */
static char **env_with(const char *name, const char *value, char **added)
{
	extern char **environ;
	size_t n = 0;
	while (environ[n] && n < 10000)
		n++;
	char **env = calloc(n + 2, sizeof(char *));
	size_t nl = strlen(name), m = 0;
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!(strncmp(environ[i], name, nl) == 0 && environ[i][nl] == '='))
			env[m++] = environ[i];
	size_t len = nl + strlen(value) + 2;
	*added = env[m] = malloc(len);
	if (!env[m]) {
		free(env);
		return NULL;
	}
	snprintf(env[m], len, "%s=%s", name, value);
	return env;
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int port = -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &al) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static int bean_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* Starts beanstalkd on loopback with its binlog in work_dir/beanstalkd, fsync on every
 * put, and this shim counting its fsyncs into work_dir/beanstalkd.fsyncs. */
static int start_beanstalkd(void)
{
	char bdir[4200], cfile[4200], logf[4200];
	path_join(bdir, sizeof(bdir), work_dir, "beanstalkd");
	path_join(cfile, sizeof(cfile), work_dir, "beanstalkd.fsyncs");
	path_join(logf, sizeof(logf), work_dir, "beanstalkd.log");
	if (mkdir(bdir, 0700) != 0 && errno != EEXIST)
		return -errno;
	int cfd = open(cfile, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (cfd < 0)
		return -errno;
	if (ftruncate(cfd, 4096) != 0) {
		int e = errno;
		close(cfd);
		return -e;
	}
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
	close(cfd);
	if (p == MAP_FAILED)
		return -errno;
	bean_counts = p;
	char *added = NULL;
	char **env = env_with("PVM_FSYNC_COUNT_FILE", cfile, &added);
	if (!env)
		return PVM_ENOMEM;
	int rc = -ECONNREFUSED;
	for (int attempt = 0; attempt < 3; attempt++) {
		int port = free_port();
		if (port <= 0)
			continue;
		char ps[16];
		snprintf(ps, sizeof(ps), "%d", port);
		char *argv[] = {"beanstalkd", "-l", "127.0.0.1", "-p", ps,
		                "-b",         bdir, "-f",        "0",  NULL};
		int lfd = open(logf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		pid_t parent = getpid();
		pid_t pid = fork();
		if (pid < 0) {
			rc = -errno;
			if (lfd >= 0)
				close(lfd);
			break;
		}
		if (pid == 0) {
			child_unblock();
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
			if (lfd >= 0) {
				dup2(lfd, 1);
				dup2(lfd, 2);
			}
			execvpe("beanstalkd", argv, env);
			_exit(127);
		}
		if (lfd >= 0)
			close(lfd);
		bean_pid = pid;
		/* Up within 5 s, or dead (port taken, not installed). */
		for (int i = 0; i < 250; i++) {
			int status;
			if (waitpid(pid, &status, WNOHANG) == pid) {
				bean_pid = -1;
				rc = WIFEXITED(status) && WEXITSTATUS(status) == 127
				             ? -ENOENT
				             : -ECONNREFUSED;
				break;
			}
			int fd = bean_connect(port);
			if (fd >= 0) {
				close(fd);
				bean_port = port;
				rc = 0;
				break;
			}
			usleep(20000);
		}
		if (rc == 0 || rc == -ENOENT)
			break;
		stop_beanstalkd();
	}
	free(added);
	free(env);
	return rc;
}

/* Result of one `--child-open DIR` process. */
struct open_result {
	double open_ms;
	double recovered, total, queued, running, waiting, succeeded, listed;
	double anon_kib, file_kib;
	long log_lines;
};

static double kv_get(const char *line, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof(pat), " %s=", key);
	const char *p = strstr(line, pat);
	return p ? strtod(p + strlen(pat), NULL) : NAN;
}

static long count_lines(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	long n = 0;
	int ch;
	for (long i = 0; i < (1L << 30) && (ch = fgetc(f)) != EOF; i++)
		if (ch == '\n')
			n++;
	fclose(f);
	return n;
}

/* Runs this program with --child-open dir (a fresh process), its stderr (the journal's
 * log) to logpath, and parses the one line it prints. */
static int run_open_child(const char *dir, const char *logpath, struct open_result *res)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return -errno;
	int lfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	char *argv[] = {self_exe, "--child-open", (char *)dir, NULL};
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(pfd[0]);
		close(pfd[1]);
		if (lfd >= 0)
			close(lfd);
		return -e;
	}
	if (pid == 0) {
		child_unblock();
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pfd[1], 1);
		if (lfd >= 0)
			dup2(lfd, 2);
		execv(self_exe, argv);
		_exit(127);
	}
	child_pid = pid;
	close(pfd[1]);
	if (lfd >= 0)
		close(lfd);
	char buf[2048];
	size_t got = 0;
	int64_t deadline = pvm_mono_ns() + (int64_t)CHILD_WAIT_S * 1000000000LL;
	while (got < sizeof(buf) - 1 && pvm_mono_ns() < deadline) {
		struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
		int pr = poll(&pf, 1, 1000);
		if (pr < 0 && errno != EINTR)
			break;
		if (pr <= 0)
			continue;
		ssize_t r = read(pfd[0], buf + got, sizeof(buf) - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(pfd[0]);
	buf[got] = 0;
	int status = 0;
	if (pvm_mono_ns() >= deadline)
		kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	child_pid = -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || strncmp(buf, "open ", 5) != 0) {
		fprintf(stderr, "bench_queue: open child on %s failed (status %d): %s (log: %s)\n",
		        dir, status, buf, logpath);
		return PVM_EJOURNAL;
	}
	char line[2100];
	snprintf(line, sizeof(line), " %s", buf);
	res->open_ms = kv_get(line, "open_ms");
	res->recovered = kv_get(line, "recovered");
	res->total = kv_get(line, "total");
	res->queued = kv_get(line, "queued");
	res->running = kv_get(line, "running");
	res->waiting = kv_get(line, "waiting");
	res->succeeded = kv_get(line, "succeeded");
	res->listed = kv_get(line, "listed");
	res->anon_kib = kv_get(line, "anon_kib");
	res->file_kib = kv_get(line, "file_kib");
	res->log_lines = count_lines(logpath);
	return 0;
}

/* The child: what powervmd does at start-up, then one page of the queued list (what the
 * API shows first), and its resident memory. */
static int child_open(const char *dir)
{
	pvm_log_setup("bench_queue", PVM_LOG_STDERR, PVM_LOG_INFO);
	struct pvm_queue_opts o = {.dir = dir, .recover = true};
	struct pvm_queue *q = NULL;
	int64_t t0 = pvm_mono_ns();
	int rc = pvm_queue_open(&o, &q);
	int64_t t1 = pvm_mono_ns();
	if (rc) {
		fprintf(stderr, "open %s: %s\n", dir, pvm_strerror(rc));
		return 1;
	}
	struct pvm_queue_stats st;
	rc = pvm_queue_stats(q, &st);
	struct pvm_queue_filter f = {.state = PVM_OP_QUEUED, .limit = LIST_PAGE};
	struct pvm_op **ops = NULL;
	size_t n = 0;
	if (!rc)
		rc = pvm_queue_list(q, &f, &ops, &n, NULL);
	long anon = status_kib("RssAnon"), file = status_kib("RssFile");
	if (rc) {
		fprintf(stderr, "stats/list %s: %s\n", dir, pvm_strerror(rc));
		pvm_queue_close(q);
		return 1;
	}
	printf("open open_ms=%.3f recovered=%zu total=%zu queued=%zu running=%zu waiting=%zu "
	       "succeeded=%zu listed=%zu anon_kib=%ld file_kib=%ld\n",
	       (double)(t1 - t0) / 1e6, pvm_queue_recovered(q), st.total,
	       st.by_state[PVM_OP_QUEUED], st.by_state[PVM_OP_RUNNING], st.by_state[PVM_OP_WAITING],
	       st.by_state[PVM_OP_SUCCEEDED], n, anon, file);
	fflush(stdout);
	pvm_op_list_free(ops, n);
	pvm_queue_close(q);
	return 0;
}

/* ---- payload ------------------------------------------------------------------------- */

/* Params of a nova spawn as the driver receives them (instance, flavor, image, one
 * port), about 1 KiB as compact JSON. */
static json_t *make_params(const char *inst, uint64_t n)
{
	char image[PVM_UUID_LEN + 1], net[PVM_UUID_LEN + 1], port[PVM_UUID_LEN + 1];
	char proj[40], user[40], mac[24], ip[24], name[32], tap[20];
	make_uuid(image, 2, n % 7);
	make_uuid(net, 3, n % 3);
	make_uuid(port, 4, n);
	snprintf(proj, sizeof(proj), "%016llx%016llx", (unsigned long long)mix64(n % 50),
	         (unsigned long long)mix64(n % 50 + 77));
	snprintf(user, sizeof(user), "%016llx%016llx", (unsigned long long)mix64(n % 200 + 5),
	         (unsigned long long)mix64(n % 200 + 99));
	uint64_t r = mix64(n + 12345);
	snprintf(mac, sizeof(mac), "fa:16:3e:%02x:%02x:%02x", (unsigned)(r & 0xff),
	         (unsigned)(r >> 8 & 0xff), (unsigned)(r >> 16 & 0xff));
	snprintf(ip, sizeof(ip), "10.0.%u.%u", (unsigned)(n / 250 % 250), (unsigned)(n % 250 + 2));
	snprintf(name, sizeof(name), "bench-vm-%05llu", (unsigned long long)n);
	snprintf(tap, sizeof(tap), "tap%.11s", port);
	return json_pack(
	        "{s:{s:s, s:s, s:s, s:s, s:s, s:s},"
	        " s:{s:s, s:i, s:i, s:i, s:i, s:{s:s, s:s, s:s}},"
	        " s:{s:s, s:s, s:s, s:I, s:{s:s, s:s}},"
	        " s:[{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:i,"
	        "     s:[{s:s, s:s, s:[{s:s, s:s}]}]}}],"
	        " s:{s:s, s:[]}, s:b}",
	        "instance", "uuid", inst, "name", name, "project_id", proj, "user_id", user, "host",
	        "powervm-host-01", "availability_zone", "nova", "flavor", "name", "m1.medium",
	        "vcpus", 2, "memory_mb", 4096, "root_gb", 40, "ephemeral_gb", 0, "extra_specs",
	        "powervm:proc_units", "0.5", "powervm:dedicated_proc", "false", "powervm:uncapped",
	        "true", "image", "id", image, "name", "rhel-9.4-ppc64le", "disk_format", "raw",
	        "size", (json_int_t)10737418240LL, "properties", "os_distro", "rhel",
	        "architecture", "ppc64le", "network_info", "id", port, "address", mac, "devname",
	        tap, "type", "ovs", "network", "id", net, "label", "private", "bridge", "br-int",
	        "mtu", 1500, "subnets", "cidr", "10.0.0.0/16", "gateway", "10.0.0.1", "ips",
	        "address", ip, "type", "fixed", "block_device_info", "root_device_name", "/dev/sda",
	        "block_device_mapping", "admin_password_set", 0);
}

static int make_pool(void)
{
	for (size_t i = 0; i < N_INST; i++) {
		make_uuid(P.uuid[i], 1, i);
		P.params[i] = make_params(P.uuid[i], i);
		if (!P.params[i])
			return PVM_ENOMEM;
		P.text[i] = json_dumps(P.params[i], JSON_COMPACT);
		if (!P.text[i])
			return PVM_ENOMEM;
		P.text_len[i] = strlen(P.text[i]);
	}
	return 0;
}

static void free_pool(void)
{
	for (size_t i = 0; i < N_INST; i++) {
		json_decref(P.params[i]);
		free(P.text[i]);
	}
}

static size_t instance_of(unsigned run_id, size_t slot)
{
	return (slot * 7919u + (size_t)run_id * 104729u) % N_INST;
}

static size_t bean_body(char *out, size_t cap, size_t inst, const char *key, const char *rid)
{
	int n = snprintf(out, cap,
	                 "{\"type\":\"spawn\",\"instance_uuid\":\"%s\",\"idempotency_key\":\"%s\","
	                 "\"request_id\":\"%s\",\"table_version\":1,\"params\":%s}",
	                 P.uuid[inst], key, rid, P.text[inst]);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* ---- throughput runs ----------------------------------------------------------------- */

enum run_kind { RUN_JOURNAL, RUN_BEANSTALKD };

struct run {
	enum run_kind kind;
	struct pvm_queue *q;
	unsigned run_id;
	size_t max;
	int64_t *lat_ns; /* by slot; 0 = not completed */
	_Atomic size_t next;
	_Atomic size_t done;
	_Atomic int failed;
	_Atomic int64_t end_ns;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int ready;           /* guarded by mu: clients at the start line */
	bool go;             /* guarded by mu: the start signal */
	int64_t deadline_ns; /* written under mu before go */
	char err[256];       /* guarded by mu */
};

struct run_result {
	size_t n;
	double secs, ops_s, p50_ms, p99_ms, per_commit, per_fsync;
	unsigned long long syncs, commits, requests;
	/* The serial server thread (journal committer, beanstalkd): its CPU per operation,
	 * the share of the run it was on a CPU and waiting for one, and bytes it wrote. */
	double cpu_us, oncpu_pct, rqwait_pct, wkib;
};

/* Scheduler figures of the thread that serializes the work. */
struct sched_sample {
	double oncpu_ns, rqwait_ns, wchar;
	bool ok;
};

/* /proc/PID/task/TID/schedstat and /proc/PID/io (wchar: bytes passed to write calls). */
static struct sched_sample sched_read(pid_t pid, pid_t tid)
{
	struct sched_sample s = {0};
	char path[128];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", (int)pid, (int)tid);
	FILE *f = fopen(path, "re");
	if (f) {
		s.ok = fscanf(f, "%lf %lf", &s.oncpu_ns, &s.rqwait_ns) == 2;
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%d/io", (int)pid);
	f = fopen(path, "re");
	char line[128];
	for (int i = 0; f && i < 20 && fgets(line, sizeof(line), f); i++)
		if (strncmp(line, "wchar:", 6) == 0)
			s.wchar = strtod(line + 6, NULL);
	if (f)
		fclose(f);
	return s;
}

/* The thread of this process named name ("pvm-journal"), or 0. */
static pid_t find_thread(const char *name)
{
	char path[128], comm[64];
	pid_t found = 0;
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	for (int i = 0; d && i < 10000 && (e = readdir(d)) && !found; i++) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%.20s/comm", e->d_name);
		FILE *f = fopen(path, "re");
		if (f && fgets(comm, sizeof(comm), f)) {
			comm[strcspn(comm, "\n")] = 0;
			if (strcmp(comm, name) == 0)
				found = (pid_t)atoi(e->d_name);
		}
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return found;
}

static void run_fail(struct run *r, const char *what, int rc)
{
	pthread_mutex_lock(&r->mu);
	if (!r->err[0])
		snprintf(r->err, sizeof(r->err), "%s: %s", what, pvm_strerror(rc));
	pthread_mutex_unlock(&r->mu);
	atomic_store(&r->failed, 1);
}

static void note_end(struct run *r, int64_t t)
{
	int64_t cur = atomic_load(&r->end_ns);
	for (int i = 0; i < 1000 && t > cur; i++)
		if (atomic_compare_exchange_weak(&r->end_ns, &cur, t))
			break;
}

static int send_all(int fd, const char *p, size_t n)
{
	for (size_t off = 0, i = 0; off < n && i < 100000; i++) {
		ssize_t w = send(fd, p + off, n - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EPIPE;
		off += (size_t)w;
	}
	return 0;
}

/* One put and its reply. */
static int bean_put(int fd, const char *body, size_t len, char *msg, size_t cap)
{
	int h = snprintf(msg, cap, "put 1024 0 60 %zu\r\n", len);
	if (h < 0 || (size_t)h + len + 2 > cap)
		return PVM_ETOOBIG;
	memcpy(msg + h, body, len);
	memcpy(msg + h + len, "\r\n", 2);
	int rc = send_all(fd, msg, (size_t)h + len + 2);
	if (rc)
		return rc;
	char rep[128];
	size_t got = 0;
	for (int i = 0; i < 64 && got < sizeof(rep) - 1; i++) {
		ssize_t r = recv(fd, rep + got, sizeof(rep) - 1 - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -ECONNRESET;
		got += (size_t)r;
		rep[got] = 0;
		if (strstr(rep, "\r\n"))
			break;
	}
	rep[got] = 0;
	if (strncmp(rep, "INSERTED ", 9) != 0) {
		fprintf(stderr, "bench_queue: beanstalkd replied '%.60s'\n", rep);
		return PVM_EIO;
	}
	return 0;
}

static void *client_main(void *arg)
{
	struct run *r = arg;
	int fd = -1;
	char *msg = NULL, *body = NULL;
	const size_t cap = 8192;
	if (r->kind == RUN_BEANSTALKD) {
		fd = bean_connect(bean_port);
		msg = malloc(cap);
		body = malloc(cap);
		if (fd < 0 || !msg || !body)
			run_fail(r, "connect to beanstalkd", fd < 0 ? fd : PVM_ENOMEM);
	}
	pthread_mutex_lock(&r->mu);
	r->ready++;
	pthread_cond_broadcast(&r->cv);
	while (!r->go)
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
	char key[PVM_IDEM_KEY_MAX], rid[64];
	for (size_t iter = 0; iter < r->max && !atomic_load(&r->failed); iter++) {
		size_t slot = atomic_fetch_add(&r->next, 1);
		if (slot >= r->max || pvm_mono_ns() >= r->deadline_ns)
			break;
		size_t inst = instance_of(r->run_id, slot);
		snprintf(key, sizeof(key), "%s:spawn:%u:%zu", P.uuid[inst], r->run_id, slot);
		snprintf(rid, sizeof(rid), "req-%08x-%zu", r->run_id, slot);
		int64_t t0 = pvm_mono_ns();
		int rc;
		if (r->kind == RUN_JOURNAL) {
			struct pvm_op_submit s = {.type = "spawn",
			                          .instance_uuid = P.uuid[inst],
			                          .idempotency_key = key,
			                          .request_id = rid,
			                          .table_version = 1,
			                          .params = P.params[inst]};
			uint64_t id = 0;
			bool existed = false;
			rc = pvm_queue_submit(r->q, &s, &id, &existed);
			if (rc == 0 && existed)
				rc = PVM_EEXIST;
		} else {
			size_t blen = bean_body(body, cap, inst, key, rid);
			rc = blen ? bean_put(fd, body, blen, msg, cap) : PVM_ETOOBIG;
		}
		int64_t t1 = pvm_mono_ns();
		if (rc) {
			run_fail(r, r->kind == RUN_JOURNAL ? "pvm_queue_submit" : "beanstalkd put",
			         rc);
			break;
		}
		r->lat_ns[slot] = t1 - t0 > 0 ? t1 - t0 : 1;
		atomic_fetch_add(&r->done, 1);
		note_end(r, t1);
	}
	if (fd >= 0)
		close(fd);
	free(msg);
	free(body);
	return NULL;
}

static unsigned next_run_id = 1;

/* One bounded run of nclients submitters. */
static int run_once(enum run_kind kind, struct pvm_queue *q, int nclients, size_t max,
                    double seconds, struct run_result *out)
{
	memset(out, 0, sizeof(*out));
	struct run *r = calloc(1, sizeof(*r));
	pthread_t th[MAX_CLIENTS];
	if (!r)
		return PVM_ENOMEM;
	r->kind = kind;
	r->q = q;
	r->run_id = next_run_id++;
	r->max = max;
	r->lat_ns = calloc(max, sizeof(int64_t));
	if (!r->lat_ns) {
		free(r);
		return PVM_ENOMEM;
	}
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);

	struct pvm_queue_stats s0 = {0}, s1 = {0};
	if (kind == RUN_JOURNAL)
		pvm_queue_stats(q, &s0);
	struct pvm_fsync_counts *cnt = kind == RUN_JOURNAL ? self_counts : bean_counts;
	pid_t spid = kind == RUN_JOURNAL ? getpid() : (pid_t)bean_pid;
	pid_t stid = kind == RUN_JOURNAL ? find_thread("pvm-journal") : spid;

	int started = 0;
	for (; started < nclients && started < MAX_CLIENTS; started++)
		if (pthread_create(&th[started], NULL, client_main, r))
			break;
	int rc = 0;
	if (started < nclients) {
		fprintf(stderr, "bench_queue: cannot start %d client threads\n", nclients);
		atomic_store(&r->failed, 1);
		rc = PVM_ENOMEM;
	}
	/* Everyone at the start line (connected), then go. */
	pthread_mutex_lock(&r->mu);
	for (int i = 0; i < 6000 && r->ready < started; i++) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&r->cv, &r->mu, &ts);
	}
	unsigned long long sync0 = sync_total(cnt);
	struct sched_sample sc0 = sched_read(spid, stid);
	int64_t start = pvm_mono_ns();
	r->deadline_ns = start + (int64_t)(seconds * 1e9);
	atomic_store(&r->end_ns, start);
	r->go = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	unsigned long long sync1 = sync_total(cnt);
	struct sched_sample sc1 = sched_read(spid, stid);
	if (kind == RUN_JOURNAL)
		pvm_queue_stats(q, &s1);

	if (atomic_load(&r->failed) && !rc) {
		fprintf(stderr, "bench_queue: run failed: %s\n", r->err);
		rc = PVM_EIO;
	}
	size_t n = 0;
	for (size_t i = 0; i < max; i++)
		if (r->lat_ns[i])
			r->lat_ns[n++] = r->lat_ns[i];
	qsort(r->lat_ns, n, sizeof(int64_t), cmp_i64);
	out->n = n;
	out->secs = (double)(atomic_load(&r->end_ns) - start) / 1e9;
	out->ops_s = out->secs > 0 ? (double)n / out->secs : NAN;
	out->p50_ms = pct_ms(r->lat_ns, n, 50);
	out->p99_ms = pct_ms(r->lat_ns, n, 99);
	out->syncs = sync1 - sync0;
	out->per_fsync = cnt && out->syncs ? (double)n / (double)out->syncs : NAN;
	out->commits = s1.commits - s0.commits;
	out->requests = s1.commit_requests - s0.commit_requests;
	double span_ns = (double)(atomic_load(&r->end_ns) - start);
	bool sok = stid > 0 && sc0.ok && sc1.ok && n > 0 && span_ns > 0;
	out->cpu_us = sok ? (sc1.oncpu_ns - sc0.oncpu_ns) / 1e3 / (double)n : NAN;
	out->oncpu_pct = sok ? 100.0 * (sc1.oncpu_ns - sc0.oncpu_ns) / span_ns : NAN;
	out->rqwait_pct = sok ? 100.0 * (sc1.rqwait_ns - sc0.rqwait_ns) / span_ns : NAN;
	out->wkib = n > 0 ? (sc1.wchar - sc0.wchar) / 1024.0 / (double)n : NAN;
	out->per_commit = kind == RUN_JOURNAL && out->commits
	                          ? (double)out->requests / (double)out->commits
	                          : NAN;
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r->lat_ns);
	free(r);
	return rc;
}

/* The physical floor: 4 KiB overwritten in place, then fdatasync, for `seconds`. */
static int fsync_floor(double seconds, size_t max, struct run_result *out)
{
	memset(out, 0, sizeof(*out));
	char path[4200];
	path_join(path, sizeof(path), work_dir, "fsync-floor");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	static char block[4096];
	memset(block, 0x5a, sizeof(block));
	for (int i = 0; i < 16; i++)
		if (pwrite(fd, block, sizeof(block), (off_t)i * 4096) != (ssize_t)sizeof(block)) {
			close(fd);
			return PVM_EIO;
		}
	fsync(fd);
	int64_t *lat = calloc(max, sizeof(int64_t));
	if (!lat) {
		close(fd);
		return PVM_ENOMEM;
	}
	int64_t start = pvm_mono_ns(), deadline = start + (int64_t)(seconds * 1e9), end = start;
	size_t n = 0;
	int rc = 0;
	for (; n < max && end < deadline; n++) {
		block[0] = (char)n;
		int64_t t0 = pvm_mono_ns();
		if (pwrite(fd, block, sizeof(block), (off_t)(n % 16) * 4096) !=
		            (ssize_t)sizeof(block) ||
		    fdatasync(fd) != 0) {
			rc = -errno;
			break;
		}
		end = pvm_mono_ns();
		lat[n] = end - t0;
	}
	close(fd);
	unlink(path);
	qsort(lat, n, sizeof(int64_t), cmp_i64);
	out->n = n;
	out->secs = (double)(end - start) / 1e9;
	out->ops_s = out->secs > 0 ? (double)n / out->secs : NAN;
	out->p50_ms = pct_ms(lat, n, 50);
	out->p99_ms = pct_ms(lat, n, 99);
	out->per_fsync = 1;
	out->per_commit = NAN;
	free(lat);
	return rc;
}

/* ---- the recovery journal ------------------------------------------------------------ */

struct build {
	struct pvm_queue *q;
	size_t target; /* claims in this pass */
	size_t n_wait; /* hold pass: the first n_wait claimed go waiting, the rest stay running */
	bool finish;   /* finish pass: every claimed op succeeds */
	_Atomic size_t tickets;
	_Atomic int err;
	int64_t deadline_ns;
};

static void *build_worker(void *arg)
{
	struct build *b = arg;
	for (size_t guard = 0; guard <= b->target; guard++) {
		size_t t = atomic_fetch_add(&b->tickets, 1);
		if (t >= b->target || atomic_load(&b->err))
			break;
		if (pvm_mono_ns() > b->deadline_ns) {
			atomic_store(&b->err, PVM_ETIMEDOUT);
			break;
		}
		struct pvm_op *op = NULL;
		int rc = PVM_ENOTFOUND;
		for (int tries = 0; tries < 400 && rc == PVM_ENOTFOUND; tries++) {
			rc = pvm_queue_claim(b->q, pvm_now_ms(), &op, NULL);
			if (rc == PVM_ENOTFOUND)
				usleep(5000);
		}
		if (rc) {
			atomic_store(&b->err, rc);
			break;
		}
		struct pvm_op_update u;
		pvm_op_update_init(&u, op->id);
		u.expect_state = PVM_OP_RUNNING;
		json_t *cp = NULL, *res = NULL;
		if (b->finish) {
			cp = json_pack("{s:{s:I, s:b}, s:{s:s, s:b}, s:{s:b}}", "create_lpar",
			               "lpar_id", (json_int_t)(op->id % 4000 + 2), "done", 1,
			               "plug_vifs", "mac", "fa:16:3e:00:00:01", "done", 1,
			               "power_on", "done", 1);
			res = json_pack("{s:I, s:s}", "lpar_id", (json_int_t)(op->id % 4000 + 2),
			                "state", "running");
			u.new_state = PVM_OP_SUCCEEDED;
			u.step = 3;
			u.progress = 100;
			u.checkpoint_set = cp;
			u.result = res;
			rc = (cp && res) ? pvm_queue_update(b->q, &u) : PVM_ENOMEM;
		} else if (t < b->n_wait) {
			cp = json_pack("{s:{s:I, s:b}, s:s}", "create_lpar", "lpar_id",
			               (json_int_t)(op->id % 4000 + 2), "done", 1, "wait_for",
			               "rmc");
			u.new_state = PVM_OP_WAITING;
			u.step = 1;
			u.progress = 40;
			u.due_ms = pvm_now_ms() + 3600 * 1000;
			u.checkpoint_set = cp;
			rc = cp ? pvm_queue_update(b->q, &u) : PVM_ENOMEM;
		}
		json_decref(cp);
		json_decref(res);
		pvm_op_free(op);
		if (rc) {
			atomic_store(&b->err, rc);
			break;
		}
	}
	return NULL;
}

static int build_pass(struct pvm_queue *q, size_t target, size_t n_wait, bool finish)
{
	struct build b = {.q = q,
	                  .target = target,
	                  .n_wait = n_wait,
	                  .finish = finish,
	                  .deadline_ns = pvm_mono_ns() + 900LL * 1000000000LL};
	pthread_t th[BUILD_THREAD];
	int n = 0;
	for (; n < BUILD_THREAD; n++)
		if (pthread_create(&th[n], NULL, build_worker, &b))
			break;
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	int err = atomic_load(&b.err);
	if (n == 0)
		return PVM_ENOMEM;
	return err;
}

/* Builds a journal of n_ops over n_insts instances (ops of an instance in arrival waves):
 * 90% succeeded, 5% running, 2.5% waiting, 2.5% queued. */
static int build_journal(const char *dir, size_t n_ops, size_t n_insts)
{
	double t0 = now_s();
	struct pvm_queue_opts o = {.dir = dir};
	struct pvm_queue *q = NULL;
	int rc = pvm_queue_open(&o, &q);
	if (rc) {
		fprintf(stderr, "bench_queue: open %s: %s\n", dir, pvm_strerror(rc));
		return rc;
	}
	struct pvm_op_submit *s = calloc(BUILD_BATCH, sizeof(*s));
	char(*keys)[64] = calloc(BUILD_BATCH, 64);
	char(*rids)[32] = calloc(BUILD_BATCH, 32);
	char(*uuids)[PVM_UUID_LEN + 1] = calloc(BUILD_BATCH, PVM_UUID_LEN + 1);
	json_t **params = calloc(BUILD_BATCH, sizeof(json_t *));
	uint64_t *ids = calloc(BUILD_BATCH, sizeof(uint64_t));
	if (!s || !keys || !rids || !uuids || !params || !ids) {
		rc = PVM_ENOMEM;
		goto out;
	}
	for (size_t base = 0; base < n_ops && !rc; base += BUILD_BATCH) {
		size_t m = n_ops - base < BUILD_BATCH ? n_ops - base : BUILD_BATCH;
		for (size_t i = 0; i < m; i++) {
			size_t k = base + i, inst = k % n_insts;
			make_uuid(uuids[i], 9, inst);
			snprintf(keys[i], 64, "%s:spawn:%zu", uuids[i], k);
			snprintf(rids[i], 32, "req-build-%zu", k);
			params[i] = make_params(uuids[i], k);
			s[i] = (struct pvm_op_submit){.type = "spawn",
			                              .instance_uuid = uuids[i],
			                              .idempotency_key = keys[i],
			                              .request_id = rids[i],
			                              .table_version = 1,
			                              .params = params[i]};
			if (!params[i])
				rc = PVM_ENOMEM;
		}
		if (!rc)
			rc = pvm_queue_submit_many(q, s, m, ids);
		for (size_t i = 0; i < m; i++)
			json_decref(params[i]);
	}
	double t1 = now_s();
	size_t unfinished = n_ops / 10, running = unfinished / 2, waiting = unfinished / 4;
	if (!rc)
		rc = build_pass(q, n_ops - unfinished, 0, true);
	double t2 = now_s();
	if (!rc)
		rc = build_pass(q, running + waiting, waiting, false);
	double t3 = now_s();
	struct pvm_queue_stats st;
	if (!rc)
		rc = pvm_queue_stats(q, &st);
	if (rc) {
		fprintf(stderr, "bench_queue: building %s: %s\n", dir, pvm_strerror(rc));
		goto out;
	}
	printf("  built %zu ops over %zu instances in %.1f s (submit_many x%d: %.1f s; claim + "
	       "succeed, %d threads: %.1f s; claim/wait: %.1f s): succeeded %zu, running %zu, "
	       "waiting %zu, queued %zu\n",
	       st.total, n_insts, t3 - t0, BUILD_BATCH, t1 - t0, BUILD_THREAD, t2 - t1, t3 - t2,
	       st.by_state[PVM_OP_SUCCEEDED], st.by_state[PVM_OP_RUNNING],
	       st.by_state[PVM_OP_WAITING], st.by_state[PVM_OP_QUEUED]);
	if (st.total != n_ops || st.by_state[PVM_OP_RUNNING] != running ||
	    st.by_state[PVM_OP_WAITING] != waiting ||
	    st.by_state[PVM_OP_SUCCEEDED] != n_ops - unfinished) {
		fprintf(stderr, "bench_queue: the journal built is not of the intended shape\n");
		rc = PVM_EJOURNAL;
	}
out:
	free(s);
	free(keys);
	free(rids);
	free(uuids);
	free(params);
	free(ids);
	pvm_queue_close(q);
	return rc;
}

static int copy_file(const char *from, const char *to, bool drop_cache)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		int e = errno;
		close(in);
		return -e;
	}
	struct stat st;
	int rc = fstat(in, &st) ? -errno : 0;
	off_t left = rc ? 0 : st.st_size;
	for (int i = 0; left > 0 && i < 1000000; i++) {
		ssize_t c = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);
		if (c <= 0) {
			rc = c < 0 ? -errno : PVM_EIO;
			break;
		}
		left -= c;
	}
	if (!rc && fsync(out) != 0)
		rc = -errno;
	if (!rc && drop_cache)
		posix_fadvise(out, 0, 0, POSIX_FADV_DONTNEED);
	close(in);
	close(out);
	return rc;
}

/* A fresh journal directory holding a copy of snapshot's data file. */
static int fresh_copy(const char *snapshot, const char *dir, bool drop_cache)
{
	char from[4200], to[4200];
	rm_tree(dir);
	if (mkdir(dir, 0700) != 0)
		return -errno;
	path_join(from, sizeof(from), snapshot, "data.mdb");
	path_join(to, sizeof(to), dir, "data.mdb");
	return copy_file(from, to, drop_cache);
}

struct open_set {
	double first_warm_ms[MAX_REPS], first_cold_ms[MAX_REPS], steady_ms[MAX_REPS];
	double anon_first[MAX_REPS], anon_steady[MAX_REPS], file_steady[MAX_REPS];
	double recovered;
	long log_lines;
	long long data_bytes;
	double listed;
};

/* Recovery and memory of one built journal (snapshot): first opens of fresh copies (warm
 * page cache, then dropped), then opens of an already recovered copy. */
static int measure_opens(const char *snapshot, const char *tag, struct open_set *o)
{
	char dir[4200], logp[4200], name[64], data[4200];
	int rc = 0;
	path_join(data, sizeof(data), snapshot, "data.mdb");
	o->data_bytes = file_size(data);
	snprintf(name, sizeof(name), "open-%s", tag);
	path_join(dir, sizeof(dir), work_dir, name);
	snprintf(name, sizeof(name), "open-%s.log", tag);
	path_join(logp, sizeof(logp), work_dir, name);
	for (int i = 0; i < C.reps && !rc; i++) {
		struct open_result r;
		for (int cold = 0; cold < 2 && !rc; cold++) {
			if ((rc = fresh_copy(snapshot, dir, cold)) ||
			    (rc = run_open_child(dir, logp, &r)))
				break;
			if (cold) {
				o->first_cold_ms[i] = r.open_ms;
			} else {
				o->first_warm_ms[i] = r.open_ms;
				o->anon_first[i] = r.anon_kib;
				o->recovered = r.recovered;
				o->log_lines = r.log_lines;
			}
		}
	}
	/* The last copy has been recovered: opens now find nothing running. */
	for (int i = 0; i < C.reps && !rc; i++) {
		struct open_result r;
		if ((rc = run_open_child(dir, logp, &r)))
			break;
		o->steady_ms[i] = r.open_ms;
		o->anon_steady[i] = r.anon_kib;
		o->file_steady[i] = r.file_kib;
		o->listed = r.listed;
	}
	rm_tree(dir);
	return rc;
}

/* ---- machine ------------------------------------------------------------------------- */

static void print_machine(void)
{
	char model[256] = "?", line[512];
	FILE *f = fopen("/proc/cpuinfo", "re");
	for (int i = 0; f && i < 4000 && fgets(line, sizeof(line), f); i++)
		if (strncmp(line, "model name", 10) == 0) {
			char *p = strchr(line, ':');
			if (p) {
				snprintf(model, sizeof(model), "%s", p + 2);
				model[strcspn(model, "\n")] = 0;
			}
			break;
		}
	if (f)
		fclose(f);
	long mem_kib = 0;
	f = fopen("/proc/meminfo", "re");
	if (f && fgets(line, sizeof(line), f))
		sscanf(line, "MemTotal: %ld", &mem_kib);
	if (f)
		fclose(f);
	struct utsname u;
	uname(&u);
	double la[3] = {0};
	getloadavg(la, 3);
	printf("machine: %ld CPUs (%s), %.1f GiB RAM, Linux %s, load average %.2f %.2f %.2f\n",
	       sysconf(_SC_NPROCESSORS_ONLN), model, (double)mem_kib / 1048576.0, u.release, la[0],
	       la[1], la[2]);

	/* Filesystem of the work dir: the longest mount point that prefixes it. */
	char best_mp[1024] = "?", best_fs[64] = "?", best_src[256] = "?";
	size_t best = 0;
	f = fopen("/proc/self/mountinfo", "re");
	char ml[2048];
	for (int i = 0; f && i < 10000 && fgets(ml, sizeof(ml), f); i++) {
		char mp[1024], fs[64], src[256];
		const char *dash = strstr(ml, " - ");
		if (!dash || sscanf(ml, "%*s %*s %*s %*s %1023s", mp) != 1 ||
		    sscanf(dash + 3, "%63s %255s", fs, src) != 2)
			continue;
		size_t l = strlen(mp);
		if (strncmp(work_dir, mp, l) == 0 &&
		    (l == 1 || work_dir[l] == '/' || work_dir[l] == 0) && l >= best) {
			best = l;
			snprintf(best_mp, sizeof(best_mp), "%s", mp);
			snprintf(best_fs, sizeof(best_fs), "%s", fs);
			snprintf(best_src, sizeof(best_src), "%s", src);
		}
	}
	if (f)
		fclose(f);
	printf("work dir: %s (%s on %s, mounted at %s); every phase below uses it\n", work_dir,
	       best_fs, best_src, best_mp);
	f = popen("beanstalkd -v 2>&1", "r");
	if (f) {
		if (fgets(line, sizeof(line), f)) {
			line[strcspn(line, "\n")] = 0;
			printf("baseline: %s, started as beanstalkd -l 127.0.0.1 -p PORT -b DIR -f "
			       "0\n",
			       line);
		}
		pclose(f);
	}
}

/* ---- main ---------------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
	        "usage: bench_queue [--quick] [--reps N] [--seconds S] [--max N] [--dir PARENT]\n"
	        "                   [--keep]\n"
	        "  --quick      smoke run: 1 repetition, 1 s runs, 10k-op recovery journal\n"
	        "  --reps N     repetitions of each client count (default 3, at most 9)\n"
	        "  --seconds S  time bound of each throughput run (default 5)\n"
	        "  --max N      count bound of each throughput run (default 20000)\n"
	        "  --dir PARENT where the work dir is made (default $TMPDIR, else the build dir)\n"
	        "  --keep       keep the work dir\n");
}

static int parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--quick") == 0) {
			C.quick = true;
			C.reps = 1;
			C.seconds = 1;
			C.max_ops = 3000;
			C.rec_ops = 10000;
			C.rec_insts = 1000;
		} else if (strcmp(a, "--keep") == 0) {
			C.keep = true;
		} else if (v && strcmp(a, "--reps") == 0) {
			C.reps = atoi(v);
			i++;
		} else if (v && strcmp(a, "--seconds") == 0) {
			C.seconds = atof(v);
			i++;
		} else if (v && strcmp(a, "--max") == 0) {
			C.max_ops = (size_t)strtoull(v, NULL, 10);
			i++;
		} else if (v && strcmp(a, "--dir") == 0) {
			C.parent = v;
			i++;
		} else {
			usage();
			return -1;
		}
	}
	if (C.reps < 1 || C.reps > MAX_REPS || !(C.seconds > 0 && C.seconds <= 600) ||
	    C.max_ops < 10 || C.max_ops > 10000000) {
		usage();
		return -1;
	}
	return 0;
}

/* The fsync counters of the preloaded shim; re-executes with it preloaded when absent. */
static int ensure_shim(char **argv)
{
	counts_fn fn = NULL;
	void *p = dlsym(RTLD_DEFAULT, "pvm_fsync_counts");
	memcpy(&fn, &p, sizeof(fn) < sizeof(p) ? sizeof(fn) : sizeof(p));
	if (fn) {
		self_counts = fn();
		return 0;
	}
	if (getenv("PVM_BENCH_REEXEC")) {
		fprintf(stderr,
		        "bench_queue: the fsync counting shim did not load (LD_PRELOAD=%s)\n",
		        getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "");
		return -1;
	}
	const char *shim = getenv("PVM_FSYNC_SHIM");
	if (!shim || !shim[0])
		shim = PVM_FSYNC_SHIM;
	if (!shim[0] || access(shim, R_OK) != 0) {
		fprintf(stderr,
		        "bench_queue: fsync counting shim '%s' not found (set PVM_FSYNC_SHIM)\n",
		        shim);
		return -1;
	}
	char pre[8192];
	const char *old = getenv("LD_PRELOAD");
	snprintf(pre, sizeof(pre), "%s%s%s", shim, old && old[0] ? ":" : "", old ? old : "");
	setenv("LD_PRELOAD", pre, 1);
	setenv("PVM_BENCH_REEXEC", "1", 1);
#ifdef PVM_SANITIZED
	setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 0);
#endif
	execv(self_exe, argv);
	fprintf(stderr, "bench_queue: re-exec %s: %s\n", self_exe, strerror(errno));
	return -1;
}

static void print_run(const char *what, int rep, int nc, const struct run_result *a)
{
	char pc[16] = "    -";
	if (!isnan(a->per_commit))
		snprintf(pc, sizeof(pc), "%5.2f", a->per_commit);
	printf("rep %d %s c=%-2d: %6.0f/s p50 %6.3f p99 %7.3f ms | %s/commit %5.2f/sync "
	       "| server %4.0f us/op, on CPU %3.0f%%, waiting for CPU %3.0f%%, %4.1f KiB "
	       "written/op | %zu in %.2f s, %llu syncs\n",
	       rep + 1, what, nc, a->ops_s, a->p50_ms, a->p99_ms, pc, a->per_fsync, a->cpu_us,
	       a->oncpu_pct, a->rqwait_pct, a->wkib, a->n, a->secs, a->syncs);
}

static const char *pf(bool ok)
{
	return ok ? "PASS" : "MISS";
}

int main(int argc, char **argv)
{
	ssize_t sl = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (sl <= 0) {
		perror("bench_queue: /proc/self/exe");
		return 1;
	}
	self_exe[sl] = 0;
	if (argc == 3 && strcmp(argv[1], "--child-open") == 0)
		return child_open(argv[2]);
	if (parse_args(argc, argv))
		return 2;
	if (ensure_shim(argv))
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	pvm_log_setup("bench_queue", PVM_LOG_STDERR, PVM_LOG_WARNING);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&fatal_signals);
	sigaddset(&fatal_signals, SIGINT);
	sigaddset(&fatal_signals, SIGTERM);
	sigaddset(&fatal_signals, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &fatal_signals, NULL);
	pthread_t sig_thread;
	if (pthread_create(&sig_thread, NULL, signal_main, NULL)) {
		fprintf(stderr, "bench_queue: cannot start the signal thread\n");
		return 1;
	}
	pthread_detach(sig_thread);
	atexit(at_exit_cleanup);

	/* The work dir: $TMPDIR or the build dir (this binary's ../). */
	char parent[4096];
	if (C.parent) {
		snprintf(parent, sizeof(parent), "%s", C.parent);
	} else if (getenv("TMPDIR") && getenv("TMPDIR")[0]) {
		snprintf(parent, sizeof(parent), "%s", getenv("TMPDIR"));
	} else {
		snprintf(parent, sizeof(parent), "%s", self_exe);
		for (int up = 0; up < 2; up++) {
			char *slash = strrchr(parent, '/');
			if (slash)
				*slash = 0;
		}
	}
	if ((size_t)snprintf(work_dir, sizeof(work_dir), "%s/bench-queue.XXXXXX", parent) >=
	            sizeof(work_dir) ||
	    !mkdtemp(work_dir)) {
		fprintf(stderr, "bench_queue: cannot make a work dir under %s: %s\n", parent,
		        strerror(errno));
		return 1;
	}
	atomic_store(&work_ready, true);
	printf("== scripts/bench queue: the durable journal against the disk and beanstalkd ==\n");
	print_machine();
	if (C.quick)
		printf("QUICK MODE: smaller runs and a %zu-op recovery journal; not the spec's "
		       "sizes\n",
		       C.rec_ops);

	int rc = make_pool();
	if (rc) {
		fprintf(stderr, "bench_queue: payload: %s\n", pvm_strerror(rc));
		return 1;
	}
	size_t plen = 0, blen_sum = 0;
	char tmp[8192];
	for (size_t i = 0; i < N_INST; i++) {
		plen += P.text_len[i];
		blen_sum += bean_body(tmp, sizeof(tmp), i,
		                      "01234567-89ab-4cde-8f01-23456789abcd:spawn:1:12345",
		                      "req-00000001-12345");
	}
	printf("payload: spawn params, %zu bytes of compact JSON on average (1000 instances); "
	       "beanstalkd job body (same fields in one JSON object) %zu bytes\n",
	       plen / N_INST, blen_sum / N_INST);
	printf("runs: each client count %d time(s), journal and beanstalkd interleaved; each run "
	       "at most %zu submissions or %.1f s\n\n",
	       C.reps, C.max_ops, C.seconds);

	int exit_code = 0;
	char jdir[4200];
	path_join(jdir, sizeof(jdir), work_dir, "journal");
	rc = start_beanstalkd();
	if (rc) {
		fprintf(stderr, "bench_queue: cannot start beanstalkd: %s%s\n", pvm_strerror(rc),
		        rc == -ENOENT ? " (not installed? scripts/bootstrap installs it)" : "");
		exit_code = 1;
		goto cleanup;
	}
	struct pvm_queue_opts qo = {.dir = jdir};
	struct pvm_queue *q = NULL;
	if ((rc = pvm_queue_open(&qo, &q))) {
		fprintf(stderr, "bench_queue: open %s: %s\n", jdir, pvm_strerror(rc));
		exit_code = 1;
		goto cleanup;
	}

	/* Results by [client count][rep]. */
	struct run_result jr[N_COUNTS][MAX_REPS], br[N_COUNTS][MAX_REPS], fr[MAX_REPS];
	struct run_result warm;
	if ((rc = run_once(RUN_JOURNAL, q, 8, 400, 5, &warm)) ||
	    (rc = run_once(RUN_BEANSTALKD, NULL, 8, 400, 5, &warm))) {
		exit_code = 1;
		pvm_queue_close(q);
		goto cleanup;
	}
	for (int rep = 0; rep < C.reps && !rc; rep++) {
		rc = fsync_floor(C.seconds < 2 ? C.seconds : 2, 20000, &fr[rep]);
		printf("rep %d fdatasync     c=1 : %6.0f/s p50 %6.3f p99 %7.3f ms | 4 KiB pwrite "
		       "in place + fdatasync | %zu in %.2f s\n",
		       rep + 1, fr[rep].ops_s, fr[rep].p50_ms, fr[rep].p99_ms, fr[rep].n,
		       fr[rep].secs);
		for (int k = 0; k < N_COUNTS && !rc; k++) {
			int ci = rep % 2 ? N_COUNTS - 1 - k : k;
			int nc = client_counts[ci];
			struct run_result *a = &jr[ci][rep], *b = &br[ci][rep];
			if ((rc = run_once(RUN_JOURNAL, q, nc, C.max_ops, C.seconds, a)))
				break;
			print_run("journal   ", rep, nc, a);
			if ((rc = run_once(RUN_BEANSTALKD, NULL, nc, C.max_ops, C.seconds, b)))
				break;
			print_run("beanstalkd", rep, nc, b);
		}
	}
	struct pvm_queue_stats tst;
	pvm_queue_stats(q, &tst);
	pvm_queue_close(q);
	stop_beanstalkd();
	if (rc) {
		fprintf(stderr, "bench_queue: a throughput run failed: %s\n", pvm_strerror(rc));
		exit_code = 1;
		goto cleanup;
	}
	printf("throughput journal: %zu ops at the end\n\n", tst.total);

	/* Recovery and memory. */
	char big[4200], small[4200];
	path_join(big, sizeof(big), work_dir, "journal-big");
	path_join(small, sizeof(small), work_dir, "journal-small");
	printf("recovery journal (%zu ops):\n", C.rec_ops);
	if ((rc = build_journal(big, C.rec_ops, C.rec_insts))) {
		exit_code = 1;
		goto cleanup;
	}
	printf("small journal (%zu ops):\n", C.mem_small);
	if ((rc = build_journal(small, C.mem_small, C.mem_small / 10))) {
		exit_code = 1;
		goto cleanup;
	}
	struct open_set ob = {0}, os = {0};
	if ((rc = measure_opens(big, "big", &ob)) || (rc = measure_opens(small, "small", &os))) {
		exit_code = 1;
		goto cleanup;
	}

	/* ---- the table ---- */
	double fs_rate[MAX_REPS], fs_p50[MAX_REPS], fs_p99[MAX_REPS];
	for (int r = 0; r < C.reps; r++) {
		fs_rate[r] = fr[r].ops_s;
		fs_p50[r] = fr[r].p50_ms;
		fs_p99[r] = fr[r].p99_ms;
	}
	double m_fs = median(fs_rate, C.reps), m_fs50 = median(fs_p50, C.reps),
	       m_fs99 = median(fs_p99, C.reps);
	double j_ops[N_COUNTS], j_p50[N_COUNTS], j_p99[N_COUNTS], j_pc[N_COUNTS], j_pf[N_COUNTS];
	double b_ops[N_COUNTS], b_p50[N_COUNTS], b_p99[N_COUNTS], b_pf[N_COUNTS];
	for (int k = 0; k < N_COUNTS; k++) {
		double v[6][MAX_REPS];
		for (int r = 0; r < C.reps; r++) {
			v[0][r] = jr[k][r].ops_s;
			v[1][r] = jr[k][r].p50_ms;
			v[2][r] = jr[k][r].p99_ms;
			v[3][r] = jr[k][r].per_commit;
			v[4][r] = jr[k][r].per_fsync;
			v[5][r] = br[k][r].per_fsync;
		}
		j_ops[k] = median(v[0], C.reps);
		j_p50[k] = median(v[1], C.reps);
		j_p99[k] = median(v[2], C.reps);
		j_pc[k] = median(v[3], C.reps);
		j_pf[k] = median(v[4], C.reps);
		b_pf[k] = median(v[5], C.reps);
		for (int r = 0; r < C.reps; r++) {
			v[0][r] = br[k][r].ops_s;
			v[1][r] = br[k][r].p50_ms;
			v[2][r] = br[k][r].p99_ms;
		}
		b_ops[k] = median(v[0], C.reps);
		b_p50[k] = median(v[1], C.reps);
		b_p99[k] = median(v[2], C.reps);
	}
	double srv[2][N_COUNTS][4];
	for (int k = 0; k < N_COUNTS; k++)
		for (int w = 0; w < 2; w++) {
			double v[4][MAX_REPS];
			for (int r = 0; r < C.reps; r++) {
				const struct run_result *x = w ? &br[k][r] : &jr[k][r];
				v[0][r] = x->cpu_us;
				v[1][r] = x->oncpu_pct;
				v[2][r] = x->rqwait_pct;
				v[3][r] = x->wkib;
			}
			for (int f = 0; f < 4; f++)
				srv[w][k][f] = median(v[f], C.reps);
		}
	printf("\nmedians of %d repetition(s):\n", C.reps);
	printf("| phase | clients | ops/s | p50 ms | p99 ms | per commit | per fsync | baseline "
	       "ops/s | ratio |\n");
	printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
	printf("| raw fdatasync (4 KiB in place) | 1 | %.0f | %.3f | %.3f | - | 1 | - | - |\n",
	       m_fs, m_fs50, m_fs99);
	for (int k = 0; k < N_COUNTS; k++)
		printf("| journal submit | %d | %.0f | %.3f | %.3f | %.2f | %.2f | %.0f | %.2f |\n",
		       client_counts[k], j_ops[k], j_p50[k], j_p99[k], j_pc[k], j_pf[k], b_ops[k],
		       j_ops[k] / b_ops[k]);
	for (int k = 0; k < N_COUNTS; k++)
		printf("| beanstalkd put -f 0 | %d | %.0f | %.3f | %.3f | - | %.2f | - | - |\n",
		       client_counts[k], b_ops[k], b_p50[k], b_p99[k], b_pf[k]);
	printf("\nwhere the time goes: the thread every operation passes through (journal: "
	       "the committer \"pvm-journal\"; beanstalkd: its one thread), from "
	       "/proc/.../schedstat and /proc/.../io\n");
	printf("| server thread | clients | CPU us per op | on CPU %% of run | waiting for a CPU "
	       "%% of run | KiB written per op |\n");
	printf("|---|---:|---:|---:|---:|---:|\n");
	for (int w = 0; w < 2; w++)
		for (int k = 0; k < N_COUNTS; k++)
			printf("| %s | %d | %.0f | %.0f | %.0f | %.1f |\n",
			       w ? "beanstalkd" : "journal committer", client_counts[k],
			       srv[w][k][0], srv[w][k][1], srv[w][k][2], srv[w][k][3]);

	double rec_warm = median(ob.first_warm_ms, C.reps),
	       rec_cold = median(ob.first_cold_ms, C.reps),
	       rec_steady = median(ob.steady_ms, C.reps);
	double srec_warm = median(os.first_warm_ms, C.reps),
	       srec_cold = median(os.first_cold_ms, C.reps),
	       srec_steady = median(os.steady_ms, C.reps);
	double anon_big = median(ob.anon_steady, C.reps),
	       anon_small = median(os.anon_steady, C.reps);
	double anon_big_first = median(ob.anon_first, C.reps),
	       anon_small_first = median(os.anon_first, C.reps);
	printf("\n| journal | data file MiB | recovered | open+recovery ms (warm cache) | same, "
	       "page cache dropped | open ms, nothing to recover | RssAnon KiB after recovery "
	       "| RssAnon KiB, steady open |\n");
	printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
	printf("| %zu ops (10%% unfinished) | %.1f | %.0f | %.1f | %.1f | %.1f | %.0f | %.0f |\n",
	       C.rec_ops, (double)ob.data_bytes / 1048576.0, ob.recovered, rec_warm, rec_cold,
	       rec_steady, anon_big_first, anon_big);
	printf("| %zu ops (10%% unfinished) | %.1f | %.0f | %.1f | %.1f | %.1f | %.0f | %.0f |\n",
	       C.mem_small, (double)os.data_bytes / 1048576.0, os.recovered, srec_warm, srec_cold,
	       srec_steady, anon_small_first, anon_small);
	printf("(recovery logs one line per recovered op: %ld lines for the large journal; "
	       "memory: fresh process, open(recover) + stats + list of %.0f queued ops, "
	       "RssFile %.0f KiB of LMDB map)\n",
	       ob.log_lines, ob.listed, median(ob.file_steady, C.reps));

	/* ---- targets ---- */
	double ratio32 = j_ops[2] / b_ops[2];
	double p99_ratio = j_p99[1] / j_p99[0];
	double rec_worst = rec_cold > rec_warm ? rec_cold : rec_warm;
	double anon_growth = anon_big - anon_small;
	double waits[2 * N_COUNTS * MAX_REPS];
	int nw = 0;
	for (int k = 0; k < N_COUNTS; k++)
		for (int r = 0; r < C.reps; r++) {
			waits[nw++] = jr[k][r].rqwait_pct;
			waits[nw++] = br[k][r].rqwait_pct;
		}
	qsort(waits, (size_t)nw, sizeof(double), cmp_dbl);
	double cpu_wait = waits[nw / 2];
	double la_end[3] = {0};
	getloadavg(la_end, 3);
	printf("\nnoise: the server threads waited for a CPU %.0f%% of the time (median of the %d "
	       "throughput runs; load average now %.2f). Above ~20%% the machine's other load "
	       "dominates the figures: compare runs with a low figure here.\n",
	       cpu_wait, nw, la_end[0]);
	printf("\ntargets:\n");
	char per_rep_ratio[256] = "", per_rep_p99[256] = "";
	for (int r = 0, o1 = 0, o2 = 0; r < C.reps; r++) {
		o1 += snprintf(per_rep_ratio + o1, sizeof(per_rep_ratio) - (size_t)o1, "%s%.2f",
		               r ? ", " : "", jr[2][r].ops_s / br[2][r].ops_s);
		o2 += snprintf(per_rep_p99 + o2, sizeof(per_rep_p99) - (size_t)o2, "%s%.2f",
		               r ? ", " : "", jr[1][r].p99_ms / jr[0][r].p99_ms);
	}
	printf("  %s  32 submitters at least 3x beanstalkd: %.2fx (%.0f vs %.0f /s; by "
	       "repetition %s)\n",
	       pf(ratio32 >= 3), ratio32, j_ops[2], b_ops[2], per_rep_ratio);
	printf("  %s  at least 5 submissions per fsync at 32: %.2f (%.2f per commit; LMDB syncs "
	       "twice per commit)\n",
	       pf(j_pf[2] >= 5), j_pf[2], j_pc[2]);
	printf("  %s  p99 at 8 at most 2.5x p99 at 1: %.3f ms vs %.3f ms = %.2fx (by repetition "
	       "%s)\n",
	       pf(p99_ratio <= 2.5), j_p99[1], j_p99[0], p99_ratio, per_rep_p99);
	printf("  %s  recovery of %zu ops under 1 s: %.1f ms warm, %.1f ms page cache dropped\n",
	       pf(rec_worst < 1000), C.rec_ops, rec_warm, rec_cold);
	printf("  %s  anonymous memory does not grow with the journal (less than 1 MiB from %zu "
	       "to %zu ops): %.0f -> %.0f KiB (%+.0f KiB)\n",
	       pf(anon_growth < 1024), C.mem_small, C.rec_ops, anon_small, anon_big, anon_growth);

	printf("\nsubmit_1=%.0f submit_8=%.0f submit_32=%.0f beanstalkd_1=%.0f beanstalkd_8=%.0f "
	       "beanstalkd_32=%.0f ratio_32=%.2f per_fsync_32=%.2f per_commit_32=%.2f "
	       "p50_1_ms=%.3f p99_1_ms=%.3f p99_8_ms=%.3f p99_32_ms=%.3f fsync_rate=%.0f "
	       "fsync_p99_ms=%.3f recovery_100k_ms=%.1f recovery_100k_cold_ms=%.1f "
	       "anon_kib_1k=%.0f anon_kib_100k=%.0f committer_us_32=%.0f beanstalkd_us_32=%.0f "
	       "kib_written_1=%.1f kib_written_32=%.1f cpu_wait_pct=%.0f\n",
	       j_ops[0], j_ops[1], j_ops[2], b_ops[0], b_ops[1], b_ops[2], ratio32, j_pf[2],
	       j_pc[2], j_p50[0], j_p99[0], j_p99[1], j_p99[2], m_fs, m_fs99, rec_warm, rec_cold,
	       anon_small, anon_big, srv[0][2][0], srv[1][2][0], srv[0][0][3], srv[0][2][3],
	       cpu_wait);

cleanup:
	stop_beanstalkd();
	free_pool();
	if (C.keep)
		fprintf(stderr, "bench_queue: work dir kept: %s\n", work_dir);
	else
		rm_tree(work_dir);
	return exit_code;
}
