/*
 * test_keys_file.c — unit tests for the `file` KEK provider
 * (keys/kek_file.h) and the KEK dispatchers (keys/kek.h): creating a master
 * key safely, the owner/mode checks, the accepted encodings, wrap/unwrap
 * round trips, tamper detection, rotation and the dispatchers' defaults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "keys/kek.h"
#include "keys/kek_file.h"

#include "test_keys_fixture.h"

static char g_dir[64];
static char g_key[128];

static int setup_dir(void **state)
{
    assert_int_equal(fx_mkdtemp(g_dir, sizeof g_dir, "ph-kekfile"), 0);
    snprintf(g_key, sizeof g_key, "%s/master.key", g_dir);
    return 0;
}

static int teardown_dir(void **state)
{
    fx_rm_rf(g_dir);
    return 0;
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    unlink(path);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static const uint8_t DEK[PH_DEK_LEN] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10};

static const uint8_t RAWKEY[PH_DEK_LEN] = {
    0x60, 0x3d, 0xeb, 0x10, 0x15, 0xca, 0x71, 0xbe, 0x2b, 0x73, 0xae, 0xf0, 0x85, 0x7d, 0x77, 0x81,
    0x1f, 0x35, 0x2c, 0x07, 0x3b, 0x61, 0x08, 0xd7, 0x2d, 0x98, 0x10, 0xa3, 0x09, 0x14, 0xdf, 0xf4};
#define RAWKEY_HEX "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"

static ph_kek *open_ok(const char *path)
{
    char err[256];
    ph_kek *k = ph_kek_file_open(path, err, sizeof err);
    if (!k)
        fail_msg("open %s: %s", path, err);
    return k;
}

static void round_trip(ph_kek *k, uint8_t **blob, size_t *len)
{
    char err[256];
    uint8_t out[PH_DEK_LEN];
    assert_int_equal(ph_kek_wrap(k, DEK, blob, len, err, sizeof err), 0);
    assert_int_equal(*len, PH_KEK_FILE_BLOB_LEN);
    assert_memory_not_equal(*blob + 21, DEK, PH_DEK_LEN); /* ciphertext is not the DEK */
    assert_int_equal(ph_kek_unwrap(k, *blob, *len, out, err, sizeof err), 0);
    assert_memory_equal(out, DEK, PH_DEK_LEN);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_create_and_round_trip(void **state)
{
    char err[256];
    assert_int_equal(ph_kek_file_create(g_key, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(g_key, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_uid, geteuid());

    /* Never overwrites. */
    FILE *f = fopen(g_key, "rb");
    char before[512], after[512];
    size_t nb = fread(before, 1, sizeof before, f);
    fclose(f);
    assert_int_equal(ph_kek_file_create(g_key, err, sizeof err), -1);
    assert_non_null(strstr(err, "exists"));
    f = fopen(g_key, "rb");
    size_t na = fread(after, 1, sizeof after, f);
    fclose(f);
    assert_int_equal(na, nb);
    assert_memory_equal(before, after, nb);
    assert_non_null(strstr(before, PH_KEK_FILE_MAGIC_LINE "\n1 "));

    ph_kek *k = open_ok(g_key);
    assert_string_equal(k->ops->kind, "file");
    assert_non_null(strstr(k->id, "file:"));
    assert_int_equal(ph_kek_file_current_version(k), 1);
    uint8_t *blob;
    size_t len;
    round_trip(k, &blob, &len);
    assert_int_equal(ph_kek_file_blob_version(blob, len), 1);

    /* Two wraps of the same DEK differ (random nonce). */
    uint8_t *blob2;
    size_t len2;
    assert_int_equal(ph_kek_wrap(k, DEK, &blob2, &len2, err, sizeof err), 0);
    assert_memory_not_equal(blob, blob2, len);
    free(blob2);
    free(blob);
    ph_kek_destroy(k);

    /* A second key file cannot unwrap the first one's blobs. */
    char other[160];
    snprintf(other, sizeof other, "%s/other.key", g_dir);
    assert_int_equal(ph_kek_file_create(other, err, sizeof err), 0);
    k = open_ok(g_key);
    ph_kek *o = open_ok(other);
    assert_int_equal(ph_kek_wrap(k, DEK, &blob, &len, err, sizeof err), 0);
    uint8_t out[PH_DEK_LEN];
    memset(out, 0xAA, sizeof out);
    assert_int_equal(ph_kek_unwrap(o, blob, len, out, err, sizeof err), -1);
    assert_non_null(strstr(err, "unwrap failed"));
    uint8_t zero[PH_DEK_LEN] = {0};
    assert_memory_equal(out, zero, PH_DEK_LEN); /* no partial key left behind */
    free(blob);
    ph_kek_destroy(k);
    ph_kek_destroy(o);
}

static void test_mode_and_owner_refused(void **state)
{
    char err[256];
    assert_int_equal(ph_kek_file_create(g_key, err, sizeof err), 0);
    static const mode_t bad[] = {0644, 0640, 0604, 0660, 0700, 0666, 04600};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chmod(g_key, bad[i]), 0);
        ph_kek *k = ph_kek_file_open(g_key, err, sizeof err);
        assert_null(k);
        assert_non_null(strstr(err, "mode"));
    }
    assert_int_equal(chmod(g_key, 0400), 0); /* stricter is accepted */
    ph_kek_destroy(open_ok(g_key));
    assert_int_equal(chmod(g_key, 0600), 0);
    ph_kek_destroy(open_ok(g_key));

    if (geteuid() == 0) { /* only root can hand the file to someone else */
        assert_int_equal(chown(g_key, 65534, 65534), 0);
        ph_kek *k = ph_kek_file_open(g_key, err, sizeof err);
        assert_null(k);
        assert_non_null(strstr(err, "owned by uid 65534"));
        assert_int_equal(chown(g_key, 0, 0), 0);
    }

    /* Not a regular file; missing file. */
    assert_null(ph_kek_file_open(g_dir, err, sizeof err));
    char missing[160];
    snprintf(missing, sizeof missing, "%s/missing.key", g_dir);
    assert_null(ph_kek_file_open(missing, err, sizeof err));
    assert_non_null(strstr(err, "No such file"));
}

static void test_encodings(void **state)
{
    char err[256];
    /* raw, hex and base64 of the same key unwrap each other's blobs. */
    char b64[64];
    EVP_EncodeBlock((unsigned char *)b64, RAWKEY, PH_DEK_LEN);
    char canon[256];
    snprintf(canon, sizeof canon, "# comment\n\n" PH_KEK_FILE_MAGIC_LINE "\n1 " RAWKEY_HEX "\n");
    const struct {
        const void *data;
        size_t len;
    } forms[] = {
        {RAWKEY, PH_DEK_LEN},
        {RAWKEY_HEX "\n", sizeof RAWKEY_HEX},
        {b64, strlen(b64)},
        {canon, strlen(canon)},
    };
    uint8_t *blob = NULL;
    size_t len = 0;
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        write_file(g_key, forms[i].data, forms[i].len, 0600);
        ph_kek *k = open_ok(g_key);
        assert_int_equal(ph_kek_file_current_version(k), 1);
        if (i == 0) {
            round_trip(k, &blob, &len);
        } else {
            uint8_t out[PH_DEK_LEN];
            assert_int_equal(ph_kek_unwrap(k, blob, len, out, err, sizeof err), 0);
            assert_memory_equal(out, DEK, PH_DEK_LEN);
        }
        ph_kek_destroy(k);
    }
    free(blob);

    /* Malformed files are refused. */
    const char *bad[] = {
        "0123",                                                          /* too short */
        RAWKEY_HEX "0",                                                  /* 65 hex digits */
        PH_KEK_FILE_MAGIC_LINE "\n",                                     /* no key */
        PH_KEK_FILE_MAGIC_LINE "\n2 " RAWKEY_HEX "\n1 " RAWKEY_HEX "\n", /* decreasing */
        PH_KEK_FILE_MAGIC_LINE "\n0 " RAWKEY_HEX "\n",                   /* version 0 */
        PH_KEK_FILE_MAGIC_LINE "\n1 " RAWKEY_HEX "zz\n",
        "phantom-master-key v2\n1 " RAWKEY_HEX "\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(g_key, bad[i], strlen(bad[i]), 0600);
        ph_kek *k = ph_kek_file_open(g_key, err, sizeof err);
        if (k)
            fail_msg("malformed key file %zu accepted", i);
        assert_non_null(strstr(err, g_key));  /* names the file ... */
        assert_null(strstr(err, RAWKEY_HEX)); /* ... never the key */
    }
}

static void test_tampered_blob_fails(void **state)
{
    char err[256];
    ph_kek *k = ph_kek_file_from_buffer(RAWKEY, PH_DEK_LEN, "file:test", err, sizeof err);
    assert_non_null(k);
    uint8_t *blob;
    size_t len;
    round_trip(k, &blob, &len);
    /* Flip one bit in every byte position: magic, format, KEK version (AAD),
     * nonce, ciphertext, tag. Each must fail. */
    for (size_t i = 0; i < len; i++) {
        uint8_t out[PH_DEK_LEN];
        blob[i] ^= 0x01;
        int rc = ph_kek_unwrap(k, blob, len, out, err, sizeof err);
        blob[i] ^= 0x01;
        if (rc == 0)
            fail_msg("tampered byte %zu accepted", i);
    }
    uint8_t out[PH_DEK_LEN];
    assert_int_equal(ph_kek_unwrap(k, blob, len - 1, out, err, sizeof err), -1); /* truncated */
    assert_int_equal(ph_kek_unwrap(k, blob, len, out, err, sizeof err), 0);      /* intact */
    free(blob);
    ph_kek_destroy(k);
}

static void test_rotate(void **state)
{
    char err[256];
    assert_int_equal(ph_kek_file_create(g_key, err, sizeof err), 0);
    ph_kek *k = open_ok(g_key);
    uint8_t *old_blob, *new_blob, *rewrapped;
    size_t old_len, new_len, rw_len;
    round_trip(k, &old_blob, &old_len);
    assert_int_equal(ph_kek_rotate(k, err, sizeof err), 0);
    assert_int_equal(ph_kek_file_current_version(k), 2);
    round_trip(k, &new_blob, &new_len);
    assert_int_equal(ph_kek_file_blob_version(new_blob, new_len), 2);

    /* Old blobs still unwrap; rewrap moves them to version 2. */
    uint8_t out[PH_DEK_LEN];
    assert_int_equal(ph_kek_unwrap(k, old_blob, old_len, out, err, sizeof err), 0);
    assert_memory_equal(out, DEK, PH_DEK_LEN);
    assert_int_equal(ph_kek_rewrap(k, old_blob, old_len, &rewrapped, &rw_len, err, sizeof err), 0);
    assert_int_equal(ph_kek_file_blob_version(rewrapped, rw_len), 2);

    /* The file on disk now holds both versions, still mode 0600. */
    struct stat st;
    assert_int_equal(stat(g_key, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    ph_kek *again = open_ok(g_key);
    assert_int_equal(ph_kek_file_current_version(again), 2);
    assert_int_equal(ph_kek_unwrap(again, old_blob, old_len, out, err, sizeof err), 0);
    assert_int_equal(ph_kek_unwrap(again, rewrapped, rw_len, out, err, sizeof err), 0);
    assert_memory_equal(out, DEK, PH_DEK_LEN);
    ph_kek_destroy(again);

    /* A legacy hex file is rewritten in the canonical form on rotate. */
    write_file(g_key, RAWKEY_HEX, 64, 0600);
    ph_kek *legacy = open_ok(g_key);
    assert_int_equal(ph_kek_rotate(legacy, err, sizeof err), 0);
    FILE *f = fopen(g_key, "r");
    char text[512] = "";
    assert_true(fread(text, 1, sizeof text - 1, f) > 0);
    fclose(f);
    assert_non_null(strstr(text, "\n1 " RAWKEY_HEX "\n2 "));
    ph_kek_destroy(legacy);

    /* In-memory providers cannot rotate. */
    ph_kek *mem = ph_kek_file_from_buffer(RAWKEY, PH_DEK_LEN, "mem", err, sizeof err);
    assert_int_equal(ph_kek_rotate(mem, err, sizeof err), -1);
    ph_kek_destroy(mem);
    free(old_blob);
    free(new_blob);
    free(rewrapped);
    ph_kek_destroy(k);
}

/* ---- dispatcher defaults, with a provider that only wraps/unwraps ---------- */

typedef struct {
    ph_kek base;
    int wraps, unwraps;
} xor_kek;

static int xor_wrap(ph_kek *k, const uint8_t *dek, uint8_t **out, size_t *out_len, char *err,
                    size_t errlen)
{
    ((xor_kek *)k)->wraps++;
    *out = malloc(PH_DEK_LEN);
    for (size_t i = 0; i < PH_DEK_LEN; i++)
        (*out)[i] = dek[i] ^ 0x5a;
    *out_len = PH_DEK_LEN;
    return 0;
}

static int xor_unwrap(ph_kek *k, const uint8_t *w, size_t len, uint8_t *dek, char *err,
                      size_t errlen)
{
    ((xor_kek *)k)->unwraps++;
    if (len != PH_DEK_LEN) {
        snprintf(err, errlen, "bad length");
        return -1;
    }
    for (size_t i = 0; i < PH_DEK_LEN; i++)
        dek[i] = w[i] ^ 0x5a;
    return 0;
}

static const ph_kek_ops xor_ops = {.kind = "xor", .wrap = xor_wrap, .unwrap = xor_unwrap};

static void test_dispatch_defaults(void **state)
{
    xor_kek x = {.base = {.ops = &xor_ops, .id = "xor:test"}};
    char err[256];
    uint8_t d1[PH_DEK_LEN], d2[PH_DEK_LEN], back[PH_DEK_LEN];
    uint8_t *w1, *w2, *rw;
    size_t l1, l2, lrw;
    /* generate = random DEK + wrap; two DEKs differ and unwrap to themselves. */
    assert_int_equal(ph_kek_generate(&x.base, d1, &w1, &l1, err, sizeof err), 0);
    assert_int_equal(ph_kek_generate(&x.base, d2, &w2, &l2, err, sizeof err), 0);
    assert_memory_not_equal(d1, d2, PH_DEK_LEN);
    assert_int_equal(x.wraps, 2);
    assert_int_equal(ph_kek_unwrap(&x.base, w1, l1, back, err, sizeof err), 0);
    assert_memory_equal(back, d1, PH_DEK_LEN);
    /* rewrap = unwrap + wrap. */
    assert_int_equal(ph_kek_rewrap(&x.base, w2, l2, &rw, &lrw, err, sizeof err), 0);
    assert_int_equal(x.unwraps, 2);
    assert_int_equal(x.wraps, 3);
    assert_memory_equal(rw, w2, PH_DEK_LEN);
    /* rotate unsupported; failing unwrap leaves a zeroed output. */
    assert_int_equal(ph_kek_rotate(&x.base, err, sizeof err), -1);
    assert_non_null(strstr(err, "does not support rotation"));
    memset(back, 0x77, sizeof back);
    assert_int_equal(ph_kek_unwrap(&x.base, w1, 3, back, err, sizeof err), -1);
    uint8_t zero[PH_DEK_LEN] = {0};
    assert_memory_equal(back, zero, PH_DEK_LEN);
    assert_int_equal(ph_kek_unwrap(NULL, w1, l1, back, err, sizeof err), -1);
    free(w1);
    free(w2);
    free(rw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_and_round_trip, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_mode_and_owner_refused, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_encodings, setup_dir, teardown_dir),
        cmocka_unit_test(test_tampered_blob_fails),
        cmocka_unit_test_setup_teardown(test_rotate, setup_dir, teardown_dir),
        cmocka_unit_test(test_dispatch_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
