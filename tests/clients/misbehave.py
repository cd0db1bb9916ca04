#!/usr/bin/python3
"""misbehave.py — a misbehaving PostgreSQL client for the proxy's fault tests.

    misbehave.py PORT SCENARIO [ARGS...]

Plain sockets, protocol 3.0 written by hand (stdlib only), so that exactly
the bytes a broken or hostile client would send reach the proxy, and exactly
what the proxy answers is seen. Logins use the trust role phantom_trust (the
slow-auth scenario: phantom_clear / clear_pw, cleartext password) of
database phantom, as tests/lib/harness.sh sets them up; application_name is
misbehave-SCENARIO, so that a test can find their server backends.

Every scenario prints one line (slow-* and mid-* scenarios: the last line):

    HOW MESSAGES [key=value...]

HOW is how the proxy ended the connection: "closed" (EOF), "reset" (RST), or
"open" (still open when the scenario stopped waiting). MESSAGES are the
messages received after the login, ErrorResponse as E[severity sqlstate
message], NoticeResponse as N[...], DataRow as D[values], others as their
type letter; "junk[N]" is a trailing incomplete message.

Scenarios (state the proxy sees -> what the client does):

  random-startup [SEED]        4096 random bytes instead of a startup packet
  random-after-auth [SEED]     login, then 4096 random bytes
  truncated-startup            20 bytes of a startup packet, then half-close
  truncated-header-after-auth  login, 3 bytes of a message header, half-close
  truncated-after-auth         login, a Query declaring 100 bytes with 6
                               sent, then half-close
  huge-startup                 startup length word 0x7fffffff
  huge-after-auth              login, a Query with length word 0x7fffffff
  short-startup                startup length word 7 (below the minimum 8)
  long-startup                 startup length word 10001 (above 10000)
  slow-startup [SECS]          a startup packet one byte per second (SECS:
                               stop after that long; default 30)
  slow-tls [SECS]              SSLRequest, and after the proxy's 'S' a TLS
                               record (a ClientHello's header and body) one
                               byte per second
  slow-auth [SECS]             phantom_clear: startup packet at once, then
                               the PasswordMessage one byte per second
  slow-query SQL               login, then the Query one byte per second;
                               reads the answer (prints elapsed=S)
  mid-bind TABLE               login; Parse of "INSERT INTO TABLE (id,
                               secret) VALUES ($1, $2)", half of a Bind for
                               it, then close
  mid-copydata TABLE           login; COPY TABLE (id, secret) FROM STDIN, one
                               whole CopyData row (id 900001), half of the
                               next (id 900002), then close
  declare-big COUNT LENGTH      COUNT logged-in sessions that each send the
                               header of a Query declaring LENGTH bytes and
                               56 bytes of it, then (a second read for the
                               proxy) 8 more; prints "holding COUNT", waits
                               for a line on stdin, prints "answers: ..."
                               (what each connection got so far) and closes
  abandon SILENT PARTIAL IDLE QUERY SQL
                               opens SILENT connections that send nothing,
                               PARTIAL that send half a startup packet, IDLE
                               logged-in sessions and QUERY sessions that send
                               SQL and never read the answer; prints
                               "holding N" when all are open, waits for a
                               line on stdin, then abandons them all (every
                               second one with RST, the others with FIN) and
                               prints "abandoned N"
"""
import random
import socket
import struct
import sys
import time

PROTO = 196608  # 3.0


APPNAME = "misbehave"  # application_name: misbehave-SCENARIO (set in main)


def startup_packet(user, db="phantom"):
    body = struct.pack("!I", PROTO) + b"user\0" + user.encode() + b"\0database\0"
    body += db.encode() + b"\0application_name\0" + APPNAME.encode() + b"\0\0"
    return struct.pack("!I", len(body) + 4) + body


def message(mtype, body):
    return mtype + struct.pack("!I", len(body) + 4) + body


def query_msg(sql):
    return message(b"Q", sql.encode() + b"\0")


class Conn:
    """One raw connection with a receive buffer of framed messages."""

    def __init__(self, port, timeout=10.0):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.how = None  # "closed" / "reset" once the proxy hung up

    def recv_some(self, timeout):
        """Reads what arrives within timeout; False once the peer hung up."""
        if self.how:
            return False
        self.s.settimeout(max(0.001, timeout))
        try:
            chunk = self.s.recv(65536)
        except socket.timeout:
            return True
        except ConnectionResetError:
            self.how = "reset"
            return False
        if not chunk:
            self.how = "closed"
            return False
        self.buf += chunk
        return True

    def take(self):
        """Complete messages at the front of the buffer, as (type, body)."""
        out = []
        while len(self.buf) >= 5:
            n = struct.unpack("!I", self.buf[1:5])[0]
            if n < 4 or len(self.buf) < 1 + n:
                break
            out.append((self.buf[:1], self.buf[5 : 1 + n]))
            self.buf = self.buf[1 + n :]
        return out

    def read_until(self, pred, timeout):
        """Messages until pred(type, body), EOF or timeout."""
        got, end = [], time.monotonic() + timeout
        while True:
            for m in self.take():
                got.append(m)
                if pred(*m):
                    return got
            left = end - time.monotonic()
            if left <= 0 or not self.recv_some(left):
                got.extend(self.take())
                return got

    def read_to_end(self, timeout):
        """Everything until the proxy hangs up (or timeout: how = open)."""
        got = self.read_until(lambda t, b: False, timeout)
        return got

    def send(self, data):
        try:
            self.s.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def login(self, user="phantom_trust"):
        self.send(startup_packet(user))
        got = self.read_until(lambda t, b: t in (b"Z", b"E"), 15)
        if not got or got[-1][0] != b"Z":
            print(describe(self, got) + " login=failed")
            sys.exit(0)

    def status(self):
        return self.how or "open"


def fields(body):
    return dict((x[:1].decode(), x[1:].decode("utf-8", "replace")) for x in body.split(b"\0") if x)


def datarow(body):
    n = struct.unpack("!H", body[:2])[0]
    vals, i = [], 2
    for _ in range(n):
        ln = struct.unpack("!i", body[i : i + 4])[0]
        i += 4
        if ln < 0:
            vals.append("NULL")
        else:
            vals.append(body[i : i + ln].decode("utf-8", "replace"))
            i += ln
    return "D[%s]" % ",".join(vals)


def fmt(msgs):
    out = []
    for t, body in msgs:
        if t in (b"E", b"N"):
            f = fields(body)
            out.append("%s[%s %s %s]" % (t.decode(), f.get("S"), f.get("C"), f.get("M")))
        elif t == b"D":
            out.append(datarow(body))
        else:
            out.append(t.decode("latin1"))
    return " ".join(out)


def describe(c, msgs):
    line = (c.status() + " " + fmt(msgs)).strip()
    if c.buf:
        line += " junk[%d]" % len(c.buf)
    return line


def finish(c, extra="", timeout=10):
    msgs = c.read_to_end(timeout)
    print((describe(c, msgs) + " " + extra).strip(), flush=True)


def half_close(c):
    try:
        c.s.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def dribble(c, data, secs, stop_on_reply=True):
    """Sends data one byte per second; stops early when the proxy answers or
    hangs up, or after secs. Returns (messages, bytes sent)."""
    got, sent, t0 = [], 0, time.monotonic()
    for i in range(len(data)):
        if time.monotonic() - t0 >= secs:
            break
        if not c.send(data[i : i + 1]):
            break
        sent += 1
        # Wait the rest of this second, watching for an answer.
        end = t0 + sent
        while time.monotonic() < end:
            if not c.recv_some(end - time.monotonic()):
                got.extend(c.take())
                return got, sent
            got.extend(c.take())
            if stop_on_reply and got:
                return got, sent
    return got, sent


# ---- scenarios -------------------------------------------------------------------------


def sc_random_startup(port, seed="1"):
    c = Conn(port)
    c.send(random.Random(int(seed)).randbytes(4096))
    finish(c)


def sc_random_after_auth(port, seed="1"):
    c = Conn(port)
    c.login()
    # Not starting with a known message type; the rest is noise.
    c.send(b"\xfe" + random.Random(int(seed)).randbytes(4095))
    finish(c)


def sc_truncated_startup(port):
    c = Conn(port)
    c.send(startup_packet("phantom_trust")[:20])
    half_close(c)
    finish(c)


def sc_truncated_header_after_auth(port):
    c = Conn(port)
    c.login()
    c.send(b"Q\0\0")
    half_close(c)
    finish(c)


def sc_truncated_after_auth(port):
    c = Conn(port)
    c.login()
    c.send(b"Q" + struct.pack("!I", 100) + b"select")
    half_close(c)
    finish(c)


def sc_huge_startup(port):
    c = Conn(port)
    c.send(struct.pack("!II", 0x7FFFFFFF, PROTO) + b"user\0phantom_trust\0\0")
    finish(c)


def sc_huge_after_auth(port):
    c = Conn(port)
    c.login()
    c.send(b"Q" + struct.pack("!I", 0x7FFFFFFF) + b"select 1")
    finish(c)


def sc_short_startup(port):
    c = Conn(port)
    c.send(struct.pack("!I", 7) + b"\0\3\0")
    finish(c)


def sc_long_startup(port):
    c = Conn(port)
    c.send(struct.pack("!II", 10001, PROTO) + b"user\0phantom_trust\0")
    finish(c)


def sc_slow_startup(port, secs="30"):
    c = Conn(port, timeout=60)
    t0 = time.monotonic()
    got, sent = dribble(c, startup_packet("phantom_trust"), float(secs))
    got += c.read_to_end(2)
    print("%s sent=%d elapsed=%.1f" % (describe(c, got), sent, time.monotonic() - t0), flush=True)


def sc_slow_tls(port, secs="30"):
    c = Conn(port, timeout=60)
    t0 = time.monotonic()
    c.send(struct.pack("!II", 8, 80877103))
    c.s.settimeout(10)
    if c.s.recv(1) != b"S":
        print("no-tls", flush=True)
        return
    # A handshake record announcing 512 bytes: the proxy's TLS layer waits
    # for all of them.
    record = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32)
    got, sent = dribble(c, record, float(secs))
    got += c.read_to_end(2)
    print("%s sent=%d elapsed=%.1f" % (describe(c, got), sent, time.monotonic() - t0), flush=True)


def sc_slow_auth(port, secs="30"):
    c = Conn(port, timeout=60)
    t0 = time.monotonic()
    c.send(startup_packet("phantom_clear"))
    got = c.read_until(lambda t, b: t in (b"R", b"E"), 10)
    if not got or got[-1][0] != b"R" or struct.unpack("!I", got[-1][1][:4])[0] != 3:
        print(describe(c, got) + " auth=unexpected", flush=True)
        return
    got, sent = dribble(c, message(b"p", b"clear_pw\0"), float(secs))
    got += c.read_to_end(2)
    print("%s sent=%d elapsed=%.1f" % (describe(c, got), sent, time.monotonic() - t0), flush=True)


def sc_slow_query(port, sql):
    c = Conn(port, timeout=60)
    c.login()
    t0 = time.monotonic()
    got, sent = dribble(c, query_msg(sql), 300, stop_on_reply=False)
    if not any(t == b"Z" for t, _ in got):
        got += c.read_until(lambda t, b: t == b"Z", 30)
    print("%s sent=%d elapsed=%.1f" % (describe(c, got), sent, time.monotonic() - t0), flush=True)


def parse_msg(sql):
    return message(b"P", b"\0" + sql.encode() + b"\0" + struct.pack("!H", 0))


def bind_msg(values):
    body = b"\0\0" + struct.pack("!H", 0) + struct.pack("!H", len(values))
    for v in values:
        body += struct.pack("!I", len(v)) + v
    return message(b"B", body + struct.pack("!H", 0))


def sc_mid_bind(port, table):
    c = Conn(port)
    c.login()
    c.send(parse_msg("INSERT INTO %s (id, secret) VALUES ($1, $2)" % table))
    b = bind_msg([b"900003", b"half-bound value"])
    c.send(b[: len(b) // 2])
    time.sleep(0.2)
    print(describe(c, c.take()) + " sent=%d/%d" % (len(b) // 2, len(b)), flush=True)
    c.s.close()


def sc_mid_copydata(port, table):
    c = Conn(port)
    c.login()
    c.send(query_msg("COPY %s (id, secret) FROM STDIN" % table))
    got = c.read_until(lambda t, b: t in (b"G", b"E", b"Z"), 10)
    if not got or got[-1][0] != b"G":
        print(describe(c, got) + " copy=not-started", flush=True)
        return
    c.send(message(b"d", b"900001\tcopied before the cut\n"))
    d = message(b"d", b"900002\tcut in half\n")
    c.send(d[: len(d) // 2])
    time.sleep(0.2)
    print(describe(c, c.take()) + " sent=1+%d/%d" % (len(d) // 2, len(d)), flush=True)
    c.s.close()


def sc_declare_big(port, count, length):
    conns = []
    for _ in range(int(count)):
        c = Conn(port, timeout=30)
        c.login()
        c.send(b"Q" + struct.pack("!I", int(length)) + b"select '" + b"x" * 48)
        conns.append(c)
    time.sleep(0.2)
    for c in conns:  # a second read of each: the proxy sizes its buffer again
        c.send(b"x" * 8)
    time.sleep(0.2)
    print("holding %d" % len(conns), flush=True)
    sys.stdin.readline()
    lines = [describe(c, c.take()) for c in conns]
    print("answers: " + ", ".join(sorted(set(lines))), flush=True)


def abandon(conns):
    n = 0
    for i, c in enumerate(conns):
        if i % 2 == 0:  # RST: SO_LINGER with a zero timeout
            c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.s.close()
        n += 1
    return n


def sc_abandon(port, silent, partial, idle, query, sql):
    conns = []
    for _ in range(int(silent)):
        conns.append(Conn(port))
    pkt = startup_packet("phantom_trust")
    for _ in range(int(partial)):
        c = Conn(port)
        c.send(pkt[: len(pkt) // 2])
        conns.append(c)
    # Logins in batches: a backend is forked per session.
    pending = []
    for i in range(int(idle) + int(query)):
        c = Conn(port, timeout=30)
        c.send(pkt)
        pending.append(c)
    failed = 0
    for i, c in enumerate(pending):
        got = c.read_until(lambda t, b: t in (b"Z", b"E"), 30)
        if not got or got[-1][0] != b"Z":
            failed += 1
        elif i >= int(idle):
            c.send(query_msg(sql))
        conns.append(c)
    print("holding %d login_failed=%d" % (len(conns), failed), flush=True)
    sys.stdin.readline()
    print("abandoned %d" % abandon(conns), flush=True)


SCENARIOS = {
    "random-startup": sc_random_startup,
    "random-after-auth": sc_random_after_auth,
    "truncated-startup": sc_truncated_startup,
    "truncated-header-after-auth": sc_truncated_header_after_auth,
    "truncated-after-auth": sc_truncated_after_auth,
    "huge-startup": sc_huge_startup,
    "huge-after-auth": sc_huge_after_auth,
    "short-startup": sc_short_startup,
    "long-startup": sc_long_startup,
    "slow-startup": sc_slow_startup,
    "slow-tls": sc_slow_tls,
    "slow-auth": sc_slow_auth,
    "slow-query": sc_slow_query,
    "mid-bind": sc_mid_bind,
    "mid-copydata": sc_mid_copydata,
    "declare-big": sc_declare_big,
    "abandon": sc_abandon,
}


def main():
    if len(sys.argv) < 3 or sys.argv[2] not in SCENARIOS:
        sys.exit("usage: misbehave.py PORT SCENARIO [ARGS...]; scenarios: " + " ".join(SCENARIOS))
    global APPNAME
    APPNAME = "misbehave-" + sys.argv[2]
    SCENARIOS[sys.argv[2]](int(sys.argv[1]), *sys.argv[3:])


if __name__ == "__main__":
    main()
