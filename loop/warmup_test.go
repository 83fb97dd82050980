package loop

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/route"
)

// TestStartStartsEveryShard: right after Start, before any client
// connects, every shard runs functions through Shard.Do (what in-process
// peers such as the HTTP gateway rely on) — plaintext and TLS-only alike —
// and the warm-up connections are gone.
func TestStartStartsEveryShard(t *testing.T) {
	for _, tc := range []struct {
		name   string
		shards int
		tls    bool
	}{{"plaintext/4", 4, false}, {"tls-only/3", 3, true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, func(o *Options, rc *route.Config) {
				rc.Shards = tc.shards
				if tc.tls {
					o.Listeners = []Listener{{Addr: "127.0.0.1:0", TLS: newTestCert(t).server}}
				}
			})
			for i := 0; i < tc.shards; i++ {
				ran := make(chan struct{})
				if err := s.r.Shard(i).Do(func() { close(ran) }); err != nil {
					t.Fatalf("shard %d: Do: %v", i, err)
				}
				select {
				case <-ran:
				case <-time.After(5 * time.Second):
					t.Fatalf("shard %d: Do's function did not run", i)
				}
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				held, _, _ := s.e.FDs()
				if held == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d descriptors held after the warm-up", held)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
