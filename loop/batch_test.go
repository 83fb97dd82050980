package loop

import (
	"bytes"
	"errors"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// lp is a length-prefixed (binary batch) message.
func lp(msg string) []byte { return appendBatched(nil, proto.MsgPack, jsonRecordSep, []byte(msg)) }

// collectBatch splits batch with splitBatch and returns the messages.
func collectBatch(batch []byte, ser proto.Serializer) ([]string, error) {
	var out []string
	err := splitBatch(batch, ser, jsonRecordSep, func(msg []byte) error {
		out = append(out, string(msg))
		return nil
	})
	return out, err
}

func TestSplitBatch(t *testing.T) {
	tests := []struct {
		name  string
		ser   proto.Serializer
		batch []byte
		want  []string
		err   error
	}{
		{"json one", proto.JSON, []byte("[1]\x1e"), []string{"[1]"}, nil},
		{"json three", proto.JSON, []byte(`[1,"a"]` + "\x1e[2]\x1e[3,{}]\x1e"), []string{`[1,"a"]`, "[2]", "[3,{}]"}, nil},
		{"json empty batch", proto.JSON, nil, nil, errBatchEmpty},
		{"json unterminated", proto.JSON, []byte("[1]"), nil, errBatchUnterminated},
		{"json trailing bytes", proto.JSON, []byte("[1]\x1e[2]"), nil, errBatchUnterminated},
		{"json lone separator", proto.JSON, []byte("\x1e"), nil, errBatchEmptyMessage},
		{"json double separator", proto.JSON, []byte("[1]\x1e\x1e"), nil, errBatchEmptyMessage},
		{"msgpack one", proto.MsgPack, lp("\x91\x01"), []string{"\x91\x01"}, nil},
		{"msgpack two", proto.MsgPack, cat(lp("\x91\x01"), lp("\x92\x02\xa1x")), []string{"\x91\x01", "\x92\x02\xa1x"}, nil},
		{"cbor two", proto.CBOR, cat(lp("\x81\x01"), lp("\x81\x02")), []string{"\x81\x01", "\x81\x02"}, nil},
		{"msgpack empty batch", proto.MsgPack, []byte{}, nil, errBatchEmpty},
		{"msgpack length past end", proto.MsgPack, []byte{0, 0, 0, 3, 0x91, 0x01}, nil, errBatchTruncated},
		{"msgpack length 2^32-1", proto.MsgPack, []byte{0xff, 0xff, 0xff, 0xff, 0x91}, nil, errBatchTruncated},
		{"msgpack cut prefix", proto.MsgPack, []byte{0, 0, 0}, nil, errBatchTruncated},
		{"msgpack cut second prefix", proto.MsgPack, cat(lp("\x91\x01"), []byte{0, 0}), nil, errBatchTruncated},
		{"msgpack second length past end", proto.MsgPack, cat(lp("\x91\x01"), []byte{0, 0, 1, 0, 1}), nil, errBatchTruncated},
		{"msgpack zero length", proto.MsgPack, []byte{0, 0, 0, 0}, nil, errBatchEmptyMessage},
		{"msgpack zero length after one", proto.MsgPack, cat(lp("\xc0"), []byte{0, 0, 0, 0}), nil, errBatchEmptyMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := collectBatch(tt.batch, tt.ser)
			if err != tt.err {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			// A malformed batch dispatches nothing.
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("message %d = %q, want %q", i, got[i], tt.want[i])
				}
			}
			if tt.err != nil {
				return
			}
			// Re-framing the messages gives back the batch.
			var again []byte
			for _, m := range got {
				again = appendBatched(again, tt.ser, jsonRecordSep, []byte(m))
			}
			if !bytes.Equal(again, tt.batch) {
				t.Fatalf("re-framed % x, want % x", again, tt.batch)
			}
		})
	}
}

func TestBatchReaderStreams(t *testing.T) {
	// The iterator yields the good messages before the bad one.
	br := newBatchReader([]byte("[1]\x1e[2]"), proto.JSON, jsonRecordSep)
	if m, err := br.next(); string(m) != "[1]" || err != nil {
		t.Fatalf("first: %q %v", m, err)
	}
	if _, err := br.next(); err != errBatchUnterminated {
		t.Fatalf("second: %v", err)
	}
	if m, err := br.next(); m != nil || err != nil {
		t.Fatalf("after an error: %q %v", m, err)
	}
	empty := newBatchReader(nil, proto.CBOR, jsonRecordSep)
	if _, err := empty.next(); err != errBatchEmpty {
		t.Fatalf("empty: %v", err)
	}
}

func TestSplitBatchCallbackError(t *testing.T) {
	stop := errors.New("stop")
	calls := 0
	err := splitBatch([]byte("[1]\x1e[2]\x1e[3]\x1e"), proto.JSON, jsonRecordSep, func([]byte) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 2 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
}

func TestSplitBatchNoAlloc(t *testing.T) {
	json := []byte("[1]\x1e[2,3]\x1e[4]\x1e")
	bin := cat(lp("\x91\x01"), lp("\x92\x02\x03"))
	total := 0
	allocs := testing.AllocsPerRun(100, func() {
		count := func(msg []byte) error { total += len(msg); return nil }
		if splitBatch(json, proto.JSON, jsonRecordSep, count) != nil || splitBatch(bin, proto.MsgPack, jsonRecordSep, count) != nil {
			t.Fatal("split failed")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations, want 0", allocs)
	}
}

func TestBatchedWriters(t *testing.T) {
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		msgs := [][]byte{[]byte("[36,1,2,{}]"), []byte("x"), bytes.Repeat([]byte("y"), 70000)}
		var viaAppend []byte
		for _, m := range msgs {
			viaAppend = appendBatched(viaAppend, ser, jsonRecordSep, m)
		}
		want := 0
		for _, m := range msgs {
			want += batchedLen(ser, len(m))
		}
		if len(viaAppend) != want {
			t.Fatalf("%v: batchedLen says %d, got %d", ser, want, len(viaAppend))
		}
		got, err := collectBatch(viaAppend, ser)
		if err != nil || len(got) != len(msgs) {
			t.Fatalf("%v: split back: %d messages, %v", ser, len(got), err)
		}
		for i := range got {
			if got[i] != string(msgs[i]) {
				t.Fatalf("%v: message %d differs", ser, i)
			}
		}
	}
}

// TestBatchAutobahnSeparator: Autobahn|Python ends each message of a JSON
// batch with 0x18 (its b'\30' is octal), not the spec's 0x1e; a
// connection takes the separator its peer's first batch ends with and
// uses it both ways.
func TestBatchAutobahnSeparator(t *testing.T) {
	ab := []byte("[1,\"realm1\",{}]\x18[2]\x18")
	if sep := batchSepOf(ab); sep != autobahnRecordSep {
		t.Fatalf("batchSepOf(Autobahn's batch) = %#x", sep)
	}
	if sep := batchSepOf([]byte("[1]\x1e")); sep != jsonRecordSep {
		t.Fatalf("batchSepOf(the spec's batch) = %#x", sep)
	}
	got, err := collectBatchSep(ab, autobahnRecordSep)
	if err != nil || len(got) != 2 || got[0] != "[1,\"realm1\",{}]" || got[1] != "[2]" {
		t.Fatalf("split: %q %v", got, err)
	}
	// One separator per connection: the other one does not end a message.
	if _, err := collectBatchSep(ab, jsonRecordSep); err != errBatchUnterminated {
		t.Fatalf("0x18 batch read with 0x1e: %v", err)
	}
	var out []byte
	for _, m := range got {
		out = appendBatched(out, proto.JSON, autobahnRecordSep, []byte(m))
	}
	if !bytes.Equal(out, ab) {
		t.Fatalf("written % x, want % x", out, ab)
	}
}

func collectBatchSep(batch []byte, sep byte) ([]string, error) {
	var got []string
	err := splitBatch(batch, proto.JSON, sep, func(msg []byte) error {
		got = append(got, string(msg))
		return nil
	})
	return got, err
}
