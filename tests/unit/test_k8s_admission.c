/*
 * test_k8s_admission.c — unit tests for the admission webhook (src/k8s/):
 * AdmissionReview fixtures shaped as the API server sends them
 * (the JSON files of tests/fixtures/admission/) go through ph_admission_review, and
 * every patch is checked by APPLYING it to the request's pod with a strict
 * RFC 6902 "add" applier (below: the parent must exist, "-" needs an
 * array, indexes are bounded — so a patch that appends to a missing
 * /spec/volumes fails here as it would in the API server), then asserting
 * on the resulting pod: the sidecar once, its args, volumes, probes,
 * security context and config annotation (which must parse, with the
 * proxy's own schema reader, to what the annotation says), and the rest of
 * the pod byte-for-byte untouched. Also: idempotency (the patched pod
 * again: no patch), pods left alone (with warnings where useful),
 * refusals with their messages, malformed reviews, the base-config checks
 * and the embedding of unusual annotation documents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "k8s/admission.h"
#include "k8s/patch.h"
#include "k8s/sidecar.h"
#include "k8s/sidecar_config.h"
#include "schema/schema.h"

#define IMAGE  "registry.example.com/phantom:0.1.0"
#define SECRET "phantom-db-proxy-keys"

static const char base_yaml[] = "upstream_tls:\n"
                                "  sslmode: verify-full\n"
                                "  sslrootcert: /etc/phantom/keys/db-ca.pem\n"
                                "log:\n"
                                "  format: json\n"
                                "keys:\n"
                                "  keyring: /etc/phantom/keys/keyring.json\n"
                                "  audit_log: /var/lib/phantom/audit.jsonl\n"
                                "  provider: openbao\n"
                                "  openbao:\n"
                                "    address: https://bao.example.eu:8200\n"
                                "    key: phantom\n"
                                "    kubernetes_role: phantom-db-proxy\n";

/* ---- fixtures -------------------------------------------------------------------- */

static const char *fixture_dir(void)
{
    static char dir[512];
    static const char *const cands[] = {"tests/fixtures/admission", "../tests/fixtures/admission",
                                        "../../tests/fixtures/admission"};
    struct stat st;
    const char *root = getenv("PHANTOM_ROOT");
    if (root) {
        snprintf(dir, sizeof dir, "%s/tests/fixtures/admission", root);
        if (stat(dir, &st) == 0)
            return dir;
    }
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++)
        if (stat(cands[i], &st) == 0)
            return cands[i];
    fail_msg("tests/fixtures/admission not found (run from the repository root or set "
             "PHANTOM_ROOT)");
    return NULL;
}

static json_t *load_fixture(const char *name)
{
    char path[640];
    snprintf(path, sizeof path, "%s/%s", fixture_dir(), name);
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    if (!j)
        fail_msg("%s: %s (line %d)", path, e.text, e.line);
    return j;
}

static void opts_init(ph_sidecar_opts *o)
{
    char err[512];
    ph_sidecar_opts_defaults(o);
    o->image = IMAGE;
    o->keys_secret = SECRET;
    if (ph_sidecar_set_base(o, base_yaml, strlen(base_yaml), "base.yaml", err, sizeof err) != 0)
        fail_msg("base config refused: %s", err);
    assert_true(o->base_has_keys);
}

/* ---- a strict RFC 6902 applier (op "add" only: all the webhook emits) ------------ */

/* Unescapes one reference token (RFC 6901). */
static char *token_unescape(const char *s, size_t n)
{
    char *out = malloc(n + 1), *w = out;
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '~') {
            assert_true(i + 1 < n && (s[i + 1] == '0' || s[i + 1] == '1'));
            *w++ = s[i + 1] == '0' ? '~' : '/';
            i++;
        } else {
            *w++ = s[i];
        }
    }
    *w = '\0';
    return out;
}

/* Array index: "0", "12" (no leading zeros), or "-" (== size) when allowed. */
static int array_index(const char *tok, size_t size, size_t *idx)
{
    if (strcmp(tok, "-") == 0) {
        *idx = size;
        return 0;
    }
    if (!*tok || (tok[0] == '0' && tok[1]))
        return -1;
    size_t v = 0;
    for (const char *p = tok; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (size_t)(*p - '0');
    }
    *idx = v;
    return v <= size ? 0 : -1;
}

/* Applies one add; -1 when the path is not valid for the document. */
static int apply_add(json_t *doc, const char *path, json_t *value)
{
    if (path[0] != '/')
        return -1;
    json_t *cur = doc;
    const char *p = path + 1;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        char *tok = token_unescape(p, n);
        int rc = 0;
        if (!slash) { /* last token: the add itself */
            size_t idx;
            if (json_is_object(cur))
                rc = json_object_set(cur, tok, value);
            else if (json_is_array(cur) && array_index(tok, json_array_size(cur), &idx) == 0)
                rc = json_array_insert(cur, idx, value);
            else
                rc = -1;
            free(tok);
            return rc;
        }
        json_t *next = NULL;
        size_t idx;
        if (json_is_object(cur))
            next = json_object_get(cur, tok);
        else if (json_is_array(cur) && strcmp(tok, "-") != 0 &&
                 array_index(tok, json_array_size(cur), &idx) == 0)
            next = json_array_get(cur, idx);
        free(tok);
        if (!next)
            return -1; /* the parent must exist */
        cur = next;
        p = slash + 1;
    }
}

static json_t *decode_patch(const char *b64)
{
    size_t n = strlen(b64);
    assert_true(n % 4 == 0);
    unsigned char *raw = malloc(n / 4 * 3 + 1);
    assert_non_null(raw);
    int len = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
    assert_true(len >= 0);
    if (n >= 1 && b64[n - 1] == '=')
        len--;
    if (n >= 2 && b64[n - 2] == '=')
        len--;
    json_error_t e;
    json_t *ops = json_loadb((const char *)raw, (size_t)len, 0, &e);
    free(raw);
    if (!ops)
        fail_msg("patch is not JSON: %s", e.text);
    assert_true(json_is_array(ops));
    return ops;
}

/* A deep copy of pod with every op of ops applied; fails the test when an
 * op is not an add or does not apply. */
static json_t *apply_patch(const json_t *pod, const json_t *ops)
{
    json_t *doc = json_deep_copy(pod);
    size_t i;
    json_t *op;
    json_array_foreach(ops, i, op)
    {
        assert_string_equal(json_string_value(json_object_get(op, "op")), "add");
        const char *path = json_string_value(json_object_get(op, "path"));
        assert_non_null(path);
        if (apply_add(doc, path, json_object_get(op, "value")) != 0)
            fail_msg("patch op %zu: cannot add at %s", i, path);
    }
    return doc;
}

/* ---- running a review -------------------------------------------------------------- */

typedef struct result {
    ph_admission_out out;
    json_t *review;   /* the parsed answer (200 only) */
    json_t *response; /* borrowed from review */
    json_t *ops;      /* decoded patch, or NULL */
} result;

static void run_text(const ph_sidecar_opts *o, const char *body, size_t len, result *r)
{
    memset(r, 0, sizeof *r);
    ph_admission_review(o, body, len, &r->out);
    assert_non_null(r->out.body);
    if (r->out.http_status != 200)
        return;
    assert_string_equal(r->out.content_type, "application/json");
    json_error_t e;
    r->review = json_loads(r->out.body, 0, &e);
    if (!r->review)
        fail_msg("answer is not JSON: %s", e.text);
    assert_string_equal(json_string_value(json_object_get(r->review, "apiVersion")),
                        "admission.k8s.io/v1");
    assert_string_equal(json_string_value(json_object_get(r->review, "kind")), "AdmissionReview");
    r->response = json_object_get(r->review, "response");
    assert_true(json_is_object(r->response));
    const char *patch = json_string_value(json_object_get(r->response, "patch"));
    if (patch) {
        assert_string_equal(json_string_value(json_object_get(r->response, "patchType")),
                            "JSONPatch");
        r->ops = decode_patch(patch);
    } else {
        assert_null(json_object_get(r->response, "patchType"));
    }
}

static void run_review(const ph_sidecar_opts *o, const json_t *review, result *r)
{
    char *text = json_dumps(review, JSON_COMPACT);
    assert_non_null(text);
    run_text(o, text, strlen(text), r);
    free(text);
    assert_int_equal(r->out.http_status, 200);
    const char *uid = json_string_value(json_object_get(json_object_get(review, "request"), "uid"));
    assert_string_equal(json_string_value(json_object_get(r->response, "uid")), uid);
}

static void result_free(result *r)
{
    json_decref(r->ops);
    json_decref(r->review);
    ph_admission_out_free(&r->out);
}

static int allowed(const result *r)
{
    return json_is_true(json_object_get(r->response, "allowed"));
}

static const char *status_message(const result *r)
{
    const json_t *st = json_object_get(r->response, "status");
    assert_int_equal(json_integer_value(json_object_get(st, "code")), 400);
    return json_string_value(json_object_get(st, "message"));
}

static json_t *request_pod(const json_t *review)
{
    return json_object_get(json_object_get(review, "request"), "object");
}

/* Runs a review that must be allowed with a patch; returns the patched pod. */
static json_t *patched_pod(const ph_sidecar_opts *o, const json_t *review)
{
    result r;
    run_review(o, review, &r);
    if (!allowed(&r) || !r.ops)
        fail_msg("expected a patch, got %s (%s)", r.out.body, r.out.reason);
    assert_int_equal(r.out.outcome, PH_ADM_PATCHED);
    json_t *pod = apply_patch(request_pod(review), r.ops);
    result_free(&r);
    return pod;
}

/* Runs a review that must be allowed without a patch. */
static void expect_unchanged(const ph_sidecar_opts *o, const json_t *review, result *r)
{
    run_review(o, review, r);
    assert_true(allowed(r));
    assert_null(r->ops);
    assert_null(json_object_get(r->response, "status"));
    assert_int_equal(r->out.outcome, PH_ADM_UNCHANGED);
}

/* Runs a review that must be refused; returns its message (copied). */
static char *expect_refused(const ph_sidecar_opts *o, const json_t *review)
{
    result r;
    run_review(o, review, &r);
    if (allowed(&r))
        fail_msg("expected a refusal, got %s", r.out.body);
    assert_null(r.ops);
    assert_int_equal(r.out.outcome, PH_ADM_REFUSED);
    char *msg = strdup(status_message(&r));
    result_free(&r);
    return msg;
}

/* ---- the patched pod ------------------------------------------------------------------ */

static const json_t *find_named(const json_t *list, const char *name, int *count)
{
    const json_t *found = NULL, *it;
    size_t i;
    *count = 0;
    json_array_foreach(list, i, it)
    {
        const char *n = json_string_value(json_object_get(it, "name"));
        if (n && strcmp(n, name) == 0) {
            (*count)++;
            found = it;
        }
    }
    return found;
}

static const json_t *spec_of(const json_t *pod)
{
    return json_object_get(pod, "spec");
}

static const char *config_annotation(const json_t *pod)
{
    const json_t *ann = json_object_get(json_object_get(pod, "metadata"), "annotations");
    return json_string_value(json_object_get(ann, PH_K8S_ANN_CONFIG));
}

static void check_probe(const json_t *c, const char *which, const char *path, unsigned port)
{
    const json_t *get = json_object_get(json_object_get(c, which), "httpGet");
    if (!get)
        fail_msg("no %s.httpGet", which);
    assert_string_equal(json_string_value(json_object_get(get, "path")), path);
    assert_int_equal(json_integer_value(json_object_get(get, "port")), port);
}

static void check_security(const json_t *c)
{
    const json_t *sc = json_object_get(c, "securityContext");
    assert_true(json_is_true(json_object_get(sc, "runAsNonRoot")));
    assert_int_equal(json_integer_value(json_object_get(sc, "runAsUser")), PH_K8S_UID);
    assert_true(json_is_true(json_object_get(sc, "readOnlyRootFilesystem")));
    assert_true(json_is_false(json_object_get(sc, "allowPrivilegeEscalation")));
    const json_t *drop = json_object_get(json_object_get(sc, "capabilities"), "drop");
    assert_int_equal(json_array_size(drop), 1);
    assert_string_equal(json_string_value(json_array_get(drop, 0)), "ALL");
}

static void check_mount(const json_t *c, const char *vol, const char *path, int ro)
{
    int n;
    const json_t *m = find_named(json_object_get(c, "volumeMounts"), vol, &n);
    assert_int_equal(n, 1);
    assert_string_equal(json_string_value(json_object_get(m, "mountPath")), path);
    assert_int_equal(json_is_true(json_object_get(m, "readOnly")), ro);
}

/* The sidecar container: present once, with everything the brief lists. */
static const json_t *check_sidecar(const json_t *pod, const char *list, const char *target)
{
    int n;
    const json_t *c = find_named(json_object_get(spec_of(pod), list), PH_K8S_CONTAINER, &n);
    assert_int_equal(n, 1);
    assert_string_equal(json_string_value(json_object_get(c, "image")), IMAGE);
    const json_t *args = json_object_get(c, "args");
    char want_target[300];
    snprintf(want_target, sizeof want_target, "--target=%s", target);
    assert_int_equal(json_array_size(args), 4);
    assert_string_equal(json_string_value(json_array_get(args, 0)), "proxy");
    assert_string_equal(json_string_value(json_array_get(args, 1)),
                        "--config=/etc/phantom/pod/phantom.yaml");
    assert_string_equal(json_string_value(json_array_get(args, 2)), "--listen=127.0.0.1:5432");
    assert_string_equal(json_string_value(json_array_get(args, 3)), want_target);
    const json_t *res = json_object_get(c, "resources");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(res, "requests"), "memory")), "64Mi");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(res, "limits"), "memory")), "256Mi");
    check_probe(c, "readinessProbe", "/readyz", PH_K8S_DEFAULT_HEALTH_PORT);
    check_probe(c, "livenessProbe", "/healthz", PH_K8S_DEFAULT_HEALTH_PORT);
    check_security(c);
    check_mount(c, PH_K8S_VOL_CONFIG, "/etc/phantom/pod", 1);
    check_mount(c, PH_K8S_VOL_STATE, "/var/lib/phantom", 0);
    check_mount(c, PH_K8S_VOL_KEYS, "/etc/phantom/keys", 1);
    return c;
}

static void check_volumes(const json_t *pod)
{
    const json_t *vols = json_object_get(spec_of(pod), "volumes");
    int n;
    const json_t *cfg = find_named(vols, PH_K8S_VOL_CONFIG, &n);
    assert_int_equal(n, 1);
    const json_t *item =
        json_array_get(json_object_get(json_object_get(cfg, "downwardAPI"), "items"), 0);
    assert_string_equal(json_string_value(json_object_get(item, "path")), "phantom.yaml");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(item, "fieldRef"), "fieldPath")),
        "metadata.annotations['phantom.cloudcondom.io/db-proxy-config']");
    assert_non_null(json_object_get(find_named(vols, PH_K8S_VOL_STATE, &n), "emptyDir"));
    assert_int_equal(n, 1);
    const json_t *keys = find_named(vols, PH_K8S_VOL_KEYS, &n);
    assert_int_equal(n, 1);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(keys, "secret"), "secretName")), SECRET);
}

/* The config annotation must read, with the proxy's reader, as the pod's
 * db-encrypt annotation reads alone. Returns its column count. */
static size_t check_config(const json_t *pod)
{
    const char *cfg = config_annotation(pod);
    assert_non_null(cfg);
    const json_t *ann = json_object_get(json_object_get(pod, "metadata"), "annotations");
    const char *enc = json_string_value(json_object_get(ann, PH_K8S_ANN_ENCRYPT));
    ph_schema *got = NULL, *want = NULL;
    char err[512];
    if (ph_schema_load_buffer(&got, cfg, strlen(cfg), "cfg", err, sizeof err) != 0)
        fail_msg("generated config does not load: %s", err);
    if (enc)
        assert_int_equal(
            ph_schema_load_section_buffer(&want, enc, strlen(enc), "enc", err, sizeof err), 0);
    else
        want = ph_schema_new_empty();
    assert_true(ph_k8s_schema_same(got, want));
    size_t cols = 0;
    for (size_t i = 0; i < got->ntables; i++)
        cols += got->tables[i]->ncolumns;
    ph_schema_free(got);
    ph_schema_free(want);
    assert_non_null(strstr(cfg, "keyring: /etc/phantom/keys/keyring.json"));
    assert_non_null(strstr(cfg, "metrics:\n  listen: \"0.0.0.0:9432\"\n"));
    return cols;
}

/* Everything but what the webhook adds is exactly the original pod. */
static void check_rest_untouched(const json_t *orig, const json_t *patched, const char *list)
{
    json_t *p = json_deep_copy(patched);
    json_t *spec = json_object_get(p, "spec");
    json_t *ann = json_object_get(json_object_get(p, "metadata"), "annotations");
    assert_int_equal(json_object_del(ann, PH_K8S_ANN_CONFIG), 0);
    json_t *cl = json_object_get(spec, list), *vols = json_object_get(spec, "volumes");
    for (size_t i = json_array_size(cl); i-- > 0;)
        if (strcmp(json_string_value(json_object_get(json_array_get(cl, i), "name")),
                   PH_K8S_CONTAINER) == 0)
            json_array_remove(cl, i);
    for (size_t i = json_array_size(vols); i-- > 0;)
        if (strncmp(json_string_value(json_object_get(json_array_get(vols, i), "name")),
                    "phantom-db-proxy-", 17) == 0)
            json_array_remove(vols, i);
    const json_t *ospec = json_object_get(orig, "spec");
    if (!json_object_get(ospec, "volumes"))
        json_object_del(spec, "volumes"); /* added whole by the patch */
    if (!json_object_get(ospec, list))
        json_object_del(spec, list);
    if (!json_equal(p, orig)) {
        char *a = json_dumps(p, JSON_SORT_KEYS), *b = json_dumps(orig, JSON_SORT_KEYS);
        fail_msg("pod changed beyond the sidecar:\n%s\n%s", a, b);
    }
    json_decref(p);
}

/* ---- tests -------------------------------------------------------------------------------- */

/* The seed's configuration example, in a pod created by a ReplicaSet. */
static void test_seed_pod(void **state)
{
    (void)state;
    ph_sidecar_opts o;
    opts_init(&o);
    json_t *rv = load_fixture("pod_seed.json");
    json_t *pod = patched_pod(&o, rv);
    check_sidecar(pod, "containers", "cloud-sql-instance:5432");
    check_volumes(pod);
    assert_int_equal(check_config(pod), 8);
    const json_t *spec = spec_of(pod);
    assert_int_equal(json_array_size(json_object_get(spec, "containers")), 2);
    /* the app container first and untouched, the API access volume kept */
    assert_true(
        json_equal(json_array_get(json_object_get(spec, "containers"), 0),
                   json_array_get(json_object_get(spec_of(request_pod(rv)), "containers"), 0)));
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(spec, "volumes"), 0), "name")),
                        "kube-api-access-7x2kq");
    assert_int_equal(json_array_size(json_object_get(spec, "volumes")), 4);
    check_rest_untouched(request_pod(rv), pod, "containers");
    json_decref(pod);
    json_decref(rv);
    ph_sidecar_opts_free(&o);
}

/* No spec.volumes at all: the patch must add the whole array (an add to
 * /spec/volumes/- would fail); long-form annotation. */
static void test_no_volumes(void **state)
{
    (void)state;
    ph_sidecar_opts o;
    opts_init(&o);
    json_t *rv = load_fixture("pod_no_volumes.json");
    result r;
    run_review(&o, rv, &r);
    assert_non_null(r.ops);
    int whole = 0;
    size_t i;
    json_t *op;
    json_array_foreach(r.ops, i, op)
    {
        const char *path = json_string_value(json_object_get(op, "path"));
        assert_string_not_equal(path, "/spec/volumes/-");
        if (strcmp(path, "/spec/volumes") == 0) {
            whole++;
            assert_int_equal(json_array_size(json_object_get(op, "value")), 3);
        }
    }
    assert_int_equal(whole, 1);
    result_free(&r);
    json_t *pod = patched_pod(&o, rv);
    check_sidecar(pod, "containers", "10.20.0.5:6432");
    check_volumes(pod);
    assert_int_equal(check_config(pod), 4);
    assert_non_null(strstr(config_annotation(pod), "      mode: ope\n      type: date\n"));
    check_rest_untouched(request_pod(rv), pod, "containers");
    json_decref(pod);
    json_decref(rv);
    ph_sidecar_opts_free(&o);
}

/* The patched pod through the webhook again: allowed, no patch. */
static void test_idempotent(void **state)
{
    (void)state;
    ph_sidecar_opts o;
    opts_init(&o);
    json_t *rv = load_fixture("pod_seed.json");
    json_t *pod = patched_pod(&o, rv);
    json_t *again = json_deep_copy(rv);
    json_t *req = json_object_get(again, "request");
    json_object_set_new(req, "uid", json_string("11111111-2222-4333-8444-555555555555"));
    json_object_set(req, "object", pod);
    result r;
    expect_unchanged(&o, again, &r);
    assert_string_equal(r.out.reason, "sidecar already present");
    result_free(&r);
    json_t *fx = load_fixture("pod_already_injected.json");
    expect_unchanged(&o, fx, &r);
    result_free(&r);
    json_decref(fx);
    json_decref(again);
    json_decref(pod);
    json_decref(rv);
    ph_sidecar_opts_free(&o);
}

/* Pods and objects the webhook leaves alone. */
static void test_left_alone(void **state)
{
    (void)state;
    ph_sidecar_opts o;
    opts_init(&o);
    static const char *const names[] = {"pod_plain.json", "deployment.json", "pod_update.json"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        json_t *rv = load_fixture(names[i]);
        result r;
        expect_unchanged(&o, rv, &r);
        assert_null(json_object_get(r.response, "warnings"));
        result_free(&r);
        json_decref(rv);
    }
    /* "true" instead of "enabled": left alone, with a warning kubectl shows */
    json_t *rv = load_fixture("pod_not_enabled.json");
    result r;
    expect_unchanged(&o, rv, &r);
    const json_t *w = json_object_get(r.response, "warnings");
    assert_int_equal(json_array_size(w), 1);
    assert_string_equal(json_string_value(json_array_get(w, 0)),
                        "phantom: annotation phantom.cloudcondom.io/db-proxy is \"true\", not "
                        "\"enabled\": no proxy injected");
    result_free(&r);
    /* the objectSelector label without the annotation: a warning too */
    json_t *ann = json_object_get(json_object_get(request_pod(rv), "metadata"), "annotations");
    json_object_del(ann, PH_K8S_ANN_PROXY);
    expect_unchanged(&o, rv, &r);
    w = json_object_get(r.response, "warnings");
    assert_int_equal(json_array_size(w), 1);
    assert_non_null(strstr(json_string_value(json_array_get(w, 0)), "label"));
    result_free(&r);
    json_decref(rv);
    ph_sidecar_opts_free(&o);
}

/* A db-encrypt annotation the schema parser refuses: its line and reason. */
static void test_bad_annotation(void **state)
{
    (void)state;
    ph_sidecar_opts o;
    opts_init(&o);
    json_t *rv = load_fixture("pod_bad_encrypt.json");
    char *msg = expect_refused(&o, rv);
    assert_string_equal(msg, "phantom: db-encrypt annotation: line 3: customers.phone: unknown "
                             "mode \"reversible\" (expected randomized, deterministic, ope or "
                             "token)");
    free(msg);
    json_t *ann = json_object_get(json_object_get(request_pod(rv), "metadata"), "annotations");
    static const struct {
        const char *doc, *want;
    } cases[] = {
        {"customers:\n  - column: signup_day\n    mode: ope\n",
         "phantom: db-encrypt annotation: line 2: customers.signup_day: mode ope needs an "
         "integer, date, timestamp or numeric(p,s) type, not text (set `type:`)"},
        {"customers: [email\n", "phantom: db-encrypt annotation: line 2: "},
        {"- email\n", "phantom: db-encrypt annotation: line 1: the encrypt section must map"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object_set_new(ann, PH_K8S_ANN_ENCRYPT, json_string(cases[i].doc));
        msg = expect_refused(&o, rv);
        if (strncmp(msg, cases[i].want, strlen(cases[i].want)) != 0)
            fail_msg("case %zu: got %s", i, msg);
        free(msg);
    }
    json_object_set_new(ann, PH_K8S_ANN_ENCRYPT, json_integer(3));
    msg = expect_refused(&o, rv);
    assert_string_equal(msg, "phantom: annotation phantom.cloudcondom.io/db-encrypt must be a "
                             "string");
    free(msg);
    json_decref(rv);
    ph_sidecar_opts_free(&o);
}

static void test_bad_target(void **state)
{
    (void)state;
    ph_sidecar_opts o;
    opts_init(&o);
    json_t *rv = load_fixture("pod_no_target.json");
    char *msg = expect_refused(&o, rv);
    assert_string_equal(msg, "phantom: annotation phantom.cloudcondom.io/db-target is missing: "
                             "the database address the proxy connects to, HOST:PORT (e.g. "
                             "cloud-sql-instance:5432)");
    free(msg);
    json_t *ann = json_object_get(json_object_get(request_pod(rv), "metadata"), "annotations");
    static const char *const bad[] = {"db.example.com",      "db:0",         "db:65536", "db:54x",
                                      "db:5432 --config=/x", "fe80::1:5432", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_object_set_new(ann, PH_K8S_ANN_TARGET, json_string(bad[i]));
        msg = expect_refused(&o, rv);
        if (!strstr(msg, "is not HOST:PORT"))
            fail_msg("%s: %s", bad[i], msg);
        free(msg);
    }
    /* IPv6 in brackets is fine */
    json_object_set_new(ann, PH_K8S_ANN_TARGET, json_string("[fd00::5]:5432"));
    json_t *pod = patched_pod(&o, rv);
    check_sidecar(pod, "containers", "[fd00::5]:5432");
    json_decref(pod);
    json_decref(rv);
    ph_sidecar_opts_free(&o);
}

/* --native-sidecar: first init container, restartPolicy Always, startup probe. */
static void test_native_sidecar(void **state)
{
    (void)state;
    ph_sidecar_opts o;
    opts_init(&o);
    o.native = 1;
    json_t *rv = load_fixture("pod_init_container.json");
    json_t *pod = patched_pod(&o, rv);
    const json_t *init = json_object_get(spec_of(pod), "initContainers");
    assert_int_equal(json_array_size(init), 2);
    const json_t *c = json_array_get(init, 0);
    assert_string_equal(json_string_value(json_object_get(c, "name")), PH_K8S_CONTAINER);
    assert_string_equal(json_string_value(json_object_get(c, "restartPolicy")), "Always");
    check_probe(c, "startupProbe", "/readyz", PH_K8S_DEFAULT_HEALTH_PORT);
    check_sidecar(pod, "initContainers", "cloud-sql-instance:5432");
    assert_true(
        json_equal(json_array_get(init, 1),
                   json_array_get(json_object_get(spec_of(request_pod(rv)), "initContainers"), 0)));
    assert_int_equal(json_array_size(json_object_get(spec_of(pod), "containers")), 1);
    check_rest_untouched(request_pod(rv), pod, "initContainers");
    json_decref(pod);
    json_decref(rv);
    /* no initContainers yet: the whole list is added */
    rv = load_fixture("pod_seed.json");
    pod = patched_pod(&o, rv);
    assert_int_equal(json_array_size(json_object_get(spec_of(pod), "initContainers")), 1);
    check_sidecar(pod, "initContainers", "cloud-sql-instance:5432");
    check_rest_untouched(request_pod(rv), pod, "initContainers");
    /* idempotent in this mode too */
    json_t *again = json_deep_copy(rv);
    json_object_set(json_object_get(again, "request"), "object", pod);
    result r;
    expect_unchanged(&o, again, &r);
    result_free(&r);
    json_decref(again);
    json_decref(pod);
    json_decref(rv);
    ph_sidecar_opts_free(&o);
}

/* Pods whose spec the sidecar cannot join. */
static void test_conflicts(void **state)
{
    (void)state;
    ph_sidecar_opts o;
    opts_init(&o);
    json_t *rv = load_fixture("pod_seed.json");
    json_t *spec = json_object_get(request_pod(rv), "spec");
    json_t *port = json_object_get(
        json_array_get(
            json_object_get(json_array_get(json_object_get(spec, "containers"), 0), "ports"), 0),
        "containerPort");
    json_integer_set(port, 5432);
    char *msg = expect_refused(&o, rv);
    assert_non_null(strstr(msg, "container \"billing\" declares port 5432"));
    free(msg);
    json_integer_set(port, PH_K8S_DEFAULT_HEALTH_PORT);
    msg = expect_refused(&o, rv);
    assert_non_null(strstr(msg, "declares port 9432"));
    free(msg);
    json_integer_set(port, 8080);
    json_object_set_new(spec, "hostNetwork", json_true());
    msg = expect_refused(&o, rv);
    assert_non_null(strstr(msg, "hostNetwork"));
    free(msg);
    json_object_del(spec, "hostNetwork");
    json_array_append_new(json_object_get(spec, "volumes"),
                          json_pack("{s:s, s:{}}", "name", PH_K8S_VOL_STATE, "emptyDir"));
    msg = expect_refused(&o, rv);
    assert_non_null(strstr(msg, "already has a volume named \"phantom-db-proxy-state\""));
    free(msg);
    json_array_remove(json_object_get(spec, "volumes"), 1);
    json_object_set_new(spec, "containers", json_string("nope"));
    msg = expect_refused(&o, rv);
    assert_string_equal(msg, "phantom: the pod has no spec.containers");
    free(msg);
    json_decref(rv);
    ph_sidecar_opts_free(&o);
}

/* Without a keys: section the webhook can only inject a pass-through proxy. */
static void test_no_keys_config(void **state)
{
    (void)state;
    ph_sidecar_opts o;
    ph_sidecar_opts_defaults(&o);
    o.image = IMAGE;
    json_t *rv = load_fixture("pod_seed.json");
    char *msg = expect_refused(&o, rv);
    assert_non_null(strstr(msg, "has no keys: configuration"));
    free(msg);
    json_t *ann = json_object_get(json_object_get(request_pod(rv), "metadata"), "annotations");
    json_object_del(ann, PH_K8S_ANN_ENCRYPT);
    json_t *pod = patched_pod(&o, rv);
    const char *cfg = config_annotation(pod);
    assert_null(strstr(cfg, "encrypt:"));
    assert_null(strstr(cfg, "keys:"));
    int n;
    find_named(json_object_get(spec_of(pod), "volumes"), PH_K8S_VOL_KEYS, &n);
    assert_int_equal(n, 0); /* no --keys-secret, no keys volume */
    json_decref(pod);
    /* --health-port 0: no probes, no port, no metrics listener */
    o.health_port = 0;
    pod = patched_pod(&o, rv);
    const json_t *c = find_named(json_object_get(spec_of(pod), "containers"), PH_K8S_CONTAINER, &n);
    assert_null(json_object_get(c, "readinessProbe"));
    assert_null(json_object_get(c, "livenessProbe"));
    assert_null(json_object_get(c, "ports"));
    assert_null(strstr(config_annotation(pod), "metrics:"));
    json_decref(pod);
    json_decref(rv);
    ph_sidecar_opts_free(&o);
}

/* Annotation documents that need care to embed under `encrypt:`. */
static void test_embedding(void **state)
{
    (void)state;
    ph_sidecar_opts o;
    opts_init(&o);
    json_t *rv = load_fixture("pod_seed.json");
    json_t *ann = json_object_get(json_object_get(request_pod(rv), "metadata"), "annotations");
    static const char *const ok[] = {
        "customers:\r\n  - email: deterministic\r\n  - phone\r\n",
        "---\ncustomers:\n  - email: deterministic\n",
        "# classified\n%YAML 1.1\n--- # start\ncustomers:\n  - email\n",
        "{customers: [email, {phone: deterministic}], payments: [card_number]}",
        "\"Customers\":\n  - \"Email\": deterministic\nbilling.invoices:\n  - column: total\n"
        "    mode: ope\n    type: numeric(12,2)\n",
        "customers:\n  - column: notes\n    type: jsonb\n\n\n  - email",
        "customers:\n  - email: deterministic\npayments:\n  - column: customer_email\n"
        "    mode: deterministic\n    key: customers.email\n",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        json_object_set_new(ann, PH_K8S_ANN_ENCRYPT, json_string(ok[i]));
        json_t *pod = patched_pod(&o, rv);
        assert_true(check_config(pod) >= 1); /* the same schema as the annotation alone */
        json_decref(pod);
    }
    /* A second document or an end marker cannot be embedded: refused, clearly. */
    static const char *const bad[] = {"customers:\n  - email\n...\n",
                                      "customers:\n  - email\n---\npayments:\n  - card\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_object_set_new(ann, PH_K8S_ANN_ENCRYPT, json_string(bad[i]));
        char *msg = expect_refused(&o, rv);
        if (!strstr(msg, "cannot be embedded in the sidecar's config"))
            fail_msg("case %zu: %s", i, msg);
        free(msg);
    }
    /* An empty document: a pass-through proxy (no encrypt section). */
    json_object_set_new(ann, PH_K8S_ANN_ENCRYPT, json_string("# nothing yet\n"));
    json_t *pod = patched_pod(&o, rv);
    assert_null(strstr(config_annotation(pod), "encrypt:"));
    json_decref(pod);
    /* Over the API server's annotation budget: refused before it would fail later. */
    size_t big = 250 * 1024;
    char *doc = malloc(big + 64);
    assert_non_null(doc);
    strcpy(doc, "customers:\n  - email\n# ");
    memset(doc + strlen(doc), 'x', big);
    doc[strlen("customers:\n  - email\n# ") + big] = '\0';
    json_object_set_new(ann, PH_K8S_ANN_ENCRYPT, json_string(doc));
    free(doc);
    char *msg = expect_refused(&o, rv);
    assert_non_null(strstr(msg, "256 KiB"));
    free(msg);
    json_decref(rv);
    ph_sidecar_opts_free(&o);
}

/* Reviews the webhook cannot answer as AdmissionReviews: HTTP 400. */
static void test_malformed(void **state)
{
    (void)state;
    ph_sidecar_opts o;
    opts_init(&o);
    static const struct {
        const char *body, *reason;
    } bad[] = {
        {"", "request body is not JSON"},
        {"nope", "request body is not JSON"},
        {"[1,2]", "request body is not a JSON object"},
        {"{}", "apiVersion must be admission.k8s.io/v1"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"Pod\"}",
         "kind must be AdmissionReview"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}",
         "the AdmissionReview has no request"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{}}",
         "the AdmissionReview request has no uid"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":"
         "{\"uid\":7}}",
         "the AdmissionReview request has no uid"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":"
         "{\"uid\":\"\"}}",
         "the AdmissionReview request has no uid"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"apiVersion\":\"admission.k8s.io/v1\"}",
         "request body is not JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        result r;
        run_text(&o, bad[i].body, strlen(bad[i].body), &r);
        assert_int_equal(r.out.http_status, 400);
        assert_int_equal(r.out.outcome, PH_ADM_BAD_REVIEW);
        if (strncmp(r.out.body, bad[i].reason, strlen(bad[i].reason)) != 0)
            fail_msg("case %zu: %s", i, r.out.body);
        result_free(&r);
    }
    json_t *rv = load_fixture("review_v1beta1.json");
    char *text = json_dumps(rv, 0);
    result r;
    run_text(&o, text, strlen(text), &r);
    assert_int_equal(r.out.http_status, 400);
    assert_non_null(strstr(r.out.body, "admissionReviewVersions: [v1]"));
    result_free(&r);
    free(text);
    json_decref(rv);
    /* A uid is known: an AdmissionReview refusal that echoes it. */
    rv = load_fixture("pod_seed.json");
    json_object_del(json_object_get(rv, "request"), "object");
    char *msg = expect_refused(&o, rv);
    assert_string_equal(msg, "phantom: request.object is not a Pod object");
    free(msg);
    json_decref(rv);
    /* A body with a NUL byte inside: not JSON, no crash. */
    static const char nul[] = "{\"apiVersion\":\"admission.k8s.io/v1\"\0}";
    run_text(&o, nul, sizeof nul - 1, &r);
    assert_int_equal(r.out.http_status, 400);
    result_free(&r);
    ph_sidecar_opts_free(&o);
}

/* Dry runs get the same answer as real creates (sideEffects: None). */
static void test_dry_run(void **state)
{
    (void)state;
    ph_sidecar_opts o;
    opts_init(&o);
    json_t *rv = load_fixture("pod_dry_run.json");
    json_t *pod = patched_pod(&o, rv);
    check_sidecar(pod, "containers", "cloud-sql-instance:5432");
    json_decref(pod);
    json_decref(rv);
    ph_sidecar_opts_free(&o);
}

/* The operator's base config: what it may and may not hold. */
static void test_base_config(void **state)
{
    (void)state;
    static const struct {
        const char *yaml, *want;
    } bad[] = {
        {"encrypt:\n  t:\n    - c\n", "base.yaml:1: \"encrypt\" is set per pod"},
        {"target: db:5432\n", "base.yaml:1: \"target\" is set per pod"},
        {"log:\n  level: info\nmetrics:\n  listen: 0.0.0.0:1\n",
         "base.yaml:3: \"metrics\" is set per pod"},
        {"{log: {level: info}}\n", "base.yaml:1: the proxy config must be a block mapping"},
        {"- a\n", "base.yaml:1: the proxy config must be a block mapping"},
        {"log:\n  level: loud\n", "base.yaml:2: "},
        {"bogus: 1\n", "base.yaml:1: unknown setting \"bogus\""},
        {"keys:\n  keyring: /etc/phantom/keys/keyring.json\n  audit_log: /var/lib/phantom/a\n"
         "  provider: openbao\n  openbao:\n    address: https://b:8200\n    key: k\n"
         "    token: s.secret\n",
         "base.yaml: keys.openbao.token: a literal token would be copied"},
        {"keys:\n  keyring: /etc/phantom/keys/keyring.json\n  audit_log: /var/lib/phantom/a\n"
         "  provider: file\n  file: { path: /etc/phantom/keys/master.key }\n",
         "base.yaml: keys.provider file: "},
        {"keys:\n  keyring: /etc/phantom/keys/keyring.json\n  provider: openbao\n"
         "  openbao:\n    address: https://b:8200\n    key: k\n    kubernetes_role: r\n",
         "base.yaml: keys.audit_log must be a file under /var/lib/phantom/"},
        {"keys:\n  keyring: /etc/phantom/keys/keyring.json\n  audit_log: /var/lib/phantom/../x\n"
         "  provider: openbao\n  openbao:\n    address: https://b:8200\n    key: k\n"
         "    kubernetes_role: r\n",
         "base.yaml: keys.audit_log must be a file under /var/lib/phantom/"},
        {"log:\n  level: info\n...\n", "base.yaml: cannot be combined with a pod's settings"},
    };
    char err[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ph_sidecar_opts o;
        ph_sidecar_opts_defaults(&o);
        o.image = IMAGE;
        memset(err, 0, sizeof err);
        assert_int_equal(
            ph_sidecar_set_base(&o, bad[i].yaml, strlen(bad[i].yaml), "base.yaml", err, sizeof err),
            -1);
        if (strncmp(err, bad[i].want, strlen(bad[i].want)) != 0)
            fail_msg("case %zu: got %s", i, err);
        assert_null(o.base_config);
        ph_sidecar_opts_free(&o);
    }
    ph_sidecar_opts o;
    ph_sidecar_opts_defaults(&o);
    o.image = IMAGE;
    static const char no_keys[] = "log:\n  level: debug\nworkers: 2\n";
    assert_int_equal(ph_sidecar_set_base(&o, no_keys, strlen(no_keys), "b", err, sizeof err), 0);
    assert_false(o.base_has_keys);
    assert_string_equal(o.base_config, no_keys);
    assert_int_equal(ph_sidecar_set_base(&o, base_yaml, strlen(base_yaml), "b", err, sizeof err),
                     0);
    assert_true(o.base_has_keys);
    ph_sidecar_opts_free(&o);
}

static void test_options(void **state)
{
    (void)state;
    static const char *const good[] = {"50m", "1", "0.5", "64Mi", "1Gi", "2G", "1e3", "100k", ".5"};
    static const char *const badq[] = {"", "m", "64MB", "-1", "1.2.3", "64 Mi", "1e", "Mi"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(ph_k8s_quantity_ok(good[i]));
    for (size_t i = 0; i < sizeof badq / sizeof badq[0]; i++)
        assert_false(ph_k8s_quantity_ok(badq[i]));
    ph_sidecar_opts o;
    char err[256];
    ph_sidecar_opts_defaults(&o);
    assert_int_equal(ph_sidecar_opts_check(&o, err, sizeof err), -1); /* no image */
    o.image = IMAGE;
    assert_int_equal(ph_sidecar_opts_check(&o, err, sizeof err), 0);
    o.health_port = o.proxy_port;
    assert_int_equal(ph_sidecar_opts_check(&o, err, sizeof err), -1);
    o.health_port = 0;
    o.keys_secret = "Bad_Name";
    assert_int_equal(ph_sidecar_opts_check(&o, err, sizeof err), -1);
    o.keys_secret = "phantom-keys";
    o.memory_limit = "lots";
    assert_int_equal(ph_sidecar_opts_check(&o, err, sizeof err), -1);
    assert_non_null(strstr(err, "--memory-limit"));
    o.memory_limit = "";
    assert_int_equal(ph_sidecar_opts_check(&o, err, sizeof err), 0);
    o.pull_policy = "Sometimes";
    assert_int_equal(ph_sidecar_opts_check(&o, err, sizeof err), -1);
    /* an empty limit is omitted from the spec */
    o.pull_policy = "IfNotPresent";
    json_t *c = ph_sidecar_container(&o, "db:5432");
    assert_null(
        json_object_get(json_object_get(json_object_get(c, "resources"), "limits"), "memory"));
    assert_string_equal(json_string_value(json_object_get(c, "imagePullPolicy")), "IfNotPresent");
    json_decref(c);
}

static void test_patch_helpers(void **state)
{
    (void)state;
    char *p = ph_patch_path("/metadata/annotations", "phantom.cloudcondom.io/db-proxy-config");
    assert_string_equal(p, "/metadata/annotations/phantom.cloudcondom.io~1db-proxy-config");
    free(p);
    p = ph_patch_path("/a", "x~/y");
    assert_string_equal(p, "/a/x~0~1y");
    free(p);
    /* front insertion keeps the items' order */
    json_t *ops = json_array(), *items = json_pack("[s, s]", "a", "b");
    json_t *existing = json_pack("[s]", "z");
    assert_int_equal(ph_patch_add_items(ops, "/l", existing, items, 1), 0);
    json_t *doc = json_pack("{s:[s]}", "l", "z");
    json_t *out = apply_patch(doc, ops);
    json_t *want = json_pack("{s:[s, s, s]}", "l", "a", "b", "z");
    assert_true(json_equal(out, want));
    /* an existing member that is not a list cannot be appended to */
    json_t *str = json_string("x");
    assert_int_equal(ph_patch_add_items(ops, "/l", str, items, 0), -1);
    char *b64 = ph_patch_encode(ops);
    json_t *back = decode_patch(b64);
    assert_true(json_equal(back, ops));
    free(b64);
    json_decref(back);
    json_decref(str);
    json_decref(want);
    json_decref(out);
    json_decref(doc);
    json_decref(existing);
    json_decref(items);
    json_decref(ops);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_pod),       cmocka_unit_test(test_no_volumes),
        cmocka_unit_test(test_idempotent),     cmocka_unit_test(test_left_alone),
        cmocka_unit_test(test_bad_annotation), cmocka_unit_test(test_bad_target),
        cmocka_unit_test(test_native_sidecar), cmocka_unit_test(test_conflicts),
        cmocka_unit_test(test_no_keys_config), cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_malformed),      cmocka_unit_test(test_dry_run),
        cmocka_unit_test(test_base_config),    cmocka_unit_test(test_options),
        cmocka_unit_test(test_patch_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
