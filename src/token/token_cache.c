/*
 * token_cache.c — the token service's LRU caches; see token_cache.h.
 *
 * A chained hash table (a power of two of buckets, at least the capacity)
 * plus a doubly linked recency list, under one mutex. Each entry is one
 * allocation holding the domain, the key and the value. The hash is FNV-1a
 * over a per-cache random seed, the domain and the key; keys are the
 * proxy's own random tokens or SHA-256 digests, never chosen by the
 * database, so chains stay short.
 */
#include "token/token_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/mem.h"

typedef struct tc_ent {
    struct tc_ent *next;         /* bucket chain */
    struct tc_ent *prev, *newer; /* recency list: prev = older */
    uint64_t hash;
    uint32_t tag;
    size_t dlen, klen, vlen;
    uint8_t bytes[]; /* domain, key, value */
} tc_ent;

struct ph_tcache {
    pthread_mutex_t mu;
    size_t cap, n, nb;
    tc_ent **b;
    tc_ent *oldest, *newest;
    uint64_t seed;
};

ph_tcache *ph_tcache_new(size_t capacity)
{
    ph_tcache *c = ph_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->cap = capacity;
    c->nb = 16;
    while (c->nb < capacity && c->nb < ((size_t)1 << 30))
        c->nb <<= 1;
    if (!(c->b = ph_calloc(c->nb, sizeof *c->b)) || pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c->b);
        free(c);
        return NULL;
    }
    if (RAND_bytes((unsigned char *)&c->seed, sizeof c->seed) != 1)
        c->seed = (uint64_t)(uintptr_t)c ^ 0x9e3779b97f4a7c15ull;
    return c;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t hash_of(const ph_tcache *c, const char *domain, size_t dlen, const void *key,
                        size_t klen)
{
    uint64_t h = fnv(0xcbf29ce484222325ull ^ c->seed, domain, dlen);
    h = fnv(h, key, klen);
    return h ^ (h >> 29);
}

static tc_ent **slot_of(ph_tcache *c, uint64_t h, const char *domain, size_t dlen, const void *key,
                        size_t klen)
{
    tc_ent **pp = &c->b[h & (c->nb - 1)];
    for (; *pp; pp = &(*pp)->next) {
        const tc_ent *e = *pp;
        if (e->hash == h && e->dlen == dlen && e->klen == klen &&
            memcmp(e->bytes, domain, dlen) == 0 &&
            (klen == 0 || memcmp(e->bytes + dlen, key, klen) == 0))
            return pp;
    }
    return pp;
}

static void list_unlink(ph_tcache *c, tc_ent *e)
{
    if (e->prev)
        e->prev->newer = e->newer;
    else
        c->oldest = e->newer;
    if (e->newer)
        e->newer->prev = e->prev;
    else
        c->newest = e->prev;
    e->prev = e->newer = NULL;
}

static void list_push(ph_tcache *c, tc_ent *e)
{
    e->prev = c->newest;
    e->newer = NULL;
    if (c->newest)
        c->newest->newer = e;
    else
        c->oldest = e;
    c->newest = e;
}

static void ent_free(tc_ent *e)
{
    OPENSSL_cleanse(e->bytes, e->dlen + e->klen + e->vlen);
    free(e);
}

/* Unlinks *pp (from its chain and the list) and frees it. */
static void drop(ph_tcache *c, tc_ent **pp)
{
    tc_ent *e = *pp;
    *pp = e->next;
    list_unlink(c, e);
    c->n--;
    ent_free(e);
}

int ph_tcache_get(ph_tcache *c, const char *domain, const void *key, size_t klen, ph_buf *out,
                  uint32_t *tag)
{
    if (!c || c->cap == 0)
        return 0;
    size_t dlen = strlen(domain) + 1; /* with its NUL */
    uint64_t h = hash_of(c, domain, dlen, key, klen);
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    tc_ent *e = *slot_of(c, h, domain, dlen, key, klen);
    if (e) {
        rc = ph_buf_append(out, e->bytes + e->dlen + e->klen, e->vlen) == 0 ? 1 : -1;
        if (tag)
            *tag = e->tag;
        list_unlink(c, e);
        list_push(c, e);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void ph_tcache_put(ph_tcache *c, const char *domain, const void *key, size_t klen, const void *val,
                   size_t vlen, uint32_t tag)
{
    if (!c || c->cap == 0)
        return;
    size_t dlen = strlen(domain) + 1; /* with its NUL */
    tc_ent *e = malloc(sizeof *e + dlen + klen + vlen);
    if (!e)
        return;
    e->hash = hash_of(c, domain, dlen, key, klen);
    e->tag = tag;
    e->dlen = dlen;
    e->klen = klen;
    e->vlen = vlen;
    memcpy(e->bytes, domain, dlen);
    if (klen)
        memcpy(e->bytes + dlen, key, klen);
    if (vlen)
        memcpy(e->bytes + dlen + klen, val, vlen);
    pthread_mutex_lock(&c->mu);
    tc_ent **pp = slot_of(c, e->hash, domain, dlen, key, klen);
    if (*pp)
        drop(c, pp);
    while (c->n >= c->cap && c->oldest) {
        tc_ent *old = c->oldest;
        drop(c, slot_of(c, old->hash, (const char *)old->bytes, old->dlen, old->bytes + old->dlen,
                        old->klen));
    }
    pp = slot_of(c, e->hash, domain, dlen, key, klen);
    e->next = NULL;
    *pp = e;
    list_push(c, e);
    c->n++;
    pthread_mutex_unlock(&c->mu);
}

void ph_tcache_clear(ph_tcache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->nb; i++)
        while (c->b[i])
            drop(c, &c->b[i]);
    pthread_mutex_unlock(&c->mu);
}

size_t ph_tcache_count(ph_tcache *c)
{
    if (!c)
        return 0;
    pthread_mutex_lock(&c->mu);
    size_t n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

void ph_tcache_free(ph_tcache *c)
{
    if (!c)
        return;
    ph_tcache_clear(c);
    pthread_mutex_destroy(&c->mu);
    free(c->b);
    free(c);
}
