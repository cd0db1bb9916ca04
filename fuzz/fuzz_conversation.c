/*
 * fuzz_conversation.c — stateful libFuzzer target: a whole client/server
 * conversation through the session engine.
 *
 * Input: a sequence of records, each  hdr(1) | length(2, big-endian) | bytes
 * (a last record may be short). Bit 0 of hdr is the direction: 0 = bytes the
 * client sent to the proxy, 1 = bytes the server sent to the proxy; the
 * other bits are ignored. A record is one read as a real relay would get it,
 * so tests/tools/pgcapture.py turns a captured session into this format
 * directly (fuzz/capture-corpus.sh: the client leg and the upstream leg of a
 * session through the encrypting proxy, merged by time).
 *
 * The client's first bytes go through the startup-packet parser (SSLRequest
 * and GSSENCRequest are answered 'N' by the proxy, so they are skipped; a
 * CancelRequest ends the conversation); from the StartupMessage on, each
 * direction is framed and relayed exactly as src/proxy/conn.c does it
 * (AuthenticationSASL rewriting, the ReadyForQuery check, the engine's
 * catalog injection at the first ReadyForQuery, the engine's hooks), with
 * the fixed financial-SaaS policy and keys of fuzz_policy.h. A framing or
 * hook error ends the conversation, as the proxy closes the connection.
 *
 * Checks: no crash/UB/leak; both output streams are whole messages whenever
 * their framer is between messages; and no protected literal goes upstream
 * in the clear: for every Query and Parse whose text holds the marker
 * "SECRET", the reference analysis (ph_rewrite over the same schema with a
 * stand-in cipher, no session state) says how many marker occurrences may
 * stay readable once the literals bound to protected columns are encrypted;
 * what the engine sends upstream for that message (kept, rewritten, refused
 * or dropped) must not hold more. The capture sessions put the marker in
 * protected values, so mutations move it around a realistic state.
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
#include "rewrite/rewrite.h"
#include "schema/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSG   (1u << 20)
#define MAX_INPUT (1u << 17)
#define MARK      "SECRET"
#define MARK_LEN  (sizeof MARK - 1)

static ph_schema *g_schema;
static ph_engine *g_engine;

static void global_init(void)
{
    if (g_engine)
        return;
    ph_keysource *ks;
    fuzz_policy_load(&g_schema, &ks);
    if (!(g_engine = ph_engine_new(g_schema, ks)))
        abort();
}

/* ---- the leak oracle ------------------------------------------------------------------- */

static size_t count_mark(const uint8_t *p, size_t n)
{
    size_t k = 0;
    const uint8_t *end = p + n;
    while (p < end) {
        const uint8_t *q = memmem(p, (size_t)(end - p), MARK, MARK_LEN);
        if (!q)
            break;
        k++;
        p = q + MARK_LEN;
    }
    return k;
}

static int stand_in_cipher(void *ud, const ph_schema_column *col, const char *v, size_t len,
                           ph_buf *out, char *err, size_t errlen)
{
    (void)ud;
    (void)col;
    (void)v;
    (void)len;
    (void)err;
    (void)errlen;
    return ph_buf_append(out, "ENC", 3);
}

/* The statement text of a Query or Parse message, or NULL. */
static const uint8_t *statement_of(const uint8_t *msg, uint32_t total, size_t *len)
{
    const uint8_t *p = msg + 5, *end = msg + total;
    if (msg[0] == 'P') {
        const uint8_t *z = memchr(p, '\0', (size_t)(end - p));
        if (!z)
            return NULL;
        p = z + 1;
    }
    const uint8_t *z = memchr(p, '\0', (size_t)(end - p));
    if (!z)
        return NULL;
    *len = (size_t)(z - p);
    return p;
}

/* How many marker occurrences of this Query/Parse may go upstream readable;
 * SIZE_MAX when the reference analysis does not accept the text. */
static size_t allowed_marks(const uint8_t *msg, uint32_t total)
{
    size_t len;
    const uint8_t *sql = statement_of(msg, total, &len);
    if (!sql)
        return SIZE_MAX;
    size_t in_sql = count_mark(sql, len);
    if (!in_sql)
        return SIZE_MAX;
    ph_rw_options o = {.encrypt = stand_in_cipher};
    ph_rw_result r;
    size_t allowed = SIZE_MAX;
    if (ph_rewrite(g_schema, (const char *)sql, len, &o, &r) == PH_RW_OK) {
        size_t readable = r.sql ? count_mark((const uint8_t *)r.sql, r.sql_len) : in_sql;
        allowed = count_mark(msg, total) - in_sql + readable;
    }
    ph_rw_result_free(&r);
    return allowed;
}

static void check_upstream(const uint8_t *msg, uint32_t total, int verdict, const ph_buf *rep)
{
    if ((msg[0] != 'Q' && msg[0] != 'P') || !memmem(msg, total, MARK, MARK_LEN))
        return;
    size_t allowed = allowed_marks(msg, total);
    if (allowed == SIZE_MAX)
        return;
    size_t sent = verdict == PGF_KEEP       ? count_mark(msg, total)
                  : verdict == PGF_REPLACED ? count_mark(rep->data, rep->len)
                                            : 0;
    if (sent > allowed)
        abort(); /* a literal bound to a protected column went upstream readable */
}

/* ---- the relay ---------------------------------------------------------------------------- */

typedef struct side {
    pg_framer fr;
    ph_buf in; /* bytes read, not yet framed */
    pg_outq out;
    msgcheck mc;
} side;

typedef struct conv {
    ph_session *sess;
    bool relaying; /* the StartupMessage went through */
    bool closed;
    ph_buf startup;
    side c2s, s2c;
} conv;

/* Writes a queue out (to nowhere), checking its messages. */
static void drain(side *d)
{
    struct iovec iov[64];
    while (!pg_outq_empty(&d->out)) {
        size_t k = pg_outq_iov(&d->out, iov, 64), n = 0;
        for (size_t i = 0; i < k; i++) {
            msgcheck_bytes(&d->mc, iov[i].iov_base, iov[i].iov_len);
            n += iov[i].iov_len;
        }
        pg_outq_consume(&d->out, n);
    }
}

static bool side_idle(const side *d)
{
    return pg_outq_empty(&d->out) && d->in.len == 0 && pgf_at_boundary(&d->fr) && d->fr.held == 0;
}

static pgf_want c2s_header(void *ud, uint8_t type, uint32_t total)
{
    conv *c = ud;
    return ph_session_c2s_header(c->sess, type, total);
}

static int c2s_message(void *ud, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    conv *c = ud;
    int v = ph_session_c2s_message(c->sess, msg, total, rep);
    if (v >= 0)
        check_upstream(msg, total, v, rep);
    return v;
}

static pgf_want s2c_header(void *ud, uint8_t type, uint32_t total)
{
    conv *c = ud;
    if (type == PGP_B_READY)
        return PGF_INSPECT;
    if (type == PGP_B_AUTH) {
        (void)ph_session_s2c_header(c->sess, type, total);
        return PGF_INSPECT;
    }
    return ph_session_s2c_header(c->sess, type, total);
}

static int s2c_message(void *ud, const uint8_t *msg, uint32_t total, ph_buf *rep)
{
    conv *c = ud;
    if (msg[0] == PGP_B_AUTH) {
        int r = pgp_auth_strip_scram_plus(msg, total, rep);
        return r < 0 ? -1 : r == 1 ? PGF_REPLACED : PGF_KEEP;
    }
    if (msg[0] != PGP_B_READY)
        return ph_session_s2c_message(c->sess, msg, total, rep);
    if (!pgp_ready_status(msg, total))
        return -1;
    if (side_idle(&c->c2s)) {
        ph_buf up = {0};
        int rc = ph_session_startup_inject(c->sess, &up);
        if (rc == 1) {
            size_t n;
            uint8_t *bytes = ph_buf_steal(&up, &n);
            rc = pg_outq_own(&c->c2s.out, bytes, n);
        }
        ph_buf_free(&up);
        if (rc < 0)
            return -1;
    }
    ph_session_s2c_header(c->sess, msg[0], total);
    return ph_session_s2c_message(c->sess, msg, total, rep);
}

static const pgf_hooks c2s_hooks = {c2s_header, c2s_message};
static const pgf_hooks s2c_hooks = {s2c_header, s2c_message};

/* Frames what one side has read; false when the proxy would close. */
static bool pump(conv *c, side *d, const pgf_hooks *h)
{
    size_t used, need;
    pgf_status st = pgf_feed(&d->fr, d->in.data, d->in.len, h, c, &d->out, &used, &need);
    if (used > d->in.len)
        abort();
    drain(&c->c2s); /* the server's side may have injected upstream */
    drain(&c->s2c);
    if (st != PGF_OK)
        return false;
    if (pgf_at_boundary(&c->c2s.fr) && !msgcheck_at_boundary(&c->c2s.mc))
        abort(); /* a cut message upstream although none is in flight */
    if (pgf_at_boundary(&c->s2c.fr) && !msgcheck_at_boundary(&c->s2c.mc))
        abort(); /* a cut message to the client although none is in flight */
    if (used) {
        memmove(d->in.data, d->in.data + used, d->in.len - used);
        d->in.len -= used;
    }
    return true;
}

/* The untyped packets before the StartupMessage; false when the proxy
 * would close. */
static bool startup(conv *c)
{
    for (;;) {
        pgp_startup s;
        pgp_status st = pgp_parse_startup(c->startup.data, c->startup.len, &s);
        if (st == PGP_NEED_MORE)
            return true;
        if (st != PGP_OK || s.kind == PGP_PKT_CANCEL)
            return false;
        size_t rest = c->startup.len - s.len;
        if (s.kind == PGP_PKT_STARTUP) {
            (void)pgp_startup_param(&s, "user");
            (void)pgp_startup_param(&s, "database");
            if (!(c->sess = ph_session_new(g_engine)))
                return false;
            c->relaying = true;
            if (ph_buf_append(&c->c2s.in, c->startup.data + s.len, rest) != 0)
                return false;
            c->startup.len = 0;
            return pump(c, &c->c2s, &c2s_hooks);
        }
        memmove(c->startup.data, c->startup.data + s.len, rest); /* SSL/GSS: 'N' */
        c->startup.len = rest;
    }
}

static void record(conv *c, int from_server, const uint8_t *p, size_t n)
{
    bool ok = true;
    if (!from_server && !c->relaying) {
        ok = ph_buf_append(&c->startup, p, n) == 0 && startup(c);
    } else if (!from_server) {
        ok = ph_buf_append(&c->c2s.in, p, n) == 0 && pump(c, &c->c2s, &c2s_hooks);
    } else if (c->relaying) {
        ok = ph_buf_append(&c->s2c.in, p, n) == 0 && pump(c, &c->s2c, &s2c_hooks);
    } /* else: the server says nothing before it is connected */
    if (!ok)
        c->closed = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    global_init();
    conv c;
    memset(&c, 0, sizeof c);
    pgf_init(&c.c2s.fr, MAX_MSG);
    pgf_init(&c.s2c.fr, MAX_MSG);
    size_t off = 0;
    while (!c.closed && size - off >= 3) {
        int dir = data[off] & 1;
        size_t n = (size_t)data[off + 1] << 8 | data[off + 2];
        off += 3;
        if (n > size - off)
            n = size - off;
        record(&c, dir, data + off, n);
        off += n;
    }
    pg_outq_clear(&c.c2s.out);
    pg_outq_clear(&c.s2c.out);
    ph_buf_free(&c.c2s.in);
    ph_buf_free(&c.s2c.in);
    ph_buf_free(&c.startup);
    ph_session_free(c.sess);
    return 0;
}
