/*
 * token_cache.h — a bounded, thread-safe LRU map (domain, key bytes) ->
 * (value bytes, 32-bit tag) for the token service (token.c).
 *
 * Owns: the two in-memory caches of one proxy — value digest -> token and
 * token -> plaintext value — their bound (least recently used entry evicted
 * first), and wiping every entry (key and value bytes) with OPENSSL_cleanse
 * when it is evicted, replaced, cleared or freed. A capacity of 0 makes a
 * cache that stores nothing.
 */
#ifndef PHANTOM_TOKEN_CACHE_H
#define PHANTOM_TOKEN_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"

typedef struct ph_tcache ph_tcache;

ph_tcache *ph_tcache_new(size_t capacity); /* NULL when out of memory */
void ph_tcache_free(ph_tcache *c);         /* NULL allowed */

/* 1 with the value appended to out and *tag set (the entry becomes the most
 * recent), 0 when absent, -1 when out of memory. */
int ph_tcache_get(ph_tcache *c, const char *domain, const void *key, size_t klen, ph_buf *out,
                  uint32_t *tag);
/* Stores (replacing an entry of the same key); best effort: nothing happens
 * when memory runs out. */
void ph_tcache_put(ph_tcache *c, const char *domain, const void *key, size_t klen, const void *val,
                   size_t vlen, uint32_t tag);
void ph_tcache_clear(ph_tcache *c);
size_t ph_tcache_count(ph_tcache *c);

#endif
