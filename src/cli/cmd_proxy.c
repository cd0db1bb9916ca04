/*
 * cmd_proxy.c — `phantom proxy`: options, defaults, config file, start, and
 * the loader a SIGHUP reload runs (the same steps from scratch).
 *
 * Precedence: built-in defaults < --config file < command-line options.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/setup.h"
#include "common/log.h"
#include "common/mem.h"
#include "config/config.h"
#include "proxy/proxy.h"

void ph_cmd_proxy_usage(void *stream)
{
    fprintf(
        (FILE *)stream,
        "usage: phantom proxy [--listen HOST:PORT] --target HOST:PORT [--config FILE] [options]\n"
        "\n"
        "Runs the PostgreSQL proxy: clients connect to --listen exactly as they would to\n"
        "the database; the proxy relays the wire protocol to --target (authentication\n"
        "passes through; the proxy holds no database credentials).\n"
        "\n"
        "  -l, --listen HOST:PORT        address to accept clients on (default " PH_DEFAULT_LISTEN
        ")\n"
        "  -t, --target HOST:PORT        the real PostgreSQL server (required here or in the "
        "config)\n"
        "  -c, --config FILE             phantom.yaml; command-line options override it. Its\n"
        "                                encrypt: section (protected columns) and keys: section\n"
        "                                (keyring, KEK provider) turn field encryption on;\n"
        "                                check it first with `phantom check-config --keys FILE`.\n"
        "                                While the KEK provider is unreachable the proxy fails\n"
        "                                closed (SQLSTATE 58000; keys.when_unavailable)\n"
        "  -w, --workers N               event-loop threads (default 0: one per two CPU cores)\n"
        "      --sslmode MODE            TLS to the target: disable, prefer (default), require,\n"
        "                                verify-ca, verify-full (libpq semantics)\n"
        "      --sslrootcert FILE        CA bundle to verify the target (default: system store)\n"
        "      --sslcert FILE            client certificate to present to the target\n"
        "      --sslkey FILE             its private key\n"
        "      --client-tls-cert FILE    offer TLS to clients with this certificate chain\n"
        "      --client-tls-key FILE     ... and this key (both or neither)\n"
        "      --max-message-size SIZE   largest protocol message accepted in either direction\n"
        "                                (default 1GiB-1, PostgreSQL's own limit); e.g. 64MiB\n"
        "      --max-connections N       client connections at once (default %u)\n"
        "      --buffer-size SIZE        per-direction relay buffer (default 64KiB)\n"
        "      --connect-timeout DUR     connecting to the target (default 10s)\n"
        "      --shutdown-timeout DUR    SIGTERM: how long sessions may finish (default 30s)\n"
        "      --startup-timeout DUR     accept to login complete (TLS, authentication);\n"
        "                                then FATAL 57014 (default 60s)\n"
        "      --log-level LEVEL         error, warn, info (default), debug\n"
        "      --log-format FORMAT       text (logfmt, default) or json\n"
        "      --metrics-listen HOST:PORT  serve /metrics (Prometheus), /healthz and /readyz\n"
        "                                over HTTP there (metrics.listen; default: off)\n"
        "  -h, --help                    this help\n"
        "\n"
        "Signals: SIGTERM/SIGINT stop accepting, let sessions finish their transaction (closing\n"
        "idle ones), and exit after --shutdown-timeout at the latest; a second signal closes\n"
        "all sessions at once. SIGHUP reloads the config file and the keys (new key versions\n"
        "too): new sessions use them, open ones keep theirs; a config that fails to load is\n"
        "logged and the running one stays. listen, workers, metrics.listen and log.* need a\n"
        "restart.\n",
        PH_DEFAULT_MAX_CONNECTIONS);
}

enum {
    OPT_SSLMODE = 256,
    OPT_SSLROOTCERT,
    OPT_SSLCERT,
    OPT_SSLKEY,
    OPT_CLIENT_CERT,
    OPT_CLIENT_KEY,
    OPT_MAX_MSG,
    OPT_MAX_CONN,
    OPT_BUFSIZE,
    OPT_CONNECT_TIMEOUT,
    OPT_SHUTDOWN_TIMEOUT,
    OPT_STARTUP_TIMEOUT,
    OPT_LOG_LEVEL,
    OPT_LOG_FORMAT,
    OPT_METRICS_LISTEN,
};

static const struct option long_opts[] = {
    {"listen", required_argument, NULL, 'l'},
    {"target", required_argument, NULL, 't'},
    {"config", required_argument, NULL, 'c'},
    {"workers", required_argument, NULL, 'w'},
    {"sslmode", required_argument, NULL, OPT_SSLMODE},
    {"sslrootcert", required_argument, NULL, OPT_SSLROOTCERT},
    {"sslcert", required_argument, NULL, OPT_SSLCERT},
    {"sslkey", required_argument, NULL, OPT_SSLKEY},
    {"client-tls-cert", required_argument, NULL, OPT_CLIENT_CERT},
    {"client-tls-key", required_argument, NULL, OPT_CLIENT_KEY},
    {"max-message-size", required_argument, NULL, OPT_MAX_MSG},
    {"max-connections", required_argument, NULL, OPT_MAX_CONN},
    {"buffer-size", required_argument, NULL, OPT_BUFSIZE},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN_TIMEOUT},
    {"startup-timeout", required_argument, NULL, OPT_STARTUP_TIMEOUT},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Command-line option -> config setting (see config.c's table). */
static const char *setting_for(int opt)
{
    switch (opt) {
    case 'l':
        return "listen";
    case 't':
        return "target";
    case 'w':
        return "workers";
    case OPT_SSLMODE:
        return "upstream_tls.sslmode";
    case OPT_SSLROOTCERT:
        return "upstream_tls.sslrootcert";
    case OPT_SSLCERT:
        return "upstream_tls.sslcert";
    case OPT_SSLKEY:
        return "upstream_tls.sslkey";
    case OPT_CLIENT_CERT:
        return "client_tls.cert";
    case OPT_CLIENT_KEY:
        return "client_tls.key";
    case OPT_MAX_MSG:
        return "limits.max_message_size";
    case OPT_MAX_CONN:
        return "limits.max_connections";
    case OPT_BUFSIZE:
        return "limits.buffer_size";
    case OPT_CONNECT_TIMEOUT:
        return "limits.connect_timeout";
    case OPT_SHUTDOWN_TIMEOUT:
        return "limits.shutdown_timeout";
    case OPT_STARTUP_TIMEOUT:
        return "limits.startup_timeout";
    case OPT_LOG_LEVEL:
        return "log.level";
    case OPT_LOG_FORMAT:
        return "log.format";
    case OPT_METRICS_LISTEN:
        return "metrics.listen";
    default:
        return NULL;
    }
}

/* Applies one command-line option (already known not to be --config/--help). */
static int apply_opt(ph_config *cfg, int opt, const char *arg, char *err, size_t errlen)
{
    const char *key = setting_for(opt);
    if (!key) {
        snprintf(err, errlen, "unknown option (see phantom proxy --help)");
        return -1;
    }
    return ph_config_set(cfg, key, arg, err, errlen);
}

/* First pass: find --config/--help so the file can be loaded before overrides. */
static int first_pass(int argc, char **argv, const char **config_path)
{
    optind = 1;
    opterr = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "l:t:c:w:h", long_opts, NULL)) != -1) {
        if (opt == '?')
            return -1;
        if (opt == 'h')
            return 1;
        if (opt == 'c')
            *config_path = optarg;
    }
    if (optind < argc) {
        fprintf(stderr, "phantom proxy: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    return 0;
}

typedef struct proxy_args {
    int argc;
    char **argv;
    const char *config_path;
} proxy_args;

/* Defaults, then the file, then the command line; validated. */
static int build_config(const proxy_args *a, ph_config *cfg, char *err, size_t errlen)
{
    ph_config_defaults(cfg);
    if (a->config_path && ph_config_load_file(cfg, a->config_path, err, errlen) != 0)
        return -1;
    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(a->argc, a->argv, "l:t:c:w:h", long_opts, NULL)) != -1) {
        if (opt == 'c' || opt == 'h')
            continue;
        if (apply_opt(cfg, opt, optarg, err, errlen) != 0)
            return -1;
    }
    return ph_config_validate(cfg, err, errlen);
}

static void free_setup(void *owner)
{
    ph_setup *s = owner;
    if (s) {
        ph_setup_free(s);
        free(s);
    }
}

static void activate_setup(void *owner)
{
    ph_setup_activate(owner);
}

static int keys_loaded(const ph_setup *s)
{
    ph_keysource_stats st;
    if (!s->keys)
        return 1;
    ph_keysource_get_stats(s->keys, &st);
    return st.available;
}

/*
 * The encryption side (schema, keys, engine) from the config file, with its
 * keys' refresh thread running (stopped and joined by ph_setup_free). At
 * start the proxy runs even while the KEK provider is down (it fails
 * closed); a reload is refused unless every key of the new configuration
 * loads, so that a reload never takes keys away from new sessions.
 */
static int load_setup(const proxy_args *a, int reloading, ph_setup **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!a->config_path)
        return 0;
    ph_setup *s = ph_calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (ph_setup_load(s, a->config_path, reloading ? PH_SETUP_KEYS_STAGED : PH_SETUP_KEYS_LIVE, err,
                      errlen) != 0) {
        free(s);
        return -1;
    }
    if (reloading && !keys_loaded(s)) {
        char why[400] = "";
        ph_keysource_last_error(s->keys, why, sizeof why);
        snprintf(err, errlen, "the keys of the new configuration cannot be loaded: %s",
                 why[0] ? why : "unknown error");
        free_setup(s);
        return -1;
    }
    if (s->keys && ph_keysource_start(s->keys) != 0) {
        snprintf(err, errlen, "cannot start the key refresh thread");
        free_setup(s);
        return -1;
    }
    *out = s;
    return 0;
}

static int load_conf(const proxy_args *a, int reloading, ph_proxy_conf *out, char *err,
                     size_t errlen)
{
    memset(out, 0, sizeof *out);
    ph_setup *s = NULL;
    if (build_config(a, &out->cfg, err, errlen) != 0) {
        ph_config_free(&out->cfg);
        return -1;
    }
    if (!reloading) /* before the keys load: their log lines in the configured format */
        ph_log_setup(out->cfg.log_level, out->cfg.log_format);
    if (load_setup(a, reloading, &s, err, errlen) != 0) {
        ph_config_free(&out->cfg);
        return -1;
    }
    if (s) {
        out->engine = s->engine;
        out->keys = s->keys;
        out->ncolumns = s->ncolumns;
        out->owner = s;
        out->owner_free = free_setup;
        out->owner_activate = activate_setup; /* a reload's audit log, once it is in use */
    }
    return 0;
}

static int reload_conf(void *arg, ph_proxy_conf *out, char *err, size_t errlen)
{
    return load_conf(arg, 1, out, err, errlen);
}

static void log_encryption(const ph_proxy_conf *c)
{
    const ph_setup *s = c->owner;
    if (!c->engine || !s)
        return;
    char n[32];
    snprintf(n, sizeof n, "%zu", c->ncolumns);
    ph_log_info("field encryption on", "protected_columns", n, "when_keys_unavailable",
                s->kc.when_unavailable == PH_KEYS_UNAVAILABLE_REFUSE
                    ? "refuse every statement"
                    : "serve statements on unprotected tables");
}

int ph_cmd_proxy(int argc, char **argv)
{
    proxy_args a = {argc, argv, NULL};
    int fp = first_pass(argc, argv, &a.config_path);
    if (fp != 0) {
        ph_cmd_proxy_usage(fp > 0 ? stdout : stderr);
        return fp > 0 ? 0 : 2;
    }
    ph_proxy_conf first;
    char err[512];
    if (load_conf(&a, 0, &first, err, sizeof err) != 0) {
        fprintf(stderr, "phantom proxy: %s\n", err);
        return 2;
    }
    log_encryption(&first);
    return ph_proxy_run(&first, reload_conf, &a);
}
