package client

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A router gone silent is noticed KeepAlive + KeepAliveTimeout after its
// last byte, as Config.KeepAlive says: the checks ran at a tick of half
// min(KeepAlive, KeepAliveTimeout), and a last byte half a tick after one
// was noticed up to half a tick late. The peer answers the first ping
// 0.5 s late (a tick of 1 s, with 2 + 2 s), then sends and reads nothing:
// the session ended 4.5 s after that answer.
func TestKeepAliveNoticesOnTime(t *testing.T) {
	const k = 2 * time.Second
	s, c := setup(t, "rs", proto.JSON, func(cfg *Config) { cfg.KeepAlive, cfg.KeepAliveTimeout = k, k })
	c.conn.SetReadDeadline(time.Now().Add(2 * k))
	var h [4]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil || h[0]&7 != rsFramePing {
		t.Fatalf("peer: read %v, %v; want the keepalive's ping", h, err)
	}
	p := make([]byte, int(h[3]))
	if _, err := io.ReadFull(c.br, p); err != nil {
		t.Fatal(err)
	}
	time.Sleep(k / 4)
	noErr(t, "pong", c.writeRS(rsFramePong, p))
	last := time.Now() // then nothing, and nothing read
	select {
	case <-s.Done():
	case <-time.After(2*k + wait):
		t.Fatal("the silent router was not noticed")
	}
	el := time.Since(last)
	if !errors.Is(s.Err(), ErrKeepAlive) || el > 2*k+k/8 {
		t.Fatalf("the session ended %v after the router's last byte (%v), with a keepalive of %v + %v: want ErrKeepAlive within %v",
			el.Round(time.Millisecond), s.Err(), k, k, 2*k)
	}
	t.Logf("noticed %v after the router's last byte", el.Round(time.Millisecond))
}
