/*
 * http_vault.h — reading OpenBao / Vault HTTP API response bodies (jansson).
 *
 * Owns: parsing a response body into a JSON object, the typed accessors the
 * Transit client needs ("data.<field>", "auth.<field>", the first entry of
 * "errors", sanitised for messages), and wiping every string of a parsed
 * document before it is freed (Transit answers carry plaintext keys and
 * login answers carry tokens), and the two value checks of Transit answers
 * (ciphertext syntax, base64 of a 32-byte key). Pure functions: the Transit
 * fuzz target drives them with arbitrary bytes.
 */
#ifndef PHANTOM_KEYS_HTTP_VAULT_H
#define PHANTOM_KEYS_HTTP_VAULT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define PH_VAULT_MAX_CIPHERTEXT 4096

/* Parses body[0..len) as a JSON object. Returns the document (free it with
 * ph_vault_wipe_free) or NULL with a reason in err (never quoting the body). */
json_t *ph_vault_parse(const char *body, size_t len, char *err, size_t errlen);

/* Wipes every string in the document (keys stay), then releases it. NULL allowed. */
void ph_vault_wipe_free(json_t *doc);

/* doc.<section>.<field> as a string, or NULL when missing / not a string. */
const char *ph_vault_get_string(const json_t *doc, const char *section, const char *field,
                                size_t *len);

/* doc.<section>.<field> as a non-negative integer: 0, or -1 when missing / not one. */
int ph_vault_get_uint(const json_t *doc, const char *section, const char *field,
                      unsigned long long *out);

/*
 * Copies the first string of doc.errors into out, keeping printable ASCII
 * and replacing anything else by '?', truncated to fit (always
 * NUL-terminated). Empty string when there is none. doc may be NULL.
 */
void ph_vault_first_error(const json_t *doc, char *out, size_t outlen);

/*
 * 1 when s[0..len) is a Transit ciphertext "vault:v<1-9 digits>:<base64
 * alphabet>" of at most PH_VAULT_MAX_CIPHERTEXT bytes, else 0. Strict, so a
 * checked value can be put into a JSON string without escaping.
 */
int ph_vault_ciphertext_ok(const uint8_t *s, size_t len);

/* Decodes standard base64 of exactly 32 bytes (44 characters, one '=' pad)
 * into out. Returns 0, or -1 with out untouched. Wipes its scratch copy. */
int ph_vault_decode_key32(const char *b64, size_t len, uint8_t out[32]);

#endif
