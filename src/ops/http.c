/*
 * http.c — the operations HTTP server; see http.h.
 */
#include "ops/http.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "common/mem.h"
#include "config/config.h"

#define OPS_MAX_HEADERS 8192
#define OPS_MAX_BODY    4096
#define OPS_TIMEOUT_S   10

struct ph_ops_server {
    ph_ops_hooks hooks;
    struct event_base *base;
    struct evhttp *http;
    struct event *stop_ev;
    int stop_pipe[2];
    int fd;
    pthread_t thread;
    int running;
};

/* ---- answers ------------------------------------------------------------------------ */

static void reply(struct evhttp_request *req, int code, const char *reason, const char *ctype,
                  const void *body, size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *b = evbuffer_new();
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "Cache-Control", "no-store");
    if (code == 405)
        evhttp_add_header(h, "Allow", "GET, HEAD");
    if (b && evbuffer_add(b, body, len) == 0) {
        evhttp_send_reply(req, code, reason, b);
    } else {
        evhttp_send_error(req, 500, "Internal Server Error");
    }
    if (b)
        evbuffer_free(b);
}

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
    char line[600];
    int n = snprintf(line, sizeof line, "%s\n", text);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof line)
        n = (int)sizeof line - 1;
    reply(req, code, reason, "text/plain; charset=utf-8", line, (size_t)n);
}

static void serve_metrics(ph_ops_server *s, struct evhttp_request *req)
{
    ph_metrics_snap snap;
    ph_metrics_gauges g = {0};
    ph_buf out = {0};
    ph_metrics_snapshot(&snap);
    if (s->hooks.gauges)
        s->hooks.gauges(s->hooks.arg, &g);
    if (ph_metrics_render(&out, &snap, &g) != 0) {
        reply_text(req, 500, "Internal Server Error", "out of memory");
    } else {
        reply(req, 200, "OK", PH_METRICS_CONTENT_TYPE, out.data, out.len);
    }
    ph_buf_free(&out);
}

static void serve_check(ph_ops_server *s, struct evhttp_request *req,
                        int (*check)(void *, char *, size_t), const char *good)
{
    char why[400] = "";
    if (!check || check(s->hooks.arg, why, sizeof why) == 0)
        reply_text(req, 200, "OK", good);
    else
        reply_text(req, 503, "Service Unavailable", why[0] ? why : "not ready");
}

static void on_request(struct evhttp_request *req, void *arg)
{
    ph_ops_server *s = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    int known = path && (strcmp(path, "/metrics") == 0 || strcmp(path, "/healthz") == 0 ||
                         strcmp(path, "/readyz") == 0);
    if (!known) {
        reply_text(req, 404, "Not Found", "not found: try /metrics, /healthz or /readyz");
        return;
    }
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        reply_text(req, 405, "Method Not Allowed", "method not allowed: use GET");
        return;
    }
    if (strcmp(path, "/metrics") == 0)
        serve_metrics(s, req);
    else if (strcmp(path, "/healthz") == 0)
        serve_check(s, req, s->hooks.live, "ok");
    else
        serve_check(s, req, s->hooks.ready, "ready");
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static int open_socket(const char *listen_addr, char *err, size_t errlen)
{
    char host[256], port[16];
    if (ph_split_hostport(listen_addr, host, sizeof host, port, sizeof port) != 0) {
        snprintf(err, errlen, "metrics.listen must be HOST:PORT");
        return -1;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve metrics.listen %s: %s", host, gai_strerror(gai));
        return -1;
    }
    int fd = -1;
    for (const struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 64) != 0) {
            snprintf(err, errlen, "cannot listen on metrics.listen %s: %s", listen_addr,
                     strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    ph_ops_server *s = arg;
    (void)fd;
    (void)what;
    event_base_loopbreak(s->base);
}

static void *ops_main(void *arg)
{
    ph_ops_server *s = arg;
    event_base_dispatch(s->base);
    return NULL;
}

static void ops_free(ph_ops_server *s)
{
    if (s->http)
        evhttp_free(s->http); /* closes the socket once it accepted it */
    if (s->fd >= 0)
        close(s->fd);
    if (s->stop_ev)
        event_free(s->stop_ev);
    if (s->base)
        event_base_free(s->base);
    for (int i = 0; i < 2; i++)
        if (s->stop_pipe[i] >= 0)
            close(s->stop_pipe[i]);
    free(s);
}

static int make_http(ph_ops_server *s)
{
    s->http = evhttp_new(s->base);
    if (!s->http)
        return -1;
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_max_headers_size(s->http, OPS_MAX_HEADERS);
    evhttp_set_max_body_size(s->http, OPS_MAX_BODY);
    evhttp_set_timeout(s->http, OPS_TIMEOUT_S);
    evhttp_set_gencb(s->http, on_request, s);
    if (!evhttp_accept_socket_with_handle(s->http, s->fd))
        return -1;
    s->fd = -1; /* the listener owns it now */
    return 0;
}

ph_ops_server *ph_ops_server_start(const char *listen_addr, const ph_ops_hooks *hooks, char *err,
                                   size_t errlen)
{
    ph_ops_server *s = ph_calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->hooks = *hooks;
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
    if ((s->fd = open_socket(listen_addr, err, errlen)) < 0) {
        ops_free(s);
        return NULL;
    }
    s->base = event_base_new();
    if (!s->base || pipe2(s->stop_pipe, O_NONBLOCK | O_CLOEXEC) != 0 ||
        !(s->stop_ev = event_new(s->base, s->stop_pipe[0], EV_READ, on_stop, s)) ||
        event_add(s->stop_ev, NULL) != 0 || make_http(s) != 0) {
        snprintf(err, errlen, "cannot set up the metrics listener");
        ops_free(s);
        return NULL;
    }
    /* Signals belong to the main thread (sigwait): never deliver one here. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&s->thread, NULL, ops_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the metrics thread");
        ops_free(s);
        return NULL;
    }
    s->running = 1;
    return s;
}

void ph_ops_server_stop(ph_ops_server *s)
{
    if (!s)
        return;
    if (s->running) {
        char c = 's';
        ssize_t w = write(s->stop_pipe[1], &c, 1);
        (void)w;
        pthread_join(s->thread, NULL);
    }
    ops_free(s);
}
