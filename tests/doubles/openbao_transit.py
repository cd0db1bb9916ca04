#!/usr/bin/env python3
"""openbao_transit.py — a test double of the OpenBao / Vault Transit HTTP API.

Owns: the server the `openbao` KEK provider is tested against (no OpenBao
server can be installed on the test machine). Python standard library only.

What is exact (as documented at openbao.org/api-docs/secret/transit and in
OpenBao's builtin/logical/transit sources):
  * paths and methods: POST /v1/{mount}/keys/{name} (create, body
    {"type": T} with T defaulting to "aes256-gcm96"; 200 + key info, warning
    "key NAME already existed" on repeat, the existing key unchanged; 400
    "unknown key type T" for a type OpenBao does not know, checked also when
    the key exists), GET /v1/{mount}/keys/{name} (404 {"errors":[]} when
    missing), POST /v1/{mount}/keys/{name}/config
    (min_decryption_version, min_encryption_version, deletion_allowed; 200 +
    key info; 400 "no existing key named NAME could be found"), DELETE
    /v1/{mount}/keys/{name} (204; 400 "error deleting policy NAME: deletion
    is not allowed for this key" unless deletion_allowed was set, 400 "error
    deleting policy NAME: could not delete key; not found"), POST
    /v1/{mount}/keys/{name}/rotate (200 + key info), POST
    /v1/{mount}/encrypt/{name} (upserts the key like a root token),
    POST /v1/{mount}/decrypt/{name}, POST /v1/{mount}/rewrap/{name},
    POST /v1/{mount}/datakey/{plaintext|wrapped}/{name} ("bits" 128/256/512),
    POST /v1/auth/{kubernetes_auth_path}/login {"role","jwt"};
  * the response envelope {"request_id","lease_id","renewable",
    "lease_duration","data","wrap_info","warnings","auth"}, data fields
    ("ciphertext", "key_version", "plaintext", key info fields such as
    "latest_version" and "min_decryption_version"), and the "auth" object
    of a login ("client_token", "accessor", "policies", "token_policies",
    "metadata", "lease_duration", "renewable", "entity_id", "token_type",
    "orphan", "mfa_requirement", "num_uses");
  * ciphertext format "vault:vN:" + base64(nonce(12) | sealed | tag(16)),
    key versions, min_decryption_version, rewrap to the latest version;
  * errors as {"errors":["..."]}: 403 "permission denied" (missing or
    unknown X-Vault-Token, bad Kubernetes JWT), 400 "encryption key not
    found", "invalid ciphertext: no prefix", "invalid ciphertext: version is
    too new", "ciphertext or signature version is disallowed by policy (too
    old)", "cipher: message authentication failed", "missing ciphertext to
    decrypt", "invalid bit length", "Invalid path, must be 'plaintext' or
    'wrapped'", "missing role", "missing jwt", 'invalid role name "R"'.

What is NOT real: only the symmetric key types (aes128-gcm96, aes256-gcm96,
chacha20-poly1305) can be created; the types OpenBao knows but the double does
not implement (ecdsa-*, ed25519, rsa-*, hmac, managed_key) get 400 "test
double: key type T is not implemented". The double's INTERNAL CIPHER IS NOT
AES-256-GCM (the standard library has no AES). It seals with an HMAC-SHA256
keystream and an HMAC-SHA256 tag (encrypt-then-MAC, 12-byte nonce, 16-byte
tag), so its ciphertexts have the same shape and length as OpenBao's and tampering is
detected, but they are not interoperable with a real server. Keys live in
memory, and with --state-file also in that file (JSON, rewritten atomically
after every change and read at start), so that a double killed and started
again on the same --port serves the same keys (outage tests).

Test controls (unauthenticated, under /_double/, never part of the real API):
  POST /_double/fault  {"mode":"status","status":503,"count":1,"message":".."}
                       {"mode":"hang","seconds":5,"count":1}
                       {"mode":"bad_json","count":1}
                       {"mode":"wrong_shape","count":1}  (200, data lacks fields)
       the next `count` API requests get that fault instead of an answer.
  POST /_double/revoke  revokes every token issued by a Kubernetes login.
  POST /_double/invalidate_static  makes the static --token invalid too.
  POST /_double/set_static {"token":"..."}  replaces the static token.
  POST /_double/set_k8s_ttl {"ttl":N}  lease_duration of later logins.
  GET  /_double/stats   {"requests":N,"logins":N,"faults_left":N,
                         "last_path":"...","keys":{"MOUNT/NAME":latest_version}}

Usage: openbao_transit.py [--host 127.0.0.1] [--port 0] [--cert C --key K]
         [--token T] [--k8s-role R --k8s-jwt J [--k8s-ttl S]]
         [--k8s-auth-path kubernetes] [--create-key MOUNT/NAME]...
         [--state-file FILE]
Prints "LISTENING <port>" on stdout once it accepts connections.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NONCE_LEN = 12
TAG_LEN = 16
ERR_TOO_OLD = "ciphertext or signature version is disallowed by policy (too old)"
# Key types of POST keys/{name} (OpenBao builtin/logical/transit/path_keys.go).
SYMMETRIC_TYPES = ("aes128-gcm96", "aes256-gcm96", "chacha20-poly1305")
OTHER_TYPES = ("ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "ed25519", "rsa-2048", "rsa-3072",
               "rsa-4096", "hmac", "managed_key")


# ----------------------------------------------------------------------------
# The double's internal cipher (NOT AES-GCM; see the module docstring).


def _keystream(key, nonce, n):
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hmac.new(key, b"ks" + nonce + counter.to_bytes(4, "big"), hashlib.sha256).digest()
        counter += 1
    return bytes(out[:n])


def seal(key, plaintext):
    nonce = secrets.token_bytes(NONCE_LEN)
    ct = bytes(a ^ b for a, b in zip(plaintext, _keystream(key, nonce, len(plaintext))))
    tag = hmac.new(key, b"tag" + nonce + ct, hashlib.sha256).digest()[:TAG_LEN]
    return nonce + ct + tag


def unseal(key, blob):
    if len(blob) < NONCE_LEN + TAG_LEN:
        return None
    nonce, ct, tag = blob[:NONCE_LEN], blob[NONCE_LEN:-TAG_LEN], blob[-TAG_LEN:]
    want = hmac.new(key, b"tag" + nonce + ct, hashlib.sha256).digest()[:TAG_LEN]
    if not hmac.compare_digest(tag, want):
        return None
    return bytes(a ^ b for a, b in zip(ct, _keystream(key, nonce, len(ct))))


# ----------------------------------------------------------------------------
# State


class UserError(Exception):
    """An error Transit reports as HTTP 400 {"errors":[msg]}."""


class TransitKey:
    def __init__(self, name, key_type="aes256-gcm96"):
        self.name = name
        self.type = key_type
        self.versions = {}  # version -> (key bytes, creation time)
        self.latest = 0
        self.min_decryption_version = 1
        self.min_encryption_version = 0
        self.deletion_allowed = False
        self.rotate()

    def rotate(self):
        self.latest += 1
        self.versions[self.latest] = (secrets.token_bytes(32), int(time.time()))

    def to_state(self):
        return {
            "type": self.type,
            "latest": self.latest,
            "min_decryption_version": self.min_decryption_version,
            "min_encryption_version": self.min_encryption_version,
            "deletion_allowed": self.deletion_allowed,
            "versions": {str(v): [base64.b64encode(k).decode(), t]
                         for v, (k, t) in self.versions.items()},
        }

    @classmethod
    def from_state(cls, name, st):
        k = cls.__new__(cls)
        k.name = name
        k.type = st["type"]
        k.latest = int(st["latest"])
        k.min_decryption_version = int(st["min_decryption_version"])
        k.min_encryption_version = int(st["min_encryption_version"])
        k.deletion_allowed = bool(st.get("deletion_allowed", False))
        k.versions = {int(v): (base64.b64decode(kt[0]), int(kt[1]))
                      for v, kt in st["versions"].items()}
        return k

    def info(self):
        return {
            "name": self.name,
            "type": self.type,
            "derived": False,
            "deletion_allowed": self.deletion_allowed,
            "min_available_version": 0,
            "min_decryption_version": self.min_decryption_version,
            "min_encryption_version": self.min_encryption_version,
            "latest_version": self.latest,
            "exportable": False,
            "allow_plaintext_backup": False,
            "supports_encryption": True,
            "supports_decryption": True,
            "supports_signing": False,
            "supports_derivation": True,
            "auto_rotate_period": 0,
            "imported_key": False,
            "soft_deleted": False,
            "keys": {str(v): t for v, (_, t) in sorted(self.versions.items())},
        }

    def encrypt(self, plaintext, version=0):
        if version == 0:
            version = self.latest
        if version > self.latest:
            raise UserError("requested version for encryption is higher than the latest key version")
        if self.min_encryption_version > 0 and version < self.min_encryption_version:
            raise UserError("requested version for encryption is less than the minimum encryption key version")
        key = self.versions[version][0]
        blob = seal(key, plaintext)
        return "vault:v%d:%s" % (version, base64.b64encode(blob).decode()), version

    def decrypt(self, value):
        if not value.startswith("vault:v"):
            raise UserError("invalid ciphertext: no prefix")
        parts = value[len("vault:v"):].split(":", 1)
        if len(parts) != 2:
            raise UserError("invalid ciphertext: wrong number of fields")
        try:
            ver = int(parts[0])
        except ValueError:
            raise UserError("invalid ciphertext: version number could not be decoded")
        if ver == 0:
            ver = 1
        if ver > self.latest:
            raise UserError("invalid ciphertext: version is too new")
        if self.min_decryption_version > 0 and ver < self.min_decryption_version:
            raise UserError(ERR_TOO_OLD)
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except Exception:
            raise UserError("invalid ciphertext: could not decode base64")
        pt = unseal(self.versions[ver][0], blob)
        if pt is None:
            raise UserError("cipher: message authentication failed")
        return pt


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.keys = {}  # (mount, name) -> TransitKey
        self.static_token = args.token
        self.k8s_role = args.k8s_role
        self.k8s_jwt = args.k8s_jwt
        self.k8s_ttl = args.k8s_ttl
        self.k8s_auth_path = args.k8s_auth_path
        self.issued = set()
        self.requests = 0
        self.logins = 0
        self.last_path = ""
        self.fault = None
        self.fault_left = 0
        self.state_file = args.state_file
        self.saved = None
        if self.state_file and os.path.exists(self.state_file):
            with open(self.state_file) as f:
                for spec, st in json.load(f).items():
                    mount, _, name = spec.rpartition("/")
                    self.keys[(mount, name)] = TransitKey.from_state(name, st)
        for spec in args.create_key or []:
            mount, _, name = spec.rpartition("/")
            if (mount, name) not in self.keys:
                self.keys[(mount, name)] = TransitKey(name)
        self.persist()

    def persist(self):
        """Writes the keys to --state-file when they changed (lock held)."""
        if not self.state_file:
            return
        doc = json.dumps({"%s/%s" % k: v.to_state() for k, v in sorted(self.keys.items())},
                         sort_keys=True)
        if doc == self.saved:
            return
        tmp = self.state_file + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(doc)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_file)
        self.saved = doc

    def token_ok(self, token):
        if not token:
            return False
        if self.static_token is not None and hmac.compare_digest(token, self.static_token):
            return True
        return token in self.issued

    def take_fault(self):
        with self.lock:
            if self.fault is None or self.fault_left <= 0:
                return None
            self.fault_left -= 1
            f = self.fault
            if self.fault_left == 0:
                self.fault = None
            return f


STATE = None


# ----------------------------------------------------------------------------
# HTTP


def envelope(data=None, warnings=None, auth=None):
    return {
        "request_id": str(uuid.uuid4()),
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": data,
        "wrap_info": None,
        "warnings": warnings,
        "auth": auth,
    }


def b64decode_field(value, what):
    try:
        return base64.b64decode(value, validate=True)
    except Exception:
        raise UserError("failed to base64-decode %s" % what)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "openbao-transit-double/1"
    # Headers and body are written separately: without TCP_NODELAY, Nagle
    # plus the client's delayed ACK adds ~40 ms to every answer.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # quiet: tests read stderr only on failure
        if os.environ.get("OPENBAO_DOUBLE_VERBOSE"):
            sys.stderr.write("double: " + (fmt % args) + "\n")

    # --- response helpers ---------------------------------------------------

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_errors(self, status, *messages):
        self.send_json(status, {"errors": list(messages)})

    def send_no_content(self):
        self.send_response(204)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        if not raw.strip():
            return {}
        obj = json.loads(raw)
        if not isinstance(obj, dict):
            raise ValueError("body is not a JSON object")
        return obj

    # --- dispatch -----------------------------------------------------------

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("POST")  # Vault treats PUT like POST

    def do_DELETE(self):
        self.dispatch("DELETE")

    def dispatch(self, method):
        path = self.path.split("?", 1)[0]
        try:
            body = self.read_body() if method == "POST" else {}
        except Exception as e:
            self.send_errors(400, "failed to parse JSON input: %s" % e)
            return
        if path.startswith("/_double/"):
            self.control(method, path[len("/_double/"):], body)
            return
        with STATE.lock:
            STATE.requests += 1
            STATE.last_path = path
        fault = STATE.take_fault()
        if fault is not None and self.apply_fault(fault):
            return
        if not path.startswith("/v1/"):
            self.send_errors(404)
            return
        rel = path[len("/v1/"):].strip("/")
        try:
            with STATE.lock:
                try:
                    self.route(method, rel, body)
                finally:
                    STATE.persist()
        except UserError as e:
            self.send_errors(400, str(e))

    def apply_fault(self, fault):
        mode = fault.get("mode")
        if mode == "status":
            status = int(fault.get("status", 500))
            msg = fault.get("message") or {
                403: "permission denied",
                500: "internal error",
                503: "Vault is sealed",
            }.get(status, "error")
            self.send_errors(status, msg)
            return True
        if mode == "hang":
            time.sleep(float(fault.get("seconds", 5)))
            self.close_connection = True
            return True
        if mode == "bad_json":
            body = b'{"data": {"ciphertext": "vault:v1:AAAA'  # truncated JSON
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return True
        if mode == "wrong_shape":
            self.send_json(200, envelope({"unexpected": True}))
            return True
        return False

    def control(self, method, what, body):
        with STATE.lock:
            if what == "fault" and method == "POST":
                STATE.fault = body
                STATE.fault_left = int(body.get("count", 1))
            elif what == "revoke" and method == "POST":
                STATE.issued.clear()
            elif what == "invalidate_static" and method == "POST":
                STATE.static_token = None
            elif what == "set_static" and method == "POST":
                STATE.static_token = body.get("token")
            elif what == "set_k8s_ttl" and method == "POST":
                STATE.k8s_ttl = int(body.get("ttl", 3600))
            elif what == "stats" and method == "GET":
                stats = {
                    "requests": STATE.requests,
                    "logins": STATE.logins,
                    "faults_left": STATE.fault_left,
                    "last_path": STATE.last_path,
                    "keys": {"%s/%s" % k: v.latest for k, v in STATE.keys.items()},
                }
            else:
                stats = None
                what = None
        if what is None:
            self.send_errors(404, "unknown control")
        elif what == "stats":
            self.send_json(200, stats)
        else:
            self.send_no_content()

    # --- API (called with STATE.lock held) ----------------------------------

    def route(self, method, rel, body):
        auth_prefix = "auth/%s/" % STATE.k8s_auth_path
        if rel == auth_prefix + "login":
            if method != "POST":
                self.send_errors(405)
                return
            self.k8s_login(body)
            return
        if not STATE.token_ok(self.headers.get("X-Vault-Token")):
            self.send_errors(403, "permission denied")
            return
        parts = rel.split("/")
        # {mount...}/{op}/... ; the mount may itself contain slashes.
        for i in range(1, len(parts)):
            op = parts[i]
            mount = "/".join(parts[:i])
            args = parts[i + 1:]
            if op in ("keys", "encrypt", "decrypt", "rewrap", "datakey") and args:
                if self.transit(method, mount, op, args, body):
                    return
        self.send_errors(404, 'no handler for route "%s". route entry not found.' % rel)

    def get_key(self, mount, name, upsert=False):
        k = STATE.keys.get((mount, name))
        if k is None and upsert:
            k = TransitKey(name)
            STATE.keys[(mount, name)] = k
        return k

    def transit(self, method, mount, op, args, body):
        if op == "keys":
            name = args[0]
            sub = args[1] if len(args) > 1 else ""
            if len(args) > 2:
                return False
            if sub == "" and method == "GET":
                k = self.get_key(mount, name)
                if k is None:
                    self.send_errors(404)
                else:
                    self.send_json(200, envelope(k.info()))
                return True
            if sub == "" and method == "POST":
                key_type = body.get("type", "aes256-gcm96")
                if key_type not in SYMMETRIC_TYPES:
                    if key_type in OTHER_TYPES:
                        raise UserError("test double: key type %s is not implemented" % key_type)
                    raise UserError("unknown key type %s" % key_type)
                existed = (mount, name) in STATE.keys
                k = STATE.keys.get((mount, name))
                if k is None:
                    k = STATE.keys[(mount, name)] = TransitKey(name, key_type)
                warn = ["key %s already existed" % name] if existed else None
                self.send_json(200, envelope(k.info(), warnings=warn))
                return True
            if sub == "rotate" and method == "POST":
                k = self.get_key(mount, name)
                if k is None:
                    raise UserError("key not found")
                k.rotate()
                self.send_json(200, envelope(k.info()))
                return True
            if sub == "config" and method == "POST":
                k = self.get_key(mount, name)
                if k is None:
                    raise UserError("no existing key named %s could be found" % name)
                mdv = int(body.get("min_decryption_version", k.min_decryption_version))
                mev = int(body.get("min_encryption_version", k.min_encryption_version))
                if mdv > k.latest:
                    raise UserError("cannot set min decryption version of %d, latest key version is %d"
                                    % (mdv, k.latest))
                if mev > k.latest:
                    raise UserError("cannot set min encryption version of %d, latest key version is %d"
                                    % (mev, k.latest))
                k.min_decryption_version = max(mdv, 1)
                k.min_encryption_version = mev
                if "deletion_allowed" in body:
                    v = body["deletion_allowed"]
                    # like OpenBao's TypeBool: JSON booleans, or "true"/"false"/"1"/"0"
                    if isinstance(v, str):
                        if v.lower() not in ("true", "false", "1", "0", "t", "f"):
                            raise UserError("error converting input %s for field \"deletion_allowed\"" % v)
                        v = v.lower() in ("true", "1", "t")
                    k.deletion_allowed = bool(v)
                self.send_json(200, envelope(k.info()))
                return True
            if sub == "" and method == "DELETE":
                k = self.get_key(mount, name)
                if k is None:
                    raise UserError("error deleting policy %s: could not delete key; not found" % name)
                if not k.deletion_allowed:
                    raise UserError("error deleting policy %s: deletion is not allowed for this key" % name)
                del STATE.keys[(mount, name)]
                self.send_no_content()
                return True
            return False
        if method != "POST" or len(args) != (2 if op == "datakey" else 1):
            return False
        if op == "encrypt":
            pt_b64 = body.get("plaintext")
            if pt_b64 is None:
                raise UserError("missing plaintext to encrypt")
            pt = b64decode_field(pt_b64, "plaintext")
            k = self.get_key(mount, args[0], upsert=True)
            ct, ver = k.encrypt(pt, int(body.get("key_version", 0)))
            self.send_json(200, envelope({"ciphertext": ct, "key_version": ver}))
            return True
        if op == "decrypt":
            ct = body.get("ciphertext") or ""
            if ct == "":
                raise UserError("missing ciphertext to decrypt")
            k = self.get_key(mount, args[0])
            if k is None:
                raise UserError("encryption key not found")
            pt = k.decrypt(ct)
            self.send_json(200, envelope({"plaintext": base64.b64encode(pt).decode()}))
            return True
        if op == "rewrap":
            ct = body.get("ciphertext") or ""
            if ct == "":
                raise UserError("missing ciphertext to decrypt")
            k = self.get_key(mount, args[0])
            if k is None:
                raise UserError("encryption key not found")
            pt = k.decrypt(ct)
            new, ver = k.encrypt(pt, int(body.get("key_version", 0)))
            self.send_json(200, envelope({"ciphertext": new, "key_version": ver}))
            return True
        if op == "datakey":
            kind, name = args
            if kind not in ("plaintext", "wrapped"):
                raise UserError("Invalid path, must be 'plaintext' or 'wrapped'")
            k = self.get_key(mount, name)
            if k is None:
                raise UserError("encryption key not found")
            bits = int(body.get("bits", 256))
            if bits not in (128, 256, 512):
                raise UserError("invalid bit length")
            dk = secrets.token_bytes(bits // 8)
            # Like OpenBao: the data key's raw bytes are sealed, so decrypt
            # returns base64(raw key) as its "plaintext".
            ct, ver = k.encrypt(dk, int(body.get("key_version", 0)))
            data = {"ciphertext": ct, "key_version": ver}
            if kind == "plaintext":
                data["plaintext"] = base64.b64encode(dk).decode()
            self.send_json(200, envelope(data))
            return True
        return False

    def k8s_login(self, body):
        role = body.get("role") or ""
        jwt = body.get("jwt") or ""
        if role == "":
            raise UserError("missing role")
        if jwt == "":
            raise UserError("missing jwt")
        if STATE.k8s_role is None or role != STATE.k8s_role:
            raise UserError('invalid role name "%s"' % role)
        if STATE.k8s_jwt is None or not hmac.compare_digest(jwt.strip(), STATE.k8s_jwt):
            self.send_errors(403, "permission denied")
            return
        token = "s." + secrets.token_urlsafe(18)
        STATE.issued.add(token)
        STATE.logins += 1
        auth = {
            "client_token": token,
            "accessor": secrets.token_urlsafe(18),
            "policies": ["default", "phantom"],
            "token_policies": ["default", "phantom"],
            "metadata": {
                "role": role,
                "service_account_name": "phantom",
                "service_account_namespace": "default",
                "service_account_secret_name": "",
                "service_account_uid": str(uuid.uuid4()),
            },
            "lease_duration": STATE.k8s_ttl,
            "renewable": True,
            "entity_id": str(uuid.uuid4()),
            "token_type": "service",
            "orphan": True,
            "mfa_requirement": None,
            "num_uses": 0,
        }
        self.send_json(200, envelope(None, auth=auth))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        if os.environ.get("OPENBAO_DOUBLE_VERBOSE"):
            super().handle_error(request, client_address)


def main():
    global STATE
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--token")
    ap.add_argument("--k8s-role")
    ap.add_argument("--k8s-jwt")
    ap.add_argument("--k8s-ttl", type=int, default=3600)
    ap.add_argument("--k8s-auth-path", default="kubernetes")
    ap.add_argument("--create-key", action="append")
    ap.add_argument("--state-file")
    args = ap.parse_args()
    STATE = State(args)
    srv = Server((args.host, args.port), Handler)
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        # Handshake lazily in the connection's thread, so a client that
        # aborts it (wrong CA test) never blocks the accept loop.
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True,
                                     do_handshake_on_connect=False)
    print("LISTENING %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
