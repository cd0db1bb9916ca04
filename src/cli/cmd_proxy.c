/*
 * cmd_proxy.c — `phantom proxy`: options, defaults, config file, start.
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
        "  -w, --workers N               event-loop threads (default: one per CPU core)\n"
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
        "  -h, --help                    this help\n"
        "\n"
        "Signals: SIGTERM/SIGINT stop accepting, let sessions finish their transaction (closing\n"
        "idle ones), and exit after --shutdown-timeout at the latest; a second signal closes\n"
        "all sessions at once.\n",
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
    default:
        return NULL;
    }
}

/* Applies one command-line option (already known not to be --config/--help). */
static int apply_opt(ph_config *cfg, int opt, const char *arg)
{
    const char *key = setting_for(opt);
    char err[256];
    if (!key) {
        fprintf(stderr, "phantom proxy: unknown option (see phantom proxy --help)\n");
        return -1;
    }
    if (ph_config_set(cfg, key, arg, err, sizeof err) != 0) {
        fprintf(stderr, "phantom proxy: %s\n", err);
        return -1;
    }
    return 0;
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

int ph_cmd_proxy(int argc, char **argv)
{
    const char *config_path = NULL;
    int fp = first_pass(argc, argv, &config_path);
    if (fp != 0) {
        ph_cmd_proxy_usage(fp > 0 ? stdout : stderr);
        return fp > 0 ? 0 : 2;
    }
    ph_config cfg;
    ph_config_defaults(&cfg);
    char err[512];
    if (config_path && ph_config_load_file(&cfg, config_path, err, sizeof err) != 0) {
        fprintf(stderr, "phantom proxy: %s\n", err);
        ph_config_free(&cfg);
        return 2;
    }
    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "l:t:c:w:h", long_opts, NULL)) != -1) {
        if (opt == 'c' || opt == 'h')
            continue;
        if (apply_opt(&cfg, opt, optarg) != 0) {
            ph_config_free(&cfg);
            return 2;
        }
    }
    if (ph_config_validate(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "phantom proxy: %s\n", err);
        ph_config_free(&cfg);
        return 2;
    }
    ph_log_setup(cfg.log_level, cfg.log_format);
    ph_setup setup = {0};
    if (config_path &&
        ph_setup_load(&setup, config_path, PH_SETUP_KEYS_LIVE, err, sizeof err) != 0) {
        fprintf(stderr, "phantom proxy: %s\n", err);
        ph_config_free(&cfg);
        return 2;
    }
    /* The keys' refresh thread (re-unwraps them every cache_ttl/2, retries a
     * provider that is down); stopped and joined by ph_setup_free. */
    if (setup.keys && ph_keysource_start(setup.keys) != 0) {
        fprintf(stderr, "phantom proxy: cannot start the key refresh thread\n");
        ph_setup_free(&setup);
        ph_config_free(&cfg);
        return 2;
    }
    if (setup.engine) {
        char n[32];
        snprintf(n, sizeof n, "%zu", setup.ncolumns);
        ph_log_info("field encryption on", "protected_columns", n, "when_keys_unavailable",
                    setup.kc.when_unavailable == PH_KEYS_UNAVAILABLE_REFUSE
                        ? "refuse every statement"
                        : "serve statements on unprotected tables");
    }
    int rc = ph_proxy_run(&cfg, setup.engine);
    if (config_path)
        ph_setup_free(&setup);
    ph_config_free(&cfg);
    return rc;
}
