package load

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// leaver joins, says GOODBYE at once and waits for the router's.
type leaver struct {
	t0     int64 // connect started (nowNS)
	joinNS int64 // connect to WELCOME
	ok     bool
	err    error
	done   bool
}

func (c *leaver) joined(s *sess, now int64) {
	c.ok = true
	c.joinNS = now - c.t0
	s.leave()
}

func (c *leaver) message(*sess, proto.Code, uint64, uint64, []byte, int64) {}

func (c *leaver) ended(s *sess, err error) { c.err, c.done = err, true }

// churnStats are a churn run's counters.
type churnStats struct {
	ok, fail, late atomic.Int64
	join, cycle    Hist
	mu             sync.Mutex
	reasons        map[string]int
}

// churnOnce runs one connect–join–leave cycle on the calling goroutine.
func churnOnce(ep *endpoint, d *dialer, st *churnStats) {
	t0 := nowNS()
	c, err := d.dial(ep.host, 5*time.Second)
	if err != nil {
		st.failed(err)
		return
	}
	l := &leaver{t0: t0}
	s := newSess(ep, l)
	runBlocking(c, s, time.Now().Add(5*time.Second), nil)
	if l.err != nil || !l.ok {
		st.failed(l.err)
		return
	}
	st.ok.Add(1)
	st.join.Record(l.joinNS)
	st.cycle.Record(nowNS() - t0)
}

func (st *churnStats) failed(err error) {
	st.fail.Add(1)
	st.mu.Lock()
	st.reasons[reason(err)]++
	st.mu.Unlock()
}

// runChurn paces cycles at ChurnRate over Workers goroutines for Duration.
// Cycles that start late (the workers cannot keep up) are counted.
func runChurn(cfg *Config) (*Result, error) {
	ep, err := newEndpoint(cfg.URL, cfg.Ser, cfg.Realm, "", "")
	if err != nil {
		return nil, err
	}
	raiseFileLimit()
	st := &churnStats{reasons: map[string]int{}}
	d := &dialer{srcs: cfg.srcs}
	interval := time.Duration(float64(time.Second) / cfg.ChurnRate)
	cpu := startCPU(cfg.RouterPID)
	start := time.Now()
	end := start.Add(cfg.Duration)
	var seq atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < cfg.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				at := start.Add(time.Duration(seq.Add(1)-1) * interval)
				if !at.Before(end) {
					return
				}
				if wait := time.Until(at); wait > 0 {
					time.Sleep(wait)
				} else if wait < -10*time.Millisecond {
					st.late.Add(1)
				}
				churnOnce(ep, d, st)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	r := cfg.header(ep)
	cpu.stop(r)
	r.Set("target_joins_per_s", cfg.ChurnRate)
	r.Set("workers", cfg.Workers)
	r.Set("duration_s", el.Seconds())
	r.Set("joins", st.ok.Load())
	r.Set("joins_per_s", float64(st.ok.Load())/el.Seconds())
	r.Set("failures", st.fail.Load())
	r.Set("late_starts", st.late.Load())
	st.mu.Lock()
	r.Set("fail_reasons", countsString(st.reasons))
	st.mu.Unlock()
	r.setLatency("join_", &st.join)
	r.Set("cycle_p50_us", us(st.cycle.Quantile(0.5)))
	r.Set("cycle_p99_us", us(st.cycle.Quantile(0.99)))
	moveCPU(r)
	return r, nil
}
