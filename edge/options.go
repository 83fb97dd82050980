package edge

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/edgewamp/edgewamp/route"
)

// Options configures a Node. The zero value of every field but Router,
// Name and one of Cluster, Leaf or NatsURL is a sane default.
type Options struct {
	// Router is the router the node links into the mesh. Required.
	Router *route.Router
	// Name is the node's name, unique in the mesh: letters, digits, '-'
	// and '_'. It is also the embedded NATS server's name. Required.
	Name string

	// Cluster: nodes of one site meshed by NATS routes.
	Cluster ClusterOptions
	// Leaf: an edge node joins a hub through a NATS leaf-node connection
	// (Remotes), or a hub accepts edge nodes (Listen).
	Leaf LeafOptions
	// NatsURL, instead of an embedded server, joins an existing NATS
	// deployment (comma-separated URLs). Cluster and Leaf must then be
	// empty.
	NatsURL string

	// TLS secures routes, leaf-node links and the NatsURL connection:
	// Config serves (and, for remotes and NatsURL, dials) with its
	// certificates and verifies peers with its RootCAs/ClientCAs.
	TLS *tls.Config
	// Token is a shared secret every node presents on routes, leaf-node
	// links and to NatsURL.
	Token string
	// NKeySeed is an nkey seed ("SU..."), the same on every node: edge
	// nodes sign their leaf-node connection with it, hubs accept the
	// matching public key, it authenticates to NatsURL, and the nodes of a
	// cluster present a password derived from it on their routes and
	// require it of the routes they accept (routePassword).
	NKeySeed string

	// PingInterval and MaxPingsOut tune the NATS pings of routes and
	// leaf-node links: a peer that answers none of MaxPingsOut pings is
	// cut. Defaults 1s and 2 (a black-holed link is cut within about 3 s).
	PingInterval time.Duration
	MaxPingsOut  int
	// Heartbeat is how often the node announces itself to the mesh;
	// PeerTimeout how long a node may stay silent before the others take
	// it for dead (its calls fail, its registrations go). Defaults 500ms
	// and 2s.
	Heartbeat   time.Duration
	PeerTimeout time.Duration
	// GatherTimeout bounds the wait for other nodes' answers to a meta
	// query or get_retained. Default 500ms.
	GatherTimeout time.Duration
	// MaxOutbound bounds the bytes queued for the mesh and not yet handed
	// to NATS; past it events are dropped and calls fail (counted). The
	// node's own control messages (heartbeats, directory) may use a
	// quarter more. Default 64 MiB.
	MaxOutbound int64
	// MaxInbound bounds the bytes received from other nodes and waiting
	// for the node's dispatchers, events and the rest alike (in.go).
	// Events, meta queries and gather answers may fill three quarters of
	// it, past which they are dropped (counted, Stats.InboundFull for
	// events, Stats.ControlFull for the rest), so that an event larger
	// than that is never received; calls, results and their frames the
	// whole of it (then Stats.ControlFull); the other nodes' directory
	// messages and heartbeats have a reserve of a quarter more. Default
	// 64 MiB.
	MaxInbound int64
	// MaxGathered bounds the bytes of other nodes' answers that this
	// node's gathers (meta queries over the realm, get_retained) hold
	// until they end: a node answers get_retained with up to 4 MiB, and a
	// node runs up to 1,024 gathers at once. An answer past it is
	// dropped (Stats.GatherAnswersDropped) and its node counted among
	// those that did not answer. Default: MaxInbound.
	MaxGathered int64
	// MaxInterest bounds the distinct subjects (exact topics, patterns,
	// prefixes) the node subscribes to in NATS for one realm, each of
	// which every NATS server of the mesh keeps; past it, or past 128
	// bytes or 8 components of subject each on average, the node
	// subscribes to all of the realm's events instead (see
	// realmInterest). Default 16,384.
	MaxInterest int
	// testMeshVersion, set by tests only, makes the node speak another
	// mesh version than meshVersion (-1: none, and no check of the
	// others', as the releases before the version handshake).
	testMeshVersion int
	// testNoAnnex, set by tests only, makes the node send its directory
	// entries without annexes, as the previous release does.
	testNoAnnex bool
	// testClaimSweep, set by tests only, replaces claimSweepEvery.
	testClaimSweep time.Duration
	// testClaimBytes, set by tests only, replaces claimBucketBytes when
	// the node makes the claim bucket.
	testClaimBytes int64
	// testNoClaimShares, set by tests only, lifts the node's and the
	// sessions' shares of the claim store, so that one session fills it.
	testNoClaimShares bool
	// testStreamFails, set by tests only, fails the claim store's first
	// testStreamFails look-ups of its bucket's stream, as a busy
	// JetStream's time-outs do.
	testStreamFails int
	// testClaimQueue, set by tests only, replaces maxReleaseJobs as the
	// bound of the claim worker's queue and of the releases it keeps.
	testClaimQueue int
	// testReconcile, set by tests only, replaces reconcileEvery (and so
	// shortens WonHold).
	testReconcile time.Duration
	// testQuietStart, set by tests only, keeps the node from sending its
	// first heartbeat at Start (as when it goes before the routes form).
	testQuietStart bool

	// MaxPayload is the largest message the embedded server accepts.
	// Default 24 MiB (a 16 MiB WAMP message with its envelope).
	MaxPayload int32
	// StoreDir is where the embedded server keeps its JetStream state
	// (exclusive-registration claims). Default: a fresh directory under
	// the system's temporary directory, removed at Shutdown.
	StoreDir string
	// Logger receives the node's log lines. Default slog.Default().
	Logger *slog.Logger
}

// ClusterOptions configures NATS routes between the nodes of a site.
type ClusterOptions struct {
	// Listen is the route listener, host:port.
	Listen string
	// Routes are the other nodes' route URLs, nats://host:port.
	Routes []string
	// Name is the NATS cluster name. Default "edgewamp".
	Name string
	// Advertise is the address other nodes reach this one at, when it
	// differs from Listen (NAT, a proxy).
	Advertise string
}

// LeafOptions configures NATS leaf-node links.
type LeafOptions struct {
	// Listen accepts edge nodes (a hub), host:port.
	Listen string
	// Remotes are hub URLs (nats://host:port) this node dials as an edge
	// node; it keeps serving its local clients while they are down.
	Remotes []string
	// Advertise is the address edge nodes reach this hub at, when it
	// differs from Listen.
	Advertise string
}

// validName reports whether name may be a node's name (a NATS subject
// token): 1 to 64 letters, digits, '-' or '_'. A loop, not a regular
// expression: the control dispatcher checks the sender's name of every
// message it receives (peerFor), and the pattern's match took 250 ns for
// a two-letter name and 1.3-1.8 µs for one of 24 letters, per NATS
// message of calls and results.
func validName(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Defaults.
const (
	defaultPingInterval  = time.Second
	defaultMaxPingsOut   = 2
	defaultHeartbeat     = 500 * time.Millisecond
	minHeartbeat         = 50 * time.Millisecond
	minPingInterval      = 100 * time.Millisecond
	minMaxInbound        = 1 << 20
	minMaxOutbound       = 1 << 20
	defaultPeerTimeout   = 2 * time.Second
	defaultGatherTimeout = 500 * time.Millisecond
	defaultMaxOutbound   = 64 << 20
	defaultMaxInbound    = 64 << 20
	defaultMaxPayload    = 24 << 20
	defaultMaxInterest   = 16384
)

// validate checks o, gathering every error, and applies defaults.
func (o *Options) validate() error {
	var errs []error
	if o.Router == nil {
		errs = append(errs, errors.New("edge: Options.Router is required"))
	}
	if err := o.check(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Check reports every error New would find in o, but for a missing
// Router: a configuration check before the router exists. It does not
// change o.
func (o Options) Check() error { return o.check() }

// check checks everything in o but the Router, gathering every error, and
// applies defaults.
func (o *Options) check() error {
	var errs []error
	if !validName(o.Name) {
		errs = append(errs, fmt.Errorf("edge: node name %q must be 1 to 64 letters, digits, '-' or '_'", o.Name))
	}
	embedded := o.Cluster.Listen != "" || len(o.Cluster.Routes) > 0 || o.Leaf.Listen != "" || len(o.Leaf.Remotes) > 0
	switch {
	case o.NatsURL != "" && embedded:
		errs = append(errs, errors.New("edge: nats_url joins an existing NATS deployment; it excludes cluster and leaf"))
	case o.NatsURL == "" && !embedded:
		errs = append(errs, errors.New("edge: a mesh needs cluster, leaf or nats_url"))
	}
	// The embedded server refuses these cluster names when it starts (run
	// said "edge: NATS server: cluster name cannot contain spaces" after
	// check-config had taken the file).
	if o.Cluster.Listen != "" {
		switch {
		case strings.Contains(o.Cluster.Name, " "):
			errs = append(errs, fmt.Errorf("edge: cluster.name %q must not contain spaces (NATS refuses them)", o.Cluster.Name))
		case o.Cluster.Name == "_":
			errs = append(errs, fmt.Errorf("edge: cluster.name %q is reserved by NATS", o.Cluster.Name))
		}
	}
	if len(o.Cluster.Routes) > 0 && o.Cluster.Listen == "" {
		errs = append(errs, errors.New("edge: cluster.routes needs cluster.listen (routes are two-way)"))
	}
	for _, a := range []struct{ what, addr string }{{"cluster.listen", o.Cluster.Listen}, {"leaf.listen", o.Leaf.Listen},
		{"cluster.advertise", o.Cluster.Advertise}, {"leaf.advertise", o.Leaf.Advertise}} {
		if a.addr == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("edge: %s %q is not host:port", a.what, a.addr))
		} else if strings.HasSuffix(a.what, ".advertise") && !validPort(port) {
			errs = append(errs, fmt.Errorf("edge: %s %q: the port must be a number from 1 to 65535", a.what, a.addr))
		}
	}
	for _, l := range []struct {
		what string
		urls []string
	}{{"cluster.routes", o.Cluster.Routes}, {"leaf.remotes", o.Leaf.Remotes}} {
		for _, u := range l.urls {
			if err := checkNatsURL(u); err != nil {
				errs = append(errs, fmt.Errorf("edge: %s: %w", l.what, err))
			}
		}
	}
	if o.NatsURL != "" {
		for _, u := range strings.Split(o.NatsURL, ",") {
			if err := checkNatsURL(strings.TrimSpace(u)); err != nil {
				errs = append(errs, fmt.Errorf("edge: nats_url: %w", err))
			}
		}
	}
	if o.NKeySeed != "" {
		if _, err := nkeys.FromSeed([]byte(o.NKeySeed)); err != nil {
			errs = append(errs, fmt.Errorf("edge: the nkey seed is not valid: %v", err))
		}
	}
	if o.Token != "" && o.NKeySeed != "" {
		errs = append(errs, errors.New("edge: credentials: give a token or an nkey seed, not both"))
	}
	for _, d := range []struct {
		what string
		v    time.Duration
	}{{"ping_interval", o.PingInterval}, {"heartbeat", o.Heartbeat}, {"peer_timeout", o.PeerTimeout}, {"gather_timeout", o.GatherTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("edge: %s must not be negative", d.what))
		}
	}
	if o.MaxPingsOut < 0 {
		errs = append(errs, errors.New("edge: max_pings_out must not be negative"))
	}
	if o.PingInterval == 0 {
		o.PingInterval = defaultPingInterval
	}
	if o.MaxPingsOut == 0 {
		o.MaxPingsOut = defaultMaxPingsOut
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = defaultHeartbeat
	}
	if o.PeerTimeout == 0 {
		o.PeerTimeout = defaultPeerTimeout
	}
	// Lower bounds: a heartbeat of a microsecond floods the mesh with
	// O(N²) announcements, NATS pings that often make links flap, and an
	// inbound budget under a directory sync's part (1 MiB) never receives
	// it, so a peer's registrations never arrive.
	if o.Heartbeat < minHeartbeat {
		errs = append(errs, fmt.Errorf("edge: heartbeat %v is below the minimum %v", o.Heartbeat, minHeartbeat))
	}
	if o.PingInterval < minPingInterval {
		errs = append(errs, fmt.Errorf("edge: ping_interval %v is below the minimum %v", o.PingInterval, minPingInterval))
	}
	if o.MaxOutbound > 0 && o.MaxOutbound < minMaxOutbound {
		errs = append(errs, fmt.Errorf("edge: max_outbound %d is below the minimum %d (1 MiB: a directory resync is sent in parts of up to 1 MiB, which a smaller queue never takes)", o.MaxOutbound, minMaxOutbound))
	}
	if o.MaxInbound > 0 && o.MaxInbound < minMaxInbound {
		errs = append(errs, fmt.Errorf("edge: max_inbound %d is below the minimum %d (1 MiB: a peer's directory sync comes in parts of up to 1 MiB)", o.MaxInbound, minMaxInbound))
	}
	if o.PeerTimeout <= o.Heartbeat {
		errs = append(errs, fmt.Errorf("edge: peer_timeout %v must exceed the heartbeat %v", o.PeerTimeout, o.Heartbeat))
	}
	if o.GatherTimeout == 0 {
		o.GatherTimeout = defaultGatherTimeout
	}
	if o.MaxOutbound <= 0 {
		o.MaxOutbound = defaultMaxOutbound
	}
	if o.MaxInbound <= 0 {
		o.MaxInbound = defaultMaxInbound
	}
	if o.MaxGathered <= 0 {
		o.MaxGathered = o.MaxInbound
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = defaultMaxPayload
	}
	if o.MaxInterest < 0 {
		errs = append(errs, errors.New("edge: max_interest must not be negative"))
	}
	if o.MaxInterest == 0 {
		o.MaxInterest = defaultMaxInterest
	}
	if o.Cluster.Name == "" {
		o.Cluster.Name = "edgewamp"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return errors.Join(errs...)
}

// checkNatsURL checks a mesh URL: nats:// or tls://, a host and a port
// from 1 to 65535 (as listen addresses have). Its errors quote the URL
// with its password or token redacted (a URL refused for its form was
// quoted whole, secret included, by check-config and in run's log line).
func checkNatsURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		why := "not a URL"
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			switch ue.Err.(type) {
			case url.EscapeError: // it quotes the escape, perhaps the password's
				why = "invalid URL escape"
			default:
				why = ue.Err.Error()
			}
		}
		return fmt.Errorf("%q: %s; want nats://host:port", redactUnparsedURL(s), why)
	}
	switch u.Scheme {
	case "nats", "tls":
	default:
		return fmt.Errorf("%q: want nats://host:port", redactURLs(s))
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" {
		return fmt.Errorf("%q: want nats://host:port", redactURLs(s))
	}
	if !validPort(port) {
		return fmt.Errorf("%q: want nats://host:port, the port a number from 1 to 65535", redactURLs(s))
	}
	return nil
}

// validPort reports whether p is a port number from 1 to 65535.
func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == p
}

// redactUnparsedURL returns s, a URL that url.Parse refuses, for an error
// message: anything before the last '@' after the scheme (user info: a
// password, a token) is replaced by xxxxx.
func redactUnparsedURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		scheme, rest = "", s
	} else {
		scheme += "://"
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = "xxxxx" + rest[i:]
	}
	return scheme + rest
}

// withCredentials returns the URLs with password (the token, or on routes
// the one routePassword derives from an nkey seed) as user info, under
// tokenUser: routes and leaf remotes authenticate that way. A URL that
// has user info keeps its own.
func withCredentials(urls []string, password string) ([]*url.URL, error) {
	var out []*url.URL
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil {
			return nil, err
		}
		if password != "" && u.User == nil {
			u.User = url.UserPassword(tokenUser, password)
		}
		out = append(out, u)
	}
	return out, nil
}

// tokenUser is the user name that carries the shared token on routes and
// leaf-node links (they authenticate with user and password), and on
// routes the password derived from an nkey seed (routePassword).
const tokenUser = "edgewamp"

// routePassword is the password of the routes between the nodes of a
// cluster whose credential is an nkey seed: NATS routes authenticate with
// a user and password only (no nkey), and without them a route port
// takes any node. It is derived from the seed (HMAC-SHA256 keyed by it
// over a fixed label, in hex), so that the nodes given the one seed
// agree on it and no other can, and a route's CONNECT never carries the
// seed itself.
func routePassword(seed string) string {
	m := hmac.New(sha256.New, []byte(seed))
	m.Write([]byte("edgewamp mesh route password v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// storeDir returns the JetStream directory and whether the node made it
// (and removes it at Shutdown).
func (o *Options) storeDir() (string, bool, error) {
	if o.StoreDir != "" {
		return o.StoreDir, false, os.MkdirAll(o.StoreDir, 0o700)
	}
	d, err := os.MkdirTemp("", "edgewamp-"+o.Name+"-")
	return d, true, err
}
