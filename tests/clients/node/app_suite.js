'use strict';
// node-postgres (pg) as the seed's financial-SaaS application through the
// encrypting proxy (issue 5). Run by tests/integration/test_encrypt_app.sh
// after tests/clients/app_suite.py has loaded the data set.
//
// Environment:
//   PROXY_PORT   the proxy, in front of the encrypted database ENC_DB
//   DIRECT_PORT  a server whose PLAIN_DB holds the same data with plain types
//                (the reference; a second server, not the encrypted one)
//   ENC_DB, PLAIN_DB
//   SECRETS_OUT  a file to which the protected plaintexts this suite writes
//                are appended (the caller's leak check looks for them)
// The protected values this suite writes and looks up are leak canaries
// (./canary.js, recorded in $PHANTOM_CANARY_DIR/values).
// Every check runs the same statement through the proxy on the encrypted
// database and directly on the plain copy and compares rows, field types
// (RowDescription) and command tags; refusals are checked for SQLSTATE 0A000,
// a message naming table, column, mode and operation, and a usable
// connection afterwards. Prints "ok - ..." / "FAIL - ..." per check, then
// "N passed, N failed"; exits non-zero on any failure.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const { Client } = require('pg');
const canary = require('./canary');

const proxyPort = Number(process.env.PROXY_PORT);
const directPort = Number(process.env.DIRECT_PORT);
const encDb = process.env.ENC_DB;
const plainDb = process.env.PLAIN_DB;
const secretsOut = process.env.SECRETS_OUT;
if (!proxyPort || !directPort || !encDb || !plainDb || !secretsOut) {
  console.error('PROXY_PORT, DIRECT_PORT, ENC_DB, PLAIN_DB and SECRETS_OUT must be set');
  process.exit(2);
}

// Protected plaintexts written by this suite (the leak check greps for them).
const NODE = {
  email: canary.email(),
  fullName: `Nadia Nodeworth ${canary.text('name')}`,
  phone: `+34 600 555 123 ${canary.text('phone')}`,
  taxId: `ES-TX-555000111-NODE ${canary.text('tax')}`,
  street: `55 Callbackgasse ${canary.text('street')}`,
  city: `Eventloop ${canary.text('city')}`,
  postcode: `ZQ5555-NODE ${canary.text('postcode')}`,
  phone2: `+34 600 555 987 ${canary.text('phone')}`,
  card: `4555 5550 6666 0006 ${canary.text('card')}`,
  likeMarker: canary.text('node-refused-like-marker'),
  unknownEmail: canary.email(),
  otherEmail: canary.email(),
};
fs.appendFileSync(secretsOut, Object.values(NODE).join('\n') + '\n');

function cfg(port, database) {
  return {
    host: '127.0.0.1', port, database, user: 'phantom_scram', password: 'scram_pw',
    connectionTimeoutMillis: 10000, statement_timeout: 30000, application_name: 'phantom_app_node',
  };
}

const checks = [];
function check(name, fn) { checks.push({ name, fn }); }

let P; // through the proxy, encrypted database
let D; // direct, plain copy

function fields(r) {
  return r.fields.map((f) => [f.name, f.dataTypeID, f.format]);
}

// Comparable form of a value: pg's binary parsers hang closures on Date
// objects (microseconds), and bytea/unknown binary values are Buffers.
function norm(v) {
  if (v instanceof Date) return `date:${v.toISOString()}:${v.usec ?? ''}`;
  if (Buffer.isBuffer(v)) return `buf:${v.toString('hex')}`;
  if (Array.isArray(v)) return v.map(norm);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).filter(([, x]) => typeof x !== 'function').map(([k, x]) => [k, norm(x)]));
  }
  return v;
}

function sortRows(rows) {
  return rows.map((r) => JSON.stringify(norm(r))).sort();
}

// both(label, query, { unordered, minRows }) -> rows (through the proxy)
async function both(label, query, opts = {}) {
  const { unordered = false, minRows = 1 } = opts;
  const p = await P.query(query);
  const d = await D.query(query);
  assert.deepEqual(fields(p), fields(d), `${label}: fields (name, type, format)`);
  assert.equal(p.command, d.command, `${label}: command`);
  assert.equal(p.rowCount, d.rowCount, `${label}: row count`);
  if (unordered) {
    assert.deepEqual(sortRows(p.rows), sortRows(d.rows), `${label}: rows (any order)`);
  } else {
    assert.deepEqual(norm(p.rows), norm(d.rows), `${label}: rows`);
  }
  assert.ok(p.rows.length >= minRows, `${label}: ${p.rows.length} rows, want >= ${minRows}`);
  return p.rows;
}

async function expectRefusal(client, query, fragments, what) {
  let err;
  try {
    await client.query(query);
  } catch (e) {
    err = e;
  }
  assert.ok(err, `${what}: not refused`);
  assert.equal(err.code, '0A000', `${what}: SQLSTATE ${err.code} (${err.message})`);
  for (const f of fragments) {
    assert.ok(err.message.includes(f), `${what}: message does not name ${f}: ${err.message}`);
  }
  assert.equal(err.severity, 'ERROR', `${what}: severity`);
  return err;
}

let emails = [];

check('login lookup WHERE email = $1 (text parameters, unnamed and named statements, binary results)', async () => {
  emails = (await D.query('SELECT email FROM customers ORDER BY id LIMIT 8')).rows.map((r) => r.email);
  assert.equal(emails.length, 8, 'sample emails');
  const text = 'SELECT id, email, full_name, phone, tax_id, address, plan_tier, created_at, country_code FROM customers WHERE email = $1';
  for (const e of emails.slice(0, 4)) {
    const rows = await both('login', { text, values: [e] });
    assert.equal(rows.length, 1, 'one row per email');
    assert.equal(rows[0].email, e, 'decrypted email');
    assert.equal(typeof rows[0].full_name, 'string', 'full_name decoded as text');
  }
  for (const e of emails) { // a named prepared statement, reused
    await both('login (named statement)', { name: 'app_login', text, values: [e] });
  }
  for (const e of emails.slice(4)) {
    // fields() compares the format too: the proxy must answer in binary as asked
    await both('login (binary results)', { text: 'SELECT * FROM customers WHERE email = $1', values: [e], binary: true });
  }
  await both('login: unknown email', { text, values: [NODE.unknownEmail] }, { minRows: 0 });
});

check('plan filtering and sorting by created_at', async () => {
  for (const plan of ['starter', 'business', 'enterprise']) {
    await both(`plan ${plan}`, { text: 'SELECT id, email, full_name, address, created_at FROM customers WHERE plan_tier = $1 ORDER BY created_at, id', values: [plan] }, { minRows: 20 });
  }
  await both('sort', 'SELECT email, phone, created_at FROM customers ORDER BY created_at DESC, id LIMIT 40', { minRows: 40 });
});

check('paid_on BETWEEN / ORDER BY paid_on (ope date)', async () => {
  const q = 'SELECT id, customer_email, card_number, amount, paid_on FROM payments WHERE paid_on BETWEEN $1 AND $2 ORDER BY paid_on, id';
  await both('BETWEEN', { text: q, values: ['2024-04-01', '2024-04-30'] }, { minRows: 10 });
  await both('BETWEEN (named)', { name: 'app_between', text: q, values: ['1999-01-01', '2000-12-31'] }, { minRows: 2 });
  await both('BETWEEN (named, again)', { name: 'app_between', text: q, values: ['2024-10-01', '2024-10-15'] }, { minRows: 2 });
  await both('ORDER BY paid_on', 'SELECT id, paid_on FROM payments ORDER BY paid_on DESC NULLS LAST, id', { minRows: 900 });
  await both('paid_on >', { text: 'SELECT id FROM payments WHERE paid_on > $1 ORDER BY paid_on, id', values: ['2024-12-01'] }, { minRows: 5 });
});

check('GROUP BY email with counts; JOIN on email', async () => {
  await both('GROUP BY', 'SELECT customer_email, count(*)::int AS n, sum(amount) AS total FROM payments GROUP BY customer_email', { unordered: true, minRows: 50 });
  await both('JOIN', { text: 'SELECT c.email, c.full_name, p.card_number, p.amount, p.paid_on FROM payments p JOIN customers c ON c.email = p.customer_email WHERE c.plan_tier = $1 ORDER BY p.id', values: ['business'] }, { minRows: 50 });
  await both('JOIN + email parameter', { text: 'SELECT p.id, p.amount FROM payments p JOIN customers c ON c.email = p.customer_email WHERE c.email = $1 ORDER BY p.id', values: [emails[0]] }, { minRows: 0 });
});

check('INSERT ... RETURNING, UPDATE ... SET phone, ON CONFLICT, DELETE WHERE email = (both sides)', async () => {
  const id = 'a0de0000-0000-4000-8000-000000000de1';
  const addr = { city: NODE.city, street: NODE.street, country: 'ES', postcode: NODE.postcode };
  const ins = {
    text: 'INSERT INTO customers (id, email, full_name, phone, tax_id, address, plan_tier, created_at, country_code) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *',
    values: [id, NODE.email, NODE.fullName, NODE.phone, NODE.taxId, JSON.stringify(addr), 'business', '2024-09-09T09:09:09Z', 'ES'],
  };
  const rows = await both('INSERT RETURNING *', ins);
  assert.equal(rows[0].full_name, NODE.fullName, 'RETURNING decrypted');
  assert.deepEqual(rows[0].address, addr, 'jsonb RETURNING decrypted and parsed');
  await both('UPDATE SET phone', { text: 'UPDATE customers SET phone = $1 WHERE email = $2 RETURNING email, phone', values: [NODE.phone2, NODE.email] });
  await both('ON CONFLICT DO UPDATE', { text: 'INSERT INTO customers (id, email, plan_tier, created_at, country_code) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (email) DO UPDATE SET plan_tier = EXCLUDED.plan_tier RETURNING id, email, full_name, phone, plan_tier', values: ['a0de0000-0000-4000-8000-000000000de2', NODE.email, 'enterprise', '2024-09-10T00:00:00Z', 'ES'] });
  await both('INSERT payment', { text: 'INSERT INTO payments (id, customer_email, card_number, amount, paid_on) VALUES ($1, $2, $3, $4, $5) RETURNING *', values: [7001, NODE.email, NODE.card, '77.70', '2024-09-11'] });
  await both('read back via JOIN', { text: 'SELECT c.full_name, c.phone, p.card_number, p.paid_on FROM customers c JOIN payments p ON p.customer_email = c.email WHERE c.email = $1', values: [NODE.email] });
  await both('DELETE payment', { text: 'DELETE FROM payments WHERE customer_email = $1 RETURNING id, card_number', values: [NODE.email] });
  await both('DELETE customer', { text: 'DELETE FROM customers WHERE email = $1 RETURNING email, full_name, tax_id', values: [NODE.email] });
  await both('gone', { text: 'SELECT count(*)::int AS n FROM customers WHERE email = $1', values: [NODE.email] });
});

check('refusals: LIKE, ORDER BY email, SUM, arithmetic, key domains (0A000, connection usable)', async () => {
  const cases = [
    [`SELECT id FROM customers WHERE email LIKE '%${NODE.likeMarker}%'`, ['customers.email', 'deterministic', 'LIKE']],
    [{ text: 'SELECT id FROM customers WHERE full_name ILIKE $1', values: [`%${NODE.likeMarker}%`] }, ['customers.full_name', 'randomized', 'ILIKE']],
    ['SELECT id FROM customers ORDER BY email', ['customers.email', 'deterministic', 'ORDER BY']],
    ['SELECT sum(balance) FROM accounts', ['accounts.balance', 'randomized', 'SUM']],
    ['SELECT paid_on + 7 FROM payments', ['payments.paid_on', 'ope', '+']],
    ['SELECT 1 FROM accounts a JOIN payments p ON p.customer_email = a.owner_email', ['accounts.owner_email', 'payments.customer_email', 'key domain']],
    [{ text: 'SELECT id FROM customers WHERE phone = $1', values: [NODE.phone] }, ['customers.phone', 'randomized', '=']],
  ];
  const n = (await D.query('SELECT count(*)::int AS n FROM customers')).rows[0].n;
  for (const [q, frags] of cases) {
    await expectRefusal(P, q, frags, typeof q === 'string' ? q : q.text);
    const r = await P.query({ text: 'SELECT count(*)::int AS n FROM customers WHERE email <> $1', values: [NODE.otherEmail] });
    assert.equal(r.rows[0].n, n, 'connection usable after the refusal');
  }
});

async function main() {
  P = new Client(cfg(proxyPort, encDb));
  D = new Client(cfg(directPort, plainDb));
  const stray = [];
  P.on('error', (e) => stray.push(`proxy client: ${e.message}`));
  D.on('error', (e) => stray.push(`direct client: ${e.message}`));
  await P.connect();
  await D.connect();
  let passed = 0;
  let failed = 0;
  for (const { name, fn } of checks) {
    const t0 = Date.now();
    try {
      await fn();
      if (stray.length) throw new Error(`unexpected 'error' events: ${stray.splice(0).join('; ')}`);
      passed += 1;
      console.log(`ok - ${name} [${((Date.now() - t0) / 1000).toFixed(2)}s]`);
    } catch (e) {
      failed += 1;
      console.log(`FAIL - ${name}: ${e.message}`);
    }
  }
  await P.end();
  await D.end();
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.log(`FAIL - node app suite: ${e.stack || e}`);
  process.exit(1);
});
