/*
 * migrate_plan.c — what `phantom migrate` changes in one table, and whether
 * it can: refused before anything changes when a protected column carries a
 * foreign key, a CHECK constraint, a DEFAULT, a view or rule depending on
 * it, an expression, partial or non-btree/hash index, or a unique index the
 * column's mode cannot keep (randomized). Indexes it can keep are rebuilt on
 * the shadow columns. Also the dry run's estimates (rows, size growth).
 */
#include "tools/migrate_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "crypto/envelope.h"

static void refuse(mg_table *m, const ph_migrate_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void refuse(mg_table *m, const ph_migrate_opts *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(o->out, "refused: %s: ", m->t.display);
    vfprintf(o->out, fmt, ap);
    fputc('\n', o->out);
    va_end(ap);
    m->refused = 1;
}

static char *dupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dupf(const char *fmt, ...)
{
    ph_buf b = {0};
    va_list ap;
    va_start(ap, fmt);
    int rc = ph_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (rc != 0) {
        ph_buf_free(&b);
        return NULL;
    }
    return (char *)ph_buf_steal(&b, NULL);
}

/* A name of at most 63 bytes (PostgreSQL's limit), quoted. */
static char *derived_name(ph_db *db, const char *prefix, const char *base)
{
    char raw[64];
    snprintf(raw, sizeof raw, "%s%s", prefix, base);
    return ph_db_ident(db, raw);
}

/* The plaintext SQL type of a configured column (decrypting without a record
 * of the original type). */
static char *config_type_sql(const ph_schema_column *c)
{
    const char *n = ph_logical_type_name(c->type);
    if (c->typmod_a >= 0 && c->typmod_b >= 0)
        return dupf("%s(%d,%d)", n, (int)c->typmod_a, (int)c->typmod_b);
    if (c->typmod_a >= 0)
        return dupf("%s(%d)", n, (int)c->typmod_a);
    return dupf("%s", n);
}

/* The original type and NOT NULL recorded when the column was encrypted. */
static int recorded_type(ph_db *db, const mg_table *m, const ph_tcol *tc, char **type, int *notnull,
                         char *err, size_t errlen)
{
    const char *p[2] = {m->t.display, tc->col->name};
    PGresult *r = ph_db_query(db,
                              "SELECT orig_type, not_null FROM phantom.columns WHERE tbl = $1 AND "
                              "col = $2",
                              2, p, NULL, NULL, err, errlen);
    if (!r) { /* no record table: fall back to the configured type */
        *type = NULL;
        return 0;
    }
    if (PQntuples(r) == 1) {
        *type = strdup(PQgetvalue(r, 0, 0));
        *notnull = PQgetvalue(r, 0, 1)[0] == 't';
    } else {
        *type = NULL;
    }
    PQclear(r);
    return 0;
}

static int add_col(ph_db *db, mg_table *m, ph_tcol *tc, const ph_migrate_opts *o, char *err,
                   size_t errlen)
{
    mg_col *c = &m->cols[m->ncols++];
    c->tc = tc;
    c->notnull = tc->notnull;
    c->shadow = derived_name(db, "phantom_new_", tc->col->name);
    c->check_name = derived_name(db, "phantom_envelope_", tc->col->name);
    if (!o->decrypt) {
        c->new_type = strdup("bytea");
    } else {
        if (recorded_type(db, m, tc, &c->new_type, &c->notnull, err, errlen) != 0)
            return -1;
        if (!c->new_type)
            c->new_type = config_type_sql(tc->col);
    }
    if (!c->shadow || !c->check_name || !c->new_type) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* "{3,5}": the attribute numbers of the converted columns. */
static void attnums(const mg_table *m, char *buf, size_t cap)
{
    size_t o = (size_t)snprintf(buf, cap, "{");
    for (size_t i = 0; i < m->ncols && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%d", i ? "," : "", m->cols[i].tc->attnum);
    if (o < cap)
        snprintf(buf + o, cap - o, "}");
}

/* Runs a catalog query whose $1 is the table's OID and $2 the attribute
 * numbers of the converted columns. */
static PGresult *query_columns(ph_db *db, const mg_table *m, const char *sql, char *err,
                               size_t errlen)
{
    char oid[16], nums[512];
    snprintf(oid, sizeof oid, "%u", m->t.oid);
    attnums(m, nums, sizeof nums);
    const char *p[2] = {oid, nums};
    return ph_db_query(db, sql, 2, p, NULL, NULL, err, errlen);
}

/* Each row of `sql` (see query_columns) is a reason to refuse. */
static int refuse_each(ph_db *db, mg_table *m, const ph_migrate_opts *o, const char *sql,
                       const char *what, char *err, size_t errlen)
{
    PGresult *r = query_columns(db, m, sql, err, errlen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++)
        refuse(m, o, "%s %s", what, PQgetvalue(r, i, 0));
    PQclear(r);
    return 0;
}

static int check_dependents(ph_db *db, mg_table *m, const ph_migrate_opts *o, char *err,
                            size_t errlen)
{
    static const char checks[] =
        "SELECT conname || ': ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = "
        "'c' AND conrelid = $1::oid AND conkey && $2::int2[] AND conname NOT LIKE "
        "'phantom\\_envelope\\_%'";
    static const char views[] =
        "SELECT DISTINCT v.oid::regclass::text FROM pg_depend d JOIN pg_rewrite w ON w.oid = "
        "d.objid JOIN pg_class v ON v.oid = w.ev_class WHERE d.classid = 'pg_rewrite'::regclass "
        "AND d.refobjid = $1::oid AND d.refobjsubid = ANY ($2::int2[]) AND v.oid <> $1::oid";
    static const char generated[] =
        "SELECT a.attname FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.objid AND "
        "a.attnum = d.objsubid WHERE d.classid = 'pg_class'::regclass AND d.objid = $1::oid AND "
        "d.refobjid = $1::oid AND d.refobjsubid = ANY ($2::int2[]) AND a.attgenerated <> ''";
    if (refuse_each(db, m, o, checks, "a CHECK constraint uses a protected column:", err, errlen) ||
        refuse_each(db, m, o, views, "a view or rule depends on a protected column:", err,
                    errlen) ||
        refuse_each(db, m, o, generated, "a generated column depends on a protected column:", err,
                    errlen))
        return -1;
    for (size_t i = 0; i < m->ncols && !o->decrypt; i++)
        if (m->cols[i].tc->has_default)
            refuse(m, o, "%s has a DEFAULT: the database cannot compute ciphertext (drop it)",
                   m->cols[i].tc->col->qualified);
    return 0;
}

/* The configured column schema.table.column, deterministic, or NULL. */
static const ph_schema_column *deterministic(const ph_schema *schema, const PGresult *r, int i,
                                             int c)
{
    const ph_schema_column *col = ph_schema_lookup(
        schema, PQgetvalue(r, i, c), PQgetvalue(r, i, c + 1), PQgetvalue(r, i, c + 2));
    return col && col->mode == PH_MODE_DETERMINISTIC ? col : NULL;
}

/* Foreign keys on a converted column: kept when both sides are single
 * deterministic columns of one key domain, refused otherwise. */
static int plan_fkeys(ph_db *db, const ph_schema *schema, mg_table *m, const ph_migrate_opts *o,
                      char *err, size_t errlen)
{
    static const char sql[] =
        "SELECT quote_ident(c.conname), c.conrelid::regclass::text, pg_get_constraintdef(c.oid), "
        "cardinality(c.conkey), n1.nspname, r1.relname, (SELECT attname FROM pg_attribute WHERE "
        "attrelid = c.conrelid AND attnum = c.conkey[1]), n2.nspname, r2.relname, (SELECT "
        "attname FROM pg_attribute WHERE attrelid = c.confrelid AND attnum = c.confkey[1]) FROM "
        "pg_constraint c JOIN pg_class r1 ON r1.oid = c.conrelid JOIN pg_namespace n1 ON n1.oid "
        "= r1.relnamespace JOIN pg_class r2 ON r2.oid = c.confrelid JOIN pg_namespace n2 ON "
        "n2.oid = r2.relnamespace WHERE c.contype = 'f' AND ((c.conrelid = $1::oid AND c.conkey "
        "&& $2::int2[]) OR (c.confrelid = $1::oid AND c.confkey && $2::int2[])) ORDER BY 1";
    PGresult *r = query_columns(db, m, sql, err, errlen);
    if (!r)
        return -1;
    int n = PQntuples(r), rc = 0;
    if (n && !(m->fk = ph_calloc((size_t)n, sizeof *m->fk)))
        rc = -1;
    for (int i = 0; rc == 0 && i < n; i++) {
        const ph_schema_column *a = deterministic(schema, r, i, 4);
        const ph_schema_column *b = deterministic(schema, r, i, 7);
        if (strcmp(PQgetvalue(r, i, 3), "1") != 0 || !a || !b ||
            strcmp(a->key_domain, b->key_domain) != 0) {
            refuse(m, o,
                   "foreign key %s on %s involves a protected column: kept only between two "
                   "single deterministic columns of one key domain (drop it, or configure both "
                   "columns so)",
                   PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
            continue;
        }
        mg_fkey *f = &m->fk[m->nfk++];
        f->name = strdup(PQgetvalue(r, i, 0));
        f->child = strdup(PQgetvalue(r, i, 1));
        f->def = strdup(PQgetvalue(r, i, 2));
        if (!f->name || !f->child || !f->def)
            rc = -1;
    }
    PQclear(r);
    if (rc)
        snprintf(err, errlen, "out of memory");
    return rc;
}

static const mg_col *converted(const mg_table *m, const char *quoted)
{
    for (size_t i = 0; i < m->ncols; i++)
        if (strcmp(m->cols[i].tc->ident, quoted) == 0)
            return &m->cols[i];
    return NULL;
}

/* The column list of a rebuilt index: converted columns by their shadows. */
static char *index_columns(const mg_table *m, const char *names, const char *options)
{
    size_t cap = strlen(names) * 2 + 256, o = 0;
    char *out = ph_calloc(1, cap);
    char *list = strdup(names);
    if (!out || !list) {
        free(out);
        free(list);
        return NULL;
    }
    const char *opt = options;
    char *save = NULL;
    int k = 0;
    for (char *n = strtok_r(list, "\x1f", &save); n; n = strtok_r(NULL, "\x1f", &save), k++) {
        const mg_col *c = converted(m, n);
        long flags = opt ? strtol(opt, (char **)&opt, 10) : 0;
        if (opt && *opt == ' ')
            opt++;
        int w = snprintf(out + o, cap - o, "%s%s%s", k ? ", " : "", c ? c->shadow : n,
                         (flags & 1) ? " DESC" : "");
        if (w < 0 || (size_t)w >= cap - o) {
            free(out);
            free(list);
            return NULL;
        }
        o += (size_t)w;
    }
    free(list);
    return out;
}

/* Whether quoted name is one of the \x1f-separated names. */
static int has_name(const char *names, const char *quoted)
{
    size_t n = strlen(quoted);
    for (const char *p = names; p && *p;) {
        const char *e = strchr(p, '\x1f');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && memcmp(p, quoted, n) == 0)
            return 1;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

static int plan_index(mg_table *m, const ph_migrate_opts *o, PGresult *r, int i)
{
    const char *name = PQgetvalue(r, i, 0);
    int unique = PQgetvalue(r, i, 1)[0] == 't';
    const char *am = PQgetvalue(r, i, 2);
    int complex = PQgetvalue(r, i, 3)[0] == 't';
    const char *cols = PQgetvalue(r, i, 4), *opts = PQgetvalue(r, i, 5);
    const char *contype = PQgetvalue(r, i, 7);
    if (complex || (strcmp(am, "btree") != 0 && strcmp(am, "hash") != 0)) {
        refuse(m, o,
               "index %s is an expression, partial or %s index on a protected column: the "
               "database cannot compute it on ciphertext (drop it)",
               name, am);
        return 0;
    }
    if (contype[0] == 'x') {
        refuse(m, o, "exclusion constraint %s uses a protected column", name);
        return 0;
    }
    for (size_t c = 0; unique && !o->decrypt && c < m->ncols; c++)
        if (m->cols[c].tc->col->mode == PH_MODE_RANDOMIZED &&
            has_name(cols, m->cols[c].tc->ident)) {
            refuse(m, o,
                   "unique index %s covers %s, which is randomized: equal values get different "
                   "ciphertexts, so uniqueness cannot be enforced (use mode deterministic, or "
                   "drop the index)",
                   name, m->cols[c].tc->col->qualified);
            return 0;
        }
    mg_index *x = &m->idx[m->nidx++];
    char *list = index_columns(m, cols, opts);
    char tmpraw[64];
    snprintf(tmpraw, sizeof tmpraw, "phantom_new_%u_%zu", m->t.oid, m->nidx);
    x->name = strdup(name);
    x->tmp = strdup(tmpraw); /* plain lower-case identifier: needs no quoting */
    x->create_sql = list ? dupf("CREATE %sINDEX CONCURRENTLY %s ON %s USING %s (%s)",
                                unique ? "UNIQUE " : "", tmpraw, m->t.qname, am, list)
                         : NULL;
    x->constraint = contype[0] == 'u' ? strdup(PQgetvalue(r, i, 6)) : NULL;
    free(list);
    return x->name && x->tmp && x->create_sql && (contype[0] != 'u' || x->constraint) ? 0 : -1;
}

static int plan_indexes(ph_db *db, mg_table *m, const ph_migrate_opts *o, char *err, size_t errlen)
{
    static const char sql[] =
        "SELECT quote_ident(ic.relname), i.indisunique, am.amname, (i.indexprs IS NOT NULL OR "
        "i.indpred IS NOT NULL), (SELECT string_agg('\"' || replace(a.attname, '\"', "
        "'\"\"') || '\"', E'\\x1f' ORDER BY "
        "k.ord) FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) JOIN pg_attribute a ON "
        "a.attrelid = i.indrelid AND a.attnum = k.attnum), array_to_string(i.indoption::int2[], "
        "' '), coalesce((SELECT quote_ident(conname) FROM pg_constraint WHERE conindid = "
        "i.indexrelid AND conrelid = i.indrelid), ''), coalesce((SELECT contype::text FROM "
        "pg_constraint WHERE conindid = i.indexrelid AND conrelid = i.indrelid), '') FROM "
        "pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = "
        "ic.relam WHERE i.indrelid = $1::oid AND (i.indkey::int2[] && $2::int2[] OR EXISTS "
        "(SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = "
        "i.indexrelid AND d.refobjid = $1::oid AND d.refobjsubid = ANY ($2::int2[]))) ORDER BY 1";
    PGresult *r = query_columns(db, m, sql, err, errlen);
    if (!r)
        return -1;
    int n = PQntuples(r), rc = 0;
    if (n && !(m->idx = ph_calloc((size_t)n, sizeof *m->idx)))
        rc = -1;
    for (int i = 0; rc == 0 && i < n; i++)
        rc = plan_index(m, o, r, i);
    PQclear(r);
    if (rc)
        snprintf(err, errlen, "out of memory");
    return rc;
}

static int estimate_rows(ph_db *db, mg_table *m, char *err, size_t errlen)
{
    if (m->t.reltuples >= 0) {
        m->rows = (int64_t)m->t.reltuples;
        return 0;
    }
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", m->t.qname);
    PGresult *r = ph_db_query(db, sql, 0, NULL, NULL, NULL, err, errlen);
    if (!r)
        return -1;
    m->rows = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return 0;
}

int mg_plan(ph_db *db, const ph_schema *schema, const ph_schema_table *st, const ph_migrate_opts *o,
            mg_table *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (ph_table_load(db, st, &m->t, err, errlen) != 0)
        return -1;
    if (!(m->cols = ph_calloc(m->t.ncols ? m->t.ncols : 1, sizeof *m->cols))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < m->t.ncols; i++) {
        ph_tcol *tc = &m->t.cols[i];
        if (!tc->type) {
            snprintf(err, errlen, "%s: no such column in the database", tc->col->qualified);
            return -1;
        }
        int is_bytea = strcmp(tc->type, "bytea") == 0;
        if (is_bytea == !o->decrypt)
            continue; /* already in the wanted form */
        if (add_col(db, m, tc, o, err, errlen) != 0)
            return -1;
    }
    char fn[64];
    snprintf(fn, sizeof fn, "phantom.log_%u", m->t.oid);
    m->fn = strdup(fn);
    char *lit = PQescapeLiteral(db->conn, m->t.display, strlen(m->t.display));
    m->tbl_lit = lit ? strdup(lit) : NULL;
    PQfreemem(lit);
    if (!m->fn || !m->tbl_lit) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (m->ncols == 0)
        return 0;
    if (check_dependents(db, m, o, err, errlen) != 0 ||
        plan_fkeys(db, schema, m, o, err, errlen) != 0 ||
        plan_indexes(db, m, o, err, errlen) != 0 || estimate_rows(db, m, err, errlen) != 0)
        return -1;
    return 0;
}

/* Envelope bytes over the plaintext for a column's mode (ope: fixed size). */
static double growth_per_value(const mg_col *c)
{
    switch (c->tc->col->mode) {
    case PH_MODE_DETERMINISTIC:
        return PH_ENV_DETERMINISTIC_OVERHEAD;
    case PH_MODE_OPE:
        return PH_ENV_OPE_LEN - c->avg_width;
    default:
        return PH_ENV_RANDOMIZED_OVERHEAD;
    }
}

static void measure_widths(ph_db *db, mg_table *m)
{
    for (size_t i = 0; i < m->ncols; i++) {
        char sql[1024], err[256];
        snprintf(sql, sizeof sql,
                 "SELECT coalesce(avg(octet_length(%s::text)), 0) FROM (SELECT %s FROM %s LIMIT "
                 "10000) s",
                 m->cols[i].tc->ident, m->cols[i].tc->ident, m->t.qname);
        PGresult *r = ph_db_query(db, sql, 0, NULL, NULL, NULL, err, sizeof err);
        if (r) {
            m->cols[i].avg_width = strtod(PQgetvalue(r, 0, 0), NULL);
            PQclear(r);
        }
    }
}

void mg_print_plan(const mg_table *m, const ph_migrate_opts *o)
{
    FILE *f = o->out;
    fprintf(f, "%s: %s, about %lld rows, primary key (", m->t.display,
            o->decrypt ? "decrypt" : "encrypt", (long long)m->rows);
    for (size_t i = 0; i < m->t.npk; i++)
        fprintf(f, "%s%s", i ? ", " : "", m->t.pk[i]);
    fprintf(f, ")\n");
    double grow = 0;
    for (size_t i = 0; i < m->ncols; i++) {
        const mg_col *c = &m->cols[i];
        fprintf(f, "  %-28s %-12s -> %-14s mode %-13s key domain %s", c->tc->col->qualified,
                c->tc->type, c->new_type, ph_enc_mode_name(c->tc->col->mode),
                c->tc->col->key_domain);
        if (!o->decrypt) {
            fprintf(f, "  (avg %.0f B -> ~%.0f B)", c->avg_width,
                    c->avg_width + growth_per_value(c));
            grow += growth_per_value(c) * (double)m->rows;
        }
        fputc('\n', f);
    }
    for (size_t i = 0; i < m->nidx; i++)
        fprintf(f, "  index %s rebuilt as: %s\n", m->idx[i].name, m->idx[i].create_sql);
    for (size_t i = 0; i < m->nfk; i++)
        fprintf(f,
                "  foreign key %s on %s dropped at the swap, added back once both sides are %s\n",
                m->fk[i].name, m->fk[i].child, o->decrypt ? "plaintext" : "encrypted");
    if (!o->decrypt && m->ncols)
        fprintf(f, "  estimated size growth: +%.1f MB of column data\n", grow / 1e6);
}

void mg_measure(ph_db *db, mg_table *m)
{
    measure_widths(db, m);
}

void mg_free(mg_table *m)
{
    for (size_t i = 0; i < m->ncols; i++) {
        free(m->cols[i].shadow);
        free(m->cols[i].new_type);
        free(m->cols[i].check_name);
    }
    free(m->cols);
    for (size_t i = 0; i < m->nidx; i++) {
        free(m->idx[i].name);
        free(m->idx[i].tmp);
        free(m->idx[i].create_sql);
        free(m->idx[i].constraint);
    }
    free(m->idx);
    for (size_t i = 0; i < m->nfk; i++) {
        free(m->fk[i].name);
        free(m->fk[i].child);
        free(m->fk[i].def);
    }
    free(m->fk);
    free(m->fn);
    free(m->tbl_lit);
    ph_table_free(&m->t);
    memset(m, 0, sizeof *m);
}
