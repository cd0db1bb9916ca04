/*
 * fuzz_engine.c — libFuzzer target for the session engine (src/engine/).
 *
 * The input is a script of records, each turned into one protocol message
 * for one direction and fed through the real framer with the engine's
 * hooks: raw messages (any type, any body) and structured ones built from a
 * few bytes — client Query/Parse from a list of statements over the seed's
 * protected tables, Bind with fuzzed values and formats, Describe, Execute,
 * Close, Sync, CopyData; server RowDescription naming protected columns,
 * DataRow with real envelopes (text and binary, corrupted on demand) or
 * garbage, the catalog answer, completions, errors, ReadyForQuery, COPY
 * responses and ParameterStatus. Checks: no crash/UB/leak; everything the
 * engine emits is whole messages; a protected literal of the statement list
 * never goes upstream in the clear. customers.email's key domain has two live
 * versions (a key rotation in progress), so its lookups take the
 * every-version path (ANY / ALL / lists, bytea[] parameters).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "crypto/field.h"
#include "engine/keysource.h"
#include "engine/session.h"
#include "fuzz_policy.h"
#include "protocol/pg/framer.h"
#include "schema/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char yaml[] = "encrypt:\n"
                           "  customers:\n"
                           "    - email: deterministic\n"
                           "    - full_name\n"
                           "    - column: age\n"
                           "      mode: ope\n"
                           "      type: int4\n"
                           "    - column: signup_day\n"
                           "      mode: ope\n"
                           "      type: date\n"
                           "  payments:\n"
                           "    - column: customer_email\n"
                           "      mode: deterministic\n"
                           "      key: customers.email\n"
                           "    - card_number\n";

#define SECRET "SECRETVALUE"

static const char *const sqls[] = {
    "SELECT email, full_name FROM customers WHERE email = $1",
    "SELECT * FROM customers",
    "INSERT INTO customers (email, full_name, age) VALUES ('" SECRET "', $1, $2)",
    "UPDATE customers SET full_name = '" SECRET "' WHERE email = $1",
    "SELECT email FROM customers WHERE full_name LIKE '" SECRET "%'",
    "SELECT card_number FROM payments p JOIN customers c ON c.email = p.customer_email",
    "COPY customers (email, full_name) FROM STDIN",
    "COPY customers TO STDOUT",
    "COPY customers (age) FROM STDIN (FORMAT binary)",
    "ALTER TABLE customers ADD COLUMN full_name text",
    "SELECT 1",
    "SELECT age FROM customers WHERE age BETWEEN $1 AND $2 ORDER BY age",
    "INSERT INTO customers VALUES (1, '" SECRET "')",
    "SELECT email FROM customers WHERE email = '" SECRET "' 'x'",
    "",
    "SELECT email FROM customers WHERE '" SECRET "' = email OR email IN ($1, $2)",
    "SELECT id FROM customers WHERE email <> $1 AND email NOT IN ('" SECRET "')",
};
#define NSQL (sizeof sqls / sizeof sqls[0])

static const char *const names[] = {"", "a", "b"};

typedef struct env {
    ph_schema *schema;
    ph_keysource *ks;
    ph_engine *eng;
} env;

static env *global_env(void)
{
    static env e;
    if (e.eng)
        return &e;
    char err[256];
    if (ph_schema_load_buffer(&e.schema, yaml, strlen(yaml), "fuzz.yaml", err, sizeof err) != 0)
        abort();
    e.ks = ph_keysource_new();
    /* The keys of fuzz_policy.h where the domains are the same, so that the
     * envelopes of captured sessions (corpus cap-*) decrypt. */
    const char *shared[] = {"customers.email", "customers.full_name", "payments.card_number"};
    for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++)
        if (fuzz_policy_add(e.ks, shared[i]) != 0)
            abort();
    const char *own[] = {"customers.age", "customers.signup_day"};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        uint8_t dek[PH_FIELD_DEK_LEN];
        memset(dek, (int)i + 1, sizeof dek);
        if (ph_keysource_add(e.ks, own[i], 20 + (uint32_t)i, dek, 1) != 0)
            abort();
    }
    uint8_t old[PH_FIELD_DEK_LEN];
    memset(old, 0x5a, sizeof old);
    if (ph_keysource_add(e.ks, "customers.email", 30, old, 0) != 0) /* rotation in progress */
        abort();
    e.eng = ph_engine_new(e.schema, e.ks);
    if (!e.eng)
        abort();
    return &e;
}

/* ---- input cursor ----------------------------------------------------------------------- */

typedef struct in {
    const uint8_t *p;
    size_t n;
} in;

static uint8_t u8(in *c)
{
    if (!c->n)
        return 0;
    c->n--;
    return *c->p++;
}

static size_t take(in *c, size_t want, const uint8_t **p)
{
    size_t k = want < c->n ? want : c->n;
    *p = c->p;
    c->p += k;
    c->n -= k;
    return k;
}

/* ---- building messages -------------------------------------------------------------------- */

static size_t begin(ph_buf *b, uint8_t type)
{
    size_t at = b->len;
    (void)ph_buf_append_u8(b, type);
    (void)ph_buf_append_u32(b, 0);
    return at;
}

static void end(ph_buf *b, size_t at)
{
    if (b->data && b->len >= at + 5)
        ph_put_u32(b->data + at + 1, (uint32_t)(b->len - at - 1));
}

static void put_str(ph_buf *b, const char *s)
{
    (void)ph_buf_append(b, s, strlen(s) + 1);
}

static void hex_of(const uint8_t *p, size_t n, ph_buf *out)
{
    static const char hx[] = "0123456789abcdef";
    (void)ph_buf_append(out, "\\x", 2);
    for (size_t i = 0; i < n; i++) {
        char two[2] = {hx[p[i] >> 4], hx[p[i] & 15]};
        (void)ph_buf_append(out, two, 2);
    }
}

/* A DataRow value: a real envelope of a column (maybe corrupted), or bytes. */
static void put_value(in *c, ph_buf *b, env *e)
{
    uint8_t k = u8(c);
    if (k % 5 == 0) {
        (void)ph_buf_append_u32(b, 0xFFFFFFFFu);
        return;
    }
    const uint8_t *p;
    size_t n = take(c, u8(c) % 24, &p);
    ph_buf v = {0};
    if (k % 5 >= 3) {
        const char *dom = k & 0x20 ? "customers.full_name" : "customers.email";
        ph_buf envl = {0};
        ph_field_encrypt_buf(ph_keysource_write_key(e->ks, dom),
                             k & 0x20 ? PH_FIELD_RANDOMIZED : PH_FIELD_DETERMINISTIC, p, n, &envl);
        if (envl.len && (k & 0x40))
            envl.data[(k >> 1) % envl.len] ^= 1;
        if (k & 0x80)
            (void)ph_buf_append(&v, envl.data, envl.len);
        else
            hex_of(envl.data, envl.len, &v);
        ph_buf_free(&envl);
    } else {
        (void)ph_buf_append(&v, p, n);
    }
    (void)ph_buf_append_u32(b, (uint32_t)v.len);
    (void)ph_buf_append(b, v.data, v.len);
    ph_buf_free(&v);
}

static void catalog_answer(ph_buf *b)
{
    static const char *const cust[] = {"id", "email", "full_name", "age", "signup_day"};
    static const char *const pay[] = {"id", "customer_email", "card_number"};
    size_t at = begin(b, 'T');
    (void)ph_buf_append_u16(b, 5);
    for (int i = 0; i < 5; i++) {
        put_str(b, "c");
        (void)ph_buf_append(b, "\0\0\0\0\0\0\0\0\0\x13\0\x40\xff\xff\xff\xff\0\0", 18);
    }
    end(b, at);
    for (int t = 0; t < 2; t++) {
        size_t n = t ? 3 : 5;
        for (size_t i = 0; i < n; i++) {
            char oid[8], att[4];
            snprintf(oid, sizeof oid, "%u", t ? 16400u : 16384u);
            snprintf(att, sizeof att, "%zu", i + 1);
            const char *vals[5] = {oid, att, "public", t ? "payments" : "customers",
                                   t ? pay[i] : cust[i]};
            at = begin(b, 'D');
            (void)ph_buf_append_u16(b, 5);
            for (int k = 0; k < 5; k++) {
                (void)ph_buf_append_u32(b, (uint32_t)strlen(vals[k]));
                (void)ph_buf_append(b, vals[k], strlen(vals[k]));
            }
            end(b, at);
        }
    }
    at = begin(b, 'C');
    put_str(b, "SELECT 8");
    end(b, at);
    at = begin(b, 'Z');
    (void)ph_buf_append_u8(b, 'I');
    end(b, at);
}

/* Set once a DataRow the fuzzer made (not catalog_answer's) went to the
 * engine in this run: it may have been read as a catalog row. */
static int foreign_rows;

/* Whether the marker in sql must never go upstream readable. An INSERT
 * without a column list puts values in the columns the catalog lists, in
 * order — and a catalog built from the fuzzer's rows may put a plaintext
 * column where email is (as a real server would after DDL), so it is only
 * checked while the catalog can only be catalog_answer's. */
static int watchable(const char *sql)
{
    return strncmp(sql, "INSERT INTO customers VALUES", 28) != 0 || !foreign_rows;
}

/* Builds the next record's message(s); returns the direction (0 c2s) and
 * sets *watch when the message carries the protected marker. */
static int build(in *c, env *e, ph_buf *b, int *watch)
{
    uint8_t ctl = u8(c);
    int dir = ctl & 1;
    size_t at;
    *watch = 0;
    switch ((ctl >> 1) % 11) {
    case 0: { /* raw */
        const uint8_t *p;
        uint8_t type = u8(c);
        size_t n = take(c, u8(c), &p);
        at = begin(b, type);
        (void)ph_buf_append(b, p, n);
        end(b, at);
        if (dir && type == 'D')
            foreign_rows = 1;
        return dir;
    }
    case 1: { /* Query */
        const char *sql = sqls[u8(c) % NSQL];
        at = begin(b, 'Q');
        put_str(b, sql);
        end(b, at);
        *watch = watchable(sql);
        return 0;
    }
    case 2: { /* Parse */
        uint8_t k = u8(c), np = u8(c) % 4;
        at = begin(b, 'P');
        put_str(b, names[k % 3]);
        put_str(b, sqls[(k >> 2) % NSQL]);
        *watch = watchable(sqls[(k >> 2) % NSQL]);
        (void)ph_buf_append_u16(b, np);
        for (uint8_t i = 0; i < np; i++) {
            static const uint32_t t[4] = {0, 17, 23, 25};
            (void)ph_buf_append_u32(b, t[u8(c) % 4]);
        }
        end(b, at);
        return 0;
    }
    case 3: { /* Bind */
        uint8_t k = u8(c), nf = u8(c) % 4, np = u8(c) % 4, nr = u8(c) % 3;
        at = begin(b, 'B');
        put_str(b, names[k % 3]);
        put_str(b, names[(k >> 2) % 3]);
        (void)ph_buf_append_u16(b, nf);
        for (uint8_t i = 0; i < nf; i++)
            (void)ph_buf_append_u16(b, u8(c) % 3);
        (void)ph_buf_append_u16(b, np);
        for (uint8_t i = 0; i < np; i++) {
            const uint8_t *p;
            uint8_t l = u8(c);
            if (l == 0xff) {
                (void)ph_buf_append_u32(b, 0xFFFFFFFFu);
                continue;
            }
            size_t n = take(c, l % 16, &p);
            (void)ph_buf_append_u32(b, (uint32_t)n);
            (void)ph_buf_append(b, p, n);
        }
        (void)ph_buf_append_u16(b, nr);
        for (uint8_t i = 0; i < nr; i++)
            (void)ph_buf_append_u16(b, u8(c) % 2);
        end(b, at);
        return 0;
    }
    case 4: { /* Describe / Execute / Close / Sync / Flush */
        uint8_t k = u8(c);
        switch (k % 5) {
        case 0:
        case 2:
            at = begin(b, k % 5 == 0 ? 'D' : 'C');
            (void)ph_buf_append_u8(b, k & 0x10 ? 'S' : 'P');
            put_str(b, names[(k >> 5) % 3]);
            break;
        case 1:
            at = begin(b, 'E');
            put_str(b, names[(k >> 5) % 3]);
            (void)ph_buf_append_u32(b, k & 0x10 ? 1 : 0);
            break;
        case 3:
            at = begin(b, 'S');
            break;
        default:
            at = begin(b, 'H');
            break;
        }
        end(b, at);
        return 0;
    }
    case 5: { /* RowDescription */
        uint8_t n = u8(c) % 5;
        at = begin(b, 'T');
        (void)ph_buf_append_u16(b, n);
        for (uint8_t i = 0; i < n; i++) {
            uint8_t k = u8(c);
            static const uint32_t tabs[3] = {0, 16384, 16400};
            static const uint32_t types[3] = {17, 25, 23};
            put_str(b, "f");
            (void)ph_buf_append_u32(b, tabs[k % 3]);
            (void)ph_buf_append_u16(b, (uint16_t)((k >> 2) % 6));
            (void)ph_buf_append_u32(b, types[(k >> 5) % 3]);
            (void)ph_buf_append_u16(b, 0xffff);
            (void)ph_buf_append_u32(b, 0xffffffffu);
            (void)ph_buf_append_u16(b, (k >> 7) & 1);
        }
        end(b, at);
        return 1;
    }
    case 6: { /* DataRow */
        foreign_rows = 1;
        uint8_t n = u8(c) % 5;
        at = begin(b, 'D');
        (void)ph_buf_append_u16(b, n);
        for (uint8_t i = 0; i < n; i++)
            put_value(c, b, e);
        end(b, at);
        return 1;
    }
    case 7: { /* small server messages */
        static const char types[] = "123nsCIZEGHc";
        uint8_t k = u8(c);
        char t = types[k % (sizeof types - 1)];
        at = begin(b, (uint8_t)t);
        if (t == 'C')
            put_str(b, "SELECT 1");
        else if (t == 'Z')
            (void)ph_buf_append_u8(b, "ITE"[(k >> 4) % 3]);
        else if (t == 'E')
            (void)ph_buf_append(b, "SERROR\0C42000\0Mx\0", 18);
        else if (t == 'G' || t == 'H') {
            uint8_t n = u8(c) % 6;
            (void)ph_buf_append_u8(b, (k >> 7) & 1);
            (void)ph_buf_append_u16(b, n);
            for (uint8_t i = 0; i < n; i++)
                (void)ph_buf_append_u16(b, (k >> 7) & 1);
        }
        end(b, at);
        return 1;
    }
    case 8:
        catalog_answer(b);
        return 1;
    case 9: { /* ParameterStatus / ParameterDescription */
        uint8_t k = u8(c);
        if (k & 1) {
            at = begin(b, 'S');
            put_str(b, k & 2 ? "standard_conforming_strings" : "TimeZone");
            put_str(b, k & 4 ? "off" : "UTC");
        } else {
            uint8_t n = u8(c) % 4;
            at = begin(b, 't');
            (void)ph_buf_append_u16(b, n);
            for (uint8_t i = 0; i < n; i++)
                (void)ph_buf_append_u32(b, 17);
        }
        end(b, at);
        return 1;
    }
    default: { /* COPY data / done / fail, either direction */
        static const char *const rows[] = {"a@x\tAl\n", "\\N\t\\N\n", "1\t2\t3\n",
                                           "\\\\x0102\t\\\\x01\n", "\\.\n"};
        uint8_t k = u8(c);
        char t = "dddcf"[k % 5];
        at = begin(b, (uint8_t)t);
        if (t == 'd')
            (void)ph_buf_append(b, rows[(k >> 3) % 5], strlen(rows[(k >> 3) % 5]));
        else if (t == 'f')
            put_str(b, "stop");
        end(b, at);
        return dir;
    }
    }
}

/* ---- driving ----------------------------------------------------------------------------------
 */

static void drain_check(pg_outq *q, int watch)
{
    ph_buf all = {0};
    struct iovec iov[64];
    while (!pg_outq_empty(q)) {
        size_t k = pg_outq_iov(q, iov, 64), total = 0;
        for (size_t i = 0; i < k; i++) {
            (void)ph_buf_append(&all, iov[i].iov_base, iov[i].iov_len);
            total += iov[i].iov_len;
        }
        pg_outq_consume(q, total);
    }
    size_t off = 0;
    while (off < all.len) { /* whole messages only */
        if (all.len - off < 5)
            abort();
        uint32_t l = ph_get_u32(all.data + off + 1);
        if (l < 4 || all.len - off - 1 < l)
            abort();
        off += 1 + l;
    }
    if (watch && all.len && memmem(all.data, all.len, SECRET, strlen(SECRET)))
        abort(); /* a protected literal went upstream in the clear */
    ph_buf_free(&all);
}

static void feed(ph_session *s, pg_framer *f, int c2s, const ph_buf *b, int watch)
{
    static const pgf_hooks hc = {ph_session_c2s_header, ph_session_c2s_message};
    static const pgf_hooks hs = {ph_session_s2c_header, ph_session_s2c_message};
    pg_outq q = {0};
    size_t used, need;
    pgf_status st = pgf_feed(f, b->data, b->len, c2s ? &hc : &hs, s, &q, &used, &need);
    drain_check(&q, watch && c2s);
    pg_outq_clear(&q);
    if (st != PGF_OK)
        pgf_init(f, 1u << 20); /* the proxy would close; start a fresh stream */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    env *e = global_env();
    ph_session *s = ph_session_new(e->eng);
    if (!s)
        return 0;
    pg_framer fc, fs;
    pgf_init(&fc, 1u << 20);
    pgf_init(&fs, 1u << 20);
    ph_buf b = {0};
    size_t at = begin(&b, 'Z');
    (void)ph_buf_append_u8(&b, 'I');
    end(&b, at);
    feed(s, &fs, 0, &b, 0);
    foreign_rows = 0;
    in c = {data, size};
    for (int rounds = 0; c.n && rounds < 256; rounds++) {
        int watch;
        b.len = 0;
        int dir = build(&c, e, &b, &watch);
        feed(s, dir ? &fs : &fc, !dir, &b, watch);
    }
    ph_buf_free(&b);
    ph_session_free(s);
    return 0;
}
