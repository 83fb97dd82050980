package edge

import (
	"bufio"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/edge/edgetest"
	"time"
)

// TestMeshTLSStrangerRefusedAndLogged: with mesh.tls and a ca, a peer
// presenting a certificate of another CA, or none, on the route port or on
// the leaf port fails its handshake, and the node's log says so, a line
// each (a guard: it passes on main).
func TestMeshTLSStrangerRefusedAndLogged(t *testing.T) {
	t.Parallel()
	meshCfg, foreign := testTLS(t)
	logs := &lockedBuf{}
	addrA := edgetest.FreeAddr(t)
	a := startNode(t, "a", func(o *Options) {
		o.Cluster.Listen, o.Cluster.Routes, o.TLS = addrA, []string{"nats://" + addrA}, meshCfg
		o.Leaf.Listen = "127.0.0.1:0"
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	none := foreign.Clone()
	none.Certificates = nil
	for _, port := range []struct {
		name, addr string
		cfg        *tls.Config
	}{
		{"route", addrA, foreign}, {"leaf", a.n.LeafAddr().String(), foreign},
		{"route", addrA, none}, {"leaf", a.n.LeafAddr().String(), none},
	} {
		c, err := net.Dial("tcp", port.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if port.name == "leaf" { // INFO first on leaf links; TLS first on routes
			if info, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(info, "INFO ") {
				t.Fatalf("%s port: %q %v\n%s", port.name, info, err, logs.String())
			}
		}
		cfg := port.cfg.Clone()
		cfg.InsecureSkipVerify = true
		tc := tls.Client(c, cfg)
		herr := tc.Handshake()
		if herr == nil {
			// TLS 1.3: the server's refusal comes with the first read.
			tc.Write([]byte("CONNECT {}\r\nPING\r\n"))
			_, herr = tc.Read(make([]byte, 1))
		}
		c.Close()
		if herr == nil {
			t.Fatalf("%s port: the handshake of a peer with %d certificates of another CA succeeded", port.name, len(port.cfg.Certificates))
		}
		t.Logf("%s port: %v", port.name, herr)
	}
	eventually(t, 10*time.Second, func() error {
		l := logs.String()
		for _, want := range []string{"TLS route handshake error", "TLS leafnode handshake error"} {
			found := 0
			for _, line := range strings.Split(l, "\n") {
				if strings.Contains(line, want) && strings.Contains(line, "certificate") {
					found++
				}
			}
			if found < 2 {
				return &logMissing{want, l}
			}
		}
		return nil
	})
}

type logMissing struct{ what, log string }

func (e *logMissing) Error() string {
	return "not two log lines \"" + e.what + "\" naming the certificate:\n" + e.log
}
