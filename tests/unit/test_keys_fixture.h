/*
 * test_keys_fixture.h — helpers shared by the key-management unit tests
 * (test_kek_openbao.c, test_kek_pkcs11.c, test_keys_file.c,
 * test_keys_keyring.c; test_common.c uses the directory helpers): a private
 * temporary directory and its removal,
 * writing a small text file, checking an error's text, and several threads
 * round-tripping DEKs through one KEK provider.
 *
 * Header-only (static inline) because every tests/unit/test_*.c is its own
 * binary. Include it after <cmocka.h>.
 */
#ifndef PHANTOM_TEST_KEYS_FIXTURE_H
#define PHANTOM_TEST_KEYS_FIXTURE_H

#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "keys/kek.h"

/* Makes /tmp/<prefix>.XXXXXX into dir[n]; 0 or -1. */
static inline int fx_mkdtemp(char *dir, size_t n, const char *prefix)
{
    if ((size_t)snprintf(dir, n, "/tmp/%s.XXXXXX", prefix) >= n || !mkdtemp(dir)) {
        dir[0] = '\0';
        return -1;
    }
    return 0;
}

static inline int fx_rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (type == FTW_DP ? rmdir(path) : unlink(path)) == 0 ? 0 : -1;
}

/* Removes dir and everything below it (no-op for ""); reports a failure. */
static inline void fx_rm_rf(const char *dir)
{
    if (dir[0] && nftw(dir, fx_rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* Writes text to path (created or truncated); 0 or -1. */
static inline int fx_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

/* Fails the test unless err contains needle (PH_TEST_SHOW_ERRORS=1 prints err). */
static inline void fx_expect_err(const char *err, const char *needle)
{
    if (getenv("PH_TEST_SHOW_ERRORS"))
        fprintf(stderr, "  error: %s\n", err);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

static inline int fx_all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

typedef struct fx_worker_arg {
    ph_kek *k;
    int rounds;
    int use_generate; /* 1: ph_kek_generate, 0: random DEK + ph_kek_wrap */
    int failures;
} fx_worker_arg;

/* rounds of (generate or wrap) + unwrap, counting the wrong outcomes. */
static inline void *fx_worker(void *p)
{
    fx_worker_arg *a = p;
    for (int i = 0; i < a->rounds; i++) {
        uint8_t dek[PH_DEK_LEN], back[PH_DEK_LEN], *b = NULL;
        size_t l = 0;
        char err[256];
        int rc;
        if (a->use_generate)
            rc = ph_kek_generate(a->k, dek, &b, &l, err, sizeof(err));
        else
            rc = RAND_bytes(dek, sizeof(dek)) == 1
                     ? ph_kek_wrap(a->k, dek, &b, &l, err, sizeof(err))
                     : -1;
        if (rc != 0 || ph_kek_unwrap(a->k, b, l, back, err, sizeof(err)) != 0 ||
            memcmp(dek, back, PH_DEK_LEN) != 0)
            a->failures++;
        free(b);
    }
    return NULL;
}

/* Four threads share provider k (and whatever connection or session it
 * holds); every round trip must succeed. */
static inline void fx_kek_threads(ph_kek *k, int rounds, int use_generate)
{
    pthread_t th[4];
    fx_worker_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (fx_worker_arg){.k = k, .rounds = rounds, .use_generate = use_generate};
        assert_int_equal(pthread_create(&th[i], NULL, fx_worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
}

#endif
