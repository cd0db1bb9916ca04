/*
 * encode_numeric.c — canonical encoding of numeric: the value as a
 * normalized decimal string (see encode.h). Parses PostgreSQL text input
 * (with exponent, NaN, ±Infinity) and binary format (ndigits, weight, sign,
 * dscale, base-10000 digits), formats back with a column's declared scale,
 * and converts to and from fixed-point int64 for OPE.
 */
#include "crypto/encode_impl.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#define NUM_POS         0x0000
#define NUM_NEG         0x4000
#define NUM_NAN         0xC000
#define NUM_PINF        0xD000
#define NUM_NINF        0xF000
#define NUM_DSCALE_MASK 0x3FFF
#define NUM_MAX_EXP     (INT_MAX / 2) /* exponent bound of numeric_in */
#define NUM_MAX_INT     131072        /* digits before the decimal point */
#define NUM_MAX_FRAC    16383         /* digits after it (NUMERIC_DSCALE_MAX) */
#define NUM_MAX_NDIGITS 3000          /* numeric_recv's bound on base-10000 digits */
#define NBASE           10000
#define MAX_FIXED_SCALE 18

/* Appends the canonical string of sign * 0.d[0]d[1]...d[n-1] * 10^p, i.e. a
 * digit string with p digits before the decimal point (p may be <= 0 or > n). */
static ph_enc_status put_canonical(const char *d, size_t n, long p, int neg, ph_buf *out)
{
    while (n && d[0] == '0') {
        d++;
        n--;
        p--;
    }
    while (n && d[n - 1] == '0')
        n--;
    if (n == 0)
        return ph_buf_append(out, "0", 1) == 0 ? PH_ENC_OK : PH_ENC_ENOMEM;
    long frac = (long)n - p;
    if (p > NUM_MAX_INT || frac > NUM_MAX_FRAC)
        return PH_ENC_ERANGE;
    size_t need = 3 + n + (size_t)(p < 0 ? -p : 0) + (size_t)(p > (long)n ? p - (long)n : 0);
    if (ph_buf_reserve(out, need) != 0)
        return PH_ENC_ENOMEM;
    uint8_t *w = out->data + out->len;
    size_t k = 0;
    if (neg)
        w[k++] = '-';
    if (p <= 0) {
        w[k++] = '0';
        w[k++] = '.';
        for (long i = 0; i < -p; i++)
            w[k++] = '0';
        memcpy(w + k, d, n);
        k += n;
    } else if (p >= (long)n) {
        memcpy(w + k, d, n);
        k += n;
        for (long i = (long)n; i < p; i++)
            w[k++] = '0';
    } else {
        memcpy(w + k, d, (size_t)p);
        k += (size_t)p;
        w[k++] = '.';
        memcpy(w + k, d + p, n - (size_t)p);
        k += n - (size_t)p;
    }
    out->len += k;
    return PH_ENC_OK;
}

static int ci_eq(const char *s, size_t len, const char *w)
{
    if (strlen(w) != len)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
        if (c != w[i])
            return 0;
    }
    return 1;
}

static ph_enc_status put_str(ph_buf *out, const char *s)
{
    return ph_buf_append(out, s, strlen(s)) == 0 ? PH_ENC_OK : PH_ENC_ENOMEM;
}

/* NaN, [+-]Infinity, [+-]inf: 1 if matched (appended), 0 if not. */
static int parse_special(const char *s, size_t len, ph_enc_status *st, ph_buf *out)
{
    if (ci_eq(s, len, "nan")) {
        *st = put_str(out, "NaN");
        return 1;
    }
    int neg = len && s[0] == '-';
    const char *r = len && (s[0] == '-' || s[0] == '+') ? s + 1 : s;
    size_t rl = len - (size_t)(r - s);
    if (ci_eq(r, rl, "infinity") || ci_eq(r, rl, "inf")) {
        *st = put_str(out, neg ? "-Infinity" : "Infinity");
        return 1;
    }
    return 0;
}

/* Reads [eE][+-]digits at s[*i..len); bounds the exponent like numeric_in
 * (|e| < INT_MAX / 2, "value overflows numeric format"). */
static ph_enc_status parse_exponent(const char *s, size_t len, size_t *i, long *e)
{
    size_t k = *i + 1;
    int neg = 0;
    if (k < len && (s[k] == '+' || s[k] == '-'))
        neg = s[k++] == '-';
    if (k == len || s[k] < '0' || s[k] > '9')
        return PH_ENC_ESYNTAX;
    long v = 0;
    int big = 0;
    for (; k < len && s[k] >= '0' && s[k] <= '9'; k++) {
        v = v * 10 + (s[k] - '0');
        if (v >= NUM_MAX_EXP) {
            big = 1;
            v = NUM_MAX_EXP;
        }
    }
    *e = neg ? -v : v;
    *i = k;
    return big ? PH_ENC_ERANGE : PH_ENC_OK;
}

ph_enc_status ph_enc_numeric_from_text(const char *s, size_t len, ph_buf *out)
{
    ph_enc_trim(&s, &len);
    ph_enc_status st = PH_ENC_OK;
    if (parse_special(s, len, &st, out))
        return st;
    size_t i = 0;
    int neg = 0;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    char *d = malloc(len + 1);
    if (!d)
        return PH_ENC_ENOMEM;
    size_t n = 0;
    long p = -1, e = 0;
    for (; i < len; i++) {
        if (s[i] >= '0' && s[i] <= '9')
            d[n++] = s[i];
        else if (s[i] == '.' && p < 0)
            p = (long)n;
        else
            break;
    }
    if (p < 0)
        p = (long)n;
    if (n == 0)
        st = PH_ENC_ESYNTAX;
    else if (i < len && (s[i] == 'e' || s[i] == 'E'))
        st = parse_exponent(s, len, &i, &e);
    if (st == PH_ENC_OK && i != len)
        st = PH_ENC_ESYNTAX;
    /* the input's display scale must fit numeric's 14-bit dscale, as in numeric_in */
    if (st == PH_ENC_OK && (long)n - p - e > NUM_MAX_FRAC)
        st = PH_ENC_ERANGE;
    if (st == PH_ENC_OK)
        st = put_canonical(d, n, p + e, neg, out);
    OPENSSL_cleanse(d, n);
    free(d);
    return st;
}

ph_enc_status ph_enc_numeric_from_binary(const uint8_t *b, size_t len, ph_buf *out)
{
    if (len < 8)
        return PH_ENC_ESYNTAX;
    size_t nd = ph_get_u16(b);
    int weight = (int16_t)ph_get_u16(b + 2);
    unsigned sign = ph_get_u16(b + 4), dscale = ph_get_u16(b + 6);
    if (nd > NUM_MAX_NDIGITS || len != 8 + 2 * nd || (dscale & NUM_DSCALE_MASK) != dscale)
        return PH_ENC_ESYNTAX;
    if (sign == NUM_NAN)
        return put_str(out, "NaN");
    if (sign == NUM_PINF)
        return put_str(out, "Infinity");
    if (sign == NUM_NINF)
        return put_str(out, "-Infinity");
    if (sign != NUM_POS && sign != NUM_NEG)
        return PH_ENC_ESYNTAX;
    char *d = malloc(4 * nd + 1);
    if (!d)
        return PH_ENC_ENOMEM;
    ph_enc_status st = PH_ENC_OK;
    for (size_t k = 0; k < nd && st == PH_ENC_OK; k++) {
        unsigned g = ph_get_u16(b + 8 + 2 * k);
        if (g >= NBASE)
            st = PH_ENC_ESYNTAX;
        for (int j = 3; j >= 0; j--, g /= 10)
            d[4 * k + (size_t)j] = (char)('0' + g % 10);
    }
    long p = 4L * (weight + 1), n = 4L * (long)nd;
    if (n > p + (long)dscale) /* digits hidden by dscale are truncated, as numeric_recv does */
        n = p + (long)dscale > 0 ? p + (long)dscale : 0;
    if (st == PH_ENC_OK)
        st = put_canonical(d, (size_t)n, p, sign == NUM_NEG, out);
    OPENSSL_cleanse(d, 4 * nd);
    free(d);
    return st;
}

/* ---- canonical input ------------------------------------------------------------ */

typedef struct canon_num {
    int special; /* 0 finite, 1 NaN, 2 +Infinity, 3 -Infinity */
    int neg;
    const char *ip; /* integer digits ("0" for |v| < 1) */
    size_t il;
    const char *fp; /* fraction digits, no trailing zero */
    size_t fl;
} canon_num;

/* Validates a canonical numeric string strictly. */
static ph_enc_status read_canonical(const uint8_t *c, size_t len, canon_num *v)
{
    const char *s = (const char *)c;
    memset(v, 0, sizeof *v);
    if (len == 3 && memcmp(s, "NaN", 3) == 0)
        v->special = 1;
    else if (len == 8 && memcmp(s, "Infinity", 8) == 0)
        v->special = 2;
    else if (len == 9 && memcmp(s, "-Infinity", 9) == 0)
        v->special = 3;
    if (v->special)
        return PH_ENC_OK;
    size_t i = 0;
    if (i < len && s[i] == '-')
        v->neg = 1, i++;
    v->ip = s + i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++, v->il++;
    if (v->il == 0 || (v->il > 1 && v->ip[0] == '0'))
        return PH_ENC_EINVAL;
    if (i < len) {
        if (s[i++] != '.')
            return PH_ENC_EINVAL;
        v->fp = s + i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++, v->fl++;
        if (i != len || v->fl == 0 || v->fp[v->fl - 1] == '0')
            return PH_ENC_EINVAL;
    }
    if (v->neg && v->il == 1 && v->ip[0] == '0' && v->fl == 0)
        return PH_ENC_EINVAL; /* "-0" */
    return PH_ENC_OK;
}

ph_enc_status ph_enc_numeric_to_text(const uint8_t *c, size_t len, int scale, ph_buf *out)
{
    canon_num v;
    if (read_canonical(c, len, &v) != PH_ENC_OK)
        return PH_ENC_EINVAL;
    if (ph_buf_append(out, c, len) != 0)
        return PH_ENC_ENOMEM;
    if (v.special || scale <= (int)v.fl)
        return PH_ENC_OK;
    if (v.fl == 0 && ph_buf_append_u8(out, '.') != 0)
        return PH_ENC_ENOMEM;
    for (size_t k = v.fl; k < (size_t)scale; k++)
        if (ph_buf_append_u8(out, '0') != 0)
            return PH_ENC_ENOMEM;
    return PH_ENC_OK;
}

static ph_enc_status put_header(ph_buf *out, size_t nd, int weight, unsigned sign, unsigned dscale)
{
    if (ph_buf_append_u16(out, (uint16_t)nd) || ph_buf_append_u16(out, (uint16_t)(int16_t)weight) ||
        ph_buf_append_u16(out, (uint16_t)sign) || ph_buf_append_u16(out, (uint16_t)dscale))
        return PH_ENC_ENOMEM;
    return PH_ENC_OK;
}

/* The base-10000 digit at group g: groups count from the most significant
 * group of the integer part padded to a multiple of 4 digits. */
static unsigned group_at(const canon_num *v, size_t ipad, size_t g)
{
    unsigned acc = 0;
    for (size_t k = 0; k < 4; k++) {
        size_t pos = 4 * g + k; /* position in padded (integer | fraction) */
        int dig = 0;
        if (pos >= ipad - v->il && pos < ipad)
            dig = v->ip[pos - (ipad - v->il)] - '0';
        else if (pos >= ipad && pos - ipad < v->fl)
            dig = v->fp[pos - ipad] - '0';
        acc = acc * 10 + (unsigned)dig;
    }
    return acc;
}

ph_enc_status ph_enc_numeric_to_binary(const uint8_t *c, size_t len, int scale, ph_buf *out)
{
    canon_num v;
    if (read_canonical(c, len, &v) != PH_ENC_OK)
        return PH_ENC_EINVAL;
    /* numeric_send reports dscale 32 for ±Infinity (header bits read as a
     * short-format dscale) and 0 for NaN; mirrored for byte-identical output */
    if (v.special == 1)
        return put_header(out, 0, 0, NUM_NAN, 0);
    if (v.special)
        return put_header(out, 0, 0, v.special == 2 ? NUM_PINF : NUM_NINF, 32);
    unsigned dscale = (unsigned)(scale > (int)v.fl ? (size_t)scale : v.fl);
    size_t ipad = (v.il + 3) / 4 * 4, fpad = (v.fl + 3) / 4 * 4;
    size_t first = 0, last = (ipad + fpad) / 4; /* groups [first, last) */
    while (first < last && group_at(&v, ipad, first) == 0)
        first++;
    while (last > first && group_at(&v, ipad, last - 1) == 0)
        last--;
    if (first == last)
        return put_header(out, 0, 0, NUM_POS, dscale);
    int weight = (int)(ipad / 4) - 1 - (int)first;
    ph_enc_status st = put_header(out, last - first, weight, v.neg ? NUM_NEG : NUM_POS, dscale);
    for (size_t g = first; g < last && st == PH_ENC_OK; g++)
        if (ph_buf_append_u16(out, (uint16_t)group_at(&v, ipad, g)) != 0)
            st = PH_ENC_ENOMEM;
    return st;
}

/* ---- fixed point (OPE) ------------------------------------------------------------- */

ph_enc_status ph_enc_numeric_to_fixed(const uint8_t *c, size_t len, int scale, int64_t *out,
                                      bool *inexact)
{
    canon_num v;
    if (scale < 0 || scale > MAX_FIXED_SCALE || read_canonical(c, len, &v) != PH_ENC_OK ||
        v.special)
        return PH_ENC_EINVAL;
    const uint64_t limit = v.neg ? (uint64_t)1 << 63 : (uint64_t)INT64_MAX;
    uint64_t acc = 0;
    for (size_t k = 0; k < v.il + (size_t)scale; k++) {
        unsigned d = k < v.il          ? (unsigned)(v.ip[k] - '0')
                     : k - v.il < v.fl ? (unsigned)(v.fp[k - v.il] - '0')
                                       : 0;
        if (acc > (limit - d) / 10)
            return PH_ENC_ERANGE;
        acc = acc * 10 + d;
    }
    int rest = v.fl > (size_t)scale;
    if (rest && v.fp[scale] >= '5') { /* half away from zero */
        if (acc == limit)
            return PH_ENC_ERANGE;
        acc++;
    }
    if (inexact)
        *inexact = rest;
    *out = v.neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return PH_ENC_OK;
}

ph_enc_status ph_enc_numeric_from_fixed(int64_t v, int scale, ph_buf *out)
{
    if (scale < 0 || scale > MAX_FIXED_SCALE)
        return PH_ENC_EINVAL;
    uint64_t mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    char d[24];
    int n = snprintf(d, sizeof d, "%" PRIu64, mag);
    return put_canonical(d, (size_t)n, (long)n - scale, v < 0, out);
}

/* ---- a column's numeric(p,s) ------------------------------------------------------ */

/* Adds one unit in the last place of the digit string d[0..n) (in place);
 * returns the carry out of the first digit. */
static int add_ulp(char *d, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        if (d[i] != '9') {
            d[i]++;
            return 0;
        }
        d[i] = '0';
    }
    return 1;
}

ph_enc_status ph_canon_numeric_typmod(ph_buf *canon, int precision, int scale)
{
    if (precision <= 0 || scale < 0 || scale > precision)
        return PH_ENC_OK; /* unconstrained */
    const char *s = (const char *)canon->data;
    size_t len = canon->len;
    if (len == 3 && memcmp(s, "NaN", 3) == 0)
        return PH_ENC_OK; /* numeric(p,s) accepts NaN */
    int neg = len && s[0] == '-';
    const char *p = s + neg, *end = s + len;
    if (p < end && (*p == 'I' || *p == 'i'))
        return PH_ENC_ERANGE; /* Infinity does not fit numeric(p,s) */
    const char *dot = memchr(p, '.', (size_t)(end - p));
    size_t ni = (size_t)((dot ? dot : end) - p), nf = dot ? (size_t)(end - dot - 1) : 0;
    size_t keep = nf < (size_t)scale ? nf : (size_t)scale;
    char *d = malloc(ni + keep + 2);
    if (!d)
        return PH_ENC_ENOMEM;
    d[0] = '0'; /* room for a carry */
    memcpy(d + 1, p, ni);
    if (keep)
        memcpy(d + 1 + ni, dot + 1, keep);
    size_t n = 1 + ni + keep;
    if (nf > keep && dot[1 + keep] >= '5') /* half away from zero, as numeric does */
        (void)add_ulp(d, n);
    /* d holds (1 + ni) integer digits then keep fraction digits */
    long point = (long)(1 + ni);
    ph_buf out = {0};
    ph_enc_status st = put_canonical(d, n, point, neg, &out);
    free(d);
    if (st != PH_ENC_OK) {
        ph_buf_free(&out);
        return st;
    }
    /* digits before the decimal point must fit in precision - scale */
    size_t at = out.data[0] == '-', int_digits = 0;
    while (at + int_digits < out.len && out.data[at + int_digits] != '.')
        int_digits++;
    if (int_digits == 1 && out.data[at] == '0')
        int_digits = 0;
    if (int_digits > (size_t)(precision - scale)) {
        ph_buf_free(&out);
        return PH_ENC_ERANGE;
    }
    canon->len = 0;
    st = ph_buf_append(canon, out.data, out.len) == 0 ? PH_ENC_OK : PH_ENC_ENOMEM;
    ph_buf_free(&out);
    return st;
}
