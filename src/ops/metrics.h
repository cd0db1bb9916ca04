/*
 * metrics.h — the proxy's process-wide counters and histograms, and their
 * Prometheus text exposition (format 0.0.4).
 *
 * Owns: the registry (a fixed set of counters and two latency histograms),
 * updating it from any thread without locks, a consistent-enough snapshot,
 * and rendering a snapshot plus the gauges the caller measures (connections
 * open, keys available, ...) as `# HELP` / `# TYPE` / sample lines.
 *
 * Hot path: every update is one relaxed atomic add on the calling thread's
 * own shard (threads are spread over PH_METRICS_SHARDS cache-line-aligned
 * shards), so workers never share a lock or, normally, a cache line. A
 * snapshot sums the shards. Values only ever grow (counters), so a scrape
 * racing an update sees either the old or the new value of each number.
 *
 * Nothing here ever holds a protected value, a query text or key material:
 * only counts and durations.
 */
#ifndef PHANTOM_OPS_METRICS_H
#define PHANTOM_OPS_METRICS_H

#include <stdint.h>

#include "common/bytes.h"

typedef enum ph_ctr {
    PH_CTR_CONN_ACCEPTED = 0, /* client connections accepted */
    PH_CTR_CONN_REJECTED,     /* refused at max_connections */
    PH_CTR_QUERY_FAST,        /* Query/Parse relayed without parsing (no protected table) */
    PH_CTR_QUERY_REWRITTEN,   /* Query/Parse analyzed (and rewritten when needed) */
    PH_CTR_QUERY_REFUSED,     /* Query/Parse refused by the proxy */
    PH_CTR_FIELD_ENCRYPTED,   /* protected values encrypted */
    PH_CTR_FIELD_DECRYPTED,   /* protected values decrypted */
    PH_CTR_KEK_OK,            /* DEK unwraps through the KEK provider that succeeded */
    PH_CTR_KEK_ERROR,         /* ... that failed */
    PH_CTR_KEYS_HIT,          /* key uses served from the in-memory key table */
    PH_CTR_KEYS_MISS,         /* key uses that found no keys in memory (refused) */
    PH_CTR_KEY_LOAD_OK,       /* key-table loads (start, refresh, retry, reload) that worked */
    PH_CTR_KEY_LOAD_ERROR,    /* ... that failed */
    PH_CTR_UP_CONNECT,        /* upstream: connecting to the target failed */
    PH_CTR_UP_LOST,           /* upstream: connection lost mid-session */
    PH_CTR_UP_PROTOCOL,       /* upstream: protocol violation from the server */
    PH_CTR_UP_TOO_LARGE,      /* upstream: server message over max_message_size */
    PH_CTR_RELOAD_OK,         /* SIGHUP reloads applied */
    PH_CTR_RELOAD_ERROR,      /* SIGHUP reloads rejected (old configuration kept) */
    PH_CTR_COUNT
} ph_ctr;

typedef enum ph_hist {
    PH_HIST_ENCRYPT = 0, /* seconds to encrypt one protected value */
    PH_HIST_DECRYPT,     /* seconds to decrypt one protected value */
    PH_HIST_COUNT
} ph_hist;

/* Finite histogram buckets (upper bounds 1 µs .. 10 ms); +Inf is implicit. */
#define PH_HIST_BUCKETS   13
#define PH_METRICS_SHARDS 16

void ph_metrics_inc(ph_ctr c);
void ph_metrics_add(ph_ctr c, uint64_t n);

/* A monotonic clock in nanoseconds, for ph_metrics_observe_ns. */
uint64_t ph_metrics_clock_ns(void);
/* The start of a sampled timing: ph_metrics_clock_ns() (never 0) for one
 * call in PH_METRICS_SAMPLE on each thread, 0 for the others (not timed:
 * per-value timings would cost two clock reads per value). */
#define PH_METRICS_SAMPLE 8
uint64_t ph_metrics_sample_start(void);
/* Records one observation of ns nanoseconds. */
void ph_metrics_observe_ns(ph_hist h, uint64_t ns);

/* The bucket an observation of ns falls in: 0..PH_HIST_BUCKETS-1, or
 * PH_HIST_BUCKETS for +Inf only (bounds are inclusive: le). */
unsigned ph_metrics_bucket_of(uint64_t ns);
/* Upper bound of finite bucket i in nanoseconds. */
uint64_t ph_metrics_bucket_bound_ns(unsigned i);

typedef struct ph_metrics_snap {
    uint64_t ctr[PH_CTR_COUNT];
    uint64_t bucket[PH_HIST_COUNT][PH_HIST_BUCKETS + 1]; /* per bucket, not cumulative */
    uint64_t sum_ns[PH_HIST_COUNT];
} ph_metrics_snap;

/* Sums every shard into *s. */
void ph_metrics_snapshot(ph_metrics_snap *s);

/* What the caller measures at scrape time. Strings may be NULL ("" then). */
typedef struct ph_metrics_gauges {
    uint64_t connections;  /* client connections open now */
    int keys_available;    /* 1: keys loaded or nothing to encrypt; 0: unavailable */
    unsigned generations;  /* configurations still in use (1, more after a reload) */
    uint64_t generation;   /* number of the current configuration (1 at start) */
    double reload_success; /* Unix time of the last successful (re)load */
    const char *version;
    const char *openssl;
    const char *libevent;
} ph_metrics_gauges;

/* Appends the exposition of s and g to out (text, no NUL counted in len;
 * out->data stays a C string). 0, or -1 on OOM. */
int ph_metrics_render(ph_buf *out, const ph_metrics_snap *s, const ph_metrics_gauges *g);

/* Content-Type of the rendering. */
#define PH_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
