package load

import (
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// idler joins and holds its session.
type idler struct {
	tr      *tracker
	marked  bool
	drops   *atomic.Int64 // sessions lost while held
	closing *atomic.Bool  // set before the tool closes the sessions itself
	joinAt  int64         // when it joined (nowNS)
}

func (c *idler) joined(s *sess, now int64) {
	c.marked = true
	c.joinAt = now
	c.tr.mark(true, nil)
	s.out = nil // an idle session keeps no output buffer
}

func (c *idler) message(*sess, proto.Code, uint64, uint64, []byte, int64) {}

func (c *idler) ended(s *sess, err error) {
	if !c.marked {
		c.marked = true
		c.tr.mark(false, err)
		return
	}
	if c.drops != nil && (c.closing == nil || !c.closing.Load()) {
		c.drops.Add(1)
	}
}

// holdSessions connects n idle sessions on a loop client and waits until
// each joined or failed. The caller stops lc to close them.
func holdSessions(cfg *Config, ep *endpoint, n int, drops *atomic.Int64, closing *atomic.Bool) (*loopClient, *tracker, error) {
	lc, err := newLoopClient(cfg.Loops)
	if err != nil {
		return nil, nil, err
	}
	tr := newTracker(n)
	sessions := make([]*sess, n)
	for i := range sessions {
		sessions[i] = newSess(ep, &idler{tr: tr, drops: drops, closing: closing})
	}
	newConnector(cfg, ep, lc).open(sessions, tr)
	tr.wait(cfg.Timeout)
	return lc, tr, nil
}

// idleWorker holds its share of an idle run's sessions until told to stop.
func idleWorker(cfg *Config, cmds <-chan string, out io.Writer) error {
	ep, err := newEndpoint(cfg.URL, cfg.Ser, cfg.Realm, "", "")
	if err != nil {
		return err
	}
	c0 := cpuNS()
	var drops atomic.Int64
	var closing atomic.Bool
	lc, tr, err := holdSessions(cfg, ep, cfg.Sessions, &drops, &closing)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "WORKER READY joined=%d failed=%d reasons=%s cpu_ns=%d\n", tr.ok.Load(), tr.fail.Load(), tr.reasonString(), cpuNS()-c0)
	waitCmd(cmds, "stop")
	closing.Store(true)
	fmt.Fprintf(out, "WORKER DONE drops=%d\n", drops.Load())
	lc.stop()
	return nil
}

func runIdle(cfg *Config) (*Result, error) {
	ep, err := newEndpoint(cfg.URL, cfg.Ser, cfg.Realm, "", "")
	if err != nil {
		return nil, err
	}
	procs := cfg.Procs
	if procs <= 0 {
		procs = (cfg.Sessions + 8999) / 9000
	}
	limit := raiseFileLimit()
	if procs == 1 && uint64(cfg.Sessions)+64 > limit {
		return nil, fmt.Errorf("idle: %d sessions in one process exceed its open-file limit %d; use -procs", cfg.Sessions, limit)
	}
	pid := cfg.RouterPID
	r := cfg.header(ep)
	r.Set("sessions", cfg.Sessions)
	r.Set("procs", procs)
	r.Set("srcs", len(cfg.srcs))
	var baseRSS int64 = -1
	baseFDs := -1
	if pid > 0 {
		baseRSS, baseFDs = procRSS(pid), procFDs(pid)
	}
	cpu := startCPU(pid)
	t0 := time.Now()
	var joined, failed int64
	reasons := map[string]int{}
	var workers []*worker
	var lc *loopClient
	var drops atomic.Int64
	var closing atomic.Bool
	if procs == 1 {
		var tr *tracker
		if lc, tr, err = holdSessions(cfg, ep, cfg.Sessions, &drops, &closing); err != nil {
			return nil, err
		}
		joined, failed = tr.ok.Load(), tr.fail.Load()
		addReasons(reasons, tr.reasonString())
	} else {
		for i := 0; i < procs; i++ {
			wc := *cfg
			wc.Scenario = "idle-worker"
			wc.Sessions = cfg.Sessions / procs
			if i < cfg.Sessions%procs {
				wc.Sessions++
			}
			w, err := spawnWorker(wc, 0)
			if err != nil {
				return nil, err
			}
			workers = append(workers, w)
		}
		defer func() {
			for _, w := range workers {
				w.finish()
			}
		}()
		for _, w := range workers {
			m, err := w.expect("READY", cfg.Timeout+30*time.Second)
			if err != nil {
				return nil, err
			}
			j, _ := strconv.ParseInt(m["joined"], 10, 64)
			f, _ := strconv.ParseInt(m["failed"], 10, 64)
			c, _ := strconv.ParseInt(m["cpu_ns"], 10, 64)
			joined += j
			failed += f
			cpu.extraNS += c
			addReasons(reasons, m["reasons"])
		}
	}
	connect := time.Since(t0)
	cpu.stop(r)
	cfg.logf("idle: %d joined, %d failed in %v; settling %v", joined, failed, connect.Round(time.Millisecond), cfg.Settle)
	r.Set("joined", joined)
	r.Set("failed", failed)
	r.Set("fail_reasons", countsString(reasons))
	r.Set("connect_s", connect.Seconds())
	r.Set("joins_per_s", float64(joined)/connect.Seconds())
	time.Sleep(cfg.Settle)
	if pid > 0 {
		rss := procRSS(pid)
		r.Set("router_rss_base_kib", baseRSS)
		r.Set("router_rss_kib", rss)
		if joined > 0 {
			per := float64(rss-baseRSS) / float64(joined)
			r.Set("kib_per_session", per)
			r.Set("gib_per_1m_sessions", per*1e6/(1<<20))
		}
		fds := procFDs(pid)
		r.Set("router_fds_base", baseFDs)
		r.Set("router_fds", fds)
		if joined > 0 {
			r.Set("fds_per_session", float64(fds-baseFDs)/float64(joined))
		}
	}
	// Close everything and check the router let go of its connections.
	closing.Store(true)
	if lc != nil {
		lc.stop()
	}
	for _, w := range workers {
		w.send("stop")
		if m, err := w.expect("DONE", 30*time.Second); err == nil {
			d, _ := strconv.ParseInt(m["drops"], 10, 64)
			drops.Add(d)
		}
		w.finish()
	}
	workers = nil
	r.Set("dropped_sessions", drops.Load())
	if pid > 0 {
		fds := -1
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if fds = procFDs(pid); fds <= baseFDs+2 {
				break
			}
		}
		r.Set("router_fds_after", fds)
		r.Set("router_rss_after_kib", procRSS(pid))
	}
	moveCPU(r)
	return r, nil
}

// addReasons adds "k:v,k:v" counts into m.
func addReasons(m map[string]int, s string) {
	if s == "" || s == "-" {
		return
	}
	for _, kv := range splitComma(s) {
		k, v, _ := cut(kv, ':')
		n, _ := strconv.Atoi(v)
		m[k] += n
	}
}
