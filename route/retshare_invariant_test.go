package route

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// checkShares recomputes each publisher's share from the realm's retained
// chains and compares it with Realm.retainedBy.
func checkShares(t *testing.T, rm *Realm, step string) {
	t.Helper()
	rm.mu.RLock()
	defer rm.mu.RUnlock()
	type agg struct {
		events int
		bytes  int64
	}
	want := map[string]agg{}
	var total int64
	for _, head := range rm.retained {
		for re := head; re != nil; re = re.older {
			total += re.size
			if re.share == nil {
				continue
			}
			if rm.retainedBy[re.share.key] != re.share {
				t.Fatalf("%s: an event's share %q is not the realm's entry", step, re.share.key)
			}
			a := want[re.share.key]
			a.events++
			a.bytes += re.size
			want[re.share.key] = a
		}
	}
	if total != rm.retainedBytes {
		t.Fatalf("%s: retainedBytes %d, chains hold %d", step, rm.retainedBytes, total)
	}
	for k, sh := range rm.retainedBy {
		w := want[k]
		if sh.events != w.events || sh.bytes != w.bytes {
			t.Fatalf("%s: share %q counts %d events %d bytes, chains hold %d events %d bytes", step, k, sh.events, sh.bytes, w.events, w.bytes)
		}
	}
	for k := range want {
		if rm.retainedBy[k] == nil {
			t.Fatalf("%s: share %q missing", step, k)
		}
	}
}

// Random retained PUBLISHes, with and without black/white lists, from
// publishers sharing and not sharing shares, at a small share and a small
// realm byte bound: the shares always match what the chains hold.
func TestRetainedShareInvariant(t *testing.T) {
	e := newEnv(t, 2, func(c *Config) {
		c.MaxRetainedPerPublisher = 3
		c.MaxRetainedBytes = 24 << 10
		c.MaxRetainedBytesPerPublisher = 12 << 10
	})
	pubs := []*tc{
		e.joinFrom("192.0.2.7:1"), e.joinFrom("192.0.2.7:2"), e.joinFrom("[::ffff:192.0.2.7]:3"),
		e.joinFrom("198.51.100.9:1"), e.joinFrom("[2001:db8::1]:4"),
		e.joinAs(proto.JSON, "alice"), e.joinAs(proto.JSON, "bob"),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 600; i++ {
		c := pubs[rng.IntN(len(pubs))]
		topic := fmt.Sprintf("com.t.%d", rng.IntN(5))
		o := map[string]any{"retain": true, "acknowledge": true}
		switch rng.IntN(3) {
		case 1:
			o["exclude_authid"] = []any{fmt.Sprintf("nobody%d", rng.IntN(3))}
		case 2:
			o["eligible_authrole"] = []any{"user", "anonymous"}
		}
		v := strings.Repeat("v", rng.IntN(6<<10))
		c.publish(topic, o, []any{v}, nil)
		c.expect(proto.CodePublished)
		e.sync()
		for _, name := range []string{"realm1", "trusted"} {
			checkShares(t, e.r.Realm(name), fmt.Sprintf("step %d", i))
		}
	}
}
