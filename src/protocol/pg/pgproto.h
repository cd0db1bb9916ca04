/*
 * pgproto.h — PostgreSQL v3 wire-protocol codec (no sockets, no I/O).
 *
 * Owns: message-type and request-code constants, parsing of the untyped
 * startup-phase packets (StartupMessage, SSLRequest, GSSENCRequest,
 * CancelRequest), parsing of typed message headers, and building the few
 * messages the proxy originates itself (ErrorResponse, rewritten
 * AuthenticationSASL). Everything works on caller-provided byte ranges and
 * never reads outside them, so it can be unit-tested and fuzzed alone.
 */
#ifndef PHANTOM_PGPROTO_H
#define PHANTOM_PGPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bytes.h"

/* Request codes of untyped startup-phase packets. */
#define PGP_PROTO_V3           0x00030000u
#define PGP_CANCEL_REQUEST     80877102u
#define PGP_SSL_REQUEST        80877103u
#define PGP_GSSENC_REQUEST     80877104u
#define PGP_MAX_STARTUP_PACKET 10000u /* PostgreSQL's MAX_STARTUP_PACKET_LENGTH */

/* Backend (server -> client) message types used by the proxy. */
#define PGP_B_AUTH      'R'
#define PGP_B_ERROR     'E'
#define PGP_B_READY     'Z'
#define PGP_B_KEYDATA   'K'
#define PGP_B_COPY_IN   'G'
#define PGP_B_COPY_OUT  'H'
#define PGP_B_COPY_BOTH 'W'

/* Frontend (client -> server) message types used by the proxy. */
#define PGP_F_QUERY     'Q'
#define PGP_F_SYNC      'S'
#define PGP_F_TERMINATE 'X'

/* AuthenticationSASL sub-code inside an 'R' message. */
#define PGP_AUTH_SASL 10u

typedef enum {
    PGP_PKT_STARTUP = 1, /* protocol 3.x StartupMessage */
    PGP_PKT_SSL,
    PGP_PKT_GSSENC,
    PGP_PKT_CANCEL,
} pgp_pkt_kind;

/* Result codes of the parsers. */
typedef enum {
    PGP_OK = 0,
    PGP_NEED_MORE = 1,    /* not enough bytes yet */
    PGP_ERR_LENGTH = -1,  /* impossible or too large length word */
    PGP_ERR_FORMAT = -2,  /* malformed body */
    PGP_ERR_VERSION = -3, /* unsupported protocol version */
} pgp_status;

typedef struct pgp_startup {
    pgp_pkt_kind kind;
    uint32_t len;  /* whole packet length incl. the length word */
    uint32_t code; /* protocol version or request code */
    /* CancelRequest */
    uint32_t cancel_pid;
    uint32_t cancel_key;
    /* StartupMessage: the parameter list (name\0value\0 ... \0) in place. */
    const uint8_t *params;
    size_t params_len;
} pgp_startup;

/*
 * Parses one untyped startup-phase packet at p[0..n). Returns PGP_OK with
 * *out filled, PGP_NEED_MORE if the packet is incomplete, or an error.
 */
pgp_status pgp_parse_startup(const uint8_t *p, size_t n, pgp_startup *out);

/* Looks up a StartupMessage parameter; NULL if absent. Points into params. */
const char *pgp_startup_param(const pgp_startup *s, const char *name);

/*
 * Typed message header: type byte + 4-byte length (which counts itself but
 * not the type). *total receives the whole message size (len + 1).
 * PGP_NEED_MORE below 5 bytes; PGP_ERR_LENGTH if len < 4 or len > max.
 */
pgp_status pgp_parse_header(const uint8_t *p, size_t n, uint32_t max, uint8_t *type,
                            uint32_t *total);

/* ErrorResponse fields the proxy sets. */
typedef struct pgp_error {
    const char *severity; /* "ERROR" or "FATAL" */
    const char *sqlstate; /* five characters */
    const char *message;
    const char *detail; /* optional */
    const char *hint;   /* optional */
} pgp_error;

/* Appends a complete ErrorResponse ('E') message to out. 0 ok, -1 OOM. */
int pgp_build_error(ph_buf *out, const pgp_error *e);

/*
 * Given a complete 'R' message, if it is AuthenticationSASL and offers
 * SCRAM-SHA-256-PLUS, writes the same message without that mechanism into
 * out and returns 1. Returns 0 when the message needs no change, -1 if the
 * message is malformed or on OOM.
 */
int pgp_auth_strip_scram_plus(const uint8_t *msg, size_t len, ph_buf *out);

/* 'Z' ReadyForQuery: returns the transaction status byte ('I','T','E') or 0. */
uint8_t pgp_ready_status(const uint8_t *msg, size_t len);

#endif
