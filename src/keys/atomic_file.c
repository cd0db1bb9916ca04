/*
 * atomic_file.c — temp file + fsync + rename + directory fsync (see
 * atomic_file.h).
 */
#include "keys/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/file.h"

int ph_fsync_parent_dir(const char *path, char *err, size_t errlen)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return ph_errf(err, errlen, "out of memory");
    int rc = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        rc = ph_errf(err, errlen, "%s: fsync directory: %s", dir, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(dir);
    return rc;
}

int ph_atomic_write(const char *path, const void *data, size_t len, mode_t mode, char *err,
                    size_t errlen)
{
    size_t n = strlen(path) + sizeof ".tmp.XXXXXX";
    char *tmp = malloc(n);
    if (!tmp)
        return ph_errf(err, errlen, "out of memory");
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        int rc = ph_errf(err, errlen, "%s: create temporary file: %s", path, strerror(errno));
        free(tmp);
        return rc;
    }
    int rc = 0;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        /* Replacing a file: keep its owner, group and (never world) mode. */
        mode = st.st_mode & 0770;
        if ((st.st_uid != geteuid() || st.st_gid != getegid()) &&
            fchown(fd, st.st_uid, st.st_gid) != 0)
            rc = ph_errf(err, errlen, "%s: cannot keep the owner of %s: %s", tmp, path,
                         strerror(errno));
    }
    if (rc == 0 && fchmod(fd, mode) != 0)
        rc = ph_errf(err, errlen, "%s: chmod: %s", tmp, strerror(errno));
    else if (ph_write_all(fd, data, len) != 0)
        rc = ph_errf(err, errlen, "%s: write: %s", tmp, strerror(errno));
    else if (fsync(fd) != 0)
        rc = ph_errf(err, errlen, "%s: fsync: %s", tmp, strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = ph_errf(err, errlen, "%s: close: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = ph_errf(err, errlen, "%s: rename: %s", path, strerror(errno));
    if (rc != 0)
        unlink(tmp);
    else
        rc = ph_fsync_parent_dir(path, err, errlen);
    free(tmp);
    return rc;
}
