package loop

import (
	"net"
	"testing"
	"time"
)

// memBurst reports the end of a burst twice: at least burstEvents
// connection events, then none for burstQuietEarly (the early release),
// then none for burstQuiet (the final one); and not again within burstGap.
// A burst that resumes after its early release gets only its final one.
func TestMemBurstOver(t *testing.T) {
	var b memBurst
	var events uint64
	now := time.Unix(1e9, 0)
	tick := func(d time.Duration, n uint64) bool {
		now = now.Add(d)
		events += n
		return b.over(events, now)
	}
	const tk = 100 * time.Millisecond
	if tick(tk, burstEvents-1) || tick(time.Second, 0) {
		t.Fatal("released below burstEvents events")
	}
	if tick(tk, 5) || tick(tk, 0) || tick(burstQuietEarly-2*tk, 0) {
		t.Fatal("released before burstQuietEarly without an event")
	}
	if !tick(tk, 0) {
		t.Fatal("no early release after burstQuietEarly")
	}
	if tick(tk, 0) || tick(burstQuiet-burstQuietEarly-2*tk, 0) {
		t.Fatal("released again before burstQuiet")
	}
	if !tick(tk, 0) {
		t.Fatal("no final release after burstQuiet")
	}
	if tick(time.Second, 0) || tick(tk, burstEvents) || tick(time.Second, 0) || tick(burstQuiet, 0) {
		t.Fatal("released again within burstGap")
	}
	// Quiet for longer than burstQuiet by the time burstGap is over: one
	// release, the final one.
	now = now.Add(burstGap)
	if !tick(tk, 0) || tick(tk, 0) || tick(burstQuiet, 0) {
		t.Fatal("not one release after burstGap")
	}
	// The next burst, after burstGap, resumes after its early release: no
	// second early release, one final release once it is quiet for
	// burstQuiet.
	now = now.Add(burstGap)
	if tick(tk, burstEvents) || !tick(burstQuietEarly, 0) {
		t.Fatal("no early release of the next burst")
	}
	if tick(tk, 10) || tick(burstQuietEarly, 0) || tick(burstQuietEarly, 0) || tick(burstQuiet-2*burstQuietEarly-tk, 0) {
		t.Fatal("a second early release in one burst")
	}
	if !tick(2*tk, 0) {
		t.Fatal("no final release of the resumed burst")
	}
	// Steady traffic never goes quiet: no release however many events.
	for range 100 {
		if tick(tk, burstEvents) {
			t.Fatal("released during steady traffic")
		}
	}
}

// On a running engine: a few connections come and go without a release;
// a burst of 500 connections opened and closed (1,000 events) is followed
// by its two (early and final) once it is over, and by no other.
func TestMemReleaseAfterBurst(t *testing.T) {
	s := startServer(t, nil)
	for range 10 {
		dialTCP(t, s.url, 0).Close()
	}
	time.Sleep(burstQuiet + time.Second)
	if n := s.e.Stats().MemReleases; n != 0 {
		t.Fatalf("%d releases after 10 connections", n)
	}
	const n = 500
	conns := make([]net.Conn, 0, n)
	for range n {
		conns = append(conns, dialTCP(t, s.url, 0))
	}
	eventually(t, ioTimeout, "every connection open", func() bool { return s.e.Stats().Conns == n })
	for _, c := range conns {
		c.Close()
	}
	eventually(t, burstQuiet+ioTimeout, "two releases after the burst", func() bool { return s.e.Stats().MemReleases == 2 })
	time.Sleep(burstQuiet + time.Second)
	if got := s.e.Stats().MemReleases; got != 2 {
		t.Fatalf("%d releases after one burst, want 2", got)
	}
}
