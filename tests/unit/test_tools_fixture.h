/*
 * test_tools_fixture.h — shared fixture for the tools' unit tests
 * (test_tools_*.c): a schema with one column of each mode and several
 * logical types, and two key sources made from fixed test DEKs: `before`,
 * where every key domain has only DEK version 1 (key id OLD_ID(i), active),
 * and `after` a rotation, with version 1 and version 2 (key id NEW_ID(i),
 * active) — what the proxy holds before and after `keys rotate`.
 */
#ifndef PHANTOM_TEST_TOOLS_FIXTURE_H
#define PHANTOM_TEST_TOOLS_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/field.h"
#include "engine/colcrypt.h"
#include "engine/keysource.h"
#include "schema/schema.h"

static const char tfx_yaml[] = "encrypt:\n"
                               "  customers:\n"
                               "    - email: deterministic\n"
                               "    - phone\n"
                               "    - column: age\n"
                               "      mode: ope\n"
                               "      type: int4\n"
                               "    - column: signup_day\n"
                               "      mode: ope\n"
                               "      type: date\n"
                               "    - column: score\n"
                               "      type: int4\n"
                               "  payments:\n"
                               "    - column: customer_email\n"
                               "      mode: deterministic\n"
                               "      key: customers.email\n";

#define TFX_OLD_ID(i) (10u + (uint32_t)(i))
#define TFX_NEW_ID(i) (100u + (uint32_t)(i))

typedef struct tfx {
    ph_schema *schema;
    ph_keysource *before; /* version 1 active */
    ph_keysource *after;  /* version 1 + version 2 active */
    const char *domains[16];
    size_t ndomains;
} tfx;

static inline void tfx_dek(const char *domain, unsigned version, uint8_t dek[PH_FIELD_DEK_LEN])
{
    for (size_t i = 0; i < PH_FIELD_DEK_LEN; i++)
        dek[i] = (uint8_t)(i * 11 + version * 101 + (uint8_t)domain[i % strlen(domain)]);
}

static inline int tfx_setup(void **state)
{
    tfx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    char err[256];
    assert_int_equal(
        ph_schema_load_buffer(&f->schema, tfx_yaml, strlen(tfx_yaml), "test.yaml", err, sizeof err),
        0);
    f->before = ph_keysource_new();
    f->after = ph_keysource_new();
    assert_non_null(f->before);
    assert_non_null(f->after);
    for (size_t t = 0; t < f->schema->ntables; t++)
        for (size_t c = 0; c < f->schema->tables[t]->ncolumns; c++) {
            const char *d = f->schema->tables[t]->columns[c]->key_domain;
            size_t i = 0;
            while (i < f->ndomains && strcmp(f->domains[i], d) != 0)
                i++;
            if (i < f->ndomains)
                continue;
            f->domains[f->ndomains++] = d;
            uint8_t dek[PH_FIELD_DEK_LEN];
            tfx_dek(d, 1, dek);
            assert_int_equal(ph_keysource_add(f->before, d, TFX_OLD_ID(i), dek, 1), 0);
            assert_int_equal(ph_keysource_add(f->after, d, TFX_OLD_ID(i), dek, 0), 0);
            tfx_dek(d, 2, dek);
            assert_int_equal(ph_keysource_add(f->after, d, TFX_NEW_ID(i), dek, 1), 0);
        }
    *state = f;
    return 0;
}

static inline int tfx_teardown(void **state)
{
    tfx *f = *state;
    ph_keysource_free(f->before);
    ph_keysource_free(f->after);
    ph_schema_free(f->schema);
    free(f);
    return 0;
}

static inline const ph_schema_column *tfx_col(const tfx *f, const char *table, const char *name)
{
    const ph_schema_column *c = ph_schema_lookup(f->schema, NULL, table, name);
    assert_non_null(c);
    return c;
}

/* The index of a column's key domain (its key ids are TFX_OLD_ID/TFX_NEW_ID of it). */
static inline size_t tfx_domain(const tfx *f, const ph_schema_column *c)
{
    for (size_t i = 0; i < f->ndomains; i++)
        if (strcmp(f->domains[i], c->key_domain) == 0)
            return i;
    fail_msg("no domain %s", c->key_domain);
    return 0;
}

/* Encrypts text value v of column c with the write key of ks (as the proxy does). */
static inline void tfx_seal(const ph_keysource *ks, const ph_schema_column *c, const char *v,
                            ph_buf *out)
{
    eng_cc_err e = {{0}, {0}};
    ph_enc_opts o = PH_ENC_OPTS_DEFAULT;
    out->len = 0;
    assert_int_equal(eng_col_encrypt(ks, c, &o, 0, eng_col_ltype(c), (const uint8_t *)v, strlen(v),
                                     out, NULL, &e),
                     0);
}

/* Decrypts env of column c through ks into text (NUL-terminated); 0 or -1. */
static inline int tfx_open(const ph_keysource *ks, const ph_schema_column *c, const uint8_t *env,
                           size_t len, char *out, size_t cap)
{
    eng_cc_err e = {{0}, {0}};
    ph_enc_opts o = PH_ENC_OPTS_DEFAULT;
    ph_buf b = {0};
    int rc = eng_col_decrypt(ks, c, &o, env, len, 0, &b, NULL, &e);
    if (rc == 0) {
        assert_true(b.len < cap);
        if (b.len)
            memcpy(out, b.data, b.len);
        out[b.len] = '\0';
    }
    ph_buf_free(&b);
    return rc;
}

static inline uint32_t tfx_key_id(const ph_buf *env)
{
    ph_field_info info;
    assert_int_equal(ph_field_peek(env->data, env->len, &info), PH_FIELD_OK);
    return info.key_id;
}

#endif
