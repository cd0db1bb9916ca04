/*
 * progress.h — progress reporting for long-running tools.
 *
 * Owns: on a terminal, one line redrawn at most ten times a second with a
 * bar, rows done / total, rows/s and ETA; elsewhere (CI logs, pipes), a plain
 * line every few seconds. Never prints a value.
 */
#ifndef PHANTOM_TOOLS_PROGRESS_H
#define PHANTOM_TOOLS_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct ph_progress {
    FILE *out;
    const char *label;
    int tty;
    int64_t total, done, start_done;
    double started, last_print;
} ph_progress;

/* total <= 0: unknown. start_done: rows already done (a resumed job). */
void ph_progress_begin(ph_progress *p, FILE *out, const char *label, int64_t total,
                       int64_t start_done);
void ph_progress_update(ph_progress *p, int64_t done);
/* The final line; returns the elapsed seconds. */
double ph_progress_end(ph_progress *p);

/* Monotonic seconds. */
double ph_now(void);

#endif
