/*
 * test_protocol.c — unit tests for the PostgreSQL message layer:
 * pgproto (startup packets, headers, ErrorResponse, SASL rewriting),
 * outq (zero-copy segment queue) and framer (message boundaries, streaming,
 * inspection, replacement, truncated and oversized messages).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/bytes.h"
#include "protocol/pg/framer.h"
#include "protocol/pg/outq.h"
#include "protocol/pg/pgproto.h"

/* ---- helpers -------------------------------------------------------------- */

static void put_msg(ph_buf *b, char type, const char *body, size_t n)
{
    assert_int_equal(ph_buf_append_u8(b, (uint8_t)type), 0);
    assert_int_equal(ph_buf_append_u32(b, (uint32_t)(n + 4)), 0);
    assert_int_equal(ph_buf_append(b, body, n), 0);
}

/* Concatenates what an outq would write. */
static void drain_outq(pg_outq *q, ph_buf *sink)
{
    struct iovec iov[64];
    while (!pg_outq_empty(q)) {
        size_t k = pg_outq_iov(q, iov, 64);
        size_t total = 0;
        for (size_t i = 0; i < k; i++) {
            assert_int_equal(ph_buf_append(sink, iov[i].iov_base, iov[i].iov_len), 0);
            total += iov[i].iov_len;
        }
        pg_outq_consume(q, total);
    }
}

/* Drives a framer over `in`, delivering it in chunks of `chunk` bytes the way
 * the relay does (keeping unconsumed bytes), and collects the output. */
static pgf_status feed_chunked(pg_framer *f, const ph_buf *in, size_t chunk, const pgf_hooks *h,
                               void *ud, ph_buf *outbuf)
{
    uint8_t *buf = malloc(in->len + 1);
    size_t len = 0, done = 0, off = 0;
    pgf_status st = PGF_OK;
    pg_outq q = {0};
    while (off < in->len) {
        size_t n = in->len - off < chunk ? in->len - off : chunk;
        memmove(buf, buf + done, len - done);
        len -= done;
        done = 0;
        memcpy(buf + len, in->data + off, n);
        len += n;
        off += n;
        size_t used, need;
        st = pgf_feed(f, buf, len, h, ud, &q, &used, &need);
        done += used;
        drain_outq(&q, outbuf);
        if (st != PGF_OK)
            break;
    }
    pg_outq_clear(&q);
    free(buf);
    return st;
}

/* ---- pgproto ---------------------------------------------------------------- */

static void build_startup(ph_buf *b, const char *const *kv, size_t nkv)
{
    assert_int_equal(ph_buf_append_u32(b, 0), 0);
    assert_int_equal(ph_buf_append_u32(b, PGP_PROTO_V3), 0);
    for (size_t i = 0; i < nkv; i++)
        assert_int_equal(ph_buf_append_cstr(b, kv[i]), 0);
    assert_int_equal(ph_buf_append_u8(b, 0), 0);
    ph_put_u32(b->data, (uint32_t)b->len);
}

static void test_startup_message(void **state)
{
    (void)state;
    static const char *const kv[] = {"user", "alice", "database", "shop", "options", "-c x=1"};
    ph_buf b = {0};
    build_startup(&b, kv, 6);
    pgp_startup s;
    assert_int_equal(pgp_parse_startup(b.data, b.len, &s), PGP_OK);
    assert_int_equal(s.kind, PGP_PKT_STARTUP);
    assert_int_equal(s.len, b.len);
    assert_string_equal(pgp_startup_param(&s, "user"), "alice");
    assert_string_equal(pgp_startup_param(&s, "database"), "shop");
    assert_string_equal(pgp_startup_param(&s, "options"), "-c x=1");
    assert_null(pgp_startup_param(&s, "alice")); /* values are not keys */
    assert_null(pgp_startup_param(&s, "application_name"));
    /* Every truncation is "need more", never a read past the end. */
    for (size_t n = 0; n < b.len; n++)
        assert_int_equal(pgp_parse_startup(b.data, n, &s), PGP_NEED_MORE);
    ph_buf_free(&b);
}

static void test_startup_requests(void **state)
{
    (void)state;
    uint8_t p[16];
    pgp_startup s;
    ph_put_u32(p, 8);
    ph_put_u32(p + 4, PGP_SSL_REQUEST);
    assert_int_equal(pgp_parse_startup(p, 8, &s), PGP_OK);
    assert_int_equal(s.kind, PGP_PKT_SSL);
    ph_put_u32(p + 4, PGP_GSSENC_REQUEST);
    assert_int_equal(pgp_parse_startup(p, 8, &s), PGP_OK);
    assert_int_equal(s.kind, PGP_PKT_GSSENC);
    ph_put_u32(p, 16);
    ph_put_u32(p + 4, PGP_CANCEL_REQUEST);
    ph_put_u32(p + 8, 4242);
    ph_put_u32(p + 12, 0xdeadbeef);
    assert_int_equal(pgp_parse_startup(p, 12, &s), PGP_NEED_MORE);
    assert_int_equal(pgp_parse_startup(p, 16, &s), PGP_OK);
    assert_int_equal(s.kind, PGP_PKT_CANCEL);
    assert_int_equal(s.cancel_pid, 4242);
    assert_int_equal(s.cancel_key, 0xdeadbeef);
    /* An SSLRequest with a wrong length is malformed. */
    ph_put_u32(p, 12);
    ph_put_u32(p + 4, PGP_SSL_REQUEST);
    assert_int_equal(pgp_parse_startup(p, 12, &s), PGP_ERR_LENGTH);
}

static void test_startup_bad(void **state)
{
    (void)state;
    uint8_t p[16] = {0};
    pgp_startup s;
    ph_put_u32(p, 4); /* shorter than the header itself */
    assert_int_equal(pgp_parse_startup(p, 8, &s), PGP_ERR_LENGTH);
    ph_put_u32(p, 0x7fffffff); /* a 2 GB startup packet */
    ph_put_u32(p + 4, PGP_PROTO_V3);
    assert_int_equal(pgp_parse_startup(p, 8, &s), PGP_ERR_LENGTH);
    ph_put_u32(p, PGP_MAX_STARTUP_PACKET + 1);
    assert_int_equal(pgp_parse_startup(p, 8, &s), PGP_ERR_LENGTH);
    ph_put_u32(p, 8);
    ph_put_u32(p + 4, 0x00020000); /* protocol 2.0 */
    assert_int_equal(pgp_parse_startup(p, 8, &s), PGP_ERR_VERSION);
    /* Parameters not NUL-terminated. */
    ph_put_u32(p, 10);
    ph_put_u32(p + 4, PGP_PROTO_V3);
    p[8] = 'a';
    p[9] = 'b';
    assert_int_equal(pgp_parse_startup(p, 10, &s), PGP_ERR_FORMAT);
}

static void test_startup_param_malformed_list(void **state)
{
    (void)state;
    /* "user\0" with no value: lookup must stop, not run off the end. */
    const uint8_t params[] = {'u', 's', 'e', 'r', 0};
    pgp_startup s = {.kind = PGP_PKT_STARTUP, .params = params, .params_len = sizeof params};
    assert_null(pgp_startup_param(&s, "user"));
    assert_null(pgp_startup_param(&s, "database"));
}

static void test_header(void **state)
{
    (void)state;
    uint8_t m[5] = {'Q', 0, 0, 0, 4};
    uint8_t type;
    uint32_t total;
    for (size_t n = 0; n < 5; n++)
        assert_int_equal(pgp_parse_header(m, n, 1024, &type, &total), PGP_NEED_MORE);
    assert_int_equal(pgp_parse_header(m, 5, 1024, &type, &total), PGP_OK);
    assert_int_equal(type, 'Q');
    assert_int_equal(total, 5);
    ph_put_u32(m + 1, 3); /* below the minimum of 4 */
    assert_int_equal(pgp_parse_header(m, 5, 1024, &type, &total), PGP_ERR_LENGTH);
    ph_put_u32(m + 1, 1024); /* exactly the maximum is fine */
    assert_int_equal(pgp_parse_header(m, 5, 1024, &type, &total), PGP_OK);
    ph_put_u32(m + 1, 1025);
    assert_int_equal(pgp_parse_header(m, 5, 1024, &type, &total), PGP_ERR_LENGTH);
    ph_put_u32(m + 1, 0x7fffffff);
    assert_int_equal(pgp_parse_header(m, 5, 0x7fffffff, &type, &total), PGP_OK);
    assert_int_equal(total, 0x80000000u);
    ph_put_u32(m + 1, 0xffffffff); /* must not wrap when adding the type byte */
    assert_int_equal(pgp_parse_header(m, 5, 0x7fffffff, &type, &total), PGP_ERR_LENGTH);
}

static void test_error_response(void **state)
{
    (void)state;
    ph_buf b = {0};
    pgp_error e = {.severity = "FATAL", .sqlstate = "08001", .message = "phantom: no", .hint = "h"};
    assert_int_equal(pgp_build_error(&b, &e), 0);
    assert_int_equal(b.data[0], 'E');
    assert_int_equal(ph_get_u32(b.data + 1) + 1, b.len);
    static const char want[] = "SFATAL\0VFATAL\0C08001\0Mphantom: no\0Hh\0";
    assert_int_equal(b.len, 5 + sizeof want); /* sizeof includes the final NUL */
    assert_memory_equal(b.data + 5, want, sizeof want);
    ph_buf_free(&b);
}

static void sasl_msg(ph_buf *b, const char *const *mechs, size_t n)
{
    ph_buf body = {0};
    assert_int_equal(ph_buf_append_u32(&body, PGP_AUTH_SASL), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ph_buf_append_cstr(&body, mechs[i]), 0);
    assert_int_equal(ph_buf_append_u8(&body, 0), 0);
    put_msg(b, 'R', (const char *)body.data, body.len);
    ph_buf_free(&body);
}

static void test_strip_scram_plus(void **state)
{
    (void)state;
    static const char *const both[] = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"};
    static const char *const plain[] = {"SCRAM-SHA-256"};
    ph_buf in = {0}, out = {0}, expect = {0};
    sasl_msg(&in, both, 2);
    sasl_msg(&expect, plain, 1);
    assert_int_equal(pgp_auth_strip_scram_plus(in.data, in.len, &out), 1);
    assert_int_equal(out.len, expect.len);
    assert_memory_equal(out.data, expect.data, expect.len);
    /* Already without PLUS: unchanged. */
    out.len = 0;
    assert_int_equal(pgp_auth_strip_scram_plus(expect.data, expect.len, &out), 0);
    assert_int_equal(out.len, 0);
    /* Other authentication requests (MD5 = 5) are left alone. */
    ph_buf md5 = {0};
    put_msg(&md5, 'R', "\0\0\0\5salt", 8);
    assert_int_equal(pgp_auth_strip_scram_plus(md5.data, md5.len, &out), 0);
    /* Malformed: missing final terminator, and a truncated message. */
    in.data[in.len - 1] = 'x';
    assert_int_equal(pgp_auth_strip_scram_plus(in.data, in.len, &out), -1);
    assert_int_equal(pgp_auth_strip_scram_plus(in.data, 7, &out), -1);
    ph_buf_free(&in);
    ph_buf_free(&out);
    ph_buf_free(&expect);
    ph_buf_free(&md5);
}

static void test_ready_status(void **state)
{
    (void)state;
    const uint8_t z[6] = {'Z', 0, 0, 0, 5, 'T'};
    assert_int_equal(pgp_ready_status(z, 6), 'T');
    assert_int_equal(pgp_ready_status(z, 5), 0);
    const uint8_t bad[6] = {'Z', 0, 0, 0, 6, 'I'};
    assert_int_equal(pgp_ready_status(bad, 6), 0);
}

/* ---- outq ----------------------------------------------------------------- */

static void test_outq_zero_copy_and_partial_writes(void **state)
{
    (void)state;
    uint8_t buf[100];
    for (int i = 0; i < 100; i++)
        buf[i] = (uint8_t)i;
    pg_outq q = {0};
    assert_int_equal(pg_outq_ref(&q, buf, 10), 0);
    assert_int_equal(pg_outq_ref(&q, buf + 10, 20), 0); /* contiguous: merged */
    struct iovec iov[8];
    assert_int_equal(pg_outq_iov(&q, iov, 8), 1);
    assert_ptr_equal(iov[0].iov_base, buf); /* written from where it was read */
    assert_int_equal(iov[0].iov_len, 30);
    uint8_t *own = malloc(3);
    memcpy(own, "abc", 3);
    assert_int_equal(pg_outq_own(&q, own, 3), 0);
    assert_int_equal(pg_outq_ref(&q, buf + 50, 5), 0); /* not merged across owned */
    assert_int_equal(pg_outq_iov(&q, iov, 8), 3);
    assert_int_equal(q.bytes, 38);
    assert_true(pg_outq_refs_range(&q, buf + 52, buf + 53));
    assert_false(pg_outq_refs_range(&q, buf + 40, buf + 50));
    pg_outq_consume(&q, 29);
    assert_int_equal(pg_outq_iov(&q, iov, 8), 3);
    assert_ptr_equal(iov[0].iov_base, buf + 29);
    pg_outq_consume(&q, 2); /* into the owned chunk */
    assert_int_equal(pg_outq_iov(&q, iov, 8), 2);
    assert_memory_equal(iov[0].iov_base, "bc", 2);
    pg_outq_consume(&q, 7);
    assert_true(pg_outq_empty(&q));
    pg_outq_clear(&q);
}

static void test_outq_clear_frees_owned(void **state)
{
    (void)state;
    pg_outq q = {0};
    for (int i = 0; i < 100; i++) /* forces growth; ASan checks the frees */
        assert_int_equal(pg_outq_own(&q, malloc(16), 16), 0);
    assert_int_equal(q.bytes, 1600);
    pg_outq_clear(&q);
    assert_true(pg_outq_empty(&q));
}

/* ---- framer ------------------------------------------------------------------ */

typedef struct {
    int headers;
    int inspected;
    char seen[64];
    int replace_type; /* replace messages of this type with "Xrep" */
    int drop_type;
    int fail_type;
} hook_log;

static pgf_want log_header(void *ud, uint8_t type, uint32_t total)
{
    hook_log *l = ud;
    (void)total;
    if (l->headers < (int)sizeof l->seen - 1)
        l->seen[l->headers] = (char)type;
    l->headers++;
    return type == 'Z' || type == l->replace_type || type == l->drop_type || type == l->fail_type
               ? PGF_INSPECT
               : PGF_PASS;
}

static int log_message(void *ud, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    hook_log *l = ud;
    l->inspected++;
    assert_int_equal(ph_get_u32(msg + 1) + 1, total); /* always whole */
    if (msg[0] == l->fail_type)
        return -1;
    if (msg[0] == l->drop_type)
        return PGF_DROP;
    if (msg[0] == l->replace_type) {
        put_msg(rep, 'N', "rep", 3);
        return PGF_REPLACED;
    }
    return PGF_KEEP;
}

static const pgf_hooks log_hooks = {log_header, log_message};

static void sample_stream(ph_buf *b)
{
    put_msg(b, 'T', "rowdesc", 7);
    put_msg(b, 'D', "row-one", 7);
    char big[3000];
    memset(big, 'x', sizeof big);
    put_msg(b, 'D', big, sizeof big);
    put_msg(b, 'C', "SELECT 2\0", 9);
    put_msg(b, 'Z', "I", 1);
}

static void test_framer_pass_through_any_split(void **state)
{
    (void)state;
    ph_buf in = {0};
    sample_stream(&in);
    /* Any chunking gives back the same bytes and sees each header once. */
    for (size_t chunk = 1; chunk <= in.len; chunk = chunk < 16 ? chunk + 1 : chunk * 2) {
        pg_framer f;
        pgf_init(&f, 1 << 20);
        hook_log l = {0};
        ph_buf out = {0};
        assert_int_equal(feed_chunked(&f, &in, chunk, &log_hooks, &l, &out), PGF_OK);
        assert_int_equal(out.len, in.len);
        assert_memory_equal(out.data, in.data, in.len);
        assert_int_equal(l.headers, 5);
        assert_string_equal(l.seen, "TDDCZ");
        assert_int_equal(l.inspected, 1);
        assert_true(pgf_at_boundary(&f));
        ph_buf_free(&out);
    }
    ph_buf_free(&in);
}

static void test_framer_streams_large_message_without_holding_it(void **state)
{
    (void)state;
    /* Header of a 10 MB DataRow followed by a first slice of it. */
    uint8_t buf[4096];
    buf[0] = 'D';
    ph_put_u32(buf + 1, 10u * 1024 * 1024);
    memset(buf + 5, 'v', sizeof buf - 5);
    pg_framer f;
    pgf_init(&f, 64u * 1024 * 1024);
    pg_outq q = {0};
    size_t used, need;
    assert_int_equal(pgf_feed(&f, buf, sizeof buf, NULL, NULL, &q, &used, &need), PGF_OK);
    assert_int_equal(used, sizeof buf); /* forwarded at once, partial */
    assert_int_equal(need, 0);
    assert_int_equal(q.bytes, sizeof buf);
    assert_false(pgf_at_boundary(&f));
    assert_int_equal(f.skip, 10u * 1024 * 1024 + 1 - sizeof buf);
    pg_outq_clear(&q);
}

static void test_framer_replace_and_drop(void **state)
{
    (void)state;
    ph_buf in = {0}, expect = {0};
    put_msg(&in, 'A', "keep", 4);
    put_msg(&in, 'R', "replace-me", 10);
    put_msg(&in, 'B', "keep2", 5);
    put_msg(&in, 'K', "drop-me", 7);
    put_msg(&in, 'Z', "I", 1);
    put_msg(&expect, 'A', "keep", 4);
    put_msg(&expect, 'N', "rep", 3);
    put_msg(&expect, 'B', "keep2", 5);
    put_msg(&expect, 'Z', "I", 1);
    for (size_t chunk = 1; chunk <= in.len; chunk++) {
        pg_framer f;
        pgf_init(&f, 1024);
        hook_log l = {.replace_type = 'R', .drop_type = 'K'};
        ph_buf out = {0};
        assert_int_equal(feed_chunked(&f, &in, chunk, &log_hooks, &l, &out), PGF_OK);
        assert_int_equal(out.len, expect.len);
        assert_memory_equal(out.data, expect.data, expect.len);
        assert_int_equal(l.headers, 5); /* each header reported once, split or not */
        assert_int_equal(l.inspected, 3);
        ph_buf_free(&out);
    }
    ph_buf_free(&in);
    ph_buf_free(&expect);
}

static void test_framer_inspected_message_needs_whole(void **state)
{
    (void)state;
    ph_buf in = {0};
    put_msg(&in, 'Z', "I", 1);
    pg_framer f;
    pgf_init(&f, 1024);
    hook_log l = {0};
    pg_outq q = {0};
    size_t used, need;
    assert_int_equal(pgf_feed(&f, in.data, 5, &log_hooks, &l, &q, &used, &need), PGF_OK);
    assert_int_equal(used, 0);
    assert_int_equal(need, 6);
    assert_true(pg_outq_empty(&q));
    assert_int_equal(pgf_feed(&f, in.data, 6, &log_hooks, &l, &q, &used, &need), PGF_OK);
    assert_int_equal(used, 6);
    assert_int_equal(l.headers, 1);
    assert_int_equal(l.inspected, 1);
    pg_outq_clear(&q);
    ph_buf_free(&in);
}

static void test_framer_oversized_rejected_before_allocation(void **state)
{
    (void)state;
    ph_buf in = {0};
    put_msg(&in, 'Q', "SELECT 1\0", 9);
    /* A header announcing 2^31-1 bytes, with no body at all. */
    assert_int_equal(ph_buf_append_u8(&in, 'Q'), 0);
    assert_int_equal(ph_buf_append_u32(&in, 0x7fffffff), 0);
    pg_framer f;
    pgf_init(&f, 1024 * 1024);
    pg_outq q = {0};
    size_t used, need;
    assert_int_equal(pgf_feed(&f, in.data, in.len, NULL, NULL, &q, &used, &need), PGF_ERR_LENGTH);
    assert_int_equal(used, 14); /* the good message before it still goes out */
    assert_int_equal(q.bytes, 14);
    assert_int_equal(f.bad_len, 0x7fffffff);
    assert_int_equal(f.type, 'Q');
    pg_outq_clear(&q);
    ph_buf_free(&in);
}

static void test_framer_length_below_minimum(void **state)
{
    (void)state;
    const uint8_t bad[5] = {'Q', 0, 0, 0, 2};
    pg_framer f;
    pgf_init(&f, 1024);
    pg_outq q = {0};
    size_t used, need;
    assert_int_equal(pgf_feed(&f, bad, 5, NULL, NULL, &q, &used, &need), PGF_ERR_LENGTH);
    assert_int_equal(used, 0);
    pg_outq_clear(&q);
}

static void test_framer_hook_error_stops(void **state)
{
    (void)state;
    ph_buf in = {0};
    put_msg(&in, 'A', "ok", 2);
    put_msg(&in, 'F', "fail", 4);
    put_msg(&in, 'B', "never", 5);
    pg_framer f;
    pgf_init(&f, 1024);
    hook_log l = {.fail_type = 'F'};
    pg_outq q = {0};
    size_t used, need;
    assert_int_equal(pgf_feed(&f, in.data, in.len, &log_hooks, &l, &q, &used, &need), PGF_ERR_HOOK);
    assert_int_equal(used, 7);
    assert_int_equal(q.bytes, 7);
    pg_outq_clear(&q);
    ph_buf_free(&in);
}

/* A hook that starts a replacement, then keeps the message after all. */
static pgf_want want_all(void *ud, uint8_t type, uint32_t total)
{
    (void)ud;
    (void)type;
    (void)total;
    return PGF_INSPECT;
}

static int begin_then_keep(void *ud, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    (void)ud;
    (void)msg;
    (void)total;
    assert_int_equal(ph_buf_append(rep, "partial", 7), 0);
    return PGF_KEEP;
}

static void test_framer_keep_discards_partial_replacement(void **state)
{
    (void)state;
    static const pgf_hooks h = {want_all, begin_then_keep};
    ph_buf in = {0}, out = {0};
    put_msg(&in, 'A', "one", 3);
    put_msg(&in, 'B', "two", 3);
    pg_framer f;
    pgf_init(&f, 1024);
    pg_outq q = {0};
    size_t used, need;
    assert_int_equal(pgf_feed(&f, in.data, in.len, &h, NULL, &q, &used, &need), PGF_OK);
    assert_int_equal(used, in.len);
    drain_outq(&q, &out); /* the originals, unchanged; ASan reports any leaked buffer */
    assert_int_equal(out.len, in.len);
    assert_memory_equal(out.data, in.data, in.len);
    pg_outq_clear(&q);
    ph_buf_free(&in);
    ph_buf_free(&out);
}

static void test_framer_truncated_stream(void **state)
{
    (void)state;
    ph_buf in = {0};
    sample_stream(&in);
    /* Every prefix: no error, nothing beyond the prefix, output is a prefix. */
    for (size_t n = 0; n < in.len; n += 7) {
        pg_framer f;
        pgf_init(&f, 1 << 20);
        pg_outq q = {0};
        ph_buf out = {0};
        size_t used, need;
        assert_int_equal(pgf_feed(&f, in.data, n, NULL, NULL, &q, &used, &need), PGF_OK);
        assert_true(used <= n);
        drain_outq(&q, &out);
        assert_int_equal(out.len, used);
        assert_memory_equal(out.data, in.data, out.len);
        assert_true(n - used < 5); /* only a partial header is held back */
        pg_outq_clear(&q);
        ph_buf_free(&out);
    }
    ph_buf_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_startup_message),
        cmocka_unit_test(test_startup_requests),
        cmocka_unit_test(test_startup_bad),
        cmocka_unit_test(test_startup_param_malformed_list),
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_error_response),
        cmocka_unit_test(test_strip_scram_plus),
        cmocka_unit_test(test_ready_status),
        cmocka_unit_test(test_outq_zero_copy_and_partial_writes),
        cmocka_unit_test(test_outq_clear_frees_owned),
        cmocka_unit_test(test_framer_pass_through_any_split),
        cmocka_unit_test(test_framer_streams_large_message_without_holding_it),
        cmocka_unit_test(test_framer_replace_and_drop),
        cmocka_unit_test(test_framer_inspected_message_needs_whole),
        cmocka_unit_test(test_framer_oversized_rejected_before_allocation),
        cmocka_unit_test(test_framer_length_below_minimum),
        cmocka_unit_test(test_framer_hook_error_stops),
        cmocka_unit_test(test_framer_keep_discards_partial_replacement),
        cmocka_unit_test(test_framer_truncated_stream),
    };
    return cmocka_run_group_tests_name("protocol", tests, NULL, NULL);
}
