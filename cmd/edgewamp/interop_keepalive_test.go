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
