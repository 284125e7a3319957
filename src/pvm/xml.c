/* xml.c: the safe XML front end of the client (see internal.h, DESIGN): an arena, a
 * growable buffer, libxml2 SAX2 into a compact tree, tree queries, the serializer and the
 * edits used by the builders of changed objects. */
#include "internal.h"

#include "pvm/error.h"

#include <libxml/parser.h>
#include <libxml/parserInternals.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- arena ------------ */

#define ARENA_CHUNK (64 * 1024)

struct chunk {
	struct chunk *next;
	size_t used, cap;
	_Alignas(16) unsigned char data[];
};

struct pvm_arena {
	struct chunk *head;
};

struct pvm_arena *arena_new(void)
{
	return calloc(1, sizeof(struct pvm_arena));
}

void arena_free(struct pvm_arena *a)
{
	if (!a)
		return;
	struct chunk *c = a->head;
	while (c) {
		struct chunk *n = c->next;
		free(c);
		c = n;
	}
	free(a);
}

void *arena_alloc(struct pvm_arena *a, size_t n)
{
	n = (n + 7) & ~(size_t)7;
	struct chunk *c = a->head;
	if (!c || c->cap - c->used < n) {
		size_t cap = n > ARENA_CHUNK / 2 ? n : ARENA_CHUNK;
		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->used = 0;
		c->cap = cap;
		/* A big block goes behind the head so the head keeps its free space. */
		if (a->head && cap != ARENA_CHUNK) {
			c->next = a->head->next;
			a->head->next = c;
		} else {
			c->next = a->head;
			a->head = c;
		}
	}
	void *p = c->data + c->used;
	c->used += n;
	memset(p, 0, n);
	return p;
}

char *arena_strndup(struct pvm_arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);
	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *arena_strdup(struct pvm_arena *a, const char *s)
{
	return s ? arena_strndup(a, s, strlen(s)) : NULL;
}

/* ---------------------------------------------------------------- errors ----------- */

int perr(struct pvm_rest_error *err, int code, int http_status, const char *fmt, ...)
{
	if (!err)
		return code;
	err->code = code;
	err->http_status = http_status;
	err->transient = pvm_client_transient(code);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return code;
}

/* ---------------------------------------------------------------- SAX -------------- */

struct sax_state {
	struct xdoc *doc;
	struct xn *cur;
	bool keep_attrs;
	bool failed; /* out of memory or refused construct */
	const char *why;
	/* text since the last tag */
	char *text;
	size_t tlen, tcap;
	bool tcdata;
	/* namespace cache: the dictionary interns URIs, so pointers repeat */
	const xmlChar *last_uri;
	unsigned char last_ns;
	xmlParserCtxtPtr ctxt;
};

static unsigned char ns_of(struct sax_state *st, const xmlChar *uri)
{
	if (uri == st->last_uri)
		return st->last_ns;
	unsigned char ns = XNS_OTHER;
	if (uri) {
		if (!strcmp((const char *)uri, NS_UOM))
			ns = XNS_UOM;
		else if (!strcmp((const char *)uri, NS_ATOM))
			ns = XNS_ATOM;
		else if (!strcmp((const char *)uri, NS_WEB))
			ns = XNS_WEB;
	}
	st->last_uri = uri;
	st->last_ns = ns;
	return ns;
}

static void sax_fail(struct sax_state *st, const char *why)
{
	if (!st->failed) {
		st->failed = true;
		st->why = why;
	}
	xmlStopParser(st->ctxt);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void sax_start(void *ctx, const xmlChar *localname, const xmlChar *prefix,
                      const xmlChar *uri, int nb_namespaces, const xmlChar **namespaces,
                      int nb_attributes, int nb_defaulted, const xmlChar **attributes)
{
	(void)prefix;
	(void)nb_namespaces;
	(void)namespaces;
	(void)nb_defaulted;
	struct sax_state *st = ctx;
	if (st->failed)
		return;
	struct pvm_arena *a = st->doc->arena;
	struct xn *n = arena_alloc(a, sizeof(*n));
	if (!n) {
		sax_fail(st, "out of memory");
		return;
	}
	n->name = (const char *)localname; /* interned in the parser's dictionary */
	n->ns = ns_of(st, uri);
	n->line = xmlSAX2GetLineNumber(st->ctxt);
	for (int i = 0; i < nb_attributes; i++) {
		const char *an = (const char *)attributes[i * 5];
		const char *vs = (const char *)attributes[i * 5 + 3];
		const char *ve = (const char *)attributes[i * 5 + 4];
		bool want_href = an[0] == 'h' && !strcmp(an, "href");
		bool want_rel = an[0] == 'r' && !strcmp(an, "rel");
		if (!st->keep_attrs && !want_href && !want_rel)
			continue;
		char *v = arena_strndup(a, vs, (size_t)(ve - vs));
		if (!v) {
			sax_fail(st, "out of memory");
			return;
		}
		if (want_href)
			n->href = v;
		else if (want_rel)
			n->rel = v;
		if (st->keep_attrs) {
			struct xattr *at = arena_alloc(a, sizeof(*at));
			if (!at) {
				sax_fail(st, "out of memory");
				return;
			}
			at->name = an;
			at->value = v;
			/* keep document order */
			struct xattr **pp = &n->attrs;
			while (*pp)
				pp = &(*pp)->next;
			*pp = at;
		}
	}
	if (st->cur)
		xn_append(st->cur, n);
	else if (!st->doc->root)
		st->doc->root = n;
	st->cur = n;
	st->tlen = 0;
	st->tcdata = false;
}

static void sax_end(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri)
{
	(void)localname;
	(void)prefix;
	(void)uri;
	struct sax_state *st = ctx;
	if (st->failed || !st->cur)
		return;
	struct xn *n = st->cur;
	if (!n->child) {
		size_t b = 0, e = st->tlen;
		while (b < e && is_space(st->text[b]))
			b++;
		while (e > b && is_space(st->text[e - 1]))
			e--;
		n->text = e > b ? arena_strndup(st->doc->arena, st->text + b, e - b) : "";
		if (!n->text)
			sax_fail(st, "out of memory");
		n->cdata = st->tcdata;
	}
	st->cur = n->parent;
	st->tlen = 0;
	st->tcdata = false;
}

static void sax_chars(void *ctx, const xmlChar *ch, int len)
{
	struct sax_state *st = ctx;
	if (st->failed || len <= 0)
		return;
	/* Whitespace between tags is dropped cheaply when nothing is pending. */
	if (st->tlen == 0) {
		int i = 0;
		while (i < len && is_space((char)ch[i]))
			i++;
		if (i == len)
			return;
	}
	if (st->tlen + (size_t)len + 1 > st->tcap) {
		size_t cap = st->tcap ? st->tcap * 2 : 4096;
		while (cap < st->tlen + (size_t)len + 1)
			cap *= 2;
		char *p = realloc(st->text, cap);
		if (!p) {
			sax_fail(st, "out of memory");
			return;
		}
		st->text = p;
		st->tcap = cap;
	}
	memcpy(st->text + st->tlen, ch, (size_t)len);
	st->tlen += (size_t)len;
}

static void sax_cdata(void *ctx, const xmlChar *ch, int len)
{
	struct sax_state *st = ctx;
	sax_chars(ctx, ch, len);
	st->tcdata = true;
}

static void sax_doctype(void *ctx, const xmlChar *name, const xmlChar *eid, const xmlChar *sid)
{
	(void)name;
	(void)eid;
	(void)sid;
	sax_fail(ctx, "DOCTYPE refused (no DTD or entity is accepted)");
}

static void sax_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *pid,
                            const xmlChar *sid, xmlChar *content)
{
	(void)name;
	(void)type;
	(void)pid;
	(void)sid;
	(void)content;
	sax_fail(ctx, "entity declaration refused");
}

static xmlEntityPtr sax_get_entity(void *ctx, const xmlChar *name)
{
	(void)name;
	/* Predefined entities (&amp; ...) never reach here; anything else is refused. */
	sax_fail(ctx, "entity reference refused");
	return NULL;
}

static void sax_silent(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

static void sax_structured_silent(void *ctx, xmlErrorPtr e)
{
	(void)ctx;
	(void)e;
}

int xml_parse(const char *data, size_t len, size_t max_bytes, bool keep_attrs,
              struct pvm_arena *arena, struct xdoc **out, struct pvm_rest_error *err)
{
	*out = NULL;
	if (!max_bytes || max_bytes > PVM_PARSE_MAX_BYTES)
		max_bytes = PVM_PARSE_MAX_BYTES;
	if (len > max_bytes)
		return perr(err, PVM_ETOOBIG, 0,
		            "XML document of %zu bytes exceeds the limit of %zu", len, max_bytes);
	if (len > INT32_MAX)
		return perr(err, PVM_ETOOBIG, 0, "XML document too large");

	struct xdoc *d = calloc(1, sizeof(*d));
	if (d) {
		d->own_arena = !arena;
		d->arena = arena ? arena : arena_new();
	}
	if (!d || !d->arena) {
		free(d);
		return perr(err, PVM_ENOMEM, 0, "out of memory");
	}

	xmlSAXHandler sax;
	memset(&sax, 0, sizeof(sax));
	sax.initialized = XML_SAX2_MAGIC;
	sax.startElementNs = sax_start;
	sax.endElementNs = sax_end;
	sax.characters = sax_chars;
	sax.cdataBlock = sax_cdata;
	sax.internalSubset = sax_doctype;
	sax.externalSubset = sax_doctype;
	sax.entityDecl = sax_entity_decl;
	sax.getEntity = sax_get_entity;
	sax.getParameterEntity = sax_get_entity;
	sax.warning = sax_silent;
	sax.error = sax_silent;
	sax.fatalError = sax_silent;
	sax.serror = sax_structured_silent;

	struct sax_state st;
	memset(&st, 0, sizeof(st));
	st.doc = d;
	st.keep_attrs = keep_attrs;

	xmlParserCtxtPtr ctxt = xmlCreatePushParserCtxt(&sax, &st, NULL, 0, NULL);
	if (!ctxt) {
		xml_free(d);
		return perr(err, PVM_ENOMEM, 0, "out of memory (XML parser)");
	}
	st.ctxt = ctxt;
	/* Names point into the parser's dictionary: keep it as long as the document. */
	d->dict = ctxt->dict;
	if (d->dict)
		xmlDictReference(d->dict);
	/* NONET: no network; no NOENT (no entity substitution), no DTDLOAD, no HUGE. */
	xmlCtxtUseOptions(ctxt, XML_PARSE_NONET | XML_PARSE_NOWARNING | XML_PARSE_NOERROR);
	int rc = xmlParseChunk(ctxt, data, (int)len, 1);
	int ret = 0;
	if (st.failed && st.why && !strcmp(st.why, "out of memory")) {
		ret = perr(err, PVM_ENOMEM, 0, "out of memory parsing XML");
	} else if (st.failed || rc != 0 || !ctxt->wellFormed || !d->root) {
		xmlErrorPtr e = xmlCtxtGetLastError(ctxt);
		int line = e && e->line ? e->line : xmlSAX2GetLineNumber(ctxt);
		int col = e && e->int2 ? e->int2 : xmlSAX2GetColumnNumber(ctxt);
		const char *msg = st.why              ? st.why
		                  : (e && e->message) ? e->message
		                  : len == 0          ? "empty document"
		                                      : "not well-formed";
		char m[200];
		snprintf(m, sizeof(m), "%s", msg);
		size_t ml = strlen(m);
		while (ml && (m[ml - 1] == '\n' || m[ml - 1] == ' '))
			m[--ml] = '\0';
		ret = perr(err, PVM_ECORRUPT, 0, "malformed XML at line %d column %d: %s", line,
		           col, m);
	}
	xmlFreeParserCtxt(ctxt);
	free(st.text);
	if (ret) {
		xml_free(d);
		return ret;
	}
	*out = d;
	return 0;
}

void xml_free(struct xdoc *d)
{
	if (!d)
		return;
	if (d->own_arena)
		arena_free(d->arena);
	if (d->dict)
		xmlDictFree(d->dict);
	free(d);
}

/* ---------------------------------------------------------------- queries ---------- */

struct xn *xn_child(const struct xn *n, const char *name)
{
	if (!n)
		return NULL;
	for (struct xn *c = n->child; c; c = c->next)
		if (c->name[0] == name[0] && !strcmp(c->name, name))
			return c;
	return NULL;
}

struct xn *xn_next(const struct xn *n, const char *name)
{
	for (struct xn *c = n ? n->next : NULL; c; c = c->next)
		if (c->name[0] == name[0] && !strcmp(c->name, name))
			return c;
	return NULL;
}

struct xn *xn_path(const struct xn *n, const char *path)
{
	char part[96];
	const struct xn *cur = n;
	while (cur && *path) {
		const char *slash = strchr(path, '/');
		size_t l = slash ? (size_t)(slash - path) : strlen(path);
		if (l >= sizeof(part))
			return NULL;
		memcpy(part, path, l);
		part[l] = '\0';
		cur = xn_child(cur, part);
		path += l + (slash ? 1 : 0);
	}
	return (struct xn *)cur;
}

const char *xn_text(const struct xn *n, const char *path)
{
	const struct xn *x = path ? xn_path(n, path) : n;
	return x ? x->text : NULL;
}

void xn_find_all(const struct xn *n, const char *name, void (*fn)(const struct xn *, void *),
                 void *arg)
{
	for (struct xn *c = n ? n->child : NULL; c; c = c->next) {
		if (!strcmp(c->name, name))
			fn(c, arg);
		else
			xn_find_all(c, name, fn, arg);
	}
}

size_t xn_count(const struct xn *n, const char *name)
{
	size_t k = 0;
	for (struct xn *c = n ? n->child : NULL; c; c = c->next)
		if (!strcmp(c->name, name))
			k++;
	return k;
}

struct xn *xn_entry_object(const struct xn *entry)
{
	if (!entry)
		return NULL;
	if ((entry->ns == XNS_ATOM || entry->ns == XNS_OTHER) && !strcmp(entry->name, "entry")) {
		struct xn *content = xn_child(entry, "content");
		return content ? content->child : NULL;
	}
	return (struct xn *)entry;
}

/* ---------------------------------------------------------------- writer ----------- */

static void write_node(struct pvm_buf *b, const struct xn *n)
{
	pvm_buf_add(b, "<");
	pvm_buf_add(b, n->name);
	for (const struct xattr *a = n->attrs; a; a = a->next) {
		pvm_buf_printf(b, " %s=\"", a->name);
		pvm_buf_xml(b, a->value);
		pvm_buf_add(b, "\"");
	}
	if (!n->attrs) {
		if (n->href) {
			pvm_buf_add(b, " href=\"");
			pvm_buf_xml(b, n->href);
			pvm_buf_add(b, "\"");
		}
		if (n->rel) {
			pvm_buf_add(b, " rel=\"");
			pvm_buf_xml(b, n->rel);
			pvm_buf_add(b, "\"");
		}
	}
	if (n->child) {
		pvm_buf_add(b, ">");
		for (const struct xn *c = n->child; c; c = c->next)
			write_node(b, c);
		pvm_buf_printf(b, "</%s>", n->name);
	} else if (n->text && *n->text) {
		pvm_buf_add(b, ">");
		pvm_buf_xml(b, n->text);
		pvm_buf_printf(b, "</%s>", n->name);
	} else {
		pvm_buf_add(b, "/>");
	}
}

void xml_write(struct pvm_buf *b, const struct xn *n, const char *ns, bool prefixed)
{
	if (prefixed)
		pvm_buf_printf(b, "<%s:%s xmlns:%s=\"%s\" xmlns=\"%s\"", n->name, n->name, n->name,
		               ns, ns);
	else
		pvm_buf_printf(b, "<%s xmlns=\"%s\"", n->name, ns);
	for (const struct xattr *a = n->attrs; a; a = a->next) {
		pvm_buf_printf(b, " %s=\"", a->name);
		pvm_buf_xml(b, a->value);
		pvm_buf_add(b, "\"");
	}
	pvm_buf_add(b, ">");
	for (const struct xn *c = n->child; c; c = c->next)
		write_node(b, c);
	if (!n->child && n->text)
		pvm_buf_xml(b, n->text);
	if (prefixed)
		pvm_buf_printf(b, "</%s:%s>", n->name, n->name);
	else
		pvm_buf_printf(b, "</%s>", n->name);
}

/* ---------------------------------------------------------------- edits ------------ */

struct xn *xn_new(struct xdoc *d, const char *name, const char *text)
{
	struct xn *n = arena_alloc(d->arena, sizeof(*n));
	if (!n)
		return NULL;
	n->name = arena_strdup(d->arena, name);
	n->text = text ? arena_strdup(d->arena, text) : NULL;
	n->ns = XNS_UOM;
	if (!n->name || (text && !n->text))
		return NULL;
	return n;
}

void xn_append(struct xn *parent, struct xn *child)
{
	child->parent = parent;
	child->next = NULL;
	if (parent->last)
		parent->last->next = child;
	else
		parent->child = child;
	parent->last = child;
	parent->text = NULL;
}

void xn_unlink(struct xn *n)
{
	struct xn *p = n->parent;
	if (!p)
		return;
	struct xn *prev = NULL;
	for (struct xn *c = p->child; c; prev = c, c = c->next) {
		if (c != n)
			continue;
		if (prev)
			prev->next = c->next;
		else
			p->child = c->next;
		if (p->last == c)
			p->last = prev;
		break;
	}
	n->parent = NULL;
	n->next = NULL;
	if (!p->child)
		p->text = "";
}

int xn_set_text(struct xdoc *d, struct xn *n, const char *text)
{
	const char *t = arena_strdup(d->arena, text);
	if (!t)
		return PVM_ENOMEM;
	n->text = t;
	return 0;
}

/* Copies the subtree src (another document) into d. */
static struct xn *copy_tree(struct xdoc *d, const struct xn *src)
{
	struct xn *n = arena_alloc(d->arena, sizeof(*n));
	if (!n)
		return NULL;
	*n = *src;
	n->parent = n->child = n->last = n->next = NULL;
	n->name = arena_strdup(d->arena, src->name);
	n->text = src->text ? arena_strdup(d->arena, src->text) : NULL;
	n->href = arena_strdup(d->arena, src->href);
	n->rel = arena_strdup(d->arena, src->rel);
	n->attrs = NULL;
	struct xattr **pp = &n->attrs;
	for (const struct xattr *a = src->attrs; a; a = a->next) {
		struct xattr *na = arena_alloc(d->arena, sizeof(*na));
		if (!na)
			return NULL;
		na->name = arena_strdup(d->arena, a->name);
		na->value = arena_strdup(d->arena, a->value);
		*pp = na;
		pp = &na->next;
	}
	for (const struct xn *c = src->child; c; c = c->next) {
		struct xn *cc = copy_tree(d, c);
		if (!cc)
			return NULL;
		xn_append(n, cc);
	}
	return n;
}

int xn_append_xml(struct xdoc *d, struct xn *parent, const char *frag, struct pvm_rest_error *err)
{
	struct xdoc *f = NULL;
	int rc = xml_parse(frag, strlen(frag), 0, true, NULL, &f, err);
	if (rc)
		return rc;
	struct xn *n = copy_tree(d, f->root);
	xml_free(f);
	if (!n)
		return perr(err, PVM_ENOMEM, 0, "out of memory");
	/* The fragment's own xmlns attribute is not carried (namespace decls are not kept). */
	xn_append(parent, n);
	return 0;
}
