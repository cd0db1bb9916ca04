/*
 * fuzz_server.c — libFuzzer target for the server->proxy direction after
 * the startup packet: what the relay reads from the database (AuthenticationX
 * incl. SASL/SCRAM, ParameterStatus, BackendKeyData, ReadyForQuery, results,
 * errors, notices, notifications, COPY responses and data).
 *
 * Input: byte 0 picks the read size (1..256 bytes), so message boundaries
 * fall everywhere; byte 1 the mode (bit 0: through a session engine with the
 * fixed financial-SaaS policy of fuzz_policy.h, else pass-through); the rest
 * is the server's byte stream. It is relayed the way src/proxy/conn.c's
 * server hooks and src/proxy/relay.c's buffer handling do it, socket-free:
 * the framer, AuthenticationSASL rewriting (SCRAM-SHA-256-PLUS removed),
 * the ReadyForQuery check, the engine's catalog injection at the first
 * ReadyForQuery (its upstream bytes go to a client->server queue), the
 * engine's server hooks (catalog answer, RowDescription, DataRow decryption,
 * ParameterStatus, COPY).
 * Checks: no crash/UB/leak; what goes to the client and what is injected
 * upstream is whole messages (never a cut or malformed length word) whenever
 * the framer is between messages; in pass-through mode the client receives
 * exactly the server's messages, AuthenticationSASL with the -PLUS mechanism
 * removed, and nothing else.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "engine/keysource.h"
#include "engine/session.h"
#include "fuzz_msgcheck.h"
#include "fuzz_policy.h"
#include "protocol/pg/framer.h"
#include "protocol/pg/pgproto.h"
#include "schema/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSG (1u << 20)

static ph_engine *global_engine(void)
{
    static ph_engine *eng;
    if (!eng) {
        ph_schema *schema;
        ph_keysource *ks;
        fuzz_policy_load(&schema, &ks);
        if (!(eng = ph_engine_new(schema, ks)))
            abort();
    }
    return eng;
}

typedef struct relay {
    ph_session *sess;  /* NULL: pass-through */
    pg_framer fr;      /* server -> client */
    pg_outq to_client; /* what the client gets */
    pg_outq to_server; /* injected upstream (the catalog query) */
    msgcheck mc_client, mc_server;
    ph_buf sent; /* pass-through: everything the client got */
} relay;

static pgf_want s2c_header(void *ud, uint8_t type, uint32_t total)
{
    relay *r = ud;
    if (type == PGP_B_READY)
        return PGF_INSPECT;
    if (type == PGP_B_AUTH) {
        if (r->sess)
            (void)ph_session_s2c_header(r->sess, type, total);
        return PGF_INSPECT;
    }
    return r->sess ? ph_session_s2c_header(r->sess, type, total) : PGF_PASS;
}

static int s2c_message(void *ud, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    relay *r = ud;
    if (msg[0] == PGP_B_AUTH) {
        int v = pgp_auth_strip_scram_plus(msg, total, rep);
        return v < 0 ? -1 : v == 1 ? PGF_REPLACED : PGF_KEEP;
    }
    if (msg[0] != PGP_B_READY)
        return ph_session_s2c_message(r->sess, msg, total, rep);
    if (!pgp_ready_status(msg, total))
        return -1;
    if (!r->sess)
        return PGF_KEEP;
    ph_buf up = {0};
    int rc = ph_session_startup_inject(r->sess, &up);
    if (rc == 1) {
        size_t n;
        uint8_t *bytes = ph_buf_steal(&up, &n);
        rc = pg_outq_own(&r->to_server, bytes, n);
    }
    ph_buf_free(&up);
    if (rc < 0)
        return -1;
    ph_session_s2c_header(r->sess, msg[0], total);
    return ph_session_s2c_message(r->sess, msg, total, rep);
}

static const pgf_hooks hooks = {s2c_header, s2c_message};

/* Writes a queue out (to nowhere), checking its messages. */
static void drain(pg_outq *q, msgcheck *mc, ph_buf *copy)
{
    struct iovec iov[64];
    while (!pg_outq_empty(q)) {
        size_t k = pg_outq_iov(q, iov, 64), n = 0;
        for (size_t i = 0; i < k; i++) {
            msgcheck_bytes(mc, iov[i].iov_base, iov[i].iov_len);
            if (copy)
                (void)ph_buf_append(copy, iov[i].iov_base, iov[i].iov_len);
            n += iov[i].iov_len;
        }
        pg_outq_consume(q, n);
    }
}

/* Pass-through: the client got the server's whole messages in order, each
 * unchanged except AuthenticationSASL without SCRAM-SHA-256-PLUS, up to the
 * point where the framer stopped (consumed bytes of the input). */
static void check_pass_through(const uint8_t *in, size_t consumed, const ph_buf *sent)
{
    ph_buf want = {0};
    size_t off = 0;
    while (consumed - off >= 5) {
        uint32_t total = ph_get_u32(in + off + 1) + 1;
        if (total > consumed - off)
            break;
        if (in[off] != PGP_B_AUTH || pgp_auth_strip_scram_plus(in + off, total, &want) != 1)
            (void)ph_buf_append(&want, in + off, total);
        off += total;
    }
    /* the tail of a passed message may already be partly on its way */
    if (sent->len < want.len || (want.len && memcmp(sent->data, want.data, want.len) != 0))
        abort();
    size_t tail = sent->len - want.len;
    if (tail > consumed - off || (tail && memcmp(sent->data + want.len, in + off, tail) != 0))
        abort();
    ph_buf_free(&want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > (1u << 18))
        return 0;
    size_t chunk = (size_t)data[0] + 1;
    bool engine = data[1] & 1;
    data += 2;
    size -= 2;
    relay r;
    memset(&r, 0, sizeof r);
    pgf_init(&r.fr, MAX_MSG);
    if (engine && !(r.sess = ph_session_new(global_engine())))
        return 0;
    uint8_t *buf = malloc(size + 1);
    if (!buf)
        abort();
    size_t len = 0, off = 0, consumed = 0;
    pgf_status st = PGF_OK;
    while (off < size && st == PGF_OK) {
        size_t n = size - off < chunk ? size - off : chunk;
        memcpy(buf + len, data + off, n); /* the relay appends after the unframed tail */
        len += n;
        off += n;
        size_t used, need;
        st = pgf_feed(&r.fr, buf, len, &hooks, &r, &r.to_client, &used, &need);
        if (used > len)
            abort();
        consumed += used;
        drain(&r.to_client, &r.mc_client, engine ? NULL : &r.sent);
        drain(&r.to_server, &r.mc_server, NULL);
        if (!msgcheck_at_boundary(&r.mc_server))
            abort(); /* an injected query that is not whole messages */
        if (st == PGF_OK && pgf_at_boundary(&r.fr) && !msgcheck_at_boundary(&r.mc_client))
            abort(); /* the client got a cut message although none is in flight */
        memmove(buf, buf + used, len - used);
        len -= used;
    }
    if (!engine)
        check_pass_through(data, consumed, &r.sent);
    free(buf);
    pg_outq_clear(&r.to_client);
    pg_outq_clear(&r.to_server);
    ph_buf_free(&r.sent);
    ph_session_free(r.sess);
    return 0;
}
