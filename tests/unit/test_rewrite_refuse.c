/*
 * test_rewrite_refuse.c — unit tests for what the rewriter refuses (fail
 * closed): every operation a column's mode cannot do, every construct it
 * cannot analyze with confidence when a protected column is involved, and
 * DDL that would store or evaluate plaintext. Each case asserts the exact
 * message (naming table, column, mode and operation), SQLSTATE 0A000, that
 * nothing is produced to send upstream, that the message quotes none of the
 * statement's string literals, and that the fast path sends it to analysis.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_rewrite_fixture.h"

typedef struct {
    const char *sql;
    const char *message;
} refusal;

static const refusal refusals[] = {
    {"select * from customers where email like '%@x.com'",
     "phantom: cannot apply LIKE to customers.email (deterministic): the database only holds "
     "ciphertext"},
    {"select * from customers where email not like 'a%'",
     "phantom: cannot apply NOT LIKE to customers.email (deterministic): the database only holds "
     "ciphertext"},
    {"select * from customers where email ilike 'A%'",
     "phantom: cannot apply ILIKE to customers.email (deterministic): the database only holds "
     "ciphertext"},
    {"select * from customers where email similar to 'a%'",
     "phantom: cannot apply SIMILAR TO to customers.email (deterministic): the database only holds "
     "ciphertext"},
    {"select * from customers where email ~ '^a'",
     "phantom: cannot apply regular expression match (~) to customers.email (deterministic): the "
     "database only holds ciphertext"},
    {"select * from customers where email ~* '^a'",
     "phantom: cannot apply regular expression match (~*) to customers.email (deterministic): the "
     "database only holds ciphertext"},
    {"select * from customers where to_tsvector(full_name) @@ to_tsquery('x')",
     "phantom: cannot apply function to_tsvector() to customers.full_name (randomized): the "
     "database only holds ciphertext"},
    {"select * from customers where full_name @@ to_tsquery('x')",
     "phantom: cannot apply full-text search (@@) to customers.full_name (randomized): the "
     "database only holds ciphertext"},
    {"select lower(email) from customers",
     "phantom: cannot apply function lower() to customers.email (deterministic): the database only "
     "holds ciphertext"},
    {"select * from customers where upper(email) = 'A'",
     "phantom: cannot apply function upper() to customers.email (deterministic): the database only "
     "holds ciphertext"},
    {"select email::text from customers", "phantom: cannot apply a cast to text to customers.email "
                                          "(deterministic): the database only holds ciphertext"},
    {"select * from customers where cast(age as text) = '3'",
     "phantom: cannot apply a cast to text to customers.age (ope): the database only holds "
     "ciphertext"},
    {"select age + 1 from customers", "phantom: cannot apply arithmetic (+) to customers.age "
                                      "(ope): the database only holds ciphertext"},
    {"select * from customers where age * 2 > 10",
     "phantom: cannot apply arithmetic (*) to customers.age (ope): the database only holds "
     "ciphertext"},
    {"select email || '!' from customers",
     "phantom: cannot apply concatenation (||) to customers.email (deterministic): the database "
     "only holds ciphertext"},
    {"select sum(age) from customers",
     "phantom: cannot apply SUM to customers.age (ope): the database only holds ciphertext"},
    {"select avg(age) from customers",
     "phantom: cannot apply AVG to customers.age (ope): the database only holds ciphertext"},
    {"select max(signup_day) from customers",
     "phantom: cannot apply MAX to customers.signup_day (ope): PostgreSQL has no MAX for bytea; "
     "use ORDER BY signup_day DESC LIMIT 1"},
    {"select min(age) from customers", "phantom: cannot apply MIN to customers.age (ope): "
                                       "PostgreSQL has no MIN for bytea; use ORDER BY age LIMIT 1"},
    {"select max(email) from customers", "phantom: cannot apply MAX to customers.email "
                                         "(deterministic): the database only holds ciphertext"},
    {"select count(distinct full_name) from customers",
     "phantom: cannot apply count(DISTINCT) to customers.full_name (randomized): randomized "
     "encryption supports only storing, fetching and IS [NOT] NULL"},
    {"select * from customers where email < 'm'",
     "phantom: cannot apply < to customers.email (deterministic): deterministic encryption "
     "supports only equality (=, <>, IN), GROUP BY, DISTINCT and equality joins; ranges and ORDER "
     "BY need mode ope"},
    {"select * from customers where email between 'a' and 'm'",
     "phantom: cannot apply BETWEEN to customers.email (deterministic): deterministic encryption "
     "supports only equality (=, <>, IN), GROUP BY, DISTINCT and equality joins; ranges and ORDER "
     "BY need mode ope"},
    {"select * from customers order by email",
     "phantom: cannot apply ORDER BY to customers.email (deterministic): deterministic encryption "
     "supports only equality (=, <>, IN), GROUP BY, DISTINCT and equality joins; ranges and ORDER "
     "BY need mode ope"},
    {"select * from customers order by full_name desc",
     "phantom: cannot apply ORDER BY to customers.full_name (randomized): randomized encryption "
     "supports only storing, fetching and IS [NOT] NULL"},
    {"select full_name, count(*) from customers group by full_name",
     "phantom: cannot apply GROUP BY to customers.full_name (randomized): randomized encryption "
     "supports only storing, fetching and IS [NOT] NULL"},
    {"select distinct full_name from customers",
     "phantom: cannot apply DISTINCT to customers.full_name (randomized): randomized encryption "
     "supports only storing, fetching and IS [NOT] NULL"},
    {"select * from customers where full_name = 'Ann'",
     "phantom: cannot apply = to customers.full_name (randomized): randomized encryption supports "
     "only storing, fetching and IS [NOT] NULL"},
    {"select * from customers where phone in ('1', '2')",
     "phantom: cannot apply IN to customers.phone (randomized): randomized encryption supports "
     "only storing, fetching and IS [NOT] NULL"},
    {"select * from customers c join sales.leads l on l.contact = c.email",
     "phantom: cannot compare sales.leads.contact (deterministic) with customers.email "
     "(deterministic): they are not in one key domain (share one with `key:` in the encrypt "
     "config)"},
    {"select * from customers where email = plan_tier",
     "phantom: cannot compare customers.email (deterministic) with a plaintext column or computed "
     "value: the database only holds ciphertext"},
    {"select * from customers c join payments p on p.card_number = c.phone",
     "phantom: cannot apply = to payments.card_number (randomized): randomized encryption supports "
     "only storing, fetching and IS [NOT] NULL"},
    {"insert into customers (email) select plan_tier from customers",
     "phantom: cannot store a plaintext column or computed value in customers.email "
     "(deterministic): only literals, parameters, NULL, DEFAULT or a column of the same key domain "
     "can be stored"},
    {"insert into customers (email, full_name) values ('a', upper('b'))",
     "phantom: cannot store a plaintext column or computed value in customers.full_name "
     "(randomized): only literals, parameters, NULL, DEFAULT or a column of the same key domain "
     "can be stored"},
    {"update customers set email = plan_tier",
     "phantom: cannot store a plaintext column or computed value in customers.email "
     "(deterministic): only literals, parameters, NULL, DEFAULT or a column of the same key domain "
     "can be stored"},
    {"update customers set plan_tier = email",
     "phantom: cannot copy customers.email (deterministic) into a plaintext column of customers"},
    {"insert into archive (e) select email from customers",
     "phantom: cannot copy customers.email (deterministic) into a plaintext column of archive"},
    {"select * from customers where email = $1 or plan_tier = $1",
     "phantom: parameter $1 is used both for customers.email (deterministic) and as a plaintext "
     "value; use two parameters"},
    {"select * from customers c, sales.leads l where c.email = $1 and l.contact = $1",
     "phantom: parameter $1 is used for customers.email and sales.leads.contact, which are not in "
     "one key domain; use two parameters"},
    {"select c from customers c", "phantom: cannot use customers.email (deterministic) in a "
                                  "whole-row reference: the database only holds ciphertext"},
    {"select row_to_json(c) from customers c",
     "phantom: cannot use customers.email (deterministic) in a whole-row reference: the database "
     "only holds ciphertext"},
    {"select * from customers natural join payments",
     "phantom: NATURAL JOIN over protected table customers is not supported; join with ON or USING "
     "and no alias"},
    {"select email from customers union select plan_tier from customers",
     "phantom: UNION combines customers.email (deterministic) with a value that is not in its key "
     "domain"},
    {"select full_name from customers union select full_name from customers",
     "phantom: cannot apply UNION (without ALL) to customers.full_name (randomized): randomized "
     "encryption supports only storing, fetching and IS [NOT] NULL"},
    {"select coalesce(email, 'none') from customers",
     "phantom: cannot use customers.email (deterministic) in COALESCE: the database only holds "
     "ciphertext"},
    {"select case email when 'a' then 1 end from customers",
     "phantom: cannot use customers.email (deterministic) in a CASE expression: the database only "
     "holds ciphertext"},
    {"select * from customers where email = any($1)",
     "phantom: cannot apply = ANY/ALL (array) to customers.email (deterministic): list the values "
     "with IN (...) instead"},
    {"insert into customers values (1, 'a')",
     "phantom: INSERT into protected table customers needs a column list (phantom must know which "
     "values to encrypt)"},
    {"prepare p (text) as select * from customers where email = $1",
     "phantom: SQL-level PREPARE with parameters bound to protected columns is not supported; use "
     "the extended query protocol"},
    {"create view v as select email from customers",
     "phantom: CREATE VIEW over protected columns is not supported: its results could not be "
     "decrypted"},
    {"create table t2 as select email from customers",
     "phantom: CREATE TABLE AS / SELECT INTO over protected columns is not supported: its results "
     "could not be decrypted"},
    {"do $$ begin insert into customers (email) values ('x'); end $$",
     "phantom: DoStmt statements that involve a protected table are not supported"},
    {"merge into customers c using src s on c.id = s.id when matched then update set email = s.e",
     "phantom: MergeStmt statements that involve a protected table are not supported"},
    {"copy (select email from customers) to stdout",
     "phantom: COPY (query) over protected columns is not supported; COPY the table instead"},
    {"copy customers from '/tmp/data.csv'",
     "phantom: server-side COPY FROM a file or program on protected table customers is not "
     "supported; use COPY ... FROM STDIN"},
    {"create table customers (id int, full_name text unique)",
     "phantom: cannot apply UNIQUE to customers.full_name (randomized): randomized encryption "
     "supports only storing, fetching and IS [NOT] NULL"},
    {"create table customers (id int, full_name text, primary key (full_name))",
     "phantom: cannot apply PRIMARY KEY to customers.full_name (randomized): randomized encryption "
     "supports only storing, fetching and IS [NOT] NULL"},
    {"create table customers (email text default 'x')",
     "phantom: cannot apply DEFAULT to customers.email (deterministic): the default would be "
     "stored as plaintext; let the application supply the value"},
    {"create table customers (email text check (email <> ''))",
     "phantom: cannot apply a CHECK constraint to customers.email (deterministic): the database "
     "only holds ciphertext"},
    {"create table customers (age text)",
     "phantom: customers.age is declared as text but configured as int4; set `type:` in the "
     "encrypt config or declare it as int4"},
    {"alter table customers alter column email type varchar(300)",
     "phantom: cannot apply ALTER COLUMN ... TYPE to customers.email (deterministic): it is stored "
     "as ciphertext; change `type:` in the encrypt config and migrate"},
    {"alter table customers alter column email set default 'x'",
     "phantom: cannot apply DEFAULT to customers.email (deterministic): the default would be "
     "stored as plaintext"},
    {"alter table customers rename column email to mail",
     "phantom: renaming protected column customers.email through the proxy is not supported; "
     "rename it in the encrypt config at the same time"},
    {"alter table customers rename to clients",
     "phantom: renaming protected table customers through the proxy is not supported; rename it in "
     "the encrypt config at the same time"},
    {"create table t2 (x text references customers (email))",
     "phantom: cannot apply FOREIGN KEY from a plaintext column to customers.email "
     "(deterministic): the referenced values are ciphertext"},
    {"create table payments (customer_email text references customers)",
     "phantom: the foreign key on payments.customer_email must name the referenced column"},
    {"create index on customers (lower(email))",
     "phantom: cannot apply an index expression to customers.email (deterministic): the database "
     "only holds ciphertext"},
    {"create unique index on customers (full_name)",
     "phantom: cannot apply a UNIQUE index to customers.full_name (randomized): randomized "
     "encryption supports only storing, fetching and IS [NOT] NULL"},
    {"create table customers (email text collate \"C\")",
     "phantom: cannot apply COLLATE to customers.email (deterministic): the database only holds "
     "ciphertext"},
    {"create table customers (age int generated always as identity)",
     "phantom: cannot apply GENERATED ... AS IDENTITY to customers.age (ope): the database only "
     "holds ciphertext"},
    {"select * from customers where email = U&'\\0061'",
     "phantom: Unicode-escaped string literals (U&'...') are not supported for protected columns"},
    {"select * from customers where email = B'101'",
     "phantom: bit-string literals cannot be stored in protected columns"},
    {"select * from customers where signup_day = '2024-01-01'::timestamp",
     "phantom: cannot apply a cast to timestamp to a value for customers.signup_day (ope): the "
     "column's type is date"},
    {"select * from customers c join (select plan_tier as email from t) x using (email)",
     "phantom: cannot apply JOIN ... USING (email) between customers.email (deterministic) and a "
     "plaintext column"},
    {"select * from customers where age = (select 5)",
     "phantom: cannot compare customers.age (ope) with a plaintext column or computed value: the "
     "database only holds ciphertext"},
    {"select * from customers where address->>'city' = 'Paris'",
     "phantom: cannot apply operator ->> to customers.address (randomized): the database only "
     "holds ciphertext"},
    {"select * from customers where email in (select plan_tier from customers)",
     "phantom: cannot compare customers.email (deterministic) with a plaintext column or computed "
     "value: the database only holds ciphertext"},
    {"select array(select email from customers)",
     "phantom: cannot use customers.email (deterministic) in ARRAY(subquery): the database only "
     "holds ciphertext"},
    {"select * from customers where exists (select 1 from payments where card_number = 'x')",
     "phantom: cannot apply = to payments.card_number (randomized): randomized encryption supports "
     "only storing, fetching and IS [NOT] NULL"},
    {"select email from customers for update; select * from customers where tax_id = '1'",
     "phantom: cannot apply = to customers.tax_id (randomized): randomized encryption supports "
     "only storing, fetching and IS [NOT] NULL"},
};

/* No string literal of the statement may appear in the message. */
static void assert_no_literal_in(const char *sql, const char *message)
{
    for (const char *p = strchr(sql, '\''); p; p = strchr(p, '\'')) {
        const char *end = strchr(p + 1, '\'');
        if (!end)
            break;
        char lit[128];
        size_t n = (size_t)(end - p - 1);
        if (n >= 3 && n < sizeof lit) {
            memcpy(lit, p + 1, n);
            lit[n] = '\0';
            if (strstr(message, lit))
                fail_msg("message quotes the literal '%s': %s", lit, message);
        }
        p = end + 1;
    }
}

static void expect_refused(const ph_schema *s, const char *sql, const char *message)
{
    ph_rw_result r;
    fake_crypto fc = {0};
    ph_rw_options opt = {.encrypt = fake_encrypt, .encrypt_ud = &fc};
    ph_rw_status st = ph_rewrite(s, sql, strlen(sql), &opt, &r);
    if (st != PH_RW_REFUSED)
        fail_msg("%s\n  status %d, want REFUSED (%s)", sql, st, r.message);
    if (strcmp(r.message, message) != 0)
        fail_msg("%s\n  got:  %s\n  want: %s", sql, r.message, message);
    assert_string_equal(r.sqlstate, "0A000");
    assert_null(r.sql);
    assert_null(r.params);
    assert_null(r.stmts);
    assert_int_equal(fc.calls, 0);
    assert_true(ph_rewrite_mentions_protected(s, sql, strlen(sql)));
    assert_no_literal_in(sql, r.message);
    ph_rw_result_free(&r);
}

static void test_refusals(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++)
        expect_refused(S, refusals[i].sql, refusals[i].message);
}

static void test_positions(void **state)
{
    (void)state;
    ph_rw_result r;
    /* the position points at the offending expression (1-based characters) */
    const char *sql = "select * from customers where email like 'x'";
    assert_int_equal(fixture_rewrite(S, sql, &r), PH_RW_REFUSED);
    assert_int_equal(r.position, (int)(strstr(sql, "like") - sql) + 1); /* at the operator */
    ph_rw_result_free(&r);
    sql = "select 'é', lower(email) from customers";
    assert_int_equal(fixture_rewrite(S, sql, &r), PH_RW_REFUSED);
    assert_int_equal(r.position, 13); /* é is one character, two bytes */
    ph_rw_result_free(&r);
}

static void test_refused_statement_in_batch(void **state)
{
    (void)state;
    /* one refused statement refuses the whole string: nothing is sent */
    expect_refused(S,
                   "insert into customers (email) values ('ok'); select * from customers where "
                   "email like 'x%'",
                   "phantom: cannot apply LIKE to customers.email (deterministic): the database "
                   "only holds ciphertext");
}

static void test_ambiguous_table(void **state)
{
    (void)state;
    static const char yaml[] = "encrypt:\n  t:\n    - a: deterministic\n  other.t:\n    - b\n";
    ph_schema *s;
    char err[256];
    assert_int_equal(ph_schema_load_buffer(&s, yaml, sizeof yaml - 1, "t.yaml", err, sizeof err),
                     0);
    expect_refused(s, "select * from t where a = 'x'",
                   "phantom: table name t is protected in more than one schema; qualify it with "
                   "its schema");
    ph_rw_result r;
    const char *sql = "select * from public.t where a = 'x'";
    assert_int_equal(fixture_rewrite(s, sql, &r), PH_RW_OK);
    assert_non_null(r.sql);
    ph_rw_result_free(&r);
    ph_schema_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_positions),
        cmocka_unit_test(test_refused_statement_in_batch),
        cmocka_unit_test(test_ambiguous_table),
    };
    return cmocka_run_group_tests(tests, fixture_setup, fixture_teardown);
}
