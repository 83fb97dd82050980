package main

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// TestInteropTLS: the real clients over the router's own TLS (crypto/tls
// on the event loops, no proxy): Autobahn|Python over wss:// and TLS
// RawSocket (rss://, asyncio's ssl), Autobahn|JS and wampy over wss://
// (Node's tls, trusting the test's certificate through
// NODE_EXTRA_CA_CERTS), each running its whole single-client suite, whose
// wamp.session.get check wants transport.tls true; Autobahn|JS's RawSocket
// has no TLS. A router per client (the suites' procedures would clash), a
// self-signed certificate for 127.0.0.1.
func TestInteropTLS(t *testing.T) {
	interopNeeds(t, "node", "python")
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePair(t, certPath, keyPath, 1)
	cfg := writeFile(t, "tls.yaml", "listeners:\n  - address: 127.0.0.1:0\n    tls: {cert: "+certPath+", key: "+keyPath+"}\nrealms: [{name: realm1}]\n")
	nodeCA := []string{"NODE_EXTRA_CA_CERTS=" + certPath}
	cases := []struct {
		name string
		proc func(addr string) interopProc
	}{
		{"autobahn-py/wss/cbor", func(a string) interopProc {
			return interopProc{label: "autobahn-py wss/cbor suite", argv: []string{pythonBin(), "autobahn_py.py",
				"--url", "wss://" + a + "/ws", "--serializer", "cbor", "--mode", "suite", "--cafile", certPath}}
		}},
		{"autobahn-py/rss/msgpack", func(a string) interopProc {
			return interopProc{label: "autobahn-py rss/msgpack suite", argv: []string{pythonBin(), "autobahn_py.py",
				"--url", "rss://" + a, "--serializer", "msgpack", "--mode", "suite", "--cafile", certPath}}
		}},
		{"autobahn-js/wss/json", func(a string) interopProc {
			return interopProc{label: "autobahn-js wss/json suite", env: nodeCA, argv: []string{"node", "autobahn_js.js",
				"--url", "wss://" + a + "/ws", "--serializer", "json", "--mode", "suite"}}
		}},
		{"wampy/wss/msgpack", func(a string) interopProc {
			return interopProc{label: "wampy wss/msgpack suite", env: nodeCA, argv: []string{"node", "wampy_js.mjs",
				"--url", "wss://" + a + "/ws", "--serializer", "msgpack", "--mode", "suite"}}
		}},
	}
	for _, c := range cases {
		c := c
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rt := launch(t, exec.Command(binPath, "run", "-config", cfg))
			runInteropProcs(t, []interopProc{c.proc(rt.addr)}, rt.logs)
		})
	}
}
