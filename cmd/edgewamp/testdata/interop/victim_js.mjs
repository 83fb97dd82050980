// A JavaScript WAMP peer that another (hostile) peer targets, driven by
// jsvictim_test.go: Autobahn|JS 22.11.1 or wampy 8.0.2, any serializer.
//
//   node victim_js.mjs --lib autobahn|wampy --url ws://HOST:PORT/ws --serializer json|msgpack|cbor --mode MODE[,MODE]
//
// Every mode subscribes to v.ok and prints its events (the test's sign of
// life). Modes, one or more (comma-separated):
// sub: subscribes to v.bad and prints every event.
// callee: registers v.echo (answers with the arguments it got).
// caller: (after --delay ms) calls --proc and prints the result or error.
// pub-undefined (wampy): publishes [1, undefined], {a: undefined, b: 2} on v.bad.
// The process exits after --life ms (8000).
// Lines (stdout, one JSON object each): {"ready":true}; {"event":TOPIC,
// "args":..,"kwargs":..,"details":..}; {"invocation":..}; {"result":..} /
// {"error":..}; {"closed":REASON}.

import { createRequire } from 'node:module';
import WebSocket from 'ws';

const require = createRequire(import.meta.url);
const H = require('./harness.js');
const opt = H.args(process.argv.slice(2));
const LIB = opt.lib || 'autobahn';
const SER = opt.serializer || 'json';
const MODES = (opt.mode || 'sub').split(',');
const out = (o) => process.stdout.write(JSON.stringify(o, (k, v) => (typeof v === 'bigint' ? { $bigint: v.toString() } : v)) + '\n');

const view = (v) => {
  try { return H.canon(v); } catch (e) { return { $uncanon: String(e) }; }
};

async function autobahnPeer() {
  const autobahn = require('autobahn');
  const ser = { json: () => new autobahn.serializer.JSONSerializer(H.jsonReplacer, H.jsonReviver),
    msgpack: () => new autobahn.serializer.MsgpackSerializer(),
    cbor: () => new autobahn.serializer.CBORSerializer() }[SER]();
  const conn = new autobahn.Connection({ url: opt.url, realm: 'realm1', serializers: [ser], max_retries: 0, retry_if_unreachable: false });
  const d = H.deferred();
  conn.onopen = (s) => d.resolve(s);
  conn.onclose = (reason, details) => { out({ closed: reason, details: view(details) }); d.reject(new Error(reason)); return true; };
  conn.open();
  const s = await H.withTimeout(d.promise, 10000, 'connect');
  const api = {
    sub: (topic) => s.subscribe(topic, (a, k, det) => out({ event: topic, args: view(a), kwargs: view(k), details: view(det) })),
    reg: (proc) => s.register(proc, (a, k, det) => { out({ invocation: proc, args: view(a), kwargs: view(k) }); return new autobahn.Result(a || [], k || {}); }),
    call: async (proc) => {
      try {
        const r = await s.call(proc, [], {});
        out({ result: view(r instanceof autobahn.Result ? { args: r.args, kwargs: r.kwargs } : { args: [r] }) });
      } catch (e) { out({ error: view(e && e.error), args: view(e && e.args), kwargs: view(e && e.kwargs) }); }
    },
  };
  return api;
}

async function wampyPeer() {
  const { Wampy } = await import('wampy');
  const { MsgpackSerializer } = await import('wampy/MsgpackSerializer.js');
  const { CborSerializer } = await import('wampy/CborSerializer.js');
  class WampJsonSerializer {
    constructor() { this.protocol = 'json'; this.isBinary = false; }
    encode(data) { return JSON.stringify(data, H.jsonReplacer); }
    decode(data) { return JSON.parse(typeof data === 'string' ? data : Buffer.from(data).toString('utf8'), H.jsonReviver); }
  }
  const ser = { json: () => new WampJsonSerializer(), msgpack: () => new MsgpackSerializer(), cbor: () => new CborSerializer() }[SER]();
  const w = new Wampy(opt.url, { realm: 'realm1', ws: WebSocket, serializer: ser, autoReconnect: false,
    onClose: () => out({ closed: 'onClose' }),
    onError: (e) => out({ closed: 'onError', details: String(e && (e.message || e)) }) });
  await H.withTimeout(w.connect(), 10000, 'connect');
  return {
    sub: (topic) => w.subscribe(topic, (e) => out({ event: topic, args: view(e.argsList), kwargs: view(e.argsDict), details: view(e.details) })),
    reg: (proc) => w.register(proc, (e) => { out({ invocation: proc, args: view(e.argsList), kwargs: view(e.argsDict) }); return { argsList: e.argsList, argsDict: e.argsDict }; }),
    pub: async (topic, argsList, argsDict) => {
      try {
        await w.publish(topic, { argsList, argsDict }, { acknowledge: true });
        out({ published: topic });
      } catch (e) { out({ publishError: String(e && (e.message || e.error || e)) }); }
    },
    call: async (proc) => {
      try {
        const r = await w.call(proc, []);
        out({ result: view({ args: r.argsList, kwargs: r.argsDict }) });
      } catch (e) { out({ error: view(e && e.error), args: view(e && e.argsList), kwargs: view(e && e.argsDict) }); }
    },
  };
}

const api = LIB === 'wampy' ? await wampyPeer() : await autobahnPeer();
await api.sub('v.ok');
if (MODES.includes('sub')) await api.sub('v.bad');
if (MODES.includes('callee')) await api.reg('v.echo');
if (MODES.includes('caller')) setTimeout(() => api.call(opt.proc || 'v.hostile'), Number(opt.delay || 500));
// pub-undefined: what a JavaScript application writes every day, an
// undefined member or element (wampy's msgpackr writes it as d4 00 00).
if (MODES.includes('pub-undefined')) setTimeout(() => api.pub('v.bad', [1, undefined], { a: undefined, b: 2 }), 100);
out({ ready: true });
setTimeout(() => process.exit(0), Number(opt.life || 8000));
