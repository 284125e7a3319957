/* error.c: names and messages of the one error space (pvm/error.h). */
#include "pvm/error.h"

#include <string.h>

struct entry {
	int code;
	const char *name;
	const char *msg;
};

static const struct entry table[] = {
        {PVM_EINVAL, "PVM_EINVAL", "invalid argument"},
        {PVM_ENOMEM, "PVM_ENOMEM", "out of memory"},
        {PVM_ENOTFOUND, "PVM_ENOTFOUND", "not found"},
        {PVM_EEXIST, "PVM_EEXIST", "already exists"},
        {PVM_ECONFLICT, "PVM_ECONFLICT", "idempotency key already used with other parameters"},
        {PVM_ETRANSITION, "PVM_ETRANSITION", "illegal state transition"},
        {PVM_ECORRUPT, "PVM_ECORRUPT", "record is damaged (checksum or format)"},
        {PVM_EVERSION, "PVM_EVERSION", "record or file is of a newer format than this build reads"},
        {PVM_EFULL, "PVM_EFULL", "journal is full and may not grow further"},
        {PVM_EJOURNAL, "PVM_EJOURNAL", "journal (LMDB) error"},
        {PVM_ENOTJOURNAL, "PVM_ENOTJOURNAL", "state directory does not hold a powervmd journal"},
        {PVM_ECONFIG, "PVM_ECONFIG", "invalid configuration"},
        {PVM_ECRYPTO, "PVM_ECRYPTO", "encryption or decryption failed"},
        {PVM_EPERM, "PVM_EPERM", "file ownership or permissions refused"},
        {PVM_EIO, "PVM_EIO", "input/output error"},
        {PVM_ECLOSED, "PVM_ECLOSED", "shutting down"},
        {PVM_ETIMEDOUT, "PVM_ETIMEDOUT", "deadline passed"},
        {PVM_ETOOBIG, "PVM_ETOOBIG", "value exceeds its size limit"},
        {PVM_ENOSECRET, "PVM_ENOSECRET", "secret parameters are not available"},
};

static const struct entry *find(int err)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].code == err)
			return &table[i];
	return NULL;
}

const char *pvm_strerror(int err)
{
	if (err == 0)
		return "success";
	const struct entry *e = find(err);
	if (e)
		return e->msg;
	if (err < 0 && err > PVM_E_BASE)
		return strerror(-err);
	return "unknown error";
}

const char *pvm_errname(int err)
{
	if (err == 0)
		return "OK";
	const struct entry *e = find(err);
	if (e)
		return e->name;
	if (err < 0 && err > PVM_E_BASE) {
		const char *n = strerrorname_np(-err);
		return n ? n : "EUNKNOWN";
	}
	return "EUNKNOWN";
}
