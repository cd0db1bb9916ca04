#!/usr/bin/env bash
# node-postgres (pg) through the proxy: simple and extended (parameterised)
# queries, named prepared statements, types with text and binary results,
# transactions, SQLSTATEs and error fields, a pool of 5 clients running 200
# concurrent queries, 8 clients interleaving multi-row results, a 200k-row
# result, multi-megabyte values, LISTEN/NOTIFY, notices, SCRAM and MD5 logins,
# and a quiet close after Terminate. The checks live in
# tests/clients/node/suite.js; pg is pinned by tests/clients/node/package-lock.json
# (installed with npm ci when node_modules is missing).
#
# The suite runs twice, against two proxies in front of one TLS-capable server:
#   1. plaintext on both legs (--sslmode disable, no client TLS);
#   2. TLS on both legs (pg verifies the proxy's certificate for "localhost",
#      the proxy verify-full's the server), plus wrong-CA and channel-binding
#      checks (see the KNOWN LIMIT in test_tls.sh).
set -u
source "$(dirname "$0")/../lib/harness.sh"

NODE_DIR="$HARNESS_ROOT/tests/clients/node"
command -v node >/dev/null || fail "node is not installed"
# pg_version FILE: the version of node_modules/pg recorded in a package-lock.json
pg_version() {
    node -e 'try { console.log(require(process.argv[1]).packages["node_modules/pg"].version) } catch (e) {}' "$1"
}
want_pg=$(pg_version "$NODE_DIR/package-lock.json")
[ -n "$want_pg" ] || fail "no pg version in $NODE_DIR/package-lock.json"
have_pg=$(cd "$NODE_DIR" && node -e 'try { console.log(require("pg/package.json").version) } catch (e) {}')
if [ "$have_pg" != "$want_pg" ]; then # missing, or installed from an older lock file
    (cd "$NODE_DIR" && timeout 300 npm ci --no-audit --no-fund >"$PGH_TMP/npm.log" 2>&1) ||
        { cat "$PGH_TMP/npm.log" >&2; fail "npm ci in $NODE_DIR failed"; }
fi

pgh_start --ssl
T="$PGH_TLS_DIR"

# run_suite NAME [ENV=VALUE...]
run_suite() {
    local name="$1"
    shift
    echo "# node suite: $name"
    env PGDATABASE="$PGH_DB" PROXY_PORT="$PHX_PORT" DIRECT_PORT="$PGH_PORT" "$@" \
        timeout 120 node "$NODE_DIR/suite.js"
    local rc=$?
    [ "$rc" -eq 124 ] && fail "node suite ($name) timed out"
    [ "$rc" -eq 0 ] || fail "node suite ($name) failed (exit $rc)"
    ok "node suite ($name)"
}

phx_start --sslmode disable
run_suite "plaintext both legs"
phx_stop || fail "proxy did not shut down cleanly after the plaintext run (see above)"
ok "proxy shut down cleanly after the plaintext run"

CONF="$PGH_TMP/phantom-tls.yaml"
pgh_tls_conf "$CONF"
phx_start --config "$CONF"
run_suite "TLS both legs" PROXY_TLS_CA="$T/ca.crt" PROXY_OTHER_CA="$T/other-ca.crt"
phx_stop || fail "proxy did not shut down cleanly after the TLS run (see above)"
ok "proxy shut down cleanly after the TLS run"
