#!/usr/bin/python3
"""psycopg 3 client suite for the Phantom proxy.

Usage: psycopg_suite.py --proxy DSN --direct DSN

Every check talks to PostgreSQL through the proxy (--proxy) and, where a
reference is needed, directly (--direct), and compares the two or compares
with known values. Prints one "ok - ..." line per passing check and one
"FAIL - ..." line per failing one, then "N passed, N failed"; the exit status
is non-zero if anything failed.
"""

import argparse
import datetime as dt
import faulthandler
import hashlib
import logging
import random
import select
import signal
import sys
import threading
import time
import traceback
from decimal import Decimal

import psycopg
from psycopg import errors
from psycopg.types.json import Jsonb

PASSED = 0
FAILED = 0

# psycopg logs "error ignored terminating <Pipeline>" warnings when a pipeline
# is left by an exception, which the pipeline check does on purpose.
logging.getLogger("psycopg").addHandler(logging.NullHandler())


class CheckFailed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def check_eq(expected, actual, what):
    if expected != actual:
        e, a = repr(expected), repr(actual)
        if len(e) > 300:
            e = e[:300] + "..."
        if len(a) > 300:
            a = a[:300] + "..."
        raise CheckFailed(f"{what}: expected {e}, got {a}")


def run(name, fn):
    """Run one check group; fn() returns nothing or a list of sub-check names."""
    global PASSED, FAILED
    t0 = time.monotonic()
    try:
        subs = fn()
    except CheckFailed as e:
        FAILED += 1
        print(f"FAIL - {name}: {e}", flush=True)
        return
    except Exception as e:  # noqa: BLE001 - any error is a failure of the check
        FAILED += 1
        print(f"FAIL - {name}: unexpected {type(e).__name__}: {e}", flush=True)
        traceback.print_exc(file=sys.stdout)
        return
    PASSED += 1
    extra = f" ({'; '.join(subs)})" if subs else ""
    print(f"ok - {name}{extra} [{time.monotonic() - t0:.2f}s]", flush=True)


def connect(dsn, **kw):
    return psycopg.connect(dsn, **kw)


# --------------------------------------------------------------------------
# values used by the type checks
BYTES_ALL = bytes(range(256))
UNICODE_TEXT = "héllo wörld — 日本語 🐘 tab\there\nnewline \\backslash 'quote\" ∑ \u0001"
TS = dt.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))
JSONB = {"a": [1, 2.5, None, "ü"], "b": {"c": True, "d": "日本"}, "e": -12345678901234}

TYPE_CASES = [
    # (label, sql type, python value, expected python value)
    ("int", "int4", 2147483647, 2147483647),
    ("int negative", "int4", -2147483648, -2147483648),
    ("bigint", "int8", 9223372036854775807, 9223372036854775807),
    ("bigint negative", "int8", -9223372036854775808, -9223372036854775808),
    ("numeric", "numeric", Decimal("-12345678901234567890.000123456789"),
     Decimal("-12345678901234567890.000123456789")),
    ("numeric small", "numeric", Decimal("0.000000001"), Decimal("0.000000001")),
    ("text unicode", "text", UNICODE_TEXT, UNICODE_TEXT),
    ("bytea all bytes", "bytea", BYTES_ALL, BYTES_ALL),
    ("bytea empty", "bytea", b"", b""),
    ("timestamptz", "timestamptz", TS, TS),
    ("jsonb", "jsonb", Jsonb(JSONB), JSONB),
    ("int array with null", "int4[]", [1, None, -3, 2147483647], [1, None, -3, 2147483647]),
    ("2d bigint array", "int8[]", [[1, 2], [3, 4]], [[1, 2], [3, 4]]),
    ("text array unicode", "text[]", ["a", "ü,{}\"", "日本", None, ""], ["a", "ü,{}\"", "日本", None, ""]),
    ("null int", "int4", None, None),
    ("null text", "text", None, None),
    ("null bytea", "bytea", None, None),
]


def value_norm(v):
    """bytea results may come back as memoryview in some configurations."""
    if isinstance(v, memoryview):
        return bytes(v)
    if isinstance(v, list):
        return [value_norm(x) for x in v]
    return v


def types_roundtrip(proxy, direct, binary):
    """One parameter in, one value out, in text or binary format both ways."""
    placeholder = "%b" if binary else "%t"
    fmt = 1 if binary else 0
    subs = []
    with connect(proxy) as pc, connect(direct) as dc:
        pcur = pc.cursor(binary=binary)
        dcur = dc.cursor(binary=binary)
        for label, typ, value, expected in TYPE_CASES:
            q = f"SELECT {placeholder}::{typ} AS v, pg_typeof({placeholder}::{typ})::text AS t"
            pcur.execute(q, [value, value])
            prow = pcur.fetchone()
            check_eq(fmt, pcur.pgresult.fformat(0), f"{label}: result format code via proxy")
            dcur.execute(q, [value, value])
            drow = dcur.fetchone()
            pv, dv = value_norm(prow[0]), value_norm(drow[0])
            check_eq(expected, pv, f"{label}: value via proxy")
            check_eq(dv, pv, f"{label}: proxy vs direct")
            check_eq(drow[1], prow[1], f"{label}: pg_typeof proxy vs direct")
            subs.append(label)
        # a multi-column row mixing everything, NULL in the middle
        cols = ", ".join(f"{placeholder}::{typ}" for _, typ, _, _ in TYPE_CASES)
        params = [v for _, _, v, _ in TYPE_CASES]
        pcur.execute(f"SELECT {cols}", params)
        dcur.execute(f"SELECT {cols}", params)
        prow = [value_norm(x) for x in pcur.fetchone()]
        drow = [value_norm(x) for x in dcur.fetchone()]
        check_eq([e for _, _, _, e in TYPE_CASES], prow, "wide row via proxy")
        check_eq(drow, prow, "wide row proxy vs direct")
        # description (RowDescription) identical
        check_eq([(d.name, d.type_code) for d in dcur.description],
                 [(d.name, d.type_code) for d in pcur.description], "RowDescription")
    return [f"{len(TYPE_CASES)} types + wide row"]


def types_mixed_formats(proxy, direct):
    """Binary params with text results and text params with binary results."""
    with connect(proxy) as pc:
        cur = pc.cursor(binary=False)
        cur.execute("SELECT %b::bytea, %b::int8, %b::text", [BYTES_ALL, 42, UNICODE_TEXT])
        check_eq((BYTES_ALL, 42, UNICODE_TEXT), tuple(value_norm(x) for x in cur.fetchone()),
                 "binary params / text results")
        bcur = pc.cursor(binary=True)
        bcur.execute("SELECT %t::bytea, %t::numeric, %t::jsonb", [BYTES_ALL, Decimal("1.5"), Jsonb(JSONB)])
        check_eq((BYTES_ALL, Decimal("1.5"), JSONB), tuple(value_norm(x) for x in bcur.fetchone()),
                 "text params / binary results")
        # the literal representation the server sees must be the same
        cur.execute("SELECT encode(%b::bytea, 'hex'), md5(%b::bytea)", [BYTES_ALL, BYTES_ALL])
        hexval, md5 = cur.fetchone()
        check_eq(BYTES_ALL.hex(), hexval, "server-side hex of bytea")
        check_eq(hashlib.md5(BYTES_ALL).hexdigest(), md5, "server-side md5 of bytea")


def auth_identity(proxy, direct):
    with connect(proxy) as pc:
        row = pc.execute("SELECT current_user, current_database(), inet_server_port()").fetchone()
    with connect(direct) as dc:
        drow = dc.execute("SELECT current_user, current_database(), inet_server_port()").fetchone()
    check_eq(drow, row, "identity proxy vs direct")
    check_eq("phantom_scram", row[0], "current_user")


def wrong_password(proxy, direct):
    bad = proxy + " password=definitely_wrong"
    try:
        connect(bad).close()
    except psycopg.OperationalError as e:
        msg = str(e)
        check("password authentication failed" in msg, f"unexpected message: {msg}")
        return
    raise CheckFailed("connection with a wrong password succeeded")


def prepared_statements(proxy, direct):
    subs = []
    with connect(proxy, autocommit=True) as pc:
        pc.prepared_max = 100
        q = "SELECT %s::int * 2 AS doubled, %s::text AS label, %s::bytea AS b"
        cur = pc.cursor()
        for i in range(20):
            cur.execute(q, (i, f"lbl{i}é", bytes([i % 256]) * 3), prepare=True)
            check_eq((i * 2, f"lbl{i}é", bytes([i % 256]) * 3),
                     tuple(value_norm(x) for x in cur.fetchone()), f"prepared exec #{i}")
        subs.append("explicit prepare=True x20")
        # binary + prepared
        bcur = pc.cursor(binary=True)
        for i in range(10):
            bcur.execute("SELECT %b::int8 + 1, %b::numeric * 2", (i, Decimal(i) / 4), prepare=True)
            check_eq((i + 1, Decimal(i) / 2), bcur.fetchone(), f"binary prepared exec #{i}")
        subs.append("binary prepared x10")
        # implicit preparation after prepare_threshold (default 5) executions
        for i in range(8):
            cur.execute("SELECT %s::int + 1000 AS auto", (i,))
            check_eq(i + 1000, cur.fetchone()[0], f"auto-prepared exec #{i}")
        # a query never prepared
        for i in range(3):
            cur.execute("SELECT %s::int + 7 AS notprep", (i,), prepare=False)
            check_eq(i + 7, cur.fetchone()[0], "unprepared")
        rows = pc.execute("SELECT name, statement FROM pg_prepared_statements", prepare=False).fetchall()
        stmts = {s: n for n, s in rows}
        want = [
            "SELECT $1::int * 2 AS doubled, $2::text AS label, $3::bytea AS b",
            "SELECT $1::int8 + 1, $2::numeric * 2",
            "SELECT $1::int + 1000 AS auto",
        ]
        for w in want:
            check(w in stmts, f"{w!r} not in pg_prepared_statements: {rows}")
        check("SELECT $1::int + 7 AS notprep" not in stmts, "prepare=False statement was prepared")
        for w in want:
            check(stmts[w].startswith("_pg3_"), f"unexpected statement name {stmts[w]!r}")
        subs.append(f"pg_prepared_statements shows {len(want)}")

    # eviction: psycopg DEALLOCATEs beyond prepared_max
    with connect(proxy, autocommit=True) as pc:
        pc.prepared_max = 2
        for k in range(4):
            for _ in range(2):
                pc.execute(f"SELECT %s::int + {k} AS evict{k}", (k,), prepare=True)
        names = [r[0] for r in pc.execute(
            "SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%%evict%%' ORDER BY 1",
            prepare=False).fetchall()]
        check_eq(["SELECT $1::int + 2 AS evict2", "SELECT $1::int + 3 AS evict3"], names,
                 "statements after DEALLOCATE eviction")
        # the evicted ones can be prepared again under new names
        check_eq(100, pc.execute("SELECT %s::int + 0 AS evict0", (100,), prepare=True).fetchone()[0],
                 "re-prepare evicted")
        subs.append("DEALLOCATE eviction")

    # prepare_threshold: 0 prepares on the first execution, None never
    with connect(proxy, autocommit=True) as pc:
        pc.prepare_threshold = 0
        check_eq(42, pc.execute("SELECT %s::int AS thr0", (42,)).fetchone()[0], "threshold 0 result")
        pc.prepare_threshold = None
        for i in range(8):
            check_eq(i, pc.execute("SELECT %s::int AS thrnone", (i,)).fetchone()[0], "threshold None result")
        stmts = [r[0] for r in pc.execute(
            "SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%%thr%%' ORDER BY 1").fetchall()]
        check_eq(["SELECT $1::int AS thr0"], stmts, "prepare_threshold 0 / None")
        subs.append("prepare_threshold 0 and None")
    return subs


def executemany(proxy, direct):
    with connect(proxy, autocommit=True) as pc, connect(direct, autocommit=True) as dc:
        dc.execute("DROP TABLE IF EXISTS em; CREATE TABLE em (id int PRIMARY KEY, t text, b bytea)")
        rows = [(i, f"row {i} ✓", bytes([i % 256, 255 - i % 256])) for i in range(500)]
        cur = pc.cursor()
        cur.executemany("INSERT INTO em VALUES (%s, %s, %s)", rows)
        check_eq(500, cur.rowcount, "executemany rowcount")
        got = [(r[0], r[1], bytes(r[2])) for r in dc.execute("SELECT * FROM em ORDER BY id").fetchall()]
        check_eq(rows, got, "rows inserted via proxy read directly")
        # returning=True
        cur.executemany("UPDATE em SET t = t || '!' WHERE id = %s RETURNING id, t",
                        [(i,) for i in range(0, 500, 50)], returning=True)
        results = []
        while True:
            results.append(cur.fetchone())
            if not cur.nextset():
                break
        check_eq([(i, f"row {i} ✓!") for i in range(0, 500, 50)], results, "executemany returning")
        # a failing executemany: duplicate key, nothing after it in the same (autocommit) batch
        try:
            cur.executemany("INSERT INTO em VALUES (%s, %s, %s)", [(1000, "x", b""), (1, "dup", b"")])
            raise CheckFailed("duplicate key not reported")
        except errors.UniqueViolation as e:
            check_eq("23505", e.sqlstate, "executemany error sqlstate")
        check_eq(1, pc.execute("SELECT 1").fetchone()[0], "connection usable after failed executemany")
        dc.execute("DROP TABLE em")


def pipeline_scenario(dsn, table):
    """Returns a log of what happened; run identically via proxy and direct."""
    log = []
    with connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v text)")
        try:
            with conn.pipeline() as p:
                conn.execute(f"INSERT INTO {table} VALUES (%s, %s)", (1, "one"))
                conn.execute(f"INSERT INTO {table} VALUES (%s, %s)", (2, "two"))
                c = conn.execute(f"SELECT count(*) FROM {table}")
                c2 = conn.cursor(binary=True)
                c2.execute(f"SELECT v FROM {table} WHERE id = %s", (2,))
                p.sync()
                log.append(("count", c.fetchone()[0]))
                log.append(("v2", c2.fetchone()[0]))
                conn.execute(f"INSERT INTO {table} VALUES (%s, %s)", (3, "three"))
                conn.execute(f"INSERT INTO {table} VALUES (%s, %s)", (1, "dup"))  # fails
                conn.execute(f"INSERT INTO {table} VALUES (%s, %s)", (4, "four"))  # skipped
                conn.execute("SELECT 1")
                p.sync()
                log.append(("no error raised",))
        except errors.UniqueViolation as e:
            log.append(("error", type(e).__name__, e.sqlstate, e.diag.constraint_name))
        except psycopg.errors.PipelineAborted as e:  # should not be the first error seen
            log.append(("aborted", str(e)))
        log.append(("status after", conn.info.transaction_status.name))
        log.append(("rows", conn.execute(f"SELECT id, v FROM {table} ORDER BY id").fetchall()))

        # recovery: a new pipeline works, and a statement following a failed one
        # (after the sync) is executed
        with conn.pipeline() as p:
            conn.execute(f"INSERT INTO {table} VALUES (%s, %s)", (5, "five"))
            c = conn.execute(f"SELECT max(id) FROM {table}")
        log.append(("max after recovery", c.fetchone()[0]))

        # error in the middle of a pipeline. psycopg may raise the error at any
        # later execute() (it reads results opportunistically), so a statement
        # after the failing one counts as "not executed" whether it was sent
        # and aborted by the server or never sent at all.
        curs = {}
        try:
            with conn.pipeline() as p:
                curs["a"] = conn.execute("SELECT 10")
                curs["b"] = conn.execute("SELECT 1/0")
                curs["c"] = conn.execute("SELECT 30")
                p.sync()
        except errors.DivisionByZero as e:
            log.append(("div error", e.sqlstate))
        log.append(("a", curs["a"].fetchone()))
        try:
            log.append(("c", curs["c"].fetchone()))
        except (KeyError, psycopg.Error):
            log.append(("c", "not executed"))

        # pipeline inside an explicit transaction: error aborts the transaction
        conn.autocommit = False
        try:
            with conn.pipeline():
                conn.execute(f"INSERT INTO {table} VALUES (%s, %s)", (6, "six"))
                conn.execute(f"INSERT INTO {table} VALUES (%s, %s)", (5, "dup"))
        except errors.UniqueViolation as e:
            log.append(("tx error", e.sqlstate))
        log.append(("tx status", conn.info.transaction_status.name))
        conn.rollback()
        log.append(("rows final", conn.execute(f"SELECT id FROM {table} ORDER BY id").fetchall()))
        conn.commit()
        conn.autocommit = True
        conn.execute(f"DROP TABLE {table}")
    return log


def pipeline(proxy, direct):
    # same table name (run one after the other) so constraint names compare equal
    dlog = pipeline_scenario(direct, "pl_t")
    plog = pipeline_scenario(proxy, "pl_t")
    check_eq(dlog, plog, "pipeline behaviour proxy vs direct")
    expect = [
        ("count", 2),
        ("v2", "two"),
        ("error", "UniqueViolation", "23505", "pl_t_pkey"),
        ("status after", "IDLE"),
        ("rows", [(1, "one"), (2, "two")]),
        ("max after recovery", 5),
        ("div error", "22012"),
        ("a", (10,)),
        ("c", "not executed"),
        ("tx error", "23505"),
        ("tx status", "INERROR"),
        ("rows final", [(1,), (2,), (5,)]),
    ]
    check_eq(expect, plog, "pipeline behaviour via proxy")
    return [f"{len(plog)} observations equal to direct"]


COPY_ROWS = [
    (i, f"line {i}: ü 日本 \t tab \n nl \\ bs" if i % 7 else None, bytes([(i * 7 + k) % 256 for k in range(i % 300)]),
     Decimal(i) / 8, dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=i * 3601))
    for i in range(3000)
]
COPY_TYPES = ["int4", "text", "bytea", "numeric", "timestamptz"]


def copy_tests(proxy, direct):
    subs = []
    with connect(proxy, autocommit=True) as pc, connect(direct, autocommit=True) as dc:
        dc.execute("DROP TABLE IF EXISTS cp; CREATE TABLE cp (id int, t text, b bytea, n numeric, ts timestamptz)")
        for fmt in ("text", "binary"):
            dc.execute("TRUNCATE cp")
            opt = " (FORMAT BINARY)" if fmt == "binary" else ""
            with pc.cursor().copy(f"COPY cp FROM STDIN{opt}") as cp:
                if fmt == "binary":
                    cp.set_types(COPY_TYPES)
                for r in COPY_ROWS:
                    cp.write_row(r)
            got = [tuple(value_norm(x) for x in r) for r in dc.execute("SELECT * FROM cp ORDER BY id").fetchall()]
            check_eq(len(COPY_ROWS), len(got), f"COPY FROM ({fmt}) row count")
            check_eq(COPY_ROWS, got, f"COPY FROM ({fmt}) data read directly")
            subs.append(f"copy in {fmt}")

        # COPY TO: raw bytes identical to direct, and parsed rows correct
        for fmt in ("text", "binary", "csv"):
            opt = {"text": "", "binary": " (FORMAT BINARY)", "csv": " (FORMAT CSV, HEADER)"}[fmt]
            q = f"COPY (SELECT * FROM cp ORDER BY id) TO STDOUT{opt}"
            raw = {}
            for name, conn in (("proxy", pc), ("direct", dc)):
                with conn.cursor().copy(q) as cp:
                    raw[name] = b"".join(bytes(block) for block in cp)
            check(len(raw["direct"]) > 100000, "copy out too small to be meaningful")
            check(raw["proxy"] == raw["direct"],
                  f"COPY TO ({fmt}) bytes differ: proxy {len(raw['proxy'])} B, direct {len(raw['direct'])} B")
            subs.append(f"copy out {fmt} {len(raw['proxy'])} B")
        with pc.cursor().copy("COPY (SELECT * FROM cp ORDER BY id) TO STDOUT (FORMAT BINARY)") as cp:
            cp.set_types(COPY_TYPES)
            rows = [tuple(value_norm(x) for x in r) for r in cp.rows()]
        check_eq(COPY_ROWS, rows, "COPY TO binary rows parsed")
        with pc.cursor().copy("COPY (SELECT id, t FROM cp ORDER BY id) TO STDOUT") as cp:
            rows = [(int(r[0]), r[1]) for r in cp.rows()]
        check_eq([(r[0], r[1]) for r in COPY_ROWS], rows, "COPY TO text rows parsed")

        # raw block writes, split in odd places
        dc.execute("TRUNCATE cp")
        payload = "".join(f"{i}\tv{i}é\t\\\\x{i:04x}\t{i}.5\t2021-06-01 00:00:00+00\n" for i in range(2000)).encode()
        with pc.cursor().copy("COPY cp FROM STDIN") as cp:
            for off in range(0, len(payload), 977):
                cp.write(payload[off:off + 977])
        check_eq((2000, sum(range(2000)), "v1999é"),
                 dc.execute("SELECT count(*), sum(id), max(t) FILTER (WHERE id = 1999) FROM cp").fetchone(),
                 "COPY FROM raw chunks")

        # server-side error during COPY FROM: bad data
        try:
            with pc.cursor().copy("COPY cp (id) FROM STDIN") as cp:
                cp.write(b"1\n2\nnot_a_number\n4\n")
            raise CheckFailed("bad COPY data accepted")
        except errors.InvalidTextRepresentation as e:
            check_eq("22P02", e.sqlstate, "COPY bad data sqlstate")
        check_eq(1, pc.execute("SELECT 1").fetchone()[0], "usable after COPY error")
        # client-side abort (CopyFail); psycopg 3.1 reports the server's 57014
        try:
            with pc.cursor().copy("COPY cp (id) FROM STDIN") as cp:
                cp.write_row((1,))
                raise ZeroDivisionError("client gave up")
        except ZeroDivisionError:
            pass
        except errors.QueryCanceled as e:
            check("client gave up" in str(e), f"CopyFail message not echoed by server: {e}")
        check_eq(1, pc.execute("SELECT 1").fetchone()[0], "usable after CopyFail")
        check_eq(2000, dc.execute("SELECT count(*) FROM cp").fetchone()[0], "failed COPYs inserted nothing")
        subs.append("COPY errors and CopyFail recover")
        dc.execute("DROP TABLE cp")
    return subs


def wait_notifies(conn, count, timeout):
    """Notifications arriving on an idle connection, without sending anything.

    Reads the socket with select() and libpq directly: psycopg 3.1's
    notifies() generator has no timeout and holds the connection lock while
    it waits, so a missing notification would hang the suite.
    """
    got = []
    deadline = time.monotonic() + timeout
    while True:
        while (n := conn.pgconn.notifies()) is not None:
            got.append((n.relname.decode(), n.extra.decode(), n.be_pid))
        remaining = deadline - time.monotonic()
        if len(got) >= count or remaining <= 0:
            return got
        if select.select([conn.fileno()], [], [], remaining)[0]:
            conn.pgconn.consume_input()


def listen_notify(proxy, direct):
    subs = []
    with connect(proxy, autocommit=True) as lc, connect(direct, autocommit=True) as dn, \
            connect(proxy, autocommit=True) as pn:
        lc.execute("LISTEN phantom_chan")
        lc.execute('LISTEN "Phantom Ünïcode"')
        backend_direct = dn.info.backend_pid
        backend_proxied = pn.info.backend_pid
        long_payload = "from proxy 🐘 " + "x" * 5000
        dn.execute("NOTIFY phantom_chan, 'from direct ✓'")
        pn.execute("SELECT pg_notify('Phantom Ünïcode', %s)", [long_payload])
        got = wait_notifies(lc, 2, 10)
        check_eq([("phantom_chan", "from direct ✓", backend_direct),
                  ("Phantom Ünïcode", long_payload, backend_proxied)], got,
                 "notifications to an idle listener within 10 s, in commit order")
        # a burst, in order
        for i in range(50):
            dn.execute("SELECT pg_notify('phantom_chan', %s)", [f"burst {i}"])
        got = wait_notifies(lc, 50, 10)
        check_eq([f"burst {i}" for i in range(50)], [g[1] for g in got], "burst of 50 notifications")
        subs.append("idle listener x52")

        # notify handler path: notification delivered while running a query
        handled = []
        lc.add_notify_handler(handled.append)
        dn.execute("NOTIFY phantom_chan, 'handler payload'")
        deadline = time.monotonic() + 10
        while not handled and time.monotonic() < deadline:
            lc.execute("SELECT pg_sleep(0.05)")
        check_eq(["handler payload"], [n.payload for n in handled], "notify handler")
        subs.append("notify handler")
        lc.execute("UNLISTEN *")
    return subs


def notices(proxy, direct):
    def collect(dsn):
        got = []
        with connect(dsn, autocommit=True) as c:
            c.add_notice_handler(lambda d: got.append(
                (d.severity, d.severity_nonlocalized, d.sqlstate, d.message_primary, d.message_detail, d.message_hint)))
            c.execute("SET client_min_messages = notice")
            c.execute("""DO $$ BEGIN
                RAISE NOTICE 'hello % ü', 42 USING DETAIL = 'some detail', HINT = 'a hint';
                RAISE WARNING 'careful';
                RAISE NOTICE USING MESSAGE = repeat('n', 3000), ERRCODE = '01000';
            END $$""")
            c.execute("DROP TABLE IF EXISTS surely_not_here_xyz")
        return got

    pgot, dgot = collect(proxy), collect(direct)
    check_eq(4, len(pgot), "number of notices via proxy")
    check_eq(("NOTICE", "NOTICE", "00000", "hello 42 ü", "some detail", "a hint"), pgot[0], "first notice")
    check_eq(("WARNING", "01000", "careful"), (pgot[1][0], pgot[1][2], pgot[1][3]), "warning")
    check_eq("n" * 3000, pgot[2][3], "long notice")
    check_eq(dgot, pgot, "notices proxy vs direct")


def transactions(proxy, direct):
    with connect(proxy) as pc, connect(direct, autocommit=True) as dc:
        dc.execute("DROP TABLE IF EXISTS tx; CREATE TABLE tx (id int PRIMARY KEY)")
        pc.execute("INSERT INTO tx VALUES (1)")
        check_eq("INTRANS", pc.info.transaction_status.name, "in transaction")
        check_eq(0, dc.execute("SELECT count(*) FROM tx").fetchone()[0], "uncommitted row invisible")
        pc.rollback()
        check_eq("IDLE", pc.info.transaction_status.name, "idle after rollback")
        check_eq(0, dc.execute("SELECT count(*) FROM tx").fetchone()[0], "row gone after rollback")
        pc.execute("INSERT INTO tx VALUES (2)")
        pc.commit()
        check_eq([(2,)], dc.execute("SELECT id FROM tx").fetchall(), "committed row visible")
        # error aborts the transaction; later statements fail with 25P02
        pc.execute("INSERT INTO tx VALUES (3)")
        try:
            pc.execute("INSERT INTO tx VALUES (2)")
            raise CheckFailed("duplicate accepted")
        except errors.UniqueViolation:
            pass
        check_eq("INERROR", pc.info.transaction_status.name, "failed transaction status")
        try:
            pc.execute("SELECT 1")
            raise CheckFailed("statement in failed transaction accepted")
        except errors.InFailedSqlTransaction as e:
            check_eq("25P02", e.sqlstate, "in failed transaction sqlstate")
        pc.rollback()
        check_eq([(2,)], dc.execute("SELECT id FROM tx").fetchall(), "after failed transaction")
        # savepoints via nested transaction blocks
        with pc.transaction():
            pc.execute("INSERT INTO tx VALUES (10)")
            try:
                with pc.transaction():
                    pc.execute("INSERT INTO tx VALUES (11)")
                    pc.execute("INSERT INTO tx VALUES (10)")  # fails -> savepoint rolled back
            except errors.UniqueViolation:
                pass
            pc.execute("INSERT INTO tx VALUES (12)")
        check_eq([(2,), (10,), (12,)], dc.execute("SELECT id FROM tx ORDER BY id").fetchall(), "savepoint rollback")
        # an exception leaving a transaction block rolls it back
        try:
            with pc.transaction():
                pc.execute("INSERT INTO tx VALUES (20)")
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        check_eq(3, dc.execute("SELECT count(*) FROM tx").fetchone()[0], "transaction() block rolled back")
        pc.commit()
        dc.execute("DROP TABLE tx")


def large_result(proxy, direct):
    q = ("SELECT g, md5(g::text) AS h, g::numeric / 7 AS n, repeat('é', g % 50) AS r, "
         "CASE WHEN g % 10 = 0 THEN NULL ELSE g * 1000000000::int8 END AS big "
         "FROM generate_series(1, 100000) g")
    subs = []
    with connect(proxy) as pc, connect(direct) as dc:
        for binary in (False, True):
            prows = pc.cursor(binary=binary).execute(q).fetchall()
            drows = dc.cursor(binary=binary).execute(q).fetchall()
            check_eq(100000, len(prows), f"row count binary={binary}")
            check(prows == drows, f"100k rows differ between proxy and direct (binary={binary})")
            check_eq((100000, hashlib.md5(b"100000").hexdigest(), None), (prows[-1][0], prows[-1][1], prows[-1][4]),
                     "last row")
            subs.append("binary" if binary else "text")
        # server-side cursor (DECLARE/FETCH) in batches
        with pc.transaction():
            scur = pc.cursor(name="big_cursor")
            scur.itersize = 7777
            scur.execute(q)
            n, s = 0, 0
            for row in scur:
                n += 1
                s += row[0]
            scur.close()
        check_eq((100000, 100000 * 100001 // 2), (n, s), "server-side cursor iteration")
        subs.append("named cursor")
    return subs


def error_passthrough(proxy, direct):
    cases = [
        ("SELECT 1/0", errors.DivisionByZero, "22012"),
        ("SELECT * FROM no_such_table_phantom", errors.UndefinedTable, "42P01"),
        ("SELEC 1", errors.SyntaxError, "42601"),
        ("SELECT 'abc'::int", errors.InvalidTextRepresentation, "22P02"),
        ("SELECT no_such_column FROM pg_class", errors.UndefinedColumn, "42703"),
    ]
    subs = []
    for prepare in (False, True):
        with connect(proxy, autocommit=True) as pc, connect(direct, autocommit=True) as dc:
            for q, cls, state in cases:
                diags = []
                for conn in (pc, dc):
                    try:
                        # with params -> extended protocol; without -> simple query
                        if prepare:
                            conn.execute(q + " LIMIT %s", [1], prepare=True)
                        else:
                            conn.execute(q)
                        raise CheckFailed(f"{q!r} did not fail")
                    except cls as e:
                        diags.append((e.sqlstate, e.diag.severity, e.diag.message_primary, e.diag.statement_position,
                                      e.diag.message_hint, e.diag.source_function))
                check_eq(state, diags[0][0], f"{q!r} sqlstate via proxy")
                check_eq(diags[1], diags[0], f"{q!r} diagnostics proxy vs direct")
                check_eq(1, pc.execute("SELECT 1").fetchone()[0], "usable after error")
            subs.append("extended" if prepare else "simple")
    # an error in the middle of a multi-statement simple query
    with connect(proxy, autocommit=True) as pc:
        cur = pc.cursor()
        try:
            cur.execute("SELECT 1; SELECT 1/0; SELECT 3")
            raise CheckFailed("multi-statement with error succeeded")
        except errors.DivisionByZero as e:
            check_eq("22012", e.sqlstate, "multi-statement error")
        check_eq(5, pc.execute("SELECT 5").fetchone()[0], "usable after multi-statement error")
        cur.execute("SELECT 1 AS a; SELECT 'two' AS b, 2.5::float8 AS c")
        first = cur.fetchall()
        check(cur.nextset(), "second result set missing")
        second = cur.fetchall()
        check_eq(([(1,)], [("two", 2.5)]), (first, second), "multi-statement results")
        subs.append("multi-statement")
    return subs


def cancel_request(proxy, direct):
    """CancelRequest through the proxy, sent only once the query is running."""
    with connect(proxy, autocommit=True) as pc, connect(direct, autocommit=True) as dc:
        pid = pc.info.backend_pid
        check_eq(pc.execute("SELECT pg_backend_pid()").fetchone()[0], pid,
                 "BackendKeyData pid passed through unchanged")
        seen = {}

        def canceller():
            # Wait (on the direct connection) until the backend runs the
            # query: a cancel arriving earlier would be ignored by the server.
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                row = dc.execute("SELECT state, query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
                if row and row[0] == "active" and "pg_sleep" in row[1]:
                    seen["active"] = True
                    break
                time.sleep(0.02)
            pc.cancel()

        t = threading.Thread(target=canceller, daemon=True)
        t0 = time.monotonic()
        t.start()
        try:
            pc.execute("SELECT pg_sleep(30)")
            outcome = "completed"
        except errors.QueryCanceled as e:
            outcome = e.sqlstate
        elapsed = time.monotonic() - t0
        t.join(5)
        check(seen.get("active"), "query never showed up as active in pg_stat_activity")
        check_eq("57014", outcome, "pg_sleep cancelled through the proxy")
        check(elapsed < 20, f"cancel took {elapsed:.1f}s")
        check_eq(1, pc.execute("SELECT 1").fetchone()[0], "usable after cancel")
    return [f"cancelled after {elapsed:.2f}s"]


def large_values(proxy, direct):
    """Multi-megabyte parameters and results, text and binary, both ways."""
    rnd = random.Random(20240229)
    blob = rnd.randbytes(3 << 20)
    text = "".join(rnd.choice("aé日🐘\\'\" \t\n") for _ in range(1 << 20))
    subs = []
    with connect(proxy) as pc:
        for binary in (False, True):
            ph = "%b" if binary else "%t"
            cur = pc.cursor(binary=binary)
            cur.execute(f"SELECT md5(b), length(b), b, md5(t), length(t), t "
                        f"FROM (SELECT {ph}::bytea AS b, {ph}::text AS t) s", [blob, text])
            m, n, b, tm, tn, t = cur.fetchone()
            check_eq((hashlib.md5(blob).hexdigest(), len(blob)), (m, n), f"server saw the blob (binary={binary})")
            check(value_norm(b) == blob, f"blob echoed intact (binary={binary})")
            check_eq((hashlib.md5(text.encode()).hexdigest(), len(text)), (tm, tn),
                     f"server saw the text (binary={binary})")
            check(t == text, f"text echoed intact (binary={binary})")
            subs.append(f"{'binary' if binary else 'text'} {len(blob) >> 20} MiB bytea + {len(text.encode()) >> 10} KiB text")
    return subs


def connection_security(proxy, direct, expect_tls):
    """The client leg and the upstream leg are (or are not) TLS, as configured."""
    with connect(proxy) as pc:
        client_tls = bool(pc.pgconn.ssl_in_use)
        upstream = pc.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0]
    check_eq((expect_tls, expect_tls), (client_tls, upstream), "(client leg TLS, upstream leg TLS)")


def main():
    global FAILED
    # `timeout` sends SIGTERM: show where every thread was stuck.
    faulthandler.register(signal.SIGTERM, file=sys.stdout, all_threads=True, chain=True)
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", required=True, help="libpq DSN through the proxy")
    ap.add_argument("--direct", required=True, help="libpq DSN straight to PostgreSQL")
    ap.add_argument("--expect-tls", choices=("yes", "no"), required=True,
                    help="whether both legs through the proxy are expected to be TLS")
    ap.add_argument("--only", help="run only checks whose name contains this")
    args = ap.parse_args()
    p, d = args.proxy, args.direct

    tls = args.expect_tls == "yes"
    checks = [
        (f"connection security ({'TLS' if tls else 'plaintext'} both legs)",
         lambda: connection_security(p, d, tls)),
        ("SCRAM login and identity through proxy", lambda: auth_identity(p, d)),
        ("wrong password rejected through proxy", lambda: wrong_password(p, d)),
        ("types text params/text results", lambda: types_roundtrip(p, d, binary=False)),
        ("types binary params/binary results", lambda: types_roundtrip(p, d, binary=True)),
        ("types mixed formats", lambda: types_mixed_formats(p, d)),
        ("multi-megabyte values text and binary", lambda: large_values(p, d)),
        ("server-side prepared statements", lambda: prepared_statements(p, d)),
        ("executemany", lambda: executemany(p, d)),
        ("pipeline mode incl. error recovery matches direct", lambda: pipeline(p, d)),
        ("COPY in/out text and binary", lambda: copy_tests(p, d)),
        ("LISTEN/NOTIFY", lambda: listen_notify(p, d)),
        ("notices", lambda: notices(p, d)),
        ("transactions and rollback", lambda: transactions(p, d)),
        ("100k-row result identical to direct", lambda: large_result(p, d)),
        ("error SQLSTATE and diagnostics pass through", lambda: error_passthrough(p, d)),
        ("cancel request through proxy", lambda: cancel_request(p, d)),
    ]
    print(f"# psycopg {psycopg.__version__}, libpq {psycopg.pq.version()}, impl {psycopg.pq.__impl__}", flush=True)
    for name, fn in checks:
        if args.only and args.only not in name:
            continue
        run(name, fn)
    if PASSED + FAILED == 0:
        print(f"FAIL - no check matched --only {args.only!r}", flush=True)
        FAILED += 1
    print(f"{PASSED} passed, {FAILED} failed", flush=True)
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
