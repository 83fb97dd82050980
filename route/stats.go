package route

// NumAuthMethods is the number of authentication methods counted apart:
// anonymous, ticket, wampcra, cryptosign, and any other (custom
// Authenticators) together.
const NumAuthMethods = 5

var authMethodNames = [NumAuthMethods]string{"anonymous", "ticket", "wampcra", "cryptosign", "other"}

// AuthMethodName returns the name of the method counted at index i of the
// by-method counters (ShardStats.AuthSuccessesBy, Stats.AuthSuccesses, ...):
// "anonymous", "ticket", "wampcra", "cryptosign" or "other".
func AuthMethodName(i int) string { return authMethodNames[i] }

// authMethodIndex returns the counter index of an authmethod.
func authMethodIndex(method string) int {
	switch method {
	case "anonymous":
		return 0
	case "ticket":
		return 1
	case "wampcra":
		return 2
	case "cryptosign":
		return 3
	}
	return 4
}

// Stats is a snapshot of a Router's counters, summed over its shards. Each
// counter only grows (for a Prometheus counter).
type Stats struct {
	// AuthSuccesses and AuthFailures count authentications by method
	// (index: AuthMethodName). A failure is a wrong secret, an unknown
	// principal or role, or a refused token.
	AuthSuccesses [NumAuthMethods]uint64
	AuthFailures  [NumAuthMethods]uint64
	// AuthDenied counts HELLOs and AUTHENTICATEs the brute-force limiter
	// refused without checking them (address locked out, too many
	// authentications in progress).
	AuthDenied uint64
	// AuthBusy counts logins refused unchecked because the queue of
	// authentication work was full (Config.AuthQueue): a HELLO or
	// AUTHENTICATE that found no room, or whose queued job gave way to a
	// login from an address with fewer jobs queued.
	AuthBusy uint64
	// AuthenticatorPanics counts panics recovered in an Authenticator's
	// methods (Method, Challenge, Authenticate), in the rest of a login's
	// check and in an Identity's Credential.Check; AuthorizerPanics, in
	// an Authorizer's (authrecover.go).
	// Each is a bug in the embedder's code: the login or the request was
	// refused, the router went on.
	AuthenticatorPanics uint64
	AuthorizerPanics    uint64
	// ProtocolErrors counts sessions aborted for protocol violations.
	ProtocolErrors uint64
	// Events dropped, by reason: the subscriber was not reading fast enough
	// (SlowConsumer), the EVENT was longer than the subscriber accepts
	// (TooBig), or its payload could not be converted to the subscriber's
	// serializer (NotConvertible: a JSON binary string whose base64 is
	// broken, a float JSON cannot write, an integer beyond 8192 bits).
	EventsDroppedSlowConsumer   uint64
	EventsDroppedTooBig         uint64
	EventsDroppedNotConvertible uint64
	// EventsDroppedShardBacklog counts publications not handed to another
	// shard (event loop) whose queue of events from the other shards was
	// full: that shard's subscribers miss the event.
	EventsDroppedShardBacklog uint64
	// EventsSuperseded counts events not delivered to a get_retained
	// subscriber because it had them already, or newer ones, from the
	// retained copy: a live event that was the retained event delivered to
	// it, or one its publisher published before that; and retained events
	// not sent because the live events held for the subscription
	// overflowed and went out first. Not lost: the subscriber has the
	// state they carried, or newer.
	EventsSuperseded uint64
	// CallsRefused counts INVOCATIONs refused because the callee was not
	// reading fast enough (the caller got wamp.error.unavailable).
	CallsRefused uint64
	// CallsRefusedShardBacklog counts calls that failed with
	// wamp.error.unavailable because another shard's (event loop's) queue
	// of calls from the other shards was full: a CALL or a chunk of a
	// progressive invocation for a callee there, a YIELD or an ERROR for a
	// caller there.
	CallsRefusedShardBacklog uint64
	// CallsRefusedShare counts INVOCATIONs refused because the callee was
	// not keeping up (its backlog past half its high-water mark) and the
	// caller held more than its share of the callee's invocations in
	// flight (a call then rerouted to another callee counts too).
	CallsRefusedShare uint64
	// CallsRefusedNotConvertible counts INVOCATIONs refused because the
	// call's payload could not be converted to the callee's serializer
	// (or was too long once converted), for a caller on this node or on
	// another (a call then rerouted to another callee counts too).
	CallsRefusedNotConvertible uint64
	// CallsRefusedTooBig counts INVOCATIONs refused because the message
	// was longer than the callee accepts (its announced maximum length),
	// for a caller on this node or on another (a call then rerouted to
	// another callee counts too).
	CallsRefusedTooBig uint64
	// CallsRerouted counts calls a callee answered with
	// wamp.error.unavailable that went on to another callee (WAMP call
	// re-routing; once per callee change). CallsRerouteExhausted counts
	// calls a callee answered so that ended with
	// wamp.error.no_available_callee: no untried callee was left, the
	// registration is single, or the call had been offered to 17 callees.
	CallsRerouted         uint64
	CallsRerouteExhausted uint64
	// RetainRefused counts retained events not kept: the realm's retained
	// topics or bytes were used up. RetainRefusedPublisher counts those
	// not kept for their publisher's share of them
	// (Config.MaxRetainedPerPublisher, MaxRetainedBytesPerPublisher).
	RetainRefused          uint64
	RetainRefusedPublisher uint64
	// RetainedRevoked counts retained events dropped because their
	// publisher may no longer publish them: a reload took its identity or
	// its grant away, or its credential was revoked (here or, for a copy,
	// on the publisher's node of a mesh).
	RetainedRevoked uint64
	// TestamentsRefused counts wamp.session.add_testament calls refused
	// for Config.MaxTestamentBytes (the router's or the owner's quarter);
	// TestamentBytes is what testaments hold now, as it counts them.
	TestamentsRefused uint64
	TestamentBytes    int64
	// SubscriptionsRefused counts SUBSCRIBEs refused for
	// Config.MaxSubscriptionBytes (the router's or the owner's quarter);
	// SubscriptionBytes is what the sessions' subscriptions hold, as it
	// counts them.
	SubscriptionsRefused uint64
	SubscriptionBytes    int64
	// AuthzCacheBytes is what the sessions' authorization caches are
	// charged for, bounded by as much as Config.MaxSubscriptionBytes,
	// apart from the subscriptions.
	AuthzCacheBytes int64
	// RegistrationsRefused counts REGISTERs refused for
	// Config.MaxRegistrationBytes (the router's or the owner's quarter);
	// RegistrationBytes is what the sessions' registrations hold, as it
	// counts them.
	RegistrationsRefused uint64
	RegistrationBytes    int64
	// CallsRefusedTotal counts CALLs refused for Config.MaxCallsTotal (the
	// router's or the owner's quarter); CallsHeld is the calls in flight
	// it counts now.
	CallsRefusedTotal uint64
	CallsHeld         int64
}

// Stats returns the router's counters. It reads each shard's counters
// atomically and takes no lock, so a metrics endpoint may call it at any
// time from any goroutine; it does not allocate. The sums are not one
// atomic snapshot: a counter may move while the others are read.
func (r *Router) Stats() Stats {
	var st Stats
	for _, s := range r.shards {
		c := &s.stats
		for i := range NumAuthMethods {
			st.AuthSuccesses[i] += c.AuthSuccessesBy[i].Load()
			st.AuthFailures[i] += c.AuthFailuresBy[i].Load()
		}
		st.AuthDenied += c.AuthDenied.Load()
		st.AuthBusy += c.AuthBusy.Load()
		st.ProtocolErrors += c.ProtocolErrors.Load()
		st.EventsDroppedSlowConsumer += c.EventsDropped.Load()
		st.EventsDroppedTooBig += c.EventsTooBig.Load()
		st.EventsDroppedNotConvertible += c.EventsNotConvertible.Load()
		st.EventsDroppedShardBacklog += c.EventsBacklog.Load()
		st.EventsSuperseded += c.EventsSuperseded.Load()
		st.CallsRefused += c.CallsRefused.Load()
		st.CallsRefusedShardBacklog += c.CallsBacklog.Load()
		st.CallsRefusedShare += c.CallsShare.Load()
		st.CallsRefusedNotConvertible += c.CallsNotConvertible.Load()
		st.CallsRefusedTooBig += c.CallsTooBig.Load()
		st.CallsRerouted += c.CallsRerouted.Load()
		st.CallsRerouteExhausted += c.CallsRerouteExhausted.Load()
		st.RetainRefused += c.RetainRefused.Load()
		st.RetainRefusedPublisher += c.RetainRefusedPublisher.Load()
		st.RetainedRevoked += c.RetainedRevoked.Load()
		st.TestamentsRefused += c.TestamentsRefused.Load()
		st.SubscriptionsRefused += c.SubscriptionsRefused.Load()
		st.RegistrationsRefused += c.RegistrationsRefused.Load()
		st.CallsRefusedTotal += c.CallsRefusedTotal.Load()
	}
	st.AuthenticatorPanics = r.authnPanics.Load()
	st.AuthorizerPanics = r.authzPanics.Load()
	r.testaments.mu.Lock()
	st.TestamentBytes = r.testaments.total
	r.testaments.mu.Unlock()
	r.subBytes.mu.Lock()
	st.SubscriptionBytes = r.subBytes.total
	r.subBytes.mu.Unlock()
	r.authzBytes.mu.Lock()
	st.AuthzCacheBytes = r.authzBytes.total
	r.authzBytes.mu.Unlock()
	r.regBytes.mu.Lock()
	st.RegistrationBytes = r.regBytes.total
	r.regBytes.mu.Unlock()
	st.CallsHeld = r.calls.total.Load()
	return st
}
