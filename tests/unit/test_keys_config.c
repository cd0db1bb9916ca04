/*
 * test_keys_config.c — unit tests for the `keys:` section loader
 * (keys/keys_config.h): every field, defaults, escrow, and "FILE:LINE:
 * reason" errors for bad documents and incomplete providers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <unistd.h>

#include "keys/keys_config.h"

static int load(ph_keys_config *kc, const char *doc, char *err, size_t errlen)
{
    ph_keys_config_defaults(kc);
    return ph_keys_config_load_string(kc, "t.yaml", doc, strlen(doc), err, errlen);
}

static void test_full_document(void **state)
{
    const char *doc = "listen: 127.0.0.1:6432\n"
                      "target: db:5432\n"
                      "keys:\n"
                      "  keyring: /var/lib/phantom/keyring.json\n"
                      "  cache_ttl: 5m\n"
                      "  when_unavailable: serve-unprotected\n"
                      "  provider: openbao\n"
                      "  file: { path: /etc/phantom/master.key }\n"
                      "  openbao:\n"
                      "    address: https://bao:8200\n"
                      "    key: phantom\n"
                      "    token_file: /run/secrets/token\n"
                      "    ca_file: /etc/ca.pem\n"
                      "    kubernetes_role: phantom\n"
                      "    timeout_ms: 2500\n"
                      "  pkcs11:\n"
                      "    module: /usr/lib/softhsm/libsofthsm2.so\n"
                      "    token_label: phantom\n"
                      "    pin: \"1234\"\n"
                      "    key_label: phantom-kek\n"
                      "  escrow:\n"
                      "    provider: file\n"
                      "    file: { path: /etc/phantom/recovery.key }\n";
    ph_keys_config kc;
    char err[256];
    if (load(&kc, doc, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_true(kc.present);
    assert_int_equal(kc.line, 3);
    assert_string_equal(kc.keyring, "/var/lib/phantom/keyring.json");
    assert_string_equal(kc.audit_log, "/var/lib/phantom/keyring.json.audit.jsonl");
    assert_int_equal(kc.cache_ttl_s, 300);
    assert_int_equal(kc.when_unavailable, PH_KEYS_UNAVAILABLE_SERVE_UNPROTECTED);
    assert_int_equal(kc.primary.kind, PH_KEK_KIND_OPENBAO);
    assert_string_equal(kc.primary.file.path, "/etc/phantom/master.key");
    const ph_keys_openbao_cfg *o = &kc.primary.openbao;
    assert_string_equal(o->address, "https://bao:8200");
    assert_string_equal(o->key_name, "phantom");
    assert_string_equal(o->mount, "transit"); /* defaults */
    assert_string_equal(o->kubernetes_auth_path, "kubernetes");
    assert_string_equal(o->kubernetes_jwt_path,
                        "/var/run/secrets/kubernetes.io/serviceaccount/token");
    assert_string_equal(o->token_file, "/run/secrets/token");
    assert_null(o->token);
    assert_int_equal(o->timeout_ms, 2500);
    assert_string_equal(kc.primary.pkcs11.pin, "1234");
    assert_string_equal(kc.primary.pkcs11.key_label, "phantom-kek");
    assert_true(kc.has_escrow);
    assert_int_equal(kc.escrow.kind, PH_KEK_KIND_FILE);
    assert_string_equal(kc.escrow.file.path, "/etc/phantom/recovery.key");
    assert_int_equal(ph_keys_config_validate(&kc, err, sizeof err), 0);
    assert_string_equal(ph_kek_kind_name(kc.primary.kind), "openbao");
    ph_keys_config_free(&kc);
}

static void test_defaults_and_absent_section(void **state)
{
    ph_keys_config kc;
    char err[256];
    assert_int_equal(load(&kc, "target: db:5432\n", err, sizeof err), 0);
    assert_false(kc.present);
    assert_int_equal(kc.primary.kind, PH_KEK_KIND_FILE);
    assert_false(kc.has_escrow);
    assert_int_equal(kc.cache_ttl_s, 300);
    assert_int_equal(kc.when_unavailable, PH_KEYS_UNAVAILABLE_REFUSE); /* the default */
    assert_int_equal(ph_keys_config_validate(&kc, err, sizeof err), -1);
    assert_non_null(strstr(err, "no \"keys:\" section"));
    ph_keys_config_free(&kc);

    assert_int_equal(load(&kc,
                          "keys:\n  keyring: k.json\n  audit_log: /a.log\n"
                          "  file: {path: m.key}\n",
                          err, sizeof err),
                     0);
    assert_string_equal(kc.audit_log, "/a.log");
    assert_int_equal(ph_keys_config_validate(&kc, err, sizeof err), 0);
    ph_keys_config_free(&kc);

    /* cache_ttl accepts a small value for tests; when_unavailable both ways */
    assert_int_equal(load(&kc,
                          "keys:\n  keyring: k.json\n  cache_ttl: 2s\n"
                          "  when_unavailable: refuse\n",
                          err, sizeof err),
                     0);
    assert_int_equal(kc.cache_ttl_s, 2);
    assert_int_equal(kc.when_unavailable, PH_KEYS_UNAVAILABLE_REFUSE);
    ph_keys_config_free(&kc);
    assert_int_equal(
        load(&kc, "keys:\n  keyring: k.json\n  when_unavailable: ~\n", err, sizeof err), 0);
    assert_int_equal(kc.when_unavailable, PH_KEYS_UNAVAILABLE_REFUSE);
    ph_keys_config_free(&kc);
}

static void expect_error(const char *doc, const char *want)
{
    ph_keys_config kc;
    char err[256] = "";
    int rc = load(&kc, doc, err, sizeof err);
    if (rc == 0)
        rc = ph_keys_config_validate(&kc, err, sizeof err);
    if (rc == 0 || !strstr(err, want))
        fail_msg("document:\n%s\nexpected error containing \"%s\", got \"%s\"", doc, want, err);
    ph_keys_config_free(&kc);
}

static void test_errors(void **state)
{
    expect_error("keys:\n  keyring: k\n  colour: blue\n",
                 "t.yaml:3: keys: unknown setting \"colour\" in \"keys\"");
    expect_error("keys:\n  keyring: k\n  provider: vault\n", "t.yaml:3: keys: provider must be");
    expect_error("keys:\n  keyring: k\n  cache_ttl: 0\n", "t.yaml:3: keys: cache_ttl");
    expect_error("keys:\n  keyring: k\n  cache_ttl: 2d\n", "t.yaml:3: keys: cache_ttl");
    expect_error("keys:\n  keyring: k\n  when_unavailable: serve\n",
                 "t.yaml:3: keys: when_unavailable must be refuse or serve-unprotected");
    expect_error("keys:\n  keyring: k\n  when_unavailable: [refuse]\n",
                 "t.yaml:3: keys: \"when_unavailable\" expects a single value");
    expect_error("keys:\n  keyring: [a, b]\n", "t.yaml:2: keys: \"keyring\" expects a single");
    expect_error("keys:\n  keyring: k\n  keyring: j\n", "t.yaml:3: keys: duplicate setting");
    expect_error("keys:\n  keyring: k\n  file: { path: a, mode: 1 }\n",
                 "t.yaml:3: keys: unknown setting \"mode\" in \"file\"");
    expect_error("keys:\n  keyring: k\n  openbao:\n    timeout_ms: -1\n",
                 "t.yaml:4: keys: openbao.timeout_ms");
    expect_error("keys:\n  keyring: k\n  escrow:\n    keyring: x\n",
                 "t.yaml:4: keys: unknown setting \"keyring\" in \"escrow\"");
    expect_error("keys: [1, 2]\n", "t.yaml:1: keys: \"keys\" must be a mapping");
    expect_error("keys:\n  keyring: k\n - x\n", "t.yaml:3:");
    /* validation */
    expect_error("keys:\n  file: {path: m}\n", "t.yaml:1: keys: keyring is required");
    expect_error("keys:\n  keyring: k\n", "keys: file.path is required");
    expect_error("keys:\n  keyring: k\n  provider: openbao\n  openbao: {address: https://b}\n",
                 "keys: openbao.key is required");
    expect_error("keys:\n  keyring: k\n  provider: openbao\n  openbao: {address: https://b, "
                 "key: p}\n",
                 "openbao needs token, token_file or kubernetes_role");
    expect_error("keys:\n  keyring: k\n  provider: pkcs11\n  pkcs11: {module: m, token_label: "
                 "t, key_label: l}\n",
                 "pkcs11 needs pin or pin_file");
    expect_error("keys:\n  keyring: k\n  file: {path: m}\n  escrow: {provider: file}\n",
                 "keys: escrow.file.path is required");
}

static void test_load_file(void **state)
{
    char path[] = "/tmp/ph-keyscfg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *doc = "keys:\n  keyring: /k.json\n  file: {path: /m.key}\n";
    assert_int_equal(write(fd, doc, strlen(doc)), (ssize_t)strlen(doc));
    close(fd);
    ph_keys_config kc;
    char err[256];
    ph_keys_config_defaults(&kc);
    assert_int_equal(ph_keys_config_load_file(&kc, path, err, sizeof err), 0);
    assert_string_equal(kc.source_path, path);
    assert_string_equal(kc.primary.file.path, "/m.key");
    ph_keys_config_free(&kc);
    unlink(path);
    ph_keys_config_defaults(&kc);
    assert_int_equal(ph_keys_config_load_file(&kc, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "No such file"));
    ph_keys_config_free(&kc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_document),
        cmocka_unit_test(test_defaults_and_absent_section),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
