/*
 * encode_impl.h — internal interface between encode.c (dispatch by logical
 * type) and the per-family encoders: encode_int.c (int2/4/8, bool),
 * encode_text.c (text, json, jsonb, bytea), encode_time.c (date, timestamp,
 * timestamptz) and encode_numeric.c (numeric). Not for use outside them.
 */
#ifndef PHANTOM_CRYPTO_ENCODE_IMPL_H
#define PHANTOM_CRYPTO_ENCODE_IMPL_H

#include "crypto/encode.h"

#define PH_CANON_I64_LEN 8

static inline void ph_enc_put_i64(uint8_t *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)u;
        u >>= 8;
    }
}

static inline int64_t ph_enc_get_i64(const uint8_t *p)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = (u << 8) | p[i];
    return (int64_t)u;
}

static inline int ph_enc_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Strips PostgreSQL-style leading and trailing whitespace. */
static inline void ph_enc_trim(const char **s, size_t *len)
{
    while (*len && ph_enc_is_space(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len && ph_enc_is_space((*s)[*len - 1]))
        (*len)--;
}

/* Appends an 8-byte canonical integer. */
ph_enc_status ph_enc_append_i64(ph_buf *out, int64_t v);

/* encode_int.c */
ph_enc_status ph_enc_int_from_text(ph_ltype t, const char *s, size_t len, ph_buf *out);
ph_enc_status ph_enc_int_from_binary(ph_ltype t, const uint8_t *p, size_t len, ph_buf *out);
ph_enc_status ph_enc_int_to_text(ph_ltype t, const uint8_t *c, size_t len, ph_buf *out);
ph_enc_status ph_enc_int_to_binary(ph_ltype t, const uint8_t *c, size_t len, ph_buf *out);
ph_enc_status ph_enc_bool_from_text(const char *s, size_t len, ph_buf *out);
ph_enc_status ph_enc_bool_from_binary(const uint8_t *p, size_t len, ph_buf *out);
ph_enc_status ph_enc_bool_to_text(const uint8_t *c, size_t len, ph_buf *out);
ph_enc_status ph_enc_bool_to_binary(const uint8_t *c, size_t len, ph_buf *out);

/* encode_text.c */
ph_enc_status ph_enc_text_from_text(ph_ltype t, const char *s, size_t len, ph_buf *out);
ph_enc_status ph_enc_text_from_binary(ph_ltype t, const uint8_t *p, size_t len, ph_buf *out);
/* The check a string type's canonical bytes pass before they are output. */
ph_enc_status ph_enc_text_check(ph_ltype t, const uint8_t *c, size_t len);
ph_enc_status ph_enc_text_to_text(ph_ltype t, const uint8_t *c, size_t len, ph_buf *out);
ph_enc_status ph_enc_text_to_binary(ph_ltype t, const uint8_t *c, size_t len, ph_buf *out);
ph_enc_status ph_enc_bytea_from_text(const char *s, size_t len, ph_buf *out);
ph_enc_status ph_enc_bytea_to_text(const uint8_t *c, size_t len, ph_buf *out);

/* encode_time.c */
ph_enc_status ph_enc_time_from_text(ph_ltype t, const char *s, size_t len, const ph_enc_opts *o,
                                    ph_buf *out);
ph_enc_status ph_enc_time_from_binary(ph_ltype t, const uint8_t *p, size_t len, ph_buf *out);
ph_enc_status ph_enc_time_to_text(ph_ltype t, const uint8_t *c, size_t len, const ph_enc_opts *o,
                                  ph_buf *out);
ph_enc_status ph_enc_time_to_binary(ph_ltype t, const uint8_t *c, size_t len, ph_buf *out);
ph_enc_status ph_enc_time_check(ph_ltype t, int64_t v); /* value in the type's range */

/* encode_numeric.c */
ph_enc_status ph_enc_numeric_from_text(const char *s, size_t len, ph_buf *out);
/* encode_jsonb.c: the text jsonb_out prints for the JSON s[0..len). */
ph_enc_status ph_enc_jsonb_canonical(const char *s, size_t len, ph_buf *out);
ph_enc_status ph_enc_numeric_from_binary(const uint8_t *p, size_t len, ph_buf *out);
ph_enc_status ph_enc_numeric_to_text(const uint8_t *c, size_t len, int scale, ph_buf *out);
ph_enc_status ph_enc_numeric_to_binary(const uint8_t *c, size_t len, int scale, ph_buf *out);
ph_enc_status ph_enc_numeric_to_fixed(const uint8_t *c, size_t len, int scale, int64_t *v,
                                      bool *inexact);
ph_enc_status ph_enc_numeric_from_fixed(int64_t v, int scale, ph_buf *out);

#endif
