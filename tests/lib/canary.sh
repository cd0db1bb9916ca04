# shellcheck shell=bash
# tests/lib/canary.sh — the plaintext-leak canary: unique random values for
# protected columns, recorded so that a snapshot of the test's PostgreSQL can
# prove none of them reached the database in the clear.
#
# Source it from a test (harness.sh sources it). Every value a test sends
# through the proxy into a protected column should come from here:
#
#   canary_text TAG     prints "cnry-TAG-<20 hex>"            (text columns)
#   canary_email TAG    prints "cnry<20 hex>@example.com"     (email-like text)
#   canary_int          prints a random 15-digit integer whose digits are
#                       unlikely anywhere else (starts with 7)
#   canary_texts TAG N, canary_emails N, canary_ints N
#                       print N such values, one per line (one read of
#                       /dev/urandom: for data sets of thousands of rows)
#
# Each value is appended to $PHANTOM_CANARY_DIR/values (one per line; safe
# from $(...) subshells and from concurrent processes). harness.sh points
# PHANTOM_CANARY_DIR at this test's own directory ($PGH_TMP/canary) and keeps
# the run-wide directory of tests/integration/run.sh in
# PHANTOM_CANARY_RUN_DIR; tests/clients/canary.py (Python) and
# tests/clients/node/canary.js (node) record to the same file.
#
# The snapshot (harness.sh registers it in pgh_start: it runs at exit, after
# the proxies stopped, before the server stops):
#
#   canary_snapshot [--report DIR]
#       looks for every value this test recorded so far — as is and as the
#       hex that bytea output would show — in
#         * pg_dumpall, taken directly from the test's PostgreSQL,
#         * the server log (the pg_ctl log and, with logging_collector, the
#           files in the data directory's log directory; pgh_start sets
#           log_statement = all and logs the parameters of every statement,
#           failed ones included),
#         * every file of the data directory (heap, indexes, TOAST, WAL,
#           after a CHECKPOINT),
#         * the proxies' logs ($PGH_TMP/phantom.*.log);
#       and appends to DIR (default: the run-wide directory, or
#       $PHANTOM_CANARY_DIR/report when the test runs alone):
#         values     the values looked for
#         clusters   one line per snapshot: test, counts, sizes, seconds
#         hits       one line per hit: test, artifact, where, canary, and an
#                    excerpt with the canary masked as <canary>
#         errors     a snapshot that could not be completed
#       tests/lib/canary_check.sh reads DIR and fails on any hit or error.
#   canary_done
#       no snapshot at exit. For a test that puts the values into the
#       database in the clear on purpose (migrate --decrypt): it calls
#       canary_snapshot before that step, then canary_done. (Run on its own,
#       the test still fails at exit if that snapshot found anything.)
#
# Values a test writes in plaintext on purpose (pass-through tables,
# plaintext reference copies in the same cluster, pre-migration data) must not
# come from here: keep plaintext references in a second cluster
# (pgh_start_plain), which is not snapshotted.
#
# The values themselves are not secret: they only have to be unique, so that
# finding one in a dump or a log can only mean a leak.

_canary_hex() { # N bytes of randomness as hex
    od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

_canary_values_file() {
    local dir="${PHANTOM_CANARY_DIR:-${PGH_TMP:-/tmp}/canary}"
    mkdir -p "$dir"
    printf '%s\n' "$dir/values"
}

_canary_record() {
    printf '%s\n' "$1" >>"$(_canary_values_file)"
}

canary_text() {
    local v
    v="cnry-${1:-x}-$(_canary_hex 10)"
    _canary_record "$v"
    printf '%s\n' "$v"
}

canary_email() {
    local v
    v="cnry$(_canary_hex 10)@example.com"
    _canary_record "$v"
    printf '%s\n' "$v"
}

canary_int() {
    local v
    v="7$(od -An -N8 -tu8 /dev/urandom | tr -d ' \n' | cut -c1-14)"
    while [ "${#v}" -lt 15 ]; do v="${v}3"; done
    _canary_record "$v"
    printf '%s\n' "$v"
}

# _canary_bulk N FORMAT: N values from one read of /dev/urandom; FORMAT is
# text:TAG, email or int. Recorded in one append, printed one per line.
_canary_bulk() {
    local n="$1" kind="$2" out
    [ "$n" -gt 0 ] 2>/dev/null || return 0
    out=$(od -An -v -N$((n * 10)) -tx1 /dev/urandom | tr -d ' \n' |
        awk -v n="$n" -v kind="$kind" '{
            for (i = 0; i < n; i++) {
                h = substr($0, i * 20 + 1, 20)
                if (kind == "email") print "cnry" h "@example.com"
                else if (kind == "int") {
                    d = "7"
                    for (j = 1; j <= 14; j++) d = d (index("0123456789abcdef", substr(h, j, 1)) - 1) % 10
                    print d
                } else print "cnry-" substr(kind, 6) "-" h
            }
        }') || return 1
    printf '%s\n' "$out" >>"$(_canary_values_file)"
    printf '%s\n' "$out"
}
canary_texts() { _canary_bulk "$2" "text:${1:-x}"; }
canary_emails() { _canary_bulk "$1" email; }
canary_ints() { _canary_bulk "$1" int; }

# --- the snapshot ---------------------------------------------------------------

_CANARY_DONE=0
_CANARY_SNAPS=0
canary_done() { _CANARY_DONE=1; }

_canary_now() { echo "$EPOCHREALTIME"; }

# How the search stays fast with tens of thousands of values: every value
# of canary_text/canary_email starts with "cnry", so grep extracts each run
# of canary characters starting at "cnry" (and each run of hex digits
# starting at "636e7279", the hex of "cnry": bytea output), one regular
# expression whatever the number of values; awk then tests every "cnry" in
# the run against the set of values (each value length). The few values
# that are not of that form (canary_int, values a test built itself) are
# looked for with grep -F, as is and as hex.
_CANARY_RE='^cnry[-0-9A-Za-z@._+]*$'

# _canary_prepare SNAP: SNAP/values (sorted, unique) -> SNAP/other (fixed
# strings for the values not of that form, and their hex).
_canary_prepare() {
    LC_ALL=C grep -v -E "$_CANARY_RE" "$1/values" |
        perl -ne 'chomp; next if $_ eq ""; print "$_\n", unpack("H*", $_), "\n"' >"$1/other"
}

# _canary_find SNAP GREP-ARGS...: the canaries in the files GREP-ARGS name
# (grep -n for line numbers, -b -r for byte offsets in a directory). Prints
# "WHERE<TAB>FOUND<TAB>VALUE<TAB>FORM": WHERE as grep gave it (LINE, or
# FILE:OFFSET of FOUND), FOUND the text as it occurs (the value, or its
# hex when FORM is "hex").
_canary_find() {
    local snap="$1"
    shift
    {
        LC_ALL=C grep -a -o -E 'cnry[-0-9A-Za-z@._+]*|636e7279[0-9a-f]*' "$@"
        if [ -s "$snap/other" ]; then LC_ALL=C grep -a -o -F -f "$snap/other" "$@"; fi
    } 2>/dev/null | LC_ALL=C awk -v valfile="$snap/values" -v re="$_CANARY_RE" '
        BEGIN {
            while ((getline v < valfile) > 0) {
                if (v == "") continue
                val[v] = 1
                if (v ~ re) { lens[length(v)] = 1; if (length(v) > maxlen) maxlen = length(v) }
                else hexof[hex(v)] = v
            }
            for (i = 32; i < 127; i++) chr[sprintf("%02x", i)] = sprintf("%c", i)
        }
        function hex(s,    i, r) {
            r = ""
            for (i = 1; i <= length(s); i++) r = r sprintf("%02x", ord(substr(s, i, 1)))
            return r
        }
        function ord(c,    i) {
            if (!ordinit) { for (i = 1; i < 256; i++) ordtab[sprintf("%c", i)] = i; ordinit = 1 }
            return ordtab[c]
        }
        function out(off, found, v, form) {
            if (byte) printf "%s:%d\t%s\t%s\t%s\n", where, base + off, found, v, form
            else printf "%s\t%s\t%s\t%s\n", where, found, v, form
        }
        {
            # LINE:MATCH (grep -n), or FILE:OFFSET:MATCH (grep -b, -r)
            p = index($0, ":"); where = substr($0, 1, p - 1); m = substr($0, p + 1)
            byte = 0
            if (where !~ /^[0-9]+$/) {
                byte = 1; p = index(m, ":"); base = substr(m, 1, p - 1); m = substr(m, p + 1)
            }
            if (m in val) out(0, m, m, "plain")
            else if (m in hexof) out(0, m, hexof[m], "hex")
            else if (substr(m, 1, 4) == "cnry") {
                for (q = 1; (r = index(substr(m, q), "cnry")) > 0; q += r) {
                    q += r - 1; r = 1
                    for (L in lens) {
                        s = substr(m, q, L + 0)
                        if (length(s) == L + 0 && (s in val)) out(q - 1, s, s, "plain")
                    }
                }
            } else if (substr(m, 1, 8) == "636e7279") {
                for (q = 1; (r = index(substr(m, q), "636e7279")) > 0; q += r) {
                    q += r - 1; r = 1
                    d = ""
                    for (j = q; j < length(m) && length(d) < maxlen; j += 2) {
                        pair = substr(m, j, 2)
                        if (!(pair in chr)) break
                        d = d chr[pair]
                    }
                    for (L in lens) {
                        s = substr(d, 1, L + 0)
                        if (length(s) == L + 0 && (s in val)) out(q - 1, substr(m, q, 2 * L), s, "hex")
                    }
                }
            }
        }'
}

# _canary_text_hits TEST ARTIFACT FILE LABEL SNAP: the canaries in one text
# file; appends hit lines to SNAP/hits (the first 200 with an excerpt of
# their line), prints the number of hits.
_canary_text_hits() {
    local test="$1" art="$2" file="$3" label="$4" snap="$5" n
    n=$(_canary_find "$snap" -n -- "$file" |
        awk -v max=200 -v out="$snap/matches" 'NR <= max { print > out } END { print NR + 0 }')
    if [ "${n:-0}" -gt 0 ]; then
        LC_ALL=C awk -F'\t' -v test="$test" -v art="$art" -v label="$label" -v n="$n" '
            FILENAME == ARGV[1] {
                want[$1] = want[$1] SUBSEP $2; order[++k] = $1 SUBSEP $2 SUBSEP $3 SUBSEP $4; next
            }
            (FNR in want) { line[FNR] = $0 }
            END {
                for (i = 1; i <= k; i++) {
                    split(order[i], a, SUBSEP)
                    s = line[a[1]]
                    nm = split(want[a[1]], ms, SUBSEP)
                    for (j = 2; j <= nm; j++) s = mask(s, ms[j])
                    q = index(s, "<canary>")
                    ex = substr(s, q > 70 ? q - 70 : 1, 160)
                    gsub(/[\t\r\n]/, " ", ex)
                    gsub(/[^ -~]/, ".", ex)
                    printf "%s\t%s\t%s:%s\t%s%s\t%s\n", test, art, label, a[1], a[4] == "hex" ? "hex of " : "", a[3], ex
                }
                if (n > k) printf "%s\t%s\t%s\t(%d more hits not listed)\t\n", test, art, label, n - k
            }
            function mask(s, m,    r, q) {
                r = ""
                while ((q = index(s, m)) > 0) { r = r substr(s, 1, q - 1) "<canary>"; s = substr(s, q + length(m)) }
                return r s
            }' "$snap/matches" "$file" >>"$snap/hits"
    fi
    rm -f "$snap/matches"
    echo "${n:-0}"
}

# _canary_data_hits TEST DATADIR SNAP: the canaries in every file of the
# data directory (not its log directory: that is the server log); appends
# hit lines (the first 100; the first 20 with printable context) to
# SNAP/hits, prints the number of hits.
_canary_data_hits() {
    local test="$1" data="$2" snap="$3" n
    n=$(_canary_find "$snap" -r -b --exclude-dir=log -- "$data" |
        awk -v max=100 -v out="$snap/matches" 'NR <= max { print > out } END { print NR + 0 }')
    if [ "${n:-0}" -gt 0 ]; then
        local where found value form file off ex k=0
        while IFS=$'\t' read -r where found value form; do
            off="${where##*:}"
            file="${where%:*}"
            ex=""
            if [ "$k" -lt 20 ]; then
                ex=$(dd if="$file" bs=1 skip=$((off > 40 ? off - 40 : 0)) count=$((${#found} + 80)) 2>/dev/null |
                    LC_ALL=C tr -c '[:print:]' '.')
                ex=$(sed -E 's/cnry[-0-9A-Za-z@._+]*/<canary>/g' <<<"${ex//"$found"/<canary>}")
            fi
            k=$((k + 1))
            [ "$form" = hex ] && value="hex of $value"
            printf '%s\tdata-file\t%s@%s\t%s\t%s\n' "$test" "${file#"$data"/}" "$off" "$value" "$ex" >>"$snap/hits"
        done <"$snap/matches"
        [ "$n" -gt "$k" ] && printf '%s\tdata-file\t%s\t(%d more hits not listed)\t\n' "$test" "$data" $((n - k)) >>"$snap/hits"
    fi
    rm -f "$snap/matches"
    echo "${n:-0}"
}

_canary_size() { # total bytes of the given files
    cat -- "$@" 2>/dev/null | wc -c
}

canary_snapshot() {
    local dir="${PHANTOM_CANARY_DIR:-${PGH_TMP:-/tmp}/canary}"
    local report="${PHANTOM_CANARY_RUN_DIR:-$dir/report}"
    [ "${1:-}" = "--report" ] && report="$2"
    local test t0 snap nval hits=0 h errs=()
    test="$(basename "$0" .sh)"
    t0=$(_canary_now)
    mkdir -p "$report"
    _CANARY_SNAPS=$((_CANARY_SNAPS + 1))
    snap="$dir/snap.$_CANARY_SNAPS"
    mkdir -p "$snap"
    if [ ! -s "$dir/values" ]; then
        echo "canary: $test recorded no values: nothing to look for"
        return 0
    fi
    LC_ALL=C sort -u "$dir/values" | grep -v '^$' >"$snap/values"
    nval=$(wc -l <"$snap/values")
    _canary_prepare "$snap"

    # The server must run for pg_dumpall (a test may leave it stopped).
    if ! _pgh_as_pg pg_ctl -D "$PGH_DATA" status >/dev/null 2>&1; then
        pgh_start_server || errs+=("the server did not start for the snapshot")
    fi
    # 1. pg_dumpall, directly from PostgreSQL: in the background while the
    #    files are searched. Then a CHECKPOINT: dirty pages and WAL reach
    #    the files searched in 3.
    local dump="$snap/dumpall.sql" dump_bytes=0 dump_pid
    #    (Their own statements are not logged.)
    PGOPTIONS="-c log_statement=none" timeout 300 pg_dumpall -h "$PGH_SOCK" -p "$PGH_PORT" -U postgres \
        --lock-wait-timeout=20s -f "$dump" 2>"$snap/dumpall.err" &
    dump_pid=$!
    PGOPTIONS="-c log_statement=none" timeout 60 psql -X -q -h "$PGH_SOCK" -p "$PGH_PORT" -U postgres \
        -d postgres -c CHECKPOINT >/dev/null 2>&1 || errs+=("CHECKPOINT failed")
    # 2. the server log(s)
    local f log_bytes=0 logs=()
    [ -f "$PGH_LOG" ] && logs+=("$PGH_LOG")
    for f in "$PGH_DATA"/log/*; do [ -f "$f" ] && logs+=("$f"); done
    for f in "${logs[@]}"; do
        h=$(_canary_text_hits "$test" server-log "$f" "${f#"$PGH_TMP"/}" "$snap")
        hits=$((hits + h))
    done
    [ "${#logs[@]}" -gt 0 ] && log_bytes=$(_canary_size "${logs[@]}")
    # 3. the data directory: heap, indexes, TOAST, WAL, everything
    h=$(_canary_data_hits "$test" "$PGH_DATA" "$snap")
    hits=$((hits + h))
    local data_bytes
    data_bytes=$(du -sb --exclude=log "$PGH_DATA" 2>/dev/null | cut -f1)
    # 4. the proxies' logs
    local plogs=() plog_bytes=0
    for f in "$PGH_TMP"/phantom.*.log; do [ -f "$f" ] && plogs+=("$f"); done
    for f in "${plogs[@]}"; do
        h=$(_canary_text_hits "$test" proxy-log "$f" "${f#"$PGH_TMP"/}" "$snap")
        hits=$((hits + h))
    done
    [ "${#plogs[@]}" -gt 0 ] && plog_bytes=$(_canary_size "${plogs[@]}")
    if wait "$dump_pid"; then
        dump_bytes=$(wc -c <"$dump")
        h=$(_canary_text_hits "$test" dump "$dump" pg_dumpall "$snap")
        hits=$((hits + h))
    else
        errs+=("pg_dumpall failed: $(head -c 300 "$snap/dumpall.err" | tr '\n' ' ')")
    fi
    rm -f "$dump"

    local secs
    secs=$(awk -v a="$t0" -v b="$(_canary_now)" 'BEGIN { printf "%.1f", b - a }')
    cat "$snap/values" >>"$report/values"
    [ -f "$snap/hits" ] && cat "$snap/hits" >>"$report/hits"
    for f in "${errs[@]}"; do printf '%s\t%s\n' "$test" "$f" >>"$report/errors"; done
    printf '%s\tvalues=%s\thits=%s\tdump=%s\tserver_log=%s\tdata=%s\tproxy_log=%s\tseconds=%s\n' \
        "$test" "$nval" "$hits" "$dump_bytes" "$log_bytes" "${data_bytes:-0}" "$plog_bytes" "$secs" >>"$report/clusters"
    echo "canary: $nval values looked for in pg_dumpall ($dump_bytes bytes), the server log ($log_bytes bytes)," \
        "the data directory (${data_bytes:-0} bytes) and the proxy logs ($plog_bytes bytes): $hits hits, ${#errs[@]} errors (${secs}s)"
    [ "$hits" -eq 0 ] && [ "${#errs[@]}" -eq 0 ]
}

# Registered by pgh_start (harness.sh): the snapshot at exit, unless the test
# took it itself (canary_done). A test run on its own (no run-wide
# directory) is failed here on any hit of its snapshots; under
# tests/integration/run.sh the run fails at its end.
_canary_at_exit() {
    if [ "$_CANARY_DONE" -eq 0 ]; then
        _CANARY_DONE=1
        canary_snapshot
    fi
    if [ -z "${PHANTOM_CANARY_RUN_DIR:-}" ] && [ -d "$PHANTOM_CANARY_DIR/report" ]; then
        bash "$(dirname "${BASH_SOURCE[0]}")/canary_check.sh" --min 0 "$PHANTOM_CANARY_DIR/report" || return 1
    fi
    return 0
}
