/*
 * token_bench.c — per-value cost of tokenization (src/token/token.c), built
 * and run by bench/token. A benchmark, not a test.
 *
 * For each vault given (BENCH_TOKEN_SQLITE: a path for a new SQLite vault;
 * BENCH_TOKEN_PG: a libpq DSN of a PostgreSQL vault database), one thread,
 * BENCH_TOKEN_VALUES distinct 16-digit card numbers (default 2000), format
 * card, one key domain:
 *   new_us            tokenize a value never seen: lookup miss in the vault,
 *                     a new random token, seal, insert (SQLite: one fsync'd
 *                     WAL commit per value; PostgreSQL: two round trips)
 *   tokenize_us       tokenize a stored value, caches empty: one vault lookup
 *   detokenize_us     detokenize a token, caches empty: one vault lookup + open
 *   cached_tokenize_us, cached_detokenize_us   the same served by the cache
 * Each figure is the fastest of BENCH_TOKEN_ROUNDS rounds (default 5; the
 * least disturbed on a shared machine; the values of each round are fresh,
 * the first NEW_VALUES of them timed as new). The baseline, timed in each
 * round right after the cached figures: the deterministic field encryption
 * of the same values (ph_field_encrypt, AES-256-SIV: what a `deterministic`
 * column costs per value); the ratios are the fastest token figure / the
 * fastest SIV figure.
 *
 * Last line: token tokenize_us=… detokenize_us=… cached_tokenize_us=…
 * cached_detokenize_us=… new_us=… siv_ns=… (SQLite figures), followed by
 * pg_tokenize_us=… pg_detokenize_us=… pg_new_us=… when a PostgreSQL vault
 * was measured.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/field.h"
#include "token/token.h"

#define DOMAIN     "bench.card"
#define NEW_VALUES 300 /* values tokenized for the first time per round */

typedef struct figures {
    double new_us, tok_us, detok_us, ctok_us, cdetok_us;
    double siv_ns;                         /* the baseline, timed within the same rounds */
    double x_tok, x_detok, x_ctok, x_cdet; /* the fastest figures / the fastest SIV */
} figures;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The fastest round: the least disturbed on a shared machine. */
static double fastest(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[0];
}

static const ph_field_key *the_key;

static const ph_field_key *by_id(void *ud, uint32_t id)
{
    (void)ud;
    return id == ph_field_key_id(the_key) ? the_key : NULL;
}

static void make_values(char (*v)[20], int n, unsigned seed)
{
    for (int i = 0; i < n; i++) {
        unsigned x = seed * 2654435761u + (unsigned)i * 40503u;
        snprintf(v[i], 20, "4%07u%08u", x % 10000000u, (unsigned)i % 100000000u);
    }
}

/* Time per call in µs of tokenizing (create) or detokenizing every value. */
static double run_tokenize(ph_tokens *t, const ph_token_keys *k, char (*v)[20], int n)
{
    ph_buf out = {0};
    ph_token_err e;
    double t0 = now_us();
    for (int i = 0; i < n; i++) {
        out.len = 0;
        if (ph_tokens_tokenize(t, k, PH_TOKEN_CARD, (const uint8_t *)v[i], 16, 1, &out, &e) != 1) {
            fprintf(stderr, "token_bench: tokenize: %s\n", e.message);
            exit(1);
        }
    }
    double us = (now_us() - t0) / n;
    ph_buf_free(&out);
    return us;
}

static double run_detokenize(ph_tokens *t, const ph_token_keys *k, char (*tok)[PH_TOKEN_MAX_LEN],
                             int n)
{
    ph_buf out = {0};
    ph_token_err e;
    double t0 = now_us();
    for (int i = 0; i < n; i++) {
        out.len = 0;
        if (ph_tokens_detokenize(t, k, tok[i], strlen(tok[i]), &out, &e) != 0) {
            fprintf(stderr, "token_bench: detokenize: %s\n", e.message);
            exit(1);
        }
    }
    double us = (now_us() - t0) / n;
    ph_buf_free(&out);
    return us;
}

static void tokens_of(ph_tokens *t, const ph_token_keys *k, char (*v)[20],
                      char (*tok)[PH_TOKEN_MAX_LEN], int n)
{
    ph_buf out = {0};
    ph_token_err e;
    for (int i = 0; i < n; i++) {
        out.len = 0;
        if (ph_tokens_tokenize(t, k, PH_TOKEN_CARD, (const uint8_t *)v[i], 16, 0, &out, &e) != 1 ||
            out.len >= PH_TOKEN_MAX_LEN)
            exit(1);
        memcpy(tok[i], out.data, out.len);
        tok[i][out.len] = '\0';
    }
    ph_buf_free(&out);
}

/* ns per deterministic field encryption of each value (the baseline). */
static double run_siv(char (*v)[20], int n)
{
    ph_buf out = {0};
    double t0 = now_us();
    for (int i = 0; i < n; i++) {
        out.len = 0;
        if (ph_field_encrypt_buf(the_key, PH_FIELD_DETERMINISTIC, (const uint8_t *)v[i], 16,
                                 &out) != PH_FIELD_OK)
            exit(1);
    }
    double ns = (now_us() - t0) * 1000.0 / n;
    ph_buf_free(&out);
    return ns;
}

static void measure(const char *name, ph_vault *vault, int n, int rounds, figures *f)
{
    ph_tokens *t = ph_tokens_new(vault, (size_t)n * 2);
    const ph_field_key *live[1] = {the_key};
    ph_token_keys k = {DOMAIN, live, 1, by_id, NULL};
    char(*v)[20] = calloc((size_t)n, sizeof *v);
    char(*tok)[PH_TOKEN_MAX_LEN] = calloc((size_t)n, sizeof *tok);
    double r_new[16], r_tok[16], r_det[16], r_ctok[16], r_cdet[16], r_siv[16];
    int n_new = n < NEW_VALUES ? n : NEW_VALUES; /* each costs a durable commit */
    if (!t || !v || !tok)
        exit(1);
    unsigned salt = (unsigned)time(NULL);
    for (int r = 0; r < rounds; r++) {
        make_values(v, n, salt + (unsigned)r * 7919u);
        ph_tokens_cache_clear(t);
        r_new[r] = run_tokenize(t, &k, v, n_new); /* creates the records */
        (void)run_tokenize(t, &k, v + n_new, n - n_new);
        tokens_of(t, &k, v, tok, n);
        ph_tokens_cache_clear(t);
        r_tok[r] = run_tokenize(t, &k, v, n); /* from the vault; fills the value cache */
        ph_tokens_cache_clear(t);
        r_det[r] = run_detokenize(t, &k, tok, n); /* from the vault; fills the token cache */
        r_cdet[r] = run_detokenize(t, &k, tok, n);
        ph_tokens_cache_clear(t);
        (void)run_tokenize(t, &k, v, n);
        r_ctok[r] = run_tokenize(t, &k, v, n);
        r_siv[r] = run_siv(v, n);
    }
    f->siv_ns = fastest(r_siv, rounds);
    f->new_us = fastest(r_new, rounds);
    f->tok_us = fastest(r_tok, rounds);
    f->detok_us = fastest(r_det, rounds);
    f->ctok_us = fastest(r_ctok, rounds);
    f->cdetok_us = fastest(r_cdet, rounds);
    f->x_tok = f->tok_us * 1000 / f->siv_ns;
    f->x_detok = f->detok_us * 1000 / f->siv_ns;
    f->x_ctok = f->ctok_us * 1000 / f->siv_ns;
    f->x_cdet = f->cdetok_us * 1000 / f->siv_ns;
    printf("token %-8s new %.2f us, tokenize %.2f us, detokenize %.2f us, cached tokenize %.2f "
           "us, cached detokenize %.2f us (%d values x %d rounds)\n",
           name, f->new_us, f->tok_us, f->detok_us, f->ctok_us, f->cdetok_us, n, rounds);
    free(v);
    free(tok);
    ph_tokens_free(t);
}

int main(void)
{
    const char *sq = getenv("BENCH_TOKEN_SQLITE"), *pg = getenv("BENCH_TOKEN_PG");
    int n = getenv("BENCH_TOKEN_VALUES") ? atoi(getenv("BENCH_TOKEN_VALUES")) : 2000;
    int rounds = getenv("BENCH_TOKEN_ROUNDS") ? atoi(getenv("BENCH_TOKEN_ROUNDS")) : 5;
    if (n < 10)
        n = 10;
    if (rounds < 1 || rounds > 16)
        rounds = 5;
    uint8_t dek[PH_FIELD_DEK_LEN];
    for (size_t i = 0; i < sizeof dek; i++)
        dek[i] = (uint8_t)(i * 11 + 3);
    ph_field_key *key = ph_field_key_new(dek, 1, DOMAIN);
    if (!key || !sq) {
        fprintf(stderr, "token_bench: set BENCH_TOKEN_SQLITE (and optionally BENCH_TOKEN_PG)\n");
        return 2;
    }
    the_key = key;
    char err[256];
    ph_vault *v = ph_vault_sqlite_open(sq, err, sizeof err);
    if (!v) {
        fprintf(stderr, "token_bench: %s\n", err);
        return 1;
    }
    figures fs = {0}, fp = {0};
    measure("sqlite", v, n, rounds, &fs);
    printf("token sqlite / SIV (%.0f ns, timed in the same rounds): tokenize %.0fx, detokenize %.0fx, "
           "cached tokenize %.1fx, cached detokenize %.2fx\n",
           fs.siv_ns, fs.x_tok, fs.x_detok, fs.x_ctok, fs.x_cdet);
    int have_pg = 0;
    if (pg && *pg) {
        ph_vault *pv = ph_vault_pg_open(pg, 1, err, sizeof err);
        if (!pv) {
            fprintf(stderr, "token_bench: postgres vault: %s\n", err);
            return 1;
        }
        measure("postgres", pv, n, rounds, &fp);
        printf("token postgres / SIV (%.0f ns, timed in the same rounds): tokenize %.0fx, detokenize "
               "%.0fx, cached tokenize %.1fx, cached detokenize %.2fx\n",
               fp.siv_ns, fp.x_tok, fp.x_detok, fp.x_ctok, fp.x_cdet);
        have_pg = 1;
    }
    printf("token tokenize_us=%.2f detokenize_us=%.2f cached_tokenize_us=%.2f "
           "cached_detokenize_us=%.2f new_us=%.2f siv_ns=%.0f tokenize_vs_siv=%.0f "
           "cached_tokenize_vs_siv=%.1f cached_detokenize_vs_siv=%.2f",
           fs.tok_us, fs.detok_us, fs.ctok_us, fs.cdetok_us, fs.new_us, fs.siv_ns, fs.x_tok,
           fs.x_ctok, fs.x_cdet);
    if (have_pg)
        printf(" pg_tokenize_us=%.2f pg_detokenize_us=%.2f pg_new_us=%.2f", fp.tok_us, fp.detok_us,
               fp.new_us);
    printf("\n");
    ph_field_key_free(key);
    return 0;
}
