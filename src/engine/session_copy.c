/*
 * session_copy.c — COPY ... FROM STDIN / TO STDOUT on protected tables.
 *
 * Owns: recognising the protected COPY a CopyInResponse/CopyOutResponse
 * answers (the rewriter's plan: table, column list, options), setting up a
 * streaming codec (copy.h) over its protected columns, and running the
 * CopyData payloads of that direction through it: the client's data is
 * encrypted before it goes upstream (COPY FROM), the server's decrypted
 * before it reaches the client (COPY TO). CopyData of other tables passes
 * untouched. Fail closed: when the columns cannot be known (no catalog and
 * no column list, a column-count mismatch) or the data cannot be
 * transformed, COPY FROM data is replaced by a CopyFail (nothing of it goes
 * upstream) and COPY TO turns into an ErrorResponse.
 *
 * A client may send its COPY FROM data right behind the statement, without
 * waiting for the CopyInResponse (asyncpg's copy_to_table does): such data
 * belongs to the last statement the client sent, so when that is a COPY FROM
 * STDIN into protected columns the codec is set up from the plan at the first
 * CopyData and the CopyInResponse, when it comes, only has to agree with it.
 * COPY data behind a refused statement, or with no statement to belong to,
 * is dropped (the server would discard it: it must not see it in the clear).
 */
#include "engine/engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "engine/colcrypt.h"
#include "engine/wire.h"

/* The COPY statement whose answer is arriving, if it is a protected one. */
static const ph_rw_stmt *copy_plan(const ph_session *s)
{
    const eng_ex *h = s->head;
    const ph_rw_stmt *p = NULL;
    if (h && h->kind == EX_QUERY && h->plan && h->cur_stmt < h->plan->res.nstmts)
        p = &h->plan->res.stmts[h->cur_stmt];
    else if (h && h->kind == EX_EXECUTE && h->portal)
        p = eng_stmt_plan(h->portal->stmt);
    return p && p->kind == PH_RW_STMT_COPY && p->copy_table ? p : NULL;
}

bool eng_copy_wanted(const ph_session *s)
{
    return copy_plan(s) != NULL;
}

static void copy_options(const ph_rw_stmt *p, ph_copy_options *o)
{
    *o = p->copy_opts;
}

static void release_cols(ph_session *s)
{
    if (!s->copy_in)
        s->row_tenant[0] = '\0'; /* a COPY FROM's last row's tenant */
    if (s->copy_in || s->copy_out)
        return;
    free(s->copy_cols);
    s->copy_cols = NULL;
    s->copy_ncols = 0;
}

void eng_copy_end(ph_session *s)
{
    ph_copy_xform_free(s->copy_out);
    s->copy_out = NULL;
    release_cols(s);
}

void eng_copy_in_abort(ph_session *s)
{
    if (!s->copy_in)
        return;
    ph_copy_xform_free(s->copy_in);
    s->copy_in = NULL;
    s->copy_in_failed = true;
    s->copy_fail_sent = true;
    release_cols(s);
}

void eng_copy_free(ph_session *s)
{
    ph_copy_xform_free(s->copy_in);
    ph_copy_xform_free(s->copy_out);
    s->copy_in = s->copy_out = NULL;
    s->copy_in_failed = s->copy_fail_sent = false;
    release_cols(s);
}

static int copy_field(void *ud, int column, const uint8_t *in, size_t len, bool is_null,
                      ph_buf *out, bool *out_null, char *err, size_t errlen)
{
    ph_session *s = ud;
    if (column < 0) { /* the row's tenant, before its protected fields */
        eng_cc_err e = {{0}, {0}};
        if (is_null) {
            snprintf(err, errlen, "phantom: the row's tenant is NULL");
            return -1;
        }
        if (eng_row_tenant(s, (const char *)in, len, &e) != 0) {
            snprintf(err, errlen, "%s", e.message);
            return -1;
        }
        return 0;
    }
    const ph_schema_column *col =
        column >= 0 && column < s->copy_ncols ? s->copy_cols[column] : NULL;
    if (!col) {
        snprintf(err, errlen, "phantom: internal error: COPY column %d", column + 1);
        return -1;
    }
    if (is_null) {
        *out_null = true;
        return 0;
    }
    eng_cc_err e = {{0}, {0}};
    eng_tenancy who = eng_who(s);
    if (col->mode == PH_MODE_TOKEN) { /* COPY FROM stores: a token is made */
        int rc = s->copy_in
                     ? eng_col_tokenize_t(s->e, &who, col, s->copy_binary, in, len, 1, out, &e)
                     : eng_col_detokenize_t(s->e, &who, col, in, len, s->copy_binary, out, &e);
        if (rc == 1) { /* another tenant's token, read as NULL */
            *out_null = true;
            return 0;
        }
        if (rc != 0)
            snprintf(err, errlen, "%s", e.message);
        return rc;
    }
    int rc = s->copy_in ? eng_col_encrypt_t(s->e->keys, &who, col, &s->opts, s->copy_binary,
                                            eng_col_ltype(col), in, len, out, NULL, &e)
                        : eng_col_decrypt_t(s->e->keys, &who, col, &s->opts, in, len,
                                            s->copy_binary, out, NULL, &e);
    if (rc == 1) { /* another tenant's value, read as NULL */
        *out_null = true;
        return 0;
    }
    if (rc != 0)
        snprintf(err, errlen, "%s", e.message);
    return rc;
}

/* Where the tenant column of p's table is among the COPY's columns, -1. */
static int copy_tenant_col(const ph_session *s, const ph_rw_stmt *p)
{
    const ph_schema_table *t = p->copy_table;
    if (!t->tenant_column)
        return -1;
    if (p->copy_ncols >= 0)
        return p->copy_tenant;
    const eng_cat_table *ct = s->cat_have ? eng_catalog_table(&s->cat, t) : NULL;
    for (size_t i = 0; ct && i < ct->n && i < 65536; i++)
        if (strcmp(ct->names[i], t->tenant_column) == 0)
            return (int)i;
    return -1;
}

/* The protected column of each COPY column, in order; -1 if unknown. */
static int copy_columns(ph_session *s, const ph_rw_stmt *p, const ph_schema_column ***out)
{
    const ph_schema_table *t = p->copy_table;
    const eng_cat_table *ct = NULL;
    size_t n;
    if (p->copy_ncols >= 0) {
        n = (size_t)p->copy_ncols;
    } else { /* no column list: the table's columns, from the catalog */
        ct = s->cat_have ? eng_catalog_table(&s->cat, t) : NULL;
        if (!ct)
            return -1;
        n = ct->n;
    }
    if (n > 65535)
        return -1;
    const ph_schema_column **cols = ph_calloc(n + 1, sizeof *cols);
    if (!cols)
        return -1;
    for (size_t i = 0; i < n; i++)
        cols[i] = ct ? ph_schema_find_column(t, ct->names[i]) : p->copy_cols[i];
    *out = cols;
    return (int)n;
}

static int copy_refused(ph_session *s, uint8_t type, ph_buf *rep, const char *why)
{
    if (type == 'G') { /* the client's data will be replaced by a CopyFail */
        s->copy_in_failed = true;
        s->copy_fail_sent = false;
        snprintf(s->copy_err, sizeof s->copy_err, "%s", why);
        return PGF_KEEP;
    }
    return eng_fail_result(s, rep, "0A000", why);
}

#define COPY_NEEDS_COLUMNS                                                                         \
    "phantom: COPY on a protected table needs its columns: give a column list (the catalog of "    \
    "protected tables is not available)"

/* Sets up the codec of COPY p over its columns (ncols >= 0: the count the
 * server announced, which must match). 0: set up (or nothing to transform),
 * 1: refused (*why), -1: out of memory. */
static int copy_arm(ph_session *s, const ph_rw_stmt *p, bool in, int ncols, const char **why)
{
    const ph_schema_column **cols = NULL;
    int n = copy_columns(s, p, &cols);
    if (n < 0 || (ncols >= 0 && n != ncols)) {
        free(cols);
        *why = COPY_NEEDS_COLUMNS;
        return 1;
    }
    bool *tr = ph_calloc((size_t)n + 1, sizeof *tr);
    bool any = false;
    for (int i = 0; tr && i < n; i++)
        any |= tr[i] = cols[i] != NULL;
    if (!tr || !any) {
        free(tr);
        free(cols);
        return tr ? 0 : -1;
    }
    ph_copy_options o;
    copy_options(p, &o);
    s->copy_cols = cols;
    s->copy_ncols = n;
    s->copy_binary = o.format == PH_COPY_BINARY;
    ph_copy_xform *x =
        ph_copy_xform_new(&o, in ? PH_COPY_ENCRYPT : PH_COPY_DECRYPT, n, tr, copy_field, s);
    free(tr);
    if (!x) {
        release_cols(s);
        return -1;
    }
    if (in && p->copy_table->tenant_keyed) /* each row under its tenant's keys */
        ph_copy_xform_set_peek(x, copy_tenant_col(s, p));
    for (int i = 0; i < n; i++)
        if (cols[i] && cols[i]->mode == PH_MODE_TOKEN)
            ph_copy_xform_set_text(x, i);
    if (in)
        s->copy_in = x;
    else
        s->copy_out = x;
    return 0;
}

int eng_s2c_copy_response(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    const ph_rw_stmt *p = copy_plan(s);
    uint8_t type = msg[0];
    if (!p || type == 'W')
        return PGF_KEEP;
    eng_rd r;
    eng_rd_init(&r, msg, total);
    uint8_t overall = eng_rd_u8(&r);
    uint16_t ncols = eng_rd_u16(&r);
    (void)eng_rd_bytes(&r, (size_t)ncols * 2);
    if (!eng_rd_done(&r))
        return -1;
    bool early = type == 'G' && s->head->copy_armed;
    if (!early)
        eng_copy_free(s);
    ph_copy_options o;
    copy_options(p, &o);
    const char *why = NULL;
    if ((o.format == PH_COPY_BINARY) != (overall == 1)) {
        why = "phantom: COPY format does not match the statement";
    } else if (early) {
        /* The client's data went first, through a codec made from the plan:
         * the server's columns must be the ones it assumed. */
        const ph_schema_column **cols = NULL;
        int n = copy_columns(s, p, &cols);
        free(cols);
        if (n != ncols)
            why = COPY_NEEDS_COLUMNS;
    } else {
        int rc = copy_arm(s, p, type == 'G', ncols, &why);
        if (rc < 0)
            return -1;
        s->head->copy_armed = type == 'G';
    }
    if (!why)
        return PGF_KEEP;
    if (early)
        eng_copy_free(s);
    return copy_refused(s, type, rep, why);
}

/* ---- COPY TO: server data ------------------------------------------------------------------ */

static int emit_data(ph_buf *rep, ph_buf *out)
{
    int rc = out->len ? eng_put_copy_data(rep, out->data, out->len) : 0;
    eng_buf_wipe(out);
    return rc;
}

int eng_s2c_copy_data(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    ph_buf out = {0};
    char err[256] = "";
    if (ph_copy_xform_feed(s->copy_out, msg + 5, total - 5, &out, err, sizeof err) != 0) {
        eng_buf_wipe(&out);
        eng_copy_end(s);
        return eng_fail_result(s, rep, "XX001", err[0] ? err : "phantom: COPY data refused");
    }
    bool some = out.len > 0;
    if (emit_data(rep, &out) != 0)
        return -1;
    return some ? PGF_REPLACED : PGF_DROP;
}

int eng_s2c_copy_done(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    ph_buf out = {0};
    char err[256] = "";
    int rc = ph_copy_xform_finish(s->copy_out, &out, err, sizeof err);
    eng_copy_end(s);
    if (rc != 0) {
        eng_buf_wipe(&out);
        return eng_fail_result(s, rep, "XX001", err[0] ? err : "phantom: COPY data refused");
    }
    if (emit_data(rep, &out) != 0 || ph_buf_append(rep, msg, total) != 0)
        return -1;
    return PGF_REPLACED;
}

/* ---- COPY FROM: client data ------------------------------------------------------------------ */

static int fail_copy_in(ph_session *s, ph_buf *rep, const char *why)
{
    ph_copy_xform_free(s->copy_in);
    s->copy_in = NULL;
    release_cols(s);
    s->copy_in_failed = true;
    s->copy_fail_sent = true;
    rep->len = 0;
    return eng_put_copy_fail(rep, why) ? -1 : PGF_REPLACED;
}

/* The last statement the client sent that the server has not finished
 * answering (what COPY data belongs to), or NULL. */
static eng_ex *last_statement(const ph_session *s)
{
    eng_ex *last = NULL;
    for (eng_ex *x = s->head; x; x = x->next)
        if (x->kind == EX_QUERY || x->kind == EX_EXECUTE || x->kind == EX_REFUSE_EXEC ||
            x->kind == EX_FUNC)
            last = x;
    return last;
}

/* x runs a COPY FROM STDIN into protected columns (the first COPY of a
 * simple query from the statement being answered on): its plan, or NULL. */
static const ph_rw_stmt *early_plan(const eng_ex *x)
{
    const ph_rw_stmt *p = NULL;
    if (x->kind == EX_QUERY && x->plan) {
        for (size_t i = x->cur_stmt; i < x->plan->res.nstmts && !p; i++)
            if (x->plan->res.stmts[i].kind == PH_RW_STMT_COPY)
                p = &x->plan->res.stmts[i];
    } else if (x->kind == EX_EXECUTE && x->portal) {
        p = eng_stmt_plan(x->portal->stmt);
    }
    if (!p || p->kind != PH_RW_STMT_COPY || !p->copy_table || !p->copy_from)
        return NULL;
    for (int i = 0; i < p->copy_ncols; i++)
        if (p->copy_cols[i])
            return p;
    return p->copy_ncols < 0 ? p : NULL; /* no column list: the table's, protected ones too */
}

static bool refused(const eng_ex *x)
{
    return x->kind == EX_REFUSE_EXEC || (x->kind == EX_QUERY && x->refusal);
}

bool eng_copy_early_wanted(const ph_session *s)
{
    const eng_ex *x = last_statement(s);
    return !x || refused(x) || (early_plan(x) != NULL);
}

#define COPY_GO 1000 /* not a pgf result: go on with the COPY state as it now is */

/* Client COPY data with no COPY FROM codec: the server has not answered the
 * protected COPY FROM yet (set the codec up from the plan), or the data is
 * not for a COPY the server will run (dropped: it would discard it). */
static int copy_early(ph_session *s)
{
    eng_ex *x = last_statement(s);
    if (!x || refused(x))
        return PGF_DROP;
    const ph_rw_stmt *p = early_plan(x);
    if (!p)
        return PGF_KEEP; /* not into protected columns: not ours to change */
    if (x->copy_armed)
        return PGF_DROP; /* the client already ended this COPY */
    x->copy_armed = true;
    eng_copy_free(s);
    const char *why = NULL;
    int rc = copy_arm(s, p, true, -1, &why);
    if (rc < 0)
        return -1;
    if (rc > 0) {
        s->copy_in_failed = true;
        s->copy_fail_sent = false;
        snprintf(s->copy_err, sizeof s->copy_err, "%s", why);
    }
    return COPY_GO;
}

int eng_c2s_copy(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    uint8_t type = msg[0];
    if (!s->copy_in && !s->copy_in_failed) {
        int v = copy_early(s);
        if (v != COPY_GO)
            return v;
        if (!s->copy_in && !s->copy_in_failed)
            return PGF_KEEP;
    }
    if (s->copy_in_failed) {
        int v = PGF_DROP;
        if (type == 'f')
            v = s->copy_fail_sent ? PGF_DROP : PGF_KEEP; /* the client's own CopyFail */
        else if (!s->copy_fail_sent)
            v = fail_copy_in(s, rep, s->copy_err);
        if (type != 'd') /* CopyDone / CopyFail end the client's COPY */
            s->copy_in_failed = s->copy_fail_sent = false;
        return v;
    }
    if (!s->copy_in)
        return PGF_KEEP;
    if (type == 'f') {
        eng_copy_free(s);
        return PGF_KEEP;
    }
    ph_buf out = {0};
    char err[256] = "";
    int rc = type == 'd' ? ph_copy_xform_feed(s->copy_in, msg + 5, total - 5, &out, err, sizeof err)
                         : ph_copy_xform_finish(s->copy_in, &out, err, sizeof err);
    if (rc != 0) {
        eng_buf_wipe(&out);
        int v = fail_copy_in(s, rep, err[0] ? err : "phantom: COPY data refused");
        if (type == 'c')
            s->copy_in_failed = s->copy_fail_sent = false;
        return v;
    }
    bool some = out.len > 0;
    if (emit_data(rep, &out) != 0)
        return -1;
    if (type == 'c') {
        eng_copy_free(s);
        return ph_buf_append(rep, msg, total) ? -1 : PGF_REPLACED;
    }
    return some ? PGF_REPLACED : PGF_DROP;
}
