package loop

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// Shutdown is bounded whatever state the TLS handshakes are in: a partial
// ClientHello (no goroutine yet), handshakes waiting for their client's
// next flight (goroutines blocked in the shim's read), handshakes queued
// behind max_tls_handshakes, a storm of clients handshaking at that very
// moment, and established TLS sessions. Shutdown returns without error
// well before the handshake timeout, every handshake goroutine is gone
// and every client is closed. (Not parallel: it counts the process's
// handshake goroutines.)
func TestTLSShutdownHandshakesInEveryState(t *testing.T) {
	cert := newTestCert(t)
	workers := tlsWorkers()
	rc := route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}, Shards: 2}
	r, err := route.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(r, Options{Listeners: []Listener{{Addr: "127.0.0.1:0", TLS: cert.server}},
		PingInterval: -1, HandshakeTimeout: 5 * time.Minute, MaxTLSHandshakes: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	addr := e.Addrs()[0].String()
	var clients []net.Conn
	// Established sessions.
	for i := range 4 {
		tc, raw := tlsDial(t, addr, cert.clientFor(0))
		tc.SetDeadline(time.Time{})
		newWAMP(t, rawPeerOnConn(t, tc, []string{"rs", "ws"}[i%2], proto.JSON).mc, proto.JSON).join()
		clients = append(clients, raw)
	}
	// A partial ClientHello.
	partial := dialTCP(t, addr, 0)
	partial.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01})
	clients = append(clients, partial)
	// Stalled after their ClientHello: 4 running (the pool's bound), 3
	// queued.
	for range 7 {
		raw := dialTCP(t, addr, 0)
		go tls.Client(&stallConn{Conn: raw}, cert.clientFor(0)).Handshake()
		clients = append(clients, raw)
	}
	eventually(t, ioTimeout, "4 handshakes running, 3 queued", func() bool {
		st := e.Stats()
		return st.TLSHandshakes == 4 && st.TLSHandshakesQueued == 3
	})
	// The stats count a handshake when its goroutine is made; the
	// goroutine shows its pool in its stack once it has run (a loaded
	// machine can leave a new one runnable a while).
	var n int
	deadline := time.Now().Add(ioTimeout)
	for n = len(poolWorkers(&e.tlsPool)); n != 4 && time.Now().Before(deadline); n = len(poolWorkers(&e.tlsPool)) {
		time.Sleep(10 * time.Millisecond)
	}
	if n != 4 {
		t.Fatalf("%d of this engine's handshake goroutines found running, want 4 (poolWorkers)", n)
	}
	// A storm still connecting while Shutdown starts, each client from an
	// address of its own (127.0.0.10-17): from 127.0.0.1, with the 7
	// stalled handshakes, it would pass max_tls_handshakes_per_address and
	// be partly refused rather than handshaking.
	var storm sync.WaitGroup
	stop := make(chan struct{})
	for i := range 8 {
		storm.Add(1)
		go func() {
			defer storm.Done()
			d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(10+i))}}
			for {
				select {
				case <-stop:
					return
				default:
				}
				raw, err := d.Dial("tcp", addr)
				if err != nil {
					return // the listener is gone
				}
				tc := tls.Client(raw, cert.clientFor(0))
				tc.SetDeadline(time.Now().Add(ioTimeout))
				tc.Handshake()
				raw.Close()
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)

	start := time.Now()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- e.Shutdown(ctx)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Shutdown hangs with TLS handshakes in progress")
	}
	close(stop)
	storm.Wait()
	t.Logf("Shutdown returned in %v", time.Since(start).Round(time.Millisecond))
	for _, c := range clients {
		waitClosed(t, c, ioTimeout)
	}
	// This engine's handshake goroutines (another engine's, of a test
	// before, may still end its computation meanwhile: tlsWorkers counts
	// the process's); one may still be returning from its wg.Done.
	var left []string
	for deadline := time.Now().Add(time.Second); ; time.Sleep(10 * time.Millisecond) {
		if left = poolWorkers(&e.tlsPool); len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) != 0 {
		t.Fatalf("%d handshake goroutines left after Shutdown (the process's count moved by %d):\n%s", len(left), tlsWorkers()-workers, strings.Join(left, "\n\n"))
	}
	if st := e.Stats(); st.TLSHandshakes != 0 || st.TLSHandshakesQueued != 0 {
		t.Fatalf("after Shutdown: %d handshakes running, %d queued", st.TLSHandshakes, st.TLSHandshakesQueued)
	}
	// The running handshakes and the queued ones released their
	// addresses' counts.
	if _, sources := e.tlsSrcCount("127.0.0.1"); sources != 0 {
		t.Fatalf("after Shutdown: %d addresses with handshakes counted", sources)
	}
}
