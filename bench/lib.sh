# shellcheck shell=bash
# bench/lib.sh — shared helpers for benchmarks (never tests).
#
# Source it after tests/lib/harness.sh (which owns the throwaway PostgreSQL,
# the proxy and the cleanup on exit). This file owns: starting a throwaway
# PgBouncer in front of that PostgreSQL, running one pgbench measurement and
# reducing repeated measurements to medians.
#
#   bench_pgbouncer_start USER DB   exports BENCH_PGB_PORT BENCH_PGB_PID
#       session pooling, auth_type trust (USER must be a trust role on the
#       throwaway server), config/log/pid in a temp dir; runs as "postgres"
#       when we are root (PgBouncer refuses to run as root); stopped on exit.
#   bench_pgbench PORT CLIENTS THREADS SECONDS ARGS...
#       runs pgbench against 127.0.0.1:PORT; prints "TPS LATENCY_MS", the
#       latency being 1000 * CLIENTS / TPS: the same figure as pgbench's
#       "latency average" (without -R/-L/-r), with more than its 3 decimals
#   bench_median "N N ..."...       prints the median of the numbers (arguments
#                                   may hold several, separated by blanks)
#   bench_loadavg                   prints the 1/5/15-minute load average

: "${BENCH_USER:=phantom_trust}"

_bench_wait_port() { # port pid
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

_bench_pgbouncer_stop() { # pid
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 1 100); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    return 0
}

bench_pgbouncer_start() {
    local user="$1" db="$2" dir port
    command -v pgbouncer >/dev/null || fail "pgbouncer is not installed (apt-get install pgbouncer)"
    dir="$PGH_TMP/pgbouncer"
    mkdir -p "$dir"
    port="$(pgh_free_port)" || fail "no free port"
    printf '"%s" ""\n' "$user" >"$dir/userlist.txt"
    cat >"$dir/pgbouncer.ini" <<EOF2
[databases]
$db = host=127.0.0.1 port=$PGH_PORT dbname=$db

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = session
max_client_conn = 100
default_pool_size = 20
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
log_connections = 0
log_disconnections = 0
EOF2
    local run=()
    if [ "$(id -u)" -eq 0 ]; then
        chown -R postgres "$dir"
        # setpriv execs pgbouncer itself, so $! is PgBouncer's own pid.
        run=(setpriv --reuid=postgres --regid=postgres --init-groups)
    fi
    "${run[@]}" pgbouncer "$dir/pgbouncer.ini" >"$dir/stdout.log" 2>&1 &
    export BENCH_PGB_PID=$!
    export BENCH_PGB_PORT="$port"
    pgh_defer "_bench_pgbouncer_stop $BENCH_PGB_PID"
    if ! _bench_wait_port "$port" "$BENCH_PGB_PID"; then
        cat "$dir/stdout.log" "$dir/pgbouncer.log" >&2 2>/dev/null
        fail "pgbouncer did not start listening on $port"
    fi
}

bench_pgbench() { # port clients threads seconds [pgbench args...]
    local port="$1" clients="$2" threads="$3" secs="$4" out
    shift 4
    out="$(PGSSLMODE=disable timeout $((secs + 60)) pgbench -n -h 127.0.0.1 -p "$port" \
        -U "$BENCH_USER" -c "$clients" -j "$threads" -T "$secs" "$@" "$PGH_DB" 2>&1)" ||
        { echo "$out" >&2; fail "pgbench against port $port failed"; }
    awk -v c="$clients" '/^tps = / {tps = $3}
         END {if (tps == "" || tps <= 0) exit 1; printf "%s %.6f\n", tps, 1000 * c / tps}' <<<"$out" ||
        { echo "$out" >&2; fail "could not parse pgbench output"; }
}

bench_median() {
    printf '%s\n' "$*" | tr -s ' \t' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1}
        END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

bench_loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
