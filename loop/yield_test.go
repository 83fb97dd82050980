package loop

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A task that goes on in turns, each handing the next to Yield (a reload's
// re-check of many subscriptions, route's Shard.reauth), lets the loop's
// connections in between: a call between two sessions on the loop is
// answered while the turns go on. A task queued by a task (Execute) runs
// before gnet polls again (gnet's urgent queue, which it runs to the end,
// and a parking loop's inbox posted to from gnet's round goes there too):
// turns queued so held the loop through all of them (the call answered
// after the 100th).
func TestYieldLetsConnectionsIn(t *testing.T) {
	for _, park := range []bool{false, true} {
		name := "gnet"
		if park {
			name = "park"
		}
		t.Run(name, func(t *testing.T) {
			s := startServer(t, func(o *Options, rc *route.Config) { o.Park = park; rc.Shards = 1 })
			ls := s.e.allLoops()[0]
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			callee := s.dial("ws", proto.JSON)
			if _, err := callee.Register(ctx, "com.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
				return &client.Result{Args: inv.Args}, nil
			}, nil); err != nil {
				t.Fatal(err)
			}
			caller := s.dial("rs", proto.MsgPack)
			if _, err := caller.Call(ctx, "com.echo", []any{int64(0)}, nil, nil); err != nil {
				t.Fatal(err)
			}
			const turns, turnLen = 100, 3 * time.Millisecond // 0.3 s of the loop in all
			var done atomic.Int64
			var turn func()
			turn = func() {
				for end := time.Now().Add(turnLen); time.Now().Before(end); {
				}
				if done.Add(1) < turns {
					if err := ls.Yield(turn); err != nil {
						t.Error(err)
					}
				}
			}
			if err := ls.Execute(turn); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if _, err := caller.Call(ctx, "com.echo", []any{int64(1)}, nil, nil); err != nil {
				t.Fatal(err)
			}
			at := done.Load()
			t.Logf("the call was answered after %d of %d turns of %v (%v)", at, turns, turnLen, time.Since(start))
			if at >= turns {
				t.Fatalf("the call was answered only after all %d turns: the turns held the loop", turns)
			}
			for done.Load() < turns {
				time.Sleep(time.Millisecond)
			}
		})
	}
}
