#!/usr/bin/env bash
# Deterministic lookups during a DEK rotation (SPEC §5: "deterministic lookups
# during rotation match all live versions").
#
# A throwaway PostgreSQL 15 and the proxy with customers.email deterministic
# (payments.customer_email in its key domain). Rows are inserted through the
# proxy under version 1; `phantom keys rotate customers.email` adds version 2;
# the proxy restarts (it loads keys at start) and more rows are inserted, now
# under version 2. Then:
#   * read directly, the envelopes of the two batches carry two different key
#     ids (bytes 2..5 of the envelope header), one per batch;
#   * through the proxy with psql (simple protocol literals): =, literal on the
#     left, IN, NOT IN, <>, = ANY (ARRAY[...]) find rows of both versions with
#     the expected counts; an UPDATE ... WHERE email = finds a version-1 row;
#     the join of payments and customers within one version works; IS DISTINCT
#     FROM is refused (0A000, "key rotation is in progress");
#   * through the proxy with psycopg 3 (server-side parameters, prepared, text
#     and binary): = $1, IN ($1, $2), <> $1 find rows of both versions, the
#     decrypted value equals the one looked up, ParameterDescription says text;
#   * a value stored while both versions are live uses version 2 only.
# The addresses and names are leak canaries (tests/lib/canary.sh): the
# snapshot at exit must not find them.
set -u
source "$(dirname "$0")/../lib/harness.sh"

PY=/usr/bin/python3
"$PY" -c 'import psycopg' 2>/dev/null || fail "psycopg 3 is not importable by $PY"

pgh_start
T="$PGH_TMP/rot"
mkdir -p "$T"
phx_encrypt_config "$T" "encrypt:
  customers:
    - email: deterministic
    - full_name
  payments:
    - column: customer_email
      mode: deterministic
      key: customers.email" customers.email customers.full_name

export PGPASSWORD=scram_pw
base="user=phantom_scram password=scram_pw connect_timeout=10 sslmode=disable"
DIRECT="host=127.0.0.1 port=$PGH_PORT dbname=$PGH_DB $base"
proxy_dsn() { echo "host=127.0.0.1 port=$PHX_PORT dbname=$PGH_DB $base"; }
q() { timeout 60 psql "$(proxy_dsn)" -X -At -v ON_ERROR_STOP=1 -c "$1" 2>&1; }
qd() { timeout 60 psql "$DIRECT" -X -At -v ON_ERROR_STOP=1 -c "$1" 2>&1; }

# Protected values from the leak canary (tests/lib/canary.sh).
ANN=$(canary_email) BOB=$(canary_email) CY=$(canary_email) DUP=$(canary_email)
EVE=$(canary_email) FAY=$(canary_email)
N_ANN=$(canary_text name) N_BOB=$(canary_text name) N_CY=$(canary_text name) N_DUP1=$(canary_text name)
N_EVE=$(canary_text name) N_FAY=$(canary_text name) N_DUP2=$(canary_text name)
N_BOBBY=$(canary_text name) N_ANN2=$(canary_text name)

# --- version 1 ------------------------------------------------------------------------
phx_start --config "$CFG"
out=$(q "CREATE TABLE customers (id int PRIMARY KEY, email text, full_name text)") ||
    fail "create customers: $out"
out=$(q "CREATE TABLE payments (id int PRIMARY KEY, customer_email text, amount int)") ||
    fail "create payments: $out"
out=$(q "INSERT INTO customers (id, email, full_name) VALUES
         (1, '${ANN}', '${N_ANN}'), (2, '${BOB}', '${N_BOB}'),
         (3, '${CY}', '${N_CY}'), (4, '${DUP}', '${N_DUP1}')") ||
    fail "insert under version 1: $out"
out=$(q "INSERT INTO payments VALUES (10, '${ANN}', 5)") || fail "insert payment: $out"
ok "4 customers and 1 payment stored under version 1"
phx_stop

out=$("$PHANTOM_BIN" keys rotate customers.email -c "$CFG" 2>&1) || fail "keys rotate: $out"
assert_contains "$out" "rotated customers.email version 2" "keys rotate customers.email"

# --- version 2 (the proxy loads both live versions at start) ---------------------------------
phx_start --config "$CFG"
out=$(q "INSERT INTO customers (id, email, full_name) VALUES
         (5, '${EVE}', '${N_EVE}'), (6, '${FAY}', '${N_FAY}'),
         (7, '${DUP}', '${N_DUP2}')") || fail "insert under version 2: $out"
ok "3 customers stored after the rotation"

# --- what the database holds -------------------------------------------------------------------
kid="encode(substring(email from 3 for 4), 'hex')"
ids1=$(qd "SELECT DISTINCT $kid FROM customers WHERE id <= 4") || fail "direct read: $ids1"
ids2=$(qd "SELECT DISTINCT $kid FROM customers WHERE id >= 5") || fail "direct read: $ids2"
n=$(qd "SELECT count(DISTINCT $kid) FROM customers")
assert_eq 2 "$n" "two different key ids in the stored envelopes"
assert_eq 1 "$(echo "$ids1" | wc -l)" "the version-1 batch carries one key id"
assert_eq 1 "$(echo "$ids2" | wc -l)" "the version-2 batch carries one key id"
[ "$ids1" != "$ids2" ] || fail "both batches carry key id $ids1"
ok "key ids: version 1 = $ids1, version 2 = $ids2"
n=$(qd "SELECT count(*) FROM customers WHERE get_byte(email, 0) = 1 AND get_byte(email, 1) = 2")
assert_eq 7 "$n" "every email is a deterministic envelope (version 1 format, mode 2)"
n=$(qd "SELECT count(DISTINCT email) FROM customers WHERE id IN (4, 7)")
assert_eq 2 "$n" "the same address under two versions: two different ciphertexts"

# --- psql: simple-protocol literals ------------------------------------------------------------
assert_eq "1|${ANN}" "$(q "SELECT id, email FROM customers WHERE email = '${ANN}'")" \
    "= finds a version-1 row"
assert_eq "5|${EVE}" "$(q "SELECT id, email FROM customers WHERE email = '${EVE}'")" \
    "= finds a version-2 row"
assert_eq "4
7" "$(q "SELECT id FROM customers WHERE email = '${DUP}' ORDER BY id")" \
    "= finds the address under both versions"
assert_eq "2" "$(q "SELECT id FROM customers WHERE '${BOB}' = email")" \
    "literal on the left"
assert_eq "4" "$(q "SELECT count(*) FROM customers WHERE email IN ('${ANN}', '${FAY}', '${DUP}')")" \
    "IN over both versions"
assert_eq "3" "$(q "SELECT count(*) FROM customers WHERE email NOT IN ('${ANN}', '${EVE}', '${DUP}')")" \
    "NOT IN over both versions"
assert_eq "5" "$(q "SELECT count(*) FROM customers WHERE email <> '${DUP}'")" \
    "<> excludes the address under both versions"
assert_eq "3" "$(q "SELECT count(*) FROM customers WHERE email = ANY (ARRAY['${CY}', '${DUP}'])")" \
    "= ANY (ARRAY[...]) over both versions"
assert_eq "UPDATE 1" "$(q "UPDATE customers SET full_name = '${N_BOBBY}' WHERE email = '${BOB}'")" \
    "UPDATE ... WHERE email = finds a version-1 row"
assert_eq "${N_BOBBY}" "$(q "SELECT full_name FROM customers WHERE email = '${BOB}'")" \
    "the updated row reads back"
assert_eq "${ANN}|5" "$(q "SELECT c.email, p.amount FROM payments p JOIN customers c ON c.email = p.customer_email WHERE p.customer_email = '${ANN}'")" \
    "join within one version plus a lookup in the shared key domain"
out=$(q "SELECT id FROM customers WHERE email IS DISTINCT FROM '${ANN}'") &&
    fail "IS DISTINCT FROM during a rotation was not refused: $out"
assert_contains "$out" "key rotation is in progress" "IS DISTINCT FROM refused during the rotation"
assert_contains "$out" "customers.email" "the refusal names the column"

# --- a value stored now uses the active version only ---------------------------------------------
out=$(q "INSERT INTO customers (id, email, full_name) VALUES (8, '${ANN}', '${N_ANN2}')") ||
    fail "insert: $out"
assert_eq "$ids2" "$(qd "SELECT $kid FROM customers WHERE id = 8")" "a new write uses version 2"
assert_eq "1
8" "$(q "SELECT id FROM customers WHERE email = '${ANN}' ORDER BY id")" \
    "the lookup finds the old and the new row"

# --- psycopg: server-side parameters -------------------------------------------------------------
cat >"$T/lookups.py" <<'PYEOF'
import sys
import psycopg

dsn = sys.argv[1]
ANN, BOB, CY, DUP, EVE, FAY = sys.argv[2:8]
fails = 0


def check(what, got, want):
    global fails
    if got == want:
        print(f"ok - psycopg: {what}")
    else:
        print(f"FAIL - psycopg: {what}: expected {want!r}, got {got!r}")
        fails += 1


with psycopg.connect(dsn, autocommit=True) as conn:
    cur = conn.cursor()
    for binary in (False, True):
        tag = "binary" if binary else "text"
        cur = conn.cursor(binary=binary)
        q = "SELECT id, email FROM customers WHERE email = %s ORDER BY id"
        cur.execute(q, (CY,), prepare=True)
        check(f"= $1 prepared ({tag}), version 1", cur.fetchall(), [(3, CY)])
        cur.execute(q, (FAY,), prepare=True)
        check(f"= $1 prepared ({tag}), version 2", cur.fetchall(), [(6, FAY)])
        cur.execute(q, (DUP,), prepare=True)
        check(f"= $1 prepared ({tag}), both versions", [r[0] for r in cur.fetchall()], [4, 7])
        cur.execute("SELECT count(*) FROM customers WHERE email IN (%s, %s)",
                    (ANN, EVE), prepare=True)
        check(f"IN ($1, $2) ({tag})", cur.fetchone()[0], 3)
        cur.execute("SELECT count(*) FROM customers WHERE email <> %s", (DUP,),
                    prepare=True)
        check(f"<> $1 ({tag})", cur.fetchone()[0], 6)
        cur.execute("SELECT id FROM customers WHERE %s = email", (BOB,))
        check(f"$1 = email ({tag})", cur.fetchall(), [(2,)])
    # the statement's parameter is described to the client as text, not bytea[]
    stmt = conn.pgconn.prepare(b"rot_desc", b"SELECT id FROM customers WHERE email = $1")
    desc = conn.pgconn.describe_prepared(b"rot_desc")
    check("ParameterDescription of email = $1", desc.param_type(0), 25)
    # stored and compared: refused with a clear message, the connection stays usable
    res = conn.pgconn.prepare(b"rot_both", b"UPDATE customers SET email = $1 WHERE email = $1")
    err = (res.error_message or b"").decode()
    check("a parameter both stored and compared is refused (SQLSTATE)",
          res.error_field(psycopg.pq.DiagnosticField.SQLSTATE), b"0A000")
    check("... with a message saying why", "stored in and compared" in err, True)
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM customers")
    check("connection usable after the refusal", cur.fetchone()[0], 8)

sys.exit(1 if fails else 0)
PYEOF
pyout=$(timeout 120 "$PY" "$T/lookups.py" "$(proxy_dsn)" "$ANN" "$BOB" "$CY" "$DUP" "$EVE" "$FAY" 2>&1)
rc=$?
echo "$pyout"
[ "$rc" -eq 0 ] || fail "psycopg lookups (exit $rc)"
ok "psycopg lookups over both versions"
