/*
 * encode_time.c — canonical encodings of date (int32 days since 2000-01-01,
 * widened to 8 bytes), timestamp and timestamptz (int64 microseconds since
 * 2000-01-01 00:00:00, timestamptz in UTC): ISO 8601 text input as
 * PostgreSQL 15 reads it (the subset documented in encode.h), binary input,
 * and ISO output (DateStyle ISO).
 */
#include "crypto/encode_impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define USECS_PER_SEC   INT64_C(1000000)
#define USECS_PER_DAY   INT64_C(86400000000)
#define EPOCH_DAYS_1970 10957                  /* days from 1970-01-01 to 2000-01-01 */
#define DATE_MIN_DAYS   (-2451545)             /* Julian day 0: 4714-11-24 BC */
#define DATE_END_DAYS   (2147483494 - 2451545) /* 5874898-01-01, exclusive */
#define MIN_TIMESTAMP   INT64_C(-211813488000000000)
#define END_TIMESTAMP   INT64_C(9223371331200000000) /* 294277-01-01, exclusive */
#define MAX_TZ_HOUR     15
#define MAX_YEAR_DIGITS 7

typedef __int128 i128;

/* ---- calendar (proleptic Gregorian, astronomical years: 1 BC = 0) ---------------- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468 - EPOCH_DAYS_1970;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468 + EPOCH_DAYS_1970;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    return m == 2 && leap ? 29 : dim[m - 1];
}

/* ---- a tiny cursor ------------------------------------------------------------------ */

typedef struct cur {
    const char *s;
    size_t n, i;
} cur;

static int at_end(const cur *c)
{
    return c->i >= c->n;
}

static char peekc(const cur *c)
{
    return at_end(c) ? '\0' : c->s[c->i];
}

static int is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static int is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static int skip_ws(cur *c)
{
    size_t i0 = c->i;
    while (!at_end(c) && ph_enc_is_space(c->s[c->i]))
        c->i++;
    return c->i > i0;
}

/* Reads min..max digits into *v; 0 if fewer than min. */
static int read_num(cur *c, int min, int max, int64_t *v)
{
    int k = 0;
    int64_t acc = 0;
    while (k < max && is_digit(peekc(c))) {
        acc = acc * 10 + (c->s[c->i++] - '0');
        k++;
    }
    *v = acc;
    return k >= min;
}

static size_t digit_run(const cur *c)
{
    size_t k = 0;
    while (c->i + k < c->n && is_digit(c->s[c->i + k]))
        k++;
    return k;
}

static size_t alpha_run(const cur *c)
{
    size_t k = 0;
    while (c->i + k < c->n && is_alpha(c->s[c->i + k]))
        k++;
    return k;
}

static int word_is(const cur *c, size_t len, const char *w)
{
    if (strlen(w) != len)
        return 0;
    for (size_t k = 0; k < len; k++) {
        char ch = c->s[c->i + k];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        if (ch != w[k])
            return 0;
    }
    return 1;
}

/* ---- parsed form --------------------------------------------------------------------- */

typedef struct dt {
    int64_t year; /* as written (>= 1), BC applied later */
    int64_t mon, day, hour, min, sec, usec;
    int bc;
    int has_zone;
    int32_t zone; /* seconds east of UTC */
} dt;

/* Fraction digits rounded half-even to microseconds (may give 1000000). */
static void read_fraction(cur *c, int64_t *usec)
{
    int64_t us = 0;
    int k = 0, first_dropped = -1, rest_nonzero = 0;
    while (is_digit(peekc(c))) {
        int d = c->s[c->i++] - '0';
        if (k < 6)
            us = us * 10 + d;
        else if (k == 6)
            first_dropped = d;
        else if (d)
            rest_nonzero = 1;
        k++;
    }
    for (; k < 6; k++)
        us *= 10;
    if (first_dropped > 5 || (first_dropped == 5 && (rest_nonzero || (us & 1))))
        us++;
    *usec = us;
}

static ph_enc_status parse_time(cur *c, dt *t)
{
    if (!read_num(c, 1, 2, &t->hour) || peekc(c) != ':')
        return PH_ENC_ESYNTAX;
    c->i++;
    if (!read_num(c, 2, 2, &t->min))
        return PH_ENC_ESYNTAX;
    if (peekc(c) == ':') {
        c->i++;
        if (!read_num(c, 2, 2, &t->sec))
            return PH_ENC_ESYNTAX;
        if (peekc(c) == '.') { /* "12:34:56." is accepted, as PostgreSQL does */
            c->i++;
            read_fraction(c, &t->usec);
        }
    }
    if (t->min > 59 || t->sec > 60 || t->hour > 24 ||
        (t->hour == 24 && (t->min || t->sec || t->usec)))
        return PH_ENC_ERANGE;
    return PH_ENC_OK;
}

/* +HH, +HHMM, +HHMMSS, +HH:MM, +HH:MM:SS (also with '-'). */
static ph_enc_status parse_offset(cur *c, dt *t)
{
    int neg = c->s[c->i++] == '-';
    int64_t h = 0, m = 0, s = 0;
    size_t run = digit_run(c);
    if (run == 0 || run == 3 || run == 5 || run > 6)
        return PH_ENC_ESYNTAX;
    if (run <= 2) {
        read_num(c, 1, 2, &h);
        if (peekc(c) == ':') {
            c->i++;
            if (!read_num(c, 2, 2, &m))
                return PH_ENC_ESYNTAX;
            if (peekc(c) == ':') {
                c->i++;
                if (!read_num(c, 2, 2, &s))
                    return PH_ENC_ESYNTAX;
            }
        }
    } else {
        read_num(c, 2, 2, &h);
        read_num(c, 2, 2, &m);
        if (run == 6)
            read_num(c, 2, 2, &s);
    }
    if (h > MAX_TZ_HOUR || m > 59 || s > 59)
        return PH_ENC_ERANGE;
    t->has_zone = 1;
    t->zone = (int32_t)((neg ? -1 : 1) * (h * 3600 + m * 60 + s));
    return PH_ENC_OK;
}

/* After the date/time: [ws] zone, [ws] BC|AD, in that order, then the end. */
static ph_enc_status parse_tail(cur *c, dt *t, int after_time)
{
    int ws = skip_ws(c);
    char ch = peekc(c);
    if ((ch == '+' || ch == '-') && (after_time || ws)) {
        ph_enc_status st = parse_offset(c, t);
        if (st != PH_ENC_OK)
            return st;
        ws = skip_ws(c);
    }
    size_t w = alpha_run(c);
    if (w && !t->has_zone && (after_time || ws) &&
        (word_is(c, w, "z") || word_is(c, w, "utc") || word_is(c, w, "gmt") ||
         word_is(c, w, "ut") || word_is(c, w, "zulu"))) {
        t->has_zone = 1;
        t->zone = 0;
        c->i += w;
        ws = skip_ws(c);
        w = alpha_run(c);
    }
    if (w && ws && (word_is(c, w, "bc") || word_is(c, w, "ad"))) {
        t->bc = word_is(c, w, "bc");
        c->i += w;
        skip_ws(c);
        w = 0;
    }
    if (w)
        return PH_ENC_ETZ; /* a zone name (or junk spelled with letters) */
    return at_end(c) ? PH_ENC_OK : PH_ENC_ESYNTAX;
}

static ph_enc_status parse_dt(const char *s, size_t len, dt *t)
{
    cur c = {s, len, 0};
    memset(t, 0, sizeof *t);
    if (!read_num(&c, 3, MAX_YEAR_DIGITS, &t->year) || is_digit(peekc(&c)) || peekc(&c) != '-')
        return PH_ENC_ESYNTAX;
    c.i++;
    if (!read_num(&c, 1, 2, &t->mon) || peekc(&c) != '-')
        return PH_ENC_ESYNTAX;
    c.i++;
    if (!read_num(&c, 1, 2, &t->day))
        return PH_ENC_ESYNTAX;
    int after_time = 0;
    size_t save = c.i;
    if (peekc(&c) == 'T' || peekc(&c) == 't') {
        c.i++;
        after_time = 1;
    } else if (skip_ws(&c) && is_digit(peekc(&c))) {
        after_time = 1;
    } else {
        c.i = save;
    }
    if (after_time) {
        ph_enc_status st = parse_time(&c, t);
        if (st != PH_ENC_OK)
            return st;
    }
    return parse_tail(&c, t, after_time);
}

/* Days since 2000-01-01 of the parsed date, with range checks. */
static ph_enc_status dt_days(const dt *t, int64_t *days)
{
    if (t->year < 1 || t->mon < 1 || t->mon > 12 || t->day < 1)
        return PH_ENC_ERANGE;
    int64_t y = t->bc ? 1 - t->year : t->year;
    if (t->day > days_in_month(y, (unsigned)t->mon))
        return PH_ENC_ERANGE;
    *days = days_from_civil(y, (unsigned)t->mon, (unsigned)t->day);
    if (*days < DATE_MIN_DAYS || *days >= DATE_END_DAYS)
        return PH_ENC_ERANGE;
    return PH_ENC_OK;
}

/* ---- special values -------------------------------------------------------------------- */

static int special_word(const char *s, size_t len, const char *w)
{
    cur c = {s, len, 0};
    return word_is(&c, len, w);
}

/* 1: matched (v set), 0: not special, -1: a volatile keyword we refuse. */
static int parse_special(ph_ltype t, const char *s, size_t len, int64_t *v)
{
    int date = t == PH_LT_DATE;
    if (special_word(s, len, "infinity")) {
        *v = date ? INT32_MAX : INT64_MAX;
        return 1;
    }
    if (special_word(s, len, "-infinity")) {
        *v = date ? INT32_MIN : INT64_MIN;
        return 1;
    }
    if (special_word(s, len, "epoch")) {
        *v = date ? -EPOCH_DAYS_1970 : -EPOCH_DAYS_1970 * USECS_PER_DAY;
        return 1;
    }
    if (special_word(s, len, "now") || special_word(s, len, "today") ||
        special_word(s, len, "tomorrow") || special_word(s, len, "yesterday") ||
        special_word(s, len, "allballs"))
        return -1;
    return 0;
}

ph_enc_status ph_enc_time_check(ph_ltype t, int64_t v)
{
    if (t == PH_LT_DATE) {
        if (v == INT32_MIN || v == INT32_MAX)
            return PH_ENC_OK;
        return v >= DATE_MIN_DAYS && v < DATE_END_DAYS ? PH_ENC_OK : PH_ENC_ERANGE;
    }
    if (v == INT64_MIN || v == INT64_MAX)
        return PH_ENC_OK;
    return v >= MIN_TIMESTAMP && v < END_TIMESTAMP ? PH_ENC_OK : PH_ENC_ERANGE;
}

ph_enc_status ph_enc_time_from_text(ph_ltype t, const char *s, size_t len, const ph_enc_opts *o,
                                    ph_buf *out)
{
    int64_t v = 0, days = 0;
    dt d;
    ph_enc_trim(&s, &len);
    int sp = parse_special(t, s, len, &v);
    if (sp < 0)
        return PH_ENC_ESYNTAX;
    if (sp > 0)
        return ph_enc_append_i64(out, v);
    ph_enc_status st = parse_dt(s, len, &d);
    if (st == PH_ENC_OK)
        st = dt_days(&d, &days);
    if (st != PH_ENC_OK)
        return st;
    if (t == PH_LT_DATE) /* a time and zone after a date are ignored, as PostgreSQL does */
        return ph_enc_append_i64(out, days);
    i128 us = (i128)days * USECS_PER_DAY +
              ((i128)(d.hour * 3600 + d.min * 60 + d.sec)) * USECS_PER_SEC + d.usec;
    if (t == PH_LT_TIMESTAMPTZ) {
        if (!d.has_zone && !o->tz_fixed)
            return PH_ENC_ETZ;
        us -= (i128)(d.has_zone ? d.zone : o->tz_offset_sec) * USECS_PER_SEC;
    } /* timestamp: a zone is ignored, as PostgreSQL does */
    if (us < MIN_TIMESTAMP || us >= END_TIMESTAMP)
        return PH_ENC_ERANGE;
    return ph_enc_append_i64(out, (int64_t)us);
}

ph_enc_status ph_enc_time_from_binary(ph_ltype t, const uint8_t *p, size_t len, ph_buf *out)
{
    int64_t v;
    if (t == PH_LT_DATE) {
        if (len != 4)
            return PH_ENC_ESYNTAX;
        v = (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
                      p[3]);
    } else {
        if (len != 8)
            return PH_ENC_ESYNTAX;
        v = ph_enc_get_i64(p);
    }
    ph_enc_status st = ph_enc_time_check(t, v);
    return st == PH_ENC_OK ? ph_enc_append_i64(out, v) : st;
}

/* ---- output ------------------------------------------------------------------------------ */

static ph_enc_status canon_time(ph_ltype t, const uint8_t *c, size_t len, int64_t *v)
{
    if (len != PH_CANON_I64_LEN)
        return PH_ENC_EINVAL;
    *v = ph_enc_get_i64(c);
    return ph_enc_time_check(t, *v) == PH_ENC_OK ? PH_ENC_OK : PH_ENC_EINVAL;
}

static int put_date(char *b, size_t cap, int64_t days, int *bc)
{
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    *bc = y <= 0;
    return snprintf(b, cap, "%04" PRId64 "-%02u-%02u", *bc ? 1 - y : y, m, d);
}

static int put_zone(char *b, size_t cap, int32_t off)
{
    char sign = off < 0 ? '-' : '+';
    int32_t a = off < 0 ? -off : off;
    int h = a / 3600, m = a / 60 % 60, s = a % 60;
    if (s)
        return snprintf(b, cap, "%c%02d:%02d:%02d", sign, h, m, s);
    if (m)
        return snprintf(b, cap, "%c%02d:%02d", sign, h, m);
    return snprintf(b, cap, "%c%02d", sign, h);
}

static int put_timestamp(char *b, size_t cap, int64_t us, int with_zone, int32_t zone)
{
    int64_t local = us + (with_zone ? (int64_t)zone * USECS_PER_SEC : 0);
    int64_t days = local / USECS_PER_DAY, rem = local % USECS_PER_DAY;
    if (rem < 0) {
        rem += USECS_PER_DAY;
        days--;
    }
    int bc;
    int n = put_date(b, cap, days, &bc);
    int64_t secs = rem / USECS_PER_SEC, frac = rem % USECS_PER_SEC;
    n += snprintf(b + n, cap - (size_t)n, " %02d:%02d:%02d", (int)(secs / 3600),
                  (int)(secs / 60 % 60), (int)(secs % 60));
    if (frac) {
        char f[8];
        snprintf(f, sizeof f, "%06d", (int)frac);
        size_t fl = 6;
        while (f[fl - 1] == '0')
            fl--;
        n += snprintf(b + n, cap - (size_t)n, ".%.*s", (int)fl, f);
    }
    if (with_zone)
        n += put_zone(b + n, cap - (size_t)n, zone);
    if (bc)
        n += snprintf(b + n, cap - (size_t)n, " BC");
    return n;
}

ph_enc_status ph_enc_time_to_text(ph_ltype t, const uint8_t *c, size_t len, const ph_enc_opts *o,
                                  ph_buf *out)
{
    int64_t v;
    ph_enc_status st = canon_time(t, c, len, &v);
    if (st != PH_ENC_OK)
        return st;
    char b[80];
    int n, bc;
    int64_t lo = t == PH_LT_DATE ? INT32_MIN : INT64_MIN;
    int64_t hi = t == PH_LT_DATE ? INT32_MAX : INT64_MAX;
    if (v == lo || v == hi) {
        n = snprintf(b, sizeof b, "%s", v == lo ? "-infinity" : "infinity");
    } else if (t == PH_LT_DATE) {
        n = put_date(b, sizeof b, v, &bc);
        if (bc)
            n += snprintf(b + n, sizeof b - (size_t)n, " BC");
    } else {
        int tz = t == PH_LT_TIMESTAMPTZ;
        n = put_timestamp(b, sizeof b, v, tz, tz && o->tz_fixed ? o->tz_offset_sec : 0);
    }
    return ph_buf_append(out, b, (size_t)n) == 0 ? PH_ENC_OK : PH_ENC_ENOMEM;
}

ph_enc_status ph_enc_time_to_binary(ph_ltype t, const uint8_t *c, size_t len, ph_buf *out)
{
    int64_t v;
    ph_enc_status st = canon_time(t, c, len, &v);
    if (st != PH_ENC_OK)
        return st;
    if (t == PH_LT_DATE)
        return ph_buf_append_u32(out, (uint32_t)(int32_t)v) == 0 ? PH_ENC_OK : PH_ENC_ENOMEM;
    return ph_buf_append(out, c, len) == 0 ? PH_ENC_OK : PH_ENC_ENOMEM;
}
