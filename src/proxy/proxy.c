/*
 * proxy.c — process-level orchestration of the proxy; see proxy.h.
 *
 * The main thread starts the workers and the operations endpoint, then
 * waits for signals (and, once a second, frees configuration generations no
 * session uses any more). SIGHUP runs the reload here, on the main thread:
 * loading a configuration may take a while (the KEK provider unwraps the
 * keys) and never blocks an event loop.
 */
#include "proxy/proxy.h"

#include <errno.h>
#include <netdb.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "common/log.h"
#include "common/mem.h"
#include "ops/health.h"
#include "ops/http.h"
#include "ops/metrics.h"
#include "ops/version.h"
#include "proxy/gen.h"
#include "proxy/runtime.h"
#include "proxy/worker.h"

/* A worker whose event loop has not run for this long is reported stalled. */
#define STALL_MS 10000u
/* /readyz's connect to the target: at most this long (kubelet probes time
 * out after 1 s by default). */
#define PROBE_TIMEOUT_MS 800u

typedef struct proxy {
    ph_runtime rt;
    ph_proxy_loader reload;
    void *reload_arg;
    /* Settings fixed at start (a reload that changes them is logged). */
    char *listen, *metrics_listen;
    unsigned workers_setting;
    ph_log_level log_level;
    ph_log_format log_format;
    ph_worker *workers[PH_MAX_WORKERS];
    unsigned started;
    ph_ops_server *ops;
    ph_target_probe probe; /* the ops thread's */
} proxy;

/* A listening socket with SO_REUSEPORT so every worker can have its own. */
static int open_listener(const char *host, const char *port, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    const char *h = (strcmp(host, "*") == 0 || host[0] == '\0') ? NULL : host;
    int gai = getaddrinfo(h, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve listen address %s: %s", host, gai_strerror(gai));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 1024) == 0)
            break;
        snprintf(err, errlen, "cannot listen on %s:%s: %s", host, port, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* workers: 0 — one event loop per two cores this process may run on, at
 * least one. The proxy shares its machine with the application (and, in
 * small set-ups, the database): on 2 cores one loop serves the same
 * throughput as two with about a quarter less CPU per query (fewer wake-ups
 * and context switches, no cache lines passed between cores; README,
 * bench/encrypted). PgBouncer has one loop; Odyssey starts one worker unless
 * told otherwise. */
static unsigned worker_count(unsigned setting)
{
    unsigned n = setting;
    if (n == 0) {
        cpu_set_t set;
        long cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
                                                                 : sysconf(_SC_NPROCESSORS_ONLN);
        n = cores >= 2 ? (unsigned)(cores / 2) : 1;
    }
    return n > PH_MAX_WORKERS ? PH_MAX_WORKERS : n;
}

/* ---- the operations endpoint's hooks (run on its thread) --------------------------- */

static int ops_live(void *arg, char *why, size_t n)
{
    proxy *p = arg;
    uint64_t now = ph_worker_clock_ms();
    for (unsigned i = 0; i < p->rt.nworkers; i++) {
        uint64_t beat = atomic_load_explicit(&p->rt.beat_ms[i], memory_order_relaxed);
        if (atomic_load(&p->rt.loop_done[i]) || now < beat + STALL_MS)
            continue;
        snprintf(why, n, "worker %u: event loop stalled for %llu s", i,
                 (unsigned long long)((now - beat) / 1000));
        return -1;
    }
    return 0;
}

/* "keys: encryption keys are unavailable (...)" from the client-facing
 * message, without its "phantom: " prefix and its "; ..." tail. */
static void keys_reason(const ph_keysource *keys, char *why, size_t n)
{
    char m[400];
    ph_keysource_unavailable_message(keys, 1, m, sizeof m);
    const char *s = strncmp(m, "phantom: ", 9) == 0 ? m + 9 : m;
    char *semi = strchr(m, ';');
    if (semi)
        *semi = '\0';
    snprintf(why, n, "keys: %s", s);
}

static int keys_available(const ph_gen *g)
{
    if (!g || !g->keys)
        return 1;
    ph_keysource_stats st;
    ph_keysource_get_stats(g->keys, &st);
    return st.available;
}

static int ops_ready(void *arg, char *why, size_t n)
{
    proxy *p = arg;
    if (atomic_load(&p->rt.draining)) {
        snprintf(why, n, "shutting down");
        return -1;
    }
    ph_gen *g = ph_gen_acquire(&p->rt);
    int rc = 0;
    char r[256];
    if (!g) {
        snprintf(why, n, "starting");
        rc = -1;
    } else if (!keys_available(g)) {
        keys_reason(g->keys, why, n);
        rc = -1;
    } else {
        unsigned t = g->cfg.connect_timeout_ms < PROBE_TIMEOUT_MS ? g->cfg.connect_timeout_ms
                                                                  : PROBE_TIMEOUT_MS;
        if (ph_target_probe_check(&p->probe, g->target_host, g->target_port, t, r, sizeof r)) {
            snprintf(why, n, "target %s unreachable: %s", g->cfg.target, r);
            rc = -1;
        }
    }
    ph_gen_release(g);
    return rc;
}

static void ops_gauges(void *arg, ph_metrics_gauges *m)
{
    proxy *p = arg;
    ph_gen *g = ph_gen_acquire(&p->rt);
    m->connections = atomic_load(&p->rt.connections);
    m->keys_available = keys_available(g);
    m->generations = atomic_load(&p->rt.ngens);
    m->generation = g ? g->id : 0;
    m->reload_success = g ? g->loaded_at : 0;
    m->version = PHANTOM_VERSION;
    m->openssl = OpenSSL_version(OPENSSL_VERSION);
    m->libevent = event_get_version();
    ph_gen_release(g);
}

/* ---- reload -------------------------------------------------------------------------- */

static void raise_fd_limit(unsigned max_connections);

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* Settings that cannot change at run time: logged when a reload changes
 * them, and kept as they are (so the generation describes what runs). */
static int keep_fixed(const proxy *p, ph_config *c)
{
    const char *changed[5];
    int n = 0;
    if (!same_str(p->listen, c->listen))
        changed[n++] = "listen";
    if (p->workers_setting != c->workers)
        changed[n++] = "workers";
    if (!same_str(p->metrics_listen, c->metrics_listen))
        changed[n++] = "metrics.listen";
    if (p->log_level != c->log_level)
        changed[n++] = "log.level";
    if (p->log_format != c->log_format)
        changed[n++] = "log.format";
    for (int i = 0; i < n; i++)
        ph_log_warn("reload: setting needs a restart; keeping the running value", "setting",
                    changed[i]);
    if (ph_config_set_str(&c->listen, p->listen) != 0 ||
        ph_config_set_str(&c->metrics_listen, p->metrics_listen) != 0)
        return -1;
    c->workers = p->workers_setting;
    c->log_level = p->log_level;
    c->log_format = p->log_format;
    return 0;
}

static void reload_failed(const char *why)
{
    ph_metrics_inc(PH_CTR_RELOAD_ERROR);
    ph_log_error("reload failed: the running configuration stays in use", "error", why);
}

static void reload(proxy *p)
{
    char err[512] = "";
    if (!p->reload) {
        reload_failed("no configuration loader");
        return;
    }
    ph_log_info("reload requested", "signal", "SIGHUP");
    ph_proxy_conf c;
    memset(&c, 0, sizeof c);
    if (p->reload(p->reload_arg, &c, err, sizeof err) != 0) {
        reload_failed(err[0] ? err : "unknown error");
        return;
    }
    if (keep_fixed(p, &c.cfg) != 0) {
        ph_proxy_conf_free(&c);
        reload_failed("out of memory");
        return;
    }
    void (*activate)(void *) = c.owner_activate;
    void *owner = c.owner;
    ph_gen *g = ph_gen_new(&p->rt, &c, err, sizeof err);
    if (!g) {
        reload_failed(err);
        return;
    }
    ph_gen_install(&p->rt, g);
    if (activate)
        activate(owner);
    ph_metrics_inc(PH_CTR_RELOAD_OK);
    raise_fd_limit(g->cfg.max_connections);
    char id[24], cols[24], gens[24];
    snprintf(id, sizeof id, "%llu", (unsigned long long)g->id);
    snprintf(cols, sizeof cols, "%zu", g->ncolumns);
    snprintf(gens, sizeof gens, "%u", atomic_load(&p->rt.ngens));
    ph_log_info("configuration reloaded: new sessions use it", "generation", id, "target",
                g->cfg.target, "protected_columns", cols, "configurations_in_use", gens);
}

/* ---- signals ----------------------------------------------------------------------- */

/* Serves until SIGTERM/SIGINT; SIGHUP reloads. Reaps old generations. */
static void serve_until_stop(proxy *p, const sigset_t *set)
{
    for (;;) {
        struct timespec ts = {1, 0};
        int sig = sigtimedwait(set, NULL, &ts);
        (void)ph_gen_reap(&p->rt);
        if (sig == SIGHUP) {
            reload(p);
            continue;
        }
        if (sig == SIGTERM || sig == SIGINT) {
            ph_log_info("shutting down", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM");
            return;
        }
    }
}

/* Drains the workers and waits for them; a second stop signal kills sessions. */
static void drain_workers(proxy *p, const sigset_t *set)
{
    atomic_store(&p->rt.draining, true);
    for (unsigned i = 0; i < p->started; i++)
        ph_worker_drain(p->workers[i]);
    bool killed = false;
    while (atomic_load(&p->rt.workers_running) > 0) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        int sig = sigtimedwait(set, NULL, &ts);
        (void)ph_gen_reap(&p->rt);
        if (sig == SIGHUP)
            ph_log_warn("reload ignored: shutting down");
        if ((sig == SIGTERM || sig == SIGINT) && !killed) {
            ph_log_warn("second stop signal: closing all sessions now");
            for (unsigned i = 0; i < p->started; i++)
                ph_worker_kill(p->workers[i]);
            killed = true;
        }
    }
}

/* Each session holds two descriptors (client and upstream): raise the soft
 * open-file limit towards the hard one when max_connections needs more (the
 * usual soft default, 1024, runs out near 500 sessions), and say so when even
 * the hard limit is too low. */
static void raise_fd_limit(unsigned max_connections)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)max_connections * 2 + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
        return;
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
    if (rl.rlim_cur > old && setrlimit(RLIMIT_NOFILE, &rl) != 0)
        rl.rlim_cur = old;
    if (rl.rlim_cur < want) {
        char have[32], need[32];
        snprintf(have, sizeof have, "%llu", (unsigned long long)rl.rlim_cur);
        snprintf(need, sizeof need, "%llu", (unsigned long long)want);
        ph_log_warn("open file limit too low for max_connections", "limit", have, "needed", need);
    }
}

/* ---- start and stop ----------------------------------------------------------------- */

static int start_workers(proxy *p, const ph_config *cfg)
{
    char err[512] = "";
    char lhost[256], lport[16];
    if (ph_split_hostport(cfg->listen, lhost, sizeof lhost, lport, sizeof lport) != 0) {
        ph_log_error("cannot start", "error", "invalid listen address");
        return -1;
    }
    unsigned n = worker_count(cfg->workers);
    p->rt.nworkers = n;
    for (unsigned i = 0; i < n; i++) {
        int fd = open_listener(lhost, lport, err, sizeof err);
        if (fd < 0) {
            ph_log_error("cannot start", "error", err);
            return -1;
        }
        ph_worker *w = ph_worker_new(&p->rt, (int)i, fd);
        if (!w)
            return -1;
        atomic_fetch_add(&p->rt.workers_running, 1);
        if (ph_worker_start(w) != 0) {
            atomic_fetch_sub(&p->rt.workers_running, 1);
            ph_worker_join(w);
            return -1;
        }
        p->workers[p->started++] = w;
    }
    return 0;
}

static int start_ops(proxy *p)
{
    if (!p->metrics_listen)
        return 0;
    char err[512] = "";
    ph_ops_hooks h = {.arg = p, .live = ops_live, .ready = ops_ready, .gauges = ops_gauges};
    p->ops = ph_ops_server_start(p->metrics_listen, &h, err, sizeof err);
    if (!p->ops) {
        ph_log_error("cannot start", "error", err);
        return -1;
    }
    ph_log_info("serving /metrics, /healthz, /readyz", "metrics_listen", p->metrics_listen);
    return 0;
}

static int remember_fixed(proxy *p, const ph_config *cfg)
{
    p->workers_setting = cfg->workers;
    p->log_level = cfg->log_level;
    p->log_format = cfg->log_format;
    return ph_config_set_str(&p->listen, cfg->listen) != 0 ||
                   ph_config_set_str(&p->metrics_listen, cfg->metrics_listen) != 0
               ? -1
               : 0;
}

static void log_listening(const proxy *p, const ph_gen *g)
{
    char nbuf[16];
    snprintf(nbuf, sizeof nbuf, "%u", p->started);
    ph_log_info("listening", "listen", g->cfg.listen, "target", g->cfg.target, "workers", nbuf,
                "sslmode", ph_sslmode_name(g->cfg.sslmode), "client_tls",
                g->client_tls ? "on" : "off", "log_level", level_names[g->cfg.log_level]);
}

int ph_proxy_run(ph_proxy_conf *first, ph_proxy_loader reload_fn, void *reload_arg)
{
    char err[512] = "";
    proxy *p = ph_calloc(1, sizeof *p);
    if (!p || ph_runtime_init(&p->rt) != 0) {
        free(p);
        ph_proxy_conf_free(first);
        ph_log_error("cannot start", "error", "out of memory");
        return 1;
    }
    p->reload = reload_fn;
    p->reload_arg = reload_arg;
    ph_gen *g = ph_gen_new(&p->rt, first, err, sizeof err);
    if (!g || remember_fixed(p, &g->cfg) != 0) {
        ph_log_error("cannot start", "error", g ? "out of memory" : err);
        ph_gen_discard(g);
        ph_runtime_destroy(&p->rt);
        free(p->listen);
        free(p);
        return 1;
    }
    ph_gen_install(&p->rt, g);

    /* Workers inherit a mask that blocks the signals the main thread waits for. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    raise_fd_limit(g->cfg.max_connections);
    int status = start_workers(p, &g->cfg) == 0 && start_ops(p) == 0 ? 0 : 1;
    if (status == 0) {
        log_listening(p, g);
        serve_until_stop(p, &set);
    }
    drain_workers(p, &set);
    for (unsigned i = 0; i < p->started; i++)
        ph_worker_join(p->workers[i]);
    ph_ops_server_stop(p->ops);
    ph_runtime_destroy(&p->rt);
    free(p->listen);
    free(p->metrics_listen);
    free(p);
    ph_log_info("stopped");
    return status;
}
