#!/usr/bin/python3
"""Autobahn|Python (Debian python3-autobahn 22.7.1, Twisted): a callee
that follows a dead node to another one with Autobahn's own automatic
reconnection (autobahn.twisted.component.Component), for
mesh_failover_interop_test.go. (The asyncio Component of 22.7.1 does not
import on Python 3.11: it uses asyncio.coroutine.)

    /usr/bin/python3 failover_callee.py --url ws://B/ws --url ws://C/ws
                                        [--serializer json|msgpack|cbor]

On each join it registers (invoke single, the default)
  com.failover.who()   returns the router's address it joined ("tcp4:HOST:PORT")
  com.failover.slow()  never returns (the caller sees what the router does
                       when this callee's node dies); prints
                       {"invoked": "slow"}
and prints {"joined": ADDRESS, "session": ID}, or {"register_error": URI,
"url": ADDRESS} if a REGISTER is refused. Runs until killed.
"""

import argparse
import json
import sys

import txaio

txaio.use_twisted()

from autobahn.twisted.component import Component, run  # noqa: E402
from autobahn.wamp.exception import ApplicationError  # noqa: E402
from twisted.internet.defer import Deferred, inlineCallbacks  # noqa: E402

OUT = sys.stdout
sys.stdout = sys.stderr


def emit(**kw):
    OUT.write(json.dumps(kw) + "\n")
    OUT.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", action="append", required=True)
    ap.add_argument("--serializer", default="json")
    ap.add_argument("--realm", default="realm1")
    a = ap.parse_args()
    transports = [
        {
            "type": "websocket",
            "url": u,
            "serializers": [a.serializer],
            "max_retries": -1,
            "initial_retry_delay": 0.2,
            "max_retry_delay": 0.5,
            "retry_delay_growth": 1.2,
        }
        for u in a.url
    ]
    comp = Component(transports=transports, realm=a.realm)
    @comp.on_join
    @inlineCallbacks
    def joined(session, details):
        # the router's address, "tcp4:HOST:PORT"
        url = details.transport.peer

        def who():
            return url

        def slow():
            emit(invoked="slow")
            return Deferred()  # never fires

        try:
            yield session.register(who, "com.failover.who")
            yield session.register(slow, "com.failover.slow")
        except ApplicationError as e:
            emit(register_error=e.error, url=url)
            return
        emit(joined=url, session=details.session)

    run([comp], log_level="warn")


if __name__ == "__main__":
    main()
