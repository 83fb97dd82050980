package proto

import (
	"bytes"
	"fmt"
	"syscall"
	"testing"
)

// cpuNanos is the process's user and system CPU time: on a shared host
// the wall clock of a benchmark counts other processes' turns.
func cpuNanos() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// worstShapes are payloads whose conversion costs the most per input byte
// (the loop converts a publication once per serializer of its
// subscribers), with an ordinary one for scale.
func worstShapes(b *testing.B, n int) []struct {
	name string
	to   Serializer
	r    Raw
} {
	b.Helper()
	cborArr := func(el []byte) []byte {
		k := n / len(el)
		out := []byte{0x9a, byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}
		return append(out, bytes.Repeat(el, k)...)
	}
	mp := func(el []byte) []byte {
		k := n / len(el)
		out := []byte{0xdd, byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}
		return append(out, bytes.Repeat(el, k)...)
	}
	nested := []byte("[" + string(bytes.Repeat([]byte("[[[[[[[[1]]]]]]]],"), n/18)) + "1]")
	return []struct {
		name string
		to   Serializer
		r    Raw
	}{
		{"cbor-half-subnormal-json", JSON, Raw{Ser: CBOR, B: cborArr([]byte{0xf9, 0x00, 0x03})}},
		{"cbor-half-normal-json", JSON, Raw{Ser: CBOR, B: cborArr([]byte{0xf9, 0x3c, 0x01})}},
		{"cbor-half-msgpack", MsgPack, Raw{Ser: CBOR, B: cborArr([]byte{0xf9, 0x00, 0x03})}},
		{"msgpack-ts32-json", JSON, Raw{Ser: MsgPack, B: mp([]byte{0xd6, 0xff, 0x5f, 0x5e, 0x10, 0x00})}},
		{"msgpack-ts64-json", JSON, Raw{Ser: MsgPack, B: mp([]byte{0xd7, 0xff, 0x00, 0x00, 0x00, 0x04, 0x5f, 0x5e, 0x10, 0x00})}},
		{"json-nested-msgpack", MsgPack, Raw{Ser: JSON, B: nested}},
		{"json-ordinary-msgpack", MsgPack, Raw{Ser: JSON, B: jsonRecords(n)}},
		{"cbor-ordinary-json", JSON, transcodeRaw(b, Raw{Ser: JSON, B: jsonRecords(n)}, CBOR)},
	}
}

// BenchmarkTranscodeWorst reports what converting the costliest payloads
// takes per input byte: wall (ns/inbyte) and the process's CPU time
// (cpu-ns/inbyte; run with GOMAXPROCS=1 so that it is the loop's work and
// its garbage collection), and how much the output grows (out/in).
func BenchmarkTranscodeWorst(b *testing.B) {
	for _, sh := range worstShapes(b, 1<<20) {
		b.Run(fmt.Sprintf("%s/in=%d", sh.name, len(sh.r.B)), func(b *testing.B) {
			m := &Message{Type: CodeEvent, ID: 1, ID2: 2, Args: sh.r}
			e := Encoder{MaxConverted: 32 << 20}
			var buf []byte
			var err error
			b.SetBytes(int64(len(sh.r.B)))
			cpu0 := cpuNanos()
			for b.Loop() {
				if buf, err = e.Append(buf[:0], sh.to, m); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(sh.r.B)), "ns/inbyte")
			b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N)/float64(len(sh.r.B)), "cpu-ns/inbyte")
			b.ReportMetric(float64(len(buf))/float64(len(sh.r.B)), "out/in")
		})
	}
}

// jsonRecords is a JSON list of about n bytes of small records.
func jsonRecords(n int) []byte {
	rec := `{"id":123456,"name":"sensor-42","v":21.25,"ok":true,"tags":["a","bc"]},`
	return []byte("[" + string(bytes.Repeat([]byte(rec), n/len(rec))) + "1]")
}

// transcodeRaw converts r to ser.
func transcodeRaw(b *testing.B, r Raw, ser Serializer) Raw {
	out, err := Transcode(nil, ser, r)
	if err != nil {
		b.Fatal(err)
	}
	return Raw{Ser: ser, B: out}
}
