package gateway

import (
	"bytes"
	"io"
	"math"
	"os"
	"runtime"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// The Go runtime's and the process's figures, under the names Prometheus's
// Go client gives them (go_*, process_*), so that the usual dashboards
// find them. The Go figures come from runtime/metrics, which does not stop
// the world; the process's from /proc.

var goSampleNames = [...]string{
	"/sched/goroutines:goroutines",
	"/sched/threads/total:threads",
	"/sched/gomaxprocs:threads",
	"/gc/gogc:percent",
	"/gc/gomemlimit:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/memory/classes/total:bytes",
	"/gc/heap/allocs:bytes",
	"/gc/heap/allocs:objects",
	"/gc/heap/frees:objects",
	"/gc/heap/tiny/allocs:objects",
	"/gc/heap/objects:objects",
	"/gc/heap/goal:bytes",
	"/gc/cycles/total:gc-cycles",
	"/sched/pauses/total/gc:seconds",
	"/cpu/classes/gc/pause:cpu-seconds",
}

func collectGo(e *expo) {
	samples := make([]rtmetrics.Sample, len(goSampleNames))
	for i, n := range goSampleNames {
		samples[i].Name = n
	}
	rtmetrics.Read(samples)
	v := func(i int) float64 {
		switch s := samples[i].Value; s.Kind() {
		case rtmetrics.KindUint64:
			return float64(s.Uint64())
		case rtmetrics.KindFloat64:
			return s.Float64()
		}
		return 0
	}
	const C, G = counterType, gaugeType
	e.add("go_goroutines", "Number of goroutines that currently exist.", G, v(0))
	e.add("go_threads", "Number of OS threads created.", G, v(1))
	e.add("go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting.", G, v(2))
	e.add("go_gc_gogc_percent", "Heap size target percentage configured by the user (GOGC, runtime.gogc in the configuration).", G, v(3))
	e.add("go_gc_gomemlimit_bytes", "Go runtime memory limit configured by the user (GOMEMLIMIT, runtime.memory_limit in the configuration).", G, v(4))
	e.add("go_info", "Information about the Go environment.", G, 1, "version", runtime.Version())
	e.add("go_memstats_alloc_bytes", "Number of heap bytes allocated and currently in use.", G, v(5))
	e.add("go_memstats_alloc_bytes_total", "Total number of heap bytes allocated, even if freed.", C, v(11))
	e.add("go_memstats_mallocs_total", "Total number of heap objects allocated, both live and gc-ed.", C, v(12)+v(14))
	e.add("go_memstats_frees_total", "Total number of heap objects frees.", C, v(13)+v(14))
	e.add("go_memstats_heap_objects", "Number of currently allocated objects.", G, v(15))
	e.add("go_memstats_heap_inuse_bytes", "Number of heap bytes that are in use.", G, v(5)+v(6))
	e.add("go_memstats_heap_idle_bytes", "Number of heap bytes waiting to be used.", G, v(7)+v(8))
	e.add("go_memstats_heap_released_bytes", "Number of heap bytes released to OS.", G, v(8))
	e.add("go_memstats_stack_inuse_bytes", "Number of bytes obtained from system for stack allocator.", G, v(9))
	e.add("go_memstats_sys_bytes", "Number of bytes obtained from system.", G, v(10))
	e.add("go_memstats_next_gc_bytes", "Number of heap bytes when next garbage collection will take place.", G, v(16))
	e.add("go_gc_cycles_total", "Garbage collection cycles completed.", C, v(17))
	if h := samples[18].Value; h.Kind() == rtmetrics.KindFloat64Histogram {
		// The pause time: GOMAXPROCS times each pause, summed by the
		// runtime; over GOMAXPROCS now, exact unless it changed.
		sum := v(19) / max(v(2), 1)
		qs := []float64{0, 0.25, 0.5, 0.75, 1}
		count, vals := histQuantiles(h.Float64Histogram(), qs)
		e.summary("go_gc_duration_seconds", "Stop-the-world pause durations of the garbage collector since start, two per cycle (quantiles: upper bounds of the runtime's histogram buckets).", qs, vals, sum, count)
	}
}

// histQuantiles reads quantiles from a runtime histogram: for each, the
// upper bound of the bucket that holds it (the lower one for the last,
// unbounded bucket); 0 for all when it is empty.
func histQuantiles(h *rtmetrics.Float64Histogram, qs []float64) (count uint64, vals []float64) {
	for _, n := range h.Counts {
		count += n
	}
	vals = make([]float64, len(qs))
	if count == 0 {
		return 0, vals
	}
	for i, q := range qs {
		rank := uint64(math.Ceil(q * float64(count)))
		if rank == 0 {
			rank = 1
		}
		var cum uint64
		for b, n := range h.Counts {
			cum += n
			if cum >= rank {
				v := h.Buckets[b+1]
				if math.IsInf(v, 1) {
					v = h.Buckets[b]
				}
				vals[i] = v
				break
			}
		}
	}
	return count, vals
}

var bootTime = sync.OnceValue(func() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "btime" {
			if t, err := strconv.ParseFloat(f[1], 64); err == nil {
				return t
			}
		}
	}
	return -1
})

// userHZ is the unit of /proc's CPU times, USER_HZ: 100 on every Linux
// architecture edgewamp is built for.
const userHZ = 100

// countOpenFDs counts /proc/self/fd's entries, less the directory's own,
// a batch of names at a time: a router holds tens of thousands.
func countOpenFDs() (int, bool) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, false
	}
	defer d.Close()
	n := 0
	for {
		names, err := d.Readdirnames(1024)
		n += len(names)
		if err == io.EOF {
			return n - 1, true
		}
		if err != nil {
			return 0, false
		}
	}
}

// collectProcess exports the process's figures from /proc/self; those it
// cannot read are left out.
func collectProcess(e *expo) {
	const C, G = counterType, gaugeType
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		// The command name (field 2) may hold spaces and parentheses:
		// fields are counted from its closing parenthesis, field 3 first.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 {
			f := strings.Fields(string(b[i+1:]))
			num := func(field int) (float64, bool) {
				if field-3 >= len(f) {
					return 0, false
				}
				v, err := strconv.ParseFloat(f[field-3], 64)
				return v, err == nil
			}
			ut, ok1 := num(14)
			st, ok2 := num(15)
			if ok1 && ok2 {
				e.add("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", C, (ut+st)/userHZ)
			}
			if v, ok := num(23); ok {
				e.add("process_virtual_memory_bytes", "Virtual memory size in bytes.", G, v)
			}
			if v, ok := num(24); ok {
				e.add("process_resident_memory_bytes", "Resident memory size in bytes.", G, v*float64(os.Getpagesize()))
			}
			if v, ok := num(22); ok && bootTime() >= 0 {
				e.add("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", G, bootTime()+v/userHZ)
			}
		}
	}
	if n, ok := countOpenFDs(); ok {
		e.add("process_open_fds", "Number of open file descriptors.", G, float64(n))
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		e.add("process_max_fds", "Maximum number of open file descriptors.", G, float64(lim.Cur))
	}
}
