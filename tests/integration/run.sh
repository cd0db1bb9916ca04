#!/usr/bin/env bash
# tests/integration/run.sh — runs the integration tests.
#
#   tests/integration/run.sh [FILTER...]
#
# Runs every tests/integration/test_*.sh in sorted order (only those whose
# name contains one of the FILTER words, when given), each under a timeout
# (PHX_TEST_TIMEOUT seconds, default 300). Prints "PASS name (Ns)" or
# "FAIL name" followed by the script's failed checks ("FAIL - ..." lines) and
# the tail of its output, then
# "integration: N passed, N failed". Exits non-zero if any script failed or
# none matched. Full logs are kept in $PHX_TEST_LOGDIR (default: a temp dir,
# removed when everything passed).
#
# PHANTOM_BIN selects the binary under test: default bin/phantom-asan when
# it exists, else bin/phantom.
#
# The leak canary: every test records the protected values it uses
# (tests/lib/canary.sh, tests/clients/canary.py) and snapshots its
# PostgreSQL at exit (dump, server log, data files, proxy logs) into the
# run-wide directory $PHX_TEST_LOGDIR/canary (exported as PHANTOM_CANARY_DIR).
# After the last test, tests/lib/canary_check.sh prints "canary: N values
# checked across M test clusters ...: no leak" or lists every hit and fails
# the run; a full run (no FILTER) also fails if fewer than PHX_CANARY_MIN
# (default 50) values were checked.
set -u

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [ -z "${PHANTOM_BIN:-}" ]; then
    if [ -x "$root/bin/phantom-asan" ]; then
        PHANTOM_BIN="$root/bin/phantom-asan"
    else
        PHANTOM_BIN="$root/bin/phantom"
    fi
fi
case "$PHANTOM_BIN" in
    /*) ;;
    *) PHANTOM_BIN="$PWD/$PHANTOM_BIN" ;; # the scripts may change directory
esac
export PHANTOM_BIN
if [ ! -x "$PHANTOM_BIN" ]; then
    echo "integration: $PHANTOM_BIN is not built (make all sanitize)" >&2
    exit 2
fi

per_test_timeout="${PHX_TEST_TIMEOUT:-300}"
keep_logs=0
if [ -n "${PHX_TEST_LOGDIR:-}" ]; then
    logdir="$PHX_TEST_LOGDIR"
    mkdir -p "$logdir"
    keep_logs=1
else
    logdir="$(mktemp -d /tmp/phantom-integration.XXXXXX)"
fi
# One initdb for the whole run: each test's cluster is a copy (harness.sh).
initdb_dir="$(mktemp -d /tmp/phantom-initdb.XXXXXX)"
chmod 755 "$initdb_dir"
trap 'rm -rf "$initdb_dir"' EXIT
export PGH_INITDB_CACHE="$initdb_dir/cache"
export PHANTOM_CANARY_DIR="$logdir/canary"
rm -rf "$PHANTOM_CANARY_DIR"
mkdir -p "$PHANTOM_CANARY_DIR"
unset PHANTOM_CANARY_RUN_DIR

matches() { # name filters...
    local name="$1" f
    shift
    [ $# -eq 0 ] && return 0
    for f in "$@"; do
        case "$name" in *"$f"*) return 0 ;; esac
    done
    return 1
}

echo "integration: binary $PHANTOM_BIN, timeout ${per_test_timeout}s per script"
passed=0
failed=0
failed_names=()
start_all=$SECONDS
for script in $(find "$here" -maxdepth 1 -name 'test_*.sh' | sort); do
    name="$(basename "$script" .sh)"
    matches "$name" "$@" || continue
    log="$logdir/$name.log"
    t0=$SECONDS
    # --kill-after: a script that ignores SIGTERM is still stopped.
    timeout --kill-after=10 "$per_test_timeout" bash "$script" >"$log" 2>&1 </dev/null
    rc=$?
    dt=$((SECONDS - t0))
    if [ "$rc" -eq 0 ]; then
        echo "PASS $name (${dt}s)"
        passed=$((passed + 1))
    else
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            echo "FAIL $name (timed out after ${per_test_timeout}s)"
        else
            echo "FAIL $name (exit $rc, ${dt}s)"
        fi
        # Every failed check first (some scripts go on after one), then the end.
        if grep -q '^FAIL - ' "$log"; then
            grep '^FAIL - ' "$log" | head -n 20 | sed 's/^/    ! /'
        fi
        tail -n 25 "$log" | sed 's/^/    | /'
        echo "    full log: $log"
        failed=$((failed + 1))
        failed_names+=("$name")
        keep_logs=1
    fi
done

total=$((passed + failed))
# The leak canary over every test's snapshot; the minimum number of values
# only applies to a full run.
canary_min=0
[ $# -eq 0 ] && canary_min="${PHX_CANARY_MIN:-50}"
canary_ok=1
if [ "$total" -gt 0 ]; then
    bash "$root/tests/lib/canary_check.sh" --min "$canary_min" "$PHANTOM_CANARY_DIR" || canary_ok=0
fi
echo "integration: $passed passed, $failed failed ($((SECONDS - start_all))s)"
if [ "$failed" -gt 0 ]; then
    echo "failed: ${failed_names[*]}"
fi
if [ "$canary_ok" -eq 0 ]; then
    echo "failed: the leak canary (report: $PHANTOM_CANARY_DIR)"
    keep_logs=1
fi
rm -rf "$initdb_dir"
[ "$keep_logs" -eq 0 ] && rm -rf "$logdir"
if [ "$total" -eq 0 ]; then
    echo "integration: no test matched: $*" >&2
    exit 1
fi
[ "$failed" -eq 0 ] && [ "$canary_ok" -eq 1 ]
