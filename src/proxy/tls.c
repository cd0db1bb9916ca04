/*
 * tls.c — OpenSSL setup and handshakes for the proxy; see tls.h.
 */
#include "proxy/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

static void ssl_errstr(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char reason[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, reason, sizeof reason);
    snprintf(err, errlen, "%s: %s", what, reason);
    ERR_clear_error();
}

bool ph_tls_verifies_chain(const ph_config *cfg)
{
    if (cfg->sslmode >= PH_SSLMODE_VERIFY_CA)
        return true;
    /* libpq: with a root certificate present, require behaves as verify-ca. */
    return cfg->sslmode == PH_SSLMODE_REQUIRE && cfg->sslrootcert != NULL;
}

SSL_CTX *ph_tls_upstream_ctx(const ph_config *cfg, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ssl_errstr(err, errlen, "cannot create TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (ph_tls_verifies_chain(cfg)) {
        int ok = cfg->sslrootcert ? SSL_CTX_load_verify_locations(ctx, cfg->sslrootcert, NULL)
                                  : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            ssl_errstr(err, errlen, cfg->sslrootcert ? cfg->sslrootcert : "system CA store");
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (cfg->sslcert) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cfg->sslcert) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, cfg->sslkey, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            ssl_errstr(err, errlen, "sslcert/sslkey");
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    return ctx;
}

SSL_CTX *ph_tls_client_ctx(const ph_config *cfg, char *err, size_t errlen)
{
    if (!cfg->client_tls_cert)
        return NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_errstr(err, errlen, "cannot create TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->client_tls_cert) != 1) {
        ssl_errstr(err, errlen, cfg->client_tls_cert);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->client_tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ssl_errstr(err, errlen, cfg->client_tls_key);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static bool is_ip_literal(const char *host)
{
    unsigned char tmp[16];
    return inet_pton(AF_INET, host, tmp) == 1 || inet_pton(AF_INET6, host, tmp) == 1;
}

SSL *ph_tls_upstream_new(SSL_CTX *ctx, const ph_config *cfg, const char *host, int fd)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    bool ip = is_ip_literal(host);
    if (!ip)
        (void)SSL_set_tlsext_host_name(ssl, host);
    if (cfg->sslmode == PH_SSLMODE_VERIFY_FULL) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        int ok =
            ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host) : X509_VERIFY_PARAM_set1_host(vp, host, 0);
        if (ok != 1) {
            SSL_free(ssl);
            return NULL;
        }
        X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

static void verify_errstr(SSL *ssl, char *err, size_t errlen)
{
    long v = SSL_get_verify_result(ssl);
    if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        const char *name = X509_VERIFY_PARAM_get0_host(vp, 0);
        char *ip = name ? NULL : X509_VERIFY_PARAM_get1_ip_asc(vp);
        snprintf(err, errlen, "server certificate does not match host name \"%s\" (%s)",
                 name ? name
                 : ip ? ip
                      : "?",
                 X509_verify_cert_error_string(v));
        OPENSSL_free(ip);
    } else {
        snprintf(err, errlen, "certificate verify failed: %s", X509_verify_cert_error_string(v));
    }
}

ph_hs ph_tls_handshake(SSL *ssl, char *err, size_t errlen)
{
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    if (r == 1)
        return PH_HS_DONE;
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return PH_HS_WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE)
        return PH_HS_WANT_WRITE;
    if (SSL_get_verify_result(ssl) != X509_V_OK) {
        verify_errstr(ssl, err, errlen);
    } else if (e == SSL_ERROR_SYSCALL && ERR_peek_last_error() == 0) {
        snprintf(err, errlen, "connection closed during TLS handshake%s%s", errno ? ": " : "",
                 errno ? strerror(errno) : "");
    } else {
        ssl_errstr(err, errlen, "TLS handshake failed");
    }
    ERR_clear_error();
    return PH_HS_FAILED;
}
