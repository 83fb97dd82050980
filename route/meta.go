package route

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Meta event topics (WAMP §Session/Registration/Subscription Meta API).
const (
	metaSessionOnJoin    = "wamp.session.on_join"
	metaSessionOnLeave   = "wamp.session.on_leave"
	metaRegOnCreate      = "wamp.registration.on_create"
	metaRegOnRegister    = "wamp.registration.on_register"
	metaRegOnUnregister  = "wamp.registration.on_unregister"
	metaRegOnDelete      = "wamp.registration.on_delete"
	metaSubOnCreate      = "wamp.subscription.on_create"
	metaSubOnSubscribe   = "wamp.subscription.on_subscribe"
	metaSubOnUnsubscribe = "wamp.subscription.on_unsubscribe"
	metaSubOnDelete      = "wamp.subscription.on_delete"
)

// metaSer is the serializer meta event payloads are built in; subscribers
// speaking another get a transcoded copy.
const metaSer = proto.MsgPack

func (ss *Session) details() map[string]any {
	return map[string]any{
		"session":      ss.id,
		"authid":       ss.authID,
		"authrole":     ss.authRole,
		"authmethod":   ss.authMethod,
		"authprovider": ss.authProvider,
		"transport": map[string]any{
			"type":     ss.transport.Type,
			"protocol": ss.transport.Protocol,
			"peer":     ss.transport.RemoteAddr,
			"tls":      ss.transport.TLS,
		},
	}
}

func (reg *registration) details() map[string]any {
	return map[string]any{
		"id":      reg.id,
		"created": reg.created.UTC().Format(time.RFC3339Nano),
		"uri":     reg.uri,
		"match":   reg.match.String(),
		"invoke":  reg.invoke.String(),
	}
}

func (sub *subscription) details() map[string]any {
	return map[string]any{
		"id":      sub.id,
		"created": sub.created.UTC().Format(time.RFC3339Nano),
		"uri":     sub.uri,
		"match":   sub.match.String(),
	}
}

func (s *Shard) metaJoin(ss *Session) {
	ss.realm.metaPush(metaItem{topic: metaSessionOnJoin, sess: ss.id, args: []any{ss.details()}})
	s.metaFlush(ss.realm)
}

// leave takes an established session out of its realm: its calls and
// invocations end with errors, its registrations and subscriptions go, its
// testaments are published and on_leave is announced. Idempotent. A
// session not established yet ends its login (endJoin: it gives back its
// open challenge and its place in the AUTHENTICATE queue; dropping the
// login without them kept both for good after every ABORT).
func (s *Shard) leave(ss *Session) {
	if ss.state != stEstablished {
		ss.endJoin()
		return
	}
	ss.state = stClosing
	s.dropAsks(ss)
	rm := ss.realm
	rm.mu.Lock()
	rm.dropMember(ss)
	rm.mu.Unlock()
	s.leaveDealer(ss)
	s.leaveBroker(ss)
	s.r.walkOwners.leave(ss, s.r.now())
	ss.dropAuthz()
	s.publishTestaments(ss)
	if ss.cred != nil {
		s.releaseCredential(ss)
	}
	s.r.dropSession(ss)
	// After the events of its registrations and subscriptions, queued
	// as they went (leaveDealer, leaveBroker).
	rm.metaPush(metaItem{topic: metaSessionOnLeave, sess: ss.id, args: []any{ss.id, ss.authID, ss.authRole}})
	s.metaFlush(rm)
}

// shutdown says GOODBYE to every session of the shard. The calls its
// sessions still have in progress (routed, and meta calls waiting) are
// answered first, every one before
// any GOODBYE (ERROR wamp.error.canceled, msgShutdownInProgress): a
// caller's GOODBYE before its callee's ended such a call with the session,
// unanswered, and a callee's ERROR from another shard came after its
// caller's GOODBYE, dropped (the shards go in no order).
func (s *Shard) shutdown() {
	s.closing = true
	for ss := range s.sessions() {
		if ss.state == stEstablished {
			// Ended here, as a CANCEL's: kept until the GOODBYE, a
			// call whose callee is on this shard and said GOODBYE first
			// was answered again by that callee's leave (two ERRORs).
			reqs := make([]uint64, 0, len(ss.calls))
			for req := range ss.calls {
				reqs = append(reqs, req)
			}
			for _, req := range reqs {
				oc := ss.calls[req]
				ss.endCall(req, oc)
				s.replyError(ss, proto.CodeCall, req, proto.URICanceled, msgShutdownInProgress)
				s.stopInvocation(oc, proto.CancelKillNoWait, proto.URICanceled)
			}
			// Its meta calls waiting (walk turn, the other nodes'
			// answers) too: leave dropped them unanswered. Canceled,
			// so that an answer gathered later is dropped.
			for req, w := range ss.metaWaits {
				w.canceled = true
				delete(ss.metaWaits, req)
				s.replyError(ss, proto.CodeCall, req, proto.URICanceled, msgShutdownInProgress)
			}
		}
	}
	for ss := range s.sessions() {
		if ss.state == stEstablished {
			s.Goodbye(ss, proto.CloseSystemShutdown, "the router is shutting down")
		} else {
			s.abort(ss, proto.CloseSystemShutdown, "the router is shutting down")
		}
	}
}

// metaCall handles a CALL to a router procedure (wamp.*). It reports false
// when the URI is not one, so the call is routed normally.
func (s *Shard) metaCall(ss *Session, m *proto.Message) bool {
	proc := string(m.URI)
	h, ok := metaProcs[proc]
	if !ok {
		return false
	}
	if !ss.authorize(ActionCall, m.URI) {
		s.replyError(ss, proto.CodeCall, m.Request, proto.URINotAuthorized, "not authorized to call "+strconv.Quote(proc))
		return true
	}
	// Decoded into Go values, arguments grow 20 to 50 times: a meta
	// procedure takes ids, URIs, role lists and small testaments.
	if len(m.Args.B)+len(m.Kwargs.B) > maxMetaArgs {
		s.replyError(ss, proto.CodeCall, m.Request, proto.URIPayloadSizeExceeded, "the arguments of "+strconv.Quote(proc)+" are longer than 64 KiB")
		return true
	}
	if m.Transparent && m.Args.Present() {
		s.replyError(ss, proto.CodeCall, m.Request, proto.URIInvalidArgument, "the arguments of "+strconv.Quote(proc)+" cannot be decoded")
		return true
	}
	args, kwargs, aerr := decodeMetaArgs(m.Args, m.Kwargs, proc)
	if aerr == nil {
		aerr = metaUnknownKey(proc, kwargs)
	}
	if aerr == nil {
		aerr = metaExtraArgs(proc, args)
	}
	if aerr == nil {
		aerr = metaArgsErr(proc, args, kwargs)
	}
	if aerr != nil {
		s.replyError(ss, proto.CodeCall, m.Request, aerr.uri, aerr.msg)
		return true
	}
	if matchDenied(ss, proc, args) {
		s.runMeta(ss, m.Request, proc, metaNull, args, kwargs, nil, 0)
		return true
	}
	// On a mesh such a call's arguments go to the other nodes in the
	// query, in MsgPack, which cannot carry every value a caller may send
	// (an integer beyond float64's range, which JSON and CBOR carry): the
	// call is refused before it does anything. Before, it was answered
	// with this node's part alone, as if it were the mesh's: a count
	// without the other nodes' sessions, a kill_all of this node's only.
	var q []byte
	if s.r.mesh != nil && meshMeta[proc] != nil {
		var err error
		if q, err = encodeQuery(ss.realm.name, proc, args, kwargs); err != nil {
			s.replyError(ss, proto.CodeCall, m.Request, proto.URIInvalidArgument, "the arguments of "+strconv.Quote(proc)+" cannot be sent to the other nodes of the mesh: "+err.Error())
			return true
		}
	}
	// On a mesh a call gathered from every node that would find the
	// session's gathers full, or the node's queued meta calls at their
	// bound in bytes, is refused before it does anything (walks a table,
	// kills a session here).
	if s.meshMetaFull(ss, m.Request, proc, q) {
		return true
	}
	// Its timeout counts while it waits (its walk turn, the other nodes'
	// answers), as a routed call's does.
	var due int64
	if d := s.callTimeoutOf(m); d > 0 {
		due = deadlineAfter(s.r.now(), d)
	}
	if metaWalks[proc] != nil {
		s.metaTurn(ss, m, proc, h, args, kwargs, q, due)
		return true
	}
	s.metaArgs = m.Args
	s.runMeta(ss, m.Request, proc, h, args, kwargs, q, due)
	s.metaArgs = proto.Raw{}
	return true
}

// metaStillGranted reports whether ss may still call meta procedure proc,
// and else answers its CALL req wamp.error.not_authorized: for a meta call
// that waited (for its walk turn, or for its turn to ask the other nodes
// of a mesh), authorized when it arrived. A reload meanwhile may have
// withdrawn the grant, and the call, in flight as a routed call is, is
// judged by the new configuration before it does anything (the reload
// dropped the session's cached decisions; without one this is a map
// lookup). Before, it ran by the old grant: a wamp.session.kill_all
// queued behind its session's walk debt ended every session of the realm
// after the reload that took kill_all from its role. Owned by shard.
func (s *Shard) metaStillGranted(ss *Session, req uint64, proc string) bool {
	if ss.authorize(ActionCall, []byte(proc)) {
		return true
	}
	s.replyError(ss, proto.CodeCall, req, proto.URINotAuthorized, "not authorized to call "+strconv.Quote(proc)+" (the configuration was reloaded while the call waited)")
	return false
}

// decodeMetaArgs decodes a meta call's arguments. Arguments the router
// cannot read are refused, not taken as absent: a count would ignore its
// filter, a kill its invalid reason.
func decodeMetaArgs(a, k proto.Raw, proc string) (args []any, kwargs map[string]any, err *metaErr) {
	if a.Present() {
		v, e := proto.DecodeValue(a)
		l, ok := v.([]any)
		if e != nil || !ok {
			return nil, nil, badArg("the arguments of " + strconv.Quote(proc) + " cannot be decoded")
		}
		args = l
	}
	if k.Present() {
		v, e := proto.DecodeValue(k)
		d, ok := v.(map[string]any)
		if e != nil || !ok {
			return nil, nil, badArg("the keyword arguments of " + strconv.Quote(proc) + " cannot be decoded")
		}
		kwargs = d
	}
	return args, kwargs, nil
}

// metaKeys lists the keyword arguments each meta procedure reads; one not
// listed is absent. Crossbar.io's procedures are Python functions, which
// refuse a keyword they do not take.
var metaKeys = map[string][]string{
	"wamp.session.count":                  {"filter_authroles"},
	"wamp.session.list":                   {"filter_authroles"},
	"wamp.session.kill":                   {"reason", "message"},
	"wamp.session.kill_by_authid":         {"reason", "message"},
	"wamp.session.kill_by_authrole":       {"reason", "message"},
	"wamp.session.kill_all":               {"reason", "message"},
	"wamp.session.add_testament":          {"publish_options", "scope"},
	"wamp.session.flush_testaments":       {"scope"},
	"wamp.registration.lookup":            {"options"},
	"wamp.subscription.lookup":            {"options"},
	"wamp.registration.remove_callee":     {"reason"},
	"wamp.subscription.remove_subscriber": {"reason"},
}

// metaArity is the most positional arguments each meta procedure takes:
// the parameters of Crossbar.io's (its procedures are Python functions,
// which refuse more with a TypeError, answered
// wamp.error.invalid_argument), and of the WAMP Advanced Profile's
// signatures where they say more (kill's and remove_callee's reason).
// Trailing nulls count: Python does not drop them either.
var metaArity = map[string]int{
	"wamp.session.count":                  1, // filter_authroles
	"wamp.session.list":                   1, // filter_authroles
	"wamp.session.get":                    1, // session
	"wamp.session.kill":                   3, // session, reason, message
	"wamp.session.kill_by_authid":         3, // authid, reason, message
	"wamp.session.kill_by_authrole":       3, // authrole, reason, message
	"wamp.session.kill_all":               2, // reason, message
	"wamp.session.add_testament":          5, // topic, args, kwargs, publish_options, scope
	"wamp.session.flush_testaments":       1, // scope
	"wamp.registration.list":              1, // session_id (refused: metaList)
	"wamp.registration.lookup":            2, // procedure, options
	"wamp.registration.match":             1, // procedure
	"wamp.registration.get":               1, // registration
	"wamp.registration.list_callees":      1, // registration
	"wamp.registration.count_callees":     1, // registration
	"wamp.registration.remove_callee":     3, // registration, callee, reason
	"wamp.subscription.list":              1, // session_id (refused: metaList)
	"wamp.subscription.lookup":            2, // topic, options
	"wamp.subscription.match":             1, // topic
	"wamp.subscription.get":               1, // subscription
	"wamp.subscription.list_subscribers":  1, // subscription
	"wamp.subscription.count_subscribers": 1, // subscription
	"wamp.subscription.remove_subscriber": 3, // subscription, subscriber, reason
}

// metaExtraArgs refuses a call of meta procedure proc with more positional
// arguments than it takes (metaArity). Before, the extra ones were
// ignored, silently: kill(id, reason, message, x) killed, and
// remove_callee(registration, callee, reason, x) removed, as if they had
// been understood, where Crossbar.io answers invalid_argument and does
// nothing.
func metaExtraArgs(proc string, args []any) *metaErr {
	n := metaArity[proc]
	if len(args) <= n {
		return nil
	}
	takes := strconv.Itoa(n) + " positional arguments"
	if n == 1 {
		takes = "1 positional argument"
	}
	return badArg(proc + " takes at most " + takes + ", not " + strconv.Itoa(len(args)))
}

// metaArgsErr refuses the arguments of a meta procedure that a bound may
// refuse before its handler runs (a mesh session's gathers full,
// meshMetaFull; a session's walk turns, walkFull), as its handler would
// refuse them: the checks that need no table. Before, such a call was
// answered wamp.error.unavailable, "try again", while the session's
// gathers were full, and invalid_argument only once they had drained.
// The handlers check again (the same helpers, the same answers). The
// walking remove_callee and remove_subscriber were left out at first, and
// got unavailable with the walk turns full
// (TestMetaRemoveBadArgsRefusedForThemWhenWalkTurnsFull).
func metaArgsErr(proc string, args []any, kwargs map[string]any) *metaErr {
	var err *metaErr
	switch proc {
	case "wamp.session.count", "wamp.session.list":
		_, err = roleFilter(args, kwargs)
	case "wamp.session.kill_by_authid", "wamp.session.kill_by_authrole":
		if _, ok := argStr(args, 0); !ok {
			return badArg("needs the " + strings.TrimPrefix(proc, "wamp.session.kill_by_") + " as its first argument")
		}
		_, _, err = killOpts(args, 1, kwargs)
	case "wamp.session.kill_all":
		_, _, err = killOpts(args, 0, kwargs)
	case "wamp.registration.list", "wamp.subscription.list":
		if v, e := metaOptArg(args, 0, kwargs, "session_id"); e != nil || v != nil || len(args) > 1 {
			return badArg(proc + metaListNoArgs)
		}
	case "wamp.registration.list_callees", "wamp.registration.count_callees":
		if _, ok := argID(args, 0); !ok {
			return badArg("needs a registration id" + idRange)
		}
	case "wamp.subscription.get", "wamp.subscription.list_subscribers", "wamp.subscription.count_subscribers":
		if _, ok := argID(args, 0); !ok {
			return badArg("needs a subscription id" + idRange)
		}
	case "wamp.subscription.lookup":
		if _, ok := argStr(args, 0); !ok {
			return badArg(subLookupUsage)
		}
		_, err = matchOption(args, 1, kwargs)
	case "wamp.subscription.match":
		if _, ok := argStr(args, 0); !ok {
			return badArg(subMatchUsage)
		}
	case "wamp.registration.remove_callee":
		_, _, _, err = removeArgs(args, kwargs, regRemoveUsage)
	case "wamp.subscription.remove_subscriber":
		_, _, _, err = removeArgs(args, kwargs, subRemoveUsage)
	}
	return err
}

// metaUnknownKey refuses a keyword argument meta procedure proc does not
// read (metaKeys), naming it (the first in byte order, when several).
// Before, it was ignored, silently: flush_testaments(scop="detached")
// flushed the destroyed scope, wamp.registration.list(session_id=…),
// which Crossbar.io answers with that session's registrations, listed
// every registration, and the caller was told it was done.
func metaUnknownKey(proc string, kwargs map[string]any) *metaErr {
	bad := ""
	for k := range kwargs {
		if !slices.Contains(metaKeys[proc], k) && (bad == "" || k < bad) {
			bad = k
		}
	}
	if bad == "" {
		return nil
	}
	takes := "no keyword argument"
	if keys := metaKeys[proc]; len(keys) > 0 {
		takes = "only " + strings.Join(keys, ", ") + " by keyword"
	}
	return badArg(proc + " takes " + takes + ", not " + strconv.Quote(bad))
}

// metaWait is a meta call that waits (for its walk turn, or for the other
// nodes' answers), held in its session's metaWaits under its request id
// while it does. As for a call in flight, the id is in use meanwhile: a
// CALL with it is a protocol violation, and a CANCEL of it answers
// wamp.error.canceled at once (the meta call is then not run if it has
// not been, and its answer is dropped; what it has done stays done: a
// kill the other nodes were asked for may still happen). Before, the
// waiting call was in no table: a CANCEL was ignored, and a CALL with the
// same id was taken, the two answers then sharing the id.
//
// Its timeout (the CALL's, else rpc.call_timeout, capped by
// max_call_timeout: callTimeoutOf) counts from the CALL while it waits: past
// it the caller gets wamp.error.timeout, as for a routed call, and the call
// is dropped as if canceled (metaTimeout). Before, a waiting meta call had
// no timeout: one behind ten seconds of walk debt was answered ten seconds
// after its caller's 100 ms, and after max_call_timeout.
type metaWait struct {
	canceled bool
	due      int64 // its deadline (Router.now), 0: none
}

// holdMeta enters meta call req in ss's metaWaits, with its deadline due
// (0: none), for which it arms a timer (tmMeta).
func (s *Shard) holdMeta(ss *Session, req uint64, due int64) *metaWait {
	if ss.metaWaits == nil {
		ss.metaWaits = map[uint64]*metaWait{}
	}
	w := &metaWait{due: due}
	ss.metaWaits[req] = w
	if due != 0 {
		s.addTimer(timer{due: due, kind: tmMeta, sess: ss, id: req})
	}
	return w
}

// releaseMeta takes meta call req (held as w) out of ss's metaWaits, and
// reports whether it is still to be run or answered (false: canceled).
func (ss *Session) releaseMeta(req uint64, w *metaWait) bool {
	if w.canceled {
		return false
	}
	if ss.metaWaits[req] == w {
		delete(ss.metaWaits, req)
	}
	return true
}

// cancelMeta answers a CANCEL of req when req is a waiting meta call.
func (s *Shard) cancelMeta(ss *Session, req uint64) {
	w := ss.metaWaits[req]
	if w == nil {
		return // answered already, or no such call
	}
	w.canceled = true
	delete(ss.metaWaits, req)
	s.replyError(ss, proto.CodeCall, req, proto.URICanceled, "the call was canceled")
}

// metaTimeout fires the timeout of meta call req, still waiting (the
// timer's live checked it): it is dropped as a canceled one is, and its
// caller told wamp.error.timeout.
func (s *Shard) metaTimeout(ss *Session, req uint64) {
	w := ss.metaWaits[req]
	w.canceled = true
	delete(ss.metaWaits, req)
	s.replyError(ss, proto.CodeCall, req, proto.URITimeout, "the call timed out")
}

// runMeta runs meta procedure h and answers CALL req; q is its query to
// the other nodes of a mesh (nil: answered here), due its deadline (0:
// none).
func (s *Shard) runMeta(ss *Session, req uint64, proc string, h metaFn, args []any, kwargs map[string]any, q []byte, due int64) {
	res, err := h(s, ss, args, kwargs)
	if q != nil && s.meshMetaCall(ss, req, proc, q, due, args, res, err) {
		return // answered once the other nodes have
	}
	if err != nil {
		s.replyError(ss, proto.CodeCall, req, err.uri, err.msg)
		return
	}
	out := &s.out
	out.Reset()
	out.Type = proto.CodeResult
	out.Request = req
	if res != nil {
		raw, encErr := proto.EncodeValue(ss.ser, res)
		if encErr != nil {
			s.replyError(ss, proto.CodeCall, req, proto.URIInvalidArgument, encErr.Error())
			return
		}
		out.Args = raw
	}
	if err := s.sendMsg(ss, out, ClassResult); err == ErrPeerTooBig {
		s.replyError(ss, proto.CodeCall, req, proto.URIPayloadSizeExceeded, "the result is longer than this session accepts")
	}
}

// maxMetaArgs bounds the encoded arguments of a meta call (testament
// payloads included), checked before they are decoded.
const maxMetaArgs = 64 << 10

// metaErr is a meta procedure's WAMP error.
type metaErr struct{ uri, msg string }

// metaFn implements a meta procedure. It returns the RESULT arguments (nil:
// no arguments).
type metaFn func(s *Shard, ss *Session, args []any, kwargs map[string]any) ([]any, *metaErr)

var metaProcs map[string]metaFn

func init() {
	metaProcs = map[string]metaFn{
		"wamp.session.count":                  metaSessionCount,
		"wamp.session.list":                   metaSessionList,
		"wamp.session.get":                    metaSessionGet,
		"wamp.session.kill":                   metaSessionKill,
		"wamp.session.kill_by_authid":         metaKillBy(func(ss *Session, v string) bool { return ss.authID == v }, "authid", true),
		"wamp.session.kill_by_authrole":       metaKillBy(func(ss *Session, v string) bool { return ss.authRole == v }, "authrole", false),
		"wamp.session.kill_all":               metaKillAll,
		"wamp.session.add_testament":          metaAddTestament,
		"wamp.session.flush_testaments":       metaFlushTestaments,
		"wamp.registration.list":              metaList(regTable, "wamp.registration.list"),
		"wamp.registration.lookup":            metaLookup(regTable, "wamp.registration.lookup needs a procedure URI"),
		"wamp.registration.match":             metaRegMatch,
		"wamp.registration.get":               metaGet(regByID, proto.URINoSuchRegistration, "registration"),
		"wamp.registration.list_callees":      metaRegCallees(false),
		"wamp.registration.count_callees":     metaRegCallees(true),
		"wamp.registration.remove_callee":     metaRegRemoveCallee,
		"wamp.subscription.list":              metaList(subTable, "wamp.subscription.list"),
		"wamp.subscription.lookup":            metaLookup(subTable, subLookupUsage),
		"wamp.subscription.match":             metaSubMatch,
		"wamp.subscription.get":               metaGet(subByID, proto.URINoSuchSubscription, "subscription"),
		"wamp.subscription.list_subscribers":  metaSubSubscribers(false),
		"wamp.subscription.count_subscribers": metaSubSubscribers(true),
		"wamp.subscription.remove_subscriber": metaSubRemoveSubscriber,
	}
}

func badArg(msg string) *metaErr { return &metaErr{proto.URIInvalidArgument, msg} }

// idRange ends the message of a meta call refused for an argument that is
// not an id (argID).
const idRange = " (an integer from 1 to 2^53)"

// argID reads args[i] as an id: an integer in [1, proto.MaxID]. [WAMP
// Identifiers]: "IDs in the global scope MUST be drawn randomly from a
// uniform distribution over the complete range [1, 2^53]"; 0 or a larger
// number names nothing and is refused as an argument
// (wamp.error.invalid_argument) where it used to be looked up and answered
// wamp.error.no_such_session (registration, subscription).
func argID(args []any, i int) (uint64, bool) {
	if i >= len(args) {
		return 0, false
	}
	var id uint64
	switch v := args[i].(type) {
	case int64:
		if v <= 0 {
			return 0, false
		}
		id = uint64(v)
	case uint64:
		id = v
	case float64:
		if v < 1 || v > proto.MaxID || v != float64(uint64(v)) {
			return 0, false
		}
		id = uint64(v)
	default:
		return 0, false
	}
	return id, id >= 1 && id <= proto.MaxID
}

func argStr(args []any, i int) (string, bool) {
	if i >= len(args) {
		return "", false
	}
	v, ok := args[i].(string)
	return v, ok
}

// roleFilter reads the optional filter_authroles argument (nil: none), as
// a set: each session of the realm is checked against it once, not against
// each of the thousands of roles 64 KiB of arguments may list. The spec
// gives it by position; Crossbar.io takes it by keyword too (its meta
// procedures are Python functions), which Autobahn|Python's
// call("wamp.session.count", filter_authroles=[...]) relies on, so a
// keyword filter is read rather than ignored (the caller was told about
// every session), and given both ways it is refused, as Crossbar refuses it.
func roleFilter(args []any, kwargs map[string]any) (roleSet, *metaErr) {
	var v any
	if len(args) > 0 {
		v = args[0]
	}
	if kv, ok := kwargs["filter_authroles"]; ok {
		if v != nil {
			return nil, badArg("filter_authroles given both by position and by keyword")
		}
		v = kv
	}
	if v == nil {
		return nil, nil
	}
	l, ok := v.([]any)
	if !ok {
		return nil, badArg("filter_authroles must be a list of strings")
	}
	out := roleSet{}
	for _, e := range l {
		s, ok := e.(string)
		if !ok {
			return nil, badArg("filter_authroles must be a list of strings")
		}
		out[s] = struct{}{}
	}
	return out, nil
}

// roleSet is roleFilter's set of roles.
type roleSet map[string]struct{}

func (set roleSet) has(s string) bool {
	_, ok := set[s]
	return ok
}

// metaSessionCount implements wamp.session.count: a look-up of the
// realm's members by role (Realm.byRole), whatever the realm's size.
// Before, it copied every member out of the table under the realm's lock
// and visited each, and was charged 8 walk entries a member
// (realmMembers): past 8,192 sessions one count took more than a
// session's whole burst, and at 100,000 a count every 1.5 s was all a
// session got, its get_retained SUBSCRIBEs waiting behind the debt.
func metaSessionCount(s *Shard, ss *Session, args []any, kwargs map[string]any) ([]any, *metaErr) {
	filter, err := roleFilter(args, kwargs)
	if err != nil {
		return nil, err
	}
	rm := ss.realm
	rm.mu.RLock()
	n := len(rm.members)
	if filter != nil {
		n = 0
		for role := range filter {
			n += rm.byRole[role]
		}
	}
	rm.mu.RUnlock()
	return []any{n}, nil
}

func metaSessionList(s *Shard, ss *Session, args []any, kwargs map[string]any) ([]any, *metaErr) {
	filter, err := roleFilter(args, kwargs)
	if err != nil {
		return nil, err
	}
	ids := []uint64{}
	for _, x := range ss.realm.sessionsSnapshot() {
		if filter == nil || filter.has(x.authRole) {
			ids = append(ids, x.id)
		}
	}
	return []any{ids}, nil
}

func metaSessionGet(s *Shard, ss *Session, args []any, _ map[string]any) ([]any, *metaErr) {
	id, ok := argID(args, 0)
	if !ok {
		return nil, badArg("wamp.session.get needs a session id" + idRange)
	}
	rm := ss.realm
	rm.mu.RLock()
	x := rm.members[id]
	rm.mu.RUnlock()
	if x == nil {
		return nil, &metaErr{proto.URINoSuchSession, "no session " + strconv.FormatUint(id, 10)}
	}
	return []any{x.details()}, nil
}

// metaOptArg reads an optional argument of a meta procedure, given by
// position (args[i]) or by keyword (kwargs[key]): Crossbar.io's meta
// procedures are Python functions, which take their arguments either way
// (add_testament(topic, args, kwargs, publish_options, scope),
// flush_testaments(scope), kill(session_id, reason, message)), and
// clients written against it pass them by position. Given both ways it
// is refused, as Crossbar refuses it (a Python TypeError). null is absent.
// Before, the testament procedures and the kill procedures read them by
// keyword only and ignored positional ones, silently: a testament's lists
// or scope, or a kill's reason and message, were dropped.
func metaOptArg(args []any, i int, kwargs map[string]any, key string) (any, *metaErr) {
	var v any
	if i < len(args) {
		v = args[i]
	}
	if kv := kwargs[key]; kv != nil {
		if v != nil {
			return nil, badArg(key + " given both by position and by keyword")
		}
		v = kv
	}
	return v, nil
}

// killOpts reads the reason and message arguments of the kill
// procedures, args[i] and args[i+1] or by keyword (metaOptArg).
func killOpts(args []any, i int, kwargs map[string]any) (reason, message string, err *metaErr) {
	reason = proto.CloseNormal
	v, err := metaOptArg(args, i, kwargs, "reason")
	if err != nil {
		return "", "", err
	}
	if v != nil {
		r, ok := v.(string)
		if !ok || !proto.ValidURI([]byte(r), proto.URILoose) {
			return "", "", &metaErr{proto.URIInvalidURI, "reason must be a valid URI"}
		}
		reason = r
	}
	if v, err = metaOptArg(args, i+1, kwargs, "message"); err != nil {
		return "", "", err
	}
	if v != nil {
		var ok bool
		if message, ok = v.(string); !ok {
			return "", "", badArg("message must be a string")
		}
	}
	return reason, message, nil
}

// kill ends target, a member of the caller's realm, with GOODBYE reason
// (and message): on its shard, which may run it later. Once: the target
// stays a member of its realm until its shard has run the kill, and
// every kill of it meanwhile was posted again, each with its message (up
// to 64 KiB): 1,500 kills of a session whose loop was busy held 94 MiB
// in that loop's mailbox, without bound
// (TestKillsOfBusyLoopsSessionNotQueued). The first kill's reason and
// message are the ones the target gets.
func (s *Shard) kill(target *Session, reason, message string) {
	if target.killPosted.Swap(true) {
		return
	}
	s.send(target.shard, task{kind: tKill, s: target, c: &carry{uri: reason, msg: message}})
}

func metaSessionKill(s *Shard, ss *Session, args []any, kwargs map[string]any) ([]any, *metaErr) {
	id, ok := argID(args, 0)
	if !ok {
		return nil, badArg("wamp.session.kill needs a session id" + idRange)
	}
	reason, message, err := killOpts(args, 1, kwargs)
	if err != nil {
		return nil, err
	}
	rm := ss.realm
	rm.mu.RLock()
	x := rm.members[id]
	rm.mu.RUnlock()
	// [WAMP Session Meta API, wamp.session.kill]: "Specifying the caller's
	// own session will result in a wamp.error.no_such_session since no
	// _other_ session with that ID exists."
	if x == nil || x == ss {
		return nil, &metaErr{proto.URINoSuchSession, "no other session " + strconv.FormatUint(id, 10)}
	}
	s.kill(x, reason, message)
	return nil, nil
}

// metaKillBy implements wamp.session.kill_by_authid (listKilled: its
// result is the list of the session ids it killed, WAMP Advanced Profile,
// Session Meta API: "sessions|list - The list of WAMP session IDs of
// session that were killed", as Crossbar.io answers) and
// wamp.session.kill_by_authrole (the number of sessions killed,
// "count|int"). kill_by_authid used to answer a number too: a client
// following the specification, iterating over the result, failed.
func metaKillBy(pred func(*Session, string) bool, what string, listKilled bool) metaFn {
	return func(s *Shard, ss *Session, args []any, kwargs map[string]any) ([]any, *metaErr) {
		v, ok := argStr(args, 0)
		if !ok {
			return nil, badArg("needs the " + what + " as its first argument")
		}
		reason, message, err := killOpts(args, 1, kwargs)
		if err != nil {
			return nil, err
		}
		n := 0
		var ids []any
		for _, x := range ss.realm.sessionsSnapshot() {
			if x != ss && pred(x, v) {
				s.kill(x, reason, message)
				n++
				if listKilled {
					ids = append(ids, x.id)
				}
			}
		}
		if listKilled {
			if ids == nil {
				ids = []any{}
			}
			return []any{ids}, nil
		}
		return []any{n}, nil
	}
}

func metaKillAll(s *Shard, ss *Session, args []any, kwargs map[string]any) ([]any, *metaErr) {
	reason, message, err := killOpts(args, 0, kwargs)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, x := range ss.realm.sessionsSnapshot() {
		if x != ss {
			s.kill(x, reason, message)
			n++
		}
	}
	return []any{n}, nil
}

// matchOption reads {"match": ...} from the optional options argument of
// the lookup procedures, args[i] or by keyword (metaOptArg: Crossbar.io's
// lookup(procedure, options=None) takes options=; before, given so it was
// ignored and the exact entry looked up, answered null for a prefix or
// wildcard one that exists).
func matchOption(args []any, i int, kwargs map[string]any) (proto.Match, *metaErr) {
	v, err := metaOptArg(args, i, kwargs, "options")
	if err != nil {
		return 0, err
	}
	if v == nil {
		return proto.MatchExact, nil
	}
	opts, ok := v.(map[string]any)
	if !ok {
		return 0, badArg("options must be a dictionary")
	}
	switch opts["match"] {
	case nil, "exact":
		return proto.MatchExact, nil
	case "prefix":
		return proto.MatchPrefix, nil
	case "wildcard":
		return proto.MatchWildcard, nil
	}
	return 0, badArg("options.match must be exact, prefix or wildcard")
}

func metaRegMatch(s *Shard, ss *Session, args []any, _ map[string]any) ([]any, *metaErr) {
	uri, ok := argStr(args, 0)
	if !ok {
		return nil, badArg("wamp.registration.match needs a procedure URI")
	}
	rm := ss.realm
	if !proto.ValidURI([]byte(uri), rm.conf().URICheck) || reserved([]byte(uri)) {
		// A CALL of it is refused before any registration is looked up
		// (invalid_uri; no_such_procedure for a "wamp." URI that is not
		// a meta procedure): a pattern that matches it (a wildcard's
		// empty component, a prefix "wamp") would not be invoked.
		return []any{nil}, nil
	}
	rm.mu.RLock()
	reg, found := rm.regs.best([]byte(uri))
	rm.mu.RUnlock()
	if !found || s.r.mesh == nil && !anyCalleeMay(s, rm, reg, uri) {
		return []any{nil}, nil
	}
	return []any{reg.id}, nil
}

// matchCalleesJudged bounds the callees anyCalleeMay asks the Authorizer
// about: a registration with more is taken as invocable.
const matchCalleesJudged = 16

// anyCalleeMay reports whether a callee of reg (on this node) may receive
// an invocation of uri, as mayInvoke judges it on the callee's loop:
// when none may, a CALL of uri fails not_authorized, and
// wamp.registration.match answers null (before, it named reg). Up to
// matchCalleesJudged callees, by their roles (static after the join),
// asking the Authorizer without their loops' caches; with more, true.
// Not on a mesh, whose other nodes' callees this node does not judge.
func anyCalleeMay(s *Shard, rm *Realm, reg *registration, uri string) bool {
	az := rm.conf().Authorizer
	l := reg.list()
	if az == nil || l.len() > matchCalleesJudged {
		return true
	}
	if reg.match == proto.MatchExact {
		uri = reg.uri
	}
	for c := range l.all() {
		if s.r.askAuthorize(az, rm.name, c.s.authRole, ActionRegister, uri) {
			return true
		}
	}
	return false
}

// matchDenied reports whether proc is wamp.registration.match and the
// caller's role may not call its URI, or wamp.subscription.match and the
// role may not subscribe to its topic: the answer is null, as for a URI
// a CALL is refused before any registration is looked up (not_authorized
// here), without a look-up and, on a mesh, without asking the other
// nodes. Before, the match named the pattern registration or the
// subscriptions that matched it: a role with no grant under a URI learnt
// which registrations and subscriptions reach it. Owned by ss's shard.
func matchDenied(ss *Session, proc string, args []any) bool {
	a := ActionCall
	switch proc {
	case "wamp.registration.match":
	case "wamp.subscription.match":
		a = ActionSubscribe
	default:
		return false
	}
	uri, _ := argStr(args, 0)
	return !ss.authorize(a, []byte(uri))
}

func metaNull(*Shard, *Session, []any, map[string]any) ([]any, *metaErr) { return []any{nil}, nil }

func (rm *Realm) regByIDLocked(id uint64) *registration {
	rm.mu.RLock()
	defer rm.mu.RUnlock()
	return rm.regByID[id]
}

// tabled is what the registration and subscription meta procedures share.
type tabled interface {
	comparable
	ident() uint64
	details() map[string]any
}

func (reg *registration) ident() uint64 { return reg.id }
func (sub *subscription) ident() uint64 { return sub.id }

func regTable(rm *Realm) *table[*registration] { return rm.regs }
func subTable(rm *Realm) *table[*subscription] { return rm.subs }

// Call with rm.mu held.
func regByID(rm *Realm, id uint64) (*registration, bool) { r, ok := rm.regByID[id]; return r, ok }
func subByID(rm *Realm, id uint64) (*subscription, bool) { s, ok := rm.subByID[id]; return s, ok }

// metaList implements wamp.registration.list and wamp.subscription.list:
// the ids by match policy, of the whole realm. Crossbar.io's take an
// optional session_id (by position or keyword) and list only that
// session's; it is refused with invalid_argument rather than honoured:
// the router keeps a session's registrations in its loop's table, and a
// walk of every registration's callees to find them would not be bounded
// by the walk budget. Before, it was ignored and the caller given the
// whole realm's list as if it were the session's.
const (
	metaListNoArgs = " takes no arguments: a session filter (Crossbar.io's session_id) is not supported"
	subLookupUsage = "wamp.subscription.lookup needs a topic URI"
	subMatchUsage  = "wamp.subscription.match needs a topic URI"
	regRemoveUsage = "wamp.registration.remove_callee needs a registration id and a callee session id" + idRange
	subRemoveUsage = "wamp.subscription.remove_subscriber needs a subscription id and a subscriber session id" + idRange
)

func metaList[E tabled](tab func(*Realm) *table[E], proc string) metaFn {
	return func(s *Shard, ss *Session, args []any, kwargs map[string]any) ([]any, *metaErr) {
		if v, err := metaOptArg(args, 0, kwargs, "session_id"); err != nil || v != nil || len(args) > 1 {
			return nil, badArg(proc + metaListNoArgs)
		}
		lists := [3][]uint64{{}, {}, {}}
		rm := ss.realm
		rm.mu.RLock()
		tab(rm).all(func(m proto.Match, e E) { lists[m] = append(lists[m], e.ident()) })
		rm.mu.RUnlock()
		return []any{map[string]any{"exact": lists[proto.MatchExact], "prefix": lists[proto.MatchPrefix], "wildcard": lists[proto.MatchWildcard]}}, nil
	}
}

// metaLookup implements the lookup procedures: the id for exactly this URI
// and match policy, or null.
func metaLookup[E tabled](tab func(*Realm) *table[E], usage string) metaFn {
	return func(s *Shard, ss *Session, args []any, kwargs map[string]any) ([]any, *metaErr) {
		uri, ok := argStr(args, 0)
		if !ok {
			return nil, badArg(usage)
		}
		match, err := matchOption(args, 1, kwargs)
		if err != nil {
			return nil, err
		}
		rm := ss.realm
		rm.mu.RLock()
		e, found := tab(rm).get(match, uri)
		rm.mu.RUnlock()
		if !found {
			return []any{nil}, nil
		}
		return []any{e.ident()}, nil
	}
}

// metaGet implements the get procedures.
func metaGet[E tabled](byID func(*Realm, uint64) (E, bool), noSuch, what string) metaFn {
	return func(s *Shard, ss *Session, args []any, _ map[string]any) ([]any, *metaErr) {
		id, ok := argID(args, 0)
		if !ok {
			return nil, badArg("needs a " + what + " id" + idRange)
		}
		rm := ss.realm
		rm.mu.RLock()
		e, found := byID(rm, id)
		rm.mu.RUnlock()
		if !found {
			return nil, &metaErr{noSuch, "no " + what + " " + strconv.FormatUint(id, 10)}
		}
		return []any{e.details()}, nil
	}
}

func metaRegCallees(count bool) metaFn {
	return func(s *Shard, ss *Session, args []any, _ map[string]any) ([]any, *metaErr) {
		id, ok := argID(args, 0)
		if !ok {
			return nil, badArg("needs a registration id" + idRange)
		}
		reg := ss.realm.regByIDLocked(id)
		if reg == nil {
			return nil, &metaErr{proto.URINoSuchRegistration, "no registration " + strconv.FormatUint(id, 10)}
		}
		l := reg.list()
		if count {
			return []any{l.len()}, nil
		}
		ids := make([]uint64, 0, l.len())
		for c := range l.all() {
			ids = append(ids, c.s.id)
		}
		return []any{ids}, nil
	}
}

func metaSubMatch(s *Shard, ss *Session, args []any, _ map[string]any) ([]any, *metaErr) {
	uri, ok := argStr(args, 0)
	if !ok {
		return nil, badArg(subMatchUsage)
	}
	rm := ss.realm
	if !proto.ValidURI([]byte(uri), rm.conf().URICheck) {
		// A PUBLISH to it is refused (invalid_uri) before any
		// subscription is looked up: a pattern that matches it (a prefix
		// "a." for "a..b", a wildcard's empty component) gets no event
		// of it. A "wamp." topic keeps its answer: the router's meta
		// events reach its subscriptions.
		return []any{nil}, nil
	}
	rm.mu.RLock()
	subs := rm.subs.matchAll([]byte(uri), nil)
	rm.mu.RUnlock()
	if len(subs) == 0 {
		return []any{nil}, nil
	}
	ids := make([]uint64, 0, len(subs))
	for _, sub := range subs {
		ids = append(ids, sub.id)
	}
	return []any{ids}, nil
}

func metaSubSubscribers(count bool) metaFn {
	return func(s *Shard, ss *Session, args []any, _ map[string]any) ([]any, *metaErr) {
		id, ok := argID(args, 0)
		if !ok {
			return nil, badArg("needs a subscription id" + idRange)
		}
		rm := ss.realm
		rm.mu.RLock()
		sub := rm.subByID[id]
		rm.mu.RUnlock()
		if sub == nil {
			return nil, &metaErr{proto.URINoSuchSubscription, "no subscription " + strconv.FormatUint(id, 10)}
		}
		set := sub.subscribers()
		if count {
			if set == nil {
				return []any{0}, nil
			}
			return []any{set.n}, nil
		}
		ids := []uint64{}
		if set != nil {
			for _, cs := range set.byShard {
				for _, c := range cs {
					for _, x := range c {
						ids = append(ids, x.id)
					}
				}
			}
		}
		return []any{ids}, nil
	}
}

// removeArgs reads the arguments of wamp.registration.remove_callee and
// wamp.subscription.remove_subscriber: the registration's (subscription's)
// id, the session's id and an optional reason, positional or the keyword
// argument "reason" (Crossbar.io takes it either way). The reason reaches
// the session in UNREGISTERED (UNSUBSCRIBED).Details.reason, which
// Autobahn|Python parses as a URI (message.py, Unregistered.parse: a
// reason that is not one fails the message): it must be one, as the kill
// procedures' reason is, and so is at most proto.MaxURILen bytes.
func removeArgs(args []any, kwargs map[string]any, usage string) (id, session uint64, reason string, err *metaErr) {
	id, ok := argID(args, 0)
	if ok {
		session, ok = argID(args, 1)
	}
	if !ok {
		return 0, 0, "", badArg(usage)
	}
	// Given both ways, refused as every meta procedure's optional
	// argument is (metaOptArg); before, the keyword was ignored.
	r, err := metaOptArg(args, 2, kwargs, "reason")
	if err != nil {
		return 0, 0, "", err
	}
	if r != nil {
		s, ok := r.(string)
		if !ok {
			return 0, 0, "", badArg("reason must be a URI")
		}
		if !proto.ValidURI([]byte(s), proto.URILoose) {
			return 0, 0, "", &metaErr{proto.URIInvalidURI, "reason must be a valid URI"}
		}
		reason = s
	}
	return id, session, reason, nil
}

// removeTarget finds the session a remove procedure names, among this
// node's sessions of the caller's realm (a session of another realm is
// never found), and the registration or subscription by id.
func removeTarget[E comparable](rm *Realm, byID func(*Realm, uint64) (E, bool), id, session uint64) (*Session, E, bool, *metaErr) {
	rm.mu.RLock()
	x := rm.members[session]
	e, found := byID(rm, id)
	rm.mu.RUnlock()
	if x == nil {
		// Checked first, as Crossbar.io does; on a mesh this answer from
		// a node means "not my session", and the session's node answers.
		var zero E
		return nil, zero, false, &metaErr{proto.URINoSuchSession, "no session " + strconv.FormatUint(session, 10)}
	}
	return x, e, found, nil
}

// metaRegRemoveCallee implements wamp.registration.remove_callee
// (registration|id, callee|id, reason|uri?): the session is taken off the
// registration as if it had sent UNREGISTER (registrationRemoved), on its
// own shard. It answers before that shard has done it (as the kill
// procedures do).
func metaRegRemoveCallee(s *Shard, ss *Session, args []any, kwargs map[string]any) ([]any, *metaErr) {
	id, session, reason, err := removeArgs(args, kwargs, regRemoveUsage)
	if err != nil {
		return nil, err
	}
	x, reg, found, err := removeTarget(ss.realm, regByID, id, session)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, &metaErr{proto.URINoSuchRegistration, "no registration " + strconv.FormatUint(id, 10)}
	}
	if !reg.list().has(x) {
		return nil, &metaErr{proto.URINoSuchRegistration, "session " + strconv.FormatUint(session, 10) + " is not a callee of registration " + strconv.FormatUint(id, 10)}
	}
	if !s.postRemoval(ss, task{kind: tRemoveReg, s: x, reg: reg, c: &carry{uri: reason}}) {
		s.removalsRefused(ss, "remove")
		return nil, removalsFull
	}
	return nil, nil
}

// metaSubRemoveSubscriber implements wamp.subscription.remove_subscriber
// (subscription|id, subscriber|id, reason|uri?), as metaRegRemoveCallee.
func metaSubRemoveSubscriber(s *Shard, ss *Session, args []any, kwargs map[string]any) ([]any, *metaErr) {
	id, session, reason, err := removeArgs(args, kwargs, subRemoveUsage)
	if err != nil {
		return nil, err
	}
	x, sub, found, err := removeTarget(ss.realm, subByID, id, session)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, &metaErr{proto.URINoSuchSubscription, "no subscription " + strconv.FormatUint(id, 10)}
	}
	if !sub.subscribers().has(x) {
		return nil, &metaErr{proto.URINoSuchSubscription, "session " + strconv.FormatUint(session, 10) + " is not a subscriber of subscription " + strconv.FormatUint(id, 10)}
	}
	if !s.postRemoval(ss, task{kind: tRemoveSub, s: x, subs: []*subscription{sub}, c: &carry{uri: reason}}) {
		s.removalsRefused(ss, "remove")
		return nil, removalsFull
	}
	return nil, nil
}

// maxRemoveBacklog bounds the bytes of the meta API's removals from this
// node's other shards waiting for one shard (Shard.removeBacklog), each
// counted its reason and removeOverhead: about 15,000 removals without a
// reason, 1,800 with a reason of 4 KiB. One owner's at most a quarter of
// it (removeFits).
const maxRemoveBacklog = 8 << 20

// removeOverhead is what a removal waiting for a shard holds besides its
// reason: its task in the mailbox, its carry and, for a subscription,
// the list holding it (~530 bytes measured, TestRemovalsForBusyLoopBounded).
const removeOverhead = 512

// removalsFull is the answer to a removal refused for its session's
// shard's backlog, or its caller's share of it.
var removalsFull = &metaErr{proto.URIUnavailable, "the session's event loop has as many removals waiting as it takes, or as many of this client's as it may (a quarter of them); retry later"}

// removalsRefused logs, once per session (bit 128 of wildLogged), that a
// removal ss asked for (what: "remove", a meta remove_callee or
// remove_subscriber; "force_reregister", the removals of the callees a
// REGISTER would replace) was refused for the bound of removals waiting
// for a busy loop or its owner's share of it (removeFits). Before, only
// the caller was told: nothing showed the router's operator one client
// filling its quarter of a loop's removals, nor whose removals, or
// REGISTERs, were refused for them (TestRemovalRefusalLogged).
func (s *Shard) removalsRefused(ss *Session, what string) {
	if ss.wildLogged&128 != 0 {
		return
	}
	ss.wildLogged |= 128
	s.r.log.Warn("refusing removals: a loop has as many removals waiting as it takes, or as many of this client's as it may (a quarter of them; logged once per session)",
		"what", what, "session", ss.id, "authid", ss.authID, "authrole", ss.authRole, "remote", ss.transport.RemoteAddr,
		"owner", logCut(ss.subscriptionOwner()), "limit", maxRemoveBacklog)
}

// postRemoval runs removal t (tRemoveReg, tRemoveSub), which ss asked
// for, on its session's shard: at once on this one, else through that
// shard's mailbox, within maxRemoveBacklog and ss's owner's share of it
// (removeFits; one removal always may wait), and reports whether it did.
// Before, removals waiting for a busy shard were not bounded: the
// session stays a callee (subscriber) there until the shard runs the
// removal, and 20,000 removals of it with a 4 KB reason held 86 MiB.
//
// A removal of the same session from the same registration (subscription)
// as one still waiting there posts nothing (Shard.removing): the waiting
// one takes the session off, with its reason, and this one is answered as
// a further kill of a session being killed is. Before, each repeat took
// its place within the bound, so that one caller repeating one removal
// without a reason 16,384 times while the shard was busy had every other
// removal of its sessions, any realm's operator's, refused
// (TestRepeatedRemovalLeavesRoomForOthers).
func (s *Shard) postRemoval(ss *Session, t task) bool {
	dst := t.s.shard
	if dst == s {
		s.run(&t)
		return true
	}
	k := removalKey(&t)
	n := int64(len(t.c.uri)) + removeOverhead
	owner := ss.subscriptionOwner()
	dst.removeMu.Lock()
	if _, waiting := dst.removing[k]; waiting {
		dst.removeMu.Unlock()
		return true
	}
	if !dst.removeFits(owner, n) {
		dst.removeMu.Unlock()
		return false
	}
	if dst.removing == nil {
		dst.removing = map[removeKey]string{}
	}
	dst.removing[k] = owner
	dst.removeMu.Unlock()
	t.b = uint64(n)
	dst.post(t)
	return true
}

// removeFits counts n more bytes of owner's removals waiting for s in
// removeBacklog, and in removeBy, and reports whether it did: not past
// maxRemoveBacklog, nor, for an owner other than "", past a quarter of
// it or what would then be left free, as the router's other shared
// bounds (testamentBudget.charge): owners that take all they may hold at
// most k/(k+1) of it between k of them. One removal always may wait.
// Before, the bound was every caller's: one authid removing its own
// sessions' 2,000 registrations and subscriptions with a 4 KB reason
// while their loop was busy took all of it, and every other removal of
// that loop's sessions, another realm's operator's, was refused
// (TestRemovalShareLeavesRoomForOthers). Under s.removeMu.
func (s *Shard) removeFits(owner string, n int64) bool {
	b := s.removeBacklog.Load()
	after := b + n
	o := s.removeBy[owner]
	if b > 0 && (after > maxRemoveBacklog || owner != "" && (o+n > maxRemoveBacklog/4 || o+n > maxRemoveBacklog-after)) {
		return false
	}
	s.removeBacklog.Add(n)
	if owner != "" {
		if s.removeBy == nil {
			s.removeBy = map[string]int64{}
		}
		s.removeBy[owner] = o + n
	}
	return true
}

// removeGone gives back n bytes of owner's that removeFits counted.
// Under s.removeMu.
func (s *Shard) removeGone(owner string, n int64) {
	s.removeBacklog.Add(-n)
	if owner == "" {
		return
	}
	if o := s.removeBy[owner] - n; o > 0 {
		s.removeBy[owner] = o
	} else {
		delete(s.removeBy, owner)
		if len(s.removeBy) == 0 {
			s.removeBy = nil // its buckets go with a burst's end
		}
	}
}

// removeKey names a removal waiting for its session's shard: the session
// and its registration (tRemoveReg) or subscription (tRemoveSub).
type removeKey struct {
	s   *Session
	reg *registration
	sub *subscription
}

func removalKey(t *task) removeKey {
	k := removeKey{s: t.s, reg: t.reg}
	if t.kind == tRemoveSub {
		k.sub = t.subs[0]
	}
	return k
}

// removalRun gives back what removal t, posted by postRemoval, held of
// the shard's backlog and its owner's share, and its place in
// Shard.removing, as the shard runs it. Owned by shard.
func (s *Shard) removalRun(t *task) {
	if t.b == 0 { // run inline by its own shard
		return
	}
	k := removalKey(t)
	s.removeMu.Lock()
	owner := s.removing[k]
	delete(s.removing, k)
	if len(s.removing) == 0 {
		s.removing = nil // its buckets go with a burst's end
	}
	s.removeGone(owner, int64(t.b))
	s.removeMu.Unlock()
}

// registrationRemoved carries out wamp.registration.remove_callee on the
// callee's shard: unless the session unregistered or left meanwhile, it
// leaves the registration as with UNREGISTER (the registration deleted
// with its last callee, on_unregister and on_delete announced, on a mesh
// the directory and a single registration's claim updated; invocations
// already delivered stay, and their results reach their callers), and a
// callee that announced registration_revocation is told with
// [UNREGISTERED, 0, {registration, reason}]. Others are not (WAMP
// Advanced Profile, Registration Revocation: the Dealer MUST NOT send it
// to them).
func (s *Shard) registrationRemoved(ss *Session, reg *registration, reason string) {
	if ss.state != stEstablished || ss.regs[reg.id].reg != reg {
		return
	}
	s.r.log.Debug("a callee was removed from a registration through the meta API", "session", ss.id, "procedure", reg.uri, "reason", reason)
	s.revokeRegistration(ss, reg, reason)
}

// subscriptionRemoved carries out wamp.subscription.remove_subscriber on
// the subscriber's shard, as registrationRemoved (the mesh interest in the
// topic withdrawn as by UNSUBSCRIBE; UNSUBSCRIBED to a subscriber that
// announced subscription_revocation).
func (s *Shard) subscriptionRemoved(ss *Session, sub *subscription, reason string) {
	if ss.state != stEstablished || ss.subs[sub.id].sub != sub {
		return
	}
	s.r.log.Debug("a subscriber was removed from a subscription through the meta API", "session", ss.id, "topic", sub.uri, "reason", reason)
	s.revokeSubscription(ss, sub, reason)
}
