/*
 * rw_ddl.c — DDL through the proxy: CREATE TABLE, ALTER TABLE, CREATE INDEX
 * and renames, as they concern protected columns.
 *
 * Owns: declaring protected columns as bytea — token columns as text (the
 * type name is spliced, the rest of the definition kept), the constraints each mode can keep (NOT
 * NULL always; PRIMARY KEY / UNIQUE / FOREIGN KEY only where equal values
 * give equal ciphertext and, for foreign keys, within one key domain), and
 * refusing what would store or evaluate plaintext in the database (DEFAULT,
 * CHECK, GENERATED, COLLATE, expression indexes) or silently detach a column
 * from its configuration (type changes, renames, inheritance).
 */
#include "rewrite/rw_internal.h"

#include <string.h>

static int has_str(const char *s)
{
    return s && *s;
}

static const char *str_node(const rw_node *n)
{
    return n && n->node_case == PG_QUERY__NODE__NODE_STRING ? n->string->sval : NULL;
}

static const ph_schema_table *lookup(rw_ctx *c, const PgQuery__RangeVar *rv, int *failed)
{
    int amb = 0;
    *failed = 0;
    if (!rv)
        return NULL;
    const ph_schema_table *t = ph_schema_find_table(
        c->schema, has_str(rv->schemaname) ? rv->schemaname : NULL, rv->relname, &amb);
    if (amb)
        *failed = rw_refuse(c, rv->location,
                            "phantom: table name %s is protected in more than one schema; "
                            "qualify it with its schema",
                            rv->relname);
    return t;
}

/* A one-entry scope for expressions of a table's DDL (CHECK, index WHERE). */
static int table_scope(rw_ctx *c, rw_scope *sc, const PgQuery__RangeVar *rv,
                       const ph_schema_table *t)
{
    rw_scope_init(sc, NULL);
    rw_rte *r = rw_alloc(c, sizeof *r);
    if (!r)
        return -1;
    r->kind = t ? RTE_TABLE : RTE_PLAIN_TABLE;
    r->table = t;
    r->refname = rv ? rv->relname : NULL;
    r->relname = r->refname;
    rw_scope_add(sc, r);
    return 0;
}

/* ---- foreign keys -------------------------------------------------------------- */

static int fk_pair(rw_ctx *c, const ph_schema_column *local, const PgQuery__RangeVar *pktable,
                   const char *refname, int location)
{
    int failed = 0;
    const ph_schema_table *rt = lookup(c, pktable, &failed);
    if (failed)
        return -1;
    const ph_schema_column *ref = refname ? ph_schema_find_column(rt, refname) : NULL;
    if (local && !refname)
        return rw_refuse(c, location,
                         "phantom: the foreign key on %s must name the referenced column",
                         local->qualified);
    if (!local && !ref)
        return 0;
    c->touched = 1;
    if (!local)
        return rw_refuse(c, location,
                         "phantom: cannot apply FOREIGN KEY from a plaintext column to %s (%s): "
                         "the referenced values are ciphertext",
                         ref->qualified, ph_enc_mode_name(ref->mode));
    if (!ref)
        return rw_refuse(c, location,
                         "phantom: cannot apply FOREIGN KEY from %s (%s) to a plaintext column",
                         local->qualified, ph_enc_mode_name(local->mode));
    if (!rw_mode_allows(local, OP_EQ))
        return rw_refuse_mode(c, location, local, "FOREIGN KEY");
    if (!rw_same_domain(local, ref))
        return rw_refuse(c, location,
                         "phantom: cannot apply FOREIGN KEY from %s to %s: they are not in one "
                         "key domain (share one with `key:` in the encrypt config)",
                         local->qualified, ref->qualified);
    return 0;
}

static int fk_constraint(rw_ctx *c, const ph_schema_table *t, const ph_schema_column *colcon,
                         const PgQuery__Constraint *con)
{
    if (colcon) /* column constraint: REFERENCES t(x) */
        return fk_pair(c, colcon, con->pktable, con->n_pk_attrs ? str_node(con->pk_attrs[0]) : NULL,
                       con->location);
    for (size_t i = 0; i < con->n_fk_attrs; i++) {
        const ph_schema_column *local = ph_schema_find_column(t, str_node(con->fk_attrs[i]));
        const char *ref = i < con->n_pk_attrs ? str_node(con->pk_attrs[i]) : NULL;
        if (fk_pair(c, local, con->pktable, ref, con->location) != 0)
            return -1;
    }
    return 0;
}

/* ---- columns -------------------------------------------------------------------- */

static int declared_type(rw_ctx *c, const ph_schema_column *col, const PgQuery__TypeName *tn,
                         int location)
{
    ph_logical_type t;
    const char *name = tn ? rw_last_name(tn->names, tn->n_names) : NULL;
    if (!tn || tn->n_array_bounds || tn->setof || tn->pct_type)
        return rw_refuse(c, location,
                         "phantom: %s must be declared with a scalar type (arrays and %%TYPE are "
                         "not supported)",
                         col->qualified);
    /* bytea is the storage type itself: what a pg_dump taken through the
     * proxy declares, since the catalog holds bytea (token columns hold
     * tokens as text, which is also what such a dump declares for them). */
    if (name && strcmp(name, "bytea") == 0 && col->mode != PH_MODE_TOKEN)
        return 0;
    if (!name || ph_logical_type_from_catalog(name, &t) != 0 ||
        !ph_logical_type_compatible(t, col->type))
        return rw_refuse(c, location,
                         "phantom: %s is declared as %s but configured as %s; set `type:` in "
                         "the encrypt config or declare it as %s",
                         col->qualified, name ? name : "another type",
                         ph_logical_type_name(col->type), ph_logical_type_name(col->type));
    return 0;
}

static int refuse_default(rw_ctx *c, const ph_schema_column *col, int location)
{
    return rw_refuse(c, location,
                     "phantom: cannot apply DEFAULT to %s (%s): the default would be stored as "
                     "plaintext; let the application supply the value",
                     col->qualified, ph_enc_mode_name(col->mode));
}

static int column_constraint(rw_ctx *c, const ph_schema_column *col, const PgQuery__Constraint *k)
{
    switch (k->contype) {
    case PG_QUERY__CONSTR_TYPE__CONSTR_NULL:
    case PG_QUERY__CONSTR_TYPE__CONSTR_NOTNULL:
    case PG_QUERY__CONSTR_TYPE__CONSTR_ATTR_DEFERRABLE:
    case PG_QUERY__CONSTR_TYPE__CONSTR_ATTR_NOT_DEFERRABLE:
    case PG_QUERY__CONSTR_TYPE__CONSTR_ATTR_DEFERRED:
    case PG_QUERY__CONSTR_TYPE__CONSTR_ATTR_IMMEDIATE:
        return 0;
    case PG_QUERY__CONSTR_TYPE__CONSTR_DEFAULT:
        return refuse_default(c, col, k->location);
    case PG_QUERY__CONSTR_TYPE__CONSTR_CHECK:
        return rw_refuse_op(c, k->location, col, "a CHECK constraint");
    case PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY:
    case PG_QUERY__CONSTR_TYPE__CONSTR_UNIQUE:
        if (!rw_mode_allows(col, OP_UNIQUE))
            return rw_refuse_mode(
                c, k->location, col,
                k->contype == PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY ? "PRIMARY KEY" : "UNIQUE");
        return 0;
    case PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN:
        return fk_constraint(c, NULL, col, k);
    case PG_QUERY__CONSTR_TYPE__CONSTR_IDENTITY:
        return rw_refuse_op(c, k->location, col, "GENERATED ... AS IDENTITY");
    case PG_QUERY__CONSTR_TYPE__CONSTR_GENERATED:
        return rw_refuse_op(c, k->location, col, "GENERATED ... STORED");
    default:
        return rw_refuse_op(c, k->location, col, "an exclusion constraint");
    }
}

static int protected_column(rw_ctx *c, const ph_schema_column *col, const PgQuery__ColumnDef *cd)
{
    c->touched = 1;
    if (declared_type(c, col, cd->type_name, cd->location) != 0)
        return -1;
    if (cd->coll_clause)
        return rw_refuse_op(c, cd->location, col, "COLLATE");
    if (cd->raw_default || cd->cooked_default)
        return refuse_default(c, col, cd->location);
    if (has_str(cd->identity) || has_str(cd->generated))
        return rw_refuse_op(c, cd->location, col, "GENERATED / IDENTITY");
    for (size_t i = 0; i < cd->n_constraints; i++) {
        const rw_node *n = cd->constraints[i];
        if (n && n->node_case == PG_QUERY__NODE__NODE_CONSTRAINT &&
            column_constraint(c, col, n->constraint) != 0)
            return -1;
    }
    rw_edit e = {.kind = EDIT_TEXT, .text = col->mode == PH_MODE_TOKEN ? "text" : "bytea"};
    if (rw_typename_span(c, cd->type_name, &e.start, &e.end) != 0)
        return -1;
    return rw_add_edit(c, &e);
}

/* A plaintext column may still reference a protected one. */
static int plain_column(rw_ctx *c, const PgQuery__ColumnDef *cd)
{
    for (size_t i = 0; i < cd->n_constraints; i++) {
        const rw_node *n = cd->constraints[i];
        if (n && n->node_case == PG_QUERY__NODE__NODE_CONSTRAINT &&
            n->constraint->contype == PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN &&
            fk_pair(c, NULL, n->constraint->pktable,
                    n->constraint->n_pk_attrs ? str_node(n->constraint->pk_attrs[0]) : NULL,
                    n->constraint->location) != 0)
            return -1;
    }
    return 0;
}

static int column_def(rw_ctx *c, const ph_schema_table *t, const PgQuery__ColumnDef *cd)
{
    const ph_schema_column *col = ph_schema_find_column(t, cd->colname);
    return col ? protected_column(c, col, cd) : plain_column(c, cd);
}

/* ---- table constraints ------------------------------------------------------------ */

static int table_constraint(rw_ctx *c, rw_scope *sc, const ph_schema_table *t,
                            const PgQuery__Constraint *k)
{
    const ph_schema_column *col;
    int loc = -1;
    switch (k->contype) {
    case PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY:
    case PG_QUERY__CONSTR_TYPE__CONSTR_UNIQUE:
        for (size_t i = 0; i < k->n_keys; i++)
            if ((col = ph_schema_find_column(t, str_node(k->keys[i])))) {
                c->touched = 1;
                if (column_constraint(c, col, k) != 0)
                    return -1;
            }
        return 0;
    case PG_QUERY__CONSTR_TYPE__CONSTR_FOREIGN:
        return fk_constraint(c, t, NULL, k);
    case PG_QUERY__CONSTR_TYPE__CONSTR_CHECK:
    case PG_QUERY__CONSTR_TYPE__CONSTR_EXCLUSION:
        if (rw_find_protected(c, sc, k->raw_expr, &col, &loc) < 0)
            return -1;
        for (size_t i = 0; !col && i < k->n_exclusions; i++)
            if (rw_find_protected(c, sc, k->exclusions[i], &col, &loc) < 0)
                return -1;
        if (!col && rw_find_protected(c, sc, k->where_clause, &col, &loc) < 0)
            return -1;
        if (!col && k->contype == PG_QUERY__CONSTR_TYPE__CONSTR_EXCLUSION)
            for (size_t i = 0; !col && i < k->n_exclusions; i++) {
                /* exclusions are (IndexElem, operator) pairs naming columns */
                const rw_node *pair = k->exclusions[i];
                const rw_node *el =
                    pair && pair->node_case == PG_QUERY__NODE__NODE_LIST && pair->list->n_items
                        ? pair->list->items[0]
                        : NULL;
                if (el && el->node_case == PG_QUERY__NODE__NODE_INDEX_ELEM)
                    col = ph_schema_find_column(t, el->index_elem->name);
            }
        if (col)
            return rw_refuse_op(c, k->location, col,
                                k->contype == PG_QUERY__CONSTR_TYPE__CONSTR_CHECK
                                    ? "a CHECK constraint"
                                    : "an exclusion constraint");
        return 0;
    default:
        return 0;
    }
}

/* ---- statements ------------------------------------------------------------------- */

static int partition_spec(rw_ctx *c, rw_scope *sc, const ph_schema_table *t,
                          const PgQuery__PartitionSpec *ps)
{
    for (size_t i = 0; ps && i < ps->n_part_params; i++) {
        const rw_node *n = ps->part_params[i];
        if (!n || n->node_case != PG_QUERY__NODE__NODE_PARTITION_ELEM)
            continue;
        const PgQuery__PartitionElem *pe = n->partition_elem;
        const ph_schema_column *col = ph_schema_find_column(t, pe->name);
        int loc = ps->location;
        if (!col && rw_find_protected(c, sc, pe->expr, &col, &loc) < 0)
            return -1;
        if (col)
            return rw_refuse_op(c, loc, col, "PARTITION BY");
    }
    return 0;
}

int rw_create_table(rw_ctx *c, const PgQuery__CreateStmt *cs)
{
    int failed = 0;
    const ph_schema_table *t = lookup(c, cs->relation, &failed);
    if (failed)
        return -1;
    for (size_t i = 0; i < cs->n_inh_relations; i++) {
        const rw_node *n = cs->inh_relations[i];
        if (!n || n->node_case != PG_QUERY__NODE__NODE_RANGE_VAR)
            continue;
        const ph_schema_table *parent = lookup(c, n->range_var, &failed);
        if (failed)
            return -1;
        if (parent)
            return rw_refuse(c, n->range_var->location,
                             "phantom: INHERITS / PARTITION OF protected table %s is not "
                             "supported (the new table would not be protected)",
                             parent->name);
    }
    if (t && cs->of_typename)
        return rw_refuse(c, cs->relation->location,
                         "phantom: typed table (OF type) %s cannot have protected columns",
                         t->name);
    rw_scope sc;
    if (table_scope(c, &sc, cs->relation, t) != 0 || partition_spec(c, &sc, t, cs->partspec) != 0)
        return -1;
    for (size_t i = 0; i < cs->n_table_elts; i++) {
        const rw_node *n = cs->table_elts[i];
        if (!n)
            continue;
        if (n->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF) {
            if (column_def(c, t, n->column_def) != 0)
                return -1;
        } else if (n->node_case == PG_QUERY__NODE__NODE_CONSTRAINT) {
            if (table_constraint(c, &sc, t, n->constraint) != 0)
                return -1;
        }
    }
    for (size_t i = 0; i < cs->n_constraints; i++)
        if (cs->constraints[i] &&
            cs->constraints[i]->node_case == PG_QUERY__NODE__NODE_CONSTRAINT &&
            table_constraint(c, &sc, t, cs->constraints[i]->constraint) != 0)
            return -1;
    return 0;
}

static int alter_cmd(rw_ctx *c, rw_scope *sc, const ph_schema_table *t,
                     const PgQuery__AlterTableCmd *cmd)
{
    const ph_schema_column *col = has_str(cmd->name) ? ph_schema_find_column(t, cmd->name) : NULL;
    const rw_node *def = cmd->def;
    switch (cmd->subtype) {
    case PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn:
        if (def && def->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF)
            return column_def(c, t, def->column_def);
        return 0;
    case PG_QUERY__ALTER_TABLE_TYPE__AT_ColumnDefault:
    case PG_QUERY__ALTER_TABLE_TYPE__AT_CookedColumnDefault:
        if (col && def)
            return rw_refuse(c, -1,
                             "phantom: cannot apply DEFAULT to %s (%s): the default would be "
                             "stored as plaintext",
                             col->qualified, ph_enc_mode_name(col->mode));
        return 0;
    case PG_QUERY__ALTER_TABLE_TYPE__AT_AlterColumnType:
        if (col)
            return rw_refuse(c, -1,
                             "phantom: cannot apply ALTER COLUMN ... TYPE to %s (%s): it is "
                             "stored as ciphertext; change `type:` in the encrypt config and "
                             "migrate",
                             col->qualified, ph_enc_mode_name(col->mode));
        return 0;
    case PG_QUERY__ALTER_TABLE_TYPE__AT_AddIdentity:
    case PG_QUERY__ALTER_TABLE_TYPE__AT_SetIdentity:
        if (col)
            return rw_refuse_op(c, -1, col, "GENERATED / IDENTITY");
        return 0;
    case PG_QUERY__ALTER_TABLE_TYPE__AT_AddConstraint:
        if (def && def->node_case == PG_QUERY__NODE__NODE_CONSTRAINT)
            return table_constraint(c, sc, t, def->constraint);
        return 0;
    default:
        return 0;
    }
}

int rw_alter_table(rw_ctx *c, const PgQuery__AlterTableStmt *as)
{
    int failed = 0;
    const ph_schema_table *t = lookup(c, as->relation, &failed);
    if (failed)
        return -1;
    rw_scope sc;
    if (table_scope(c, &sc, as->relation, t) != 0)
        return -1;
    for (size_t i = 0; i < as->n_cmds; i++) {
        const rw_node *n = as->cmds[i];
        if (n && n->node_case == PG_QUERY__NODE__NODE_ALTER_TABLE_CMD &&
            alter_cmd(c, &sc, t, n->alter_table_cmd) != 0)
            return -1;
    }
    return 0;
}

int rw_create_index(rw_ctx *c, const PgQuery__IndexStmt *is)
{
    int failed = 0;
    const ph_schema_table *t = lookup(c, is->relation, &failed);
    if (failed)
        return -1;
    rw_scope sc;
    if (table_scope(c, &sc, is->relation, t) != 0)
        return -1;
    for (size_t i = 0; i < is->n_index_params; i++) {
        const rw_node *n = is->index_params[i];
        if (!n || n->node_case != PG_QUERY__NODE__NODE_INDEX_ELEM)
            continue;
        const PgQuery__IndexElem *ie = n->index_elem;
        const ph_schema_column *col = has_str(ie->name) ? ph_schema_find_column(t, ie->name) : NULL;
        int loc = -1;
        if (col) {
            c->touched = 1;
            if (is->unique && !rw_mode_allows(col, OP_UNIQUE))
                return rw_refuse_mode(c, -1, col, "a UNIQUE index");
            if (ie->n_opclass || ie->n_collation)
                return rw_refuse_op(c, -1, col, "an operator class or collation");
            continue;
        }
        if (rw_find_protected(c, &sc, ie->expr, &col, &loc) < 0)
            return -1;
        if (col)
            return rw_refuse_op(c, loc, col, "an index expression");
    }
    return rw_walk(c, &sc, is->where_clause);
}

int rw_rename(rw_ctx *c, const PgQuery__RenameStmt *rs)
{
    int failed = 0;
    const ph_schema_table *t = lookup(c, rs->relation, &failed);
    if (failed)
        return -1;
    switch (rs->rename_type) {
    case PG_QUERY__OBJECT_TYPE__OBJECT_TABLE:
        if (t)
            return rw_refuse(c, rs->relation->location,
                             "phantom: renaming protected table %s through the proxy is not "
                             "supported; rename it in the encrypt config at the same time",
                             t->name);
        return 0;
    case PG_QUERY__OBJECT_TYPE__OBJECT_COLUMN: {
        const ph_schema_column *col = ph_schema_find_column(t, rs->subname);
        if (col)
            return rw_refuse(c, rs->relation->location,
                             "phantom: renaming protected column %s through the proxy is not "
                             "supported; rename it in the encrypt config at the same time",
                             col->qualified);
        return 0;
    }
    case PG_QUERY__OBJECT_TYPE__OBJECT_SCHEMA:
        for (size_t i = 0; i < c->schema->ntables; i++)
            if (has_str(rs->subname) && strcmp(c->schema->tables[i]->schema, rs->subname) == 0)
                return rw_refuse(c, -1,
                                 "phantom: renaming schema %s, which holds protected tables, is "
                                 "not supported",
                                 rs->subname);
        return 0;
    default:
        return 0;
    }
}
