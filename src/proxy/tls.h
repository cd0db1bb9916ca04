/*
 * tls.h — TLS contexts and handshakes for both legs of the proxy.
 *
 * Owns: the OpenSSL configuration that implements libpq's sslmode semantics
 * towards the database (disable/prefer/require/verify-ca/verify-full with
 * sslrootcert), the optional TLS the proxy offers clients, and turning
 * handshake failures into one-line reasons a user can act on.
 */
#ifndef PHANTOM_TLS_H
#define PHANTOM_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "config/config.h"

/* Context for connections to the database; NULL + err on failure. */
SSL_CTX *ph_tls_upstream_ctx(const ph_config *cfg, char *err, size_t errlen);
/* Context for client connections (NULL if client TLS is not configured). */
SSL_CTX *ph_tls_client_ctx(const ph_config *cfg, char *err, size_t errlen);

/* True if sslmode (with or without sslrootcert) verifies the chain. */
bool ph_tls_verifies_chain(const ph_config *cfg);

/*
 * New SSL object for an upstream connection on fd: sets SNI and, for
 * verify-full, the expected host name or IP address.
 */
SSL *ph_tls_upstream_new(SSL_CTX *ctx, const ph_config *cfg, const char *host, int fd);

typedef enum { PH_HS_DONE = 0, PH_HS_WANT_READ, PH_HS_WANT_WRITE, PH_HS_FAILED } ph_hs;

/* One step of a non-blocking handshake (connect or accept side). */
ph_hs ph_tls_handshake(SSL *ssl, char *err, size_t errlen);

#endif
