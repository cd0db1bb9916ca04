/*
 * rw_scope.c — name resolution: which protected column (if any) a column
 * reference denotes.
 *
 * Owns: query-level scopes (FROM entries, CTEs, output columns) and the
 * resolution rules, which lean towards "protected" whenever PostgreSQL's
 * own answer depends on columns the proxy cannot see (a plaintext table's
 * columns are unknown): wrongly treating a column as protected makes the
 * database reject the statement (bytea vs text), wrongly treating it as
 * plaintext could leak a value — so the former is the safe error.
 */
#include "rewrite/rw_internal.h"

#include <string.h>

void rw_scope_init(rw_scope *sc, rw_scope *parent)
{
    memset(sc, 0, sizeof *sc);
    sc->parent = parent;
    sc->tail = &sc->rtes;
}

void rw_scope_add(rw_scope *sc, rw_rte *rte)
{
    rte->next = NULL;
    *sc->tail = rte;
    sc->tail = &rte->next;
}

const rw_cte *rw_find_cte(const rw_scope *sc, const char *name)
{
    for (; sc; sc = sc->parent)
        for (const rw_cte *e = sc->ctes; e; e = e->next)
            if (strcmp(e->name, name) == 0)
                return e;
    return NULL;
}

int rw_rte_has_protected(const rw_rte *r, const ph_schema_column **example)
{
    if (r->kind == RTE_TABLE) {
        *example = r->table->columns[0];
        return 1;
    }
    if (r->kind == RTE_SUBQUERY)
        for (size_t i = 0; i < r->cols.n; i++) {
            if (r->cols.v[i].col) {
                *example = r->cols.v[i].col;
                return 1;
            }
            if (r->cols.v[i].star_protected) {
                *example = r->cols.v[i].star_example;
                return 1;
            }
        }
    return 0;
}

static const char *str_field(const rw_node *n)
{
    return n && n->node_case == PG_QUERY__NODE__NODE_STRING ? n->string->sval : NULL;
}

/* The output column called name, looking into `*` expansions too. */
static const rw_col *find_named(const rw_cols *cols, const char *name, int depth)
{
    if (!cols || depth > 64)
        return NULL;
    for (size_t i = 0; i < cols->n; i++) {
        const rw_col *k = &cols->v[i];
        if (!k->star && k->name && strcmp(k->name, name) == 0)
            return k;
    }
    for (size_t i = 0; i < cols->n; i++) {
        const rw_col *k =
            cols->v[i].star ? find_named(cols->v[i].expansion, name, depth + 1) : NULL;
        if (k)
            return k;
    }
    return NULL;
}

/* What `name` denotes inside one entry: 1 found (out set), 0 unknown. */
static int column_in_rte(rw_ctx *c, const rw_rte *r, const char *name, int location, rw_ev *out)
{
    memset(out, 0, sizeof *out);
    out->location = location;
    if (r->poisoned)
        return rw_refuse(c, location, "phantom: %s", r->poison_reason);
    if (r->kind == RTE_TABLE) {
        const ph_schema_column *col = ph_schema_find_column(r->table, name);
        if (!col)
            return 0;
        out->kind = EV_PROT;
        out->col = col;
        return 1;
    }
    if (r->kind != RTE_SUBQUERY)
        return 0;
    const rw_col *k = find_named(&r->cols, name, 0);
    if (!k)
        return 0;
    out->kind = k->col ? EV_PROT : EV_PLAIN;
    out->col = k->col;
    return 1;
}

/* Resolves an unqualified name among entries [from, to); 1 found, 0 not. */
int rw_resolve_name_in(rw_ctx *c, rw_rte *from, rw_rte *to, const char *name, int location,
                       rw_ev *out)
{
    int found = 0;
    rw_ev cand;
    memset(out, 0, sizeof *out);
    out->location = location;
    for (rw_rte *r = from; r && r != to; r = r->next) {
        int rc = column_in_rte(c, r, name, location, &cand);
        if (rc < 0)
            return -1;
        if (rc == 0)
            continue;
        if (!found || (cand.kind == EV_PROT && out->kind != EV_PROT)) {
            *out = cand;
        } else if (cand.kind == EV_PROT && out->kind == EV_PROT &&
                   !rw_same_domain(cand.col, out->col)) {
            return rw_refuse(c, location,
                             "phantom: column reference \"%s\" is ambiguous between %s and %s",
                             name, out->col->qualified, cand.col->qualified);
        }
        found = 1;
    }
    return found;
}

static int whole_row(rw_ctx *c, const rw_scope *sc, const char *name, rw_ev *out)
{
    for (const rw_scope *s = sc; s; s = s->parent)
        for (const rw_rte *r = s->rtes; r; r = r->next)
            if (r->refname && strcmp(r->refname, name) == 0) {
                const ph_schema_column *ex = NULL;
                out->kind = EV_STAR;
                out->covers_protected = rw_rte_has_protected(r, &ex);
                out->star_example = ex;
                if (out->covers_protected)
                    c->touched = 1;
                return 1;
            }
    return 0;
}

/* Unqualified column: nearest level that knows the name wins; a level whose
 * entries have unknown columns does not stop the search (lean protected). */
static int resolve_unqualified(rw_ctx *c, const rw_scope *sc, const char *name, int location,
                               rw_ev *out)
{
    for (const rw_scope *s = sc; s; s = s->parent) {
        int rc = rw_resolve_name_in(c, s->rtes, NULL, name, location, out);
        if (rc < 0)
            return -1;
        if (rc > 0) {
            if (out->kind == EV_PROT)
                c->touched = 1;
            return 0;
        }
    }
    /* A table alias used as a value is a whole-row reference (unless some
     * plaintext table has a column of that name: then lean protected). */
    if (whole_row(c, sc, name, out) && out->covers_protected)
        return 0;
    memset(out, 0, sizeof *out);
    out->kind = EV_PLAIN;
    out->location = location;
    return 0;
}

static const rw_rte *find_rte(const rw_scope *sc, const char *schema, const char *rel)
{
    for (const rw_scope *s = sc; s; s = s->parent)
        for (const rw_rte *r = s->rtes; r; r = r->next) {
            if (schema) {
                /* schema.table.column names an unaliased table */
                if (!r->has_alias && r->relname && strcmp(r->relname, rel) == 0 &&
                    (r->kind != RTE_TABLE || strcmp(r->table->schema, schema) == 0))
                    return r;
            } else if (r->refname && strcmp(r->refname, rel) == 0) {
                return r;
            }
        }
    return NULL;
}

int rw_resolve_columnref(rw_ctx *c, const rw_scope *sc, const PgQuery__ColumnRef *cr, rw_ev *out)
{
    memset(out, 0, sizeof *out);
    out->location = cr->location;
    size_t n = cr->n_fields;
    if (n == 0)
        return 0;
    if (cr->fields[n - 1]->node_case == PG_QUERY__NODE__NODE_A_STAR)
        return rw_star_expand(c, sc, cr, NULL, out);
    for (size_t i = 0; i < n; i++)
        if (!str_field(cr->fields[i]))
            return rw_refuse(c, cr->location, "phantom: unsupported column reference");
    const char *colname = str_field(cr->fields[n - 1]);
    if (n == 1)
        return resolve_unqualified(c, sc, colname, cr->location, out);
    const char *rel = str_field(cr->fields[n - 2]);
    const char *schema = n >= 3 ? str_field(cr->fields[n - 3]) : NULL;
    const rw_rte *r = find_rte(sc, schema, rel);
    if (!r) {
        out->kind = EV_PLAIN; /* PostgreSQL reports the missing FROM entry */
        return 0;
    }
    int rc = column_in_rte(c, r, colname, cr->location, out);
    if (rc < 0)
        return -1;
    if (rc == 0)
        out->kind = EV_PLAIN;
    if (out->kind == EV_PROT)
        c->touched = 1;
    return 0;
}

/* Adds the columns `*` / `rel.*` expands to (into may be NULL) and
 * describes the expansion in ev. */
static int expand_rte(rw_ctx *c, const rw_rte *r, rw_cols *into, rw_ev *ev)
{
    const ph_schema_column *ex = NULL;
    if (r->poisoned)
        return rw_refuse(c, ev->location, "phantom: %s", r->poison_reason);
    if (rw_rte_has_protected(r, &ex)) {
        ev->covers_protected = 1;
        ev->star_example = ex;
        c->touched = 1;
    }
    if (!into)
        return 0;
    if (r->kind == RTE_TABLE) {
        into->open = 1;
        for (size_t i = 0; i < r->table->ncolumns; i++) {
            rw_col k = {.name = r->table->columns[i]->name, .col = r->table->columns[i]};
            if (rw_cols_push(c, into, &k) != 0)
                return -1;
        }
    } else if (r->kind == RTE_SUBQUERY) {
        into->open |= r->cols.open;
        for (size_t i = 0; i < r->cols.n; i++)
            if (rw_cols_push(c, into, &r->cols.v[i]) != 0)
                return -1;
    } else {
        into->open = 1;
    }
    return 0;
}

int rw_star_expand(rw_ctx *c, const rw_scope *sc, const PgQuery__ColumnRef *cr, rw_cols *into,
                   rw_ev *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = EV_STAR;
    ev->location = cr->location;
    size_t n = cr->n_fields;
    if (n == 1) { /* `*`: every entry of this level */
        for (const rw_rte *r = sc->rtes; r; r = r->next)
            if (expand_rte(c, r, into, ev) != 0)
                return -1;
        return 0;
    }
    const char *rel = str_field(cr->fields[n - 2]);
    const char *schema = n >= 3 ? str_field(cr->fields[n - 3]) : NULL;
    if (!rel)
        return rw_refuse(c, cr->location, "phantom: unsupported column reference");
    const rw_rte *r = find_rte(sc, schema, rel);
    if (!r) {
        if (into)
            into->open = 1;
        return 0;
    }
    if (r->poisoned)
        return rw_refuse(c, cr->location, "phantom: %s", r->poison_reason);
    return expand_rte(c, r, into, ev);
}
