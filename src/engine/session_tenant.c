/*
 * session_tenant.c — the tenant of a session (see "Tenants" in colcrypt.h).
 *
 * Owns: where a session's tenant comes from — the startup packet
 * (`options=-c phantom.tenant=T`, `--phantom.tenant=T`, or a parameter
 * phantom.tenant of its own; removed from what goes upstream), and
 * `SET [SESSION] phantom.tenant = 'T'` / `TO DEFAULT` / `RESET
 * phantom.tenant` / `SHOW phantom.tenant`, answered by the proxy itself on
 * the simple and the extended protocol: the server gets a statement that
 * carries no tenant id and answers in order with the right transaction
 * status (SET -> `SET phantom.tenant TO DEFAULT`, RESET -> `RESET
 * phantom.tenant`, SHOW -> `SELECT NULL::text AS "phantom.tenant"` whose row
 * and command tag the engine replaces); `RESET ALL` and `DISCARD ALL` (a
 * pooler's reset) bring back the startup tenant. Also the tenant of a row
 * being written (a tenant column given in an INSERT), which must agree with
 * the session's when it has one, and the tenancy (whose keys) every
 * encryption and decryption of the session uses.
 *
 * Rules: a tenant given at connection start is fixed for the connection
 * (SET may only repeat it); SET LOCAL is refused (the tenant is per
 * session, not per transaction); a SET takes effect when the proxy reads it
 * (a ROLLBACK does not undo it); a string mixing a phantom.tenant command
 * with other statements is refused.
 */
#include "engine/engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include "engine/wire.h"
#include "protocol/pg/startup_opts.h"

#define TENANT_GUC "phantom.tenant"
#define SHOW_SQL   "SELECT NULL::text AS \"phantom.tenant\""
#define SET_SQL    "SET phantom.tenant TO DEFAULT"
#define RESET_SQL  "RESET phantom.tenant"

/* ---- tenancy ------------------------------------------------------------------------- */

eng_tenancy eng_who(ph_session *s)
{
    const char *t = s->row_tenant[0] ? s->row_tenant : s->tenant[0] ? s->tenant : NULL;
    return (eng_tenancy){.tenant = t,
                         .foreign_null = s->e->schema->foreign_values == PH_FOREIGN_NULL,
                         .load_tried = s->row_tenant[0] ? NULL : &s->tenant_load_tried,
                         .hold = &s->keyhold};
}

int eng_row_tenant(ph_session *s, const char *tenant, size_t len, eng_cc_err *err)
{
    if (!tenant) {
        s->row_tenant[0] = '\0';
        return 0;
    }
    if (!ph_tenant_valid_len(tenant, len)) {
        snprintf(err->sqlstate, sizeof err->sqlstate, "22023");
        snprintf(err->message, sizeof err->message,
                 "phantom: invalid tenant id in the tenant column (1..%d of A-Z a-z 0-9 _ . -, "
                 "starting and ending with a letter or digit)",
                 PH_TENANT_MAX);
        return -1;
    }
    if (s->tenant[0] && (strlen(s->tenant) != len || memcmp(s->tenant, tenant, len) != 0)) {
        snprintf(err->sqlstate, sizeof err->sqlstate, "42501");
        snprintf(err->message, sizeof err->message,
                 "phantom: this session's tenant is %s; it cannot write rows of tenant %.*s",
                 s->tenant, (int)len, tenant);
        return -1;
    }
    memcpy(s->row_tenant, tenant, len);
    s->row_tenant[len] = '\0';
    return 0;
}

int eng_rw_tenant(void *ud, const char *tenant, char *err, size_t errlen)
{
    ph_session *s = ud;
    eng_cc_err e = {{0}, {0}};
    if (eng_row_tenant(s, tenant, tenant ? strlen(tenant) : 0, &e) == 0)
        return 0;
    snprintf(err, errlen, "%s",
             strncmp(e.message, "phantom: ", 9) == 0 ? e.message + 9 : e.message);
    memcpy(s->rw_sqlstate, e.sqlstate, sizeof s->rw_sqlstate);
    return -1;
}

/* The session's tenant becomes t ("" none): plans made for the old one's
 * key versions are forgotten. */
static void set_tenant(ph_session *s, const char *t)
{
    size_t n = strlen(t);
    if (strcmp(s->tenant, t) == 0 || n >= sizeof s->tenant)
        return;
    memcpy(s->tenant, t, n + 1);
    s->tenant_load_tried = false;
    eng_plans_clear(s);
}

/* ---- the startup packet ------------------------------------------------------------------ */

int ph_session_startup(ph_session *s, uint8_t *pkt, size_t *len, char *err, size_t errlen)
{
    char v[256];
    int rc = pgp_startup_take_setting(pkt, len, TENANT_GUC, v, sizeof v);
    if (rc < 0 || (rc == 1 && v[0] && !ph_tenant_valid(v))) {
        snprintf(err, errlen,
                 "phantom: invalid value for phantom.tenant in the startup packet (1..%d of A-Z "
                 "a-z 0-9 _ . -, starting and ending with a letter or digit)",
                 PH_TENANT_MAX);
        return -1;
    }
    size_t n = rc == 1 ? strlen(v) : 0; /* a valid id: at most PH_TENANT_MAX */
    if (rc == 1 && s && n < sizeof s->tenant) {
        memcpy(s->startup_tenant, v, n + 1);
        memcpy(s->tenant, v, n + 1);
    }
    return 0;
}

/* ---- recognising the commands ------------------------------------------------------------- */

static void cmd_refuse(eng_tenant_cmd *c, const char *code, const char *msg)
{
    c->kind = TEN_REFUSE;
    snprintf(c->sqlstate, sizeof c->sqlstate, "%s", code);
    snprintf(c->message, sizeof c->message, "%s", msg);
}

static bool is_tenant_name(const char *name)
{
    return name && strcmp(name, TENANT_GUC) == 0;
}

/* SET's value: one string (or identifier, or integer) constant. */
static void set_value(const PgQuery__VariableSetStmt *v, eng_tenant_cmd *c)
{
    const char *val = NULL;
    char num[24];
    if (v->n_args == 1 && v->args[0] && v->args[0]->node_case == PG_QUERY__NODE__NODE_A_CONST) {
        const PgQuery__AConst *k = v->args[0]->a_const;
        if (k->val_case == PG_QUERY__A__CONST__VAL_SVAL)
            val = k->sval->sval;
        else if (k->val_case == PG_QUERY__A__CONST__VAL_IVAL) {
            snprintf(num, sizeof num, "%d", k->ival ? k->ival->ival : 0);
            val = num;
        }
    }
    if (!val) {
        cmd_refuse(c, "22023", "phantom: SET phantom.tenant needs one value (a tenant id)");
        return;
    }
    if (val[0] && !ph_tenant_valid(val)) {
        cmd_refuse(c, "22023",
                   "phantom: invalid value for phantom.tenant (1..63 of A-Z a-z 0-9 _ . -, "
                   "starting and ending with a letter or digit)");
        return;
    }
    c->kind = TEN_SET;
    snprintf(c->value, sizeof c->value, "%s", val);
    c->upstream = SET_SQL;
}

/* What one statement of the string is, as far as tenants go. */
static eng_tenant_kind classify_stmt(const PgQuery__Node *n, eng_tenant_cmd *c)
{
    if (!n)
        return TEN_NONE;
    if (n->node_case == PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT &&
        is_tenant_name(n->variable_show_stmt->name)) {
        c->kind = TEN_SHOW;
        c->upstream = SHOW_SQL;
        return TEN_SHOW;
    }
    if (n->node_case == PG_QUERY__NODE__NODE_DISCARD_STMT &&
        n->discard_stmt->target == PG_QUERY__DISCARD_MODE__DISCARD_ALL)
        return TEN_RESET_ALL;
    if (n->node_case != PG_QUERY__NODE__NODE_VARIABLE_SET_STMT)
        return TEN_NONE;
    const PgQuery__VariableSetStmt *v = n->variable_set_stmt;
    if (v->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL)
        return TEN_RESET_ALL;
    if (!is_tenant_name(v->name))
        return TEN_NONE;
    if (v->is_local) {
        cmd_refuse(c, "0A000",
                   "phantom: SET LOCAL phantom.tenant is not supported: the tenant is per "
                   "session (use SET phantom.tenant)");
    } else if (v->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_VALUE) {
        set_value(v, c);
    } else if (v->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_DEFAULT ||
               v->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET) {
        c->kind = TEN_RESET;
        c->upstream = v->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET ? RESET_SQL : SET_SQL;
    } else {
        cmd_refuse(c, "0A000", "phantom: this form of SET phantom.tenant is not supported");
    }
    return c->kind;
}

/* Whether sql holds the word "tenant" in any case: every spelling of the
 * setting (phantom.tenant, phantom . tenant, "phantom"."tenant") does. This
 * runs on every statement: strpbrk finds the candidates (vectorized). */
static bool mentions_tenant(const char *sql)
{
    for (const char *p = strpbrk(sql, "tT"); p; p = strpbrk(p + 1, "tT"))
        if (strncasecmp(p, "tenant", 6) == 0)
            return true;
    return false;
}

/* Whether something other than blanks follows a ';' (a final ';' is common). */
static bool more_statements(const char *sql)
{
    for (const char *p = strchr(sql, ';'); p; p = strchr(p + 1, ';'))
        if (p[1 + strspn(p + 1, " \t\n\r\f\v;")] != '\0')
            return true;
    return false;
}

/* Whether p starts with the lower-case keyword w, in any case. */
static bool starts_with_word(const char *p, const char *w)
{
    for (; *w; p++, w++)
        if ((*p | 0x20) != *w) /* maps only A-Z onto a-z */
            return false;
    return true;
}

/* Worth parsing: starts with DISCARD / RESET, or may be a SET / SHOW of
 * phantom.tenant — it starts with SET / SHOW (or a comment), or holds more
 * than one statement, and names the tenant. */
static bool may_be_tenant_cmd(const char *sql)
{
    const char *p = sql + strspn(sql, " \t\n\r\f\v");
    bool may = false;
    switch (*p | 0x20) {
    case 'd':
    case 'r':
        if (starts_with_word(p, "discard") || starts_with_word(p, "reset"))
            return true;
        break;
    case 's':
        may = starts_with_word(p, "set") || starts_with_word(p, "show");
        break;
    case '/': /* a comment first (also reached by the control bytes 0x0F, 0x0D) */
    case '-':
        may = *p == '/' || *p == '-';
        break;
    default:
        break;
    }
    return (may || more_statements(p)) && mentions_tenant(p);
}

eng_tenant_kind eng_tenant_classify(const char *sql, eng_tenant_cmd *c)
{
    if (!may_be_tenant_cmd(sql)) {
        c->kind = TEN_NONE;
        return TEN_NONE;
    }
    memset(c, 0, sizeof *c);
    PgQueryProtobufParseResult pr = pg_query_parse_protobuf(sql);
    PgQuery__ParseResult *tree =
        pr.error ? NULL
                 : pg_query__parse_result__unpack(NULL, pr.parse_tree.len,
                                                  (const uint8_t *)pr.parse_tree.data);
    bool reset_all = false, tenant = false;
    for (size_t i = 0; tree && i < tree->n_stmts; i++) {
        eng_tenant_cmd one;
        memset(&one, 0, sizeof one);
        eng_tenant_kind sk = classify_stmt(tree->stmts[i]->stmt, &one);
        if (sk == TEN_RESET_ALL) {
            reset_all = true;
        } else if (sk != TEN_NONE) {
            tenant = true;
            *c = one;
        }
    }
    if (tenant && tree->n_stmts > 1)
        cmd_refuse(c, "0A000",
                   "phantom: send SET / RESET / SHOW phantom.tenant as a statement of its own");
    else if (!tenant)
        c->kind = reset_all ? TEN_RESET_ALL : TEN_NONE;
    if (tree)
        pg_query__parse_result__free_unpacked(tree, NULL);
    pg_query_free_protobuf_parse_result(pr);
    return c->kind;
}

/* ---- applying them ------------------------------------------------------------------------ */

int eng_tenant_apply(ph_session *s, const eng_tenant_cmd *c, eng_cc_err *err)
{
    const char *want = c->kind == TEN_SET                                 ? c->value
                       : c->kind == TEN_RESET || c->kind == TEN_RESET_ALL ? s->startup_tenant
                                                                          : NULL;
    if (!want)
        return 0;
    if (s->startup_tenant[0] && strcmp(want, s->startup_tenant) != 0) {
        snprintf(err->sqlstate, sizeof err->sqlstate, "42501");
        snprintf(err->message, sizeof err->message,
                 "phantom: this connection's tenant was given when it started (%s) and cannot "
                 "be changed",
                 s->startup_tenant);
        return -1;
    }
    set_tenant(s, want);
    return 0;
}

/* Expects the answer of the replacement query (its reference to nothing). */
static int push_answer(ph_session *s, const eng_tenant_cmd *c)
{
    eng_ex *x = s->skip_till_sync ? NULL : eng_ex_push(s, EX_QUERY);
    if (!x)
        return s->skip_till_sync ? 0 : -1;
    x->gen = ++s->gen;
    if (c->kind == TEN_SHOW && !(x->show = strdup(s->tenant)))
        return -1;
    return 0;
}

int eng_tenant_query(ph_session *s, const char *sql, ph_buf *rep, int *verdict)
{
    eng_tenant_cmd c;
    eng_tenant_kind k = eng_tenant_classify(sql, &c);
    if (k == TEN_NONE)
        return 0;
    eng_cc_err err = {{0}, {0}};
    bool skip = s->skip_till_sync; /* the server discards it: nothing takes effect */
    if (k == TEN_RESET_ALL) {      /* goes upstream as it is */
        if (!skip)
            (void)eng_tenant_apply(s, &c, &err);
        return 0;
    }
    if (k == TEN_REFUSE || (!skip && eng_tenant_apply(s, &c, &err) != 0)) {
        *verdict = eng_refuse_query(s, rep, k == TEN_REFUSE ? c.sqlstate : err.sqlstate,
                                    k == TEN_REFUSE ? c.message : err.message)
                       ? -1
                       : PGF_REPLACED;
        return 1;
    }
    if (!skip)
        s->unnamed_exists = false;
    *verdict = eng_put_query(rep, c.upstream, strlen(c.upstream)) || push_answer(s, &c)
                   ? -1
                   : PGF_REPLACED;
    return 1;
}

/* ---- SHOW's answer ----------------------------------------------------------------------------
 */

/* The SHOW whose answer is arriving, or NULL. */
static const char *show_pending(const ph_session *s)
{
    const eng_ex *h = s->head;
    if (h && (h->kind == EX_QUERY || h->kind == EX_EXECUTE))
        return h->show;
    return NULL;
}

bool eng_tenant_show_wanted(const ph_session *s, uint8_t type)
{
    return (type == 'D' || type == 'C') && show_pending(s) != NULL;
}

int eng_tenant_show_reply(ph_session *s, uint8_t type, ph_buf *rep)
{
    const char *v = show_pending(s);
    size_t at;
    if (!v || (type != 'D' && type != 'C'))
        return PGF_KEEP;
    if (eng_msg_begin(rep, type, &at))
        return -1;
    int rc = type == 'C'
                 ? ph_buf_append_cstr(rep, "SHOW")
                 : ph_buf_append_u16(rep, 1) || ph_buf_append_u32(rep, (uint32_t)strlen(v)) ||
                       ph_buf_append(rep, v, strlen(v));
    if (rc || eng_msg_end(rep, at))
        return -1;
    return PGF_REPLACED;
}
