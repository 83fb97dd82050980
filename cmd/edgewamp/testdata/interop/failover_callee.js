'use strict';
// Autobahn|JS 22.11.1: a callee that follows a dead node to another one,
// for mesh_failover_interop_test.go (TestMeshInteropFailoverJSCallee).
//
//   node failover_callee.js --url ws://B/ws --url ws://C/ws [--serializer json|msgpack|cbor]
//
// Client behaviour (autobahn-js 22.11.1, lib/connection.js,
// Connection.prototype._create_transport): a Connection's `transports`
// list is a fallback by transport type, not a list of routers: the first
// entry whose factory creates a transport is used at every attempt
// (WebSocket always creates one), so its automatic reconnection retries
// the dead node for ever. The application moves on itself: onclose
// returns true (no retry of this Connection) and the script opens a new
// Connection to the next URL, in turn.
//
// On each join it registers (invoke single, the default)
//   com.failover.who()   returns the URL it joined
//   com.failover.slow()  never returns; prints {"invoked": "slow"}
// and prints {"joined": URL, "session": ID}, or {"register_error": URI,
// "url": URL} if a REGISTER is refused. Runs until killed.

const autobahn = require('autobahn');

const argv = process.argv.slice(2);
const urls = [];
let ser = 'json';
for (let i = 0; i < argv.length; i += 2) {
  if (argv[i] === '--url') urls.push(argv[i + 1]);
  else if (argv[i] === '--serializer') ser = argv[i + 1];
}
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');
console.log = (...a) => process.stderr.write(a.join(' ') + '\n');
const serializers = {
  json: () => new autobahn.serializer.JSONSerializer(),
  msgpack: () => new autobahn.serializer.MsgpackSerializer(),
  cbor: () => new autobahn.serializer.CBORSerializer(),
};

function open(i) {
  const url = urls[i % urls.length];
  const conn = new autobahn.Connection({
    transports: [{ type: 'websocket', url, serializers: [serializers[ser]()] }],
    realm: 'realm1',
    max_retries: 0,
  });
  conn.onopen = async (session) => {
    try {
      await session.register('com.failover.who', () => url);
      await session.register('com.failover.slow', () => {
        emit({ invoked: 'slow' });
        return new Promise(() => {});
      });
      emit({ joined: url, session: session.id });
    } catch (e) {
      emit({ register_error: e.error || String(e), url });
    }
  };
  conn.onclose = () => {
    setTimeout(() => open(i + 1), 200);
    return true; // this Connection stops; the next URL's takes over
  };
  conn.open();
}
open(0);
