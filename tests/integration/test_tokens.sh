#!/usr/bin/env bash
# Tokenization (mode token) through the proxy, with both vault backends.
#
# A throwaway PostgreSQL 15; a `payments` table with token columns of every
# format (card, email, digits, opaque, and a second card column sharing the
# card key domain). With the local SQLite vault:
#   * phantom check-config validates the tokens: section (FILE:LINE errors);
#   * CREATE TABLE through the proxy stores token columns as text;
#   * rows inserted with psql literals, psycopg parameters (text and binary)
#     and \copy read back exactly through the proxy (psql and psycopg);
#   * =, <>, IN and IS NULL find the right rows (literals and prepared
#     parameters); a lookup of a value never stored finds nothing and adds no
#     vault record; the same value gets the same token in both card columns
#     (one key domain), so their equality join works;
#   * LIKE, ranges, ORDER BY and GROUP BY are refused (0A000, column and mode
#     named) and the connection stays usable;
#   * read directly, the database holds tokens that keep their format: card
#     tokens are Luhn-valid with the value's last four digits, email tokens
#     keep the domain, digit tokens keep the length, opaque ones are tok_...;
#     no token equals its value;
#   * the vault file holds none of the values; a proxy restart keeps every
#     token (read back exactly, the same value gets its old token).
# With a PostgreSQL vault (a second database of the same cluster stands for
# the operator's separate PostgreSQL), two proxies share it: a value stored
# through one gets the same token through the other, each detokenizes the
# other's tokens, and values tokenized by both at once end with one token.
# Every value is a leak canary (tests/lib/canary.sh): the snapshot at exit
# searches the dump (vault database included), the server log and the data
# files for them.
set -u
source "$(dirname "$0")/../lib/harness.sh"

PY=/usr/bin/python3
"$PY" -c 'import psycopg' 2>/dev/null || fail "psycopg 3 is not importable by $PY"

pgh_start
T="$PGH_TMP/tok"
mkdir -p "$T"
export PGPASSWORD=scram_pw
base="user=phantom_scram password=scram_pw connect_timeout=10 sslmode=disable"
DIRECT="host=127.0.0.1 port=$PGH_PORT dbname=$PGH_DB $base"
proxy_dsn() { echo "host=127.0.0.1 port=${1:-$PHX_PORT} dbname=$PGH_DB $base"; }
q() { timeout 60 psql "$(proxy_dsn)" -X -At -v ON_ERROR_STOP=1 -c "$1" 2>&1; }
qp() { timeout 60 psql "$(proxy_dsn "$1")" -X -At -v ON_ERROR_STOP=1 -c "$2" 2>&1; }
qd() { timeout 60 psql "$DIRECT" -X -At -v ON_ERROR_STOP=1 -c "$1" 2>&1; }

ENCRYPT="encrypt:
  payments:
    - {column: card, mode: token, format: card}
    - {column: backup_card, mode: token, format: card, key: payments.card}
    - {column: email, mode: token, format: email}
    - {column: ssn, mode: token, format: digits}
    - {column: note, mode: token}"

phx_encrypt_config "$T" "$ENCRYPT
tokens:
  vault: sqlite
  path: $T/tokens.db" payments.card payments.email payments.ssn payments.note

# --- check-config -------------------------------------------------------------------------------
out=$("$PHANTOM_BIN" check-config --keys "$CFG" 2>&1) || fail "check-config --keys: $out"
ok "check-config --keys accepts the tokens: section and opens the vault"
printf '%s\ntokens:\n  vault: sqlite\n  path: %s/x.db\n  cache: 5\n' "$ENCRYPT" "$T" >"$T/bad.yaml"
out=$("$PHANTOM_BIN" check-config "$T/bad.yaml" 2>&1) && fail "a bad tokens: section was accepted"
assert_contains "$out" "bad.yaml:11: tokens: unknown setting \"cache\"" "check-config names file and line"
printf '%s\ntokens:\n  vault: postgres\n' "$ENCRYPT" >"$T/bad.yaml"
out=$("$PHANTOM_BIN" check-config "$T/bad.yaml" 2>&1) && fail "a postgres vault without dsn was accepted"
assert_contains "$out" "vault postgres needs \`dsn:\`" "check-config: postgres vault needs a dsn"

# --- values (leak canaries) ----------------------------------------------------------------------
N=24
# Random Luhn-valid card numbers (16 digits, starting with 4), recorded as canaries.
mapfile -t CARDS < <("$PY" - "$N" <<'PYEOF'
import secrets, sys
def luhn_digit(body):
    s = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        s += d
    return str((10 - s % 10) % 10)
for _ in range(int(sys.argv[1]) + 4):
    body = "4" + "".join(secrets.choice("0123456789") for _ in range(14))
    print(body + luhn_digit(body))
PYEOF
)
[ "${#CARDS[@]}" -eq $((N + 4)) ] || fail "card generation"
for c in "${CARDS[@]}"; do _canary_record "$c"; done
mapfile -t EMAILS < <(canary_emails $((N + 4)))
mapfile -t SSNS < <(canary_ints $((N + 4)))
mapfile -t NOTES < <(canary_texts note $((N + 4)))
NEVER_CARD="${CARDS[$N]}" NEVER_EMAIL="${EMAILS[$N]}" # never stored

# --- the table and rows through the proxy (SQLite vault) --------------------------------------
phx_start --config "$CFG"
out=$(q "CREATE TABLE payments (id int PRIMARY KEY, card varchar(19), backup_card text, email text,
         ssn varchar(20), note text, amount int)") || fail "create table: $out"
assert_eq "text text text text text" \
    "$(qd "SELECT string_agg(data_type, ' ' ORDER BY column_name) FROM information_schema.columns
           WHERE table_name = 'payments' AND column_name IN ('card','backup_card','email','ssn','note')")" \
    "token columns are stored as text"

sql="INSERT INTO payments (id, card, backup_card, email, ssn, note, amount) VALUES "
for i in $(seq 0 9); do
    [ "$i" -gt 0 ] && sql+=", "
    bc="NULL"
    [ "$i" -eq 3 ] && bc="'${CARDS[3]}'"
    sql+="($i, '${CARDS[$i]}', $bc, '${EMAILS[$i]}', '${SSNS[$i]}', '${NOTES[$i]}', $i)"
done
out=$(q "$sql") || fail "insert with literals: $out"
ok "10 rows inserted with psql literals"

cat >"$T/client.py" <<'PYEOF'
import json, sys
import psycopg

dsn, vals = sys.argv[1], json.load(open(sys.argv[2]))
cards, emails, ssns, notes = vals["cards"], vals["emails"], vals["ssns"], vals["notes"]
never_card = vals["never_card"]
fails = 0

def check(what, got, want):
    global fails
    if got == want:
        print(f"ok - psycopg: {what}")
    else:
        print(f"FAIL - psycopg: {what}: expected {want!r}, got {got!r}")
        fails += 1

with psycopg.connect(dsn, autocommit=True) as conn:
    if vals["mode"] == "load":
        for binary in (False, True):
            cur = conn.cursor(binary=binary)
            rng = range(10, 15) if not binary else range(15, 20)
            for i in rng:
                cur.execute("INSERT INTO payments (id, card, email, ssn, note, amount) "
                            "VALUES (%s, %s, %s, %s, %s, %s)",
                            (i, cards[i], emails[i], ssns[i], notes[i], i), prepare=True)
        # the same card again, in another row: the same token
        conn.execute("INSERT INTO payments (id, card, amount) VALUES (%s, %s, 99)",
                     (100, cards[12]))
    else:
        for binary in (False, True):
            tag = "binary" if binary else "text"
            cur = conn.cursor(binary=binary)
            for i in (2, 11, 17):
                cur.execute("SELECT id, card, email, ssn, note FROM payments WHERE card = %s "
                            "AND id < 100", (cards[i],), prepare=True)
                check(f"= $1 ({tag}) finds row {i}", cur.fetchall(),
                      [(i, cards[i], emails[i], ssns[i], notes[i])])
            cur.execute("SELECT id FROM payments WHERE email = %s", (emails[5],), prepare=True)
            check(f"email = $1 ({tag})", cur.fetchall(), [(5,)])
            cur.execute("SELECT count(*) FROM payments WHERE card IN (%s, %s, %s)",
                        (cards[1], cards[12], never_card), prepare=True)
            check(f"IN ($1, $2, $3) ({tag})", cur.fetchone()[0], 3)
            cur.execute("SELECT count(*) FROM payments WHERE card = %s", (never_card,),
                        prepare=True)
            check(f"a value never stored matches nothing ({tag})", cur.fetchone()[0], 0)
            cur.execute("SELECT count(*) FROM payments WHERE card <> %s", (cards[0],),
                        prepare=True)
            check(f"<> $1 ({tag})", cur.fetchone()[0], vals["rows"] - 1)
        desc = conn.pgconn.describe_prepared(
            conn.pgconn.prepare(b"tk", b"SELECT id FROM payments WHERE card = $1") and b"tk")
        check("ParameterDescription of card = $1 is text", desc.param_type(0), 25)
sys.exit(1 if fails else 0)
PYEOF
write_vals() { # mode rows
    "$PY" - "$T/vals.json" "$1" "$2" "$NEVER_CARD" "${CARDS[@]:0:$N}" -- "${EMAILS[@]:0:$N}" \
        -- "${SSNS[@]:0:$N}" -- "${NOTES[@]:0:$N}" <<'PYEOF'
import json, sys
out, mode, rows, never = sys.argv[1:5]
rest, groups, cur = sys.argv[5:], [], []
for a in rest:
    if a == "--":
        groups.append(cur); cur = []
    else:
        cur.append(a)
groups.append(cur)
json.dump({"mode": mode, "rows": int(rows), "never_card": never, "cards": groups[0],
           "emails": groups[1], "ssns": groups[2], "notes": groups[3]}, open(out, "w"))
PYEOF
}
write_vals load 21
pyout=$(timeout 120 "$PY" "$T/client.py" "$(proxy_dsn)" "$T/vals.json" 2>&1) ||
    { echo "$pyout"; fail "psycopg load"; }
ok "10 rows inserted with psycopg parameters (text and binary), one repeated card"

# \copy FROM: rows 20..23
: >"$T/in.tsv"
for i in 20 21 22 23; do
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$i" "${CARDS[$i]}" "${EMAILS[$i]}" "${SSNS[$i]}" "${NOTES[$i]}" "$i" >>"$T/in.tsv"
done
out=$(timeout 60 psql "$(proxy_dsn)" -X -v ON_ERROR_STOP=1 \
    -c "\\copy payments (id, card, email, ssn, note, amount) FROM '$T/in.tsv'" 2>&1) ||
    fail "\\copy from: $out"
ROWS=25

# --- read back exactly --------------------------------------------------------------------------
: >"$T/want.txt"
for i in $(seq 0 23); do
    printf '%s|%s|%s|%s|%s\n' "$i" "${CARDS[$i]}" "${EMAILS[$i]}" "${SSNS[$i]}" "${NOTES[$i]}" >>"$T/want.txt"
done
q "SELECT id, card, email, ssn, note FROM payments WHERE id < 100" | sort -n >"$T/got.txt"
sort -n "$T/want.txt" | cmp -s - "$T/got.txt" || { diff <(sort -n "$T/want.txt") "$T/got.txt" | head; fail "rows do not read back exactly"; }
ok "24 rows read back exactly through the proxy (literals, parameters, \\copy)"
out=$(timeout 60 psql "$(proxy_dsn)" -X -At -v ON_ERROR_STOP=1 \
    -c "\\copy payments (id, card, email) TO '$T/out.tsv'" 2>&1) || fail "\\copy to: $out"
assert_eq "$(awk -F'|' '{print $1"\t"$2"\t"$3}' "$T/want.txt" | sort)" \
    "$(awk -F'\t' '$1 < 100' "$T/out.tsv" | sort)" "\\copy TO gives the values"

# --- SQL on token columns ---------------------------------------------------------------------------
assert_eq "7" "$(q "SELECT id FROM payments WHERE card = '${CARDS[7]}'")" "= literal"
assert_eq "8" "$(q "SELECT id FROM payments WHERE '${SSNS[8]}' = ssn")" "literal on the left"
assert_eq "1
4
9" "$(q "SELECT id FROM payments WHERE email IN ('${EMAILS[1]}', '${EMAILS[4]}', '${NEVER_EMAIL}', '${EMAILS[9]}') ORDER BY id")" "IN with a value never stored"
assert_eq "$((ROWS - 2))" "$(q "SELECT count(*) FROM payments WHERE note <> '${NOTES[0]}'")" \
    "<> (row 100 has no note)"
assert_eq "100" "$(q "SELECT id FROM payments WHERE email IS NULL")" "IS NULL"
assert_eq "3" "$(q "SELECT id FROM payments WHERE backup_card IS NOT NULL")" "IS NOT NULL"
assert_eq "12
100" "$(q "SELECT id FROM payments WHERE card = '${CARDS[12]}' ORDER BY id")" "the repeated card finds both rows"
assert_eq "3" "$(q "SELECT a.id FROM payments a JOIN payments b ON a.card = b.backup_card")" \
    "equality join of two columns of one key domain"
assert_eq "UPDATE 1" "$(q "UPDATE payments SET note = '${NOTES[$((N + 1))]}' WHERE card = '${CARDS[6]}'")" "UPDATE ... WHERE card ="
assert_eq "${NOTES[$((N + 1))]}" "$(q "SELECT note FROM payments WHERE id = 6")" "the updated value reads back"
vault_rows() { "$PY" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from phantom_tokens").fetchone()[0])' "$T/tokens.db"; }
before=$(vault_rows)
assert_eq "0" "$(q "SELECT count(*) FROM payments WHERE card = '${CARDS[$((N + 2))]}' OR email = '${EMAILS[$((N + 2))]}'")" \
    "values never stored match nothing"
assert_eq "$before" "$(vault_rows)" "a lookup adds no vault record"
write_vals check "$ROWS"
pyout=$(timeout 120 "$PY" "$T/client.py" "$(proxy_dsn)" "$T/vals.json" 2>&1)
rc=$?
echo "$pyout"
[ "$rc" -eq 0 ] || fail "psycopg lookups (exit $rc)"

for stmt in "SELECT id FROM payments WHERE card LIKE '4%'|LIKE" \
    "SELECT id FROM payments WHERE card > '4'|payments.card (token)" \
    "SELECT id FROM payments ORDER BY email|ORDER BY" \
    "SELECT ssn, count(*) FROM payments GROUP BY ssn|GROUP BY" \
    "SELECT id FROM payments WHERE upper(note) = 'X'|payments.note (token)"; do
    sqlq="${stmt%|*}" want="${stmt##*|}"
    out=$(q "$sqlq") && fail "not refused: $sqlq"
    assert_contains "$out" "$want" "refused: $sqlq"
    assert_contains "$out" "(token)" "the refusal names the mode: $sqlq"
done
assert_eq "$ROWS" "$(q "SELECT count(*) FROM payments")" "the connection stays usable after refusals"

# --- what the database holds: tokens in their formats ----------------------------------------------
qd "SELECT id, coalesce(card, ''), coalesce(email, ''), coalesce(ssn, ''), coalesce(note, '') FROM payments WHERE id < 100 ORDER BY id" >"$T/direct.txt"
"$PY" - "$T/direct.txt" "$T/want.txt" <<'PYEOF' || fail "stored tokens break a format rule"
import re, sys
want = {}
for line in open(sys.argv[2]):
    i, card, email, ssn, note = line.rstrip("\n").split("|")
    want[int(i)] = (card, email, ssn, note)
def luhn(s):
    t = 0
    for k, ch in enumerate(reversed(s)):
        d = int(ch)
        if k % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        t += d
    return t % 10 == 0
bad = 0
for line in open(sys.argv[1]):
    i, card, email, ssn, note = line.rstrip("\n").split("|")
    c, e, s, n = want[int(i)]
    checks = [
        (re.fullmatch(r"\d{16}", card) and luhn(card), "card token is 16 Luhn-valid digits"),
        (card[-4:] == c[-4:], "card token keeps the last four digits"),
        (re.fullmatch(r"[a-z0-9]{16}@example\.com", email), "email token keeps the domain"),
        (re.fullmatch(r"\d{%d}" % len(s), ssn), "digits token keeps the length"),
        (re.fullmatch(r"tok_[A-Za-z0-9]{22}", note), "opaque token is tok_ + 22 base62"),
        (card != c and email != e and ssn != s and note != n, "no token equals its value"),
    ]
    for good, what in checks:
        if not good:
            print(f"FAIL - row {i}: {what}")
            bad += 1
print(f"ok - {len(want)} rows of tokens checked against the format rules")
sys.exit(1 if bad else 0)
PYEOF
assert_eq "1" "$(qd "SELECT count(DISTINCT card) FROM payments WHERE id IN (12, 100)")" \
    "the same value has the same token in two rows"
assert_eq "t" "$(qd "SELECT card = backup_card FROM payments WHERE id = 3")" \
    "the same value has the same token in two columns of one key domain"
ok "the database holds format-keeping tokens"

# --- the vault file holds no plaintext; restart keeps tokens -----------------------------------------------
for f in "$T"/tokens.db*; do
    for v in "${CARDS[@]:0:$N}" "${EMAILS[@]:0:$N}" "${SSNS[@]:0:$N}" "${NOTES[@]:0:$N}"; do
        if grep -qaF -- "$v" "$f"; then fail "the vault file $f holds a value"; fi
    done
done
tok7=$(qd "SELECT card FROM payments WHERE id = 7")
grep -qaF -- "$tok7" "$T"/tokens.db* || fail "self-test: the vault search finds a token"
ok "the vault file holds tokens and sealed values, no value"
phx_stop
phx_start --config "$CFG"
q "SELECT id, card, email, ssn, note FROM payments WHERE id < 100 AND id <> 6" | sort -n >"$T/got2.txt"
grep -v '^6|' "$T/want.txt" | sort -n | cmp -s - "$T/got2.txt" || fail "rows do not read back after a restart"
out=$(q "INSERT INTO payments (id, card, amount) VALUES (101, '${CARDS[7]}', 1)") || fail "insert: $out"
assert_eq "$tok7" "$(qd "SELECT card FROM payments WHERE id = 101")" "after a restart a value keeps its token"
ok "proxy restart: the SQLite vault keeps every token"
phx_stop

# --- two proxies sharing a PostgreSQL vault -----------------------------------------------------------
pgh_admin_psql -d postgres -q -c "CREATE DATABASE phantom_vault OWNER phantom_scram" >/dev/null ||
    fail "create the vault database"
sed -e '/^tokens:/,$d' "$CFG" >"$T/pg.yaml"
cat >>"$T/pg.yaml" <<EOF
  shared:
    - {column: card, mode: token, format: card, key: payments.card}
    - {column: email, mode: token, format: email, key: payments.email}
tokens:
  vault: postgres
  dsn: "host=127.0.0.1 port=$PGH_PORT dbname=phantom_vault user=phantom_scram password=scram_pw sslmode=disable"
  cache_size: 100
EOF
phx_start --config "$T/pg.yaml"
PA=$PHX_PORT
phx_start --config "$T/pg.yaml"
PB=$PHX_PORT
out=$(qp "$PA" "CREATE TABLE shared (id int PRIMARY KEY, card text, email text)") ||
    fail "create shared: $out"
X="${CARDS[$((N + 3))]}" Y="${EMAILS[$((N + 3))]}"
out=$(qp "$PA" "INSERT INTO shared VALUES (1, '$X', NULL)") || fail "insert via A: $out"
out=$(qp "$PB" "INSERT INTO shared VALUES (2, '$X', '$Y')") || fail "insert via B: $out"
assert_eq "1" "$(qd "SELECT count(DISTINCT card) FROM shared")" "both proxies give one value one token"
assert_eq "1|$X" "$(qp "$PB" "SELECT id, card FROM shared WHERE id = 1")" "B detokenizes A's token"
assert_eq "2|$Y" "$(qp "$PA" "SELECT id, email FROM shared WHERE email = '$Y'")" \
    "A finds and detokenizes B's token"
# both proxies tokenize the same new values at the same time
pids=()
for k in 0 1 2 3 4 5; do
    qp "$PA" "INSERT INTO shared VALUES ($((10 + k)), '${CARDS[$k]}', '${EMAILS[$k]}')" >"$T/race.a.$k" 2>&1 &
    pids+=($!)
    qp "$PB" "INSERT INTO shared VALUES ($((20 + k)), '${CARDS[$k]}', '${EMAILS[$k]}')" >"$T/race.b.$k" 2>&1 &
    pids+=($!)
done
wait "${pids[@]}" # not the proxies, which are children of this shell too
for k in 0 1 2 3 4 5; do
    assert_eq "INSERT 0 1" "$(cat "$T/race.a.$k")" "insert of value $k via A"
    assert_eq "INSERT 0 1" "$(cat "$T/race.b.$k")" "insert of value $k via B"
    assert_eq "1|1" "$(qd "SELECT count(DISTINCT card), count(DISTINCT email) FROM shared WHERE id IN ($((10 + k)), $((20 + k)))")" \
        "concurrent tokenization of value $k by two proxies: one token"
done
vrows=$(timeout 30 psql "host=127.0.0.1 port=$PGH_PORT dbname=phantom_vault $base" -X -At \
    -c "SELECT count(*) FROM phantom_tokens")
assert_eq "14" "$vrows" "the shared vault holds one record per distinct value (7 cards, 7 emails)"
assert_eq "${CARDS[4]}" "$(qp "$PB" "SELECT card FROM shared WHERE id = 14")" "B reads A's concurrent row"
ok "two proxies share the PostgreSQL vault"
