'use strict';
// A real Server-Sent Events consumer (the npm `eventsource` package, a
// WHATWG EventSource for Node) for the HTTP gateway's end-to-end test
// (gateway_e2e_test.go).
//
//   node sse_consumer.js --url URL [--count N] [--post BODY] [--header 'Name: value']...
//
// Without --post it follows URL as EventSource does (GET, reconnecting with
// Last-Event-ID); with --post it POSTs BODY with Accept: text/event-stream
// (progressive call results) through EventSource's fetch hook. Every event
// is printed as {"sse": {"type", "id", "data"}}; {"ready": true} once the
// stream is open; after N events (or a "result" or "problem" event with --post)
// it closes and prints {"done": true, ...}.

const { EventSource } = require('eventsource');
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const argv = process.argv.slice(2);
const opt = { count: 1, headers: {} };
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--url') opt.url = argv[++i];
  else if (a === '--count') opt.count = Number(argv[++i]);
  else if (a === '--post') opt.post = argv[++i];
  else if (a === '--header') {
    const [k, ...v] = argv[++i].split(':');
    opt.headers[k.trim()] = v.join(':').trim();
  }
}

const init = {
  fetch: (input, fi) => fetch(input, {
    ...fi,
    method: opt.post === undefined ? 'GET' : 'POST',
    body: opt.post,
    headers: { ...fi.headers, ...opt.headers, ...(opt.post === undefined ? {} : { 'Content-Type': 'application/json' }) },
  }),
};
const es = new EventSource(opt.url, init);
let n = 0;
let finished = false;
const finish = (ok, why) => {
  if (finished) return;
  finished = true;
  es.close();
  out({ done: true, passed: ok ? 1 : 0, failed: ok ? 0 : 1, detail: why || '' });
  process.exit(ok ? 0 : 1);
};
es.onopen = () => out({ ready: true });
const onEvent = (type) => (ev) => {
  out({ sse: { type, id: ev.lastEventId, data: ev.data } });
  n++;
  if (n >= opt.count || (opt.post !== undefined && (type === 'result' || type === 'problem'))) finish(true);
};
es.onmessage = onEvent('message');
for (const t of ['progress', 'result', 'problem']) es.addEventListener(t, onEvent(t));
es.onerror = (err) => {
  // EventSource reconnects after a dropped GET stream; a POST stream that
  // ended, or a non-200 answer, is final.
  if (err && err.code && err.code !== 200) finish(false, 'HTTP ' + err.code + ' ' + (err.message || ''));
  if (opt.post !== undefined) finish(n > 0, 'stream ended after ' + n + ' events');
};
setTimeout(() => finish(false, 'timeout after ' + n + ' events'), 30000);
