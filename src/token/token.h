/*
 * token.h — the token service of one proxy: tokenization (value -> token)
 * and detokenization (token -> value) over a vault (vault.h), with the
 * formats of format.h and an in-memory cache (token_cache.h).
 *
 * Owns the cryptographic composition of a vault record (all from
 * src/crypto; nothing new):
 *
 *   lookup = SHA-256(deterministic AES-256-SIV envelope of the value under
 *            the domain's field key)      — keyed: the vault cannot test a
 *            guess without the DEK; one lookup per live key version
 *   sealed = randomized AES-256-GCM envelope (ph_field_encrypt) under the
 *            domain's active field key of  "PHT1" | u16 token length |
 *            token | value  — the envelope's associated data binds the key
 *            domain and key id, the plaintext binds the token (checked with
 *            CRYPTO_memcmp when opened), so a sealed value moved to another
 *            record or domain does not open
 *
 * Keys come from the caller (ph_token_keys): the key domain's live field
 * keys and a lookup by key id. When a key is destroyed (a retired DEK, a
 * shredded tenant's DEK) the tokens sealed under it can no longer be
 * detokenized, and cache entries are only used while their key still exists.
 *
 * Same value -> same token per domain: a tokenization first looks the
 * value's lookup up under every live key (a DEK rotation keeps its tokens),
 * then creates a record (active key) with a fresh random token; a token
 * that exists already in the domain is drawn again (at most 32 times); a
 * concurrent creation of the same value by another proxy is resolved by the
 * vault's unique lookup (the loser reads the winner's token back).
 *
 * Thread-safe: any number of threads may call at once. Cache hits take the
 * cache's mutex only; vault calls are serialized by the service's mutex and
 * block the calling thread (SQLite: a local file; PostgreSQL: a round trip).
 */
#ifndef PHANTOM_TOKEN_TOKEN_H
#define PHANTOM_TOKEN_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"
#include "crypto/field.h"
#include "schema/schema.h"
#include "token/format.h"
#include "token/vault.h"

typedef struct ph_tokens ph_tokens;

/* An outcome for the client: SQLSTATE and a message without any value. */
typedef struct ph_token_err {
    char sqlstate[6];
    char message[256];
} ph_token_err;

/* The start of the message of a token the domain's vault does not hold
 * (XX001): for a tenant's domain, typically another tenant's token. */
#define PH_TOKEN_UNKNOWN_MSG "the token is not in the token vault"

/* SQLSTATE of "the token vault is unavailable" (as for unavailable keys). */
#define PH_TOKEN_VAULT_SQLSTATE "58000"

/* The caller's keys for one domain (what a token of the domain is sealed
 * and looked up with). */
typedef struct ph_token_keys {
    const char *domain;              /* the vault domain: the key domain */
    const ph_field_key *const *live; /* every live key, the active (write) key first */
    size_t nlive;
    /* The key an envelope names (its key id), NULL when unknown/destroyed. */
    const ph_field_key *(*by_id)(void *ud, uint32_t key_id);
    void *ud;
} ph_token_keys;

/* Takes the vault (closed by ph_tokens_free). cache_size: entries per
 * direction (0: no cache). NULL when out of memory (the vault is closed). */
ph_tokens *ph_tokens_new(ph_vault *vault, size_t cache_size);
void ph_tokens_free(ph_tokens *t); /* NULL allowed */

/* Tests: the random source of new tokens (default: OpenSSL's CSPRNG). */
void ph_tokens_set_rng(ph_tokens *t, ph_token_rng_fn fn, void *ud);

/*
 * The token of v[0..len) in format f for domain k, appended to out.
 * create 1 (a stored value: INSERT, UPDATE SET, COPY FROM): makes a record
 * when there is none; the value must suit the format (22P02 otherwise).
 * create 0 (a compared value: WHERE col = v): never writes to the vault; a
 * value never tokenized gets a miss token (format.h) that matches no row.
 * Returns 1 (a real token), 0 (a miss token), or -1 with err.
 */
int ph_tokens_tokenize(ph_tokens *t, const ph_token_keys *k, ph_token_format f, const uint8_t *v,
                       size_t len, int create, ph_buf *out, ph_token_err *err);

/* The value of token tok[0..len) of domain k, appended to out. An unknown
 * token, a sealed value that does not open and a destroyed key are errors
 * (XX001): a token is never passed off as a value. */
int ph_tokens_detokenize(ph_tokens *t, const ph_token_keys *k, const char *tok, size_t len,
                         ph_buf *out, ph_token_err *err);

/* Empties both caches (wiping them); for benchmarks and tests. */
void ph_tokens_cache_clear(ph_tokens *t);

typedef struct ph_tokens_stats {
    uint64_t created;     /* records made */
    uint64_t misses;      /* compared values that were never tokenized */
    uint64_t collisions;  /* token draws that existed already */
    uint64_t cache_hits;  /* either direction */
    uint64_t vault_calls; /* find/insert calls */
    size_t cached_values; /* token -> value entries now */
    size_t cached_tokens; /* value -> token entries now */
} ph_tokens_stats;

void ph_tokens_get_stats(ph_tokens *t, ph_tokens_stats *st);

#endif
