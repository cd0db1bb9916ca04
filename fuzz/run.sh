#!/usr/bin/env bash
# fuzz/run.sh SECONDS FUZZER... — runs each libFuzzer binary for SECONDS on a
# scratch copy of its seed corpus (fuzz/corpus/NAME), after replaying every
# saved regression input (fuzz/regressions/NAME/*). Fails on any crash.
# FUZZ_WORK overrides the scratch directory (default fuzz/corpus-work), so a
# long run does not share it with a concurrent `make test`.
set -u
secs="$1"
shift
root="$(cd "$(dirname "$0")/.." && pwd)"
work_root="${FUZZ_WORK:-$root/fuzz/corpus-work}"
# An undefined-behaviour report is a failure, like an ASan one.
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
fail=0
passed=0
for bin in "$@"; do
    name="$(basename "$bin")"
    work="$work_root/$name"
    rm -rf "$work"
    mkdir -p "$work"
    if [ -d "$root/fuzz/corpus/$name" ]; then
        cp -r "$root/fuzz/corpus/$name/." "$work/" 2>/dev/null || true
    fi
    reg="$root/fuzz/regressions/$name"
    if [ -d "$reg" ] && compgen -G "$reg/*" >/dev/null; then
        if ! "$bin" "$reg"/* >"$work.log" 2>&1; then
            echo "FAIL fuzz $name: a regression input crashes again"
            tail -n 40 "$work.log"
            fail=$((fail + 1))
            continue
        fi
    fi
    if "$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$work/" \
        -rss_limit_mb=2048 "$work" >"$work.log" 2>&1; then
        execs="$(grep -m1 'stat::number_of_executed_units' "$work.log" | awk '{print $2}')"
        rate="$(grep -m1 'stat::average_exec_per_sec' "$work.log" | awk '{print $2}')"
        echo "PASS fuzz $name (${secs}s, ${execs:-?} executions, ${rate:-?}/s)"
        passed=$((passed + 1))
    else
        echo "FAIL fuzz $name — crash input saved under $work/"
        tail -n 40 "$work.log"
        fail=$((fail + 1))
    fi
done
echo "fuzz: $passed passed, $fail failed"
[ "$fail" -eq 0 ]
