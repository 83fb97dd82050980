#!/usr/bin/python3
"""Autobahn|Python (Debian python3-autobahn 22.7.1, asyncio): the WAMP side
of the HTTP gateway's end-to-end test (gateway_e2e_test.go).

    /usr/bin/python3 gateway_peer.py --url ws://HOST:PORT/ws [--serializer json|msgpack|cbor]
                                     [--realm realm1] [--prefix com.example.]

Registers, under PREFIX (default com.example.):
  add(a, b)          a + b
  echo(*a, **kw)     its arguments back
  count(n)           n progressive results [i], then "done"
  fail()             ApplicationError com.example.out_of_stock("no more widgets", sku="w-1")
  invalid()          ApplicationError wamp.error.invalid_argument("x must be positive")
  slow(seconds)      answers after that long (or when canceled)
  whoami()           the caller's authid and authrole (caller disclosure)
and subscribes to PREFIX with match prefix, printing {"event": {topic, args,
kwargs}} for each event. Prints {"ready": true} when set up; stops when an
event arrives on interop.stop, and prints {"done": true, ...} last. Every
stdout line is one JSON object, as for the other interop scripts.
"""

import argparse
import asyncio
import json
import sys

import txaio

txaio.use_asyncio()

from autobahn.asyncio.wamp import ApplicationSession  # noqa: E402
from autobahn.asyncio.websocket import WampWebSocketClientFactory  # noqa: E402
from autobahn.wamp.exception import ApplicationError  # noqa: E402
from autobahn.wamp.serializer import CBORSerializer, JsonSerializer, MsgPackSerializer  # noqa: E402
from autobahn.wamp.types import CallResult, ComponentConfig, RegisterOptions, SubscribeOptions  # noqa: E402
from autobahn.websocket.util import parse_url as parse_ws_url  # noqa: E402

OUT = sys.stdout
sys.stdout = sys.stderr  # anything else the client prints goes to stderr

SERIALIZERS = {"json": JsonSerializer, "msgpack": MsgPackSerializer, "cbor": CBORSerializer}


def out(obj):
    OUT.write(json.dumps(obj) + "\n")
    OUT.flush()


def canon(v):
    if isinstance(v, (bytes, bytearray)):
        return {"$bytes": bytes(v).hex()}
    if isinstance(v, (list, tuple)):
        return [canon(x) for x in v]
    if isinstance(v, dict):
        return {str(k): canon(x) for k, x in v.items()}
    return v


async def run(opt):
    loop = asyncio.get_running_loop()
    joined = loop.create_future()
    stop = loop.create_future()
    p = opt.prefix

    class Peer(ApplicationSession):
        def onConnect(self):
            self.join(self.config.realm, authmethods=["anonymous"])

        async def onJoin(self, details):
            async def add(a, b):
                return a + b

            async def echo(*args, **kwargs):
                return CallResult(*args, **kwargs)

            async def count(n, details=None):
                for i in range(1, n + 1):
                    if details.progress:
                        details.progress(i)
                    await asyncio.sleep(0.01)
                return "done"

            async def fail():
                raise ApplicationError("com.example.out_of_stock", "no more widgets", sku="w-1")

            async def invalid():
                raise ApplicationError(ApplicationError.INVALID_ARGUMENT, "x must be positive")

            async def slow(seconds):
                await asyncio.sleep(seconds)
                return "late"

            async def whoami(details=None):
                return CallResult(authid=details.caller_authid, authrole=details.caller_authrole)

            await self.register(add, p + "add")
            await self.register(echo, p + "echo")
            await self.register(count, p + "count", options=RegisterOptions(details_arg="details"))
            await self.register(fail, p + "fail")
            await self.register(invalid, p + "invalid")
            await self.register(slow, p + "slow")
            await self.register(whoami, p + "whoami", options=RegisterOptions(details_arg="details"))

            def on_event(*args, details=None, **kwargs):
                out({"event": {"topic": details.topic, "args": canon(list(args)), "kwargs": canon(kwargs)}})

            await self.subscribe(on_event, p, options=SubscribeOptions(match="prefix", details_arg="details"))

            def on_stop(*a, **k):
                if not stop.done():
                    stop.set_result(True)

            await self.subscribe(on_stop, "interop.stop")
            joined.set_result(self)

        def onLeave(self, details):
            if not stop.done():
                stop.set_result(False)
            super().onLeave(details)

    cfg = ComponentConfig(realm=opt.realm)
    _, host, port, _, _, _ = parse_ws_url(opt.url)
    factory = WampWebSocketClientFactory(lambda: Peer(cfg), url=opt.url, serializers=[SERIALIZERS[opt.serializer]()])
    await loop.create_connection(factory, host, port)
    session = await asyncio.wait_for(joined, 10)
    out({"ready": True})
    await stop
    session.leave()
    await asyncio.sleep(0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--serializer", default="json", choices=sorted(SERIALIZERS))
    ap.add_argument("--realm", default="realm1")
    ap.add_argument("--prefix", default="com.example.")
    opt = ap.parse_args()
    asyncio.run(run(opt))
    out({"done": True, "passed": 1, "failed": 0})


if __name__ == "__main__":
    main()
