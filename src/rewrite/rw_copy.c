/*
 * rw_copy.c — the plan of a COPY on a protected table: its options (FORMAT,
 * DELIMITER, NULL, HEADER, QUOTE, ESCAPE; from WITH (...) or the legacy
 * syntax, which libpg_query hands over as the same DefElem list) read as
 * PostgreSQL 15's ProcessCopyOptions reads them, and its column list
 * resolved to protected columns. Options the proxy's COPY codec cannot honour
 * for protected columns are refused: FORCE_QUOTE / FORCE_NOT_NULL /
 * FORCE_NULL naming one, an ENCODING other than the client's, and options it
 * does not know.
 */
#include "rewrite/rw_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/mem.h"

/* The argument as defGetString renders it; NULL when absent or not a scalar. */
static const char *arg_string(rw_ctx *c, const PgQuery__DefElem *d)
{
    const rw_node *a = d->arg;
    if (!a)
        return NULL;
    switch (a->node_case) {
    case PG_QUERY__NODE__NODE_STRING:
        return a->string->sval;
    case PG_QUERY__NODE__NODE_INTEGER: {
        char *s = rw_alloc(c, 16);
        if (s)
            snprintf(s, 16, "%d", (int)a->integer->ival);
        return s;
    }
    case PG_QUERY__NODE__NODE_FLOAT:
        return a->float_->fval;
    case PG_QUERY__NODE__NODE_BOOLEAN:
        return a->boolean->boolval ? "true" : "false";
    default:
        return NULL;
    }
}

/* defGetBoolean (and HEADER's "match"): 1, 0, or -1 when not a boolean. */
static int arg_bool(const PgQuery__DefElem *d, int allow_match)
{
    const rw_node *a = d->arg;
    if (!a)
        return 1;
    switch (a->node_case) {
    case PG_QUERY__NODE__NODE_INTEGER:
        return a->integer->ival == 0 ? 0 : a->integer->ival == 1 ? 1 : -1;
    case PG_QUERY__NODE__NODE_BOOLEAN:
        return a->boolean->boolval ? 1 : 0;
    case PG_QUERY__NODE__NODE_STRING: {
        const char *s = a->string->sval;
        if (!strcasecmp(s, "true") || !strcasecmp(s, "on"))
            return 1;
        if (!strcasecmp(s, "false") || !strcasecmp(s, "off"))
            return 0;
        return allow_match && !strcasecmp(s, "match") ? 1 : -1;
    }
    default:
        return -1;
    }
}

/* Encoding names compare as PostgreSQL's clean_encoding_name does (case and
 * punctuation ignored); UNICODE is an alias of UTF8. */
static void clean_encoding(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    for (; *in && o + 1 < outlen; in++)
        if (isalnum((unsigned char)*in))
            out[o++] = (char)tolower((unsigned char)*in);
    out[o] = '\0';
    if (!strcmp(out, "unicode"))
        snprintf(out, outlen, "utf8");
}

static int same_encoding(const char *a, const char *b)
{
    char ca[64], cb[64];
    clean_encoding(a, ca, sizeof ca);
    clean_encoding(b, cb, sizeof cb);
    return ca[0] && strcmp(ca, cb) == 0;
}

/* Whether the COPY's columns include a protected one. */
static int covers_protected(const PgQuery__CopyStmt *cp, const ph_schema_table *t)
{
    if (cp->n_attlist == 0)
        return t->ncolumns > 0;
    for (size_t i = 0; i < cp->n_attlist; i++) {
        const rw_node *a = cp->attlist[i];
        if (a && a->node_case == PG_QUERY__NODE__NODE_STRING &&
            ph_schema_find_column(t, a->string->sval))
            return 1;
    }
    return 0;
}

static int force_option(rw_ctx *c, const PgQuery__CopyStmt *cp, const ph_schema_table *t,
                        const PgQuery__DefElem *d, const char *label)
{
    const rw_node *a = d->arg;
    if (a && a->node_case == PG_QUERY__NODE__NODE_A_STAR) {
        if (covers_protected(cp, t))
            return rw_refuse(c, d->location,
                             "phantom: COPY option %s * on protected table %s is not supported; "
                             "name its plaintext columns",
                             label, t->name);
        return 0;
    }
    if (!a || a->node_case != PG_QUERY__NODE__NODE_LIST)
        return rw_refuse(c, d->location, "phantom: COPY option %s needs a list of columns", label);
    for (size_t i = 0; i < a->list->n_items; i++) {
        const rw_node *it = a->list->items[i];
        const ph_schema_column *col = it && it->node_case == PG_QUERY__NODE__NODE_STRING
                                          ? ph_schema_find_column(t, it->string->sval)
                                          : NULL;
        if (col)
            return rw_refuse(c, d->location,
                             "phantom: COPY option %s on protected column %s is not supported",
                             label, col->qualified);
    }
    return 0;
}

static int one_byte(rw_ctx *c, const PgQuery__DefElem *d, const char *label, char *dst)
{
    const char *s = arg_string(c, d);
    if (!s || strlen(s) != 1)
        return rw_refuse(c, d->location, "phantom: COPY %s must be a single one-byte character",
                         label);
    *dst = s[0];
    return 0;
}

static int format_option(rw_ctx *c, const PgQuery__CopyStmt *cp, ph_copy_format *fmt)
{
    *fmt = PH_COPY_TEXT;
    for (size_t i = 0; i < cp->n_options; i++) {
        const rw_node *n = cp->options[i];
        if (!n || n->node_case != PG_QUERY__NODE__NODE_DEF_ELEM ||
            strcmp(n->def_elem->defname, "format") != 0)
            continue;
        const char *s = arg_string(c, n->def_elem);
        if (s && !strcmp(s, "text"))
            *fmt = PH_COPY_TEXT;
        else if (s && !strcmp(s, "csv"))
            *fmt = PH_COPY_CSV;
        else if (s && !strcmp(s, "binary"))
            *fmt = PH_COPY_BINARY;
        else
            return rw_refuse(c, n->def_elem->location,
                             "phantom: COPY format not recognized (text, csv or binary)");
    }
    return 0;
}

static int encoding_option(rw_ctx *c, const ph_schema_table *t, const PgQuery__DefElem *d)
{
    const char *s = arg_string(c, d);
    const char *client = c->opt ? c->opt->client_encoding : NULL;
    if (!s || !client || !same_encoding(s, client))
        return rw_refuse(c, d->location,
                         "phantom: COPY ... ENCODING on protected table %s must name the "
                         "session's client_encoding",
                         t->name);
    return 0;
}

static int null_option(rw_ctx *c, const PgQuery__DefElem *d, ph_rw_stmt *st)
{
    const char *s = arg_string(c, d);
    if (!s)
        return rw_refuse(c, d->location, "phantom: COPY NULL needs a string");
    free(st->copy_null);
    if (!(st->copy_null = strdup(s)))
        return rw_oom(c);
    st->copy_opts.null_s = st->copy_null;
    return 0;
}

static int one_option(rw_ctx *c, const PgQuery__CopyStmt *cp, const ph_schema_table *t,
                      const PgQuery__DefElem *d, ph_rw_stmt *st, int *escape_set)
{
    const char *name = d->defname;
    ph_copy_options *o = &st->copy_opts;
    if (!strcmp(name, "format") || !strcmp(name, "freeze"))
        return 0;
    if (!strcmp(name, "delimiter"))
        return one_byte(c, d, "delimiter", &o->delimiter);
    if (!strcmp(name, "quote"))
        return one_byte(c, d, "quote", &o->quote);
    if (!strcmp(name, "escape")) {
        *escape_set = 1;
        return one_byte(c, d, "escape", &o->escape);
    }
    if (!strcmp(name, "null"))
        return null_option(c, d, st);
    if (!strcmp(name, "header")) {
        int b = arg_bool(d, 1);
        if (b < 0)
            return rw_refuse(c, d->location,
                             "phantom: COPY HEADER requires a Boolean value or \"match\"");
        o->header = b != 0;
        return 0;
    }
    if (!strcmp(name, "force_quote"))
        return force_option(c, cp, t, d, "FORCE_QUOTE");
    if (!strcmp(name, "force_not_null"))
        return force_option(c, cp, t, d, "FORCE_NOT_NULL");
    if (!strcmp(name, "force_null"))
        return force_option(c, cp, t, d, "FORCE_NULL");
    if (!strcmp(name, "encoding"))
        return encoding_option(c, t, d);
    return rw_refuse(c, d->location,
                     "phantom: COPY option %s on protected table %s is not supported", name,
                     t->name);
}

static int copy_columns(rw_ctx *c, const PgQuery__CopyStmt *cp, const ph_schema_table *t,
                        ph_rw_stmt *st)
{
    if (cp->n_attlist == 0)
        return 0;
    if (cp->n_attlist > 32767)
        return rw_refuse(c, cp->relation->location, "phantom: too many columns in COPY");
    st->copy_cols = ph_calloc(cp->n_attlist, sizeof *st->copy_cols);
    if (!st->copy_cols)
        return rw_oom(c);
    st->copy_ncols = (int)cp->n_attlist;
    for (size_t i = 0; i < cp->n_attlist; i++) {
        const rw_node *a = cp->attlist[i];
        if (a && a->node_case == PG_QUERY__NODE__NODE_STRING)
            st->copy_cols[i] = ph_schema_find_column(t, a->string->sval);
    }
    return 0;
}

int rw_copy_plan(rw_ctx *c, const PgQuery__CopyStmt *cp, const ph_schema_table *t, ph_rw_stmt *st)
{
    ph_copy_format fmt;
    if (format_option(c, cp, &fmt) != 0)
        return -1;
    ph_copy_options_default(&st->copy_opts, fmt);
    int escape_set = 0;
    for (size_t i = 0; i < cp->n_options; i++) {
        const rw_node *n = cp->options[i];
        if (!n || n->node_case != PG_QUERY__NODE__NODE_DEF_ELEM)
            return rw_refuse(c, cp->relation->location, "phantom: unexpected COPY option");
        if (one_option(c, cp, t, n->def_elem, st, &escape_set) != 0)
            return -1;
    }
    if (!escape_set)
        st->copy_opts.escape = st->copy_opts.quote;
    return copy_columns(c, cp, t, st);
}
