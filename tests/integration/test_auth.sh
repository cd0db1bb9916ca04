#!/usr/bin/env bash
# Authentication passes through the proxy unchanged.
#
#   * SCRAM-SHA-256, MD5, cleartext password and trust roles all log in
#     through the proxy and are who they say they are (current_user);
#   * a wrong password fails with the server's own error (28P01, "password
#     authentication failed for user ...") relayed verbatim, and the proxy
#     keeps serving;
#   * GSSENCRequest is answered N and the session continues; gssencmode=require fails;
#   * clients with sslmode=prefer (SSLRequest first, proxy answers 'N' when it
#     has no client TLS) and sslmode=disable both work;
#   * SCRAM with channel_binding=require fails: the proxy strips
#     SCRAM-SHA-256-PLUS (it cannot bind the client's channel end to end), so
#     libpq refuses with a clear message instead of authenticating.
set -u
source "$(dirname "$0")/../lib/harness.sh"

pgh_start --ssl # upstream TLS so that the server would offer SCRAM-SHA-256-PLUS
phx_start --sslmode require

# pq PORT USER PASSWORD [EXTRA CONNINFO] -- SQL: prints psql's stdout+stderr.
pq() {
    local port="$1" user="$2" pw="$3" extra="${4:-}" sql="$5"
    PGPASSWORD="$pw" timeout 30 psql -X -w -At -v ON_ERROR_STOP=1 \
        "host=127.0.0.1 port=$port dbname=$PGH_DB user=$user connect_timeout=10 $extra" \
        -c "$sql" 2>&1
}
# wire_login PORT USER PASSWORD: a raw-protocol login (cleartext or MD5 only;
# libpq does not expose the SQLSTATE of a failed connection). Prints
# "AUTHOK" or the ErrorResponse fields "S=.. C=.. M=..". For SCRAM roles it
# prints the offered SASL mechanisms ("SASL A,B") and stops.
wire_login() {
    timeout 30 /usr/bin/python3 - "$@" "$PGH_DB" <<'PY'
import hashlib, socket, struct, sys
port, user, pw, db = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = socket.create_connection(("127.0.0.1", port), timeout=20)
def recv_exact(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            sys.exit("connection closed")
        b += c
    return b
def msg():
    t = recv_exact(1); n = struct.unpack("!I", recv_exact(4))[0]
    return t, recv_exact(n - 4)
body = struct.pack("!I", 196608) + b"user\0" + user.encode() + b"\0database\0" + db.encode() + b"\0\0"
s.sendall(struct.pack("!I", len(body) + 4) + body)
while True:
    t, b = msg()
    if t == b"R":
        code = struct.unpack("!I", b[:4])[0]
        if code == 0:
            print("AUTHOK"); break
        if code == 10:  # AuthenticationSASL: list the mechanisms offered
            print("SASL " + ",".join(m.decode() for m in b[4:].split(b"\0") if m)); break
        if code == 3:
            p = pw.encode() + b"\0"
        elif code == 5:
            inner = hashlib.md5(pw.encode() + user.encode()).hexdigest().encode()
            p = b"md5" + hashlib.md5(inner + b[4:8]).hexdigest().encode() + b"\0"
        else:
            sys.exit("unexpected auth request %d" % code)
        s.sendall(b"p" + struct.pack("!I", len(p) + 4) + p)
    elif t == b"E":
        f = dict((x[:1].decode(), x[1:].decode()) for x in b.split(b"\0") if x)
        print("S=%s C=%s M=%s" % (f.get("S"), f.get("C"), f.get("M"))); break
    else:
        sys.exit("unexpected message %r" % t)
PY
}
alive() { kill -0 "$PHX_PID" 2>/dev/null || fail "proxy died"; }

# --- each auth method, through the proxy, compared with a direct login -----
for spec in "phantom_scram scram_pw scram-sha-256" "phantom_md5 md5_pw md5" \
    "phantom_clear clear_pw password" "phantom_trust - trust"; do
    read -r user pw method <<<"$spec"
    [ "$pw" = "-" ] && pw=""
    # The server's own view of how this session authenticated (direct, to check
    # the test set-up really exercises the method).
    direct=$(pq "$PGH_PORT" "$user" "$pw" "sslmode=disable" "select current_user")
    assert_eq "$user" "$direct" "direct login as $user ($method) works (test set-up)"
    out=$(pq "$PHX_PORT" "$user" "$pw" "sslmode=disable" "select current_user, current_database()")
    assert_eq "$user|$PGH_DB" "$out" "$method login through the proxy as $user"
done

# The hba really requires the method: MD5/cleartext/SCRAM roles without a
# password fail (so the logins above did authenticate).
out=$(pq "$PHX_PORT" phantom_md5 "" "sslmode=disable" "select 1")
rc=$?
[ "$rc" -ne 0 ] || fail "md5 role logged in without a password: [$out]"
ok "md5 role without a password is refused through the proxy"

# --- wrong password: the server's error, verbatim ----------------------------
for spec in "phantom_scram scram" "phantom_md5 md5" "phantom_clear clear"; do
    read -r user what <<<"$spec"
    proxied=$(pq "$PHX_PORT" "$user" "wrong_pw" "sslmode=disable" "select 1")
    rc=$?
    [ "$rc" -ne 0 ] || fail "$what login with a wrong password succeeded: [$proxied]"
    assert_contains "$proxied" "password authentication failed for user \"$user\"" \
        "$what wrong password: server's message through the proxy"
    direct=$(pq "$PGH_PORT" "$user" "wrong_pw" "sslmode=disable" "select 1")
    # Same text as a direct connection apart from host/port in libpq's prefix.
    strip() { sed -E 's/, port [0-9]+ failed:/ failed:/' <<<"$1"; }
    assert_eq "$(strip "$direct")" "$(strip "$proxied")" "$what wrong password: same error as direct"
done
# The raw ErrorResponse, field by field (cleartext and MD5 are simple enough to
# speak by hand): SQLSTATE 28P01 relayed.
for spec in "phantom_clear clear_pw cleartext" "phantom_md5 md5_pw md5"; do
    read -r user pw what <<<"$spec"
    assert_eq "AUTHOK" "$(wire_login "$PHX_PORT" "$user" "$pw")" "raw $what login through the proxy (helper check)"
    assert_eq "S=FATAL C=28P01 M=password authentication failed for user \"$user\"" \
        "$(wire_login "$PHX_PORT" "$user" wrong_pw)" "$what wrong password: ErrorResponse with SQLSTATE 28P01 relayed"
done
alive
assert_eq "phantom_scram" "$(pq "$PHX_PORT" phantom_scram scram_pw "sslmode=disable" "select current_user")" \
    "proxy still serves after failed logins"

# --- client sslmode prefer / disable -----------------------------------------
# The upstream leg uses TLS (sslmode=require); the client leg is plain.
out=$(pq "$PHX_PORT" phantom_scram scram_pw "sslmode=prefer" \
    "select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()")
assert_eq "phantom_scram|t" "$out" "sslmode=prefer client logs in (SCRAM), upstream leg is TLS"
out=$(pq "$PHX_PORT" phantom_md5 md5_pw "sslmode=prefer" "select current_user")
assert_eq "phantom_md5" "$out" "sslmode=prefer client logs in (MD5)"
out=$(pq "$PHX_PORT" phantom_scram scram_pw "sslmode=disable" "select current_user")
assert_eq "phantom_scram" "$out" "sslmode=disable client logs in (SCRAM)"
out=$(pq "$PHX_PORT" phantom_scram scram_pw "sslmode=require" "select 1")
rc=$?
[ "$rc" -ne 0 ] || fail "sslmode=require client succeeded although the proxy has no client TLS"
assert_contains "$out" "server does not support SSL" "sslmode=require client: proxy without client TLS declines SSL"

# --- channel binding ----------------------------------------------------------
# The proxy talks TLS upstream, so the server offers SCRAM-SHA-256-PLUS on
# that leg; the proxy must remove it from what the client sees.
assert_eq "SASL SCRAM-SHA-256" "$(wire_login "$PHX_PORT" phantom_scram x)" \
    "SASL mechanisms through the proxy (TLS upstream): SCRAM-SHA-256-PLUS stripped"
# Direct (server on TLS, PLUS offered): channel_binding=require works.
out=$(pq "$PGH_PORT" phantom_scram scram_pw "sslmode=require channel_binding=require" "select current_user")
assert_eq "phantom_scram" "$out" "direct channel_binding=require works (server offers PLUS)"
# Through a proxy with client TLS (so the client is on TLS and would use
# PLUS if offered): libpq refuses, clearly, before sending any proof.
P_PLAIN=$PHX_PORT PID_PLAIN=$PHX_PID STOP_PLAIN="$PHX_PID $PHX_LOG $PHX_ASAN_DIR"
phx_start --sslmode require --client-tls-cert "$PGH_TLS_DIR/server.crt" --client-tls-key "$PGH_TLS_DIR/server.key"
P_TLS=$PHX_PORT
# (TLS on both legs needs channel_binding=disable with SCRAM: see test_tls.sh.)
out=$(pq "$P_TLS" phantom_scram scram_pw \
    "sslmode=verify-full sslrootcert=$PGH_TLS_DIR/ca.crt channel_binding=disable" "select current_user")
assert_eq "phantom_scram" "$out" "TLS client (verify-full against the proxy) logs in with SCRAM"
out=$(pq "$P_TLS" phantom_scram scram_pw "sslmode=require channel_binding=require" "select current_user")
rc=$?
[ "$rc" -ne 0 ] || fail "channel_binding=require succeeded through the proxy: [$out]"
assert_contains "$out" "channel binding is required, but server did not offer an authentication method that supports channel binding" \
    "channel_binding=require through the TLS proxy fails: no PLUS offered"
out=$(pq "$P_PLAIN" phantom_scram scram_pw "sslmode=prefer channel_binding=require" "select current_user")
rc=$?
[ "$rc" -ne 0 ] || fail "channel_binding=require succeeded through the plain proxy: [$out]"
assert_contains "$out" "channel binding required, but SSL not in use" \
    "channel_binding=require through the plain proxy fails (client leg has no TLS)"
# Same with MD5 (no SCRAM at all): libpq also refuses, never sends the password.
out=$(pq "$P_TLS" phantom_md5 md5_pw "sslmode=require channel_binding=require" "select current_user")
rc=$?
[ "$rc" -ne 0 ] || fail "channel_binding=require with an MD5 role succeeded: [$out]"
ok "channel_binding=require with an MD5 role fails too"
# GSSENCRequest: the proxy answers 'N' (no GSSAPI encryption) and the client
# goes on with a StartupMessage on the same connection, as with PostgreSQL.
out=$(/usr/bin/python3 - "$P_PLAIN" "$PGH_DB" <<'PY'
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(struct.pack("!ii", 8, 80877104))
print("answer=" + s.recv(1).decode())
body = b"user\0phantom_trust\0database\0" + sys.argv[2].encode() + b"\0\0"
s.sendall(struct.pack("!ii", 8 + len(body), 196608) + body)
seen = b""
while True:
    h = s.recv(5, socket.MSG_WAITALL)
    if len(h) < 5:
        break
    n = struct.unpack("!i", h[1:])[0] - 4
    if n:
        s.recv(n, socket.MSG_WAITALL)
    seen += h[:1]
    if h[:1] in (b"Z", b"E"):
        break
print("messages=" + seen.decode())
PY
)
assert_contains "$out" "answer=N" "GSSENCRequest is answered N"
assert_contains "$out" "messages=R" "the StartupMessage after it is answered (authentication)"
case "$out" in *Z) ok "the session reaches ReadyForQuery after the GSSENCRequest" ;; *) fail "no ReadyForQuery after GSSENCRequest: $out" ;; esac
out=$(pq "$P_PLAIN" phantom_scram scram_pw "sslmode=disable gssencmode=require" "select 1")
rc=$?
[ "$rc" -ne 0 ] || fail "gssencmode=require succeeded through the proxy: [$out]"
assert_contains "$out" "GSSAPI encryption required but was impossible" \
    "gssencmode=require fails cleanly (no GSSAPI encryption offered)"
alive
kill -0 "$PID_PLAIN" 2>/dev/null || fail "first proxy died"

phx_stop || fail "TLS proxy did not shut down cleanly"
phx_stop $STOP_PLAIN || fail "proxy did not shut down cleanly"
ok "proxies shut down cleanly"
