/*
 * copy_text.c — the text and CSV formats of the COPY codec.
 *
 * Owns: the line scanner (PostgreSQL 15's CopyReadLineText: line ends,
 * backslash escapes, CSV quotes spanning lines, the \. end marker), the
 * field splitters/decoders (CopyReadAttributesText, CopyReadAttributesCSV),
 * the encoders (CopyAttributeOutText, CopyAttributeOutCSV), the bytea
 * \x<hex> form, and the row loop. Untransformed bytes are copied through
 * as they came.
 */
#include "engine/copy_internal.h"

#include <string.h>

#include "common/hex.h"

typedef enum { SC_MORE = 0, SC_LINE, SC_END, SC_ERR } sc_status;

typedef struct sc_line {
    size_t content_end; /* end of the row's bytes */
    size_t next;        /* after its line end (or its end marker) */
    bool marker;        /* the data ends with \. here */
} sc_line;

static bool is_csv(const ph_copy_xform *x)
{
    return x->o.format == PH_COPY_CSV;
}

static bool is_oct(uint8_t c)
{
    return c >= '0' && c <= '7';
}

/* ---- line scanner ---------------------------------------------------------------- */

static int eol_error(const ph_copy_xform *x, bool cr, char *err, size_t errlen)
{
    return ph_errf(err, errlen, "COPY line %llu: %s %s found in data", x->line + 1,
                   is_csv(x) ? "unquoted" : "literal", cr ? "carriage return" : "newline");
}

static int nul_error(const ph_copy_xform *x, char *err, size_t errlen)
{
    return ph_errf(err, errlen, "COPY line %llu: invalid byte sequence (a NUL byte)", x->line + 1);
}

/* Remembers where the scan resumes (before the byte that needs lookahead). */
static sc_status need_more(ph_copy_xform *x, size_t at, bool in_quote, bool last_was_esc)
{
    x->scan_pos = at;
    x->in_quote = in_quote;
    x->last_was_esc = last_was_esc;
    return SC_MORE;
}

/* After "\." (backslash at bs, p just after the dot): 1 = the end marker
 * (r filled), 0 = CSV data after all, 2 = more input needed, -1 = error. */
static int end_marker(ph_copy_xform *x, size_t bs, size_t p, bool at_eof, sc_line *r, char *err,
                      size_t errlen)
{
    const uint8_t *b = x->pend.data;
    const size_t n = x->pend.len;
    const bool csv = is_csv(x);
    uint8_t c2;
    if (x->eol == CP_EOL_CRNL) {
        if (p >= n && !at_eof)
            return 2;
        c2 = p < n ? b[p++] : 0;
        if (c2 == '\n') {
            if (!csv)
                return ph_errf(err, errlen,
                               "COPY line %llu: end-of-copy marker does not match previous "
                               "newline style",
                               x->line + 1);
            return 0;
        }
        if (c2 != '\r') {
            if (!csv)
                return ph_errf(err, errlen, "COPY line %llu: end-of-copy marker corrupt",
                               x->line + 1);
            return 0;
        }
    }
    if (p >= n && !at_eof)
        return 2;
    c2 = p < n ? b[p++] : 0;
    if (c2 != '\r' && c2 != '\n') {
        if (!csv)
            return ph_errf(err, errlen, "COPY line %llu: end-of-copy marker corrupt", x->line + 1);
        return 0;
    }
    if ((x->eol == CP_EOL_NL && c2 != '\n') || (x->eol == CP_EOL_CRNL && c2 != '\n') ||
        (x->eol == CP_EOL_CR && c2 != '\r'))
        return ph_errf(err, errlen,
                       "COPY line %llu: end-of-copy marker does not match previous newline style",
                       x->line + 1);
    r->content_end = bs;
    r->next = p;
    r->marker = true;
    return 1;
}

/* A line end at prev (c is '\r' or '\n', p after it); fills r. */
static sc_status line_end(ph_copy_xform *x, uint8_t c, size_t prev, size_t p, bool at_eof,
                          sc_line *r, char *err, size_t errlen)
{
    const uint8_t *b = x->pend.data;
    const size_t n = x->pend.len;
    if (c == '\r') {
        if (x->eol == CP_EOL_UNKNOWN || x->eol == CP_EOL_CRNL) {
            if (p >= n && !at_eof)
                return SC_MORE;
            if (p < n && b[p] == '\n') {
                p++;
                x->eol = CP_EOL_CRNL;
            } else {
                if (x->eol == CP_EOL_CRNL)
                    return eol_error(x, true, err, errlen), SC_ERR;
                x->eol = CP_EOL_CR;
            }
        } else if (x->eol == CP_EOL_NL)
            return eol_error(x, true, err, errlen), SC_ERR;
    } else {
        if (x->eol == CP_EOL_CR || x->eol == CP_EOL_CRNL)
            return eol_error(x, false, err, errlen), SC_ERR;
        x->eol = CP_EOL_NL;
    }
    r->content_end = prev;
    r->next = p;
    r->marker = false;
    return SC_LINE;
}

/* Finds the end of the line that starts at x->cur, resuming at x->scan_pos
 * (PostgreSQL's CopyReadLineText). SC_END: the data ends in this line (end
 * marker, or end of input when at_eof). */
static sc_status scan_line(ph_copy_xform *x, bool at_eof, sc_line *r, char *err, size_t errlen)
{
    const uint8_t *b = x->pend.data;
    const size_t n = x->pend.len;
    const bool csv = is_csv(x);
    const int quotec = csv ? (uint8_t)x->o.quote : -1;
    /* as in PostgreSQL, an escape equal to the quote needs no tracking here */
    const int escapec = csv && x->o.escape != x->o.quote ? (uint8_t)x->o.escape : -1;
    size_t p = x->scan_pos;
    bool in_quote = x->in_quote, last_esc = x->last_was_esc;
    for (;;) {
        const size_t prev = p;
        const bool q0 = in_quote, e0 = last_esc;
        if (p >= n) {
            if (!at_eof)
                return need_more(x, prev, q0, e0);
            r->content_end = r->next = n;
            r->marker = false;
            return SC_END;
        }
        const uint8_t c = b[p++];
        if (c == '\0')
            return nul_error(x, err, errlen), SC_ERR;
        if (csv) {
            if ((c == '\\' || c == '\r') && p >= n && !at_eof)
                return need_more(x, prev, q0, e0);
            if (in_quote && c == escapec)
                last_esc = !last_esc;
            if (c == quotec && !last_esc)
                in_quote = !in_quote;
            if (c != escapec)
                last_esc = false;
        }
        if ((c == '\r' || c == '\n') && !in_quote) {
            sc_status st = line_end(x, c, prev, p, at_eof, r, err, errlen);
            return st == SC_MORE ? need_more(x, prev, q0, e0) : st;
        }
        if (c == '\\' && (!csv || prev == x->cur)) {
            if (p >= n) {
                if (!at_eof)
                    return need_more(x, prev, q0, e0);
                r->content_end = r->next = n; /* backslash just before the end: data */
                r->marker = false;
                return SC_END;
            }
            if (b[p] == '.') {
                int m = end_marker(x, prev, p + 1, at_eof, r, err, errlen);
                if (m == 2)
                    return need_more(x, prev, q0, e0);
                if (m < 0)
                    return SC_ERR;
                if (m == 1)
                    return SC_END;
                p = prev + 1; /* CSV: "\." followed by data is data */
            } else if (!csv) {
                if (b[p] == '\0')
                    return nul_error(x, err, errlen), SC_ERR;
                p++; /* the escaped byte, even a line end, belongs to the line */
            }
        }
    }
}

/* ---- fields ------------------------------------------------------------------------ */

/* The byte after a backslash (at b[*pp - 1] = c), with its digits. */
static uint8_t text_unescape(const uint8_t *b, size_t *pp, size_t e, uint8_t c)
{
    size_t p = *pp;
    unsigned v;
    switch (c) {
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
        v = (unsigned)(c - '0');
        if (p < e && is_oct(b[p])) {
            v = (v << 3) + (unsigned)(b[p++] - '0');
            if (p < e && is_oct(b[p]))
                v = (v << 3) + (unsigned)(b[p++] - '0');
        }
        c = (uint8_t)(v & 0xff);
        break;
    case 'x':
        if (p < e && ph_hex_val(b[p]) >= 0) {
            v = (unsigned)ph_hex_val(b[p++]);
            if (p < e && ph_hex_val(b[p]) >= 0)
                v = (v << 4) + (unsigned)ph_hex_val(b[p++]);
            c = (uint8_t)v;
        }
        break;
    case 'b':
        c = '\b';
        break;
    case 'f':
        c = '\f';
        break;
    case 'n':
        c = '\n';
        break;
    case 'r':
        c = '\r';
        break;
    case 't':
        c = '\t';
        break;
    case 'v':
        c = '\v';
        break;
    default:
        break; /* any other byte stands for itself */
    }
    *pp = p;
    return c;
}

/* One text-format field from *pp to its delimiter or e
 * (CopyReadAttributesText); de-escaped into dec (room reserved) when dec is
 * non-NULL. *found: a delimiter ended it; *ne: the end of the raw bytes
 * compared with the NULL string. */
static void text_field(const ph_copy_xform *x, size_t *pp, size_t e, ph_buf *dec, bool *found,
                       size_t *ne)
{
    const uint8_t *b = x->pend.data;
    const uint8_t delim = (uint8_t)x->o.delimiter;
    size_t p = *pp;
    *found = false;
    for (;;) {
        *ne = p;
        if (p >= e)
            break;
        uint8_t c = b[p++];
        if (c == delim) {
            *found = true;
            break;
        }
        if (c == '\\') {
            if (p >= e)
                break;
            c = b[p++];
            c = text_unescape(b, &p, e, c);
        }
        if (dec)
            dec->data[dec->len++] = c;
    }
    *pp = p;
}

/* One CSV field (CopyReadAttributesCSV); decoded into dec (room reserved)
 * when non-NULL. */
static int csv_field(const ph_copy_xform *x, size_t *pp, size_t e, ph_buf *dec, bool *found,
                     bool *saw_quote, char *err, size_t errlen)
{
    const uint8_t *b = x->pend.data;
    const uint8_t delim = (uint8_t)x->o.delimiter, quote = (uint8_t)x->o.quote,
                  esc = (uint8_t)x->o.escape;
    size_t p = *pp;
    *found = *saw_quote = false;
    for (;;) {
        for (;;) { /* not in quotes */
            if (p >= e)
                goto end;
            uint8_t c = b[p++];
            if (c == delim) {
                *found = true;
                goto end;
            }
            if (c == quote) {
                *saw_quote = true;
                break;
            }
            if (dec)
                dec->data[dec->len++] = c;
        }
        for (;;) { /* in quotes */
            if (p >= e)
                return ph_errf(err, errlen, "COPY line %llu: unterminated CSV quoted field",
                               x->line);
            uint8_t c = b[p++];
            if (c == esc && p < e && (b[p] == esc || b[p] == quote)) {
                if (dec)
                    dec->data[dec->len++] = b[p];
                p++;
                continue;
            }
            if (c == quote)
                break;
            if (dec)
                dec->data[dec->len++] = c;
        }
    }
end:
    *pp = p;
    return 0;
}

static bool is_null_string(const ph_copy_xform *x, size_t s, size_t e)
{
    return e - s == x->null_len && memcmp(x->pend.data + s, x->null_s, x->null_len) == 0;
}

/* Splits the row [s, e) into exactly ncols fields. */
static int split(ph_copy_xform *x, size_t s, size_t e, char *err, size_t errlen)
{
    if (x->ncols == 0) {
        if (e != s)
            return ph_errf(err, errlen, "COPY line %llu: extra data after last expected column",
                           x->line);
        return 0;
    }
    size_t p = s;
    for (int i = 0;; i++) {
        if (i == x->ncols)
            return ph_errf(err, errlen, "COPY line %llu: extra data after last expected column",
                           x->line);
        const size_t fs = p;
        bool found, quoted = false;
        size_t ne;
        if (is_csv(x)) {
            if (csv_field(x, &p, e, NULL, &found, &quoted, err, errlen) != 0)
                return -1;
            ne = found ? p - 1 : p;
        } else
            text_field(x, &p, e, NULL, &found, &ne);
        cp_field *f = &x->fields[i];
        f->s = fs;
        f->e = found ? p - 1 : p;
        f->null = !quoted && is_null_string(x, fs, ne);
        if (!found) {
            if (i + 1 < x->ncols)
                return ph_errf(err, errlen, "COPY line %llu: missing data for column %d", x->line,
                               i + 2);
            return 0;
        }
    }
}

/* ---- encoders ---------------------------------------------------------------------- */

/* CopyAttributeOutText. */
static int text_encode(const ph_copy_xform *x, const uint8_t *v, size_t n, ph_buf *out)
{
    if (n == 0)
        return 0; /* out may have no buffer yet: nothing to point into */
    if (n > SIZE_MAX / 4 || cp_reserve(out, 2 * n) != 0)
        return -1;
    const uint8_t delim = (uint8_t)x->o.delimiter;
    uint8_t *o = out->data + out->len;
    for (size_t i = 0; i < n; i++) {
        const uint8_t c = v[i];
        uint8_t esc = 0;
        if (c < 0x20) {
            switch (c) {
            case '\b':
                esc = 'b';
                break;
            case '\f':
                esc = 'f';
                break;
            case '\n':
                esc = 'n';
                break;
            case '\r':
                esc = 'r';
                break;
            case '\t':
                esc = 't';
                break;
            case '\v':
                esc = 'v';
                break;
            default:
                esc = c == delim ? c : 0;
                break;
            }
        } else if (c == '\\' || c == delim)
            esc = c;
        if (esc) {
            *o++ = '\\';
            *o++ = esc;
        } else
            *o++ = c;
    }
    out->len = (size_t)(o - out->data);
    return 0;
}

/* CopyAttributeOutCSV (no FORCE_QUOTE). */
static int csv_encode(const ph_copy_xform *x, const uint8_t *v, size_t n, ph_buf *out)
{
    const uint8_t delim = (uint8_t)x->o.delimiter, quote = (uint8_t)x->o.quote,
                  esc = (uint8_t)x->o.escape;
    bool use_quote = n == x->null_len && (n == 0 || memcmp(v, x->null_s, n) == 0);
    if (!use_quote && x->ncols == 1 && n == 2 && v[0] == '\\' && v[1] == '.')
        use_quote = true;
    for (size_t i = 0; i < n && !use_quote; i++)
        if (v[i] == delim || v[i] == quote || v[i] == '\n' || v[i] == '\r')
            use_quote = true;
    if (!use_quote)
        return cp_append(out, v, n);
    if (n > SIZE_MAX / 4 || cp_reserve(out, 2 * n + 2) != 0)
        return -1;
    uint8_t *o = out->data + out->len;
    *o++ = quote;
    for (size_t i = 0; i < n; i++) {
        if (v[i] == quote || v[i] == esc)
            *o++ = esc;
        *o++ = v[i];
    }
    *o++ = quote;
    out->len = (size_t)(o - out->data);
    return 0;
}

static int encode(const ph_copy_xform *x, const uint8_t *v, size_t n, ph_buf *out)
{
    return is_csv(x) ? csv_encode(x, v, n, out) : text_encode(x, v, n, out);
}

/* ---- bytea text form --------------------------------------------------------------- */

/* x->val holds a bytea in text form: replaces it by its bytes. */
static int bytea_from_text(ph_copy_xform *x, int col, char *err, size_t errlen)
{
    const uint8_t *v = x->val.data;
    const size_t n = x->val.len;
    if (n < 2 || v[0] != '\\' || v[1] != 'x')
        return ph_errf(err, errlen,
                       "COPY line %llu, column %d: unexpected bytea output format (set "
                       "bytea_output=hex)",
                       x->line, col + 1);
    if ((n - 2) % 2)
        return ph_errf(err, errlen, "COPY line %llu, column %d: invalid hexadecimal bytea data",
                       x->line, col + 1);
    cp_wipe(&x->tmp);
    if (cp_reserve(&x->tmp, (n - 2) / 2 + 1) != 0)
        return cp_oom(err, errlen);
    for (size_t i = 2; i < n; i += 2) {
        int hi = ph_hex_val(v[i]), lo = ph_hex_val(v[i + 1]);
        if (hi < 0 || lo < 0)
            return ph_errf(err, errlen, "COPY line %llu, column %d: invalid hexadecimal bytea data",
                           x->line, col + 1);
        x->tmp.data[x->tmp.len++] = (uint8_t)(hi << 4 | lo);
    }
    ph_buf t = x->val;
    x->val = x->tmp;
    x->tmp = t;
    cp_wipe(&x->tmp);
    return 0;
}

/* Writes x->rep (envelope bytes) as bytea \x<hex>, encoded for the format. */
static int put_bytea(ph_copy_xform *x, int col, ph_buf *out, char *err, size_t errlen)
{
    static const char hexd[] = "0123456789abcdef";
    const size_t n = x->rep.len;
    cp_wipe(&x->tmp);
    if (n > SIZE_MAX / 4 || cp_reserve(&x->tmp, 2 * n + 2) != 0)
        return cp_oom(err, errlen);
    uint8_t *o = x->tmp.data;
    *o++ = '\\';
    *o++ = 'x';
    for (size_t i = 0; i < n; i++) {
        *o++ = (uint8_t)hexd[x->rep.data[i] >> 4];
        *o++ = (uint8_t)hexd[x->rep.data[i] & 15];
    }
    x->tmp.len = 2 * n + 2;
    const size_t o0 = out->len;
    if (encode(x, x->tmp.data, x->tmp.len, out) != 0)
        return cp_oom(err, errlen);
    if (!is_csv(x) && out->len - o0 == x->null_len &&
        memcmp(out->data + o0, x->null_s, x->null_len) == 0)
        return ph_errf(err, errlen,
                       "COPY line %llu, column %d: the encrypted value would read as the NULL "
                       "string",
                       x->line, col + 1);
    return 0;
}

/* Writes x->rep (a plaintext value in the type's text form). */
static int put_plain(ph_copy_xform *x, int col, ph_buf *out, char *err, size_t errlen)
{
    if (x->rep.len && memchr(x->rep.data, 0, x->rep.len))
        return ph_errf(err, errlen, "COPY line %llu, column %d: the value contains a NUL byte",
                       x->line, col + 1);
    if (encode(x, x->rep.data, x->rep.len, out) != 0)
        return cp_oom(err, errlen);
    return 0;
}

/* ---- rows ---------------------------------------------------------------------------- */

static int decode_field(ph_copy_xform *x, int col, const cp_field *f, char *err, size_t errlen)
{
    if (cp_reserve(&x->val, f->e - f->s + 1) != 0)
        return cp_oom(err, errlen);
    size_t p = f->s, ne;
    bool found, quoted;
    if (is_csv(x)) {
        if (csv_field(x, &p, f->e, &x->val, &found, &quoted, err, errlen) != 0)
            return -1;
    } else
        text_field(x, &p, f->e, &x->val, &found, &ne);
    if (x->dir == PH_COPY_DECRYPT && !x->text[col])
        return bytea_from_text(x, col, err, errlen);
    if (x->val.len && memchr(x->val.data, 0, x->val.len))
        return ph_errf(err, errlen, "COPY line %llu, column %d: invalid byte sequence (a NUL byte)",
                       x->line, col + 1);
    return 0;
}

static int transform_field(ph_copy_xform *x, int col, const cp_field *f, ph_buf *out, char *err,
                           size_t errlen)
{
    bool out_null = false;
    int rc = 0;
    cp_wipe(&x->val);
    if (!f->null)
        rc = decode_field(x, col, f, err, errlen);
    if (rc == 0)
        rc = cp_call(x, col, x->val.data, x->val.len, f->null, &out_null, err, errlen);
    cp_wipe(&x->val);
    if (rc != 0)
        return -1;
    if (out_null)
        rc = cp_append(out, x->null_s, x->null_len) != 0 ? cp_oom(err, errlen) : 0;
    else if (x->dir == PH_COPY_ENCRYPT && !x->text[col])
        rc = put_bytea(x, col, out, err, errlen);
    else
        rc = put_plain(x, col, out, err, errlen);
    cp_wipe(&x->rep);
    cp_wipe(&x->tmp);
    return rc;
}

/* The peek column's decoded value to the callback (ENCRYPT direction). */
static int peek_field(ph_copy_xform *x, char *err, size_t errlen)
{
    const cp_field *f = &x->fields[x->peek];
    int rc = 0;
    cp_wipe(&x->val);
    if (!f->null)
        rc = decode_field(x, x->peek, f, err, errlen);
    if (rc == 0)
        rc = cp_peek(x, x->val.data, x->val.len, f->null, err, errlen);
    cp_wipe(&x->val);
    return rc;
}

static int row(ph_copy_xform *x, size_t s, size_t e, ph_buf *out, char *err, size_t errlen)
{
    if (split(x, s, e, err, errlen) != 0)
        return -1;
    if (x->peek >= 0 && x->dir == PH_COPY_ENCRYPT && peek_field(x, err, errlen) != 0)
        return -1;
    const uint8_t *b = x->pend.data;
    size_t pos = s;
    for (int i = 0; i < x->ncols; i++) {
        if (!x->transform[i])
            continue;
        const cp_field *f = &x->fields[i];
        if (cp_append(out, b + pos, f->s - pos) != 0)
            return cp_oom(err, errlen);
        if (transform_field(x, i, f, out, err, errlen) != 0)
            return -1;
        pos = f->e;
    }
    return cp_append(out, b + pos, e - pos) != 0 ? cp_oom(err, errlen) : 0;
}

int cp_text_run(ph_copy_xform *x, bool at_eof, ph_buf *out, char *err, size_t errlen)
{
    for (;;) {
        if (x->done) { /* after the end marker: dropped, as the server ignores it */
            x->cur = x->scan_pos = x->pend.len;
            return 0;
        }
        sc_line r = {0};
        const sc_status st = scan_line(x, at_eof, &r, err, errlen);
        if (st == SC_ERR)
            return -1;
        if (st == SC_MORE) {
            if (x->pend.len - x->cur > x->max_row)
                return ph_errf(err, errlen, "COPY line %llu is longer than %zu bytes", x->line + 1,
                               x->max_row);
            return 0;
        }
        const size_t s = x->cur;
        if (st == SC_END && !r.marker && r.content_end == s) {
            x->done = true; /* the input ended after a complete line */
            continue;
        }
        x->line++;
        size_t raw_from = s; /* from here to r.next: copied as it came */
        if (x->header_pending)
            x->header_pending = false;
        else if (st == SC_LINE || r.content_end > s) {
            if (row(x, s, r.content_end, out, err, errlen) != 0)
                return -1;
            raw_from = r.content_end; /* the line end or the end marker */
        }
        if (cp_append(out, x->pend.data + raw_from, r.next - raw_from) != 0)
            return cp_oom(err, errlen);
        x->cur = x->scan_pos = r.next;
        x->in_quote = x->last_was_esc = false;
        if (st == SC_END)
            x->done = true;
    }
}
