package slide

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"
)

const min1 = time.Minute

var t0 = time.Unix(1_800_000_000, 0).UnixNano()

func at(d time.Duration) int64 { return t0 + int64(d) }

// TestWindowCount: the zero value counts nothing; events count whole in
// their window, weighted by the part of it the last window still covers
// in the next, and not at all two windows on.
func TestWindowCount(t *testing.T) {
	var c Window
	if n := c.Count(t0, min1); n != 0 {
		t.Fatalf("zero value: %d", n)
	}
	for range 10 {
		c.Add(t0, min1)
	}
	for _, tc := range []struct {
		at   time.Duration
		want int
	}{
		{0, 10},
		{59 * time.Second, 10},
		{60 * time.Second, 10},  // the previous window, all of it covered
		{90 * time.Second, 5},   // half of it
		{114 * time.Second, 1},  // a tenth
		{115 * time.Second, 0},  // rounded down
		{120 * time.Second, 0},  // two windows on: forgotten
		{-5 * time.Second, 10},  // the clock went back
		{1000 * time.Second, 0}, // long after
	} {
		if n := c.Count(at(tc.at), min1); n != tc.want {
			t.Errorf("10 events at 0, counted at %v: %d, want %d", tc.at, n, tc.want)
		}
	}
}

// TestWindowEdge: the limit at one window's end and again at the next
// one's start are counted together (a fixed window counted 9, then 9).
func TestWindowEdge(t *testing.T) {
	var c Window
	c.Add(t0, min1)
	for range 8 {
		c.Add(at(59*time.Second), min1)
	}
	for i := range 9 {
		c.Add(at(61*time.Second+time.Duration(i)*time.Millisecond), min1)
	}
	if n := c.Count(at(62*time.Second), min1); n < 17 {
		t.Fatalf("9 events at a window's end and 9 at the next one's start: %d counted, want at least 17", n)
	}
}

// TestWindowRate: events at the rate the limit allows (one every 7 s,
// under 10 a minute) never count 10; at one every 5 s (12 a minute) they
// do, within two windows.
func TestWindowRate(t *testing.T) {
	var slow, fast Window
	hit := false
	for i := range 100 {
		now := at(time.Duration(i) * 7 * time.Second)
		slow.Add(now, min1)
		if n := slow.Count(now, min1); n >= 10 {
			t.Fatalf("event %d at one every 7 s: %d counted", i+1, n)
		}
	}
	for i := range 24 {
		now := at(time.Duration(i) * 5 * time.Second)
		fast.Add(now, min1)
		hit = hit || fast.Count(now, min1) >= 10
	}
	if !hit {
		t.Fatal("24 events at one every 5 s never counted 10")
	}
}

// TestWindowRoll: rolling never changes the count, wherever it happens.
func TestWindowRoll(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var c Window
	now := t0
	for range 20000 {
		now += r.Int64N(int64(30 * time.Second))
		if r.IntN(3) == 0 {
			c.Add(now, min1)
		}
		probe := now + r.Int64N(int64(3*time.Minute))
		before := c.Count(probe, min1)
		rolled := c
		rolled.Roll(probe, min1)
		if after := rolled.Count(probe, min1); after != before {
			t.Fatalf("count %d, %d after a roll", before, after)
		}
	}
}

// TestWindowWait: Wait is when Count falls below the limit: it is below
// then, and not one rounding step earlier.
func TestWindowWait(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	step := time.Duration(max(1, int64(min1)>>20))
	for range 20000 {
		var c Window
		now := t0
		for range r.IntN(40) {
			now += r.Int64N(int64(10 * time.Second))
			c.Add(now, min1)
		}
		now += r.Int64N(int64(2 * time.Minute))
		limit := 1 + r.IntN(20)
		wait := c.Wait(now, min1, limit)
		if c.Count(now, min1) < limit {
			if wait != 0 {
				t.Fatalf("below the limit: wait %v", wait)
			}
			continue
		}
		if wait <= 0 || c.Count(now+int64(wait), min1) >= limit {
			t.Fatalf("%+v limit %d: wait %v, then %d counted", c, limit, wait, c.Count(now+int64(wait), min1))
		}
		if wait > step && c.Count(now+int64(wait-step)-1, min1) < limit {
			t.Fatalf("%+v limit %d: wait %v, but below it %v earlier", c, limit, wait, step)
		}
	}
	var c Window
	c.Add(t0, min1)
	if w := c.Wait(at(-time.Second), min1, 1); w <= time.Second || w > 2*time.Minute+time.Second {
		t.Fatalf("clock gone back 1 s: wait %v", w)
	}
	if w := c.Wait(t0, min1, 0); w != 2*time.Minute {
		t.Fatalf("limit 0: wait %v", w)
	}
}

// TestWindowSaturates: the count stops at the largest int32 rather than
// wrapping to a negative count (which would lift any limit).
func TestWindowSaturates(t *testing.T) {
	c := Window{first: t0, n: math.MaxInt32 - 1}
	c.Add(t0, min1)
	c.Add(t0, min1)
	if n := c.Count(t0, min1); n != math.MaxInt32 {
		t.Fatalf("%d counted", n)
	}
}

// TestWindowSize: records hold a Window by value, a million of them in a
// full table: it must stay 16 bytes.
func TestWindowSize(t *testing.T) {
	if s := unsafe.Sizeof(Window{}); s != 16 {
		t.Fatalf("%d bytes", s)
	}
}

func BenchmarkWindowAddCount(b *testing.B) {
	var c Window
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now += int64(time.Millisecond)
		c.Add(now, min1)
		_ = c.Count(now, min1)
	}
}
