/*
 * rw_tokens.c — byte ranges of literals, parameters, casts and type names in
 * the original statement text.
 *
 * Owns: the token list (pg_query_scan, computed once per call and only when
 * something must be spliced) and the small grammar that finds where a value
 * or a type name ends — the parse tree only records where nodes start. Any
 * shape this file does not recognize is an internal error (fail closed),
 * never a guess.
 */
#include "rewrite/rw_internal.h"

#include <stdlib.h>

typedef PgQuery__ScanToken tok;

static int ensure_scan(rw_ctx *c)
{
    if (c->scan)
        return 0;
    PgQueryScanResult sr = pg_query_scan(c->sql);
    if (sr.error) {
        pg_query_free_scan_result(sr);
        return rw_internal(c, "phantom: cannot tokenize the statement");
    }
    c->scan = pg_query__scan_result__unpack(NULL, sr.pbuf.len, (const uint8_t *)sr.pbuf.data);
    pg_query_free_scan_result(sr);
    return c->scan ? 0 : rw_oom(c);
}

static int is_comment(const tok *t)
{
    return t->token == PG_QUERY__TOKEN__SQL_COMMENT || t->token == PG_QUERY__TOKEN__C_COMMENT;
}

/* Index of the token starting at byte `location`, or -1. */
static long tok_at(rw_ctx *c, int location)
{
    if (ensure_scan(c) != 0)
        return -1;
    size_t lo = 0, hi = c->scan->n_tokens;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int st = c->scan->tokens[mid]->start;
        if (st == location)
            return (long)mid;
        if (st < location)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static long tok_next(const rw_ctx *c, long i)
{
    for (i++; i >= 0 && (size_t)i < c->scan->n_tokens; i++)
        if (!is_comment(c->scan->tokens[i]))
            return i;
    return -1;
}

static long tok_prev(const rw_ctx *c, long i)
{
    for (i--; i >= 0; i--)
        if (!is_comment(c->scan->tokens[i]))
            return i;
    return -1;
}

static int tok_is(const rw_ctx *c, long i, PgQuery__Token t)
{
    return i >= 0 && (size_t)i < c->scan->n_tokens && c->scan->tokens[i]->token == t;
}

static int fail_shape(rw_ctx *c)
{
    return rw_internal(c, "phantom: cannot locate a value in the statement text");
}

/* [start, end) of the literal token(s) at location: 'str', 42, -1.5, true. */
static int literal_span(rw_ctx *c, int location, int *start, int *end, long *last)
{
    long i = tok_at(c, location);
    if (i < 0)
        return c->failed ? -1 : fail_shape(c);
    const tok *t = c->scan->tokens[i];
    switch (t->token) {
    case PG_QUERY__TOKEN__ASCII_45: { /* negative number: '-' then the digits */
        long j = tok_next(c, i);
        if (!tok_is(c, j, PG_QUERY__TOKEN__ICONST) && !tok_is(c, j, PG_QUERY__TOKEN__FCONST))
            return fail_shape(c);
        *start = t->start;
        *end = c->scan->tokens[j]->end;
        *last = j;
        return 0;
    }
    case PG_QUERY__TOKEN__USCONST:
        return rw_refuse(c, location,
                         "phantom: Unicode-escaped string literals (U&'...') are not supported "
                         "for protected columns");
    case PG_QUERY__TOKEN__SCONST:
    case PG_QUERY__TOKEN__ICONST:
    case PG_QUERY__TOKEN__FCONST:
    case PG_QUERY__TOKEN__TRUE_P:
    case PG_QUERY__TOKEN__FALSE_P:
    case PG_QUERY__TOKEN__NULL_P:
    case PG_QUERY__TOKEN__PARAM:
        if (t->end <= t->start)
            return fail_shape(c);
        *start = t->start;
        *end = t->end;
        *last = i;
        return 0;
    default:
        return fail_shape(c);
    }
}

/* Skips a balanced (...) or [...] group starting at token i; returns the
 * index of the closing token or -1. */
static long skip_group(const rw_ctx *c, long i, PgQuery__Token open, PgQuery__Token close)
{
    int depth = 0;
    for (; i >= 0; i = tok_next(c, i)) {
        PgQuery__Token t = c->scan->tokens[i]->token;
        if (t == open)
            depth++;
        else if (t == close && --depth == 0)
            return i;
    }
    return -1;
}

static int is_word(const tok *t)
{
    return t->token == PG_QUERY__TOKEN__IDENT ||
           t->keyword_kind != PG_QUERY__KEYWORD_KIND__NO_KEYWORD;
}

/* Keywords that continue a type name: double precision, character varying,
 * timestamp with(out) time zone, interval day to second, int array. */
static int type_continuation(const rw_ctx *c, long i)
{
    switch (c->scan->tokens[i]->token) {
    case PG_QUERY__TOKEN__WITH:
    case PG_QUERY__TOKEN__WITH_LA:
        return tok_is(c, tok_next(c, i), PG_QUERY__TOKEN__TIME);
    case PG_QUERY__TOKEN__PRECISION:
    case PG_QUERY__TOKEN__VARYING:
    case PG_QUERY__TOKEN__WITHOUT:
    case PG_QUERY__TOKEN__TIME:
    case PG_QUERY__TOKEN__ZONE:
    case PG_QUERY__TOKEN__TO:
    case PG_QUERY__TOKEN__YEAR_P:
    case PG_QUERY__TOKEN__MONTH_P:
    case PG_QUERY__TOKEN__DAY_P:
    case PG_QUERY__TOKEN__HOUR_P:
    case PG_QUERY__TOKEN__MINUTE_P:
    case PG_QUERY__TOKEN__SECOND_P:
    case PG_QUERY__TOKEN__CHARACTER:
    case PG_QUERY__TOKEN__CHAR_P:
    case PG_QUERY__TOKEN__ARRAY:
        return 1;
    default:
        return 0;
    }
}

/* Index of the last token of the type name whose first token is i. */
static long typename_last(rw_ctx *c, long i)
{
    if (i < 0 || !is_word(c->scan->tokens[i]))
        return -1;
    long last = i;
    for (;;) {
        long j = tok_next(c, last);
        if (j < 0)
            return last;
        PgQuery__Token t = c->scan->tokens[j]->token;
        if (t == PG_QUERY__TOKEN__ASCII_46) { /* qualified: schema.type */
            long k = tok_next(c, j);
            if (k < 0 || !is_word(c->scan->tokens[k]))
                return -1;
            last = k;
        } else if (t == PG_QUERY__TOKEN__ASCII_40) {
            if ((last = skip_group(c, j, PG_QUERY__TOKEN__ASCII_40, PG_QUERY__TOKEN__ASCII_41)) < 0)
                return -1;
        } else if (t == PG_QUERY__TOKEN__ASCII_91) {
            if ((last = skip_group(c, j, PG_QUERY__TOKEN__ASCII_91, PG_QUERY__TOKEN__ASCII_93)) < 0)
                return -1;
        } else if (type_continuation(c, j)) {
            last = j;
        } else {
            return last;
        }
    }
}

int rw_typename_span(rw_ctx *c, const PgQuery__TypeName *tn, int *start, int *end)
{
    long i = tn ? tok_at(c, tn->location) : -1;
    long last = i >= 0 ? typename_last(c, i) : -1;
    if (last < 0)
        return c->failed ? -1 : fail_shape(c);
    *start = c->scan->tokens[i]->start;
    *end = c->scan->tokens[last]->end;
    return 0;
}

/* ('x')::date — widens [start,end) over the parentheses between the value
 * and the `::` token at index cast_tok. */
static int widen_parens(rw_ctx *c, long first, long last, long cast_tok, int *start)
{
    int k = 0;
    for (long j = tok_next(c, last); j != cast_tok; j = tok_next(c, j)) {
        if (!tok_is(c, j, PG_QUERY__TOKEN__ASCII_41))
            return fail_shape(c);
        k++;
    }
    long f = first;
    for (; k > 0; k--) {
        f = tok_prev(c, f);
        if (!tok_is(c, f, PG_QUERY__TOKEN__ASCII_40))
            return fail_shape(c);
    }
    *start = c->scan->tokens[f]->start;
    return 0;
}

int rw_value_span(rw_ctx *c, const rw_ev *v, int *start, int *end)
{
    int loc = v->kind == EV_PARAM ? v->location : (v->aconst ? v->aconst->location : -1);
    int s = -1, e = -1;
    long last = -1;
    if (loc < 0 || literal_span(c, loc, &s, &e, &last) != 0)
        return c->failed ? -1 : fail_shape(c);
    const PgQuery__TypeCast *tc = v->cast;
    if (!tc) {
        *start = s;
        *end = e;
        return 0;
    }
    if (tc->location < 0) { /* prefix form: date '2024-01-01' */
        if (!tc->type_name || tc->type_name->location < 0 || tc->type_name->location >= s)
            return fail_shape(c);
        *start = tc->type_name->location;
        *end = e;
        return 0;
    }
    long ci = tok_at(c, tc->location);
    if (ci < 0)
        return c->failed ? -1 : fail_shape(c);
    if (tok_is(c, ci, PG_QUERY__TOKEN__CAST)) { /* CAST(x AS type) */
        long close =
            skip_group(c, tok_next(c, ci), PG_QUERY__TOKEN__ASCII_40, PG_QUERY__TOKEN__ASCII_41);
        if (close < 0)
            return fail_shape(c);
        *start = c->scan->tokens[ci]->start;
        *end = c->scan->tokens[close]->end;
        return 0;
    }
    if (!tok_is(c, ci, PG_QUERY__TOKEN__TYPECAST)) /* x::type */
        return fail_shape(c);
    long first = tok_at(c, s);
    if (widen_parens(c, first, last, ci, start) != 0)
        return -1;
    int ts = -1;
    return rw_typename_span(c, tc->type_name, &ts, end);
}

/* Index of the token ending at byte `end`, or -1. */
static long tok_ending_at(rw_ctx *c, int end)
{
    if (ensure_scan(c) != 0)
        return -1;
    size_t lo = 0, hi = c->scan->n_tokens;
    while (lo < hi) { /* the first token starting at or after end */
        size_t mid = lo + (hi - lo) / 2;
        if (c->scan->tokens[mid]->start < end)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && c->scan->tokens[lo - 1]->end == end ? (long)lo - 1 : -1;
}

int rw_unparen_span(rw_ctx *c, int *start, int *end)
{
    long first = tok_at(c, *start), last = tok_ending_at(c, *end);
    if (first < 0 || last < 0)
        return c->failed ? -1 : fail_shape(c);
    for (;;) {
        long open = tok_prev(c, first), close = tok_next(c, last);
        if (!tok_is(c, open, PG_QUERY__TOKEN__ASCII_40) ||
            !tok_is(c, close, PG_QUERY__TOKEN__ASCII_41) ||
            tok_is(c, tok_prev(c, open), PG_QUERY__TOKEN__IN_P)) /* IN (v): the list's own */
            break;
        first = open;
        last = close;
    }
    *start = c->scan->tokens[first]->start;
    *end = c->scan->tokens[last]->end;
    return 0;
}

int rw_columnref_span(rw_ctx *c, const PgQuery__ColumnRef *cr, int *start, int *end)
{
    long i = cr ? tok_at(c, cr->location) : -1;
    if (i < 0 || !is_word(c->scan->tokens[i]))
        return c->failed ? -1 : fail_shape(c);
    long last = i;
    for (size_t k = 1; k < cr->n_fields; k++) {
        long dot = tok_next(c, last), w = tok_next(c, dot);
        if (!tok_is(c, dot, PG_QUERY__TOKEN__ASCII_46) || w < 0 || !is_word(c->scan->tokens[w]))
            return fail_shape(c);
        last = w;
    }
    *start = c->scan->tokens[i]->start;
    *end = c->scan->tokens[last]->end;
    return 0;
}

int rw_only_operator_between(rw_ctx *c, int a, int b)
{
    if (ensure_scan(c) != 0)
        return 0;
    int ops = 0;
    for (size_t i = 0; i < c->scan->n_tokens; i++) {
        const tok *t = c->scan->tokens[i];
        if (t->start < a || t->start >= b || is_comment(t))
            continue;
        if (t->end > b ||
            (t->token != PG_QUERY__TOKEN__ASCII_61 && t->token != PG_QUERY__TOKEN__NOT_EQUALS))
            return 0;
        ops++;
    }
    return ops == 1;
}
