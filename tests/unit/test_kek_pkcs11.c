/*
 * test_kek_pkcs11.c — the `pkcs11` KEK provider against SoftHSM2.
 *
 * The group setup writes a private SOFTHSM2_CONF with a token directory in a
 * temp dir and initialises a token with softhsm2-util (found on PATH); the
 * module is /usr/lib/softhsm/libsofthsm2.so unless PHANTOM_PKCS11_MODULE
 * names another. Some checks talk to the token directly through PKCS#11
 * (independently of the provider): the KEK's value must be unreadable, and
 * closing every session behind the provider's back must be survived.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <p11-kit/pkcs11.h>

#include "keys/kek.h"
#include "keys/kek_pkcs11.h"

#include "test_keys_fixture.h"

#define TOKEN  "phantom"
#define PIN    "4711-user"
#define SO_PIN "0000-so"
#define KEK    "phantom-kek"

static struct {
    char dir[64];
    char conf[128];
    char pin_file[128];
    const char *module;
} g;

/* ------------------------------------------------------------------------ */
/* Fixture                                                                   */

static int group_setup(void **state)
{
    (void)state;
    g.module = getenv("PHANTOM_PKCS11_MODULE");
    if (!g.module)
        g.module = "/usr/lib/softhsm/libsofthsm2.so";
    if (fx_mkdtemp(g.dir, sizeof(g.dir), "phantom-p11t") != 0)
        return -1;
    char tokens[128], text[512], cmd[512];
    snprintf(tokens, sizeof(tokens), "%s/tokens", g.dir);
    snprintf(g.conf, sizeof(g.conf), "%s/softhsm2.conf", g.dir);
    snprintf(g.pin_file, sizeof(g.pin_file), "%s/pin", g.dir);
    snprintf(text, sizeof(text),
             "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n"
             "slots.removable = false\n",
             tokens);
    if (mkdir(tokens, 0700) != 0 || fx_write_file(g.conf, text) != 0 ||
        fx_write_file(g.pin_file, PIN "\n") != 0)
        return -1;
    setenv("SOFTHSM2_CONF", g.conf, 1);
    snprintf(cmd, sizeof(cmd),
             "softhsm2-util --init-token --free --label %s --so-pin %s --pin %s >%s/init.log 2>&1",
             TOKEN, SO_PIN, PIN, g.dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "softhsm2-util --init-token failed (see %s/init.log)\n", g.dir);
        return -1;
    }
    /* The KEK most tests use (creation itself is checked by the first test). */
    char err[256] = "";
    ph_keys_pkcs11_cfg c;
    memset(&c, 0, sizeof(c));
    c.module = (char *)g.module;
    c.token_label = TOKEN;
    c.pin = PIN;
    c.key_label = KEK;
    if (ph_kek_pkcs11_create_key(&c, err, sizeof(err)) != 0) {
        fprintf(stderr, "creating the test KEK failed: %s\n", err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    fx_rm_rf(g.dir);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static ph_keys_pkcs11_cfg cfg_for(const char *key_label)
{
    ph_keys_pkcs11_cfg c;
    memset(&c, 0, sizeof(c));
    c.module = (char *)g.module;
    c.token_label = TOKEN;
    c.pin = PIN;
    c.key_label = (char *)key_label;
    return c;
}

static ph_kek *open_ok(const ph_keys_pkcs11_cfg *c)
{
    char err[256] = "";
    ph_kek *k = ph_kek_pkcs11_open(c, err, sizeof(err));
    if (!k)
        fail_msg("open failed: %s", err);
    assert_string_equal(k->ops->kind, "pkcs11");
    return k;
}

static void create_ok(const char *label)
{
    char err[256] = "";
    ph_keys_pkcs11_cfg c = cfg_for(label);
    if (ph_kek_pkcs11_create_key(&c, err, sizeof(err)) != 0)
        fail_msg("create failed: %s", err);
}

static uint32_t blob_version(const uint8_t *b)
{
    return ((uint32_t)b[1] << 24) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 8) | b[4];
}

/* Direct PKCS#11 access for independent checks (not through the provider). */
typedef struct direct {
    void *dl;
    CK_FUNCTION_LIST_PTR fl;
    CK_SLOT_ID slot;
    CK_SESSION_HANDLE s;
} direct;

static void direct_open(direct *d)
{
    d->dl = dlopen(g.module, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(d->dl);
    CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(d->dl, "C_GetFunctionList");
    assert_non_null(gfl);
    assert_int_equal(gfl(&d->fl), CKR_OK);
    assert_int_equal(d->fl->C_Initialize(NULL), CKR_OK);
    CK_SLOT_ID slots[16];
    CK_ULONG n = 16;
    assert_int_equal(d->fl->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
    int found = 0;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        assert_int_equal(d->fl->C_GetTokenInfo(slots[i], &ti), CKR_OK);
        if (memcmp(ti.label, TOKEN " ", strlen(TOKEN) + 1) == 0) {
            d->slot = slots[i];
            found = 1;
        }
    }
    assert_true(found);
    assert_int_equal(
        d->fl->C_OpenSession(d->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &d->s),
        CKR_OK);
    CK_RV rv = d->fl->C_Login(d->s, CKU_USER, (CK_UTF8CHAR_PTR)PIN, strlen(PIN));
    assert_true(rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN);
}

static void direct_close(direct *d)
{
    d->fl->C_CloseAllSessions(d->slot);
    assert_int_equal(d->fl->C_Finalize(NULL), CKR_OK);
    dlclose(d->dl);
}

static CK_OBJECT_HANDLE direct_find(direct *d, const char *label)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_ATTRIBUTE t[2] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, (void *)label, strlen(label)}};
    CK_OBJECT_HANDLE h[2];
    CK_ULONG n = 0;
    assert_int_equal(d->fl->C_FindObjectsInit(d->s, t, 2), CKR_OK);
    assert_int_equal(d->fl->C_FindObjects(d->s, h, 2, &n), CKR_OK);
    assert_int_equal(d->fl->C_FindObjectsFinal(d->s), CKR_OK);
    assert_int_equal(n, 1);
    return h[0];
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */

/* create_key (refused when the key exists), then wrap/unwrap, generate and
 * rewrap (the dispatcher defaults: CSPRNG + wrap, unwrap + wrap). */
static void test_create_and_round_trip(void **state)
{
    (void)state;
    char err[256];
    ph_keys_pkcs11_cfg c = cfg_for("fresh-kek");
    assert_null(ph_kek_pkcs11_open(&c, err, sizeof(err))); /* not there yet */
    create_ok("fresh-kek");
    assert_int_equal(ph_kek_pkcs11_create_key(&c, err, sizeof(err)), -1);
    fx_expect_err(err, "already exists");

    ph_kek *k = open_ok(&c);
    uint8_t dek[PH_DEK_LEN], back[PH_DEK_LEN], *b, *b2, *r;
    size_t l, l2, rl;
    assert_int_equal(RAND_bytes(dek, sizeof(dek)), 1);
    assert_int_equal(ph_kek_wrap(k, dek, &b, &l, err, sizeof(err)), 0);
    assert_int_equal(l, PH_PKCS11_BLOB_LEN);
    assert_int_equal(b[0], 1);
    assert_int_equal(blob_version(b), 1);
    assert_null(memmem(b, l, dek, sizeof(dek))); /* not the DEK in clear */
    assert_int_equal(ph_kek_unwrap(k, b, l, back, err, sizeof(err)), 0);
    assert_memory_equal(back, dek, PH_DEK_LEN);

    assert_int_equal(ph_kek_wrap(k, dek, &b2, &l2, err, sizeof(err)), 0);
    assert_memory_not_equal(b + 5, b2 + 5, 12); /* fresh IV each time */

    uint8_t gen[PH_DEK_LEN];
    free(b2);
    assert_int_equal(ph_kek_generate(k, gen, &b2, &l2, err, sizeof(err)), 0);
    assert_false(fx_all_zero(gen, sizeof(gen)));
    assert_int_equal(ph_kek_unwrap(k, b2, l2, back, err, sizeof(err)), 0);
    assert_memory_equal(back, gen, PH_DEK_LEN);

    assert_int_equal(ph_kek_rewrap(k, b, l, &r, &rl, err, sizeof(err)), 0);
    assert_int_equal(ph_kek_unwrap(k, r, rl, back, err, sizeof(err)), 0);
    assert_memory_equal(back, dek, PH_DEK_LEN);
    assert_string_equal(k->id, "pkcs11:" TOKEN "/fresh-kek");
    free(b);
    free(b2);
    free(r);
    ph_kek_destroy(k);
}

/* Every altered byte is detected; foreign formats are refused. */
static void test_tamper_fails(void **state)
{
    (void)state;
    char err[256];
    ph_keys_pkcs11_cfg c = cfg_for(KEK);
    ph_kek *k = open_ok(&c);
    uint8_t dek[PH_DEK_LEN], back[PH_DEK_LEN], *b;
    size_t l;
    assert_int_equal(RAND_bytes(dek, sizeof(dek)), 1);
    assert_int_equal(ph_kek_wrap(k, dek, &b, &l, err, sizeof(err)), 0);

    static const size_t pos[] = {5, 16, 17, 40, 48, 49, 64}; /* IV, sealed DEK, tag */
    for (size_t i = 0; i < sizeof(pos) / sizeof(pos[0]); i++) {
        uint8_t t[PH_PKCS11_BLOB_LEN];
        memcpy(t, b, l);
        t[pos[i]] ^= 0x01;
        memset(back, 0x77, sizeof(back));
        assert_int_equal(ph_kek_unwrap(k, t, l, back, err, sizeof(err)), -1);
        fx_expect_err(err, "authentication failed");
        assert_true(fx_all_zero(back, sizeof(back)));
    }
    uint8_t t[PH_PKCS11_BLOB_LEN];
    memcpy(t, b, l);
    t[4] = 9; /* version 9 does not exist */
    assert_int_equal(ph_kek_unwrap(k, t, l, back, err, sizeof(err)), -1);
    fx_expect_err(err, "no AES key labelled '" KEK "#9'");
    t[4] = 0;
    assert_int_equal(ph_kek_unwrap(k, t, l, back, err, sizeof(err)), -1);
    fx_expect_err(err, "version 0");
    memcpy(t, b, l);
    t[0] = 2;
    assert_int_equal(ph_kek_unwrap(k, t, l, back, err, sizeof(err)), -1);
    fx_expect_err(err, "not a pkcs11-wrapped key");
    assert_int_equal(ph_kek_unwrap(k, b, l - 1, back, err, sizeof(err)), -1);
    fx_expect_err(err, "not a pkcs11-wrapped key");
    /* The untouched blob still unwraps. */
    assert_int_equal(ph_kek_unwrap(k, b, l, back, err, sizeof(err)), 0);
    assert_memory_equal(back, dek, PH_DEK_LEN);
    free(b);
    ph_kek_destroy(k);
}

/* rotate adds "label#2": new wraps use it, old blobs still unwrap, rewrap upgrades. */
static void test_rotation(void **state)
{
    (void)state;
    char err[256];
    create_ok("rot-kek");
    ph_keys_pkcs11_cfg c = cfg_for("rot-kek");
    ph_kek *k = open_ok(&c);
    ph_pkcs11_key_info info;
    uint8_t dek[PH_DEK_LEN], back[PH_DEK_LEN], *b1, *b2, *r;
    size_t l1, l2, rl;
    assert_int_equal(RAND_bytes(dek, sizeof(dek)), 1);
    assert_int_equal(ph_kek_pkcs11_key_info(k, &info, err, sizeof(err)), 0);
    assert_int_equal(info.latest_version, 1);
    assert_int_equal(info.versions, 1);
    assert_int_equal(ph_kek_wrap(k, dek, &b1, &l1, err, sizeof(err)), 0);
    assert_int_equal(blob_version(b1), 1);

    assert_int_equal(ph_kek_rotate(k, err, sizeof(err)), 0);
    assert_int_equal(ph_kek_pkcs11_key_info(k, &info, err, sizeof(err)), 0);
    assert_int_equal(info.latest_version, 2);
    assert_int_equal(info.versions, 2);
    assert_int_equal(ph_kek_wrap(k, dek, &b2, &l2, err, sizeof(err)), 0);
    assert_int_equal(blob_version(b2), 2);
    assert_int_equal(ph_kek_unwrap(k, b1, l1, back, err, sizeof(err)), 0);
    assert_memory_equal(back, dek, PH_DEK_LEN);
    assert_int_equal(ph_kek_rewrap(k, b1, l1, &r, &rl, err, sizeof(err)), 0);
    assert_int_equal(blob_version(r), 2);
    assert_int_equal(ph_kek_unwrap(k, r, rl, back, err, sizeof(err)), 0);
    assert_memory_equal(back, dek, PH_DEK_LEN);

    /* A second provider sees the rotation done by the first (same token). */
    ph_kek *k2 = open_ok(&c);
    assert_int_equal(ph_kek_rotate(k2, err, sizeof(err)), 0);
    free(r);
    assert_int_equal(ph_kek_wrap(k, dek, &r, &rl, err, sizeof(err)), 0);
    assert_int_equal(blob_version(r), 3);
    ph_kek_destroy(k2); /* k stays logged in */
    assert_int_equal(ph_kek_unwrap(k, r, rl, back, err, sizeof(err)), 0);
    assert_memory_equal(back, dek, PH_DEK_LEN);

    /* The other KEK's blobs do not unwrap under this one (different key). */
    ph_keys_pkcs11_cfg oc = cfg_for(KEK);
    ph_kek *other = open_ok(&oc);
    assert_int_equal(ph_kek_unwrap(other, b1, l1, back, err, sizeof(err)), -1);
    fx_expect_err(err, "authentication failed");
    ph_kek_destroy(other);
    free(b1);
    free(b2);
    free(r);
    ph_kek_destroy(k);
}

static void test_wrong_pin(void **state)
{
    (void)state;
    char err[256];
    ph_keys_pkcs11_cfg c = cfg_for(KEK);
    c.pin = "1111-wrong";
    assert_null(ph_kek_pkcs11_open(&c, err, sizeof(err)));
    fx_expect_err(err, "login to token 'phantom' failed: wrong PIN");
    assert_null(strstr(err, "1111"));
}

static void test_pin_file_and_pin_settings(void **state)
{
    (void)state;
    char err[256];
    ph_keys_pkcs11_cfg c = cfg_for(KEK);
    c.pin = NULL;
    c.pin_file = g.pin_file;
    ph_kek *k = open_ok(&c);
    ph_kek_destroy(k);

    c.pin_file = "/nonexistent/pin";
    assert_null(ph_kek_pkcs11_open(&c, err, sizeof(err)));
    fx_expect_err(err, "cannot read pin_file /nonexistent/pin");

    c.pin = PIN;
    c.pin_file = g.pin_file;
    assert_null(ph_kek_pkcs11_open(&c, err, sizeof(err)));
    fx_expect_err(err, "exactly one of pin, pin_file");

    c.pin = "";
    c.pin_file = NULL;
    assert_null(ph_kek_pkcs11_open(&c, err, sizeof(err)));
    fx_expect_err(err, "PIN is empty");
}

static void test_missing_key_token_module(void **state)
{
    (void)state;
    char err[256];
    ph_keys_pkcs11_cfg c = cfg_for("absent-kek");
    assert_null(ph_kek_pkcs11_open(&c, err, sizeof(err)));
    fx_expect_err(err, "no AES key labelled 'absent-kek' on token 'phantom'");

    c = cfg_for(KEK);
    c.token_label = "no-such-token";
    assert_null(ph_kek_pkcs11_open(&c, err, sizeof(err)));
    fx_expect_err(err, "no token labelled 'no-such-token'");

    c = cfg_for(KEK);
    c.module = "/nonexistent/libpkcs11.so";
    assert_null(ph_kek_pkcs11_open(&c, err, sizeof(err)));
    fx_expect_err(err, "cannot load module /nonexistent/libpkcs11.so");

    /* A shared library that is not a PKCS#11 module. */
    Dl_info info;
    assert_true(dladdr((void *)RAND_bytes, &info) != 0);
    c.module = (char *)info.dli_fname;
    assert_null(ph_kek_pkcs11_open(&c, err, sizeof(err)));
    fx_expect_err(err, "is not a PKCS#11 module");

    c = cfg_for("bad#label");
    assert_null(ph_kek_pkcs11_open(&c, err, sizeof(err)));
    fx_expect_err(err, "no '#'");
    c = cfg_for(KEK);
    c.token_label = "a-token-label-longer-than-32-bytes";
    assert_null(ph_kek_pkcs11_open(&c, err, sizeof(err)));
    fx_expect_err(err, "token_label");
    c = cfg_for(KEK);
    c.module = NULL;
    assert_null(ph_kek_pkcs11_open(&c, err, sizeof(err)));
    fx_expect_err(err, "module");
    assert_null(ph_kek_pkcs11_open(NULL, err, sizeof(err)));
    assert_int_equal(ph_kek_pkcs11_key_info(NULL, NULL, err, sizeof(err)), -1);
}

/* Independently of the provider: the KEK's value cannot be read off the
 * token, and an extractable key is refused as a KEK. */
static void test_key_not_extractable(void **state)
{
    (void)state;
    direct d;
    direct_open(&d);
    CK_OBJECT_HANDLE h = direct_find(&d, KEK);
    uint8_t value[64];
    CK_BBOOL extractable = CK_TRUE, sensitive = CK_FALSE, never = CK_FALSE;
    CK_ATTRIBUTE v = {CKA_VALUE, value, sizeof(value)};
    assert_int_equal(d.fl->C_GetAttributeValue(d.s, h, &v, 1), CKR_ATTRIBUTE_SENSITIVE);
    assert_int_equal(v.ulValueLen, CK_UNAVAILABLE_INFORMATION);
    CK_ATTRIBUTE a[3] = {{CKA_EXTRACTABLE, &extractable, sizeof(extractable)},
                         {CKA_SENSITIVE, &sensitive, sizeof(sensitive)},
                         {CKA_NEVER_EXTRACTABLE, &never, sizeof(never)}};
    assert_int_equal(d.fl->C_GetAttributeValue(d.s, h, a, 3), CKR_OK);
    assert_int_equal(extractable, CK_FALSE);
    assert_int_equal(sensitive, CK_TRUE);
    assert_int_equal(never, CK_TRUE);

    /* Plant an extractable AES key and try to use it as a KEK. */
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_ULONG len = 32;
    CK_BBOOL t = CK_TRUE, f = CK_FALSE;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)},     {CKA_KEY_TYPE, &kt, sizeof(kt)},
                           {CKA_VALUE_LEN, &len, sizeof(len)}, {CKA_TOKEN, &t, sizeof(t)},
                           {CKA_PRIVATE, &t, sizeof(t)},       {CKA_SENSITIVE, &f, sizeof(f)},
                           {CKA_EXTRACTABLE, &t, sizeof(t)},   {CKA_ENCRYPT, &t, sizeof(t)},
                           {CKA_DECRYPT, &t, sizeof(t)},       {CKA_LABEL, "weak-kek", 8}};
    CK_MECHANISM mech = {CKM_AES_KEY_GEN, NULL, 0};
    CK_OBJECT_HANDLE weak;
    assert_int_equal(d.fl->C_GenerateKey(d.s, &mech, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), &weak),
                     CKR_OK);
    char err[256];
    ph_keys_pkcs11_cfg c = cfg_for("weak-kek");
    assert_null(ph_kek_pkcs11_open(&c, err, sizeof(err)));
    fx_expect_err(err, "extractable or not sensitive; refusing it");
    direct_close(&d);
}

/* The provider reopens its session when the token drops it. */
static void test_session_recovery(void **state)
{
    (void)state;
    direct d;
    direct_open(&d); /* this process's C_Initialize: the provider shares it */
    ph_keys_pkcs11_cfg c = cfg_for(KEK);
    ph_kek *k = open_ok(&c);
    char err[256];
    uint8_t dek[PH_DEK_LEN], back[PH_DEK_LEN], *b;
    size_t l;
    assert_int_equal(RAND_bytes(dek, sizeof(dek)), 1);
    assert_int_equal(ph_kek_wrap(k, dek, &b, &l, err, sizeof(err)), 0);
    /* Close every session of the token (also the provider's): logs out. */
    assert_int_equal(d.fl->C_CloseAllSessions(d.slot), CKR_OK);
    assert_int_equal(ph_kek_unwrap(k, b, l, back, err, sizeof(err)), 0);
    assert_memory_equal(back, dek, PH_DEK_LEN);
    free(b);
    ph_kek_destroy(k);
    direct_close(&d);
}

/* Concurrent callers share one provider safely. */
static void test_threads(void **state)
{
    (void)state;
    ph_keys_pkcs11_cfg c = cfg_for(KEK);
    ph_kek *k = open_ok(&c);
    fx_kek_threads(k, 25, 0);
    ph_kek_destroy(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_round_trip),
        cmocka_unit_test(test_tamper_fails),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_wrong_pin),
        cmocka_unit_test(test_pin_file_and_pin_settings),
        cmocka_unit_test(test_missing_key_token_module),
        cmocka_unit_test(test_key_not_extractable),
        cmocka_unit_test(test_session_recovery),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
