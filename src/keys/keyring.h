/*
 * keyring.h — the store of wrapped DEKs.
 *
 * Owns: the in-memory keyring (key domains, their DEK versions and every
 * wrapping of each), its JSON file format (parse with strict validation,
 * serialise), crash-safe saving (atomic_file.h), an advisory lock for
 * read-modify-write cycles, and the version rules (create, rotate, retire).
 * It never sees a plaintext DEK: wrapping and unwrapping belong to the KEK
 * providers (kek.h); the DEK cache (dek_cache.h) loads through them.
 *
 * File format (UTF-8 JSON, written pretty-printed with mode 0600; keys may
 * appear in any order on input; unknown keys and duplicate keys are errors):
 *
 *   {
 *     "format": "phantom-keyring",          constant
 *     "version": 1,                         format version (this is 1)
 *     "generation": 7,                      +1 on every save (lets a running
 *                                           proxy notice a change)
 *     "next_key_id": 4,                     next key id to assign (> all ids)
 *     "domains": {
 *       "customers.email": {                key domain name (see below)
 *         "active": 2,                      version new writes use; it must
 *                                           name a version in state "active"
 *         "versions": [                     strictly increasing "version"
 *           {
 *             "version": 1,                 1..4294967295, per domain
 *             "key_id": 1,                  1..4294967295, unique in the
 *                                           keyring, never reused: the 4-byte
 *                                           key id of the ciphertext envelope
 *             "state": "active",            "active" = decrypts (and, when
 *                                           named by "active", encrypts);
 *                                           "retired" = destroyed
 *             "created": "2025-11-25T19:11:00Z",  UTC, seconds precision
 *             "retired": "2025-12-01T08:00:00Z",  present iff state is retired
 *             "usage": {"rows": 0, "checked": "2025-12-01T07:59:00Z"},
 *                                           optional: rows still encrypted under
 *                                           this version, as last counted by a
 *                                           scanner (ph_keyring_record_usage)
 *             "wrapped": [                  every wrapping of this DEK; empty
 *                                           iff retired, non-empty if active
 *               {"kek": "file:/etc/phantom/master.key",  KEK id (ph_kek.id),
 *                                                        1..127 bytes
 *                "role": "primary",         "primary" (used by the proxy) or
 *                                           "escrow" (offline recovery KEK)
 *                "blob": "UEhLRgEAAAAB..."} standard base64 (with padding) of
 *                                           the provider's opaque wrapped key,
 *                                           1..4096 bytes decoded
 *             ]
 *           }
 *         ]
 *       }
 *     }
 *   }
 *
 * Key domain names: 1..200 bytes of [A-Za-z0-9_.:/@-], starting with a
 * letter or digit (room for a later tenant qualifier such as
 * "tenant:acme/customers.email").
 *
 * A DEK version's plaintext is never in the file; a retired version keeps
 * only its metadata (so key ids are never reused and `keys list` shows the
 * history). Writers take ph_keyring_lock, load, change, save, unlock.
 */
#ifndef PHANTOM_KEYS_KEYRING_H
#define PHANTOM_KEYS_KEYRING_H

#include <stddef.h>
#include <stdint.h>

#define PH_KEYRING_FORMAT     "phantom-keyring"
#define PH_KEYRING_VERSION    1
#define PH_KEYRING_MAX_FILE   (64u * 1024u * 1024u)
#define PH_KEYRING_MAX_BLOB   4096u
#define PH_KEYRING_MAX_DOMAIN 200u
#define PH_KEYRING_MAX_KEK_ID 127u

typedef enum { PH_WRAP_PRIMARY = 0, PH_WRAP_ESCROW } ph_wrap_role;
typedef enum { PH_DEK_ACTIVE = 0, PH_DEK_RETIRED } ph_dek_state;

typedef struct ph_wrapped_dek {
    char *kek; /* KEK id */
    ph_wrap_role role;
    uint8_t *blob;
    size_t blob_len;
} ph_wrapped_dek;

typedef struct ph_dek_version {
    uint32_t version;
    uint32_t key_id;
    ph_dek_state state;
    int64_t created; /* Unix seconds */
    int64_t retired; /* Unix seconds, 0 unless retired */
    int usage_known; /* 1 if a scanner recorded usage_rows */
    uint64_t usage_rows;
    int64_t usage_checked;
    ph_wrapped_dek *wrapped;
    size_t n_wrapped;
} ph_dek_version;

typedef struct ph_key_domain {
    char *name;
    uint32_t active; /* version used for new writes */
    ph_dek_version *versions;
    size_t n_versions;
} ph_key_domain;

typedef struct ph_keyring {
    uint64_t generation;
    uint32_t next_key_id;
    ph_key_domain *domains; /* sorted by name */
    size_t n_domains;
} ph_keyring;

/* Every function returning int returns 0 on success, -1 with a one-line
 * reason in err (NUL-terminated) on failure. */

ph_keyring *ph_keyring_new(void);     /* empty; NULL on OOM */
void ph_keyring_free(ph_keyring *kr); /* NULL allowed */

int ph_keyring_parse(const char *json, size_t len, ph_keyring **out, char *err, size_t errlen);
/* Pretty-printed JSON (NUL-terminated, heap; free()); NULL on OOM. */
char *ph_keyring_serialize(const ph_keyring *kr, size_t *len);

/* Loads path; missing_ok=1 returns an empty keyring when it does not exist. */
int ph_keyring_load(const char *path, int missing_ok, ph_keyring **out, char *err, size_t errlen);
/* Increments kr->generation and writes the file atomically (mode 0600). On
 * failure the previous file is untouched and kr->generation restored. */
int ph_keyring_save(ph_keyring *kr, const char *path, char *err, size_t errlen);

/* Exclusive advisory lock on "<path>.lock" (created 0600), waiting up to
 * timeout_ms. Returns the descriptor to close() to unlock, or -1. */
int ph_keyring_lock(const char *path, unsigned timeout_ms, char *err, size_t errlen);

int ph_keyring_valid_domain(const char *name); /* 1 if valid */

/* Look-ups (NULL / -1 when absent). */
ph_key_domain *ph_keyring_domain(const ph_keyring *kr, const char *name);
ph_dek_version *ph_keyring_version(const ph_key_domain *d, uint32_t version);
ph_dek_version *ph_keyring_active(const ph_key_domain *d);
int ph_keyring_by_key_id(const ph_keyring *kr, uint32_t key_id, ph_key_domain **d,
                         ph_dek_version **v);
/* The first wrapping with this role, or NULL. */
const ph_wrapped_dek *ph_keyring_wrapping(const ph_dek_version *v, ph_wrap_role role);

/*
 * Adds a DEK version wrapped (role primary) by kek_id as blob.
 * create=1: the domain must not exist; it is created with version 1.
 * create=0 (rotate): the domain must exist; the new version is the highest
 * so far + 1 and becomes the active one; older active versions still decrypt.
 * The new version gets the next key id. *out (optional) points at it (valid
 * until the keyring is changed again).
 */
int ph_keyring_add_version(ph_keyring *kr, const char *domain, int create, const char *kek_id,
                           const uint8_t *blob, size_t blob_len, ph_dek_version **out, char *err,
                           size_t errlen);

/* Replaces every wrapping of v that has `role` by one (kek_id, blob). */
int ph_keyring_set_wrapping(ph_dek_version *v, ph_wrap_role role, const char *kek_id,
                            const uint8_t *blob, size_t blob_len, char *err, size_t errlen);

/* Why a version may not be retired without --force. */
typedef enum {
    PH_RETIRE_OK = 0,        /* a scan recorded 0 rows: safe */
    PH_RETIRE_USAGE_UNKNOWN, /* no scan recorded: data may use it */
    PH_RETIRE_IN_USE,        /* a scan counted rows under it */
    PH_RETIRE_IMPOSSIBLE,    /* unknown, already retired, or the active version */
} ph_retire_check;

/* Checks whether domain/version may be retired; err explains a refusal. */
ph_retire_check ph_keyring_retire_check(const ph_keyring *kr, const char *domain, uint32_t version,
                                        char *err, size_t errlen);

/* Retires domain/version: refused when the check is IMPOSSIBLE, or when it
 * is USAGE_UNKNOWN/IN_USE and force is 0. Destroys every wrapping (blobs
 * wiped): data still encrypted under the version becomes unreadable. */
int ph_keyring_retire(ph_keyring *kr, const char *domain, uint32_t version, int force, char *err,
                      size_t errlen);

/* Records a scanner's count of rows still encrypted under domain/version. */
int ph_keyring_record_usage(ph_keyring *kr, const char *domain, uint32_t version, uint64_t rows,
                            int64_t when, char *err, size_t errlen);

/* RFC 3339 UTC "YYYY-MM-DDTHH:MM:SSZ" (buf >= 21 bytes) and back (-1 if bad). */
void ph_keyring_format_time(int64_t t, char *buf, size_t len);
int ph_keyring_parse_time(const char *s, int64_t *out);

#endif
