package load

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// TLS beside plaintext. bench/run-e2e.sh runs the "tls-*" configurations
// against two targets that are the same edgewamp process, started fresh
// for every run: "edgewamp" measured over its plaintext listener and
// "edgewamp-tls" over its TLS listener (wss://, rss://), interleaved run by
// run. The forwarder has no TLS, so these rows have their own tables.

const (
	plainTarget = "edgewamp"
	tlsTarget   = "edgewamp-tls"
)

func isTLSCfg(cfg string) bool { return strings.HasPrefix(cfg, "tls-") }

// tlsRatio is the median over runs of (TLS value ÷ plaintext value) of the
// same run number.
func (m *matrix) tlsRatio(cfg, k string) (float64, bool) {
	a, b := m.cell(cfg, tlsTarget), m.cell(cfg, plainTarget)
	if a == nil || b == nil {
		return 0, false
	}
	byRep := map[int]float64{}
	for _, r := range b.runs {
		if v, err := strconv.ParseFloat(r.f[k], 64); err == nil && v != 0 {
			byRep[r.rep] = v
		}
	}
	var rs []float64
	for _, r := range a.runs {
		v, err := strconv.ParseFloat(r.f[k], 64)
		if d, ok := byRep[r.rep]; ok && err == nil {
			rs = append(rs, v/d)
		}
	}
	if len(rs) == 0 {
		return 0, false
	}
	sort.Float64s(rs)
	med := rs[len(rs)/2]
	if len(rs)%2 == 0 {
		med = (rs[len(rs)/2-1] + rs[len(rs)/2]) / 2
	}
	return med, true
}

// pair formats a metric as "plaintext / TLS".
func (m *matrix) pair(cfg, k string) string {
	var parts []string
	for _, t := range []string{plainTarget, tlsTarget} {
		c := m.cell(cfg, t)
		v, ok := 0.0, false
		if c != nil {
			v, ok = c.median(k)
		}
		if !ok {
			parts = append(parts, "–")
			continue
		}
		parts = append(parts, fmtNum(v))
	}
	return strings.Join(parts, " / ")
}

func (m *matrix) tlsCfgs(scenario string) []string {
	var out []string
	for _, c := range m.cfgs {
		if isTLSCfg(c) && m.first(c, "scenario") == scenario {
			out = append(out, c)
		}
	}
	return out
}

// runsPair says how many runs each side had.
func (m *matrix) runsPair(cfg string) string {
	var parts []string
	for _, t := range []string{plainTarget, tlsTarget} {
		c := m.cell(cfg, t)
		if c == nil {
			parts = append(parts, "·")
			continue
		}
		s := strconv.Itoa(len(c.runs))
		if c.noisy > 0 {
			s += fmt.Sprintf(" (%d noisy)", c.noisy)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " / ")
}

func (m *matrix) tlsTables(w io.Writer) {
	idle, rpc := m.tlsCfgs("idle"), m.tlsCfgs("rpc")
	if len(idle)+len(rpc) == 0 {
		return
	}
	fmt.Fprintln(w, "### TLS beside plaintext (the same edgewamp process, its plaintext and TLS listeners, runs interleaved)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Cells read **plaintext / TLS**; the ratio is TLS ÷ plaintext of the same run, median over runs.")
	fmt.Fprintln(w)
	if len(idle) > 0 {
		fmt.Fprintln(w, "| idle sessions | KiB/session | TLS ÷ plaintext | router descriptors per session | joins/s while connecting | failed (all runs) | runs |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
		for _, c := range idle {
			ratio := "–"
			if v, ok := m.tlsRatio(c, "kib_per_session"); ok {
				ratio = strconv.FormatFloat(v, 'f', 2, 64)
			}
			failed := 0.0
			for _, t := range []string{plainTarget, tlsTarget} {
				if cl := m.cell(c, t); cl != nil {
					f, _ := cl.sum("failed")
					failed += f
				}
			}
			fmt.Fprintf(w, "| %s, %s sessions | %s | %s | %s | %s | %d | %s |\n", m.tlsLabel(c), thousands(atoi(m.first(c, "sessions"))),
				m.pair(c, "kib_per_session"), ratio, m.pair(c, "fds_per_session"), m.pair(c, "joins_per_s"), int(failed), m.runsPair(c))
		}
		fmt.Fprintln(w)
	}
	if len(rpc) > 0 {
		fmt.Fprintln(w, "| rpc (closed-loop callers, 1 callee) | calls/s | TLS ÷ plaintext | p50 µs | p99 µs | errors (all runs) | router CPU % | tool CPU % | other CPU % | runs |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
		for _, c := range rpc {
			ratio := "–"
			if v, ok := m.tlsRatio(c, "calls_per_s"); ok {
				ratio = strconv.FormatFloat(v, 'f', 2, 64)
			}
			errs := 0.0
			for _, t := range []string{plainTarget, tlsTarget} {
				if cl := m.cell(c, t); cl != nil {
					e, _ := cl.sum("errors")
					errs += e
				}
			}
			fmt.Fprintf(w, "| %s+%s, %s callers, %s B | %s | %s | %s | %s | %d | %s | %s | %s | %s |\n", m.tlsLabel(c), m.first(c, "ser"),
				m.first(c, "callers"), m.first(c, "payload"), m.pair(c, "calls_per_s"), ratio, m.pair(c, "p50_us"), m.pair(c, "p99_us"),
				int(errs), m.pair(c, "router_cpu_pct"), m.pair(c, "tool_cpu_pct"), m.pair(c, "other_cpu_pct"), m.runsPair(c))
		}
		fmt.Fprintln(w)
	}
}

// tlsLabel names a TLS configuration's transport pair, e.g. "rs/rss".
func (m *matrix) tlsLabel(cfg string) string {
	var a, b string
	if c := m.cell(cfg, plainTarget); c != nil && len(c.runs) > 0 {
		a = c.runs[0].f["transport"]
	}
	if c := m.cell(cfg, tlsTarget); c != nil && len(c.runs) > 0 {
		b = c.runs[0].f["transport"]
	}
	return a + "/" + b
}

// tlsBudgets are issue 16's: an idle TLS session costs at most 8 KiB of
// router RSS, RPC over TLS keeps 0.7 of plaintext's throughput, and a TLS
// connection holds one descriptor.
func (m *matrix) tlsBudgets(w io.Writer) {
	var idle, rpc string
	for _, c := range m.tlsCfgs("idle") {
		idle = c // the largest is last
	}
	for _, c := range m.tlsCfgs("rpc") {
		if m.first(c, "callers") == "16" && m.first(c, "payload") == "64" && rpc == "" {
			rpc = c
		}
	}
	row := func(name, figure string, met, measured bool, bound string) {
		verdict := "**yes**"
		switch {
		case !measured:
			figure, verdict = "not measured", "–"
		case !met:
			verdict = "**NO**"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", name, figure, verdict, bound)
	}
	tc := m.cell(idle, tlsTarget)
	pc := m.cell(idle, plainTarget)
	if tc != nil && pc != nil {
		v, _ := tc.median("kib_per_session")
		p, _ := pc.median("kib_per_session")
		fd, _ := tc.median("fds_per_session")
		row("TLS idle: ≤ 8 KiB router RSS per idle TLS session", fmt.Sprintf("%.2f KiB/session (plaintext, same run: %.2f)", v, p), v <= 8, true,
			fmt.Sprintf("%s TLS sessions; RSS %s KiB before connecting, %s KiB with them", thousands(atoi(m.first(idle, "sessions"))),
				fmtNum(medOr(tc, "router_rss_base_kib")), fmtNum(medOr(tc, "router_rss_kib"))))
		row("TLS: 1 descriptor per TLS connection", fmt.Sprintf("%.3f router descriptors per session", fd), fd < 1.01, true, "open descriptors of the router process, before and with the sessions")
	} else {
		row("TLS idle: ≤ 8 KiB router RSS per idle TLS session", "", false, false, "–")
		row("TLS: 1 descriptor per TLS connection", "", false, false, "–")
	}
	if r, ok := m.tlsRatio(rpc, "calls_per_s"); ok {
		tc := m.cell(rpc, tlsTarget)
		row("TLS rpc, 16 callers, 64 B: ≥ 0.7× plaintext calls/s", fmt.Sprintf("%.2f× (%s calls/s)", r, m.pair(rpc, "calls_per_s")), r >= 0.7, true, "TLS run: "+bound(tc))
	} else {
		row("TLS rpc, 16 callers, 64 B: ≥ 0.7× plaintext calls/s", "", false, false, "–")
	}
}

func medOr(c *cell, k string) float64 { v, _ := c.median(k); return v }
