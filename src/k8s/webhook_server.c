/*
 * webhook_server.c — HTTPS server for AdmissionReviews (see
 * webhook_server.h).
 */
#include "k8s/webhook_server.h"

#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/log.h"
#include "k8s/admission.h"

/* Identity of a file, to notice a rotated certificate. */
typedef struct file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} file_id;

typedef struct server {
    const ph_webhook_server_opts *o;
    struct event_base *base;
    struct evhttp *http;
    SSL_CTX *ctx; /* current context; connections hold their own reference */
    file_id cert_id, key_id;
    unsigned long reviews;
} server;

/* ---- TLS ------------------------------------------------------------------------ */

static void file_identity(const char *path, file_id *id)
{
    struct stat st;
    memset(id, 0, sizeof *id);
    if (stat(path, &st) == 0) {
        id->dev = st.st_dev;
        id->ino = st.st_ino;
        id->size = st.st_size;
        id->mtime = st.st_mtim;
    }
}

static int same_file(const file_id *a, const file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static void ssl_reason(char *buf, size_t n)
{
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, n);
    else
        snprintf(buf, n, "unknown error");
    ERR_clear_error();
}

static SSL_CTX *make_ctx(const ph_webhook_server_opts *o, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char why[256];
    if (!ctx) {
        ssl_reason(why, sizeof why);
        snprintf(err, errlen, "TLS context: %s", why);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, o->tls_cert) != 1) {
        ssl_reason(why, sizeof why);
        snprintf(err, errlen, "%s: cannot load the certificate: %s", o->tls_cert, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, o->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ssl_reason(why, sizeof why);
        snprintf(err, errlen, "%s: cannot load the key (or it does not match the certificate): %s",
                 o->tls_key, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* Swaps in a new context when the certificate or key files changed
 * (or always, when forced); the old one lives on in open connections. */
static void reload_cert(server *s, int force)
{
    file_id c, k;
    file_identity(s->o->tls_cert, &c);
    file_identity(s->o->tls_key, &k);
    if (!force && same_file(&c, &s->cert_id) && same_file(&k, &s->key_id))
        return;
    char err[512];
    SSL_CTX *ctx = make_ctx(s->o, err, sizeof err);
    if (!ctx) {
        /* A half-written pair: keep serving with the old one, retry later. */
        ph_log_warn("webhook_cert_reload_failed", "error", err);
        return;
    }
    SSL_CTX_free(s->ctx);
    s->ctx = ctx;
    s->cert_id = c;
    s->key_id = k;
    ph_log_info("webhook_cert_loaded", "cert", s->o->tls_cert);
}

/* evhttp's per-connection bufferevent: always TLS. Returning NULL would
 * make evhttp fall back to a plaintext socket, so a failure here stops the
 * process instead (it only happens when memory is exhausted). */
static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
    server *s = arg;
    SSL *ssl = SSL_new(s->ctx);
    struct bufferevent *bev =
        ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                             BEV_OPT_CLOSE_ON_FREE)
            : NULL;
    if (!bev) {
        ph_log_error("webhook_out_of_memory", "where", "TLS connection");
        _exit(70);
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* ---- HTTP ----------------------------------------------------------------------- */

static void reply_text(struct evhttp_request *req, int code, const char *phrase, const char *text)
{
    struct evbuffer *b = evbuffer_new();
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-store");
    if (b)
        evbuffer_add_printf(b, "%s\n", text);
    evhttp_send_reply(req, code, phrase, b);
    if (b)
        evbuffer_free(b);
}

static const char *peer_of(struct evhttp_request *req, char *buf, size_t n)
{
    struct evhttp_connection *c = evhttp_request_get_connection(req);
    const char *addr = NULL;
    ev_uint16_t port = 0;
    if (c)
        evhttp_connection_get_peer(c, (char **)&addr, &port);
    snprintf(buf, n, "%s:%u", addr ? addr : "?", (unsigned)port);
    return buf;
}

static int is_json(const char *ct)
{
    size_t n = strlen("application/json");
    if (!ct || strncasecmp(ct, "application/json", n) != 0)
        return 0;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

static void handle_mutate(server *s, struct evhttp_request *req)
{
    char peer[80];
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        reply_text(req, 405, "Method Not Allowed", "POST an AdmissionReview to /mutate");
        return;
    }
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    if (!is_json(ct)) {
        reply_text(req, 415, "Unsupported Media Type", "Content-Type must be application/json");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    if (!body) {
        reply_text(req, 500, "Internal Server Error", "out of memory");
        return;
    }
    ph_admission_out out;
    ph_admission_review(s->o->sidecar, body, len, &out);
    s->reviews++;
    const char *oc = ph_adm_outcome_name(out.outcome);
    if (out.http_status == 200)
        ph_log_info("admission", "uid", out.uid, "pod", out.pod, "outcome", oc, "reason",
                    out.reason);
    else
        ph_log_warn("admission", "peer", peer_of(req, peer, sizeof peer), "outcome", oc, "reason",
                    out.reason);
    struct evbuffer *b = evbuffer_new();
    if (!b || !out.body || evbuffer_add(b, out.body, strlen(out.body)) != 0) {
        if (b)
            evbuffer_free(b);
        ph_admission_out_free(&out);
        reply_text(req, 500, "Internal Server Error", "out of memory");
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", out.content_type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, out.http_status,
                      out.http_status == 200   ? "OK"
                      : out.http_status == 400 ? "Bad Request"
                                               : "Internal Server Error",
                      b);
    evbuffer_free(b);
    ph_admission_out_free(&out);
}

static void handle(struct evhttp_request *req, void *arg)
{
    server *s = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (path && strcmp(path, "/mutate") == 0) {
        handle_mutate(s, req);
    } else if (path && (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0)) {
        if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD) {
            reply_text(req, 200, "OK", "ok");
        } else {
            evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
            reply_text(req, 405, "Method Not Allowed", "GET only");
        }
    } else {
        reply_text(req, 404, "Not Found", "not found (POST AdmissionReviews to /mutate)");
    }
}

/* ---- process ---------------------------------------------------------------------- */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    server *s = arg;
    if (sig == SIGHUP) {
        reload_cert(s, 1);
        return;
    }
    /* Keep answering for a moment: the API server may still send reviews
     * until the endpoint removal has reached it. */
    char n[32];
    snprintf(n, sizeof n, "%lu", s->reviews);
    ph_log_info("webhook_stopping", "reviews", n, "grace", "2s");
    struct timeval grace = {2, 0};
    event_base_loopexit(s->base, &grace);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    reload_cert(arg, 0);
}

int ph_webhook_parse_listen(const char *s, char *host, size_t hostlen, unsigned *port)
{
    const char *colon = s ? strrchr(s, ':') : NULL;
    if (!colon)
        return -1;
    size_t hl = (size_t)(colon - s);
    const char *h = s;
    if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
        h++;
        hl -= 2;
    } else if (memchr(s, ':', hl)) {
        return -1; /* a bare IPv6 address needs brackets */
    }
    if (hl == 0) {
        h = "0.0.0.0";
        hl = strlen(h);
    }
    if (hl >= hostlen)
        return -1;
    char *end;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end || p == 0 || p > 65535)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (unsigned)p;
    return 0;
}

static int bind_listener(server *s, char *err, size_t errlen)
{
    char host[128];
    unsigned port;
    if (ph_webhook_parse_listen(s->o->listen, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "--listen \"%s\": expected HOST:PORT or :PORT", s->o->listen);
        return -1;
    }
    struct evhttp_bound_socket *h =
        evhttp_bind_socket_with_handle(s->http, host, (ev_uint16_t)port);
    if (!h) {
        snprintf(err, errlen, "cannot listen on %s:%u (in use, or not a local address)", host,
                 port);
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char addr[INET6_ADDRSTRLEN] = "?", where[INET6_ADDRSTRLEN + 16];
    unsigned bound = port;
    if (getsockname(evhttp_bound_socket_get_fd(h), (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, addr, sizeof addr);
            bound = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, addr, sizeof addr);
            bound = ntohs(a->sin6_port);
        }
    }
    snprintf(where, sizeof where, "%s:%u", addr, bound);
    ph_log_info("webhook_listening", "address", where, "image", s->o->sidecar->image);
    return 0;
}

static int setup(server *s, char *err, size_t errlen)
{
    if (!(s->ctx = make_ctx(s->o, err, errlen)))
        return -1;
    file_identity(s->o->tls_cert, &s->cert_id);
    file_identity(s->o->tls_key, &s->key_id);
    if (!(s->base = event_base_new()) || !(s->http = evhttp_new(s->base))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    evhttp_set_bevcb(s->http, tls_bev, s);
    evhttp_set_gencb(s->http, handle, s);
    evhttp_set_max_body_size(s->http, (ev_ssize_t)s->o->max_body);
    /* Read (and drop) an oversized body before answering 413, so that the
     * client, still sending, gets the answer rather than a reset. */
    evhttp_set_flags(s->http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_max_headers_size(s->http, 16 * 1024);
    evhttp_set_timeout(s->http, (int)s->o->timeout_s);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    return bind_listener(s, err, errlen);
}

int ph_webhook_serve(const ph_webhook_server_opts *o)
{
    server s = {.o = o};
    char err[512];
    struct event *evs[4] = {0};
    int rc = 1;
    signal(SIGPIPE, SIG_IGN);
    if (setup(&s, err, sizeof err) != 0) {
        ph_log_error("webhook_start_failed", "error", err);
        fprintf(stderr, "phantom webhook: %s\n", err);
        goto out;
    }
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    for (size_t i = 0; i < 3; i++)
        evs[i] = evsignal_new(s.base, sigs[i], on_signal, &s);
    evs[3] = event_new(s.base, -1, EV_PERSIST, on_timer, &s);
    struct timeval every = {PH_WEBHOOK_CERT_CHECK_S, 0};
    int ok = 1;
    for (size_t i = 0; i < 3; i++)
        ok = ok && evs[i] && event_add(evs[i], NULL) == 0;
    ok = ok && evs[3] && event_add(evs[3], &every) == 0;
    if (!ok) {
        fprintf(stderr, "phantom webhook: out of memory\n");
        goto out;
    }
    rc = event_base_dispatch(s.base) < 0 ? 1 : 0;
out:
    for (size_t i = 0; i < 4; i++)
        if (evs[i])
            event_free(evs[i]);
    if (s.http)
        evhttp_free(s.http);
    if (s.base)
        event_base_free(s.base);
    SSL_CTX_free(s.ctx);
    return rc;
}
