#!/usr/bin/python3
"""Authentication and authorization: Autobahn|Python (Debian python3-autobahn
22.7.1, asyncio, with python3-nacl for cryptosign) against a secured edgewamp
realm.

    /usr/bin/python3 auth_autobahn_py.py --url ws://HOST:PORT/ws|rs://HOST:PORT
        --serializer json|msgpack|cbor --creds JSON --mode MODE

The realm, its users, roles and permissions are written by
cmd/edgewamp/interop_auth_test.go (authConfig); --creds carries the secrets
it used: {"alice_pw", "bob_secret", "carol_secret", "seed", "stranger_seed"}
(the last two are hex Ed25519 seeds: "seed" belongs to user sensor1, the
stranger's key is unknown to the router).

Modes:
  authn         every authmethod succeeds (ticket, wampcra plain and salted,
                cryptosign, authrole selection), anonymous is refused, and
                three wrong secrets are refused
  authn-reject  unknown authid, unknown cryptosign key, wrong signature
  authz         RBAC: grants, denials, a deny under a granted prefix,
                disclose caller/publisher, and no_such_role
  reload-peer   sessions that the test's SIGHUP reload must kill or keep
  deny-bypass   pattern subscriptions/registrations around a denied
                namespace (fails on the current router: see
                TestInteropAuthPatternBypassesDeny)
  jwt           logins whose ticket is an OAuth2 access token
  jwt-live      sessions of access tokens, revoked and expired (jwt_live)

The router counts failed authentications per source address and delays its
answers after the third within a minute (route/ratelimit.go), so no mode
makes more than three failures against its router.

Helpers (report, eq, step, Inbox, the RawSocket quirk fix) come from
autobahn_py.py; stdout lines follow harness.js.
"""

import argparse
import asyncio
import binascii
import json
import sys
import time
import traceback
import urllib.parse
import urllib.request

import autobahn_py as base  # noqa: E402  (sets up txaio/asyncio and the output protocol)

from autobahn.asyncio.rawsocket import WampRawSocketClientFactory  # noqa: E402
from autobahn.asyncio.wamp import ApplicationSession  # noqa: E402
from autobahn.asyncio.websocket import WampWebSocketClientFactory  # noqa: E402
from autobahn.rawsocket.util import parse_url as parse_rs_url  # noqa: E402
from autobahn.wamp import auth, cryptosign  # noqa: E402
from autobahn.wamp.exception import ApplicationError  # noqa: E402
from autobahn.wamp.types import ComponentConfig, RegisterOptions, SubscribeOptions  # noqa: E402
from autobahn.websocket.util import parse_url as parse_ws_url  # noqa: E402

report, eq, check, step, Inbox, show = base.report, base.eq, base.check, base.step, base.Inbox, base.show

OPT = None
CREDS = None
REALM = "realm1"


class Outcome:
    """How a join ended: a joined session (WELCOME) or an ABORT."""

    def __init__(self, session=None, abort=None, challenges=None):
        self.session = session
        self.abort = abort  # CloseDetails of the ABORT
        self.challenges = challenges or []

    def __repr__(self):
        if self.session is not None:
            d = self.session.details
            return "WELCOME(authid=%s authrole=%s authmethod=%s)" % (d.authid, d.authrole, d.authmethod)
        return "ABORT(%s: %s)" % (self.abort.reason, self.abort.message)


async def join(authmethods, authid=None, authrole=None, authextra=None, respond=None, url=None, ser=None):
    """Opens a transport and joins REALM with the given HELLO; respond(challenge)
    answers a CHALLENGE (may return a future). Returns an Outcome within 10 s."""
    url = url or OPT.url
    ser = ser or OPT.serializer
    loop = asyncio.get_running_loop()
    outcome = loop.create_future()
    closed = loop.create_future()  # CloseDetails of the session's end
    challenges = []

    class Session(ApplicationSession):
        def onConnect(self):
            self.join(self.config.realm, authmethods=authmethods, authid=authid, authrole=authrole, authextra=authextra)

        async def onChallenge(self, challenge):
            challenges.append(challenge)
            if respond is None:
                raise Exception("unexpected CHALLENGE %s %s" % (challenge.method, challenge.extra))
            sig = respond(challenge)
            if asyncio.isfuture(sig) or asyncio.iscoroutine(sig):
                sig = await sig
            return sig

        async def onJoin(self, details):
            self.details = details
            self.sid = details.session
            if not outcome.done():
                outcome.set_result(Outcome(session=self, challenges=challenges))

        def onLeave(self, details):
            if not outcome.done():
                outcome.set_result(Outcome(abort=details, challenges=challenges))
            if not closed.done():
                closed.set_result(details)
            super().onLeave(details)

        def onDisconnect(self):
            if not outcome.done():
                outcome.set_exception(AssertionError("transport closed before WELCOME or ABORT"))
            if not closed.done():
                closed.set_result(None)

    Session.closed = closed
    cfg = ComponentConfig(realm=REALM)
    serializer = base.SERIALIZERS[ser]()
    if url.startswith("rs"):
        _, host, port = parse_rs_url(url)
        factory = WampRawSocketClientFactory(lambda: Session(cfg), serializer=serializer)
    else:
        _, host, port, _, _, _ = parse_ws_url(url)
        factory = WampWebSocketClientFactory(lambda: Session(cfg), url=url, serializers=[serializer])
    await asyncio.wait_for(loop.create_connection(factory, host, port), 10)
    return await asyncio.wait_for(outcome, 10)


async def joined(*a, **kw):
    o = await join(*a, **kw)
    if o.session is None:
        raise AssertionError("join refused: %r" % o)
    return o.session


# ---------------------------------------------------------------- answers to CHALLENGE

def ticket(pw):
    return lambda ch: pw


def wampcra(secret):
    """WAMP-CRA as the autobahn docs show it: with salt/iterations/keylen in
    the challenge the shared secret is derive_key(secret, ...)."""
    def respond(ch):
        key = secret
        if "salt" in ch.extra:
            key = auth.derive_key(secret, ch.extra["salt"], ch.extra["iterations"], ch.extra["keylen"])
        return auth.compute_wcs(key, ch.extra["challenge"])
    return respond


def key_of(seed_hex):
    return cryptosign.CryptosignKey.from_bytes(binascii.a2b_hex(seed_hex))


def cs_sign(key):
    return lambda ch: key.sign_challenge(ch)


def alice_ticket(**kw):
    return join(["ticket"], authid="alice", respond=ticket(CREDS["alice_pw"]), **kw)


def alice_cra(**kw):
    return join(["wampcra"], authid="alice", respond=wampcra(CREDS["alice_pw"]), **kw)


def bob_cra(**kw):
    return join(["wampcra"], authid="bob", respond=wampcra(CREDS["bob_secret"]), **kw)


def sensor(**kw):
    k = key_of(CREDS["seed"])
    return join(["cryptosign"], authextra={"pubkey": k.public_key()}, respond=cs_sign(k), **kw)


def welcome_of(o):
    if o.session is None:
        return {"abort": o.abort.reason}
    d = o.session.details
    return {"authid": d.authid, "authrole": d.authrole, "authmethod": d.authmethod, "authprovider": d.authprovider}


def abort_of(o):
    if o.session is not None:
        o.session.leave()
        return {"welcome": welcome_of(o)}
    return o.abort.reason


async def leave_all(outcomes):
    await base.leave_all([o.session if isinstance(o, Outcome) else o for o in outcomes
                          if (o.session if isinstance(o, Outcome) else o) is not None])


# ---------------------------------------------------------------- authn

async def authn():
    keep = []

    async def ticket_ok():
        o = await alice_ticket()
        keep.append(o)
        eq("authn.ticket welcome", welcome_of(o), {"authid": "alice", "authrole": "user", "authmethod": "ticket", "authprovider": "static"})
        eq("authn.ticket challenge", [[c.method, c.extra] for c in o.challenges], [["ticket", {}]])
    await step("authn.ticket", ticket_ok)

    async def ticket_role():
        o = await join(["ticket"], authid="alice", authrole="admin", respond=ticket(CREDS["alice_pw"]))
        keep.append(o)
        eq("authn.ticket authrole admin", welcome_of(o), {"authid": "alice", "authrole": "admin", "authmethod": "ticket", "authprovider": "static"})
    await step("authn.ticket authrole", ticket_role)

    async def cra_plain():
        o = await bob_cra()
        keep.append(o)
        eq("authn.wampcra plain welcome", welcome_of(o), {"authid": "bob", "authrole": "user", "authmethod": "wampcra", "authprovider": "static"})
        ex = o.challenges[0].extra if o.challenges else {}
        check("authn.wampcra plain challenge unsalted", "challenge" in ex and "salt" not in ex, show(ex))
        c = json.loads(ex.get("challenge", "{}"))
        # authrole is the role HELLO asked for ("" here), not bob's: a
        # user's own role told it apart from an unknown authid.
        eq("authn.wampcra challenge content", [c.get("authid"), c.get("authrole"), c.get("authmethod")], ["bob", "", "wampcra"])
    await step("authn.wampcra plain", cra_plain)

    async def cra_salted():
        o = await alice_cra()
        keep.append(o)
        eq("authn.wampcra salted welcome", welcome_of(o), {"authid": "alice", "authrole": "user", "authmethod": "wampcra", "authprovider": "static"})
        ex = o.challenges[0].extra if o.challenges else {}
        eq("authn.wampcra salted challenge parameters", [ex.get("iterations"), ex.get("keylen"), isinstance(ex.get("salt"), str)], [1000, 32, True])
    await step("authn.wampcra salted", cra_salted)

    async def cs_ok():
        o = await sensor()
        keep.append(o)
        eq("authn.cryptosign welcome", welcome_of(o), {"authid": "sensor1", "authrole": "device", "authmethod": "cryptosign", "authprovider": "static"})
        ex = o.challenges[0].extra if o.challenges else {}
        check("authn.cryptosign challenge is 32 hex bytes", isinstance(ex.get("challenge"), str) and len(ex["challenge"]) == 64, show(ex))
    await step("authn.cryptosign", cs_ok)

    async def method_order():
        # The router skips methods the realm does not offer (anonymous here)
        # and takes the next one in the client's order.
        o = await join(["anonymous", "ticket"], authid="alice", respond=ticket(CREDS["alice_pw"]))
        keep.append(o)
        eq("authn.authmethods order [anonymous, ticket]", welcome_of(o).get("authmethod"), "ticket")
    await step("authn.authmethods order", method_order)

    async def anonymous():
        eq("authn.anonymous refused", abort_of(await join(["anonymous"])), "wamp.error.no_matching_auth_method")
    await step("authn.anonymous", anonymous)

    # Three failures (the router's limiter delays from the fourth on).
    async def wrong_ticket():
        eq("authn.ticket wrong password", abort_of(await join(["ticket"], authid="alice", respond=ticket("not-" + CREDS["alice_pw"]))),
           "wamp.error.authentication_failed")
    await step("authn.ticket wrong", wrong_ticket)

    async def wrong_plain():
        eq("authn.wampcra plain wrong secret", abort_of(await join(["wampcra"], authid="bob", respond=wampcra("not-" + CREDS["bob_secret"]))),
           "wamp.error.authentication_failed")
    await step("authn.wampcra plain wrong", wrong_plain)

    async def wrong_salted():
        eq("authn.wampcra salted wrong password", abort_of(await join(["wampcra"], authid="alice", respond=wampcra("not-" + CREDS["alice_pw"]))),
           "wamp.error.authentication_failed")
    await step("authn.wampcra salted wrong", wrong_salted)

    async def still_up():
        # The sessions that joined are unaffected by the failures.
        alive = [o.session.is_attached() for o in keep if o.session is not None]
        check("authn.joined sessions still attached", len(alive) == 6 and all(alive), show(alive))
    await step("authn.still attached", still_up)
    await leave_all(keep)


async def authn_reject():
    async def unknown_authid():
        eq("authn.wampcra unknown authid", abort_of(await join(["wampcra"], authid="mallory", respond=wampcra("whatever"))),
           "wamp.error.authentication_failed")
    await step("authn.unknown authid", unknown_authid)

    async def unknown_key():
        k = key_of(CREDS["stranger_seed"])
        eq("authn.cryptosign unknown key", abort_of(await join(["cryptosign"], authextra={"pubkey": k.public_key()}, respond=cs_sign(k))),
           "wamp.error.no_such_principal")
    await step("authn.cryptosign unknown key", unknown_key)

    async def wrong_sig():
        # Announce sensor1's public key, sign with another key.
        known, other = key_of(CREDS["seed"]), key_of(CREDS["stranger_seed"])
        o = await join(["cryptosign"], authextra={"pubkey": known.public_key()}, respond=cs_sign(other))
        eq("authn.cryptosign wrong signature", abort_of(o), "wamp.error.authentication_failed")
        check("authn.cryptosign wrong signature was challenged", len(o.challenges) == 1, show([c.method for c in o.challenges]))
    await step("authn.cryptosign wrong signature", wrong_sig)


# ---------------------------------------------------------------- authz

def denied(name, e):
    return eq(name, e.error, "wamp.error.not_authorized")


async def expect_error(aw, what):
    return await base.expect_error(aw, 5, what)


async def authz():
    A = await joined(["ticket"], authid="alice", respond=ticket(CREDS["alice_pw"]))         # role user
    B = await joined(["wampcra"], authid="bob", respond=wampcra(CREDS["bob_secret"]))       # role user
    ADM = await joined(["wampcra"], authid="alice", authrole="admin", respond=wampcra(CREDS["alice_pw"]))
    S = (await sensor()).session                                                            # role device
    if S is None:
        raise AssertionError("sensor1 could not join")
    eq("authz.roles", [A.details.authrole, B.details.authrole, ADM.details.authrole, S.details.authrole], ["user", "user", "admin", "device"])

    def whoami(details=None):
        return [details.caller, details.caller_authid, details.caller_authrole]

    async def alive(name):
        eq(name + " (session still up)", await asyncio.wait_for(A.call("app.rpc.echo", "still-up"), 5), "still-up")

    async def granted():
        await B.register(lambda *a: a[0] if len(a) == 1 else list(a), "app.rpc.echo")
        eq("authz.granted call+register", await asyncio.wait_for(A.call("app.rpc.echo", "hi"), 5), "hi")
        got = Inbox()
        await A.subscribe(lambda *a: got.push(list(a)), "app.topic")
        await B.publish("app.topic", "ev1", options=base.pub())
        items = await got.wait(lambda xs: len(xs) > 0, 5, "event on app.topic")
        eq("authz.granted publish+subscribe", items[0], ["ev1"])
    await step("authz.granted", granted)

    async def force_reregister():
        # Crossbar.io's force_reregister: a second session of bob (same
        # authid and authrole) takes bob's procedure over, the old callee
        # told with UNREGISTERED (Autobahn|Python announces
        # registration_revocation) and its session kept; alice (another
        # authid) cannot. The router ignored the option:
        # procedure_already_exists.
        B2 = await joined(["wampcra"], authid="bob", respond=wampcra(CREDS["bob_secret"]))
        await B.register(lambda: "old", "app.rpc.force")
        await B2.register(lambda: "new", "app.rpc.force", options=RegisterOptions(force_reregister=True))
        eq("authz.force_reregister same authid takes over", await asyncio.wait_for(A.call("app.rpc.force"), 5), "new")
        eq("authz.force_reregister old session kept", await asyncio.wait_for(B.call("app.rpc.echo", "b-up"), 5), "b-up")
        e = await expect_error(A.register(lambda: "alice", "app.rpc.force", options=RegisterOptions(force_reregister=True)), "force_reregister by another authid")
        eq("authz.force_reregister other authid refused", e.error, "wamp.error.procedure_already_exists")
        eq("authz.force_reregister still the new callee", await asyncio.wait_for(A.call("app.rpc.force"), 5), "new")
        await B2.leave()
    await step("authz.force_reregister", force_reregister)

    async def outside():
        denied("authz.outside call", await expect_error(A.call("other.proc"), "call other.proc"))
        await alive("authz.outside call")
        denied("authz.outside register", await expect_error(A.register(lambda: 1, "other.proc"), "register other.proc"))
        await alive("authz.outside register")
        denied("authz.outside subscribe", await expect_error(A.subscribe(lambda *a: None, "other.topic"), "subscribe other.topic"))
        await alive("authz.outside subscribe")
        denied("authz.outside publish (acknowledged)", await expect_error(A.publish("other.topic", 1, options=base.pub()), "publish other.topic"))
        await alive("authz.outside publish")
        denied("authz.meta api not granted", await expect_error(A.call("wamp.session.count"), "wamp.session.count"))
        await alive("authz.meta api")
    await step("authz.outside", outside)

    async def outside_unacked():
        # Without acknowledge a denied PUBLISH has no answer: it is dropped
        # (an admin subscriber sees nothing) and the session stays up.
        got = Inbox()
        await ADM.subscribe(lambda *a: got.push(list(a)), "other.unacked")
        A.publish("other.unacked", "denied")
        await ADM.publish("other.unacked", "marker", options=base.pub(exclude_me=False))
        await got.wait(lambda xs: ["marker"] in xs, 5, "marker event")
        await asyncio.sleep(0.2)
        eq("authz.outside publish (no acknowledge) dropped", got.items, [["marker"]])
        await alive("authz.outside publish (no acknowledge)")
    await step("authz.outside unacked", outside_unacked)

    async def admin():
        n = await asyncio.wait_for(ADM.call("wamp.session.count"), 5)
        check("authz.admin meta api granted", isinstance(n, int) and n >= 4, show(n))
        e = await expect_error(ADM.call("other.proc"), "admin call other.proc")
        eq("authz.admin granted but unregistered", e.error, "wamp.error.no_such_procedure")
    await step("authz.admin", admin)

    async def deny_under_prefix():
        await ADM.register(lambda: "secret", "app.secret.data")
        await ADM.register(lambda: "status-ok", "app.secret.status")
        denied("authz.deny under prefix: call", await expect_error(A.call("app.secret.data"), "call app.secret.data"))
        denied("authz.deny under prefix: register", await expect_error(A.register(lambda: 1, "app.secret.mine"), "register app.secret.mine"))
        denied("authz.deny under prefix: subscribe", await expect_error(A.subscribe(lambda *a: None, "app.secret.t"), "subscribe app.secret.t"))
        denied("authz.deny under prefix: publish", await expect_error(A.publish("app.secret.t", 1, options=base.pub()), "publish app.secret.t"))
        eq("authz.exact allow under the deny: call", await asyncio.wait_for(A.call("app.secret.status"), 5), "status-ok")
        denied("authz.exact allow under the deny: register still denied",
               await expect_error(A.register(lambda: 1, "app.secret.status"), "register app.secret.status"))
        await alive("authz.deny under prefix")
    await step("authz.deny under prefix", deny_under_prefix)

    async def partial():
        await A.subscribe(lambda *a: None, "app.ro.news")
        report("authz.subscribe-only prefix: subscribe", True)
        denied("authz.subscribe-only prefix: publish", await expect_error(A.publish("app.ro.news", 1, options=base.pub()), "publish app.ro.news"))
        denied("authz.subscribe-only prefix: call", await expect_error(A.call("app.ro.proc"), "call app.ro.proc"))
    await step("authz.partial grant", partial)

    async def disclose_caller():
        await B.register(whoami, "app.disclosed.whoami", options=RegisterOptions(details_arg="details"))
        await B.register(whoami, "app.plain.whoami", options=RegisterOptions(details_arg="details"))
        eq("authz.disclose caller by role (no disclose_me)", await asyncio.wait_for(A.call("app.disclosed.whoami"), 5), [A.sid, "alice", "user"])
        eq("authz.no disclose without the grant", await asyncio.wait_for(A.call("app.plain.whoami"), 5), [None, None, None])
    await step("authz.disclose caller", disclose_caller)

    async def device():
        got = Inbox()
        await A.subscribe(lambda v, details=None: got.push([v, details.publisher, details.publisher_authid, details.publisher_authrole]),
                          "app.s1.reading", options=SubscribeOptions(details_arg="details"))
        await S.publish("app.s1.reading", 21.5, options=base.pub())
        items = await got.wait(lambda xs: len(xs) > 0, 5, "reading event")
        eq("authz.wildcard grant publish + disclose publisher", items[0], [21.5, S.sid, "sensor1", "device"])
        denied("authz.device publish outside grant", await expect_error(S.publish("app.s1.config", 1, options=base.pub()), "publish app.s1.config"))
        denied("authz.device subscribe not granted", await expect_error(S.subscribe(lambda *a: None, "app.s1.reading"), "device subscribe"))
        await S.publish("app.s1.reading", 22.0, options=base.pub())
        await got.wait(lambda xs: len(xs) > 1, 5, "second reading")
        report("authz.device session still up", True)
    await step("authz.device", device)

    # Two failures: no_such_role with ticket (checked after the password) and
    # with wampcra (checked before the challenge).
    async def no_such_role():
        eq("authz.no_such_role ticket", abort_of(await join(["ticket"], authid="alice", authrole="device", respond=ticket(CREDS["alice_pw"]))),
           "wamp.error.no_such_role")
        eq("authz.no_such_role wampcra", abort_of(await join(["wampcra"], authid="bob", authrole="admin", respond=wampcra(CREDS["bob_secret"]))),
           "wamp.error.no_such_role")
    await step("authz.no_such_role", no_such_role)

    await base.leave_all([A, B, ADM, S])


# ---------------------------------------------------------------- reload

async def reload_peer():
    """Joined as alice (kept), bob (removed from the config) and carol (as
    admin, a role the new config takes away); the test then rewrites the
    config and sends SIGHUP."""
    tag = "py_%s_%s" % (OPT.url[:2], OPT.serializer)
    A = await joined(["ticket"], authid="alice", respond=ticket(CREDS["alice_pw"]))
    Bo = await joined(["wampcra"], authid="bob", respond=wampcra(CREDS["bob_secret"]))
    C = await joined(["wampcra"], authid="carol", authrole="admin", respond=wampcra(CREDS["carol_secret"]))
    await A.register(lambda v: v, "app.keep.%s" % tag)
    await A.register(lambda v: v, "app.revoked.%s" % tag)
    eq("reload.before: call app.revoked", await asyncio.wait_for(A.call("app.revoked.%s" % tag, 1), 5), 1)
    base.out({"ready": True})

    async def killed():
        for name, s in (("bob (removed)", Bo), ("carol (lost role admin)", C)):
            d = await asyncio.wait_for(s.closed, 15)
            eq("reload.%s GOODBYE" % name, d.reason if d else None, "wamp.close.killed")
    await step("reload.killed", killed)

    async def kept():
        check("reload.alice still attached", A.is_attached(), "")
        eq("reload.alice call after reload", await asyncio.wait_for(A.call("app.keep.%s" % tag, "ok"), 5), "ok")
        e = await base.expect_error(A.call("app.revoked.%s" % tag, 1), 5, "call app.revoked after reload")
        eq("reload.new grants apply to a kept session", e.error, "wamp.error.not_authorized")
    await step("reload.kept", kept)

    async def rejoin():
        eq("reload.removed user cannot join", abort_of(await bob_cra()), "wamp.error.authentication_failed")
        C2 = await joined(["wampcra"], authid="carol", respond=wampcra(CREDS["carol_secret"]))
        eq("reload.carol joins with her remaining role", C2.details.authrole, "user")
        await base.leave_all([C2])
    await step("reload.rejoin", rejoin)
    await base.leave_all([A])


# ---------------------------------------------------------------- deny bypass (router bug)

async def deny_bypass():
    """Role user is granted everything under app. but nothing under
    app.secret. (allow: []). A pattern subscription or registration whose
    pattern string lies outside app.secret. but which matches URIs inside it
    must not let alice receive those events or serve those calls: the router
    should refuse the SUBSCRIBE/REGISTER or not deliver them to her."""
    A = await joined(["ticket"], authid="alice", respond=ticket(CREDS["alice_pw"]))
    ADM = await joined(["wampcra"], authid="alice", authrole="admin", respond=wampcra(CREDS["alice_pw"]))

    async def exact_denied():
        e = await expect_error(A.subscribe(lambda *a: None, "app.secret.t"), "subscribe app.secret.t")
        denied("deny.exact subscription to the denied topic", e)
    await step("deny.exact", exact_denied)

    async def pattern_subscriptions():
        got = []
        outcome = {}
        for uri, match in (("app.", "prefix"), ("app.secret", "prefix"), ("app..t", "wildcard")):
            try:
                await A.subscribe(lambda v, details=None, _k="%s %s" % (match, uri): got.append([_k, details.topic, v]),
                                  uri, options=SubscribeOptions(match=match, details_arg="details"))
                outcome["%s %s" % (match, uri)] = "SUBSCRIBED"
            except ApplicationError as e:
                outcome["%s %s" % (match, uri)] = e.error
        await ADM.publish("app.secret.t", "classified", options=base.pub())
        await asyncio.sleep(0.5)  # events are delivered long before this
        leaked = [g for g in got if g[1] == "app.secret.t"]
        check("deny.pattern subscriptions receive no event on a denied topic", not leaked,
              "SUBSCRIBE outcomes %s; events on app.secret.t delivered to alice: %s" % (show(outcome), show(leaked)))
    await step("deny.pattern subscriptions", pattern_subscriptions)

    async def pattern_registration():
        served = []

        def handler(*a, details=None):
            served.append([details.procedure, list(a)])
            return "served by alice"
        try:
            await A.register(handler, "app.secret", options=RegisterOptions(match="prefix", details_arg="details"))
            outcome = "REGISTERED"
        except ApplicationError as e:
            outcome = e.error
        try:
            r = await asyncio.wait_for(ADM.call("app.secret.payroll", "salaries"), 5)
        except ApplicationError as e:
            r = e.error
        check("deny.pattern registration serves no call on a denied procedure", not served,
              "REGISTER prefix app.secret: %s; admin's CALL app.secret.payroll -> %s; invocations at alice: %s" % (outcome, show(r), show(served)))
    await step("deny.pattern registration", pattern_registration)
    await base.leave_all([A, ADM])


# ---------------------------------------------------------------- jwt

async def jwt():
    """WAMP-Ticket logins whose ticket is an OAuth2 access token (a JWT), one
    join per case of CREDS["jwt_cases"], written by
    cmd/edgewamp/oauth_interop_test.go: {name, ticket, authid, authrole} and
    either want (the WELCOME's authid, authrole, authmethod, authprovider) or
    abort (the ABORT reason)."""
    tag = "apy_%s_%s" % (OPT.url.split(":")[0], OPT.serializer)
    for c in CREDS["jwt_cases"]:
        async def one(c=c):
            o = await join(["ticket"], authid=c.get("authid"), authrole=c.get("authrole"), respond=ticket(c["ticket"]))
            if c.get("abort"):
                eq("jwt.%s" % c["name"], abort_of(o), c["abort"])
                return
            eq("jwt.%s" % c["name"], welcome_of(o), c["want"])
            if o.session is not None:
                # The session works: a call through the router to itself.
                await o.session.register(lambda x: x, "app.echo." + tag)
                eq("jwt.%s call" % c["name"], await asyncio.wait_for(o.session.call("app.echo." + tag, "hi"), 5), "hi")
                await leave_all([o])
        await step("jwt.%s" % c["name"], one)


# ---------------------------------------------------------------- jwt-live

def revoke_http(token, hint):
    """RFC 7009 revocation at the router's own endpoint (on its gateway), as
    the public client that holds the token."""
    body = urllib.parse.urlencode({"token": token, "token_type_hint": hint, "client_id": CREDS["client_id"]}).encode()
    req = urllib.request.Request(CREDS["gateway"] + "/oauth/revoke", data=body,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


async def jwt_live():
    """Sessions that logged in with access tokens from the device flow, and
    what revocation and expiry do to them (CREDS, written by
    cmd/edgewamp/oauth_e2e_test.go: t1, and t2/r2 from refreshing t1's
    login, t2_exp; gateway, client_id):
      - t1 and t2 log in (WELCOME alice, provider jwt) and can call;
      - t1 revoked at /oauth/revoke: its session gets GOODBYE
        wamp.close.killed at once, t2's stays; t1 is refused from then on;
      - t2 expires: its session stays up and works (a token opens a
        session, it does not lease it); a new login with it is refused;
      - t2's refresh token revoked (the whole login): t2's session ends."""
    loop = asyncio.get_running_loop()
    tag = "live_%s_%s" % (OPT.url[:2], OPT.serializer)
    S1 = await joined(["ticket"], respond=ticket(CREDS["t1"]))
    S2 = await joined(["ticket"], respond=ticket(CREDS["t2"]))
    eq("live.t1 WELCOME", welcome_of(Outcome(session=S1)), {"authid": "alice", "authrole": "user", "authmethod": "ticket", "authprovider": "jwt"})
    eq("live.t2 WELCOME", welcome_of(Outcome(session=S2)), {"authid": "alice", "authrole": "user", "authmethod": "ticket", "authprovider": "jwt"})
    await S1.register(lambda x: x, "app.echo1." + tag)
    eq("live.t2 calls t1's session", await asyncio.wait_for(S2.call("app.echo1." + tag, "hi"), 5), "hi")
    base.out({"ready": True})

    async def revoke_t1():
        eq("live.revoke t1 (HTTP status)", await loop.run_in_executor(None, revoke_http, CREDS["t1"], "access_token"), 200)
        d = await asyncio.wait_for(type(S1).closed, 10)
        eq("live.t1's session ended by the revocation", d.reason if d else None, "wamp.close.killed")
        check("live.GOODBYE says why", d is not None and "revoked" in (d.message or ""), d.message if d else "no details")
        check("live.t2's session (another token of the login) stays", S2.is_attached(), "")
        await S2.register(lambda x: x, "app.echo2." + tag)
        eq("live.t2 still calls", await asyncio.wait_for(S2.call("app.echo2." + tag, "x"), 5), "x")
        o = await join(["ticket"], respond=ticket(CREDS["t1"]))
        eq("live.t1 refused after revocation", abort_of(o), "wamp.error.authentication_denied")
        check("live.t1 refusal says revoked", o.abort is not None and "revoked" in (o.abort.message or ""), repr(o))
    await step("live.revoke access token", revoke_t1)

    async def expire_t2():
        await asyncio.sleep(max(0.0, CREDS["t2_exp"] - time.time() + 1.5))
        check("live.t2's session outlives its token", S2.is_attached(), "")
        eq("live.t2's session still calls after expiry", await asyncio.wait_for(S2.call("app.echo2." + tag, "y"), 5), "y")
        o = await join(["ticket"], respond=ticket(CREDS["t2"]))
        eq("live.t2 refused once expired", abort_of(o), "wamp.error.authentication_denied")
        check("live.t2 refusal says expired", o.abort is not None and "expired" in (o.abort.message or ""), repr(o))
    await step("live.expiry", expire_t2)

    async def revoke_login():
        eq("live.revoke t2's refresh token (HTTP status)", await loop.run_in_executor(None, revoke_http, CREDS["r2"], "refresh_token"), 200)
        d = await asyncio.wait_for(type(S2).closed, 10)
        eq("live.t2's session ended with its login", d.reason if d else None, "wamp.close.killed")
    await step("live.revoke login", revoke_login)


MODES = {"authn": authn, "authn-reject": authn_reject, "authz": authz, "reload-peer": reload_peer, "deny-bypass": deny_bypass, "jwt": jwt,
         "jwt-live": jwt_live}


def main():
    global OPT, CREDS
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--serializer", default="json", choices=sorted(base.SERIALIZERS))
    p.add_argument("--mode", required=True, choices=sorted(MODES))
    p.add_argument("--creds", required=True)
    OPT = p.parse_args()
    CREDS = json.loads(OPT.creds)
    base.OPT = OPT

    async def run():
        try:
            if not cryptosign.HAS_CRYPTOSIGN:
                raise RuntimeError("autobahn.wamp.cryptosign needs PyNaCl (Debian python3-nacl)")
            await MODES[OPT.mode]()
        except BaseException as e:  # noqa: B902
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            report("fatal", False, base.describe(e) + " | " + traceback.format_exc().replace("\n", " | ")[-600:])

    asyncio.run(run())
    base.out({"done": True, "passed": base.PASSED, "failed": base.FAILED})
    sys.exit(0 if base.FAILED == 0 and base.PASSED > 0 else 1)


if __name__ == "__main__":
    main()
