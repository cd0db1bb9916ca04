/*
 * fuzz_transit.c — libFuzzer target for the OpenBao / Vault response reader.
 *
 * Feeds arbitrary bytes as an HTTP response body to the functions the
 * `openbao` KEK provider uses on every answer (http_vault.h): parse, read
 * data.ciphertext / data.plaintext / auth.client_token / lease numbers,
 * check the ciphertext syntax, decode a 32-byte key, extract the first
 * error message, then wipe and free. Checks: no crash/UB/leak; an error
 * message is NUL-terminated printable ASCII; an accepted ciphertext starts
 * with "vault:v" and holds no quote, backslash or control byte.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keys/http_vault.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_message(const char *m, size_t cap)
{
    const char *end = memchr(m, '\0', cap);
    if (!end)
        abort();
    for (const char *p = m; p < end; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            abort();
}

static void check_ciphertext(const char *ct, size_t n)
{
    if (!ct || !ph_vault_ciphertext_ok((const uint8_t *)ct, n))
        return;
    if (n < 10 || memcmp(ct, "vault:v", 7) != 0)
        abort();
    for (size_t i = 0; i < n; i++)
        if (ct[i] == '"' || ct[i] == '\\' || (unsigned char)ct[i] < 0x21)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[128], msg[64];
    memset(err, 'x', sizeof err);
    json_t *doc = ph_vault_parse((const char *)data, size, err, sizeof err);
    if (!doc) {
        check_message(err, sizeof err);
        ph_vault_first_error(NULL, msg, sizeof msg);
        if (msg[0] != '\0')
            abort();
        return 0;
    }
    size_t n = 0;
    const char *ct = ph_vault_get_string(doc, "data", "ciphertext", &n);
    check_ciphertext(ct, n);
    const char *pt = ph_vault_get_string(doc, "data", "plaintext", &n);
    uint8_t key[32];
    if (pt && ph_vault_decode_key32(pt, n, key) == 0 && n != 44)
        abort();
    (void)ph_vault_get_string(doc, "auth", "client_token", &n);
    unsigned long long v = 0;
    (void)ph_vault_get_uint(doc, "auth", "lease_duration", &v);
    (void)ph_vault_get_uint(doc, "data", "latest_version", &v);
    memset(msg, 'x', sizeof msg);
    ph_vault_first_error(doc, msg, sizeof msg);
    check_message(msg, sizeof msg);
    ph_vault_wipe_free(doc);
    /* The same checks on the raw input, outside JSON. */
    (void)ph_vault_ciphertext_ok(data, size);
    (void)ph_vault_decode_key32((const char *)data, size, key);
    return 0;
}
