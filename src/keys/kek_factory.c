/*
 * kek_factory.c — picks the KEK provider constructor by kind, and creates a
 * provider's KEK (see kek_factory.h). The openbao key creation speaks to
 * Transit directly through http_client.h / http_vault.h.
 */
#include "keys/kek_factory.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys/http_client.h"
#include "keys/http_vault.h"
#include "keys/kek_file.h"
#include "keys/kek_openbao.h"
#include "keys/kek_pkcs11.h"

#define OB_MAX_TOKEN 4096
#define OB_MAX_URL   1024
#define OB_MSG_LEN   160

ph_kek *ph_kek_open_provider(const ph_keys_provider_cfg *p, char *err, size_t errlen)
{
    switch (p->kind) {
    case PH_KEK_KIND_FILE:
        if (!p->file.path) {
            snprintf(err, errlen, "keys: file provider needs file.path");
            return NULL;
        }
        return ph_kek_file_open(p->file.path, err, errlen);
    case PH_KEK_KIND_OPENBAO:
        return ph_kek_openbao_open(&p->openbao, err, errlen);
    case PH_KEK_KIND_PKCS11:
        return ph_kek_pkcs11_open(&p->pkcs11, err, errlen);
    default:
        snprintf(err, errlen, "keys: no KEK provider configured");
        return NULL;
    }
}

ph_kek *ph_kek_open(const ph_keys_config *kc, char *err, size_t errlen)
{
    return ph_kek_open_provider(&kc->primary, err, errlen);
}

ph_kek *ph_kek_open_escrow(const ph_keys_config *kc, char *err, size_t errlen)
{
    if (!kc->has_escrow) {
        snprintf(err, errlen, "keys: no escrow KEK configured (keys: escrow: ...)");
        return NULL;
    }
    return ph_kek_open_provider(&kc->escrow, err, errlen);
}

/* ---- openbao: create the Transit key ------------------------------------- */

static void fmt_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fmt_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void free_secret(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

/* The administrator's token: the literal one or token_file's content
 * (trailing whitespace trimmed). The provider's open already checked both. */
static char *ob_admin_token(const ph_keys_openbao_cfg *c, char *err, size_t errlen)
{
    if (c->token)
        return strdup(c->token);
    if (!c->token_file) {
        fmt_err(err, errlen,
                "openbao create key: needs token or token_file (an administrator's token; "
                "Kubernetes auth is for the proxy)");
        return NULL;
    }
    FILE *f = fopen(c->token_file, "rb");
    char *buf = f ? calloc(1, OB_MAX_TOKEN + 1) : NULL;
    size_t n = buf ? fread(buf, 1, OB_MAX_TOKEN, f) : 0;
    if (f)
        fclose(f);
    while (n > 0 && strchr(" \t\r\n", buf[n - 1]))
        buf[--n] = '\0';
    if (n == 0) {
        free_secret(buf);
        fmt_err(err, errlen, "openbao create key: cannot read a token from token_file %s",
                c->token_file);
        return NULL;
    }
    return buf;
}

/* "{address}/v1/{mount}/keys/{key}", the address without trailing '/'. */
static int ob_key_url(const ph_keys_openbao_cfg *c, char *url, size_t n)
{
    size_t alen = strlen(c->address);
    while (alen > 0 && c->address[alen - 1] == '/')
        alen--;
    const char *mount = c->mount ? c->mount : PH_KEYS_DEFAULT_MOUNT;
    int w = snprintf(url, n, "%.*s/v1/%s/keys/%s", (int)alen, c->address, mount, c->key_name);
    return w > 0 && (size_t)w < n ? 0 : -1;
}

/* A non-2xx answer as "KIND (HTTP N): first error". */
static void ob_describe(const ph_http_resp *r, char *err, size_t errlen)
{
    char why[OB_MSG_LEN + 32], msg[OB_MSG_LEN];
    json_t *doc = r->len ? ph_vault_parse(r->body, r->len, why, sizeof why) : NULL;
    ph_vault_first_error(doc, msg, sizeof msg);
    ph_vault_wipe_free(doc);
    const char *kind = r->status == 403   ? "permission denied"
                       : r->status >= 500 ? "server error"
                       : r->status == 404 ? "not found (is Transit mounted there?)"
                                          : "request rejected";
    int show = msg[0] && strcmp(msg, kind) != 0;
    fmt_err(err, errlen, "openbao create key: %s (HTTP %ld)%s%s", kind, r->status, show ? ": " : "",
            show ? msg : "");
}

/* 1 when the answer's top-level "warnings" say the key already existed. */
static int ob_existed(const json_t *doc)
{
    const json_t *w = json_object_get(doc, "warnings");
    size_t i;
    const json_t *s;
    json_array_foreach(w, i, s)
    {
        if (json_is_string(s) && strstr(json_string_value(s), "already existed"))
            return 1;
    }
    return 0;
}

/* Reads the key info of a 200 answer into *out; refuses unsuitable types. */
static int ob_take_info(const ph_http_resp *r, const char *key, ph_kek_created *out, char *err,
                        size_t errlen)
{
    char why[OB_MSG_LEN];
    json_t *doc = ph_vault_parse(r->body, r->len, why, sizeof why);
    if (!doc) {
        fmt_err(err, errlen, "openbao create key: malformed answer: %s", why);
        return -1;
    }
    size_t tlen = 0;
    const char *type = ph_vault_get_string(doc, "data", "type", &tlen);
    int rc = 0;
    if (!type || tlen >= sizeof out->type ||
        ph_vault_get_uint(doc, "data", "latest_version", &out->version) != 0) {
        fmt_err(err, errlen, "openbao create key: answer lacks data.type / data.latest_version");
        rc = -1;
    } else {
        memcpy(out->type, type, tlen + 1);
        out->existed = ob_existed(doc);
        if (strcmp(type, PH_KEK_OPENBAO_KEY_TYPE) != 0 && strcmp(type, "chacha20-poly1305") != 0) {
            fmt_err(err, errlen,
                    "openbao create key: Transit key %s exists with type %s; phantom needs a "
                    "256-bit AEAD key (%s or chacha20-poly1305)",
                    key, out->type, PH_KEK_OPENBAO_KEY_TYPE);
            rc = -1;
        }
    }
    ph_vault_wipe_free(doc);
    return rc;
}

/* One request to the key path; 0 with *r filled, or -1 + err. */
static int ob_send(const ph_keys_openbao_cfg *c, const char *method, const char *body,
                   ph_http_resp *r, char *err, size_t errlen)
{
    char url[OB_MAX_URL], why[OB_MSG_LEN + 64];
    if (ob_key_url(c, url, sizeof url) != 0) {
        fmt_err(err, errlen, "openbao create key: address too long");
        return -1;
    }
    char *token = ob_admin_token(c, err, errlen);
    if (!token)
        return -1;
    ph_http *h = ph_http_new(c->ca_file, c->timeout_ms, why, sizeof why);
    int rc = h ? ph_http_request(h, method, url, token, body, body ? strlen(body) : 0, r, why,
                                 sizeof why)
               : -1;
    if (rc != 0)
        fmt_err(err, errlen, "openbao create key: %s", why);
    ph_http_free(h);
    free_secret(token);
    return rc == 0 ? 0 : -1;
}

static int ob_create(const ph_keys_openbao_cfg *c, ph_kek_created *out, char *err, size_t errlen)
{
    /* The provider validates every setting (address, names, auth, CA file). */
    ph_kek *probe = ph_kek_openbao_open(c, err, errlen);
    if (!probe)
        return -1;
    ph_kek_destroy(probe);
    ph_http_resp r;
    if (ob_send(c, "POST", "{\"type\":\"" PH_KEK_OPENBAO_KEY_TYPE "\"}", &r, err, errlen) != 0)
        return -1;
    if (r.status == 204) { /* older Vault: created, no body; read the key back */
        ph_http_resp_free(&r);
        if (ob_send(c, "GET", NULL, &r, err, errlen) != 0)
            return -1;
    }
    int rc = r.status == 200 ? ob_take_info(&r, c->key_name, out, err, errlen) : -1;
    if (r.status != 200)
        ob_describe(&r, err, errlen);
    ph_http_resp_free(&r);
    return rc;
}

/* ---- every provider ---------------------------------------------------------- */

int ph_kek_create_key(const ph_keys_provider_cfg *p, ph_kek_created *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    switch (p->kind) {
    case PH_KEK_KIND_FILE:
        if (!p->file.path) {
            fmt_err(err, errlen, "keys: file provider needs file.path");
            return -1;
        }
        out->version = 1;
        return ph_kek_file_create(p->file.path, err, errlen);
    case PH_KEK_KIND_OPENBAO:
        return ob_create(&p->openbao, out, err, errlen);
    case PH_KEK_KIND_PKCS11:
        out->version = 1;
        return ph_kek_pkcs11_create_key(&p->pkcs11, err, errlen);
    default:
        fmt_err(err, errlen, "keys: no KEK provider configured");
        return -1;
    }
}
