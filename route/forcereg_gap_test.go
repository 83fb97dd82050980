package route_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A REGISTER with force_reregister takes the procedure over in one step:
// its old callees leave the registration and the new callee joins it
// together, so that no call finds the procedure gone and no other
// session's REGISTER can take it meanwhile. Before, each old callee was
// taken off on its own loop (the registration deleted with the last),
// and the new callee added once that loop had told the REGISTER's loop:
// while the REGISTER's loop was busy (here stalled at that moment), calls
// got wamp.error.no_such_procedure and another authid's REGISTER of the
// procedure won it, the force_reregister then refused
// procedure_already_exists.
func TestForceReregisterHasNoGap(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "extra", Authenticators: []route.Authenticator{extraAuth{}}}}, Shards: 2, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	e, err := loop.New(r, loop.Options{Listeners: []loop.Listener{{Addr: "127.0.0.1:0"}}, PingInterval: -1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Shutdown(ctx)
	})
	lr := &loopRouter{t: t, r: r, addr: e.Addrs()[0].String()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dialOn := func(authid string, idx int) *client.Session {
		t.Helper()
		for range 32 {
			s, err := client.Dial(ctx, client.Config{URL: "rs://" + lr.addr, Realm: "extra", Serializer: proto.MsgPack,
				AuthID: authid, AuthMethods: []string{"x-extra"}})
			if err != nil {
				t.Fatal(err)
			}
			if route.SessionShard(r, "extra", s.ID()) == idx {
				t.Cleanup(func() { s.Close() })
				return s
			}
			defer s.Close()
		}
		t.Fatalf("no session landed on loop %d", idx)
		return nil
	}
	const proc = "com.svc.proc"
	old := dialOn("svc", 1)
	if _, err := old.Register(ctx, proc, func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"old"}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	caller := dialOn("caller", 1)
	other := dialOn("other", 1)
	// The new callee: a RawSocket JSON session of the same authid on
	// loop 0, so that the test sees when that loop has read its REGISTER.
	var raw *rawJSON
	for raw == nil {
		c := dialRawJSON(t, lr.addr)
		c.write(`[1,"extra",{"authmethods":["x-extra"],"authid":"svc","roles":{"callee":{},"caller":{}}}]`)
		m := c.read()
		if m[0] != float64(proto.CodeWelcome) {
			t.Fatalf("HELLO answered %v", m)
		}
		if route.SessionShard(r, "extra", uint64(m[1].(float64))) == 0 {
			raw = c
		} else {
			c.c.Close()
		}
	}

	releaseOld := lr.stall(1)
	raw.write(`[64,1,{"force_reregister":true},"`+proc+`"]`, `[48,2,{},"wamp.session.count",[]]`)
	var registered []any
	for {
		m := raw.read()
		if m[0] == float64(proto.CodeResult) && m[1] == float64(2) {
			break // loop 0 has read the REGISTER
		}
		registered = m
	}
	releaseNew := lr.stall(0)
	releaseOld()
	// Loop 1 has run what the REGISTER posted there before this.
	ran := make(chan struct{})
	if err := r.Shard(1).Do(func() { close(ran) }); err != nil {
		t.Fatal(err)
	}
	<-ran

	// While the REGISTER's loop is busy: a call of the procedure, and
	// another authid's REGISTER of it.
	called := make(chan error, 1)
	go func() {
		res, err := caller.Call(ctx, proc, nil, nil, nil)
		if err == nil && (len(res.Args) != 1 || res.Args[0] != "new") {
			err = fmt.Errorf("answered %v, want the new callee's answer", res.Args)
		}
		called <- err
	}()
	var gap []string
	select {
	case err := <-called:
		gap = append(gap, "a call: "+errString(err))
	case <-time.After(200 * time.Millisecond): // waits for the new callee's loop
	}
	_, err = other.Register(ctx, proc, func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"other"}}, nil
	}, nil)
	var we *client.Error
	if !errors.As(err, &we) || we.URI != proto.URIProcedureAlreadyExists {
		gap = append(gap, "another authid's REGISTER: "+errString(err))
	}
	releaseNew()

	// The force_reregister's answer, and the call's INVOCATION answered.
	invoked := false
	for registered == nil || registered[0] != float64(proto.CodeRegistered) && registered[0] != float64(proto.CodeError) || !invoked && len(gap) == 0 {
		m := raw.read()
		switch m[0] {
		case float64(proto.CodeRegistered), float64(proto.CodeError):
			registered = m
		case float64(proto.CodeInvocation):
			invoked = true
			raw.write(fmt.Sprintf(`[70,%v,{},["new"]]`, int64(m[1].(float64))))
		}
	}
	if registered[0] != float64(proto.CodeRegistered) {
		gap = append(gap, fmt.Sprintf("the force_reregister: answered %v", registered))
	}
	if len(gap) > 0 {
		t.Fatalf("force_reregister left a gap while its loop was busy:\n%s", strings.Join(gap, "\n"))
	}
	if err := <-called; err != nil {
		t.Fatalf("the call made while the new callee's loop was busy: %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return "taken"
	}
	return err.Error()
}
