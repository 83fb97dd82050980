package client

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// A "router" that answers the WebSocket upgrade with a status line (or a
// header line) that never ends: the client must stop reading it after a
// bound, not keep it all in memory until DialTimeout (gobwas/ws appends
// the pieces of a line without limit).
func TestWebSocketUpgradeResponseBounded(t *testing.T) {
	for _, tc := range []struct{ name, head string }{
		{"status line", "HTTP/1.1 101 "},
		{"header line", "HTTP/1.1 101 Switching Protocols\r\nX-Filler: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			noErr(t, "listen", err)
			defer ln.Close()
			const most = 8 << 20 // the server stops there and waits
			wrote := make(chan int, 1)
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					wrote <- 0
					return
				}
				defer conn.Close()
				http.ReadRequest(bufio.NewReader(conn))
				n, _ := conn.Write([]byte(tc.head))
				chunk := []byte(strings.Repeat("a", 64<<10))
				for n < most {
					k, err := conn.Write(chunk)
					n += k
					if err != nil {
						break
					}
				}
				wrote <- n
				conn.SetReadDeadline(time.Now().Add(wait))
				conn.Read(make([]byte, 1)) // until the client closes
			}()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err = Dial(context.Background(), Config{URL: "ws://" + ln.Addr().String() + "/ws", Realm: "realm1", DialTimeout: time.Second})
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			n := <-wrote
			if err == nil {
				t.Fatal("Dial succeeded")
			}
			t.Logf("Dial: %v after %v; the server wrote %d KiB; %d KiB allocated", err, took.Round(time.Millisecond), n>>10, alloc>>10)
			var ne net.Error
			if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("Dial waited for its DialTimeout (%v) reading an upgrade answer without end (the server wrote %d KiB, all of it taken in)", took.Round(time.Millisecond), n>>10)
			}
			if n >= most || alloc > 4<<20 {
				t.Errorf("the client took %d KiB of an upgrade answer in (the server wrote %d KiB), allocating %d KiB", n>>10, n>>10, alloc>>10)
			}
		})
	}
}
