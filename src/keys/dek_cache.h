/*
 * dek_cache.h — the cache of plaintext DEKs.
 *
 * Owns: plaintext DEKs in memory — in one ph_secure_alloc region (mlock'ed
 * where possible, MADV_DONTDUMP, wiped with OPENSSL_cleanse on eviction,
 * invalidation and free) — with a TTL, single-flight loading and a
 * fail-closed policy:
 *   - a miss runs the loader once per (domain, version), outside the cache
 *     lock; concurrent misses for the same key wait on a condition variable
 *     for that one load (no thundering herd against the KEK provider);
 *   - an expired entry is reloaded the same way (waiters wait; nobody gets
 *     the stale key once the TTL has passed);
 *   - a failed load gives every waiter the error and no key (never a zero
 *     key); it is remembered for neg_ttl_ms so a down KMS is not hammered;
 *   - callers hold a reference while they use a key; eviction of an entry
 *     in use is deferred until the last reference is released.
 * Thread-safe (one mutex + one condition variable).
 *
 * Also provides ph_dek_source, the standard loader: it finds the version in
 * a keyring, unwraps its primary wrapping with the KEK provider and records
 * a "dek.load" audit event (audit.h; a failed audit write fails the load).
 */
#ifndef PHANTOM_KEYS_DEK_CACHE_H
#define PHANTOM_KEYS_DEK_CACHE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "keys/kek.h"
#include "keys/keyring.h"

typedef struct ph_dek_cache ph_dek_cache;
typedef struct ph_dek_ref ph_dek_ref;

/* Loads the plaintext DEK of domain/version into dek_out[PH_DEK_LEN]; 0, or
 * -1 with a reason in err. Runs without the cache lock; may block. */
typedef int (*ph_dek_load_fn)(void *arg, const char *domain, uint32_t version, uint8_t *dek_out,
                              char *err, size_t errlen);

typedef struct ph_dek_cache_opts {
    unsigned ttl_ms;     /* > 0: how long a loaded DEK is served */
    unsigned neg_ttl_ms; /* how long a failed load is remembered; 0 = not at all */
    size_t capacity;     /* entries at most (incl. ones in use); 0 = 1024 */
    ph_dek_load_fn load; /* required */
    void *load_arg;
    uint64_t (*now_ms)(void); /* clock; NULL = CLOCK_MONOTONIC (tests inject one) */
} ph_dek_cache_opts;

typedef struct ph_dek_cache_stats {
    uint64_t hits;         /* served from the cache (incl. after waiting for a load) */
    uint64_t misses;       /* lookups that started a load */
    uint64_t loads_failed; /* loads that returned an error */
    uint64_t waits;        /* lookups that waited for another thread's load */
    size_t entries;        /* entries currently held (incl. in-use evicted ones) */
} ph_dek_cache_stats;

ph_dek_cache *ph_dek_cache_new(const ph_dek_cache_opts *o, char *err, size_t errlen);

/* Wipes every key and frees the cache. All references must be released. */
void ph_dek_cache_free(ph_dek_cache *c); /* NULL allowed */

/* Gets the DEK of domain/version: 0 with *ref set (release it), or -1 with
 * the reason in err and *ref NULL. */
int ph_dek_cache_get(ph_dek_cache *c, const char *domain, uint32_t version, ph_dek_ref **ref,
                     char *err, size_t errlen);

/* The PH_DEK_LEN key bytes; valid until ph_dek_cache_release. Do not copy
 * them into longer-lived memory. */
const uint8_t *ph_dek_ref_key(const ph_dek_ref *ref);

void ph_dek_cache_release(ph_dek_cache *c, ph_dek_ref *ref); /* NULL ref allowed */

/* Drops (wipes once unused) every entry of domain, or all when NULL — e.g.
 * after a keyring reload or a retire. */
void ph_dek_cache_invalidate(ph_dek_cache *c, const char *domain);

/* Wipes expired, unused entries now (also done on misses); returns how many. */
size_t ph_dek_cache_sweep(ph_dek_cache *c);

void ph_dek_cache_get_stats(ph_dek_cache *c, ph_dek_cache_stats *st);

/* ---- the keyring-backed loader ------------------------------------------ */

typedef struct ph_dek_source {
    pthread_rwlock_t lock; /* guards keyring (swapped on reload) */
    ph_keyring *keyring;   /* owned */
    ph_kek *kek;           /* not owned: the primary KEK provider */
    /* Optional (NULL after init): the KEK that unwraps a key domain's DEKs
     * when not every domain's is kek (a tenant's own KEK, kek_tenant.h);
     * NULL + err when it cannot be had. */
    ph_kek *(*kek_for)(void *arg, const char *domain, char *err, size_t errlen);
    void *kek_for_arg;
} ph_dek_source;

/* Takes ownership of keyring; kek must outlive the source. */
int ph_dek_source_init(ph_dek_source *s, ph_keyring *keyring, ph_kek *kek);
/* Installs a new keyring (owned) and returns the old one (caller frees it;
 * then invalidates the cache so retired versions are wiped). */
ph_keyring *ph_dek_source_replace(ph_dek_source *s, ph_keyring *keyring);
void ph_dek_source_destroy(ph_dek_source *s); /* frees the keyring */

/* The active version and key id of domain (what new writes use): 0 or -1. */
int ph_dek_source_active(ph_dek_source *s, const char *domain, uint32_t *version, uint32_t *key_id);

/* ph_dek_load_fn over a ph_dek_source (arg): refuses unknown and retired
 * versions, unwraps the primary wrapping, audits "dek.load". */
int ph_dek_source_load(void *arg, const char *domain, uint32_t version, uint8_t *dek_out, char *err,
                       size_t errlen);

#endif
