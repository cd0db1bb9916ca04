#!/usr/bin/env bash
# psql (libpq) through the proxy, compared with a direct connection:
#
#   * a multi-statement simple Query (several results, one round trip) and an
#     error in the middle of one (the rest is skipped, as directly);
#   * the extended protocol (psql 15 has no \bind: psycopg 3 through libpq),
#     text and binary parameters, prepared statements, a failing pipeline;
#   * \copy FROM a file and \copy TO a file in text and CSV, with tabs,
#     newlines, backslashes, quotes, NULLs and non-ASCII text;
#     COPY TO STDOUT (FORMAT binary) byte for byte equal to the direct output,
#     and binary COPY FROM STDIN of that stream reproduces the table;
#   * a 200k-row result identical to direct (md5 of the output);
#   * NOTICE relayed (RAISE NOTICE from DO);
#   * LISTEN/NOTIFY between two sessions through the proxy, with the
#     notifying backend's PID and the payload;
#   * cancel: psql running pg_sleep(30) gets SIGINT, sends a CancelRequest to
#     the proxy, and the statement ends within seconds with "canceling
#     statement due to user request"; a psycopg conn.cancel() does the same
#     and the session stays usable; a CancelRequest with a wrong key cancels
#     nothing; the BackendKeyData PID the client sees is the server's.
set -u
source "$(dirname "$0")/../lib/harness.sh"

pgh_start
phx_start
T="$PGH_TMP"
PY=/usr/bin/python3

export PGPASSWORD=scram_pw
PROXY="host=127.0.0.1 port=$PHX_PORT dbname=$PGH_DB user=phantom_scram sslmode=prefer"
DIRECT="host=127.0.0.1 port=$PGH_PORT dbname=$PGH_DB user=phantom_scram sslmode=disable"
# q CONNINFO [psql args...]: psql, unaligned tuples-only, stop on error.
q() {
    local c="$1"
    shift
    timeout 60 psql -X -w -At -v ON_ERROR_STOP=1 "$c" "$@"
}
# both "WHAT" [psql args...]: runs the same psql through the proxy and directly
# and asserts identical stdout+stderr and exit status.
both() {
    local what="$1" a b ra rb
    shift
    a=$(q "$PROXY" "$@" 2>&1)
    ra=$?
    b=$(q "$DIRECT" "$@" 2>&1)
    rb=$?
    [ "$ra" = "$rb" ] || fail "$what: exit status $ra through the proxy, $rb direct (output [$a] vs [$b])"
    assert_eq "$b" "$a" "$what: same output as direct"
    BOTH_OUT="$a"
}
alive() { kill -0 "$PHX_PID" 2>/dev/null || fail "proxy died"; }

# --- set-up: a table with awkward text -----------------------------------------
q "$DIRECT" -q <<'EOF' || fail "set-up failed"
create table t (id int primary key, name text, note text, amount numeric(12,2), ts timestamptz, b bytea);
insert into t values
  (1, 'plain', 'simple', 1.50, '2024-01-02 03:04:05+00', '\x00ff10'),
  (2, E'tab\there', E'new\nline', -2.25, '1999-12-31 23:59:59+00', ''),
  (3, E'back\\slash', 'quote "double" and ''single''', 0, null, null),
  (4, 'ünïcödé ✓ 日本', null, 1234567890.12, '2000-02-29 12:00:00+00', '\xdeadbeef'),
  (5, '', E'comma, semicolon; pipe|', null, '2030-06-15 00:00:00+00', '\x5c30');
EOF

# --- multi-statement simple query ------------------------------------------------
both "multi-statement simple query" -c "select 1 as a; select 'two', 2.5; select count(*) from t; select name from t where id = 4"
assert_eq "$(printf '1\ntwo|2.5\n5\nünïcödé ✓ 日本')" "$BOTH_OUT" "multi-statement simple query: all four results"
both "multi-statement query failing in the middle" \
    -c "create temp table m(x int); insert into m values (1); select 1/0; insert into m values (2)"
assert_contains "$BOTH_OUT" "division by zero" "error in a multi-statement query reaches the client"
both "same session after an error" -v ON_ERROR_STOP=0 \
    -c "select 1/0" -c "select 'still alive'"
assert_contains "$BOTH_OUT" "still alive" "session usable after an error"

# --- extended protocol --------------------------------------------------------------
# psql 15 has no \bind: libpq's extended protocol through psycopg 3 (Parse/
# Bind/Describe/Execute/Sync, text and binary parameters and results, named
# prepared statements reused, an error inside a pipeline), output compared
# with the same program run directly.
ext() {
    timeout 60 "$PY" - "$1" <<'PY'
import sys, psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True)
for binary in (False, True):
    cur = conn.cursor(binary=binary)
    cur.execute("select %s::int + %s::int, %s::text, %s::text is null, %s::bytea",
                (40, 2, 'a\tb "c" ✓', None, b"\x00\xff"), prepare=True)
    print(binary, cur.fetchall())
    for i in range(1, 6):  # prepared statement reused (psycopg prepares after 1st use)
        cur.execute("select id, name, note, amount, ts, b from t where id = %s", (i,), prepare=True)
        print(binary, cur.fetchall())
    cur.execute("select name from t where id > %s order by id", (1,))
    print(binary, [r[0] for r in cur])
try:
    with conn.pipeline():
        conn.execute("select 1")
        conn.execute("select 1/%s", (0,))
        conn.execute("select 2")
except psycopg.Error as e:
    print("pipeline error", e.sqlstate)
print("after", conn.execute("select %s", ("ok",)).fetchone())
PY
}
# (stderr apart: psycopg logs a warning naming host and port.)
p=$(ext "$PROXY" 2>"$T/ext.err") || fail "extended protocol through the proxy: $p $(cat "$T/ext.err")"
d=$(ext "$DIRECT" 2>"$T/ext.err") || fail "extended protocol direct: $d $(cat "$T/ext.err")"
assert_eq "$d" "$p" "extended protocol (text+binary, prepared, pipeline): same results as direct"
assert_contains "$p" "True [(42, 'a\tb \"c\" ✓', True, b'\x00\xff')]" "extended protocol: binary parameters/results"
assert_contains "$p" "pipeline error 22012" "extended protocol: error inside a pipeline"

# --- \copy to/from files: text and CSV -------------------------------------------
for fmt in text csv; do
    opt=""
    [ "$fmt" = csv ] && opt="with (format csv, header true)"
    q "$PROXY" -c "\\copy t to '$T/proxy.$fmt' $opt" >/dev/null || fail "\\copy to ($fmt) through the proxy failed"
    q "$DIRECT" -c "\\copy t to '$T/direct.$fmt' $opt" >/dev/null || fail "\\copy to ($fmt) direct failed"
    cmp -s "$T/proxy.$fmt" "$T/direct.$fmt" || fail "\\copy to ($fmt): file differs from direct"
    [ "$(wc -l <"$T/proxy.$fmt")" -ge 5 ] || fail "\\copy to ($fmt): too few lines"
    ok "\\copy t to a file ($fmt): identical to direct ($(wc -c <"$T/proxy.$fmt") bytes)"

    q "$PROXY" -c "create table t_$fmt (like t)" >/dev/null || fail "create t_$fmt"
    out=$(q "$PROXY" -c "\\copy t_$fmt from '$T/proxy.$fmt' $opt" 2>&1) || fail "\\copy from ($fmt) through the proxy: $out"
    assert_eq "COPY 5" "$out" "\\copy from a file ($fmt): row count"
    diff=$(q "$DIRECT" -c "select count(*) from ((table t except table t_$fmt) union all (table t_$fmt except table t)) d")
    assert_eq "0" "$diff" "\\copy from a file ($fmt): table equals the original"
done

# A larger \copy from (many COPY data messages) and an error inside COPY.
seq 1 50000 | awk '{printf "%d\trow %d\t\\N\n", $1, $1}' >"$T/many.txt"
q "$PROXY" -c "create table many (id int primary key, s text, n text)" >/dev/null || fail "create many"
out=$(q "$PROXY" -c "\\copy many from '$T/many.txt'" 2>&1)
assert_eq "COPY 50000" "$out" "\\copy 50000 rows from a file through the proxy"
assert_eq "50000|1250025000" "$(q "$DIRECT" -c "select count(*), sum(id) from many")" "copied rows arrived intact"
printf '1\tdup\t\\N\n' >"$T/dup.txt"
out=$(q "$PROXY" -c "\\copy many from '$T/dup.txt'" 2>&1)
assert_contains "$out" "duplicate key value violates unique constraint" "error during COPY FROM relayed"
assert_eq "50000" "$(q "$PROXY" -c "select count(*) from many")" "failed COPY left the table unchanged"

# --- binary COPY, byte for byte --------------------------------------------------
q "$PROXY" -c "copy (select * from t order by id) to stdout (format binary)" >"$T/proxy.bin" ||
    fail "binary COPY TO STDOUT through the proxy failed"
q "$DIRECT" -c "copy (select * from t order by id) to stdout (format binary)" >"$T/direct.bin" ||
    fail "binary COPY TO STDOUT direct failed"
head -c 11 "$T/proxy.bin" | od -c | grep -q 'P   G   C   O   P   Y' || fail "binary COPY output lacks the PGCOPY signature"
cmp "$T/proxy.bin" "$T/direct.bin" || fail "binary COPY output differs from direct"
ok "binary COPY TO STDOUT: byte for byte identical to direct ($(wc -c <"$T/proxy.bin") bytes)"
q "$PROXY" -c "create table t_bin (like t)" >/dev/null
out=$(q "$PROXY" -c "copy t_bin from stdin (format binary)" <"$T/proxy.bin" 2>&1)
assert_eq "COPY 5" "$out" "binary COPY FROM STDIN through the proxy"
assert_eq "0" "$(q "$DIRECT" -c "select count(*) from ((table t except table t_bin) union all (table t_bin except table t)) d")" \
    "binary COPY round trip reproduces the table"

# --- a large result --------------------------------------------------------------
sql="select g, md5(g::text), repeat('x', g % 50) from generate_series(1, 200000) g"
p=$(q "$PROXY" -c "$sql" | md5sum)
d=$(q "$DIRECT" -c "$sql" | md5sum)
assert_eq "$d" "$p" "200k-row result: identical to direct"

# --- NOTICE ----------------------------------------------------------------------
out=$(q "$PROXY" -c "DO \$\$ BEGIN RAISE NOTICE 'hello'; END \$\$" 2>&1)
assert_contains "$out" "NOTICE:  hello" "NOTICE relayed through the proxy"
out=$(q "$PROXY" -c "set client_min_messages = warning" -c "DO \$\$ BEGIN RAISE NOTICE 'hidden'; RAISE WARNING 'shown'; END \$\$" 2>&1)
assert_contains "$out" "WARNING:  shown" "WARNING relayed"
case "$out" in *hidden*) fail "NOTICE below client_min_messages was shown" ;; esac

# --- LISTEN / NOTIFY --------------------------------------------------------------
# Session A listens through the proxy, waits, then runs one more command after
# which psql prints the notifications it received meanwhile.
(
    printf 'LISTEN phantom_ch;\n'
    sleep 3
    printf "select 'after';\n"
) | timeout 30 psql -X -w -At "$PROXY application_name=phx_listener" >"$T/listen.out" 2>&1 &
lpid=$!
for _ in $(seq 1 100); do
    st=$(pgh_admin_psql -At -d "$PGH_DB" -c "select count(*) from pg_stat_activity where application_name = 'phx_listener' and query ilike 'LISTEN%' and state = 'idle'")
    [ "$st" = 1 ] && break
    sleep 0.05
done
[ "$st" = 1 ] || fail "listener session did not start"
nout=$(q "$PROXY" -c "select pg_backend_pid()" -c "NOTIFY phantom_ch, 'payload one'" -c "select pg_notify('phantom_ch', 'two ✓')") ||
    fail "NOTIFY through the proxy failed: $nout"
npid=$(head -n1 <<<"$nout")
wait "$lpid" || fail "listener psql failed: $(cat "$T/listen.out")"
out=$(cat "$T/listen.out")
assert_contains "$out" "Asynchronous notification \"phantom_ch\" with payload \"payload one\" received from server process with PID $npid." \
    "NOTIFY delivered through the proxy (payload and notifier PID)"
assert_contains "$out" "Asynchronous notification \"phantom_ch\" with payload \"two ✓\" received" "second notification delivered"
assert_contains "$out" "after" "listener session still works"

# Prompt delivery while the listener is idle (no query in flight): psycopg
# waits on the socket, so the proxy must relay the async message at once.
out=$(timeout 30 "$PY" - "$PROXY" <<'PY'
import select, sys, time, psycopg
listener = psycopg.connect(sys.argv[1], autocommit=True)
listener.execute("LISTEN idle_ch")
got = []
listener.add_notify_handler(got.append)
notifier = psycopg.connect(sys.argv[1], autocommit=True)
t0 = time.monotonic()
notifier.execute("NOTIFY idle_ch, 'ping'")
readable, _, _ = select.select([listener.fileno()], [], [], 5)
dt = time.monotonic() - t0
listener.execute("select 1")  # lets libpq parse what arrived
ok = [n for n in got if n.payload == "ping" and n.pid == notifier.info.backend_pid]
print("got" if ok else "missing %r" % got, "fast" if readable and dt < 2 else "slow %.2f" % dt)
PY
)
assert_eq "got fast" "$out" "notification to an idle listener relayed promptly"

# --- cancel ------------------------------------------------------------------------
wait_active() { # application_name: wait until its pg_sleep is running
    for _ in $(seq 1 200); do
        st=$(pgh_admin_psql -At -d "$PGH_DB" -c "select count(*) from pg_stat_activity where application_name = '$1' and state = 'active' and query like '%pg_sleep%'")
        [ "$st" = 1 ] && return 0
        sleep 0.05
    done
    return 1
}
# psql sends a CancelRequest (to the address it is connected to: the proxy)
# when it gets SIGINT while a query runs.
timeout 60 psql -X -w -At "$PROXY application_name=phx_cancel" \
    -c "select pg_sleep(30)" >"$T/cancel.out" 2>&1 &
cpid=$!
wait_active phx_cancel || fail "pg_sleep did not start"
t0=$(date +%s.%N)
kill -INT "$cpid"
wait "$cpid"
rc=$?
dt=$(echo "$(date +%s.%N) - $t0" | bc)
out=$(cat "$T/cancel.out")
assert_contains "$out" "canceling statement due to user request" "SIGINT to psql: CancelRequest through the proxy cancelled pg_sleep"
[ "$rc" -eq 1 ] || fail "psql exit status after the cancelled query: $rc (expected 1, as directly)"
[ "$(echo "$dt < 5" | bc)" = 1 ] || fail "cancel took ${dt}s"
ok "cancel took $(printf '%.2f' "$dt")s (psql exit $rc)"

# psycopg: BackendKeyData PID is the server's; conn.cancel() works; a wrong key does nothing.
out=$(timeout 60 "$PY" - "$PROXY" "$PHX_PORT" <<'PY'
import socket, struct, sys, threading, time, psycopg
dsn, port = sys.argv[1], int(sys.argv[2])
conn = psycopg.connect(dsn, autocommit=True)
server_pid = conn.execute("select pg_backend_pid()").fetchone()[0]
print("pid", "same" if conn.info.backend_pid == server_pid else "differs %s %s" % (conn.info.backend_pid, server_pid))

def wrong_key_cancel():
    time.sleep(0.5)
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(struct.pack("!IIII", 16, 80877102, server_pid, 12345))
    s.recv(1)  # the proxy closes after forwarding
    s.close()
threading.Thread(target=wrong_key_cancel).start()
t0 = time.monotonic()
conn.execute("select pg_sleep(1.5)")
print("wrong key", "ignored" if time.monotonic() - t0 >= 1.4 else "cancelled?!")

threading.Timer(0.5, conn.cancel).start()
t0 = time.monotonic()
try:
    conn.execute("select pg_sleep(30)")
    print("cancel", "not cancelled")
except psycopg.errors.QueryCanceled as e:
    print("cancel", "ok" if time.monotonic() - t0 < 5 else "slow", e.sqlstate)
print("after", conn.execute("select 'alive'").fetchone()[0])
PY
)
assert_contains "$out" "pid same" "client sees the server's backend PID (BackendKeyData relayed)"
assert_contains "$out" "wrong key ignored" "CancelRequest with a wrong key cancels nothing"
assert_contains "$out" "cancel ok 57014" "psycopg conn.cancel() through the proxy: 57014 within seconds"
assert_contains "$out" "after alive" "connection usable after psycopg cancel"

alive
phx_stop || fail "proxy did not shut down cleanly"
ok "proxy shut down cleanly"
