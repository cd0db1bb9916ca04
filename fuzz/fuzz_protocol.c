/*
 * fuzz_protocol.c — libFuzzer target for the PostgreSQL message layer.
 *
 * The first input byte picks how the rest is cut into reads (1..256 bytes),
 * so boundaries fall everywhere; the stream goes through the framer the way
 * the relay drives it (with inspection and replacement hooks), and the same
 * bytes through the startup-packet parser and the SASL rewriter; when they
 * start like a client's stream (SSL/GSSENC requests, a StartupMessage —
 * the captured seeds cap-* do), the typed messages after the startup packet
 * go through the framer as well, in the same cuts. Checks:
 * no crash/UB/leak, output never longer than input plus replacements, and
 * pass-through output is a prefix of the input; taking phantom.tenant out
 * of a StartupMessage only shrinks it, keeps its length word right and
 * leaves it untouched when the setting is absent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "protocol/pg/framer.h"
#include "protocol/pg/pgproto.h"
#include "protocol/pg/startup_opts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pgf_want hdr(void *ud, uint8_t type, uint32_t total)
{
    (void)ud;
    (void)total;
    return type == 'R' || type == 'Z' ? PGF_INSPECT : PGF_PASS;
}

static int msg(void *ud, const uint8_t *m, uint32_t total, ph_buf *rep)
{
    (void)ud;
    if (m[0] == 'R') {
        int r = pgp_auth_strip_scram_plus(m, total, rep);
        return r < 0 ? -1 : r == 1 ? PGF_REPLACED : PGF_KEEP;
    }
    return pgp_ready_status(m, total) ? PGF_KEEP : -1;
}

static const pgf_hooks hooks = {hdr, msg};

static void drain(pg_outq *q, size_t *written)
{
    struct iovec iov[16];
    while (!pg_outq_empty(q)) {
        size_t k = pg_outq_iov(q, iov, 16), n = 0;
        for (size_t i = 0; i < k; i++)
            n += iov[i].iov_len;
        *written += n;
        pg_outq_consume(q, n);
    }
}

static void run_framer(const uint8_t *data, size_t size, size_t chunk, bool with_hooks)
{
    uint8_t *buf = malloc(size + 1);
    if (!buf)
        return;
    size_t len = 0, done = 0, off = 0, written = 0;
    pg_framer f;
    pgf_init(&f, 4096);
    pg_outq q = {0};
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk;
        memmove(buf, buf + done, len - done);
        len -= done;
        done = 0;
        memcpy(buf + len, data + off, n);
        len += n;
        off += n;
        size_t used, need;
        pgf_status st = pgf_feed(&f, buf, len, with_hooks ? &hooks : NULL, NULL, &q, &used, &need);
        if (used > len - done)
            abort();
        done += used;
        drain(&q, &written);
        if (st != PGF_OK)
            break;
    }
    if (!with_hooks && written > size)
        abort();
    pg_outq_clear(&q);
    free(buf);
}

/* The proxy takes phantom.tenant out of a StartupMessage before forwarding
 * it: the packet may only shrink, its length word must say its new length,
 * and it is left byte for byte unchanged unless the setting was found. */
static void take_tenant(const uint8_t *pkt, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return;
    memcpy(copy, pkt, len);
    size_t n = len;
    char value[64];
    int rc = pgp_startup_take_setting(copy, &n, "phantom.tenant", value, sizeof value);
    if (rc != 1 && (n != len || memcmp(copy, pkt, len) != 0))
        abort(); /* not found or malformed: the packet must be untouched */
    if (rc == 1) {
        uint32_t lw =
            (uint32_t)copy[0] << 24 | (uint32_t)copy[1] << 16 | (uint32_t)copy[2] << 8 | copy[3];
        if (n > len || n < 8 || lw != n || memchr(value, '\0', sizeof value) == NULL)
            abort();
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = (size_t)data[0] + 1;
    data++;
    size--;
    run_framer(data, size, chunk, false);
    run_framer(data, size, chunk, true);
    /* A client stream: SSL/GSSENC requests (answered 'N'), the
     * StartupMessage, then typed messages relayed through the framer. */
    pgp_startup s;
    size_t at = 0;
    while (pgp_parse_startup(data + at, size - at, &s) == PGP_OK) {
        if (s.len > size - at)
            abort(); /* a packet reported longer than the bytes it was parsed from */
        if (s.kind == PGP_PKT_STARTUP) {
            (void)pgp_startup_param(&s, "user");
            (void)pgp_startup_param(&s, "database");
            (void)pgp_startup_param(&s, "options");
            take_tenant(data + at, s.len);
            run_framer(data + at + s.len, size - at - s.len, chunk, false);
        }
        if (s.kind == PGP_PKT_STARTUP || s.kind == PGP_PKT_CANCEL)
            break;
        at += s.len;
    }
    ph_buf out = {0};
    (void)pgp_auth_strip_scram_plus(data, size, &out);
    ph_buf_free(&out);
    return 0;
}
