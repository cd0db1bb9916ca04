/*
 * table.c — see table.h.
 */
#include "tools/table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

static char *join2(const char *a, const char *sep, const char *b)
{
    size_t n = strlen(a) + strlen(sep) + strlen(b) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s%s", a, sep, b);
    return s;
}

static int load_oid(ph_db *db, ph_table *t, char *err, size_t errlen)
{
    const char *p[2] = {t->st->schema, t->st->name};
    PGresult *r = ph_db_query(db,
                              "SELECT c.oid, c.reltuples FROM pg_class c JOIN pg_namespace n ON "
                              "n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 "
                              "AND c.relkind IN ('r', 'p')",
                              2, p, NULL, NULL, err, errlen);
    if (!r)
        return -1;
    int rc = 0;
    if (PQntuples(r) != 1) {
        snprintf(err, errlen, "table %s does not exist", t->display);
        rc = -1;
    } else {
        t->oid = (unsigned)strtoul(PQgetvalue(r, 0, 0), NULL, 10);
        t->reltuples = strtod(PQgetvalue(r, 0, 1), NULL);
    }
    PQclear(r);
    return rc;
}

static int load_pk(ph_db *db, ph_table *t, char *err, size_t errlen)
{
    char oid[16];
    snprintf(oid, sizeof oid, "%u", t->oid);
    const char *p[1] = {oid};
    PGresult *r = ph_db_query(db,
                              "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM "
                              "pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY "
                              "AS k(attnum, ord) JOIN pg_attribute a ON a.attrelid = i.indrelid "
                              "AND a.attnum = k.attnum WHERE i.indrelid = $1::oid AND "
                              "i.indisprimary ORDER BY k.ord",
                              1, p, NULL, NULL, err, errlen);
    if (!r)
        return -1;
    int n = PQntuples(r), rc = 0;
    if (n == 0) {
        snprintf(err, errlen,
                 "table %s has no primary key: phantom pages through a table by its primary key "
                 "(add one, e.g. ALTER TABLE ... ADD PRIMARY KEY, and retry)",
                 t->display);
        PQclear(r);
        return -1;
    }
    t->pk = ph_calloc((size_t)n, sizeof *t->pk);
    t->pk_types = ph_calloc((size_t)n, sizeof *t->pk_types);
    if (!t->pk || !t->pk_types)
        rc = -1;
    for (int i = 0; rc == 0 && i < n; i++) {
        const char *name = PQgetvalue(r, i, 0);
        if (ph_schema_find_column(t->st, name)) {
            snprintf(err, errlen,
                     "%s.%s is both protected and part of the primary key: phantom cannot page "
                     "through a table by a column it rewrites",
                     t->display, name);
            rc = -1;
            break;
        }
        t->pk[i] = ph_db_ident(db, name);
        t->pk_types[i] = strdup(PQgetvalue(r, i, 1));
        t->npk = (size_t)i + 1;
        if (!t->pk[i] || !t->pk_types[i]) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        }
    }
    PQclear(r);
    return rc;
}

static int load_column(ph_db *db, const ph_table *t, ph_tcol *c, char *err, size_t errlen)
{
    char oid[16];
    snprintf(oid, sizeof oid, "%u", t->oid);
    const char *p[2] = {oid, c->col->name};
    PGresult *r = ph_db_query(db,
                              "SELECT format_type(atttypid, atttypmod), attnum, attnotnull, "
                              "atthasdef FROM pg_attribute WHERE attrelid = $1::oid AND "
                              "attname = $2 AND NOT attisdropped AND attnum > 0",
                              2, p, NULL, NULL, err, errlen);
    if (!r)
        return -1;
    if (!(c->ident = ph_db_ident(db, c->col->name))) {
        PQclear(r);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (PQntuples(r) == 1) {
        c->type = strdup(PQgetvalue(r, 0, 0));
        c->attnum = atoi(PQgetvalue(r, 0, 1));
        c->notnull = PQgetvalue(r, 0, 2)[0] == 't';
        c->has_default = PQgetvalue(r, 0, 3)[0] == 't';
    }
    PQclear(r);
    return 0;
}

int ph_table_load(ph_db *db, const ph_schema_table *st, ph_table *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    t->st = st;
    t->reltuples = -1;
    char *s = ph_db_ident(db, st->schema), *n = ph_db_ident(db, st->name);
    t->qname = s && n ? join2(s, ".", n) : NULL;
    t->display = join2(st->schema, ".", st->name);
    free(s);
    free(n);
    if (!t->qname || !t->display) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (load_oid(db, t, err, errlen) != 0 || load_pk(db, t, err, errlen) != 0)
        return -1;
    if (!(t->cols = ph_calloc(st->ncolumns ? st->ncolumns : 1, sizeof *t->cols))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < st->ncolumns; i++, t->ncols++) {
        t->cols[i].col = st->columns[i];
        if (load_column(db, t, &t->cols[i], err, errlen) != 0)
            return -1;
    }
    return 0;
}

void ph_table_free(ph_table *t)
{
    for (size_t i = 0; i < t->npk; i++) {
        free(t->pk[i]);
        free(t->pk_types[i]);
    }
    free(t->pk);
    free(t->pk_types);
    for (size_t i = 0; i < t->ncols; i++) {
        free(t->cols[i].ident);
        free(t->cols[i].type);
    }
    free(t->cols);
    free(t->qname);
    free(t->display);
    memset(t, 0, sizeof *t);
}

/* A quoted identifier as written in SQL, unquoted when that is unambiguous. */
static int put_ident(ph_buf *out, const char *q)
{
    size_t n = strlen(q);
    if (n < 2 || q[0] != '"' || strstr(q + 1, "\"\""))
        return ph_buf_append(out, q, n);
    return ph_buf_append(out, q + 1, n - 2);
}

int ph_table_key_text(const ph_table *t, const PGresult *r, int row, ph_buf *out)
{
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < t->npk; k++) {
        const char *s = PQgetvalue(r, row, (int)k);
        int len = PQgetlength(r, row, (int)k);
        rc = (k ? ph_buf_append(out, ", ", 2) : 0) || put_ident(out, t->pk[k]) ||
             ph_buf_append(out, "=", 1);
        for (int i = 0; rc == 0 && i < len; i++) {
            unsigned char ch = (unsigned char)s[i];
            rc = ch < 0x20 || ch == 0x7f || ch == '\\' ? ph_buf_printf(out, "\\x%02x", ch)
                                                       : ph_buf_append_u8(out, ch);
        }
    }
    return rc ? -1 : 0;
}

int ph_table_selected(const ph_schema_table *st, const char *name)
{
    if (!name || strcmp(st->name, name) == 0)
        return 1;
    size_t n = strlen(st->schema);
    return strncmp(name, st->schema, n) == 0 && name[n] == '.' &&
           strcmp(name + n + 1, st->name) == 0;
}
