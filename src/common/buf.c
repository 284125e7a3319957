/* buf.c: the growable string of pvm/buf.h. */
#include "pvm/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pvm_buf_init(struct pvm_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void pvm_buf_fini(struct pvm_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static bool reserve(struct pvm_buf *b, size_t extra)
{
	if (b->oom)
		return false;
	if (b->len + extra + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 1024;
	while (cap < b->len + extra + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void pvm_buf_addn(struct pvm_buf *b, const char *s, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void pvm_buf_add(struct pvm_buf *b, const char *s)
{
	pvm_buf_addn(b, s, strlen(s));
}

void pvm_buf_printf(struct pvm_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void pvm_buf_xml(struct pvm_buf *b, const char *s)
{
	const char *run = s;
	for (; *s; s++) {
		const char *rep = NULL;
		switch (*s) {
		case '<':
			rep = "&lt;";
			break;
		case '>':
			rep = "&gt;";
			break;
		case '&':
			rep = "&amp;";
			break;
		case '"':
			rep = "&quot;";
			break;
		default:
			continue;
		}
		pvm_buf_addn(b, run, (size_t)(s - run));
		pvm_buf_add(b, rep);
		run = s + 1;
	}
	pvm_buf_addn(b, run, (size_t)(s - run));
}

char *pvm_buf_take(struct pvm_buf *b)
{
	if (b->oom) {
		pvm_buf_fini(b);
		return NULL;
	}
	if (!b->p)
		pvm_buf_addn(b, "", 0);
	char *p = b->p;
	memset(b, 0, sizeof(*b));
	return p;
}
