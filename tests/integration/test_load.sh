#!/usr/bin/env bash
# 500 concurrent clients through the encrypting proxy (issue 7, hardening).
#
# One throwaway PostgreSQL 15 (max_connections = clients + 100) and the proxy
# under test (PHANTOM_BIN; the ASan build under make test) with an encrypt
# section over load_items: email deterministic, note and doc (jsonb)
# randomized, amount (int8) and due (date) ope. load_items and its
# unprotected twin load_twin (digests of the protected values, written in
# the same transactions) are created through the proxy.
#
# tests/clients/load.py then connects LOAD_CONNS clients (default 500: 80 %
# asyncpg — extended protocol, prepared statements, binary formats, COPY FROM
# STDIN — and 20 % psycopg with client-side binding — simple protocol,
# literals) and runs for LOAD_SECONDS (default 20; make stress: 300) a mixed
# read/write workload of inserts, COPY, lookups by email, updates (also of
# the email), own-row read-backs, ope range queries and deletes, each client
# checking every result against the rows it owns. Checked here, from its
# report and /proc:
#   * no error of any kind in any client (the first ones are printed);
#   * every client connected at once: pg_stat_activity shows exactly
#     LOAD_CONNS phantom_load backends, all of them connected from the proxy
#     process's own upstream sockets (ports matched through /proc/net/tcp);
#   * the whole table read through the proxy (SELECT in binary and COPY TO
#     STDOUT in CSV) equals the union of the clients' states, and the twin's
#     digests match the decrypted values; read directly, the protected
#     columns are bytea and every value in them is an envelope (version 1,
#     mode 1-4, >= 23 bytes): nothing reached the database in the clear;
#   * the proxy's fds return to their count before the run and no backend is
#     left once the clients have closed;
#   * the proxy's VmRSS, sampled every 0.5 s: peak and end printed; the peak
#     over the pre-run baseline stays within LOAD_RSS_BUDGET_MB (default:
#     the per-connection budget below times the clients), and RSS does not
#     keep growing during the run (last sample vs the first quarter's peak
#     within LOAD_RSS_DRIFT_MB);
#   * the proxy exits 0 on SIGTERM with no sanitizer report (harness).
#
# RSS budget. Per client connection the proxy holds two relay buffers
# (buffer_size, 64 KiB per direction, allocated as traffic needs them), the
# session engine's state (plans, prepared statements, the catalog of the
# protected tables, the DEK handles) and libevent/socket structures: we
# allow 256 KiB per connection, plus 64 MiB for ASan's quarantine (limited to
# 32 MiB below so that the figure means something) and allocator slack — for
# 500 clients 189 MiB over the baseline. Measured (ASan build, 2 shared
# cores, 500 clients): 29 MB before, 71 MB with every client connected, a
# plateau of 123 MB under load after ~2 minutes, peak 134 MB in a 300 s run
# (the "load: summary" line prints the figures of each run).
#
# Protected values come from tests/clients/canary.py (leak canaries).
set -u
source "$(dirname "$0")/../lib/harness.sh"

PY=/usr/bin/python3
LOAD_PY="$HARNESS_ROOT/tests/clients/load.py"
CONNS="${LOAD_CONNS:-500}"
SECS="${LOAD_SECONDS:-20}"
PER_CONN_KB=256
BUDGET_MB="${LOAD_RSS_BUDGET_MB:-$(((CONNS * PER_CONN_KB) / 1024 + 64))}"
DRIFT_MB="${LOAD_RSS_DRIFT_MB:-48}"
"$PY" -c 'import asyncpg, psycopg' 2>/dev/null ||
    fail "asyncpg and psycopg 3 must be importable by $PY (apt-get install python3-asyncpg python3-psycopg)"

# Two fds per client in the proxy (client + upstream), one per backend's
# client in this shell's children: make sure the soft limit allows it.
need_fds=$((2 * CONNS + 256))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need_fds" ]; then
    ulimit -n "$need_fds" 2>/dev/null || fail "open file limit $(ulimit -n) < $need_fds and cannot be raised (ulimit -Hn $(ulimit -Hn))"
fi

pgh_start --conf "max_connections = $((CONNS + 100))"
T="$PGH_TMP/load"
mkdir -p "$T"
phx_encrypt_config "$T" "encrypt:
  load_items:
    - email: deterministic
    - note
    - { column: doc, mode: randomized, type: jsonb }
    - { column: amount, mode: ope, type: int8 }
    - { column: due, mode: ope, type: date }"
# ASan's quarantine (freed memory held back to catch use-after-free) counts
# in RSS: keep it small so that RSS reflects what the proxy holds.
export ASAN_OPTIONS="quarantine_size_mb=32${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
phx_start --config "$CFG" --log-level warn
export PGPASSWORD=scram_pw
PROXY="host=127.0.0.1 port=$PHX_PORT dbname=$PGH_DB user=phantom_scram sslmode=disable connect_timeout=10"
DIRECT="host=127.0.0.1 port=$PGH_PORT dbname=$PGH_DB user=phantom_scram sslmode=disable connect_timeout=10"

out=$(timeout 60 psql -X -q -v ON_ERROR_STOP=1 "$PROXY" 2>&1 <<'EOF'
CREATE TABLE load_items (
    id     bigint PRIMARY KEY,
    owner  int NOT NULL,
    email  text NOT NULL UNIQUE,
    note   text,
    doc    jsonb,
    amount bigint NOT NULL,
    due    date NOT NULL,
    ver    int NOT NULL
);
CREATE INDEX load_items_owner_idx ON load_items (owner);
CREATE TABLE load_twin (
    id       bigint PRIMARY KEY,
    owner    int NOT NULL,
    email_h  text NOT NULL,
    note_h   text,
    doc_h    text,
    amount_h text NOT NULL,
    due      date NOT NULL,
    ver      int NOT NULL
);
SELECT count(*) FROM load_items;
EOF
) || fail "schema through the proxy: $out"
types=$(timeout 30 psql -X -At "$DIRECT" -c "select string_agg(column_name || ':' || data_type, ' ' order by ordinal_position)
    from information_schema.columns where table_name = 'load_items'")
assert_eq "id:bigint owner:integer email:bytea note:bytea doc:bytea amount:bytea due:bytea ver:integer" "$types" \
    "load_items created through the proxy: protected columns stored as bytea"

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$PHX_PID/status" 2>/dev/null; }
echo "load: $CONNS clients for ${SECS}s through $PHANTOM_BIN (pid $PHX_PID), proxy VmRSS $(($(rss_kb) / 1024)) MB before"

t0=$SECONDS
timeout $((SECS + 600)) "$PY" "$LOAD_PY" --proxy-port "$PHX_PORT" --direct-port "$PGH_PORT" --db "$PGH_DB" \
    --user phantom_scram --password scram_pw --proxy-pid "$PHX_PID" --conns "$CONNS" --seconds "$SECS" \
    --report "$T/report.json" 2>&1 | tee "$T/load.log" | grep --line-buffered -v '^  '
rc=${PIPESTATUS[0]}
kill -0 "$PHX_PID" 2>/dev/null || fail "the proxy died during the load run"
[ -s "$T/report.json" ] || fail "load.py wrote no report (exit $rc)"
[ "$rc" -eq 0 ] || fail "load.py reported errors (exit $rc): the 'load ERROR' lines above"
ok "$CONNS clients, ${SECS}s of mixed encrypted reads and writes: no error, every result as the client expected ($((SECONDS - t0))s)"

r() { "$PY" -c 'import json, sys; v = json.load(open(sys.argv[1]))[sys.argv[2]]; print("" if v is None else v)' "$T/report.json" "$1"; }
assert_eq "$CONNS" "$(r backends_all_connected)" "pg_stat_activity: $CONNS phantom_load backends with every client connected"
assert_eq "$CONNS" "$(r backends_via_proxy_sockets)" "all of them connected from the proxy's own upstream sockets"
[ "$(r backends_peak)" -ge "$CONNS" ] || fail "peak phantom_load backends $(r backends_peak) < $CONNS"
ok "peak backends during the run: $(r backends_peak)"
ops=$(r operations)
[ "$ops" -ge "$CONNS" ] || fail "only $ops operations for $CONNS clients"
[ "$(r rows_checked)" -gt 0 ] || fail "no row left to compare at the end"
assert_eq "$(r rows_checked)" "$(r rows_final)" "final table through the proxy: $(r rows_final) rows, equal to the clients' state and the twin"
assert_eq "$(r proxy_fds_before)" "$(r proxy_fds_after)" "proxy fds back to the pre-run count once the clients closed (peak $(r proxy_fds_peak))"
assert_eq 0 "$(r backends_after)" "no phantom_load backend left"
assert_eq 0 "$(r rows_not_envelopes)" "read directly, every protected value in load_items is an envelope"

before=$(r proxy_rss_mb_before)
peak=$(r proxy_rss_mb_peak)
q1=$(r proxy_rss_mb_load_first_quarter)
last=$(r proxy_rss_mb_load_last)
end=$(r proxy_rss_mb_after_close)
[ $((peak - before)) -le "$BUDGET_MB" ] ||
    fail "proxy VmRSS peak $peak MB is $((peak - before)) MB over the baseline $before MB (budget $BUDGET_MB MB for $CONNS connections)"
ok "proxy VmRSS peak $peak MB = baseline $before MB + $((peak - before)) MB (budget $BUDGET_MB MB)"
[ $((last - q1)) -le "$DRIFT_MB" ] ||
    fail "proxy VmRSS grew from $q1 MB (first quarter) to $last MB (end of the run): more than $DRIFT_MB MB"
ok "proxy VmRSS steady under load: $q1 MB (first quarter peak) -> $last MB (last sample), drift bound $DRIFT_MB MB"

echo "load: summary clients=$CONNS seconds=$(r load_seconds) connect_s=$(r connect_seconds) operations=$ops" \
    "statements=$(r statements) statements_per_s=$(r statements_per_s) p50_ms=$(r op_latency_ms_p50)" \
    "p99_ms=$(r op_latency_ms_p99) rss_mb_before=$before rss_mb_peak=$peak rss_mb_end_of_load=$(r proxy_rss_mb_end_of_load)" \
    "rss_mb_after_close=$end fds_peak=$(r proxy_fds_peak) backends_peak=$(r backends_peak) rows_final=$(r rows_final)"

phx_stop || fail "proxy exit after the load run"
ok "proxy exited cleanly after the load run"
