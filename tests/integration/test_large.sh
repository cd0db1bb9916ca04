#!/usr/bin/env bash
# 100 MB values through the proxy, both ways, and the proxy's memory.
#
#   * server -> client: a 100 MiB text value (made server-side from md5
#     strings) fetched with psql through the proxy: the bytes the client
#     received have the server's md5(v) and the right length; the same with
#     psycopg (one 100 MiB DataRow, binary format too);
#   * client -> server: a 100 MiB file loaded with \copy (CopyData stream), and
#     a 100 MiB bind parameter sent by psycopg (one 100 MiB Bind message):
#     md5 computed by the server equals the client's;
#   * the proxy streams messages instead of buffering them whole: its peak
#     RSS (VmHWM) grows by far less than the value size: < 64 MiB for the
#     release binary; the ASan/UBSan binary (shadow memory, quarantine,
#     redzones) is allowed 128 MiB. Set PHX_RSS_LIMIT_MB to override.
set -u
source "$(dirname "$0")/../lib/harness.sh"

SIZE=$((100 * 1024 * 1024)) # 104857600 bytes = 3276800 md5 hex strings
case "$(basename "$PHANTOM_BIN")" in
    *asan*) : "${PHX_RSS_LIMIT_MB:=128}" ;;
    *) : "${PHX_RSS_LIMIT_MB:=64}" ;;
esac

pgh_start
phx_start
T="$PGH_TMP"
PY=/usr/bin/python3
export PGPASSWORD=scram_pw
PROXY="host=127.0.0.1 port=$PHX_PORT dbname=$PGH_DB user=phantom_scram sslmode=disable"
q() { timeout 120 psql -X -w -At -v ON_ERROR_STOP=1 "$PROXY" "$@"; }
direct() { pgh_admin_psql -At -d "$PGH_DB" "$@"; }
kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$PHX_PID/status"; }

# Warm up (TLS off, one session) before taking the baseline.
assert_eq "1" "$(q -c "select 1")" "(set-up) session through the proxy"
RSS0=$(kb VmRSS)
HWM0=$(kb VmHWM)
echo "    proxy RSS at start: $((RSS0 / 1024)) MiB (peak so far $((HWM0 / 1024)) MiB), binary $(basename "$PHANTOM_BIN")"

direct -q -c "create table big (id int primary key, v text)" \
    -c "insert into big select 1, string_agg(md5(g::text), '' order by g) from generate_series(1, $((SIZE / 32))) g" ||
    fail "creating the 100 MiB value failed"
read -r SLEN SMD5 <<<"$(direct -F ' ' -c "select length(v), md5(v) from big where id = 1")"
assert_eq "$SIZE" "$SLEN" "(set-up) server-side value is 100 MiB"

# --- server -> client -------------------------------------------------------------
q -c "select v from big where id = 1" >"$T/down.txt" || fail "fetching the 100 MiB value through the proxy failed"
# psql adds one newline after the value.
assert_eq "$((SIZE + 1))" "$(wc -c <"$T/down.txt")" "psql received 100 MiB (+ newline) through the proxy"
CMD5=$(head -c "$SIZE" "$T/down.txt" | md5sum | cut -d' ' -f1)
assert_eq "$SMD5" "$CMD5" "md5 of what psql received equals the server's md5(v)"
rm -f "$T/down.txt"

out=$(timeout 120 "$PY" - "$PROXY" <<'PY'
import hashlib, sys, psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True)
for binary in (False, True):
    v = conn.cursor(binary=binary).execute("select v from big where id = 1").fetchone()[0]
    print("binary" if binary else "text", len(v), hashlib.md5(v.encode()).hexdigest())
PY
)
assert_eq "text $SIZE $SMD5
binary $SIZE $SMD5" "$out" "psycopg fetched the value (text and binary results): length and md5 match"

# --- client -> server ---------------------------------------------------------------
# A 100 MiB line of base64 (no tabs, no backslashes: COPY text takes it as is).
head -c $((SIZE / 4 * 3)) /dev/urandom | base64 -w0 >"$T/up.txt"
assert_eq "$SIZE" "$(wc -c <"$T/up.txt")" "(set-up) 100 MiB upload file"
FMD5=$(md5sum <"$T/up.txt" | cut -d' ' -f1)
q -c "create table up (v text)" >/dev/null || fail "create table up"
out=$(q -c "\\copy up from '$T/up.txt'" 2>&1)
assert_eq "COPY 1" "$out" "\\copy of a 100 MiB value through the proxy"
assert_eq "$SIZE $FMD5" "$(direct -F ' ' -c "select length(v), md5(v) from up")" \
    "uploaded value: server's length and md5 equal the file's"

out=$(timeout 120 "$PY" - "$PROXY" "$T/up.txt" <<'PY'
import sys, psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True)
data = open(sys.argv[2]).read()[::-1]  # another 100 MiB value: the file reversed
conn.execute("insert into big values (2, %s)", (data,))  # one 100 MiB Bind message
print(len(data))
PY
)
assert_eq "$SIZE" "$out" "psycopg sent a 100 MiB bind parameter through the proxy"
RMD5=$(rev <"$T/up.txt" | md5sum | cut -d' ' -f1)
assert_eq "$SIZE $RMD5" "$(direct -F ' ' -c "select length(v), md5(v) from big where id = 2")" \
    "bind parameter: server's length and md5 equal the client's"
rm -f "$T/up.txt"

# --- the proxy's memory ------------------------------------------------------------------
kill -0 "$PHX_PID" 2>/dev/null || fail "proxy died"
HWM=$(kb VmHWM)
GROWTH=$(((HWM - RSS0) / 1024))
echo "    proxy peak RSS $((HWM / 1024)) MiB: $GROWTH MiB above its starting RSS after moving 4 x 100 MiB"
[ "$GROWTH" -lt "$PHX_RSS_LIMIT_MB" ] ||
    fail "proxy peak RSS grew by $GROWTH MiB (limit $PHX_RSS_LIMIT_MB MiB): it buffers large messages instead of streaming them"
ok "proxy peak RSS grew by $GROWTH MiB < $PHX_RSS_LIMIT_MB MiB: large messages are streamed"

phx_stop || fail "proxy did not shut down cleanly"
ok "proxy shut down cleanly"
