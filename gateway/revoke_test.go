package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// metricValue returns the value of the /metrics sample whose name and
// labels are exactly series (e.g. `edgewamp_gateway_webhook_subscribed`
// or `x_total{webhook="a"}`), or "" when there is none.
func metricValue(t *testing.T, e *env, series string) string {
	t.Helper()
	_, body := e.do("GET", "/metrics", "")
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return v
		}
	}
	return ""
}

// metaIDs calls a meta procedure that answers an id, a list of ids or null (e.g.
// wamp.subscription.match) and returns them as a list.
func metaIDs(t *testing.T, c *client.Session, proc string, args ...any) []any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.Call(ctx, proc, args, nil, nil)
	if err != nil {
		t.Fatalf("%s: %v", proc, err)
	}
	if len(res.Args) == 0 || res.Args[0] == nil {
		return nil
	}
	if l, ok := res.Args[0].([]any); ok {
		return l
	}
	return []any{res.Args[0]}
}

// stays checks, for d, that cond stays false.
func staysFalse(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cond() {
			t.Fatal(what)
		}
	}
}

// TestWebhookRemovedStaysRemovedUntilReload: wamp.subscription.
// remove_subscriber on a webhook's subscription. The webhook's session
// did not announce subscription_revocation, so the router took the
// subscription away without a word and the webhook received nothing more
// until its session happened to be reopened. Now it is told: it logs and
// counts the removal, leaves the subscription alone (subscribing again at
// once would undo the removal) and subscribes again on the next
// configuration reload.
func TestWebhookRemovedStaysRemovedUntilReload(t *testing.T) {
	laneFree(t)
	tgt := newWebhookTarget(t, "")
	e := newEnv(t, func(o *Options) {
		o.Webhooks = []Webhook{{Name: "alerts", Realm: "realm1", Topic: "com.alert", URL: tgt.srv.URL}}
	})
	admin := e.dial("realm1", proto.JSON)
	subscribed := func() bool { return len(metaIDs(t, admin, "wamp.subscription.match", "com.alert")) > 0 }
	waitFor(t, "the webhook's subscription", subscribed)
	waitFor(t, "the subscribed gauge", func() bool { return metricValue(t, e, "edgewamp_gateway_webhook_subscribed") == "1" })
	sub := metaIDs(t, admin, "wamp.subscription.match", "com.alert")[0]
	subscribers := metaIDs(t, admin, "wamp.subscription.list_subscribers", sub)
	if len(subscribers) != 1 {
		t.Fatalf("subscribers %v", subscribers)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := admin.Call(ctx, "wamp.subscription.remove_subscriber", []any{sub, subscribers[0], "com.example.removed_by_operator"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	wm := webhookMetricsOf(e, "alerts")
	waitFor(t, "the removal counted", func() bool { return wm.revoked.Load() == 1 })
	if v := metricValue(t, e, `edgewamp_gateway_webhook_revoked_total{webhook="alerts"}`); v != "1" {
		t.Fatalf("edgewamp_gateway_webhook_revoked_total = %q", v)
	}
	if v := metricValue(t, e, "edgewamp_gateway_webhook_subscribed"); v != "0" {
		t.Fatalf("edgewamp_gateway_webhook_subscribed = %q after the removal", v)
	}
	// Past the runner's first backoff (500 ms): not subscribed again.
	staysFalse(t, 1500*time.Millisecond, "the webhook subscribed again right after the router removed it", subscribed)

	e.gw.SetRealms(e.gw.opts.Realms) // what a configuration reload does
	waitFor(t, "the webhook subscribed again after the reload", subscribed)
	waitFor(t, "the subscribed gauge", func() bool { return metricValue(t, e, "edgewamp_gateway_webhook_subscribed") == "1" })
	if err := admin.Publish(ctx, "com.alert", []any{"again"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case hit := <-tgt.got:
		if hit.body["args"].([]any)[0] != "again" {
			t.Fatalf("delivery %+v", hit)
		}
	case <-ctx.Done():
		t.Fatal("no delivery after the reload")
	}
}

// TestHTTPCalleeRemovedStaysRemovedUntilReload: as the webhook's, for
// wamp.registration.remove_callee on an HTTP callee; a registration lost
// to another node of a mesh (reason procedure_already_exists) is taken
// back after the backoff, as it was when the router ended the session for
// it.
func TestHTTPCalleeRemovedStaysRemovedUntilReload(t *testing.T) {
	laneFree(t)
	up := newCalleeUpstream(t)
	e := newEnv(t, func(o *Options) {
		o.Callees = []Callee{{Realm: "realm1", Procedure: "com.weather", URL: up.srv.URL}}
	})
	admin := e.dial("realm1", proto.JSON)
	registered := func() bool { return len(metaIDs(t, admin, "wamp.registration.match", "com.weather")) > 0 }
	// callee names the registration and its callee's session, if any
	// (the registration may go between the two meta calls).
	callee := func() (reg, sess any, ok bool) {
		regs := metaIDs(t, admin, "wamp.registration.match", "com.weather")
		if len(regs) == 0 {
			return nil, nil, false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := admin.Call(ctx, "wamp.registration.list_callees", []any{regs[0]}, nil, nil)
		if err != nil || len(res.Args) == 0 {
			return nil, nil, false
		}
		if l, _ := res.Args[0].([]any); len(l) == 1 {
			return regs[0], l[0], true
		}
		return nil, nil, false
	}
	remove := func(reason string) any {
		t.Helper()
		reg, sess, ok := callee()
		if !ok {
			t.Fatal("no callee to remove")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := admin.Call(ctx, "wamp.registration.remove_callee", []any{reg, sess, reason}, nil, nil); err != nil {
			t.Fatal(err)
		}
		return sess
	}
	waitFor(t, "the callee's registration", registered)
	waitFor(t, "the registered gauge", func() bool { return metricValue(t, e, "edgewamp_gateway_callee_registered") == "1" })

	// The removal is answered before it is carried out (README): wait for
	// the registration of another session, not for "registered".
	gone := remove(proto.URIProcedureAlreadyExists)
	waitFor(t, "registered again after a mesh conflict", func() bool {
		_, sess, ok := callee()
		return ok && sess != gone
	})
	if v := metricValue(t, e, `edgewamp_gateway_callee_revoked_total{callee="com.weather"}`); v != "0" {
		t.Fatalf("a mesh conflict counted as a removal: %q", v)
	}

	remove("com.example.removed_by_operator")
	waitFor(t, "the removal counted", func() bool {
		return metricValue(t, e, `edgewamp_gateway_callee_revoked_total{callee="com.weather"}`) == "1"
	})
	if v := metricValue(t, e, "edgewamp_gateway_callee_registered"); v != "0" {
		t.Fatalf("edgewamp_gateway_callee_registered = %q after the removal", v)
	}
	staysFalse(t, 1500*time.Millisecond, "the callee registered again right after the router removed it", registered)

	e.gw.SetRealms(e.gw.opts.Realms)
	waitFor(t, "registered again after the reload", registered)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := admin.Call(ctx, "com.weather", []any{"Sion"}, nil, nil)
	if err != nil || res.Args[0].(map[string]any)["city"] != "Sion" {
		t.Fatalf("call after the reload: %+v %v", res, err)
	}
}

// revocableVerifier accepts "tok-<id>" as alice/user on realm1, with
// revocation id <id>. A token revoked (revoke) or withdrawn (withdraw:
// what a reload that takes its client or role away does) is refused by
// Withdrawn only, as a token verified just before is.
type revocableVerifier struct {
	mu        sync.Mutex
	withdrawn map[string]string // id → why
}

func newRevocableVerifier() *revocableVerifier {
	return &revocableVerifier{withdrawn: map[string]string{}}
}

func (v *revocableVerifier) VerifyBearer(_ context.Context, token string) (*Principal, error) {
	id, ok := strings.CutPrefix(token, "tok-")
	if !ok {
		return nil, errors.New("not a token")
	}
	return &Principal{Realm: "realm1", AuthID: "alice", AuthRole: "user", Token: id}, nil
}

func (v *revocableVerifier) RevocationIDs(p *Principal) []string { return []string{p.Token.(string)} }

func (v *revocableVerifier) Withdrawn(p *Principal) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.withdrawn[p.Token.(string)]
}

func (v *revocableVerifier) revoke(id string) { v.withdraw(id, "the token was revoked") }

func (v *revocableVerifier) withdraw(id, why string) {
	v.mu.Lock()
	v.withdrawn[id] = why
	v.mu.Unlock()
}

// TestSSEEndsWhenBearerRevoked: RevokeBearer ends the streams of the
// tokens it names (with a problem event), not others; a token revoked
// between its verification and its stream's start is refused (401).
func TestSSEEndsWhenBearerRevoked(t *testing.T) {
	laneFree(t)
	v := newRevocableVerifier()
	e := newEnv(t, func(o *Options) {
		o.Bearer = v
		o.Realms[0].Anonymous = false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, gone := e.stream(ctx, "GET", "/wamp/realm1/events/com.news", "", "Authorization", "Bearer tok-a")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	resp, stays := e.stream(ctx, "GET", "/wamp/realm1/events/com.news", "", "Authorization", "Bearer tok-b")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	e.gw.RevokeBearer([]string{"a"}) // not revoked yet (Revoked says no): stays
	v.revoke("a")
	e.gw.RevokeBearer([]string{"a", "c"})
	ended := make(chan string, 1)
	go func() {
		for {
			ev, err := gone.next()
			if err != nil {
				ended <- "" // no problem event
				return
			}
			if ev.event == "problem" {
				ended <- ev.data
				return
			}
		}
	}()
	select {
	case data := <-ended:
		if !strings.Contains(data, "revoked") {
			t.Fatalf("problem event %q", data)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream of a revoked token stays open")
	}
	if r, body := e.do("POST", "/wamp/realm1/publish/com.news", `{"args":["b"]}`, "Authorization", "Bearer tok-b"); r.StatusCode/100 != 2 {
		t.Fatalf("publish %d %s", r.StatusCode, body)
	}
	if ev, err := stays.next(); err != nil || !strings.Contains(ev.data, `"b"`) {
		t.Fatalf("the other token's stream: %+v %v", ev, err)
	}
	// Verified (the verifier says yes) but revoked by the time the stream
	// opens.
	r, body := e.do("GET", "/wamp/realm1/events/com.news", "", "Authorization", "Bearer tok-a")
	expectProblem(t, r, body, 401, proto.URIAuthenticationFailed)
	// Only b's id stays indexed: neither the refused request nor a's
	// ended stream leaves a's. (a's stream lets its grant go when its
	// handler returns, which may come after its client read the problem
	// event: a CI run under load counted 2 here, read at once.)
	waitFor(t, "only b's revocation id to stay indexed", func() bool { _, n := watched(e); return n == 1 })
}

// TestWebhookRevokedByReload: a reload whose roles no longer let the
// webhook's role subscribe to its topic takes the subscription away
// (route's revokeUnauthorized, reason wamp.error.not_authorized). The
// webhook is told and counts it; a later reload that grants it again
// subscribes it again.
func TestWebhookRevokedByReload(t *testing.T) {
	laneFree(t)
	tgt := newWebhookTarget(t, "")
	e := newEnv(t, func(o *Options) {
		o.Webhooks = []Webhook{{Name: "sec", Realm: "secure", Topic: "com.pub.alert", URL: tgt.srv.URL, Role: "svc"}}
	})
	wm := webhookMetricsOf(e, "sec")
	waitFor(t, "the webhook subscribed", func() bool { return metricValue(t, e, "edgewamp_gateway_webhook_subscribed") == "1" })
	realm1 := route.RealmConfig{Name: "realm1", Anonymous: true}
	withSvc := func(subscribe bool) route.RealmConfig {
		z, err := route.NewRBAC([]route.Role{{Name: "svc", Permissions: []route.Permission{{URI: "", Match: proto.MatchPrefix, Call: true, Register: true, Publish: true, Subscribe: subscribe}}}})
		if err != nil {
			t.Fatal(err)
		}
		return route.RealmConfig{Name: "secure", Authorizer: z, Anonymous: true, AnonymousRole: "svc"}
	}
	if err := e.r.Reload([]route.RealmConfig{realm1, withSvc(false)}); err != nil {
		t.Fatal(err)
	}
	e.gw.SetRealms(e.gw.opts.Realms) // as cmd's reload does after the router's
	waitFor(t, "the revocation counted", func() bool { return wm.revoked.Load() == 1 })
	waitFor(t, "the subscribed gauge", func() bool { return metricValue(t, e, "edgewamp_gateway_webhook_subscribed") == "0" })

	if err := e.r.Reload([]route.RealmConfig{realm1, withSvc(true)}); err != nil {
		t.Fatal(err)
	}
	e.gw.SetRealms(e.gw.opts.Realms)
	waitFor(t, "subscribed again after the reload that grants it", func() bool {
		return metricValue(t, e, "edgewamp_gateway_webhook_subscribed") == "1"
	})
}

// countingHandler counts the log records whose message starts with one
// of prefix.
type countingHandler struct {
	slog.Handler
	prefix []string
	n      []atomic.Int64
}

func newCountingHandler(prefix ...string) *countingHandler {
	return &countingHandler{Handler: testLogger().Handler(), prefix: prefix, n: make([]atomic.Int64, len(prefix))}
}

func (h *countingHandler) Handle(ctx context.Context, r slog.Record) error {
	for i, p := range h.prefix {
		if strings.HasPrefix(r.Message, p) {
			h.n[i].Add(1)
		}
	}
	return h.Handler.Handle(ctx, r)
}

// An HTTP callee or a webhook whose role may not register or subscribe
// tried again every backoff (up to 30 s), logging an error each time,
// though only a configuration reload can change a grant. It now tries
// once and waits for the next reload, then succeeds if that grants it.
func TestRefusedCalleeAndWebhookWaitForReload(t *testing.T) {
	laneFree(t)
	tgt := newWebhookTarget(t, "")
	up := newCalleeUpstream(t)
	logs := newCountingHandler("gateway: HTTP callee cannot register", "gateway: webhook cannot subscribe")
	e := newEnv(t, func(o *Options) {
		o.Logger = slog.New(logs)
		o.Callees = []Callee{{Realm: "secure", Procedure: "com.weather", URL: up.srv.URL, Role: "svc"}}
		o.Webhooks = []Webhook{{Name: "sec", Realm: "secure", Topic: "com.pub.alert", URL: tgt.srv.URL, Role: "svc"}}
	})
	realm1 := route.RealmConfig{Name: "realm1", Anonymous: true}
	svc := func(granted bool) route.RealmConfig {
		z, err := route.NewRBAC([]route.Role{{Name: "svc", Permissions: []route.Permission{{URI: "", Match: proto.MatchPrefix, Call: true, Publish: true, Register: granted, Subscribe: granted}}}})
		if err != nil {
			t.Fatal(err)
		}
		return route.RealmConfig{Name: "secure", Authorizer: z, Anonymous: true, AnonymousRole: "svc"}
	}
	waitFor(t, "both in place", func() bool {
		return metricValue(t, e, "edgewamp_gateway_callee_registered") == "1" && metricValue(t, e, "edgewamp_gateway_webhook_subscribed") == "1"
	})
	// A reload takes both grants away: both are removed, and at most one
	// attempt each follows (the same reload may wake them), refused.
	if err := e.r.Reload([]route.RealmConfig{realm1, svc(false)}); err != nil {
		t.Fatal(err)
	}
	e.gw.SetRealms(e.gw.opts.Realms)
	waitFor(t, "both removed", func() bool {
		return metricValue(t, e, "edgewamp_gateway_callee_registered") == "0" && metricValue(t, e, "edgewamp_gateway_webhook_subscribed") == "0"
	})
	// Past the backoffs of 0.5, 1 and 2 s: no further attempt.
	time.Sleep(4 * time.Second)
	for i, p := range logs.prefix {
		if n := logs.n[i].Load(); n > 1 {
			t.Errorf("%q logged %d times in 4 s: retried without a reload", p, n)
		}
	}
	before := [2]int64{logs.n[0].Load(), logs.n[1].Load()}
	// A reload that still does not grant them: one more attempt each.
	e.gw.SetRealms(e.gw.opts.Realms)
	waitFor(t, "one attempt each after the reload", func() bool {
		return logs.n[0].Load() == before[0]+1 && logs.n[1].Load() == before[1]+1
	})
	time.Sleep(2 * time.Second)
	if a, b := logs.n[0].Load(), logs.n[1].Load(); a != before[0]+1 || b != before[1]+1 {
		t.Errorf("after one reload: %d and %d attempts, want %d and %d", a, b, before[0]+1, before[1]+1)
	}
	// A reload that grants them: both in place again.
	if err := e.r.Reload([]route.RealmConfig{realm1, svc(true)}); err != nil {
		t.Fatal(err)
	}
	e.gw.SetRealms(e.gw.opts.Realms)
	waitFor(t, "both in place after the reload that grants them", func() bool {
		return metricValue(t, e, "edgewamp_gateway_callee_registered") == "1" && metricValue(t, e, "edgewamp_gateway_webhook_subscribed") == "1"
	})
}

// TestHTTPCalleeStandsBy: an HTTP callee whose single registration another
// session holds (a client here; on a mesh, the same callee on another node
// that runs the same configuration) stands by: it logs that once, counts in
// edgewamp_gateway_callee_standby, tries again every second on the same
// session (no join and leave per try), and takes over within about a
// second of the holder's leaving. Before, each try logged an error and
// opened a new session, and the tries backed off to 30 s: after the holder
// had kept the procedure for 8 s the callee took it 4 to 8 s after it was
// free.
func TestHTTPCalleeStandsBy(t *testing.T) {
	laneFree(t)
	var logs lockedBuf
	up := newCalleeUpstream(t)
	e := newEnv(t, func(o *Options) { o.Logger = logs.logger() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := e.dial("realm1", proto.JSON)
	var joins atomic.Int64
	if _, err := admin.Subscribe(ctx, "wamp.session.on_join", func(*client.Event) { joins.Add(1) }, nil); err != nil {
		t.Fatal(err)
	}
	holder := e.dial("realm1", proto.JSON)
	e.register(holder, "com.weather", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"holder"}}, nil
	})
	reloadRunners(t, e, []Callee{{Realm: "realm1", Procedure: "com.weather", URL: up.srv.URL}}, nil)
	waitFor(t, "the standby gauge", func() bool { return metricValue(t, e, "edgewamp_gateway_callee_standby") == "1" })
	// The holder's join and the callee's session's, once: the latter's
	// on_join event can reach admin after the gauge reads 1 (a full
	// suite's run read 1 join fewer here, then counted it as one more).
	waitFor(t, "the holder's and the callee's on_join", func() bool { return joins.Load() >= 2 })
	joined := joins.Load()
	time.Sleep(8 * time.Second)
	if n := strings.Count(logs.String(), "HTTP callee standing by"); n != 1 {
		t.Fatalf("%d standby lines in 8 s, want 1:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "HTTP callee cannot register") {
		t.Fatalf("standing by logged errors:\n%s", logs.String())
	}
	if n := joins.Load() - joined; n != 0 {
		t.Fatalf("%d sessions joined while the callee stood by, want none (it tries on its session)", n)
	}
	if v := metricValue(t, e, "edgewamp_gateway_callee_registered"); v != "0" {
		t.Fatalf("edgewamp_gateway_callee_registered = %q while standing by", v)
	}
	left := time.Now()
	holder.Close()
	waitWithin(t, 2500*time.Millisecond, "the callee taking over", func() bool {
		res, err := admin.Call(ctx, "com.weather", []any{"Sion"}, nil, nil)
		if err != nil {
			return false
		}
		m, _ := res.Args[0].(map[string]any)
		return m["city"] == "Sion"
	})
	t.Logf("took over %v after the holder left", time.Since(left).Round(time.Millisecond))
	if v := metricValue(t, e, "edgewamp_gateway_callee_standby"); v != "0" {
		t.Fatalf("edgewamp_gateway_callee_standby = %q after taking over", v)
	}
	if !strings.Contains(logs.String(), "HTTP callee took over the procedure's registration after standing by") {
		t.Fatalf("no line for the take-over:\n%s", logs.String())
	}
}

// A callee standing by stops at once when a reload removes it: the reload
// does not wait for its next try, and it leaves its session.
func TestHTTPCalleeStandbyRemovedByReload(t *testing.T) {
	laneFree(t)
	up := newCalleeUpstream(t)
	e := newEnv(t, nil)
	holder := e.dial("realm1", proto.JSON)
	e.register(holder, "com.weather", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"holder"}}, nil
	})
	admin := e.dial("realm1", proto.JSON)
	count := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := admin.Call(ctx, "wamp.session.count", nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseInt(fmt.Sprint(res.Args[0]), 10, 64)
		if err != nil {
			t.Fatalf("wamp.session.count: %v", res.Args)
		}
		return n
	}
	before := count()
	reloadRunners(t, e, []Callee{{Realm: "realm1", Procedure: "com.weather", URL: up.srv.URL}}, nil)
	waitFor(t, "the standby gauge", func() bool { return metricValue(t, e, "edgewamp_gateway_callee_standby") == "1" })
	if n := count(); n != before+1 {
		t.Fatalf("%d sessions while the callee stands by, want %d (its own)", n, before+1)
	}
	start := time.Now()
	reloadRunners(t, e, nil, nil)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the reload that removed the standby callee took %v", d)
	}
	waitFor(t, "the standby callee's session to leave", func() bool { return count() == before })
	if v := metricValue(t, e, "edgewamp_gateway_callee_standby"); v != "0" {
		t.Fatalf("edgewamp_gateway_callee_standby = %q after the callee was removed", v)
	}
}

// TestHTTPCalleeStandsByOtherPolicy: an HTTP callee whose procedure
// clients hold shared with another invocation policy is refused
// wamp.error.procedure_exists_with_different_invocation_policy (before,
// procedure_already_exists): it stands by as it does for a single
// registration held (logged once, saying so, counted in the standby
// gauge, no error lines), and takes the procedure over once the other
// policy's callees left: a reload that changes a callee's invoke reaches
// a mesh's nodes one by one, and the old policy's callees go.
func TestHTTPCalleeStandsByOtherPolicy(t *testing.T) {
	laneFree(t)
	var logs lockedBuf
	up := newCalleeUpstream(t)
	e := newEnv(t, func(o *Options) { o.Logger = logs.logger() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := e.dial("realm1", proto.JSON)
	holder := e.dial("realm1", proto.JSON)
	reg, err := holder.Register(ctx, "com.weather", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"holder"}}, nil
	}, &client.RegisterOptions{Invoke: "roundrobin"})
	if err != nil {
		t.Fatal(err)
	}
	reloadRunners(t, e, []Callee{{Realm: "realm1", Procedure: "com.weather", URL: up.srv.URL, Invoke: "random"}}, nil)
	waitFor(t, "the standby gauge", func() bool { return metricValue(t, e, "edgewamp_gateway_callee_standby") == "1" })
	time.Sleep(1500 * time.Millisecond) // a try or two more
	if n := strings.Count(logs.String(), "HTTP callee standing by: other sessions hold the procedure with another invocation policy"); n != 1 {
		t.Fatalf("%d standby lines naming the policy, want 1:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "HTTP callee cannot register") {
		t.Fatalf("standing by logged errors:\n%s", logs.String())
	}
	if err := holder.Unregister(ctx, reg); err != nil {
		t.Fatal(err)
	}
	waitWithin(t, 2500*time.Millisecond, "the callee taking over", func() bool {
		res, err := admin.Call(ctx, "com.weather", []any{"Sion"}, nil, nil)
		if err != nil {
			return false
		}
		m, _ := res.Args[0].(map[string]any)
		return m["city"] == "Sion"
	})
	if v := metricValue(t, e, "edgewamp_gateway_callee_standby"); v != "0" {
		t.Fatalf("edgewamp_gateway_callee_standby = %q after taking over", v)
	}
}

// TestHTTPCalleeLostPolicyConflictRegistersAgain: a registration conflict
// lost to another node of a mesh whose registration is shared with
// another policy is revoked with
// wamp.error.procedure_exists_with_different_invocation_policy (route's
// TestMeshPolicyConflictRevokedWithItsURI); the HTTP callee takes it as it
// takes procedure_already_exists: not an operator's removal (not counted,
// no wait for a reload), it registers again after its backoff. Simulated
// here with remove_callee and that reason, as the webhook's lock test
// does.
func TestHTTPCalleeLostPolicyConflictRegistersAgain(t *testing.T) {
	laneFree(t)
	var logs lockedBuf
	up := newCalleeUpstream(t)
	e := newEnv(t, func(o *Options) { o.Logger = logs.logger() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := e.dial("realm1", proto.JSON)
	reloadRunners(t, e, []Callee{{Name: "weather", Realm: "realm1", Procedure: "com.weather", URL: up.srv.URL, Invoke: "roundrobin"}}, nil)
	waitFor(t, "the callee registered", func() bool { return metricValue(t, e, "edgewamp_gateway_callee_registered") == "1" })
	regs := metaIDs(t, admin, "wamp.registration.match", "com.weather")
	if len(regs) != 1 {
		t.Fatalf("the callee's registration: %v", regs)
	}
	callees := metaIDs(t, admin, "wamp.registration.list_callees", regs[0])
	if len(callees) != 1 {
		t.Fatalf("the registration's callees: %v", callees)
	}
	if _, err := admin.Call(ctx, "wamp.registration.remove_callee", []any{regs[0], callees[0], proto.URIProcedureExistsInvocationPolicyConflict}, nil, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the line for the registration lost", func() bool {
		return strings.Contains(logs.String(), "HTTP callee's registration went to another node of the mesh; registering again")
	})
	waitFor(t, "the callee registered again", func() bool {
		res, err := admin.Call(ctx, "com.weather", []any{"Sion"}, nil, nil)
		if err != nil {
			return false
		}
		m, _ := res.Args[0].(map[string]any)
		return m["city"] == "Sion"
	})
	if v := metricValue(t, e, `edgewamp_gateway_callee_revoked_total{callee="weather"}`); v != "0" {
		t.Fatalf("the lost conflict counted as a removal: %q", v)
	}
}
