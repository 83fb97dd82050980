package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestGatewayEventLoop: by default the event loops serve the gateway's
// port (gateway.event_loop), and gateway.event_loop: false gives it to
// net/http alone; a bridge call answers the same either way, from Go's
// HTTP client and from curl with a body large enough for curl to send
// Expect: 100-continue (which the loops hand to net/http).
func TestGatewayEventLoop(t *testing.T) {
	big := strings.Repeat("x", 4<<10)
	for _, tc := range []struct {
		name, yaml string
		lane       bool
	}{
		{"default", "", true},
		{"event_loop false", "gateway:\n  listen: 127.0.0.1:0\n  event_loop: false\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			if tc.yaml != "" {
				f := filepath.Join(t.TempDir(), "edgewamp.yaml")
				os.WriteFile(f, []byte(tc.yaml), 0o600)
				args = append(args, "-config", f)
			}
			g := startGatewayRouter(t, args...)
			if want := fmt.Sprintf("event_loop=%v", tc.lane); !strings.Contains(g.router.logs(), want) {
				t.Fatalf("no %s in the gateway's log line:\n%s", want, g.router.logs())
			}
			callee := g.router.dial("rs://"+g.router.addr, proto.MsgPack)
			defer callee.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := callee.Register(ctx, "com.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
				return &client.Result{Args: inv.Args}, nil
			}, nil); err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				r, body := g.do(t, "POST", "/wamp/realm1/call/com.echo", fmt.Sprintf(`{"args":[%d]}`, i))
				if want := fmt.Sprintf(`{"args":[%d],"kwargs":{}}`, i); r.StatusCode != 200 || string(body) != want {
					t.Fatalf("call %d: %d %s", i, r.StatusCode, body)
				}
			}
			out, err := exec.CommandContext(ctx, "curl", "-sS", "-X", "POST", g.base+"/wamp/realm1/call/com.echo",
				"-H", "Content-Type: application/json", "-d", `{"args":["`+big+`"]}`).CombinedOutput()
			if err != nil || string(out) != `{"args":["`+big+`"],"kwargs":{}}` {
				t.Fatalf("curl: %v %.200s", err, out)
			}
			r, body := g.do(t, "GET", "/healthz", "")
			if r.StatusCode != 200 || !strings.Contains(string(body), "ok") {
				t.Fatalf("healthz: %d %s", r.StatusCode, body)
			}
		})
	}
}
