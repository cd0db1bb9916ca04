/*
 * config.h — the proxy's runtime configuration (phantom.yaml + command line).
 *
 * Owns: the typed settings the proxy runs with, their defaults, and loading
 * them from a YAML file. Every error names the file, the line and the reason.
 * A config is immutable once loaded; reload (SIGHUP) builds a new one.
 */
#ifndef PHANTOM_CONFIG_H
#define PHANTOM_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define PH_DEFAULT_LISTEN              "127.0.0.1:5432"
#define PH_DEFAULT_MAX_MESSAGE         (1024u * 1024u * 1024u - 1u) /* PostgreSQL's own limit */
#define PH_DEFAULT_MAX_CONNECTIONS     10000u
#define PH_DEFAULT_BUFFER_SIZE         (64u * 1024u)
#define PH_DEFAULT_SHUTDOWN_TIMEOUT_MS 30000u
#define PH_DEFAULT_CONNECT_TIMEOUT_MS  10000u
#define PH_DEFAULT_STARTUP_TIMEOUT_MS  60000u /* like PostgreSQL's authentication_timeout */

typedef enum {
    PH_SSLMODE_DISABLE = 0,
    PH_SSLMODE_PREFER,
    PH_SSLMODE_REQUIRE,
    PH_SSLMODE_VERIFY_CA,
    PH_SSLMODE_VERIFY_FULL,
} ph_sslmode;

typedef enum { PH_LOG_ERROR = 0, PH_LOG_WARN, PH_LOG_INFO, PH_LOG_DEBUG } ph_log_level;
typedef enum { PH_LOG_TEXT = 0, PH_LOG_JSON } ph_log_format;

/* All strings are owned by the config (heap) and freed by ph_config_free. */
typedef struct ph_config {
    char *listen;     /* "host:port" the proxy listens on */
    char *target;     /* "host:port" of the real PostgreSQL; required */
    unsigned workers; /* event-loop threads; 0 = one per online core */

    /* Upstream (proxy -> database) TLS, libpq semantics. */
    ph_sslmode sslmode; /* default: prefer */
    char *sslrootcert;  /* CA bundle for verify-ca/verify-full; NULL = system store */
    char *sslcert;      /* optional client certificate towards the database */
    char *sslkey;

    /* Optional TLS towards clients: both set, or neither. */
    char *client_tls_cert;
    char *client_tls_key;

    /* Limits. */
    uint32_t max_message_size; /* bytes, whole message incl. length word */
    unsigned max_connections;
    uint32_t buffer_size; /* per-direction relay buffer, bytes */
    unsigned shutdown_timeout_ms;
    unsigned connect_timeout_ms;
    unsigned startup_timeout_ms; /* accept to the end of the login (first ReadyForQuery) */

    ph_log_level log_level;
    ph_log_format log_format;

    /* metrics.listen: "host:port" of the /metrics, /healthz, /readyz
     * endpoint; NULL = not served. */
    char *metrics_listen;

    char *source_path; /* file it was loaded from, or NULL */
} ph_config;

/* Fills *cfg with defaults (no target). Never fails. */
void ph_config_defaults(ph_config *cfg);

/*
 * Sets one setting by its dotted name ("listen", "upstream_tls.sslmode",
 * "limits.max_message_size", ...), parsing and range-checking the value the
 * same way for the YAML file and the command line. On error returns -1 and
 * writes the reason (without the value's position) into err.
 */
int ph_config_set(ph_config *cfg, const char *key, const char *value, char *err, size_t errlen);

/*
 * Loads a YAML file over the current values of *cfg (so callers set defaults
 * first and command-line overrides after). On error returns -1 and writes
 * "FILE:LINE: reason" into err (always NUL-terminated); *cfg is then left
 * in a state that is safe to free but should not be used.
 */
int ph_config_load_file(ph_config *cfg, const char *path, char *err, size_t errlen);

/* Same as ph_config_load_file for an in-memory document named `name`. */
int ph_config_load_buffer(ph_config *cfg, const char *data, size_t len, const char *name, char *err,
                          size_t errlen);

/*
 * Splits "host:port", "[v6]:port" into its parts (brackets removed).
 * Returns 0, or -1 if the form is wrong or a part does not fit.
 */
int ph_split_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen);

/*
 * Final validation after file + command line: target present, host:port
 * forms parse, TLS cert/key both or neither, limits in range.
 */
int ph_config_validate(const ph_config *cfg, char *err, size_t errlen);

/* Parses "1024", "64KB", "16MiB", "1GB" (binary multiples). 0 ok, -1 bad. */
int ph_parse_size(const char *s, uint64_t *out);
/* Parses "500ms", "30s", "2m", or a bare number of milliseconds. */
int ph_parse_duration_ms(const char *s, uint64_t *out);
int ph_parse_sslmode(const char *s, ph_sslmode *out);
const char *ph_sslmode_name(ph_sslmode m);

/* Replaces *slot with a heap copy of value (NULL allowed). 0 ok, -1 OOM. */
int ph_config_set_str(char **slot, const char *value);

void ph_config_free(ph_config *cfg);

#endif
