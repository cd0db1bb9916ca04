/*
 * siv.h — AES-SIV (RFC 5297), deterministic authenticated encryption with
 * several associated-data components, composed from OpenSSL 3 primitives:
 * AES-CMAC (EVP_MAC "CMAC") for S2V and AES-CTR (EVP_CIPHER) for the
 * encryption. Not a new primitive: S2V's glue (doubling, xor, padding) is
 * the only code of its own; the output is byte-identical to OpenSSL's
 * EVP "AES-128-SIV" / "AES-256-SIV" (tests/unit/test_crypto_siv.c compares
 * them). Internal building block of field.c, like aead.h.
 *
 * Owns: a key's keyed OpenSSL contexts (CMAC under K1, CTR under K2), S2V
 * values precomputed from the key, and a pool of working contexts. A key is
 * set up by ph_siv_init (and optionally ph_siv_fix_ad) and read-only
 * afterwards; every seal/open takes working contexts of its own from the
 * pool, so one key may be used by several threads at once. ph_siv_clear
 * wipes and frees everything; it must not run while another thread uses the
 * key.
 */
#ifndef PHANTOM_CRYPTO_SIV_H
#define PHANTOM_CRYPTO_SIV_H

#include <stddef.h>
#include <stdint.h>

#define PH_SIV_V_LEN  16 /* the synthetic IV (the tag) */
#define PH_SIV_MAX_AD 8

/* One associated-data component. */
typedef struct ph_ad {
    const uint8_t *p;
    size_t len;
} ph_ad;

typedef struct ph_siv_key ph_siv_key; /* opaque: contexts, S2V state, pool (siv.c) */

typedef struct ph_siv {
    ph_siv_key *k;
} ph_siv;

/* key_len 32 selects AES-128-SIV (RFC 5297's own vectors), 64 AES-256-SIV
 * (the product); K1 (S2V) is the first half, K2 (CTR) the second (§2.6).
 * Returns 0, or -1 (nothing to clear) on a bad length or OpenSSL failure. */
int ph_siv_init(ph_siv *s, const uint8_t *key, size_t key_len);
void ph_siv_clear(ph_siv *s); /* wipes; idempotent */

/* Precomputes S2V's step for a first associated-data component that is the
 * same for every message of this key (field.c: header | key domain). Later
 * calls whose ad[0] equals it byte for byte skip its CMAC; others compute
 * it as usual, so results never depend on this. Call before the key is
 * shared. 0, or -1 (key unchanged). */
int ph_siv_fix_ad(ph_siv *s, const ph_ad *ad);

/* Return 0 on success and -1 on failure (open: also when the value is not
 * authentic). The plaintext must be non-empty (as OpenSSL 3.0's AES-SIV
 * requires) and at most INT_MAX bytes; at most PH_SIV_MAX_AD components, an
 * empty one may have p == NULL. v is the synthetic IV. ct may equal pt
 * exactly (in place), never overlap it partially. A failure with valid
 * arguments wipes the output: v and ct (seal), pt (open). */
int ph_siv_seal(const ph_siv *s, const ph_ad *ad, size_t n_ad, const uint8_t *pt, size_t len,
                uint8_t v[PH_SIV_V_LEN], uint8_t *ct);
int ph_siv_open(const ph_siv *s, const ph_ad *ad, size_t n_ad, const uint8_t v[PH_SIV_V_LEN],
                const uint8_t *ct, size_t len, uint8_t *pt);

#endif
