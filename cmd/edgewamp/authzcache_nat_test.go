package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestSmallBoardNATOfDevicesSubscribes: deploy/small-board.yaml (RBAC on,
// subscription_bytes 16 MiB: a client address's quarter 4 MiB) and a NAT
// of ordinary devices, all one address: each calls 300 procedures of its
// own (~40-byte URIs, every call authorized and its decision cached) and
// holds 30 subscriptions. Their subscriptions (30 × ~420 bytes each) fit
// the quarter for ~300 devices; a session's authorization cache must not
// take them from its owner: the cache is capped rather than a SUBSCRIBE
// refused. When the caches were charged to the subscriptions' quarter
// (32 KiB each here), the 92nd device's SUBSCRIBEs were refused.
func TestSmallBoardNATOfDevicesSubscribes(t *testing.T) {
	const (
		devices = 128
		uris    = 300
		subs    = 30
	)
	r := startRouter(t, "-config", "../../deploy/small-board.yaml")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var (
		mu       sync.Mutex
		sessions []*client.Session
	)
	t.Cleanup(func() {
		for _, s := range sessions {
			s.Close()
		}
	})
	device := func(d int) error {
		s := r.dial("rs://"+r.addr, proto.MsgPack)
		mu.Lock()
		sessions = append(sessions, s)
		mu.Unlock()
		for i := range uris {
			_, err := s.Call(ctx, fmt.Sprintf("com.example.device%04d.procedure.%04d", d, i), nil, nil, nil)
			var we *client.Error
			if !errors.As(err, &we) || we.URI != proto.URINoSuchProcedure {
				return fmt.Errorf("device %d: call %d: %v, want %s", d, i, err, proto.URINoSuchProcedure)
			}
		}
		for i := range subs {
			if _, err := s.Subscribe(ctx, fmt.Sprintf("com.example.device%04d.topic.%04d", d, i), func(*client.Event) {}, nil); err != nil {
				return fmt.Errorf("device %d: SUBSCRIBE %d refused: %w", d, i, err)
			}
		}
		return nil
	}
	// Four devices at a time.
	for d := 0; d < devices; d += 4 {
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for k := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[k] = device(d + k)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("a NAT of devices with %d subscriptions and %d URIs each: refused from its device %d: %v\n%s", subs, uris, d, err, r.logs())
		}
	}
	t.Logf("%d devices of one address, %d subscriptions and %d URIs each: every SUBSCRIBE accepted", devices, subs, uris)
}
