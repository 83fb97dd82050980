package proto

import (
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"
)

// msgpackArray is a MsgPack array32 of n copies of el.
func msgpackArray(n int, el []byte) []byte {
	b := []byte{0xdd, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	for range n {
		b = append(b, el...)
	}
	return b
}

// budgetShapes are payloads whose generic Go form costs far more than
// their encoding, and a few ordinary ones.
var budgetShapes = []struct {
	name string
	r    Raw
}{
	{"empty maps", Raw{Ser: MsgPack, B: msgpackArray(1<<16, []byte{0x80})}},
	{"empty arrays", Raw{Ser: MsgPack, B: msgpackArray(1<<16, []byte{0x90})}},
	{"one-entry maps", Raw{Ser: MsgPack, B: msgpackArray(1<<16, []byte{0x81, 0xa1, 'x', 1})}},
	{"nils", Raw{Ser: MsgPack, B: msgpackArray(1<<16, []byte{0xc0})}},
	{"negative fixints", Raw{Ser: MsgPack, B: msgpackArray(1<<16, []byte{0xff})}},
	{"floats", Raw{Ser: CBOR, B: append([]byte{0x9a, 0, 1, 0, 0}, strings.Repeat("\xfb\x40\x09\x21\xfb\x54\x44\x2d\x18", 1<<16)...)}},
	{"short strings", Raw{Ser: MsgPack, B: msgpackArray(1<<16, []byte{0xa3, 'a', 'b', 'c'})}},
	{"JSON empty maps", Raw{Ser: JSON, B: []byte("[" + strings.Repeat("{},", 1<<16-1) + "{}]")}},
	{"JSON small ints", Raw{Ser: JSON, B: []byte("[" + strings.Repeat("1,", 1<<16-1) + "1]")}},
	{"JSON records", Raw{Ser: JSON, B: []byte("[" + strings.Repeat(`{"id":1234,"name":"alice","tags":["a","b"]},`, 1<<12-1) + `{"id":1}]`)}},
}

// DecodeValueBudget charges about what the decoded value really holds:
// never much less (or the bound would not hold), not far more (or
// ordinary payloads would be refused). Measured on the live heap, so
// without the race detector, which allocates on its own.
func TestDecodeValueBudgetEstimate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes the heap")
	}
	for _, tc := range budgetShapes {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		budget := math.MaxInt
		v, err := DecodeValueBudget(tc.r, &budget)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		live := float64(int64(after.HeapAlloc) - int64(before.HeapAlloc))
		runtime.KeepAlive(v)
		charged := float64(math.MaxInt - budget)
		t.Logf("%-16s %8d bytes: charged %9.0f (%4.1fx), live heap %9.0f (%4.1fx)", tc.name, len(tc.r.B), charged, charged/float64(len(tc.r.B)), live, live/float64(len(tc.r.B)))
		if charged < 0.8*live || charged > 1.5*live {
			t.Errorf("%s: charged %.0f bytes for a live heap of %.0f", tc.name, charged, live)
		}
	}
}

// A value over the budget is refused, whatever the shape and serializer;
// one under it decodes and leaves the rest of the budget.
func TestDecodeValueBudgetRefuses(t *testing.T) {
	for _, tc := range budgetShapes {
		full := math.MaxInt
		if _, err := DecodeValueBudget(tc.r, &full); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		cost := math.MaxInt - full
		budget := cost - 1
		if _, err := DecodeValueBudget(tc.r, &budget); !errors.Is(err, ErrDecodedTooLarge) {
			t.Errorf("%s: a budget one byte short of %d: %v, want ErrDecodedTooLarge", tc.name, cost, err)
		}
		budget = cost + 10
		if _, err := DecodeValueBudget(tc.r, &budget); err != nil || budget != 10 {
			t.Errorf("%s: a budget of %d: %v, %d left; want nil, 10 left", tc.name, cost+10, err, budget)
		}
	}
	// A declared length beyond the input is charged for the input only.
	b := []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0}
	budget := 100
	if _, err := DecodeValueBudget(Raw{Ser: MsgPack, B: b}, &budget); !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrLength) {
		t.Errorf("a 4G-element array header on 1 byte: %v, want a truncation error", err)
	}
}
