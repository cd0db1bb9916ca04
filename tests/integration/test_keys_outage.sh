#!/usr/bin/env bash
# tests/integration/test_keys_outage.sh — the proxy when its KEK provider is
# unreachable (issue 7), against the OpenBao Transit test double
# (tests/doubles/openbao_transit.py over http on loopback, with a state file
# so that a double killed and started again serves the same Transit key):
#   (b) outage after start, keys.cache_ttl 2s: refreshes re-unwrap through
#       the KEK (audited dek.load); the double is killed; protected queries
#       keep working until the TTL, then fail with SQLSTATE 58000 and the
#       "encryption keys are unavailable" message while unprotected ones are
#       still served (serve-unprotected); the double comes back and service
#       recovers without a restart; a connection opened before the outage is
#       used throughout and stays usable;
#   (a) double down at proxy start: the proxy starts (fails closed); a
#       protected query is refused with the error and never reaches the
#       server (PostgreSQL logs every statement: neither its marker nor its
#       canary value is in the log); an unprotected one is served with
#       when_unavailable: serve-unprotected and refused with refuse; the
#       double starts and within seconds protected queries work;
#   plus check-config on the new setting and the proxy's log lines.
# Protected values come from tests/lib/canary.sh. Runs in about 25 s.
set -u
. "$(dirname "$0")/../lib/harness.sh"

P="$PHANTOM_BIN"
ROOT="$HARNESS_ROOT"
T="$PGH_TMP/ko"
mkdir -p "$T"
PY=/usr/bin/python3
TOKEN="s.phantom-outage-token"
umask 077
printf '%s\n' "$TOKEN" >"$T/bao-token"
umask 022

pgh_start

# ---- the Transit double: fixed port, state file, restartable ---------------------------------
BAO_PORT="$(pgh_free_port)" || fail "no free port"
DOUBLE_PID=""
start_double() {
    : >"$T/double.out"
    "$PY" "$ROOT/tests/doubles/openbao_transit.py" --host 127.0.0.1 --port "$BAO_PORT" \
        --token "$TOKEN" --state-file "$T/double-state.json" >"$T/double.out" 2>>"$T/double.log" &
    DOUBLE_PID=$!
    for _ in $(seq 1 100); do
        grep -q '^LISTENING ' "$T/double.out" && return 0
        kill -0 "$DOUBLE_PID" 2>/dev/null || break
        sleep 0.05
    done
    cat "$T/double.log" >&2
    fail "the Transit double did not start on port $BAO_PORT"
}
stop_double() {
    [ -n "$DOUBLE_PID" ] || return 0
    kill "$DOUBLE_PID" 2>/dev/null
    wait "$DOUBLE_PID" 2>/dev/null
    DOUBLE_PID=""
}
pgh_defer 'stop_double'
start_double
ok "Transit double listening on 127.0.0.1:$BAO_PORT"

# ---- configuration and keys ---------------------------------------------------------------------
write_cfg() { # FILE POLICY
    cat >"$1" <<EOF
keys:
  keyring: $T/keyring.json
  provider: openbao
  openbao:
    address: http://127.0.0.1:$BAO_PORT
    key: phantom
    token_file: $T/bao-token
    timeout_ms: 2000
  cache_ttl: 2s
  when_unavailable: $2
encrypt:
  customers:
    - email: deterministic
    - full_name
EOF
}
write_cfg "$T/serve.yaml" serve-unprotected
write_cfg "$T/refuse.yaml" refuse
write_cfg "$T/bad.yaml" serve-some

"$P" keys init-kek -c "$T/serve.yaml" >"$T/keys.log" 2>&1 || { cat "$T/keys.log" >&2; fail "keys init-kek"; }
"$P" keys create -c "$T/serve.yaml" >>"$T/keys.log" 2>&1 || { cat "$T/keys.log" >&2; fail "keys create"; }
for f in serve refuse; do
    out="$("$P" check-config --keys "$T/$f.yaml" 2>&1)" || fail "check-config $f.yaml: $out"
done
ok "check-config --keys accepts when_unavailable: serve-unprotected and refuse"
out="$("$P" check-config "$T/bad.yaml" 2>&1)"
rc=$?
assert_eq 1 "$rc" "check-config refuses an unknown when_unavailable"
assert_contains "$out" "$T/bad.yaml:10: keys: when_unavailable must be refuse or serve-unprotected" \
    "the refusal names the file and line"

# ---- a SQL client that keeps its connections (psycopg, autocommit) --------------------------------
cat >"$T/client.py" <<'PYEOF'
import sys
import psycopg

conns = {}
for line in sys.stdin:
    cmd, name, arg = line.rstrip("\n").split(" ", 2)
    try:
        if cmd == "open":
            conns[name] = psycopg.connect(arg, autocommit=True, connect_timeout=10)
            out = "OK"
        else:
            c = conns[name]
            cur = c.execute(arg)
            rows = cur.fetchall() if cur.description else []
            out = "OK " + ",".join(str(v) for r in rows for v in r)
    except psycopg.Error as e:
        c = conns.get(name)
        state = "closed" if c is None or c.closed else "open"
        msg = (e.diag.message_primary or str(e)).replace("\n", " ")
        out = "ERR %s %s %s" % (e.sqlstate, state, msg)
    print(out, flush=True)
PYEOF
coproc CLI { "$PY" "$T/client.py" 2>"$T/client.err"; }
CLI_PID=$CLI_PID
pgh_defer "kill $CLI_PID 2>/dev/null; true"
# sql CONN "SQL": sets R to the client's answer ("OK v,..." or "ERR state open|closed message")
sql() {
    printf 'q %s %s\n' "$1" "$2" >&"${CLI[1]}"
    R=""
    IFS= read -r -t 20 R <&"${CLI[0]}" || fail "the SQL client did not answer ($(cat "$T/client.err"))"
}
sql_open() { # CONN PORT
    printf 'open %s host=127.0.0.1 port=%s dbname=phantom user=phantom_scram password=scram_pw\n' \
        "$1" "$2" >&"${CLI[1]}"
    R=""
    IFS= read -r -t 20 R <&"${CLI[0]}" || fail "the SQL client did not answer ($(cat "$T/client.err"))"
    assert_eq OK "$R" "connection $1 to port $2"
}
# until_sql SECONDS CONN SQL PATTERN: repeats SQL until R matches PATTERN; elapsed ms in WAITED
until_sql() {
    local end=$((SECONDS + $1)) start
    start=$(date +%s%N)
    while :; do
        sql "$2" "$3"
        # shellcheck disable=SC2053
        [[ "$R" == $4 ]] && break
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.1
    done
    WAITED=$((($(date +%s%N) - start) / 1000000))
}
KEYS_MSG="phantom: encryption keys are unavailable (key provider unreachable since "
expect_keys_error() { # REPLY WHAT MESSAGE-TAIL
    assert_contains "$1" "ERR 58000 open $KEYS_MSG" "$2: SQLSTATE 58000, the keys message, connection open"
    [[ "$1" =~ since\ [0-9]{2}:[0-9]{2}:[0-9]{2}\ UTC\)\;\  ]] || fail "$2: no time in [$1]"
    assert_contains "$1" "$3" "$2: says what is refused"
}

# ---- (b) outage after start -------------------------------------------------------------------------
phx_start --config "$T/serve.yaml"
A_PORT=$PHX_PORT A_LOG=$PHX_LOG
EMAIL="$(canary_email outage)"
NAME="$(canary_text outage)"
sql_open c1 "$A_PORT"
sql c1 "CREATE TABLE customers (id int PRIMARY KEY, email text, full_name text)"
assert_eq "OK " "$R" "create the protected table through the proxy"
sql c1 "CREATE TABLE notes (id int PRIMARY KEY, body text)"
sql c1 "INSERT INTO notes VALUES (1, 'plain note')"
sql c1 "INSERT INTO customers VALUES (1, '$EMAIL', '$NAME')"
assert_eq "OK " "$R" "insert protected values"
PROT="SELECT full_name FROM customers WHERE email = '$EMAIL'"
sql c1 "$PROT"
assert_eq "OK $NAME" "$R" "protected lookup through the proxy"

AUDIT="$T/keyring.json.audit.jsonl"
loads() { grep -c '"event":"dek.load","outcome":"ok"' "$AUDIT"; }
n1="$(loads)"
sleep 1.6
n2="$(loads)"
[ "$n2" -gt "$n1" ] || fail "no refresh within 1.6 s (dek.load ok: $n1 -> $n2)"
ok "the keys are re-unwrapped through the KEK every TTL/2 (audited dek.load: $n1 -> $n2)"

stop_double
sql c1 "$PROT"
assert_eq "OK $NAME" "$R" "double killed: the loaded keys still serve (c1)"
sql_open c2 "$A_PORT"
sql c2 "$PROT"
assert_eq "OK $NAME" "$R" "double killed: a new connection is served too"
until_sql 6 c1 "$PROT" "ERR *" || fail "the keys never expired: $R"
expect_keys_error "$R" "keys expired" "statements on protected tables are refused"
[ "$WAITED" -le 3000 ] || fail "keys served ${WAITED} ms after the double died (TTL 2 s)"
ok "protected queries refused ${WAITED} ms after the double died (TTL 2 s)"
sql c2 "SELECT body FROM notes WHERE id = 1"
assert_eq "OK plain note" "$R" "unprotected queries are still served (serve-unprotected)"
sql c2 "INSERT INTO customers VALUES (2, '$(canary_email outage)', 'x')"
expect_keys_error "$R" "an INSERT while the keys are gone" "statements on protected tables"
grep -q 'event="key provider unavailable"' "$A_LOG" || fail "no 'key provider unavailable' log line"
grep -q 'event="encryption keys expired and wiped"' "$A_LOG" || fail "no 'keys expired and wiped' log line"
ok "the proxy logged the provider down and the keys wiped"

start_double
until_sql 8 c1 "$PROT" "OK *" || fail "service did not recover after the double came back: $R"
assert_eq "OK $NAME" "$R" "the double is back: protected queries work again (c1, after ${WAITED} ms)"
sql c2 "$PROT"
assert_eq "OK $NAME" "$R" "and on c2"
grep -q 'event="key provider is back: encryption keys loaded"' "$A_LOG" ||
    fail "no 'key provider is back' log line"
ok "connections opened before the outage stayed usable throughout; recovery logged"
phx_stop "$PHX_PID" "$PHX_LOG" "$PHX_ASAN_DIR" || fail "proxy A did not stop cleanly"

# ---- (a) the double is down when the proxies start ---------------------------------------------
stop_double
phx_start --config "$T/serve.yaml"
B_PORT=$PHX_PORT B_PID=$PHX_PID B_LOG=$PHX_LOG B_ASAN=$PHX_ASAN_DIR
phx_start --config "$T/refuse.yaml"
C_PORT=$PHX_PORT C_PID=$PHX_PID C_LOG=$PHX_LOG C_ASAN=$PHX_ASAN_DIR
ok "both proxies started while the key provider is down"
grep -q 'event="key provider unavailable"' "$B_LOG" || fail "proxy B did not log the provider down"

MARK="outage-marker-$(canary_text mark)"
sql_open b1 "$B_PORT"
sql b1 "SELECT full_name /* $MARK */ FROM customers WHERE email = '$EMAIL'"
expect_keys_error "$R" "serve-unprotected, keys never loaded: protected query" \
    "statements on protected tables are refused"
NEWMAIL="$(canary_email outage)"
sql b1 "INSERT INTO customers VALUES (3, '$NEWMAIL', 'y')"
expect_keys_error "$R" "serve-unprotected: protected INSERT" "statements on protected tables"
sql b1 "SELECT body FROM notes WHERE id = 1"
assert_eq "OK plain note" "$R" "serve-unprotected: an unprotected query is served"
sql_open c3 "$C_PORT"
sql c3 "SELECT body FROM notes WHERE id = 1"
expect_keys_error "$R" "refuse: an unprotected query" \
    "every statement is refused until they are back (keys.when_unavailable: refuse)"
sql c3 "$PROT"
expect_keys_error "$R" "refuse: a protected query" "statements on protected tables are refused"
sleep 0.2 # the server's log is written asynchronously
grep -q "encryption keys are unavailable" "$PGH_LOG" ||
    fail "the refusals were not raised by the server (PostgreSQL log)"
for secret in "$MARK" "$NEWMAIL" "$EMAIL"; do
    grep -qF -- "$secret" "$PGH_LOG" && fail "a refused statement reached PostgreSQL: $secret in its log"
done
ok "refused statements never reached PostgreSQL (log_statement = all has none of them)"

start_double
until_sql 8 b1 "$PROT" "OK *" || fail "proxy B did not load its keys once the double started: $R"
assert_eq "OK $NAME" "$R" "the double started: protected queries work on B after ${WAITED} ms"
until_sql 8 c3 "SELECT body FROM notes WHERE id = 1" "OK *" || fail "proxy C still refuses: $R"
sql c3 "$PROT"
assert_eq "OK $NAME" "$R" "and everything works on C (same connections)"
phx_stop "$B_PID" "$B_LOG" "$B_ASAN" || fail "proxy B did not stop cleanly"
phx_stop "$C_PID" "$C_LOG" "$C_ASAN" || fail "proxy C did not stop cleanly"
