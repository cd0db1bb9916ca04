/*
 * encode.h — canonical encodings of PostgreSQL values, so that text and
 * binary client formats of one logical value give the same plaintext bytes
 * (and hence equal deterministic / OPE ciphertexts), plus the formatters
 * that turn a decrypted canonical value back into PostgreSQL text or binary
 * format for results.
 *
 * Owns: the canonical form of each logical type (format version 1):
 *   text, varchar, json    UTF-8 bytes (validated; no NUL), as given
 *   jsonb                  its text, as given (jsonb binary format: version
 *                          byte 1 + text). Equality is textual: '{"a":1}' and
 *                          '{"a": 1}' are different plaintexts.
 *   bytea                  the raw bytes
 *   bool                   1 byte, 0x00 or 0x01
 *   int2, int4, int8       8-byte big-endian two's complement (widened, so
 *                          int4 and int8 columns of one key domain join)
 *   date                   8-byte big-endian: PostgreSQL's int32 days since
 *                          2000-01-01 widened (±infinity = INT32_MIN/MAX)
 *   timestamp, timestamptz 8-byte big-endian: int64 microseconds since
 *                          2000-01-01 00:00:00 (timestamptz: UTC);
 *                          ±infinity = INT64_MIN/MAX
 *   numeric                the value as a normalized decimal string: optional
 *                          '-', no leading zeros ("0.5"), no trailing
 *                          fractional zeros, no exponent, "-0" → "0"; "NaN",
 *                          "Infinity", "-Infinity". The display scale is NOT
 *                          part of the value ('1.50' = '1.5', as PostgreSQL's
 *                          = says); formatters re-apply a column's declared
 *                          scale (ph_enc_opts.numeric_scale), so numeric(p,s)
 *                          columns read back exactly as PostgreSQL shows them.
 *
 * OPE takes int64: ints, date and timestamps as above; numeric as fixed-point
 * value × 10^scale for a declared scale (ph_canon_to_ope).
 *
 * Text input follows PostgreSQL 15 input rules for what is listed; formats
 * not listed are refused (PH_ENC_ESYNTAX), never guessed: dates and
 * timestamps in ISO 8601 form only ("2024-03-01", "2024-03-01 12:34:56.789",
 * "2024-03-01T12:34:56+05:30", optional " BC", "infinity", "-infinity",
 * "epoch"); time zones as Z/UTC/GMT/UT or a numeric offset — zone names
 * ("Europe/Berlin") need a time zone database and are refused (PH_ENC_ETZ).
 * Fractional seconds beyond microseconds are rounded half-even. Output is
 * ISO (DateStyle ISO); timestamptz is printed at the session's fixed offset
 * when known, else in UTC ("+00").
 *
 * Errors never quote the value (it may be protected data).
 */
#ifndef PHANTOM_CRYPTO_ENCODE_H
#define PHANTOM_CRYPTO_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"

typedef enum ph_ltype {
    PH_LT_TEXT = 1, /* text, varchar (char(n) is not supported: its padding semantics differ) */
    PH_LT_BYTEA,
    PH_LT_BOOL,
    PH_LT_INT2,
    PH_LT_INT4,
    PH_LT_INT8,
    PH_LT_NUMERIC,
    PH_LT_DATE,
    PH_LT_TIMESTAMP,
    PH_LT_TIMESTAMPTZ,
    PH_LT_JSON,
    PH_LT_JSONB,
} ph_ltype;

typedef enum ph_enc_status {
    PH_ENC_OK = 0,
    PH_ENC_ESYNTAX = -1, /* invalid input syntax for the type */
    PH_ENC_ERANGE = -2,  /* out of range for the type */
    PH_ENC_EINVAL = -3,  /* bad argument, or a type/operation that does not apply */
    PH_ENC_ENOMEM = -4,
    PH_ENC_ETZ = -5, /* a time zone we cannot resolve (name, or none given and no session zone) */
} ph_enc_status;

typedef struct ph_enc_opts {
    int numeric_scale;     /* declared scale of a numeric column, -1 if none */
    bool tz_fixed;         /* the session time zone is a fixed offset … */
    int32_t tz_offset_sec; /* … of this many seconds east of UTC */
} ph_enc_opts;

#define PH_ENC_OPTS_DEFAULT ((ph_enc_opts){.numeric_scale = -1, .tz_fixed = false})

/* Type names as in PostgreSQL ("integer", "int4", "timestamp with time zone",
 * "character varying", …; case-insensitive; a "(…)" modifier is ignored). */
int ph_ltype_from_name(const char *name, ph_ltype *out);
const char *ph_ltype_name(ph_ltype t); /* canonical PostgreSQL name, e.g. "int8" */
uint32_t ph_ltype_oid(ph_ltype t);     /* pg_type OID, e.g. 20 for int8; 0 if unknown */
bool ph_ltype_ope_ok(ph_ltype t);      /* has an order OPE can keep */

/* Parsing (append the canonical form to out; on error out is unchanged). */
ph_enc_status ph_canon_from_text(ph_ltype t, const char *s, size_t len, const ph_enc_opts *o,
                                 ph_buf *out);
ph_enc_status ph_canon_from_binary(ph_ltype t, const uint8_t *p, size_t len, const ph_enc_opts *o,
                                   ph_buf *out);

/* Formatting a canonical value (append to out; no NUL terminator). */
ph_enc_status ph_canon_to_text(ph_ltype t, const uint8_t *c, size_t len, const ph_enc_opts *o,
                               ph_buf *out);
ph_enc_status ph_canon_to_binary(ph_ltype t, const uint8_t *c, size_t len, const ph_enc_opts *o,
                                 ph_buf *out);

/* True when the canonical bytes of a t are, once ph_canon_check_output
 * accepts them, exactly what ph_canon_to_text (binary 0) or
 * ph_canon_to_binary (binary 1) would append: text and json in both formats,
 * jsonb in text, bytea in binary. A caller may then decrypt straight into its
 * output instead of through a scratch buffer. */
bool ph_canon_is_output(ph_ltype t, int binary);
/* The check the formatting functions make (valid UTF-8 without NUL for the
 * textual types; none for bytea): PH_ENC_OK or PH_ENC_EINVAL. */
ph_enc_status ph_canon_check_output(ph_ltype t, const uint8_t *c, size_t len);

/* OPE bridge: canonical → int64 and back. Numeric needs o->numeric_scale in
 * 0..18; a value with more fractional digits is rounded half away from zero
 * (PostgreSQL's numeric rounding) and *inexact is set — callers that
 * compare (WHERE x < 1.005) must handle that; NaN and ±Infinity are refused. */
ph_enc_status ph_canon_to_ope(ph_ltype t, const uint8_t *c, size_t len, const ph_enc_opts *o,
                              int64_t *v, bool *inexact);
ph_enc_status ph_canon_from_ope(ph_ltype t, int64_t v, const ph_enc_opts *o, ph_buf *out);

const char *ph_enc_strerror(ph_enc_status st);

/* Applies a column's numeric(precision, scale) to a canonical numeric, as
 * PostgreSQL's numeric input does: rounds half away from zero to scale
 * digits, then PH_ENC_ERANGE if more than precision - scale digits remain
 * before the point (or the value is ±Infinity). precision <= 0: no-op. */
ph_enc_status ph_canon_numeric_typmod(ph_buf *canon, int precision, int scale);

#endif
