#!/usr/bin/env bash
# pgbench through the proxy gives the same database as pgbench run directly.
#
# Two databases: bench_p (every pgbench through the proxy) and bench_d (the
# same pgbench runs directly against PostgreSQL).
#   * pgbench -i -s 1 (client-side COPY of 100k rows, VACUUM, primary keys):
#     tables identical;
#   * a deterministic custom script (\set constants, a sequence for the row
#     each transaction touches, \gset, commutative updates, inserts) run with
#     -M simple, -M extended and -M prepared (-c 4 -j 2 -t 200): exit 0, every
#     transaction processed, 0 failed, and after each mode the tables of both
#     databases are identical (sums, counts and an md5 of an ordered dump);
#   * the built-in TPC-B-like script with a fixed --random-seed (4 clients'
#     random streams are then fixed, and its updates commute), -M prepared:
#     identical tables too.
set -u
source "$(dirname "$0")/../lib/harness.sh"

pgh_start
phx_start
T="$PGH_TMP"
export PGPASSWORD=scram_pw

pgh_admin_psql -d postgres -q -c "create database bench_p owner phantom_scram" -c "create database bench_d owner phantom_scram" ||
    fail "creating the databases failed"

# shellcheck disable=SC2034 # read through ${!port} in bench() and sql()
PORT_p=$PHX_PORT
# shellcheck disable=SC2034
PORT_d=$PGH_PORT
# bench p|d ARGS...: pgbench against bench_p through the proxy or bench_d directly.
bench() {
    local w="$1" port
    shift
    port="PORT_$w"
    timeout 120 pgbench -h 127.0.0.1 -p "${!port}" -U phantom_scram "$@" "bench_$w"
}
sql() { # p|d SQL
    local port="PORT_$1"
    timeout 60 psql -X -w -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${!port}" -U phantom_scram -d "bench_$1" -c "$2"
}
# state p|d: a fingerprint of every pgbench table (mtime excluded: the built-in
# script uses CURRENT_TIMESTAMP).
STATE_SQL="select
  (select format('accounts %s %s %s', count(*), sum(abalance),
      md5(string_agg(format('%s,%s,%s,%s', aid, bid, abalance, filler), ';' order by aid))) from pgbench_accounts),
  (select format('tellers %s %s', sum(tbalance),
      md5(string_agg(format('%s,%s,%s', tid, bid, tbalance), ';' order by tid))) from pgbench_tellers),
  (select format('branches %s', string_agg(format('%s,%s', bid, bbalance), ';' order by bid)) from pgbench_branches),
  (select format('history %s %s', count(*),
      md5(coalesce(string_agg(format('%s,%s,%s,%s', tid, bid, aid, delta), ';' order by tid, bid, aid, delta), '')))
   from pgbench_history)"
state() { sql "$1" "$STATE_SQL"; }
compare() { # what
    local p d
    p=$(state p) || fail "$1: reading the proxied database failed"
    d=$(state d) || fail "$1: reading the direct database failed"
    assert_eq "$d" "$p" "$1: tables identical to the direct run"
    echo "    $(cut -d'|' -f1 <<<"$p" | cut -c1-60)..."
}
# check_run WHAT OUTPUT STATUS EXPECTED_TXNS
check_run() {
    [ "$3" -eq 0 ] || fail "$1: pgbench exit $3: $(tail -n 20 <<<"$2")"
    assert_contains "$2" "number of transactions actually processed: $4/$4" "$1: all $4 transactions processed"
    if grep -q "number of failed transactions" <<<"$2"; then
        assert_contains "$2" "number of failed transactions: 0 " "$1: no failed transaction"
    fi
    if grep -qiE "^(pgbench: )?(error|fatal)|ERROR:" <<<"$2"; then
        fail "$1: pgbench reported errors: $(grep -iE 'error|fatal' <<<"$2" | head -n 5)"
    fi
}

# --- pgbench -i ----------------------------------------------------------------
out=$(bench p -i -s 1 -q 2>&1) || fail "pgbench -i through the proxy failed: $out"
assert_contains "$out" "done in" "pgbench -i -s 1 through the proxy"
bench d -i -s 1 -q >/dev/null 2>&1 || fail "pgbench -i direct failed"
compare "after pgbench -i"
assert_eq "100000" "$(sql p "select count(*) from pgbench_accounts")" "pgbench -i loaded 100000 accounts"

# --- deterministic custom script, three protocol modes ----------------------------
for w in p d; do sql "$w" "create sequence bench_seq" >/dev/null || fail "sequence"; done
cat >"$T/custom.sql" <<'EOF'
\set delta 7
\set teller_mod 10
BEGIN;
SELECT nextval('bench_seq') AS n \gset
UPDATE pgbench_accounts SET abalance = abalance + :delta::int * (:n::int % 13) WHERE aid = 1 + (:n::int * 7919) % 100000;
SELECT abalance FROM pgbench_accounts WHERE aid = 1 + (:n::int * 7919) % 100000;
UPDATE pgbench_tellers SET tbalance = tbalance + :n::int % 17 WHERE tid = 1 + :n::int % :teller_mod::int;
UPDATE pgbench_branches SET bbalance = bbalance + 1 WHERE bid = 1;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime)
  VALUES (1 + :n::int % :teller_mod::int, 1, 1 + (:n::int * 7919) % 100000, :n::int, '2024-01-01 00:00:00');
END;
SELECT 'text with ''quotes'' and ✓', :n::text || repeat('y', :n::int % 300);
EOF
for mode in simple extended prepared; do
    out=$(bench p -n -f "$T/custom.sql" -M "$mode" -c 4 -j 2 -t 200 2>&1)
    check_run "custom script -M $mode through the proxy" "$out" $? 800
    grep -E "^(tps|latency average)" <<<"$out" | sed 's/^/    /'
    out=$(bench d -n -f "$T/custom.sql" -M "$mode" -c 4 -j 2 -t 200 2>&1)
    check_run "custom script -M $mode direct" "$out" $? 800
    compare "custom script -M $mode"
done
assert_eq "2400" "$(sql p "select count(*) from pgbench_history")" "2400 history rows through the proxy"
assert_eq "$(sql d "select sum(abalance) from pgbench_accounts")" "$(sql p "select sum(abalance) from pgbench_accounts")" \
    "sum(abalance) equal"
[ "$(sql p "select sum(abalance) from pgbench_accounts")" != "0" ] || fail "the custom script changed nothing"

# --- built-in TPC-B-like script, fixed random seed ------------------------------------
for w in p d; do sql "$w" "truncate pgbench_history" >/dev/null || fail "truncate"; done
out=$(bench p -n -M prepared -c 4 -j 2 -t 200 --random-seed=4242 2>&1)
check_run "built-in tpcb-like -M prepared through the proxy" "$out" $? 800
out=$(bench d -n -M prepared -c 4 -j 2 -t 200 --random-seed=4242 2>&1)
check_run "built-in tpcb-like -M prepared direct" "$out" $? 800
compare "built-in tpcb-like, --random-seed=4242"

kill -0 "$PHX_PID" 2>/dev/null || fail "proxy died"
phx_stop || fail "proxy did not shut down cleanly"
ok "proxy shut down cleanly"
