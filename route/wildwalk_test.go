package route

import (
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// checkWalks checks every wildcard node's walk (wnode.walk) against one
// counted afresh from its children.
func checkWalks[E comparable](t *testing.T, tb *table[E]) {
	t.Helper()
	var fresh func(n *wnode[E]) int32
	fresh = func(n *wnode[E]) int32 {
		var w int32
		for _, k := range n.kids {
			w = max(w, 1+fresh(k))
		}
		if n.any != nil {
			w += 1 + fresh(n.any)
		}
		if w != n.walk {
			t.Fatalf("a node's walk is %d, counted afresh %d", n.walk, w)
		}
		return w
	}
	for _, root := range tb.wild {
		fresh(root)
	}
}

// The walks stay right through puts and deletes in any order, and a
// pattern's wildWalkWith is its root's walk once it is put.
func TestWildcardWalkKeptThroughChurn(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tb := newTable[int]()
	var held []string
	comps := []string{"", "a", "b", "c"}
	for i := 0; i < 20000; i++ {
		if len(held) > 0 && rng.IntN(3) == 0 {
			j := rng.IntN(len(held))
			tb.del(proto.MatchWildcard, held[j])
			held[j] = held[len(held)-1]
			held = held[:len(held)-1]
		} else {
			n := 1 + rng.IntN(6)
			parts := make([]string, n)
			for k := range parts {
				parts[k] = comps[rng.IntN(len(comps))]
			}
			u := strings.Join(parts, ".")
			if _, ok := tb.get(proto.MatchWildcard, u); ok {
				continue
			}
			with := tb.wildWalkWith(u)
			tb.put(proto.MatchWildcard, u, i)
			held = append(held, u)
			if got := tb.wild[n].walk; got != int32(with) {
				t.Fatalf("wildWalkWith(%q) = %d, its root's walk after %d", u, with, got)
			}
		}
		if i%100 == 0 {
			checkWalks(t, tb)
		}
	}
	checkWalks(t, tb)
	for _, u := range held {
		tb.del(proto.MatchWildcard, u)
	}
	if len(tb.wild) != 0 {
		t.Fatalf("%d roots left after every pattern went", len(tb.wild))
	}
}

// worstShape returns the n wildcard patterns whose k first components
// are each "a" or a wildcard, then "z" (BenchmarkWildcardWorstCase's): a
// URI a.a.…a.<other> walks every one of their 2^(k+1) nodes and matches
// none.
func worstShape(k, n int) []string {
	l := make([]string, n)
	for i := range l {
		comps := make([]string, k+1)
		for j := 0; j < k; j++ {
			if i&(1<<j) == 0 {
				comps[j] = "a"
			}
		}
		comps[k] = "z"
		l[i] = strings.Join(comps, ".")
	}
	return l
}

// Wildcard patterns that overlap one another make a PUBLISH or CALL to a
// URI no loop has looked up yet walk all of them: 4,096 patterns of the
// worst shape (within the realm's bound of wildcard patterns) made each
// walk 8,190 nodes and find nothing (3.8 ms a URI at 16,094 on a loaded
// machine, for every session of the loop). A SUBSCRIBE or REGISTER whose
// pattern would let one walk pass maxWildcardWalk nodes is refused with
// wamp.error.unavailable (logged once per session); patterns that do not
// overlap them are still taken, and so is joining one.
func TestWildcardWalkBounded(t *testing.T) {
	for _, kind := range []string{"subscribe", "register"} {
		t.Run(kind, func(t *testing.T) {
			logs := &logLines{}
			e := newEnv(t, 2, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
			code, ok := proto.CodeSubscribe, proto.CodeSubscribed
			if kind == "register" {
				code, ok = proto.CodeRegister, proto.CodeRegistered
			}
			all := worstShape(12, 4096)
			taken, refused := 0, 0
			var first *tc
			for i := 0; i < len(all); i += wildPerSession {
				c := e.join(proto.JSON)
				if first == nil {
					first = c
				}
				for _, m := range c.requestMany(code, all[i:i+wildPerSession], wildcardOpt) {
					switch {
					case m.Type == ok:
						taken++
					case m.Type == proto.CodeError && string(m.URI) == proto.URIUnavailable && strings.Contains(argsOf(m)[0].(string), "overlap"):
						refused++
					default:
						t.Fatalf("got %v %s", m.Type, describe(m))
					}
				}
			}
			rm := e.r.Realm("realm1")
			rm.mu.RLock()
			var visited, bestVisited int
			u := []byte(strings.Repeat("a.", 12) + "c")
			if kind == "register" {
				bestVisited = rm.regs.bestCost(u)
				_, visited = rm.regs.matchCost(u)
			} else {
				_, visited = rm.subs.matchCost(u)
			}
			rm.mu.RUnlock()
			t.Logf("%d patterns taken, %d refused; a URI matching none visits %d nodes (best: %d)", taken, refused, visited, bestVisited)
			if visited > maxWildcardWalk || bestVisited > maxWildcardWalk {
				t.Fatalf("a %s to %s visits %d wildcard nodes (%d patterns taken), past %d", kind, u, visited, taken, maxWildcardWalk)
			}
			if refused == 0 || taken == 0 {
				t.Fatalf("%d taken, %d refused", taken, refused)
			}
			if n := logs.count("overlap"); n == 0 || n > 4 {
				t.Fatalf("%d log lines for the refusals of at most four sessions", n)
			}
			// Others are still taken: a pattern not on the walked way, and
			// joining one made already.
			late := e.join(proto.JSON)
			mustAll(t, late.requestMany(code, []string{"o" + strings.Repeat(".", 12) + "z", "a.a..z"}, wildcardOpt), ok)
			if kind == "subscribe" {
				mustAll(t, late.requestMany(code, []string{all[0]}, wildcardOpt), ok)
				// The patterns taken still match.
				pub := e.join(proto.JSON)
				pub.publish(strings.Repeat("a.", 12)+"z", nil, nil, nil)
				first.expect(proto.CodeEvent)
			}
		})
	}
}
