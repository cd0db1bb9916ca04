/*
 * http_client.c — blocking HTTPS requests over one reusable libcurl handle.
 *
 * Owns: libcurl global initialisation (once per process), the TLS and
 * timeout policy of key-service requests, the wiping response buffer, and
 * translating curl failures into short, secret-free messages.
 */
#include "keys/http_client.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/mem.h"

#define DEFAULT_TIMEOUT_MS 10000u

struct ph_http {
    CURL *curl;
    unsigned timeout_ms;
    char errbuf[CURL_ERROR_SIZE];
};

/* The body being received: grows by copy-and-wipe, never by realloc. */
typedef struct recv_buf {
    char *data;
    size_t len;
    size_t cap;
    int too_large;
} recv_buf;

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static CURLcode g_curl_init_rc = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
    g_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int recv_grow(recv_buf *b, size_t need)
{
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < need)
        cap *= 2;
    char *n = malloc(cap);
    if (!n)
        return -1;
    if (b->data) {
        memcpy(n, b->data, b->len);
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    }
    b->data = n;
    b->cap = cap;
    return 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    recv_buf *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n + 1 > PH_HTTP_MAX_BODY) {
        b->too_large = 1;
        return 0; /* aborts the transfer (CURLE_WRITE_ERROR) */
    }
    if (b->len + n + 1 > b->cap && recv_grow(b, b->len + n + 1) != 0)
        return 0;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static void recv_wipe(recv_buf *b)
{
    if (b->data) {
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    }
    memset(b, 0, sizeof(*b));
}

static int set_common_opts(ph_http *h, const char *ca_file)
{
    CURL *c = h->curl;
    long to = (long)h->timeout_ms;
    int bad = 0;
    bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, to) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, to) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
    if (ca_file)
        bad |= curl_easy_setopt(c, CURLOPT_CAINFO, ca_file) != CURLE_OK;
    return bad ? -1 : 0;
}

ph_http *ph_http_new(const char *ca_file, unsigned timeout_ms, char *err, size_t errlen)
{
    pthread_once(&g_curl_once, curl_init_once);
    if (g_curl_init_rc != CURLE_OK) {
        ph_errf(err, errlen, "libcurl initialisation failed");
        return NULL;
    }
    ph_http *h = ph_calloc(1, sizeof(*h));
    if (!h) {
        ph_errf(err, errlen, "out of memory");
        return NULL;
    }
    h->timeout_ms = timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS;
    h->curl = curl_easy_init();
    if (!h->curl || set_common_opts(h, ca_file) != 0) {
        ph_errf(err, errlen, "libcurl handle setup failed");
        ph_http_free(h);
        return NULL;
    }
    return h;
}

void ph_http_free(ph_http *h)
{
    if (!h)
        return;
    if (h->curl)
        curl_easy_cleanup(h->curl);
    free(h);
}

/* Wipes the strings of a header list (one holds the token) and frees it. */
static void headers_wipe_free(struct curl_slist *l)
{
    for (struct curl_slist *p = l; p; p = p->next)
        if (p->data)
            OPENSSL_cleanse(p->data, strlen(p->data));
    curl_slist_free_all(l);
}

static struct curl_slist *headers_build(const char *token)
{
    struct curl_slist *l = NULL, *n;
    const char *fixed[] = {"Content-Type: application/json", "Accept: application/json",
                           "X-Vault-Request: true", "Expect:"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        n = curl_slist_append(l, fixed[i]);
        if (!n) {
            headers_wipe_free(l);
            return NULL;
        }
        l = n;
    }
    if (token) {
        size_t len = strlen("X-Vault-Token: ") + strlen(token) + 1;
        char *line = malloc(len);
        if (!line) {
            headers_wipe_free(l);
            return NULL;
        }
        snprintf(line, len, "X-Vault-Token: %s", token);
        n = curl_slist_append(l, line);
        OPENSSL_cleanse(line, len);
        free(line);
        if (!n) {
            headers_wipe_free(l);
            return NULL;
        }
        l = n;
    }
    return l;
}

static int set_request_opts(ph_http *h, const char *method, const char *url,
                            struct curl_slist *hdrs, const char *body, size_t body_len,
                            recv_buf *rb)
{
    CURL *c = h->curl;
    int bad = 0;
    bad |= curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEDATA, rb) != CURLE_OK;
    /* the handle is reused: a DELETE must not stick to the next request */
    bad |= curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST,
                            strcmp(method, "DELETE") == 0 ? "DELETE" : NULL) != CURLE_OK;
    if (strcmp(method, "POST") == 0) {
        bad |= curl_easy_setopt(c, CURLOPT_POST, 1L) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "") != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                                (curl_off_t)(body ? body_len : 0)) != CURLE_OK;
    } else {
        bad |= curl_easy_setopt(c, CURLOPT_HTTPGET, 1L) != CURLE_OK;
    }
    return bad ? -1 : 0;
}

static int map_curl_error(ph_http *h, CURLcode rc, const recv_buf *rb, char *err, size_t errlen)
{
    const char *detail = h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(err, errlen, "timed out after %u ms", h->timeout_ms);
        return PH_HTTP_TIMEOUT;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
        snprintf(err, errlen, "TLS failure: %s", detail);
        return PH_HTTP_TLS;
    case CURLE_WRITE_ERROR:
        if (rb->too_large) {
            snprintf(err, errlen, "response larger than %u bytes", PH_HTTP_MAX_BODY);
            return PH_HTTP_ERR;
        }
        snprintf(err, errlen, "out of memory reading the response");
        return PH_HTTP_ERR;
    default:
        snprintf(err, errlen, "%s", detail);
        return PH_HTTP_ERR;
    }
}

int ph_http_request(ph_http *h, const char *method, const char *url, const char *token,
                    const char *body, size_t body_len, ph_http_resp *resp, char *err, size_t errlen)
{
    recv_buf rb = {0};
    memset(resp, 0, sizeof(*resp));
    struct curl_slist *hdrs = headers_build(token);
    if (!hdrs) {
        ph_errf(err, errlen, "out of memory");
        return PH_HTTP_ERR;
    }
    h->errbuf[0] = '\0';
    int rc = PH_HTTP_ERR;
    if (set_request_opts(h, method, url, hdrs, body, body_len, &rb) != 0) {
        ph_errf(err, errlen, "libcurl request setup failed");
    } else {
        CURLcode cc = curl_easy_perform(h->curl);
        if (cc == CURLE_OK) {
            curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &resp->status);
            resp->body = rb.data;
            resp->len = rb.len;
            memset(&rb, 0, sizeof(rb));
            rc = 0;
        } else {
            rc = map_curl_error(h, cc, &rb, err, errlen);
        }
    }
    /* Drop references to caller memory (body, headers) held by the handle. */
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, NULL);
    headers_wipe_free(hdrs);
    recv_wipe(&rb);
    return rc;
}

void ph_http_resp_free(ph_http_resp *r)
{
    if (!r)
        return;
    if (r->body) {
        OPENSSL_cleanse(r->body, r->len);
        free(r->body);
    }
    memset(r, 0, sizeof(*r));
}
