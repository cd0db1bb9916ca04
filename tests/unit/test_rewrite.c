/*
 * test_rewrite.c — unit tests for the rewriter's supported shapes: every
 * statement form the proxy must carry (INSERT VALUES / SELECT / ON
 * CONFLICT, UPDATE, DELETE, SELECT with =, <>, IN, IS NULL, ranges, joins,
 * subqueries, CTEs, RETURNING, DDL) is rewritten to an exact expected text;
 * the parameter and output plans; literal decoding; statements that do not
 * touch protected columns stay unchanged; the fast path; parse errors and
 * internal errors. Expected texts write ciphertext as {table.column:value}
 * (see test_rewrite_fixture.h).
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <strings.h>

#include <cmocka.h>

#include "test_rewrite_fixture.h"

static void rewrite_ok(const char *sql, ph_rw_result *r)
{
    if (fixture_rewrite(S, sql, r) != PH_RW_OK)
        fail_msg("%s\n  -> refused: %s", sql, r->message);
}

/* sql must be rewritten to exactly tmpl (after {col:value} expansion). */
static void check(const char *sql, const char *tmpl)
{
    ph_rw_result r;
    rewrite_ok(sql, &r);
    char *want = expand_expected(tmpl);
    if (!r.sql || strcmp(r.sql, want) != 0)
        fail_msg("%s\n  got:  %s\n  want: %s", sql, r.sql ? r.sql : "(unchanged)", want);
    assert_int_equal(r.sql_len, strlen(want));
    assert_true(parses(r.sql));
    assert_true(r.touches_protected);
    assert_true(ph_rewrite_mentions_protected(S, sql, strlen(sql)));
    free(want);
    ph_rw_result_free(&r);
}

/* sql passes unchanged (no rewrite needed). */
static void unchanged(const char *sql, int touches)
{
    ph_rw_result r;
    rewrite_ok(sql, &r);
    if (r.sql)
        fail_msg("%s\n  unexpectedly rewritten: %s", sql, r.sql);
    assert_int_equal(r.touches_protected, touches);
    ph_rw_result_free(&r);
}

/* ---- INSERT -------------------------------------------------------------- */

static void test_insert_values(void **state)
{
    (void)state;
    check("insert into customers (id, email, full_name) values (1, 'a@x.com', 'Ann'), "
          "(2, 'b@x.com', NULL)",
          "insert into customers (id, email, full_name) values (1, {customers.email:a@x.com}, "
          "{customers.full_name:Ann}), (2, {customers.email:b@x.com}, NULL)");
    check("INSERT INTO customers(email,age,signup_day)VALUES('q',42,'2024-02-29')",
          "INSERT INTO customers(email,age,signup_day)VALUES({customers.email:q},"
          "{customers.age:42},{customers.signup_day:2024-02-29})");
    /* DEFAULT and NULL are kept; plain columns untouched */
    check("insert into customers (email, phone, plan_tier) values (DEFAULT, 'p', 'pro')",
          "insert into customers (email, phone, plan_tier) values (DEFAULT, "
          "{customers.phone:p}, 'pro')");
}

static void test_insert_casts(void **state)
{
    (void)state;
    check("insert into customers (signup_day, email, address, age) values "
          "('2024-01-01'::date, CAST('a' AS varchar(10)), NULL::jsonb, '7'::int4)",
          "insert into customers (signup_day, email, address, age) values "
          "({customers.signup_day:2024-01-01}, {customers.email:a}, NULL, {customers.age:7})");
    check("insert into customers (signup_day, email) values (date '2024-03-01', "
          "('b')::text), ('2024-03-02' /* c */ :: pg_catalog.date, 'c'::character varying)",
          "insert into customers (signup_day, email) values ({customers.signup_day:2024-03-01}, "
          "{customers.email:b}), ({customers.signup_day:2024-03-02}, {customers.email:c})");
}

static void test_insert_params(void **state)
{
    (void)state;
    ph_rw_result r;
    rewrite_ok("insert into customers (id, email, full_name, age) values ($1, $2, $3, $4::int4)",
               &r);
    assert_non_null(r.sql); /* the cast around $4 is removed: $4 arrives as bytea */
    assert_string_equal(
        r.sql, "insert into customers (id, email, full_name, age) values ($1, $2, $3, $4)");
    assert_int_equal(r.nparams, 4);
    assert_null(r.params[0]);
    assert_string_equal(r.params[1]->qualified, "customers.email");
    assert_string_equal(r.params[2]->qualified, "customers.full_name");
    assert_string_equal(r.params[3]->qualified, "customers.age");
    assert_true(r.cacheable);
    ph_rw_result_free(&r);

    rewrite_ok("select * from customers where email = $1", &r);
    assert_null(r.sql);
    assert_int_equal(r.nparams, 1);
    assert_ptr_equal(r.params[0], ph_schema_lookup(S, NULL, "customers", "email"));
    ph_rw_result_free(&r);
}

static void test_insert_on_conflict(void **state)
{
    (void)state;
    check("insert into customers (id, email, phone) values (1, 'a', 'p') on conflict (email) "
          "do update set phone = excluded.phone, full_name = 'n', age = customers.age "
          "where customers.email <> 'z' returning id, email",
          "insert into customers (id, email, phone) values (1, {customers.email:a}, "
          "{customers.phone:p}) on conflict (email) do update set phone = excluded.phone, "
          "full_name = {customers.full_name:n}, age = customers.age where customers.email <> "
          "{customers.email:z} returning id, email");
    check("insert into customers as c (email) values ('a') on conflict do nothing",
          "insert into customers as c (email) values ({customers.email:a}) on conflict do "
          "nothing");
}

static void test_insert_select(void **state)
{
    (void)state;
    /* same key domain: the ciphertext is valid in both columns */
    check("insert into payments (customer_email, card_number, amount) select email, '4111', 10 "
          "from customers where age > 30",
          "insert into payments (customer_email, card_number, amount) select email, "
          "{payments.card_number:4111}, 10 from customers where age > {customers.age:30}");
    check("insert into customers (email) select 'a' union all select $1",
          "insert into customers (email) select {customers.email:a} union all select $1");
}

/* ---- UPDATE / DELETE ---------------------------------------------------------- */

static void test_update(void **state)
{
    (void)state;
    check("update customers set phone = '555', full_name = NULL, plan_tier = 'pro' where "
          "email = 'a@x.com'",
          "update customers set phone = {customers.phone:555}, full_name = NULL, plan_tier = "
          "'pro' where email = {customers.email:a@x.com}");
    check("update customers c set (email, age) = ('e', 3), phone = DEFAULT from payments p "
          "where p.customer_email = c.email and p.paid_on = '2024-01-05'",
          "update customers c set (email, age) = ({customers.email:e}, {customers.age:3}), "
          "phone = DEFAULT from payments p where p.customer_email = c.email and p.paid_on = "
          "{payments.paid_on:2024-01-05}");
    check("update customers set (full_name, tax_id) = (select 'n', 't') where id = 1",
          "update customers set (full_name, tax_id) = (select {customers.full_name:n}, "
          "{customers.tax_id:t}) where id = 1");
}

static void test_delete_returning(void **state)
{
    (void)state;
    check("delete from customers where email = 'a' returning full_name, id",
          "delete from customers where email = {customers.email:a} returning full_name, id");
    ph_rw_result r;
    rewrite_ok("delete from customers c using payments p where p.customer_email = c.email "
               "returning c.email, p.paid_on, p.amount",
               &r);
    assert_int_equal(r.nstmts, 1);
    assert_int_equal(r.stmts[0].kind, PH_RW_STMT_DELETE);
    assert_int_equal(r.stmts[0].noutputs, 3);
    assert_string_equal(r.stmts[0].outputs[0].col->qualified, "customers.email");
    assert_string_equal(r.stmts[0].outputs[1].col->qualified, "payments.paid_on");
    assert_null(r.stmts[0].outputs[2].col);
    ph_rw_result_free(&r);
}

/* ---- SELECT -------------------------------------------------------------------- */

static void test_select_equality(void **state)
{
    (void)state;
    check("select id from customers where email = 'a' and email <> 'b' and email != 'c'",
          "select id from customers where email = {customers.email:a} and email <> "
          "{customers.email:b} and email != {customers.email:c}");
    check("select * from customers where email in ('a', 'b') or email not in ($1)",
          "select * from customers where email in ({customers.email:a}, {customers.email:b}) "
          "or email not in ($1)");
    check("select * from customers where 'a' = email and email is distinct from 'b'",
          "select * from customers where {customers.email:a} = email and email is distinct "
          "from {customers.email:b}");
    unchanged("select * from customers where full_name is null and tax_id is not null", 1);
    check("select * from customers where email = any (array['a', 'b'])",
          "select * from customers where email = any (array[{customers.email:a}, "
          "{customers.email:b}])");
    check("select * from customers where (email, age) = ('a', 1)",
          "select * from customers where (email, age) = ({customers.email:a}, {customers.age:1})");
    /* token columns hold text: the token is spliced as a string literal */
    check("select * from payments where card_token = '4111111111111111'",
          "select * from payments where card_token = "
          "'ENC(payments.card_token:4111111111111111)'");
}

static void test_select_ope(void **state)
{
    (void)state;
    check("select * from payments where paid_on between '2024-01-01' and '2024-12-31' "
          "order by paid_on desc, amount",
          "select * from payments where paid_on between {payments.paid_on:2024-01-01} and "
          "{payments.paid_on:2024-12-31} order by paid_on desc, amount");
    check("select * from customers where age < 5 or age <= 6 or age > 7 or age >= -8 or "
          "signup_day not between symmetric '2024-01-01' and '2023-01-01'",
          "select * from customers where age < {customers.age:5} or age <= {customers.age:6} or "
          "age > {customers.age:7} or age >= {customers.age:-8} or signup_day not between "
          "symmetric {customers.signup_day:2024-01-01} and {customers.signup_day:2023-01-01}");
    unchanged("select email as e, age from customers order by 2, age", 1);
}

static void test_select_join(void **state)
{
    (void)state;
    check("select c.email, p.amount from customers c join payments p on p.customer_email = "
          "c.email where c.email = 'a'",
          "select c.email, p.amount from customers c join payments p on p.customer_email = "
          "c.email where c.email = {customers.email:a}");
    unchanged("select * from customers c left join payments p on c.email = p.customer_email "
              "join orders o on o.id = p.order_id",
              1);
    unchanged("select * from customers join (select customer_email as email from payments) p "
              "using (email)",
              1);
}

static void test_select_subqueries_ctes(void **state)
{
    (void)state;
    check("select * from payments where customer_email in (select email from customers where "
          "age >= 18) and exists (select 1 from customers c where c.email = "
          "payments.customer_email and c.phone is null)",
          "select * from payments where customer_email in (select email from customers where "
          "age >= {customers.age:18}) and exists (select 1 from customers c where c.email = "
          "payments.customer_email and c.phone is null)");
    check("select s.e from (select email as e from customers) s where s.e = 'x'",
          "select s.e from (select email as e from customers) s where s.e = "
          "{customers.email:x}");
    check("select * from (select * from customers) s where s.email = 'x'",
          "select * from (select * from customers) s where s.email = {customers.email:x}");
    check("with c(m) as (select email from customers), d as (select m from c) select * from d "
          "where m = 'x'",
          "with c(m) as (select email from customers), d as (select m from c) select * from d "
          "where m = {customers.email:x}");
    check("with recursive r(e, n) as (select email, 1 from customers union all select e, n + 1 "
          "from r where n < 3) select * from r where e = 'x'",
          "with recursive r(e, n) as (select email, 1 from customers union all select e, n + 1 "
          "from r where n < 3) select * from r where e = {customers.email:x}");
    check("select * from customers c, lateral (select * from payments p where "
          "p.customer_email = c.email) x where x.paid_on > '2024-01-01'",
          "select * from customers c, lateral (select * from payments p where "
          "p.customer_email = c.email) x where x.paid_on > {payments.paid_on:2024-01-01}");
    check("with u as (update customers set phone = 'p' where email = 'a' returning email) "
          "select * from u where email = 'b'",
          "with u as (update customers set phone = {customers.phone:p} where email = "
          "{customers.email:a} returning email) select * from u where email = "
          "{customers.email:b}");
    check("select * from customers where (email, id) = (select customer_email, 2 from "
          "payments p where p.paid_on = '2024-01-01' limit 1)",
          "select * from customers where (email, id) = (select customer_email, 2 from "
          "payments p where p.paid_on = {payments.paid_on:2024-01-01} limit 1)");
}

static void test_names(void **state)
{
    (void)state;
    check("SELECT * FROM Public.CUSTOMERS AS C WHERE C.EMAIL = 'a'",
          "SELECT * FROM Public.CUSTOMERS AS C WHERE C.EMAIL = {customers.email:a}");
    check("select * from \"customers\" where \"email\" = 'a'",
          "select * from \"customers\" where \"email\" = {customers.email:a}");
    check("select * from public.customers where public.customers.email = 'a'",
          "select * from public.customers where public.customers.email = {customers.email:a}");
    check("select * from sales.leads l where l.contact = 'a'",
          "select * from sales.leads l where l.contact = {sales.leads.contact:a}");
    check("select * from leads where contact = 'a'",
          "select * from leads where contact = {sales.leads.contact:a}");
    /* a quoted name with other case is another table; so is another schema */
    unchanged("select * from \"Customers\" where email = 'a'", 0);
    unchanged("select * from archive.customers where email = 'a'", 0);
    /* a CTE named like a protected table shadows it */
    unchanged("with customers as (select 1 as email) select * from customers where email = 'x'", 0);
}

static void test_group_distinct_count(void **state)
{
    (void)state;
    unchanged("select email, count(*), count(email), count(distinct email), count(full_name) "
              "from customers group by email having count(*) > 1",
              1);
    unchanged("select distinct email, signup_day from customers", 1);
    unchanged("select distinct on (email) email, id from customers", 1);
    unchanged("select email, row_number() over (partition by email order by signup_day) from "
              "customers",
              1);
    unchanged("select email from customers union select customer_email from payments", 1);
}

static void test_multi_statement(void **state)
{
    (void)state;
    check("begin; insert into customers (email) values ('a'); select * from customers where "
          "email = 'b'; delete from payments where paid_on < '2020-01-01'; commit",
          "begin; insert into customers (email) values ({customers.email:a}); select * from "
          "customers where email = {customers.email:b}; delete from payments where paid_on < "
          "{payments.paid_on:2020-01-01}; commit");
    ph_rw_result r;
    rewrite_ok("select 1; select email from customers; insert into t values (1)", &r);
    assert_int_equal(r.nstmts, 3);
    assert_false(r.stmts[0].touches_protected);
    assert_true(r.stmts[1].touches_protected);
    assert_false(r.stmts[2].touches_protected);
    assert_int_equal(r.stmts[1].kind, PH_RW_STMT_SELECT);
    assert_int_equal(r.stmts[2].kind, PH_RW_STMT_INSERT);
    ph_rw_result_free(&r);
}

static void test_outputs(void **state)
{
    (void)state;
    ph_rw_result r;
    rewrite_ok("select c.id, c.email as login, p.paid_on, upper(c.plan_tier), * from customers "
               "c join payments p on p.customer_email = c.email",
               &r);
    assert_int_equal(r.stmts[0].noutputs, 5);
    assert_null(r.stmts[0].outputs[0].col);
    assert_string_equal(r.stmts[0].outputs[1].col->qualified, "customers.email");
    assert_string_equal(r.stmts[0].outputs[2].col->qualified, "payments.paid_on");
    assert_null(r.stmts[0].outputs[3].col);
    assert_true(r.stmts[0].outputs[4].star);
    assert_false(r.stmts[0].outputs[0].star);
    ph_rw_result_free(&r);

    rewrite_ok("insert into customers (email) values ($1) returning id, email, tax_id", &r);
    assert_int_equal(r.stmts[0].noutputs, 3);
    assert_string_equal(r.stmts[0].outputs[2].col->qualified, "customers.tax_id");
    ph_rw_result_free(&r);
}

static void test_explain_prepare_cursor(void **state)
{
    (void)state;
    check("explain analyze select * from customers where email = 'a'",
          "explain analyze select * from customers where email = {customers.email:a}");
    check("prepare q as select * from customers where email = 'a'",
          "prepare q as select * from customers where email = {customers.email:a}");
    check("declare cur cursor for select email from customers where age = 3",
          "declare cur cursor for select email from customers where age = {customers.age:3}");
}

/* ---- literals ------------------------------------------------------------------------ */

static void test_literal_values(void **state)
{
    (void)state;
    check("select * from customers where email = E'a\\nb\\x41' or email = 'it''s' or email = "
          "$$x'y$$ or email = $t$z$t$ or email = 'con'\n'cat'",
          "select * from customers where email = {customers.email:a\nbA} or email = "
          "{customers.email:it's} or email = {customers.email:x'y} or email = "
          "{customers.email:z} or email = {customers.email:concat}");
    check("select * from customers where age = -5 or age = 2147483648 or age = 1.50 or age = "
          "1e3",
          "select * from customers where age = {customers.age:-5} or age = "
          "{customers.age:2147483648} or age = {customers.age:1.50} or age = {customers.age:1e3}");
    /* a splice never glues tokens together */
    check("select 1 from customers where email='a'and age=1",
          "select 1 from customers where email={customers.email:a} and age={customers.age:1}");
}

static void test_literal_reencrypted_once(void **state)
{
    (void)state;
    /* a literal compared with two columns of one key domain is encrypted once */
    check("select * from customers c join payments p on true where 'a' in (c.email, "
          "p.customer_email)",
          "select * from customers c join payments p on true where {customers.email:a} in "
          "(c.email, p.customer_email)");
}

/* ---- DDL -------------------------------------------------------------------------------- */

static void test_ddl(void **state)
{
    (void)state;
    ph_rw_result r;
    rewrite_ok("create table customers (id uuid primary key, email varchar(255) not null "
               "unique, full_name text, phone text, tax_id character varying(20), address "
               "jsonb, signup_day date, age integer, plan_tier text default 'free', created_at "
               "timestamp not null default now())",
               &r);
    assert_non_null(r.sql);
    assert_string_equal(r.sql, "create table customers (id uuid primary key, email bytea not null "
                               "unique, full_name bytea, phone bytea, tax_id bytea, address "
                               "bytea, signup_day bytea, age bytea, plan_tier text default "
                               "'free', created_at timestamp not null default now())");
    assert_int_equal(r.stmts[0].kind, PH_RW_STMT_DDL);
    assert_true(r.cacheable);
    ph_rw_result_free(&r);

    check("create table if not exists payments (id bigserial, customer_email text references "
          "customers (email), card_number text, paid_on date not null, amount numeric(12,2), "
          "unique (customer_email, paid_on))",
          "create table if not exists payments (id bigserial, customer_email bytea references "
          "customers (email), card_number bytea, paid_on bytea not null, amount numeric(12,2), "
          "unique (customer_email, paid_on))");
    /* a pg_dump taken through the proxy declares the storage type: accepted */
    check("create table payments (id bigint, customer_email bytea, card_number bytea, paid_on "
          "bytea not null)",
          "create table payments (id bigint, customer_email bytea, card_number bytea, paid_on "
          "bytea not null)");
    check("alter table customers add column phone text not null, add column if not exists "
          "tax_id character varying(20)",
          "alter table customers add column phone bytea not null, add column if not exists "
          "tax_id bytea");
    check("create index on customers (age) where email = 'x'",
          "create index on customers (age) where email = {customers.email:x}");
    unchanged("create unique index on customers (email); alter table customers drop column "
              "phone; alter table customers alter column email set not null",
              1);
    unchanged("create table other (id int, note text); alter table customers add column note "
              "text",
              0);
}

/* ---- plain statements -------------------------------------------------------------------- */

static void test_unchanged(void **state)
{
    (void)state;
    unchanged("select count(*) from customers where plan_tier = 'pro'", 0);
    unchanged("select id, created_at from customers order by created_at desc limit 10", 0);
    unchanged("update customers set plan_tier = 'pro' where id = $1", 0);
    unchanged("select * from orders where note = 'customers'", 0);
    unchanged("truncate customers; drop table if exists customers; grant select on customers "
              "to app; vacuum analyze customers; comment on column customers.email is 'x'",
              0);
    unchanged("insert into customers default values", 0);
    unchanged("select * from customers where email is null", 1);
}

static void test_copy_plan(void **state)
{
    (void)state;
    ph_rw_result r;
    rewrite_ok("copy customers (id, email) from stdin with (format csv)", &r);
    assert_null(r.sql);
    assert_int_equal(r.stmts[0].kind, PH_RW_STMT_COPY);
    assert_ptr_equal(r.stmts[0].copy_table, ph_schema_find_table(S, "public", "customers", NULL));
    assert_true(r.stmts[0].copy_from);
    assert_int_equal(r.stmts[0].noutputs, 2);
    assert_null(r.stmts[0].outputs[0].col);
    assert_string_equal(r.stmts[0].outputs[1].col->qualified, "customers.email");
    ph_rw_result_free(&r);
    rewrite_ok("copy payments to stdout", &r);
    assert_false(r.stmts[0].copy_from);
    assert_true(r.stmts[0].outputs[0].star);
    ph_rw_result_free(&r);
}

static ph_rw_status rewrite_copy(const char *sql, const char *client_encoding, ph_rw_result *r)
{
    fake_crypto fc = {0};
    ph_rw_options opt = {
        .encrypt = fake_encrypt, .encrypt_ud = &fc, .client_encoding = client_encoding};
    ph_rw_status st = ph_rewrite(S, sql, strlen(sql), &opt, r);
    assert_int_equal(fc.calls, 0);
    return st;
}

/* sql is a COPY on a protected table; returns its statement plan. */
static const ph_rw_stmt *copy_ok(const char *sql, ph_rw_result *r)
{
    if (rewrite_copy(sql, "UTF8", r) != PH_RW_OK)
        fail_msg("%s\n  -> refused: %s", sql, r->message);
    assert_null(r->sql);
    assert_int_equal(r->nstmts, 1);
    assert_int_equal(r->stmts[0].kind, PH_RW_STMT_COPY);
    assert_non_null(r->stmts[0].copy_table);
    return &r->stmts[0];
}

static void test_copy_options(void **state)
{
    (void)state;
    ph_rw_result r;
    const ph_schema_table *cust = ph_schema_find_table(S, "public", "customers", NULL);
    /* WITH (...) */
    const ph_rw_stmt *st =
        copy_ok("copy customers (id, email, phone) from stdin with (format csv, header, "
                "delimiter ';', null 'NULL', quote '''', escape '\\', freeze)",
                &r);
    assert_int_equal(st->copy_opts.format, PH_COPY_CSV);
    assert_true(st->copy_opts.header);
    assert_int_equal(st->copy_opts.delimiter, ';');
    assert_string_equal(st->copy_opts.null_s, "NULL");
    assert_int_equal(st->copy_opts.quote, '\'');
    assert_int_equal(st->copy_opts.escape, '\\');
    assert_int_equal(st->copy_ncols, 3);
    assert_null(st->copy_cols[0]);
    assert_ptr_equal(st->copy_cols[1], ph_schema_find_column(cust, "email"));
    assert_ptr_equal(st->copy_cols[2], ph_schema_find_column(cust, "phone"));
    ph_rw_result_free(&r);
    /* the legacy syntax; ESCAPE defaults to QUOTE; no column list */
    st = copy_ok("COPY customers FROM STDIN WITH CSV HEADER DELIMITER AS '|' NULL AS 'n/a' "
                 "QUOTE AS '!'",
                 &r);
    assert_int_equal(st->copy_opts.format, PH_COPY_CSV);
    assert_true(st->copy_opts.header);
    assert_int_equal(st->copy_opts.delimiter, '|');
    assert_string_equal(st->copy_opts.null_s, "n/a");
    assert_int_equal(st->copy_opts.quote, '!');
    assert_int_equal(st->copy_opts.escape, '!');
    assert_int_equal(st->copy_ncols, -1);
    assert_null(st->copy_cols);
    assert_true(st->copy_from);
    ph_rw_result_free(&r);
    /* PostgreSQL's defaults */
    st = copy_ok("copy customers to stdout", &r);
    assert_int_equal(st->copy_opts.format, PH_COPY_TEXT);
    assert_int_equal(st->copy_opts.delimiter, '\t');
    assert_string_equal(st->copy_opts.null_s, "\\N");
    assert_false(st->copy_opts.header);
    assert_false(st->copy_from);
    ph_rw_result_free(&r);
    st = copy_ok("copy customers (email) to stdout (format csv)", &r);
    assert_int_equal(st->copy_opts.delimiter, ',');
    assert_string_equal(st->copy_opts.null_s, "");
    assert_int_equal(st->copy_opts.quote, '"');
    assert_int_equal(st->copy_opts.escape, '"');
    ph_rw_result_free(&r);
    st = copy_ok("copy binary customers to stdout", &r);
    assert_int_equal(st->copy_opts.format, PH_COPY_BINARY);
    ph_rw_result_free(&r);
    st = copy_ok("copy customers to stdout with binary", &r);
    assert_int_equal(st->copy_opts.format, PH_COPY_BINARY);
    ph_rw_result_free(&r);
    /* HEADER spellings */
    static const struct {
        const char *sql;
        bool header;
    } headers[] = {
        {"copy customers from stdin (header match)", true},
        {"copy customers from stdin (header on)", true},
        {"copy customers from stdin (header 1)", true},
        {"copy customers from stdin (header true, format csv)", true},
        {"copy customers from stdin (header false)", false},
        {"copy customers from stdin (header 0)", false},
        {"copy customers from stdin (header OFF)", false},
    };
    for (size_t i = 0; i < sizeof headers / sizeof *headers; i++) {
        st = copy_ok(headers[i].sql, &r);
        if (st->copy_opts.header != headers[i].header)
            fail_msg("%s: header %d", headers[i].sql, st->copy_opts.header);
        ph_rw_result_free(&r);
    }
    /* FORCE_* on plaintext columns, the client's own encoding */
    copy_ok("copy customers (id, email) to stdout (format csv, force_quote (id))", &r);
    ph_rw_result_free(&r);
    copy_ok("copy customers (id, plan_tier) to stdout with csv force quote *", &r);
    ph_rw_result_free(&r);
    copy_ok("copy customers from stdin with csv force not null plan_tier", &r);
    ph_rw_result_free(&r);
    copy_ok("copy customers from stdin (encoding 'utf-8')", &r);
    ph_rw_result_free(&r);
    copy_ok("copy customers from stdin (encoding 'Unicode')", &r);
    ph_rw_result_free(&r);
    /* a table the config does not protect is not analyzed */
    assert_int_equal(
        rewrite_copy("copy orders from stdin (force_quote *, encoding 'latin1', bogus 1)", NULL,
                     &r),
        PH_RW_OK);
    assert_null(r.stmts[0].copy_table);
    assert_int_equal(r.stmts[0].copy_ncols, -1);
    ph_rw_result_free(&r);
}

static void copy_refused(const char *sql, const char *client_encoding, const char *message)
{
    ph_rw_result r;
    ph_rw_status st = rewrite_copy(sql, client_encoding, &r);
    if (st != PH_RW_REFUSED)
        fail_msg("%s\n  status %d, want REFUSED", sql, st);
    if (strcmp(r.message, message) != 0)
        fail_msg("%s\n  got:  %s\n  want: %s", sql, r.message, message);
    assert_string_equal(r.sqlstate, "0A000");
    assert_null(r.stmts);
    assert_null(r.sql);
    assert_true(r.position > 0);
    ph_rw_result_free(&r);
}

static void test_copy_refused(void **state)
{
    (void)state;
    copy_refused("copy customers (email) to stdout (format csv, force_quote (email))", "UTF8",
                 "phantom: COPY option FORCE_QUOTE on protected column customers.email is not "
                 "supported");
    copy_refused("copy customers to stdout with csv force quote *", "UTF8",
                 "phantom: COPY option FORCE_QUOTE * on protected table customers is not "
                 "supported; name its plaintext columns");
    copy_refused("copy customers (id, phone) to stdout (format csv, force_quote *)", "UTF8",
                 "phantom: COPY option FORCE_QUOTE * on protected table customers is not "
                 "supported; name its plaintext columns");
    copy_refused("copy customers from stdin (format csv, force_not_null (id, phone))", "UTF8",
                 "phantom: COPY option FORCE_NOT_NULL on protected column customers.phone is "
                 "not supported");
    copy_refused("copy customers from stdin with csv force not null full_name", "UTF8",
                 "phantom: COPY option FORCE_NOT_NULL on protected column customers.full_name "
                 "is not supported");
    copy_refused("copy customers from stdin (format csv, force_null (tax_id))", "UTF8",
                 "phantom: COPY option FORCE_NULL on protected column customers.tax_id is not "
                 "supported");
    copy_refused("copy customers from stdin (encoding 'latin1')", "UTF8",
                 "phantom: COPY ... ENCODING on protected table customers must name the "
                 "session's client_encoding");
    copy_refused("copy customers from stdin with encoding 'utf8'", NULL,
                 "phantom: COPY ... ENCODING on protected table customers must name the "
                 "session's client_encoding");
    copy_refused("copy customers from stdin (format json)", "UTF8",
                 "phantom: COPY format not recognized (text, csv or binary)");
    copy_refused("copy customers from stdin (delimiter ';;')", "UTF8",
                 "phantom: COPY delimiter must be a single one-byte character");
    copy_refused("copy customers from stdin (format csv, quote '')", "UTF8",
                 "phantom: COPY quote must be a single one-byte character");
    copy_refused("copy customers from stdin (header maybe)", "UTF8",
                 "phantom: COPY HEADER requires a Boolean value or \"match\"");
    copy_refused("copy customers from stdin (default 'x')", "UTF8",
                 "phantom: COPY option default on protected table customers is not supported");
}

static ssize_t columns_cb(void *ud, const ph_schema_table *t, const char *const **names)
{
    static const char *const cols[] = {"id", "email", "plan_tier", "age"};
    (void)ud;
    if (strcmp(t->name, "customers") != 0)
        return -1;
    *names = cols;
    return 4;
}

static void test_insert_without_column_list(void **state)
{
    (void)state;
    fake_crypto fc = {0};
    ph_rw_options opt = {.encrypt = fake_encrypt, .encrypt_ud = &fc, .table_columns = columns_cb};
    const char *sql = "insert into customers values (1, 'a', 'pro', 30)";
    ph_rw_result r;
    assert_int_equal(ph_rewrite(S, sql, strlen(sql), &opt, &r), PH_RW_OK);
    char *want = expand_expected(
        "insert into customers values (1, {customers.email:a}, 'pro', {customers.age:30})");
    assert_string_equal(r.sql, want);
    assert_int_equal(fc.calls, 2);
    assert_false(r.cacheable);
    free(want);
    ph_rw_result_free(&r);
}

/* ---- errors ---------------------------------------------------------------------------- */

static void test_parse_error(void **state)
{
    (void)state;
    ph_rw_result r;
    const char *sql = "selec * from customers where email = 'a'";
    assert_int_equal(fixture_rewrite(S, sql, &r), PH_RW_PARSE_ERROR);
    assert_string_equal(r.sqlstate, "42601");
    assert_string_equal(r.message, "syntax error at or near \"selec\"");
    assert_int_equal(r.position, 1);
    assert_null(r.sql);
    assert_null(r.stmts);
    ph_rw_result_free(&r);

    const char nul[] = "select 1 from customers\0 where email = 'a'";
    assert_int_equal(ph_rewrite(S, nul, sizeof nul - 1, NULL, &r), PH_RW_PARSE_ERROR);
    assert_string_equal(r.sqlstate, "42601");
    ph_rw_result_free(&r);
}

static void test_encrypt_failure(void **state)
{
    (void)state;
    fake_crypto fc = {.fail = 1};
    ph_rw_options opt = {.encrypt = fake_encrypt, .encrypt_ud = &fc};
    const char *sql = "select * from customers where email = 'secret@x.com'";
    ph_rw_result r;
    assert_int_equal(ph_rewrite(S, sql, strlen(sql), &opt, &r), PH_RW_INTERNAL_ERROR);
    assert_string_equal(r.message,
                        "phantom: cannot encrypt a value for customers.email: key unavailable");
    assert_null(strstr(r.message, "secret"));
    assert_null(r.sql);
    ph_rw_result_free(&r);

    /* no callback at all: fail closed */
    assert_int_equal(ph_rewrite(S, sql, strlen(sql), NULL, &r), PH_RW_INTERNAL_ERROR);
    assert_null(r.sql);
    ph_rw_result_free(&r);

    /* a refused statement never reaches the callback */
    fc.fail = 0;
    fc.calls = 0;
    sql = "insert into customers (email, full_name) values ('a', 'b'), (lower('c'), 'd')";
    assert_int_equal(ph_rewrite(S, sql, strlen(sql), &opt, &r), PH_RW_REFUSED);
    assert_int_equal(fc.calls, 0);
    ph_rw_result_free(&r);
}

static void test_scs_off(void **state)
{
    (void)state;
    ph_rw_options opt = {.encrypt = fake_encrypt, .standard_conforming_strings_off = 1};
    ph_rw_result r;
    const char *sql = "select * from customers where email = 'a\\'' or email = 'b'";
    assert_int_equal(ph_rewrite(S, sql, strlen(sql), &opt, &r), PH_RW_REFUSED);
    assert_non_null(strstr(r.message, "standard_conforming_strings"));
    ph_rw_result_free(&r);
    sql = "select * from customers where email = 'b'";
    assert_int_equal(ph_rewrite(S, sql, strlen(sql), &opt, &r), PH_RW_OK);
    assert_non_null(r.sql);
    ph_rw_result_free(&r);
}

/* ---- fast path ------------------------------------------------------------------------------ */

static int fast(const char *sql)
{
    return ph_rewrite_mentions_protected(S, sql, strlen(sql));
}

static void test_fast_path(void **state)
{
    (void)state;
    /* says yes for every spelling that can reach a protected table */
    assert_true(fast("select * from customers"));
    assert_true(fast("SELECT * FROM CUSTOMERS"));
    assert_true(fast("select * from CuStOmErS"));
    assert_true(fast("select * from \"customers\""));
    assert_true(fast("select * from public.customers"));
    assert_true(fast("select * from public.\"customers\" c"));
    assert_true(fast("select*from(customers)"));
    assert_true(fast("insert into payments(x) values (1)"));
    assert_true(fast("select * from sales.leads"));
    assert_true(fast("select * from LEADS"));
    assert_true(fast("select 1;select * from\ncustomers\t"));
    assert_true(fast("select * from customers-- trailing comment"));
    assert_true(fast("select 1 as customers"));              /* false positive: fine */
    assert_true(fast("select 'customers'"));                 /* false positive: fine */
    assert_true(fast("select * from U&\"\\0063ustomers\"")); /* unicode escape */
    assert_true(fast("select * from u&\"x\""));
    assert_true(fast("select 1 from customers1x, customers"));
    /* says no when no identifier can be a protected table */
    assert_false(fast("select * from customers_archive"));
    assert_false(fast("select * from mycustomers"));
    assert_false(fast("select * from customers2"));
    assert_false(fast("SELECT abalance FROM pgbench_accounts WHERE aid = 1"));
    assert_false(fast(""));
    assert_false(ph_rewrite_mentions_protected(NULL, "select * from customers", 23));
    /* only the given length is scanned */
    assert_false(ph_rewrite_mentions_protected(S, "select customers", 7));
}

static void test_fast_path_truncation(void **state)
{
    (void)state;
    /* PostgreSQL truncates identifiers to 63 bytes: a longer one can name a
     * protected table whose name has exactly 63 bytes. */
    char yaml[256], name[64], sql[256];
    memset(name, 'n', 63);
    name[63] = '\0';
    snprintf(yaml, sizeof yaml, "encrypt:\n  %s:\n    - c\n", name);
    ph_schema *s;
    char err[200];
    assert_int_equal(ph_schema_load_buffer(&s, yaml, strlen(yaml), "t", err, sizeof err), 0);
    snprintf(sql, sizeof sql, "select * from %sEXTRA", name);
    assert_true(ph_rewrite_mentions_protected(s, sql, strlen(sql)));
    ph_schema_free(s);
}

/* The fast path's answer must equal that of the plain definition: try a
 * protected name (63-byte prefix rule included) at every position whose
 * byte before is not a letter, _ or byte >= 0x80; U&" anywhere answers yes. */
static int table_at(const ph_schema *s, const char *sql, size_t len, size_t i)
{
    for (size_t t = 0; t < s->ntables; t++) {
        const char *n = s->tables[t]->name;
        size_t k = strlen(n);
        if (k > len - i || strncasecmp(sql + i, n, k) != 0)
            continue;
        unsigned char after = i + k < len ? (unsigned char)sql[i + k] : 0;
        if (k >= PH_SCHEMA_MAX_IDENT || i + k == len ||
            !(isalnum(after) || after == '_' || after == '$' || after >= 0x80))
            return 1;
    }
    return 0;
}

static int mentions_reference(const ph_schema *s, const char *sql, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char prev = i ? (unsigned char)sql[i - 1] : ' ';
        if ((sql[i] == 'u' || sql[i] == 'U') && i + 2 < len && sql[i + 1] == '&' &&
            sql[i + 2] == '"')
            return 1;
        if (!(isalpha(prev) || prev == '_' || prev >= 0x80) && table_at(s, sql, len, i))
            return 1;
    }
    return 0;
}

static void test_fast_path_equivalence(void **state)
{
    (void)state;
    /* table names starting with a letter, _ and (quoted) a digit */
    const char *y = "encrypt:\n  customers:\n    - a\n  _t9:\n    - a\n  '\"9lives\"':\n    - a\n";
    ph_schema *s = NULL;
    char err[200];
    assert_int_equal(ph_schema_load_buffer(&s, y, strlen(y), "t", err, sizeof err), 0);
    static const char *pieces[] = {"customers", "CUSTOMERS", "_t9",  "9lives",     "custom", "x",
                                   "1",         "$",         "_",    " ",          "\"",     "u",
                                   "U",         "&",         "\xc3", "customers2", ".",      "9"};
    const size_t np = sizeof pieces / sizeof pieces[0];
    unsigned seed = 12345;
    int yes = 0, no = 0;
    for (int n = 0; n < 200000; n++) {
        char sql[128] = "";
        size_t len = 0;
        int parts = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 6;
        for (int k = 0; k < parts; k++) {
            const char *pc = pieces[((seed = seed * 1103515245u + 12345u) >> 16) % np];
            size_t l = strlen(pc);
            memcpy(sql + len, pc, l);
            len += l;
        }
        int want = mentions_reference(s, sql, len);
        if (ph_rewrite_mentions_protected(s, sql, len) != want)
            fail_msg("fast path differs from the definition on [%.*s]", (int)len, sql);
        want ? yes++ : no++;
    }
    assert_true(yes > 10000 && no > 10000); /* both answers were exercised */
    ph_schema_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_values),
        cmocka_unit_test(test_insert_casts),
        cmocka_unit_test(test_insert_params),
        cmocka_unit_test(test_insert_on_conflict),
        cmocka_unit_test(test_insert_select),
        cmocka_unit_test(test_update),
        cmocka_unit_test(test_delete_returning),
        cmocka_unit_test(test_select_equality),
        cmocka_unit_test(test_select_ope),
        cmocka_unit_test(test_select_join),
        cmocka_unit_test(test_select_subqueries_ctes),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_group_distinct_count),
        cmocka_unit_test(test_multi_statement),
        cmocka_unit_test(test_outputs),
        cmocka_unit_test(test_explain_prepare_cursor),
        cmocka_unit_test(test_literal_values),
        cmocka_unit_test(test_literal_reencrypted_once),
        cmocka_unit_test(test_ddl),
        cmocka_unit_test(test_unchanged),
        cmocka_unit_test(test_copy_plan),
        cmocka_unit_test(test_copy_options),
        cmocka_unit_test(test_copy_refused),
        cmocka_unit_test(test_insert_without_column_list),
        cmocka_unit_test(test_parse_error),
        cmocka_unit_test(test_encrypt_failure),
        cmocka_unit_test(test_scs_off),
        cmocka_unit_test(test_fast_path),
        cmocka_unit_test(test_fast_path_truncation),
        cmocka_unit_test(test_fast_path_equivalence),
    };
    return cmocka_run_group_tests(tests, fixture_setup, fixture_teardown);
}
