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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/field.h"
#include "keys/keyring.h"

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

/* Any key of the table by key id (unique in a keyring), with its key domain
 * in *domain (NULL allowed); NULL when the table does not hold it. */
const ph_field_key *ph_keysource_key_any(const ph_keysource *ks, uint32_t key_id,
                                         const char **domain);

/* ---- tenants ---------------------------------------------------------------------- */

/*
 * A tenant's DEKs are ordinary keyring domains "tenant:<T>/<domain>"
 * (keys/keyring.h). A key table loaded from the keyring holds every live
 * version of every tenant's domain of the schema's tenant-keyed columns
 * (shredded tenants excluded) and remembers, per key id of a tenant domain,
 * its tenant and whether the key is destroyed (retired), so that a value
 * can be told apart as another tenant's, or as unreadable since its tenant
 * was crypto-shredded, without holding that tenant's key.
 *
 * A live source grows at run time: ph_keysource_tenant_keys, for a tenant
 * the current table lacks, loads that tenant's domains from the keyring or
 * (create=1) creates the missing ones first — under the keyring's lock
 * (another proxy or the CLI may write it concurrently), one new DEK per
 * domain from the KEK provider, saved atomically, audited "dek.create" —
 * unwraps them (audited "dek.load") and publishes a new table: the current
 * one's entries (sharing their keys) plus the tenant's. One tenant load at
 * a time per proxy (single-flight: concurrent callers for the same tenant
 * find it loaded once they get their turn). Blocking (keyring file, KEK
 * provider): the caller's thread waits. Refreshes keep the tenants loaded
 * so far, add tenants another proxy created meanwhile, and drop the keys of
 * a tenant crypto-shredded meanwhile.
 */
#define PH_KS_TENANT_READY    0    /* the table has the tenant's write key for domain */
#define PH_KS_TENANT_ABSENT   1    /* no key of the tenant exists (create=0), or a key table */
#define PH_KS_TENANT_SHREDDED 2    /* the tenant was crypto-shredded: never re-created */
#define PH_KS_TENANT_FAILED   (-1) /* reason in err */

/* Makes the key of tenant for (base) key domain `domain` available in the
 * tables acquired from now on (see above). */
int ph_keysource_tenant_keys(const ph_keysource *ks, const char *tenant, const char *domain,
                             int create, char *err, size_t errlen);

/* What table t's keyring information says about key_id: 1 when it is a
 * version of a tenant's domain (its tenant copied into tenant; *destroyed:
 * the version is retired, its key gone), 0 when unknown. */
int ph_keysource_key_owner(const ph_keysource *t, uint32_t key_id, char tenant[PH_TENANT_MAX + 1],
                           bool *destroyed);

/* 1 when table t's keyring information says tenant was crypto-shredded. */
int ph_keysource_tenant_shredded(const ph_keysource *t, const char *tenant);

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
/* One more reference to an acquired table, given back by its own
 * ph_keysource_release: no lock, no clock (the table is already held). */
void ph_keysource_retain(const ph_keysource *ks, const ph_keysource *table);

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

/* Loads (create=1: first creates) the keys of every tenant-keyed domain of
 * tenant into *out, a new table with just those entries and the keyring's
 * tenant information. Returns a PH_KS_TENANT_* code (*out set only for
 * READY). Runs on the caller's thread under the source's load lock. */
typedef int (*ph_keysource_tenant_fn)(void *arg, const char *tenant, int create, ph_keysource **out,
                                      char *err, size_t errlen);

typedef struct ph_keysource_live_opts {
    unsigned ttl_ms;                    /* > 0: a table serves this long after its load */
    int refuse_all;                     /* keys.when_unavailable: refuse */
    ph_keysource_load_fn load;          /* required */
    ph_keysource_tenant_fn tenant_load; /* optional: NULL = tenants are only what load gives */
    void *load_arg;                     /* for both */
    void (*load_arg_free)(void *arg);   /* at ph_keysource_free; NULL = none */
    uint64_t (*now_ms)(void);           /* monotonic ms; NULL = CLOCK_MONOTONIC_COARSE */
    unsigned backoff_min_ms;            /* first retry delay; 0 = 1000 */
    unsigned backoff_max_ms;            /* longest; 0 = min(30000, max(backoff_min, ttl/2)) */
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

/* Why the keys are unavailable: the reason of the last failed load attempt
 * (no key material), or "" when they are available or for a key table. */
void ph_keysource_last_error(const ph_keysource *ks, char *buf, size_t len);

#endif
