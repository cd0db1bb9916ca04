#!/usr/bin/env bash
# `phantom webhook`: the Kubernetes admission webhook over real HTTPS.
#
#   * deploy/make-webhook-cert.sh makes the CA and the serving certificate for
#     phantom-webhook.phantom-system.svc; every request below verifies it
#     (the CA, and the Service DNS name via SNI);
#   * POSTed AdmissionReview fixtures (tests/fixtures/admission/): the seed's
#     pod gets a patch that — APPLIED with `kubectl patch --local --type=json`
#     (the API server's JSON Patch code; a strict RFC 6902 applier when kubectl
#     is absent) — yields the sidecar once, its args, volumes, probes and
#     security context, with the rest of the pod untouched; a pod without
#     spec.volumes gets the whole list; the generated sidecar config passes
#     `phantom check-config`; a second pass over the patched pod changes
#     nothing; a bad db-encrypt annotation is refused with its line and reason;
#   * the injected container's args run the real proxy (pass-through pod);
#   * malformed input: not JSON, v1beta1, wrong method/path/content type, a
#     5 MiB body, plaintext HTTP, TLS 1.1 — each a clear error, and the server
#     still answers afterwards; 40 concurrent reviews all answered;
#   * SIGHUP reloads a rotated certificate; a bad --proxy-config stops start-up;
#   * deploy/: every manifest parses, the webhook starts with the Deployment's
#     own args and ConfigMap, the example app's pod template is injected;
#   * Dockerfile: the runtime packages cover every NEEDED library of bin/phantom.
# No cluster and no PostgreSQL needed.
set -u
source "$(dirname "$0")/../lib/harness.sh"

ROOT="$HARNESS_ROOT"
T="$PGH_TMP"
FX="$ROOT/tests/fixtures/admission"
PY=/usr/bin/python3
SVC=phantom-webhook.phantom-system.svc
IMAGE=registry.example.com/phantom:0.1.0
ASAN_OPTS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"

# ---- helpers (Python stdlib only, unless PyYAML is there for the manifests) ----------

cat >"$T/wh.py" <<'PYEOF'
import base64, http.client, json, socket, ssl, sys, threading

def ctx(ca):
    c = ssl.create_default_context(cafile=ca)
    c.minimum_version = ssl.TLSVersion.TLSv1_2
    return c

class Conn(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1:port, verifying the certificate for the Service name."""
    def __init__(self, port, ca, sni):
        super().__init__(sni, port, context=ctx(ca), timeout=10)
        self._port, self._sni, self._ctx = port, sni, ctx(ca)
    def connect(self):
        s = socket.create_connection(("127.0.0.1", self._port), timeout=10)
        self.sock = self._ctx.wrap_socket(s, server_hostname=self._sni)

def request(port, ca, sni, method, path, body=None, ctype="application/json"):
    c = Conn(port, ca, sni)
    headers = {"Content-Type": ctype} if ctype else {}
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data

def review_ops(resp):
    r = json.loads(resp)["response"]
    return json.loads(base64.b64decode(r["patch"])) if "patch" in r else None

def unescape(tok):
    return tok.replace("~1", "/").replace("~0", "~")

def apply(doc, ops):
    """Strict RFC 6902 'add' (what the webhook emits): parents must exist."""
    for op in ops:
        assert op["op"] == "add", op
        toks = [unescape(t) for t in op["path"].split("/")[1:]]
        cur = doc
        for t in toks[:-1]:
            cur = cur[int(t)] if isinstance(cur, list) else cur[t]
        last = toks[-1]
        if isinstance(cur, dict):
            cur[last] = op["value"]
        else:
            i = len(cur) if last == "-" else int(last)
            assert 0 <= i <= len(cur), op["path"]
            cur.insert(i, op["value"])
    return doc

def named(lst, name):
    return [x for x in (lst or []) if x.get("name") == name]

def check_pod(orig, pod, lst, target, image, listen):
    spec = pod["spec"]
    side = named(spec[lst], "phantom-db-proxy")
    assert len(side) == 1, "sidecar present %d times" % len(side)
    c = side[0]
    assert c["image"] == image, c["image"]
    assert c["args"] == ["proxy", "--config=/etc/phantom/pod/phantom.yaml",
                         "--listen=" + listen, "--target=" + target], c["args"]
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["resources"]["limits"]["memory"] and c["resources"]["requests"]["cpu"]
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["phantom-db-proxy-config"]["mountPath"] == "/etc/phantom/pod"
    assert mounts["phantom-db-proxy-config"]["readOnly"] is True
    vols = {v["name"]: v for v in spec["volumes"]}
    item = vols["phantom-db-proxy-config"]["downwardAPI"]["items"][0]
    assert item["fieldRef"]["fieldPath"] == \
        "metadata.annotations['phantom.cloudcondom.io/db-proxy-config']"
    assert "emptyDir" in vols["phantom-db-proxy-state"]
    assert vols["phantom-db-proxy-keys"]["secret"]["secretName"] == "phantom-db-proxy-keys"
    # everything else exactly as it was
    rest = json.loads(json.dumps(pod))
    del rest["metadata"]["annotations"]["phantom.cloudcondom.io/db-proxy-config"]
    rest["spec"][lst] = [x for x in rest["spec"][lst] if x["name"] != "phantom-db-proxy"]
    rest["spec"]["volumes"] = [v for v in rest["spec"]["volumes"]
                               if not v["name"].startswith("phantom-db-proxy-")]
    for k in (lst, "volumes"):
        if k not in orig["spec"] and not rest["spec"][k]:
            del rest["spec"][k]
    orig = json.loads(json.dumps(orig))
    for o in (rest, orig):  # `kubectl patch --local` drops managedFields itself
        o["metadata"].pop("managedFields", None)
    assert rest == orig, "the pod changed beyond the sidecar"

def main():
    cmd = sys.argv[1]
    if cmd == "req":  # req PORT CA SNI METHOD PATH [BODYFILE [CTYPE]] -> status; body to stdout
        port, ca, sni, method, path = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
        body = open(sys.argv[7], "rb").read() if len(sys.argv) > 7 and sys.argv[7] else None
        ctype = sys.argv[8] if len(sys.argv) > 8 else "application/json"
        try:
            st, data = request(port, ca, sni, method, path, body, ctype or None)
        except (ssl.SSLError, ConnectionError, OSError) as e:
            print("ERR " + type(e).__name__)
            return
        sys.stdout.write("%d\n" % st)
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
    elif cmd == "plain":  # plain PORT: an HTTP request without TLS
        c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[2]), timeout=5)
        try:
            c.request("GET", "/healthz")
            print("HTTP %d" % c.getresponse().status)
        except Exception as e:
            print("ERR " + type(e).__name__)
    elif cmd == "ops":  # ops RESP -> the decoded JSON Patch
        print(json.dumps(review_ops(open(sys.argv[2]).read())))
    elif cmd == "object":  # object REVIEW -> request.object
        print(json.dumps(json.load(open(sys.argv[2]))["request"]["object"]))
    elif cmd == "apply":  # apply POD OPS -> patched pod
        print(json.dumps(apply(json.load(open(sys.argv[2])), json.load(open(sys.argv[3])))))
    elif cmd == "wrap":  # wrap REVIEW POD UID -> review of POD
        rv = json.load(open(sys.argv[2]))
        rv["request"]["object"] = json.load(open(sys.argv[3]))
        rv["request"]["uid"] = sys.argv[4]
        print(json.dumps(rv))
    elif cmd == "drop-annotation":  # drop-annotation REVIEW KEY
        rv = json.load(open(sys.argv[2]))
        del rv["request"]["object"]["metadata"]["annotations"][sys.argv[3]]
        print(json.dumps(rv))
    elif cmd == "check":  # check ORIG PATCHED LIST TARGET IMAGE LISTEN
        check_pod(json.load(open(sys.argv[2])), json.load(open(sys.argv[3])), *sys.argv[4:8])
        print("pod ok")
    elif cmd == "get":  # get FILE key.path -> value (strings raw, else JSON)
        v = json.load(open(sys.argv[2]))
        for k in sys.argv[3].split(".") if sys.argv[3] else []:
            v = v[int(k)] if isinstance(v, list) else v[k]
        print(v if isinstance(v, str) else json.dumps(v))
    elif cmd == "config":  # config POD -> the sidecar config annotation
        sys.stdout.write(json.load(open(sys.argv[2]))["metadata"]["annotations"]
                         ["phantom.cloudcondom.io/db-proxy-config"])
    elif cmd == "sidecar-args":  # sidecar-args POD -> one arg per line
        c = named(json.load(open(sys.argv[2]))["spec"]["containers"], "phantom-db-proxy")[0]
        print("\n".join(c["args"]))
    elif cmd == "burst":  # burst PORT CA SNI FILE N -> count of 200 answers with the right uid
        port, ca, sni, f, n = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
        body = open(f, "rb").read()
        uid = json.loads(body)["request"]["uid"]
        good = []
        def one():
            st, data = request(port, ca, sni, "POST", "/mutate", body)
            if st == 200 and json.loads(data)["response"]["uid"] == uid:
                good.append(1)
        ts = [threading.Thread(target=one) for _ in range(n)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        print(len(good))
    elif cmd == "review-from-template":  # Deployment YAML-as-JSON -> review of its pod template
        dep = [d for d in json.load(open(sys.argv[2])) if d["kind"] == "Deployment"][0]
        tpl = dep["spec"]["template"]
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": dict(tpl["metadata"], generateName=dep["metadata"]["name"] + "-",
                                namespace=dep["metadata"]["namespace"]),
               "spec": tpl["spec"]}
        rv = json.load(open(sys.argv[3]))
        rv["request"]["object"] = pod
        rv["request"]["namespace"] = dep["metadata"]["namespace"]
        print(json.dumps(rv))
    else:
        raise SystemExit("unknown command " + cmd)

main()
PYEOF

py() { "$PY" "$T/wh.py" "$@"; }

# req METHOD PATH [BODYFILE [CTYPE]]: sets STATUS and BODY (file $T/body)
req() {
    py req "$WH_PORT" "$CA" "$SVC" "$@" >"$T/resp.raw"
    STATUS="$(head -n1 "$T/resp.raw")"
    tail -n +2 "$T/resp.raw" >"$T/body"
    BODY="$(cat "$T/body")"
}
alive() {
    req GET /healthz
    assert_eq 200 "$STATUS" "$1: the webhook still answers"
}

# Applies a JSON Patch to a pod with kubectl (the API server's implementation),
# or with the strict Python applier when kubectl is not installed.
APPLIER=python
command -v kubectl >/dev/null 2>&1 && APPLIER=kubectl
apply_patch() { # POD OPS -> patched pod on stdout
    if [ "$APPLIER" = kubectl ]; then
        timeout 30 kubectl patch --local -f "$1" --type=json -p "$(cat "$2")" -o json
    else
        py apply "$1" "$2"
    fi
}
echo "JSON Patch applier: $APPLIER"

# yaml_to_json FILE: every document of a YAML file as a JSON list
yaml_to_json() {
    if [ "${HAVE_PYYAML:-0}" -eq 1 ] || "$PY" -c 'import yaml' 2>/dev/null; then
        "$PY" -c 'import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))' "$1"
    elif command -v kubectl >/dev/null 2>&1; then
        # kubectl's --local mode parses YAML offline; one object per document
        timeout 30 kubectl patch --local -f "$1" --type=json -p '[]' -o json |
            "$PY" -c 'import json, sys
dec, s, out = json.JSONDecoder(), sys.stdin.read(), []
i = 0
while i < len(s):
    if s[i].isspace(): i += 1; continue
    o, i = dec.raw_decode(s, i); out.append(o)
print(json.dumps(out))'
    else
        fail "checking deploy/*.yaml needs python3-yaml or kubectl (apt-get install python3-yaml)"
    fi
}

start_webhook() { # NAME ARGS... -> WH_PID, WH_LOG, WH_ASAN
    local name="$1"
    shift
    WH_LOG="$T/$name.log"
    WH_ASAN="$T/asan.$name"
    mkdir -p "$WH_ASAN"
    ASAN_OPTIONS="log_path=$WH_ASAN/asan:$ASAN_OPTS" \
        UBSAN_OPTIONS="log_path=$WH_ASAN/ubsan:print_stacktrace=1:halt_on_error=1" \
        "$PHANTOM_BIN" webhook "$@" >"$WH_LOG" 2>&1 </dev/null &
    WH_PID=$!
    pgh_defer "kill -KILL $WH_PID 2>/dev/null; true"
    for _ in $(seq 1 100); do
        req GET /healthz
        [ "$STATUS" = 200 ] && return 0
        kill -0 "$WH_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$WH_LOG" >&2
    fail "$name: the webhook did not come up"
}

# ---- certificates ----------------------------------------------------------------------

bash "$ROOT/deploy/make-webhook-cert.sh" --out "$T/certs" >"$T/cabundle" 2>"$T/cert.log" ||
    fail "make-webhook-cert.sh failed: $(cat "$T/cert.log")"
CA="$T/certs/ca.crt"
assert_eq "$(base64 -w0 <"$CA")" "$(cat "$T/cabundle")" "make-webhook-cert.sh prints the caBundle"
assert_contains "$(openssl x509 -in "$T/certs/tls.crt" -noout -ext subjectAltName)" \
    "DNS:$SVC" "the serving certificate names the Service"
assert_contains "$(cat "$T/certs/mutating-webhook.yaml")" "caBundle: $(cat "$T/cabundle")" \
    "the webhook configuration carries the CA"
assert_eq 600 "$(stat -c %a "$T/certs/tls.key")" "the private key is not world-readable"
cp "$T/certs/tls.crt" "$T/tls.crt"
cp "$T/certs/tls.key" "$T/tls.key"

cat >"$T/base.yaml" <<'Y'
upstream_tls:
  sslmode: verify-full
  sslrootcert: /etc/phantom/keys/db-ca.pem
log:
  format: json
keys:
  keyring: /etc/phantom/keys/keyring.json
  audit_log: /var/lib/phantom/audit.jsonl
  provider: openbao
  openbao:
    address: https://openbao.example.eu:8200
    key: phantom
    kubernetes_role: phantom-db-proxy
Y

# ---- a bad base config stops start-up --------------------------------------------------

printf 'keys:\n  keyring: /k.json\n  provider: openbao\n  openbao:\n    address: https://b:8200\n    key: k\n    token: s.literal\n  audit_log: /var/lib/phantom/a\n' >"$T/bad-base.yaml"
OUT=$(ASAN_OPTIONS="$ASAN_OPTS" timeout 20 "$PHANTOM_BIN" webhook --tls-cert "$T/tls.crt" \
    --tls-key "$T/tls.key" --sidecar-image "$IMAGE" --proxy-config "$T/bad-base.yaml" 2>&1)
assert_eq 2 "$?" "a literal OpenBao token in --proxy-config: exit 2"
assert_contains "$OUT" "keys.openbao.token: a literal token would be copied" "... with the reason"
OUT=$(ASAN_OPTIONS="$ASAN_OPTS" timeout 20 "$PHANTOM_BIN" webhook --tls-cert "$T/tls.crt" \
    --tls-key "$T/certs/ca.key" --sidecar-image "$IMAGE" --listen 127.0.0.1:1 2>&1)
assert_eq 1 "$?" "a key that does not match the certificate: exit 1"
assert_contains "$OUT" "does not match the certificate" "... with the reason"

# ---- the webhook -------------------------------------------------------------------------

WH_PORT=$(pgh_free_port)
PROXY_PORT=$(pgh_free_port)
start_webhook main --listen "127.0.0.1:$WH_PORT" --tls-cert "$T/tls.crt" --tls-key "$T/tls.key" \
    --sidecar-image "$IMAGE" --proxy-port "$PROXY_PORT" --proxy-config "$T/base.yaml" \
    --keys-secret phantom-db-proxy-keys
ok "webhook up on 127.0.0.1:$WH_PORT (certificate verified for $SVC)"
LISTEN="127.0.0.1:$PROXY_PORT"

# The seed's pod: patched; the patch applied to the pod gives the sidecar.
req POST /mutate "$FX/pod_seed.json"
assert_eq 200 "$STATUS" "seed pod: HTTP 200"
echo "$BODY" >"$T/seed.resp"
assert_eq "7f0c0c55-2d3e-4d0f-9a51-1f6a3c2b9e01" "$(py get "$T/seed.resp" response.uid)" \
    "response.uid is the request's uid"
assert_eq true "$(py get "$T/seed.resp" response.allowed)" "seed pod: allowed"
assert_eq JSONPatch "$(py get "$T/seed.resp" response.patchType)" "seed pod: patchType JSONPatch"
py ops "$T/seed.resp" >"$T/seed.ops"
py object "$FX/pod_seed.json" >"$T/seed.pod"
apply_patch "$T/seed.pod" "$T/seed.ops" >"$T/seed.patched" || fail "the seed patch does not apply"
OUT=$(py check "$T/seed.pod" "$T/seed.patched" containers cloud-sql-instance:5432 "$IMAGE" "$LISTEN" 2>&1)
assert_eq "pod ok" "$OUT" "seed pod patched ($APPLIER): sidecar once, args, volumes, probes, securityContext; app untouched"

# The generated sidecar config is one `phantom check-config` accepts.
py config "$T/seed.patched" >"$T/seed-sidecar.yaml"
OUT=$(ASAN_OPTIONS="$ASAN_OPTS" timeout 20 "$PHANTOM_BIN" check-config "$T/seed-sidecar.yaml" 2>&1)
assert_eq 0 "$?" "the sidecar's generated phantom.yaml passes check-config"
assert_contains "$OUT" "8 protected columns in 3 tables" "... with the seed's 8 columns"

# Idempotent: the patched pod again -> allowed, no patch.
py wrap "$FX/pod_seed.json" "$T/seed.patched" 0b9e4f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b >"$T/again.json"
req POST /mutate "$T/again.json"
assert_eq 200 "$STATUS" "second pass: HTTP 200"
assert_eq '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"0b9e4f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b","allowed":true}}' \
    "$BODY" "second pass over the patched pod: allowed, no patch"

# No spec.volumes: the whole list is added, and the patch applies.
req POST /mutate "$FX/pod_no_volumes.json"
echo "$BODY" >"$T/nv.resp"
py ops "$T/nv.resp" >"$T/nv.ops"
assert_contains "$(cat "$T/nv.ops")" '"path": "/spec/volumes", "value": [' \
    "no volumes yet: /spec/volumes is added whole"
py object "$FX/pod_no_volumes.json" >"$T/nv.pod"
apply_patch "$T/nv.pod" "$T/nv.ops" >"$T/nv.patched" || fail "the no-volumes patch does not apply"
OUT=$(py check "$T/nv.pod" "$T/nv.patched" containers 10.20.0.5:6432 "$IMAGE" "$LISTEN" 2>&1)
assert_eq "pod ok" "$OUT" "pod without volumes patched ($APPLIER)"

# A bad db-encrypt annotation: refused, with its line and reason.
req POST /mutate "$FX/pod_bad_encrypt.json"
echo "$BODY" >"$T/bad.resp"
assert_eq false "$(py get "$T/bad.resp" response.allowed)" "bad annotation: refused"
assert_eq 400 "$(py get "$T/bad.resp" response.status.code)" "bad annotation: code 400"
assert_eq 'phantom: db-encrypt annotation: line 3: customers.phone: unknown mode "reversible" (expected randomized, deterministic, ope or token)' \
    "$(py get "$T/bad.resp" response.status.message)" "bad annotation: the message kubectl shows"
req POST /mutate "$FX/pod_no_target.json"
echo "$BODY" >"$T/nt.resp"
assert_contains "$(py get "$T/nt.resp" response.status.message)" \
    "phantom.cloudcondom.io/db-target is missing" "no db-target: refused with a clear message"

# Left alone: plain pod, Deployment, "true" instead of "enabled" (with a warning).
for f in pod_plain deployment pod_update; do
    req POST /mutate "$FX/$f.json"
    echo "$BODY" >"$T/$f.resp"
    assert_eq "true|" "$(py get "$T/$f.resp" response.allowed)|$(grep -o '"patch"' "$T/$f.resp")" \
        "$f: allowed, no patch"
done
req POST /mutate "$FX/pod_not_enabled.json"
assert_contains "$BODY" '"warnings":["phantom: annotation phantom.cloudcondom.io/db-proxy is \"true\", not \"enabled\": no proxy injected"]' \
    "annotation \"true\": allowed with a warning"

# ---- the injected args run the real proxy (pass-through pod) ---------------------------

py drop-annotation "$FX/pod_seed.json" phantom.cloudcondom.io/db-encrypt >"$T/pt.json"
req POST /mutate "$T/pt.json"
echo "$BODY" >"$T/pt.resp"
py ops "$T/pt.resp" >"$T/pt.ops"
py object "$T/pt.json" >"$T/pt.pod"
apply_patch "$T/pt.pod" "$T/pt.ops" >"$T/pt.patched" || fail "pass-through patch does not apply"
# what the keys Secret would hold at /etc/phantom/keys (the proxy reads the CA at start)
mkdir -p "$T/keys"
cp "$T/certs/ca.crt" "$T/keys/db-ca.pem"
py config "$T/pt.patched" | sed "s|/etc/phantom/keys/|$T/keys/|g" >"$T/pt-sidecar.yaml"
mapfile -t SARGS < <(py sidecar-args "$T/pt.patched")
SARGS=("${SARGS[@]/#--config=\/etc\/phantom\/pod\/phantom.yaml/--config=$T/pt-sidecar.yaml}")
SP_ASAN="$T/asan.sidecar"
mkdir -p "$SP_ASAN"
ASAN_OPTIONS="log_path=$SP_ASAN/asan:$ASAN_OPTS" "$PHANTOM_BIN" "${SARGS[@]}" >"$T/sidecar.log" 2>&1 &
SP_PID=$!
pgh_defer "kill -KILL $SP_PID 2>/dev/null; true"
up=0
for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PROXY_PORT") 2>/dev/null; then
        up=1
        break
    fi
    kill -0 "$SP_PID" 2>/dev/null || break
    sleep 0.1
done
[ "$up" -eq 1 ] || fail "the sidecar's args do not start the proxy: $(tail -5 "$T/sidecar.log")"
ok "the injected args (${SARGS[*]:0:1} --config --listen=$LISTEN --target=...) start the proxy"
phx_stop "$SP_PID" "$T/sidecar.log" "$SP_ASAN" || fail "the sidecar proxy did not stop cleanly"
ok "sidecar proxy stopped cleanly"

# ---- malformed input ------------------------------------------------------------------------

printf 'not json' >"$T/notjson"
req POST /mutate "$T/notjson"
assert_eq 400 "$STATUS" "not JSON: 400"
assert_contains "$BODY" "request body is not JSON" "... with the reason"
req POST /mutate "$FX/review_v1beta1.json"
assert_eq 400 "$STATUS" "v1beta1 review: 400"
assert_contains "$BODY" "admissionReviewVersions: [v1]" "... naming the fix"
printf '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"kind":"Pod"}}}' >"$T/nouid"
req POST /mutate "$T/nouid"
assert_eq "400" "$STATUS" "review without uid: 400"
req GET /mutate
assert_eq 405 "$STATUS" "GET /mutate: 405"
req POST /mutate "$FX/pod_seed.json" text/plain
assert_eq 415 "$STATUS" "text/plain body: 415"
req POST /elsewhere "$FX/pod_seed.json"
assert_eq 404 "$STATUS" "unknown path: 404"
head -c $((5 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >"$T/big"
req POST /mutate "$T/big"
assert_eq 413 "$STATUS" "5 MiB body: 413"
alive "after the errors"
assert_contains "$(py plain "$WH_PORT")" "ERR" "plaintext HTTP gets no HTTP answer"
OUT=$(echo | timeout 10 openssl s_client -connect "127.0.0.1:$WH_PORT" -tls1_1 \
    -cipher 'DEFAULT:@SECLEVEL=0' 2>&1)
assert_contains "$OUT" "alert protocol version" "TLS 1.1 is refused by the server"
alive "after plaintext and TLS 1.1"
assert_eq 40 "$(py burst "$WH_PORT" "$CA" "$SVC" "$FX/pod_seed.json" 40)" \
    "40 concurrent reviews: all answered with their uid"

# ---- certificate rotation -----------------------------------------------------------------

bash "$ROOT/deploy/make-webhook-cert.sh" --out "$T/certs2" >/dev/null 2>&1 || fail "second cert"
cp "$T/certs2/tls.crt" "$T/tls.crt.new" && mv "$T/tls.crt.new" "$T/tls.crt"
cp "$T/certs2/tls.key" "$T/tls.key.new" && mv "$T/tls.key.new" "$T/tls.key"
kill -HUP "$WH_PID"
sleep 0.3
CA="$T/certs2/ca.crt"
alive "after SIGHUP, with the new CA"
CA="$T/certs/ca.crt"
req GET /healthz
assert_contains "$STATUS" "ERR" "after SIGHUP the old certificate is no longer served"
CA="$T/certs2/ca.crt"

phx_stop "$WH_PID" "$WH_LOG" "$WH_ASAN" || fail "the webhook did not stop cleanly"
ok "webhook stopped cleanly on SIGTERM (no sanitizer report)"
assert_contains "$(cat "$WH_LOG")" 'event=admission uid=7f0c0c55-2d3e-4d0f-9a51-1f6a3c2b9e01 pod=shop/billing-6d8f7c9b5d-* outcome=patched' \
    "one log line per review"

# ---- deploy/ -------------------------------------------------------------------------------------

HAVE_PYYAML=0
"$PY" -c 'import yaml' 2>/dev/null && HAVE_PYYAML=1
for f in "$ROOT"/deploy/*.yaml "$T/certs/mutating-webhook.yaml" "$T/certs/webhook-tls-secret.yaml"; do
    # kubectl's offline parser knows Kubernetes kinds only
    [ "$HAVE_PYYAML" -eq 0 ] && [ "$(basename "$f")" = kustomization.yaml ] && continue
    yaml_to_json "$f" >"$T/$(basename "$f").json" || fail "$f does not parse"
    "$PY" -c 'import json, sys
docs = json.load(open(sys.argv[1]))
assert docs and all(d.get("apiVersion") and d.get("kind") and
                    (d.get("metadata", {}).get("name") or d["kind"] == "Kustomization")
                    for d in docs)' \
        "$T/$(basename "$f").json" || fail "$f: a document without apiVersion/kind/name"
done
ok "deploy/*.yaml and the generated manifests parse (apiVersion, kind, name)"
"$PY" - "$T" <<'PYEOF' || fail "deploy manifests: wrong settings"
import json, sys
t = sys.argv[1]
mwc = json.load(open(t + "/mutating-webhook.yaml.json"))[0]
w = mwc["webhooks"][0]
assert w["admissionReviewVersions"] == ["v1"] and w["sideEffects"] == "None"
assert w["failurePolicy"] == "Fail" and w["clientConfig"]["service"]["path"] == "/mutate"
assert w["rules"][0]["resources"] == ["pods"] and w["rules"][0]["operations"] == ["CREATE"]
assert w["objectSelector"]["matchLabels"] == {"phantom.cloudcondom.io/db-proxy": "enabled"}
assert "phantom-system" in w["namespaceSelector"]["matchExpressions"][0]["values"]
docs = json.load(open(t + "/webhook-deployment.yaml.json"))
dep = [d for d in docs if d["kind"] == "Deployment"][0]
assert dep["spec"]["replicas"] == 2
ps = dep["spec"]["template"]["spec"]
assert ps["securityContext"]["runAsNonRoot"] is True and ps["automountServiceAccountToken"] is False
c = ps["containers"][0]
assert c["securityContext"]["readOnlyRootFilesystem"] is True
assert [d for d in docs if d["kind"] == "PodDisruptionBudget"]
sa = json.load(open(t + "/webhook-rbac.yaml.json"))
assert [d["kind"] for d in sa] == ["ServiceAccount"], "the webhook needs no Role"
print("manifest settings ok")
PYEOF
ok "MutatingWebhookConfiguration (v1, sideEffects None, Fail, selectors), Deployment (2 replicas, non-root), no Role"
if command -v kubectl >/dev/null 2>&1; then
    timeout 30 kubectl kustomize "$ROOT/deploy" >"$T/kustomized.yaml" 2>&1 ||
        fail "kubectl kustomize deploy/: $(tail -3 "$T/kustomized.yaml")"
    assert_eq 6 "$(grep -c "^kind:" "$T/kustomized.yaml")" "kubectl kustomize deploy/ builds the 6 objects of the webhook"
fi

# The Deployment's own args and ConfigMap start the webhook.
"$PY" -c 'import json, sys
docs = json.load(open(sys.argv[1]))
print(docs[0]["data"]["phantom.yaml"], end="")' "$T/webhook-proxy-config.yaml.json" >"$T/cm-phantom.yaml"
mapfile -t WARGS < <("$PY" -c 'import json, sys
docs = json.load(open(sys.argv[1]))
dep = [d for d in docs if d["kind"] == "Deployment"][0]
print("\n".join(dep["spec"]["template"]["spec"]["containers"][0]["args"]))' "$T/webhook-deployment.yaml.json")
assert_eq webhook "${WARGS[0]}" "the Deployment runs \`phantom webhook\`"
WH_PORT=$(pgh_free_port)
WARGS=("${WARGS[@]:1}")
WARGS=("${WARGS[@]/#--listen=:8443/--listen=127.0.0.1:$WH_PORT}")
WARGS=("${WARGS[@]/#--tls-cert=\/etc\/phantom\/tls\/tls.crt/--tls-cert=$T/tls.crt}")
WARGS=("${WARGS[@]/#--tls-key=\/etc\/phantom\/tls\/tls.key/--tls-key=$T/tls.key}")
WARGS=("${WARGS[@]/#--proxy-config=\/etc\/phantom\/proxy\/phantom.yaml/--proxy-config=$T/cm-phantom.yaml}")
start_webhook deploy "${WARGS[@]}"
ok "the webhook starts with deploy/webhook-deployment.yaml's args and ConfigMap"

# The example app's pod template gets the sidecar; its config has the seed's columns.
yaml_to_json "$ROOT/deploy/example-app.yaml" >"$T/example.json"
py review-from-template "$T/example.json" "$FX/pod_seed.json" >"$T/example-review.json"
req POST /mutate "$T/example-review.json"
echo "$BODY" >"$T/ex.resp"
assert_eq true "$(py get "$T/ex.resp" response.allowed)" "example app: allowed"
py ops "$T/ex.resp" >"$T/ex.ops"
py object "$T/example-review.json" >"$T/ex.pod"
apply_patch "$T/ex.pod" "$T/ex.ops" >"$T/ex.patched" || fail "example patch does not apply"
OUT=$(py check "$T/ex.pod" "$T/ex.patched" containers cloud-sql-instance:5432 "$IMAGE" 127.0.0.1:5432 2>&1)
assert_eq "pod ok" "$OUT" "example app pod patched"
py config "$T/ex.patched" >"$T/ex-sidecar.yaml"
OUT=$(ASAN_OPTIONS="$ASAN_OPTS" timeout 20 "$PHANTOM_BIN" check-config "$T/ex-sidecar.yaml" 2>&1)
assert_contains "$OUT" "OK — 8 protected columns in 3 tables" "example app: its sidecar config is valid"
phx_stop "$WH_PID" "$WH_LOG" "$WH_ASAN" || fail "the deploy-args webhook did not stop cleanly"

# ---- Dockerfile: runtime packages cover bin/phantom's libraries -----------------------------

if command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; then
    echo "note: a Docker daemon is available; build the image with: docker build -t phantom ."
fi
runtime="$(awk '/^FROM debian:12-slim/{rt=1} rt' "$ROOT/Dockerfile")"
[ -n "$runtime" ] || fail "Dockerfile: no debian:12-slim runtime stage"
assert_contains "$runtime" "USER 65532:65532" "the image runs as the non-root user 65532"
# The image holds the release build (as-needed linking); the sanitizer build
# links more. `make integration` builds both.
REL_BIN="$ROOT/bin/phantom"
[ -x "$REL_BIN" ] || fail "bin/phantom is not built (make all)"
missing=""
for lib in $(readelf -d "$REL_BIN" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    case "$lib" in
        libc.so.* | libm.so.* | ld-linux*) continue ;; # libc6, in the base image
    esac
    path="$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')"
    pkg="$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -n1 | cut -d: -f1)"
    [ -n "$pkg" ] || pkg="$(dpkg -S "$path" 2>/dev/null | head -n1 | cut -d: -f1)"
    [ -n "$pkg" ] || fail "no Debian package owns $lib ($path)"
    grep -qw -- "$pkg" <<<"$runtime" || missing="$missing $lib($pkg)"
done
assert_eq "" "$missing" "the Dockerfile's runtime stage installs every library bin/phantom needs"
