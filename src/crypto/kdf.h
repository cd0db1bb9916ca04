/*
 * kdf.h — subkey derivation: HKDF-SHA-256 (RFC 5869) over OpenSSL's EVP_KDF.
 *
 * Owns: the one HKDF entry point of the crypto core. The labels that separate
 * field subkeys are listed in field.h.
 */
#ifndef PHANTOM_CRYPTO_KDF_H
#define PHANTOM_CRYPTO_KDF_H

#include <stddef.h>
#include <stdint.h>

/* out[0..out_len) = HKDF-SHA-256(ikm, salt, info). Returns 0, or -1 (out
 * wiped) on failure. */
int ph_hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
                   const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len);

#endif
