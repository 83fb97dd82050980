package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
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

// The HTTP callees and webhooks replaced by a configuration reload
// (runners.go). Before, they were built once, at New: a callee or webhook
// added, removed or changed took a restart, which dropped every client.

// logger is a gateway logger writing to l.
func (l *lockedBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// tagUpstream is an HTTP callee's upstream that answers its tag. A call
// whose first argument is "hold" is held until release is closed or its
// request ends.
type tagUpstream struct {
	srv      *httptest.Server
	release  chan struct{}
	held     atomic.Int64 // requests being held
	canceled atomic.Int64 // held requests whose context ended
}

func newTagUpstream(t *testing.T, tag string) *tagUpstream {
	u := &tagUpstream{release: make(chan struct{})}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Args []any `json:"args"`
		}
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &in)
		if len(in.Args) > 0 && in.Args[0] == "hold" {
			u.held.Add(1)
			defer u.held.Add(-1)
			select {
			case <-u.release:
			case <-r.Context().Done():
				u.canceled.Add(1)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`"` + tag + `"`))
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// reloadRunners prepares and applies an update that keeps e's realms,
// keys and routes, with the callees cs and the webhooks ws.
func reloadRunners(t testing.TB, e *env, cs []Callee, ws []Webhook) Changes {
	t.Helper()
	p, err := e.gw.Prepare(Update{Realms: e.gw.opts.Realms, APIKeys: e.gw.opts.APIKeys, SigningKeys: e.gw.opts.SigningKeys, Routes: e.gw.opts.Routes,
		Callees: cs, Webhooks: ws})
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return e.gw.Apply(p)
}

// calleeSessions returns the sessions of the registration of proc (none
// when it is not registered, or goes between the two meta calls).
func calleeSessions(t *testing.T, c *client.Session, proc string) []any {
	t.Helper()
	return metaMembers(t, c, "wamp.registration.match", "wamp.registration.list_callees", proc)
}

// subscriberSessions is calleeSessions for a topic's subscription.
func subscriberSessions(t *testing.T, c *client.Session, topic string) []any {
	t.Helper()
	return metaMembers(t, c, "wamp.subscription.match", "wamp.subscription.list_subscribers", topic)
}

func metaMembers(t *testing.T, c *client.Session, match, list, uri string) []any {
	t.Helper()
	ids := metaIDs(t, c, match, uri)
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.Call(ctx, list, []any{ids[0]}, nil, nil)
	var we *client.Error
	switch {
	case errors.As(err, &we) && (we.URI == proto.URINoSuchRegistration || we.URI == proto.URINoSuchSubscription):
		return nil
	case err != nil:
		t.Fatalf("%s: %v", list, err)
	}
	if len(res.Args) == 0 {
		return nil
	}
	l, _ := res.Args[0].([]any)
	return l
}

// callTag calls proc with args and returns the tag it answers.
func callTag(c *client.Session, proc string, args ...any) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.Call(ctx, proc, args, nil, nil)
	if err != nil {
		return "", err
	}
	if len(res.Args) != 1 {
		return "", fmt.Errorf("result %+v", res)
	}
	s, _ := res.Args[0].(string)
	return s, nil
}

func changeStrings(c RunnerChanges) string {
	return fmt.Sprintf("added %s, removed %s, changed %s", c.added, c.removed, c.changed)
}

// TestCalleeReloadAddRemoveChange: Apply adds, removes and replaces HTTP
// callees and leaves an unchanged one alone. A removed callee is
// unregistered before Apply returns, a changed one (invoke single)
// registers anew without meeting its old registration, and the calls
// they were serving finish with their upstream's answer.
func TestCalleeReloadAddRemoveChange(t *testing.T) {
	laneFree(t)
	v1, v2 := newTagUpstream(t, "v1"), newTagUpstream(t, "v2")
	logs := &lockedBuf{}
	keep := Callee{Realm: "realm1", Procedure: "com.keep", URL: v1.srv.URL}
	gone := Callee{Realm: "realm1", Procedure: "com.gone", URL: v1.srv.URL, Timeout: 20 * time.Second}
	change := Callee{Realm: "realm1", Procedure: "com.change", URL: v1.srv.URL, Timeout: 20 * time.Second}
	e := newEnv(t, func(o *Options) {
		o.Logger = logs.logger()
		o.Callees = []Callee{keep, gone, change}
	})
	admin := e.dial("realm1", proto.JSON)
	for _, p := range []string{"com.keep", "com.gone", "com.change"} {
		waitRegistered(t, admin, p)
	}
	keepSess := calleeSessions(t, admin, "com.keep")
	keepRunner := e.gw.runners.Load().callees[0]
	if tag, err := callTag(admin, "com.keep"); err != nil || tag != "v1" {
		t.Fatalf("com.keep: %q %v", tag, err)
	}

	// A call in flight on the callee removed and on the one changed.
	held := make(chan string, 2)
	for _, p := range []string{"com.gone", "com.change"} {
		go func() {
			tag, err := callTag(admin, p, "hold")
			held <- fmt.Sprint(p, " ", tag, " ", err)
		}()
	}
	waitFor(t, "two calls held by the upstream", func() bool { return v1.held.Load() == 2 })

	changed := change
	changed.URL = v2.srv.URL
	added := Callee{Realm: "realm1", Procedure: "com.added", URL: v2.srv.URL}
	start := time.Now()
	c := reloadRunners(t, e, []Callee{keep, changed, added}, nil)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Apply took %v: it waited for the calls in flight", took)
	}
	if got, want := changeStrings(c.Callees), "added 1: com.added, removed 1: com.gone, changed 1: com.change"; got != want {
		t.Fatalf("changes %q, want %q", got, want)
	}
	if attrs := fmt.Sprint(c.LogAttrs()); !strings.Contains(attrs, "callees 3 callees_added 1: com.added callees_removed 1: com.gone callees_changed 1: com.change") {
		t.Fatalf("log attributes %s", attrs)
	}
	// Unregistered before Apply returned.
	if s := calleeSessions(t, admin, "com.gone"); len(s) != 0 {
		t.Fatalf("com.gone still registered after Apply: %v", s)
	}
	if v := metricValue(t, e, `edgewamp_gateway_callee_in_flight{callee="com.gone"}`); v != "" {
		t.Fatalf("the removed callee's series is exported: %s", v)
	}
	// The changed one answers from its new upstream; the added one serves.
	waitFor(t, "com.change served by v2", func() bool { tag, err := callTag(admin, "com.change"); return err == nil && tag == "v2" })
	waitFor(t, "com.added served", func() bool { tag, err := callTag(admin, "com.added"); return err == nil && tag == "v2" })
	// The unchanged one was not touched: same runner, same session.
	if e.gw.runners.Load().callees[0] != keepRunner || fmt.Sprint(calleeSessions(t, admin, "com.keep")) != fmt.Sprint(keepSess) {
		t.Fatal("the unchanged callee was replaced")
	}
	// The calls in flight finish with their upstream's answer.
	close(v1.release)
	got := []string{<-held, <-held}
	for _, s := range got {
		if !strings.HasSuffix(s, " v1 <nil>") {
			t.Fatalf("a call in flight during the reload: %s", s)
		}
	}
	// Then the old sessions close: keep, change and added remain.
	waitFor(t, "the old callees' sessions closed", func() bool { return e.gw.pool.sessions() == 3 })
	// The changed callee's series went on: its old call and its new ones.
	waitFor(t, "com.change's calls counted in one series", func() bool {
		n, _ := strconv.Atoi(metricValue(t, e, `edgewamp_gateway_callee_invocations_total{callee="com.change",outcome="ok"}`))
		return n >= 2
	})
	if l := logs.String(); strings.Contains(l, "cannot register") {
		t.Fatalf("a callee was refused:\n%s", l)
	}
}

// TestCalleeReloadInFlightBounded: the invocations of a removed callee
// whose upstream does not answer end with its timeout, and so does its
// session.
func TestCalleeReloadInFlightBounded(t *testing.T) {
	laneFree(t)
	up := newTagUpstream(t, "v1")
	hang := Callee{Realm: "realm1", Procedure: "com.hang", URL: up.srv.URL, Timeout: time.Second}
	e := newEnv(t, func(o *Options) { o.Callees = []Callee{hang} })
	admin := e.dial("realm1", proto.JSON)
	waitRegistered(t, admin, "com.hang")
	done := make(chan error, 1)
	go func() { _, err := callTag(admin, "com.hang", "hold"); done <- err }()
	waitFor(t, "the call held", func() bool { return up.held.Load() == 1 })
	start := time.Now()
	reloadRunners(t, e, nil, nil)
	var we *client.Error
	if err := <-done; !errors.As(err, &we) || we.URI != proto.URITimeout {
		t.Fatalf("the call in flight: %v, want %s", err, proto.URITimeout)
	}
	waitWithin(t, 5*time.Second, "the removed callee's session closed", func() bool { return e.gw.pool.sessions() == 0 })
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the removed callee's invocation ended after %v (timeout 1 s)", d)
	}
	// The upstream's handler sees its request canceled when its server
	// notices the connection's end, a moment after the gateway's.
	waitWithin(t, 5*time.Second, "the upstream request canceled", func() bool { return up.canceled.Load() == 1 })
}

// TestCalleeReloadDrainShutdown: Shutdown does not wait for the
// invocations a removed callee lets finish: they are canceled, as the
// running callees' are.
func TestCalleeReloadDrainShutdown(t *testing.T) {
	laneFree(t)
	up := newTagUpstream(t, "v1")
	e := newEnv(t, func(o *Options) {
		o.Callees = []Callee{{Realm: "realm1", Procedure: "com.hang", URL: up.srv.URL, Timeout: time.Minute}}
	})
	admin := e.dial("realm1", proto.JSON)
	waitRegistered(t, admin, "com.hang")
	done := make(chan error, 1)
	go func() { _, err := callTag(admin, "com.hang", "hold"); done <- err }()
	waitFor(t, "the call held", func() bool { return up.held.Load() == 1 })
	reloadRunners(t, e, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := e.gw.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown waited for the removed callee's invocation: %v", err)
	}
	if err := <-done; err == nil {
		t.Fatal("the call answered")
	}
	waitFor(t, "the upstream request canceled", func() bool { return up.canceled.Load() == 1 })
	t.Logf("Shutdown took %v", time.Since(start))
}

// gatedTarget is a webhook target that holds every POST until open is
// called (or the request ends), then records it.
type gatedTarget struct {
	srv      *httptest.Server
	gate     chan struct{}
	once     sync.Once
	got      chan string // the first argument of each event delivered
	attempts atomic.Int64
	holding  atomic.Int64
	canceled atomic.Int64
}

func newGatedTarget(t *testing.T, open bool) *gatedTarget {
	g := &gatedTarget{gate: make(chan struct{}), got: make(chan string, 1024)}
	if open {
		g.open()
	}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.attempts.Add(1)
		body, _ := io.ReadAll(r.Body)
		g.holding.Add(1)
		select {
		case <-g.gate:
			g.holding.Add(-1)
		case <-r.Context().Done():
			g.holding.Add(-1)
			g.canceled.Add(1)
			return
		}
		var doc struct {
			Args []any `json:"args"`
		}
		json.Unmarshal(body, &doc)
		if len(doc.Args) > 0 {
			select {
			case g.got <- fmt.Sprint(doc.Args[0]):
			default: // the test reads the first ones only
			}
		}
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gatedTarget) open() { g.once.Do(func() { close(g.gate) }) }

// expectHits reads want from g.got, in order.
func (g *gatedTarget) expectHits(t *testing.T, what string, want ...string) {
	t.Helper()
	var got []string
	for range want {
		select {
		case s := <-g.got:
			got = append(got, s)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: got %v, want %v", what, got, want)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func publishVia(t *testing.T, c *client.Session, topic string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Publish(ctx, topic, args, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
}

// TestWebhookReloadAddRemoveChange: Apply adds, removes and replaces
// webhooks. An unchanged one keeps its subscription and its queue; a
// removed one is unsubscribed before Apply returns, its POST in progress
// canceled and its queued events dropped (no POST after); a changed one
// with a name of the configuration's delivers the events the old one
// held to its new URL, in order; an unnamed one whose URL changed does
// not send the old target's events to the new one.
func TestWebhookReloadAddRemoveChange(t *testing.T) {
	laneFree(t)
	tKeep, tGone, tMovedOld, tAnonOld := newGatedTarget(t, false), newGatedTarget(t, false), newGatedTarget(t, false), newGatedTarget(t, false)
	tMovedNew, tAnonNew, tNew := newGatedTarget(t, true), newGatedTarget(t, true), newGatedTarget(t, true)
	hook := func(name, topic, url string) Webhook {
		return Webhook{Name: name, Realm: "realm1", Topic: topic, URL: url, Timeout: 30 * time.Second, Retries: -1}
	}
	keep, gone := hook("keep", "com.keep", tKeep.srv.URL), hook("gone", "com.gone", tGone.srv.URL)
	moved, anon := hook("moved", "com.moved", tMovedOld.srv.URL), hook("", "com.anon", tAnonOld.srv.URL)
	e := newEnv(t, func(o *Options) { o.Webhooks = []Webhook{keep, gone, moved, anon} })
	pub := e.dial("realm1", proto.JSON)
	topics := []string{"com.keep", "com.gone", "com.moved", "com.anon"}
	for _, topic := range topics {
		waitFor(t, topic+" subscribed", func() bool { return len(subscriberSessions(t, pub, topic)) == 1 })
	}
	keepSess := subscriberSessions(t, pub, "com.keep")
	keepRunner := e.gw.runners.Load().webhooks[0]
	for _, topic := range topics {
		for i := range 3 {
			publishVia(t, pub, topic, fmt.Sprint(topic, i))
		}
	}
	for _, name := range []string{"keep", "gone", "moved", "com.anon"} {
		waitFor(t, name+": one event being posted, two queued", func() bool { return webhookMetricsOf(e, name).queue() == 2 })
	}
	for _, tg := range []*gatedTarget{tKeep, tGone, tMovedOld, tAnonOld} {
		waitFor(t, "the POST held", func() bool { return tg.holding.Load() == 1 })
	}

	moved2, anon2 := moved, anon
	moved2.URL, anon2.URL = tMovedNew.srv.URL, tAnonNew.srv.URL
	c := reloadRunners(t, e, nil, []Webhook{keep, moved2, anon2, hook("new", "com.new", tNew.srv.URL)})
	if got, want := changeStrings(c.Webhooks), "added 1: new, removed 1: gone, changed 2: com.anon, moved"; got != want {
		t.Fatalf("changes %q, want %q", got, want)
	}
	if c.Webhooks.dropped != 6 {
		t.Fatalf("%d events dropped, want 6 (gone's and com.anon's)", c.Webhooks.dropped)
	}
	if attrs := fmt.Sprint(c.LogAttrs()); !strings.Contains(attrs, "webhooks 4 webhooks_added 1: new webhooks_removed 1: gone webhooks_changed 2: com.anon, moved webhook_events_dropped 6") {
		t.Fatalf("log attributes %s", attrs)
	}

	// The removed one: unsubscribed before Apply returned, its POST
	// canceled, its series dropped, and no POST after.
	if s := subscriberSessions(t, pub, "com.gone"); len(s) != 0 {
		t.Fatalf("com.gone still subscribed after Apply: %v", s)
	}
	waitFor(t, "the removed webhook's POST canceled", func() bool { return tGone.canceled.Load() == 1 })
	if v := metricValue(t, e, `edgewamp_gateway_webhook_queued{webhook="gone"}`); v != "" {
		t.Fatalf("the removed webhook's series is exported: %s", v)
	}
	// The changed, named one: the event whose POST was cut short and those
	// queued go to its new URL, in order, then new ones.
	tMovedNew.expectHits(t, "the moved webhook's queue at its new URL", "com.moved0", "com.moved1", "com.moved2")
	waitFor(t, "com.moved subscribed again", func() bool { return len(subscriberSessions(t, pub, "com.moved")) == 1 })
	publishVia(t, pub, "com.moved", "after")
	tMovedNew.expectHits(t, "the moved webhook after the reload", "after")
	waitFor(t, "the moved webhook's deliveries counted in its series", func() bool { return webhookMetricsOf(e, "moved").delivered.Load() == 4 })
	// The unnamed one whose URL changed: its old target's events are not
	// sent to the new one.
	waitFor(t, "com.anon subscribed again", func() bool { return len(subscriberSessions(t, pub, "com.anon")) == 1 })
	publishVia(t, pub, "com.anon", "after")
	tAnonNew.expectHits(t, "the unnamed webhook's new target", "after")
	// The added one delivers.
	waitFor(t, "com.new subscribed", func() bool { return len(subscriberSessions(t, pub, "com.new")) == 1 })
	publishVia(t, pub, "com.new", "first")
	tNew.expectHits(t, "the added webhook", "first")
	// The unchanged one was not touched: its runner, its subscription and
	// its queue.
	if e.gw.runners.Load().webhooks[0] != keepRunner || fmt.Sprint(subscriberSessions(t, pub, "com.keep")) != fmt.Sprint(keepSess) {
		t.Fatal("the unchanged webhook was replaced")
	}
	tKeep.open()
	tKeep.expectHits(t, "the unchanged webhook's queue", "com.keep0", "com.keep1", "com.keep2")
	// The old targets got nothing more: one attempt each, cut short.
	publishVia(t, pub, "com.gone", "late")
	time.Sleep(300 * time.Millisecond)
	for name, tg := range map[string]*gatedTarget{"gone": tGone, "moved": tMovedOld, "anon": tAnonOld} {
		if n := tg.attempts.Load(); n != 1 {
			t.Errorf("the old target of %s got %d POSTs, want the one cut short", name, n)
		}
	}
	if e.gw.pool.sessions() != 4 {
		t.Fatalf("%d gateway sessions, want the 4 webhooks'", e.gw.pool.sessions())
	}
}

// TestRunnerReloadRefused: an update with a bad callee or webhook is
// refused by Prepare, naming the fields as New does, and nothing changes.
func TestRunnerReloadRefused(t *testing.T) {
	laneFree(t)
	up := newTagUpstream(t, "v1")
	tgt := newGatedTarget(t, true)
	keep := Callee{Realm: "realm1", Procedure: "com.keep", URL: up.srv.URL}
	hook := Webhook{Name: "keep", Realm: "realm1", Topic: "com.keep", URL: tgt.srv.URL}
	e := newEnv(t, func(o *Options) {
		o.Callees = []Callee{keep}
		o.Webhooks = []Webhook{hook}
	})
	admin := e.dial("realm1", proto.JSON)
	waitRegistered(t, admin, "com.keep")
	waitFor(t, "the webhook subscribed", func() bool { return len(subscriberSessions(t, admin, "com.keep")) == 1 })
	before := e.gw.runners.Load()
	_, err := e.gw.Prepare(Update{Realms: e.gw.opts.Realms,
		Callees: []Callee{
			{Realm: "realm1", Procedure: "com.added", URL: up.srv.URL},
			{Realm: "realm1", Procedure: "com.bad", URL: "ftp://example.com/x"},
			{Name: "twice", Realm: "realm1", Procedure: "com.a", URL: up.srv.URL},
			{Name: "twice", Realm: "realm1", Procedure: "com.b", URL: up.srv.URL},
		},
		Webhooks: []Webhook{hook, {Name: "keep", Realm: "realm1", Topic: "com.x", URL: tgt.srv.URL}, {Realm: "realm1", Topic: "com..bad", URL: tgt.srv.URL}},
	})
	if err == nil {
		t.Fatal("a bad update was prepared")
	}
	for _, want := range []string{
		"gateway.callees[1].url: url must be an http(s) URL",
		`gateway.callees[3].name: callee name "twice" is used twice`,
		`gateway.webhooks[1].name: webhook name "keep" is used twice`,
		`gateway.webhooks[2].topic: "com..bad" is not a topic URI for match exact`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v joins no *FieldError", err)
	}
	// Nothing changed.
	if e.gw.runners.Load() != before {
		t.Fatal("the refused update replaced the runners")
	}
	time.Sleep(200 * time.Millisecond)
	if len(calleeSessions(t, admin, "com.added")) != 0 || len(calleeSessions(t, admin, "com.keep")) != 1 {
		t.Fatal("the refused update changed the registrations")
	}
	publishVia(t, admin, "com.keep", "still")
	tgt.expectHits(t, "the webhook after the refused update", "still")
}

// TestRunnerDefaultNames: callees and webhooks without a name are named
// after their procedure or topic, so that removing one does not rename
// the others (their labels were callee<index> and webhook<index>): a
// reload that removes one leaves the others running, their series
// included.
func TestRunnerDefaultNames(t *testing.T) {
	laneFree(t)
	names := func(ps ...string) []string {
		var cs []Callee
		for _, p := range ps {
			name, proc, _ := strings.Cut(p, "=")
			if proc == "" {
				name, proc = "", name
			}
			cs = append(cs, Callee{Name: name, Realm: "realm1", Procedure: proc, URL: "http://127.0.0.1:1/"})
		}
		out, errs := (&Server{}).checkCallees(cs)
		if len(errs) != 0 {
			t.Fatal(errs)
		}
		var l []string
		for _, c := range out {
			l = append(l, c.Name)
		}
		return l
	}
	for _, tc := range []struct{ in, want []string }{
		{[]string{"com.a", "com.b", "com.a"}, []string{"com.a", "com.b", "com.a#2"}},
		{[]string{"com.a=com.x", "com.a", "com.a#2=com.y", "com.a"}, []string{"com.a", "com.a#3", "com.a#2", "com.a#4"}},
		{[]string{"weather=com.a", "com.a"}, []string{"weather", "com.a"}},
	} {
		if got := names(tc.in...); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("names of %v: %v, want %v", tc.in, got, tc.want)
		}
	}

	up := newTagUpstream(t, "v1")
	tgt := newGatedTarget(t, true)
	cs := []Callee{
		{Realm: "realm1", Procedure: "com.a", URL: up.srv.URL},
		{Realm: "realm1", Procedure: "com.b", URL: up.srv.URL},
		{Realm: "realm1", Procedure: "com.c", URL: up.srv.URL},
	}
	ws := []Webhook{
		{Realm: "realm1", Topic: "com.a", URL: tgt.srv.URL},
		{Realm: "realm1", Topic: "com.b", URL: tgt.srv.URL},
		{Realm: "realm1", Topic: "com.c", URL: tgt.srv.URL},
	}
	e := newEnv(t, func(o *Options) {
		o.Callees = cs
		o.Webhooks = ws
	})
	admin := e.dial("realm1", proto.JSON)
	waitRegistered(t, admin, "com.c")
	if tag, err := callTag(admin, "com.c"); err != nil || tag != "v1" {
		t.Fatalf("com.c: %q %v", tag, err)
	}
	waitFor(t, "com.c subscribed", func() bool { return len(subscriberSessions(t, admin, "com.c")) == 1 })
	before := e.gw.runners.Load()
	c := reloadRunners(t, e, []Callee{cs[0], cs[2]}, []Webhook{ws[0], ws[2]})
	if got := changeStrings(c.Callees) + "; " + changeStrings(c.Webhooks); got != "added 0, removed 1: com.b, changed 0; added 0, removed 1: com.b, changed 0" {
		t.Fatalf("changes: %s", got)
	}
	after := e.gw.runners.Load()
	if after.callees[1] != before.callees[2] || after.webhooks[1] != before.webhooks[2] {
		t.Fatal("com.c's callee or webhook was replaced when com.b was removed")
	}
	if v := metricValue(t, e, `edgewamp_gateway_callee_invocations_total{callee="com.c",outcome="ok"}`); v != "1" {
		t.Fatalf("com.c's series after the reload: %q", v)
	}
}

// TestRunnerReloadStorm: hundreds of reloads adding, removing and
// changing callees and webhooks, while a stable callee serves calls and a
// stable webhook delivers, leave no goroutine, session, registration,
// subscription or metrics series behind, and a removed webhook POSTs
// nothing more.
func TestRunnerReloadStorm(t *testing.T) {
	laneFree(t)
	v1, v2 := newTagUpstream(t, "v1"), newTagUpstream(t, "v2")
	stableT := newGatedTarget(t, true)
	var hookMu sync.Mutex
	hookPosts := map[string]int{} // webhook name (X-Hook) → POSTs
	hookT := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		hookMu.Lock()
		hookPosts[r.Header.Get("X-Hook")]++
		hookMu.Unlock()
	}))
	t.Cleanup(hookT.Close)
	posts := func() map[string]int {
		hookMu.Lock()
		defer hookMu.Unlock()
		m := make(map[string]int, len(hookPosts))
		for k, v := range hookPosts {
			m[k] = v
		}
		return m
	}
	stableC := Callee{Name: "stable", Realm: "realm1", Procedure: "com.stable", URL: v1.srv.URL}
	stableW := Webhook{Name: "stable", Realm: "realm1", Topic: "com.stable", URL: stableT.srv.URL}
	gen := func(i int) ([]Callee, []Webhook) {
		flip := Callee{Name: "flip", Realm: "realm1", Procedure: "com.flip", URL: []string{v1.srv.URL, v2.srv.URL}[i/10%2]}
		cs := []Callee{stableC, flip}
		ws := []Webhook{stableW}
		for k := range 2 {
			cs = append(cs, Callee{Realm: "realm1", Procedure: fmt.Sprintf("com.gen.%d.%d", i, k), URL: v1.srv.URL})
			name := fmt.Sprintf("gen-%d-%d", i, k)
			ws = append(ws, Webhook{Name: name, Realm: "realm1", Topic: fmt.Sprintf("com.gen.%d", i), URL: hookT.URL, Headers: map[string]string{"X-Hook": name}})
		}
		return cs, ws
	}
	cs, ws := gen(0)
	e := newEnv(t, func(o *Options) {
		o.Callees = cs
		o.Webhooks = ws
	})
	admin := e.dial("realm1", proto.JSON)
	for _, c := range cs {
		waitRegistered(t, admin, c.Procedure)
	}
	waitFor(t, "the webhooks subscribed", func() bool { return metricValue(t, e, "edgewamp_gateway_webhook_subscribed") == "3" })
	idle := func() {
		e.hc.CloseIdleConnections()
		e.gw.opts.HTTPClient.CloseIdleConnections() // the runners' keep-alive connections to their upstreams
	}
	idle()
	runtime.GC()
	baseG := runtime.NumGoroutine()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served, published atomic.Int64
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if tag, err := callTag(admin, "com.stable"); err != nil || tag != "v1" {
				t.Errorf("a call to the stable callee during the storm: %q %v", tag, err)
				return
			}
			served.Add(1)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := admin.Publish(ctx, "com.stable", []any{i}, nil, &client.PublishOptions{Acknowledge: true})
			cancel()
			if err != nil {
				t.Errorf("publish during the storm: %v", err)
				return
			}
			published.Add(1)
		}
	}()
	reloads := 500
	if raceEnabled {
		reloads = 300
	}
	start := time.Now()
	for i := 1; i <= reloads && !t.Failed(); i++ {
		cs, ws := gen(i)
		if i%50 == 0 {
			bad := append(cs[:len(cs):len(cs)], Callee{Realm: "realm1", Procedure: "com.bad", URL: "nope"})
			if _, err := e.gw.Prepare(Update{Realms: e.gw.opts.Realms, Callees: bad, Webhooks: ws}); err == nil {
				t.Fatal("a bad callee was taken")
			}
		}
		reloadRunners(t, e, cs, ws)
		if i%20 == 0 {
			// Now and then the runners get time to register and
			// subscribe, and events to be delivered, before the next
			// reload removes them (the others go while they join).
			for _, c := range cs {
				waitRegistered(t, admin, c.Procedure)
			}
			topic := fmt.Sprintf("com.gen.%d", i)
			waitFor(t, topic+" subscribed", func() bool { return len(subscriberSessions(t, admin, topic)) == 2 })
			for k := range 3 {
				publishVia(t, admin, topic, k)
			}
		}
	}
	took := time.Since(start)
	close(stop)
	wg.Wait()

	// The last reload's runners run; nothing else does.
	cs, ws = gen(reloads)
	for _, c := range cs {
		waitRegistered(t, admin, c.Procedure)
	}
	if tag, err := callTag(admin, "com.flip"); err != nil || tag != []string{"v1", "v2"}[reloads/10%2] {
		t.Fatalf("com.flip after the storm: %q %v", tag, err)
	}
	waitFor(t, "the webhooks subscribed", func() bool { return metricValue(t, e, "edgewamp_gateway_webhook_subscribed") == "3" })
	waitFor(t, "only the last reload's sessions", func() bool { return e.gw.pool.sessions() == len(cs)+len(ws) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	count := func(proc string) int {
		res, err := admin.Call(ctx, proc, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, l := range res.Args[0].(map[string]any) {
			n += len(l.([]any))
		}
		return n
	}
	if n := count("wamp.registration.list"); n != len(cs) {
		t.Errorf("%d registrations after the storm, want %d", n, len(cs))
	}
	if n := count("wamp.subscription.list"); n != 2 { // com.stable and the last com.gen.N (two webhooks)
		t.Errorf("%d subscriptions after the storm, want 2", n)
	}
	nc, nw := 0, 0
	e.gw.metrics.calleeStats.Range(func(any, any) bool { nc++; return true })
	e.gw.metrics.webhooks.Range(func(any, any) bool { nw++; return true })
	if nc != len(cs) || nw != len(ws) {
		t.Errorf("metrics of %d callees and %d webhooks after the storm, want %d and %d", nc, nw, len(cs), len(ws))
	}
	_, body := e.do("GET", "/metrics", "")
	if n := strings.Count(string(body), `edgewamp_gateway_callee_in_flight{callee="com.gen.`); n != 2 {
		t.Errorf("%d generated callees' series exported, want 2", n)
	}
	if n := strings.Count(string(body), `edgewamp_gateway_webhook_queued{webhook="gen-`); n != 2 {
		t.Errorf("%d generated webhooks' series exported, want 2", n)
	}
	// A removed webhook POSTs nothing more: events to the topics of the
	// reloads before reach no one; the last one's reach its two webhooks.
	before := posts()
	for i := reloads - 5; i < reloads; i++ {
		publishVia(t, admin, fmt.Sprintf("com.gen.%d", i), "late")
	}
	publishVia(t, admin, fmt.Sprintf("com.gen.%d", reloads), "last")
	waitFor(t, "the last reload's webhooks' POSTs", func() bool {
		p := posts()
		return p[fmt.Sprintf("gen-%d-0", reloads)] > before[fmt.Sprintf("gen-%d-0", reloads)] && p[fmt.Sprintf("gen-%d-1", reloads)] > before[fmt.Sprintf("gen-%d-1", reloads)]
	})
	time.Sleep(200 * time.Millisecond)
	after := posts()
	for name, n := range after {
		if n != before[name] && !strings.HasPrefix(name, fmt.Sprintf("gen-%d-", reloads)) {
			t.Errorf("removed webhook %s POSTed after the storm (%d, then %d)", name, before[name], n)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseG+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after the storm, %d before:\n%s", runtime.NumGoroutine(), baseG, buf[:runtime.Stack(buf, true)])
		}
		idle()
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d reloads in %v while %d calls were served and %d events published; goroutines %d before, %d after",
		reloads, took.Round(time.Millisecond), served.Load(), published.Load(), baseG, runtime.NumGoroutine())
	if served.Load() == 0 {
		t.Error("no call was served during the storm")
	}
	stableT.expectHits(t, "the stable webhook's first event", "0")
}

// TestRunnerApplyRacesShutdown: reloads that race Shutdown start nothing
// after it and leave no goroutine, session or registration behind.
func TestRunnerApplyRacesShutdown(t *testing.T) {
	laneFree(t)
	up := newTagUpstream(t, "v1")
	tgt := newGatedTarget(t, true)
	e := newEnv(t, nil)
	admin := e.dial("realm1", proto.JSON)
	runtime.GC()
	baseG := runtime.NumGoroutine()
	var wg sync.WaitGroup
	var shut atomic.Bool
	var after atomic.Int64 // reloads applied after Shutdown returned
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; after.Load() < 50; i++ {
				if shut.Load() {
					after.Add(1)
				}
				cs := []Callee{{Realm: "realm1", Procedure: fmt.Sprintf("com.race.%d.%d", w, i), URL: up.srv.URL}}
				ws := []Webhook{{Realm: "realm1", Topic: fmt.Sprintf("com.race.%d.%d", w, i), URL: tgt.srv.URL}}
				p, err := e.gw.Prepare(Update{Realms: e.gw.opts.Realms, Callees: cs, Webhooks: ws})
				if err != nil {
					t.Error(err)
					return
				}
				e.gw.Apply(p)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.gw.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	shut.Store(true)
	wg.Wait()
	waitFor(t, "no gateway session after Shutdown", func() bool { return e.gw.pool.sessions() == 0 })
	waitFor(t, "no registration or subscription after Shutdown", func() bool {
		n := 0
		for _, proc := range []string{"wamp.registration.list", "wamp.subscription.list"} {
			res, err := admin.Call(ctx, proc, nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range res.Args[0].(map[string]any) {
				n += len(l.([]any))
			}
		}
		return n == 0
	})
	staysFalse(t, 300*time.Millisecond, "a runner started after Shutdown", func() bool { return e.gw.pool.sessions() != 0 })
	waitFor(t, "the runners' goroutines to end", func() bool {
		e.hc.CloseIdleConnections()
		e.gw.opts.HTTPClient.CloseIdleConnections()
		return runtime.NumGoroutine() <= baseG+2
	})
}

// TestRunnerSameConfigSpelledOtherwise: a reload that writes a callee's or
// webhook's configuration another way with the same meaning (match "" or
// exact, no headers or {}) keeps the runner: its checked configuration,
// which Apply compares, is the same. Before, the runner was replaced (its
// registration or subscription dropped and made again).
func TestRunnerSameConfigSpelledOtherwise(t *testing.T) {
	g := &Server{}
	cs, errs := g.checkCallees([]Callee{
		{Realm: "realm1", Procedure: "com.a", URL: "http://127.0.0.1:1/"},
		{Realm: "realm1", Procedure: "com.a", Match: "exact", Headers: map[string]string{}, URL: "http://127.0.0.1:1/", Name: "com.a#2"},
	})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	cs[1].Name = cs[0].Name
	if !reflect.DeepEqual(cs[0], cs[1]) {
		t.Errorf("callees with the same meaning differ once checked:\n%+v\n%+v", cs[0], cs[1])
	}
	ws, _, errs := checkWebhooks([]Webhook{
		{Name: "w", Realm: "realm1", Topic: "com.t", URL: "http://127.0.0.1:1/"},
		{Name: "v", Realm: "realm1", Topic: "com.t", Match: "exact", Headers: map[string]string{}, URL: "http://127.0.0.1:1/"},
	})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	ws[1].Name = ws[0].Name
	if !reflect.DeepEqual(ws[0], ws[1]) {
		t.Errorf("webhooks with the same meaning differ once checked:\n%+v\n%+v", ws[0], ws[1])
	}
}

// stuckMesh is a route.Mesh whose claim store never answers: a single
// REGISTER stays pending.
type stuckMesh struct{ claims atomic.Int64 }

func (*stuckMesh) Subscribe(string, proto.Match, string)            {}
func (*stuckMesh) Unsubscribe(string, proto.Match, string)          {}
func (*stuckMesh) Registered(string, route.MeshReg)                 {}
func (m *stuckMesh) Claim(string, proto.Match, string, func(error)) { m.claims.Add(1) }
func (*stuckMesh) Release(string, proto.Match, string)              {}
func (*stuckMesh) Released(done func())                             { done() }
func (*stuckMesh) Publish(string, []byte, []byte) error             { return nil }
func (*stuckMesh) Send(route.MeshNode, []byte) error                { return nil }
func (*stuckMesh) Gather([]byte, func([][]byte, []string)) error    { return nil }

// A runner whose REGISTER waits for the mesh's claim (a single callee, a
// webhook with deliver: one) stops at once when a reload removes it: it
// gave up the pending answer only after the gateway's 10 s before, so a
// reload or a shutdown during a claim-store outage waited that long.
func TestRunnerStoppedWhileClaimPending(t *testing.T) {
	laneFree(t)
	e := newEnv(t, nil)
	m := &stuckMesh{}
	if err := e.r.AttachMesh(m, "n1", 1); err != nil {
		t.Fatal(err)
	}
	tgt := newWebhookTarget(t, "")
	up := newCalleeUpstream(t)
	reloadRunners(t, e, []Callee{{Realm: "realm1", Procedure: "com.weather", URL: up.srv.URL}},
		[]Webhook{{Name: "alerts", Realm: "realm1", Topic: "com.alert", URL: tgt.srv.URL, Deliver: "one"}})
	waitFor(t, "both claims", func() bool { return m.claims.Load() == 2 })
	start := time.Now()
	reloadRunners(t, e, nil, nil)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the reload that removed two runners waiting for their claims took %v", d)
	}
}
