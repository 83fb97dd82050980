package loop

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
	"github.com/panjf2000/gnet/v2"
)

// waitParked waits until the loop is parked (waiting in Go's netpoller).
func waitParked(t *testing.T, ls *loopState) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !ls.parker.waiting.Load(); {
		if time.Now().After(end) {
			t.Fatal("the loop never parked")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// TestParkWakes: with Options.Park every loop parks when idle, and each
// thing that must wake it does: a task queued from another goroutine (the
// mesh's deliveries, the acceptors), a socket's data, the engine's
// shutdown (startServer's cleanup fails if that hangs). A parked loop woken
// by nothing would hang this test, which a lost wake-up (gnet's eventfd
// not written while park waits) did before park cleared gnet's flag.
func TestParkWakes(t *testing.T) {
	s := startServer(t, func(o *Options, _ *route.Config) { o.Park = true })
	loops := s.e.allLoops()
	if len(loops) != 2 {
		t.Fatalf("%d loops", len(loops))
	}
	for i, ls := range loops {
		if ls.parker == nil {
			t.Fatalf("loop %d does not park", i)
		}
		// A task from another goroutine, queued while the loop is parked,
		// runs: 200 times in a row on each loop.
		for n := 0; n < 200; n++ {
			waitParked(t, ls)
			done := make(chan struct{})
			if err := ls.Execute(func() { close(done) }); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("loop %d, task %d: the parked loop did not run it", i, n)
			}
		}
	}

	// A socket's data wakes it: calls and events between sessions on both
	// loops, each sent while the loops are idle (parked).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	callee := s.dial("rs", proto.MsgPack)
	if _, err := callee.Register(ctx, "com.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	caller := s.dial("ws", proto.JSON)
	parked := func() uint64 { return loops[0].parker.parks.Load() + loops[1].parker.parks.Load() }
	before := parked()
	for n := 0; n < 100; n++ {
		for _, ls := range loops {
			waitParked(t, ls)
		}
		res, err := caller.Call(ctx, "com.echo", []any{int64(n)}, nil, nil)
		if err != nil {
			t.Fatalf("call %d: %v", n, err)
		}
		if len(res.Args) != 1 || res.Args[0] != int64(n) {
			t.Fatalf("call %d: %v", n, res.Args)
		}
	}
	if after := parked(); after-before < 100 {
		t.Fatalf("the loops parked %d times in 100 idle calls", after-before)
	}
}

// TestParkAfterOpenAndClose: a round of gnet's own, with no entry point of
// ours (a connection registered, one closed by its peer), or with a
// health probe's task alone, still ends parked. Without that, the loop
// waited in epoll_wait, holding its processor, until the once-a-second
// scan's task parked it again.
func TestParkAfterOpenAndClose(t *testing.T) {
	s := startServer(t, func(o *Options, _ *route.Config) { o.Park = true })
	loops := s.e.allLoops()
	probe := s.e.NewLivenessProbe(time.Minute)
	waits := map[string][]time.Duration{}
	parked := func(after string) {
		start := time.Now()
		for _, ls := range loops {
			waitParked(t, ls)
		}
		waits[after] = append(waits[after], time.Since(start))
	}
	for n := 0; n < 10; n++ {
		parked("start")
		c, err := net.Dial("tcp", s.url) // opens, sends nothing
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "the connection registered", func() bool { return s.e.opens.Load() > uint64(n) })
		parked("an open")
		c.Close() // gnet reads EOF and closes it: OnClose alone
		eventually(t, 5*time.Second, "the connection closed", func() bool { return s.e.fds.Load() == 0 })
		parked("a close")
		waitProbe(t, probe) // the probe's task alone
		parked("a health probe")
	}
	for _, after := range []string{"an open", "a close", "a health probe"} {
		w := waits[after]
		slices.Sort(w)
		if med := w[len(w)/2]; med > 250*time.Millisecond {
			t.Errorf("loops parked again %v (median) after %s alone: they waited for the scan (%v)", med, after, w)
		}
	}
}

// TestParkAfterGnetWrites: output gnet buffers for a slow reader is
// written by park when the socket takes more, in order, and the loop stays
// parked: gnet's own write rounds call none of our callbacks, and without
// that the loop waited in epoll_wait (holding its processor) until the
// scan parked it again.
func TestParkAfterGnetWrites(t *testing.T) {
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.Park = true
		o.HighWater, o.HardLimit = 64<<20, 128<<20 // nothing dropped
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := dialTCP(t, s.url, 4096) // a small receive buffer: gnet buffers what the kernel does not take
	sp := subscribeRaw(t, c, "com.bulk")
	pub := s.dial("rs", proto.MsgPack)
	loops := s.e.allLoops()
	// buffered counts, on each loop's goroutine, the connections in park's
	// list and the bytes gnet buffers for them.
	buffered := func() (conns, bytes int) {
		for _, ls := range loops {
			done := make(chan struct{})
			ls.Execute(func() {
				for _, cn := range ls.parker.out {
					conns++
					bytes += cn.c.OutboundBuffered()
				}
				close(done)
			})
			<-done
		}
		return
	}
	const events, size = 256, 32 << 10 // 8 MiB a round: more than loopback's socket buffers take
	for round := 0; round < 3; round++ {
		for i := 0; i < events; i++ {
			payload := make([]byte, size)
			payload[0] = byte(i)
			if err := pub.Publish(ctx, "com.bulk", []any{int64(i), payload}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, ioTimeout, "gnet to buffer output for the reader that does not read", func() bool {
			_, n := buffered()
			return n > 0
		})
		for i := 0; i < events; i++ { // read it all, in order
			a := args(t, sp.expect(proto.CodeEvent))
			if len(a) != 2 || fmt.Sprint(a[0]) != fmt.Sprint(i) { // int64 or uint64, as decoded
				t.Fatalf("round %d: event %d: %v", round, i, a[0])
			}
			if b, _ := a[1].([]byte); len(b) != size || b[0] != byte(i) {
				t.Fatalf("round %d: event %d: payload of %d bytes", round, i, len(b))
			}
		}
		start := time.Now()
		for _, ls := range loops {
			waitParked(t, ls)
		}
		if d := time.Since(start); d > 250*time.Millisecond {
			t.Fatalf("round %d: the loops parked again %v after gnet's writes: they waited for the scan", round, d)
		}
		if conns, bytes := buffered(); conns != 0 || bytes != 0 {
			t.Fatalf("round %d: %d connections (%d bytes) left in park's list after their output was written", round, conns, bytes)
		}
	}

	// A reader that resets while gnet still buffers for it: the
	// connection closes, leaves park's list (its descriptor may be the
	// next connection's), and the loops park.
	for i := 0; i < events; i++ {
		if err := pub.Publish(ctx, "com.bulk", []any{int64(i), make([]byte, size)}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, ioTimeout, "gnet to buffer output again", func() bool {
		conns, _ := buffered()
		return conns == 1
	})
	c.(*net.TCPConn).SetLinger(0)
	c.Close() // RST
	eventually(t, ioTimeout, "the reset connection to close", func() bool {
		conns, _ := buffered()
		n := 0
		for _, k := range s.e.loopConns(t) {
			n += k
		}
		return conns == 0 && n == 1 // the publisher's
	})
	for _, ls := range loops {
		waitParked(t, ls)
	}
	if _, err := pub.Call(ctx, "wamp.session.count", nil, nil, nil); err != nil {
		t.Fatalf("the router after the reset: %v", err)
	}
}

// TestParkUnavailable: where the event loop is not gnet's own (or gnet's
// internals changed), parking is refused with the reason, and the engine
// logs once that its loops wait in epoll_wait.
func TestParkUnavailable(t *testing.T) {
	_, err := newParker(fakeEventLoop{}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "not a pointer") {
		t.Fatalf("newParker(fake) = %v", err)
	}
	_, err = newParker(&fakeEventLoop{}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "no poller") {
		t.Fatalf("newParker(&fake) = %v", err)
	}
	var logs strings.Builder
	e := &Engine{log: slog.New(slog.NewTextHandler(&logs, nil))}
	e.parkFailed(fmt.Errorf("reason one"))
	e.parkFailed(fmt.Errorf("reason two"))
	if got := logs.String(); strings.Count(got, "parking unavailable") != 1 || !strings.Contains(got, "reason one") {
		t.Fatalf("logs: %q", got)
	}
}

type fakeEventLoop struct{ gnet.EventLoop }

// TestParkInbox: tasks posted to a parking loop from other goroutines
// (Execute: the mesh's deliveries, the gateway's lane) all run, once each
// and in each poster's order, while the loop also serves its sockets and
// gnet's own tasks (health probes); a parked loop is woken by the inbox's
// deadline, not by gnet's eventfd; and once the engine has stopped, a post
// fails instead of queueing a task nothing will run.
func TestParkInbox(t *testing.T) {
	s := startServer(t, func(o *Options, _ *route.Config) { o.Park = true })
	loops := s.e.allLoops()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Parked and idle, 100 posts in a row on each loop are each woken by
	// a deadline: no eventfd, so gnet's wakeupCall flag stays clear.
	for i, ls := range loops {
		w0 := ls.parker.wakes.Load()
		for n := 0; n < 100; n++ {
			waitParked(t, ls)
			done := make(chan struct{})
			if err := ls.Execute(func() { close(done) }); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-ctx.Done():
				t.Fatalf("loop %d, task %d: the parked loop did not run it", i, n)
			}
		}
		if w := ls.parker.wakes.Load() - w0; w < 100 {
			t.Errorf("loop %d: %d of 100 posts to the parked loop woke it by deadline", i, w)
		}
	}

	// Under traffic: 8 posters per loop, 5,000 tasks each, while a caller
	// and a callee on both loops call through them and a health probe
	// queues gnet tasks. Each loop's tasks run in each poster's order,
	// each once (a task checks that its poster's previous one ran).
	proc := registerEcho(t, s.dial("rs", proto.MsgPack))
	caller := s.dial("ws", proto.JSON)
	stop := make(chan struct{})
	traffic := make(chan error, 1)
	go func() {
		probe := s.e.NewLivenessProbe(time.Minute)
		for n := 0; ; n++ {
			select {
			case <-stop:
				traffic <- nil
				return
			default:
			}
			if _, err := caller.Call(ctx, proc, []any{int64(n)}, nil, nil); err != nil {
				traffic <- fmt.Errorf("call %d: %w", n, err)
				return
			}
			_ = probe.Check()
		}
	}()
	const posters, each = 8, 5000
	errs := make(chan error, 2*posters)
	for _, ls := range loops {
		for p := 0; p < posters; p++ {
			go func() {
				next := 0 // read and written on the loop only
				done := make(chan struct{})
				for n := 0; n < each; n++ {
					n := n
					last := n == each-1
					if err := ls.Execute(func() {
						if next != n {
							errs <- fmt.Errorf("task %d ran as number %d", n, next)
						}
						next++
						if last {
							close(done)
						}
					}); err != nil {
						errs <- err
						return
					}
					if n%500 == 0 {
						time.Sleep(time.Duration(n%7) * 100 * time.Microsecond) // let the loop park now and then
					}
				}
				select {
				case <-done:
					errs <- nil
				case <-ctx.Done():
					errs <- fmt.Errorf("the last task never ran (%d did)", each)
				}
			}()
		}
	}
	for range 2 * posters {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if err := <-traffic; err != nil {
		t.Fatal(err)
	}

	// Stopped: posts fail, and nothing is kept.
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := s.e.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	for i, ls := range loops {
		if err := ls.Execute(func() { t.Error("a task ran after the engine stopped") }); err == nil {
			t.Errorf("loop %d: a post after the engine stopped succeeded", i)
		}
		ls.parker.inMu.Lock()
		if n := len(ls.parker.inbox); n != 0 {
			t.Errorf("loop %d: its inbox holds %d tasks after the engine stopped", i, n)
		}
		ls.parker.inMu.Unlock()
	}
}

// TestParkInboxDoesNotStarveSockets: a loop whose inbox is never empty
// when it looks (a task that posts itself again as it runs, as a steady
// stream of mesh deliveries can keep it) still serves its sockets: calls
// between sessions on it go on being answered. Before the loop checked
// gnet's descriptor ahead of its inbox, it ran the inbox for ever.
func TestParkInboxDoesNotStarveSockets(t *testing.T) {
	s := startServer(t, func(o *Options, _ *route.Config) { o.Park = true })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	proc := registerEcho(t, s.dial("rs", proto.MsgPack))
	caller := s.dial("ws", proto.JSON)
	var stop atomic.Bool
	var ran [2]atomic.Uint64
	for i, ls := range s.e.allLoops() {
		var again func()
		again = func() {
			ran[i].Add(1)
			if !stop.Load() {
				_ = ls.Execute(again)
			}
		}
		if err := ls.Execute(again); err != nil {
			t.Fatal(err)
		}
	}
	defer stop.Store(true)
	for n := 0; n < 100; n++ {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := caller.Call(cctx, proc, []any{int64(n)}, nil, nil)
		ccancel()
		if err != nil {
			t.Fatalf("call %d, the loops having run their reposting task %d and %d times: %v", n, ran[0].Load(), ran[1].Load(), err)
		}
		if len(res.Args) != 1 || res.Args[0] != int64(n) {
			t.Fatalf("call %d: %v", n, res.Args)
		}
	}
	if ran[0].Load() < 100 || ran[1].Load() < 100 {
		t.Fatalf("the reposting tasks ran %d and %d times: the inbox was not kept busy", ran[0].Load(), ran[1].Load())
	}
	t.Logf("100 calls answered while the loops ran their reposting task %d and %d times", ran[0].Load(), ran[1].Load())
}
