package client

import (
	"bufio"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// With the keepalive on, a large write the router takes slowly is not
// taken for a dead link (TestKeepAliveDuringSlowWrite), but
// Config.WriteTimeout still bounded the whole write: a message that took
// longer than it to go out over a slow link (16 MiB over a 1 Mbit/s uplink
// of an edge device: 134 s against the default 10 s) ended the session
// with an i/o timeout, cut mid-message, however steadily the router took
// it. With the keepalive on the write goes out 16 KiB at a time, and
// WriteTimeout now bounds each of those (the time the link takes nothing),
// as the keepalive bounds the router's silence; without it, the whole
// write, as before.
func TestWriteTimeoutBoundsStallNotSlowWrite(t *testing.T) {
	// Wide margins for a loaded machine: a stall of the peer's reader
	// under 2 s (keepalive) and 800 ms (a chunk) is not taken for a dead
	// link. With keepAlive's 100 + 100 ms and 400 ms, about one run in
	// 20 under -race on a loaded 2-core machine ended the session.
	const writeTimeout = 800 * time.Millisecond
	s, c := setup(t, "rs", proto.JSON, func(cfg *Config) {
		cfg.KeepAlive, cfg.KeepAliveTimeout, cfg.WriteTimeout = time.Second, time.Second, writeTimeout
	})
	noErr(t, "SetWriteBuffer", s.tr.(*rawSocket).conn.(*net.TCPConn).SetWriteBuffer(64<<10))
	noErr(t, "SetReadBuffer", c.conn.(*net.TCPConn).SetReadBuffer(64<<10))
	var quiet atomic.Bool
	c.br = bufio.NewReaderSize(&pacedReader{r: c.conn, first: func() { quiet.Store(true) }}, 64<<10)
	stopChatter := chatter(c, func() bool { return !quiet.Load() })
	args := c.raw([]any{strings.Repeat("x", 8<<20)}) // 1.25 s at least at the peer's 64 KiB per 10 ms
	var took time.Duration
	pub := goDo(func() (struct{}, error) {
		start := time.Now()
		err := s.SendRaw(&proto.Message{Type: proto.CodePublish, Request: 1, URI: []byte("com.example.bulk"), Args: args})
		took = time.Since(start)
		quiet.Store(false)
		return struct{}{}, err
	})
	c.expect(proto.CodePublish)
	_, err := pub.wait(t)
	stopChatter()
	if took <= writeTimeout {
		t.Skipf("the write took %v, not more than WriteTimeout: nothing shown", took)
	}
	noErr(t, "the publication", err)
	noErr(t, "session", s.Err())
	t.Logf("the client's write took %v, WriteTimeout %v", took.Round(time.Millisecond), writeTimeout)
}
