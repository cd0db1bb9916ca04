#!/usr/bin/env bash
# SIGTERM drain.
#
# 1. Graceful: with --shutdown-timeout 20s, SIGTERM while
#      A (psycopg) and R (raw protocol) are inside "begin; insert; select
#      pg_sleep(2)" (statement in flight),
#      C is idle inside a transaction (commits once the idle sessions are gone),
#      B1 is an idle session that has run queries, B2 an idle session that
#      only logged in with SCRAM, B3 an idle raw trust session,
#      S has connected but sent nothing yet:
#    A's and R's statements complete, they can go on with their transaction
#    and COMMIT succeeds (rows visible directly); C's COMMIT succeeds; once A,
#    R and C are idle they are closed (R sees exactly: ... ReadyForQuery I,
#    then FATAL 57P01 "phantom: terminating connection: proxy shutting
#    down", then EOF); B1-B3 are closed at once (B3 sees that 57P01); S is
#    closed; new connections are refused; the proxy exits 0 soon after the
#    last transaction, far before the 20 s timeout.
#    (The goodbye text is asserted on raw sessions only: libpq may report just
#    "server closed the connection" when it reads the FATAL and EOF together.)
# 2. Timeout: with --shutdown-timeout 1s and a session in pg_sleep(10), the
#    proxy exits after about 1 s; the session gets a FATAL from the proxy.
# 3. Second signal: default timeout (30 s), a session in pg_sleep(10), two
#    SIGTERMs: the proxy closes everything and exits at once.
set -u
source "$(dirname "$0")/../lib/harness.sh"

pgh_start
T="$PGH_TMP"
PY=/usr/bin/python3
export PGPASSWORD=scram_pw
pgh_admin_psql -d "$PGH_DB" -q -c "create table drain_t (id int, who text); grant all on drain_t to public" ||
    fail "set-up failed"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# wait_exit PID MAX_SECONDS: waits for the proxy to exit; sets EXIT_MS (time
# since $SIG_MS) and EXIT_STATUS.
wait_exit() {
    local pid="$1" max="$2" i
    for ((i = 0; i < max * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null && fail "proxy still running ${max}s after SIGTERM"
    EXIT_MS=$(($(now_ms) - SIG_MS))
    wait "$pid"
    EXIT_STATUS=$?
}
wait_query() { # SQL-condition on pg_stat_activity: wait until true
    for _ in $(seq 1 200); do
        [ "$(pgh_admin_psql -At -d "$PGH_DB" -c "select count(*) > 0 from pg_stat_activity where $1")" = t ] && return 0
        sleep 0.05
    done
    return 1
}

cat >"$T/wire.py" <<'PY'
# wire.py PORT MODE: raw protocol sessions (trust login), so that exactly what
# the proxy sends is seen. Prints "ready" once set up, then one line:
#   idle     an idle session: "closed|reset <messages>"
#   silent   a connection that never sends anything: "closed|reset <messages>"
#   inflight "begin; insert; select pg_sleep(2)" in flight when the test signals,
#            then "commit": "<tags> | closed|reset <messages>"
import socket, struct, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=30)
buf = b""
def read_msgs(until_ready):
    """Messages until ReadyForQuery (until_ready) or EOF; returns (list, how)."""
    global buf
    out = []
    while True:
        while len(buf) >= 5 and len(buf) >= 1 + struct.unpack("!I", buf[1:5])[0]:
            n = struct.unpack("!I", buf[1:5])[0]
            t, body, buf = buf[:1], buf[5:1 + n], buf[1 + n:]
            if t == b"E":
                f = dict((x[:1].decode(), x[1:].decode()) for x in body.split(b"\0") if x)
                out.append("E[%s %s %s]" % (f.get("S"), f.get("C"), f.get("M")))
            elif t == b"C":
                out.append("C[%s]" % body.rstrip(b"\0").decode())
            elif t == b"Z":
                out.append("Z[%s]" % body.decode())
                if until_ready:
                    return out, "ready"
            elif t not in (b"T", b"D", b"S", b"K", b"R", b"N"):
                out.append(t.decode("latin1"))
        try:
            c = s.recv(65536)
        except ConnectionResetError:
            return out, "reset"
        if not c:
            return out, "closed"
        buf += c
def query(sql):
    q = sql.encode() + b"\0"
    s.sendall(b"Q" + struct.pack("!I", 4 + len(q)) + q)
if mode != "silent":
    body = struct.pack("!I", 196608) + b"user\0phantom_trust\0database\0phantom\0\0"
    s.sendall(struct.pack("!I", len(body) + 4) + body)
    read_msgs(True)
prefix = ""
if mode == "inflight":
    query("begin; insert into drain_t values (5, 'r'); select pg_sleep(2)")
    print("sleeping", flush=True)
    m1, _ = read_msgs(True)
    query("insert into drain_t values (6, 'r'); commit")
    m2, _ = read_msgs(True)
    prefix = " ".join(m1 + m2) + " | "
else:
    print("ready", flush=True)
m, how = read_msgs(False)
print((prefix + how + " " + " ".join(m)).strip())
PY

cat >"$T/client.py" <<'PY'
# client.py ROLE DSN: see the cases below; prints one line per step, flushed.
import select, sys, time, psycopg
role, dsn = sys.argv[1], sys.argv[2]
def say(*a):
    print(*a, flush=True)
def after_close(conn):
    # Once the session is idle the proxy must close it: the socket becomes
    # readable (goodbye + EOF) within 3 s. (The goodbye text itself is checked
    # with raw sessions: libpq may report only "server closed the connection".)
    r, _, _ = select.select([conn.fileno()], [], [], 3)
    if not r:
        say("still open after 3s")
        return
    try:
        conn.execute("select 1")
        say("still open")
    except psycopg.Error as e:
        say("closed:", " / ".join(l.strip() for l in str(e).strip().splitlines()))

if role == "inflight":  # A
    conn = psycopg.connect(dsn + " application_name=drain_a")
    conn.execute("insert into drain_t values (1, 'a')")
    say("sleeping")
    t0 = time.monotonic()
    conn.execute("select pg_sleep(2)")
    say("statement done after %.1fs" % (time.monotonic() - t0))
    conn.execute("insert into drain_t values (2, 'a')")  # the transaction goes on
    conn.commit()
    say("committed")
    after_close(conn)
elif role == "idle_in_txn":  # C
    conn = psycopg.connect(dsn + " application_name=drain_c")
    conn.execute("insert into drain_t values (3, 'c')")
    say("in transaction")
    sys.stdin.readline()  # the test says when (after SIGTERM)
    conn.execute("insert into drain_t values (4, 'c')")
    conn.commit()
    say("committed")
    after_close(conn)
elif role in ("idle_used", "idle_fresh"):  # B1, B2
    conn = psycopg.connect(dsn + " application_name=drain_" + role, autocommit=True)
    if role == "idle_used":
        conn.execute("select 1")
    say("ready")
    # Within 3 s the proxy must have said goodbye; if not, this client gives
    # up and disconnects (so a failure here does not hold up the drain).
    after_close(conn)
elif role == "sleep10":
    conn = psycopg.connect(dsn + " application_name=drain_sleep", autocommit=True)
    say("sleeping")
    t0 = time.monotonic()
    try:
        conn.execute("select pg_sleep(10)")
        say("slept")
    except psycopg.Error as e:
        say("error after %.1fs:" % (time.monotonic() - t0), " / ".join(l.strip() for l in str(e).strip().splitlines()))
PY

# start_client NAME ROLE: runs client.py through the current proxy, output in $T/NAME.
start_client() {
    timeout 60 "$PY" "$T/client.py" "$2" "host=127.0.0.1 port=$PHX_PORT dbname=$PGH_DB user=phantom_scram sslmode=disable" \
        >"$T/$1" 2>&1 <"${3:-/dev/null}" &
    eval "PID_$1=\$!"
}
wait_line() { # FILE TEXT
    for _ in $(seq 1 200); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    fail "waiting for [$2] in $1: $(cat "$1" 2>/dev/null)"
}

# ============================ 1. graceful drain ================================
phx_start --shutdown-timeout 20s
P1_STOP="$PHX_PID $PHX_LOG $PHX_ASAN_DIR"
P1_PID=$PHX_PID P1_PORT=$PHX_PORT
mkfifo "$T/c_ctl"
start_client A inflight
start_client C idle_in_txn "$T/c_ctl"
exec 7>"$T/c_ctl"
start_client B1 idle_used
start_client B2 idle_fresh
timeout 60 "$PY" "$T/wire.py" "$PHX_PORT" idle >"$T/B3" 2>&1 &
PID_B3=$!
timeout 60 "$PY" "$T/wire.py" "$PHX_PORT" silent >"$T/S" 2>&1 &
PID_S=$!
timeout 60 "$PY" "$T/wire.py" "$PHX_PORT" inflight >"$T/R" 2>&1 &
PID_R=$!
for f in C B1 B2 B3 S; do wait_line "$T/$f" "ready\|in transaction"; done
wait_line "$T/A" sleeping
wait_line "$T/R" sleeping
wait_query "application_name = 'drain_a' and state = 'active' and query like '%pg_sleep%'" ||
    fail "A's pg_sleep did not start"
wait_query "usename = 'phantom_trust' and state = 'active' and query like '%pg_sleep%'" ||
    fail "the raw session's pg_sleep did not start"

SIG_MS=$(now_ms)
kill -TERM "$P1_PID"
# New connections are refused (the listening sockets are closed at once;
# allow the signal a moment to arrive).
sleep 0.3
for _ in $(seq 1 30); do
    out=$(timeout 10 psql -X -w -At "host=127.0.0.1 port=$P1_PORT dbname=$PGH_DB user=phantom_scram" -c "select 1" 2>&1)
    rc=$?
    [ "$rc" -ne 0 ] || fail "a new session was served during the drain"
    case "$out" in *"Connection refused"*) break ;; esac
    sleep 0.1
done
assert_contains "$out" "Connection refused" "new connection during the drain: refused"
kill -0 "$P1_PID" 2>/dev/null || fail "the proxy exited before A finished its transaction"
ok "proxy still running while A's statement is in flight"

# Idle sessions are closed at once.
wait "$PID_B3"
assert_eq "closed E[FATAL 57P01 phantom: terminating connection: proxy shutting down]" "$(tail -n1 "$T/B3")" \
    "idle session (raw): 57P01 proxy shutting down"
wait "$PID_S"
assert_eq "closed" "$(tail -n1 "$T/S")" "connection that had sent nothing: closed"
wait "$PID_B1"
assert_contains "$(sed -n 2p "$T/B1")" "closed:" "idle session that had run queries (libpq): closed"

# B2: an idle session that never ran a query (only the SCRAM exchange) is
# idle too. (Checked without stopping the test, so that the rest still runs.)
wait "$PID_B2"
out=$(sed -n 2p "$T/B2")
if [[ "$out" == "closed:"* ]]; then
    ok "idle session that only logged in (SCRAM): closed"
else
    echo "FAIL - idle session that only logged in (SCRAM) was not closed by the drain: [$out]" >&2
    _PGH_FAILED=1 # harness: the script exits non-zero at the end
fi

# C, idle in a transaction, may still finish it.
echo go >&7
exec 7>&-
wait "$PID_C"
out=$(cat "$T/C")
assert_contains "$out" "committed" "idle-in-transaction session: COMMIT during the drain succeeds"
assert_contains "$out" "closed:" "idle-in-transaction session: closed once its transaction ended"

wait "$PID_A"
out=$(cat "$T/A")
secs=$(grep -oE 'statement done after [0-9.]+' <<<"$out" | grep -oE '[0-9.]+$')
[ -n "$secs" ] && [ "$(echo "$secs >= 1.8" | bc)" = 1 ] || fail "A's statement did not complete normally: [$out]"
ok "in-flight statement completed ($(grep -o 'after .*' <<<"$out" | head -n1))"
assert_contains "$out" "committed" "in-flight transaction: further statement and COMMIT succeed"
assert_contains "$out" "closed:" "A: closed once idle"
wait "$PID_R"
assert_eq "C[BEGIN] C[INSERT 0 1] C[SELECT 1] Z[T] C[INSERT 0 1] C[COMMIT] Z[I] | closed E[FATAL 57P01 phantom: terminating connection: proxy shutting down]" \
    "$(tail -n1 "$T/R")" "raw in-flight transaction: statement completes, COMMIT succeeds, then 57P01 and close"
assert_eq "1 a,2 a,3 c,4 c,5 r,6 r" "$(pgh_admin_psql -At -d "$PGH_DB" -c "select string_agg(id || ' ' || who, ',' order by id) from drain_t")" \
    "both transactions committed"

wait_exit "$P1_PID" 20
assert_eq "0" "$EXIT_STATUS" "proxy exit status after the drain"
[ "$EXIT_MS" -lt 8000 ] || fail "proxy exited ${EXIT_MS} ms after SIGTERM (timeout 20 s)"
ok "proxy exited ${EXIT_MS} ms after SIGTERM, well before the 20 s shutdown timeout"

phx_stop $P1_STOP || fail "proxy 1: sanitizer report or bad exit"

# ============================ 2. shutdown timeout ================================
phx_start --shutdown-timeout 1s
P2_STOP="$PHX_PID $PHX_LOG $PHX_ASAN_DIR"
P2_PID=$PHX_PID
start_client L sleep10
wait_line "$T/L" sleeping
wait_query "application_name = 'drain_sleep' and state = 'active' and query like '%pg_sleep%'" || fail "pg_sleep(10) did not start"
SIG_MS=$(now_ms)
kill -TERM "$P2_PID"
wait_exit "$P2_PID" 10
[ "$EXIT_MS" -ge 900 ] && [ "$EXIT_MS" -lt 4000 ] || fail "--shutdown-timeout 1s: proxy exited after ${EXIT_MS} ms"
ok "--shutdown-timeout 1s: proxy exited after ${EXIT_MS} ms with a 10 s statement in flight"
assert_eq "0" "$EXIT_STATUS" "exit status after the shutdown timeout"
wait "$PID_L"
assert_contains "$(cat "$T/L")" "phantom: terminating connection: proxy shutdown timeout reached" \
    "the unfinished session got the proxy's FATAL"
phx_stop $P2_STOP || fail "proxy 2: sanitizer report or bad exit"

# ============================ 3. second signal ================================
phx_start
P3_STOP="$PHX_PID $PHX_LOG $PHX_ASAN_DIR"
P3_PID=$PHX_PID
start_client M sleep10
wait_line "$T/M" sleeping
wait_query "application_name = 'drain_sleep' and state = 'active' and query like '%pg_sleep%'" || fail "pg_sleep(10) did not start"
SIG_MS=$(now_ms)
kill -TERM "$P3_PID"
sleep 0.3
kill -0 "$P3_PID" 2>/dev/null || fail "proxy exited on the first SIGTERM with a statement in flight"
kill -TERM "$P3_PID"
wait_exit "$P3_PID" 10
[ "$EXIT_MS" -lt 2500 ] || fail "second SIGTERM: proxy exited after ${EXIT_MS} ms"
ok "second SIGTERM: proxy exited after ${EXIT_MS} ms"
assert_eq "0" "$EXIT_STATUS" "exit status after a second signal"
wait "$PID_M"
grep -q "error after" "$T/M" || fail "session in flight during the second signal: no error: $(cat "$T/M")"
ok "session in flight got: $(grep -o 'error after.*' "$T/M")"
phx_stop $P3_STOP || fail "proxy 3: sanitizer report or bad exit"
