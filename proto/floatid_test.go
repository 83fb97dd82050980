package proto

import (
	"encoding/binary"
	"math"
	"testing"
)

// JavaScript encoders (cbor-x as wampy configures it, msgpackr) write a
// number beyond 32 bits as a float64, so a client sends back the router's
// ids (random up to 2^53) as floats: UNSUBSCRIBE [34, 1, 4507997673880576.0].
// An integral float in [0, 2^53] is that id; anything else is refused.
func TestFloatIDs(t *testing.T) {
	cborMsg := func(f float64) []byte {
		b := []byte{0x83, 0x18, 34, 0x01, 0xfb}
		return binary.BigEndian.AppendUint64(b, math.Float64bits(f))
	}
	mpMsg := func(f float64) []byte {
		b := []byte{0x93, 34, 0x01, 0xcb}
		return binary.BigEndian.AppendUint64(b, math.Float64bits(f))
	}
	var d Decoder
	var m Message
	for _, f := range []float64{4507997673880576, 1, 0, MaxID} {
		for ser, b := range map[Serializer][]byte{CBOR: cborMsg(f), MsgPack: mpMsg(f)} {
			if err := d.Decode(ser, b, &m); err != nil || m.Type != CodeUnsubscribe || m.ID != uint64(f) || m.Request != 1 {
				t.Errorf("%v id %v: err %v, type %v id %d", ser, f, err, m.Type, m.ID)
			}
		}
	}
	if err := d.Decode(JSON, []byte(`[34, 1.0, 4507997673880576.0]`), &m); err != nil || m.ID != 4507997673880576 || m.Request != 1 {
		t.Errorf("JSON: err %v, id %d", err, m.ID)
	}
	for _, f := range []float64{1.5, -1, MaxID + 2, math.Inf(1), math.NaN(), 1e300} {
		for ser, b := range map[Serializer][]byte{CBOR: cborMsg(f), MsgPack: mpMsg(f)} {
			if err := d.Decode(ser, b, &m); err == nil {
				t.Errorf("%v id %v: accepted as %d", ser, f, m.ID)
			}
		}
	}
}
