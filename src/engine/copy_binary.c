/*
 * copy_binary.c — the binary format of the COPY codec.
 *
 * Owns: the file header (the 11-byte signature PGCOPY\n\377\r\n\0, the
 * flags word, the header extension), tuples (an int16 field count, then per
 * field an int32 length, -1 for NULL, and the bytes) and the trailer (a
 * field count of -1), checked as PostgreSQL 15 checks them
 * (copyfromparse.c). The header, the trailer and untransformed fields are
 * copied through as they came.
 */
#include "engine/copy_internal.h"

#include <limits.h>
#include <string.h>

static const uint8_t signature[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0377, '\r', '\n', 0};

#define HEADER_LEN 19 /* signature + flags + extension length */

typedef enum { ST_GO = 0, ST_WAIT, ST_ERR } step;

static size_t avail(const ph_copy_xform *x, size_t from)
{
    return x->pend.len - from;
}

static step truncated(const ph_copy_xform *x, bool at_eof, char *err, size_t errlen)
{
    if (!at_eof)
        return ST_WAIT;
    ph_errf(err, errlen, "COPY row %llu: unexpected end of binary COPY data", x->line + 1);
    return ST_ERR;
}

static step header(ph_copy_xform *x, bool at_eof, ph_buf *out, char *err, size_t errlen)
{
    const size_t n = avail(x, x->cur);
    const uint8_t *b = n ? x->pend.data + x->cur : signature; /* no buffer before any data */
    if ((n == 0 && at_eof) ||
        (n > 0 && memcmp(b, signature, n < sizeof signature ? n : sizeof signature) != 0)) {
        ph_errf(err, errlen, "COPY file signature not recognized");
        return ST_ERR;
    }
    if (n < HEADER_LEN) {
        if (!at_eof)
            return ST_WAIT;
        ph_errf(err, errlen, "invalid COPY file header (truncated)");
        return ST_ERR;
    }
    const uint32_t flags = ph_get_u32(b + 11);
    if (flags & (1u << 16)) {
        ph_errf(err, errlen, "invalid COPY file header (WITH OIDS)");
        return ST_ERR;
    }
    if ((flags & ~(1u << 16)) >> 16) {
        ph_errf(err, errlen, "unrecognized critical flags in COPY file header");
        return ST_ERR;
    }
    const int32_t ext = (int32_t)ph_get_u32(b + 15);
    if (ext < 0) {
        ph_errf(err, errlen, "invalid COPY file header (missing length)");
        return ST_ERR;
    }
    if (cp_append(out, b, HEADER_LEN) != 0) {
        cp_oom(err, errlen);
        return ST_ERR;
    }
    x->cur += HEADER_LEN;
    x->ext_left = (size_t)ext;
    x->bstate = CP_BIN_EXT;
    return ST_GO;
}

/* The header extension streams through (it is not row data). */
static step extension(ph_copy_xform *x, bool at_eof, ph_buf *out, char *err, size_t errlen)
{
    size_t n = avail(x, x->cur);
    if (n > x->ext_left)
        n = x->ext_left;
    if (cp_append(out, x->pend.data + x->cur, n) != 0) {
        cp_oom(err, errlen);
        return ST_ERR;
    }
    x->cur += n;
    x->ext_left -= n;
    if (x->ext_left) {
        if (!at_eof)
            return ST_WAIT;
        ph_errf(err, errlen, "invalid COPY file header (wrong length)");
        return ST_ERR;
    }
    x->bstate = CP_BIN_TUPLE;
    x->bfield = -1;
    return ST_GO;
}

/* Locates the fields of the current tuple (resuming where the last feed
 * stopped). */
static step locate(ph_copy_xform *x, bool at_eof, char *err, size_t errlen)
{
    if (x->bfield < 0) {
        const size_t n = avail(x, x->cur);
        if (n < 2) {
            if (n == 0 && at_eof)
                return ST_WAIT; /* the data may end without the trailer */
            return truncated(x, at_eof, err, errlen);
        }
        const int16_t count = (int16_t)ph_get_u16(x->pend.data + x->cur);
        if (count == -1) {
            x->bstate = CP_BIN_DONE;
            return ST_GO;
        }
        if (count != x->ncols) {
            ph_errf(err, errlen, "COPY row %llu: row field count is %d, expected %d", x->line + 1,
                    (int)count, x->ncols);
            return ST_ERR;
        }
        x->bfield = 0;
        x->bpos = x->cur + 2;
    }
    while (x->bfield < x->ncols) {
        if (avail(x, x->bpos) < 4)
            return truncated(x, at_eof, err, errlen);
        const int32_t len = (int32_t)ph_get_u32(x->pend.data + x->bpos);
        if (len < -1) {
            ph_errf(err, errlen, "COPY row %llu: invalid field size", x->line + 1);
            return ST_ERR;
        }
        const size_t need = 4 + (len > 0 ? (size_t)len : 0);
        if (x->bpos - x->cur + need > x->max_row) {
            ph_errf(err, errlen, "COPY row %llu is longer than %zu bytes", x->line + 1, x->max_row);
            return ST_ERR;
        }
        if (avail(x, x->bpos) < need)
            return truncated(x, at_eof, err, errlen);
        cp_field *f = &x->fields[x->bfield++];
        f->s = x->bpos + 4;
        f->e = x->bpos + need;
        f->null = len == -1;
        x->bpos += need;
    }
    return ST_GO;
}

static int put_field(ph_copy_xform *x, int col, const cp_field *f, ph_buf *out, char *err,
                     size_t errlen)
{
    bool out_null = false;
    if (cp_call(x, col, x->pend.data + f->s, f->e - f->s, f->null, &out_null, err, errlen) != 0)
        return -1;
    int rc = 0;
    if (out_null) {
        const uint8_t minus1[4] = {0xff, 0xff, 0xff, 0xff};
        rc = cp_append(out, minus1, 4) != 0 ? cp_oom(err, errlen) : 0;
    } else if (x->rep.len > INT32_MAX) {
        rc = ph_errf(err, errlen, "COPY row %llu, column %d: the value is too long", x->line,
                     col + 1);
    } else {
        uint8_t len[4];
        ph_put_u32(len, (uint32_t)x->rep.len);
        if (cp_append(out, len, 4) != 0 || cp_append(out, x->rep.data, x->rep.len) != 0)
            rc = cp_oom(err, errlen);
    }
    cp_wipe(&x->rep);
    return rc;
}

/* Emits the located tuple pend[cur, bpos). */
static int emit_tuple(ph_copy_xform *x, ph_buf *out, char *err, size_t errlen)
{
    const uint8_t *b = x->pend.data;
    x->line++;
    if (!x->any_transform)
        return cp_append(out, b + x->cur, x->bpos - x->cur) != 0 ? cp_oom(err, errlen) : 0;
    if (cp_append(out, b + x->cur, 2) != 0)
        return cp_oom(err, errlen);
    if (x->peek >= 0 && x->dir == PH_COPY_ENCRYPT) {
        const cp_field *f = &x->fields[x->peek];
        if (cp_peek(x, b + f->s, f->e - f->s, f->null, err, errlen) != 0)
            return -1;
    }
    for (int i = 0; i < x->ncols; i++) {
        const cp_field *f = &x->fields[i];
        if (!x->transform[i]) {
            if (cp_append(out, b + f->s - 4, f->e - f->s + 4) != 0)
                return cp_oom(err, errlen);
        } else if (put_field(x, i, f, out, err, errlen) != 0)
            return -1;
    }
    return 0;
}

static step tuple(ph_copy_xform *x, bool at_eof, ph_buf *out, char *err, size_t errlen)
{
    step s = locate(x, at_eof, err, errlen);
    if (s != ST_GO)
        return s;
    if (x->bstate == CP_BIN_DONE) { /* the trailer */
        if (cp_append(out, x->pend.data + x->cur, 2) != 0) {
            cp_oom(err, errlen);
            return ST_ERR;
        }
        x->cur += 2;
        return ST_GO;
    }
    if (emit_tuple(x, out, err, errlen) != 0)
        return ST_ERR;
    x->cur = x->bpos;
    x->bfield = -1;
    return ST_GO;
}

int cp_binary_run(ph_copy_xform *x, bool at_eof, ph_buf *out, char *err, size_t errlen)
{
    for (;;) {
        step s;
        switch (x->bstate) {
        case CP_BIN_HEADER:
            s = header(x, at_eof, out, err, errlen);
            break;
        case CP_BIN_EXT:
            s = extension(x, at_eof, out, err, errlen);
            break;
        case CP_BIN_TUPLE:
            s = tuple(x, at_eof, out, err, errlen);
            break;
        default:
            if (avail(x, x->cur))
                return ph_errf(err, errlen, "received copy data after EOF marker");
            return 0;
        }
        if (s == ST_ERR)
            return -1;
        if (s == ST_WAIT)
            return 0;
    }
}
