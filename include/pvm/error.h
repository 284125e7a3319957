/* pvm/error.h: the one error space of powervmd.
 *
 * Every function that can fail returns int: 0 on success, a negative PVM_E* code, or a
 * negative errno value. pvm_strerror() names both. Errors of other libraries (LMDB,
 * libconfig, libcurl, libxml2, OpenSSL) are translated into this space at the module
 * boundary that calls them, and their own message is logged once there.
 *
 * Thread-safety: all functions here are thread-safe.
 */
#ifndef PVM_ERROR_H
#define PVM_ERROR_H

enum pvm_error {
	PVM_OK = 0,
	PVM_E_BASE = -10000,
	PVM_EINVAL = PVM_E_BASE, /* bad input: argument, request field, value */
	PVM_ENOMEM,              /* out of memory */
	PVM_ENOTFOUND,           /* no such object (operation, key, record) */
	PVM_EEXIST,              /* object exists already */
	PVM_ECONFLICT,           /* idempotency key reused with other params */
	PVM_ETRANSITION,         /* illegal operation state transition */
	PVM_ECORRUPT,            /* record failed its checksum or does not parse */
	PVM_EVERSION,            /* record or file of a future format */
	PVM_EFULL,               /* journal map is full and may not grow further */
	PVM_EJOURNAL,            /* other journal (LMDB) failure */
	PVM_ENOTJOURNAL,         /* state directory holds something that is not a journal */
	PVM_ECONFIG,             /* configuration is invalid */
	PVM_ECRYPTO,             /* encryption or decryption failed */
	PVM_EPERM,               /* file ownership or mode refused */
	PVM_EIO,                 /* I/O error */
	PVM_ECLOSED,             /* the object is shutting down */
	PVM_ETIMEDOUT,           /* a deadline passed */
	PVM_ETOOBIG,             /* value exceeds a size limit */
	PVM_ENOSECRET,           /* secret params are not available (erased or no key) */
	PVM_E_END
};

/* Returns a static, human-readable description of a PVM_E* code or negative errno.
 * Never returns NULL. */
const char *pvm_strerror(int err);

/* Returns the symbolic name of a code ("PVM_ECONFLICT", "ENOENT"), for logs and JSON. */
const char *pvm_errname(int err);

#endif
