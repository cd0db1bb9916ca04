/*
 * kdf.c — HKDF-SHA-256 through EVP_KDF "HKDF" (see kdf.h).
 */
#include "crypto/kdf.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

int ph_hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
                   const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[5], *q = params;
    char digest[] = "SHA256";
    *q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
    *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
    if (salt_len) /* absent salt = HashLen zero bytes (RFC 5869 §2.2) */
        *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
    if (info_len)
        *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
    *q = OSSL_PARAM_construct_end();
    int rc = kctx && EVP_KDF_derive(kctx, out, out_len, params) == 1 ? 0 : -1;
    EVP_KDF_CTX_free(kctx); /* wipes its copy of the key */
    EVP_KDF_free(kdf);
    if (rc != 0)
        OPENSSL_cleanse(out, out_len);
    return rc;
}
