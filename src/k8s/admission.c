/*
 * admission.c — AdmissionReview in, AdmissionReview (or HTTP error) out
 * (see admission.h).
 */
#include "k8s/admission.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/err.h"
#include "config/config.h"
#include "k8s/patch.h"
#include "k8s/sidecar_config.h"
#include "schema/schema.h"

#define API_VERSION "admission.k8s.io/v1"
#define MSG_MAX     640

/* What one request leads to (before it is written as a response). */
typedef struct decision {
    ph_adm_outcome outcome;
    char message[MSG_MAX]; /* refusal message, or the reason for logs */
    char *patch;           /* base64 JSON Patch (PATCHED only) */
    json_t *warnings;      /* array of strings */
} decision;

/* The parts of the pod a decision reads (borrowed from the request). */
typedef struct pod_view {
    const json_t *annotations, *labels, *spec, *containers, *init_containers, *volumes;
} pod_view;

/* ---- small helpers ------------------------------------------------------------- */

static const char *str_at(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* Copies s into dst for logs: printable ASCII only, truncated. */
static void copy_printable(char *dst, size_t n, const char *s)
{
    size_t w = 0;
    for (; s && *s && w + 1 < n; s++)
        dst[w++] = ((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f) ? *s : '?';
    dst[w] = '\0';
}

static int refuse(decision *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(decision *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->message, sizeof d->message, fmt, ap);
    va_end(ap);
    d->outcome = PH_ADM_REFUSED;
    return 0;
}

static int unchanged(decision *d, const char *why)
{
    snprintf(d->message, sizeof d->message, "%s", why);
    d->outcome = PH_ADM_UNCHANGED;
    return 0;
}

static int warn(decision *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int warn(decision *d, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (!d->warnings && !(d->warnings = json_array()))
        return -1;
    return json_array_append_new(d->warnings, json_string(text)) == 0 ? 0 : -1;
}

/* ---- pod checks ---------------------------------------------------------------- */

static int has_named(const json_t *list, const char *name)
{
    size_t i;
    const json_t *c;
    json_array_foreach(list, i, c)
    {
        const char *n = str_at(c, "name");
        if (n && strcmp(n, name) == 0)
            return 1;
    }
    return 0;
}

/* HOST:PORT with a DNS name, IPv4 or [IPv6] host. */
static int target_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 261)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']';
        if (!ok)
            return 0;
    }
    char host[256], port[8];
    return ph_split_hostport(t, host, sizeof host, port, sizeof port) == 0;
}

/* A container (or init container) port the sidecar needs for itself. */
static int port_conflict(const ph_sidecar_opts *o, const json_t *list, decision *d)
{
    size_t i, j;
    const json_t *c, *p;
    json_array_foreach(list, i, c)
    {
        json_array_foreach(json_object_get(c, "ports"), j, p)
        {
            json_int_t port = json_integer_value(json_object_get(p, "containerPort"));
            if (port <= 0 || (port != (json_int_t)o->proxy_port &&
                              (o->health_port == 0 || port != (json_int_t)o->health_port)))
                continue;
            char name[64];
            copy_printable(name, sizeof name, str_at(c, "name"));
            refuse(d,
                   "phantom: container \"%s\" declares port %lld, which the %s sidecar uses "
                   "(%s); free the port or ask the operator to change the webhook's "
                   "--proxy-port/--health-port",
                   name, (long long)port, PH_K8S_CONTAINER,
                   port == (json_int_t)o->proxy_port ? "the database port on 127.0.0.1"
                                                     : "its health port");
            return 1;
        }
    }
    return 0;
}

static int volume_conflict(const json_t *volumes, decision *d)
{
    static const char *const ours[] = {PH_K8S_VOL_CONFIG, PH_K8S_VOL_STATE, PH_K8S_VOL_KEYS};
    for (size_t k = 0; k < sizeof ours / sizeof ours[0]; k++)
        if (has_named(volumes, ours[k])) {
            refuse(d,
                   "phantom: the pod already has a volume named \"%s\", which the %s sidecar "
                   "needs; rename it",
                   ours[k], PH_K8S_CONTAINER);
            return 1;
        }
    return 0;
}

/* Sum of annotation keys and values once the config annotation is set. */
static size_t annotations_size(const json_t *ann, size_t config_len)
{
    size_t total = strlen(PH_K8S_ANN_CONFIG) + config_len;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)ann, k, v)
    {
        if (strcmp(k, PH_K8S_ANN_CONFIG) != 0)
            total += strlen(k) + json_string_length(v);
    }
    return total;
}

/* "db-encrypt:LINE: reason" -> "line LINE: reason". */
static void schema_message(decision *d, const char *err)
{
    const char *p = err;
    size_t plen = strlen("db-encrypt:");
    if (strncmp(p, "db-encrypt:", plen) == 0) {
        p += plen;
        const char *q = p;
        while (*q >= '0' && *q <= '9')
            q++;
        if (q > p && *q == ':') {
            refuse(d, "phantom: db-encrypt annotation: line %.*s: %s", (int)(q - p), p,
                   q[1] == ' ' ? q + 2 : q + 1);
            return;
        }
        while (*p == ' ')
            p++;
    }
    refuse(d, "phantom: db-encrypt annotation: %s", p);
}

/* Warnings for a pod the webhook leaves alone although it may have meant to. */
static int typo_warnings(const pod_view *pv, decision *d)
{
    const json_t *a = json_object_get(pv->annotations, PH_K8S_ANN_PROXY);
    const char *label = str_at(pv->labels, PH_K8S_LABEL_PROXY);
    if (a && json_is_string(a)) {
        char v[48];
        copy_printable(v, sizeof v, json_string_value(a));
        return warn(d, "phantom: annotation %s is \"%s\", not \"enabled\": no proxy injected",
                    PH_K8S_ANN_PROXY, v);
    }
    if (a)
        return warn(d, "phantom: annotation %s must be the string \"enabled\": no proxy injected",
                    PH_K8S_ANN_PROXY);
    if (label && strcmp(label, "enabled") == 0)
        return warn(d,
                    "phantom: label %s is set but annotation %s: \"enabled\" is missing: no "
                    "proxy injected",
                    PH_K8S_LABEL_PROXY, PH_K8S_ANN_PROXY);
    return 0;
}

/* ---- the patch ----------------------------------------------------------------- */

static int build_patch(const ph_sidecar_opts *o, const pod_view *pv, const char *target,
                       const char *config, decision *d)
{
    json_t *ops = json_array(), *vols = ph_sidecar_volumes(o), *cs = json_array();
    json_t *c = ph_sidecar_container(o, target);
    char *ann_path = ph_patch_path("/metadata/annotations", PH_K8S_ANN_CONFIG);
    int rc = ops && vols && cs && c && ann_path ? 0 : -1;
    if (rc == 0)
        rc = json_array_append(cs, c);
    if (rc == 0)
        rc = ph_patch_add(ops, ann_path, json_string(config));
    if (rc == 0)
        rc = ph_patch_add_items(ops, "/spec/volumes", pv->volumes, vols, 0);
    if (rc == 0)
        rc = o->native ? ph_patch_add_items(ops, "/spec/initContainers", pv->init_containers, cs, 1)
                       : ph_patch_add_items(ops, "/spec/containers", pv->containers, cs, 0);
    if (rc == 0 && !(d->patch = ph_patch_encode(ops)))
        rc = -1;
    if (rc == 0)
        d->outcome = PH_ADM_PATCHED;
    free(ann_path);
    json_decref(c);
    json_decref(cs);
    json_decref(vols);
    json_decref(ops);
    return rc;
}

/* ---- deciding -------------------------------------------------------------------- */

static int read_pod(const json_t *pod, pod_view *pv, decision *d)
{
    const json_t *meta = json_object_get(pod, "metadata");
    pv->annotations = json_object_get(meta, "annotations");
    pv->labels = json_object_get(meta, "labels");
    pv->spec = json_object_get(pod, "spec");
    if (!json_is_object(pod) || (meta && !json_is_object(meta)) ||
        (pv->annotations && !json_is_object(pv->annotations)))
        return refuse(d, "phantom: request.object is not a Pod object"), 1;
    pv->containers = json_object_get(pv->spec, "containers");
    pv->init_containers = json_object_get(pv->spec, "initContainers");
    pv->volumes = json_object_get(pv->spec, "volumes");
    return 0;
}

/* Checks the spec of a pod that asks for the proxy; 1 when refused. */
static int check_spec(const ph_sidecar_opts *o, const pod_view *pv, decision *d)
{
    if (!json_is_object(pv->spec) || !json_is_array(pv->containers))
        return refuse(d, "phantom: the pod has no spec.containers"), 1;
    if ((pv->init_containers && !json_is_null(pv->init_containers) &&
         !json_is_array(pv->init_containers)) ||
        (pv->volumes && !json_is_null(pv->volumes) && !json_is_array(pv->volumes)))
        return refuse(d, "phantom: spec.initContainers and spec.volumes must be lists"), 1;
    if (json_is_true(json_object_get(pv->spec, "hostNetwork")))
        return refuse(d,
                      "phantom: hostNetwork pods cannot get the %s sidecar (127.0.0.1:%u "
                      "would be the node's)",
                      PH_K8S_CONTAINER, o->proxy_port),
               1;
    return port_conflict(o, pv->containers, d) || port_conflict(o, pv->init_containers, d) ||
           volume_conflict(pv->volumes, d);
}

/* Parses db-encrypt; *schema NULL when the annotation is absent. 1 when
 * refused. */
static int read_encrypt(const ph_sidecar_opts *o, const json_t *ann, ph_schema **schema,
                        decision *d)
{
    const json_t *v = json_object_get(ann, PH_K8S_ANN_ENCRYPT);
    *schema = NULL;
    if (!v)
        return 0;
    if (!json_is_string(v))
        return refuse(d, "phantom: annotation %s must be a string", PH_K8S_ANN_ENCRYPT), 1;
    char err[512];
    if (ph_schema_load_section_buffer(schema, json_string_value(v), json_string_length(v),
                                      "db-encrypt", err, sizeof err) != 0)
        return schema_message(d, err), 1;
    if ((*schema)->ntables > 0 && !o->base_has_keys) {
        ph_schema_free(*schema);
        *schema = NULL;
        return refuse(d, "phantom: db-encrypt annotation protects columns but the "
                         "webhook has no keys: configuration (phantom webhook --proxy-config); "
                         "ask the cluster operator"),
               1;
    }
    return 0;
}

static int decide_pod(const ph_sidecar_opts *o, const json_t *pod, decision *d)
{
    pod_view pv = {0};
    if (read_pod(pod, &pv, d))
        return 0;
    const char *enabled = str_at(pv.annotations, PH_K8S_ANN_PROXY);
    if (!enabled || strcmp(enabled, "enabled") != 0) {
        unchanged(d, "no db-proxy: enabled annotation");
        return typo_warnings(&pv, d);
    }
    if (has_named(pv.containers, PH_K8S_CONTAINER) ||
        has_named(pv.init_containers, PH_K8S_CONTAINER))
        return unchanged(d, "sidecar already present");
    const json_t *tv = json_object_get(pv.annotations, PH_K8S_ANN_TARGET);
    const char *target = json_string_value(tv);
    if (!tv)
        return refuse(d,
                      "phantom: annotation %s is missing: the database address the proxy "
                      "connects to, HOST:PORT (e.g. cloud-sql-instance:5432)",
                      PH_K8S_ANN_TARGET);
    if (!target || !target_ok(target)) {
        char shown[96];
        copy_printable(shown, sizeof shown, target ? target : "");
        return refuse(d,
                      "phantom: annotation %s \"%s\" is not HOST:PORT (e.g. "
                      "cloud-sql-instance:5432)",
                      PH_K8S_ANN_TARGET, shown);
    }
    if (check_spec(o, &pv, d))
        return 0;
    ph_schema *schema = NULL;
    if (read_encrypt(o, pv.annotations, &schema, d))
        return 0;
    const json_t *ev = json_object_get(pv.annotations, PH_K8S_ANN_ENCRYPT);
    char err[512];
    char *config = ph_sidecar_config(o, json_string_value(ev), json_string_length(ev), schema, err,
                                     sizeof err);
    ph_schema_free(schema);
    if (!config)
        return refuse(d, "phantom: db-encrypt annotation: %s", err);
    int rc = 0;
    if (annotations_size(pv.annotations, strlen(config)) > PH_K8S_ANNOTATIONS_MAX)
        refuse(d,
               "phantom: with the proxy's configuration (%zu bytes) the pod's annotations "
               "would exceed the API server's 256 KiB limit",
               strlen(config));
    else
        rc = build_patch(o, &pv, target, config, d);
    free(config);
    return rc;
}

/* Decides for a well-formed review's request; -1 only on OOM. */
static int decide(const ph_sidecar_opts *o, const json_t *req, decision *d)
{
    const json_t *kind = json_object_get(req, "kind");
    const json_t *res = json_object_get(req, "resource");
    const char *k = str_at(kind, "kind"), *g = str_at(kind, "group");
    const char *r = str_at(res, "resource"), *sub = str_at(req, "subResource");
    const char *op = str_at(req, "operation");
    if (!k || strcmp(k, "Pod") != 0 || (g && *g))
        return unchanged(d, "not a Pod");
    if ((r && strcmp(r, "pods") != 0) || (sub && *sub))
        return unchanged(d, "not the pods resource");
    if (!op || strcmp(op, "CREATE") != 0)
        return unchanged(d, "not a CREATE");
    return decide_pod(o, json_object_get(req, "object"), d);
}

/* ---- writing the answer ------------------------------------------------------------ */

static json_t *response_json(const char *uid, const decision *d)
{
    json_t *resp = json_pack("{s:s, s:b}", "uid", uid, "allowed", d->outcome != PH_ADM_REFUSED);
    int rc = resp ? 0 : -1;
    if (rc == 0 && d->outcome == PH_ADM_PATCHED)
        rc = json_object_set_new(resp, "patchType", json_string("JSONPatch")) ||
             json_object_set_new(resp, "patch", json_string(d->patch));
    if (rc == 0 && d->outcome == PH_ADM_REFUSED)
        rc = json_object_set_new(resp, "status",
                                 json_pack("{s:i, s:s}", "code", 400, "message", d->message));
    if (rc == 0 && d->warnings)
        rc = json_object_set(resp, "warnings", d->warnings);
    json_t *review = rc == 0 ? json_pack("{s:s, s:s, s:O}", "apiVersion", API_VERSION, "kind",
                                         "AdmissionReview", "response", resp)
                             : NULL;
    json_decref(resp);
    return review;
}

static void bad_review(ph_admission_out *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void bad_review(ph_admission_out *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->reason, sizeof out->reason, fmt, ap);
    va_end(ap);
    out->outcome = PH_ADM_BAD_REVIEW;
    out->http_status = 400;
    out->content_type = "text/plain; charset=utf-8";
    size_t n = strlen(out->reason);
    out->body = malloc(n + 2);
    if (out->body)
        snprintf(out->body, n + 2, "%s\n", out->reason);
}

static void failed(ph_admission_out *out)
{
    free(out->body);
    out->body = NULL;
    out->outcome = PH_ADM_FAILED;
    out->http_status = 500;
    out->content_type = "text/plain; charset=utf-8";
    snprintf(out->reason, sizeof out->reason, "out of memory");
    out->body = strdup("out of memory\n");
}

static void describe_pod(ph_admission_out *out, const json_t *req)
{
    const json_t *meta = json_object_get(json_object_get(req, "object"), "metadata");
    const char *ns = str_at(req, "namespace"), *name = str_at(meta, "name");
    const char *gen = str_at(meta, "generateName");
    char a[64], b[90];
    copy_printable(a, sizeof a, ns ? ns : "");
    copy_printable(b, sizeof b, name && *name ? name : gen ? gen : "");
    snprintf(out->pod, sizeof out->pod, "%s/%s%s", a, b, name && *name ? "" : gen ? "*" : "");
}

/* Answers a review whose envelope and uid are fine. */
static void answer(const ph_sidecar_opts *o, const json_t *req, const char *uid,
                   ph_admission_out *out)
{
    decision d = {0};
    describe_pod(out, req);
    if (decide(o, req, &d) != 0) {
        failed(out);
    } else {
        json_t *review = response_json(uid, &d);
        out->body = review ? json_dumps(review, JSON_COMPACT) : NULL;
        json_decref(review);
        if (!out->body) {
            failed(out);
        } else {
            out->http_status = 200;
            out->content_type = "application/json";
            out->outcome = d.outcome;
            snprintf(out->reason, sizeof out->reason, "%s", d.message);
        }
    }
    free(d.patch);
    json_decref(d.warnings);
}

void ph_admission_review(const ph_sidecar_opts *o, const char *body, size_t len,
                         ph_admission_out *out)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        bad_review(out, "request body is not JSON: %s (line %d)", jerr.text, jerr.line);
        return;
    }
    const char *av = str_at(root, "apiVersion"), *kind = str_at(root, "kind");
    const json_t *req = json_object_get(root, "request");
    const char *uid = str_at(req, "uid");
    if (!json_is_object(root))
        bad_review(out, "request body is not a JSON object");
    else if (!av || strcmp(av, API_VERSION) != 0)
        bad_review(out, "apiVersion must be %s (set admissionReviewVersions: [v1])", API_VERSION);
    else if (!kind || strcmp(kind, "AdmissionReview") != 0)
        bad_review(out, "kind must be AdmissionReview");
    else if (!json_is_object(req))
        bad_review(out, "the AdmissionReview has no request");
    else if (!uid || !*uid)
        bad_review(out, "the AdmissionReview request has no uid");
    else {
        copy_printable(out->uid, sizeof out->uid, uid);
        answer(o, req, uid, out);
    }
    json_decref(root);
}

void ph_admission_out_free(ph_admission_out *out)
{
    if (!out)
        return;
    free(out->body);
    out->body = NULL;
}

const char *ph_adm_outcome_name(ph_adm_outcome oc)
{
    switch (oc) {
    case PH_ADM_PATCHED:
        return "patched";
    case PH_ADM_UNCHANGED:
        return "unchanged";
    case PH_ADM_REFUSED:
        return "refused";
    case PH_ADM_BAD_REVIEW:
        return "bad_review";
    case PH_ADM_FAILED:
        return "failed";
    }
    return "?";
}
