#!/usr/bin/python3
"""tests/clients/load.py — many concurrent clients through the encrypting proxy.

Usage (tests/integration/test_load.sh runs it):
  load.py --host H --proxy-port P --direct-port D --db DB --user U --password PW
          --proxy-pid PID [--conns 500] [--seconds 25] [--simple-share 0.2]
          [--seed N] [--report FILE]

Expects, in DB, the table load_items(id bigint PRIMARY KEY, owner int, email
text UNIQUE, note text, doc jsonb, amount bigint, due date, ver int) created
THROUGH the proxy, whose encrypt section protects email (deterministic), note
and doc (randomized), amount and due (ope); and load_twin(id, owner, email_h,
note_h, doc_h, amount_h, due, ver), an unprotected twin holding digests of the
protected values (never the plaintexts: those are leak canaries).

--conns clients connect through the proxy (application_name phantom_load):
the first (1 - simple-share) with asyncpg (extended protocol, named prepared
statements, binary parameters and results), the rest with psycopg's
AsyncClientCursor (simple protocol, values as SQL literals, text results).
Once every client is connected and has run one query, the number of server
backends with that application_name is read from pg_stat_activity (it must be
--conns). Then for --seconds each client runs a random mix over the rows it
owns (owner = its number, so it knows exactly what each read must return):

  insert   one row (protected values from the canary set) + its twin, one
           transaction
  copy     (asyncpg) three rows with COPY FROM STDIN (CSV) + twins, one
           transaction
  lookup   WHERE email = $1 of an own row: exactly that row; of a deleted one:
           nothing
  update   note, doc, amount (and sometimes email, found by email) + twin
  readback every own row (WHERE owner = $1 ORDER BY id): equal to the state
  range    amount BETWEEN lo AND hi ORDER BY amount / due >= lo AND due < hi
           ORDER BY due, id: equal to the state filtered and sorted
  delete   WHERE email = $1 RETURNING id + twin

Before that, one quiet connection copies 24 rows with asyncpg's
copy_to_table (COPY FROM STDIN, CSV, the data sent right behind the
statement, before the server's CopyInResponse): read directly, every
protected value must be an envelope, and read back through the proxy equal.

Any exception or mismatch is an error: the client records it and stops (its
rows are then left out of the final comparison). Meanwhile the proxy's VmRSS
and open fds (/proc/PID) and the phantom_load backends are sampled. At the
end every client checks its rows once more and disconnects; then the whole
table read through the proxy (SELECT, binary, and COPY TO STDOUT, CSV) must
equal the union of the clients' states, and the twin's digests must match
the decrypted values. The proxy's fds must return to their count before the
run and no phantom_load backend may remain.

Prints progress lines and one final "load-report {json}" line (also written
to --report); exit status 1 on any error or mismatch.
"""

import argparse
import asyncio
import csv
import datetime as dt
import hashlib
import io
import json
import os
import random
import sys
import time
import traceback

import asyncpg
import psycopg
from psycopg import AsyncClientCursor
from psycopg.types.json import Jsonb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import canary  # noqa: E402

APP = "phantom_load"
COLS = "id, owner, email, note, doc, amount, due, ver"
MAX_ROWS = 24  # per client: keeps every query short
DATE0 = dt.date(2020, 1, 1)


class Mismatch(Exception):
    pass


def digest(v):
    """What the twin table stores for a protected value."""
    if isinstance(v, (dict, list)):
        v = json.dumps(v, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(str(v).encode()).hexdigest()[:32]


def new_doc(rng):
    return {"k": canary.text("ldoc"), "n": rng.randint(0, 10**6),
            "tags": [rng.choice(["a", "b", "ü", "x y"]) for _ in range(rng.randint(0, 3))]}


def new_row(owner, seq, rng):
    return {"id": owner * 10_000_000 + seq, "owner": owner, "email": canary.email(),
            "note": canary.text("lnote") if rng.random() < 0.9 else None,
            "doc": new_doc(rng) if rng.random() < 0.9 else None,
            "amount": canary.integer(),
            "due": DATE0 + dt.timedelta(days=rng.randint(0, 3650)), "ver": 1}


def twin_args(r):
    return (r["id"], r["owner"], digest(r["email"]),
            None if r["note"] is None else digest(r["note"]),
            None if r["doc"] is None else digest(r["doc"]),
            digest(r["amount"]), r["due"], r["ver"])


def norm(row):
    """A row as read (asyncpg Record / psycopg tuple) -> comparable dict."""
    d = dict(zip(["id", "owner", "email", "note", "doc", "amount", "due", "ver"], row))
    if isinstance(d["doc"], str):
        d["doc"] = json.loads(d["doc"])
    return d


def expect_eq(expected, actual, what):
    if expected != actual:
        e, a = repr(expected), repr(actual)
        raise Mismatch(f"{what}: expected {e[:400]}, got {a[:400]}")


# --- the two client kinds --------------------------------------------------------

class ExtClient:
    """asyncpg: extended protocol, prepared statements, binary formats."""
    kind = "asyncpg"

    def __init__(self, conn):
        self.c = conn
        self.queries = 0

    @staticmethod
    async def connect(a):
        c = await asyncpg.connect(host=a.host, port=a.proxy_port, user=a.user, password=a.password,
                                  database=a.db, ssl=False, timeout=60, command_timeout=120,
                                  server_settings={"application_name": APP})
        return ExtClient(c)

    async def close(self):
        await self.c.close(timeout=30)

    @staticmethod
    def _p(r):
        return (r["id"], r["owner"], r["email"], r["note"],
                None if r["doc"] is None else json.dumps(r["doc"]), r["amount"], r["due"], r["ver"])

    async def insert(self, r):
        async with self.c.transaction():
            await self.c.execute(f"INSERT INTO load_items ({COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                                 *self._p(r))
            await self.c.execute("INSERT INTO load_twin VALUES ($1,$2,$3,$4,$5,$6,$7,$8)", *twin_args(r))
        self.queries += 4

    async def copy_insert(self, rows):
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        for r in rows:
            w.writerow([r["id"], r["owner"], r["email"], "" if r["note"] is None else r["note"],
                        "" if r["doc"] is None else json.dumps(r["doc"], ensure_ascii=False),
                        r["amount"], r["due"].isoformat(), r["ver"]])
        data = io.BytesIO(buf.getvalue().encode())
        async with self.c.transaction():
            st = await self.c.copy_to_table("load_items", source=data, format="csv",
                                            columns=COLS.split(", "))
            expect_eq(f"COPY {len(rows)}", st, "COPY FROM STDIN status")
            await self.c.executemany("INSERT INTO load_twin VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                                     [twin_args(r) for r in rows])
        self.queries += 3 + len(rows)

    async def lookup(self, email):
        self.queries += 1
        return [norm(x) for x in await self.c.fetch(f"SELECT {COLS} FROM load_items WHERE email = $1", email)]

    async def update(self, r, old_email):
        async with self.c.transaction():
            got = await self.c.fetch(
                "UPDATE load_items SET email = $2, note = $3, doc = $4, amount = $5, ver = ver + 1 "
                "WHERE email = $1 RETURNING id, ver", old_email, r["email"], r["note"],
                None if r["doc"] is None else json.dumps(r["doc"]), r["amount"])
            expect_eq([(r["id"], r["ver"])], [tuple(x) for x in got], "UPDATE ... RETURNING id, ver")
            st = await self.c.execute("UPDATE load_twin SET email_h = $2, note_h = $3, doc_h = $4, "
                                      "amount_h = $5, ver = $6 WHERE id = $1", *twin_args(r)[0:1],
                                      *twin_args(r)[2:6], r["ver"])
            expect_eq("UPDATE 1", st, "twin UPDATE")
        self.queries += 4

    async def readback(self, owner):
        self.queries += 1
        return [norm(x) for x in await self.c.fetch(
            f"SELECT {COLS} FROM load_items WHERE owner = $1 ORDER BY id", owner)]

    async def range_amount(self, owner, lo, hi):
        self.queries += 1
        return [tuple(x) for x in await self.c.fetch(
            "SELECT id, amount FROM load_items WHERE owner = $1 AND amount BETWEEN $2 AND $3 "
            "ORDER BY amount", owner, lo, hi)]

    async def range_due(self, owner, lo, hi):
        self.queries += 1
        return [tuple(x) for x in await self.c.fetch(
            "SELECT id, due FROM load_items WHERE owner = $1 AND due >= $2 AND due < $3 "
            "ORDER BY due, id", owner, lo, hi)]

    async def delete(self, email, rid):
        async with self.c.transaction():
            got = await self.c.fetch("DELETE FROM load_items WHERE email = $1 RETURNING id", email)
            expect_eq([rid], [x[0] for x in got], "DELETE ... RETURNING id")
            st = await self.c.execute("DELETE FROM load_twin WHERE id = $1", rid)
            expect_eq("DELETE 1", st, "twin DELETE")
        self.queries += 4


class SimpleClient:
    """psycopg AsyncClientCursor: simple protocol, SQL literals, text results."""
    kind = "psycopg-simple"

    def __init__(self, conn):
        self.c = conn
        self.queries = 0

    @staticmethod
    async def connect(a):
        c = await psycopg.AsyncConnection.connect(
            host=a.host, port=a.proxy_port, user=a.user, password=a.password, dbname=a.db,
            sslmode="disable", connect_timeout=60, application_name=APP, autocommit=True,
            cursor_factory=AsyncClientCursor)
        return SimpleClient(c)

    async def close(self):
        await self.c.close()

    async def _all(self, sql, params):
        cur = await self.c.execute(sql, params)
        return await cur.fetchall()

    @staticmethod
    def _p(r):
        return (r["id"], r["owner"], r["email"], r["note"],
                None if r["doc"] is None else Jsonb(r["doc"]), r["amount"], r["due"], r["ver"])

    async def insert(self, r):
        async with self.c.transaction():
            await self.c.execute(f"INSERT INTO load_items ({COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
                                 self._p(r))
            await self.c.execute("INSERT INTO load_twin VALUES (%s,%s,%s,%s,%s,%s,%s,%s)", twin_args(r))
        self.queries += 4

    async def lookup(self, email):
        self.queries += 1
        return [norm(x) for x in await self._all(f"SELECT {COLS} FROM load_items WHERE email = %s", (email,))]

    async def update(self, r, old_email):
        async with self.c.transaction():
            got = await self._all(
                "UPDATE load_items SET email = %s, note = %s, doc = %s, amount = %s, ver = ver + 1 "
                "WHERE email = %s RETURNING id, ver",
                (r["email"], r["note"], None if r["doc"] is None else Jsonb(r["doc"]), r["amount"],
                 old_email))
            expect_eq([(r["id"], r["ver"])], got, "UPDATE ... RETURNING id, ver")
            t = twin_args(r)
            cur = await self.c.execute("UPDATE load_twin SET email_h = %s, note_h = %s, doc_h = %s, "
                                       "amount_h = %s, ver = %s WHERE id = %s", (*t[2:6], r["ver"], r["id"]))
            expect_eq(1, cur.rowcount, "twin UPDATE rowcount")
        self.queries += 4

    async def readback(self, owner):
        self.queries += 1
        return [norm(x) for x in await self._all(f"SELECT {COLS} FROM load_items WHERE owner = %s ORDER BY id",
                                                 (owner,))]

    async def range_amount(self, owner, lo, hi):
        self.queries += 1
        return await self._all("SELECT id, amount FROM load_items WHERE owner = %s "
                               "AND amount BETWEEN %s AND %s ORDER BY amount", (owner, lo, hi))

    async def range_due(self, owner, lo, hi):
        self.queries += 1
        return await self._all("SELECT id, due FROM load_items WHERE owner = %s AND due >= %s AND due < %s "
                               "ORDER BY due, id", (owner, lo, hi))

    async def delete(self, email, rid):
        async with self.c.transaction():
            got = await self._all("DELETE FROM load_items WHERE email = %s RETURNING id", (email,))
            expect_eq([(rid,)], got, "DELETE ... RETURNING id")
            cur = await self.c.execute("DELETE FROM load_twin WHERE id = %s", (rid,))
            expect_eq(1, cur.rowcount, "twin DELETE rowcount")
        self.queries += 4


# --- one client's life ---------------------------------------------------------------

class Worker:
    def __init__(self, owner, kind, seed, copy_weight):
        self.owner = owner
        self.copy_weight = copy_weight
        self.kind = kind
        self.rng = random.Random(seed * 100003 + owner)
        self.rows = {}          # id -> row dict: what the table must hold for this owner
        self.gone = []          # emails deleted or replaced: lookups must find nothing
        self.seq = 0
        self.ops = {}
        self.error = None
        self.client = None
        self.lat = []

    def _next(self):
        self.seq += 1
        return new_row(self.owner, self.seq, self.rng)

    async def connect(self, a):
        self.client = await self.kind.connect(a)

    def _pick(self):
        n = len(self.rows)
        if n == 0:
            return "insert"
        ops = [("insert", 22 if n < MAX_ROWS else 0), ("lookup", 22), ("update", 16),
               ("readback", 8), ("range_amount", 10), ("range_due", 8),
               ("delete", 10 if n > 2 else 2), ("lookup_gone", 4 if self.gone else 0)]
        if self.kind is ExtClient and n + 3 <= MAX_ROWS and self.copy_weight:
            ops.append(("copy", self.copy_weight))
        total = sum(w for _, w in ops)
        x = self.rng.uniform(0, total)
        for name, w in ops:
            x -= w
            if x < 0 and w:
                return name
        return "lookup"

    async def step(self, op):
        c, rng = self.client, self.rng
        if op == "insert":
            r = self._next()
            await c.insert(r)
            self.rows[r["id"]] = r
        elif op == "copy":
            rs = [self._next() for _ in range(3)]
            await c.copy_insert(rs)
            for r in rs:
                self.rows[r["id"]] = r
        elif op == "lookup":
            r = self.rows[rng.choice(list(self.rows))]
            expect_eq([r], await c.lookup(r["email"]), "lookup by email")
        elif op == "lookup_gone":
            expect_eq([], await c.lookup(rng.choice(self.gone)), "lookup of a deleted/replaced email")
        elif op == "update":
            old = self.rows[rng.choice(list(self.rows))]
            r = dict(old)
            r["ver"] += 1
            r["note"] = canary.text("lupd") if rng.random() < 0.9 else None
            r["doc"] = new_doc(rng) if rng.random() < 0.8 else None
            r["amount"] = canary.integer()
            if rng.random() < 0.3:
                r["email"] = canary.email()
            await c.update(r, old["email"])
            if r["email"] != old["email"]:
                self.gone.append(old["email"])
            self.rows[r["id"]] = r
        elif op == "readback":
            expect_eq([self.rows[k] for k in sorted(self.rows)], await c.readback(self.owner), "read back own rows")
        elif op == "range_amount":
            am = sorted(r["amount"] for r in self.rows.values())
            i = rng.randrange(len(am))
            j = rng.randrange(i, len(am))
            lo, hi = am[i] + rng.choice([0, 1]), am[j] - rng.choice([0, 0, 1])
            exp = sorted((r["id"], r["amount"]) for r in self.rows.values() if lo <= r["amount"] <= hi)
            exp.sort(key=lambda t: t[1])
            expect_eq(exp, await c.range_amount(self.owner, lo, hi), f"amount BETWEEN {lo} AND {hi}")
        elif op == "range_due":
            lo = DATE0 + dt.timedelta(days=rng.randint(-10, 3650))
            hi = lo + dt.timedelta(days=rng.randint(0, 2000))
            exp = sorted(((r["id"], r["due"]) for r in self.rows.values() if lo <= r["due"] < hi),
                         key=lambda t: (t[1], t[0]))
            expect_eq(exp, await c.range_due(self.owner, lo, hi), f"due >= {lo} AND due < {hi}")
        elif op == "delete":
            r = self.rows[rng.choice(list(self.rows))]
            await c.delete(r["email"], r["id"])
            del self.rows[r["id"]]
            self.gone.append(r["email"])
        if len(self.gone) > 50:
            del self.gone[:25]

    async def run(self, deadline):
        while time.monotonic() < deadline and self.error is None:
            op = self._pick()
            t0 = time.monotonic()
            try:
                await self.step(op)
            except Exception as e:  # noqa: BLE001 - any error fails the run
                self.error = (op, e, traceback.format_exc())
                return
            self.lat.append(time.monotonic() - t0)
            self.ops[op] = self.ops.get(op, 0) + 1

    async def final_check(self):
        if self.error:
            return
        try:
            expect_eq([self.rows[k] for k in sorted(self.rows)], await self.client.readback(self.owner),
                      "final read back of own rows")
        except Exception as e:  # noqa: BLE001
            self.error = ("final readback", e, traceback.format_exc())


# --- sampling ------------------------------------------------------------------------

def proc_status(pid):
    rss = None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) // 1024
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None, None
    return rss, fds


def proxy_upstream_ports(pid, server_port):
    """Local ports of the proxy's TCP connections to the server (from /proc)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return set()
    ports = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    p = line.split()
                    if p[9] in inodes and int(p[2].rsplit(":", 1)[1], 16) == server_port:
                        ports.add(int(p[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


class Sampler:
    def __init__(self, pid, direct):
        self.pid = pid
        self.direct = direct
        self.samples = []       # (t, phase, rss_mb, fds, backends)
        self.phase = "start"
        self.stop = False
        self.lock = asyncio.Lock()

    async def backends(self):
        return await self.direct.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'client backend'",
            APP)

    async def sample(self):
        async with self.lock:  # one query at a time on the monitor connection
            n = await self.backends()
        rss, fds = proc_status(self.pid)
        s = (time.monotonic(), self.phase, rss, fds, n)
        self.samples.append(s)
        return s

    async def run(self, every):
        while not self.stop:
            await self.sample()
            await asyncio.sleep(every)

    def peak(self, idx, phases=None):
        v = [s[idx] for s in self.samples if s[idx] is not None and (phases is None or s[1] in phases)]
        return max(v) if v else None


# --- main ------------------------------------------------------------------------------

async def read_all_proxy(a):
    """The whole table through the proxy: SELECT (binary) and COPY TO STDOUT (CSV)."""
    c = await asyncpg.connect(host=a.host, port=a.proxy_port, user=a.user, password=a.password,
                              database=a.db, ssl=False, timeout=60, command_timeout=300)
    try:
        rows = {r["id"]: norm(r) for r in await c.fetch(f"SELECT {COLS} FROM load_items")}
        buf = io.BytesIO()
        await c.copy_from_table("load_items", columns=COLS.split(", "), output=buf, format="csv")
        copied = {}
        for rec in csv.reader(io.StringIO(buf.getvalue().decode())):
            i, owner, email, note, doc, amount, due, ver = rec
            copied[int(i)] = {"id": int(i), "owner": int(owner), "email": email, "note": note or None,
                              "doc": json.loads(doc) if doc else None, "amount": int(amount),
                              "due": dt.date.fromisoformat(due), "ver": int(ver)}
        twin = {r["id"]: tuple(r) for r in await c.fetch("SELECT * FROM load_twin")}
    finally:
        await c.close()
    return rows, copied, twin


def compare_final(workers, rows, copied, twin):
    errs = []
    bad_owners = {w.owner for w in workers if w.error}
    expected = {}
    for w in workers:
        if not w.error:
            expected.update(w.rows)
    got = {k: v for k, v in rows.items() if v["owner"] not in bad_owners}
    if got != expected:
        missing = sorted(set(expected) - set(got))[:5]
        extra = sorted(set(got) - set(expected))[:5]
        diff = [k for k in expected if k in got and got[k] != expected[k]][:3]
        errs.append(f"table through the proxy != clients' state: {len(expected)} expected, {len(got)} read; "
                    f"missing {missing} extra {extra} differing "
                    f"{[(expected[k], got[k]) for k in diff]}")
    # COPY's CSV: "" for NULL is ambiguous with an empty note; the canary notes are never empty
    cp = {k: v for k, v in copied.items() if v["owner"] not in bad_owners}
    if cp != got:
        diff = [k for k in got if cp.get(k) != got[k]][:3]
        errs.append(f"COPY TO STDOUT through the proxy != SELECT through the proxy: {len(cp)} vs {len(got)} rows; "
                    f"e.g. {[(got[k], cp.get(k)) for k in diff]}")
    tw = {k: v for k, v in twin.items() if v[1] not in bad_owners}
    exp_tw = {k: twin_args(r) for k, r in got.items()}
    if tw != exp_tw:
        diff = [k for k in set(tw) | set(exp_tw) if tw.get(k) != exp_tw.get(k)][:3]
        errs.append(f"twin table (same transactions, digests) != decrypted table: {len(tw)} vs {len(exp_tw)} "
                    f"rows; e.g. {[(k, tw.get(k), exp_tw.get(k)) for k in diff]}")
    return errs, len(expected)


async def copy_probe(a, direct, n=12):
    """COPY FROM STDIN the way asyncpg sends it — the data right behind the
    statement, before the server's CopyInResponse — n times on one quiet
    connection (the load run does it too, but under load the timing varies):
    every value must be stored as an envelope and read back equal."""
    errors = []
    c = await asyncpg.connect(host=a.host, port=a.proxy_port, user=a.user, password=a.password,
                              database=a.db, ssl=False, timeout=60, command_timeout=120)
    rng = random.Random(a.seed)
    rows = [new_row(0, i + 1, rng) for i in range(2 * n)]
    try:
        cl = ExtClient(c)
        for i in range(n):
            await cl.copy_insert(rows[2 * i:2 * i + 2])
        got = await cl.readback(0)
        if got != sorted(rows, key=lambda r: r["id"]):
            errors.append(f"COPY probe: rows read back through the proxy differ from those copied: "
                          f"{len(got)} rows, e.g. {repr(got[:1])[:300]}")
    except Exception as e:  # noqa: BLE001
        errors.append(f"COPY probe: {type(e).__name__}: {e}")
    finally:
        env = " AND ".join(f"({x} IS NULL OR (get_byte({x}, 0) = 1 AND get_byte({x}, 1) BETWEEN 1 AND 4 "
                           f"AND length({x}) >= 23))" for x in ("email", "note", "doc", "amount", "due"))
        bad = await direct.fetchval(f"SELECT count(*) FROM load_items WHERE owner = 0 AND NOT ({env})")
        if bad:
            errors.append(f"COPY probe: {bad} of {2 * n} rows copied through the proxy are stored with "
                          f"a protected value that is not an envelope (plaintext)")
        await c.execute("DELETE FROM load_items WHERE owner = 0")
        await c.execute("DELETE FROM load_twin WHERE owner = 0")
        await c.close()
    return errors


async def connect_all(a, workers):
    sem = asyncio.Semaphore(a.connect_parallel)
    errors = []

    async def one(w):
        async with sem:
            try:
                await w.connect(a)
                await w.client.readback(w.owner)   # first query: the session is live upstream
            except Exception as e:  # noqa: BLE001
                errors.append((w.owner, e))
    await asyncio.gather(*(one(w) for w in workers))
    return errors


async def main_async(a):
    report = {"conns": a.conns, "seconds": a.seconds}
    errors = []
    direct = await asyncpg.connect(host=a.host, port=a.direct_port, user=a.user, password=a.password,
                                   database=a.db, ssl=False, timeout=30,
                                   server_settings={"application_name": "phantom_load_monitor"})
    sampler = Sampler(a.proxy_pid, direct)
    rss0, fds0 = proc_status(a.proxy_pid)
    report["proxy_rss_mb_before"], report["proxy_fds_before"] = rss0, fds0
    n_simple = int(round(a.conns * a.simple_share))
    workers = [Worker(i + 1, ExtClient if i < a.conns - n_simple else SimpleClient, a.seed, a.copy_weight)
               for i in range(a.conns)]
    report["clients"] = {"asyncpg": a.conns - n_simple, "psycopg-simple": n_simple}
    if a.copy_weight:
        perr = await copy_probe(a, direct)
        report["copy_probe_errors"] = len(perr)
        errors += perr
        print(f"load: COPY FROM STDIN probe (data before the CopyInResponse): "
              f"{'FAILED' if perr else 'every value stored as an envelope and read back equal'}", flush=True)
    samp_task = asyncio.create_task(sampler.run(a.sample_every))

    t0 = time.monotonic()
    sampler.phase = "connect"
    cerr = await connect_all(a, workers)
    report["connect_seconds"] = round(time.monotonic() - t0, 1)
    if cerr:
        errors += [f"client {o}: connect/first query failed: {type(e).__name__}: {e}" for o, e in cerr[:10]]
        for w in workers:  # a client that failed its first query is out of the run
            if any(o == w.owner for o, _ in cerr):
                w.error = ("connect", cerr[0][1], "")
        errors.append(f"{len(cerr)} of {a.conns} clients could not connect")
    s = await sampler.sample()
    report["backends_all_connected"] = s[4]
    # Backends whose client is one of the proxy's own upstream sockets.
    ports = proxy_upstream_ports(a.proxy_pid, a.direct_port)
    async with sampler.lock:
        via = await direct.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND client_port = ANY($2::int[])",
            APP, list(ports))
    report["backends_via_proxy_sockets"] = via
    if via != a.conns:
        errors.append(f"{via} phantom_load backends are connected from the proxy's own sockets, expected {a.conns}")
    report["proxy_fds_all_connected"] = s[3]
    print(f"load: {a.conns - len(cerr)}/{a.conns} clients connected in {report['connect_seconds']}s; "
          f"phantom_load backends in pg_stat_activity: {s[4]} ({via} from the proxy's upstream sockets); proxy fds {fds0} -> {s[3]}, "
          f"VmRSS {rss0} -> {s[2]} MB", flush=True)
    if s[4] != a.conns:
        errors.append(f"pg_stat_activity shows {s[4]} phantom_load backends with every client connected, "
                      f"expected {a.conns}")

    live = [w for w in workers if w.client is not None]
    sampler.phase = "load"
    t1 = time.monotonic()
    deadline = t1 + a.seconds

    async def progress():
        while time.monotonic() < deadline:
            await asyncio.sleep(min(10, max(0.1, deadline - time.monotonic())))
            q = sum(w.client.queries for w in live)
            last = sampler.samples[-1] if sampler.samples else (0, "", None, None, None)
            print(f"load: t={time.monotonic() - t1:5.1f}s statements={q} errors={sum(1 for w in live if w.error)} "
                  f"VmRSS={last[2]} MB fds={last[3]} backends={last[4]}", flush=True)
    prog = asyncio.create_task(progress())
    await asyncio.gather(*(w.run(deadline) for w in live))
    load_secs = time.monotonic() - t1
    await prog
    sampler.phase = "final"
    await asyncio.gather(*(w.final_check() for w in live))
    s_end = await sampler.sample()
    report["proxy_rss_mb_end_of_load"] = s_end[2]

    sampler.phase = "close"
    close_err = []
    for w in live:
        try:
            await w.client.close()
        except Exception as e:  # noqa: BLE001
            close_err.append(f"client {w.owner}: close: {type(e).__name__}: {e}")
    errors += close_err[:5]

    # The proxy lets go of every connection: fds back to where they were, no backend left.
    sampler.phase = "after"
    t2 = time.monotonic()
    while True:
        s = await sampler.sample()
        if (s[3] is not None and s[3] <= fds0 and s[4] == 0) or time.monotonic() - t2 > 30:
            break
        await asyncio.sleep(0.2)
    sampler.stop = True
    await samp_task
    report["proxy_fds_after"], report["backends_after"] = s[3], s[4]
    report["proxy_rss_mb_after_close"] = s[2]
    if s[3] is None:
        errors.append("the proxy process is gone")
    elif s[3] > fds0:
        errors.append(f"proxy holds {s[3]} fds 30 s after every client closed (before the run: {fds0})")
    if s[4] != 0:
        errors.append(f"{s[4]} phantom_load backends remain after every client closed")

    # Whole table through the proxy vs the clients' states and the twin.
    try:
        rows, copied, twin = await read_all_proxy(a)
        ferr, nexp = compare_final(workers, rows, copied, twin)
        errors += ferr
    except Exception as e:  # noqa: BLE001
        errors.append(f"reading the whole table through the proxy: {type(e).__name__}: {e}")
        rows, nexp = {}, 0
    n_direct = await direct.fetchval("SELECT count(*) FROM load_items")
    types = await direct.fetch("SELECT column_name, data_type FROM information_schema.columns "
                               "WHERE table_name = 'load_items' AND column_name IN ('email', 'note', 'doc', 'amount', 'due') "
                               "ORDER BY 1")
    if [t[1] for t in types] != ["bytea"] * 5:
        errors.append(f"protected columns are not all bytea in the database: {[tuple(t) for t in types]}")
    if n_direct != len(rows):
        errors.append(f"{n_direct} rows in the database, {len(rows)} read through the proxy")
    # What the database holds in the protected columns: envelopes only (version
    # byte 1, mode 1-4, at least 23 bytes), never a plaintext written past the proxy.
    env = " AND ".join(f"({c} IS NULL OR (get_byte({c}, 0) = 1 AND get_byte({c}, 1) BETWEEN 1 AND 4 "
                       f"AND length({c}) >= 23))" for c in ("email", "note", "doc", "amount", "due"))
    n_plain = await direct.fetchval(f"SELECT count(*) FROM load_items WHERE NOT ({env})")
    report["rows_not_envelopes"] = n_plain
    if n_plain:
        errors.append(f"{n_plain} rows hold a protected value that is not an envelope in the database "
                      f"(plaintext written through the proxy)")
    await direct.close()

    # Per-client errors: the first few in full.
    failed = [w for w in workers if w.error]
    for w in failed[:5]:
        op, e, tb = w.error
        errors.append(f"client {w.owner} ({w.kind.kind}) during {op}: {type(e).__name__}: {e}")
        if w is failed[0]:
            print(tb, file=sys.stderr)
    if failed:
        errors.append(f"{len(failed)} of {a.conns} clients hit an error")

    ops = {}
    for w in live:
        for k, v in w.ops.items():
            ops[k] = ops.get(k, 0) + v
    lat = sorted(x for w in live for x in w.lat)
    report.update({
        "load_seconds": round(load_secs, 1),
        "operations": sum(ops.values()), "ops": ops,
        "statements": sum(w.client.queries for w in live),
        "ops_per_s": round(sum(ops.values()) / load_secs, 1),
        "statements_per_s": round(sum(w.client.queries for w in live) / load_secs, 1),
        "op_latency_ms_p50": round(1000 * lat[len(lat) // 2], 1) if lat else None,
        "op_latency_ms_p99": round(1000 * lat[int(len(lat) * 0.99)], 1) if lat else None,
        "rows_final": len(rows), "rows_checked": nexp,
        "backends_peak": sampler.peak(4),
        "proxy_fds_peak": sampler.peak(3),
        "proxy_rss_mb_peak": sampler.peak(2),
        "proxy_rss_mb_load_first_quarter": None,
        "errors": len(errors),
    })
    ld = [s for s in sampler.samples if s[1] == "load" and s[2] is not None]
    if ld:
        q = [s for s in ld if s[0] - t1 <= a.seconds / 4]
        report["proxy_rss_mb_load_first_quarter"] = max(s[2] for s in q) if q else ld[0][2]
        report["proxy_rss_mb_load_last"] = ld[-1][2]
    return report, errors


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--proxy-port", type=int, required=True)
    ap.add_argument("--direct-port", type=int, required=True)
    ap.add_argument("--db", default="phantom")
    ap.add_argument("--user", default="phantom_scram")
    ap.add_argument("--password", default="scram_pw")
    ap.add_argument("--proxy-pid", type=int, required=True)
    ap.add_argument("--conns", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=25)
    ap.add_argument("--simple-share", type=float, default=0.2)
    ap.add_argument("--copy-weight", type=float, default=5,
                    help="relative frequency of the COPY FROM STDIN operation (asyncpg clients; 0: never)")
    ap.add_argument("--connect-parallel", type=int, default=25)
    ap.add_argument("--sample-every", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--report")
    a = ap.parse_args()
    print(f"load: {a.conns} clients ({a.simple_share:.0%} simple protocol), {a.seconds:g}s, seed {a.seed}", flush=True)
    report, errors = asyncio.run(main_async(a))
    for e in errors[:20]:
        print(f"load ERROR: {e}", flush=True)
    line = json.dumps(report, sort_keys=True)
    print(f"load-report {line}", flush=True)
    if a.report:
        with open(a.report, "w") as f:
            f.write(line + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
