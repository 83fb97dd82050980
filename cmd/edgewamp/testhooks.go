//go:build edgewamp_testhooks

package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/edgewamp/edgewamp/route"
)

// Test-only behaviour, compiled in only with -tags edgewamp_testhooks (the
// watchdog test builds such a binary; release builds never have it).
//
// SIGUSR2 wedges every event loop that serves a session: each gets a task
// that blocks forever, as a bug stuck in a callback would. The loops then
// stop answering liveness probes and the supervisor withholds systemd's
// keep-alive. The next SIGUSR2 releases them (and the one after wedges
// them again), for the tests of what recovers.
//
// 127.0.0.3 is taken for an address other hosts reach (cleartext.go), so
// that the clear-text warnings can be seen on loopback.
func init() {
	testHookExposed = func(host string) bool { return host == "127.0.0.3" }
	testHookServing = func(r *route.Router, log *slog.Logger) {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGUSR2)
		log.Info("test hook: SIGUSR2 wedges the event loops") // a test's cue to send it
		go func() {
			var release chan struct{}
			for range ch {
				if release != nil {
					close(release)
					release = nil
					log.Warn("test hook: event loops released")
					continue
				}
				release = make(chan struct{})
				rel := release
				n := 0
				for i := 0; i < r.Shards(); i++ {
					if r.Shard(i).Do(func() { <-rel }) == nil {
						n++
					}
				}
				log.Warn("test hook: event loops wedged", "loops", n)
			}
		}()
	}
}
