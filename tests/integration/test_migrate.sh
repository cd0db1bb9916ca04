#!/usr/bin/env bash
# tests/integration/test_migrate.sh — `phantom migrate` on a live table:
#   a MIGRATE_ROWS-row customers table (default 200000) with a unique email
#   index is encrypted in place while a writer inserts, updates and deletes
#   rows through the proxy (pass-through before the swap, encrypting after);
#   the first migration run is killed with SIGKILL mid-way and resumed;
#   afterwards every row read through the encrypting proxy equals a plaintext
#   reference the writer kept in step, the table holds only envelopes (bytea,
#   envelope CHECK constraint, no plaintext in a direct pg_dump), lookups and
#   the unique index work; --dry-run changes nothing; a table without a primary
#   key and a unique index on a randomized column are refused before anything
#   changes; `phantom verify --deep` passes after the migration and fails on
#   the plaintext table; a foreign key between two deterministic columns of one
#   key domain (payments.customer_email -> customers.email) is dropped at the
#   swap and added back once both sides are encrypted (and holds on
#   ciphertext); `--decrypt` restores the original types and values
#   exactly.
#   The plaintext reference lives in a second PostgreSQL (pgh_start_plain).
#   What the writer stores through the encrypting proxy comes from the leak
#   canary (tests/clients/canary.py); the snapshot is taken before
#   --decrypt, which puts every value back in the clear on purpose.
set -u
. "$(dirname "$0")/../lib/harness.sh"

P="$PHANTOM_BIN"
PY=/usr/bin/python3
ROWS="${MIGRATE_ROWS:-200000}"
T="$PGH_TMP/migrate"
mkdir -p "$T"
pgh_start
pgh_start_plain
DSN="host=127.0.0.1 port=$PGH_PORT user=phantom_trust dbname=$PGH_DB"
REF_DSN="host=127.0.0.1 port=$PGH_PLAIN_PORT user=phantom_trust dbname=$PGH_DB"
sql() { psql -X -w -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGH_PORT" -U phantom_trust -d "$PGH_DB" "$@"; }
sqlref() { psql -X -w -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGH_PLAIN_PORT" -U phantom_trust -d "$PGH_DB" "$@"; }

phx_encrypt_config "$T" "encrypt:
  customers:
    - email: deterministic
    - full_name
    - phone
    - tax_id
    - { column: address, mode: randomized, type: jsonb }
  payments:
    - { column: customer_email, mode: deterministic, key: customers.email }"

# ---- the table, a plaintext reference copy ---------------------------------------
customers_rows() { # TABLE
    cat <<SQL
INSERT INTO $1
SELECT i, 'user' || i || '@mail.example', 'Name ' || i || ' Müller', '+49 30 ' || (1000000 + i),
       'DE' || (9000000000 + i),
       jsonb_build_object('city', 'Berlin', 'street', i || ' Quarry Lane', 'zip', 10000 + i % 89999),
       (ARRAY['starter', 'business', 'enterprise'])[1 + i % 3],
       timestamptz '2024-01-01 00:00:00+00' + i * interval '7 minutes',
       (ARRAY['DE', 'FR', 'NL'])[1 + i % 3]
FROM generate_series(1, $ROWS) AS i;
UPDATE $1 SET phone = NULL WHERE id % 97 = 0;
SQL
}
payments_rows() { # TABLE
    echo "INSERT INTO $1 SELECT i / 10, 'user' || i || '@mail.example', i % 1000 + 0.5 FROM generate_series(10, $ROWS, 10) AS i;"
}
{ # the reference: the same rows in the second cluster (meanwhile)
    echo "CREATE TABLE customers_ref (id bigint PRIMARY KEY, email text NOT NULL, full_name text, phone text,
        tax_id text, address jsonb, plan_tier text NOT NULL, created_at timestamptz NOT NULL, country_code text NOT NULL);"
    customers_rows customers_ref
    echo "CREATE TABLE payments_ref (id bigint, customer_email text NOT NULL, amount numeric(10,2) NOT NULL);"
    payments_rows payments_ref
} | sqlref >"$T/ref.log" 2>&1 &
REF_LOAD=$!
sql <<SQL || fail "schema"
CREATE TABLE customers (
    id bigint PRIMARY KEY,
    email text NOT NULL UNIQUE,
    full_name text,
    phone text,
    tax_id text,
    address jsonb,
    plan_tier text NOT NULL,
    created_at timestamptz NOT NULL,
    country_code text NOT NULL
);
CREATE INDEX customers_plan ON customers (plan_tier);
$(customers_rows customers)
CREATE TABLE payments (id bigint PRIMARY KEY, customer_email text NOT NULL REFERENCES customers (email),
                       amount numeric(10,2) NOT NULL);
$(payments_rows payments)
ANALYZE customers;
SQL
wait "$REF_LOAD" || { cat "$T/ref.log" >&2; fail "the reference copy"; }
COLS="id, email, full_name, phone, tax_id, address, plan_tier, created_at, country_code"
ok "customers: $ROWS rows and a reference copy"

# ---- dry run: a plan, nothing changed ---------------------------------------------------
out=$("$P" migrate -c "$CFG" --dsn "$DSN" --dry-run 2>&1)
assert_eq 0 "$?" "dry run exits 0"
assert_contains "$out" "public.customers: encrypt" "dry run names the table"
assert_contains "$out" "customers.email" "dry run lists the columns"
assert_contains "$out" "deterministic" "dry run shows modes"
assert_contains "$out" "index customers_email_key rebuilt as: CREATE UNIQUE INDEX" "dry run: unique index rebuilt"
assert_contains "$out" "foreign key payments_customer_email_fkey on payments dropped at the swap" "dry run: the foreign key is kept"
assert_contains "$out" "estimated size growth" "dry run estimates the growth"
assert_eq "text" "$(sql -c "select format_type(atttypid, atttypmod) from pg_attribute where attrelid = 'customers'::regclass and attname = 'email'")" "dry run changed nothing"

# ---- refusals ------------------------------------------------------------------------------
sql -c "CREATE TABLE nopk (x text); CREATE TABLE leads (id int PRIMARY KEY, contact text); CREATE UNIQUE INDEX leads_contact ON leads (contact)" ||
    fail "refusal tables"
cat >"$T/refuse.yaml" <<YAML
$(sed -n '1,4p' "$CFG")
encrypt:
  nopk: [x]
  leads: [contact]
YAML
"$P" keys create -c "$T/refuse.yaml" >/dev/null || fail "keys for the refusal config"
out=$("$P" migrate -c "$T/refuse.yaml" --dsn "$DSN" --table nopk 2>&1)
assert_eq 2 "$?" "a table without a primary key is refused"
assert_contains "$out" "has no primary key" "the refusal says why"
out=$("$P" migrate -c "$T/refuse.yaml" --dsn "$DSN" --table leads 2>&1)
assert_eq 1 "$?" "a unique index on a randomized column is refused"
assert_contains "$out" "unique index leads_contact covers leads.contact, which is randomized" "the refusal names index, column and mode"
assert_eq "0" "$(sql -c "select count(*) from pg_attribute where attrelid = 'leads'::regclass and attname like 'phantom%' and not attisdropped")" "nothing changed in the refused table"

# ---- the proxies and the concurrent writer -------------------------------------------------
phx_start
PLAIN_PORT=$PHX_PORT
phx_start --config "$CFG"
ENC_PORT=$PHX_PORT
cat >"$T/writer.py" <<'PY'
# Writes through the proxy while the migration runs and mirrors every
# successful write into customers_ref (the reference cluster). Before the
# swap it writes through the pass-through proxy; when the columns have
# become bytea (the write fails) it switches to the encrypting proxy and
# retries. The values of the writes generated after the switch come from
# the leak canary (before it they are stored in the clear, on purpose).
import os, random, sys, time
import psycopg
from psycopg.types.json import Jsonb
plain, enc, direct, stop, rows, lib = sys.argv[1:7]
sys.path.insert(0, lib)
import canary
rows = int(rows)
rng = random.Random(11)
conn = psycopg.connect(plain, autocommit=True)
ref = psycopg.connect(direct, autocommit=True)
switched = False
n_ok = 0
next_id = rows + 1
def c(v, tag):  # a canary once the writes go through the encrypting proxy
    return (canary.email() if tag == "email" else canary.text(tag)) if switched else v
def op():
    global next_id
    k = rng.random()
    if k < 0.4:
        i = next_id; next_id += 1
        return ("INSERT INTO customers (id, email, full_name, phone, tax_id, address, plan_tier, created_at, country_code) "
                "VALUES (%s, %s, %s, %s, %s, %s, 'starter', '2025-05-05 10:00:00+00', 'FR')",
                [i, c(f"new{i}@mail.example", "email"), c(f"New Person {i}", "name"), c(f"+33 1 {i}", "phone"),
                 c(f"FR{i}", "tax"), Jsonb({"city": "Lyon", "n": i, "street": c("Rue 1", "street")})])
    i = rng.randint(1, rows)
    if k < 0.8:
        return ("UPDATE customers SET phone = %s, full_name = %s WHERE id = %s",
                [c(f"+49 40 {rng.randint(100000, 999999)}", "phone"), c(f"Renamed {i} {rng.randint(1, 99)}", "name"), i])
    if k < 0.9:
        i += i % 10 == 0  # customers with a payment keep their email (foreign key)
        return ("UPDATE customers SET address = %s, email = %s WHERE id = %s",
                [Jsonb({"city": "Hamburg", "v": rng.randint(1, 1000), "street": c("Ring 2", "street")}),
                 c(f"moved{i}.{rng.randint(1, 10**9)}@mail.example", "email"), i])
    i += i % 10 == 0
    return ("DELETE FROM customers WHERE id = %s", [i])
deadline = time.time() + 600
while time.time() < deadline:
    if os.path.exists(stop) and switched:
        break
    q, p = op()
    try:
        conn.execute(q, p)
    except psycopg.Error as e:
        if switched:
            print("writer: error through the encrypting proxy:", e.sqlstate, file=sys.stderr)
            sys.exit(1)
        conn.close()
        conn = psycopg.connect(enc, autocommit=True)
        switched = True
        conn.execute(q, p)
    ref.execute(q.replace("customers ", "customers_ref ", 1).replace("customers (", "customers_ref (", 1), p)
    n_ok += 1
    time.sleep(0.002)
print(f"writer: {n_ok} writes, switched={switched}")
PY
PROXY_PLAIN="host=127.0.0.1 port=$PLAIN_PORT user=phantom_trust dbname=$PGH_DB sslmode=disable"
PROXY_ENC="host=127.0.0.1 port=$ENC_PORT user=phantom_trust dbname=$PGH_DB sslmode=disable"
"$PY" "$T/writer.py" "$PROXY_PLAIN" "$PROXY_ENC" "$REF_DSN" "$T/stop" "$ROWS" "$HARNESS_ROOT/tests/clients" \
    >"$T/writer.log" 2>&1 &
WRITER=$!
pgh_defer "kill $WRITER 2>/dev/null || true"

# ---- migrate: killed mid-way, resumed ----------------------------------------------------------
# The migration's own statements (every row's envelopes as parameters; no
# canary among them: the writer stores canaries only after the swap) are
# not statement-logged: tens of MB of server log for nothing. Failed ones
# still are (log_min_error_statement).
export PGOPTIONS="-c log_statement=none"
"$P" migrate -c "$CFG" --dsn "$DSN" --batch 500 >"$T/migrate1.log" 2>&1 &
MIG=$!
for _ in $(seq 1 600); do
    done_rows=$(sql -c "select coalesce((select rows_done from phantom.progress where job = 'migrate' and tbl = 'public.customers'), 0)" 2>/dev/null || echo 0)
    [ "${done_rows:-0}" -ge $((ROWS / 3)) ] && break
    kill -0 "$MIG" 2>/dev/null || break
    sleep 0.1
done
kill -KILL "$MIG" 2>/dev/null
wait "$MIG" 2>/dev/null
done_rows=$(sql -c "select rows_done from phantom.progress where job = 'migrate' and tbl = 'public.customers'")
[ "${done_rows:-0}" -gt 0 ] && [ "$done_rows" -lt "$ROWS" ] ||
    { cat "$T/migrate1.log" >&2; fail "the first run was not killed mid-way (rows done: $done_rows)"; }
ok "first run killed with SIGKILL after $done_rows rows"
"$P" migrate -c "$CFG" --dsn "$DSN" --batch 500 >"$T/migrate2.log" 2>&1 ||
    { cat "$T/migrate2.log" >&2; fail "resumed migration failed"; }
unset PGOPTIONS
out=$(cat "$T/migrate2.log")
assert_contains "$out" "resuming after" "the second run resumes"
assert_contains "$out" "ACCESS EXCLUSIVE lock held" "the lock time is printed"
echo "$out" | grep -E "lock held|caught up|rows in" | sed 's/^/    /'
touch "$T/stop"
wait "$WRITER" || { cat "$T/writer.log" >&2; fail "the concurrent writer failed"; }
assert_contains "$(cat "$T/writer.log")" "switched=True" "the writer moved to the encrypting proxy after the swap"
sed 's/^/    /' "$T/writer.log"

# ---- what the database holds ---------------------------------------------------------------------
types=$(sql -c "select string_agg(attname || ':' || format_type(atttypid, atttypmod), ' ' order by attname) from pg_attribute where attrelid = 'customers'::regclass and attnum > 0 and not attisdropped and attname in ('email','full_name','phone','tax_id','address')")
assert_eq "address:bytea email:bytea full_name:bytea phone:bytea tax_id:bytea" "$types" "protected columns are bytea"
assert_eq "0" "$(sql -c "select count(*) from customers where get_byte(email, 0) <> 1 or octet_length(email) < 23")" "every email is an envelope"
assert_eq "t" "$(sql -c "select attnotnull from pg_attribute where attrelid = 'customers'::regclass and attname = 'email'")" "NOT NULL kept"
assert_eq "1" "$(sql -c "select count(*) from pg_index i join pg_class c on c.oid = i.indexrelid where i.indrelid = 'customers'::regclass and c.relname = 'customers_email_key' and i.indisunique and i.indisvalid")" "the unique email index is rebuilt under its name"
assert_eq "0" "$(sql -c "select count(*) from pg_attribute where attrelid = 'customers'::regclass and attname like 'phantom%' and not attisdropped")" "no shadow column left"
assert_eq "0" "$(sql -c "select count(*) from pg_trigger where tgrelid = 'customers'::regclass and not tgisinternal")" "no trigger left"
if sql -c "insert into customers (id, email, plan_tier, created_at, country_code) values (-1, 'plain@leak.example', 'x', now(), 'DE')" 2>/dev/null; then
    fail "a plaintext value was accepted into a protected column"
fi
ok "the envelope CHECK refuses a plaintext write that bypasses the proxy"
pg_dump -h 127.0.0.1 -p "$PGH_PORT" -U phantom_trust -t customers "$PGH_DB" >"$T/dump.sql" || fail "pg_dump"
for v in 'user1@mail.example' 'user77@mail.example' 'Name 5 Müller' 'Quarry Lane' "DE9000000042"; do
    grep -qF "$v" "$T/dump.sql" && fail "plaintext [$v] found in a direct pg_dump of customers"
done
ok "a direct pg_dump of customers holds no sampled plaintext"

out=$("$P" verify -c "$CFG" --dsn "$DSN" --deep 2>&1)
rc=$?
[ "$rc" = 0 ] || { echo "$out" >&2; fail "phantom verify --deep after the migration (exit $rc)"; }
assert_contains "$out" "customers.email" "verify lists the migrated columns"
ok "phantom verify --deep passes on the migrated table"
out=$("$P" migrate -c "$CFG" --dsn "$DSN" 2>&1)
assert_eq 0 "$?" "a second migrate run exits 0"
assert_contains "$out" "public.customers: nothing to encrypt" "a second run changes nothing"

# ---- everything reads back through the proxy ------------------------------------------------------
penc() { PGPASSWORD= psql -X -w -q -At -h 127.0.0.1 -p "$ENC_PORT" -U phantom_trust -d "$PGH_DB" "$@"; }
penc -c "select $COLS from customers order by id" >"$T/via_proxy.txt" || fail "read through the proxy"
sqlref -c "select $COLS from customers_ref order by id" >"$T/reference.txt" || fail "read the reference"
n=$(wc -l <"$T/reference.txt")
cmp -s "$T/via_proxy.txt" "$T/reference.txt" ||
    { diff "$T/reference.txt" "$T/via_proxy.txt" | head -20 >&2; fail "rows through the proxy differ from the reference"; }
ok "all $n rows (with the concurrent writes) read back through the proxy equal to the reference"
penc -c "select id, customer_email, amount from payments order by id" >"$T/pay_proxy.txt" || fail "payments through the proxy"
sqlref -c "select id, customer_email, amount from payments_ref order by id" >"$T/pay_ref.txt"
cmp -s "$T/pay_proxy.txt" "$T/pay_ref.txt" || fail "payments through the proxy differ from the reference"
ok "payments (the other side of the foreign key) read back equal to the reference"
assert_eq "1" "$(sql -c "select count(*) from pg_constraint where conname = 'payments_customer_email_fkey' and convalidated")" \
    "the foreign key between the two encrypted columns is back and validated"
out=$(penc -c "insert into payments (id, customer_email, amount) values (-1, 'nobody@mail.example', 1)" 2>&1)
assert_contains "$out" "violates foreign key constraint \"payments_customer_email_fkey\"" "the foreign key holds on ciphertext"
for id in 12 500 $((ROWS - 3)); do
    ref=$(sqlref -c "select id, email, full_name from customers_ref where id = $id")
    [ -n "$ref" ] || continue # deleted by the writer
    email=$(cut -d'|' -f2 <<<"$ref")
    assert_eq "$ref" "$(penc -c "select id, email, full_name from customers where email = '$email'")" \
        "lookup by email through the proxy (id $id)"
done
dup=$(sqlref -c "select email from customers_ref where id = (select min(id) from customers_ref)")
out=$(penc -c "insert into customers (id, email, plan_tier, created_at, country_code) values (-2, '$dup', 'x', now(), 'DE')" 2>&1)
assert_contains "$out" "duplicate key value violates unique constraint \"customers_email_key\"" "duplicate email refused"
ok "the rebuilt unique index refuses a duplicate email"

# ---- the leak canary: snapshot now, --decrypt stores every value in the clear -----------------------
ncanary=$(sort -u "$PHANTOM_CANARY_DIR/values" 2>/dev/null | wc -l)
[ "$ncanary" -ge 1 ] || fail "the writer stored no canary through the encrypting proxy"
ok "the writer stored $ncanary canaries through the encrypting proxy"
canary_snapshot
canary_done

# ---- decrypt: back to the original ------------------------------------------------------------------
"$P" migrate -c "$CFG" --dsn "$DSN" --decrypt >"$T/decrypt.log" 2>&1 ||
    { cat "$T/decrypt.log" >&2; fail "migrate --decrypt"; }
types=$(sql -c "select string_agg(attname || ':' || format_type(atttypid, atttypmod), ' ' order by attname) from pg_attribute where attrelid = 'customers'::regclass and attnum > 0 and not attisdropped and attname in ('email','full_name','phone','tax_id','address')")
assert_eq "address:jsonb email:text full_name:text phone:text tax_id:text" "$types" "--decrypt restores the original types"
assert_eq "1" "$(sql -c "select count(*) from pg_constraint where conname = 'payments_customer_email_fkey' and convalidated")" \
    "--decrypt restores the foreign key"
sql -c "select $COLS from customers order by id" >"$T/decrypted.txt"
cmp -s "$T/decrypted.txt" "$T/reference.txt" || { diff "$T/reference.txt" "$T/decrypted.txt" | head -5 >&2; fail "decrypted table differs"; }
ok "--decrypt restores every value exactly"
assert_eq "1" "$(sql -c "select count(*) from pg_constraint where conrelid = 'customers'::regclass and conname = 'customers_email_key' and contype = 'u'")" "--decrypt restores the UNIQUE constraint"
assert_eq "0" "$(sql -c "select count(*) from pg_constraint where conrelid = 'customers'::regclass and conname like 'phantom_envelope%'")" "--decrypt drops the envelope checks"
"$P" verify -c "$CFG" --dsn "$DSN" >"$T/verify2.log" 2>&1
assert_eq 1 "$?" "verify fails on the decrypted (plaintext) table"
assert_contains "$(cat "$T/verify2.log")" "plaintext" "verify says the columns are plaintext"
