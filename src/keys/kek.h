/*
 * kek.h — the key-encryption-key (KEK) provider interface.
 *
 * Owns: the one interface every KEK provider implements (file, openbao,
 * pkcs11). A provider wraps and unwraps 256-bit data-encryption keys (DEKs);
 * the KEK itself never leaves the provider (a file, an OpenBao Transit key,
 * an HSM token). Wrapped blobs are opaque bytes the keyring stores as is.
 *
 * Conventions for every operation:
 *   - returns 0 on success, -1 on failure with a one-line reason in err
 *     (always NUL-terminated, never containing key material);
 *   - buffers returned through `uint8_t **out` are heap memory owned by the
 *     caller (free()); plaintext key buffers are the caller's and are wiped
 *     by the caller with OPENSSL_cleanse;
 *   - providers may block (network, HSM): callers run them off the event
 *     loop (the DEK cache's single-flight loader does).
 */
#ifndef PHANTOM_KEYS_KEK_H
#define PHANTOM_KEYS_KEK_H

#include <stddef.h>
#include <stdint.h>

#define PH_DEK_LEN 32 /* AES-256 */

typedef struct ph_kek ph_kek;

typedef struct ph_kek_ops {
    const char *kind; /* "file", "openbao", "pkcs11" */

    /* Wraps dek[PH_DEK_LEN] under the newest KEK version. */
    int (*wrap)(ph_kek *k, const uint8_t *dek, uint8_t **out, size_t *out_len, char *err,
                size_t errlen);

    /* Unwraps a blob made by wrap/generate/rewrap (any live KEK version). */
    int (*unwrap)(ph_kek *k, const uint8_t *wrapped, size_t len, uint8_t *dek_out, char *err,
                  size_t errlen);

    /* Optional (NULL = random bytes from the OS CSPRNG + wrap): makes a new
     * DEK in the provider (e.g. Transit datakey/plaintext). */
    int (*generate)(ph_kek *k, uint8_t *dek_out, uint8_t **wrapped, size_t *wrapped_len, char *err,
                    size_t errlen);

    /* Optional (NULL = unwrap + wrap): re-wraps under the newest KEK
     * version without exposing the DEK where the provider can avoid it. */
    int (*rewrap)(ph_kek *k, const uint8_t *wrapped, size_t len, uint8_t **out, size_t *out_len,
                  char *err, size_t errlen);

    /* Optional (NULL = not supported): adds a new KEK version. */
    int (*rotate)(ph_kek *k, char *err, size_t errlen);

    /* Frees the provider (wiping any key material it holds). */
    void (*destroy)(ph_kek *k);
} ph_kek_ops;

struct ph_kek {
    const ph_kek_ops *ops;
    char id[128]; /* human-readable KEK identity for logs/audit, e.g. "file:/etc/phantom/master.key"
                   */
};

/* Dispatchers filling in the defaults described above. */
int ph_kek_wrap(ph_kek *k, const uint8_t *dek, uint8_t **out, size_t *out_len, char *err,
                size_t errlen);
int ph_kek_unwrap(ph_kek *k, const uint8_t *wrapped, size_t len, uint8_t *dek_out, char *err,
                  size_t errlen);
int ph_kek_generate(ph_kek *k, uint8_t *dek_out, uint8_t **wrapped, size_t *wrapped_len, char *err,
                    size_t errlen);
int ph_kek_rewrap(ph_kek *k, const uint8_t *wrapped, size_t len, uint8_t **out, size_t *out_len,
                  char *err, size_t errlen);
int ph_kek_rotate(ph_kek *k, char *err, size_t errlen);
void ph_kek_destroy(ph_kek *k); /* NULL allowed */

/* What creating a provider's KEK did (kek_factory.h: ph_kek_create_key). */
typedef struct ph_kek_created {
    int existed;                /* 1: the (openbao) key was there already, left unchanged */
    unsigned long long version; /* newest KEK version afterwards; 0 = not reported */
    char type[32];              /* openbao: the Transit key type; else "" */
} ph_kek_created;

#endif
