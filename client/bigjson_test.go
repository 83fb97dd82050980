package client

import (
	"context"
	"math/big"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A JSON integer beyond 8192 bits is refused wherever proto reads JSON:
// the router ends the session of a peer that sends one (ABORT
// wamp.error.protocol_violation). The client wrote any *big.Int as its
// digits, so a Go application publishing or calling with 2^8192 over JSON
// lost its session; MsgPack already refused it (beyond float64) with an
// error from Publish. Now JSON refuses it too, before sending.
func TestHugeBigIntRefusedBeforeSendingJSON(t *testing.T) {
	url := startRouter(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := Dial(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.JSON})
	noErr(t, "Dial", err)
	t.Cleanup(func() { s.Close() })
	huge := new(big.Int).Lsh(big.NewInt(1), 8192) // 2^8192, 2,467 digits
	for _, v := range []*big.Int{huge, new(big.Int).Neg(huge)} {
		err := s.Publish(ctx, "com.example.topic", []any{v}, nil, &PublishOptions{Acknowledge: true})
		if err == nil {
			t.Fatal("Publish returned no error")
		}
		if _, ok := err.(*Error); ok {
			t.Fatalf("Publish was sent and refused by the router: %v", err)
		}
	}
	largest := new(big.Int).Sub(huge, big.NewInt(1)) // 2^8192-1: taken
	noErr(t, "Publish 2^8192-1", s.Publish(ctx, "com.example.topic", []any{largest, new(big.Int).Neg(largest)}, nil, &PublishOptions{Acknowledge: true}))
	select {
	case <-s.Done():
		t.Fatalf("session ended: %v", s.Err())
	default:
	}
}
