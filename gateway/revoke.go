package gateway

import (
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// The router may take an HTTP callee's registration or a webhook's
// subscription away without closing its session: wamp.registration.
// remove_callee, wamp.subscription.remove_subscriber, a reload that no
// longer grants the role the URI, a registration conflict lost to another
// node of a mesh. The pinned sessions announce registration_revocation and
// subscription_revocation, so the router tells them ([UNREGISTERED, 0,
// {registration, reason}], [UNSUBSCRIBED, 0, {subscription, reason}]).
// Before, it did not: a webhook stopped receiving, or a procedure stopped
// being served, until the session happened to be reopened, and nothing
// said so.
//
// A removal is honoured: the runner logs it, counts it
// (edgewamp_gateway_{webhook,callee}_revoked_total), leaves its session
// and waits for the next configuration reload (Server.SetRealms) before it
// subscribes or registers again. Doing so at once would undo what an
// operator (or a reload) just did. A mesh conflict
// (wamp.error.procedure_already_exists, or
// wamp.error.procedure_exists_with_different_invocation_policy when the
// winner is a shared registration of another policy) is not an
// operator's decision: the callee registers again after its backoff, as
// it did when the router ended its session for it.

// revocation is one removal, as the runner learns it.
type revocation struct {
	reason string
	reload <-chan struct{} // closed by the first configuration reload after the removal
}

// revokeNotice returns a pinned session's onRevoke: it hands the removal
// to ch (buffered, one) without blocking. It runs on the shard's
// goroutine; reloadMu is a leaf lock.
func (g *Server) revokeNotice(ch chan<- revocation) func(*sess, string) {
	return func(_ *sess, reason string) {
		select {
		case ch <- revocation{reason: reason, reload: g.nextReload()}:
		default:
		}
	}
}

// replacedByReload reports, for runner r (a *calleeRunner or
// *webhookRunner) whose registration or subscription the router just
// took away, whether a reload under way stops it: one Prepared, whose
// Apply removes or changes r. cmd's reload has the router revoke what
// the new roles no longer grant (r.Reload) between Prepare and Apply, so
// a callee or webhook the reload changes, with its old role's grant
// taken away, heard of the revocation before Apply replaced it. It
// logged "stays unregistered until the configuration is reloaded" and
// counted a removal though its replacement was registered at once. It
// now waits for that Apply (at most syncWait, for a Prepared never
// applied nor discarded) and reports true when it was stopped: the
// revocation was the reload's, not a removal to report.
func (g *Server) replacedByReload(r any, stop <-chan struct{}) bool {
	p := g.pending.Load()
	if p == nil || !p.retires[r] {
		return false
	}
	t := time.NewTimer(g.syncWait)
	defer t.Stop()
	select {
	case <-stop:
		return true
	case <-p.done:
	case <-t.C:
	}
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// retriedRevocation reports whether a removal is one the runner undoes
// after its backoff, as when its session closes: a registration conflict
// lost to another node of a mesh.
func retriedRevocation(reason string) bool {
	return reason == proto.URIProcedureAlreadyExists || reason == proto.URIProcedureExistsInvocationPolicyConflict
}

// refusedUntilReload reports whether the router's refusal of a pinned
// session's join, REGISTER or SUBSCRIBE holds until the configuration
// changes: grants, roles and realms change only with a reload (an
// Authorizer is pure), so trying again every backoff only logged an error
// every 30 s.
func refusedUntilReload(uri string) bool {
	switch uri {
	case proto.URINotAuthorized, proto.URINoSuchRole, proto.URINoSuchRealm:
		return true
	}
	return false
}

// retryWhen says, for a log line, when a refused join, REGISTER or
// SUBSCRIBE is tried again.
func retryWhen(uri string, backoff time.Duration) string {
	if refusedUntilReload(uri) {
		return "after a configuration reload"
	}
	return "in " + backoff.String()
}

// awaitReload waits, after a removal, for the next configuration reload
// (true) or the runner's stop (false).
func awaitReload(rv revocation, stop <-chan struct{}) bool {
	select {
	case <-rv.reload:
		return true
	case <-stop:
		return false
	}
}

// sleepOrStop waits d, or returns false when stop closes first.
func sleepOrStop(d time.Duration, stop <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}
