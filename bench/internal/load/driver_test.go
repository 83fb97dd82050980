package load

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/bench/internal/wire"
	"github.com/edgewamp/edgewamp/proto"
)

// The event-loop driver keeps a frame that arrives in pieces with nothing
// complete in the first read (gnet's Discard(0) would drop the buffer): a
// fake router answers the RawSocket handshake, then writes WELCOME in two
// parts with a pause between them.
func TestLoopDriverSplitFrame(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		hs := make([]byte, 4)
		if _, err := c.Read(hs); err != nil {
			return
		}
		c.Write([]byte{wire.RawMagic, 0xf0 | byte(proto.MsgPack), 0, 0})
		welcome, _ := proto.Append(nil, proto.MsgPack, &proto.Message{Type: proto.CodeWelcome, ID: 7})
		f := wire.Framer{Ser: proto.MsgPack}
		frame := f.Append(nil, welcome)
		time.Sleep(20 * time.Millisecond) // let the handshake reply be read alone
		c.Write(frame[:3])
		time.Sleep(50 * time.Millisecond)
		c.Write(frame[3:])
		time.Sleep(time.Second)
	}()
	cfg := &Config{Parallel: 1}
	ep, err := newEndpoint("rs://"+ln.Addr().String(), proto.MsgPack, "realm1", "", "")
	if err != nil {
		t.Fatal(err)
	}
	lc, err := newLoopClient(1)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.stop()
	tr := newTracker(1)
	s := newSess(ep, &idler{tr: tr})
	newConnector(cfg, ep, lc).open([]*sess{s}, tr)
	if !tr.wait(3*time.Second) || tr.ok.Load() != 1 {
		t.Fatalf("not joined: ok %d failed %d (%s)", tr.ok.Load(), tr.fail.Load(), tr.reasonString())
	}
}

// -spin belongs to the uring driver: with another, Run refuses it rather
// than measure with a tool that sleeps after all.
func TestSpinNeedsURing(t *testing.T) {
	for _, d := range []string{"", "gnet", "goroutine"} {
		_, err := Run(Config{Scenario: "rpc", URL: "ws://127.0.0.1:1/ws", Driver: d, Spin: true})
		if err == nil || !strings.Contains(err.Error(), "-spin needs -driver uring") {
			t.Errorf("driver %q with -spin: %v", d, err)
		}
	}
}
