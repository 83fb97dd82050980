package client

import (
	"context"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// The client's CBOR encoder wrote every *big.Int as a bignum, while
// proto's readers (the Go client's among them) refuse integers beyond
// 8192 bits: a CBOR publisher's -2^8192 (tag 3 over 1024 bytes of 0xff)
// or 2^8192 was acknowledged by the router, passed to a CBOR subscriber
// as it came, and refused by its reader: the event lost, Publish nil.
// The encoder refuses them now, as its JSON form does, and what it writes
// its own reader takes: the bounds round-trip between two Go clients.
func TestCBORBignumRoundTrip(t *testing.T) {
	url := startRouter(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sub, err := Dial(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.CBOR})
	noErr(t, "Dial subscriber", err)
	t.Cleanup(func() { sub.Close() })
	pub, err := Dial(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.CBOR})
	noErr(t, "Dial publisher", err)
	t.Cleanup(func() { pub.Close() })
	got := make(chan *Event, 8)
	_, err = sub.Subscribe(ctx, "com.example.big", func(e *Event) { got <- e }, nil)
	noErr(t, "Subscribe", err)

	two8192 := new(big.Int).Lsh(big.NewInt(1), 8192)
	max := new(big.Int).Sub(two8192, big.NewInt(1))
	ack := &PublishOptions{Acknowledge: true}
	for _, v := range []*big.Int{two8192, new(big.Int).Neg(two8192)} {
		err := pub.Publish(ctx, "com.example.big", []any{v}, nil, ack)
		if err == nil || !strings.Contains(err.Error(), "8192 bits") {
			t.Errorf("Publish of a %d-bit integer (sign %d): %v, want it refused (beyond 8192 bits)", v.BitLen(), v.Sign(), err)
		}
	}
	for _, v := range []*big.Int{max, new(big.Int).Neg(max)} {
		noErr(t, "Publish ±(2^8192-1)", pub.Publish(ctx, "com.example.big", []any{v}, nil, ack))
		select {
		case e := <-got:
			b, ok := e.Args[0].(*big.Int)
			if len(e.Args) != 1 || !ok || b.Cmp(v) != 0 {
				t.Fatalf("the subscriber got %T (%d args), want the %d-bit integer (sign %d) sent", e.Args[0], len(e.Args), v.BitLen(), v.Sign())
			}
		case <-sub.Done():
			t.Fatalf("the subscriber's session ended: %v", sub.Err())
		case <-ctx.Done():
			t.Fatalf("the %d-bit integer (sign %d) did not reach the subscriber", v.BitLen(), v.Sign())
		}
	}
	select {
	case e := <-got:
		t.Fatalf("an extra event: %d args", len(e.Args))
	default:
	}
}
