/*
 * test_keys_keyring.c — unit tests for the keyring (keys/keyring.h): JSON
 * round trip, strict parsing, version semantics (create, rotate, retire,
 * usage), atomic save (a failed write leaves the old file and no temp file)
 * and the advisory lock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys/keyring.h"

#include "test_keys_fixture.h"

/* ---- helpers -------------------------------------------------------------- */

static char g_dir[64];

static int setup_dir(void **state)
{
    assert_int_equal(fx_mkdtemp(g_dir, sizeof g_dir, "ph-keyring"), 0);
    return 0;
}

static int teardown_dir(void **state)
{
    fx_rm_rf(g_dir);
    return 0;
}

static void path_in_dir(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", g_dir, name);
}

static size_t count_dir_entries(void)
{
    size_t n = 0;
    DIR *d = opendir(g_dir);
    struct dirent *de;
    assert_non_null(d);
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static const uint8_t BLOB_A[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
static const uint8_t BLOB_B[] = {0xff, 0xfe, 0xfd};

/* A keyring with two domains, a rotation, an escrow copy and a retirement. */
static ph_keyring *sample(void)
{
    char err[256];
    ph_keyring *kr = ph_keyring_new();
    ph_dek_version *v;
    assert_non_null(kr);
    assert_int_equal(ph_keyring_add_version(kr, "customers.email", 1, "file:/m.key", BLOB_A,
                                            sizeof BLOB_A, &v, err, sizeof err),
                     0);
    assert_int_equal(ph_keyring_set_wrapping(v, PH_WRAP_ESCROW, "file:/r.key", BLOB_B,
                                             sizeof BLOB_B, err, sizeof err),
                     0);
    assert_int_equal(ph_keyring_add_version(kr, "payments.card", 1, "file:/m.key", BLOB_B,
                                            sizeof BLOB_B, NULL, err, sizeof err),
                     0);
    assert_int_equal(ph_keyring_add_version(kr, "customers.email", 0, "file:/m.key", BLOB_B,
                                            sizeof BLOB_B, NULL, err, sizeof err),
                     0);
    assert_int_equal(ph_keyring_add_version(kr, "customers.email", 0, "file:/m.key", BLOB_A,
                                            sizeof BLOB_A, NULL, err, sizeof err),
                     0);
    assert_int_equal(
        ph_keyring_record_usage(kr, "customers.email", 2, 0, 1700000000, err, sizeof err), 0);
    assert_int_equal(ph_keyring_retire(kr, "customers.email", 2, 0, err, sizeof err), 0);
    assert_int_equal(
        ph_keyring_record_usage(kr, "customers.email", 1, 42, 1700000100, err, sizeof err), 0);
    return kr;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_round_trip(void **state)
{
    char err[256];
    ph_keyring *kr = sample();
    size_t len1, len2;
    char *s1 = ph_keyring_serialize(kr, &len1);
    assert_non_null(s1);
    assert_null(strstr(s1, "\"plaintext\""));
    ph_keyring *back = NULL;
    assert_int_equal(ph_keyring_parse(s1, len1, &back, err, sizeof err), 0);
    char *s2 = ph_keyring_serialize(back, &len2);
    assert_non_null(s2);
    assert_string_equal(s1, s2);

    /* Spot-check the parsed content, not just the text. */
    assert_int_equal(back->n_domains, 2);
    assert_string_equal(back->domains[0].name, "customers.email"); /* sorted */
    ph_key_domain *d = ph_keyring_domain(back, "customers.email");
    assert_non_null(d);
    assert_int_equal(d->n_versions, 3);
    assert_int_equal(d->active, 3);
    ph_dek_version *v1 = ph_keyring_version(d, 1);
    assert_int_equal(v1->key_id, 1);
    assert_int_equal(v1->state, PH_DEK_ACTIVE);
    assert_int_equal(v1->n_wrapped, 2);
    const ph_wrapped_dek *p = ph_keyring_wrapping(v1, PH_WRAP_PRIMARY);
    const ph_wrapped_dek *e = ph_keyring_wrapping(v1, PH_WRAP_ESCROW);
    assert_non_null(p);
    assert_non_null(e);
    assert_string_equal(p->kek, "file:/m.key");
    assert_int_equal(p->blob_len, sizeof BLOB_A);
    assert_memory_equal(p->blob, BLOB_A, sizeof BLOB_A);
    assert_string_equal(e->kek, "file:/r.key");
    assert_memory_equal(e->blob, BLOB_B, sizeof BLOB_B);
    assert_true(v1->usage_known);
    assert_int_equal(v1->usage_rows, 42);
    ph_dek_version *v2 = ph_keyring_version(d, 2);
    assert_int_equal(v2->state, PH_DEK_RETIRED);
    assert_int_equal(v2->n_wrapped, 0);
    assert_true(v2->retired >= v2->created);
    ph_key_domain *fd;
    ph_dek_version *fv;
    assert_int_equal(ph_keyring_by_key_id(back, 2, &fd, &fv), 0);
    assert_string_equal(fd->name, "payments.card");
    assert_int_equal(fv->version, 1);
    assert_int_equal(ph_keyring_by_key_id(back, 99, &fd, &fv), -1);
    assert_int_equal(back->next_key_id, 5);

    free(s1);
    free(s2);
    ph_keyring_free(kr);
    ph_keyring_free(back);
}

static void expect_parse_error(const char *json, const char *needle)
{
    char err[256] = "";
    ph_keyring *kr = (ph_keyring *)1;
    assert_int_equal(ph_keyring_parse(json, strlen(json), &kr, err, sizeof err), -1);
    assert_null(kr);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

#define HEAD "{\"format\":\"phantom-keyring\",\"version\":1,\"generation\":1,"
#define VER1                                                                                       \
    "{\"version\":1,\"key_id\":1,\"state\":\"active\",\"created\":\"2025-01-02T03:04:05Z\","       \
    "\"wrapped\":[{\"kek\":\"file:/k\",\"role\":\"primary\",\"blob\":\"AQID\"}]}"

static void test_parse_minimal_ok(void **state)
{
    const char *ok =
        HEAD "\"next_key_id\":2,\"domains\":{\"a.b\":{\"active\":1,\"versions\":[" VER1 "]}}}";
    char err[256];
    ph_keyring *kr = NULL;
    assert_int_equal(ph_keyring_parse(ok, strlen(ok), &kr, err, sizeof err), 0);
    ph_dek_version *v = ph_keyring_active(ph_keyring_domain(kr, "a.b"));
    assert_non_null(v);
    assert_int_equal(v->created, 1735787045); /* 2025-01-02T03:04:05Z */
    assert_int_equal(v->wrapped[0].blob_len, 3);
    ph_keyring_free(kr);
}

static void test_parse_rejects(void **state)
{
    expect_parse_error("[]", "not a keyring");
    expect_parse_error("{\"format\":\"x\",\"version\":1}", "not a keyring");
    expect_parse_error("{\"format\":\"phantom-keyring\",\"version\":2}", "unsupported");
    expect_parse_error(HEAD "\"next_key_id\":2,\"domains\":{},\"extra\":1}", "unknown key");
    expect_parse_error(HEAD "\"next_key_id\":2,\"domains\":{},\"domains\":{}}", "duplicate");
    expect_parse_error(
        HEAD "\"next_key_id\":1,\"domains\":{\"a.b\":{\"active\":1,\"versions\":[" VER1 "]}}}",
        "next_key_id");
    expect_parse_error(
        HEAD "\"next_key_id\":2,\"domains\":{\"-bad\":{\"active\":1,\"versions\":[" VER1 "]}}}",
        "invalid key domain");
    expect_parse_error(
        HEAD "\"next_key_id\":2,\"domains\":{\"a.b\":{\"active\":2,\"versions\":[" VER1 "]}}}",
        "must name a version");
    expect_parse_error(HEAD
                       "\"next_key_id\":3,\"domains\":{\"a.b\":{\"active\":1,\"versions\":[" VER1
                       "," VER1 "]}}}",
                       "strictly increasing");
    /* Same key id in two domains. */
    expect_parse_error(HEAD
                       "\"next_key_id\":3,\"domains\":{\"a.b\":{\"active\":1,\"versions\":[" VER1
                       "]},\"c.d\":{\"active\":1,\"versions\":[" VER1 "]}}}",
                       "used twice");
    /* Bad base64 / empty blob / bad role / bad time / retired with wrappings. */
    expect_parse_error(HEAD "\"next_key_id\":2,\"domains\":{\"a\":{\"active\":1,\"versions\":[{"
                            "\"version\":1,\"key_id\":1,\"state\":\"active\",\"created\":\"2025-"
                            "01-02T03:04:05Z\",\"wrapped\":[{\"kek\":\"k\",\"role\":\"primary\","
                            "\"blob\":\"A*ID\"}]}]}}}",
                       "base64");
    expect_parse_error(HEAD "\"next_key_id\":2,\"domains\":{\"a\":{\"active\":1,\"versions\":[{"
                            "\"version\":1,\"key_id\":1,\"state\":\"active\",\"created\":\"2025-"
                            "01-02T03:04:05Z\",\"wrapped\":[{\"kek\":\"k\",\"role\":\"backup\","
                            "\"blob\":\"AQID\"}]}]}}}",
                       "role");
    expect_parse_error(HEAD "\"next_key_id\":2,\"domains\":{\"a\":{\"active\":1,\"versions\":[{"
                            "\"version\":1,\"key_id\":1,\"state\":\"active\",\"created\":\"2025-"
                            "13-02T03:04:05Z\",\"wrapped\":[]}]}}}",
                       "created");
    expect_parse_error(HEAD "\"next_key_id\":2,\"domains\":{\"a\":{\"active\":1,\"versions\":[{"
                            "\"version\":1,\"key_id\":1,\"state\":\"active\",\"created\":\"2025-"
                            "01-02T03:04:05Z\",\"wrapped\":[]}]}}}",
                       "needs a wrapping");
    expect_parse_error("{not json", "line 1");
}

static void test_version_semantics(void **state)
{
    char err[256];
    ph_keyring *kr = ph_keyring_new();
    ph_dek_version *v;
    assert_int_equal(
        ph_keyring_add_version(kr, "t.c", 0, "k", BLOB_A, sizeof BLOB_A, &v, err, sizeof err),
        -1); /* rotate before create */
    assert_non_null(strstr(err, "no key domain"));
    assert_int_equal(
        ph_keyring_add_version(kr, "t.c", 1, "k", BLOB_A, sizeof BLOB_A, &v, err, sizeof err), 0);
    assert_int_equal(v->version, 1);
    assert_int_equal(v->key_id, 1);
    assert_int_equal(
        ph_keyring_add_version(kr, "t.c", 1, "k", BLOB_A, sizeof BLOB_A, &v, err, sizeof err),
        -1); /* create twice */
    assert_non_null(strstr(err, "already exists"));
    assert_int_equal(
        ph_keyring_add_version(kr, "other", 1, "k", BLOB_A, sizeof BLOB_A, NULL, err, sizeof err),
        0);
    assert_int_equal(
        ph_keyring_add_version(kr, "t.c", 0, "k", BLOB_B, sizeof BLOB_B, &v, err, sizeof err), 0);
    assert_int_equal(v->version, 2);
    assert_int_equal(v->key_id, 3); /* key ids are keyring-wide */
    ph_key_domain *d = ph_keyring_domain(kr, "t.c");
    assert_int_equal(d->active, 2);
    assert_int_equal(ph_keyring_version(d, 1)->state, PH_DEK_ACTIVE); /* still decrypts */

    /* Invalid names and arguments. */
    assert_int_equal(ph_keyring_add_version(kr, "", 1, "k", BLOB_A, 3, NULL, err, sizeof err), -1);
    assert_int_equal(ph_keyring_add_version(kr, "a b", 1, "k", BLOB_A, 3, NULL, err, sizeof err),
                     -1);
    assert_int_equal(ph_keyring_add_version(kr, "x", 1, "k", BLOB_A, 0, NULL, err, sizeof err), -1);
    assert_true(ph_keyring_valid_domain("tenant:acme/customers.email"));
    assert_false(ph_keyring_valid_domain(".x"));

    /* Retire: the active version never; unknown usage needs force. */
    assert_int_equal(ph_keyring_retire_check(kr, "t.c", 2, err, sizeof err), PH_RETIRE_IMPOSSIBLE);
    assert_int_equal(ph_keyring_retire(kr, "t.c", 2, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "active version"));
    assert_int_equal(ph_keyring_retire_check(kr, "t.c", 1, err, sizeof err),
                     PH_RETIRE_USAGE_UNKNOWN);
    assert_int_equal(ph_keyring_retire(kr, "t.c", 1, 0, err, sizeof err), -1);
    assert_int_equal(ph_keyring_version(d, 1)->state, PH_DEK_ACTIVE);
    assert_int_equal(ph_keyring_record_usage(kr, "t.c", 1, 7, 1700000000, err, sizeof err), 0);
    assert_int_equal(ph_keyring_retire_check(kr, "t.c", 1, err, sizeof err), PH_RETIRE_IN_USE);
    assert_non_null(strstr(err, "7 row"));
    assert_int_equal(ph_keyring_retire(kr, "t.c", 1, 0, err, sizeof err), -1);
    assert_int_equal(ph_keyring_record_usage(kr, "t.c", 1, 0, 1700000000, err, sizeof err), 0);
    assert_int_equal(ph_keyring_retire_check(kr, "t.c", 1, err, sizeof err), PH_RETIRE_OK);
    assert_int_equal(ph_keyring_retire(kr, "t.c", 1, 0, err, sizeof err), 0);
    v = ph_keyring_version(d, 1);
    assert_int_equal(v->state, PH_DEK_RETIRED);
    assert_int_equal(v->n_wrapped, 0);
    assert_null(ph_keyring_wrapping(v, PH_WRAP_PRIMARY));
    assert_int_equal(ph_keyring_retire(kr, "t.c", 1, 1, err, sizeof err), -1); /* twice */
    assert_int_equal(ph_keyring_retire(kr, "t.c", 9, 1, err, sizeof err), -1); /* unknown */
    assert_int_equal(ph_keyring_set_wrapping(v, PH_WRAP_PRIMARY, "k", BLOB_A, 3, err, sizeof err),
                     -1); /* retired stays destroyed */

    /* A retired version keeps its key id: the next one is never reused. */
    assert_int_equal(
        ph_keyring_add_version(kr, "t.c", 0, "k", BLOB_A, sizeof BLOB_A, &v, err, sizeof err), 0);
    assert_int_equal(v->version, 3);
    assert_int_equal(v->key_id, 4);

    /* --force on unknown usage retires. */
    assert_int_equal(ph_keyring_retire(kr, "t.c", 2, 1, err, sizeof err), 0);
    ph_keyring_free(kr);
}

static void test_set_wrapping_replaces_role(void **state)
{
    char err[256];
    ph_keyring *kr = ph_keyring_new();
    ph_dek_version *v;
    assert_int_equal(
        ph_keyring_add_version(kr, "d", 1, "p1", BLOB_A, sizeof BLOB_A, &v, err, sizeof err), 0);
    assert_int_equal(ph_keyring_set_wrapping(v, PH_WRAP_ESCROW, "e1", BLOB_B, 3, err, sizeof err),
                     0);
    assert_int_equal(ph_keyring_set_wrapping(v, PH_WRAP_PRIMARY, "p2", BLOB_B, 3, err, sizeof err),
                     0);
    assert_int_equal(v->n_wrapped, 2);
    assert_int_equal(v->wrapped[0].role, PH_WRAP_PRIMARY); /* order kept */
    assert_string_equal(v->wrapped[0].kek, "p2");
    assert_memory_equal(v->wrapped[0].blob, BLOB_B, 3);
    assert_string_equal(v->wrapped[1].kek, "e1");
    assert_int_equal(ph_keyring_set_wrapping(v, PH_WRAP_ESCROW, "e2", BLOB_A, 9, err, sizeof err),
                     0);
    assert_int_equal(v->n_wrapped, 2);
    assert_string_equal(ph_keyring_wrapping(v, PH_WRAP_ESCROW)->kek, "e2");
    ph_keyring_free(kr);
}

static void test_save_load(void **state)
{
    char err[256], path[256];
    path_in_dir(path, sizeof path, "keyring.json");
    ph_keyring *kr = sample();
    uint64_t gen = kr->generation;
    assert_int_equal(ph_keyring_save(kr, path, err, sizeof err), 0);
    assert_int_equal(kr->generation, gen + 1);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    ph_keyring *back = NULL;
    assert_int_equal(ph_keyring_load(path, 0, &back, err, sizeof err), 0);
    assert_int_equal(back->generation, gen + 1);
    char *a = ph_keyring_serialize(kr, NULL), *b = ph_keyring_serialize(back, NULL);
    assert_string_equal(a, b);
    free(a);
    free(b);
    ph_keyring_free(back);

    /* Missing file: an error, or an empty keyring when allowed. */
    char missing[256];
    path_in_dir(missing, sizeof missing, "nope.json");
    assert_int_equal(ph_keyring_load(missing, 0, &back, err, sizeof err), -1);
    assert_null(back);
    assert_int_equal(ph_keyring_load(missing, 1, &back, err, sizeof err), 0);
    assert_int_equal(back->n_domains, 0);
    assert_int_equal(back->next_key_id, 1);
    ph_keyring_free(back);

    /* Saving over a file keeps its owner, group and mode (root can hand the
     * keyring to the proxy's user; a later save must not take it back). */
    assert_int_equal(chmod(path, 0640), 0);
    if (geteuid() == 0)
        assert_int_equal(chown(path, 65534, 65534), 0);
    assert_int_equal(ph_keyring_save(kr, path, err, sizeof err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    if (geteuid() == 0) {
        assert_int_equal(st.st_uid, 65534);
        assert_int_equal(st.st_gid, 65534);
    }
    ph_keyring_free(kr);
    assert_int_equal(count_dir_entries(), 1); /* no stray temp files */
}

/* A write that fails half-way (file size limit) must leave the old file. */
static void test_atomic_save_failed_write(void **state)
{
    char err[256], path[256];
    path_in_dir(path, sizeof path, "keyring.json");
    ph_keyring *kr = ph_keyring_new();
    assert_int_equal(ph_keyring_save(kr, path, err, sizeof err), 0);
    size_t old_len;
    char *old = read_all(path, &old_len);

    ph_keyring *big = sample(); /* serialises to far more than the limit below */
    struct rlimit saved, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    lim = saved;
    lim.rlim_cur = old_len + 16;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    uint64_t gen = big->generation;
    int rc = ph_keyring_save(big, path, err, sizeof err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "write"));
    assert_int_equal(big->generation, gen); /* restored */

    size_t now_len;
    char *now = read_all(path, &now_len);
    assert_int_equal(now_len, old_len);
    assert_memory_equal(now, old, old_len);
    assert_int_equal(count_dir_entries(), 1); /* the temp file was removed */
    free(old);
    free(now);
    ph_keyring_free(kr);
    ph_keyring_free(big);
}

/* A rename that fails (target is a directory) leaves no temp file. */
static void test_atomic_save_failed_rename(void **state)
{
    char err[256], path[256];
    path_in_dir(path, sizeof path, "adir");
    assert_int_equal(mkdir(path, 0700), 0);
    char inner[300];
    snprintf(inner, sizeof inner, "%s/keep", path);
    FILE *f = fopen(inner, "w");
    assert_non_null(f);
    fclose(f);
    ph_keyring *kr = sample();
    assert_int_equal(ph_keyring_save(kr, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "rename"));
    assert_int_equal(count_dir_entries(), 1);
    struct stat st;
    assert_int_equal(stat(inner, &st), 0); /* untouched */
    unlink(inner);
    ph_keyring_free(kr);
}

static void test_lock(void **state)
{
    char err[256], path[256];
    path_in_dir(path, sizeof path, "keyring.json");
    int a = ph_keyring_lock(path, 0, err, sizeof err);
    assert_true(a >= 0);
    int b = ph_keyring_lock(path, 100, err, sizeof err);
    assert_int_equal(b, -1);
    assert_non_null(strstr(err, "locked"));
    close(a);
    b = ph_keyring_lock(path, 100, err, sizeof err);
    assert_true(b >= 0);
    close(b);
}

static void test_time_format(void **state)
{
    char buf[32];
    int64_t t;
    ph_keyring_format_time(0, buf, sizeof buf);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    assert_int_equal(ph_keyring_parse_time("2024-02-29T23:59:59Z", &t), 0);
    ph_keyring_format_time(t, buf, sizeof buf);
    assert_string_equal(buf, "2024-02-29T23:59:59Z");
    assert_int_equal(ph_keyring_parse_time("2024-02-29 23:59:59Z", &t), -1);
    assert_int_equal(ph_keyring_parse_time("2024-02-29T23:59:59", &t), -1);
    assert_int_equal(ph_keyring_parse_time("2024-02-29T23:59:59+01", &t), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_parse_minimal_ok),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_version_semantics),
        cmocka_unit_test(test_set_wrapping_replaces_role),
        cmocka_unit_test_setup_teardown(test_save_load, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_atomic_save_failed_write, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_atomic_save_failed_rename, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_lock, setup_dir, teardown_dir),
        cmocka_unit_test(test_time_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
