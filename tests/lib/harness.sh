# tests/lib/harness.sh — throwaway PostgreSQL 15 + Phantom proxy for tests.
#
# Source it from a bash test. It owns: starting a temporary PostgreSQL
# (initdb + pg_ctl in a temp dir on a free port, password roles for every
# auth method), starting the proxy under test, and removing both on exit —
# also on failure or Ctrl-C.
#
#   pgh_start [--ssl] [--conf "name = value"]...
#       exports PGH_HOST PGH_PORT PGH_DATA PGH_SOCK PGH_LOG PGH_DB PGH_TLS_DIR
#       roles (all superusers, database $PGH_DB = phantom):
#         phantom_scram / scram_pw   (SCRAM-SHA-256)
#         phantom_md5   / md5_pw     (MD5)
#         phantom_clear / clear_pw   (cleartext password)
#         phantom_trust              (trust)
#       --ssl: makes a CA and a server certificate (SAN DNS:localhost,
#       IP:127.0.0.1) in $PGH_TLS_DIR (ca.crt, server.crt, server.key) and
#       turns ssl on; hostssl and host lines both accept.
#       The server logs every statement with its parameters, and every failed
#       statement with the parameters it had (log_statement = all,
#       log_min_error_statement = error, log_parameter_max_length and
#       log_parameter_max_length_on_error = -1; a --conf line overrides).
#       Registers the leak-canary snapshot (tests/lib/canary.sh) to run at
#       exit, after the proxies stopped and before the server stops.
#   pgh_start_plain [--conf "name = value"]...
#       a second PostgreSQL 15 (same roles, database $PGH_DB) for plaintext
#       reference copies of protected data; not snapshotted by the leak
#       canary. Exports PGH_PLAIN_PORT PGH_PLAIN_DATA PGH_PLAIN_SOCK
#       PGH_PLAIN_LOG.
#   pgh_admin_psql ARGS...     psql as the bootstrap superuser over the socket
#   pgh_tls_conf FILE          writes a proxy config with TLS on both legs (after
#                              pgh_start --ssl): upstream verify-full against
#                              $PGH_TLS_DIR/ca.crt, client_tls with the server's
#                              certificate (valid for localhost and 127.0.0.1)
#   phx_start [ARGS...]        starts "$PHANTOM_BIN proxy --listen 127.0.0.1:P
#                              --target 127.0.0.1:$PGH_PORT ARGS..."; exports
#                              PHX_PORT PHX_PID PHX_LOG. Extra --target in ARGS wins.
#                              Waits until that proxy itself listens; retries on
#                              another port if the port was taken meanwhile.
#   phx_stop                   SIGTERM, wait; fails the test on a non-zero exit
#                              or any AddressSanitizer/UBSan report
#   pgh_defer "cmd"            run cmd at exit (LIFO)
#   pgh_free_port              prints a free TCP port on 127.0.0.1 (below the
#                              ephemeral range)
#   ok / fail / assert_eq / assert_contains   tiny assertions (fail exits 1)
#   canary_text / canary_email / canary_int ..., canary_snapshot, canary_done
#                              the leak canary: see tests/lib/canary.sh
#
# PHANTOM_BIN defaults to bin/phantom of this checkout.

set -o pipefail

HARNESS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${PHANTOM_BIN:=$HARNESS_ROOT/bin/phantom}"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
export PATH="$PGBIN:$PATH"
export PGCONNECT_TIMEOUT=10

_PGH_DEFERRED=()
_PGH_FAILED=0

pgh_defer() { _PGH_DEFERRED+=("$1"); }

_pgh_cleanup() {
    local rc=$?
    local i
    for ((i = ${#_PGH_DEFERRED[@]} - 1; i >= 0; i--)); do
        eval "${_PGH_DEFERRED[$i]}" || rc=1
    done
    _PGH_DEFERRED=()
    if [ -n "$_PGH_TMP" ] && [ -d "$_PGH_TMP" ]; then
        rm -rf "$_PGH_TMP"
    fi
    [ "$_PGH_FAILED" -ne 0 ] && rc=1
    exit $rc
}
trap _pgh_cleanup EXIT
trap 'exit 130' INT TERM

_PGH_TMP="$(mktemp -d /tmp/phantom-test.XXXXXX)"
chmod 755 "$_PGH_TMP"
export PGH_TMP="$_PGH_TMP"
_pgh_tmpdir() { echo "$_PGH_TMP"; }

# The leak canary: this test records its values in its own directory; the
# run-wide directory of tests/integration/run.sh (PHANTOM_CANARY_DIR when it
# starts the test) receives the snapshot's report.
export PHANTOM_CANARY_RUN_DIR="${PHANTOM_CANARY_RUN_DIR:-${PHANTOM_CANARY_DIR:-}}"
export PHANTOM_CANARY_DIR="$_PGH_TMP/canary"
source "$HARNESS_ROOT/tests/lib/canary.sh"

ok() { echo "ok - $*"; }
fail() {
    echo "FAIL - $*" >&2
    _PGH_FAILED=1
    exit 1
}
assert_eq() { # expected actual message
    if [ "$1" != "$2" ]; then fail "$3: expected [$1], got [$2]"; fi
    ok "$3"
}
assert_contains() { # haystack needle message
    case "$1" in
        *"$2"*) ok "$3" ;;
        *) fail "$3: [$2] not found in [$1]" ;;
    esac
}

# Ports below the kernel's ephemeral range, so that the local end of some
# outgoing connection cannot take the port between this check and the bind.
pgh_free_port() {
    local port low
    low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null) || low=32768
    [ "${low:-0}" -gt 16000 ] 2>/dev/null || low=32768
    for _ in $(seq 1 50); do
        port=$((15000 + RANDOM % (low - 15000)))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

# PostgreSQL refuses to run as root: run its tools as the "postgres" user then.
_pgh_as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- env PATH="$PATH" "$@"
    else
        "$@"
    fi
}

_pgh_make_certs() {
    local d="$1"
    mkdir -p "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Phantom Test CA" \
        -keyout "$d/ca.key" -out "$d/ca.crt" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        >/dev/null 2>&1 || return 1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$d/server.key" -out "$d/server.csr" >/dev/null 2>&1 || return 1
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$d/server.ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
        -days 2 -extfile "$d/server.ext" -out "$d/server.crt" >/dev/null 2>&1 || return 1
    # A second, unrelated CA: for "wrong CA" cases.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Other CA" \
        -keyout "$d/other-ca.key" -out "$d/other-ca.crt" >/dev/null 2>&1 || return 1
    chmod 600 "$d"/*.key
}

pgh_start() {
    _pgh_cluster "$(_pgh_tmpdir)" \
        --conf "log_statement = 'all'" \
        --conf "log_min_error_statement = 'error'" \
        --conf "log_parameter_max_length = -1" \
        --conf "log_parameter_max_length_on_error = -1" \
        "$@"
    pgh_defer "_canary_at_exit"
}

pgh_start_plain() {
    local saved=("${PGH_DATA:-}" "${PGH_SOCK:-}" "${PGH_LOG:-}" "${PGH_TLS_DIR:-}" "${PGH_PORT:-}")
    mkdir -p "$(_pgh_tmpdir)/plain"
    unset PGH_PORT
    _pgh_cluster "$(_pgh_tmpdir)/plain" "$@"
    export PGH_PLAIN_PORT="$PGH_PORT" PGH_PLAIN_DATA="$PGH_DATA" PGH_PLAIN_SOCK="$PGH_SOCK" PGH_PLAIN_LOG="$PGH_LOG"
    export PGH_DATA="${saved[0]}" PGH_SOCK="${saved[1]}" PGH_LOG="${saved[2]}" PGH_TLS_DIR="${saved[3]}" PGH_PORT="${saved[4]}"
}

# _pgh_initdb DATADIR LOG: a new cluster. With PGH_INITDB_CACHE (a directory
# that tests/integration/run.sh exports for the run), initdb runs once per
# run and every cluster is a copy of that pristine one (cp -a: ~0.1 s
# instead of ~1 s).
_pgh_initdb() {
    local data="$1" log="$2" cache="${PGH_INITDB_CACHE:-}"
    local args=(-U postgres --auth=trust --no-sync -E UTF8 --locale=C.UTF-8)
    if [ -z "$cache" ]; then
        _pgh_as_pg initdb -D "$data" "${args[@]}" >"$log" 2>&1
        return
    fi
    (
        flock 9
        if [ ! -f "$cache/pgdata/PG_VERSION" ]; then
            rm -rf "$cache/pgdata"
            mkdir -p "$cache"
            chmod 755 "$cache"
            [ "$(id -u)" -eq 0 ] && chown postgres "$cache"
            _pgh_as_pg initdb -D "$cache/pgdata.new" "${args[@]}" >"$log" 2>&1 &&
                mv "$cache/pgdata.new" "$cache/pgdata"
        fi
    ) 9>>"$cache.lock" || return 1
    cp -a "$cache/pgdata" "$data" 2>>"$log"
}

# _pgh_cluster DIR [--ssl] [--conf LINE]...: initdb in DIR/pgdata, start,
# roles; exports PGH_HOST PGH_DATA PGH_SOCK PGH_LOG PGH_DB PGH_TLS_DIR PGH_PORT.
_pgh_cluster() {
    local ssl=0 confs=() tmp="$1"
    shift
    while [ $# -gt 0 ]; do
        case "$1" in
            --ssl) ssl=1 ;;
            --conf) confs+=("$2"); shift ;;
            *) fail "pgh_start: unknown option $1" ;;
        esac
        shift
    done
    export PGH_HOST=127.0.0.1
    export PGH_DATA="$tmp/pgdata"
    export PGH_SOCK="$tmp/sock"
    export PGH_LOG="$tmp/postgres.log"
    export PGH_DB=phantom
    export PGH_TLS_DIR="$tmp/tls"
    mkdir -p "$PGH_SOCK"
    [ "$(id -u)" -eq 0 ] && chown postgres "$tmp" "$PGH_SOCK"

    _pgh_initdb "$PGH_DATA" "$tmp/initdb.log" || { cat "$tmp/initdb.log" >&2; fail "initdb failed"; }

    {
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$PGH_SOCK'"
        echo "fsync = off"
        echo "synchronous_commit = off"
        echo "full_page_writes = off"
        echo "max_connections = 200"
        echo "log_min_messages = warning"
        for c in "${confs[@]}"; do echo "$c"; done
    } >>"$PGH_DATA/postgresql.conf"

    local hosttype=host
    if [ "$ssl" -eq 1 ]; then
        _pgh_make_certs "$PGH_TLS_DIR" || fail "certificate generation failed"
        cp "$PGH_TLS_DIR/server.crt" "$PGH_TLS_DIR/server.key" "$PGH_DATA/"
        [ "$(id -u)" -eq 0 ] && chown postgres "$PGH_DATA/server.crt" "$PGH_DATA/server.key"
        chmod 600 "$PGH_DATA/server.key"
        {
            echo "ssl = on"
            echo "ssl_cert_file = 'server.crt'"
            echo "ssl_key_file = 'server.key'"
        } >>"$PGH_DATA/postgresql.conf"
    fi
    cat >"$PGH_DATA/pg_hba.conf" <<EOF
local all all trust
$hosttype all phantom_trust 127.0.0.1/32 trust
$hosttype all phantom_clear 127.0.0.1/32 password
$hosttype all phantom_md5 127.0.0.1/32 md5
$hosttype all all 127.0.0.1/32 scram-sha-256
EOF

    local port
    for _ in 1 2 3 4 5; do
        port="$(pgh_free_port)" || fail "no free port"
        if _pgh_as_pg pg_ctl -D "$PGH_DATA" -l "$PGH_LOG" -w -t 30 -o "-p $port" start >/dev/null 2>&1; then
            export PGH_PORT="$port"
            break
        fi
    done
    [ -n "${PGH_PORT:-}" ] || { cat "$PGH_LOG" >&2; fail "PostgreSQL did not start"; }
    pgh_defer "_pgh_as_pg pg_ctl -D '$PGH_DATA' -m immediate stop >/dev/null 2>&1 || true"

    pgh_admin_psql -d postgres -q <<'EOF' >/dev/null || fail "role setup failed"
SET password_encryption = 'scram-sha-256';
CREATE ROLE phantom_scram LOGIN SUPERUSER PASSWORD 'scram_pw';
SET password_encryption = 'md5';
CREATE ROLE phantom_md5 LOGIN SUPERUSER PASSWORD 'md5_pw';
SET password_encryption = 'scram-sha-256';
CREATE ROLE phantom_clear LOGIN SUPERUSER PASSWORD 'clear_pw';
CREATE ROLE phantom_trust LOGIN SUPERUSER;
CREATE DATABASE phantom OWNER phantom_scram;
EOF
}

pgh_admin_psql() {
    psql -X -v ON_ERROR_STOP=1 -h "$PGH_SOCK" -p "$PGH_PORT" -U postgres "$@"
}

pgh_tls_conf() {
    cat >"$1" <<EOF
upstream_tls:
  sslmode: verify-full
  sslrootcert: $PGH_TLS_DIR/ca.crt
client_tls:
  cert: $PGH_TLS_DIR/server.crt
  key: $PGH_TLS_DIR/server.key
EOF
}

# Restart/stop helpers for fault tests.
pgh_stop_server() { _pgh_as_pg pg_ctl -D "$PGH_DATA" -m "${1:-fast}" stop >/dev/null 2>&1; }
pgh_start_server() { _pgh_as_pg pg_ctl -D "$PGH_DATA" -l "$PGH_LOG" -w -t 30 -o "-p $PGH_PORT" start >/dev/null 2>&1; }

# _phx_owns_listener PID PORT: PID has a socket listening on 127.0.0.1:PORT
# (not merely: something answers there — another test may have taken the port).
_phx_owns_listener() {
    local pid="$1" hex inodes fd
    hex=$(printf '%04X' "$2")
    [ -r /proc/net/tcp ] || return 0 # cannot tell: the connect check must do
    inodes=" $(awk -v p=":$hex" '$2 ~ p"$" && $4 == "0A" { printf "socket:[%s] ", $10 }' /proc/net/tcp)"
    for fd in "/proc/$pid/fd/"*; do
        case "$inodes" in *" $(readlink "$fd" 2>/dev/null) "*) return 0 ;; esac
    done
    return 1
}

_phx_wait_port() {
    local port="$1" pid="$2"
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && _phx_owns_listener "$pid" "$port"; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

phx_start() {
    local tmp port attempt
    tmp="$(_pgh_tmpdir)"
    # Another test on this machine may take the free port first: retry then.
    for attempt in 1 2 3 4 5; do
        port="$(pgh_free_port)" || fail "no free port"
        export PHX_PORT="$port"
        export PHX_LOG="$tmp/phantom.$port.log"
        export PHX_ASAN_DIR="$tmp/asan.$port"
        mkdir -p "$PHX_ASAN_DIR"
        ASAN_OPTIONS="log_path=$PHX_ASAN_DIR/asan:detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}" \
        UBSAN_OPTIONS="log_path=$PHX_ASAN_DIR/ubsan:print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}" \
            "$PHANTOM_BIN" proxy --listen "127.0.0.1:$port" --target "127.0.0.1:${PGH_PORT:-1}" "$@" \
            >"$PHX_LOG" 2>&1 &
        export PHX_PID=$!
        if _phx_wait_port "$port" "$PHX_PID"; then
            pgh_defer "phx_stop $PHX_PID $PHX_LOG $PHX_ASAN_DIR"
            return 0
        fi
        if [ "$attempt" -lt 5 ] && ! kill -0 "$PHX_PID" 2>/dev/null &&
            grep -q "Address already in use" "$PHX_LOG" && ! compgen -G "$PHX_ASAN_DIR/*" >/dev/null; then
            wait "$PHX_PID" 2>/dev/null
            continue
        fi
        pgh_defer "phx_stop $PHX_PID $PHX_LOG $PHX_ASAN_DIR"
        cat "$PHX_LOG" >&2
        fail "proxy did not start listening on $port"
    done
}

# phx_encrypt_config DIR ENCRYPT [DOMAIN...] — writes DIR/phantom.yaml: a keys:
# section (file KEK: a master key created in DIR, keyring DIR/keyring.json)
# followed by ENCRYPT (an encrypt: section, as YAML text), and creates the
# key domains (the given ones, or every missing domain of the section).
# Sets CFG to the file; `phantom keys` output goes to DIR/keys.log.
phx_encrypt_config() {
    local dir="$1" encrypt="$2"
    shift 2
    CFG="$dir/phantom.yaml"
    "$PHANTOM_BIN" keys init-master --out "$dir/master.key" >"$dir/keys.log" 2>&1 ||
        { cat "$dir/keys.log" >&2; fail "keys init-master"; }
    printf 'keys:\n  keyring: %s/keyring.json\n  provider: file\n  file: { path: %s/master.key }\n%s\n' \
        "$dir" "$dir" "$encrypt" >"$CFG"
    "$PHANTOM_BIN" keys create -c "$CFG" "$@" >>"$dir/keys.log" 2>&1 ||
        { cat "$dir/keys.log" >&2; fail "keys create"; }
}

# phx_stop [PID LOG ASAN_DIR] — defaults to the last started proxy.
phx_stop() {
    local pid="${1:-$PHX_PID}" log="${2:-$PHX_LOG}" asan="${3:-$PHX_ASAN_DIR}" rc=0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 200); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "proxy $pid did not exit after SIGTERM" >&2
            kill -KILL "$pid" 2>/dev/null
            rc=1
        fi
    fi
    wait "$pid" 2>/dev/null
    local status=$?
    if [ "$rc" -eq 0 ] && [ "$status" -ne 0 ] && [ "$status" -ne 127 ]; then
        echo "proxy $pid exited with status $status" >&2
        rc=1
    fi
    if compgen -G "$asan/*" >/dev/null; then
        echo "sanitizer report from proxy $pid:" >&2
        cat "$asan"/* >&2
        rc=1
    fi
    if [ "$rc" -ne 0 ]; then
        echo "--- proxy log ($log) ---" >&2
        tail -n 50 "$log" >&2
        _PGH_FAILED=1
    fi
    return $rc
}
