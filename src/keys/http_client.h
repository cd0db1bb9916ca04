/*
 * http_client.h — a small blocking HTTPS client (libcurl) for key services.
 *
 * Owns: one reusable libcurl easy handle (so TLS connections are kept alive
 * between calls), its TLS policy (peer and host verification always on, an
 * optional CA bundle, no redirects, http/https only), the per-request
 * timeout, and the response buffer. Response bodies may hold key material:
 * they grow without realloc (old copies are wiped) and are wiped when freed.
 *
 * Not thread-safe: one ph_http per caller, or a caller-held lock.
 */
#ifndef PHANTOM_KEYS_HTTP_CLIENT_H
#define PHANTOM_KEYS_HTTP_CLIENT_H

#include <stddef.h>

#define PH_HTTP_MAX_BODY (1u << 20) /* responses above 1 MiB are refused */

typedef struct ph_http ph_http;

typedef struct ph_http_resp {
    long status; /* HTTP status code */
    char *body;  /* NUL-terminated (len excludes the NUL); may be NULL when len == 0 */
    size_t len;
} ph_http_resp;

/* Transport failure kinds reported by ph_http_request (negative). */
enum {
    PH_HTTP_ERR = -1,     /* other failure (connect, protocol, OOM, body too large) */
    PH_HTTP_TIMEOUT = -2, /* no complete answer within timeout_ms */
    PH_HTTP_TLS = -3,     /* TLS handshake or certificate verification failed */
};

/* ca_file NULL = the system trust store. timeout_ms 0 = 10000. */
ph_http *ph_http_new(const char *ca_file, unsigned timeout_ms, char *err, size_t errlen);
void ph_http_free(ph_http *h); /* NULL allowed */

/*
 * Sends one request. method is "GET", "POST" or "DELETE" (body/body_len used for POST,
 * sent as application/json). token, when not NULL, goes in X-Vault-Token.
 * Returns 0 when a complete HTTP response arrived (any status; *resp is
 * filled and must be released with ph_http_resp_free), or one of the
 * negative PH_HTTP_* codes with a one-line reason in err (never containing
 * the token or the body).
 */
int ph_http_request(ph_http *h, const char *method, const char *url, const char *token,
                    const char *body, size_t body_len, ph_http_resp *resp, char *err,
                    size_t errlen);

/* Wipes and frees the body; leaves *r zeroed. */
void ph_http_resp_free(ph_http_resp *r);

#endif
