#!/usr/bin/python3
"""Autobahn|Python (Debian python3-autobahn 22.7.1, asyncio): callees of
WAMP call re-routing for reroute_e2e_test.go.

    /usr/bin/python3 reroute_peer.py --url ws://HOST:PORT/ws [--serializer json|msgpack|cbor]
                                     [--realm realm1] [--busy N]

Opens N+1 sessions. Each of N "busy" sessions registers, with invoke
roundrobin,
  com.reroute.svc(x)   raises ApplicationError wamp.error.unavailable("busy", who=I)
  com.reroute.none(x)  the same
and the last ("ok") session registers
  com.reroute.svc(x)   returns ["ok", x]
so that a call to com.reroute.svc ends at the "ok" session whichever
callee it reaches first, and a call to com.reroute.none gets
wamp.error.no_available_callee once every busy session refused it. Every
invocation is printed as {"invoked": {"proc", "who", "caller"}}. Prints
{"ready": true} when all are registered; stops when an event arrives on
interop.stop, and prints {"done": true, ...} last.
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
from autobahn.wamp.types import ComponentConfig, RegisterOptions  # noqa: E402
from autobahn.websocket.util import parse_url as parse_ws_url  # noqa: E402

OUT = sys.stdout
sys.stdout = sys.stderr  # anything else the client prints goes to stderr

SERIALIZERS = {"json": JsonSerializer, "msgpack": MsgPackSerializer, "cbor": CBORSerializer}


def out(obj):
    OUT.write(json.dumps(obj) + "\n")
    OUT.flush()


async def run(opt):
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    sessions = []

    def make(who, busy):
        joined = loop.create_future()

        class Peer(ApplicationSession):
            def onConnect(self):
                self.join(self.config.realm, authmethods=["anonymous"])

            async def onJoin(self, details):
                def invoked(proc, details):
                    out({"invoked": {"proc": proc, "who": who, "caller": details.caller}})

                def refuser(proc):
                    async def refuse(x, details=None):
                        invoked(proc, details)
                        raise ApplicationError("wamp.error.unavailable", "busy", who=who)

                    return refuse

                async def serve(x, details=None):
                    invoked("com.reroute.svc", details)
                    return ["ok", x]

                opts = RegisterOptions(invoke="roundrobin", details_arg="details")
                if busy:
                    await self.register(refuser("com.reroute.svc"), "com.reroute.svc", options=opts)
                    await self.register(refuser("com.reroute.none"), "com.reroute.none", options=opts)
                else:
                    await self.register(serve, "com.reroute.svc", options=opts)

                def on_stop(*a, **k):
                    if not stop.done():
                        stop.set_result(True)

                await self.subscribe(on_stop, "interop.stop")
                joined.set_result(self)

            def onLeave(self, details):
                if not stop.done():
                    stop.set_result(False)
                super().onLeave(details)

        return Peer, joined

    _, host, port, _, _, _ = parse_ws_url(opt.url)
    for i in range(opt.busy + 1):
        peer, joined = make(i, i < opt.busy)
        cfg = ComponentConfig(realm=opt.realm)
        factory = WampWebSocketClientFactory(lambda p=peer, c=cfg: p(c), url=opt.url, serializers=[SERIALIZERS[opt.serializer]()])
        await loop.create_connection(factory, host, port)
        sessions.append(await asyncio.wait_for(joined, 10))
    out({"ready": True})
    await stop
    for s in sessions:
        s.leave()
    await asyncio.sleep(0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--serializer", default="json", choices=sorted(SERIALIZERS))
    ap.add_argument("--realm", default="realm1")
    ap.add_argument("--busy", type=int, default=3)
    opt = ap.parse_args()
    asyncio.run(run(opt))
    out({"done": True, "passed": 1, "failed": 0})


if __name__ == "__main__":
    main()
