/*
 * aead.h — internal AEAD building blocks over OpenSSL 3: AES-256-GCM
 * with an explicit nonce (here), and AES-SIV (RFC 5297) with several
 * associated-data components (siv.h, included for field.c). Not the public
 * API (that is field.h): these take raw keys and, for GCM, a caller-chosen
 * nonce, which only field.c (random nonces) and the known-answer tests may
 * supply.
 *
 * Owns: the contexts that hold a GCM key's expanded form. A key's AES
 * template is keyed once (ph_gcm_init) and read-only afterwards; every
 * seal/open works on objects of its own taken from the key's pool (see
 * aead.c), so one key may be used by several threads at once. ph_gcm_clear
 * frees (and thereby wipes) the template and the pooled objects; it must not
 * run while another thread uses the key.
 */
#ifndef PHANTOM_CRYPTO_AEAD_H
#define PHANTOM_CRYPTO_AEAD_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "crypto/siv.h" /* ph_siv, ph_ad */

#define PH_GCM_KEY_LEN   32
#define PH_GCM_NONCE_LEN 12
#define PH_AEAD_TAG_LEN  16

typedef struct ph_aead_pool ph_aead_pool; /* idle working contexts (aead.c) */

typedef struct ph_gcm {
    EVP_CIPHER_CTX *ecb; /* AES-256-ECB under the key: the template, never used directly */
    ph_aead_pool *pool;
} ph_gcm;

/* All functions return 0 on success and -1 on failure (open: also on an
 * authentication failure, after wiping the output). Lengths are limited to
 * INT_MAX. Inputs and outputs may not overlap. */

int ph_gcm_init(ph_gcm *g, const uint8_t key[PH_GCM_KEY_LEN]);
void ph_gcm_clear(ph_gcm *g);
int ph_gcm_seal(const ph_gcm *g, const uint8_t nonce[PH_GCM_NONCE_LEN], const uint8_t *aad,
                size_t aad_len, const uint8_t *pt, size_t len, uint8_t *ct,
                uint8_t tag[PH_AEAD_TAG_LEN]);
int ph_gcm_open(const ph_gcm *g, const uint8_t nonce[PH_GCM_NONCE_LEN], const uint8_t *aad,
                size_t aad_len, const uint8_t *ct, size_t len, const uint8_t tag[PH_AEAD_TAG_LEN],
                uint8_t *pt);

#endif
