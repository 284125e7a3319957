/* internal.h: shared inside src/pvm only: the arena, the growable buffer, the compact XML
 * tree the parsers build (xml.c), and the helpers the typed views and builders use.
 *
 * DESIGN: responses are parsed by libxml2's SAX2 interface into a compact tree allocated in
 * one arena (no per-node malloc, whitespace text dropped, attributes kept only when the
 * caller asks for them: edits that re-serialize an object need them, typed views do not).
 * That is what keeps the typed parse well ahead of a libxml2 DOM (see docs/performance.md).
 * Security: no DTD at all (a DOCTYPE stops the parse), no entity expansion, no network
 * (XML_PARSE_NONET), a size limit per document, libxml2's depth limit.
 */
#ifndef PVM_CLIENT_INTERNAL_H
#define PVM_CLIENT_INTERNAL_H

#include "pvm/client.h"
#include "pvm/pvm_objects.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NS_ATOM "http://www.w3.org/2005/Atom"
#define NS_UOM  "http://www.ibm.com/xmlns/systems/power/firmware/uom/mc/2012_10/"
#define NS_WEB  "http://www.ibm.com/xmlns/systems/power/firmware/web/mc/2012_10/"

/* ---- arena: bump allocator, freed at once ---- */
struct pvm_arena;
struct pvm_arena *arena_new(void);
void arena_free(struct pvm_arena *a);
void *arena_alloc(struct pvm_arena *a, size_t n); /* zeroed, 8-aligned; NULL on OOM */
char *arena_strndup(struct pvm_arena *a, const char *s, size_t n);
char *arena_strdup(struct pvm_arena *a, const char *s); /* NULL s gives NULL */

/* ---- growable buffer ---- */
#include "pvm/buf.h"

/* ---- compact XML tree ---- */
enum xns { XNS_OTHER = 0, XNS_ATOM, XNS_UOM, XNS_WEB };

struct xattr {
	const char *name, *value;
	struct xattr *next;
};

struct xn {
	const char *name;    /* local name */
	const char *text;    /* trimmed text of a leaf ("" when empty), NULL for an inner node */
	const char *href;    /* href attribute (links), or NULL */
	const char *rel;     /* rel attribute (links), or NULL */
	struct xattr *attrs; /* every attribute, only when parsed with keep_attrs */
	struct xn *parent, *child, *last, *next;
	int line;
	unsigned char ns; /* enum xns */
	bool cdata;       /* text came (partly) from CDATA */
};

struct xdoc {
	struct pvm_arena *arena;
	bool own_arena;
	void *dict; /* xmlDictPtr holding the element and attribute names */
	struct xn *root;
};

/* Parses len bytes. Returns 0 with *out, PVM_ETOOBIG (over max_bytes; 0 = default),
 * PVM_ECORRUPT (malformed: err->message has line and column), PVM_ENOMEM. */
/* arena: allocate the tree there (it outlives the document), or NULL for its own. */
int xml_parse(const char *data, size_t len, size_t max_bytes, bool keep_attrs,
              struct pvm_arena *arena, struct xdoc **out, struct pvm_rest_error *err);
void xml_free(struct xdoc *d);

struct xn *xn_child(const struct xn *n, const char *name);
struct xn *xn_next(const struct xn *n, const char *name);  /* next sibling named name */
struct xn *xn_path(const struct xn *n, const char *path);  /* "A/B/C" */
const char *xn_text(const struct xn *n, const char *path); /* leaf text or NULL */
/* Depth-first search for descendants named name; calls fn for each (not below a match). */
void xn_find_all(const struct xn *n, const char *name, void (*fn)(const struct xn *, void *),
                 void *arg);
size_t xn_count(const struct xn *n, const char *name);

/* The object inside an Atom entry (entry/content/<Object>), or n itself when n is a bare
 * object. */
struct xn *xn_entry_object(const struct xn *entry);

/* Serializes n (and its subtree) as XML; the root gets a default namespace declaration ns
 * and, when prefix is set, the prefixed form <prefix:Name xmlns:prefix=ns xmlns=ns>. */
void xml_write(struct pvm_buf *b, const struct xn *n, const char *ns, bool prefixed);

/* Edits on a keep_attrs tree. */
struct xn *xn_new(struct xdoc *d, const char *name, const char *text);
void xn_append(struct xn *parent, struct xn *child);
void xn_unlink(struct xn *n);
int xn_set_text(struct xdoc *d, struct xn *n, const char *text);
/* Parses a fragment (one element) and appends it to parent, in d's arena. */
/* Builders that edit an object as read (build.c, build_batch.c): parses the entry with its
 * attributes and finds the object of type in it (PVM_ECORRUPT otherwise); edit_close
 * writes the object back whole in namespace ns and frees the tree. */
int edit_open(const char *entry, size_t len, const char *type, struct xdoc **d, struct xn **obj,
              struct pvm_rest_error *err);
char *edit_close(struct xdoc *d, struct xn *obj, const char *ns, struct pvm_rest_error *err);
int xn_append_xml(struct xdoc *d, struct xn *parent, const char *frag, struct pvm_rest_error *err);

/* ---- errors ---- */
/* Fills err (may be NULL) and returns code. */
int perr(struct pvm_rest_error *err, int code, int http_status, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* ---- value conversion for views ---- */
struct vctx {
	struct pvm_arena *a;
	const char *entry; /* entry id for messages */
	const char *type;  /* object type for messages */
	struct pvm_rest_error *err;
	int rc;
};
const char *v_str(struct vctx *v, const struct xn *n, const char *path, bool required);
int64_t v_int(struct vctx *v, const struct xn *n, const char *path, bool required, int64_t dflt);
double v_real(struct vctx *v, const struct xn *n, const char *path, bool required, double dflt);
bool v_bool(struct vctx *v, const struct xn *n, const char *path, bool required, bool dflt);
const char *v_link(struct vctx *v, const struct xn *n, const char *path, bool required);

/* ---- client internals used by jobs.c and events.c ---- */
int client_request(struct pvm_client *c, const struct pvm_req *rq, struct pvm_resp *resp,
                   struct pvm_rest_error *err);

#endif
