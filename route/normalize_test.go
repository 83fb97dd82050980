package route

import (
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A payload marked to be normalized (proto.Raw.Normalize: a MsgPack
// undefined, which msgpack5 cannot decode) keeps its mark when a shard
// copies it for another shard, and a node that gets it from another node
// marks it again: else its MsgPack peers would get the bytes as they came.
func TestNormalizeKeptAcrossShardsAndNodes(t *testing.T) {
	// [1, undefined] and {"a": undefined, "b": 2}, as msgpackr writes them.
	args := []byte{0x92, 0x01, 0xd4, 0x00, 0x00}
	kwargs := []byte{0x82, 0xa1, 'a', 0xd4, 0x00, 0x00, 0xa1, 'b', 0x02}
	m := &proto.Message{Type: proto.CodePublish,
		Args:   proto.Raw{Ser: proto.MsgPack, Normalize: true, B: args},
		Kwargs: proto.Raw{Ser: proto.MsgPack, Normalize: true, B: kwargs}}
	c := carryOf(m, true)
	if !c.args.Normalize || !c.kwargs.Normalize {
		t.Fatalf("carried across shards: Normalize %v %v, want true", c.args.Normalize, c.kwargs.Normalize)
	}
	w := wbuf(nil)
	w.payload(&carry{args: proto.Raw{Ser: proto.MsgPack, B: args}, kwargs: proto.Raw{Ser: proto.MsgPack, B: kwargs}})
	var got carry
	r := rbuf{b: w}
	r.payload(&got)
	if r.err != nil || !got.args.Normalize || !got.kwargs.Normalize {
		t.Fatalf("from another node: %v, Normalize %v %v, want true", r.err, got.args.Normalize, got.kwargs.Normalize)
	}
	out, err := proto.Append(nil, proto.MsgPack, &proto.Message{Type: proto.CodeEvent, ID: 1, ID2: 2, Args: got.args, Kwargs: got.kwargs})
	if err != nil {
		t.Fatal(err)
	}
	// [36, 1, 2, {}, [1, nil], {"b": 2}]
	if want := "96240102809201c081a16202"; string(hexOf(out)) != want {
		t.Fatalf("EVENT to MsgPack: %x, want %s", out, want)
	}
}

func hexOf(b []byte) []byte {
	const d = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, d[c>>4], d[c&15])
	}
	return out
}
