/* queue/internal.h: what the journal's files share: the record codec, CRC32C and the
 * secrets sealing. Not a public interface. */
#ifndef PVM_QUEUE_INTERNAL_H
#define PVM_QUEUE_INTERNAL_H

#include "pvm/queue.h"

#include <stddef.h>
#include <stdint.h>

/* CRC32C (Castagnoli) of buf, continuing from crc (start with 0). */
uint32_t pvm_crc32c(uint32_t crc, const void *buf, size_t n);

/* Record layout: a 16-byte header, then the body (JSON text of the operation).
 *   0  magic "PVMR"
 *   4  u16 format version (little endian)
 *   6  u16 reserved (0)
 *   8  u32 body length
 *  12  u32 CRC32C of bytes 0..11 and the body
 * The header layout never changes; the body's schema is what the version numbers. */
#define PVM_REC_HDR 16

/* Encodes op into a heap buffer. params_text (params_len bytes), when not NULL, is
 * op->params already serialized as compact JSON (by a submitter's thread, to keep that work
 * off the committer). Returns 0 or PVM_ENOMEM. */
int pvm_rec_encode(const struct pvm_op *op, const char *params_text, size_t params_len, void **out,
                   size_t *len);
/* Decodes a record. PVM_ECORRUPT (bad magic, length, checksum, or body), PVM_EVERSION (a
 * newer format than this build reads), or 0 with a new *out (id set from the key). */
int pvm_rec_decode(uint64_t id, const void *buf, size_t len, struct pvm_op **out);
/* A new empty operation with every json member allocated. NULL on ENOMEM. */
struct pvm_op *pvm_op_new(void);
/* Deep copy. */
struct pvm_op *pvm_op_dup(const struct pvm_op *op);

/* Secrets sealing: AES-256-GCM with a 32-byte key; the operation id is bound in as
 * associated data so a sealed blob cannot be moved to another operation. */
#define PVM_SECRET_KEY_LEN 32
/* Loads the key file (64 hex digits, or 32 raw bytes), refusing one not owned by the
 * effective uid or readable by group/others. With create, a missing file is created
 * (0600, random key). Returns 0, PVM_EPERM, PVM_EINVAL (bad content), or -errno. */
int pvm_secret_key_load(const char *path, bool create, unsigned char key[PVM_SECRET_KEY_LEN]);
int pvm_secret_seal(const unsigned char *key, uint64_t id, const void *plain, size_t n,
                    unsigned char **out, size_t *outlen);
int pvm_secret_unseal(const unsigned char *key, uint64_t id, const void *blob, size_t n,
                      char **plain, size_t *plainlen);

#endif
