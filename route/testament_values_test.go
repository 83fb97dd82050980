package route

import (
	"math/big"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A testament's payload reaches the subscribers as its session sent it:
// JSON and CBOR carry integers beyond MsgPack's range (below -2^63, from
// 2^64), which a testament held in MsgPack turned into float64s
// (18446744073709551616 became 1.8446744073709552e+19 for every
// subscriber), and a CBOR date (tag 1) became a bare number, where a
// PUBLISH of the same payload reaches them exact.
func TestTestamentKeepsValuesExact(t *testing.T) {
	e := newEnv(t, 2, nil)
	subJ, subC, subM := e.join(proto.JSON), e.join(proto.CBOR), e.join(proto.MsgPack)
	for _, s := range []*tc{subJ, subC, subM} {
		s.subscribe("com.dead", nil)
	}
	big64, _ := new(big.Int).SetString("18446744073709551616", 10)          // 2^64
	bigNeg, _ := new(big.Int).SetString("-9223372036854775809", 10)         // -2^63 - 1
	huge, _ := new(big.Int).SetString("123456789012345678901234567890", 10) // a bignum
	date := time.Unix(1600000000, 0).UTC()
	for _, ser := range []proto.Serializer{proto.JSON, proto.CBOR} {
		c := e.join(ser)
		c.callMeta("wamp.session.add_testament", []any{"com.dead", []any{big64, bigNeg, huge, int64(7), 1.5, date}, map[string]any{"n": big64}}, nil)
		c.drop()
		ej, ec, em := subJ.expect(proto.CodeEvent), subC.expect(proto.CodeEvent), subM.expect(proto.CodeEvent)
		// A date is a JSON client's text (as JSON.stringify writes it).
		if want := `[18446744073709551616,-9223372036854775809,123456789012345678901234567890,7,1.5,"2020-09-13T12:26:40Z"]`; ser == proto.JSON && string(ej.Args.B) != want {
			t.Errorf("%s testament: the JSON subscriber got %s, want %s", ser, ej.Args.B, want)
		}
		if want := `[18446744073709551616,-9223372036854775809,123456789012345678901234567890,7,1.5,1600000000]`; ser == proto.CBOR && string(ej.Args.B) != want {
			t.Errorf("%s testament: the JSON subscriber got %s, want %s", ser, ej.Args.B, want)
		}
		if want := `{"n":18446744073709551616}`; string(ej.Kwargs.B) != want {
			t.Errorf("%s testament: the JSON subscriber got ArgumentsKw %s, want %s", ser, ej.Kwargs.B, want)
		}
		a := argsOf(ec)
		if len(a) != 6 {
			t.Fatalf("%s testament: the CBOR subscriber got %v", ser, a)
		}
		for i, w := range []*big.Int{big64, bigNeg, huge} {
			if g, ok := a[i].(*big.Int); !ok || g.Cmp(w) != 0 {
				if u, ok := a[i].(uint64); !ok || !w.IsUint64() || u != w.Uint64() {
					t.Errorf("%s testament: the CBOR subscriber got %T %v, want the integer %v", ser, a[i], a[i], w)
				}
			}
		}
		if ser == proto.CBOR {
			if d, ok := argsOf(em)[5].(time.Time); !ok || !d.Equal(date) {
				t.Errorf("a CBOR client's date in a testament: the MsgPack subscriber got %T %v, want the timestamp %v", argsOf(em)[5], argsOf(em)[5], date)
			}
		}
	}
}
