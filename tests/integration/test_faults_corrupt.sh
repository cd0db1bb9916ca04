#!/usr/bin/env bash
# Faults in the data (issue 7): corrupt ciphertext in the database.
#
# A throwaway PostgreSQL 15 and the ASan proxy with table fc protected: email
# deterministic, secret and note randomized (separate key domains), num int8
# randomized, email2 deterministic in email's key domain (`key: fc.email`).
# Twelve rows go in through the proxy (leak-canary values); then, directly in
# PostgreSQL (bypassing the proxy):
#
#   row 2   secret: one byte of the GCM body flipped (set_byte ... # 1)
#   row 3   secret: truncated to 10 bytes
#   row 4   secret: version byte 0x01 -> 0x02
#   row 5   note := row 5's secret (an envelope of another column and key
#           domain, same mode)
#   row 6   num: one byte flipped
#   row 7   email: one byte of the SIV flipped
#   row 8   secret := row 9's secret (another row, same column)
#   row 9   email2 := row 9's email (another column of the same key domain)
#   row 10  secret: an empty bytea
#   row 11  note := row 11's secret with its key id bytes replaced by note's
#           (the key is found: the AEAD check must fail)
#   row 12  secret: mode byte 0x01 (randomized) -> 0x02 (deterministic)
#
# Read through the proxy with psycopg in the simple protocol, the extended
# protocol with text results and with binary results, each row alone: rows
# 2-7 and 10-12 give ErrorResponse XX001 "phantom: cannot decrypt a value of
# fc.<column>: <reason>" (the column that is damaged) whose fields hold none of
# the row's plaintext; the same connection reads row 1 right afterwards and a
# second connection is unaffected. COPY fc TO STDOUT (text and binary) gives
# the rows before the first damaged one, each exactly right, then XX001
# naming the row and column; psql shows the same errors; a SELECT of every
# row gives the error and no row.
#
# What the envelope binds (SPEC: AEAD associated data = header | key domain):
# version, mode, key id and key domain — not the table, the column or the
# row. So an envelope moved to a column of another key domain (row 5) fails
# (asserted), but rows 8 and 9 decrypt, as the value they were copied from:
# these are pinned here as known properties (README "Reliability"), not
# accepted silently. Likewise an UPDATE ... RETURNING of a damaged value
# reports XX001 although the UPDATE itself was executed (autocommit: it is
# committed) — pinned too.
set -u
source "$(dirname "$0")/../lib/harness.sh"
declare -F canary_text >/dev/null || source "$HARNESS_ROOT/tests/lib/canary.sh"

PY=/usr/bin/python3
"$PY" -c 'import psycopg' 2>/dev/null || fail "psycopg 3 is not importable by $PY"

pgh_start
T="$PGH_TMP/faults"
mkdir -p "$T"
phx_encrypt_config "$T" "encrypt:
  fc:
    - email: deterministic
    - secret
    - note
    - { column: num, mode: randomized, type: int8 }
    - { column: email2, mode: deterministic, key: fc.email }" fc.email fc.secret fc.note fc.num
phx_start --config "$CFG"

export PGPASSWORD=scram_pw
DSN="host=127.0.0.1 port=$PHX_PORT dbname=$PGH_DB user=phantom_scram sslmode=disable connect_timeout=10"
q() { timeout 60 psql "$DSN" -X -At -v ON_ERROR_STOP=1 -c "$1" 2>&1; }
qd() { pgh_admin_psql -At -d "$PGH_DB" -v ON_ERROR_STOP=1 -c "$1" 2>&1; }

# --- rows -------------------------------------------------------------------------------------
EMAIL_TAG=$(canary_email fc)
SECRET_TAG=$(canary_text fc-secret)
NOTE_TAG=$(canary_text fc-note)
NUM_TAG=$(canary_int)
out=$(q "CREATE TABLE fc (id int PRIMARY KEY, email text, secret text, note text, num int8, email2 text, plain text)") ||
    fail "create fc: $out"
for i in $(seq 1 12); do
    printf '%d\tr%d.%s\t%s-%d\t%s-%d\t%s%d\tb%d.%s\tplain-%d\n' "$i" "$i" "$EMAIL_TAG" "$SECRET_TAG" "$i" \
        "$NOTE_TAG" "$i" "$NUM_TAG" "$((i + 10))" "$i" "$EMAIL_TAG" "$i"
done >"$T/fc.tsv"
out=$(q "\\copy fc from '$T/fc.tsv'") || fail "load fc: $out"
assert_eq "COPY 12" "$out" "12 protected rows stored through the proxy"
cp "$T/fc.tsv" "$T/expected.tsv"

# --- damage, directly in PostgreSQL (in row order, so COPY meets row 2 first) --------------------
flip() { echo "set_byte($1, $2, get_byte($1, $2) # 1)"; }
qd "UPDATE fc SET secret = $(flip secret 20) WHERE id = 2" >/dev/null || fail "damage row 2"
qd "UPDATE fc SET secret = substring(secret from 1 for 10) WHERE id = 3" >/dev/null || fail "damage row 3"
qd "UPDATE fc SET secret = set_byte(secret, 0, 2) WHERE id = 4" >/dev/null || fail "damage row 4"
qd "UPDATE fc SET note = secret WHERE id = 5" >/dev/null || fail "damage row 5"
qd "UPDATE fc SET num = $(flip num 10) WHERE id = 6" >/dev/null || fail "damage row 6"
qd "UPDATE fc SET email = $(flip email 8) WHERE id = 7" >/dev/null || fail "damage row 7"
qd "UPDATE fc SET secret = (SELECT secret FROM fc WHERE id = 9) WHERE id = 8" >/dev/null || fail "damage row 8"
qd "UPDATE fc SET email2 = email WHERE id = 9" >/dev/null || fail "damage row 9"
qd "UPDATE fc SET secret = ''::bytea WHERE id = 10" >/dev/null || fail "damage row 10"
qd "UPDATE fc SET note = overlay(secret placing substring(note from 3 for 4) from 3 for 4) WHERE id = 11" \
    >/dev/null || fail "damage row 11"
qd "UPDATE fc SET secret = set_byte(secret, 1, 2) WHERE id = 12" >/dev/null || fail "damage row 12"
assert_eq "2 3 4 5 6 7 8 9 10 11 12" "$(qd "SELECT string_agg(id::text, ' ' ORDER BY ctid) FROM fc WHERE id > 1")" \
    "(set-up) the damaged rows lie in row order"
ok "rows 2-12 damaged directly in PostgreSQL"

# --- psycopg: simple, extended text, extended binary; COPY text and binary -----------------------
cat >"$T/read.py" <<'PY'
# read.py DSN EXPECTED_TSV: reads fc through the proxy; one line per check.
#   PROTO ID ok                           the row is exactly the expected one
#   PROTO ID WRONG ...                    a row that is not the expected one
#   PROTO ID row=<values>                 (rows 8 and 9, see the test)
#   PROTO ID error SQLSTATE MESSAGE leak=no|yes   (leak: a plaintext of the
#                                         row appears in any error field)
#   followed, after an error, by "then row 1 ok|BROKEN" (same connection)
# and for COPY: "copy-FORMAT rows=K correct=yes|no error SQLSTATE MESSAGE".
import re, struct, sys
import psycopg
from psycopg.pq import DiagnosticField as F

dsn, expected_path = sys.argv[1], sys.argv[2]
expected = {}
for line in open(expected_path):
    v = line.rstrip("\n").split("\t")
    expected[int(v[0])] = (int(v[0]), v[1], v[2], v[3], int(v[4]), v[5])
COLS = "id, email, secret, note, num, email2"
conn = psycopg.connect(dsn, autocommit=True)
other = psycopg.connect(dsn, autocommit=True)
simple = psycopg.ClientCursor(conn)

def norm(msg):
    return re.sub(r"key id [0-9]+", "key id N", msg)

def leaked(e, row):
    text = " ".join(str(e.diag.__getattribute__(a) or "") for a in
                    ("message_primary", "message_detail", "message_hint", "context",
                     "statement_position", "internal_query"))
    return any(str(v) in text for v in row[1:])

def fetch(proto, i):
    if proto == "simple":
        simple.execute("SELECT %s FROM fc WHERE id = %d" % (COLS, i))
        return simple.fetchall()
    return conn.execute("SELECT %s FROM fc WHERE id = %%s" % COLS, (i,),
                        binary=(proto == "binary")).fetchall()

def check_row1(proto):
    try:
        ok = fetch(proto, 1) == [expected[1]] and \
            other.execute("SELECT %s FROM fc WHERE id = 1" % COLS).fetchall() == [expected[1]]
    except psycopg.Error:
        ok = False
    return "then row 1 ok" if ok else "then row 1 BROKEN"

for proto in ("simple", "text", "binary"):
    for i in range(1, 13):
        try:
            rows = fetch(proto, i)
        except psycopg.Error as e:
            print(proto, i, "error", e.sqlstate, norm(e.diag.message_primary or ""),
                  "leak=" + ("yes" if leaked(e, expected[i]) else "no"), check_row1(proto))
            continue
        if rows == [expected[i]]:
            print(proto, i, "ok")
        elif i in (8, 9):
            print(proto, i, "row=" + "|".join(str(v) for v in rows[0]))
        else:
            print(proto, i, "WRONG", rows)

def copy_rows(fmt):
    got, err = [], None
    sql = "COPY fc (%s) TO STDOUT" % COLS + (" (FORMAT binary)" if fmt == "binary" else "")
    try:
        with conn.cursor().copy(sql) as cp:
            if fmt == "binary":
                cp.set_types(["int4", "text", "text", "text", "int8", "text"])
            for row in cp.rows():
                got.append(tuple(row))
    except psycopg.Error as e:
        err = e
    return got, err

for fmt in ("text", "binary"):
    got, err = copy_rows(fmt)
    if fmt == "text":
        got = [(int(r[0]), r[1], r[2], r[3], int(r[4]), r[5]) for r in got]
    correct = all(r == expected[r[0]] for r in got)
    print("copy-%s rows=%d correct=%s" % (fmt, len(got), "yes" if correct else "no"),
          ("error %s %s leak=%s" % (err.sqlstate, norm(err.diag.message_primary or ""),
                                    "yes" if leaked(err, expected[2]) else "no")) if err else "no error",
          check_row1("text"))

# A SELECT of every row: the error, no row.
try:
    rows = conn.execute("SELECT %s FROM fc ORDER BY id" % COLS).fetchall()
    print("all rows=%d no error" % len(rows))
except psycopg.Error as e:
    print("all error", e.sqlstate, norm(e.diag.message_primary or ""), check_row1("text"))
PY

timeout 120 "$PY" "$T/read.py" "$DSN" "$T/expected.tsv" >"$T/read.out" 2>&1 || fail "read.py failed: $(cat "$T/read.out")"
cat "$T/read.out"
AUTH="authentication failed (tampered value, wrong key or wrong key domain)"
THEN="leak=no then row 1 ok"
for proto in simple text binary; do
    cat <<EOF
$proto 1 ok
$proto 2 error XX001 phantom: cannot decrypt a value of fc.secret: $AUTH $THEN
$proto 3 error XX001 phantom: cannot decrypt a value of fc.secret: malformed envelope $THEN
$proto 4 error XX001 phantom: cannot decrypt a value of fc.secret: malformed envelope $THEN
$proto 5 error XX001 phantom: cannot decrypt a value of fc.note: no key with key id N in key domain fc.note $THEN
$proto 6 error XX001 phantom: cannot decrypt a value of fc.num: $AUTH $THEN
$proto 7 error XX001 phantom: cannot decrypt a value of fc.email: $AUTH $THEN
$proto 8 row=8|r8.$EMAIL_TAG|$SECRET_TAG-9|$NOTE_TAG-8|${NUM_TAG}18|b8.$EMAIL_TAG
$proto 9 row=9|r9.$EMAIL_TAG|$SECRET_TAG-9|$NOTE_TAG-9|${NUM_TAG}19|r9.$EMAIL_TAG
$proto 10 error XX001 phantom: cannot decrypt a value of fc.secret: malformed envelope $THEN
$proto 11 error XX001 phantom: cannot decrypt a value of fc.note: $AUTH $THEN
$proto 12 error XX001 phantom: cannot decrypt a value of fc.secret: envelope mode does not match the column $THEN
EOF
done >"$T/want.out"
for fmt in text binary; do
    echo "copy-$fmt rows=1 correct=yes error XX001 COPY row 2, column 3: phantom: cannot decrypt a value of fc.secret: $AUTH $THEN"
done >>"$T/want.out"
echo "all error XX001 phantom: cannot decrypt a value of fc.secret: $AUTH then row 1 ok" >>"$T/want.out"
if ! diff "$T/want.out" "$T/read.out" >"$T/read.diff"; then
    cat "$T/read.diff" >&2
    fail "reads of damaged rows through the proxy differ from the expected outcome (diff above: < expected, > got)"
fi
ok "simple, extended text and extended binary: each damaged row gives XX001 naming its column, without its plaintext; the connection and a second one go on"
ok "COPY TO text and binary: the rows before the damaged one exactly right, then XX001 naming row and column"
ok "an envelope of another key domain does not decrypt: no key of its id in fc.note (row 5), or, with note's key id written in, the AEAD check fails (row 11)"
ok "pinned: an envelope moved to another row of its column (row 8) or to a column of the same key domain (row 9) decrypts as the value it was sealed from (the envelope binds the key domain, not the row or the column)"

# --- psql ---------------------------------------------------------------------------------------------
out=$(q "select secret from fc where id = 2")
assert_eq "ERROR:  phantom: cannot decrypt a value of fc.secret: $AUTH" "$out" "psql, damaged row: the error, no value"
out=$(timeout 60 psql "$DSN" -X -At -c "select secret from fc where id = 4" -c "select secret from fc where id = 1" 2>&1)
assert_eq "ERROR:  phantom: cannot decrypt a value of fc.secret: malformed envelope
$SECRET_TAG-1" "$out" "psql: the same session reads row 1 after the error"
out=$(timeout 60 psql "$DSN" -X -At -c "\\copy fc (id, secret) to stdout" 2>&1)
assert_eq "1	$SECRET_TAG-1
ERROR:  COPY row 2, column 2: phantom: cannot decrypt a value of fc.secret: $AUTH" "$out" \
    "psql \\copy to: row 1, then the error naming row 2's column"
out=$(q "select id, plain from fc where id between 2 and 7 order by id")
assert_eq "2|plain-2
3|plain-3
4|plain-4
5|plain-5
6|plain-6
7|plain-7" "$out" "columns that are not damaged still read"

# --- a damaged value in RETURNING ---------------------------------------------------------------------
# (The message may go on to say that the statement was executed.)
out=$(q "update fc set plain = 'updated' where id = 2 returning secret")
assert_contains "$out" "ERROR:  phantom: cannot decrypt a value of fc.secret: $AUTH" \
    "UPDATE ... RETURNING a damaged value: XX001"
case "$out" in *"$SECRET_TAG"* | *UPDATE*) fail "UPDATE ... RETURNING a damaged value: a value or a command tag reached the client: [$out]" ;; esac
ok "... and no value"
assert_eq "updated" "$(qd "select plain from fc where id = 2")" \
    "pinned: that UPDATE was executed and committed all the same (autocommit)"

assert_eq "ok" "$(q "select 'ok'")" "the proxy still serves"
kill -0 "$PHX_PID" 2>/dev/null || fail "the proxy died"
