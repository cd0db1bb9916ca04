/*
 * startup_opts.h — settings carried by a StartupMessage.
 *
 * Owns: finding one run-time setting in a StartupMessage — as a parameter
 * of its own (`name\0value\0`, what drivers such as asyncpg's
 * server_settings send) or inside the `options` parameter the way the
 * server reads it (pg_split_opts: words split at unescaped white space, a
 * backslash escapes the next byte; `-c name=value`, `-cname=value` or
 * `--name=value`, the name compared case-insensitively, `-` read as `_`
 * in a `--` name as the server does) — and removing it from the packet.
 */
#ifndef PHANTOM_PROTOCOL_PG_STARTUP_OPTS_H
#define PHANTOM_PROTOCOL_PG_STARTUP_OPTS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Takes setting `name` out of the StartupMessage pkt[0..*len) (protocol
 * 3.x, length word included): every occurrence is removed, the last one's
 * value is copied into value[vlen]. The packet is rewritten in place (it
 * only shrinks; an `options` parameter left empty is dropped, the other
 * words of it are kept byte for byte) and *len / the length word updated.
 * Returns 1 when found, 0 when not (pkt unchanged), -1 when the packet is
 * malformed or the value does not fit (pkt unchanged).
 */
int pgp_startup_take_setting(uint8_t *pkt, size_t *len, const char *name, char *value, size_t vlen);

#endif
