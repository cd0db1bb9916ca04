#!/usr/bin/python3
"""fixed_keyring.py — the fuzz targets' fixed keys as a real keyring.

    fixed_keyring.py --policy fuzz/fuzz_policy.h --dir DIR

Writes, for a proxy that should encrypt exactly as the stateful fuzz targets
decrypt (fuzz/fuzz_policy.h):
  DIR/master.key     a new random master key (file KEK provider, 64 hex digits,
                     mode 0600)
  DIR/keyring.json   one active version per key domain of the policy, with the
                     key id and the DEK fuzz_policy.h assigns it, wrapped under
                     the master key as the file provider does (see
                     src/keys/kek_file.h: "PHKF" | 0x01 | KEK version | nonce |
                     AES-256-GCM(DEK) | tag, the first 9 bytes as associated data)
  DIR/phantom.yaml   keys: section (file provider) + the policy's encrypt: section

Needs python3-cryptography (AES-GCM is not in the standard library); used only
to regenerate the seed corpora, never by `make test`.
"""
import argparse
import base64
import codecs
import json
import os
import re
import sys

try:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError:  # pragma: no cover
    sys.exit("fixed_keyring.py: python3-cryptography is required (apt-get install python3-cryptography)")


def read_policy(path):
    src = open(path).read()
    m = re.search(r"/\* policy-yaml-begin \*/(.*?)/\* policy-yaml-end \*/", src, re.S)
    if not m:
        sys.exit("fixed_keyring.py: no policy YAML in %s" % path)
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1))
    yaml = "".join(codecs.decode(p, "unicode_escape") for p in parts)
    table = re.search(r"fuzz_policy_keys\[\] = \{(.*?)\};", src, re.S)
    keys = [(d, int(k)) for d, k in re.findall(r'\{"([^"]+)",\s*(\d+)\}', table.group(1) if table else "")]
    if not keys:
        sys.exit("fixed_keyring.py: no fuzz_policy_keys entries in %s" % path)
    return yaml, keys


def dek(key_id):
    """fuzz_policy_dek(): byte j is 0x50 + 29k + 7j (mod 256)."""
    return bytes((0x50 + 29 * key_id + 7 * j) & 0xFF for j in range(32))


def wrap(master, plain):
    header = b"PHKF" + bytes([1]) + (1).to_bytes(4, "big")
    nonce = os.urandom(12)
    ct = AESGCM(master).encrypt(nonce, plain, header)  # ciphertext || tag
    return header + nonce + ct


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", required=True)
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    yaml, keys = read_policy(a.policy)
    d = os.path.abspath(a.dir)
    os.makedirs(d, exist_ok=True)
    master = os.urandom(32)
    mpath = os.path.join(d, "master.key")
    fd = os.open(mpath, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (master.hex() + "\n").encode())
    os.close(fd)
    kek = "file:" + mpath
    domains = {}
    for name, kid in keys:
        domains[name] = {
            "active": 1,
            "versions": [{
                "version": 1,
                "key_id": kid,
                "state": "active",
                "created": "2025-01-01T00:00:00Z",
                "wrapped": [{"kek": kek, "role": "primary",
                             "blob": base64.b64encode(wrap(master, dek(kid))).decode()}],
            }],
        }
    ring = {"format": "phantom-keyring", "version": 1, "generation": 1,
            "next_key_id": max(k for _, k in keys) + 1, "domains": domains}
    kpath = os.path.join(d, "keyring.json")
    fd = os.open(kpath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, json.dumps(ring, indent=2).encode())
    os.close(fd)
    with open(os.path.join(d, "phantom.yaml"), "w") as f:
        f.write("keys:\n  keyring: %s\n  provider: file\n  file: { path: %s }\n%s" % (kpath, mpath, yaml))
    return 0


if __name__ == "__main__":
    sys.exit(main())
