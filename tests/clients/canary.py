"""tests/clients/canary.py — the plaintext-leak canary for Python clients.

The same values as tests/lib/canary.sh: unique random values for protected
columns, each recorded (one per line) in $PHANTOM_CANARY_DIR/values (default
$PGH_TMP/canary/values, else /tmp/canary/values), so that the snapshot at the
end of the test (canary_snapshot in tests/lib/canary.sh) can prove none of
them reached the database in the clear. harness.sh exports
PHANTOM_CANARY_DIR (the test's own directory) to every process a test starts.

    from canary import text, email, integer
    text("tag")   -> "cnry-tag-<20 hex>"            (text columns)
    email()       -> "cnry<20 hex>@example.com"     (email-like text)
    integer()     -> a random 15-digit int starting with 7

For a data set that must be the same in several processes (a loader and a
checker):

    derive(tag, seed, material) -> "cnry-tag-<20 hex>", a keyed hash of
                     material (equal inputs, equal values); NOT recorded
    record(*values)  records values (derived ones, or values built around
                     a canary) in one append

Appends are single write() calls to a file opened with O_APPEND, so
concurrent processes do not interleave partial lines. The values are not
secret: they only have to be unique.
"""

import hashlib
import hmac
import os
import secrets

__all__ = ["text", "email", "integer", "derive", "record", "values_path"]


def values_path():
    d = os.environ.get("PHANTOM_CANARY_DIR")
    if not d:
        d = os.path.join(os.environ.get("PGH_TMP") or "/tmp", "canary")
    return os.path.join(d, "values")


def record(*values):
    data = "".join(f"{v}\n" for v in values if str(v))
    if not data:
        return
    path = values_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)


def _record(v):
    record(v)


def text(tag="x"):
    v = f"cnry-{tag}-{secrets.token_hex(10)}"
    _record(v)
    return v


def email(tag=None):
    v = f"cnry{secrets.token_hex(10)}@example.com"
    _record(v)
    return v


def integer():
    digits = str(secrets.randbits(64))[:14].ljust(14, "3")
    v = "7" + digits
    _record(v)
    return int(v)


def derive(tag, seed, material):
    h = hmac.new(str(seed).encode(), str(material).encode(), hashlib.sha256).hexdigest()
    return f"cnry-{tag}-{h[:20]}"
