/*
 * sidecar.c — the settings of the injected proxy and its container and
 * volume specs (see sidecar.h).
 */
#include "k8s/sidecar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

void ph_sidecar_opts_defaults(ph_sidecar_opts *o)
{
    memset(o, 0, sizeof *o);
    o->proxy_port = PH_K8S_DEFAULT_PROXY_PORT;
    o->health_port = PH_K8S_DEFAULT_HEALTH_PORT;
    o->cpu_request = "50m";
    o->memory_request = "64Mi";
    o->cpu_limit = "1";
    o->memory_limit = "256Mi";
}

void ph_sidecar_opts_free(ph_sidecar_opts *o)
{
    if (!o)
        return;
    free(o->base_config);
    o->base_config = NULL;
    o->base_has_keys = 0;
}

/* ---- checks ----------------------------------------------------------------- */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int ph_k8s_quantity_ok(const char *s)
{
    static const char *const suffixes[] = {"",  "n", "u",  "m",  "k",  "M",  "G",  "T",
                                           "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
    if (!s || !*s || strlen(s) > 64)
        return 0;
    const char *p = s;
    size_t whole = 0, frac = 0;
    while (is_digit(*p)) {
        p++;
        whole++;
    }
    if (*p == '.')
        for (p++; is_digit(*p); p++)
            frac++;
    if (whole + frac == 0)
        return 0;
    if (*p == 'e' || *p == 'E') {
        const char *q = p + 1;
        if (*q == '+' || *q == '-')
            q++;
        if (!is_digit(*q))
            return 0;
        while (is_digit(*q))
            q++;
        return *q == '\0';
    }
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
        if (strcmp(p, suffixes[i]) == 0)
            return 1;
    return 0;
}

/* A DNS-1123 subdomain (Secret names). */
static int dns_subdomain_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || is_digit(c);
        if (!alnum && c != '-' && c != '.')
            return 0;
        if (!alnum && (i == 0 || i == n - 1))
            return 0;
    }
    return 1;
}

/* An image reference: printable, no spaces, bounded. */
static int image_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 512)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

static int check_quantity(const char *what, const char *v, char *err, size_t errlen)
{
    if (v && *v && !ph_k8s_quantity_ok(v))
        return ph_errf(err, errlen, "%s \"%.64s\" is not a Kubernetes quantity (e.g. 50m, 64Mi)",
                       what, v);
    return 0;
}

int ph_sidecar_opts_check(const ph_sidecar_opts *o, char *err, size_t errlen)
{
    if (!image_ok(o->image))
        return ph_errf(err, errlen, "--sidecar-image is required (an image reference)");
    if (o->proxy_port == 0 || o->proxy_port > 65535)
        return ph_errf(err, errlen, "--proxy-port must be 1..65535");
    if (o->health_port > 65535)
        return ph_errf(err, errlen, "--health-port must be 0 (no probes) or 1..65535");
    if (o->health_port == o->proxy_port)
        return ph_errf(err, errlen, "--health-port and --proxy-port must differ");
    if (o->pull_policy && strcmp(o->pull_policy, "Always") != 0 &&
        strcmp(o->pull_policy, "IfNotPresent") != 0 && strcmp(o->pull_policy, "Never") != 0)
        return ph_errf(err, errlen, "--image-pull-policy must be Always, IfNotPresent or Never");
    if (o->keys_secret && !dns_subdomain_ok(o->keys_secret))
        return ph_errf(err, errlen, "--keys-secret \"%.64s\" is not a valid Secret name",
                       o->keys_secret);
    if (check_quantity("--cpu-request", o->cpu_request, err, errlen) != 0 ||
        check_quantity("--memory-request", o->memory_request, err, errlen) != 0 ||
        check_quantity("--cpu-limit", o->cpu_limit, err, errlen) != 0 ||
        check_quantity("--memory-limit", o->memory_limit, err, errlen) != 0)
        return -1;
    return 0;
}

/* ---- container -------------------------------------------------------------- */

/* json_object_set_new that reports failure (value stolen either way). */
static int set(json_t *obj, const char *key, json_t *value)
{
    return value && json_object_set_new(obj, key, value) == 0 ? 0 : -1;
}

static json_t *resources(const ph_sidecar_opts *o)
{
    json_t *req = json_object(), *lim = json_object(), *res = json_object();
    int rc = req && lim && res ? 0 : -1;
    if (rc == 0 && o->cpu_request && *o->cpu_request)
        rc = set(req, "cpu", json_string(o->cpu_request));
    if (rc == 0 && o->memory_request && *o->memory_request)
        rc = set(req, "memory", json_string(o->memory_request));
    if (rc == 0 && o->cpu_limit && *o->cpu_limit)
        rc = set(lim, "cpu", json_string(o->cpu_limit));
    if (rc == 0 && o->memory_limit && *o->memory_limit)
        rc = set(lim, "memory", json_string(o->memory_limit));
    if (rc == 0 && json_object_size(req))
        rc = set(res, "requests", json_incref(req));
    if (rc == 0 && json_object_size(lim))
        rc = set(res, "limits", json_incref(lim));
    json_decref(req);
    json_decref(lim);
    if (rc != 0) {
        json_decref(res);
        return NULL;
    }
    return res;
}

static json_t *http_probe(const char *path, unsigned port, int delay, int period, int failures)
{
    return json_pack("{s:{s:s, s:I, s:s}, s:i, s:i, s:i, s:i}", "httpGet", "path", path, "port",
                     (json_int_t)port, "scheme", "HTTP", "initialDelaySeconds", delay,
                     "periodSeconds", period, "timeoutSeconds", 2, "failureThreshold", failures);
}

static int add_probes(json_t *c, const ph_sidecar_opts *o)
{
    if (o->health_port == 0)
        return 0;
    json_t *ports = json_pack("[{s:s, s:I, s:s}]", "name", PH_K8S_HEALTH_NAME, "containerPort",
                              (json_int_t)o->health_port, "protocol", "TCP");
    if (set(c, "ports", ports) != 0 ||
        set(c, "readinessProbe", http_probe("/readyz", o->health_port, 0, 5, 3)) != 0 ||
        set(c, "livenessProbe", http_probe("/healthz", o->health_port, 5, 10, 3)) != 0)
        return -1;
    /* A native sidecar's startup probe holds back the app containers (and
     * the pod's later init containers) until the proxy is ready. */
    if (o->native && set(c, "startupProbe", http_probe("/readyz", o->health_port, 0, 1, 60)) != 0)
        return -1;
    return 0;
}

static json_t *security_context(void)
{
    return json_pack("{s:b, s:I, s:I, s:b, s:b, s:b, s:{s:[s]}, s:{s:s}}", "runAsNonRoot", 1,
                     "runAsUser", (json_int_t)PH_K8S_UID, "runAsGroup", (json_int_t)PH_K8S_UID,
                     "readOnlyRootFilesystem", 1, "allowPrivilegeEscalation", 0, "privileged", 0,
                     "capabilities", "drop", "ALL", "seccompProfile", "type", "RuntimeDefault");
}

static json_t *volume_mounts(const ph_sidecar_opts *o)
{
    json_t *m = json_pack("[{s:s, s:s, s:b}, {s:s, s:s}]", "name", PH_K8S_VOL_CONFIG, "mountPath",
                          PH_K8S_CONFIG_DIR, "readOnly", 1, "name", PH_K8S_VOL_STATE, "mountPath",
                          PH_K8S_STATE_DIR);
    if (m && o->keys_secret &&
        json_array_append_new(m, json_pack("{s:s, s:s, s:b}", "name", PH_K8S_VOL_KEYS, "mountPath",
                                           PH_K8S_KEYS_DIR, "readOnly", 1)) != 0) {
        json_decref(m);
        return NULL;
    }
    return m;
}

static json_t *args(const ph_sidecar_opts *o, const char *target)
{
    char listen[64], tgt[320];
    snprintf(listen, sizeof listen, "--listen=127.0.0.1:%u", o->proxy_port);
    if ((size_t)snprintf(tgt, sizeof tgt, "--target=%s", target) >= sizeof tgt)
        return NULL;
    return json_pack("[s, s, s, s]", "proxy", "--config=" PH_K8S_CONFIG_DIR "/" PH_K8S_CONFIG_FILE,
                     listen, tgt);
}

json_t *ph_sidecar_container(const ph_sidecar_opts *o, const char *target)
{
    json_t *c = json_pack("{s:s, s:s}", "name", PH_K8S_CONTAINER, "image", o->image);
    if (!c)
        return NULL;
    int rc = set(c, "args", args(o, target));
    if (rc == 0 && o->pull_policy)
        rc = set(c, "imagePullPolicy", json_string(o->pull_policy));
    if (rc == 0)
        rc = set(c, "resources", resources(o));
    if (rc == 0)
        rc = add_probes(c, o);
    if (rc == 0)
        rc = set(c, "securityContext", security_context());
    if (rc == 0)
        rc = set(c, "volumeMounts", volume_mounts(o));
    if (rc == 0)
        rc = set(c, "terminationMessagePolicy", json_string("FallbackToLogsOnError"));
    if (rc == 0 && o->native)
        rc = set(c, "restartPolicy", json_string("Always"));
    if (rc != 0) {
        json_decref(c);
        return NULL;
    }
    return c;
}

/* ---- volumes ---------------------------------------------------------------- */

json_t *ph_sidecar_volumes(const ph_sidecar_opts *o)
{
    /* Mode 0444: the files are root-owned and the proxy runs as PH_K8S_UID;
     * only this container mounts them. */
    json_t *v = json_pack("[{s:s, s:{s:[{s:s, s:{s:s}}], s:i}}, {s:s, s:{}}]", "name",
                          PH_K8S_VOL_CONFIG, "downwardAPI", "items", "path", PH_K8S_CONFIG_FILE,
                          "fieldRef", "fieldPath", "metadata.annotations['" PH_K8S_ANN_CONFIG "']",
                          "defaultMode", 0444, "name", PH_K8S_VOL_STATE, "emptyDir");
    if (v && o->keys_secret &&
        json_array_append_new(v, json_pack("{s:s, s:{s:s, s:i}}", "name", PH_K8S_VOL_KEYS, "secret",
                                           "secretName", o->keys_secret, "defaultMode", 0444)) !=
            0) {
        json_decref(v);
        return NULL;
    }
    return v;
}
