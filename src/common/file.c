/*
 * file.c — ph_file_read and ph_write_all (see file.h).
 */
#include "common/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/err.h"

#define FIRST_CAP 4096u

/* Resizes *buf from cap to ncap bytes (ncap > used); secret buffers are
 * copied and the old one wiped, since realloc may leave a copy behind. */
static int grow(char **buf, size_t used, size_t ncap, unsigned flags)
{
    if (!(flags & PH_FILE_SECRET)) {
        char *g = realloc(*buf, ncap);
        if (!g)
            return -1;
        *buf = g;
        return 0;
    }
    char *g = malloc(ncap);
    if (!g)
        return -1;
    if (*buf) {
        memcpy(g, *buf, used);
        OPENSSL_cleanse(*buf, used);
        free(*buf);
    }
    *buf = g;
    return 0;
}

static void drop(char **buf, size_t used, unsigned flags)
{
    if (*buf && (flags & PH_FILE_SECRET))
        OPENSSL_cleanse(*buf, used);
    free(*buf);
    *buf = NULL;
}

static int too_large(const char *path, size_t max, char *err, size_t errlen)
{
    if (max % (1u << 20) == 0)
        return ph_errf(err, errlen, "%s: file too large (%zu MiB at most)", path, max >> 20);
    return ph_errf(err, errlen, "%s: file too large (%zu bytes at most)", path, max);
}

/* Reads fd to EOF into *buf (*used bytes so far, also on failure); 0, or -1
 * with err. At most max + 1 bytes are read: one more than allowed is enough
 * to refuse the file. */
static int read_all(int fd, const char *path, size_t max, unsigned flags, char **buf, size_t *used,
                    char *err, size_t errlen)
{
    size_t cap = 0;
    for (;;) {
        if (*used == cap) {
            if (cap > (SIZE_MAX - 1) / 2)
                return ph_errf(err, errlen, "%s: out of memory", path);
            size_t ncap = cap ? cap * 2 : FIRST_CAP;
            if (max && ncap > max + 1)
                ncap = max + 1;
            if (grow(buf, *used, ncap + 1, flags) != 0) /* + the NUL */
                return ph_errf(err, errlen, "%s: out of memory", path);
            cap = ncap;
        }
        ssize_t n = read(fd, *buf + *used, cap - *used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ph_errf(err, errlen, "%s: read error", path);
        if (n == 0)
            break;
        *used += (size_t)n;
        if (max && *used > max)
            return too_large(path, max, err, errlen);
    }
    (*buf)[*used] = '\0';
    return 0;
}

int ph_file_read(const char *path, size_t max, unsigned flags, char **data, size_t *len, char *err,
                 size_t errlen)
{
    *data = NULL;
    *len = 0;
    if (max >= SIZE_MAX - 1)
        max = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        ph_errf(err, errlen, "%s: %s", path, strerror(e));
        errno = e;
        return -1;
    }
    char *buf = NULL;
    size_t used = 0;
    int rc = read_all(fd, path, max, flags, &buf, &used, err, errlen);
    close(fd);
    if (rc != 0) {
        drop(&buf, used, flags);
        return -1;
    }
    *data = buf;
    *len = used;
    return 0;
}

int ph_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}
