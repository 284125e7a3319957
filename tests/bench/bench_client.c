/* bench_client.c: `scripts/bench client`. In one run:
 *  1. the typed parse of the largest captured feeds (entries/s, MB/s), median of RUNS runs;
 *  2. the same feeds parsed with /usr/bin/python3 + lxml reading the same fields
 *     (tests/bench/bench_client_lxml.py), the baseline;
 *  3. GET + typed parse of a 500-partition feed served by pvmsim (the partitions created
 *     through pvmsim's API first), median of RUNS runs.
 * Prints a markdown table and ends with the line
 *   parse_mb_s=... lxml_mb_s=... ratio_vs_lxml=... feed500_ms=...
 * Usage: bench_client [RUNS] (default 7). */
#include "pvm/client.h"
#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/pvm_objects.h"
#include "pvm/util.h"

#include <curl/curl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SOURCE_DIR
#define SOURCE_DIR "."
#endif
#ifndef BINARY_DIR
#define BINARY_DIR "."
#endif

enum kind { K_LPAR, K_MS, K_VIOS, K_VG, K_LU };

static const struct {
	const char *file;
	enum kind kind;
} feeds[] = {
        {"fake_lpar_feed.xml", K_LPAR},   {"sys_with_sriov.xml", K_MS}, {"fake_vios.xml", K_VIOS},
        {"fake_volume_group2.xml", K_VG}, {"lufeed.xml", K_LU},
};
#define NFEEDS (sizeof(feeds) / sizeof(feeds[0]))

static volatile size_t sink;

/* One typed parse; returns the number of entries or -1. */
static long parse_once(enum kind k, const char *x, size_t len)
{
	long n = -1;
	switch (k) {
	case K_LPAR: {
		struct pvm_lpar_list *l = NULL;
		if (!pvm_parse_lpar(x, len, NULL, &l, NULL))
			n = (long)l->count;
		pvm_lpar_list_free(l);
		break;
	}
	case K_MS: {
		struct pvm_managed_system_list *l = NULL;
		if (!pvm_parse_managed_system(x, len, NULL, &l, NULL))
			n = (long)l->count;
		pvm_managed_system_list_free(l);
		break;
	}
	case K_VIOS: {
		struct pvm_vios_list *l = NULL;
		if (!pvm_parse_vios(x, len, NULL, &l, NULL))
			n = (long)l->count;
		pvm_vios_list_free(l);
		break;
	}
	case K_VG: {
		struct pvm_volume_group_list *l = NULL;
		if (!pvm_parse_volume_group(x, len, NULL, &l, NULL))
			n = (long)l->count;
		pvm_volume_group_list_free(l);
		break;
	}
	case K_LU: {
		struct pvm_logical_unit_list *l = NULL;
		if (!pvm_parse_logical_unit(x, len, NULL, &l, NULL))
			n = (long)l->count;
		pvm_logical_unit_list_free(l);
		break;
	}
	}
	sink += (size_t)n;
	return n;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double now_s(void)
{
	return (double)pvm_mono_ns() / 1e9;
}

/* ---------------------------------------------------------------- pvmsim ----------- */

static pid_t sim_pid = -1;

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	socklen_t l = sizeof(a);
	getsockname(fd, (struct sockaddr *)&a, &l);
	close(fd);
	return ntohs(a.sin_port);
}

static int start_sim(const char *dir, char *endpoint, size_t n)
{
	char bin[512], listen[64], state[600];
	snprintf(bin, sizeof(bin), "%s/bin/pvmsim", BINARY_DIR);
	snprintf(state, sizeof(state), "%s/state", dir);
	for (int attempt = 0; attempt < 5; attempt++) {
		int port = free_port();
		snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
		snprintf(endpoint, n, "http://127.0.0.1:%d", port);
		sim_pid = fork();
		if (sim_pid == 0) {
			int null = open("/dev/null", O_WRONLY);
			if (null >= 0) {
				dup2(null, 1);
				dup2(null, 2);
			}
			execl(bin, bin, "--listen", listen, "--mode", "novalink", "--state-dir",
			      state, "--quiet", (char *)NULL);
			_exit(127);
		}
		/* ready when /sim/health answers (bounded: 10 s) */
		for (int i = 0; i < 1000; i++) {
			int st;
			if (waitpid(sim_pid, &st, WNOHANG) == sim_pid) {
				sim_pid = -1;
				break;
			}
			CURL *h = curl_easy_init();
			char url[128];
			snprintf(url, sizeof(url), "%s/sim/health", endpoint);
			curl_easy_setopt(h, CURLOPT_URL, url);
			curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
			curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
			curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
			long code = 0;
			if (curl_easy_perform(h) == CURLE_OK)
				curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
			curl_easy_cleanup(h);
			if (code == 200 || code == 405 || code == 404)
				return 0;
			nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
		}
		if (sim_pid > 0) {
			kill(sim_pid, SIGKILL);
			waitpid(sim_pid, NULL, 0);
			sim_pid = -1;
		}
	}
	return -1;
}

static void stop_sim(void)
{
	if (sim_pid > 0) {
		kill(sim_pid, SIGTERM);
		waitpid(sim_pid, NULL, 0);
	}
	sim_pid = -1;
}

/* Creates 500 partitions, then times GET + typed parse of the partition feed. */
static int feed500(int runs, double *ms_out, size_t *bytes, size_t *count)
{
	char dir[] = "/tmp/pvmbench-XXXXXX";
	if (!mkdtemp(dir))
		return -errno;
	char endpoint[64];
	if (start_sim(dir, endpoint, sizeof(endpoint))) {
		fprintf(stderr, "bench_client: pvmsim did not start (build it: target pvmsim)\n");
		return PVM_EIO;
	}
	struct pvm_client_opts o = {.endpoint = endpoint,
	                            .user = "hscroot",
	                            .password = "abc123",
	                            .connect_retry_ms = -1};
	struct pvm_client *c = NULL;
	struct pvm_rest_error err;
	int rc = pvm_client_create(&o, &c, &err);
	if (!rc)
		rc = pvm_client_logon(c, &err);
	struct pvm_resp r = {0};
	char ms[64] = "";
	if (!rc)
		rc = pvm_client_get(c, "uom/ManagedSystem", NULL, NULL, &r, &err);
	if (!rc) {
		struct pvm_managed_system_list *l = NULL;
		rc = pvm_parse_managed_system(r.body, r.len, NULL, &l, &err);
		if (!rc)
			snprintf(ms, sizeof(ms), "%s", l->items[0].meta.uuid);
		pvm_managed_system_list_free(l);
	}
	pvm_resp_fini(&r);
	char path[200];
	snprintf(path, sizeof(path), "uom/ManagedSystem/%s/LogicalPartition", ms);
	size_t have = 0;
	if (!rc && !pvm_client_get(c, path, NULL, NULL, &r, &err)) {
		struct pvm_lpar_list *l = NULL;
		if (!pvm_parse_lpar(r.body, r.len, NULL, &l, NULL))
			have = l->count;
		pvm_lpar_list_free(l);
	}
	pvm_resp_fini(&r);
	for (size_t i = have; !rc && i < 500; i++) {
		char name[32], uuid[40];
		snprintf(name, sizeof(name), "bench-%04zu", i);
		snprintf(uuid, sizeof(uuid), "0BE0C000-0000-4000-8000-%012zu", i);
		struct pvm_lpar_spec s = {
		        .uuid = uuid, .name = name, .memory_mb = 1024, .vcpus = 1};
		char *body = pvm_build_lpar_create(&s, &err);
		struct pvm_req rq = {.method = PVM_PUT,
		                     .path = path,
		                     .content_type = "application/vnd.ibm.powervm.uom+xml; "
		                                     "type=LogicalPartition",
		                     .body = body,
		                     .body_len = body ? strlen(body) : 0};
		rc = body ? pvm_client_request(c, &rq, &r, &err) : PVM_ENOMEM;
		pvm_resp_fini(&r);
		free(body);
	}
	if (rc) {
		fprintf(stderr, "bench_client: pvmsim setup: %s\n", err.message);
	} else {
		double *v = calloc((size_t)runs, sizeof(double));
		for (int i = 0; i < runs && !rc; i++) {
			double t0 = now_s();
			rc = pvm_client_get(c, path, NULL, "bench", &r, &err);
			struct pvm_lpar_list *l = NULL;
			if (!rc)
				rc = pvm_parse_lpar(r.body, r.len, NULL, &l, &err);
			v[i] = (now_s() - t0) * 1000;
			if (!rc) {
				*bytes = r.len;
				*count = l->count;
			}
			pvm_lpar_list_free(l);
			pvm_resp_fini(&r);
		}
		if (!rc)
			*ms_out = median(v, runs);
		free(v);
	}
	pvm_client_destroy(c);
	stop_sim();
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd)) {
	}
	return rc;
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 7;
	if (runs < 1 || runs > 101)
		runs = 7;
	pvm_log_setup("bench_client", PVM_LOG_STDERR, PVM_LOG_WARNING);
	if (pvm_client_global_init())
		return 1;

	char *data[NFEEDS];
	size_t len[NFEEDS];
	long entries[NFEEDS];
	double c_sec[NFEEDS];
	for (size_t f = 0; f < NFEEDS; f++) {
		char path[600];
		snprintf(path, sizeof(path), "%s/tests/fixtures/powervm/%s", SOURCE_DIR,
		         feeds[f].file);
		int rc = pvm_read_file(path, 64 << 20, &data[f], &len[f]);
		if (rc) {
			fprintf(stderr, "bench_client: %s: %s\n", path, pvm_strerror(rc));
			return 1;
		}
		entries[f] = parse_once(feeds[f].kind, data[f], len[f]);
		if (entries[f] < 0) {
			fprintf(stderr, "bench_client: %s does not parse\n", path);
			return 1;
		}
		/* repetitions for about 0.2 s per run, as the lxml script does */
		double t0 = now_s();
		parse_once(feeds[f].kind, data[f], len[f]);
		double one = now_s() - t0;
		long reps = one > 0 ? (long)(0.2 / one) : 1000;
		if (reps < 1)
			reps = 1;
		double v[101];
		for (int r = 0; r < runs; r++) {
			t0 = now_s();
			for (long i = 0; i < reps; i++)
				parse_once(feeds[f].kind, data[f], len[f]);
			v[r] = (now_s() - t0) / (double)reps;
		}
		c_sec[f] = median(v, runs);
	}

	/* the lxml baseline, same files, same fields */
	char cmd[4096];
	int o = snprintf(cmd, sizeof(cmd),
	                 "/usr/bin/python3 %s/tests/bench/bench_client_lxml.py %d", SOURCE_DIR,
	                 runs);
	for (size_t f = 0; f < NFEEDS; f++)
		o += snprintf(cmd + o, sizeof(cmd) - (size_t)o, " %s/tests/fixtures/powervm/%s",
		              SOURCE_DIR, feeds[f].file);
	double py_sec[NFEEDS] = {0};
	FILE *p = popen(cmd, "r");
	if (!p) {
		perror("popen");
		return 1;
	}
	char line[512];
	while (fgets(line, sizeof(line), p)) {
		char name[256];
		size_t b;
		long n;
		double s;
		if (sscanf(line, "%255s %zu %ld %lf", name, &b, &n, &s) != 4)
			continue;
		for (size_t f = 0; f < NFEEDS; f++)
			if (!strcmp(name, feeds[f].file)) {
				py_sec[f] = s;
				if (n != entries[f])
					fprintf(stderr,
					        "bench_client: %s: lxml saw %ld entries, C %ld\n",
					        name, n, entries[f]);
			}
	}
	if (pclose(p) != 0) {
		fprintf(stderr, "bench_client: the lxml baseline failed (python3-lxml?)\n");
		return 1;
	}

	printf("| feed | bytes | entries | C typed parse | MB/s | entries/s | lxml | lxml MB/s | "
	       "ratio |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
	double tot_b = 0, tot_c = 0, tot_py = 0, tot_e = 0;
	for (size_t f = 0; f < NFEEDS; f++) {
		double mb = (double)len[f] / 1e6;
		printf("| %s | %zu | %ld | %.3f ms | %.1f | %.0f | %.3f ms | %.1f | %.2fx |\n",
		       feeds[f].file, len[f], entries[f], c_sec[f] * 1e3, mb / c_sec[f],
		       (double)entries[f] / c_sec[f], py_sec[f] * 1e3,
		       py_sec[f] > 0 ? mb / py_sec[f] : 0, py_sec[f] / c_sec[f]);
		tot_b += mb;
		tot_c += c_sec[f];
		tot_py += py_sec[f];
		tot_e += (double)entries[f];
	}
	double parse_mb_s = tot_b / tot_c, lxml_mb_s = tot_py > 0 ? tot_b / tot_py : 0;
	printf("| all | %.0f | %.0f | %.3f ms | %.1f | %.0f | %.3f ms | %.1f | %.2fx |\n",
	       tot_b * 1e6, tot_e, tot_c * 1e3, parse_mb_s, tot_e / tot_c, tot_py * 1e3, lxml_mb_s,
	       tot_py / tot_c);
	for (size_t f = 0; f < NFEEDS; f++)
		free(data[f]);

	fflush(stdout);
	double f500 = -1;
	size_t fbytes = 0, fcount = 0;
	int rc = feed500(runs, &f500, &fbytes, &fcount);
	if (rc)
		fprintf(stderr, "bench_client: feed500 failed: %s\n", pvm_strerror(rc));
	else
		printf("\nGET + typed parse of the partition feed from pvmsim: %zu partitions, %zu "
		       "bytes, median %.2f ms of %d\n",
		       fcount, fbytes, f500, runs);
	printf("parse_mb_s=%.1f lxml_mb_s=%.1f ratio_vs_lxml=%.2f feed500_ms=%.2f\n", parse_mb_s,
	       lxml_mb_s, lxml_mb_s > 0 ? parse_mb_s / lxml_mb_s : 0, f500);
	pvm_client_global_cleanup();
	return rc ? 1 : 0;
}
