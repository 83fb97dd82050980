package load

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// stormWorker connects its share of an authentication storm when told
// "go", reports, holds the sessions until "stop", then leaves.
func stormWorker(cfg *Config, cmds <-chan string, out io.Writer) error {
	ep, err := stormEndpoint(cfg)
	if err != nil {
		return err
	}
	lc, err := newLoopClient(cfg.Loops)
	if err != nil {
		return err
	}
	defer lc.stop()
	tr := newTracker(cfg.Storm)
	sessions := make([]*sess, cfg.Storm)
	roles := make([]*idler, cfg.Storm)
	for i := range sessions {
		roles[i] = &idler{tr: tr}
		sessions[i] = newSess(ep, roles[i])
	}
	fmt.Fprintln(out, "WORKER READY")
	if !waitCmd(cmds, "go") {
		return nil
	}
	c0 := cpuNS()
	t0 := nowNS()
	newConnector(cfg, ep, lc).open(sessions, tr)
	tr.wait(cfg.Timeout)
	el := nowNS() - t0
	// The storm's tail: the last session to join, seen from "go".
	var last int64
	for _, r := range roles {
		if r.joinAt > last {
			last = r.joinAt
		}
	}
	if last > 0 {
		last -= t0
	}
	fmt.Fprintf(out, "WORKER JOINED ok=%d failed=%d reasons=%s elapsed_ns=%d last_join_ns=%d cpu_ns=%d\n",
		tr.ok.Load(), tr.fail.Load(), tr.reasonString(), el, last, cpuNS()-c0)
	waitCmd(cmds, "stop")
	return nil
}

// stormEndpoint is the storm's endpoint: WAMP-CRA, or WAMP-Ticket with the
// tickets of cfg.TicketFile.
func stormEndpoint(cfg *Config) (*endpoint, error) {
	if cfg.TicketFile == "" {
		return newEndpoint(cfg.URL, cfg.Ser, cfg.Realm, cfg.AuthID, cfg.Secret)
	}
	tickets, err := readTickets(cfg.TicketFile)
	if err != nil {
		return nil, err
	}
	return newTicketEndpoint(cfg.URL, cfg.Ser, cfg.Realm, tickets)
}

// readTickets reads one ticket a line.
func readTickets(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no ticket", path)
	}
	return out, nil
}

// stormAuth names the storm's authentication for the report.
func stormAuth(cfg *Config) string {
	if cfg.TicketFile == "" {
		return "wampcra"
	}
	n := 0
	if t, err := readTickets(cfg.TicketFile); err == nil {
		n = len(t)
	}
	return fmt.Sprintf("jwt-%d-tokens", n)
}

// runAuthStorm measures one caller's latency (closed loop against an echo
// callee) before and while Storm sessions authenticate (WAMP-CRA, or
// WAMP-Ticket with OAuth2 access tokens) at once. The storm runs in worker processes under nice 19, so that on the
// load tool's CPU the caller's process runs first whenever it has work:
// the caller's latency then shows the router, not the storm's client side.
func runAuthStorm(cfg *Config) (*Result, error) {
	if (cfg.AuthID == "" || cfg.Secret == "") && cfg.TicketFile == "" {
		return nil, errors.New("authstorm needs -authid and -secret (a WAMP-CRA user with a plain secret), or -ticket-file")
	}
	ep, err := newEndpoint(cfg.URL, cfg.Ser, cfg.Realm, "", "")
	if err != nil {
		return nil, err
	}
	cfg.Callers, cfg.Callees = 1, 1
	run, err := newRPCRun(cfg, ep)
	if err != nil {
		return nil, err
	}
	procs := cfg.Procs
	if procs <= 0 {
		procs = 1
	}
	var workers []*worker
	defer func() {
		for _, w := range workers {
			w.finish()
		}
	}()
	for i := 0; i < procs; i++ {
		wc := *cfg
		wc.Scenario = "storm-worker"
		wc.Storm = cfg.Storm / procs
		if i < cfg.Storm%procs {
			wc.Storm++
		}
		if wc.Parallel < 256 {
			wc.Parallel = 256 // "at once"
		}
		w, err := spawnWorker(wc, 19)
		if err != nil {
			return nil, err
		}
		workers = append(workers, w)
	}
	for _, w := range workers {
		if _, err := w.expect("READY", 30*time.Second); err != nil {
			return nil, err
		}
	}
	lc, err := newLoopClient(cfg.Loops)
	if err != nil {
		return nil, err
	}
	ss := newSessionSet(cfg, ep, lc)
	defer ss.close()
	trE, trC := newTracker(1), newTracker(1)
	if err := ss.open([]role{&callee{run: run, tr: trE}}, trE, false); err != nil {
		return nil, fmt.Errorf("callee: %w", err)
	}
	if err := ss.open([]role{&caller{run: run, tr: trC}}, trC, true); err != nil {
		return nil, fmt.Errorf("caller: %w", err)
	}
	run.phase.Store(phWarm)
	ss.wakeAll()
	time.Sleep(cfg.Warmup)
	// Baseline: the caller alone.
	var before, during Hist
	run.hist.Store(&before)
	run.phase.Store(phMeasure)
	time.Sleep(min(cfg.Duration, 2*time.Second))
	run.hist.Store(&during)
	cpu := startCPU(cfg.RouterPID)
	t0 := time.Now()
	for _, w := range workers {
		w.send("go")
	}
	var ok, failed, lastJoin int64
	var workerCPU atomic.Int64
	reasons := map[string]int{}
	for _, w := range workers {
		m, err := w.expect("JOINED", cfg.Timeout+30*time.Second)
		if err != nil {
			return nil, err
		}
		o, _ := strconv.ParseInt(m["ok"], 10, 64)
		f, _ := strconv.ParseInt(m["failed"], 10, 64)
		l, _ := strconv.ParseInt(m["last_join_ns"], 10, 64)
		c, _ := strconv.ParseInt(m["cpu_ns"], 10, 64)
		ok += o
		failed += f
		lastJoin = max(lastJoin, l)
		workerCPU.Add(c)
		addReasons(reasons, m["reasons"])
	}
	storm := time.Since(t0)
	run.hist.Store(nil)
	r := cfg.header(ep)
	cpu.extraNS = workerCPU.Load()
	cpu.stop(r)
	run.phase.Store(phStop)
	for _, w := range workers {
		w.send("stop")
	}
	r.Set("storm", cfg.Storm)
	r.Set("auth", stormAuth(cfg))
	r.Set("procs", procs)
	r.Set("storm_ms", float64(storm.Microseconds())/1000)
	r.Set("last_join_ms", float64(lastJoin/1000)/1000)
	r.Set("storm_ok", ok)
	r.Set("storm_failed", failed)
	r.Set("fail_reasons", countsString(reasons))
	r.Set("joins_per_s", float64(ok)/storm.Seconds())
	r.Set("base_calls", before.Count())
	r.Set("base_p50_us", us(before.Quantile(0.5)))
	r.Set("base_p99_us", us(before.Quantile(0.99)))
	r.Set("calls_during", during.Count())
	r.Set("p50_us", us(during.Quantile(0.5)))
	r.Set("p99_us", us(during.Quantile(0.99)))
	r.Set("max_us", us(during.Max()))
	n, byURI := run.errorCount()
	r.Set("caller_errors", n)
	r.Set("errors_by_uri", byURI)
	moveCPU(r)
	return r, nil
}
