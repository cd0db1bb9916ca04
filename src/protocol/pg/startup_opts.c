/*
 * startup_opts.c — a setting taken out of a StartupMessage (see
 * startup_opts.h).
 */
#include "protocol/pg/startup_opts.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_WORDS 256

typedef struct {
    size_t s, e; /* raw bytes of the word in the options value */
    char *text;  /* the word with escapes resolved (heap) */
    bool drop;   /* part of the setting: removed */
} word;

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Splits opt[0..n) into words as pg_split_opts does; -1 on too many / OOM. */
static int split(const char *opt, size_t n, word *w, size_t *nw)
{
    size_t i = 0;
    *nw = 0;
    while (i < n) {
        while (i < n && is_space((unsigned char)opt[i]))
            i++;
        if (i >= n)
            break;
        if (*nw == MAX_WORDS)
            return -1;
        word *x = &w[(*nw)++];
        memset(x, 0, sizeof *x);
        x->s = i;
        if (!(x->text = malloc(n - i + 1)))
            return -1;
        size_t o = 0;
        while (i < n && !is_space((unsigned char)opt[i])) {
            if (opt[i] == '\\' && i + 1 < n)
                i++;
            x->text[o++] = opt[i++];
        }
        x->text[o] = '\0';
        x->e = i;
    }
    return 0;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/* "name=value" (or, long, "na-me=value") names the setting: its value. */
static const char *match(const char *assign, const char *name, bool dash_is_underscore)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < nl; i++) {
        char a = assign[i];
        if (!a)
            return NULL;
        if (dash_is_underscore && a == '-')
            a = '_';
        if (lower(a) != lower(name[i]))
            return NULL;
    }
    return assign[nl] == '=' ? assign + nl + 1 : NULL;
}

/* Marks the words of the setting; its last value into *val. */
static void find_in_words(word *w, size_t nw, const char *name, const char **val)
{
    for (size_t i = 0; i < nw; i++) {
        const char *t = w[i].text, *v = NULL;
        if (strcmp(t, "-c") == 0 && i + 1 < nw && (v = match(w[i + 1].text, name, false))) {
            w[i].drop = w[i + 1].drop = true;
            *val = v;
            i++;
        } else if (strncmp(t, "--", 2) == 0 && (v = match(t + 2, name, true))) {
            w[i].drop = true;
            *val = v;
        } else if (strncmp(t, "-c", 2) == 0 && t[2] && (v = match(t + 2, name, false))) {
            w[i].drop = true;
            *val = v;
        }
    }
}

static int copy_value(const char *v, char *value, size_t vlen)
{
    size_t l = strlen(v);
    if (l >= vlen)
        return -1;
    memcpy(value, v, l + 1);
    return 0;
}

/* Appends the options value without the dropped words (raw bytes, single
 * spaces between words) at out; returns its length. */
static size_t rebuild(const char *opt, const word *w, size_t nw, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < nw; i++) {
        if (w[i].drop)
            continue;
        if (o)
            out[o++] = ' ';
        memcpy(out + o, opt + w[i].s, w[i].e - w[i].s);
        o += w[i].e - w[i].s;
    }
    return o;
}

/* One options parameter: its rewritten form at out (parameter name and
 * value, or nothing when empty); bytes written, or -1. */
static long options_param(const char *opt, size_t n, const char *name, char *value, size_t vlen,
                          int *found, uint8_t *out)
{
    word w[MAX_WORDS];
    size_t nw = 0;
    int rc = split(opt, n, w, &nw);
    const char *val = NULL;
    long o = 0;
    if (rc == 0)
        find_in_words(w, nw, name, &val);
    if (rc == 0 && val) {
        *found = 1;
        rc = copy_value(val, value, vlen);
    }
    if (rc == 0) {
        bool any = false;
        for (size_t i = 0; i < nw; i++)
            any |= !w[i].drop;
        if (any || !val) { /* unchanged or still something left */
            memcpy(out, "options", 8);
            o = 8;
            if (!val) {
                memcpy(out + o, opt, n);
                o += (long)n;
            } else {
                o += (long)rebuild(opt, w, nw, out + o);
            }
            out[o++] = 0;
        }
    }
    for (size_t i = 0; i < nw; i++)
        free(w[i].text);
    return rc == 0 ? o : -1;
}

int pgp_startup_take_setting(uint8_t *pkt, size_t *len, const char *name, char *value, size_t vlen)
{
    size_t n = *len;
    if (n < 9 || get_u32(pkt) != n || (get_u32(pkt + 4) >> 16) != 3 || pkt[n - 1] != 0 || !vlen)
        return -1;
    uint8_t *out = malloc(n);
    if (!out)
        return -1;
    memcpy(out, pkt, 8);
    size_t i = 8, o = 8;
    int found = 0, rc = 0;
    while (rc == 0 && i < n - 1) {
        const char *k = (const char *)pkt + i;
        size_t kl = strnlen(k, n - i);
        if (i + kl + 1 >= n) {
            rc = -1;
            break;
        }
        const char *v = k + kl + 1;
        size_t vl = strnlen(v, n - (i + kl + 1));
        if (i + kl + 1 + vl >= n) {
            rc = -1;
            break;
        }
        if (strcasecmp(k, name) == 0) {
            found = 1;
            rc = copy_value(v, value, vlen);
        } else if (strcmp(k, "options") == 0) {
            long w = options_param(v, vl, name, value, vlen, &found, out + o);
            if (w < 0)
                rc = -1;
            else
                o += (size_t)w;
        } else {
            memcpy(out + o, k, kl + 1 + vl + 1);
            o += kl + 1 + vl + 1;
        }
        i += kl + 1 + vl + 1;
    }
    if (rc == 0 && i != n - 1)
        rc = -1;
    if (rc == 0 && found) {
        out[o++] = 0;
        put_u32(out, (uint32_t)o);
        memcpy(pkt, out, o);
        *len = o;
    }
    memset(out, 0, n);
    free(out);
    return rc < 0 ? -1 : found;
}
