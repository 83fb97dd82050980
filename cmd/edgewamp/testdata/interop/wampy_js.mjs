// wampy.js (npm wampy 8.0.2, with the ws WebSocket implementation) against
// edgewamp.
//
//   node wampy_js.mjs --url ws://HOST:PORT/ws --serializer json|msgpack|cbor [--mode M]
//
// Modes: suite (default), x-binary, x-mixed-caller, x-rpc, x-rpc-sub,
// x-shared-peer (roles in the cross-client scenarios driven by
// interop_test.go), x-proginv (interop_proginv_test.go). Output: see
// harness.js.

import { createRequire } from 'node:module';
import { Wampy } from 'wampy';
import { MsgpackSerializer } from 'wampy/MsgpackSerializer.js';
import { CborSerializer } from 'wampy/CborSerializer.js';
import WebSocket from 'ws';

const require = createRequire(import.meta.url);
const H = require('./harness.js');

const opt = H.args(process.argv.slice(2));
const SER = opt.serializer || 'json';
const MODE = opt.mode || 'suite';

// wampy's JsonSerializer is JSON.stringify/JSON.parse: a Uint8Array goes out
// as {"0":..,"1":..} and "\0"+base64 strings stay strings. wampy takes any
// object with protocol/isBinary/encode/decode as its serializer, so the
// harness gives it one that follows the WAMP JSON binary convention.
class WampJsonSerializer {
  constructor() { this.protocol = 'json'; this.isBinary = false; }
  encode(data) { return JSON.stringify(data, H.jsonReplacer); }
  decode(data) { return JSON.parse(typeof data === 'string' ? data : Buffer.from(data).toString('utf8'), H.jsonReviver); }
}

// wampy's own MsgpackSerializer and CborSerializer, as a user configures
// them. Wampy.subscribe (8.0.2) always builds SUBSCRIBE.Options as
// {match, get_retained, ...}, with undefined for options not given:
// JSON.stringify drops those members, but msgpackr writes undefined as
// fixext 1 of type 0 (d4 00 00) and cbor-x as CBOR undefined (f7). The
// router reads an undefined option as absent (it used to close the session
// on the first SUBSCRIBE: "msgpack extension types are not supported", or
// "SUBSCRIBE.Options.match must be a string"), so the harness sends wampy's
// bytes as they are.
function serializer(ser = SER) {
  switch (ser) {
    case 'json': return new WampJsonSerializer();
    case 'msgpack': return new MsgpackSerializer();
    case 'cbor': return new CborSerializer();
  }
  throw new Error('unknown serializer ' + ser);
}

const PUBLISH = 16;

// connect returns a joined Wampy instance. wampy sends authid only together
// with authmethods and insists on an onChallenge callback when either is set;
// the router never challenges an anonymous join.
async function connect(authid, ser = SER, tweak = null) {
  const w = new Wampy(opt.url, {
    realm: 'realm1',
    ws: WebSocket,
    serializer: serializer(ser),
    autoReconnect: false,
    authid,
    authmethods: ['anonymous'],
    onChallenge: () => { throw new Error('unexpected CHALLENGE'); },
    debug: !!process.env.WAMPY_DEBUG,
  });
  // Client quirk (wampy 8.0.2): a callee can send progressive results
  // (result_handler with options.progress) but HELLO does not announce callee
  // progressive_call_results, so a Dealer following the spec does not set
  // INVOCATION.Details.receive_progress for it. Announce what wampy does.
  w._wamp_features.roles.callee.features.progressive_call_results = true;
  if (tweak) tweak(w);
  // wampy answers GOODBYE without telling the application its reason; the
  // harness reads it from the decoded message.
  const closed = H.deferred();
  w.closed = closed.promise;
  const decode = w._decode.bind(w);
  w._decode = (data) => {
    const msg = decode(data);
    if (Array.isArray(msg) && msg[0] === 6) closed.resolve({ details: msg[1], reason: msg[2] }); // GOODBYE
    return msg;
  };
  w.welcome = await H.withTimeout(w.connect(), 10000, 'connect ' + authid);
  w.authid = w.welcome.authid; // assigned by the router, not the one asked for
  // With MsgPack, wampy (msgpackr defaults) decodes every uint64 as BigInt:
  // keep the raw id to send back and a Number to compare.
  w.rawId = w.getSessionId();
  w.id = Number(w.rawId);
  // Client quirk (wampy 8.0.2, Wampy.publish): exclude_me is copied into
  // PUBLISH.Options only when truthy, so exclude_me: false is silently
  // dropped, and retain is validated but never copied at all. The harness
  // adds them to the PUBLISH message itself when a step needs them.
  const send = w._send.bind(w);
  w.extraPublishOptions = null;
  w._send = (msg) => {
    if (msg && msg[0] === PUBLISH && w.extraPublishOptions) Object.assign(msg[2], w.extraPublishOptions);
    return send(msg);
  };
  return w;
}

async function publishWith(w, extra, topic, payload, options) {
  w.extraPublishOptions = extra;
  try {
    const p = w.publish(topic, payload, options);
    w.extraPublishOptions = null;
    return await p;
  } finally {
    w.extraPublishOptions = null;
  }
}

const call = (w, uri, payload, options) => w.call(uri, payload, options);
const first = (r) => (r.argsList || [])[0];

async function expectError(p, ms, what) {
  const r = await H.settle(p, ms, what);
  if (r.ok) throw new Error(`${what}: succeeded with ${H.show(r.value)}, want an error`);
  return r.error;
}

async function closeAll(ws) {
  for (const w of ws) {
    try { await H.withTimeout(w.disconnect(), 2000, 'disconnect'); } catch (e) { /* gone */ }
  }
}

// ---------------------------------------------------------------- suite

async function suite() {
  const M = await connect('meta-observer');
  const joins = new H.Inbox();
  const leaves = new H.Inbox();
  await M.subscribe('wamp.session.on_join', (e) => joins.push(e.argsList[0]));
  await M.subscribe('wamp.session.on_leave', (e) => leaves.push(e.argsList));

  const A = await connect('alice');
  const B = await connect('bob');
  const C = await connect('carol');

  await H.step('session.welcome', async () => {
    // Anonymous sessions get the authid the router assigns, not the one
    // HELLO asks for (alice, bob, carol): one each.
    const ids = [A.authid, B.authid, C.authid];
    H.check('session.welcome authid router-assigned', ids.every((x) => typeof x === 'string' && x !== '' && !['alice', 'bob', 'carol'].includes(x)) && new Set(ids).size === 3, JSON.stringify(ids));
    H.check('session.welcome roles', A.welcome.roles && A.welcome.roles.dealer && A.welcome.roles.broker, H.show(A.welcome.roles));
  });

  await H.step('meta.on_join', async () => {
    const want = { [A.id]: A.authid, [B.id]: B.authid, [C.id]: C.authid };
    const items = await joins.wait((xs) => Object.keys(want).every((id) => xs.some((x) => String(x.session) === id)), 5000, 'on_join x3');
    const got = {};
    for (const x of items) if (want[x.session]) got[x.session] = x.authid;
    H.eq('meta.on_join', got, want);
  });

  // ------------------------------------------------------------ RPC
  const slowCalls = [];
  await B.register('t.echo', ({ argsList, argsDict }) => ({ argsList: argsList || [], argsDict: argsDict || {} }));
  await B.register('t.fail', () => { throw { error: 'app.error.custom', argsList: ['bad', 42], argsDict: { why: 'because' } }; });
  await B.register('t.progress', ({ details, result_handler }) => {
    if (!details.receive_progress) return 'caller did not ask for progress';
    for (let i = 1; i <= 3; i++) result_handler({ argsList: [i], argsDict: { step: i }, options: { progress: true } });
    return { argsList: ['done'], argsDict: { count: 3 } };
  });
  await B.register('t.slow', ({ argsList }) => {
    slowCalls.push(argsList[0]);
    return new Promise((res) => setTimeout(() => res('slow-finished'), 3000));
  });
  await B.register('t.whoami', ({ details }) => ({ argsList: [details.caller ?? null, details.caller_authid ?? null, details.caller_authrole ?? null] }));

  await H.step('rpc.args_kwargs', async () => {
    const r = await call(A, 't.echo', { argsList: H.MIXED_ARGS, argsDict: H.MIXED_KWARGS });
    H.eq('rpc.args_kwargs args', r.argsList, H.MIXED_ARGS);
    H.eq('rpc.args_kwargs kwargs', r.argsDict, H.MIXED_KWARGS);
    const k = await call(A, 't.echo', { only: 'kw' });
    H.eq('rpc.kwargs_only', [k.argsList, k.argsDict], [[], { only: 'kw' }]);
  });

  await H.step('rpc.error', async () => {
    const e = await expectError(call(A, 't.fail', ['x']), 5000, 't.fail');
    H.eq('rpc.error uri+args+kwargs', [e.errorUri, e.argsList, e.argsDict], ['app.error.custom', ['bad', 42], { why: 'because' }]);
    const e2 = await expectError(call(A, 't.missing'), 5000, 't.missing');
    H.eq('rpc.no_such_procedure', e2.errorUri, 'wamp.error.no_such_procedure');
  });

  await H.step('rpc.progressive', async () => {
    const progress = [];
    const r = await H.withTimeout(call(A, 't.progress', null, { progress_callback: (x) => progress.push([x.argsList, x.argsDict]) }), 5000, 't.progress');
    H.eq('rpc.progressive progress', progress, [[[1], { step: 1 }], [[2], { step: 2 }], [[3], { step: 3 }]]);
    H.eq('rpc.progressive final', [r.argsList, r.argsDict], [['done'], { count: 3 }]);
  });

  await H.step('rpc.caller_disclose', async () => {
    const r = await call(A, 't.whoami', null, { disclose_me: true });
    H.eq('rpc.caller_disclose', r.argsList, [A.id, A.authid, 'anonymous']);
  });

  // wampy announces no callee call_canceling: every mode is a skip for the
  // router (ERROR at once, no INTERRUPT, which wampy would treat as a
  // protocol violation). wampy keeps the call pending until that ERROR.
  for (const mode of ['kill', 'killnowait', 'skip']) {
    await H.step('rpc.cancel.' + mode, async () => {
      const p = call(A, 't.slow', [mode]);
      const req = A.getOpStatus().reqId;
      await H.sleep(150);
      const t0 = Date.now();
      A.cancel(req, { mode });
      const e = await expectError(p, 2500, `canceled t.slow (${mode})`);
      H.eq(`rpc.cancel.${mode} error`, e.errorUri, 'wamp.error.canceled');
      H.check(`rpc.cancel.${mode} prompt`, Date.now() - t0 < 2000, `${Date.now() - t0} ms`);
    });
  }

  await H.step('rpc.timeout', async () => {
    const t0 = Date.now();
    const e = await expectError(call(A, 't.slow', ['timeout'], { timeout: 300 }), 3000, 't.slow with timeout');
    const dt = Date.now() - t0;
    H.eq('rpc.timeout error', e.errorUri, 'wamp.error.timeout');
    H.check('rpc.timeout elapsed', dt < 2500, `${dt} ms`);
  });

  await H.step('rpc.shared_roundrobin', async () => {
    const rb = await B.register('t.shared', () => 'bob', { invoke: 'roundrobin' });
    const rc = await C.register('t.shared', () => 'carol', { invoke: 'roundrobin' });
    H.check('rpc.shared one registration', Number(rb.registrationId) === Number(rc.registrationId), `${rb.registrationId} ${rc.registrationId}`);
    const got = [];
    for (let i = 0; i < 4; i++) got.push(first(await call(A, 't.shared')));
    H.eq('rpc.shared_roundrobin order', got, ['bob', 'carol', 'bob', 'carol']);
    const e = await expectError(A.register('t.shared', () => 'alice', { invoke: 'random' }), 5000, 'policy mismatch');
    H.eq('rpc.shared policy mismatch', e.errorUri, 'wamp.error.procedure_exists_with_different_invocation_policy');
    const e2 = await expectError(A.register('t.echo', () => 'alice'), 5000, 'register twice');
    H.eq('rpc.single already registered', e2.errorUri, 'wamp.error.procedure_already_exists');
  });

  await H.step('rpc.pattern', async () => {
    await B.register('t.pfx', ({ details }) => ['bob-prefix', details.procedure], { match: 'prefix' });
    await B.register('t..wild', ({ details }) => ['bob-wildcard', details.procedure], { match: 'wildcard' });
    await C.register('t.pfx.exact', ({ details }) => ['carol-exact', details.procedure ?? 't.pfx.exact']);
    H.eq('rpc.pattern prefix details.procedure', (await call(A, 't.pfx.a.b')).argsList, ['bob-prefix', 't.pfx.a.b']);
    H.eq('rpc.pattern wildcard details.procedure', (await call(A, 't.x.wild')).argsList, ['bob-wildcard', 't.x.wild']);
    H.eq('rpc.pattern exact wins', (await call(A, 't.pfx.exact')).argsList, ['carol-exact', 't.pfx.exact']);
  });

  // ------------------------------------------------------------ PubSub
  const inbox = { alice: new H.Inbox(), bob: new H.Inbox(), carol: new H.Inbox() };
  for (const [w, name] of [[A, 'alice'], [B, 'bob'], [C, 'carol']]) {
    await w.subscribe('t.topic', (e) => inbox[name].push(e));
  }
  let mark = 0;
  async function deliveredTo(payload, options, extra) {
    await publishWith(A, extra, 't.topic', [payload], options);
    const m = 'mark-' + (++mark);
    await publishWith(A, { exclude_me: false }, 't.topic', [m]);
    const who = [];
    for (const name of ['alice', 'bob', 'carol']) {
      const items = await inbox[name].wait((xs) => xs.some((x) => x.argsList[0] === m), 5000, `${name} receives ${m}`);
      if (items.some((x) => x.argsList[0] === payload)) who.push(name);
    }
    return who;
  }

  await H.step('pubsub.exclude_me', async () => {
    H.eq('pubsub.exclude_me default true', await deliveredTo('e-default', {}), ['bob', 'carol']);
    H.eq('pubsub.exclude_me false (added by the harness)', await deliveredTo('e-false', {}, { exclude_me: false }), ['alice', 'bob', 'carol']);
  });
  await H.step('pubsub.blackwhite', async () => {
    H.eq('pubsub.exclude session', await deliveredTo('e-excl', { exclude: [B.rawId] }), ['carol']);
    H.eq('pubsub.eligible session', await deliveredTo('e-elig', { eligible: [B.rawId] }), ['bob']);
    H.eq('pubsub.eligible_authid', await deliveredTo('e-elig-authid', { eligible_authid: C.authid }), ['carol']);
    H.eq('pubsub.exclude_authid', await deliveredTo('e-excl-authid', { exclude_authid: [B.authid] }), ['carol']);
    H.eq('pubsub.eligible_authrole', await deliveredTo('e-elig-role', { eligible_authrole: 'anonymous' }, { exclude_me: false }), ['alice', 'bob', 'carol']);
    H.eq('pubsub.exclude_authrole', await deliveredTo('e-excl-role', { exclude_authrole: ['anonymous'] }), []);
    H.eq('pubsub.eligible+exclude', await deliveredTo('e-both', { eligible: [B.rawId, C.rawId], exclude: [C.rawId] }), ['bob']);
  });
  await H.step('pubsub.publisher_disclose', async () => {
    await A.publish('t.topic', { argsList: ['disclosed'], argsDict: { k: 1 } }, { disclose_me: true });
    const items = await inbox.bob.wait((xs) => xs.some((x) => x.argsList[0] === 'disclosed'), 5000, 'disclosed event');
    const ev = items.find((x) => x.argsList[0] === 'disclosed');
    H.eq('pubsub.publisher_disclose', [ev.details.publisher, ev.details.publisher_authid, ev.argsDict], [A.id, A.authid, { k: 1 }]);
  });

  // JavaScript undefined in options and payloads: wampy's MsgPack and CBOR
  // serializers write it (the case under test), the router reads undefined
  // options as absent, passes payloads through to sessions of the same
  // serializer and transcodes them for the others as JSON.stringify would
  // (a list element becomes null, a dictionary member is left out).
  if (SER !== 'json') {
    await H.step('undefined', async () => {
      const b = Buffer.from(serializer().encode([32, 1, { match: undefined, get_retained: undefined }, 't']));
      const mark = SER === 'msgpack' ? 'd40000' : 'f7';
      H.check(`undefined: wampy ${SER} writes undefined options`, b.toString('hex').includes(mark), b.toString('hex'));
      const other = SER === 'msgpack' ? 'cbor' : 'msgpack';
      const J = await connect('json-peer', 'json');
      const O = await connect(other + '-peer', other);
      const got = { json: new H.Inbox(), [other]: new H.Inbox() };
      await J.subscribe('t.undef', (e) => got.json.push([e.argsList, e.argsDict]));
      await O.subscribe('t.undef', (e) => got[other].push([e.argsList, e.argsDict]));
      await A.publish('t.undef', { argsList: [1, undefined, 3], argsDict: { a: undefined, b: 2 } }, { acknowledge: true, exclude_me: undefined });
      H.eq('undefined: payload at a JSON subscriber', (await got.json.wait((xs) => xs.length > 0, 5000, 'JSON event'))[0], [[1, null, 3], { b: 2 }]);
      H.eq(`undefined: payload at a ${other} subscriber`, (await got[other].wait((xs) => xs.length > 0, 5000, other + ' event'))[0], [[1, null, 3], { b: 2 }]);
      await J.register('t.undef.echo', ({ argsList, argsDict }) => ({ argsList: argsList || [], argsDict: argsDict || {} }));
      const r = await call(A, 't.undef.echo', { argsList: [undefined, 'x'], argsDict: { gone: undefined, kept: true } }, { timeout: undefined, disclose_me: undefined });
      H.eq('undefined: call to a JSON callee', [r.argsList, r.argsDict], [[null, 'x'], { kept: true }]);
      await closeAll([J, O]);
    });
  }

  // Dates in payloads: wampy's MsgPack serializer (msgpackr) writes a Date
  // as the MsgPack timestamp extension (type -1), its CBOR serializer
  // (cbor-x) as tag 1 on the epoch seconds. The router passes a timestamp
  // to MsgPack sessions as it is, and gives CBOR sessions tag 1 and JSON
  // sessions the text JSON.stringify writes for a Date; tag 1 reaches
  // MsgPack sessions as a timestamp, and JSON ones as the number it tags.
  // A MsgPack Date used to end the publisher's session ("msgpack extension
  // types are not supported").
  if (SER !== 'json') {
    await H.step('date', async () => {
      const at = new Date(Date.UTC(2026, 11, 3, 19, 58, 56, 123));
      const whole = new Date(Date.UTC(2026, 11, 3, 19, 58, 56));
      const other = SER === 'msgpack' ? 'cbor' : 'msgpack';
      const S = await connect(SER + '-date-peer');
      const J = await connect('json-date-peer', 'json');
      const O = await connect(other + '-date-peer', other);
      const got = { [SER]: new H.Inbox(), json: new H.Inbox(), [other]: new H.Inbox() };
      for (const [w, ser] of [[S, SER], [J, 'json'], [O, other]]) {
        await w.subscribe('t.date', (e) => got[ser].push([e.argsList, e.argsDict]));
      }
      await A.publish('t.date', { argsList: [at], argsDict: { at: whole } }, { acknowledge: true });
      for (const ser of [SER, other]) {
        const [ev] = await got[ser].wait((xs) => xs.length > 0, 5000, ser + ' event');
        H.eq(`date: a ${SER} Date at a ${ser} subscriber is a Date`, ev, [[at], { at: whole }]);
      }
      const [ev] = await got.json.wait((xs) => xs.length > 0, 5000, 'JSON event');
      H.eq(`date: a ${SER} Date at a JSON subscriber`, ev, SER === 'msgpack'
        ? [[at.toJSON()], { at: whole.toISOString().replace('.000Z', 'Z') }]
        : [[at.getTime() / 1000], { at: whole.getTime() / 1000 }]);
      // The publisher's session goes on: a call with Dates, to a callee of
      // the other binary serializer that returns them.
      await O.register('t.date.echo', ({ argsList, argsDict }) => ({
        argsList: [argsList[0] instanceof Date, ...argsList], argsDict,
      }));
      const r = await call(A, 't.date.echo', { argsList: [at], argsDict: { at: whole } });
      H.eq(`date: a ${SER} caller's Date to a ${other} callee and back`, [r.argsList, r.argsDict], [[true, at], { at: whole }]);
      await closeAll([S, J, O]);
    });
  }

  await H.step('pubsub.pattern', async () => {
    const got = new H.Inbox();
    await B.subscribe('t.pp', (e) => got.push(['prefix', e.argsList[0], e.details.topic]), { match: 'prefix' });
    await B.subscribe('t..ww', (e) => got.push(['wildcard', e.argsList[0], e.details.topic]), { match: 'wildcard' });
    await A.publish('t.pp.x.y', ['p1']);
    await A.publish('t.a.ww', ['w1']);
    const items = await got.wait((xs) => xs.length >= 2, 5000, 'pattern events');
    H.eq('pubsub.pattern details.topic', items.slice().sort(), [['prefix', 'p1', 't.pp.x.y'], ['wildcard', 'w1', 't.a.ww']]);
  });

  // The router's ids are random up to 2^53: with CBOR (cbor-x, as wampy
  // configures it) wampy decodes them as Numbers and writes them back as
  // float64s, which the router takes as the integers they are.
  await H.step('unsubscribe_unregister', async () => {
    const got = new H.Inbox();
    await B.subscribe('t.unsub', (e) => got.push(e.argsList[0]));
    await A.publish('t.unsub', ['before']);
    H.eq('unsubscribe: event before', (await got.wait((xs) => xs.length >= 1, 5000, 'event before'))[0], 'before');
    await H.withTimeout(B.unsubscribe('t.unsub'), 5000, 'unsubscribe');
    await B.register('t.unreg', () => ({ argsList: ['here'] }));
    H.eq('unregister: call before', first(await call(A, 't.unreg')), 'here');
    await H.withTimeout(B.unregister('t.unreg'), 5000, 'unregister');
    H.eq('unregister: call after', (await expectError(call(A, 't.unreg'), 5000, 'call after unregister')).errorUri, 'wamp.error.no_such_procedure');
    await A.publish('t.unsub', ['after']);
    await H.sleep(200);
    H.eq('unsubscribe: no event after', got.items.slice(), ['before']);
  });

  await H.step('pubsub.retained', async () => {
    await publishWith(A, { retain: true }, 't.ret', ['r1']);
    await publishWith(A, { retain: true }, 't.ret', { argsList: ['r2'], argsDict: { n: 2 } });
    const got = new H.Inbox();
    await C.subscribe('t.ret', (e) => got.push({ args: e.argsList, kwargs: e.argsDict, retained: e.details.retained }), { get_retained: true });
    const items = await got.wait((xs) => xs.length >= 1, 5000, 'retained event');
    H.eq('pubsub.retained latest event (retain added by the harness)', items[0], { args: ['r2'], kwargs: { n: 2 }, retained: true });
  });

  // ------------------------------------------------------------ meta API
  await H.step('meta.session', async () => {
    H.eq('meta.session.count', first(await call(M, 'wamp.session.count')), 4);
    H.eq('meta.session.list', (first(await call(M, 'wamp.session.list')) || []).map(Number).sort(), [M.id, A.id, B.id, C.id].sort());
    const d = first(await call(M, 'wamp.session.get', [A.rawId]));
    H.eq('meta.session.get', [d.session, d.authid, d.authrole, d.authmethod], [A.id, A.authid, 'anonymous', 'anonymous']);
    H.check('meta.session.get transport', d.transport && d.transport.type === 'websocket' && d.transport.protocol === 'wamp.2.' + SER && d.transport.tls === opt.url.startsWith('wss:'), H.show(d.transport));
    const e = await expectError(call(M, 'wamp.session.get', [1]), 5000, 'session.get unknown');
    H.eq('meta.session.get unknown', e.errorUri, 'wamp.error.no_such_session');
  });

  await H.step('meta.registration', async () => {
    const id = first(await call(M, 'wamp.registration.lookup', ['t.echo']));
    H.check('meta.registration.lookup', Number(id) > 0, String(id));
    H.eq('meta.registration.list_callees', first(await call(M, 'wamp.registration.list_callees', [id])), [B.id]);
    const sid = first(await call(M, 'wamp.registration.lookup', ['t.shared']));
    H.eq('meta.registration.list_callees shared', (first(await call(M, 'wamp.registration.list_callees', [sid])) || []).map(Number).sort(), [B.id, C.id].sort());
    H.eq('meta.registration.count_callees shared', first(await call(M, 'wamp.registration.count_callees', [sid])), 2);
    const pid = first(await call(M, 'wamp.registration.lookup', ['t.pfx', { match: 'prefix' }]));
    H.check('meta.registration.lookup prefix', Number(pid) > 0 && Number(pid) !== Number(id), String(pid));
    H.eq('meta.registration.lookup missing', first(await call(M, 'wamp.registration.lookup', ['t.nothing'])), null);
    const g = first(await call(M, 'wamp.registration.get', [pid]));
    H.eq('meta.registration.get', [g.id, g.uri, g.match, g.invoke], [pid, 't.pfx', 'prefix', 'single']);
  });

  await H.step('meta.subscription', async () => {
    const id = first(await call(M, 'wamp.subscription.lookup', ['t.topic']));
    H.check('meta.subscription.lookup', Number(id) > 0, String(id));
    H.eq('meta.subscription.count_subscribers', first(await call(M, 'wamp.subscription.count_subscribers', [id])), 3);
    H.eq('meta.subscription.list_subscribers', (first(await call(M, 'wamp.subscription.list_subscribers', [id])) || []).map(Number).sort(), [A.id, B.id, C.id].sort());
  });

  // ------------------------------------------------------------ binary
  await H.step('binary', async () => {
    const r = await call(A, 't.echo', { argsList: [H.BYTES, new Uint8Array(0)], argsDict: { blob: H.BYTES } });
    H.eq('binary.rpc args', r.argsList, [H.BYTES, Buffer.alloc(0)]);
    H.eq('binary.rpc kwargs', r.argsDict, { blob: H.BYTES });
    H.check('binary.rpc is Uint8Array', r.argsList[0] instanceof Uint8Array, Object.prototype.toString.call(r.argsList[0]));
    await A.publish('t.topic', ['bin', H.BYTES]);
    const items = await inbox.bob.wait((xs) => xs.some((x) => x.argsList[0] === 'bin'), 5000, 'binary event');
    H.eq('binary.event', items.find((x) => x.argsList[0] === 'bin').argsList[1], H.BYTES);
  });

  await H.step('pubsub.overlapping', async () => {
    const got = new H.Inbox();
    await B.subscribe('ov.a.b', (e) => got.push(['exact', e.argsList[0], e.details.topic ?? null]));
    await B.subscribe('ov', (e) => got.push(['prefix', e.argsList[0], e.details.topic]), { match: 'prefix' });
    await B.subscribe('ov..b', (e) => got.push(['wildcard', e.argsList[0], e.details.topic]), { match: 'wildcard' });
    await A.publish('ov.a.b', ['o1']);
    const items = await got.wait((xs) => xs.length >= 3, 5000, 'three events');
    await H.sleep(100);
    // details.topic is only sent for pattern-based subscriptions.
    H.eq('pubsub.overlapping one event per subscription', items.slice().sort(),
      [['exact', 'o1', null], ['prefix', 'o1', 'ov.a.b'], ['wildcard', 'o1', 'ov.a.b']]);
  });

  await H.step('rpc.large', async () => {
    const big = 'x'.repeat(1 << 20) + 'ü';
    const r = await H.withTimeout(call(A, 't.echo', [big]), 10000, '1 MiB call');
    H.check('rpc.large 1 MiB string', first(r) === big, `length ${first(r) && first(r).length}`);
    const bb = Buffer.alloc(1 << 20, 7);
    bb[0] = 0;
    bb[bb.length - 1] = 255;
    const rb = first(await H.withTimeout(call(A, 't.echo', [bb]), 10000, '1 MiB bytes call'));
    H.check('rpc.large 1 MiB bytes', rb instanceof Uint8Array && Buffer.from(rb).equals(bb), `${Object.prototype.toString.call(rb)} length ${rb && rb.length}`);
  });

  // Payload Passthru Mode: the router forwards ppt_* options and the
  // single opaque argument untouched, for calls, results and events.
  await H.step('ppt', async () => {
    const ppt = { ppt_scheme: 'x_interop', ppt_serializer: 'json' };
    await B.register('t.ppt', ({ details, argsList, argsDict }) => ({
      argsList: ['ppt-ok', details.ppt_scheme ?? null, details.ppt_serializer ?? null, argsList, argsDict],
      options: ppt,
    }));
    const r = await call(A, 't.ppt', { argsList: [1, 'a'], argsDict: { k: 'v' } }, ppt);
    H.eq('ppt call', [r.argsList, r.details.ppt_scheme], [['ppt-ok', 'x_interop', 'json', [1, 'a'], { k: 'v' }], 'x_interop']);
    const got = new H.Inbox();
    await B.subscribe('t.ppt.topic', (e) => got.push([e.argsList, e.argsDict, e.details.ppt_scheme]));
    await A.publish('t.ppt.topic', { argsList: ['ev'], argsDict: { n: 1 } }, ppt);
    const items = await got.wait((xs) => xs.length > 0, 5000, 'ppt event');
    H.eq('ppt event', items[0], [['ev'], { n: 1 }, 'x_interop']);
  });

  await H.step('meta.session.kill', async () => {
    const D = await connect('dave');
    const r = await call(M, 'wamp.session.kill', { argsList: [D.rawId], argsDict: { reason: 'wamp.close.killed_by_test', message: 'bye dave' } });
    H.eq('meta.session.kill result', r.argsList ?? [], []);
    const info = await H.withTimeout(D.closed, 5000, 'dave closed');
    H.eq('meta.session.kill close reason', [info.reason, info.details.message], ['wamp.close.killed_by_test', 'bye dave']);
  });

  // ------------------------------------------------------------ leave
  await H.step('meta.on_leave', async () => {
    const cid = C.id;
    await C.disconnect();
    const items = await leaves.wait((xs) => xs.some((x) => Number(x[0]) === cid), 5000, 'on_leave for carol');
    H.eq('meta.on_leave', items.find((x) => Number(x[0]) === cid), [cid, C.authid, 'anonymous']);
    H.eq('meta.session.count after leave', first(await call(M, 'wamp.session.count')), 3);
    const got = [];
    for (let i = 0; i < 2; i++) got.push(first(await call(A, 't.shared')));
    H.eq('rpc.shared after callee left', got, ['bob', 'bob']);
  });

  H.check('rpc.cancel callee kept serving', slowCalls.length >= 4, JSON.stringify(slowCalls));
  await closeAll([M, A, B]);
}

// ---------------------------------------------------------------- cross-client roles

// See autobahn_js.js announce and whoAre: a peer announces the authid the
// router gave it under its role name.
const whoTopic = (name) => 'x.who.' + name.replace(/-/g, '_');

async function announce(w, name) {
  await publishWith(w, { retain: true }, whoTopic(name), [w.authid], { acknowledge: true });
}

async function whoAre(w, names) {
  const got = new H.Inbox();
  await w.subscribe('x.who', (e) => got.push([e.details.topic, e.argsList[0]]), { match: 'prefix', get_retained: true });
  const items = await got.wait((xs) => names.every((n) => xs.some((x) => x[0] === whoTopic(n))), 5000, 'the authids of ' + names);
  return Object.fromEntries(names.map((n) => [n, items.find((x) => x[0] === whoTopic(n))[1]]));
}

async function stopSignal(w) {
  const d = H.deferred();
  await w.subscribe('interop.stop', () => d.resolve());
  return d.promise;
}

// x-binary: see autobahn_js.js xBinary.
async function xBinary() {
  const me = 'wampy-' + SER;
  const S = await connect(me);
  const got = new H.Inbox();
  const topic = 'x.bin.fromjson.' + me.replace(/-/g, '_');
  await S.subscribe(topic, (e) => got.push(e));
  await H.step(`x.binary json->${SER} event`, async () => {
    H.eq('x.binary publish ack', first(await call(S, 'x.bin.publish', [topic])), 'published');
    const items = await got.wait((xs) => xs.length > 0, 5000, 'event from the JSON publisher');
    H.eq(`x.binary json->${SER} args`, items[0].argsList, [H.BYTES, Buffer.alloc(0)]);
    H.eq(`x.binary json->${SER} kwargs`, items[0].argsDict, { blob: H.BYTES, from: 'py-json' });
    H.check(`x.binary json->${SER} is Uint8Array`, items[0].argsList[0] instanceof Uint8Array, Object.prototype.toString.call(items[0].argsList[0]));
  });
  await H.step(`x.binary ${SER}->json publish`, async () => {
    await S.publish('x.bin.tojson', { argsList: [H.BYTES, new Uint8Array(0)], argsDict: { blob: H.BYTES, from: me } });
  });
  await H.step(`x.binary ${SER}->json->${SER} rpc`, async () => {
    const r = await call(S, 'x.bin.echo', { argsList: [H.BYTES], argsDict: { blob: Buffer.from('wamp') } });
    H.eq('x.binary rpc roundtrip', [r.argsList, r.argsDict], [[H.BYTES], { blob: Buffer.from('wamp') }]);
  });
  await closeAll([S]);
}

// x-mixed-caller: the JSON caller of JSON caller -> MsgPack callee -> CBOR
// subscriber.
async function xMixedCaller() {
  const S = await connect('wampy-caller');
  await H.step('x.mixed caller', async () => {
    const r = await call(S, 'x.mixed.proc', { argsList: [...H.MIXED_ARGS, H.BYTES], argsDict: H.MIXED_KWARGS });
    H.eq(`x.mixed result at ${SER} caller`, [r.argsList, r.argsDict], [[...H.MIXED_ARGS, H.BYTES], H.MIXED_KWARGS]);
  });
  await closeAll([S]);
}

// x-rpc: wampy caller against the Python callee, every cancel mode.
async function xRPC() {
  const me = 'wampy-' + SER;
  const S = await connect(me);
  await announce(S, me);
  await H.step('x.rpc echo', async () => {
    const r = await call(S, 'x.rpc.echo', { argsList: H.MIXED_ARGS, argsDict: H.MIXED_KWARGS }, { disclose_me: true });
    H.eq('x.rpc echo py callee', [r.argsList, r.argsDict], [H.MIXED_ARGS, H.MIXED_KWARGS]);
  });
  await H.step('x.rpc error py->wampy', async () => {
    const e = await expectError(call(S, 'x.rpc.fail', ['please']), 5000, 'x.rpc.fail');
    H.eq('x.rpc error py->wampy', [e.errorUri, e.argsList, e.argsDict], ['x.error.py', ['py-arg', 7], { reason: 'py-kw', echo: 'please' }]);
  });
  await H.step('x.rpc error wampy->py', async () => {
    const proc = 'x.js.fail.wampy_' + SER;
    await S.register(proc, () => { throw { error: 'x.error.js', argsList: ['js-arg', 8], argsDict: { reason: 'js-kw' } }; });
    H.eq('x.rpc error wampy->py', first(await call(S, 'x.rpc.call', [proc])), { error: 'x.error.js', args: ['js-arg', 8], kwargs: { reason: 'js-kw' } });
  });
  await H.step('x.rpc progressive', async () => {
    const progress = [];
    const r = await H.withTimeout(call(S, 'x.rpc.progress', [3], { progress_callback: (x) => progress.push(x.argsList[0]) }), 5000, 'x.rpc.progress');
    H.eq('x.rpc progressive from py', [progress, r.argsList], [[1, 2, 3], ['done']]);
  });
  for (const [mode, interrupt] of [['kill', true], ['killnowait', true], ['skip', false]]) {
    await H.step('x.rpc cancel ' + mode, async () => {
      const p = call(S, 'x.rpc.slow', [`${me}-${mode}`, interrupt]);
      const req = S.getOpStatus().reqId;
      await H.sleep(200);
      S.cancel(req, { mode });
      const e = await expectError(p, 3000, `x.rpc.slow canceled (${mode})`);
      H.eq(`x.rpc cancel ${mode} error`, e.errorUri, 'wamp.error.canceled');
    });
  }
  await H.step('x.rpc timeout', async () => {
    const e = await expectError(call(S, 'x.rpc.slow', [me + '-timeout', true], { timeout: 300 }), 3000, 'x.rpc.slow timeout');
    H.eq('x.rpc timeout error', e.errorUri, 'wamp.error.timeout');
  });
  await closeAll([S]);
}

// x-rpc-sub: wampy subscriber of the events the Python callee publishes for
// every echo call.
async function xRPCSub() {
  const S = await connect('wampy-sub');
  const got = new H.Inbox();
  await S.subscribe('x.rpc.echoed', (e) => got.push(e.argsList[0]));
  const stop = stopSignal(S);
  H.ready();
  await stop;
  const want = (opt['expect-from'] || '').split(',').filter(Boolean).sort();
  await H.step('x.rpc subscriber', async () => {
    const ids = await whoAre(S, want);
    const authids = want.map((n) => ids[n]).sort();
    const items = await got.wait((xs) => authids.every((a) => xs.includes(a)), 3000, 'echo events for ' + want);
    H.eq(`x.rpc events at wampy ${SER} subscriber (caller authids of ${want})`, items.slice().sort(), authids);
  });
  await closeAll([S]);
}

// x-shared-peer: wampy half of the roundrobin registration; gets the
// retained event the Python peer published before it subscribed.
async function xSharedPeer() {
  const S = await connect('wampy-shared');
  await announce(S, 'wampy-shared');
  const ids = await whoAre(S, ['py-shared']);
  await S.register('x.shared', () => 'wampy', { invoke: 'roundrobin' });
  const got = new H.Inbox();
  await S.subscribe('x.ret', (e) => got.push({ args: e.argsList, retained: e.details.retained, publisher: e.details.publisher_authid }), { get_retained: true });
  await H.step('x.shared retained at wampy', async () => {
    const items = await got.wait((xs) => xs.length > 0, 5000, 'retained x.ret');
    H.eq(`x.shared retained event at wampy ${SER}`, items[0], { args: ['kept', H.BYTES], retained: true, publisher: ids['py-shared'] });
  });
  const stop = stopSignal(S);
  H.ready();
  await stop;
  await closeAll([S]);
}

// x-shutdown: a session open when the router gets SIGTERM must be told
// GOODBYE wamp.close.system_shutdown.
async function xShutdown() {
  const S = await connect('wampy-' + SER + '-shutdown');
  await S.register('x.down.wampy_' + SER, () => 'up');
  H.ready();
  await H.step('x.shutdown', async () => {
    const info = await H.withTimeout(S.closed, 30000, 'the router closing the session');
    H.eq(`x.shutdown GOODBYE reason at wampy ${SER}`, info.reason, 'wamp.close.system_shutdown');
  });
}

// x-proginv: progressive call invocations (Wampy.progressiveCall: the
// first CALL and each sendData chunk with Options.progress = true, the last
// with progress = false) to a callee of the Go client (cmd/edgewamp
// interop_proginv_test.go), which registers pi.collect (answers with every
// chunk's arguments, in order) and pi.echo (a progressive result per chunk,
// the final result the chunk count).
//
// Client quirk (wampy 8.0.2): progressiveCall needs the Dealer's
// progressive_call_invocations, but HELLO does not announce the caller's,
// so a Dealer following the spec refuses the progressive CALL (the router
// ends the session: protocol violation). Announce what wampy does.
async function xProgInv() {
  const S = await connect('wampy-proginv', SER, (w) => { w._wamp_features.roles.caller.features.progressive_call_invocations = true; });
  await H.step('proginv.collect', async () => {
    const { result, sendData } = S.progressiveCall('pi.collect', [1, 'a']);
    sendData([2, 'b']);
    sendData({ argsList: [3], argsDict: { k: 'c' } });
    sendData([4, 'd'], { progress: false });
    const r = await H.withTimeout(result, 5000, 'pi.collect');
    H.eq('proginv.collect chunks in order', r.argsList, [1, 'a', 2, 'b', 3, 4, 'd']);
  });
  await H.step('proginv.one_chunk', async () => {
    const { result, sendData } = S.progressiveCall('pi.collect', ['only']);
    sendData(null, { progress: false });
    const r = await H.withTimeout(result, 5000, 'pi.collect, one chunk and an empty last');
    H.eq('proginv.one_chunk', r.argsList, ['only']);
  });
  await H.step('proginv.with_progressive_results', async () => {
    const progress = [];
    const { result, sendData } = S.progressiveCall('pi.echo', ['x1'], { progress_callback: (x) => progress.push(x.argsList) });
    await H.sleep(50);
    sendData(['x2']);
    await H.sleep(50);
    sendData(['x3'], { progress: false });
    const r = await H.withTimeout(result, 5000, 'pi.echo');
    H.eq('proginv.with_progressive_results progress', progress, [['x1'], ['x2'], ['x3']]);
    H.eq('proginv.with_progressive_results final', r.argsList, [3]);
  });
  await H.step('proginv.timeout', async () => {
    // The final chunk never comes: the call times out from its first CALL,
    // and chunks after the ERROR are dropped, not taken for a new call.
    const { result, sendData } = S.progressiveCall('pi.collect', ['t1'], { timeout: 300 });
    const t0 = Date.now();
    sendData(['t2']);
    const r = await H.settle(result, 5000, 'pi.collect never finished');
    H.eq('proginv.timeout error', r.ok ? 'succeeded' : r.error.errorUri, 'wamp.error.timeout');
    H.check('proginv.timeout elapsed', Date.now() - t0 < 2500, `${Date.now() - t0} ms`);
    try { sendData(['late'], { progress: false }); } catch (e) { /* wampy may refuse: the call is gone */ }
    const r2 = await H.withTimeout(S.call('pi.collect', ['after-timeout']), 5000, 'pi.collect after a timeout');
    H.eq('proginv.timeout next call', r2.argsList, ['after-timeout']);
  });
  await H.step('proginv.ppt', async () => {
    // Payload passthru mode (wampy packs each chunk's payload with its JSON
    // payload serializer, one string argument, and repeats the first CALL's
    // options on every chunk): every INVOCATION of the stream reaches the
    // callee (a prefix registration forwarding timeouts) with the first
    // CALL's procedure, timeout and ppt_* keys, the payload untouched.
    const ppt = { ppt_scheme: 'x_edgewamp', ppt_serializer: 'json', ppt_keyid: 'k1', timeout: 4000 };
    const { result, sendData } = S.progressiveCall('pi.ppt.x', [1, 'a'], ppt);
    sendData([2]);
    sendData(['z'], { progress: false });
    const r = await H.withTimeout(result, 5000, 'pi.ppt.x');
    const want = [[1, 'a'], [2], ['z']].map((args) => ({
      procedure: 'pi.ppt.x', timeout: 4000, ppt_scheme: 'x_edgewamp', ppt_serializer: 'json', ppt_keyid: 'k1',
      args: [JSON.stringify({ args })],
    }));
    H.eq('proginv.ppt chunks', r.argsList, want);
  });
  await H.step('proginv.plain_call_still_works', async () => {
    const r = await H.withTimeout(S.call('pi.collect', ['plain']), 5000, 'plain pi.collect');
    H.eq('proginv.plain call', r.argsList, ['plain']);
  });
  await closeAll([S]);
}

const modes = {
  suite, 'x-shutdown': xShutdown, 'x-binary': xBinary, 'x-mixed-caller': xMixedCaller, 'x-rpc': xRPC, 'x-rpc-sub': xRPCSub, 'x-shared-peer': xSharedPeer, 'x-proginv': xProgInv,
};

try {
  if (!modes[MODE]) throw new Error('unknown mode ' + MODE);
  await modes[MODE]();
} catch (e) {
  H.report('fatal', false, H.describe(e));
}
H.finish();
