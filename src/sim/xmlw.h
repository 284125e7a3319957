/* xmlw.h: the small XML writers render.c and storage.c share (text in the shape of the
 * captured responses: attribute noise, schemaVersion, empty Metadata). Internal. */
#ifndef PVM_SIM_XMLW_H
#define PVM_SIM_XMLW_H

#include "sim.h"

#include <stdio.h>
#include <string.h>

#define GENERATOR "IBM Power Systems Management Console"
#define CUD       "kb=\"CUD\" kxe=\"false\""
#define CUR       "kb=\"CUR\" kxe=\"false\""
#define COD       "kb=\"COD\" kxe=\"false\""
#define ROR       "kb=\"ROR\" kxe=\"false\""
#define ROO       "kb=\"ROO\" kxe=\"false\""
#define UOD       "kb=\"UOD\" kxe=\"false\""
#define CUA       "kb=\"CUA\" kxe=\"false\""
#define ATOM_ROOT_ATTRS                                                                            \
	"xmlns=\"http://www.w3.org/2005/Atom\" "                                                   \
	"xmlns:ns2=\"http://a9.com/-/spec/opensearch/1.1/\" "                                      \
	"xmlns:ns3=\"http://www.w3.org/1999/xhtml\""

static inline void ind(struct pvm_buf *b, int n)
{
	static const char sp[] = "                                                ";
	pvm_buf_addn(b, sp, (size_t)(n * 4) < sizeof(sp) - 1 ? (size_t)(n * 4) : sizeof(sp) - 1);
}

/* <name attrs>val</name>, or <name attrs/> when val is NULL or empty. */
static inline void el(struct pvm_buf *b, int n, const char *name, const char *attrs,
                      const char *val)
{
	ind(b, n);
	pvm_buf_printf(b, "<%s %s", name, attrs);
	if (!val || !*val) {
		pvm_buf_add(b, "/>\n");
		return;
	}
	pvm_buf_add(b, ">");
	pvm_buf_xml(b, val);
	pvm_buf_printf(b, "</%s>\n", name);
}

static inline void eli(struct pvm_buf *b, int n, const char *name, const char *attrs, long long v)
{
	char t[32];
	snprintf(t, sizeof(t), "%lld", v);
	el(b, n, name, attrs, t);
}

static inline void elb(struct pvm_buf *b, int n, const char *name, const char *attrs, bool v)
{
	el(b, n, name, attrs, v ? "true" : "false");
}

/* Processing units as the HMC prints them: "0.5", "1.0", "0.05". */
static inline void elu(struct pvm_buf *b, int n, const char *name, const char *attrs, double v)
{
	char t[32];
	snprintf(t, sizeof(t), "%.2f", v);
	size_t l = strlen(t);
	if (l > 3 && t[l - 1] == '0')
		t[l - 1] = '\0';
	el(b, n, name, attrs, t);
}

static inline void link_el(struct pvm_buf *b, int n, const char *name, const char *attrs,
                           const char *base, const char *path)
{
	ind(b, n);
	pvm_buf_printf(b, "<%s %s href=\"%s/rest/api/uom/", name, attrs, base);
	pvm_buf_xml(b, path);
	pvm_buf_add(b, "\" rel=\"related\"/>\n");
}

static inline void meta_empty(struct pvm_buf *b, int n)
{
	ind(b, n);
	pvm_buf_add(b, "<Metadata>\n");
	ind(b, n + 1);
	pvm_buf_add(b, "<Atom/>\n");
	ind(b, n);
	pvm_buf_add(b, "</Metadata>\n");
}

/* <name attrs schemaVersion="V"> + empty Metadata. */
static inline void open_el(struct pvm_buf *b, int n, const char *name, const char *attrs,
                           const char *sv)
{
	ind(b, n);
	if (attrs && *attrs)
		pvm_buf_printf(b, "<%s %s schemaVersion=\"%s\">\n", name, attrs, sv);
	else
		pvm_buf_printf(b, "<%s schemaVersion=\"%s\">\n", name, sv);
	meta_empty(b, n + 1);
}

static inline void close_el(struct pvm_buf *b, int n, const char *name)
{
	ind(b, n);
	pvm_buf_printf(b, "</%s>\n", name);
}

static inline void empty_block(struct pvm_buf *b, int n, const char *name, const char *attrs,
                               const char *sv)
{
	open_el(b, n, name, attrs, sv);
	close_el(b, n, name);
}

static inline void obj_open(struct pvm_buf *b, const char *type, const char *ns, const char *sv)
{
	pvm_buf_printf(
	        b,
	        "<%s:%s xmlns:%s=\"%s\" xmlns=\"%s\" "
	        "xmlns:ns2=\"http://www.w3.org/XML/1998/namespace/k2\" schemaVersion=\"%s\">\n",
	        type, type, type, ns, ns, sv);
}

static inline void obj_meta(struct pvm_buf *b, const struct sim_obj *o)
{
	pvm_buf_printf(
	        b,
	        "    <Metadata>\n        <Atom>\n            <AtomID>%s</AtomID>\n"
	        "            <AtomCreated>%lld</AtomCreated>\n        </Atom>\n    </Metadata>\n",
	        o->uuid, (long long)o->created_ms);
}

#endif
