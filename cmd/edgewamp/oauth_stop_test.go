//go:build !nomesh

package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// TestStopWhileSharedOAuthStoreHangs: an edge node's OAuth2 server starts
// in the background on its hub's JetStream, and the stop waited for that
// start to end: a hub that takes the node's requests but does not answer
// them (JetStream without a leader, a link that stalls) held each try for
// its 10 s, and a SIGTERM then waited for it, beside the 10 s of the
// sessions' drain and the mesh's 5 s, past the unit's TimeoutStopSec
// (20 s), so that systemd's SIGKILL came before the node left the mesh.
// The stop no longer waits for a start in progress: it gives it up.
func TestStopWhileSharedOAuthStoreHangs(t *testing.T) {
	hub, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		LeafNode: server.LeafNodeOpts{Host: "127.0.0.1", Port: -1}})
	if err != nil {
		t.Fatal(err)
	}
	hub.Start()
	defer hub.Shutdown()
	if !hub.ReadyForConnections(10 * time.Second) {
		t.Fatal("hub not ready")
	}
	// A responder for the JetStream API that never answers.
	nc, err := nats.Connect(hub.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	got := make(chan string, 64)
	if _, err := nc.Subscribe("$JS.>", func(m *nats.Msg) {
		select {
		case got <- m.Subject:
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	v, err := hub.Varz(nil)
	if err != nil || v.LeafNode.Port == 0 {
		t.Fatalf("hub's leaf port: %v", err)
	}
	leaf := fmt.Sprintf("127.0.0.1:%d", v.LeafNode.Port)
	yml := fmt.Sprintf(`listeners: [{address: "127.0.0.1:0"}]
oauth:
  issuer: http://gateway.test
  key_files: [%s]
realms:
  - name: realm1
    anonymous: true
    oauth:
      clients:
        - {id: backend, secret: %q, roles: [anonymous], grants: [client_credentials]}
mesh:
  node: edge-1
  leaf: {remotes: ["nats://%s"]}
  credentials: {token: "mesh-token-0123456789abcdef"}
gateway:
  listen: 127.0.0.1:0
`, oauthKeyFile(t), mustHash(t, "backend-client-secret"), leaf)
	r := startGatewayRouter(t, "-config", writeFile(t, "hang.yaml", yml))
	select {
	case s := <-got:
		t.Logf("the hub took %s", s)
	case <-time.After(15 * time.Second):
		t.Fatalf("the node's OAuth2 start never reached the hub's JetStream API\n%s", r.logs())
	}
	t0 := time.Now()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, r.logs())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit 30 s after SIGTERM\n%s", r.logs())
	}
	if d := time.Since(t0); d > 4*time.Second {
		t.Fatalf("SIGTERM while the OAuth2 start waits for the hub: exit after %v, want it not to wait for the start (a second or two)\n%s", d.Round(100*time.Millisecond), lastLines(r.logs(), 8))
	}
	if !strings.Contains(r.logs(), "edgewamp stopped") {
		t.Fatalf("no stop line:\n%s", r.logs())
	}
}
