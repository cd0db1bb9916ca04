#!/usr/bin/env bash
# tests/lib/canary_check.sh — the verdict of the plaintext-leak canary.
#
#   tests/lib/canary_check.sh [--min N] DIR
#
# DIR is a report directory written by canary_snapshot (tests/lib/canary.sh):
# values, clusters, hits, errors. Prints
#   canary: N values checked across M test clusters (dumps, server logs, data files, proxy logs): no leak
# and exits 0; or lists every hit (test, artifact, where, canary, excerpt
# with the canary masked) and every incomplete snapshot and exits 1. Also
# exits 1 when fewer than N distinct values were checked (default 50): a
# refactoring that silently stops recording canaries must not pass as "no
# leak".
set -u

min=50
if [ "${1:-}" = "--min" ]; then
    min="$2"
    shift 2
fi
dir="${1:?usage: canary_check.sh [--min N] DIR}"

nvalues=0
[ -s "$dir/values" ] && nvalues=$(LC_ALL=C sort -u "$dir/values" | grep -c -v '^$')
nclusters=0
[ -s "$dir/clusters" ] && nclusters=$(cut -f1 "$dir/clusters" | sort -u | wc -l)
nhits=0 # every hit (the hits file lists the first ones of each artifact)
[ -s "$dir/clusters" ] && nhits=$(awk -F'\t' '{ for (i = 2; i <= NF; i++) if ($i ~ /^hits=/) n += substr($i, 6) } END { print n + 0 }' "$dir/clusters")
nlisted=0
[ -s "$dir/hits" ] && nlisted=$(wc -l <"$dir/hits")
nerrors=0
[ -s "$dir/errors" ] && nerrors=$(wc -l <"$dir/errors")
what="(dumps, server logs, data files, proxy logs)"

rc=0
if [ "$nhits" -gt 0 ] || [ "$nlisted" -gt 0 ]; then
    echo "canary: LEAK: protected plaintext found ($nhits hits; test, artifact, where, canary, excerpt;"
    echo "    at most 20 per test here, all of them in $dir/hits):"
    awk -F'\t' '++n[$1] <= 20 { printf "    %s  %s  %s\n        canary: %s\n        excerpt: %s\n", $1, $2, $3, $4, $5 }
        END { for (t in n) if (n[t] > 20) printf "    %s: %d more listed in the report\n", t, n[t] - 20 }' "$dir/hits"
    rc=1
fi
if [ "$nerrors" -gt 0 ]; then
    echo "canary: $nerrors snapshots incomplete:"
    sed 's/^/    /' "$dir/errors"
    rc=1
fi
if [ "$nvalues" -lt "$min" ]; then
    echo "canary: only $nvalues values were recorded (at least $min expected): are the tests still drawing protected values from tests/lib/canary.sh / tests/clients/canary.py?"
    rc=1
fi
if [ "$rc" -eq 0 ]; then
    echo "canary: $nvalues values checked across $nclusters test clusters $what: no leak"
else
    echo "canary: $nvalues values checked across $nclusters test clusters $what: $nhits hits, $nerrors incomplete snapshots"
fi
exit $rc
