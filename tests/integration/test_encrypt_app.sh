#!/usr/bin/env bash
# The seed's financial-SaaS application through the encrypting proxy (issue 5,
# SPEC §1–§4), end to end with psycopg 3, node-postgres, psql and pg_dump.
#
# Two throwaway PostgreSQL 15 servers (log_statement = all, csvlog): the
# first holds "phantom", written only through the proxy, whose encrypt section
# protects customers (email deterministic; full_name, phone, tax_id, address
# jsonb randomized), payments (customer_email deterministic in customers.email's
# key domain, card_number randomized, paid_on ope date) and three helper tables;
# the second (pgh_start_plain) "phantom_plain", the same schema with plain
# types, written directly. Every protected value of the suites carries a leak
# canary (tests/clients/canary.py, node/canary.js, tests/lib/canary.sh): the
# snapshot of the first server at exit must not find any.
# The same DDL and data go to both (tests/clients/app_suite.py load: 200
# customers, 1000 payments), then:
#
#   * tests/clients/app_suite.py check: login lookups WHERE email = $1 (text and
#     binary parameters, prepared), plan filtering, ORDER BY created_at,
#     paid_on BETWEEN / < / >, ORDER BY paid_on, GROUP BY / DISTINCT on email,
#     JOINs on email, subqueries and CTEs, UPDATE ... SET phone, DELETE WHERE
#     email =, INSERT ... ON CONFLICT, RETURNING, simple-protocol literals,
#     pipelines — through the proxy and on the plain copy, identical rows and
#     RowDescription types; ParameterDescription types; every refused
#     operation (0A000, a message naming table, column, mode and operation, the
#     connection usable afterwards); DDL (bytea columns, DEFAULT / CHECK /
#     UNIQUE-on-randomized refused); what the encrypted database holds read
#     directly (bytea envelopes, sizes, no plaintext); a moved ciphertext fails
#     to decrypt; concurrent sessions; DDL by another session gives plaintext
#     or an error, never ciphertext; invalid values are rejected like
#     PostgreSQL rejects them (SQLSTATE class 22) or stored alike;
#   * tests/clients/node/app_suite.js: the same kind of comparisons and
#     refusals with node-postgres;
#   * psql: simple-protocol lookups; \copy TO and FROM in text, CSV and binary
#     format through the proxy (decrypted output equal to the plain copy's;
#     loading the proxy's output into the plain copy reproduces it; loading
#     the plain copy's output through the proxy stores ciphertext that reads
#     back equal and joins with customers.email in the database itself);
#   * pg_dump through the proxy holds plaintext (COPY TO STDOUT decrypted), and
#     that dump restored through the proxy (psql -f) into a new database reads
#     back equal to the plain copy while the database holds envelopes;
#   * leak check: a pg_dump taken directly from the encrypted databases, every
#     server log record not of phantom_plain, and the proxy's log contain none
#     of the protected plaintexts used by the suites (nor, in the dump, their
#     hex encoding); the same search finds them in the plain copy's dump and
#     log (so the search itself works).
set -u
source "$(dirname "$0")/../lib/harness.sh"

PY=/usr/bin/python3
SUITE="$HARNESS_ROOT/tests/clients/app_suite.py"
NODE_DIR="$HARNESS_ROOT/tests/clients/node"
"$PY" -c 'import psycopg' 2>/dev/null || fail "psycopg 3 is not importable by $PY (apt-get install python3-psycopg)"
command -v node >/dev/null || fail "node is not installed"
[ -d "$NODE_DIR/node_modules/pg" ] || (cd "$NODE_DIR" && timeout 300 npm ci --no-audit --no-fund >/dev/null 2>&1) ||
    fail "npm ci in $NODE_DIR failed"

LOGCONF=(--conf "log_statement = all" --conf "logging_collector = on"
    --conf "log_destination = 'csvlog'" --conf "log_directory = 'log'"
    --conf "log_rotation_size = 0" --conf "log_min_error_statement = error"
    --conf "log_parameter_max_length = -1" --conf "log_parameter_max_length_on_error = -1")
pgh_start "${LOGCONF[@]}"
pgh_start_plain "${LOGCONF[@]}"
T="$PGH_TMP/app"
mkdir -p "$T"
PGPASSWORD=scram_pw psql -X -q -v ON_ERROR_STOP=1 -h "$PGH_PLAIN_SOCK" -p "$PGH_PLAIN_PORT" -U postgres -d postgres \
    -c "CREATE DATABASE phantom_plain OWNER phantom_scram" || fail "createdb phantom_plain"
# The suites derive their canaries from this seed (the same in each run).
APP_CANARY_SEED="$(od -An -N10 -tx1 /dev/urandom | tr -d ' \n')"
export APP_CANARY_SEED

# --- keys and config ------------------------------------------------------------
CFG="$T/phantom.yaml"
"$PHANTOM_BIN" keys init-master --out "$T/master.key" >"$T/keys.log" 2>&1 ||
    { cat "$T/keys.log" >&2; fail "keys init-master"; }
cat >"$CFG" <<EOF
keys:
  keyring: $T/keyring.json
  provider: file
  file: { path: $T/master.key }
encrypt:
  customers:
    - email: deterministic
    - full_name                 # randomized
    - phone
    - tax_id
    - column: address
      mode: randomized
      type: jsonb
  payments:
    - column: customer_email
      mode: deterministic
      key: customers.email      # same key domain: JOIN on customers.email works
    - card_number
    - column: paid_on
      mode: ope
      type: date
  customers_import:             # the target of the COPY FROM checks: customers' keys
    - column: email
      mode: deterministic
      key: customers.email
    - { column: full_name, key: customers.full_name }
    - { column: phone, key: customers.phone }
    - { column: tax_id, key: customers.tax_id }
    - { column: address, type: jsonb, key: customers.address }
  accounts:                     # numeric / int8 modes, SUM/AVG and key-domain refusals
    - owner_email: deterministic
    - { column: balance, type: "numeric(12,2)" }
    - { column: credit_limit, mode: ope, type: int8 }
  ddl_probe:                    # DDL rules
    - secret
    - det: deterministic
    - extra
EOF
DOMAINS=(customers.email customers.full_name customers.phone customers.tax_id customers.address
    payments.card_number payments.paid_on accounts.owner_email accounts.balance
    accounts.credit_limit ddl_probe.secret ddl_probe.det ddl_probe.extra)
"$PHANTOM_BIN" keys create -c "$CFG" "${DOMAINS[@]}" >>"$T/keys.log" 2>&1 ||
    { cat "$T/keys.log" >&2; fail "keys create"; }
ok "master key, config and ${#DOMAINS[@]} key domains created"

phx_start --config "$CFG"

export PGPASSWORD=scram_pw
base="user=phantom_scram password=scram_pw connect_timeout=10 sslmode=disable"
PROXY="host=127.0.0.1 port=$PHX_PORT dbname=$PGH_DB $base application_name=phantom_app"
ENC_DIRECT="host=127.0.0.1 port=$PGH_PORT dbname=$PGH_DB $base application_name=phantom_app_direct"
PLAIN="host=127.0.0.1 port=$PGH_PLAIN_PORT dbname=phantom_plain $base application_name=phantom_app_plain"
q() {
    local c="$1"
    shift
    timeout 60 psql -X -w -v ON_ERROR_STOP=1 "$c" "$@"
}
alive() { kill -0 "$PHX_PID" 2>/dev/null || fail "proxy died"; }
# A failed check that should not hide the ones after it: reported now, the
# script still exits non-zero (harness cleanup).
soft_fail() {
    echo "FAIL - $*" >&2
    _PGH_FAILED=1
}

# --- schema: the application's own DDL, through the proxy and on the plain copy -----
cat >"$T/schema.sql" <<'EOF'
CREATE TABLE customers (
    id           uuid PRIMARY KEY,
    email        text NOT NULL UNIQUE,
    full_name    text,
    phone        text,
    tax_id       text,
    address      jsonb,
    plan_tier    text NOT NULL,
    created_at   timestamptz NOT NULL,
    country_code text NOT NULL
);
CREATE INDEX customers_plan_idx ON customers (plan_tier);
CREATE TABLE payments (
    id             bigint PRIMARY KEY,
    customer_email text NOT NULL,
    card_number    text,
    amount         numeric(12,2) NOT NULL,
    paid_on        date
);
CREATE INDEX payments_email_idx ON payments (customer_email);
CREATE INDEX payments_paid_on_idx ON payments (paid_on);
CREATE TABLE customers_import (
    id uuid PRIMARY KEY, email text NOT NULL, full_name text, phone text, tax_id text,
    address jsonb, plan_tier text NOT NULL, created_at timestamptz NOT NULL, country_code text NOT NULL
);
CREATE TABLE accounts (id int PRIMARY KEY, owner_email text, balance numeric(12,2), credit_limit bigint);
EOF
out=$(q "$PROXY" -q -f "$T/schema.sql" 2>&1) || fail "schema through the proxy: $out"
out=$(q "$PLAIN" -q -f "$T/schema.sql" 2>&1) || fail "schema on the plain copy: $out"
stored=$(q "$ENC_DIRECT" -At -c "select table_name || '.' || column_name || ':' || data_type from information_schema.columns
    where table_schema = 'public' and table_name in ('customers', 'payments') order by table_name, ordinal_position" | tr '\n' ' ')
assert_eq "customers.id:uuid customers.email:bytea customers.full_name:bytea customers.phone:bytea customers.tax_id:bytea customers.address:bytea customers.plan_tier:text customers.created_at:timestamp with time zone customers.country_code:text payments.id:bigint payments.customer_email:bytea payments.card_number:bytea payments.amount:numeric payments.paid_on:bytea " \
    "$stored" "CREATE TABLE through the proxy stores protected columns as bytea"

# --- data, then the psycopg suite ------------------------------------------------
timeout 120 "$PY" "$SUITE" load --proxy "$PROXY" --plain "$PLAIN" || fail "loading the data set failed"
timeout 300 "$PY" "$SUITE" check --proxy "$PROXY" --plain "$PLAIN" --enc-direct "$ENC_DIRECT"
rc=$?
if [ "$rc" -eq 0 ]; then ok "psycopg app suite"; else soft_fail "psycopg app suite failed (exit $rc; see the FAIL lines above)"; fi
alive

# --- node-postgres -----------------------------------------------------------------
NODE_SECRETS="$T/node-secrets.txt"
: >"$NODE_SECRETS"
env PROXY_PORT="$PHX_PORT" DIRECT_PORT="$PGH_PLAIN_PORT" ENC_DB="$PGH_DB" PLAIN_DB=phantom_plain \
    SECRETS_OUT="$NODE_SECRETS" timeout 120 node "$NODE_DIR/app_suite.js"
rc=$?
if [ "$rc" -eq 0 ]; then ok "node app suite"; else soft_fail "node app suite failed (exit $rc; see the FAIL lines above)"; fi
alive

# --- psql: simple protocol -----------------------------------------------------------
email=$(q "$PLAIN" -At -c "select email from customers order by id offset 3 limit 1")
[ -n "$email" ] || fail "no sample email"
multi="select * from customers where email = '$email';
select count(*) from payments where customer_email = '$email';
select p.id, p.card_number, p.paid_on, c.full_name from payments p join customers c on c.email = p.customer_email
  where p.paid_on between '2024-03-01' and '2024-03-10' order by p.paid_on, p.id;
update customers set phone = null where email = '$email' returning email, phone;
select email, phone, tax_id from customers where email in ('$email', '$(canary_email)');"
a=$(q "$PROXY" -c "$multi" 2>&1) || fail "psql multi-statement through the proxy: $a"
b=$(q "$PLAIN" -c "$multi" 2>&1) || fail "psql multi-statement on the plain copy: $b"
assert_eq "$b" "$a" "psql multi-statement simple query (lookup, join, BETWEEN, UPDATE RETURNING): same output as the plain copy"
assert_contains "$a" "$email" "psql output shows the decrypted email"
a=$(q "$PROXY" -v ON_ERROR_STOP=0 -c "select id from customers where full_name like 'Al%'" -c "select 'still usable'" 2>&1)
assert_contains "$a" "ERROR:  phantom: cannot apply LIKE to customers.full_name (randomized)" "psql: LIKE refused with its message"
assert_contains "$a" "still usable" "psql: session usable after the refusal"

# --- \copy TO / FROM: text, CSV, binary ------------------------------------------------
same_tables_plain() { # in phantom_plain: customers_import equals customers (as multisets)
    q "$PLAIN" -At -c "select (select count(*) from customers_import), (select count(*) from (
        (table customers except all table customers_import) union all
        (table customers_import except all table customers)) d)"
}
ncust=$(q "$PLAIN" -At -c "select count(*) from customers")
for fmt in text csv binary; do
    case "$fmt" in
        text) opt="" ;;
        csv) opt="with (format csv, header true)" ;;
        binary) opt="with (format binary)" ;;
    esac
    # TO: decrypted through the proxy
    out=$(q "$PROXY" -c "\\copy customers to '$T/proxy.$fmt' $opt" 2>&1) || fail "\\copy to ($fmt) through the proxy: $out"
    assert_eq "COPY $ncust" "$out" "\\copy customers to a file ($fmt) through the proxy"
    q "$PLAIN" -c "\\copy customers to '$T/plain.$fmt' $opt" >/dev/null || fail "\\copy to ($fmt) on the plain copy"
    if [ "$fmt" != binary ]; then
        # same lines (row order may differ: the tables' physical layouts do)
        cmp -s <(sort "$T/proxy.$fmt") <(sort "$T/plain.$fmt") ||
            fail "\\copy to ($fmt): the proxy's output differs from the plain copy's: $(diff <(sort "$T/proxy.$fmt") <(sort "$T/plain.$fmt") | head -5)"
        ok "\\copy to ($fmt): same rows as the plain copy ($(wc -c <"$T/proxy.$fmt") bytes)"
    fi
    # the proxy's output is a valid plaintext COPY file of the logical types
    q "$PLAIN" -q -c "truncate customers_import" -c "\\copy customers_import from '$T/proxy.$fmt' $opt" >/dev/null ||
        fail "\\copy from the proxy's $fmt output into the plain copy"
    assert_eq "$ncust|0" "$(same_tables_plain)" "\\copy ($fmt): the proxy's output loads into the plain copy and equals it"
    # FROM: the plain copy's output, encrypted by the proxy on the way in
    out=$(q "$PROXY" -c "truncate customers_import" -c "\\copy customers_import from '$T/plain.$fmt' $opt" 2>&1) ||
        fail "\\copy from ($fmt) through the proxy: $out"
    assert_contains "$out" "COPY $ncust" "\\copy customers_import from a file ($fmt) through the proxy"
    a=$(q "$PROXY" -At -c "select * from customers_import order by id")
    b=$(q "$PLAIN" -At -c "select * from customers order by id")
    assert_eq "$b" "$a" "\\copy from ($fmt): rows read back through the proxy equal the plain copy"
    st=$(q "$ENC_DIRECT" -At -c "select pg_typeof(email), count(*) filter (where get_byte(full_name, 0) = 1 and get_byte(full_name, 1) = 1),
        (select count(*) from customers_import i join customers c on c.email = i.email)
        from customers_import group by 1")
    assert_eq "bytea|$(q "$PLAIN" -At -c "select count(full_name) from customers")|$ncust" "$st" \
        "\\copy from ($fmt): stored as envelopes; deterministic emails join customers.email in the database"
done
alive

# --- pg_dump through the proxy: plaintext ---------------------------------------------
timeout 120 pg_dump -h 127.0.0.1 -p "$PHX_PORT" -U phantom_scram -d "$PGH_DB" -f "$T/proxy.dump" 2>"$T/proxy.dump.err" ||
    fail "pg_dump through the proxy failed: $(head -5 "$T/proxy.dump.err")"
found=0
while IFS= read -r e; do
    grep -qF -- "$e" "$T/proxy.dump" && found=$((found + 1))
done < <(q "$PLAIN" -At -c "select email from customers order by id limit 20")
assert_eq 20 "$found" "pg_dump through the proxy holds the plaintext emails (COPY TO STDOUT decrypted)"
card=$(q "$PLAIN" -At -c "select card_number from payments where card_number is not null order by id limit 1")
grep -qF -- "$card" "$T/proxy.dump" || fail "pg_dump through the proxy: card number not in plaintext"
ok "pg_dump through the proxy: card numbers in plaintext too"

# --- that dump restored through the proxy (psql -f) into a new database -----------------
# The dump's DDL declares the protected columns bytea (what the catalog says);
# its COPY data is plaintext, which the proxy must encrypt on the way in.
pgh_admin_psql -d postgres -q -c "CREATE DATABASE phantom_restore OWNER phantom_scram" || fail "createdb phantom_restore"
RESTORE="${PROXY/dbname=$PGH_DB/dbname=phantom_restore}"
RESTORE_DIRECT="${ENC_DIRECT/dbname=$PGH_DB/dbname=phantom_restore}"
if out=$(q "$RESTORE" -q -f "$T/proxy.dump" 2>&1 >/dev/null); then
    ok "pg_dump output restored through the proxy (psql -f)"
    for t in customers payments; do
        a=$(q "$RESTORE" -At -c "select * from $t order by id" 2>&1)
        b=$(q "$PLAIN" -At -c "select * from $t order by id")
        if [ "$a" = "$b" ]; then ok "restored $t reads back equal to the plain copy"; else
            soft_fail "restored $t differs from the plain copy: $(diff <(echo "$a") <(echo "$b") | head -4)"
        fi
    done
    st=$(q "$RESTORE_DIRECT" -At -c "select pg_typeof(email), count(*) filter (where get_byte(email, 0) = 1 and get_byte(email, 1) = 2) = count(*)
        from customers group by 1")
    if [ "$st" = "bytea|t" ]; then ok "restored customers.email holds deterministic envelopes"; else
        soft_fail "restored customers.email is not encrypted: [$st]"
    fi
else
    soft_fail "restoring the proxy's pg_dump through the proxy failed: $(grep -m3 ERROR <<<"$out")"
fi

# --- leak check ------------------------------------------------------------------------
timeout 120 pg_dump -h 127.0.0.1 -p "$PGH_PORT" -U phantom_scram -d "$PGH_DB" -f "$T/direct.dump" ||
    fail "pg_dump of the encrypted database failed"
timeout 120 pg_dump -h 127.0.0.1 -p "$PGH_PORT" -U phantom_scram -d phantom_restore >>"$T/direct.dump" ||
    fail "pg_dump of the restored database failed"
timeout 120 pg_dump -h 127.0.0.1 -p "$PGH_PLAIN_PORT" -U phantom_scram -d phantom_plain -f "$T/plain.dump" ||
    fail "pg_dump of the plain copy failed"
"$PY" "$SUITE" secrets >"$T/secrets.txt" || fail "app_suite.py secrets"
cat "$NODE_SECRETS" >>"$T/secrets.txt"
alive
phx_stop || fail "proxy did not shut down cleanly"
ok "proxy shut down cleanly (no sanitizer report)"
# The server logs: csvlog records (statements, errors, details, parameters) of
# every database but the plain copy (on the second server).
leaks=$("$PY" - "$T/secrets.txt" "$T/direct.dump" "$T/plain.dump" "$PGH_DATA/log:$PGH_PLAIN_DATA/log" "$PHX_LOG" <<'PY'
import csv, glob, os, sys
secrets_file, direct_dump, plain_dump, logdirs, proxy_log = sys.argv[1:]
secrets = sorted({s for s in open(secrets_file, encoding="utf-8").read().splitlines() if s})
csv.field_size_limit(sys.maxsize)  # statements with multi-megabyte values are logged whole
direct = open(direct_dump, encoding="utf-8").read()
plain = open(plain_dump, encoding="utf-8").read()
records, plain_records = [], []
files = sorted(f for d in logdirs.split(":") for f in glob.glob(os.path.join(d, "*.csv")))
for f in files:
    with open(f, encoding="utf-8", errors="replace", newline="") as fh:
        for rec in csv.reader(fh):
            (plain_records if len(rec) > 2 and rec[2] == "phantom_plain" else records).append("\x1f".join(rec))
server_log = "\n".join(records)
proxy = open(proxy_log, encoding="utf-8", errors="replace").read()
bad = []
for s in secrets:
    if s in direct:
        bad.append(f"direct pg_dump holds {s!r}")
    if len(s.encode()) >= 8 and s.encode().hex() in direct:
        bad.append(f"direct pg_dump holds the hex of {s!r}")
    if s in server_log:
        line = next(r for r in records if s in r)
        bad.append(f"server log holds {s!r}: {line[:300]!r}")
    if s in proxy:
        bad.append(f"proxy log holds {s!r}")
in_plain = sum(1 for s in secrets if s in plain)
plain_log = "\n".join(plain_records)
in_plain_log = sum(1 for s in secrets if s in plain_log)
stmts = sum(1 for r in records if "statement: " in r or "execute " in r)
print(f"stats secrets={len(secrets)} in_plain_dump={in_plain} log_files={len(files)} "
      f"records={len(records)} statements={stmts} plain_records={len(plain_records)} "
      f"in_plain_log={in_plain_log}")
for b in bad[:30]:
    print("LEAK", b)
print(f"leaks={len(bad)}")
PY
) || fail "leak check script failed: $leaks"
echo "$leaks" | grep -v '^LEAK' | sed 's/^/# /'
stats=$(grep '^stats ' <<<"$leaks")
nsecrets=$(sed -n 's/.* secrets=\([0-9]*\).*/\1/p' <<<"$stats")
inplain=$(sed -n 's/.* in_plain_dump=\([0-9]*\).*/\1/p' <<<"$stats")
nstmts=$(sed -n 's/.* statements=\([0-9]*\).*/\1/p' <<<"$stats")
inplainlog=$(sed -n 's/.* in_plain_log=\([0-9]*\).*/\1/p' <<<"$stats")
[ "${nsecrets:-0}" -ge 1000 ] || fail "leak check: only ${nsecrets:-0} plaintexts to look for"
[ "${inplain:-0}" -ge 1000 ] || fail "leak check self-test: only ${inplain:-0} plaintexts found in the plain copy's dump"
[ "${inplainlog:-0}" -ge 100 ] || fail "leak check self-test: only ${inplainlog:-0} plaintexts found in the plain copy's log records"
[ "${nstmts:-0}" -ge 300 ] || fail "leak check: only ${nstmts:-0} logged statements of the encrypted database (log_statement = all?)"
ok "leak check self-test: the search finds $inplain plaintexts in the plain copy's dump, $inplainlog in its log records"
if grep -q '^LEAK' <<<"$leaks"; then
    grep '^LEAK' <<<"$leaks" | head -30 >&2
    fail "protected plaintexts leaked: $(grep -c '^LEAK' <<<"$leaks") findings"
fi
ok "leak check: none of $nsecrets protected plaintexts in the direct pg_dump, the server log ($nstmts statements logged) or the proxy log"
