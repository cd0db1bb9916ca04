#!/usr/bin/env bash
# tests/integration/test_ops.sh — the proxy's operations side (issue 9):
#   1. /metrics (metrics.listen in the config file): the scrape is parsed by a
#      small exposition-format parser (every line well-formed, HELP and TYPE
#      before each family's samples, counters end in _total, histogram
#      buckets cumulative with +Inf == _count, no duplicate sample); a psql
#      script (simple protocol: one Query per statement) with fast-path,
#      rewritten and refused (LIKE) statements and a COPY in and out moves
#      the counters by exactly the expected amounts (queries by path, values
#      encrypted/decrypted and the histograms' counts, connections);
#   2. /healthz 200 "ok"; /readyz 200, 503 naming the target while
#      PostgreSQL is stopped (and a session attempt counts an upstream
#      connect error), 200 again once it is back; 404 for other paths, 405
#      for other methods;
#   3. reload under load: a persistent session and a reconnecting client run
#      protected inserts and lookups while the config gains a protected
#      column (+ its key), a DEK rotation (`phantom keys rotate`), a changed
#      metrics.listen (logged as needing a restart, the old port keeps
#      serving) and a broken config, each followed by SIGHUP: no query fails;
#      the open session keeps writing under the key version it started with
#      while a new session writes under the new one and stores the new column
#      as ciphertext; the broken config is logged and counted and the running
#      one keeps serving; once the old session ends, one configuration is left;
#   4. a second proxy whose KEK provider (the OpenBao Transit double) is down:
#      /readyz 503 naming the keys, phantom_keys_available 0, then 200 once
#      the double is up;
#   5. log hygiene: the first proxy ran with --log-level debug --log-format
#      json: every line parses as JSON, and no canary value, no master key
#      (hex or base64) and no DEK (unwrapped from the keyring with the master
#      key: hex or base64) appears in either proxy's log.
# Runs in about 30-40 s.
set -u
. "$(dirname "$0")/../lib/harness.sh"

P="$PHANTOM_BIN"
ROOT="$HARNESS_ROOT"
PY=/usr/bin/python3
T="$PGH_TMP/ops"
mkdir -p "$T"
export PGPASSWORD=scram_pw

pgh_start

# ---- helpers (python) -------------------------------------------------------------------
cat >"$T/expo.py" <<'PYEOF'
"""expo.py FILE: parses a Prometheus text exposition (format 0.0.4) strictly;
prints {"name{labels}": value} as JSON, or exits 1 naming the first problem.
expo.py get FILE.json KEY: prints one value (0 when absent: an error exit)."""
import json, re, sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r"^(%s)(?:\{((?:%s)(?:,%s)*)\})? (\S+)$" % (NAME, LABEL, LABEL))

def bad(n, line, why):
    sys.exit("line %d: %s: %r" % (n, why, line))

def parse(text):
    if not text.endswith("\n"):
        sys.exit("the exposition does not end with a newline")
    fams, order, samples = {}, [], {}
    for n, line in enumerate(text[:-1].split("\n"), 1):
        if line.startswith("# HELP "):
            parts = line.split(" ", 3)
            if len(parts) < 4 or not re.fullmatch(NAME, parts[2]) or parts[2] in fams:
                bad(n, line, "bad or repeated HELP")
            fams[parts[2]] = {"help": True, "type": None, "samples": []}
            order.append(parts[2])
        elif line.startswith("# TYPE "):
            parts = line.split(" ")
            if len(parts) != 4 or parts[2] not in fams or fams[parts[2]]["type"]:
                bad(n, line, "TYPE without HELP first, or repeated")
            if parts[3] not in ("counter", "gauge", "histogram"):
                bad(n, line, "unknown type")
            if parts[3] == "counter" and not parts[2].endswith("_total"):
                bad(n, line, "counter name without _total")
            fams[parts[2]]["type"] = parts[3]
        elif line.startswith("#") or not line:
            bad(n, line, "unexpected comment or empty line")
        else:
            m = SAMPLE.match(line)
            if not m:
                bad(n, line, "malformed sample")
            name, labels, value = m.group(1), m.group(2) or "", m.group(3)
            try:
                v = float(value)
            except ValueError:
                bad(n, line, "value is not a number")
            fam = name if name in fams else None
            for suf in ("_bucket", "_sum", "_count"):
                base = name[: -len(suf)]
                if fam is None and name.endswith(suf) and fams.get(base, {}).get("type") == "histogram":
                    fam = base
            if fam is None or not fams[fam]["type"]:
                bad(n, line, "sample before (or without) its HELP and TYPE")
            key = "%s{%s}" % (name, labels) if labels else name
            if key in samples:
                bad(n, line, "duplicate sample")
            samples[key] = v
            fams[fam]["samples"].append((name, labels, v))
    for f in order:
        info = fams[f]
        if not info["samples"]:
            sys.exit("family %s has no samples" % f)
        if info["type"] == "histogram":
            prev_le, prev_v, inf = -1.0, 0.0, None
            for name, labels, v in info["samples"]:
                if name != f + "_bucket":
                    continue
                m = re.fullmatch(r'le="([^"]+)"', labels)
                if not m or inf is not None:
                    sys.exit("%s: bad bucket labels %r (or a bucket after +Inf)" % (f, labels))
                le = float(m.group(1))
                if le <= prev_le or v < prev_v:
                    sys.exit("%s: buckets not increasing/cumulative at le=%s" % (f, m.group(1)))
                prev_le, prev_v = le, v
                if m.group(1) == "+Inf":
                    inf = v
            if inf is None or samples.get(f + "_count") != inf or (f + "_sum") not in samples:
                sys.exit("%s: +Inf bucket %r != _count %r, or no _sum" % (f, inf, samples.get(f + "_count")))
    return samples

if sys.argv[1] == "get":
    d = json.load(open(sys.argv[2]))
    if sys.argv[3] not in d:
        sys.exit("no sample %s" % sys.argv[3])
    v = d[sys.argv[3]]
    print(int(v) if v == int(v) else v)
else:
    print(json.dumps(parse(open(sys.argv[1]).read())))
PYEOF

cat >"$T/load.py" <<'PYEOF'
"""load.py PORT persistent|fresh BASE STOPFILE: protected inserts and lookups
until STOPFILE exists, on one session (persistent) or a new one per round
(fresh). Prints "connected", then "ERROR ..." per failure, "done N ERRORS"."""
import os, sys, time
import psycopg
sys.path.insert(0, os.environ["CLIENTS"])
from canary import email, text

port, mode, base, stop = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
dsn = "host=127.0.0.1 port=%s dbname=phantom user=phantom_scram password=scram_pw sslmode=disable" % port
def connect():
    return psycopg.connect(dsn, autocommit=True, connect_timeout=10)
conn = connect() if mode == "persistent" else None
print("connected", flush=True)
n = errors = 0
while not os.path.exists(stop):
    c = None
    try:
        c = conn or connect()
        e, f = email(), text("load")
        c.execute("INSERT INTO customers (id, email, full_name) VALUES (%s, %s, %s)", (base + n, e, f))
        rows = c.execute("SELECT full_name FROM customers WHERE email = %s", (e,)).fetchall()
        if rows != [(f,)]:
            raise RuntimeError("lookup returned %d rows" % len(rows))
        c.execute("SELECT count(*) FROM notes").fetchone()
    except Exception as ex:
        errors += 1
        print("ERROR", type(ex).__name__, str(ex).replace("\n", " ")[:300], flush=True)
    finally:
        if c is not None and conn is None:
            c.close()
    n += 1
    with open(stop + "." + mode + ".tmp", "w") as p:
        p.write(str(n))
    os.replace(stop + "." + mode + ".tmp", stop + "." + mode)
    time.sleep(0.02)
print("done", n, errors, flush=True)
PYEOF

cat >"$T/logs.py" <<'PYEOF'
"""logs.py count LOG EVENT [KEY=VALUE]: how many JSON lines have that event
(and field). logs.py hygiene KEYDIR LOG...: every line is a JSON object, and
no canary value, master key or DEK (hex or base64) occurs in any log."""
import base64, json, os, sys

def lines(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace").splitlines()

if sys.argv[1] == "count":
    want = dict(a.split("=", 1) for a in sys.argv[4:])
    n = 0
    for line in lines(sys.argv[2]):
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if o.get("event") == sys.argv[3] and all(o.get(k) == v for k, v in want.items()):
            n += 1
    print(n)
    sys.exit(0)

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
keydir, logs = sys.argv[2], sys.argv[3:]
secrets, kinds = [], {}
def add(kind, raw):
    for form in (raw.hex(), raw.hex().upper(), base64.b64encode(raw).decode()):
        secrets.append(form)
    kinds[kind] = kinds.get(kind, 0) + 1
masters = {}
for line in lines(os.path.join(keydir, "master.key")):
    parts = line.split()
    if len(parts) == 2 and parts[0].isdigit() and len(parts[1]) == 64:
        masters[int(parts[0])] = bytes.fromhex(parts[1])
        add("master key", masters[int(parts[0])])
ring = json.load(open(os.path.join(keydir, "keyring.json")))
for dom in ring["domains"].values():
    for ver in dom["versions"]:
        for w in ver["wrapped"]:
            blob = base64.b64decode(w["blob"])
            hdr, nonce, ct = blob[:9], blob[9:21], blob[21:]
            kek = masters[int.from_bytes(hdr[5:9], "big")]
            add("DEK", AESGCM(kek).decrypt(nonce, ct, hdr))
canaries = [v for v in lines(os.path.join(os.environ["PHANTOM_CANARY_DIR"], "values")) if v]
total = 0
for path in logs:
    text_lines = lines(path)
    total += len(text_lines)
    for i, line in enumerate(text_lines, 1):
        try:
            o = json.loads(line)
        except ValueError:
            sys.exit("%s:%d: not JSON: %r" % (path, i, line[:200]))
        if not isinstance(o, dict) or "event" not in o or "level" not in o:
            sys.exit("%s:%d: not a log event object" % (path, i))
        for s in secrets:
            if s in line:
                sys.exit("%s:%d: key material in the log" % (path, i))
        for c in canaries:
            if c in line:
                sys.exit("%s:%d: a protected value (canary) in the log" % (path, i))
print("%d log lines, %d canary values, %d master key(s), %d DEKs: clean"
      % (total, len(canaries), kinds.get("master key", 0), kinds.get("DEK", 0)))
PYEOF

expo() { "$PY" "$T/expo.py" "$@"; }
mval() { expo get "$T/$1.json" "$2" || fail "metric $2 missing from scrape $1"; }
# scrape NAME [URL]: GET /metrics into $T/NAME.txt, parsed into $T/NAME.json
scrape() {
    local code
    code=$(curl -s -m 5 -o "$T/$1.txt" -w '%{http_code} %{content_type}' "${2:-$M}/metrics") ||
        fail "scrape $1: curl failed"
    assert_eq "200 text/plain; version=0.0.4; charset=utf-8" "$code" "scrape $1: status and content type" >/dev/null
    expo "$T/$1.txt" >"$T/$1.json" || fail "scrape $1 is not valid exposition format (see $T/$1.txt)"
}
# delta A B KEY: B - A
delta() { echo $(($(mval "$2" "$3") - $(mval "$1" "$3"))); }
# http PATH [curl args]: sets CODE and BODY
http() {
    local path="$1"
    shift
    CODE=$(curl -s -m 5 -o "$T/body" -w '%{http_code}' "$@" "$M$path") || CODE="curl-failed"
    BODY=$(cat "$T/body" 2>/dev/null)
}
# until_http SECONDS PATH CODE: repeats until the status is CODE
until_http() {
    local end=$((SECONDS + $1))
    while :; do
        http "$2"
        [ "$CODE" = "$3" ] && return 0
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.1
    done
}
events() { "$PY" "$T/logs.py" count "$@"; }
# wait_event SECONDS LOG N EVENT [K=V]: until LOG has N such events
wait_event() {
    local end=$((SECONDS + $1)) log="$2" n="$3"
    shift 3
    while [ "$(events "$log" "$@")" -lt "$n" ]; do
        [ "$SECONDS" -lt "$end" ] || fail "no ${n}th \"$1\" in the log within the time"
        sleep 0.1
    done
}
psql_a() { psql -X -q -At "host=127.0.0.1 port=$A_PORT dbname=phantom user=phantom_scram sslmode=disable" "$@"; }
admin() { pgh_admin_psql -At -d "$PGH_DB" "$@"; }
key_id_sql() { # COLUMN ID: the envelope's key id, read directly from the database
    echo "select (get_byte($1,2)<<24)|(get_byte($1,3)<<16)|(get_byte($1,4)<<8)|get_byte($1,5) from customers where id = $2"
}
key_id_of() { # DOMAIN VERSION: from `keys list --json`
    "$P" keys list -c "$CFG" --json | "$PY" -c "import json,sys; print([v['key_id'] for v in json.load(sys.stdin) if v['domain']=='$1' and v['version']==$2][0])"
}

# ---- proxy A: file KEK, metrics.listen in the config ----------------------------------------
ENCRYPT='encrypt:
  customers:
    - email: deterministic
    - full_name'
phx_encrypt_config "$T" "$ENCRYPT"
M_PORT="$(pgh_free_port)" || fail "no free port"
M="http://127.0.0.1:$M_PORT"
write_cfg() { # PHONE(0|1) METRICS_PORT
    {
        printf 'keys:\n  keyring: %s/keyring.json\n  provider: file\n  file: { path: %s/master.key }\n' "$T" "$T"
        printf 'metrics:\n  listen: 127.0.0.1:%s\n%s\n' "$2" "$ENCRYPT"
        [ "$1" = 1 ] && printf '    - phone\n'
    } >"$CFG"
}
write_cfg 0 "$M_PORT"
phx_start --config "$CFG" --log-level debug --log-format json
A_PORT=$PHX_PORT A_PID=$PHX_PID A_LOG=$PHX_LOG A_ASAN=$PHX_ASAN_DIR
until_http 5 /healthz 200 || fail "the metrics endpoint did not come up on $M ($CODE)"
ok "proxy with metrics.listen 127.0.0.1:$M_PORT serving"

# ---- 1. counters ----------------------------------------------------------------------------
scrape m0
assert_eq 1 "$(mval m0 phantom_keys_available)" "keys available after start"
assert_eq 1 "$(mval m0 phantom_config_generation)" "configuration generation 1"
[ "$(mval m0 'phantom_kek_calls_total{result="ok"}')" -ge 2 ] || fail "no KEK unwraps counted at start"
[ "$(mval m0 'phantom_key_loads_total{result="ok"}')" -ge 1 ] || fail "no key load counted at start"
grep -q '^phantom_build_info{version="[0-9.]*",openssl="OpenSSL 3[^"]*",libevent="2[^"]*"} 1$' "$T/m0.txt" ||
    fail "build info: $(grep build_info "$T/m0.txt")"
ok "start: keys loaded through the KEK (counted), build info"

E1="$(canary_email ops)" E2="$(canary_email ops)" E3="$(canary_email ops)" E4="$(canary_email ops)"
N1="$(canary_text ops)" N2="$(canary_text ops)" N3="$(canary_text ops)" N4="$(canary_text ops)"
cat >"$T/w1.sql" <<EOF
CREATE TABLE customers (id int PRIMARY KEY, email text, full_name text);
CREATE TABLE notes (id int, body text);
INSERT INTO customers VALUES (1, '$E1', '$N1'), (2, '$E2', '$N2');
INSERT INTO notes VALUES (1, 'hello');
SELECT full_name FROM customers WHERE email = '$E1';
SELECT email FROM customers WHERE email = '$E2';
SELECT body FROM notes;
SELECT id FROM customers WHERE full_name LIKE 'cnry%';
COPY customers (id, email, full_name) FROM STDIN;
3	$E3	$N3
4	$E4	$N4
\.
COPY customers TO STDOUT;
EOF
out="$(psql_a -v ON_ERROR_STOP=0 -f "$T/w1.sql" 2>&1)"
assert_contains "$out" "$N1" "lookup through the proxy decrypts"
assert_contains "$out" "4	$E4	$N4" "COPY TO STDOUT decrypts"
assert_contains "$out" "LIKE" "the LIKE on a randomized column is refused"
assert_eq "bytea|1" "$(admin -c "select pg_typeof(email), get_byte(email, 0) from customers where id = 3")" \
    "COPY FROM stored a ciphertext envelope"
for _ in $(seq 1 50); do # the connection is closed asynchronously
    scrape m1
    [ "$(mval m1 phantom_connections)" = 0 ] && break
    sleep 0.1
done
assert_eq 0 "$(mval m1 phantom_connections)" "connections gauge back to 0"
assert_eq 1 "$(delta m0 m1 phantom_connections_total)" "connections_total +1 (one psql session)"
assert_eq 3 "$(delta m0 m1 'phantom_queries_total{path="fast"}')" "queries: fast +3"
assert_eq 6 "$(delta m0 m1 'phantom_queries_total{path="rewritten"}')" "queries: rewritten +6"
assert_eq 1 "$(delta m0 m1 'phantom_queries_total{path="refused"}')" "queries: refused +1"
assert_eq 10 "$(delta m0 m1 phantom_fields_encrypted_total)" "values encrypted +10 (4 inserted, 2 looked up, 4 copied in)"
assert_eq 10 "$(delta m0 m1 phantom_fields_decrypted_total)" "values decrypted +10 (2 selected, 8 copied out)"
# One value in 8 per worker thread is timed; the session's 20 values ran on
# one thread in a row, so 2 or 3 of them are in the histograms.
timed=$(($(delta m0 m1 phantom_field_encrypt_seconds_count) + $(delta m0 m1 phantom_field_decrypt_seconds_count)))
[ "$timed" -ge 2 ] && [ "$timed" -le 3 ] || fail "timed values: $timed, expected 2 or 3 of 20 (one in 8)"
[ "$(delta m0 m1 phantom_dek_cache_hits_total)" -ge 20 ] || fail "key uses not counted as hits"
assert_eq 0 "$(delta m0 m1 phantom_dek_cache_misses_total)" "no key-cache misses"
ok "counters moved by exactly the expected amounts"

# ---- 2. health endpoints ----------------------------------------------------------------------
http /healthz
assert_eq "200 ok" "$CODE $BODY" "/healthz"
http /readyz
assert_eq "200 ready" "$CODE $BODY" "/readyz"
http /nope
assert_eq 404 "$CODE" "unknown path: 404"
http /metrics -X POST
assert_eq 405 "$CODE" "POST /metrics: 405"
allow="$(curl -s -m 5 -X DELETE -D - -o /dev/null "$M/readyz" | tr -d '\r' | grep -i '^allow:')"
assert_eq "allow: get, head" "${allow,,}" "405 names the allowed methods"
assert_eq 200 "$(curl -s -m 5 -I -o /dev/null -w '%{http_code}' "$M/metrics")" "HEAD /metrics: 200"

pgh_stop_server fast || fail "could not stop PostgreSQL"
until_http 5 /readyz 503 || fail "/readyz did not turn 503 with PostgreSQL stopped ($CODE $BODY)"
assert_contains "$BODY" "target 127.0.0.1:$PGH_PORT unreachable" "/readyz 503 names the target"
http /healthz
assert_eq "200 ok" "$CODE $BODY" "/healthz stays 200 while the target is down"
out="$(psql_a -c 'select 1' 2>&1)"
assert_contains "$out" "could not connect to target" "a session while the target is down"
scrape m2
assert_eq 1 "$(delta m1 m2 'phantom_upstream_errors_total{kind="connect"}')" "upstream connect error counted"
pgh_start_server || fail "could not restart PostgreSQL"
until_http 5 /readyz 200 || fail "/readyz did not recover ($CODE $BODY)"
ok "/readyz 200 again once PostgreSQL is back"

# ---- 3. reload under load ---------------------------------------------------------------------
export CLIENTS="$ROOT/tests/clients"
STOP="$T/stop"
timeout 60 "$PY" "$T/load.py" "$A_PORT" persistent 100000 "$STOP" >"$T/load_p" 2>&1 &
LP=$!
timeout 60 "$PY" "$T/load.py" "$A_PORT" fresh 200000 "$STOP" >"$T/load_f" 2>&1 &
LF=$!
pgh_defer "touch $STOP; kill $LP $LF 2>/dev/null; true"
rounds() { # MODE: rounds done so far
    local n
    n="$(cat "$STOP.$1" 2>/dev/null)"
    echo "${n:-0}"
}
wait_rounds() { # MODE N
    local end=$((SECONDS + 15))
    while [ "$(rounds "$1")" -lt "$2" ]; do
        [ "$SECONDS" -lt "$end" ] || fail "load ($1) stalled at $(rounds "$1") rounds: $(tail -n 3 "$T/load_$1")"
        sleep 0.05
    done
}
wait_rounds persistent 5
wait_rounds fresh 3
P_OLD="$(($(rounds persistent) - 1 + 100000))" # a row the open session wrote before any reload
RELOADED="configuration reloaded: new sessions use it"

# a) a new protected column (and its key domain)
write_cfg 1 "$M_PORT"
"$P" keys create -c "$CFG" >>"$T/keys.log" 2>&1 || fail "keys create (phone): $(tail -n 3 "$T/keys.log")"
kill -HUP "$A_PID"
wait_event 20 "$A_LOG" 1 "$RELOADED"
r=$(rounds persistent) f=$(rounds fresh)
wait_rounds persistent $((r + 3))
wait_rounds fresh $((f + 3))
# b) a new DEK version (rotation)
"$P" keys rotate -c "$CFG" customers.email >>"$T/keys.log" 2>&1 || fail "keys rotate: $(tail -n 3 "$T/keys.log")"
kill -HUP "$A_PID"
wait_event 20 "$A_LOG" 2 "$RELOADED"
r=$(rounds persistent) f=$(rounds fresh)
wait_rounds persistent $((r + 3))
wait_rounds fresh $((f + 3))
# c) a setting that needs a restart
M2_PORT="$(pgh_free_port)" || fail "no free port"
write_cfg 1 "$M2_PORT"
kill -HUP "$A_PID"
wait_event 20 "$A_LOG" 3 "$RELOADED"
assert_eq 1 "$(events "$A_LOG" "reload: setting needs a restart; keeping the running value" setting=metrics.listen)" \
    "a changed metrics.listen is logged as needing a restart"
http /healthz
assert_eq 200 "$CODE" "the old metrics port keeps serving"
# d) a broken config
cp "$CFG" "$T/good.yaml"
printf '    - phone: sideways\n' >>"$CFG"
kill -HUP "$A_PID"
wait_event 20 "$A_LOG" 1 "reload failed: the running configuration stays in use"
err="$(grep '"reload failed' "$A_LOG")"
assert_contains "$err" "$CFG:" "the reload error names the file and line"
cp "$T/good.yaml" "$CFG"
r=$(rounds persistent) f=$(rounds fresh)
wait_rounds persistent $((r + 3))
wait_rounds fresh $((f + 3))

# a new session: the new column is protected, writes use the rotated key
PHONE="$(canary_text phone)" E5="$(canary_email ops)"
out="$(psql_a -v ON_ERROR_STOP=1 -c "ALTER TABLE customers ADD COLUMN phone text" \
    -c "INSERT INTO customers (id, email, full_name, phone) VALUES (9001, '$E5', 'n', '$PHONE')" \
    -c "SELECT phone FROM customers WHERE email = '$E5'" 2>&1)"
assert_eq "$PHONE" "$out" "new session: the new protected column round-trips"
assert_eq "bytea|1" "$(admin -c "select pg_typeof(phone), get_byte(phone, 0) from customers where id = 9001")" \
    "new session: the new column is stored as a ciphertext envelope"
K2="$(key_id_of customers.email 2)"
K1="$(key_id_of customers.email 1)"
assert_eq "$K2" "$(admin -c "$(key_id_sql email 9001)")" "new session: writes use the rotated key version (key id $K2)"
r=$(rounds persistent)
wait_rounds persistent $((r + 2))
P_NEW="$(($(rounds persistent) - 1 + 100000))"
assert_eq "$K1" "$(admin -c "$(key_id_sql email "$P_NEW")")" \
    "the session opened before the reloads still writes under key id $K1"
assert_eq "$K1" "$(admin -c "$(key_id_sql email "$P_OLD")")" "(and did before them)"
out="$(psql_a -c "SELECT email, full_name FROM customers WHERE id = $P_NEW")"
[[ "$out" == cnry*@example.com\|cnry-load-* ]] ||
    fail "a row the old session wrote is not readable by a new session: [$out]"
ok "a new session reads what the old session wrote (key id $K1)"

touch "$STOP"
wait "$LP" || fail "persistent load exited non-zero: $(tail -n 5 "$T/load_p")"
wait "$LF" || fail "fresh load exited non-zero: $(tail -n 5 "$T/load_f")"
grep -q '^ERROR' "$T/load_p" "$T/load_f" && fail "queries failed during the reloads: $(grep -h '^ERROR' "$T/load_p" "$T/load_f" | head -n 5)"
read -r _ np ep < <(grep '^done' "$T/load_p")
read -r _ nf ef < <(grep '^done' "$T/load_f")
assert_eq "0 0" "${ep:-x} ${ef:-x}" "no query failed across 3 reloads and a rejected one"
ok "$np rounds on the persistent session, $nf new sessions, 4 SIGHUPs"

for _ in $(seq 1 40); do # old configurations are freed within a second of their last session
    scrape m3
    [ "$(mval m3 phantom_config_generations)" = 1 ] && break
    sleep 0.1
done
assert_eq 1 "$(mval m3 phantom_config_generations)" "one configuration left once the old sessions ended"
assert_eq 4 "$(mval m3 phantom_config_generation)" "generation 4 after three reloads"
assert_eq 3 "$(mval m3 'phantom_config_reloads_total{result="ok"}')" "reloads ok: 3"
assert_eq 1 "$(mval m3 'phantom_config_reloads_total{result="error"}')" "reloads error: 1"
assert_eq 1 "$(mval m3 phantom_keys_available)" "keys available after the reloads"
# The configurations of the reloads replaced each other as the audit sink; the
# first one's log handle is closed by now: a reload must still be audited.
AUDIT="$T/keyring.json.audit.jsonl"
loads() { grep -c '"event":"dek.load","outcome":"ok"' "$AUDIT"; }
n0="$(loads)"
kill -HUP "$A_PID"
wait_event 20 "$A_LOG" 4 "$RELOADED"
assert_eq 4 "$(($(loads) - n0))" "a reload after the first configuration was freed is audited (4 DEK loads)"
out="$("$P" audit verify "$AUDIT" 2>&1)" || fail "audit chain broken after the reloads: $out"
ok "audit chain intact across the reloads ($(grep -o '[0-9]* lines' <<<"$out" | head -n1))"

# ---- 4. readiness while the key provider is down ------------------------------------------------
B="$T/bao"
mkdir -p "$B"
TOKEN="s.phantom-ops-token"
printf '%s\n' "$TOKEN" >"$B/token"
chmod 600 "$B/token"
BAO_PORT="$(pgh_free_port)" || fail "no free port"
DOUBLE=""
start_double() {
    : >"$B/double.out"
    "$PY" "$ROOT/tests/doubles/openbao_transit.py" --host 127.0.0.1 --port "$BAO_PORT" \
        --token "$TOKEN" --state-file "$B/state.json" >"$B/double.out" 2>>"$B/double.log" &
    DOUBLE=$!
    for _ in $(seq 1 100); do
        grep -q '^LISTENING ' "$B/double.out" && return 0
        sleep 0.05
    done
    fail "the Transit double did not start"
}
stop_double() {
    [ -n "$DOUBLE" ] && kill "$DOUBLE" 2>/dev/null && wait "$DOUBLE" 2>/dev/null
    DOUBLE=""
}
pgh_defer 'stop_double'
cat >"$B/phantom.yaml" <<EOF
keys:
  keyring: $B/keyring.json
  provider: openbao
  openbao:
    address: http://127.0.0.1:$BAO_PORT
    key: phantom
    token_file: $B/token
    timeout_ms: 1000
$ENCRYPT
EOF
start_double
"$P" keys init-kek -c "$B/phantom.yaml" >"$B/keys.log" 2>&1 || fail "keys init-kek: $(cat "$B/keys.log")"
"$P" keys create -c "$B/phantom.yaml" >>"$B/keys.log" 2>&1 || fail "keys create: $(cat "$B/keys.log")"
stop_double
MB_PORT="$(pgh_free_port)" || fail "no free port"
phx_start --config "$B/phantom.yaml" --metrics-listen "127.0.0.1:$MB_PORT" --log-format json
B_PID=$PHX_PID B_LOG=$PHX_LOG B_ASAN=$PHX_ASAN_DIR
MA="$M"
M="http://127.0.0.1:$MB_PORT"
until_http 5 /readyz 503 || fail "/readyz with the key provider down: $CODE $BODY"
assert_contains "$BODY" "keys: encryption keys are unavailable (key provider unreachable since" \
    "/readyz 503 names the keys (--metrics-listen)"
http /healthz
assert_eq "200 ok" "$CODE $BODY" "/healthz is 200 while the keys are unavailable"
scrape mb0
assert_eq 0 "$(mval mb0 phantom_keys_available)" "phantom_keys_available 0"
[ "$(mval mb0 'phantom_kek_calls_total{result="error"}')" -ge 1 ] || fail "failed KEK calls not counted"
start_double
until_http 10 /readyz 200 || fail "/readyz did not recover once the key provider is up ($CODE $BODY)"
scrape mb1
assert_eq 1 "$(mval mb1 phantom_keys_available)" "phantom_keys_available 1 once the provider is up"
ok "readiness follows the key provider"
phx_stop "$B_PID" "$B_LOG" "$B_ASAN" || fail "proxy B did not stop cleanly"
M="$MA"

# ---- 5. log hygiene -----------------------------------------------------------------------------
phx_stop "$A_PID" "$A_LOG" "$A_ASAN" || fail "proxy A did not stop cleanly"
[ "$(events "$A_LOG" "client connected")" -ge 10 ] || fail "the debug log has no per-connection lines"
out="$("$PY" "$T/logs.py" hygiene "$T" "$A_LOG" "$B_LOG" 2>&1)" || fail "log hygiene: $out"
ok "log hygiene: $out"
