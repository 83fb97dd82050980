package load

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/bench/internal/wire"
	"github.com/edgewamp/edgewamp/proto"
)

// Run phases shared by the scenarios.
const (
	phSetup   int32 = iota // connecting
	phWarm                 // traffic, not measured
	phMeasure              // traffic, measured
	phStop                 // no new requests; replies still counted
)

// rpcRun is the state shared by an rpc run's sessions.
type rpcRun struct {
	phase       atomic.Int32
	hist        atomic.Pointer[Hist] // where callers record latency; nil: nowhere
	calls       atomic.Int64         // results while measuring
	outstanding atomic.Int64         // calls sent and not answered
	stray       atomic.Int64         // results for no pending call
	drops       atomic.Int64         // caller connections lost after joining
	calleeLost  atomic.Int64         // callee connections lost after registering
	calleeWhy   string               // guarded by errMu
	callTmpl    *wire.Template
	register    []byte    // REGISTER, encoded (request id patched by re-encoding)
	yieldArgs   proto.Raw // the callee's answer

	errMu sync.Mutex
	errs  map[string]int
}

func newRPCRun(cfg *Config, ep *endpoint) (*rpcRun, error) {
	run := &rpcRun{errs: map[string]int{}}
	args, err := proto.EncodeValue(ep.ser, []any{strings.Repeat("x", cfg.Payload)})
	if err != nil {
		return nil, err
	}
	run.yieldArgs = args
	call, err := proto.Append(nil, ep.ser, &proto.Message{Type: proto.CodeCall, Request: wire.FixedMin, URI: []byte(cfg.Procedure), Args: args})
	if err != nil {
		return nil, err
	}
	fr := wire.Framer{WS: ep.ws, Ser: ep.ser}
	if ep.ws {
		fr.Mask = &ep.mask
	}
	if run.callTmpl, err = wire.NewTemplate(&fr, call, []int{1}, nil); err != nil {
		return nil, err
	}
	opts := map[string]any{}
	if cfg.Callees > 1 {
		opts["invoke"] = "roundrobin"
	}
	d, err := proto.EncodeValue(ep.ser, opts)
	if err != nil {
		return nil, err
	}
	run.register, err = proto.Append(nil, ep.ser, &proto.Message{Type: proto.CodeRegister, Request: wire.FixedMin, URI: []byte(cfg.Procedure), Dict: d})
	return run, err
}

func (run *rpcRun) countError(ser proto.Serializer, msg []byte) {
	uri, err := wire.ErrorURI(ser, msg)
	key := string(uri)
	if err != nil {
		key = "unreadable"
	}
	run.errMu.Lock()
	run.errs[key]++
	run.errMu.Unlock()
}

func (run *rpcRun) errorCount() (int, string) {
	run.errMu.Lock()
	defer run.errMu.Unlock()
	n := 0
	for _, v := range run.errs {
		n += v
	}
	return n, countsString(run.errs)
}

// caller runs a closed loop: one call outstanding, the next sent as soon as
// the result arrives.
type caller struct {
	run     *rpcRun
	tr      *tracker
	marked  bool
	pending bool
	req     uint64
	sent    int64
}

func (c *caller) joined(s *sess, _ int64) {
	c.marked = true
	c.tr.mark(true, nil)
}

func (c *caller) wake(s *sess, now int64) {
	if !c.pending {
		c.call(s, now)
	}
}

func (c *caller) call(s *sess, now int64) {
	p := c.run.phase.Load()
	if p != phWarm && p != phMeasure {
		return
	}
	c.req = s.nextReq()
	s.out = c.run.callTmpl.AppendTo(s.out, c.req, 0)
	c.pending = true
	c.sent = now
	c.run.outstanding.Add(1)
}

func (c *caller) message(s *sess, typ proto.Code, a, b uint64, msg []byte, now int64) {
	switch {
	case typ == proto.CodeResult && c.pending && a == c.req:
		if h := c.run.hist.Load(); h != nil {
			h.Record(now - c.sent)
			c.run.calls.Add(1)
		}
	case typ == proto.CodeError && c.pending && b == c.req:
		c.run.countError(s.ep.ser, msg)
	default:
		c.run.stray.Add(1)
		return
	}
	c.pending = false
	c.run.outstanding.Add(-1)
	c.call(s, now)
}

func (c *caller) ended(s *sess, err error) {
	if !c.marked {
		c.marked = true
		c.tr.mark(false, err)
		return
	}
	if c.run.phase.Load() != phStop {
		c.run.drops.Add(1)
	}
}

// callee registers the procedure and answers every invocation with the
// payload.
type callee struct {
	run    *rpcRun
	tr     *tracker
	marked bool
	m      proto.Message
}

func (c *callee) joined(s *sess, _ int64) {
	s.send(c.run.register)
}

func (c *callee) message(s *sess, typ proto.Code, a, b uint64, msg []byte, now int64) {
	switch typ {
	case proto.CodeInvocation:
		c.m = proto.Message{Type: proto.CodeYield, Request: a, Args: c.run.yieldArgs}
		s.sendMsg(&c.m)
	case proto.CodeRegistered:
		if !c.marked {
			c.marked = true
			c.tr.mark(true, nil)
		}
	case proto.CodeError:
		if !c.marked && proto.Code(a) == proto.CodeRegister {
			uri, _ := wire.ErrorURI(s.ep.ser, msg)
			c.marked = true
			c.tr.mark(false, fmt.Errorf("REGISTER refused: %s", uri))
			s.leave()
		}
	}
}

func (c *callee) ended(s *sess, err error) {
	if !c.marked {
		c.marked = true
		c.tr.mark(false, err)
		return
	}
	if c.run.phase.Load() != phStop {
		c.run.calleeLost.Add(1)
		c.run.errMu.Lock()
		c.run.calleeWhy = reason(err)
		c.run.errMu.Unlock()
	}
}

// sessionSet runs a group of sessions with the configured driver.
type sessionSet struct {
	cfg   *Config
	ep    *endpoint
	lc    loops // event-loop drivers (gnet, uring); nil: goroutine driver
	conn  *connector
	start chan struct{} // goroutine driver: wakes callers
	wg    sync.WaitGroup
	all   []*sess
}

func newSessionSet(cfg *Config, ep *endpoint, lc loops) *sessionSet {
	ss := &sessionSet{cfg: cfg, ep: ep, lc: lc, start: make(chan struct{})}
	if lc != nil {
		ss.conn = newConnector(cfg, ep, lc)
	}
	return ss
}

// open connects sessions with the given roles and waits until each joined
// (and did its setup) or failed.
func (ss *sessionSet) open(roles []role, tr *tracker, wake bool) error {
	sessions := make([]*sess, len(roles))
	for i, r := range roles {
		sessions[i] = newSess(ss.ep, r)
	}
	ss.all = append(ss.all, sessions...)
	if ss.lc != nil {
		ss.conn.open(sessions, tr)
	} else {
		d := &dialer{srcs: ss.cfg.srcs}
		for _, s := range sessions {
			c, err := d.dial(ss.ep.host, 10*time.Second)
			if err != nil {
				tr.mark(false, err)
				continue
			}
			var st <-chan struct{}
			if wake {
				st = ss.start
			}
			s.conn = c
			ss.wg.Add(1)
			go func(c net.Conn, s *sess) {
				defer ss.wg.Done()
				runBlocking(c, s, time.Time{}, st)
			}(c, s)
		}
	}
	if !tr.wait(ss.cfg.Timeout) {
		return fmt.Errorf("%d of %d sessions not ready after %v", tr.n-tr.ok.Load()-tr.fail.Load(), tr.n, ss.cfg.Timeout)
	}
	if f := tr.fail.Load(); f > 0 {
		return fmt.Errorf("%d of %d sessions failed: %s", f, tr.n, tr.reasonString())
	}
	return nil
}

// wakeAll wakes waker roles (the start signal).
func (ss *sessionSet) wakeAll() {
	if ss.lc == nil {
		close(ss.start)
		return
	}
	for _, s := range ss.all {
		if _, ok := s.r.(waker); ok {
			s.wakeUp()
		}
	}
}

// close ends every session (abruptly: closing the sockets).
func (ss *sessionSet) close() {
	if ss.lc != nil {
		ss.lc.stop()
		return
	}
	// Goroutine driver: the sockets are owned by their goroutines; closing
	// is by deadline.
	for _, s := range ss.all {
		if s.conn != nil {
			s.conn.Close()
		}
	}
	ss.wg.Wait()
}

func runRPC(cfg *Config) (*Result, error) {
	ep, err := newEndpoint(cfg.URL, cfg.Ser, cfg.Realm, "", "")
	if err != nil {
		return nil, err
	}
	run, err := newRPCRun(cfg, ep)
	if err != nil {
		return nil, err
	}
	var lc loops
	if cfg.Driver != "goroutine" {
		if lc, err = newLoops(cfg); err != nil {
			return nil, err
		}
	}
	ss := newSessionSet(cfg, ep, lc)
	defer ss.close()
	ssE := ss
	if cfg.CalleeURL != "" {
		epE, err := newEndpoint(cfg.CalleeURL, cfg.Ser, cfg.Realm, "", "")
		if err != nil {
			return nil, err
		}
		if epE.ws != ep.ws || lc == nil {
			return nil, fmt.Errorf("-callee-url must use the transport of -url, with an event-loop driver (gnet, uring)")
		}
		ssE = newSessionSet(cfg, epE, lc) // closed with ss (one loop client)
	}

	callees := make([]role, cfg.Callees)
	trE := newTracker(cfg.Callees)
	for i := range callees {
		callees[i] = &callee{run: run, tr: trE}
	}
	if err := ssE.open(callees, trE, false); err != nil {
		return nil, fmt.Errorf("callees: %w", err)
	}
	if ssE != ss {
		// In a mesh the registration reaches the callers' node a moment
		// after REGISTERED.
		time.Sleep(500 * time.Millisecond)
	}
	callers := make([]role, cfg.Callers)
	trC := newTracker(cfg.Callers)
	for i := range callers {
		callers[i] = &caller{run: run, tr: trC}
	}
	if err := ss.open(callers, trC, true); err != nil {
		return nil, fmt.Errorf("callers: %w", err)
	}
	cfg.logf("rpc: %d callees, %d callers joined; warming up %v", cfg.Callees, cfg.Callers, cfg.Warmup)

	run.phase.Store(phWarm)
	ss.wakeAll()
	time.Sleep(cfg.Warmup)
	var h Hist
	run.hist.Store(&h)
	run.phase.Store(phMeasure)
	cpu := startCPU(cfg.RouterPID)
	t0 := time.Now()
	time.Sleep(cfg.Duration)
	run.phase.Store(phStop)
	run.hist.Store(nil)
	el := time.Since(t0)
	r := cfg.header(ep)
	r.Set("driver", cfg.Driver)
	if cfg.Spin {
		r.Set("spin", "1")
	}
	r.Set("callers", cfg.Callers)
	r.Set("callees", cfg.Callees)
	r.Set("payload", cfg.Payload)
	r.Set("duration_s", el.Seconds())
	cpu.stop(r)
	// Calls still out get a grace period to come back; the rest are lost.
	for deadline := time.Now().Add(3 * time.Second); run.outstanding.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	calls := run.calls.Load()
	r.Set("calls", calls)
	r.Set("calls_per_s", float64(calls)/el.Seconds())
	r.setLatency("", &h)
	n, byURI := run.errorCount()
	r.Set("errors", n)
	r.Set("lost", run.outstanding.Load())
	r.Set("dropped_sessions", run.drops.Load()+run.calleeLost.Load())
	r.Set("errors_by_uri", byURI)
	if n := run.calleeLost.Load(); n > 0 {
		run.errMu.Lock()
		r.Set("callees_lost", n)
		r.Set("callee_lost_reason", run.calleeWhy)
		run.errMu.Unlock()
	}
	if st := run.stray.Load(); st > 0 {
		r.Set("stray", st)
	}
	moveCPU(r)
	return r, nil
}

// moveCPU puts the CPU figures last, where the eye looks for them.
func moveCPU(r *Result) {
	for _, k := range []string{"tool_cpu_pct", "router_cpu_pct", "other_cpu_pct"} {
		if v, ok := r.vals[k]; ok {
			for i, kk := range r.keys {
				if kk == k {
					r.keys = append(r.keys[:i], r.keys[i+1:]...)
					break
				}
			}
			r.keys = append(r.keys, k)
			r.vals[k] = v
		}
	}
}
