'use strict';
// Autobahn|JS (npm autobahn 22.11.1) against edgewamp.
//
//   node autobahn_js.js --url ws://HOST:PORT/ws --serializer json|msgpack|cbor [--mode M]
//   node autobahn_js.js --rawsocket HOST:PORT [--mode M]        (RawSocket is JSON only in Autobahn|JS)
//
// Modes: suite (default; the whole single-client scenario), x-binary,
// x-mixed-sub, x-rpc, x-shared (roles in the cross-client scenarios driven by
// interop_test.go). Output: see harness.js.

const H = require('./harness.js');
const autobahn = require('autobahn');

const opt = H.args(process.argv.slice(2));
const SER = opt.rawsocket ? 'json' : (opt.serializer || 'json');
const MODE = opt.mode || 'suite';
// Autobahn|JS's RawSocket transport writes JSON.stringify(msg) itself and has
// no hook for the WAMP binary convention, so byte strings cannot be sent or
// received as bytes over it.
const BINARY_OK = !opt.rawsocket;

function serializer() {
  switch (SER) {
    case 'json': return new autobahn.serializer.JSONSerializer(H.jsonReplacer, H.jsonReviver);
    case 'msgpack': return new autobahn.serializer.MsgpackSerializer();
    case 'cbor': return new autobahn.serializer.CBORSerializer();
  }
  throw new Error('unknown serializer ' + SER);
}

// connect opens one Connection and resolves with its joined session.
function connect(authid) {
  const d = H.deferred();
  const o = { realm: 'realm1', max_retries: 0, retry_if_unreachable: false, authid, authmethods: ['anonymous'] };
  if (opt.rawsocket) {
    const i = opt.rawsocket.lastIndexOf(':');
    o.transports = [{ type: 'rawsocket', host: opt.rawsocket.slice(0, i), port: Number(opt.rawsocket.slice(i + 1)) }];
  } else {
    o.url = opt.url;
    o.serializers = [serializer()];
  }
  const conn = new autobahn.Connection(o);
  const closed = H.deferred();
  let opened = false;
  conn.onopen = (session, details) => {
    opened = true;
    session.conn = conn;
    session.closed = closed.promise; // resolves with Connection.onclose details
    session.authid = details.authid;
    session.welcome = details;
    tolerateCanceledErrors(session);
    d.resolve(session);
  };
  conn.onclose = (reason, details) => {
    if (!opened) d.reject(new Error(`connection ${reason}: ${JSON.stringify(details)}`));
    closed.resolve(Object.assign({ closeReason: reason }, details));
    return true; // never retry
  };
  conn.open();
  return H.withTimeout(d.promise, 10000, 'connect ' + authid);
}

// Client quirk (Autobahn|JS 22.11.1, lib/session.js Session.prototype.call):
// promise.cancel() in mode skip or killnowait rejects the call locally and
// forgets the request at once; the ERROR the Dealer then sends (WAMP spec,
// Call Canceling: for skip and killnowait the Dealer replies ERROR
// wamp.error.canceled immediately) hits _process_CALL_ERROR for a request no
// longer pending, which calls _protocol_violation and closes the transport
// (3002). The harness records that ERROR instead (so the router's answer is
// still checked) and passes every other ERROR on unchanged.
function tolerateCanceledErrors(session) {
  session.canceledReqs = new Set();
  session.canceledErrors = new H.Inbox();
  const send = session._send_wamp;
  session._send_wamp = (msg) => {
    if (msg[0] === 49) session.canceledReqs.add(msg[1]); // CANCEL
    return send(msg);
  };
  const errs = session._MESSAGE_MAP[8];
  const orig = errs[48]; // ERROR for CALL
  errs[48] = (msg) => {
    const req = msg[2];
    if (!(req in session._call_reqs) && session.canceledReqs.has(req)) {
      session.canceledErrors.push({ req, uri: msg[4], args: msg[5] });
      return;
    }
    orig(msg);
  };
}

// expectError runs a call that must fail and returns the autobahn.Error.
async function expectError(p, ms, what) {
  const r = await H.settle(p, ms, what);
  if (r.ok) throw new Error(`${what}: succeeded with ${H.show(r.value)}, want an error`);
  return r.error;
}

function argsOf(res) {
  // A RESULT with one positional argument and no keywords resolves to that
  // value; anything else to an autobahn.Result.
  return res instanceof autobahn.Result ? res : new autobahn.Result([res], {});
}

async function closeAll(sessions) {
  for (const s of sessions) {
    try { s.conn.close(); } catch (e) { /* already closed */ }
  }
  await H.sleep(100);
}

// ---------------------------------------------------------------- suite

async function suite() {
  const M = await connect('meta-observer');
  const joins = new H.Inbox();
  const leaves = new H.Inbox();
  await M.subscribe('wamp.session.on_join', (a) => joins.push(a[0]));
  await M.subscribe('wamp.session.on_leave', (a) => leaves.push(a));

  const A = await connect('alice');
  const B = await connect('bob');
  const C = await connect('carol');
  const all = [M, A, B, C];

  await H.step('session.welcome', async () => {
    // Anonymous sessions get the authid the router assigns, not the one
    // HELLO asks for (alice, bob, carol): one each.
    const ids = [A.authid, B.authid, C.authid];
    H.check('session.welcome authid router-assigned', ids.every((x) => typeof x === 'string' && x !== '' && !['alice', 'bob', 'carol'].includes(x)) && new Set(ids).size === 3, JSON.stringify(ids));
    H.check('session.welcome roles', A.welcome.roles && A.welcome.roles.dealer && A.welcome.roles.broker, JSON.stringify(A.welcome.roles));
  });

  await H.step('meta.on_join', async () => {
    const want = { [A.id]: A.authid, [B.id]: B.authid, [C.id]: C.authid };
    const items = await joins.wait((xs) => Object.keys(want).every((id) => xs.some((x) => String(x.session) === id)), 5000, 'on_join for alice, bob, carol');
    const got = {};
    for (const x of items) if (want[x.session]) got[x.session] = x.authid;
    H.eq('meta.on_join', got, want);
  });

  // ------------------------------------------------------------ RPC
  const slowCalls = [];
  await B.register('t.echo', (args, kwargs) => new autobahn.Result(args, kwargs));
  await B.register('t.fail', () => { throw new autobahn.Error('app.error.custom', ['bad', 42], { why: 'because' }); });
  await B.register('t.progress', (args, kwargs, details) => {
    if (!details.progress) return 'caller did not ask for progress';
    for (let i = 1; i <= 3; i++) details.progress([i], { step: i });
    return new autobahn.Result(['done'], { count: 3 });
  });
  await B.register('t.slow', (args) => {
    slowCalls.push(args[0]);
    return new Promise((res) => setTimeout(() => res('slow-finished'), 3000));
  });
  await B.register('t.whoami', (args, kwargs, details) => new autobahn.Result([details.caller ?? null, details.caller_authid ?? null, details.caller_authrole ?? null]));

  await H.step('rpc.args_kwargs', async () => {
    const r = argsOf(await A.call('t.echo', H.MIXED_ARGS, H.MIXED_KWARGS));
    H.eq('rpc.args_kwargs args', r.args, H.MIXED_ARGS);
    H.eq('rpc.args_kwargs kwargs', r.kwargs, H.MIXED_KWARGS);
  });

  await H.step('rpc.kwargs_only', async () => {
    const r = argsOf(await A.call('t.echo', [], { only: 'kw' }));
    H.eq('rpc.kwargs_only', [r.args, r.kwargs], [[], { only: 'kw' }]);
  });

  await H.step('rpc.error', async () => {
    const e = await expectError(A.call('t.fail', ['x']), 5000, 't.fail');
    H.eq('rpc.error uri+args+kwargs', [e.error, e.args, e.kwargs], ['app.error.custom', ['bad', 42], { why: 'because' }]);
  });

  await H.step('rpc.no_such_procedure', async () => {
    const e = await expectError(A.call('t.missing'), 5000, 't.missing');
    H.eq('rpc.no_such_procedure', e.error, 'wamp.error.no_such_procedure');
  });

  await H.step('rpc.progressive', async () => {
    const progress = [];
    const p = A.call('t.progress', [], {}, { receive_progress: true });
    p.then(undefined, undefined, (v) => progress.push(argsOf(v)));
    const r = argsOf(await H.withTimeout(p, 5000, 't.progress'));
    H.eq('rpc.progressive progress', progress.map((x) => [x.args, x.kwargs]), [[[1], { step: 1 }], [[2], { step: 2 }], [[3], { step: 3 }]]);
    H.eq('rpc.progressive final', [r.args, r.kwargs], [['done'], { count: 3 }]);
  });

  await H.step('rpc.caller_disclose', async () => {
    const r = argsOf(await A.call('t.whoami', [], {}, { disclose_me: true }));
    H.eq('rpc.caller_disclose', r.args, [A.id, A.authid, 'anonymous']);
  });

  // Autobahn|JS does not announce callee call_canceling, so the router must
  // treat every cancel mode as skip: ERROR wamp.error.canceled at once, no
  // INTERRUPT to the callee (which would not understand it).
  await H.step('rpc.cancel.kill', async () => {
    const p = A.call('t.slow', ['kill']);
    await H.sleep(150);
    const t0 = Date.now();
    p.cancel({ mode: 'kill' });
    const e = await expectError(p, 2500, 'canceled t.slow (kill)');
    H.eq('rpc.cancel.kill error', e.error, 'wamp.error.canceled');
    H.check('rpc.cancel.kill prompt', Date.now() - t0 < 2000, `${Date.now() - t0} ms`);
  });

  for (const mode of ['killnowait', 'skip']) {
    await H.step('rpc.cancel.' + mode, async () => {
      const p = A.call('t.slow', [mode]);
      await H.sleep(150);
      p.cancel({ mode });
      const e = await expectError(p, 2500, `canceled t.slow (${mode})`);
      H.eq(`rpc.cancel.${mode} local rejection`, e.error, 'Cancelled');
      const errs = await A.canceledErrors.wait((xs) => xs.length > 0, 2500, 'router ERROR for the canceled call');
      const got = errs.shift();
      H.eq(`rpc.cancel.${mode} router error`, got.uri, 'wamp.error.canceled');
      const r = await A.call('t.echo', ['still-open']);
      H.eq(`rpc.cancel.${mode} session usable`, r, 'still-open');
    });
  }

  await H.step('rpc.timeout', async () => {
    const t0 = Date.now();
    const e = await expectError(A.call('t.slow', ['timeout'], {}, { timeout: 300 }), 3000, 't.slow with timeout');
    const dt = Date.now() - t0;
    H.eq('rpc.timeout error', e.error, 'wamp.error.timeout');
    // Only a loose bound here: router-bug/call-timeout-accuracy checks the timing.
    H.check('rpc.timeout elapsed', dt < 2500, `${dt} ms`);
  });

  // A timeout the application computed: 1.005 * 1000 is 1004.9999999999999
  // in JavaScript. The router ended the session for it (ABORT
  // wamp.error.protocol_violation), and Autobahn|JS never settled the call.
  await H.step('rpc.timeout_fraction', async () => {
    const r = await H.withTimeout(A.call('t.echo', ['fraction'], {}, { timeout: 1.005 * 1000 }), 5000, 't.echo with timeout 1.005*1000');
    H.eq('rpc.timeout_fraction result', r, 'fraction');
    // One out of range is refused with an ERROR (the call settles), the
    // session going on; it was ABORTed too.
    const e = await expectError(A.call('t.echo', ['negative'], {}, { timeout: -1 }), 5000, 't.echo with timeout -1');
    H.eq('rpc.timeout_negative error', e.error, 'wamp.error.invalid_argument');
    H.eq('rpc.timeout_negative session usable', await A.call('t.echo', ['after']), 'after');
    // NaN: JSON.stringify writes null (msgpack5 and cbor-x a float NaN).
    const n = await expectError(A.call('t.echo', ['nan'], {}, { timeout: 0 / 0 }), 5000, 't.echo with timeout NaN');
    H.eq('rpc.timeout_nan error', n.error, 'wamp.error.invalid_argument');
    H.eq('rpc.timeout_nan session usable', await A.call('t.echo', ['after-nan']), 'after-nan');
  });

  await H.step('rpc.shared_roundrobin', async () => {
    const rb = await B.register('t.shared', () => 'bob', { invoke: 'roundrobin' });
    const rc = await C.register('t.shared', () => 'carol', { invoke: 'roundrobin' });
    H.check('rpc.shared one registration', rb.id === rc.id, `${rb.id} ${rc.id}`);
    const got = [];
    for (let i = 0; i < 4; i++) got.push(await A.call('t.shared'));
    H.eq('rpc.shared_roundrobin order', got, ['bob', 'carol', 'bob', 'carol']);
    const e = await expectError(A.register('t.shared', () => 'alice', { invoke: 'random' }), 5000, 'register t.shared with another policy');
    H.eq('rpc.shared policy mismatch', e.error, 'wamp.error.procedure_exists_with_different_invocation_policy');
    const e2 = await expectError(A.register('t.echo', () => 'alice'), 5000, 'register t.echo twice');
    H.eq('rpc.single already registered', e2.error, 'wamp.error.procedure_already_exists');
  });

  // Call re-routing (WAMP Advanced Profile, call_reroute): a callee that
  // throws wamp.error.unavailable is passed over for another callee of the
  // shared registration; when none is left, the caller gets
  // wamp.error.no_available_callee with the last callee's arguments.
  await H.step('rpc.reroute', async () => {
    const dealer = (A.welcome.roles && A.welcome.roles.dealer) || {};
    H.check('rpc.reroute announced', dealer.features && dealer.features.call_reroute === true, JSON.stringify(dealer.features));
    let refused = 0;
    await B.register('t.busy', () => { refused++; throw new autobahn.Error('wamp.error.unavailable', ['bob busy']); }, { invoke: 'roundrobin' });
    await C.register('t.busy', () => 'carol', { invoke: 'roundrobin' });
    const got = [];
    for (let i = 0; i < 4; i++) got.push(await A.call('t.busy'));
    H.eq('rpc.reroute answered by the callee that is not busy', got, ['carol', 'carol', 'carol', 'carol']);
    H.check('rpc.reroute the busy callee was tried', refused >= 1, String(refused));
    await B.register('t.allbusy', () => { throw new autobahn.Error('wamp.error.unavailable', ['bob busy']); }, { invoke: 'first' });
    await C.register('t.allbusy', () => { throw new autobahn.Error('wamp.error.unavailable', ['carol busy']); }, { invoke: 'first' });
    const e = await expectError(A.call('t.allbusy'), 5000, 'call t.allbusy');
    H.eq('rpc.reroute exhausted', e.error, 'wamp.error.no_available_callee');
    H.eq('rpc.reroute exhausted carries the last callee\'s args', e.args, ['carol busy']);
  });

  await H.step('rpc.pattern', async () => {
    await B.register('t.pfx', (a, k, d) => ['bob-prefix', d.procedure], { match: 'prefix' });
    await B.register('t..wild', (a, k, d) => ['bob-wildcard', d.procedure], { match: 'wildcard' });
    await C.register('t.pfx.exact', (a, k, d) => ['carol-exact', d.procedure]);
    H.eq('rpc.pattern prefix details.procedure', await A.call('t.pfx.a.b'), ['bob-prefix', 't.pfx.a.b']);
    H.eq('rpc.pattern wildcard details.procedure', await A.call('t.x.wild'), ['bob-wildcard', 't.x.wild']);
    H.eq('rpc.pattern exact wins', await A.call('t.pfx.exact'), ['carol-exact', 't.pfx.exact']);
  });

  // ------------------------------------------------------------ PubSub
  const inbox = { alice: new H.Inbox(), bob: new H.Inbox(), carol: new H.Inbox() };
  for (const [s, name] of [[A, 'alice'], [B, 'bob'], [C, 'carol']]) {
    await s.subscribe('t.topic', (args, kwargs, details) => inbox[name].push({ args, kwargs, details }));
  }
  let mark = 0;
  // deliveredTo publishes one event with options, then a marker to everyone;
  // once every subscriber saw the marker, whoever did not get the event will
  // not (events of one publisher arrive in order).
  async function deliveredTo(payload, options) {
    await A.publish('t.topic', [payload], {}, Object.assign({ acknowledge: true }, options));
    const m = 'mark-' + (++mark);
    await A.publish('t.topic', [m], {}, { acknowledge: true, exclude_me: false });
    const who = [];
    for (const name of ['alice', 'bob', 'carol']) {
      const items = await inbox[name].wait((xs) => xs.some((x) => x.args[0] === m), 5000, `${name} receives ${m}`);
      if (items.some((x) => x.args[0] === payload)) who.push(name);
    }
    return who;
  }

  await H.step('pubsub.exclude_me', async () => {
    H.eq('pubsub.exclude_me default true', await deliveredTo('e-default', {}), ['bob', 'carol']);
    H.eq('pubsub.exclude_me false', await deliveredTo('e-false', { exclude_me: false }), ['alice', 'bob', 'carol']);
  });
  await H.step('pubsub.blackwhite', async () => {
    H.eq('pubsub.exclude session', await deliveredTo('e-excl', { exclude: [B.id] }), ['carol']);
    H.eq('pubsub.eligible session', await deliveredTo('e-elig', { eligible: [B.id] }), ['bob']);
    H.eq('pubsub.eligible_authid', await deliveredTo('e-elig-authid', { eligible_authid: [C.authid] }), ['carol']);
    H.eq('pubsub.exclude_authid', await deliveredTo('e-excl-authid', { exclude_authid: [B.authid] }), ['carol']);
    H.eq('pubsub.eligible_authrole', await deliveredTo('e-elig-role', { eligible_authrole: ['anonymous'], exclude_me: false }), ['alice', 'bob', 'carol']);
    H.eq('pubsub.exclude_authrole', await deliveredTo('e-excl-role', { exclude_authrole: ['anonymous'] }), []);
    H.eq('pubsub.eligible+exclude', await deliveredTo('e-both', { eligible: [B.id, C.id], exclude: [C.id] }), ['bob']);
  });
  await H.step('pubsub.publisher_disclose', async () => {
    await A.publish('t.topic', ['disclosed'], { k: 1 }, { acknowledge: true, disclose_me: true });
    const items = await inbox.bob.wait((xs) => xs.some((x) => x.args[0] === 'disclosed'), 5000, 'disclosed event');
    const ev = items.find((x) => x.args[0] === 'disclosed');
    H.eq('pubsub.publisher_disclose', [ev.details.publisher, ev.details.publisher_authid, ev.kwargs], [A.id, A.authid, { k: 1 }]);
  });

  await H.step('pubsub.pattern', async () => {
    const got = new H.Inbox();
    await B.subscribe('t.pp', (args, kw, d) => got.push(['prefix', args[0], d.topic]), { match: 'prefix' });
    await B.subscribe('t..ww', (args, kw, d) => got.push(['wildcard', args[0], d.topic]), { match: 'wildcard' });
    await A.publish('t.pp.x.y', ['p1'], {}, { acknowledge: true });
    await A.publish('t.a.ww', ['w1'], {}, { acknowledge: true });
    const items = await got.wait((xs) => xs.length >= 2, 5000, 'pattern events');
    H.eq('pubsub.pattern details.topic', items.slice().sort(), [['prefix', 'p1', 't.pp.x.y'], ['wildcard', 'w1', 't.a.ww']]);
  });

  await H.step('pubsub.retained', async () => {
    await A.publish('t.ret', ['r1'], {}, { acknowledge: true, retain: true });
    await A.publish('t.ret', ['r2'], { n: 2 }, { acknowledge: true, retain: true });
    const got = new H.Inbox();
    await C.subscribe('t.ret', (args, kwargs, d) => got.push({ args, kwargs, retained: d.retained }), { get_retained: true });
    const items = await got.wait((xs) => xs.length >= 1, 5000, 'retained event');
    H.eq('pubsub.retained latest event', items[0], { args: ['r2'], kwargs: { n: 2 }, retained: true });
  });

  // ------------------------------------------------------------ meta API
  await H.step('meta.session', async () => {
    H.eq('meta.session.count', await M.call('wamp.session.count'), 4);
    const list = await M.call('wamp.session.list');
    H.eq('meta.session.list', (list || []).map(Number).sort(), [M.id, A.id, B.id, C.id].sort());
    const d = await M.call('wamp.session.get', [A.id]);
    H.eq('meta.session.get', [d.session, d.authid, d.authrole, d.authmethod], [A.id, A.authid, 'anonymous', 'anonymous']);
    H.check('meta.session.get transport', d.transport && d.transport.type === (opt.rawsocket ? 'rawsocket' : 'websocket') && String(d.transport.protocol).endsWith(SER) && d.transport.tls === String(opt.url).startsWith('wss:'), JSON.stringify(d.transport));
    const e = await expectError(M.call('wamp.session.get', [1]), 5000, 'wamp.session.get unknown');
    H.eq('meta.session.get unknown', e.error, 'wamp.error.no_such_session');
  });

  await H.step('meta.registration', async () => {
    const id = await M.call('wamp.registration.lookup', ['t.echo']);
    H.check('meta.registration.lookup', typeof id === 'number' && id > 0, String(id));
    H.eq('meta.registration.list_callees', await M.call('wamp.registration.list_callees', [id]), [B.id]);
    const sid = await M.call('wamp.registration.lookup', ['t.shared']);
    H.eq('meta.registration.list_callees shared', ((await M.call('wamp.registration.list_callees', [sid])) || []).slice().sort(), [B.id, C.id].sort());
    H.eq('meta.registration.count_callees shared', await M.call('wamp.registration.count_callees', [sid]), 2);
    const pid = await M.call('wamp.registration.lookup', ['t.pfx', { match: 'prefix' }]);
    H.check('meta.registration.lookup prefix', typeof pid === 'number' && pid > 0 && pid !== id, String(pid));
    H.eq('meta.registration.lookup missing', await M.call('wamp.registration.lookup', ['t.nothing']), null);
    const g = await M.call('wamp.registration.get', [pid]);
    H.eq('meta.registration.get', [g.id, g.uri, g.match, g.invoke], [pid, 't.pfx', 'prefix', 'single']);
  });

  await H.step('meta.subscription', async () => {
    const id = await M.call('wamp.subscription.lookup', ['t.topic']);
    H.check('meta.subscription.lookup', typeof id === 'number' && id > 0, String(id));
    H.eq('meta.subscription.count_subscribers', await M.call('wamp.subscription.count_subscribers', [id]), 3);
    H.eq('meta.subscription.list_subscribers', ((await M.call('wamp.subscription.list_subscribers', [id])) || []).slice().sort(), [A.id, B.id, C.id].sort());
    const wid = await M.call('wamp.subscription.lookup', ['t..ww', { match: 'wildcard' }]);
    H.check('meta.subscription.lookup wildcard', typeof wid === 'number' && wid > 0, String(wid));
  });

  // ------------------------------------------------------------ binary
  if (BINARY_OK) {
    await H.step('binary.rpc', async () => {
      const r = argsOf(await A.call('t.echo', [H.BYTES, Buffer.alloc(0)], { blob: H.BYTES }));
      H.eq('binary.rpc args', r.args, [H.BYTES, Buffer.alloc(0)]);
      H.eq('binary.rpc kwargs', r.kwargs, { blob: H.BYTES });
      H.check('binary.rpc is Buffer', Buffer.isBuffer(r.args[0]), Object.prototype.toString.call(r.args[0]));
    });
    await H.step('binary.event', async () => {
      await A.publish('t.topic', ['bin', H.BYTES], {}, { acknowledge: true });
      const items = await inbox.bob.wait((xs) => xs.some((x) => x.args[0] === 'bin'), 5000, 'binary event');
      H.eq('binary.event', items.find((x) => x.args[0] === 'bin').args[1], H.BYTES);
    });
  }

  await H.step('pubsub.overlapping', async () => {
    // One publication matching an exact, a prefix and a wildcard
    // subscription of one session: one EVENT per subscription, each with its
    // own subscription id (the client dispatches on it) and the same
    // publication id.
    const got = new H.Inbox();
    await B.subscribe('ov.a.b', (a, k, d) => got.push(['exact', a[0], d.topic, d.publication]));
    await B.subscribe('ov', (a, k, d) => got.push(['prefix', a[0], d.topic, d.publication]), { match: 'prefix' });
    await B.subscribe('ov..b', (a, k, d) => got.push(['wildcard', a[0], d.topic, d.publication]), { match: 'wildcard' });
    const pub = await A.publish('ov.a.b', ['o1'], {}, { acknowledge: true });
    const items = await got.wait((xs) => xs.length >= 3, 5000, 'three events');
    await H.sleep(100);
    H.eq('pubsub.overlapping one event per subscription', items.map((x) => x.slice(0, 3)).sort(),
      [['exact', 'o1', 'ov.a.b'], ['prefix', 'o1', 'ov.a.b'], ['wildcard', 'o1', 'ov.a.b']]);
    H.eq('pubsub.overlapping publication id', [...new Set(items.map((x) => x[3]))], [pub.id]);
  });

  await H.step('rpc.large', async () => {
    const big = 'x'.repeat(1 << 20) + 'ü';
    const r = await H.withTimeout(A.call('t.echo', [big]), 10000, '1 MiB call');
    H.check('rpc.large 1 MiB string', r === big, `${typeof r} length ${r && r.length}`);
    if (BINARY_OK) {
      const bb = Buffer.alloc(1 << 20, 7);
      bb[0] = 0;
      bb[bb.length - 1] = 255;
      const rb = await H.withTimeout(A.call('t.echo', [bb]), 10000, '1 MiB bytes call');
      H.check('rpc.large 1 MiB bytes', Buffer.isBuffer(rb) && rb.equals(bb), `${Object.prototype.toString.call(rb)} length ${rb && rb.length}`);
    }
  });

  await H.step('meta.session.kill', async () => {
    const D = await connect('dave');
    const r = await M.call('wamp.session.kill', [D.id], { reason: 'wamp.close.killed_by_test', message: 'bye dave' });
    H.eq('meta.session.kill result', r, null);
    const info = await H.withTimeout(D.closed, 5000, 'dave closed');
    H.eq('meta.session.kill close reason', [info.reason, info.message], ['wamp.close.killed_by_test', 'bye dave']);
  });

  // The router takes a registration (subscription) away: a router-initiated
  // [UNREGISTERED, 0, {registration, reason}] ([UNSUBSCRIBED, 0,
  // {subscription, reason}]), which Autobahn|JS takes as a revocation
  // (lib/session.js _process_UNREGISTERED: request 0 resolves the
  // Registration's on_unregister with the reason and marks it inactive).
  await H.step('meta.registration.remove_callee', async () => {
    const E = await connect('erin');
    const reg = await E.register('t.removable', () => 'erin');
    H.eq('meta.registration.remove_callee before', await A.call('t.removable'), 'erin');
    const r = await M.call('wamp.registration.remove_callee', [reg.id, E.id, 'wamp.error.removed_by_test']);
    H.eq('meta.registration.remove_callee result', r, null);
    const reason = await H.withTimeout(reg.on_unregister, 5000, 'on_unregister of the removed registration');
    H.eq('meta.registration.remove_callee reason', [reason, reg.active], ['wamp.error.removed_by_test', false]);
    const e = await expectError(A.call('t.removable'), 5000, 'call after remove_callee');
    H.eq('meta.registration.remove_callee call after', e.error, 'wamp.error.no_such_procedure');
    const e2 = await expectError(M.call('wamp.registration.remove_callee', [reg.id, E.id]), 5000, 'remove_callee again');
    H.eq('meta.registration.remove_callee again', e2.error, 'wamp.error.no_such_registration');
    // The session stays and may register the procedure again.
    await E.register('t.removable', () => 'erin again');
    H.eq('meta.registration.remove_callee registered again', await A.call('t.removable'), 'erin again');

    const got = new H.Inbox();
    const sub = await E.subscribe('t.removable.topic', (a) => got.push(a[0]));
    await A.publish('t.removable.topic', ['before'], {}, { acknowledge: true });
    await got.wait((xs) => xs.includes('before'), 5000, 'event before remove_subscriber');
    await M.call('wamp.subscription.remove_subscriber', [sub.id, E.id], { reason: 'wamp.error.removed_by_test' });
    const sreason = await H.withTimeout(sub.on_unsubscribe, 5000, 'on_unsubscribe of the removed subscription');
    H.eq('meta.subscription.remove_subscriber reason', [sreason, sub.active], ['wamp.error.removed_by_test', false]);
    await A.publish('t.removable.topic', ['after'], {}, { acknowledge: true });
    await H.sleep(200);
    H.eq('meta.subscription.remove_subscriber no event after', got.items, ['before']);
    E.conn.close();
    await H.withTimeout(E.closed, 5000, 'erin closed');
  });

  // ------------------------------------------------------------ leave
  await H.step('meta.on_leave', async () => {
    const cid = C.id;
    C.conn.close();
    const items = await leaves.wait((xs) => xs.some((x) => x[0] === cid), 5000, 'on_leave for carol');
    H.eq('meta.on_leave', items.find((x) => x[0] === cid), [cid, C.authid, 'anonymous']);
    H.eq('meta.session.count after leave', await M.call('wamp.session.count'), 3);
    // carol's registrations went with her: t.shared has only bob now.
    const got = [];
    for (let i = 0; i < 2; i++) got.push(await A.call('t.shared'));
    H.eq('rpc.shared after callee left', got, ['bob', 'bob']);
  });

  H.check('rpc.cancel callee kept serving', slowCalls.length >= 3, JSON.stringify(slowCalls));
  await closeAll(all.filter((s) => s !== C));
}

// ---------------------------------------------------------------- cross-client roles

// peer roles wait for a publication on interop.stop from the test driver.
// The router names anonymous sessions itself, so a peer that others must
// recognize announces the authid it got under its role name: a retained
// event on x.who.<name> ("-" written "_": wampy checks URIs strictly), which
// whoAre reads back.
const whoTopic = (name) => 'x.who.' + name.replace(/-/g, '_');

async function announce(s, name) {
  await s.publish(whoTopic(name), [s.authid], {}, { acknowledge: true, retain: true });
}

async function whoAre(s, names) {
  const got = new H.Inbox();
  await s.subscribe('x.who', (args, kwargs, d) => got.push([d.topic, args[0]]), { match: 'prefix', get_retained: true });
  const items = await got.wait((xs) => names.every((n) => xs.some((x) => x[0] === whoTopic(n))), 5000, 'the authids of ' + names);
  return Object.fromEntries(names.map((n) => [n, items.find((x) => x[0] === whoTopic(n))[1]]));
}

async function stopSignal(s) {
  const d = H.deferred();
  await s.subscribe('interop.stop', () => d.resolve());
  return d.promise;
}

// x-binary: a byte string published by a JSON (Python) session arrives here
// as a Buffer, and ours arrives there as bytes.
async function xBinary() {
  const me = 'autobahn-js-' + SER;
  const S = await connect(me);
  const got = new H.Inbox();
  const topic = 'x.bin.fromjson.' + me;
  await S.subscribe(topic, (args, kwargs) => got.push({ args, kwargs }));
  await H.step('x.binary json->' + SER + ' event', async () => {
    H.eq('x.binary publish ack', await S.call('x.bin.publish', [topic]), 'published');
    const items = await got.wait((xs) => xs.length > 0, 5000, 'event from the JSON publisher');
    const ev = items[0];
    H.eq(`x.binary json->${SER} args`, ev.args, [H.BYTES, Buffer.alloc(0)]);
    H.eq(`x.binary json->${SER} kwargs`, ev.kwargs, { blob: H.BYTES, from: 'py-json' });
    H.check(`x.binary json->${SER} is Buffer`, Buffer.isBuffer(ev.args[0]), Object.prototype.toString.call(ev.args[0]));
  });
  await H.step(`x.binary ${SER}->json publish`, async () => {
    await S.publish('x.bin.tojson', [H.BYTES, Buffer.alloc(0)], { blob: H.BYTES, from: me }, { acknowledge: true });
  });
  await H.step(`x.binary ${SER}->json->${SER} rpc`, async () => {
    const r = argsOf(await S.call('x.bin.echo', [H.BYTES], { blob: Buffer.from('wamp') }));
    H.eq(`x.binary rpc roundtrip`, [r.args, r.kwargs], [[H.BYTES], { blob: Buffer.from('wamp') }]);
  });
  await closeAll([S]);
}

// x-mixed-sub: the CBOR (or other) subscriber at the end of JSON caller ->
// MsgPack callee -> subscriber.
async function xMixedSub() {
  const S = await connect('autobahn-js-sub');
  const got = new H.Inbox();
  await S.subscribe('x.mixed.evt', (args, kwargs, d) => got.push({ args, kwargs, publisher: d.publisher_authid }));
  const stop = stopSignal(S);
  H.ready();
  await stop;
  await H.step('x.mixed subscriber', async () => {
    const items = await got.wait((xs) => xs.length > 0, 3000, 'the callee\'s event');
    H.eq(`x.mixed event at ${SER} subscriber`, [items[0].args, items[0].kwargs], [[...H.MIXED_ARGS, H.BYTES], H.MIXED_KWARGS]);
    const ids = await whoAre(S, ['py-callee']);
    H.eq('x.mixed publisher identification', items[0].publisher, ids['py-callee']);
    H.eq('x.mixed exactly one event', items.length, 1);
  });
  await closeAll([S]);
}

// x-rpc: Autobahn|JS caller against a Python callee (which supports call
// canceling), and a JS callee whose error Python sees.
async function xRPC() {
  const me = 'autobahn-js-' + SER;
  const S = await connect(me);
  await announce(S, me);
  await H.step('x.rpc echo', async () => {
    const r = argsOf(await S.call('x.rpc.echo', H.MIXED_ARGS, H.MIXED_KWARGS, { disclose_me: true }));
    H.eq('x.rpc echo py callee', [r.args, r.kwargs], [H.MIXED_ARGS, H.MIXED_KWARGS]);
  });
  await H.step('x.rpc error py->js', async () => {
    const e = await expectError(S.call('x.rpc.fail', ['please']), 5000, 'x.rpc.fail');
    H.eq('x.rpc error py->js', [e.error, e.args, e.kwargs], ['x.error.py', ['py-arg', 7], { reason: 'py-kw', echo: 'please' }]);
  });
  await H.step('x.rpc error js->py', async () => {
    await S.register('x.js.fail.' + me, () => { throw new autobahn.Error('x.error.js', ['js-arg', 8], { reason: 'js-kw' }); });
    const r = await S.call('x.rpc.call', ['x.js.fail.' + me]);
    H.eq('x.rpc error js->py', r, { error: 'x.error.js', args: ['js-arg', 8], kwargs: { reason: 'js-kw' } });
  });
  await H.step('x.rpc progressive', async () => {
    const progress = [];
    const p = S.call('x.rpc.progress', [3], {}, { receive_progress: true });
    p.then(undefined, undefined, (v) => progress.push(v));
    const r = await H.withTimeout(p, 5000, 'x.rpc.progress');
    H.eq('x.rpc progressive from py', [progress, r], [[1, 2, 3], 'done']);
  });
  await H.step('x.rpc cancel kill', async () => {
    // Python announces callee call_canceling: the router sends INTERRUPT
    // (kill) and forwards the callee's ERROR.
    const p = S.call('x.rpc.slow', [me + '-kill', true]);
    await H.sleep(200);
    p.cancel({ mode: 'kill' });
    const e = await expectError(p, 3000, 'x.rpc.slow canceled (kill)');
    H.eq('x.rpc cancel kill error', e.error, 'wamp.error.canceled');
  });
  await H.step('x.rpc timeout', async () => {
    const e = await expectError(S.call('x.rpc.slow', [me + '-timeout', true], {}, { timeout: 300 }), 3000, 'x.rpc.slow timeout');
    H.eq('x.rpc timeout error', e.error, 'wamp.error.timeout');
  });
  await closeAll([S]);
}

// x-shared: caller of a procedure shared (roundrobin) by a Python and a
// wampy callee, meta API over both, and a retained event from Python.
async function xShared() {
  const S = await connect('autobahn-js-shared');
  const ids = await whoAre(S, ['py-shared', 'wampy-shared']);
  await H.step('x.shared roundrobin', async () => {
    const got = [];
    for (let i = 0; i < 4; i++) got.push(await S.call('x.shared'));
    H.eq('x.shared roundrobin py/wampy', got, ['py', 'wampy', 'py', 'wampy']);
  });
  await H.step('x.shared meta', async () => {
    const id = await S.call('wamp.registration.lookup', ['x.shared']);
    const callees = (await S.call('wamp.registration.list_callees', [id])) || [];
    const authids = [];
    for (const c of callees) authids.push((await S.call('wamp.session.get', [c])).authid);
    H.eq('x.shared list_callees authids', authids.sort(), [ids['py-shared'], ids['wampy-shared']].sort());
    const g = await S.call('wamp.registration.get', [id]);
    H.eq('x.shared registration.get', [g.uri, g.invoke], ['x.shared', 'roundrobin']);
  });
  await H.step('x.shared retained', async () => {
    const got = new H.Inbox();
    await S.subscribe('x.ret', (args, kwargs, d) => got.push({ args, retained: d.retained, publisher: d.publisher_authid }), { get_retained: true });
    const items = await got.wait((xs) => xs.length > 0, 5000, 'retained x.ret');
    const bin = BINARY_OK ? H.BYTES : '\u0000' + H.BYTES.toString('base64');
    H.eq('x.shared retained event', items[0], { args: ['kept', bin], retained: true, publisher: ids['py-shared'] });
  });
  await closeAll([S]);
}

// timeout-accuracy: CALL.Options.timeout is in milliseconds and runs from
// the CALL (WAMP spec, Call Timeouts). A call whose callee answers after
// 400 ms must not time out at 1000 ms, and a call nobody answers must fail
// with wamp.error.timeout close to its 300 ms. (Regression test: the router
// once measured timeouts on a coarse clock up to a second stale and checked
// them only when its ticker next woke, so they fired from at once to a
// second late.)
async function timeoutAccuracy() {
  const A = await connect('caller');
  const B = await connect('callee');
  await B.register('acc.answer', () => new Promise((res) => setTimeout(() => res('answered'), 400)));
  await B.register('acc.never', () => new Promise(() => {}));
  const lag = loopLag(10);
  await H.step('timeout.not_early', async () => {
    const outcomes = [];
    for (let i = 0; i < 8; i++) {
      outcomes.push(await steady(lag, async () => {
        const t0 = Date.now();
        const r = await H.settle(A.call('acc.answer', [], {}, { timeout: 1000 }), 5000, 'acc.answer');
        return r.ok ? `ok@${Date.now() - t0}ms` : `${r.error.error || H.describe(r.error)}@${Date.now() - t0}ms`;
      }));
      await H.sleep(137 * (i % 3));
    }
    H.check('timeout 1000 ms, answer at 400 ms: every call succeeds', outcomes.every((o) => o.startsWith('ok@')), outcomes.join(' '));
  });
  await H.step('timeout.on_time', async () => {
    const elapsed = [];
    let uris = new Set();
    for (let i = 0; i < 5; i++) {
      elapsed.push(await steady(lag, async () => {
        const t0 = Date.now();
        const e = await expectError(A.call('acc.never', [], {}, { timeout: 300 }), 5000, 'acc.never');
        uris.add(e.error);
        return Date.now() - t0;
      }));
      await H.sleep(111 * (i % 3));
    }
    H.eq('timeout error uri', [...uris], ['wamp.error.timeout']);
    const ms = (x) => typeof x === 'number' ? x : parseInt(x, 10);
    H.check('timeout 300 ms fires within [290, 800] ms', elapsed.every((x) => ms(x) >= 290 && ms(x) <= 800), elapsed.map((x) => typeof x === 'number' ? x + 'ms' : x).join(' '));
  });
  lag.stop();
  await closeAll([A, B]);
}

// loopLag watches this process's event loop: worst() is how late a tick
// of tick ms came at most since reset(). A stall of the process (a loaded
// machine) moves both the callee's 400 ms answer and the clock the caller
// reads: CI at load 18-26 saw a call answered at 400 ms time out at
// 1000 ms and a 300 ms timeout seen at 831 ms.
function loopLag(tick) {
  let last = Date.now();
  let worst = 0;
  const iv = setInterval(() => { const now = Date.now(); worst = Math.max(worst, now - last - tick); last = now; }, tick);
  return {
    reset() { worst = 0; last = Date.now(); },
    worst: () => Math.max(worst, Date.now() - last - tick),
    stop: () => clearInterval(iv),
  };
}

// steady runs sample until it runs with this process's event loop never
// late by more than 100 ms (up to 5 tries), and returns its outcome; the
// router's own lateness (its timer checked on a stale clock, the bug this
// guards) fails the check whatever this process does. A sample that
// stalled every try is returned marked with the stall, in the detail of
// its check, which reads its own outcome.
async function steady(lag, sample) {
  let v;
  let w = 0;
  for (let i = 0; i < 5; i++) {
    lag.reset();
    v = await sample();
    w = lag.worst();
    if (w <= 100) return v;
  }
  return `${v} (this process stalled ${w} ms each of 5 tries)`;
}

// x-shutdown: a session open when the router gets SIGTERM must be told
// GOODBYE wamp.close.system_shutdown.
async function xShutdown() {
  const S = await connect('autobahn-js-' + SER + '-shutdown');
  await S.register('x.down.' + SER, () => 'up');
  H.ready();
  await H.step('x.shutdown', async () => {
    const info = await H.withTimeout(S.closed, 30000, 'the router closing the session');
    H.eq(`x.shutdown GOODBYE reason at autobahn-js ${SER}`, [info.closeReason, info.reason], ['closed', 'wamp.close.system_shutdown']);
  });
}

// x-extras: what the suite does not reach. A subscription revoked by
// wamp.subscription.remove_subscriber ([UNSUBSCRIBED, 0, {subscription,
// reason}]: Autobahn|JS announces subscription_revocation) resolves the
// subscription's on_unsubscribe with the reason and the session goes on;
// a testament added with Crossbar's positional arguments and publish
// options is published when the session's transport closes; over
// RawSocket, a session announcing the smallest maximum (2^9 bytes) gets
// wamp.error.payload_size_exceeded for a result longer than that, and
// keeps its session.
async function xExtras() {
  const M = await connect('extras-meta');
  const A = await connect('extras-a');
  const all = [M, A];
  await H.step('revoke.subscription', async () => {
    const got = new H.Inbox();
    const sub = await A.subscribe('xe.rev', (args) => got.push(args[0]));
    const reason = H.deferred();
    sub.on_unsubscribe.then((r) => reason.resolve(r));
    await M.publish('xe.rev', ['before'], {}, { acknowledge: true });
    await got.wait((xs) => xs.includes('before'), 5000, 'event before the revocation');
    H.eq('revoke.subscription result', await M.call('wamp.subscription.remove_subscriber', [sub.id, A.id, 'xe.removed']), null);
    H.eq('revoke.subscription on_unsubscribe reason', await H.withTimeout(reason.promise, 5000, 'on_unsubscribe'), 'xe.removed');
    H.check('revoke.subscription inactive', sub.active === false, String(sub.active));
    await M.publish('xe.rev', ['after'], {}, { acknowledge: true });
    const again = await A.subscribe('xe.rev', (args) => got.push(args[0]));
    H.check('revoke.subscription subscribe again', again.id > 0, String(again.id));
    await M.publish('xe.rev', ['again'], {}, { acknowledge: true });
    // One publisher's events reach a subscriber in order: 'after', had it
    // been delivered to the revoked subscription, would come before 'again'.
    await got.wait((xs) => xs.includes('again'), 5000, 'event after subscribing again');
    H.eq('revoke.subscription no event while unsubscribed', got.items, ['before', 'again']);
    H.check('revoke.subscription session kept', A.isOpen, 'closed');
  });
  await H.step('testament', async () => {
    const got = new H.Inbox();
    await M.subscribe('xe.will', (args, kwargs, d) => got.push({ args, kwargs, publisher: d.publisher, publication: d.publication }));
    const T = await connect('extras-testament');
    // An id, as Crossbar.io answers: the testament's publication id.
    const pub = await T.call('wamp.session.add_testament', ['xe.will', ['gone'], { k: 1 }, { disclose_me: true }]);
    H.check('testament.add result', Number.isSafeInteger(pub) && pub >= 1, pub);
    const tid = T.id;
    T.conn.close();
    const items = await got.wait((xs) => xs.length > 0, 5000, 'testament');
    H.eq('testament published', items[0], { args: ['gone'], kwargs: { k: 1 }, publisher: tid, publication: pub });
  });
  if (opt.rawsocket) {
    await H.step('rawsocket.small_maximum', async () => {
      const i = opt.rawsocket.lastIndexOf(':');
      const d = H.deferred();
      const conn = new autobahn.Connection({ realm: 'realm1', max_retries: 0, retry_if_unreachable: false,
        transports: [{ type: 'rawsocket', host: opt.rawsocket.slice(0, i), port: Number(opt.rawsocket.slice(i + 1)), rawsocket_max_len_exp: 9 }] });
      conn.onopen = (session) => d.resolve(session);
      conn.onclose = (reason, details) => { d.reject(new Error(`connection ${reason}: ${JSON.stringify(details)}`)); return true; };
      conn.open();
      const S = await H.withTimeout(d.promise, 10000, 'join announcing 512 bytes');
      await A.register('xe.echo', (args) => args[0]);
      H.eq('rawsocket.small_maximum short result', await S.call('xe.echo', ['x'.repeat(100)]), 'x'.repeat(100));
      const e = await expectError(S.call('xe.echo', ['y'.repeat(1000)]), 5000, 'a result longer than 512 bytes');
      H.eq('rawsocket.small_maximum long result', e.error, 'wamp.error.payload_size_exceeded');
      H.eq('rawsocket.small_maximum session kept', await S.call('xe.echo', ['z']), 'z');
      conn.close();
    });
  }
  await closeAll(all);
}

// x-idle: a session silent for --idle seconds (longer than the router's
// keepalive interval in interop_keepalive_test.go), then a call: it must
// still be joined. Autobahn|JS's RawSocket transport answers a PING only
// when the bytes after its 4-octet header arrive (lib/transport/
// rawsocket.js, Protocol._read: a frame's payload is read from the next
// chunk of data), so an empty PING waited for the router's next message.
async function xIdle() {
  const S = await connect('idle');
  const idle = Number(opt.idle || 3) * 1000;
  const r = await H.settle(S.closed, idle, 'silence');
  if (r.ok) {
    H.check('x.idle session kept while silent', false, `lost after less than ${idle} ms: ${JSON.stringify(r.value)}`);
    return;
  }
  H.check('x.idle session kept while silent', true, `${idle} ms`);
  const n = await H.withTimeout(S.call('wamp.session.count'), 5000, 'call after the silence');
  H.check('x.idle call after the silence', n >= 1, String(n));
  await closeAll([S]);
}

// x-exact16m (RawSocket): a RESULT of exactly 2^24 octets, which the
// RawSocket framing writes with the X bit (RRRR XTTT, the 24 length bits
// clear). Autobahn|JS reads the frame type as the low 4 bits (lib/
// transport/rawsocket.js, Protocol._handleHeaderPacket: int32[0] & 0x0f),
// takes 0x8 for an invalid frame type and closes its connection. The
// Go callee of big.exact returns a string whose JSON text is args[0]
// octets long; this session's request ids are forced to 7 for the call, so
// that the RESULT's length is known.
async function xExact16M() {
  const S = await connect('exact16m');
  const next = S._new_request_id;
  S._new_request_id = () => 7;
  const want = 2 ** 24;
  const text = want - '[50,7,{},['.length - ']]'.length;
  const p = S.call('big.exact', [text]);
  S._new_request_id = next;
  const r = await H.settle(p, 15000, 'a RESULT of exactly 2^24 octets');
  H.eq('x.exact16m refused as too long for this client', r.ok ? 'a RESULT' : r.error.error || H.describe(r.error), 'wamp.error.payload_size_exceeded');
  const n = await H.withTimeout(S.call('wamp.session.count'), 5000, 'call after the large result');
  H.check('x.exact16m session kept', n >= 1, String(n));
  await closeAll([S]);
}

const modes = { suite, 'x-idle': xIdle, 'x-exact16m': xExact16M, 'x-shutdown': xShutdown, 'x-binary': xBinary, 'x-mixed-sub': xMixedSub, 'x-rpc': xRPC, 'x-shared': xShared, 'timeout-accuracy': timeoutAccuracy, 'x-extras': xExtras };

(async () => {
  try {
    if (!modes[MODE]) throw new Error('unknown mode ' + MODE);
    await modes[MODE]();
  } catch (e) {
    H.report('fatal', false, H.describe(e));
  }
  H.finish();
})();
