#!/usr/bin/env bash
# tests/run-unit.sh BIN... — runs each cmocka unit-test binary (built with
# ASan+UBSan) and totals the results; fails if any binary fails.
set -u
passed=0
failed=0
for t in "$@"; do
    # A skipped cmocka test is not a pass: treat it as a failure.
    if out="$("$t" 2>&1)" && ! grep -q 'SKIPPED' <<<"$out"; then
        passed=$((passed + 1))
        echo "PASS $(basename "$t") ($(grep -m1 -o '[0-9]* test(s) run' <<<"$out"))"
    else
        failed=$((failed + 1))
        echo "FAIL $(basename "$t")"
        echo "$out" | tail -n 60
    fi
done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
