/*
 * test_engine_fixture.h — shared fixture for the session engine's unit
 * tests (test_engine*.c): the seed's financial-SaaS schema with real keys
 * made from fixed test DEKs, a session driven through the real framer in
 * both directions, builders for the protocol messages a client and a server
 * send (written independently of the engine's own builders), the catalog
 * answer a server would give, a reader that splits the engine's output into
 * messages, and helpers that compute the exact envelopes the engine must
 * produce (deterministic and OPE modes) or open them (randomized).
 */
#ifndef PHANTOM_TEST_ENGINE_FIXTURE_H
#define PHANTOM_TEST_ENGINE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/bytes.h"
#include "crypto/encode.h"
#include "crypto/field.h"
#include "engine/keysource.h"
#include "engine/session.h"
#include "protocol/pg/framer.h"
#include "protocol/pg/outq.h"
#include "schema/schema.h"

static const char fx_yaml[] = "encrypt:\n"
                              "  customers:\n"
                              "    - email: deterministic\n"
                              "    - full_name\n"
                              "    - phone\n"
                              "    - column: address\n"
                              "      type: jsonb\n"
                              "    - column: signup_day\n"
                              "      mode: ope\n"
                              "      type: date\n"
                              "    - column: age\n"
                              "      mode: ope\n"
                              "      type: int4\n"
                              "    - column: balance\n"
                              "      mode: ope\n"
                              "      type: numeric(12,2)\n"
                              "  payments:\n"
                              "    - column: customer_email\n"
                              "      mode: deterministic\n"
                              "      key: customers.email\n"
                              "    - card_number\n"
                              "    - column: paid_on\n"
                              "      mode: ope\n"
                              "      type: date\n";

/* Catalog: customers is OID 16384, payments 16400. */
#define FX_CUST 16384u
#define FX_PAY  16400u
static const char *const fx_cust_cols[] = {
    "id", "email", "full_name", "phone", "address", "signup_day", "age", "balance", "plan_tier"};
static const char *const fx_pay_cols[] = {"id", "customer_email", "card_number", "amount",
                                          "paid_on"};

typedef struct fx {
    ph_schema *schema;
    ph_keysource *ks;
    ph_engine *eng;
    ph_session *s;
    pg_framer c2s, s2c;
    int z_kept; /* ReadyForQuery messages the engine let through */
} fx;

/* ---- message builders ---------------------------------------------------------------- */

typedef struct mb {
    ph_buf *b;
    size_t start;
} mb;

static inline mb mb_begin(ph_buf *b, char type)
{
    mb m = {b, b->len};
    assert_int_equal(ph_buf_append_u8(b, (uint8_t)type), 0);
    assert_int_equal(ph_buf_append_u32(b, 0), 0);
    return m;
}

static inline void mb_u8(mb *m, uint8_t v)
{
    assert_int_equal(ph_buf_append_u8(m->b, v), 0);
}

static inline void mb_u16(mb *m, uint16_t v)
{
    assert_int_equal(ph_buf_append_u16(m->b, v), 0);
}

static inline void mb_u32(mb *m, uint32_t v)
{
    assert_int_equal(ph_buf_append_u32(m->b, v), 0);
}

static inline void mb_str(mb *m, const char *s)
{
    assert_int_equal(ph_buf_append(m->b, s, strlen(s) + 1), 0);
}

static inline void mb_raw(mb *m, const void *p, size_t n)
{
    assert_int_equal(ph_buf_append(m->b, p, n), 0);
}

static inline void mb_end(mb *m)
{
    ph_put_u32(m->b->data + m->start + 1, (uint32_t)(m->b->len - m->start - 1));
}

static inline void put_query(ph_buf *b, const char *sql)
{
    mb m = mb_begin(b, 'Q');
    mb_str(&m, sql);
    mb_end(&m);
}

static inline void put_parse(ph_buf *b, const char *name, const char *sql, uint16_t n,
                             const uint32_t *types)
{
    mb m = mb_begin(b, 'P');
    mb_str(&m, name);
    mb_str(&m, sql);
    mb_u16(&m, n);
    for (uint16_t i = 0; i < n; i++)
        mb_u32(&m, types[i]);
    mb_end(&m);
}

/* A parameter: NULL value = SQL NULL; len -1 = strlen. */
typedef struct fx_param {
    const void *v;
    int len;
    uint16_t fmt;
} fx_param;

static inline void put_bind(ph_buf *b, const char *portal, const char *stmt, uint16_t nf,
                            const uint16_t *fmts, uint16_t np, const fx_param *ps, uint16_t nr,
                            const uint16_t *rfmts)
{
    mb m = mb_begin(b, 'B');
    mb_str(&m, portal);
    mb_str(&m, stmt);
    mb_u16(&m, nf);
    for (uint16_t i = 0; i < nf; i++)
        mb_u16(&m, fmts[i]);
    mb_u16(&m, np);
    for (uint16_t i = 0; i < np; i++) {
        if (!ps[i].v) {
            mb_u32(&m, 0xFFFFFFFFu);
            continue;
        }
        size_t l = ps[i].len < 0 ? strlen(ps[i].v) : (size_t)ps[i].len;
        mb_u32(&m, (uint32_t)l);
        mb_raw(&m, ps[i].v, l);
    }
    mb_u16(&m, nr);
    for (uint16_t i = 0; i < nr; i++)
        mb_u16(&m, rfmts[i]);
    mb_end(&m);
}

static inline void put_target(ph_buf *b, char type, char what, const char *name)
{
    mb m = mb_begin(b, type);
    mb_u8(&m, (uint8_t)what);
    mb_str(&m, name);
    mb_end(&m);
}

static inline void put_execute(ph_buf *b, const char *portal, uint32_t max)
{
    mb m = mb_begin(b, 'E');
    mb_str(&m, portal);
    mb_u32(&m, max);
    mb_end(&m);
}

static inline void put_empty(ph_buf *b, char type)
{
    mb m = mb_begin(b, type);
    mb_end(&m);
}

static inline void put_ready(ph_buf *b, char status)
{
    mb m = mb_begin(b, 'Z');
    mb_u8(&m, (uint8_t)status);
    mb_end(&m);
}

static inline void put_complete(ph_buf *b, const char *tag)
{
    mb m = mb_begin(b, 'C');
    mb_str(&m, tag);
    mb_end(&m);
}

static inline void put_param_status(ph_buf *b, const char *name, const char *val)
{
    mb m = mb_begin(b, 'S');
    mb_str(&m, name);
    mb_str(&m, val);
    mb_end(&m);
}

static inline void put_error(ph_buf *b, const char *code, const char *msg)
{
    mb m = mb_begin(b, 'E');
    mb_u8(&m, 'S');
    mb_str(&m, "ERROR");
    mb_u8(&m, 'C');
    mb_str(&m, code);
    mb_u8(&m, 'M');
    mb_str(&m, msg);
    mb_u8(&m, 0);
    mb_end(&m);
}

typedef struct fx_field {
    const char *name;
    uint32_t table;
    int16_t attnum;
    uint32_t type;
    int16_t typlen;
    int32_t typmod;
    int16_t fmt;
} fx_field;

static inline void put_rowdesc(ph_buf *b, uint16_t n, const fx_field *f)
{
    mb m = mb_begin(b, 'T');
    mb_u16(&m, n);
    for (uint16_t i = 0; i < n; i++) {
        mb_str(&m, f[i].name);
        mb_u32(&m, f[i].table);
        mb_u16(&m, (uint16_t)f[i].attnum);
        mb_u32(&m, f[i].type);
        mb_u16(&m, (uint16_t)f[i].typlen);
        mb_u32(&m, (uint32_t)f[i].typmod);
        mb_u16(&m, (uint16_t)f[i].fmt);
    }
    mb_end(&m);
}

/* A DataRow; values as (pointer, length), NULL pointer = SQL NULL. */
typedef struct fx_val {
    const void *v;
    size_t len;
} fx_val;

static inline void put_datarow(ph_buf *b, uint16_t n, const fx_val *v)
{
    mb m = mb_begin(b, 'D');
    mb_u16(&m, n);
    for (uint16_t i = 0; i < n; i++) {
        if (!v[i].v) {
            mb_u32(&m, 0xFFFFFFFFu);
            continue;
        }
        mb_u32(&m, (uint32_t)v[i].len);
        mb_raw(&m, v[i].v, v[i].len);
    }
    mb_end(&m);
}

static inline fx_val fx_str(const char *s)
{
    return (fx_val){s, strlen(s)};
}

/* ---- reading the engine's output ------------------------------------------------------ */

typedef struct fx_msg {
    char type;
    const uint8_t *body; /* after the length word */
    size_t len;          /* body length */
} fx_msg;

typedef struct fx_msgs {
    fx_msg m[64];
    size_t n;
} fx_msgs;

static inline void fx_split(const ph_buf *b, fx_msgs *out)
{
    size_t off = 0;
    out->n = 0;
    while (off < b->len) {
        assert_true(b->len - off >= 5);
        uint32_t l = ph_get_u32(b->data + off + 1);
        assert_true(l >= 4 && b->len - off - 1 >= l);
        assert_true(out->n < 64);
        out->m[out->n++] = (fx_msg){(char)b->data[off], b->data + off + 5, l - 4};
        off += 1 + l;
    }
}

/* The types of the messages, as a string ("1 2 D C Z" -> "12DCZ"). */
static inline void fx_types(const fx_msgs *m, char *out, size_t cap)
{
    size_t i;
    for (i = 0; i < m->n && i + 1 < cap; i++)
        out[i] = m->m[i].type;
    out[i] = '\0';
}

/* Splits b into *ms and asserts the message types are exactly want. */
static inline void fx_expect_types(const ph_buf *b, fx_msgs *ms, const char *want)
{
    char types[65];
    fx_split(b, ms);
    fx_types(ms, types, sizeof types);
    assert_string_equal(types, want);
}

typedef struct fx_rd {
    const uint8_t *p;
    size_t n, off;
} fx_rd;

static inline fx_rd fx_reader(const fx_msg *m)
{
    return (fx_rd){m->body, m->len, 0};
}

static inline uint16_t fx_u16(fx_rd *r)
{
    assert_true(r->n - r->off >= 2);
    uint16_t v = ph_get_u16(r->p + r->off);
    r->off += 2;
    return v;
}

static inline uint32_t fx_u32(fx_rd *r)
{
    assert_true(r->n - r->off >= 4);
    uint32_t v = ph_get_u32(r->p + r->off);
    r->off += 4;
    return v;
}

static inline const char *fx_cstr(fx_rd *r)
{
    const char *s = (const char *)r->p + r->off;
    const uint8_t *z = memchr(r->p + r->off, 0, r->n - r->off);
    assert_non_null(z);
    r->off = (size_t)(z - r->p) + 1;
    return s;
}

static inline const uint8_t *fx_bytes(fx_rd *r, size_t n)
{
    assert_true(r->n - r->off >= n);
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}

/* Field i of a DataRow message: returns its length (-1 NULL), *v its bytes. */
static inline int fx_datarow_field(const fx_msg *m, uint16_t i, const uint8_t **v)
{
    fx_rd r = fx_reader(m);
    uint16_t n = fx_u16(&r);
    assert_true(i < n);
    for (uint16_t k = 0;; k++) {
        uint32_t l = fx_u32(&r);
        const uint8_t *p = l == 0xFFFFFFFFu ? NULL : fx_bytes(&r, l);
        if (k == i) {
            *v = p;
            return p ? (int)l : -1;
        }
    }
}

static inline void fx_expect_field_str(const fx_msg *m, uint16_t i, const char *want)
{
    const uint8_t *v;
    int l = fx_datarow_field(m, i, &v);
    assert_int_equal(l, (int)strlen(want));
    assert_memory_equal(v, want, strlen(want));
}

/* The ErrorResponse field of the given code ('C', 'M'). */
static inline const char *fx_error_field(const fx_msg *m, char code)
{
    fx_rd r = fx_reader(m);
    while (r.off < r.n) {
        char c = (char)r.p[r.off++];
        if (!c)
            break;
        const char *v = fx_cstr(&r);
        if (c == code)
            return v;
    }
    return NULL;
}

/* ---- driving the session ----------------------------------------------------------------- */

static inline void fx_drain(pg_outq *q, ph_buf *sink)
{
    struct iovec iov[64];
    while (!pg_outq_empty(q)) {
        size_t k = pg_outq_iov(q, iov, 64), total = 0;
        for (size_t i = 0; i < k; i++) {
            assert_int_equal(ph_buf_append(sink, iov[i].iov_base, iov[i].iov_len), 0);
            total += iov[i].iov_len;
        }
        pg_outq_consume(q, total);
    }
}

/* Feeds whole messages through the real framer with the engine's hooks;
 * returns the framer status and appends what would be written to out. */
static inline pgf_status fx_feed_dir(fx *f, bool c2s, const ph_buf *in, ph_buf *out)
{
    static const pgf_hooks hc = {ph_session_c2s_header, ph_session_c2s_message};
    static const pgf_hooks hs = {ph_session_s2c_header, ph_session_s2c_message};
    pg_outq q = {0};
    size_t used = 0, need = 0;
    pgf_status st = pgf_feed(c2s ? &f->c2s : &f->s2c, in->data, in->len, c2s ? &hc : &hs, f->s, &q,
                             &used, &need);
    size_t before = out->len;
    fx_drain(&q, out);
    pg_outq_clear(&q);
    if (st == PGF_OK) {
        assert_int_equal(used, in->len);
        assert_int_equal(need, 0);
    }
    if (!c2s) { /* count ReadyForQuery messages that reached the client */
        ph_buf tail = {out->data + before, out->len - before, 0};
        fx_msgs ms;
        fx_split(&tail, &ms);
        for (size_t i = 0; i < ms.n; i++)
            f->z_kept += ms.m[i].type == 'Z';
    }
    return st;
}

static inline void fx_c2s(fx *f, const ph_buf *in, ph_buf *out)
{
    assert_int_equal(fx_feed_dir(f, true, in, out), PGF_OK);
}

static inline void fx_s2c(fx *f, const ph_buf *in, ph_buf *out)
{
    assert_int_equal(fx_feed_dir(f, false, in, out), PGF_OK);
}

/* The DEK of a key domain: a fixed pattern derived from its name. */
static inline void fx_dek(const char *domain, uint8_t dek[PH_FIELD_DEK_LEN])
{
    for (size_t i = 0; i < PH_FIELD_DEK_LEN; i++)
        dek[i] = (uint8_t)(i * 7 + strlen(domain) * 13 + (uint8_t)domain[i % strlen(domain)]);
}

static inline void fx_add_keys(fx *f)
{
    for (size_t t = 0; t < f->schema->ntables; t++)
        for (size_t c = 0; c < f->schema->tables[t]->ncolumns; c++) {
            const char *d = f->schema->tables[t]->columns[c]->key_domain;
            if (ph_keysource_write_key(f->ks, d))
                continue;
            uint8_t dek[PH_FIELD_DEK_LEN];
            fx_dek(d, dek);
            assert_int_equal(ph_keysource_add(f->ks, d, 1, dek, 1), 0);
        }
}

/* The server's login answer (passes untouched, authenticates the session). */
static inline void fx_login(fx *f)
{
    ph_buf in = {0}, out = {0};
    mb m = mb_begin(&in, 'R');
    mb_u32(&m, 0);
    mb_end(&m);
    put_param_status(&in, "standard_conforming_strings", "on");
    put_param_status(&in, "TimeZone", "UTC");
    m = mb_begin(&in, 'K');
    mb_u32(&m, 42);
    mb_u32(&m, 4242);
    mb_end(&m);
    put_ready(&in, 'I');
    fx_s2c(f, &in, &out);
    assert_int_equal(out.len, in.len);
    assert_memory_equal(out.data, in.data, in.len);
    f->z_kept = 0;
    ph_buf_free(&in);
    ph_buf_free(&out);
}

static inline void fx_catalog_rows(ph_buf *b, uint32_t oid, const char *rel,
                                   const char *const *cols, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char o[16], a[8];
        snprintf(o, sizeof o, "%u", oid);
        snprintf(a, sizeof a, "%zu", i + 1);
        fx_val v[5] = {fx_str(o), fx_str(a), fx_str("public"), fx_str(rel), fx_str(cols[i])};
        put_datarow(b, 5, v);
    }
}

/* The server's answer to the injected catalog query. */
static inline void fx_catalog_answer(ph_buf *b)
{
    fx_field f[5] = {{"oid", 1259, -2, 26, 4, -1, 0},
                     {"attnum", 1249, 6, 21, 2, -1, 0},
                     {"nspname", 2615, 2, 19, 64, -1, 0},
                     {"relname", 1259, 2, 19, 64, -1, 0},
                     {"attname", 1249, 2, 19, 64, -1, 0}};
    put_rowdesc(b, 5, f);
    fx_catalog_rows(b, FX_CUST, "customers", fx_cust_cols, 9);
    fx_catalog_rows(b, FX_PAY, "payments", fx_pay_cols, 5);
    put_complete(b, "SELECT 14");
    put_ready(b, 'I');
}

/* True when msg is the injected catalog Query. */
static inline bool fx_is_catalog_query(const fx_msg *m)
{
    return m->type == 'Q' &&
           strstr((const char *)m->body, "FROM pg_catalog.pg_attribute") != NULL &&
           strstr((const char *)m->body, "(E'public', E'customers')") != NULL;
}

static inline int fx_setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    char err[256];
    assert_non_null(f);
    assert_int_equal(
        ph_schema_load_buffer(&f->schema, fx_yaml, strlen(fx_yaml), "fx.yaml", err, sizeof err), 0);
    f->ks = ph_keysource_new();
    assert_non_null(f->ks);
    fx_add_keys(f);
    f->eng = ph_engine_new(f->schema, f->ks);
    assert_non_null(f->eng);
    f->s = ph_session_new(f->eng);
    assert_non_null(f->s);
    pgf_init(&f->c2s, 1u << 26);
    pgf_init(&f->s2c, 1u << 26);
    fx_login(f);
    *state = f;
    return 0;
}

static inline int fx_teardown(void **state)
{
    fx *f = *state;
    ph_session_free(f->s);
    ph_engine_free(f->eng);
    ph_keysource_free(f->ks);
    ph_schema_free(f->schema);
    free(f);
    return 0;
}

/* Sends a first statement (not protected) so the catalog is injected and
 * answered; the session then knows the catalog. */
static inline void fx_load_catalog(fx *f)
{
    ph_buf in = {0}, up = {0}, ans = {0}, down = {0};
    put_query(&in, "SELECT 1");
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    fx_split(&up, &ms);
    assert_int_equal(ms.n, 2);
    assert_true(fx_is_catalog_query(&ms.m[0]));
    assert_int_equal(ms.m[1].len + 5, in.len);
    assert_memory_equal(ms.m[1].body - 5, in.data, in.len);
    fx_catalog_answer(&ans);
    size_t cat_len = ans.len;
    fx_field one = {"?column?", 0, 0, 23, 4, -1, 0};
    put_rowdesc(&ans, 1, &one);
    fx_val v = fx_str("1");
    put_datarow(&ans, 1, &v);
    put_complete(&ans, "SELECT 1");
    put_ready(&ans, 'I');
    fx_s2c(f, &ans, &down);
    assert_int_equal(down.len, ans.len - cat_len); /* the catalog answer is swallowed */
    assert_memory_equal(down.data, ans.data + cat_len, down.len);
    ph_buf_free(&in);
    ph_buf_free(&up);
    ph_buf_free(&ans);
    ph_buf_free(&down);
}

static inline const ph_field_key *fx_key(fx *f, const char *table, const char *col)
{
    const ph_schema_column *c = ph_schema_lookup(f->schema, NULL, table, col);
    assert_non_null(c);
    const ph_field_key *k = ph_keysource_write_key(f->ks, c->key_domain);
    assert_non_null(k);
    return k;
}

/* The deterministic envelope of a text value. */
static inline void fx_det(fx *f, const char *table, const char *col, const char *v, ph_buf *out)
{
    assert_int_equal(ph_field_encrypt_buf(fx_key(f, table, col), PH_FIELD_DETERMINISTIC,
                                          (const uint8_t *)v, strlen(v), out),
                     PH_FIELD_OK);
}

/* The randomized envelope of a text value (any of them decrypts). */
static inline void fx_rand(fx *f, const char *table, const char *col, const char *v, ph_buf *out)
{
    assert_int_equal(ph_field_encrypt_buf(fx_key(f, table, col), PH_FIELD_RANDOMIZED,
                                          (const uint8_t *)v, strlen(v), out),
                     PH_FIELD_OK);
}

static inline void fx_ope(fx *f, const char *table, const char *col, int64_t v, ph_buf *out)
{
    uint8_t env[PH_FIELD_OPE_ENVELOPE];
    assert_int_equal(ph_field_encrypt_ope(fx_key(f, table, col), v, env), PH_FIELD_OK);
    assert_int_equal(ph_buf_append(out, env, sizeof env), 0);
}

/* bytea text output (hex) of b, NUL-terminated in out. */
static inline void fx_hex(const ph_buf *b, ph_buf *out, bool quoted_literal)
{
    static const char hx[] = "0123456789abcdef";
    if (quoted_literal)
        assert_int_equal(ph_buf_append(out, "'", 1), 0);
    assert_int_equal(ph_buf_append(out, "\\x", 2), 0);
    for (size_t i = 0; i < b->len; i++) {
        char two[2] = {hx[b->data[i] >> 4], hx[b->data[i] & 15]};
        assert_int_equal(ph_buf_append(out, two, 2), 0);
    }
    if (quoted_literal)
        assert_int_equal(ph_buf_append(out, "'::bytea", 8), 0);
    assert_int_equal(ph_buf_append_u8(out, 0), 0);
    out->len--;
}

/* True if needle occurs in hay[0..n). */
static inline bool fx_contains(const uint8_t *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; k <= n && i <= n - k; i++)
        if (memcmp(hay + i, needle, k) == 0)
            return true;
    return false;
}

/* ---- shared helpers of the engine tests ------------------------------------------------- */

static inline void fx_free_all(ph_buf **bufs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ph_buf_free(bufs[i]);
}

#define FREE_ALL(...)                                                                              \
    do {                                                                                           \
        ph_buf *list_[] = {__VA_ARGS__};                                                           \
        fx_free_all(list_, sizeof list_ / sizeof list_[0]);                                        \
    } while (0)

/* The statement text and parameter types of an upstream Parse. */
static inline uint16_t fx_parse_types(const fx_msg *m, uint32_t *types, const char **sql)
{
    fx_rd r = fx_reader(m);
    (void)fx_cstr(&r);
    *sql = fx_cstr(&r);
    uint16_t n = fx_u16(&r);
    for (uint16_t i = 0; i < n; i++)
        types[i] = fx_u32(&r);
    return n;
}

/* The client's next statement sql goes upstream behind a fresh catalog query. */
static inline void fx_expect_catalog_first(fx *f, const char *sql)
{
    ph_buf in = {0}, up = {0};
    put_query(&in, sql);
    fx_c2s(f, &in, &up);
    fx_msgs ms;
    fx_split(&up, &ms);
    assert_int_equal(ms.n, 2);
    assert_true(fx_is_catalog_query(&ms.m[0]));
    FREE_ALL(&in, &up);
}

#endif
