#!/usr/bin/python3
"""Autobahn|Python (Debian python3-autobahn 22.7.1, asyncio): a subscriber
for interop_test.go (TestInteropPayloadPythonCannotDecode).

    /usr/bin/python3 bad_payload_sub.py --url ws://HOST:PORT/ws --serializer json|cbor

Subscribes to com.bad, prints {"ready": true}, then records each event's
arguments (their repr, cut to 40 characters) until the event "done" or the
end of its session (10 s at most), and prints {"got": [...], "left": leave
reason or null}.
"""
import argparse
import asyncio
import json
import sys

import txaio

txaio.use_asyncio()

from autobahn.asyncio.wamp import ApplicationSession
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp.serializer import JsonSerializer, CBORSerializer
from autobahn.wamp.types import ComponentConfig
from autobahn.websocket.util import parse_url

OUT = sys.stdout
sys.stdout = sys.stderr


async def main(url, ser):
    loop = asyncio.get_running_loop()
    joined, closed, done = loop.create_future(), loop.create_future(), loop.create_future()
    got = []

    class S(ApplicationSession):
        def onConnect(self):
            self.join("realm1")

        async def onJoin(self, details):
            joined.done() or joined.set_result(self)

        def onLeave(self, details):
            closed.done() or closed.set_result(str(details.reason))
            super().onLeave(details)

        def onDisconnect(self):
            closed.done() or closed.set_result("disconnected")

    def on_event(*a):
        got.append(repr(a)[:40])
        if a == ("done",):
            done.done() or done.set_result(True)

    _, host, port, _, _, _ = parse_url(url)
    s = JsonSerializer() if ser == "json" else CBORSerializer()
    f = WampWebSocketClientFactory(lambda: S(ComponentConfig(realm="realm1")), url=url, serializers=[s])
    await loop.create_connection(f, host, port)
    sess = await asyncio.wait_for(joined, 10)
    await sess.subscribe(on_event, "com.bad")
    OUT.write(json.dumps({"ready": True}) + "\n")
    OUT.flush()
    await asyncio.wait([done, closed], timeout=10, return_when=asyncio.FIRST_COMPLETED)
    left = closed.result() if closed.done() else None
    OUT.write(json.dumps({"got": got, "left": left}) + "\n")
    OUT.flush()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--serializer", default="json")
    o = p.parse_args()
    asyncio.run(main(o.url, o.serializer))
