# tests/lib/keys_cli.sh — helpers shared by the `phantom keys` / `phantom
# audit` command-line tests (test_keys_cli.sh, test_keys_providers.sh).
# Source it after harness.sh, once T names the directory that keeps each
# command's output.
#
#   run NAME CMD...   runs CMD; its stdout in $OUT, stderr in $ERR, status in
#                     $RC (also kept in $T/NAME.out and $T/NAME.err); a
#                     sanitizer report on stderr fails the test
#   kcvs TEXT         the "domain version kcv" lines of `keys check` output

run() {
    local name="$1"
    shift
    "$@" >"$T/$name.out" 2>"$T/$name.err"
    RC=$?
    OUT="$(cat "$T/$name.out")"
    ERR="$(cat "$T/$name.err")"
    if grep -q "Sanitizer" "$T/$name.err"; then
        cat "$T/$name.err" >&2
        fail "$name: sanitizer report"
    fi
}

kcvs() { sed -n 's/^ok \([^ ]*\) version \([0-9]*\) .* kcv=\([0-9a-f]*\)$/\1 \2 \3/p' <<<"$1"; }
