/*
 * reencrypt.c — see reencrypt.h.
 */
#include "tools/reencrypt.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/err.h"
#include "common/mem.h"
#include "crypto/field.h"
#include "tools/pgarray.h"
#include "tools/progress.h"
#include "tools/scan.h"
#include "tools/table.h"

#define MAX_ATTEMPTS 5 /* per batch, on deadlock / lock timeout / serialization */

/* ---- one value ------------------------------------------------------------------------- */

static ph_re_status reseal_ope(const ph_field_key *old, const ph_field_key *active,
                               const uint8_t *env, size_t len, ph_buf *out)
{
    int64_t v = 0;
    uint8_t sealed[PH_FIELD_OPE_ENVELOPE];
    if (ph_field_decrypt_ope(old, env, len, &v) != PH_FIELD_OK)
        return PH_RE_INVALID;
    ph_field_status fs = ph_field_encrypt_ope(active, v, sealed);
    OPENSSL_cleanse(&v, sizeof v);
    if (fs != PH_FIELD_OK)
        return PH_RE_ERROR;
    return ph_buf_append(out, sealed, sizeof sealed) == 0 ? PH_RE_MOVED : PH_RE_ERROR;
}

static ph_re_status reseal_buf(const ph_field_key *old, const ph_field_key *active,
                               ph_field_mode mode, const uint8_t *env, size_t len, ph_buf *out)
{
    ph_buf pt = {0};
    ph_re_status st = PH_RE_MOVED;
    ph_field_status fs = ph_field_decrypt_buf(old, mode, env, len, &pt);
    if (fs != PH_FIELD_OK)
        st = fs == PH_FIELD_EINTERNAL ? PH_RE_ERROR : PH_RE_INVALID;
    else if (ph_field_encrypt_buf(active, mode, pt.data, pt.len, out) != PH_FIELD_OK)
        st = PH_RE_ERROR;
    if (pt.data)
        OPENSSL_cleanse(pt.data, pt.cap);
    ph_buf_free(&pt);
    return st;
}

ph_re_status ph_reencrypt_value(const ph_keysource *ks, const ph_schema_column *col,
                                const uint8_t *env, size_t len, ph_buf *out)
{
    ph_field_info info;
    if (col->mode == PH_MODE_TOKEN || !env || ph_field_peek(env, len, &info) != PH_FIELD_OK ||
        (uint8_t)info.mode != ph_verify_env_mode(col->mode))
        return PH_RE_INVALID;
    const ph_field_key *active = ph_keysource_write_key(ks, col->key_domain);
    if (!active)
        return PH_RE_ERROR;
    if (info.key_id == ph_field_key_id(active))
        return PH_RE_CURRENT;
    const ph_field_key *old = ph_keysource_key_by_id(ks, col->key_domain, info.key_id);
    if (!old)
        return PH_RE_INVALID;
    if (col->mode == PH_MODE_OPE)
        return reseal_ope(old, active, env, len, out);
    return reseal_buf(old, active, (ph_field_mode)info.mode, env, len, out);
}

/* ---- the job -----------------------------------------------------------------------------------
 */

typedef struct rstats {
    int64_t moved, current, conflicts, invalid, nulls;
} rstats;

typedef struct rcol {
    size_t idx; /* in t.cols */
    const ph_schema_column *col;
    char *sql; /* the compare-and-set UPDATE */
    rstats total, batch;
    ph_pgarray *keys; /* per key column: the rows to move */
    ph_pgarray old, new_;
    int n; /* rows to move in this batch */
} rcol;

typedef struct rjob {
    ph_db *db;
    const ph_tool_env *env;
    const ph_reencrypt_opts *o;
    ph_table t;
    rcol *cols;
    size_t ncols;
    ph_buf sig; /* "keys=ID,ID,...": the active key ids the job moves to */
} rjob;

static char *update_sql(const ph_table *t, const char *col)
{
    ph_buf b = {0};
    size_t np = t->npk;
    int rc = ph_buf_printf(&b, "UPDATE %s AS t SET %s = v.n FROM unnest(", t->qname, col);
    for (size_t i = 0; i < np + 2; i++)
        rc |= ph_buf_printf(&b, "%s$%zu::%s[]", i ? ", " : "", i + 1, i < np ? "text" : "bytea");
    rc |= ph_buf_printf(&b, ") AS v(");
    for (size_t i = 0; i < np; i++)
        rc |= ph_buf_printf(&b, "k%zu, ", i + 1);
    rc |= ph_buf_printf(&b, "o, n) WHERE ");
    for (size_t i = 0; i < np; i++)
        rc |= ph_buf_printf(&b, "t.%s = v.k%zu::%s AND ", t->pk[i], i + 1, t->pk_types[i]);
    rc |= ph_buf_printf(&b, "t.%s = v.o", col);
    if (rc) {
        ph_buf_free(&b);
        return NULL;
    }
    return (char *)b.data;
}

static void job_free(rjob *j)
{
    for (size_t i = 0; j->cols && i < j->ncols; i++) {
        rcol *c = &j->cols[i];
        free(c->sql);
        for (size_t k = 0; c->keys && k < j->t.npk; k++)
            ph_pgarray_wipe(&c->keys[k]);
        free(c->keys);
        ph_pgarray_wipe(&c->old);
        ph_pgarray_wipe(&c->new_);
    }
    free(j->cols);
    ph_buf_free(&j->sig);
    ph_table_free(&j->t);
}

/* Selects the bytea, non-token columns of the loaded table; notes the others. */
static int pick_columns(rjob *j, char *err, size_t errlen)
{
    if (!(j->cols = ph_calloc(j->t.ncols ? j->t.ncols : 1, sizeof *j->cols)))
        return ph_errf(err, errlen, "out of memory");
    int rc = ph_buf_printf(&j->sig, "keys=");
    for (size_t i = 0; i < j->t.ncols; i++) {
        const ph_tcol *tc = &j->t.cols[i];
        if (!tc->type || strcmp(tc->type, "bytea") != 0) {
            fprintf(j->o->out, "%s: skipped: %s (run phantom verify)\n", tc->col->qualified,
                    tc->type ? "not bytea, a plaintext column" : "no such column");
            continue;
        }
        if (tc->col->mode == PH_MODE_TOKEN) {
            fprintf(j->o->out, "%s: skipped: token mode\n", tc->col->qualified);
            continue;
        }
        const ph_field_key *k = ph_keysource_write_key(j->env->keys, tc->col->key_domain);
        if (!k)
            return ph_errf(err, errlen, "key domain %s has no active key", tc->col->key_domain);
        rcol *c = &j->cols[j->ncols++];
        c->idx = i;
        c->col = tc->col;
        c->sql = update_sql(&j->t, tc->ident);
        c->keys = ph_calloc(j->t.npk, sizeof *c->keys);
        rc |= ph_buf_printf(&j->sig, "%s%u", j->ncols > 1 ? "," : "", (unsigned)ph_field_key_id(k));
        if (!c->sql || !c->keys)
            rc = -1;
    }
    return rc ? ph_errf(err, errlen, "out of memory") : 0;
}

/* Empties the batch arrays and counters. */
static void batch_reset(rjob *j)
{
    for (size_t i = 0; i < j->ncols; i++) {
        rcol *c = &j->cols[i];
        for (size_t k = 0; k < j->t.npk; k++)
            ph_pgarray_wipe(&c->keys[k]);
        ph_pgarray_wipe(&c->old);
        ph_pgarray_wipe(&c->new_);
        c->n = 0;
        memset(&c->batch, 0, sizeof c->batch);
    }
}

/* Adds row `row` of r to column c's arrays (the value moves from old to new). */
static int add_move(rjob *j, rcol *c, const PGresult *r, int row, const uint8_t *old,
                    size_t old_len, const ph_buf *sealed)
{
    int rc = 0;
    for (size_t k = 0; k < j->t.npk; k++)
        rc |= ph_pgarray_text(&c->keys[k], PQgetvalue(r, row, (int)k),
                              (size_t)PQgetlength(r, row, (int)k));
    rc |= ph_pgarray_bytea(&c->old, old, old_len);
    rc |= ph_pgarray_bytea(&c->new_, sealed->data, sealed->len);
    c->n++;
    return rc;
}

/* Re-encrypts the values of batch r into the columns' arrays. */
static int prepare_batch(rjob *j, const PGresult *r, char *err, size_t errlen)
{
    batch_reset(j);
    ph_buf sealed = {0};
    int rows = PQntuples(r), rc = 0;
    for (int i = 0; rc == 0 && i < rows; i++)
        for (size_t s = 0; rc == 0 && s < j->ncols; s++) {
            rcol *c = &j->cols[s];
            int f = (int)(j->t.npk + s);
            if (PQgetisnull(r, i, f)) {
                c->batch.nulls++;
                continue;
            }
            const uint8_t *v = (const uint8_t *)PQgetvalue(r, i, f);
            size_t len = (size_t)PQgetlength(r, i, f);
            sealed.len = 0;
            ph_re_status st = ph_reencrypt_value(j->env->keys, c->col, v, len, &sealed);
            if (st == PH_RE_MOVED)
                rc = add_move(j, c, r, i, v, len, &sealed);
            else if (st == PH_RE_CURRENT)
                c->batch.current++;
            else if (st == PH_RE_INVALID)
                c->batch.invalid++;
            else
                rc =
                    ph_errf(err, errlen, "%s: re-encryption failed (crypto error or out of memory)",
                            c->col->qualified);
        }
    ph_buf_free(&sealed);
    return rc;
}

/* Runs the column's compare-and-set UPDATE (inside the batch transaction). */
static int apply_column(rjob *j, rcol *c, char *err, size_t errlen)
{
    if (c->n == 0)
        return 0;
    size_t np = j->t.npk + 2;
    const char **p = ph_calloc(np, sizeof *p);
    if (!p)
        return ph_errf(err, errlen, "out of memory");
    int bad = 0;
    for (size_t k = 0; k < j->t.npk; k++)
        bad |= !(p[k] = ph_pgarray_str(&c->keys[k]));
    bad |= !(p[np - 2] = ph_pgarray_str(&c->old));
    bad |= !(p[np - 1] = ph_pgarray_str(&c->new_));
    if (bad) {
        free(p);
        return ph_errf(err, errlen, "out of memory");
    }
    char why[512];
    PGresult *r = ph_db_query(j->db, c->sql, (int)np, p, NULL, NULL, why, sizeof why);
    free(p);
    if (!r)
        return ph_errf(err, errlen, "%s: %s", c->col->qualified, why);
    int64_t updated = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    c->batch.moved = updated;
    c->batch.conflicts = c->n - updated;
    return 0;
}

static int retryable(const ph_db *db)
{
    const char *s = ph_db_sqlstate(db);
    return strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0 || strcmp(s, "55P03") == 0;
}

/* One batch in one transaction: updates + position. 0, 1 = retry, -1. */
static int run_batch(rjob *j, ph_scan *sc, const PGresult *r, char *err, size_t errlen)
{
    if (prepare_batch(j, r, err, errlen) != 0)
        return -1;
    if (ph_db_exec(j->db, "BEGIN", err, errlen) != 0)
        return -1;
    int rc = 0;
    for (size_t s = 0; rc == 0 && s < j->ncols; s++)
        rc = apply_column(j, &j->cols[s], err, errlen);
    if (rc != 0) {
        int again = retryable(j->db);
        char ignore[256];
        ph_db_exec(j->db, "ROLLBACK", ignore, sizeof ignore);
        return again ? 1 : -1;
    }
    if (ph_scan_advance(sc, r, err, errlen) != 0 || ph_db_exec(j->db, "COMMIT", err, errlen) != 0) {
        char ignore[256];
        ph_db_exec(j->db, "ROLLBACK", ignore, sizeof ignore);
        return -1; /* the in-memory position moved: stop; a new run resumes */
    }
    for (size_t s = 0; s < j->ncols; s++) {
        rstats *t = &j->cols[s].total, *b = &j->cols[s].batch;
        t->moved += b->moved;
        t->current += b->current;
        t->conflicts += b->conflicts;
        t->invalid += b->invalid;
        t->nulls += b->nulls;
    }
    return 0;
}

/* The row count shown by the progress bar: the planner's estimate, or a
 * count when the table was never analyzed. */
static int64_t table_total(rjob *j)
{
    if (j->t.reltuples >= 0)
        return (int64_t)j->t.reltuples;
    ph_buf sql = {0};
    char err[256];
    int64_t n = 0;
    if (ph_buf_printf(&sql, "SELECT count(*) FROM %s", j->t.qname) == 0) {
        PGresult *r =
            ph_db_query(j->db, (const char *)sql.data, 0, NULL, NULL, NULL, err, sizeof err);
        if (r && PQntuples(r) == 1)
            n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    ph_buf_free(&sql);
    return n;
}

static int scan_loop(rjob *j, ph_scan *sc, char *err, size_t errlen)
{
    ph_progress p;
    ph_progress_begin(&p, stderr, j->t.display, table_total(j), sc->done);
    int rc = 0, done = 0;
    while (rc == 0 && !done) {
        PGresult *r = ph_scan_next(sc, &done, err, errlen);
        if (!r) {
            rc = done ? 0 : -1;
            break;
        }
        rc = run_batch(j, sc, r, err, errlen);
        for (int attempt = 1; rc == 1 && attempt < MAX_ATTEMPTS; attempt++) {
            PQclear(r); /* re-read the batch: rows may have changed */
            usleep(100000u * (unsigned)attempt);
            if (!(r = ph_scan_next(sc, &done, err, errlen)))
                break;
            rc = run_batch(j, sc, r, err, errlen);
        }
        if (!r)
            rc = done ? 0 : -1;
        else if (rc == 1)
            rc = ph_errf(err, errlen, "a batch kept failing on lock conflicts (%s)",
                         ph_db_sqlstate(j->db));
        PQclear(r);
        ph_progress_update(&p, sc->done);
    }
    ph_progress_end(&p);
    return rc;
}

static char *select_list(const rjob *j)
{
    ph_buf b = {0};
    int rc = 0;
    for (size_t s = 0; s < j->ncols; s++)
        rc |= ph_buf_printf(&b, "%s%s", s ? ", " : "", j->t.cols[j->cols[s].idx].ident);
    if (rc) {
        ph_buf_free(&b);
        return NULL;
    }
    return (char *)b.data;
}

/* Decides from the progress record whether to skip, resume or start over. */
static int position(rjob *j, int *skip, char *err, size_t errlen)
{
    char phase[8192], want[8200];
    *skip = 0;
    if (j->o->restart && ph_scan_forget(j->db, "reencrypt", &j->t, err, errlen) != 0)
        return -1;
    if (ph_scan_phase(j->db, "reencrypt", &j->t, phase, sizeof phase, err, errlen) != 0)
        return -1;
    snprintf(want, sizeof want, "done %s", (const char *)j->sig.data);
    if (strcmp(phase, want) == 0) {
        *skip = 1;
        return 0;
    }
    snprintf(want, sizeof want, "scan %s", (const char *)j->sig.data);
    if (strcmp(phase, want) == 0)
        return 0; /* resume */
    if (phase[0] && ph_scan_forget(j->db, "reencrypt", &j->t, err, errlen) != 0)
        return -1; /* a run towards other keys: start over */
    return ph_scan_set_phase(j->db, "reencrypt", &j->t, want, err, errlen);
}

static void print_summary(const rjob *j, int64_t resumed_at, int skipped)
{
    FILE *out = j->o->out;
    if (skipped) {
        fprintf(out, "%s: already re-encrypted to the active keys (--restart to scan again)\n",
                j->t.display);
        return;
    }
    if (resumed_at > 0)
        fprintf(out, "%s: resumed after %lld rows done by an earlier run\n", j->t.display,
                (long long)resumed_at);
    for (size_t s = 0; s < j->ncols; s++) {
        const rstats *t = &j->cols[s].total;
        fprintf(out,
                "%s: %lld re-encrypted, %lld already current, %lld changed concurrently (left "
                "as written), %lld invalid (left; see verify), %lld NULL\n",
                j->cols[s].col->qualified, (long long)t->moved, (long long)t->current,
                (long long)t->conflicts, (long long)t->invalid, (long long)t->nulls);
    }
}

static int run_table(rjob *j, const ph_schema_table *st, char *err, size_t errlen)
{
    if (ph_table_load(j->db, st, &j->t, err, errlen) != 0 || pick_columns(j, err, errlen) != 0)
        return -1;
    if (j->ncols == 0)
        return 0;
    int skip = 0;
    if (position(j, &skip, err, errlen) != 0)
        return -1;
    if (skip) {
        print_summary(j, 0, 1);
        return 0;
    }
    char *list = select_list(j);
    if (!list)
        return ph_errf(err, errlen, "out of memory");
    ph_scan sc;
    int rc = ph_scan_init(&sc, j->db, &j->t, "reencrypt", list, j->o->batch, 1, err, errlen);
    free(list);
    if (rc != 0)
        return -1;
    int64_t resumed_at = sc.done;
    rc = scan_loop(j, &sc, err, errlen);
    ph_scan_free(&sc);
    if (rc == 0) {
        char done[8200];
        snprintf(done, sizeof done, "done %s", (const char *)j->sig.data);
        rc = ph_scan_set_phase(j->db, "reencrypt", &j->t, done, err, errlen);
    }
    print_summary(j, resumed_at, 0);
    return rc;
}

/* Values still under an older version after the run: written meanwhile by
 * a proxy that had not reloaded its keys. */
static void note_old_versions(const ph_vreport *rep, const ph_tool_env *env, FILE *out)
{
    for (size_t i = 0; i < rep->ncols; i++) {
        const ph_vcol *c = &rep->cols[i];
        const ph_field_key *active = ph_keysource_write_key(env->keys, c->col->key_domain);
        for (size_t k = 0; active && c->scanned && k < c->nkeys; k++)
            if (c->keys[k].key_id != ph_field_key_id(active) && c->keys[k].rows > 0)
                fprintf(out,
                        "note: %s still has %lld value(s) under key id %u, written meanwhile "
                        "under an older version (restart every proxy, then run phantom "
                        "reencrypt again)\n",
                        c->col->qualified, (long long)c->keys[k].rows, (unsigned)c->keys[k].key_id);
    }
}

/* The verify pass: its counts decide the usage recorded. */
static int verify_after(ph_db *db, const ph_tool_env *env, const ph_reencrypt_opts *o, char *err,
                        size_t errlen)
{
    ph_verify_opts vo = {.deep = 0,
                         .table = o->table,
                         .batch = o->batch > 5000 ? o->batch : 5000,
                         .max_listed = 100,
                         .out = o->out,
                         .progress = isatty(STDERR_FILENO)};
    ph_vreport rep;
    fprintf(o->out, "\nverify pass:\n");
    if (ph_verify_scan(db, env, &vo, &rep, err, errlen) != 0) {
        ph_vreport_free(&rep);
        return -1;
    }
    ph_verify_print(&rep, env, o->out);
    note_old_versions(&rep, env, o->out);
    int rc = ph_verify_record_usage(&rep, env, "reencrypt", o->out, err, errlen);
    if (rc == 0)
        rc = ph_verify_clean(&rep) ? 0 : 1;
    ph_vreport_free(&rep);
    return rc;
}

int ph_reencrypt_run(ph_db *db, const ph_tool_env *env, const ph_reencrypt_opts *o, char *err,
                     size_t errlen)
{
    if (ph_scan_prepare_db(db, err, errlen) != 0)
        return -1;
    const ph_schema *s = env->schema;
    int matched = 0, failed = 0;
    for (size_t i = 0; i < s->ntables; i++) {
        const ph_schema_table *st = s->tables[i];
        if (!ph_table_selected(st, o->table) || st->ncolumns == 0)
            continue;
        matched++;
        rjob j = {.db = db, .env = env, .o = o};
        char why[512];
        if (run_table(&j, st, why, sizeof why) != 0) {
            fprintf(stderr, "phantom reencrypt: %s.%s: %s\n", st->schema, st->name, why);
            failed++;
        }
        job_free(&j);
        if (PQstatus(db->conn) != CONNECTION_OK)
            return ph_errf(err, errlen, "the connection to the database was lost");
    }
    if (!matched)
        return ph_errf(err, errlen, "no configured table %s (encrypt: section)",
                       o->table ? o->table : "(none protects a column)");
    if (failed)
        return ph_errf(err, errlen,
                       "%d table(s) not fully re-encrypted (see above); run again to resume",
                       failed);
    return verify_after(db, env, o, err, errlen);
}
