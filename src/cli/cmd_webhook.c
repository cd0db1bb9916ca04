/*
 * cmd_webhook.c — `phantom webhook`: the Kubernetes mutating admission
 * webhook that injects the phantom-db-proxy sidecar (src/k8s/).
 *
 * Owns: its options, their checks, loading the operator's base proxy
 * config, and starting the HTTPS server.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/log.h"
#include "config/config.h"
#include "k8s/sidecar.h"
#include "k8s/sidecar_config.h"
#include "k8s/webhook_server.h"

void ph_cmd_webhook_usage(void *stream)
{
    fprintf(
        (FILE *)stream,
        "usage: phantom webhook --tls-cert FILE --tls-key FILE --sidecar-image IMAGE [options]\n"
        "\n"
        "Runs the Kubernetes mutating admission webhook (admission.k8s.io/v1, HTTPS,\n"
        "POST /mutate). Pods annotated phantom.cloudcondom.io/db-proxy: \"enabled\" get the\n"
        "phantom-db-proxy sidecar: it listens on 127.0.0.1:PROXY_PORT and relays to the\n"
        "phantom.cloudcondom.io/db-target annotation, encrypting the columns named by the\n"
        "phantom.cloudcondom.io/db-encrypt annotation, which is validated here: a bad one is\n"
        "refused with its line and reason.\n"
        "\n"
        "  -l, --listen ADDR             HOST:PORT or :PORT to serve HTTPS on (default %s)\n"
        "      --tls-cert FILE           serving certificate chain (PEM); reloaded when it\n"
        "      --tls-key FILE            ... and its key change on disk, or on SIGHUP\n"
        "      --sidecar-image IMAGE     the phantom image the sidecar runs (required)\n"
        "      --proxy-port PORT         the port the app connects to on 127.0.0.1 (default %u)\n"
        "      --health-port PORT        the proxy's /healthz and /readyz port, probed by the\n"
        "                                kubelet (default %u; 0 = no probes)\n"
        "      --proxy-config FILE       phantom.yaml settings shared by every sidecar: keys:,\n"
        "                                upstream_tls:, log:, limits: ... (not encrypt:, listen,\n"
        "                                target, metrics). Without it, pods can only get a\n"
        "                                pass-through proxy (db-encrypt naming columns is "
        "refused)\n"
        "      --keys-secret NAME        Secret (in the pod's namespace) mounted read-only at\n"
        "                                " PH_K8S_KEYS_DIR " (keyring, token_file, CA ...)\n"
        "      --native-sidecar          inject an init container with restartPolicy: Always\n"
        "                                (Kubernetes >= 1.29): starts before the app and its init\n"
        "                                containers, and does not keep Jobs running\n"
        "      --image-pull-policy P     Always, IfNotPresent or Never (default: cluster's)\n"
        "      --cpu-request Q           sidecar resources (defaults 50m, 64Mi, 1, 256Mi;\n"
        "      --memory-request Q        an empty string omits one)\n"
        "      --cpu-limit Q\n"
        "      --memory-limit Q\n"
        "      --max-body-size SIZE      largest AdmissionReview accepted (default 4MiB)\n"
        "      --log-level LEVEL         error, warn, info (default), debug\n"
        "      --log-format FORMAT       text (logfmt, default) or json\n"
        "  -h, --help                    this help\n"
        "\n"
        "Also serves GET /healthz and /readyz (for its own probes). SIGTERM/SIGINT stop it\n"
        "after a 2 s grace period.\n",
        PH_WEBHOOK_DEFAULT_LISTEN, PH_K8S_DEFAULT_PROXY_PORT, PH_K8S_DEFAULT_HEALTH_PORT);
}

enum {
    OPT_CERT = 256,
    OPT_KEY,
    OPT_IMAGE,
    OPT_PROXY_PORT,
    OPT_HEALTH_PORT,
    OPT_PROXY_CONFIG,
    OPT_KEYS_SECRET,
    OPT_NATIVE,
    OPT_PULL,
    OPT_CPU_REQ,
    OPT_MEM_REQ,
    OPT_CPU_LIM,
    OPT_MEM_LIM,
    OPT_MAX_BODY,
    OPT_LOG_LEVEL,
    OPT_LOG_FORMAT,
};

static const struct option long_opts[] = {
    {"listen", required_argument, NULL, 'l'},
    {"tls-cert", required_argument, NULL, OPT_CERT},
    {"tls-key", required_argument, NULL, OPT_KEY},
    {"sidecar-image", required_argument, NULL, OPT_IMAGE},
    {"proxy-port", required_argument, NULL, OPT_PROXY_PORT},
    {"health-port", required_argument, NULL, OPT_HEALTH_PORT},
    {"proxy-config", required_argument, NULL, OPT_PROXY_CONFIG},
    {"keys-secret", required_argument, NULL, OPT_KEYS_SECRET},
    {"native-sidecar", no_argument, NULL, OPT_NATIVE},
    {"image-pull-policy", required_argument, NULL, OPT_PULL},
    {"cpu-request", required_argument, NULL, OPT_CPU_REQ},
    {"memory-request", required_argument, NULL, OPT_MEM_REQ},
    {"cpu-limit", required_argument, NULL, OPT_CPU_LIM},
    {"memory-limit", required_argument, NULL, OPT_MEM_LIM},
    {"max-body-size", required_argument, NULL, OPT_MAX_BODY},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

typedef struct webhook_args {
    ph_webhook_server_opts server;
    ph_sidecar_opts sidecar;
    const char *proxy_config;
    ph_config log; /* only log_level / log_format are used */
} webhook_args;

static int parse_port(const char *name, const char *v, unsigned max_zero_ok, unsigned *out)
{
    char *end;
    unsigned long p = strtoul(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end || p > 65535 || (p == 0 && !max_zero_ok)) {
        fprintf(stderr, "phantom webhook: %s \"%s\": expected a port number%s\n", name, v,
                max_zero_ok ? " (or 0)" : "");
        return -1;
    }
    *out = (unsigned)p;
    return 0;
}

static int apply(webhook_args *a, int opt, const char *v)
{
    ph_sidecar_opts *s = &a->sidecar;
    char err[256];
    uint64_t size;
    switch (opt) {
    case 'l':
        a->server.listen = v;
        return 0;
    case OPT_CERT:
        a->server.tls_cert = v;
        return 0;
    case OPT_KEY:
        a->server.tls_key = v;
        return 0;
    case OPT_IMAGE:
        s->image = v;
        return 0;
    case OPT_PROXY_PORT:
        return parse_port("--proxy-port", v, 0, &s->proxy_port);
    case OPT_HEALTH_PORT:
        return parse_port("--health-port", v, 1, &s->health_port);
    case OPT_PROXY_CONFIG:
        a->proxy_config = v;
        return 0;
    case OPT_KEYS_SECRET:
        s->keys_secret = v;
        return 0;
    case OPT_NATIVE:
        s->native = 1;
        return 0;
    case OPT_PULL:
        s->pull_policy = v;
        return 0;
    case OPT_CPU_REQ:
        s->cpu_request = v;
        return 0;
    case OPT_MEM_REQ:
        s->memory_request = v;
        return 0;
    case OPT_CPU_LIM:
        s->cpu_limit = v;
        return 0;
    case OPT_MEM_LIM:
        s->memory_limit = v;
        return 0;
    case OPT_MAX_BODY:
        if (ph_parse_size(v, &size) != 0 || size < 1024 || size > (64u << 20)) {
            fprintf(stderr, "phantom webhook: --max-body-size \"%s\": expected 1KiB..64MiB\n", v);
            return -1;
        }
        a->server.max_body = (size_t)size;
        return 0;
    case OPT_LOG_LEVEL:
    case OPT_LOG_FORMAT:
        if (ph_config_set(&a->log, opt == OPT_LOG_LEVEL ? "log.level" : "log.format", v, err,
                          sizeof err) != 0) {
            fprintf(stderr, "phantom webhook: %s\n", err);
            return -1;
        }
        return 0;
    default:
        return -1;
    }
}

/* 0 = run, 1 = help shown, -1 = usage error. */
static int parse_args(webhook_args *a, int argc, char **argv)
{
    optind = 1;
    opterr = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "l:h", long_opts, NULL)) != -1) {
        if (opt == 'h')
            return 1;
        if (opt == '?' || apply(a, opt, optarg) != 0)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "phantom webhook: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    if (!a->server.tls_cert || !a->server.tls_key) {
        fprintf(stderr, "phantom webhook: --tls-cert and --tls-key are required\n");
        return -1;
    }
    return 0;
}

int ph_cmd_webhook(int argc, char **argv)
{
    webhook_args a;
    memset(&a, 0, sizeof a);
    ph_sidecar_opts_defaults(&a.sidecar);
    ph_config_defaults(&a.log);
    a.server.listen = PH_WEBHOOK_DEFAULT_LISTEN;
    a.server.max_body = PH_WEBHOOK_DEFAULT_MAX_BODY;
    a.server.timeout_s = PH_WEBHOOK_DEFAULT_TIMEOUT;
    a.server.sidecar = &a.sidecar;
    int p = parse_args(&a, argc, argv);
    if (p != 0) {
        ph_cmd_webhook_usage(p > 0 ? stdout : stderr);
        ph_config_free(&a.log);
        return p > 0 ? 0 : 2;
    }
    ph_log_setup(a.log.log_level, a.log.log_format);
    ph_config_free(&a.log);
    char err[512];
    if (ph_sidecar_opts_check(&a.sidecar, err, sizeof err) != 0 ||
        (a.proxy_config &&
         ph_sidecar_load_base(&a.sidecar, a.proxy_config, err, sizeof err) != 0)) {
        fprintf(stderr, "phantom webhook: %s\n", err);
        ph_sidecar_opts_free(&a.sidecar);
        return 2;
    }
    if (!a.sidecar.base_has_keys)
        ph_log_warn("webhook_no_keys", "note",
                    "no keys: section (--proxy-config): pods whose db-encrypt names "
                    "columns will be refused");
    if (a.sidecar.health_port == 0)
        ph_log_warn("webhook_no_probes", "note", "--health-port 0: the sidecar gets no probes");
    int rc = ph_webhook_serve(&a.server);
    ph_sidecar_opts_free(&a.sidecar);
    return rc;
}
