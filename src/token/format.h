/*
 * format.h — token formats: generating a random token for a value, and the
 * rules each format keeps (src/token/; the vault and the cache are token.h's).
 *
 * Owns: what a token of each ph_token_format (schema.h) looks like, checking
 * that a value can be tokenized in a format, drawing tokens from a CSPRNG
 * without bias (rejection sampling), the Luhn check, and the "miss" token a
 * lookup of a never-tokenized value is rewritten to.
 *
 *   opaque  "tok_" + 22 base62 characters (~131 bits); any value
 *   digits  as many digits as the value (4..64 digits), never equal to it
 *   alnum   the value's length and character classes: each ASCII letter
 *           becomes a random letter of the same case, each digit a random
 *           digit, other printable ASCII but '~' and '\' is kept; at least
 *           4 letters/digits
 *   card    13..19 digits: the last four kept, the others random except one
 *           (the fifth from the right) that makes the whole token pass the
 *           Luhn check; never equal to the value
 *   email   local@domain: a random 16-character local part [a-z0-9], the
 *           domain kept (letters, digits, '.', '-'; up to 253 bytes)
 *
 * Only alnum tokens can contain a quote (kept from the value); no token
 * contains a backslash, a NUL, a control character or '~' (the miss token's
 * mark, so a miss token never equals a token). Token texts are pure functions of the random
 * bytes drawn and of the value's kept parts: nothing else of the value is in
 * them. Messages never contain the value.
 */
#ifndef PHANTOM_TOKEN_FORMAT_H
#define PHANTOM_TOKEN_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "schema/schema.h"

#define PH_TOKEN_MAX_LEN       320 /* longest token of any format (email: 16 + 1 + 253) */
#define PH_TOKEN_OPAQUE_CHARS  22
#define PH_TOKEN_OPAQUE_PREFIX "tok_"
#define PH_TOKEN_MISS_PREFIX   "~miss~" /* no format produces '~' */

/* A source of random bytes: fills buf[0..n) and returns 0, or -1. The
 * default (ph_token_rng_default) is OpenSSL's CSPRNG; tests inject others. */
typedef int (*ph_token_rng_fn)(void *ud, uint8_t *buf, size_t n);
int ph_token_rng_default(void *ud, uint8_t *buf, size_t n);

/* 0 when v[0..len) can be tokenized in format f, else -1 with a reason
 * ("card numbers have 13 to 19 digits") in why. */
int ph_token_format_check(ph_token_format f, const uint8_t *v, size_t len, char *why,
                          size_t whylen);

/* A fresh random token for v in format f (v must pass the check), never
 * equal to v, NUL-terminated in out[0..PH_TOKEN_MAX_LEN + 1). Returns its
 * length, or -1 (the RNG failed, or no different token was drawn in 64
 * attempts) with a reason in why. */
int ph_token_generate(ph_token_format f, const uint8_t *v, size_t len, ph_token_rng_fn rng,
                      void *ud, char out[PH_TOKEN_MAX_LEN + 1], char *why, size_t whylen);

/* A token no format produces ("~miss~" + 22 base62): what an equality lookup
 * of a value that was never tokenized compares with, so it matches no row.
 * Returns its length or -1. */
int ph_token_miss(ph_token_rng_fn rng, void *ud, char out[PH_TOKEN_MAX_LEN + 1]);

/* 1 when t[0..len) has the shape of a token of format f (for checks and
 * tests; a well-formed token is not necessarily in the vault). */
int ph_token_wellformed(ph_token_format f, const char *t, size_t len);

/* 1 when the digits d[0..len) pass the Luhn check (len >= 2, digits only). */
int ph_luhn_valid(const char *d, size_t len);

/* "opaque", "digits", "alnum", "card", "email". */
const char *ph_token_format_name(ph_token_format f);

#endif
