/*
 * kek_openbao.c — the `openbao` KEK provider (OpenBao / Vault Transit).
 *
 * Owns: validating the openbao settings, the authentication state (token,
 * token file, Kubernetes login and its renewal), building Transit requests,
 * creating the Transit key (`keys init-kek`), mapping HTTP outcomes to clear
 * errors (403 permission denied, 5xx server error, timeouts, TLS failures,
 * malformed answers), and wiping every buffer that held a plaintext DEK, a
 * token or a service-account JWT.
 */
#include "keys/kek_openbao.h"

#include "common/err.h"
#include "keys/http_client.h"
#include "keys/http_vault.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/mem.h"

#define MAX_ADDRESS    512
#define MAX_NAME       128
#define MAX_URL        (MAX_ADDRESS + 3 * MAX_NAME + 64)
#define MAX_SECRET_LEN (64u * 1024) /* token / JWT files */
#define B64_DEK_LEN    44           /* base64 of 32 bytes */
#define MSG_LEN        160
#define CREATE_WHAT    "create key"

_Static_assert(PH_DEK_LEN == 32, "Transit data keys are requested as 256 bits");

typedef enum { AUTH_TOKEN, AUTH_TOKEN_FILE, AUTH_K8S } auth_kind;

typedef struct ob_kek {
    ph_kek base; /* first: the dispatchers see a ph_kek */
    pthread_mutex_t mu;
    ph_http *http;
    char *address; /* without a trailing '/' */
    char *mount;
    char *key;
    auth_kind auth;
    char *token; /* secret; NULL until the first Kubernetes login */
    char *token_file;
    char *k8s_role;
    char *k8s_jwt_path;
    char *k8s_auth_path;
    int has_renew;
    struct timespec renew_at; /* CLOCK_MONOTONIC: log in again from then on */
} ob_kek;

static const ph_kek_ops ob_ops;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

static void free_secret(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

static char *dup_or_null(const char *s, int *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = 1;
    return d;
}

/* Characters of a Vault path segment name (Transit key, mount). */
static int name_char_ok(char c, int allow_slash)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || (allow_slash && c == '/');
}

static int name_ok(const char *s, int allow_slash)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > MAX_NAME || s[0] == '/' || s[n - 1] == '/' || strstr(s, "..") ||
        strstr(s, "//"))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!name_char_ok(s[i], allow_slash))
            return 0;
    return 1;
}

/* A token goes into an HTTP header: visible ASCII only (no CR/LF). */
static int token_ok(const char *s, size_t n)
{
    if (n == 0 || n > 4096)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

/* Reads a small secret file, trimming trailing whitespace. */
static char *read_secret_file(const char *path, const char *what, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        ph_errf(err, errlen, "cannot read %s %s: %m", what, path);
        return NULL;
    }
    char *buf = malloc(MAX_SECRET_LEN + 1);
    if (!buf) {
        fclose(f);
        ph_errf(err, errlen, "out of memory");
        return NULL;
    }
    size_t n = fread(buf, 1, MAX_SECRET_LEN + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > MAX_SECRET_LEN) {
        OPENSSL_cleanse(buf, MAX_SECRET_LEN + 1);
        free(buf);
        ph_errf(err, errlen, "%s %s is unreadable or larger than %u bytes", what, path,
                MAX_SECRET_LEN);
        return NULL;
    }
    while (n > 0 &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    buf[n] = '\0';
    if (n == 0) {
        free(buf);
        ph_errf(err, errlen, "%s %s is empty", what, path);
        return NULL;
    }
    return buf;
}

/* http:// is accepted only towards loopback (an agent sidecar on the pod):
 * 127.0.0.0/8, [::1] or localhost, optionally with a port and a path. */
static int http_host_is_loopback(const char *rest)
{
    size_t n = strcspn(rest, "/");
    char host[64];
    if (n == 0 || n >= sizeof(host))
        return 0;
    memcpy(host, rest, n);
    host[n] = '\0';
    if (host[0] == '[') {
        char *close = strchr(host, ']');
        if (!close || (close[1] != '\0' && close[1] != ':'))
            return 0;
        *close = '\0';
        return strcmp(host + 1, "::1") == 0;
    }
    char *colon = strchr(host, ':');
    if (colon)
        *colon = '\0';
    if (strcmp(host, "localhost") == 0)
        return 1;
    struct in_addr a4;
    return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

static char *normalize_address(const char *a, char *err, size_t errlen)
{
    size_t n = a ? strlen(a) : 0;
    if (n == 0) {
        ph_errf(err, errlen, "openbao: address is required");
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)a[i] <= 0x20 || (unsigned char)a[i] >= 0x7f || a[i] == '?' ||
            a[i] == '#') {
            ph_errf(err, errlen, "openbao: address contains an invalid character");
            return NULL;
        }
    if (strncmp(a, "https://", 8) != 0) {
        if (strncmp(a, "http://", 7) != 0) {
            ph_errf(err, errlen, "openbao: address must start with https://");
            return NULL;
        }
        if (!http_host_is_loopback(a + 7)) {
            ph_errf(err, errlen,
                    "openbao: plain http:// is only allowed to a loopback address; use https://");
            return NULL;
        }
    }
    while (n > 0 && a[n - 1] == '/')
        n--;
    if (n > MAX_ADDRESS) {
        ph_errf(err, errlen, "openbao: address is longer than %d bytes", MAX_ADDRESS);
        return NULL;
    }
    char *d = strndup(a, n);
    if (!d)
        ph_errf(err, errlen, "out of memory");
    return d;
}

static void now_mono(struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
}

/* ------------------------------------------------------------------------ */
/* HTTP outcome -> message                                                   */

/* what names the operation; a 404 to "create key" (a POST that creates the
 * key) can only mean that no Transit engine is mounted there. */
static void describe_status(long status, const char *what, const json_t *doc, char *out,
                            size_t outlen)
{
    char msg[MSG_LEN];
    ph_vault_first_error(doc, msg, sizeof(msg));
    const char *kind;
    if (status == 403)
        kind = "permission denied";
    else if (status >= 500)
        kind = "server error";
    else if (status >= 300 && status < 400)
        kind = "unexpected redirect";
    else if (status == 404)
        kind =
            strcmp(what, CREATE_WHAT) == 0 ? "not found (is Transit mounted there?)" : "not found";
    else
        kind = "request rejected";
    int show = msg[0] && strcmp(msg, kind) != 0; /* "permission denied" once is enough */
    snprintf(out, outlen, "%s (HTTP %ld)%s%s", kind, status, show ? ": " : "", show ? msg : "");
}

/* Turns a received response into a parsed document (NULL for 204) or an error. */
static int interpret(const ph_http_resp *r, const char *what, json_t **doc, char *err,
                     size_t errlen)
{
    char why[MSG_LEN + 64];
    *doc = NULL;
    if (r->status == 204)
        return 0;
    if (r->status >= 200 && r->status < 300) {
        *doc = ph_vault_parse(r->body, r->len, why, sizeof(why));
        if (!*doc) {
            ph_errf(err, errlen, "openbao %s: malformed answer: %s", what, why);
            return -1;
        }
        return 0;
    }
    json_t *edoc = r->len ? ph_vault_parse(r->body, r->len, why, sizeof(why)) : NULL;
    describe_status(r->status, what, edoc, why, sizeof(why));
    ph_vault_wipe_free(edoc);
    ph_errf(err, errlen, "openbao %s: %s", what, why);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Authentication                                                            */

static int k8s_login(ob_kek *k, char *err, size_t errlen)
{
    char why[MSG_LEN + 64];
    char *jwt = read_secret_file(k->k8s_jwt_path, "service-account token", why, sizeof(why));
    if (!jwt) {
        ph_errf(err, errlen, "openbao login: %s", why);
        return -1;
    }
    json_t *req = json_pack("{s:s, s:s}", "role", k->k8s_role, "jwt", jwt);
    free_secret(jwt);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    ph_vault_wipe_free(req);
    if (!body) {
        ph_errf(err, errlen, "openbao login: out of memory");
        return -1;
    }
    char url[MAX_URL];
    snprintf(url, sizeof(url), "%s/v1/auth/%s/login", k->address, k->k8s_auth_path);
    ph_http_resp r;
    int rc = ph_http_request(k->http, "POST", url, NULL, body, strlen(body), &r, why, sizeof(why));
    free_secret(body);
    if (rc != 0) {
        ph_errf(err, errlen, "openbao login: %s", why);
        return -1;
    }
    json_t *doc = NULL;
    rc = interpret(&r, "login", &doc, err, errlen);
    ph_http_resp_free(&r);
    if (rc != 0)
        return -1;
    size_t tlen = 0;
    const char *tok = ph_vault_get_string(doc, "auth", "client_token", &tlen);
    unsigned long long lease = 0;
    if (!tok || !token_ok(tok, tlen)) {
        ph_vault_wipe_free(doc);
        ph_errf(err, errlen, "openbao login: answer has no valid auth.client_token");
        return -1;
    }
    char *copy = strndup(tok, tlen);
    int has_lease = ph_vault_get_uint(doc, "auth", "lease_duration", &lease) == 0 && lease > 0;
    ph_vault_wipe_free(doc);
    if (!copy) {
        ph_errf(err, errlen, "openbao login: out of memory");
        return -1;
    }
    free_secret(k->token);
    k->token = copy;
    k->has_renew = has_lease;
    if (has_lease) {
        now_mono(&k->renew_at);
        k->renew_at.tv_sec += (time_t)(lease * 4 / 5);
    }
    return 0;
}

static int ensure_token(ob_kek *k, char *err, size_t errlen)
{
    if (k->auth != AUTH_K8S)
        return 0;
    if (k->token && k->has_renew) {
        struct timespec now;
        now_mono(&now);
        if (now.tv_sec >= k->renew_at.tv_sec)
            return k8s_login(k, err, errlen);
    }
    return k->token ? 0 : k8s_login(k, err, errlen);
}

/* After a 403: 1 = a new token is in place (retry), 0 = nothing new, -1 = error. */
static int refresh_token(ob_kek *k, char *err, size_t errlen)
{
    if (k->auth == AUTH_K8S)
        return k8s_login(k, err, errlen) == 0 ? 1 : -1;
    if (k->auth != AUTH_TOKEN_FILE)
        return 0;
    char why[MSG_LEN + 64];
    char *t = read_secret_file(k->token_file, "token_file", why, sizeof(why));
    if (!t || !token_ok(t, strlen(t))) {
        free_secret(t);
        return 0; /* keep reporting the 403 */
    }
    if (k->token && strcmp(t, k->token) == 0) {
        free_secret(t);
        return 0;
    }
    free_secret(k->token);
    k->token = t;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* One authenticated Transit call                                            */

/* With k->mu held. */
static int call_locked(ob_kek *k, const char *what, const char *method, const char *url,
                       const char *body, size_t blen, json_t **doc, char *err, size_t errlen)
{
    char why[MSG_LEN + 64];
    *doc = NULL;
    if (ensure_token(k, err, errlen) != 0)
        return -1;
    ph_http_resp r;
    int rc = ph_http_request(k->http, method, url, k->token, body, blen, &r, why, sizeof(why));
    if (rc == 0 && r.status == 403) {
        int fresh = refresh_token(k, err, errlen);
        if (fresh < 0) {
            ph_http_resp_free(&r);
            return -1;
        }
        if (fresh > 0) {
            ph_http_resp_free(&r);
            rc = ph_http_request(k->http, method, url, k->token, body, blen, &r, why, sizeof(why));
        }
    }
    if (rc != 0) {
        ph_errf(err, errlen, "openbao %s: %s", what, why);
        return -1;
    }
    rc = interpret(&r, what, doc, err, errlen);
    ph_http_resp_free(&r);
    return rc;
}

/* Serialised per provider: the token state and the connection are shared. */
static int ob_call(ob_kek *k, const char *what, const char *method, const char *url,
                   const char *body, size_t blen, json_t **doc, char *err, size_t errlen)
{
    pthread_mutex_lock(&k->mu);
    int rc = call_locked(k, what, method, url, body, blen, doc, err, errlen);
    pthread_mutex_unlock(&k->mu);
    return rc;
}

static void transit_url(const ob_kek *k, char *url, size_t n, const char *op)
{
    snprintf(url, n, "%s/v1/%s/%s/%s", k->address, k->mount, op, k->key);
}

/* "{address}/v1/{mount}/keys/{key}{suffix}": the key itself (info, create). */
static void key_url(const ob_kek *k, char *url, size_t n, const char *suffix)
{
    snprintf(url, n, "%s/v1/%s/keys/%s%s", k->address, k->mount, k->key, suffix);
}

/* Copies data.ciphertext (validated) into a new caller-owned buffer. */
static int take_ciphertext(const json_t *doc, const char *what, uint8_t **out, size_t *out_len,
                           char *err, size_t errlen)
{
    size_t n = 0;
    const char *ct = ph_vault_get_string(doc, "data", "ciphertext", &n);
    if (!ct || !ph_vault_ciphertext_ok((const uint8_t *)ct, n)) {
        ph_errf(err, errlen, "openbao %s: answer has no valid data.ciphertext", what);
        return -1;
    }
    uint8_t *b = malloc(n);
    if (!b) {
        ph_errf(err, errlen, "openbao %s: out of memory", what);
        return -1;
    }
    memcpy(b, ct, n);
    *out = b;
    *out_len = n;
    return 0;
}

static int take_plaintext(const json_t *doc, const char *what, uint8_t *dek, char *err,
                          size_t errlen)
{
    size_t n = 0;
    const char *pt = ph_vault_get_string(doc, "data", "plaintext", &n);
    if (!pt || ph_vault_decode_key32(pt, n, dek) != 0) {
        ph_errf(err, errlen, "openbao %s: answer has no valid %d-byte data.plaintext", what,
                PH_DEK_LEN);
        return -1;
    }
    return 0;
}

/* Builds {"ciphertext":"<blob>"}; the blob was validated by blob_ok. */
static char *ciphertext_body(const uint8_t *blob, size_t len, size_t *blen)
{
    static const char pre[] = "{\"ciphertext\":\"", post[] = "\"}";
    size_t n = sizeof(pre) - 1 + len + sizeof(post) - 1;
    char *b = malloc(n + 1);
    if (!b)
        return NULL;
    memcpy(b, pre, sizeof(pre) - 1);
    memcpy(b + sizeof(pre) - 1, blob, len);
    memcpy(b + sizeof(pre) - 1 + len, post, sizeof(post));
    *blen = n;
    return b;
}

/* POST body to /v1/{mount}/{op}/{key}. */
static int transit_post(ob_kek *k, const char *what, const char *op, const char *body, size_t blen,
                        json_t **doc, char *err, size_t errlen)
{
    char url[MAX_URL];
    transit_url(k, url, sizeof(url), op);
    return ob_call(k, what, "POST", url, body, blen, doc, err, errlen);
}

/* transit_post of {"ciphertext": wrapped}, wrapped checked first. */
static int ciphertext_post(ob_kek *k, const char *what, const char *op, const uint8_t *wrapped,
                           size_t len, json_t **doc, char *err, size_t errlen)
{
    *doc = NULL;
    if (!ph_vault_ciphertext_ok(wrapped, len))
        return ph_errf(err, errlen, "openbao %s: wrapped key is not a Transit ciphertext", what);
    size_t blen = 0;
    char *body = ciphertext_body(wrapped, len, &blen);
    if (!body)
        return ph_errf(err, errlen, "openbao %s: out of memory", what);
    int rc = transit_post(k, what, op, body, blen, doc, err, errlen);
    free(body);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Operations                                                                */

static int ob_wrap(ph_kek *base, const uint8_t *dek, uint8_t **out, size_t *out_len, char *err,
                   size_t errlen)
{
    ob_kek *k = (ob_kek *)base;
    char b64[B64_DEK_LEN + 4], body[B64_DEK_LEN + 32];
    EVP_EncodeBlock((unsigned char *)b64, dek, PH_DEK_LEN);
    int blen = snprintf(body, sizeof(body), "{\"plaintext\":\"%s\"}", b64);
    OPENSSL_cleanse(b64, sizeof(b64));
    json_t *doc = NULL;
    int rc = transit_post(k, "wrap", "encrypt", body, (size_t)blen, &doc, err, errlen);
    OPENSSL_cleanse(body, sizeof(body));
    if (rc == 0)
        rc = take_ciphertext(doc, "wrap", out, out_len, err, errlen);
    ph_vault_wipe_free(doc);
    return rc;
}

static int ob_unwrap(ph_kek *base, const uint8_t *wrapped, size_t len, uint8_t *dek_out, char *err,
                     size_t errlen)
{
    json_t *doc = NULL;
    int rc = ciphertext_post((ob_kek *)base, "unwrap", "decrypt", wrapped, len, &doc, err, errlen);
    if (rc == 0)
        rc = take_plaintext(doc, "unwrap", dek_out, err, errlen);
    ph_vault_wipe_free(doc);
    return rc;
}

static int ob_generate(ph_kek *base, uint8_t *dek_out, uint8_t **wrapped, size_t *wrapped_len,
                       char *err, size_t errlen)
{
    static const char body[] = "{\"bits\":256}";
    json_t *doc = NULL;
    int rc = transit_post((ob_kek *)base, "generate", "datakey/plaintext", body, sizeof(body) - 1,
                          &doc, err, errlen);
    if (rc == 0)
        rc = take_plaintext(doc, "generate", dek_out, err, errlen);
    if (rc == 0) {
        rc = take_ciphertext(doc, "generate", wrapped, wrapped_len, err, errlen);
        if (rc != 0)
            OPENSSL_cleanse(dek_out, PH_DEK_LEN);
    }
    ph_vault_wipe_free(doc);
    return rc;
}

static int ob_rewrap(ph_kek *base, const uint8_t *wrapped, size_t len, uint8_t **out,
                     size_t *out_len, char *err, size_t errlen)
{
    json_t *doc = NULL;
    int rc = ciphertext_post((ob_kek *)base, "rewrap", "rewrap", wrapped, len, &doc, err, errlen);
    if (rc == 0)
        rc = take_ciphertext(doc, "rewrap", out, out_len, err, errlen);
    ph_vault_wipe_free(doc);
    return rc;
}

static int ob_rotate(ph_kek *base, char *err, size_t errlen)
{
    ob_kek *k = (ob_kek *)base;
    char url[MAX_URL];
    key_url(k, url, sizeof(url), "/rotate");
    json_t *doc = NULL;
    int rc = ob_call(k, "rotate", "POST", url, "", 0, &doc, err, errlen);
    ph_vault_wipe_free(doc); /* 200 with key info (OpenBao) or 204 (older Vault) */
    return rc;
}

int ph_kek_openbao_key_info(ph_kek *base, ph_openbao_key_info *out, char *err, size_t errlen)
{
    if (!base || base->ops != &ob_ops || !out) {
        ph_errf(err, errlen, "openbao key info: not an openbao provider");
        return -1;
    }
    ob_kek *k = (ob_kek *)base;
    char url[MAX_URL];
    key_url(k, url, sizeof(url), "");
    json_t *doc = NULL;
    int rc = ob_call(k, "key info", "GET", url, NULL, 0, &doc, err, errlen);
    if (rc == 0 && (ph_vault_get_uint(doc, "data", "latest_version", &out->latest_version) != 0 ||
                    ph_vault_get_uint(doc, "data", "min_decryption_version",
                                      &out->min_decryption_version) != 0 ||
                    ph_vault_get_uint(doc, "data", "min_encryption_version",
                                      &out->min_encryption_version) != 0)) {
        ph_errf(err, errlen, "openbao key info: answer lacks the version fields");
        rc = -1;
    }
    ph_vault_wipe_free(doc);
    return rc;
}

static void ob_destroy(ph_kek *base)
{
    ob_kek *k = (ob_kek *)base;
    if (!k)
        return;
    ph_http_free(k->http);
    free_secret(k->token);
    free(k->address);
    free(k->mount);
    free(k->key);
    free(k->token_file);
    free(k->k8s_role);
    free(k->k8s_jwt_path);
    free(k->k8s_auth_path);
    pthread_mutex_destroy(&k->mu);
    OPENSSL_cleanse(k, sizeof(*k));
    free(k);
}

static const ph_kek_ops ob_ops = {
    .kind = "openbao",
    .wrap = ob_wrap,
    .unwrap = ob_unwrap,
    .generate = ob_generate,
    .rewrap = ob_rewrap,
    .rotate = ob_rotate,
    .destroy = ob_destroy,
};

/* ------------------------------------------------------------------------ */
/* Construction                                                              */

static int setup_auth(ob_kek *k, const ph_keys_openbao_cfg *cfg, char *err, size_t errlen)
{
    int n = (cfg->token != NULL) + (cfg->token_file != NULL) + (cfg->kubernetes_role != NULL);
    if (n != 1) {
        ph_errf(err, errlen, "openbao: set exactly one of token, token_file, kubernetes_role");
        return -1;
    }
    int oom = 0;
    char why[MSG_LEN + 64];
    if (cfg->token) {
        k->auth = AUTH_TOKEN;
        if (!token_ok(cfg->token, strlen(cfg->token))) {
            ph_errf(err, errlen, "openbao: token is empty or has invalid characters");
            return -1;
        }
        k->token = dup_or_null(cfg->token, &oom);
    } else if (cfg->token_file) {
        k->auth = AUTH_TOKEN_FILE;
        k->token_file = dup_or_null(cfg->token_file, &oom);
        k->token = read_secret_file(cfg->token_file, "token_file", why, sizeof(why));
        if (!k->token) {
            ph_errf(err, errlen, "openbao: %s", why);
            return -1;
        }
        if (!token_ok(k->token, strlen(k->token))) {
            ph_errf(err, errlen, "openbao: token in %s has invalid characters", cfg->token_file);
            return -1;
        }
    } else {
        k->auth = AUTH_K8S;
        const char *jwt =
            cfg->kubernetes_jwt_path ? cfg->kubernetes_jwt_path : PH_KEYS_DEFAULT_K8S_JWT_PATH;
        const char *ap =
            cfg->kubernetes_auth_path ? cfg->kubernetes_auth_path : PH_KEYS_DEFAULT_K8S_AUTH_PATH;
        if (cfg->kubernetes_role[0] == '\0') {
            ph_errf(err, errlen, "openbao: kubernetes_role is empty");
            return -1;
        }
        if (!name_ok(ap, 1)) {
            ph_errf(err, errlen, "openbao: invalid kubernetes_auth_path");
            return -1;
        }
        if (access(jwt, R_OK) != 0) {
            ph_errf(err, errlen, "openbao: kubernetes_jwt_path %s: %m", jwt);
            return -1;
        }
        k->k8s_role = dup_or_null(cfg->kubernetes_role, &oom);
        k->k8s_jwt_path = dup_or_null(jwt, &oom);
        k->k8s_auth_path = dup_or_null(ap, &oom);
    }
    if (oom) {
        ph_errf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int setup_names(ob_kek *k, const ph_keys_openbao_cfg *cfg, char *err, size_t errlen)
{
    const char *mount = cfg->mount ? cfg->mount : PH_KEYS_DEFAULT_MOUNT;
    if (!cfg->key_name || !name_ok(cfg->key_name, 0)) {
        ph_errf(err, errlen,
                "openbao: key (the Transit key name) is required and may hold only "
                "letters, digits, '_', '-', '.'");
        return -1;
    }
    if (!name_ok(mount, 1)) {
        ph_errf(err, errlen, "openbao: invalid mount");
        return -1;
    }
    if (cfg->ca_file && access(cfg->ca_file, R_OK) != 0) {
        ph_errf(err, errlen, "openbao: ca_file %s: %m", cfg->ca_file);
        return -1;
    }
    k->address = normalize_address(cfg->address, err, errlen);
    if (!k->address)
        return -1;
    k->mount = strdup(mount);
    k->key = strdup(cfg->key_name);
    if (!k->mount || !k->key) {
        ph_errf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

ph_kek *ph_kek_openbao_open(const ph_keys_openbao_cfg *cfg, char *err, size_t errlen)
{
    if (!cfg) {
        ph_errf(err, errlen, "openbao: no settings");
        return NULL;
    }
    ob_kek *k = ph_calloc(1, sizeof(*k));
    if (!k) {
        ph_errf(err, errlen, "out of memory");
        return NULL;
    }
    k->base.ops = &ob_ops;
    if (pthread_mutex_init(&k->mu, NULL) != 0) {
        free(k);
        ph_errf(err, errlen, "openbao: mutex init failed");
        return NULL;
    }
    char why[MSG_LEN + 64];
    if (setup_names(k, cfg, err, errlen) != 0 || setup_auth(k, cfg, err, errlen) != 0)
        goto fail;
    k->http = ph_http_new(cfg->ca_file, cfg->timeout_ms, why, sizeof(why));
    if (!k->http) {
        ph_errf(err, errlen, "openbao: %s", why);
        goto fail;
    }
    snprintf(k->base.id, sizeof(k->base.id), "openbao:%.50s/v1/%.24s/keys/%.32s", k->address,
             k->mount, k->key);
    return &k->base;
fail:
    ob_destroy(&k->base);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Creating the Transit key (`phantom keys init-kek`)                        */

/* 1 when the answer's top-level "warnings" say the key already existed. */
static int key_existed(const json_t *doc)
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

/* Reads the key info of the answer into *out; refuses unsuitable types. */
static int take_created(const json_t *doc, const char *key, ph_kek_created *out, char *err,
                        size_t errlen)
{
    size_t tlen = 0;
    const char *type = ph_vault_get_string(doc, "data", "type", &tlen);
    if (!type || tlen >= sizeof out->type ||
        ph_vault_get_uint(doc, "data", "latest_version", &out->version) != 0)
        return ph_errf(err, errlen,
                       "openbao " CREATE_WHAT ": answer lacks data.type / data.latest_version");
    memcpy(out->type, type, tlen + 1);
    out->existed = key_existed(doc);
    if (strcmp(type, PH_KEK_OPENBAO_KEY_TYPE) != 0 && strcmp(type, "chacha20-poly1305") != 0)
        return ph_errf(err, errlen,
                       "openbao " CREATE_WHAT ": Transit key %s exists with type %s; phantom "
                       "needs a 256-bit AEAD key (%s or chacha20-poly1305)",
                       key, out->type, PH_KEK_OPENBAO_KEY_TYPE);
    return 0;
}

int ph_kek_openbao_create_key(const ph_keys_openbao_cfg *cfg, ph_kek_created *out, char *err,
                              size_t errlen)
{
    static const char body[] = "{\"type\":\"" PH_KEK_OPENBAO_KEY_TYPE "\"}";
    memset(out, 0, sizeof(*out));
    ph_kek *base = ph_kek_openbao_open(cfg, err, errlen); /* validates every setting */
    if (!base)
        return -1;
    ob_kek *k = (ob_kek *)base;
    char url[MAX_URL];
    key_url(k, url, sizeof(url), "");
    json_t *doc = NULL;
    int rc = ob_call(k, CREATE_WHAT, "POST", url, body, sizeof(body) - 1, &doc, err, errlen);
    if (rc == 0 && !doc) /* older Vault: 204, created without a body; read the key back */
        rc = ob_call(k, CREATE_WHAT, "GET", url, NULL, 0, &doc, err, errlen);
    if (rc == 0)
        rc = take_created(doc, k->key, out, err, errlen);
    ph_vault_wipe_free(doc);
    ob_destroy(base);
    return rc;
}

#define DELETE_WHAT "delete key"

int ph_kek_openbao_delete_key(const ph_keys_openbao_cfg *cfg, int *missing, char *err,
                              size_t errlen)
{
    static const char body[] = "{\"deletion_allowed\":true}";
    *missing = 0;
    ph_kek *base = ph_kek_openbao_open(cfg, err, errlen);
    if (!base)
        return -1;
    ob_kek *k = (ob_kek *)base;
    char url[MAX_URL];
    key_url(k, url, sizeof(url), "/config");
    json_t *doc = NULL;
    int rc = ob_call(k, DELETE_WHAT, "POST", url, body, sizeof(body) - 1, &doc, err, errlen);
    ph_vault_wipe_free(doc);
    doc = NULL;
    if (rc != 0 && (strstr(err, "no existing key named") || strstr(err, "404"))) {
        *missing = 1; /* nothing to delete */
        err[0] = '\0';
        rc = 0;
    } else if (rc == 0) {
        key_url(k, url, sizeof(url), "");
        rc = ob_call(k, DELETE_WHAT, "DELETE", url, NULL, 0, &doc, err, errlen);
        ph_vault_wipe_free(doc);
    }
    ob_destroy(base);
    return rc;
}
