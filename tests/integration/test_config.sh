#!/usr/bin/env bash
# The configuration file and the command line.
#
#   * bad configuration files are refused before anything starts: exit 2 and
#     "phantom proxy: FILE:LINE: reason" with the line of the offending key or
#     value (unknown setting at the top and in a section, bad size, duration,
#     number, enum, a section that is not a mapping, broken YAML: unclosed
#     flow sequence, unclosed quote, bad indentation); a missing file and bad
#     command-line values exit 2 too; no sanitizer report on these paths;
#   * a valid phantom.yaml (listen, target, workers, limits, log) is used as is:
#     the proxy listens and relays where the file says, limits.max_connections
#     and limits.max_message_size from the file take effect, log.format json
#     gives JSON log lines; command-line options override the file (--listen,
#     --max-connections, --max-message-size);
#   * `phantom --help` lists the proxy command, `phantom proxy --help` lists
#     every option the parser accepts (taken from the source) and every
#     setting of the file has a command-line option.
set -u
source "$(dirname "$0")/../lib/harness.sh"

T="$PGH_TMP"
ASAN_DIR="$T/asan.cli"
mkdir -p "$ASAN_DIR"
# run_phantom ARGS...: runs the binary to completion (10 s at most), sets OUT
# (stdout+stderr) and RC.
run_phantom() {
    OUT=$(ASAN_OPTIONS="log_path=$ASAN_DIR/asan:detect_leaks=1:${ASAN_OPTIONS:-}" \
        UBSAN_OPTIONS="log_path=$ASAN_DIR/ubsan:print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}" \
        timeout 10 "$PHANTOM_BIN" "$@" 2>&1 </dev/null)
    RC=$?
}
# bad_config NAME EXPECTED_LINE REASON_SUBSTRING CONTENT
bad_config() {
    local f="$T/$1.yaml"
    printf '%s' "$4" >"$f"
    run_phantom proxy --config "$f"
    [ "$RC" -eq 2 ] || fail "$1: exit status $RC (expected 2): $OUT"
    assert_contains "$OUT" "phantom proxy: $f:$2: $3" "$1: exit 2, \"FILE:$2: $3\""
}

# --- bad files --------------------------------------------------------------------
bad_config unknown-top 3 'unknown setting "bogus"' 'target: 127.0.0.1:5432
listen: 127.0.0.1:6432
bogus: 1
'
bad_config unknown-in-section 4 'unknown setting "max_conns" in "limits"' 'target: 127.0.0.1:5432
limits:
  max_connections: 5
  max_conns: 5
'
bad_config bad-size 4 'limits.max_message_size must be a size such as' '# comment
target: 127.0.0.1:5432
limits:
  max_message_size: 12parsecs
'
bad_config bad-duration 3 'limits.shutdown_timeout must be a duration such as' 'target: 127.0.0.1:5432
limits:
  shutdown_timeout: soon
'
bad_config bad-number 2 'workers must be a whole number' 'target: 127.0.0.1:5432
workers: two
'
bad_config out-of-range 3 'limits.max_connections must be between 1 and' 'target: 127.0.0.1:5432
limits:
  max_connections: 0
'
bad_config bad-enum 4 'log.level must be error, warn, info or debug' 'target: 127.0.0.1:5432

log:
  level: loud
'
bad_config bad-sslmode 3 'upstream_tls.sslmode must be disable, prefer, require, verify-ca or verify-full' 'target: 127.0.0.1:5432
upstream_tls:
  sslmode: maybe
'
bad_config bad-hostport 1 'target must be HOST:PORT' 'target: nowhere
'
bad_config not-a-mapping 2 '"limits" must be a mapping of settings' 'target: 127.0.0.1:5432
limits: 5
'
bad_config list-value 2 'expected a single value' 'target: 127.0.0.1:5432
workers: [1, 2]
'
bad_config yaml-unclosed-flow 3 "did not find expected ',' or ']'" 'target: 127.0.0.1:5432
limits: [1, 2
'
bad_config yaml-unclosed-quote 4 'found unexpected end of stream' 'target: "127.0.0.1:5432
log:
  level: info
'
bad_config yaml-indentation 2 'mapping values are not allowed in this context' 'target: 127.0.0.1:5432
  listen: 127.0.0.1:6432
'
run_phantom proxy --config "$T/does-not-exist.yaml"
[ "$RC" -eq 2 ] || fail "missing config file: exit $RC"
assert_contains "$OUT" "$T/does-not-exist.yaml: No such file or directory" "missing config file: exit 2, named"
run_phantom proxy --target 127.0.0.1:5432 --max-connections lots
[ "$RC" -eq 2 ] || fail "bad --max-connections: exit $RC"
assert_contains "$OUT" "max_connections must be a whole number" "bad --max-connections: exit 2 and reason"
run_phantom proxy --target 127.0.0.1:5432 --shutdown-timeout forever
[ "$RC" -eq 2 ] || fail "bad --shutdown-timeout: exit $RC"
ok "bad --shutdown-timeout: exit 2 ($OUT)"
run_phantom proxy --target 127.0.0.1:5432 --no-such-option
[ "$RC" -eq 2 ] || fail "unknown option: exit $RC"
ok "unknown option: exit 2"
run_phantom proxy --listen 127.0.0.1:6432
[ "$RC" -eq 2 ] || fail "no target: exit $RC"
assert_contains "$OUT" "no target" "no target anywhere: exit 2, says so"
if compgen -G "$ASAN_DIR/*" >/dev/null; then
    cat "$ASAN_DIR"/* >&2
    fail "sanitizer report on a configuration error path"
fi
ok "no sanitizer report on the error paths"

# --- a valid file ------------------------------------------------------------------
pgh_start
export PGPASSWORD=scram_pw
# cfg_proxy FILE [ARGS...]: starts the proxy with the file (no --listen/--target
# unless in ARGS) on port $LPORT; sets CP_PID, CP_LOG, CP_STOP.
cfg_proxy() {
    local f="$1"
    shift
    CP_LOG="$T/cfg.$LPORT.log"
    local asan="$T/asan.cfg.$LPORT"
    mkdir -p "$asan"
    ASAN_OPTIONS="log_path=$asan/asan:detect_leaks=1:${ASAN_OPTIONS:-}" \
        UBSAN_OPTIONS="log_path=$asan/ubsan:print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}" \
        "$PHANTOM_BIN" proxy --config "$f" "$@" >"$CP_LOG" 2>&1 &
    CP_PID=$!
    CP_STOP="$CP_PID $CP_LOG $asan"
    pgh_defer "phx_stop $CP_STOP"
    _phx_wait_port "$LPORT" "$CP_PID" || {
        cat "$CP_LOG" >&2
        fail "proxy with $f did not listen on $LPORT"
    }
}
q() { # PORT SQL
    timeout 30 psql -X -w -At -v ON_ERROR_STOP=1 \
        "host=127.0.0.1 port=$1 dbname=$PGH_DB user=phantom_scram sslmode=disable" -c "$2" 2>&1
}
# hold PORT NAME: an idle session (psql on a FIFO at fd 8) holding a slot.
hold() {
    rm -f "$T/hold"
    mkfifo "$T/hold"
    timeout 60 psql -X -w -q "host=127.0.0.1 port=$1 dbname=$PGH_DB user=phantom_scram sslmode=disable application_name=$2" \
        <"$T/hold" >/dev/null 2>&1 &
    HOLD_PID=$!
    exec 8>"$T/hold"
    echo "select 1;" >&8 # a query, so the session is plainly idle afterwards
    for _ in $(seq 1 100); do
        [ "$(pgh_admin_psql -At -d postgres -c "select count(*) from pg_stat_activity where application_name = '$2' and state = 'idle'")" = 1 ] && return 0
        sleep 0.05
    done
    fail "holding session $2 did not start"
}
release() {
    exec 8>&-
    wait "$HOLD_PID"
}

LPORT=$(pgh_free_port)
cat >"$T/phantom.yaml" <<EOF
# phantom.yaml for the test
listen: 127.0.0.1:$LPORT
target: 127.0.0.1:$PGH_PORT
workers: 1
upstream_tls:
  sslmode: disable
limits:
  max_connections: 1
  max_message_size: 64KiB
  buffer_size: 16KiB
  connect_timeout: 5s
  shutdown_timeout: 10s
log:
  level: info
  format: json
EOF
cfg_proxy "$T/phantom.yaml"
assert_eq "phantom_scram" "$(q "$LPORT" "select current_user")" "proxy from phantom.yaml: listens and relays where the file says"
assert_eq "f" "$(q "$LPORT" "select ssl from pg_stat_ssl where pid = pg_backend_pid()")" "upstream_tls.sslmode: disable from the file"
hold "$LPORT" cfg1
out=$(q "$LPORT" "select 1")
assert_contains "$out" "phantom: too many connections" "limits.max_connections: 1 from the file takes effect"
release
out=$(q "$LPORT" "select repeat('x', 70000)")
assert_contains "$out" "exceeds max_message_size (65536 bytes)" "limits.max_message_size: 64KiB from the file takes effect"
assert_eq "60000" "$(q "$LPORT" "select length(repeat('x', 60000))")" "messages under the file's limit pass"
head -n1 "$CP_LOG" | /usr/bin/python3 -c 'import json, sys; d = json.loads(sys.stdin.readline()); assert "listen" in str(d), d' ||
    fail "log.format: json from the file: first log line is not JSON: $(head -n1 "$CP_LOG")"
ok "log.format json from the file: $(head -n1 "$CP_LOG" | cut -c1-100)"
phx_stop $CP_STOP || fail "proxy from phantom.yaml did not stop cleanly"

# Command-line options override the file.
FILE_PORT=$LPORT
LPORT=$(pgh_free_port)
cfg_proxy "$T/phantom.yaml" --listen "127.0.0.1:$LPORT" --max-connections 2 --max-message-size 1MiB --log-format text
assert_eq "phantom_scram" "$(q "$LPORT" "select current_user")" "--listen overrides the file's listen"
out=$(q "$FILE_PORT" "select 1")
assert_contains "$out" "Connection refused" "... and the file's listen address is not used"
hold "$LPORT" cfg2
assert_eq "2" "$(q "$LPORT" "select 2")" "--max-connections 2 overrides the file's 1"
assert_eq "70000" "$(q "$LPORT" "select repeat('x', 70000)" | tr -d '\n' | wc -c)" "--max-message-size 1MiB overrides the file's 64KiB"
release
grep -q '^ts=.* level=info' "$CP_LOG" || fail "--log-format text did not override json: $(head -n1 "$CP_LOG")"
ok "--log-format text overrides the file's json"
phx_stop $CP_STOP || fail "proxy (overrides) did not stop cleanly"

# workers: 0 (the default) is one event loop per two usable cores, at least one.
cores=$(nproc)
want=$((cores / 2 > 0 ? cores / 2 : 1))
for w in 0 3; do
    LPORT=$(pgh_free_port)
    cfg_proxy "$T/phantom.yaml" --listen "127.0.0.1:$LPORT" --workers "$w" --log-format text
    assert_eq "1" "$(q "$LPORT" "select 1")" "proxy with --workers $w relays"
    got=$(grep -o 'event=listening.* workers=[0-9]*' "$CP_LOG" | grep -o 'workers=[0-9]*$')
    [ "$w" -eq 0 ] && exp=$want || exp=$w
    assert_eq "workers=$exp" "$got" "--workers $w starts $exp event loop(s) ($cores usable cores)"
    phx_stop $CP_STOP || fail "proxy (--workers $w) did not stop cleanly"
done

# --- help ---------------------------------------------------------------------------
run_phantom --help
[ "$RC" -eq 0 ] || fail "phantom --help: exit $RC"
assert_contains "$OUT" "proxy" "phantom --help lists the proxy command"
run_phantom proxy --help
[ "$RC" -eq 0 ] || fail "phantom proxy --help: exit $RC"
HELP="$OUT"
# Every long option the parser accepts (from the source's option table).
opts=$(sed -n '/long_opts\[\] = {/,/};/p' "$HARNESS_ROOT/src/cli/cmd_proxy.c" | grep -o '{"[a-z-]*"' | tr -d '{"')
[ "$(wc -w <<<"$opts")" -ge 17 ] || fail "could not read the option table from src/cli/cmd_proxy.c: [$opts]"
for o in $opts; do
    grep -qE -- "(^|[ ,])--$o( |$)" <<<"$HELP" || fail "proxy --help does not list --$o"
done
ok "proxy --help lists all $(wc -w <<<"$opts") options of the parser: $(echo $opts)"
for o in listen target config workers sslmode sslrootcert sslcert sslkey client-tls-cert client-tls-key \
    max-message-size max-connections buffer-size connect-timeout shutdown-timeout log-level log-format help; do
    grep -q -- "--$o" <<<"$HELP" || fail "proxy --help does not list --$o"
done
ok "proxy --help lists every option of the issue"
# Every setting of the file has a command-line option (name mapping of the docs).
for pair in listen:listen target:target workers:workers upstream_tls.sslmode:sslmode \
    upstream_tls.sslrootcert:sslrootcert upstream_tls.sslcert:sslcert upstream_tls.sslkey:sslkey \
    client_tls.cert:client-tls-cert client_tls.key:client-tls-key limits.max_message_size:max-message-size \
    limits.max_connections:max-connections limits.buffer_size:buffer-size limits.connect_timeout:connect-timeout \
    limits.shutdown_timeout:shutdown-timeout log.level:log-level log.format:log-format; do
    grep -qw -- "${pair#*:}" <<<"$opts" || fail "setting ${pair%%:*} has no --${pair#*:} option"
done
ok "every phantom.yaml setting has a command-line option"
