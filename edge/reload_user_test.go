package edge

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// TestReloadRemovedUserCalleeMeshWide: a reload on A that removes alice
// ends her session there (GOODBYE killed); her single registration leaves
// the mesh: B's caller with a call in progress on her gets ERROR canceled,
// a new call from B no_such_procedure, and a callee on B registers the
// procedure (her claim given back).
func TestReloadRemovedUserCalleeMeshWide(t *testing.T) {
	t.Parallel()
	pw, err := route.HashPassword("alice-secret", 1000)
	if err != nil {
		t.Fatal(err)
	}
	users, err := route.NewUsers([]*route.User{{AuthID: "alice", Roles: []string{"user"}, Password: pw}})
	if err != nil {
		t.Fatal(err)
	}
	realm := func(u *route.Users) route.RealmConfig {
		return route.RealmConfig{Name: "realm1", Anonymous: true, Users: u,
			Authenticators: []route.Authenticator{&route.TicketAuth{Users: u}}}
	}
	ns := clusterConf(t, func(c *route.Config) { c.Realms = []route.RealmConfig{realm(users)} }, "a", "b")
	a, b := ns[0], ns[1]
	ctx := ctxT(t, 30*time.Second)
	alice, err := client.Dial(ctx, client.Config{URL: a.ws(), Realm: "realm1", Serializer: proto.JSON, AuthID: "alice",
		AuthMethods: []string{"ticket"}, OnChallenge: func(string, map[string]any) (string, map[string]any, error) {
			return "alice-secret", nil, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alice.Close() })
	started := make(chan struct{}, 1)
	if _, err := alice.Register(ctx, "com.alice", func(ictx context.Context, _ *client.Invocation) (*client.Result, error) {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ictx.Done()
		return nil, ictx.Err()
	}, &client.RegisterOptions{Invoke: "single"}); err != nil {
		t.Fatal(err)
	}
	caller := b.dial(b.rs(), proto.MsgPack)
	eventually(t, 10*time.Second, func() error {
		res, err := caller.Call(ctx, "wamp.registration.lookup", []any{"com.alice"}, nil, nil)
		if err != nil || len(res.Args) == 0 || res.Args[0] == nil {
			return fmt.Errorf("com.alice not yet known on B: %v", err)
		}
		return nil
	})
	inflight := goCall(caller, "com.alice")
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the call did not reach alice")
	}
	empty, _ := route.NewUsers(nil)
	if err := a.r.Reload([]route.RealmConfig{realm(empty)}); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-inflight:
		var we *client.Error
		if !errors.As(o.err, &we) || we.URI != proto.URICanceled {
			t.Fatalf("B's call in progress on alice when A removed her: %v %v, want %s", o.res, o.err, proto.URICanceled)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("B's call in progress on alice got no answer within 15 s of her removal")
	}
	eventually(t, 5*time.Second, func() error {
		_, err := caller.Call(ctx, "com.alice", nil, nil, nil)
		var we *client.Error
		if errors.As(err, &we) && we.URI == proto.URINoSuchProcedure {
			return nil
		}
		return fmt.Errorf("com.alice from B after A removed alice: %v", err)
	})
	calleeB := b.dial(b.ws(), proto.CBOR)
	if _, err := calleeB.Register(ctx, "com.alice", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"B"}}, nil
	}, &client.RegisterOptions{Invoke: "single"}); err != nil {
		t.Fatalf("REGISTER of com.alice on B after A removed alice: %v", err)
	}
	if res, err := caller.Call(ctx, "com.alice", nil, nil, nil); err != nil || len(res.Args) != 1 || res.Args[0] != "B" {
		t.Fatalf("com.alice from B: %v %v, want B's answer", res, err)
	}
}

// TestReloadRevokedRegistrationMeshWide: a reload on A whose role no
// longer lets A's callee register its single procedure revokes it there
// and takes it off the mesh: B's call in progress on it completes, a new
// call from B is answered no_such_procedure, and a callee on B registers
// the procedure (the claim given back).
func TestReloadRevokedRegistrationMeshWide(t *testing.T) {
	t.Parallel()
	realm := func(register bool) route.RealmConfig {
		z, err := route.NewRBAC([]route.Role{{Name: "anon", Permissions: []route.Permission{
			{URI: "com.", Match: proto.MatchPrefix, Call: true, Register: register, Subscribe: true, Publish: true}}}})
		if err != nil {
			t.Fatal(err)
		}
		return route.RealmConfig{Name: "realm1", Anonymous: true, AnonymousRole: "anon", Authorizer: z}
	}
	ns := clusterConf(t, func(c *route.Config) { c.Realms = []route.RealmConfig{realm(true)} }, "a", "b")
	a, b := ns[0], ns[1]
	ctx := ctxT(t, 30*time.Second)
	calleeA := a.dial(a.ws(), proto.JSON)
	started, open := gatedProc(ctx, t, calleeA, "com.x", "A")
	caller := b.dial(b.rs(), proto.MsgPack)
	callUntil(t, caller, "com.x", nil) // the gate closes
	inflight := goCall(caller, "com.x")
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the call did not reach A's callee")
	}
	if err := a.r.Reload([]route.RealmConfig{realm(false)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		_, err := caller.Call(ctx, "com.x", nil, nil, nil)
		var we *client.Error
		if errors.As(err, &we) && we.URI == proto.URINoSuchProcedure {
			return nil
		}
		return fmt.Errorf("com.x from B after A revoked it: %v", err)
	})
	calleeB := b.dial(b.ws(), proto.CBOR)
	if _, err := calleeB.Register(ctx, "com.x", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"B"}}, nil
	}, &client.RegisterOptions{Invoke: "single"}); err != nil {
		t.Fatalf("REGISTER of com.x on B after A revoked it: %v", err)
	}
	if res, err := caller.Call(ctx, "com.x", nil, nil, nil); err != nil || len(res.Args) != 1 || res.Args[0] != "B" {
		t.Fatalf("com.x from B: %v %v, want B's answer", res, err)
	}
	open()
	if o := <-inflight; o.err != nil || len(o.res.Args) != 1 || o.res.Args[0] != "A" {
		t.Fatalf("B's call in progress on A's callee at the revocation: %v %v, want A's answer", o.res, o.err)
	}
}
