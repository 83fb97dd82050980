package fuzz

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// The hostile-peer suite against the built router (issue 10): peers that
// reset right after a message the router answers, and a randomized
// lifecycle stress test. `make test` runs the short version (about 35 s:
// 10 s of hostile clients, warm-up and the wait for memory to come back);
// `make soak DURATION=10m` runs the stress test for DURATION
// (EDGEWAMP_SOAK).

// TestHostileResetBinary resets the connection right after each message
// class the router answers in the same callback (PONG, ABORT, WELCOME,
// RESULT, ERROR, PUBLISHED, EVENT) on both transports, against the real
// process: before the write path was made safe against gnet's synchronous
// close, the first few resets killed it (nil dereference in
// loopState.flush).
func TestHostileResetBinary(t *testing.T) {
	r := startRouterProc(t, hostileConfig)
	good := r.dial(t, "rs", proto.MsgPack)
	for round := range 20 {
		for _, ws := range []bool{false, true} {
			for class := range 7 {
				ser := []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR}[(round+class)%3]
				rc, err := dialRawConn(r.addr, ws, ser, 0)
				if err != nil {
					r.waitAlive()
					t.Fatalf("dial: %v", err)
				}
				var b []byte
				switch class {
				case 0: // PONG
					b = rc.ping([]byte("x"))
				case 1: // ABORT
					b = rc.msg(&proto.Message{Type: proto.CodeHello, URI: []byte("no.such.realm"), Dict: rc.value(map[string]any{
						"roles": map[string]any{"caller": map[string]any{}}})})
				case 2: // WELCOME
					b = rc.hello()
				default: // after a WELCOME: RESULT, ERROR, PUBLISHED, EVENT
					b = rc.hello()
					b = append(b, rc.msg(&proto.Message{Type: proto.CodeSubscribe, Request: 1, Dict: rc.value(map[string]any{}),
						URI: []byte("com.reset.self")})...)
					switch class {
					case 3:
						b = append(b, rc.msg(&proto.Message{Type: proto.CodeCall, Request: 2, Dict: rc.value(map[string]any{}),
							URI: []byte("wamp.session.count")})...)
					case 4:
						b = append(b, rc.msg(&proto.Message{Type: proto.CodeCall, Request: 2, Dict: rc.value(map[string]any{}),
							URI: []byte("com.no.such.procedure")})...)
					case 5:
						b = append(b, rc.msg(&proto.Message{Type: proto.CodePublish, Request: 2,
							Dict: rc.value(map[string]any{"acknowledge": true}), URI: []byte("com.reset")})...)
					case 6:
						b = append(b, rc.msg(&proto.Message{Type: proto.CodePublish, Request: 2,
							Dict: rc.value(map[string]any{"acknowledge": true, "exclude_me": false}), URI: []byte("com.reset.self")})...)
					}
				}
				rc.c.Write(b)
				rc.reset()
			}
		}
		r.alive()
	}
	time.Sleep(200 * time.Millisecond)
	r.alive()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := good.Call(ctx, "wamp.session.count", nil, nil, nil); err != nil {
		t.Fatalf("a well-behaved session after the resets: %v\n%s", err, r.logs())
	}
}

// soakDuration is how long the stress test runs: EDGEWAMP_SOAK (e.g.
// "10m") or 10 s.
func soakDuration(t *testing.T) time.Duration {
	if v := os.Getenv("EDGEWAMP_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("EDGEWAMP_SOAK=%q: %v", v, err)
		}
		return d
	}
	return 10 * time.Second
}

// TestHostileLifecycle is the randomized lifecycle stress test: many
// clients run random scripts — valid sessions, garbage, half-close, RST
// mid-message, peers that stop reading, ping floods, partial large
// messages, slow handshakes, bytes that are not WAMP — for a bounded time,
// while well-behaved sessions call, publish and subscribe. The router must
// stay up, every call of the well-behaved sessions must succeed and every
// event reach them in order, and the router's RSS must come back to
// within 10 % of where it started once the hostile clients have left.
func TestHostileLifecycle(t *testing.T) {
	dur := soakDuration(t)
	r := startRouterProc(t, hostileConfig)
	g := startGoodPeers(t, r)
	defer g.stop()

	// Warm-up: a short hostile phase, so that the baseline has every code
	// path the test takes paged in (text pages count in RSS) and the
	// router's pools at their working size; then the leftovers go.
	warm, warmCancel := context.WithTimeout(context.Background(), 2*time.Second)
	runHostile(warm, r.addr, 16)
	warmCancel()
	time.Sleep(hostileLinger)
	r.collect()
	time.Sleep(time.Second)
	rss0 := r.rss()
	g.check(t, r)

	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var counts []int64
	done := make(chan struct{})
	go func() { counts = runHostile(ctx, r.addr, 32); close(done) }()
	peak := rss0
	for ctx.Err() == nil {
		time.Sleep(500 * time.Millisecond)
		r.alive()
		g.check(t, r)
		peak = max(peak, r.rss())
	}
	<-done
	r.alive()
	g.check(t, r)
	t.Logf("%v of hostile clients: scripts run %v; good calls %d, good events %d; router RSS %d MiB at start, peak %d MiB",
		dur, counts, g.calls.Load(), g.events.Load(), rss0>>20, peak>>20)

	// The hostile clients have gone; the router closes what they left
	// half-open within the keepalive and handshake timeouts. Then its
	// memory must come back.
	time.Sleep(hostileLinger)
	deadline := time.Now().Add(30 * time.Second)
	var rss int64
	for {
		time.Sleep(time.Second)
		r.collect()
		rss = r.rss()
		if float64(rss) <= 1.10*float64(rss0) || time.Now().After(deadline) {
			break
		}
	}
	g.check(t, r)
	r.alive()
	t.Logf("router RSS after the hostile clients left: %d KiB (start %d KiB)", rss>>10, rss0>>10)
	if float64(rss) > 1.10*float64(rss0) {
		t.Fatalf("router RSS %d KiB is more than 10 %% above its start (%d KiB) 30 s after the hostile clients left",
			rss>>10, rss0>>10)
	}
}

// hostileLinger is how long the router may keep what hostile clients left
// open after they stopped: the keepalive (2 s + 2 s) and handshake (3 s)
// timeouts of hostileConfig, and a scan.
const hostileLinger = 6 * time.Second

// runHostile runs n hostile clients until ctx is done and returns how many
// times each script ran.
func runHostile(ctx context.Context, addr string, n int) []int64 {
	var scripts [numScripts]atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				s := rng.IntN(numScripts)
				runScript(ctx, addr, rng, s)
				scripts[s].Add(1)
			}
		}()
	}
	wg.Wait()
	counts := make([]int64, numScripts)
	for i := range scripts {
		counts[i] = scripts[i].Load()
	}
	return counts
}

// goodPeers are the well-behaved sessions: a callee, callers calling it
// without pause, and a publisher whose sequence-numbered events a
// subscriber must receive in order, without a gap.
type goodPeers struct {
	calls, events atomic.Int64
	mu            sync.Mutex
	err           error
	sessions      []*client.Session
	cancel        context.CancelFunc
	wg            sync.WaitGroup
}

func (g *goodPeers) fail(err error) {
	g.mu.Lock()
	if g.err == nil {
		g.err = err
	}
	g.mu.Unlock()
}

// check fails the test if a well-behaved session failed or was closed.
func (g *goodPeers) check(t *testing.T, r *routerProc) {
	t.Helper()
	g.mu.Lock()
	err := g.err
	g.mu.Unlock()
	if err != nil {
		t.Fatalf("well-behaved session: %v\n%s", err, r.logs())
	}
	for _, s := range g.sessions {
		select {
		case <-s.Done():
			t.Fatalf("well-behaved session %d closed: %v\n%s", s.ID(), s.Err(), r.logs())
		default:
		}
	}
}

func (g *goodPeers) stop() { g.cancel(); g.wg.Wait() }

func startGoodPeers(t *testing.T, r *routerProc) *goodPeers {
	g := &goodPeers{}
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	callee := r.dial(t, "rs", proto.MsgPack)
	regCtx, regCancel := context.WithTimeout(ctx, 10*time.Second)
	defer regCancel()
	if _, err := callee.Register(regCtx, "com.good.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	g.sessions = append(g.sessions, callee)
	for i, tr := range []struct {
		scheme string
		ser    proto.Serializer
	}{{"ws", proto.JSON}, {"rs", proto.CBOR}, {"ws", proto.MsgPack}, {"rs", proto.JSON}} {
		c := r.dial(t, tr.scheme, tr.ser)
		g.sessions = append(g.sessions, c)
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
				want := fmt.Sprintf("good %d/%d", i, n)
				res, err := c.Call(cctx, "com.good.echo", []any{want}, nil, nil)
				ccancel()
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					g.fail(fmt.Errorf("call %d of caller %d: %w", n, i, err))
					return
				}
				if len(res.Args) != 1 || res.Args[0] != want {
					g.fail(fmt.Errorf("call %d of caller %d: echo %v", n, i, res.Args))
					return
				}
				g.calls.Add(1)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	sub := r.dial(t, "ws", proto.CBOR)
	g.sessions = append(g.sessions, sub)
	var next atomic.Int64
	subCtx, subCancel := context.WithTimeout(ctx, 10*time.Second)
	defer subCancel()
	if _, err := sub.Subscribe(subCtx, "com.good.tick", func(ev *client.Event) {
		n, _ := ev.Args[0].(int64)
		if u, ok := ev.Args[0].(uint64); ok {
			n = int64(u)
		}
		if want := next.Add(1) - 1; n != want {
			g.fail(fmt.Errorf("event %d arrived when %d was due", n, want))
		}
		g.events.Add(1)
	}, nil); err != nil {
		t.Fatal(err)
	}
	pub := r.dial(t, "rs", proto.MsgPack)
	g.sessions = append(g.sessions, pub)
	busy := make([]byte, 2048)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for n := int64(0); ctx.Err() == nil; n++ {
			pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
			err := pub.Publish(pctx, "com.good.tick", []any{n}, nil, &client.PublishOptions{Acknowledge: true})
			if err == nil {
				// Load for the peers that stop reading.
				err = pub.Publish(pctx, "com.busy", []any{busy}, nil, nil)
			}
			pcancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				g.fail(fmt.Errorf("publish %d: %w", n, err))
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return g
}

// The hostile scripts.
const (
	scValidGoodbye      = iota // a short valid session ending with GOODBYE
	scValidReset               // a valid session reset, maybe mid-frame
	scGarbageAfterHello        // WELCOME, then random bytes
	scGarbageTransport         // random bytes right after the transport handshake
	scNotWAMP                  // random first bytes, no handshake
	scHalfClose                // a valid session, then shutdown(SHUT_WR) and read on
	scStopReading              // a subscriber of the busy topic that never reads
	scPingFlood                // pings from a peer that never reads
	scPartialLarge             // most of a large message, then nothing, then close
	scSlowHandshake            // an HTTP upgrade request that never ends
	scAbandon                  // WELCOME, then a plain close without GOODBYE
	numScripts
)

// runScript runs one hostile client. It reports nothing: whatever happens
// to the hostile client is fine; only the router and the good sessions
// are checked.
func runScript(ctx context.Context, addr string, rng *rand.Rand, script int) {
	ws := rng.IntN(2) == 0
	ser := []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR}[rng.IntN(3)]
	if script == scNotWAMP {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return
		}
		defer c.Close()
		junk := make([]byte, 1+rng.IntN(64))
		for i := range junk {
			junk[i] = byte(rng.IntN(256))
		}
		if junk[0] == 0x7f || junk[0] >= 'A' && junk[0] <= 'Z' {
			junk[0] = 0x16
		}
		c.Write(junk)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.Read(make([]byte, 1))
		return
	}
	if script == scSlowHandshake {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n"))
		sleepCtx(ctx, time.Duration(500+rng.IntN(4000))*time.Millisecond)
		return
	}
	rcvBuf := 0
	if script == scStopReading || script == scPingFlood {
		rcvBuf = 4096
	}
	rc, err := dialRawConn(addr, ws, ser, rcvBuf)
	if err != nil {
		return
	}
	defer rc.c.Close()
	rc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	switch script {
	case scValidGoodbye, scValidReset, scHalfClose, scAbandon, scGarbageAfterHello:
		out := rc.hello()
		for req := range uint64(rng.IntN(8)) {
			out = append(out, validOp(rc, rng, req+1)...)
		}
		if script == scValidReset && rng.IntN(2) == 0 {
			out = out[:rng.IntN(len(out)+1)] // cut mid-frame
		}
		rc.c.Write(out)
		switch script {
		case scValidGoodbye:
			rc.c.Write(rc.msg(&proto.Message{Type: proto.CodeGoodbye, Dict: rc.value(map[string]any{}),
				URI: []byte(proto.CloseGoodbyeAndOut)}))
			rc.drain(5 * time.Second)
		case scValidReset:
			sleepCtx(ctx, time.Duration(rng.IntN(3000))*time.Microsecond)
			rc.reset()
		case scHalfClose:
			rc.c.(*net.TCPConn).CloseWrite()
			rc.drain(8 * time.Second)
		case scAbandon:
			sleepCtx(ctx, time.Duration(rng.IntN(200))*time.Millisecond)
		case scGarbageAfterHello:
			rc.c.Write(junk(rng, 1+rng.IntN(512)))
			rc.drain(2 * time.Second)
		}
	case scGarbageTransport:
		rc.c.Write(junk(rng, 1+rng.IntN(512)))
		rc.drain(2 * time.Second)
	case scStopReading:
		rc.c.Write(rc.hello())
		rc.c.Write(rc.msg(&proto.Message{Type: proto.CodeSubscribe, Request: 1, Dict: rc.value(map[string]any{}),
			URI: []byte("com.busy")}))
		sleepCtx(ctx, time.Duration(500+rng.IntN(4000))*time.Millisecond)
		if rng.IntN(2) == 0 {
			rc.reset()
		}
	case scPingFlood:
		if rng.IntN(2) == 0 {
			rc.c.Write(rc.hello())
		}
		var chunk []byte
		for len(chunk) < 16<<10 {
			chunk = append(chunk, rc.ping(junk(rng, 125))...)
		}
		end := time.Now().Add(time.Duration(200+rng.IntN(2000)) * time.Millisecond)
		for time.Now().Before(end) && ctx.Err() == nil {
			rc.c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := rc.c.Write(chunk); err != nil && !isTimeout(err) {
				break
			}
		}
		rc.reset()
	case scPartialLarge:
		rc.c.Write(rc.hello())
		size := 600<<10 + rng.IntN(400<<10) // up to the 1 MiB limit
		var frame []byte
		if ws {
			frame = wsFrame(0x82, make([]byte, size))
		} else {
			frame = rsFrame(0, make([]byte, size))
		}
		rc.c.Write(frame[:len(frame)*(1+rng.IntN(9))/10])
		sleepCtx(ctx, time.Duration(rng.IntN(3000))*time.Millisecond)
		if rng.IntN(2) == 0 {
			rc.reset()
		}
	}
}

// validOp frames one valid WAMP request with request id req.
func validOp(rc *rawConn, rng *rand.Rand, req uint64) []byte {
	dict := rc.value(map[string]any{})
	switch rng.IntN(7) {
	case 0:
		return rc.msg(&proto.Message{Type: proto.CodeCall, Request: req, Dict: dict, URI: []byte("com.good.echo"),
			Args: rc.value([]any{"hostile"})})
	case 1:
		return rc.msg(&proto.Message{Type: proto.CodeCall, Request: req, Dict: dict, URI: []byte("com.nobody.home")})
	case 2:
		return rc.msg(&proto.Message{Type: proto.CodePublish, Request: req, Dict: rc.value(map[string]any{"acknowledge": true}),
			URI: []byte("com.hostile.topic"), Args: rc.value([]any{rng.IntN(1000)})})
	case 3:
		return rc.msg(&proto.Message{Type: proto.CodeSubscribe, Request: req, Dict: dict,
			URI: []byte(fmt.Sprintf("com.hostile.t%d", rng.IntN(8)))})
	case 4:
		return rc.msg(&proto.Message{Type: proto.CodeRegister, Request: req, Dict: dict,
			URI: []byte(fmt.Sprintf("com.hostile.p%d", rng.IntN(1<<30)))})
	case 5:
		return rc.msg(&proto.Message{Type: proto.CodeCall, Request: req, Dict: dict, URI: []byte("wamp.session.count")})
	default:
		return rc.ping([]byte("p"))
	}
}

func junk(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	return b
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
