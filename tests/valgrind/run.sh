#!/usr/bin/env bash
# tests/valgrind/run.sh — the RELEASE proxy (bin/phantom, not the ASan build)
# under valgrind memcheck (`make valgrind`, part of `make test`; `make
# stress` runs the longer list).
#
#   tests/valgrind/run.sh [TEST...]
#
# 1. Self-test: tests/valgrind/selftest.c, run through the same wrapper and
#    options, must be reported for a definitely + indirectly lost block and
#    for an invalid read (exit 1, the error in its log), and not for a clean
#    run — so a silent valgrind run means something.
# 2. The integration tests named (default $VALGRIND_TESTS, else
#    "test_encrypt_app test_psql": the seed's application end to end —
#    extended and simple protocol, text and binary formats, prepared
#    statements, pipelines, COPY in text/CSV/binary, pg_dump and restore,
#    refusals, decryption errors, DDL, `phantom keys` — and psql's
#    multi-statement queries, \copy, notices, LISTEN/NOTIFY and cancel) run
#    by tests/integration/run.sh with PHANTOM_BIN=tests/valgrind/phantom-vg:
#    every phantom process they start (proxies and CLI commands) runs under
#    valgrind --error-exitcode=1 --leak-check=full
#    --errors-for-leak-kinds=definite,indirect; a proxy exiting non-zero
#    fails its test (harness).
# 3. Every valgrind log must be empty (--quiet: a log holds only errors) and
#    at least one proxy must have run under valgrind. Non-empty logs are
#    printed with the command that produced them.
# Prints "valgrind: N phantom processes (M proxies) under memcheck: no error"
# or the errors; exits non-zero on any failure. PHANTOM_VG_BIN selects the
# binary (default bin/phantom); logs are kept in PHANTOM_VG_DIR (default a
# temp dir, removed when everything passed). Takes about 2 minutes on the
# 2-core development machine with the default tests.
set -u

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
BIN="${PHANTOM_VG_BIN:-$root/bin/phantom}"
case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac
if [ $# -gt 0 ]; then
    tests=("$@")
else
    read -r -a tests <<<"${VALGRIND_TESTS:-test_encrypt_app test_psql}"
fi
command -v valgrind >/dev/null || { echo "valgrind: not installed (apt-get install valgrind)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "valgrind: $BIN is not built (make)" >&2; exit 2; }

if [ -n "${PHANTOM_VG_DIR:-}" ]; then
    top="$PHANTOM_VG_DIR"
    keep=1
else
    top="$(mktemp -d /tmp/phantom-valgrind.XXXXXX)"
    keep=0
fi
mkdir -p "$top"
failures=0
bad() {
    echo "FAIL - valgrind: $*" >&2
    failures=$((failures + 1))
}
t0=$SECONDS

# --- 1. self-test ------------------------------------------------------------------
self="$top/selftest"
mkdir -p "$self"
if ! cc -std=c17 -g -O0 -Wall -Wextra -Werror -o "$self/selftest" "$here/selftest.c" 2>"$self/cc.log"; then
    cat "$self/cc.log" >&2
    bad "cannot build the self-test program"
else
    for mode in leak read clean; do
        d="$self/$mode"
        PHANTOM_VG_DIR="$d" PHANTOM_VG_BIN="$self/selftest" timeout 120 "$here/phantom-vg" "$mode" >/dev/null 2>&1
        rc=$?
        log="$(cat "$d"/vg.*.log 2>/dev/null)"
        case "$mode" in
            leak) want_rc=1 want="definitely lost" want2="indirectly lost" ;;
            read) want_rc=1 want="Invalid read" want2="Invalid read" ;;
            clean) want_rc=0 want="" want2="" ;;
        esac
        if [ "$rc" -ne "$want_rc" ]; then
            bad "self-test '$mode': exit $rc, expected $want_rc"
        elif [ -n "$want" ] && { [[ "$log" != *"$want"* ]] || [[ "$log" != *"$want2"* ]]; }; then
            bad "self-test '$mode': the log does not report '$want' / '$want2'"
        elif [ -z "$want" ] && [ -n "$log" ]; then
            bad "self-test '$mode': a clean program got a report: $log"
        else
            echo "ok - valgrind self-test '$mode': ${want:-no error} reported as expected (exit $rc)"
        fi
    done
fi

# --- 2. integration tests with phantom under valgrind --------------------------------
logs="$top/logs"
mkdir -p "$logs"
echo "valgrind: ${tests[*]} with $BIN under memcheck"
PHANTOM_VG_DIR="$logs" PHANTOM_VG_BIN="$BIN" PHANTOM_BIN="$here/phantom-vg" \
    PHX_TEST_TIMEOUT="${VALGRIND_TEST_TIMEOUT:-900}" PHX_TEST_LOGDIR="$top/integration" \
    bash "$root/tests/integration/run.sh" "${tests[@]}" || bad "integration tests under valgrind failed (logs: $top/integration)"

# --- 3. the logs ----------------------------------------------------------------------
nproc_vg=0
nproxy=0
if [ -f "$logs/commands" ]; then
    nproc_vg=$(wc -l <"$logs/commands")
    nproxy=$(grep -c '^[0-9]* proxy ' "$logs/commands")
fi
[ "$nproxy" -gt 0 ] || bad "no proxy ran under valgrind"
nbad=0
for f in "$logs"/vg.*.log; do
    [ -s "$f" ] || continue
    nbad=$((nbad + 1))
    pid="${f##*/vg.}"
    pid="${pid%.log}"
    echo "--- valgrind report of: $(grep -m1 "^$pid " "$logs/commands" | cut -d' ' -f2- | cut -c1-200)" >&2
    head -n 80 "$f" >&2
done
[ "$nbad" -eq 0 ] || bad "$nbad of $nproc_vg phantom processes have valgrind reports (above; logs in $logs)"

if [ "$failures" -eq 0 ]; then
    echo "valgrind: $nproc_vg phantom processes ($nproxy proxies) under memcheck: no error, no leak ($((SECONDS - t0))s)"
    [ "$keep" -eq 0 ] && rm -rf "$top"
    exit 0
fi
echo "valgrind: $failures failure(s); logs kept in $top ($((SECONDS - t0))s)" >&2
exit 1
