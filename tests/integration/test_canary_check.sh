#!/usr/bin/env bash
# tests/integration/test_canary_check.sh — the leak canary can fail (issue 7).
#
# Runs the snapshot + check machinery (tests/lib/canary.sh canary_snapshot,
# tests/lib/canary_check.sh) on a throwaway PostgreSQL with the proxy in
# front of it, into private report directories (never the run-wide one):
#   * clean: canaries written through the encrypting proxy (psql literals and
#     psycopg bind parameters; the server log holds their envelopes): the
#     check passes and says how many values it looked for;
#   * leaks, each of which must be reported with its artifact, location and
#     an excerpt in which the canary is masked:
#       A  inserted directly (not through the proxy) into a text column:
#          found in pg_dumpall, the server log (log_statement = all), the
#          heap and the WAL;
#       D  a canary_int inserted directly into a text column: the same;
#       C  written directly as bytea into a protected column: found as hex in
#          pg_dumpall, and as is in the server log and the data files;
#       B1 a literal of a statement the server rejects (simple protocol, the
#          session's log_statement off): found only in the server log's
#          error record;
#       B2 a bind parameter of a statement that fails during execution
#          (extended protocol, log_statement off): found only in the error
#          record's parameter context (log_parameter_max_length_on_error);
#     and the check fails;
#   * the snapshot at exit (as pgh_start registers it): a test that writes a
#     canary directly and exits 0 fails when run on its own; under run.sh
#     (a run-wide directory) it exits 0 and the run-wide report fails.
set -u
source "$(dirname "$0")/../lib/harness.sh"

PY=/usr/bin/python3
"$PY" -c 'import psycopg' 2>/dev/null || fail "psycopg 3 is not importable by $PY"
CHECK="$HARNESS_ROOT/tests/lib/canary_check.sh"

pgh_start
canary_done # the deliberate leaks below must not reach the run-wide report
T="$PGH_TMP/cc"
mkdir -p "$T"
phx_encrypt_config "$T" "encrypt:
  vault:
    - body
    - email: deterministic"
phx_start --config "$CFG"
base="dbname=$PGH_DB user=phantom_scram password=scram_pw sslmode=disable connect_timeout=10"
PROXY="host=127.0.0.1 port=$PHX_PORT $base"
DIRECT="host=127.0.0.1 port=$PGH_PORT $base"
q() { # DSN SQL
    timeout 60 psql -X -w -q -At -v ON_ERROR_STOP=1 "$1" -c "$2"
}
hits_of() { # REPORT CANARY: the artifacts of its hits, sorted, unique
    awk -F'\t' -v c="$2" '$4 == c || $4 == "hex of " c { print $2 }' "$1/hits" 2>/dev/null | sort -u | tr '\n' ' '
}

# --- clean: canaries through the encrypting proxy ---------------------------------------
q "$PROXY" "CREATE TABLE vault (id int PRIMARY KEY, body text, email text)" || fail "create vault"
for i in 1 2 3 4 5; do
    q "$PROXY" "INSERT INTO vault VALUES ($i, '$(canary_text body)', '$(canary_email)')" || fail "insert $i"
done
"$PY" - "$PROXY" "$HARNESS_ROOT/tests/clients" <<'PY' || fail "psycopg inserts through the proxy"
import sys
sys.path.insert(0, sys.argv[2])
import psycopg
from canary import text, email
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    for i in range(6, 16):
        conn.execute("INSERT INTO vault VALUES (%s, %s, %s)", (i, text("body"), email()))
    conn.execute("UPDATE vault SET body = %s WHERE email = %s",
                  (text("upd"), conn.execute("SELECT email FROM vault WHERE id = 7").fetchone()[0]))
PY
assert_eq 15 "$(q "$PROXY" "SELECT count(*) FROM vault WHERE body IS NOT NULL")" "15 rows through the proxy"
assert_eq "bytea" "$(q "$DIRECT" "SELECT pg_typeof(body) FROM vault LIMIT 1")" "stored as envelopes"
nrec=$(sort -u "$PHANTOM_CANARY_DIR/values" | wc -l)
assert_eq 31 "$nrec" "31 canaries recorded (bash and Python)"
n=$(grep -c "parameters: \$1 = '15', \$2 = '\\\\x01" "$PGH_LOG")
assert_eq 1 "$n" "the server log holds the bind parameters of statements (the envelopes)"
out=$(canary_snapshot --report "$T/clean")
assert_eq 0 "$?" "clean snapshot: no hits"
echo "$out"
out=$(bash "$CHECK" --min 31 "$T/clean")
assert_eq 0 "$?" "canary_check.sh passes on the clean snapshot"
assert_eq "canary: 31 values checked across 1 test clusters (dumps, server logs, data files, proxy logs): no leak" \
    "$out" "canary_check.sh: the verdict names the number of values"
out=$(bash "$CHECK" --min 32 "$T/clean")
assert_eq 1 "$?" "canary_check.sh fails when fewer values than --min were checked"
assert_contains "$out" "only 31 values" "... and says so"
grep -q . "$T/clean/hits" 2>/dev/null && fail "clean snapshot wrote hits"
read -r dump data <<<"$(awk -F'\t' '{ sub("dump=", "", $4); sub("data=", "", $6); print $4, $6 }' "$T/clean/clusters")"
[ "${dump:-0}" -gt 1000 ] && [ "${data:-0}" -gt 1000000 ] || fail "clean snapshot: dump $dump bytes, data $data bytes"
ok "clean snapshot looked at a $dump-byte dump and $data bytes of data files"

# --- leaks --------------------------------------------------------------------------------
A=$(canary_text direct)
q "$DIRECT" "CREATE TABLE notes (id int PRIMARY KEY, note text)" || fail "create notes"
q "$DIRECT" "INSERT INTO notes VALUES (1, '$A')" || fail "direct insert"
D=$(canary_int)
q "$DIRECT" "INSERT INTO notes VALUES (2, '$D')" || fail "direct insert of an integer canary"
C=$(canary_text bytea)
q "$DIRECT" "INSERT INTO vault (id, body) VALUES (99, convert_to('$C', 'UTF8'))" || fail "direct bytea insert"
B1=$(canary_text refused)
B2=$(canary_text failed)
"$PY" - "$DIRECT" "$B1" "$B2" <<'PY' || fail "rejected statements"
import sys
import psycopg
dsn, b1, b2 = sys.argv[1:]
with psycopg.connect(dsn, autocommit=True) as conn:
    conn.execute("SET log_statement = 'none'")  # only the error record may show them
    try:
        psycopg.ClientCursor(conn).execute(f"SELECT '{b1}'::int")
        sys.exit("B1 accepted")
    except psycopg.errors.InvalidTextRepresentation:
        pass
    try:
        conn.execute("SELECT length(%s::text) / 0", (b2,))
        sys.exit("B2 accepted")
    except psycopg.errors.DivisionByZero:
        pass
PY
out=$(canary_snapshot --report "$T/leak")
assert_eq 1 "$?" "leak snapshot: canary_snapshot returns non-zero"
echo "$out"
out=$(bash "$CHECK" --min 1 "$T/leak")
assert_eq 1 "$?" "canary_check.sh fails on the leaks"
echo "$out" | sed 's/^/# /'
assert_contains "$out" "canary: LEAK" "the verdict says LEAK"
assert_eq "data-file dump server-log " "$(hits_of "$T/leak" "$A")" \
    "A (direct insert): found in the dump, the server log and the data files"
a_files=$(awk -F'\t' -v c="$A" '$4 == c && $2 == "data-file" { split($3, p, "/"); print p[1] }' "$T/leak/hits" | sort -u | tr '\n' ' ')
assert_eq "base pg_wal " "$a_files" "A: found in the heap (base/) and in the WAL (pg_wal/)"
assert_contains "$(grep -F "$A" "$T/leak/hits" | awk -F'\t' '$2 == "dump" { print $5 }')" \
    "1 <canary>" "A: the dump excerpt shows the row with the canary masked"
assert_eq "data-file dump server-log " "$(hits_of "$T/leak" "$C")" "C (bytea written directly): found in the dump, the server log and the data files"
assert_eq "1" "$(awk -F'\t' -v c="hex of $C" '$4 == c && $2 == "dump"' "$T/leak/hits" | wc -l)" \
    "C: found in the dump as hex (bytea output)"
assert_eq "data-file dump server-log " "$(hits_of "$T/leak" "$D")" \
    "D (canary_int, inserted directly as text): found in the dump, the server log and the data files"
assert_eq "server-log " "$(hits_of "$T/leak" "$B1")" "B1 (a rejected literal): found in the server log only"
assert_contains "$(awk -F'\t' -v c="$B1" '$4 == c { print $5 }' "$T/leak/hits")" \
    'invalid input syntax for type integer: "<canary>"' "B1: the excerpt is the error message, canary masked"
assert_eq "server-log " "$(hits_of "$T/leak" "$B2")" "B2 (a parameter of a failed statement): found in the server log only"
assert_contains "$(awk -F'\t' -v c="$B2" '$4 == c { print $5 }' "$T/leak/hits")" \
    "portal with parameters: \$1 = '<canary>'" "B2: found in the error record's parameter context"
for v in "$A" "$B1" "$B2" "$C" "$D"; do
    awk -F'\t' '{ print $5 }' "$T/leak/hits" | grep -qF -- "$v" && fail "an excerpt shows the canary $v unmasked"
done
ok "no excerpt shows a canary unmasked"
assert_eq 0 "$(awk -F'\t' '$4 ~ /^cnry-(body|upd)-/ || $4 ~ /^cnry[0-9a-f]+@/' "$T/leak/hits" | wc -l)" \
    "the values written through the proxy are still not found"
assert_contains "$out" "$B2" "canary_check.sh lists B2"

# --- the snapshot at exit (as pgh_start registers it), in child tests -----------------------------
# Each child sources the harness, inherits PGH_* (this test's cluster),
# registers the snapshot at exit as pgh_start does, writes a canary directly
# and exits 0.
cat >"$T/leaky.sh" <<EOF
set -u
source "$HARNESS_ROOT/tests/lib/harness.sh"
pgh_defer _canary_at_exit
v=\$(canary_text leaky)
pgh_admin_psql -d "\$PGH_DB" -q -c "INSERT INTO notes SELECT max(id) + 1, '\$v' FROM notes" || fail insert
ok "wrote \$v directly"
EOF
out=$(env -u PHANTOM_CANARY_DIR -u PHANTOM_CANARY_RUN_DIR timeout 120 bash "$T/leaky.sh" 2>&1)
assert_eq 1 "$?" "a test that leaks a canary fails when run on its own"
assert_contains "$out" "canary: LEAK" "... with the hits listed"
mkdir -p "$T/runwide"
out=$(env -u PHANTOM_CANARY_RUN_DIR PHANTOM_CANARY_DIR="$T/runwide" timeout 120 bash "$T/leaky.sh" 2>&1)
assert_eq 0 "$?" "under a run-wide directory (run.sh) the test itself exits 0"
out=$(bash "$CHECK" --min 1 "$T/runwide")
assert_eq 1 "$?" "... and the run-wide check fails"
assert_eq "leaky	data-file leaky	dump leaky	server-log " \
    "$(cut -f1,2 "$T/runwide/hits" | sort -u | tr '\n' ' ')" "the run-wide report names the test and the artifacts"
