/*
 * test_tenant_keyring.c — unit tests for the keyring's tenant domains and
 * crypto-shredding (keys/keyring.h): tenant ids, "tenant:<T>/<domain>"
 * names and their parsing, shredding a tenant (every version retired,
 * primary and escrow wrappings wiped, other tenants untouched, the domain
 * kept as a tombstone that survives a save/load and refuses new versions),
 * and the strict parsing of the "shredded" field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keys/keyring.h"

static const uint8_t blob_a[] = "wrapped-primary-a";
static const uint8_t blob_e[] = "wrapped-escrow-a";

/* A keyring with tenants acme (two domains, one rotated and escrowed),
 * beta (one domain) and a plain domain. */
static ph_keyring *sample(void)
{
    char err[256];
    ph_keyring *kr = ph_keyring_new();
    assert_non_null(kr);
    ph_dek_version *v = NULL;
    assert_int_equal(ph_keyring_add_version(kr, "tenant:acme/customers.email", 1, "file:k", blob_a,
                                            sizeof blob_a, &v, err, sizeof err),
                     0);
    assert_int_equal(ph_keyring_set_wrapping(v, PH_WRAP_ESCROW, "file:r", blob_e, sizeof blob_e,
                                             err, sizeof err),
                     0);
    assert_int_equal(ph_keyring_add_version(kr, "tenant:acme/customers.email", 0, "file:k", blob_a,
                                            sizeof blob_a, NULL, err, sizeof err),
                     0);
    assert_int_equal(ph_keyring_add_version(kr, "tenant:acme/notes.body", 1, "file:k", blob_a,
                                            sizeof blob_a, NULL, err, sizeof err),
                     0);
    assert_int_equal(ph_keyring_add_version(kr, "tenant:beta/customers.email", 1, "file:k", blob_a,
                                            sizeof blob_a, NULL, err, sizeof err),
                     0);
    assert_int_equal(ph_keyring_add_version(kr, "customers.email", 1, "file:k", blob_a,
                                            sizeof blob_a, NULL, err, sizeof err),
                     0);
    return kr;
}

static void test_tenant_ids(void **state)
{
    (void)state;
    assert_true(ph_tenant_valid("acme"));
    assert_true(ph_tenant_valid("42"));
    assert_true(ph_tenant_valid("a-b_c.d"));
    char longest[PH_TENANT_MAX + 2];
    memset(longest, 'x', sizeof longest);
    longest[PH_TENANT_MAX] = '\0';
    assert_true(ph_tenant_valid(longest));
    longest[PH_TENANT_MAX] = 'x';
    longest[PH_TENANT_MAX + 1] = '\0';
    assert_false(ph_tenant_valid(longest)); /* 64 bytes */
    assert_false(ph_tenant_valid(""));
    assert_false(ph_tenant_valid(NULL));
    assert_false(ph_tenant_valid("-x"));
    assert_false(ph_tenant_valid(".x"));
    assert_false(ph_tenant_valid("x-"));
    assert_false(ph_tenant_valid("x."));
    assert_false(ph_tenant_valid("a/b")); /* the separator of domain names */
    assert_false(ph_tenant_valid("a:b"));
    assert_false(ph_tenant_valid("a b"));
    assert_false(ph_tenant_valid("a'b"));
    assert_false(ph_tenant_valid("caf\xc3\xa9"));
    assert_true(ph_tenant_valid_len("acme/x", 4));
    assert_false(ph_tenant_valid_len("acme/x", 5));
}

static void test_domain_names(void **state)
{
    (void)state;
    char buf[PH_KEYRING_MAX_DOMAIN + 1], t[PH_TENANT_MAX + 1];
    const char *base = NULL;
    assert_int_equal(ph_keyring_tenant_domain(buf, sizeof buf, "acme", "customers.email"), 0);
    assert_string_equal(buf, "tenant:acme/customers.email");
    assert_true(ph_keyring_valid_domain(buf));
    assert_int_equal(ph_keyring_domain_tenant(buf, t, sizeof t, &base), 1);
    assert_string_equal(t, "acme");
    assert_string_equal(base, "customers.email");
    assert_int_equal(ph_keyring_domain_tenant("customers.email", t, sizeof t, &base), 0);
    assert_int_equal(ph_keyring_domain_tenant("tenant:/x", t, sizeof t, &base), 0);
    assert_int_equal(ph_keyring_domain_tenant("tenant:acme/", t, sizeof t, &base), 0);
    assert_int_equal(ph_keyring_domain_tenant("tenant:ac:me/x", t, sizeof t, &base), 0);
    assert_int_equal(ph_keyring_tenant_domain(buf, sizeof buf, "a/b", "x"), -1);
    /* a name longer than a key domain may be is refused, not cut */
    char dom[PH_KEYRING_MAX_DOMAIN];
    memset(dom, 'd', sizeof dom - 1);
    dom[sizeof dom - 1] = '\0';
    assert_int_equal(ph_keyring_tenant_domain(buf, sizeof buf, "acme", dom), -1);
    assert_int_equal(ph_keyring_tenant_domain(buf, 10, "acme", "customers.email"), -1);
}

static void test_shred_destroys_every_wrapping(void **state)
{
    (void)state;
    char err[256];
    ph_keyring *kr = sample();
    ph_shred_result r;
    assert_int_equal(ph_keyring_shred_tenant(kr, "acme", 1764000000, &r, err, sizeof err), 0);
    assert_int_equal(r.domains, 2);
    assert_int_equal(r.versions, 3);
    assert_int_equal(r.wrappings, 4); /* 3 primary + 1 escrow */
    assert_int_equal(r.already, 0);
    const char *gone[] = {"tenant:acme/customers.email", "tenant:acme/notes.body"};
    for (size_t i = 0; i < 2; i++) {
        ph_key_domain *d = ph_keyring_domain(kr, gone[i]);
        assert_non_null(d);
        assert_int_equal(d->shredded, 1764000000);
        for (size_t j = 0; j < d->n_versions; j++) {
            assert_int_equal(d->versions[j].state, PH_DEK_RETIRED);
            assert_int_equal(d->versions[j].n_wrapped, 0);
            assert_null(ph_keyring_wrapping(&d->versions[j], PH_WRAP_ESCROW));
        }
    }
    /* other tenants and plain domains untouched */
    ph_key_domain *b = ph_keyring_domain(kr, "tenant:beta/customers.email");
    assert_int_equal(b->shredded, 0);
    assert_int_equal(b->versions[0].state, PH_DEK_ACTIVE);
    assert_int_equal(b->versions[0].n_wrapped, 1);
    assert_int_equal(ph_keyring_domain(kr, "customers.email")->versions[0].state, PH_DEK_ACTIVE);
    assert_true(ph_keyring_tenant_shredded(kr, "acme"));
    assert_false(ph_keyring_tenant_shredded(kr, "beta"));
    /* never re-created: neither rotated nor created again */
    assert_int_equal(ph_keyring_add_version(kr, "tenant:acme/notes.body", 0, "file:k", blob_a,
                                            sizeof blob_a, NULL, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "crypto-shredded"));
    assert_int_equal(ph_keyring_add_version(kr, "tenant:acme/notes.body", 1, "file:k", blob_a,
                                            sizeof blob_a, NULL, err, sizeof err),
                     -1);
    /* a second shred finds nothing left */
    assert_int_equal(ph_keyring_shred_tenant(kr, "acme", 1764000001, &r, err, sizeof err), 0);
    assert_int_equal(r.versions, 0);
    assert_int_equal(r.already, 2);
    assert_int_equal(ph_keyring_domain(kr, gone[0])->shredded, 1764000000);
    /* unknown tenants and bad ids are errors */
    assert_int_equal(ph_keyring_shred_tenant(kr, "nobody", 1, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "no key of tenant nobody"));
    assert_int_equal(ph_keyring_shred_tenant(kr, "a/b", 1, &r, err, sizeof err), -1);
    ph_keyring_free(kr);
}

static void test_shredded_round_trip(void **state)
{
    (void)state;
    char err[256];
    ph_keyring *kr = sample();
    uint32_t next = kr->next_key_id;
    ph_shred_result r;
    assert_int_equal(ph_keyring_shred_tenant(kr, "acme", 1764000000, &r, err, sizeof err), 0);
    size_t len = 0;
    char *json = ph_keyring_serialize(kr, &len);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"shredded\""));
    /* the escrow copy (acme's only) is gone from the file; beta's primary is there */
    assert_null(strstr(json, "escrow"));
    assert_non_null(strstr(json, "\"primary\""));
    ph_keyring *back = NULL;
    assert_int_equal(ph_keyring_parse(json, len, &back, err, sizeof err), 0);
    assert_int_equal(back->next_key_id, next); /* key ids never reused */
    assert_int_equal(ph_keyring_domain(back, "tenant:acme/customers.email")->shredded, 1764000000);
    assert_int_equal(ph_keyring_domain(back, "tenant:beta/customers.email")->shredded, 0);
    assert_true(ph_keyring_tenant_shredded(back, "acme"));
    ph_keyring_free(back);
    free(json);
    ph_keyring_free(kr);
}

static void test_shredded_parse_is_strict(void **state)
{
    (void)state;
    char err[256];
    ph_keyring *kr = NULL;
    /* shredded but a version still active */
    const char *bad =
        "{\"format\":\"phantom-keyring\",\"version\":1,\"generation\":1,\"next_key_id\":2,"
        "\"domains\":{\"tenant:a/x.y\":{\"active\":1,\"shredded\":\"2025-12-01T00:00:00Z\","
        "\"versions\":[{\"version\":1,\"key_id\":1,\"state\":\"active\","
        "\"created\":\"2025-11-01T00:00:00Z\",\"wrapped\":[{\"kek\":\"file:k\",\"role\":"
        "\"primary\",\"blob\":\"QUJD\"}]}]}}}";
    assert_int_equal(ph_keyring_parse(bad, strlen(bad), &kr, err, sizeof err), -1);
    assert_non_null(strstr(err, "not retired"));
    /* a bad time */
    const char *bad_time =
        "{\"format\":\"phantom-keyring\",\"version\":1,\"generation\":1,\"next_key_id\":2,"
        "\"domains\":{\"tenant:a/x.y\":{\"active\":1,\"shredded\":\"yesterday\","
        "\"versions\":[{\"version\":1,\"key_id\":1,\"state\":\"retired\","
        "\"created\":\"2025-11-01T00:00:00Z\",\"retired\":\"2025-12-01T00:00:00Z\","
        "\"wrapped\":[]}]}}}";
    assert_int_equal(ph_keyring_parse(bad_time, strlen(bad_time), &kr, err, sizeof err), -1);
    assert_non_null(strstr(err, "shredded"));
    /* a retired active version is fine once the domain is shredded */
    const char *good =
        "{\"format\":\"phantom-keyring\",\"version\":1,\"generation\":1,\"next_key_id\":2,"
        "\"domains\":{\"tenant:a/x.y\":{\"active\":1,\"shredded\":\"2025-12-01T00:00:00Z\","
        "\"versions\":[{\"version\":1,\"key_id\":1,\"state\":\"retired\","
        "\"created\":\"2025-11-01T00:00:00Z\",\"retired\":\"2025-12-01T00:00:00Z\","
        "\"wrapped\":[]}]}}}";
    assert_int_equal(ph_keyring_parse(good, strlen(good), &kr, err, sizeof err), 0);
    ph_keyring_free(kr);
    /* ... but not when it is not shredded */
    const char *unshredded =
        "{\"format\":\"phantom-keyring\",\"version\":1,\"generation\":1,\"next_key_id\":2,"
        "\"domains\":{\"tenant:a/x.y\":{\"active\":1,"
        "\"versions\":[{\"version\":1,\"key_id\":1,\"state\":\"retired\","
        "\"created\":\"2025-11-01T00:00:00Z\",\"retired\":\"2025-12-01T00:00:00Z\","
        "\"wrapped\":[]}]}}}";
    kr = NULL;
    assert_int_equal(ph_keyring_parse(unshredded, strlen(unshredded), &kr, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenant_ids),
        cmocka_unit_test(test_domain_names),
        cmocka_unit_test(test_shred_destroys_every_wrapping),
        cmocka_unit_test(test_shredded_round_trip),
        cmocka_unit_test(test_shredded_parse_is_strict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
