package gateway

import (
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/internal/clocktest"
)

// wallStepped and checkWallStepped are internal/clocktest's: a time.Now
// reading whose wall clock is stepped by d, its monotonic reading kept.
func wallStepped(t time.Time, d time.Duration) time.Time { return clocktest.WallStepped(t, d) }

func checkWallStepped(t *testing.T) { clocktest.SkipUnlessSteppable(t) }

// stepClock reads time.Now plus adv (both readings: time the test makes
// pass), its wall clock alone moved by step, as a step of the system
// clock moves it.
type stepClock struct{ adv, step atomic.Int64 }

func (c *stepClock) now() time.Time {
	return wallStepped(time.Now().Add(time.Duration(c.adv.Load())), time.Duration(c.step.Load()))
}

// stepEnv is newEnv on a stepClock.
func stepEnv(t *testing.T, mutate func(*Options)) (*env, *stepClock) {
	checkWallStepped(t)
	clk := &stepClock{}
	return newEnv(t, func(o *Options) {
		o.now = clk.now
		if mutate != nil {
			mutate(o)
		}
	}), clk
}

// pooled returns how many principals the pool holds.
func pooled(e *env) int {
	e.gw.pool.mu.Lock()
	defer e.gw.pool.mu.Unlock()
	return len(e.gw.pool.ids)
}

// The pool's idle eviction measures a principal's idle time on the
// monotonic clock: a step of the system clock (NTP's first sync on a
// board without a real-time clock, date -s, a VM resumed) neither closes
// every pooled session at the janitor's next sweep (forward), nor keeps
// the idle ones for the step's length (back). Before, lastUsed and the
// sweep were the wall clock's UnixNano.
func TestPoolIdleIgnoresWallClockSteps(t *testing.T) {
	for _, tc := range []struct {
		name      string
		step, adv time.Duration
		want      int
	}{
		{"forward", time.Hour, time.Second, 1},
		{"back", -time.Hour, 61 * time.Second, 0}, // SessionIdle is 60 s
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, clk := stepEnv(t, nil)
			if r, b := e.do("POST", "/wamp/realm1/call/wamp.session.count", `{}`); r.StatusCode != 200 {
				t.Fatalf("call: %d %s", r.StatusCode, b)
			}
			waitFor(t, "the principal pooled and idle", func() bool {
				e.gw.pool.mu.Lock()
				defer e.gw.pool.mu.Unlock()
				for _, ip := range e.gw.pool.ids {
					if !ip.busy() {
						return true
					}
				}
				return false
			})
			clk.step.Store(int64(tc.step))
			clk.adv.Add(int64(tc.adv))
			e.gw.pool.sweep(e.gw.nanos()) // the janitor's tick
			if n := pooled(e); n != tc.want {
				t.Fatalf("%d principals pooled after a sweep %v after the request, the wall clock stepped %v: want %d (session_idle 60 s)", n, tc.adv, tc.step, tc.want)
			}
		})
	}
}

// The SSE total's reaper is spaced on the monotonic clock: stepped back
// an hour right after a run, a push past sse_buffer_total scheduled the
// next run reapEvery plus the hour later (wait = reapEvery - (now -
// lastRun) by the wall clock), and no other push scheduled one meanwhile
// (one timer at a time): a client that stopped reading kept its bytes
// past the bound for the hour (until write_timeout each). Now it is cut
// at once, as TestSSETotalPassedRightAfterReapIsReaped's.
func TestSSEReapIgnoresWallClockSteps(t *testing.T) {
	laneFree(t)
	e, clk := stepEnv(t, func(o *Options) { o.Limits.SSEBufferTotal = 1 << 20 })
	e.gw.sse.lastRun.Store(e.gw.nanos()) // a run just began
	clk.step.Store(int64(-time.Hour))
	q := &stuckQueue{n: 2 << 20, since: e.gw.nanos() - int64(time.Second)}
	e.gw.addQueue(q)
	defer e.gw.removeQueue(q)
	e.gw.addSSEBytes(q.n)
	defer e.gw.sse.bytes.Add(-q.n)
	waitFor(t, "the stuck client cut for the SSE total, the wall clock stepped an hour back", q.cut.Load)
}

// The gateway's rate-limited log lines (a request naming a host it does
// not answer for; a request from a trusted proxy naming no client) are
// spaced on the monotonic clock: stepped back an hour, the wall clock
// held every such line for the hour, not their 10 s.
func TestLogLimitsIgnoreWallClockSteps(t *testing.T) {
	var logs lockedBuf
	e, clk := stepEnv(t, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	})
	proxy := addrClient(t, "127.0.0.2")
	count := func(s string) int { return strings.Count(logs.String(), s) }
	for i := range 2 {
		if st, body := e.rawRequest("GET", "/openapi.json", "attacker.example", ""); st != 403 {
			t.Fatalf("a request for attacker.example: %d %s", st, body)
		}
		resp, err := proxy.Get(e.base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		for _, line := range []string{"naming a host it does not answer for", "names no client address"} {
			if n := count(line); n != i+1 {
				t.Fatalf("%d lines %q after %d requests 11 s apart, the wall clock stepped an hour back between them: want %d", n, line, i+1, i+1)
			}
		}
		clk.step.Store(int64(-time.Hour))
		clk.adv.Add(int64(11 * time.Second))
	}
}
