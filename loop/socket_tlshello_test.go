package loop

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/route"
)

// helloSplitConn sends a TLS client's ClientHello record as two records,
// its first bytes, then, once release is closed, the rest; everything else
// as it comes.
type helloSplitConn struct {
	net.Conn
	release <-chan struct{}
	done    bool
}

func (c *helloSplitConn) Write(p []byte) (int, error) {
	if c.done || len(p) < recordHeaderLen+16 || p[0] != recordTypeHandshake {
		return c.Conn.Write(p)
	}
	c.done = true
	body := p[recordHeaderLen:]
	rec := func(b []byte) []byte {
		return append([]byte{recordTypeHandshake, p[1], p[2], byte(len(b) >> 8), byte(len(b))}, b...)
	}
	if _, err := c.Conn.Write(rec(body[:10])); err != nil {
		return 0, err
	}
	<-c.release
	if _, err := c.Conn.Write(rec(body[10:])); err != nil {
		return 0, err
	}
	return len(p), nil
}

// README: "a connection that has not sent a whole ClientHello costs no
// goroutine". A handshake started once the client's first record was whole,
// and a ClientHello may span records: a client that sent the first 10 bytes
// of one in a record of their own, then nothing, held a handshake
// goroutine until handshake_timeout, so that two such connections took a
// pool of two and a good client's handshake waited behind them. The
// handshake now starts once the ClientHello is whole, however many records
// carry it; a ClientHello split in two records still completes.
func TestTLSPartialClientHelloHoldsNoGoroutine(t *testing.T) {
	cert := newTestCert(t)
	s := tlsServer(t, cert, false, func(o *Options, _ *route.Config) {
		o.MaxTLSHandshakes = 2
		o.HandshakeTimeout = time.Minute
	})
	release := make(chan struct{})
	split := make(chan error, 2)
	for range 2 {
		raw := dialTCP(t, s.url, 0)
		tc := tls.Client(&helloSplitConn{Conn: raw, release: release}, cert.clientFor(0))
		tc.SetDeadline(time.Now().Add(ioTimeout))
		go func() { split <- tc.Handshake() }()
	}
	time.Sleep(300 * time.Millisecond) // the first records are in
	st := s.e.Stats()
	t.Logf("two ClientHellos cut after their first record: %d handshakes running, %d waiting", st.TLSHandshakes, st.TLSHandshakesQueued)
	// A good client is served at once.
	raw := dialTCP(t, s.url, 0)
	tc := tls.Client(raw, cert.clientFor(0))
	tc.SetDeadline(time.Now().Add(2 * time.Second))
	start := time.Now()
	if err := tc.Handshake(); err != nil {
		close(release)
		t.Fatalf("a whole ClientHello behind two partial ones: %v after %v (%d handshakes running, %d waiting)",
			err, time.Since(start).Round(time.Millisecond), st.TLSHandshakes, st.TLSHandshakesQueued)
	}
	tc.Close()
	if st.TLSHandshakes != 0 || st.TLSHandshakesQueued != 0 {
		t.Fatalf("partial ClientHellos hold %d handshakes running and %d waiting", st.TLSHandshakes, st.TLSHandshakesQueued)
	}
	// The rest of each ClientHello: the handshakes run and complete.
	close(release)
	for range 2 {
		if err := <-split; err != nil {
			t.Fatalf("a ClientHello in two records: %v", err)
		}
	}
}
