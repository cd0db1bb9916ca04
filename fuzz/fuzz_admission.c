/*
 * fuzz_admission.c — libFuzzer target for the admission webhook's review
 * handling (src/k8s/admission.c and what it calls).
 *
 * The first byte picks what the input is (so the seed corpus can aim at
 * each):
 *   byte % 3 == 0  the whole input is the HTTP body of a review ('{' is 123);
 *   byte % 3 == 1  the rest is a pod's db-encrypt annotation ('d'), in a
 *                  fixed review of an annotated pod;
 *   byte % 3 == 2  the rest is the operator's base config ('b'), then the
 *                  fixed review.
 * Checks, on every input: no crash, UB or leak; a 200 answer is an
 * AdmissionReview (JSON) whose response.uid is the request's uid, and an
 * input that is a v1 AdmissionReview with a string uid always gets one; a
 * patch is base64 of a JSON array of "add" operations that applies, under
 * RFC 6902's rules, to the pod in the request; for an injected annotation,
 * the pod is either patched with a config that reads as the same schema as
 * the annotation alone, or refused with a "phantom: " message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "k8s/admission.h"
#include "k8s/sidecar.h"
#include "k8s/sidecar_config.h"
#include "schema/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char base_yaml[] = "log:\n  level: error\n"
                                "keys:\n  keyring: /etc/phantom/keys/keyring.json\n"
                                "  audit_log: /var/lib/phantom/audit.jsonl\n"
                                "  provider: openbao\n  openbao:\n"
                                "    address: https://bao:8200\n    key: k\n"
                                "    kubernetes_role: r\n";

static const char review_template[] =
    "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{"
    "\"uid\":\"fuzz-uid\",\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"},"
    "\"resource\":{\"group\":\"\",\"version\":\"v1\",\"resource\":\"pods\"},"
    "\"namespace\":\"ns\",\"operation\":\"CREATE\",\"object\":{\"apiVersion\":\"v1\","
    "\"kind\":\"Pod\",\"metadata\":{\"generateName\":\"app-\",\"annotations\":{"
    "\"phantom.cloudcondom.io/db-proxy\":\"enabled\","
    "\"phantom.cloudcondom.io/db-target\":\"db:5432\","
    "\"phantom.cloudcondom.io/db-encrypt\":\"customers:\\n  - email: deterministic\\n\"}},"
    "\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":\"app:1\"}]}}}}";

/* ---- RFC 6902 "add" ---------------------------------------------------------- */

static char *unescape(const char *s, size_t n)
{
    char *out = malloc(n + 1), *w = out;
    if (!out)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '~') {
            if (i + 1 >= n || (s[i + 1] != '0' && s[i + 1] != '1'))
                abort(); /* the webhook never writes a bad escape */
            *w++ = s[++i] == '0' ? '~' : '/';
        } else {
            *w++ = s[i];
        }
    }
    *w = '\0';
    return out;
}

static int index_of(const char *tok, size_t size, size_t *idx)
{
    if (strcmp(tok, "-") == 0) {
        *idx = size;
        return 0;
    }
    char *end;
    unsigned long v = strtoul(tok, &end, 10);
    if (!*tok || *end || (tok[0] == '0' && tok[1]) || v > size)
        return -1;
    *idx = v;
    return 0;
}

static int apply_add(json_t *doc, const char *path, json_t *value)
{
    if (path[0] != '/')
        return -1;
    json_t *cur = doc;
    for (const char *p = path + 1;;) {
        const char *slash = strchr(p, '/');
        char *tok = unescape(p, slash ? (size_t)(slash - p) : strlen(p));
        size_t idx;
        int rc = -1;
        json_t *next = NULL;
        if (!slash) {
            if (json_is_object(cur))
                rc = json_object_set(cur, tok, value);
            else if (json_is_array(cur) && index_of(tok, json_array_size(cur), &idx) == 0)
                rc = json_array_insert(cur, idx, value);
            free(tok);
            return rc;
        }
        if (json_is_object(cur))
            next = json_object_get(cur, tok);
        else if (json_is_array(cur) && strcmp(tok, "-") != 0 &&
                 index_of(tok, json_array_size(cur), &idx) == 0)
            next = json_array_get(cur, idx);
        free(tok);
        if (!next)
            return -1;
        cur = next;
        p = slash + 1;
    }
}

static json_t *decode(const char *b64)
{
    size_t n = strlen(b64);
    if (n % 4 != 0)
        abort();
    unsigned char *raw = malloc(n / 4 * 3 + 1);
    if (!raw)
        abort();
    int len = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
    if (len < 0)
        abort();
    len -= (n && b64[n - 1] == '=') + (n > 1 && b64[n - 2] == '=');
    json_t *ops = json_loadb((const char *)raw, (size_t)len, 0, NULL);
    free(raw);
    if (!json_is_array(ops))
        abort();
    return ops;
}

/* The patched pod (new reference); aborts when an op does not apply. */
static json_t *apply(const json_t *pod, const char *b64)
{
    json_t *ops = decode(b64), *doc = json_deep_copy(pod), *op;
    size_t i;
    if (!doc)
        abort();
    json_array_foreach(ops, i, op)
    {
        const char *kind = json_string_value(json_object_get(op, "op"));
        const char *path = json_string_value(json_object_get(op, "path"));
        if (!kind || strcmp(kind, "add") != 0 || !path ||
            apply_add(doc, path, json_object_get(op, "value")) != 0)
            abort();
    }
    json_decref(ops);
    return doc;
}

/* ---- checks ---------------------------------------------------------------------- */

/* The uid an answer must carry, or NULL when the input is no v1 review. */
static const char *expected_uid(const json_t *in)
{
    const char *av = json_string_value(json_object_get(in, "apiVersion"));
    const char *kind = json_string_value(json_object_get(in, "kind"));
    const char *uid = json_string_value(json_object_get(json_object_get(in, "request"), "uid"));
    if (!av || strcmp(av, "admission.k8s.io/v1") != 0 || !kind ||
        strcmp(kind, "AdmissionReview") != 0 || !uid || !*uid)
        return NULL;
    return uid;
}

/* Checks one answer; returns the patched pod (or NULL when not patched). */
static json_t *check(const ph_sidecar_opts *o, const char *body, size_t len, int *refused,
                     char *message, size_t msglen)
{
    ph_admission_out out;
    ph_admission_review(o, body, len, &out);
    json_t *in = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    const char *uid = expected_uid(in);
    if (!out.body || (uid && out.http_status != 200) ||
        (out.http_status != 200 && out.http_status != 400))
        abort();
    json_t *pod = NULL;
    *refused = 0;
    if (out.http_status == 200) {
        json_t *rv = json_loads(out.body, 0, NULL);
        json_t *resp = json_object_get(rv, "response");
        const char *ruid = json_string_value(json_object_get(resp, "uid"));
        if (!rv || !ruid || !uid || strcmp(ruid, uid) != 0)
            abort();
        const char *patch = json_string_value(json_object_get(resp, "patch"));
        int ok = json_is_true(json_object_get(resp, "allowed"));
        if (patch) {
            if (!ok)
                abort();
            pod = apply(json_object_get(json_object_get(in, "request"), "object"), patch);
        } else if (!ok) {
            const char *m =
                json_string_value(json_object_get(json_object_get(resp, "status"), "message"));
            if (!m || strncmp(m, "phantom: ", 9) != 0)
                abort();
            snprintf(message, msglen, "%s", m);
            *refused = 1;
        }
        json_decref(rv);
    }
    json_decref(in);
    ph_admission_out_free(&out);
    return pod;
}

/* The config annotation of a patched pod reads as the annotation alone. */
static void check_config(const json_t *pod, const char *enc, size_t len)
{
    const json_t *ann = json_object_get(json_object_get(pod, "metadata"), "annotations");
    const char *cfg = json_string_value(json_object_get(ann, PH_K8S_ANN_CONFIG));
    ph_schema *got = NULL, *want = NULL;
    char err[512];
    if (!cfg || ph_schema_load_buffer(&got, cfg, strlen(cfg), "c", err, sizeof err) != 0 ||
        ph_schema_load_section_buffer(&want, enc, len, "e", err, sizeof err) != 0 ||
        !ph_k8s_schema_same(got, want))
        abort();
    ph_schema_free(got);
    ph_schema_free(want);
}

/* ---- modes ------------------------------------------------------------------------- */

static void with_annotation(ph_sidecar_opts *o, const uint8_t *data, size_t size)
{
    json_t *rv = json_loads(review_template, 0, NULL);
    json_t *ann = json_object_get(
        json_object_get(json_object_get(json_object_get(rv, "request"), "object"), "metadata"),
        "annotations");
    json_t *v = json_stringn((const char *)data, size); /* NULL: not UTF-8 */
    if (v && !memchr(data, '\0', size)) {
        json_object_set_new(ann, PH_K8S_ANN_ENCRYPT, v);
        char *body = json_dumps(rv, JSON_COMPACT);
        int refused;
        char msg[700];
        json_t *pod = check(o, body, strlen(body), &refused, msg, sizeof msg);
        if (pod)
            check_config(pod, (const char *)data, size);
        else if (!refused)
            abort(); /* an annotated pod is patched or refused */
        json_decref(pod);
        free(body);
    } else {
        json_decref(v);
    }
    json_decref(rv);
}

static void with_base(ph_sidecar_opts *o, const uint8_t *data, size_t size)
{
    char err[512];
    memset(err, 'x', sizeof err);
    if (ph_sidecar_set_base(o, (const char *)data, size, "base", err, sizeof err) != 0) {
        if (!memchr(err, '\0', sizeof err) || strncmp(err, "base", 4) != 0 || o->base_config)
            abort();
        return;
    }
    int refused;
    char msg[700];
    json_t *pod = check(o, review_template, strlen(review_template), &refused, msg, sizeof msg);
    /* a base config that passed its checks combines with a plain annotation;
     * without keys: the encrypting pod is refused for that reason only */
    if (!pod && !(refused && !o->base_has_keys && strstr(msg, "no keys: configuration")))
        abort();
    json_decref(pod);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ph_sidecar_opts o;
    char err[512];
    ph_sidecar_opts_defaults(&o);
    o.image = "phantom:fuzz";
    o.keys_secret = "phantom-keys";
    if (ph_sidecar_set_base(&o, base_yaml, sizeof base_yaml - 1, "b", err, sizeof err) != 0)
        abort();
    o.native = size > 1 && (data[size - 1] & 1);
    int mode = size ? data[0] % 3 : 0;
    if (mode == 1) {
        with_annotation(&o, data + 1, size - 1);
    } else if (mode == 2) {
        ph_sidecar_opts_free(&o);
        with_base(&o, data + 1, size - 1);
    } else {
        int refused;
        char msg[700];
        json_decref(check(&o, (const char *)data, size, &refused, msg, sizeof msg));
    }
    ph_sidecar_opts_free(&o);
    return 0;
}
