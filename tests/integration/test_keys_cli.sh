#!/usr/bin/env bash
# tests/integration/test_keys_cli.sh — the `phantom keys` and `phantom audit`
# command flows against real files (no PostgreSQL needed):
#   init-master (0600, never overwrites), create, list (text and --json, no key
#   material), rotate, check (key check values), rotate-kek + rewrap (DEKs
#   unchanged), retire refused then --force, escrow of a domain created with
#   --no-escrow, recover after deleting the primary master key, the owner/mode
#   check, config errors with FILE:LINE, and audit verify on the produced log
#   and on tampered copies (changed, deleted, reordered line).
set -u
. "$(dirname "$0")/../lib/harness.sh"

P="$PHANTOM_BIN"
T="$PGH_TMP/keys"
mkdir -p "$T"
CFG="$T/phantom.yaml"
LOG="$T/keyring.json.audit.jsonl"

. "$(dirname "$0")/../lib/keys_cli.sh" # run, kcvs

# ---- master keys ---------------------------------------------------------------
run init "$P" keys init-master --out "$T/master.key"
assert_eq 0 "$RC" "init-master creates the master key"
assert_eq 600 "$(stat -c %a "$T/master.key")" "master key has mode 0600"
cp "$T/master.key" "$T/master.copy"
run init2 "$P" keys init-master --out "$T/master.key"
assert_eq 1 "$RC" "init-master refuses to overwrite"
cmp -s "$T/master.key" "$T/master.copy" && ok "existing master key untouched" ||
    fail "init-master changed an existing file"
run initr "$P" keys init-master --out "$T/recovery.key"
assert_eq 0 "$RC" "init-master creates the recovery key"

cat >"$CFG" <<EOF
target: 127.0.0.1:5432
keys:
  keyring: $T/keyring.json
  provider: file
  file: { path: $T/master.key }
  escrow:
    provider: file
    file: { path: $T/recovery.key }
EOF

# ---- create / list ------------------------------------------------------------------
run create "$P" keys create customers.email payments.card -c "$CFG"
assert_eq 0 "$RC" "create two domains"
assert_contains "$OUT" "created customers.email version 1 (key id 1), escrowed" "create output"
assert_eq 600 "$(stat -c %a "$T/keyring.json")" "keyring has mode 0600"
run create2 "$P" keys create customers.email -c "$CFG"
assert_eq 1 "$RC" "create of an existing domain is refused"
assert_contains "$ERR" "already exists" "create twice says why"

run rotate "$P" keys rotate customers.email -c "$CFG"
assert_eq 0 "$RC" "rotate"
assert_contains "$OUT" "rotated customers.email version 2 (key id 3)" "rotate output"

run list "$P" keys list -c "$CFG"
assert_eq 0 "$RC" "list"
assert_eq 3 "$(grep -c ' active ' <<<"$OUT")" "three active DEK versions listed"
assert_contains "$(grep 'customers.email *2 ' <<<"$OUT")" " rw " "version 2 takes new writes"
assert_contains "$(grep 'customers.email *1 ' <<<"$OUT")" " r " "version 1 still decrypts"
assert_contains "$OUT" "primary=file:$T/master.key(v1) escrow=file:$T/recovery.key(v1)" \
    "list shows the wrapping KEKs"

run listj "$P" keys list --json -c "$CFG"
assert_eq 0 "$RC" "list --json"
summary="$(python3 -c '
import json, sys
rows = json.load(sys.stdin)
for r in rows:
    assert "blob" not in json.dumps(r)
    print(r["domain"], r["version"], r["key_id"], r["state"], r["writes"],
          "+".join(w["role"] for w in r["wrapped"]))
' <"$T/listj.out")" || fail "list --json is not valid JSON"
assert_eq "customers.email 1 1 active False primary+escrow
customers.email 2 3 active True primary+escrow
payments.card 1 2 active True primary+escrow" "$summary" "list --json content"

# ---- check: every DEK unwraps; remember the key check values -----------------------
run check "$P" keys check -c "$CFG"
assert_eq 0 "$RC" "check"
KCV0="$(kcvs "$OUT")"
assert_eq 3 "$(wc -l <<<"$KCV0")" "check covers every active version"
# The key check values are not key material, and no file holds a plaintext DEK in hex.
grep -q '"plaintext"' "$T/keyring.json" && fail "keyring holds plaintext"
ok "keyring has only wrapped keys"

# ---- KEK rotation + rewrap ------------------------------------------------------------
run rotkek "$P" keys rotate-kek -c "$CFG"
assert_eq 0 "$RC" "rotate-kek"
assert_contains "$OUT" "KEK version 2" "rotate-kek reports the new KEK version"
assert_eq 2 "$(grep -cE '^[0-9]+ [0-9a-f]{64}$' "$T/master.key")" "master key file has 2 versions"
assert_eq 600 "$(stat -c %a "$T/master.key")" "rotated master key keeps mode 0600"
run rewrap "$P" keys rewrap -c "$CFG"
assert_eq 0 "$RC" "rewrap"
assert_contains "$OUT" "rewrapped 3 DEK version(s)" "rewrap count"
run list2 "$P" keys list -c "$CFG"
assert_eq 3 "$(grep -c "primary=file:$T/master.key(v2)" <<<"$OUT")" "all DEKs wrapped by KEK v2"
run check2 "$P" keys check -c "$CFG"
assert_eq "$KCV0" "$(kcvs "$OUT")" "rewrap left every DEK unchanged"

# ---- retire -----------------------------------------------------------------------------
run retire1 "$P" keys retire customers.email 1 -c "$CFG"
assert_eq 1 "$RC" "retire without evidence of non-use is refused"
assert_contains "$ERR" "becomes permanently unreadable" "retire explains the risk"
assert_contains "$ERR" "--force" "retire mentions --force"
run retire2 "$P" keys retire customers.email 2 --force -c "$CFG"
assert_eq 1 "$RC" "the active version cannot be retired, even with --force"
run retire3 "$P" keys retire customers.email 1 --force -c "$CFG"
assert_eq 0 "$RC" "retire --force"
assert_contains "$ERR" "WARNING" "retire --force warns"
run list3 "$P" keys list -c "$CFG"
assert_contains "$(grep 'customers.email *1 ' <<<"$OUT")" "retired" "version 1 is retired"
run check3 "$P" keys check -c "$CFG"
assert_eq "$(grep -v '^customers.email 1 ' <<<"$KCV0")" "$(kcvs "$OUT")" \
    "the other versions are unchanged"
python3 -c '
import json, sys
kr = json.load(open(sys.argv[1]))
v1 = kr["domains"]["customers.email"]["versions"][0]
assert v1["state"] == "retired" and v1["wrapped"] == [], v1
' "$T/keyring.json" || fail "retired version still has wrappings"
ok "retired version has no wrapping left"

# ---- escrow ------------------------------------------------------------------------------
run create3 "$P" keys create orders.note --no-escrow -c "$CFG"
assert_eq 0 "$RC" "create without escrow"
run list4 "$P" keys list -c "$CFG"
assert_contains "$(grep '^orders.note' <<<"$OUT")" "primary=" "new domain has a primary wrapping"
grep '^orders.note' <<<"$OUT" | grep -q 'escrow=' && fail "--no-escrow still escrowed"
run escrow "$P" keys escrow -c "$CFG"
assert_eq 0 "$RC" "escrow"
assert_contains "$OUT" "escrowed 3 DEK version(s)" "escrow count"
run list5 "$P" keys list -c "$CFG"
assert_eq 3 "$(grep -c "escrow=file:$T/recovery.key" <<<"$OUT")" "every active DEK is escrowed"
run check4 "$P" keys check -c "$CFG"
KCV1="$(kcvs "$OUT")"

# ---- recovery after losing the primary master key ----------------------------------------
rm -f "$T/master.key"
run lost "$P" keys check -c "$CFG"
assert_eq 1 "$RC" "without the master key nothing unwraps"
run init3 "$P" keys init-master --out "$T/master.key" -c "$CFG"
assert_eq 0 "$RC" "a new primary master key"
run wrong "$P" keys check -c "$CFG"
assert_eq 1 "$RC" "the new master key cannot unwrap the old wrappings"
run recover "$P" keys recover -c "$CFG"
assert_eq 0 "$RC" "recover from escrow"
assert_contains "$OUT" "recovered 3 DEK version(s)" "recover count"
run check5 "$P" keys check -c "$CFG"
assert_eq 0 "$RC" "after recover every DEK unwraps with the new master key"
assert_eq "$KCV1" "$(kcvs "$OUT")" "recovered DEKs are the original ones"

# ---- master-key file checks --------------------------------------------------------------
chmod 644 "$T/master.key"
run mode "$P" keys check -c "$CFG"
assert_eq 1 "$RC" "a 0644 master key is refused"
assert_contains "$ERR" "mode 0644" "the refusal names the mode"
chmod 600 "$T/master.key"

# ---- config errors -------------------------------------------------------------------------
printf 'keys:\n  keyring: %s\n  provider: vault\n' "$T/keyring.json" >"$T/bad.yaml"
run badcfg "$P" keys list -c "$T/bad.yaml"
assert_eq 2 "$RC" "a bad config exits 2"
assert_contains "$ERR" "$T/bad.yaml:3: keys: provider must be" "config error has FILE:LINE"

# ---- audit log ------------------------------------------------------------------------------
run verify "$P" audit verify "$LOG"
assert_eq 0 "$RC" "audit verify on the produced log"
n="$(wc -l <"$LOG")"
assert_contains "$OUT" "OK: $n lines" "audit verify counts every line"
for ev in keys.init-master keys.create keys.rotate keys.rotate-kek keys.rewrap keys.retire keys.escrow \
    keys.recover keys.check kek.generate kek.wrap kek.unwrap kek.rewrap kek.rotate; do
    grep -q "\"event\":\"$ev\"" "$LOG" || fail "audit log lacks $ev"
done
ok "audit log records admin actions and KEK calls"
grep -q '"event":"keys.retire","outcome":"refused"' "$LOG" || fail "refused retire not audited"
grep '"event":"keys.retire","outcome":"ok"' "$LOG" | grep -q '"detail":"force"' ||
    fail "forced retire not audited as such"
ok "retire refusals and --force are audited"
for k in $(awk '{print $3}' <<<"$KCV1"); do
    grep -q "$k" "$LOG" && fail "audit log contains a key check value"
done
grep -qiE '"(blob|dek|key)":' "$LOG" && fail "audit log has a key field"
ok "audit log holds no key material"

cp "$LOG" "$T/changed.jsonl"
sed -i '7s/"outcome":"ok"/"outcome":"no"/' "$T/changed.jsonl"
cmp -s "$LOG" "$T/changed.jsonl" && fail "test did not change line 7"
run vchanged "$P" audit verify "$T/changed.jsonl"
assert_eq 1 "$RC" "audit verify detects a changed line"
assert_contains "$OUT" "changed.jsonl:7:" "changed line number"

cp "$LOG" "$T/deleted.jsonl"
sed -i '12d' "$T/deleted.jsonl"
run vdeleted "$P" audit verify "$T/deleted.jsonl"
assert_eq 1 "$RC" "audit verify detects a deleted line"
assert_contains "$OUT" "deleted.jsonl:12:" "deleted line number"

cp "$LOG" "$T/reordered.jsonl"
sed -i '20{h;d};21G' "$T/reordered.jsonl"
run vreordered "$P" audit verify "$T/reordered.jsonl"
assert_eq 1 "$RC" "audit verify detects reordered lines"
assert_contains "$OUT" "reordered.jsonl:20:" "reordered line number"

run vmissing "$P" audit verify "$T/nonexistent.jsonl"
assert_eq 2 "$RC" "audit verify of a missing file exits 2"
