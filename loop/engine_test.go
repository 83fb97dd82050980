package loop

import (
	"context"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// testServer runs a real router and engine on a loopback port.
type testServer struct {
	t   *testing.T
	r   *route.Router
	e   *Engine
	url string // host:port
}

func startServer(t *testing.T, mutate func(*Options, *route.Config)) *testServer {
	t.Helper()
	rc := route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}, Shards: 2}
	o := Options{Listeners: []Listener{{Addr: "127.0.0.1:0"}}, PingInterval: -1}
	if mutate != nil {
		mutate(&o, &rc)
	}
	r, err := route.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(r, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	s := &testServer{t: t, r: r, e: e, url: e.Addrs()[0].String()}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

func (s *testServer) dial(scheme string, ser proto.Serializer) *client.Session {
	s.t.Helper()
	url := scheme + "://" + s.url
	if scheme == "ws" {
		url += "/ws"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{URL: url, Realm: "realm1", Serializer: ser})
	if err != nil {
		s.t.Fatalf("dial %s %s: %v", url, ser, err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

func TestEngineRPCAndPubSubAcrossTransports(t *testing.T) {
	s := startServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	callee := s.dial("rs", proto.MsgPack)
	_, err := callee.Register(ctx, "com.echo", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args, Kwargs: inv.Kwargs}, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan *client.Event, 16)
	sub := s.dial("ws", proto.CBOR)
	if _, err := sub.Subscribe(ctx, "com.news", func(ev *client.Event) { events <- ev }, nil); err != nil {
		t.Fatal(err)
	}
	for _, scheme := range []string{"ws", "rs"} {
		for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
			c := s.dial(scheme, ser)
			args := []any{"hello", int64(42), []byte{0, 1, 2}}
			res, err := c.Call(ctx, "com.echo", args, map[string]any{"k": "v"}, nil)
			if err != nil {
				t.Fatalf("%s %s: %v", scheme, ser, err)
			}
			if !reflect.DeepEqual(res.Args, args) || res.Kwargs["k"] != "v" {
				t.Fatalf("%s %s: %v %v", scheme, ser, res.Args, res.Kwargs)
			}
			if err := c.Publish(ctx, "com.news", []any{scheme + ser.String()}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
				t.Fatal(err)
			}
			select {
			case ev := <-events:
				if ev.Args[0] != scheme+ser.String() {
					t.Fatalf("event %v", ev.Args)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no event")
			}
		}
	}
}

func TestEngineHealthz(t *testing.T) {
	s := startServer(t, nil)
	c, err := net.Dial("tcp", s.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	n, _ := c.Read(buf)
	if got := string(buf[:n]); len(got) < 15 || got[:15] != "HTTP/1.1 200 OK" {
		t.Fatalf("healthz: %q", got)
	}
}
