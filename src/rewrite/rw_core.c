/*
 * rw_core.c — the rewriter's entry point and shared machinery.
 *
 * Owns: ph_rewrite (parse with libpg_query, analyze statement by statement,
 * encrypt and splice), the per-call arena, refusal messages, the edit list
 * (byte ranges of the original text to replace), the parameter table, and
 * wiping the plaintext copies this module makes.
 */
#include "rewrite/rw_internal.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/mem.h"

#define RW_MAX_PARAM 65535 /* the protocol's Int16 parameter count */

/* ---- arena ------------------------------------------------------------------ */

struct rw_block {
    rw_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *rw_alloc(rw_ctx *c, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!c->arena && c->inl && RW_INLINE_ARENA - c->inl_used >= n) {
        void *p = c->inl + c->inl_used;
        c->inl_used += n;
        memset(p, 0, n);
        return p;
    }
    if (!c->arena || c->arena->cap - c->arena->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        rw_block *b = malloc(sizeof *b + cap);
        if (!b) {
            rw_oom(c);
            return NULL;
        }
        b->next = c->arena;
        b->used = 0;
        b->cap = cap;
        c->arena = b;
    }
    void *p = c->arena->data + c->arena->used;
    c->arena->used += n;
    memset(p, 0, n);
    return p;
}

/* Wipes the arena (it holds the statement's copy, i.e. its literals'
 * plaintext, and ciphertext) and frees its heap blocks. */
static void arena_free(rw_ctx *c)
{
    if (c->inl)
        OPENSSL_cleanse(c->inl, c->inl_used);
    c->inl_used = 0;
    while (c->arena) {
        rw_block *next = c->arena->next;
        OPENSSL_cleanse(c->arena->data, c->arena->used);
        free(c->arena);
        c->arena = next;
    }
}

/* ---- outcomes --------------------------------------------------------------- */

static int char_position(const rw_ctx *c, int location)
{
    if (location < 0 || (size_t)location > c->len)
        return 0;
    int pos = 1;
    for (int i = 0; i < location; i++)
        if (((unsigned char)c->sql[i] & 0xC0) != 0x80)
            pos++;
    return pos;
}

static int set_outcome(rw_ctx *c, ph_rw_status st, const char *sqlstate, int location,
                       const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
static int set_outcome(rw_ctx *c, ph_rw_status st, const char *sqlstate, int location,
                       const char *fmt, va_list ap)
{
    if (c->failed)
        return -1; /* keep the first reason */
    c->failed = 1;
    c->res->status = st;
    snprintf(c->res->sqlstate, sizeof c->res->sqlstate, "%s", sqlstate);
    vsnprintf(c->res->message, sizeof c->res->message, fmt, ap);
    c->res->position = char_position(c, location);
    return -1;
}

int rw_refuse(rw_ctx *c, int location, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_outcome(c, PH_RW_REFUSED, "0A000", location, fmt, ap);
    va_end(ap);
    return -1;
}

int rw_internal(rw_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_outcome(c, PH_RW_INTERNAL_ERROR, "XX000", -1, fmt, ap);
    va_end(ap);
    return -1;
}

int rw_oom(rw_ctx *c)
{
    return rw_internal(c, "phantom: out of memory while analyzing the statement");
}

/* Operations no mode can do: computing on ciphertext. */
int rw_refuse_op(rw_ctx *c, int location, const ph_schema_column *col, const char *op)
{
    return rw_refuse(c, location,
                     "phantom: cannot apply %s to %s (%s): the database only holds ciphertext", op,
                     col->qualified, ph_enc_mode_name(col->mode));
}

static const char *mode_hint(const ph_schema_column *col)
{
    switch (col->mode) {
    case PH_MODE_RANDOMIZED:
        return "randomized encryption supports only storing, fetching and IS [NOT] NULL";
    case PH_MODE_DETERMINISTIC:
        return "deterministic encryption supports only equality (=, <>, IN), GROUP BY, DISTINCT "
               "and equality joins; ranges and ORDER BY need mode ope";
    case PH_MODE_OPE:
        return "ope supports equality, ranges and ORDER BY only";
    case PH_MODE_TOKEN:
        return "token mode supports only equality (=, <>, IN) and IS [NOT] NULL";
    }
    return "the mode does not support it";
}

/* Operations some other mode could do. */
int rw_refuse_mode(rw_ctx *c, int location, const ph_schema_column *col, const char *op)
{
    return rw_refuse(c, location, "phantom: cannot apply %s to %s (%s): %s", op, col->qualified,
                     ph_enc_mode_name(col->mode), mode_hint(col));
}

int rw_mode_allows(const ph_schema_column *col, rw_op op)
{
    switch (op) {
    case OP_ASSIGN:
        return 1;
    case OP_EQ:
    case OP_UNIQUE:
        return col->mode != PH_MODE_RANDOMIZED;
    case OP_GROUP: /* tokens are per key domain, and per tenant once tenants have keys */
        return col->mode != PH_MODE_RANDOMIZED && col->mode != PH_MODE_TOKEN;
    case OP_RANGE:
    case OP_ORDER:
        return col->mode == PH_MODE_OPE;
    }
    return 0;
}

int rw_same_domain(const ph_schema_column *a, const ph_schema_column *b)
{
    return a == b || (a->mode == b->mode && strcmp(a->key_domain, b->key_domain) == 0);
}

const char *rw_last_name(rw_node **names, size_t n)
{
    if (n == 0 || !names[n - 1] || names[n - 1]->node_case != PG_QUERY__NODE__NODE_STRING)
        return NULL;
    return names[n - 1]->string->sval;
}

/* ---- edits and parameters ----------------------------------------------------- */

int rw_add_edit(rw_ctx *c, const rw_edit *e)
{
    if (c->nedits == c->capedits) {
        size_t ncap = c->capedits ? c->capedits * 2 : 8;
        rw_edit *grown = ncap < SIZE_MAX / sizeof *grown ? rw_alloc(c, ncap * sizeof *grown) : NULL;
        if (!grown)
            return rw_oom(c);
        if (c->nedits)
            memcpy(grown, c->edits, c->nedits * sizeof *grown);
        c->edits = grown;
        c->capedits = ncap;
    }
    c->edits[c->nedits++] = *e;
    return 0;
}

static int cmp_edit(const void *a, const void *b)
{
    const rw_edit *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

static int same_edit(const rw_edit *a, const rw_edit *b)
{
    if (a->kind != b->kind)
        return 0;
    if (a->kind == EDIT_TEXT)
        return strcmp(a->text, b->text) == 0;
    return rw_same_domain(a->col, b->col) && a->form == b->form && a->swapped == b->swapped;
}

/* Sorts the edits and merges those of one literal bound more than once
 * (x IN (a, b), BETWEEN, 'v' IN (col1, col2)): fine when they encrypt the
 * same way; overlapping ranges are an internal error (fail closed). */
static int normalize_edits(rw_ctx *c)
{
    if (c->nedits == 0)
        return 0;
    qsort(c->edits, c->nedits, sizeof *c->edits, cmp_edit);
    size_t o = 0;
    for (size_t i = 0; i < c->nedits; i++) {
        rw_edit *e = &c->edits[i];
        rw_edit *prev = o ? &c->edits[o - 1] : NULL;
        if (prev && prev->start == e->start && prev->end == e->end) {
            if (!same_edit(prev, e))
                return rw_refuse(c, e->start,
                                 "phantom: one value is compared with columns of different key "
                                 "domains (%s and %s)",
                                 prev->col ? prev->col->qualified : "a plaintext column",
                                 e->col ? e->col->qualified : "a plaintext column");
            if (e->kind == EDIT_ENCRYPT && e->value)
                OPENSSL_cleanse(e->value, e->vlen);
            prev->lookup &= e->lookup; /* stored anywhere: a token is made */
            continue;
        }
        if (e->start < 0 || e->end < e->start || (size_t)e->end > c->len ||
            (prev && e->start < prev->end))
            return rw_internal(c, "phantom: internal error while rewriting the statement");
        c->edits[o++] = *e;
    }
    c->nedits = o;
    return 0;
}

static rw_param *param_slot(rw_ctx *c, int n, int location)
{
    if (n < 1 || n > RW_MAX_PARAM) {
        rw_refuse(c, location, "phantom: parameter $%d is out of range", n);
        return NULL;
    }
    if (n > c->capparams) {
        int ncap = c->capparams ? c->capparams : 8;
        while (ncap < n)
            ncap *= 2;
        rw_param *grown = rw_alloc(c, (size_t)ncap * sizeof *grown); /* zeroed */
        if (!grown)
            return NULL;
        if (c->capparams)
            memcpy(grown, c->params, (size_t)c->capparams * sizeof *grown);
        c->params = grown;
        c->capparams = ncap;
    }
    if (n > c->res->nparams)
        c->res->nparams = n;
    return &c->params[n - 1];
}

int rw_param_bind(rw_ctx *c, int n, const ph_schema_column *col, int location)
{
    rw_param *p = param_slot(c, n, location);
    if (!p)
        return -1;
    if (p->plain)
        return rw_refuse(c, location,
                         "phantom: parameter $%d is used both for %s (%s) and as a plaintext "
                         "value; use two parameters",
                         n, col->qualified, ph_enc_mode_name(col->mode));
    if (p->col && !rw_same_domain(p->col, col))
        return rw_refuse(c, location,
                         "phantom: parameter $%d is used for %s and %s, which are not in one key "
                         "domain; use two parameters",
                         n, p->col->qualified, col->qualified);
    if (!p->col)
        p->col = col;
    return 0;
}

int rw_param_plain(rw_ctx *c, int n, int location)
{
    rw_param *p = param_slot(c, n, location);
    if (!p)
        return -1;
    if (p->col)
        return rw_refuse(c, location,
                         "phantom: parameter $%d is used both for %s (%s) and as a plaintext "
                         "value; use two parameters",
                         n, p->col->qualified, ph_enc_mode_name(p->col->mode));
    p->plain = 1;
    return 0;
}

int rw_param_versions(rw_ctx *c, int n, int multi, int location)
{
    rw_param *p = param_slot(c, n, location);
    if (!p)
        return -1;
    if (multi ? p->single : p->multi)
        return rw_refuse(c, location,
                         "phantom: parameter $%d is both stored in and compared with %s, whose key "
                         "domain has several live key versions (a key rotation is in progress): a "
                         "lookup must match every version; use two parameters",
                         n, p->col ? p->col->qualified : "a protected column");
    if (multi)
        p->multi = 1;
    else
        p->single = 1;
    return 0;
}

int rw_param_tenant(rw_ctx *c, int n, int ref, const char *lit, int location)
{
    rw_param *p = param_slot(c, n, location);
    if (!p)
        return -1;
    if (p->tenant_set &&
        (p->tenant_ref != ref || (lit && !p->tenant_lit) || (!lit && p->tenant_lit) ||
         (lit && p->tenant_lit && strcmp(lit, p->tenant_lit) != 0)))
        return rw_refuse(c, location,
                         "phantom: parameter $%d is stored in rows of two tenants; use one "
                         "parameter per row",
                         n);
    p->tenant_set = 1;
    p->tenant_ref = ref;
    p->tenant_lit = lit;
    return 0;
}

void rw_param_stored(rw_ctx *c, int n)
{
    if (n >= 1 && n <= c->capparams)
        c->params[n - 1].stored = 1;
}

int rw_eq_versions(const rw_ctx *c, const ph_schema_column *col)
{
    if (!c->opt || !c->opt->eq_versions || !c->opt->encrypt_eq ||
        col->mode != PH_MODE_DETERMINISTIC)
        return 1;
    int n = c->opt->eq_versions(c->opt->encrypt_ud, col);
    return n < 1 ? 1 : n;
}

int rw_cols_push(rw_ctx *c, rw_cols *cols, const rw_col *col)
{
    if (cols->n == cols->cap) {
        size_t ncap = cols->cap ? cols->cap * 2 : 8;
        rw_col *grown = rw_alloc(c, ncap * sizeof *grown);
        if (!grown)
            return -1;
        if (cols->n)
            memcpy(grown, cols->v, cols->n * sizeof *grown);
        cols->v = grown;
        cols->cap = ncap;
    }
    cols->v[cols->n++] = *col;
    return 0;
}

int rw_mentions_text(rw_ctx *c, int start, int len)
{
    if (start < 0 || (size_t)start > c->len)
        start = 0;
    size_t n = len > 0 ? (size_t)len : c->len - (size_t)start;
    if ((size_t)start + n > c->len)
        n = c->len - (size_t)start;
    return ph_rewrite_mentions_protected(c->schema, c->sql + start, n);
}

/* ---- encrypting and splicing ----------------------------------------------------- */

/* Writes '\x<hex>'::bytea for ct[0..len) at p; returns the end. */
static char *put_bytea(char *p, const uint8_t *ct, size_t len)
{
    memcpy(p, "'\\x", 3);
    ph_hex_encode(ct, len, p + 3);
    p += 3 + 2 * len;
    memcpy(p, "'::bytea", 8);
    return p + 8;
}

/* The ciphertexts of e's value: one (encrypt), or every live version's for
 * an equality form (encrypt_eq), their lengths in lens. Returns how many. */
/* Tells the session the tenant of the row e is stored in (NULL: its own)
 * when it differs from the last one told. */
static int tell_tenant(rw_ctx *c, const char *tenant, char *err, size_t errlen)
{
    if (!c->opt->tenant || (!tenant && !c->cur_tenant) ||
        (tenant && c->cur_tenant && strcmp(tenant, c->cur_tenant) == 0))
        return 0;
    c->cur_tenant = tenant;
    c->tenant_called = 1;
    return c->opt->tenant(c->opt->encrypt_ud, tenant, err, errlen);
}

static int encrypt_value(rw_ctx *c, const rw_edit *e, ph_buf *ct, size_t *lens)
{
    char err[200] = "";
    int n = -1;
    if (tell_tenant(c, e->tenant, err, sizeof err) != 0) {
        rw_internal(c, "phantom: cannot encrypt a value for %s: %s", e->col->qualified, err);
        return -1;
    }
    if (e->form == EQF_NONE) {
        ph_rw_encrypt_fn fn = e->lookup && e->col->mode == PH_MODE_TOKEN && c->opt->lookup
                                  ? c->opt->lookup
                                  : c->opt->encrypt;
        if (fn(c->opt->encrypt_ud, e->col, e->value, e->vlen, ct, err, sizeof err) == 0)
            n = 1;
        lens[0] = ct->len;
    } else if (c->opt->encrypt_eq) {
        n = c->opt->encrypt_eq(c->opt->encrypt_ud, e->col, e->value, e->vlen, ct, lens,
                               PH_RW_MAX_VERSIONS, err, sizeof err);
    }
    size_t total = 0;
    for (int i = 0; i < n && i < PH_RW_MAX_VERSIONS; i++)
        total += lens[i];
    if (n < 1 || n > PH_RW_MAX_VERSIONS || total != ct->len) {
        rw_internal(c, "phantom: cannot encrypt a value for %s: %s", e->col->qualified,
                    err[0] ? err : "encryption failed");
        return -1;
    }
    return n;
}

/* A token column's edit: the token as a string literal '...' (quotes
 * doubled; a token never holds a backslash or a NUL, refused if it did). */
static int token_edit(rw_ctx *c, rw_edit *e, ph_buf *tok)
{
    char *t = NULL;
    if (tok->len > 0 && !memchr(tok->data, '\\', tok->len) && !memchr(tok->data, '\0', tok->len))
        t = rw_alloc(c, tok->len * 2 + 3);
    if (!t) {
        ph_buf_free(tok);
        return c->failed
                   ? -1
                   : rw_internal(c, "phantom: a token for %s is malformed", e->col->qualified);
    }
    char *p = t;
    *p++ = '\'';
    for (size_t i = 0; i < tok->len; i++) {
        if (tok->data[i] == '\'')
            *p++ = '\'';
        *p++ = (char)tok->data[i];
    }
    *p++ = '\'';
    *p = '\0';
    ph_buf_free(tok);
    e->kind = EDIT_TEXT;
    e->text = t;
    return 0;
}

/* Turns an encrypt edit into '\x<hex>'::bytea or, for an equality form,
 * every version's ciphertext as ANY (ARRAY[...]), ALL (ARRAY[...]) or a
 * comma-separated list (text owned by the arena). */
static int encrypt_edit(rw_ctx *c, rw_edit *e)
{
    static const char *const open[] = {"", "ANY (ARRAY[", "ALL (ARRAY[", ""};
    static const char *const close[] = {"", "])", "])", ""};
    if (!c->opt || !c->opt->encrypt)
        return rw_internal(c, "phantom: no encryption is configured for %s", e->col->qualified);
    ph_buf ct = {0};
    size_t lens[PH_RW_MAX_VERSIONS];
    int n = encrypt_value(c, e, &ct, lens);
    OPENSSL_cleanse(e->value, e->vlen);
    if (n == 1 && e->col->mode == PH_MODE_TOKEN)
        return token_edit(c, e, &ct);
    char *t = n > 0 ? rw_alloc(c, ct.len * 2 + (size_t)n * 13 + 16) : NULL;
    if (!t) {
        ph_buf_free(&ct);
        return -1;
    }
    char *p = t;
    size_t ol = strlen(open[e->form]), cl = strlen(close[e->form]), off = 0;
    memcpy(p, open[e->form], ol);
    p += ol;
    for (int i = 0; i < n; i++) {
        if (i > 0) {
            memcpy(p, ", ", 2);
            p += 2;
        }
        p = put_bytea(p, ct.data + off, lens[i]);
        off += lens[i];
    }
    memcpy(p, close[e->form], cl + 1);
    ph_buf_free(&ct);
    e->kind = EDIT_TEXT;
    e->text = t;
    return 0;
}

static int splice_edits(rw_ctx *c);

/* Encrypts the (normalized) edits and builds the text to send upstream;
 * the session's tenant is back in force afterwards. */
static int splice(rw_ctx *c)
{
    int rc = splice_edits(c);
    char err[64];
    if (c->tenant_called && c->cur_tenant && c->opt->tenant)
        (void)c->opt->tenant(c->opt->encrypt_ud, NULL, err, sizeof err);
    c->cur_tenant = NULL;
    return rc;
}

static int splice_edits(rw_ctx *c)
{
    if (c->nedits == 0)
        return 0;
    size_t total = c->len + 1;
    for (size_t i = 0; i < c->nedits; i++) {
        rw_edit *e = &c->edits[i];
        if (e->kind == EDIT_ENCRYPT && encrypt_edit(c, e) != 0)
            return -1;
        total += strlen(e->text) + 2;
    }
    char *out = malloc(total);
    if (!out)
        return rw_oom(c);
    size_t o = 0, prev = 0;
    for (size_t i = 0; i < c->nedits; i++) {
        const rw_edit *e = &c->edits[i];
        size_t tl = strlen(e->text);
        memcpy(out + o, c->sql + prev, (size_t)e->start - prev);
        o += (size_t)e->start - prev;
        if (o > 0 && rw_ident_cont((unsigned char)out[o - 1]) &&
            rw_ident_cont((unsigned char)e->text[0]))
            out[o++] = ' ';
        memcpy(out + o, e->text, tl);
        o += tl;
        if ((size_t)e->end < c->len && rw_ident_cont((unsigned char)e->text[tl - 1]) &&
            rw_ident_cont((unsigned char)c->sql[e->end]))
            out[o++] = ' ';
        prev = (size_t)e->end;
    }
    memcpy(out + o, c->sql + prev, c->len - prev);
    o += c->len - prev;
    out[o] = '\0';
    c->res->sql = out;
    c->res->sql_len = o;
    return 0;
}

/* ---- entry point ------------------------------------------------------------ */

static int copy_outputs(rw_ctx *c, ph_rw_stmt *st, const rw_cols *outs)
{
    if (!outs->n)
        return 0;
    st->outputs = ph_calloc(outs->n, sizeof *st->outputs);
    if (!st->outputs)
        return rw_oom(c);
    st->noutputs = outs->n;
    for (size_t i = 0; i < outs->n; i++) {
        st->outputs[i].col = outs->v[i].col;
        st->outputs[i].star = outs->v[i].star;
    }
    return 0;
}

static int finish_params(rw_ctx *c)
{
    ph_rw_result *r = c->res;
    if (r->nparams == 0)
        return 0;
    r->params = ph_calloc((size_t)r->nparams, sizeof *r->params);
    if (!r->params)
        return rw_oom(c);
    int multi = 0, lookup = 0;
    for (int i = 0; i < r->nparams; i++) {
        r->params[i] = c->params[i].col;
        multi |= c->params[i].multi;
        lookup |=
            c->params[i].col && c->params[i].col->mode == PH_MODE_TOKEN && !c->params[i].stored;
    }
    if (lookup) {
        if (!(r->param_lookup = ph_calloc((size_t)r->nparams, 1)))
            return rw_oom(c);
        for (int i = 0; i < r->nparams; i++)
            r->param_lookup[i] =
                c->params[i].col && c->params[i].col->mode == PH_MODE_TOKEN && !c->params[i].stored;
    }
    if (!multi)
        return 0;
    if (!(r->param_multi = ph_calloc((size_t)r->nparams, 1)))
        return rw_oom(c);
    for (int i = 0; i < r->nparams; i++)
        r->param_multi[i] = c->params[i].multi ? 1 : 0;
    return 0;
}

/* The rows' tenants of the stored parameters (rewrite.h). */
static int finish_param_tenants(rw_ctx *c)
{
    ph_rw_result *r = c->res;
    int any = 0;
    for (int i = 0; i < r->nparams; i++)
        any |= c->params[i].tenant_set;
    if (!any)
        return 0;
    r->param_tenant_ref = ph_calloc((size_t)r->nparams, sizeof *r->param_tenant_ref);
    r->param_tenant_lit = ph_calloc((size_t)r->nparams, sizeof *r->param_tenant_lit);
    if (!r->param_tenant_ref || !r->param_tenant_lit)
        return rw_oom(c);
    for (int i = 0; i < r->nparams; i++) {
        r->param_tenant_ref[i] = c->params[i].tenant_ref;
        if (c->params[i].tenant_lit && !(r->param_tenant_lit[i] = strdup(c->params[i].tenant_lit)))
            return rw_oom(c);
    }
    return 0;
}

static int analyze(rw_ctx *c, PgQuery__ParseResult *tree)
{
    ph_rw_result *r = c->res;
    if (tree->n_stmts) {
        r->stmts = ph_calloc(tree->n_stmts, sizeof *r->stmts);
        if (!r->stmts)
            return rw_oom(c);
    }
    for (size_t i = 0; i < tree->n_stmts; i++) {
        const PgQuery__RawStmt *raw = tree->stmts[i];
        rw_cols outs = {0};
        c->touched = 0;
        r->nstmts = i + 1;
        if (rw_statement(c, raw->stmt, raw->stmt_location, raw->stmt_len, &r->stmts[i], &outs) !=
                0 ||
            copy_outputs(c, &r->stmts[i], &outs) != 0)
            return -1;
        r->stmts[i].touches_protected = c->touched;
        r->touches_protected |= c->touched;
    }
    if (finish_params(c) != 0 || finish_param_tenants(c) != 0 || normalize_edits(c) != 0)
        return -1;
    r->cacheable = 1;
    for (size_t i = 0; i < c->nedits; i++)
        if (c->edits[i].kind == EDIT_ENCRYPT)
            r->cacheable = 0;
    if (c->opt && c->opt->shape_out)
        *c->opt->shape_out = rw_shape_capture(c);
    return splice(c);
}

/* Wipes the plaintext of protected literals: the copies this module made
 * and the parse tree's own strings (the tree is freed right after). */
static void wipe_values(rw_ctx *c)
{
    for (size_t i = 0; i < c->nedits; i++) {
        rw_edit *e = &c->edits[i];
        if (e->kind == EDIT_ENCRYPT && e->value) {
            OPENSSL_cleanse(e->value, e->vlen);
            e->value = NULL;
        }
        if (e->src) {
            OPENSSL_cleanse(e->src, strlen(e->src));
            e->src = NULL;
        }
    }
}

static void clear_plan(ph_rw_result *r)
{
    free(r->sql);
    r->sql = NULL;
    r->sql_len = 0;
    free(r->params);
    r->params = NULL;
    free(r->param_multi);
    r->param_multi = NULL;
    for (int i = 0; r->param_tenant_lit && i < r->nparams; i++)
        free(r->param_tenant_lit[i]);
    free(r->param_tenant_lit);
    r->param_tenant_lit = NULL;
    free(r->param_tenant_ref);
    r->param_tenant_ref = NULL;
    free(r->param_lookup);
    r->param_lookup = NULL;
    r->nparams = 0;
    for (size_t i = 0; i < r->nstmts; i++) {
        free(r->stmts[i].outputs);
        free(r->stmts[i].copy_null);
        free(r->stmts[i].copy_cols);
    }
    free(r->stmts);
    r->stmts = NULL;
    r->nstmts = 0;
}

static ph_rw_status parse_and_analyze(rw_ctx *c)
{
    PgQueryProtobufParseResult pr = pg_query_parse_protobuf(c->sql);
    if (pr.error) {
        c->failed = 1;
        c->res->status = PH_RW_PARSE_ERROR;
        snprintf(c->res->sqlstate, sizeof c->res->sqlstate, "42601");
        snprintf(c->res->message, sizeof c->res->message, "%s",
                 pr.error->message ? pr.error->message : "syntax error");
        c->res->position = pr.error->cursorpos;
    } else {
        PgQuery__ParseResult *tree = pg_query__parse_result__unpack(
            NULL, pr.parse_tree.len, (const uint8_t *)pr.parse_tree.data);
        if (!tree)
            rw_oom(c);
        else {
            analyze(c, tree);
            wipe_values(c); /* before the tree (which holds the values too) is freed */
            pg_query__parse_result__free_unpacked(tree, NULL);
        }
    }
    if (pr.parse_tree.data)
        OPENSSL_cleanse(pr.parse_tree.data, pr.parse_tree.len);
    pg_query_free_protobuf_parse_result(pr);
    return c->res->status;
}

/* A NUL-terminated copy of the text in c (or the outcome for a text that
 * cannot be analyzed); 0 when c is ready. */
static int ctx_init(rw_ctx *c, unsigned char *inl, const ph_schema *s, const char *sql, size_t len,
                    const ph_rw_options *opt, ph_rw_result *res)
{
    memset(res, 0, sizeof *res);
    *c = (rw_ctx){.schema = s, .opt = opt, .len = len, .res = res, .sql = "", .inl = inl};
    if (opt && opt->shape_out)
        *opt->shape_out = NULL;
    if (!sql || memchr(sql, '\0', len)) {
        c->len = 0;
        res->status = PH_RW_PARSE_ERROR;
        snprintf(res->sqlstate, sizeof res->sqlstate, "42601");
        snprintf(res->message, sizeof res->message, "phantom: the statement contains a NUL byte");
        return -1;
    }
    char *copy = len < SIZE_MAX - 16 ? rw_alloc(c, len + 1) : NULL;
    if (!copy) {
        c->len = 0;
        res->status = PH_RW_INTERNAL_ERROR;
        snprintf(res->sqlstate, sizeof res->sqlstate, "XX000");
        snprintf(res->message, sizeof res->message, "phantom: out of memory");
        return -1;
    }
    memcpy(copy, sql, len);
    copy[len] = '\0';
    c->sql = copy;
    return 0;
}

static ph_rw_status ctx_finish(rw_ctx *c)
{
    ph_rw_result *res = c->res;
    wipe_values(c);
    if (res->status != PH_RW_OK) {
        clear_plan(res);
        res->cacheable = 0;
        if (c->opt && c->opt->shape_out) {
            ph_rw_shape_free(*c->opt->shape_out);
            *c->opt->shape_out = NULL;
        }
    }
    if (c->scan)
        pg_query__scan_result__free_unpacked(c->scan, NULL);
    arena_free(c); /* edits, parameters and the copy live there: all wiped */
    return res->status;
}

ph_rw_status ph_rewrite(const ph_schema *s, const char *sql, size_t len, const ph_rw_options *opt,
                        ph_rw_result *res)
{
    rw_ctx c;
    _Alignas(16) unsigned char inl[RW_INLINE_ARENA];
    if (ctx_init(&c, inl, s, sql, len, opt, res) != 0)
        return res->status;
    if (opt && opt->standard_conforming_strings_off && memchr(c.sql, '\\', len))
        rw_refuse(&c, -1,
                  "phantom: standard_conforming_strings is off and the statement contains a "
                  "backslash; phantom only analyzes statements with standard_conforming_strings "
                  "on");
    else
        parse_and_analyze(&c);
    return ctx_finish(&c);
}

ph_rw_status ph_rewrite_shaped(const ph_rw_shape *sh, const char *sql, size_t len,
                               const ph_rw_options *opt, ph_rw_result *res)
{
    rw_ctx c;
    _Alignas(16) unsigned char inl[RW_INLINE_ARENA];
    if (ctx_init(&c, inl, NULL, sql, len, opt, res) != 0)
        return res->status;
    if (!sh || (opt && opt->standard_conforming_strings_off))
        rw_internal(&c, "phantom: the statement does not have the expected shape");
    else if (rw_shape_replay(&c, sh) == 0)
        splice(&c);
    return ctx_finish(&c);
}

void ph_rw_result_free(ph_rw_result *res)
{
    if (!res)
        return;
    clear_plan(res);
}
