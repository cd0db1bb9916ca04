#!/usr/bin/env bash
# deploy/make-webhook-cert.sh — a CA and a serving certificate for the
# webhook Service, the Secret that holds them, and the
# MutatingWebhookConfiguration with that CA in its caBundle.
#
#   deploy/make-webhook-cert.sh [--namespace NS] [--service NAME] [--out DIR]
#                               [--days N] [--apply]
#
# Writes into DIR (default ./webhook-certs, created with mode 0700):
#   ca.crt ca.key                  the CA (keep ca.key offline or delete it)
#   tls.crt tls.key                the serving certificate for NAME.NS.svc
#                                  (and NAME, NAME.NS, NAME.NS.svc.cluster.local)
#   webhook-tls-secret.yaml        Secret NS/phantom-webhook-tls (type kubernetes.io/tls)
#   mutating-webhook.yaml          deploy/mutating-webhook.yaml with caBundle = ca.crt
#                                  (and the Service namespace/name set)
# and prints the caBundle (base64 of ca.crt). With --apply it also applies
# the Secret and, once deployment NS/NAME is ready, the webhook configuration
# (needs kubectl and a cluster); without it, nothing talks to a cluster.
# Needs openssl and base64 only.
#
# Certificates expire (default 365 days): run it again and restart nothing —
# the webhook reloads its certificate when the Secret's files change. For
# automatic rotation use cert-manager and its CA injector instead.
set -euo pipefail

ns=phantom-system
svc=phantom-webhook
out=./webhook-certs
days=365
apply=0
here="$(cd "$(dirname "$0")" && pwd)"

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --namespace) ns="$2"; shift 2 ;;
        --service) svc="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --days) days="$2"; shift 2 ;;
        --apply) apply=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "make-webhook-cert.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
dns_label='^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'
if ! [[ "$ns" =~ $dns_label && "$svc" =~ $dns_label ]]; then
    echo "make-webhook-cert.sh: namespace and service must be DNS labels" >&2
    exit 2
fi
[[ "$days" =~ ^[0-9]+$ ]] || { echo "make-webhook-cert.sh: --days N" >&2; exit 2; }

umask 077
mkdir -p "$out"
chmod 700 "$out"
host="$svc.$ns.svc"

# The CA: ECDSA P-256, only for signing this webhook's serving certificates.
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$out/ca.key" -out "$out/ca.crt" -days "$days" \
    -subj "/CN=phantom-webhook-ca" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# The serving certificate: the Service's DNS names as SANs (the API server
# checks them; the CN is not used).
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$out/tls.key" -out "$out/tls.csr" -subj "/CN=$host" 2>/dev/null
cat >"$out/ext.cnf" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:$svc,DNS:$svc.$ns,DNS:$host,DNS:$host.cluster.local
EOF
openssl x509 -req -in "$out/tls.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
    -CAcreateserial -out "$out/tls.crt" -days "$days" -extfile "$out/ext.cnf" 2>/dev/null
rm -f "$out/tls.csr" "$out/ext.cnf" "$out/ca.srl"
openssl verify -CAfile "$out/ca.crt" "$out/tls.crt" >/dev/null

b64() { base64 -w0 <"$1"; }
ca_bundle="$(b64 "$out/ca.crt")"

cat >"$out/webhook-tls-secret.yaml" <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: phantom-webhook-tls
  namespace: $ns
  labels:
    app.kubernetes.io/name: phantom-webhook
type: kubernetes.io/tls
data:
  tls.crt: $(b64 "$out/tls.crt")
  tls.key: $(b64 "$out/tls.key")
  ca.crt: $ca_bundle
EOF

# The webhook configuration with this CA, pointing at NS/NAME.
sed -e "s|caBundle: CA_BUNDLE_PLACEHOLDER|caBundle: $ca_bundle|" \
    -e "s|^\(        name:\) phantom-webhook$|\1 $svc|" \
    -e "s|^\(        namespace:\) phantom-system$|\1 $ns|" \
    -e "s|\"phantom-system\"\]|\"$ns\"]|" \
    "$here/mutating-webhook.yaml" >"$out/mutating-webhook.yaml"
grep -q "caBundle: $ca_bundle" "$out/mutating-webhook.yaml" || {
    echo "make-webhook-cert.sh: could not fill in the caBundle" >&2
    exit 1
}

if [ "$apply" -eq 1 ]; then
    kubectl apply -f "$out/webhook-tls-secret.yaml"
    # Register the webhook only once it answers (failurePolicy Fail).
    if kubectl -n "$ns" rollout status "deployment/$svc" --timeout=120s; then
        kubectl apply -f "$out/mutating-webhook.yaml"
    else
        echo "make-webhook-cert.sh: deployment $ns/$svc is not ready; apply" \
            "$out/mutating-webhook.yaml once it is" >&2
        exit 1
    fi
fi

echo "make-webhook-cert.sh: wrote $out/{ca.crt,ca.key,tls.crt,tls.key,webhook-tls-secret.yaml,mutating-webhook.yaml}" >&2
echo "make-webhook-cert.sh: serving certificate for $host, valid $days days" >&2
echo "$ca_bundle"
