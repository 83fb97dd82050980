package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestCalleeCanceledMidAnswerNotUpstreamFailure: a call its caller
// cancels while the HTTP callee reads the upstream's answer is the
// caller's doing, as a cancel before the answer's head is: it is not
// logged as the upstream's answer cut short. Before, the body read's
// context.Canceled went to the warning about the upstream, naming a
// healthy upstream as failing.
func TestCalleeCanceledMidAnswerNotUpstreamFailure(t *testing.T) {
	laneFree(t)
	reading := make(chan struct{}, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`["part`))
		w.(http.Flusher).Flush()
		reading <- struct{}{}
		<-r.Context().Done() // the rest never comes: the caller cancels first
	}))
	defer upstream.Close()
	var logs lockedBuf
	e := newEnv(t, func(o *Options) {
		o.Logger = logs.logger()
		o.Callees = []Callee{{Name: "slow", Realm: "realm1", Procedure: "com.slow", URL: upstream.URL}}
	})
	caller := e.dial("realm1", proto.JSON)
	waitRegistered(t, caller, "com.slow")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := caller.Call(ctx, "com.slow", nil, nil, &client.CallOptions{CancelMode: "kill"})
		done <- err
	}()
	select {
	case <-reading:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream was not called")
	}
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), proto.URICanceled) {
			t.Fatalf("the canceled call: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the canceled call did not end")
	}
	m := e.gw.runners.Load().callees[0].m
	waitFor(t, "the invocation's end", func() bool { return m.inflight.Load() == 0 })
	count := func(outcome string) uint64 {
		if v, ok := m.outcomes.Load(outcome); ok {
			return v.(*atomic.Uint64).Load()
		}
		return 0
	}
	if l := logs.String(); strings.Contains(l, "cut short") || strings.Contains(l, "upstream failed") || count("canceled") != 1 || count("failure") != 0 {
		t.Fatalf("a canceled call was counted canceled %d, failure %d, logged as the upstream's failure:\n%s", count("canceled"), count("failure"), l)
	}
}
