package oauth

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPlaceWaitWakesOneAtATime: a request waiting for one of its
// address's places (limiter.beginWait) was woken, with every other
// waiter of the address, at each place given back, though one place
// serves one of them: 50 requests waiting behind 10 in progress woke
// about 50 times per place (each taking the limiter's mutex), so that one
// address's requests in flight (128 behind the gateway) cost the node
// waiters × places given back. A place given back now wakes one waiter,
// which passes the wake on when it leaves a place free, or when a
// lockout refuses it (then every waiter is refused at once).
func TestPlaceWaitWakesOneAtATime(t *testing.T) {
	l := newLimiter(AuthLimits{})
	src := l.sourceOf("192.0.2.1:1")
	for i := 0; i < 10; i++ {
		if ok, _ := l.begin(src, time.Now()); !ok {
			t.Fatalf("place %d refused", i)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 50
	var got atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _ := l.beginWait(ctx, src, time.Now, time.Minute); ok {
				got.Add(1)
			}
		}()
	}
	state := func() (parked, wakes int) {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.parked, l.wakes
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for end := time.Now().Add(20 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(end) {
				p, w := state()
				t.Fatalf("%s: %d parked, %d wake-ups, %d served", what, p, w, got.Load())
			}
		}
	}
	waitFor("all waiting", func() bool { p, _ := state(); return p == n })
	for i := 1; i <= 10; i++ {
		l.cancel(src, time.Now())
		waitFor("a waiter served", func() bool { return got.Load() == int64(i) })
	}
	waitFor("the rest waiting again", func() bool { p, _ := state(); return p == n-10 })
	_, wakes := state()
	if wakes > 2*10 {
		t.Fatalf("10 places given back one by one to %d waiting requests: %d wake-ups, want at most 20 (one a place, and the wake passed on)", n, wakes)
	}
	// The ten served fail: the source is locked out, and every waiter is
	// refused then (the wake passed on), not at its wait's end.
	for i := 0; i < 10; i++ {
		l.end(src, time.Now(), true)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		p, w := state()
		t.Fatalf("the source locked out: %d requests still waiting (%d wake-ups)", p, w)
	}
}

// A place that comes free without being given back (one of the source's
// failures leaving its window) wakes no one: the waiter was refused 429 at
// its wait's end, its place free all along. It looks once more then.
func TestPlaceWaitTakesPlaceFreedByAgedFailure(t *testing.T) {
	l := newLimiter(AuthLimits{Window: time.Minute})
	src := l.sourceOf("192.0.2.1:1")
	var clock atomic.Int64
	t0 := time.Unix(1_700_000_000, 0)
	clock.Store(t0.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	for i := 0; i < 5; i++ { // five typos, just now
		if ok, _ := l.begin(src, now()); !ok {
			t.Fatalf("attempt %d refused", i)
		}
		l.end(src, now(), true)
	}
	clock.Add(int64(59 * time.Second))
	for i := 0; i < 5; i++ { // five requests in progress, past the wait
		if ok, _ := l.begin(src, now()); !ok {
			t.Fatalf("place %d refused", i)
		}
	}
	done := make(chan bool)
	go func() {
		ok, _ := l.beginWait(context.Background(), src, now, 300*time.Millisecond)
		done <- ok
	}()
	for {
		l.mu.Lock()
		p := l.parked
		l.mu.Unlock()
		if p == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	clock.Add(int64(2 * time.Second)) // the typos leave the window
	if ok := <-done; !ok {
		t.Fatal("a request waiting for a place refused at its wait's end, five places freed by failures leaving their window meanwhile")
	}
}
