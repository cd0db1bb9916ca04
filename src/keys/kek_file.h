/*
 * kek_file.h — the `file` KEK provider: a local master-key file.
 *
 * Owns: reading and checking the master-key file, wrapping/unwrapping DEKs
 * under it, creating a new file (`phantom keys init-master`) and rotating
 * it (appending a new key version).
 *
 * Master-key file. Accepted only if, checked with fstat on the opened
 * descriptor (no stat/open race): a regular file, owned by the effective
 * uid, with permission bits exactly 0600 or 0400 (nothing for group/other,
 * no setuid/setgid/sticky bits). At most 64 KiB. Three encodings:
 *
 *   1. canonical (what init-master and rotate write), text:
 *        # comment lines and blank lines are ignored
 *        phantom-master-key v1
 *        1 <64 hex digits>
 *        2 <64 hex digits>
 *      the first non-comment line is the magic "phantom-master-key v1"; each
 *      following line is "<version> <256-bit key in hex>", versions are
 *      decimal 1..2147483647 and strictly increasing; the highest version
 *      wraps new DEKs, every listed version unwraps. At most 1024 versions.
 *   2. raw: a file of exactly 32 bytes is one 256-bit key, version 1;
 *   3. a single line of 64 hex digits, or of standard base64 of 32 bytes
 *      (44 characters), optionally followed by whitespace: version 1.
 *   Rotation (ph_kek_rotate) rewrites any of them in the canonical form with
 *   a new random version appended (atomically: temp file in the same
 *   directory, fsync, rename, fsync the directory; mode 0600).
 *
 * Wrapped blob (69 bytes, binary; the keyring stores it in base64):
 *
 *   "PHKF"(4) | format 0x01(1) | KEK version(4, big-endian) | nonce(12) |
 *   AES-256-GCM ciphertext of the DEK(32) | GCM tag(16)
 *
 *   The first 9 bytes are the GCM associated data, so the KEK version cannot
 *   be altered. Why AES-256-GCM and not AES-KWP (RFC 5649): a 128-bit tag
 *   (KWP's integrity check is 64 bits), authenticated header via associated
 *   data, and the same EVP AEAD path the field encryption uses; a random
 *   96-bit nonce is safe far beyond the number of DEKs one KEK ever wraps
 *   (NIST SP 800-38D bounds random nonces at 2^32 invocations per key).
 *
 * KEK id (ph_kek.id): "file:" followed by the configured path.
 */
#ifndef PHANTOM_KEYS_KEK_FILE_H
#define PHANTOM_KEYS_KEK_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "keys/kek.h"

#define PH_KEK_FILE_MAGIC_LINE "phantom-master-key v1"
#define PH_KEK_FILE_BLOB_LEN   69
#define PH_KEK_FILE_MAX_SIZE   (64u * 1024u)

/* Opens the master-key file at path (checks above). NULL + err on failure. */
ph_kek *ph_kek_file_open(const char *path, char *err, size_t errlen);

/* A provider over an in-memory key file (same formats, no ownership/mode
 * checks, rotate unsupported); for tests and fuzzing. id names it. */
ph_kek *ph_kek_file_from_buffer(const uint8_t *data, size_t len, const char *id, char *err,
                                size_t errlen);

/* Creates a new master-key file with one random version (canonical form):
 * O_CREAT|O_EXCL|O_NOFOLLOW with mode 0600 under umask 077, fsync, fsync of
 * the directory. Never overwrites an existing file. 0 or -1 + err. */
int ph_kek_file_create(const char *path, char *err, size_t errlen);

/* The newest KEK version of a file provider (0 if k is not one). */
uint32_t ph_kek_file_current_version(ph_kek *k);

/* The KEK version recorded in a wrapped blob of this provider, 0 if the blob
 * is not one (lets `keys list` show which version wraps each DEK). */
uint32_t ph_kek_file_blob_version(const uint8_t *blob, size_t len);

#endif
