# tests/lib/canary.sh — the plaintext-leak canary: unique random values for
# protected columns, recorded so that a check at the end of the suite can
# prove none of them reached the database in the clear.
#
# Source it from a test (harness.sh sources it). Every value a test sends
# through the proxy into a protected column should come from here:
#
#   canary_text TAG     prints "cnry-TAG-<20 hex>"            (text columns)
#   canary_email TAG    prints "cnry<20 hex>@example.com"     (email-like text)
#   canary_int          prints a random 15-digit integer whose digits are
#                       unlikely anywhere else (starts with 7)
#
# Each call appends the value to $PHANTOM_CANARY_DIR/values (one per line;
# safe from $(...) subshells and from concurrent tests). When
# tests/integration/run.sh runs the suite it points PHANTOM_CANARY_DIR at a
# run-wide directory; a test run on its own gets one under its temp dir.
# tests/clients/canary.py offers the same for Python clients.
#
# The values themselves are not secret: they only have to be unique, so that
# finding one in a dump or server log can only mean a leak.

_canary_hex() { # N bytes of randomness as hex
    od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

_canary_record() {
    local dir="${PHANTOM_CANARY_DIR:-${PGH_TMP:-/tmp}/canary}"
    mkdir -p "$dir"
    printf '%s\n' "$1" >>"$dir/values"
}

canary_text() {
    local v
    v="cnry-${1:-x}-$(_canary_hex 10)"
    _canary_record "$v"
    printf '%s\n' "$v"
}

canary_email() {
    local v
    v="cnry$(_canary_hex 10)@example.com"
    _canary_record "$v"
    printf '%s\n' "$v"
}

canary_int() {
    local v
    v="7$(od -An -N8 -tu8 /dev/urandom | tr -d ' \n' | cut -c1-14)"
    while [ "${#v}" -lt 15 ]; do v="${v}3"; done
    _canary_record "$v"
    printf '%s\n' "$v"
}
