/*
 * copy.h — streaming transformation of COPY data (no sockets, no keys).
 *
 * Owns: splitting a COPY data stream (text, CSV or binary format, with the
 * statement's options) into rows and fields, handing the fields of chosen
 * columns to a callback that replaces their value, and writing the rows back
 * in the same format with correct escaping/quoting. Data arrives in CopyData
 * payloads cut anywhere (a row may span payloads, a payload may hold many
 * rows): only whole rows are emitted; a partial row is kept for the next
 * feed. Everything else (other columns, header lines, the binary header and
 * trailer, the text end marker \.) is copied through unchanged, byte for
 * byte.
 *
 * The callback sees each chosen field decoded (text: de-escaped; CSV:
 * unquoted; binary: the raw field bytes) and appends the decoded new value;
 * the codec re-encodes it. For COPY FROM it encrypts (output: the envelope
 * as bytea — in text/CSV the codec writes it as \x<hex>, escaped as \\x<hex>
 * in text format); for COPY TO it decrypts (input: the bytea value — in
 * text/CSV the codec hex-decodes the \x<hex> form before the callback sees
 * it; any other form is an error: the session must run with
 * bytea_output=hex, PostgreSQL's default).
 *
 * Rows are split exactly as PostgreSQL 15 splits them (copyfromparse.c):
 * \n, \r or \r\n line ends (the first line decides, mixing is an error),
 * backslash escapes in text format (a backslash-newline does not end the
 * line), quotes spanning lines in CSV, the NULL string compared before
 * de-escaping (CSV: only when unquoted), and the end marker \. (text: ends
 * the data wherever it appears after a complete escape; CSV: only alone on
 * a line). What follows the end marker is dropped, as the server ignores it.
 * Text and CSV data must be in an ASCII-safe client encoding (UTF8, LATIN*,
 * ...); bytes of encodings that embed ASCII in multibyte characters (SJIS,
 * BIG5, GBK, GB18030, JOHAB) would be misparsed. A NUL byte is an error.
 */
#ifndef PHANTOM_ENGINE_COPY_H
#define PHANTOM_ENGINE_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"
#include "protocol/pg/copyopts.h" /* ph_copy_format, ph_copy_options, ph_copy_options_default */

/*
 * Transforms one field. in/len: the decoded value (ignored when is_null; in
 * is never NULL); the callback appends the decoded replacement to out, or
 * sets *out_null to write NULL (*out_null starts as is_null, so a callback
 * that leaves it alone keeps a NULL a NULL). column is the index in the
 * COPY's column list. In DECRYPT direction the replacement is the value as
 * the client reads it in the stream's format: the type's text form for
 * text/CSV (the codec escapes/quotes it; it must not contain a NUL byte),
 * the type's binary form for binary. Returns 0, or -1 with a message in err
 * (never the value).
 */
typedef int (*ph_copy_field_fn)(void *ud, int column, const uint8_t *in, size_t len, bool is_null,
                                ph_buf *out, bool *out_null, char *err, size_t errlen);

typedef enum {
    PH_COPY_ENCRYPT = 0, /* FROM STDIN: plaintext in, bytea (envelope) out */
    PH_COPY_DECRYPT,     /* TO STDOUT: bytea in, plaintext out */
} ph_copy_direction;

typedef struct ph_copy_xform ph_copy_xform;

/* ncols: the columns of the COPY in order; transform[i]: call fn for column
 * i (transform may be NULL when ncols is 0). The options and transform are
 * copied. NULL when out of memory or when the options are ones PostgreSQL
 * rejects (delimiter/quote/escape that the format forbids, a NULL string
 * containing the delimiter, a newline or the quote, ...). */
ph_copy_xform *ph_copy_xform_new(const ph_copy_options *o, ph_copy_direction dir, int ncols,
                                 const bool *transform, ph_copy_field_fn fn, void *ud);
void ph_copy_xform_free(ph_copy_xform *x); /* NULL allowed; wipes buffered data */

/* Optional, before any feed: for every row, before its chosen fields are
 * transformed, the callback sees the decoded value of `column` (text/CSV:
 * de-escaped; binary: the raw field bytes) with column index -1 - column
 * and must leave out/out_null alone; the field itself is written through
 * unchanged. E.g. the row's tenant, which decides the keys of its other
 * fields. -1: none (the default). */
void ph_copy_xform_set_peek(ph_copy_xform *x, int column);

/* Column `column` is a text column both ways (a token column holds tokens
 * as text): in text/CSV its values are neither hex-decoded (COPY TO) nor
 * written as bytea (COPY FROM); the callback sees and gives text. Binary
 * format is unaffected (a text field's binary form is its bytes). */
void ph_copy_xform_set_text(ph_copy_xform *x, int column);

/* The largest row (text/CSV line, binary tuple) kept while waiting for its
 * end; a longer one is an error. Default PH_COPY_MAX_ROW_DEFAULT. */
#define PH_COPY_MAX_ROW_DEFAULT ((size_t)1 << 30)
void ph_copy_xform_set_max_row(ph_copy_xform *x, size_t max_row);

/* Appends every complete transformed row of data[0..len) (with what was kept
 * from earlier feeds) to out. 0, or -1 with a message (malformed data, a
 * wrong column count, a callback error). On -1 nothing of this call is left
 * in out, and the stream stays failed: every later call returns -1. */
int ph_copy_xform_feed(ph_copy_xform *x, const uint8_t *data, size_t len, ph_buf *out, char *err,
                       size_t errlen);
/* At CopyDone: flushes a final row without newline (text/CSV allow it);
 * -1 if a partial row or binary field remains (an unterminated CSV quote, a
 * truncated binary header or tuple). Binary data may end without the
 * trailer, as PostgreSQL accepts. */
int ph_copy_xform_finish(ph_copy_xform *x, ph_buf *out, char *err, size_t errlen);

#endif
