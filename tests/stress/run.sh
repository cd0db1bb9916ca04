#!/usr/bin/env bash
# tests/stress/run.sh — the long variants of the hardening tests (`make
# stress`; not part of `make test`).
#
#   tests/stress/run.sh [FUZZER_BINARY...]
#
# Steps, in this order; every step runs even when an earlier one failed, and
# the script exits non-zero if any failed:
#   1. fuzz      every fuzzer given (make passes build/fuzzers/*) through
#                fuzz/run.sh for STRESS_FUZZ_SECONDS each (default 120), in a
#                scratch corpus of its own (FUZZ_WORK), regressions replayed
#                first;
#   2. load      tests/integration/test_load.sh for STRESS_LOAD_SECONDS
#                (default 300) with LOAD_CONNS clients (default 500), against
#                the ASan build;
#   3. faults    tests/integration/test_faults_*.sh, STRESS_FAULT_ROUNDS times
#                (default 3), against the ASan build; none found is a failure;
#   4. valgrind  tests/valgrind/run.sh (the release build under memcheck)
#                over STRESS_VALGRIND_TESTS (default test_encrypt_app
#                test_psql test_psycopg test_tls test_load; make test runs
#                the first two).
# STRESS_STEPS selects steps (default "fuzz load faults valgrind").
# Prints "PASS step (Ns)" / "FAIL step (Ns)" per step and a summary with the
# total time. Logs go to STRESS_LOGDIR (default a temp dir, kept when
# something failed).
#
# Duration on the 2-core development machine, defaults: fuzz ~26 min (13
# targets x 2 min), load ~6 min, faults 3 rounds of 1-3 min, valgrind ~7 min:
# about 45 minutes in all.
set -u

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root" || exit 2

FUZZ_SECS="${STRESS_FUZZ_SECONDS:-120}"
LOAD_SECS="${STRESS_LOAD_SECONDS:-300}"
ROUNDS="${STRESS_FAULT_ROUNDS:-3}"
STEPS="${STRESS_STEPS:-fuzz load faults valgrind}"
VG_TESTS="${STRESS_VALGRIND_TESTS:-test_encrypt_app test_psql test_psycopg test_tls test_load}"
if [ -n "${STRESS_LOGDIR:-}" ]; then
    logdir="$STRESS_LOGDIR"
    keep=1
else
    logdir="$(mktemp -d /tmp/phantom-stress.XXXXXX)"
    keep=0
fi
mkdir -p "$logdir"

fuzzers=("$@")
asan_bin="$root/bin/phantom-asan"

step_fuzz() {
    if [ ${#fuzzers[@]} -eq 0 ]; then
        mapfile -t fuzzers < <(find "$root/build/fuzzers" -maxdepth 1 -type f -name 'fuzz_*' -perm -u+x 2>/dev/null | sort)
    fi
    [ ${#fuzzers[@]} -gt 0 ] || { echo "no fuzzer built (make fuzzers)"; return 1; }
    FUZZ_WORK="$logdir/fuzz-corpus" bash "$root/fuzz/run.sh" "$FUZZ_SECS" "${fuzzers[@]}"
}

step_load() {
    [ -x "$asan_bin" ] || { echo "$asan_bin is not built (make sanitize)"; return 1; }
    PHANTOM_BIN="$asan_bin" LOAD_SECONDS="$LOAD_SECS" PHX_TEST_TIMEOUT=$((LOAD_SECS + 900)) \
        PHX_TEST_LOGDIR="$logdir/load" bash "$root/tests/integration/run.sh" test_load
    local rc=$?
    grep -h '^load: summary' "$logdir/load/test_load.log" 2>/dev/null
    return $rc
}

step_faults() {
    [ -x "$asan_bin" ] || { echo "$asan_bin is not built (make sanitize)"; return 1; }
    if ! compgen -G "$root/tests/integration/test_faults_*.sh" >/dev/null; then
        echo "no tests/integration/test_faults_*.sh found"
        return 1
    fi
    local r rc=0
    for ((r = 1; r <= ROUNDS; r++)); do
        echo "faults round $r/$ROUNDS"
        PHANTOM_BIN="$asan_bin" PHX_TEST_LOGDIR="$logdir/faults.$r" \
            bash "$root/tests/integration/run.sh" test_faults_ || rc=1
    done
    return $rc
}

# Under valgrind the proxy is 20-50x slower and its RSS is valgrind's: the
# load test runs 50 clients for 20 s with its RSS bounds lifted.
step_valgrind() {
    PHANTOM_VG_DIR="$logdir/valgrind" LOAD_CONNS=50 LOAD_SECONDS=20 LOAD_RSS_BUDGET_MB=100000 \
        LOAD_RSS_DRIFT_MB=100000 bash "$root/tests/valgrind/run.sh" $VG_TESTS
}

echo "stress: steps [$STEPS]; fuzz ${FUZZ_SECS}s per target, load ${LOAD_SECS}s, fault tests x$ROUNDS; logs in $logdir"
t_all=$SECONDS
failed=()
for step in $STEPS; do
    case "$step" in
        fuzz | load | faults | valgrind) ;;
        *)
            echo "FAIL $step (unknown step)"
            failed+=("$step")
            continue
            ;;
    esac
    t0=$SECONDS
    "step_$step" 2>&1 | tee "$logdir/$step.log" | sed "s/^/  [$step] /"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 0 ]; then
        echo "PASS $step ($((SECONDS - t0))s)"
    else
        echo "FAIL $step ($((SECONDS - t0))s; log $logdir/$step.log)"
        failed+=("$step")
    fi
done
total=$((SECONDS - t_all))
echo "stress: ${#failed[@]} step(s) failed${failed[0]:+: ${failed[*]}} ($((total / 60)) min $((total % 60)) s)"
if [ ${#failed[@]} -eq 0 ] && [ "$keep" -eq 0 ]; then
    rm -rf "$logdir"
fi
[ ${#failed[@]} -eq 0 ]
