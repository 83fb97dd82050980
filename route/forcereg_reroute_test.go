package route_test

import (
	"context"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A call held by an old callee of a shared registration that a
// force_reregister replaced (e6ea2f7), which answers it
// wamp.error.unavailable, is rerouted among the callees of the
// registration that now holds the procedure: the replaced one has only
// its old callees, which are leaving. Before, it was rerouted within the
// replaced registration, and the caller got wamp.error.no_available_callee
// though the new callee held the procedure.
func TestRerouteAfterForceReregister(t *testing.T) {
	rerouteAfterForceReregister(t, "roundrobin")
}

// As TestRerouteAfterForceReregister, the new registration of the default
// policy (single: a force_reregister from a client that names none, as
// Autobahn's RegisterOptions(force_reregister=True)). Its one callee has
// not been tried: the call goes to it. Before, the pick refused any
// single registration (its one callee was the one that answered), and
// the caller got wamp.error.no_available_callee.
func TestRerouteAfterForceReregisterSingle(t *testing.T) {
	rerouteAfterForceReregister(t, "")
}

// rerouteAfterForceReregister: two roundrobin callees, one holding a
// call; a third session of their authid takes the procedure over with
// force_reregister and the policy invoke ("" names none); the holder then
// answers unavailable, and the call must reach the new callee.
func rerouteAfterForceReregister(t *testing.T, invoke string) {
	_, dial := startAuthLoopsWith(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const proc = "com.svc.pool"
	invoked := make(chan struct{}, 2)
	answer := make(chan struct{})
	old := func(context.Context, *client.Invocation) (*client.Result, error) {
		invoked <- struct{}{}
		<-answer
		return nil, &client.Error{URI: proto.URIUnavailable}
	}
	for i := range 2 {
		if _, err := dial("a", "svc", i).Register(ctx, proc, old, &client.RegisterOptions{Invoke: "roundrobin"}); err != nil {
			t.Fatal(err)
		}
	}
	caller := dial("a", "caller", 0)
	type res struct {
		r   *client.Result
		err error
	}
	done := make(chan res, 1)
	go func() {
		r, err := caller.Call(ctx, proc, nil, nil, nil)
		done <- res{r, err}
	}()
	select {
	case <-invoked:
	case <-ctx.Done():
		t.Fatal("no old callee was invoked")
	}
	if _, err := dial("a", "svc", 0).Register(ctx, proc, func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"new"}}, nil
	}, &client.RegisterOptions{Invoke: invoke, Options: map[string]any{"force_reregister": true}}); err != nil {
		t.Fatalf("force_reregister (invoke %q): %v", invoke, err)
	}
	close(answer) // the old callee holding the call answers it unavailable
	r := <-done
	if r.err != nil {
		t.Fatalf("the call held by a replaced callee that answered %s, the new registration's invoke %q: %v, want the new callee's result", proto.URIUnavailable, invoke, r.err)
	}
	if len(r.r.Args) != 1 || r.r.Args[0] != "new" {
		t.Fatalf("the call's result: %v, want [new]", r.r.Args)
	}
}
