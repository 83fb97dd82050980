package main

import (
	"context"

	"github.com/edgewamp/edgewamp/gateway"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/route"
)

// routerStats implements gateway.StatsSource over the counters the router
// and the event loops keep. It runs at scrape time only: Router.Traffic
// reads each shard's traffic counters on the shard's own goroutine;
// Router.Stats and Engine.Stats are atomics. Nothing is recomputed and the
// call path is not touched.
type routerStats struct {
	r    *route.Router
	eng  *loop.Engine
	mesh func() *gateway.MeshStats // nil, or returning nil, without a mesh
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
	rt := s.r.Stats()
	st.EventsDropped = map[string]uint64{"slow_subscriber": rt.EventsDroppedSlowConsumer, "too_big": rt.EventsDroppedTooBig, "not_convertible": rt.EventsDroppedNotConvertible, "shard_backlog": rt.EventsDroppedShardBacklog}
	st.InvocationsRefused = map[string]uint64{"callee_busy": rt.CallsRefused, "shard_backlog": rt.CallsRefusedShardBacklog, "callee_share": rt.CallsRefusedShare, "not_convertible": rt.CallsRefusedNotConvertible, "too_big": rt.CallsRefusedTooBig, "calls_in_flight_total": rt.CallsRefusedTotal}
	st.CallReroutes = map[string]uint64{"rerouted": rt.CallsRerouted, "exhausted": rt.CallsRerouteExhausted}
	st.ProtocolViolations = gateway.Counter{V: rt.ProtocolErrors, OK: true}
	st.RetainRefused = map[string]uint64{"realm_full": rt.RetainRefused, "publisher_share": rt.RetainRefusedPublisher}
	st.RetainedRevoked = gateway.Counter{V: rt.RetainedRevoked, OK: true}
	st.TestamentsRefused = gateway.Counter{V: rt.TestamentsRefused, OK: true}
	st.TestamentBytes = gateway.Gauge{V: float64(rt.TestamentBytes), OK: true}
	st.SubscriptionsRefused = gateway.Counter{V: rt.SubscriptionsRefused, OK: true}
	st.SubscriptionBytes = gateway.Gauge{V: float64(rt.SubscriptionBytes), OK: true}
	st.AuthzCacheBytes = gateway.Gauge{V: float64(rt.AuthzCacheBytes), OK: true}
	st.RegistrationsRefused = gateway.Counter{V: rt.RegistrationsRefused, OK: true}
	st.RegistrationBytes = gateway.Gauge{V: float64(rt.RegistrationBytes), OK: true}
	st.EventsSuperseded = gateway.Counter{V: rt.EventsSuperseded, OK: true}
	st.AuthSuccesses = make(map[string]uint64, route.NumAuthMethods)
	st.AuthFailures = make(map[string]uint64, route.NumAuthMethods)
	for i := range route.NumAuthMethods {
		st.AuthSuccesses[route.AuthMethodName(i)] = rt.AuthSuccesses[i]
		st.AuthFailures[route.AuthMethodName(i)] = rt.AuthFailures[i]
	}
	st.AuthDenied = gateway.Counter{V: rt.AuthDenied, OK: true}
	st.AuthBusy = gateway.Counter{V: rt.AuthBusy, OK: true}
	st.AuthPanics = map[string]uint64{"authenticator": rt.AuthenticatorPanics, "authorizer": rt.AuthorizerPanics}
	if s.eng != nil {
		es := s.eng.Stats()
		st.Connections = gateway.Gauge{V: float64(es.Conns), OK: true}
		st.ConnectionsRefused = map[string]uint64{"fd_budget": es.FDRefused, "accept_failed": es.AcceptErrors}
		st.ConnectionsClosed = make(map[string]uint64, loop.NumCloseReasons)
		for i := loop.CloseReason(1); i < loop.NumCloseReasons; i++ {
			st.ConnectionsClosed[i.String()] = es.Closes[i]
		}
		if es.Lane {
			// The gateway's port on the event loops: its HTTP connections
			// apart from the WAMP listeners' (before, edgewamp_connections
			// counted them).
			st.LaneConnections = gateway.Gauge{V: float64(es.LaneConns), OK: true}
			st.LaneConnectionsClosed = make(map[string]uint64, loop.NumCloseReasons)
			for i := loop.CloseReason(1); i < loop.NumCloseReasons; i++ {
				st.LaneConnectionsClosed[i.String()] = es.LaneCloses[i]
			}
		}
		st.InboundHeld = gateway.Gauge{V: float64(es.Inbound), OK: true}
		st.OutboundQueued = gateway.Gauge{V: float64(es.Outbound), OK: true}
		st.OutboundRefused = gateway.Counter{V: es.OutboundRefused, OK: true}
		st.InboundBudget = gateway.Gauge{V: float64(es.InboundBudget), OK: true}
		st.OutboundBudget = gateway.Gauge{V: float64(es.OutboundBudget), OK: true}
		st.TLSConnections = gateway.Gauge{V: float64(es.TLSConns), OK: true}
		st.TLSHandshakes = gateway.Gauge{V: float64(es.TLSHandshakes), OK: true}
		st.TLSHandshakesQueued = gateway.Gauge{V: float64(es.TLSHandshakesQueued), OK: true}
		st.FileDescriptors = gateway.Gauge{V: float64(es.FDs), OK: true}
		st.FileDescriptorBudget = gateway.Gauge{V: float64(es.FDBudget), OK: true}
		st.PongsCoalesced = gateway.Counter{V: es.PongsCoalesced, OK: true}
		st.Lingering = gateway.Gauge{V: float64(es.Lingering), OK: true}
		st.LingerResets = gateway.Counter{V: es.LingerResets, OK: true}
		st.ProxyUnforwarded = gateway.Counter{V: es.ProxyUnforwarded, OK: true}
		st.MemoryReleases = gateway.Counter{V: es.MemReleases, OK: true}
		st.SendPath = es.SendPath
		if es.SendPath == loop.SendPathIOUring {
			st.RingEnters = gateway.Counter{V: es.RingEnters, OK: true}
			st.RingSends = gateway.Counter{V: es.RingSends, OK: true}
			st.RingPartial = gateway.Counter{V: es.RingPartial, OK: true}
			st.RingFailures = gateway.Counter{V: es.RingFailures, OK: true}
		}
	}
	if s.mesh != nil {
		st.Mesh = s.mesh()
	}
	return st, nil
}
