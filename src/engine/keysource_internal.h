/*
 * keysource_internal.h — what keysource.c (key tables, loading) and
 * keysource_live.c (live sources, refresh) share; not part of the API (see
 * keysource.h).
 *
 * One struct serves both kinds: a key table has entries (and, when a live
 * source published it, a reference count and the live source's "tables
 * freed" counter); a live source has no entries, only its ks_live.
 */
#ifndef PHANTOM_ENGINE_KEYSOURCE_INTERNAL_H
#define PHANTOM_ENGINE_KEYSOURCE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/keysource.h"
#include "keys/keyring.h"
#include "schema/schema.h"

/* A field key, shared by every table that holds it (a table made for a new
 * tenant copies the current one's entries, not their keys); wiped and
 * freed with its last holder. */
typedef struct ks_key {
    atomic_uint refs;
    ph_field_key *key;
} ks_key;

typedef struct ks_entry {
    char *domain;
    uint32_t version; /* 0 = unknown (ph_keysource_add) */
    uint32_t key_id;
    int active;
    ks_key *key; /* NULL in a skeleton */
} ks_entry;

/* What the keyring said, when the table was loaded, about one DEK version of
 * a tenant domain (loaded or not): who owns the key id and whether it is
 * destroyed. Sorted by key id. */
typedef struct ks_meta {
    uint32_t key_id;
    bool retired;  /* the version is retired: its key is destroyed */
    bool shredded; /* its domain's tenant was crypto-shredded */
    char tenant[PH_TENANT_MAX + 1];
} ks_meta;

typedef struct ks_live ks_live;

struct ph_keysource {
    ks_entry *v;
    size_t n, cap;
    /* v's indices sorted by (domain, order added) and by key id: lookups are
     * binary searches, a table may hold the keys of many tenants */
    uint32_t *by_domain, *by_id;
    ks_meta *meta; /* NULL: no keyring information (ph_keysource_new) */
    size_t nmeta;
    atomic_uint refs;            /* a published table: its references */
    atomic_uint_fast64_t *freed; /* a published table: counted when it is freed */
    ks_live *live;               /* non-NULL: a live source */
};

/* keysource.c */
void ks_table_hold(const ph_keysource *t);
void ks_table_drop(const ph_keysource *t); /* frees (wipes) at the last reference */
/* A copy of t's entries without keys (a refresh's pin); NULL on OOM. */
ph_keysource *ks_skeleton(const ph_keysource *t);
/* A live source's outer object; NULL on OOM. */
ph_keysource *ks_wrap_live(ks_live *l);
/* A new table: t's entries (sharing their keys) and add's after them
 * (entries of add whose key id t has are skipped), with add's keyring
 * information when it has some, else t's. NULL on OOM. */
ph_keysource *ks_merge(const ph_keysource *t, const ph_keysource *add);
/* Appends add's entries as skeleton entries to pin (those it lacks): 0 / -1. */
int ks_pin_add(ph_keysource *pin, const ph_keysource *add);
/* Records the keyring's tenant key ids in t (replacing what it had): 0 / -1. */
int ks_set_meta(ph_keysource *t, const ph_keyring *kr);
/* Adds a skeleton (dek NULL) or keyed entry. */
int ks_add_entry(ph_keysource *ks, const char *domain, uint32_t version, uint32_t key_id,
                 const uint8_t *dek, int active);

/* The proxy's loader (keysource.c): the configuration it loads from and the
 * KEK provider it keeps between attempts. */
struct ph_keys_config;
struct ph_kek;
struct ph_kek_set;
typedef struct ks_loader {
    const struct ph_keys_config *kc;
    const ph_schema *schema;
    struct ph_kek *kek;             /* kept between attempts; dropped after a provider failure */
    struct ph_kek_set *tenant_keks; /* tenants' own KEKs (kek_tenant.h), opened on demand */
    uint64_t noted_gen;             /* keyring generation whose changes were logged */
    int noted;
} ks_loader;

/* The KEK that wraps the DEKs of key domain `domain`: the loader's primary,
 * or a tenant's own (create=1: its Transit key made when missing). */
struct ph_kek *ks_loader_kek(ks_loader *l, const char *domain, int create, char *err,
                             size_t errlen);

/* The key domains of the schema's tenant-keyed columns (each once): stores
 * up to max in out, returns how many there are. */
size_t ks_tenant_bases(const ph_schema *schema, const char **out, size_t max);
/* Unwraps every version plan lists from kr (taken: freed) with the loader's
 * KEK provider (opened if needed) into a new table with kr's tenant
 * information: 0 or PH_KS_FAIL_*. */
int ks_unwrap_keyring(ks_loader *l, ph_keyring *kr, const ph_keysource *plan, ph_keysource **out,
                      char *err, size_t errlen);

/* keysource_tenant.c: the proxy's ph_keysource_tenant_fn (arg: ks_loader). */
int ks_tenant_load(void *arg, const char *tenant, int create, ph_keysource **out, char *err,
                   size_t errlen);

/* keysource_live.c */
const ph_keysource *ks_live_acquire(ks_live *l);
int ks_live_tenant(ks_live *l, const char *tenant, const char *domain, int create, char *err,
                   size_t errlen);
int ks_live_refusal(ks_live *l, int needs_keys, char *msg, size_t msglen);
void ks_live_message(ks_live *l, int needs_keys, char *msg, size_t msglen);
void ks_live_stats(ks_live *l, ph_keysource_stats *st);
void ks_live_last_error(ks_live *l, char *buf, size_t len);
void ks_live_free(ks_live *l); /* stops the thread, drops the table */

#endif
