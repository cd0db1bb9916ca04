#!/usr/bin/env bash
# psycopg 3 through the proxy: types with text and binary parameters and
# results, multi-megabyte values, server-side prepared statements (prepare=True
# and prepare_threshold), executemany, pipeline mode, COPY, LISTEN/NOTIFY,
# notices, transactions, a 100k-row result, error pass-through and cancel
# requests. Every check compares with known values or with a direct connection;
# the checks live in tests/clients/psycopg_suite.py.
#
# The suite runs twice, against two proxies in front of one TLS-capable server:
#   1. plaintext on both legs (--sslmode disable, no client TLS);
#   2. TLS on both legs (client verify-full to the proxy, proxy verify-full to
#      the server). channel_binding=disable: see the KNOWN LIMIT in test_tls.sh.
set -u
source "$(dirname "$0")/../lib/harness.sh"

PY=/usr/bin/python3 # the Debian python that has psycopg 3
SUITE="$HARNESS_ROOT/tests/clients/psycopg_suite.py"
"$PY" -c 'import psycopg' 2>/dev/null || fail "psycopg 3 is not importable by $PY (apt-get install python3-psycopg)"

pgh_start --ssl
T="$PGH_TLS_DIR"
common="dbname=$PGH_DB user=phantom_scram password=scram_pw connect_timeout=10 application_name=phantom_psycopg_suite"
DIRECT_DSN="host=127.0.0.1 port=$PGH_PORT sslmode=disable $common"

# run_suite NAME PROXY_DSN EXPECT_TLS
run_suite() {
    echo "# psycopg suite: $1"
    timeout 120 "$PY" "$SUITE" --proxy "$2" --direct "$DIRECT_DSN" --expect-tls "$3"
    local rc=$?
    [ "$rc" -eq 124 ] && fail "psycopg suite ($1) timed out"
    [ "$rc" -eq 0 ] || fail "psycopg suite ($1) failed (exit $rc)"
    ok "psycopg suite ($1)"
}

# 1. plaintext both legs. sslmode=prefer towards the proxy: libpq sends an
# SSLRequest first (as most clients do) and the proxy answers 'N'.
phx_start --sslmode disable
run_suite "plaintext both legs" "host=127.0.0.1 port=$PHX_PORT sslmode=prefer $common" no
phx_stop || fail "proxy did not shut down cleanly after the plaintext run (see above)"
ok "proxy shut down cleanly after the plaintext run"

# 2. TLS both legs.
CONF="$PGH_TMP/phantom-tls.yaml"
pgh_tls_conf "$CONF"
phx_start --config "$CONF"
run_suite "TLS both legs" \
    "host=localhost port=$PHX_PORT sslmode=verify-full sslrootcert=$T/ca.crt channel_binding=disable $common" yes
phx_stop || fail "proxy did not shut down cleanly after the TLS run (see above)"
ok "proxy shut down cleanly after the TLS run"
