#!/usr/bin/env bash
# tests/integration/test_keys_providers.sh — the whole `phantom keys` flow
# against the two remote KEK providers (no PostgreSQL needed):
#   (a) openbao: the Transit test double (tests/doubles/openbao_transit.py)
#       over HTTPS with a CA made here, token_file auth;
#   (b) pkcs11: SoftHSM2 with a private SOFTHSM2_CONF and a fresh token.
# For each: init-kek (and what a second init-kek does), init-kek --escrow (a
# file KEK), create, list, rotate, check, rotate-kek, rewrap (key check values
# unchanged, every DEK under the new KEK version), escrow, a replaced primary
# KEK (nothing unwraps) then recover (the original DEKs come back), audit
# verify. Failure cases: the double answering 503 (clear error, exit 1,
# keyring unchanged), an existing Transit key of a weak type, a wrong PIN
# (clear error that does not contain the PIN, keyring and audit log free of it).
set -u
. "$(dirname "$0")/../lib/harness.sh"

P="$PHANTOM_BIN"
ROOT="$HARNESS_ROOT"
T="$PGH_TMP/kp"
mkdir -p "$T"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
TOKEN="s.phantom-test-root-token"
PIN="Qz7-pin-Wx"
WRONG_PIN="Kq9-wrong-Vy"

. "$(dirname "$0")/../lib/keys_cli.sh" # run, kcvs

# ---- the OpenBao double over HTTPS ---------------------------------------------------------
mkdir -p "$T/tls"
(
    cd "$T/tls" &&
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -subj /CN=phantom-test-ca -keyout ca.key -out ca.crt &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
            -keyout server.key -out server.csr &&
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext.cnf &&
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
            -extfile ext.cnf -out server.crt
) >"$T/tls/openssl.log" 2>&1 || fail "cannot make the test CA (see $T/tls/openssl.log)"

"$PY" "$ROOT/tests/doubles/openbao_transit.py" --host 127.0.0.1 --cert "$T/tls/server.crt" \
    --key "$T/tls/server.key" --token "$TOKEN" >"$T/double.out" 2>"$T/double.log" &
DOUBLE_PID=$!
pgh_defer "kill $DOUBLE_PID 2>/dev/null; wait $DOUBLE_PID 2>/dev/null; true"
for _ in $(seq 1 100); do
    grep -q '^LISTENING ' "$T/double.out" && break
    kill -0 "$DOUBLE_PID" 2>/dev/null || break
    sleep 0.1
done
BAO_PORT="$(sed -n 's/^LISTENING \([0-9]*\)$/\1/p' "$T/double.out")"
[ -n "$BAO_PORT" ] || { cat "$T/double.log" >&2; fail "the Transit double did not start"; }
BAO="https://localhost:$BAO_PORT"
ok "Transit double listening on $BAO (TLS, CA made by the test)"

# bao METHOD PATH [JSON]: one request to the double, prints the body
bao() {
    curl -sS --cacert "$T/tls/ca.crt" -H "X-Vault-Token: $TOKEN" -X "$1" \
        ${3:+-H 'Content-Type: application/json' --data "$3"} "$BAO$2"
}
fault() { bao POST /_double/fault "$1" >/dev/null || fail "cannot set a fault on the double"; }

umask 077
printf '%s\n' "$TOKEN" >"$T/bao-token"

# ---- SoftHSM2: a private configuration and a fresh token ------------------------------------
MODULE="${PHANTOM_PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"
[ -r "$MODULE" ] || fail "PKCS#11 module $MODULE not found (apt install softhsm2)"
mkdir -p "$T/hsm/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
    "$T/hsm/tokens" >"$T/hsm/softhsm2.conf"
export SOFTHSM2_CONF="$T/hsm/softhsm2.conf"
softhsm2-util --init-token --free --label phantom --so-pin 12345678 --pin "$PIN" \
    >"$T/hsm/init.log" 2>&1 || fail "softhsm2-util --init-token failed (see $T/hsm/init.log)"
printf '%s\n' "$PIN" >"$T/hsm/pin"
ok "SoftHSM2 token initialised in $T/hsm"

# ---- configurations ---------------------------------------------------------------------------
# write_cfg FILE DIR PROVIDER-BLOCK: keyring and logs in DIR, escrow to a file KEK in DIR
write_cfg() {
    mkdir -p "$2"
    {
        echo "keys:"
        echo "  keyring: $2/keyring.json"
        printf '%s\n' "$3"
        echo "  escrow:"
        echo "    provider: file"
        echo "    file: { path: $2/recovery.key }"
    } >"$1"
}

ob_block() { # KEY
    cat <<EOF
  provider: openbao
  openbao:
    address: $BAO
    mount: transit
    key: $1
    token_file: $T/bao-token
    ca_file: $T/tls/ca.crt
    timeout_ms: 5000
EOF
}

p11_block() { # KEY_LABEL PIN_LINE
    cat <<EOF
  provider: pkcs11
  pkcs11:
    module: $MODULE
    token_label: phantom
    key_label: $1
    $2
EOF
}

write_cfg "$T/openbao.yaml" "$T/ob" "$(ob_block phantom)"
write_cfg "$T/openbao-new.yaml" "$T/ob" "$(ob_block phantom-replacement)"
write_cfg "$T/openbao-weak.yaml" "$T/ob-weak" "$(ob_block weak)"
write_cfg "$T/pkcs11.yaml" "$T/p11" "$(p11_block phantom-kek "pin_file: $T/hsm/pin")"
write_cfg "$T/pkcs11-new.yaml" "$T/p11" "$(p11_block phantom-kek-2 "pin_file: $T/hsm/pin")"
write_cfg "$T/pkcs11-badpin.yaml" "$T/p11" "$(p11_block phantom-kek "pin: \"$WRONG_PIN\"")"

# ---- the whole flow, once per provider -----------------------------------------------------------
# flow NAME CFG NEW_CFG KEK_ID NEW_KEK_ID
flow() {
    local n="$1" cfg="$2" newcfg="$3" kek="$4" newkek="$5" dir
    dir="$(dirname "$(sed -n 's/^  keyring: //p' "$cfg")")"

    run "$n-init" "$P" keys init-kek -c "$cfg"
    assert_eq 0 "$RC" "$n: init-kek creates the KEK"
    case "$n" in
        openbao)
            assert_contains "$OUT" "created Transit key $kek (type aes256-gcm96, version 1)" \
                "$n: init-kek output"
            assert_eq 1 "$(bao GET /_double/stats | "$PY" -c \
                'import json,sys; print(json.load(sys.stdin)["keys"].get("transit/phantom"))')" \
                "$n: the double now holds transit/phantom at version 1"
            run "$n-init2" "$P" keys init-kek -c "$cfg"
            assert_eq 0 "$RC" "$n: init-kek on an existing Transit key succeeds"
            assert_contains "$OUT" "found existing Transit key $kek (type aes256-gcm96, version 1); left unchanged" \
                "$n: a second init-kek leaves the key unchanged"
            ;;
        pkcs11)
            assert_contains "$OUT" "created KEK phantom-kek (AES-256, sensitive, non-extractable) on token phantom" \
                "$n: init-kek output"
            run "$n-init2" "$P" keys init-kek -c "$cfg"
            assert_eq 1 "$RC" "$n: init-kek refuses when the KEK exists"
            assert_contains "$ERR" "already exists" "$n: the refusal says why"
            ;;
    esac

    run "$n-initesc" "$P" keys init-kek --escrow -c "$cfg"
    assert_eq 0 "$RC" "$n: init-kek --escrow creates the escrow file KEK"
    assert_eq 600 "$(stat -c %a "$dir/recovery.key")" "$n: escrow master key has mode 0600"
    run "$n-initesc2" "$P" keys init-kek --escrow -c "$cfg"
    assert_eq 1 "$RC" "$n: init-kek --escrow never overwrites a master-key file"

    run "$n-create" "$P" keys create customers.email payments.card --no-escrow -c "$cfg"
    assert_eq 0 "$RC" "$n: create two domains"
    assert_contains "$OUT" "created customers.email version 1 (key id 1)" "$n: create output"
    run "$n-rotate" "$P" keys rotate customers.email --no-escrow -c "$cfg"
    assert_eq 0 "$RC" "$n: rotate"
    assert_contains "$OUT" "rotated customers.email version 2 (key id 3)" "$n: rotate output"

    run "$n-list" "$P" keys list -c "$cfg"
    assert_eq 0 "$RC" "$n: list"
    assert_eq 3 "$(grep -c " active .*primary=$kek(v1)\$" <<<"$OUT")" \
        "$n: three active DEK versions, each wrapped by KEK version 1"

    run "$n-check" "$P" keys check -c "$cfg"
    assert_eq 0 "$RC" "$n: check"
    local kcv0
    kcv0="$(kcvs "$OUT")"
    assert_eq 3 "$(wc -l <<<"$kcv0")" "$n: check covers every active version"

    run "$n-rotkek" "$P" keys rotate-kek -c "$cfg"
    assert_eq 0 "$RC" "$n: rotate-kek"
    assert_contains "$OUT" "rotated $kek to KEK version 2" "$n: rotate-kek reports the new version"
    run "$n-rewrap" "$P" keys rewrap -c "$cfg"
    assert_eq 0 "$RC" "$n: rewrap"
    assert_contains "$OUT" "rewrapped 3 DEK version(s)" "$n: rewrap count"
    run "$n-list2" "$P" keys list -c "$cfg"
    assert_eq 3 "$(grep -c "primary=$kek(v2)\$" <<<"$OUT")" "$n: every DEK is now under KEK version 2"
    run "$n-check2" "$P" keys check -c "$cfg"
    assert_eq 0 "$RC" "$n: check after rewrap"
    assert_eq "$kcv0" "$(kcvs "$OUT")" "$n: rewrap left every key check value unchanged"

    run "$n-escrow" "$P" keys escrow -c "$cfg"
    assert_eq 0 "$RC" "$n: escrow to the file KEK"
    assert_contains "$OUT" "escrowed 3 DEK version(s)" "$n: escrow count"
    run "$n-list3" "$P" keys list -c "$cfg"
    assert_eq 3 "$(grep -c "primary=$kek(v2) escrow=file:$dir/recovery.key(v1)\$" <<<"$OUT")" \
        "$n: every DEK has a primary and an escrow wrapping"

    # The primary KEK is replaced by a new one (lost HSM key / Transit key).
    run "$n-initnew" "$P" keys init-kek -c "$newcfg"
    assert_eq 0 "$RC" "$n: init-kek makes the replacement KEK"
    run "$n-lost" "$P" keys check -c "$newcfg"
    assert_eq 1 "$RC" "$n: the replacement KEK cannot unwrap the old wrappings"
    run "$n-recover" "$P" keys recover -c "$newcfg"
    assert_eq 0 "$RC" "$n: recover from the escrow KEK"
    assert_contains "$OUT" "recovered 3 DEK version(s)" "$n: recover count"
    run "$n-list4" "$P" keys list -c "$newcfg"
    assert_eq 3 "$(grep -c "primary=$newkek(v1) escrow=" <<<"$OUT")" \
        "$n: every DEK is wrapped by the replacement KEK"
    run "$n-check3" "$P" keys check -c "$newcfg"
    assert_eq 0 "$RC" "$n: check with the replacement KEK"
    assert_eq "$kcv0" "$(kcvs "$OUT")" "$n: the recovered DEKs are the original ones"

    run "$n-verify" "$P" audit verify "$dir/keyring.json.audit.jsonl"
    assert_eq 0 "$RC" "$n: audit verify"
    local ev
    for ev in keys.init-kek keys.create keys.rotate keys.rotate-kek keys.rewrap keys.escrow \
        keys.recover keys.check kek.generate kek.wrap kek.unwrap kek.rewrap kek.rotate; do
        grep -q "\"event\":\"$ev\"" "$dir/keyring.json.audit.jsonl" || fail "$n: audit log lacks $ev"
    done
    grep -q "\"event\":\"keys.init-kek\",\"outcome\":\"ok\",\"kek\":\"$kek\"" \
        "$dir/keyring.json.audit.jsonl" || fail "$n: init-kek not audited with its KEK id"
    ok "$n: audit log records init-kek, admin actions and KEK calls"
}

flow openbao "$T/openbao.yaml" "$T/openbao-new.yaml" \
    "openbao:$BAO/v1/transit/keys/phantom" "openbao:$BAO/v1/transit/keys/phantom-replacement"
flow pkcs11 "$T/pkcs11.yaml" "$T/pkcs11-new.yaml" "pkcs11:phantom/phantom-kek" \
    "pkcs11:phantom/phantom-kek-2"

# ---- openbao failure: the server answers 503 ------------------------------------------------------
cp "$T/ob/keyring.json" "$T/ob/keyring.before"
before_lines="$(wc -l <"$T/ob/keyring.json.audit.jsonl")"
fault '{"mode":"status","status":503,"count":1000}'
run ob503 "$P" keys rotate customers.email --no-escrow -c "$T/openbao-new.yaml"
assert_eq 1 "$RC" "503: rotate exits 1"
assert_contains "$ERR" "server error (HTTP 503): Vault is sealed" "503: the error names the status"
assert_contains "$ERR" "(nothing changed)" "503: the error says nothing changed"
run ob503b "$P" keys rewrap -c "$T/openbao-new.yaml"
assert_eq 1 "$RC" "503: rewrap exits 1"
assert_contains "$ERR" "HTTP 503" "503: rewrap error names the status"
run ob503c "$P" keys init-kek -c "$T/openbao-new.yaml"
assert_eq 1 "$RC" "503: init-kek exits 1"
assert_contains "$ERR" "openbao create key: server error (HTTP 503)" "503: init-kek error"
if cmp -s "$T/ob/keyring.json" "$T/ob/keyring.before"; then
    ok "503: keyring unchanged"
else
    fail "503: the keyring changed"
fi
left="$(bao GET /_double/stats | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["faults_left"])')"
[ "$left" -lt 1000 ] || fail "503: the requests did not reach the double"
fault '{"mode":"status","status":503,"count":0}'
[ "$(wc -l <"$T/ob/keyring.json.audit.jsonl")" -gt "$before_lines" ] || fail "503: failures not audited"
grep -q '"event":"keys.rotate","outcome":"error"' "$T/ob/keyring.json.audit.jsonl" ||
    fail "503: failed rotate not audited"
ok "503: the failures are audited"
run ob503ok "$P" keys check -c "$T/openbao-new.yaml"
assert_eq 0 "$RC" "503: once the server is back, check succeeds"

# An existing Transit key of a weaker type is refused, not adopted.
bao POST /v1/transit/keys/weak '{"type":"aes128-gcm96"}' | grep -q '"type": "aes128-gcm96"' ||
    fail "cannot create an aes128-gcm96 key on the double"
run obweak "$P" keys init-kek -c "$T/openbao-weak.yaml"
assert_eq 1 "$RC" "init-kek refuses an existing aes128-gcm96 Transit key"
assert_contains "$ERR" "exists with type aes128-gcm96" "the refusal names the type"

# ---- pkcs11 failure: a wrong PIN ---------------------------------------------------------------------
cp "$T/p11/keyring.json" "$T/p11/keyring.before"
run badpin "$P" keys rotate customers.email --no-escrow -c "$T/pkcs11-badpin.yaml"
assert_eq 1 "$RC" "wrong PIN: rotate exits 1"
assert_contains "$ERR" "CKR_PIN_INCORRECT" "wrong PIN: the error names the PKCS#11 code"
run badpin2 "$P" keys check -c "$T/pkcs11-badpin.yaml"
assert_eq 1 "$RC" "wrong PIN: check exits 1"
assert_contains "$ERR" "CKR_PIN_INCORRECT" "wrong PIN: check error"
for f in "$T/badpin.out" "$T/badpin.err" "$T/badpin2.out" "$T/badpin2.err" \
    "$T/p11/keyring.json" "$T/p11/keyring.json.audit.jsonl"; do
    grep -q "$WRONG_PIN" "$f" && fail "wrong PIN: $f contains the PIN"
    grep -q "$PIN" "$f" && fail "wrong PIN: $f contains the real PIN"
done
ok "wrong PIN: neither PIN appears in output, keyring or audit log"
if cmp -s "$T/p11/keyring.json" "$T/p11/keyring.before"; then
    ok "wrong PIN: keyring unchanged"
else
    fail "wrong PIN: the keyring changed"
fi
run goodpin "$P" keys check -c "$T/pkcs11-new.yaml"
assert_eq 0 "$RC" "the right PIN still works afterwards (no lockout)"
