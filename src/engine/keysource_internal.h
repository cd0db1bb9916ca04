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
#include <stddef.h>
#include <stdint.h>

#include "engine/keysource.h"

typedef struct ks_entry {
    char *domain;
    uint32_t version; /* 0 = unknown (ph_keysource_add) */
    uint32_t key_id;
    int active;
    ph_field_key *key; /* NULL in a skeleton */
} ks_entry;

typedef struct ks_live ks_live;

struct ph_keysource {
    ks_entry *v;
    size_t n, cap;
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

/* keysource_live.c */
const ph_keysource *ks_live_acquire(ks_live *l);
int ks_live_refusal(ks_live *l, int needs_keys, char *msg, size_t msglen);
void ks_live_message(ks_live *l, int needs_keys, char *msg, size_t msglen);
void ks_live_stats(ks_live *l, ph_keysource_stats *st);
void ks_live_free(ks_live *l); /* stops the thread, drops the table */

#endif
