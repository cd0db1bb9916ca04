/*
 * patch.c — JSON Patch operations and their encoding (see patch.h).
 */
#include "k8s/patch.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

char *ph_patch_path(const char *parent, const char *key)
{
    size_t plen = strlen(parent), extra = 0;
    for (const char *p = key; *p; p++)
        extra += (*p == '~' || *p == '/') ? 2 : 1;
    char *out = malloc(plen + 1 + extra + 1);
    if (!out)
        return NULL;
    memcpy(out, parent, plen);
    char *w = out + plen;
    *w++ = '/';
    for (const char *p = key; *p; p++) {
        if (*p == '~' || *p == '/') {
            *w++ = '~';
            *w++ = *p == '~' ? '0' : '1';
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
    return out;
}

int ph_patch_add(json_t *ops, const char *path, json_t *value)
{
    if (!value)
        return -1;
    json_t *op = json_pack("{s:s, s:s, s:o}", "op", "add", "path", path, "value", value);
    if (!op)
        return -1; /* json_pack's "o" steals value even on failure */
    return json_array_append_new(ops, op) == 0 ? 0 : -1;
}

int ph_patch_add_items(json_t *ops, const char *path, const json_t *existing, const json_t *items,
                       int at_front)
{
    if (!json_is_array(items))
        return -1;
    if (!existing || json_is_null(existing))
        return ph_patch_add(ops, path, json_deep_copy(items));
    if (!json_is_array(existing))
        return -1;
    char *at = ph_patch_path(path, at_front ? "0" : "-");
    if (!at)
        return -1;
    int rc = 0;
    size_t n = json_array_size(items);
    /* At the front, insert the last item first so the block keeps its order. */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const json_t *item = json_array_get(items, at_front ? n - 1 - i : i);
        rc = ph_patch_add(ops, at, json_deep_copy(item));
    }
    free(at);
    return rc;
}

char *ph_patch_encode(const json_t *ops)
{
    char *text = json_dumps(ops, JSON_COMPACT);
    if (!text)
        return NULL;
    size_t len = strlen(text);
    char *out = NULL;
    if (len <= (size_t)INT_MAX / 4 * 3)
        out = malloc(4 * ((len + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)text, (int)len);
    free(text);
    return out;
}
