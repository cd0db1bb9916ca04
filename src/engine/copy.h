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
 * trailer, the text end marker \.) is copied through unchanged.
 *
 * The callback sees each chosen field decoded (text: de-escaped; CSV:
 * unquoted; binary: the raw field bytes) and appends the decoded new value;
 * the codec re-encodes it. For COPY FROM it encrypts (output: the envelope
 * as bytea — in text/CSV the codec writes it as \x<hex>); for COPY TO it
 * decrypts (input: the bytea value — in text/CSV the codec hex-decodes the
 * \x<hex> form before the callback sees it).
 */
#ifndef PHANTOM_ENGINE_COPY_H
#define PHANTOM_ENGINE_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"

typedef enum { PH_COPY_TEXT = 0, PH_COPY_CSV, PH_COPY_BINARY } ph_copy_format;

/* The statement's options (PostgreSQL defaults when not given). */
typedef struct ph_copy_options {
    ph_copy_format format;
    char delimiter;     /* text: '\t', csv: ',' */
    char quote;         /* csv: '"' */
    char escape;        /* csv: same as quote */
    const char *null_s; /* text: "\\N", csv: "" (unquoted empty) */
    bool header;        /* csv/text HEADER: the first line is passed through */
    /* FORCE_QUOTE / FORCE_NOT_NULL / FORCE_NULL are accepted by PostgreSQL
     * for CSV; fields this codec re-encodes are written quoted when needed. */
} ph_copy_options;

void ph_copy_options_default(ph_copy_options *o, ph_copy_format format);

/*
 * Transforms one field. in/len: the decoded value (ignored when is_null);
 * the callback appends the decoded replacement to out, or sets *out_null to
 * write NULL. For bytea direction see the header comment: the `bytea` flag
 * of the direction tells the codec where the \x<hex> form applies.
 * Returns 0, or -1 with a message in err (never the value).
 */
typedef int (*ph_copy_field_fn)(void *ud, int column, const uint8_t *in, size_t len, bool is_null,
                                ph_buf *out, bool *out_null, char *err, size_t errlen);

typedef enum {
    PH_COPY_ENCRYPT = 0, /* FROM STDIN: plaintext in, bytea (envelope) out */
    PH_COPY_DECRYPT,     /* TO STDOUT: bytea in, plaintext out */
} ph_copy_direction;

typedef struct ph_copy_xform ph_copy_xform;

/* ncols: the columns of the COPY in order; transform[i]: call fn for column i. */
ph_copy_xform *ph_copy_xform_new(const ph_copy_options *o, ph_copy_direction dir, int ncols,
                                 const bool *transform, ph_copy_field_fn fn, void *ud);
void ph_copy_xform_free(ph_copy_xform *x);

/* Appends every complete transformed row of data[0..len) (with what was kept
 * from earlier feeds) to out. 0, or -1 with a message (malformed data, a
 * wrong column count, a callback error). */
int ph_copy_xform_feed(ph_copy_xform *x, const uint8_t *data, size_t len, ph_buf *out, char *err,
                       size_t errlen);
/* At CopyDone: flushes a final row without newline (text/CSV allow it);
 * -1 if a partial row or binary field remains. */
int ph_copy_xform_finish(ph_copy_xform *x, ph_buf *out, char *err, size_t errlen);

#endif
