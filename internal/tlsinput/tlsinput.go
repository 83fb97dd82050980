// Package tlsinput reads, and releases, the input buffers a crypto/tls
// connection keeps, which crypto/tls does not export: c.rawInput (the
// records read), c.hand (handshake messages, one kept until it is whole)
// and c.input (the plaintext of the last record, aliasing c.rawInput).
// The event loops release them (loop/tlstrim.go) and bound what a client
// may hold in c.hand after its handshake (loop/tls.go), as does the HTTP
// gateway over TLS (gateway/server.go: limitConn).
//
// The fields are unexported: they are found by name and type through
// reflection when the package loads, and read or written through their
// offsets. If a Go release renames or retypes them, OK reports false and
// every function does nothing (connections work as before, with the
// buffers kept and a post-handshake message no longer bounded); loop's
// TestTLSTrim, which requires OK, fails, so the upgrade is noticed.
//
// Every function must run where tc's input is not in use by another
// goroutine: on the goroutine that owns tc, between calls to its methods,
// or from tc's transport's Read, which crypto/tls calls holding its input
// lock.
package tlsinput

import (
	"bytes"
	"crypto/tls"
	"reflect"
	"unsafe"
)

var fields struct {
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
	f := &fields
	f.rawInput, ok1 = field("rawInput", reflect.TypeFor[bytes.Buffer]())
	f.hand, ok2 = field("hand", reflect.TypeFor[bytes.Buffer]())
	f.input, ok3 = field("input", reflect.TypeFor[bytes.Reader]())
	f.ok = ok1 && ok2 && ok3
}

// OK reports whether the fields were found with the toolchain the binary
// was built with.
func OK() bool { return fields.ok }

// Trim releases tc's input buffers if they are all empty, and reports
// whether it did. Empty, each is equal to its zero value but for the
// array it keeps; the zero value is what a new tls.Conn starts with, so
// nothing changes for crypto/tls but that the next record allocates a
// buffer again.
func Trim(tc *tls.Conn) bool {
	f := &fields
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

// HandPending returns what crypto/tls holds of a handshake message not
// yet whole (c.hand): the bytes buffered and the length its header
// announces, the header included (0 while the 4-byte header is not
// whole). After the handshake that is a post-handshake message. 0, 0
// when the fields were not found.
func HandPending(tc *tls.Conn) (buffered, announced int) {
	f := &fields
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

// Buffered returns the capacity of tc's input buffers, -1 when the fields
// were not found.
func Buffered(tc *tls.Conn) int {
	f := &fields
	if !f.ok {
		return -1
	}
	p := unsafe.Pointer(tc)
	return (*bytes.Buffer)(unsafe.Add(p, f.rawInput)).Cap() + (*bytes.Buffer)(unsafe.Add(p, f.hand)).Cap()
}
