/*
 * catalog.c — the session's catalog map of protected tables.
 *
 * Owns: the catalog query the engine injects on the client's own upstream
 * connection (the proxy has no credentials of its own), reading its answer
 * (swallowed by session.c) into a new map, and swapping it in once the
 * answer completed. The map gives (table OID, attnum) -> protected column,
 * for RowDescription fields, and each protected table's column names in
 * attribute order, for INSERT without a column list and COPY without one.
 * A failed load keeps the previous map (if any) and is retried at the next
 * safe point.
 */
#include "engine/engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include "engine/wire.h"

static const char q_head[] =
    "SELECT c.oid, a.attnum, n.nspname, c.relname, a.attname FROM pg_catalog.pg_attribute a "
    "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = "
    "c.relnamespace WHERE a.attnum > 0 AND NOT a.attisdropped AND (n.nspname, c.relname) IN (";
static const char q_tail[] = ") ORDER BY c.oid, a.attnum";

static int put_literal(ph_buf *b, const char *s)
{
    if (ph_buf_append(b, "E'", 2))
        return -1;
    for (; *s; s++) {
        if ((*s == '\'' || *s == '\\') && ph_buf_append_u8(b, (uint8_t)*s))
            return -1;
        if (ph_buf_append_u8(b, (uint8_t)*s))
            return -1;
    }
    return ph_buf_append_u8(b, '\'');
}

char *eng_catalog_sql(const ph_schema *s, size_t *len)
{
    ph_buf b = {0};
    int rc = ph_buf_append(&b, q_head, strlen(q_head));
    for (size_t i = 0; rc == 0 && i < s->ntables; i++) {
        const ph_schema_table *t = s->tables[i];
        rc = (i ? ph_buf_append(&b, ", (", 3) : ph_buf_append(&b, "(", 1)) ||
             put_literal(&b, t->schema) || ph_buf_append(&b, ", ", 2) || put_literal(&b, t->name) ||
             ph_buf_append(&b, ")", 1);
    }
    if (rc == 0)
        rc = ph_buf_append(&b, q_tail, strlen(q_tail)) || ph_buf_append_u8(&b, 0);
    if (rc != 0) {
        ph_buf_free(&b);
        return NULL;
    }
    *len = b.len - 1;
    return (char *)b.data;
}

void eng_catalog_clear(eng_catalog *c)
{
    for (size_t i = 0; i < c->ntabs; i++) {
        for (size_t k = 0; k < c->tabs[i].n; k++)
            free(c->tabs[i].names[k]);
        free(c->tabs[i].names);
    }
    free(c->tabs);
    free(c->atts);
    memset(c, 0, sizeof *c);
}

const ph_schema_column *eng_catalog_column(const eng_catalog *c, uint32_t oid, int16_t attnum)
{
    for (size_t i = 0; i < c->natts; i++)
        if (c->atts[i].oid == oid && c->atts[i].attnum == attnum)
            return c->atts[i].col;
    return NULL;
}

const eng_cat_table *eng_catalog_table(const eng_catalog *c, const ph_schema_table *t)
{
    for (size_t i = 0; i < c->ntabs; i++)
        if (c->tabs[i].t == t)
            return &c->tabs[i];
    return NULL;
}

ssize_t eng_rw_columns(void *ud, const ph_schema_table *table, const char *const **names)
{
    ph_session *s = ud;
    const eng_cat_table *ct = s->cat_have ? eng_catalog_table(&s->cat, table) : NULL;
    if (!ct)
        return -1;
    *names = (const char *const *)ct->names;
    return (ssize_t)ct->n;
}

int eng_inject_catalog(ph_session *s, ph_buf *rep)
{
    if (eng_put_query(rep, s->e->catalog_sql, s->e->catalog_len) != 0 ||
        !eng_ex_push(s, EX_CATALOG))
        return -1;
    eng_catalog_clear(&s->building);
    s->cat_bad_row = false;
    s->cat_state = CAT_PENDING;
    s->cat_stale = false;
    return 0;
}

/* ---- reading the answer ---------------------------------------------------------------- */

static eng_cat_table *table_for(eng_catalog *c, const ph_schema_table *t, uint32_t oid)
{
    for (size_t i = 0; i < c->ntabs; i++)
        if (c->tabs[i].oid == oid)
            return c->tabs[i].t == t ? &c->tabs[i] : NULL;
    eng_cat_table *v = ph_array_grow(c->tabs, c->ntabs, &c->captabs, sizeof *v, 4);
    if (!v)
        return NULL;
    c->tabs = v;
    eng_cat_table *ct = &c->tabs[c->ntabs++];
    memset(ct, 0, sizeof *ct);
    ct->t = t;
    ct->oid = oid;
    return ct;
}

static int add_name(eng_cat_table *ct, const char *name)
{
    char **v = ph_array_grow(ct->names, ct->n, &ct->cap, sizeof *v, 8);
    if (!v)
        return -1;
    ct->names = v;
    if (!(ct->names[ct->n] = strdup(name)))
        return -1;
    ct->n++;
    return 0;
}

static int add_att(eng_catalog *c, uint32_t oid, int16_t attnum, const ph_schema_column *col)
{
    eng_cat_att *v = ph_array_grow(c->atts, c->natts, &c->capatts, sizeof *v, 16);
    if (!v)
        return -1;
    c->atts = v;
    c->atts[c->natts++] = (eng_cat_att){oid, attnum, col};
    return 0;
}

/* Copies a text field into a NUL-terminated buffer; -1 if NULL or too long. */
static int field(eng_rd *r, char *out, size_t cap)
{
    uint32_t len = eng_rd_u32(r);
    if (r->bad || len == 0xFFFFFFFFu || len >= cap)
        return -1;
    const uint8_t *p = eng_rd_bytes(r, len);
    if (!p || memchr(p, 0, len))
        return -1;
    memcpy(out, p, len);
    out[len] = '\0';
    return 0;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    if (!*s || *s == '-' || *s == '+')
        return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || v > max)
        return -1;
    *out = v;
    return 0;
}

void eng_catalog_row(ph_session *s, const uint8_t *msg, uint32_t total)
{
    eng_rd r;
    char oid_s[16], att_s[8], nsp[256], rel[256], att[256];
    unsigned long oid, attnum;
    eng_rd_init(&r, msg, total);
    if (eng_rd_u16(&r) != 5 || field(&r, oid_s, sizeof oid_s) || field(&r, att_s, sizeof att_s) ||
        field(&r, nsp, sizeof nsp) || field(&r, rel, sizeof rel) || field(&r, att, sizeof att) ||
        parse_uint(oid_s, 0xFFFFFFFFu, &oid) || parse_uint(att_s, 32767, &attnum)) {
        s->cat_bad_row = true;
        return;
    }
    int amb = 0;
    const ph_schema_table *t = ph_schema_find_table(s->e->schema, nsp, rel, &amb);
    if (!t)
        return;
    eng_cat_table *ct = table_for(&s->building, t, (uint32_t)oid);
    if (!ct || add_name(ct, att) != 0) {
        s->cat_bad_row = true;
        return;
    }
    if ((int16_t)attnum > ct->max_attnum)
        ct->max_attnum = (int16_t)attnum;
    const ph_schema_column *col = ph_schema_find_column(t, att);
    if (col && add_att(&s->building, (uint32_t)oid, (int16_t)attnum, col) != 0)
        s->cat_bad_row = true;
}

/* Suspected OIDs the fresh catalog does not list are plain tables. */
static void confirm_suspects(ph_session *s)
{
    for (size_t i = 0; i < s->n_suspect; i++) {
        bool known = false;
        for (size_t k = 0; k < s->cat.ntabs && !known; k++)
            known = s->cat.tabs[k].oid == s->suspect_oids[i];
        if (!known) {
            if (s->n_plain == sizeof s->plain_oids / sizeof s->plain_oids[0])
                s->n_plain = 0; /* forget the oldest: at worst one more retry */
            s->plain_oids[s->n_plain++] = s->suspect_oids[i];
        }
    }
    s->n_suspect = 0;
}

void eng_catalog_done(ph_session *s, bool ok)
{
    if (ok && !s->cat_bad_row) {
        eng_catalog_clear(&s->cat);
        s->cat = s->building;
        memset(&s->building, 0, sizeof s->building);
        s->cat_state = CAT_OK;
        s->cat_have = true;
        s->cat_gen++;
        confirm_suspects(s);
        eng_plans_clear(s); /* INSERT plans used the old column lists */
    } else {
        eng_catalog_clear(&s->building);
        s->cat_state = CAT_FAILED;
    }
    s->cat_bad_row = false;
}
