/*
 * test_schema.c — unit tests for the encryption schema: the seed's short
 * form and the long form of the `encrypt:` section, defaults (randomized,
 * text, own key domain), shared key domains, schema-qualified and quoted
 * names, lookups, type spellings, and every rejected entry with its
 * "FILE:LINE: reason" message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "schema/schema.h"

static ph_schema *load_ok(const char *yaml)
{
    ph_schema *s = NULL;
    char err[512];
    if (ph_schema_load_buffer(&s, yaml, strlen(yaml), "p.yaml", err, sizeof err) != 0)
        fail_msg("unexpected error: %s", err);
    assert_non_null(s);
    return s;
}

static void load_err(const char *yaml, const char *want)
{
    ph_schema *s = (ph_schema *)(uintptr_t)1;
    char err[512];
    memset(err, 'x', sizeof err);
    assert_int_equal(ph_schema_load_buffer(&s, yaml, strlen(yaml), "p.yaml", err, sizeof err), -1);
    assert_null(s);
    if (strcmp(err, want) != 0)
        fail_msg("got:  %s\nwant: %s", err, want);
}

static const ph_schema_column *col(const ph_schema *s, const char *schema, const char *t,
                                   const char *c)
{
    const ph_schema_column *k = ph_schema_lookup(s, schema, t, c);
    if (!k)
        fail_msg("no column %s.%s", t, c);
    return k;
}

/* The seed's annotation, verbatim (comments included): bare names. */
static void test_seed_short_form(void **state)
{
    (void)state;
    static const char doc[] = "customers:\n"
                              "  - email # deterministic — allows equality lookups\n"
                              "  - phone_number # deterministic\n"
                              "  - address # randomized — no query capability\n"
                              "  - tax_id # randomized\n"
                              "payments:\n"
                              "  - card_number # randomized\n"
                              "  - bank_account # randomized\n"
                              "health_records:\n"
                              "  - diagnosis # randomized\n"
                              "  - prescription # randomized\n";
    ph_schema *s = NULL;
    char err[256];
    assert_int_equal(
        ph_schema_load_section_buffer(&s, doc, strlen(doc), "db-encrypt", err, sizeof err), 0);
    assert_int_equal(s->ntables, 3);
    assert_int_equal(s->tables[0]->ncolumns, 4);
    const ph_schema_column *e = col(s, NULL, "customers", "email");
    assert_int_equal(e->mode, PH_MODE_RANDOMIZED); /* a comment is not a mode */
    assert_int_equal(e->type, PH_TYPE_TEXT);
    assert_string_equal(e->key_domain, "customers.email");
    assert_string_equal(e->qualified, "customers.email");
    assert_string_equal(e->table->schema, "public");
    assert_int_equal(e->line, 2);
    assert_non_null(col(s, "public", "health_records", "prescription"));
    assert_null(ph_schema_lookup(s, NULL, "customers", "plan_tier"));
    ph_schema_free(s);
}

static void test_spec_long_form(void **state)
{
    (void)state;
    ph_schema *s = load_ok("listen: 127.0.0.1:5432\n"
                           "encrypt:\n"
                           "  customers:\n"
                           "    - email: deterministic\n"
                           "    - full_name                  # randomized\n"
                           "    - column: signup_day\n"
                           "      mode: ope\n"
                           "      type: date\n"
                           "    - column: tax_id\n"
                           "      mode: token\n"
                           "      format: digits\n"
                           "  payments:\n"
                           "    - card_number: token\n"
                           "    - column: customer_email\n"
                           "      mode: deterministic\n"
                           "      key: customers.email\n"
                           "    - {column: amount, mode: ope, type: 'numeric(12,2)'}\n"
                           "    - paid_on: {mode: ope, type: timestamp with time zone}\n"
                           "target: db:5432\n");
    assert_int_equal(s->ntables, 2);
    assert_int_equal(col(s, NULL, "customers", "email")->mode, PH_MODE_DETERMINISTIC);
    assert_int_equal(col(s, NULL, "customers", "full_name")->mode, PH_MODE_RANDOMIZED);
    const ph_schema_column *d = col(s, NULL, "customers", "signup_day");
    assert_int_equal(d->mode, PH_MODE_OPE);
    assert_int_equal(d->type, PH_TYPE_DATE);
    assert_int_equal(d->line, 6);
    const ph_schema_column *t = col(s, NULL, "customers", "tax_id");
    assert_int_equal(t->mode, PH_MODE_TOKEN);
    assert_int_equal(t->format, PH_TOKEN_DIGITS);
    assert_int_equal(col(s, NULL, "payments", "card_number")->format, PH_TOKEN_RANDOM);
    const ph_schema_column *ce = col(s, NULL, "payments", "customer_email");
    assert_string_equal(ce->key_domain, "customers.email");
    assert_string_equal(ce->qualified, "payments.customer_email");
    const ph_schema_column *a = col(s, NULL, "payments", "amount");
    assert_int_equal(a->type, PH_TYPE_NUMERIC);
    assert_int_equal(a->typmod_a, 12);
    assert_int_equal(a->typmod_b, 2);
    assert_int_equal(col(s, NULL, "payments", "paid_on")->type, PH_TYPE_TIMESTAMPTZ);
    /* fast-path index */
    assert_true(s->first_byte['c'] && s->first_byte['C'] && s->first_byte['p']);
    assert_false(s->first_byte['x']);
    assert_int_equal(s->max_name_len, strlen("customers"));
    ph_schema_free(s);
}

static void test_names_and_schemas(void **state)
{
    (void)state;
    ph_schema *s = load_ok("encrypt:\n"
                           "  Sales.Leads:\n"
                           "    - Contact: deterministic\n"
                           "  '\"Odd\".\"Mixed Case\"':\n"
                           "    - '\"E-Mail\"'\n"
                           "  crm.contacts:\n"
                           "    - column: mail\n"
                           "      mode: deterministic\n"
                           "      key: sales.leads.contact\n");
    const ph_schema_column *c = col(s, "sales", "leads", "contact");
    assert_string_equal(c->qualified, "sales.leads.contact");
    assert_string_equal(c->key_domain, "sales.leads.contact");
    assert_string_equal(col(s, "Odd", "Mixed Case", "E-Mail")->qualified, "Odd.Mixed Case.E-Mail");
    assert_string_equal(col(s, "crm", "contacts", "mail")->key_domain, "sales.leads.contact");
    assert_null(ph_schema_lookup(s, NULL, "leads", "contact")); /* NULL schema = public */
    int amb = 1;
    assert_non_null(ph_schema_find_table(s, NULL, "leads", &amb));
    assert_false(amb);
    ph_schema_free(s);

    s = load_ok("encrypt:\n  t:\n    - a\n  other.t:\n    - b\n");
    assert_null(ph_schema_find_table(s, NULL, "t", &amb));
    assert_true(amb);
    assert_non_null(ph_schema_find_table(s, "other", "t", &amb));
    assert_false(amb);
    ph_schema_free(s);
}

static void test_key_chain(void **state)
{
    (void)state;
    ph_schema *s = load_ok("encrypt:\n"
                           "  a:\n"
                           "    - column: x\n"
                           "      mode: deterministic\n"
                           "      key: b.y\n"
                           "  b:\n"
                           "    - column: y\n"
                           "      mode: deterministic\n"
                           "      key: public.c.z\n"
                           "  c:\n"
                           "    - column: z\n"
                           "      mode: deterministic\n"
                           "      key: c.z\n"
                           "    - column: v\n"
                           "      mode: deterministic\n"
                           "      type: varchar(20)\n"
                           "      key: c.z\n");
    assert_string_equal(col(s, NULL, "a", "x")->key_domain, "c.z");
    assert_string_equal(col(s, NULL, "b", "y")->key_domain, "c.z");
    assert_string_equal(col(s, NULL, "c", "z")->key_domain, "c.z");
    assert_string_equal(col(s, NULL, "c", "v")->key_domain, "c.z"); /* varchar ~ text */
    ph_schema_free(s);
}

static void test_empty(void **state)
{
    (void)state;
    ph_schema *s = load_ok("listen: 127.0.0.1:5432\n");
    assert_int_equal(s->ntables, 0);
    ph_schema_free(s);
    s = load_ok("encrypt:\n");
    assert_int_equal(s->ntables, 0);
    ph_schema_free(s);
    s = load_ok("");
    assert_int_equal(s->ntables, 0);
    ph_schema_free(s);
    s = ph_schema_new_empty();
    assert_non_null(s);
    assert_null(ph_schema_lookup(s, NULL, "t", "c"));
    ph_schema_free(s);
}

static void test_errors(void **state)
{
    (void)state;
    load_err("encrypt:\n  customers:\n    - email: determinstic\n",
             "p.yaml:3: customers.email: unknown mode \"determinstic\" (expected randomized, "
             "deterministic, ope or token)");
    load_err("encrypt:\n  customers:\n    - column: email\n      mode: ope\n",
             "p.yaml:3: customers.email: mode ope needs an integer, date, timestamp or "
             "numeric(p,s) type, not text (set `type:`)");
    load_err("encrypt:\n  t:\n    - column: n\n      mode: ope\n      type: numeric\n",
             "p.yaml:5: t.n: mode ope needs an integer, date, timestamp or numeric(p,s) type, "
             "not numeric (set `type:`)");
    load_err("encrypt:\n  t:\n    - column: n\n      mode: ope\n      type: numeric(30,20)\n",
             "p.yaml:5: t.n: mode ope needs an integer, date, timestamp or numeric(p,s) type, "
             "not numeric (set `type:`)");
    load_err("encrypt:\n  customers:\n    - email\n    - phone\n    - email: deterministic\n",
             "p.yaml:5: duplicate column customers.email (first at line 3)");
    load_err("encrypt:\n  customers:\n    - Email\n    - \"email\"\n",
             "p.yaml:4: duplicate column customers.email (first at line 3)");
    load_err("encrypt:\n  payments:\n    - column: e\n      mode: deterministic\n      key: "
             "customers.email\n",
             "p.yaml:5: payments.e: key \"customers.email\" does not name a configured column "
             "(expected table.column or schema.table.column)");
    load_err("encrypt:\n  customers:\n    - email: deterministic\n  payments:\n"
             "    - column: e\n      key: customers.email\n",
             "p.yaml:6: payments.e: key domain customers.email is deterministic but this column "
             "is randomized; columns sharing a key must share a mode");
    load_err("encrypt:\n  t:\n    - column: a\n      mode: ope\n      type: int8\n"
             "    - column: b\n      mode: ope\n      type: date\n      key: t.a\n",
             "p.yaml:9: t.b: key domain t.a has type int8 but this column is date; columns "
             "sharing a key must share a type");
    load_err("encrypt:\n  t:\n    - column: a\n      key: t.b\n    - column: b\n      key: t.a\n",
             "p.yaml:4: t.a: key references form a cycle");
    load_err("encrypt:\n  customers:\n    - a\n  public.customers:\n    - b\n",
             "p.yaml:4: table public.customers is listed twice (first at line 2)");
    load_err("encrypt:\n  a.b.c:\n    - x\n",
             "p.yaml:2: invalid table name \"a.b.c\" (expected table or schema.table)");
    load_err("encrypt:\n  t:\n    - 1abc\n", "p.yaml:3: invalid column name \"1abc\" in t");
    load_err("encrypt:\n  t:\n    - column: a\n      modes: ope\n",
             "p.yaml:4: unknown column attribute \"modes\" (expected column, mode, type, key or "
             "format)");
    load_err("encrypt:\n  t:\n    - column: a\n      format: digits\n",
             "p.yaml:4: t.a: `format` applies to mode token only");
    load_err("encrypt:\n  t:\n    - column: a\n      mode: token\n      format: emoji\n",
             "p.yaml:5: t.a: unknown token format \"emoji\" (expected opaque, digits, alnum, "
             "card or email)");
    load_err("encrypt:\n  t:\n    - column: a\n      mode: token\n      type: int4\n",
             "p.yaml:3: t.a: mode token needs a text type, not int4");
    load_err("encrypt:\n  t:\n    - column: a\n      type: float8\n",
             "p.yaml:4: t.a: unknown type \"float8\" (expected text, varchar, int2, int4, int8, "
             "numeric(p,s), date, timestamp, timestamptz, bool, json, jsonb or bytea)");
    load_err("encrypt:\n  t:\n", "p.yaml:2: table t lists no columns");
    load_err("encrypt:\n  t: []\n", "p.yaml:2: table t lists no columns");
    load_err("encrypt:\n  - t\n",
             "p.yaml:2: the encrypt section must map table names to lists of columns");
    load_err("encrypt:\n  t:\n    - a: b: c\n",
             "p.yaml:3: mapping values are not allowed in this context");
    load_err("encrypt:\n  t:\n    - {a: randomized, b: deterministic}\n",
             "p.yaml:3: a column entry is `name`, `name: mode` or a mapping with `column:`");
    load_err("encrypt:\n  t:\n    - column: a\n      mode: ope\n      mode: ope\n      type: "
             "int4\n",
             "p.yaml:5: attribute \"mode\" given twice");
    load_err("encrypt: {}\nencrypt:\n  t:\n    - a\n", "p.yaml:2: `encrypt` is given twice");
    load_err("- a\n", "p.yaml:1: the configuration must be a mapping of settings");
}

static void test_type_spellings(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        ph_logical_type t;
        int32_t a, b;
    } ok[] = {
        {"text", PH_TYPE_TEXT, -1, -1},
        {"VARCHAR(255)", PH_TYPE_VARCHAR, 255, -1},
        {"character varying ( 20 )", PH_TYPE_VARCHAR, 20, -1},
        {"smallint", PH_TYPE_INT2, -1, -1},
        {"integer", PH_TYPE_INT4, -1, -1},
        {"bigint", PH_TYPE_INT8, -1, -1},
        {"numeric(12, 2)", PH_TYPE_NUMERIC, 12, 2},
        {"decimal(5)", PH_TYPE_NUMERIC, 5, -1},
        {"date", PH_TYPE_DATE, -1, -1},
        {"timestamp(3)", PH_TYPE_TIMESTAMP, 3, -1},
        {"timestamp  with time zone", PH_TYPE_TIMESTAMPTZ, -1, -1},
        {"boolean", PH_TYPE_BOOL, -1, -1},
        {"jsonb", PH_TYPE_JSONB, -1, -1},
        {"bytea", PH_TYPE_BYTEA, -1, -1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ph_logical_type t;
        int32_t a, b;
        if (ph_logical_type_parse(ok[i].s, &t, &a, &b) != 0)
            fail_msg("rejected %s", ok[i].s);
        assert_int_equal(t, ok[i].t);
        assert_int_equal(a, ok[i].a);
        assert_int_equal(b, ok[i].b);
    }
    static const char *const bad[] = {
        "",      "float8",       "int4(3)",        "numeric(2,5)", "numeric(0)", "varchar(1,2)",
        "text(", "timestamp(9)", "numeric(99999)", "char(2)",      "uuid"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ph_logical_type t;
        int32_t a, b;
        if (ph_logical_type_parse(bad[i], &t, &a, &b) == 0)
            fail_msg("accepted %s", bad[i]);
    }
    ph_logical_type t;
    assert_int_equal(ph_logical_type_from_catalog("timestamptz", &t), 0);
    assert_int_equal(t, PH_TYPE_TIMESTAMPTZ);
    assert_int_equal(ph_logical_type_from_catalog("int8", &t), 0);
    assert_int_equal(t, PH_TYPE_INT8);
    assert_int_equal(ph_logical_type_from_catalog("bpchar", &t), -1);
    assert_int_equal(ph_logical_type_from_catalog("float8", &t), -1);
    assert_true(ph_logical_type_compatible(PH_TYPE_TEXT, PH_TYPE_VARCHAR));
    assert_false(ph_logical_type_compatible(PH_TYPE_DATE, PH_TYPE_TIMESTAMP));
    assert_string_equal(ph_enc_mode_name(PH_MODE_OPE), "ope");
    assert_string_equal(ph_logical_type_name(PH_TYPE_JSONB), "jsonb");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_short_form),
        cmocka_unit_test(test_spec_long_form),
        cmocka_unit_test(test_names_and_schemas),
        cmocka_unit_test(test_key_chain),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_type_spellings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
