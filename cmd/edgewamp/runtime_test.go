package main

import (
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"testing"
	"time"
)

func TestRuntimeConfig(t *testing.T) {
	base := "listeners: [{address: \"127.0.0.1:9000\"}]\nrealms: [{name: a}]\n"
	cases := []struct {
		name, body string
		limit      memLimit
		gogc       gcPercent
		err        string
	}{
		{"absent", "", memLimit{}, gcPercent{}, ""},
		{"auto", "runtime: {memory_limit: auto}\n", memLimit{}, gcPercent{}, ""},
		{"size and percent", "runtime:\n  memory_limit: 192MiB\n  gogc: 50\n", memLimit{set: true, bytes: 192 << 20}, gcPercent{set: true, percent: 50}, ""},
		{"off", "runtime: {memory_limit: off, gogc: 100}\n", memLimit{set: true, bytes: math.MaxInt64}, gcPercent{set: true, percent: 100}, ""},
		{"gogc off with a limit", "runtime: {memory_limit: 200MiB, gogc: off}\n", memLimit{set: true, bytes: 200 << 20}, gcPercent{set: true, percent: -1}, ""},
		{"gogc off with auto", "runtime: {gogc: off}\n", memLimit{}, gcPercent{set: true, percent: -1}, ""},
		{"gogc off without a limit", "runtime:\n  memory_limit: off\n  gogc: off\n", memLimit{}, gcPercent{}, "line 5: runtime.gogc off needs a runtime.memory_limit"},
		{"tiny limit", "runtime:\n  memory_limit: 1MiB\n", memLimit{}, gcPercent{}, "line 4: runtime.memory_limit 1MiB is below 16MiB"},
		{"bad limit", "runtime:\n  memory_limit: lots\n", memLimit{}, gcPercent{}, `line 4: runtime.memory_limit: want auto, off or a size`},
		{"bad gogc", "runtime:\n  gogc: 5\n", memLimit{}, gcPercent{}, "line 4: runtime.gogc must be a percentage between 10 and 10000"},
		{"unknown key", "runtime:\n  gomaxprocs: 2\n", memLimit{}, gcPercent{}, "line 4: key gomaxprocs is not a known configuration key"},
		{"bad heap floor", "runtime:\n  heap_floor: big\n", memLimit{}, gcPercent{}, "line 4: runtime.heap_floor: want auto, off or a size"},
		{"huge heap floor", "runtime:\n  heap_floor: 2GiB\n", memLimit{}, gcPercent{}, "line 4: runtime.heap_floor 2GiB is above 1GiB"},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			c, err := parseConfig([]byte(base+k.body), nil)
			if k.err != "" {
				if err == nil || !strings.Contains(err.Error(), k.err) {
					t.Fatalf("error %v, want %q", err, k.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Runtime.MemoryLimit != k.limit || c.Runtime.GOGC != k.gogc {
				t.Fatalf("got %+v", c.Runtime)
			}
		})
	}
	for body, want := range map[string]heapFloor{"": {}, "runtime: {heap_floor: auto}\n": {}, "runtime: {heap_floor: off}\n": {set: true},
		"runtime: {heap_floor: 0}\n": {set: true}, "runtime: {heap_floor: 8MiB}\n": {set: true, bytes: 8 << 20}} {
		c, err := parseConfig([]byte(base+body), nil)
		if err != nil || c.Runtime.HeapFloor != want {
			t.Fatalf("%q: %+v, %v", body, c.Runtime.HeapFloor, err)
		}
	}
}

// The heap floor's percentage: the goal is about max(live, 4 MiB) + floor,
// never below GOGC's own, never above 10000 %, none with GOGC off.
func TestHeapFloorPercent(t *testing.T) {
	const mib = 1 << 20
	for _, k := range []struct {
		base  int
		floor int64
		live  uint64
		want  int
	}{
		{100, 16 * mib, 0, 400}, {100, 16 * mib, 2 * mib, 400}, {100, 16 * mib, 8 * mib, 200},
		{100, 16 * mib, 32 * mib, 100}, {300, 16 * mib, 8 * mib, 300}, {100, 0, 2 * mib, 100},
		{-1, 16 * mib, 2 * mib, -1}, {100, 1 << 30, 0, 10000},
	} {
		ft := floorTuner{base: k.base, floor: k.floor}
		if got := ft.percent(k.live); got != k.want {
			t.Errorf("base %d floor %d live %d: %d, want %d", k.base, k.floor, k.live, got, k.want)
		}
	}
}

// heap_floor: auto on a mesh node raises the GC percentage after each
// collection from the live heap; off (or a router alone) leaves GOGC's.
func TestHeapFloorApplied(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	installed := func() (got, applied int, cycles uint64) {
		gcFloor.mu.Lock()
		defer gcFloor.mu.Unlock()
		got = debug.SetGCPercent(100)
		debug.SetGCPercent(got)
		return got, gcFloor.applied, gcFloor.cycles
	}
	afterGC := func() (int, int) {
		_, _, before := installed()
		for end := time.Now().Add(10 * time.Second); ; {
			runtime.GC()
			if got, applied, c := installed(); c > before {
				return got, applied
			}
			if time.Now().After(end) {
				t.Fatal("no collection ran the floor's finalizer")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	s := applyRuntime(runtimeConfig{}, true)
	if s.HeapFloor != autoHeapFloor || s.logAttrs()[4].(slog.Attr).String() != "heap_floor=16MiB" {
		t.Fatalf("mesh node: %+v %v", s, s.logAttrs())
	}
	var live [1]metrics.Sample
	live[0].Name = "/gc/heap/live:bytes"
	got, applied := afterGC()
	metrics.Read(live[:])
	if got != applied || got < 100 || live[0].Value.Uint64() < 12<<20 && got <= 100 {
		t.Fatalf("after a collection at a live heap of %d B: GOGC %d (applied %d)", live[0].Value.Uint64(), got, applied)
	}
	// Off, and a router alone: GOGC's own percentage, collection after collection.
	for _, k := range []struct {
		rt   runtimeConfig
		mesh bool
	}{{runtimeConfig{HeapFloor: heapFloor{set: true}}, true}, {runtimeConfig{}, false}} {
		if s := applyRuntime(k.rt, k.mesh); s.HeapFloor != 0 {
			t.Fatalf("%+v: floor %d", k, s.HeapFloor)
		}
		if got, _ := afterGC(); got != 100 {
			t.Fatalf("%+v: GOGC %d after a collection", k, got)
		}
	}
}

// applyRuntime installs the settings in the Go runtime, and a later call
// without them goes back to the defaults.
func TestApplyRuntime(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOMEMLIMIT", "")
	t.Setenv("GOGC", "")

	s := applyRuntime(runtimeConfig{MemoryLimit: memLimit{set: true, bytes: 100 << 20}, GOGC: gcPercent{set: true, percent: 60}}, false)
	if got := debug.SetMemoryLimit(-1); got != 100<<20 || s.LimitFrom != "config" {
		t.Fatalf("memory limit %d from %s", got, s.LimitFrom)
	}
	if got := debug.SetGCPercent(60); got != 60 || s.GOGCFrom != "config" {
		t.Fatalf("GOGC %d from %s", got, s.GOGCFrom)
	}

	s = applyRuntime(runtimeConfig{}, false)
	want := autoMemoryLimit()
	if got := debug.SetMemoryLimit(-1); got != want || s.LimitFrom != "auto" || s.GOGC != 100 {
		t.Fatalf("defaults: limit %d (want %d) from %s, GOGC %d", got, want, s.LimitFrom, s.GOGC)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("default GOGC %d", got)
	}
	if want <= 0 || want == math.MaxInt64 {
		t.Fatalf("auto limit %d", want)
	}
	attrs := s.logAttrs()
	if len(attrs) != 5 {
		t.Fatalf("log attrs %v", attrs)
	}

	// An environment setting is kept while the file leaves the key alone.
	t.Setenv("GOMEMLIMIT", "1GiB")
	t.Setenv("GOGC", "200")
	if s := applyRuntime(runtimeConfig{}, false); s.LimitFrom != "environment" || s.GOGCFrom != "environment" {
		t.Fatalf("environment: %+v", s)
	}
	if s := applyRuntime(runtimeConfig{GOGC: gcPercent{set: true, percent: -1}}, false); s.GOGC != -1 || debug.SetGCPercent(100) != -1 {
		t.Fatalf("gogc off: %+v", s)
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{512: "512", 2048: "2KiB", 256 << 20: "256MiB", 2 << 30: "2GiB", 1536 << 20: "1536MiB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}
