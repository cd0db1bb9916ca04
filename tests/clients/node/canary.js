'use strict';
// tests/clients/node/canary.js — the plaintext-leak canary for node clients:
// the same values as tests/lib/canary.sh and tests/clients/canary.py, each
// appended (one line, one write) to $PHANTOM_CANARY_DIR/values (default
// $PGH_TMP/canary/values, else /tmp/canary/values), so that the snapshot at
// the end of the test can prove none of them reached the database in the
// clear. The values are not secret: they only have to be unique.
//
//   const canary = require('./canary');
//   canary.text('tag')   -> 'cnry-tag-<20 hex>'
//   canary.email()       -> 'cnry<20 hex>@example.com'
//   canary.integer()     -> a random 15-digit integer starting with 7 (a string)

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

function valuesPath() {
  const dir = process.env.PHANTOM_CANARY_DIR || path.join(process.env.PGH_TMP || '/tmp', 'canary');
  return path.join(dir, 'values');
}

function record(v) {
  const p = valuesPath();
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.appendFileSync(p, `${v}\n`);
  return v;
}

function text(tag = 'x') {
  return record(`cnry-${tag}-${crypto.randomBytes(10).toString('hex')}`);
}

function email() {
  return record(`cnry${crypto.randomBytes(10).toString('hex')}@example.com`);
}

function integer() {
  const digits = crypto.randomBytes(8).readBigUInt64BE().toString().slice(0, 14).padEnd(14, '3');
  return record(`7${digits}`);
}

module.exports = { text, email, integer, record, valuesPath };
