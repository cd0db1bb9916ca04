/*
 * encode_jsonb.c — the canonical text of a jsonb value: what PostgreSQL's
 * jsonb_out prints for it, so that a value stored through the proxy reads
 * back (and compares, in deterministic mode) exactly as PostgreSQL would
 * show it.
 *
 * Owns: parsing JSON (RFC 8259, as jsonb_in accepts it: no \u0000, no lone
 * surrogates, nesting bounded), and printing it the jsonb way: object keys
 * unique (the last duplicate wins) and ordered by length, then bytes;
 * ", " and ": " separators; strings with only ", \, \b, \f, \n, \r, \t and
 * other control characters (\u00xx) escaped; numbers as numeric_out prints
 * them (exponents expanded, the scale kept: 1.50 stays 1.50, 1e2 is 100).
 * Nothing is logged; temporary buffers are wiped (they hold the value).
 */
#include "crypto/encode_impl.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#define JSONB_MAX_DEPTH 1000

typedef struct jp {
    const char *s;
    size_t len, i;
    int depth;
} jp;

static ph_enc_status value(jp *p, ph_buf *out);

static void wipe(ph_buf *b)
{
    if (b->data)
        OPENSSL_cleanse(b->data, b->cap);
    ph_buf_free(b);
}

static void skip_ws(jp *p)
{
    while (p->i < p->len &&
           (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int peek(const jp *p)
{
    return p->i < p->len ? (unsigned char)p->s[p->i] : -1;
}

static ph_enc_status put(ph_buf *out, const char *s, size_t n)
{
    return ph_buf_append(out, s, n) == 0 ? PH_ENC_OK : PH_ENC_ENOMEM;
}

/* ---- strings ------------------------------------------------------------------ */

static int hex4(const char *s, unsigned *v)
{
    *v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d > 15)
            return -1;
        *v = *v << 4 | d;
    }
    return 0;
}

static ph_enc_status put_utf8(ph_buf *out, unsigned cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | cp >> 6);
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | cp >> 12);
        b[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | cp >> 18);
        b[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        b[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return put(out, b, n);
}

/* \uXXXX (and its low surrogate) at p->i (after the backslash and 'u'). */
static ph_enc_status unicode_escape(jp *p, ph_buf *out)
{
    unsigned hi, lo;
    if (p->i + 4 > p->len || hex4(p->s + p->i, &hi) != 0)
        return PH_ENC_ESYNTAX;
    p->i += 4;
    if (hi == 0)
        return PH_ENC_EINVAL; /* jsonb cannot hold \u0000 */
    if (hi >= 0xDC00 && hi <= 0xDFFF)
        return PH_ENC_ESYNTAX; /* a low surrogate alone */
    if (hi >= 0xD800 && hi <= 0xDBFF) {
        if (p->i + 6 > p->len || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u' ||
            hex4(p->s + p->i + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
            return PH_ENC_ESYNTAX;
        p->i += 6;
        hi = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
    }
    return put_utf8(out, hi);
}

/* A string at p->i (the opening quote), decoded into out. */
static ph_enc_status string_decoded(jp *p, ph_buf *out)
{
    p->i++;
    while (p->i < p->len) {
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') {
            p->i++;
            return PH_ENC_OK;
        }
        if (c < 0x20)
            return PH_ENC_ESYNTAX; /* raw control characters are not JSON */
        if (c != '\\') {
            size_t start = p->i;
            while (p->i < p->len && p->s[p->i] != '"' && p->s[p->i] != '\\' &&
                   (unsigned char)p->s[p->i] >= 0x20)
                p->i++;
            if (put(out, p->s + start, p->i - start) != PH_ENC_OK)
                return PH_ENC_ENOMEM;
            continue;
        }
        if (++p->i >= p->len)
            return PH_ENC_ESYNTAX;
        char e = p->s[p->i++], r;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            r = e;
            break;
        case 'b':
            r = '\b';
            break;
        case 'f':
            r = '\f';
            break;
        case 'n':
            r = '\n';
            break;
        case 'r':
            r = '\r';
            break;
        case 't':
            r = '\t';
            break;
        case 'u': {
            ph_enc_status st = unicode_escape(p, out);
            if (st != PH_ENC_OK)
                return st;
            continue;
        }
        default:
            return PH_ENC_ESYNTAX;
        }
        if (put(out, &r, 1) != PH_ENC_OK)
            return PH_ENC_ENOMEM;
    }
    return PH_ENC_ESYNTAX;
}

/* PostgreSQL's escape_json. */
static ph_enc_status string_out(const uint8_t *d, size_t n, ph_buf *out)
{
    static const char hexd[] = "0123456789abcdef";
    if (ph_buf_reserve(out, n + 2) != 0 || put(out, "\"", 1) != PH_ENC_OK)
        return PH_ENC_ENOMEM;
    for (size_t k = 0; k < n; k++) {
        char esc[7];
        size_t el = 2;
        esc[0] = '\\';
        switch (d[k]) {
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '"':
        case '\\':
            esc[1] = (char)d[k];
            break;
        default:
            if (d[k] >= 0x20) {
                if (put(out, (const char *)d + k, 1) != PH_ENC_OK)
                    return PH_ENC_ENOMEM;
                continue;
            }
            memcpy(esc + 1, "u00", 3);
            esc[4] = hexd[d[k] >> 4];
            esc[5] = hexd[d[k] & 15];
            el = 6;
        }
        if (put(out, esc, el) != PH_ENC_OK)
            return PH_ENC_ENOMEM;
    }
    return put(out, "\"", 1);
}

/* ---- numbers ------------------------------------------------------------------- */

static size_t digits(const jp *p, size_t i)
{
    size_t k = i;
    while (k < p->len && p->s[k] >= '0' && p->s[k] <= '9')
        k++;
    return k - i;
}

/* A JSON number, printed as numeric_out prints the numeric it reads as. */
static ph_enc_status number(jp *p, ph_buf *out)
{
    size_t start = p->i, n;
    long frac = 0, exp = 0;
    if (peek(p) == '-')
        p->i++;
    if (!(n = digits(p, p->i)) || (p->s[p->i] == '0' && n > 1))
        return PH_ENC_ESYNTAX;
    p->i += n;
    if (peek(p) == '.') {
        if (!(n = digits(p, ++p->i)))
            return PH_ENC_ESYNTAX;
        frac = (long)n;
        p->i += n;
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        int neg = 0;
        p->i++;
        if (peek(p) == '+' || peek(p) == '-')
            neg = p->s[p->i++] == '-';
        if (!(n = digits(p, p->i)))
            return PH_ENC_ESYNTAX;
        for (size_t k = 0; k < n && exp < 100000000; k++)
            exp = exp * 10 + (p->s[p->i + k] - '0');
        exp = neg ? -exp : exp;
        p->i += n;
    }
    ph_buf canon = {0};
    ph_enc_status st = ph_enc_numeric_from_text(p->s + start, p->i - start, &canon);
    long scale = frac - exp; /* numeric_in's display scale */
    if (st == PH_ENC_OK)
        st = ph_enc_numeric_to_text(canon.data, canon.len, scale > 0 ? (int)scale : 0, out);
    wipe(&canon);
    return st;
}

/* ---- containers ----------------------------------------------------------------- */

typedef struct member {
    ph_buf key, val;
    size_t order;
} member;

static int same_key(const member *x, const member *y)
{
    return x->key.len == y->key.len &&
           (x->key.len == 0 || memcmp(x->key.data, y->key.data, x->key.len) == 0);
}

static int cmp_member(const void *a, const void *b)
{
    const member *x = a, *y = b;
    if (x->key.len != y->key.len)
        return x->key.len < y->key.len ? -1 : 1;
    int c = x->key.len ? memcmp(x->key.data, y->key.data, x->key.len) : 0;
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static void free_members(member *m, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        wipe(&m[k].key);
        wipe(&m[k].val);
    }
    free(m);
}

static ph_enc_status emit_object(member *m, size_t n, ph_buf *out)
{
    qsort(m, n, sizeof *m, cmp_member);
    ph_enc_status st = put(out, "{", 1);
    int first = 1;
    for (size_t k = 0; st == PH_ENC_OK && k < n; k++) {
        if (k + 1 < n && same_key(&m[k], &m[k + 1]))
            continue; /* a later duplicate of this key wins */
        if (!first)
            st = put(out, ", ", 2);
        first = 0;
        if (st == PH_ENC_OK)
            st = string_out(m[k].key.data, m[k].key.len, out);
        if (st == PH_ENC_OK)
            st = put(out, ": ", 2);
        if (st == PH_ENC_OK)
            st = put(out, (const char *)m[k].val.data, m[k].val.len);
    }
    return st == PH_ENC_OK ? put(out, "}", 1) : st;
}

static ph_enc_status object(jp *p, ph_buf *out)
{
    member *m = NULL;
    size_t n = 0, cap = 0;
    ph_enc_status st = PH_ENC_OK;
    p->i++;
    skip_ws(p);
    if (peek(p) == '}') {
        p->i++;
        return put(out, "{}", 2);
    }
    for (;;) {
        member *g = ph_array_grow(m, n, &cap, sizeof *g, 8);
        if (!g) {
            st = PH_ENC_ENOMEM;
            break;
        }
        m = g;
        memset(&m[n], 0, sizeof m[n]);
        m[n].order = n;
        n++;
        skip_ws(p);
        if (peek(p) != '"') {
            st = PH_ENC_ESYNTAX;
            break;
        }
        if ((st = string_decoded(p, &m[n - 1].key)) != PH_ENC_OK)
            break;
        skip_ws(p);
        if (peek(p) != ':') {
            st = PH_ENC_ESYNTAX;
            break;
        }
        p->i++;
        if ((st = value(p, &m[n - 1].val)) != PH_ENC_OK)
            break;
        skip_ws(p);
        int c = peek(p);
        p->i++;
        if (c == '}')
            break;
        if (c != ',') {
            st = PH_ENC_ESYNTAX;
            break;
        }
    }
    if (st == PH_ENC_OK)
        st = emit_object(m, n, out);
    free_members(m, n);
    return st;
}

static ph_enc_status array(jp *p, ph_buf *out)
{
    p->i++;
    skip_ws(p);
    if (peek(p) == ']') {
        p->i++;
        return put(out, "[]", 2);
    }
    ph_enc_status st = put(out, "[", 1);
    for (int first = 1; st == PH_ENC_OK; first = 0) {
        if (!first)
            st = put(out, ", ", 2);
        if (st == PH_ENC_OK)
            st = value(p, out);
        if (st != PH_ENC_OK)
            break;
        skip_ws(p);
        int c = peek(p);
        p->i++;
        if (c == ']')
            return put(out, "]", 1);
        if (c != ',')
            return PH_ENC_ESYNTAX;
    }
    return st;
}

static ph_enc_status literal(jp *p, const char *w, ph_buf *out)
{
    size_t n = strlen(w);
    if (p->len - p->i < n || memcmp(p->s + p->i, w, n) != 0)
        return PH_ENC_ESYNTAX;
    p->i += n;
    return put(out, w, n);
}

static ph_enc_status value(jp *p, ph_buf *out)
{
    if (++p->depth > JSONB_MAX_DEPTH)
        return PH_ENC_ERANGE;
    skip_ws(p);
    ph_enc_status st;
    switch (peek(p)) {
    case '{':
        st = object(p, out);
        break;
    case '[':
        st = array(p, out);
        break;
    case '"': {
        ph_buf d = {0};
        st = string_decoded(p, &d);
        if (st == PH_ENC_OK)
            st = string_out(d.data, d.len, out);
        wipe(&d);
        break;
    }
    case 't':
        st = literal(p, "true", out);
        break;
    case 'f':
        st = literal(p, "false", out);
        break;
    case 'n':
        st = literal(p, "null", out);
        break;
    default:
        st = number(p, out);
    }
    p->depth--;
    return st;
}

ph_enc_status ph_enc_jsonb_canonical(const char *s, size_t len, ph_buf *out)
{
    jp p = {s, len, 0, 0};
    size_t keep = out->len;
    ph_enc_status st = value(&p, out);
    skip_ws(&p);
    if (st == PH_ENC_OK && p.i != p.len)
        st = PH_ENC_ESYNTAX; /* trailing garbage */
    if (st != PH_ENC_OK && out->len > keep) {
        OPENSSL_cleanse(out->data + keep, out->len - keep);
        out->len = keep;
    }
    return st;
}
