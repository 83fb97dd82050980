'use strict';
// Authentication and authorization: Autobahn|JS (npm autobahn 22.11.1)
// against a secured edgewamp realm.
//
//   node auth_autobahn_js.js --url ws://HOST:PORT/ws --serializer json|msgpack|cbor --creds JSON --mode M
//   node auth_autobahn_js.js --rawsocket HOST:PORT --creds JSON --mode M     (RawSocket is JSON only)
//
// The realm is written by cmd/edgewamp/interop_auth_test.go (authConfig);
// --creds carries its secrets {alice_pw, bob_secret, carol_secret, seed,
// stranger_seed} (seeds: hex Ed25519; sensor1 owns "seed", the stranger's
// key is unknown to the router). Modes as in auth_autobahn_py.py: authn,
// authn-reject, authz, reload-peer. No mode makes more than three failed
// authentications (the router delays its answers from the fourth per source
// address, route/ratelimit.go). Output: see harness.js.

const H = require('./harness.js');
const autobahn = require('autobahn');
const nacl = require('tweetnacl'); // autobahn's own dependency for cryptosign

const opt = H.args(process.argv.slice(2));
const SER = opt.rawsocket ? 'json' : (opt.serializer || 'json');
const MODE = opt.mode;
const CREDS = JSON.parse(opt.creds || '{}');
const TAG = `ajs_${opt.rawsocket ? 'rs' : 'ws'}_${SER}`;

function serializer() {
  switch (SER) {
    case 'json': return new autobahn.serializer.JSONSerializer();
    case 'msgpack': return new autobahn.serializer.MsgpackSerializer();
    case 'cbor': return new autobahn.serializer.CBORSerializer();
  }
  throw new Error('unknown serializer ' + SER);
}

// join opens a Connection with the given HELLO and resolves, within 10 s,
// with {session, welcome, challenges} after WELCOME or {abort, message,
// challenges} after ABORT. respond(method, extra) answers a CHALLENGE.
function join({ authmethods, authid, authrole, authextra, respond }) {
  const d = H.deferred();
  const challenges = [];
  const o = {
    realm: 'realm1', max_retries: 0, retry_if_unreachable: false, authmethods, authid, authextra,
    onchallenge: (session, method, extra) => {
      challenges.push({ method, extra });
      if (!respond) throw new Error(`unexpected CHALLENGE ${method}`);
      return respond(method, extra);
    },
  };
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
    session.closed = closed.promise;
    session.welcome = details;
    d.resolve({ session, welcome: details, challenges });
  };
  conn.onclose = (reason, details) => {
    if (!opened) {
      if (details && details.reason) d.resolve({ abort: details.reason, message: details.message, challenges });
      else d.reject(new Error(`connection ${reason} before WELCOME or ABORT: ${JSON.stringify(details)}`));
    }
    closed.resolve(Object.assign({ closeReason: reason }, details));
    return true; // never retry
  };
  conn.open();
  // Client quirk (Autobahn|JS 22.11.1, lib/session.js Session.prototype.join
  // and lib/connection.js): HELLO.Details is built from authmethods, authid
  // and authextra only; there is no authrole option, so a client cannot ask
  // for one of its other roles. The harness adds it to the HELLO it sends.
  // Connection.open creates the Session synchronously and joins it when the
  // transport opens, so the hook is in place before HELLO goes out.
  if (authrole !== undefined) {
    const s = conn._session;
    const send = s._send_wamp;
    s._send_wamp = (msg) => {
      if (msg[0] === 1) msg[2].authrole = authrole; // HELLO
      return send(msg);
    };
  }
  return H.withTimeout(d.promise, 10000, `join ${authid || JSON.stringify(authextra)}`);
}

async function joined(hello) {
  const o = await join(hello);
  if (!o.session) throw new Error(`join refused: ABORT ${o.abort} ${o.message}`);
  return o.session;
}

// ---------------------------------------------------------------- answers to CHALLENGE

const ticket = (pw) => () => pw;

// WAMP-CRA with autobahn.auth_cra: salted when the CHALLENGE carries salt,
// iterations and keylen.
const wampcra = (secret) => (method, extra) => {
  const key = extra.salt ? autobahn.auth_cra.derive_key(secret, extra.salt, extra.iterations, extra.keylen) : secret;
  return autobahn.auth_cra.sign(key, extra.challenge);
};

const keyOf = (seedHex) => nacl.sign.keyPair.fromSeed(Buffer.from(seedHex, 'hex'));
const csSign = (pkey) => (method, extra) => autobahn.auth_cryptosign.sign_challenge(pkey, extra);
const pubOf = (pkey) => autobahn.auth_cryptosign.public_key(pkey);

const aliceTicket = (more) => join(Object.assign({ authmethods: ['ticket'], authid: 'alice', respond: ticket(CREDS.alice_pw) }, more));
const aliceCRA = (more) => join(Object.assign({ authmethods: ['wampcra'], authid: 'alice', respond: wampcra(CREDS.alice_pw) }, more));
const bobCRA = (more) => join(Object.assign({ authmethods: ['wampcra'], authid: 'bob', respond: wampcra(CREDS.bob_secret) }, more));
function sensor() {
  const k = keyOf(CREDS.seed);
  return join({ authmethods: ['cryptosign'], authextra: { pubkey: pubOf(k) }, respond: csSign(k) });
}

function welcomeOf(o) {
  if (!o.session) return { abort: o.abort };
  const w = o.welcome;
  return { authid: w.authid, authrole: w.authrole, authmethod: w.authmethod, authprovider: w.authprovider };
}

function abortOf(o) {
  if (o.session) {
    o.session.conn.close();
    return { welcome: welcomeOf(o) };
  }
  return o.abort;
}

async function closeAll(sessions) {
  for (const s of sessions) {
    try { s.conn.close(); } catch (e) { /* already closed */ }
  }
  await H.sleep(100);
}

async function expectError(p, what) {
  const r = await H.settle(p, 5000, what);
  if (r.ok) throw new Error(`${what}: succeeded with ${H.show(r.value)}, want an error`);
  return r.error;
}

const errorOf = (e) => (e && e.error) || H.describe(e);

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
    H.eq('authn.anonymous refused', abortOf(await join({ authmethods: ['anonymous'] })), 'wamp.error.no_matching_auth_method');
  });
  // Three failures.
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
    const alive = keep.filter((o) => o.session).map((o) => o.session.isOpen);
    H.check('authn.joined sessions still attached', alive.length === 6 && alive.every(Boolean), JSON.stringify(alive));
  });
  await closeAll(keep.filter((o) => o.session).map((o) => o.session));
}

async function authnReject() {
  await H.step('authn.unknown authid', async () => {
    // Challenged like a user (a decoy), refused like a wrong secret.
    H.eq('authn.wampcra unknown authid', abortOf(await join({ authmethods: ['wampcra'], authid: 'mallory', respond: wampcra('whatever') })),
      'wamp.error.authentication_failed');
  });
  await H.step('authn.cryptosign unknown key', async () => {
    const k = keyOf(CREDS.stranger_seed);
    H.eq('authn.cryptosign unknown key', abortOf(await join({ authmethods: ['cryptosign'], authextra: { pubkey: pubOf(k) }, respond: csSign(k) })),
      'wamp.error.no_such_principal');
  });
  await H.step('authn.cryptosign wrong signature', async () => {
    const known = keyOf(CREDS.seed);
    const other = keyOf(CREDS.stranger_seed);
    const o = await join({ authmethods: ['cryptosign'], authextra: { pubkey: pubOf(known) }, respond: csSign(other) });
    H.eq('authn.cryptosign wrong signature', abortOf(o), 'wamp.error.authentication_failed');
    H.check('authn.cryptosign wrong signature was challenged', o.challenges.length === 1, JSON.stringify(o.challenges));
  });
}

// ---------------------------------------------------------------- authz

const denied = (name, e) => H.eq(name, errorOf(e), 'wamp.error.not_authorized');
const ack = { acknowledge: true };

async function authz() {
  const A = await joined({ authmethods: ['ticket'], authid: 'alice', respond: ticket(CREDS.alice_pw) });
  const B = await joined({ authmethods: ['wampcra'], authid: 'bob', respond: wampcra(CREDS.bob_secret) });
  const ADM = await joined({ authmethods: ['wampcra'], authid: 'alice', authrole: 'admin', respond: wampcra(CREDS.alice_pw) });
  const so = await sensor();
  if (!so.session) throw new Error('sensor1 could not join: ' + so.abort);
  const S = so.session;
  H.eq('authz.roles', [A, B, ADM, S].map((s) => s.welcome.authrole), ['user', 'user', 'admin', 'device']);

  const whoami = (args, kwargs, details) => new autobahn.Result([details.caller ?? null, details.caller_authid ?? null, details.caller_authrole ?? null]);
  const alive = async (name) => H.eq(name + ' (session still up)', await H.withTimeout(A.call('app.rpc.echo', ['still-up']), 5000, 'echo'), 'still-up');

  await H.step('authz.granted', async () => {
    await B.register('app.rpc.echo', (args) => args[0]);
    H.eq('authz.granted call+register', await H.withTimeout(A.call('app.rpc.echo', ['hi']), 5000, 'echo'), 'hi');
    const got = new H.Inbox();
    await A.subscribe('app.topic', (args) => got.push(args));
    await B.publish('app.topic', ['ev1'], {}, ack);
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
    denied('authz.outside publish (acknowledged)', await expectError(A.publish('other.topic', [1], {}, ack), 'publish other.topic'));
    await alive('authz.outside publish');
    denied('authz.meta api not granted', await expectError(A.call('wamp.session.count'), 'wamp.session.count'));
    await alive('authz.meta api');
  });

  await H.step('authz.outside unacked', async () => {
    // Without acknowledge a denied PUBLISH has no answer: it is dropped (an
    // admin subscriber sees nothing) and the session stays up.
    const got = new H.Inbox();
    await ADM.subscribe('other.unacked', (args) => got.push(args));
    A.publish('other.unacked', ['denied']);
    await ADM.publish('other.unacked', ['marker'], {}, { acknowledge: true, exclude_me: false });
    await got.wait((xs) => xs.some((x) => x[0] === 'marker'), 5000, 'marker event');
    await H.sleep(200);
    H.eq('authz.outside publish (no acknowledge) dropped', got.items, [['marker']]);
    await alive('authz.outside publish (no acknowledge)');
  });

  await H.step('authz.admin', async () => {
    const n = await H.withTimeout(ADM.call('wamp.session.count'), 5000, 'admin wamp.session.count');
    H.check('authz.admin meta api granted', typeof n === 'number' && n >= 4, H.show(n));
    const e = await expectError(ADM.call('other.proc'), 'admin call other.proc');
    H.eq('authz.admin granted but unregistered', errorOf(e), 'wamp.error.no_such_procedure');
  });

  await H.step('authz.deny under prefix', async () => {
    await ADM.register('app.secret.data', () => 'secret');
    await ADM.register('app.secret.status', () => 'status-ok');
    denied('authz.deny under prefix: call', await expectError(A.call('app.secret.data'), 'call app.secret.data'));
    denied('authz.deny under prefix: register', await expectError(A.register('app.secret.mine', () => 1), 'register app.secret.mine'));
    denied('authz.deny under prefix: subscribe', await expectError(A.subscribe('app.secret.t', () => {}), 'subscribe app.secret.t'));
    denied('authz.deny under prefix: publish', await expectError(A.publish('app.secret.t', [1], {}, ack), 'publish app.secret.t'));
    H.eq('authz.exact allow under the deny: call', await H.withTimeout(A.call('app.secret.status'), 5000, 'status'), 'status-ok');
    denied('authz.exact allow under the deny: register still denied', await expectError(A.register('app.secret.status', () => 1), 'register app.secret.status'));
    await alive('authz.deny under prefix');
  });

  await H.step('authz.partial grant', async () => {
    await A.subscribe('app.ro.news', () => {});
    H.report('authz.subscribe-only prefix: subscribe', true);
    denied('authz.subscribe-only prefix: publish', await expectError(A.publish('app.ro.news', [1], {}, ack), 'publish app.ro.news'));
    denied('authz.subscribe-only prefix: call', await expectError(A.call('app.ro.proc'), 'call app.ro.proc'));
  });

  await H.step('authz.disclose caller', async () => {
    await B.register('app.disclosed.whoami', whoami);
    await B.register('app.plain.whoami', whoami);
    const r1 = await H.withTimeout(A.call('app.disclosed.whoami'), 5000, 'disclosed whoami');
    H.eq('authz.disclose caller by role (no disclose_me)', r1.args, [A.id, 'alice', 'user']);
    const r2 = await H.withTimeout(A.call('app.plain.whoami'), 5000, 'plain whoami');
    H.eq('authz.no disclose without the grant', r2.args, [null, null, null]);
  });

  await H.step('authz.device', async () => {
    const got = new H.Inbox();
    await A.subscribe('app.s1.reading', (args, kwargs, d) => got.push([args[0], d.publisher ?? null, d.publisher_authid ?? null, d.publisher_authrole ?? null]));
    await S.publish('app.s1.reading', [21.5], {}, ack);
    const items = await got.wait((xs) => xs.length > 0, 5000, 'reading event');
    H.eq('authz.wildcard grant publish + disclose publisher', items[0], [21.5, S.id, 'sensor1', 'device']);
    denied('authz.device publish outside grant', await expectError(S.publish('app.s1.config', [1], {}, ack), 'publish app.s1.config'));
    denied('authz.device subscribe not granted', await expectError(S.subscribe('app.s1.reading', () => {}), 'device subscribe'));
    await S.publish('app.s1.reading', [22.0], {}, ack);
    await got.wait((xs) => xs.length > 1, 5000, 'second reading');
    H.report('authz.device session still up', true);
  });

  // Two failures: no_such_role with ticket (after the password check) and
  // wampcra (before the challenge). authrole goes through the HELLO hook.
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
  await A.register(`app.keep.${TAG}`, (args) => args[0]);
  await A.register(`app.revoked.${TAG}`, (args) => args[0]);
  H.eq('reload.before: call app.revoked', await H.withTimeout(A.call(`app.revoked.${TAG}`, [1]), 5000, 'revoked before'), 1);
  H.ready();
  await H.step('reload.killed', async () => {
    for (const [name, s] of [['bob (removed)', Bo], ['carol (lost role admin)', C]]) {
      const info = await H.withTimeout(s.closed, 15000, name + ' closed');
      H.eq(`reload.${name} GOODBYE`, [info.closeReason, info.reason], ['closed', 'wamp.close.killed']);
    }
  });
  await H.step('reload.kept', async () => {
    H.check('reload.alice still attached', A.isOpen, '');
    H.eq('reload.alice call after reload', await H.withTimeout(A.call(`app.keep.${TAG}`, ['ok']), 5000, 'keep'), 'ok');
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

// ---------------------------------------------------------------- jwt

// jwt: WAMP-Ticket logins whose ticket is an OAuth2 access token (a JWT),
// one join per case of CREDS.jwt_cases, written by
// cmd/edgewamp/oauth_interop_test.go: {name, ticket, authid, authrole} and
// either want (the WELCOME's authid, authrole, authmethod, authprovider) or
// abort (the ABORT reason).
async function jwt() {
  for (const c of CREDS.jwt_cases) {
    await H.step(`jwt.${c.name}`, async () => {
      const o = await join({ authmethods: ['ticket'], authid: c.authid, authrole: c.authrole, respond: ticket(c.ticket) });
      if (c.abort) {
        H.eq(`jwt.${c.name}`, abortOf(o), c.abort);
        return;
      }
      H.eq(`jwt.${c.name}`, welcomeOf(o), c.want);
      if (o.session) {
        // The session works: a call through the router to itself.
        await o.session.register(`app.echo.${TAG}`, (args) => args[0]);
        H.eq(`jwt.${c.name} call`, await H.withTimeout(o.session.call(`app.echo.${TAG}`, ['hi']), 5000, 'call'), 'hi');
        await closeAll([o.session]);
      }
    });
  }
}

const modes = { authn, 'authn-reject': authnReject, authz, 'reload-peer': reloadPeer, jwt };

(async () => {
  try {
    if (!modes[MODE]) throw new Error('unknown mode ' + MODE);
    await modes[MODE]();
  } catch (e) {
    H.report('fatal', false, H.describe(e));
  }
  H.finish();
})();
