// Package load is wampbench: a lean WAMP load generator. Sessions are
// small state machines (transport handshake, framing, join, a role) run on
// gnet client event loops or, where blocking is simpler, one goroutine
// each. Hot-path messages are pre-encoded templates whose request id and
// timestamp are patched in place (already masked for WebSocket); incoming
// messages are classified by scanning their head only. See bench/README.md
// for the scenarios and the RESULT line each prints.
package load

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Config is one run. Zero fields take the defaults documented on the
// wampbench flags.
type Config struct {
	Scenario  string // idle, rpc, pubsub, churn, authstorm, httpcall, sse, tokens
	URL       string // ws://host:port/path, rs://host:port or tcp://host:port; http://host:port for httpcall, sse and tokens
	Ser       proto.Serializer
	Realm     string
	Src       string // source addresses, "127.0.0.2-127.0.0.40" or a list
	Label     string // target name for the RESULT line
	RouterPID int    // router process: RSS and CPU readings
	Loops     int    // gnet client loops (0: one per CPU the tool may use)
	Driver    string // rpc, pubsub: gnet (default), uring; rpc: goroutine
	Spin      bool   // uring driver: loops poll epoll instead of sleeping in it
	Parallel  int    // dials in flight while connecting

	Warmup   time.Duration
	Duration time.Duration
	Timeout  time.Duration // connect/join phase limit
	Payload  int           // bytes of payload (Arguments) per call/event

	Callers, Callees int
	Procedure        string
	// CalleeURL, when set, is where the callees join: rpc, another node
	// of a mesh (the callers join URL); httpcall, the WAMP URL where the
	// tool registers the callee (none against a bare HTTP server).
	CalleeURL string

	Publishers, Subscribers int
	Rate                    float64 // publications/s, all publishers together; 0 = saturation
	EventRate               float64 // events delivered/s target (sets Rate = EventRate/Subscribers)
	Topic                   string
	// SubURLs, when set, spreads the subscribers over these routers (the
	// nodes of a mesh), in turn; the publishers join URL.
	SubURLs  []string
	PubBatch int // saturation: publications per write
	InFlight int // saturation: events in flight at most (published × subscribers − delivered); <0: no limit

	Sessions int           // idle: sessions to hold
	Procs    int           // idle/authstorm: worker processes (0: auto)
	Settle   time.Duration // idle: wait before reading the router's RSS

	Workers   int     // churn: concurrent joiners
	ChurnRate float64 // churn: joins/s target

	Storm          int    // authstorm: sessions authenticating at once
	AuthID, Secret string // authstorm: WAMP-CRA user with a plain secret
	// TicketFile (authstorm): log in with WAMP-Ticket instead, each session
	// sending the next ticket of this file (one a line: OAuth2 access
	// tokens; one line = every session the same token).
	TicketFile string

	// ClientID and ClientSecret (tokens): a confidential OAuth2 client
	// with the client_credentials grant.
	ClientID, ClientSecret string

	Log io.Writer `json:"-"` // progress messages (stderr); nil: none

	srcs []netip.Addr
}

func (c *Config) defaults() error {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defD := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	if c.URL == "" {
		c.URL = "ws://127.0.0.1:8080/ws"
		if c.Scenario == "httpcall" || c.Scenario == "sse" || c.Scenario == "tokens" {
			c.URL = "http://127.0.0.1:8081"
		}
	}
	if c.Ser == 0 {
		c.Ser = proto.MsgPack
	}
	if c.Realm == "" {
		c.Realm = "realm1"
	}
	if c.Label == "" {
		c.Label = "-"
	}
	if c.Driver == "" {
		c.Driver = "gnet"
	}
	if c.Spin && c.Driver != "uring" {
		return fmt.Errorf("-spin needs -driver uring (it is %s)", c.Driver)
	}
	def(&c.Parallel, 32)
	defD(&c.Warmup, time.Second)
	defD(&c.Duration, 5*time.Second)
	defD(&c.Timeout, 60*time.Second)
	def(&c.Payload, 64)
	def(&c.Callers, 16)
	def(&c.Callees, 1)
	if c.Procedure == "" {
		c.Procedure = "com.bench.echo"
	}
	def(&c.Publishers, 1)
	def(&c.Subscribers, 100)
	if c.Topic == "" {
		c.Topic = "com.bench.topic"
	}
	def(&c.PubBatch, 16)
	def(&c.InFlight, 300000)
	def(&c.Sessions, 5000)
	defD(&c.Settle, 2*time.Second)
	def(&c.Workers, 64)
	if c.ChurnRate == 0 {
		c.ChurnRate = 5000
	}
	def(&c.Storm, 1000)
	if c.EventRate > 0 {
		c.Rate = c.EventRate / float64(c.Subscribers)
	}
	var err error
	c.srcs, err = parseSources(c.Src)
	return err
}

func (c *Config) logf(format string, a ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, "wampbench: "+format+"\n", a...)
	}
}

// Run runs one scenario and returns its result.
func Run(cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	switch cfg.Scenario {
	case "rpc":
		return runRPC(&cfg)
	case "pubsub":
		return runPubSub(&cfg)
	case "idle":
		return runIdle(&cfg)
	case "churn":
		return runChurn(&cfg)
	case "authstorm":
		return runAuthStorm(&cfg)
	case "httpcall":
		return runHTTPCall(&cfg)
	case "sse":
		return runSSE(&cfg)
	case "tokens":
		return runTokens(&cfg)
	}
	return nil, fmt.Errorf("unknown scenario %q (want idle, rpc, pubsub, churn, authstorm, httpcall, sse or tokens)", cfg.Scenario)
}

// header starts a RESULT with the fields every scenario reports.
func (c *Config) header(ep *endpoint) *Result {
	r := &Result{}
	r.Set("scenario", c.Scenario)
	r.Set("target", c.Label)
	r.Set("transport", ep.transportName())
	r.Set("ser", ep.ser.String())
	return r
}

// tracker counts sessions that joined (and did their setup) or failed,
// and signals when all n have done one or the other.
type tracker struct {
	n        int64
	ok, fail atomic.Int64
	done     chan struct{}
	once     sync.Once
	mu       sync.Mutex
	reasons  map[string]int
}

func newTracker(n int) *tracker {
	t := &tracker{n: int64(n), done: make(chan struct{}), reasons: map[string]int{}}
	if n == 0 {
		close(t.done)
	}
	return t
}

func (t *tracker) mark(ok bool, err error) {
	var c int64
	if ok {
		c = t.ok.Add(1) + t.fail.Load()
	} else {
		t.mu.Lock()
		t.reasons[reason(err)]++
		t.mu.Unlock()
		c = t.fail.Add(1) + t.ok.Load()
	}
	if c >= t.n {
		t.once.Do(func() { close(t.done) })
	}
}

// wait waits for all sessions or the timeout; it reports whether all are
// accounted for.
func (t *tracker) wait(timeout time.Duration) bool {
	select {
	case <-t.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

func (t *tracker) reasonString() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return countsString(t.reasons)
}

// reason shortens an error to a label for counts.
func reason(err error) string {
	if err == nil {
		return "none"
	}
	s := err.Error()
	switch {
	case errors.Is(err, errAbort):
	case len(s) > 60:
		s = s[:60]
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c == ',' || c == ':' || c == '=' {
			c = '_'
		}
		out = append(out, c)
	}
	return string(out)
}

// connector opens sessions: dials (from the source addresses) and hands
// each socket to the loop client, dialling Parallel at a time.
type connector struct {
	cfg *Config
	ep  *endpoint
	lc  loops
	d   dialer
}

func newConnector(cfg *Config, ep *endpoint, lc loops) *connector {
	return &connector{cfg: cfg, ep: ep, lc: lc, d: dialer{srcs: cfg.srcs}}
}

// open connects len(sessions) sessions; a failed dial is reported to tr.
func (cn *connector) open(sessions []*sess, tr *tracker) {
	var next atomic.Int64
	var wg sync.WaitGroup
	par := cn.cfg.Parallel
	if par > len(sessions) {
		par = len(sessions)
	}
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(sessions) {
					return
				}
				c, err := cn.d.dial(cn.ep.host, 10*time.Second)
				if err == nil && cn.ep.tls != nil {
					err = sessions[i].handshakeTLS(c, 10*time.Second)
					if err != nil {
						c.Close()
					}
				}
				if err == nil {
					err = cn.lc.add(c, sessions[i])
				}
				if err != nil {
					tr.mark(false, err)
				}
			}
		}()
	}
	wg.Wait()
}
