/*
 * encode_int.c — canonical encodings of int2, int4, int8 (8-byte big-endian
 * two's complement, widened) and bool (one byte 0/1): parsing of PostgreSQL
 * text and binary formats, formatting back to both.
 */
#include "crypto/encode_impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void int_bounds(ph_ltype t, int64_t *lo, int64_t *hi)
{
    *lo = t == PH_LT_INT2 ? INT16_MIN : t == PH_LT_INT4 ? INT32_MIN : INT64_MIN;
    *hi = t == PH_LT_INT2 ? INT16_MAX : t == PH_LT_INT4 ? INT32_MAX : INT64_MAX;
}

static size_t int_width(ph_ltype t)
{
    return t == PH_LT_INT2 ? 2 : t == PH_LT_INT4 ? 4 : 8;
}

ph_enc_status ph_enc_append_i64(ph_buf *out, int64_t v)
{
    uint8_t b[PH_CANON_I64_LEN];
    ph_enc_put_i64(b, v);
    return ph_buf_append(out, b, sizeof b) == 0 ? PH_ENC_OK : PH_ENC_ENOMEM;
}

/* PostgreSQL's scanint8 rules: [ws] [+|-] digits [ws]; accumulates negatively
 * so INT64_MIN parses. */
static ph_enc_status parse_i64(const char *s, size_t len, int64_t *v)
{
    ph_enc_trim(&s, &len);
    size_t i = 0;
    int neg = 0;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i == len)
        return PH_ENC_ESYNTAX;
    int64_t acc = 0;
    int overflow = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return PH_ENC_ESYNTAX;
        int d = s[i] - '0';
        if (acc < (INT64_MIN + d) / 10)
            overflow = 1;
        else
            acc = acc * 10 - d;
    }
    if (overflow || (!neg && acc == INT64_MIN))
        return PH_ENC_ERANGE;
    *v = neg ? acc : -acc;
    return PH_ENC_OK;
}

ph_enc_status ph_enc_int_from_text(ph_ltype t, const char *s, size_t len, ph_buf *out)
{
    int64_t v, lo, hi;
    ph_enc_status st = parse_i64(s, len, &v);
    if (st != PH_ENC_OK)
        return st;
    int_bounds(t, &lo, &hi);
    if (v < lo || v > hi)
        return PH_ENC_ERANGE;
    return ph_enc_append_i64(out, v);
}

ph_enc_status ph_enc_int_from_binary(ph_ltype t, const uint8_t *p, size_t len, ph_buf *out)
{
    if (len != int_width(t))
        return PH_ENC_ESYNTAX;
    int64_t v;
    if (t == PH_LT_INT2)
        v = (int16_t)(((unsigned)p[0] << 8) | p[1]);
    else if (t == PH_LT_INT4)
        v = (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
                      p[3]);
    else
        v = ph_enc_get_i64(p);
    return ph_enc_append_i64(out, v);
}

/* Reads a canonical integer and checks it fits the type. */
static ph_enc_status canon_int(ph_ltype t, const uint8_t *c, size_t len, int64_t *v)
{
    int64_t lo, hi;
    if (len != PH_CANON_I64_LEN)
        return PH_ENC_EINVAL;
    *v = ph_enc_get_i64(c);
    int_bounds(t, &lo, &hi);
    return *v < lo || *v > hi ? PH_ENC_ERANGE : PH_ENC_OK;
}

ph_enc_status ph_enc_int_to_text(ph_ltype t, const uint8_t *c, size_t len, ph_buf *out)
{
    int64_t v;
    ph_enc_status st = canon_int(t, c, len, &v);
    if (st != PH_ENC_OK)
        return st;
    char b[24];
    int n = snprintf(b, sizeof b, "%" PRId64, v);
    return ph_buf_append(out, b, (size_t)n) == 0 ? PH_ENC_OK : PH_ENC_ENOMEM;
}

ph_enc_status ph_enc_int_to_binary(ph_ltype t, const uint8_t *c, size_t len, ph_buf *out)
{
    int64_t v;
    ph_enc_status st = canon_int(t, c, len, &v);
    if (st != PH_ENC_OK)
        return st;
    size_t w = int_width(t);
    uint8_t b[8];
    for (size_t i = 0; i < w; i++)
        b[i] = (uint8_t)((uint64_t)v >> (8 * (w - 1 - i)));
    return ph_buf_append(out, b, w) == 0 ? PH_ENC_OK : PH_ENC_ENOMEM;
}

/* ---- bool ------------------------------------------------------------------ */

/* s[0..len) is a case-insensitive prefix of word, at least min chars long. */
static int prefix_of(const char *s, size_t len, const char *word, size_t min)
{
    size_t wl = strlen(word);
    if (len < min || len > wl)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
        if (c != word[i])
            return 0;
    }
    return 1;
}

/* PostgreSQL's parse_bool_with_len: prefixes of true/false/yes/no, "on"/"off"
 * (at least two letters), "1"/"0"; surrounding whitespace ignored. */
ph_enc_status ph_enc_bool_from_text(const char *s, size_t len, ph_buf *out)
{
    ph_enc_trim(&s, &len);
    int v = -1;
    if (prefix_of(s, len, "true", 1) || prefix_of(s, len, "yes", 1) || prefix_of(s, len, "on", 2) ||
        (len == 1 && s[0] == '1'))
        v = 1;
    else if (prefix_of(s, len, "false", 1) || prefix_of(s, len, "no", 1) ||
             prefix_of(s, len, "off", 2) || (len == 1 && s[0] == '0'))
        v = 0;
    if (v < 0)
        return PH_ENC_ESYNTAX;
    return ph_buf_append_u8(out, (uint8_t)v) == 0 ? PH_ENC_OK : PH_ENC_ENOMEM;
}

ph_enc_status ph_enc_bool_from_binary(const uint8_t *p, size_t len, ph_buf *out)
{
    if (len != 1)
        return PH_ENC_ESYNTAX;
    return ph_buf_append_u8(out, p[0] != 0) == 0 ? PH_ENC_OK : PH_ENC_ENOMEM;
}

ph_enc_status ph_enc_bool_to_text(const uint8_t *c, size_t len, ph_buf *out)
{
    if (len != 1 || c[0] > 1)
        return PH_ENC_EINVAL;
    return ph_buf_append(out, c[0] ? "t" : "f", 1) == 0 ? PH_ENC_OK : PH_ENC_ENOMEM;
}

ph_enc_status ph_enc_bool_to_binary(const uint8_t *c, size_t len, ph_buf *out)
{
    if (len != 1 || c[0] > 1)
        return PH_ENC_EINVAL;
    return ph_buf_append_u8(out, c[0]) == 0 ? PH_ENC_OK : PH_ENC_ENOMEM;
}
