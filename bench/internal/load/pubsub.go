package load

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/bench/internal/wire"
	"github.com/edgewamp/edgewamp/proto"
)

// pubsubRun is the state shared by a pubsub run's sessions.
type pubsubRun struct {
	phase     atomic.Int32
	hists     atomic.Pointer[pubHists] // while measuring
	published atomic.Int64             // all publications sent
	pubWin    atomic.Int64             // publications sent while measuring
	delivered atomic.Int64             // all events received
	delivWin  atomic.Int64             // events received while measuring
	badStamp  atomic.Int64             // events whose timestamp could not be read
	drops     atomic.Int64             // subscriber connections lost after joining
	pubTmpl   *wire.Template
	subscribe []byte
	rate      float64 // publications/s per publisher; 0 = saturation
	batch     int
	window    int64 // saturation: publications allowed in flight (not yet delivered to every subscriber); 0 = no limit
	subs      int64
	startNS   atomic.Int64 // when publishing started (nowNS)
}

// pubHists are a measurement's histograms. They are swapped in and out
// together, and an event's arrival is recorded before its latency, so that
// every event counted in lat with a stamp is counted in arrive too, and
// arrive_missing counts only events that came without a stamp. With a
// pointer for each, an event whose subscriber loaded the latency's before
// the run stopped and the arrival's after was counted missing, as was one
// recorded in lat, not yet in arrive, when the report counted them.
type pubHists struct {
	lat    Hist // to the tool's read
	arrive Hist // to the kernel's arrival time (uring driver)
}

// Saturating publishers stop adding output while more than this is
// waiting in their socket's user-space buffer.
const pubBacklog = 64 << 10

type subscriber struct {
	run    *pubsubRun
	tr     *tracker
	marked bool
}

func (c *subscriber) joined(s *sess, _ int64) { s.send(c.run.subscribe) }

func (c *subscriber) message(s *sess, typ proto.Code, a, b uint64, msg []byte, now int64) {
	switch typ {
	case proto.CodeEvent:
		c.run.delivered.Add(1)
		hs := c.run.hists.Load()
		if hs == nil {
			return
		}
		c.run.delivWin.Add(1)
		st, err := wire.EventStamp(s.ep.ser, msg)
		if err != nil || st < wire.FixedMin {
			c.run.badStamp.Add(1)
			return
		}
		if s.arrive > 0 { // before lat: see pubHists
			hs.arrive.Record(s.arrive - int64(st-wire.FixedMin))
		}
		hs.lat.Record(now - int64(st-wire.FixedMin))
	case proto.CodeSubscribed:
		if !c.marked {
			c.marked = true
			c.tr.mark(true, nil)
		}
	case proto.CodeError:
		if !c.marked {
			uri, _ := wire.ErrorURI(s.ep.ser, msg)
			c.marked = true
			c.tr.mark(false, errors.New("SUBSCRIBE refused: "+string(uri)))
		}
	}
}

func (c *subscriber) ended(s *sess, err error) {
	if !c.marked {
		c.marked = true
		c.tr.mark(false, err)
		return
	}
	if c.run.phase.Load() != phStop {
		c.run.drops.Add(1)
	}
}

// publisher publishes with acknowledge off: as fast as the socket takes
// it (saturation) or at a fixed rate, driven by wake-ups.
type publisher struct {
	run    *pubsubRun
	tr     *tracker
	marked bool
	sent   int64
}

func (p *publisher) joined(s *sess, _ int64) {
	p.marked = true
	p.tr.mark(true, nil)
}

func (p *publisher) message(*sess, proto.Code, uint64, uint64, []byte, int64) {}

func (p *publisher) ended(s *sess, err error) {
	if !p.marked {
		p.marked = true
		p.tr.mark(false, err)
	}
}

func (p *publisher) wake(s *sess, now int64) {
	run := p.run
	ph := run.phase.Load()
	if ph != phWarm && ph != phMeasure {
		return
	}
	n := 0
	if run.rate > 0 {
		due := int64(float64(now-run.startNS.Load())*run.rate/1e9) - p.sent
		n = int(min(due, 4096))
	} else if s.outbound() < pubBacklog {
		n = run.batch
		if run.window > 0 {
			inflight := run.published.Load() - run.delivered.Load()/run.subs
			n = int(min(int64(n), run.window-inflight))
		}
	}
	for i := 0; i < n; i++ {
		s.out = run.pubTmpl.AppendTo(s.out, s.nextReq(), uint64(now)+wire.FixedMin)
	}
	if n > 0 {
		p.sent += int64(n)
		run.published.Add(int64(n))
		if ph == phMeasure {
			run.pubWin.Add(int64(n))
		}
	}
	if run.rate == 0 && n > 0 {
		s.wakeUp() // keep going next loop iteration
	}
}

func runPubSub(cfg *Config) (*Result, error) {
	ep, err := newEndpoint(cfg.URL, cfg.Ser, cfg.Realm, "", "")
	if err != nil {
		return nil, err
	}
	run := &pubsubRun{batch: cfg.PubBatch, subs: int64(cfg.Subscribers)}
	if cfg.InFlight > 0 {
		run.window = max(1, int64(cfg.InFlight)/int64(cfg.Subscribers))
	}
	if cfg.Rate > 0 {
		run.rate = cfg.Rate / float64(cfg.Publishers)
	}
	pad := cfg.Payload - 10 // the stamp takes ~9 bytes of the payload
	if pad < 0 {
		pad = 0
	}
	args, err := proto.EncodeValue(ep.ser, []any{uint64(wire.FixedMin), strings.Repeat("x", pad)})
	if err != nil {
		return nil, err
	}
	pub, err := proto.Append(nil, ep.ser, &proto.Message{Type: proto.CodePublish, Request: wire.FixedMin, URI: []byte(cfg.Topic), Args: args})
	if err != nil {
		return nil, err
	}
	fr := wire.Framer{WS: ep.ws, Ser: ep.ser}
	if ep.ws {
		fr.Mask = &ep.mask
	}
	if run.pubTmpl, err = wire.NewTemplate(&fr, pub, []int{1}, []int{4, 0}); err != nil {
		return nil, err
	}
	if run.subscribe, err = proto.Append(nil, ep.ser, &proto.Message{Type: proto.CodeSubscribe, Request: wire.FixedMin, URI: []byte(cfg.Topic)}); err != nil {
		return nil, err
	}
	lc, err := newLoops(cfg)
	if err != nil {
		return nil, err
	}
	ss := newSessionSet(cfg, ep, lc)
	defer ss.close()
	subs := make([]role, cfg.Subscribers)
	trS := newTracker(cfg.Subscribers)
	for i := range subs {
		subs[i] = &subscriber{run: run, tr: trS}
	}
	if len(cfg.SubURLs) == 0 {
		if err := ss.open(subs, trS, false); err != nil {
			return nil, err
		}
	} else {
		// Subscribers spread over the nodes of a mesh; every set shares
		// the loop client, closed with ss.
		for k, u := range cfg.SubURLs {
			epS, err := newEndpoint(u, cfg.Ser, cfg.Realm, "", "")
			if err != nil {
				return nil, err
			}
			if epS.ws != ep.ws {
				return nil, fmt.Errorf("-sub-urls must use the transport of -url")
			}
			n := (cfg.Subscribers - k + len(cfg.SubURLs) - 1) / len(cfg.SubURLs)
			tr := newTracker(n)
			part := make([]role, n)
			for i := range part {
				part[i] = &subscriber{run: run, tr: tr}
			}
			if err := newSessionSet(cfg, epS, lc).open(part, tr, false); err != nil {
				return nil, err
			}
		}
		time.Sleep(500 * time.Millisecond) // interest reaches the publisher's node
	}
	pubs := make([]role, cfg.Publishers)
	trP := newTracker(cfg.Publishers)
	for i := range pubs {
		pubs[i] = &publisher{run: run, tr: trP}
	}
	if err := ss.open(pubs, trP, false); err != nil {
		return nil, err
	}
	pubSess := ss.all[len(ss.all)-cfg.Publishers:]
	cfg.logf("pubsub: %d subscribers, %d publishers joined; warming up %v", cfg.Subscribers, cfg.Publishers, cfg.Warmup)

	// A ticker wakes the publishers: the clock of a fixed rate, and the
	// restart of a saturating publisher whose socket was backed up.
	tick := 200 * time.Microsecond
	if run.rate > 0 {
		tick = time.Millisecond
	}
	stopTick := make(chan struct{})
	tickDone := make(chan struct{})
	go func() {
		defer close(tickDone)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-stopTick:
				return
			case <-t.C:
				for _, s := range pubSess {
					s.wakeUp()
				}
			}
		}
	}()
	run.startNS.Store(nowNS())
	run.phase.Store(phWarm)
	time.Sleep(cfg.Warmup)
	hs := &pubHists{}
	h, ah := &hs.lat, &hs.arrive
	run.hists.Store(hs)
	run.phase.Store(phMeasure)
	cpu := startCPU(cfg.RouterPID)
	t0 := time.Now()
	time.Sleep(cfg.Duration)
	run.hists.Store(nil)
	run.phase.Store(phStop)
	el := time.Since(t0)
	r := cfg.header(ep)
	cpu.stop(r)
	close(stopTick)
	<-tickDone
	// Let the events in flight arrive: until every published event reached
	// every subscriber, or none came for a second (a router may drop events
	// by design; 200 ms was too short on a loaded machine, where a stalled
	// process read as lost events).
	for last, quiet, deadline := int64(-1), time.Duration(0), time.Now().Add(10*time.Second); time.Now().Before(deadline) && quiet < time.Second; {
		d := run.delivered.Load()
		if d >= run.published.Load()*int64(cfg.Subscribers) {
			break
		}
		if d == last {
			quiet += 50 * time.Millisecond
		} else {
			last, quiet = d, 0
		}
		time.Sleep(50 * time.Millisecond)
	}
	mode := "saturation"
	if run.rate > 0 {
		mode = "rate"
	}
	r.Set("mode", mode)
	r.Set("driver", cfg.Driver)
	if cfg.Spin {
		r.Set("spin", "1")
	}
	r.Set("publishers", cfg.Publishers)
	r.Set("subscribers", cfg.Subscribers)
	r.Set("payload", cfg.Payload)
	if run.rate > 0 {
		r.Set("target_events_per_s", run.rate*float64(cfg.Publishers)*float64(cfg.Subscribers))
	} else {
		r.Set("inflight_events", run.window*run.subs)
	}
	r.Set("duration_s", el.Seconds())
	published, delivered := run.published.Load(), run.delivered.Load()
	r.Set("published", published)
	r.Set("delivered", delivered)
	r.Set("publish_per_s", float64(run.pubWin.Load())/el.Seconds())
	r.Set("events_per_s", float64(run.delivWin.Load())/el.Seconds())
	ratio := 0.0
	if published > 0 {
		ratio = float64(delivered) / float64(published*int64(cfg.Subscribers))
	}
	r.Set("delivery_ratio", strconv.FormatFloat(ratio, 'f', 5, 64))
	r.setLatency("", h)
	if ah.Count() > 0 {
		// The same events, timed to when the kernel put them in the
		// subscriber's socket (the uring driver's receive timestamps).
		r.setLatency("arrive_", ah)
		n := h.Count() // before a: see pubHists
		if a := ah.Count(); a < n {
			r.Set("arrive_missing", n-a) // events timed without an arrival stamp
		}
	}
	r.Set("dropped_sessions", run.drops.Load())
	if b := run.badStamp.Load(); b > 0 {
		r.Set("bad_stamps", b)
	}
	moveCPU(r)
	return r, nil
}
