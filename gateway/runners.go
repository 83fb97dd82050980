package gateway

import (
	"reflect"
	"strconv"
	"time"
)

// A configuration reload's HTTP callees and webhooks (the runners).
//
// Before, they were built once, at New, and started with the server: a
// callee or webhook added, removed or changed took a restart, which
// dropped every client. Now Prepare checks a reload's callees and webhooks
// as New does, and Apply makes the running set the reload's, by name:
//
//   - A runner whose name and configuration (defaults applied) the reload
//     keeps goes on untouched: its session, its registration or
//     subscription, its queue and its metrics.
//   - A removed callee is unregistered before Apply returns: no call
//     reaches it any more. Its invocations in flight finish, each within
//     its timeout (the callee's, or the call's when shorter), and their
//     results reach their callers; then its session closes (quit, in
//     callee.go). A caller whose call was being served when the operator
//     reloaded should not get an error for it; the wait is bounded by a
//     timeout the operator configured already.
//   - A removed webhook is unsubscribed before Apply returns; the POST in
//     progress is canceled and the events queued are dropped (logged with
//     their number): removing a webhook is the operator's decision that
//     its target gets no more POSTs (a receiver retired, misbehaving or
//     compromised), and delivering its queue would go on for up to
//     Timeout × (Retries+1) and backoff per event after the reload.
//     Webhooks deliver at most once already (a full queue, a shutdown, a
//     target that keeps failing drop events, counted).
//   - A changed runner is replaced: the old one stops as a removed one
//     does, then the new one starts. For a callee, Apply waits until the
//     old registration is gone before the new one registers, so that a
//     callee with invoke single does not meet its own old registration
//     (procedure_already_exists); should the router still refuse it (a
//     mesh settling the procedure), the new one retries with backoff, as
//     it does after any refusal. A changed webhook hands the events the
//     old one held (its queue, and the event whose POST was cut short,
//     first) over to the new one, which delivers them under the new
//     configuration (a new URL, secret or headers), when it keeps its URL
//     or has a name of the configuration's: a default name (the topic) is
//     the configuration's order, not the operator's word that the two are
//     one webhook, and another target must never get a webhook's events.
//     Past the new queue's bounds, events are dropped as queue_full. The
//     events published while the new one subscribes (a round trip through
//     the router) are not delivered, as when the router closes a
//     webhook's session.
//
// Names are the identity: Callee.Name and Webhook.Name, by default the
// procedure or topic ("#2", "#3" ... for unnamed ones that share it). They
// are the metrics' label too, so a series stays with its runner when
// another is removed (before, the labels were callee<index> and
// webhook<index>, which shifted). A changed runner's series go on (its
// counters continue), a removed one's are dropped, an added one gets its
// own.
//
// Concurrency: Apply's changes to the runners, Start and Shutdown take
// runMu (lock order: mu, then runMu), so that a runner is started once,
// none after Shutdown, and two Apply calls do not interleave (cmd
// serializes reloads anyway). Apply holds runMu while the old runners
// stop: at most Server.syncWait (10 s) for a router that does not answer.
// The runners' own goroutines (reconnects, backoff, a router that closes
// their sessions) see only their stop channels; a stopped runner reopens
// nothing. Metrics read the set through one atomic pointer.

// runnerSet is the HTTP callees and webhooks running (or to run at Start).
// Immutable: Apply stores a new one.
type runnerSet struct {
	callees  []*calleeRunner
	webhooks []*webhookRunner
}

// nameRunners gives the n runners of kind without a name (at(i) returns a
// pointer to runner i's name and its default base, the procedure or
// topic) base, base#2, base#3 ... in order, past the names given; a name
// given twice is an error at kind+"s"[i].name.
func nameRunners(kind string, n int, at func(i int) (*string, string)) []error {
	var errs []error
	taken := make(map[string]bool, n)
	for i := range n {
		p, _ := at(i)
		if *p == "" {
			continue
		}
		if taken[*p] {
			errs = append(errs, fieldErr(kind+" name "+strconv.Quote(*p)+" is used twice", kind+"s", i, "name"))
		}
		taken[*p] = true
	}
	tried := map[string]int{} // base → how many of its names were tried
	for i := range n {
		p, base := at(i)
		if *p != "" {
			continue
		}
		for k := tried[base]; ; k++ {
			name := base
			if k > 0 {
				name += "#" + strconv.Itoa(k+1)
			}
			if !taken[name] {
				taken[name] = true
				*p = name
				tried[base] = k + 1
				break
			}
		}
	}
	return errs
}

// newRunners builds the runners of New's callees and webhooks (checked).
func (g *Server) newRunners(cs []Callee, ws []Webhook, named []bool) *runnerSet {
	rs := &runnerSet{}
	for i, c := range cs {
		m := &calleeMetrics{}
		g.metrics.calleeStats.Store(c.Name, m)
		rs.callees = append(rs.callees, g.newCalleeRunner(c, g.shardOf(i), m))
	}
	for i, w := range ws {
		wr := g.newWebhookRunner(w, named[i], g.shardOf(len(cs)+i), nil)
		g.metrics.webhooks.Store(w.Name, wr.m)
		rs.webhooks = append(rs.webhooks, wr)
	}
	return rs
}

// shardOf is the router shard of the i-th runner.
func (g *Server) shardOf(i int) int {
	if len(g.queues) == 0 {
		return 0
	}
	return i % len(g.queues)
}

// RunnerChanges is what Apply changed in the HTTP callees or the webhooks,
// by name: added, removed, changed (any field), counted, the first ten of
// each named.
type RunnerChanges struct {
	n                       int
	added, removed, changed changeList
	dropped                 int // events of removed (or replaced, not handed over) webhooks dropped
}

// None reports whether nothing changed.
func (c RunnerChanges) None() bool { return c.added.n == 0 && c.removed.n == 0 && c.changed.n == 0 }

func (c RunnerChanges) logAttrs(kind string) []any {
	return []any{kind, c.n, kind + "_added", c.added.String(), kind + "_removed", c.removed.String(), kind + "_changed", c.changed.String()}
}

// applyRunners makes the running callees and webhooks those of cs and ws
// (checked by Prepare), by name; see the comment at the top of the file.
func (g *Server) applyRunners(cs []Callee, ws []Webhook, named []bool) (cc, wc RunnerChanges) {
	g.runMu.Lock()
	defer g.runMu.Unlock()
	cc.n, wc.n = len(cs), len(ws)
	if g.runStopped {
		return cc, wc // Shutdown stopped them all; nothing starts again
	}
	old := g.runners.Load()
	// Every removed and changed runner is told to stop at once; then
	// Apply waits for them, for at most syncWait in all.
	oldC, goneC := g.retireCallees(old.callees, cs, &cc)
	oldW, goneW := g.signalWebhooks(old.webhooks, ws, named, &wc)
	deadline := time.Now().Add(g.syncWait)
	for _, o := range goneC {
		if !o.awaitGone(time.Until(deadline)) {
			g.log.Warn("gateway: a removed HTTP callee's registration did not end in time; its replacement may be refused until it does", "callee", o.name, "within", g.syncWait)
		}
	}
	rs := &runnerSet{}
	var added []func()
	rs.callees = g.nextCallees(oldC, cs, &cc, &added)
	rs.webhooks = g.nextWebhooks(oldW, ws, named, len(cs), deadline, &wc, &added)
	for _, o := range goneW {
		if held := o.retire(time.Until(deadline)); len(held) > 0 {
			wc.dropped += len(held)
			g.log.Warn("gateway: removed webhook's queued events dropped", "webhook", o.name, "dropped", len(held))
		}
	}
	g.runners.Store(rs)
	if g.runStarted {
		for _, start := range added {
			start()
		}
	}
	return cc, wc
}

// retireCallees tells the callees of old that cs removes or changes to
// stop (retire), and drops the series of those removed. It returns old by
// name, and those told.
func (g *Server) retireCallees(old []*calleeRunner, cs []Callee, cc *RunnerChanges) (map[string]*calleeRunner, []*calleeRunner) {
	byName := make(map[string]*calleeRunner, len(old))
	for _, c := range old {
		byName[c.name] = c
	}
	kept := make(map[string]bool, len(cs))
	var told []*calleeRunner
	for _, c := range cs {
		if o := byName[c.Name]; o != nil {
			kept[c.Name] = true
			if !reflect.DeepEqual(o.cfg, c) {
				told = append(told, o)
				cc.changed.add(c.Name)
			}
		}
	}
	for _, o := range old {
		if !kept[o.name] {
			told = append(told, o)
			cc.removed.add(o.name)
			g.metrics.calleeStats.Delete(o.name)
		}
	}
	for _, o := range told {
		o.retire()
	}
	return byName, told
}

// signalWebhooks is retireCallees for the webhooks: it starts halting
// those ws removes or changes. It returns old by name, and those removed
// (whose series it drops).
func (g *Server) signalWebhooks(old []*webhookRunner, ws []Webhook, named []bool, wc *RunnerChanges) (map[string]*webhookRunner, []*webhookRunner) {
	byName := make(map[string]*webhookRunner, len(old))
	for _, w := range old {
		byName[w.name] = w
	}
	kept := make(map[string]bool, len(ws))
	for i, w := range ws {
		o := byName[w.Name]
		switch {
		case o == nil:
		case reflect.DeepEqual(o.cfg, w):
			kept[w.Name] = true
			o.named = named[i]
		default:
			kept[w.Name] = true
			o.signal()
			wc.changed.add(w.Name)
		}
	}
	var removed []*webhookRunner
	for _, o := range old {
		if !kept[o.name] {
			o.signal()
			wc.removed.add(o.name)
			g.metrics.webhooks.Delete(o.name)
			removed = append(removed, o)
		}
	}
	return byName, removed
}

// nextCallees returns the runners of cs: old's when unchanged, else new
// ones (appended to start), a changed one's keeping its shard and series.
func (g *Server) nextCallees(old map[string]*calleeRunner, cs []Callee, cc *RunnerChanges, start *[]func()) []*calleeRunner {
	out := make([]*calleeRunner, 0, len(cs))
	for i, c := range cs {
		o := old[c.Name]
		switch {
		case o != nil && reflect.DeepEqual(o.cfg, c):
			out = append(out, o)
			continue
		case o != nil:
			out = append(out, g.newCalleeRunner(c, o.shard, o.m))
		default:
			m := &calleeMetrics{}
			g.metrics.calleeStats.Store(c.Name, m)
			out = append(out, g.newCalleeRunner(c, g.shardOf(i), m))
			cc.added.add(c.Name)
		}
		*start = append(*start, out[len(out)-1].start)
	}
	return out
}

// nextWebhooks is nextCallees for the webhooks; a changed one takes over
// the events its predecessor held, when it keeps its URL or both were
// named by the configuration, and drops them (counted in wc) otherwise.
func (g *Server) nextWebhooks(old map[string]*webhookRunner, ws []Webhook, named []bool, first int, deadline time.Time, wc *RunnerChanges, start *[]func()) []*webhookRunner {
	out := make([]*webhookRunner, 0, len(ws))
	for i, w := range ws {
		o := old[w.Name]
		switch {
		case o != nil && reflect.DeepEqual(o.cfg, w):
			out = append(out, o)
			continue
		case o != nil:
			held := o.retire(time.Until(deadline))
			n := g.newWebhookRunner(w, named[i], o.shard, o.m)
			if o.cfg.URL == w.URL || (o.named && named[i]) {
				for _, f := range held {
					n.push(f)
				}
			} else if len(held) > 0 {
				wc.dropped += len(held)
				g.log.Warn("gateway: a changed webhook's URL changed and the configuration does not name it: its queued events are dropped, not sent to the new URL",
					"webhook", w.Name, "dropped", len(held))
			}
			out = append(out, n)
		default:
			n := g.newWebhookRunner(w, named[i], g.shardOf(first+i), nil)
			g.metrics.webhooks.Store(w.Name, n.m)
			out = append(out, n)
			wc.added.add(w.Name)
		}
		*start = append(*start, out[len(out)-1].start)
	}
	return out
}

// startRunners starts the runners (Start). Called with mu held.
func (g *Server) startRunners() {
	g.runMu.Lock()
	defer g.runMu.Unlock()
	g.runStarted = true
	rs := g.runners.Load()
	for _, c := range rs.callees {
		c.start()
	}
	for _, w := range rs.webhooks {
		w.start()
	}
}

// stopRunners stops the runners for good (Shutdown).
func (g *Server) stopRunners() {
	g.runMu.Lock()
	defer g.runMu.Unlock()
	g.runStopped = true
	rs := g.runners.Load()
	for _, w := range rs.webhooks {
		w.stop()
	}
	for _, c := range rs.callees {
		c.stop()
	}
}
