package gateway

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTLSPostHandshakeMessageBounded: after its handshake a TLS client of
// the gateway may send a handshake message (TLS 1.3: a KeyUpdate, 5
// bytes); crypto/tls keeps one until it is whole, up to 64 KiB, and a
// Certificate, asked for or not, up to 256 KiB, for as long as the client
// takes to send it: the keep-alive's idle_timeout, and without end while
// the connection carries an event stream or a long call. Here 32 clients
// each make a request, then send 150 KiB of a Certificate message
// announcing 200 KiB: each connection must be closed at once, as the
// event loops' TLS listeners close theirs past 1 KiB. Before, all stayed
// open, holding the message (heap +9.8 MB for the 32).
func TestTLSPostHandshakeMessageBounded(t *testing.T) {
	laneFree(t)
	e, hc := tlsEnv(t, func(o *Options) { o.Limits.IdleTimeout, o.Limits.ReadHeaderTimeout = time.Minute, time.Minute })
	addr := e.gw.Addr().String()
	pool := hc.Transport.(*http.Transport).TLSClientConfig.RootCAs

	// session makes a TLS 1.3 connection, a request on it sealed by hand
	// (w, the client's traffic keys), and reads the answer.
	var br *bufio.Reader // the last session's answers
	session := func() (net.Conn, *gwTLS13Writer, error) {
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, nil, err
		}
		var kl bytes.Buffer
		tc := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}, KeyLogWriter: &kl})
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			return raw, nil, err
		}
		if cs := tc.ConnectionState().CipherSuite; cs != tls.TLS_AES_128_GCM_SHA256 {
			return raw, nil, nil
		}
		w := &gwTLS13Writer{}
		for _, line := range strings.Split(kl.String(), "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "CLIENT_TRAFFIC_SECRET_0" {
				s, _ := hex.DecodeString(f[2])
				w.setSecret(s)
			}
		}
		if _, err := raw.Write(w.seal(23, []byte("GET /healthz HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"))); err != nil {
			return raw, nil, err
		}
		br = bufio.NewReader(tc)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return raw, nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return raw, nil, errors.New("healthz: " + resp.Status)
		}
		raw.SetDeadline(time.Time{})
		return raw, w, nil
	}
	// A KeyUpdate still works: the next request is answered.
	raw, w, err := session()
	if raw != nil {
		defer raw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if w == nil {
		t.Skip("the suite negotiated is not TLS_AES_128_GCM_SHA256, which the test seals with")
	}
	req := w.keyUpdate()
	req = append(req, w.seal(23, []byte("GET /healthz HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"))...)
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := raw.Write(req); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("a request after a KeyUpdate: %v %v", resp, err)
	}

	const conns = 32
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, w, err := session()
		if c != nil {
			t.Cleanup(func() { c.Close() })
		}
		if err != nil {
			t.Fatal(err)
		}
		cs[i] = c
		msg := append([]byte{11, 0x03, 0x20, 0x00}, make([]byte, 200<<10)...) // announces 200 KiB
		var recs []byte
		for msg = msg[:150<<10]; len(msg) > 0; {
			k := min(len(msg), 16384)
			recs = append(recs, w.seal(22, msg[:k])...)
			msg = msg[k:]
		}
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		c.Write(recs) // fails once the gateway closed it
	}
	time.Sleep(100 * time.Millisecond)
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("%d connections each sent 150 KiB of a post-handshake Certificate message: heap in use %+d KiB",
		conns, (int64(after.HeapInuse)-int64(before.HeapInuse))>>10)

	var open atomic.Int32
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err := io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				open.Add(1)
			}
		}()
	}
	wg.Wait()
	if open := open.Load(); open > 0 {
		t.Fatalf("%d of %d connections still open 5 s after sending 150 KiB of a post-handshake handshake message (idle_timeout 1m): crypto/tls keeps it whole", open, conns)
	}
}

// gwTLS13Writer seals TLS 1.3 records (TLS_AES_128_GCM_SHA256) with a
// client's traffic secret, for messages crypto/tls's client does not send.
type gwTLS13Writer struct {
	secret []byte
	aead   cipher.AEAD
	iv     []byte
	seq    uint64
}

func gwHKDFExpandLabel(secret []byte, label string, n int) []byte {
	full := "tls13 " + label
	info := append([]byte{byte(n >> 8), byte(n), byte(len(full))}, full...)
	info = append(info, 0) // empty context
	out, err := hkdf.Expand(sha256.New, secret, string(info), n)
	if err != nil {
		panic(err)
	}
	return out
}

func (w *gwTLS13Writer) setSecret(s []byte) {
	blk, _ := aes.NewCipher(gwHKDFExpandLabel(s, "key", 16))
	w.aead, _ = cipher.NewGCM(blk)
	w.secret, w.iv, w.seq = s, gwHKDFExpandLabel(s, "iv", 12), 0
}

// keyUpdate returns a KeyUpdate (update_not_requested) record and moves
// to the next traffic secret.
func (w *gwTLS13Writer) keyUpdate() []byte {
	rec := w.seal(22, []byte{24, 0, 0, 1, 0})
	w.setSecret(gwHKDFExpandLabel(w.secret, "traffic upd", 32))
	return rec
}

func (w *gwTLS13Writer) seal(typ byte, data []byte) []byte {
	inner := append(append([]byte{}, data...), typ)
	n := len(inner) + w.aead.Overhead()
	hdr := []byte{23, 3, 3, byte(n >> 8), byte(n)}
	nonce := append([]byte{}, w.iv...)
	var sq [8]byte
	binary.BigEndian.PutUint64(sq[:], w.seq)
	for i := range 8 {
		nonce[4+i] ^= sq[i]
	}
	w.seq++
	return w.aead.Seal(hdr, nonce, inner, hdr)
}
