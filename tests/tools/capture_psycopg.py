#!/usr/bin/python3
"""capture_psycopg.py DSN — a short psycopg 3 session of the financial-SaaS
application, for fuzz/capture-corpus.sh to capture (expects the tables of
its psql session). Each step is its own connection so that every capture
file stays small: text and binary parameters, binary results, executemany,
prepared statements, a pipeline, COPY in and out (text and binary), an
error. Protected values hold the marker SECRET (see fuzz_conversation.c).
"""
import datetime as dt
import sys
import uuid
from decimal import Decimal

import psycopg


def customers(conn):
    rows = [(uuid.UUID(int=100 + i), "user%d.SECRET@example.com" % i, "Person %d SECRET" % i,
             "+1-555-01%02d" % i, "TAX-SECRET-%d" % i, "basic", "DE") for i in range(6)]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO customers (id, email, full_name, phone, tax_id, plan_tier, created_at, country_code)"
            " VALUES (%s, %s, %s, %s, %s, %s, now(), %s)", rows[:3])
        cur.executemany(
            "INSERT INTO customers (id, email, full_name, phone, tax_id, plan_tier, created_at, country_code)"
            " VALUES (%b, %b, %b, %b, %b, %b, now(), %b)", rows[3:])


def lookups(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT id, full_name FROM customers WHERE email = %s", ("user1.SECRET@example.com",))
        cur.fetchall()
        cur.execute("SELECT email, phone FROM customers WHERE email = %s",
                    ("user2.SECRET@example.com",), binary=True)
        cur.fetchall()
        for i in range(3):
            cur.execute("SELECT count(*) FROM payments WHERE customer_email = %s",
                        ("user%d.SECRET@example.com" % i,), prepare=True)
            cur.fetchone()
        cur.execute("UPDATE customers SET phone = %s WHERE email = %s RETURNING id",
                    ("+1-555-SECRET", "user3.SECRET@example.com"))
        cur.fetchall()


def payments(conn):
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO payments (id, customer_email, card_number, amount, paid_on) VALUES (%s, %s, %s, %s, %s)",
            [(500 + i, "user%d.SECRET@example.com" % (i % 6), "4111-SECRET-%04d" % i,
              Decimal("%d.25" % (10 + i)), dt.date(2024, 3, 1 + i)) for i in range(5)])
        cur.execute("SELECT id, paid_on, amount FROM payments WHERE paid_on BETWEEN %s AND %s ORDER BY paid_on",
                    (dt.date(2024, 3, 2), dt.date(2024, 3, 4)), binary=True)
        cur.fetchall()


def pipeline(conn):
    with conn.pipeline():
        with conn.cursor() as cur:
            cur.execute("SELECT email FROM customers WHERE email = %s", ("user4.SECRET@example.com",))
            cur.execute("SELECT card_number FROM payments WHERE customer_email = %s",
                        ("user4.SECRET@example.com",))


def copy(conn):
    with conn.cursor() as cur:
        with cur.copy("COPY payments (id, customer_email, card_number, paid_on) FROM STDIN") as cp:
            for i in range(4):
                cp.write_row((600 + i, "user%d.SECRET@example.com" % i, "5500-SECRET-%d" % i,
                              dt.date(2024, 4, 1 + i)))
        with cur.copy("COPY payments (id, customer_email, card_number, paid_on) TO STDOUT") as cp:
            for _ in cp.rows():
                pass
        with cur.copy("COPY payments (id, customer_email, paid_on) TO STDOUT (FORMAT BINARY)") as cp:
            for _ in cp:
                pass


def error(conn):
    with conn.cursor() as cur:
        try:
            cur.execute("INSERT INTO customers (id, email, plan_tier, created_at, country_code)"
                        " VALUES (%s, %s, %s, now(), %s)",
                        (uuid.UUID(int=100), "user0.SECRET@example.com", "basic", "DE"))
        except psycopg.Error:
            conn.rollback()
        cur.execute("SELECT 1")


def main():
    dsn = sys.argv[1]
    for step in (customers, lookups, payments, pipeline, copy, error):
        with psycopg.connect(dsn, autocommit=step is not error) as conn:
            step(conn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
