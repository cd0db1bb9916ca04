/*
 * scan.c — see scan.h.
 */
#include "tools/scan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/mem.h"

int ph_scan_prepare_db(ph_db *db, char *err, size_t errlen)
{
    return ph_db_exec(db,
                      "CREATE SCHEMA IF NOT EXISTS phantom; "
                      "CREATE TABLE IF NOT EXISTS phantom.progress ("
                      " job text NOT NULL, tbl text NOT NULL, phase text NOT NULL,"
                      " last_key text[], rows_done bigint NOT NULL DEFAULT 0,"
                      " started timestamptz NOT NULL DEFAULT now(),"
                      " updated timestamptz NOT NULL DEFAULT now(),"
                      " PRIMARY KEY (job, tbl))",
                      err, errlen);
}

static int build_sql(ph_scan *sc, const char *select_list)
{
    const ph_table *t = sc->t;
    ph_buf a = {0}, b = {0}, keys = {0};
    int rc = 0;
    /* qualified: in ORDER BY a bare name would mean the text output column */
    for (size_t i = 0; i < t->npk; i++)
        rc |= ph_buf_printf(&keys, "%s%s.%s", i ? ", " : "", t->qname, t->pk[i]);
    rc |= ph_buf_printf(&a, "SELECT ");
    for (size_t i = 0; i < t->npk; i++)
        rc |= ph_buf_printf(&a, "%s.%s::text AS phantom_k%zu, ", t->qname, t->pk[i], i);
    rc |= ph_buf_printf(&a, "%s FROM %s", select_list, t->qname);
    rc |= ph_buf_append(&b, a.data, a.len);
    rc |= ph_buf_printf(&b, " WHERE (%s) > (", keys.data);
    for (size_t i = 0; i < t->npk; i++)
        rc |= ph_buf_printf(&b, "%s$%zu::%s", i ? ", " : "", i + 1, t->pk_types[i]);
    rc |= ph_buf_printf(&b, ") ORDER BY %s LIMIT %d", keys.data, sc->batch);
    rc |= ph_buf_printf(&a, " ORDER BY %s LIMIT %d", keys.data, sc->batch);
    ph_buf_free(&keys);
    if (rc) {
        ph_buf_free(&a);
        ph_buf_free(&b);
        return -1;
    }
    sc->first_sql = (char *)a.data;
    sc->next_sql = (char *)b.data;
    return 0;
}

static void free_last(ph_scan *sc)
{
    if (!sc->last)
        return;
    for (size_t i = 0; i < sc->t->npk; i++)
        free(sc->last[i]);
    free(sc->last);
    sc->last = NULL;
}

/* Reads the stored position of (job, table), if any. */
static int load_position(ph_scan *sc, char *err, size_t errlen)
{
    const char *p[2] = {sc->job, sc->t->display};
    PGresult *r = ph_db_query(sc->db,
                              "SELECT p.rows_done, u.k FROM phantom.progress p LEFT JOIN LATERAL "
                              "unnest(p.last_key) WITH ORDINALITY AS u(k, o) ON true WHERE "
                              "p.job = $1 AND p.tbl = $2 ORDER BY u.o",
                              2, p, NULL, NULL, err, errlen);
    if (!r)
        return -1;
    int n = PQntuples(r), rc = 0;
    if (n > 0) {
        sc->resumed = 1;
        sc->done = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        if (!PQgetisnull(r, 0, 1)) {
            if ((size_t)n != sc->t->npk) {
                snprintf(err, errlen,
                         "the progress record of %s has %d key columns, the table's primary key "
                         "%zu: the table changed since the job started (phantom %s --restart)",
                         sc->t->display, n, sc->t->npk, sc->job);
                rc = -1;
            } else if (!(sc->last = ph_calloc(sc->t->npk, sizeof *sc->last))) {
                rc = -1;
            }
            for (int i = 0; rc == 0 && i < n; i++)
                if (!(sc->last[i] = strdup(PQgetvalue(r, i, 1))))
                    rc = -1;
        }
    }
    PQclear(r);
    return rc;
}

int ph_scan_init(ph_scan *sc, ph_db *db, const ph_table *t, const char *job,
                 const char *select_list, int batch, int track, char *err, size_t errlen)
{
    memset(sc, 0, sizeof *sc);
    sc->db = db;
    sc->t = t;
    sc->batch = batch > 0 ? batch : 1000;
    if (!(sc->job = strdup(job)) || build_sql(sc, select_list) != 0) {
        snprintf(err, errlen, "out of memory");
        ph_scan_free(sc);
        return -1;
    }
    if (track && load_position(sc, err, errlen) != 0) {
        ph_scan_free(sc);
        return -1;
    }
    if (!track)
        sc->job[0] = '\0'; /* not tracked */
    return 0;
}

void ph_scan_free(ph_scan *sc)
{
    if (sc->t)
        free_last(sc);
    free(sc->job);
    free(sc->first_sql);
    free(sc->next_sql);
    memset(sc, 0, sizeof *sc);
}

PGresult *ph_scan_next(ph_scan *sc, int *done, char *err, size_t errlen)
{
    *done = 0;
    PGresult *r = sc->last
                      ? ph_db_query_bin(sc->db, sc->next_sql, (int)sc->t->npk,
                                        (const char *const *)sc->last, NULL, NULL, err, errlen)
                      : ph_db_query_bin(sc->db, sc->first_sql, 0, NULL, NULL, NULL, err, errlen);
    if (r && PQntuples(r) == 0) {
        PQclear(r);
        *done = 1;
        return NULL;
    }
    return r;
}

/* The text of binary-format text column c of row i, NUL-terminated (heap). */
static char *text_at(const PGresult *r, int i, int c)
{
    int n = PQgetlength(r, i, c);
    char *s = malloc((size_t)n + 1);
    if (s) {
        memcpy(s, PQgetvalue(r, i, c), (size_t)n);
        s[n] = '\0';
    }
    return s;
}

static int save_position(ph_scan *sc, char *err, size_t errlen)
{
    size_t np = 3 + sc->t->npk;
    ph_buf sql = {0};
    int rc =
        ph_buf_printf(&sql, "INSERT INTO phantom.progress (job, tbl, phase, rows_done, last_key) "
                            "VALUES ($1, $2, 'scan', $3::bigint, ARRAY[");
    for (size_t i = 0; i < sc->t->npk; i++)
        rc |= ph_buf_printf(&sql, "%s$%zu", i ? ", " : "", i + 4);
    rc |= ph_buf_printf(&sql, "]::text[]) ON CONFLICT (job, tbl) DO UPDATE SET rows_done = "
                              "EXCLUDED.rows_done, last_key = EXCLUDED.last_key, updated = now()");
    const char **p = ph_calloc(np, sizeof *p);
    char done[32];
    snprintf(done, sizeof done, "%lld", (long long)sc->done);
    if (rc || !p) {
        ph_buf_free(&sql);
        free(p);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p[0] = sc->job;
    p[1] = sc->t->display;
    p[2] = done;
    for (size_t i = 0; i < sc->t->npk; i++)
        p[3 + i] = sc->last[i];
    PGresult *r = ph_db_query(sc->db, (const char *)sql.data, (int)np, p, NULL, NULL, err, errlen);
    ph_buf_free(&sql);
    free(p);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

int ph_scan_advance(ph_scan *sc, const PGresult *r, char *err, size_t errlen)
{
    int n = PQntuples(r);
    if (n <= 0)
        return 0;
    free_last(sc);
    if (!(sc->last = ph_calloc(sc->t->npk, sizeof *sc->last))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < sc->t->npk; i++)
        if (!(sc->last[i] = text_at(r, n - 1, (int)i))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    sc->done += n;
    return sc->job[0] ? save_position(sc, err, errlen) : 0;
}

int ph_scan_set_phase(ph_db *db, const char *job, const ph_table *t, const char *phase, char *err,
                      size_t errlen)
{
    const char *p[3] = {job, t->display, phase};
    PGresult *r = ph_db_query(db,
                              "INSERT INTO phantom.progress (job, tbl, phase) VALUES ($1, $2, $3) "
                              "ON CONFLICT (job, tbl) DO UPDATE SET phase = EXCLUDED.phase, "
                              "updated = now()",
                              3, p, NULL, NULL, err, errlen);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

int ph_scan_phase(ph_db *db, const char *job, const ph_table *t, char *phase, size_t cap, char *err,
                  size_t errlen)
{
    const char *p[2] = {job, t->display};
    PGresult *r = ph_db_query(db, "SELECT phase FROM phantom.progress WHERE job = $1 AND tbl = $2",
                              2, p, NULL, NULL, err, errlen);
    if (!r)
        return -1;
    snprintf(phase, cap, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return 0;
}

int ph_scan_finish(ph_scan *sc, char *err, size_t errlen)
{
    return sc->job[0] ? ph_scan_set_phase(sc->db, sc->job, sc->t, "done", err, errlen) : 0;
}

int ph_scan_forget(ph_db *db, const char *job, const ph_table *t, char *err, size_t errlen)
{
    const char *p[2] = {job, t->display};
    PGresult *r = ph_db_query(db, "DELETE FROM phantom.progress WHERE job = $1 AND tbl = $2", 2, p,
                              NULL, NULL, err, errlen);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}
