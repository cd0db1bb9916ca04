#!/usr/bin/env bash
# tests/integration/test_verify.sh — `phantom verify` against a real database
# (seed 000's last step, issue "verify and reencrypt"):
#   * tables created and filled through the encrypting proxy (customers with a
#     deterministic, a randomized and an ope column; payments sharing
#     customers.email's key domain; line_items with a composite primary key):
#     verify exits 0, its table shows the row / NULL / per-version counts, and
#     it records key usage (payments.customer_email counted in
#     customers.email's domain; keys list shows it; the audit log has one
#     keys.usage record per version and still verifies);
#   * values written directly, bypassing the proxy: plaintext (id 7), an
#     envelope of another mode (id 8), an envelope of another key domain
#     (id 9), plaintext in a composite-key table (order 3, line 2): exit 1,
#     each offending primary key listed with its reason, no other key listed,
#     and the plaintext never printed;
#   * --deep: one flipped byte in an envelope's body is found only by --deep;
#   * a configured column that is text in the database: "plaintext column",
#     exit 1; --table limits the scan and the usage records (a shared domain
#     is not recorded when a table of it was not scanned); usage errors and an
#     unreachable database exit 2.
#   The values written through the proxy come from the leak canary
#   (tests/lib/canary.sh): the snapshot at exit must not find them.
set -u
source "$(dirname "$0")/../lib/harness.sh"

P="$PHANTOM_BIN"
pgh_start
T="$PGH_TMP/verify"
mkdir -p "$T"
source "$(dirname "$0")/../lib/keys_cli.sh" # run

CFG="$T/phantom.yaml"
"$P" keys init-master --out "$T/master.key" >"$T/keys.log" 2>&1 || fail "keys init-master"
keys_section="keys:
  keyring: $T/keyring.json
  provider: file
  file: { path: $T/master.key }"
encrypt_section="encrypt:
  customers:
    - email: deterministic
    - phone
    - column: age
      mode: ope
      type: int4
  payments:
    - column: customer_email
      mode: deterministic
      key: customers.email
    - note
  line_items:
    - secret"
printf '%s\n%s\n' "$keys_section" "$encrypt_section" >"$CFG"
# The same plus a column that the database holds as text.
printf '%s\n%s\n  notes:\n    - body\n' "$keys_section" "$encrypt_section" >"$T/with_notes.yaml"
"$P" keys create -c "$T/with_notes.yaml" >>"$T/keys.log" 2>&1 || { cat "$T/keys.log" >&2; fail "keys create"; }
ok "keys created for every domain"

phx_start --config "$CFG"
base="dbname=$PGH_DB user=phantom_scram password=scram_pw sslmode=disable connect_timeout=10"
PROXY="host=127.0.0.1 port=$PHX_PORT $base"
DIRECT="host=127.0.0.1 port=$PGH_PORT $base"
q() { # DSN ARGS...
    local c="$1"
    shift
    timeout 60 psql -X -w -q -v ON_ERROR_STOP=1 "$c" "$@"
}

# --- data through the proxy ------------------------------------------------------------------
# Protected values from the leak canary (tests/lib/canary.sh): EMAIL[i] is
# customer i's address, PHONE[i] its phone (every 10th NULL).
q "$PROXY" -c "CREATE TABLE customers (id int PRIMARY KEY, email text, phone text, age int4, tier text)" \
    -c "CREATE TABLE payments (id bigint PRIMARY KEY, customer_email text, note text)" \
    -c "CREATE TABLE line_items (order_id int, line int, secret text, PRIMARY KEY (order_id, line))" ||
    fail "DDL through the proxy"
mapfile -t EMAIL < <(echo; canary_emails 300)
mapfile -t phones < <(canary_texts phone 270)
mapfile -t NOTE < <(echo; canary_texts note 200)
mapfile -t ITEM < <(canary_texts item 15)
PHONE=("")
for i in $(seq 1 300); do
    if [ $((i % 10)) -eq 0 ]; then PHONE+=(""); else PHONE+=("${phones[$((i - 1 - i / 10))]}"); fi
done
{
    echo "INSERT INTO customers VALUES"
    for i in $(seq 1 300); do
        phone="'${PHONE[$i]}'"
        [ $((i % 10)) -eq 0 ] && phone=NULL
        printf "(%d, '%s', %s, %d, 'basic')%s\n" "$i" "${EMAIL[$i]}" "$phone" $((i % 90)) \
            "$([ "$i" -lt 300 ] && echo ,)"
    done
    echo ";"
    echo "INSERT INTO payments VALUES"
    for i in $(seq 1 200); do
        printf "(%d, '%s', '%s')%s\n" "$i" "${EMAIL[$((i % 300 + 1))]}" "${NOTE[$i]}" "$([ "$i" -lt 200 ] && echo ,)"
    done
    echo ";"
    echo "INSERT INTO line_items VALUES"
    k=0
    for o in 1 2 3 4 5; do
        for l in 1 2 3; do
            printf "(%d, %d, '%s')%s\n" "$o" "$l" "${ITEM[$k]}" "$([ "$o$l" != 53 ] && echo ,)"
            k=$((k + 1))
        done
    done
    echo ";"
} >"$T/data.sql"
[ -n "${PHONE[7]}" ] && [ -z "${PHONE[10]}" ] && [ -n "${PHONE[299]}" ] || fail "(set-up) phone list"
q "$PROXY" -f "$T/data.sql" || fail "loading data through the proxy"
assert_eq "${EMAIL[7]}|${PHONE[7]}|7" "$(q "$PROXY" -At -c "select email, phone, age from customers where id = 7")" \
    "the data reads back through the proxy"
assert_eq "bytea" "$(q "$DIRECT" -At -c "select pg_typeof(phone) from customers limit 1")" "stored as bytea"

# --- a clean database --------------------------------------------------------------------------
run clean "$P" verify -c "$CFG" --dsn "$DIRECT"
assert_eq 0 "$RC" "verify exits 0 on data written through the proxy"
row() { grep -E "^$1 " <<<"$OUT" | tr -s ' '; }
assert_eq "customers.email deterministic 300 0 0 v1=300" "$(row customers.email)" "customers.email: 300 rows, all under v1"
assert_eq "customers.phone randomized 300 30 0 v1=270" "$(row customers.phone)" "customers.phone: 30 NULLs, 270 values under v1"
assert_eq "customers.age ope 300 0 0 v1=300" "$(row customers.age)" "customers.age (ope)"
assert_eq "payments.customer_email deterministic 200 0 0 v1=200" "$(row payments.customer_email)" "payments.customer_email"
assert_eq "line_items.secret randomized 15 0 0 v1=15" "$(row line_items.secret)" "line_items.secret (composite key)"
assert_contains "$OUT" "usage recorded: customers.email v1=500" "usage of a shared domain sums both tables"
assert_contains "$OUT" "usage recorded: customers.phone v1=270" "usage of customers.phone recorded"
assert_contains "$OUT" "verify: OK" "verdict"
run list "$P" keys list -c "$CFG" --json
assert_contains "$(grep '"customers.email"' <<<"$OUT")" '"rows":500' "keys list shows the recorded usage"
n=$(grep -c '"event":"keys.usage"' "$T/keyring.json.audit.jsonl")
assert_eq 5 "$n" "one keys.usage audit record per recorded version"
run audit "$P" audit verify "$T/keyring.json.audit.jsonl"
assert_eq 0 "$RC" "the audit log still verifies"

# --- values written directly, bypassing the proxy --------------------------------------------
q "$DIRECT" -c "CREATE TABLE saved AS SELECT id, phone FROM customers WHERE id IN (7, 8, 9, 11)" \
    -c "UPDATE customers SET phone = 'not encrypted'::bytea WHERE id = 7" \
    -c "UPDATE customers SET phone = email WHERE id = 8" \
    -c "UPDATE customers SET phone = (SELECT note FROM payments WHERE id = 1) WHERE id = 9" \
    -c "UPDATE line_items SET secret = 'plain item'::bytea WHERE order_id = 3 AND line = 2" ||
    fail "direct writes"
run bad "$P" verify -c "$CFG" --dsn "$DIRECT"
assert_eq 1 "$RC" "verify exits 1 when values were written around the proxy"
assert_contains "$OUT" "INVALID customers.phone id=7: not a phantom envelope" "plaintext value: its key listed"
assert_contains "$OUT" "INVALID customers.phone id=8: an envelope of another mode" "deterministic envelope in a randomized column"
assert_contains "$OUT" "INVALID customers.phone id=9: unknown or retired key id" "envelope of another key domain"
assert_contains "$OUT" "INVALID line_items.secret order_id=3, line=2: not a phantom envelope" "composite primary key listed"
assert_eq 4 "$(grep -c '^INVALID' <<<"$OUT")" "exactly the four offending rows listed"
assert_eq "customers.phone randomized 300 30 3 v1=267" "$(row customers.phone)" "per-column counts with the invalid values"
assert_contains "$OUT" "customers.phone: 3 invalid values (1 not a phantom envelope, 1 an envelope of another mode than the column's, 1 unknown or retired key id" "reasons summarised"
assert_contains "$OUT" "verify: FAILED" "verdict"
case "$OUT$ERR" in
    *"not encrypted"* | *"plain item"* | *"${EMAIL[8]}"*) fail "verify printed a stored value" ;;
    *) ok "no value printed" ;;
esac

# --- --deep ---------------------------------------------------------------------------------
q "$DIRECT" -c "UPDATE customers c SET phone = s.phone FROM saved s WHERE c.id = s.id" \
    -c "UPDATE line_items SET secret = (SELECT secret FROM line_items WHERE order_id = 3 AND line = 1) WHERE order_id = 3 AND line = 2" ||
    fail "restoring the rows"
run restored "$P" verify -c "$CFG" --dsn "$DIRECT"
assert_eq 0 "$RC" "restored envelopes verify again (a copied envelope of the same column is valid)"
q "$DIRECT" -c "UPDATE customers SET phone = set_byte(phone, length(phone) - 1, get_byte(phone, length(phone) - 1) # 1) WHERE id = 11" ||
    fail "flipping a byte"
run shallow "$P" verify -c "$CFG" --dsn "$DIRECT"
assert_eq 0 "$RC" "without --deep a flipped body byte goes unnoticed (header checks only)"
run deep "$P" verify -c "$CFG" --dsn "$DIRECT" --deep
assert_eq 1 "$RC" "--deep finds the flipped byte"
assert_contains "$OUT" "INVALID customers.phone id=11: does not decrypt" "--deep lists the row"
assert_eq 1 "$(grep -c '^INVALID' <<<"$OUT")" "--deep lists only that row"
q "$DIRECT" -c "UPDATE customers c SET phone = s.phone FROM saved s WHERE c.id = s.id" || fail "restore"
run deep2 "$P" verify -c "$CFG" --dsn "$DIRECT" --deep
assert_eq 0 "$RC" "--deep passes on intact data"

# --- a configured column that is plaintext in the database ------------------------------------
q "$DIRECT" -c "CREATE TABLE notes (id int PRIMARY KEY, body text)" -c "INSERT INTO notes VALUES (1, 'secret text')" ||
    fail "notes table"
run notes "$P" verify -c "$T/with_notes.yaml" --dsn "$DIRECT"
assert_eq 1 "$RC" "verify exits 1 on a plaintext column"
assert_contains "$(row notes.body)" "PLAINTEXT COLUMN (type text, expected bytea)" "the column is reported as plaintext"
assert_contains "$OUT" "usage not recorded: notes.body" "no usage recorded for a plaintext column"
case "$OUT$ERR" in *"secret text"*) fail "verify printed a plaintext value" ;; *) ok "plaintext column value not printed" ;; esac

# --- --table, usage errors, unreachable database ------------------------------------------------
run table "$P" verify -c "$CFG" --dsn "$DIRECT" --table public.payments
assert_eq 0 "$RC" "--table payments"
assert_eq "" "$(row customers.email)" "--table: customers not scanned"
assert_contains "$OUT" "usage not recorded: customers.email (customers.email was not checked in this run)" \
    "--table: a domain shared with an unscanned table is not recorded"
assert_contains "$OUT" "usage recorded: payments.note v1=200" "--table: a domain of the scanned table only is recorded"
run notable "$P" verify -c "$CFG" --dsn "$DIRECT" --table nosuch
assert_eq 2 "$RC" "--table of an unconfigured table exits 2"
run usage "$P" verify -c "$CFG"
assert_eq 2 "$RC" "missing --dsn exits 2"
assert_contains "$ERR" "usage: phantom verify" "usage text"
run help "$P" verify --help
assert_eq 0 "$RC" "--help exits 0"
run down "$P" verify -c "$CFG" --dsn "host=127.0.0.1 port=1 dbname=x user=x connect_timeout=3"
assert_eq 2 "$RC" "an unreachable database exits 2"
assert_contains "$ERR" "cannot connect to the database" "connection error reported"
