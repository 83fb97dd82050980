package loop

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// tls13Writer writes a TLS 1.3 client's records itself (AES-128-GCM-SHA256
// only), from the traffic secret crypto/tls logs: crypto/tls would not
// send a KeyUpdate asking for one on request.
type tls13Writer struct {
	secret []byte
	aead   cipher.AEAD
	iv     []byte
	seq    uint64
}

func hkdfExpandLabel(secret []byte, label string, n int) []byte {
	full := "tls13 " + label
	info := []byte{byte(n >> 8), byte(n), byte(len(full))}
	info = append(info, full...)
	info = append(info, 0) // empty context
	out, err := hkdf.Expand(sha256.New, secret, string(info), n)
	if err != nil {
		panic(err)
	}
	return out
}

func (w *tls13Writer) setSecret(s []byte) {
	w.secret = s
	key := hkdfExpandLabel(s, "key", 16)
	w.iv = hkdfExpandLabel(s, "iv", 12)
	blk, _ := aes.NewCipher(key)
	w.aead, _ = cipher.NewGCM(blk)
	w.seq = 0
}

func (w *tls13Writer) seal(typ byte, data []byte) []byte {
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

// keyUpdate returns a KeyUpdate(update_requested) record and moves to the
// next traffic secret.
func (w *tls13Writer) keyUpdate() []byte {
	rec := w.seal(22, []byte{24, 0, 0, 1, 1})
	w.setSecret(hkdfExpandLabel(w.secret, "traffic upd", 32))
	return rec
}

type keyLog struct{ bytes.Buffer }

// A TLS 1.3 peer that never reads and sends KeyUpdates asking for one
// makes crypto/tls answer each with a record of its own, written while
// the router reads. Those answers obey the hard limit as pongs do: the
// connection is closed as a slow consumer. Before, nothing bounded them:
// 15 KeyUpdates to a byte of application data (which resets crypto/tls's
// count of records that carry none) held 1.1 MiB with a 64 KiB hard limit
// and the connection stayed open.
func TestSocketTLSKeyUpdateFloodBounded(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	s := tlsServer(t, cert, false, func(o *Options, rc *route.Config) {
		o.HighWater, o.HardLimit = 16<<10, 64<<10
		rc.HelloTimeout = time.Hour
	})
	raw, _, w := tls13Session(t, cert, s.url, 4096)
	raw.SetDeadline(time.Time{})
	shrinkRouterSendBuffer(t, raw, 4096)
	// A RawSocket session, then a large frame whose payload is trickled:
	// one byte of application data (which resets crypto/tls's
	// non-advancing record count) per 15 KeyUpdates.
	var buf []byte
	buf = append(buf, w.seal(23, rsHandshake(proto.MsgPack, 15))...)
	buf = append(buf, w.seal(23, []byte{0, 0xf0, 0, 0})...) // a 15 MiB message
	if _, err := raw.Write(buf); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	last := time.Now()
	var peak int64
	sent := 0
	for time.Now().Before(deadline) {
		buf = buf[:0]
		for range 200 {
			for range 15 {
				buf = append(buf, w.keyUpdate()...)
			}
			buf = append(buf, w.seal(23, []byte{'x'})...)
			sent += 15
		}
		raw.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := raw.Write(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				break // the router stopped reading: kernel buffers full
			}
			t.Logf("write after %d KeyUpdates: %v (connection closed)", sent, err)
			break
		}
		st := s.e.Stats()
		peak = max(peak, st.Outbound)
		if time.Since(last) > 5*time.Second {
			last = time.Now()
			t.Logf("progress: %d KeyUpdates sent, outbound %d, conns %d", sent, st.Outbound, st.Conns)
		}
		if st.Outbound > 16*(64<<10) {
			break
		}
	}
	time.Sleep(1500 * time.Millisecond) // a scan
	st := s.e.Stats()
	peak = max(peak, st.Outbound)
	t.Logf("KeyUpdates sent %d; router outbound held %d (peak %d), HardLimit %d; open conns %d, slow-consumer closes %d, tls closes %d",
		sent, st.Outbound, peak, 64<<10, st.Conns, st.Closes[CloseSlowConsumer], st.Closes[CloseTLS])
	if peak > 4*(64<<10) || st.Closes[CloseSlowConsumer] == 0 {
		t.Fatalf("the router held up to %d bytes of KeyUpdate answers for a peer that never reads (hard limit %d), %d slow-consumer closes", peak, 64<<10, st.Closes[CloseSlowConsumer])
	}
}
