/*
 * test_tenant_config.c — unit tests for where tenants are configured and
 * given: the `tenants:` section of phantom.yaml (schema_tenants.c: tenant
 * columns, `tenant: required`, foreign_values, and FILE:LINE refusals) and
 * the startup packet's phantom.tenant setting (startup_opts.h: in
 * `options` as -c / -c<name> / --<name>, or as a parameter of its own;
 * removed from the packet, everything else kept byte for byte).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/bytes.h"
#include "engine/session.h"
#include "keys/keys_config.h"
#include "protocol/pg/startup_opts.h"
#include "schema/schema.h"

/* ---- the tenants: section ------------------------------------------------------------- */

static const char enc[] = "encrypt:\n"
                          "  customers:\n"
                          "    - email: deterministic\n"
                          "    - full_name\n"
                          "  notes:\n"
                          "    - body\n"
                          "  audit_rows:\n"
                          "    - what\n";

static ph_schema *load_ok(const char *tenants)
{
    char doc[2048], err[256];
    snprintf(doc, sizeof doc, "%s%s", enc, tenants);
    ph_schema *s = NULL;
    if (ph_schema_load_buffer(&s, doc, strlen(doc), "t.yaml", err, sizeof err) != 0)
        fail_msg("unexpected error: %s", err);
    return s;
}

static void load_fails(const char *extra, const char *want)
{
    char doc[2048], err[256] = "";
    snprintf(doc, sizeof doc, "%s%s", enc, extra);
    ph_schema *s = NULL;
    assert_int_equal(ph_schema_load_buffer(&s, doc, strlen(doc), "t.yaml", err, sizeof err), -1);
    assert_null(s);
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not mention \"%s\"", err, want);
}

static void test_tenants_section(void **state)
{
    (void)state;
    ph_schema *s = load_ok("tenants:\n"
                           "  foreign_values: null\n"
                           "  tables:\n"
                           "    customers:\n"
                           "      column: Tenant_ID\n"
                           "    notes: {tenant: required}\n");
    const ph_schema_table *c = ph_schema_find_table(s, NULL, "customers", NULL);
    const ph_schema_table *n = ph_schema_find_table(s, NULL, "notes", NULL);
    const ph_schema_table *a = ph_schema_find_table(s, NULL, "audit_rows", NULL);
    assert_true(s->has_tenants);
    assert_int_equal(s->foreign_values, PH_FOREIGN_NULL);
    assert_true(c->tenant_keyed);
    assert_string_equal(c->tenant_column, "tenant_id"); /* folded like SQL */
    assert_int_equal(c->tenant_line, 12);
    assert_true(n->tenant_keyed);
    assert_null(n->tenant_column);
    assert_false(a->tenant_keyed);
    assert_true(ph_schema_column_tenant_keyed(ph_schema_find_column(c, "email")));
    assert_false(ph_schema_column_tenant_keyed(ph_schema_find_column(a, "what")));
    ph_schema_free(s);

    s = load_ok("tenants:\n  tables:\n    public.customers: org_id\n");
    c = ph_schema_find_table(s, NULL, "customers", NULL);
    assert_string_equal(c->tenant_column, "org_id");
    assert_int_equal(s->foreign_values, PH_FOREIGN_ERROR);
    ph_schema_free(s);

    s = load_ok(""); /* no section: no tenants */
    assert_false(s->has_tenants);
    assert_false(ph_schema_find_table(s, NULL, "customers", NULL)->tenant_keyed);
    ph_schema_free(s);
}

static void test_tenants_refusals(void **state)
{
    (void)state;
    load_fails("tenants:\n  tables:\n    orders: {column: tenant_id}\n",
               "t.yaml:11: tenants: table \"orders\" is not in the encrypt section");
    load_fails("tenants:\n  tables:\n    customers: {column: email}\n",
               "t.yaml:11: tenants: customers: the tenant column email is protected");
    load_fails("tenants:\n  tables:\n    customers: {colum: x}\n", "t.yaml:11: tenants: customers: "
                                                                   "unknown option \"colum\"");
    load_fails("tenants:\n  tables:\n    customers: {tenant: maybe}\n", "must be `required`");
    load_fails("tenants:\n  foreign_values: hide\n", "t.yaml:10: tenants: foreign_values");
    load_fails("tenants:\n  table:\n    customers: x\n", "unknown or repeated setting \"table\"");
    load_fails("tenants:\n  tables:\n    customers: x\n    customers: y\n", "listed twice");
    load_fails("tenants:\n  tables:\n    customers: \"bad name\"\n", "invalid tenant column name");
    load_fails("tenants: [1]\n", "the tenants section must be a mapping");
}

static void test_tenants_key_domains_agree(void **state)
{
    (void)state;
    char err[256] = "";
    static const char doc[] = "encrypt:\n"
                              "  customers:\n"
                              "    - email: deterministic\n"
                              "  payments:\n"
                              "    - column: customer_email\n"
                              "      mode: deterministic\n"
                              "      key: customers.email\n"
                              "tenants:\n"
                              "  tables:\n"
                              "    customers: tenant_id\n";
    ph_schema *s = NULL;
    assert_int_equal(ph_schema_load_buffer(&s, doc, strlen(doc), "t.yaml", err, sizeof err), -1);
    assert_non_null(strstr(err, "t.yaml:10:"));
    assert_non_null(strstr(err, "payments.customer_email"));
    assert_non_null(strstr(err, "shares its key domain"));
    /* both tenant-keyed: fine */
    char both[512];
    snprintf(both, sizeof both, "%s    payments: {tenant: required}\n", doc);
    assert_int_equal(ph_schema_load_buffer(&s, both, strlen(both), "t.yaml", err, sizeof err), 0);
    ph_schema_free(s);
}

static void test_tenant_key_prefix(void **state)
{
    (void)state;
    char err[256] = "";
    static const char good[] = "keys:\n  keyring: /k.json\n  provider: openbao\n  openbao:\n"
                               "    address: https://bao:8200\n    key: phantom\n    token: t\n"
                               "    tenant_key_prefix: phantom-tenant-\n";
    ph_keys_config kc;
    ph_keys_config_defaults(&kc);
    assert_int_equal(ph_keys_config_load_string(&kc, "k.yaml", good, strlen(good), err, sizeof err),
                     0);
    assert_string_equal(kc.primary.openbao.tenant_key_prefix, "phantom-tenant-");
    assert_int_equal(ph_keys_config_validate(&kc, err, sizeof err), 0);
    ph_keys_config_free(&kc);
    static const char bad[] = "keys:\n  keyring: /k.json\n  provider: openbao\n  openbao:\n"
                              "    address: https://bao:8200\n    key: phantom\n    token: t\n"
                              "    tenant_key_prefix: \"-x/y\"\n";
    ph_keys_config_defaults(&kc);
    assert_int_equal(ph_keys_config_load_string(&kc, "k.yaml", bad, strlen(bad), err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "k.yaml:8: keys: openbao.tenant_key_prefix must be"));
    ph_keys_config_free(&kc);
}

/* ---- the startup packet --------------------------------------------------------------------- */

/* A StartupMessage with the given name/value pairs (NULL-terminated list). */
static void startup(ph_buf *b, const char *const *kv)
{
    b->len = 0;
    assert_int_equal(ph_buf_append_u32(b, 0), 0);
    assert_int_equal(ph_buf_append_u32(b, 196608), 0);
    for (size_t i = 0; kv[i]; i++)
        assert_int_equal(ph_buf_append(b, kv[i], strlen(kv[i]) + 1), 0);
    assert_int_equal(ph_buf_append_u8(b, 0), 0);
    ph_put_u32(b->data, (uint32_t)b->len);
}

/* Takes phantom.tenant out of a packet made of `in`; the packet must then
 * equal one made of `out`. Returns what the call returned. */
static int take(const char *const *in, const char *const *out, char *value)
{
    ph_buf b = {0}, want = {0};
    startup(&b, in);
    size_t len = b.len;
    int rc = pgp_startup_take_setting(b.data, &len, "phantom.tenant", value, 80);
    if (out) {
        startup(&want, out);
        assert_int_equal(len, want.len);
        assert_memory_equal(b.data, want.data, len);
        assert_int_equal(ph_get_u32(b.data), len);
    }
    ph_buf_free(&b);
    ph_buf_free(&want);
    return rc;
}

static void test_startup_option_forms(void **state)
{
    (void)state;
    char v[80];
    const char *in1[] = {"user",     "app", "options", "-c phantom.tenant=acme",
                         "database", "db",  NULL};
    const char *out1[] = {"user", "app", "database", "db", NULL};
    assert_int_equal(take(in1, out1, v), 1);
    assert_string_equal(v, "acme");

    const char *in2[] = {"user", "app", "options",
                         "-c search_path=a\\ b --Phantom.Tenant=beta -c statement_timeout=5", NULL};
    const char *out2[] = {"user", "app", "options", "-c search_path=a\\ b -c statement_timeout=5",
                          NULL};
    assert_int_equal(take(in2, out2, v), 1);
    assert_string_equal(v, "beta");

    const char *in3[] = {"options", "-cphantom.tenant=c1", "user", "app", NULL};
    const char *out3[] = {"user", "app", NULL};
    assert_int_equal(take(in3, out3, v), 1);
    assert_string_equal(v, "c1");

    /* a parameter of its own (asyncpg's server_settings), the last one wins */
    const char *in4[] = {"phantom.tenant",        "one", "user", "app", "options",
                         "-c phantom.tenant=two", NULL};
    const char *out4[] = {"user", "app", NULL};
    assert_int_equal(take(in4, out4, v), 1);
    assert_string_equal(v, "two");

    /* not there: the packet is unchanged */
    const char *in5[] = {"user", "app", "options", "-c phantom.tenants=x -c xphantom.tenant=y",
                         NULL};
    assert_int_equal(take(in5, in5, v), 0);

    /* --phantom-tenant is not the name: '-' becomes '_' only */
    const char *in6[] = {"options", "--phantom-tenant=x", NULL};
    assert_int_equal(take(in6, in6, v), 0);
}

static void test_startup_malformed(void **state)
{
    (void)state;
    char v[8];
    ph_buf b = {0};
    const char *kv[] = {"options", "-c phantom.tenant=much-too-long-for-the-buffer", NULL};
    startup(&b, kv);
    size_t len = b.len;
    assert_int_equal(pgp_startup_take_setting(b.data, &len, "phantom.tenant", v, sizeof v), -1);
    assert_int_equal(len, b.len);
    /* a packet without its terminator, or with a wrong length word */
    len = b.len - 1;
    assert_int_equal(pgp_startup_take_setting(b.data, &len, "phantom.tenant", v, sizeof v), -1);
    ph_put_u32(b.data, 7);
    len = b.len;
    assert_int_equal(pgp_startup_take_setting(b.data, &len, "phantom.tenant", v, sizeof v), -1);
    ph_buf_free(&b);
}

static void test_session_startup(void **state)
{
    (void)state;
    char err[200];
    ph_buf b = {0};
    const char *bad[] = {"options", "-c phantom.tenant=a/b", NULL};
    startup(&b, bad);
    size_t len = b.len;
    assert_int_equal(ph_session_startup(NULL, b.data, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "invalid value for phantom.tenant"));
    const char *good[] = {"user", "u", "options", "-c phantom.tenant=acme", NULL};
    startup(&b, good);
    len = b.len;
    assert_int_equal(ph_session_startup(NULL, b.data, &len, err, sizeof err), 0);
    assert_true(len < b.len);
    assert_null(memmem(b.data, len, "acme", 4));
    ph_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenants_section),           cmocka_unit_test(test_tenants_refusals),
        cmocka_unit_test(test_tenants_key_domains_agree), cmocka_unit_test(test_tenant_key_prefix),
        cmocka_unit_test(test_startup_option_forms),      cmocka_unit_test(test_startup_malformed),
        cmocka_unit_test(test_session_startup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
