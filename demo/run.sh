#!/usr/bin/env bash
# demo/run.sh — the Phantom demo (`make demo` builds, then runs this).
#
# Starts a throwaway PostgreSQL 15 (log_statement = all) and the proxy in front
# of it (tests/lib/harness.sh) with the encrypt section of demo/phantom.yaml and
# a local key file made for this run (`phantom keys init-master`, `phantom keys
# create`). Creates the seed's financial-SaaS schema (demo/schema.sql) and a few
# rows (demo/data.sql) THROUGH THE PROXY, then shows:
#   * the application's view through the proxy (plaintext) beside the
#     database's view read directly with psql (bytea ciphertext);
#   * a login lookup WHERE email = '...' through the proxy, and the statement
#     the database actually received (from its own log);
#   * a LIKE on the encrypted email, refused with a clear error (SQLSTATE
#     0A000 naming table, column, mode and operation), the session still usable;
#   * some ordinary psql use through the proxy.
# Fails (non-zero exit) if the database holds a protected value in plaintext or
# the LIKE is not refused: the demo never fakes encryption. Removes everything
# it started on exit (also on failure or Ctrl-C).
#
# Files: demo/phantom.yaml (proxy config with the encrypt section; the keys:
# section is appended to a temporary copy), demo/schema.sql, demo/data.sql.
# Environment: PHANTOM_BIN (default bin/phantom), PHANTOM_DEMO_CONFIG (default
# demo/phantom.yaml; a config that has its own keys: section is used as is).
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/../tests/lib/harness.sh"
canary_done # not a test: no leak-canary snapshot

CONFIG_SRC="${PHANTOM_DEMO_CONFIG:-$HERE/phantom.yaml}"
APP_USER=phantom_scram # a SCRAM-SHA-256 role: authentication passes through the proxy
export PGPASSWORD=scram_pw PGAPPNAME=phantom_demo PGCONNECT_TIMEOUT=10
# Key domains of demo/phantom.yaml's encrypt section (one DEK each: "table.column").
DOMAINS=(customers.email customers.full_name customers.phone customers.tax_id customers.address
    payments.card_number payments.bank_account)
# The classification shown beside the values (absent = not encrypted).
declare -A PROTECTION=([email]="deterministic" [full_name]="randomized" [phone]="randomized"
    [tax_id]="randomized" [address]="randomized")

[ -x "$PHANTOM_BIN" ] || fail "$PHANTOM_BIN is not built: run make (or make demo)"
[ -r "$CONFIG_SRC" ] || fail "cannot read $CONFIG_SRC"

if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B="" N=""; fi
say() { printf '\n%s== %s ==%s\n' "$B" "$*" "$N"; }
# sql PORT [psql args...]: psql as the application's role on 127.0.0.1:PORT.
sql() {
    local port="$1"
    shift
    timeout 20 psql -X -q -v ON_ERROR_STOP=1 -P pager=off -h 127.0.0.1 -p "$port" \
        -U "$APP_USER" -d "$PGH_DB" "$@"
}
rel() { echo "${1#"$HARNESS_ROOT"/}"; }

say "Starting a throwaway PostgreSQL 15, making keys, starting the proxy"
pgh_start --conf "log_statement = all"
KEYS="$PGH_TMP/keys"
mkdir -p "$KEYS"
CONFIG="$CONFIG_SRC"
if ! grep -q '^keys:' "$CONFIG_SRC"; then
    CONFIG="$KEYS/phantom.yaml"
    "$PHANTOM_BIN" keys init-master --out "$KEYS/master.key" >"$KEYS/keys.log" 2>&1 ||
        { cat "$KEYS/keys.log" >&2; fail "phantom keys init-master failed"; }
    {
        cat "$CONFIG_SRC"
        printf '\nkeys:\n  keyring: %s\n  provider: file\n  file: { path: %s }\n' \
            "$KEYS/keyring.json" "$KEYS/master.key"
    } >"$CONFIG"
    "$PHANTOM_BIN" keys create -c "$CONFIG" "${DOMAINS[@]}" >>"$KEYS/keys.log" 2>&1 ||
        { cat "$KEYS/keys.log" >&2; fail "phantom keys create failed"; }
    cat <<EOF
  $(rel "$PHANTOM_BIN") keys init-master --out $KEYS/master.key
      a new KEK in a local file (mode $(stat -c %a "$KEYS/master.key")); in production: OpenBao Transit or an HSM
  $(rel "$PHANTOM_BIN") keys create -c <config> ${DOMAINS[*]}
      one data key (DEK) per key domain, stored only wrapped by the KEK in $KEYS/keyring.json
EOF
fi
phx_start --config "$CONFIG"
DB="$PGH_PORT"
PROXY="$PHX_PORT"
cat <<EOF
  DATABASE  127.0.0.1:$DB   PostgreSQL 15 — what the provider (and a subpoena) sees
  PROXY     127.0.0.1:$PROXY   bin/phantom — what the application connects to
  proxy command: $(rel "$PHANTOM_BIN") proxy --listen 127.0.0.1:$PROXY --target 127.0.0.1:$DB \\
                   --config $CONFIG
  (demo/phantom.yaml plus the keys: section above; command-line addresses override the file's)
  The application authenticates as $APP_USER with SCRAM-SHA-256 through the proxy,
  which holds no database credentials.
EOF
echo
echo "  encrypt section of $(rel "$CONFIG_SRC"):"
sed -n '/^encrypt:/,/^[^ #]/p' "$CONFIG_SRC" | grep -v '^[^ e]' | sed 's/^/    /'

say "Creating the schema and inserting rows through the PROXY (port $PROXY)"
sql "$PROXY" -f "$HERE/schema.sql" || fail "creating the schema through the proxy failed"
sql "$PROXY" -f "$HERE/data.sql" || fail "inserting the demo rows through the proxy failed"
echo "  $(sql "$PROXY" -At -c "select count(*) from customers") customers and" \
    "$(sql "$PROXY" -At -c "select count(*) from payments") payments written via port $PROXY" \
    "with the application's own SQL ($(rel "$HERE/schema.sql"), $(rel "$HERE/data.sql"))"
echo "  Column types in the database (read directly): the protected ones are bytea"
sql "$DB" -c "select column_name, data_type from information_schema.columns
              where table_name = 'customers' order by ordinal_position" || fail "catalog query failed"

QUERY="select * from customers order by created_at"

say "The APPLICATION's view: $QUERY — via the PROXY, port $PROXY"
sql "$PROXY" -c "$QUERY" || fail "query through the proxy failed"

say "The DATABASE's view: select email, full_name, plan_tier ... — read DIRECTLY, port $DB"
sql "$DB" -c "select email, full_name, plan_tier from customers order by created_at" || fail "direct query failed"

# Never show a "demo" that is not encrypted.
typ=$(sql "$DB" -At -c "select pg_typeof(email) from customers limit 1")
[ "$typ" = bytea ] || fail "customers.email is stored as $typ, not bytea: the proxy did not encrypt"
plain_hits=$(sql "$DB" -At -c "select count(*) from customers where position('example'::bytea in email) > 0
    or position('Moreau'::bytea in full_name) > 0")
[ "$plain_hits" = 0 ] || fail "plaintext found in the database: the proxy did not encrypt"

say "One customer, column by column: proxy port $PROXY | database port $DB"
COLS=(id email full_name phone tax_id address plan_tier created_at country_code)
one="select $(IFS=,; echo "${COLS[*]}") from customers order by created_at limit 1"
US=$'\x1f'
IFS="$US" read -r -a via_proxy < <(sql "$PROXY" -At -F "$US" -c "$one") || fail "reading through the proxy failed"
IFS="$US" read -r -a direct < <(sql "$DB" -At -F "$US" -c "$one") || fail "reading directly failed"
[ "${#via_proxy[@]}" -eq "${#COLS[@]}" ] && [ "${#direct[@]}" -eq "${#COLS[@]}" ] || fail "unexpected column count"
vars=()
values=()
for i in "${!COLS[@]}"; do
    c="${COLS[$i]}"
    vars+=(-v "p$i=${via_proxy[$i]}" -v "d$i=${direct[$i]}")
    values+=("($i, '$c', :'p$i', :'d$i', '${PROTECTION[$c]:--}')")
done
# psql lays the table out (it measures UTF-8 widths); long values are shortened.
sql "$DB" "${vars[@]}" <<SQL || fail "side-by-side view failed"
select col as "column",
       case when length(a) > 38 then left(a, 37) || '…' else a end as "application sees (proxy :$PROXY)",
       case when length(b) > 38 then left(b, 37) || '…' else b end as "database holds (direct :$DB)",
       mode as "encryption"
from (values $(IFS=,; echo "${values[*]}")) v (n, col, a, b, mode)
order by n;
SQL

say "Login lookup by email (deterministic encryption keeps equality) — via the PROXY"
LOGIN="SELECT full_name, plan_tier, country_code FROM customers WHERE email = 'jonas.becker@example.de'"
echo "  $LOGIN"
sql "$PROXY" -c "$LOGIN" || fail "login lookup through the proxy failed"
got=$(sql "$PROXY" -At -c "$LOGIN")
[ "$got" = "Jonas Becker|enterprise|DE" ] || fail "login lookup returned [$got]"
echo "  What the database received for it (its own log, log_statement = all):"
received=$(grep -a "statement: SELECT full_name, plan_tier, country_code FROM customers WHERE email" "$PGH_LOG" | tail -n 1)
[ -n "$received" ] || fail "the lookup is not in the server log"
case "$received" in *jonas.becker*) fail "the database received the plaintext email: $received" ;; esac
echo "    ${received#*statement: }" | fold -w 110 | sed '2,$s/^/      /'

say "What encryption cannot do is refused, not silently wrong: LIKE on the encrypted email"
LIKE="SELECT full_name FROM customers WHERE email LIKE '%@example.de'"
echo "  $LIKE"
out=$(sql "$PROXY" -v ON_ERROR_STOP=0 -v SHOW_CONTEXT=never -c "$LIKE" \
    -c "\\echo SQLSTATE :LAST_ERROR_SQLSTATE" \
    -c "SELECT 'the session is still usable' AS after_the_error" 2>&1)
echo "$out" | sed 's/^/  /'
case "$out" in
    *"ERROR:  phantom: cannot apply LIKE to customers.email (deterministic)"*"SQLSTATE 0A000"*) ;;
    *) fail "the LIKE on customers.email was not refused as expected" ;;
esac
case "$out" in *"the session is still usable"*) ;; *) fail "the session did not survive the refusal" ;; esac

say "Ordinary psql through the PROXY (port $PROXY)"
sql "$PROXY" -a <<'SQL' || fail "psql session through the proxy failed"
-- an aggregate over plain columns, with a join on the (plain) customer id
SELECT c.plan_tier, count(DISTINCT c.id) AS customers, count(p.id) AS payments,
       sum(p.amount) FILTER (WHERE p.status = 'settled') AS settled
FROM customers c LEFT JOIN payments p ON p.customer_id = c.id
GROUP BY c.plan_tier ORDER BY c.plan_tier;
-- encrypted columns of two tables, decrypted in one result
SELECT c.full_name, p.amount, p.currency, p.card_number, p.bank_account
FROM payments p JOIN customers c ON c.id = p.customer_id ORDER BY p.created_at;
-- a transaction, rolled back
BEGIN;
UPDATE customers SET phone = '+39 02 0000 0000' WHERE email = 'sofia.rossi@example.it';
SELECT email, phone FROM customers WHERE country_code = 'IT';
ROLLBACK;
SELECT email, phone FROM customers WHERE country_code = 'IT';
-- the proxied session lands on the database's port
SELECT current_user, inet_server_port() AS server_port, current_setting('server_version') AS server_version;
SQL

say "Stopping the proxy and the database"
phx_stop || fail "the proxy did not shut down cleanly"
echo "  Proxy stopped (exit status 0); the database, its log and the keys are removed on exit."
echo "  Nothing is left running."
