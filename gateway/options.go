package gateway

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/edgewamp/edgewamp/route"
)

// Options configures a Server. The zero value of every field but Addr and
// Router is a sane default, applied by New.
type Options struct {
	// Addr is the listen address (host:port; port 0 picks one).
	Addr string
	// TLS, when set, serves HTTPS (and HTTP/2) on Addr.
	TLS *tls.Config
	// Router is the router the gateway's sessions join.
	Router *route.Router
	// Realms says which realms serve the zero-config bridge endpoints
	// (/wamp/{realm}/...) and to whom. A realm not listed serves none.
	// Replace them at run time with Server.SetRealms or SetAccess
	// (configuration reload).
	Realms []RealmAccess

	// Bearer checks "Authorization: Bearer" tokens; nil refuses them.
	Bearer BearerVerifier
	// APIKeys are the API keys clients send in the APIKeyHeader header.
	// Replace them at run time with Server.SetAccess (keys.go).
	APIKeys []APIKey
	// APIKeyHeader is the header API keys travel in. Default "X-API-Key".
	// It changes only with a restart.
	APIKeyHeader string
	// SigningKeys are the keys of signed requests (Crossbar's HTTP bridge
	// scheme: query parameters key, timestamp, seq, nonce, signature).
	// Replace them at run time with Server.SetAccess.
	SigningKeys []SigningKey
	// SignatureMaxSkew bounds the age of a signed request's timestamp, and
	// how long its nonce is remembered against replays. Default 5m. It
	// changes only with a restart.
	SignatureMaxSkew time.Duration

	// Routes are the declarative REST routes.
	Routes []Route
	// Callees are procedures served by HTTP upstreams.
	Callees []Callee
	// Webhooks post the events of topics to HTTP endpoints.
	Webhooks []Webhook

	// Mount adds other handlers to the gateway's mux: pattern (as
	// net/http.ServeMux takes them, e.g. "/oauth/" or
	// "/.well-known/") → handler. cmd mounts the OAuth2 server's
	// endpoints here. Mounted handlers get the gateway's connection,
	// header and time limits and are counted in the HTTP metrics (route
	// label "mount:" + pattern); their authentication is their own. A
	// pattern that conflicts with the gateway's own endpoints or routes is
	// a configuration error.
	Mount map[string]http.Handler

	// Hosts are the host names requests may name (the Host header, port
	// and case ignored; "*.example.com" for the names below it; "*" for
	// any), against DNS rebinding (host.go). IP addresses and localhost
	// are always allowed. Set, every request is checked; empty, only
	// requests that arrive on a loopback address are: a reverse proxy on
	// the same host that passes its clients' Host on must have it listed.
	Hosts []string
	// TrustedProxies are the reverse proxies in front of the gateway: a
	// request from one has the client it names in X-Forwarded-For, else
	// Forwarded, as its RemoteAddr, which the per-address limits key on
	// (proxy.go). Empty: every request's address is its TCP peer's.
	TrustedProxies []netip.Prefix
	// AuthFailuresExempt are the networks whose requests are never
	// counted nor refused by the failed-authentication limiter
	// (Limits.AuthFailures), as limits.auth_failures.exempt is for the WAMP
	// and OAuth2 limiters. Compared with the client's address (after
	// TrustedProxies), IPv4-mapped addresses unmapped.
	AuthFailuresExempt []netip.Prefix
	// KnownHosts are names allowed as Hosts' are, without checking every
	// request when Hosts is empty (cmd: the OAuth2 issuer's host).
	KnownHosts []string

	// CORS applies to the bridge endpoints; routes have their own. The
	// zero value allows no cross-origin request.
	CORS CORS
	// Errors maps WAMP error URIs to HTTP statuses, over the default table
	// (see problem.go); routes may override them again.
	Errors map[string]int
	// ApplicationErrorStatus is the status of a WAMP error URI that no
	// table maps (an application error): 400-599. Default (0) 502.
	ApplicationErrorStatus int
	// CallTimeout is the timeout of a bridge call that gives none, and of
	// a route without a timeout. Default 30s.
	CallTimeout time.Duration
	// MaxCallTimeout caps a bridge call's options.timeout. Default 5m.
	MaxCallTimeout time.Duration

	// Limits bound what clients can make the gateway hold.
	Limits Limits

	// Stats feeds GET /metrics with the router's and the transports'
	// counters; nil exports the gateway's own metrics and Go's runtime
	// only.
	Stats StatsSource
	// Ready is asked by GET /readyz besides the gateway's own listener:
	// the router's listeners up, the mesh connected (nil: ready once
	// started).
	Ready func() error
	// Logger receives the gateway's log lines. Default slog.Default().
	Logger *slog.Logger
	// HTTPClient makes the outbound requests of HTTP callees and webhooks
	// (their timeouts are per request). Default: a client with connection
	// reuse and no overall timeout that follows no redirect (a 3xx is the
	// upstream's answer: callees fail with edgewamp.error.upstream,
	// webhooks drop the event as rejected), so that an upstream cannot
	// send the gateway's requests, secrets and signatures elsewhere, and
	// that takes at most MaxUpstreamHeader bytes of response header.
	HTTPClient *http.Client

	// now, when set (by a test), is the clock of the gateway's durations
	// (see nanos); the monotonic clock when nil.
	now func() time.Time
}

// RealmAccess says whether a realm serves the bridge endpoints and to whom.
type RealmAccess struct {
	Name string
	// Bridge enables /wamp/{realm}/call, publish and events.
	Bridge bool
	// Security is the realm's RBAC switch: when set, the bridge serves
	// only principals with a role in BridgeRoles ("off for realms with
	// security unless a role grants them").
	Security    bool
	BridgeRoles []string
	// Anonymous allows requests without credentials, as AnonymousRole.
	Anonymous     bool
	AnonymousRole string
}

// Limits bound what HTTP clients can make the gateway hold. Zero values
// take the defaults given.
type Limits struct {
	MaxBody           int           // request body bytes (413 beyond); default 1 MiB, at most MaxBodyMax
	MaxHeader         int           // request header bytes (431 beyond); default 16 KiB, at most MaxHeaderMax
	ReadHeaderTimeout time.Duration // headers must arrive within it (slowloris); default 5s
	BodyTimeout       time.Duration // a request's body must arrive within it, from the request's start, read or not (bodyWatch; 408 beyond); default 10s
	WriteTimeout      time.Duration // a response write (an SSE frame) must progress within it; default 10s
	IdleTimeout       time.Duration // keep-alive connections idle this long close; default 60s
	MaxConnections    int           // open HTTP connections; more wait in the listen backlog; default 10,000

	MaxInFlight            int           // requests being served (503 beyond); default 8192
	MaxInFlightPerIdentity int           // per principal (429 beyond); default 1024
	MaxInFlightPerAddress  int           // requests without credentials per client address, IPv6 /64 (429 beyond); default MaxInFlightPerIdentity/8 (see pool.go)
	MaxSessions            int           // WAMP sessions the gateway holds; default 1024
	SessionsPerIdentity    int           // sessions one principal's requests spread over; default min(shards, 4)
	SessionIdle            time.Duration // a principal's sessions close after this long unused; default 60s

	MaxStreams            int           // SSE streams in all (503 beyond), and at most MaxConnections less a sixteenth (streamLimit); default 10,000
	MaxStreamsPerClient   int           // SSE streams per client IP address (429 beyond); default 1000
	MaxStreamsPerIdentity int           // event streams of one principal with credentials (API or signing key, bearer subject and role), from any address (429 beyond); default MaxStreams/4 (requests without credentials: MaxStreamsPerClient)
	SSEQueue              int           // frames queued per SSE stream; default 256
	SSEBuffer             int           // bytes queued per SSE stream (one larger frame fits an empty queue); default 1 MiB
	SSEBufferTotal        int64         // bytes queued to all SSE clients: events (each frame once) and streamed calls' progressive results, and the frames being written; past it those that stopped reading are cut (sse.go); default 64 MiB
	SSEKeepalive          time.Duration // comment line on an idle stream; default 15s

	AuthFailures int // failed authentications per client IP per minute before 429; default 30
}

// Route is a declarative REST route: an HTTP method and path pattern
// mapped to a WAMP call or publication. See routes.go for the expression
// syntax of Args, Kwargs and Response.Body.
type Route struct {
	Name    string // for metrics, logs and OpenAPI; default "METHOD path"
	Summary string // OpenAPI summary
	Method  string // GET, POST, PUT, PATCH, DELETE
	Path    string // e.g. /devices/{id}/state (net/http.ServeMux syntax)
	Realm   string
	Call    string // procedure URI (exactly one of Call and Publish)
	Publish string // topic URI
	// Args and Kwargs are templates: YAML/JSON values in which a string
	// "$/pointer[|conversion][?]" is replaced by the request's value.
	Args   any
	Kwargs any
	// Acknowledge, Retain, ExcludeMe, DiscloseMe: WAMP options.
	Acknowledge bool
	Retain      bool
	DiscloseMe  bool
	Response    Response
	Timeout     time.Duration
	Auth        Auth
	// AuthID and Role are the identity a route with Auth.Type "none"
	// acts as; empty: the realm's anonymous role.
	AuthID    string
	Role      string
	CORS      *CORS
	BodyLimit int            // default Limits.MaxBody; at most MaxBodyMax
	Errors    map[string]int // WAMP error URI → status, for this route
}

// Response maps a call's result to the HTTP response.
type Response struct {
	// Body is "$" (the whole result {"args":[...],"kwargs":{...}}, the
	// default), or a pointer into it: "$/args/0", "$/kwargs",
	// "$/kwargs/state".
	Body string
	// Status on success. Default 200 (202 for a publication without
	// acknowledge).
	Status int
}

// Auth is how a route authenticates its requests.
type Auth struct {
	// Type is "none", "bearer" (a token checked by Options.Bearer),
	// "apikey", "signed" or "any" (whichever credential the request
	// carries, none meaning anonymous). Default "any".
	Type string
	// Scopes a bearer token must all carry.
	Scopes []string
	// Roles of which the principal must have one.
	Roles []string
	// Keys restricts a route to these key names (API keys' names,
	// signing keys' ids): with type any, requests without credentials
	// and bearer tokens are refused too (type bearer or none with keys is
	// a configuration error). Once the server runs, a name whose key a
	// reload removed (SetAccess) matches no key: a route left with none
	// refuses every request.
	Keys []string
}

// APIKey is an API key and the principal it stands for.
type APIKey struct {
	// Name identifies the key in routes' Auth.Keys, logs and reloads;
	// default "key<index>", which a reload that removes a key before it
	// shifts (and its AuthID with it, when that is not given).
	Name   string
	Key    string
	Realm  string
	AuthID string
	Role   string
}

// SigningKey is a signed-request key (Crossbar's scheme) and the principal
// it stands for.
type SigningKey struct {
	Key    string // the public key id, sent as ?key=
	Secret string
	Realm  string
	AuthID string
	Role   string
}

// CORS is a cross-origin policy.
type CORS struct {
	AllowedOrigins   []string // exact origins, or "*" for any
	AllowedHeaders   []string // default: Content-Type, Authorization, the API-key header, Last-Event-ID
	ExposedHeaders   []string
	AllowCredentials bool
	MaxAge           time.Duration // preflight cache; default 10m
}

// Callee is a procedure the gateway registers on behalf of an HTTP
// upstream: each INVOCATION is POSTed to URL.
type Callee struct {
	// Name identifies the callee in metrics, logs and reloads. Default:
	// its procedure, with "#2", "#3" ... for the second and further
	// callees of one procedure that have no name (in configuration order,
	// and past the names given). A reload keeps a callee whose name and
	// configuration it keeps running, untouched (runners.go).
	Name      string
	Realm     string
	Procedure string
	Match     string // exact (default), prefix, wildcard
	Invoke    string // single (default), roundrobin, random, first, last
	URL       string
	Timeout   time.Duration     // per request; default Options.CallTimeout
	Headers   map[string]string // sent with each request
	// Result is "body" (the response body is the call's single result
	// argument; the default) or "wamp" (the body is {"args":[...],"kwargs":{...}}).
	Result        string
	MaxConcurrent int // requests in flight to the upstream; default 64; past it calls fail with wamp.error.unavailable
	MaxResponse   int // response body bytes; default Limits.MaxBody, at most MaxBodyMax
	// MaxInFlightBytes bounds the bytes of the requests in flight to the
	// upstream (each invocation's JSON body, held until the upstream
	// answers or Timeout); default DefaultCalleeInFlightBytes. Past it
	// calls fail with wamp.error.unavailable, as past MaxConcurrent; an
	// invocation larger than it is taken when none is in flight.
	MaxInFlightBytes int
	AuthID           string
	Role             string
}

// Webhook posts the events of a topic to URL.
type Webhook struct {
	// Name identifies the webhook in metrics, logs and reloads. Default:
	// its topic, with "#2", "#3" ... as Callee.Name's.
	Name        string
	Realm       string
	Topic       string
	Match       string // exact (default), prefix, wildcard
	URL         string
	Timeout     time.Duration // per attempt; default 10s
	Queue       int           // events waiting to be posted; default 1024; past it events are dropped (counted)
	QueueBytes  int           // bytes of the events waiting or being posted; default 16 MiB; past it events are dropped (counted)
	Retries     int           // further attempts after a failure; default 5, negative for none
	Backoff     time.Duration // first retry delay, doubled per attempt (with jitter); default 200ms
	MaxBackoff  time.Duration // default 10s
	Concurrency int           // posts in flight (events may then arrive out of order); default 1
	Headers     map[string]string
	// Secret, when set, signs each body: X-Edgewamp-Signature:
	// sha256=<hex HMAC-SHA256 of the body>.
	Secret string
	AuthID string
	Role   string
	// Deliver: "every" (the default) delivers the events on every node of
	// a mesh whose configuration has the webhook (each event once per
	// node, with one X-Edgewamp-Delivery); "one" on one node at a time:
	// the runner holds the single registration of WebhookLockURI(Name) in
	// the realm before it subscribes, the same webhook on other nodes
	// stands by, and one of them takes over when the holder goes (events
	// published meanwhile are not delivered). Its Role needs register on
	// that URI.
	Deliver string
}

// WebhookLockURI is the procedure a webhook with Deliver "one" registers,
// as a lock, to deliver: edgewamp.gateway.webhook.<16 hex digits of the
// SHA-256 of its name>. Calls to it fail.
func WebhookLockURI(name string) string {
	h := sha256.Sum256([]byte(name))
	return ReservedPrefix + "webhook." + hex.EncodeToString(h[:8])
}

// ReservedPrefix starts the procedures the gateway registers for itself
// (WebhookLockURI): give it to the router as route.Config.InProcessURIs,
// so that no client can take them first.
const ReservedPrefix = "edgewamp.gateway."

// FieldError is a configuration error in one field. Path names the field
// from the Options root, e.g. ["routes", 2, "path"], so that cmd can give
// the line of the configuration file.
type FieldError struct {
	Path []any
	Msg  string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	for i, p := range e.Path {
		switch v := p.(type) {
		case int:
			b.WriteString("[" + strconv.Itoa(v) + "]")
		default:
			if i > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, v)
		}
	}
	return "gateway." + b.String() + ": " + e.Msg
}

func fieldErr(msg string, path ...any) *FieldError { return &FieldError{Path: path, Msg: msg} }

// setDefaults fills defaults and checks scalar options.
func (o *Options) setDefaults(needRouter bool) []error {
	var errs []error
	if o.Addr == "" {
		errs = append(errs, fieldErr("an address is required", "listen"))
	}
	if o.Router == nil && needRouter {
		errs = append(errs, fieldErr("a router is required", "router"))
	}
	if o.APIKeyHeader == "" {
		o.APIKeyHeader = "X-API-Key"
	}
	if o.SignatureMaxSkew <= 0 {
		o.SignatureMaxSkew = 5 * time.Minute
	}
	if o.ApplicationErrorStatus == 0 {
		o.ApplicationErrorStatus = http.StatusBadGateway
	}
	if st := o.ApplicationErrorStatus; st < 400 || st > 599 {
		// Written as the response's status: outside 100-999 net/http
		// panics, and the HTTP lane would write an invalid status line.
		errs = append(errs, fieldErr(fmt.Sprintf("status %d is not an error status (400-599)", st), "application_error_status"))
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 30 * time.Second
	}
	if o.MaxCallTimeout <= 0 {
		o.MaxCallTimeout = 5 * time.Minute
	}
	if o.CallTimeout > o.MaxCallTimeout {
		errs = append(errs, fieldErr("call_timeout exceeds max_call_timeout", "call_timeout"))
	}
	for uri, st := range o.Errors {
		if st < 400 || st > 599 {
			errs = append(errs, fieldErr(fmt.Sprintf("status %d for %q is not an error status (400-599)", st, uri), "errors", uri))
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{CheckRedirect: noRedirect, Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 0, // per request, through its context
			// net/http's default is 10 MiB, held while the body is
			// read: 64 invocations of one callee (max_concurrent) held
			// about 580 MiB until its timeout.
			MaxResponseHeaderBytes: MaxUpstreamHeader,
			ForceAttemptHTTP2:      true,
		}}
	}
	l := &o.Limits
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	defd := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&l.MaxBody, 1<<20)
	if l.MaxBody > MaxBodyMax {
		errs = append(errs, fieldErr(fmt.Sprintf("%d bytes is above the maximum, %d bytes (16MiB, the largest WAMP message): the gateway reads a body whole", l.MaxBody, MaxBodyMax), "limits", "max_body"))
	}
	def(&l.MaxHeader, 16<<10)
	if l.MaxHeader > MaxHeaderMax {
		errs = append(errs, fieldErr(fmt.Sprintf("%d bytes is above the maximum, %d bytes (64KiB): net/http holds a request's head whole while it reads it", l.MaxHeader, MaxHeaderMax), "limits", "max_header"))
	}
	defd(&l.ReadHeaderTimeout, 5*time.Second)
	defd(&l.BodyTimeout, 10*time.Second)
	defd(&l.WriteTimeout, 10*time.Second)
	defd(&l.IdleTimeout, 60*time.Second)
	def(&l.MaxConnections, 10000)
	def(&l.MaxInFlight, 8192)
	def(&l.MaxInFlightPerIdentity, 1024)
	def(&l.MaxInFlightPerAddress, max(l.MaxInFlightPerIdentity/8, 1))
	def(&l.MaxSessions, 1024)
	if l.SessionsPerIdentity <= 0 {
		l.SessionsPerIdentity = 4
		if o.Router != nil && o.Router.Shards() < 4 {
			l.SessionsPerIdentity = o.Router.Shards()
		}
	}
	if l.SessionsPerIdentity > l.MaxSessions {
		errs = append(errs, fieldErr("sessions_per_identity exceeds max_sessions", "limits", "sessions_per_identity"))
	}
	defd(&l.SessionIdle, 60*time.Second)
	def(&l.MaxStreams, 10000)
	def(&l.MaxStreamsPerClient, 1000)
	def(&l.MaxStreamsPerIdentity, max(l.MaxStreams/4, 1))
	def(&l.SSEQueue, 256)
	if l.SSEQueue > MaxSSEQueue {
		errs = append(errs, fieldErr(fmt.Sprintf("sse_queue is at most %d (frames; each event stream and streamed call allocates its queue whole when it opens)", MaxSSEQueue), "limits", "sse_queue"))
	}
	def(&l.SSEBuffer, 1<<20)
	if l.SSEBufferTotal <= 0 {
		l.SSEBufferTotal = 64 << 20
	}
	defd(&l.SSEKeepalive, 15*time.Second)
	def(&l.AuthFailures, 30)
	return errs
}

// The most Limits.SSEQueue, Webhook.Queue and Webhook.Concurrency may be.
// Each sizes what the gateway allocates whole, ahead of any event: a
// channel of SSEQueue slots for every event stream (8 bytes a slot) and
// streamed call (112 bytes) a client opens, a webhook's queue of Queue
// slots and its Concurrency goroutines when it starts. Unbounded, one
// extra digit or three made it allocate gigabytes (a queue of
// 2,000,000,000 took 16 GB, in Validate too, which builds the webhooks'
// runners). The queues' maxima are 64 times their defaults.
const (
	MaxSSEQueue           = 16384
	MaxWebhookQueue       = 65536
	MaxWebhookConcurrency = 1024
)

// MaxHeaderMax is the largest Limits.MaxHeader, as the event loops'
// (loop.MaxHandshakeMax): net/http holds a request's head whole while it
// reads it, about 1.6 times its bytes, for each of MaxConnections. Without
// it any bound was taken: at 1 GiB four clients' 64 MiB heads held 410 MB.
const MaxHeaderMax = 64 << 10

// MaxBodyMax is the largest Limits.MaxBody, Route.BodyLimit and
// Callee.MaxResponse: 16 MiB, the largest WAMP message
// (limits.max_message), whose payload a body (or an upstream's answer)
// becomes. The gateway reads a body whole, its buffer growing by
// doubling: without it any bound was taken, and at 4 GiB one client's
// 511 MiB of body held 1.5 GB.
const MaxBodyMax = 16 << 20

// noRedirect makes a client return a redirect as the response.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// MaxUpstreamHeader bounds the response header the default HTTPClient
// takes from an HTTP callee's upstream or a webhook's target (status
// line and header fields): a larger one fails the request, as a network
// failure (a callee's call gets wamp.error.network_failure, a webhook
// retries).
const MaxUpstreamHeader = 64 << 10

// DefaultedLimits returns l with the defaults New applies filled in.
func DefaultedLimits(l Limits) Limits {
	o := Options{Limits: l}
	o.setDefaults(false)
	return o.Limits
}
