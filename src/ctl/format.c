/* format.c: powervmctl's output helpers: aligned tables, durations, times, the progress bar,
 * argument parsers, and the redaction guard for anything printed from the journal. */
#include "ctl.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct ctl_table {
	size_t ncols;
	char **cells; /* row-major */
	size_t n, cap;
};

void ctl_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("powervmctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

struct ctl_table *ctl_table_create(size_t ncols, const char *const *headers)
{
	struct ctl_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->ncols = ncols;
	for (size_t i = 0; i < ncols; i++)
		ctl_table_add(t, headers[i]);
	return t;
}

void ctl_table_add(struct ctl_table *t, const char *s)
{
	if (!t)
		return;
	if (t->n == t->cap) {
		size_t nc = t->cap ? t->cap * 2 : 64;
		char **c = realloc(t->cells, nc * sizeof(*c));
		if (!c)
			return;
		t->cells = c;
		t->cap = nc;
	}
	t->cells[t->n] = strdup(s && s[0] ? s : "-");
	if (t->cells[t->n])
		t->n++;
}

void ctl_table_addf(struct ctl_table *t, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ctl_table_add(t, buf);
}

size_t ctl_table_rows(const struct ctl_table *t)
{
	return t && t->ncols ? t->n / t->ncols - 1 : 0;
}

void ctl_table_print(struct ctl_table *t, FILE *f, unsigned right_cols)
{
	if (!t)
		return;
	size_t w[32] = {0};
	size_t nc = t->ncols < 32 ? t->ncols : 32;
	for (size_t i = 0; i < t->n; i++) {
		size_t l = strlen(t->cells[i]);
		if (l > w[i % t->ncols % 32])
			w[i % t->ncols % 32] = l;
	}
	for (size_t i = 0; i < t->n; i++) {
		size_t col = i % t->ncols;
		bool last = col == t->ncols - 1;
		int width = col < nc ? (int)w[col] : 0;
		if (right_cols & (1u << col))
			fprintf(f, "%*s", width, t->cells[i]);
		else if (last)
			fputs(t->cells[i], f);
		else
			fprintf(f, "%-*s", width, t->cells[i]);
		fputs(last ? "\n" : "  ", f);
	}
}

void ctl_table_destroy(struct ctl_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

char *ctl_fmt_duration(int64_t ms, char *buf, size_t n)
{
	if (ms < 0)
		ms = 0;
	int64_t s = ms / 1000;
	if (s < 60)
		snprintf(buf, n, s < 10 ? "%.1fs" : "%.0fs", (double)ms / 1000.0);
	else if (s < 3600)
		snprintf(buf, n, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
	else if (s < 86400)
		snprintf(buf, n, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
	else
		snprintf(buf, n, "%lldd%02lldh", (long long)(s / 86400),
		         (long long)(s % 86400 / 3600));
	return buf;
}

char *ctl_fmt_local(int64_t ms, char *buf, size_t n)
{
	if (ms <= 0) {
		snprintf(buf, n, "-");
		return buf;
	}
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	localtime_r(&s, &tm);
	strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
	return buf;
}

int ctl_parse_duration(const char *s, int64_t *seconds)
{
	if (!s || !*s)
		return -1;
	int64_t total = 0;
	const char *p = s;
	while (*p) {
		if (!isdigit((unsigned char)*p))
			return -1;
		char *end;
		long long v = strtoll(p, &end, 10);
		if (v < 0 || v > 100000000)
			return -1;
		int64_t unit;
		switch (*end) {
		case '\0':
			unit = 1;
			if (p != s) /* "1h30" is ambiguous */
				return -1;
			break;
		case 's':
			unit = 1;
			break;
		case 'm':
			unit = 60;
			break;
		case 'h':
			unit = 3600;
			break;
		case 'd':
			unit = 86400;
			break;
		case 'w':
			unit = 7 * 86400;
			break;
		default:
			return -1;
		}
		total += (int64_t)v * unit;
		if (total > (int64_t)10000 * 86400 * 365)
			return -1;
		p = *end ? end + 1 : end;
	}
	*seconds = total;
	return 0;
}

int ctl_parse_id(const char *s, uint64_t *id)
{
	if (!s || !isdigit((unsigned char)s[0]))
		return -1;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end || v == 0 || v > (1ULL << 62))
		return -1;
	*id = v;
	return 0;
}

void ctl_fmt_bar(int progress, int width, char *buf, size_t n)
{
	if (progress < 0)
		progress = 0;
	if (progress > 100)
		progress = 100;
	if (width < 1 || (size_t)width + 3 > n)
		width = n > 3 ? (int)n - 3 : 0;
	int full = progress * width / 100;
	size_t k = 0;
	buf[k++] = '[';
	for (int i = 0; i < width; i++)
		buf[k++] = i < full ? '#' : '-';
	buf[k++] = ']';
	buf[k] = '\0';
}

static bool secret_name(const char *k)
{
	static const char *const words[] = {"password",    "passwd",     "secret",    "token",
	                                    "private_key", "passphrase", "credential"};
	char low[128];
	size_t i = 0;
	for (; k[i] && i < sizeof(low) - 1; i++)
		low[i] = (char)tolower((unsigned char)k[i]);
	low[i] = '\0';
	for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++)
		if (strstr(low, words[w]))
			return true;
	return false;
}

void ctl_redact(json_t *v)
{
	if (json_is_object(v)) {
		const char *k;
		json_t *m;
		json_object_foreach(v, k, m)
		{
			if (secret_name(k) && !json_is_null(m) && !json_is_boolean(m))
				json_object_set_new(v, k, json_string("<redacted>"));
			else
				ctl_redact(m);
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *m;
		json_array_foreach(v, i, m) ctl_redact(m);
	}
}

int ctl_print_json(const json_t *v)
{
	if (!v || json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
		ctl_err("cannot write JSON output");
		return CTL_ERROR;
	}
	fputc('\n', stdout);
	return CTL_OK;
}

const char *ctl_trunc(const char *s, size_t max, char *buf, size_t n)
{
	if (!s)
		return NULL;
	size_t l = strlen(s);
	if (l <= max || max < 4 || n < max + 1)
		return s;
	memcpy(buf, s, max - 3);
	memcpy(buf + max - 3, "...", 4);
	return buf;
}
