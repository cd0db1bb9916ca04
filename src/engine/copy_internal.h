/*
 * copy_internal.h — shared internals of the COPY codec (copy.c,
 * copy_text.c, copy_binary.c); not part of the public API (see copy.h).
 *
 * Vocabulary: `pend` holds the input not yet emitted; `cur` is where the
 * current (incomplete) row starts in it; offsets are absolute in pend until
 * copy.c compacts it after each feed. Every function returns 0, or -1 after
 * writing a message into err.
 */
#ifndef PHANTOM_ENGINE_COPY_INTERNAL_H
#define PHANTOM_ENGINE_COPY_INTERNAL_H

#include "common/err.h"
#include "engine/copy.h"

enum { CP_EOL_UNKNOWN = 0, CP_EOL_NL, CP_EOL_CR, CP_EOL_CRNL };

enum { CP_BIN_HEADER = 0, CP_BIN_EXT, CP_BIN_TUPLE, CP_BIN_DONE };

/* One field of the current row: bytes [s, e) of pend (binary: the data,
 * after its length word). */
typedef struct cp_field {
    size_t s, e;
    bool null;
} cp_field;

struct ph_copy_xform {
    ph_copy_options o; /* o.null_s points to null_s */
    char *null_s;
    size_t null_len;
    ph_copy_direction dir;
    int ncols;
    bool *transform;
    bool *text; /* per column: text both ways, no bytea form (ph_copy_xform_set_text) */
    bool any_transform;
    ph_copy_field_fn fn;
    void *ud;
    size_t max_row;
    int peek; /* column shown to fn before each row's transforms, -1 none */

    ph_buf pend;             /* input not yet emitted (wiped as it is consumed) */
    size_t cur;              /* start of the current row in pend */
    ph_buf val;              /* scratch: a decoded field value */
    ph_buf rep;              /* scratch: the callback's replacement */
    ph_buf tmp;              /* scratch: bytea text form */
    cp_field *fields;        /* ncols entries */
    unsigned long long line; /* rows (and header) seen, for messages */
    bool failed;
    bool done;     /* end marker or trailer seen */
    bool finished; /* ph_copy_xform_finish ran */

    /* text / CSV */
    int eol;
    bool header_pending;
    size_t scan_pos; /* where the line scan resumes */
    bool in_quote, last_was_esc;

    /* binary */
    int bstate;
    size_t ext_left; /* header extension bytes still to pass */
    int bfield;      /* fields of the current tuple located so far; -1 before its count */
    size_t bpos;     /* where the next field's length word starts */
};

/* copy.c */
int cp_oom(char *err, size_t errlen);
/* Appends, wiping the old block when the buffer moves. */
int cp_reserve(ph_buf *b, size_t extra);
int cp_append(ph_buf *b, const void *p, size_t n);
void cp_wipe(ph_buf *b); /* wipes the contents, keeps the allocation, len = 0 */
/* Runs the callback for column col on (in, len, is_null): on success
 * x->rep holds the replacement and *out_null says whether it is NULL. */
int cp_call(ph_copy_xform *x, int col, const uint8_t *in, size_t len, bool is_null, bool *out_null,
            char *err, size_t errlen);

/* The peek column's value (in, len, is_null) to the callback: 0 or -1. */
int cp_peek(ph_copy_xform *x, const uint8_t *in, size_t len, bool is_null, char *err,
            size_t errlen);

/* copy_text.c (text and CSV) */
int cp_text_run(ph_copy_xform *x, bool at_eof, ph_buf *out, char *err, size_t errlen);

/* copy_binary.c */
int cp_binary_run(ph_copy_xform *x, bool at_eof, ph_buf *out, char *err, size_t errlen);

#endif
