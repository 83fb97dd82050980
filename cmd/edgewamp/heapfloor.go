package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// The heap floor (runtime.heap_floor): after every collection the GC
// percentage is raised, where needed, so that the heap may grow by about
// the floor past its live size before the next one, instead of by GOGC
// percent only (Go's own minimum is 4 MiB of growth at GOGC 100).
//
// Go sets its next goal at the larger of live × (1 + GOGC/100) and
// 4 MiB × GOGC/100. With the percentage p = floor / max(live, 4 MiB)
// (in percent, never below the configured GOGC) the goal is about
// max(live, 4 MiB) + floor: 16 MiB at a live heap under 4 MiB with the
// 16 MiB floor, live + 16 MiB above that, and GOGC's own goal once that
// is larger. The memory limit still bounds the heap: near it the
// collector runs whatever the percentage says.
//
// The percentage is recomputed by a finalizer that each collection runs
// and that re-arms itself: no goroutine, no timer, one
// runtime/metrics read per collection.

// gcFloor is the process's heap floor.
var gcFloor floorTuner

type floorTuner struct {
	mu      sync.Mutex
	base    int   // the configured GC percentage; -1 = off
	floor   int64 // bytes; 0 = none
	armed   bool  // the finalizer is set
	applied int   // the percentage last installed
	sample  [1]metrics.Sample
	cycles  uint64 // collections seen, for tests
}

// gcTick is the object whose finalizer runs after a collection.
type gcTick struct{ t *floorTuner }

// set installs base (the GC percentage the configuration chose) and the
// floor, and starts the per-collection adjustment the first time a floor
// is set.
func (t *floorTuner) set(base int, floor int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.base, t.floor = base, floor
	t.applied = -2 // applyRuntime has just installed base itself
	t.adjustLocked()
	if floor > 0 && !t.armed {
		t.armed = true
		t.arm()
	}
}

func (t *floorTuner) arm() {
	runtime.SetFinalizer(&gcTick{t: t}, func(g *gcTick) {
		g.t.mu.Lock()
		g.t.cycles++
		g.t.adjustLocked()
		g.t.mu.Unlock()
		g.t.arm()
	})
}

// percent returns the GC percentage for a live heap of live bytes.
func (t *floorTuner) percent(live uint64) int {
	if t.base < 0 || t.floor <= 0 {
		return t.base
	}
	const minHeap = 4 << 20 // Go's heap minimum at GOGC 100
	p := int(uint64(t.floor) * 100 / max(live, minHeap))
	return min(max(p, t.base), 10000)
}

func (t *floorTuner) adjustLocked() {
	if t.sample[0].Name == "" {
		t.sample[0].Name = "/gc/heap/live:bytes"
	}
	metrics.Read(t.sample[:])
	var live uint64
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	if p := t.percent(live); p != t.applied {
		t.applied = p
		debug.SetGCPercent(p)
	}
}
