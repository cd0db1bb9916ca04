/*
 * progress.c — see progress.h.
 */
#include "tools/progress.h"

#include <time.h>
#include <unistd.h>

double ph_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ph_progress_begin(ph_progress *p, FILE *out, const char *label, int64_t total,
                       int64_t start_done)
{
    p->out = out;
    p->label = label;
    p->tty = isatty(fileno(out));
    p->total = total;
    p->done = p->start_done = start_done;
    p->started = ph_now();
    p->last_print = 0;
}

static void fmt_eta(double secs, char *buf, size_t cap)
{
    if (secs < 0 || secs > 360000) {
        snprintf(buf, cap, "--:--");
        return;
    }
    long s = (long)(secs + 0.5);
    snprintf(buf, cap, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
}

static void print_line(ph_progress *p, double now, int final)
{
    double el = now - p->started;
    double rate = el > 0 ? (double)(p->done - p->start_done) / el : 0;
    char eta[32];
    int64_t left = p->total > p->done ? p->total - p->done : 0;
    fmt_eta(rate > 0 ? (double)left / rate : -1, eta, sizeof eta);
    int pct = p->total > 0 ? (int)(100.0 * (double)p->done / (double)p->total) : -1;
    if (pct > 100)
        pct = 100;
    if (p->tty) {
        char bar[31];
        int fill = pct < 0 ? 0 : pct * 30 / 100;
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(p->out, "\r%s [%s] %3d%% %lld/%lld rows  %.0f rows/s  ETA %s\033[K%s", p->label,
                bar, pct < 0 ? 0 : pct, (long long)p->done, (long long)p->total, rate,
                final ? "0:00:00" : eta, final ? "\n" : "");
    } else {
        fprintf(p->out, "%s: %lld/%lld rows (%d%%), %.0f rows/s, ETA %s\n", p->label,
                (long long)p->done, (long long)p->total, pct < 0 ? 0 : pct, rate,
                final ? "0:00:00" : eta);
    }
    fflush(p->out);
}

void ph_progress_update(ph_progress *p, int64_t done)
{
    p->done = done;
    double now = ph_now();
    if (now - p->last_print < (p->tty ? 0.1 : 5.0))
        return;
    p->last_print = now;
    print_line(p, now, 0);
}

double ph_progress_end(ph_progress *p)
{
    double now = ph_now();
    if (p->total < p->done)
        p->total = p->done;
    print_line(p, now, 1);
    return now - p->started;
}
