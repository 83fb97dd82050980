package loop

import (
	"runtime"
	"testing"
)

// A client streaming 30 KiB PUBLISHes in 48 KiB writes ends most reads in
// the middle of a frame, the leftover anywhere from a few bytes to most of
// a frame. The stash was made smaller at the end of every read callback
// whose leftover was under a quarter of its capacity, and grew again at
// the next larger one: a new array of up to 32 KiB every third read or
// so (10 KiB allocated a read on average, the read callback about twice
// as slow: BenchmarkReadCallback/frame=30720/split=49152), where gnet's
// ring buffer, which it replaced, kept its array. An oversized stash is
// now made smaller by the once-a-second scan; between scans a streaming
// connection reuses its array.
func TestStashStreamingReusesItsArray(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts: the race detector allocates on its own")
	}
	fzMu.Lock()
	defer fzMu.Unlock()
	c, h, el := newSimPublisher(t)
	defer c.close()
	step := simStream(t, c, h, el, 30<<10, 48<<10)
	for range 200 {
		step()
	}
	const reads = 300
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range reads {
		step()
	}
	runtime.ReadMemStats(&after)
	mallocs, bytes := after.Mallocs-before.Mallocs, after.TotalAlloc-before.TotalAlloc
	t.Logf("%d reads of a stream of 30 KiB frames: %d allocations, %d bytes", reads, mallocs, bytes)
	if bytes > 64<<10 {
		t.Fatalf("%d reads of a stream of 30 KiB frames allocated %d bytes (%d allocations): the stash is reallocated as the leftover's size varies", reads, bytes, mallocs)
	}
}
