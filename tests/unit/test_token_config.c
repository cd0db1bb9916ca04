/*
 * test_token_config.c — the `tokens:` section (src/token/token_config.c),
 * read by the schema loader from the same document as `encrypt:`: both
 * vaults with their settings and defaults, FILE:LINE errors for unknown or
 * repeated settings, a missing path/dsn, a bad cache size, a DSN libpq
 * cannot parse (never quoted: it may hold a password), and the top-level
 * config loader accepting the section.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "schema/schema.h"
#include "token/token_config.h"

static ph_schema *load(const char *doc, char *err, size_t errlen)
{
    ph_schema *s = NULL;
    if (ph_schema_load_buffer(&s, doc, strlen(doc), "c.yaml", err, errlen) != 0)
        return NULL;
    return s;
}

static void test_valid(void **state)
{
    (void)state;
    char err[256] = "";
    ph_schema *s = load("encrypt:\n  t:\n    - {column: c, mode: token, format: card}\n"
                        "tokens:\n  vault: sqlite\n  path: /var/lib/phantom/tokens.db\n",
                        err, sizeof err);
    assert_non_null(s);
    assert_non_null(s->tokens);
    assert_int_equal(s->tokens->vault, PH_VAULT_SQLITE);
    assert_string_equal(s->tokens->path, "/var/lib/phantom/tokens.db");
    assert_int_equal(s->tokens->cache_size, PH_TOKEN_DEFAULT_CACHE);
    assert_int_equal(s->tokens->line, 4);
    assert_int_equal(ph_schema_lookup(s, NULL, "t", "c")->format, PH_TOKEN_CARD);
    ph_schema_free(s);
    s = load("tokens:\n  vault: postgres\n  dsn: \"host=vault.eu dbname=vault user=p\"\n"
             "  cache_size: 0\nencrypt:\n  t:\n    - {column: c, mode: token, format: email}\n",
             err, sizeof err);
    assert_non_null(s);
    assert_int_equal(s->tokens->vault, PH_VAULT_POSTGRES);
    assert_string_equal(s->tokens->dsn, "host=vault.eu dbname=vault user=p");
    assert_int_equal(s->tokens->cache_size, 0);
    assert_int_equal(ph_schema_lookup(s, NULL, "t", "c")->format, PH_TOKEN_EMAIL);
    ph_schema_free(s);
    /* no section: no vault; formats keep their names */
    s = load("encrypt:\n  t:\n    - {column: c, mode: token, format: opaque}\n"
             "    - {column: d, mode: token, format: random}\n",
             err, sizeof err);
    assert_non_null(s);
    assert_null(s->tokens);
    assert_int_equal(ph_schema_lookup(s, NULL, "t", "d")->format, PH_TOKEN_OPAQUE);
    ph_schema_free(s);
    /* the proxy's own config loader accepts the section */
    ph_config cfg;
    ph_config_defaults(&cfg);
    const char *doc = "target: db:5432\ntokens:\n  vault: sqlite\n  path: /x\n";
    assert_int_equal(ph_config_load_buffer(&cfg, doc, strlen(doc), "c.yaml", err, sizeof err), 0);
    ph_config_free(&cfg);
}

static void bad(const char *tokens, const char *want)
{
    char doc[512], err[256] = "";
    snprintf(doc, sizeof doc, "encrypt:\n  t:\n    - {column: c, mode: token}\n%s", tokens);
    ph_schema *s = load(doc, err, sizeof err);
    if (s)
        fail_msg("accepted: %s", tokens);
    if (!strstr(err, want))
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
    assert_null(strstr(err, "s3cret"));
}

static void test_errors(void **state)
{
    (void)state;
    bad("tokens:\n  vault: redis\n", "c.yaml:5: tokens: unknown vault \"redis\"");
    bad("tokens:\n  vault: sqlite\n", "c.yaml:4: tokens: vault sqlite needs `path:`");
    bad("tokens:\n  vault: postgres\n  path: /x\n",
        "c.yaml:4: tokens: vault postgres needs `dsn:`");
    bad("tokens:\n  path: /x\n  dir: /y\n", "c.yaml:6: tokens: unknown setting \"dir\"");
    bad("tokens:\n  path: /x\n  path: /y\n", "c.yaml:6: tokens: \"path\" is given twice");
    bad("tokens:\n  path: /x\n  cache_size: -1\n", "c.yaml:6: tokens: cache_size must be");
    bad("tokens:\n  path: /x\n  cache_size: 99999999999\n", "cache_size must be");
    bad("tokens: sqlite\n", "c.yaml:4: tokens: expected a mapping");
    bad("tokens:\n  vault: postgres\n  dsn: \"host=x password=s3cret =broken\"\n",
        "c.yaml:4: tokens: `dsn` is not a valid libpq connection string");
    bad("tokens:\n  path: /x\ntokens:\n  path: /y\n", "`tokens` is given twice");
    bad("tokens:\n  path: \n", "c.yaml:5: tokens: \"path\" needs a value");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
