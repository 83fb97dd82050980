package proto

import (
	"encoding/binary"
	"testing"
)

// FuzzCBORPeerSafe checks what a CBOR peer is sent of a CBOR message the
// router accepted, with a walker of its own (not the package's reader):
// the Arguments and ArgumentsKw a CBOR subscriber or callee gets hold no
// indefinite-length text or byte string (cbor-x, wampy's CBOR, cannot
// decode one, and wampy closes its session), no tag on a dictionary key
// (cbor2 makes a date text key a datetime, which Autobahn|Python refuses
// as a kwargs key and drops its connection), and no tag but the ones
// passed on as they came (cbTagKept): 0 on a text, 1 on a number, 2 and 3
// on a byte string, each alone. What Decode marks Raw.Normalize is
// transcoded first, as the router sends it.
//
// Run with: go test -run '^$' -fuzz '^FuzzCBORPeerSafe$' -fuzztime 30s ./proto
func FuzzCBORPeerSafe(f *testing.F) {
	for _, s := range []string{
		// [PUBLISH, 1, {}, "t", [(_ "a", "b"), 0("2020-09-13T12:26:40Z")], {(_ "k"): 1}]
		"86 10 01 a0 6174 82 7f 6161 6162 ff c0 74323032302d30392d31335431323a32363a34305a a1 7f 616b ff 01",
		// ArgumentsKw {0("2020-09-13T12:26:40Z"): 1}, a bignum of chunks, a tag chain.
		"86 10 01 a0 6174 83 c2 5f 410a ff d9d9f7 c1 00 c3 42 0102 a1 c0 74323032302d30392d31335431323a32363a34305a 01",
		// Undefined, a kept epoch date, tags in a nested dictionary.
		"86 10 01 a0 6174 83 f7 c1 1a5f5e1000 a1 6161 d820 6161 bf 6162 5f 4101 ff ff",
		// Bignums of no bytes.
		"86 10 01 a0 6174 82 c2 40 c3 40 a1 6161 c2 40",
	} {
		f.Add(mustHex(f, stripSpaces(s)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(CBOR, b)
		if err != nil {
			return
		}
		for _, r := range []Raw{m.Args, m.Kwargs} {
			if !r.Present() {
				continue
			}
			out := r.B
			if r.Normalize {
				if out, err = Transcode(nil, CBOR, r); err != nil {
					continue // not sent: the router drops or refuses it
				}
			}
			if n, why := cborPeerSafe(out, 0, false); why != "" || n != len(out) {
				t.Fatalf("a CBOR peer gets %x (from %x): %s", out, b, why)
			}
		}
	})
}

// cborPeerSafe walks one CBOR item at b[0:] and returns its length, or
// why a CBOR peer could not take it. key: the item is a dictionary key.
func cborPeerSafe(b []byte, depth int, key bool) (int, string) {
	if len(b) == 0 {
		return 0, "truncated"
	}
	if depth > MaxDepth+1 {
		return 0, "too deep"
	}
	major, info := b[0]>>5, b[0]&0x1f
	n, arg := 1, uint64(info)
	switch {
	case info == 24:
		n, arg = 2, uint64(b[1])
	case info == 25:
		n, arg = 3, uint64(binary.BigEndian.Uint16(b[1:]))
	case info == 26:
		n, arg = 5, uint64(binary.BigEndian.Uint32(b[1:]))
	case info == 27:
		n, arg = 9, binary.BigEndian.Uint64(b[1:])
	case info == 31:
		if major == 2 || major == 3 {
			return 0, "an indefinite-length string"
		}
	}
	switch major {
	case 0, 1:
		return n, ""
	case 2, 3:
		return n + int(arg), ""
	case 4, 5:
		per := 1
		if major == 5 {
			per = 2
		}
		for i := uint64(0); info == 31 || i < arg*uint64(per); i++ {
			if info == 31 && b[n] == 0xff {
				return n + 1, ""
			}
			k, why := cborPeerSafe(b[n:], depth+1, major == 5 && i%2 == 0)
			if why != "" {
				return 0, why
			}
			n += k
		}
		return n, ""
	case 6:
		if key {
			return 0, "a tag on a dictionary key"
		}
		next := b[n]
		ok := arg == 0 && next>>5 == 3 && next&0x1f != 31 ||
			arg == 1 && (next>>5 <= 1 || next >= 0xf9 && next <= 0xfb) ||
			(arg == 2 || arg == 3) && next>>5 == 2 && next&0x1f != 31
		if !ok {
			return 0, "a tag not passed on as it came"
		}
		if (arg == 2 || arg == 3) && next == 0x40 {
			return 0, "a bignum of no bytes (node-cbor cannot convert it)"
		}
		k, why := cborPeerSafe(b[n:], depth, false)
		return n + k, why
	}
	switch info { // major 7
	case 25:
		return 3, ""
	case 26:
		return 5, ""
	case 27:
		return 9, ""
	}
	return 1, ""
}
