/*
 * keysource.h — field keys for the proxy: the bridge from the key layer
 * (keyring + KEK + DEK cache, src/keys/) to the crypto layer (ph_field_key).
 *
 * Owns: one ph_field_key per (key domain, key id). At open it loads, for
 * every key domain the encryption schema uses, the active DEK version and
 * every other live version, unwrapping them through the KEK once and
 * deriving their field keys; the proxy's hot path then only reads an
 * immutable table (no locks, no I/O on an event loop). A domain whose key
 * cannot be loaded makes open fail (fail closed: the proxy refuses to start
 * rather than run with a column it cannot protect).
 *
 * Thread-safe after open: any number of workers may look keys up at once.
 */
#ifndef PHANTOM_ENGINE_KEYSOURCE_H
#define PHANTOM_ENGINE_KEYSOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/field.h"

typedef struct ph_keysource ph_keysource;
struct ph_keys_config;
struct ph_schema;

/* Loads the keys of every key domain of schema from the configured keyring
 * and KEK provider. NULL with a reason in err (never key material). */
ph_keysource *ph_keysource_open(const struct ph_keys_config *kc, const struct ph_schema *schema,
                                char *err, size_t errlen);

/* For tests and tools: an empty keysource filled with ph_keysource_add. */
ph_keysource *ph_keysource_new(void);
/* Adds the key of (domain, key_id) made from dek (copied into a field key,
 * the caller wipes its copy); active = it is the one new writes use. */
int ph_keysource_add(ph_keysource *ks, const char *domain, uint32_t key_id,
                     const uint8_t dek[PH_FIELD_DEK_LEN], int active);

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

void ph_keysource_free(ph_keysource *ks); /* NULL allowed; wipes every key */

#endif
