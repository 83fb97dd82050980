package route_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// TestForceReregisterReplacesSameIdentity (interopatk's "Real clients"):
// REGISTER.Options.force_reregister (Crossbar.io's; Autobahn|Python's
// RegisterOptions(force_reregister=True)) was ignored: a service
// restarting while its old session lingered (a half-open connection) got
// wamp.error.procedure_already_exists. A REGISTER with it now replaces the
// registration's callees when every one has the session's authid and
// authrole (on any loop): each is taken off it, told with UNREGISTERED
// (registration revocation) when it announced the feature, and the new
// callee gets REGISTERED, with its own policy. Another identity's callee
// is not replaced: the REGISTER is refused as without the option.
func TestForceReregisterReplacesSameIdentity(t *testing.T) {
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func(authid string) *client.Session {
		t.Helper()
		s, err := client.Dial(ctx, client.Config{URL: "rs://" + e.Addrs()[0].String(), Realm: "extra", Serializer: proto.JSON,
			AuthID: authid, AuthMethods: []string{"x-extra"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	answer := func(who string) client.Handler {
		return func(context.Context, *client.Invocation) (*client.Result, error) {
			return &client.Result{Args: []any{who}}, nil
		}
	}
	force := &client.RegisterOptions{Options: map[string]any{"force_reregister": true}}
	caller := dial("caller")
	callsGo := func(proc, want string) {
		t.Helper()
		for i := 0; i < 4; i++ {
			res, err := caller.Call(ctx, proc, nil, nil, nil)
			if err != nil {
				t.Fatalf("call %s: %v", proc, err)
			}
			if res.Args[0] != want {
				t.Fatalf("call %s answered by %v, want %s", proc, res.Args[0], want)
			}
		}
	}
	revoked := func(regs ...*client.Registration) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for _, reg := range regs {
			for reg.Active() {
				if time.Now().After(deadline) {
					t.Fatalf("the replaced callee's registration %d is still active (no UNREGISTERED)", reg.ID())
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}

	t.Run("single", func(t *testing.T) {
		old := dial("svc")
		oldReg, err := old.Register(ctx, "com.svc.one", answer("old"), nil)
		if err != nil {
			t.Fatal(err)
		}
		newer := dial("svc")
		if _, err := newer.Register(ctx, "com.svc.one", answer("new"), force); err != nil {
			t.Fatalf("REGISTER with force_reregister by the same authid: %v", err)
		}
		revoked(oldReg)
		callsGo("com.svc.one", "new")
		if old.Err() != nil {
			t.Fatalf("the replaced callee's session ended: %v", old.Err())
		}
	})

	t.Run("shared on both loops", func(t *testing.T) {
		var regs []*client.Registration
		loops := map[int]bool{}
		for i := 0; i < 6; i++ { // both loops take some
			s := dial("svc")
			reg, err := s.Register(ctx, "com.svc.rr", answer("old"), &client.RegisterOptions{Invoke: "roundrobin"})
			if err != nil {
				t.Fatal(err)
			}
			regs = append(regs, reg)
			loops[route.SessionShard(r, "extra", s.ID())] = true
		}
		if len(loops) != 2 {
			t.Fatalf("the old callees are on loops %v, want both", loops)
		}
		if _, err := dial("svc").Register(ctx, "com.svc.rr", answer("new"), force); err != nil {
			t.Fatalf("REGISTER with force_reregister by the same authid: %v", err)
		}
		revoked(regs...)
		callsGo("com.svc.rr", "new")
	})

	t.Run("other identity", func(t *testing.T) {
		oldReg, err := dial("svc").Register(ctx, "com.svc.two", answer("old"), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = dial("intruder").Register(ctx, "com.svc.two", answer("intruder"), force)
		var we *client.Error
		if !errors.As(err, &we) || we.URI != proto.URIProcedureAlreadyExists {
			t.Fatalf("REGISTER with force_reregister by another authid: %v, want ERROR %s", err, proto.URIProcedureAlreadyExists)
		}
		if !oldReg.Active() {
			t.Fatal("another authid's force_reregister took the registration away")
		}
		callsGo("com.svc.two", "old")
	})
}
