package edge

import (
	"bufio"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// A peer without the mesh's credential that connects to a leaf or route
// port over and over (a scanner, a misconfigured node, an attacker) makes
// the embedded server log a warning per connection ("authentication
// error", "TLS leafnode handshake error"); the node writes at most
// natsLogLines of the server's lines per natsLogEvery, each text at most
// once (the connection's address and id left out of the comparison), and
// the next line written says how many were withheld. Before, every
// connection wrote a WARN line: 160 connections, 160 lines, at whatever
// rate the peer connects.
func TestNatsWarningsRateLimited(t *testing.T) {
	t.Parallel()
	logs := &lockedBuf{}
	hub := startNode(t, "hub", func(o *Options) {
		o.Leaf.Listen, o.Cluster.Listen, o.Token = "127.0.0.1:0", "127.0.0.1:0", "s3cret"
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	const rounds = 40
	for _, addr := range []string{hub.n.LeafAddr().String(), hub.n.ClusterAddr().String()} {
		for i := 0; i < rounds; i++ {
			for _, payload := range []string{`CONNECT {"user":"edgewamp","pass":"wrong"}` + "\r\nPING\r\n", `CONNECT {"user":"u` + strings.Repeat("x", i) + `","pass":"wrong"}` + "\r\nPING\r\n"} {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				br := bufio.NewReader(c)
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				br.ReadString('\n') // INFO
				c.Write([]byte(payload))
				br.ReadString('\n') // -ERR, or the auth timeout's
				c.Close()
			}
		}
	}
	// The server logs as it closes each connection, possibly after the
	// peer's close was read here.
	time.Sleep(300 * time.Millisecond)
	l := logs.String()
	warns := strings.Count(l, "level=WARN")
	if warns == 0 || warns > natsLogLines || strings.Count(l, `lid:`) == 0 {
		t.Fatalf("%d WARN lines for %d connections without the credential, want 1 to %d:\n%s", warns, 2*2*rounds, natsLogLines, l)
	}
	if n := strings.Count(l, `- lid:`) + strings.Count(l, `- rid:`); n > natsLogLines {
		t.Fatalf("%d lines of the server's", n)
	}
	t.Logf("%d WARN lines for %d connections", warns, 2*2*rounds)
}

// The limiter itself: each text once per window, at most natsLogLines
// lines per window, and the line after a withheld one carries the count.
func TestNatsLogLimit(t *testing.T) {
	var lim natsLogLimit
	t0 := time.Unix(1000, 0)
	key := func(i int) string {
		return "127.0.0.1:5 - lid:" + strings.Repeat("9", i%5+1) + " - authentication error"
	}
	if ok, _ := lim.allow(natsLogKey(key(0)), t0); !ok {
		t.Fatal("the first line withheld")
	}
	for i := 1; i < 50; i++ {
		if ok, _ := lim.allow(natsLogKey(key(i)), t0.Add(time.Duration(i)*time.Millisecond)); ok {
			t.Fatalf("line %d of one text written in the window", i)
		}
	}
	written := 1
	for i := 0; i < 100; i++ {
		ok, withheld := lim.allow(natsLogKey("text "+strings.Repeat("y", i)), t0.Add(time.Second))
		if ok {
			written++
		}
		if i == 0 && (!ok || withheld != 49) {
			t.Fatalf("the second text: written %v, withheld %d, want 49", ok, withheld)
		}
	}
	if written != natsLogLines {
		t.Fatalf("%d lines written in one window, want %d", written, natsLogLines)
	}
	ok, withheld := lim.allow(natsLogKey(key(3)), t0.Add(natsLogEvery))
	if want := 100 - (natsLogLines - 1); !ok || withheld != want {
		t.Fatalf("after the window: written %v, withheld %d, want %d", ok, withheld, want)
	}
}
