package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestHTTPCalleeInFlightBytesBounded: the request bodies an HTTP callee
// holds for an upstream that has not answered are bounded in bytes
// (max_in_flight_bytes), not only in number: past the bound a call is
// refused wamp.error.unavailable at once (the caller, with no other
// callee, gets no_available_callee), counted as callee_bytes; smaller
// calls still fit, and one larger than the bound is taken when nothing is
// in flight. Before, one caller's 64 calls (max_concurrent) of 8 MiB to
// an upstream slow to answer held 538 MiB until its timeout.
func TestHTTPCalleeInFlightBytesBounded(t *testing.T) {
	laneFree(t)
	var got atomic.Int64
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`"ok"`))
	}))
	t.Cleanup(up.Close)
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
	})
	e := newEnv(t, func(o *Options) {
		o.Callees = []Callee{{Realm: "realm1", Procedure: "com.bytes", URL: up.URL, Timeout: 20 * time.Second, MaxInFlightBytes: 3 << 19}} // 1.5 MiB
	})
	caller := e.dial("realm1", proto.MsgPack)
	waitRegistered(t, caller, "com.bytes")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mib := strings.Repeat("m", 1<<20)
	call := func(arg string) chan error {
		done := make(chan error, 1)
		go func() {
			_, err := caller.Call(ctx, "com.bytes", []any{arg}, nil, nil)
			done <- err
		}()
		return done
	}
	first := call(mib)
	waitFor(t, "the first call at the upstream", func() bool { return got.Load() == 1 })
	ctx2, cancel2 := context.WithTimeout(ctx, 4*time.Second) // not refused: it waits for the upstream
	defer cancel2()
	_, err := caller.Call(ctx2, "com.bytes", []any{mib}, nil, nil)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.URI != proto.URINoAvailableCallee {
		t.Fatalf("a second call of 1 MiB past max_in_flight_bytes 1.5 MiB: %v, want %s", err, proto.URINoAvailableCallee)
	}
	if n := refusals(e.gw, refusedCalleeBytes); n != 1 {
		t.Fatalf("%d refusals callee_bytes, want 1", n)
	}
	small := call("small")
	waitFor(t, "a small call at the upstream beside the first", func() bool { return got.Load() == 2 })
	released = true
	close(release)
	for _, done := range []chan error{first, small} {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	m, _ := e.gw.metrics.calleeStats.Load("com.bytes")
	waitFor(t, "no bytes in flight", func() bool { return m.(*calleeMetrics).inflightBytes.Load() == 0 })
	// Larger than the bound, alone: taken.
	if err := <-call(strings.Repeat(mib, 2)); err != nil {
		t.Fatalf("a call of 2 MiB with nothing in flight: %v", err)
	}
}
