// Command wampfwd is a bare WAMP forwarder on gnet: the ceiling of the
// router's architecture. It serves WebSocket (any path) and RawSocket on one
// port, anonymous, any realm, with no features beyond forwarding. See
// bench/README.md.
//
//	wampfwd -listen 127.0.0.1:8081 [-loops N] [-flush adaptive|round|traffic] [-io-uring auto|on|off]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/edgewamp/edgewamp/bench/internal/fwd"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "listen address host:port")
	loops := flag.Int("loops", 0, "event loops (0: one per CPU the process may use)")
	flush := flag.String("flush", "adaptive", "when to write queued output: adaptive, round (once per epoll round) or traffic (after every read)")
	highWater := flag.Int("high-water", 256<<10, "drop EVENTs to a connection with more bytes than this pending")
	ioUring := flag.String("io-uring", "auto", "send path, as the router's tuning.io_uring: auto (io_uring where available), on (required), off (write(2))")
	flag.Parse()
	fp, err := fwd.ParseFlushPolicy(*flush)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if _, err := fwd.ParseIOUring(*ioUring); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	s, err := fwd.Start(fwd.Options{Addr: *listen, Loops: *loops, Flush: fp, HighWater: *highWater, IOUring: *ioUring})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	path, why := s.SendPath()
	fmt.Fprintf(os.Stderr, "wampfwd: serving ws://%s/ws and rs://%s (flush %s, send path %s)\n", s.Addr(), s.Addr(), *flush, path)
	if why != nil {
		fmt.Fprintf(os.Stderr, "wampfwd: io_uring unavailable: %v\n", why)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1)
	for x := range sig {
		st := s.Stats()
		fmt.Fprintf(os.Stderr, "wampfwd: conns=%d calls=%d results=%d publishes=%d events=%d events_dropped=%d flushes=%d writes=%d ring_enters=%d ring_sends=%d ring_partial=%d\n",
			st.Conns, st.Calls, st.Results, st.Publishes, st.Events, st.EventsDropped, st.Flushes, st.Writes, st.RingEnters, st.RingSends, st.RingPartial)
		for reason, n := range s.Closes() {
			fmt.Fprintf(os.Stderr, "wampfwd: closed %d: %s\n", n, reason)
		}
		if x == syscall.SIGUSR1 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.Stop(ctx)
		cancel()
		return
	}
}
