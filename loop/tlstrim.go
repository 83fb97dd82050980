package loop

import (
	"bytes"
	"crypto/tls"
	"reflect"
	"unsafe"
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
// The fields are unexported: they are found by name and type through
// reflection when the package loads, and written through their offsets.
// If a Go release renames or retypes them, trimming turns itself off
// (tlsTrimOK) — connections work as before, with the buffers kept, and
// a post-handshake message is no longer bounded (tlsHandPending) — and
// TestTLSTrim, which requires it on, fails, so the upgrade is noticed.
var tlsTrimFields struct {
	ok                    bool
	rawInput, hand, input uintptr // offsets in tls.Conn
}

func init() {
	t := reflect.TypeFor[tls.Conn]()
	field := func(name string, typ reflect.Type) (uintptr, bool) {
		f, ok := t.FieldByName(name)
		return f.Offset, ok && len(f.Index) == 1 && f.Type == typ
	}
	var ok1, ok2, ok3 bool
	f := &tlsTrimFields
	f.rawInput, ok1 = field("rawInput", reflect.TypeFor[bytes.Buffer]())
	f.hand, ok2 = field("hand", reflect.TypeFor[bytes.Buffer]())
	f.input, ok3 = field("input", reflect.TypeFor[bytes.Reader]())
	f.ok = ok1 && ok2 && ok3
}

// tlsTrimOK reports whether tlsTrim can release crypto/tls's buffers with
// the toolchain the binary was built with.
func tlsTrimOK() bool { return tlsTrimFields.ok }

// tlsTrim releases tc's input buffers if they are all empty, and reports
// whether it did. It must run on the goroutine that owns tc (the loop,
// once the handshake is done), between calls to tc's methods.
func tlsTrim(tc *tls.Conn) bool {
	f := &tlsTrimFields
	if !f.ok {
		return false
	}
	p := unsafe.Pointer(tc)
	raw := (*bytes.Buffer)(unsafe.Add(p, f.rawInput))
	hand := (*bytes.Buffer)(unsafe.Add(p, f.hand))
	in := (*bytes.Reader)(unsafe.Add(p, f.input))
	if raw.Len() != 0 || hand.Len() != 0 || in.Len() != 0 {
		return false
	}
	*raw, *hand, *in = bytes.Buffer{}, bytes.Buffer{}, bytes.Reader{}
	return true
}

// tlsHandPending returns what crypto/tls holds of a handshake message
// not yet whole (c.hand): the bytes buffered and the length its header
// announces, the header included (0 while the 4-byte header is not whole).
// After the handshake that is a post-handshake message (tlsPostHandshakeMax
// bounds it). Same rules as tlsTrim: on the goroutine that owns tc, between
// calls to its methods; 0, 0 when the fields were not found.
func tlsHandPending(tc *tls.Conn) (buffered, announced int) {
	f := &tlsTrimFields
	if !f.ok {
		return 0, 0
	}
	hand := (*bytes.Buffer)(unsafe.Add(unsafe.Pointer(tc), f.hand))
	buffered = hand.Len()
	if buffered >= 4 {
		h := hand.Bytes()
		announced = 4 + (int(h[1])<<16 | int(h[2])<<8 | int(h[3]))
	}
	return buffered, announced
}

// tlsBuffered returns the capacity of tc's input buffers, -1 when the
// fields were not found (tlsConn.idle, tests). Same rules as tlsTrim.
func tlsBuffered(tc *tls.Conn) int {
	f := &tlsTrimFields
	if !f.ok {
		return -1
	}
	p := unsafe.Pointer(tc)
	return (*bytes.Buffer)(unsafe.Add(p, f.rawInput)).Cap() + (*bytes.Buffer)(unsafe.Add(p, f.hand)).Cap()
}
