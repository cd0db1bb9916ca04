/*
 * engine_internal.h — shared internals of the session engine
 * (src/engine/session*.c, catalog.c, refuse.c, stmt.c, session_copy.c);
 * not part of the public API (see session.h).
 *
 * Vocabulary:
 *   stmt     a prepared statement as the client named it (Parse), with the
 *            rewriter's plan and the RowDescription once seen
 *   portal   a bound statement (Bind), with the client's result formats
 *   expect   one answer the server owes, in order (a FIFO filled by the
 *            client->server side and consumed by the server->client side);
 *            "injected" expects answer messages the engine sent itself and
 *            are swallowed
 *   rdesc    how to treat the fields of the current result: which protected
 *            column each comes from (or none) and the client's format
 *   catalog  (table OID, attnum) -> protected column, and each protected
 *            table's column names in attribute order, loaded by a query the
 *            engine injects on the session's own upstream connection
 */
#ifndef PHANTOM_ENGINE_INTERNAL_H
#define PHANTOM_ENGINE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/bytes.h"
#include "crypto/encode.h"
#include "engine/colcrypt.h"
#include "engine/copy.h"
#include "engine/keysource.h"
#include "engine/session.h"
#include "keys/keyring.h"
#include "rewrite/rewrite.h"
#include "schema/schema.h"

#define ENG_REFUSAL_STMT "phantom_refusal"

struct ph_tokens;

struct ph_engine {
    const ph_schema *schema;
    const ph_keysource *keys;
    struct ph_tokens *tokens; /* the token service (mode token), NULL without a vault */
    bool enabled;             /* the schema protects at least one column */
    char *catalog_sql;        /* the injected catalog query */
    size_t catalog_len;
};

/* ---- result descriptions ------------------------------------------------------ */

typedef struct eng_rfield {
    const ph_schema_column *col; /* decrypt with this column's policy, or NULL */
    int16_t fmt;                 /* 0 text, 1 binary */
} eng_rfield;

typedef struct eng_rdesc {
    uint16_t n;
    bool any; /* some field is decrypted */
    eng_rfield f[];
} eng_rdesc;

eng_rdesc *eng_rdesc_new(uint16_t n);
eng_rdesc *eng_rdesc_copy(const eng_rdesc *d);

/* ---- tenants (session_tenant.c) ------------------------------------------------ */

typedef enum {
    TEN_NONE = 0,  /* not about the tenant */
    TEN_SET,       /* SET [SESSION] phantom.tenant = 'value' */
    TEN_RESET,     /* RESET phantom.tenant, SET phantom.tenant TO DEFAULT */
    TEN_SHOW,      /* SHOW phantom.tenant */
    TEN_REFUSE,    /* a form refused (SET LOCAL, a bad value, mixed with other statements) */
    TEN_RESET_ALL, /* RESET ALL / DISCARD ALL: sent on, and the startup tenant is back */
} eng_tenant_kind;

typedef struct eng_tenant_cmd {
    eng_tenant_kind kind;
    char value[PH_TENANT_MAX + 1]; /* TEN_SET ("" = no tenant) */
    const char *upstream;          /* what the server gets instead (static text) */
    char sqlstate[6];              /* TEN_REFUSE */
    char message[200];
} eng_tenant_cmd;

/* ---- plans ---------------------------------------------------------------------- */

/* The rewriter's outcome for one text (refcounted, immutable once made;
 * cacheable ones are shared through the session's plan cache). */
typedef struct eng_plan {
    int refs;
    ph_rw_result res; /* status OK: sql (NULL = unchanged), params, stmts */
} eng_plan;

#define ENG_PLAN_CACHE_MAX      128  /* texts per session */
#define ENG_SHAPE_CACHE_MAX     256  /* statement shapes per session */
#define ENG_PLAN_CACHE_MAX_TEXT 8192 /* longest text cached (either way) */

void eng_plan_unref(eng_plan *p);
/* Forgets every cached plan and shape (the catalog, the session's settings
 * or the set of tables changed). */
void eng_plans_clear(ph_session *s);

/* ---- statements and portals ---------------------------------------------------- */

typedef struct eng_stmt {
    int refs;
    bool mentions;   /* the text may name a protected table (fast path said so) */
    eng_plan *plan;  /* the rewriter's plan, or NULL (fast path) */
    int nparams;     /* entries of ptype (what Parse declared upstream) */
    uint32_t *ptype; /* the client's declared type per parameter (0 unknown) */
    eng_rdesc *desc; /* from Describe S (formats all 0), once seen */
    bool desc_known, nodata, desc_requested;
    eng_tenant_cmd *tenant; /* a phantom.tenant command (applied at Execute), or NULL */
} eng_stmt;

typedef struct eng_portal {
    int refs;
    eng_stmt *stmt; /* NULL: not a statement the engine knows */
    uint16_t nres;
    int16_t *resfmt;
    eng_rdesc *desc; /* from Describe P (actual formats), once seen */
    bool desc_known, nodata, desc_requested;
    uint64_t gen; /* Syncs sent before its Bind */
} eng_portal;

eng_stmt *eng_stmt_new(void);
void eng_stmt_unref(eng_stmt *st);
eng_portal *eng_portal_new(void);
void eng_portal_unref(eng_portal *p);
/* The plan of a statement's single SQL statement, or NULL. */
const ph_rw_stmt *eng_stmt_plan(const eng_stmt *st);
bool eng_stmt_protected_params(const eng_stmt *st);

/* Name -> object maps (values are refcounted stmts or portals). */
#define ENG_SHORT_NAME 24 /* names shorter than this are kept inline */

/* A copy of name: in inl when it fits, else its own allocation; NULL when
 * out of memory. eng_name_free gives it up (an inline one needs nothing). */
char *eng_name_dup(char inl[ENG_SHORT_NAME], const char *name);
void eng_name_free(char *name, const char inl[ENG_SHORT_NAME]);

typedef struct eng_map_ent {
    char *name; /* inl, or its own allocation */
    void *val;
    struct eng_map_ent *next;
    char inl[ENG_SHORT_NAME];
} eng_map_ent;

typedef struct eng_map {
    eng_map_ent **b;
    size_t nb, n;
    void (*unref)(void *);
    eng_map_ent *spare; /* removed entries kept for reuse: the unnamed portal
                         * comes and goes with every extended-protocol query */
    unsigned nspare;
} eng_map;

void eng_map_init(eng_map *m, void (*unref)(void *));
void eng_map_clear(eng_map *m);
void *eng_map_get(const eng_map *m, const char *name);
/* Stores val (taking the caller's reference); the previous value's
 * reference goes to *prev (NULL allowed: then it is dropped). */
int eng_map_put(eng_map *m, const char *name, void *val, void **prev);
/* Removes name; its reference goes to *prev (or is dropped). */
void eng_map_del(eng_map *m, const char *name, void **prev);
/* Removes every value for which drop(val, arg) is true. */
void eng_map_filter(eng_map *m, bool (*drop)(void *val, void *arg), void *arg);

/* ---- expected answers ------------------------------------------------------------ */

typedef enum {
    EX_QUERY = 1, /* a simple Query: results per statement, then 'Z' */
    EX_CATALOG,   /* the injected catalog query: everything swallowed through 'Z' */
    EX_FUNC,      /* FunctionCall: 'V' then 'Z' */
    EX_SYNC,      /* 'Z' */
    EX_PARSE,     /* '1' */
    EX_BIND,      /* '2' */
    EX_CLOSE,     /* '3' */
    EX_DESC_STMT, /* 't' then 'T' or 'n' */
    EX_DESC_PORTAL,
    EX_EXECUTE, /* 'D'* then 'C' / 'I' / 's' (or COPY) */
    /* injected: swallowed */
    EX_INJ_CLOSE,
    EX_INJ_PARSE,
    EX_INJ_BIND,
    EX_INJ_DESC,    /* a Describe(portal) before an Execute: answer stored, swallowed */
    EX_REFUSE_EXEC, /* the Execute that raises a refusal in place of a client message */
} eng_ex_kind;

typedef struct eng_ex {
    eng_ex_kind kind;
    struct eng_ex *next;
    /* EX_QUERY */
    eng_plan *plan;
    size_t cur_stmt; /* statement of the string whose results are arriving */
    uint64_t gen;    /* EX_QUERY / EX_SYNC: Syncs+Queries sent up to and with it */
    /* EX_PARSE: the name, the new statement, and what it replaced */
    char *name; /* name_buf, or its own allocation (eng_ex_name) */
    char name_buf[ENG_SHORT_NAME];
    eng_stmt *stmt; /* also EX_DESC_STMT */
    eng_stmt *prev;
    bool had_prev;
    /* EX_BIND, EX_DESC_PORTAL, EX_INJ_DESC, EX_EXECUTE */
    eng_portal *portal;
    bool desc_ready; /* EX_EXECUTE: s->cur was built for it */
    bool refusal;    /* EX_QUERY: the DO statement that raises a refusal */
    bool hold_z;     /* EX_QUERY: its ReadyForQuery is swallowed; that of the catalog query
                      * sent right after it (a DDL string) stands in for it */
    bool copy_armed; /* EX_QUERY / EX_EXECUTE: the COPY FROM codec of the statement being
                      * answered was set up (at the client's first CopyData when that came
                      * before the CopyInResponse, else at the CopyInResponse) */
    char *show;      /* EX_QUERY / EX_EXECUTE: SHOW phantom.tenant, answered with this */
} eng_ex;

/* ---- the catalog -------------------------------------------------------------------- */

typedef struct eng_cat_att {
    uint32_t oid;
    int16_t attnum;
    const ph_schema_column *col;
} eng_cat_att;

typedef struct eng_cat_table {
    const ph_schema_table *t;
    uint32_t oid;
    char **names; /* attribute order */
    size_t n, cap;
    int16_t max_attnum; /* a higher one was added after the catalog was read */
} eng_cat_table;

typedef struct eng_catalog {
    eng_cat_att *atts;
    size_t natts, capatts;
    eng_cat_table *tabs;
    size_t ntabs, captabs;
} eng_catalog;

typedef enum {
    CAT_NONE = 0, /* never loaded */
    CAT_PENDING,  /* injected, answer not complete */
    CAT_OK,
    CAT_FAILED,
} eng_cat_state;

char *eng_catalog_sql(const ph_schema *s, size_t *len);
void eng_catalog_clear(eng_catalog *c);
const ph_schema_column *eng_catalog_column(const eng_catalog *c, uint32_t oid, int16_t attnum);
const eng_cat_table *eng_catalog_table(const eng_catalog *c, const ph_schema_table *t);

/* ---- the session ---------------------------------------------------------------------- */

struct ph_session {
    const ph_engine *e;
    bool authed;         /* the first ReadyForQuery was seen */
    bool hold_startup_z; /* the catalog query went out before the first
                            ReadyForQuery reached the client: drop that one... */
    bool early_cat;      /* ...and let the catalog answer's ReadyForQuery stand in */
    bool c2s_pass;       /* the last client header was passed (no message call due) */
    bool s2c_pass;
    /* session settings */
    bool scs_off;
    ph_enc_opts opts;
    char client_encoding[64]; /* from ParameterStatus; "" unknown */
    /* client -> server */
    bool ext_open;          /* extended messages sent since the last Sync */
    bool skip_till_sync;    /* the server discards until the next Sync */
    bool discard_till_sync; /* a refusal was raised: the engine drops until Sync */
    bool unnamed_exists;    /* an unnamed statement may exist upstream */
    uint64_t gen;           /* Syncs and Queries sent */
    eng_map stmts, portals;
    eng_map plans;      /* text -> cacheable plan */
    eng_map shapes;     /* shape key -> ph_rw_shape (see rewrite.h) */
    eng_memo memo;      /* deterministic values sealed since the last ReadyForQuery */
    ph_buf env_scratch; /* a result field's envelope decoded from bytea text */
    /* expected answers */
    eng_ex *head, *tail;
    eng_ex *spare; /* answered entries kept for reuse (ENG_EX_SPARE at most) */
    unsigned nspare;
    /* server -> client */
    eng_rdesc *cur; /* the current result's description, or NULL */
    /* the last RowDescription worked out from the catalog alone, for the
       next identical one (session_result.c) */
    struct {
        ph_buf msg;       /* the server's message */
        ph_buf out;       /* what the client got instead (replaced), or empty */
        eng_rdesc *d;     /* its description */
        uint64_t cat_gen; /* the catalog it was worked out from */
        bool replaced;
    } rd_memo;
    uint64_t cat_gen; /* counts catalogs installed (eng_catalog_done) */
    bool dropping;    /* a result failed: drop everything up to ReadyForQuery */
    /* catalog */
    eng_catalog cat, building;
    eng_cat_state cat_state;
    char rw_sqlstate[6]; /* why the rewriter's encrypt callback last failed */
    /* Table OIDs a bytea field with a protected column's name came from that
     * the catalog did not know: suspected of being a protected table recreated
     * by another session (the catalog is reloaded), or confirmed plain (the
     * reloaded catalog still does not list them). */
    uint32_t suspect_oids[8];
    size_t n_suspect;
    uint32_t plain_oids[32];
    size_t n_plain;
    bool cat_have;  /* cat holds a map that was loaded once */
    bool cat_stale; /* DDL on a protected table: reload at the next boundary */
    bool cat_bad_row;
    /* COPY */
    ph_copy_xform *copy_in, *copy_out;
    bool copy_in_failed; /* client COPY data must not go upstream ... */
    bool copy_fail_sent; /* ... and the server was told (CopyFail) or stopped listening */
    char copy_err[256];
    const ph_schema_column **copy_cols; /* per COPY column: protected column or NULL */
    int copy_ncols;
    bool copy_binary;
    /* tenants (session_tenant.c) */
    char tenant[PH_TENANT_MAX + 1];         /* the session's tenant, "" none */
    char startup_tenant[PH_TENANT_MAX + 1]; /* given at connection start (fixed), "" none */
    char row_tenant[PH_TENANT_MAX + 1];     /* the tenant of the row being written, "" none */
    bool tenant_load_tried; /* the session tenant's keys were looked for and are not there */
    eng_keyhold keyhold;    /* the key table of the message being handled (eng_who) */
};

/* session.c: the expected-answer queue */
eng_ex *eng_ex_push(ph_session *s, eng_ex_kind kind);
/* Sets x->name to a copy of name; 0, or -1 when out of memory. */
int eng_ex_name(eng_ex *x, const char *name);
void eng_ex_pop(ph_session *s);
void eng_set_cur(ph_session *s, eng_rdesc *d);

/* session_query.c: client messages (verdicts as pgf_hooks.on_message) */
int eng_c2s_query(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep);
int eng_c2s_parse(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep);
int eng_c2s_bind(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep);
int eng_c2s_describe(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep);
int eng_c2s_execute(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep);
int eng_c2s_close(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep);
/* the rewriter's callbacks (ud = session) */
int eng_rw_encrypt(void *ud, const ph_schema_column *col, const char *text_value, size_t len,
                   ph_buf *out, char *err, size_t errlen);
int eng_rw_eq_versions(void *ud, const ph_schema_column *col);
int eng_rw_encrypt_eq(void *ud, const ph_schema_column *col, const char *text_value, size_t len,
                      ph_buf *out, size_t *lens, size_t max, char *err, size_t errlen);
ssize_t eng_rw_columns(void *ud, const ph_schema_table *table, const char *const **names);

/* coltoken.c: token columns (mode token). tokenize: v (text or binary format, the
 * same bytes for a text type) to its token, appended to out; create 1 for a stored
 * value (makes a vault record), 0 for a compared one (a never-tokenized value gets
 * a token that matches nothing). detokenize: a token from the server to its value
 * in the client's format. Errors as colcrypt's (never a value or a token). */
int eng_col_tokenize(const ph_engine *e, const ph_schema_column *col, int binary, const uint8_t *v,
                     size_t len, int create, ph_buf *out, eng_cc_err *err);
int eng_col_detokenize(const ph_engine *e, const ph_schema_column *col, const uint8_t *tok,
                       size_t len, int binary, ph_buf *out, eng_cc_err *err);
/* the rewriter's lookup callback (ud = session): a compared token literal */
int eng_rw_lookup(void *ud, const ph_schema_column *col, const char *text_value, size_t len,
                  ph_buf *out, char *err, size_t errlen);

/* session_result.c: server messages */
void eng_rd_memo_clear(ph_session *s);
int eng_s2c_rowdesc(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep);
int eng_s2c_datarow(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep);
int eng_s2c_paramdesc(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep);
/* Makes s->cur valid for the head EX_EXECUTE (built from its portal). */
void eng_exec_desc(ph_session *s);
/* Replaces the current message by an ErrorResponse and drops the rest of
 * the answer up to ReadyForQuery. */
int eng_fail_result(ph_session *s, ph_buf *rep, const char *sqlstate, const char *message);

/* catalog.c: the injected query's answer */
int eng_inject_catalog(ph_session *s, ph_buf *rep);
void eng_catalog_row(ph_session *s, const uint8_t *msg, uint32_t total);
void eng_catalog_done(ph_session *s, bool ok);

/* refuse.c */
/* The DO statement that raises sqlstate/message (NUL-terminated in out). */
int eng_refusal_sql(ph_buf *out, const char *sqlstate, const char *message);
/* Replacements that make the server raise the error in order. */
int eng_refuse_query(ph_session *s, ph_buf *rep, const char *sqlstate, const char *message);
int eng_refuse_extended(ph_session *s, ph_buf *rep, const char *sqlstate, const char *message);
/* A rewriter outcome's client-facing message (syntax errors lose the quoted token). */
void eng_refusal_message(const ph_rw_result *r, char *out, size_t outlen);
/* The ErrorResponse a refusal raised, without the PL/pgSQL CONTEXT line the
 * DO statement adds (the client's statement never ran inside a function). */
int eng_refusal_error(const uint8_t *msg, uint32_t total, ph_buf *rep);

/* session_tenant.c */
/* Whose keys tenant-keyed values use now: the row's tenant while one is
 * written, else the session's. */
eng_tenancy eng_who(ph_session *s);
/* A row's tenant (tenant[0..len)) for the values written next, checked
 * against the session's; NULL restores the session's. 0 or -1 with err. */
int eng_row_tenant(ph_session *s, const char *tenant, size_t len, eng_cc_err *err);
/* The rewriter's tenant callback (ph_rw_options.tenant; ud = session). */
int eng_rw_tenant(void *ud, const char *tenant, char *err, size_t errlen);
/* What a statement text is as far as tenants go (fills c). */
eng_tenant_kind eng_tenant_classify(const char *sql, eng_tenant_cmd *c);
/* Makes a SET / RESET / RESET ALL take effect: 0, or -1 (refused) with err. */
int eng_tenant_apply(ph_session *s, const eng_tenant_cmd *c, eng_cc_err *err);
/* A simple Query: 1 when it was a phantom.tenant command, answered (*verdict
 * is the hook's verdict); 0 otherwise (RESET ALL / DISCARD ALL were noted). */
int eng_tenant_query(ph_session *s, const char *sql, ph_buf *rep, int *verdict);
/* SHOW phantom.tenant's answer: the row and the command tag are replaced. */
bool eng_tenant_show_wanted(const ph_session *s, uint8_t type);
int eng_tenant_show_reply(ph_session *s, uint8_t type, ph_buf *rep);

/* session_copy.c */
bool eng_copy_wanted(const ph_session *s);
/* Client COPY data that arrives with no COPY FROM codec set up must be
 * inspected: it may belong to a protected COPY FROM STDIN whose
 * CopyInResponse has not arrived yet, to a refused statement, or to nothing. */
bool eng_copy_early_wanted(const ph_session *s);
int eng_s2c_copy_response(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep);
int eng_s2c_copy_data(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep);
int eng_s2c_copy_done(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep);
int eng_c2s_copy(ph_session *s, const uint8_t *msg, uint32_t total, ph_buf *rep);
/* COPY OUT ends (CommandComplete, ErrorResponse, ReadyForQuery). */
void eng_copy_end(ph_session *s);
/* The server stopped a COPY IN (ErrorResponse): the client's remaining
 * COPY data is dropped instead of transformed. */
void eng_copy_in_abort(ph_session *s);
/* Frees every COPY state (session end, client left COPY mode). */
void eng_copy_free(ph_session *s);

#endif
