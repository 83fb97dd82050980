package main

import (
	"math"
	"runtime/debug"
	"strings"
	"testing"
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
}

// applyRuntime installs the settings in the Go runtime, and a later call
// without them goes back to the defaults.
func TestApplyRuntime(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOMEMLIMIT", "")
	t.Setenv("GOGC", "")

	s := applyRuntime(runtimeConfig{MemoryLimit: memLimit{set: true, bytes: 100 << 20}, GOGC: gcPercent{set: true, percent: 60}})
	if got := debug.SetMemoryLimit(-1); got != 100<<20 || s.LimitFrom != "config" {
		t.Fatalf("memory limit %d from %s", got, s.LimitFrom)
	}
	if got := debug.SetGCPercent(60); got != 60 || s.GOGCFrom != "config" {
		t.Fatalf("GOGC %d from %s", got, s.GOGCFrom)
	}

	s = applyRuntime(runtimeConfig{})
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
	if len(attrs) != 4 {
		t.Fatalf("log attrs %v", attrs)
	}

	// An environment setting is kept while the file leaves the key alone.
	t.Setenv("GOMEMLIMIT", "1GiB")
	t.Setenv("GOGC", "200")
	if s := applyRuntime(runtimeConfig{}); s.LimitFrom != "environment" || s.GOGCFrom != "environment" {
		t.Fatalf("environment: %+v", s)
	}
	if s := applyRuntime(runtimeConfig{GOGC: gcPercent{set: true, percent: -1}}); s.GOGC != -1 || debug.SetGCPercent(100) != -1 {
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
