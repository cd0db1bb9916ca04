/*
 * rw_internal.h — shared internals of the rewriter (src/rewrite/rw_*.c);
 * not part of the public API (see rewrite.h).
 *
 * Vocabulary: a "scope" is one query level (its FROM entries, CTEs and
 * output columns) chained to the enclosing levels; an "ev" is what an
 * expression in a value position turned out to be (a protected column, a
 * literal, a parameter, NULL, DEFAULT or anything else = plain); an "edit"
 * is one byte range of the original text to replace (a literal by its
 * ciphertext, a DDL type by bytea, a cast around a parameter by the bare
 * parameter). Every analysis function returns 0, or -1 after recording the
 * refusal or error in ctx->res.
 */
#ifndef PHANTOM_RW_INTERNAL_H
#define PHANTOM_RW_INTERNAL_H

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>
#include <stddef.h>

#include "rewrite/rewrite.h"

typedef PgQuery__Node rw_node;

/* ---- identifier characters (table in rw_shape.c) -------------------------- */

/* Bit 1: may start an identifier (letters, _, bytes >= 0x80); bit 2: may
 * continue one (those, digits, $) — PostgreSQL's ident_start/ident_cont. */
extern const unsigned char rw_ident_class[256];

static inline int rw_ident_start(unsigned char ch)
{
    return rw_ident_class[ch] & 1;
}

static inline int rw_ident_cont(unsigned char ch)
{
    return rw_ident_class[ch] & 2;
}

/* ---- arena --------------------------------------------------------------- */

typedef struct rw_block rw_block;

/* The arena's first block lives on the stack of the call (most statements
 * fit in it, so a rewrite needs no heap block at all). */
#define RW_INLINE_ARENA 4096

/* ---- values -------------------------------------------------------------- */

typedef enum {
    EV_PLAIN = 0, /* anything the proxy does not encrypt (already walked) */
    EV_PROT,      /* a bare protected column (possibly via a subquery/CTE) */
    EV_CONST,     /* a literal, possibly inside one cast */
    EV_NULL,      /* NULL, possibly inside one cast */
    EV_PARAM,     /* $n, possibly inside one cast */
    EV_DEFAULT,   /* DEFAULT in INSERT/UPDATE */
    EV_STAR,      /* a whole-row reference or `*` */
} ev_kind;

struct rw_rte;

typedef struct rw_ev {
    ev_kind kind;
    const ph_schema_column *col;          /* EV_PROT */
    const PgQuery__AConst *aconst;        /* EV_CONST / EV_NULL */
    const PgQuery__TypeCast *cast;        /* the cast around a const/param, or NULL */
    int param;                            /* EV_PARAM */
    int location;                         /* start of the value, for messages */
    int covers_protected;                 /* EV_STAR: expands to a protected column */
    const ph_schema_column *star_example; /* EV_STAR: one such column */
} rw_ev;

/* ---- scopes -------------------------------------------------------------- */

struct rw_cols;

/* One output column of a query level, subquery or CTE. */
typedef struct rw_col {
    const char *name;            /* NULL when unnamed */
    const ph_schema_column *col; /* protected source, or NULL */
    int star;                    /* a `*` expansion (positions unknown) */
    int star_protected;          /* ... which covers a protected column */
    const ph_schema_column *star_example;
    const struct rw_cols *expansion; /* star: the named columns it brings */
} rw_col;

typedef struct rw_cols {
    rw_col *v;
    size_t n, cap;
    int open; /* further, unknown (plain) columns exist */
} rw_cols;

typedef enum {
    RTE_TABLE = 0,   /* a protected table */
    RTE_PLAIN_TABLE, /* a table the config does not protect (columns unknown) */
    RTE_SUBQUERY,    /* subquery or CTE: known output columns */
    RTE_OPAQUE,      /* function, VALUES...: never protected */
} rw_rte_kind;

typedef struct rw_rte {
    rw_rte_kind kind;
    const char *refname; /* alias, or the relation's name */
    const char *relname; /* base relation name (tables) */
    int has_alias;
    const ph_schema_table *table; /* RTE_TABLE */
    rw_cols cols;                 /* RTE_SUBQUERY */
    int poisoned;                 /* references refused (recursive CTE, join alias) */
    const char *poison_reason;
    struct rw_rte *next;
} rw_rte;

typedef struct rw_cte {
    const char *name;
    rw_cols cols;
    int poisoned;
    struct rw_cte *next;
} rw_cte;

typedef struct rw_scope {
    struct rw_scope *parent;
    rw_rte *rtes, **tail;
    rw_cte *ctes;
    const rw_cols *outputs; /* for ORDER BY / GROUP BY output references */
} rw_scope;

/* Where the values of a SELECT/VALUES go (INSERT targets). */
typedef struct rw_targets {
    const ph_schema_column **cols; /* per position: protected target, or NULL */
    size_t n;
    const char *table; /* for messages */
    int tenant_pos;    /* position of the table's tenant column, -1 if not a target */
} rw_targets;

/* ---- operations on protected columns ----------------------------------------- */

typedef enum {
    OP_ASSIGN = 0, /* INSERT value, UPDATE SET */
    OP_EQ,         /* =, <>, IN, IS [NOT] DISTINCT FROM, equi-join */
    OP_RANGE,      /* <, <=, >, >=, BETWEEN */
    OP_GROUP,      /* GROUP BY, DISTINCT, PARTITION BY, count(DISTINCT) */
    OP_ORDER,      /* ORDER BY */
    OP_UNIQUE,     /* UNIQUE / PRIMARY KEY / ON CONFLICT target */
} rw_op;

/* How a value compared for equality with a column whose key domain has
 * several live key versions (ph_rw_options.eq_versions > 1) is spliced so
 * that it matches the ciphertexts of every version (see rewrite.h). */
typedef enum {
    EQF_NONE = 0, /* one ciphertext: stored values; refused for such a comparison */
    EQF_ANY,      /* col = v   -> col = ANY (ARRAY[c1, ..., cN]) / ANY ($n) */
    EQF_ALL,      /* col <> v  -> col <> ALL (ARRAY[...]) / ALL ($n) */
    EQF_LIST,     /* an element of IN (...) or ARRAY[...] -> c1, ..., cN / $n[1], ..., $n[N] */
} rw_eqf;

/* ---- the context ------------------------------------------------------------ */

typedef enum { EDIT_ENCRYPT = 0, EDIT_TEXT } rw_edit_kind;

typedef struct rw_edit {
    int start, end;
    rw_edit_kind kind;
    const ph_schema_column *col; /* EDIT_ENCRYPT */
    char *value;                 /* EDIT_ENCRYPT: plaintext copy (wiped after use) */
    size_t vlen;
    char *src;          /* the parse tree's copy of the plaintext (wiped before it is freed) */
    const char *text;   /* EDIT_TEXT: replacement */
    int vstart;         /* EDIT_ENCRYPT: where the literal itself starts (inside a cast) */
    rw_eqf form;        /* EDIT_ENCRYPT: splice every version's ciphertext in this form */
    int swapped;        /* EDIT_ENCRYPT: the range is the column's (`v = col` -> `col = ANY`);
                           the literal lies before it */
    int lookup;         /* EDIT_ENCRYPT: only compared, never stored (token mode: look the
                           token up, create none) */
    const char *tenant; /* EDIT_ENCRYPT: the tenant of the row it is stored in (arena), or NULL */
} rw_edit;

typedef struct rw_param {
    const ph_schema_column *col;
    int plain;
    int single;             /* bound as one ciphertext (stored, or a one-version column) */
    int multi;              /* bound as every version's ciphertext (bytea[]) */
    int stored;             /* stored somewhere (INSERT, UPDATE SET), not only compared */
    int tenant_set;         /* stored in a row whose tenant is known: */
    int tenant_ref;         /* ... that $n (0: a literal) */
    const char *tenant_lit; /* ... that literal (arena) */
} rw_param;

typedef struct rw_ctx {
    const ph_schema *schema;
    const ph_rw_options *opt;
    const char *sql; /* NUL-terminated copy (in the arena, wiped at the end) */
    size_t len;
    ph_rw_result *res;
    unsigned char *inl; /* the arena's first block, on the caller's stack */
    size_t inl_used;
    rw_block *arena;           /* further blocks, on the heap */
    PgQuery__ScanResult *scan; /* lazily computed */
    rw_edit *edits;
    size_t nedits, capedits;
    rw_param *params;
    int capparams;
    int touched; /* the current statement touches a protected column */
    int failed;
    /* The analysis read a literal's value (ORDER BY 2 names an output
     * column): the statement's shape alone does not determine it. */
    int value_dependent;
    const char *cur_tenant; /* the tenant last passed to opt->tenant (splice) */
    int tenant_called;
} rw_ctx;

/* rw_core.c */
void *rw_alloc(rw_ctx *c, size_t n); /* zeroed; NULL (and ctx failed) on OOM */
int rw_oom(rw_ctx *c);
int rw_refuse(rw_ctx *c, int location, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int rw_refuse_op(rw_ctx *c, int location, const ph_schema_column *col, const char *op);
int rw_refuse_mode(rw_ctx *c, int location, const ph_schema_column *col, const char *op);
int rw_internal(rw_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int rw_add_edit(rw_ctx *c, const rw_edit *e);
int rw_param_bind(rw_ctx *c, int n, const ph_schema_column *col, int location);
int rw_param_plain(rw_ctx *c, int n, int location);
/* Records that $n is bound as one ciphertext (multi 0) or as the array of
 * every live version's (multi 1); refuses a parameter used both ways. */
int rw_param_versions(rw_ctx *c, int n, int multi, int location);
/* Records that $n (already bound) is stored, not only compared. */
void rw_param_stored(rw_ctx *c, int n);
/* How many ciphertexts a value compared for equality with col has (1 when
 * the options have no key-rotation callbacks). */
int rw_eq_versions(const rw_ctx *c, const ph_schema_column *col);
int rw_cols_push(rw_ctx *c, rw_cols *cols, const rw_col *col);
int rw_mentions_text(rw_ctx *c, int start, int len);
int rw_same_domain(const ph_schema_column *a, const ph_schema_column *b);
const char *rw_last_name(rw_node **names, size_t n);
int rw_mode_allows(const ph_schema_column *col, rw_op op);

/* Records that parameter n is stored in a row whose tenant is $ref (ref > 0)
 * or the literal lit; refuses one stored for two tenants. */
int rw_param_tenant(rw_ctx *c, int n, int ref, const char *lit, int location);

/* rw_shape.c: a shape of c's statement (edits normalized, not yet encrypted), or NULL
 * when the analysis does not depend on the shape alone (no error either way). */
ph_rw_shape *rw_shape_capture(const rw_ctx *c);
/* Fills c->edits and c->res's plan from sh for c->sql, which must have sh's key. */
int rw_shape_replay(rw_ctx *c, const ph_rw_shape *sh);

/* rw_tokens.c */
int rw_value_span(rw_ctx *c, const rw_ev *v, int *start, int *end);
int rw_typename_span(rw_ctx *c, const PgQuery__TypeName *tn, int *start, int *end);
/* Widens a value's span [start, end) over the parentheses that group exactly
 * it (`= ('v')`, `IN (('v'), ...)`; never the parentheses of an IN list), so
 * that several values put in its place (ANY (...), a list) are not left
 * inside a grouping. */
int rw_unparen_span(rw_ctx *c, int *start, int *end);
/* [start, end) of a column reference (a.b."c"); -1 (internal error) if the
 * text is not one. */
int rw_columnref_span(rw_ctx *c, const PgQuery__ColumnRef *cr, int *start, int *end);
/* 1 when nothing but one operator token lies between byte a and byte b. */
int rw_only_operator_between(rw_ctx *c, int a, int b);

/* rw_scope.c */
void rw_scope_init(rw_scope *sc, rw_scope *parent);
void rw_scope_add(rw_scope *sc, rw_rte *rte);
int rw_resolve_columnref(rw_ctx *c, const rw_scope *sc, const PgQuery__ColumnRef *cr, rw_ev *out);
int rw_resolve_name_in(rw_ctx *c, rw_rte *from, rw_rte *to, const char *name, int location,
                       rw_ev *out);
const rw_cte *rw_find_cte(const rw_scope *sc, const char *name);
int rw_rte_has_protected(const rw_rte *r, const ph_schema_column **example);
int rw_star_expand(rw_ctx *c, const rw_scope *sc, const PgQuery__ColumnRef *cr, rw_cols *into,
                   rw_ev *ev);

/* rw_expr.c */
int rw_classify(rw_ctx *c, rw_scope *sc, const rw_node *n, rw_ev *out);
int rw_walk(rw_ctx *c, rw_scope *sc, const rw_node *n);
int rw_bind(rw_ctx *c, const rw_ev *v, const ph_schema_column *col, rw_op op, rw_eqf form,
            const char *opname, int location);
int rw_release(rw_ctx *c, const rw_ev *v, const char *what, int location);
int rw_check_use(rw_ctx *c, const rw_ev *v, rw_op op, const char *opname, int location);
int rw_find_protected(rw_ctx *c, rw_scope *sc, const rw_node *n, const ph_schema_column **col,
                      int *location);
int rw_sort_item(rw_ctx *c, rw_scope *sc, const rw_node *n, rw_op op, const char *opname);

/* rw_query.c */
int rw_select(rw_ctx *c, rw_scope *parent, const PgQuery__SelectStmt *s, const rw_targets *bt,
              rw_cols *outputs);
int rw_statement(rw_ctx *c, const rw_node *n, int location, int len, ph_rw_stmt *st,
                 rw_cols *outputs);

/* rw_copy.c: fills st's copy_opts / copy_cols for a COPY on protected table t */
int rw_copy_plan(rw_ctx *c, const PgQuery__CopyStmt *cp, const ph_schema_table *t, ph_rw_stmt *st);

/* rw_ddl.c */
int rw_create_table(rw_ctx *c, const PgQuery__CreateStmt *cs);
int rw_alter_table(rw_ctx *c, const PgQuery__AlterTableStmt *as);
int rw_create_index(rw_ctx *c, const PgQuery__IndexStmt *is);
int rw_rename(rw_ctx *c, const PgQuery__RenameStmt *rs);

#endif
