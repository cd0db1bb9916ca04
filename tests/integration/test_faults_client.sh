#!/usr/bin/env bash
# Faults from clients (issue 7): misbehaving connections through the
# encrypting proxy affect only themselves.
#
# A throwaway PostgreSQL 15 and the ASan proxy with table fz protected
# (email deterministic, secret randomized, num int8 randomized; values from
# the leak canary). Throughout the test a well-behaved psql client connects
# again and again (SCRAM) and looks a row up by its encrypted email: every
# lookup must return that row's decrypted values, none may take 5 s or more
# (so no misbehaving client blocks the event loop). Then, with
# tests/clients/misbehave.py (raw sockets):
#
#   * random bytes instead of a startup packet (3 seeds), a startup length word
#     of 7, of 10001 and of 2^31-1: FATAL 08P01 "phantom: invalid startup
#     packet", then closed;
#   * after a good login: random bytes (FATAL, closed), a Query whose length
#     word is 2^31-1 (FATAL 54000 "... exceeds max_message_size ..."), a
#     truncated header or message followed by a half-close (closed);
#   * slowloris: a startup packet or a cleartext-password PasswordMessage sent
#     one byte per second to a proxy with limits.startup_timeout 2s: FATAL
#     57014 "phantom: canceling authentication due to timeout" after about 2 s;
#     a TLS handshake record (client TLS on) one byte per second: closed after
#     about 2 s (no plaintext error inside a handshake); with the default
#     timeout (60 s) a slow startup is still open after 4 s;
#     a Query sent one byte per second after the login (no timeout applies,
#     as in PostgreSQL) is answered correctly once complete, while the other
#     clients go on;
#   * 20 sessions that announce a Query of 1 GiB - 1 bytes and send 64 bytes:
#     the proxy's VmSize grows by less than 256 MB (its buffer grows with the
#     bytes received, not with the length word);
#   * half of a Bind (for an INSERT into fz) then close, and one CopyData row
#     plus half of the next (COPY fz FROM STDIN) then close: nothing of either
#     reaches the table;
#   * 1000 connections opened and abandoned, twice: 500 that send nothing,
#     200 with half a startup packet, 150 idle after login and 150 that sent a
#     SELECT of fz and never read the answer; every second one is closed with
#     RST, the others with FIN. The proxy's open fds must return to exactly
#     the baseline, no server backend may be left, and the RSS must return to
#     within a bound of the baseline (see "Memory" below); the figures are
#     printed for the README.
#
# Afterwards no server backend of a misbehaving client remains, the proxy is
# still running, and phx_stop finds no sanitizer report.
#
# Memory: the proxy runs with ASAN_OPTIONS quarantine_size_mb=4 and
# allocator_release_to_os_interval_ms=100 (ASan's default 256 MB quarantine
# would hide any return to baseline). Measured from /proc/PID/smaps: "heap" is
# ASan's allocator region (the release build: [heap] and anonymous mappings),
# "shadow" ASan's shadow memory, which is never given back once written and
# grows by about 15-18 MB in the first round. Bounds: after each round, heap
# <= baseline + 16 MB (the 4 MB quarantine + pages the allocator cannot give
# back because a live chunk shares them: measured 2-9 MB) and RSS <= baseline
# + 40 MB (that + the shadow); round 2 may not add more than 10 MB of heap or
# RSS to round 1's figures (the release noise is about +-4 MB; a leak of
# 10 KB per connection would exceed it; unreachable leaks of any size are
# LeakSanitizer's, at exit).
set -u
source "$(dirname "$0")/../lib/harness.sh"
declare -F canary_text >/dev/null || source "$HARNESS_ROOT/tests/lib/canary.sh"

PY=/usr/bin/python3
MB="$HARNESS_ROOT/tests/clients/misbehave.py"
trap '' PIPE # writes to FIFOs of helpers that already exited

# The abandoned sessions need about 300 backends at once.
pgh_start --conf "max_connections = 350"
T="$PGH_TMP/faults"
mkdir -p "$T"
phx_encrypt_config "$T" "encrypt:
  fz:
    - email: deterministic
    - secret
    - { column: num, mode: randomized, type: int8 }"
# The proxy with the short startup timeout also offers TLS to clients.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=localhost" \
    -keyout "$T/tls.key" -out "$T/tls.crt" >/dev/null 2>&1 || fail "certificate for client TLS"
chmod 600 "$T/tls.key"
printf 'limits:\n  startup_timeout: 2s\nclient_tls:\n  cert: %s\n  key: %s\n' "$T/tls.crt" "$T/tls.key" >"$T/short.yaml"
cat "$CFG" "$T/short.yaml" >"$T/phantom-short.yaml"

ASAN_OPTIONS="quarantine_size_mb=4:allocator_release_to_os_interval_ms=100" phx_start --config "$CFG"
MAIN_PORT=$PHX_PORT MAIN_PID=$PHX_PID
phx_start --config "$T/phantom-short.yaml"
SHORT_PORT=$PHX_PORT SHORT_PID=$PHX_PID

export PGPASSWORD=scram_pw
DSN="host=127.0.0.1 port=$MAIN_PORT dbname=$PGH_DB user=phantom_scram sslmode=disable connect_timeout=10"
q() { timeout 60 psql "$DSN" -X -At -v ON_ERROR_STOP=1 -c "$1" 2>&1; }
qd() { pgh_admin_psql -At -d "$PGH_DB" -c "$1" 2>&1; }
backends() { # server backends of misbehaving clients (but the slow Query's)
    pgh_admin_psql -At -d postgres -c "select count(*) from pg_stat_activity where application_name like 'misbehave-%' and application_name <> 'misbehave-slow-query'"
}
wait_backends() { # N: until N backends remain (up to 20 s)
    for _ in $(seq 1 200); do
        [ "$(backends)" = "$1" ] && return 0
        sleep 0.1
    done
    return 1
}
alive() { # what
    kill -0 "$MAIN_PID" 2>/dev/null || fail "$1: the proxy died"
    kill -0 "$SHORT_PID" 2>/dev/null || fail "$1: the proxy with the short startup timeout died"
}

# --- protected data (leak-canary values) ----------------------------------------------
N=200
EMAIL_TAG=$(canary_email fz)    # cnry<hex>@example.com; row i: r<i>.<that>
SECRET_TAG=$(canary_text fz)    # row i: <that>-<i>
NUM_TAG=$(canary_int)           # 15 digits; row i: <that><i as 4 digits>
email_of() { echo "r$1.$EMAIL_TAG"; }
secret_of() { echo "$SECRET_TAG-$1"; }
num_of() { printf '%s%04d\n' "$NUM_TAG" "$1"; }
out=$(q "CREATE TABLE fz (id int PRIMARY KEY, email text, secret text, num int8)") ||
    fail "create fz: $out"
for i in $(seq 1 $N); do
    printf '%d\t%s\t%s\t%s\n' "$i" "$(email_of "$i")" "$(secret_of "$i")" "$(num_of "$i")"
done >"$T/fz.tsv"
out=$(q "\\copy fz (id, email, secret, num) from '$T/fz.tsv'") || fail "load fz: $out"
assert_eq "COPY $N" "$out" "$N protected rows loaded through the proxy"
assert_eq "$(secret_of 7)|$(num_of 7)" "$(q "select secret, num from fz where email = '$(email_of 7)'")" \
    "lookup by encrypted email decrypts the row"
assert_eq "bytea bytea bytea 0" \
    "$(qd "select pg_typeof(email), pg_typeof(secret), pg_typeof(num), count(*) filter (where position('cnry'::bytea in email) > 0 or position('cnry'::bytea in secret) > 0) from fz group by 1, 2, 3" | tr '|' ' ')" \
    "(set-up) the database holds bytea envelopes, no plaintext"

# --- the well-behaved client, running all along ----------------------------------------
good_client() { # until $T/stop exists; stands still while $T/pause exists
    local i=0 out ms t0
    while [ ! -e "$T/stop" ]; do
        if [ -e "$T/pause" ]; then
            touch "$T/paused"
            sleep 0.05
            continue
        fi
        rm -f "$T/paused"
        i=$((i % N + 1))
        t0=$(date +%s%N)
        out=$(timeout 15 psql "$DSN" -X -At -v ON_ERROR_STOP=1 \
            -c "select secret, num from fz where email = '$(email_of "$i")'" 2>&1)
        ms=$((($(date +%s%N) - t0) / 1000000))
        if [ "$out" = "$(secret_of "$i")|$(num_of "$i")" ]; then
            echo "ok $ms"
        else
            echo "FAIL $ms row $i: $out" | tr '\n' ' '
            echo
        fi
        sleep 0.1
    done
}
good_client >"$T/good.log" 2>&1 &
GOOD=$!
pgh_defer "touch '$T/stop'; wait $GOOD 2>/dev/null || true"
# While it stands still it holds no connection: the proxy's fd count is exact.
pause_good() {
    touch "$T/pause"
    for _ in $(seq 1 400); do
        [ -e "$T/paused" ] && return 0
        sleep 0.05
    done
    fail "the well-behaved client did not pause"
}
resume_good() { rm -f "$T/pause" "$T/paused"; }

base_backends=$(backends)

# A Query sent one byte per second, on the main proxy, in the background while
# the rest runs: no timeout after the login, the answer is right once complete.
SLOWQ="select secret from fz where id = 3"
timeout 90 "$PY" "$MB" "$MAIN_PORT" slow-query "$SLOWQ" >"$T/slowq.out" 2>&1 &
SLOWQ_PID=$!
# (A session with a Query half sent holds up the proxy's drain: stop it first.)
pgh_defer "kill $SLOWQ_PID 2>/dev/null || true"

# --- bad bytes ----------------------------------------------------------------------------
# expect PORT EXPECTED-REGEX SCENARIO ARGS...: misbehave.py's line must match
# (anchored); a mismatch is reported and the test fails at the end.
expect() {
    local port="$1" re="$2" out
    shift 2
    out=$(timeout 60 "$PY" "$MB" "$port" "$@" 2>&1)
    if grep -qxE "$re" <<<"$out"; then
        ok "$*: $out"
    else
        echo "FAIL - $*: got [$out], expected /$re/" >&2
        _PGH_FAILED=1
    fi
}
BAD_STARTUP='(closed|reset) E\[FATAL 08P01 phantom: invalid startup packet\]'
for seed in 1 2 3; do
    expect "$MAIN_PORT" "(closed|reset) E\[FATAL 08P01 phantom: [^]]+\]" random-startup "$seed"
done
expect "$MAIN_PORT" "$BAD_STARTUP" short-startup
expect "$MAIN_PORT" "$BAD_STARTUP" long-startup
expect "$MAIN_PORT" "$BAD_STARTUP" huge-startup
expect "$MAIN_PORT" "closed|reset" truncated-startup
for seed in 1 2 3; do
    expect "$MAIN_PORT" "(closed|reset) E\[FATAL [0-9A-Z]{5} [^]]+\]" random-after-auth "$seed"
done
expect "$MAIN_PORT" "(closed|reset) E\[FATAL 54000 phantom: client message of 2147483647 bytes exceeds max_message_size \(1073741823 bytes\)\]" \
    huge-after-auth
expect "$MAIN_PORT" "closed|reset" truncated-header-after-auth
expect "$MAIN_PORT" "closed|reset" truncated-after-auth
alive "after bad bytes"

# --- slowloris -----------------------------------------------------------------------------
TIMEOUT_RE='(closed|reset) E\[FATAL 57014 phantom: canceling authentication due to timeout\] sent=[0-9]+ elapsed=[0-9.]+'
for sc in slow-startup slow-auth; do
    out=$(timeout 60 "$PY" "$MB" "$SHORT_PORT" "$sc" 20 2>&1)
    grep -qxE "$TIMEOUT_RE" <<<"$out" || fail "$sc with startup_timeout 2s: got [$out]"
    el=$(sed -E 's/.*elapsed=([0-9.]+).*/\1/' <<<"$out")
    awk -v e="$el" 'BEGIN { exit !(e >= 1.8 && e < 4.5) }' || fail "$sc: timed out after ${el} s, expected about 2 s"
    ok "$sc, startup_timeout 2s: $out"
done
# In the middle of a TLS handshake the proxy cannot send a plaintext error: closed.
out=$(timeout 60 "$PY" "$MB" "$SHORT_PORT" slow-tls 20 2>&1)
grep -qxE "(closed|reset) sent=[0-9]+ elapsed=[0-9.]+" <<<"$out" || fail "slow-tls with startup_timeout 2s: got [$out]"
el=$(sed -E 's/.*elapsed=([0-9.]+).*/\1/' <<<"$out")
awk -v e="$el" 'BEGIN { exit !(e >= 1.8 && e < 4.5) }' || fail "slow-tls: closed after ${el} s, expected about 2 s"
ok "slow-tls, startup_timeout 2s: $out"
# The default (60 s) does not cut a slow but live startup early.
out=$(timeout 60 "$PY" "$MB" "$MAIN_PORT" slow-startup 4 2>&1)
grep -qxE "open sent=4 elapsed=[0-9.]+" <<<"$out" || fail "slow-startup, default timeout: got [$out]"
ok "slow-startup, default timeout: still open after 4 s ($out)"
alive "after slowloris"

# --- disconnects mid-message -----------------------------------------------------------------
expect "$MAIN_PORT" "open sent=[0-9]+/[0-9]+" mid-bind fz
expect "$MAIN_PORT" "open sent=1\+[0-9]+/[0-9]+" mid-copydata fz
wait_backends "$base_backends" || fail "sessions cut mid-Bind/mid-CopyData left backends: $(backends) (expected $base_backends)"
assert_eq "0" "$(qd "select count(*) from fz where id >= 900000")" \
    "half a Bind / a COPY cut mid-CopyData: nothing reached the table"
assert_eq "$N" "$(qd "select count(*) from fz")" "fz still holds exactly its $N rows"

# --- a length word is not a reservation ---------------------------------------------------------
# 20 sessions each announce a Query of 1 GiB - 1 bytes (just under the default
# max_message_size; the proxy must see it whole to rewrite it) and send 64
# bytes of it. The proxy's buffers grow with the bytes that arrive, not with
# the announced length: its address space (VmSize, what a strict overcommit
# policy charges) must not grow by more than 256 MB (it used to grow by 1 GiB
# per session).
vmsize() { awk '/^VmSize/ { print $2 }' "/proc/$MAIN_PID/status"; }
vm0=$(vmsize)
mkfifo "$T/big.hold"
timeout 60 "$PY" "$MB" "$MAIN_PORT" declare-big 20 1073741823 <"$T/big.hold" >"$T/big.out" 2>&1 &
BIG=$!
pgh_defer "kill $BIG 2>/dev/null || true"
exec 5>"$T/big.hold"
for _ in $(seq 1 300); do
    grep -q "^holding" "$T/big.out" && break
    kill -0 "$BIG" 2>/dev/null || break
    sleep 0.05
done
assert_eq "holding 20" "$(cat "$T/big.out")" "20 sessions announced a 1 GiB - 1 Query and sent 64 bytes of it"
vm1=$(vmsize)
echo >&5
exec 5>&-
wait "$BIG"
assert_eq "answers: open" "$(tail -n1 "$T/big.out")" "... and the proxy waits for the rest"
[ $((vm1 - vm0)) -lt 262144 ] || fail "20 announced 1 GiB messages grew the proxy's VmSize by $(((vm1 - vm0) / 1024)) MB"
ok "20 announced 1 GiB messages grew the proxy's VmSize by $(((vm1 - vm0) / 1024)) MB (limit 256 MB)"
wait_backends "$base_backends" || fail "the announcing sessions left backends: $(backends)"
alive "after announced 1 GiB messages"

# --- the slow query ------------------------------------------------------------------------------
wait "$SLOWQ_PID" || fail "slow-query helper failed: $(cat "$T/slowq.out")"
out=$(cat "$T/slowq.out")
grep -qxE "open T D\[$(secret_of 3)\] C Z sent=[0-9]+ elapsed=[0-9.]+" <<<"$out" ||
    fail "a Query sent one byte per second: got [$out]"
ok "a Query sent one byte per second is answered with the decrypted row ($out)"

# --- 1000 abandoned connections, twice: fds, backends, memory ---------------------------------
PID=$MAIN_PID
fds() { find "/proc/$PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
mem() { # prints "rss heap shadow" in kB
    "$PY" - "$PID" <<'PY'
import re, sys
rss = heap = shadow = other_heap = 0
region = None
with open("/proc/%s/smaps" % sys.argv[1]) as f:
    for line in f:
        m = re.match(r"^([0-9a-f]+)-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$", line)
        if m:
            lo, name = int(m.group(1), 16), m.group(2)
            if 0x600000000000 <= lo < 0x640000000000:
                region = "heap"          # ASan's allocator (x86_64)
            elif 0x7FFF8000 <= lo < 0x10007FFF8000:
                region = "shadow"        # ASan's shadow memory
            elif name in ("", "[heap]"):
                region = "other_heap"    # glibc heap and thread arenas
            else:
                region = None
        elif line.startswith("Rss:"):
            kb = int(line.split()[1])
            rss += kb
            if region == "heap": heap += kb
            elif region == "shadow": shadow += kb
            elif region == "other_heap": other_heap += kb
print(rss, heap if heap else other_heap, shadow)
PY
}
wait_fds() { # N: until the proxy has N fds open (up to 20 s)
    for _ in $(seq 1 200); do
        [ "$(fds)" -le "$1" ] && return 0
        sleep 0.1
    done
    return 1
}
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }

# Warm-up: the allocator and the engine's caches reach their working size.
for i in $(seq 1 20); do q "select secret from fz where email = '$(email_of "$i")'" >/dev/null; done
pause_good
sleep 0.5
base_fds=$(fds)
read -r base_rss base_heap base_shadow <<<"$(mem)"
resume_good
echo "memory baseline: RSS $(mb "$base_rss"), heap $(mb "$base_heap"), shadow $(mb "$base_shadow"), $base_fds fds"

abandon_round() { # ROUND: sets PEAK_* and AFTER_*
    local r="$1" out
    mkfifo "$T/hold$r"
    timeout 120 "$PY" "$MB" "$MAIN_PORT" abandon 500 200 150 150 "select id, email, secret, num from fz" \
        <"$T/hold$r" >"$T/abandon$r.out" 2>&1 &
    local ab=$!
    pgh_defer "kill $ab 2>/dev/null || true"
    exec 7>"$T/hold$r"
    for _ in $(seq 1 600); do
        grep -q "^holding" "$T/abandon$r.out" && break
        kill -0 "$ab" 2>/dev/null || break
        sleep 0.05
    done
    out=$(cat "$T/abandon$r.out")
    [ "$out" = "holding 1000 login_failed=0" ] || fail "round $r: abandon helper: [$out]"
    sleep 1 # the 150 queries' answers reach the proxy's buffers
    PEAK_FDS=$(fds)
    read -r PEAK_RSS PEAK_HEAP _ <<<"$(mem)"
    [ "$PEAK_FDS" -ge $((base_fds + 1000)) ] ||
        fail "round $r: the proxy holds $PEAK_FDS fds with 1000 connections open (baseline $base_fds)"
    echo >&7
    exec 7>&-
    wait "$ab" || fail "round $r: abandon helper failed: $(cat "$T/abandon$r.out")"
    grep -q "^abandoned 1000$" "$T/abandon$r.out" || fail "round $r: [$(cat "$T/abandon$r.out")]"
    pause_good
    wait_fds "$base_fds" || fail "round $r: the proxy still holds $(fds) fds 20 s after the clients left (baseline $base_fds)"
    wait_backends "$base_backends" || fail "round $r: backends left: $(backends) (expected $base_backends)"
    sleep 1 # the allocator's release interval
    AFTER_FDS=$(fds)
    read -r AFTER_RSS AFTER_HEAP AFTER_SHADOW <<<"$(mem)"
    resume_good
    echo "round $r: 1000 connections open: RSS $(mb "$PEAK_RSS"), heap $(mb "$PEAK_HEAP"), $PEAK_FDS fds;" \
        "after they left: RSS $(mb "$AFTER_RSS"), heap $(mb "$AFTER_HEAP"), shadow $(mb "$AFTER_SHADOW"), $AFTER_FDS fds"
}
abandon_round 1
R1_RSS=$AFTER_RSS R1_HEAP=$AFTER_HEAP
assert_eq "$base_fds" "$AFTER_FDS" "round 1: the proxy's open fds are back to the baseline"
[ "$AFTER_HEAP" -le $((base_heap + 16384)) ] ||
    fail "round 1: heap $(mb "$AFTER_HEAP") after the connections left, more than baseline $(mb "$base_heap") + 16 MB"
ok "round 1: heap back within 16 MB of the baseline (+$(mb $((AFTER_HEAP - base_heap))))"
[ "$AFTER_RSS" -le $((base_rss + 40960)) ] ||
    fail "round 1: RSS $(mb "$AFTER_RSS") after the connections left, more than baseline $(mb "$base_rss") + 40 MB"
ok "round 1: RSS back within 40 MB of the baseline (+$(mb $((AFTER_RSS - base_rss))))"
alive "after 1000 abandoned connections"

abandon_round 2
assert_eq "$base_fds" "$AFTER_FDS" "round 2: the proxy's open fds are back to the baseline"
[ "$AFTER_HEAP" -le $((base_heap + 16384)) ] ||
    fail "round 2: heap $(mb "$AFTER_HEAP") after the connections left, more than baseline $(mb "$base_heap") + 16 MB"
[ "$AFTER_HEAP" -le $((R1_HEAP + 10240)) ] ||
    fail "round 2: heap grew from $(mb "$R1_HEAP") to $(mb "$AFTER_HEAP") (a leak per connection?)"
ok "round 2: heap within 10 MB of round 1's and 16 MB of the baseline ($(mb "$R1_HEAP") -> $(mb "$AFTER_HEAP"))"
[ "$AFTER_RSS" -le $((R1_RSS + 10240)) ] ||
    fail "round 2: RSS grew from $(mb "$R1_RSS") to $(mb "$AFTER_RSS")"
ok "round 2: RSS within 10 MB of round 1's ($(mb "$R1_RSS") -> $(mb "$AFTER_RSS"))"
alive "after 2000 abandoned connections"

# --- the well-behaved client ---------------------------------------------------------------------
touch "$T/stop"
wait "$GOOD"
runs=$(grep -c '^ok ' "$T/good.log")
fails=$(grep -c '^FAIL' "$T/good.log")
max_ms=$(awk '$1 == "ok" && $2 > m { m = $2 } END { print m + 0 }' "$T/good.log")
[ "$fails" -eq 0 ] || fail "the well-behaved client failed $fails time(s): $(grep -m3 '^FAIL' "$T/good.log")"
[ "$runs" -ge 20 ] || fail "the well-behaved client ran only $runs lookups"
[ "$max_ms" -lt 5000 ] || fail "a lookup of the well-behaved client took $max_ms ms"
ok "well-behaved client: $runs lookups through the whole test, all correct, slowest ${max_ms} ms"

wait_backends "$base_backends" || fail "backends left at the end: $(backends) (expected $base_backends)"
ok "no backend of a misbehaving client remains"
alive "at the end"
assert_eq "ok" "$(q "select 'ok'")" "the proxy still serves"
