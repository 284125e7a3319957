/* bench_pvmsim.c: the GET rate pvmsim sustains on loopback with keep-alive.
 *
 *   build/bin/bench_pvmsim [SECONDS] [THREADS]      (defaults 3 s, 4 client threads)
 *
 * Starts build/bin/pvmsim (next to this program) in novalink mode in a temporary state
 * directory on a free port, logs on, then each client thread loops over one keep-alive
 * libcurl handle: GET LogicalPartition/{uuid}/quick/PartitionState (the simple GET a driver
 * polls), bounded by time and count. A second, shorter phase GETs the full partition
 * entry. The last line is the headline: gets_per_s=N entry_gets_per_s=M.
 */
#include <curl/curl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 32
#define MAX_GETS    (50 * 1000 * 1000)

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct buf {
	char *p;
	size_t n;
};

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
	struct buf *b = arg;
	if (!b)
		return sz * n;
	char *q = realloc(b->p, b->n + sz * n + 1);
	if (!q)
		return 0;
	memcpy(q + b->n, p, sz * n);
	b->n += sz * n;
	q[b->n] = '\0';
	b->p = q;
	return sz * n;
}

static char base[128], token[256], lpar[64];

static long request(CURL *c, const char *method, const char *path, const char *body,
                    struct buf *out)
{
	char url[512], hdr[300];
	snprintf(url, sizeof(url), "%s%s", base, path);
	snprintf(hdr, sizeof(hdr), "X-API-Session: %s", token);
	struct curl_slist *h = curl_slist_append(NULL, hdr);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	long status = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	return status;
}

static const char *between(const char *s, const char *open, const char *close, char *out, size_t n)
{
	const char *a = s ? strstr(s, open) : NULL;
	if (!a)
		return NULL;
	a = strchr(a, '>');
	const char *b = a ? strstr(a, close) : NULL;
	if (!b || (size_t)(b - a - 1) >= n)
		return NULL;
	memcpy(out, a + 1, (size_t)(b - a - 1));
	out[b - a - 1] = '\0';
	return out;
}

struct worker {
	pthread_t th;
	const char *path;
	int64_t until;
	long gets, errors;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	CURL *c = curl_easy_init();
	if (!c)
		return NULL;
	for (long i = 0; i < MAX_GETS && mono_ns() < w->until; i++) {
		if (request(c, "GET", w->path, NULL, NULL) == 200)
			w->gets++;
		else
			w->errors++;
	}
	curl_easy_cleanup(c);
	return NULL;
}

static double phase(const char *path, double seconds, int threads, long *errors)
{
	struct worker ws[MAX_THREADS] = {0};
	int64_t t0 = mono_ns();
	for (int i = 0; i < threads; i++) {
		ws[i].path = path;
		ws[i].until = t0 + (int64_t)(seconds * 1e9);
		pthread_create(&ws[i].th, NULL, work, &ws[i]);
	}
	long gets = 0;
	*errors = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(ws[i].th, NULL);
		gets += ws[i].gets;
		*errors += ws[i].errors;
	}
	double secs = (double)(mono_ns() - t0) / 1e9;
	printf("%s: %ld GETs in %.2f s with %d threads, %ld errors\n", path, gets, secs, threads,
	       *errors);
	fflush(stdout);
	return (double)gets / secs;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 3.0;
	int threads = argc > 2 ? atoi(argv[2]) : 4;
	if (seconds <= 0 || seconds > 600 || threads < 1 || threads > MAX_THREADS) {
		fprintf(stderr, "usage: bench_pvmsim [SECONDS 0-600] [THREADS 1-%d]\n",
		        MAX_THREADS);
		return 2;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 16);
	if (n <= 0)
		return 1;
	exe[n] = '\0';
	strcpy(strrchr(exe, '/') + 1, "pvmsim");
	char dir[] = "/tmp/bench_pvmsim-XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	char state[64];
	snprintf(state, sizeof(state), "%s/state", dir);
	int p[2];
	if (pipe(p))
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		char logp[96]; /* pvmsim's log stays out of the figures */
		snprintf(logp, sizeof(logp), "%s/pvmsim.log", dir);
		if (!freopen(logp, "w", stderr))
			_exit(126);
		execl(exe, exe, "--listen", "127.0.0.1:0", "--mode", "novalink", "--state-dir",
		      state, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char line[256] = "";
	size_t len = 0;
	int64_t deadline = mono_ns() + 20000000000LL;
	while (len + 1 < sizeof(line) && mono_ns() < deadline) {
		struct pollfd pfd = {.fd = p[0], .events = POLLIN};
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if (read(p[0], line + len, 1) <= 0 || line[len] == '\n')
			break;
		len++;
	}
	line[len] = '\0';
	int rc = 1;
	char *u = strstr(line, "http://");
	if (!u) {
		fprintf(stderr, "bench_pvmsim: pvmsim did not start (%s)\n", exe);
		goto out;
	}
	*strchr(u, ' ') = '\0';
	snprintf(base, sizeof(base), "%s", u);
	curl_global_init(CURL_GLOBAL_ALL);
	CURL *c = curl_easy_init();
	struct buf b = {0};
	request(c, "PUT", "/rest/api/web/Logon",
	        "<LogonRequest xmlns=\"http://www.ibm.com/xmlns/systems/power/firmware/web/mc/"
	        "2012_10/\" schemaVersion=\"V1_0\"><UserID>hscroot</UserID><Password>abc123"
	        "</Password></LogonRequest>",
	        &b);
	if (!between(b.p, "<X-API-Session", "</X-API-Session>", token, sizeof(token)))
		goto out_curl;
	free(b.p);
	b = (struct buf){0};
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
	request(c, "GET", "/rest/api/uom/LogicalPartition", NULL, &b);
	if (!between(b.p, "<PartitionUUID", "</PartitionUUID>", lpar, sizeof(lpar)))
		goto out_curl;
	char quick[160], entry[160];
	snprintf(quick, sizeof(quick), "/rest/api/uom/LogicalPartition/%s/quick/PartitionState",
	         lpar);
	snprintf(entry, sizeof(entry), "/rest/api/uom/LogicalPartition/%s", lpar);
	long e1, e2;
	double rate = phase(quick, seconds, threads, &e1);
	double erate = phase(entry, seconds / 3, threads, &e2);
	printf("gets_per_s=%.0f entry_gets_per_s=%.0f\n", rate, erate);
	fflush(stdout);
	rc = e1 || e2 ? 1 : 0;
out_curl:
	free(b.p);
	curl_easy_cleanup(c);
	curl_global_cleanup();
out:
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	close(p[0]);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}
