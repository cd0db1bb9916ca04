#!/usr/bin/env bash
# `phantom check-config` and the encryption sections of phantom.yaml at start.
#
#   * a valid file with encrypt: and keys: sections: exit 0 and a summary;
#     with --keys every key is loaded too;
#   * a broken encrypt: section (unknown mode, ope on text, a key: naming no
#     column) and a broken keys: section: exit 1 and "FILE:LINE: reason";
#   * --keys with a key domain missing from the keyring: exit 1 and the
#     `phantom keys create` command that fixes it; `phantom proxy` refuses to
#     start on the same file (exit 2) — fail closed, never a proxy without keys;
#   * `keys create` without domains creates exactly the missing key domains;
#   * a wrong master-key file mode (0644) is refused the same way.
# No PostgreSQL needed.
set -u
source "$(dirname "$0")/../lib/harness.sh"

T="$PGH_TMP"
ASAN_DIR="$T/asan.cli"
mkdir -p "$ASAN_DIR"
run() {
    OUT=$(ASAN_OPTIONS="log_path=$ASAN_DIR/asan:detect_leaks=1:${ASAN_OPTIONS:-}" \
        UBSAN_OPTIONS="log_path=$ASAN_DIR/ubsan:print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}" \
        timeout 20 "$PHANTOM_BIN" "$@" 2>&1 </dev/null)
    RC=$?
}
keys_section() {
    cat <<Y
keys:
  keyring: $T/keyring.json
  provider: file
  file: { path: $T/master.key }
Y
}
good="$T/good.yaml"
{
    echo "target: 127.0.0.1:1"
    keys_section
    cat <<'Y'
encrypt:
  customers:
    - email: deterministic
    - full_name
    - column: signup_day
      mode: ope
      type: date
  payments:
    - column: customer_email
      mode: deterministic
      key: customers.email
Y
} >"$good"

run keys init-master --out "$T/master.key"
assert_eq 0 "$RC" "init-master"
run check-config "$good"
assert_eq 0 "$RC" "check-config on a valid file exits 0"
assert_contains "$OUT" "OK — 4 protected columns in 2 tables" "the summary counts columns and tables"

run check-config --keys "$good"
assert_eq 1 "$RC" "check-config --keys without keys in the keyring exits 1"
assert_contains "$OUT" "phantom keys create --config $good" "the error says how to create the key"
run proxy --config "$good" --listen "127.0.0.1:$(pgh_free_port)"
assert_eq 2 "$RC" "the proxy refuses to start without the keys (fail closed)"
assert_contains "$OUT" "no key for key domain" "the proxy says which key is missing"

run keys create --config "$good" customers.email customers.full_name customers.signup_day
assert_eq 0 "$RC" "keys create"
run check-config --keys "$good"
assert_eq 0 "$RC" "check-config --keys exits 0 once every key exists"
assert_contains "$OUT" "every key loaded" "check-config --keys loaded the keys"

run keys create --config "$good"
assert_eq 0 "$RC" "keys create without domains when every domain has a key"
assert_contains "$OUT" "has a key already" "keys create without domains: nothing to do"
more="$T/more.yaml"
{ cat "$good"; printf '  orders:\n    - note\n    - column: total\n      mode: ope\n      type: int8\n'; } >"$more"
run check-config --keys "$more"
assert_eq 1 "$RC" "a new table's key domains are missing"
run keys create --config "$more"
assert_eq 0 "$RC" "keys create without domains creates the missing ones"
assert_contains "$OUT" "created orders.note version 1" "orders.note created"
assert_contains "$OUT" "created orders.total version 1" "orders.total created"
case "$OUT" in *customers.email*) fail "an existing domain was created again: $OUT" ;; esac
run check-config --keys "$more"
assert_eq 0 "$RC" "every key of the larger config loads"

chmod 0644 "$T/master.key"
run check-config --keys "$good"
assert_eq 1 "$RC" "a group/world-readable master key is refused"
assert_contains "$OUT" "0644" "the error names the bad mode"
chmod 0600 "$T/master.key"

# bad_encrypt NAME LINE REASON CONTENT-AFTER-encrypt:
bad_encrypt() {
    local f="$T/$1.yaml"
    { keys_section; printf 'encrypt:\n%s' "$4"; } >"$f"
    run check-config "$f"
    [ "$RC" -eq 1 ] || fail "$1: exit status $RC (expected 1): $OUT"
    assert_contains "$OUT" "$f:$2: $3" "$1: \"FILE:$2: $3\""
}
bad_encrypt unknown_mode 7 "customers.email: unknown mode" $'  customers:\n    - email: scrambled\n'
bad_encrypt ope_on_text 7 "customers.email: mode ope needs an integer, date, timestamp or numeric" $'  customers:\n    - column: email\n      mode: ope\n'
bad_encrypt bad_key_ref 9 "payments.e: key \"customers.nope\" does not name a configured column" $'  payments:\n    - column: e\n      mode: deterministic\n      key: customers.nope\n'

f="$T/bad_keys.yaml"
printf 'keys:\n  keyring: %s/k.json\n  provider: quantum\nencrypt:\n  t:\n    - c\n' "$T" >"$f"
run check-config "$f"
assert_eq 1 "$RC" "an unknown KEK provider is refused"
assert_contains "$OUT" "$f:3:" "with the line of the provider setting"

run check-config "$T/missing.yaml"
assert_eq 1 "$RC" "a missing file is refused"
run check-config
assert_eq 2 "$RC" "no file is a usage error"

if compgen -G "$ASAN_DIR/*" >/dev/null; then
    cat "$ASAN_DIR"/* >&2
    fail "sanitizer report from phantom"
fi
ok "no sanitizer report"
