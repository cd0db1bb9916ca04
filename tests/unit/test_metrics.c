/*
 * test_metrics.c — unit tests for src/ops/metrics.[ch]: histogram bucket
 * bounds (inclusive, +Inf past 10 ms), lock-free counters summed across
 * threads, and the Prometheus text rendering of a known snapshot, checked by
 * a small exposition-format parser: every sample line well-formed, every
 * family with HELP and TYPE before its samples, counters ending in _total,
 * histogram buckets cumulative with +Inf equal to _count, label values
 * escaped, and the exact values of the snapshot and gauges.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <ctype.h>
#include <pthread.h>

#include "ops/metrics.h"

static double dabs(double x)
{
    return x < 0 ? -x : x;
}

/* ---- a small exposition-format parser --------------------------------------------- */

#define MAX_FAMILIES 64
#define MAX_SAMPLES  256

typedef struct {
    char name[128];
    char type[16];
    int help, samples;
} family;

typedef struct {
    char name[128];
    char labels[256]; /* raw text between the braces, "" when none */
    double value;
} sample;

typedef struct {
    family fam[MAX_FAMILIES];
    int nfam;
    sample s[MAX_SAMPLES];
    int ns;
} expo;

static family *find_family(expo *e, const char *name)
{
    for (int i = 0; i < e->nfam; i++)
        if (strcmp(e->fam[i].name, name) == 0)
            return &e->fam[i];
    return NULL;
}

static family *add_family(expo *e, const char *name)
{
    family *f = find_family(e, name);
    if (f)
        return f;
    assert_true(e->nfam < MAX_FAMILIES);
    f = &e->fam[e->nfam++];
    snprintf(f->name, sizeof f->name, "%s", name);
    return f;
}

static int name_char(int c, int first)
{
    return isalpha(c) || c == '_' || c == ':' || (!first && isdigit(c));
}

/* The family a sample belongs to: itself, or a histogram's base name. */
static family *family_of(expo *e, const char *name)
{
    family *f = find_family(e, name);
    if (f)
        return f;
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(name), k = strlen(suffixes[i]);
        char base[128];
        if (n <= k || strcmp(name + n - k, suffixes[i]) != 0 || n - k >= sizeof base)
            continue;
        memcpy(base, name, n - k);
        base[n - k] = '\0';
        f = find_family(e, base);
        if (f && strcmp(f->type, "histogram") == 0)
            return f;
    }
    return NULL;
}

/* Label text: name="value" pairs, comma-separated, values with \\ \" \n only. */
static void check_labels(const char *p)
{
    while (*p) {
        assert_true(name_char((unsigned char)*p, 1));
        while (name_char((unsigned char)*p, 0))
            p++;
        assert_int_equal(*p++, '=');
        assert_int_equal(*p++, '"');
        while (*p != '"') {
            assert_true(*p != '\0' && *p != '\n');
            if (*p == '\\') {
                p++;
                assert_true(*p == '\\' || *p == '"' || *p == 'n');
            }
            p++;
        }
        p++;
        if (*p == ',')
            p++;
        else
            assert_int_equal(*p, '\0');
    }
}

static void parse_sample(expo *e, const char *line)
{
    assert_true(e->ns < MAX_SAMPLES);
    sample *s = &e->s[e->ns++];
    const char *p = line;
    size_t n = 0;
    assert_true(name_char((unsigned char)*p, 1));
    while (name_char((unsigned char)p[n], 0))
        n++;
    assert_true(n < sizeof s->name);
    memcpy(s->name, p, n);
    s->name[n] = '\0';
    p += n;
    s->labels[0] = '\0';
    if (*p == '{') {
        const char *close = p + 1;
        while (*close && !(*close == '}' && close[-1] != '\\'))
            close++;
        assert_int_equal(*close, '}');
        size_t l = (size_t)(close - p - 1);
        assert_true(l < sizeof s->labels);
        memcpy(s->labels, p + 1, l);
        s->labels[l] = '\0';
        check_labels(s->labels);
        p = close + 1;
    }
    assert_int_equal(*p++, ' ');
    char *end = NULL;
    s->value = strtod(p, &end);
    assert_true(end != p && *end == '\0');
    family *f = family_of(e, s->name);
    assert_non_null(f); /* HELP and TYPE came first */
    assert_true(f->help && f->type[0]);
    f->samples++;
}

static void parse(expo *e, const char *text)
{
    memset(e, 0, sizeof *e);
    const char *p = text;
    assert_true(*p != '\0');
    while (*p) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl); /* every line ends with a newline */
        char line[1024];
        size_t n = (size_t)(nl - p);
        assert_true(n > 0 && n < sizeof line);
        memcpy(line, p, n);
        line[n] = '\0';
        char name[128], rest[512];
        if (sscanf(line, "# HELP %127s %511[^\n]", name, rest) == 2) {
            family *f = add_family(e, name);
            assert_int_equal(f->help, 0);
            assert_int_equal(f->samples, 0);
            f->help = 1;
        } else if (sscanf(line, "# TYPE %127s %511s", name, rest) == 2) {
            family *f = add_family(e, name);
            assert_true(f->help);
            assert_true(strcmp(rest, "counter") == 0 || strcmp(rest, "gauge") == 0 ||
                        strcmp(rest, "histogram") == 0);
            memcpy(f->type, rest, strlen(rest) + 1); /* one of the three names above */
        } else {
            assert_true(line[0] != '#');
            parse_sample(e, line);
        }
        p = nl + 1;
    }
    for (int i = 0; i < e->nfam; i++) {
        const family *f = &e->fam[i];
        assert_true(f->samples > 0);
        size_t n = strlen(f->name);
        if (strcmp(f->type, "counter") == 0)
            assert_true(n > 6 && strcmp(f->name + n - 6, "_total") == 0);
    }
}

static const sample *find_sample(const expo *e, const char *name, const char *labels)
{
    for (int i = 0; i < e->ns; i++)
        if (strcmp(e->s[i].name, name) == 0 && strcmp(e->s[i].labels, labels) == 0)
            return &e->s[i];
    return NULL;
}

static double value_of(const expo *e, const char *name, const char *labels)
{
    const sample *s = find_sample(e, name, labels);
    if (!s)
        fail_msg("no sample %s{%s}", name, labels);
    return s->value;
}

/* Buckets of histogram name: cumulative, le increasing, +Inf last == _count. */
static void check_histogram(const expo *e, const char *name, uint64_t want_count, double want_sum)
{
    char bucket[160], count[160], sum[160];
    snprintf(bucket, sizeof bucket, "%s_bucket", name);
    snprintf(count, sizeof count, "%s_count", name);
    snprintf(sum, sizeof sum, "%s_sum", name);
    double prev_le = -1, prev_v = 0, inf = -1;
    int nb = 0;
    for (int i = 0; i < e->ns; i++) {
        if (strcmp(e->s[i].name, bucket) != 0)
            continue;
        const char *l = e->s[i].labels;
        assert_true(strncmp(l, "le=\"", 4) == 0);
        assert_true(inf < 0); /* nothing after +Inf */
        if (strcmp(l, "le=\"+Inf\"") == 0) {
            inf = e->s[i].value;
        } else {
            double le = strtod(l + 4, NULL);
            assert_true(le > prev_le);
            prev_le = le;
        }
        assert_true(e->s[i].value >= prev_v);
        prev_v = e->s[i].value;
        nb++;
    }
    assert_int_equal(nb, PH_HIST_BUCKETS + 1);
    assert_true(dabs(prev_le - 0.01) < 1e-12);
    assert_true(inf >= 0);
    assert_true(inf == value_of(e, count, ""));
    assert_true(inf == (double)want_count);
    assert_true(dabs(value_of(e, sum, "") - want_sum) < 1e-9);
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_buckets(void **state)
{
    (void)state;
    assert_int_equal(ph_metrics_bucket_of(0), 0);
    assert_int_equal(ph_metrics_bucket_of(1000), 0); /* le is inclusive */
    assert_int_equal(ph_metrics_bucket_of(1001), 1);
    assert_int_equal(ph_metrics_bucket_of(2500), 1);
    assert_int_equal(ph_metrics_bucket_of(99999), 6);
    assert_int_equal(ph_metrics_bucket_of(100000), 6);
    assert_int_equal(ph_metrics_bucket_of(10000000), PH_HIST_BUCKETS - 1);
    assert_int_equal(ph_metrics_bucket_of(10000001), PH_HIST_BUCKETS); /* +Inf only */
    assert_int_equal(ph_metrics_bucket_of(UINT64_MAX), PH_HIST_BUCKETS);
    assert_int_equal(ph_metrics_bucket_bound_ns(0), 1000);
    assert_int_equal(ph_metrics_bucket_bound_ns(PH_HIST_BUCKETS - 1), 10000000);
    for (unsigned i = 1; i < PH_HIST_BUCKETS; i++)
        assert_true(ph_metrics_bucket_bound_ns(i) > ph_metrics_bucket_bound_ns(i - 1));
}

#define THREADS 4
#define PER     20000

static void *bump(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER; i++) {
        ph_metrics_inc(PH_CTR_FIELD_ENCRYPTED);
        ph_metrics_add(PH_CTR_QUERY_FAST, 2);
        ph_metrics_observe_ns(PH_HIST_DECRYPT, i % 2 ? 1500 : 20000000);
    }
    return NULL;
}

static void test_counters_threads(void **state)
{
    (void)state;
    ph_metrics_snap a, b;
    ph_metrics_snapshot(&a);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, bump, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    ph_metrics_snapshot(&b);
    uint64_t n = (uint64_t)THREADS * PER;
    assert_true(b.ctr[PH_CTR_FIELD_ENCRYPTED] - a.ctr[PH_CTR_FIELD_ENCRYPTED] == n);
    assert_true(b.ctr[PH_CTR_QUERY_FAST] - a.ctr[PH_CTR_QUERY_FAST] == 2 * n);
    assert_true(b.ctr[PH_CTR_QUERY_REFUSED] == a.ctr[PH_CTR_QUERY_REFUSED]);
    assert_true(b.bucket[PH_HIST_DECRYPT][1] - a.bucket[PH_HIST_DECRYPT][1] == n / 2);
    assert_true(b.bucket[PH_HIST_DECRYPT][PH_HIST_BUCKETS] -
                    a.bucket[PH_HIST_DECRYPT][PH_HIST_BUCKETS] ==
                n / 2);
    assert_true(b.sum_ns[PH_HIST_DECRYPT] - a.sum_ns[PH_HIST_DECRYPT] ==
                (n / 2) * 1500 + (n / 2) * 20000000);
    assert_true(b.bucket[PH_HIST_ENCRYPT][1] == a.bucket[PH_HIST_ENCRYPT][1]);

    /* out-of-range identifiers are ignored, not written out of bounds */
    ph_metrics_inc(PH_CTR_COUNT);
    ph_metrics_observe_ns(PH_HIST_COUNT, 5);
}

static void test_render(void **state)
{
    (void)state;
    ph_metrics_snap s;
    memset(&s, 0, sizeof s);
    for (unsigned c = 0; c < PH_CTR_COUNT; c++)
        s.ctr[c] = 1000 + c; /* every counter distinct */
    /* encrypt: 3 at <= 1 µs, 2 in (5 µs, 10 µs], 1 beyond 10 ms */
    s.bucket[PH_HIST_ENCRYPT][0] = 3;
    s.bucket[PH_HIST_ENCRYPT][3] = 2;
    s.bucket[PH_HIST_ENCRYPT][PH_HIST_BUCKETS] = 1;
    s.sum_ns[PH_HIST_ENCRYPT] = 3 * 800 + 2 * 7000 + 50000000;
    /* decrypt: nothing observed */
    ph_metrics_gauges g = {.connections = 7,
                           .keys_available = 1,
                           .generations = 2,
                           .generation = 3,
                           .reload_success = 1700000000.25,
                           .version = "0.1.0",
                           .openssl = "OpenSSL \"3\" \\ x\ny",
                           .libevent = NULL};
    ph_buf out = {0};
    assert_int_equal(ph_metrics_render(&out, &s, &g), 0);
    assert_int_equal(strlen((const char *)out.data), out.len);
    expo *e = calloc(1, sizeof *e);
    assert_non_null(e);
    parse(e, (const char *)out.data);

    assert_true(value_of(e, "phantom_connections", "") == 7);
    assert_true(value_of(e, "phantom_keys_available", "") == 1);
    assert_true(value_of(e, "phantom_config_generations", "") == 2);
    assert_true(value_of(e, "phantom_config_generation", "") == 3);
    assert_true(value_of(e, "phantom_config_last_reload_success_timestamp_seconds", "") ==
                1700000000.25);
    assert_true(value_of(e, "phantom_connections_total", "") == 1000 + PH_CTR_CONN_ACCEPTED);
    assert_true(value_of(e, "phantom_connections_rejected_total", "") ==
                1000 + PH_CTR_CONN_REJECTED);
    assert_true(value_of(e, "phantom_queries_total", "path=\"fast\"") == 1000 + PH_CTR_QUERY_FAST);
    assert_true(value_of(e, "phantom_queries_total", "path=\"rewritten\"") ==
                1000 + PH_CTR_QUERY_REWRITTEN);
    assert_true(value_of(e, "phantom_queries_total", "path=\"refused\"") ==
                1000 + PH_CTR_QUERY_REFUSED);
    assert_true(value_of(e, "phantom_fields_encrypted_total", "") == 1000 + PH_CTR_FIELD_ENCRYPTED);
    assert_true(value_of(e, "phantom_fields_decrypted_total", "") == 1000 + PH_CTR_FIELD_DECRYPTED);
    assert_true(value_of(e, "phantom_kek_calls_total", "result=\"ok\"") == 1000 + PH_CTR_KEK_OK);
    assert_true(value_of(e, "phantom_kek_calls_total", "result=\"error\"") ==
                1000 + PH_CTR_KEK_ERROR);
    assert_true(value_of(e, "phantom_dek_cache_hits_total", "") == 1000 + PH_CTR_KEYS_HIT);
    assert_true(value_of(e, "phantom_dek_cache_misses_total", "") == 1000 + PH_CTR_KEYS_MISS);
    assert_true(value_of(e, "phantom_key_loads_total", "result=\"ok\"") ==
                1000 + PH_CTR_KEY_LOAD_OK);
    assert_true(value_of(e, "phantom_key_loads_total", "result=\"error\"") ==
                1000 + PH_CTR_KEY_LOAD_ERROR);
    assert_true(value_of(e, "phantom_upstream_errors_total", "kind=\"connect\"") ==
                1000 + PH_CTR_UP_CONNECT);
    assert_true(value_of(e, "phantom_upstream_errors_total", "kind=\"lost\"") ==
                1000 + PH_CTR_UP_LOST);
    assert_true(value_of(e, "phantom_upstream_errors_total", "kind=\"protocol\"") ==
                1000 + PH_CTR_UP_PROTOCOL);
    assert_true(value_of(e, "phantom_upstream_errors_total", "kind=\"too_large\"") ==
                1000 + PH_CTR_UP_TOO_LARGE);
    assert_true(value_of(e, "phantom_config_reloads_total", "result=\"ok\"") ==
                1000 + PH_CTR_RELOAD_OK);
    assert_true(value_of(e, "phantom_config_reloads_total", "result=\"error\"") ==
                1000 + PH_CTR_RELOAD_ERROR);

    check_histogram(e, "phantom_field_encrypt_seconds", 6, 0.0500164);
    assert_true(value_of(e, "phantom_field_encrypt_seconds_bucket", "le=\"1e-06\"") == 3);
    assert_true(value_of(e, "phantom_field_encrypt_seconds_bucket", "le=\"5e-06\"") == 3);
    assert_true(value_of(e, "phantom_field_encrypt_seconds_bucket", "le=\"1e-05\"") == 5);
    assert_true(value_of(e, "phantom_field_encrypt_seconds_bucket", "le=\"0.01\"") == 5);
    check_histogram(e, "phantom_field_decrypt_seconds", 0, 0);

    /* label escaping: " \ and newline; a NULL string is empty */
    assert_non_null(find_sample(e, "phantom_build_info",
                                "version=\"0.1.0\",openssl=\"OpenSSL \\\"3\\\" \\\\ x\\ny\","
                                "libevent=\"\""));
    assert_true(value_of(e, "phantom_build_info",
                         "version=\"0.1.0\",openssl=\"OpenSSL \\\"3\\\" \\\\ x\\ny\","
                         "libevent=\"\"") == 1);
    family *f = find_family(e, "phantom_field_decrypt_seconds");
    assert_non_null(f);
    assert_string_equal(f->type, "histogram");
    f = find_family(e, "phantom_connections");
    assert_non_null(f);
    assert_string_equal(f->type, "gauge");
    f = find_family(e, "phantom_queries_total");
    assert_non_null(f);
    assert_string_equal(f->type, "counter");
    assert_int_equal(f->samples, 3);

    /* rendering appends: a second rendering doubles the text exactly */
    size_t once = out.len;
    assert_int_equal(ph_metrics_render(&out, &s, &g), 0);
    assert_int_equal(out.len, 2 * once);
    assert_memory_equal(out.data, out.data + once, once);
    free(e);
    ph_buf_free(&out);
}

/* A live snapshot renders and parses too (whatever the process counted). */
/* On a thread of its own: which of 3 * PH_METRICS_SAMPLE calls are timed. */
static void *sample_pattern(void *arg)
{
    unsigned *timed = arg;
    for (unsigned i = 0; i < 3 * PH_METRICS_SAMPLE; i++)
        if (ph_metrics_sample_start() != 0)
            timed[i] = 1;
    return NULL;
}

static void test_sampling(void **state)
{
    (void)state;
    unsigned timed[3 * PH_METRICS_SAMPLE] = {0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, sample_pattern, timed), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    for (unsigned i = 0; i < 3 * PH_METRICS_SAMPLE; i++)
        assert_int_equal(timed[i], i % PH_METRICS_SAMPLE == 0); /* the 1st, 9th, 17th */
    uint64_t a = ph_metrics_clock_ns(), b = 0;
    for (unsigned i = 0; i < PH_METRICS_SAMPLE && !b; i++)
        b = ph_metrics_sample_start(); /* this thread: one of any 8 in a row */
    assert_true(b >= a);
}

static void test_render_live(void **state)
{
    (void)state;
    ph_metrics_inc(PH_CTR_RELOAD_ERROR);
    ph_metrics_observe_ns(PH_HIST_ENCRYPT, 3000);
    ph_metrics_snap s;
    ph_metrics_snapshot(&s);
    ph_metrics_gauges g = {0};
    ph_buf out = {0};
    assert_int_equal(ph_metrics_render(&out, &s, &g), 0);
    expo *e = calloc(1, sizeof *e);
    assert_non_null(e);
    parse(e, (const char *)out.data);
    assert_true(value_of(e, "phantom_config_reloads_total", "result=\"error\"") >= 1);
    uint64_t n = 0;
    for (unsigned b = 0; b <= PH_HIST_BUCKETS; b++)
        n += s.bucket[PH_HIST_ENCRYPT][b];
    check_histogram(e, "phantom_field_encrypt_seconds", n, (double)s.sum_ns[PH_HIST_ENCRYPT] / 1e9);
    free(e);
    ph_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets),  cmocka_unit_test(test_counters_threads),
        cmocka_unit_test(test_render),   cmocka_unit_test(test_render_live),
        cmocka_unit_test(test_sampling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
