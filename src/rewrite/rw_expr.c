/*
 * rw_expr.c — expressions: what may be done with a protected column.
 *
 * Owns: classifying a value position (protected column, literal, parameter,
 * NULL, DEFAULT or plain), binding a literal/parameter to a column's policy
 * (the encrypt edit, the parameter plan), comparisons, IN, BETWEEN, ANY,
 * subquery comparisons, aggregates, window clauses, ORDER BY / GROUP BY
 * items, and the generic walk: every node type not handled by name is
 * walked through its protobuf descriptor, and a protected column found
 * inside it is refused (fail closed).
 */
#include "rewrite/rw_internal.h"

#include <stdio.h>
#include <string.h>

static int walk_desc(rw_ctx *c, rw_scope *sc, const rw_node *n, const char *what);
static int compare_nodes(rw_ctx *c, rw_scope *sc, const rw_node *l, const rw_node *r, rw_op op,
                         rw_eqf eq, const char *opname, int location);

/* ---- messages ---------------------------------------------------------------- */

static int refuse_in(rw_ctx *c, int location, const ph_schema_column *col, const char *what)
{
    return rw_refuse(c, location,
                     "phantom: cannot use %s (%s) in %s: the database only holds ciphertext",
                     col->qualified, ph_enc_mode_name(col->mode), what);
}

/* prefix + arg + suffix, in the arena (message fragments). */
static const char *cat3(rw_ctx *c, const char *prefix, const char *arg, const char *suffix)
{
    arg = arg ? arg : "";
    size_t a = strlen(prefix), b = strlen(arg), d = strlen(suffix);
    char *s = rw_alloc(c, a + b + d + 1);
    if (!s)
        return "an operator";
    memcpy(s, prefix, a);
    memcpy(s + a, arg, b);
    memcpy(s + a + b, suffix, d + 1);
    return s;
}

static const char *operator_desc(rw_ctx *c, const char *op)
{
    static const struct {
        const char *op, *desc;
    } known[] = {
        {"~~", "LIKE"},
        {"!~~", "NOT LIKE"},
        {"~~*", "ILIKE"},
        {"!~~*", "NOT ILIKE"},
        {"@@", "full-text search (@@)"},
        {"||", "concatenation (||)"},
    };
    if (!op)
        return "an operator";
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(op, known[i].op) == 0)
            return known[i].desc;
    if (strcmp(op, "~") == 0 || strcmp(op, "~*") == 0 || strcmp(op, "!~") == 0 ||
        strcmp(op, "!~*") == 0)
        return cat3(c, "regular expression match (", op, ")");
    if (strlen(op) == 1 && strchr("+-*/%^", op[0]))
        return cat3(c, "arithmetic (", op, ")");
    return cat3(c, "operator ", op, "");
}

static int node_location(const rw_node *n)
{
    if (!n)
        return -1;
    switch (n->node_case) {
    case PG_QUERY__NODE__NODE_COLUMN_REF:
        return n->column_ref->location;
    case PG_QUERY__NODE__NODE_A_CONST:
        return n->a_const->location;
    case PG_QUERY__NODE__NODE_PARAM_REF:
        return n->param_ref->location;
    case PG_QUERY__NODE__NODE_A_EXPR:
        return n->a_expr->location;
    case PG_QUERY__NODE__NODE_FUNC_CALL:
        return n->func_call->location;
    case PG_QUERY__NODE__NODE_TYPE_CAST:
        return n->type_cast->location;
    case PG_QUERY__NODE__NODE_SUB_LINK:
        return n->sub_link->location;
    default:
        return -1;
    }
}

/* ---- generic walk ------------------------------------------------------------- */

static const ProtobufCMessage *node_inner(const rw_node *n)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&pg_query__node__descriptor, n->node_case);
    if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return NULL;
    return *(ProtobufCMessage *const *)(const void *)((const char *)n + f->offset);
}

/* Calls visit for every Node reachable from m through fields that are not
 * Nodes themselves (lists, sub-messages); stops at the first nonzero result
 * and returns it. The one walker behind every generic search below. */
typedef int (*node_visit_fn)(void *arg, const rw_node *n);

static int each_child_node(const ProtobufCMessage *m, node_visit_fn visit, void *arg)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(const void *)(base + f->quantifier_offset) != f->id)
            continue;
        size_t count = 1;
        ProtobufCMessage *const *items =
            (ProtobufCMessage *const *)(const void *)(base + f->offset);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            count = *(const size_t *)(const void *)(base + f->quantifier_offset);
            items = *(ProtobufCMessage *const *const *)(const void *)(base + f->offset);
        }
        for (size_t k = 0; k < count; k++) {
            if (!items[k])
                continue;
            int rc = f->descriptor == &pg_query__node__descriptor
                         ? visit(arg, (const rw_node *)items[k])
                         : each_child_node(items[k], visit, arg);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

typedef struct {
    rw_ctx *c;
    rw_scope *sc;
    const char *what;
} walk_arg;

static int walk_visit(void *arg, const rw_node *n)
{
    walk_arg *a = arg;
    return walk_desc(a->c, a->sc, n, a->what);
}

static int walk_message(rw_ctx *c, rw_scope *sc, const ProtobufCMessage *m, const char *what)
{
    walk_arg a = {c, sc, what};
    return each_child_node(m, walk_visit, &a) != 0 ? -1 : 0;
}

static const char *node_desc(const rw_node *n)
{
    switch (n->node_case) {
    case PG_QUERY__NODE__NODE_CASE_EXPR:
        return "a CASE expression";
    case PG_QUERY__NODE__NODE_COALESCE_EXPR:
        return "COALESCE";
    case PG_QUERY__NODE__NODE_MIN_MAX_EXPR:
        return "GREATEST/LEAST";
    case PG_QUERY__NODE__NODE_A_INDIRECTION:
        return "a subscript or field selection";
    case PG_QUERY__NODE__NODE_COLLATE_CLAUSE:
        return "COLLATE";
    case PG_QUERY__NODE__NODE_ROW_EXPR:
        return "a row constructor";
    case PG_QUERY__NODE__NODE_A_ARRAY_EXPR:
        return "an ARRAY constructor";
    case PG_QUERY__NODE__NODE_BOOLEAN_TEST:
        return "IS TRUE/IS FALSE";
    case PG_QUERY__NODE__NODE_XML_EXPR:
    case PG_QUERY__NODE__NODE_XML_SERIALIZE:
        return "an XML function";
    case PG_QUERY__NODE__NODE_GROUPING_FUNC:
        return "GROUPING()";
    case PG_QUERY__NODE__NODE_BOOL_EXPR:
        return "a boolean expression";
    default:
        return "this expression";
    }
}

/* ---- values ------------------------------------------------------------------ */

int rw_release(rw_ctx *c, const rw_ev *v, const char *what, int location)
{
    switch (v->kind) {
    case EV_PARAM:
        return rw_param_plain(c, v->param, v->location);
    case EV_PROT:
        return refuse_in(c, location >= 0 ? location : v->location, v->col, what);
    case EV_STAR:
        if (v->covers_protected)
            return refuse_in(c, v->location, v->star_example, "a whole-row reference");
        return 0;
    default:
        return 0;
    }
}

int rw_check_use(rw_ctx *c, const rw_ev *v, rw_op op, const char *opname, int location)
{
    if (v->kind == EV_PROT) {
        c->touched = 1;
        if (!rw_mode_allows(v->col, op))
            return rw_refuse_mode(c, location >= 0 ? location : v->location, v->col, opname);
        return 0;
    }
    return rw_release(c, v, opname, location);
}

static int sublink_value(rw_ctx *c, rw_scope *sc, const PgQuery__SubLink *sl, rw_ev *out);

int rw_classify(rw_ctx *c, rw_scope *sc, const rw_node *n, rw_ev *out)
{
    memset(out, 0, sizeof *out);
    out->location = node_location(n);
    if (!n)
        return 0;
    switch (n->node_case) {
    case PG_QUERY__NODE__NODE_COLUMN_REF:
        return rw_resolve_columnref(c, sc, n->column_ref, out);
    case PG_QUERY__NODE__NODE_A_CONST:
        out->kind = n->a_const->isnull ? EV_NULL : EV_CONST;
        out->aconst = n->a_const;
        return 0;
    case PG_QUERY__NODE__NODE_PARAM_REF:
        out->kind = EV_PARAM;
        out->param = n->param_ref->number;
        return 0;
    case PG_QUERY__NODE__NODE_SET_TO_DEFAULT:
        out->kind = EV_DEFAULT;
        return 0;
    case PG_QUERY__NODE__NODE_TYPE_CAST: {
        const PgQuery__TypeCast *tc = n->type_cast;
        const rw_node *arg = tc->arg;
        if (arg && (arg->node_case == PG_QUERY__NODE__NODE_A_CONST ||
                    arg->node_case == PG_QUERY__NODE__NODE_PARAM_REF)) {
            if (rw_classify(c, sc, arg, out) != 0)
                return -1;
            out->cast = tc;
            return 0;
        }
        break;
    }
    case PG_QUERY__NODE__NODE_SUB_LINK:
        if (n->sub_link->sub_link_type == PG_QUERY__SUB_LINK_TYPE__EXPR_SUBLINK)
            return sublink_value(c, sc, n->sub_link, out);
        break;
    default:
        break;
    }
    out->kind = EV_PLAIN;
    return walk_desc(c, sc, n, node_desc(n));
}

static int cast_compatible(const ph_schema_column *col, const PgQuery__TypeCast *tc)
{
    const PgQuery__TypeName *tn = tc->type_name;
    ph_logical_type t;
    if (!tn || tn->n_array_bounds || tn->pct_type || tn->setof)
        return 0;
    const char *name = rw_last_name(tn->names, tn->n_names);
    return name && ph_logical_type_from_catalog(name, &t) == 0 &&
           ph_logical_type_compatible(t, col->type);
}

static const char *cast_name(const PgQuery__TypeCast *tc)
{
    const char *n =
        tc->type_name ? rw_last_name(tc->type_name->names, tc->type_name->n_names) : NULL;
    return n ? n : "another type";
}

/* The literal's text as PostgreSQL reads it. */
static int literal_text(rw_ctx *c, const PgQuery__AConst *k, char **val, size_t *len, char **src)
{
    char num[16];
    *src = NULL;
    switch (k->val_case) {
    case PG_QUERY__A__CONST__VAL_SVAL:
        *val = *src = k->sval->sval;
        break;
    case PG_QUERY__A__CONST__VAL_FVAL:
        *val = *src = k->fval->fval;
        break;
    case PG_QUERY__A__CONST__VAL_BOOLVAL:
        *val = k->boolval->boolval ? "true" : "false";
        break;
    case PG_QUERY__A__CONST__VAL_IVAL:
        snprintf(num, sizeof num, "%d", k->ival ? k->ival->ival : 0);
        if (!(*val = rw_alloc(c, strlen(num) + 1)))
            return -1;
        memcpy(*val, num, strlen(num) + 1);
        break;
    default:
        return rw_refuse(c, k->location,
                         "phantom: bit-string literals cannot be stored in protected columns");
    }
    *len = strlen(*val);
    return 0;
}

/* The edit that encrypts literal v for col, over [start, end) (the value's
 * own span when start < 0). */
static int bind_const(rw_ctx *c, const rw_ev *v, const ph_schema_column *col, rw_eqf form,
                      int lookup, int start, int end)
{
    rw_edit e = {.kind = EDIT_ENCRYPT,
                 .col = col,
                 .vstart = v->aconst->location,
                 .form = form,
                 .swapped = start >= 0,
                 .lookup = lookup};
    char *val = NULL;
    if (literal_text(c, v->aconst, &val, &e.vlen, &e.src) != 0)
        return -1;
    /* "true"/"false" are static strings: copy so that wiping is harmless. */
    if (!(e.value = rw_alloc(c, e.vlen + 1)))
        return -1;
    memcpy(e.value, val, e.vlen + 1);
    if (start >= 0) {
        e.start = start;
        e.end = end;
    } else if (rw_value_span(c, v, &e.start, &e.end) != 0 ||
               (form != EQF_NONE && rw_unparen_span(c, &e.start, &e.end) != 0)) {
        return -1;
    }
    return rw_add_edit(c, &e);
}

/* An edit replacing [start, end) (the value's span when start < 0) by text. */
static int bind_text(rw_ctx *c, const rw_ev *v, const char *text, int start, int end)
{
    rw_edit e = {.kind = EDIT_TEXT, .text = text, .vstart = -1, .start = start, .end = end};
    if (start < 0 && rw_value_span(c, v, &e.start, &e.end) != 0)
        return -1;
    return rw_add_edit(c, &e);
}

/* A copy of the text [start, end) in the arena. */
static char *text_copy(rw_ctx *c, const char *p, size_t n)
{
    char *t = rw_alloc(c, n + 1);
    if (t)
        memcpy(t, p, n);
    return t;
}

/* $n bound to col: as it is (a cast around it dropped) or, for a column with
 * several live versions, as ANY ($n), ALL ($n) or $n[1], ..., $n[N] over
 * [start, end) (the value's span when start < 0). */
static int bind_param(rw_ctx *c, const rw_ev *v, const ph_schema_column *col, rw_eqf form,
                      int versions, int stored, int start, int end)
{
    if (rw_param_bind(c, v->param, col, v->location) != 0 ||
        rw_param_versions(c, v->param, form != EQF_NONE, v->location) != 0)
        return -1;
    if (stored)
        rw_param_stored(c, v->param);
    if (form == EQF_NONE && !v->cast)
        return 0;
    char buf[16 * (PH_RW_MAX_VERSIONS + 1)];
    size_t o = 0;
    if (form == EQF_NONE)
        o = (size_t)snprintf(buf, sizeof buf, "$%d", v->param);
    else if (form != EQF_LIST)
        o = (size_t)snprintf(buf, sizeof buf, "%s ($%d)", form == EQF_ANY ? "ANY" : "ALL",
                             v->param);
    else
        for (int i = 1; i <= versions && o < sizeof buf; i++)
            o += (size_t)snprintf(buf + o, sizeof buf - o, "%s$%d[%d]", i > 1 ? ", " : "", v->param,
                                  i);
    if (o >= sizeof buf)
        return rw_internal(c, "phantom: internal error while rewriting the statement");
    if (form != EQF_NONE && start < 0 &&
        (rw_value_span(c, v, &start, &end) != 0 || rw_unparen_span(c, &start, &end) != 0))
        return -1;
    char *p = text_copy(c, buf, o);
    return p ? bind_text(c, v, p, start, end) : -1;
}

static int refuse_rotation(rw_ctx *c, int location, const ph_schema_column *col, const char *opname,
                           int versions)
{
    return rw_refuse(c, location,
                     "phantom: cannot apply %s to %s (%s) with a value while a key rotation is in "
                     "progress: its key domain %s has %d live key versions and rows written under "
                     "an older one would not match; use =, <>, IN or NOT IN with the column on "
                     "the left",
                     opname, col->qualified, ph_enc_mode_name(col->mode), col->key_domain,
                     versions);
}

static int refuse_plain(rw_ctx *c, const rw_ev *v, const ph_schema_column *col, rw_op op,
                        int location)
{
    int loc = v->location >= 0 ? v->location : location;
    if (op == OP_ASSIGN)
        return rw_refuse(c, loc,
                         "phantom: cannot store a plaintext column or computed value in %s (%s): "
                         "only literals, parameters, NULL, DEFAULT or a column of the same key "
                         "domain can be stored",
                         col->qualified, ph_enc_mode_name(col->mode));
    return rw_refuse(c, loc,
                     "phantom: cannot compare %s (%s) with a plaintext column or computed value: "
                     "the database only holds ciphertext",
                     col->qualified, ph_enc_mode_name(col->mode));
}

/* What every binding of a value to col checks first. */
static int bind_checks(rw_ctx *c, const rw_ev *v, const ph_schema_column *col, rw_op op,
                       const char *opname, int location)
{
    c->touched = 1;
    if (!rw_mode_allows(col, op))
        return rw_refuse_mode(c, location, col, opname);
    if (v->cast && (v->kind == EV_CONST || v->kind == EV_PARAM) && !cast_compatible(col, v->cast))
        return rw_refuse(c, v->cast->location >= 0 ? v->cast->location : v->location,
                         "phantom: cannot apply a cast to %s to a value for %s (%s): the "
                         "column's type is %s",
                         cast_name(v->cast), col->qualified, ph_enc_mode_name(col->mode),
                         ph_logical_type_name(col->type));
    return 0;
}

/* How many ciphertexts v must match when compared with col (1, or every
 * live version's); -1 when it cannot be done in the form eq. */
static int value_versions(rw_ctx *c, const rw_ev *v, const ph_schema_column *col, rw_op op,
                          rw_eqf eq, const char *opname, int location)
{
    if (op != OP_EQ || (v->kind != EV_CONST && v->kind != EV_PARAM))
        return 1;
    int n = rw_eq_versions(c, col);
    if (n > 1 && (eq == EQF_NONE || n > PH_RW_MAX_VERSIONS))
        return refuse_rotation(c, v->location >= 0 ? v->location : location, col, opname, n);
    return n;
}

int rw_bind(rw_ctx *c, const rw_ev *v, const ph_schema_column *col, rw_op op, rw_eqf eq,
            const char *opname, int location)
{
    if (bind_checks(c, v, col, op, opname, location) != 0)
        return -1;
    int versions = value_versions(c, v, col, op, eq, opname, location);
    if (versions < 0)
        return -1;
    rw_eqf form = versions > 1 ? eq : EQF_NONE;
    switch (v->kind) {
    case EV_CONST:
        return bind_const(c, v, col, form, op != OP_ASSIGN, -1, -1);
    case EV_NULL:
        return v->cast ? bind_text(c, v, "NULL", -1, -1) : 0;
    case EV_PARAM:
        return bind_param(c, v, col, form, versions, op == OP_ASSIGN, -1, -1);
    case EV_DEFAULT:
        return 0;
    case EV_PROT:
        if (rw_same_domain(v->col, col))
            return 0;
        if (op == OP_ASSIGN)
            return rw_refuse(c, v->location >= 0 ? v->location : location,
                             "phantom: cannot store %s (%s) in %s (%s): they are not in one key "
                             "domain",
                             v->col->qualified, ph_enc_mode_name(v->col->mode), col->qualified,
                             ph_enc_mode_name(col->mode));
        return rw_refuse(c, location,
                         "phantom: cannot compare %s (%s) with %s (%s): they are not in one key "
                         "domain (share one with `key:` in the encrypt config)",
                         col->qualified, ph_enc_mode_name(col->mode), v->col->qualified,
                         ph_enc_mode_name(v->col->mode));
    case EV_STAR:
        return refuse_in(c, v->location, v->covers_protected ? v->star_example : col,
                         "a whole-row reference");
    case EV_PLAIN:
    default:
        return refuse_plain(c, v, col, op, location);
    }
}

/* ---- comparisons ---------------------------------------------------------------- */

/* `v = col` / `v <> col` where col's key domain has several live versions:
 * the text becomes `col = ANY (...)` / `col <> ALL (...)` (the value's span
 * gets the column's text, the column's span the value's ciphertexts). Only
 * when nothing but the operator lies between them. */
static int bind_swapped(rw_ctx *c, const rw_ev *v, const ph_schema_column *col,
                        const PgQuery__ColumnRef *cr, rw_eqf eq, const char *opname, int location)
{
    if (bind_checks(c, v, col, OP_EQ, opname, location) != 0)
        return -1;
    int versions = value_versions(c, v, col, OP_EQ, eq, opname, location);
    int vs, ve, cs, ce;
    if (versions < 0 || rw_value_span(c, v, &vs, &ve) != 0 ||
        (versions > 1 && rw_unparen_span(c, &vs, &ve) != 0) ||
        rw_columnref_span(c, cr, &cs, &ce) != 0)
        return -1;
    if (ve > cs || !rw_only_operator_between(c, ve, cs))
        return c->failed ? -1 : refuse_rotation(c, location, col, opname, versions);
    const char *coltext = text_copy(c, c->sql + cs, (size_t)(ce - cs));
    if (!coltext || bind_text(c, v, coltext, vs, ve) != 0)
        return -1;
    if (v->kind == EV_CONST)
        return bind_const(c, v, col, eq, 1, cs, ce);
    return bind_param(c, v, col, eq, versions, 0, cs, ce);
}

/* l compared with r (op; eq: how a value on the right may be expanded for a
 * column with several live versions, EQF_NONE when it cannot; rnode: r's
 * node when it is one, for `v = col`). */
static int compare_evs(rw_ctx *c, const rw_ev *l, const rw_ev *r, const rw_node *rnode, rw_op op,
                       rw_eqf eq, const char *opname, int location)
{
    if (l->kind == EV_PROT && r->kind == EV_PROT) {
        c->touched = 1;
        if (!rw_mode_allows(l->col, op))
            return rw_refuse_mode(c, location, l->col, opname);
        if (!rw_mode_allows(r->col, op))
            return rw_refuse_mode(c, location, r->col, opname);
        return rw_bind(c, r, l->col, op, EQF_NONE, opname, location);
    }
    if (l->kind == EV_PROT)
        return rw_bind(c, r, l->col, op, eq, opname, location);
    if (r->kind == EV_PROT && (eq == EQF_ANY || eq == EQF_ALL) && op == OP_EQ && rnode &&
        rnode->node_case == PG_QUERY__NODE__NODE_COLUMN_REF &&
        (l->kind == EV_CONST || l->kind == EV_PARAM) && rw_mode_allows(r->col, op) &&
        rw_eq_versions(c, r->col) > 1)
        return bind_swapped(c, l, r->col, rnode->column_ref, eq, opname, location);
    if (r->kind == EV_PROT)
        return rw_bind(c, l, r->col, op, EQF_NONE, opname, location);
    if (rw_release(c, l, opname, location) != 0)
        return -1;
    return rw_release(c, r, opname, location);
}

static int compare_op(const char *op, rw_op *out)
{
    if (!op)
        return 0;
    if (strcmp(op, "=") == 0 || strcmp(op, "<>") == 0 || strcmp(op, "!=") == 0) {
        *out = OP_EQ;
        return 1;
    }
    if (strcmp(op, "<") == 0 || strcmp(op, "<=") == 0 || strcmp(op, ">") == 0 ||
        strcmp(op, ">=") == 0) {
        *out = OP_RANGE;
        return 1;
    }
    return 0;
}

static int subquery_outputs(rw_ctx *c, rw_scope *sc, const rw_node *sub, rw_cols *outs);
static void output_ev(const rw_cols *outs, size_t i, int location, rw_ev *ev);

static int row_vs_subquery(rw_ctx *c, rw_scope *sc, const PgQuery__RowExpr *row,
                           const PgQuery__SubLink *sl, rw_op op, const char *opname, int location)
{
    rw_cols outs = {0};
    if (subquery_outputs(c, sc, sl->subselect, &outs) != 0)
        return -1;
    for (size_t i = 0; i < row->n_args; i++) {
        rw_ev le, re;
        if (rw_classify(c, sc, row->args[i], &le) != 0)
            return -1;
        output_ev(&outs, i, sl->location, &re);
        if (compare_evs(c, &le, &re, NULL, op, EQF_NONE, opname, location) != 0)
            return -1;
    }
    return 0;
}

static int compare_nodes(rw_ctx *c, rw_scope *sc, const rw_node *l, const rw_node *r, rw_op op,
                         rw_eqf eq, const char *opname, int location)
{
    /* (a, b) = (x, y) compares column by column (and lexicographically for
     * < and >, which ope preserves column by column). */
    if (l && r && l->node_case == PG_QUERY__NODE__NODE_ROW_EXPR &&
        r->node_case == PG_QUERY__NODE__NODE_ROW_EXPR &&
        l->row_expr->n_args == r->row_expr->n_args) {
        for (size_t i = 0; i < l->row_expr->n_args; i++)
            if (compare_nodes(c, sc, l->row_expr->args[i], r->row_expr->args[i], op, EQF_NONE,
                              opname, location) != 0)
                return -1;
        return 0;
    }
    if (l && r && r->node_case == PG_QUERY__NODE__NODE_ROW_EXPR &&
        l->node_case == PG_QUERY__NODE__NODE_SUB_LINK)
        return compare_nodes(c, sc, r, l, op, EQF_NONE, opname, location);
    if (l && r && l->node_case == PG_QUERY__NODE__NODE_ROW_EXPR &&
        r->node_case == PG_QUERY__NODE__NODE_SUB_LINK &&
        r->sub_link->sub_link_type == PG_QUERY__SUB_LINK_TYPE__EXPR_SUBLINK)
        return row_vs_subquery(c, sc, l->row_expr, r->sub_link, op, opname, location);
    rw_ev le, re;
    if (rw_classify(c, sc, l, &le) != 0 || rw_classify(c, sc, r, &re) != 0)
        return -1;
    return compare_evs(c, &le, &re, r, op, eq, opname, location);
}

/* Both operands of an operator no mode supports. */
static int refuse_operands(rw_ctx *c, rw_scope *sc, const PgQuery__AExpr *e, const char *desc)
{
    rw_ev v;
    const rw_node *ops[2] = {e->lexpr, e->rexpr};
    for (int i = 0; i < 2; i++) {
        if (!ops[i])
            continue;
        if (rw_classify(c, sc, ops[i], &v) != 0)
            return -1;
        if (v.kind == EV_PROT)
            return rw_refuse_op(c, e->location, v.col, desc);
        if (rw_release(c, &v, desc, e->location) != 0)
            return -1;
    }
    return 0;
}

static const rw_node *const *list_items(const rw_node *n, size_t *count)
{
    if (n && n->node_case == PG_QUERY__NODE__NODE_LIST) {
        *count = n->list->n_items;
        return (const rw_node *const *)n->list->items;
    }
    *count = 0;
    return NULL;
}

static int any_all(rw_ctx *c, rw_scope *sc, const PgQuery__AExpr *e, const char *op)
{
    rw_ev l;
    rw_op k;
    int is_cmp = compare_op(op, &k);
    if (rw_classify(c, sc, e->lexpr, &l) != 0)
        return -1;
    if (l.kind != EV_PROT) {
        if (rw_release(c, &l, "ANY/ALL", e->location) != 0)
            return -1;
        return walk_desc(c, sc, e->rexpr, "ANY/ALL");
    }
    if (!is_cmp)
        return rw_refuse_op(c, e->location, l.col, operator_desc(c, op));
    if (!e->rexpr || e->rexpr->node_case != PG_QUERY__NODE__NODE_A_ARRAY_EXPR)
        return rw_refuse(c, e->location,
                         "phantom: cannot apply %s ANY/ALL (array) to %s (%s): list the values "
                         "with IN (...) instead",
                         op, l.col->qualified, ph_enc_mode_name(l.col->mode));
    /* = ANY (ARRAY[...]) and <> ALL (ARRAY[...]) take every version's ciphertext
     * of each element; = ALL and <> ANY cannot. */
    int all = e->kind == PG_QUERY__A__EXPR__KIND__AEXPR_OP_ALL;
    rw_eqf list_form = k == OP_EQ && (strcmp(op, "=") == 0) != all ? EQF_LIST : EQF_NONE;
    const PgQuery__AArrayExpr *a = e->rexpr->a_array_expr;
    for (size_t i = 0; i < a->n_elements; i++) {
        rw_ev r;
        if (rw_classify(c, sc, a->elements[i], &r) != 0 ||
            compare_evs(c, &l, &r, NULL, k, list_form, "ANY/ALL", e->location) != 0)
            return -1;
    }
    return 0;
}

static int aexpr(rw_ctx *c, rw_scope *sc, const PgQuery__AExpr *e)
{
    const char *op = rw_last_name(e->name, e->n_name);
    size_t n;
    const rw_node *const *items;
    rw_op k;
    switch (e->kind) {
    case PG_QUERY__A__EXPR__KIND__AEXPR_OP:
        if (e->lexpr && e->rexpr && compare_op(op, &k))
            return compare_nodes(c, sc, e->lexpr, e->rexpr, k,
                                 k != OP_EQ             ? EQF_NONE
                                 : strcmp(op, "=") == 0 ? EQF_ANY
                                                        : EQF_ALL,
                                 op, e->location);
        return refuse_operands(c, sc, e, operator_desc(c, op));
    case PG_QUERY__A__EXPR__KIND__AEXPR_OP_ANY:
    case PG_QUERY__A__EXPR__KIND__AEXPR_OP_ALL:
        return any_all(c, sc, e, op);
    case PG_QUERY__A__EXPR__KIND__AEXPR_DISTINCT:
    case PG_QUERY__A__EXPR__KIND__AEXPR_NOT_DISTINCT:
        return compare_nodes(c, sc, e->lexpr, e->rexpr, OP_EQ, EQF_NONE,
                             e->kind == PG_QUERY__A__EXPR__KIND__AEXPR_DISTINCT
                                 ? "IS DISTINCT FROM"
                                 : "IS NOT DISTINCT FROM",
                             e->location);
    case PG_QUERY__A__EXPR__KIND__AEXPR_NULLIF:
        return refuse_operands(c, sc, e, "NULLIF");
    case PG_QUERY__A__EXPR__KIND__AEXPR_IN:
        items = list_items(e->rexpr, &n);
        for (size_t i = 0; i < n; i++)
            if (compare_nodes(c, sc, e->lexpr, items[i], OP_EQ, EQF_LIST,
                              op && strcmp(op, "<>") == 0 ? "NOT IN" : "IN", e->location) != 0)
                return -1;
        return 0;
    case PG_QUERY__A__EXPR__KIND__AEXPR_LIKE:
    case PG_QUERY__A__EXPR__KIND__AEXPR_ILIKE:
        return refuse_operands(c, sc, e, operator_desc(c, op));
    case PG_QUERY__A__EXPR__KIND__AEXPR_SIMILAR:
        return refuse_operands(c, sc, e, op && op[0] == '!' ? "NOT SIMILAR TO" : "SIMILAR TO");
    case PG_QUERY__A__EXPR__KIND__AEXPR_BETWEEN:
    case PG_QUERY__A__EXPR__KIND__AEXPR_NOT_BETWEEN:
    case PG_QUERY__A__EXPR__KIND__AEXPR_BETWEEN_SYM:
    case PG_QUERY__A__EXPR__KIND__AEXPR_NOT_BETWEEN_SYM:
        items = list_items(e->rexpr, &n);
        for (size_t i = 0; i < n; i++)
            if (compare_nodes(c, sc, e->lexpr, items[i], OP_RANGE, EQF_NONE, "BETWEEN",
                              e->location) != 0)
                return -1;
        return n == 2 ? 0 : rw_refuse(c, e->location, "phantom: unsupported BETWEEN form");
    default:
        return refuse_operands(c, sc, e, operator_desc(c, op));
    }
}

/* ---- subqueries ----------------------------------------------------------------- */

static int subquery_outputs(rw_ctx *c, rw_scope *sc, const rw_node *sub, rw_cols *outs)
{
    if (!sub || sub->node_case != PG_QUERY__NODE__NODE_SELECT_STMT)
        return walk_desc(c, sc, sub, "a subquery");
    return rw_select(c, sc, sub->select_stmt, NULL, outs);
}

static void output_ev(const rw_cols *outs, size_t i, int location, rw_ev *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->location = location;
    ev->kind = EV_PLAIN;
    if (i >= outs->n)
        return;
    const rw_col *k = &outs->v[i];
    if (k->star) {
        ev->kind = EV_STAR;
        ev->covers_protected = k->star_protected;
        ev->star_example = k->star_example;
    } else if (k->col) {
        ev->kind = EV_PROT;
        ev->col = k->col;
    }
}

static int sublink_value(rw_ctx *c, rw_scope *sc, const PgQuery__SubLink *sl, rw_ev *out)
{
    rw_cols outs = {0};
    if (subquery_outputs(c, sc, sl->subselect, &outs) != 0)
        return -1;
    output_ev(&outs, 0, sl->location, out);
    if (out->kind == EV_STAR && !out->covers_protected)
        out->kind = EV_PLAIN;
    return 0;
}

static int sublink(rw_ctx *c, rw_scope *sc, const PgQuery__SubLink *sl)
{
    rw_cols outs = {0};
    if (subquery_outputs(c, sc, sl->subselect, &outs) != 0)
        return -1;
    switch (sl->sub_link_type) {
    case PG_QUERY__SUB_LINK_TYPE__EXISTS_SUBLINK:
        return 0;
    case PG_QUERY__SUB_LINK_TYPE__ANY_SUBLINK:
    case PG_QUERY__SUB_LINK_TYPE__ALL_SUBLINK:
    case PG_QUERY__SUB_LINK_TYPE__ROWCOMPARE_SUBLINK: {
        const char *op = rw_last_name(sl->oper_name, sl->n_oper_name);
        rw_op k = OP_EQ;
        if (op && !compare_op(op, &k))
            k = OP_ASSIGN; /* marker: not a comparison */
        const char *opname = sl->sub_link_type == PG_QUERY__SUB_LINK_TYPE__ANY_SUBLINK
                                 ? (op ? "ANY (subquery)" : "IN (subquery)")
                             : sl->sub_link_type == PG_QUERY__SUB_LINK_TYPE__ALL_SUBLINK
                                 ? "ALL (subquery)"
                                 : "a row comparison with a subquery";
        const rw_node *t = sl->testexpr;
        size_t nt = 1;
        const rw_node *const *tv = &t;
        if (t && t->node_case == PG_QUERY__NODE__NODE_ROW_EXPR) {
            nt = t->row_expr->n_args;
            tv = (const rw_node *const *)t->row_expr->args;
        }
        for (size_t i = 0; i < nt; i++) {
            rw_ev l, r;
            if (rw_classify(c, sc, tv[i], &l) != 0)
                return -1;
            output_ev(&outs, i, sl->location, &r);
            if (k == OP_ASSIGN && (l.kind == EV_PROT || r.kind == EV_PROT))
                return rw_refuse_op(c, sl->location, l.kind == EV_PROT ? l.col : r.col,
                                    operator_desc(c, op));
            if (compare_evs(c, &l, &r, NULL, k == OP_ASSIGN ? OP_EQ : k, EQF_NONE, opname,
                            sl->location) != 0)
                return -1;
        }
        return 0;
    }
    default: {
        rw_ev v;
        if (walk_desc(c, sc, sl->testexpr, "a subquery comparison") != 0)
            return -1;
        for (size_t i = 0; i < outs.n; i++) {
            output_ev(&outs, i, sl->location, &v);
            if (v.kind == EV_PROT)
                return refuse_in(c, sl->location, v.col,
                                 sl->sub_link_type == PG_QUERY__SUB_LINK_TYPE__ARRAY_SUBLINK
                                     ? "ARRAY(subquery)"
                                     : "a scalar subquery used in an expression");
            if (rw_release(c, &v, "a subquery", sl->location) != 0)
                return -1;
        }
        return 0;
    }
    }
}

/* ---- ORDER BY / GROUP BY items ---------------------------------------------------- */

/* An output column named by `name` or by position; 1 found, 0 not, -1 refused. */
static int output_ref(rw_ctx *c, const rw_scope *sc, const rw_node *n, int by_name, rw_ev *ev)
{
    const rw_cols *outs = sc->outputs;
    if (!outs || !n)
        return 0;
    if (n->node_case == PG_QUERY__NODE__NODE_A_CONST)
        c->value_dependent = 1; /* ORDER BY 2: which column depends on the value */
    if (n->node_case == PG_QUERY__NODE__NODE_A_CONST &&
        n->a_const->val_case == PG_QUERY__A__CONST__VAL_IVAL) {
        int pos = n->a_const->ival ? n->a_const->ival->ival : 0;
        for (size_t i = 0; i < outs->n && (int)i < pos; i++)
            if (outs->v[i].star) {
                if (outs->v[i].star_protected)
                    return rw_refuse(c, n->a_const->location,
                                     "phantom: cannot resolve a position after `*` over a "
                                     "protected table; name the columns");
                return 0;
            }
        if (pos < 1 || (size_t)pos > outs->n)
            return 0;
        output_ev(outs, (size_t)pos - 1, n->a_const->location, ev);
        return 1;
    }
    if (!by_name || n->node_case != PG_QUERY__NODE__NODE_COLUMN_REF ||
        n->column_ref->n_fields != 1 ||
        n->column_ref->fields[0]->node_case != PG_QUERY__NODE__NODE_STRING)
        return 0;
    const char *name = n->column_ref->fields[0]->string->sval;
    for (size_t i = 0; i < outs->n; i++)
        if (outs->v[i].name && strcmp(outs->v[i].name, name) == 0) {
            output_ev(outs, i, n->column_ref->location, ev);
            return 1;
        }
    return 0;
}

int rw_sort_item(rw_ctx *c, rw_scope *sc, const rw_node *n, rw_op op, const char *opname)
{
    if (n && n->node_case == PG_QUERY__NODE__NODE_SORT_BY)
        n = n->sort_by->node;
    if (n && n->node_case == PG_QUERY__NODE__NODE_GROUPING_SET) {
        for (size_t i = 0; i < n->grouping_set->n_content; i++)
            if (rw_sort_item(c, sc, n->grouping_set->content[i], op, opname) != 0)
                return -1;
        return 0;
    }
    if (n && n->node_case == PG_QUERY__NODE__NODE_LIST) {
        for (size_t i = 0; i < n->list->n_items; i++)
            if (rw_sort_item(c, sc, n->list->items[i], op, opname) != 0)
                return -1;
        return 0;
    }
    rw_ev ev;
    /* ORDER BY prefers output names; GROUP BY input columns (then outputs). */
    int rc = output_ref(c, sc, n, op == OP_ORDER, &ev);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        if (rw_classify(c, sc, n, &ev) != 0)
            return -1;
        if (ev.kind == EV_PLAIN && op != OP_ORDER) {
            rw_ev alt;
            int r2 = output_ref(c, sc, n, 1, &alt);
            if (r2 < 0)
                return -1;
            if (r2 > 0 && alt.kind == EV_PROT)
                ev = alt;
        }
    }
    if (ev.kind == EV_STAR && ev.covers_protected)
        return refuse_in(c, ev.location, ev.star_example, opname);
    return rw_check_use(c, &ev, op, opname, ev.location);
}

/* ---- functions ---------------------------------------------------------------------- */

static int window_def(rw_ctx *c, rw_scope *sc, const PgQuery__WindowDef *w)
{
    for (size_t i = 0; i < w->n_partition_clause; i++)
        if (rw_sort_item(c, sc, w->partition_clause[i], OP_GROUP, "PARTITION BY") != 0)
            return -1;
    for (size_t i = 0; i < w->n_order_clause; i++)
        if (rw_sort_item(c, sc, w->order_clause[i], OP_ORDER, "ORDER BY in a window") != 0)
            return -1;
    if (walk_desc(c, sc, w->start_offset, "a window frame") != 0)
        return -1;
    return walk_desc(c, sc, w->end_offset, "a window frame");
}

static const char *function_desc(rw_ctx *c, const char *name)
{
    static const char *const aggs[] = {"sum", "avg", "min", "max", "string_agg", "array_agg"};
    static const char *const upper[] = {"SUM", "AVG", "MIN", "MAX", "STRING_AGG", "ARRAY_AGG"};
    for (size_t i = 0; name && i < sizeof aggs / sizeof aggs[0]; i++)
        if (strcmp(name, aggs[i]) == 0)
            return upper[i];
    return cat3(c, "function ", name ? name : "?", "()");
}

static int funccall(rw_ctx *c, rw_scope *sc, const PgQuery__FuncCall *fc)
{
    const char *name = rw_last_name(fc->funcname, fc->n_funcname);
    const char *schema = fc->n_funcname > 1 ? rw_last_name(fc->funcname, fc->n_funcname - 1) : NULL;
    int is_count = name && strcmp(name, "count") == 0 &&
                   (!schema || strcmp(schema, "pg_catalog") == 0) && fc->n_args == 1;
    if (fc->over && window_def(c, sc, fc->over) != 0)
        return -1;
    for (size_t i = 0; i < fc->n_agg_order; i++)
        if (rw_sort_item(c, sc, fc->agg_order[i], OP_ORDER, "ORDER BY inside an aggregate") != 0)
            return -1;
    if (walk_desc(c, sc, fc->agg_filter, "FILTER") != 0)
        return -1;
    for (size_t i = 0; i < fc->n_args; i++) {
        rw_ev v;
        if (rw_classify(c, sc, fc->args[i], &v) != 0)
            return -1;
        if (v.kind == EV_PROT && is_count) {
            c->touched = 1;
            if (fc->agg_distinct && !rw_mode_allows(v.col, OP_GROUP))
                return rw_refuse_mode(c, fc->location, v.col, "count(DISTINCT)");
            continue;
        }
        if (v.kind == EV_PROT && v.col->mode == PH_MODE_OPE && name &&
            (strcmp(name, "min") == 0 || strcmp(name, "max") == 0))
            return rw_refuse(c, fc->location,
                             "phantom: cannot apply %s to %s (ope): PostgreSQL has no %s for "
                             "bytea; use ORDER BY %s%s LIMIT 1",
                             name[1] == 'i' ? "MIN" : "MAX", v.col->qualified,
                             name[1] == 'i' ? "MIN" : "MAX", v.col->name,
                             name[1] == 'i' ? "" : " DESC");
        if (v.kind == EV_PROT)
            return rw_refuse_op(c, fc->location, v.col, function_desc(c, name));
        if (rw_release(c, &v, function_desc(c, name), fc->location) != 0)
            return -1;
    }
    return 0;
}

/* ---- the walk ------------------------------------------------------------------------ */

static int walk_desc(rw_ctx *c, rw_scope *sc, const rw_node *n, const char *what)
{
    rw_ev v;
    if (!n || n->node_case == PG_QUERY__NODE__NODE__NOT_SET)
        return 0;
    switch (n->node_case) {
    case PG_QUERY__NODE__NODE_COLUMN_REF:
        if (rw_resolve_columnref(c, sc, n->column_ref, &v) != 0)
            return -1;
        return rw_release(c, &v, what, n->column_ref->location);
    case PG_QUERY__NODE__NODE_A_CONST:
        return 0;
    case PG_QUERY__NODE__NODE_PARAM_REF:
        return rw_param_plain(c, n->param_ref->number, n->param_ref->location);
    case PG_QUERY__NODE__NODE_A_EXPR:
        return aexpr(c, sc, n->a_expr);
    case PG_QUERY__NODE__NODE_NULL_TEST:
        if (rw_classify(c, sc, n->null_test->arg, &v) != 0)
            return -1;
        if (v.kind == EV_PROT || (v.kind == EV_STAR && v.covers_protected)) {
            c->touched = 1;
            return 0; /* null-ness is visible in every mode */
        }
        return rw_release(c, &v, "IS NULL", n->null_test->location);
    case PG_QUERY__NODE__NODE_SUB_LINK:
        return sublink(c, sc, n->sub_link);
    case PG_QUERY__NODE__NODE_FUNC_CALL:
        return funccall(c, sc, n->func_call);
    case PG_QUERY__NODE__NODE_TYPE_CAST:
        if (rw_classify(c, sc, n->type_cast->arg, &v) != 0)
            return -1;
        if (v.kind == EV_PROT)
            return rw_refuse_op(c,
                                n->type_cast->location >= 0 ? n->type_cast->location : v.location,
                                v.col, cat3(c, "a cast to ", cast_name(n->type_cast), ""));
        return rw_release(c, &v, "a cast", n->type_cast->location);
    case PG_QUERY__NODE__NODE_SELECT_STMT: {
        rw_cols outs = {0};
        return rw_select(c, sc, n->select_stmt, NULL, &outs);
    }
    case PG_QUERY__NODE__NODE_SORT_BY:
        return rw_sort_item(c, sc, n, OP_ORDER, "ORDER BY");
    case PG_QUERY__NODE__NODE_WINDOW_DEF:
        return window_def(c, sc, n->window_def);
    default: {
        const ProtobufCMessage *m = node_inner(n);
        const char *d = node_desc(n);
        return m ? walk_message(c, sc, m, strcmp(d, "this expression") == 0 ? what : d) : 0;
    }
    }
}

int rw_walk(rw_ctx *c, rw_scope *sc, const rw_node *n)
{
    return walk_desc(c, sc, n, "this expression");
}

/* ---- read-only search ------------------------------------------------------------------ */

static int find_in_message(rw_ctx *c, rw_scope *sc, const ProtobufCMessage *m,
                           const ph_schema_column **col, int *location);

static int find_in_node(rw_ctx *c, rw_scope *sc, const rw_node *n, const ph_schema_column **col,
                        int *location)
{
    if (!n || n->node_case == PG_QUERY__NODE__NODE__NOT_SET)
        return 0;
    if (n->node_case == PG_QUERY__NODE__NODE_COLUMN_REF) {
        rw_ev v;
        if (rw_resolve_columnref(c, sc, n->column_ref, &v) != 0)
            return -1;
        if (v.kind == EV_PROT || (v.kind == EV_STAR && v.covers_protected)) {
            *col = v.kind == EV_PROT ? v.col : v.star_example;
            *location = n->column_ref->location;
            return 1;
        }
        return 0;
    }
    const ProtobufCMessage *m = node_inner(n);
    return m ? find_in_message(c, sc, m, col, location) : 0;
}

typedef struct {
    rw_ctx *c;
    rw_scope *sc;
    const ph_schema_column **col;
    int *location;
} find_arg;

static int find_visit(void *arg, const rw_node *n)
{
    find_arg *a = arg;
    return find_in_node(a->c, a->sc, n, a->col, a->location);
}

static int find_in_message(rw_ctx *c, rw_scope *sc, const ProtobufCMessage *m,
                           const ph_schema_column **col, int *location)
{
    find_arg a = {c, sc, col, location};
    return each_child_node(m, find_visit, &a);
}

int rw_find_protected(rw_ctx *c, rw_scope *sc, const rw_node *n, const ph_schema_column **col,
                      int *location)
{
    *col = NULL;
    *location = -1;
    return find_in_node(c, sc, n, col, location);
}
