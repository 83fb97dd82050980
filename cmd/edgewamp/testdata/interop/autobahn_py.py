#!/usr/bin/python3
"""Autobahn|Python (Debian python3-autobahn 22.7.1, asyncio) against edgewamp.

    /usr/bin/python3 autobahn_py.py --url ws://HOST:PORT/ws|rs://HOST:PORT
                                    --serializer json|msgpack|cbor [--mode M]
                                    (wss:// and rss:// with --cafile CA.pem: TLS)

Modes: suite (default; the whole single-client scenario), x-binary-peer,
x-mixed-callee, x-rpc-callee, x-shared-peer (roles in the cross-client
scenarios driven by interop_test.go), x-mesh-features (sessions on two
nodes of a mesh, --url and --url2; driven by mesh_interop_test.go). Every stdout line is one JSON object,
as for the Node scripts (see harness.js): {"check","ok","detail"},
{"ready": true}, and finally {"done": true, "passed": N, "failed": M}.
"""

import argparse
import asyncio
import json
import ssl
import sys
import time
import traceback

import txaio

txaio.use_asyncio()

from autobahn.asyncio.rawsocket import WampRawSocketClientFactory, WampRawSocketClientProtocol  # noqa: E402
from autobahn.asyncio.wamp import ApplicationSession  # noqa: E402
from autobahn.asyncio.websocket import WampWebSocketClientFactory  # noqa: E402
from autobahn.wamp import message  # noqa: E402
from autobahn.wamp.exception import ApplicationError  # noqa: E402
from autobahn.exception import PayloadExceededError  # noqa: E402
from autobahn.wamp.serializer import CBORSerializer, JsonSerializer, MsgPackSerializer  # noqa: E402
from autobahn.wamp.types import (  # noqa: E402
    CallOptions, CallResult, ComponentConfig, PublishOptions, RegisterOptions, SubscribeOptions)
from autobahn.websocket.util import parse_url as parse_ws_url  # noqa: E402
from autobahn.rawsocket.util import parse_url as parse_rs_url  # noqa: E402

# Client quirk (python3-autobahn 22.7.1, asyncio): ApplicationSession reads
# self._transport.transport_details when WELCOME arrives
# (autobahn/wamp/protocol.py, building SessionDetails), but the asyncio
# RawSocket protocol only sets the private _transport_details
# (autobahn/asyncio/rawsocket.py, PrefixProtocol.connection_made) and, unlike
# the WebSocket protocol and the Twisted RawSocket protocol, has no
# transport_details property. The AttributeError in onWelcome makes every
# RawSocket session drop its own transport right after joining. Give the class
# the missing read-only property.
if not hasattr(WampRawSocketClientProtocol, "transport_details"):
    WampRawSocketClientProtocol.transport_details = property(lambda self: self._transport_details)

OUT = sys.stdout
sys.stdout = sys.stderr  # anything else the client prints goes to stderr

PASSED = 0
FAILED = 0


def out(obj):
    OUT.write(json.dumps(obj) + "\n")
    OUT.flush()


def report(name, ok, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
    else:
        FAILED += 1
    out({"check": name, "ok": bool(ok), "detail": str(detail)})
    return bool(ok)


def canon(v):
    """A comparable JSON form of a decoded value; bytes become {"$bytes": hex}."""
    if isinstance(v, (bytes, bytearray)):
        return {"$bytes": bytes(v).hex()}
    if isinstance(v, (list, tuple)):
        return [canon(x) for x in v]
    if isinstance(v, dict):
        return {str(k): canon(x) for k, x in v.items()}
    return v


def show(v):
    return json.dumps(canon(v), sort_keys=True, ensure_ascii=False)


def eq(name, got, want):
    g, w = show(got), show(want)
    return report(name, g == w, g[:200] if g == w else "got %s want %s" % (g, w))


def check(name, cond, detail=""):
    return report(name, cond, detail)


def describe(e):
    if isinstance(e, ApplicationError):
        return "%s args=%s kwargs=%s" % (e.error, show(list(e.args)), show(e.kwargs))
    return "".join(traceback.format_exception_only(type(e), e)).strip()


async def step(name, coro_fn):
    try:
        await coro_fn()
    except BaseException as e:  # noqa: B902 - a step's failure must not end the run
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        report(name, False, "exception: " + describe(e))


async def expect_error(aw, timeout, what):
    try:
        r = await asyncio.wait_for(aw, timeout)
    except ApplicationError as e:
        return e
    raise AssertionError("%s: succeeded with %s, want an error" % (what, show(r)))


class Inbox:
    """Collects events or invocations; wait() blocks until pred(items)."""

    def __init__(self):
        self.items = []
        self.cond = asyncio.Condition()

    def push(self, x):
        self.items.append(x)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self):
        async with self.cond:
            self.cond.notify_all()

    async def wait(self, pred, timeout, what):
        async def w():
            async with self.cond:
                await self.cond.wait_for(lambda: pred(self.items))
            return self.items
        try:
            return await asyncio.wait_for(w(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError("timeout after %.1f s: %s (have %s)" % (timeout, what, show(self.items)[:300]))


BYTES = bytes(range(256))
MIXED_ARGS = [1, -2, 3.5, "two", "ü€𝄞", True, False, None, [1, [2, 3]], {"k": "v", "n": {"m": 1}},
              9007199254740991, -9007199254740991]
MIXED_KWARGS = {"x": 1, "s": "straße", "list": [True, None], "nested": {"deep": [1.25, "x"]}}

SERIALIZERS = {"json": JsonSerializer, "msgpack": MsgPackSerializer, "cbor": CBORSerializer}

OPT = None


async def connect(authid, url=None, ser=None):
    """Opens a transport, joins realm1 anonymously as authid, returns the session."""
    url = url or OPT.url
    ser = ser or OPT.serializer
    loop = asyncio.get_running_loop()
    joined = loop.create_future()
    closed = loop.create_future()  # resolves with the CloseDetails of onLeave

    class Session(ApplicationSession):
        def onConnect(self):
            self.join(self.config.realm, authmethods=["anonymous"], authid=authid)

        async def onJoin(self, details):
            self.details = details
            self.sid = details.session
            if not joined.done():
                joined.set_result(self)

        def onLeave(self, details):
            if not joined.done():
                joined.set_exception(AssertionError("left before joining: %s" % details))
            if not closed.done():
                closed.set_result(details)
            super().onLeave(details)

    Session.closed = closed

    cfg = ComponentConfig(realm="realm1")
    # --batched: the WebSocket subprotocol wamp.2.<ser>.batched (WAMP message
    # batching), which Autobahn|Python offers first by default.
    serializer = SERIALIZERS[ser](batched=True) if getattr(OPT, "batched", False) and not url.startswith("rs") else SERIALIZERS[ser]()
    if url.startswith("rs"):
        secure, host, port = parse_rs_url(url)
        factory = WampRawSocketClientFactory(lambda: Session(cfg), serializer=serializer)
    else:
        secure, host, port, _, _, _ = parse_ws_url(url)
        factory = WampWebSocketClientFactory(lambda: Session(cfg), url=url, serializers=[serializer])
    # wss:// and rss:// (TLS), trusting --cafile: asyncio's own TLS.
    tls = ssl.create_default_context(cafile=getattr(OPT, "cafile", None) or None) if secure else None
    await loop.create_connection(factory, host, port, ssl=tls)
    return await asyncio.wait_for(joined, 10)


def result_of(r):
    """(args, kwargs) of a call result: a CallResult or a single value."""
    if isinstance(r, CallResult):
        return list(r.results), dict(r.kwresults)
    return [r], {}


def pub(**kw):
    return PublishOptions(acknowledge=True, **kw)


async def announce(s, name):
    """The router names anonymous sessions itself, so a peer that others must
    recognize announces the authid it got under its role name: a retained
    event on x.who.<name> (see whoAre in autobahn_js.js)."""
    await s.publish("x.who." + name.replace("-", "_"), s.details.authid, options=pub(retain=True))


async def stop_signal(s):
    fut = asyncio.get_running_loop().create_future()

    def on_stop(*a, **k):
        if not fut.done():
            fut.set_result(True)
    await s.subscribe(on_stop, "interop.stop")
    return fut


async def leave_all(sessions):
    for s in sessions:
        try:
            if s.is_attached():
                s.leave()
        except Exception:
            pass
    await asyncio.sleep(0.1)


def slow_handler(record, seconds=3.0):
    """A procedure that answers after `seconds` unless interrupted.

    Client quirk (python3-autobahn 22.7.1 with txaio 22 on Python >= 3.8): on
    INTERRUPT autobahn cancels the handler's task, but txaio's add_callbacks
    (txaio/aio.py) catches only Exception, and asyncio.CancelledError is a
    BaseException since Python 3.8, so the errback that would send ERROR for
    the INVOCATION never runs ("Exception in callback ... CancelledError" on
    stderr) and the callee never answers. In mode "kill" the Dealer waits for
    that answer (WAMP spec, Call Canceling), so the caller would hang. The
    handler turns the cancellation into ApplicationError wamp.error.canceled,
    which autobahn does send.
    """
    async def slow(tag, *rest):
        try:
            await asyncio.sleep(seconds)
            return "slow-finished"
        except asyncio.CancelledError:
            record.append(tag)
            raise ApplicationError("wamp.error.canceled", "interrupted: " + str(tag))
    return slow


def pending_call_request(session, fut):
    for req, c in list(session._call_reqs.items()):
        if c.on_reply is fut:
            return req
    raise AssertionError("call request not pending")


# ---------------------------------------------------------------- suite

async def suite():
    M = await connect("meta-observer")
    joins, leaves = Inbox(), Inbox()
    await M.subscribe(lambda d: joins.push(d), "wamp.session.on_join")
    await M.subscribe(lambda *a: leaves.push(list(a)), "wamp.session.on_leave")

    A = await connect("alice")
    B = await connect("bob")
    C = await connect("carol")
    sessions = [M, A, B, C]

    async def welcome():
        # Anonymous sessions get the authid the router assigns, not the one
        # HELLO asks for (alice, bob, carol): one each.
        ids = [A.details.authid, B.details.authid, C.details.authid]
        check("session.welcome authid router-assigned",
              all(isinstance(x, str) and x and x not in ("alice", "bob", "carol") for x in ids) and len(set(ids)) == 3, show(ids))
        eq("session.welcome authrole", A.details.authrole, "anonymous")
    await step("session.welcome", welcome)

    async def on_join():
        want = {A.sid: A.details.authid, B.sid: B.details.authid, C.sid: C.details.authid}
        items = await joins.wait(lambda xs: all(any(x.get("session") == i for x in xs) for i in want), 5, "on_join x3")
        got = {x["session"]: x.get("authid") for x in items if x.get("session") in want}
        eq("meta.on_join", {str(k): v for k, v in got.items()}, {str(k): v for k, v in want.items()})
    await step("meta.on_join", on_join)

    # ------------------------------------------------------------ RPC
    interrupted = []

    def echo(*args, **kwargs):
        return CallResult(*args, **kwargs)

    def fail(*args, **kwargs):
        raise ApplicationError("app.error.custom", "bad", 42, why="because")

    async def progress(*args, details=None, **kwargs):
        if details.progress is None:
            return "caller did not ask for progress"
        for i in (1, 2, 3):
            details.progress(i, step=i)
            await asyncio.sleep(0.01)
        return CallResult("done", count=3)

    def whoami(details=None):
        return CallResult(details.caller, details.caller_authid, details.caller_authrole)

    await B.register(echo, "t.echo")
    await B.register(fail, "t.fail")
    await B.register(progress, "t.progress", options=RegisterOptions(details_arg="details"))
    await B.register(slow_handler(interrupted), "t.slow")
    await B.register(whoami, "t.whoami", options=RegisterOptions(details_arg="details"))

    async def args_kwargs():
        r = await A.call("t.echo", *MIXED_ARGS, **MIXED_KWARGS)
        a, k = result_of(r)
        eq("rpc.args_kwargs args", a, MIXED_ARGS)
        eq("rpc.args_kwargs kwargs", k, MIXED_KWARGS)
        a, k = result_of(await A.call("t.echo", only="kw"))
        eq("rpc.kwargs_only", [a, k], [[], {"only": "kw"}])
    await step("rpc.args_kwargs", args_kwargs)

    async def error():
        e = await expect_error(A.call("t.fail", "x"), 5, "t.fail")
        eq("rpc.error uri+args+kwargs", [e.error, list(e.args), e.kwargs], ["app.error.custom", ["bad", 42], {"why": "because"}])
        e = await expect_error(A.call("t.missing"), 5, "t.missing")
        eq("rpc.no_such_procedure", e.error, "wamp.error.no_such_procedure")
    await step("rpc.error", error)

    async def progressive():
        got = []
        r = await asyncio.wait_for(A.call("t.progress", options=CallOptions(on_progress=lambda *a, **k: got.append([list(a), k]))), 5)
        eq("rpc.progressive progress", got, [[[1], {"step": 1}], [[2], {"step": 2}], [[3], {"step": 3}]])
        eq("rpc.progressive final", list(result_of(r)), [["done"], {"count": 3}])
    await step("rpc.progressive", progressive)

    async def disclose():
        a, _ = result_of(await A.call("t.whoami"))
        eq("rpc.caller not disclosed by default", a, [None, None, None])
        r = await raw_call(A, "t.whoami", {"disclose_me": True})
        eq("rpc.caller_disclose", result_of(r)[0], [A.sid, A.details.authid, "anonymous"])
    await step("rpc.caller_disclose", disclose)

    # Cancel: autobahn's API is Future.cancel(), which sends CANCEL without a
    # mode (the router's default, killnowait, applies). The other modes are
    # sent as raw CANCEL messages on the same session.
    async def cancel_default():
        f = A.call("t.slow", "default")
        await asyncio.sleep(0.15)
        f.cancel()
        try:
            await asyncio.wait_for(f, 3)
            report("rpc.cancel.default", False, "call was not canceled")
        except asyncio.CancelledError:
            report("rpc.cancel.default local", True, "CancelledError")
        eq("rpc.cancel.default session usable", await A.call("t.echo", "still-open"), "still-open")
    await step("rpc.cancel.default", cancel_default)

    for mode in ("kill", "killnowait", "skip"):
        async def cancel_mode(mode=mode):
            f = A.call("t.slow", mode)
            await asyncio.sleep(0.15)
            A._transport.send(message.Cancel(pending_call_request(A, f), mode=mode))
            t0 = time.monotonic()
            e = await expect_error(f, 3, "t.slow canceled (%s)" % mode)
            eq("rpc.cancel.%s error" % mode, e.error, "wamp.error.canceled")
            check("rpc.cancel.%s prompt" % mode, time.monotonic() - t0 < 2, "%.3f s" % (time.monotonic() - t0))
        await step("rpc.cancel." + mode, cancel_mode)

    async def timeout():
        t0 = time.monotonic()
        # CallOptions.timeout is documented in seconds but sent as is; the
        # CALL option is an integer in milliseconds (message.Call asserts int).
        e = await expect_error(A.call("t.slow", "timeout", options=CallOptions(timeout=300)), 3, "t.slow timeout")
        dt = time.monotonic() - t0
        eq("rpc.timeout error", e.error, "wamp.error.timeout")
        check("rpc.timeout elapsed", dt < 2.5, "%.3f s" % dt)
    await step("rpc.timeout", timeout)

    async def interrupts():
        # A callee that announces call_canceling gets INTERRUPT for kill,
        # killnowait, the default mode and the router's timeout, not for skip.
        want = sorted(["default", "kill", "killnowait", "timeout"])
        deadline = time.monotonic() + 3
        while sorted(interrupted) != want and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        eq("rpc.cancel callee interrupts", sorted(interrupted), want)
    await step("rpc.cancel.interrupts", interrupts)

    async def shared():
        rb = await B.register(lambda: "bob", "t.shared", options=RegisterOptions(invoke="roundrobin"))
        rc = await C.register(lambda: "carol", "t.shared", options=RegisterOptions(invoke="roundrobin"))
        check("rpc.shared one registration", rb.id == rc.id, "%s %s" % (rb.id, rc.id))
        got = [await A.call("t.shared") for _ in range(4)]
        eq("rpc.shared_roundrobin order", got, ["bob", "carol", "bob", "carol"])
        e = await expect_error(A.register(lambda: "alice", "t.shared", options=RegisterOptions(invoke="random")), 5, "policy mismatch")
        eq("rpc.shared policy mismatch", e.error, "wamp.error.procedure_exists_with_different_invocation_policy")
        eq("rpc.shared policy mismatch is Autobahn's constant", e.error, ApplicationError.PROCEDURE_EXISTS_INVOCATION_POLICY_CONFLICT)
        e = await expect_error(A.register(lambda: "alice", "t.echo"), 5, "register twice")
        eq("rpc.single already registered", e.error, "wamp.error.procedure_already_exists")
    await step("rpc.shared_roundrobin", shared)

    async def pattern():
        await B.register(lambda details=None: ["bob-prefix", details.procedure], "t.pfx",
                         options=RegisterOptions(match="prefix", details_arg="details"))
        await B.register(lambda details=None: ["bob-wildcard", details.procedure], "t..wild",
                         options=RegisterOptions(match="wildcard", details_arg="details"))
        await C.register(lambda details=None: ["carol-exact", details.procedure], "t.pfx.exact",
                         options=RegisterOptions(details_arg="details"))
        eq("rpc.pattern prefix details.procedure", await A.call("t.pfx.a.b"), ["bob-prefix", "t.pfx.a.b"])
        eq("rpc.pattern wildcard details.procedure", await A.call("t.x.wild"), ["bob-wildcard", "t.x.wild"])
        eq("rpc.pattern exact wins", await A.call("t.pfx.exact"), ["carol-exact", "t.pfx.exact"])
    await step("rpc.pattern", pattern)

    # ------------------------------------------------------------ PubSub
    inbox = {"alice": Inbox(), "bob": Inbox(), "carol": Inbox()}
    for s, name in ((A, "alice"), (B, "bob"), (C, "carol")):
        def handler(*args, details=None, _name=name, **kwargs):
            inbox[_name].push({"args": list(args), "kwargs": kwargs, "details": details})
        await s.subscribe(handler, "t.topic", options=SubscribeOptions(details_arg="details"))

    mark = [0]

    async def delivered_to(payload, **options):
        await A.publish("t.topic", payload, options=pub(**options))
        mark[0] += 1
        m = "mark-%d" % mark[0]
        await A.publish("t.topic", m, options=pub(exclude_me=False))
        who = []
        for name in ("alice", "bob", "carol"):
            items = await inbox[name].wait(lambda xs: any(x["args"][:1] == [m] for x in xs), 5, "%s receives %s" % (name, m))
            if any(x["args"][:1] == [payload] for x in items):
                who.append(name)
        return who

    async def exclude_me():
        eq("pubsub.exclude_me default true", await delivered_to("e-default"), ["bob", "carol"])
        eq("pubsub.exclude_me false", await delivered_to("e-false", exclude_me=False), ["alice", "bob", "carol"])
    await step("pubsub.exclude_me", exclude_me)

    async def blackwhite():
        eq("pubsub.exclude session", await delivered_to("e-excl", exclude=[B.sid]), ["carol"])
        eq("pubsub.eligible session", await delivered_to("e-elig", eligible=[B.sid]), ["bob"])
        eq("pubsub.eligible_authid", await delivered_to("e-elig-authid", eligible_authid=[C.details.authid]), ["carol"])
        eq("pubsub.exclude_authid", await delivered_to("e-excl-authid", exclude_authid=[B.details.authid]), ["carol"])
        eq("pubsub.eligible_authrole", await delivered_to("e-elig-role", eligible_authrole=["anonymous"], exclude_me=False),
           ["alice", "bob", "carol"])
        eq("pubsub.exclude_authrole", await delivered_to("e-excl-role", exclude_authrole=["anonymous"]), [])
        eq("pubsub.eligible+exclude", await delivered_to("e-both", eligible=[B.sid, C.sid], exclude=[C.sid]), ["bob"])
    await step("pubsub.blackwhite", blackwhite)

    async def disclose_pub():
        await publish_disclosed(A, "t.topic", "disclosed", k=1)
        items = await inbox["bob"].wait(lambda xs: any(x["args"][:1] == ["disclosed"] for x in xs), 5, "disclosed event")
        ev = [x for x in items if x["args"][:1] == ["disclosed"]][0]
        eq("pubsub.publisher_disclose", [ev["details"].publisher, ev["details"].publisher_authid, ev["kwargs"]], [A.sid, A.details.authid, {"k": 1}])
    await step("pubsub.publisher_disclose", disclose_pub)

    async def pattern_sub():
        got = Inbox()
        await B.subscribe(lambda a, details=None: got.push(["prefix", a, details.topic]), "t.pp",
                          options=SubscribeOptions(match="prefix", details_arg="details"))
        await B.subscribe(lambda a, details=None: got.push(["wildcard", a, details.topic]), "t..ww",
                          options=SubscribeOptions(match="wildcard", details_arg="details"))
        await A.publish("t.pp.x.y", "p1", options=pub())
        await A.publish("t.a.ww", "w1", options=pub())
        items = await got.wait(lambda xs: len(xs) >= 2, 5, "pattern events")
        eq("pubsub.pattern details.topic", sorted(items), [["prefix", "p1", "t.pp.x.y"], ["wildcard", "w1", "t.a.ww"]])
    await step("pubsub.pattern", pattern_sub)

    async def retained():
        await A.publish("t.ret", "r1", options=pub(retain=True))
        await A.publish("t.ret", "r2", n=2, options=pub(retain=True))
        got = Inbox()
        await C.subscribe(lambda *a, details=None, **k: got.push({"args": list(a), "kwargs": k, "retained": details.retained}),
                          "t.ret", options=SubscribeOptions(get_retained=True, details_arg="details"))
        items = await got.wait(lambda xs: len(xs) >= 1, 5, "retained event")
        eq("pubsub.retained latest event", items[0], {"args": ["r2"], "kwargs": {"n": 2}, "retained": True})
    await step("pubsub.retained", retained)

    # ------------------------------------------------------------ meta API
    async def meta_session():
        eq("meta.session.count", await M.call("wamp.session.count"), 4)
        eq("meta.session.list", sorted(await M.call("wamp.session.list")), sorted([M.sid, A.sid, B.sid, C.sid]))
        d = await M.call("wamp.session.get", A.sid)
        eq("meta.session.get", [d["session"], d["authid"], d["authrole"], d["authmethod"]], [A.sid, A.details.authid, "anonymous", "anonymous"])
        t = d.get("transport") or {}
        want_type = "rawsocket" if OPT.url.startswith("rs") else "websocket"
        want_proto = OPT.serializer + (".batched" if OPT.batched else "")
        want_tls = OPT.url.startswith(("wss:", "rss:"))
        check("meta.session.get transport", t.get("type") == want_type and str(t.get("protocol")).endswith(want_proto) and t.get("tls") is want_tls, show(t))
        e = await expect_error(M.call("wamp.session.get", 1), 5, "session.get unknown")
        eq("meta.session.get unknown", e.error, "wamp.error.no_such_session")
    await step("meta.session", meta_session)

    async def meta_registration():
        rid = await M.call("wamp.registration.lookup", "t.echo")
        check("meta.registration.lookup", isinstance(rid, int) and rid > 0, rid)
        eq("meta.registration.list_callees", await M.call("wamp.registration.list_callees", rid), [B.sid])
        sid = await M.call("wamp.registration.lookup", "t.shared")
        eq("meta.registration.list_callees shared", sorted(await M.call("wamp.registration.list_callees", sid)), sorted([B.sid, C.sid]))
        eq("meta.registration.count_callees shared", await M.call("wamp.registration.count_callees", sid), 2)
        pid = await M.call("wamp.registration.lookup", "t.pfx", {"match": "prefix"})
        check("meta.registration.lookup prefix", isinstance(pid, int) and pid > 0 and pid != rid, pid)
        eq("meta.registration.lookup missing", await M.call("wamp.registration.lookup", "t.nothing"), None)
        g = await M.call("wamp.registration.get", pid)
        eq("meta.registration.get", [g["id"], g["uri"], g["match"], g["invoke"]], [pid, "t.pfx", "prefix", "single"])
    await step("meta.registration", meta_registration)

    async def meta_subscription():
        sid = await M.call("wamp.subscription.lookup", "t.topic")
        check("meta.subscription.lookup", isinstance(sid, int) and sid > 0, sid)
        eq("meta.subscription.count_subscribers", await M.call("wamp.subscription.count_subscribers", sid), 3)
        eq("meta.subscription.list_subscribers", sorted(await M.call("wamp.subscription.list_subscribers", sid)), sorted([A.sid, B.sid, C.sid]))
        wid = await M.call("wamp.subscription.lookup", "t..ww", {"match": "wildcard"})
        check("meta.subscription.lookup wildcard", isinstance(wid, int) and wid > 0, wid)
    await step("meta.subscription", meta_subscription)

    # ------------------------------------------------------------ binary
    async def binary():
        a, k = result_of(await A.call("t.echo", BYTES, b"", blob=BYTES))
        eq("binary.rpc args", a, [BYTES, b""])
        eq("binary.rpc kwargs", k, {"blob": BYTES})
        check("binary.rpc is bytes", isinstance(a[0], bytes), type(a[0]).__name__)
        await A.publish("t.topic", "bin", BYTES, options=pub())
        items = await inbox["bob"].wait(lambda xs: any(x["args"][:1] == ["bin"] for x in xs), 5, "binary event")
        eq("binary.event", [x for x in items if x["args"][:1] == ["bin"]][0]["args"][1], BYTES)
    await step("binary", binary)

    async def overlapping():
        # One publication matching an exact, a prefix and a wildcard
        # subscription of one session: one EVENT per subscription, with the
        # same publication id.
        got = Inbox()
        for kind, uri, match in (("exact", "ov.a.b", None), ("prefix", "ov", "prefix"), ("wildcard", "ov..b", "wildcard")):
            await B.subscribe(lambda a, details=None, kind=kind: got.push([kind, a, details.topic, details.publication]), uri,
                              options=SubscribeOptions(match=match, details_arg="details"))
        p = await A.publish("ov.a.b", "o1", options=pub())
        items = await got.wait(lambda xs: len(xs) >= 3, 5, "three events")
        await asyncio.sleep(0.1)
        # (autobahn fills details.topic from the subscription when the
        # router sends none, as for exact subscriptions.)
        eq("pubsub.overlapping one event per subscription", sorted(x[:3] for x in items),
           [["exact", "o1", "ov.a.b"], ["prefix", "o1", "ov.a.b"], ["wildcard", "o1", "ov.a.b"]])
        eq("pubsub.overlapping publication id", sorted(set(x[3] for x in items)), [p.id])
    await step("pubsub.overlapping", overlapping)

    async def large():
        big = "x" * (1 << 20) + "ü"
        r = await asyncio.wait_for(A.call("t.echo", big), 10)
        check("rpc.large 1 MiB string", r == big, "%s length %d" % (type(r).__name__, len(r or "")))
        bb = bytes([0]) + bytes([7]) * ((1 << 20) - 2) + bytes([255])
        rb = await asyncio.wait_for(A.call("t.echo", bb), 10)
        check("rpc.large 1 MiB bytes", rb == bb, "%s length %d" % (type(rb).__name__, len(rb or b"")))
    await step("rpc.large", large)

    async def kill():
        D = await connect("dave")
        r = await M.call("wamp.session.kill", D.sid, reason="wamp.close.killed_by_test", message="bye dave")
        eq("meta.session.kill result", r, None)
        info = await asyncio.wait_for(D.closed, 5)
        eq("meta.session.kill close reason", [info.reason, info.message], ["wamp.close.killed_by_test", "bye dave"])
    await step("meta.session.kill", kill)

    async def remove_callee():
        # The router takes E's registration away: [UNREGISTERED, 0,
        # {registration, reason}]. autobahn (protocol.py, onMessage,
        # message.Unregistered with request 0) logs it and keeps the session.
        E = await connect("erin")
        seen = []
        on_message = E.onMessage

        def spy(msg):
            if isinstance(msg, message.Unregistered):
                seen.append([msg.request, msg.registration, msg.reason])
            return on_message(msg)
        E.onMessage = spy
        try:
            reg = await E.register(lambda: "erin", "t.removable")
            eq("meta.registration.remove_callee before", await A.call("t.removable"), "erin")
            r = await M.call("wamp.registration.remove_callee", reg.id, E.sid, "wamp.error.removed_by_test")
            eq("meta.registration.remove_callee result", r, None)
            # The RESULT may come before the callee's event loop has taken
            # the registration away (README, meta API: as for a kill); the
            # callee's UNREGISTERED says it has.
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.05)
            eq("meta.registration.remove_callee UNREGISTERED", seen, [[0, reg.id, "wamp.error.removed_by_test"]])
            e = await expect_error(A.call("t.removable"), 5, "call after remove_callee")
            eq("meta.registration.remove_callee call after", e.error, "wamp.error.no_such_procedure")
            await E.register(lambda: "erin again", "t.removable")
            eq("meta.registration.remove_callee registered again", await A.call("t.removable"), "erin again")
            check("meta.registration.remove_callee session stays", E.is_attached(), "detached")
        finally:
            # Not wamp.subscription.remove_subscriber: autobahn 22.7.1
            # announces subscription_revocation (role.py,
            # DEFAULT_CLIENT_ROLES) but takes [UNSUBSCRIBED, 0, ...] for an
            # answer to no request (protocol.py, onMessage,
            # message.Unsubscribed: ProtocolError "UNSUBSCRIBED received for
            # non-pending request ID 0") and drops its connection.
            E.leave()
            await asyncio.wait_for(E.closed, 5)
    await step("meta.registration.remove_callee", remove_callee)

    # ------------------------------------------------------------ leave
    async def on_leave():
        cid = C.sid
        C.leave()
        items = await leaves.wait(lambda xs: any(x[:1] == [cid] for x in xs), 5, "on_leave for carol")
        eq("meta.on_leave", [x for x in items if x[:1] == [cid]][0], [cid, C.details.authid, "anonymous"])
        eq("meta.session.count after leave", await M.call("wamp.session.count"), 3)
        eq("rpc.shared after callee left", [await A.call("t.shared") for _ in range(2)], ["bob", "bob"])
    await step("meta.on_leave", on_leave)

    await leave_all([M, A, B])


class CallWithOptions(message.Call):
    """A CALL carrying options that message.Call of 22.7.1 cannot express
    (disclose_me: autobahn's CallOptions has no such field)."""

    __slots__ = ("extra_options",)

    def marshal(self):
        m = super().marshal()
        m[2].update(self.extra_options)
        return m


class PublishWithOptions(message.Publish):
    """A PUBLISH carrying options that PublishOptions of 22.7.1 cannot
    express (disclose_me)."""

    __slots__ = ("extra_options",)

    def marshal(self):
        m = super().marshal()
        m[2].update(self.extra_options)
        return m


async def publish_disclosed(session, topic, *args, retain=None, **kwargs):
    """An acknowledged PUBLISH with disclose_me, through the session's own
    pending-publication table."""
    from autobahn.wamp.request import PublishRequest
    req = session._request_id_gen.next()
    fut = txaio.create_future()
    session._publish_reqs[req] = PublishRequest(req, fut, was_encrypted=False)
    msg = PublishWithOptions(req, topic, args=list(args), kwargs=kwargs or None, acknowledge=True, retain=retain)
    msg.extra_options = {"disclose_me": True}
    session._transport.send(msg)
    return await asyncio.wait_for(fut, 5)


async def raw_call(session, procedure, options, *args):
    """Sends CallWithOptions through the session's own pending-call table."""
    from autobahn.wamp.request import CallRequest
    req = session._request_id_gen.next()
    fut = txaio.create_future()
    session._call_reqs[req] = CallRequest(req, procedure, fut, None)
    msg = CallWithOptions(req, procedure, args=list(args) or None)
    msg.extra_options = dict(options)
    session._transport.send(msg)
    return await asyncio.wait_for(fut, 5)


# ---------------------------------------------------------------- cross-client roles

async def x_binary_peer():
    """JSON peer: bytes from MsgPack/CBOR publishers arrive here as bytes, and
    ours (sent as "\\0"+base64 in JSON) reach them as binary."""
    S = await connect("py-json")
    expect_from = [x for x in (OPT.expect_from or "").split(",") if x]
    got = Inbox()
    await S.subscribe(lambda *a, **k: got.push((list(a), k)), "x.bin.tojson")

    async def publish(topic):
        await S.publish(topic, BYTES, b"", blob=BYTES, **{"from": "py-json"}, options=pub())
        return "published"

    def echo(*args, **kwargs):
        for i, a in enumerate(list(args) + list(kwargs.values())):
            check("x.binary %s received as bytes #%d" % ("echo", i), isinstance(a, bytes), type(a).__name__)
        return CallResult(*args, **kwargs)

    await S.register(publish, "x.bin.publish")
    await S.register(echo, "x.bin.echo")
    stop = await stop_signal(S)
    out({"ready": True})
    await stop

    async def received():
        items = await got.wait(lambda xs: all(any(k.get("from") == f for _, k in xs) for f in expect_from), 3,
                               "events from %s" % expect_from)
        for f in expect_from:
            a, k = [x for x in items if x[1].get("from") == f][0]
            eq("x.binary %s->json event" % f, [a, k], [[BYTES, b""], {"blob": BYTES, "from": f}])
            check("x.binary %s->json is bytes" % f, isinstance(a[0], bytes) and isinstance(a[1], bytes) and isinstance(k["blob"], bytes),
                  [type(a[0]).__name__, type(a[1]).__name__, type(k["blob"]).__name__])
    await step("x.binary received", received)
    await leave_all([S])


async def x_mixed_callee():
    """MsgPack callee in JSON caller -> MsgPack callee -> CBOR subscriber."""
    S = await connect("py-callee")
    await announce(S, "py-callee")
    calls = []

    async def proc(*args, **kwargs):
        calls.append(1)
        eq("x.mixed callee received", [list(args), kwargs], [MIXED_ARGS + [BYTES], MIXED_KWARGS])
        check("x.mixed callee bytes", isinstance(args[-1], bytes), type(args[-1]).__name__)
        await publish_disclosed(S, "x.mixed.evt", *args, **kwargs)
        return CallResult(*args, **kwargs)

    await S.register(proc, "x.mixed.proc")
    stop = await stop_signal(S)
    out({"ready": True})
    await stop
    eq("x.mixed callee invoked once", len(calls), 1)
    await leave_all([S])


async def x_rpc_callee():
    """Python callee (supports call canceling) for Autobahn|JS and wampy callers."""
    S = await connect("py-rpc")
    interrupted = []
    slow_tags = {}

    async def echo(*args, details=None, **kwargs):
        await S.publish("x.rpc.echoed", details.caller_authid, options=pub())
        return CallResult(*args, **kwargs)

    def fail(why=None):
        raise ApplicationError("x.error.py", "py-arg", 7, reason="py-kw", echo=why)

    async def progress(n, details=None):
        for i in range(1, n + 1):
            if details.progress:
                details.progress(i)
            await asyncio.sleep(0.01)
        return "done"

    slow_impl = slow_handler(interrupted, seconds=4.0)

    async def slow(tag, expect_interrupt):
        slow_tags[tag] = expect_interrupt
        return await slow_impl(tag)

    async def call(procedure):
        try:
            r = await S.call(procedure)
            return {"result": show(r)}
        except ApplicationError as e:
            return {"error": e.error, "args": list(e.args), "kwargs": e.kwargs}

    await S.register(echo, "x.rpc.echo", options=RegisterOptions(details_arg="details"))
    await S.register(fail, "x.rpc.fail")
    await S.register(progress, "x.rpc.progress", options=RegisterOptions(details_arg="details"))
    await S.register(slow, "x.rpc.slow")
    await S.register(call, "x.rpc.call")
    stop = await stop_signal(S)
    out({"ready": True})
    await stop

    async def interrupts():
        want = sorted(t for t, e in slow_tags.items() if e)
        deadline = time.monotonic() + 3
        while sorted(set(interrupted) & set(slow_tags)) != want and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        eq("x.rpc callee interrupted calls", sorted(set(interrupted)), want)
        check("x.rpc callee saw slow calls", len(slow_tags) > 0, show(slow_tags))
    await step("x.rpc interrupts", interrupts)
    await leave_all([S])


async def x_shared_peer():
    """Python half of a roundrobin registration; publishes a retained event."""
    S = await connect("py-shared")
    await announce(S, "py-shared")
    await S.register(lambda: "py", "x.shared", options=RegisterOptions(invoke="roundrobin"))
    await publish_disclosed(S, "x.ret", "kept", BYTES, retain=True)
    stop = await stop_signal(S)
    out({"ready": True})
    await stop
    report("x.shared py peer", True, "served")
    await leave_all([S])


async def x_shutdown():
    """A session open when the router gets SIGTERM must be told GOODBYE
    wamp.close.system_shutdown."""
    S = await connect("autobahn-py-%s-shutdown" % OPT.serializer)
    await S.register(lambda: "up", "x.down.py.%s.%s" % (OPT.url[:2], OPT.serializer))
    out({"ready": True})

    async def closed():
        info = await asyncio.wait_for(S.closed, 30)
        eq("x.shutdown GOODBYE reason at autobahn-py %s" % OPT.serializer, info.reason, "wamp.close.system_shutdown")
    await step("x.shutdown", closed)


async def until(what, fn, timeout=10):
    """Polls the coroutine function fn until it returns a true value."""
    deadline = time.monotonic() + timeout
    while True:
        v = await fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("not within %d s: %s" % (timeout, what))
        await asyncio.sleep(0.05)


async def x_mesh_features():
    """Features of the Advanced Profile between sessions on two nodes of a
    mesh (--url: node A, --url2: node B), as Autobahn|Python sends and reads
    them: pattern registrations and subscriptions (INVOCATION.procedure,
    EVENT.topic), caller and publisher disclosure, black/white listing by
    session, authid and authrole, shared registrations (first, last),
    testaments (on leave and on a kill from the other node), the meta API
    about sessions, registrations and subscriptions of the other node,
    get_retained on a prefix, call timeouts and a leaving caller
    interrupting a callee (both announce call_canceling), a leaving callee."""
    ua, ub = OPT.url, OPT.url2
    A = await connect("mesh-a", ua)
    B = await connect("mesh-b", ub)
    M = await connect("mesh-m", ub)

    async def reg_seen(uri):
        # A registration of node B is known on node A.
        await until("%s registered on the other node" % uri, lambda: A.call("wamp.registration.match", uri))

    async def sub_seen(uri):
        await until("a subscription to %s on the other node" % uri, lambda: A.call("wamp.subscription.match", uri))

    async def pattern_rpc():
        await B.register(lambda details=None: [details.procedure, details.caller, details.caller_authid, details.caller_authrole],
                         "m.pfx", options=RegisterOptions(match="prefix", details_arg="details"))
        await B.register(lambda details=None: [details.procedure], "m..wild", options=RegisterOptions(match="wildcard", details_arg="details"))
        await reg_seen("m.pfx.x")
        await reg_seen("m.q.wild")
        eq("mesh.rpc prefix procedure, caller not disclosed", await A.call("m.pfx.x.y"), ["m.pfx.x.y", None, None, None])
        eq("mesh.rpc prefix caller disclosed", await raw_call(A, "m.pfx.z", {"disclose_me": True}),
           ["m.pfx.z", A.sid, A.details.authid, "anonymous"])
        eq("mesh.rpc wildcard procedure", await A.call("m.q.wild"), ["m.q.wild"])
    await step("mesh.rpc.pattern", pattern_rpc)

    async def pubsub():
        got = Inbox()
        await B.subscribe(lambda *a, details=None, **k: got.push([list(a), details.topic, details.publisher]), "m..w",
                          options=SubscribeOptions(match="wildcard", details_arg="details"))
        await sub_seen("m.x.w")
        await A.publish("m.x.w", 1, options=pub())
        await publish_disclosed(A, "m.y.w", 2)
        await A.publish("m.z.w", 3, options=pub(exclude=[B.sid]))
        await A.publish("m.z.w", 4, options=pub(eligible=[B.sid]))
        await A.publish("m.z.w", 5, options=pub(eligible=[A.sid, M.sid]))
        await A.publish("m.z.w", 6, options=pub(exclude_authid=[B.details.authid]))
        await A.publish("m.z.w", 7, options=pub(eligible_authid=[B.details.authid]))
        await A.publish("m.z.w", 8, options=pub(exclude_authrole=["anonymous"]))
        await A.publish("m.z.w", 9, options=pub(eligible_authrole=["anonymous"]))
        await A.publish("m.z.w", 10, options=pub())
        items = await got.wait(lambda xs: any(x[0] == [10] for x in xs), 5, "the last event")
        eq("mesh.pubsub wildcard topic, disclosure, black/white lists", items,
           [[[1], "m.x.w", None], [[2], "m.y.w", A.sid], [[4], "m.z.w", None], [[7], "m.z.w", None],
            [[9], "m.z.w", None], [[10], "m.z.w", None]])
    await step("mesh.pubsub", pubsub)

    async def shared():
        rb = await B.register(lambda: "b", "m.first", options=RegisterOptions(invoke="first"))
        await reg_seen("m.first")
        await A.register(lambda: "a", "m.first", options=RegisterOptions(invoke="first"))
        await B.register(lambda: "b", "m.last", options=RegisterOptions(invoke="last"))
        await reg_seen("m.last")
        await A.register(lambda: "a", "m.last", options=RegisterOptions(invoke="last"))
        rid = await A.call("wamp.registration.lookup", "m.last")
        await until("both callees of m.last on node B", lambda: _n_is(M.call("wamp.registration.count_callees", rid), 2))
        eq("mesh.shared first", [await s.call("m.first") for s in (A, M, A, M)], ["b"] * 4)
        eq("mesh.shared last", [await s.call("m.last") for s in (A, M, A, M)], ["a"] * 4)
        await rb.unregister()
        await until("m.first served by the other callee", lambda: _is(M.call("m.first"), "a"))
        eq("mesh.shared first after the first left", [await s.call("m.first") for s in (A, M)], ["a", "a"])
    await step("mesh.shared", shared)

    async def meta():
        g = await A.call("wamp.session.get", B.sid)
        eq("mesh.meta session.get other node", [g.get("session"), g.get("authid"), g.get("authrole")], [B.sid, B.details.authid, "anonymous"])
        check("mesh.meta session.list", {A.sid, B.sid, M.sid} <= set(await A.call("wamp.session.list")), "")
        rid = await A.call("wamp.registration.match", "m.pfx.q")
        eq("mesh.meta registration.list_callees", await A.call("wamp.registration.list_callees", rid), [B.sid])
        g = await A.call("wamp.registration.get", rid)
        eq("mesh.meta registration.get", [g["uri"], g["match"], g["invoke"]], ["m.pfx", "prefix", "single"])
        sids = await A.call("wamp.subscription.match", "m.q.w")
        eq("mesh.meta subscription.list_subscribers", await A.call("wamp.subscription.list_subscribers", sids[0]), [B.sid])
        eq("mesh.meta subscription.count_subscribers", await A.call("wamp.subscription.count_subscribers", sids[0]), 1)
    await step("mesh.meta", meta)

    async def testaments():
        got = Inbox()
        await M.subscribe(lambda *a, details=None, **k: got.push([list(a), k, details.topic]), "m.will",
                          options=SubscribeOptions(details_arg="details"))
        await sub_seen("m.will")
        D = await connect("mesh-d", ua)
        await D.call("wamp.session.add_testament", "m.will", ["left"], {"k": 1})
        D.leave()
        items = await got.wait(lambda xs: len(xs) > 0, 5, "the testament of a session that left")
        eq("mesh.testament on leave", items, [[["left"], {"k": 1}, "m.will"]])
        E = await connect("mesh-e", ua)
        await E.call("wamp.session.add_testament", "m.will", ["killed"], {})
        await M.call("wamp.session.kill", E.sid)
        items = await got.wait(lambda xs: len(xs) > 1, 5, "the testament of a session killed from the other node")
        eq("mesh.testament on a kill from the other node", items[1], [["killed"], {}, "m.will"])
        info = await asyncio.wait_for(E.closed, 5)
        # (wamp.close.normal without a reason argument: route/meta.go, killOpts.)
        eq("mesh.kill close reason", info.reason, "wamp.close.normal")
    await step("mesh.testament", testaments)

    async def retained():
        await A.publish("m.ret.a", "r1", options=pub(retain=True))
        got = Inbox()
        await B.subscribe(lambda *a, details=None, **k: got.push([list(a), details.topic, details.retained]), "m.ret",
                          options=SubscribeOptions(match="prefix", get_retained=True, details_arg="details"))
        items = await got.wait(lambda xs: len(xs) > 0, 5, "the retained event")
        eq("mesh.retained prefix get_retained", items, [[["r1"], "m.ret.a", True]])
    await step("mesh.retained", retained)

    interrupted = []

    async def stream(n, details=None):
        try:
            for i in range(n):
                if details.progress:
                    details.progress(i)
                await asyncio.sleep(0.05)
            return "end"
        except asyncio.CancelledError:
            interrupted.append("stream")
            raise ApplicationError("wamp.error.canceled")
    await B.register(stream, "m.stream", options=RegisterOptions(details_arg="details"))
    await B.register(slow_handler(interrupted, seconds=5.0), "m.slow")
    await reg_seen("m.slow")
    await reg_seen("m.stream")

    async def timeout():
        prog = []
        e = await expect_error(A.call("m.stream", 200, options=CallOptions(on_progress=lambda *a, **k: prog.append(a), timeout=400)),
                               5, "progressive call past its timeout")
        eq("mesh.timeout progressive call", e.error, "wamp.error.timeout")
        check("mesh.timeout progress before it", len(prog) > 0, len(prog))
        await until("the callee interrupted", lambda: _true("stream" in interrupted), 5)
    await step("mesh.timeout", timeout)

    async def caller_left():
        C = await connect("mesh-c", ua)
        f = asyncio.ensure_future(C.call("m.slow", "caller-left"))
        f.add_done_callback(lambda f: f.exception())
        await asyncio.sleep(0.3)
        C.leave()
        await until("the callee interrupted after its caller left", lambda: _true("caller-left" in interrupted), 5)
        check("mesh.caller left: callee interrupted", True, "")
    await step("mesh.caller_left", caller_left)

    async def callee_left():
        D = await connect("mesh-d2", ub)
        await D.register(lambda: asyncio.sleep(10), "m.dying")
        await reg_seen("m.dying")
        f = asyncio.ensure_future(A.call("m.dying"))
        await asyncio.sleep(0.3)
        D.leave()
        e = await expect_error(f, 5, "call of a callee that left")
        eq("mesh.callee left", e.error, "wamp.error.canceled")
    await step("mesh.callee_left", callee_left)

    await leave_all([A, B, M])


async def x_mesh_deep():
    """This sitting's mesh changes as Autobahn|Python sees them, with
    sessions on two nodes (--url: node A, --url2: node B): subscriptions of
    20 components (exact, prefix, wildcard; NATS interest in their first 15
    components and '>', the receiving node filtering) get each event from
    the other node exactly once, and none of topics that share the first 15
    components only; deep retained events reach get_retained subscriptions
    on the other node; a retained event replaced from the other node is the
    one every node gives; wamp.session.kill_by_authid of a session on the
    other node returns the list of the sessions killed ([] for none)."""
    ua, ub = OPT.url, OPT.url2
    A = await connect("deep-a", ua, "json")
    B = await connect("deep-b", ub, "msgpack")
    deep = ".".join("c%d" % i for i in range(20))          # 20 components
    wild = deep.split(".")
    wild[3] = wild[17] = ""
    wild = ".".join(wild)                                      # 20, two empty
    prefix = deep[:-1]                                         # "c0.….c1": 20, the last partial

    async def deep_events():
        got = {"exact": Inbox(), "prefix": Inbox(), "wildcard": Inbox()}
        await B.subscribe(lambda v: got["exact"].push(v), deep)
        await B.subscribe(lambda v: got["prefix"].push(v), prefix, options=SubscribeOptions(match="prefix"))
        await B.subscribe(lambda v: got["wildcard"].push(v), wild, options=SubscribeOptions(match="wildcard"))

        async def probe():
            await A.publish(deep, "probe", options=PublishOptions(acknowledge=True))
            await asyncio.sleep(0.05)
            return all(ib.items for ib in got.values())
        await until("the deep subscriptions' interest on node A", probe)
        await asyncio.sleep(0.3)
        for ib in got.values():
            ib.items.clear()
        other = deep.split(".")
        other[16] = "x"
        topics = [deep,                  # all three
                  deep + "9",            # the prefix only
                  deep + ".d",           # the prefix only (one component more)
                  ".".join(other),       # the first 16 components alike: none
                  ".".join(other[:15] + ["y"] * 5),  # the first 15 alike: none
                  ]
        for i, t in enumerate(topics):
            await A.publish(t, i, options=PublishOptions(acknowledge=True))
        await A.publish(deep, "fence", options=PublishOptions(acknowledge=True))
        for ib in got.values():
            await ib.wait(lambda xs: "fence" in xs, 10, "the fence event")
        await asyncio.sleep(0.2)
        # (a probe event may still arrive after the clear on a loaded host)
        items = {k: [x for x in ib.items if x != "probe"] for k, ib in got.items()}
        eq("mesh.deep exact once", items["exact"], [0, "fence"])
        eq("mesh.deep prefix once", items["prefix"], [0, 1, 2, "fence"])
        eq("mesh.deep wildcard once", items["wildcard"], [0, "fence"])
    await step("mesh.deep.events", deep_events)

    async def deep_retained():
        topic = "r" + deep
        await A.publish(topic, "ret-a", options=PublishOptions(acknowledge=True, retain=True))
        w = topic.split(".")
        w[2] = w[18] = ""
        for name, uri, match in (("exact", topic, None), ("prefix", topic[:40], "prefix"), ("wildcard", ".".join(w), "wildcard")):
            C = await connect("deep-c", ub, "cbor")
            ib = Inbox()
            await C.subscribe(lambda v: ib.push(v), uri, options=SubscribeOptions(match=match, get_retained=True))
            await ib.wait(lambda xs: xs, 10, "the retained event from the other node")
            await asyncio.sleep(0.2)
            eq("mesh.deep retained " + name, ib.items, ["ret-a"])
            await C.leave()
        # Replaced from the other node: every node gives the replacement.
        await B.publish(topic, "ret-b", options=PublishOptions(acknowledge=True, retain=True))
        for node, url in (("a", ua), ("b", ub)):
            async def newest():
                C = await connect("deep-r", url, "cbor")
                ib = Inbox()
                await C.subscribe(lambda v: ib.push(v), topic, options=SubscribeOptions(get_retained=True))
                await ib.wait(lambda xs: xs, 10, "the retained event")
                await C.leave()
                return ib.items == ["ret-b"]
            check("mesh.retained replaced from the other node, on " + node,
                  await until("node %s gives the replacement" % node, newest), "")
    await step("mesh.deep.retained", deep_retained)

    async def kill_list():
        V = await connect("deep-victim", ub, "cbor")
        r = await A.call("wamp.session.kill_by_authid", V.details.authid)
        eq("mesh.kill_by_authid lists the other node's session", r, [V.sid])
        d = await asyncio.wait_for(V.closed, 10)
        eq("mesh.kill_by_authid victim closed", d.reason, "wamp.close.normal")
        eq("mesh.kill_by_authid none", await A.call("wamp.session.kill_by_authid", "nobody-at-all"), [])
    await step("mesh.kill_by_authid", kill_list)
    for s in (A, B):
        await s.leave()


async def x_mesh_quarter():
    """A caller past its client's quarter of mesh.max_invocations (the test
    runs the nodes with 8: a quarter is 2) calling a callee on the other
    node (q.hold, which answers only once q.release is published): its
    third and fourth calls in flight fail at once with an ApplicationError
    the caller can act on (wamp.error.unavailable, a message naming the
    bound); once the callee answers, the quarter is free again."""
    A = await connect("quarter-a", OPT.url, "json")
    await until("q.hold registered on the other node", lambda: A.call("wamp.registration.match", "q.hold"))

    async def quarter():
        calls = [asyncio.ensure_future(A.call("q.hold", i)) for i in range(4)]
        done, _ = await asyncio.wait(calls, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.sleep(0.5)
        refused = [c for c in calls if c.done()]
        eq("mesh.quarter refused calls", len(refused), 2)
        for c in refused:
            e = c.exception()
            check("mesh.quarter refusal is an ApplicationError",
                  isinstance(e, ApplicationError) and e.error == "wamp.error.unavailable"
                  and "max_invocations" in str(e.args[0] if e.args else ""), describe(e) if e else "succeeded")
        await A.publish("q.release", options=PublishOptions(acknowledge=True))
        held = [c for c in calls if c not in refused]
        res = await asyncio.wait_for(asyncio.gather(*held, return_exceptions=True), 10)
        eq("mesh.quarter held calls answered", sorted(res), [0, 1])
        eq("mesh.quarter free again", await asyncio.wait_for(A.call("q.hold", 9, options=CallOptions(timeout=5000)), 10), 9)
    await step("mesh.quarter", quarter)
    await A.leave()


async def x_idle():
    """A session that stays silent for --idle seconds (longer than the
    router's keepalive interval in interop_keepalive_test.go), then calls:
    it must still be joined. Autobahn|Python's asyncio RawSocket protocol
    does not implement RawSocket PING (autobahn/asyncio/rawsocket.py:
    PrefixProtocol.ping raises NotImplementedError, which asyncio turns
    into a fatal error of the transport)."""
    S = await connect("idle")
    try:
        info = await asyncio.wait_for(asyncio.shield(S.closed), OPT.idle)
        report("x.idle session kept while silent", False, "lost after less than %.1f s: %s" % (OPT.idle, info))
        return
    except asyncio.TimeoutError:
        report("x.idle session kept while silent", True, "%.1f s" % OPT.idle)
    eq("x.idle call after the silence", await asyncio.wait_for(S.call("wamp.session.count"), 5) >= 1, True)
    await leave_all([S])


async def x_exact16m():
    """(RawSocket) A RESULT of exactly 2^24 octets, which the RawSocket
    framing writes with the X bit (RRRR XTTT, the 24 length bits clear).
    Autobahn|Python's asyncio protocol (autobahn/asyncio/rawsocket.py,
    PrefixProtocol.data_received) takes the frame type from the low 3 bits
    and the length from the 24: an empty message, then the payload read as
    frames. The Go callee of big.exact returns a string whose JSON text is
    args[0] octets long; the session's request id is forced to 7 for the
    call, so that the RESULT's length is known."""
    S = await connect("exact16m")
    gen = S._request_id_gen
    S._request_id_gen = type("Seven", (), {"next": staticmethod(lambda: 7)})()
    text = 2 ** 24 - len("[50,7,{},[") - len("]]")
    f = asyncio.ensure_future(S.call("big.exact", text))
    await asyncio.sleep(0)
    S._request_id_gen = gen
    try:
        await asyncio.wait_for(asyncio.shield(f), 15)
        got = "a RESULT"
    except ApplicationError as e:
        got = e.error
    except PayloadExceededError:
        # Autobahn|Python raises ERROR wamp.error.payload_size_exceeded
        # as this (autobahn/wamp/protocol.py, _process Error).
        got = "wamp.error.payload_size_exceeded"
    except BaseException as e:  # noqa: B902
        got = describe(e)
    eq("x.exact16m refused as too long for this client", got, "wamp.error.payload_size_exceeded")
    if S.closed.done():
        report("x.exact16m session kept", False, "left: %s" % S.closed.result())
        return
    eq("x.exact16m session kept", await asyncio.wait_for(S.call("wamp.session.count"), 5) >= 1, True)
    await leave_all([S])


async def x_extras():
    """What the suite does not reach, on one router: testaments (fired by a
    GOODBYE, a kill and a lost transport; publish options kept: retain and
    disclose_me; flush_testaments), retained events replayed to prefix and
    wildcard subscriptions with the concrete details.topic, the
    registration and subscription meta events' arguments, the first, last
    and random invocation policies, and the list/match/get meta procedures."""
    M = await connect("meta")
    S = await connect("sub")
    sessions = [M, S]
    got = Inbox()
    await S.subscribe(lambda *a, details=None, **k: got.push({"topic": details.topic, "args": list(a), "kwargs": k,
                                                             "publisher": details.publisher,
                                                             "publication": details.publication}),
                      "xt", options=SubscribeOptions(match="prefix", details_arg="details"))

    def on(topic):
        return [x for x in got.items if x["topic"] == topic]

    async def testaments():
        T = await connect("t-goodbye")
        r = await T.call("wamp.session.add_testament", "xt.goodbye", ["bye"], {"k": 1})
        # An id, as Crossbar.io answers: the testament's publication id.
        check("testament.add result", isinstance(r, int) and 1 <= r <= 2**53, repr(r))
        T.leave()
        await got.wait(lambda xs: on("xt.goodbye"), 5, "testament on GOODBYE")
        eq("testament.goodbye", [on("xt.goodbye")[0][k] for k in ("args", "kwargs", "publication")], [["bye"], {"k": 1}, r])
        T = await connect("t-kill")
        await T.call("wamp.session.add_testament", "xt.kill", ["killed"], {})
        await M.call("wamp.session.kill", T.sid)
        await got.wait(lambda xs: on("xt.kill"), 5, "testament on kill")
        T = await connect("t-lost")
        await T.call("wamp.session.add_testament", "xt.flushed", ["never"], {})
        eq("testament.flush_testaments", await T.call("wamp.session.flush_testaments"), 1)
        await T.call("wamp.session.add_testament", "xt.lost", ["lost"], {}, {"retain": True, "disclose_me": True})
        tsid = T.sid
        T._transport.close()
        await got.wait(lambda xs: on("xt.lost"), 5, "testament on a lost transport")
        eq("testament.publish_options disclose_me", on("xt.lost")[0]["publisher"], tsid)
        L = await connect("late")
        sessions.append(L)
        late = Inbox()
        await L.subscribe(lambda *a, details=None: late.push([list(a), details.retained]), "xt.lost",
                          options=SubscribeOptions(get_retained=True, details_arg="details"))
        eq("testament.publish_options retain", (await late.wait(lambda xs: xs, 5, "retained testament"))[0], [["lost"], True])
        await asyncio.sleep(0.2)
        eq("testament.flushed one not published", on("xt.flushed"), [])
    await step("testament", testaments)

    async def retained_patterns():
        P = await connect("pub")
        sessions.append(P)
        await P.publish("xr.a.one", 1, options=pub(retain=True))
        await P.publish("xr.b.two", 2, options=pub(retain=True))
        await P.publish("xr.b.two", 3, options=pub(retain=True))
        pre, wild = Inbox(), Inbox()
        await S.subscribe(lambda v, details=None: pre.push([details.topic, v, details.retained]), "xr",
                          options=SubscribeOptions(match="prefix", get_retained=True, details_arg="details"))
        await S.subscribe(lambda v, details=None: wild.push([details.topic, v, details.retained]), "xr..two",
                          options=SubscribeOptions(match="wildcard", get_retained=True, details_arg="details"))
        eq("retained.prefix details.topic", sorted(await pre.wait(lambda xs: len(xs) >= 2, 5, "two retained")),
           [["xr.a.one", 1, True], ["xr.b.two", 3, True]])
        eq("retained.wildcard details.topic", await wild.wait(lambda xs: xs, 5, "one retained"), [["xr.b.two", 3, True]])
    await step("retained.patterns", retained_patterns)

    async def meta_events():
        ev = Inbox()
        for t in ("wamp.registration.on_create", "wamp.registration.on_register", "wamp.registration.on_unregister",
                  "wamp.registration.on_delete", "wamp.subscription.on_create", "wamp.subscription.on_subscribe",
                  "wamp.subscription.on_unsubscribe", "wamp.subscription.on_delete"):
            await M.subscribe(lambda *a, _t=t: ev.push([_t] + list(a)), t)
        C = await connect("meta-events")
        r = await C.register(lambda: None, "xm.proc", options=RegisterOptions(invoke="roundrobin", match="prefix"))
        s = await C.subscribe(lambda: None, "xm..t", options=SubscribeOptions(match="wildcard"))
        await r.unregister()
        await s.unsubscribe()
        items = await ev.wait(lambda xs: len([x for x in xs if x[1] == C.sid]) >= 8, 5, "eight meta events")
        mine = [x for x in items if x[1] == C.sid]
        shapes = [[x[0].split(".", 1)[1], x[2]["uri"], x[2]["match"], x[2].get("invoke"), x[2]["id"]] if isinstance(x[2], dict) else [x[0].split(".", 1)[1], x[2]] for x in mine]
        eq("meta.events", shapes, [
            ["registration.on_create", "xm.proc", "prefix", "roundrobin", r.id], ["registration.on_register", r.id],
            ["subscription.on_create", "xm..t", "wildcard", None, s.id], ["subscription.on_subscribe", s.id],
            ["registration.on_unregister", r.id], ["registration.on_delete", r.id],
            ["subscription.on_unsubscribe", s.id], ["subscription.on_delete", s.id]])
        check("meta.events created", all(isinstance(x[2].get("created"), str) and x[2]["created"].endswith("Z") for x in mine if isinstance(x[2], dict)), show(mine)[:300])
        C.leave()
    await step("meta.events", meta_events)

    async def policies():
        A = await connect("caller")
        sessions.append(A)
        for policy, want in (("first", ["one"] * 4), ("last", ["two"] * 4)):
            one, two = await connect("one"), await connect("two")
            await one.register(lambda: "one", "xp." + policy, options=RegisterOptions(invoke=policy))
            await two.register(lambda: "two", "xp." + policy, options=RegisterOptions(invoke=policy))
            eq("rpc.invoke " + policy, [await A.call("xp." + policy) for _ in range(4)], want)
            one.leave()
            rid = await M.call("wamp.registration.lookup", "xp." + policy)
            await until("one callee left on xp." + policy,
                        lambda: _is(M.call("wamp.registration.count_callees", rid), 1), 5)
            eq("rpc.invoke %s after the first left" % policy, await A.call("xp." + policy), "two")
            two.leave()
        callees = [await connect("r%d" % i) for i in range(3)]
        for i, c in enumerate(callees):
            await c.register(lambda i=i: i, "xp.random", options=RegisterOptions(invoke="random"))
        got = {await A.call("xp.random") for _ in range(60)}
        eq("rpc.invoke random reaches every callee", sorted(got), [0, 1, 2])
        await leave_all(callees)
    await step("rpc.invoke", policies)

    async def meta_lists():
        C = await connect("lists")
        sessions.append(C)
        rx = await C.register(lambda: None, "xl.exact")
        rp = await C.register(lambda: None, "xl", options=RegisterOptions(match="prefix"))
        sx = await C.subscribe(lambda: None, "xl.a.exact")
        sw = await C.subscribe(lambda: None, "xl..exact", options=SubscribeOptions(match="wildcard"))
        regs = await M.call("wamp.registration.list")
        check("meta.registration.list", rx.id in regs["exact"] and rp.id in regs["prefix"] and sorted(regs) == ["exact", "prefix", "wildcard"], show(regs))
        eq("meta.registration.match exact wins", await M.call("wamp.registration.match", "xl.exact"), rx.id)
        eq("meta.registration.match prefix", await M.call("wamp.registration.match", "xl.other"), rp.id)
        eq("meta.registration.match none", await M.call("wamp.registration.match", "zz.none"), None)
        subs = await M.call("wamp.subscription.list")
        check("meta.subscription.list", sx.id in subs["exact"] and sw.id in subs["wildcard"], show(subs))
        eq("meta.subscription.match", sorted(await M.call("wamp.subscription.match", "xl.a.exact")), sorted([sx.id, sw.id]))
        eq("meta.subscription.match none", await M.call("wamp.subscription.match", "zz.none"), None)
        g = await M.call("wamp.subscription.get", sw.id)
        eq("meta.subscription.get", [g["id"], g["uri"], g["match"]], [sw.id, "xl..exact", "wildcard"])
    await step("meta.lists", meta_lists)

    await leave_all(sessions)


async def _n_is(aw, n):
    return (await aw) == n


async def _is(aw, v):
    return (await aw) == v


async def _true(v):
    return v


MODES = {
    "suite": suite,
    "x-shutdown": x_shutdown,
    "x-binary-peer": x_binary_peer,
    "x-mixed-callee": x_mixed_callee,
    "x-rpc-callee": x_rpc_callee,
    "x-shared-peer": x_shared_peer,
    "x-mesh-features": x_mesh_features,
    "x-mesh-deep": x_mesh_deep,
    "x-mesh-quarter": x_mesh_quarter,
    "x-idle": x_idle,
    "x-exact16m": x_exact16m,
    "x-extras": x_extras,
}


def main():
    global OPT
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--serializer", default="json", choices=sorted(SERIALIZERS))
    p.add_argument("--mode", default="suite", choices=sorted(MODES))
    p.add_argument("--expect-from", dest="expect_from", default="")
    p.add_argument("--url2", default="")
    p.add_argument("--batched", action="store_true")
    p.add_argument("--idle", type=float, default=3.0)
    p.add_argument("--cafile", default="", help="a CA (PEM) to trust for wss:// and rss://")
    OPT = p.parse_args()

    async def run():
        try:
            await MODES[OPT.mode]()
        except BaseException as e:  # noqa: B902
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            report("fatal", False, describe(e) + " | " + traceback.format_exc().replace("\n", " | ")[-600:])

    asyncio.run(run())
    out({"done": True, "passed": PASSED, "failed": FAILED})
    sys.exit(0 if FAILED == 0 and PASSED > 0 else 1)


if __name__ == "__main__":
    main()
