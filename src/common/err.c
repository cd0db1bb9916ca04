/*
 * err.c — ph_errf and friends (see err.h).
 */
#include "common/err.h"

#include <stdio.h>

int ph_verrf(char *err, size_t errlen, const char *fmt, va_list ap)
{
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    return -1;
}

int ph_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ph_verrf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int ph_verrf_at(char *err, size_t errlen, const char *name, size_t line, const char *fmt,
                va_list ap)
{
    if (!err || !errlen)
        return -1;
    int n = snprintf(err, errlen, "%s:%zu: ", name, line);
    if (n >= 0 && (size_t)n < errlen)
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    return -1;
}

int ph_errf_at(char *err, size_t errlen, const char *name, size_t line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ph_verrf_at(err, errlen, name, line, fmt, ap);
    va_end(ap);
    return -1;
}
