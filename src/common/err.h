/*
 * err.h — the project's error-string convention in one place.
 *
 * Owns: formatting a one-line reason into a caller's (err, errlen) buffer,
 * the way every module reports failures ("returns -1 with a reason in err"),
 * and the "NAME:LINE: reason" form of configuration errors. A NULL err or a
 * zero errlen is allowed (the reason is dropped); the text is truncated to
 * errlen - 1 bytes and always NUL-terminated.
 */
#ifndef PHANTOM_COMMON_ERR_H
#define PHANTOM_COMMON_ERR_H

#include <stdarg.h>
#include <stddef.h>

/* Formats fmt into err and returns -1, so that `return ph_errf(...)` fails. */
int ph_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int ph_verrf(char *err, size_t errlen, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* "NAME:LINE: " followed by fmt; returns -1. */
int ph_errf_at(char *err, size_t errlen, const char *name, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int ph_verrf_at(char *err, size_t errlen, const char *name, size_t line, const char *fmt,
                va_list ap) __attribute__((format(printf, 5, 0)));

#endif
