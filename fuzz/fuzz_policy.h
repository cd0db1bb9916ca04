/*
 * fuzz_policy.h — the fixed encryption policy of the stateful fuzz targets.
 *
 * Owns: the seed's financial-SaaS encrypt: section (customers, payments,
 * accounts, as tests/integration/test_encrypt_app.sh protects them) and a
 * fixed DEK per key domain, so that envelopes captured from a real proxy
 * session (fuzz/capture-corpus.sh) decrypt inside the fuzz targets.
 *
 * tests/tools/fixed_keyring.py reads this file: it takes the YAML between
 * the policy-yaml markers and the {"domain", key id} entries of
 * fuzz_policy_keys, and writes a keyring whose DEKs follow fuzz_policy_dek()
 * (keep that formula in step with the script's).
 */
#ifndef PHANTOM_FUZZ_POLICY_H
#define PHANTOM_FUZZ_POLICY_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/field.h"
#include "engine/keysource.h"
#include "schema/schema.h"

/* policy-yaml-begin */
static const char fuzz_policy_yaml[] = "encrypt:\n"
                                       "  customers:\n"
                                       "    - email: deterministic\n"
                                       "    - full_name\n"
                                       "    - phone\n"
                                       "    - tax_id\n"
                                       "    - column: address\n"
                                       "      mode: randomized\n"
                                       "      type: jsonb\n"
                                       "  payments:\n"
                                       "    - column: customer_email\n"
                                       "      mode: deterministic\n"
                                       "      key: customers.email\n"
                                       "    - card_number\n"
                                       "    - column: paid_on\n"
                                       "      mode: ope\n"
                                       "      type: date\n"
                                       "  accounts:\n"
                                       "    - owner_email: deterministic\n"
                                       "    - column: balance\n"
                                       "      type: numeric(12,2)\n"
                                       "    - column: credit_limit\n"
                                       "      mode: ope\n"
                                       "      type: int8\n";
/* policy-yaml-end */

static const struct fuzz_policy_key {
    const char *domain;
    uint32_t key_id;
} fuzz_policy_keys[] = {
    {"customers.email", 1},        {"customers.full_name", 2},  {"customers.phone", 3},
    {"customers.tax_id", 4},       {"customers.address", 5},    {"payments.card_number", 6},
    {"payments.paid_on", 7},       {"accounts.owner_email", 8}, {"accounts.balance", 9},
    {"accounts.credit_limit", 10},
};

/* The DEK of key id k: byte j is 0x50 + 29k + 7j (mod 256). */
static inline void fuzz_policy_dek(uint32_t key_id, uint8_t dek[PH_FIELD_DEK_LEN])
{
    for (int j = 0; j < PH_FIELD_DEK_LEN; j++)
        dek[j] = (uint8_t)(0x50u + 29u * key_id + 7u * (uint32_t)j);
}

/* Adds the policy's key of domain (version active) to ks; -1 if the domain
 * is not in the policy. */
static inline int fuzz_policy_add(ph_keysource *ks, const char *domain)
{
    for (size_t i = 0; i < sizeof fuzz_policy_keys / sizeof fuzz_policy_keys[0]; i++) {
        if (strcmp(fuzz_policy_keys[i].domain, domain) != 0)
            continue;
        uint8_t dek[PH_FIELD_DEK_LEN];
        fuzz_policy_dek(fuzz_policy_keys[i].key_id, dek);
        return ph_keysource_add(ks, domain, fuzz_policy_keys[i].key_id, dek, 1);
    }
    return -1;
}

/* The policy's schema and a keysource with every one of its keys; aborts on
 * failure (a broken fixture, not a finding). */
static inline void fuzz_policy_load(ph_schema **schema, ph_keysource **ks)
{
    char err[256];
    if (ph_schema_load_buffer(schema, fuzz_policy_yaml, sizeof fuzz_policy_yaml - 1,
                              "fuzz_policy.yaml", err, sizeof err) != 0)
        abort();
    *ks = ph_keysource_new();
    if (!*ks)
        abort();
    for (size_t i = 0; i < sizeof fuzz_policy_keys / sizeof fuzz_policy_keys[0]; i++)
        if (fuzz_policy_add(*ks, fuzz_policy_keys[i].domain) != 0)
            abort();
}

#endif
