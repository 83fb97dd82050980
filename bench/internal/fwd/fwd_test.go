package fwd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/bench/internal/wire"
	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/loop/uring"
	"github.com/edgewamp/edgewamp/proto"
)

// The forwarder speaks the router's wire: the project's own client (an
// independent implementation of framing and codecs) calls and publishes
// through it over every transport × serializer pair, mixed.
func TestForwarderWithClient(t *testing.T) {
	for _, mode := range []string{"off", "on"} {
		for _, fp := range []FlushPolicy{FlushAdaptive, FlushRound, FlushTraffic} {
			t.Run(fmt.Sprint("io_uring=", mode, "/flush=", fp), func(t *testing.T) {
				forwarderWithClient(t, mode, fp)
			})
		}
	}
}

func forwarderWithClient(t *testing.T, mode string, fp FlushPolicy) {
	if mode == "on" {
		if err := uring.Probe(); err != nil {
			t.Skipf("io_uring unavailable: %v", err)
		}
	}
	s, err := Start(Options{Loops: 2, Flush: fp, IOUring: mode})
	if err != nil {
		t.Fatal(err)
	}
	if path, _ := s.SendPath(); (mode == "on") != (path == "io_uring") {
		t.Fatalf("io_uring %s: send path %s", mode, path)
	}
	defer s.Stop(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr := s.Addr().String()
	urls := []string{"ws://" + addr + "/ws", "rs://" + addr}
	sers := []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR}
	dial := func(i int) *client.Session {
		t.Helper()
		cs, err := client.Dial(ctx, client.Config{URL: urls[i%2], Realm: "realm1", Serializer: sers[i%3]})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cs.Close() })
		return cs
	}
	callee := dial(0)
	if _, err := callee.Register(ctx, "com.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args, Kwargs: inv.Kwargs}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 16)
	for i := 1; i <= 3; i++ {
		sub := dial(i)
		if _, err := sub.Subscribe(ctx, "com.news", func(e *client.Event) { got <- fmt.Sprint(e.Args...) }, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 6; i++ {
		caller := dial(i)
		res, err := caller.Call(ctx, "com.echo", []any{"hi", int64(i)}, map[string]any{"k": "v"}, nil)
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
		if fmt.Sprint(res.Args...) != fmt.Sprint("hi", i) || res.Kwargs["k"] != "v" {
			t.Fatalf("caller %d: result %v %v", i, res.Args, res.Kwargs)
		}
	}
	if _, err := dial(4).Call(ctx, "com.nothing", nil, nil, nil); err == nil {
		t.Fatal("call to an unregistered procedure succeeded")
	}
	pub := dial(5)
	if err := pub.Publish(ctx, "com.news", []any{"ev", 1}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		select {
		case e := <-got:
			if e != "ev1" {
				t.Fatalf("event %q", e)
			}
		case <-ctx.Done():
			t.Fatalf("%d of 3 events", i)
		}
	}
	if st := s.Stats(); (mode == "on") != (st.RingSends > 0) {
		t.Fatalf("io_uring %s: %d ring sends", mode, st.RingSends)
	}
}

// A frame that arrives in pieces, with nothing complete in the first
// read, must be kept (gnet's Discard(0) would drop the buffer): HELLO is
// written in two parts with a pause between them.
func TestForwarderSplitFrame(t *testing.T) {
	s, err := Start(Options{Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write(wire.AppendUpgradeRequest(nil, "x", "/ws", "dGhlIHNhbXBsZSBub25jZQ==", proto.JSON))
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	hello, _ := proto.Append(nil, proto.JSON, &proto.Message{Type: proto.CodeHello, URI: []byte("realm1"), Dict: proto.Raw{Ser: proto.JSON, B: []byte(`{"roles":{"caller":{}}}`)}})
	mask := [4]byte{1, 2, 3, 4}
	f := wire.Framer{WS: true, Ser: proto.JSON, Mask: &mask}
	frame := f.Append(nil, hello)
	for _, part := range [][]byte{frame[:5], frame[5:]} {
		c.Write(part)
		time.Sleep(50 * time.Millisecond)
	}
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil {
		t.Fatalf("no WELCOME: %v", err)
	}
	body := make([]byte, hdr[1]&0x7f)
	io.ReadFull(br, body)
	if typ, _, _, err := wire.Head(proto.JSON, body); err != nil || typ != proto.CodeWelcome {
		t.Fatalf("got %v %v: %q", typ, err, body)
	}
}
