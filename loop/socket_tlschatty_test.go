package loop

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// crypto/tls keeps the record buffer (c.rawInput) its largest record grew,
// about 18 KiB after a full 16 KiB record, counted in no budget. The scan
// released it only on a connection that received nothing for a whole
// scan period (tls.go: idle), so a client that sent one full-size record
// and then a small one at least once a second (a device publishing twice
// a second after one large upload) kept it for as long as it chatted:
// 10 such connections held 184,320 bytes of crypto/tls buffers for as
// long as the test ran, none of it counted in max_inbound_total. Now the
// scan releases buffers over tlsTrimActive on a connection that is not
// idle too, and a small record grows them back to about its size.
func TestTLSChattyConnectionReleasesLargeRecordBuffer(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	s := tlsServer(t, cert, false, func(o *Options, rc *route.Config) { rc.HelloTimeout = time.Hour })
	const n = 10
	raws := make([]net.Conn, n)
	ws := make([]*tls13Writer, n)
	for i := range raws {
		raw, tc, w := tls13Session(t, cert, s.url, 0)
		if _, err := raw.Write(w.seal(23, rsHandshake(proto.JSON, 15))); err != nil {
			t.Fatal(err)
		}
		var rep [4]byte
		tc.SetReadDeadline(time.Now().Add(ioTimeout))
		if _, err := io.ReadFull(tc, rep[:]); err != nil || rep[0] != rawMagic {
			t.Fatalf("rawsocket handshake reply %x: %v", rep, err)
		}
		tc.SetReadDeadline(time.Time{})
		go io.Copy(io.Discard, tc) // the pongs
		raws[i], ws[i] = raw, w
	}
	bufs := func() (sum int) {
		for _, st := range s.e.connStats(t) {
			if st.isTLS {
				sum += st.tlsBufs
			}
		}
		return sum
	}
	// One full-size record each: a RawSocket PING of 16 KiB, then a small
	// PING every 50 ms, so that no scan period passes without a record.
	var mu sync.Mutex // the writers' sequence numbers
	for i := range raws {
		if _, err := raws[i].Write(ws[i].seal(23, rsFrame(1, make([]byte, maxPlaintext-4)))); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, ioTimeout, "the large records read", func() bool { return bufs() >= n*maxPlaintext })
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			mu.Lock()
			for i := range raws {
				raws[i].Write(ws[i].seal(23, rsFrame(1, []byte("x"))))
			}
			mu.Unlock()
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	deadline := time.Now().Add(3 * time.Second) // three scans
	for bufs() > n*tlsTrimActive {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections sending a small record every 50 ms still hold %d bytes of crypto/tls buffers 3 s after a 16 KiB record",
				n, bufs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d bytes of crypto/tls buffers over %d chatty connections", bufs(), n)
	// And they are served as before: a large record grows a buffer again.
	mu.Lock()
	_, err := raws[0].Write(ws[0].seal(23, rsFrame(1, make([]byte, maxPlaintext-4))))
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, ioTimeout, "a large record read again", func() bool { return bufs() >= maxPlaintext })
	if st := s.e.Stats(); st.Closes[CloseTLS] != 0 || st.TLSConns != n {
		t.Fatalf("%d TLS connections closed, %d open", st.Closes[CloseTLS], st.TLSConns)
	}
}
