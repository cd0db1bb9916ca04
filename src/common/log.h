/*
 * log.h — structured logging (logfmt text or JSON lines) to stderr.
 *
 * Owns: the process-wide log level and format, and writing one event per
 * line. Events are a name plus key/value string pairs; callers pass only
 * metadata (addresses, sizes, error strings) — never query text, values or
 * key material. Thread-safe: each line is written with one write(2).
 */
#ifndef PHANTOM_LOG_H
#define PHANTOM_LOG_H

#include "config/config.h"

void ph_log_setup(ph_log_level level, ph_log_format format);
int ph_log_enabled(ph_log_level level);

/* ph_log(level, "event", "key1", "value1", ..., PH_LOG_END); prefer the macros
 * below, which add the terminator: ph_log_info("event", "key", "value"). */
#define PH_LOG_END ((const char *)0)
void ph_log(ph_log_level level, const char *event, ...) __attribute__((sentinel));

#define ph_log_error(...) ph_log(PH_LOG_ERROR, __VA_ARGS__, PH_LOG_END)
#define ph_log_warn(...)  ph_log(PH_LOG_WARN, __VA_ARGS__, PH_LOG_END)
#define ph_log_info(...)  ph_log(PH_LOG_INFO, __VA_ARGS__, PH_LOG_END)
#define ph_log_debug(...)                                                                          \
    do {                                                                                           \
        if (ph_log_enabled(PH_LOG_DEBUG))                                                          \
            ph_log(PH_LOG_DEBUG, __VA_ARGS__, PH_LOG_END);                                         \
    } while (0)

#endif
