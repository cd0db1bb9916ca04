/*
 * field.h — the public field-encryption API: seal a value into an envelope
 * (envelope.h) and open it again. Independent of any wire protocol.
 *
 * Owns: ph_field_key, a key context made from one 32-byte DEK, its key id
 * (the DEK version written into every envelope) and a key domain (the column
 * identity, e.g. "public.customers.email", or the shared name of columns
 * that must join). Creating it derives every subkey once; it holds them only
 * inside OpenSSL contexts, exposes no getter for them, and wipes them when
 * freed. After creation a key is read-only: one key may be used by any
 * number of threads at once.
 *
 * Subkeys (HKDF-SHA-256, ikm = DEK, salt = "phantom-field-v1",
 * info = label | 0x00 | key domain):
 *   "phantom/field/v1/gcm"      32 bytes  AES-256-GCM (randomized)
 *   "phantom/field/v1/siv"      64 bytes  AES-256-SIV (deterministic)
 *   "phantom/field/v1/ope-prf"  32 bytes  AES-256 PRF of the OPE map (ope.h)
 *   "phantom/field/v1/ope-siv"  64 bytes  AES-256-SIV of the OPE value part
 * so a DEK never keys two algorithms, and the same DEK under two key domains
 * gives unrelated ciphertexts (deterministic and OPE equality does not leak
 * across domains).
 *
 * Modes (the plaintext is a canonical encoding, see encode.h):
 *   randomized     AES-256-GCM, fresh 96-bit nonce from the OS CSPRNG per call
 *   deterministic  AES-256-SIV: equal plaintexts in one domain/key id give
 *                  equal envelopes
 *   ope            the plaintext is 8 bytes, a big-endian int64; envelopes
 *                  with one key id sort (memcmp) like the integers
 */
#ifndef PHANTOM_CRYPTO_FIELD_H
#define PHANTOM_CRYPTO_FIELD_H

#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"
#include "crypto/envelope.h"

#define PH_FIELD_DEK_LEN       32
#define PH_FIELD_MAX_DOMAIN    1024
#define PH_FIELD_OPE_ENVELOPE  PH_ENV_OPE_LEN /* 42 */
#define PH_FIELD_MAX_PLAINTEXT PH_ENV_MAX_PLAINTEXT

typedef enum ph_field_mode {
    PH_FIELD_ANY = 0, /* only as the `expect` argument of ph_field_decrypt */
    PH_FIELD_RANDOMIZED = PH_ENV_RANDOMIZED,
    PH_FIELD_DETERMINISTIC = PH_ENV_DETERMINISTIC,
    PH_FIELD_OPE = PH_ENV_OPE,
} ph_field_mode;

typedef enum ph_field_status {
    PH_FIELD_OK = 0,
    PH_FIELD_EINVAL = -1,     /* bad argument (NULL, unknown mode, ope value not 8 bytes…) */
    PH_FIELD_ESPACE = -2,     /* output buffer too small */
    PH_FIELD_EMALFORMED = -3, /* not a well-formed envelope */
    PH_FIELD_EKEYID = -4,     /* sealed under another key id: look that key up */
    PH_FIELD_EMODE = -5,      /* another mode than expected (or token) */
    PH_FIELD_EAUTH = -6,      /* authentication failed: tampered, wrong key or domain */
    PH_FIELD_EINTERNAL = -7,  /* OpenSSL or the CSPRNG failed, or out of memory */
} ph_field_status;

typedef struct ph_field_key ph_field_key;

/* What an envelope says about itself, without any key. */
typedef struct ph_field_info {
    ph_env_mode mode; /* may be PH_ENV_TOKEN, which this API does not open */
    uint32_t key_id;
    size_t plaintext_len; /* exact length ph_field_decrypt will produce */
} ph_field_info;

/* domain: NUL-terminated, 1..PH_FIELD_MAX_DOMAIN bytes. The DEK is not kept
 * (the caller wipes its copy). NULL on bad arguments or OpenSSL failure. */
ph_field_key *ph_field_key_new(const uint8_t dek[PH_FIELD_DEK_LEN], uint32_t key_id,
                               const char *domain);
void ph_field_key_free(ph_field_key *k); /* NULL allowed */
uint32_t ph_field_key_id(const ph_field_key *k);
const char *ph_field_key_domain(const ph_field_key *k);

/* The exact envelope length for a plaintext of len bytes (0: not possible). */
size_t ph_field_envelope_len(ph_field_mode mode, size_t len);

/* Parses the header and checks the length for its mode; no key needed. */
ph_field_status ph_field_peek(const uint8_t *env, size_t len, ph_field_info *info);

/* Seals pt[0..len) into out[0..cap); *out_len = ph_field_envelope_len(). */
ph_field_status ph_field_encrypt(const ph_field_key *k, ph_field_mode mode, const uint8_t *pt,
                                 size_t len, uint8_t *out, size_t cap, size_t *out_len);

/* Opens an envelope into out[0..cap), cap >= info.plaintext_len. expect is
 * the column's mode (PH_FIELD_ANY accepts all three). On failure nothing of
 * the plaintext is left in out. */
ph_field_status ph_field_decrypt(const ph_field_key *k, ph_field_mode expect, const uint8_t *env,
                                 size_t len, uint8_t *out, size_t cap, size_t *out_len);

/* Conveniences: append the envelope / plaintext to a ph_buf. */
ph_field_status ph_field_encrypt_buf(const ph_field_key *k, ph_field_mode mode, const uint8_t *pt,
                                     size_t len, ph_buf *out);
ph_field_status ph_field_decrypt_buf(const ph_field_key *k, ph_field_mode expect,
                                     const uint8_t *env, size_t len, ph_buf *out);

/* OPE on integers: the 42-byte envelope of v, and back. */
ph_field_status ph_field_encrypt_ope(const ph_field_key *k, int64_t v,
                                     uint8_t out[PH_FIELD_OPE_ENVELOPE]);
ph_field_status ph_field_decrypt_ope(const ph_field_key *k, const uint8_t *env, size_t len,
                                     int64_t *v);

/* A fixed, value-free description ("authentication failed", …). */
const char *ph_field_strerror(ph_field_status st);

#endif
