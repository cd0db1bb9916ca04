#!/usr/bin/python3
"""The seed's financial-SaaS application through the encrypting proxy (issue 5).

Usage:
  app_suite.py load    --proxy DSN --plain DSN
  app_suite.py check   --proxy DSN --plain DSN --enc-direct DSN
  app_suite.py secrets

--proxy is the proxy in front of the ENCRYPTED database (customers, payments,
customers_import, accounts and ddl_probe are protected by the proxy's encrypt
section), --plain a direct connection to a database on a second server (the
plaintext reference: not part of the leak canary's snapshot) holding the SAME
schema with plain types, --enc-direct a direct connection to the encrypted
database (what the provider sees).

load     generates the data set (200 customers, 1000 payments; deterministic:
         a fixed seed) and writes it through the proxy and into the plain
         database: customers with the extended protocol (executemany; half
         the rows with text parameters, half binary), payments with the
         simple protocol (multi-row INSERT ... VALUES with literals).
check    runs the application's queries through the proxy and directly on the
         plain copy and asserts identical results (rows and RowDescription
         types, text and binary formats), the same mutations on both sides,
         every refused operation (SQLSTATE 0A000 and a message naming table,
         column, mode and operation; the connection stays usable), the DDL
         rules, ParameterDescription types, concurrent sessions, what the
         encrypted database holds when read directly (bytea envelopes, no
         plaintext), a moved ciphertext failing to decrypt, DDL by another
         session (plaintext or an error, never ciphertext), and invalid values
         (rejected with a data exception, class 22, or stored exactly as
         PostgreSQL stores them).
secrets  prints every protected plaintext the suite uses, one per line (for
         the leak check of tests/integration/test_encrypt_app.sh).

Every protected string value carries a leak canary (tests/clients/canary.py):
a token "cnry-a-<20 hex>" derived from the value and APP_CANARY_SEED (the
same in the load and check runs: equal values keep equal tokens), put before
the "@" of an address and after the text of other values. load and check
record the tokens they used ($PHANTOM_CANARY_DIR/values); the snapshot of the
encrypted database's server at the end of the test must not find any.

Prints "ok - ..." per passing check, "FAIL - ..." per failing one, then
"N passed, N failed"; exit status non-zero on any failure.
"""

import argparse
import datetime as dt
import functools
import hashlib
import json
import logging
import os
import random
import sys
import time
import traceback
import uuid
from decimal import Decimal

import psycopg
from psycopg import errors, pq
from psycopg.types.json import Jsonb, set_json_dumps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import canary  # noqa: E402

# PostgreSQL's jsonb text output does not escape non-ASCII: neither do we, so
# the text the proxy encrypts (as given) equals what the plain copy prints.
set_json_dumps(functools.partial(json.dumps, ensure_ascii=False))
logging.getLogger("psycopg").addHandler(logging.NullHandler())

N_CUSTOMERS = 200
N_PAYMENTS = 1000

# The leak canary: the tokens this run used (recorded by load and check).
CANARY_SEED = os.environ.get("APP_CANARY_SEED", "app-suite")
TOKENS = set()


def tok(v):
    t = canary.derive("a", CANARY_SEED, v)
    TOKENS.add(t)
    return t


def cv(v):
    """A protected text value: v and its canary token."""
    return f"{v} {tok(v)}"


def ce(v):
    """A protected address: its canary token before the @."""
    local, _, domain = v.partition("@")
    return f"{local}.{tok(v)}@{domain}"

PASSED = 0
FAILED = 0


class CheckFailed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def short(v, n=300):
    s = repr(v)
    return s if len(s) <= n else s[:n] + "..."


def check_eq(expected, actual, what):
    if expected != actual:
        raise CheckFailed(f"{what}: expected {short(expected)}, got {short(actual)}")


def run(name, fn, *args):
    global PASSED, FAILED
    t0 = time.monotonic()
    try:
        subs = fn(*args)
    except CheckFailed as e:
        FAILED += 1
        print(f"FAIL - {name}: {e}", flush=True)
        return
    except Exception as e:  # noqa: BLE001 - any error fails the check
        FAILED += 1
        print(f"FAIL - {name}: unexpected {type(e).__name__}: {e}", flush=True)
        traceback.print_exc(file=sys.stdout)
        return
    PASSED += 1
    extra = f" ({'; '.join(subs)})" if subs else ""
    print(f"ok - {name}{extra} [{time.monotonic() - t0:.2f}s]", flush=True)


# ---------------------------------------------------------------------------
# the data set (deterministic)

FIRST = ["Alma", "Bruno", "Chiara", "Dmitri", "Elif", "Fionn", "Greta", "Hamza", "Ines",
         "Jonas", "Kasia", "Lorenzo", "Margot", "Nils", "Oona", "Pieter", "Quirin",
         "Rosalind", "Søren", "Zoë", "Łukasz", "Amélie"]
LAST = ["Wexford", "Castellanos", "Oyelaran", "Brandtner", "Moreau-Quist", "Kowalczyk",
        "O'Harrow", "Villanueva", "Thorsby", "Dunkelberg", "Ferreira-Lund", "Nakagawa",
        "Müller-Ebbing", "Sørlie", "Grünwald"]
DOMAINS = ["mail-zq.test", "kunden.zq-example.de", "client.zq-example.fr", "zq-bank.example"]
STREETS = ["Quarry Lane", "Lindenstraße", "Rue des Tanneurs", "Via Marmorata", "Keizersgracht",
           "ul. Wronia"]
CITIES = ["Lindenfeld", "Tannerbourg", "Marmoria", "Grachtwijk", "Wroniec"]
COUNTRIES = ["DE", "FR", "IT", "NL", "PL", "ES"]
PLANS = ["starter", "business", "enterprise"]
DIAL = {"DE": "49", "FR": "33", "IT": "39", "NL": "31", "PL": "48", "ES": "34"}


def ascii_fold(s):
    table = str.maketrans({"ø": "o", "ë": "e", "Ł": "L", "é": "e", "ü": "u", "'": ""})
    return s.translate(table).lower()


@functools.lru_cache(maxsize=None)
def dataset():
    rng = random.Random(20240605)
    customers = []
    base = dt.datetime(2023, 1, 1, 8, 0, 0, tzinfo=dt.timezone.utc)
    for i in range(1, N_CUSTOMERS + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        cc = rng.choice(COUNTRIES)
        email = ce(f"{ascii_fold(first)}.{ascii_fold(last)}.{i:03d}@{rng.choice(DOMAINS)}")
        phone = None if i % 7 == 0 else cv(f"+{DIAL[cc]} {rng.randint(20, 99)} {rng.randint(1000, 9999)} {rng.randint(100, 999)}")
        if i in (40, 80):  # one shared household number: randomized ciphertexts must differ
            phone = HOUSEHOLD_PHONE
        tax_id = None if i % 11 == 0 else cv(f"{cc}-TX-{rng.randint(10**8, 10**9 - 1)}-{i:03d}")
        address = None
        if i % 13 != 0:
            # keys in jsonb's own output order (by length, then bytes)
            address = {"city": rng.choice(CITIES),
                       "street": cv(f"{rng.randint(1, 240)} {rng.choice(STREETS)}"),
                       "country": cc,
                       "postcode": cv(f"ZQ{rng.randint(1000, 9999)}-{i:03d}")}
        created = base + dt.timedelta(days=(i * 37) % 500, seconds=i * 61)
        customers.append({
            "id": uuid.UUID(hashlib.md5(f"phx-customer-{i}".encode()).hexdigest()),
            "email": email, "full_name": cv(f"{first} {last}"), "phone": phone, "tax_id": tax_id,
            "address": address, "plan_tier": rng.choice(PLANS), "created_at": created,
            "country_code": cc,
        })
    emails = [c["email"] for c in customers]
    guests = [ce(f"guest.checkout.{k}@zq-guest.test") for k in range(1, 6)]  # no customer row
    payments = []
    special_dates = [dt.date(1999, 12, 31), dt.date(2000, 1, 1), dt.date(2099, 12, 31),
                     dt.date(1970, 1, 1)]
    for j in range(1, N_PAYMENTS + 1):
        # skewed: a few customers pay a lot (GROUP BY counts differ)
        if j % 50 == 0:
            email = guests[(j // 50) % len(guests)]
        elif rng.random() < 0.3:
            email = emails[rng.randint(0, 9)]
        else:
            email = rng.choice(emails)
        card = None if j % 9 == 0 else cv(
            f"4{rng.randint(100, 999)} {rng.randint(1000, 9999)} {rng.randint(1000, 9999)} {j:04d}")
        if j % 97 == 0:
            paid_on = None
        elif j % 101 == 0:
            paid_on = special_dates[(j // 101) % len(special_dates)]
        else:
            paid_on = dt.date(2024, 1, 1) + dt.timedelta(days=rng.randint(0, 365))
        amount = Decimal(rng.randint(100, 99999)) / 100
        payments.append({"id": j, "customer_email": email, "card_number": card,
                         "amount": amount, "paid_on": paid_on})
    return customers, payments


CUST_COLS = ["id", "email", "full_name", "phone", "tax_id", "address", "plan_tier", "created_at",
             "country_code"]
PAY_COLS = ["id", "customer_email", "card_number", "amount", "paid_on"]

# Values the mutations write (protected plaintexts too: in the leak check).
HOUSEHOLD_PHONE = cv("+49 30 5550 4080")
NEW_PHONE_EXT = cv("+49 170 5550 1234")
NEW_PHONE_SIMPLE = cv("+31 6 5550 9876")
UPSERT_NEW = {"id": uuid.UUID("6f1a3c55-0000-4000-8000-00000000a001"),
              "email": ce("new.signup.upsert@zq-signup.test"), "full_name": cv("Yannick Upsertmann"),
              "phone": cv("+33 6 5550 7001"), "tax_id": cv("FR-TX-700100200-UPS"),
              "address": {"city": cv("Upsertville"), "street": cv("7 Conflict Row"), "country": "FR",
                          "postcode": cv("ZQ7001-UPS")},
              "plan_tier": "starter",
              "created_at": dt.datetime(2024, 7, 1, 12, 0, tzinfo=dt.timezone.utc),
              "country_code": "FR"}
UPSERT_NAME = cv("Yannick Upsertmann-Renamed")
UPSERT_PHONE = cv("+33 6 5550 7002")
PIPE_CARD = cv("4999 5550 1111 0001")
RET_CARDS = [cv("4111 5550 2222 0002"), cv("4222 5550 3333 0003")]
SIMPLE_CARD = cv("4333 5550 4444 0004")
NOLIST_CARD = cv("4444 5550 5555 0005")
ROLLED_BACK_PHONE = cv("+00 0 0000 0000")
NEVER_WRITTEN = cv("never-written")
ANOTHER_SECRET = cv("another-secret")
UNKNOWN_EMAIL = ce("nobody.at.all@zq-nowhere.test")
ACCOUNTS = [(1, ce("acct.owner.one@zq-accounts.test"), Decimal("1234.50"), 5000),
            (2, ce("acct.owner.two@zq-accounts.test"), Decimal("-20.05"), -150),
            (3, ce("acct.owner.three@zq-accounts.test"), Decimal("0.00"), 0),
            (4, ce("acct.owner.four@zq-accounts.test"), None, 9007199254740993),
            (5, ce("acct.owner.five@zq-accounts.test"), Decimal("99999.99"), -9007199254740993)]
PROBE_VALUES = [(1, cv("probe-secret-alpha-7731"), cv("probe-det-bravo-7731"), cv("probe-extra-charlie-7731"))]
# written by another session after it re-created ddl_probe (stale catalog check)
STALE_VALUES = [(2, cv("stale-secret-delta-4412"), cv("stale-det-echo-4412"), cv("stale-extra-foxtrot-4412")),
                (3, cv("stale-secret-golf-4412"), cv("stale-det-hotel-4412"), cv("stale-extra-india-4412"))]
N_THREADS = 6


def concurrent_phone(n):
    return cv(f"+49 151 5550 {n:04d}")


TAMPER_NOTE = "tamper"
# Literals of refused statements: they must never reach the server. Each
# carries its canary token ("zq-refused-like-marker-cnry-a-<hex>").
MARKER = {m: f"{m}-{tok(m)}" for m in [
    "zq-refused-like-marker", "zq-refused-ilike-marker", "zq-refused-regex-marker",
    "zq-refused-similar-marker", "zqrefusedftsmarker", "zq-refused-upper-marker",
    "zq-refused-cast-marker", "zq-refused-range-marker", "zq-refused-between-marker",
    "zq-refused-param-like-marker", "zq-refused-tx-marker", "zq-refused-pipeline-marker",
    "zq-refused-eq-randomized-marker"]}
UPPER_MARKER = MARKER["zq-refused-upper-marker"].upper()
TOKENS.add(tok("zq-refused-upper-marker").upper())
REFUSAL_MARKERS = sorted(MARKER.values()) + [UPPER_MARKER]


def marked(sql):
    """sql with each refusal marker replaced by the marker and its canary."""
    sql = sql.replace("ZQ-REFUSED-UPPER-MARKER", UPPER_MARKER)
    for m, v in MARKER.items():
        sql = sql.replace(m, v)
    return sql


def secrets():
    customers, payments = dataset()
    out = set()
    for c in customers:
        for k in ("email", "full_name", "phone", "tax_id"):
            if c[k]:
                out.add(c[k])
        if c["address"]:
            out.add(c["address"]["street"])
            out.add(c["address"]["postcode"])
    for p in payments:
        out.add(p["customer_email"])
        if p["card_number"]:
            out.add(p["card_number"])
    out.update([NEW_PHONE_EXT, NEW_PHONE_SIMPLE, UPSERT_NAME, UPSERT_PHONE, PIPE_CARD,
                SIMPLE_CARD, NOLIST_CARD, *RET_CARDS, ROLLED_BACK_PHONE, NEVER_WRITTEN,
                ANOTHER_SECRET, UNKNOWN_EMAIL])
    for k in ("email", "full_name", "phone", "tax_id"):
        out.add(UPSERT_NEW[k])
    out.add(UPSERT_NEW["address"]["street"])
    out.add(UPSERT_NEW["address"]["postcode"])
    out.add(UPSERT_NEW["address"]["city"])
    for a in ACCOUNTS:
        out.add(a[1])
    for p in PROBE_VALUES + STALE_VALUES:
        out.update(p[1:])
    out.update(concurrent_phone(k) for k in range(N_THREADS * 100))
    out.update(REFUSAL_MARKERS)
    return sorted(out)


# ---------------------------------------------------------------------------
# helpers

def connect(dsn, **kw):
    kw.setdefault("autocommit", True)
    return psycopg.connect(dsn, **kw)


def cust_params(c):
    return [c[k] if k != "address" else (Jsonb(c[k]) if c[k] is not None else None)
            for k in CUST_COLS]


def norm(v):
    if isinstance(v, memoryview):
        return bytes(v)
    return v


def fetch(conn, sql, params=None, *, binary=False, prepare=None, client=False):
    """(description, rows, rowcount, formats); description per field: name, type oid,
    display size, internal size, precision, scale."""
    cur = psycopg.ClientCursor(conn) if client else conn.cursor(binary=binary)
    if client:
        cur.execute(sql, params)
    else:
        cur.execute(sql, params, prepare=prepare)
    # name, type OID, and what typlen / typmod give drivers: sizes, precision, scale
    desc = ([(d.name, d.type_code, d.display_size, d.internal_size, d.precision, d.scale)
             for d in cur.description] if cur.description else None)
    rows = [tuple(norm(x) for x in r) for r in cur.fetchall()] if cur.description else None
    fmts = None
    if cur.description and cur.pgresult is not None:
        fmts = {cur.pgresult.fformat(i) for i in range(cur.pgresult.nfields)}
    return desc, rows, cur.rowcount, fmts


def sort_key(row):
    return tuple((x is None, repr(x)) for x in row)


class App:
    def __init__(self, proxy, plain, enc_direct):
        self.proxy_dsn, self.plain_dsn, self.enc_dsn = proxy, plain, enc_direct
        self.P = connect(proxy)
        self.D = connect(plain)
        self.E = connect(enc_direct) if enc_direct else None

    def both(self, what, sql, params=None, *, binary=False, prepare=None, client=False,
             unordered=False, min_rows=1, max_rows=None):
        """Runs sql through the proxy (encrypted) and on the plain copy; asserts
        equal RowDescription types, rows and row counts. Returns the rows."""
        pd, prows, pcount, pfmt = fetch(self.P, sql, params, binary=binary, prepare=prepare,
                                        client=client)
        dd, drows, dcount, _ = fetch(self.D, sql, params, binary=binary, prepare=prepare,
                                     client=client)
        check_eq(dd, pd, f"{what}: RowDescription (name, type, size, precision, scale) vs plain")
        if prows is not None:
            if unordered:
                prows, drows = sorted(prows, key=sort_key), sorted(drows, key=sort_key)
            if prows != drows:
                for i, (a, b) in enumerate(zip(prows, drows)):
                    if a != b:
                        raise CheckFailed(f"{what}: row {i} differs: proxy {short(a)} "
                                          f"plain {short(b)} ({len(prows)} vs {len(drows)} rows)")
                raise CheckFailed(f"{what}: {len(prows)} rows through the proxy, "
                                  f"{len(drows)} on the plain copy")
            check(len(prows) >= min_rows, f"{what}: only {len(prows)} rows (want >= {min_rows})")
            if max_rows is not None:
                check(len(prows) <= max_rows, f"{what}: {len(prows)} rows (want <= {max_rows})")
            want = {1 if binary else 0}
            check(pfmt is None or not prows or pfmt == want,
                  f"{what}: result format codes {pfmt}, asked for {want}")
        check_eq(dcount, pcount, f"{what}: row count (command tag)")
        return prows


# ---------------------------------------------------------------------------
# load

def load(proxy, plain):
    customers, payments = dataset()
    cols = ", ".join(CUST_COLS)
    half = len(customers) // 2
    for dsn in (proxy, plain):
        with connect(dsn) as conn:
            cur = conn.cursor()
            # extended protocol, text parameters
            ph = ", ".join(["%t"] * len(CUST_COLS))
            cur.executemany(f"INSERT INTO customers ({cols}) VALUES ({ph})",
                            [cust_params(c) for c in customers[:half]])
            # extended protocol, binary parameters
            ph = ", ".join(["%b"] * len(CUST_COLS))
            cur.executemany(f"INSERT INTO customers ({cols}) VALUES ({ph})",
                            [cust_params(c) for c in customers[half:]])
            # simple protocol: multi-row INSERT with literals (client-side binding)
            ccur = psycopg.ClientCursor(conn)
            for k in range(0, len(payments), 100):
                chunk = payments[k:k + 100]
                values = ", ".join(
                    ccur.mogrify("(%s, %s, %s, %s, %s)", [p[c] for c in PAY_COLS]) for p in chunk)
                ccur.execute(f"INSERT INTO payments ({', '.join(PAY_COLS)}) VALUES {values}")
                check_eq(len(chunk), ccur.rowcount, "multi-row INSERT row count")
            n = conn.execute("SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM payments)").fetchone()
            check_eq((len(customers), len(payments)), n, f"rows loaded ({dsn.split()[1]})")
    print(f"ok - loaded {len(customers)} customers and {len(payments)} payments through the proxy "
          f"and into the plain copy")


# ---------------------------------------------------------------------------
# check: reads

def login_lookups(app):
    customers, _ = dataset()
    rng = random.Random(7)
    sample = rng.sample(customers, 12)
    q = (f"SELECT {', '.join(CUST_COLS)} FROM customers WHERE email = {{}}")
    n = 0
    for ph in ("%t", "%b"):
        for binary in (False, True):
            for prepare in (None, True):
                for c in sample[:4]:
                    rows = app.both(f"login {ph} params, binary results={binary}, prepare={prepare}",
                                    q.format(ph), [c["email"]], binary=binary, prepare=prepare)
                    check_eq(1, len(rows), "login finds exactly one row")
                    check_eq(c["email"], rows[0][1], "login: decrypted email")
                    check_eq(c["full_name"], rows[0][2], "login: decrypted full_name")
                    check_eq(c["address"], rows[0][5], "login: decrypted address (jsonb)")
                    n += 1
    # SELECT * (columns resolved through RowDescription), unknown email, a NULL column
    for c in sample[4:]:
        app.both("login SELECT *", "SELECT * FROM customers WHERE email = %s", [c["email"]])
    app.both("login: unknown email", "SELECT * FROM customers WHERE email = %s",
             [UNKNOWN_EMAIL], min_rows=0, max_rows=0)
    # simple protocol with a literal (client-side binding)
    for c in sample[8:]:
        rows = app.both("login simple protocol literal", q.format("%s"), [c["email"]], client=True)
        check_eq(c["tax_id"], rows[0][4], "simple protocol: decrypted tax_id")
    # aliases and schema-qualified names
    c = sample[0]
    app.both("alias + schema-qualified", "SELECT x.email, x.phone FROM public.customers AS x "
             "WHERE x.email = %s AND x.plan_tier = %s", [c["email"], c["plan_tier"]])
    return [f"{n} lookups text/binary params x formats x prepared", "SELECT *", "simple protocol"]


def plan_and_sort(app):
    subs = []
    for plan in PLANS:
        for binary in (False, True):
            app.both(f"plan filter {plan}", "SELECT id, email, full_name, phone, address, created_at "
                     "FROM customers WHERE plan_tier = %s ORDER BY created_at, id", [plan],
                     binary=binary, min_rows=20)
    subs.append("plan_tier filter")
    app.both("sort by created_at", "SELECT email, full_name, created_at FROM customers "
             "ORDER BY created_at DESC, id LIMIT 50", min_rows=50)
    for binary in (False, True):
        app.both("whole customers table", "SELECT * FROM customers ORDER BY id", binary=binary,
                 min_rows=N_CUSTOMERS)
        app.both("whole payments table", "SELECT * FROM payments ORDER BY id", binary=binary,
                 min_rows=N_PAYMENTS)
    subs.append("ORDER BY created_at; whole tables text+binary")
    app.both("IS NULL", "SELECT count(*) FILTER (WHERE phone IS NULL), count(*) FILTER (WHERE "
             "address IS NOT NULL), count(*) FILTER (WHERE tax_id IS NULL) FROM customers")
    app.both("IN list", "SELECT id, email FROM customers WHERE email IN (%s, %s, %s) ORDER BY id",
             [c["email"] for c in dataset()[0][3:6]], min_rows=3)
    app.both("<> and plain filter", "SELECT id FROM customers WHERE email <> %s AND "
             "plan_tier = 'starter' ORDER BY id", [dataset()[0][0]["email"]], min_rows=10)
    app.both("NOT IN + IS NOT NULL", "SELECT id FROM customers WHERE email NOT IN (%s, %s) AND "
             "phone IS NOT NULL ORDER BY id", [dataset()[0][1]["email"], dataset()[0][2]["email"]],
             min_rows=100)
    subs.append("IS NULL, IN, <>, NOT IN")
    return subs


def paid_on_ranges(app):
    q = ("SELECT id, customer_email, card_number, amount, paid_on FROM payments "
         "WHERE paid_on BETWEEN {} AND {} ORDER BY paid_on, id")
    ranges = [(dt.date(2024, 3, 1), dt.date(2024, 3, 31)), (dt.date(2024, 12, 1), dt.date(2025, 1, 1)),
              (dt.date(1999, 12, 31), dt.date(2000, 1, 1)), (dt.date(1900, 1, 1), dt.date(2024, 1, 15))]
    for lo, hi in ranges:
        for ph in ("%t", "%b"):
            for binary in (False, True):
                app.both(f"paid_on BETWEEN {lo} AND {hi} ({ph}, binary={binary})", q.format(ph, ph),
                         [lo, hi], binary=binary, prepare=True, min_rows=2)
        app.both(f"paid_on BETWEEN literals {lo}..{hi}", q.format("%s", "%s"), [lo, hi], client=True,
                 min_rows=2)
    app.both("BETWEEN string literals", "SELECT id, paid_on FROM payments WHERE paid_on BETWEEN "
             "'2024-06-01' AND '2024-06-30' ORDER BY paid_on, id", client=True, min_rows=10)
    app.both("NOT BETWEEN", "SELECT id FROM payments WHERE paid_on NOT BETWEEN %s AND %s ORDER BY id",
             [dt.date(2024, 2, 1), dt.date(2024, 11, 30)], min_rows=50)
    for op in ("<", "<=", ">", ">="):
        app.both(f"paid_on {op}", f"SELECT id, paid_on FROM payments WHERE paid_on {op} %s "
                 "ORDER BY paid_on DESC, id LIMIT 40", [dt.date(2024, 7, 1)], min_rows=40)
    app.both("ORDER BY paid_on (NULLs last)", "SELECT id, paid_on FROM payments ORDER BY paid_on, id",
             min_rows=N_PAYMENTS)
    app.both("ORDER BY paid_on DESC NULLS LAST", "SELECT id, paid_on, amount FROM payments "
             "ORDER BY paid_on DESC NULLS LAST, id LIMIT 100", binary=True, min_rows=100)
    app.both("ORDER BY paid_on LIMIT 1 (the MIN idiom)", "SELECT paid_on FROM payments WHERE "
             "paid_on IS NOT NULL ORDER BY paid_on LIMIT 1", min_rows=1)
    app.both("paid_on = date", "SELECT id FROM payments WHERE paid_on = %s ORDER BY id",
             [dt.date(2000, 1, 1)], min_rows=1)
    return [f"{len(ranges)} BETWEEN ranges x params/literals", "<, <=, >, >=", "ORDER BY paid_on"]


def group_and_join(app):
    subs = []
    rows = app.both("GROUP BY customer_email", "SELECT customer_email, count(*), sum(amount) "
                    "FROM payments GROUP BY customer_email", unordered=True, min_rows=50)
    check(max(r[1] for r in rows) >= 5, "GROUP BY: expected some customers with many payments")
    app.both("GROUP BY ... HAVING", "SELECT customer_email, count(*) FROM payments "
             "GROUP BY customer_email HAVING count(*) >= 5", unordered=True, min_rows=3)
    app.both("GROUP BY ... ORDER BY count", "SELECT customer_email, count(*) AS n FROM payments "
             "GROUP BY customer_email ORDER BY n DESC, min(id) LIMIT 10", min_rows=10)
    app.both("DISTINCT", "SELECT DISTINCT customer_email FROM payments", unordered=True, min_rows=50)
    app.both("count(DISTINCT)", "SELECT count(DISTINCT customer_email) FROM payments")
    app.both("GROUP BY email on customers", "SELECT email, count(*) FROM customers GROUP BY email "
             "HAVING count(*) > 1", min_rows=0, max_rows=0)
    subs.append("GROUP BY / HAVING / DISTINCT / count(DISTINCT)")
    app.both("JOIN on email", "SELECT c.email, c.full_name, c.plan_tier, p.id, p.card_number, "
             "p.amount, p.paid_on FROM payments p JOIN customers c ON c.email = p.customer_email "
             "WHERE c.plan_tier = 'enterprise' ORDER BY p.paid_on, p.id", min_rows=50)
    app.both("JOIN on email, binary", "SELECT c.*, p.* FROM customers c JOIN payments p "
             "ON p.customer_email = c.email ORDER BY p.id", binary=True, min_rows=N_PAYMENTS - 30)
    app.both("LEFT JOIN count per customer", "SELECT c.id, c.email, count(p.id) FROM customers c "
             "LEFT JOIN payments p ON p.customer_email = c.email GROUP BY c.id, c.email ORDER BY c.id",
             min_rows=N_CUSTOMERS)
    app.both("guest payments (no customer)", "SELECT p.id, p.customer_email FROM payments p "
             "LEFT JOIN customers c ON c.email = p.customer_email WHERE c.id IS NULL ORDER BY p.id",
             min_rows=5)
    app.both("JOIN ... USING-free, filter on payment email", "SELECT c.full_name, p.amount FROM "
             "customers c, payments p WHERE c.email = p.customer_email AND p.customer_email = %s "
             "ORDER BY p.id", [dataset()[1][0]["customer_email"]], min_rows=1)
    subs.append("JOIN / LEFT JOIN / implicit join")
    app.both("IN (subquery)", "SELECT id, email FROM customers WHERE email IN (SELECT "
             "customer_email FROM payments WHERE amount > 900) ORDER BY id", min_rows=5)
    app.both("EXISTS", "SELECT c.id FROM customers c WHERE NOT EXISTS (SELECT 1 FROM payments p "
             "WHERE p.customer_email = c.email) ORDER BY c.id", min_rows=0)
    app.both("CTE with parameter", "WITH big AS (SELECT customer_email, amount, id FROM payments "
             "WHERE amount > %s) SELECT c.full_name, c.email, b.amount FROM big b JOIN customers c "
             "ON c.email = b.customer_email ORDER BY b.amount, b.id", [Decimal("950")], min_rows=5)
    app.both("derived table", "SELECT t.email, t.phone FROM (SELECT email, phone, created_at FROM "
             "customers WHERE plan_tier = %s) t ORDER BY t.created_at LIMIT 5", ["business"],
             min_rows=5)
    subs.append("subquery / EXISTS / CTE / derived table")
    return subs


def pipeline(app):
    customers, _ = dataset()
    res = {}
    for name, conn in (("proxy", app.P), ("plain", app.D)):
        out = []
        with conn.pipeline():
            curs = []
            for c in customers[20:26]:
                cur = conn.cursor()
                cur.execute("SELECT email, full_name, address FROM customers WHERE email = %s",
                            [c["email"]])
                curs.append(cur)
            ins = conn.cursor()
            ins.execute("INSERT INTO payments (id, customer_email, card_number, amount, paid_on) "
                        "VALUES (%s, %s, %s, %s, %s) RETURNING id, customer_email, card_number, paid_on",
                        [5001, customers[20]["email"], PIPE_CARD, Decimal("12.34"), dt.date(2024, 5, 5)])
            curs.append(ins)
            conn.execute("SELECT 1")
        for cur in curs:
            out.append(cur.fetchall())
        res[name] = out
    check_eq(res["plain"], res["proxy"], "pipelined protected statements")
    check_eq(PIPE_CARD, res["proxy"][-1][0][2], "pipelined INSERT ... RETURNING decrypted")


def describe(app):
    """ParameterDescription and RowDescription of a prepared statement."""
    q = (b"SELECT email, full_name, address, paid_on, amount FROM customers c JOIN payments p "
         b"ON p.customer_email = c.email WHERE c.email = $1 AND p.paid_on >= $2 AND c.plan_tier = $3")
    got = {}
    for name, conn in (("proxy", app.P), ("plain", app.D)):
        pg = conn.pgconn
        r = pg.prepare(b"phx_describe", q)
        check_eq(pq.ExecStatus.COMMAND_OK, r.status, f"{name}: Parse")
        r = pg.describe_prepared(b"phx_describe")
        check_eq(pq.ExecStatus.COMMAND_OK, r.status, f"{name}: Describe statement")
        got[name] = ([r.param_type(i) for i in range(r.nparams)],
                     [(r.fname(i), r.ftype(i)) for i in range(r.nfields)])
        pg.exec_(b"DEALLOCATE phx_describe")
    check_eq([25, 1082, 25], got["plain"][0], "plain: parameter types")
    check_eq(got["plain"], got["proxy"], "ParameterDescription + RowDescription vs plain")
    # insert: all protected parameter types
    cols = ", ".join(CUST_COLS)
    q = f"INSERT INTO customers ({cols}) VALUES ({', '.join(f'${i + 1}' for i in range(len(CUST_COLS)))})"
    types = {}
    for name, conn in (("proxy", app.P), ("plain", app.D)):
        pg = conn.pgconn
        pg.prepare(b"phx_describe_ins", q.encode())
        r = pg.describe_prepared(b"phx_describe_ins")
        types[name] = [r.param_type(i) for i in range(r.nparams)]
        pg.exec_(b"DEALLOCATE phx_describe_ins")
    check_eq(types["plain"], types["proxy"], "INSERT parameter types vs plain")
    return [f"params {got['proxy'][0]}", f"insert params {types['proxy']}"]


# ---------------------------------------------------------------------------
# check: writes (the same statements on both sides)

def mutations(app):
    customers, payments = dataset()
    subs = []
    # UPDATE ... SET phone, extended protocol, RETURNING
    c = customers[30]
    app.both("UPDATE SET phone (params) RETURNING", "UPDATE customers SET phone = %s WHERE "
             "email = %s RETURNING id, email, phone", [NEW_PHONE_EXT, c["email"]], prepare=True)
    app.both("after UPDATE", "SELECT phone FROM customers WHERE email = %s", [c["email"]])
    # simple protocol literals; and a NULL
    c2 = customers[31]
    app.both("UPDATE SET phone (literals)", "UPDATE customers SET phone = %s, tax_id = NULL WHERE "
             "email = %s", [NEW_PHONE_SIMPLE, c2["email"]], client=True)
    rows = app.both("after UPDATE (literals)", "SELECT phone, tax_id FROM customers WHERE email = %s",
                    [c2["email"]])
    check_eq((NEW_PHONE_SIMPLE, None), rows[0], "UPDATE wrote the phone and NULL")
    # UPDATE by a plain predicate touching many rows, setting a protected column
    app.both("UPDATE many rows", "UPDATE customers SET tax_id = %s WHERE plan_tier = 'starter' AND "
             "country_code = 'XX'", [NEVER_WRITTEN], min_rows=0)
    subs.append("UPDATE SET phone (params, literals, RETURNING)")

    # DELETE WHERE email =
    victim = customers[50]
    app.both("DELETE payments of a customer", "DELETE FROM payments WHERE customer_email = %s "
             "RETURNING id, card_number, paid_on", [victim["email"]], min_rows=0)
    rows = app.both("DELETE customer RETURNING *", "DELETE FROM customers WHERE email = %s "
                    "RETURNING *", [victim["email"]])
    check_eq(victim["full_name"], rows[0][2], "DELETE ... RETURNING decrypted")
    app.both("DELETE with a literal", "DELETE FROM customers WHERE email = %s", [customers[51]["email"]],
             client=True)
    app.both("gone", "SELECT count(*) FROM customers WHERE email IN (%s, %s)",
             [victim["email"], customers[51]["email"]])
    subs.append("DELETE WHERE email = (params, literals, RETURNING *)")

    # INSERT ... ON CONFLICT
    cols = ", ".join(CUST_COLS)
    ph = ", ".join(["%s"] * len(CUST_COLS))
    u = UPSERT_NEW
    rows = app.both("INSERT ON CONFLICT DO NOTHING (new row)", f"INSERT INTO customers ({cols}) "
                    f"VALUES ({ph}) ON CONFLICT (email) DO NOTHING RETURNING id, email, full_name",
                    cust_params(u))
    check_eq(u["full_name"], rows[0][2], "upsert inserted")
    u2 = dict(u, id=uuid.UUID("6f1a3c55-0000-4000-8000-00000000a002"), full_name=UPSERT_NAME,
              phone=UPSERT_PHONE)
    rows = app.both("INSERT ON CONFLICT (email) DO UPDATE", f"INSERT INTO customers ({cols}) "
                    f"VALUES ({ph}) ON CONFLICT (email) DO UPDATE SET full_name = EXCLUDED.full_name, "
                    "phone = EXCLUDED.phone RETURNING id, email, full_name, phone", cust_params(u2))
    check_eq((u["id"], u["email"], UPSERT_NAME, UPSERT_PHONE), rows[0], "upsert updated the row")
    app.both("INSERT ON CONFLICT DO NOTHING (conflict)", f"INSERT INTO customers ({cols}) VALUES "
             f"({ph}) ON CONFLICT (email) DO NOTHING RETURNING id", cust_params(u2), min_rows=0,
             max_rows=0)
    app.both("INSERT ON CONFLICT literals", f"INSERT INTO customers ({cols}) VALUES ({ph}) "
             "ON CONFLICT (id) DO UPDATE SET phone = EXCLUDED.phone RETURNING phone",
             cust_params(dict(u, phone=UPSERT_PHONE)), client=True)
    try:
        app.P.execute(f"INSERT INTO customers ({cols}) VALUES ({ph})", cust_params(u2))
        raise CheckFailed("duplicate email accepted through the proxy")
    except errors.UniqueViolation as e:
        check("Yannick" not in str(e) and u["email"] not in str(e),
              f"unique violation message shows plaintext: {e}")
    subs.append("ON CONFLICT DO NOTHING / DO UPDATE EXCLUDED; unique violation on email")

    # INSERT ... RETURNING (multi-row, extended) and simple protocol
    rows = app.both("INSERT multi-row RETURNING *", "INSERT INTO payments (id, customer_email, "
                    "card_number, amount, paid_on) VALUES (%s, %s, %s, %s, %s), (%s, %s, %s, %s, %s) "
                    "RETURNING *", [5002, customers[0]["email"], RET_CARDS[0], Decimal("1.00"),
                                    dt.date(2024, 2, 29), 5003, customers[1]["email"], RET_CARDS[1],
                                    Decimal("2.50"), None], binary=True)
    check_eq([RET_CARDS[0], RET_CARDS[1]], [r[2] for r in rows], "RETURNING decrypted cards")
    app.both("INSERT literals RETURNING", "INSERT INTO payments (id, customer_email, card_number, "
             "amount, paid_on) VALUES (%s, %s, %s, %s, %s) RETURNING customer_email, card_number, "
             "paid_on", [5004, customers[2]["email"], SIMPLE_CARD, Decimal("3.33"),
                         dt.date(2024, 8, 15)], client=True)
    # INSERT without a column list, as the first statement of a new session
    sql = "INSERT INTO payments VALUES (%s, %s, %s, %s, %s) RETURNING *"
    vals = [5005, customers[3]["email"], NOLIST_CARD, Decimal("5.55"), dt.date(2024, 9, 9)]
    with connect(app.proxy_dsn) as fresh:
        got = fetch(fresh, sql, vals, client=True)
    want = fetch(app.D, sql, vals, client=True)
    check_eq(want, got, "INSERT without a column list, first statement of a session")
    # named prepared statement reused (protocol level)
    for k in range(6):
        app.both("prepared UPDATE reused", "UPDATE payments SET card_number = %s WHERE id = %s "
                 "RETURNING id, card_number", [payments[k + 100]["card_number"], 100 + k + 1],
                 prepare=True, min_rows=1)
    subs.append("INSERT ... RETURNING (extended, binary, literals); INSERT without a column list; "
                "prepared statement reused")

    # copy protected values between columns of one key domain (no decryption upstream)
    app.both("INSERT ... SELECT same key domain", "INSERT INTO customers_import (id, email, full_name, "
             "phone, tax_id, address, plan_tier, created_at, country_code) SELECT id, email, full_name, "
             "phone, tax_id, address, plan_tier, created_at, country_code FROM customers "
             "WHERE plan_tier = 'business'", min_rows=0)
    app.both("read the copied rows", "SELECT * FROM customers_import ORDER BY id", min_rows=20)
    app.both("JOIN across tables of one key domain", "SELECT i.id, c.full_name FROM customers_import i "
             "JOIN customers c ON c.email = i.email ORDER BY i.id", min_rows=20)
    for conn in (app.P, app.D):
        conn.execute("TRUNCATE customers_import")
    subs.append("INSERT ... SELECT within a key domain")

    # transaction with a refusal in the middle: the transaction is aborted, as by a server error
    for conn in (app.P, app.D):
        conn.autocommit = False
    try:
        for name, conn in (("proxy", app.P), ("plain", app.D)):
            conn.execute("UPDATE customers SET phone = %s WHERE email = %s",
                         [ROLLED_BACK_PHONE, customers[60]["email"]])
            if name == "proxy":
                try:
                    conn.execute(marked("SELECT id FROM customers WHERE email LIKE 'zq-refused-tx-marker%'"))
                    raise CheckFailed("LIKE inside a transaction was not refused")
                except errors.FeatureNotSupported:
                    pass
                try:
                    conn.execute("SELECT 1")
                    raise CheckFailed("transaction not aborted after the refusal")
                except errors.InFailedSqlTransaction:
                    pass
            conn.rollback()
    finally:
        for conn in (app.P, app.D):
            conn.autocommit = True
    app.both("rolled back", "SELECT phone FROM customers WHERE email = %s", [customers[60]["email"]])
    subs.append("refusal inside a transaction aborts it; ROLLBACK")

    # final state identical
    app.both("customers after mutations", "SELECT * FROM customers ORDER BY id", min_rows=N_CUSTOMERS - 1)
    app.both("payments after mutations", "SELECT * FROM payments ORDER BY id", min_rows=N_PAYMENTS - 10)
    return subs


def accounts_numeric(app):
    """accounts: numeric(12,2) randomized and int8 ope round trips."""
    for conn in (app.P, app.D):
        cur = conn.cursor()
        cur.executemany("INSERT INTO accounts (id, owner_email, balance, credit_limit) "
                        "VALUES (%s, %s, %s, %s)", ACCOUNTS)
    app.both("accounts", "SELECT * FROM accounts ORDER BY id", min_rows=5)
    app.both("accounts binary", "SELECT * FROM accounts ORDER BY id", binary=True, min_rows=5)
    app.both("ORDER BY credit_limit (int8 ope, negatives)", "SELECT id, credit_limit FROM accounts "
             "ORDER BY credit_limit", min_rows=5)
    app.both("credit_limit BETWEEN", "SELECT id FROM accounts WHERE credit_limit BETWEEN %s AND %s "
             "ORDER BY id", [-150, 5000], min_rows=3, max_rows=3)
    rows = app.both("numeric scale kept", "SELECT balance FROM accounts WHERE id = 3")
    check_eq("0.00", str(rows[0][0]), "numeric(12,2) zero reads back as 0.00")


# ---------------------------------------------------------------------------
# check: refusals

REFUSALS = [
    # (label, sql, params, [fragments the message must contain])
    ("LIKE", "SELECT id FROM customers WHERE email LIKE '%zq-refused-like-marker%'", None,
     ["customers.email", "deterministic", "LIKE"]),
    ("LIKE with a parameter", "SELECT id FROM customers WHERE email LIKE %s",
     ["%zq-refused-param-like-marker%"], ["customers.email", "deterministic", "LIKE"]),
    ("ILIKE", "SELECT id FROM customers WHERE full_name ILIKE 'zq-refused-ilike-marker%'", None,
     ["customers.full_name", "randomized", "ILIKE"]),
    ("NOT LIKE on payments", "SELECT id FROM payments WHERE card_number NOT LIKE '4%'", None,
     ["payments.card_number", "randomized", "LIKE"]),
    ("regex ~", "SELECT id FROM customers WHERE email ~ 'zq-refused-regex-marker'", None,
     ["customers.email", "deterministic", "regular expression"]),
    ("regex ~*", "SELECT id FROM customers WHERE phone ~* '^\\+49'", None,
     ["customers.phone", "randomized", "regular expression"]),
    ("SIMILAR TO", "SELECT id FROM customers WHERE email SIMILAR TO 'zq-refused-similar-marker%'",
     None, ["customers.email", "deterministic", "SIMILAR TO"]),
    ("full-text to_tsvector", "SELECT id FROM customers WHERE to_tsvector('simple', full_name) @@ "
     "to_tsquery('simple', 'zqrefusedftsmarker')", None,
     ["customers.full_name", "randomized", "to_tsvector"]),
    ("full-text @@", "SELECT id FROM customers WHERE full_name @@ 'zqrefusedftsmarker'", None,
     ["customers.full_name", "randomized", "@@"]),
    ("function lower()", "SELECT lower(email) FROM customers", None,
     ["customers.email", "deterministic", "lower"]),
    ("function upper() in WHERE", "SELECT id FROM customers WHERE upper(email) = "
     "'ZQ-REFUSED-UPPER-MARKER'", None, ["customers.email", "deterministic", "upper"]),
    ("function length()", "SELECT length(tax_id) FROM customers", None,
     ["customers.tax_id", "randomized", "length"]),
    ("jsonb operator", "SELECT address->>'city' FROM customers", None,
     ["customers.address", "randomized", "->>"]),
    ("cast ::varchar", "SELECT email::varchar(5) FROM customers", None,
     ["customers.email", "deterministic", "cast"]),
    ("cast in WHERE", "SELECT id FROM payments WHERE paid_on::text = 'zq-refused-cast-marker'", None,
     ["payments.paid_on", "ope", "cast"]),
    ("CAST()", "SELECT CAST(tax_id AS int) FROM customers", None,
     ["customers.tax_id", "randomized", "cast"]),
    ("arithmetic +", "SELECT paid_on + 1 FROM payments", None, ["payments.paid_on", "ope", "+"]),
    ("arithmetic in WHERE", "SELECT id FROM payments WHERE paid_on - 7 > '2024-01-01'", None,
     ["payments.paid_on", "ope", "-"]),
    ("concatenation", "SELECT email || '!' FROM customers", None,
     ["customers.email", "deterministic", "||"]),
    ("SUM", "SELECT sum(balance) FROM accounts", None, ["accounts.balance", "randomized", "SUM"]),
    ("AVG", "SELECT avg(credit_limit) FROM accounts", None, ["accounts.credit_limit", "ope", "AVG"]),
    ("SUM over ope date", "SELECT sum(paid_on) FROM payments", None, ["payments.paid_on", "ope", "SUM"]),
    ("range > on deterministic", "SELECT id FROM customers WHERE email > 'zq-refused-range-marker'",
     None, ["customers.email", "deterministic", ">"]),
    ("range < with a parameter", "SELECT id FROM customers WHERE email < %s", ["m"],
     ["customers.email", "deterministic", "<"]),
    ("BETWEEN on randomized", "SELECT id FROM customers WHERE full_name BETWEEN "
     "'zq-refused-between-marker' AND 'z'", None, ["customers.full_name", "randomized", "BETWEEN"]),
    ("ORDER BY deterministic", "SELECT id FROM customers ORDER BY email", None,
     ["customers.email", "deterministic", "ORDER BY"]),
    ("ORDER BY randomized", "SELECT id FROM payments ORDER BY card_number DESC", None,
     ["payments.card_number", "randomized", "ORDER BY"]),
    ("= on randomized", "SELECT id FROM customers WHERE phone = 'zq-refused-eq-randomized-marker'",
     None, ["customers.phone", "randomized", "="]),
    ("GROUP BY randomized", "SELECT full_name, count(*) FROM customers GROUP BY full_name", None,
     ["customers.full_name", "randomized", "GROUP BY"]),
    ("DISTINCT randomized", "SELECT DISTINCT phone FROM customers", None,
     ["customers.phone", "randomized", "DISTINCT"]),
    ("different key domains (JOIN)", "SELECT a.id FROM accounts a JOIN customers c ON "
     "a.owner_email = c.email", None, ["accounts.owner_email", "customers.email", "deterministic",
                                       "key domain"]),
    ("different key domains (WHERE)", "SELECT a.id FROM accounts a, payments p WHERE "
     "p.customer_email = a.owner_email", None, ["accounts.owner_email", "payments.customer_email",
                                                "key domain"]),
    ("insert from a plaintext column", "INSERT INTO customers (id, email, plan_tier, created_at, "
     "country_code) SELECT gen_random_uuid(), plan_tier || id::text, plan_tier, created_at, "
     "country_code FROM customers", None, ["customers.email", "deterministic", "plaintext"]),
    ("insert plaintext column into randomized", "INSERT INTO customers_import (id, email, full_name, "
     "plan_tier, created_at, country_code) SELECT id, email, country_code, plan_tier, created_at, "
     "country_code FROM customers", None, ["customers_import.full_name", "randomized", "plaintext"]),
    ("update from a plaintext column", "UPDATE customers SET phone = country_code", None,
     ["customers.phone", "randomized", "plaintext"]),
    ("update from another key domain", "UPDATE customers SET phone = tax_id", None,
     ["customers.tax_id", "customers.phone", "randomized", "key domain"]),
    ("MIN on ope", "SELECT min(paid_on) FROM payments", None, ["payments.paid_on", "ope", "MIN"]),
    ("SQL-level PREPARE with protected parameter", "PREPARE by_email(text) AS SELECT id FROM "
     "customers WHERE email = $1", None, ["PREPARE", "protected"]),
    ("COPY (query)", "COPY (SELECT email FROM customers) TO STDOUT", None, ["COPY", "protected"]),
]

DDL_REFUSALS = [
    ("CREATE TABLE with DEFAULT on a protected column",
     "CREATE TABLE ddl_probe (id int PRIMARY KEY, secret text DEFAULT 'probe-default', det text)",
     ["ddl_probe.secret", "randomized", "DEFAULT"]),
    ("CREATE TABLE with CHECK on a protected column",
     "CREATE TABLE ddl_probe (id int PRIMARY KEY, secret text CHECK (secret <> ''), det text)",
     ["ddl_probe.secret", "randomized", "CHECK"]),
    ("CREATE TABLE with a table CHECK on a protected column",
     "CREATE TABLE ddl_probe (id int PRIMARY KEY, secret text, det text, CHECK (det <> secret))",
     ["ddl_probe.", "CHECK"]),
    ("CREATE TABLE with UNIQUE on a randomized column",
     "CREATE TABLE ddl_probe (id int PRIMARY KEY, secret text UNIQUE, det text)",
     ["ddl_probe.secret", "randomized", "UNIQUE"]),
    ("CREATE TABLE with a table UNIQUE on a randomized column",
     "CREATE TABLE ddl_probe (id int PRIMARY KEY, secret text, det text, UNIQUE (secret))",
     ["ddl_probe.secret", "randomized", "UNIQUE"]),
]


REFUSALS = [(label, marked(sql), [marked(p) for p in params] if params else params, frags)
            for label, sql, params, frags in REFUSALS]


def expect_refusal(conn, label, sql, params, frags, client=False):
    """client=False: extended protocol (a binary-results cursor always uses
    Parse/Bind/Execute, even without parameters); True: simple protocol
    with the parameters bound client-side as literals."""
    cur = psycopg.ClientCursor(conn) if client else conn.cursor(binary=True)
    try:
        cur.execute(sql, params)
    except psycopg.Error as e:
        check_eq("0A000", e.sqlstate, f"{label}: SQLSTATE (message: {e})")
        msg = e.diag.message_primary or ""
        for f in frags:
            check(f in msg, f"{label}: message does not name {f!r}: {msg!r}")
        check_eq("ERROR", e.diag.severity_nonlocalized, f"{label}: severity")
        return msg
    raise CheckFailed(f"{label}: not refused")


def refusals(app):
    conn = app.P
    n_before = conn.execute("SELECT count(*) FROM customers").fetchone()[0]
    subs = 0
    for label, sql, params, frags in REFUSALS:
        expect_refusal(conn, label, sql, params, frags)
        # the same connection keeps working, with a protected lookup
        n = conn.execute("SELECT count(*) FROM customers WHERE email IS NOT NULL").fetchone()[0]
        check_eq(n_before, n, f"{label}: connection usable afterwards")
        # the same statement in the simple protocol (literals)
        expect_refusal(conn, label + " (simple protocol)", sql, params, frags, client=True)
        check_eq(1, conn.execute("SELECT 1").fetchone()[0], f"{label}: usable after simple")
        subs += 2
    # refused inside a pipeline: the pipeline's error, then the connection works
    try:
        with conn.pipeline():
            conn.execute("SELECT count(*) FROM customers")
            conn.execute("SELECT id FROM customers WHERE email LIKE %s",
                         [marked("zq-refused-pipeline-marker%")])
            conn.execute("SELECT 2")
        raise CheckFailed("refusal inside a pipeline: no error")
    except errors.FeatureNotSupported as e:
        check("customers.email" in str(e), f"pipeline refusal message: {e}")
    check_eq(n_before, conn.execute("SELECT count(*) FROM customers").fetchone()[0],
             "usable after a refused pipeline")
    # the refusals changed nothing
    app.both("data unchanged by refusals", "SELECT * FROM customers ORDER BY id", min_rows=N_CUSTOMERS - 1)
    return [f"{subs} refusals (extended + simple protocol)", "pipeline"]


def ddl(app):
    subs = []
    for label, sql, frags in DDL_REFUSALS:
        expect_refusal(app.P, label, sql, None, frags)
        check_eq(1, app.P.execute("SELECT 1").fetchone()[0], f"{label}: usable afterwards")
    exists = app.E.execute("SELECT to_regclass('public.ddl_probe') IS NOT NULL").fetchone()[0]
    check_eq(False, exists, "no refused CREATE TABLE reached the database")
    subs.append(f"{len(DDL_REFUSALS)} CREATE TABLE refusals")
    create = ("CREATE TABLE ddl_probe (id int PRIMARY KEY, secret text NOT NULL, "
              "det text UNIQUE)")
    for conn in (app.P, app.D):
        conn.execute(create)
    expect_refusal(app.P, "ALTER TABLE ADD COLUMN with DEFAULT",
                   "ALTER TABLE ddl_probe ADD COLUMN extra text DEFAULT 'probe-default'", None,
                   ["ddl_probe.extra", "DEFAULT"])
    expect_refusal(app.P, "CREATE UNIQUE INDEX on a randomized column",
                   "CREATE UNIQUE INDEX ddl_probe_secret_idx ON ddl_probe (secret)", None,
                   ["ddl_probe.secret", "randomized", "UNIQUE"])
    for conn in (app.P, app.D):
        conn.execute("ALTER TABLE ddl_probe ADD COLUMN extra text")
        conn.execute("INSERT INTO ddl_probe (id, secret, det, extra) VALUES (%s, %s, %s, %s)",
                     PROBE_VALUES[0])
    subs.append("ALTER TABLE ADD COLUMN (DEFAULT refused)")
    app.both("ddl_probe read back", "SELECT * FROM ddl_probe")
    cols = app.E.execute("SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                         "WHERE table_name = 'ddl_probe' ORDER BY ordinal_position").fetchall()
    check_eq([("id", "integer", "NO"), ("secret", "bytea", "NO"), ("det", "bytea", "YES"),
              ("extra", "bytea", "YES")], cols, "ddl_probe as stored")
    uniq = app.E.execute("SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = "
                         "i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = "
                         "'ddl_probe'::regclass AND i.indisunique AND a.attname = 'det'").fetchone()[0]
    check_eq(1, uniq, "UNIQUE kept on the deterministic column")
    try:
        app.P.execute("INSERT INTO ddl_probe (id, secret, det) VALUES (2, %s, %s)",
                      [ANOTHER_SECRET, PROBE_VALUES[0][2]])
        raise CheckFailed("UNIQUE on a deterministic column not enforced")
    except errors.UniqueViolation:
        pass
    try:
        app.P.execute("INSERT INTO ddl_probe (id, secret) VALUES (3, NULL)")
        raise CheckFailed("NOT NULL on a protected column not enforced")
    except errors.NotNullViolation:
        pass
    subs.append("NOT NULL and UNIQUE kept and enforced")
    return subs


# ---------------------------------------------------------------------------
# check: what the encrypted database holds

PROTECTED = {
    "customers": {"email": 2, "full_name": 1, "phone": 1, "tax_id": 1, "address": 1},
    "payments": {"customer_email": 2, "card_number": 1, "paid_on": 3},
    "accounts": {"owner_email": 2, "balance": 1, "credit_limit": 3},
}
PLAIN_TYPES = {
    "customers": {"id": "uuid", "plan_tier": "text", "created_at": "timestamp with time zone",
                  "country_code": "text"},
    "payments": {"id": "bigint", "amount": "numeric"},
    "accounts": {"id": "integer"},
}


def stored(app):
    E = app.E
    subs = []
    for table, cols in PROTECTED.items():
        got = dict(E.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_schema = 'public' AND table_name = %s", [table]).fetchall())
        for col in cols:
            check_eq("bytea", got.get(col), f"{table}.{col} stored type")
        for col, typ in PLAIN_TYPES[table].items():
            check_eq(typ, got.get(col), f"{table}.{col} (plain) stored type")
    subs.append("protected columns are bytea, plain ones keep their types")

    # envelopes: version 1, the column's mode, one key id; sizes vs plaintext
    plain_rows = {r[0]: r for r in app.D.execute(
        "SELECT id, email, full_name, phone, tax_id, address::text FROM customers").fetchall()}
    enc_rows = E.execute("SELECT id, email, full_name, phone, tax_id, address FROM customers").fetchall()
    check_eq(len(plain_rows), len(enc_rows), "row count direct vs plain")
    key_ids = set()
    for row in enc_rows:
        prow = plain_rows[row[0]]
        for k, (col, mode) in enumerate(PROTECTED["customers"].items(), start=1):
            v, pv = row[k], prow[k]
            check_eq(pv is None, v is None, f"customers.{col}: NULL stays NULL")
            if v is None:
                continue
            v = bytes(v)
            check_eq(1, v[0], f"customers.{col}: envelope version")
            check_eq(mode, v[1], f"customers.{col}: envelope mode byte")
            key_ids.add(v[2:6])
            n = len(pv.encode())
            over = len(v) - n
            limit = 34 if mode == 1 else 23
            check(0 < over <= limit, f"customers.{col}: {over} bytes of overhead (limit {limit})")
            check(pv.encode() not in v, f"customers.{col}: plaintext inside the stored value")
    check(len(key_ids) >= 1, "key ids")
    subs.append(f"envelopes v1 with mode bytes; overhead <= 34 (randomized) / 23 (deterministic); "
                f"{len(key_ids)} key id(s)")
    ope = E.execute("SELECT DISTINCT octet_length(paid_on), get_byte(paid_on, 1) FROM payments "
                    "WHERE paid_on IS NOT NULL").fetchall()
    check_eq([(42, 3)], ope, "ope envelopes: 42 bytes, mode 3")

    # deterministic: one key domain gives equal ciphertext (joins work in the database itself)
    n_join = E.execute("SELECT count(*) FROM payments p JOIN customers c ON c.email = "
                       "p.customer_email").fetchone()[0]
    n_plain = app.D.execute("SELECT count(*) FROM payments p JOIN customers c ON c.email = "
                            "p.customer_email").fetchone()[0]
    check_eq(n_plain, n_join, "payments.customer_email = customers.email on the ciphertext")
    # randomized: equal plaintexts, different ciphertexts
    dup = app.D.execute("SELECT array_agg(id) FROM customers GROUP BY full_name HAVING count(*) > 1 "
                        "LIMIT 1").fetchone()[0]
    check(dup, "the data set has customers with the same full_name")
    names = E.execute("SELECT count(DISTINCT full_name), count(*) FROM customers WHERE id = ANY(%s)",
                      [dup]).fetchone()
    check_eq(names[1], names[0], "same full_name, distinct randomized ciphertexts")
    phones = E.execute("SELECT count(DISTINCT phone) FROM customers WHERE id = ANY(%s)",
                       [[c["id"] for c in dataset()[0] if c["phone"] == HOUSEHOLD_PHONE]]).fetchone()[0]
    check_eq(2, phones, "same phone, distinct randomized ciphertexts")
    subs.append("deterministic ciphertexts join; randomized ones differ for equal values")
    # ope: the database's own bytea order is the date order
    e_order = [r[0] for r in E.execute("SELECT id FROM payments ORDER BY paid_on, id").fetchall()]
    p_order = [r[0] for r in app.D.execute("SELECT id FROM payments ORDER BY paid_on, id").fetchall()]
    check_eq(p_order, e_order, "ope: ORDER BY the stored bytea gives the date order")
    subs.append("ope: bytea order = date order")
    # no stored value of any protected column is a plaintext of the data set
    everything = set(secrets())
    for table, cols in PROTECTED.items():
        for col in cols:
            for (v,) in E.execute(f"SELECT {col} FROM {table} WHERE {col} IS NOT NULL"):
                b = bytes(v)
                try:
                    s = b.decode()
                except UnicodeDecodeError:
                    continue
                check(s not in everything, f"{table}.{col} holds a plaintext")
    return subs


def tamper(app):
    """A ciphertext moved to another column fails to decrypt: an error, not garbage."""
    c = dataset()[0][5]
    E = app.E
    orig = E.execute("SELECT phone, full_name FROM customers WHERE id = %s", [c["id"]]).fetchone()
    check(orig[0] is not None and orig[1] is not None, "tamper target has phone and full_name")
    E.execute("UPDATE customers SET phone = full_name WHERE id = %s", [c["id"]])
    try:
        with connect(app.proxy_dsn) as conn:
            try:
                rows = conn.execute("SELECT phone FROM customers WHERE id = %s", [c["id"]]).fetchall()
                raise CheckFailed(f"a moved ciphertext decrypted to {short(rows)}")
            except psycopg.Error as e:
                check(c["full_name"] not in str(e), "decryption error shows the plaintext")
                detail = f"{e.sqlstate}: {e.diag.message_primary}"
        with connect(app.proxy_dsn) as conn:
            check_eq(1, conn.execute("SELECT 1").fetchone()[0], "a new connection works")
    finally:
        E.execute("UPDATE customers SET phone = %s WHERE id = %s", [orig[0], c["id"]])
    app.both("restored", "SELECT phone FROM customers WHERE id = %s", [c["id"]])
    return [detail]


def large_values(app):
    """Multi-megabyte protected values (the key stream beyond what the proxy
    caches per value): stored with parameters (text and binary results) and
    literals, read back exactly, 34 bytes of envelope each, then deleted."""
    rnd = random.Random(20261126)
    def text(n):
        return "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz ÄÖÜéß0123456789") for _ in range(n))
    big, big2 = cv(text(3_000_000)), cv(text(1_048_583))
    email = ce("large.values@example.test")
    cid = uuid.uuid5(uuid.NAMESPACE_URL, "phantom-large-values")
    try:
        app.both("INSERT a 3 MB full_name (parameters)",
                 "INSERT INTO customers (id, email, full_name, plan_tier, created_at, country_code) "
                 "VALUES (%s, %s, %s, 'pro', '2024-03-01T00:00:00Z', 'DE') RETURNING id",
                 [cid, email, big], prepare=True)
        for binary in (False, True):
            rows = app.both(f"read it back ({'binary' if binary else 'text'})",
                            "SELECT full_name FROM customers WHERE email = %s", [email], binary=binary)
            check(rows[0][0] == big, "the 3 MB value read back differs")
        app.both("UPDATE to a 1 MB value (literals)",
                 "UPDATE customers SET full_name = %s WHERE email = %s", [big2, email],
                 client=True, min_rows=0)
        rows = app.both("read the 1 MB value back", "SELECT full_name FROM customers WHERE email = %s",
                        [email])
        check(rows[0][0] == big2, "the 1 MB value read back differs")
        if app.E:
            n = app.E.execute("SELECT octet_length(full_name) FROM customers WHERE id = %s",
                              [cid]).fetchone()[0]
            check_eq(len(big2.encode()) + 34, n, "stored envelope of the 1 MB value (bytes)")
    finally:
        app.both("DELETE it", "DELETE FROM customers WHERE email = %s", [email], min_rows=0)
    return ["3 MB and 1 MB values, parameters and literals, text and binary"]


def stale_catalog(app):
    """Another session re-creates and alters a protected table: this session
    (whose catalog map was loaded before) must return plaintext or an error,
    never the stored ciphertext (SPEC §4: catalog refreshed after DDL; a value
    that cannot be decrypted yields an error, never garbage)."""
    a = connect(app.proxy_dsn)
    b = connect(app.proxy_dsn)
    subs = []
    try:
        want = [(1, PROBE_VALUES[0][1], PROBE_VALUES[0][2], PROBE_VALUES[0][3])]
        check_eq(want, a.execute("SELECT id, secret, det, extra FROM ddl_probe ORDER BY id").fetchall(),
                 "session A reads ddl_probe")

        def a_reads(what, expected):
            """A's SELECT *: the expected rows, or an error then the expected rows."""
            errs = []
            for _attempt in range(2):
                try:
                    cur = a.execute("SELECT * FROM ddl_probe ORDER BY id")
                    rows = cur.fetchall()
                except psycopg.Error as e:
                    errs.append(f"{e.sqlstate}")
                    continue
                for r in rows:
                    for v in r:
                        if isinstance(v, (bytes, memoryview)):
                            check(False,
                                  f"{what}: session A received stored ciphertext {short(bytes(v), 40)} "
                                  f"(RowDescription {[(d.name, d.type_code) for d in cur.description]})")
                check_eq(expected, rows, f"{what}: session A's rows")
                return f"{what}: " + (f"error {errs[0]} then plaintext" if errs else "plaintext")
            raise CheckFailed(f"{what}: session A failed twice: {errs}")

        # B re-creates the table with another column order (new OID, new attnums)
        b.execute("DROP TABLE ddl_probe")
        b.execute("CREATE TABLE ddl_probe (id int PRIMARY KEY, extra text, det text, secret text NOT NULL)")
        b.execute("INSERT INTO ddl_probe (id, secret, det, extra) VALUES (%s, %s, %s, %s)", STALE_VALUES[0])
        v = STALE_VALUES[0]
        subs.append(a_reads("after DROP + CREATE in another session", [(v[0], v[3], v[2], v[1])]))
        # B drops and re-adds a protected column (same OID, new attnum)
        b.execute("ALTER TABLE ddl_probe DROP COLUMN extra")
        b.execute("ALTER TABLE ddl_probe ADD COLUMN extra text")
        b.execute("UPDATE ddl_probe SET extra = %s WHERE id = %s", [v[3], v[0]])
        b.execute("INSERT INTO ddl_probe (id, secret, det, extra) VALUES (%s, %s, %s, %s)", STALE_VALUES[1])
        w = STALE_VALUES[1]
        subs.append(a_reads("after DROP/ADD COLUMN in another session",
                            [(v[0], v[2], v[1], v[3]), (w[0], w[2], w[1], w[3])]))
    finally:
        a.close()
        b.close()
    return subs


INVALID_VALUES = [
    # (label, sql, params, client-side literals?)
    ("invalid json literal into jsonb", f"UPDATE customers SET address = '{cv('not json')}' WHERE id = %s", None, True),
    ("invalid json parameter into jsonb", "UPDATE customers SET address = %s WHERE id = %s", [cv("{bad")], False),
    ("invalid numeric literal", f"UPDATE accounts SET balance = '{cv('abc')}' WHERE id = 1", None, True),
    ("numeric(12,2) overflow (literal)", "UPDATE accounts SET balance = 12345678901.5 WHERE id = 1", None, True),
    ("numeric(12,2) overflow (parameter)", "UPDATE accounts SET balance = %s WHERE id = 1", ["12345678901.5"], False),
    ("int8 overflow (literal)", "UPDATE accounts SET credit_limit = 9223372036854775808 WHERE id = 1", None, True),
    ("int8 overflow (parameter)", "UPDATE accounts SET credit_limit = %s WHERE id = 1", ["9223372036854775808"], False),
    ("impossible date (parameter)", "UPDATE payments SET paid_on = %s WHERE id = 2", ["2024-02-30"], False),
    ("impossible date (literal)", "UPDATE payments SET paid_on = '2024-02-30' WHERE id = 2", None, True),
    ("impossible date in WHERE (literal)", "SELECT id FROM payments WHERE paid_on = '2024-13-01'", None, True),
    ("two-digit year (parameter)", "UPDATE payments SET paid_on = %s WHERE id = 2", ["24-02-03"], False),
    ("numeric(12,2) rounding (literal)", "UPDATE accounts SET balance = 1.005 WHERE id = 3", None, True),
    ("numeric(12,2) rounding (parameter)", "UPDATE accounts SET balance = %s WHERE id = 3",
     [Decimal("2.675")], False),
]


def invalid_values(app):
    """Values PostgreSQL rejects (or rounds) for the logical type: through the
    proxy the same statement must fail with a data exception (SQLSTATE class
    22, not an internal error) or store what the plain copy stores."""
    cid = dataset()[0][0]["id"]
    problems = []
    n = 0
    try:
        n = _invalid_cases(app, cid, problems)
    finally:
        # put both sides back in the same, valid state for the checks that follow
        c0 = dataset()[0][0]
        a1, a3 = ACCOUNTS[0], ACCOUNTS[2]
        for conn in (app.P, app.D):
            conn.execute("UPDATE customers SET address = %s WHERE id = %s",
                         [Jsonb(c0["address"]) if c0["address"] else None, cid])
            conn.execute("UPDATE accounts SET balance = %s, credit_limit = %s WHERE id = %s",
                         [a1[2], a1[3], a1[0]])
            conn.execute("UPDATE accounts SET balance = %s, credit_limit = %s WHERE id = %s",
                         [a3[2], a3[3], a3[0]])
            conn.execute("UPDATE payments SET paid_on = %s WHERE id = 2", [dataset()[1][1]["paid_on"]])
    if problems:
        raise CheckFailed(f"{len(problems)} problems in {n} cases: " + " | ".join(problems))
    return [f"{n} cases"]


def _invalid_cases(app, cid, problems):
    n = 0
    for label, sql, params, literal in INVALID_VALUES:
        if params is None and "%s" in sql:
            args = [cid]
        elif params is not None and "id = %s" in sql:
            args = params + [cid]
        else:
            args = params
        outcome = {}
        for name, conn in (("proxy", app.P), ("plain", app.D)):
            cur = psycopg.ClientCursor(conn) if literal else conn.cursor()
            try:
                cur.execute(sql, args)
                outcome[name] = ("ok", None)
            except psycopg.Error as e:
                outcome[name] = ("error", e.sqlstate)
        n += 1
        p, d = outcome["proxy"], outcome["plain"]
        if d[0] == "error":
            if p[0] != "error":
                problems.append(f"{label}: accepted through the proxy, PostgreSQL rejects it ({d[1]})")
            elif not (p[1] or "").startswith("22"):
                problems.append(f"{label}: SQLSTATE {p[1]} through the proxy, {d[1]} on the plain "
                                "copy (a data exception, class 22, is expected)")
        elif p[0] == "error":
            problems.append(f"{label}: refused through the proxy ({p[1]}), accepted by PostgreSQL")
    # whatever was accepted, both sides must hold the same values
    for q in ("SELECT id, balance FROM accounts WHERE id = 1", "SELECT id, credit_limit FROM accounts",
              "SELECT id, balance FROM accounts WHERE id = 3", "SELECT id, paid_on FROM payments WHERE id = 2",
              "SELECT id, address FROM customers ORDER BY id"):
        try:
            app.both(q, q)
        except CheckFailed as e:
            problems.append(f"stored values differ: {e}")
        except (psycopg.Error, ValueError) as e:  # e.g. invalid json handed to the driver
            problems.append(f"{q}: reading back through the proxy failed: {type(e).__name__}: {e}")
    return n


def concurrent_sessions(app):
    """Several sessions at once (each its own catalog and statement plans)."""
    import threading
    customers, _ = dataset()
    expected = {r[1]: r for r in fetch(app.D, f"SELECT {', '.join(CUST_COLS)} FROM customers")[1]}
    emails = sorted(expected)
    errors_ = []

    def worker(k):
        try:
            rng = random.Random(k)
            with connect(app.proxy_dsn) as conn:
                mine = emails[k]
                for i in range(40):
                    e = rng.choice(emails[N_THREADS:])  # rows nobody updates meanwhile
                    row = conn.execute(f"SELECT {', '.join(CUST_COLS)} FROM customers WHERE email = %s",
                                       [e], prepare=(i % 2 == 0)).fetchone()
                    if row != expected[e]:
                        errors_.append(f"session {k}: lookup {i} got {short(row, 120)}")
                        return
                    phone = concurrent_phone(k * 100 + i)
                    got = conn.execute("UPDATE customers SET phone = %s WHERE email = %s RETURNING phone",
                                       [phone, mine]).fetchone()
                    if got != (phone,):
                        errors_.append(f"session {k}: update {i} returned {got}")
                        return
        except Exception as ex:  # noqa: BLE001
            errors_.append(f"session {k}: {type(ex).__name__}: {ex}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    check(not errors_, "; ".join(errors_[:5]))
    # the same final phones on the plain copy, then the tables must agree again
    for k in range(N_THREADS):
        app.D.execute("UPDATE customers SET phone = %s WHERE email = %s",
                      [concurrent_phone(k * 100 + 39), emails[k]])
    app.both("after concurrent sessions", "SELECT * FROM customers ORDER BY id", min_rows=N_CUSTOMERS - 1)
    return [f"{N_THREADS} sessions x 40 lookups + updates"]


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["load", "check", "secrets"])
    ap.add_argument("--proxy")
    ap.add_argument("--plain")
    ap.add_argument("--enc-direct")
    a = ap.parse_args()
    if a.command == "secrets":
        for s in secrets():
            print(s)
        return 0
    if a.command == "load":
        load(a.proxy, a.plain)
        canary.record(*sorted(TOKENS))
        return 0
    app = App(a.proxy, a.plain, a.enc_direct)
    run("login lookups WHERE email = $1", login_lookups, app)
    run("plan filtering, sorting, IS NULL / IN / <>", plan_and_sort, app)
    run("paid_on ranges and ORDER BY paid_on (ope)", paid_on_ranges, app)
    run("GROUP BY, DISTINCT, JOINs on email, subqueries", group_and_join, app)
    run("ParameterDescription / RowDescription of a prepared statement", describe, app)
    run("pipeline of protected statements", pipeline, app)
    run("refused operations (0A000, table/column/mode/operation, connection usable)", refusals, app)
    run("DDL through the proxy", ddl, app)
    run("accounts: numeric(12,2) randomized, int8 ope", accounts_numeric, app)
    run("mutations: UPDATE, DELETE, ON CONFLICT, RETURNING, prepared", mutations, app)
    run("concurrent sessions", concurrent_sessions, app)
    run("the encrypted database holds only envelopes", stored, app)
    run("a ciphertext moved to another column fails to decrypt", tamper, app)
    run("multi-megabyte protected values", large_values, app)
    run("DDL in another session: plaintext or an error, never ciphertext", stale_catalog, app)
    run("invalid values: rejected like PostgreSQL does (class 22) or stored alike", invalid_values, app)
    canary.record(*sorted(TOKENS))
    print(f"{PASSED} passed, {FAILED} failed", flush=True)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
