/*
 * session_query.c — the client's messages: Query, Parse, Bind, Describe,
 * Execute and Close.
 *
 * Owns: the fast path (text that names no protected table goes through
 * untouched), rewriting through src/rewrite/ and refusing what it refuses,
 * the catalog injection at safe points, the statement and portal records,
 * Parse parameter types (protected parameters become bytea upstream, token
 * parameters text), Bind parameter encryption (from text or binary, sent
 * upstream in binary; token parameters tokenized), and
 * the Describe the engine inserts before an Execute whose result it must
 * decrypt but has never seen described.
 *
 * A safe point for the injected catalog query is a message boundary with no
 * unsynced extended-protocol messages before it, in front of a simple Query
 * or a Parse that replaces the unnamed statement (a simple Query destroys
 * the unnamed statement, so it must not run where the client may still use
 * one).
 */
#include "engine/engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "engine/colcrypt.h"
#include "engine/wire.h"
#include "ops/metrics.h"

#define OID_BYTEA       17u
#define OID_BYTEA_ARRAY 1001u
#define OID_UNKNOWN     705u
#define OID_TEXT        25u

/* ---- the rewriter --------------------------------------------------------------------- */

/* A literal of a token column: its token (create: a stored value). */
static int rw_token(ph_session *s, const ph_schema_column *col, const char *text_value, size_t len,
                    int create, ph_buf *out, char *err, size_t errlen)
{
    eng_cc_err e = {{0}, {0}};
    eng_tenancy who = eng_who(s);
    if (eng_col_tokenize_t(s->e, &who, col, 0, (const uint8_t *)text_value, len, create, out, &e) !=
        0) {
        const char *m = strncmp(e.message, "phantom: ", 9) == 0 ? e.message + 9 : e.message;
        snprintf(err, errlen, "%s", m);
        memcpy(s->rw_sqlstate, e.sqlstate, sizeof s->rw_sqlstate);
        return -1;
    }
    return 0;
}

int eng_rw_lookup(void *ud, const ph_schema_column *col, const char *text_value, size_t len,
                  ph_buf *out, char *err, size_t errlen)
{
    if (col->mode != PH_MODE_TOKEN)
        return eng_rw_encrypt(ud, col, text_value, len, out, err, errlen);
    return rw_token(ud, col, text_value, len, 0, out, err, errlen);
}

int eng_rw_encrypt(void *ud, const ph_schema_column *col, const char *text_value, size_t len,
                   ph_buf *out, char *err, size_t errlen)
{
    ph_session *s = ud;
    eng_cc_err e = {{0}, {0}};
    if (col->mode == PH_MODE_TOKEN)
        return rw_token(s, col, text_value, len, 1, out, err, errlen);
    eng_tenancy who = eng_who(s);
    if (eng_col_encrypt_t(s->e->keys, &who, col, &s->opts, 0, eng_col_ltype(col),
                          (const uint8_t *)text_value, len, out, &s->memo, &e) != 0) {
        const char *m = strncmp(e.message, "phantom: ", 9) == 0 ? e.message + 9 : e.message;
        snprintf(err, errlen, "%s", m);
        memcpy(s->rw_sqlstate, e.sqlstate, sizeof s->rw_sqlstate);
        return -1;
    }
    return 0;
}

int eng_rw_eq_versions(void *ud, const ph_schema_column *col)
{
    ph_session *s = ud;
    eng_tenancy who = eng_who(s);
    return eng_col_versions_t(s->e->keys, &who, col);
}

int eng_rw_encrypt_eq(void *ud, const ph_schema_column *col, const char *text_value, size_t len,
                      ph_buf *out, size_t *lens, size_t max, char *err, size_t errlen)
{
    ph_session *s = ud;
    eng_cc_err e = {{0}, {0}};
    eng_tenancy who = eng_who(s);
    int n =
        eng_col_encrypt_versions_t(s->e->keys, &who, col, &s->opts, 0, eng_col_ltype(col),
                                   (const uint8_t *)text_value, len, out, lens, max, &s->memo, &e);
    if (n < 0) {
        const char *m = strncmp(e.message, "phantom: ", 9) == 0 ? e.message + 9 : e.message;
        snprintf(err, errlen, "%s", m);
        memcpy(s->rw_sqlstate, e.sqlstate, sizeof s->rw_sqlstate);
    }
    return n;
}

static ph_rw_options rw_options(ph_session *s)
{
    return (ph_rw_options){.encrypt = eng_rw_encrypt,
                           .encrypt_ud = s,
                           .eq_versions = eng_rw_eq_versions,
                           .encrypt_eq = eng_rw_encrypt_eq,
                           .lookup = eng_rw_lookup,
                           .table_columns = eng_rw_columns,
                           .columns_ud = s,
                           .tenant = eng_rw_tenant,
                           .standard_conforming_strings_off = s->scs_off,
                           .client_encoding = s->client_encoding[0] ? s->client_encoding : NULL};
}

/* Keeps a new shape (taking it) unless the cache cannot. */
static void keep_shape(ph_session *s, ph_rw_shape *sh)
{
    if (!sh)
        return;
    if (s->shapes.n >= ENG_SHAPE_CACHE_MAX)
        eng_map_clear(&s->shapes);
    if (eng_map_put(&s->shapes, ph_rw_shape_key_of(sh), sh, NULL) != 0)
        ph_rw_shape_free(sh);
}

/* Rewrites through a cached shape of the text when there is one (no
 * parsing), else in full, keeping the text's shape for next time. The scan
 * that found the shape key goes along, so the text is scanned once. */
static ph_rw_status rewrite(ph_session *s, const char *sql, size_t len, ph_rw_result *res)
{
    ph_rw_options o = rw_options(s);
    ph_rw_scanned *scanned = NULL;
    if (!s->scs_off && len <= ENG_PLAN_CACHE_MAX_TEXT && (scanned = ph_rw_scan(sql, len))) {
        const ph_rw_shape *sh = eng_map_get(&s->shapes, ph_rw_scanned_key(scanned, NULL));
        ph_rw_shape *made = NULL;
        ph_rw_status st;
        o.scanned = scanned;
        if (sh) {
            st = ph_rewrite_shaped(sh, sql, len, &o, res);
        } else {
            o.shape_out = &made;
            st = ph_rewrite(s->e->schema, sql, len, &o, res);
            keep_shape(s, made);
        }
        ph_rw_scanned_free(scanned);
        return st;
    }
    return ph_rewrite(s->e->schema, sql, len, &o, res);
}

/* Statements after which the catalog may have changed. */
static bool changes_catalog(const ph_rw_result *res)
{
    for (size_t i = 0; i < res->nstmts; i++)
        if (res->stmts[i].kind == PH_RW_STMT_DDL || res->stmts[i].kind == PH_RW_STMT_OTHER)
            return true;
    return false;
}

/* A simple-protocol string that changed the catalog of a protected table is
 * followed at once by the catalog query, and its ReadyForQuery is held back
 * until that answer is in, so the client's next statement (e.g. an INSERT
 * without a column list into the table just created) is planned with the
 * new definition. Not after a COPY: the server would read the catalog query
 * as part of the COPY data stream. */
static bool reload_after(const ph_session *s, const ph_rw_result *res)
{
    if (s->ext_open || s->skip_till_sync || !changes_catalog(res))
        return false;
    for (size_t i = 0; i < res->nstmts; i++)
        if (res->stmts[i].kind == PH_RW_STMT_COPY)
            return false;
    return true;
}

static int hold_for_catalog(ph_session *s, ph_buf *rep)
{
    eng_ex *q = s->tail;
    if (!q || q->kind != EX_QUERY || eng_inject_catalog(s, rep) != 0)
        return -1;
    q->hold_z = true;
    return 0;
}

static bool need_catalog(const ph_session *s)
{
    return s->cat_state != CAT_PENDING && (s->cat_state != CAT_OK || s->cat_stale);
}

/* While the proxy's keys are unavailable (key provider down), a statement
 * that needs them — any not on the fast path — is refused before anything
 * of it goes upstream, and with keys.when_unavailable: refuse every other
 * one too (keysource.h). true with the refusal in m / code. */
static bool keys_refuse(const ph_session *s, bool needs_keys, char *m, size_t mlen, char code[6])
{
    if (!ph_keysource_refusal(s->e->keys, needs_keys, m, mlen))
        return false;
    memcpy(code, PH_KEYS_UNAVAILABLE_SQLSTATE, 6);
    return true;
}

/* The plan of sql[0..len) (NUL-terminated): from the session's cache, or
 * made by the rewriter. NULL when refused: the client-facing message and
 * SQLSTATE are in m / code. */
static eng_plan *plan_for(ph_session *s, const char *sql, size_t len, char *m, size_t mlen,
                          char code[6])
{
    bool cacheable_text = len <= ENG_PLAN_CACHE_MAX_TEXT;
    eng_plan *p = cacheable_text ? eng_map_get(&s->plans, sql) : NULL;
    if (p) {
        p->refs++;
        return p;
    }
    if (!(p = ph_calloc(1, sizeof *p))) {
        snprintf(m, mlen, "phantom: out of memory");
        memcpy(code, "53200", 6);
        return NULL;
    }
    p->refs = 1;
    s->rw_sqlstate[0] = '\0';
    if (rewrite(s, sql, len, &p->res) != PH_RW_OK) {
        eng_refusal_message(&p->res, m, mlen);
        /* a literal the column's type refuses: the data exception, not XX000 */
        if (p->res.status == PH_RW_INTERNAL_ERROR && s->rw_sqlstate[0])
            memcpy(code, s->rw_sqlstate, 6);
        else
            memcpy(code, p->res.sqlstate, 6);
        code[5] = '\0';
        eng_plan_unref(p);
        return NULL;
    }
    if (changes_catalog(&p->res)) {
        s->cat_stale = true;
        eng_plans_clear(s);
    } else if (p->res.cacheable && cacheable_text) {
        if (s->plans.n >= ENG_PLAN_CACHE_MAX)
            eng_map_clear(&s->plans);
        if (eng_map_put(&s->plans, sql, p, NULL) == 0)
            p->refs++;
    }
    return p;
}

/* ---- Query ------------------------------------------------------------------------------ */

/* Expects the answer of a Query (plan: its reference passes to the queue). */
static int push_query(ph_session *s, eng_plan *plan)
{
    eng_ex *x = s->skip_till_sync ? NULL : eng_ex_push(s, EX_QUERY);
    if (!x) {
        eng_plan_unref(plan);
        return s->skip_till_sync ? 0 : -1;
    }
    x->gen = ++s->gen;
    x->plan = plan;
    return 0;
}

int eng_c2s_query(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    eng_rd r;
    size_t len;
    eng_rd_init(&r, msg, total);
    const char *sql = eng_rd_cstr(&r, &len);
    if (!eng_rd_done(&r))
        return -1;
    bool skip = s->skip_till_sync;
    int verdict = PGF_KEEP;
    if (eng_tenant_query(s, sql, rep, &verdict))
        return verdict;
    bool inject = !skip && !s->ext_open && need_catalog(s);
    if (!skip)
        s->unnamed_exists = false;
    bool mentions = ph_rewrite_mentions_protected(s->e->schema, sql, len);
    char m[512], code[6];
    if (keys_refuse(s, mentions, m, sizeof m, code)) {
        ph_metrics_inc(PH_CTR_QUERY_REFUSED);
        return eng_refuse_query(s, rep, code, m) ? -1 : PGF_REPLACED;
    }
    if (!mentions) {
        ph_metrics_inc(PH_CTR_QUERY_FAST);
        if (inject && (eng_inject_catalog(s, rep) != 0 || ph_buf_append(rep, msg, total) != 0))
            return -1;
        if (push_query(s, NULL) != 0)
            return -1;
        return inject ? PGF_REPLACED : PGF_KEEP;
    }
    eng_plan *p = plan_for(s, sql, len, m, sizeof m, code);
    ph_metrics_inc(p ? PH_CTR_QUERY_REWRITTEN : PH_CTR_QUERY_REFUSED);
    /* one catalog query per string: after it when it changes the catalog */
    bool reload = p && reload_after(s, &p->res);
    inject = inject && !reload;
    if (inject && eng_inject_catalog(s, rep) != 0) {
        eng_plan_unref(p);
        return -1;
    }
    if (!p)
        return eng_refuse_query(s, rep, code, m) ? -1 : PGF_REPLACED;
    const ph_rw_result *res = &p->res;
    if (!inject && !res->sql && !reload)
        return push_query(s, p) ? -1 : PGF_KEEP;
    if (res->sql ? eng_put_query(rep, res->sql, res->sql_len) : ph_buf_append(rep, msg, total)) {
        eng_plan_unref(p);
        return -1;
    }
    if (push_query(s, p) != 0 || (reload && hold_for_catalog(s, rep) != 0))
        return -1;
    return PGF_REPLACED;
}

/* ---- Parse ------------------------------------------------------------------------------ */

/* Records a statement (the map takes st's reference) and expects its
 * ParseComplete; what it replaced is kept until then, for an error. */
static int install_stmt(ph_session *s, const char *name, eng_stmt *st)
{
    eng_ex *x = eng_ex_push(s, EX_PARSE);
    void *prev = NULL;
    if (!x || eng_ex_name(x, name) != 0 || eng_map_put(&s->stmts, name, st, &prev) != 0) {
        eng_stmt_unref(st);
        return -1;
    }
    st->refs++;
    x->stmt = st;
    x->prev = prev;
    x->had_prev = prev != NULL;
    return 0;
}

/* The parameter types sent upstream: the client's, extended to cover every
 * protected parameter, which become bytea (bytea[] for one compared with a
 * column whose key domain has several live versions). */
static uint32_t *upstream_types(const eng_stmt *st, uint16_t *n)
{
    const ph_rw_result *res = &st->plan->res;
    int count = st->nparams;
    for (int i = 0; i < res->nparams; i++)
        if (res->params[i] && i + 1 > count)
            count = i + 1;
    if (count > 65535)
        return NULL;
    uint32_t *t = ph_calloc((size_t)count + 1, sizeof *t);
    if (!t)
        return NULL;
    for (int i = 0; i < count; i++) {
        t[i] = i < st->nparams ? st->ptype[i] : 0;
        if (i < res->nparams && res->params[i])
            t[i] = res->params[i]->mode == PH_MODE_TOKEN     ? OID_TEXT /* a token */
                   : res->param_multi && res->param_multi[i] ? OID_BYTEA_ARRAY
                                                             : OID_BYTEA;
    }
    *n = (uint16_t)count;
    return t;
}

static int parse_planned(ph_session *s, const char *name, eng_stmt *st, const char *sql, size_t len,
                         ph_buf *rep)
{
    uint16_t n = 0;
    uint32_t *types = upstream_types(st, &n);
    if (!types) {
        eng_stmt_unref(st);
        return -1;
    }
    const ph_rw_result *res = &st->plan->res;
    int rc = res->sql ? eng_put_parse(rep, name, res->sql, res->sql_len, n, types)
                      : eng_put_parse(rep, name, sql, len, n, types);
    free(types);
    if (rc != 0) {
        eng_stmt_unref(st);
        return -1;
    }
    return install_stmt(s, name, st);
}

/* Parse of SET / RESET / SHOW phantom.tenant: the statement remembers the
 * command (applied at each Execute) and the server parses a replacement
 * that carries no tenant id. 1 when it was one (*verdict set), else 0. */
static int parse_tenant_cmd(ph_session *s, const char *name, const char *sql, uint16_t nt,
                            const uint8_t *tp, ph_buf *rep, int *verdict)
{
    eng_tenant_cmd c;
    eng_tenant_kind k = eng_tenant_classify(sql, &c);
    if (k == TEN_NONE || k == TEN_RESET_ALL)
        return 0;
    if (k == TEN_REFUSE) {
        if (name[0] == '\0')
            eng_map_del(&s->stmts, "", NULL);
        *verdict = eng_refuse_extended(s, rep, c.sqlstate, c.message) ? -1 : PGF_REPLACED;
        return 1;
    }
    eng_stmt *st = eng_stmt_new();
    if (!st || !(st->tenant = malloc(sizeof *st->tenant)) ||
        eng_put_parse(rep, name, c.upstream, strlen(c.upstream), 0, NULL) != 0) {
        eng_stmt_unref(st);
        *verdict = -1;
        return 1;
    }
    (void)nt;
    (void)tp;
    *st->tenant = c;
    *verdict = install_stmt(s, name, st) ? -1 : PGF_REPLACED;
    return 1;
}

int eng_c2s_parse(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    eng_rd r;
    size_t len;
    eng_rd_init(&r, msg, total);
    const char *name = eng_rd_cstr(&r, NULL);
    const char *sql = eng_rd_cstr(&r, &len);
    uint16_t nt = eng_rd_u16(&r);
    const uint8_t *tp = eng_rd_bytes(&r, (size_t)nt * 4);
    if (!eng_rd_done(&r))
        return -1;
    bool skip = s->skip_till_sync, unnamed = name[0] == '\0';
    bool inject = !skip && !s->ext_open && need_catalog(s) && (unnamed || !s->unnamed_exists);
    bool mentions = ph_rewrite_mentions_protected(s->e->schema, sql, len);
    s->ext_open = true;
    if (skip) /* the server discards it: nothing to record, nothing to analyze */
        return mentions || strcasestr(sql, "phantom.tenant") ? PGF_DROP : PGF_KEEP;
    if (unnamed)
        s->unnamed_exists = true;
    int tv = PGF_KEEP;
    if (parse_tenant_cmd(s, name, sql, nt, tp, rep, &tv))
        return tv;
    char m[512], code[6];
    if (keys_refuse(s, mentions, m, sizeof m, code)) {
        ph_metrics_inc(PH_CTR_QUERY_REFUSED);
        if (unnamed) /* as when the rewriter refuses it */
            eng_map_del(&s->stmts, "", NULL);
        return eng_refuse_extended(s, rep, code, m) ? -1 : PGF_REPLACED;
    }
    eng_stmt *st = eng_stmt_new();
    if (!st || (nt && !(st->ptype = ph_calloc(nt, sizeof *st->ptype)))) {
        eng_stmt_unref(st);
        return -1;
    }
    st->nparams = nt;
    for (uint16_t i = 0; i < nt; i++)
        st->ptype[i] = ph_get_u32(tp + 4 * (size_t)i);
    st->mentions = mentions;
    if (inject && eng_inject_catalog(s, rep) != 0) {
        eng_stmt_unref(st);
        return -1;
    }
    if (!mentions) {
        ph_metrics_inc(PH_CTR_QUERY_FAST);
        if (inject && ph_buf_append(rep, msg, total) != 0) {
            eng_stmt_unref(st);
            return -1;
        }
        return install_stmt(s, name, st) ? -1 : inject ? PGF_REPLACED : PGF_KEEP;
    }
    st->plan = plan_for(s, sql, len, m, sizeof m, code);
    ph_metrics_inc(st->plan ? PH_CTR_QUERY_REWRITTEN : PH_CTR_QUERY_REFUSED);
    if (!st->plan) {
        eng_stmt_unref(st);
        if (unnamed)
            eng_map_del(&s->stmts, "", NULL);
        return eng_refuse_extended(s, rep, code, m) ? -1 : PGF_REPLACED;
    }
    return parse_planned(s, name, st, sql, len, rep) ? -1 : PGF_REPLACED;
}

/* ---- Bind ----------------------------------------------------------------------------------- */

typedef struct bind_msg {
    const char *portal, *stmt;
    uint16_t nf, np, nr;
    const uint8_t *fmts;   /* nf int16 */
    const uint8_t *params; /* np × (int32 len, bytes) */
    size_t params_len;
    const uint8_t *res; /* nr int16 */
} bind_msg;

static int read_bind(const uint8_t *msg, uint32_t total, bind_msg *b)
{
    eng_rd r;
    eng_rd_init(&r, msg, total);
    b->portal = eng_rd_cstr(&r, NULL);
    b->stmt = eng_rd_cstr(&r, NULL);
    b->nf = eng_rd_u16(&r);
    b->fmts = eng_rd_bytes(&r, (size_t)b->nf * 2);
    b->np = eng_rd_u16(&r);
    size_t start = r.off;
    for (uint16_t i = 0; i < b->np && !r.bad; i++) {
        uint32_t l = eng_rd_u32(&r);
        if (l != 0xFFFFFFFFu)
            (void)eng_rd_bytes(&r, l);
    }
    b->params = r.p + start;
    b->params_len = r.off - start;
    b->nr = eng_rd_u16(&r);
    b->res = eng_rd_bytes(&r, (size_t)b->nr * 2);
    return eng_rd_done(&r) ? 0 : -1;
}

static uint16_t bind_fmt(const bind_msg *b, uint16_t i)
{
    if (b->nf == 0)
        return 0;
    return ph_get_u16(b->fmts + 2 * (size_t)(b->nf == 1 ? 0 : i));
}

static bool same_family(ph_ltype a, ph_ltype b)
{
    bool ia = a == PH_LT_INT2 || a == PH_LT_INT4 || a == PH_LT_INT8;
    bool ib = b == PH_LT_INT2 || b == PH_LT_INT4 || b == PH_LT_INT8;
    bool ja = a == PH_LT_JSON || a == PH_LT_JSONB, jb = b == PH_LT_JSON || b == PH_LT_JSONB;
    return a == b || (ia && ib) || (ja && jb);
}

/* How to read parameter i of column col given the client's declared type:
 * as the column's type, as a same-family type, or (declared text) as text. */
static int param_input(const eng_stmt *st, int i, const ph_schema_column *col, int *binary,
                       ph_ltype *in, eng_cc_err *err)
{
    uint32_t decl = i < st->nparams ? st->ptype[i] : 0;
    ph_ltype dt, ct = eng_col_ltype(col);
    *in = ct;
    if (decl == 0 || decl == OID_UNKNOWN)
        return 0;
    if (eng_ltype_from_oid(decl, &dt) == 0 && same_family(dt, ct)) {
        *in = dt;
        return 0;
    }
    if (decl == 25 || decl == 1043 || decl == 1042 || decl == 19) {
        *binary = 0; /* a text type's binary form is its text */
        return 0;
    }
    snprintf(err->sqlstate, sizeof err->sqlstate, "42804");
    snprintf(err->message, sizeof err->message,
             "phantom: parameter $%d is declared with type OID %u, which cannot be stored in %s "
             "(%s)",
             i + 1, decl, col->qualified, ph_logical_type_name(col->type));
    return -1;
}

/* Appends parameter i's value for col encrypted (binary): one envelope, or,
 * for a parameter compared with a column whose key domain has several live
 * versions, a one-dimensional bytea[] of its envelope under each (binary
 * array format: ndim, has-null flag, element type, then per dimension its
 * length and lower bound, then per element its length and bytes). */
static int encrypt_param(ph_session *s, const eng_stmt *st, int i, const ph_schema_column *col,
                         int binary, ph_ltype in, const uint8_t *v, uint32_t l, ph_buf *out,
                         eng_cc_err *err)
{
    const ph_rw_result *res = &st->plan->res;
    eng_tenancy who = eng_who(s);
    if (col->mode == PH_MODE_TOKEN) /* a token in text's binary form: its bytes */
        return eng_col_tokenize_t(s->e, &who, col, binary, v, l,
                                  !res->param_lookup || !res->param_lookup[i], out, err);
    if (!res->param_multi || !res->param_multi[i])
        return eng_col_encrypt_t(s->e->keys, &who, col, &s->opts, binary, in, v, l, out, &s->memo,
                                 err);
    ph_buf envs = {0};
    size_t lens[ENG_MAX_VERSIONS];
    int n = eng_col_encrypt_versions_t(s->e->keys, &who, col, &s->opts, binary, in, v, l, &envs,
                                       lens, ENG_MAX_VERSIONS, &s->memo, err);
    int rc = n < 0 ? -1 : 0;
    if (rc == 0 && (ph_buf_append_u32(out, 1) || ph_buf_append_u32(out, 0) ||
                    ph_buf_append_u32(out, OID_BYTEA) || ph_buf_append_u32(out, (uint32_t)n) ||
                    ph_buf_append_u32(out, 1)))
        rc = -3;
    for (int k = 0, off = 0; rc == 0 && k < n; off += (int)lens[k], k++)
        if (ph_buf_append_u32(out, (uint32_t)lens[k]) ||
            ph_buf_append(out, envs.data + off, lens[k]))
            rc = -3;
    ph_buf_free(&envs);
    return rc;
}

/* Parameter k (0-based) of the Bind message as text, for a row's tenant:
 * text format as sent; binary as an integer or text type reads. */
static int tenant_param_text(const eng_stmt *st, const bind_msg *b, int k, char *buf, size_t cap,
                             size_t *len, eng_cc_err *err)
{
    eng_rd r = {.p = b->params, .n = b->params_len};
    const uint8_t *v = NULL;
    uint32_t l = 0;
    for (int i = 0; i <= k; i++) {
        l = eng_rd_u32(&r);
        v = l == 0xFFFFFFFFu ? NULL : eng_rd_bytes(&r, l);
    }
    if (!v) {
        eng_cc_errf(err, "22023", "phantom: the row's tenant (parameter $%d) is NULL", k + 1);
        return -2;
    }
    uint32_t decl = k < st->nparams ? st->ptype[k] : 0;
    if (bind_fmt(b, (uint16_t)k) == 1 && (decl == 20 || decl == 21 || decl == 23)) {
        int64_t x = 0;
        if (l != (decl == 20 ? 8u : decl == 23 ? 4u : 2u)) {
            eng_cc_errf(err, "08P01", "phantom: invalid binary integer in parameter $%d", k + 1);
            return -2;
        }
        for (uint32_t j = 0; j < l; j++)
            x = (int64_t)((uint64_t)x << 8 | v[j]);
        if (l == 4)
            x = (int32_t)(uint32_t)x;
        else if (l == 2)
            x = (int16_t)(uint16_t)x;
        *len = (size_t)snprintf(buf, cap, "%lld", (long long)x);
        return 0;
    }
    if (bind_fmt(b, (uint16_t)k) == 1 && decl != 0 && decl != 25 && decl != 1043 && decl != 19 &&
        decl != OID_UNKNOWN) {
        eng_cc_errf(err, "42804",
                    "phantom: the row's tenant (parameter $%d) must be text or an integer", k + 1);
        return -2;
    }
    if (l >= cap) {
        eng_cc_errf(err, "22023", "phantom: the row's tenant (parameter $%d) is too long", k + 1);
        return -2;
    }
    memcpy(buf, v, l);
    *len = l;
    return 0;
}

/* Makes the tenant of the row parameter i is stored in (rewrite.h) the row
 * tenant for its encryption: 0, or -2 with err. */
static int param_row_tenant(ph_session *s, const eng_stmt *st, const bind_msg *b, int i,
                            eng_cc_err *err)
{
    const ph_rw_result *res = &st->plan->res;
    const char *lit = res->param_tenant_lit ? res->param_tenant_lit[i] : NULL;
    int ref = res->param_tenant_ref ? res->param_tenant_ref[i] : 0;
    char buf[PH_TENANT_MAX + 24];
    size_t len = 0;
    if (lit)
        return eng_row_tenant(s, lit, strlen(lit), err) ? -2 : 0;
    if (!ref)
        return eng_row_tenant(s, NULL, 0, err);
    if (ref > b->np) {
        eng_cc_errf(err, "08P01", "phantom: the row's tenant (parameter $%d) is missing", ref);
        return -2;
    }
    if (tenant_param_text(st, b, ref - 1, buf, sizeof buf, &len, err) != 0)
        return -2;
    return eng_row_tenant(s, buf, len, err) ? -2 : 0;
}

static int encrypt_params_rows(ph_session *s, const eng_stmt *st, const bind_msg *b, ph_buf *out,
                               uint8_t *codes, eng_cc_err *err);

/* Appends parameter values with the protected ones encrypted (binary), each
 * under its row's tenant when the statement stores rows of a table with a
 * tenant column. */
static int encrypt_params(ph_session *s, const eng_stmt *st, const bind_msg *b, ph_buf *out,
                          uint8_t *codes, eng_cc_err *err)
{
    int rc = encrypt_params_rows(s, st, b, out, codes, err);
    (void)eng_row_tenant(s, NULL, 0, err);
    return rc;
}

static int encrypt_params_rows(ph_session *s, const eng_stmt *st, const bind_msg *b, ph_buf *out,
                               uint8_t *codes, eng_cc_err *err)
{
    eng_rd r = {.p = b->params, .n = b->params_len};
    for (uint16_t i = 0; i < b->np; i++) {
        uint32_t l = eng_rd_u32(&r);
        const uint8_t *v = l == 0xFFFFFFFFu ? NULL : eng_rd_bytes(&r, l);
        const ph_schema_column *col = i < st->plan->res.nparams ? st->plan->res.params[i] : NULL;
        uint16_t fmt = bind_fmt(b, i);
        if (!col || !v) {
            ph_put_u16(codes + 2 * (size_t)i, fmt);
            if (ph_buf_append_u32(out, l) || (v && ph_buf_append(out, v, l)))
                return -1;
            continue;
        }
        int binary = fmt == 1;
        ph_ltype in;
        if (fmt > 1) {
            snprintf(err->sqlstate, sizeof err->sqlstate, "08P01");
            snprintf(err->message, sizeof err->message, "phantom: unsupported format code %u", fmt);
            return -2;
        }
        if (param_input(st, i, col, &binary, &in, err) != 0 ||
            param_row_tenant(s, st, b, i, err) != 0)
            return -2;
        size_t at = out->len;
        if (ph_buf_append_u32(out, 0))
            return -1;
        int rc = encrypt_param(s, st, i, col, binary, in, v, l, out, err);
        if (rc != 0)
            return rc == -3 ? -1 : -2;
        ph_put_u32(out->data + at, (uint32_t)(out->len - at - 4));
        ph_put_u16(codes + 2 * (size_t)i, 1);
    }
    return 0;
}

static int bind_encrypted(ph_session *s, const eng_stmt *st, const bind_msg *b, ph_buf *rep,
                          eng_cc_err *err)
{
    if (b->nf > 1 && b->nf != b->np) {
        snprintf(err->sqlstate, sizeof err->sqlstate, "08P01");
        snprintf(err->message, sizeof err->message,
                 "phantom: bind message has %u parameter formats but %u parameters", b->nf, b->np);
        return -2;
    }
    ph_buf vals = {0};
    /* room for the values grown by their envelopes (~40 bytes each, more for
     * an array of key versions) and for the message, so neither is regrown */
    size_t room = b->params_len + (size_t)b->np * 64 + 64;
    uint8_t *codes = ph_calloc((size_t)b->np + 1, 2);
    int rc = codes && ph_buf_reserve(&vals, room) == 0 ? encrypt_params(s, st, b, &vals, codes, err)
                                                       : -1;
    size_t at;
    if (rc == 0)
        rc = ph_buf_reserve(rep, strlen(b->portal) + strlen(b->stmt) + vals.len +
                                     (size_t)(b->np + b->nr) * 2 + 16) ||
                     eng_msg_begin(rep, 'B', &at) || ph_buf_append_cstr(rep, b->portal) ||
                     ph_buf_append_cstr(rep, b->stmt) || ph_buf_append_u16(rep, b->np) ||
                     ph_buf_append(rep, codes, (size_t)b->np * 2) ||
                     ph_buf_append_u16(rep, b->np) || ph_buf_append(rep, vals.data, vals.len) ||
                     ph_buf_append_u16(rep, b->nr) ||
                     ph_buf_append(rep, b->res, (size_t)b->nr * 2) || eng_msg_end(rep, at)
                 ? -1
                 : 0;
    free(codes);
    ph_buf_free(&vals);
    return rc;
}

static int record_portal(ph_session *s, const bind_msg *b, eng_stmt *st)
{
    eng_portal *p = eng_portal_new();
    eng_ex *x = NULL;
    if (!p || (b->nr && !(p->resfmt = ph_calloc(b->nr, sizeof *p->resfmt))))
        goto oom;
    p->nres = b->nr;
    for (uint16_t i = 0; i < b->nr; i++)
        p->resfmt[i] = (int16_t)ph_get_u16(b->res + 2 * (size_t)i);
    if (st) {
        st->refs++;
        p->stmt = st;
    }
    p->gen = s->gen;
    if (!(x = eng_ex_push(s, EX_BIND)) || eng_ex_name(x, b->portal) != 0)
        goto oom;
    if (eng_map_put(&s->portals, b->portal, p, NULL) != 0)
        goto oom;
    p->refs++;
    x->portal = p;
    return 0;
oom:
    eng_portal_unref(p);
    return -1;
}

int eng_c2s_bind(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    bind_msg b;
    if (read_bind(msg, total, &b) != 0)
        return -1;
    s->ext_open = true;
    eng_stmt *st = eng_map_get(&s->stmts, b.stmt);
    bool prot = eng_stmt_protected_params(st);
    if (s->skip_till_sync)
        return prot ? PGF_DROP : PGF_KEEP;
    char m[512], code[6];
    if (keys_refuse(s, prot || (st && st->mentions), m, sizeof m, code))
        return eng_refuse_extended(s, rep, code, m) ? -1 : PGF_REPLACED;
    if (prot) {
        eng_cc_err err = {{0}, {0}};
        int rc = bind_encrypted(s, st, &b, rep, &err);
        if (rc == -2) {
            rep->len = 0;
            return eng_refuse_extended(s, rep, err.sqlstate, err.message) ? -1 : PGF_REPLACED;
        }
        if (rc != 0)
            return -1;
    }
    if (record_portal(s, &b, st) != 0)
        return -1;
    return prot ? PGF_REPLACED : PGF_KEEP;
}

/* ---- Describe, Execute, Close -------------------------------------------------------------- */

static int read_target(const uint8_t *msg, uint32_t total, uint8_t *what, const char **name)
{
    eng_rd r;
    eng_rd_init(&r, msg, total);
    *what = eng_rd_u8(&r);
    *name = eng_rd_cstr(&r, NULL);
    return eng_rd_done(&r) && (*what == 'S' || *what == 'P') ? 0 : -1;
}

int eng_c2s_describe(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    uint8_t what;
    const char *name;
    if (read_target(msg, total, &what, &name) != 0)
        return -1;
    s->ext_open = true;
    if (s->skip_till_sync)
        return PGF_KEEP;
    eng_ex *x = eng_ex_push(s, what == 'S' ? EX_DESC_STMT : EX_DESC_PORTAL);
    if (!x)
        return -1;
    if (what == 'S') {
        if ((x->stmt = eng_map_get(&s->stmts, name))) {
            x->stmt->refs++;
            x->stmt->desc_requested = true;
        }
    } else if ((x->portal = eng_map_get(&s->portals, name))) {
        x->portal->refs++;
        x->portal->desc_requested = true;
    }
    return PGF_KEEP;
}

/* The result of an Execute must be decrypted but nobody asked for its
 * RowDescription: the engine asks (and swallows the answer). */
static bool may_return_protected(const eng_stmt *st)
{
    const ph_rw_stmt *plan = eng_stmt_plan(st);
    if (!plan)
        return st->mentions;
    for (size_t i = 0; i < plan->noutputs; i++)
        if (plan->outputs[i].col || plan->outputs[i].star)
            return true;
    return false;
}

static bool needs_describe(const eng_portal *p)
{
    return p && p->stmt && !p->desc_known && !p->desc_requested && !p->stmt->desc_known &&
           !p->stmt->desc_requested && may_return_protected(p->stmt);
}

/* Execute of a phantom.tenant command's portal: applied now (refused when
 * the connection's tenant is fixed); a SHOW's answer gets the tenant. */
static int execute_tenant_cmd(ph_session *s, eng_portal *p, const uint8_t *msg, uint32_t total,
                              ph_buf *rep)
{
    eng_cc_err err = {{0}, {0}};
    const eng_tenant_cmd *c = p->stmt->tenant;
    if (eng_tenant_apply(s, c, &err) != 0)
        return eng_refuse_extended(s, rep, err.sqlstate, err.message) ? -1 : PGF_REPLACED;
    eng_ex *x = eng_ex_push(s, EX_EXECUTE);
    if (!x)
        return -1;
    x->portal = p;
    p->refs++;
    if (c->kind == TEN_SHOW && !(x->show = strdup(s->tenant)))
        return -1;
    (void)msg;
    (void)total;
    (void)rep;
    return PGF_KEEP;
}

int eng_c2s_execute(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    eng_rd r;
    eng_rd_init(&r, msg, total);
    const char *name = eng_rd_cstr(&r, NULL);
    (void)eng_rd_u32(&r);
    if (!eng_rd_done(&r))
        return -1;
    s->ext_open = true;
    if (s->skip_till_sync)
        return PGF_KEEP;
    eng_portal *p = eng_map_get(&s->portals, name);
    if (p && p->stmt && p->stmt->tenant)
        return execute_tenant_cmd(s, p, msg, total, rep);
    bool inject = needs_describe(p);
    if (inject) {
        eng_ex *d = eng_ex_push(s, EX_INJ_DESC);
        if (!d || eng_put_describe(rep, 'P', name) || ph_buf_append(rep, msg, total))
            return -1;
        d->portal = p;
        p->refs++;
        p->desc_requested = true;
    }
    eng_ex *x = eng_ex_push(s, EX_EXECUTE);
    if (!x)
        return -1;
    if (p) {
        x->portal = p;
        p->refs++;
    }
    return inject ? PGF_REPLACED : PGF_KEEP;
}

int eng_c2s_close(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    uint8_t what;
    const char *name;
    if (read_target(msg, total, &what, &name) != 0)
        return -1;
    s->ext_open = true;
    if (s->skip_till_sync)
        return PGF_KEEP;
    eng_map_del(what == 'S' ? &s->stmts : &s->portals, name, NULL);
    return eng_ex_push(s, EX_CLOSE) ? PGF_KEEP : -1;
}
