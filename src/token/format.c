/*
 * format.c — token formats; see format.h.
 *
 * Random characters come from a small buffered stream over the RNG, one
 * byte per draw, rejection-sampled so that every character of an alphabet
 * of m symbols has probability exactly 1/m (a byte b is used only when
 * b < 256 - 256 % m).
 */
#include "token/format.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/err.h"

#define MAX_ATTEMPTS 64

static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
static const char lower36[] = "abcdefghijklmnopqrstuvwxyz0123456789";

int ph_token_rng_default(void *ud, uint8_t *buf, size_t n)
{
    (void)ud;
    return n > (size_t)0x7fffffff || RAND_bytes(buf, (int)n) != 1 ? -1 : 0;
}

const char *ph_token_format_name(ph_token_format f)
{
    switch (f) {
    case PH_TOKEN_OPAQUE:
        return "opaque";
    case PH_TOKEN_DIGITS:
        return "digits";
    case PH_TOKEN_ALNUM:
        return "alnum";
    case PH_TOKEN_CARD:
        return "card";
    case PH_TOKEN_EMAIL:
        return "email";
    }
    return "unknown";
}

/* ---- the random stream ---------------------------------------------------------------- */

typedef struct rstream {
    ph_token_rng_fn fn;
    void *ud;
    uint8_t buf[64];
    size_t pos, n;
    int failed;
} rstream;

static void rs_init(rstream *r, ph_token_rng_fn fn, void *ud)
{
    memset(r, 0, sizeof *r);
    r->fn = fn ? fn : ph_token_rng_default;
    r->ud = ud;
}

static void rs_wipe(rstream *r)
{
    OPENSSL_cleanse(r->buf, sizeof r->buf);
}

/* A uniform index below m (2..256), or -1 when the RNG failed. */
static int rs_below(rstream *r, unsigned m)
{
    const unsigned limit = 256u - 256u % m;
    for (;;) {
        if (r->failed)
            return -1;
        if (r->pos == r->n) {
            if (r->fn(r->ud, r->buf, sizeof r->buf) != 0) {
                r->failed = 1;
                return -1;
            }
            r->pos = 0;
            r->n = sizeof r->buf;
        }
        unsigned b = r->buf[r->pos++];
        if (b < limit)
            return (int)(b % m);
    }
}

static int rs_fill(rstream *r, char *out, size_t n, const char *alphabet, unsigned m)
{
    for (size_t i = 0; i < n; i++) {
        int k = rs_below(r, m);
        if (k < 0)
            return -1;
        out[i] = alphabet[k];
    }
    return 0;
}

/* ---- value checks --------------------------------------------------------------------- */

static int is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

static int is_alpha(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int all_digits(const uint8_t *v, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_digit(v[i]))
            return 0;
    return 1;
}

static int domain_char(uint8_t c)
{
    return is_alpha(c) || is_digit(c) || c == '.' || c == '-';
}

/* The offset of the '@' that starts the domain, or -1 when v is not
 * local@domain with a valid domain. */
static long email_at(const uint8_t *v, size_t len)
{
    const uint8_t *at = NULL;
    for (size_t i = len; i > 0; i--)
        if (v[i - 1] == '@') {
            at = v + i - 1;
            break;
        }
    if (!at || at == v)
        return -1;
    size_t dl = len - (size_t)(at - v) - 1;
    if (dl == 0 || dl > 253)
        return -1;
    for (size_t i = 0; i < dl; i++)
        if (!domain_char(at[1 + i]))
            return -1;
    return (long)(at - v);
}

static size_t alnum_count(const uint8_t *v, size_t len, int *printable)
{
    size_t n = 0;
    *printable = 1;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < 0x20 || v[i] > 0x7e || v[i] == '~' || v[i] == '\\') /* '~': miss tokens */
            *printable = 0;
        n += is_alpha(v[i]) || is_digit(v[i]);
    }
    return n;
}

int ph_token_format_check(ph_token_format f, const uint8_t *v, size_t len, char *why, size_t whylen)
{
    int printable;
    switch (f) {
    case PH_TOKEN_OPAQUE:
        return 0;
    case PH_TOKEN_DIGITS:
        if (len < 4 || len > 64 || !all_digits(v, len))
            return ph_errf(why, whylen, "token format digits needs 4 to 64 digits");
        return 0;
    case PH_TOKEN_ALNUM:
        if (len > 256 || alnum_count(v, len, &printable) < 4 || !printable)
            return ph_errf(why, whylen,
                           "token format alnum needs printable ASCII other than '~' and '\\' with "
                           "at least 4 letters or digits, at most 256 characters");
        return 0;
    case PH_TOKEN_CARD:
        if (len < 13 || len > 19 || !all_digits(v, len))
            return ph_errf(why, whylen, "token format card needs a card number of 13 to 19 digits");
        return 0;
    case PH_TOKEN_EMAIL:
        if (email_at(v, len) < 0)
            return ph_errf(why, whylen,
                           "token format email needs local@domain (domain: letters, digits, '.' "
                           "and '-')");
        return 0;
    }
    return ph_errf(why, whylen, "unknown token format");
}

/* ---- Luhn ------------------------------------------------------------------------------ */

/* The Luhn sum of d[0..len) counted as if the rightmost digit were at
 * position `shift` from the right (0: d's last digit is the check digit). */
static unsigned luhn_sum(const char *d, size_t len, size_t shift)
{
    unsigned sum = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned x = (unsigned)(d[len - 1 - i] - '0');
        if ((i + shift) % 2 == 1) {
            x *= 2;
            if (x > 9)
                x -= 9;
        }
        sum += x;
    }
    return sum;
}

int ph_luhn_valid(const char *d, size_t len)
{
    if (len < 2 || !all_digits((const uint8_t *)d, len))
        return 0;
    return luhn_sum(d, len, 0) % 10 == 0;
}

/* ---- generators ------------------------------------------------------------------------ */

static int gen_opaque(rstream *r, char *out)
{
    size_t p = strlen(PH_TOKEN_OPAQUE_PREFIX);
    memcpy(out, PH_TOKEN_OPAQUE_PREFIX, p);
    if (rs_fill(r, out + p, PH_TOKEN_OPAQUE_CHARS, base62, 62) != 0)
        return -1;
    return (int)(p + PH_TOKEN_OPAQUE_CHARS);
}

static int gen_digits(rstream *r, size_t len, char *out)
{
    return rs_fill(r, out, len, base62, 10) == 0 ? (int)len : -1;
}

static int gen_alnum(rstream *r, const uint8_t *v, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++) {
        int k;
        if (is_digit(v[i]))
            k = rs_below(r, 10);
        else if (is_alpha(v[i]))
            k = rs_below(r, 26);
        else {
            out[i] = (char)v[i];
            continue;
        }
        if (k < 0)
            return -1;
        out[i] = (char)(is_digit(v[i]) ? '0' + k : v[i] >= 'a' && v[i] <= 'z' ? 'a' + k : 'A' + k);
    }
    return (int)len;
}

/* Random digits except the last four (kept) and the fifth from the right,
 * which is chosen so that the Luhn sum of the whole token is 0 mod 10: that
 * digit is not doubled (an even distance from the check digit), so exactly
 * one value fits, and it is uniform because the others are. */
static int gen_card(rstream *r, const uint8_t *v, size_t len, char *out)
{
    size_t fix = len - 5;
    if (rs_fill(r, out, fix, base62, 10) != 0)
        return -1;
    out[fix] = '0';
    memcpy(out + len - 4, v + len - 4, 4);
    unsigned sum = luhn_sum(out, len, 0);
    out[fix] = (char)('0' + (10 - sum % 10) % 10);
    return (int)len;
}

static int gen_email(rstream *r, const uint8_t *v, size_t len, char *out)
{
    long at = email_at(v, len);
    size_t dl = len - (size_t)at - 1;
    if (at < 0 || rs_fill(r, out, 16, lower36, 36) != 0)
        return -1;
    out[16] = '@';
    memcpy(out + 17, v + at + 1, dl);
    return (int)(17 + dl);
}

static int gen_once(ph_token_format f, rstream *r, const uint8_t *v, size_t len, char *out)
{
    switch (f) {
    case PH_TOKEN_OPAQUE:
        return gen_opaque(r, out);
    case PH_TOKEN_DIGITS:
        return gen_digits(r, len, out);
    case PH_TOKEN_ALNUM:
        return gen_alnum(r, v, len, out);
    case PH_TOKEN_CARD:
        return gen_card(r, v, len, out);
    case PH_TOKEN_EMAIL:
        return gen_email(r, v, len, out);
    }
    return -1;
}

int ph_token_generate(ph_token_format f, const uint8_t *v, size_t len, ph_token_rng_fn rng,
                      void *ud, char out[PH_TOKEN_MAX_LEN + 1], char *why, size_t whylen)
{
    if (ph_token_format_check(f, v, len, why, whylen) != 0)
        return -1;
    rstream r;
    rs_init(&r, rng, ud);
    int n = -1;
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        n = gen_once(f, &r, v, len, out);
        if (n < 0)
            break;
        out[n] = '\0';
        if ((size_t)n != len || CRYPTO_memcmp(out, v, len) != 0)
            break;
        n = -2; /* equal to the value: draw again */
    }
    rs_wipe(&r);
    if (n == -2)
        return ph_errf(why, whylen, "could not draw a token different from the value");
    if (n < 0)
        return ph_errf(why, whylen, "the random number generator failed");
    return n;
}

int ph_token_miss(ph_token_rng_fn rng, void *ud, char out[PH_TOKEN_MAX_LEN + 1])
{
    rstream r;
    size_t p = strlen(PH_TOKEN_MISS_PREFIX);
    rs_init(&r, rng, ud);
    memcpy(out, PH_TOKEN_MISS_PREFIX, p);
    int rc = rs_fill(&r, out + p, PH_TOKEN_OPAQUE_CHARS, base62, 62);
    rs_wipe(&r);
    if (rc != 0)
        return -1;
    out[p + PH_TOKEN_OPAQUE_CHARS] = '\0';
    return (int)(p + PH_TOKEN_OPAQUE_CHARS);
}

/* ---- shapes ------------------------------------------------------------------------------ */

static int all_in(const char *t, size_t len, const char *alphabet)
{
    for (size_t i = 0; i < len; i++)
        if (!t[i] || !strchr(alphabet, t[i]))
            return 0;
    return 1;
}

int ph_token_wellformed(ph_token_format f, const char *t, size_t len)
{
    size_t p = strlen(PH_TOKEN_OPAQUE_PREFIX);
    int printable;
    switch (f) {
    case PH_TOKEN_OPAQUE:
        return len == p + PH_TOKEN_OPAQUE_CHARS && memcmp(t, PH_TOKEN_OPAQUE_PREFIX, p) == 0 &&
               all_in(t + p, PH_TOKEN_OPAQUE_CHARS, base62);
    case PH_TOKEN_DIGITS:
        return len >= 4 && len <= 64 && all_digits((const uint8_t *)t, len);
    case PH_TOKEN_ALNUM:
        return len <= 256 && alnum_count((const uint8_t *)t, len, &printable) >= 4 && printable;
    case PH_TOKEN_CARD:
        return len >= 13 && len <= 19 && ph_luhn_valid(t, len);
    case PH_TOKEN_EMAIL:
        return len > 17 && t[16] == '@' && all_in(t, 16, lower36) &&
               email_at((const uint8_t *)t, len) == 16;
    }
    return 0;
}
