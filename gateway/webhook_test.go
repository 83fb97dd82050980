package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// webhookTarget records deliveries; fail makes the next n attempts fail.
type webhookTarget struct {
	srv       *httptest.Server
	got       chan webhookHit
	fail      atomic.Int64
	status    atomic.Int64 // status of a failed attempt (default 503)
	hang      atomic.Bool
	attempts  atomic.Int64
	hanging   atomic.Int64
	badSigned atomic.Int64
	// retryAfter: the Retry-After header of a failed attempt ("" none);
	// at: when each attempt arrived.
	retryAfter atomic.Pointer[string]
	mu         sync.Mutex
	at         []time.Time
}

type webhookHit struct {
	body     map[string]any
	delivery string
}

func newWebhookTarget(t *testing.T, secret string) *webhookTarget {
	w := &webhookTarget{got: make(chan webhookHit, 1024)}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.attempts.Add(1)
		w.mu.Lock()
		w.at = append(w.at, time.Now())
		w.mu.Unlock()
		body, _ := io.ReadAll(r.Body) // then net/http notices the client leaving
		if w.hang.Load() {
			w.hanging.Add(1)
			<-r.Context().Done()
			return
		}
		if secret != "" {
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write(body)
			if r.Header.Get("X-Edgewamp-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
				w.badSigned.Add(1)
			}
			// The timestamped signature a receiver checks against
			// replays: HMAC of "<timestamp>.<body>", the timestamp fresh.
			ts := r.Header.Get("X-Edgewamp-Timestamp")
			sec, err := strconv.ParseInt(ts, 10, 64)
			mac = hmac.New(sha256.New, []byte(secret))
			mac.Write([]byte(ts + "."))
			mac.Write(body)
			if err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Minute ||
				r.Header.Get("X-Edgewamp-Signature-Timestamped") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
				w.badSigned.Add(1)
			}
		}
		if w.fail.Add(-1) >= 0 {
			st := int(w.status.Load())
			if st == 0 {
				st = 503
			}
			if ra := w.retryAfter.Load(); ra != nil {
				rw.Header().Set("Retry-After", *ra)
			}
			rw.WriteHeader(st)
			return
		}
		var doc map[string]any
		json.Unmarshal(body, &doc)
		w.got <- webhookHit{body: doc, delivery: r.Header.Get("X-Edgewamp-Delivery")}
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func TestWebhook(t *testing.T) {
	laneFree(t)
	tgt := newWebhookTarget(t, "hook-secret")
	e := newEnv(t, func(o *Options) {
		o.Webhooks = []Webhook{{Name: "alerts", Realm: "realm1", Topic: "com.alert.", Match: "prefix", URL: tgt.srv.URL,
			Secret: "hook-secret", Backoff: 20 * time.Millisecond, Retries: 3}}
	})
	pub := e.dial("realm1", proto.CBOR)
	waitFor(t, "the webhook's subscription", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res, err := pub.Call(ctx, "wamp.subscription.match", []any{"com.alert.x"}, nil, nil)
		return err == nil && len(res.Args) > 0 && res.Args[0] != nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := pub.Publish(ctx, "com.alert.fire", []any{"smoke"}, map[string]any{"room": 3}, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	hit := <-tgt.got
	if hit.body["topic"] != "com.alert.fire" || hit.body["args"].([]any)[0] != "smoke" || hit.body["kwargs"].(map[string]any)["room"] != 3.0 ||
		hit.delivery != strconv.FormatUint(uint64(hit.body["publication"].(float64)), 10) {
		t.Fatalf("webhook delivery %+v", hit)
	}
	// Two failures, then success: delivered once, after two retries.
	tgt.fail.Store(2)
	pub.Publish(ctx, "com.alert.flood", []any{1}, nil, &client.PublishOptions{Acknowledge: true})
	select {
	case hit = <-tgt.got:
	case <-ctx.Done():
		t.Fatal("not delivered after retries")
	}
	wm := webhookMetricsOf(e, "alerts")
	waitFor(t, "the delivery counted", func() bool { return wm.delivered.Load() == 2 })
	if wm.retries.Load() != 2 {
		t.Fatalf("retries %d, want 2", wm.retries.Load())
	}
	// A 4xx is not retried.
	tgt.fail.Store(1)
	tgt.status.Store(400)
	pub.Publish(ctx, "com.alert.bad", []any{1}, nil, &client.PublishOptions{Acknowledge: true})
	waitFor(t, "the rejected drop", func() bool { return dropped(wm, "rejected") == 1 })
	// Failing for good: dropped after 1 + 3 attempts.
	tgt.status.Store(500)
	tgt.fail.Store(100)
	before := tgt.attempts.Load()
	pub.Publish(ctx, "com.alert.down", []any{1}, nil, &client.PublishOptions{Acknowledge: true})
	waitFor(t, "the retries_exhausted drop", func() bool { return dropped(wm, "retries_exhausted") == 1 })
	if n := tgt.attempts.Load() - before; n != 4 {
		t.Fatalf("%d attempts, want 4", n)
	}
	if tgt.badSigned.Load() != 0 {
		t.Fatalf("%d deliveries with a bad signature", tgt.badSigned.Load())
	}
}

// TestWebhookHangingTarget: a target that never answers costs a bounded
// queue; the excess is dropped and counted, and the router keeps routing.
// TestWebhookRetryAfter: a target that answers 429 or 503 with
// Retry-After gets its retry no sooner than it asked (seconds or an HTTP
// date), and no later than max_backoff. Before, the retry came after the
// backoff alone (20 ms here), into the target's rate limit again.
func TestWebhookRetryAfter(t *testing.T) {
	laneFree(t)
	tgt := newWebhookTarget(t, "")
	e := newEnv(t, func(o *Options) {
		o.Webhooks = []Webhook{{Name: "limited", Realm: "realm1", Topic: "com.limited", URL: tgt.srv.URL,
			Backoff: 20 * time.Millisecond, MaxBackoff: 2 * time.Second, Retries: 3}}
	})
	pub := e.dial("realm1", proto.JSON)
	waitFor(t, "the webhook's subscription", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res, err := pub.Call(ctx, "wamp.subscription.match", []any{"com.limited"}, nil, nil)
		return err == nil && len(res.Args) > 0 && res.Args[0] != nil
	})
	for _, tc := range []struct {
		status     int
		retryAfter string
		least      time.Duration // the gap between the two attempts
	}{
		{429, "1", 900 * time.Millisecond},
		{503, "date", 1500 * time.Millisecond}, // 3 s from now, to the second
		{429, "3600", 1900 * time.Millisecond}, // max_backoff, 2 s, at most
	} {
		if tc.retryAfter == "date" {
			tc.retryAfter = time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
		}
		tgt.status.Store(int64(tc.status))
		tgt.retryAfter.Store(&tc.retryAfter)
		tgt.fail.Store(1)
		tgt.mu.Lock()
		tgt.at = nil
		tgt.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := pub.Publish(ctx, "com.limited", []any{tc.retryAfter}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-tgt.got:
		case <-ctx.Done():
			t.Fatalf("%d Retry-After %q: not delivered", tc.status, tc.retryAfter)
		}
		cancel()
		tgt.mu.Lock()
		at := tgt.at
		tgt.mu.Unlock()
		if len(at) != 2 {
			t.Fatalf("%d Retry-After %q: %d attempts, want 2", tc.status, tc.retryAfter, len(at))
		}
		if gap := at[1].Sub(at[0]); gap < tc.least || gap > 10*time.Second {
			t.Fatalf("%d Retry-After %q: retried after %v, want at least %v (and max_backoff, 2 s, at most)", tc.status, tc.retryAfter, gap.Round(time.Millisecond), tc.least)
		}
	}
}

func TestWebhookHangingTarget(t *testing.T) {
	tgt := newWebhookTarget(t, "")
	tgt.hang.Store(true)
	e := newEnv(t, func(o *Options) {
		o.Webhooks = []Webhook{{Name: "stuck", Realm: "realm1", Topic: "com.t", URL: tgt.srv.URL, Queue: 8, Timeout: 200 * time.Millisecond,
			Retries: 1, Backoff: 10 * time.Millisecond}}
	})
	pub := e.dial("realm1", proto.JSON)
	callee := e.dial("realm1", proto.JSON)
	e.register(callee, "com.ping", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"pong"}}, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitFor(t, "the webhook's subscription", func() bool {
		res, err := pub.Call(ctx, "wamp.subscription.match", []any{"com.t"}, nil, nil)
		return err == nil && len(res.Args) > 0 && res.Args[0] != nil
	})
	const n = 200
	for i := 0; i < n; i++ {
		if err := pub.Publish(ctx, "com.t", []any{i}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
	}
	wm := webhookMetricsOf(e, "stuck")
	// All but the 8 queued and the one being delivered are dropped: as
	// queue_full, or, when the publications took long enough for the
	// deliveries to progress (400 ms an event), after their retry.
	waitFor(t, "queue_full drops", func() bool {
		return dropped(wm, "queue_full")+dropped(wm, "retries_exhausted") >= n-8-2
	})
	if dropped(wm, "queue_full") == 0 {
		t.Fatal("no event dropped as queue_full")
	}
	if q := wm.queue(); q > 8 {
		t.Fatalf("queue holds %d, bound 8", q)
	}
	// The router and the gateway serve others meanwhile.
	if res, err := pub.Call(ctx, "com.ping", nil, nil, nil); err != nil || res.Args[0] != "pong" {
		t.Fatalf("call during the stuck webhook: %v %v", res, err)
	}
	r, body := e.do("POST", "/wamp/realm1/call/com.ping", `{}`)
	if r.StatusCode != 200 {
		t.Fatalf("bridge call during the stuck webhook: %d %s", r.StatusCode, body)
	}
	// Attempts time out (200 ms) and events are dropped after their retry:
	// the deliveries progress, one at a time.
	waitFor(t, "timed-out attempts", func() bool { return dropped(wm, "retries_exhausted") >= 2 })
}

func webhookMetricsOf(e *env, name string) *webhookMetrics {
	v, _ := e.gw.metrics.webhooks.Load(name)
	return v.(*webhookMetrics)
}

func dropped(m *webhookMetrics, reason string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.dropped[reason]; c != nil {
		return c.Load()
	}
	return 0
}

// TestWebhookDeliverOne: a webhook with deliver: one delivers only while
// it holds its lock (the single registration of WebhookLockURI): while a
// session elsewhere holds it (on a mesh, the same webhook on another node)
// it stands by, delivers nothing, logs that once and counts in
// edgewamp_gateway_webhook_standby; when the holder goes it takes over
// within about a second and delivers. The lock refuses calls. A deliver
// other than every or one is refused, naming the field.
func TestWebhookDeliverOne(t *testing.T) {
	laneFree(t)
	var logs lockedBuf
	tgt := newWebhookTarget(t, "")
	e := newEnv(t, func(o *Options) { o.Logger = logs.logger() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lock := WebhookLockURI("alerts")
	if !strings.HasPrefix(lock, "edgewamp.gateway.webhook.") || lock != WebhookLockURI("alerts") || lock == WebhookLockURI("other") {
		t.Fatalf("lock URI %q", lock)
	}
	holder := e.dial("realm1", proto.JSON)
	e.register(holder, lock, func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil })
	hook := Webhook{Name: "alerts", Realm: "realm1", Topic: "com.alert", URL: tgt.srv.URL, Deliver: "one"}
	reloadRunners(t, e, nil, []Webhook{hook})
	waitFor(t, "the webhook standing by", func() bool { return metricValue(t, e, "edgewamp_gateway_webhook_standby") == "1" })
	pub := e.dial("realm1", proto.JSON)
	for i := range 3 {
		if err := pub.Publish(ctx, "com.alert", []any{i}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case h := <-tgt.got:
		t.Fatalf("a webhook standing by delivered %v", h.body)
	case <-time.After(1500 * time.Millisecond):
	}
	if n := strings.Count(logs.String(), "webhook standing by"); n != 1 {
		t.Fatalf("%d standby lines, want 1:\n%s", n, logs.String())
	}
	if v := metricValue(t, e, "edgewamp_gateway_webhook_subscribed"); v != "0" {
		t.Fatalf("edgewamp_gateway_webhook_subscribed = %q while standing by", v)
	}
	holder.Close()
	waitWithin(t, 3*time.Second, "the webhook taking over", func() bool {
		return metricValue(t, e, "edgewamp_gateway_webhook_subscribed") == "1"
	})
	if err := pub.Publish(ctx, "com.alert", []any{"now"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-tgt.got:
		if fmt.Sprint(h.body["args"]) != "[now]" {
			t.Fatalf("delivered %v, want the event published after the take-over", h.body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the webhook delivered nothing after taking over")
	}
	if v := metricValue(t, e, "edgewamp_gateway_webhook_standby"); v != "0" || !strings.Contains(logs.String(), "webhook took over the delivery") {
		t.Fatalf("standby gauge %q after the take-over; log:\n%s", v, logs.String())
	}
	// The lock is not a procedure.
	_, err := pub.Call(ctx, lock, nil, nil, nil)
	var we *client.Error
	if !errors.As(err, &we) || we.URI != proto.URINoSuchProcedure {
		t.Fatalf("a call to the lock: %v", err)
	}
	// Its lock lost as after a partition (the router revokes the later of
	// two single registrations with procedure_already_exists): the
	// webhook drops its subscription, stands by or takes the lock again,
	// and does not count it as an operator's removal.
	regs := metaIDs(t, pub, "wamp.registration.match", lock)
	if len(regs) != 1 {
		t.Fatalf("the lock's registration: %v", regs)
	}
	holders := metaIDs(t, pub, "wamp.registration.list_callees", regs[0])
	if len(holders) != 1 {
		t.Fatalf("the lock's callees: %v", holders)
	}
	if _, err := pub.Call(ctx, "wamp.registration.remove_callee", []any{regs[0], holders[0], proto.URIProcedureAlreadyExists}, nil, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the line for the lock lost", func() bool {
		return strings.Contains(logs.String(), "webhook's delivery lock went to another node of the mesh; standing by")
	})
	waitFor(t, "the webhook delivering again", func() bool {
		return metricValue(t, e, "edgewamp_gateway_webhook_subscribed") == "1"
	})
	if v := metricValue(t, e, `edgewamp_gateway_webhook_revoked_total{webhook="alerts"}`); v != "0" {
		t.Fatalf("the lost lock counted as a removal: %q", v)
	}
	if err := pub.Publish(ctx, "com.alert", []any{"again"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-tgt.got:
		if fmt.Sprint(h.body["args"]) != "[again]" {
			t.Fatalf("delivered %v after the lock came back", h.body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing delivered after the lock came back")
	}
	// Under RBAC a role that may subscribe but not register the lock: the
	// refusal names the lock, and the webhook waits for a reload.
	reloadRunners(t, e, nil, []Webhook{{Name: "guarded", Realm: "secure", Topic: "com.pub.x", URL: tgt.srv.URL, Deliver: "one", Role: "user"}})
	waitFor(t, "the refusal of the lock", func() bool {
		l := logs.String()
		return strings.Contains(l, "registering its delivery lock "+WebhookLockURI("guarded")) && strings.Contains(l, proto.URINotAuthorized) &&
			strings.Contains(l, "retry=\"after a configuration reload\"")
	})
	// A bad deliver is refused.
	hook.Deliver = "twice"
	_, err = e.gw.Prepare(Update{Realms: e.gw.opts.Realms, APIKeys: e.gw.opts.APIKeys, SigningKeys: e.gw.opts.SigningKeys, Routes: e.gw.opts.Routes, Webhooks: []Webhook{hook}})
	if err == nil || !strings.Contains(err.Error(), "webhooks[0].deliver") {
		t.Fatalf("deliver: twice: %v", err)
	}
}

// retryAfter reads what RFC 9110 allows and nothing else.
func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "0": 0, "7": 7 * time.Second, "-1": 0, "1.5": 0, "99999999999": 0, "soon": 0,
		"Sun, 06 Dec 2026 00:00:30 GMT": 30 * time.Second,
		"Sat, 05 Dec 2026 23:59:00 GMT": 0, // past
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

// TestQueueSizesBoundedInValidate: Validate (check-config's and a
// reload's check) and New refuse a webhook queue, a webhook concurrency
// and an SSE queue past their maxima, before anything they size is
// built. Before, Validate built the webhooks' runners, a queue of
// 2,000,000,000 slots a 16 GB allocation: a CI run's cmd test process
// (check-config of such a file, under the race detector) was killed by
// the kernel at 24 GB resident.
func TestQueueSizesBoundedInValidate(t *testing.T) {
	hook := Webhook{Realm: "realm1", Topic: "com.t", URL: "http://127.0.0.1:1/h"}
	big, many := hook, hook
	big.Queue, many.Concurrency = 2_000_000_000, 1_000_000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, o := range []Options{
		{Addr: "127.0.0.1:0", Webhooks: []Webhook{big}},
		{Addr: "127.0.0.1:0", Webhooks: []Webhook{many}},
		{Addr: "127.0.0.1:0", Limits: Limits{SSEQueue: 100_000_000}},
	} {
		err := Validate(o)
		if err == nil || !strings.Contains(err.Error(), "is at most") {
			t.Fatalf("Validate: %v, want a refusal naming the maximum", err)
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 64<<20 {
		t.Fatalf("Validate of refused sizes allocated %d MiB", d>>20)
	}
	at := hook
	at.Queue, at.Concurrency = MaxWebhookQueue, MaxWebhookConcurrency
	if err := Validate(Options{Addr: "127.0.0.1:0", Webhooks: []Webhook{at}, Limits: Limits{SSEQueue: MaxSSEQueue}}); err != nil {
		t.Fatalf("the maxima themselves: %v", err)
	}
}
