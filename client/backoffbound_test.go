package client

import (
	"context"
	"net"
	"testing"
	"time"
)

// ReconnectConfig says MinBackoff and MaxBackoff bound the wait between
// attempts, but the ±25% jitter was added after the bounds: the wait went
// from 0.75 × MinBackoff to 1.25 × MaxBackoff (an operator's MinBackoff,
// set for a router's limit on connection attempts, broken by a quarter).
// A router that accepts and closes every connection at once is redialled
// with MinBackoff = MaxBackoff = 200 ms: no two attempts may come closer
// than 200 ms (load only makes them later).
func TestReconnectWaitWithinBackoffBounds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	noErr(t, "Listen", err)
	defer ln.Close()
	const backoff, attempts = 200 * time.Millisecond, 8
	times := make(chan time.Time, attempts+4)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			times <- time.Now()
			conn.Close()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	connected := goDo(func() (*Client, error) {
		return Connect(ctx, Config{URL: "rs://" + ln.Addr().String(), Realm: "realm1", DialTimeout: wait},
			ReconnectConfig{MinBackoff: backoff, MaxBackoff: backoff})
	})
	var last time.Time
	for i := range attempts {
		select {
		case at := <-times:
			if i > 0 && at.Sub(last) < backoff-5*time.Millisecond {
				cancel()
				connected.wait(t)
				t.Fatalf("attempt %d came %v after the one before, MinBackoff = MaxBackoff = %v", i+1, at.Sub(last).Round(time.Millisecond), backoff)
			}
			last = at
		case <-time.After(wait):
			t.Fatalf("attempt %d did not come", i+1)
		}
	}
	cancel()
	if _, err := connected.wait(t); err == nil {
		t.Fatal("Connect to a router that closes every connection succeeded")
	}
}
