package proto

import (
	"bytes"
	"errors"
	"math/big"
	"strings"
	"testing"
)

// An integer beyond 64 bits is converted through math/big, whose decimal
// conversions take time quadratic in the number of digits: one JSON integer
// of a million digits took 1.9 s to transcode to MsgPack or CBOR, and a
// message of 16 MiB (the largest the router takes) would hold one shard for
// minutes. Such integers are refused beyond 8192 bits (1024 bytes of CBOR
// magnitude, 2466 decimal digits); the largest allowed pass both ways.
func TestHugeIntegerRefused(t *testing.T) {
	digits := func(n int) []byte { return append([]byte("1"), bytes.Repeat([]byte("0"), n-1)...) }
	bignum := func(n int) []byte { // CBOR tag 2, n bytes of magnitude
		b := []byte{0xc2, 0x5a, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
		return append(b, bytes.Repeat([]byte{0xff}, n)...)
	}
	for _, c := range []struct {
		name string
		in   Raw
		to   Serializer
	}{
		{"json digits to cbor", Raw{Ser: JSON, B: digits(100000)}, CBOR},
		{"json digits to msgpack", Raw{Ser: JSON, B: digits(100000)}, MsgPack},
		{"negative json digits to cbor", Raw{Ser: JSON, B: append([]byte("-"), digits(100000)...)}, CBOR},
		{"cbor bignum to json", Raw{Ser: CBOR, B: bignum(40000)}, JSON},
		{"cbor bignum to msgpack", Raw{Ser: CBOR, B: bignum(40000)}, MsgPack},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := Transcode(nil, c.to, c.in)
			var pe *Error
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), "8192 bits") {
				t.Fatalf("got %d bytes, %v; want an integer beyond 8192 bits refused", len(out), err)
			}
			if _, err := DecodeValue(c.in); err == nil || err.Error() != pe.Error() {
				t.Fatalf("DecodeValue: %v, want %v", err, pe)
			}
		})
	}
	out, err := Transcode(nil, JSON, Raw{Ser: CBOR, B: bignum(1024)})
	if err != nil {
		t.Fatalf("bignum of 1024 bytes to JSON: %v", err)
	}
	back, err := Transcode(nil, CBOR, Raw{Ser: JSON, B: out})
	if err != nil || !bytes.Equal(back[len(back)-1024:], bignum(1024)[6:]) {
		t.Fatalf("%d digits back to CBOR: %v", len(out), err)
	}
	if _, err := Transcode(nil, CBOR, Raw{Ser: JSON, B: []byte("-" + strings.Repeat("9", 2466))}); err != nil {
		t.Fatalf("2466 digits: %v", err)
	}
	if _, err := Transcode(nil, CBOR, Raw{Ser: JSON, B: []byte(strings.Repeat("9", 2467))}); err == nil {
		t.Fatal("2467 digits beyond 2^8192 accepted")
	}
}

// A CBOR negative bignum (tag 3) holds -1-m for a magnitude m of at most
// 1024 bytes, down to -2^8192, one past the JSON reader's bound (2^8192-1
// in magnitude): transcoded to JSON it was 2,467 digits that the package's
// own JSON reader refuses (errIntTooLarge), so a Go client speaking JSON
// that got it in an EVENT, RESULT or INVOCATION ended its session as a
// protocol violation. The conversion now refuses it like any integer
// beyond 8192 bits; -2^8192+1 still converts, and reads back.
func TestNegativeBignumPastJSONBoundRefused(t *testing.T) {
	tag3 := func(last byte) Raw { // [-1-m], m 1024 bytes of 0xff but the last
		b := append([]byte{0x81, 0xc3, 0x59, 0x04, 0x00}, bytes.Repeat([]byte{0xff}, 1024)...)
		b[len(b)-1] = last
		return Raw{Ser: CBOR, B: b}
	}
	if !ValidArgs(tag3(0xff), false) {
		t.Fatal("-2^8192 refused as CBOR input")
	}
	for _, to := range []Serializer{JSON, MsgPack} {
		if out, err := Transcode(nil, to, tag3(0xff)); err == nil {
			t.Errorf("-2^8192 to %s: %d bytes, no error (valid there: %v)", to, len(out), ValidArgs(Raw{Ser: to, B: out}, false))
		} else if !strings.Contains(err.Error(), "8192 bits") {
			t.Errorf("-2^8192 to %s: %v, want an integer beyond 8192 bits refused", to, err)
		}
	}
	if _, err := DecodeValue(tag3(0xff)); err == nil {
		t.Error("DecodeValue(-2^8192): no error")
	}
	out, err := Transcode(nil, JSON, tag3(0xfe)) // -2^8192 + 1
	if err != nil || !ValidArgs(Raw{Ser: JSON, B: out}, false) {
		t.Fatalf("-2^8192+1 to JSON: %v (valid: %v)", err, err == nil && ValidArgs(Raw{Ser: JSON, B: out}, false))
	}
}

// AppendValue writes no JSON integer beyond 8192 bits, which the JSON
// readers refuse (the router ends the session of a peer sending one).
func TestAppendValueHugeBigIntJSON(t *testing.T) {
	huge := new(big.Int).Lsh(big.NewInt(1), 8192)
	for _, v := range []*big.Int{huge, new(big.Int).Neg(huge)} {
		if out, err := AppendValue(nil, JSON, []any{v}); err == nil {
			t.Errorf("AppendValue(JSON, %d bits): %d bytes, no error (valid: %v)", v.BitLen(), len(out), ValidArgs(Raw{Ser: JSON, B: out}, false))
		}
	}
	largest := new(big.Int).Sub(huge, big.NewInt(1))
	out, err := AppendValue(nil, JSON, []any{largest, new(big.Int).Neg(largest)})
	if err != nil || !ValidArgs(Raw{Ser: JSON, B: out}, false) {
		t.Fatalf("2^8192-1: %v", err)
	}
}

// A nil *big.Int is written as null, as encoding/json writes a nil
// pointer: AppendValue dereferenced it and panicked, in the goroutine of
// a Go client's Publish or Call.
func TestAppendValueNilBigInt(t *testing.T) {
	for _, ser := range serializers {
		out, err := AppendValue(nil, ser, []any{(*big.Int)(nil)})
		if err != nil {
			t.Fatalf("%s: %v", ser, err)
		}
		v, err := DecodeValue(Raw{Ser: ser, B: out})
		if l, ok := v.([]any); err != nil || !ok || len(l) != 1 || l[0] != nil {
			t.Fatalf("%s: got %v, %v; want [nil]", ser, v, err)
		}
	}
}

// Nor a CBOR bignum beyond 8192 bits (2^8192, -2^8192): every reader of
// this package refuses it, so a Go client's event to a CBOR subscriber
// was lost. What AppendValue writes for CBOR, DecodeValue reads back.
func TestAppendValueHugeBigIntCBOR(t *testing.T) {
	huge := new(big.Int).Lsh(big.NewInt(1), 8192)
	for _, v := range []*big.Int{huge, new(big.Int).Neg(huge)} {
		if out, err := AppendValue(nil, CBOR, []any{v}); err == nil {
			_, derr := DecodeValue(Raw{Ser: CBOR, B: out})
			t.Errorf("AppendValue(CBOR, %d bits, sign %d): %d bytes, no error (read back: %v)", v.BitLen(), v.Sign(), len(out), derr)
		}
	}
	largest := new(big.Int).Sub(huge, big.NewInt(1))
	for _, v := range []*big.Int{largest, new(big.Int).Neg(largest)} {
		out, err := AppendValue(nil, CBOR, v)
		if err != nil {
			t.Fatalf("AppendValue(CBOR, %d bits, sign %d): %v", v.BitLen(), v.Sign(), err)
		}
		back, err := DecodeValue(Raw{Ser: CBOR, B: out})
		if b, ok := back.(*big.Int); err != nil || !ok || b.Cmp(v) != 0 {
			t.Fatalf("%d bits, sign %d: read back %T, %v", v.BitLen(), v.Sign(), back, err)
		}
	}
}
