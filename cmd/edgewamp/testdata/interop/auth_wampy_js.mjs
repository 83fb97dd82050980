// Authentication and authorization: wampy.js (npm wampy 8.0.2, with ws)
// against a secured edgewamp realm, using wampy's own wampcra and
// cryptosign plugins.
//
//   node auth_wampy_js.mjs --url ws://HOST:PORT/ws --serializer json|msgpack|cbor --creds JSON --mode M
//
// The realm is written by cmd/edgewamp/interop_auth_test.go (authConfig);
// --creds carries its secrets (see auth_autobahn_py.py). Modes: authn,
// authn-reject, authz, reload-peer. No mode makes more than three failed
// authentications (route/ratelimit.go delays the answers from the fourth
// per source address). Output: see harness.js.

import { createRequire } from 'node:module';
import { Wampy } from 'wampy';
import { MsgpackSerializer } from 'wampy/MsgpackSerializer.js';
import { CborSerializer } from 'wampy/CborSerializer.js';
import * as wampyCra from 'wampy/wampcra.js';
import * as wampyCS from 'wampy/cryptosign.js';
import WebSocket from 'ws';
import nacl from 'tweetnacl'; // wampy's own dependency for cryptosign

const require = createRequire(import.meta.url);
const H = require('./harness.js');

const opt = H.args(process.argv.slice(2));
const SER = opt.serializer || 'json';
const MODE = opt.mode;
const CREDS = JSON.parse(opt.creds || '{}');
const TAG = `wampy_ws_${SER}`;

// wampy's own MsgpackSerializer, as a user configures it; see wampy_js.mjs
// for the undefined option values it writes.
function serializer() {
  switch (SER) {
    case 'json': return undefined; // wampy's default JsonSerializer
    case 'msgpack': return new MsgpackSerializer();
    case 'cbor': return new CborSerializer();
  }
  throw new Error('unknown serializer ' + SER);
}

// join connects with the given HELLO and resolves, within 10 s, with {w,
// welcome, challenges} after WELCOME or {abort, message, challenges} after
// ABORT.
//
// Client quirks (wampy 8.0.2, Wampy.connect and _wsOnOpen / _onChallengeMessage):
// HELLO carries authid, authmethods and authextra only when authid is set,
// connect() refuses to start unless authid, authmethods and onChallenge are
// all given, and a CHALLENGE is only answered when authid is set. So wampy
// cannot do cryptosign without an authid (the router identifies the key's
// owner itself and accepts the matching authid), and an anonymous HELLO is
// one with none of the three. There is no authrole option: it goes in
// helloCustomDetails, which wampy copies into HELLO.Details.
async function join({ authmethods, authid, authrole, authextra, respond }) {
  const challenges = [];
  const options = {
    realm: 'realm1',
    ws: WebSocket,
    autoReconnect: false,
    debug: !!process.env.WAMPY_DEBUG,
  };
  const ser = serializer();
  if (ser) options.serializer = ser;
  if (authid !== undefined) {
    Object.assign(options, {
      authid, authmethods, authextra: authextra || {},
      onChallenge: (method, extra) => {
        challenges.push({ method, extra });
        return respond(method, extra);
      },
    });
  }
  if (authrole !== undefined) options.helloCustomDetails = { authrole };
  const w = new Wampy(opt.url, options);
  // wampy answers GOODBYE without telling the application its reason; the
  // harness reads it from the decoded message (as in wampy_js.mjs).
  const closed = H.deferred();
  w.closed = closed.promise;
  const decode = w._decode.bind(w);
  w._decode = (data) => {
    const msg = decode(data);
    if (Array.isArray(msg) && msg[0] === 6) closed.resolve({ details: msg[1], reason: msg[2] }); // GOODBYE
    return msg;
  };
  const r = await H.settle(w.connect(), 10000, `join ${authid}`);
  if (r.ok) {
    w.welcome = r.value;
    w.id = Number(w.getSessionId()); // MsgPack: a BigInt
    return { w, welcome: r.value, challenges };
  }
  if (r.error && r.error.name === 'AbortedError') {
    return { abort: r.error.errorUri, message: (r.error.details || {}).message, challenges };
  }
  throw r.error;
}

async function joined(hello) {
  const o = await join(hello);
  if (!o.w) throw new Error(`join refused: ABORT ${o.abort} ${o.message}`);
  return o.w;
}

const ticket = (pw) => () => pw;
const wampcra = (secret) => wampyCra.sign(secret); // salted when the CHALLENGE has salt
const csSign = (seedHex) => wampyCS.sign(seedHex);
const pubOf = (seedHex) => Buffer.from(nacl.sign.keyPair.fromSeed(Buffer.from(seedHex, 'hex')).publicKey).toString('hex');

const aliceTicket = (more) => join(Object.assign({ authmethods: ['ticket'], authid: 'alice', respond: ticket(CREDS.alice_pw) }, more));
const aliceCRA = (more) => join(Object.assign({ authmethods: ['wampcra'], authid: 'alice', respond: wampcra(CREDS.alice_pw) }, more));
const bobCRA = (more) => join(Object.assign({ authmethods: ['wampcra'], authid: 'bob', respond: wampcra(CREDS.bob_secret) }, more));
const sensor = () => join({ authmethods: ['cryptosign'], authid: 'sensor1', authextra: { pubkey: pubOf(CREDS.seed) }, respond: csSign(CREDS.seed) });

function welcomeOf(o) {
  if (!o.w) return { abort: o.abort };
  const d = o.welcome;
  return { authid: d.authid, authrole: d.authrole, authmethod: d.authmethod, authprovider: d.authprovider };
}

function abortOf(o) {
  if (o.w) {
    o.w.disconnect().catch(() => {});
    return { welcome: welcomeOf(o) };
  }
  return o.abort;
}

async function closeAll(ws) {
  for (const w of ws) {
    try { await H.withTimeout(w.disconnect(), 2000, 'disconnect'); } catch (e) { /* gone */ }
  }
}

async function expectError(p, what) {
  const r = await H.settle(p, 5000, what);
  if (r.ok) throw new Error(`${what}: succeeded with ${H.show(r.value)}, want an error`);
  return r.error;
}

const errorOf = (e) => (e && e.errorUri) || H.describe(e);
const first = (r) => (r.argsList || [])[0];

// ---------------------------------------------------------------- authn

async function authn() {
  const keep = [];
  await H.step('authn.ticket', async () => {
    const o = await aliceTicket();
    keep.push(o);
    H.eq('authn.ticket welcome', welcomeOf(o), { authid: 'alice', authrole: 'user', authmethod: 'ticket', authprovider: 'static' });
    H.eq('authn.ticket challenge', o.challenges, [{ method: 'ticket', extra: {} }]);
  });
  await H.step('authn.ticket authrole', async () => {
    const o = await aliceTicket({ authrole: 'admin' });
    keep.push(o);
    H.eq('authn.ticket authrole admin', welcomeOf(o), { authid: 'alice', authrole: 'admin', authmethod: 'ticket', authprovider: 'static' });
  });
  await H.step('authn.wampcra plain', async () => {
    const o = await bobCRA();
    keep.push(o);
    H.eq('authn.wampcra plain welcome', welcomeOf(o), { authid: 'bob', authrole: 'user', authmethod: 'wampcra', authprovider: 'static' });
    const ex = (o.challenges[0] || {}).extra || {};
    H.check('authn.wampcra plain challenge unsalted', typeof ex.challenge === 'string' && ex.salt === undefined, JSON.stringify(ex));
    const c = JSON.parse(ex.challenge || '{}');
    // authrole is the role HELLO asked for ('' here), not bob's: a user's
    // own role told it apart from an unknown authid.
    H.eq('authn.wampcra challenge content', [c.authid, c.authrole, c.authmethod], ['bob', '', 'wampcra']);
  });
  await H.step('authn.wampcra salted', async () => {
    const o = await aliceCRA();
    keep.push(o);
    H.eq('authn.wampcra salted welcome', welcomeOf(o), { authid: 'alice', authrole: 'user', authmethod: 'wampcra', authprovider: 'static' });
    const ex = (o.challenges[0] || {}).extra || {};
    H.eq('authn.wampcra salted challenge parameters', [ex.iterations, ex.keylen, typeof ex.salt], [1000, 32, 'string']);
  });
  await H.step('authn.cryptosign', async () => {
    const o = await sensor();
    keep.push(o);
    H.eq('authn.cryptosign welcome', welcomeOf(o), { authid: 'sensor1', authrole: 'device', authmethod: 'cryptosign', authprovider: 'static' });
    const ex = (o.challenges[0] || {}).extra || {};
    H.check('authn.cryptosign challenge is 32 hex bytes', typeof ex.challenge === 'string' && ex.challenge.length === 64, JSON.stringify(ex));
  });
  await H.step('authn.authmethods order', async () => {
    const o = await aliceTicket({ authmethods: ['anonymous', 'ticket'] });
    keep.push(o);
    H.eq('authn.authmethods order [anonymous, ticket]', welcomeOf(o).authmethod, 'ticket');
  });
  await H.step('authn.anonymous', async () => {
    H.eq('authn.anonymous refused', abortOf(await join({})), 'wamp.error.no_matching_auth_method');
  });
  await H.step('authn.ticket wrong', async () => {
    H.eq('authn.ticket wrong password', abortOf(await aliceTicket({ respond: ticket('not-' + CREDS.alice_pw) })), 'wamp.error.authentication_failed');
  });
  await H.step('authn.wampcra plain wrong', async () => {
    H.eq('authn.wampcra plain wrong secret', abortOf(await bobCRA({ respond: wampcra('not-' + CREDS.bob_secret) })), 'wamp.error.authentication_failed');
  });
  await H.step('authn.wampcra salted wrong', async () => {
    H.eq('authn.wampcra salted wrong password', abortOf(await aliceCRA({ respond: wampcra('not-' + CREDS.alice_pw) })), 'wamp.error.authentication_failed');
  });
  await H.step('authn.still attached', async () => {
    const alive = keep.filter((o) => o.w).map((o) => o.w.getSessionId() != null);
    H.check('authn.joined sessions still attached', alive.length === 6 && alive.every(Boolean), JSON.stringify(alive));
  });
  await closeAll(keep.filter((o) => o.w).map((o) => o.w));
}

async function authnReject() {
  await H.step('authn.unknown authid', async () => {
    H.eq('authn.wampcra unknown authid', abortOf(await join({ authmethods: ['wampcra'], authid: 'mallory', respond: wampcra('whatever') })),
      'wamp.error.authentication_failed');
  });
  await H.step('authn.cryptosign unknown key', async () => {
    const o = await join({ authmethods: ['cryptosign'], authid: 'stranger', authextra: { pubkey: pubOf(CREDS.stranger_seed) }, respond: csSign(CREDS.stranger_seed) });
    H.eq('authn.cryptosign unknown key', abortOf(o), 'wamp.error.no_such_principal');
  });
  await H.step('authn.cryptosign wrong signature', async () => {
    const o = await join({ authmethods: ['cryptosign'], authid: 'sensor1', authextra: { pubkey: pubOf(CREDS.seed) }, respond: csSign(CREDS.stranger_seed) });
    H.eq('authn.cryptosign wrong signature', abortOf(o), 'wamp.error.authentication_failed');
    H.check('authn.cryptosign wrong signature was challenged', o.challenges.length === 1, JSON.stringify(o.challenges));
  });
}

// ---------------------------------------------------------------- authz

const denied = (name, e) => H.eq(name, errorOf(e), 'wamp.error.not_authorized');

async function authz() {
  const A = await joined({ authmethods: ['ticket'], authid: 'alice', respond: ticket(CREDS.alice_pw) });
  const B = await joined({ authmethods: ['wampcra'], authid: 'bob', respond: wampcra(CREDS.bob_secret) });
  const ADM = await joined({ authmethods: ['wampcra'], authid: 'alice', authrole: 'admin', respond: wampcra(CREDS.alice_pw) });
  const S = await joined({ authmethods: ['cryptosign'], authid: 'sensor1', authextra: { pubkey: pubOf(CREDS.seed) }, respond: csSign(CREDS.seed) });
  H.eq('authz.roles', [A, B, ADM, S].map((w) => w.welcome.authrole), ['user', 'user', 'admin', 'device']);

  const whoami = ({ details }) => ({ argsList: [details.caller ?? null, details.caller_authid ?? null, details.caller_authrole ?? null] });
  const alive = async (name) => H.eq(name + ' (session still up)', first(await H.withTimeout(A.call('app.rpc.echo', ['still-up']), 5000, 'echo')), 'still-up');

  await H.step('authz.granted', async () => {
    await B.register('app.rpc.echo', ({ argsList }) => ({ argsList }));
    H.eq('authz.granted call+register', first(await H.withTimeout(A.call('app.rpc.echo', ['hi']), 5000, 'echo')), 'hi');
    const got = new H.Inbox();
    await A.subscribe('app.topic', (e) => got.push(e.argsList));
    await B.publish('app.topic', ['ev1']); // wampy always asks for acknowledge
    const items = await got.wait((xs) => xs.length > 0, 5000, 'event on app.topic');
    H.eq('authz.granted publish+subscribe', items[0], ['ev1']);
  });

  await H.step('authz.outside', async () => {
    denied('authz.outside call', await expectError(A.call('other.proc'), 'call other.proc'));
    await alive('authz.outside call');
    denied('authz.outside register', await expectError(A.register('other.proc', () => 1), 'register other.proc'));
    await alive('authz.outside register');
    denied('authz.outside subscribe', await expectError(A.subscribe('other.topic', () => {}), 'subscribe other.topic'));
    await alive('authz.outside subscribe');
    denied('authz.outside publish (acknowledged)', await expectError(A.publish('other.topic', [1]), 'publish other.topic'));
    await alive('authz.outside publish');
    denied('authz.meta api not granted', await expectError(A.call('wamp.session.count'), 'wamp.session.count'));
    await alive('authz.meta api');
  });

  await H.step('authz.admin', async () => {
    const n = first(await H.withTimeout(ADM.call('wamp.session.count'), 5000, 'admin wamp.session.count'));
    H.check('authz.admin meta api granted', Number(n) >= 4, H.show(n));
    const e = await expectError(ADM.call('other.proc'), 'admin call other.proc');
    H.eq('authz.admin granted but unregistered', errorOf(e), 'wamp.error.no_such_procedure');
  });

  await H.step('authz.deny under prefix', async () => {
    await ADM.register('app.secret.data', () => ({ argsList: ['secret'] }));
    await ADM.register('app.secret.status', () => ({ argsList: ['status-ok'] }));
    denied('authz.deny under prefix: call', await expectError(A.call('app.secret.data'), 'call app.secret.data'));
    denied('authz.deny under prefix: register', await expectError(A.register('app.secret.mine', () => 1), 'register app.secret.mine'));
    denied('authz.deny under prefix: subscribe', await expectError(A.subscribe('app.secret.t', () => {}), 'subscribe app.secret.t'));
    denied('authz.deny under prefix: publish', await expectError(A.publish('app.secret.t', [1]), 'publish app.secret.t'));
    H.eq('authz.exact allow under the deny: call', first(await H.withTimeout(A.call('app.secret.status'), 5000, 'status')), 'status-ok');
    denied('authz.exact allow under the deny: register still denied', await expectError(A.register('app.secret.status', () => 1), 'register app.secret.status'));
    await alive('authz.deny under prefix');
  });

  await H.step('authz.partial grant', async () => {
    await A.subscribe('app.ro.news', () => {});
    H.report('authz.subscribe-only prefix: subscribe', true);
    denied('authz.subscribe-only prefix: publish', await expectError(A.publish('app.ro.news', [1]), 'publish app.ro.news'));
    denied('authz.subscribe-only prefix: call', await expectError(A.call('app.ro.proc'), 'call app.ro.proc'));
  });

  await H.step('authz.disclose caller', async () => {
    await B.register('app.disclosed.whoami', whoami);
    await B.register('app.plain.whoami', whoami);
    const r1 = await H.withTimeout(A.call('app.disclosed.whoami'), 5000, 'disclosed whoami');
    H.eq('authz.disclose caller by role (no disclose_me)', r1.argsList, [A.id, 'alice', 'user']);
    const r2 = await H.withTimeout(A.call('app.plain.whoami'), 5000, 'plain whoami');
    H.eq('authz.no disclose without the grant', r2.argsList, [null, null, null]);
  });

  await H.step('authz.device', async () => {
    const got = new H.Inbox();
    await A.subscribe('app.s1.reading', (e) => got.push([e.argsList[0], e.details.publisher ?? null, e.details.publisher_authid ?? null, e.details.publisher_authrole ?? null]));
    await S.publish('app.s1.reading', [21.5]);
    const items = await got.wait((xs) => xs.length > 0, 5000, 'reading event');
    H.eq('authz.wildcard grant publish + disclose publisher', items[0], [21.5, S.id, 'sensor1', 'device']);
    denied('authz.device publish outside grant', await expectError(S.publish('app.s1.config', [1]), 'publish app.s1.config'));
    denied('authz.device subscribe not granted', await expectError(S.subscribe('app.s1.reading', () => {}), 'device subscribe'));
    await S.publish('app.s1.reading', [22.0]);
    await got.wait((xs) => xs.length > 1, 5000, 'second reading');
    H.report('authz.device session still up', true);
  });

  await H.step('authz.no_such_role', async () => {
    H.eq('authz.no_such_role ticket', abortOf(await aliceTicket({ authrole: 'device' })), 'wamp.error.no_such_role');
    H.eq('authz.no_such_role wampcra', abortOf(await bobCRA({ authrole: 'admin' })), 'wamp.error.no_such_role');
  });

  await closeAll([A, B, ADM, S]);
}

// ---------------------------------------------------------------- reload

async function reloadPeer() {
  const A = await joined({ authmethods: ['ticket'], authid: 'alice', respond: ticket(CREDS.alice_pw) });
  const Bo = await joined({ authmethods: ['wampcra'], authid: 'bob', respond: wampcra(CREDS.bob_secret) });
  const C = await joined({ authmethods: ['wampcra'], authid: 'carol', authrole: 'admin', respond: wampcra(CREDS.carol_secret) });
  await A.register(`app.keep.${TAG}`, ({ argsList }) => ({ argsList }));
  await A.register(`app.revoked.${TAG}`, ({ argsList }) => ({ argsList }));
  H.eq('reload.before: call app.revoked', first(await H.withTimeout(A.call(`app.revoked.${TAG}`, [1]), 5000, 'revoked before')), 1);
  H.ready();
  await H.step('reload.killed', async () => {
    for (const [name, w] of [['bob (removed)', Bo], ['carol (lost role admin)', C]]) {
      const info = await H.withTimeout(w.closed, 15000, name + ' closed');
      H.eq(`reload.${name} GOODBYE`, info.reason, 'wamp.close.killed');
    }
  });
  await H.step('reload.kept', async () => {
    H.check('reload.alice still attached', A.getSessionId() != null, '');
    H.eq('reload.alice call after reload', first(await H.withTimeout(A.call(`app.keep.${TAG}`, ['ok']), 5000, 'keep')), 'ok');
    const e = await expectError(A.call(`app.revoked.${TAG}`, [1]), 'revoked after reload');
    H.eq('reload.new grants apply to a kept session', errorOf(e), 'wamp.error.not_authorized');
  });
  await H.step('reload.rejoin', async () => {
    H.eq('reload.removed user cannot join', abortOf(await bobCRA()), 'wamp.error.authentication_failed');
    const C2 = await joined({ authmethods: ['wampcra'], authid: 'carol', respond: wampcra(CREDS.carol_secret) });
    H.eq('reload.carol joins with her remaining role', C2.welcome.authrole, 'user');
    await closeAll([C2]);
  });
  await closeAll([A]);
}

const modes = { authn, 'authn-reject': authnReject, authz, 'reload-peer': reloadPeer };

try {
  if (!modes[MODE]) throw new Error('unknown mode ' + MODE);
  await modes[MODE]();
} catch (e) {
  H.report('fatal', false, H.describe(e));
}
H.finish();
