/* jobs.c: PowerVM jobs (pvm/client.h): submit from the server's JobRequest template, one
 * poll per call (the engine schedules polls; nothing here sleeps), cancel, delete, and the
 * mapping of a job's status to the error space. */
#include "internal.h"

#include "pvm/error.h"
#include "pvm/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WEB_XML "application/vnd.ibm.powervm.web+xml"

int pvm_job_submit(struct pvm_client *c, const char *root, const char *op,
                   const struct pvm_job_param *params, size_t nparams, const char *request_id,
                   char *job_id, size_t n, struct pvm_rest_error *err)
{
	if (!root || !op || !*op || !job_id || !n)
		return perr(err, PVM_EINVAL, 0, "job submit needs a root, an operation, a buffer");
	job_id[0] = '\0';
	char path[512];
	if (snprintf(path, sizeof(path), "%s/do/%s", root, op) >= (int)sizeof(path))
		return perr(err, PVM_EINVAL, 0, "job path too long");

	/* The template names the operation's group as the server knows it. */
	struct pvm_req get = {.method = PVM_GET,
	                      .path = path,
	                      .request_id = request_id,
	                      .accept = WEB_XML "; type=JobRequest"};
	struct pvm_resp resp;
	int rc = client_request(c, &get, &resp, err);
	if (rc) {
		pvm_resp_fini(&resp);
		return rc;
	}
	struct xdoc *d = NULL;
	rc = xml_parse(resp.body, resp.len, 0, false, NULL, &d, err);
	pvm_resp_fini(&resp);
	if (rc)
		return rc;
	const struct xn *o = xn_entry_object(d->root);
	const char *gname = o && !strcmp(o->name, "JobRequest")
	                            ? xn_text(o, "RequestedOperation/GroupName")
	                            : NULL;
	const char *oname = o ? xn_text(o, "RequestedOperation/OperationName") : NULL;
	if (!gname || !*gname) {
		xml_free(d);
		return perr(err, PVM_ECORRUPT, 0,
		            "JobRequest template of %s: missing required element "
		            "RequestedOperation/GroupName",
		            path);
	}
	char *body = pvm_build_job_request(oname && *oname ? oname : op, gname, params, nparams);
	xml_free(d);
	if (!body)
		return perr(err, PVM_ENOMEM, 0, "out of memory");

	struct pvm_req put = {.method = PVM_PUT,
	                      .path = path,
	                      .content_type = WEB_XML "; type=JobRequest",
	                      .accept = "application/atom+xml",
	                      .body = body,
	                      .body_len = strlen(body),
	                      .request_id = request_id};
	rc = client_request(c, &put, &resp, err);
	free(body);
	if (!rc) {
		struct pvm_job *j = NULL;
		rc = pvm_parse_job(resp.body, resp.len, &j, err);
		if (!rc && pvm_strlcpy(job_id, j->job_id, n))
			rc = perr(err, PVM_ETOOBIG, 0, "JobID too long");
		pvm_job_free(j);
	}
	pvm_resp_fini(&resp);
	return rc;
}

static int job_path(char *path, size_t n, const char *job_id, const char *suffix)
{
	for (const char *p = job_id; p && *p; p++)
		if (*p < '0' || *p > '9')
			return PVM_EINVAL;
	if (!job_id || !*job_id)
		return PVM_EINVAL;
	snprintf(path, n, "uom/jobs/%s%s", job_id, suffix);
	return 0;
}

int pvm_job_poll(struct pvm_client *c, const char *job_id, const char *request_id,
                 struct pvm_job **out, struct pvm_rest_error *err)
{
	*out = NULL;
	char path[128];
	if (job_path(path, sizeof(path), job_id, ""))
		return perr(err, PVM_EINVAL, 0, "bad JobID");
	struct pvm_resp resp;
	int rc = pvm_client_get(c, path, NULL, request_id, &resp, err);
	if (!rc)
		rc = pvm_parse_job(resp.body, resp.len, out, err);
	pvm_resp_fini(&resp);
	return rc;
}

int pvm_job_outcome(const struct pvm_job *j, struct pvm_rest_error *err)
{
	switch (j->status) {
	case PVM_JOB_COMPLETED_OK:
		return 0;
	case PVM_JOB_NOT_STARTED:
	case PVM_JOB_RUNNING:
		return -EINPROGRESS;
	default: {
		const char *m = j->exception_message ? j->exception_message : j->result_message;
		return perr(err, -EREMOTEIO, 0, "job %s (%s) %s: %s", j->job_id,
		            j->operation ? j->operation : "?",
		            j->status_name ? j->status_name : "?", m && *m ? m : "no message");
	}
	}
}

int pvm_job_cancel(struct pvm_client *c, const char *job_id, const char *request_id,
                   struct pvm_rest_error *err)
{
	char path[128];
	if (job_path(path, sizeof(path), job_id, "/cancel"))
		return perr(err, PVM_EINVAL, 0, "bad JobID");
	struct pvm_req rq = {.method = PVM_POST, .path = path, .request_id = request_id};
	struct pvm_resp resp;
	int rc = client_request(c, &rq, &resp, err);
	pvm_resp_fini(&resp);
	return rc;
}

int pvm_job_delete(struct pvm_client *c, const char *job_id, const char *request_id,
                   struct pvm_rest_error *err)
{
	char path[128];
	if (job_path(path, sizeof(path), job_id, ""))
		return perr(err, PVM_EINVAL, 0, "bad JobID");
	struct pvm_req rq = {.method = PVM_DELETE, .path = path, .request_id = request_id};
	struct pvm_resp resp;
	int rc = client_request(c, &rq, &resp, err);
	pvm_resp_fini(&resp);
	return rc == PVM_ENOTFOUND ? 0 : rc;
}
