/*
 * session.c — the engine and session lifecycle, the four hook functions of
 * session.h, the queue of answers the server owes, and the server->client
 * state machine that consumes it.
 *
 * Every decision about a message is taken in one place (s2c_apply /
 * c2s_apply): when a header is passed through (zero-copy) the state change
 * it implies is applied at header time without the body; when the engine
 * needs the body it asks for it and applies the same transition with it.
 * The proxy may inspect messages for its own reasons and call the message
 * functions for them: a message whose header the engine passed is kept.
 */
#include "engine/engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/mem.h"
#include "engine/wire.h"
#include "protocol/pg/pgproto.h"
#include "token/token.h"
#include "token/token_config.h"

/* ---- engine ------------------------------------------------------------------------ */

static bool has_token_columns(const ph_schema *schema)
{
    for (size_t i = 0; schema && i < schema->ntables; i++)
        for (size_t c = 0; c < schema->tables[i]->ncolumns; c++)
            if (schema->tables[i]->columns[c]->mode == PH_MODE_TOKEN)
                return true;
    return false;
}

/* The token service of the schema's tokens: section, when it has token columns. */
static int open_tokens(ph_engine *e, char *err, size_t errlen)
{
    const ph_token_config *tc = e->schema ? e->schema->tokens : NULL;
    if (!tc || !has_token_columns(e->schema))
        return 0;
    char why[256];
    ph_vault *v = ph_vault_open(tc, why, sizeof why);
    if (!v) {
        snprintf(err, errlen, "%s", why); /* "token vault ...: reason" */
        return -1;
    }
    if (!(e->tokens = ph_tokens_new(v, tc->cache_size))) {
        snprintf(err, errlen, "token vault: out of memory");
        return -1;
    }
    return 0;
}

ph_engine *ph_engine_open(const ph_schema *schema, const ph_keysource *keys, char *err,
                          size_t errlen)
{
    ph_engine *e = ph_calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->schema = schema;
    e->keys = keys;
    for (size_t i = 0; schema && i < schema->ntables; i++)
        if (schema->tables[i]->ncolumns > 0)
            e->enabled = true;
    if (e->enabled && !(e->catalog_sql = eng_catalog_sql(schema, &e->catalog_len))) {
        snprintf(err, errlen, "out of memory");
        free(e);
        return NULL;
    }
    if (open_tokens(e, err, errlen) != 0) {
        ph_engine_free(e);
        return NULL;
    }
    return e;
}

ph_engine *ph_engine_new(const ph_schema *schema, const ph_keysource *keys)
{
    char err[320];
    ph_engine *e = ph_engine_open(schema, keys, err, sizeof err);
    if (!e)
        ph_log_error("engine_start_failed", "error", err);
    return e;
}

void ph_engine_set_tokens(ph_engine *e, ph_tokens *t)
{
    ph_tokens_free(e->tokens);
    e->tokens = t;
}

void ph_engine_free(ph_engine *e)
{
    if (!e)
        return;
    ph_tokens_free(e->tokens);
    free(e->catalog_sql);
    free(e);
}

/* ---- session ------------------------------------------------------------------------- */

static void unref_stmt(void *p)
{
    eng_stmt_unref(p);
}

static void unref_portal(void *p)
{
    eng_portal_unref(p);
}

static void unref_plan(void *p)
{
    eng_plan_unref(p);
}

static void free_shape(void *sh)
{
    ph_rw_shape_free(sh);
}

ph_session *ph_session_new(const ph_engine *e)
{
    ph_session *s = ph_calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->e = e;
    s->opts = PH_ENC_OPTS_DEFAULT;
    eng_map_init(&s->stmts, unref_stmt);
    eng_map_init(&s->portals, unref_portal);
    eng_map_init(&s->plans, unref_plan);
    eng_map_init(&s->shapes, free_shape);
    return s;
}

void ph_session_free(ph_session *s)
{
    if (!s)
        return;
    while (s->head)
        eng_ex_pop(s);
    while (s->spare) {
        eng_ex *x = s->spare;
        s->spare = x->next;
        free(x);
    }
    eng_map_clear(&s->stmts);
    eng_map_clear(&s->portals);
    eng_plans_clear(s);
    eng_memo_clear(&s->memo);
    eng_keyhold_end(s->e->keys, &s->keyhold);
    ph_buf_free(&s->env_scratch);
    free(s->cur);
    eng_rd_memo_clear(s);
    eng_catalog_clear(&s->cat);
    eng_catalog_clear(&s->building);
    eng_copy_free(s);
    free(s);
}

/* ---- expected answers ------------------------------------------------------------------- */

/* A pipelined extended-protocol query expects five answers (Parse, Bind,
 * Describe, Execute, Sync): entries are reused rather than allocated for
 * each one. */
#define ENG_EX_SPARE 16

eng_ex *eng_ex_push(ph_session *s, eng_ex_kind kind)
{
    eng_ex *x = s->spare;
    if (x) {
        s->spare = x->next;
        s->nspare--;
        memset(x, 0, sizeof *x);
    } else if (!(x = ph_calloc(1, sizeof *x))) {
        return NULL;
    }
    x->kind = kind;
    if (s->tail)
        s->tail->next = x;
    else
        s->head = x;
    s->tail = x;
    return x;
}

int eng_ex_name(eng_ex *x, const char *name)
{
    return (x->name = eng_name_dup(x->name_buf, name)) ? 0 : -1;
}

/* Gives up what x holds; x itself stays allocated. */
static void ex_release(eng_ex *x)
{
    eng_plan_unref(x->plan);
    eng_name_free(x->name, x->name_buf);
    eng_stmt_unref(x->stmt);
    eng_stmt_unref(x->prev);
    eng_portal_unref(x->portal);
    free(x->show);
}

static void eng_ex_free(eng_ex *x)
{
    ex_release(x);
    free(x);
}

void eng_ex_pop(ph_session *s)
{
    eng_ex *x = s->head;
    if (!x)
        return;
    s->head = x->next;
    if (!s->head)
        s->tail = NULL;
    if (x->kind == EX_CATALOG && s->cat_state == CAT_PENDING)
        eng_catalog_done(s, false);
    if (s->nspare >= ENG_EX_SPARE) {
        eng_ex_free(x);
        return;
    }
    ex_release(x);
    x->next = s->spare;
    s->spare = x;
    s->nspare++;
}

void eng_set_cur(ph_session *s, eng_rdesc *d)
{
    free(s->cur);
    s->cur = d;
}

/* ---- server -> client ----------------------------------------------------------------- */

static void on_parameter_status(ph_session *s, const uint8_t *msg, uint32_t total)
{
    eng_rd r;
    eng_rd_init(&r, msg, total);
    const char *name = eng_rd_cstr(&r, NULL);
    const char *val = eng_rd_cstr(&r, NULL);
    if (r.bad)
        return;
    if (strcmp(name, "standard_conforming_strings") == 0 || strcmp(name, "client_encoding") == 0)
        eng_plans_clear(s); /* plans depend on them */
    if (strcmp(name, "standard_conforming_strings") == 0) {
        s->scs_off = strcasecmp(val, "on") != 0;
    } else if (strcmp(name, "client_encoding") == 0) {
        snprintf(s->client_encoding, sizeof s->client_encoding, "%s", val);
    } else if (strcmp(name, "TimeZone") == 0) {
        static const char *const utc[] = {
            "UTC",           "Etc/UTC", "GMT",      "Etc/GMT", "UCT",  "Etc/UCT",  "Universal",
            "Etc/Universal", "Zulu",    "Etc/Zulu", "Z",       "GMT0", "Etc/GMT0", "Greenwich"};
        s->opts.tz_fixed = false;
        for (size_t i = 0; i < sizeof utc / sizeof utc[0]; i++)
            if (strcasecmp(val, utc[i]) == 0) {
                s->opts.tz_fixed = true;
                s->opts.tz_offset_sec = 0;
            }
    }
}

static bool is_injected(eng_ex_kind k)
{
    return k == EX_INJ_CLOSE || k == EX_INJ_PARSE || k == EX_INJ_BIND || k == EX_INJ_DESC;
}

static bool ends_cycle(eng_ex_kind k)
{
    return k == EX_SYNC || k == EX_QUERY || k == EX_FUNC || k == EX_CATALOG;
}

static bool s2c_needs_body(ph_session *s, uint8_t type)
{
    if (type == 'S' || (type == 'Z' && s->hold_startup_z))
        return true;
    if (!s->authed || type == 'N' || type == 'A')
        return false;
    eng_ex *h = s->head;
    if (s->dropping || (h && h->kind == EX_CATALOG) || eng_tenant_show_wanted(s, type))
        return true;
    switch (type) {
    case 'T': /* small, once per result: always checked against the catalog */
    case 'Z': /* the transaction status ends portals */
        return true;
    case 'D':
        if (h && h->kind == EX_EXECUTE)
            eng_exec_desc(s);
        return s->cur && s->cur->any;
    case 't':
        return h && h->kind == EX_DESC_STMT && eng_stmt_protected_params(h->stmt);
    case '1':
    case '2':
    case '3':
    case 'n':
        return h && is_injected(h->kind);
    case 'G':
    case 'H':
        return eng_copy_wanted(s);
    case 'E':
        return h && (h->kind == EX_REFUSE_EXEC || (h->kind == EX_QUERY && h->refusal));
    case 'd':
    case 'c':
        return s->copy_out != NULL;
    default:
        return false;
    }
}

/* The answer to the injected catalog query: read and swallowed. */
static int catalog_answer(ph_session *s, uint8_t type, const uint8_t *msg, uint32_t total)
{
    switch (type) {
    case 'D':
        if (msg && s->cat_state == CAT_PENDING)
            eng_catalog_row(s, msg, total);
        break;
    case 'C':
        if (s->cat_state == CAT_PENDING)
            eng_catalog_done(s, true);
        break;
    case 'E':
        if (s->cat_state == CAT_PENDING)
            eng_catalog_done(s, false);
        break;
    case 'Z':
        eng_ex_pop(s);
        if (s->early_cat) { /* the client's first ReadyForQuery, delayed */
            s->early_cat = false;
            return PGF_KEEP;
        }
        break;
    default:
        break;
    }
    return PGF_DROP;
}

/* A statement that failed to Parse upstream never replaced the old one. */
static void rollback_parse(ph_session *s, eng_ex *x)
{
    if (!x->name || eng_map_get(&s->stmts, x->name) != x->stmt)
        return;
    if (x->had_prev && x->prev) {
        eng_map_put(&s->stmts, x->name, x->prev, NULL);
        x->prev = NULL;
    } else {
        eng_map_del(&s->stmts, x->name, NULL);
    }
}

static void rollback_bind(ph_session *s, eng_ex *x)
{
    if (x->name && eng_map_get(&s->portals, x->name) == x->portal)
        eng_map_del(&s->portals, x->name, NULL);
}

/* An ErrorResponse in the extended protocol: the server skips to Sync. */
static void skip_to_sync(ph_session *s)
{
    while (s->head && s->head->kind != EX_SYNC) {
        if (s->head->kind == EX_PARSE)
            rollback_parse(s, s->head);
        else if (s->head->kind == EX_BIND)
            rollback_bind(s, s->head);
        eng_ex_pop(s);
    }
    if (!s->head)
        s->skip_till_sync = true;
}

static bool drop_old_portal(void *val, void *arg)
{
    const eng_portal *p = val;
    return p->gen < *(const uint64_t *)arg;
}

static void on_ready(ph_session *s, const uint8_t *msg, uint32_t total)
{
    uint64_t gen = 0;
    eng_memo_clear(&s->memo);
    while (s->head) {
        eng_ex_kind k = s->head->kind;
        gen = s->head->gen;
        eng_ex_pop(s);
        if (ends_cycle(k))
            break;
    }
    s->dropping = false;
    eng_set_cur(s, NULL);
    eng_copy_end(s);
    eng_copy_in_abort(s);
    if (msg && gen && s->portals.n && pgp_ready_status(msg, total) == 'I')
        eng_map_filter(&s->portals, drop_old_portal, &gen);
}

/* Queue transitions of one server message; true if it answers a message the
 * engine injected (it is then swallowed). */
static bool advance(ph_session *s, uint8_t type, const uint8_t *msg, uint32_t total)
{
    eng_ex *h = s->head;
    bool inj = h && is_injected(h->kind);
    switch (type) {
    case 'T':
        if (h && (h->kind == EX_DESC_STMT || h->kind == EX_DESC_PORTAL || h->kind == EX_INJ_DESC))
            eng_ex_pop(s);
        return inj;
    case 'n':
        if (h && h->kind == EX_DESC_STMT && h->stmt) {
            h->stmt->desc_known = h->stmt->nodata = true;
        } else if (h && (h->kind == EX_DESC_PORTAL || h->kind == EX_INJ_DESC) && h->portal) {
            h->portal->desc_known = h->portal->nodata = true;
        }
        if (h && (h->kind == EX_DESC_STMT || h->kind == EX_DESC_PORTAL || h->kind == EX_INJ_DESC))
            eng_ex_pop(s);
        return inj;
    case '1':
    case '2':
    case '3': {
        eng_ex_kind want = type == '1' ? EX_PARSE : type == '2' ? EX_BIND : EX_CLOSE;
        eng_ex_kind inj_want = type == '1'   ? EX_INJ_PARSE
                               : type == '2' ? EX_INJ_BIND
                                             : EX_INJ_CLOSE;
        if (!h || (h->kind != want && h->kind != inj_want))
            return false; /* not what was expected: never swallow it */
        eng_ex_pop(s);
        return inj;
    }
    case 'C':
    case 'I':
    case 's':
        eng_set_cur(s, NULL);
        eng_copy_end(s);
        if (h && h->kind == EX_QUERY) {
            h->cur_stmt++;
            h->copy_armed = false;
        } else if (h && (h->kind == EX_EXECUTE || h->kind == EX_REFUSE_EXEC))
            eng_ex_pop(s);
        return false;
    case 'E':
        eng_set_cur(s, NULL);
        eng_copy_end(s);
        eng_copy_in_abort(s);
        if (h && !ends_cycle(h->kind))
            skip_to_sync(s);
        return false;
    case 'Z':
        on_ready(s, msg, total);
        return false;
    default:
        return false;
    }
}

/* Content changes of one server message (only with its body). */
static int transform(ph_session *s, uint8_t type, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    const eng_ex *h = s->head;
    if (eng_tenant_show_wanted(s, type))
        return eng_tenant_show_reply(s, type, rep);
    switch (type) {
    case 'E':
        if (h && (h->kind == EX_REFUSE_EXEC || (h->kind == EX_QUERY && h->refusal)))
            return eng_refusal_error(msg, total, rep);
        return PGF_KEEP;
    case 'T':
        return eng_s2c_rowdesc(s, msg, total, rep);
    case 'D':
        return s->cur && s->cur->any ? eng_s2c_datarow(s, msg, total, rep) : PGF_KEEP;
    case 't':
        return eng_s2c_paramdesc(s, msg, total, rep);
    case 'G':
    case 'H':
        return eng_s2c_copy_response(s, msg, total, rep);
    case 'd':
        return s->copy_out ? eng_s2c_copy_data(s, msg, total, rep) : PGF_KEEP;
    case 'c':
        return s->copy_out ? eng_s2c_copy_done(s, msg, total, rep) : PGF_KEEP;
    default:
        return PGF_KEEP;
    }
}

static int s2c_apply(ph_session *s, uint8_t type, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    if (type == 'S' && msg)
        on_parameter_status(s, msg, total);
    if (!s->authed) {
        if (type != 'Z')
            return PGF_KEEP;
        s->authed = true;
        if (!s->hold_startup_z)
            return PGF_KEEP;
        s->hold_startup_z = false;
        return PGF_DROP;
    }
    if (type == 'S' || type == 'N' || type == 'A')
        return PGF_KEEP;
    if (s->head && s->head->kind == EX_CATALOG)
        return catalog_answer(s, type, msg, total);
    bool dropping = s->dropping;
    int v = PGF_KEEP;
    if (!dropping && msg) {
        if (type == 'D' && s->head && s->head->kind == EX_EXECUTE)
            eng_exec_desc(s);
        v = transform(s, type, msg, total, rep);
        if (v < 0)
            return v;
    }
    bool held = type == 'Z' && s->head && s->head->kind == EX_QUERY && s->head->hold_z;
    bool inj = advance(s, type, msg, total);
    if (held) { /* the catalog query's ReadyForQuery is the client's (catalog_answer) */
        s->early_cat = true;
        return PGF_DROP;
    }
    if (dropping)
        return type == 'Z' ? PGF_KEEP : PGF_DROP;
    if (inj && !s->dropping) {
        rep->len = 0;
        return PGF_DROP;
    }
    return v;
}

int ph_session_startup_inject(ph_session *s, ph_buf *up)
{
    if (!s->e->enabled || s->authed || s->head || s->cat_state != CAT_NONE)
        return 0;
    if (eng_inject_catalog(s, up) != 0)
        return -1;
    s->hold_startup_z = s->early_cat = true;
    return 1;
}

pgf_want ph_session_s2c_header(void *ud, uint8_t type, uint32_t total)
{
    ph_session *s = ud;
    if (!s->e->enabled) {
        s->s2c_pass = true;
        return PGF_PASS;
    }
    if (s2c_needs_body(s, type)) {
        s->s2c_pass = false;
        return PGF_INSPECT;
    }
    s->s2c_pass = true;
    (void)s2c_apply(s, type, NULL, total, NULL);
    return PGF_PASS;
}

int ph_session_s2c_message(void *ud, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    ph_session *s = ud;
    if (s->s2c_pass || !s->e->enabled || total < 5)
        return PGF_KEEP;
    int v = s2c_apply(s, msg[0], msg, total, rep);
    eng_keyhold_end(s->e->keys, &s->keyhold); /* one message's values share a key table */
    return v;
}

/* ---- client -> server ----------------------------------------------------------------- */

/* Transitions of client messages the engine passes through whole. */
static void c2s_state(ph_session *s, uint8_t type)
{
    switch (type) {
    case 'S': { /* Sync */
        eng_ex *x = eng_ex_push(s, EX_SYNC);
        if (x)
            x->gen = ++s->gen;
        s->ext_open = false;
        s->skip_till_sync = false;
        s->discard_till_sync = false;
        break;
    }
    case 'F': /* FunctionCall: a cycle of its own, ended by ReadyForQuery */
        if (!s->skip_till_sync)
            (void)eng_ex_push(s, EX_FUNC);
        break;
    default:
        break;
    }
}

pgf_want ph_session_c2s_header(void *ud, uint8_t type, uint32_t total)
{
    ph_session *s = ud;
    bool need = false;
    if (s->e->enabled && s->authed) {
        switch (type) {
        case 'Q':
        case 'P':
        case 'B':
        case 'D':
        case 'E':
        case 'C':
            need = true;
            break;
        case 'd':
        case 'c':
        case 'f':
            need = s->copy_in || s->copy_in_failed || eng_copy_early_wanted(s);
            break;
        default:
            c2s_state(s, type);
            break;
        }
    }
    s->c2s_pass = !need;
    return need ? PGF_INSPECT : PGF_PASS;
}

static int c2s_apply(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    if (s->c2s_pass || total < 5)
        return PGF_KEEP;
    uint8_t type = msg[0];
    if (type != 'd' && type != 'c' && type != 'f' && (s->copy_in || s->copy_in_failed)) {
        /* The client left COPY IN mode without CopyDone/CopyFail. */
        eng_copy_free(s);
    }
    if (s->discard_till_sync && type != 'd' && type != 'c' && type != 'f')
        return PGF_DROP; /* after a refusal the server would skip it anyway */
    switch (type) {
    case 'Q':
        return eng_c2s_query(s, msg, total, rep);
    case 'P':
        return eng_c2s_parse(s, msg, total, rep);
    case 'B':
        return eng_c2s_bind(s, msg, total, rep);
    case 'D':
        return eng_c2s_describe(s, msg, total, rep);
    case 'E':
        return eng_c2s_execute(s, msg, total, rep);
    case 'C':
        return eng_c2s_close(s, msg, total, rep);
    case 'd':
    case 'c':
    case 'f':
        return eng_c2s_copy(s, msg, total, rep);
    default:
        return PGF_KEEP;
    }
}

int ph_session_c2s_message(void *ud, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    ph_session *s = ud;
    int v = c2s_apply(s, msg, total, rep);
    eng_keyhold_end(s->e->keys, &s->keyhold); /* one message's values share a key table */
    return v;
}
