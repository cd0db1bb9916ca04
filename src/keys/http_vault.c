/*
 * http_vault.c — OpenBao / Vault response bodies: parse, read, wipe.
 *
 * Owns: the jansson side of the Transit client (see http_vault.h).
 */
#include "keys/http_vault.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 64

json_t *ph_vault_parse(const char *body, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    if (!body || len == 0) {
        snprintf(err, errlen, "empty response body");
        return NULL;
    }
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        /* je.text may quote the input: report the position only. */
        snprintf(err, errlen, "response is not valid JSON (line %d, column %d)", je.line,
                 je.column);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        snprintf(err, errlen, "response is not a JSON object");
        return NULL;
    }
    return doc;
}

static void wipe_strings(json_t *v, int depth)
{
    if (!v || depth > MAX_DEPTH)
        return;
    if (json_is_string(v)) {
        /* jansson owns this buffer; wiping it in place is safe before decref. */
        OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
    } else if (json_is_object(v)) {
        const char *k;
        json_t *child;
        json_object_foreach(v, k, child)
        {
            wipe_strings(child, depth + 1);
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child)
        {
            wipe_strings(child, depth + 1);
        }
    }
}

void ph_vault_wipe_free(json_t *doc)
{
    if (!doc)
        return;
    /* Only the last reference wipes: callers never share documents. */
    wipe_strings(doc, 0);
    json_decref(doc);
}

static const json_t *get_field(const json_t *doc, const char *section, const char *field)
{
    if (!doc)
        return NULL;
    const json_t *sec = json_object_get(doc, section);
    if (!json_is_object(sec))
        return NULL;
    return json_object_get(sec, field);
}

const char *ph_vault_get_string(const json_t *doc, const char *section, const char *field,
                                size_t *len)
{
    const json_t *v = get_field(doc, section, field);
    if (!json_is_string(v))
        return NULL;
    if (len)
        *len = json_string_length(v);
    return json_string_value(v);
}

int ph_vault_get_uint(const json_t *doc, const char *section, const char *field,
                      unsigned long long *out)
{
    const json_t *v = get_field(doc, section, field);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (unsigned long long)json_integer_value(v);
    return 0;
}

void ph_vault_first_error(const json_t *doc, char *out, size_t outlen)
{
    if (!out || outlen == 0)
        return;
    out[0] = '\0';
    const json_t *errs = doc ? json_object_get(doc, "errors") : NULL;
    const json_t *first = json_is_array(errs) ? json_array_get(errs, 0) : NULL;
    if (!json_is_string(first))
        return;
    const char *s = json_string_value(first);
    size_t n = json_string_length(first), o = 0;
    for (size_t i = 0; i < n && o + 1 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[o] = '\0';
}

int ph_vault_ciphertext_ok(const uint8_t *s, size_t len)
{
    static const char pre[] = "vault:v";
    size_t i = sizeof(pre) - 1;
    if (!s || len < i + 3 || len > PH_VAULT_MAX_CIPHERTEXT || memcmp(s, pre, i) != 0)
        return 0;
    size_t digits = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        i++;
        digits++;
    }
    if (digits == 0 || digits > 9 || i >= len || s[i] != ':')
        return 0;
    for (i++; i < len; i++) {
        uint8_t c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/' || c == '='))
            return 0;
    }
    return 1;
}

int ph_vault_decode_key32(const char *b64, size_t len, uint8_t out[32])
{
    unsigned char tmp[48];
    if (!b64 || len != 44 || b64[43] != '=' || memchr(b64, '=', 43))
        return -1;
    int n = EVP_DecodeBlock(tmp, (const unsigned char *)b64, (int)len);
    int rc = -1;
    if (n == 33) { /* EVP_DecodeBlock counts the '=' pad as a zero byte */
        memcpy(out, tmp, 32);
        rc = 0;
    }
    OPENSSL_cleanse(tmp, sizeof(tmp));
    return rc;
}
