/*
 * test_keys_fixture.h — helpers shared by the key-management unit tests
 * (test_kek_openbao.c, test_kek_pkcs11.c, test_keys_file.c,
 * test_keys_keyring.c; test_common.c uses the directory helpers): a private
 * temporary directory and its removal,
 * writing a small text file, checking an error's text, and several threads
 * round-tripping DEKs through one KEK provider; for the key-source and
 * tenant tests, adding a DEK version to a keyring file and counting audit
 * lines; for the OpenBao tests, the interpreter and path of the Transit
 * double.
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

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "keys/kek.h"
#include "keys/kek_file.h"
#include "keys/keyring.h"

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

/* How many lines of the file at path contain needle (0 if it cannot be read). */
static inline size_t fx_count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    size_t n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return n;
}

/* Adds a DEK version of key domain `domain` to the keyring file, wrapped by
 * the file KEK at master: the domain's first (create 1, what `keys create`
 * does) or its next, active one (create 0, `keys rotate`). */
static inline void fx_keyring_add_dek(const char *keyring, const char *master, const char *domain,
                                      int create)
{
    char err[256];
    ph_kek *kek = ph_kek_file_open(master, err, sizeof err);
    assert_non_null(kek);
    ph_keyring *kr = NULL;
    assert_int_equal(ph_keyring_load(keyring, 1, &kr, err, sizeof err), 0);
    uint8_t dek[PH_DEK_LEN], *blob = NULL;
    size_t blen = 0;
    assert_int_equal(ph_kek_generate(kek, dek, &blob, &blen, err, sizeof err), 0);
    assert_int_equal(
        ph_keyring_add_version(kr, domain, create, kek->id, blob, blen, NULL, err, sizeof err), 0);
    assert_int_equal(ph_keyring_save(kr, keyring, err, sizeof err), 0);
    OPENSSL_cleanse(dek, sizeof dek);
    free(blob);
    ph_keyring_free(kr);
    ph_kek_destroy(kek);
}

/* The Python that has the test doubles' modules: Debian's, else PATH's. */
static inline const char *fx_python(void)
{
    return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

/* The OpenBao Transit double: under $PHANTOM_ROOT, else found from the
 * usual working directories of a test. */
static inline const char *fx_openbao_double(void)
{
    static const char *const cands[] = {"tests/doubles/openbao_transit.py",
                                        "../tests/doubles/openbao_transit.py",
                                        "../../tests/doubles/openbao_transit.py"};
    static char buf[512];
    const char *root = getenv("PHANTOM_ROOT");
    if (root) {
        snprintf(buf, sizeof buf, "%s/tests/doubles/openbao_transit.py", root);
        return buf;
    }
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++)
        if (access(cands[i], R_OK) == 0)
            return cands[i];
    return cands[0];
}

#endif
