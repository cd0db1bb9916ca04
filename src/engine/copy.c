/*
 * copy.c — the COPY codec's object: options checks, the feed/finish
 * driver (buffering of partial rows, compaction, failure rollback), the
 * wiping buffer helpers and the callback wrapper shared by the text/CSV
 * (copy_text.c) and binary (copy_binary.c) formats.
 */
#include "engine/copy_internal.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

static const uint8_t empty_value[1] = {0};

int cp_oom(char *err, size_t errlen)
{
    return ph_errf(err, errlen, "COPY: out of memory");
}

int cp_reserve(ph_buf *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return -1;
    size_t want = b->len + extra, ncap = b->cap ? b->cap : 256;
    while (ncap < want)
        ncap *= 2;
    uint8_t *p = malloc(ncap);
    if (!p)
        return -1;
    if (b->len)
        memcpy(p, b->data, b->len);
    if (b->data) {
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    }
    b->data = p;
    b->cap = ncap;
    return 0;
}

int cp_append(ph_buf *b, const void *p, size_t n)
{
    if (cp_reserve(b, n) != 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void cp_wipe(ph_buf *b)
{
    if (b->data && b->len)
        OPENSSL_cleanse(b->data, b->len);
    b->len = 0;
}

static void buf_destroy(ph_buf *b)
{
    if (b->data)
        OPENSSL_cleanse(b->data, b->cap);
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int cp_call(ph_copy_xform *x, int col, const uint8_t *in, size_t len, bool is_null, bool *out_null,
            char *err, size_t errlen)
{
    char cberr[256] = "";
    cp_wipe(&x->rep);
    /* room for the usual replacement, so the callback's appends rarely move
     * (and leave behind) plaintext */
    if (cp_reserve(&x->rep, len + 256) != 0)
        return cp_oom(err, errlen);
    *out_null = is_null;
    if (x->fn(x->ud, col, in && len ? in : empty_value, is_null ? 0 : len, is_null, &x->rep,
              out_null, cberr, sizeof cberr) != 0) {
        cp_wipe(&x->rep);
        return ph_errf(err, errlen, "COPY row %llu, column %d: %s", x->line, col + 1,
                       cberr[0] ? cberr : "the value could not be transformed");
    }
    return 0;
}

int cp_peek(ph_copy_xform *x, const uint8_t *in, size_t len, bool is_null, char *err, size_t errlen)
{
    char cberr[256] = "";
    bool out_null = is_null;
    cp_wipe(&x->rep);
    if (x->fn(x->ud, -1 - x->peek, in && len ? in : empty_value, is_null ? 0 : len, is_null,
              &x->rep, &out_null, cberr, sizeof cberr) != 0) {
        cp_wipe(&x->rep);
        return ph_errf(err, errlen, "COPY row %llu, column %d: %s", x->line, x->peek + 1,
                       cberr[0] ? cberr : "the value was refused");
    }
    cp_wipe(&x->rep);
    return 0;
}

void ph_copy_xform_set_peek(ph_copy_xform *x, int column)
{
    if (x)
        x->peek = column >= 0 && column < x->ncols ? column : -1;
}

/* ---- options ------------------------------------------------------------------ */

/* PostgreSQL's ProcessCopyOptions checks that matter for parsing. */
static bool options_valid(const ph_copy_options *o, const char *null_s)
{
    if (o->format != PH_COPY_TEXT && o->format != PH_COPY_CSV && o->format != PH_COPY_BINARY)
        return false;
    if (o->format == PH_COPY_BINARY)
        return true;
    char d = o->delimiter;
    if (d == '\0' || d == '\n' || d == '\r')
        return false;
    if (o->format == PH_COPY_TEXT && strchr("\\.abcdefghijklmnopqrstuvwxyz0123456789", d))
        return false;
    if (strchr(null_s, '\n') || strchr(null_s, '\r') || strchr(null_s, d))
        return false;
    if (o->format == PH_COPY_CSV) {
        if (o->quote == '\0' || o->escape == '\0' || o->quote == d || strchr(null_s, o->quote))
            return false;
    }
    return true;
}

ph_copy_xform *ph_copy_xform_new(const ph_copy_options *o, ph_copy_direction dir, int ncols,
                                 const bool *transform, ph_copy_field_fn fn, void *ud)
{
    if (!o || !fn || ncols < 0 || ncols > 32767 || (ncols > 0 && !transform) ||
        (dir != PH_COPY_ENCRYPT && dir != PH_COPY_DECRYPT))
        return NULL;
    ph_copy_options def;
    ph_copy_options_default(&def, o->format);
    const char *null_s = o->null_s ? o->null_s : def.null_s;
    if (!options_valid(o, null_s))
        return NULL;
    ph_copy_xform *x = ph_calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->o = *o;
    x->null_len = strlen(null_s);
    x->null_s = strdup(null_s);
    x->transform = ph_calloc((size_t)ncols + 1, sizeof *x->transform);
    x->text = ph_calloc((size_t)ncols + 1, sizeof *x->text);
    x->fields = ph_calloc((size_t)ncols + 1, sizeof *x->fields);
    if (!x->null_s || !x->transform || !x->text || !x->fields) {
        ph_copy_xform_free(x);
        return NULL;
    }
    x->o.null_s = x->null_s;
    for (int i = 0; i < ncols; i++) {
        x->transform[i] = transform[i];
        if (transform[i])
            x->any_transform = true;
    }
    x->dir = dir;
    x->ncols = ncols;
    x->fn = fn;
    x->ud = ud;
    x->max_row = PH_COPY_MAX_ROW_DEFAULT;
    x->peek = -1;
    x->header_pending = o->format != PH_COPY_BINARY && o->header;
    x->bfield = -1;
    return x;
}

void ph_copy_xform_free(ph_copy_xform *x)
{
    if (!x)
        return;
    buf_destroy(&x->pend);
    buf_destroy(&x->val);
    buf_destroy(&x->rep);
    buf_destroy(&x->tmp);
    free(x->null_s);
    free(x->transform);
    free(x->text);
    free(x->fields);
    free(x);
}

void ph_copy_xform_set_text(ph_copy_xform *x, int column)
{
    if (x && column >= 0 && column < x->ncols)
        x->text[column] = true;
}

void ph_copy_xform_set_max_row(ph_copy_xform *x, size_t max_row)
{
    if (x)
        x->max_row = max_row ? max_row : 1;
}

/* ---- driver --------------------------------------------------------------------- */

#define KEEP_CAP ((size_t)4 << 20) /* scratch kept between feeds */

/* Gives back the memory of a large row once it is gone. */
static void trim(ph_copy_xform *x)
{
    ph_buf *scratch[] = {&x->val, &x->rep, &x->tmp};
    for (size_t i = 0; i < sizeof scratch / sizeof *scratch; i++)
        if (scratch[i]->cap > KEEP_CAP)
            buf_destroy(scratch[i]);
    if (x->pend.cap > KEEP_CAP && x->pend.len < KEEP_CAP / 2) {
        ph_buf small = {0};
        if (cp_append(&small, x->pend.data, x->pend.len) == 0) {
            buf_destroy(&x->pend);
            x->pend = small;
        }
    }
}

/* Drops the emitted prefix pend[0..cur) and wipes the vacated tail. */
static void compact(ph_copy_xform *x)
{
    size_t d = x->cur;
    if (d == 0)
        return;
    size_t rem = x->pend.len - d;
    if (rem)
        memmove(x->pend.data, x->pend.data + d, rem);
    OPENSSL_cleanse(x->pend.data + rem, d);
    x->pend.len = rem;
    x->cur = 0;
    x->scan_pos = x->scan_pos > d ? x->scan_pos - d : 0;
    x->bpos = x->bpos > d ? x->bpos - d : 0;
    for (int i = 0; i < x->bfield && i < x->ncols; i++) {
        x->fields[i].s -= d;
        x->fields[i].e -= d;
    }
}

static int run(ph_copy_xform *x, bool at_eof, ph_buf *out, char *err, size_t errlen)
{
    if (x->o.format == PH_COPY_BINARY)
        return cp_binary_run(x, at_eof, out, err, errlen);
    return cp_text_run(x, at_eof, out, err, errlen);
}

/* Fails the stream: nothing of this call stays in out, nothing buffered stays. */
static int fail(ph_copy_xform *x, ph_buf *out, size_t out0)
{
    x->failed = true;
    if (out->len > out0) {
        OPENSSL_cleanse(out->data + out0, out->len - out0);
        out->len = out0;
    }
    cp_wipe(&x->pend);
    x->cur = x->scan_pos = x->bpos = 0;
    cp_wipe(&x->val);
    cp_wipe(&x->rep);
    return -1;
}

int ph_copy_xform_feed(ph_copy_xform *x, const uint8_t *data, size_t len, ph_buf *out, char *err,
                       size_t errlen)
{
    if (!x || !out || (len && !data))
        return ph_errf(err, errlen, "COPY: invalid arguments");
    if (x->failed)
        return ph_errf(err, errlen, "COPY: the data stream already failed");
    if (x->finished)
        return ph_errf(err, errlen, "COPY: data after the end of the stream");
    size_t out0 = out->len;
    if (x->done && x->o.format != PH_COPY_BINARY)
        return 0; /* after the end marker: PostgreSQL ignores the rest */
    if (cp_append(&x->pend, data, len) != 0) {
        cp_oom(err, errlen);
        return fail(x, out, out0);
    }
    int rc = run(x, false, out, err, errlen);
    if (rc != 0)
        return fail(x, out, out0);
    compact(x);
    trim(x);
    return 0;
}

int ph_copy_xform_finish(ph_copy_xform *x, ph_buf *out, char *err, size_t errlen)
{
    if (!x || !out)
        return ph_errf(err, errlen, "COPY: invalid arguments");
    if (x->failed)
        return ph_errf(err, errlen, "COPY: the data stream already failed");
    if (x->finished)
        return 0;
    size_t out0 = out->len;
    if (run(x, true, out, err, errlen) != 0)
        return fail(x, out, out0);
    compact(x);
    x->finished = true;
    return 0;
}
