package main

import (
	"context"

	"github.com/edgewamp/edgewamp/gateway"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/route"
)

// routerStats implements gateway.StatsSource over the counters the router
// and the event loops keep. It runs at scrape time only: Router.Traffic
// reads each shard's counters on the shard's own goroutine, the rest are
// atomics; nothing is recomputed and the call path is not touched.
//
// Waiting for the hardening branches (issue 10): authentications by
// method and result (edgewamp_auth_total), connections closed by reason
// (slow consumers among them) and refused by reason beyond the
// descriptor budget. They slot into gateway.Stats' maps as they land.
type routerStats struct {
	r   *route.Router
	eng *loop.Engine
}

func (s routerStats) Stats(ctx context.Context) (*gateway.Stats, error) {
	tr, err := s.r.Traffic(ctx)
	if err != nil {
		return nil, err
	}
	st := &gateway.Stats{
		MessagesIn:    make(map[string]uint64, len(tr.In)),
		MessagesOut:   make(map[string]uint64, len(tr.Out)),
		BytesIn:       gateway.Counter{V: tr.BytesIn, OK: true},
		BytesOut:      gateway.Counter{V: tr.BytesOut, OK: true},
		CallsInFlight: gateway.Gauge{V: float64(tr.CallsInFlight), OK: true},
	}
	for c, n := range tr.In {
		st.MessagesIn[c.String()] += n
	}
	for c, n := range tr.Out {
		st.MessagesOut[c.String()] += n
	}
	h := &gateway.Histogram{Counts: tr.CallLatency[:], Sum: tr.CallLatencySum.Seconds()}
	for _, b := range route.CallLatencyBounds {
		h.Bounds = append(h.Bounds, b.Seconds())
	}
	st.CallDuration = h
	for _, rs := range s.r.SessionsByRealm() {
		for tp, n := range rs.ByTransport {
			st.Sessions = append(st.Sessions, gateway.SessionCount{Realm: rs.Realm, Transport: tp, N: n})
		}
	}
	var slow, tooBig, refused, violations, retain uint64
	for i := 0; i < s.r.Shards(); i++ {
		ss := s.r.Shard(i).Stats()
		slow += ss.EventsDropped.Load()
		tooBig += ss.EventsTooBig.Load()
		refused += ss.CallsRefused.Load()
		violations += ss.ProtocolErrors.Load()
		retain += ss.RetainRefused.Load()
	}
	st.EventsDropped = map[string]uint64{"slow_subscriber": slow, "too_big": tooBig}
	st.InvocationsRefused = map[string]uint64{"callee_busy": refused}
	st.ProtocolViolations = gateway.Counter{V: violations, OK: true}
	st.RetainRefused = gateway.Counter{V: retain, OK: true}
	if s.eng != nil {
		_, _, fdRefused := s.eng.FDs()
		held, _, inRefused := s.eng.Inbound()
		out, _ := s.eng.Outbound()
		st.ConnectionsRefused = map[string]uint64{"fd_budget": fdRefused}
		st.ConnectionsClosed = map[string]uint64{"inbound_budget": inRefused}
		st.InboundHeld = gateway.Gauge{V: float64(held), OK: true}
		st.OutboundQueued = gateway.Gauge{V: float64(out), OK: true}
	}
	return st, nil
}
