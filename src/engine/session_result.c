/*
 * session_result.c — the server's result messages: RowDescription,
 * DataRow and ParameterDescription.
 *
 * Owns: deciding which result fields hold a protected column — by table OID
 * and attribute number through the catalog map, else by the rewriter's
 * output plan (a value computed from a protected column keeps its policy) —
 * showing them to the client with the logical type, decrypting their values
 * into the client's format, and failing a result closed: a value that does
 * not decrypt turns into an ErrorResponse and the rest of the answer, up to
 * ReadyForQuery, is dropped (never garbage, never ciphertext as data).
 * Fields upstream that are not bytea are never decrypted (a column not yet
 * migrated reads as it is); token columns are stored as text, and their
 * text fields are detokenized (an unknown token is an error, never data).
 */
#include "engine/engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "engine/colcrypt.h"
#include "engine/wire.h"

#define OID_BYTEA   17u
#define OID_TEXT    25u
#define OID_VARCHAR 1043u

int eng_fail_result(ph_session *s, ph_buf *rep, const char *sqlstate, const char *message)
{
    rep->len = 0;
    if (eng_put_error(rep, sqlstate, message) != 0)
        return -1;
    s->dropping = true;
    eng_set_cur(s, NULL);
    return PGF_REPLACED;
}

/* ---- RowDescription -------------------------------------------------------------------- */

static const ph_rw_stmt *head_plan(const ph_session *s)
{
    const eng_ex *h = s->head;
    if (!h)
        return NULL;
    switch (h->kind) {
    case EX_QUERY:
        return h->plan && h->cur_stmt < h->plan->res.nstmts ? &h->plan->res.stmts[h->cur_stmt]
                                                            : NULL;
    case EX_DESC_STMT:
        return eng_stmt_plan(h->stmt);
    case EX_DESC_PORTAL:
    case EX_INJ_DESC:
        return h->portal ? eng_stmt_plan(h->portal->stmt) : NULL;
    default:
        return NULL;
    }
}

static bool plan_has_star(const ph_rw_stmt *p)
{
    for (size_t i = 0; p && i < p->noutputs; i++)
        if (p->outputs[i].star)
            return true;
    return false;
}

/* The protected column the plan says field i of n comes from: outputs
 * before the first `*` align from the start, outputs after the last one
 * from the end. */
static const ph_schema_column *plan_col(const ph_rw_stmt *p, uint16_t n, uint16_t i)
{
    if (!p || !p->outputs)
        return NULL;
    size_t m = p->noutputs, first = m, last = m;
    for (size_t k = 0; k < m; k++)
        if (p->outputs[k].star) {
            if (first == m)
                first = k;
            last = k;
        }
    if (first == m)
        return m == n ? p->outputs[i].col : NULL;
    size_t suffix = m - 1 - last;
    if (first + suffix > n)
        return NULL;
    if (i < first)
        return p->outputs[i].col;
    if (i >= n - suffix)
        return p->outputs[m - (n - i)].col;
    return NULL;
}

static const eng_cat_table *cat_table(const eng_catalog *c, uint32_t oid)
{
    for (size_t i = 0; i < c->ntabs; i++)
        if (c->tabs[i].oid == oid)
            return &c->tabs[i];
    return NULL;
}

static bool protected_name(const ph_schema *sc, const char *name)
{
    for (size_t t = 0; t < sc->ntables; t++)
        if (ph_schema_find_column(sc->tables[t], name))
            return true;
    return false;
}

static bool token_name(const ph_schema *sc, const char *name)
{
    for (size_t t = 0; t < sc->ntables; t++) {
        const ph_schema_column *c = ph_schema_find_column(sc->tables[t], name);
        if (c && c->mode == PH_MODE_TOKEN)
            return true;
    }
    return false;
}

/* The type a protected column is stored as upstream: bytea, text for a
 * token column (it holds tokens). */
static bool stored_type(const ph_schema_column *c, uint32_t typoid)
{
    if (c->mode == PH_MODE_TOKEN)
        return typoid == OID_TEXT || typoid == OID_VARCHAR;
    return typoid == OID_BYTEA;
}

/* A field that may hold a protected column's stored values by its type and
 * name: bytea, or text named like a token column. */
static bool storage_like(const ph_schema *sc, uint32_t typoid, const char *name)
{
    if (typoid == OID_BYTEA)
        return true;
    return (typoid == OID_TEXT || typoid == OID_VARCHAR) && name && token_name(sc, name);
}

static bool listed(const uint32_t *v, size_t n, uint32_t oid)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == oid)
            return true;
    return false;
}

/*
 * The protected column field i of n comes from, or NULL. *stale is set when
 * a bytea field looks like a protected column the session's catalog does
 * not know: a column added after the catalog was read, or a table with a
 * protected column's name and an OID the catalog never saw (dropped and
 * recreated by another session). Passing such a field through would hand
 * the client ciphertext as if it were data.
 */
static const ph_schema_column *field_col(ph_session *s, const ph_rw_stmt *plan, uint16_t n,
                                         uint16_t i, const char *name, uint32_t tableoid,
                                         int16_t attnum, uint32_t typoid, bool *stale, bool *by_cat)
{
    if (tableoid && s->cat_have) {
        const ph_schema_column *c = eng_catalog_column(&s->cat, tableoid, attnum);
        const eng_cat_table *t = c ? NULL : cat_table(&s->cat, tableoid);
        if (c)
            return c;
        if (t) {
            *stale |= attnum > t->max_attnum && storage_like(s->e->schema, typoid, name);
            return NULL;
        }
        *by_cat = false;
        if (storage_like(s->e->schema, typoid, name) && name &&
            protected_name(s->e->schema, name) && !listed(s->plain_oids, s->n_plain, tableoid)) {
            if (!listed(s->suspect_oids, s->n_suspect, tableoid) &&
                s->n_suspect < sizeof s->suspect_oids / sizeof s->suspect_oids[0])
                s->suspect_oids[s->n_suspect++] = tableoid;
            *stale = true;
            return NULL;
        }
    }
    *by_cat = false;
    return plan_col(plan, n, i);
}

/* Stores a description where the head expects it (ownership passes). */
static void store_desc(ph_session *s, eng_rdesc *d)
{
    eng_ex *h = s->head;
    if (h && h->kind == EX_DESC_STMT) {
        if (h->stmt) {
            free(h->stmt->desc);
            h->stmt->desc = d;
            h->stmt->desc_known = true;
            h->stmt->nodata = false;
            return;
        }
    } else if (h && (h->kind == EX_DESC_PORTAL || h->kind == EX_INJ_DESC)) {
        if (h->portal) {
            free(h->portal->desc);
            h->portal->desc = d;
            h->portal->desc_known = true;
            h->portal->nodata = false;
            return;
        }
    } else {
        eng_set_cur(s, d);
        return;
    }
    free(d);
}

/* The server's RowDescription with the protected fields' type OID, typlen and
 * typmod set to the logical type's: every field keeps its size, so the
 * message is copied once and patched in place. */
static int rewrite_rowdesc(const uint8_t *msg, uint32_t total, const eng_rdesc *d, ph_buf *rep)
{
    size_t at = rep->len;
    if (ph_buf_append(rep, msg, total))
        return -1;
    eng_rd r;
    eng_rd_init(&r, msg, total);
    uint16_t n = eng_rd_u16(&r);
    for (uint16_t i = 0; i < n && i < d->n; i++) {
        (void)eng_rd_cstr(&r, NULL);
        const uint8_t *f = eng_rd_bytes(&r, 18);
        if (!f)
            return -1;
        const ph_schema_column *c = d->f[i].col;
        if (!c)
            continue;
        uint8_t *p = rep->data + at + (size_t)(f - msg);
        ph_put_u32(p + 6, eng_col_type_oid(c));
        ph_put_u16(p + 10, (uint16_t)eng_col_typlen(c));
        ph_put_u32(p + 12, (uint32_t)eng_col_typmod(c));
    }
    return 0;
}

void eng_rd_memo_clear(ph_session *s)
{
    ph_buf_free(&s->rd_memo.msg);
    ph_buf_free(&s->rd_memo.out);
    free(s->rd_memo.d);
    s->rd_memo.d = NULL;
}

/* The answer to a RowDescription identical to the remembered one, worked
 * out from the same catalog: PGF_KEEP / PGF_REPLACED, -1 (out of memory),
 * or 0 when there is none to reuse. */
static int rd_memo_reuse(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    if (!s->rd_memo.d || !s->cat_have || s->rd_memo.cat_gen != s->cat_gen ||
        s->rd_memo.msg.len != total || memcmp(s->rd_memo.msg.data, msg, total) != 0)
        return 0;
    eng_rdesc *d = eng_rdesc_copy(s->rd_memo.d);
    if (!d ||
        (s->rd_memo.replaced && ph_buf_append(rep, s->rd_memo.out.data, s->rd_memo.out.len))) {
        free(d);
        return -1;
    }
    store_desc(s, d);
    return s->rd_memo.replaced ? PGF_REPLACED : PGF_KEEP;
}

/* Remembers a RowDescription's answer (d and, when replaced, rep from at). */
static void rd_memo_keep(ph_session *s, const uint8_t *msg, uint32_t total, const eng_rdesc *d,
                         const ph_buf *rep, size_t at, bool replaced)
{
    free(s->rd_memo.d);
    s->rd_memo.msg.len = s->rd_memo.out.len = 0; /* the buffers are reused */
    if (!(s->rd_memo.d = eng_rdesc_copy(d)) || ph_buf_append(&s->rd_memo.msg, msg, total) ||
        (replaced && ph_buf_append(&s->rd_memo.out, rep->data + at, rep->len - at))) {
        eng_rd_memo_clear(s); /* nothing remembered: the next one is worked out */
        return;
    }
    s->rd_memo.cat_gen = s->cat_gen;
    s->rd_memo.replaced = replaced;
}

int eng_s2c_rowdesc(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    int reused = rd_memo_reuse(s, msg, total, rep);
    if (reused != 0)
        return reused;
    const ph_rw_stmt *plan = head_plan(s);
    eng_rd r;
    eng_rd_init(&r, msg, total);
    uint16_t n = eng_rd_u16(&r);
    eng_rdesc *d = eng_rdesc_new(n);
    if (!d)
        return -1;
    bool stale = false, by_cat = s->cat_have; /* every field resolved by the catalog alone */
    for (uint16_t i = 0; i < n; i++) {
        const char *fname = eng_rd_cstr(&r, NULL);
        uint32_t tableoid = eng_rd_u32(&r);
        int16_t attnum = (int16_t)eng_rd_u16(&r);
        uint32_t typoid = eng_rd_u32(&r);
        (void)eng_rd_bytes(&r, 6);
        int16_t fmt = (int16_t)eng_rd_u16(&r);
        const ph_schema_column *c =
            field_col(s, plan, n, i, fname, tableoid, attnum, typoid, &stale, &by_cat);
        d->f[i].fmt = fmt;
        if (c && stored_type(c, typoid)) {
            d->f[i].col = c;
            d->any = true;
        }
    }
    if (!eng_rd_done(&r)) {
        free(d);
        return -1;
    }
    if (stale) {
        free(d);
        s->cat_stale = true; /* reloaded before the next statement */
        return eng_fail_result(s, rep, "55000",
                               "phantom: a protected table changed since this connection read "
                               "its definition; the definition is being reloaded: retry the "
                               "statement");
    }
    if (plan && plan->touches_protected && plan_has_star(plan) && !s->cat_have) {
        free(d);
        return eng_fail_result(s, rep, "55000",
                               "phantom: cannot decrypt this result: the catalog of protected "
                               "tables could not be loaded on this connection");
    }
    int v = PGF_KEEP;
    size_t at = rep->len;
    if (d->any) {
        if (rewrite_rowdesc(msg, total, d, rep) != 0) {
            free(d);
            return -1;
        }
        v = PGF_REPLACED;
    }
    if (by_cat)
        rd_memo_keep(s, msg, total, d, rep, at, v == PGF_REPLACED);
    store_desc(s, d);
    return v;
}

void eng_exec_desc(ph_session *s)
{
    eng_ex *h = s->head;
    if (!h || h->kind != EX_EXECUTE || h->desc_ready)
        return;
    h->desc_ready = true;
    const eng_portal *p = h->portal;
    eng_rdesc *d = NULL;
    if (p && p->desc_known && p->desc) {
        d = eng_rdesc_copy(p->desc);
    } else if (p && p->stmt && p->stmt->desc_known && p->stmt->desc) {
        d = eng_rdesc_copy(p->stmt->desc);
        for (uint16_t i = 0; d && i < d->n; i++)
            d->f[i].fmt = p->nres == 0   ? 0
                          : p->nres == 1 ? p->resfmt[0]
                          : i < p->nres  ? p->resfmt[i]
                                         : 0;
    }
    eng_set_cur(s, d);
}

/* ---- DataRow ------------------------------------------------------------------------------ */

/* A token column's field: the token (text, the same bytes in both formats)
 * to its value, length-prefixed in rep. */
static int detokenize_field(ph_session *s, const eng_rfield *f, const uint8_t *v, uint32_t len,
                            ph_buf *rep, eng_cc_err *err)
{
    size_t at = rep->len;
    int rc = ph_buf_append_u32(rep, 0);
    eng_tenancy who = eng_who(s);
    if (rc == 0)
        rc = eng_col_detokenize_t(s->e, &who, f->col, v, len, f->fmt == 1, rep, err);
    if (rc == 0)
        ph_put_u32(rep->data + at, (uint32_t)(rep->len - at - 4));
    else if (rc == 1) /* another tenant's token, read as NULL */
        ph_put_u32(rep->data + at, 0xFFFFFFFFu);
    return rc == 1 ? 0 : rc;
}

static int decrypt_field(ph_session *s, const eng_rfield *f, const uint8_t *v, uint32_t len,
                         ph_buf *rep, eng_cc_err *err)
{
    if (f->col->mode == PH_MODE_TOKEN)
        return detokenize_field(s, f, v, len, rep, err);
    ph_buf *env = &s->env_scratch; /* ciphertext only: reused, not wiped */
    const uint8_t *e = v;
    size_t elen = len;
    env->len = 0;
    if (f->fmt == 0) {
        if (eng_bytea_from_text(v, len, env) != 0) {
            snprintf(err->sqlstate, sizeof err->sqlstate, "XX001");
            snprintf(err->message, sizeof err->message,
                     "phantom: cannot decrypt a value of %s: not a bytea value", f->col->qualified);
            return -1;
        }
        e = env->data;
        elen = env->len;
    }
    size_t at = rep->len;
    int rc = ph_buf_append_u32(rep, 0);
    eng_tenancy who = eng_who(s);
    if (rc == 0)
        rc = eng_col_decrypt_t(s->e->keys, &who, f->col, &s->opts, e ? e : (const uint8_t *)"",
                               elen, f->fmt == 1, rep, &s->memo, err);
    if (env->cap > 65536)
        ph_buf_free(env); /* keep a small scratch only */
    if (rc == 0)
        ph_put_u32(rep->data + at, (uint32_t)(rep->len - at - 4));
    else if (rc == 1) /* another tenant's value, read as NULL */
        ph_put_u32(rep->data + at, 0xFFFFFFFFu);
    return rc == 1 ? 0 : rc;
}

/* RETURNING rows arrive after the change was made: say so, or a client in
 * autocommit takes the error for a failed INSERT/UPDATE/DELETE although it
 * is committed. */
static void note_executed(const ph_session *s, eng_cc_err *err)
{
    const eng_ex *h = s->head;
    const ph_rw_stmt *p =
        h && h->kind == EX_EXECUTE && h->portal ? eng_stmt_plan(h->portal->stmt) : head_plan(s);
    if (!p || (p->kind != PH_RW_STMT_INSERT && p->kind != PH_RW_STMT_UPDATE &&
               p->kind != PH_RW_STMT_DELETE))
        return;
    size_t n = strlen(err->message);
    snprintf(err->message + n, sizeof err->message - n, " (the statement itself was executed)");
}

int eng_s2c_datarow(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    const eng_rdesc *d = s->cur;
    eng_rd r;
    size_t at;
    eng_rd_init(&r, msg, total);
    uint16_t n = eng_rd_u16(&r);
    if (r.bad || n != d->n)
        return eng_fail_result(s, rep, "08P01",
                               "phantom: a row does not match its row description");
    /* decrypted values are shorter than their envelopes in hex: total is nearly always enough */
    if (ph_buf_reserve(rep, total + 64u) || eng_msg_begin(rep, 'D', &at) ||
        ph_buf_append_u16(rep, n))
        return -1;
    for (uint16_t i = 0; i < n; i++) {
        uint32_t len = eng_rd_u32(&r);
        const uint8_t *v = len == 0xFFFFFFFFu ? NULL : eng_rd_bytes(&r, len);
        if (r.bad)
            return eng_fail_result(s, rep, "08P01", "phantom: malformed DataRow from the server");
        if (!v || !d->f[i].col) {
            if (ph_buf_append_u32(rep, len) || (v && ph_buf_append(rep, v, len)))
                return -1;
            continue;
        }
        eng_cc_err err = {{0}, {0}};
        if (decrypt_field(s, &d->f[i], v, len, rep, &err) != 0) {
            OPENSSL_cleanse(rep->data, rep->len);
            note_executed(s, &err);
            return eng_fail_result(s, rep, err.sqlstate[0] ? err.sqlstate : "XX001",
                                   err.message[0] ? err.message
                                                  : "phantom: cannot decrypt a value");
        }
    }
    if (!eng_rd_done(&r))
        return eng_fail_result(s, rep, "08P01", "phantom: malformed DataRow from the server");
    return eng_msg_end(rep, at) ? -1 : PGF_REPLACED;
}

/* ---- ParameterDescription ------------------------------------------------------------------- */

int eng_s2c_paramdesc(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    const eng_ex *h = s->head;
    if (!h || h->kind != EX_DESC_STMT || !eng_stmt_protected_params(h->stmt))
        return PGF_KEEP;
    const eng_stmt *st = h->stmt;
    eng_rd r;
    size_t at;
    eng_rd_init(&r, msg, total);
    uint16_t n = eng_rd_u16(&r);
    if (eng_msg_begin(rep, 't', &at) || ph_buf_append_u16(rep, n))
        return -1;
    for (uint16_t i = 0; i < n; i++) {
        uint32_t oid = eng_rd_u32(&r);
        const ph_schema_column *c = i < st->plan->res.nparams ? st->plan->res.params[i] : NULL;
        if (c) {
            uint32_t decl = i < st->nparams ? st->ptype[i] : 0;
            oid = decl ? decl : eng_col_type_oid(c);
        }
        if (ph_buf_append_u32(rep, oid))
            return -1;
    }
    if (!eng_rd_done(&r))
        return -1;
    return eng_msg_end(rep, at) ? -1 : PGF_REPLACED;
}
