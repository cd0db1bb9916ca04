/*
 * fuzz_rewrite.c — libFuzzer target for the query rewriter.
 *
 * Feeds arbitrary bytes as SQL to ph_rewrite over a fixed schema (the
 * seed's financial-SaaS tables) with a fake encryption callback. Checks: no
 * crash/UB/leak; the fast path never says "no" for a statement the analyzer
 * finds touching a protected column; a rewritten text is NUL-terminated,
 * has the announced length and parses whenever the input parsed (splicing
 * never breaks the statement); failures carry a NUL-terminated message and
 * no plan. Statement shapes: the shape key is a fixed point of the scanner;
 * replaying a text's shape on the text itself, and on its shape key (the
 * same statement with every literal value changed), gives exactly what the
 * full analysis of that text gives, also when the key lookup's scan is handed
 * over (ph_rw_scan, ph_rw_options.scanned) and when a scan of the other text
 * is handed over (it must be ignored); capturing with a scan handed over
 * makes the same shape. Every input runs twice: with one key
 * version per key domain, and as during a key rotation (two live versions:
 * comparisons with deterministic columns expand to both ciphertexts), where
 * splices must still parse and shapes must still replay exactly.
 */
#include <pg_query.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rewrite/rewrite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char yaml[] = "encrypt:\n"
                           "  customers:\n"
                           "    - email: deterministic\n"
                           "    - full_name\n"
                           "    - phone\n"
                           "    - tax_id\n"
                           "    - {column: address, type: jsonb}\n"
                           "    - {column: signup_day, mode: ope, type: date}\n"
                           "    - {column: age, mode: ope, type: int4}\n"
                           "  payments:\n"
                           "    - {column: customer_email, mode: deterministic, key: "
                           "customers.email}\n"
                           "    - card_number\n"
                           "    - {column: paid_on, mode: ope, type: date}\n"
                           "    - {column: card_token, mode: token, format: card}\n"
                           "  sales.leads:\n"
                           "    - contact: deterministic\n";

static ph_schema *schema;
static int versions; /* live key versions per key domain in this run */

static int fake_encrypt(void *ud, const ph_schema_column *col, const char *v, size_t len,
                        ph_buf *out, char *err, size_t errlen)
{
    (void)ud;
    (void)err;
    (void)errlen;
    if (v[len] != '\0')
        abort();
    if (ph_buf_append(out, col->qualified, strlen(col->qualified)) || ph_buf_append(out, v, len))
        return -1;
    return 0;
}

static int fake_eq_versions(void *ud, const ph_schema_column *col)
{
    (void)ud;
    (void)col;
    return versions;
}

/* Version k's ciphertext: fake_encrypt's followed by the byte k. */
static int fake_encrypt_eq(void *ud, const ph_schema_column *col, const char *v, size_t len,
                           ph_buf *out, size_t *lens, size_t max, char *err, size_t errlen)
{
    if (versions < 1 || (size_t)versions > max)
        abort();
    for (int k = 0; k < versions; k++) {
        size_t at = out->len;
        if (fake_encrypt(ud, col, v, len, out, err, errlen) || ph_buf_append_u8(out, (uint8_t)k))
            return -1;
        lens[k] = out->len - at;
    }
    return versions;
}

static ph_rw_options fuzz_options(ph_rw_shape **shape_out)
{
    return (ph_rw_options){.encrypt = fake_encrypt,
                           .eq_versions = fake_eq_versions,
                           .encrypt_eq = fake_encrypt_eq,
                           .shape_out = shape_out};
}

static int same_result(const ph_rw_result *a, const ph_rw_result *b)
{
    if (a->status != b->status)
        return 0;
    if (a->status != PH_RW_OK)
        return 1;
    if ((a->sql == NULL) != (b->sql == NULL) || (a->sql && strcmp(a->sql, b->sql) != 0) ||
        a->nparams != b->nparams || a->nstmts != b->nstmts ||
        a->touches_protected != b->touches_protected || a->cacheable != b->cacheable)
        return 0;
    for (int i = 0; i < a->nparams; i++)
        if (a->params[i] != b->params[i])
            return 0;
    if ((a->param_multi == NULL) != (b->param_multi == NULL) ||
        (a->param_multi && memcmp(a->param_multi, b->param_multi, (size_t)a->nparams) != 0))
        return 0;
    for (size_t i = 0; i < a->nstmts; i++) {
        const ph_rw_stmt *x = &a->stmts[i], *y = &b->stmts[i];
        if (x->kind != y->kind || x->touches_protected != y->touches_protected ||
            x->noutputs != y->noutputs)
            return 0;
        for (size_t k = 0; k < x->noutputs; k++)
            if (x->outputs[k].col != y->outputs[k].col || x->outputs[k].star != y->outputs[k].star)
                return 0;
    }
    return 1;
}

/* Replaying sh on text gives what the full analysis of text gives: with
 * the text scanned by the replay, with the key lookup's scan of the text
 * handed over (ph_rw_options.scanned), and with a scan of another text
 * (`other`, which the replay must ignore). */
static void check_replay(const ph_rw_shape *sh, const char *text, size_t len, const char *other,
                         size_t other_len)
{
    ph_rw_options opt = fuzz_options(NULL);
    ph_rw_result full, shaped;
    ph_rewrite(schema, text, len, &opt, &full);
    ph_rewrite_shaped(sh, text, len, &opt, &shaped);
    if (!same_result(&full, &shaped))
        abort();
    ph_rw_result_free(&shaped);
    const char *texts[2] = {text, other};
    size_t lens[2] = {len, other_len};
    for (int i = 0; i < 2; i++) {
        ph_rw_scanned *sc = ph_rw_scan(texts[i], lens[i]);
        if (!sc)
            abort(); /* both have sh's key */
        opt.scanned = sc;
        ph_rewrite_shaped(sh, text, len, &opt, &shaped);
        if (!same_result(&full, &shaped))
            abort();
        ph_rw_result_free(&shaped);
        ph_rw_scanned_free(sc);
    }
    ph_rw_result_free(&full);
}

static void check_shapes(const char *sql, size_t size, const ph_rw_shape *sh)
{
    char *key = NULL, *key2 = NULL;
    size_t kl = 0, kl2 = 0;
    if (ph_rw_shape_key(sql, size, &key, &kl) != 0) {
        if (sh)
            abort(); /* a shape for a text the scanner cannot key */
        return;
    }
    if (ph_rw_shape_key(key, kl, &key2, &kl2) != 0 || kl2 != kl || memcmp(key, key2, kl) != 0)
        abort(); /* masking is not a fixed point */
    ph_rw_scanned *sc = ph_rw_scan(sql, size);
    size_t skl = 0;
    if (!sc || strcmp(ph_rw_scanned_key(sc, &skl), key) != 0 || skl != kl)
        abort(); /* the kept scan has the same key */
    /* capturing with the scan handed over makes the same shape */
    ph_rw_shape *sh2 = NULL;
    ph_rw_options opt = fuzz_options(&sh2);
    opt.scanned = sc;
    ph_rw_result r;
    ph_rewrite(schema, sql, size, &opt, &r);
    if ((sh == NULL) != (sh2 == NULL) || (sh && strcmp(ph_rw_shape_key_of(sh2), key) != 0))
        abort();
    if (sh2)
        check_replay(sh2, key, kl, sql, size);
    ph_rw_shape_free(sh2);
    ph_rw_result_free(&r);
    ph_rw_scanned_free(sc);
    if (sh) {
        if (strcmp(ph_rw_shape_key_of(sh), key) != 0)
            abort();
        check_replay(sh, sql, size, key, kl);
        check_replay(sh, key, kl, sql, size);
    }
    free(key);
    free(key2);
}

static int parses(const char *sql)
{
    PgQueryParseResult pr = pg_query_parse(sql);
    int ok = pr.error == NULL;
    pg_query_free_parse_result(pr);
    return ok;
}

static void one_run(const uint8_t *data, size_t size)
{
    const char *sql = (const char *)data;
    int fast = ph_rewrite_mentions_protected(schema, sql, size);
    ph_rw_shape *sh = NULL;
    ph_rw_options opt = fuzz_options(&sh);
    ph_rw_result r;
    ph_rw_status st = ph_rewrite(schema, sql, size, &opt, &r);
    if (sh && st != PH_RW_OK)
        abort();
    if (!memchr(sql, '\0', size))
        check_shapes(sql, size, sh);
    ph_rw_shape_free(sh);
    if (!memchr(r.message, '\0', sizeof r.message) || !memchr(r.sqlstate, '\0', 6))
        abort();
    if (st == PH_RW_OK) {
        if (versions == 1) { /* one version: exactly what the rewriter gives without rotation */
            ph_rw_options plain = {.encrypt = fake_encrypt};
            ph_rw_result r1;
            ph_rewrite(schema, sql, size, &plain, &r1);
            if (!same_result(&r, &r1) || r.param_multi)
                abort();
            ph_rw_result_free(&r1);
        }
        if (r.touches_protected && !fast)
            abort(); /* the fast path would have let it through unparsed */
        if (r.nparams < 0 || (r.nparams > 0) != (r.params != NULL))
            abort();
        if (r.sql) {
            if (strlen(r.sql) != r.sql_len)
                abort();
            char *in = malloc(size + 1);
            if (!in)
                abort();
            memcpy(in, data, size);
            in[size] = '\0';
            if (parses(in) && !parses(r.sql))
                abort(); /* a splice broke the statement */
            free(in);
        }
    } else if (r.sql || r.params || r.param_multi || r.stmts || !r.message[0]) {
        abort();
    }
    ph_rw_result_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    if (!schema && ph_schema_load_buffer(&schema, yaml, sizeof yaml - 1, "f", err, sizeof err))
        abort();
    if (size > 4096)
        return 0;
    for (versions = 1; versions <= 2; versions++)
        one_run(data, size);
    return 0;
}
