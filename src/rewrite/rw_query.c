/*
 * rw_query.c — statements and query levels: SELECT (FROM, joins, subqueries,
 * CTEs, set operations, VALUES, GROUP BY / DISTINCT / ORDER BY), INSERT
 * (VALUES, SELECT, ON CONFLICT), UPDATE, DELETE, RETURNING, and the
 * statement dispatcher (EXPLAIN, PREPARE, cursors, COPY, views, DDL, and
 * the statements that are refused when they name a protected table).
 */
#include "rewrite/rw_internal.h"

#include <stdio.h>
#include <string.h>

static int insert_stmt(rw_ctx *c, rw_scope *parent, const PgQuery__InsertStmt *ins,
                       rw_cols *outputs);
static int update_stmt(rw_ctx *c, rw_scope *parent, const PgQuery__UpdateStmt *u, rw_cols *outputs);
static int delete_stmt(rw_ctx *c, rw_scope *parent, const PgQuery__DeleteStmt *d, rw_cols *outputs);

/* ---- FROM entries ------------------------------------------------------------ */

static rw_rte *new_rte(rw_ctx *c, rw_rte_kind kind, const char *refname)
{
    rw_rte *r = rw_alloc(c, sizeof *r);
    if (r) {
        r->kind = kind;
        r->refname = refname;
    }
    return r;
}

static const ph_schema_table *find_table(rw_ctx *c, const PgQuery__RangeVar *rv, int *failed)
{
    int amb = 0;
    const char *schema = rv->schemaname && *rv->schemaname ? rv->schemaname : NULL;
    const ph_schema_table *t = ph_schema_find_table(c->schema, schema, rv->relname, &amb);
    *failed = 0;
    if (amb)
        *failed = rw_refuse(c, rv->location,
                            "phantom: table name %s is protected in more than one schema; "
                            "qualify it with its schema",
                            rv->relname);
    return t;
}

/* Renames outputs by an alias column list: t(a, b, c). */
static int apply_colnames(rw_ctx *c, rw_cols *cols, rw_node **names, size_t n, int location)
{
    for (size_t i = 0; i < n; i++) {
        const char *nm = names[i] && names[i]->node_case == PG_QUERY__NODE__NODE_STRING
                             ? names[i]->string->sval
                             : NULL;
        for (size_t j = 0; j <= i && j < cols->n; j++)
            if (cols->v[j].star) {
                if (cols->v[j].star_protected)
                    return rw_refuse(c, location,
                                     "phantom: column aliases over `*` of a protected table are "
                                     "not supported; name the columns");
                cols->open = 1;
                return 0;
            }
        if (i < cols->n)
            cols->v[i].name = nm;
    }
    return 0;
}

static int range_var(rw_ctx *c, rw_scope *sc, const PgQuery__RangeVar *rv, int allow_cte,
                     rw_rte **out)
{
    const char *alias = rv->alias ? rv->alias->aliasname : NULL;
    const rw_cte *cte = NULL;
    if (allow_cte && !(rv->schemaname && *rv->schemaname))
        cte = rw_find_cte(sc, rv->relname);
    rw_rte *r;
    if (cte) {
        if (!(r = new_rte(c, RTE_SUBQUERY, alias ? alias : rv->relname)))
            return -1;
        r->cols = cte->cols;
        r->poisoned = cte->poisoned;
        r->poison_reason = "recursive CTEs over protected columns are not supported";
        if (rv->alias && apply_colnames(c, &r->cols, rv->alias->colnames, rv->alias->n_colnames,
                                        rv->location) != 0)
            return -1;
    } else {
        int failed = 0;
        const ph_schema_table *t = find_table(c, rv, &failed);
        if (failed)
            return -1;
        if (!(r = new_rte(c, t ? RTE_TABLE : RTE_PLAIN_TABLE, alias ? alias : rv->relname)))
            return -1;
        r->table = t;
        if (t && rv->alias && rv->alias->n_colnames)
            return rw_refuse(c, rv->location,
                             "phantom: column aliases on protected table %s are not supported",
                             t->name);
    }
    r->relname = rv->relname;
    r->has_alias = alias != NULL;
    rw_scope_add(sc, r);
    if (out)
        *out = r;
    return 0;
}

static int range_has_protected(const rw_rte *from, const rw_rte *to,
                               const ph_schema_column **example)
{
    for (const rw_rte *r = from; r && r != to; r = r->next)
        if (rw_rte_has_protected(r, example))
            return 1;
    return 0;
}

static int from_item(rw_ctx *c, rw_scope *sc, const rw_node *n);

static int join_expr(rw_ctx *c, rw_scope *sc, const PgQuery__JoinExpr *j)
{
    rw_rte **mark_l = sc->tail;
    if (from_item(c, sc, j->larg) != 0)
        return -1;
    rw_rte **mark_r = sc->tail;
    if (from_item(c, sc, j->rarg) != 0)
        return -1;
    rw_rte *left = *mark_l, *right = *mark_r;
    const ph_schema_column *ex;
    if ((j->is_natural || j->alias || j->join_using_alias) && range_has_protected(left, NULL, &ex))
        return rw_refuse(c, -1,
                         "phantom: %s over protected table %s is not supported; join with ON or "
                         "USING and no alias",
                         j->is_natural ? "NATURAL JOIN" : "an aliased JOIN", ex->table->name);
    for (size_t i = 0; i < j->n_using_clause; i++) {
        const rw_node *u = j->using_clause[i];
        if (!u || u->node_case != PG_QUERY__NODE__NODE_STRING)
            continue;
        rw_ev l, r;
        if (rw_resolve_name_in(c, left, right, u->string->sval, -1, &l) < 0 ||
            rw_resolve_name_in(c, right, NULL, u->string->sval, -1, &r) < 0)
            return -1;
        if (l.kind == EV_PROT || r.kind == EV_PROT) {
            c->touched = 1;
            if (l.kind != EV_PROT || r.kind != EV_PROT)
                return rw_refuse(c, -1,
                                 "phantom: cannot apply JOIN ... USING (%s) between %s (%s) and "
                                 "a plaintext column",
                                 u->string->sval, (l.kind == EV_PROT ? l.col : r.col)->qualified,
                                 ph_enc_mode_name((l.kind == EV_PROT ? l.col : r.col)->mode));
            if (!rw_mode_allows(l.col, OP_EQ))
                return rw_refuse_mode(c, -1, l.col, "JOIN ... USING");
            if (rw_bind(c, &r, l.col, OP_EQ, EQF_NONE, "JOIN ... USING", -1) != 0)
                return -1;
        }
    }
    return rw_walk(c, sc, j->quals);
}

static int range_subselect(rw_ctx *c, rw_scope *sc, const PgQuery__RangeSubselect *rs)
{
    /* A non-LATERAL subquery sees the enclosing levels and this level's CTEs,
     * not its sibling FROM entries. */
    rw_scope view;
    rw_scope_init(&view, sc->parent);
    view.ctes = sc->ctes;
    rw_scope *parent = rs->lateral ? sc : &view;
    const char *alias = rs->alias ? rs->alias->aliasname : NULL;
    rw_rte *r = new_rte(c, RTE_SUBQUERY, alias);
    if (!r)
        return -1;
    if (!rs->subquery || rs->subquery->node_case != PG_QUERY__NODE__NODE_SELECT_STMT)
        return rw_refuse(c, -1, "phantom: unsupported subquery in FROM");
    if (rw_select(c, parent, rs->subquery->select_stmt, NULL, &r->cols) != 0)
        return -1;
    if (rs->alias &&
        apply_colnames(c, &r->cols, rs->alias->colnames, rs->alias->n_colnames, -1) != 0)
        return -1;
    r->has_alias = 1;
    rw_scope_add(sc, r);
    return 0;
}

static int from_item(rw_ctx *c, rw_scope *sc, const rw_node *n)
{
    if (!n)
        return 0;
    switch (n->node_case) {
    case PG_QUERY__NODE__NODE_RANGE_VAR:
        return range_var(c, sc, n->range_var, 1, NULL);
    case PG_QUERY__NODE__NODE_JOIN_EXPR:
        return join_expr(c, sc, n->join_expr);
    case PG_QUERY__NODE__NODE_RANGE_SUBSELECT:
        return range_subselect(c, sc, n->range_subselect);
    case PG_QUERY__NODE__NODE_RANGE_TABLE_SAMPLE:
        if (from_item(c, sc, n->range_table_sample->relation) != 0)
            return -1;
        for (size_t i = 0; i < n->range_table_sample->n_args; i++)
            if (rw_walk(c, sc, n->range_table_sample->args[i]) != 0)
                return -1;
        return rw_walk(c, sc, n->range_table_sample->repeatable);
    case PG_QUERY__NODE__NODE_RANGE_FUNCTION: {
        const PgQuery__RangeFunction *rf = n->range_function;
        rw_scope view;
        rw_scope_init(&view, sc->parent);
        view.ctes = sc->ctes;
        for (size_t i = 0; i < rf->n_functions; i++)
            if (rw_walk(c, rf->lateral ? sc : &view, rf->functions[i]) != 0)
                return -1;
        rw_rte *r = new_rte(c, RTE_OPAQUE, rf->alias ? rf->alias->aliasname : NULL);
        if (!r)
            return -1;
        rw_scope_add(sc, r);
        return 0;
    }
    default: {
        if (rw_walk(c, sc, n) != 0)
            return -1;
        rw_rte *r = new_rte(c, RTE_OPAQUE, NULL);
        if (!r)
            return -1;
        rw_scope_add(sc, r);
        return 0;
    }
    }
}

/* ---- target lists ------------------------------------------------------------ */

static int is_star(const rw_node *v)
{
    return v && v->node_case == PG_QUERY__NODE__NODE_COLUMN_REF && v->column_ref->n_fields &&
           v->column_ref->fields[v->column_ref->n_fields - 1]->node_case ==
               PG_QUERY__NODE__NODE_A_STAR;
}

static const char *output_name(const PgQuery__ResTarget *rt)
{
    if (rt->name && *rt->name)
        return rt->name;
    const rw_node *v = rt->val;
    if (v && v->node_case == PG_QUERY__NODE__NODE_COLUMN_REF)
        return rw_last_name(v->column_ref->fields, v->column_ref->n_fields);
    if (v && v->node_case == PG_QUERY__NODE__NODE_FUNC_CALL)
        return rw_last_name(v->func_call->funcname, v->func_call->n_funcname);
    return NULL;
}

static int star_target(rw_ctx *c, rw_scope *sc, const PgQuery__ResTarget *rt, const rw_targets *bt,
                       rw_cols *outputs)
{
    rw_ev ev;
    rw_cols *exp = rw_alloc(c, sizeof *exp);
    if (!exp || rw_star_expand(c, sc, rt->val->column_ref, exp, &ev) != 0)
        return -1;
    if (bt) {
        for (size_t i = 0; i < bt->n; i++)
            if (bt->cols[i])
                return rw_refuse(c, rt->location,
                                 "phantom: INSERT ... SELECT * into protected table %s: list the "
                                 "columns on both sides",
                                 bt->table);
        if (ev.covers_protected)
            return rw_refuse(
                c, rt->location, "phantom: cannot copy %s (%s) into a plaintext column of %s",
                ev.star_example->qualified, ph_enc_mode_name(ev.star_example->mode), bt->table);
    }
    /* One positional marker; the named columns it brings are kept with it
     * for name lookups through subqueries and CTEs. */
    rw_col k = {.star = 1,
                .star_protected = ev.covers_protected,
                .star_example = ev.star_example,
                .expansion = exp};
    if (rw_cols_push(c, outputs, &k) != 0)
        return -1;
    outputs->open |= exp->open;
    return 0;
}

static int target_list(rw_ctx *c, rw_scope *sc, rw_node **list, size_t n, const rw_targets *bt,
                       rw_cols *outputs)
{
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        if (!list[i] || list[i]->node_case != PG_QUERY__NODE__NODE_RES_TARGET)
            continue;
        const PgQuery__ResTarget *rt = list[i]->res_target;
        if (is_star(rt->val)) {
            if (star_target(c, sc, rt, bt, outputs) != 0)
                return -1;
            pos = (size_t)-1 / 2; /* later positions are unknown */
            continue;
        }
        rw_ev ev;
        if (rw_classify(c, sc, rt->val, &ev) != 0)
            return -1;
        rw_col k = {.name = output_name(rt)};
        if (bt) {
            const ph_schema_column *dst = pos < bt->n ? bt->cols[pos] : NULL;
            if (dst) {
                if (rw_bind(c, &ev, dst, OP_ASSIGN, EQF_NONE, "INSERT ... SELECT", rt->location) !=
                    0)
                    return -1;
                k.col = dst;
            } else if (ev.kind == EV_PROT) {
                return rw_refuse(c, rt->location,
                                 "phantom: cannot copy %s (%s) into a plaintext column of %s",
                                 ev.col->qualified, ph_enc_mode_name(ev.col->mode), bt->table);
            } else if (rw_release(c, &ev, "the select list", rt->location) != 0) {
                return -1;
            }
        } else if (ev.kind == EV_PROT) {
            k.col = ev.col;
        } else if (rw_release(c, &ev, "the select list", rt->location) != 0) {
            return -1;
        }
        if (rw_cols_push(c, outputs, &k) != 0)
            return -1;
        pos++;
    }
    return 0;
}

/* ---- SELECT --------------------------------------------------------------------- */

static int with_clause(rw_ctx *c, rw_scope *sc, const PgQuery__WithClause *w);

static int set_operation(rw_ctx *c, rw_scope *sc, const PgQuery__SelectStmt *s,
                         const rw_targets *bt, rw_cols *outputs)
{
    rw_cols l = {0}, r = {0};
    if (rw_select(c, sc, s->larg, bt, &l) != 0 || rw_select(c, sc, s->rarg, bt, &r) != 0)
        return -1;
    const char *opname = s->op == PG_QUERY__SET_OPERATION__SETOP_UNION       ? "UNION"
                         : s->op == PG_QUERY__SET_OPERATION__SETOP_INTERSECT ? "INTERSECT"
                                                                             : "EXCEPT";
    size_t n = l.n > r.n ? l.n : r.n;
    for (size_t i = 0; i < n; i++) {
        const rw_col *a = i < l.n ? &l.v[i] : NULL, *b = i < r.n ? &r.v[i] : NULL;
        if ((a && a->star && a->star_protected) || (b && b->star && b->star_protected))
            return rw_refuse(c, -1,
                             "phantom: %s over `*` of a protected table is not supported; name "
                             "the columns",
                             opname);
        if ((a && a->star) || (b && b->star))
            break; /* positions unknown beyond a plain `*` */
        const ph_schema_column *ac = a ? a->col : NULL, *bc = b ? b->col : NULL;
        if (ac || bc) {
            const ph_schema_column *p = ac ? ac : bc;
            c->touched = 1;
            if (!ac || !bc || !rw_same_domain(ac, bc))
                return rw_refuse(c, -1,
                                 "phantom: %s combines %s (%s) with a value that is not in its "
                                 "key domain",
                                 opname, p->qualified, ph_enc_mode_name(p->mode));
            if ((!s->all || s->op != PG_QUERY__SET_OPERATION__SETOP_UNION) &&
                !rw_mode_allows(p, OP_GROUP))
                return rw_refuse_mode(c, -1, p, s->all ? opname : "UNION (without ALL)");
        }
        rw_col k = {.name = a ? a->name : NULL, .col = ac};
        if (rw_cols_push(c, outputs, &k) != 0)
            return -1;
    }
    rw_scope osc;
    rw_scope_init(&osc, sc->parent);
    osc.ctes = sc->ctes;
    osc.outputs = outputs;
    for (size_t i = 0; i < s->n_sort_clause; i++)
        if (rw_sort_item(c, &osc, s->sort_clause[i], OP_ORDER, "ORDER BY") != 0)
            return -1;
    if (rw_walk(c, &osc, s->limit_count) != 0)
        return -1;
    return rw_walk(c, &osc, s->limit_offset);
}

/* The tenant of one VALUES row of an INSERT into a table with a tenant
 * column: its literal (*lit, arena) or parameter (*ref); refused when the
 * column gets anything else while the row stores protected values. */
static int row_tenant(rw_ctx *c, rw_scope *sc, const rw_node *item, const rw_targets *bt,
                      const char **lit, int *ref)
{
    rw_ev ev;
    *lit = NULL;
    *ref = 0;
    if (!item || rw_classify(c, sc, item, &ev) != 0)
        return item ? -1 : 0;
    if (ev.kind == EV_PARAM) {
        *ref = ev.param;
        return 0;
    }
    char num[24];
    const char *v = NULL;
    if (ev.kind == EV_CONST && ev.aconst->val_case == PG_QUERY__A__CONST__VAL_SVAL)
        v = ev.aconst->sval->sval;
    else if (ev.kind == EV_CONST && ev.aconst->val_case == PG_QUERY__A__CONST__VAL_IVAL) {
        snprintf(num, sizeof num, "%d", ev.aconst->ival ? ev.aconst->ival->ival : 0);
        v = num;
    }
    if (!v)
        return rw_refuse(c, ev.location,
                         "phantom: INSERT into tenant-keyed table %s: its tenant column must be "
                         "given as a literal or a parameter (the row's protected values are "
                         "encrypted under that tenant's keys)",
                         bt->table);
    char *copy = rw_alloc(c, strlen(v) + 1);
    if (!copy)
        return -1;
    memcpy(copy, v, strlen(v) + 1);
    *lit = copy;
    c->value_dependent = 1; /* the row's keys depend on a literal's value: no shape */
    return 0;
}

/* After one value of a row with a known tenant was bound to protected dst:
 * its literal edits (from `first` on) or its parameter take that tenant. */
static int tag_tenant(rw_ctx *c, const rw_ev *ev, size_t first, const char *lit, int ref)
{
    if (ev->kind == EV_PARAM)
        return rw_param_tenant(c, ev->param, ref, lit, ev->location);
    if (ev->kind != EV_CONST)
        return 0;
    if (ref)
        return rw_refuse(c, ev->location,
                         "phantom: a row whose tenant is a parameter must give its protected "
                         "values as parameters too");
    for (size_t k = first; k < c->nedits; k++)
        if (c->edits[k].kind == EDIT_ENCRYPT)
            c->edits[k].tenant = lit;
    return 0;
}

static int values_lists(rw_ctx *c, rw_scope *sc, const PgQuery__SelectStmt *s, const rw_targets *bt,
                        rw_cols *outputs)
{
    size_t width = 0;
    for (size_t r = 0; r < s->n_values_lists; r++) {
        const rw_node *row = s->values_lists[r];
        if (!row || row->node_case != PG_QUERY__NODE__NODE_LIST)
            return rw_refuse(c, -1, "phantom: unsupported VALUES list");
        if (row->list->n_items > width)
            width = row->list->n_items;
        const char *tlit = NULL;
        int tref = 0, tenant = bt && bt->tenant_pos >= 0 &&
                               (size_t)bt->tenant_pos < row->list->n_items && c->touched;
        if (tenant && row_tenant(c, sc, row->list->items[bt->tenant_pos], bt, &tlit, &tref) != 0)
            return -1;
        for (size_t i = 0; i < row->list->n_items; i++) {
            rw_ev ev;
            if (rw_classify(c, sc, row->list->items[i], &ev) != 0)
                return -1;
            const ph_schema_column *dst = bt && i < bt->n ? bt->cols[i] : NULL;
            if (dst) {
                size_t first = c->nedits;
                if (rw_bind(c, &ev, dst, OP_ASSIGN, EQF_NONE, "INSERT", ev.location) != 0)
                    return -1;
                if (tenant && (tlit || tref) && tag_tenant(c, &ev, first, tlit, tref) != 0)
                    return -1;
            } else if (bt && ev.kind == EV_PROT) {
                return rw_refuse(c, ev.location,
                                 "phantom: cannot copy %s (%s) into a plaintext column of %s",
                                 ev.col->qualified, ph_enc_mode_name(ev.col->mode), bt->table);
            } else if (rw_release(c, &ev, "VALUES", ev.location) != 0) {
                return -1;
            }
        }
    }
    for (size_t i = 0; i < width; i++) {
        rw_col k = {.col = bt && i < bt->n ? bt->cols[i] : NULL};
        if (rw_cols_push(c, outputs, &k) != 0)
            return -1;
    }
    return 0;
}

static int distinct_clause(rw_ctx *c, rw_scope *sc, const PgQuery__SelectStmt *s,
                           const rw_cols *outputs)
{
    if (s->n_distinct_clause == 0)
        return 0;
    const rw_node *first = s->distinct_clause[0];
    if (s->n_distinct_clause == 1 &&
        (!first || first->node_case == PG_QUERY__NODE__NODE__NOT_SET)) {
        /* SELECT DISTINCT: every output column is compared */
        for (size_t i = 0; i < outputs->n; i++) {
            const rw_col *k = &outputs->v[i];
            const ph_schema_column *p =
                k->col ? k->col : (k->star_protected ? k->star_example : NULL);
            if (p && !rw_mode_allows(p, OP_GROUP))
                return rw_refuse_mode(c, -1, p, "DISTINCT");
            if (k->star && k->star_protected && !k->col)
                return rw_refuse(c, -1,
                                 "phantom: SELECT DISTINCT * over a protected table is not "
                                 "supported; name the columns");
        }
        return 0;
    }
    for (size_t i = 0; i < s->n_distinct_clause; i++)
        if (rw_sort_item(c, sc, s->distinct_clause[i], OP_GROUP, "DISTINCT ON") != 0)
            return -1;
    return 0;
}

static int select_body(rw_ctx *c, rw_scope *sc, const PgQuery__SelectStmt *s, const rw_targets *bt,
                       rw_cols *outputs)
{
    for (size_t i = 0; i < s->n_from_clause; i++)
        if (from_item(c, sc, s->from_clause[i]) != 0)
            return -1;
    if (rw_walk(c, sc, s->where_clause) != 0)
        return -1;
    if (target_list(c, sc, s->target_list, s->n_target_list, bt, outputs) != 0)
        return -1;
    sc->outputs = outputs;
    for (size_t i = 0; i < s->n_group_clause; i++)
        if (rw_sort_item(c, sc, s->group_clause[i], OP_GROUP, "GROUP BY") != 0)
            return -1;
    if (rw_walk(c, sc, s->having_clause) != 0 || distinct_clause(c, sc, s, outputs) != 0)
        return -1;
    for (size_t i = 0; i < s->n_window_clause; i++)
        if (rw_walk(c, sc, s->window_clause[i]) != 0)
            return -1;
    for (size_t i = 0; i < s->n_sort_clause; i++)
        if (rw_sort_item(c, sc, s->sort_clause[i], OP_ORDER, "ORDER BY") != 0)
            return -1;
    if (rw_walk(c, sc, s->limit_count) != 0 || rw_walk(c, sc, s->limit_offset) != 0)
        return -1;
    return 0;
}

int rw_select(rw_ctx *c, rw_scope *parent, const PgQuery__SelectStmt *s, const rw_targets *bt,
              rw_cols *outputs)
{
    rw_cols scratch = {0};
    rw_scope sc;
    if (!outputs)
        outputs = &scratch;
    if (!s)
        return 0;
    rw_scope_init(&sc, parent);
    if (s->with_clause && with_clause(c, &sc, s->with_clause) != 0)
        return -1;
    if (s->op != PG_QUERY__SET_OPERATION__SETOP_NONE &&
        s->op != PG_QUERY__SET_OPERATION__SET_OPERATION_UNDEFINED)
        return set_operation(c, &sc, s, bt, outputs);
    if (s->n_values_lists)
        return values_lists(c, &sc, s, bt, outputs);
    return select_body(c, &sc, s, bt, outputs);
}

/* ---- WITH ------------------------------------------------------------------------ */

static int cte_body(rw_ctx *c, rw_scope *sc, const rw_node *q, rw_cols *outs)
{
    if (!q)
        return 0;
    switch (q->node_case) {
    case PG_QUERY__NODE__NODE_SELECT_STMT:
        return rw_select(c, sc, q->select_stmt, NULL, outs);
    case PG_QUERY__NODE__NODE_INSERT_STMT:
        return insert_stmt(c, sc, q->insert_stmt, outs);
    case PG_QUERY__NODE__NODE_UPDATE_STMT:
        return update_stmt(c, sc, q->update_stmt, outs);
    case PG_QUERY__NODE__NODE_DELETE_STMT:
        return delete_stmt(c, sc, q->delete_stmt, outs);
    default:
        return rw_refuse(c, -1, "phantom: unsupported statement in WITH");
    }
}

/* WITH RECURSIVE x AS (base UNION [ALL] step): the base term fixes the
 * output columns, then the step is analyzed with x visible. */
static int recursive_cte(rw_ctx *c, rw_scope *sc, rw_cte *e, const PgQuery__CommonTableExpr *cte)
{
    const rw_node *q = cte->ctequery;
    const PgQuery__SelectStmt *s =
        q && q->node_case == PG_QUERY__NODE__NODE_SELECT_STMT ? q->select_stmt : NULL;
    if (!s || s->op != PG_QUERY__SET_OPERATION__SETOP_UNION || s->with_clause || s->n_sort_clause ||
        s->limit_count) {
        if (cte_body(c, sc, q, &e->cols) != 0)
            return -1;
        e->poisoned = 0;
        return 0;
    }
    rw_cols base = {0}, step = {0};
    if (rw_select(c, sc, s->larg, NULL, &base) != 0 ||
        apply_colnames(c, &base, cte->aliascolnames, cte->n_aliascolnames, cte->location) != 0)
        return -1;
    e->cols = base;
    e->poisoned = 0;
    if (rw_select(c, sc, s->rarg, NULL, &step) != 0)
        return -1;
    for (size_t i = 0; i < base.n && i < step.n; i++) {
        const ph_schema_column *a = base.v[i].col, *b = step.v[i].col;
        if (base.v[i].star_protected || step.v[i].star_protected ||
            ((a || b) && !(a && b && rw_same_domain(a, b))))
            return rw_refuse(c, -1,
                             "phantom: recursive CTE %s mixes a protected column with other "
                             "values",
                             e->name);
    }
    return 0;
}

static int with_clause(rw_ctx *c, rw_scope *sc, const PgQuery__WithClause *w)
{
    rw_cte **ctes = rw_alloc(c, (w->n_ctes + 1) * sizeof *ctes);
    if (!ctes)
        return -1;
    for (size_t i = 0; i < w->n_ctes; i++) {
        const rw_node *n = w->ctes[i];
        if (!n || n->node_case != PG_QUERY__NODE__NODE_COMMON_TABLE_EXPR)
            return rw_refuse(c, w->location, "phantom: unsupported WITH clause");
        if (!(ctes[i] = rw_alloc(c, sizeof *ctes[i])))
            return -1;
        ctes[i]->name = n->common_table_expr->ctename;
        if (w->recursive) { /* every name is visible everywhere: register up front */
            ctes[i]->poisoned = 1;
            ctes[i]->next = sc->ctes;
            sc->ctes = ctes[i];
        }
    }
    for (size_t i = 0; i < w->n_ctes; i++) {
        const PgQuery__CommonTableExpr *cte = w->ctes[i]->common_table_expr;
        rw_cte *e = ctes[i];
        if (w->recursive ? recursive_cte(c, sc, e, cte) != 0
                         : cte_body(c, sc, cte->ctequery, &e->cols) != 0)
            return -1;
        if (apply_colnames(c, &e->cols, cte->aliascolnames, cte->n_aliascolnames, cte->location) !=
            0)
            return -1;
        if (cte->search_clause || cte->cycle_clause) {
            for (size_t k = 0; k < e->cols.n; k++)
                if (e->cols.v[k].col || e->cols.v[k].star_protected)
                    return rw_refuse(c, cte->location,
                                     "phantom: SEARCH/CYCLE over protected columns is not "
                                     "supported");
        }
        if (!w->recursive) {
            e->next = sc->ctes;
            sc->ctes = e;
        }
    }
    return 0;
}

/* ---- INSERT / UPDATE / DELETE ----------------------------------------------------- */

static int assign(rw_ctx *c, const ph_schema_column *col, const rw_ev *ev, const char *table,
                  const char *opname, int location)
{
    if (col)
        return rw_bind(c, ev, col, OP_ASSIGN, EQF_NONE, opname, location);
    if (ev->kind == EV_PROT)
        return rw_refuse(c, location, "phantom: cannot copy %s (%s) into a plaintext column of %s",
                         ev->col->qualified, ph_enc_mode_name(ev->col->mode), table);
    return rw_release(c, ev, opname, location);
}

static int multi_select(rw_ctx *c, rw_scope *sc, const ph_schema_table *t, const char *table,
                        rw_node **list, size_t avail, int ncolumns, const PgQuery__SelectStmt *sub)
{
    if (ncolumns < 1 || (size_t)ncolumns > avail)
        return rw_refuse(c, -1, "phantom: unsupported multiple-column assignment");
    rw_targets bt = {.n = (size_t)ncolumns, .table = table, .tenant_pos = -1};
    if (!(bt.cols = rw_alloc(c, bt.n * sizeof *bt.cols)))
        return -1;
    for (size_t k = 0; k < bt.n; k++) {
        const rw_node *n = list[k];
        if (!n || n->node_case != PG_QUERY__NODE__NODE_RES_TARGET)
            return rw_refuse(c, -1, "phantom: unsupported multiple-column assignment");
        bt.cols[k] = ph_schema_find_column(t, n->res_target->name);
        if (bt.cols[k] && n->res_target->n_indirection)
            return rw_refuse_op(c, n->res_target->location, bt.cols[k],
                                "a subscript or field assignment");
    }
    return rw_select(c, sc, sub, &bt, NULL);
}

static int set_list(rw_ctx *c, rw_scope *sc, const ph_schema_table *t, const char *table,
                    rw_node **list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!list[i] || list[i]->node_case != PG_QUERY__NODE__NODE_RES_TARGET)
            continue;
        const PgQuery__ResTarget *rt = list[i]->res_target;
        if (t && t->tenant_column && rt->name && strcmp(rt->name, t->tenant_column) == 0)
            return rw_refuse(c, rt->location,
                             "phantom: the tenant column %s.%s cannot be changed by UPDATE: the "
                             "row's protected values are encrypted under its tenant's keys",
                             t->name, t->tenant_column);
        const ph_schema_column *col = ph_schema_find_column(t, rt->name);
        if (col && rt->n_indirection)
            return rw_refuse_op(c, rt->location, col, "a subscript or field assignment");
        rw_ev ev;
        const rw_node *v = rt->val;
        if (v && v->node_case == PG_QUERY__NODE__NODE_MULTI_ASSIGN_REF) {
            const PgQuery__MultiAssignRef *m = v->multi_assign_ref;
            const rw_node *src = m->source;
            size_t idx = m->colno > 0 ? (size_t)m->colno - 1 : 0;
            if (src && src->node_case == PG_QUERY__NODE__NODE_ROW_EXPR &&
                idx < src->row_expr->n_args) {
                if (rw_classify(c, sc, src->row_expr->args[idx], &ev) != 0)
                    return -1;
            } else if (src && src->node_case == PG_QUERY__NODE__NODE_SUB_LINK &&
                       src->sub_link->subselect &&
                       src->sub_link->subselect->node_case == PG_QUERY__NODE__NODE_SELECT_STMT) {
                /* SET (a, b) = (SELECT ...): analyze once, at the first column,
                 * with the assigned columns as the targets of its select list. */
                if (m->colno == 1 && multi_select(c, sc, t, table, list + i, n - i, m->ncolumns,
                                                  src->sub_link->subselect->select_stmt) != 0)
                    return -1;
                continue;
            } else {
                if (col)
                    return rw_refuse(c, rt->location,
                                     "phantom: unsupported multiple-column assignment to %s",
                                     col->qualified);
                if (rw_walk(c, sc, src) != 0)
                    return -1;
                continue;
            }
        } else if (rw_classify(c, sc, v, &ev) != 0) {
            return -1;
        }
        if (assign(c, col, &ev, table, "UPDATE ... SET", rt->location) != 0)
            return -1;
    }
    return 0;
}

static int target_rte(rw_ctx *c, rw_scope *sc, const PgQuery__RangeVar *rv,
                      const ph_schema_table **t)
{
    rw_rte *r;
    if (!rv)
        return rw_refuse(c, -1, "phantom: statement without a target table");
    if (range_var(c, sc, rv, 0, &r) != 0)
        return -1;
    *t = r->table;
    return 0;
}

/* Where the table's tenant column is among the INSERT's targets. */
static void tenant_target(const ph_schema_table *t, const char *name, size_t i, rw_targets *bt)
{
    if (t && t->tenant_column && name && strcmp(name, t->tenant_column) == 0)
        bt->tenant_pos = (int)i;
}

static int insert_columns(rw_ctx *c, const PgQuery__InsertStmt *ins, const ph_schema_table *t,
                          rw_targets *bt)
{
    bt->table = ins->relation->relname;
    bt->tenant_pos = -1;
    if (ins->n_cols) {
        if (!(bt->cols = rw_alloc(c, ins->n_cols * sizeof *bt->cols)))
            return -1;
        bt->n = ins->n_cols;
        for (size_t i = 0; i < ins->n_cols; i++) {
            const rw_node *n = ins->cols[i];
            if (!n || n->node_case != PG_QUERY__NODE__NODE_RES_TARGET)
                continue;
            tenant_target(t, n->res_target->name, i, bt);
            const ph_schema_column *col = ph_schema_find_column(t, n->res_target->name);
            if (col && n->res_target->n_indirection)
                return rw_refuse_op(c, n->res_target->location, col,
                                    "a subscript or field assignment");
            bt->cols[i] = col;
        }
        return 0;
    }
    if (!t || !ins->select_stmt)
        return 0; /* plaintext table, or DEFAULT VALUES */
    const char *const *names = NULL;
    ssize_t n =
        c->opt && c->opt->table_columns ? c->opt->table_columns(c->opt->columns_ud, t, &names) : -1;
    if (n < 0 || (n > 0 && !names))
        return rw_refuse(c, ins->relation->location,
                         "phantom: INSERT into protected table %s needs a column list (phantom "
                         "must know which values to encrypt)",
                         t->name);
    if (!(bt->cols = rw_alloc(c, ((size_t)n + 1) * sizeof *bt->cols)))
        return -1;
    bt->n = (size_t)n;
    for (ssize_t i = 0; i < n; i++) {
        bt->cols[i] = ph_schema_find_column(t, names[i]);
        tenant_target(t, names[i], (size_t)i, bt);
    }
    return 0;
}

static int on_conflict(rw_ctx *c, const rw_scope *sc, const PgQuery__InsertStmt *ins,
                       const ph_schema_table *t)
{
    const PgQuery__OnConflictClause *oc = ins->on_conflict_clause;
    rw_scope usc;
    rw_scope_init(&usc, sc->parent);
    usc.ctes = sc->ctes;
    rw_rte *target, *excluded;
    if (range_var(c, &usc, ins->relation, 0, &target) != 0 ||
        !(excluded = rw_alloc(c, sizeof *excluded)))
        return -1;
    *excluded = *target;
    excluded->refname = "excluded";
    excluded->has_alias = 1;
    rw_scope_add(&usc, excluded);
    if (oc->infer) {
        for (size_t i = 0; i < oc->infer->n_index_elems; i++) {
            const rw_node *n = oc->infer->index_elems[i];
            if (!n || n->node_case != PG_QUERY__NODE__NODE_INDEX_ELEM)
                continue;
            const PgQuery__IndexElem *ie = n->index_elem;
            const ph_schema_column *col = ph_schema_find_column(t, ie->name);
            int loc = -1;
            if (col) {
                c->touched = 1;
                if (!rw_mode_allows(col, OP_UNIQUE))
                    return rw_refuse_mode(c, oc->location, col, "ON CONFLICT (a unique index)");
                if (ie->n_opclass || ie->n_collation)
                    return rw_refuse_op(c, oc->location, col, "an operator class or collation");
            } else if (ie->expr) {
                if (rw_find_protected(c, &usc, ie->expr, &col, &loc) < 0)
                    return -1;
                if (col)
                    return rw_refuse_op(c, loc, col, "an index expression");
            }
        }
        if (rw_walk(c, &usc, oc->infer->where_clause) != 0)
            return -1;
    }
    if (set_list(c, &usc, t, ins->relation->relname, oc->target_list, oc->n_target_list) != 0)
        return -1;
    return rw_walk(c, &usc, oc->where_clause);
}

static int insert_stmt(rw_ctx *c, rw_scope *parent, const PgQuery__InsertStmt *ins,
                       rw_cols *outputs)
{
    rw_scope sc, tsc;
    rw_scope_init(&sc, parent);
    if (ins->with_clause && with_clause(c, &sc, ins->with_clause) != 0)
        return -1;
    if (!ins->relation)
        return rw_refuse(c, -1, "phantom: INSERT without a target table");
    int failed = 0;
    const ph_schema_table *t = find_table(c, ins->relation, &failed);
    if (failed)
        return -1;
    rw_targets bt = {0};
    if (insert_columns(c, ins, t, &bt) != 0)
        return -1;
    for (size_t i = 0; i < bt.n; i++)
        if (bt.cols[i])
            c->touched = 1;
    const rw_node *src = ins->select_stmt;
    if (bt.tenant_pos >= 0 && c->touched && src &&
        src->node_case == PG_QUERY__NODE__NODE_SELECT_STMT && src->select_stmt->n_values_lists == 0)
        return rw_refuse(c, ins->relation->location,
                         "phantom: INSERT ... SELECT into tenant-keyed table %s with its tenant "
                         "column is not supported: give the rows with VALUES (each row's values "
                         "are encrypted under its tenant's keys)",
                         t->name);
    if (src && src->node_case == PG_QUERY__NODE__NODE_SELECT_STMT) {
        if (rw_select(c, &sc, src->select_stmt, &bt, NULL) != 0)
            return -1;
    } else if (src) {
        return rw_refuse(c, -1, "phantom: unsupported INSERT source");
    }
    if (ins->on_conflict_clause && on_conflict(c, &sc, ins, t) != 0)
        return -1;
    if (!ins->n_returning_list)
        return 0;
    rw_scope_init(&tsc, parent);
    tsc.ctes = sc.ctes;
    const ph_schema_table *tt = NULL;
    if (target_rte(c, &tsc, ins->relation, &tt) != 0)
        return -1;
    return target_list(c, &tsc, ins->returning_list, ins->n_returning_list, NULL, outputs);
}

static int update_stmt(rw_ctx *c, rw_scope *parent, const PgQuery__UpdateStmt *u, rw_cols *outputs)
{
    rw_scope sc;
    rw_scope_init(&sc, parent);
    if (u->with_clause && with_clause(c, &sc, u->with_clause) != 0)
        return -1;
    const ph_schema_table *t = NULL;
    if (target_rte(c, &sc, u->relation, &t) != 0)
        return -1;
    for (size_t i = 0; i < u->n_from_clause; i++)
        if (from_item(c, &sc, u->from_clause[i]) != 0)
            return -1;
    if (set_list(c, &sc, t, u->relation->relname, u->target_list, u->n_target_list) != 0 ||
        rw_walk(c, &sc, u->where_clause) != 0)
        return -1;
    return target_list(c, &sc, u->returning_list, u->n_returning_list, NULL, outputs);
}

static int delete_stmt(rw_ctx *c, rw_scope *parent, const PgQuery__DeleteStmt *d, rw_cols *outputs)
{
    rw_scope sc;
    rw_scope_init(&sc, parent);
    if (d->with_clause && with_clause(c, &sc, d->with_clause) != 0)
        return -1;
    const ph_schema_table *t = NULL;
    if (target_rte(c, &sc, d->relation, &t) != 0)
        return -1;
    for (size_t i = 0; i < d->n_using_clause; i++)
        if (from_item(c, &sc, d->using_clause[i]) != 0)
            return -1;
    if (rw_walk(c, &sc, d->where_clause) != 0)
        return -1;
    return target_list(c, &sc, d->returning_list, d->n_returning_list, NULL, outputs);
}

/* ---- statements ---------------------------------------------------------------------- */

static int copy_stmt(rw_ctx *c, const PgQuery__CopyStmt *cp, ph_rw_stmt *st, rw_cols *outputs)
{
    st->kind = PH_RW_STMT_COPY;
    ph_copy_options_default(&st->copy_opts, PH_COPY_TEXT);
    st->copy_ncols = -1;
    if (cp->query) {
        ph_rw_stmt inner = {0};
        rw_cols outs = {0};
        if (rw_statement(c, cp->query, -1, 0, &inner, &outs) != 0)
            return -1;
        if (c->touched)
            return rw_refuse(c, -1,
                             "phantom: COPY (query) over protected columns is not supported; "
                             "COPY the table instead");
        return 0;
    }
    int failed = 0;
    const ph_schema_table *t = cp->relation ? find_table(c, cp->relation, &failed) : NULL;
    if (!t)
        return cp->relation && failed ? -1 : 0;
    c->touched = 1;
    if ((cp->filename && *cp->filename) || cp->is_program)
        return rw_refuse(c, cp->relation->location,
                         "phantom: server-side COPY %s a file or program on protected table %s "
                         "is not supported; use COPY ... %s",
                         cp->is_from ? "FROM" : "TO", t->name,
                         cp->is_from ? "FROM STDIN" : "TO STDOUT");
    if (cp->where_clause)
        return rw_refuse(c, cp->relation->location,
                         "phantom: COPY ... WHERE on protected table %s is not supported", t->name);
    st->copy_table = t;
    st->copy_from = cp->is_from;
    st->copy_tenant = -1;
    if (rw_copy_plan(c, cp, t, st) != 0)
        return -1;
    for (size_t i = 0; i < cp->n_attlist; i++) {
        const rw_node *a = cp->attlist[i];
        rw_col k = {0};
        if (a && a->node_case == PG_QUERY__NODE__NODE_STRING && t->tenant_column &&
            strcmp(a->string->sval, t->tenant_column) == 0)
            st->copy_tenant = (int)i;
        if (a && a->node_case == PG_QUERY__NODE__NODE_STRING)
            k.col = ph_schema_find_column(t, a->string->sval);
        if (rw_cols_push(c, outputs, &k) != 0)
            return -1;
    }
    if (cp->n_attlist == 0) {
        rw_col k = {.star = 1, .star_protected = 1, .star_example = t->columns[0]};
        return rw_cols_push(c, outputs, &k);
    }
    return 0;
}

/* Statements that never carry values into a table: pass even when they name
 * a protected table. */
static int harmless(PgQuery__Node__NodeCase k)
{
    switch (k) {
    case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
    case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT:
    case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT:
    case PG_QUERY__NODE__NODE_DISCARD_STMT:
    case PG_QUERY__NODE__NODE_DROP_STMT:
    case PG_QUERY__NODE__NODE_TRUNCATE_STMT:
    case PG_QUERY__NODE__NODE_GRANT_STMT:
    case PG_QUERY__NODE__NODE_VACUUM_STMT:
    case PG_QUERY__NODE__NODE_LOCK_STMT:
    case PG_QUERY__NODE__NODE_COMMENT_STMT:
    case PG_QUERY__NODE__NODE_CLUSTER_STMT:
    case PG_QUERY__NODE__NODE_REINDEX_STMT:
    case PG_QUERY__NODE__NODE_LISTEN_STMT:
    case PG_QUERY__NODE__NODE_UNLISTEN_STMT:
    case PG_QUERY__NODE__NODE_NOTIFY_STMT:
    case PG_QUERY__NODE__NODE_CHECK_POINT_STMT:
    case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
    case PG_QUERY__NODE__NODE_CLOSE_PORTAL_STMT:
    case PG_QUERY__NODE__NODE_FETCH_STMT:
    case PG_QUERY__NODE__NODE_EXECUTE_STMT:
    case PG_QUERY__NODE__NODE_ALTER_OWNER_STMT:
    case PG_QUERY__NODE__NODE_CONSTRAINTS_SET_STMT:
        return 1;
    default:
        return 0;
    }
}

static int any_param_bound(const rw_ctx *c)
{
    for (int i = 0; i < c->capparams; i++)
        if (c->params[i].col)
            return 1;
    return 0;
}

static const char *stmt_name(const rw_node *n)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&pg_query__node__descriptor, n->node_case);
    return f && f->descriptor ? ((const ProtobufCMessageDescriptor *)f->descriptor)->short_name
                              : "this statement";
}

static int nested_query(rw_ctx *c, const rw_node *q, ph_rw_stmt *st)
{
    ph_rw_stmt inner = {0};
    rw_cols outs = {0};
    (void)st;
    return rw_statement(c, q, -1, 0, &inner, &outs);
}

int rw_statement(rw_ctx *c, const rw_node *n, int location, int len, ph_rw_stmt *st,
                 rw_cols *outputs)
{
    if (!n)
        return 0;
    switch (n->node_case) {
    case PG_QUERY__NODE__NODE_SELECT_STMT:
        st->kind = PH_RW_STMT_SELECT;
        if (rw_select(c, NULL, n->select_stmt, NULL, outputs) != 0)
            return -1;
        if (n->select_stmt->into_clause && c->touched)
            return rw_refuse(c, location,
                             "phantom: SELECT INTO over protected columns is not supported");
        return 0;
    case PG_QUERY__NODE__NODE_INSERT_STMT:
        st->kind = PH_RW_STMT_INSERT;
        return insert_stmt(c, NULL, n->insert_stmt, outputs);
    case PG_QUERY__NODE__NODE_UPDATE_STMT:
        st->kind = PH_RW_STMT_UPDATE;
        return update_stmt(c, NULL, n->update_stmt, outputs);
    case PG_QUERY__NODE__NODE_DELETE_STMT:
        st->kind = PH_RW_STMT_DELETE;
        return delete_stmt(c, NULL, n->delete_stmt, outputs);
    case PG_QUERY__NODE__NODE_EXPLAIN_STMT:
        st->kind = PH_RW_STMT_EXPLAIN;
        return nested_query(c, n->explain_stmt->query, st);
    case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
        return nested_query(c, n->declare_cursor_stmt->query, st);
    case PG_QUERY__NODE__NODE_PREPARE_STMT:
        if (nested_query(c, n->prepare_stmt->query, st) != 0)
            return -1;
        if (any_param_bound(c))
            return rw_refuse(c, location,
                             "phantom: SQL-level PREPARE with parameters bound to protected "
                             "columns is not supported; use the extended query protocol");
        return 0;
    case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT:
    case PG_QUERY__NODE__NODE_VIEW_STMT:
        if (nested_query(c,
                         n->node_case == PG_QUERY__NODE__NODE_VIEW_STMT
                             ? n->view_stmt->query
                             : n->create_table_as_stmt->query,
                         st) != 0)
            return -1;
        st->kind = PH_RW_STMT_DDL;
        if (c->touched)
            return rw_refuse(c, location,
                             "phantom: %s over protected columns is not supported: its results "
                             "could not be decrypted",
                             n->node_case == PG_QUERY__NODE__NODE_VIEW_STMT
                                 ? "CREATE VIEW"
                                 : "CREATE TABLE AS / SELECT INTO");
        return 0;
    case PG_QUERY__NODE__NODE_CREATE_STMT:
        st->kind = PH_RW_STMT_DDL;
        return rw_create_table(c, n->create_stmt);
    case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
        st->kind = PH_RW_STMT_DDL;
        return rw_alter_table(c, n->alter_table_stmt);
    case PG_QUERY__NODE__NODE_INDEX_STMT:
        st->kind = PH_RW_STMT_DDL;
        return rw_create_index(c, n->index_stmt);
    case PG_QUERY__NODE__NODE_RENAME_STMT:
        st->kind = PH_RW_STMT_DDL;
        return rw_rename(c, n->rename_stmt);
    case PG_QUERY__NODE__NODE_COPY_STMT:
        return copy_stmt(c, n->copy_stmt, st, outputs);
    default:
        if (harmless(n->node_case))
            return 0;
        if (location >= 0 && !rw_mentions_text(c, location, len))
            return 0;
        return rw_refuse(c, location >= 0 ? location : -1,
                         "phantom: %s statements that involve a protected table are not "
                         "supported",
                         stmt_name(n));
    }
}
