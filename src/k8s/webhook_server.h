/*
 * webhook_server.h — the HTTPS front end of `phantom webhook`.
 *
 * Owns: the TLS listener (OpenSSL, TLS 1.2 and later, libevent's evhttp
 * over bufferevent_openssl), HTTP routing (POST /mutate for
 * AdmissionReviews, GET /healthz and /readyz for the webhook's own probes;
 * 404/405/413/415 otherwise), request limits (body size, header size,
 * timeouts), reloading the serving certificate when its files change
 * (cert-manager / Secret rotation) or on SIGHUP, one log line per review,
 * and stopping on SIGTERM/SIGINT. Deciding is admission.c's job.
 */
#ifndef PHANTOM_K8S_WEBHOOK_SERVER_H
#define PHANTOM_K8S_WEBHOOK_SERVER_H

#include <stddef.h>

#include "k8s/sidecar.h"

#define PH_WEBHOOK_DEFAULT_LISTEN   ":8443"
#define PH_WEBHOOK_DEFAULT_MAX_BODY (4u << 20) /* an AdmissionReview of a large Pod */
#define PH_WEBHOOK_DEFAULT_TIMEOUT  10u        /* seconds, idle/read/write */
#define PH_WEBHOOK_CERT_CHECK_S     30u        /* how often the cert files are checked */

typedef struct ph_webhook_server_opts {
    const char *listen; /* "HOST:PORT", ":PORT" (all IPv4 addresses) or "[::]:PORT" */
    const char *tls_cert, *tls_key;
    const ph_sidecar_opts *sidecar;
    size_t max_body;    /* bytes; larger bodies get 413 */
    unsigned timeout_s; /* per connection */
} ph_webhook_server_opts;

/* Runs until SIGTERM/SIGINT. Returns 0 after a clean stop, 1 when it
 * could not start (reason on stderr/log). */
int ph_webhook_serve(const ph_webhook_server_opts *o);

/* Splits a listen address; ":8443" gives host "0.0.0.0". 0 or -1. */
int ph_webhook_parse_listen(const char *s, char *host, size_t hostlen, unsigned *port);

#endif
