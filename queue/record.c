/* record.c: the operation record codec and the state table.
 *
 * DESIGN: a record is a fixed 16-byte header (magic, format version, body length,
 * CRC32C) followed by the operation as compact JSON. JSON keeps params, checkpoints and
 * results (which are JSON already) without a second encoding and lets powervmctl show a
 * record even from an older build; the header's version says which body schema follows.
 * Readers accept every version up to PVM_QUEUE_RECORD_VERSION; a newer one is refused
 * (PVM_EVERSION) rather than half-understood.
 */
#include "internal.h"

#include "pvm/buf.h"
#include "pvm/error.h"
#include "pvm/util.h"

#include <stdlib.h>
#include <string.h>

static const char *const state_names[PVM_OP_STATE_COUNT] = {
        "queued", "running", "waiting", "reverting", "succeeded", "failed", "cancelled",
};

/* The one transition table (architecture.md, Operations). */
static const bool transitions[PVM_OP_STATE_COUNT][PVM_OP_STATE_COUNT] = {
        [PVM_OP_QUEUED] = {[PVM_OP_RUNNING] = true, [PVM_OP_CANCELLED] = true},
        [PVM_OP_RUNNING] = {[PVM_OP_WAITING] = true,
                            [PVM_OP_QUEUED] = true,
                            [PVM_OP_SUCCEEDED] = true,
                            [PVM_OP_REVERTING] = true},
        [PVM_OP_WAITING] = {[PVM_OP_RUNNING] = true, [PVM_OP_REVERTING] = true},
        [PVM_OP_REVERTING] =
                {[PVM_OP_WAITING] = true, [PVM_OP_FAILED] = true, [PVM_OP_CANCELLED] = true},
        [PVM_OP_FAILED] = {[PVM_OP_QUEUED] = true},
};

const char *pvm_op_state_name(enum pvm_op_state s)
{
	return (s >= 0 && s < PVM_OP_STATE_COUNT) ? state_names[s] : "?";
}

int pvm_op_state_parse(const char *name, enum pvm_op_state *out)
{
	for (int i = 0; name && i < PVM_OP_STATE_COUNT; i++)
		if (strcmp(name, state_names[i]) == 0) {
			*out = (enum pvm_op_state)i;
			return 0;
		}
	return PVM_EINVAL;
}

bool pvm_op_transition_ok(enum pvm_op_state from, enum pvm_op_state to)
{
	if (from < 0 || from >= PVM_OP_STATE_COUNT || to < 0 || to >= PVM_OP_STATE_COUNT)
		return false;
	return transitions[from][to];
}

bool pvm_op_state_final(enum pvm_op_state s)
{
	return s == PVM_OP_SUCCEEDED || s == PVM_OP_CANCELLED;
}

bool pvm_op_state_active(enum pvm_op_state s)
{
	return s == PVM_OP_QUEUED || s == PVM_OP_RUNNING || s == PVM_OP_WAITING ||
	       s == PVM_OP_REVERTING;
}

struct pvm_op *pvm_op_new(void)
{
	struct pvm_op *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->params = json_object();
	op->checkpoints = json_object();
	op->signals = json_object();
	op->result = json_object();
	op->history = json_array();
	if (!op->params || !op->checkpoints || !op->signals || !op->result || !op->history) {
		pvm_op_free(op);
		return NULL;
	}
	op->format_version = PVM_QUEUE_RECORD_VERSION;
	return op;
}

void pvm_op_free(struct pvm_op *op)
{
	if (!op)
		return;
	json_decref(op->params);
	json_decref(op->checkpoints);
	json_decref(op->signals);
	json_decref(op->result);
	json_decref(op->history);
	free(op->error);
	free(op->error_code);
	free(op);
}

void pvm_op_list_free(struct pvm_op **ops, size_t n)
{
	for (size_t i = 0; ops && i < n; i++)
		pvm_op_free(ops[i]);
	free(ops);
}

struct pvm_op *pvm_op_dup(const struct pvm_op *op)
{
	struct pvm_op *d = malloc(sizeof(*d));
	if (!d)
		return NULL;
	*d = *op;
	d->params = json_deep_copy(op->params);
	d->checkpoints = json_deep_copy(op->checkpoints);
	d->signals = json_deep_copy(op->signals);
	d->result = json_deep_copy(op->result);
	d->history = json_deep_copy(op->history);
	d->error = op->error ? strdup(op->error) : NULL;
	d->error_code = op->error_code ? strdup(op->error_code) : NULL;
	if (!d->params || !d->checkpoints || !d->signals || !d->result || !d->history ||
	    (op->error && !d->error) || (op->error_code && !d->error_code)) {
		pvm_op_free(d);
		return NULL;
	}
	return d;
}

/* The body: every field of struct pvm_op but id (the key) and format_version (the header). */
static json_t *body_json(const struct pvm_op *op, bool with_params)
{
	json_t *b = json_pack(
	        "{s:s, s:s, s:s, s:s, s:I, s:s, s:i, s:i, s:I, s:I, s:I, s:i, s:I, s:I, "
	        "s:I, s:I, s:I, s:I, s:I, s:b, s:O, s:O, s:O, s:O, s:O, s:s?, s:s?}",
	        "type", op->type, "instance", op->instance_uuid, "key", op->idempotency_key, "req",
	        op->request_id, "tv", (json_int_t)op->table_version, "state",
	        pvm_op_state_name(op->state), "dir", (int)op->direction, "step", (int)op->step,
	        "attempts", (json_int_t)op->attempts, "retries", (json_int_t)op->retries, "flags",
	        (json_int_t)op->flags, "progress", (int)op->progress, "created",
	        (json_int_t)op->created_ms, "updated", (json_int_t)op->updated_ms, "started",
	        (json_int_t)op->started_ms, "finished", (json_int_t)op->finished_ms, "due",
	        (json_int_t)op->due_ms, "deadline", (json_int_t)op->deadline_ms, "seq",
	        (json_int_t)op->line_seq, "listed", (int)op->listed, "params", op->params,
	        "checkpoints", op->checkpoints, "signals", op->signals, "result", op->result,
	        "history", op->history, "error", op->error, "error_code", op->error_code);
	if (b && !with_params)
		json_object_del(b, "params");
	return b;
}

static void put_le16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int dump_append(const char *buf, size_t n, void *arg)
{
	struct pvm_buf *b = arg;
	pvm_buf_addn(b, buf, n);
	return b->oom ? -1 : 0;
}

int pvm_rec_encode(const struct pvm_op *op, const char *params_text, size_t params_len, void **out,
                   size_t *len)
{
	json_t *body = body_json(op, params_text == NULL);
	if (!body)
		return PVM_ENOMEM;
	/* One pass: the body is dumped straight after the room kept for the header. */
	static const char room[PVM_REC_HDR];
	struct pvm_buf b;
	pvm_buf_init(&b);
	pvm_buf_addn(&b, room, sizeof(room));
	int rc = json_dump_callback(body, dump_append, &b, JSON_COMPACT);
	json_decref(body);
	if (rc == 0 && params_text) {
		/* Params serialized by the submitter's thread: spliced in before the final '}'. */
		b.len--;
		pvm_buf_add(&b, ",\"params\":");
		pvm_buf_addn(&b, params_text, params_len);
		pvm_buf_add(&b, "}");
	}
	size_t total = b.len;
	unsigned char *buf = (unsigned char *)pvm_buf_take(&b);
	if (rc != 0 || !buf) {
		free(buf);
		return PVM_ENOMEM;
	}
	size_t blen = total - PVM_REC_HDR;
	memcpy(buf, "PVMR", 4);
	put_le16(buf + 4, PVM_QUEUE_RECORD_VERSION);
	put_le16(buf + 6, 0);
	put_le32(buf + 8, (uint32_t)blen);
	uint32_t crc = pvm_crc32c(0, buf, 12);
	crc = pvm_crc32c(crc, buf + PVM_REC_HDR, blen);
	put_le32(buf + 12, crc);
	*out = buf;
	*len = total;
	return 0;
}

static int take_string(json_t *body, const char *key, char *dst, size_t n)
{
	const char *s = json_string_value(json_object_get(body, key));
	if (!s)
		return PVM_ECORRUPT;
	return pvm_strlcpy(dst, s, n) == 0 ? 0 : PVM_ECORRUPT;
}

static int take_json(json_t *body, const char *key, json_t **dst, json_type type)
{
	json_t *v = json_object_get(body, key);
	if (!v || json_typeof(v) != type)
		return PVM_ECORRUPT;
	json_decref(*dst);
	*dst = json_incref(v);
	return 0;
}

static int64_t take_int(json_t *body, const char *key, int *bad)
{
	json_t *v = json_object_get(body, key);
	if (!json_is_integer(v)) {
		*bad = 1;
		return 0;
	}
	return (int64_t)json_integer_value(v);
}

int pvm_rec_decode(uint64_t id, const void *data, size_t len, struct pvm_op **out)
{
	const unsigned char *buf = data;
	if (len < PVM_REC_HDR || memcmp(buf, "PVMR", 4) != 0)
		return PVM_ECORRUPT;
	uint16_t version = (uint16_t)(buf[4] | buf[5] << 8);
	uint32_t blen = get_le32(buf + 8);
	if (version > PVM_QUEUE_RECORD_VERSION)
		return PVM_EVERSION;
	if (version == 0 || (size_t)blen != len - PVM_REC_HDR)
		return PVM_ECORRUPT;
	uint32_t crc = pvm_crc32c(0, buf, 12);
	crc = pvm_crc32c(crc, buf + PVM_REC_HDR, blen);
	if (crc != get_le32(buf + 12))
		return PVM_ECORRUPT;

	json_error_t jerr;
	json_t *body =
	        json_loadb((const char *)buf + PVM_REC_HDR, blen, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(body)) {
		json_decref(body);
		return PVM_ECORRUPT;
	}
	struct pvm_op *op = pvm_op_new();
	if (!op) {
		json_decref(body);
		return PVM_ENOMEM;
	}
	int rc = 0, bad = 0;
	op->id = id;
	op->format_version = version;
	if (take_string(body, "type", op->type, sizeof(op->type)) ||
	    take_string(body, "instance", op->instance_uuid, sizeof(op->instance_uuid)) ||
	    take_string(body, "key", op->idempotency_key, sizeof(op->idempotency_key)) ||
	    take_string(body, "req", op->request_id, sizeof(op->request_id)) ||
	    pvm_op_state_parse(json_string_value(json_object_get(body, "state")), &op->state) ||
	    take_json(body, "params", &op->params, JSON_OBJECT) ||
	    take_json(body, "checkpoints", &op->checkpoints, JSON_OBJECT) ||
	    take_json(body, "signals", &op->signals, JSON_OBJECT) ||
	    take_json(body, "result", &op->result, JSON_OBJECT) ||
	    take_json(body, "history", &op->history, JSON_ARRAY)) {
		rc = PVM_ECORRUPT;
		goto out;
	}
	op->table_version = (uint32_t)take_int(body, "tv", &bad);
	op->direction = take_int(body, "dir", &bad) ? PVM_DIR_REVERT : PVM_DIR_FORWARD;
	op->step = (int32_t)take_int(body, "step", &bad);
	op->attempts = (uint32_t)take_int(body, "attempts", &bad);
	op->retries = (uint32_t)take_int(body, "retries", &bad);
	op->flags = (uint32_t)take_int(body, "flags", &bad);
	op->progress = (int32_t)take_int(body, "progress", &bad);
	op->created_ms = take_int(body, "created", &bad);
	op->updated_ms = take_int(body, "updated", &bad);
	op->started_ms = take_int(body, "started", &bad);
	op->finished_ms = take_int(body, "finished", &bad);
	op->due_ms = take_int(body, "due", &bad);
	op->deadline_ms = take_int(body, "deadline", &bad);
	op->line_seq = (uint64_t)take_int(body, "seq", &bad);
	json_t *listed = json_object_get(body, "listed");
	if (!json_is_boolean(listed))
		bad = 1;
	op->listed = json_is_true(listed);
	const char *e = json_string_value(json_object_get(body, "error"));
	const char *ec = json_string_value(json_object_get(body, "error_code"));
	op->error = e ? strdup(e) : NULL;
	op->error_code = ec ? strdup(ec) : NULL;
	if (bad)
		rc = PVM_ECORRUPT;
out:
	json_decref(body);
	if (rc) {
		pvm_op_free(op);
		return rc;
	}
	*out = op;
	return 0;
}

json_t *pvm_op_to_json(const struct pvm_op *op)
{
	char created[40], updated[40], due[40], started[40], finished[40], deadline[40];
	json_t *flags = json_array();
	if (op->flags & PVM_OPF_CANCEL_REQUESTED)
		json_array_append_new(flags, json_string("cancel_requested"));
	if (op->flags & PVM_OPF_HAS_SECRETS)
		json_array_append_new(flags, json_string("has_secrets"));
	if (op->flags & PVM_OPF_SECRETS_ERASED)
		json_array_append_new(flags, json_string("secrets_erased"));
	if (op->flags & PVM_OPF_RECOVERED)
		json_array_append_new(flags, json_string("recovered"));
	if (op->flags & PVM_OPF_KICKED)
		json_array_append_new(flags, json_string("kicked"));
	return json_pack(
	        "{s:I, s:s, s:s?, s:s?, s:s?, s:I, s:s, s:s, s:i, s:I, s:I, s:i, s:o, s:s, s:s, "
	        "s:s?, s:s?, s:s?, s:s?, s:O, s:O, s:O, s:O, s:O, s:s?, s:s?, s:I}",
	        "id", (json_int_t)op->id, "type", op->type, "instance_uuid",
	        op->instance_uuid[0] ? op->instance_uuid : NULL, "idempotency_key",
	        op->idempotency_key[0] ? op->idempotency_key : NULL, "request_id",
	        op->request_id[0] ? op->request_id : NULL, "table_version",
	        (json_int_t)op->table_version, "state", pvm_op_state_name(op->state), "direction",
	        op->direction == PVM_DIR_REVERT ? "revert" : "forward", "step", (int)op->step,
	        "attempts", (json_int_t)op->attempts, "retries", (json_int_t)op->retries,
	        "progress", (int)op->progress, "flags", flags, "created",
	        pvm_fmt_time(op->created_ms, created, sizeof(created)), "updated",
	        pvm_fmt_time(op->updated_ms, updated, sizeof(updated)), "started",
	        op->started_ms ? pvm_fmt_time(op->started_ms, started, sizeof(started)) : NULL,
	        "finished",
	        op->finished_ms ? pvm_fmt_time(op->finished_ms, finished, sizeof(finished)) : NULL,
	        "due",
	        pvm_op_state_active(op->state) ? pvm_fmt_time(op->due_ms, due, sizeof(due)) : NULL,
	        "deadline",
	        op->deadline_ms ? pvm_fmt_time(op->deadline_ms, deadline, sizeof(deadline)) : NULL,
	        "params", op->params, "checkpoints", op->checkpoints, "signals", op->signals,
	        "result", op->result, "history", op->history, "error", op->error, "error_code",
	        op->error_code, "format_version", (json_int_t)op->format_version);
}
