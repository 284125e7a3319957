/* pvm/buf.h: a growable NUL-terminated string, for building request and response bodies
 * (the PowerVM client's builders, pvmsim's renderer).
 *
 * Appends never fail loudly: an allocation failure sets oom, later appends do nothing, and
 * pvm_buf_take() reports it. Not thread-safe: one buffer, one thread at a time.
 */
#ifndef PVM_BUF_H
#define PVM_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct pvm_buf {
	char *p; /* NUL-terminated when not NULL */
	size_t len, cap;
	bool oom; /* an append could not allocate */
};

void pvm_buf_init(struct pvm_buf *b);
void pvm_buf_fini(struct pvm_buf *b);
void pvm_buf_addn(struct pvm_buf *b, const char *s, size_t n);
void pvm_buf_add(struct pvm_buf *b, const char *s);
void pvm_buf_printf(struct pvm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s with <, >, & and " escaped for XML text and attribute values. */
void pvm_buf_xml(struct pvm_buf *b, const char *s);
/* Hands the string over (heap, "" when nothing was added) and resets b; NULL after an
 * allocation failure. */
char *pvm_buf_take(struct pvm_buf *b);

#endif
