/*
 * hex.h — hexadecimal digits <-> bytes.
 *
 * Owns: the one hex codec every module uses (master-key files, bytea text,
 * audit hashes, key check values). Encoding is lowercase; decoding accepts
 * both cases and no separators (callers that allow whitespace between pairs
 * skip it themselves, using ph_hex_val).
 */
#ifndef PHANTOM_COMMON_HEX_H
#define PHANTOM_COMMON_HEX_H

#include <stddef.h>
#include <stdint.h>

/* The value of one hex digit, or -1. */
int ph_hex_val(int c);

/* Writes 2 * n lowercase hex digits to out (no NUL). */
void ph_hex_encode(const uint8_t *in, size_t n, char *out);

/* Decodes len hex digits (len even) into len / 2 bytes at out. Returns 0, or
 * -1 on an odd length or a non-hex character (out may then be partly
 * written: callers holding secrets wipe it). */
int ph_hex_decode(const char *s, size_t len, uint8_t *out);

#endif
