package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// meshConfig is the `mesh:` block: how this router joins others into one
// mesh over NATS (package edge). Without cluster, leaf or nats_url the
// router runs alone and starts no NATS server.
type meshConfig struct {
	Node          string            `yaml:"node"`
	Cluster       meshClusterConfig `yaml:"cluster"`
	Leaf          meshLeafConfig    `yaml:"leaf"`
	NatsURL       string            `yaml:"nats_url"`
	TLS           *meshTLSConfig    `yaml:"tls"`
	Credentials   meshCredentials   `yaml:"credentials"`
	PingInterval  duration          `yaml:"ping_interval"`
	MaxPingsOut   int               `yaml:"max_pings_out"`
	Heartbeat     duration          `yaml:"heartbeat"`
	PeerTimeout   duration          `yaml:"peer_timeout"`
	GatherTimeout duration          `yaml:"gather_timeout"`
	MaxOutbound   size              `yaml:"max_outbound"`
	MaxInbound    size              `yaml:"max_inbound"`
	StoreDir      string            `yaml:"store_dir"`
	// MaxInvocations bounds the calls from other nodes in flight on this
	// node's callees; CallsInFlight bounds one session's calls in flight
	// on other nodes' callees (route.Config.MaxMeshInvocations,
	// MaxMeshCalls).
	MaxInvocations int `yaml:"max_invocations"`
	CallsInFlight  int `yaml:"calls_in_flight"`
	// MaxInterest bounds the distinct subjects this node subscribes to in
	// NATS per realm (edge.Options.MaxInterest).
	MaxInterest int `yaml:"max_interest"`
}

type meshClusterConfig struct {
	Name      string   `yaml:"name"`
	Listen    string   `yaml:"listen"`
	Routes    []string `yaml:"routes"`
	Advertise string   `yaml:"advertise"`
}

type meshLeafConfig struct {
	Listen    string   `yaml:"listen"`
	Remotes   []string `yaml:"remotes"`
	Advertise string   `yaml:"advertise"`
}

type meshTLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// CA verifies the other nodes' certificates (and, on listeners,
	// requires one).
	CA string `yaml:"ca"`
}

type meshCredentials struct {
	Token        string `yaml:"token"`
	TokenEnv     string `yaml:"token_env"`
	NKeySeed     string `yaml:"nkey_seed"`
	NKeySeedFile string `yaml:"nkey_seed_file"`
}

// meshFlags are the command-line shortcuts for the common case; they
// override the configuration file.
type meshFlags struct {
	node, clusterListen, clusterRoutes, leafListen, leafRemotes string
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// apply overrides the configuration with the flags that were given, and
// records them so that an error in their values names the flag.
func (f *meshFlags) apply(c *config) {
	m := &c.Mesh
	if f.node != "" {
		m.Node = f.node
		c.setByFlag("-node", "mesh", "node")
	}
	if f.clusterListen != "" {
		m.Cluster.Listen = f.clusterListen
		c.setByFlag("-cluster-listen", "mesh", "cluster", "listen")
	}
	if f.clusterRoutes != "" {
		m.Cluster.Routes = splitList(f.clusterRoutes)
		c.setByFlag("-cluster-routes", "mesh", "cluster", "routes")
	}
	if f.leafListen != "" {
		m.Leaf.Listen = f.leafListen
		c.setByFlag("-leaf-listen", "mesh", "leaf", "listen")
	}
	if f.leafRemotes != "" {
		m.Leaf.Remotes = splitList(f.leafRemotes)
		c.setByFlag("-leaf-remotes", "mesh", "leaf", "remotes")
	}
}

// enabled reports whether the router joins a mesh.
func (m *meshConfig) enabled() bool {
	return m.Cluster.Listen != "" || len(m.Cluster.Routes) > 0 || m.Leaf.Listen != "" || len(m.Leaf.Remotes) > 0 || m.NatsURL != ""
}

// cleartextWarning says, when a credential would cross the network in
// clear text, over which addresses, or "": without mesh.tls, the token
// (NATS sends it in the CONNECT line of routes, leaf links and nats_url)
// or the route password derived from an nkey seed (routes; a leaf link
// signs a nonce with the seed and sends no secret), or a dialled URL's
// own user part (NATS sends it in the CONNECT line beside the token or
// the signature), on an address that is
// not loopback (a listener on every interface counts). Anyone on the
// path can read it and join the mesh, whose nodes trust each other's
// authorization decisions. Not refused: a lab or a private network may
// do without TLS; run and check-config say it. A tls:// URL dialled is
// not counted.
func (m *meshConfig) cleartextWarning() string {
	if !m.enabled() || m.TLS != nil {
		return ""
	}
	token := m.Credentials.Token != "" || m.Credentials.TokenEnv != ""
	nkey := m.Credentials.NKeySeed != "" || m.Credentials.NKeySeedFile != ""
	// Without mesh.credentials, a URL's own user part (a NATS user and
	// password, or a token: nats://user:password@host, nats://token@host)
	// is the credential sent in clear, on the URLs that have one. Before,
	// nothing was said of it. With an nkey seed only, a leaf link or
	// nats_url signs a nonce, and sends its URL's user part beside the
	// signature: those URLs that have one are named too (before, they
	// went unwarned).
	urlOnly := !token && !nkey
	var where []string
	own := 0 // the URLs in where named for their own user part
	listen := func(key, addr string) {
		if host, _, err := net.SplitHostPort(addr); addr != "" && (err != nil || !loopbackHost(host)) {
			where = append(where, key+" "+addr)
		}
	}
	dial := func(key string, ownOnly bool, urls ...string) {
		for _, s := range urls {
			if s == "" || ownOnly && !urlCredential(s) {
				continue
			}
			if u, err := url.Parse(s); err != nil || u.Scheme != "tls" && !loopbackHost(u.Hostname()) {
				where = append(where, key+" "+redactedURL(s))
				if ownOnly {
					own++
				}
			}
		}
	}
	if !urlOnly {
		listen("mesh.cluster.listen", m.Cluster.Listen)
	}
	dial("mesh.cluster.routes", urlOnly, m.Cluster.Routes...)
	if token {
		listen("mesh.leaf.listen", m.Leaf.Listen)
	}
	dial("mesh.leaf.remotes", !token, m.Leaf.Remotes...)
	// A list, as edge reads it: before, it was taken for one URL, whose
	// second password was shown and whose loopback addresses were warned
	// of.
	dial("mesh.nats_url", !token, splitList(m.NatsURL)...)
	if len(where) == 0 {
		return ""
	}
	what := "the mesh token crosses"
	switch {
	case token:
	case own == len(where):
		what = "the credential in a mesh URL (its user part) crosses"
	case own > 0:
		what = "the route password derived from the nkey seed and the credential in a mesh URL (its user part) cross"
	default:
		what = "the route password derived from the nkey seed crosses"
	}
	return "mesh: without mesh.tls, " + what + " the network in clear text (" + strings.Join(where, ", ") +
		"): anyone on the path can read it and join the mesh; set mesh.tls (cert, key, ca), or keep these addresses on loopback or a network you trust"
}

// redactedURL is the mesh URL s for a warning, its user part (a
// password, or NATS's token as the user: nats://TOKEN@host) replaced by
// xxxxx, as edge writes URLs in its log lines and errors. Before,
// cleartextWarning quoted the URL whole, and check-config printed, and
// run logged into the journal at every start, the credential that
// secretWarnings names by its key only.
func redactedURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if i := strings.LastIndex(s, "@"); i >= 0 {
			scheme, _, ok := strings.Cut(s, "://")
			if !ok {
				return "xxxxx" + s[i:]
			}
			return scheme + "://xxxxx" + s[i:]
		}
		return s
	}
	if u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); !ok {
		u.User = url.User("xxxxx")
	}
	return u.Redacted()
}

// openWarning says, when a mesh port on an address other hosts reach
// admits any node, which ports, or "": cluster.listen and leaf.listen,
// without a credential (mesh.credentials) and without mesh.tls with a ca
// (TLS without one admits any node that speaks it). Whatever reaches such
// a port joins the mesh as a node, which the others trust entirely
// (README, Mesh, "Trust between nodes"). Not refused, as clear text is
// not: a lab or a private network may do without; run and check-config
// say it. Before, nothing did, and README's command-line examples
// (-cluster-listen 0.0.0.0:7222, -leaf-listen 0.0.0.0:7422; no flag takes
// a credential) made such a mesh.
func (m *meshConfig) openWarning() string {
	if !m.enabled() {
		return ""
	}
	if c := m.Credentials; c.Token != "" || c.TokenEnv != "" || c.NKeySeed != "" || c.NKeySeedFile != "" {
		return ""
	}
	if m.TLS != nil && m.TLS.CA != "" {
		return ""
	}
	var where []string
	for _, l := range [...]struct{ key, addr string }{{"mesh.cluster.listen", m.Cluster.Listen}, {"mesh.leaf.listen", m.Leaf.Listen}} {
		if l.addr != "" && exposedListenAddr(l.addr) {
			where = append(where, l.key+" "+l.addr)
		}
	}
	if len(where) == 0 {
		return ""
	}
	return "mesh: without mesh.credentials or mesh.tls with a ca, " + strings.Join(where, ", ") +
		" admits any node that reaches it: it joins the mesh as a node, calls and registers any procedure, publishes and receives in every realm," +
		" and reads the shared state (the single registrations' claims, the OAuth2 signing keys); set mesh.credentials (token_env or nkey_seed_file," +
		" the same on every node) or mesh.tls with a ca, or keep these addresses on loopback or a network you trust"
}

// storeWarning says, for a node that keeps no JetStream store and has
// none of its own to reach but a cluster peer's (mesh.cluster.listen
// without mesh.cluster.routes, no leaf.remotes, no nats_url: edge/node.go
// runs JetStream on a cluster node only with routes, since NATS needs them
// for clustered JetStream), that alone, or until a peer that lists it in
// its routes dials it, the mesh's shared store does not answer: OAuth2
// answered 503 "the authorization server is starting" for ever and single
// registrations waited, while check-config said ok. Not refused: such a
// node is right in a cluster whose other nodes list it. "" otherwise.
func (c *config) storeWarning() string {
	m := &c.Mesh
	if m.Cluster.Listen == "" || len(m.Cluster.Routes) > 0 || len(m.Leaf.Remotes) > 0 || m.NatsURL != "" {
		return ""
	}
	oauth := ""
	if c.oauthEnabled() {
		oauth = "OAuth2 answers 503 (\"the authorization server is starting\") and token logins are refused, and "
	}
	return "mesh: mesh.cluster.listen without mesh.cluster.routes: this node keeps no JetStream store (NATS needs routes for a clustered one) and uses that of a cluster peer which lists it in its mesh.cluster.routes; " +
		"alone, or until such a peer connects, " + oauth + "single registrations wait for the claim store; list the other nodes of the cluster in mesh.cluster.routes (every node lists every other), " +
		"or, for a node on its own, drop mesh.cluster.listen (a hub keeps its store with mesh.leaf.listen alone)"
}

// loopbackHost reports whether a host (an address's or a URL's) is
// loopback: localhost or a loopback IP. An empty host, 0.0.0.0 or :: (every
// interface) and other names are not.
func loopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// minGatherTimeout is the least mesh.gather_timeout (500ms by default):
// a gather on a LAN takes about a millisecond; 1ns left every meta query
// and get_retained partial.
const minGatherTimeout = 10 * time.Millisecond

// validateMesh checks the mesh block (cold checks; edge.New checks the
// rest when the router starts, with every error at once).
func (c *config) validateMesh(errs *[]error) {
	m := &c.Mesh
	if !m.enabled() {
		return
	}
	if m.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			c.errAt(errs, "mesh.node is required (the host name is unknown)", "mesh", "node")
		}
		m.Node = sanitizeNodeName(h)
	}
	for _, l := range [...]struct{ key, addr string }{{"cluster", m.Cluster.Listen}, {"leaf", m.Leaf.Listen}} {
		if p := listenAddrProblem(l.addr); l.addr != "" && p != "" {
			c.errAt(errs, fmt.Sprintf("mesh.%s.listen %q %s", l.key, l.addr, p), "mesh", l.key, "listen")
		}
	}
	if m.Credentials.Token != "" && m.Credentials.TokenEnv != "" {
		c.errAt(errs, "mesh.credentials: give token or token_env, not both", "mesh", "credentials")
	}
	if m.Credentials.NKeySeed != "" && m.Credentials.NKeySeedFile != "" {
		c.errAt(errs, "mesh.credentials: give nkey_seed or nkey_seed_file, not both", "mesh", "credentials")
	}
	if m.TLS != nil && (m.TLS.Cert == "" || m.TLS.Key == "") {
		c.errAt(errs, "mesh.tls needs cert and key", "mesh", "tls")
	}
	if m.MaxPingsOut < 0 {
		c.errAt(errs, "mesh.max_pings_out must not be negative", "mesh", "max_pings_out")
	}
	// gather_timeout: 1ns made every meta query and get_retained of the
	// mesh partial (edge bounds ping_interval and heartbeat itself).
	c.durationFloors(errs, []durationFloor{{m.GatherTimeout, minGatherTimeout,
		"a gather waits for the other nodes' answers, a round trip of the mesh each", "", []any{"mesh", "gather_timeout"}}})
	if m.MaxInvocations < 0 {
		c.errAt(errs, "mesh.max_invocations must not be negative", "mesh", "max_invocations")
	}
	if m.CallsInFlight < 0 {
		c.errAt(errs, "mesh.calls_in_flight must not be negative", "mesh", "calls_in_flight")
	}
	if m.MaxInterest < 0 {
		c.errAt(errs, "mesh.max_interest must not be negative", "mesh", "max_interest")
	}
}

// sanitizeNodeName turns a host name into a valid node name.
func sanitizeNodeName(h string) string {
	b := []byte(h)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	if len(b) == 0 {
		return "edgewamp"
	}
	return string(b)
}

// meshNode is a running mesh membership (package edge), as serve sees it.
type meshNode interface {
	Shutdown(ctx context.Context) error
}
