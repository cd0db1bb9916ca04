/*
 * file.h — reading a whole small file into memory, and writing a buffer out
 * completely.
 *
 * Owns: the read loop (open, read to EOF, size cap, growth) and its
 * "PATH: reason" errors, for configuration files, audit logs and the like;
 * the write loop (short writes, EINTR) for key and audit files.
 * With PH_FILE_SECRET every intermediate buffer is wiped before it is freed
 * (the file may hold a token or a PIN); the caller then wipes the result too.
 */
#ifndef PHANTOM_COMMON_FILE_H
#define PHANTOM_COMMON_FILE_H

#include <stddef.h>

#define PH_FILE_SECRET 1u /* wipe every buffer that held file content */

/*
 * Reads the file at path into a new heap buffer *data (NUL-terminated; *len
 * excludes the NUL), owned by the caller (free()). max is the largest size
 * accepted in bytes, 0 for no limit. Returns 0, or -1 with *data = NULL and
 * one of: "PATH: <strerror>" (open failed, errno kept), "PATH: file too large
 * (N MiB at most)" / "(N bytes at most)", "PATH: read error",
 * "PATH: out of memory".
 */
int ph_file_read(const char *path, size_t max, unsigned flags, char **data, size_t *len, char *err,
                 size_t errlen);

/* Writes all len bytes of data to fd, retrying short writes and EINTR.
 * Returns 0, or -1 with errno set (EIO when write made no progress). */
int ph_write_all(int fd, const void *data, size_t len);

#endif
