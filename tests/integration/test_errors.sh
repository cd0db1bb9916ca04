#!/usr/bin/env bash
# Faults: bad input from clients, limits, an unreachable or restarting target.
#
#   * garbage on the proxy port (random bytes, an HTTP request, a truncated
#     startup packet, startup lengths 2^31-1 and 4, protocol 2.0, data smuggled
#     after SSLRequest) and, after a successful login, a message of length
#     2^31-1, a message of length 2 (08P01, not "too big"), random bytes and a
#     truncated message: the proxy closes that connection at once, with a
#     FATAL ErrorResponse where the protocol allows one, frees the server
#     connection, and keeps serving (a normal query works afterwards; no
#     backend is left behind); Terminate: closed without an error;
#   * --max-connections 2: with two idle sessions a third gets SQLSTATE 53300
#     "phantom: too many connections"; closing one frees its slot;
#   * target down: "phantom: could not connect to target H:P: ..." (08001);
#     --connect-timeout 1s bounds a connect whose SYN is never answered (a
#     listener with a full backlog): the error comes after about 1 s;
#   * upstream restart: PostgreSQL stopped under an open session -> that
#     session gets the server's error; while it is down new sessions get
#     08001; after it is back the same proxy process serves new sessions;
#     the same outcome as a direct session; a backend killed with SIGKILL (no
#     goodbye) -> 08006 "phantom: lost connection to target";
#   * --max-message-size 1MiB: a result row of exactly the limit passes, one
#     byte more and select repeat('x', 2000000) fail with 54000 "phantom:
#     server message of N bytes exceeds max_message_size (1048576 bytes)", an
#     INSERT with a 2 MB literal fails with the "client message" variant; the
#     proxy keeps serving and the oversized session's backend goes away.
set -u
source "$(dirname "$0")/../lib/harness.sh"

pgh_start
phx_start
T="$PGH_TMP"
PY=/usr/bin/python3
export PGPASSWORD=scram_pw
MAIN_PORT=$PHX_PORT MAIN_PID=$PHX_PID MAIN_STOP="$PHX_PID $PHX_LOG $PHX_ASAN_DIR"

# q PORT SQL: one psql session, stdout+stderr.
q() {
    timeout 30 psql -X -w -At -v ON_ERROR_STOP=1 \
        "host=127.0.0.1 port=$1 dbname=$PGH_DB user=phantom_scram sslmode=disable connect_timeout=10" \
        -c "$2" 2>&1
}
backends() { # client backends of the test roles
    pgh_admin_psql -At -d postgres -c "select count(*) from pg_stat_activity where backend_type = 'client backend' and usename like 'phantom%'"
}
wait_backends() { # N: until N backends remain (sessions end asynchronously)
    for _ in $(seq 1 100); do
        [ "$(backends)" = "$1" ] && return 0
        sleep 0.05
    done
    return 1
}
serving() { # what
    kill -0 "$MAIN_PID" 2>/dev/null || fail "$1: the proxy died"
    assert_eq "42" "$(q "$MAIN_PORT" "select 42")" "$1: proxy still serves"
}

# --- raw protocol helper -------------------------------------------------------------
cat >"$T/wire.py" <<'PY'
# wire.py PORT MODE: sends MODE's bytes (after a trust login for *-after-auth
# modes), then reads until the proxy closes (10 s at most). Prints
# "closed|reset|open" and the messages received, ErrorResponse as
# E[severity sqlstate message].
import random, socket, struct, sys, time

def msgs(data):
    out, i = [], 0
    while i + 5 <= len(data):
        t, n = data[i:i+1], struct.unpack("!I", data[i+1:i+5])[0]
        if n < 4 or i + 1 + n > len(data):
            break
        body = data[i+5:i+1+n]
        if t == b"E":
            f = dict((x[:1].decode(), x[1:].decode("utf-8", "replace")) for x in body.split(b"\0") if x)
            out.append("E[%s %s %s]" % (f.get("S"), f.get("C"), f.get("M")))
        else:
            out.append("%s[%d]" % (t.decode("latin1"), len(body)))
        i += 1 + n
    if i < len(data):
        out.append("junk[%d bytes]" % (len(data) - i))
    return " ".join(out)

def read_all(s, timeout):
    data, end = b"", time.monotonic() + timeout
    while True:
        s.settimeout(max(0.01, end - time.monotonic()))
        try:
            c = s.recv(65536)
        except socket.timeout:
            return data, "open"
        except ConnectionResetError:
            return data, "reset"
        if not c:
            return data, "closed"
        data += c

def startup(user, db):
    body = struct.pack("!I", 196608) + b"user\0" + user + b"\0database\0" + db + b"\0\0"
    return struct.pack("!I", len(body) + 4) + body

def login(s):
    """Trust login; on failure prints what the proxy said and exits."""
    s.sendall(startup(b"phantom_trust", b"phantom"))
    data = b""
    while not (len(data) >= 6 and data[-6:-5] == b"Z"):
        try:
            c = s.recv(65536)
        except ConnectionResetError:
            c, how = b"", "reset"
        else:
            how = "closed"
        if not c:
            print((how + " " + msgs(data)).strip())
            sys.exit(0)
        data += c

port, mode = int(sys.argv[1]), sys.argv[2]
wait = float(sys.argv[3]) if len(sys.argv) > 3 else 10
s = socket.create_connection(("127.0.0.1", port), timeout=10)
rng = random.Random(20240601)
if mode == "random":
    s.sendall(rng.randbytes(4096))
elif mode == "http":
    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
elif mode == "truncated-startup":
    s.sendall(startup(b"phantom_trust", b"phantom")[:20]); s.shutdown(socket.SHUT_WR)
elif mode == "huge-startup":
    s.sendall(struct.pack("!II", 0x7fffffff, 196608) + b"user\0x\0")
elif mode == "tiny-startup":
    s.sendall(struct.pack("!I", 4))
elif mode == "protocol-2":
    s.sendall(struct.pack("!II", 8, 0x00020000))
elif mode == "ssl-smuggle":
    s.sendall(struct.pack("!II", 8, 80877103) + startup(b"phantom_trust", b"phantom"))
elif mode == "huge-after-auth":
    login(s); s.sendall(b"Q" + struct.pack("!I", 0x7fffffff) + b"select 1")
elif mode == "short-after-auth":
    login(s); s.sendall(b"Q" + struct.pack("!I", 2))
elif mode == "random-after-auth":
    login(s); s.sendall(b"\xff" + rng.randbytes(4095))
elif mode == "truncated-after-auth":
    login(s); s.sendall(b"Q" + struct.pack("!I", 100) + b"select"); s.shutdown(socket.SHUT_WR)
elif mode == "login":
    login(s)
elif mode == "query":  # wire.py PORT query WAIT SQL
    login(s); q = sys.argv[4].encode() + b"\0"; s.sendall(b"Q" + struct.pack("!I", 4 + len(q)) + q)
elif mode == "kill-backend":  # SIGKILL our own backend: it vanishes without a word
    import os, signal
    login(s)
    s.sendall(b"Q" + struct.pack("!I", 4 + 24) + b"select pg_backend_pid()\0")
    data = b""
    while not (len(data) >= 6 and data[-6:-5] == b"Z"):
        data += s.recv(65536)
    i = data.index(b"D")
    n = struct.unpack("!I", data[i+7:i+11])[0]
    os.kill(int(data[i+11:i+11+n]), signal.SIGKILL)
elif mode == "terminate":
    login(s); s.sendall(b"X\0\0\0\4")
else:
    sys.exit("unknown mode " + mode)
data, how = read_all(s, wait)
print((how + " " + msgs(data)).strip())
PY
wire() { timeout 30 "$PY" "$T/wire.py" "$@" 2>&1; }

base=$(backends)
assert_eq "open" "$(wire "$MAIN_PORT" login 0.5)" "raw login through the proxy (helper check)"

# --- garbage before and after the startup ---------------------------------------------
# expect MODE REGEX: the proxy's answer must match (anchored). The cases are
# independent: a mismatch is reported, the others still run, the test fails
# at the end.
expect() {
    local out
    out=$(wire "$MAIN_PORT" "$1" 3)
    if grep -qxE "$2" <<<"$out"; then
        ok "$1: $out"
    else
        echo "FAIL - $1: proxy answered [$out], expected /$2/" >&2
        _PGH_FAILED=1 # harness: the script exits non-zero at the end
    fi
}
# Terminate: the server closes, the client gets no error (as directly).
expect terminate "closed"
FATAL_STARTUP='(closed|reset) E\[FATAL 08P01 phantom: [^]]+\]'
expect random "$FATAL_STARTUP"
expect http "$FATAL_STARTUP"
expect huge-startup "(closed|reset) E\[FATAL 08P01 phantom: invalid startup packet\]"
expect protocol-2 "(closed|reset) E\[FATAL 08P01 phantom: unsupported frontend protocol\]"
expect ssl-smuggle "(closed|reset) E\[FATAL 08P01 phantom: unexpected data after SSLRequest\]"
expect truncated-startup "closed|reset"
# A declared length below the minimum (8) is invalid at once (PostgreSQL
# closes immediately); it must not wait for more bytes.
expect tiny-startup "(closed|reset)( E\[FATAL 08P01 phantom: invalid startup packet\])?"
serving "after garbage before startup"

expect huge-after-auth "(closed|reset) E\[FATAL 54000 phantom: client message of 2147483647 bytes exceeds max_message_size \(1073741823 bytes\)\]"
# A length below 4 is a protocol violation, not an oversized message.
expect short-after-auth "(closed|reset) E\[FATAL 08P01 phantom: [^]]+\]"
expect random-after-auth "(closed|reset) E\[FATAL [0-9A-Z]{5} [^]]+\]"
expect truncated-after-auth "closed|reset"
serving "after garbage after login"
wait_backends "$base" || fail "backends left behind by rejected sessions: $(backends) (expected $base)"
ok "no server backend left behind by the rejected sessions"

# --- connection limit --------------------------------------------------------------------
phx_start --max-connections 2
LIM_PORT=$PHX_PORT LIM_STOP="$PHX_PID $PHX_LOG $PHX_ASAN_DIR"
# Two idle psql sessions, each reading SQL from a FIFO held open by this
# shell (fd 8 and 9); closing the fd ends the session (so the second
# session must not inherit fd 8).
mkfifo "$T/lim1" "$T/lim2"
timeout 120 psql -X -w -q "host=127.0.0.1 port=$LIM_PORT dbname=$PGH_DB user=phantom_scram sslmode=disable application_name=lim1" \
    <"$T/lim1" >/dev/null 2>&1 &
s1=$!
exec 8>"$T/lim1"
timeout 120 psql -X -w -q "host=127.0.0.1 port=$LIM_PORT dbname=$PGH_DB user=phantom_scram sslmode=disable application_name=lim2" \
    <"$T/lim2" >/dev/null 2>&1 8>&- &
s2=$!
exec 9>"$T/lim2"
for _ in $(seq 1 100); do
    n=$(pgh_admin_psql -At -d postgres -c "select count(*) from pg_stat_activity where application_name in ('lim1','lim2')")
    [ "$n" = 2 ] && break
    sleep 0.05
done
assert_eq "2" "$n" "two idle sessions through the --max-connections 2 proxy"
out=$(q "$LIM_PORT" "select 1")
assert_contains "$out" "FATAL:  phantom: too many connections" "third session refused with the proxy's message"
# (The proxy closes without reading the startup packet, so the kernel may
# answer it with a reset after the ErrorResponse: "reset" is accepted.)
out=$(wire "$LIM_PORT" login)
grep -qxE "(closed|reset) E\[FATAL 53300 phantom: too many connections \(max_connections reached\)\]" <<<"$out" ||
    fail "third session: expected SQLSTATE 53300, got [$out]"
ok "third session: SQLSTATE 53300 ($out)"
exec 8>&-
wait "$s1"
ok=0
for _ in $(seq 1 100); do
    if [ "$(q "$LIM_PORT" "select 'slot freed'")" = "slot freed" ]; then ok=1 && break; fi
    sleep 0.1
done
[ "$ok" = 1 ] || fail "closing a session did not free its slot"
ok "closing a session frees its slot (a new session works)"
out=$(q "$LIM_PORT" "select 1")
assert_eq "1" "$out" "refused connections did not use up slots"
exec 9>&-
wait "$s2" || fail "the second idle session failed"
phx_stop $LIM_STOP || fail "limit proxy did not shut down cleanly"

# --- target down ----------------------------------------------------------------------------
dead=$(pgh_free_port)
phx_start --target "127.0.0.1:$dead"
DOWN_STOP="$PHX_PID $PHX_LOG $PHX_ASAN_DIR"
out=$(q "$PHX_PORT" "select 1")
assert_contains "$out" "FATAL:  phantom: could not connect to target 127.0.0.1:$dead: " "target down: clear error"
assert_eq "closed E[FATAL 08001 phantom: could not connect to target 127.0.0.1:$dead: Connection refused]" \
    "$(wire "$PHX_PORT" login | sed -E 's/(target 127.0.0.1:[0-9]+: )[^]]*[Rr]efused[^]]*/\1Connection refused/')" \
    "target down: SQLSTATE 08001, reason given"
phx_stop $DOWN_STOP || fail "proxy (target down) did not shut down cleanly"

# A target that never completes the TCP handshake: a listener with a full
# backlog (listen(0) and one connection never accepted), so the kernel drops
# further SYNs. The connect is bounded by --connect-timeout.
timeout 60 "$PY" - >"$T/blackhole.port" <<'PY' &
import socket, sys, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(0)
c = socket.create_connection(l.getsockname())  # fills the accept queue
print(l.getsockname()[1], flush=True)
time.sleep(50)
PY
bh_pid=$!
pgh_defer "kill $bh_pid 2>/dev/null || true"
for _ in $(seq 1 100); do [ -s "$T/blackhole.port" ] && break; sleep 0.05; done
bh=$(cat "$T/blackhole.port")
[ -n "$bh" ] || fail "black-hole listener did not start"
phx_start --target "127.0.0.1:$bh" --connect-timeout 1s
t0=$(date +%s%N)
out=$(q "$PHX_PORT" "select 1")
ms=$((($(date +%s%N) - t0) / 1000000))
assert_contains "$out" "FATAL:  phantom: could not connect to target 127.0.0.1:$bh" "unanswered target: clear error"
[ "$ms" -ge 900 ] && [ "$ms" -le 5000 ] || fail "--connect-timeout 1s: the error came after ${ms} ms"
ok "unanswered target: error after ${ms} ms ($(grep -o 'phantom: could not.*' <<<"$out"))"
phx_stop || fail "proxy (connect timeout) did not shut down cleanly"
kill "$bh_pid" 2>/dev/null
wait "$bh_pid" 2>/dev/null

# --- upstream restart ------------------------------------------------------------------------
cat >"$T/session.py" <<'PY'
# session.py DSN: one session; prints its error after the server stopped.
import sys, time, psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True)
print("ready", conn.execute("select 1").fetchone()[0], flush=True)
sys.stdin.readline()  # the test stops the server, then writes a line
try:
    conn.execute("select 1")
    print("no error")
except psycopg.Error as e:
    print("error", e.sqlstate, str(e).splitlines()[0])
PY
# The same session program directly and through the proxy: same outcome.
DSN="host=127.0.0.1 port=$MAIN_PORT dbname=$PGH_DB user=phantom_scram sslmode=disable"
DSN_D="host=127.0.0.1 port=$PGH_PORT dbname=$PGH_DB user=phantom_scram sslmode=disable"
mkfifo "$T/ctl"
timeout 60 "$PY" "$T/session.py" "$DSN" <"$T/ctl" >"$T/session.p" 2>&1 &
sp=$!
timeout 60 "$PY" "$T/session.py" "$DSN_D" <"$T/ctl" >"$T/session.d" 2>&1 &
sd=$!
exec 7>"$T/ctl"
for _ in $(seq 1 100); do grep -q ready "$T/session.p" && grep -q ready "$T/session.d" && break; sleep 0.05; done
grep -q "ready 1" "$T/session.p" || fail "session did not start: $(cat "$T/session.p")"
pgh_stop_server fast || fail "stopping PostgreSQL failed"
echo >&7
echo >&7
exec 7>&-
wait "$sp"
wait "$sd"
out=$(cat "$T/session.p")
assert_contains "$out" "terminating connection due to administrator command" \
    "server stopped under a session: the server's FATAL reaches the client"
assert_eq "$(cat "$T/session.d")" "$out" "server stopped under a session: same outcome as a direct session"
out=$(q "$MAIN_PORT" "select 1")
assert_contains "$out" "phantom: could not connect to target" "server down: new sessions get 08001"
kill -0 "$MAIN_PID" 2>/dev/null || fail "proxy died while the server was down"
pgh_start_server || fail "restarting PostgreSQL failed"
serving "after a PostgreSQL restart"

# A backend that vanishes without a word: the proxy says so (08006).
# (The test runs as root, so it may signal the postgres backend.)
assert_eq "closed E[FATAL 08006 phantom: lost connection to target]" "$(wire "$MAIN_PORT" kill-backend)" \
    "backend killed (SIGKILL): the proxy reports 08006 lost connection to target"
# The postmaster restarts all backends after a crash: wait for it.
for _ in $(seq 1 100); do
    [ "$(q "$MAIN_PORT" "select 42" 2>/dev/null)" = 42 ] && break
    sleep 0.1
done
serving "after a backend crash"

# --- max message size -------------------------------------------------------------------------
phx_start --max-message-size 1MiB
MM_PORT=$PHX_PORT MM_PID=$PHX_PID MM_STOP="$PHX_PID $PHX_LOG $PHX_ASAN_DIR"
base=$(backends)
# DataRow length field = 4 (self) + 2 (column count) + 4 (value length) + value.
v=$((1048576 - 10))
assert_eq "$v" "$(q "$MM_PORT" "select length(repeat('x', $v))")" "(set-up) session through the 1MiB proxy"
out=$(q "$MM_PORT" "select repeat('x', $v)" | wc -c)
assert_eq "$((v + 1))" "$out" "a row of exactly max_message_size (length field 1048576) passes"
out=$(q "$MM_PORT" "select repeat('x', $((v + 1)))")
assert_contains "$out" "FATAL:  phantom: server message of 1048577 bytes exceeds max_message_size (1048576 bytes)" \
    "one byte over: 54000 from the proxy"
out=$(q "$MM_PORT" "select repeat('x', 2000000)")
assert_contains "$out" "FATAL:  phantom: server message of 2000010 bytes exceeds max_message_size (1048576 bytes)" \
    "select repeat('x', 2000000): server message too large"
out=$(wire "$MM_PORT" query 10 "select repeat('x', 2000000)")
assert_eq "closed T[27] E[FATAL 54000 phantom: server message of 2000010 bytes exceeds max_message_size (1048576 bytes)]" \
    "$out" "server message too large: RowDescription relayed, then SQLSTATE 54000, then close"
q "$MM_PORT" "create table big (v text)" >/dev/null || fail "create table big"
{
    printf "insert into big values ('"
    head -c 2000000 /dev/zero | tr '\0' 'y'
    printf "')"
} >"$T/insert.sql"
out=$(timeout 30 psql -X -w -At -v ON_ERROR_STOP=1 \
    "host=127.0.0.1 port=$MM_PORT dbname=$PGH_DB user=phantom_scram sslmode=disable" -f "$T/insert.sql" 2>&1)
grep -qE "FATAL:  phantom: client message of 20000[0-9]{2} bytes exceeds max_message_size \(1048576 bytes\)" <<<"$out" ||
    fail "INSERT with a 2 MB literal: expected the client-message error, got [$out]"
ok "INSERT with a 2 MB literal: client message too large"
assert_eq "0" "$(q "$MM_PORT" "select count(*) from big")" "the oversized INSERT did not reach the server"
kill -0 "$MM_PID" 2>/dev/null || fail "1MiB proxy died"
assert_eq "ok" "$(q "$MM_PORT" "select 'ok'")" "1MiB proxy keeps serving after oversized messages"
wait_backends "$base" || fail "sessions closed for oversized messages left backends: $(backends) (expected $base)"
ok "no backend left behind by sessions closed for oversized messages"
phx_stop $MM_STOP || fail "1MiB proxy did not shut down cleanly"

serving "at the end"
phx_stop $MAIN_STOP || fail "proxy did not shut down cleanly"
ok "proxy shut down cleanly"
