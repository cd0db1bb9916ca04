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
 *                                           (unless the domain is shredded)
 *         "shredded": "2025-12-02T10:00:00Z",  optional: the tenant of this
 *                                           domain was crypto-shredded at
 *                                           that time (UTC); every version
 *                                           is then retired, and the domain
 *                                           is kept as a tombstone: no new
 *                                           version can be added to it
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
 * letter or digit. A tenant's DEKs live in domains named
 * "tenant:<T>/<domain>" (e.g. "tenant:acme/customers.email"): the tenant id
 * T is 1..63 bytes of [A-Za-z0-9_.-] starting and ending with a letter or digit
 * (ph_tenant_valid); such domains are ordinary domains for every rule
 * below (versions, rotation, retire, escrow, audit), and crypto-shredding a
 * tenant (ph_keyring_shred_tenant) retires all of them at once.
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
    int64_t shredded; /* Unix seconds the tenant was crypto-shredded, 0 if not */
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
 * A shredded domain is refused either way.
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

/* ---- tenants ------------------------------------------------------------- */

#define PH_TENANT_MAX    63 /* bytes of a tenant id */
#define PH_TENANT_PREFIX "tenant:"

/* 1 when t is a valid tenant id: 1..PH_TENANT_MAX bytes of [A-Za-z0-9_.-],
 * starting and ending with a letter or digit (it can name an OpenBao Transit
 * key, see keys_config.h openbao.tenant_key_prefix). */
int ph_tenant_valid(const char *t);
int ph_tenant_valid_len(const char *t, size_t len); /* same for t[0..len) */

/* "tenant:<tenant>/<domain>" into buf; -1 when the tenant id is invalid or
 * the name would not be a valid key domain (too long). */
int ph_keyring_tenant_domain(char *buf, size_t len, const char *tenant, const char *domain);

/* When name is a tenant domain "tenant:<T>/<base>": 1 with T copied into
 * tenant (tlen >= PH_TENANT_MAX + 1; NULL allowed) and *base pointing into
 * name (NULL allowed); else 0. */
int ph_keyring_domain_tenant(const char *name, char *tenant, size_t tlen, const char **base);

/* 1 when any key domain of tenant was crypto-shredded (its keys must never
 * be re-created), else 0. */
int ph_keyring_tenant_shredded(const ph_keyring *kr, const char *tenant);

/* What ph_keyring_shred_tenant did. */
typedef struct ph_shred_result {
    size_t domains;   /* tenant domains found */
    size_t versions;  /* DEK versions retired now (their wrappings destroyed) */
    size_t wrappings; /* wrappings destroyed (primary and escrow) */
    size_t already;   /* domains that were shredded before */
} ph_shred_result;

/*
 * Crypto-shredding: every DEK version of every domain "tenant:<tenant>/..."
 * is retired now — every wrapping (primary and escrow) wiped — whatever its
 * usage, and each domain is marked shredded at `when` (kept as a tombstone:
 * key ids are never reused and ph_keyring_add_version refuses the domain).
 * -1 when the tenant id is invalid or the keyring holds no domain of it.
 */
int ph_keyring_shred_tenant(ph_keyring *kr, const char *tenant, int64_t when, ph_shred_result *res,
                            char *err, size_t errlen);

/* RFC 3339 UTC "YYYY-MM-DDTHH:MM:SSZ" (buf >= 21 bytes) and back (-1 if bad). */
void ph_keyring_format_time(int64_t t, char *buf, size_t len);
int ph_keyring_parse_time(const char *s, int64_t *out);

#endif
