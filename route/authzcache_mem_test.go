package route

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// A session's cache of authorization decisions is bounded for the session,
// not for each of its maps: a session whose role may do nothing filled
// the ten maps (one per action, four for patterns) with refused requests,
// 256 decisions each, 142 KB a session, and an address may open 1,024
// sessions. The decisions stay right once the cache has been dropped.
func TestAuthzCacheBoundedPerSession(t *testing.T) {
	z, err := NewRBAC([]Role{{Name: "guest", Permissions: []Permission{{URI: "com.ok.", Match: proto.MatchPrefix, Call: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, 1, func(c *Config) {
		c.Realms = []RealmConfig{{Name: "realm1", Anonymous: true, AnonymousRole: "guest", Authorizer: z}}
	})
	const n = 64
	var cs []*tc
	for range n {
		cs = append(cs, e.join(proto.JSON))
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	type req struct {
		typ   proto.Code
		match string
	}
	kinds := []req{{proto.CodeCall, ""}, {proto.CodePublish, ""}, {proto.CodeSubscribe, ""}, {proto.CodeRegister, ""},
		{proto.CodeSubscribe, "prefix"}, {proto.CodeSubscribe, "wildcard"}, {proto.CodeRegister, "prefix"}, {proto.CodeRegister, "wildcard"}}
	for _, c := range cs {
		for i := range 256 {
			uri := "x" + strconv.Itoa(i)
			for _, k := range kinds {
				o := map[string]any{}
				if k.match != "" {
					o["match"] = k.match
				}
				if k.typ == proto.CodePublish {
					o["acknowledge"] = true
				}
				c.sendAsync(&proto.Message{Type: k.typ, Request: c.nextReq(), Dict: c.opts(o), URI: []byte(uri)})
			}
		}
		e.sync()
		for range 256 * len(kinds) {
			if m := c.recv(); m.Type != proto.CodeError || string(m.URI) != proto.URINotAuthorized {
				t.Fatalf("got %v %s, want ERROR not_authorized", m.Type, describe(m))
			}
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	per := (int64(ms.HeapAlloc) - int64(before)) / n
	var entries int
	cs[0].exec.do(func() {
		c := cs[0].sess.authz
		for _, m := range c.m {
			entries += len(m)
		}
		for _, m := range c.pat {
			entries += len(m)
		}
	})
	t.Logf("%d bytes a session; the first holds %d decisions", per, entries)
	if entries > maxCachedDecisions || per > 40<<10 {
		t.Fatalf("a session holds %d decisions and %d bytes more after 256 refused requests of each of %d kinds, want at most %d decisions and 40 KiB",
			entries, per, len(kinds), maxCachedDecisions)
	}
	// The cache dropped, a decision is made again, and is right.
	c := cs[0]
	req0 := c.call("com.ok.x", nil, nil, nil)
	c.expectError(proto.CodeCall, req0, proto.URINoSuchProcedure)
	req0 = c.call("x1", nil, nil, nil)
	c.expectError(proto.CodeCall, req0, proto.URINotAuthorized)
	runtime.KeepAlive(cs)
}
