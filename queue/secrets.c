/* secrets.c: sealing of secret params (AES-256-GCM, OpenSSL EVP) and the key file.
 *
 * Blob layout: version byte (1), 12-byte random nonce, ciphertext, 16-byte tag. The
 * operation id is the associated data, so a blob copied onto another operation fails
 * to open instead of handing out someone else's secret.
 */
#include "internal.h"

#include "pvm/error.h"
#include "pvm/log.h"
#include "pvm/util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NONCE_LEN 12
#define TAG_LEN   16

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int create_key_file(const char *path)
{
	unsigned char key[PVM_SECRET_KEY_LEN];
	char hex[2 * PVM_SECRET_KEY_LEN + 2];
	if (RAND_bytes(key, sizeof(key)) != 1)
		return PVM_ECRYPTO;
	for (int i = 0; i < PVM_SECRET_KEY_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
	hex[2 * PVM_SECRET_KEY_LEN] = '\n';
	hex[2 * PVM_SECRET_KEY_LEN + 1] = '\0';
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = 0;
	size_t len = strlen(hex);
	if (write(fd, hex, len) != (ssize_t)len || fsync(fd) != 0)
		rc = -errno ? -errno : PVM_EIO;
	close(fd);
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(hex, sizeof(hex));
	if (rc)
		unlink(path);
	else
		pvm_info("created secret key file %s (mode 0600)", path);
	return rc;
}

int pvm_secret_key_load(const char *path, bool create, unsigned char key[PVM_SECRET_KEY_LEN])
{
	char why[512];
	if (create && access(path, F_OK) != 0 && errno == ENOENT) {
		int rc = create_key_file(path);
		if (rc && rc != -EEXIST) {
			pvm_error("cannot create secret key file %s: %s", path, pvm_strerror(rc));
			return rc;
		}
	}
	int rc = pvm_check_private_file(path, (unsigned)geteuid(), why, sizeof(why));
	if (rc) {
		pvm_error("secret key file refused: %s", why);
		return rc;
	}
	char *buf = NULL;
	size_t len = 0;
	rc = pvm_read_file(path, 4096, &buf, &len);
	if (rc) {
		pvm_error("cannot read secret key file %s: %s", path, pvm_strerror(rc));
		return rc;
	}
	size_t n = len;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	rc = 0;
	if (n == 2 * PVM_SECRET_KEY_LEN) {
		for (int i = 0; i < PVM_SECRET_KEY_LEN; i++) {
			int hi = hexval(buf[2 * i]), lo = hexval(buf[2 * i + 1]);
			if (hi < 0 || lo < 0) {
				rc = PVM_EINVAL;
				break;
			}
			key[i] = (unsigned char)(hi << 4 | lo);
		}
	} else if (len == PVM_SECRET_KEY_LEN) {
		memcpy(key, buf, PVM_SECRET_KEY_LEN);
	} else {
		rc = PVM_EINVAL;
	}
	OPENSSL_cleanse(buf, len);
	free(buf);
	if (rc)
		pvm_error("secret key file %s must hold 64 hex digits or 32 raw bytes", path);
	return rc;
}

int pvm_secret_seal(const unsigned char *key, uint64_t id, const void *plain, size_t n,
                    unsigned char **out, size_t *outlen)
{
	unsigned char aad[8];
	for (int i = 0; i < 8; i++)
		aad[i] = (unsigned char)(id >> (56 - 8 * i));
	size_t total = 1 + NONCE_LEN + n + TAG_LEN;
	unsigned char *blob = malloc(total);
	if (!blob)
		return PVM_ENOMEM;
	blob[0] = 1;
	int rc = PVM_ECRYPTO, len = 0;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	if (!ctx || RAND_bytes(blob + 1, NONCE_LEN) != 1)
		goto out;
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, blob + 1) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &len, aad, sizeof(aad)) != 1 ||
	    EVP_EncryptUpdate(ctx, blob + 1 + NONCE_LEN, &len, plain, (int)n) != 1 ||
	    EVP_EncryptFinal_ex(ctx, blob + 1 + NONCE_LEN + len, &len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, blob + 1 + NONCE_LEN + n) != 1)
		goto out;
	rc = 0;
	*out = blob;
	*outlen = total;
	blob = NULL;
out:
	EVP_CIPHER_CTX_free(ctx);
	free(blob);
	return rc;
}

int pvm_secret_unseal(const unsigned char *key, uint64_t id, const void *data, size_t n,
                      char **plain, size_t *plainlen)
{
	const unsigned char *blob = data;
	if (n < 1 + NONCE_LEN + TAG_LEN || blob[0] != 1)
		return PVM_ECRYPTO;
	unsigned char aad[8];
	for (int i = 0; i < 8; i++)
		aad[i] = (unsigned char)(id >> (56 - 8 * i));
	size_t clen = n - 1 - NONCE_LEN - TAG_LEN;
	char *buf = malloc(clen + 1);
	if (!buf)
		return PVM_ENOMEM;
	int rc = PVM_ECRYPTO, len = 0;
	unsigned char tag[TAG_LEN];
	memcpy(tag, blob + 1 + NONCE_LEN + clen, TAG_LEN);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		goto out;
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, blob + 1) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &len, aad, sizeof(aad)) != 1 ||
	    EVP_DecryptUpdate(ctx, (unsigned char *)buf, &len, blob + 1 + NONCE_LEN, (int)clen) !=
	            1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1 ||
	    EVP_DecryptFinal_ex(ctx, (unsigned char *)buf + len, &len) != 1)
		goto out;
	buf[clen] = '\0';
	*plain = buf;
	*plainlen = clen;
	buf = NULL;
	rc = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	if (buf) {
		OPENSSL_cleanse(buf, clen);
		free(buf);
	}
	return rc;
}
