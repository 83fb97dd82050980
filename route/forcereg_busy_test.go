package route_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A REGISTER with force_reregister (4d3110f) takes each callee it
// replaces off the registration on that callee's loop. While that loop
// was busy (here stalled) every such REGISTER posted a removal for each
// callee there, and one for itself back, without bound: the removals of
// wamp.registration.remove_callee are bounded (postRemoval, 8 MiB a loop),
// these were not. A session repeating the REGISTER for a registration of
// its own authid's 64 callees on the busy loop made the router hold ever
// more (20,000 REGISTERs: 40 MiB). The removals it posts now count in the
// loop's bound of waiting removals (past it the REGISTER is refused with
// wamp.error.unavailable before it does anything), and since the take-over
// is one step (TestForceReregisterHasNoGap) the first REGISTER takes the
// 64 callees off the registration at once: the repeats replace its own
// new callee, on its own loop, and post nothing more to the busy one.
func TestForceReregisterForBusyLoopBounded(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "extra", Authenticators: []route.Authenticator{extraAuth{}}}}, Shards: 2, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	e, err := loop.New(r, loop.Options{Listeners: []loop.Listener{{Addr: "127.0.0.1:0"}}, PingInterval: -1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Shutdown(ctx)
	})
	lr := &loopRouter{t: t, r: r, addr: e.Addrs()[0].String()}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var spare []*client.Session
	t.Cleanup(func() {
		for _, s := range spare {
			s.Close()
		}
	})
	dialOn := func(idx int) *client.Session {
		t.Helper()
		for {
			s, err := client.Dial(ctx, client.Config{URL: "rs://" + lr.addr, Realm: "extra", Serializer: proto.MsgPack,
				AuthID: "svc", AuthMethods: []string{"x-extra"}})
			if err != nil {
				t.Fatal(err)
			}
			spare = append(spare, s)
			if route.SessionShard(r, "extra", s.ID()) == idx {
				return s
			}
		}
	}
	const proc = "com.svc.rr"
	const callees = 64
	for range callees {
		if _, err := dialOn(1).Register(ctx, proc, func(context.Context, *client.Invocation) (*client.Result, error) {
			return &client.Result{Args: []any{"old"}}, nil
		}, &client.RegisterOptions{Invoke: "roundrobin"}); err != nil {
			t.Fatal(err)
		}
	}
	// The attacker: a RawSocket session of the same authid on loop 0
	// that writes its REGISTERs without waiting for their answers.
	var raw *rawJSON
	for raw == nil {
		c := dialRawJSON(t, lr.addr)
		c.write(`[1,"extra",{"authmethods":["x-extra"],"authid":"svc","roles":{"callee":{}}}]`)
		m := c.read()
		if m[0] != float64(proto.CodeWelcome) {
			t.Fatalf("HELLO answered %v", m)
		}
		if route.SessionShard(r, "extra", uint64(m[1].(float64))) == 0 {
			raw = c
		} else {
			c.c.Close()
		}
	}
	refusals := make(chan int, 1)
	go func() { // reads every answer, counting the refusals for the bound
		n := 0
		defer func() { refusals <- n }()
		for {
			var h [4]byte
			if _, err := io.ReadFull(raw.c, h[:]); err != nil {
				return
			}
			b := make([]byte, int(h[1])<<16|int(h[2])<<8|int(h[3]))
			if _, err := io.ReadFull(raw.c, b); err != nil {
				return
			}
			if strings.HasPrefix(string(b), "[8,64,") && strings.Contains(string(b), proto.URIUnavailable) {
				n++
			}
		}
	}()

	release := lr.stall(1)
	before := heapMiB()
	const n = 20000
	for i := 0; i < n; i += 500 {
		var batch []string
		for j := i; j < i+500; j++ {
			batch = append(batch, `[64,`+strconv.Itoa(j+1)+`,{"invoke":"roundrobin","force_reregister":true},"`+proc+`"]`)
		}
		raw.write(batch...)
	}
	// The last REGISTERs read: a call of loop 0's own answered after them.
	raw.write(`[48,1000000,{},"wamp.session.count",[]]`)
	time.Sleep(500 * time.Millisecond)
	held := heapMiB() - before
	raw.c.Close()
	refused := <-refusals
	release()
	t.Logf("%d REGISTERs with force_reregister of %d callees on a busy loop: %d refused unavailable, the router holds %.1f MiB more", n, callees, refused, held)
	if held > 16 {
		t.Fatalf("%d REGISTERs with force_reregister of %d callees on a busy loop: the router holds %.1f MiB more, want at most 16", n, callees, held)
	}
	forcer := dialOn(0)
	force := &client.RegisterOptions{Invoke: "roundrobin", Options: map[string]any{"force_reregister": true}}
	// Once the loop runs, a force_reregister takes the registration over.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		res, err := forcer.Call(ctx, proc, nil, nil, nil)
		if err == nil && res.Args[0] == "new" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the call 10 s after the loop ran again: %v %v, want the new callee's answer", res, err)
		}
		if _, err := forcer.Register(ctx, proc, func(context.Context, *client.Invocation) (*client.Result, error) {
			return &client.Result{Args: []any{"new"}}, nil
		}, force); err != nil && !strings.Contains(err.Error(), "already") {
			t.Logf("REGISTER again: %v", err)
		}
	}
}
