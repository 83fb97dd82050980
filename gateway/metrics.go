package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// GET /metrics: the Prometheus text format (or OpenMetrics when asked).
//
// Router and transport figures come from Options.Stats at scrape time:
// counters the router and the event loops already keep, read (cmd reads
// them on each shard's goroutine), not recomputed, so nothing on the call
// path takes a lock or allocates for metrics. The gateway's own figures
// (HTTP requests by route and status, durations, refusals, streams,
// webhooks, HTTP callees) are atomic counters and lock-free histograms.
//
// Label values are bounded: realms, message types, reasons, methods and
// configured route, callee and webhook names; never URIs, session ids or
// client addresses.

// Stats is a snapshot of the router's and the transports' counters. A nil
// map or slice, or a Counter or Gauge without OK, means the figure is not
// available: its metric is left out rather than exported as a false zero.
type Stats struct {
	// Sessions by realm and transport → edgewamp_sessions.
	Sessions []SessionCount
	// MessagesIn, MessagesOut by WAMP message type ("CALL") →
	// edgewamp_messages_received_total, edgewamp_messages_sent_total.
	MessagesIn, MessagesOut map[string]uint64
	// BytesIn, BytesOut of WAMP messages →
	// edgewamp_message_bytes_received_total, _sent_total.
	BytesIn, BytesOut Counter
	// CallsInFlight → edgewamp_calls_in_flight.
	CallsInFlight Gauge
	// CallDuration: the router's call latency, CALL to the callee's final
	// answer, sampled → edgewamp_call_duration_seconds.
	CallDuration *Histogram
	// EventsDropped by reason (slow_subscriber, too_big, ...) →
	// edgewamp_events_dropped_total.
	EventsDropped map[string]uint64
	// InvocationsRefused by reason (callee_busy, ...) →
	// edgewamp_invocations_refused_total.
	InvocationsRefused map[string]uint64
	// CallReroutes by result: rerouted (a callee answered
	// wamp.error.unavailable, or was refused for its role, and the call
	// went on to another) and
	// exhausted (no untried callee was left: the caller got
	// wamp.error.no_available_callee) → edgewamp_call_reroutes_total.
	CallReroutes map[string]uint64
	// ConnectionsClosed by reason (slow_consumer, inbound_budget, ...) →
	// edgewamp_connections_closed_total. Slow consumers closed are
	// reason="slow_consumer".
	ConnectionsClosed map[string]uint64
	// ConnectionsRefused by reason (fd_budget, max_connections, ...) →
	// edgewamp_connections_refused_total.
	ConnectionsRefused map[string]uint64
	// AuthSuccesses, AuthFailures by authmethod → edgewamp_auth_total
	// {method, result}.
	AuthSuccesses, AuthFailures map[string]uint64
	// AuthDenied: authentications the brute-force limiter refused without
	// checking them → edgewamp_auth_denied_total.
	AuthDenied Counter
	// AuthBusy: WAMP logins refused unchecked, or whose queued check gave
	// way to another address's, for a full authentication queue →
	// edgewamp_auth_busy_total.
	AuthBusy Counter
	// AuthPanics: panics recovered in the embedder's authentication code,
	// by where (authenticator: an Authenticator's Method, Challenge or
	// Authenticate, the login refused, or a Credential's Check, its session
	// ended; authorizer: an Authorizer's, the
	// request refused) → edgewamp_auth_panics_total{in}.
	AuthPanics map[string]uint64
	// Connections open on the WAMP listeners → edgewamp_connections (the
	// gateway's own are not among them).
	Connections Gauge
	// LaneConnections: HTTP connections open on the gateway's port while
	// the event loops serve it (gateway.event_loop), those handed to
	// net/http not included → edgewamp_gateway_lane_connections;
	// LaneConnectionsClosed by reason (http_handoff: handed to net/http)
	// → edgewamp_gateway_lane_connections_closed_total. Not OK (nil)
	// without the lane.
	LaneConnections       Gauge
	LaneConnectionsClosed map[string]uint64
	// ProtocolViolations → edgewamp_protocol_violations_total.
	ProtocolViolations Counter
	// InboundHeld, OutboundQueued: bytes the transports hold →
	// edgewamp_inbound_held_bytes, edgewamp_outbound_queued_bytes.
	InboundHeld, OutboundQueued Gauge
	// RetainRefused by reason: realm_full (the realm's retained topics or
	// bytes), publisher_share (the publisher's share of them) →
	// edgewamp_retain_refused_total.
	RetainRefused map[string]uint64
	// RetainedRevoked → edgewamp_retained_revoked_total.
	RetainedRevoked Counter
	// TestamentsRefused → edgewamp_testaments_refused_total; TestamentBytes
	// → edgewamp_testament_bytes.
	TestamentsRefused Counter
	TestamentBytes    Gauge
	// SubscriptionsRefused → edgewamp_subscriptions_refused_total;
	// SubscriptionBytes → edgewamp_subscription_bytes.
	SubscriptionsRefused Counter
	SubscriptionBytes    Gauge
	// AuthzCacheBytes → edgewamp_authz_cache_bytes.
	AuthzCacheBytes Gauge
	// RegistrationsRefused → edgewamp_registrations_refused_total;
	// RegistrationBytes → edgewamp_registration_bytes.
	RegistrationsRefused Counter
	RegistrationBytes    Gauge
	// EventsSuperseded → edgewamp_events_superseded_total.
	EventsSuperseded Counter
	// TLSConnections: TLS connections open (handshakes included);
	// TLSHandshakes running and TLSHandshakesQueued waiting for the
	// handshake pool → edgewamp_tls_connections, edgewamp_tls_handshakes
	// {state="running"|"queued"}.
	TLSConnections, TLSHandshakes, TLSHandshakesQueued Gauge
	// FileDescriptors the connections hold and FileDescriptorBudget the
	// most they may (the open-file limit less a reserve) →
	// edgewamp_connection_fds, edgewamp_connection_fds_budget.
	FileDescriptors, FileDescriptorBudget Gauge
	// OutboundRefused: EVENTs and INVOCATIONs of 64 KiB or more refused
	// because the output queued router-wide would have passed its budget →
	// edgewamp_outbound_refused_total.
	OutboundRefused Counter
	// InboundBudget, OutboundBudget: the bounds of InboundHeld and
	// OutboundQueued (max_inbound_total, max_outbound_total) →
	// edgewamp_inbound_budget_bytes, edgewamp_outbound_budget_bytes.
	InboundBudget, OutboundBudget Gauge
	// PongsCoalesced: pings answered only by a later ping's pong (the peer
	// did not take its output) → edgewamp_pongs_coalesced_total.
	PongsCoalesced Counter
	// Lingering: connections whose session ended, their last output still
	// being written → edgewamp_connections_lingering; LingerResets: those
	// reset because their peer stopped taking it →
	// edgewamp_linger_resets_total.
	Lingering    Gauge
	LingerResets Counter
	// ProxyUnforwarded: WebSocket upgrades from a listener's trusted proxy
	// that named no client address (the proxy's stood for it) →
	// edgewamp_proxy_unforwarded_total.
	ProxyUnforwarded Counter
	// SendPath: how the event loops write ("io_uring" or "write") →
	// edgewamp_send_path{path} 1; empty: not exported.
	SendPath string
	// RingEnters, RingSends: io_uring_enter calls of the send rings and
	// the sends they submitted; RingPartial: sends a socket did not take
	// whole → edgewamp_io_uring_enters_total, _sends_total,
	// _partial_sends_total; RingFailures: loops whose ring failed while
	// they ran (they write with write(2) since) →
	// edgewamp_io_uring_failures_total.
	RingEnters, RingSends, RingPartial, RingFailures Counter
	// MemoryReleases: free heap returned to the system after a burst of
	// connections → edgewamp_memory_releases_total.
	MemoryReleases Counter
	// Mesh: the mesh node's figures → edgewamp_mesh_*; nil when the router
	// runs alone (no mesh metric is exported then).
	Mesh *MeshStats
}

// MeshStats are a mesh node's figures: its NATS connection, the other
// nodes it sees, and every place a message between nodes can be lost (the
// mesh carries them at most once) or refused.
type MeshStats struct {
	// Connected: the node's NATS connection is up →
	// edgewamp_mesh_connected (1 or 0).
	Connected bool
	// Peers: the other nodes seen alive now → edgewamp_mesh_peers.
	Peers int
	// PeersIncompatible: nodes heard speaking another mesh version
	// (another edgewamp release), which this node does not use as peers →
	// edgewamp_mesh_peers_incompatible.
	PeersIncompatible int
	// PeersUnheard: how many nodes the peers name that this node does not
	// hear from (routes between some nodes missing, or still forming) →
	// edgewamp_mesh_peers_unheard.
	PeersUnheard int
	// PeersSameName: other nodes heard using this node's name (mesh.node
	// must be unique) → edgewamp_mesh_peers_same_name.
	PeersSameName int
	// PeersJoined, PeersLost: nodes seen joining, nodes taken for dead (no
	// heartbeat within the peer timeout; a clean shutdown's leave
	// included) → edgewamp_mesh_peers_joined_total,
	// edgewamp_mesh_peers_lost_total.
	PeersJoined, PeersLost uint64
	// Dropped by reason → edgewamp_mesh_messages_dropped_total: envelopes
	// not queued because the node's outbound budget was full (an event
	// lost, a call failed with wamp.error.unavailable: outbound_full),
	// messages NATS dropped before the node read them (slow_consumer),
	// messages nats.go refused (publish_error), messages from other
	// nodes that did not decode (bad_frame, bad_envelope), messages whose
	// subject NATS would refuse as too long (too_long), and events from
	// other nodes dropped for a loop that did not keep up (shard_backlog),
	// messages from nodes of another mesh version (version_mismatch),
	// events from other nodes dropped because what waited for the node's
	// dispatchers held three quarters of mesh.max_inbound (inbound_full),
	// and other messages from other nodes (calls, results, meta queries,
	// gather answers; directory and heartbeats only past their reserves)
	// dropped for the same budget (control_full), and meta queries of
	// other nodes not run because they came after their askers had stopped
	// waiting (query_late), answers to this node's gathers past the
	// bytes its gathers may hold (gather_full), this node's answers to
	// other nodes' gathers not sent a part at a time for its bound on
	// them (paced_answer_full) or dropped unfinished
	// (paced_answer_dropped), this node's retained
	// events left out of its answers to other nodes' get_retained gathers
	// (4 MiB an answer: retained_answer_full), this node's answers to
	// other nodes' meta calls not sent for being larger than the mesh
	// carries in one message (meta_answer_too_large), messages from another
	// node that uses this node's name (same_name), messages from a
	// node not known while 1,024 are (too_many_peers), and interrupts to
	// other nodes' callees not kept to send again (interrupt_full) or
	// once more past the peer timeout (interrupt_repeat_full) for their
	// bound.
	Dropped map[string]uint64
	// Duplicates: event copies dropped because overlapping subscriptions
	// brought an event twice → edgewamp_mesh_event_duplicates_total.
	Duplicates uint64
	// EventsUnheard: events of this node's publishers not sent because no
	// other node had a subscription matching them (checked while the
	// outbound queue is busy; none was lost) →
	// edgewamp_mesh_events_unheard_total.
	EventsUnheard uint64
	// InvocationsRefused: calls from other nodes refused because too many
	// were in flight here → edgewamp_mesh_invocations_refused_total.
	InvocationsRefused uint64
	// CallsRefused: calls of this node's sessions refused because the
	// session had too many in flight to other nodes →
	// edgewamp_mesh_calls_refused_total.
	CallsRefused uint64
	// CallsBounced: calls another node sent back undelivered and this node
	// sent on → edgewamp_mesh_calls_bounced_total.
	CallsBounced uint64
	// InvocationsExpired: calls from other nodes ended here a second past
	// their caller's timeout, their caller's node's interrupt lost on its
	// way → edgewamp_mesh_invocations_expired_total.
	InvocationsExpired uint64
	// CalleesRevoked: callees revoked to settle a registration conflict
	// between nodes → edgewamp_mesh_callees_revoked_total.
	CalleesRevoked uint64
	// GathersIncomplete: meta queries over the realm and get_retained
	// calls that mesh.gather_timeout ended before every node had answered,
	// whose callers got a partial answer →
	// edgewamp_mesh_gathers_incomplete_total.
	GathersIncomplete uint64
	// PresenceAnnounced: wamp.session.on_leave this node announced to its
	// subscribers for sessions of nodes that left the mesh without closing
	// them → edgewamp_mesh_presence_announced_total.
	PresenceAnnounced uint64
	// PresenceUntracked: other nodes' sessions whose on_leave this node
	// would not announce if their node left (past the bound per realm, or
	// left out of a node's answer), and trackings that could not start
	// complete → edgewamp_mesh_presence_untracked_total.
	PresenceUntracked uint64
	// Disconnects: losses of the NATS connection →
	// edgewamp_mesh_nats_disconnects_total.
	Disconnects uint64
	// ClaimStoreReady: the node has reached the mesh's claim store
	// (JetStream), which settles exclusive registrations →
	// edgewamp_mesh_claim_store_ready (1 or 0).
	ClaimStoreReady bool
	// Claims: exclusive (single) registrations the claim store refused
	// (another node holds the procedure: refused) or could not settle
	// (accepted provisionally: provisional) → edgewamp_mesh_claims_total.
	Claims map[string]uint64
	// WideRealms: realms whose subscribed subjects passed mesh.max_interest,
	// for which the node takes every event of the realm from the other
	// nodes and drops what no local session wants →
	// edgewamp_mesh_wide_realms.
	WideRealms int64
}

// Histogram is a latency histogram: Counts[i] observations at most
// Bounds[i] (seconds) and above the bound before; Counts may have one more
// entry, the observations above every bound.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Sum    float64 // seconds
}

// SessionCount is one realm's sessions on one transport type.
type SessionCount struct {
	Realm, Transport string
	N                int
}

// Counter is an optional counter value.
type Counter struct {
	V  uint64
	OK bool
}

// Gauge is an optional gauge value.
type Gauge struct {
	V  float64
	OK bool
}

// StatsSource reads the router's and the transports' counters. cmd
// implements it over loop and route. Stats is called once per scrape, on
// the scrape's goroutine; it may block until ctx is done.
type StatsSource interface {
	Stats(ctx context.Context) (*Stats, error)
}

// Refusal reasons of the gateway.
const (
	refusedInFlight        = "in_flight"
	refusedIdentity        = "identity_in_flight"
	refusedAddress         = "address_in_flight"
	refusedSessions        = "sessions"
	refusedStreams         = "streams"
	refusedConnections     = "connections" // a request other than a health probe on a spare connection (limitListener), or past max_connections requests at once (HTTP/2: serveBound)
	refusedStreamsClient   = "client_streams"
	refusedStreamsIdentity = "identity_streams"
	refusedCallee          = "callee_busy"
	refusedCalleeBytes     = "callee_bytes"  // Callee.MaxInFlightBytes
	refusedSignedKey       = "signed_key"    // a signing key at its share of the replay cache
	refusedSigned          = "signed_nonces" // the replay cache full
)

type metrics struct {
	g       *Server
	scrapes atomic.Int32 // scrapes running (maxScrapes)

	mu     sync.Mutex
	routes map[string]*routeMetrics // by label: the gateway's own endpoints' and mounts' (fixed), and the installed routes'; guarded by mu
	order  []string                 // the labels of routes, in the order they came; guarded by mu
	fixed  map[string]bool          // the labels never retired (route's callers); guarded by mu

	refusedMu sync.Mutex
	refusals  map[string]*atomic.Uint64

	authMu sync.Mutex
	auth   map[[2]string]*atomic.Uint64 // {method, result}

	sseCut       atomic.Uint64
	sseWithdrawn atomic.Uint64 // SSE streams ended because their credential no longer authorized them (grant.go)
	webhooks     sync.Map      // name → *webhookMetrics
	calleeStats  sync.Map      // name → *calleeMetrics
}

// routeMetrics are one route label's request counters and durations.
type routeMetrics struct {
	name  string
	codes [600]atomic.Uint64 // by status code (499 for clients gone)
	hist  latencyHist
}

func (rm *routeMetrics) observe(code int, d time.Duration) {
	if code < 0 || code >= len(rm.codes) {
		code = 500
	}
	rm.codes[code].Add(1)
	rm.hist.observe(d)
}

func newMetrics(g *Server) *metrics {
	return &metrics{g: g, routes: map[string]*routeMetrics{}, fixed: map[string]bool{},
		refusals: map[string]*atomic.Uint64{}, auth: map[[2]string]*atomic.Uint64{}}
}

// route returns the metrics of a label of the gateway's own endpoints
// and mounts, creating them at setup: they are exported for as long as
// the process runs.
func (m *metrics) route(name string) *routeMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fixed[name] = true
	if rm := m.routes[name]; rm != nil {
		return rm
	}
	rm := &routeMetrics{name: name}
	m.routes[name] = rm
	m.order = append(m.order, name)
	return rm
}

// Configured routes' metrics come and go with the routes (reload.go): a
// route's series are exported while a route of its label is installed,
// carried over by the reloads that keep the label (its counters go on),
// and dropped by the reload that removes it, so that reloads that rename
// routes, however many, leave no series behind (the exported labels are
// the gateway's own and the configuration's of now). A label that comes
// back later starts from zero: a counter reset, which rate() and
// increase() take in their stride. Requests still running on a removed
// route count into its dropped metrics, which nothing exports.

// configured returns the metrics of a configured route's label: those
// exported now under it, or new ones that nothing exports until install.
// A configuration checked and then refused (its reload refused after
// Prepare) so leaves no series behind.
func (m *metrics) configured(name string) *routeMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rm := m.routes[name]; rm != nil {
		return rm
	}
	return &routeMetrics{name: name}
}

// install exports the metrics of the routes of a configuration being
// installed, and drops those of the labels in gone (routes it removed)
// unless they are the gateway's own.
func (m *metrics) install(rms []*routeMetrics, gone []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dropped := false
	for _, name := range gone {
		if !m.fixed[name] && m.routes[name] != nil {
			delete(m.routes, name)
			dropped = true
		}
	}
	if dropped {
		kept := m.order[:0]
		for _, name := range m.order {
			if m.routes[name] != nil {
				kept = append(kept, name)
			}
		}
		clear(m.order[len(kept):])
		m.order = kept
	}
	for _, rm := range rms {
		switch cur := m.routes[rm.name]; {
		case cur == nil:
			m.routes[rm.name] = rm
			m.order = append(m.order, rm.name)
		case cur != rm && !m.fixed[rm.name]:
			// Another configuration's, prepared concurrently: the one
			// installed last is the one requests count into.
			m.routes[rm.name] = rm
		}
	}
}

func (g *Server) refused(reason string) {
	g.metrics.count(&g.metrics.refusedMu, g.metrics.refusals, reason)
}

func (m *metrics) count(mu *sync.Mutex, tab map[string]*atomic.Uint64, key string) {
	mu.Lock()
	c := tab[key]
	if c == nil {
		c = new(atomic.Uint64)
		tab[key] = c
	}
	mu.Unlock()
	c.Add(1)
}

func (m *metrics) authResult(c credential, ok bool) {
	method := [...]string{"anonymous", "bearer", "apikey", "signed"}[c]
	result := "failure"
	if ok {
		result = "success"
	}
	k := [2]string{method, result}
	m.authMu.Lock()
	n := m.auth[k]
	if n == nil {
		n = new(atomic.Uint64)
		m.auth[k] = n
	}
	m.authMu.Unlock()
	n.Add(1)
}

// maxScrapes bounds the scrapes served at once; past it a scrape gets 503.
const maxScrapes = 4

func (m *metrics) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, "GET, HEAD")
			return
		}
		if m.scrapes.Add(1) > maxScrapes {
			m.scrapes.Add(-1)
			http.Error(w, "too many scrapes at once", http.StatusServiceUnavailable)
			return
		}
		// The place bounds the collection and its encoding, not the
		// answer's write: before, a scrape held it until its client had
		// read the answer, and four clients that read none (or a piece
		// per write_timeout) kept every other scrape, Prometheus's, 503.
		// The answer is written as a large call result is (writeHeld),
		// its bytes in the SSE total while they are.
		held := true
		release := func() {
			if held {
				held = false
				m.scrapes.Add(-1)
			}
		}
		defer release()
		e := newExpo()
		m.collect(r.Context(), e)
		om := wantsOpenMetrics(r.Header.Get("Accept"))
		var body bytes.Buffer
		e.write(&body, om)
		h := w.Header()
		ct := "text/plain; version=0.0.4; charset=utf-8"
		if om {
			ct = "application/openmetrics-text; version=1.0.0; charset=utf-8"
		}
		h.Set("Content-Type", ct)
		h.Set("Cache-Control", "no-store")
		h.Add("Vary", "Accept, Accept-Encoding")
		if r.Method == http.MethodHead {
			return
		}
		out := body.Bytes()
		if acceptsGzip(r.Header.Get("Accept-Encoding")) && body.Len() > 1024 {
			h.Set("Content-Encoding", "gzip")
			var z bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
			zw.Write(out)
			zw.Close()
			out = z.Bytes()
		}
		release()
		m.g.writeHeld(w, http.StatusOK, []string{ct}, out)
	})
}

// wantsOpenMetrics reports whether an Accept header prefers OpenMetrics
// to the text format (Prometheus offers both, OpenMetrics with the higher
// q).
func wantsOpenMetrics(accept string) bool {
	qOM, qText := -1.0, -1.0
	for accept != "" {
		part, rest, _ := cutUnquoted(accept, ',') // a quoted parameter's commas separate nothing
		accept = rest
		mt, params, _ := cutUnquoted(part, ';')
		mt = strings.ToLower(strings.TrimSpace(mt))
		q := 1.0
		for params != "" {
			var p string
			p, params, _ = cutUnquoted(params, ';')
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "q") {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					q = f
				}
			}
		}
		switch mt {
		case "application/openmetrics-text":
			qOM = max(qOM, q)
		case "text/plain", "text/*", "*/*":
			qText = max(qText, q)
		}
	}
	return qOM > 0 && qOM >= qText
}

// acceptsGzip reports whether an Accept-Encoding header takes gzip.
func acceptsGzip(ae string) bool {
	for _, part := range strings.Split(ae, ",") {
		enc, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			continue
		}
		if k, v, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.EqualFold(k, "q") {
			if f, err := strconv.ParseFloat(v, 64); err == nil && f == 0 {
				return false
			}
		}
		return true
	}
	return false
}

// collect gathers one scrape: the gateway's figures, the router's and the
// transports' from Options.Stats, the Go runtime's and the process's.
func (m *metrics) collect(ctx context.Context, e *expo) {
	m.collectGateway(e)
	if m.g.opts.Stats != nil {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := m.g.opts.Stats.Stats(ctx)
		cancel()
		if err != nil || st == nil {
			m.g.log.Warn("gateway: metrics: reading the router's counters failed", "err", err)
		} else {
			collectStats(e, st)
		}
	}
	collectGo(e)
	collectProcess(e)
}

func constMetric(e *expo, name, help string, t metricType, v float64, labels ...string) {
	e.add(name, help, t, v, labels...)
}

// byLabel exports a map as one metric per key, sorted.
func byLabel(e *expo, name, help, label string, t metricType, mp map[string]uint64) {
	if mp == nil {
		return
	}
	keys := make([]string, 0, len(mp))
	for k := range mp {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		constMetric(e, name, help, t, float64(mp[k]), label, k)
	}
}

func collectStats(e *expo, st *Stats) {
	const C, G = counterType, gaugeType
	if st.Sessions != nil {
		for _, s := range st.Sessions {
			constMetric(e, "edgewamp_sessions", "WAMP sessions established, by realm and transport.", G, float64(s.N), "realm", s.Realm, "transport", s.Transport)
		}
	}
	byLabel(e, "edgewamp_messages_received_total", "WAMP messages received from sessions, by type.", "type", C, st.MessagesIn)
	byLabel(e, "edgewamp_messages_sent_total", "WAMP messages sent to sessions, by type.", "type", C, st.MessagesOut)
	if st.BytesIn.OK {
		constMetric(e, "edgewamp_message_bytes_received_total", "Bytes of WAMP messages received (transport framing excluded).", C, float64(st.BytesIn.V))
	}
	if st.BytesOut.OK {
		constMetric(e, "edgewamp_message_bytes_sent_total", "Bytes of WAMP messages sent (transport framing excluded).", C, float64(st.BytesOut.V))
	}
	if st.CallsInFlight.OK {
		constMetric(e, "edgewamp_calls_in_flight", "Calls routed and not yet answered.", G, st.CallsInFlight.V)
	}
	if h := st.CallDuration; h != nil {
		e.histogram("edgewamp_call_duration_seconds",
			"Router call latency, CALL to the callee's final RESULT or ERROR, for a sample of the calls (one in 64), all realms.",
			h.Bounds, h.Counts, h.Sum)
	}
	byLabel(e, "edgewamp_events_dropped_total", "EVENTs not delivered, by reason.", "reason", C, st.EventsDropped)
	byLabel(e, "edgewamp_invocations_refused_total", "INVOCATIONs refused (the call failed with a WAMP error), by reason.", "reason", C, st.InvocationsRefused)
	byLabel(e, "edgewamp_call_reroutes_total", "Callee answers wamp.error.unavailable and callees refused for their role, by result: rerouted to another callee, or exhausted (the caller got wamp.error.no_available_callee).", "result", C, st.CallReroutes)
	byLabel(e, "edgewamp_connections_closed_total", "Connections the router closed, by reason (slow_consumer: slow consumers closed).", "reason", C, st.ConnectionsClosed)
	byLabel(e, "edgewamp_connections_refused_total", "Connections refused, by reason.", "reason", C, st.ConnectionsRefused)
	byLabel(e, "edgewamp_gateway_lane_connections_closed_total", "HTTP connections the event loops serving the gateway's port closed, by reason (http_handoff: handed to net/http).", "reason", C, st.LaneConnectionsClosed)
	for _, r := range []struct {
		result string
		mp     map[string]uint64
	}{{"success", st.AuthSuccesses}, {"failure", st.AuthFailures}} {
		if r.mp == nil {
			continue
		}
		keys := make([]string, 0, len(r.mp))
		for k := range r.mp {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			constMetric(e, "edgewamp_auth_total", "WAMP authentications, by authmethod and result.", C, float64(r.mp[k]), "method", k, "result", r.result)
		}
	}
	if st.AuthDenied.OK {
		constMetric(e, "edgewamp_auth_denied_total", "WAMP authentications refused unchecked by the brute-force limiter.", C, float64(st.AuthDenied.V))
	}
	if st.AuthBusy.OK {
		constMetric(e, "edgewamp_auth_busy_total", "WAMP logins refused unchecked, or dropped from the queue for another address's, because the queue of authentication work was full.", C, float64(st.AuthBusy.V))
	}
	byLabel(e, "edgewamp_auth_panics_total", "Panics recovered in an Authenticator (in=authenticator: the login refused) or an Authorizer (in=authorizer: the request refused): a bug in the embedder's code.", "in", C, st.AuthPanics)
	if st.Connections.OK {
		constMetric(e, "edgewamp_connections", "Connections open on the WAMP listeners.", G, st.Connections.V)
	}
	if st.LaneConnections.OK {
		constMetric(e, "edgewamp_gateway_lane_connections", "HTTP connections open on the gateway's port served by the event loops (gateway.event_loop), those handed to net/http not included.", G, st.LaneConnections.V)
	}
	if st.ProtocolViolations.OK {
		constMetric(e, "edgewamp_protocol_violations_total", "Sessions aborted for protocol violations.", C, float64(st.ProtocolViolations.V))
	}
	if st.RetainedRevoked.OK {
		constMetric(e, "edgewamp_retained_revoked_total", "Retained events dropped because their publisher may no longer publish them (a reload, a revoked credential).", C, float64(st.RetainedRevoked.V))
	}
	if st.EventsSuperseded.OK {
		constMetric(e, "edgewamp_events_superseded_total", "Events not delivered to a get_retained subscriber because the retained copy it received was the same event or a newer one from the same publisher.", C, float64(st.EventsSuperseded.V))
	}
	byLabel(e, "edgewamp_retain_refused_total", "Events delivered but not retained, by reason: the realm's retention budget (realm_full) or the publisher's share of it (publisher_share) used up.", "reason", C, st.RetainRefused)
	if st.TestamentsRefused.OK {
		constMetric(e, "edgewamp_testaments_refused_total", "wamp.session.add_testament calls refused: the testaments' bytes would pass limits.testament_bytes, or the client address's or authid's quarter of it.", C, float64(st.TestamentsRefused.V))
	}
	if st.TestamentBytes.OK {
		constMetric(e, "edgewamp_testament_bytes", "Bytes the sessions' testaments hold (topics, payloads, black/white lists, and 96 bytes each), what limits.testament_bytes bounds.", G, st.TestamentBytes.V)
	}
	if st.SubscriptionsRefused.OK {
		constMetric(e, "edgewamp_subscriptions_refused_total", "SUBSCRIBEs refused: the subscriptions' bytes would pass limits.subscription_bytes, or the client address's or authid's quarter of it.", C, float64(st.SubscriptionsRefused.V))
	}
	if st.SubscriptionBytes.OK {
		constMetric(e, "edgewamp_subscription_bytes", "Bytes the sessions' subscriptions are counted for (each session's topic or pattern, and 384 bytes, per subscription it holds), what limits.subscription_bytes bounds.", G, st.SubscriptionBytes.V)
	}
	if st.AuthzCacheBytes.OK {
		constMetric(e, "edgewamp_authz_cache_bytes", "Bytes the sessions' authorization caches are charged for, bounded by as much as limits.subscription_bytes (a client address's or authid's quarter of it), apart from the subscriptions.", G, st.AuthzCacheBytes.V)
	}
	if st.RegistrationsRefused.OK {
		constMetric(e, "edgewamp_registrations_refused_total", "REGISTERs refused: the registrations' bytes would pass limits.registration_bytes, or the client address's or authid's quarter of it.", C, float64(st.RegistrationsRefused.V))
	}
	if st.RegistrationBytes.OK {
		constMetric(e, "edgewamp_registration_bytes", "Bytes the sessions' registrations are counted for (each session's procedure or pattern, and 512 bytes, per registration it holds), what limits.registration_bytes bounds.", G, st.RegistrationBytes.V)
	}
	if st.InboundHeld.OK {
		constMetric(e, "edgewamp_inbound_held_bytes", "Bytes of partial inbound messages held by the transports.", G, st.InboundHeld.V)
	}
	if st.OutboundQueued.OK {
		constMetric(e, "edgewamp_outbound_queued_bytes", "Bytes of output queued to slow peers.", G, st.OutboundQueued.V)
	}
	if st.OutboundRefused.OK {
		constMetric(e, "edgewamp_outbound_refused_total", "Events (dropped) and invocations (refused) of 64 KiB or more that would have taken the queued output past max_outbound_total.", C, float64(st.OutboundRefused.V))
	}
	collectTransport(e, st)
	if ms := st.Mesh; ms != nil {
		collectMesh(e, ms)
	}
}

func collectTransport(e *expo, st *Stats) {
	const C, G = counterType, gaugeType
	gauges := []struct {
		g          Gauge
		name, help string
		labels     []string
	}{
		{st.TLSConnections, "edgewamp_tls_connections", "TLS connections open on the WAMP listeners, handshakes included.", nil},
		{st.TLSHandshakes, "edgewamp_tls_handshakes", "TLS handshakes, running on the handshake pool or queued for it.", []string{"state", "running"}},
		{st.TLSHandshakesQueued, "edgewamp_tls_handshakes", "TLS handshakes, running on the handshake pool or queued for it.", []string{"state", "queued"}},
		{st.FileDescriptors, "edgewamp_connection_fds", "File descriptors the connections hold.", nil},
		{st.FileDescriptorBudget, "edgewamp_connection_fds_budget", "File descriptors the connections may hold (the open-file limit less a reserve); past it connections are refused.", nil},
		{st.InboundBudget, "edgewamp_inbound_budget_bytes", "Bound of edgewamp_inbound_held_bytes (max_inbound_total).", nil},
		{st.OutboundBudget, "edgewamp_outbound_budget_bytes", "Bound of edgewamp_outbound_queued_bytes (max_outbound_total).", nil},
		{st.Lingering, "edgewamp_connections_lingering", "Connections whose session ended, their last output still being written to the peer.", nil},
	}
	for _, g := range gauges {
		if g.g.OK {
			constMetric(e, g.name, g.help, G, g.g.V, g.labels...)
		}
	}
	counters := []struct {
		c          Counter
		name, help string
	}{
		{st.PongsCoalesced, "edgewamp_pongs_coalesced_total", "Pings answered only by the pong of a later ping (the peer did not take its output)."},
		{st.LingerResets, "edgewamp_linger_resets_total", "Connections whose session ended reset before their last output was written: the peer stopped taking it."},
		{st.ProxyUnforwarded, "edgewamp_proxy_unforwarded_total", "WebSocket upgrades from a listener's trusted proxy that named no client address (no or no usable X-Forwarded-For, Forwarded): the proxy's address stood for the client."},
		{st.RingEnters, "edgewamp_io_uring_enters_total", "io_uring_enter calls of the event loops' send rings."},
		{st.RingSends, "edgewamp_io_uring_sends_total", "Sends submitted through the event loops' send rings."},
		{st.RingPartial, "edgewamp_io_uring_partial_sends_total", "Ring sends a socket did not take whole (the rest waits for the socket to drain)."},
		{st.RingFailures, "edgewamp_io_uring_failures_total", "Event loops whose io_uring ring failed while they ran: they write with write(2) since."},
		{st.MemoryReleases, "edgewamp_memory_releases_total", "Free heap returned to the system after a burst of connections opened or closed."},
	}
	for _, c := range counters {
		if c.c.OK {
			constMetric(e, c.name, c.help, C, float64(c.c.V))
		}
	}
	if st.SendPath != "" {
		constMetric(e, "edgewamp_send_path", "How the event loops write (io_uring or write), chosen at start: 1 for the path chosen (a loop whose ring fails writes with write(2): edgewamp_io_uring_failures_total).", G, 1, "path", st.SendPath)
	}
}

func collectMesh(e *expo, ms *MeshStats) {
	const C, G = counterType, gaugeType
	connected := 0.0
	if ms.Connected {
		connected = 1
	}
	constMetric(e, "edgewamp_mesh_connected", "1 while the mesh node's NATS connection is up.", G, connected)
	constMetric(e, "edgewamp_mesh_peers", "Other mesh nodes seen alive now.", G, float64(ms.Peers))
	constMetric(e, "edgewamp_mesh_peers_incompatible", "Mesh nodes heard speaking another mesh version (another edgewamp release), not used as peers.", G, float64(ms.PeersIncompatible))
	constMetric(e, "edgewamp_mesh_peers_unheard", "Mesh nodes a peer hears that this node does not (NATS routes between some nodes missing or still forming).", G, float64(ms.PeersUnheard))
	constMetric(e, "edgewamp_mesh_peers_same_name", "Other mesh nodes heard using this node's name (node names must be unique).", G, float64(ms.PeersSameName))
	constMetric(e, "edgewamp_mesh_peers_joined_total", "Mesh nodes seen joining.", C, float64(ms.PeersJoined))
	constMetric(e, "edgewamp_mesh_peers_lost_total", "Mesh nodes taken for dead or gone.", C, float64(ms.PeersLost))
	byLabel(e, "edgewamp_mesh_messages_dropped_total", "Messages between mesh nodes lost or not sent, by reason (the mesh delivers at most once).", "reason", C, ms.Dropped)
	constMetric(e, "edgewamp_mesh_event_duplicates_total", "Event copies from other nodes dropped as duplicates (overlapping subscriptions).", C, float64(ms.Duplicates))
	constMetric(e, "edgewamp_mesh_events_unheard_total", "Events of this node's publishers not sent to the mesh because no other node subscribed to them (checked while the outbound queue is busy; none lost).", C, float64(ms.EventsUnheard))
	constMetric(e, "edgewamp_mesh_invocations_refused_total", "Calls from other nodes refused: too many in flight here.", C, float64(ms.InvocationsRefused))
	constMetric(e, "edgewamp_mesh_calls_refused_total", "Calls of this node's sessions refused: the session had too many in flight to other nodes.", C, float64(ms.CallsRefused))
	constMetric(e, "edgewamp_mesh_calls_bounced_total", "Calls another node sent back undelivered and this node sent on.", C, float64(ms.CallsBounced))
	constMetric(e, "edgewamp_mesh_invocations_expired_total", "Calls from other nodes ended here a second past their caller's timeout, their callee interrupted: the caller's node's interrupt was lost on its way.", C, float64(ms.InvocationsExpired))
	constMetric(e, "edgewamp_mesh_callees_revoked_total", "Callees revoked to settle a registration conflict between nodes.", C, float64(ms.CalleesRevoked))
	constMetric(e, "edgewamp_mesh_gathers_incomplete_total", "Meta queries and get_retained calls answered without some nodes' answers (mesh.gather_timeout passed).", C, float64(ms.GathersIncomplete))
	constMetric(e, "edgewamp_mesh_presence_announced_total", "wamp.session.on_leave announced to this node's subscribers for sessions of nodes that left the mesh without closing them.", C, float64(ms.PresenceAnnounced))
	constMetric(e, "edgewamp_mesh_presence_untracked_total", "Other nodes' sessions whose on_leave this node would not announce if their node left the mesh (past 65,536 per realm, or left out of a node's answer), and trackings that could not start complete.", C, float64(ms.PresenceUntracked))
	constMetric(e, "edgewamp_mesh_nats_disconnects_total", "Losses of the mesh node's NATS connection.", C, float64(ms.Disconnects))
	ready := 0.0
	if ms.ClaimStoreReady {
		ready = 1
	}
	constMetric(e, "edgewamp_mesh_claim_store_ready", "1 once the node has reached the mesh's claim store (JetStream), which settles exclusive registrations.", G, ready)
	constMetric(e, "edgewamp_mesh_wide_realms", "Realms for which this node subscribes to every event of the other nodes (its distinct subscribed topics passed mesh.max_interest).", G, float64(ms.WideRealms))
	byLabel(e, "edgewamp_mesh_claims_total", "Exclusive registrations the mesh's claim store refused (another node holds them), refused for want of room (store_full), or could not settle (accepted provisionally), releases of them dropped (releases_dropped), claims this node held that the store had lost and it claimed again (reasserted), and claims of nodes seen dead purged by its sweeps (swept), by result.", "result", C, ms.Claims)
}

// collectGateway exports the gateway's own figures.
func (m *metrics) collectGateway(e *expo) {
	const C, G = counterType, gaugeType
	m.mu.Lock()
	rms := make([]*routeMetrics, len(m.order))
	for i, name := range m.order {
		rms[i] = m.routes[name]
	}
	m.mu.Unlock()
	for _, rm := range rms {
		name := rm.name
		for code := range rm.codes {
			if n := rm.codes[code].Load(); n > 0 {
				constMetric(e, "edgewamp_gateway_requests_total", "HTTP requests, by route and status code (499: the client went away).", C, float64(n), "route", name, "code", strconv.Itoa(code))
			}
		}
		counts, sum := rm.hist.snapshot()
		e.histogram("edgewamp_gateway_request_duration_seconds",
			"Time from a request's arrival to its answer (the whole stream for SSE), by route. For call routes it is the call latency seen by HTTP clients.",
			durationBuckets[:], counts, sum, "route", name)
	}
	constMetric(e, "edgewamp_gateway_requests_in_flight", "HTTP requests holding a WAMP session now.", G, float64(m.g.inflight.Load()))
	constMetric(e, "edgewamp_gateway_sessions", "WAMP sessions the gateway holds (principals' pools, HTTP callees, webhooks).", G, float64(m.g.pool.sessions()))
	constMetric(e, "edgewamp_gateway_sse_streams", "Server-Sent Events streams open.", G, float64(m.g.streams.Load()))
	constMetric(e, "edgewamp_gateway_proxy_unforwarded_total", "Requests from a trusted proxy (gateway.trusted_proxies) that named no client address (no or no usable X-Forwarded-For, Forwarded): the proxy's address stood for the client.", C, float64(m.g.proxyUnforwarded.Load()))
	constMetric(e, "edgewamp_gateway_sse_cut_total", "SSE streams cut because the client read more slowly than events arrived.", C, float64(m.sseCut.Load()))
	constMetric(e, "edgewamp_gateway_sse_queued_bytes", "Bytes queued to SSE clients or being written to them, what gateway.limits.sse_buffer_total bounds: events (a frame shared by several streams counts once), streamed calls' results and plain call results over 4 KiB being written.", G, float64(m.g.sse.bytes.Load()))
	constMetric(e, "edgewamp_gateway_sse_withdrawn_total", "SSE streams (event streams and streamed calls) ended because their credential no longer authorized them: a bearer token revoked, or a configuration reload that took the token's client, principal or role, the role's HTTP bridge access or the realm's anonymous access away.", C, float64(m.sseWithdrawn.Load()))
	constMetric(e, "edgewamp_gateway_sse_buffer_cut_total", "SSE streams cut because the events queued to all streams passed gateway.limits.sse_buffer_total (the streams holding the most; counted in edgewamp_gateway_sse_cut_total too).", C, float64(m.g.sse.cuts.Load()))
	m.refusedMu.Lock()
	for _, k := range sortedKeys(m.refusals) {
		constMetric(e, "edgewamp_gateway_refused_total", "Requests refused by the gateway's limits, by reason.", C, float64(m.refusals[k].Load()), "reason", k)
	}
	m.refusedMu.Unlock()
	m.authMu.Lock()
	for k, n := range m.auth {
		constMetric(e, "edgewamp_gateway_auth_total", "HTTP request authentications, by credential and result.", C, float64(n.Load()), "method", k[0], "result", k[1])
	}
	m.authMu.Unlock()
	var subscribed, registered, standby, webhooksStandby int
	rs := m.g.runners.Load()
	for _, wr := range rs.webhooks {
		if wr.subscribed.Load() {
			subscribed++
		}
		if wr.standby.Load() {
			webhooksStandby++
		}
	}
	for _, c := range rs.callees {
		if c.registered.Load() {
			registered++
		}
		if c.standby.Load() {
			standby++
		}
	}
	constMetric(e, "edgewamp_gateway_webhook_subscribed", "Webhooks whose subscription is in place now (of those configured).", G, float64(subscribed))
	constMetric(e, "edgewamp_gateway_webhook_standby", "Webhooks with deliver: one standing by: another node of the mesh delivers them.", G, float64(webhooksStandby))
	constMetric(e, "edgewamp_gateway_callee_registered", "HTTP callees whose registration is in place now (of those configured).", G, float64(registered))
	constMetric(e, "edgewamp_gateway_callee_standby", "HTTP callees standing by: another session (a client, another node of the mesh) holds the procedure's single registration.", G, float64(standby))
	m.webhooks.Range(func(k, v any) bool {
		v.(*webhookMetrics).collect(e, k.(string))
		return true
	})
	m.calleeStats.Range(func(k, v any) bool {
		v.(*calleeMetrics).collect(e, k.(string))
		return true
	})
}

func sortedKeys[V any](mp map[string]V) []string {
	keys := make([]string, 0, len(mp))
	for k := range mp {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
