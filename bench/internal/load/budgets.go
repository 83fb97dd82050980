package load

import (
	"fmt"
	"io"
	"sort"
	"strconv"
)

// The budgets of DESIGN.md §9 for this 2-core machine (router on CPU 0,
// load tool on CPU 1), checked against the edgewamp target.

// find returns the configuration whose first run has all the given
// fields.
func (m *matrix) find(want map[string]string) string {
	for _, c := range m.cfgs {
		if isTLSCfg(c) {
			continue
		}
		ok := true
		for k, v := range want {
			if m.first(c, k) != v {
				ok = false
				break
			}
		}
		if ok {
			return c
		}
	}
	return ""
}

// minOver returns the smallest value of k over a cell's runs.
func (c *cell) minOver(k string) (float64, bool) {
	best, ok := 0.0, false
	for _, r := range c.runs {
		if v, err := strconv.ParseFloat(r.f[k], 64); err == nil && (!ok || v < best) {
			best, ok = v, true
		}
	}
	return best, ok
}

// bound says what the CPU figures suggest limits a configuration.
func bound(c *cell) string {
	tool, _ := c.median("tool_cpu_pct")
	router, _ := c.median("router_cpu_pct")
	other, _ := c.median("other_cpu_pct")
	s := fmt.Sprintf("tool CPU %.0f %%, router CPU %.0f %%, other %.0f %%", tool, router, other)
	switch {
	case other > noisyPct:
		return s + ": disturbed by other work on the machine"
	case tool >= 90 && router >= 90:
		return s + ": both sides saturated"
	case tool >= 90:
		return s + ": the load tool is saturated"
	case router >= 90:
		return s + ": the router's CPU is saturated"
	}
	return s + ": neither side saturated (latency-bound: round trips and wake-ups)"
}

type budget struct {
	name  string
	want  map[string]string
	check func(m *matrix, c *cell) (figure string, met bool)
	bound func(c *cell) string // nil: the CPU figures
}

func (m *matrix) budgets(w io.Writer) {
	target := "edgewamp"
	found := false
	for _, t := range m.targets {
		found = found || t == target
	}
	if !found && len(m.targets) > 0 {
		target = m.targets[0]
	}
	ref := ""
	for _, t := range m.targets {
		if t != target {
			ref = t
			break
		}
	}
	med := func(c *cell, k string) float64 { v, _ := c.median(k); return v }
	budgets := []budget{
		{"idle: ≤ 4 KiB router RSS per idle WebSocket session at 19k sessions",
			map[string]string{"scenario": "idle", "transport": "ws", "sessions": "19000"},
			func(m *matrix, c *cell) (string, bool) {
				v := med(c, "kib_per_session")
				return fmt.Sprintf("%.2f KiB/session (1M sessions ≈ %.1f GiB)", v, med(c, "gib_per_1m_sessions")), v <= 4
			},
			func(c *cell) string {
				return fmt.Sprintf("memory: router RSS %s KiB before connecting, %s KiB with the sessions (the CPU figures of idle runs are the connect phase's)",
					fmtNum(med(c, "router_rss_base_kib")), fmtNum(med(c, "router_rss_kib")))
			}},
		{"rpc, 16 callers, 1 callee, 64 B, ws+msgpack: ≥ 40,000 calls/s and p99 ≤ 1.5 ms",
			map[string]string{"scenario": "rpc", "transport": "ws", "ser": "msgpack", "callers": "16", "payload": "64"},
			func(m *matrix, c *cell) (string, bool) {
				v, p := med(c, "calls_per_s"), med(c, "p99_us")
				return fmt.Sprintf("%s calls/s, p99 %s µs", fmtNum(v), fmtNum(p)), v >= 40000 && p <= 1500
			}, nil},
		{"rpc, 128 callers, 64 B: no call refused or lost",
			map[string]string{"scenario": "rpc", "transport": "ws", "ser": "msgpack", "callers": "128", "payload": "64"},
			refusedLost, nil},
		{"rpc, 128 callers, 4 KiB: no call refused or lost",
			map[string]string{"scenario": "rpc", "transport": "ws", "ser": "msgpack", "callers": "128", "payload": "4096"},
			refusedLost, nil},
		{"pubsub 1 → 1,000, 64 B: ≥ 250,000 events delivered/s at saturation",
			map[string]string{"scenario": "pubsub", "subscribers": "1000", "payload": "64", "mode": "saturation"},
			func(m *matrix, c *cell) (string, bool) {
				v := med(c, "events_per_s")
				return fmt.Sprintf("%s events/s", fmtNum(v)), v >= 250000
			},
			func(c *cell) string {
				return bound(c) + fmt.Sprintf("; the publisher keeps ≤ %s events in flight, so throughput ≈ that ÷ delivery latency (p50 %s µs)",
					fmtNum(med(c, "inflight_events")), fmtNum(med(c, "p50_us")))
			}},
		{"pubsub 1 → 1,000, 64 B: delivery ratio 1.0 when subscribers keep up (fixed rate)",
			map[string]string{"scenario": "pubsub", "subscribers": "1000", "payload": "64", "mode": "rate"},
			func(m *matrix, c *cell) (string, bool) {
				v, _ := c.minOver("delivery_ratio")
				return fmt.Sprintf("lowest ratio over the runs %.5f", v), v >= 1
			}, nil},
		{"pubsub 1 → 1,000, 64 B: p99 ≤ 5 ms at a fixed 100,000 events/s",
			map[string]string{"scenario": "pubsub", "subscribers": "1000", "payload": "64", "mode": "rate"},
			func(m *matrix, c *cell) (string, bool) {
				v := med(c, "p99_us")
				return fmt.Sprintf("p99 %s µs (p50 %s µs)", fmtNum(v), fmtNum(med(c, "p50_us"))), v <= 5000
			}, nil},
		{"the same, the load tool reading through io_uring (-driver uring), so that the tool's read(2) calls do not bound it",
			map[string]string{"scenario": "pubsub", "subscribers": "1000", "payload": "64", "mode": "rate", "driver": "uring"},
			func(m *matrix, c *cell) (string, bool) {
				v := med(c, "p99_us")
				return fmt.Sprintf("p99 %s µs (p50 %s µs)", fmtNum(v), fmtNum(med(c, "p50_us"))), v <= 5000
			}, nil},
		{"the same, timed to when the kernel put each event in the subscriber's socket (SO_TIMESTAMPNS of the tool's reads): the router's fan-out, without the one tool's reading of 1,000 sessions on one CPU",
			map[string]string{"scenario": "pubsub", "subscribers": "1000", "payload": "64", "mode": "rate", "driver": "uring"},
			func(m *matrix, c *cell) (string, bool) {
				v, ok := c.median("arrive_p99_us")
				if !ok {
					return "no arrival timestamps in these runs", false
				}
				return fmt.Sprintf("p99 %s µs (p50 %s µs)", fmtNum(v), fmtNum(med(c, "arrive_p50_us"))), v <= 5000
			}, nil},
		{"HTTP gateway, POST /call, 16 keep-alive clients, 64 B, 1 WAMP callee: ≥ 50 % of a bare net/http handler's requests/s (same run), p99 ≤ 3 ms",
			map[string]string{"scenario": "httpcall", "clients": "16", "payload": "64"},
			func(m *matrix, c *cell) (string, bool) {
				v, p := med(c, "calls_per_s"), med(c, "p99_us")
				cfg := m.find(map[string]string{"scenario": "httpcall", "clients": "16", "payload": "64"})
				fig := fmt.Sprintf("%s requests/s, p99 %s µs", fmtNum(v), fmtNum(p))
				if c == m.cell(cfg, "httpconst") {
					return fig + " (the ceiling)", true
				}
				r, ok := m.pairRatio(cfg, "edgewamp", "httpconst", "calls_per_s")
				if !ok {
					return fig + " (no httpconst run to compare)", false
				}
				return fig + fmt.Sprintf(", %.0f %% of httpconst", 100*r), r >= 0.5 && p <= 3000
			}, nil},
		{"HTTP gateway, SSE 1 → 1,000 streams at a fixed rate: every event delivered",
			map[string]string{"scenario": "sse", "streams": "1000"},
			func(m *matrix, c *cell) (string, bool) {
				v, _ := c.minOver("delivery_ratio")
				cut, _ := c.sum("streams_cut")
				return fmt.Sprintf("%s events/s, lowest ratio %.5f, p99 %s µs, %d streams cut", fmtNum(med(c, "events_per_s")), v, fmtNum(med(c, "p99_us")), int(cut)), v >= 1 && cut == 0
			}, nil},
		{"churn: ≥ 5,000 joins/s",
			map[string]string{"scenario": "churn"},
			func(m *matrix, c *cell) (string, bool) {
				v := med(c, "joins_per_s")
				f, _ := c.sum("failures")
				return fmt.Sprintf("%s joins/s, %d failures", fmtNum(v), int(f)), v >= 5000 && f == 0
			}, nil},
	}
	fmt.Fprintln(w, "## Budgets (DESIGN.md §9), edgewamp")
	fmt.Fprintln(w)
	if ref != "" {
		fmt.Fprintf(w, "| budget | %s | met? | %s (same run) | what bounds it (%s medians) |\n|---|---|---|---|---|\n", target, ref, target)
	} else {
		fmt.Fprintf(w, "| budget | %s | met? | what bounds it |\n|---|---|---|---|\n", target)
	}
	for _, b := range budgets {
		cfg := m.find(b.want)
		c := m.cell(cfg, target)
		if cfg == "" || c == nil {
			fmt.Fprintf(w, "| %s | not measured | – |", b.name)
			if ref != "" {
				fmt.Fprint(w, " – |")
			}
			fmt.Fprintln(w, " – |")
			continue
		}
		fig, met := b.check(m, c)
		verdict := "**yes**"
		if !met {
			verdict = "**NO**"
		}
		fmt.Fprintf(w, "| %s | %s | %s |", b.name, fig, verdict)
		if ref != "" {
			if rc := m.cell(cfg, ref); rc != nil {
				rf, _ := b.check(m, rc)
				fmt.Fprintf(w, " %s |", rf)
			} else {
				fmt.Fprint(w, " – |")
			}
		}
		if b.bound != nil {
			fmt.Fprintf(w, " %s |\n", b.bound(c))
		} else {
			fmt.Fprintf(w, " %s |\n", bound(c))
		}
	}
	fmt.Fprintln(w)
	if len(m.tlsCfgs("idle"))+len(m.tlsCfgs("rpc")) > 0 {
		fmt.Fprintln(w, "### TLS (issue 16), edgewamp over TLS beside its own plaintext listener")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| budget | figure | met? | what bounds it |\n|---|---|---|---|")
		m.tlsBudgets(w)
		fmt.Fprintln(w)
	}
}

// pairRatio is the median over paired runs (same run number) of a's
// value ÷ b's for key.
func (m *matrix) pairRatio(cfg, a, b, key string) (float64, bool) {
	ca, cb := m.cell(cfg, a), m.cell(cfg, b)
	if ca == nil || cb == nil {
		return 0, false
	}
	byRep := map[int]float64{}
	for _, r := range cb.runs {
		if v, err := strconv.ParseFloat(r.f[key], 64); err == nil && v != 0 {
			byRep[r.rep] = v
		}
	}
	var rs []float64
	for _, r := range ca.runs {
		v, err := strconv.ParseFloat(r.f[key], 64)
		if d, ok := byRep[r.rep]; ok && err == nil {
			rs = append(rs, v/d)
		}
	}
	if len(rs) == 0 {
		return 0, false
	}
	sort.Float64s(rs)
	if n := len(rs); n%2 == 0 {
		return (rs[n/2-1] + rs[n/2]) / 2, true
	}
	return rs[len(rs)/2], true
}

func refusedLost(m *matrix, c *cell) (string, bool) {
	e, _ := c.sum("errors")
	l, _ := c.sum("lost")
	d, _ := c.sum("dropped_sessions")
	calls, _ := c.sum("calls")
	return fmt.Sprintf("%s calls, %d refused, %d lost, %d sessions dropped (all runs)", fmtNum(calls), int(e), int(l), int(d)), e == 0 && l == 0 && d == 0
}
