#!/usr/bin/python3
"""pgcapture.py — a TCP tee for the PostgreSQL wire protocol, and the converter
of its captures into the fuzz targets' seed corpora (stdlib only).

    pgcapture.py tee --listen [HOST:]PORT --target HOST:PORT --out DIR
                     [--conns N] [--ready-file FILE]
        Accepts clients on --listen and relays each, byte for byte, to
        --target. For the k-th connection (k = 1, 2, ...) it writes:
          DIR/conn-k.c2s   every byte the client sent, in order
          DIR/conn-k.s2c   every byte the server sent, in order
          DIR/conn-k.seq   the interleaved reads: records of
                           dir (1 byte: 0 client->server, 1 server->client) |
                           monotonic time in ns (8, big-endian) |
                           length (4, big-endian) | the bytes
          DIR/conn-k.txt   the interleaved message sequence, one line per
                           message: time, direction, type, length
        Exits after N connections have ended (--conns), or on SIGTERM/SIGINT.
        --ready-file is created once the port listens.

    pgcapture.py corpus --client DIR [--upstream DIR] --out CORPUS --name NAME
                        [--max-bytes N] [--no-conversation]
        Converts the connections of a capture into seed files under
        CORPUS/<target>/NAME-<k>[-<i>]:
          fuzz_protocol      chunk byte + the client's stream
          fuzz_server        chunk byte + mode byte + the server's stream
          fuzz_conversation  the session as the engine sees it: the client's
                             reads (of --client) and the server's reads (of
                             --upstream when the client went through the
                             encrypting proxy, else of --client) merged by
                             time, as records  hdr(1: bit 0 = direction, 0 for
                             client->proxy) | length (2, big-endian) | bytes
          fuzz_engine        the messages as raw records of fuzz_engine's
                             script (type, body length < 256)
          fuzz_rewrite       each distinct SQL text of Query and Parse
          fuzz_copy          3 option bytes + the data of each COPY (both
                             directions; up to 4 columns, < 4 KiB)
        Streams are cut at a message boundary below --max-bytes.

Connections of the two legs are paired in order (the proxy opens one upstream
connection per client connection; sessions must not overlap).
"""
import argparse
import hashlib
import os
import re
import select
import signal
import socket
import struct
import sys
import threading
import time

# ---- the tee --------------------------------------------------------------------


def parse_addr(s, default_host="127.0.0.1"):
    host, _, port = s.rpartition(":")
    return (host or default_host, int(port))


class Conn:
    """One relayed connection and its capture files."""

    def __init__(self, k, client, target, out):
        self.client = client
        self.server = socket.create_connection(target, timeout=10)
        self.server.settimeout(None)
        base = os.path.join(out, "conn-%d" % k)
        self.files = [open(base + ".c2s", "wb"), open(base + ".s2c", "wb")]
        self.seq = open(base + ".seq", "wb")
        self.base = base

    def run(self):
        socks = {self.client: 0, self.server: 1}
        peer = {self.client: self.server, self.server: self.client}
        open_ = set(socks)
        try:
            while open_:
                ready, _, _ = select.select(list(open_), [], [], 1.0)
                for s in ready:
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b""
                    d = socks[s]
                    if not data:
                        open_.discard(s)
                        try:
                            peer[s].shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        if d == 1:  # the server is gone: nothing more to relay
                            open_.clear()
                        continue
                    t = time.monotonic_ns()
                    self.files[d].write(data)
                    self.seq.write(struct.pack(">BQI", d, t, len(data)) + data)
                    try:
                        peer[s].sendall(data)
                    except OSError:
                        open_.clear()
        finally:
            for f in self.files + [self.seq]:
                f.close()
            for s in (self.client, self.server):
                s.close()
            write_txt(self.base)


def tee(args):
    os.makedirs(args.out, exist_ok=True)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(parse_addr(args.listen))
    lsock.listen(16)
    if args.ready_file:
        open(args.ready_file, "w").close()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threads = []
    k = 0
    target = parse_addr(args.target)
    while not stop.is_set():
        if args.conns and k >= args.conns:
            break
        r, _, _ = select.select([lsock], [], [], 0.2)
        if not r:
            continue
        c, _ = lsock.accept()
        k += 1
        try:
            conn = Conn(k, c, target, args.out)
        except OSError as e:
            print("pgcapture: cannot reach the target: %s" % e, file=sys.stderr)
            c.close()
            continue
        th = threading.Thread(target=conn.run, daemon=True)
        th.start()
        threads.append(th)
    lsock.close()
    for th in threads:
        th.join(timeout=30)
    return 0


# ---- reading captures -------------------------------------------------------------------


def read_seq(path):
    """[(dir, t_ns, bytes)] of a .seq file."""
    out = []
    with open(path, "rb") as f:
        b = f.read()
    i = 0
    while i + 13 <= len(b):
        d, t, n = struct.unpack(">BQI", b[i:i + 13])
        out.append((d, t, b[i + 13:i + 13 + n]))
        i += 13 + n
    return out


def startup_len(stream):
    """Length of the untyped startup packets (SSLRequest/GSSENCRequest, then a
    StartupMessage or CancelRequest) at the start of a client stream."""
    i = 0
    while i + 8 <= len(stream):
        n, code = struct.unpack(">II", stream[i:i + 8])
        i += n
        if code not in (80877103, 80877104):  # not SSL/GSSENC: the last one
            return i
    return i


def ssl_answers(c2s):
    """How many SSL/GSSENC requests precede the startup packet (each gets a
    one-byte answer from the server)."""
    i, k = 0, 0
    while i + 8 <= len(c2s):
        n, code = struct.unpack(">II", c2s[i:i + 8])
        if code not in (80877103, 80877104):
            break
        i += n
        k += 1
    return k


def messages(stream, start=0):
    """[(offset, type, total)] of the typed messages from start; a truncated
    last message is left out."""
    out = []
    i = start
    while i + 5 <= len(stream):
        (n,) = struct.unpack(">I", stream[i + 1:i + 5])
        if n < 4 or i + 1 + n > len(stream):
            break
        out.append((i, stream[i], n + 1))
        i += 1 + n
    return out


def cut(stream, start, limit):
    """The stream up to the last whole message ending at or below limit."""
    end = start
    for off, _, total in messages(stream, start):
        if off + total > limit:
            break
        end = off + total
    return stream[:end]


def write_txt(base):
    """conn-k.txt: the interleaved message sequence of a capture."""
    try:
        seq = read_seq(base + ".seq")
    except OSError:
        return
    streams = [b"", b""]
    done = [0, 0]
    lines = []
    first = None
    for d, t, data in seq:
        first = t if first is None else first
        streams[d] += data
        s = streams[d]
        if d == 0 and done[0] == 0:
            n = startup_len(s)
            if n and n <= len(s):
                lines.append("%10.6f C startup-packets %d" % ((t - first) / 1e9, n))
                done[0] = n
        if d == 1 and done[1] == 0 and s[:1] in (b"N", b"S") and ssl_answers(streams[0]):
            lines.append("%10.6f S ssl-answer %s" % ((t - first) / 1e9, s[:1].decode()))
            done[1] = 1
        if d == 0 and done[0] == 0:
            continue
        for off, typ, total in messages(s, done[d]):
            lines.append("%10.6f %s %s %d" % ((t - first) / 1e9, "CS"[d], chr(typ), total))
            done[d] = off + total
    with open(base + ".txt", "w") as f:
        f.write("\n".join(lines) + "\n")


def conn_ids(d):
    ids = []
    for n in os.listdir(d):
        m = re.match(r"conn-(\d+)\.seq$", n)
        if m:
            ids.append(int(m.group(1)))
    return sorted(ids)


# ---- corpus files ----------------------------------------------------------------------


def save(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, name)
    with open(path, "wb") as f:
        f.write(data)


def short_hash(b):
    return hashlib.sha1(b).hexdigest()[:12]


def conversation(client_seq, server_seq, limit):
    """The engine's view: client reads of the client leg, server reads of the
    server leg (SSL negotiation left out), merged by time, as records."""
    c2s = b"".join(x[2] for x in client_seq if x[0] == 0)
    skip_c = sum(struct.unpack(">I", c2s[i:i + 4])[0] for i in ssl_offsets(c2s))
    up_c2s = b"".join(x[2] for x in server_seq if x[0] == 0)
    skip_s = ssl_answers(up_c2s)  # the server's one-byte answers
    reads = []
    for d, t, data in client_seq:
        if d == 0:
            reads.append((t, 0, data))
    for d, t, data in server_seq:
        if d == 1:
            reads.append((t, 1, data))
    reads.sort(key=lambda r: (r[0], r[1]))
    out = bytearray()
    for _, d, data in reads:
        if d == 0 and skip_c:
            k = min(skip_c, len(data))
            data, skip_c = data[k:], skip_c - k
        if d == 1 and skip_s:
            k = min(skip_s, len(data))
            data, skip_s = data[k:], skip_s - k
        while data:
            piece, data = data[:65535], data[65535:]
            rec = struct.pack(">BH", d, len(piece)) + piece
            if len(out) + len(rec) > limit:
                return bytes(out)
            out += rec
    return bytes(out)


def ssl_offsets(c2s):
    offs, i = [], 0
    while i + 8 <= len(c2s):
        n, code = struct.unpack(">II", c2s[i:i + 8])
        if code not in (80877103, 80877104):
            break
        offs.append(i)
        i += n
    return offs


def engine_script(c2s, s2c, c_start, s_start, seq, limit):
    """fuzz_engine's raw records (ctl, type, body length, body) for the
    messages of both directions in time order; bodies of 256 bytes or more
    are left out."""
    # Order the messages by the time of the read that completed them.
    events = []
    for d, stream, start in ((0, c2s, c_start), (1, s2c, s_start)):
        ends = []
        pos = 0
        for dd, t, data in seq:
            if dd == d:
                pos += len(data)
                ends.append((pos, t))
        j = 0
        for off, typ, total in messages(stream, start):
            while j < len(ends) and ends[j][0] < off + total:
                j += 1
            t = ends[j][1] if j < len(ends) else 0
            events.append((t, d, stream[off:off + total]))
    events.sort(key=lambda e: (e[0], e[1]))
    out = bytearray()
    for _, d, m in events:
        body = m[5:]
        if len(body) > 255:
            continue
        rec = bytes([d & 1, m[0], len(body)]) + body  # (ctl >> 1) % 11 == 0: raw
        if len(out) + len(rec) > limit:
            break
        out += rec
    return bytes(out)


def cstr(b, i):
    j = b.index(b"\0", i)
    return b[i:j], j + 1


def sql_texts(c2s, start):
    out = []
    for off, typ, total in messages(c2s, start):
        body = c2s[off + 5:off + total]
        try:
            if typ == ord("Q"):
                out.append(cstr(body, 0)[0])
            elif typ == ord("P"):
                _, i = cstr(body, 0)
                out.append(cstr(body, i)[0])
        except ValueError:
            pass
    return out


COPY_RE = re.compile(rb"^\s*copy\s+(.*?)\s+(from\s+stdin|to\s+stdout)(.*)$", re.I | re.S)


def copy_config(sql):
    """fuzz_copy's option bytes for a COPY statement, or None when its
    options or column count do not fit fuzz_copy's configurations."""
    m = COPY_RE.match(sql.strip().rstrip(b";"))
    if not m:
        return None
    target, opts = m.group(1), m.group(3).lower()
    cols = re.search(rb"\((.*)\)", target)
    if not cols:
        return None
    ncols = len(cols.group(1).split(b","))
    if not 1 <= ncols <= 4:
        return None
    fmt = 1 if b"csv" in opts else 2 if b"binary" in opts else 0
    header = 1 if b"header" in opts else 0
    delim = 0
    dm = re.search(rb"delimiter\s+'(.)'", opts)
    if dm:
        delim = {b"|": 1, b";": 3}.get(dm.group(1))
        if delim is None:
            return None
    if re.search(rb"\bnull\b|\bquote\b|\bescape\b|\bforce", opts):
        return None
    # byte 0: format, columns - 1, every column transformed; byte 1: header,
    # delimiter; byte 2: seed of the payload cuts
    return bytes([fmt | ((ncols - 1) << 2) | 0xF0, header | (delim << 1), 0x5A])


def copy_data(msgs, starts):
    """The CopyData bytes of each COPY in a message list: from a message for
    which starts() is true to the next CopyDone/CopyFail."""
    out, data, active = [], b"", False
    for typ, body in msgs:
        if starts(typ, body):
            active, data = True, b""
        elif typ == ord("d") and active:
            data += body
        elif typ in (ord("c"), ord("f")) and active:
            out.append(data)
            active = False
    return out


def copy_streams(c2s, s2c, c_start, s_start):
    """[(sql, data)] of each COPY: the client's data for COPY FROM STDIN, the
    server's for COPY TO STDOUT (paired with those statements in order)."""
    cm = [(c2s[o], c2s[o + 5:o + t]) for o, _, t in messages(c2s, c_start)]
    sm = [(s2c[o], s2c[o + 5:o + t]) for o, _, t in messages(s2c, s_start)]
    copies = [s for s in sql_texts(c2s, c_start) if s.lstrip()[:4].lower() == b"copy"]
    ins = [s for s in copies if b"from stdin" in s.lower()]
    outs = [s for s in copies if b"to stdout" in s.lower()]
    is_copy_in = (lambda t, b: t == ord("Q") and b.lstrip()[:4].lower() == b"copy"
                  and b"from stdin" in b.lower())
    in_data = copy_data(cm, is_copy_in)
    out_data = copy_data(sm, lambda t, b: t == ord("H"))
    return list(zip(ins, in_data)) + list(zip(outs, out_data))


def corpus(args):
    limit = args.max_bytes
    up = args.upstream
    for k in conn_ids(args.client):
        base = os.path.join(args.client, "conn-%d" % k)
        cseq = read_seq(base + ".seq")
        if up:
            useq = read_seq(os.path.join(up, "conn-%d.seq" % k))
        else:
            useq = cseq
        c2s = b"".join(x[2] for x in cseq if x[0] == 0)
        s2c = b"".join(x[2] for x in useq if x[0] == 1)
        up_c2s = b"".join(x[2] for x in useq if x[0] == 0)
        c_start = startup_len(c2s)
        if c_start == 0 or c_start > len(c2s):
            continue  # not a session (e.g. nothing sent)
        s_start = ssl_answers(up_c2s)
        name = "%s-%d" % (args.name, k)
        save(args.out, "fuzz_protocol", name, bytes([0x3F]) + cut(c2s, c_start, limit))
        if len(s2c) > s_start:
            for mode, tag in ((0, "pass"), (1, "engine")):
                save(args.out, "fuzz_server", "%s-%s" % (name, tag),
                     bytes([0x3F, mode]) + cut(s2c, s_start, s_start + limit)[s_start:])
        if not args.no_conversation:
            conv = conversation(cseq, useq, limit)
            if conv:
                save(args.out, "fuzz_conversation", name, conv)
            # fuzz_engine: what the engine sees after the startup, from both legs
            merged = [(d, t, data) for d, t, data in cseq if d == 0] + \
                     [(d, t, data) for d, t, data in useq if d == 1]
            merged.sort(key=lambda r: r[1])
            script = engine_script(c2s, s2c, c_start, s_start, merged, min(limit, 8192))
            if script:
                save(args.out, "fuzz_engine", name, script)
        for sql in sql_texts(c2s, c_start):
            if 0 < len(sql) <= 4096:
                save(args.out, "fuzz_rewrite", "cap-" + short_hash(sql), sql)
        for i, (sql, data) in enumerate(copy_streams(c2s, s2c, c_start, s_start)):
            cfg = copy_config(sql)
            if cfg is None or not data:
                continue
            data = copy_prefix(data, 4096 - 3, cfg[0] & 3)
            save(args.out, "fuzz_copy", "cap-" + short_hash(cfg + data), cfg + data)
    return 0


def copy_prefix(data, limit, fmt):
    """At most limit bytes of COPY data, cut after a whole row (text, CSV)."""
    if len(data) <= limit:
        return data
    if fmt == 2:
        return data[:limit]
    j = data.rfind(b"\n", 0, limit)
    return data[:j + 1] if j >= 0 else data[:limit]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tee")
    t.add_argument("--listen", required=True)
    t.add_argument("--target", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--conns", type=int, default=0)
    t.add_argument("--ready-file")
    c = sub.add_parser("corpus")
    c.add_argument("--client", required=True)
    c.add_argument("--upstream")
    c.add_argument("--out", required=True)
    c.add_argument("--name", required=True)
    c.add_argument("--max-bytes", type=int, default=32768)
    c.add_argument("--no-conversation", action="store_true",
                   help="no fuzz_conversation/fuzz_engine seeds (a direct capture: the "
                   "engine would see plaintext results and no catalog answer)")
    a = ap.parse_args()
    return tee(a) if a.cmd == "tee" else corpus(a)


if __name__ == "__main__":
    sys.exit(main())
