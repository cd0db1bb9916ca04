/*
 * rw_shape.c — statement shapes: the analysis of a statement reused for every
 * text that differs from it only in literal values (see rewrite.h).
 *
 * Owns: the shape-key scanner (a model of PostgreSQL's lexer for literals and
 * for what can hide or reveal them: comments, quoted identifiers, parameters;
 * anything it does not model makes the text unshapeable), capturing a shape
 * from a finished analysis (only when the scanner's literals agree with the
 * parse tree's), and replaying it on a new text (edits at the new literal
 * offsets, values decoded from the new literals; encryption and splicing stay
 * in rw_core.c). A scan made for the key lookup (ph_rw_scan) is handed to
 * the replay through ph_rw_options.scanned, so the text is scanned once.
 *
 * Why equal keys mean equal analyses: masking maps each literal to a marker
 * of the same lexical class that the scanner reads back as the same class,
 * and leaves every other byte as it is, so two texts with one key have the
 * same token sequence up to literal values (integers that fit int32, other
 * numbers, strings: PostgreSQL's ICONST, FCONST and SCONST); the analyzer
 * marks the one place it reads a value (ORDER BY / GROUP BY positions).
 */
#include "rewrite/rw_internal.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

typedef enum { LIT_STR = 0, LIT_INT, LIT_NUM } lit_class;

typedef struct sh_lit {
    int start, end;
    lit_class cls;
    const char *marker; /* what stands for it in the key */
} sh_lit;

typedef struct sh_scan {
    ph_buf key;
    sh_lit *lits;
    size_t n, cap;
} sh_scan;

/* A position of the text between literals: `off` bytes after the end of
 * literal `lit - 1` (after the start of the text when lit is 0). */
typedef struct sh_pos {
    int lit, off;
} sh_pos;

typedef struct sh_edit {
    sh_pos start, end;
    int value_lit;               /* encrypt: the literal holding the value; -1: text edit */
    const ph_schema_column *col; /* encrypt */
    rw_eqf form;                 /* encrypt: every live version's ciphertext, in this form */
    int swapped;                 /* encrypt: the literal lies before the range (`v = col`) */
    int lookup;                  /* encrypt: only compared (token mode: create no token) */
    char *text;                  /* text edit: replacement (owned) */
} sh_edit;

struct ph_rw_scanned {
    sh_scan sc;
    const char *sql; /* the caller's text (not owned), to check it is the same */
    size_t len;
};

struct ph_rw_shape {
    char *key;
    size_t key_len, nlits;
    sh_edit *edits;
    size_t nedits;
    const ph_schema_column **params;
    unsigned char *param_multi;  /* NULL when no parameter is an array of versions */
    unsigned char *param_lookup; /* NULL when no parameter is a token lookup */
    int nparams;
    ph_rw_stmt *stmts; /* kind, touches_protected, outputs */
    size_t nstmts;
    int touches_protected;
};

/* ---- the key scanner ------------------------------------------------------------------ */

/* rw_internal.h's identifier classes (a table: every byte of every
 * statement goes through it, here and in rw_fastpath.c). */
const unsigned char rw_ident_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0,
    0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 3,
    0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
};

static int is_digit(unsigned char ch)
{
    return ch >= '0' && ch <= '9';
}

static int is_space(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* End of the comment starting at i (`--` or `/ *`, nested), or 0 if unterminated. */
static size_t comment_end(const char *s, size_t len, size_t i)
{
    if (s[i] == '-') {
        while (i < len && s[i] != '\n' && s[i] != '\r')
            i++;
        return i;
    }
    int depth = 0;
    while (i + 1 < len) {
        if (s[i] == '/' && s[i + 1] == '*') {
            depth++;
            i += 2;
        } else if (s[i] == '*' && s[i + 1] == '/') {
            i += 2;
            if (--depth == 0)
                return i;
        } else {
            i++;
        }
    }
    return 0;
}

static int comment_at(const char *s, size_t len, size_t i)
{
    return i + 1 < len && ((s[i] == '-' && s[i + 1] == '-') || (s[i] == '/' && s[i + 1] == '*'));
}

/* End of the quoted run starting at s[i] == q (doubled q inside), or 0. */
static size_t quoted_end(const char *s, size_t len, size_t i, char q)
{
    for (i++; i < len; i++)
        if (s[i] == q) {
            if (i + 1 < len && s[i + 1] == q)
                i++;
            else
                return i + 1;
        }
    return 0;
}

/* A string followed (across blanks and comments) by another string is one
 * literal continued on the next line, which the scanner does not model. */
static int string_continues(const char *s, size_t len, size_t i)
{
    while (i < len) {
        if (is_space((unsigned char)s[i])) {
            i++;
        } else if (comment_at(s, len, i)) {
            size_t e = comment_end(s, len, i);
            if (e == 0)
                return 1;
            i = e;
        } else {
            return s[i] == '\'';
        }
    }
    return 0;
}

static int push_lit(sh_scan *sc, size_t start, size_t end, lit_class cls, const char *marker)
{
    sh_lit *grown = ph_array_grow(sc->lits, sc->n, &sc->cap, sizeof *grown, 8);
    if (!grown)
        return -1;
    sc->lits = grown;
    sc->lits[sc->n++] = (sh_lit){(int)start, (int)end, cls, marker};
    return 0;
}

/* An all-digit run that PostgreSQL reads as an int4 (ICONST). */
static int fits_int4(const char *s, size_t n)
{
    while (n > 1 && *s == '0') {
        s++;
        n--;
    }
    return n < 10 || (n == 10 && memcmp(s, "2147483647", 10) <= 0);
}

/* The number run s[i..e): a literal to mask, or kept as it is. */
static int scan_number(sh_scan *sc, const char *s, size_t i, size_t e)
{
    size_t digits = 0, dots = 0, dot_at = 0;
    for (size_t k = i; k < e; k++) {
        if (is_digit((unsigned char)s[k]))
            digits++;
        else if (s[k] == '.') {
            dots++;
            dot_at = k;
        }
    }
    if (digits + dots != e - i || dots > 1) /* exponent, junk, `1..`: not a literal we mask */
        return 0;
    const char *marker;
    lit_class cls = LIT_NUM;
    if (dots == 0 && fits_int4(s + i, e - i)) {
        marker = "0";
        cls = LIT_INT;
    } else if (dots == 0) {
        marker = "0.0";
    } else if (dot_at == i) {
        marker = ".0";
    } else if (dot_at == e - 1) {
        marker = "0.";
    } else {
        marker = "0.0";
    }
    return push_lit(sc, i, e, cls, marker);
}

/* One token at s[i]; returns its end, or 0 when the text is unshapeable (or OOM). */
static size_t scan_token(sh_scan *sc, const char *s, size_t len, size_t i)
{
    unsigned char ch = (unsigned char)s[i];
    size_t e;
    if (ch == '\'') {
        if (i > 0 && rw_ident_cont((unsigned char)s[i - 1])) /* E'', B'', date'...' */
            return 0;
        if (!(e = quoted_end(s, len, i, '\'')) || string_continues(s, len, e))
            return 0;
        return push_lit(sc, i, e, LIT_STR, "''") ? 0 : e;
    }
    if (ch == '"') {
        e = quoted_end(s, len, i, '"');
    } else if (ch == '$') {
        if (i + 1 >= len || !is_digit((unsigned char)s[i + 1]))
            return 0; /* a dollar quote */
        for (e = i + 1; e < len && is_digit((unsigned char)s[e]); e++)
            ;
    } else if (comment_at(s, len, i)) {
        e = comment_end(s, len, i);
    } else if (rw_ident_start(ch)) {
        for (e = i + 1; e < len && rw_ident_cont((unsigned char)s[e]); e++)
            ;
        if (e - i == 1 && (ch == 'u' || ch == 'U') && e < len && s[e] == '&')
            return 0; /* U&'...' and U&"..." */
    } else if (is_digit(ch) || (ch == '.' && i + 1 < len && is_digit((unsigned char)s[i + 1]))) {
        for (e = i + 1; e < len && (rw_ident_cont((unsigned char)s[e]) || s[e] == '.'); e++)
            ;
        return scan_number(sc, s, i, e) ? 0 : e;
    } else {
        e = i + 1;
    }
    return e;
}

/* The key: the text with each literal replaced by its marker, NUL-terminated. */
static int build_key(sh_scan *sc, const char *s, size_t len)
{
    if (ph_buf_reserve(&sc->key, len + 2 * sc->n + 1) != 0)
        return -1;
    size_t prev = 0;
    for (size_t i = 0; i < sc->n; i++) {
        const sh_lit *l = &sc->lits[i];
        if (ph_buf_append(&sc->key, s + prev, (size_t)l->start - prev) != 0 ||
            ph_buf_append(&sc->key, l->marker, strlen(l->marker)) != 0)
            return -1;
        prev = (size_t)l->end;
    }
    if (ph_buf_append(&sc->key, s + prev, len - prev) != 0 || ph_buf_append_u8(&sc->key, 0) != 0)
        return -1;
    sc->key.len--;
    return 0;
}

static void scan_free(sh_scan *sc)
{
    ph_buf_free(&sc->key);
    free(sc->lits);
    memset(sc, 0, sizeof *sc);
}

/* 0 with sc filled (key NUL-terminated), or -1 (sc freed). */
static int scan(const char *s, size_t len, sh_scan *sc)
{
    memset(sc, 0, sizeof *sc);
    if (len > (size_t)0x7fffffff || memchr(s, '\0', len))
        return -1;
    for (size_t i = 0; i < len;) {
        size_t e = scan_token(sc, s, len, i);
        if (e == 0) {
            scan_free(sc);
            return -1;
        }
        i = e;
    }
    if (build_key(sc, s, len) != 0) {
        scan_free(sc);
        return -1;
    }
    return 0;
}

int ph_rw_shape_key(const char *sql, size_t len, char **key, size_t *key_len)
{
    sh_scan sc;
    *key = NULL;
    if (!sql || scan(sql, len, &sc) != 0)
        return -1;
    free(sc.lits);
    *key = (char *)ph_buf_steal(&sc.key, key_len);
    return 0;
}

ph_rw_scanned *ph_rw_scan(const char *sql, size_t len)
{
    ph_rw_scanned *p = sql ? malloc(sizeof *p) : NULL;
    if (!p)
        return NULL;
    if (scan(sql, len, &p->sc) != 0) {
        free(p);
        return NULL;
    }
    p->sql = sql;
    p->len = len;
    return p;
}

const char *ph_rw_scanned_key(const ph_rw_scanned *p, size_t *key_len)
{
    if (key_len)
        *key_len = p->sc.key.len;
    return (const char *)p->sc.key.data;
}

void ph_rw_scanned_free(ph_rw_scanned *p)
{
    if (!p)
        return;
    scan_free(&p->sc);
    free(p);
}

/* The scan of c's text: the caller's (opt->scanned) when it was made of
 * this very text, else a new one in *own (scan_free it either way); NULL
 * when the text is unshapeable. */
static const sh_scan *scan_of(const rw_ctx *c, sh_scan *own)
{
    const ph_rw_scanned *p = c->opt ? c->opt->scanned : NULL;
    memset(own, 0, sizeof *own);
    if (p && p->len == c->len && memcmp(p->sql, c->sql, c->len) == 0)
        return &p->sc;
    return scan(c->sql, c->len, own) == 0 ? own : NULL;
}

/* ---- literal values -------------------------------------------------------------------- */

/* The literal's value as PostgreSQL reads it, into out (room for the
 * literal's length + 1); returns its length. */
static size_t lit_value(const char *s, const sh_lit *l, char *out)
{
    size_t n = 0;
    if (l->cls == LIT_STR) {
        for (int k = l->start + 1; k < l->end - 1; k++) {
            out[n++] = s[k];
            if (s[k] == '\'')
                k++;
        }
    } else if (l->cls == LIT_INT) {
        int k = l->start;
        while (k < l->end - 1 && s[k] == '0')
            k++;
        n = (size_t)(l->end - k);
        memcpy(out, s + k, n);
    } else {
        n = (size_t)(l->end - l->start);
        memcpy(out, s + l->start, n);
    }
    out[n] = '\0';
    return n;
}

/* ---- capture ---------------------------------------------------------------------------- */

static int pos_of(const sh_scan *sc, int p, sh_pos *out)
{
    size_t i = 0;
    while (i < sc->n && sc->lits[i].end <= p)
        i++;
    if (i < sc->n && sc->lits[i].start < p) /* inside a literal */
        return -1;
    out->lit = (int)i;
    out->off = p - (i ? sc->lits[i - 1].end : 0);
    return 0;
}

static int pos_at(const sh_scan *sc, sh_pos p)
{
    return (p.lit ? sc->lits[p.lit - 1].end : 0) + p.off;
}

/* The literal starting at byte `start` whose value is exactly the one the
 * parse tree gave the edit, or -1. It lies inside the edit's range, or before
 * it for a swapped comparison (`v = col` -> `col = ANY (...)`). */
static int value_literal(const rw_ctx *c, const sh_scan *sc, const rw_edit *e)
{
    for (size_t i = 0; i < sc->n; i++) {
        const sh_lit *l = &sc->lits[i];
        if (l->start != e->vstart)
            continue;
        if (e->swapped ? l->end > e->start : (l->start < e->start || l->end > e->end))
            return -1;
        char *v = malloc((size_t)(l->end - l->start) + 1);
        if (!v)
            return -1;
        size_t n = lit_value(c->sql, l, v);
        int same = n == e->vlen && memcmp(v, e->value, n) == 0;
        OPENSSL_cleanse(v, n);
        free(v);
        return same ? (int)i : -1;
    }
    return -1;
}

static int capture_edit(const rw_ctx *c, const sh_scan *sc, const rw_edit *e, sh_edit *out)
{
    if (pos_of(sc, e->start, &out->start) != 0 || pos_of(sc, e->end, &out->end) != 0)
        return -1;
    if (e->kind == EDIT_TEXT) {
        out->value_lit = -1;
        return (out->text = strdup(e->text)) ? 0 : -1;
    }
    out->col = e->col;
    out->form = e->form;
    out->swapped = e->swapped;
    out->lookup = e->lookup;
    return (out->value_lit = value_literal(c, sc, e)) < 0 ? -1 : 0;
}

static int shapeable_kind(ph_rw_stmt_kind k)
{
    return k == PH_RW_STMT_SELECT || k == PH_RW_STMT_INSERT || k == PH_RW_STMT_UPDATE ||
           k == PH_RW_STMT_DELETE;
}

static int capture_plan(ph_rw_shape *sh, const ph_rw_result *r)
{
    sh->nparams = r->nparams;
    sh->touches_protected = r->touches_protected;
    if (r->nparams) {
        if (!(sh->params = malloc((size_t)r->nparams * sizeof *sh->params)))
            return -1;
        memcpy(sh->params, r->params, (size_t)r->nparams * sizeof *sh->params);
    }
    if (r->param_multi) {
        if (!(sh->param_multi = malloc((size_t)r->nparams)))
            return -1;
        memcpy(sh->param_multi, r->param_multi, (size_t)r->nparams);
    }
    if (r->param_lookup) {
        if (!(sh->param_lookup = malloc((size_t)r->nparams)))
            return -1;
        memcpy(sh->param_lookup, r->param_lookup, (size_t)r->nparams);
    }
    if (!(sh->stmts = ph_calloc(r->nstmts ? r->nstmts : 1, sizeof *sh->stmts)))
        return -1;
    sh->nstmts = r->nstmts;
    for (size_t i = 0; i < r->nstmts; i++) {
        const ph_rw_stmt *st = &r->stmts[i];
        if (!shapeable_kind(st->kind))
            return -1;
        sh->stmts[i].kind = st->kind;
        sh->stmts[i].touches_protected = st->touches_protected;
        sh->stmts[i].copy_ncols = -1;
        if (!st->noutputs)
            continue;
        if (!(sh->stmts[i].outputs = malloc(st->noutputs * sizeof *st->outputs)))
            return -1;
        memcpy(sh->stmts[i].outputs, st->outputs, st->noutputs * sizeof *st->outputs);
        sh->stmts[i].noutputs = st->noutputs;
    }
    return 0;
}

ph_rw_shape *rw_shape_capture(const rw_ctx *c)
{
    if (c->value_dependent || (c->opt && c->opt->standard_conforming_strings_off))
        return NULL;
    sh_scan own;
    const sh_scan *sc = scan_of(c, &own);
    if (!sc)
        return NULL;
    ph_rw_shape *sh = ph_calloc(1, sizeof *sh);
    if (!sh || (c->nedits && !(sh->edits = ph_calloc(c->nedits, sizeof *sh->edits))))
        goto fail;
    for (size_t i = 0; i < c->nedits; i++, sh->nedits++)
        if (capture_edit(c, sc, &c->edits[i], &sh->edits[i]) != 0)
            goto fail;
    if (capture_plan(sh, c->res) != 0 || !(sh->key = malloc(sc->key.len + 1)))
        goto fail;
    memcpy(sh->key, sc->key.data, sc->key.len + 1); /* with its NUL */
    sh->key_len = sc->key.len;
    sh->nlits = sc->n;
    scan_free(&own);
    return sh;
fail:
    scan_free(&own);
    ph_rw_shape_free(sh);
    return NULL;
}

/* ---- replay ------------------------------------------------------------------------------ */

static int replay_plan(rw_ctx *c, const ph_rw_shape *sh)
{
    ph_rw_result *r = c->res;
    r->touches_protected = sh->touches_protected;
    if (sh->nparams) {
        if (!(r->params = malloc((size_t)sh->nparams * sizeof *r->params)))
            return rw_oom(c);
        memcpy(r->params, sh->params, (size_t)sh->nparams * sizeof *r->params);
        r->nparams = sh->nparams;
    }
    if (sh->param_multi) {
        if (!(r->param_multi = malloc((size_t)sh->nparams)))
            return rw_oom(c);
        memcpy(r->param_multi, sh->param_multi, (size_t)sh->nparams);
    }
    if (sh->param_lookup) {
        if (!(r->param_lookup = malloc((size_t)sh->nparams)))
            return rw_oom(c);
        memcpy(r->param_lookup, sh->param_lookup, (size_t)sh->nparams);
    }
    if (sh->nstmts && !(r->stmts = ph_calloc(sh->nstmts, sizeof *r->stmts)))
        return rw_oom(c);
    for (size_t i = 0; i < sh->nstmts; i++, r->nstmts++) {
        const ph_rw_stmt *st = &sh->stmts[i];
        r->stmts[i] = (ph_rw_stmt){
            .kind = st->kind, .touches_protected = st->touches_protected, .copy_ncols = -1};
        if (!st->noutputs)
            continue;
        if (!(r->stmts[i].outputs = malloc(st->noutputs * sizeof *st->outputs)))
            return rw_oom(c);
        memcpy(r->stmts[i].outputs, st->outputs, st->noutputs * sizeof *st->outputs);
        r->stmts[i].noutputs = st->noutputs;
    }
    r->cacheable = 1;
    for (size_t i = 0; i < sh->nedits; i++)
        if (sh->edits[i].value_lit >= 0)
            r->cacheable = 0;
    return 0;
}

static int replay_edit(rw_ctx *c, const sh_scan *sc, const sh_edit *se)
{
    rw_edit e = {.start = pos_at(sc, se->start), .end = pos_at(sc, se->end), .vstart = -1};
    if (se->value_lit < 0) {
        e.kind = EDIT_TEXT;
        e.text = se->text;
        return rw_add_edit(c, &e);
    }
    const sh_lit *l = &sc->lits[se->value_lit];
    e.kind = EDIT_ENCRYPT;
    e.col = se->col;
    e.form = se->form;
    e.swapped = se->swapped;
    e.lookup = se->lookup;
    e.vstart = l->start;
    if (!(e.value = rw_alloc(c, (size_t)(l->end - l->start) + 1)))
        return -1;
    e.vlen = lit_value(c->sql, l, e.value);
    return rw_add_edit(c, &e);
}

int rw_shape_replay(rw_ctx *c, const ph_rw_shape *sh)
{
    sh_scan own;
    const sh_scan *sc = scan_of(c, &own);
    if (!sc)
        return rw_internal(c, "phantom: the statement does not have the expected shape");
    int rc = 0;
    if (sc->n != sh->nlits || sc->key.len != sh->key_len ||
        memcmp(sc->key.data, sh->key, sh->key_len))
        rc = rw_internal(c, "phantom: the statement does not have the expected shape");
    for (size_t i = 0; rc == 0 && i < sh->nedits; i++)
        rc = replay_edit(c, sc, &sh->edits[i]);
    if (rc == 0)
        rc = replay_plan(c, sh);
    scan_free(&own);
    return rc;
}

const char *ph_rw_shape_key_of(const ph_rw_shape *sh)
{
    return sh->key;
}

void ph_rw_shape_free(ph_rw_shape *sh)
{
    if (!sh)
        return;
    for (size_t i = 0; i < sh->nedits; i++)
        free(sh->edits[i].text);
    free(sh->edits);
    for (size_t i = 0; i < sh->nstmts; i++)
        free(sh->stmts[i].outputs);
    free(sh->stmts);
    free(sh->params);
    free(sh->param_multi);
    free(sh->param_lookup);
    free(sh->key);
    free(sh);
}
