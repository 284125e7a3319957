/* srv.h: what the request handlers of src/sim share (server.c routes, storage.c and pcm.c
 * serve the storage, network, file and metrics endpoints). Internal to pvmsim. */
#ifndef PVM_SIM_SRV_H
#define PVM_SIM_SRV_H

#include "sim.h"

#include <libxml/tree.h>
#include <openssl/evp.h>

#define MAX_BODY (8u << 20)
#define MAX_SEGS 10

struct sim_req {
	struct pvm_buf body;
	bool too_big;
	bool decided; /* fault decided (once per request) */
	const struct sim_fault_rule *fault;
	bool latency_done;
	bool ev_waited;
	bool authed; /* counted once, even when resumed after a wait */
	/* PUT web/File/contents/{uuid}: the body is hashed as it arrives, never kept. */
	bool stream;
	EVP_MD_CTX *sha;
	uint64_t stream_bytes;
};

/* The answer built under the lock. */
struct out {
	int status;
	char *body;
	const char *ctype;
	char etag[24];
	bool persist;
	char object[SIM_UUID_LEN + 32];
	char outcome[512];
	bool reset;  /* close the connection without an answer */
	bool parked; /* suspended: nothing to queue now */
};

struct route {
	const char *method;
	const char *path; /* full URL path */
	const char *rel;  /* after /rest/api/uom/ */
	char *segs[MAX_SEGS];
	int nsegs;
	char base[160];
	const char *group_q;
	unsigned groups;
	struct MHD_Connection *conn;
	struct sim_req *req;
};

/* server.c helpers (callers hold sim->lock where the model is read). */
void srv_out_body(struct out *o, int status, const char *ctype, struct pvm_buf *b);
void srv_out_error(struct out *o, int status, const char *uri, const char *reason, const char *msg);
void srv_out_json(struct out *o, int status, json_t *j);
xmlNode *srv_xchild(xmlNode *n, const char *name);
xmlNode *srv_xpath(xmlNode *n, const char *path);
char *srv_xtext(xmlNode *root, const char *path); /* trimmed text or NULL; caller frees */
xmlNode *srv_parse_body(const struct sim_req *r, xmlDoc **doc);
bool srv_parse_ll(const char *s, long long *v);
bool srv_parse_dbl(const char *s, double *v);
void srv_ctx_for(struct pvm_sim *sim, const struct route *rt, struct sim_render_ctx *c,
                 const char *self_prefix);
void srv_get_feed(struct pvm_sim *sim, struct route *rt, struct out *o, enum sim_kind kind,
                  const char *parent, const char *search_name);
void srv_get_entry(struct pvm_sim *sim, struct route *rt, struct out *o, struct sim_obj *obj);
bool srv_etag_matches(const struct sim_obj *obj, const char *im, unsigned groups);
/* The If-Match header, or NULL. */
const char *srv_if_match(const struct route *rt);

/* storage.c: the routes below an object (s[i] names the sub-collection). Return true when
 * they handled the request. */
bool sim_storage_route(struct pvm_sim *sim, struct route *rt, struct out *o);
bool sim_sub_route(struct pvm_sim *sim, struct route *rt, struct out *o, struct sim_obj *obj,
                   int i);
void sim_update_vios(struct pvm_sim *sim, struct route *rt, struct out *o, struct sim_obj *vios);
void sim_web_file(struct pvm_sim *sim, struct route *rt, struct out *o);
void sim_pcm(struct pvm_sim *sim, struct route *rt, struct out *o);

#endif
