package edge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/gateway"
	"github.com/edgewamp/edgewamp/proto"
)

// TestDrainLetsGatewayRequestInProgressCall: an HTTP call the gateway of
// a draining node A took before the stop, whose WAMP CALL is made only
// once its body is in (or its credentials checked, or its pooled session
// opened), reaches the callee on node B and gets its answer, as cmd
// stops a node: the gateway's Drain beside the router's, which ends at
// once (nothing in progress). Before, the router's drain took no new call
// once what was in progress at its start had ended (at its first count,
// here), and the gateway's request got 503 no_available_callee "it takes
// no new calls", though the gateway lets its requests in progress finish
// and the router lets them open sessions for it (3eeb8a5).
func TestDrainLetsGatewayRequestInProgressCall(t *testing.T) {
	t.Parallel()
	ns := cluster(t, "a", "b")
	a, b := ns[0], ns[1]
	ctx := ctxT(t, 30*time.Second)
	calleeB := b.dial(b.rs(), proto.MsgPack)
	if _, err := calleeB.Register(ctx, "com.b.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: append([]any{"B"}, inv.Args...)}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Options{Addr: "127.0.0.1:0", Router: a.r, Logger: testLogger(t),
		Realms: []gateway.RealmAccess{{Name: "realm1", Bridge: true, Anonymous: true, AnonymousRole: "anonymous"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gw.Shutdown(sctx)
	})
	url := "http://" + gw.Addr().String() + "/wamp/realm1/call/com.b.echo"
	hc := &http.Client{Timeout: 20 * time.Second}
	call := func(body io.Reader) (int, string, error) {
		resp, err := hc.Post(url, "application/json", body)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	eventually(t, 15*time.Second, func() error { // B's registration known on A
		st, body, err := call(strings.NewReader(`{"args":[0]}`))
		if err != nil || st != http.StatusOK {
			return errors.New("the gateway's call of com.b.echo: " + body)
		}
		return nil
	})
	// A request in progress: its headers in, the gateway reading its body
	// (its 100 Continue sent), the body still to come.
	conn, err := net.Dial("tcp", gw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(25 * time.Second))
	const body = `{"args":[1]}`
	if _, err := fmt.Fprintf(conn, "POST /wamp/realm1/call/com.b.echo HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", gw.Addr(), len(body)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	cont, err := http.ReadResponse(br, nil)
	if err != nil || cont.StatusCode != http.StatusContinue {
		t.Fatalf("want 100 Continue: %v %v", cont, err)
	}
	// The stop, as cmd runs it.
	gwDrained := make(chan error, 1)
	go func() {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		gwDrained <- gw.Drain(dctx)
	}()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := a.eng.Drain(dctx); err != nil {
		t.Fatalf("A's drain with nothing in progress: %v", err)
	}
	if _, err := conn.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to the gateway's request in progress: %v", err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(answer), `"B"`) {
		t.Fatalf("an HTTP call taken before the drain, its CALL made during it: %d %s, want 200 with B's answer", resp.StatusCode, answer)
	}
	if err := <-gwDrained; err != nil {
		t.Fatalf("the gateway's drain: %v", err)
	}
}
