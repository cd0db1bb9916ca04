/*
 * test_token_vault.c — the token service over the SQLite vault
 * (src/token/token.c, vault_sqlite.c, token_cache.c), in a temporary
 * directory:
 *   - same value -> same token; a lookup finds it without writing; a value
 *     never tokenized gets a miss token and no record; detokenization gives
 *     the value back; an unknown token is an error;
 *   - a restart (new service, same file) keeps every token;
 *   - collisions: an injected RNG that repeats a token makes the vault's
 *     unique constraint refuse it and a new token is drawn;
 *   - the file holds no plaintext value (searched byte for byte, WAL too);
 *   - records are bound to their token (a sealed value moved to another
 *     token does not open) and to their domain;
 *   - DEK rotation keeps tokens; a destroyed key makes its tokens
 *     undetokenizable, also when their value is cached;
 *   - threads tokenizing one value at once agree on one token;
 *   - the LRU cache evicts the least recently used entry.
 */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "token/token.h"
#include "token/token_cache.h"

#define DOMAIN "payments.card_number"

typedef struct tfx {
    char dir[64], path[96];
    ph_field_key *k1, *k2; /* key ids 1 and 2 of DOMAIN */
    ph_field_key *other;   /* key id 7 of another domain */
    int k1_gone;           /* by_id: key 1 destroyed */
    ph_tokens *t;
} tfx;

static const ph_field_key *by_id(void *ud, uint32_t id)
{
    tfx *f = ud;
    if (id == 1 && !f->k1_gone)
        return f->k1;
    return id == 2 ? f->k2 : NULL;
}

static ph_tokens *open_service(tfx *f, size_t cache)
{
    char err[256] = "";
    ph_vault *v = ph_vault_sqlite_open(f->path, err, sizeof err);
    if (!v)
        fail_msg("open: %s", err);
    ph_tokens *t = ph_tokens_new(v, cache);
    assert_non_null(t);
    return t;
}

static int setup(void **state)
{
    tfx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/phantom-tokvault.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/tokens.db", f->dir);
    uint8_t dek[PH_FIELD_DEK_LEN];
    memset(dek, 0x11, sizeof dek);
    f->k1 = ph_field_key_new(dek, 1, DOMAIN);
    memset(dek, 0x22, sizeof dek);
    f->k2 = ph_field_key_new(dek, 2, DOMAIN);
    memset(dek, 0x33, sizeof dek);
    f->other = ph_field_key_new(dek, 7, "customers.tax_id");
    assert_true(f->k1 && f->k2 && f->other);
    f->t = open_service(f, 100);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    tfx *f = *state;
    ph_tokens_free(f->t);
    ph_field_key_free(f->k1);
    ph_field_key_free(f->k2);
    ph_field_key_free(f->other);
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char p[400];
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* The keys of DOMAIN: live = k1 only, or k2 (active) then k1. */
static ph_token_keys keys(tfx *f, int rotated, const ph_field_key **live)
{
    live[0] = rotated ? f->k2 : f->k1;
    live[1] = f->k1;
    return (ph_token_keys){DOMAIN, live, rotated ? 2 : 1, by_id, f};
}

/* Tokenizes v; returns the outcome (1 token, 0 miss) and the token in out. */
static int tokenize(tfx *f, const ph_token_keys *k, ph_token_format fmt, const char *v, int create,
                    char *out)
{
    ph_buf b = {0};
    ph_token_err e = {{0}, {0}};
    int rc = ph_tokens_tokenize(f->t, k, fmt, (const uint8_t *)v, strlen(v), create, &b, &e);
    if (rc < 0)
        fail_msg("tokenize: %s %s", e.sqlstate, e.message);
    assert_true(b.len > 0 && b.len <= PH_TOKEN_MAX_LEN);
    memcpy(out, b.data, b.len);
    out[b.len] = '\0';
    ph_buf_free(&b);
    return rc;
}

/* Detokenizes tok: 0 with the value in out, or -1 with the error. */
static int detokenize(tfx *f, const ph_token_keys *k, const char *tok, char *out, ph_token_err *e)
{
    ph_buf b = {0};
    int rc = ph_tokens_detokenize(f->t, k, tok, strlen(tok), &b, e);
    if (rc == 0) {
        memcpy(out, b.data, b.len);
        out[b.len] = '\0';
    }
    ph_buf_free(&b);
    return rc;
}

static void test_same_value_same_token(void **state)
{
    tfx *f = *state;
    const ph_field_key *live[2];
    ph_token_keys k = keys(f, 0, live);
    char a[400], b[400], c[400], v[400];
    ph_token_err e = {{0}, {0}};
    ph_tokens_stats st;
    assert_int_equal(tokenize(f, &k, PH_TOKEN_CARD, "4111111111111111", 1, a), 1);
    assert_int_equal(tokenize(f, &k, PH_TOKEN_CARD, "4111111111111111", 1, b), 1);
    assert_string_equal(a, b);
    assert_string_not_equal(a, "4111111111111111");
    ph_tokens_cache_clear(f->t); /* again from the vault */
    assert_int_equal(tokenize(f, &k, PH_TOKEN_CARD, "4111111111111111", 0, c), 1);
    assert_string_equal(a, c);
    assert_int_equal(detokenize(f, &k, a, v, &e), 0);
    assert_string_equal(v, "4111111111111111");
    ph_tokens_get_stats(f->t, &st);
    assert_int_equal(st.created, 1);

    /* a lookup of a value never tokenized: a miss token, nothing written */
    assert_int_equal(tokenize(f, &k, PH_TOKEN_CARD, "5555555555554444", 0, c), 0);
    assert_memory_equal(c, PH_TOKEN_MISS_PREFIX, strlen(PH_TOKEN_MISS_PREFIX));
    ph_tokens_get_stats(f->t, &st);
    assert_int_equal(st.created, 1);
    assert_int_equal(st.misses, 1);
    assert_int_equal(detokenize(f, &k, c, v, &e), -1); /* the miss token is no token */
    assert_string_equal(e.sqlstate, "XX001");

    /* an unknown token is an error, never passed off as a value */
    assert_int_equal(detokenize(f, &k, "4000000000000002", v, &e), -1);
    assert_string_equal(e.sqlstate, "XX001");
    assert_non_null(strstr(e.message, "not in the token vault"));
    /* a value the format refuses, when stored */
    ph_buf bb = {0};
    assert_int_equal(
        ph_tokens_tokenize(f->t, &k, PH_TOKEN_CARD, (const uint8_t *)"12ab", 4, 1, &bb, &e), -1);
    assert_string_equal(e.sqlstate, "22P02");
    assert_null(strstr(e.message, "12ab"));
    ph_buf_free(&bb);
}

/* A new service on the same file: every token is still there. */
static void test_restart(void **state)
{
    tfx *f = *state;
    const ph_field_key *live[2];
    ph_token_keys k = keys(f, 0, live);
    char t1[400], t2[400], again[400], v[400];
    ph_token_err e = {{0}, {0}};
    tokenize(f, &k, PH_TOKEN_EMAIL, "ann@example.com", 1, t1);
    tokenize(f, &k, PH_TOKEN_OPAQUE, "some opaque value", 1, t2);
    ph_tokens_free(f->t);
    f->t = open_service(f, 100);
    assert_int_equal(tokenize(f, &k, PH_TOKEN_EMAIL, "ann@example.com", 1, again), 1);
    assert_string_equal(again, t1);
    assert_int_equal(detokenize(f, &k, t2, v, &e), 0);
    assert_string_equal(v, "some opaque value");
    ph_tokens_stats st;
    ph_tokens_get_stats(f->t, &st);
    assert_int_equal(st.created, 0);
}

/* RNG: the first `repeat` fills give the same bytes, then OpenSSL's. */
typedef struct rep_rng {
    int repeat, calls;
} rep_rng;

static int repeating_rng(void *ud, uint8_t *buf, size_t n)
{
    rep_rng *r = ud;
    if (r->calls++ < r->repeat) {
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)(i * 37 + 5);
        return 0;
    }
    return ph_token_rng_default(NULL, buf, n);
}

static void test_collision(void **state)
{
    tfx *f = *state;
    const ph_field_key *live[2];
    ph_token_keys k = keys(f, 0, live);
    rep_rng r = {.repeat = 2};
    char a[400], b[400], va[400], vb[400];
    ph_token_err e = {{0}, {0}};
    ph_tokens_set_rng(f->t, repeating_rng, &r);
    tokenize(f, &k, PH_TOKEN_OPAQUE, "first value", 1, a);  /* draw 1 */
    tokenize(f, &k, PH_TOKEN_OPAQUE, "second value", 1, b); /* draw 2 repeats draw 1 */
    ph_tokens_stats st;
    ph_tokens_get_stats(f->t, &st);
    assert_int_equal(st.collisions, 1);
    assert_int_equal(st.created, 2);
    assert_string_not_equal(a, b);
    ph_tokens_cache_clear(f->t);
    assert_int_equal(detokenize(f, &k, a, va, &e), 0);
    assert_int_equal(detokenize(f, &k, b, vb, &e), 0);
    assert_string_equal(va, "first value");
    assert_string_equal(vb, "second value");
    /* a token space that never yields a free token is an error after 32 draws */
    r.repeat = 1000;
    r.calls = 0;
    ph_buf out = {0};
    assert_int_equal(
        ph_tokens_tokenize(f->t, &k, PH_TOKEN_OPAQUE, (const uint8_t *)"third", 5, 1, &out, &e),
        -1);
    assert_non_null(strstr(e.message, "exist already"));
    ph_buf_free(&out);
    ph_tokens_set_rng(f->t, NULL, NULL);
}

static int file_contains(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return 0;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, fp), k = strlen(needle);
    fclose(fp);
    for (size_t i = 0; k <= n && i + k <= n; i++)
        if (memcmp(buf + i, needle, k) == 0)
            return 1;
    return 0;
}

static void test_no_plaintext_in_file(void **state)
{
    tfx *f = *state;
    const ph_field_key *live[2];
    ph_token_keys k = keys(f, 0, live);
    char t[400], wal[128];
    const char *values[] = {"cnry-vault-9f1c2d3e4a5b6c7d8e9f", "cnry9f1c2d3e4a5b@example.com",
                            "7342519086132450"};
    tokenize(f, &k, PH_TOKEN_OPAQUE, values[0], 1, t);
    assert_true(file_contains(f->path, t) ||
                file_contains(strcat(strcpy(wal, f->path), "-wal"), t)); /* the search works */
    tokenize(f, &k, PH_TOKEN_EMAIL, values[1], 1, t);
    tokenize(f, &k, PH_TOKEN_CARD, values[2], 1, t);
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    for (size_t i = 0; i < 3; i++) {
        assert_false(file_contains(f->path, values[i]));
        assert_false(file_contains(wal, values[i]));
    }
    assert_false(file_contains(f->path, "cnry9f1c2d3e4a5b")); /* not even the local part */
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
}

/* Moves the sealed value of token `from` to token `to` in the file. */
static void move_sealed(const char *path, const char *from, const char *to)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char sql[1200];
    snprintf(sql, sizeof sql,
             "UPDATE phantom_tokens SET sealed = (SELECT sealed FROM phantom_tokens WHERE token = "
             "'%s') WHERE token = '%s'",
             from, to);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_changes(db), 1);
    sqlite3_close(db);
}

static void test_records_bound(void **state)
{
    tfx *f = *state;
    const ph_field_key *live[2];
    ph_token_keys k = keys(f, 0, live);
    char a[400], b[400], v[400];
    ph_token_err e = {{0}, {0}};
    tokenize(f, &k, PH_TOKEN_OPAQUE, "value a", 1, a);
    tokenize(f, &k, PH_TOKEN_OPAQUE, "value b", 1, b);
    ph_tokens_cache_clear(f->t);
    move_sealed(f->path, a, b);
    assert_int_equal(detokenize(f, &k, b, v, &e), -1);
    assert_string_equal(e.sqlstate, "XX001");
    assert_non_null(strstr(e.message, "another token"));
    assert_int_equal(detokenize(f, &k, a, v, &e), 0);
    /* another domain: its key cannot find or open DOMAIN's records */
    const ph_field_key *olive[1] = {f->other};
    ph_token_keys ok = {"customers.tax_id", olive, 1, by_id, f};
    assert_int_equal(detokenize(f, &ok, a, v, &e), -1);
    char c[400];
    assert_int_equal(tokenize(f, &ok, PH_TOKEN_OPAQUE, "value a", 0, c), 0); /* a miss */
}

/* After a rotation (k2 active, k1 live) the old tokens are found and new
 * values are sealed under k2; once k1 is destroyed its tokens do not
 * detokenize, cached or not. */
static void test_rotation_and_destroyed_key(void **state)
{
    tfx *f = *state;
    const ph_field_key *live[2];
    ph_token_keys k1 = keys(f, 0, live);
    char old[400], again[400], fresh[400], v[400];
    ph_token_err e = {{0}, {0}};
    tokenize(f, &k1, PH_TOKEN_DIGITS, "123456789", 1, old);
    const ph_field_key *live2[2];
    ph_token_keys k2 = keys(f, 1, live2);
    ph_tokens_cache_clear(f->t);
    assert_int_equal(tokenize(f, &k2, PH_TOKEN_DIGITS, "123456789", 1, again), 1);
    assert_string_equal(again, old); /* found under the older key: same token */
    tokenize(f, &k2, PH_TOKEN_DIGITS, "987654321", 1, fresh);
    assert_int_equal(detokenize(f, &k2, old, v, &e), 0); /* cached now */
    assert_string_equal(v, "123456789");
    f->k1_gone = 1; /* key 1 destroyed (retired DEK, shredded tenant) */
    assert_int_equal(detokenize(f, &k2, old, v, &e), -1);
    assert_string_equal(e.sqlstate, "XX001");
    assert_non_null(strstr(e.message, "key id 1"));
    assert_int_equal(detokenize(f, &k2, fresh, v, &e), 0);
    assert_string_equal(v, "987654321");
}

typedef struct thr {
    tfx *f;
    char tok[400];
} thr;

static void *tokenize_thread(void *arg)
{
    thr *t = arg;
    const ph_field_key *live[2];
    ph_token_keys k = keys(t->f, 0, live);
    ph_buf b = {0};
    ph_token_err e;
    if (ph_tokens_tokenize(t->f->t, &k, PH_TOKEN_EMAIL, (const uint8_t *)"race@example.com", 16, 1,
                           &b, &e) == 1 &&
        b.len < sizeof t->tok) {
        memcpy(t->tok, b.data, b.len);
        t->tok[b.len] = '\0';
    }
    ph_buf_free(&b);
    return NULL;
}

static void test_threads_agree(void **state)
{
    tfx *f = *state;
    thr t[6];
    pthread_t id[6];
    for (int i = 0; i < 6; i++) {
        t[i] = (thr){.f = f};
        assert_int_equal(pthread_create(&id[i], NULL, tokenize_thread, &t[i]), 0);
    }
    for (int i = 0; i < 6; i++)
        pthread_join(id[i], NULL);
    for (int i = 0; i < 6; i++) {
        assert_true(t[i].tok[0] != '\0');
        assert_string_equal(t[i].tok, t[0].tok);
    }
    ph_tokens_stats st;
    ph_tokens_get_stats(f->t, &st);
    assert_int_equal(st.created, 1);
}

static void test_lru(void **state)
{
    (void)state;
    ph_tcache *c = ph_tcache_new(2);
    ph_buf b = {0};
    uint32_t tag = 0;
    assert_non_null(c);
    ph_tcache_put(c, "d", "k1", 2, "v1", 2, 1);
    ph_tcache_put(c, "d", "k2", 2, "v2", 2, 2);
    assert_int_equal(ph_tcache_get(c, "d", "k1", 2, &b, &tag), 1); /* k1 most recent now */
    assert_int_equal(tag, 1);
    ph_tcache_put(c, "d", "k3", 2, "v3", 2, 3); /* evicts k2 */
    assert_int_equal(ph_tcache_count(c), 2);
    assert_int_equal(ph_tcache_get(c, "d", "k2", 2, &b, &tag), 0);
    assert_int_equal(ph_tcache_get(c, "e", "k1", 2, &b, &tag), 0); /* keyed by domain too */
    b.len = 0;
    assert_int_equal(ph_tcache_get(c, "d", "k3", 2, &b, &tag), 1);
    assert_memory_equal(b.data, "v3", 2);
    ph_tcache_put(c, "d", "k3", 2, "v9", 2, 9); /* replaced */
    b.len = 0;
    assert_int_equal(ph_tcache_get(c, "d", "k3", 2, &b, &tag), 1);
    assert_memory_equal(b.data, "v9", 2);
    assert_int_equal(tag, 9);
    ph_tcache_clear(c);
    assert_int_equal(ph_tcache_count(c), 0);
    ph_tcache_free(c);
    ph_tcache *none = ph_tcache_new(0); /* capacity 0: stores nothing */
    ph_tcache_put(none, "d", "k", 1, "v", 1, 0);
    assert_int_equal(ph_tcache_get(none, "d", "k", 1, &b, &tag), 0);
    ph_tcache_free(none);
    ph_buf_free(&b);
}

static void test_open_errors(void **state)
{
    (void)state;
    char err[256] = "";
    assert_null(ph_vault_sqlite_open("/nonexistent-dir/x/tokens.db", err, sizeof err));
    assert_non_null(strstr(err, "tokens.db"));
    /* a file that is not a vault */
    char path[] = "/tmp/phantom-notavault.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "hello, this is not sqlite at all........................", 56), 56);
    close(fd);
    assert_null(ph_vault_sqlite_open(path, err, sizeof err));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_same_value_same_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_plaintext_in_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_and_destroyed_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_agree, setup, teardown),
        cmocka_unit_test(test_lru),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
