package loop

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// The pool keeps what a round used and gives back, one scan later, what
// no round needed since the scan before.
func TestPoolTrim(t *testing.T) {
	ls := &loopState{poolMax: poolMaxBytes, keepMax: outBufKeep(defaultHighWater, poolMaxBytes)}
	const size = 32 << 10
	take := func(n int) [][]byte {
		var bs [][]byte
		for range n {
			b := ls.getBuf()
			if cap(b) < size {
				b = make([]byte, 0, size) // a buffer a round grew
			}
			bs = append(bs, b)
		}
		return bs
	}
	give := func(bs [][]byte) {
		for _, b := range bs {
			ls.putBuf(b)
		}
	}
	check := func(step string, want int) {
		t.Helper()
		if ls.pooled != want*size || len(ls.pool) != want {
			t.Fatalf("%s: pool holds %d buffers, %d bytes; want %d buffers of %d", step, len(ls.pool), ls.pooled, want, size)
		}
	}

	give(take(100)) // a burst: 100 connections in one round
	check("after the burst", 100)
	ls.trimPool() // the scan in the middle of the burst's second
	check("first scan", 100)
	for range 3 { // a steady load of 100 a round keeps all of them
		give(take(100))
		ls.trimPool()
		check("steady load", 100)
	}
	give(take(40)) // the load falls to 40 connections a round
	ls.trimPool()
	check("after a lighter second", 40)
	if got := take(40); cap(got[0]) != size {
		t.Fatalf("the pool kept the wrong end: a buffer of %d bytes", cap(got[0]))
	} else {
		give(got)
	}
	ls.trimPool()
	check("unchanged", 40)
	ls.trimPool() // a second without traffic
	check("idle", 0)
	if ls.pool != nil {
		t.Fatal("an empty pool keeps its slice")
	}

	// The caps: no buffer over keepMax, no more than poolMax.
	ls.putBuf(make([]byte, 0, ls.keepMax+1))
	check("an oversized buffer", 0)
	for range poolMaxBytes/ls.keepMax + 5 {
		ls.putBuf(make([]byte, 0, ls.keepMax))
	}
	if ls.pooled != poolMaxBytes {
		t.Fatalf("pooled %d bytes, cap %d", ls.pooled, poolMaxBytes)
	}
}

// The pool's cap follows the router-wide output budget.
func TestPoolCap(t *testing.T) {
	for _, c := range []struct {
		budget int64
		loops  int
		want   int
	}{
		{128 << 20, 4, 8 << 20}, // 512 MiB of RAM, 4 cores: the default budget is a quarter
		{64 << 20, 4, 4 << 20},  // the floor
		{4 << 30, 2, 64 << 20},  // the ceiling
		{32 << 20, 0, 8 << 20},  // no loops yet counts as one
	} {
		if got := poolCap(c.budget, c.loops); got != c.want {
			t.Errorf("poolCap(%d MiB, %d loops) = %d MiB, want %d MiB", c.budget>>20, c.loops, got>>20, c.want>>20)
		}
	}
}

// The largest buffer kept follows the high-water mark, within bounds.
func TestOutBufKeep(t *testing.T) {
	for _, c := range []struct{ highWater, poolMax, want int }{
		{256 << 10, 64 << 20, 512 << 10}, // the defaults
		{256 << 10, 4 << 20, 512 << 10},  // a small box
		{16 << 10, 64 << 20, 64 << 10},   // the floor
		{4 << 20, 8 << 20, 1 << 20},      // a high mark: an eighth of the pool
	} {
		if got := outBufKeep(c.highWater, c.poolMax); got != c.want {
			t.Errorf("outBufKeep(%d KiB, %d MiB) = %d KiB, want %d KiB", c.highWater>>10, c.poolMax>>20, got>>10, c.want>>10)
		}
	}
}

// A fan-out round to many connections, each getting many messages (a
// publisher's batch of publications), reuses the buffers of the round
// before: no allocation once warm, on both send paths. It did not when
// the pool was capped at 4 MiB (200 connections × 32 KiB do not fit: 540
// allocations a round), nor when it kept no buffer over 64 KiB (32
// connections × 250 KiB).
func TestFanoutRoundReusesBuffers(t *testing.T) {
	for _, c := range []struct{ conns, msgs int }{{200, 300}, {32, 3200}} {
		for _, path := range []string{"write", "ring"} {
			t.Run(fmt.Sprintf("%dx%d/%s", c.conns, c.msgs, path), func(t *testing.T) {
				fanoutRound(t, path, c.conns, c.msgs)
			})
		}
	}
}

func fanoutRound(t *testing.T, path string, nconns, msgs int) {
	var ls *loopState
	if path == "ring" {
		ls = ringFixture(t, 256)
	} else {
		ls = &loopState{e: &Engine{log: slog.New(slog.NewTextHandler(io.Discard, nil))}, poolMax: poolMaxBytes, keepMax: outBufKeep(defaultHighWater, poolMaxBytes)}
	}
	var conns []*conn
	var socks []*sockConn
	var peers []int
	for range nconns {
		cn, sc, peer := addConn(t, ls)
		conns, socks, peers = append(conns, cn), append(socks, sc), append(peers, peer)
	}
	event := make([]byte, 80)
	b := make([]byte, 64<<10)
	got := 0
	round := func() {
		for _, cn := range conns {
			for range msgs {
				queue(cn, event)
			}
		}
		ls.flush()
		for i, p := range peers {
			for {
				n, err := unix.Read(p, b)
				got += max(n, 0)
				if err != nil || n <= 0 {
					break
				}
			}
			got += socks[i].written.Len() // what went to the fake gnet buffer
			socks[i].written.Reset()
			socks[i].buffered = 0
		}
	}
	round()
	if want := nconns * msgs * len(event); got != want {
		t.Fatalf("a round delivered %d bytes, want %d", got, want)
	}
	for _, sc := range socks { // the fake gnet buffer never grows inside a measured round
		sc.written.Grow(msgs * len(event))
	}
	// AllocsPerRun counts the whole process's mallocs, so a goroutine an
	// earlier test left winding down (an engine's scan, a closing client)
	// can add some to a round. An allocation of the round itself shows in
	// every measurement; only one that shows in all three fails.
	var allocs float64
	for range 3 {
		if allocs = testing.AllocsPerRun(10, round); allocs == 0 {
			return
		}
		t.Logf("%v allocations per round; measuring again", allocs)
	}
	t.Fatalf("%v allocations per round in 3 measurements (pool %d buffers, %d bytes)", allocs, len(ls.pool), ls.pooled)
}

// On a running engine, the buffers a burst of fan-out left in the pool are
// given back by the once-a-second scan within two scans of its end.
func TestPoolGivenBackAfterBurst(t *testing.T) {
	s := startServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	var got atomic.Int64
	for range 10 {
		sub := s.dial("ws", proto.MsgPack)
		if _, err := sub.Subscribe(ctx, "com.pool.burst", func(*client.Event) { got.Add(1) }, nil); err != nil {
			t.Fatal(err)
		}
	}
	pub := s.dial("ws", proto.MsgPack)
	payload := make([]byte, 1<<10)
	sent, pooled := 0, int64(0)
	for pooled == 0 && sent < 20000 { // publish until the pool holds what the flushes gave back
		for range 100 {
			if err := pub.Publish(ctx, "com.pool.burst", []any{payload}, nil, nil); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		want := int64(10 * sent)
		eventually(t, ioTimeout, "the subscribers to get every event", func() bool { return got.Load() == want })
		pooled = s.e.pooledBytes(t)
	}
	if pooled == 0 {
		t.Fatalf("after %d publications to 10 subscribers the loops pool no output buffer", sent)
	}
	start := time.Now()
	eventually(t, 5*time.Second, "the pool to give its buffers back", func() bool { return s.e.pooledBytes(t) == 0 })
	t.Logf("%d publications; %d KiB pooled after them, given back %v later", sent, pooled>>10, time.Since(start).Round(10*time.Millisecond))
}
