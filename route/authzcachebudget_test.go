package route_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// okAuthorizer allows the URIs under com.ok. and counts the decisions
// asked of it.
type okAuthorizer struct{ asked atomic.Int64 }

func (a *okAuthorizer) Authorize(_ string, _ route.Action, uri string) bool {
	a.asked.Add(1)
	return strings.HasPrefix(uri, "com.ok.")
}

// A session's cache of authorization decisions (512 decisions and 16 KiB
// of URIs at most: 44 KB of heap with 32-byte URIs, measured) was in no
// budget: an address's 1,024 sessions could hold 45 MB of it, uncounted.
// It is charged to its owner's share of a budget as large as
// limits.subscription_bytes (the owner as for the session's
// subscriptions: an address, or an authid), apart from the
// subscriptions' (a cache must never make a SUBSCRIBE fail), 8 KiB at a
// time as it grows, given back when the session ends or a reload drops
// it; a charge refused caps the cache where it is. A session using 300
// URIs of 44 bytes (calls it keeps making) still hits it, the
// Authorizer asked once per URI.
func TestAuthzCacheChargedToOwnersSubscriptionShare(t *testing.T) {
	az := &okAuthorizer{}
	r, err := route.New(route.Config{
		Realms:               []route.RealmConfig{{Name: "realm1", Anonymous: true, AnonymousRole: "anon", Authorizer: az}},
		MaxSubscriptionBytes: 1 << 20, // an owner's quarter: 256 KiB
	})
	if err != nil {
		t.Fatal(err)
	}
	e, err := loop.New(r, loop.Options{Listeners: []loop.Listener{{Addr: "127.0.0.1:0"}}, PingInterval: -1})
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dial := func() *client.Session {
		s, err := client.Dial(ctx, client.Config{URL: "rs://" + e.Addrs()[0].String(), Realm: "realm1", Serializer: proto.MsgPack})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	call := func(s *client.Session, uri, want string) {
		_, err := s.Call(ctx, uri, nil, nil, nil)
		var we *client.Error
		if !errors.As(err, &we) || we.URI != want {
			t.Fatalf("CALL %s: %v, want %s", uri, err, want)
		}
	}
	pad := func(prefix string, i, n int) string {
		s := fmt.Sprintf("%s%d.", prefix, i)
		return s + strings.Repeat("a", n-len(s))
	}
	// A session using 300 URIs of 44 bytes.
	user := dial()
	round := func() int64 {
		before := az.asked.Load()
		for i := range 300 {
			call(user, pad("com.ok.", i, 44), proto.URINoSuchProcedure)
		}
		return az.asked.Load() - before
	}
	if n := round(); n != 300 {
		t.Fatalf("first round: %d decisions asked, want 300", n)
	}
	if n := round(); n != 0 {
		t.Fatalf("second round: %d decisions asked, want 0 (the cache hit)", n)
	}
	held := r.Stats().AuthzCacheBytes
	t.Logf("a session's cache of 300 decisions on 44-byte URIs is charged %d bytes", held)
	if held <= 0 {
		t.Fatalf("a session's cache of 300 decisions charged %d bytes: in no budget", held)
	}
	// Sessions of the same address filling their caches (512 refused
	// CALLs each, 32-byte URIs), five times the share.
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heap0 := ms.HeapAlloc
	const fillers = 24
	var fs []*client.Session
	for range fillers {
		s := dial()
		fs = append(fs, s)
		for i := range 512 {
			call(s, pad("x.", i, 32), proto.URINotAuthorized)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	st := r.Stats()
	t.Logf("%d sessions of one address, 512 refused CALLs each: %d bytes charged (the share is 262144), heap %+d bytes (%d a session, the client's included)",
		fillers, st.AuthzCacheBytes, int64(ms.HeapAlloc)-int64(heap0), (int64(ms.HeapAlloc)-int64(heap0))/fillers)
	if st.AuthzCacheBytes > 1<<18 {
		t.Fatalf("%d bytes charged to one address, past its quarter of the caches' budget (262144)", st.AuthzCacheBytes)
	}
	// The address's subscriptions are not refused for its caches: they
	// have a budget of their own.
	subscriber := dial()
	for i := range 50 {
		if _, err := subscriber.Subscribe(ctx, pad("com.ok.topic.", i, 44), func(*client.Event) {}, nil); err != nil {
			t.Fatalf("SUBSCRIBE %d of an address whose sessions' caches are at their share: %v", i, err)
		}
	}
	if sb := r.Stats().SubscriptionBytes; sb > 50*(44+400) {
		t.Fatalf("50 subscriptions counted for %d bytes of limits.subscription_bytes: the caches in it", sb)
	}
	// The 300-URI session keeps its cache.
	if n := round(); n != 0 {
		t.Fatalf("third round, the address's share used up by the others: %d decisions asked, want 0", n)
	}
	// A capped session's decisions are still right.
	call(fs[fillers-1], "com.ok.nothing", proto.URINoSuchProcedure)
	call(fs[fillers-1], "x.denied", proto.URINotAuthorized)
	user.Close()
	subscriber.Close()
	for _, s := range fs {
		s.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.Stats().AuthzCacheBytes != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still charged once every session closed", r.Stats().AuthzCacheBytes)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
