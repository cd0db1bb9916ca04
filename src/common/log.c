/*
 * log.c — formats structured log events (see log.h) and writes them to stderr.
 */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static ph_log_level g_level = PH_LOG_INFO;
static ph_log_format g_format = PH_LOG_TEXT;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void ph_log_setup(ph_log_level level, ph_log_format format)
{
    g_level = level;
    g_format = format;
}

int ph_log_enabled(ph_log_level level)
{
    return level <= g_level;
}

typedef struct {
    char *p;
    size_t len, cap;
} line_t;

static void put(line_t *l, const char *s, size_t n)
{
    if (l->len >= l->cap)
        return;
    size_t room = l->cap - l->len;
    if (n > room)
        n = room;
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

static void puts_(line_t *l, const char *s)
{
    put(l, s, strlen(s));
}

/* JSON string body escaping (quotes added by caller). */
static void put_json_escaped(line_t *l, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(l, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            puts_(l, esc);
        } else {
            put(l, (const char *)&c, 1);
        }
    }
}

/* logfmt value: bare if safe, else quoted with \" and \\ escaped. */
static void put_logfmt_value(line_t *l, const char *s)
{
    int bare = *s != '\0';
    for (const char *q = s; *q; q++)
        if (*q == ' ' || *q == '"' || *q == '=' || (unsigned char)*q < 0x20)
            bare = 0;
    if (bare) {
        puts_(l, s);
        return;
    }
    put(l, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            put(l, "\\", 1);
        if (c < 0x20)
            c = ' ';
        put(l, (const char *)&c, 1);
    }
    put(l, "\"", 1);
}

static void put_timestamp(line_t *l)
{
    struct timeval tv;
    struct tm tm;
    char ts[40];
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
    puts_(l, ts);
}

static void put_pair(line_t *l, const char *k, const char *v)
{
    if (g_format == PH_LOG_JSON) {
        puts_(l, ",\"");
        put_json_escaped(l, k);
        puts_(l, "\":\"");
        put_json_escaped(l, v ? v : "");
        puts_(l, "\"");
    } else {
        puts_(l, " ");
        puts_(l, k);
        puts_(l, "=");
        put_logfmt_value(l, v ? v : "");
    }
}

void ph_log(ph_log_level level, const char *event, ...)
{
    if (level > g_level)
        return;
    char mem[2048];
    line_t l = {mem, 0, sizeof mem - 2}; /* room for '}' and '\n' */
    if (g_format == PH_LOG_JSON) {
        puts_(&l, "{\"ts\":\"");
        put_timestamp(&l);
        puts_(&l, "\"");
    } else {
        puts_(&l, "ts=");
        put_timestamp(&l);
    }
    put_pair(&l, "level", level_names[level]);
    put_pair(&l, "event", event);
    va_list ap;
    va_start(ap, event);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        put_pair(&l, k, v);
    }
    va_end(ap);
    if (g_format == PH_LOG_JSON)
        l.p[l.len++] = '}';
    l.p[l.len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, l.p, l.len);
    (void)ignored;
}
