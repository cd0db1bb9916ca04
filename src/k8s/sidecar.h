/*
 * sidecar.h — what the webhook injects: the settings of the phantom-db-proxy
 * sidecar and the container and volume specs built from them.
 *
 * Owns: the names the webhook and the pods share (annotations, container,
 * volumes, mount paths), the operator's settings (`phantom webhook`
 * options), checking them, and turning them into the Kubernetes JSON of one
 * container and its volumes. Pure: no I/O, no sockets.
 *
 * The sidecar reads one phantom.yaml, generated per pod (sidecar_config.h)
 * and handed over through an annotation the webhook adds
 * (PH_K8S_ANN_CONFIG) and a downward-API volume that mounts that annotation
 * read-only as PH_K8S_CONFIG_DIR/phantom.yaml. The database address and the
 * listen address are container args (visible in `kubectl get pod -o yaml`).
 */
#ifndef PHANTOM_K8S_SIDECAR_H
#define PHANTOM_K8S_SIDECAR_H

#include <stddef.h>

#include <jansson.h>

#define PH_K8S_ANN_PROXY   "phantom.cloudcondom.io/db-proxy"        /* "enabled" */
#define PH_K8S_ANN_TARGET  "phantom.cloudcondom.io/db-target"       /* HOST:PORT */
#define PH_K8S_ANN_ENCRYPT "phantom.cloudcondom.io/db-encrypt"      /* the encrypt document */
#define PH_K8S_ANN_CONFIG  "phantom.cloudcondom.io/db-proxy-config" /* added: phantom.yaml */
#define PH_K8S_LABEL_PROXY "phantom.cloudcondom.io/db-proxy"        /* objectSelector label */

#define PH_K8S_CONTAINER   "phantom-db-proxy"
#define PH_K8S_VOL_CONFIG  "phantom-db-proxy-config"
#define PH_K8S_VOL_STATE   "phantom-db-proxy-state"
#define PH_K8S_VOL_KEYS    "phantom-db-proxy-keys"
#define PH_K8S_CONFIG_DIR  "/etc/phantom/pod"
#define PH_K8S_CONFIG_FILE "phantom.yaml"
#define PH_K8S_KEYS_DIR    "/etc/phantom/keys"
#define PH_K8S_STATE_DIR   "/var/lib/phantom" /* the sidecar's only writable directory */
#define PH_K8S_UID         65532              /* the image's non-root user */
#define PH_K8S_HEALTH_NAME "phantom-health"

#define PH_K8S_DEFAULT_PROXY_PORT  5432u
#define PH_K8S_DEFAULT_HEALTH_PORT 9432u

/*
 * The operator's settings. Strings are borrowed (argv), except base_config,
 * which ph_sidecar_load_base (sidecar_config.h) allocates and
 * ph_sidecar_opts_free releases. Empty or NULL resource strings are
 * omitted from the container spec.
 */
typedef struct ph_sidecar_opts {
    const char *image;       /* required */
    const char *pull_policy; /* Always | IfNotPresent | Never; NULL = cluster default */
    unsigned proxy_port;     /* the app connects to 127.0.0.1:proxy_port */
    unsigned health_port;    /* /healthz and /readyz probes; 0 = no probes */
    const char *keys_secret; /* Secret mounted at PH_K8S_KEYS_DIR; NULL = none */
    const char *cpu_request, *memory_request, *cpu_limit, *memory_limit;
    int native; /* inject as a native sidecar (init container, restartPolicy Always) */

    char *base_config; /* the operator's phantom.yaml without encrypt: (owned), or NULL */
    int base_has_keys; /* it has a keys: section */
} ph_sidecar_opts;

/* Defaults: ports 5432 / 9432, requests cpu 50m memory 64Mi, limits cpu 1
 * memory 256Mi, a regular container, no keys Secret, no base config. */
void ph_sidecar_opts_defaults(ph_sidecar_opts *o);

/* Checks the settings (image set and sane, ports 1..65535 and distinct,
 * resource quantities, pull policy, Secret name). 0, or -1 with a reason. */
int ph_sidecar_opts_check(const ph_sidecar_opts *o, char *err, size_t errlen);

void ph_sidecar_opts_free(ph_sidecar_opts *o);

/* The container spec for a pod whose database is `target` (HOST:PORT,
 * already validated). New reference, or NULL on OOM. */
json_t *ph_sidecar_container(const ph_sidecar_opts *o, const char *target);

/* The volumes the container mounts (array). New reference, or NULL. */
json_t *ph_sidecar_volumes(const ph_sidecar_opts *o);

/* 1 when s is a Kubernetes resource quantity ("50m", "0.5", "64Mi", "1G"). */
int ph_k8s_quantity_ok(const char *s);

#endif
