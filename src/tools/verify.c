/*
 * verify.c — see verify.h.
 */
#include "tools/verify.h"
#include "token/format.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/mem.h"
#include "engine/colcrypt.h"
#include "keys/keyring.h"
#include "tools/progress.h"
#include "tools/scan.h"
#include "tools/table.h"

#define KEYRING_LOCK_MS 10000u

const char *ph_vstatus_str(ph_vstatus st)
{
    switch (st) {
    case PH_V_OK:
        return "valid";
    case PH_V_NOT_ENVELOPE:
        return "not a phantom envelope";
    case PH_V_WRONG_MODE:
        return "an envelope of another mode than the column's";
    case PH_V_UNKNOWN_KEY:
        return "unknown or retired key id for the column's key domain";
    case PH_V_UNDECRYPTABLE:
        return "does not decrypt";
    default:
        return "?";
    }
}

uint8_t ph_verify_env_mode(ph_enc_mode m)
{
    switch (m) {
    case PH_MODE_RANDOMIZED:
        return PH_ENV_RANDOMIZED;
    case PH_MODE_DETERMINISTIC:
        return PH_ENV_DETERMINISTIC;
    case PH_MODE_OPE:
        return PH_ENV_OPE;
    default:
        return PH_ENV_TOKEN;
    }
}

ph_vstatus ph_verify_value(const ph_keysource *ks, const ph_schema_column *col, const uint8_t *v,
                           size_t len, int deep, uint32_t *key_id)
{
    ph_field_info info;
    *key_id = 0;
    if (col->mode == PH_MODE_TOKEN) /* text tokens, not envelopes: their shape is checked */
        return v && ph_token_wellformed(col->format, (const char *)v, len) ? PH_V_OK
                                                                           : PH_V_NOT_ENVELOPE;
    if (!v || ph_field_peek(v, len, &info) != PH_FIELD_OK)
        return PH_V_NOT_ENVELOPE;
    *key_id = info.key_id;
    if ((uint8_t)info.mode != ph_verify_env_mode(col->mode))
        return PH_V_WRONG_MODE;
    if (!ph_keysource_key_by_id(ks, col->key_domain, info.key_id))
        return PH_V_UNKNOWN_KEY;
    if (!deep || col->mode == PH_MODE_TOKEN)
        return PH_V_OK;
    /* A full typed decrypt, as the proxy does for a text-format result. */
    ph_enc_opts session = {.numeric_scale = -1, .tz_fixed = true, .tz_offset_sec = 0};
    ph_buf out = {0};
    eng_cc_err e;
    int rc = eng_col_decrypt(ks, col, &session, v, len, 0, &out, NULL, &e);
    eng_buf_wipe(&out);
    return rc == 0 ? PH_V_OK : PH_V_UNDECRYPTABLE;
}

int ph_vcol_count_key(ph_vcol *c, uint32_t key_id)
{
    for (size_t i = 0; i < c->nkeys; i++)
        if (c->keys[i].key_id == key_id) {
            c->keys[i].rows++;
            return 0;
        }
    ph_kcount *k = realloc(c->keys, (c->nkeys + 1) * sizeof *k);
    if (!k)
        return -1;
    c->keys = k;
    c->keys[c->nkeys++] = (ph_kcount){.key_id = key_id, .rows = 1};
    return 0;
}

/* ---- listing an offending row ------------------------------------------------ */

static void list_invalid(FILE *out, const ph_table *t, const ph_schema_column *col,
                         const PGresult *r, int row, ph_vstatus st)
{
    ph_buf key = {0};
    int ok = ph_table_key_text(t, r, row, &key) == 0 && ph_buf_append_u8(&key, 0) == 0;
    fprintf(out, "INVALID %s %s: %s\n", col->qualified, ok ? (const char *)key.data : "(?)",
            ph_vstatus_str(st));
    ph_buf_free(&key);
}

/* ---- scanning ------------------------------------------------------------------- */

typedef struct tscan {
    ph_db *db;
    const ph_tool_env *env;
    const ph_verify_opts *o;
    ph_table t;
    ph_vcol *cols; /* report entries of this table, in config order */
    size_t *sel;   /* indexes (into cols) of the scanned (bytea) columns */
    size_t nsel;
} tscan;

static int check_value(tscan *ts, ph_vcol *c, const PGresult *r, int row, int field)
{
    c->rows++;
    if (PQgetisnull(r, row, field)) {
        c->nulls++;
        return 0;
    }
    uint32_t key_id = 0;
    ph_vstatus st =
        ph_verify_value(ts->env->keys, c->col, (const uint8_t *)PQgetvalue(r, row, field),
                        (size_t)PQgetlength(r, row, field), ts->o->deep, &key_id);
    /* Conservative usage count: any value naming a live key of the domain. */
    if (key_id && ph_keysource_key_by_id(ts->env->keys, c->col->key_domain, key_id) &&
        ph_vcol_count_key(c, key_id) != 0)
        return -1;
    if (st == PH_V_OK)
        return 0;
    c->invalid++;
    c->by_status[st]++;
    if (c->listed < ts->o->max_listed) {
        c->listed++;
        list_invalid(ts->o->out, &ts->t, c->col, r, row, st);
    }
    return 0;
}

static int check_batch(tscan *ts, const PGresult *r)
{
    int n = PQntuples(r);
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < ts->nsel; j++)
            if (check_value(ts, &ts->cols[ts->sel[j]], r, i, (int)(ts->t.npk + j)) != 0)
                return -1;
    return 0;
}

/* "c1, c2, ..." of the selected columns; NULL on OOM. */
static char *select_list(const tscan *ts)
{
    size_t n = 1;
    for (size_t j = 0; j < ts->nsel; j++)
        n += strlen(ts->t.cols[ts->sel[j]].ident) + 2;
    char *s = malloc(n);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (size_t j = 0; j < ts->nsel; j++) {
        if (j)
            strcat(s, ", ");
        strcat(s, ts->t.cols[ts->sel[j]].ident);
    }
    return s;
}

static int run_scan(tscan *ts, char *err, size_t errlen)
{
    char *list = select_list(ts);
    if (!list)
        return ph_errf(err, errlen, "out of memory");
    ph_scan sc;
    int rc = ph_scan_init(&sc, ts->db, &ts->t, "verify", list, ts->o->batch, 0, err, errlen);
    free(list);
    if (rc != 0)
        return -1;
    ph_progress p;
    if (ts->o->progress)
        ph_progress_begin(&p, stderr, ts->t.display,
                          ts->t.reltuples > 0 ? (int64_t)ts->t.reltuples : 0, 0);
    int done = 0;
    while (rc == 0) {
        PGresult *r = ph_scan_next(&sc, &done, err, errlen);
        if (!r) {
            rc = done ? 0 : -1;
            break;
        }
        rc = check_batch(ts, r);
        if (rc != 0)
            ph_errf(err, errlen, "out of memory");
        else
            rc = ph_scan_advance(&sc, r, err, errlen);
        PQclear(r);
        if (ts->o->progress)
            ph_progress_update(&p, sc.done);
    }
    if (ts->o->progress)
        ph_progress_end(&p);
    ph_scan_free(&sc);
    return done && rc == 0 ? 0 : -1;
}

/* Loads the table, records column types, scans the bytea columns. 0 or -1. */
static int scan_table(tscan *ts, char *err, size_t errlen)
{
    if (ph_table_load(ts->db, ts->cols[0].col->table, &ts->t, err, errlen) != 0)
        return -1;
    if (!(ts->sel = ph_calloc(ts->t.ncols, sizeof *ts->sel)))
        return ph_errf(err, errlen, "out of memory");
    for (size_t i = 0; i < ts->t.ncols; i++) {
        ph_vcol *c = &ts->cols[i];
        if (!ts->t.cols[i].type)
            continue;
        if (!(c->type = strdup(ts->t.cols[i].type)))
            return ph_errf(err, errlen, "out of memory");
        /* token columns hold tokens as text (the DDL rewrite declares them text) */
        c->plaintext = c->col->mode == PH_MODE_TOKEN ? strcmp(c->type, "text") != 0
                                                     : strcmp(c->type, "bytea") != 0;
        if (!c->plaintext)
            ts->sel[ts->nsel++] = i;
    }
    if (ts->nsel > 0 && run_scan(ts, err, errlen) != 0)
        return -1;
    for (size_t j = 0; j < ts->nsel; j++)
        ts->cols[ts->sel[j]].scanned = 1;
    return 0;
}

static int fill_entries(ph_vcol *cols, const ph_schema_table *st)
{
    for (size_t i = 0; i < st->ncolumns; i++) {
        cols[i].col = st->columns[i];
        size_t n = strlen(st->schema) + strlen(st->name) + 2;
        if (!(cols[i].table = malloc(n)))
            return -1;
        snprintf(cols[i].table, n, "%s.%s", st->schema, st->name);
    }
    return 0;
}

int ph_verify_scan(ph_db *db, const ph_tool_env *env, const ph_verify_opts *o, ph_vreport *rep,
                   char *err, size_t errlen)
{
    memset(rep, 0, sizeof *rep);
    const ph_schema *s = env->schema;
    size_t n = 0;
    for (size_t i = 0; i < s->ntables; i++)
        if (ph_table_selected(s->tables[i], o->table))
            n += s->tables[i]->ncolumns;
    if (n == 0 && o->table)
        return ph_errf(err, errlen, "no configured table %s (encrypt: section)", o->table);
    if (n == 0)
        return ph_errf(err, errlen, "the encrypt: section protects no column");
    if (!(rep->cols = ph_calloc(n, sizeof *rep->cols)))
        return ph_errf(err, errlen, "out of memory");
    for (size_t i = 0; i < s->ntables; i++) {
        const ph_schema_table *st = s->tables[i];
        if (!ph_table_selected(st, o->table) || st->ncolumns == 0)
            continue;
        tscan ts = {.db = db, .env = env, .o = o, .cols = rep->cols + rep->ncols};
        rep->ncols += st->ncolumns;
        if (fill_entries(ts.cols, st) != 0) {
            ph_table_free(&ts.t);
            return ph_errf(err, errlen, "out of memory");
        }
        char why[512];
        if (scan_table(&ts, why, sizeof why) != 0) {
            fprintf(stderr, "phantom verify: %s.%s: %s\n", st->schema, st->name, why);
            rep->errors++;
        }
        free(ts.sel);
        ph_table_free(&ts.t);
        if (PQstatus(db->conn) != CONNECTION_OK)
            return ph_errf(err, errlen, "the connection to the database was lost");
    }
    return 0;
}

void ph_vreport_free(ph_vreport *rep)
{
    for (size_t i = 0; rep->cols && i < rep->ncols; i++) {
        free(rep->cols[i].table);
        free(rep->cols[i].type);
        free(rep->cols[i].keys);
    }
    free(rep->cols);
    memset(rep, 0, sizeof *rep);
}

int ph_verify_clean(const ph_vreport *rep)
{
    for (size_t i = 0; i < rep->ncols; i++) {
        const ph_vcol *c = &rep->cols[i];
        if (!c->type || c->plaintext || !c->scanned || c->invalid > 0)
            return 0;
    }
    return rep->errors == 0;
}

/* ---- the per-column table ----------------------------------------------------------- */

/* The DEK version of key_id (0 when the keyring does not know it). */
static uint32_t version_of(const ph_keyring *kr, uint32_t key_id)
{
    ph_key_domain *d;
    ph_dek_version *v;
    return kr && ph_keyring_by_key_id(kr, key_id, &d, &v) == 0 ? v->version : 0;
}

static int cmp_kcount_version(const ph_kcount *a, const ph_kcount *b, const ph_keyring *kr)
{
    uint32_t va = version_of(kr, a->key_id), vb = version_of(kr, b->key_id);
    return va != vb ? (va < vb ? -1 : 1) : (a->key_id < b->key_id ? -1 : a->key_id > b->key_id);
}

static void print_versions(const ph_vcol *c, const ph_keyring *kr, FILE *out)
{
    /* nkeys is small (live versions of one domain): selection order by version. */
    int *done = ph_calloc(c->nkeys ? c->nkeys : 1, sizeof *done);
    if (!done)
        return;
    for (size_t n = 0; n < c->nkeys; n++) {
        size_t best = c->nkeys;
        for (size_t i = 0; i < c->nkeys; i++)
            if (!done[i] &&
                (best == c->nkeys || cmp_kcount_version(&c->keys[i], &c->keys[best], kr) < 0))
                best = i;
        done[best] = 1;
        uint32_t v = version_of(kr, c->keys[best].key_id);
        if (v)
            fprintf(out, "%sv%u=%lld", n ? " " : "", (unsigned)v, (long long)c->keys[best].rows);
        else
            fprintf(out, "%skey id %u=%lld", n ? " " : "", (unsigned)c->keys[best].key_id,
                    (long long)c->keys[best].rows);
    }
    if (c->nkeys == 0)
        fputs("-", out);
    free(done);
}

static void print_row(const ph_vcol *c, int w, const ph_keyring *kr, FILE *out)
{
    fprintf(out, "%-*s %-13s ", w, c->col->qualified, ph_enc_mode_name(c->col->mode));
    if (!c->type) {
        fprintf(out, "%10s %8s %8s  %s\n", "-", "-", "-", "not checked (missing column or table)");
    } else if (c->plaintext) {
        fprintf(out, "%10s %8s %8s  PLAINTEXT COLUMN (type %s, expected bytea)\n", "-", "-", "-",
                c->type);
    } else if (!c->scanned) {
        fprintf(out, "%10s %8s %8s  not checked (scan failed)\n", "-", "-", "-");
    } else {
        fprintf(out, "%10lld %8lld %8lld  ", (long long)c->rows, (long long)c->nulls,
                (long long)c->invalid);
        print_versions(c, kr, out);
        fputc('\n', out);
    }
}

static void print_reasons(const ph_vreport *rep, FILE *out)
{
    for (size_t i = 0; i < rep->ncols; i++) {
        const ph_vcol *c = &rep->cols[i];
        if (c->invalid == 0)
            continue;
        fprintf(out, "%s: %lld invalid value%s (", c->col->qualified, (long long)c->invalid,
                c->invalid == 1 ? "" : "s");
        int first = 1;
        for (int s = 1; s < PH_V_NSTATUS; s++)
            if (c->by_status[s]) {
                fprintf(out, "%s%lld %s", first ? "" : ", ", (long long)c->by_status[s],
                        ph_vstatus_str((ph_vstatus)s));
                first = 0;
            }
        fprintf(out, ")");
        if (c->listed < c->invalid)
            fprintf(out, "; %lld listed", (long long)c->listed);
        fputc('\n', out);
    }
}

void ph_verify_print(const ph_vreport *rep, const ph_tool_env *env, FILE *out)
{
    ph_keyring *kr = NULL;
    char err[256];
    if (ph_keyring_load(env->keyring_path, 1, &kr, err, sizeof err) != 0)
        kr = NULL; /* versions then shown as key ids */
    int w = 6;
    for (size_t i = 0; i < rep->ncols; i++)
        if ((int)strlen(rep->cols[i].col->qualified) > w)
            w = (int)strlen(rep->cols[i].col->qualified);
    fprintf(out, "%-*s %-13s %10s %8s %8s  %s\n", w, "COLUMN", "MODE", "ROWS", "NULLS", "INVALID",
            "KEY VERSIONS (values)");
    for (size_t i = 0; i < rep->ncols; i++)
        print_row(&rep->cols[i], w, kr, out);
    print_reasons(rep, out);
    ph_keyring_free(kr);
}

/* ---- usage records for `keys retire` -------------------------------------------------- */

/* 1 when every schema column of domain has a complete entry in rep. */
static int domain_complete(const ph_vreport *rep, const ph_schema *s, const char *domain,
                           const char **missing)
{
    for (size_t t = 0; t < s->ntables; t++)
        for (size_t c = 0; c < s->tables[t]->ncolumns; c++) {
            const ph_schema_column *col = s->tables[t]->columns[c];
            if (strcmp(col->key_domain, domain) != 0)
                continue;
            int ok = 0;
            for (size_t i = 0; i < rep->ncols && !ok; i++)
                ok = rep->cols[i].col == col && rep->cols[i].scanned && !rep->cols[i].plaintext;
            if (!ok) {
                *missing = col->qualified;
                return 0;
            }
        }
    return 1;
}

static int64_t rows_under(const ph_vreport *rep, const char *domain, uint32_t key_id)
{
    int64_t n = 0;
    for (size_t i = 0; i < rep->ncols; i++) {
        const ph_vcol *c = &rep->cols[i];
        if (strcmp(c->col->key_domain, domain) != 0)
            continue;
        for (size_t k = 0; k < c->nkeys; k++)
            if (c->keys[k].key_id == key_id)
                n += c->keys[k].rows;
    }
    return n;
}

/* The distinct key domains of the report's columns, in first-seen order. */
static size_t report_domains(const ph_vreport *rep, const char **out)
{
    size_t n = 0;
    for (size_t i = 0; i < rep->ncols; i++) {
        const char *d = rep->cols[i].col->key_domain;
        size_t j = 0;
        while (j < n && strcmp(out[j], d) != 0)
            j++;
        if (j == n)
            out[n++] = d;
    }
    return n;
}

static int audit_usage(const ph_tool_env *env, const char *domain, const ph_dek_version *v,
                       const char *by, char *err, size_t errlen)
{
    if (!env->audit)
        return 0;
    char detail[96];
    snprintf(detail, sizeof detail, "%llu row(s), counted by %s", (unsigned long long)v->usage_rows,
             by);
    ph_audit_event ev = {.event = "keys.usage",
                         .outcome = "ok",
                         .domain = domain,
                         .version = v->version,
                         .key_id = v->key_id,
                         .detail = detail};
    return ph_audit_write(env->audit, &ev, 1, err, errlen);
}

/* Records the rows under every active version of domain. */
static int record_domain(ph_keyring *kr, const ph_vreport *rep, const char *domain, int64_t when,
                         char *err, size_t errlen)
{
    ph_key_domain *d = ph_keyring_domain(kr, domain);
    if (!d)
        return ph_errf(err, errlen, "key domain %s is not in the keyring", domain);
    for (size_t j = 0; j < d->n_versions; j++) {
        ph_dek_version *v = &d->versions[j];
        if (v->state == PH_DEK_ACTIVE &&
            ph_keyring_record_usage(kr, domain, v->version,
                                    (uint64_t)rows_under(rep, domain, v->key_id), when, err,
                                    errlen) != 0)
            return -1;
    }
    return 0;
}

/* After the save: one audit record per version, one line per domain. */
static int report_recorded(const ph_tool_env *env, const ph_keyring *kr, const char **domains,
                           size_t n, const char *by, FILE *out, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const ph_key_domain *d = ph_keyring_domain(kr, domains[i]);
        fprintf(out, "usage recorded: %s", domains[i]);
        for (size_t j = 0; d && j < d->n_versions; j++) {
            const ph_dek_version *v = &d->versions[j];
            if (v->state != PH_DEK_ACTIVE)
                continue;
            fprintf(out, " v%u=%llu", (unsigned)v->version, (unsigned long long)v->usage_rows);
            if (audit_usage(env, d->name, v, by, err, errlen) != 0)
                return -1;
        }
        fputc('\n', out);
    }
    return 0;
}

int ph_verify_record_usage(const ph_vreport *rep, const ph_tool_env *env, const char *by, FILE *out,
                           char *err, size_t errlen)
{
    const char **all = ph_calloc(rep->ncols ? rep->ncols : 1, sizeof *all);
    const char **ok = ph_calloc(rep->ncols ? rep->ncols : 1, sizeof *ok);
    size_t nall = all && ok ? report_domains(rep, all) : 0, nok = 0;
    int rc = all && ok ? 0 : ph_errf(err, errlen, "out of memory");
    for (size_t i = 0; rc == 0 && i < nall; i++) {
        const char *missing = NULL;
        if (domain_complete(rep, env->schema, all[i], &missing))
            ok[nok++] = all[i];
        else
            fprintf(out, "usage not recorded: %s (%s was not checked in this run)\n", all[i],
                    missing);
    }
    if (rc != 0 || nok == 0) {
        free(all);
        free(ok);
        return rc;
    }
    int fd = ph_keyring_lock(env->keyring_path, KEYRING_LOCK_MS, err, errlen);
    ph_keyring *kr = NULL;
    rc = fd < 0 ? -1 : ph_keyring_load(env->keyring_path, 0, &kr, err, errlen);
    int64_t when = (int64_t)time(NULL);
    for (size_t i = 0; rc == 0 && i < nok; i++)
        rc = record_domain(kr, rep, ok[i], when, err, errlen);
    if (rc == 0)
        rc = ph_keyring_save(kr, env->keyring_path, err, errlen);
    if (rc == 0)
        rc = report_recorded(env, kr, ok, nok, by, out, err, errlen);
    ph_keyring_free(kr);
    if (fd >= 0)
        close(fd);
    free(all);
    free(ok);
    return rc;
}
