/*
 * migrate.c — running `phantom migrate` on each configured table (see
 * migrate.h for the method, migrate_plan.c for the checks).
 *
 * Owns: the phases of one table, recorded in phantom.progress so that a
 * killed run resumes where it stopped — setup (shadow columns, the change
 * log trigger, the original types), scan (batches by primary key), indexes
 * (built concurrently on the shadow columns), catch-up (rows the application
 * wrote meanwhile) and the swap under a short ACCESS EXCLUSIVE lock; and the
 * conversion of one batch (encrypt or decrypt every value, one UPDATE from
 * unnest() arrays). Plaintext batches are wiped after use; errors name the
 * column and the row's primary key, never a value.
 */
#include "tools/migrate_internal.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/mem.h"
#include "engine/colcrypt.h"
#include "tools/pgarray.h"
#include "tools/progress.h"
#include "tools/scan.h"

typedef struct mg_run {
    ph_db *db;
    const ph_keysource *keys;
    const ph_migrate_opts *o;
    mg_table *m;
    const char *job; /* "migrate" or "decrypt" */
    char *err;
    size_t errlen;
} mg_run;

static int sqlf(mg_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sqlf(mg_run *r, const char *fmt, ...)
{
    ph_buf sql = {0};
    va_list ap;
    va_start(ap, fmt);
    int rc = ph_buf_vprintf(&sql, fmt, ap);
    va_end(ap);
    if (rc != 0)
        snprintf(r->err, r->errlen, "out of memory");
    else
        rc = ph_db_exec(r->db, (const char *)sql.data, r->err, r->errlen);
    ph_buf_free(&sql);
    return rc;
}

static void rollback(mg_run *r)
{
    char e[256];
    ph_db_exec(r->db, "ROLLBACK", e, sizeof e);
}

/* ---- converting one batch ------------------------------------------------------------ */

/* Appends the converted value of column c (result column rc of row i). */
static int convert_value(mg_run *r, const mg_col *c, const PGresult *res, int i, int rc,
                         ph_pgarray *out)
{
    if (PQgetisnull(res, i, rc))
        return ph_pgarray_null(out);
    const uint8_t *v = (const uint8_t *)PQgetvalue(res, i, rc);
    size_t len = (size_t)PQgetlength(res, i, rc);
    ph_buf conv = {0};
    eng_cc_err e = {{0}, {0}};
    ph_enc_opts opts = PH_ENC_OPTS_DEFAULT;
    const ph_schema_column *col = c->tc->col;
    int st = r->o->decrypt ? eng_col_decrypt(r->keys, col, &opts, v, len, 0, &conv, NULL, &e)
                           : eng_col_encrypt(r->keys, col, &opts, 0, eng_col_ltype(col), v, len,
                                             &conv, NULL, &e);
    if (st == 0)
        st = r->o->decrypt ? ph_pgarray_text(out, (const char *)conv.data, conv.len)
                           : ph_pgarray_bytea(out, conv.data, conv.len);
    else {
        ph_buf key = {0};
        int ok = ph_table_key_text(&r->m->t, res, i, &key) == 0 && ph_buf_append_u8(&key, 0) == 0;
        snprintf(r->err, r->errlen, "%s, row (%s): %s", col->qualified,
                 ok ? (const char *)key.data : "?",
                 e.message[0] ? e.message : "cannot convert the value");
        ph_buf_free(&key);
    }
    eng_buf_wipe(&conv);
    return st;
}

/* UPDATE t SET shadow = v.x ... FROM unnest(keys..., values...) for the rows of res
 * (key columns first, then one column per converted column). */
static int write_batch(mg_run *r, const PGresult *res)
{
    mg_table *m = r->m;
    size_t nk = m->t.npk, np = nk + m->ncols;
    ph_pgarray *arr = ph_calloc(np, sizeof *arr);
    const char **params = ph_calloc(np, sizeof *params);
    ph_buf sql = {0};
    int rc = !arr || !params ? -1 : 0;
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        for (size_t k = 0; rc == 0 && k < nk; k++)
            rc = ph_pgarray_text(&arr[k], PQgetvalue(res, i, (int)k),
                                 (size_t)PQgetlength(res, i, (int)k));
        for (size_t c = 0; rc == 0 && c < m->ncols; c++)
            rc = convert_value(r, &m->cols[c], res, i, (int)(nk + c), &arr[nk + c]);
    }
    for (size_t k = 0; rc == 0 && k < np; k++)
        rc = (params[k] = ph_pgarray_str(&arr[k])) ? 0 : -1;
    /* UPDATE t SET s1 = v.c0 ... FROM unnest($1::text[], ..., $n::bytea[]) AS v(k0.., c0..)
     * WHERE (t.k..) = (v.k0::type, ...) */
    char piece[512];
    rc = rc || ph_buf_append(&sql, "UPDATE ", 7) || ph_buf_append_cstr(&sql, m->t.qname);
    if (rc == 0)
        sql.len--; /* drop the NUL appended by ph_buf_append_cstr */
    for (size_t c = 0; rc == 0 && c < m->ncols; c++) {
        snprintf(piece, sizeof piece, "%s %s = v.c%zu%s%s", c ? "," : " SET", m->cols[c].shadow, c,
                 r->o->decrypt ? "::" : "", r->o->decrypt ? m->cols[c].new_type : "");
        rc = ph_buf_append(&sql, piece, strlen(piece));
    }
    rc = rc || ph_buf_append(&sql, " FROM unnest(", 13);
    for (size_t k = 0; rc == 0 && k < np; k++) {
        snprintf(piece, sizeof piece, "%s$%zu::%s[]", k ? ", " : "", k + 1,
                 k < nk || r->o->decrypt ? "text" : "bytea");
        rc = ph_buf_append(&sql, piece, strlen(piece));
    }
    rc = rc || ph_buf_append(&sql, ") AS v(", 7);
    for (size_t k = 0; rc == 0 && k < np; k++) {
        snprintf(piece, sizeof piece, "%s%c%zu", k ? ", " : "", k < nk ? 'k' : 'c',
                 k < nk ? k : k - nk);
        rc = ph_buf_append(&sql, piece, strlen(piece));
    }
    rc = rc || ph_buf_append(&sql, ") WHERE (", 9);
    for (size_t k = 0; rc == 0 && k < nk; k++) {
        snprintf(piece, sizeof piece, "%s%s.%s", k ? ", " : "", m->t.qname, m->t.pk[k]);
        rc = ph_buf_append(&sql, piece, strlen(piece));
    }
    rc = rc || ph_buf_append(&sql, ") = (", 5);
    for (size_t k = 0; rc == 0 && k < nk; k++) {
        snprintf(piece, sizeof piece, "%sv.k%zu::%s", k ? ", " : "", k, m->t.pk_types[k]);
        rc = ph_buf_append(&sql, piece, strlen(piece));
    }
    rc = rc || ph_buf_append(&sql, ")", 2);
    if (rc == 0) {
        PGresult *u = ph_db_query(r->db, (const char *)sql.data, (int)np, params, NULL, NULL,
                                  r->err, r->errlen);
        rc = u ? 0 : -1;
        PQclear(u);
    } else if (!r->err[0]) {
        snprintf(r->err, r->errlen, "out of memory");
    }
    for (size_t k = 0; arr && k < np; k++)
        ph_pgarray_wipe(&arr[k]);
    free(arr);
    free(params);
    ph_buf_free(&sql);
    return rc;
}

/* ---- phases ------------------------------------------------------------------------------- */

static int setup(mg_run *r)
{
    mg_table *m = r->m;
    if (ph_db_exec(r->db, "BEGIN", r->err, r->errlen) != 0)
        return -1;
    int rc =
        sqlf(r, "CREATE TABLE IF NOT EXISTS phantom.changes (id bigserial PRIMARY KEY, tbl "
                "text NOT NULL, pk text[] NOT NULL); CREATE INDEX IF NOT EXISTS changes_tbl ON "
                "phantom.changes (tbl, id); CREATE TABLE IF NOT EXISTS phantom.columns (tbl "
                "text, col text, orig_type text NOT NULL, not_null boolean NOT NULL, PRIMARY KEY "
                "(tbl, col)); CREATE TABLE IF NOT EXISTS phantom.fkeys (child text, name text, "
                "def text NOT NULL, PRIMARY KEY (child, name))");
    for (size_t c = 0; rc == 0 && c < m->ncols; c++) {
        const mg_col *mc = &m->cols[c];
        rc = sqlf(r, "ALTER TABLE %s ADD COLUMN %s %s", m->t.qname, mc->shadow, mc->new_type);
        if (rc == 0 && !r->o->decrypt) {
            char *col = PQescapeLiteral(r->db->conn, mc->tc->col->name, strlen(mc->tc->col->name));
            char *typ = PQescapeLiteral(r->db->conn, mc->tc->type, strlen(mc->tc->type));
            rc = col && typ ? sqlf(r,
                                   "INSERT INTO phantom.columns VALUES (%s, %s, %s, %s) ON "
                                   "CONFLICT (tbl, col) DO UPDATE SET orig_type = "
                                   "EXCLUDED.orig_type, not_null = EXCLUDED.not_null",
                                   m->tbl_lit, col, typ, mc->tc->notnull ? "true" : "false")
                            : -1;
            PQfreemem(col);
            PQfreemem(typ);
        }
    }
    /* the change log: every row the application inserts, or updates in a converted or key
     * column, is logged by primary key and converted again in the catch-up */
    char keys[1024] = "", cols[2048] = "";
    size_t ko = 0, co = 0;
    for (size_t k = 0; k < m->t.npk; k++) {
        ko += (size_t)snprintf(keys + ko, sizeof keys - ko, "%sNEW.%s::text", k ? ", " : "",
                               m->t.pk[k]);
        co += (size_t)snprintf(cols + co, sizeof cols - co, "%s%s", k ? ", " : "", m->t.pk[k]);
    }
    for (size_t c = 0; c < m->ncols; c++)
        co += (size_t)snprintf(cols + co, sizeof cols - co, ", %s", m->cols[c].tc->ident);
    if (rc == 0 && (ko >= sizeof keys || co >= sizeof cols)) {
        snprintf(r->err, r->errlen, "%s: too many key columns", m->t.display);
        rc = -1;
    }
    if (rc == 0)
        rc = sqlf(r,
                  "CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $phantom$ "
                  "BEGIN INSERT INTO phantom.changes (tbl, pk) VALUES (%s, ARRAY[%s]); RETURN "
                  "NULL; END $phantom$; DROP TRIGGER IF EXISTS phantom_migrate_log ON %s; CREATE "
                  "TRIGGER phantom_migrate_log AFTER INSERT OR UPDATE OF %s ON %s FOR EACH ROW "
                  "EXECUTE FUNCTION %s()",
                  m->fn, m->tbl_lit, keys, m->t.qname, cols, m->t.qname, m->fn);
    if (rc == 0)
        rc = ph_scan_set_phase(r->db, r->job, &m->t, "scan", r->err, r->errlen);
    if (rc == 0)
        rc = ph_db_exec(r->db, "COMMIT", r->err, r->errlen);
    if (rc != 0)
        rollback(r);
    return rc;
}

static char *select_list(const mg_table *m, int decrypt)
{
    size_t cap = 64, o = 0;
    for (size_t c = 0; c < m->ncols; c++)
        cap += strlen(m->cols[c].tc->ident) + 16;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (size_t c = 0; c < m->ncols; c++)
        o += (size_t)snprintf(s + o, cap - o, "%s%s%s", c ? ", " : "", m->cols[c].tc->ident,
                              decrypt ? "" : "::text");
    return s;
}

static int scan_phase(mg_run *r)
{
    mg_table *m = r->m;
    char *list = select_list(m, r->o->decrypt);
    ph_scan sc;
    if (!list ||
        ph_scan_init(&sc, r->db, &m->t, r->job, list, r->o->batch, 1, r->err, r->errlen) != 0) {
        free(list);
        return -1;
    }
    free(list);
    if (sc.resumed && sc.done > 0)
        fprintf(r->o->out, "%s: resuming after %lld rows\n", m->t.display, (long long)sc.done);
    char label[128];
    snprintf(label, sizeof label, "%s %s", r->o->decrypt ? "decrypt" : "encrypt", m->t.display);
    ph_progress p;
    ph_progress_begin(&p, r->o->out, label, m->rows, sc.done);
    int rc = 0, done = 0;
    while (rc == 0) {
        PGresult *b = ph_scan_next(&sc, &done, r->err, r->errlen);
        if (!b) {
            rc = done ? 0 : -1;
            break;
        }
        rc = ph_db_exec(r->db, "BEGIN", r->err, r->errlen) || write_batch(r, b) ||
                     ph_scan_advance(&sc, b, r->err, r->errlen) ||
                     ph_db_exec(r->db, "COMMIT", r->err, r->errlen)
                 ? -1
                 : 0;
        PQclear(b);
        if (rc != 0)
            rollback(r);
        ph_progress_update(&p, sc.done);
    }
    if (rc == 0) {
        double secs = ph_progress_end(&p);
        fprintf(r->o->out, "%s: %lld rows in %.1f s\n", m->t.display, (long long)sc.done, secs);
        rc = ph_scan_set_phase(r->db, r->job, &m->t, "indexes", r->err, r->errlen);
    }
    ph_scan_free(&sc);
    return rc;
}

/* "(t.k0, t.k1) = (v.k0::type0, v.k1::type1)" for the key arrays joined as v. */
static int key_match(const mg_table *m, ph_buf *sql)
{
    char piece[512];
    int rc = ph_buf_append(sql, "(", 1);
    for (size_t k = 0; rc == 0 && k < m->t.npk; k++) {
        snprintf(piece, sizeof piece, "%s%s.%s", k ? ", " : "", m->t.qname, m->t.pk[k]);
        rc = ph_buf_append(sql, piece, strlen(piece));
    }
    rc = rc || ph_buf_append(sql, ") = (", 5);
    for (size_t k = 0; rc == 0 && k < m->t.npk; k++) {
        snprintf(piece, sizeof piece, "%sv.k%zu::%s", k ? ", " : "", k, m->t.pk_types[k]);
        rc = ph_buf_append(sql, piece, strlen(piece));
    }
    return rc || ph_buf_append(sql, ")", 1);
}

/* "unnest($1::text[], ...) AS v(k0, ...)" over the key arrays. */
static int key_unnest(const mg_table *m, ph_buf *sql)
{
    char piece[256];
    int rc = ph_buf_append(sql, "unnest(", 7);
    for (size_t k = 0; rc == 0 && k < m->t.npk; k++) {
        snprintf(piece, sizeof piece, "%s$%zu::text[]", k ? ", " : "", k + 1);
        rc = ph_buf_append(sql, piece, strlen(piece));
    }
    rc = rc || ph_buf_append(sql, ") AS v(", 7);
    for (size_t k = 0; rc == 0 && k < m->t.npk; k++) {
        snprintf(piece, sizeof piece, "%sk%zu", k ? ", " : "", k);
        rc = ph_buf_append(sql, piece, strlen(piece));
    }
    return rc || ph_buf_append(sql, ")", 1);
}

static int run_sql(mg_run *r, ph_buf *sql, int n, const char *const *params, int binary,
                   PGresult **out)
{
    if (ph_buf_append_u8(sql, 0) != 0) {
        snprintf(r->err, r->errlen, "out of memory");
        return -1;
    }
    PGresult *res = binary ? ph_db_query_bin(r->db, (const char *)sql->data, n, params, NULL, NULL,
                                             r->err, r->errlen)
                           : ph_db_query(r->db, (const char *)sql->data, n, params, NULL, NULL,
                                         r->err, r->errlen);
    if (!res)
        return -1;
    if (out)
        *out = res;
    else
        PQclear(res);
    return 0;
}

/* Takes up to `limit` entries of the change log (all with 0) and converts the
 * rows they name again, from their current values, in the caller's
 * transaction; *consumed = entries taken. */
static int drain(mg_run *r, int limit, int64_t *consumed)
{
    mg_table *m = r->m;
    size_t nk = m->t.npk;
    char piece[512];
    ph_buf sql = {0};
    PGresult *taken = NULL, *rows = NULL;
    ph_pgarray *keys = ph_calloc(nk, sizeof *keys);
    const char **params = ph_calloc(nk, sizeof *params);
    int rc = keys && params ? 0 : -1;
    snprintf(piece, sizeof piece,
             "DELETE FROM phantom.changes WHERE id IN (SELECT id FROM phantom.changes WHERE tbl "
             "= %s ORDER BY id LIMIT %d) RETURNING ",
             m->tbl_lit, limit > 0 ? limit : 2147483647);
    rc = rc || ph_buf_append(&sql, piece, strlen(piece));
    for (size_t k = 0; rc == 0 && k < nk; k++) {
        snprintf(piece, sizeof piece, "%spk[%zu]", k ? ", " : "", k + 1);
        rc = ph_buf_append(&sql, piece, strlen(piece));
    }
    rc = rc || run_sql(r, &sql, 0, NULL, 0, &taken);
    *consumed = taken ? PQntuples(taken) : 0;
    for (int i = 0; rc == 0 && i < *consumed; i++)
        for (size_t k = 0; rc == 0 && k < nk; k++)
            rc = ph_pgarray_text(&keys[k], PQgetvalue(taken, i, (int)k),
                                 (size_t)PQgetlength(taken, i, (int)k));
    for (size_t k = 0; rc == 0 && k < nk; k++)
        rc = (params[k] = ph_pgarray_str(&keys[k])) ? 0 : -1;
    if (rc == 0 && *consumed > 0) {
        /* clear the shadows first: a unique index on them never sees two rows swap values */
        sql.len = 0;
        snprintf(piece, sizeof piece, "UPDATE %s SET ", m->t.qname);
        rc = ph_buf_append(&sql, piece, strlen(piece));
        for (size_t c = 0; rc == 0 && c < m->ncols; c++) {
            snprintf(piece, sizeof piece, "%s%s = NULL", c ? ", " : "", m->cols[c].shadow);
            rc = ph_buf_append(&sql, piece, strlen(piece));
        }
        rc = rc || ph_buf_append(&sql, " FROM ", 6) || key_unnest(m, &sql) ||
             ph_buf_append(&sql, " WHERE ", 7) || key_match(m, &sql) ||
             run_sql(r, &sql, (int)nk, params, 0, NULL);
        /* the rows as they are now (deleted ones are simply gone) */
        sql.len = 0;
        rc = rc || ph_buf_append(&sql, "SELECT ", 7);
        for (size_t k = 0; rc == 0 && k < nk; k++) {
            snprintf(piece, sizeof piece, "%s.%s::text, ", m->t.qname, m->t.pk[k]);
            rc = ph_buf_append(&sql, piece, strlen(piece));
        }
        for (size_t c = 0; rc == 0 && c < m->ncols; c++) {
            snprintf(piece, sizeof piece, "%s%s.%s%s", c ? ", " : "", m->t.qname,
                     m->cols[c].tc->ident, r->o->decrypt ? "" : "::text");
            rc = ph_buf_append(&sql, piece, strlen(piece));
        }
        snprintf(piece, sizeof piece, " FROM %s JOIN ", m->t.qname);
        rc = rc || ph_buf_append(&sql, piece, strlen(piece)) || key_unnest(m, &sql) ||
             ph_buf_append(&sql, " ON ", 4) || key_match(m, &sql) ||
             run_sql(r, &sql, (int)nk, params, 1, &rows);
        if (rc == 0 && PQntuples(rows) > 0)
            rc = write_batch(r, rows);
    }
    if (rc != 0 && !r->err[0])
        snprintf(r->err, r->errlen, "out of memory");
    PQclear(taken);
    PQclear(rows);
    for (size_t k = 0; keys && k < nk; k++)
        ph_pgarray_wipe(&keys[k]);
    free(keys);
    free(params);
    ph_buf_free(&sql);
    return rc;
}

static int build_indexes(mg_run *r)
{
    mg_table *m = r->m;
    char *schema = ph_db_ident(r->db, m->t.st->schema);
    int rc = schema ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < m->nidx; i++) {
        const mg_index *x = &m->idx[i];
        /* a build killed half-way leaves an invalid index behind: start over */
        rc = sqlf(r, "DROP INDEX CONCURRENTLY IF EXISTS %s.%s", schema, x->tmp);
        double t0 = ph_now();
        rc = rc || ph_db_exec(r->db, x->create_sql, r->err, r->errlen);
        if (rc == 0)
            fprintf(r->o->out, "%s: index %s built on the new column(s) in %.1f s\n", m->t.display,
                    x->name, ph_now() - t0);
    }
    free(schema);
    return rc || ph_scan_set_phase(r->db, r->job, &m->t, "catchup", r->err, r->errlen);
}

/* Online catch-up passes until the log is short, each in its own transaction. */
static int catch_up(mg_run *r)
{
    int64_t total = 0, n = 0;
    int batch = r->o->batch > 0 ? r->o->batch : 1000;
    do {
        if (ph_db_exec(r->db, "BEGIN", r->err, r->errlen) != 0)
            return -1;
        if (drain(r, batch, &n) != 0 || ph_db_exec(r->db, "COMMIT", r->err, r->errlen) != 0) {
            rollback(r);
            return -1;
        }
        total += n;
    } while (n >= batch);
    fprintf(r->o->out, "%s: caught up with %lld row change(s) made during the migration\n",
            r->m->t.display, (long long)total);
    return 0;
}

static int swap_columns(mg_run *r)
{
    mg_table *m = r->m;
    int rc = 0;
    for (size_t c = 0; rc == 0 && c < m->ncols; c++) {
        const mg_col *mc = &m->cols[c];
        rc =
            sqlf(r, "ALTER TABLE %s DROP COLUMN %s", m->t.qname, mc->tc->ident) ||
            sqlf(r, "ALTER TABLE %s RENAME COLUMN %s TO %s", m->t.qname, mc->shadow, mc->tc->ident);
        if (rc == 0 && mc->notnull)
            rc = sqlf(r, "ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", m->t.qname, mc->tc->ident);
        if (rc == 0 && !r->o->decrypt) /* no plaintext can be written here by mistake */
            rc = sqlf(r,
                      "ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s IS NULL OR (octet_length(%s) "
                      ">= 23 AND get_byte(%s, 0) = 1 AND get_byte(%s, 1) BETWEEN 1 AND 4)) NOT "
                      "VALID",
                      m->t.qname, mc->check_name, mc->tc->ident, mc->tc->ident, mc->tc->ident,
                      mc->tc->ident);
    }
    char *schema = ph_db_ident(r->db, m->t.st->schema);
    rc = rc || !schema;
    for (size_t i = 0; rc == 0 && i < m->nidx; i++) {
        const mg_index *x = &m->idx[i];
        rc = sqlf(r, "ALTER INDEX %s.%s RENAME TO %s", schema, x->tmp, x->name);
        if (rc == 0 && x->constraint)
            rc = sqlf(r, "ALTER TABLE %s ADD CONSTRAINT %s UNIQUE USING INDEX %s", m->t.qname,
                      x->constraint, x->name);
    }
    free(schema);
    return rc;
}

/* Drops the foreign keys on converted columns (in the swap's transaction),
 * keeping their definitions in phantom.fkeys until both sides match again. */
static int drop_fkeys(mg_run *r)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < r->m->nfk; i++) {
        const mg_fkey *f = &r->m->fk[i];
        const char *p[3] = {f->child, f->name, f->def};
        PGresult *res = ph_db_query(r->db,
                                    "INSERT INTO phantom.fkeys VALUES ($1, $2, $3) ON CONFLICT "
                                    "DO NOTHING",
                                    3, p, NULL, NULL, r->err, r->errlen);
        rc = res ? 0 : -1;
        PQclear(res);
        if (rc == 0)
            rc = sqlf(r, "ALTER TABLE %s DROP CONSTRAINT %s", f->child, f->name);
    }
    return rc;
}

/* Adds back every kept foreign key whose two sides are now of one type (both
 * encrypted, or both plaintext); the others wait for the other table. */
static int restore_fkeys(mg_run *r)
{
    PGresult *res = ph_db_query(r->db, "SELECT child, name, def FROM phantom.fkeys ORDER BY 1, 2",
                                0, NULL, NULL, NULL, r->err, r->errlen);
    if (!res && strcmp(ph_db_sqlstate(r->db), "42P01") == 0) {
        r->err[0] = '\0'; /* never migrated a foreign key: nothing kept */
        return 0;
    }
    if (!res)
        return -1;
    int rc = 0;
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        const char *child = PQgetvalue(res, i, 0), *name = PQgetvalue(res, i, 1);
        const char *def = PQgetvalue(res, i, 2);
        if (sqlf(r, "ALTER TABLE %s ADD CONSTRAINT %s %s NOT VALID", child, name, def) != 0) {
            if (strcmp(ph_db_sqlstate(r->db), "42804") != 0) /* not "the types differ" */
                rc = -1;
            else
                fprintf(r->o->out,
                        "foreign key %s on %s: added back when its other table is migrated too\n",
                        name, child);
            continue;
        }
        const char *p[2] = {child, name};
        PGresult *d = ph_db_query(r->db, "DELETE FROM phantom.fkeys WHERE child = $1 AND name = $2",
                                  2, p, NULL, NULL, r->err, r->errlen);
        rc = d ? sqlf(r, "ALTER TABLE %s VALIDATE CONSTRAINT %s", child, name) : -1;
        PQclear(d);
        if (rc == 0)
            fprintf(r->o->out, "foreign key %s on %s: added back and validated\n", name, child);
    }
    PQclear(res);
    return rc;
}

/* The final pass and the swap, in one transaction under ACCESS EXCLUSIVE. */
static int finish(mg_run *r)
{
    mg_table *m = r->m;
    if (ph_db_exec(r->db, "BEGIN", r->err, r->errlen) != 0)
        return -1;
    double t0 = 0;
    int64_t n = 0;
    int rc = sqlf(r, "LOCK TABLE %s IN ACCESS EXCLUSIVE MODE", m->t.qname);
    if (rc == 0)
        t0 = ph_now();
    rc = rc || drain(r, 0, &n) ||
         sqlf(r, "DROP TRIGGER IF EXISTS phantom_migrate_log ON %s; DROP FUNCTION IF EXISTS %s()",
              m->t.qname, m->fn) ||
         drop_fkeys(r) || swap_columns(r) ||
         ph_scan_set_phase(r->db, r->job, &m->t, "done", r->err, r->errlen) ||
         ph_db_exec(r->db, "COMMIT", r->err, r->errlen);
    if (rc != 0) {
        rollback(r);
        return -1;
    }
    fprintf(r->o->out,
            "%s: columns swapped; ACCESS EXCLUSIVE lock held %.0f ms (%lld late change(s))\n",
            m->t.display, (ph_now() - t0) * 1000.0, (long long)n);
    for (size_t c = 0; !r->o->decrypt && c < m->ncols; c++)
        if (sqlf(r, "ALTER TABLE %s VALIDATE CONSTRAINT %s", m->t.qname, m->cols[c].check_name))
            return -1;
    return restore_fkeys(r);
}

/* Forgets an interrupted run: its shadow columns, trigger, log and record. */
static int restart(mg_run *r)
{
    mg_table *m = r->m;
    int rc = ph_db_exec(r->db, "BEGIN", r->err, r->errlen);
    for (size_t c = 0; rc == 0 && c < m->ncols; c++)
        rc = sqlf(r, "ALTER TABLE %s DROP COLUMN IF EXISTS %s", m->t.qname, m->cols[c].shadow);
    rc = rc ||
         sqlf(r,
              "DROP TRIGGER IF EXISTS phantom_migrate_log ON %s; DROP FUNCTION IF "
              "EXISTS %s(); DELETE FROM phantom.changes WHERE tbl = %s",
              m->t.qname, m->fn, m->tbl_lit) ||
         ph_scan_forget(r->db, r->job, &m->t, r->err, r->errlen) ||
         ph_db_exec(r->db, "COMMIT", r->err, r->errlen);
    if (rc != 0)
        rollback(r);
    return rc;
}

static int run_table(mg_run *r)
{
    char phase[32];
    if (ph_scan_phase(r->db, r->job, &r->m->t, phase, sizeof phase, r->err, r->errlen) != 0)
        return -1;
    if (strcmp(phase, "done") == 0 || phase[0] == '\0') {
        if (ph_scan_forget(r->db, r->job, &r->m->t, r->err, r->errlen) != 0)
            return -1;
        phase[0] = '\0';
    }
    if (phase[0] == '\0' && setup(r) != 0)
        return -1;
    if ((phase[0] == '\0' || strcmp(phase, "scan") == 0) && scan_phase(r) != 0)
        return -1;
    if (strcmp(phase, "catchup") != 0 && catch_up(r) != 0)
        return -1; /* before building unique indexes: fewer stale duplicates */
    if (strcmp(phase, "catchup") != 0 && build_indexes(r) != 0)
        return -1;
    if (catch_up(r) != 0 || finish(r) != 0)
        return -1;
    if (r->o->vacuum_full) {
        double t0 = ph_now();
        if (sqlf(r, "VACUUM FULL %s", r->m->t.qname) != 0)
            return -1;
        fprintf(r->o->out, "%s: rewritten (VACUUM FULL) in %.1f s\n", r->m->t.display,
                ph_now() - t0);
    }
    return 0;
}

static int one_table(ph_db *db, const ph_schema *schema, const ph_schema_table *st,
                     const ph_keysource *keys, const ph_migrate_opts *o, char *err, size_t errlen)
{
    mg_table m;
    mg_run r = {db, keys, o, &m, o->decrypt ? "decrypt" : "migrate", err, errlen};
    if (mg_plan(db, schema, st, o, &m, err, errlen) != 0) {
        mg_free(&m);
        return -1;
    }
    int rc = 0;
    if (m.refused) {
        fprintf(o->out, "%s: nothing changed\n", m.t.display);
        rc = 1;
    } else if (m.ncols == 0) {
        fprintf(o->out, "%s: nothing to %s (every protected column is already %s)\n", m.t.display,
                o->decrypt ? "decrypt" : "encrypt", o->decrypt ? "plaintext" : "bytea");
        if (!o->dry_run && restore_fkeys(&r) != 0) /* an earlier run may have stopped there */
            rc = -1;
    } else if (o->dry_run) {
        mg_measure(db, &m);
        mg_print_plan(&m, o);
    } else {
        mg_print_plan(&m, o);
        if (o->restart && restart(&r) != 0)
            rc = -1;
        else
            rc = run_table(&r);
        if (rc == 0)
            fprintf(o->out, "%s: done\n", m.t.display);
    }
    mg_free(&m);
    return rc;
}

int ph_migrate_run(const ph_schema *schema, const ph_keysource *keys, const ph_migrate_opts *o,
                   char *err, size_t errlen)
{
    ph_db db;
    if (ph_db_connect(&db, o->dsn, err, errlen) != 0)
        return -1;
    int rc = o->dry_run ? 0 : ph_scan_prepare_db(&db, err, errlen);
    int refused = 0, found = 0;
    for (size_t i = 0; rc == 0 && i < schema->ntables; i++) {
        if (!ph_table_selected(schema->tables[i], o->table))
            continue;
        found = 1;
        int t = one_table(&db, schema, schema->tables[i], keys, o, err, errlen);
        if (t < 0)
            rc = -1;
        refused |= t > 0;
    }
    if (rc == 0 && !found) {
        snprintf(err, errlen, "no configured table matches %s", o->table ? o->table : "");
        rc = -1;
    }
    ph_db_close(&db);
    return rc < 0 ? -1 : refused;
}
