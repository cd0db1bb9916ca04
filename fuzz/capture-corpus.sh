#!/usr/bin/env bash
# fuzz/capture-corpus.sh — regenerates the fuzz seed corpora captured from
# real traffic (files named cap-* under fuzz/corpus/<target>/). Not run by
# `make test`; run it by hand after a protocol-relevant change:
#
#   make all fuzzers && bash fuzz/capture-corpus.sh
#
# It starts a throwaway PostgreSQL 15 (tests/lib/harness.sh) and records, with
# the TCP tee tests/tools/pgcapture.py, sessions of psql (DDL, \d, INSERT,
# SELECT, UPDATE, an error, a refusal, NOTICE, LISTEN/NOTIFY, COPY FROM STDIN
# and TO STDOUT in text, CSV and binary), psycopg 3 (tests/tools/
# capture_psycopg.py: text and binary parameters and results, executemany,
# prepared statements, a pipeline, COPY) and pgbench (-i, then transactions
# with -M simple, extended and prepared), authenticating with SCRAM, MD5,
# cleartext passwords and trust:
#   direct   client -> tee -> PostgreSQL (plain tables, database "plain")
#   proxy    client -> tee -> phantom (encrypting, policy of fuzz/fuzz_policy.h
#            and its fixed keys, tests/tools/fixed_keyring.py) -> tee -> PostgreSQL:
#            the client leg holds plaintext, the upstream leg envelopes
# pgcapture.py converts each connection into seeds (fuzz_protocol: client
# stream; fuzz_server: server stream; fuzz_conversation: both legs merged;
# fuzz_engine: raw records; fuzz_rewrite: SQL texts; fuzz_copy: COPY data),
# and libFuzzer's -merge=1 keeps the ones that add coverage to the existing
# corpus (all of them for the conversation and server targets, which start
# from these captures). Needs psql, pgbench, /usr/bin/python3 with psycopg
# and python3-cryptography.
#
# CAPTURE_KEEP=DIR keeps the raw captures (conn-k.c2s/.s2c/.seq/.txt) there.
set -u
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT" || exit 1
source tests/lib/harness.sh
PY=/usr/bin/python3
CAPTOOL="$ROOT/tests/tools/pgcapture.py"
for b in bin/phantom build/fuzzers/fuzz_conversation; do
    [ -x "$b" ] || fail "$b is missing: run make all fuzzers first"
done
"$PY" -c 'import psycopg, cryptography' 2>/dev/null ||
    fail "$PY needs psycopg and cryptography (python3-psycopg python3-cryptography)"

pgh_start
CAP="$PGH_TMP/capture"
mkdir -p "$CAP"
pgh_admin_psql -d postgres -q -c "CREATE DATABASE plain OWNER phantom_scram" >/dev/null ||
    fail "createdb plain"
"$PY" tests/tools/fixed_keyring.py --policy fuzz/fuzz_policy.h --dir "$CAP/keys" ||
    fail "fixed keyring"

TEES=()
# tee NAME LISTEN_PORT TARGET_PORT: starts a capture into $CAP/NAME.
tee_start() {
    rm -f "$CAP/$1.ready"
    "$PY" "$CAPTOOL" tee --listen "127.0.0.1:$2" --target "127.0.0.1:$3" --out "$CAP/$1" \
        --ready-file "$CAP/$1.ready" &
    TEES+=($!)
    pgh_defer "kill $! 2>/dev/null || true"
    for _ in $(seq 1 100); do
        [ -e "$CAP/$1.ready" ] && return 0
        sleep 0.05
    done
    fail "tee $1 did not start"
}
tees_stop() {
    sleep 0.5 # let the last connections close
    for p in "${TEES[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${TEES[@]}"; do wait "$p" 2>/dev/null; done
    TEES=()
}

SCHEMA="
CREATE TABLE customers (id uuid PRIMARY KEY, email text NOT NULL UNIQUE, full_name text, phone text,
    tax_id text, address jsonb, plan_tier text NOT NULL, created_at timestamptz NOT NULL,
    country_code text NOT NULL);
CREATE TABLE payments (id bigint PRIMARY KEY, customer_email text NOT NULL, card_number text,
    amount numeric(12,2), paid_on date);
CREATE TABLE accounts (id int PRIMARY KEY, owner_email text, balance numeric(12,2), credit_limit bigint);
\\d customers
\\dt
"
QUERIES="
INSERT INTO customers VALUES
  ('00000000-0000-0000-0000-000000000001', 'alice.SECRET@example.com', 'Alice SECRET Smith', '+1-555-0101',
   'TAX-SECRET-1', '{\"city\": \"SECRET town\", \"zip\": \"12345\"}', 'pro', '2024-01-05 10:00:00+00', 'US'),
  ('00000000-0000-0000-0000-000000000002', 'bob.SECRET@example.com', 'Bob SECRET Jones', NULL,
   NULL, NULL, 'basic', '2024-02-06 11:30:00+00', 'FR');
INSERT INTO payments VALUES (1, 'alice.SECRET@example.com', '4111-SECRET-1111', 12.50, '2024-01-02'),
  (2, 'bob.SECRET@example.com', '4222-SECRET-2222', 99.99, '2024-02-03');
INSERT INTO accounts VALUES (1, 'alice.SECRET@example.com', 1000.25, 5000);
SELECT id, full_name, phone FROM customers WHERE email = 'alice.SECRET@example.com';
SELECT * FROM customers ORDER BY created_at;
SELECT c.full_name, p.amount, p.paid_on FROM payments p JOIN customers c ON c.email = p.customer_email
  WHERE p.paid_on BETWEEN '2024-01-01' AND '2024-12-31' ORDER BY p.paid_on;
SELECT owner_email, balance FROM accounts WHERE credit_limit > 1000;
UPDATE customers SET phone = '+1-555-SECRET' WHERE email = 'bob.SECRET@example.com' RETURNING id;
SELECT email FROM customers WHERE full_name LIKE 'Alice SECRET%';
SELECT * FROM no_such_table;
INSERT INTO payments VALUES (1, 'alice.SECRET@example.com', '4111-SECRET-0000', 1, '2024-01-01');
DROP TABLE IF EXISTS no_such_table;
SELECT 1 AS one \\; SELECT email FROM customers WHERE email IN ('alice.SECRET@example.com', 'x.SECRET@example.com');
LISTEN ch;
NOTIFY ch, 'hello';
DELETE FROM payments WHERE customer_email = 'bob.SECRET@example.com';
"
COPIES="
COPY payments (id, customer_email, card_number, paid_on) FROM STDIN;
10	alice.SECRET@example.com	4111-SECRET-0010	2024-05-01
11	bob.SECRET@example.com	\\N	2024-05-02
12	alice.SECRET@example.com	4111-SECRET-0012	\\N
\\.
COPY payments (id, customer_email, card_number, paid_on) FROM STDIN (FORMAT csv);
20,alice.SECRET@example.com,\"4111-SECRET,0020\",2024-06-01
21,bob.SECRET@example.com,,2024-06-02
\\.
COPY payments (id, customer_email, card_number, paid_on) TO STDOUT;
COPY payments (id, customer_email, card_number, paid_on) TO STDOUT (FORMAT csv, HEADER);
\\copy payments (id, customer_email, card_number, paid_on) to '$CAP/payments.bin' (format binary)
DELETE FROM payments;
\\copy payments (id, customer_email, card_number, paid_on) from '$CAP/payments.bin' (format binary)
\\copy customers (id, email, plan_tier, created_at) to '$CAP/customers.txt'
"

# session GROUP DSN: the psql, psycopg and pgbench sessions against DSN's port.
sessions() {
    local port="$1" db="$2"
    local base="host=127.0.0.1 port=$port dbname=$db sslmode=disable connect_timeout=10"
    export PGPASSWORD
    PGPASSWORD=scram_pw timeout 60 psql -X -q -w "$base user=phantom_scram" -v ON_ERROR_STOP=1 -f - <<<"$SCHEMA" >/dev/null 2>&1 ||
        fail "psql schema session on port $port"
    PGPASSWORD=scram_pw timeout 60 psql -X -q -w "$base user=phantom_scram" -f - <<<"$QUERIES" >/dev/null 2>&1
    PGPASSWORD=clear_pw timeout 60 psql -X -q -w "$base user=phantom_clear" -f - <<<"$COPIES" >/dev/null 2>&1
    PGPASSWORD=md5_pw timeout 120 "$PY" tests/tools/capture_psycopg.py "$base user=phantom_md5 password=md5_pw" ||
        fail "psycopg session on port $port"
    PGPASSWORD= timeout 120 pgbench -q -i -s 1 -I dtGvp -h 127.0.0.1 -p "$port" -U phantom_trust "$db" \
        >/dev/null 2>&1 || fail "pgbench -i on port $port"
    for mode in simple extended prepared; do
        PGPASSWORD= timeout 120 pgbench -n -t 4 -c 1 -M "$mode" -h 127.0.0.1 -p "$port" \
            -U phantom_trust "$db" >/dev/null 2>&1 || fail "pgbench -M $mode on port $port"
    done
}

# direct: client -> tee -> PostgreSQL
T1="$(pgh_free_port)" || fail "no free port"
tee_start direct "$T1" "$PGH_PORT"
sessions "$T1" plain
tees_stop

# proxy: client -> tee -> phantom -> tee -> PostgreSQL
T2="$(pgh_free_port)" || fail "no free port"
tee_start upstream "$T2" "$PGH_PORT"
phx_start --config "$CAP/keys/phantom.yaml" --target "127.0.0.1:$T2" --sslmode disable --workers 1
T3="$(pgh_free_port)" || fail "no free port"
tee_start client "$T3" "$PHX_PORT"
sessions "$T3" "$PGH_DB"
tees_stop
phx_stop || fail "the proxy failed"

OUT="$CAP/corpus"
"$PY" "$CAPTOOL" corpus --client "$CAP/direct" --out "$OUT" --name cap-direct --no-conversation ||
    fail "converting the direct captures"
"$PY" "$CAPTOOL" corpus --client "$CAP/client" --upstream "$CAP/upstream" --out "$OUT" \
    --name cap-proxy || fail "converting the proxy captures"
if [ -n "${CAPTURE_KEEP:-}" ]; then
    mkdir -p "$CAPTURE_KEEP" && cp -r "$CAP/direct" "$CAP/client" "$CAP/upstream" "$CAPTURE_KEEP/"
fi

# Replace the previous captures, keeping what adds coverage.
for dir in "$OUT"/*; do
    t="$(basename "$dir")"
    dest="fuzz/corpus/$t"
    mkdir -p "$dest"
    rm -f "$dest"/cap-*
    case "$t" in
        fuzz_conversation | fuzz_server) keep_all=1 ;;
        *) keep_all=0 ;;
    esac
    if [ "$keep_all" -eq 1 ]; then
        cp "$dir"/* "$dest/"
    else
        m="$CAP/merge-$t"
        rm -rf "$m" && mkdir -p "$m" && cp -r "$dest/." "$m/"
        timeout 600 "build/fuzzers/$t" -merge=1 -rss_limit_mb=2048 "$m" "$dir" >"$m.log" 2>&1 ||
            { tail -20 "$m.log"; fail "merge for $t"; }
        for f in "$dir"/*; do # merge names its files by SHA-1: keep ours by name
            [ -e "$m/$(sha1sum "$f" | cut -c1-40)" ] && cp "$f" "$dest/"
        done
    fi
    echo "$t: $(find "$dest" -name 'cap-*' | wc -l) captured seeds ($(du -ch "$dest"/cap-* 2>/dev/null | tail -1 | cut -f1))"
done
ok "captured corpora written under fuzz/corpus/"
