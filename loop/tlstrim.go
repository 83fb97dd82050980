package loop

import (
	"crypto/tls"

	"github.com/edgewamp/edgewamp/internal/tlsinput"
)

// Releasing the input buffers crypto/tls keeps.
//
// A tls.Conn keeps, for its whole life, the two input buffers it grew:
// c.rawInput, the records read (a bytes.Buffer never shrinks: after the
// handshake it is the size of the ClientHello plus 512 bytes, after a
// 16 KiB record 18 KiB), and c.hand, the handshake messages (the size of
// the ClientHello: 1.5 KiB with a post-quantum key share). Measured on a
// router holding 3,000 idle TLS 1.3 sessions (Go 1.26, AES-128-GCM): 3.5 of
// the 8 KiB of heap per session. crypto/tls has no API to release them, and
// its record buffer is not pooled (its output buffer is).
//
// tlsTrim releases them while they are empty, which the loop knows: the
// shim hands crypto/tls whole records only, so between two read callbacks
// c.rawInput holds nothing, and c.input (the plaintext of the last record,
// which aliases c.rawInput) nothing once tlsRead has drained it. Empty,
// each is equal to its zero value but for the array it keeps; the zero
// value is what a new tls.Conn starts with, so nothing changes for
// crypto/tls but that the next record allocates a buffer again (576 bytes
// for a small one). The loop trims after the handshake and, in the scan, a
// connection that received nothing for a whole scan period, or whose
// buffers a large record grew past tlsTrimActive (tlsConn.idle).
//
// The fields are unexported: package tlsinput finds them by reflection.
// If a Go release renames or retypes them, trimming turns itself off
// (tlsTrimOK) — connections work as before, with the buffers kept, and
// a post-handshake message is no longer bounded (tlsHandPending) — and
// TestTLSTrim, which requires it on, fails, so the upgrade is noticed.

// tlsTrimOK reports whether tlsTrim can release crypto/tls's buffers with
// the toolchain the binary was built with.
func tlsTrimOK() bool { return tlsinput.OK() }

// tlsTrim releases tc's input buffers if they are all empty, and reports
// whether it did. It must run on the goroutine that owns tc (the loop,
// once the handshake is done), between calls to tc's methods.
func tlsTrim(tc *tls.Conn) bool { return tlsinput.Trim(tc) }

// tlsHandPending returns what crypto/tls holds of a handshake message
// not yet whole (c.hand): the bytes buffered and the length its header
// announces, the header included (0 while the 4-byte header is not whole).
// After the handshake that is a post-handshake message (tlsPostHandshakeMax
// bounds it). Same rules as tlsTrim: on the goroutine that owns tc, between
// calls to its methods; 0, 0 when the fields were not found.
func tlsHandPending(tc *tls.Conn) (buffered, announced int) { return tlsinput.HandPending(tc) }

// tlsBuffered returns the capacity of tc's input buffers, -1 when the
// fields were not found (tlsConn.idle, tests). Same rules as tlsTrim.
func tlsBuffered(tc *tls.Conn) int { return tlsinput.Buffered(tc) }
