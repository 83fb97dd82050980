#!/usr/bin/python3
"""Autobahn|Python (Debian python3-autobahn 22.7.1, asyncio): a text string
starting with NUL between MsgPack and JSON sessions, for interop_test.go
(TestInteropNULTextErrorNamesIt).

    /usr/bin/python3 nul_text.py --url ws://HOST:PORT/ws

A MsgPack string starting with NUL has no JSON form (WAMP's JSON reads a
string starting with NUL as binary), so the router cannot pass one to a
JSON peer and answers the call with an error. Two sessions on realm1: a
MsgPack callee of com.nul.result (returns "\\x00x"), com.nul.progress (a
progressive result 1, then "\\x00x", then waits to be interrupted) and a
JSON callee of com.nul.echo; a JSON caller of the first two, a MsgPack
caller of the third with the argument "\\x00x". Prints one JSON line:
{"result"|"progress"|"argument": {"error": URI, "message": TEXT} or
{"value": repr}, "progress_seen": [repr...], "interrupted": BOOL}.
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
from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer  # noqa: E402
from autobahn.wamp.types import CallOptions, ComponentConfig, RegisterOptions  # noqa: E402
from autobahn.websocket.util import parse_url  # noqa: E402

OUT = sys.stdout
sys.stdout = sys.stderr


async def connect(url, serializer):
    loop = asyncio.get_running_loop()
    joined = loop.create_future()

    class S(ApplicationSession):
        def onConnect(self):
            self.join("realm1")

        async def onJoin(self, details):
            joined.done() or joined.set_result(self)

    _, host, port, _, _, _ = parse_url(url)
    f = WampWebSocketClientFactory(lambda: S(ComponentConfig(realm="realm1")), url=url, serializers=[serializer])
    await loop.create_connection(f, host, port)
    return await asyncio.wait_for(joined, 10)


async def outcome(aw):
    try:
        return {"value": repr(await asyncio.wait_for(aw, 5))}
    except ApplicationError as e:
        return {"error": e.error, "message": str(e.args[0]) if e.args else ""}
    except Exception as e:  # noqa: B902 - reported, not raised
        return {"exception": repr(e)}


async def main(url):
    res = {"progress_seen": [], "interrupted": False}
    mp = await connect(url, MsgPackSerializer())
    js = await connect(url, JsonSerializer())
    interrupted = asyncio.get_running_loop().create_future()

    def result():
        return "\x00x"

    async def progress(details=None):
        details.progress(1)
        details.progress("\x00x")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            interrupted.done() or interrupted.set_result(True)
            raise
        return "end"

    await mp.register(result, "com.nul.result")
    await mp.register(progress, "com.nul.progress", options=RegisterOptions(details_arg="details"))
    await js.register(lambda x: "echoed", "com.nul.echo")

    res["result"] = await outcome(js.call("com.nul.result"))
    res["progress"] = await outcome(js.call("com.nul.progress", options=CallOptions(on_progress=lambda v: res["progress_seen"].append(repr(v)))))
    try:
        res["interrupted"] = await asyncio.wait_for(interrupted, 2)
    except asyncio.TimeoutError:
        pass
    res["argument"] = await outcome(mp.call("com.nul.echo", "\x00x"))
    OUT.write(json.dumps(res) + "\n")
    OUT.flush()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    asyncio.run(main(p.parse_args().url))
