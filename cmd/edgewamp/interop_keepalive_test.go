package main

import (
	"os/exec"
	"testing"
)

// TestInteropRawSocketKeepalive: Autobahn|Python's asyncio RawSocket
// protocol does not implement RawSocket PING (PrefixProtocol.ping raises
// NotImplementedError, a fatal error of its transport), so the router's
// keepalive ping, sent after keepalive.interval of silence (30 s by
// default), dropped every such client that was silent that long: its
// session left wamp.close.transport_lost. Here the interval is 1 s and
// the clients stay silent 3 s, then call. The WebSocket client (which
// answers pings) is the control.
func TestInteropRawSocketKeepalive(t *testing.T) {
	interopNeeds(t, "python")
	cfg := writeFile(t, "keepalive.yaml", "keepalive: {interval: 1s, timeout: 1s}\n")
	rt := launch(t, exec.Command(binPath, "run", "-config", cfg, "-listen", "127.0.0.1:0"))
	var procs []interopProc
	for _, tr := range []string{"rs", "ws"} {
		for _, ser := range []string{"json", "cbor"} {
			procs = append(procs, abpy(rt.addr, tr, ser, "x-idle", "--idle", "3"))
		}
	}
	runInteropProcs(t, procs, rt.logs)
}

// TestInteropRawSocketPingsAlwaysAutobahnJS: with keepalive.rawsocket_pings
// always, which README offers for deployments without Autobahn|Python
// RawSocket clients, the router pings every silent RawSocket client. Its
// PING was empty, and Autobahn|JS 22.11.1's RawSocket transport reads a
// frame's payload from the chunk of data after its header
// (lib/transport/rawsocket.js, Protocol._read and _splitBytes): with no
// payload to come it answered the PING only when the router next sent
// something, which a silent session never gets, so the router closed it
// (keepalive_timeout) at interval + timeout; the client, its socket
// half-open (allowHalfOpen), did not notice, and its next call went
// unanswered. The client stays silent 4 s under a 1 s + 1 s keepalive,
// then calls. The WebSocket client is the control.
func TestInteropRawSocketPingsAlwaysAutobahnJS(t *testing.T) {
	interopNeeds(t, "node")
	cfg := writeFile(t, "keepalive.yaml", "keepalive: {interval: 1s, timeout: 1s, rawsocket_pings: always}\n")
	rt := launch(t, exec.Command(binPath, "run", "-config", cfg, "-listen", "127.0.0.1:0"))
	procs := []interopProc{
		ajs(rt.addr, "rs", "json", "x-idle", "--idle", "4"),
		ajs(rt.addr, "ws", "json", "x-idle", "--idle", "4"),
	}
	runInteropProcs(t, procs, rt.logs)
}
