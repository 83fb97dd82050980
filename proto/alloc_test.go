//go:build !race

// The race detector adds allocations of its own, so the allocation budgets
// are checked only without it.

package proto

import (
	"fmt"
	"testing"
)

// TestRoutingAllocs is the hot path's budget: decoding a CALL (or PUBLISH)
// head and encoding the matching INVOCATION (or EVENT) in the same
// serializer allocate nothing once the buffers are warm.
func TestRoutingAllocs(t *testing.T) {
	for _, ser := range serializers {
		for _, tc := range []struct {
			name  string
			in    []byte
			build func(*routingFixture)
		}{
			{"CALL->INVOCATION", callBytes(t, ser, 64), (*routingFixture).invocation},
			{"transparent CALL->INVOCATION", transparentCallBytes(t, ser, 64), (*routingFixture).invocation},
			{"PUBLISH->EVENT", publishBytes(t, ser, 64), (*routingFixture).event},
		} {
			t.Run(fmt.Sprintf("%s/%s", tc.name, ser), func(t *testing.T) {
				f := &routingFixture{buf: make([]byte, 0, 4096)}
				var err error
				run := func() {
					if err = f.d.Decode(ser, tc.in, &f.in); err != nil {
						return
					}
					tc.build(f)
					f.buf, err = f.e.Append(f.buf[:0], ser, &f.out)
				}
				run()
				requireNoError(t, err, "warm-up")
				// The output carries the payload untouched.
				got := mustDecode(t, ser, f.buf)
				requireValue(t, mustValue(t, f.in.Args), mustValue(t, got.Args), "Args")
				requireValue(t, mustValue(t, f.in.Kwargs), mustValue(t, got.Kwargs), "Kwargs")
				requireValue(t, fieldsDump(t, &f.out.Opt), fieldsDump(t, &got.Opt), "Details")
				if got.Transparent != f.in.Transparent {
					t.Fatalf("Transparent: got %v, want %v", got.Transparent, f.in.Transparent)
				}

				decodes := testing.AllocsPerRun(200, func() { err = f.d.Decode(ser, tc.in, &f.in) })
				requireNoError(t, err, "Decode")
				builds := testing.AllocsPerRun(200, func() { tc.build(f) })
				encodes := testing.AllocsPerRun(200, func() { f.buf, err = f.e.Append(f.buf[:0], ser, &f.out) })
				requireNoError(t, err, "Append")
				whole := testing.AllocsPerRun(200, run)
				t.Logf("allocs per run: decode %v, build %v, encode %v, whole %v", decodes, builds, encodes, whole)
				if decodes != 0 || builds != 0 || encodes != 0 || whole != 0 {
					t.Fatalf("allocations on the hot path: decode %v, build %v, encode %v, whole %v", decodes, builds, encodes, whole)
				}
			})
		}
	}
}

// TestEscapedJSONAllocs checks that JSON strings with escapes, which are
// unescaped into the Decoder's scratch buffer, do not allocate once the
// scratch has grown.
func TestEscapedJSONAllocs(t *testing.T) {
	in := []byte(`[48,1,{"rkey":"a\"b","x_\u006b":"\u00e9\ud83d\ude00"},"com.\u00e9v\u00e9nement",["\u0000AAEC"]]`)
	var d Decoder
	var m Message
	requireNoError(t, d.Decode(JSON, in, &m), "Decode")
	if got := testing.AllocsPerRun(200, func() { _ = d.Decode(JSON, in, &m) }); got != 0 {
		t.Fatalf("decoding escaped JSON: %v allocs per run, want 0", got)
	}
}

// TestDecodeErrorAllocs checks that the common low-level faults (sentinel
// errors) do not allocate, so that garbage input costs no garbage.
func TestDecodeErrorAllocs(t *testing.T) {
	var d Decoder
	var m Message
	for _, tc := range []struct {
		ser Serializer
		in  []byte
	}{
		{JSON, []byte(`[48,1,{},"p"`)},
		{JSON, []byte(`{}`)},
		{JSON, []byte(`[99]`)},
		{MsgPack, []byte{0x94, 0x30, 0x01, 0x80, 0xdb, 0xff, 0xff, 0xff, 0xff}},
		{CBOR, []byte{0x84, 0x18, 0x30, 0x01, 0xa0, 0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	} {
		if d.Decode(tc.ser, tc.in, &m) == nil {
			t.Fatalf("%s: decoded", show(tc.ser, tc.in))
		}
		if got := testing.AllocsPerRun(100, func() { _ = d.Decode(tc.ser, tc.in, &m) }); got != 0 {
			t.Errorf("%s: %v allocs per failed decode, want 0", show(tc.ser, tc.in), got)
		}
	}
}

// TestUndefinedAllocs checks that wampy's messages with JavaScript undefined
// in options and payload (see undefined_test.go) decode without allocating.
func TestUndefinedAllocs(t *testing.T) {
	var d Decoder
	var m Message
	for _, c := range wampyUndefined {
		for _, in := range [][]byte{mustHex(t, c.subscribe), mustHex(t, c.cal)} {
			requireNoError(t, d.Decode(c.ser, in, &m), "Decode")
			if got := testing.AllocsPerRun(200, func() { _ = d.Decode(c.ser, in, &m) }); got != 0 {
				t.Errorf("%s: %v allocs per decode, want 0", show(c.ser, in), got)
			}
		}
	}
}
