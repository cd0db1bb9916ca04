/*
 * metrics.c — the counter registry and its Prometheus rendering; see metrics.h.
 */
#include "ops/metrics.h"

#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

/* One shard per group of threads, on its own cache lines. */
typedef struct shard {
    _Alignas(64) atomic_uint_fast64_t ctr[PH_CTR_COUNT];
    atomic_uint_fast64_t bucket[PH_HIST_COUNT][PH_HIST_BUCKETS + 1];
    atomic_uint_fast64_t sum_ns[PH_HIST_COUNT];
} shard;

static shard g_shards[PH_METRICS_SHARDS];
static atomic_uint g_next_shard;
static _Thread_local shard *t_shard;

static shard *my_shard(void)
{
    if (!t_shard)
        t_shard = &g_shards[atomic_fetch_add_explicit(&g_next_shard, 1, memory_order_relaxed) %
                            PH_METRICS_SHARDS];
    return t_shard;
}

void ph_metrics_add(ph_ctr c, uint64_t n)
{
    if ((unsigned)c < PH_CTR_COUNT)
        atomic_fetch_add_explicit(&my_shard()->ctr[c], n, memory_order_relaxed);
}

void ph_metrics_inc(ph_ctr c)
{
    ph_metrics_add(c, 1);
}

uint64_t ph_metrics_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t ph_metrics_sample_start(void)
{
    static _Thread_local unsigned n;
    if (n++ % PH_METRICS_SAMPLE != 0)
        return 0;
    uint64_t t = ph_metrics_clock_ns();
    return t ? t : 1;
}

/* Upper bounds: as written in the le label, and in nanoseconds. */
static const struct {
    const char *le;
    uint64_t ns;
} bounds[PH_HIST_BUCKETS] = {
    {"1e-06", 1000},    {"2.5e-06", 2500},  {"5e-06", 5000},     {"1e-05", 10000},
    {"2.5e-05", 25000}, {"5e-05", 50000},   {"0.0001", 100000},  {"0.00025", 250000},
    {"0.0005", 500000}, {"0.001", 1000000}, {"0.0025", 2500000}, {"0.005", 5000000},
    {"0.01", 10000000},
};

unsigned ph_metrics_bucket_of(uint64_t ns)
{
    unsigned i = 0;
    while (i < PH_HIST_BUCKETS && ns > bounds[i].ns)
        i++;
    return i;
}

uint64_t ph_metrics_bucket_bound_ns(unsigned i)
{
    return i < PH_HIST_BUCKETS ? bounds[i].ns : UINT64_MAX;
}

void ph_metrics_observe_ns(ph_hist h, uint64_t ns)
{
    if ((unsigned)h >= PH_HIST_COUNT)
        return;
    shard *s = my_shard();
    atomic_fetch_add_explicit(&s->bucket[h][ph_metrics_bucket_of(ns)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_ns[h], ns, memory_order_relaxed);
}

void ph_metrics_snapshot(ph_metrics_snap *out)
{
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < PH_METRICS_SHARDS; i++) {
        shard *s = &g_shards[i];
        for (unsigned c = 0; c < PH_CTR_COUNT; c++)
            out->ctr[c] += atomic_load_explicit(&s->ctr[c], memory_order_relaxed);
        for (unsigned h = 0; h < PH_HIST_COUNT; h++) {
            for (unsigned b = 0; b <= PH_HIST_BUCKETS; b++)
                out->bucket[h][b] += atomic_load_explicit(&s->bucket[h][b], memory_order_relaxed);
            out->sum_ns[h] += atomic_load_explicit(&s->sum_ns[h], memory_order_relaxed);
        }
    }
}

/* ---- rendering ------------------------------------------------------------------ */

typedef struct {
    const char *value; /* label value, or NULL for an unlabelled sample */
    ph_ctr ctr;
} sample;

typedef struct {
    const char *name, *help, *label;
    sample s[4];
    unsigned n;
} counter_family;

static const counter_family counters[] = {
    {"phantom_connections_total",
     "Client connections accepted.",
     NULL,
     {{NULL, PH_CTR_CONN_ACCEPTED}},
     1},
    {"phantom_connections_rejected_total",
     "Client connections refused because limits.max_connections was reached.",
     NULL,
     {{NULL, PH_CTR_CONN_REJECTED}},
     1},
    {"phantom_queries_total",
     "Client statements (one per simple Query message and per Parse) by path: fast = "
     "relayed unparsed (no protected table named), rewritten = analyzed and rewritten "
     "where needed, refused = refused by the proxy.",
     "path",
     {{"fast", PH_CTR_QUERY_FAST},
      {"rewritten", PH_CTR_QUERY_REWRITTEN},
      {"refused", PH_CTR_QUERY_REFUSED}},
     3},
    {"phantom_fields_encrypted_total",
     "Protected values encrypted.",
     NULL,
     {{NULL, PH_CTR_FIELD_ENCRYPTED}},
     1},
    {"phantom_fields_decrypted_total",
     "Protected values decrypted.",
     NULL,
     {{NULL, PH_CTR_FIELD_DECRYPTED}},
     1},
    {"phantom_kek_calls_total",
     "DEK unwraps through the KEK provider, by result.",
     "result",
     {{"ok", PH_CTR_KEK_OK}, {"error", PH_CTR_KEK_ERROR}},
     2},
    {"phantom_dek_cache_hits_total",
     "Uses of field keys served from the in-memory key table (no KEK call).",
     NULL,
     {{NULL, PH_CTR_KEYS_HIT}},
     1},
    {"phantom_dek_cache_misses_total",
     "Uses of field keys that found no keys in memory (key provider down or keys expired): "
     "refused.",
     NULL,
     {{NULL, PH_CTR_KEYS_MISS}},
     1},
    {"phantom_key_loads_total",
     "Key-table loads (start, refresh every cache_ttl/2, retries, reloads), by result.",
     "result",
     {{"ok", PH_CTR_KEY_LOAD_OK}, {"error", PH_CTR_KEY_LOAD_ERROR}},
     2},
    {"phantom_upstream_errors_total",
     "Failures of connections to the target, by kind: connect, lost (mid-session), protocol "
     "(invalid message from the server), too_large (over max_message_size).",
     "kind",
     {{"connect", PH_CTR_UP_CONNECT},
      {"lost", PH_CTR_UP_LOST},
      {"protocol", PH_CTR_UP_PROTOCOL},
      {"too_large", PH_CTR_UP_TOO_LARGE}},
     4},
    {"phantom_config_reloads_total",
     "SIGHUP reloads by result (error: the running configuration was kept).",
     "result",
     {{"ok", PH_CTR_RELOAD_OK}, {"error", PH_CTR_RELOAD_ERROR}},
     2},
};

static const struct {
    const char *name, *help;
} hists[PH_HIST_COUNT] = {
    {"phantom_field_encrypt_seconds",
     "Time to encrypt one protected value (one value in 8 per worker thread is timed)."},
    {"phantom_field_decrypt_seconds",
     "Time to decrypt one protected value (one value in 8 per worker thread is timed)."},
};

static int header(ph_buf *out, const char *name, const char *type, const char *help)
{
    return ph_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with \, " and newline escaped (exposition format rules). */
static int label_value(ph_buf *out, const char *v)
{
    for (const char *p = v ? v : ""; *p; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
        if (esc ? ph_buf_append(out, esc, 2) != 0 : ph_buf_append(out, p, 1) != 0)
            return -1;
    }
    return 0;
}

static int render_counter(ph_buf *out, const counter_family *f, const ph_metrics_snap *s)
{
    if (header(out, f->name, "counter", f->help) != 0)
        return -1;
    for (unsigned i = 0; i < f->n; i++) {
        unsigned long long v = s->ctr[f->s[i].ctr];
        int rc = f->label ? ph_buf_printf(out, "%s{%s=\"%s\"} %llu\n", f->name, f->label,
                                          f->s[i].value, v)
                          : ph_buf_printf(out, "%s %llu\n", f->name, v);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int render_hist(ph_buf *out, ph_hist h, const ph_metrics_snap *s)
{
    const char *name = hists[h].name;
    if (header(out, name, "histogram", hists[h].help) != 0)
        return -1;
    unsigned long long cum = 0;
    for (unsigned b = 0; b < PH_HIST_BUCKETS; b++) {
        cum += s->bucket[h][b];
        if (ph_buf_printf(out, "%s_bucket{le=\"%s\"} %llu\n", name, bounds[b].le, cum) != 0)
            return -1;
    }
    cum += s->bucket[h][PH_HIST_BUCKETS];
    return ph_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9f\n%s_count %llu\n", name,
                         cum, name, (double)s->sum_ns[h] / 1e9, name, cum);
}

static int gauge_u(ph_buf *out, const char *name, const char *help, uint64_t v)
{
    if (header(out, name, "gauge", help) != 0)
        return -1;
    return ph_buf_printf(out, "%s %llu\n", name, (unsigned long long)v);
}

static int render_build_info(ph_buf *out, const ph_metrics_gauges *g)
{
    if (header(out, "phantom_build_info", "gauge",
               "Version of phantom and of the libraries it runs with (value always 1).") != 0 ||
        ph_buf_printf(out, "phantom_build_info{version=\"") != 0 ||
        label_value(out, g->version) != 0 || ph_buf_printf(out, "\",openssl=\"") != 0 ||
        label_value(out, g->openssl) != 0 || ph_buf_printf(out, "\",libevent=\"") != 0 ||
        label_value(out, g->libevent) != 0)
        return -1;
    return ph_buf_printf(out, "\"} 1\n");
}

static int render_gauges(ph_buf *out, const ph_metrics_gauges *g)
{
    static const char ts[] = "phantom_config_last_reload_success_timestamp_seconds";
    if (gauge_u(out, "phantom_connections", "Client connections open now.", g->connections) != 0 ||
        gauge_u(out, "phantom_keys_available",
                "1 when the encryption keys are loaded (or nothing is encrypted), 0 while they "
                "are unavailable.",
                g->keys_available ? 1 : 0) != 0 ||
        gauge_u(out, "phantom_config_generation",
                "Number of the configuration new sessions use (1 at start, +1 per reload).",
                g->generation) != 0 ||
        gauge_u(out, "phantom_config_generations",
                "Configurations still in use: 1, more while sessions opened before a reload "
                "are still open.",
                g->generations) != 0 ||
        header(out, ts, "gauge", "Unix time the current configuration was loaded.") != 0 ||
        ph_buf_printf(out, "%s %.3f\n", ts, g->reload_success) != 0)
        return -1;
    return render_build_info(out, g);
}

int ph_metrics_render(ph_buf *out, const ph_metrics_snap *s, const ph_metrics_gauges *g)
{
    size_t keep = out->len;
    int rc = render_gauges(out, g);
    for (size_t i = 0; rc == 0 && i < sizeof counters / sizeof counters[0]; i++)
        rc = render_counter(out, &counters[i], s);
    for (unsigned h = 0; rc == 0 && h < PH_HIST_COUNT; h++)
        rc = render_hist(out, (ph_hist)h, s);
    if (rc != 0)
        out->len = keep;
    return rc;
}
