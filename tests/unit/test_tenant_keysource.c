/*
 * test_tenant_keysource.c — unit tests for tenants in the proxy's live key
 * source (keysource.h "tenants", keysource_tenant.c) over a real keyring
 * and file KEK: a new tenant's DEKs created on first use (every tenant-keyed
 * key domain at once, saved in the keyring, audited "dek.create", then
 * served), single flight under concurrent first uses, load-only lookups
 * that never create, a tenant another proxy created being loaded, a
 * refresh after crypto-shredding dropping that tenant's keys while the
 * other tenants stay (and the tenant never re-created), the tools' key
 * table loading every tenant, and the key-id ownership the engine uses to
 * tell another tenant's values from destroyed ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <time.h>

#include "engine/keysource.h"
#include "keys/audit.h"
#include "keys/kek_file.h"
#include "keys/keyring.h"
#include "keys/keys_config.h"
#include "schema/schema.h"
#include "test_keys_fixture.h"

typedef struct tfx {
    char dir[64], keyring[128], master[128], audit_path[128], cfg[512];
    ph_keys_config kc;
    ph_schema *schema;
    ph_audit *audit;
} tfx;

static const char enc[] = "encrypt:\n"
                          "  customers:\n"
                          "    - email: deterministic\n"
                          "  notes:\n"
                          "    - body\n"
                          "  plain:\n"
                          "    - secret\n"
                          "tenants:\n"
                          "  tables:\n"
                          "    customers: tenant_id\n"
                          "    notes: {tenant: required}\n";

/* Adds version 1 of a plain key domain (what `keys create` would). */
static void create_plain(tfx *r, const char *domain)
{
    fx_keyring_add_dek(r->keyring, r->master, domain, 1);
}

static int setup(void **state)
{
    tfx *r = calloc(1, sizeof *r);
    assert_non_null(r);
    assert_int_equal(fx_mkdtemp(r->dir, sizeof r->dir, "ph-tenantks"), 0);
    snprintf(r->keyring, sizeof r->keyring, "%s/keyring.json", r->dir);
    snprintf(r->master, sizeof r->master, "%s/master.key", r->dir);
    snprintf(r->audit_path, sizeof r->audit_path, "%s/audit.jsonl", r->dir);
    char err[256];
    assert_int_equal(ph_kek_file_create(r->master, err, sizeof err), 0);
    snprintf(r->cfg, sizeof r->cfg,
             "keys:\n  keyring: %s\n  provider: file\n  file: { path: %s }\n  cache_ttl: 60s\n",
             r->keyring, r->master);
    ph_keys_config_defaults(&r->kc);
    assert_int_equal(
        ph_keys_config_load_string(&r->kc, "t.yaml", r->cfg, strlen(r->cfg), err, sizeof err), 0);
    assert_int_equal(ph_schema_load_buffer(&r->schema, enc, strlen(enc), "t.yaml", err, sizeof err),
                     0);
    r->audit = ph_audit_open(r->audit_path, err, sizeof err);
    assert_non_null(r->audit);
    ph_audit_set_global(r->audit);
    create_plain(r, "plain.secret"); /* the only plain domain the schema needs */
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    tfx *r = *state;
    ph_audit_set_global(NULL);
    ph_audit_close(r->audit);
    ph_schema_free(r->schema);
    ph_keys_config_free(&r->kc);
    fx_rm_rf(r->dir);
    free(r);
    return 0;
}

static ph_keysource *open_live(tfx *r)
{
    char err[512];
    ph_keysource *ks = ph_keysource_open_live(&r->kc, r->schema, err, sizeof err);
    if (!ks)
        fail_msg("open_live: %s", err);
    return ks;
}

static const ph_field_key *tenant_key(const ph_keysource *t, const char *tenant, const char *domain)
{
    char name[PH_KEYRING_MAX_DOMAIN + 1];
    assert_int_equal(ph_keyring_tenant_domain(name, sizeof name, tenant, domain), 0);
    return ph_keysource_write_key(t, name);
}

static int tenant_keys(ph_keysource *ks, const char *tenant, int create)
{
    char err[512] = "";
    int rc = ph_keysource_tenant_keys(ks, tenant, "customers.email", create, err, sizeof err);
    if (rc == PH_KS_TENANT_FAILED)
        fail_msg("tenant_keys(%s): %s", tenant, err);
    return rc;
}

/* The keyring's version count of a tenant domain (0: none). */
static size_t versions_in_keyring(tfx *r, const char *tenant, const char *domain)
{
    char err[256], name[PH_KEYRING_MAX_DOMAIN + 1];
    ph_keyring *kr = NULL;
    assert_int_equal(ph_keyring_load(r->keyring, 0, &kr, err, sizeof err), 0);
    assert_int_equal(ph_keyring_tenant_domain(name, sizeof name, tenant, domain), 0);
    const ph_key_domain *d = ph_keyring_domain(kr, name);
    size_t n = d ? d->n_versions : 0;
    ph_keyring_free(kr);
    return n;
}

static void test_created_on_first_use(void **state)
{
    tfx *r = *state;
    ph_keysource *ks = open_live(r); /* no tenant domain in the keyring: starts all the same */
    const ph_keysource *t = ph_keysource_acquire(ks);
    assert_null(tenant_key(t, "acme", "customers.email"));
    ph_keysource_release(ks, t);
    assert_int_equal(tenant_keys(ks, "zed", 0), PH_KS_TENANT_ABSENT); /* load only: nothing made */
    assert_int_equal(versions_in_keyring(r, "zed", "customers.email"), 0);
    assert_int_equal(tenant_keys(ks, "acme", 1), PH_KS_TENANT_READY);
    /* every tenant-keyed domain of the tenant at once, saved and audited */
    assert_int_equal(versions_in_keyring(r, "acme", "customers.email"), 1);
    assert_int_equal(versions_in_keyring(r, "acme", "notes.body"), 1);
    assert_int_equal(fx_count_lines(r->audit_path, "\"event\":\"dek.create\""), 2);
    assert_int_equal(fx_count_lines(r->audit_path, "tenant acme, first use"), 2);
    t = ph_keysource_acquire(ks);
    const ph_field_key *k = tenant_key(t, "acme", "customers.email");
    assert_non_null(k);
    assert_non_null(tenant_key(t, "acme", "notes.body"));
    assert_non_null(ph_keysource_write_key(t, "plain.secret")); /* kept from the first table */
    /* the key round-trips */
    ph_buf env = {0}, back = {0};
    assert_int_equal(ph_field_encrypt_buf(k, PH_FIELD_RANDOMIZED, (const uint8_t *)"v", 1, &env),
                     PH_FIELD_OK);
    assert_int_equal(ph_field_decrypt_buf(k, PH_FIELD_RANDOMIZED, env.data, env.len, &back),
                     PH_FIELD_OK);
    ph_buf_free(&env);
    ph_buf_free(&back);
    ph_keysource_release(ks, t);
    /* a second first use finds it */
    assert_int_equal(tenant_keys(ks, "acme", 1), PH_KS_TENANT_READY);
    assert_int_equal(fx_count_lines(r->audit_path, "\"event\":\"dek.create\""), 2);
    /* a refresh keeps the tenant */
    char err[512];
    assert_int_equal(ph_keysource_refresh_now(ks, err, sizeof err), 0);
    t = ph_keysource_acquire(ks);
    assert_non_null(tenant_key(t, "acme", "customers.email"));
    ph_keysource_release(ks, t);
    ph_keysource_free(ks);
}

typedef struct {
    ph_keysource *ks;
    int rc;
} racer;

static void *race(void *p)
{
    racer *x = p;
    char err[256];
    x->rc = ph_keysource_tenant_keys(x->ks, "beta", "notes.body", 1, err, sizeof err);
    return NULL;
}

static void test_single_flight(void **state)
{
    tfx *r = *state;
    ph_keysource *ks = open_live(r);
    pthread_t th[8];
    racer x[8];
    for (int i = 0; i < 8; i++) {
        x[i] = (racer){ks, -9};
        assert_int_equal(pthread_create(&th[i], NULL, race, &x[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(x[i].rc, PH_KS_TENANT_READY);
    }
    assert_int_equal(versions_in_keyring(r, "beta", "notes.body"), 1); /* made once */
    assert_int_equal(fx_count_lines(r->audit_path, "tenant beta, first use"), 2);
    ph_keysource_free(ks);
}

static void test_other_proxy_and_shred(void **state)
{
    tfx *r = *state;
    char err[512];
    ph_keysource *a = open_live(r), *b = open_live(r); /* two proxies, one keyring */
    assert_int_equal(tenant_keys(b, "gamma", 1), PH_KS_TENANT_READY);
    assert_int_equal(tenant_keys(a, "gamma", 0), PH_KS_TENANT_READY); /* loaded, not made */
    assert_int_equal(versions_in_keyring(r, "gamma", "customers.email"), 1);
    assert_int_equal(tenant_keys(a, "delta", 1), PH_KS_TENANT_READY);
    const ph_keysource *ta = ph_keysource_acquire(a), *tb = ph_keysource_acquire(b);
    uint32_t gamma_id = ph_field_key_id(tenant_key(ta, "gamma", "customers.email"));
    assert_int_equal(gamma_id, ph_field_key_id(tenant_key(tb, "gamma", "customers.email")));
    uint32_t delta_id = ph_field_key_id(tenant_key(ta, "delta", "customers.email"));
    ph_keysource_release(a, ta);
    ph_keysource_release(b, tb);
    /* b learns of delta at its next refresh */
    assert_int_equal(ph_keysource_refresh_now(b, err, sizeof err), 0);
    tb = ph_keysource_acquire(b);
    assert_non_null(tenant_key(tb, "delta", "customers.email"));
    ph_keysource_release(b, tb);

    /* crypto-shred gamma (what `keys shred` does) */
    ph_keyring *kr = NULL;
    ph_shred_result res;
    assert_int_equal(ph_keyring_load(r->keyring, 0, &kr, err, sizeof err), 0);
    assert_int_equal(
        ph_keyring_shred_tenant(kr, "gamma", (int64_t)time(NULL), &res, err, sizeof err), 0);
    assert_int_equal(res.versions, 2);
    assert_int_equal(ph_keyring_save(kr, r->keyring, err, sizeof err), 0);
    ph_keyring_free(kr);
    /* the refresh succeeds, drops gamma and keeps the others */
    assert_int_equal(ph_keysource_refresh_now(a, err, sizeof err), 0);
    ta = ph_keysource_acquire(a);
    assert_null(tenant_key(ta, "gamma", "customers.email"));
    assert_null(ph_keysource_key_any(ta, gamma_id, NULL));
    assert_non_null(tenant_key(ta, "delta", "customers.email"));
    assert_non_null(ph_keysource_write_key(ta, "plain.secret"));
    assert_true(ph_keysource_tenant_shredded(ta, "gamma"));
    assert_false(ph_keysource_tenant_shredded(ta, "delta"));
    char owner[PH_TENANT_MAX + 1];
    bool destroyed = false;
    assert_int_equal(ph_keysource_key_owner(ta, gamma_id, owner, &destroyed), 1);
    assert_string_equal(owner, "gamma");
    assert_true(destroyed);
    assert_int_equal(ph_keysource_key_owner(ta, delta_id, owner, &destroyed), 1);
    assert_string_equal(owner, "delta");
    assert_false(destroyed);
    assert_int_equal(ph_keysource_key_owner(ta, 999999, owner, &destroyed), 0);
    ph_keysource_release(a, ta);
    /* never re-created, by this proxy or the other (which has not refreshed) */
    assert_int_equal(tenant_keys(a, "gamma", 1), PH_KS_TENANT_SHREDDED);
    assert_int_equal(ph_keysource_tenant_keys(b, "gamma", "notes.body", 1, err, sizeof err),
                     PH_KS_TENANT_READY); /* b still holds gamma's keys until its refresh */
    assert_int_equal(ph_keysource_refresh_now(b, err, sizeof err), 0);
    assert_int_equal(tenant_keys(b, "gamma", 1), PH_KS_TENANT_SHREDDED);
    assert_int_equal(versions_in_keyring(r, "gamma", "customers.email"), 1); /* the tombstone */
    ph_keysource_free(a);
    ph_keysource_free(b);
}

static void test_tools_table_loads_every_tenant(void **state)
{
    tfx *r = *state;
    char err[512];
    ph_keysource *live = open_live(r);
    assert_int_equal(tenant_keys(live, "acme", 1), PH_KS_TENANT_READY);
    assert_int_equal(tenant_keys(live, "beta", 1), PH_KS_TENANT_READY);
    ph_keysource_free(live);
    ph_keysource *t = ph_keysource_open(&r->kc, r->schema, err, sizeof err);
    if (!t)
        fail_msg("%s", err);
    assert_non_null(tenant_key(t, "acme", "customers.email"));
    assert_non_null(tenant_key(t, "beta", "notes.body"));
    /* a key table never makes keys */
    assert_int_equal(ph_keysource_tenant_keys(t, "new", "customers.email", 1, err, sizeof err),
                     PH_KS_TENANT_ABSENT);
    ph_keysource_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_created_on_first_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_proxy_and_shred, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tools_table_loads_every_tenant, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
