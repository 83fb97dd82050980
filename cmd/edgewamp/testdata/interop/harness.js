'use strict';
// Shared by the Node interop scripts (autobahn_js.js, wampy_js.mjs).
//
// Protocol with cmd/edgewamp/interop_test.go: every line a script writes to
// stdout is one JSON object:
//   {"check": NAME, "ok": BOOL, "detail": TEXT}   one result
//   {"ready": true}                                a peer has set itself up
//   {"done": true, "passed": N, "failed": M}       the script's last line
// Anything else (client logging) goes to stderr; console.log is redirected
// there because both clients log through it.

const util = require('node:util');

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
console.log = (...a) => process.stderr.write(util.format(...a) + '\n');
console.info = console.log;
console.debug = console.log;
console.warn = console.log;

let passed = 0;
let failed = 0;

function report(name, ok, detail) {
  if (ok) passed++; else failed++;
  out({ check: name, ok: !!ok, detail: detail === undefined ? '' : String(detail) });
}

// canon turns a decoded WAMP value into a plain, comparable JSON value:
// binary (Buffer, Uint8Array, ArrayBuffer) becomes {"$bytes": HEX}, a Date
// {"$date": ISO text} (not its text, nor the {} of its own keys), BigInt a
// Number when it is exact, object keys are sorted.
function canon(v) {
  if (v === undefined || v === null) return null;
  if (v instanceof Date) return { $date: Number.isNaN(v.getTime()) ? 'invalid' : v.toISOString() };
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : { $bigint: v.toString() };
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return { $bytes: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex') };
  if (v instanceof ArrayBuffer) return { $bytes: Buffer.from(v).toString('hex') };
  if (Array.isArray(v)) return v.map(canon);
  if (typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v).sort()) o[k] = canon(v[k]);
    return o;
  }
  return v;
}

const show = (v) => JSON.stringify(canon(v));

function eq(name, got, want) {
  const g = show(got);
  const w = show(want);
  report(name, g === w, g === w ? g.slice(0, 200) : `got ${g} want ${w}`);
  return g === w;
}

function check(name, cond, detail) {
  report(name, cond, detail);
  return !!cond;
}

// step runs one scenario step; an exception fails it (and only it).
async function step(name, fn) {
  try {
    await fn();
  } catch (e) {
    report(name, false, 'exception: ' + describe(e));
  }
}

function describe(e) {
  if (e === undefined || e === null) return String(e);
  if (typeof e === 'string') return e;
  if (e.error !== undefined || e.errorUri !== undefined) {
    return `${e.error ?? e.errorUri} args=${show(e.args ?? e.argsList)} kwargs=${show(e.kwargs ?? e.argsDict)}`;
  }
  return (e.stack || e.message || util.inspect(e)).split('\n').slice(0, 3).join(' | ');
}

function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([
    Promise.resolve(p).finally(() => clearTimeout(t)),
    new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`timeout after ${ms} ms: ${what}`)), ms); }),
  ]);
}

// settle waits for p and returns {ok, value} or {ok: false, error}, within ms.
async function settle(p, ms, what) {
  try {
    return { ok: true, value: await withTimeout(p, ms, what) };
  } catch (e) {
    return { ok: false, error: e };
  }
}

// Inbox collects messages (events, invocations) and lets a step wait for a
// condition on them.
class Inbox {
  constructor() { this.items = []; this.waiters = []; }
  push(x) {
    this.items.push(x);
    for (const w of this.waiters.slice()) if (w.pred(this.items)) { w.done(); }
  }
  wait(pred, ms, what) {
    if (pred(this.items)) return Promise.resolve(this.items);
    const d = deferred();
    const w = { pred, done: () => { this.waiters.splice(this.waiters.indexOf(w), 1); d.resolve(this.items); } };
    this.waiters.push(w);
    return withTimeout(d.promise, ms, what).catch((e) => {
      const i = this.waiters.indexOf(w);
      if (i >= 0) this.waiters.splice(i, 1);
      throw e;
    });
  }
}

function args(argv) {
  const a = {};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--')) {
      const k = argv[i].slice(2);
      const v = i + 1 < argv.length && !argv[i + 1].startsWith('--') ? argv[++i] : 'true';
      a[k] = v;
    }
  }
  return a;
}

function ready() { out({ ready: true }); }

function finish() {
  out({ done: true, passed, failed });
  // Let stdout drain before exiting.
  process.stdout.write('', () => process.exit(failed === 0 && passed > 0 ? 0 : 1));
}

// WAMP JSON binary convention (WAMP spec, "Binary Conversion of JSON
// Strings"): a byte string travels as "\0" + base64. Neither Autobahn|JS nor
// wampy implement it in their JSON serializers (a Buffer is written as
// {"type":"Buffer","data":[...]} and a Uint8Array as {"0":..,"1":..}), so the
// harness passes these to the clients' own extension points.
function jsonReplacer(key, value) {
  const orig = this[key];
  if (Buffer.isBuffer(orig) || orig instanceof Uint8Array) {
    return '\u0000' + Buffer.from(orig.buffer, orig.byteOffset, orig.byteLength).toString('base64');
  }
  return value;
}

function jsonReviver(key, value) {
  if (typeof value === 'string' && value.charCodeAt(0) === 0) {
    return Buffer.from(value.slice(1), 'base64');
  }
  return value;
}

// Payloads shared by the scenarios. BYTES covers every byte value.
const BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const MIXED_ARGS = [1, -2, 3.5, 'two', 'ü€𝄞', true, false, null, [1, [2, 3]], { k: 'v', n: { m: 1 } }, 9007199254740991, -9007199254740991];
const MIXED_KWARGS = { x: 1, s: 'straße', list: [true, null], nested: { deep: [1.25, 'x'] } };

module.exports = {
  report, check, eq, step, canon, show, describe, deferred, sleep, withTimeout, settle, Inbox, args,
  ready, finish, jsonReplacer, jsonReviver, BYTES, MIXED_ARGS, MIXED_KWARGS,
};
