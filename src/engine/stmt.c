/*
 * stmt.c — prepared statements, portals, result descriptions and the
 * name -> object maps the session keeps them in; see engine_internal.h.
 */
#include "engine/engine_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

/* ---- result descriptions --------------------------------------------------------- */

eng_rdesc *eng_rdesc_new(uint16_t n)
{
    eng_rdesc *d = ph_calloc(1, sizeof *d + (size_t)n * sizeof d->f[0]);
    if (d)
        d->n = n;
    return d;
}

eng_rdesc *eng_rdesc_copy(const eng_rdesc *d)
{
    eng_rdesc *c = eng_rdesc_new(d->n);
    if (c)
        memcpy(c, d, sizeof *d + (size_t)d->n * sizeof d->f[0]);
    return c;
}

/* ---- plans --------------------------------------------------------------------------- */

void eng_plan_unref(eng_plan *p)
{
    if (!p || --p->refs > 0)
        return;
    ph_rw_result_free(&p->res);
    free(p);
}

void eng_plans_clear(ph_session *s)
{
    eng_map_clear(&s->plans);
    eng_map_clear(&s->shapes);
}

/* ---- statements and portals -------------------------------------------------------- */

eng_stmt *eng_stmt_new(void)
{
    eng_stmt *st = ph_calloc(1, sizeof *st);
    if (st)
        st->refs = 1;
    return st;
}

void eng_stmt_unref(eng_stmt *st)
{
    if (!st || --st->refs > 0)
        return;
    eng_plan_unref(st->plan);
    free(st->ptype);
    free(st->desc);
    free(st->tenant);
    free(st);
}

eng_portal *eng_portal_new(void)
{
    eng_portal *p = ph_calloc(1, sizeof *p);
    if (p)
        p->refs = 1;
    return p;
}

void eng_portal_unref(eng_portal *p)
{
    if (!p || --p->refs > 0)
        return;
    eng_stmt_unref(p->stmt);
    free(p->resfmt);
    free(p->desc);
    free(p);
}

const ph_rw_stmt *eng_stmt_plan(const eng_stmt *st)
{
    return st && st->plan && st->plan->res.nstmts > 0 ? &st->plan->res.stmts[0] : NULL;
}

bool eng_stmt_protected_params(const eng_stmt *st)
{
    if (!st || !st->plan)
        return false;
    for (int i = 0; i < st->plan->res.nparams; i++)
        if (st->plan->res.params[i])
            return true;
    return false;
}

/* ---- maps ---------------------------------------------------------------------------- */

/* Names (statements, portals) are hashed byte by byte; past 16 bytes (the
 * plan and shape maps are keyed by whole statements, where a byte-at-a-time
 * hash was a visible share of a lookup) eight bytes per step. */
static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603u, w;
    size_t i = 0;
    for (; i < 16 && s[i]; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211u;
    if (i < 16)
        return (size_t)h;
    s += 16;
    size_t n = strlen(s);
    h ^= n;
    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9u;
        h ^= h >> 31;
    }
    w = 0;
    for (i = 0; i < n; i++)
        w |= (uint64_t)(unsigned char)s[i] << (8 * i);
    h = (h ^ w) * 0x94d049bb133111ebu;
    return (size_t)(h ^ (h >> 29));
}

void eng_map_init(eng_map *m, void (*unref)(void *))
{
    memset(m, 0, sizeof *m);
    m->unref = unref;
}

char *eng_name_dup(char inl[ENG_SHORT_NAME], const char *name)
{
    size_t n = strlen(name);
    if (n >= ENG_SHORT_NAME)
        return strdup(name);
    memcpy(inl, name, n + 1);
    return inl;
}

void eng_name_free(char *name, const char inl[ENG_SHORT_NAME])
{
    if (name != inl)
        free(name);
}

#define ENG_MAP_SPARE 8

/* An entry named name (a spare one when there is one), or NULL. */
static eng_map_ent *ent_new(eng_map *m, const char *name)
{
    eng_map_ent *e = m->spare;
    if (e) {
        m->spare = e->next;
        m->nspare--;
    } else if (!(e = malloc(sizeof *e))) {
        return NULL;
    }
    if (!(e->name = eng_name_dup(e->inl, name))) {
        free(e);
        return NULL;
    }
    return e;
}

/* Frees e's name and keeps e as a spare (or frees it). Not its value. */
static void ent_free(eng_map *m, eng_map_ent *e)
{
    eng_name_free(e->name, e->inl);
    if (m->nspare >= ENG_MAP_SPARE) {
        free(e);
        return;
    }
    e->next = m->spare;
    m->spare = e;
    m->nspare++;
}

void eng_map_clear(eng_map *m)
{
    for (size_t i = 0; i < m->nb; i++) {
        eng_map_ent *e = m->b[i];
        while (e) {
            eng_map_ent *next = e->next;
            m->unref(e->val);
            ent_free(m, e);
            e = next;
        }
    }
    free(m->b);
    m->b = NULL;
    m->nb = m->n = 0;
    while (m->spare) {
        eng_map_ent *e = m->spare;
        m->spare = e->next;
        free(e);
    }
    m->nspare = 0;
}

static eng_map_ent **find(const eng_map *m, const char *name)
{
    if (!m->nb)
        return NULL;
    eng_map_ent **pp = &m->b[hash(name) & (m->nb - 1)];
    while (*pp && strcmp((*pp)->name, name) != 0)
        pp = &(*pp)->next;
    return pp;
}

void *eng_map_get(const eng_map *m, const char *name)
{
    eng_map_ent **pp = find(m, name);
    return pp && *pp ? (*pp)->val : NULL;
}

static int grow(eng_map *m)
{
    size_t nb = m->nb ? m->nb * 2 : 16;
    eng_map_ent **b = ph_calloc(nb, sizeof *b);
    if (!b)
        return -1;
    for (size_t i = 0; i < m->nb; i++) {
        eng_map_ent *e = m->b[i];
        while (e) {
            eng_map_ent *next = e->next;
            size_t k = hash(e->name) & (nb - 1);
            e->next = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
    return 0;
}

int eng_map_put(eng_map *m, const char *name, void *val, void **prev)
{
    if (prev)
        *prev = NULL;
    eng_map_ent **pp = find(m, name);
    if (pp && *pp) {
        if (prev)
            *prev = (*pp)->val;
        else
            m->unref((*pp)->val);
        (*pp)->val = val;
        return 0;
    }
    if ((m->n + 1 > m->nb * 2 || !m->nb) && grow(m) != 0)
        return -1;
    eng_map_ent *e = ent_new(m, name);
    if (!e)
        return -1;
    size_t k = hash(name) & (m->nb - 1);
    e->val = val;
    e->next = m->b[k];
    m->b[k] = e;
    m->n++;
    return 0;
}

void eng_map_del(eng_map *m, const char *name, void **prev)
{
    if (prev)
        *prev = NULL;
    eng_map_ent **pp = find(m, name);
    if (!pp || !*pp)
        return;
    eng_map_ent *e = *pp;
    *pp = e->next;
    if (prev)
        *prev = e->val;
    else
        m->unref(e->val);
    ent_free(m, e);
    m->n--;
}

void eng_map_filter(eng_map *m, bool (*drop)(void *val, void *arg), void *arg)
{
    for (size_t i = 0; i < m->nb; i++) {
        eng_map_ent **pp = &m->b[i];
        while (*pp) {
            eng_map_ent *e = *pp;
            if (!drop(e->val, arg)) {
                pp = &e->next;
                continue;
            }
            *pp = e->next;
            m->unref(e->val);
            ent_free(m, e);
            m->n--;
        }
    }
}
