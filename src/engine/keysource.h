/*
 * keysource.h — field keys for the proxy: the bridge from the key layer
 * (keyring + KEK provider, src/keys/) to the crypto layer (ph_field_key).
 *
 * Owns: one ph_field_key per (key domain, key id), in two kinds of source.
 *
 *   A key table (ph_keysource_open, ph_keysource_new): every live DEK
 *   version of the schema's key domains, unwrapped through the KEK once and
 *   derived into field keys; immutable afterwards and read without locks.
 *   ph_keysource_open fails when any key cannot be loaded (the tools and
 *   `phantom check-config --keys` use it: fail closed).
 *
 *   A live source (ph_keysource_open_live, keysource_live.c; the proxy's):
 *   a refcounted, immutable key table that a refresh thread replaces every
 *   TTL/2 by re-unwrapping the same DEK versions through the KEK provider,
 *   and wipes once no refresh succeeded for a whole TTL (keys.cache_ttl).
 *   While it holds no table (the provider was down at start, or the keys
 *   expired) the keys are *unavailable*: statements that need them are
 *   refused with PH_KEYS_UNAVAILABLE_SQLSTATE, and, with
 *   keys.when_unavailable: refuse, every statement is. Only a keyring that
 *   cannot serve the schema (unreadable, a key domain missing) stops it from
 *   starting.
 *
 * Whoever uses keys holds the table it got from ph_keysource_acquire until
 * ph_keysource_release, so a table is never freed (wiped) under a user; for a
 * key table acquire returns the table itself and costs nothing. The lookups
 * (write_key, domain_keys, key_by_id) take a table: an acquired one, or a key
 * table directly.
 *
 * Thread-safe: any number of workers may acquire, look up and release at
 * once while the refresh thread swaps tables.
 */
#ifndef PHANTOM_ENGINE_KEYSOURCE_H
#define PHANTOM_ENGINE_KEYSOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/field.h"

typedef struct ph_keysource ph_keysource;
struct ph_keys_config;
struct ph_schema;

/*
 * The SQLSTATE of "encryption keys are unavailable": class 58 (system error,
 * "errors external to PostgreSQL itself") — the key provider is such an
 * external system, the connection stays usable and the statement may be
 * retried later; 57P03 (cannot_connect_now) would tell drivers and poolers
 * that this connection is unusable, which it is not.
 */
#define PH_KEYS_UNAVAILABLE_SQLSTATE "58000"

/* ---- key tables ---------------------------------------------------------------- */

/* Loads the keys of every key domain of schema from the configured keyring
 * and KEK provider. NULL with a reason in err (never key material). */
ph_keysource *ph_keysource_open(const struct ph_keys_config *kc, const struct ph_schema *schema,
                                char *err, size_t errlen);

/* For tests and tools: an empty key table filled with ph_keysource_add. */
ph_keysource *ph_keysource_new(void);
/* Adds the key of (domain, key_id) made from dek (copied into a field key,
 * the caller wipes its copy); active = it is the one new writes use. */
int ph_keysource_add(ph_keysource *ks, const char *domain, uint32_t key_id,
                     const uint8_t dek[PH_FIELD_DEK_LEN], int active);
/* Same, recording the DEK version too (what a refresh re-loads). */
int ph_keysource_add_version(ph_keysource *ks, const char *domain, uint32_t version,
                             uint32_t key_id, const uint8_t dek[PH_FIELD_DEK_LEN], int active);

/* The key new writes in domain use; NULL if the domain has none. */
const ph_field_key *ph_keysource_write_key(const ph_keysource *ks, const char *domain);
/* Every live key of domain, the active (write) key first, then the others in
 * the order they were added: stores up to max of them in out and returns how
 * many the domain has (0 when none; more than max when out was too small).
 * During a DEK rotation a deterministic value has one ciphertext per live
 * key, and an equality lookup must match each of them. */
size_t ph_keysource_domain_keys(const ph_keysource *ks, const char *domain,
                                const ph_field_key **out, size_t max);
/* The key an envelope names (its key id) for domain; NULL if unknown or of
 * another domain. */
const ph_field_key *ph_keysource_key_by_id(const ph_keysource *ks, const char *domain,
                                           uint32_t key_id);

/* Entries of a table in the order they were added (for a refresh's pin):
 * 0 with the fields set, -1 past the end. */
size_t ph_keysource_count(const ph_keysource *ks);
int ph_keysource_entry(const ph_keysource *ks, size_t i, const char **domain, uint32_t *version,
                       uint32_t *key_id, int *active);

/* Frees a key table (wiping every key) or a live source (stopping its
 * refresh thread first; every acquired table must have been released).
 * NULL allowed. */
void ph_keysource_free(ph_keysource *ks);

/* ---- using keys: the same for both kinds ------------------------------------------ */

/* The table to look keys up in now, held until ph_keysource_release: the key
 * table itself, or a live source's current table (NULL while its keys are
 * unavailable). Cheap: a mutex-protected reference count, no I/O. */
const ph_keysource *ph_keysource_acquire(const ph_keysource *ks);
void ph_keysource_release(const ph_keysource *ks, const ph_keysource *table); /* NULL allowed */

/* Whether a statement must be refused up front because the keys are
 * unavailable: always for one that needs keys (needs_keys: it names a
 * protected table), and for any other too under keys.when_unavailable:
 * refuse. 1 with the client-facing message in msg (never key material),
 * else 0. Lock-free when the keys are there; always 0 for a key table. */
int ph_keysource_refusal(const ph_keysource *ks, int needs_keys, char *msg, size_t msglen);

/* The client-facing "keys are unavailable" message (what refusal gives). */
void ph_keysource_unavailable_message(const ph_keysource *ks, int needs_keys, char *msg,
                                      size_t msglen);

/* ---- live sources (keysource_live.c) ---------------------------------------------- */

/* What a load attempt returns besides 0: the KEK provider failed (retried,
 * the proxy starts without keys) or the keyring cannot serve the schema
 * (a configuration error: the proxy does not start). */
#define PH_KS_FAIL_PROVIDER (-1)
#define PH_KS_FAIL_KEYRING  (-2)

/* Makes a new key table into *out: pin NULL = every live version of the
 * schema's key domains; else exactly the versions pin lists (domain,
 * version, key id, active flag), except versions retired meanwhile. Runs on
 * the refresh thread, without locks; may block (KEK provider). Returns 0 or
 * PH_KS_FAIL_* with a reason in err. */
typedef int (*ph_keysource_load_fn)(void *arg, const ph_keysource *pin, ph_keysource **out,
                                    char *err, size_t errlen);

typedef struct ph_keysource_live_opts {
    unsigned ttl_ms;           /* > 0: a table serves this long after its load */
    int refuse_all;            /* keys.when_unavailable: refuse */
    ph_keysource_load_fn load; /* required */
    void *load_arg;
    void (*load_arg_free)(void *arg); /* at ph_keysource_free; NULL = none */
    uint64_t (*now_ms)(void);         /* monotonic ms; NULL = CLOCK_MONOTONIC_COARSE */
    unsigned backoff_min_ms;          /* first retry delay; 0 = 1000 */
    unsigned backoff_max_ms;          /* longest; 0 = min(30000, max(backoff_min, ttl/2)) */
} ph_keysource_live_opts;

/* The proxy's source: the default loader (keyring + KEK provider of kc,
 * audited "dek.load" events) and the first load attempt, at once. NULL with
 * a reason only when the keyring cannot serve the schema; a KEK provider
 * that fails gives a source whose keys are unavailable (logged), which the
 * refresh thread keeps retrying. kc and schema must outlive it. */
ph_keysource *ph_keysource_open_live(const struct ph_keys_config *kc,
                                     const struct ph_schema *schema, char *err, size_t errlen);

/* A live source over any loader (tests); no load attempted yet. */
ph_keysource *ph_keysource_live_new(const ph_keysource_live_opts *o, char *err, size_t errlen);

/* One load attempt now: 0 (the new table serves), or PH_KS_FAIL_* with the
 * reason in err (NULL allowed). */
int ph_keysource_refresh_now(ph_keysource *ks, char *err, size_t errlen);

/* Does what is due at the clock's now — a refresh or retry, wiping expired
 * keys — and returns the milliseconds until something is due next. The
 * refresh thread's loop; tests call it with an injected clock. */
uint64_t ph_keysource_tick(ph_keysource *ks);

/* Starts / stops (and joins) the refresh thread. start: 0 or -1. Stopping
 * waits for a KEK call in progress (bounded by the provider's timeout). */
int ph_keysource_start(ph_keysource *ks);
void ph_keysource_stop(ph_keysource *ks);

typedef struct ph_keysource_stats {
    uint64_t loads_ok;     /* load attempts that succeeded */
    uint64_t loads_failed; /* ... that failed */
    uint64_t expiries;     /* times the keys expired (were dropped) */
    uint64_t tables_freed; /* tables wiped and freed (last reference gone) */
    int available;         /* a table is current */
} ph_keysource_stats;

/* All zero for a key table. */
void ph_keysource_get_stats(const ph_keysource *ks, ph_keysource_stats *st);

#endif
