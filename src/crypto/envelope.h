/*
 * envelope.h — the byte layout of an encrypted field (SPEC §2), version 1.
 *
 * Owns: the envelope format and its strict decoder. No cryptography here:
 * field.c seals and opens bodies; this file only says where the bytes are.
 *
 * Every protected value is stored as a bytea holding one envelope:
 *
 *   offset  size  field
 *   0       1     version   0x01 (this layout)
 *   1       1     mode      0x01 randomized, 0x02 deterministic, 0x03 ope
 *                           (0x04 is reserved for token mode, owned elsewhere)
 *   2       4     key id    big-endian uint32: the DEK version that sealed it
 *   6       ...   body      per mode:
 *
 *   randomized    nonce(12) | ciphertext(n) | tag(16)        AES-256-GCM
 *                 6 + 28 + n bytes; n = plaintext length (0 allowed)
 *   deterministic siv(16) | ciphertext(1 + n)                AES-256-SIV
 *                 6 + 17 + n bytes; the SIV plaintext is 0x00 | value (the
 *                 leading byte is a reserved padding-scheme byte, 0x00 = no
 *                 padding; it also makes the SIV plaintext non-empty, which
 *                 OpenSSL 3.0's AES-SIV requires — openssl/openssl#17268)
 *   ope           code(12) | siv(16) | ciphertext(8)         OPE + AES-256-SIV
 *                 exactly 42 bytes; code is the order-preserving image of the
 *                 value (big-endian, < 2^96); the SIV part encrypts the
 *                 value's 8-byte big-endian two's complement form, and is
 *                 what decryption uses (the code is recomputed and compared)
 *
 * Associated data (bound by every AEAD/SIV call):
 *   randomized, deterministic:  header(6) | key domain
 *   ope:                        header(6) | code(12) | key domain
 * The header and code have fixed sizes, so the concatenation is unambiguous.
 * A ciphertext moved to another column/key domain, mode, key id or version,
 * or with any byte changed, fails to decrypt.
 *
 * Order: for ope envelopes with the same key id, memcmp order (PostgreSQL's
 * bytea order) of whole envelopes equals the order of the plaintext values,
 * because the first 6 bytes are equal and the code is strictly increasing.
 *
 * A future layout gets a new version byte; decoders reject versions they do
 * not know.
 */
#ifndef PHANTOM_CRYPTO_ENVELOPE_H
#define PHANTOM_CRYPTO_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#define PH_ENV_VERSION       0x01
#define PH_ENV_HEADER_LEN    6
#define PH_ENV_NONCE_LEN     12 /* GCM nonce */
#define PH_ENV_TAG_LEN       16 /* GCM tag and SIV synthetic IV */
#define PH_ENV_OPE_CODE_LEN  12
#define PH_ENV_OPE_VALUE_LEN 8
#define PH_ENV_DET_PAD_LEN   1 /* the padding-scheme byte inside the SIV plaintext */

/* Fixed overheads (envelope length minus plaintext length). */
#define PH_ENV_RANDOMIZED_OVERHEAD    (PH_ENV_HEADER_LEN + PH_ENV_NONCE_LEN + PH_ENV_TAG_LEN)
#define PH_ENV_DETERMINISTIC_OVERHEAD (PH_ENV_HEADER_LEN + PH_ENV_TAG_LEN + PH_ENV_DET_PAD_LEN)
#define PH_ENV_OPE_LEN                                                                             \
    (PH_ENV_HEADER_LEN + PH_ENV_OPE_CODE_LEN + PH_ENV_TAG_LEN + PH_ENV_OPE_VALUE_LEN)

/* Largest plaintext accepted: keeps every length within int (EVP) and the
 * envelope within PostgreSQL's 1 GB field limit. */
#define PH_ENV_MAX_PLAINTEXT ((size_t)0x3FFFFF00u)

typedef enum ph_env_mode {
    PH_ENV_RANDOMIZED = 0x01,
    PH_ENV_DETERMINISTIC = 0x02,
    PH_ENV_OPE = 0x03,
    PH_ENV_TOKEN = 0x04, /* reserved: recognised in headers, never opened here */
} ph_env_mode;

/* A parsed envelope: pointers into the caller's buffer (nothing is copied). */
typedef struct ph_envelope {
    uint8_t version;
    ph_env_mode mode;
    uint32_t key_id;
    const uint8_t *header; /* PH_ENV_HEADER_LEN bytes */
    const uint8_t *nonce;  /* randomized only, else NULL */
    const uint8_t *code;   /* ope only, else NULL */
    const uint8_t *tag;    /* GCM tag or SIV synthetic IV; NULL for token */
    const uint8_t *ct;     /* ciphertext (token: the whole body) */
    size_t ct_len;
} ph_envelope;

typedef enum ph_env_status {
    PH_ENV_OK = 0,
    PH_ENV_ETRUNCATED = -1, /* shorter than its mode requires */
    PH_ENV_EVERSION = -2,   /* unknown version byte */
    PH_ENV_EMODE = -3,      /* unknown mode byte */
    PH_ENV_ELENGTH = -4,    /* wrong length for its mode (e.g. ope not 42 bytes) */
} ph_env_status;

/* Parses and validates the layout of buf[0..len). Reads only inside it. */
ph_env_status ph_envelope_parse(const uint8_t *buf, size_t len, ph_envelope *out);

/* Writes the 6-byte header. */
void ph_envelope_put_header(uint8_t *out, ph_env_mode mode, uint32_t key_id);

/* The exact envelope length for a plaintext of n bytes, or 0 if the mode is
 * unknown or n too large (ope: n must be 8). */
size_t ph_envelope_len(ph_env_mode mode, size_t n);

const char *ph_env_status_str(ph_env_status st);

#endif
