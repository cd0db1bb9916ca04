/*
 * gen.c — configuration generations; see gen.h.
 */
#include "proxy/gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "common/mem.h"
#include "proxy/tls.h"

int ph_runtime_init(ph_runtime *rt)
{
    memset(rt, 0, sizeof *rt);
    rt->next_id = 1;
    return pthread_mutex_init(&rt->gen_mu, NULL) == 0 ? 0 : -1;
}

void ph_proxy_conf_free(ph_proxy_conf *c)
{
    if (!c)
        return;
    if (c->owner_free)
        c->owner_free(c->owner);
    ph_config_free(&c->cfg);
    memset(c, 0, sizeof *c);
}

/* Frees g, which must be unlinked from rt->all already (or never linked). */
static void gen_free(ph_gen *g)
{
    SSL_CTX_free(g->upstream_tls);
    SSL_CTX_free(g->client_tls);
    if (g->owner_free)
        g->owner_free(g->owner);
    ph_config_free(&g->cfg);
    free(g);
}

static double wall_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static int build(ph_gen *g, char *err, size_t errlen)
{
    const ph_config *cfg = &g->cfg;
    if (ph_split_hostport(cfg->target, g->target_host, sizeof g->target_host, g->target_port,
                          sizeof g->target_port) != 0) {
        snprintf(err, errlen, "invalid target %s", cfg->target ? cfg->target : "(none)");
        return -1;
    }
    if (cfg->sslmode != PH_SSLMODE_DISABLE &&
        !(g->upstream_tls = ph_tls_upstream_ctx(cfg, err, errlen)))
        return -1;
    if (cfg->client_tls_cert && !(g->client_tls = ph_tls_client_ctx(cfg, err, errlen)))
        return -1;
    return 0;
}

ph_gen *ph_gen_new(ph_runtime *rt, ph_proxy_conf *c, char *err, size_t errlen)
{
    ph_gen *g = ph_calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "out of memory");
        ph_proxy_conf_free(c);
        return NULL;
    }
    g->rt = rt;
    g->cfg = c->cfg;
    g->engine = c->engine;
    g->keys = c->keys;
    g->ncolumns = c->ncolumns;
    g->owner = c->owner;
    g->owner_free = c->owner_free;
    memset(c, 0, sizeof *c);
    atomic_init(&g->refs, 1);
    g->loaded_at = wall_now();
    if (build(g, err, errlen) != 0) {
        gen_free(g);
        return NULL;
    }
    pthread_mutex_lock(&rt->gen_mu);
    g->all_next = rt->all;
    rt->all = g;
    pthread_mutex_unlock(&rt->gen_mu);
    atomic_fetch_add(&rt->ngens, 1);
    return g;
}

/* With gen_mu held. */
static void unlink_all(ph_runtime *rt, ph_gen *g)
{
    for (ph_gen **pp = &rt->all; *pp; pp = &(*pp)->all_next)
        if (*pp == g) {
            *pp = g->all_next;
            break;
        }
}

void ph_gen_discard(ph_gen *g)
{
    if (!g)
        return;
    ph_runtime *rt = g->rt;
    pthread_mutex_lock(&rt->gen_mu);
    unlink_all(rt, g);
    pthread_mutex_unlock(&rt->gen_mu);
    atomic_fetch_sub(&rt->ngens, 1);
    gen_free(g);
}

void ph_gen_install(ph_runtime *rt, ph_gen *g)
{
    pthread_mutex_lock(&rt->gen_mu);
    ph_gen *old = rt->gen;
    g->id = rt->next_id++;
    rt->gen = g;
    atomic_store(&rt->max_connections, g->cfg.max_connections);
    atomic_store(&rt->shutdown_timeout_ms, g->cfg.shutdown_timeout_ms);
    pthread_mutex_unlock(&rt->gen_mu);
    if (old)
        ph_gen_release(old);
}

ph_gen *ph_gen_acquire(ph_runtime *rt)
{
    pthread_mutex_lock(&rt->gen_mu);
    ph_gen *g = rt->gen;
    if (g)
        atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&rt->gen_mu);
    return g;
}

ph_gen *ph_gen_hold(ph_gen *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
    return g;
}

void ph_gen_release(ph_gen *g)
{
    if (!g || atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
        return;
    ph_runtime *rt = g->rt;
    pthread_mutex_lock(&rt->gen_mu);
    g->next = rt->retired;
    rt->retired = g;
    pthread_mutex_unlock(&rt->gen_mu);
}

unsigned ph_gen_reap(ph_runtime *rt)
{
    pthread_mutex_lock(&rt->gen_mu);
    ph_gen *list = rt->retired;
    rt->retired = NULL;
    for (ph_gen *g = list; g; g = g->next)
        unlink_all(rt, g);
    pthread_mutex_unlock(&rt->gen_mu);
    unsigned n = 0;
    while (list) {
        ph_gen *next = list->next;
        atomic_fetch_sub(&rt->ngens, 1);
        gen_free(list);
        list = next;
        n++;
    }
    return n;
}

void ph_runtime_destroy(ph_runtime *rt)
{
    pthread_mutex_lock(&rt->gen_mu);
    ph_gen *cur = rt->gen;
    rt->gen = NULL;
    pthread_mutex_unlock(&rt->gen_mu);
    if (cur)
        ph_gen_release(cur);
    (void)ph_gen_reap(rt);
    /* Whatever is left is only referenced by connection attempts that died
     * with their event loops (a CancelRequest in flight at exit). */
    while (rt->all) {
        ph_gen *g = rt->all;
        rt->all = g->all_next;
        atomic_fetch_sub(&rt->ngens, 1);
        gen_free(g);
    }
    pthread_mutex_destroy(&rt->gen_mu);
}
