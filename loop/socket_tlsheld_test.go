package loop

import (
	"crypto/tls"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// tls13Session dials a TLS 1.3 session (AES-128-GCM; rcvbuf as dialTCP) and returns the raw
// socket, the client's tls.Conn (for reading what the router sends) and a
// writer of the client's records.
func tls13Session(t *testing.T, cert *testCert, addr string, rcvbuf int) (net.Conn, *tls.Conn, *tls13Writer) {
	t.Helper()
	raw := dialTCP(t, addr, rcvbuf)
	var kl keyLog
	cc := cert.clientFor(tls.VersionTLS13)
	cc.KeyLogWriter = &kl
	tc := tls.Client(raw, cc)
	tc.SetDeadline(time.Now().Add(ioTimeout))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if cs := tc.ConnectionState().CipherSuite; cs != tls.TLS_AES_128_GCM_SHA256 {
		t.Skipf("suite %x", cs)
	}
	var secret []byte
	for _, line := range strings.Split(kl.String(), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "CLIENT_TRAFFIC_SECRET_0" {
			secret, _ = hex.DecodeString(f[2])
		}
	}
	w := &tls13Writer{}
	w.setSecret(secret)
	return raw, tc, w
}

// A TLS peer that sends, after its RawSocket handshake, a post-handshake
// handshake message longer than a KeyUpdate had crypto/tls keep it (c.hand)
// until it was whole, across read callbacks: up to 64 KiB per connection
// (a Certificate 256 KiB), counted nowhere. The review's probe: 24
// connections each sent 64 KiB of a KeyUpdate announcing 65,536 bytes;
// max_inbound_total 1 MiB counted 0 bytes, heap +2.4 MiB, none refused,
// none closed after 7 s. Now a message that announces or holds more than
// tlsPostHandshakeMax closes the connection (tls_error) as soon as it is
// read, and a KeyUpdate whose 5 bytes come in two records still works.
func TestTLSPostHandshakeMessageCounted(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	var logs logLines
	s := tlsServer(t, cert, false, func(o *Options, rc *route.Config) {
		o.MaxInboundTotal = 1 << 20
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		rc.HelloTimeout = time.Hour
	})
	session := func() (net.Conn, *tls.Conn, *tls13Writer) {
		raw, tc, w := tls13Session(t, cert, s.url, 0)
		if _, err := raw.Write(w.seal(23, rsHandshake(proto.JSON, 15))); err != nil {
			t.Fatal(err)
		}
		var rep [4]byte
		tc.SetReadDeadline(time.Now().Add(ioTimeout))
		if _, err := io.ReadFull(tc, rep[:]); err != nil || rep[0] != rawMagic {
			t.Fatalf("rawsocket handshake reply %x: %v", rep, err)
		}
		return raw, tc, w
	}
	// records seals msg's first sent bytes as handshake records.
	records := func(w *tls13Writer, msg []byte, sent int) []byte {
		var buf []byte
		for msg = msg[:sent]; len(msg) > 0; {
			k := min(len(msg), maxPlaintext)
			buf = append(buf, w.seal(22, msg[:k])...)
			msg = msg[k:]
		}
		return buf
	}
	message := func(typ byte, n int) []byte { // a header announcing n bytes, and n bytes
		return append([]byte{typ, byte(n >> 16), byte(n >> 8), byte(n)}, make([]byte, n)...)
	}
	cases := []struct {
		name string
		recs func(w *tls13Writer) []byte
	}{
		// The review's: 65,536 of the 65,540 bytes, in four full records.
		{"KeyUpdate 64 KiB", func(w *tls13Writer) []byte { return records(w, message(24, 65536), 65536) }},
		{"KeyUpdate header", func(w *tls13Writer) []byte { return records(w, message(24, 65536), 4) }},
		// crypto/tls takes a Certificate of up to 256 KiB after the handshake.
		{"Certificate 64 KiB", func(w *tls13Writer) []byte { return records(w, message(11, 200<<10), 65536) }},
		{"1,025 bytes", func(w *tls13Writer) []byte { return records(w, message(24, 1021), 1025) }},
	}
	before := s.e.Stats().Closes[CloseTLS]
	conns := make([]net.Conn, len(cases))
	for i, c := range cases {
		raw, _, w := session()
		conns[i] = raw
		if _, err := raw.Write(c.recs(w)); err != nil {
			t.Fatal(err)
		}
	}
	// A well-behaved KeyUpdate, its 5 bytes in two records, then a ping.
	raw, tc, w := session()
	if _, err := raw.Write(w.seal(22, []byte{24, 0, 0, 1})); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // read on its own
	buf := w.seal(22, []byte{0})      // update_not_requested
	w.setSecret(hkdfExpandLabel(w.secret, "traffic upd", 32))
	buf = append(buf, w.seal(23, []byte{1, 0, 0, 2, 'h', 'i'})...)
	if _, err := raw.Write(buf); err != nil {
		t.Fatal(err)
	}
	pong := make([]byte, 6)
	tc.SetReadDeadline(time.Now().Add(ioTimeout))
	if _, err := io.ReadFull(tc, pong); err != nil || string(pong) != "\x02\x00\x00\x02hi" {
		t.Fatalf("after a KeyUpdate in two records: pong %q, %v", pong, err)
	}

	deadline := time.Now().Add(3 * time.Second)
	for i, c := range conns {
		if closed, _ := closedWithin(c, time.Until(deadline)); !closed {
			st := s.e.Stats()
			t.Fatalf("%s: still open after 3 s; the router counts %d bytes held (budget %d), refused %d",
				cases[i].name, st.Inbound, st.InboundBudget, st.InboundRefused)
		}
	}
	eventually(t, ioTimeout, "the TLS closes counted", func() bool {
		return s.e.Stats().Closes[CloseTLS] == before+uint64(len(cases))
	})
	if line := logs.find("post-handshake"); !strings.Contains(line, `"reason":"tls_error"`) {
		t.Fatalf("close log line: %q", line)
	}
	eventually(t, ioTimeout, "nothing held", func() bool { return s.e.Stats().Inbound == 0 })
}

// tlsPlainPinned returns, over the TLS connections of every loop, the
// capacity of the plaintext buffers they hold and the inbound bytes the
// budget counts for them, and the loops' pool sizes.
func (e *Engine) tlsPlainPinned(t testing.TB) (capSum, heldSum, conns int, poolMax, keepMax int) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, ls := range e.allLoops() {
		wg.Add(1)
		if err := ls.Execute(func() {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			poolMax, keepMax = ls.poolMax, ls.keepMax
			for _, cn := range ls.conns {
				if cn.tls != nil && cn.tls.plain.b != nil {
					capSum += cap(cn.tls.plain.b)
					heldSum += int(cn.held)
					conns++
				}
			}
		}); err != nil {
			wg.Done()
		}
	}
	wg.Wait()
	return
}

// A TLS connection's decrypted input lives in a buffer borrowed from the
// loop's output pool (tlsPlain.space: getBuf), whose buffers are whatever
// output rounds grew them to (up to keepMax, 512 KiB by default). It was
// kept while it held any byte, and the budget counted the bytes, not the
// buffer: a client that left one byte of a WebSocket frame pending pinned
// a pooled buffer of up to 512 KiB for 1 counted byte (the review's probe:
// 72 connections after three 400 KiB fan-outs pinned 16 MiB, counted as
// 72 bytes against a 1 MiB max_inbound_total). Now the byte is moved to a
// buffer of its size at the end of the read callback (a pooled buffer at
// most twice it and 16 KiB is kept instead), and the budget counts the
// buffer's capacity.
func TestTLSPlainBufferPinsPooledBuffer(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	s := tlsServer(t, cert, false, func(o *Options, rc *route.Config) {
		o.MaxInboundTotal = 1 << 20
		rc.HelloTimeout = time.Hour
	})
	topic := "com.tls.pin"
	var subs []*wamp
	for i := range 4 {
		tc, _ := tlsDial(t, s.url, cert.clientFor(0))
		tc.SetDeadline(time.Time{})
		p := newWAMP(t, rawPeerOnConn(t, tc, []string{"ws", "rs"}[i%2], proto.MsgPack).mc, proto.MsgPack)
		p.join()
		p.subscribe(topic)
		subs = append(subs, p)
	}
	tc, _ := tlsDial(t, s.url, cert.clientFor(0))
	tc.SetDeadline(time.Time{})
	pub := rawPeerOnConn(t, tc, "rs", proto.MsgPack)
	pw := newWAMP(t, pub.mc, proto.MsgPack)
	pw.join()
	// The fan-out grows output buffers of 400 KiB, which go to the pool.
	pub.mc.send(pw.publishMsg(pw.nextReq(), topic, []any{0, strings.Repeat("x", 400<<10)}, true))
	pw.expect(proto.CodePublished)
	for _, p := range subs {
		if got := eventSeq(t, p.next()); got != 0 {
			t.Fatalf("event %d, want 0", got)
		}
	}
	const attackers = 8
	for range attackers {
		c, _ := tlsDial(t, s.url, cert.clientFor(0))
		req := append(wsUpgradeRequest("/ws", "wamp.2.msgpack"), 0x82) // and the first byte of a frame
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
	}
	var pinned, held, n, poolMax, keepMax int
	eventually(t, ioTimeout, "the attackers' bytes read", func() bool {
		pinned, held, n, poolMax, keepMax = s.e.tlsPlainPinned(t)
		return n >= attackers
	})
	st := s.e.Stats()
	t.Logf("%d TLS connections hold plaintext buffers of %d bytes in all; the budget counts %d bytes for them (engine inbound %d of %d, refused %d); pool %d KiB a loop, buffers kept up to %d KiB",
		n, pinned, held, st.Inbound, st.InboundBudget, st.InboundRefused, poolMax>>10, keepMax>>10)
	if pinned > held || pinned > n*(2*1+tlsPlainSlack) {
		t.Fatalf("%d KiB of plaintext buffers pinned by %d one-byte partial frames, %d bytes counted against a %d KiB inbound budget",
			pinned>>10, n, held, st.InboundBudget>>10)
	}
}
