/*
 * atomic_file.h — crash-safe replacement of a small file.
 *
 * Owns: writing a whole file so that readers (and a crash at any point) see
 * either the complete old content or the complete new content: a temporary
 * file in the same directory (mkstemp: "<path>.tmp.XXXXXX", mode 0600, then
 * fchmod to `mode`), write, fsync, rename over path, fsync the directory.
 * On any failure the temporary file is removed and path is untouched.
 * Replacing an existing file keeps its owner and group (so an administrator
 * running `phantom keys` as root does not take the keyring away from the
 * proxy's user) and its permission bits minus any for "other"; a new file
 * gets `mode`. If the directory fsync after the rename fails, -1 is returned
 * although the new content is in place (it may not survive a crash).
 */
#ifndef PHANTOM_KEYS_ATOMIC_FILE_H
#define PHANTOM_KEYS_ATOMIC_FILE_H

#include <stddef.h>
#include <sys/types.h>

/* 0, or -1 with "PATH: step: reason" in err. */
int ph_atomic_write(const char *path, const void *data, size_t len, mode_t mode, char *err,
                    size_t errlen);

/* fsyncs the directory that contains path (after a create or rename). */
int ph_fsync_parent_dir(const char *path, char *err, size_t errlen);

#endif
