#!/usr/bin/env bash
# tests/integration/test_reencrypt.sh — DEK rotation end to end with
# `phantom reencrypt` (issue "verify and reencrypt"):
#   * 20 000 customers and 2 000 payments written through the proxy (COPY),
#     with a plain reference copy of every value (tables ref_* in a second
#     PostgreSQL, pgh_start_plain); the protected values are leak canaries
#     (tests/lib/canary.sh, tests/clients/canary.py): the snapshot of the
#     encrypted cluster at exit must not find them;
#   * `keys rotate` of every domain in use (customers.email is shared with
#     payments.customer_email), proxy restarted, new rows written through it;
#   * a concurrent writer (psycopg through the proxy) keeps updating and
#     inserting rows — and their reference — during the whole re-encryption;
#   * a first reencrypt run (--batch 100) is killed with SIGKILL mid-way (its
#     progress record says so; the table then holds both key versions), the
#     second run resumes after the last committed batch and finishes;
#   * a version-1 value written after the run (as a proxy that still had the
#     old key would) is noted by the next run's verify pass and recorded:
#     `keys retire` is refused until `reencrypt --restart` moved it;
#   * afterwards `phantom verify` exits 0 and shows one key version (v2) per
#     column, `keys retire DOMAIN 1` succeeds for every rotated domain, and
#     after a proxy restart (no version-1 key anywhere) every row — including
#     the concurrent writes — reads back equal to the reference, deterministic
#     lookups, the email join and OPE ranges still work.
set -u
source "$(dirname "$0")/../lib/harness.sh"

P="$PHANTOM_BIN"
PY=/usr/bin/python3
"$PY" -c 'import psycopg' 2>/dev/null || fail "psycopg 3 is not importable by $PY (apt-get install python3-psycopg)"
pgh_start
pgh_start_plain
T="$PGH_TMP/reenc"
mkdir -p "$T"
source "$(dirname "$0")/../lib/keys_cli.sh" # run

phx_encrypt_config "$T" "encrypt:
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
    - note"
DOMAINS=(customers.email customers.phone customers.age payments.note)

phx_start --config "$CFG"
base="dbname=$PGH_DB user=phantom_scram password=scram_pw sslmode=disable connect_timeout=10"
proxy_dsn() { echo "host=127.0.0.1 port=$PHX_PORT $base"; }
DIRECT="host=127.0.0.1 port=$PGH_PORT $base"
REF="host=127.0.0.1 port=$PGH_PLAIN_PORT $base" # the plaintext reference copy
q() { # DSN ARGS...
    local c="$1"
    shift
    timeout 60 psql -X -w -q -v ON_ERROR_STOP=1 "$c" "$@"
}

# --- data through the proxy, reference copy directly -----------------------------------------
q "$(proxy_dsn)" -c "CREATE TABLE customers (id int PRIMARY KEY, email text, phone text, age int4)" \
    -c "CREATE TABLE payments (id bigint PRIMARY KEY, customer_email text, note text)" || fail "DDL"
q "$REF" -c "CREATE TABLE ref_customers (id int PRIMARY KEY, email text, phone text, age int4)" \
    -c "CREATE TABLE ref_payments (id bigint PRIMARY KEY, customer_email text, note text)" ||
    fail "DDL (reference)"
# customer i: the i-th canary email; a canary phone unless i % 13 == 0
canary_emails 20000 >"$T/emails.txt"
canary_texts phone 18462 >"$T/phones.txt"
canary_texts note 2000 >"$T/notes.txt"
awk 'FILENAME == ARGV[1] { email[FNR] = $0; next }
     { phone[FNR] = $0 }
     END { k = 0; for (i = 1; i <= 20000; i++) printf "%d,%s,%s,%d\n", i, email[i], (i % 13 ? phone[++k] : ""), (i * 7919) % 1000 - 500 }' \
    "$T/emails.txt" "$T/phones.txt" >"$T/customers.csv"
awk 'FILENAME == ARGV[1] { email[FNR] = $0; next }
     { printf "%d,%s,%s\n", FNR, email[(FNR * 17) % 20000 + 1], $0 }' "$T/emails.txt" "$T/notes.txt" >"$T/payments.csv"
[ "$(cut -d, -f3 "$T/customers.csv" | grep -c .)" = 18462 ] || fail "(set-up) customers.csv"
email_of() { sed -n "${1}p" "$T/emails.txt"; }
for t in customers payments; do
    q "$(proxy_dsn)" -c "\\copy $t from '$T/$t.csv' csv" || fail "COPY $t through the proxy"
    q "$REF" -c "\\copy ref_$t from '$T/$t.csv' csv" || fail "COPY ref_$t"
done
assert_eq "bytea|1" "$(q "$DIRECT" -At -c "select pg_typeof(phone), get_byte(phone, 0) from customers where id = 1")" \
    "customers stored as envelopes"
run before "$P" verify -c "$CFG" --dsn "$DIRECT"
assert_eq 0 "$RC" "verify before the rotation"
assert_contains "$(grep '^customers.phone ' <<<"$OUT" | tr -s ' ')" "20000 1538 0 v1=18462" "before: customers.phone under v1"

# --- rotate, restart the proxy, new writes ---------------------------------------------------
q "$DIRECT" -c "CREATE TABLE saved_v1 AS SELECT phone FROM customers WHERE id = 2" || fail "saving a v1 envelope"
run rotate "$P" keys rotate -c "$CFG" "${DOMAINS[@]}"
assert_eq 0 "$RC" "keys rotate ${DOMAINS[*]}"
phx_stop || fail "proxy stop"
phx_start --config "$CFG"
paste -d' ' <(canary_emails 50) <(canary_texts new 50) | {
    i=20000
    while read -r e p; do
        i=$((i + 1))
        echo "INSERT INTO customers VALUES ($i, '$e', '$p', $i);" >&3
        echo "INSERT INTO ref_customers VALUES ($i, '$e', '$p', $i);" >&4
    done
} 3>"$T/new.sql" 4>"$T/new_ref.sql"
q "$(proxy_dsn)" -f "$T/new.sql" || fail "new rows through the restarted proxy"
q "$REF" -f "$T/new_ref.sql" || fail "new rows in the reference"
ok "rotated, proxy restarted, 50 rows written under version 2"

# --- a concurrent writer through the proxy -----------------------------------------------------
cat >"$T/writer.py" <<'PY'
# Each transaction through the proxy, then the same in the reference.
import os, random, sys, time
import psycopg
dsn, ref_dsn, stop, out, lib = sys.argv[1:]
sys.path.insert(0, lib)
import canary
random.seed(7)
n, next_id = 0, 30001
with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(ref_dsn, autocommit=True) as ref:
    while not os.path.exists(stop):
        i = random.randint(1, 20000)
        upd = (canary.text("w"), n, i)
        ins = (next_id, canary.email(), canary.text("p"), next_id % 97)
        note = (canary.text("wn"), random.randint(1, 2000)) if n % 5 == 0 else None
        for c, prefix in ((conn, ""), (ref, "ref_")):
            with c.transaction():
                c.execute(f"UPDATE {prefix}customers SET phone = %s, age = %s WHERE id = %s", upd)
                c.execute(f"INSERT INTO {prefix}customers VALUES (%s, %s, %s, %s)", ins)
                if note:
                    c.execute(f"UPDATE {prefix}payments SET note = %s WHERE id = %s", note)
        n += 1
        next_id += 1
        time.sleep(0.01)
with open(out, "w") as f:
    f.write(str(n))
PY
"$PY" "$T/writer.py" "$(proxy_dsn)" "$REF" "$T/stop" "$T/writer.count" "$HARNESS_ROOT/tests/clients" >"$T/writer.log" 2>&1 &
WRITER=$!
pgh_defer "touch '$T/stop'; kill $WRITER 2>/dev/null; wait $WRITER 2>/dev/null"
sleep 0.5
kill -0 "$WRITER" 2>/dev/null || { cat "$T/writer.log" >&2; fail "the writer did not start"; }

# --- first run, killed mid-way ---------------------------------------------------------------
"$P" reencrypt -c "$CFG" --dsn "$DIRECT" --batch 100 >"$T/run1.out" 2>"$T/run1.err" &
R1=$!
done_rows=0
for _ in $(seq 1 600); do
    done_rows=$(q "$DIRECT" -At -c "select rows_done from phantom.progress where job = 'reencrypt' and tbl = 'public.customers'" 2>/dev/null)
    [ "${done_rows:-0}" -ge 3000 ] && break
    kill -0 "$R1" 2>/dev/null || break
    sleep 0.05
done
kill -KILL "$R1" 2>/dev/null
wait "$R1" 2>/dev/null
rc=$?
assert_eq 137 "$rc" "the first reencrypt run was killed (SIGKILL) while running"
st=$(q "$DIRECT" -At -c "select phase, rows_done from phantom.progress where job = 'reencrypt' and tbl = 'public.customers'")
case "$st" in
    "scan keys="*) ok "progress record after the kill: $st" ;;
    *) fail "progress record after the kill: [$st]" ;;
esac
killed_at=${st##*|}
[ "$killed_at" -ge 3000 ] && [ "$killed_at" -lt 20000 ] || fail "killed at $killed_at rows: not mid-way"
nkeys=$(q "$DIRECT" -At -c "select count(distinct substr(phone, 3, 4)) from customers")
assert_eq 2 "$nkeys" "mid-way: customers.phone holds values under both key versions"
kill -0 "$WRITER" 2>/dev/null || { cat "$T/writer.log" >&2; fail "the writer died"; }

# --- resume, with one row held by a writer's open transaction ---------------------------------
# A row of the first batch after the resume point, still under version 1:
# the run reads the old value, its compare-and-set waits for the writer's
# lock and then finds the row changed, so it leaves the writer's value alone.
held=$(q "$DIRECT" -At -c "select id from customers where id > $killed_at and phone is not null
    and substr(phone, 3, 4) <> (select substr(phone, 3, 4) from customers where id = 20001) order by id limit 1")
[ -n "$held" ] && [ "$held" -le $((killed_at + 100)) ] || fail "no version-1 row just after the resume point ($held)"
HELD=$(canary_text held)
q "$REF" -c "UPDATE ref_customers SET phone = '$HELD' WHERE id = $held" || fail "reference of the held row"
q "$(proxy_dsn)" -c "BEGIN" -c "UPDATE customers SET phone = '$HELD' WHERE id = $held" \
    -c "SELECT pg_sleep(3)" -c "COMMIT" >"$T/holder.log" 2>&1 &
HOLDER=$!
for _ in $(seq 1 100); do # until the holder's UPDATE is done (it sleeps)
    n=$(q "$DIRECT" -At -c "select count(*) from pg_stat_activity where query = 'SELECT pg_sleep(3)' and state = 'active'")
    [ "${n:-0}" -ge 1 ] && break
    sleep 0.05
done
run run2 "$P" reencrypt -c "$CFG" --dsn "$DIRECT" --batch 500
wait "$HOLDER" || { cat "$T/holder.log" >&2; fail "the holding transaction failed"; }
sed 's/^/# /' <<<"$OUT"
assert_eq 0 "$RC" "the second run finishes (exit 0)"
conflicts=$(sed -n 's/^customers.phone: .* \([0-9]*\) changed concurrently.*/\1/p' <<<"$OUT")
[ "${conflicts:-0}" -ge 1 ] || fail "the compare-and-set did not report the held row (${conflicts:-?})"
ok "compare-and-set: $conflicts value(s) changed concurrently were left as written"
assert_contains "$OUT" "public.customers: resumed after" "the second run resumes"
resumed=$(sed -n 's/^public.customers: resumed after \([0-9]*\) rows.*/\1/p' <<<"$OUT")
[ "${resumed:-0}" -ge "$killed_at" ] || fail "resumed at ${resumed:-?}, killed at $killed_at"
ok "resumed at row $resumed (the last committed batch; killed at $killed_at)"
moved=$(sed -n 's/^customers.phone: \([0-9]*\) re-encrypted.*/\1/p' <<<"$OUT")
[ "${moved:-0}" -gt 0 ] && [ "${moved:-0}" -le $((18462 - killed_at + 1000)) ] ||
    fail "customers.phone: ${moved:-?} re-encrypted by the second run"
ok "the second run re-encrypted only what was left ($moved phone values)"
assert_contains "$OUT" "usage recorded: customers.email v1=0 v2=" "usage recorded after the run"
kill -0 "$WRITER" 2>/dev/null || { cat "$T/writer.log" >&2; fail "the writer died"; }

# --- stop the writer, verify, retire -----------------------------------------------------------
touch "$T/stop"
wait "$WRITER" || { cat "$T/writer.log" >&2; fail "the writer failed"; }
writes=$(cat "$T/writer.count")
[ "${writes:-0}" -ge 20 ] || fail "the writer committed only ${writes:-0} transactions"
ok "the concurrent writer committed $writes transactions during the re-encryption"

# --- a version-1 value written after the run (a proxy that still had the old key) --------------
q "$DIRECT" -c "UPDATE customers SET phone = (SELECT phone FROM saved_v1) WHERE id = 5" || fail "writing a v1 envelope"
q "$REF" -c "UPDATE ref_customers SET phone = '$(awk -F, 'NR == 2 { print $3 }' "$T/customers.csv")' WHERE id = 5" ||
    fail "the reference of the v1 envelope (customer 2's phone)"
run late "$P" reencrypt -c "$CFG" --dsn "$DIRECT"
assert_eq 0 "$RC" "a run after completion exits 0"
assert_contains "$OUT" "public.customers: already re-encrypted" "a finished job is not repeated"
assert_contains "$OUT" "note: customers.phone still has 1 value(s) under key id" "the verify pass notes the late v1 value"
assert_contains "$OUT" "usage recorded: customers.phone v1=1 v2=" "and records it"
run refused "$P" keys retire -c "$CFG" customers.phone 1
assert_eq 1 "$RC" "keys retire customers.phone 1 is refused while a value uses it"
assert_contains "$ERR" "still encrypts 1 row(s)" "retire says why"
run late2 "$P" reencrypt -c "$CFG" --dsn "$DIRECT" --restart --table customers
assert_eq 0 "$RC" "reencrypt --restart --table customers"
assert_contains "$OUT" "customers.phone: 1 re-encrypted, " "--restart scans again and moves the late value"
assert_contains "$OUT" "usage recorded: customers.phone v1=0 v2=" "usage recorded: v1 unused again"
run verify "$P" verify -c "$CFG" --dsn "$DIRECT" --deep
assert_eq 0 "$RC" "verify --deep exits 0 after the re-encryption"
for c in customers.email customers.phone customers.age payments.customer_email payments.note; do
    line=$(grep "^$c " <<<"$OUT" | tr -s ' ')
    vers=$(grep -o ' v[0-9]*=' <<<"$line" | tr -d ' =' | tr '\n' ' ')
    assert_eq "v2 " "$vers" "$c: one key version (v2) in use [$line]"
done
for d in "${DOMAINS[@]}"; do
    run retire "$P" keys retire -c "$CFG" "$d" 1
    assert_eq 0 "$RC" "keys retire $d 1 succeeds ($ERR)"
done

# --- everything reads back, without any version-1 key --------------------------------------------
phx_stop || fail "proxy stop"
phx_start --config "$CFG"
cmp_tables() { # table cols
    local a b
    a=$(q "$(proxy_dsn)" -At -c "select $2 from $1 order by id") || fail "reading $1 through the proxy"
    b=$(q "$REF" -At -c "select $2 from ref_$1 order by id")
    [ -n "$b" ] || fail "empty reference"
    if [ "$a" = "$b" ]; then
        ok "$1: all $(wc -l <<<"$a") rows read back through the proxy equal the reference"
    else
        fail "$1 differs from the reference: $(diff <(echo "$a") <(echo "$b") | head -6)"
    fi
}
cmp_tables customers "id, email, phone, age"
assert_eq "$HELD" "$(q "$(proxy_dsn)" -At -c "select phone from customers where id = $held")" \
    "the value written during the compare-and-set wait is kept"
cmp_tables payments "id, customer_email, note"
assert_eq "123" "$(q "$(proxy_dsn)" -At -c "select id from customers where email = '$(email_of 123)'")" \
    "deterministic lookup after re-encryption"
assert_eq "$(q "$REF" -At -c "select count(*) from ref_payments p join ref_customers c on c.email = p.customer_email")" \
    "$(q "$(proxy_dsn)" -At -c "select count(*) from payments p join customers c on c.email = p.customer_email")" \
    "join on the shared key domain after re-encryption"
assert_eq "$(q "$REF" -At -c "select string_agg(id::text, ',' order by age, id) from ref_customers where age between -10 and 10")" \
    "$(q "$(proxy_dsn)" -At -c "select string_agg(id::text, ',' order by age, id) from customers where age between -10 and 10")" \
    "ope range and order after re-encryption"


# --- after retire: nothing left to move, nothing invalid ---------------------------------------------
run again "$P" reencrypt -c "$CFG" --dsn "$DIRECT" --restart
assert_eq 0 "$RC" "reencrypt --restart after retire"
assert_contains "$OUT" "customers.phone: 0 re-encrypted, " "nothing left under a retired version"
