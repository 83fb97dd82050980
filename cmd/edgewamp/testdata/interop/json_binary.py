#!/usr/bin/python3
"""Autobahn|Python (Debian python3-autobahn 22.7.1, asyncio, JSON): a JSON
binary string with malformed base64, for interop_test.go
(TestInteropMalformedJSONBinary).

    /usr/bin/python3 json_binary.py --url ws://HOST:PORT/ws --payload '\\x00AQI'

Three sessions on realm1: a subscriber of com.bin; a publisher that
publishes --payload (escapes resolved: a text string, which
autobahn-python sends as it is, so "\\x00AQI" goes out as the JSON binary
string "\\u0000AQI", unpadded base64); then another publisher that
publishes "ok" (acknowledged). Autobahn|Python's JSON serializer decodes
every string that starts with NUL with base64.b64decode, and drops its
connection when that fails. Prints one JSON line:
{"got": [repr of each event's args], "left": the subscriber's leave
reason or null, "publisher_left": the first publisher's or null}.
"""
import argparse
import asyncio
import json
import sys

import txaio

txaio.use_asyncio()

from autobahn.asyncio.wamp import ApplicationSession
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp.serializer import JsonSerializer
from autobahn.wamp.types import ComponentConfig, PublishOptions
from autobahn.websocket.util import parse_url

OUT = sys.stdout
sys.stdout = sys.stderr


async def connect(url):
    loop = asyncio.get_running_loop()
    joined, closed = loop.create_future(), loop.create_future()

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

    S.closed = closed
    _, host, port, _, _, _ = parse_url(url)
    f = WampWebSocketClientFactory(lambda: S(ComponentConfig(realm="realm1")), url=url, serializers=[JsonSerializer()])
    await loop.create_connection(f, host, port)
    return await asyncio.wait_for(joined, 10)


async def main(url, payload):
    got = []
    sub = await connect(url)
    await sub.subscribe(lambda *a: got.append(repr(a)), "com.bin")
    pub = await connect(url)
    pub.publish("com.bin", payload)
    await asyncio.wait([pub.closed], timeout=2)
    other = await connect(url)
    try:
        await other.publish("com.bin", "ok", options=PublishOptions(acknowledge=True))
    except Exception as e:
        got.append("publish failed: %r" % e)
    await asyncio.sleep(1.0)
    left = sub.closed.result() if sub.closed.done() else None
    pub_left = pub.closed.result() if pub.closed.done() else None
    OUT.write(json.dumps({"got": got, "left": left, "publisher_left": pub_left}) + "\n")
    OUT.flush()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--payload", default="\\x00AQI")
    o = p.parse_args()
    asyncio.run(main(o.url, o.payload.encode().decode("unicode_escape")))
