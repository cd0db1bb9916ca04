#!/usr/bin/env bash
# Per-tenant keys and crypto-shredding (issue 8 part 1, SPEC §6, seed 001)
# end to end.
#
# customers (email deterministic, full_name randomized; tenant column
# tenant_id) and notes (body randomized; `tenant: required`) are
# tenant-keyed. Three tenants write at the same time through the proxy
# (psycopg threads): acme with the startup option (options=-c
# phantom.tenant=acme), beta with SET phantom.tenant, gamma with no session
# tenant — each row's tenant_id (a parameter) picks the keys, and a COPY
# FROM with the tenant column. Then:
#   * the proxy created each tenant's DEKs on first use (keyring domains
#     tenant:<T>/..., one "dek.create" audit record per domain);
#   * each tenant reads back exactly its own plaintext; another tenant's
#     rows give 42501 "belongs to another tenant" (a second proxy with
#     tenants.foreign_values: null gives NULL instead); a deterministic
#     lookup of another tenant's value matches nothing; psql's SHOW
#     phantom.tenant answers; the server's log has no SET carrying a tenant;
#   * the "provider's backup": pg_dump taken directly from the database;
#   * every tenant DEK escrowed under a recovery KEK (`keys escrow`);
#   * `phantom keys shred --tenant beta` (refused without confirmation,
#     then --yes) destroys primary and escrow wrappings (`keys recover`
#     finds nothing of beta's); the running proxy drops beta's keys at its next refresh
#     and beta's rows give "key was destroyed (the tenant was
#     crypto-shredded)", writes for beta are refused, acme and gamma intact;
#   * the backup restored into a new database and read through the proxy:
#     no beta plaintext, acme and gamma intact;
#   * every beta envelope (from the restored backup) tried against every
#     live DEK left in the keyring under every key domain name
#     (`phantom keys probe`): none opens; the same probe opens acme's (so it
#     can tell); the keyring holds no wrapping of beta's DEKs; the audit
#     chain verifies and records the shred.
# Last, a separate proxy with a token column (mode token, SQLite vault) in
# a tenant-keyed table: acme and beta store the same values and read them
# back exactly under different tokens, a lookup (DELETE ... WHERE ssn = ..)
# matches only the session tenant's row, beta's token in acme's session is
# 42501; after `keys shred --tenant beta` beta's tokens fail to detokenize
# (XX001, key destroyed) and acme's still read.
# Every protected value is a leak canary (tests/lib/canary.sh).
set -u
source "$(dirname "$0")/../lib/harness.sh"

PY=/usr/bin/python3
"$PY" -c 'import psycopg' 2>/dev/null || fail "psycopg 3 is not importable by $PY"

pgh_start
T="$PGH_TMP/tenants"
mkdir -p "$T"

# --- config, keys, schema -----------------------------------------------------------
"$PHANTOM_BIN" keys init-master --out "$T/master.key" >"$T/keys.log" 2>&1 ||
    { cat "$T/keys.log" >&2; fail "keys init-master"; }
"$PHANTOM_BIN" keys init-master --out "$T/recovery.key" >>"$T/keys.log" 2>&1 ||
    { cat "$T/keys.log" >&2; fail "keys init-master (escrow)"; }
write_cfg() { # FILE FOREIGN_VALUES
    cat >"$1" <<EOF
keys:
  keyring: $T/keyring.json
  provider: file
  file: { path: $T/master.key }
  escrow: { provider: file, file: { path: $T/recovery.key } }
  cache_ttl: 2s                 # refreshed every second: a shred is noticed quickly
encrypt:
  customers:
    - email: deterministic
    - full_name
  notes:
    - body
tenants:
  foreign_values: $2
  tables:
    customers: {column: tenant_id}
    notes: {tenant: required}
EOF
}
CFG="$T/phantom.yaml"
CFG_NULL="$T/phantom-null.yaml"
write_cfg "$CFG" error
write_cfg "$CFG_NULL" null
"$PHANTOM_BIN" check-config "$CFG" >"$T/check.log" 2>&1 || { cat "$T/check.log" >&2; fail "check-config"; }
"$PHANTOM_BIN" keys create -c "$CFG" >>"$T/keys.log" 2>&1 || { cat "$T/keys.log" >&2; fail "keys create"; }
grep -q "every key domain of the encrypt section has a key already" "$T/keys.log" ||
    fail "keys create made plain keys for tenant-keyed columns"
ok "config checked; tenant-keyed columns need no key of their own"

phx_start --config "$CFG"
PROXY_PORT=$PHX_PORT
PROXY_PID=$PHX_PID
export PGPASSWORD=scram_pw
base="user=phantom_scram password=scram_pw connect_timeout=10 sslmode=disable"
DIRECT="host=127.0.0.1 port=$PGH_PORT dbname=$PGH_DB $base"
q() { timeout 60 psql -X -w -q -v ON_ERROR_STOP=1 "$@"; }
q "host=127.0.0.1 port=$PROXY_PORT dbname=$PGH_DB $base" <<'EOF' || fail "schema through the proxy"
CREATE TABLE customers (id serial PRIMARY KEY, tenant_id text NOT NULL, email text, full_name text);
CREATE TABLE notes (id serial PRIMARY KEY, owner text NOT NULL, body text);
EOF
[ "$(q "$DIRECT" -At -c "SELECT string_agg(atttypid::regtype::text, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attnum > 0")" = "integer,text,bytea,bytea" ] ||
    fail "protected columns are not bytea"

# --- the clients (psycopg 3) ----------------------------------------------------------
cat >"$T/tenants.py" <<'PYEOF'
import json, os, sys, threading
sys.path.insert(0, os.environ["CLIENTS_DIR"])
import psycopg
from canary import email, text

T = os.environ["T"]
BASE = os.environ["BASE"]
N = 20


def conn(port, tenant=None, how=None, db=None):
    dsn = f"host=127.0.0.1 port={port} dbname={db or os.environ['DB']} {BASE}"
    if how == "startup":
        dsn += f" options='-c phantom.tenant={tenant}'"
    c = psycopg.connect(dsn, autocommit=True)
    if how == "set":
        c.execute(f"SET phantom.tenant = '{tenant}'")
    return c


def write(port, tenant, how, out, errors):
    try:
        rows = []
        with conn(port, tenant, how) as c:
            for i in range(N):
                e, n, b = email(), text(tenant + "-name"), text(tenant + "-note")
                c.execute("INSERT INTO customers (tenant_id, email, full_name) VALUES (%s, %s, %s)",
                          (tenant, e, n))
                if how != "row":  # notes need a session tenant
                    c.execute("INSERT INTO notes (owner, body) VALUES (%s, %s)", (tenant, b))
                else:
                    b = None
                rows.append([e, n, b])
            if how == "row":  # and a COPY whose rows name their tenant
                extra = [[email(), text(tenant + "-copy"), None] for _ in range(5)]
                with c.cursor().copy("COPY customers (email, tenant_id, full_name) FROM STDIN") as cp:
                    for e, n, _ in extra:
                        cp.write_row((e, tenant, n))
                rows += extra
        out[tenant] = rows
    except Exception as ex:  # reported by the main thread
        errors.append(f"{tenant}: {ex!r}")


def load(port):
    out, errors = {}, []
    ts = [threading.Thread(target=write, args=(port, t, h, out, errors))
          for t, h in (("acme", "startup"), ("beta", "set"), ("gamma", "row"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        sys.exit("load failed: " + "; ".join(errors))
    json.dump(out, open(f"{T}/written.json", "w"))
    print("loaded", {k: len(v) for k, v in out.items()})


def written():
    return json.load(open(f"{T}/written.json"))


def read_own(port, tenant, db=None):
    with conn(port, tenant, "set", db) as c:
        got = c.execute("SELECT email, full_name FROM customers WHERE tenant_id = %s ORDER BY id",
                        (tenant,)).fetchall()
        notes = [r[0] for r in c.execute("SELECT body FROM notes WHERE owner = %s ORDER BY id",
                                          (tenant,)).fetchall()]
    return [list(r) for r in got], notes


def check_own(port, db=None, skip=()):
    w = {t: rows for t, rows in written().items() if t not in skip}
    for tenant, rows in w.items():
        got, notes = read_own(port, tenant, db)
        want = sorted([r[0], r[1]] for r in rows)
        if sorted(got) != want:
            sys.exit(f"{tenant}: own rows differ ({len(got)} read, {len(want)} written)")
        want_notes = sorted(r[2] for r in rows if r[2] is not None)
        if sorted(notes) != want_notes:
            sys.exit(f"{tenant}: own notes differ")
    print("own rows ok", {k: len(v) for k, v in w.items()})


def expect_error(c, sql, args, code, needle):
    try:
        c.execute(sql, args).fetchall()
    except psycopg.Error as ex:
        msg = ex.diag.message_primary or ""
        if ex.sqlstate != code or needle not in msg:
            sys.exit(f"{sql}: got {ex.sqlstate} {msg!r}, want {code} {needle!r}")
        for rows in written().values():  # never a plaintext in the message
            for r in rows:
                if any(v and v in str(ex) for v in r):
                    sys.exit("a plaintext is in an error message")
        return
    sys.exit(f"{sql}: no error (want {code} {needle!r})")


def cross(port):
    w = written()
    with conn(port, "acme", "startup") as c:
        expect_error(c, "SELECT email FROM customers WHERE tenant_id = %s", ("beta",), "42501",
                     "belongs to another tenant")
        expect_error(c, "SELECT body FROM notes WHERE owner = %s", ("beta",), "42501",
                     "belongs to another tenant")
        expect_error(c, "SELECT email FROM customers", None, "42501", "belongs to another tenant")
        c.execute("SELECT 1").fetchall()  # the connection is still usable
        theirs = w["beta"][0][0]
        n = c.execute("SELECT count(*) FROM customers WHERE email = %s", (theirs,)).fetchone()[0]
        if n != 0:
            sys.exit("acme's lookup matched beta's row")
        n = c.execute("SELECT count(*) FROM customers WHERE email = %s", (w["acme"][0][0],)).fetchone()[0]
        if n != 1:
            sys.exit(f"acme's lookup of its own value matched {n} rows")
        expect_error(c, "INSERT INTO customers (tenant_id, email) VALUES (%s, %s)",
                     ("beta", email()), "42501", "cannot write rows of tenant beta")
        expect_error(c, "SET phantom.tenant = 'beta'", None, "42501", "cannot be changed")
    with conn(port, "beta", "set") as c:
        n = c.execute("SELECT count(*) FROM customers WHERE email = %s", (w["beta"][0][0],)).fetchone()[0]
        if n != 1:
            sys.exit(f"beta's lookup of its own value matched {n} rows")
    with conn(port) as c:  # no tenant at all
        expect_error(c, "SELECT email FROM customers", None, "42501", "this session has none")
        expect_error(c, "INSERT INTO notes (owner, body) VALUES (%s, %s)", ("x", text("none")),
                     "42501", "has no tenant")
    print("cross-tenant reads, lookups and writes refused")


def null_mode(port):
    w = written()
    with conn(port, "acme", "set") as c:
        got = c.execute("SELECT tenant_id, email, full_name FROM customers ORDER BY id").fetchall()
    mine = [(e, n) for t, e, n in got if t == "acme"]
    theirs = [(e, n) for t, e, n in got if t != "acme"]
    if sorted(mine) != sorted((r[0], r[1]) for r in w["acme"]):
        sys.exit("null mode: acme's own rows differ")
    if len(theirs) != len(w["beta"]) + len(w["gamma"]) or any(v != (None, None) for v in theirs):
        sys.exit("null mode: another tenant's values are not NULL")
    print(f"foreign_values null: {len(theirs)} foreign rows read as NULL, {len(mine)} own intact")


def after_shred(port, db=None):
    with conn(port, "beta", "set", db) as c:
        expect_error(c, "SELECT email FROM customers WHERE tenant_id = 'beta'", None, "XX001",
                     "its key was destroyed (the tenant was crypto-shredded)")
        expect_error(c, "SELECT body FROM notes WHERE owner = 'beta'", None, "XX001",
                     "crypto-shredded")
        if db is None:
            expect_error(c, "INSERT INTO notes (owner, body) VALUES (%s, %s)", ("beta", text("late")),
                         "42501", "tenant beta was crypto-shredded")
    with conn(port, None, None, db) as c:
        expect_error(c, "SELECT full_name FROM customers WHERE tenant_id = 'beta'", None, "XX001",
                     "crypto-shredded")
    check_own(port, db, skip=("beta",))


if __name__ == "__main__":
    cmd, port = sys.argv[1], int(sys.argv[2])
    db = sys.argv[3] if len(sys.argv) > 3 else None
    {"load": lambda: load(port), "own": lambda: check_own(port, db), "cross": lambda: cross(port),
     "null": lambda: null_mode(port), "shredded": lambda: after_shred(port, db)}[cmd]()
PYEOF
export T CLIENTS_DIR="$HARNESS_ROOT/tests/clients" BASE="$base" DB="$PGH_DB"
py() { timeout 120 "$PY" "$T/tenants.py" "$@"; }

# --- three tenants writing at once -----------------------------------------------------
py load "$PROXY_PORT" >"$T/load.log" 2>&1 || { cat "$T/load.log" >&2; fail "concurrent load"; }
ok "three tenants wrote concurrently: $(tail -1 "$T/load.log")"
"$PHANTOM_BIN" keys list -c "$CFG" >"$T/list.txt" 2>&1 || fail "keys list"
for t in acme beta gamma; do
    for d in customers.email customers.full_name notes.body; do
        grep -q "^tenant:$t/$d .* active " "$T/list.txt" || fail "no key tenant:$t/$d"
    done
done
AUDIT="$T/keyring.json.audit.jsonl"
[ "$(grep -c '"event":"dek.create","outcome":"ok"' "$AUDIT")" = 9 ] || fail "dek.create records: want 9"
ok "each tenant's DEKs created on first use: 3 tenants x 3 key domains, audited"
"$PHANTOM_BIN" keys escrow -c "$CFG" >"$T/escrow.log" 2>&1 || { cat "$T/escrow.log" >&2; fail "keys escrow"; }
grep -q "escrowed 9 DEK version(s)" "$T/escrow.log" || { cat "$T/escrow.log" >&2; fail "escrow report"; }
ok "every tenant DEK escrowed under the recovery KEK"
# the stored envelopes name the tenant's key (no two tenants share a key id)
q "$DIRECT" -At -c "SELECT tenant_id, substr(encode(email, 'hex'), 5, 8) FROM customers GROUP BY 1, 2" \
    >"$T/keyids.txt" || fail "read key ids"
[ "$(wc -l <"$T/keyids.txt")" = 3 ] || { cat "$T/keyids.txt" >&2; fail "want one email key id per tenant"; }
[ "$(cut -d'|' -f2 "$T/keyids.txt" | sort -u | wc -l)" = 3 ] || fail "tenants share a key id"
ok "every tenant's rows are under its own key id"

py own "$PROXY_PORT" >"$T/own.log" 2>&1 || { cat "$T/own.log" >&2; fail "own rows"; }
ok "$(cat "$T/own.log")"
py cross "$PROXY_PORT" >"$T/cross.log" 2>&1 || { cat "$T/cross.log" >&2; fail "cross-tenant"; }
ok "$(cat "$T/cross.log")"
show=$(q "host=127.0.0.1 port=$PROXY_PORT dbname=$PGH_DB $base" -At \
    -c "SET phantom.tenant = 'gamma'" -c "SHOW phantom.tenant") || fail "psql SET/SHOW"
assert_eq "gamma" "$show" "psql (simple protocol) SET / SHOW phantom.tenant"
grep -Eq "phantom\.tenant *(=|TO) *'(beta|gamma)'" "$PGH_LOG" && fail "a SET with a tenant id reached the server"
grep -q "SET phantom.tenant TO DEFAULT" "$PGH_LOG" || fail "the server did not get the neutral SET"
ok "the server never saw a tenant's SET"

phx_start --config "$CFG_NULL"
NULL_PORT=$PHX_PORT
py null "$NULL_PORT" >"$T/null.log" 2>&1 || { cat "$T/null.log" >&2; fail "foreign_values: null"; }
ok "$(cat "$T/null.log") (second proxy, same keyring)"

# --- the provider's backup ---------------------------------------------------------------
timeout 60 pg_dump -h 127.0.0.1 -p "$PGH_PORT" -U phantom_scram -d "$PGH_DB" -f "$T/backup.sql" ||
    fail "pg_dump"
ok "backup taken directly from the database ($(wc -c <"$T/backup.sql") bytes)"

# --- crypto-shredding beta ---------------------------------------------------------------
echo wrong | "$PHANTOM_BIN" keys shred -c "$CFG" --tenant beta >"$T/shred-no.log" 2>&1 &&
    fail "shred without the right confirmation succeeded"
grep -q "not confirmed" "$T/shred-no.log" || fail "no refusal message"
grep -q "^tenant:beta/customers.email .* active " <("$PHANTOM_BIN" keys list -c "$CFG") ||
    fail "an unconfirmed shred changed the keyring"
"$PHANTOM_BIN" keys shred -c "$CFG" --tenant beta --yes >"$T/shred.log" 2>&1 ||
    { cat "$T/shred.log" >&2; fail "keys shred"; }
grep -q "crypto-shredded tenant beta: 3 DEK version(s) in 3 key domain(s) destroyed (6 wrapping(s)" "$T/shred.log" ||
    { cat "$T/shred.log" >&2; fail "shred report"; }
ok "keys shred --tenant beta: $(tail -1 "$T/shred.log")"
"$PY" - "$T/keyring.json" <<'EOF' || fail "the keyring still holds a wrapping of beta's DEKs"
import json, sys
kr = json.load(open(sys.argv[1]))
for name, d in kr["domains"].items():
    if name.startswith("tenant:beta/"):
        assert "shredded" in d, name
        for v in d["versions"]:
            assert v["state"] == "retired" and v["wrapped"] == [], name
    else:
        assert all(v["wrapped"] for v in d["versions"] if v["state"] == "active"), name
EOF
ok "the keyring keeps beta's domains as tombstones without any wrapping (primary or escrow)"
"$PHANTOM_BIN" keys recover -c "$CFG" >"$T/recover.log" 2>&1 || { cat "$T/recover.log" >&2; fail "keys recover"; }
grep -q "recovered 6 DEK version(s)" "$T/recover.log" || { cat "$T/recover.log" >&2; fail "recover report"; }
ok "keys recover (from escrow) finds 6 DEK versions: none of beta's is left to recover"

# the running proxies notice it at their next refresh (cache_ttl 2s: every second)
for _ in $(seq 1 40); do
    py shredded "$PROXY_PORT" >"$T/shredded.log" 2>&1 && break
    sleep 0.25
done
grep -q "own rows ok" "$T/shredded.log" || { cat "$T/shredded.log" >&2; fail "after the shred (running proxy)"; }
ok "running proxy: beta's values unreadable (key destroyed), beta writes refused, acme and gamma intact"

# --- the backup, restored ---------------------------------------------------------------
q "$DIRECT" -c "CREATE DATABASE restored OWNER phantom_scram" || fail "createdb restored"
q "host=127.0.0.1 port=$PGH_PORT dbname=restored $base" -f "$T/backup.sql" >"$T/restore.log" 2>&1 ||
    { tail "$T/restore.log" >&2; fail "restore"; }
py shredded "$PROXY_PORT" restored >"$T/restored.log" 2>&1 ||
    { cat "$T/restored.log" >&2; fail "the restored backup through the proxy"; }
ok "restored backup through the proxy: no beta plaintext, acme and gamma intact"

# --- every remaining key against beta's envelopes --------------------------------------------
RESTORED="host=127.0.0.1 port=$PGH_PORT dbname=restored $base"
q "$RESTORED" -At >"$T/beta.hex" <<'EOF' || fail "beta's envelopes"
SELECT encode(email, 'hex') FROM customers WHERE tenant_id = 'beta'
UNION ALL SELECT encode(full_name, 'hex') FROM customers WHERE tenant_id = 'beta'
UNION ALL SELECT encode(body, 'hex') FROM notes WHERE owner = 'beta';
EOF
[ "$(wc -l <"$T/beta.hex")" = 60 ] || fail "want 60 beta envelopes, got $(wc -l <"$T/beta.hex")"
"$PHANTOM_BIN" keys probe -c "$CFG" <"$T/beta.hex" >"$T/probe-beta.log" 2>&1 ||
    { cat "$T/probe-beta.log" >&2; fail "a remaining key opens a beta envelope"; }
grep -q "^60 envelope(s) tried against 6 live DEK(s) x [0-9]* key domain name(s): 0 opened" "$T/probe-beta.log" ||
    { cat "$T/probe-beta.log" >&2; fail "probe report"; }
q "$RESTORED" -At -c "SELECT encode(email, 'hex') FROM customers WHERE tenant_id = 'acme'" >"$T/acme.hex" ||
    fail "acme's envelopes"
"$PHANTOM_BIN" keys probe -c "$CFG" <"$T/acme.hex" >"$T/probe-acme.log" 2>&1 &&
    fail "the probe opened none of acme's envelopes (it cannot tell)"
grep -q "20 opened" "$T/probe-acme.log" || { cat "$T/probe-acme.log" >&2; fail "probe of acme"; }
ok "60 beta envelopes from the backup: none opens with any of the 6 remaining DEKs; acme's do"

"$PHANTOM_BIN" audit verify "$AUDIT" >"$T/audit.log" 2>&1 || { cat "$T/audit.log" >&2; fail "audit verify"; }
grep -q '"event":"tenant.shred","outcome":"ok"' "$AUDIT" || fail "no tenant.shred audit record"
[ "$(grep -c '"event":"keys.shred","outcome":"ok"' "$AUDIT")" = 3 ] || fail "want 3 keys.shred records"
ok "audit chain verifies: $(cat "$T/audit.log")"

# --- tokens of a tenant-keyed table ------------------------------------------------------------
K="$T/tok"
mkdir -p "$K"
"$PHANTOM_BIN" keys init-master --out "$K/master.key" >"$K/keys.log" 2>&1 || fail "tokens: init-master"
cat >"$K/phantom.yaml" <<EOF
keys:
  keyring: $K/keyring.json
  provider: file
  file: { path: $K/master.key }
  cache_ttl: 2s
encrypt:
  accounts:
    - {column: ssn, mode: token, format: digits}
    - {column: label, mode: token}
tenants:
  tables:
    accounts: {column: tenant_id}
tokens:
  vault: sqlite
  path: $K/tokens.db
EOF
"$PHANTOM_BIN" keys create -c "$K/phantom.yaml" >>"$K/keys.log" 2>&1 || { cat "$K/keys.log" >&2; fail "tokens: keys create"; }
grep -q "has a key already" "$K/keys.log" || fail "tokens: keys create made a plain key for a tenant-keyed token column"
phx_start --config "$K/phantom.yaml"
TOK_PORT=$PHX_PORT
tq() { # TENANT SQL...: psql through the token proxy with the startup tenant
    local t=$1
    shift
    PGOPTIONS="-c phantom.tenant=$t" q "host=127.0.0.1 port=$TOK_PORT dbname=$PGH_DB $base" -At "$@"
}
q "host=127.0.0.1 port=$TOK_PORT dbname=$PGH_DB $base" \
    -c "CREATE TABLE accounts (id serial PRIMARY KEY, tenant_id text NOT NULL, ssn text, label text)" ||
    fail "tokens: schema"
SSN1=734219865
SSN2=111224333
for t in acme beta; do
    tq "$t" -c "INSERT INTO accounts (tenant_id, ssn, label) VALUES ('$t', '$SSN1', '$t-label-one'), ('$t', '$SSN2', '$t-label-two')" ||
        fail "tokens: $t insert"
done
for t in acme beta; do
    got=$(tq "$t" -c "SELECT ssn, label FROM accounts WHERE tenant_id = '$t' ORDER BY id" | tr '\n' ' ')
    assert_eq "$SSN1|$t-label-one $SSN2|$t-label-two " "$got" "tokens: $t reads its own values back"
done
toks=$(q "$DIRECT" -At -c "SELECT DISTINCT ssn FROM accounts") || fail "tokens: read directly"
[ "$(echo "$toks" | wc -l)" = 4 ] || fail "tokens: two tenants share a token for the same value"
q "$DIRECT" -At -c "SELECT ssn, label FROM accounts" | grep -q -e "$SSN1" -e "$SSN2" -e "label-" &&
    fail "tokens: a value is in the database"
tq beta -c "DELETE FROM accounts WHERE ssn = '$SSN2'" >/dev/null || fail "tokens: beta delete"
n=$(tq acme -c "SELECT count(*) FROM accounts WHERE ssn = '$SSN2'") || fail "tokens: acme lookup"
assert_eq "1" "$n" "tokens: acme's lookup matches its own row only (beta's deleted by beta's lookup)"
n=$(q "$DIRECT" -At -c "SELECT count(*) FROM accounts") || fail "tokens: count"
assert_eq "3" "$n" "tokens: beta's lookup matched beta's row only"
out=$(tq acme -c "SELECT ssn FROM accounts WHERE tenant_id = 'beta'" 2>&1) && fail "tokens: acme read beta's token"
assert_contains "$out" "belongs to another tenant" "tokens: beta's token in acme's session is refused"
ok "tokens of a tenant-keyed table: per tenant, read back exactly, cross-tenant lookups and reads refused"
"$PHANTOM_BIN" keys shred -c "$K/phantom.yaml" --tenant beta --yes >"$K/shred.log" 2>&1 ||
    { cat "$K/shred.log" >&2; fail "tokens: keys shred"; }
for _ in $(seq 1 40); do # the proxy drops beta's keys at its next refresh
    out=$(tq beta -c "SELECT ssn FROM accounts WHERE tenant_id = 'beta'" 2>&1) || break
    sleep 0.25
done
assert_contains "$out" "its key was destroyed (the tenant was crypto-shredded)" "tokens: beta's tokens after the shred"
case "$out" in *"$SSN1"* | *"$SSN2"*) fail "tokens: a value in the error" ;; esac
tq beta -c "SELECT label FROM accounts WHERE tenant_id = 'beta'" >/dev/null 2>&1 && fail "tokens: beta's label read after the shred"
got=$(tq acme -c "SELECT ssn, label FROM accounts WHERE tenant_id = 'acme' ORDER BY id" | tr '\n' ' ')
assert_eq "$SSN1|acme-label-one $SSN2|acme-label-two " "$got" "tokens: acme's tokens after beta's shred"
ok "tokens after keys shred --tenant beta: beta's fail to detokenize (key destroyed), acme's read"
