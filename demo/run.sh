#!/usr/bin/env bash
# demo/run.sh — the Phantom demo (`make demo` builds, then runs this).
#
# Starts a throwaway PostgreSQL 15 and the proxy in front of it
# (tests/lib/harness.sh), creates the seed's financial-SaaS schema
# (demo/schema.sql) and a few rows (demo/data.sql) THROUGH THE PROXY, then shows
# what the application reads through the proxy beside what the database holds
# when read directly, and some ordinary psql use through the proxy. Removes
# everything it started on exit (also on failure or Ctrl-C).
#
# Files: demo/phantom.yaml (proxy config: addresses, later the encrypt section),
# demo/schema.sql, demo/data.sql. Environment: PHANTOM_BIN (default bin/phantom),
# PHANTOM_DEMO_CONFIG (default demo/phantom.yaml).
#
# Today the proxy is a pass-through: both sides are identical. Once field
# encryption lands (issue 5) the protected columns below show ciphertext on the
# direct side; nothing here fakes that.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/../tests/lib/harness.sh"

CONFIG="${PHANTOM_DEMO_CONFIG:-$HERE/phantom.yaml}"
APP_USER=phantom_scram # a SCRAM-SHA-256 role: authentication passes through the proxy
export PGPASSWORD=scram_pw PGAPPNAME=phantom_demo PGCONNECT_TIMEOUT=10

# The seed's classification of the customers columns (absent = not encrypted).
# When encryption lands this should come from the encrypt section of $CONFIG.
declare -A PROTECTION=([email]="deterministic" [full_name]="randomized" [phone]="randomized"
    [tax_id]="randomized" [address]="randomized")

[ -x "$PHANTOM_BIN" ] || fail "$PHANTOM_BIN is not built: run make (or make demo)"

if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B="" N=""; fi
say() { printf '\n%s== %s ==%s\n' "$B" "$*" "$N"; }
# sql PORT [psql args...]: psql as the application's role on 127.0.0.1:PORT.
sql() {
    local port="$1"
    shift
    timeout 20 psql -X -q -v ON_ERROR_STOP=1 -P pager=off -h 127.0.0.1 -p "$port" \
        -U "$APP_USER" -d "$PGH_DB" "$@"
}

say "Starting a throwaway PostgreSQL 15 and the proxy"
pgh_start
phx_start --config "$CONFIG"
DB="$PGH_PORT"
PROXY="$PHX_PORT"
cat <<EOF
  DATABASE  127.0.0.1:$DB   PostgreSQL 15 — what the provider (and a subpoena) sees
  PROXY     127.0.0.1:$PROXY   bin/phantom — what the application connects to
  proxy command: ${PHANTOM_BIN#"$HARNESS_ROOT"/} proxy --listen 127.0.0.1:$PROXY --target 127.0.0.1:$DB \\
                   --config ${CONFIG#"$HARNESS_ROOT"/}   (command-line addresses override the file's)
  The application authenticates as $APP_USER with SCRAM-SHA-256 through the proxy,
  which holds no database credentials.
EOF

say "Creating the schema and inserting rows through the PROXY (port $PROXY)"
sql "$PROXY" -f "$HERE/schema.sql" || fail "creating the schema through the proxy failed"
sql "$PROXY" -f "$HERE/data.sql" || fail "inserting the demo rows through the proxy failed"
echo "  $(sql "$PROXY" -At -c "select count(*) from customers") customers and" \
    "$(sql "$PROXY" -At -c "select count(*) from payments") payments written via port $PROXY"

QUERY="select * from customers order by created_at"

say "The APPLICATION's view: $QUERY — via the PROXY, port $PROXY"
sql "$PROXY" -c "$QUERY" || fail "query through the proxy failed"

say "The DATABASE's view: $QUERY — read DIRECTLY, port $DB"
sql "$DB" -c "$QUERY" || fail "direct query failed"

say "One customer, column by column: proxy port $PROXY | database port $DB"
row_query="select row_to_json(c) from customers c order by created_at limit 1"
via_proxy="$(sql "$PROXY" -At -c "$row_query")" || fail "reading through the proxy failed"
direct="$(sql "$DB" -At -c "$row_query")" || fail "reading directly failed"
prot_json="{"
for k in "${!PROTECTION[@]}"; do prot_json+="\"$k\": \"${PROTECTION[$k]}\","; done
prot_json="${prot_json%,}}"
# psql lays the table out (it measures UTF-8 widths); long values are shortened.
sql "$DB" -v a="$via_proxy" -v b="$direct" -v p="$prot_json" <<SQL || fail "side-by-side view failed"
select a.key as "column",
       case when length(a.value) > 38 then left(a.value, 37) || '…' else a.value end
           as "application sees (proxy :$PROXY)",
       case when length(b.value) > 38 then left(b.value, 37) || '…' else b.value end
           as "database holds (direct :$DB)",
       coalesce((:'p'::json) ->> a.key, '-') as "seed: encryption"
from json_each_text(:'a') with ordinality as a (key, value, n)
join json_each_text(:'b') as b (key, value) using (key)
order by a.n;
SQL

PAYMENTS="select * from payments order by id"
proxy_all="$(sql "$PROXY" -c "$QUERY" -c "$PAYMENTS")" || fail "reading through the proxy failed"
direct_all="$(sql "$DB" -c "$QUERY" -c "$PAYMENTS")" || fail "reading directly failed"
if [ "$proxy_all" = "$direct_all" ]; then
    cat <<EOF
  IDENTICAL: customers and payments read the same through the proxy and directly.
  That is expected today: the proxy is a transparent pass-through and field
  encryption is not implemented yet. Once it lands (issue 5), the columns the
  seed protects — customers.email (deterministic), full_name, phone, tax_id,
  address, payments.card_number and bank_account (randomized) — will be stored
  as ciphertext: the direct read on port $DB will show encrypted blobs there,
  while the application on port $PROXY keeps reading plaintext.
EOF
else
    echo "  DIFFERENT: the proxy is a pass-through today, so this is unexpected:" >&2
    diff <(echo "$proxy_all") <(echo "$direct_all") >&2
    fail "proxy and direct reads differ"
fi

say "Ordinary psql through the PROXY (port $PROXY)"
sql "$PROXY" -a <<'SQL' || fail "psql session through the proxy failed"
\d customers
-- an aggregate, with a join
SELECT c.plan_tier, count(DISTINCT c.id) AS customers, count(p.id) AS payments,
       sum(p.amount) FILTER (WHERE p.status = 'settled') AS settled
FROM customers c LEFT JOIN payments p ON p.customer_id = c.id
GROUP BY c.plan_tier ORDER BY c.plan_tier;
-- a prepared statement: the login lookup the seed keeps deterministic for
PREPARE customer_by_email(varchar) AS
    SELECT full_name, plan_tier, country_code FROM customers WHERE email = $1;
EXECUTE customer_by_email('jonas.becker@example.de');
DEALLOCATE customer_by_email;
-- a transaction, rolled back
BEGIN;
UPDATE customers SET plan_tier = 'enterprise' WHERE country_code = 'IT';
SELECT email, plan_tier FROM customers WHERE country_code = 'IT';
ROLLBACK;
SELECT email, plan_tier FROM customers WHERE country_code = 'IT';
-- the proxied session lands on the database's port
SELECT current_user, inet_server_port() AS server_port, current_setting('server_version') AS server_version;
SQL

say "Stopping the proxy and the database"
phx_stop || fail "the proxy did not shut down cleanly"
echo "  Proxy stopped (exit status 0); the database and its temp dir are removed on exit."
echo "  Nothing is left running."
