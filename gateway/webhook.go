package gateway

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Webhook subscribers: the events of a topic POSTed to a URL, one request
// per event, with the JSON document an SSE stream carries as its body:
//
//	POST <url>  Content-Type: application/json
//	X-Edgewamp-Delivery: <publication id>   (for idempotent receivers)
//	X-Edgewamp-Timestamp: <unix seconds of this attempt>
//	X-Edgewamp-Signature: sha256=<hex>     (when a secret is set: HMAC of the body)
//	X-Edgewamp-Signature-Timestamped: sha256=<hex>   (HMAC of "<timestamp>.<body>")
//	{"topic":"com.example.news","publication":123,"args":[...],"kwargs":{...}}
//
// Events wait in a bounded queue (Webhook.Queue events and
// Webhook.QueueBytes bytes, the events being delivered included): when it
// is full, new events are dropped and counted (reason queue_full), so a
// target that hangs costs at most the queue, never the router. (Bounded in
// events only, a hanging target's queue held whatever size its events had:
// 1024 publications of 16 MiB would have held 16 GiB, for hours, each
// event taking Timeout × (Retries+1) plus backoff to give up on.) A failed delivery
// (network error, timeout, 408, 429, 5xx) is retried up to Webhook.Retries
// times with exponential backoff and jitter, then dropped
// (retries_exhausted); another 4xx is dropped at once (rejected). A 429 or
// 503 with Retry-After (seconds or an HTTP date) waits that long before
// its retry when it is longer than the backoff, Webhook.MaxBackoff at
// most (a target cannot park its queue for longer). With
// Concurrency 1 (the default) events are delivered in order.

type webhookRunner struct {
	g      *Server
	cfg    Webhook // defaults applied; static
	name   string  // cfg.Name: metrics label and identity across reloads; static
	named  bool    // the configuration gave the name (Apply hands its queue over to its replacement); guarded by Server.runMu
	shard  int
	q      chan *eventFrame
	queued atomic.Int64    // bytes of the frames queued or being delivered
	m      *webhookMetrics // shared with the runner that replaces it (same name)
	stopCh chan struct{}   // closed by halt: the subscription and the deliveries end
	once   sync.Once
	wg     sync.WaitGroup // deliverLoops
	ctx    context.Context
	cancel context.CancelFunc
	subEnd chan struct{} // closed when subscribeLoop returns (the subscription is gone)

	started bool // guarded by Server.runMu

	heldMu sync.Mutex
	held   []*eventFrame // events whose delivery halt cut short, to hand over or drop; guarded by heldMu

	subscribed atomic.Bool // its subscription is in place (edgewamp_gateway_webhook_subscribed)
	// rejectLogAt: when the last line about an event its target refused
	// was logged (nanos: Server.nanos; 0 none); rejectQuiet: the refused
	// events not logged since (logRejected).
	rejectLogAt atomic.Int64
	rejectQuiet atomic.Int64
	// exhaustLogAt, exhaustQuiet: the same for events dropped after
	// their retries.
	exhaustLogAt atomic.Int64
	exhaustQuiet atomic.Int64
	standby      atomic.Bool // Deliver "one": another session holds its lock (edgewamp_gateway_webhook_standby)
}

type webhookMetrics struct {
	delivered atomic.Uint64
	retries   atomic.Uint64
	revoked   atomic.Uint64 // subscriptions the router took away (revoke.go)
	mu        sync.Mutex
	dropped   map[string]*atomic.Uint64
	cur       atomic.Pointer[webhookRunner] // the runner counting into these (a reload's replacement takes them over)
}

// queue is the number of events waiting for delivery.
func (m *webhookMetrics) queue() int { return len(m.cur.Load().q) }

func (m *webhookMetrics) drop(reason string) {
	m.mu.Lock()
	c := m.dropped[reason]
	if c == nil {
		c = new(atomic.Uint64)
		m.dropped[reason] = c
	}
	m.mu.Unlock()
	c.Add(1)
}

func (m *webhookMetrics) collect(e *expo, name string) {
	const C = counterType
	constMetric(e, "edgewamp_gateway_webhook_delivered_total", "Events a webhook target accepted.", C, float64(m.delivered.Load()), "webhook", name)
	constMetric(e, "edgewamp_gateway_webhook_retries_total", "Webhook delivery attempts that were retries.", C, float64(m.retries.Load()), "webhook", name)
	constMetric(e, "edgewamp_gateway_webhook_revoked_total", "Webhooks' subscriptions the router removed (remove_subscriber, a reload's revocation); each stays unsubscribed until the next configuration reload.", C, float64(m.revoked.Load()), "webhook", name)
	m.mu.Lock()
	for _, k := range sortedKeys(m.dropped) {
		constMetric(e, "edgewamp_gateway_webhook_dropped_total", "Events a webhook dropped, by reason (queue_full, retries_exhausted, rejected, shutdown).", C, float64(m.dropped[k].Load()), "webhook", name, "reason", k)
	}
	m.mu.Unlock()
	wr := m.cur.Load()
	constMetric(e, "edgewamp_gateway_webhook_queued", "Events waiting for delivery.", gaugeType, float64(len(wr.q)), "webhook", name)
	constMetric(e, "edgewamp_gateway_webhook_queued_bytes", "Bytes of the events waiting for delivery or being delivered.", gaugeType, float64(wr.queued.Load()), "webhook", name)
}

// checkWebhooks checks ws as New and Prepare do, and returns them with
// their defaults applied and their names given (the errors name
// webhooks[i].field), and which of them were named by the configuration.
func checkWebhooks(ws []Webhook) ([]Webhook, []bool, []error) {
	var errs []error
	out := make([]Webhook, len(ws))
	named := make([]bool, len(ws))
	for i, w := range ws {
		at := func(f ...any) []any { return append([]any{"webhooks", i}, f...) }
		if w.Realm == "" {
			errs = append(errs, fieldErr("a webhook needs a realm", at("realm")...))
		}
		match, ok := parseMatchName(w.Match)
		if !ok {
			errs = append(errs, fieldErr("match must be exact, prefix or wildcard", at("match")...))
		}
		if !proto.ValidPattern([]byte(w.Topic), proto.URILoose, match) {
			errs = append(errs, fieldErr(strconv.Quote(w.Topic)+" is not a topic URI for match "+match.String(), at("topic")...))
		}
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fieldErr("url must be an http(s) URL", at("url")...))
		}
		if w.Timeout <= 0 {
			w.Timeout = 10 * time.Second
		}
		if w.Queue <= 0 {
			w.Queue = 1024
		}
		if w.Queue > MaxWebhookQueue {
			errs = append(errs, fieldErr(fmt.Sprintf("queue is at most %d (events; the queue is allocated whole when the webhook starts)", MaxWebhookQueue), at("queue")...))
		}
		if w.QueueBytes <= 0 {
			w.QueueBytes = DefaultWebhookQueueBytes
		}
		switch {
		case w.Retries == 0:
			w.Retries = 5
		case w.Retries < 0:
			w.Retries = 0 // none
		}
		if w.Backoff <= 0 {
			w.Backoff = 200 * time.Millisecond
		}
		if w.MaxBackoff <= 0 {
			w.MaxBackoff = 10 * time.Second
		}
		// max_backoff bounds every wait, the first too: before, a larger
		// backoff was the first wait as configured.
		w.Backoff = min(w.Backoff, w.MaxBackoff)
		if w.Concurrency <= 0 {
			w.Concurrency = 1
		}
		if w.Concurrency > MaxWebhookConcurrency {
			errs = append(errs, fieldErr(fmt.Sprintf("concurrency is at most %d (deliveries in progress, each a goroutine started with the webhook)", MaxWebhookConcurrency), at("concurrency")...))
		}
		if w.AuthID == "" {
			w.AuthID = "gateway"
		}
		switch w.Deliver {
		case "":
			w.Deliver = "every"
		case "every", "one":
		default:
			errs = append(errs, fieldErr("deliver must be every or one, not "+strconv.Quote(w.Deliver), at("deliver")...))
		}
		errs = append(errs, checkHeaders(w.Headers, at)...)
		normalizeRunner(&w.Match, &w.Headers)
		named[i] = w.Name != ""
		out[i] = w
	}
	errs = append(errs, nameRunners("webhook", len(out), func(i int) (*string, string) { return &out[i].Name, out[i].Topic })...)
	return out, named, errs
}

// newWebhookRunner is a runner of w (checked) on shard, counting into m
// (nil: its own).
func (g *Server) newWebhookRunner(w Webhook, named bool, shard int, m *webhookMetrics) *webhookRunner {
	wr := &webhookRunner{g: g, cfg: w, name: w.Name, named: named, shard: shard, q: make(chan *eventFrame, w.Queue),
		stopCh: make(chan struct{}), subEnd: make(chan struct{})}
	wr.ctx, wr.cancel = context.WithCancel(context.Background())
	if m == nil {
		m = &webhookMetrics{dropped: map[string]*atomic.Uint64{}}
	}
	wr.m = m
	m.cur.Store(wr)
	return wr
}

// DefaultWebhookQueueBytes is Webhook.QueueBytes's default.
const DefaultWebhookQueueBytes = 16 << 20

// push implements sink: enqueue without blocking, or drop. Runs on the
// shard's goroutine. An event larger than QueueBytes is taken only into an
// empty queue.
func (wr *webhookRunner) push(f *eventFrame) {
	n := int64(len(f.sse))
	if q := wr.queued.Add(n); q > int64(wr.cfg.QueueBytes) && q != n {
		wr.queued.Add(-n)
		wr.m.drop("queue_full")
		return
	}
	select {
	case wr.q <- f:
	default:
		wr.queued.Add(-n)
		wr.m.drop("queue_full")
	}
}

// gone implements sink; the subscription loop notices the session's end.
func (wr *webhookRunner) gone(*problem) {}

// start runs wr once. Called with Server.runMu held.
func (wr *webhookRunner) start() {
	if wr.started {
		return
	}
	wr.started = true
	wr.g.bg.Add(1)
	go wr.subscribeLoop()
	for i := 0; i < wr.cfg.Concurrency; i++ {
		wr.wg.Add(1)
		go wr.deliverLoop()
	}
}

// stop ends the subscription and the deliveries in progress (Shutdown);
// the events queued are dropped (counted as shutdown) and, when there
// were any, logged: before, only the metric said so, which no one reads
// once the process has exited.
func (wr *webhookRunner) stop() {
	wr.halt()
	held := wr.takeHeld()
	for _, f := range held {
		wr.queued.Add(-int64(len(f.sse)))
		wr.m.drop("shutdown")
	}
	if len(held) > 0 {
		wr.g.log.Warn("gateway: webhook events dropped at shutdown (queued, or being posted)", "webhook", wr.name, "url", redactedURL(wr.cfg.URL), "dropped", len(held))
	}
}

// halt ends the subscription (subscribeLoop leaves the session) and the
// deliveries: an attempt in progress is cut short and its event kept, as
// are those queued, for takeHeld. It returns once the deliveries have
// ended.
func (wr *webhookRunner) halt() {
	wr.signal()
	wr.wg.Wait()
}

// signal starts halt without waiting.
func (wr *webhookRunner) signal() {
	wr.once.Do(func() {
		close(wr.stopCh)
		wr.cancel()
	})
}

// retire halts wr for a reload that removed or replaced it and waits, for
// at most d, until its subscription is gone (no event reaches it after
// that). It returns the events it held: those whose delivery it cut
// short, then those queued, for Apply to hand over or drop. Called with
// Server.runMu held.
func (wr *webhookRunner) retire(d time.Duration) []*eventFrame {
	wr.halt()
	if wr.started {
		t := time.NewTimer(d)
		select {
		case <-wr.subEnd:
		case <-t.C:
			wr.g.log.Warn("gateway: a removed webhook's subscription did not end in time", "webhook", wr.name, "within", d)
		}
		t.Stop()
	}
	return wr.takeHeld()
}

// takeHeld takes the events wr holds (after halt): those whose delivery
// halt cut short, then those queued.
func (wr *webhookRunner) takeHeld() []*eventFrame {
	wr.heldMu.Lock()
	fs := wr.held
	wr.held = nil
	wr.heldMu.Unlock()
	for {
		select {
		case f := <-wr.q:
			fs = append(fs, f)
		default:
			return fs
		}
	}
}

// subscribeLoop keeps the subscription, reopening its session with
// backoff when the router closes it. When the router takes the
// subscription away (revoke.go) it waits for the next configuration
// reload instead. With Deliver "one" it takes the webhook's lock first
// (lock).
func (wr *webhookRunner) subscribeLoop() {
	defer wr.g.bg.Done()
	defer close(wr.subEnd)
	backoff := 500 * time.Millisecond
	id := identity{realm: wr.cfg.Realm, authid: wr.cfg.AuthID, authrole: wr.cfg.Role, method: "static"}
	match, _ := parseMatchName(wr.cfg.Match)
	for {
		select {
		case <-wr.stopCh: // not reopened after a session closed as it stopped
			return
		default:
		}
		reload := wr.g.nextReload() // before the attempt: a reload during it is not missed
		failed := ""                // the refusal's error URI
		closed := make(chan struct{})
		revoked := make(chan revocation, 1)
		s, p := wr.g.pool.openPinned(id, wr.shard, refuseLockCall, func(*sess, string) { close(closed) }, wr.g.revokeNotice(revoked))
		if p == nil {
			r := &syncReply{done: true}
			if wr.cfg.Deliver == "one" {
				var stopped bool
				r, stopped = wr.lock(s, closed)
				if stopped {
					return
				}
			}
			if r.typ != proto.CodeError {
				r = wr.g.runSync(s, func() *syncReply { r, _ := s.subscribe(wr, wr.cfg.Topic, match, false, ""); return r })
			}
			if r.typ == proto.CodeError {
				s.q.post(s.leave)
				failed = r.err
				wr.g.log.Error("gateway: webhook cannot subscribe", "webhook", wr.name, "topic", wr.cfg.Topic, "error", r.err, "detail", detailOf(r), "retry", retryWhen(r.err, backoff))
			} else {
				wr.g.log.Info("gateway: webhook subscribed", "webhook", wr.name, "topic", wr.cfg.Topic, "url", redactedURL(wr.cfg.URL))
				wr.subscribed.Store(true)
				backoff = 500 * time.Millisecond
				select {
				case <-closed:
					wr.subscribed.Store(false)
					wr.g.log.Warn("gateway: webhook's session closed; subscribing again", "webhook", wr.name)
				case rv := <-revoked:
					wr.subscribed.Store(false)
					s.q.post(s.leave)
					if retriedRevocation(rv.reason) {
						// Its lock went to another node of the mesh (two
						// nodes took it while apart): stand by again.
						wr.g.log.Warn("gateway: webhook's delivery lock went to another node of the mesh; standing by", "webhook", wr.name, "topic", wr.cfg.Topic)
						break
					}
					if wr.g.replacedByReload(wr, wr.stopCh) {
						wr.g.log.Info("gateway: the reload that replaces a webhook took its subscription away first", "webhook", wr.name, "topic", wr.cfg.Topic, "reason", rv.reason)
						return
					}
					wr.m.revoked.Add(1)
					wr.g.log.Warn("gateway: the router removed a webhook's subscription; it stays unsubscribed until the configuration is reloaded",
						"webhook", wr.name, "topic", wr.cfg.Topic, "realm", wr.cfg.Realm, "reason", rv.reason)
					if !awaitReload(rv, wr.stopCh) {
						return
					}
					wr.g.log.Info("gateway: configuration reloaded; the removed webhook subscribes again", "webhook", wr.name, "topic", wr.cfg.Topic)
					continue
				case <-wr.stopCh:
					// Left before it returns: once subEnd is closed, no
					// event reaches wr (retire).
					wr.subscribed.Store(false)
					wr.g.runSync(s, func() *syncReply { s.leave(); return &syncReply{done: true} })
					return
				}
			}
		} else {
			failed = p.uri
			wr.g.log.Error("gateway: webhook cannot join", "webhook", wr.name, "realm", wr.cfg.Realm, "error", p.uri, "detail", p.detail, "retry", retryWhen(p.uri, backoff))
		}
		if refusedUntilReload(failed) {
			if !awaitReload(revocation{reload: reload}, wr.stopCh) {
				return
			}
			backoff = 500 * time.Millisecond
			continue
		}
		if !sleepOrStop(backoff, wr.stopCh) {
			return
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// lock registers the webhook's lock (WebhookLockURI) on s, standing by
// while another session holds it: a try every standbyRetry on s. It
// returns the refusal that ends the attempt (a closed session, an error
// other than procedure_already_exists), or a reply without error once the
// lock is held; stopped when the runner was stopped meanwhile (s is left).
func (wr *webhookRunner) lock(s *sess, closed <-chan struct{}) (*syncReply, bool) {
	uri := WebhookLockURI(wr.name)
	register := func() *syncReply {
		return wr.g.runSyncStop(s, func() *syncReply { return s.register(uri, proto.MatchExact, "single") }, wr.stopCh)
	}
	r, stoodBy := standBy(register, wr.stopCh, closed, &wr.standby, func(string) {
		wr.g.log.Warn("gateway: webhook standing by: another node of the mesh delivers it (deliver: one); trying again every second",
			"webhook", wr.name, "topic", wr.cfg.Topic, "lock", uri)
	})
	if r == errStopped { // never changed: shared
		s.q.post(s.leave)
		return r, true
	}
	if stoodBy && r.typ != proto.CodeError {
		wr.g.log.Info("gateway: webhook took over the delivery after standing by", "webhook", wr.name, "topic", wr.cfg.Topic)
	}
	if r.typ == proto.CodeError {
		// Say that the lock was refused, not the subscription (under
		// RBAC the webhook's role needs register on the lock).
		r.detail = "registering its delivery lock " + uri + " (deliver: one): " + detailOf(r)
	}
	return r, false
}

// refuseLockCall answers a call to a webhook's lock (WebhookLockURI):
// it is a lock, not a procedure. After Send returns (never re-enter the
// router from Send).
func refuseLockCall(s *sess, m *proto.Message) {
	req := m.Request
	s.q.post(func() {
		s.answer(req, proto.URINoSuchProcedure, msgArgs("this procedure is an HTTP webhook's delivery lock; it cannot be called"), nil)
	})
}

func (wr *webhookRunner) deliverLoop() {
	defer wr.wg.Done()
	for {
		select {
		case <-wr.stopCh:
			return
		case f := <-wr.q:
			if !wr.deliver(f) {
				wr.heldMu.Lock()
				wr.held = append(wr.held, f)
				wr.heldMu.Unlock()
				return
			}
			wr.queued.Add(-int64(len(f.sse)))
		}
	}
}

// deliver posts one event, retrying as configured. It reports whether it
// is done with it (delivered or dropped): false when halt cut it short.
func (wr *webhookRunner) deliver(f *eventFrame) bool {
	backoff := wr.cfg.Backoff
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			wr.m.retries.Add(1)
		}
		retry, after, status, err := wr.attempt(f)
		switch {
		case status >= 200 && status < 300:
			wr.m.delivered.Add(1)
			return true
		case wr.ctx.Err() != nil:
			return false // halted: the attempt was cut short, not answered
		case !retry:
			wr.m.drop("rejected")
			wr.logRejected(f, status, err)
			return true
		case attempt >= wr.cfg.Retries:
			wr.m.drop("retries_exhausted")
			// Why the last attempt failed: before, the line said neither
			// the status nor the error (an untrusted certificate, a
			// refused connection), which only the target could tell.
			// Spaced as the rejections' line: before, a target failing
			// at once (retries: 0, a 500, a refused connection) logged a
			// line per publication.
			unlogged, ok := spacedLog(&wr.exhaustLogAt, &wr.exhaustQuiet, wr.g.nanos())
			if !ok {
				return true
			}
			why := []any{"webhook", wr.name, "publication", f.pub, "attempts", attempt + 1}
			if err != nil {
				why = append(why, "error", err.Error())
			} else {
				why = append(why, "status", status)
			}
			why = append(why, "unlogged", unlogged)
			wr.g.log.Warn("gateway: webhook dropped an event after retries", why...)
			return true
		}
		wait := backoff/2 + time.Duration(rand.Int64N(int64(backoff/2)+1))
		if after > wait {
			// The target said when (Retry-After): before, the retry came
			// after the backoff alone (200 ms at first), into the
			// target's rate limit or maintenance window again.
			wait = min(after, wr.cfg.MaxBackoff)
		}
		t := time.NewTimer(wait)
		select {
		case <-wr.ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		backoff = min(2*backoff, wr.cfg.MaxBackoff)
	}
}

// attempt makes one delivery and returns the target's status (2xx:
// delivered), or the error that left it without one; retry says whether
// a failure is worth another attempt, after how long at least when the
// target said so (Retry-After on a 429 or 503).
func (wr *webhookRunner) attempt(f *eventFrame) (retry bool, after time.Duration, status int, err error) {
	ctx, cancel := context.WithTimeout(wr.ctx, wr.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, wr.cfg.URL, bytes.NewReader(f.json))
	if err != nil {
		return false, 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Edgewamp-Delivery", strconv.FormatUint(f.pub, 10))
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("X-Edgewamp-Timestamp", ts)
	if wr.cfg.Secret != "" {
		mac := hmac.New(sha256.New, []byte(wr.cfg.Secret))
		mac.Write(f.json)
		req.Header.Set("X-Edgewamp-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		// The body alone can be replayed by whoever captured one delivery;
		// this one binds the attempt's time, which a receiver checks.
		mac.Reset()
		mac.Write([]byte(ts + "."))
		mac.Write(f.json)
		req.Header.Set("X-Edgewamp-Signature-Timestamped", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	for k, v := range wr.cfg.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v // net/http's client sends Request.Host and drops Header["Host"]
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := wr.g.opts.HTTPClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which the log line names redacted
		}
		return true, 0, 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		return false, 0, s, nil
	case s == 429 || s == 503:
		return true, retryAfter(resp.Header.Get("Retry-After"), time.Now()), s, nil
	case s == 408 || s >= 500:
		return true, 0, s, nil
	default:
		return false, 0, s, nil
	}
}

// logRejected logs an event dropped because its target refused it (a
// status not retried: a 4xx, a 3xx, which is not followed), at most one
// line per rejectLogEvery, which counts the refusals not logged since.
// Before, such drops were counted and never logged: a webhook whose URL
// was wrong, or whose target wanted other credentials or moved, dropped
// every event without a line saying why.
func (wr *webhookRunner) logRejected(f *eventFrame, status int, err error) {
	unlogged, ok := spacedLog(&wr.rejectLogAt, &wr.rejectQuiet, wr.g.nanos())
	if !ok {
		return
	}
	why := []any{"webhook", wr.name, "publication", f.pub}
	if err != nil {
		why = append(why, "error", err.Error())
	} else {
		why = append(why, "status", status)
		if status >= 300 && status < 400 {
			why = append(why, "note", "redirects are not followed")
		}
	}
	why = append(why, "unlogged", unlogged)
	wr.g.log.Warn("gateway: webhook target refused an event; dropped, not retried", why...)
}

// spacedLog says whether a line spaced by rejectLogEvery is due at now
// (nanos: Server.nanos), at is when the last was logged (0 none), and
// quiet counts those not logged since: it returns that count (reset)
// when the line is due, and counts one more when it is not.
func spacedLog(at, quiet *atomic.Int64, now int64) (unlogged int64, ok bool) {
	if last := at.Load(); last != 0 && now-last < int64(rejectLogEvery) || !at.CompareAndSwap(last, now) {
		quiet.Add(1)
		return 0, false
	}
	return quiet.Swap(0), true
}

// retryAfter reads a Retry-After header (RFC 9110 §10.2.3: seconds, or an
// HTTP date) as a duration from now; 0 when absent, past or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// rejectLogEvery spaces a webhook's lines about events its target
// refused, and an HTTP callee's about its upstream's failures: a target
// refusing every event at once would otherwise log one line per
// publication, a callee one per call.
const rejectLogEvery = 10 * time.Second

// redactedURL is u for a log line: its scheme, host and port only. A
// hook's URL often carries its credential in the path (Slack's and
// Discord's /services/T…/B…/X…) or the query (?token=), and a user name
// may be a token: before, only the password was masked, so every
// subscription, registration and stop logged the secret.
func redactedURL(u string) string {
	if p, err := url.Parse(u); err == nil && p.Host != "" {
		return p.Scheme + "://" + p.Host
	}
	return "(unparsable URL)"
}
