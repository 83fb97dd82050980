package edge

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// One peer that varies what the server says about it (the user name of
// each refused CONNECT, the bytes of a parser error) took the whole
// window of natsLogLines, and every other warning of the server, another
// peer's refusal or the server's own, was withheld for as long as it
// kept connecting: one address that reaches a leaf or route port, without
// any credential, kept the operator from hearing of anything else. Now
// one address writes at most natsLogPerPeer lines per window, and the
// peers' lines together leave natsLogServer lines of the window to the
// server's own.
func TestNatsWarningsOnePeerCannotSilenceOthers(t *testing.T) {
	t.Parallel()
	logs := &lockedBuf{}
	hub := startNode(t, "hub", func(o *Options) {
		o.Leaf.Listen, o.Token = "127.0.0.1:0", "s3cret"
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	addr := hub.n.LeafAddr().String()
	connect := func(from, user string) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		br.ReadString('\n') // INFO
		fmt.Fprintf(c, "CONNECT {\"user\":%q,\"pass\":\"wrong\"}\r\nPING\r\n", user)
		br.ReadString('\n') // -ERR
	}
	const flood = 3 * natsLogLines
	for i := range flood {
		connect("127.0.0.2", fmt.Sprintf("scan%d", i))
	}
	connect("127.0.0.3", "edgewamp")
	time.Sleep(300 * time.Millisecond) // the server logs as it closes each connection
	l := logs.String()
	fromFlood := strings.Count(l, "127.0.0.2:")
	if !strings.Contains(l, `127.0.0.3:`) {
		t.Fatalf("the second peer's refusal was withheld behind the first peer's %d lines (of %d connections):\n%s", fromFlood, flood, l)
	}
	if fromFlood == 0 || fromFlood > natsLogPerPeer {
		t.Fatalf("%d lines about the flooding peer, want 1 to %d:\n%s", fromFlood, natsLogPerPeer, l)
	}
	t.Logf("%d lines about the peer's %d connections, the other peer's refusal written", fromFlood, flood)
}

// The limiter: one address's varied texts take natsLogPerPeer lines of
// the window; other addresses', up to natsLogLines-natsLogServer lines in
// all; the server's own lines (no connection) the rest of the window.
func TestNatsLogLimitPerPeer(t *testing.T) {
	var lim natsLogLimit
	t0 := time.Unix(1000, 0)
	allow := func(msg string) bool {
		ok, _ := lim.allow(msg, t0)
		return ok
	}
	written := 0
	for i := range 50 {
		if allow(fmt.Sprintf("192.0.2.9:%d - lid:%d - authentication error - User \"u%d\"", 40000+i, i, i)) {
			written++
		}
	}
	if written != natsLogPerPeer {
		t.Fatalf("one address wrote %d of its 50 texts, want %d", written, natsLogPerPeer)
	}
	// IPv6: one /64 is one peer.
	written = 0
	for i := range 50 {
		if allow(fmt.Sprintf("[2001:db8::%x]:5 - rid:%d - parser ERROR %d", i+1, i, i)) {
			written++
		}
	}
	if written != natsLogPerPeer {
		t.Fatalf("one /64 wrote %d of its 50 texts, want %d", written, natsLogPerPeer)
	}
	written = 0
	for i := range 50 {
		if allow(fmt.Sprintf("198.51.100.%d:5 - lid:%d - TLS leafnode handshake error", i+1, i)) {
			written++
		}
	}
	peers := natsLogLines - natsLogServer
	if written != 1 {
		t.Fatalf("one text from 50 addresses written %d times, want once", written)
	}
	for i := range 50 {
		allow(fmt.Sprintf("203.0.113.%d:5 - lid:%d - authentication error - User \"v%d\"", i+1, i, i))
	}
	written = 0
	for i := range 2 * natsLogServer {
		if allow(fmt.Sprintf("JetStream warning %d", i)) {
			written++
		}
	}
	if written != natsLogServer {
		t.Fatalf("the server wrote %d of its lines after the peers' %d, want %d", written, peers, natsLogServer)
	}
}
