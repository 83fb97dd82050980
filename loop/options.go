package loop

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"
)

// Transport selects what a listener serves.
type Transport string

// Listener transports.
const (
	// Both serves WebSocket and RawSocket on one port, told apart by the
	// first byte (0x7F starts a RawSocket handshake; anything else is HTTP).
	Both Transport = "both"
	// WebSocketOnly serves only HTTP/WebSocket.
	WebSocketOnly Transport = "websocket"
	// RawSocketOnly serves only RawSocket.
	RawSocketOnly Transport = "rawsocket"
)

// DefaultMaxConnsPerAddress is Options.MaxConnsPerAddress's default: an
// office or a carrier-grade NAT rarely puts more of one service's clients
// behind one address, and one address takes a small part of the
// connections a router serves (the open-file budget is about a million
// under the systemd unit).
const DefaultMaxConnsPerAddress = 1024

// MaxHandshakeMax is the largest Options.MaxHandshake. A request header
// was scanned for its end again at each read until it was whole, so what
// a header cost grew with the square of the bound: a peer's 16 MiB header
// took the loop 1.4 s of CPU under a 16 MiB bound, 17 ms under 1 MiB,
// 0.36 ms under 64 KiB in 64 KiB reads, and 674 MB of scanning dribbled a
// byte a write; a read now scans only its new bytes (http.go:
// handleHTTPFrom), and the bound stays for the memory a header holds.
// Browsers send a few KiB (cookies included); nginx takes 32 KiB at most
// by default.
const MaxHandshakeMax = 64 << 10

// defaultHighWater is Options.HighWater's default.
const defaultHighWater = 256 << 10

// Listener is one address the engine serves.
type Listener struct {
	// Addr is host:port, e.g. "0.0.0.0:8080". Port 0 picks a free port
	// (see Engine.Addrs).
	Addr string
	// Transport is Both (default), WebSocketOnly or RawSocketOnly.
	Transport Transport
	// MaxConns caps this listener's open connections; past it new ones are
	// answered "503" (HTTP) or "maximum connection count reached"
	// (RawSocket) and closed. On a TLS listener connections count from
	// accept, their handshake included, and past the cap are closed
	// without one. 0 (the default): as many as the open-file limit
	// allows (see Engine.FDs); every connection, TLS or not, holds one
	// descriptor.
	MaxConns int
	// TLS, when set, serves this listener over TLS: wss:// and TLS
	// RawSocket, sniffed after the handshake like plaintext (Transport
	// applies). TLS 1.2 at least; ALPN "http/1.1" to clients that offer
	// it, unless the config sets NextProtos or GetConfigForClient itself.
	// The handshake runs on a goroutine (at most MaxTLSHandshakes at
	// once); records are decrypted and encrypted on the event loop that
	// owns the connection (tls.go). The config must not be modified after
	// New; a certificate that changes goes through GetCertificate
	// (CertFile).
	TLS *tls.Config
	// TrustedProxies are the reverse proxies in front of this listener
	// (addresses as /32 and /128): on a connection from one of them the
	// WebSocket upgrade's X-Forwarded-For, else Forwarded, names the
	// client, whose address the session has, and the connection counts
	// under it for MaxConnsPerAddress rather than under the proxy's;
	// MaxTLSHandshakesPerAddress does not bound a trusted proxy (proxy.go).
	// Empty (the default): every connection's address is its TCP peer's,
	// and no header is read.
	TrustedProxies []netip.Prefix
}

// FlushPolicy says when a loop writes its connections' pending output.
type FlushPolicy uint8

// Flush policies. Each writes at most once per connection per flush.
const (
	// FlushAdaptive writes at once after an idle spell (sparse traffic:
	// lowest latency) and at the end of the loop's round under load (fewest
	// writes).
	FlushAdaptive FlushPolicy = iota
	// FlushRound always writes at the end of the loop's round.
	FlushRound
	// FlushTraffic writes at the end of every read callback.
	FlushTraffic
)

// Options configures an Engine. The zero value of every field is a sane
// default.
type Options struct {
	Listeners []Listener
	// WSPath is the WebSocket endpoint path. Default "/ws".
	WSPath string
	// HealthPath answers GET with 200. Default "/healthz".
	HealthPath string
	// MaxMessage bounds an inbound WAMP message (and a reassembled
	// WebSocket message). Default 16 MiB; at most 16 MiB (RawSocket's
	// limit).
	MaxMessage int
	// MaxInboundTotal bounds the bytes of partial inbound messages held
	// across all connections (gnet's input buffers and WebSocket
	// reassembly): a message may be up to MaxMessage, and thousands of
	// clients each sending most of one would otherwise exhaust memory.
	// Past it, a connection whose partial message grows is closed
	// (WebSocket 1009). Default: a quarter of RAM, within [64 MiB, 4 GiB].
	MaxInboundTotal int64
	// MaxHandshake bounds the HTTP request header. Default 8 KiB; at most
	// MaxHandshakeMax.
	MaxHandshake int
	// HandshakeTimeout closes a connection that has not completed its
	// HTTP upgrade or RawSocket handshake (on a TLS listener: its TLS
	// handshake and then those), counted from accept. Default 10s.
	HandshakeTimeout time.Duration
	// MaxTLSHandshakes bounds the TLS handshakes in progress at once, each
	// on a goroutine of its own (a few tens of KiB of stack and state);
	// the others wait for their turn, their bytes held (at most 32 KiB
	// each, counted in MaxInboundTotal), within HandshakeTimeout. A
	// handshake starts once the client's ClientHello is whole (in one
	// record or several). Default 256.
	MaxTLSHandshakes int
	// MaxTLSHandshakesPerAddress bounds the TLS handshakes in progress
	// (running or waiting for their turn) from one client address: an IPv4
	// address, or an IPv6 /64. A handshake holds its goroutine while it
	// waits for the client, until HandshakeTimeout: without this bound one
	// client could hold all MaxTLSHandshakes with connections that send a
	// ClientHello and then nothing, again and again, and every other
	// client's handshake would wait behind them. A connection whose
	// handshake would start past it is closed at once, unanswered
	// (CloseTLSPerAddress). Default 16; negative: no bound per address.
	MaxTLSHandshakesPerAddress int
	// MaxConnsPerAddress bounds the connections open on the WAMP
	// listeners (not the HTTPLane ones) from one client address: an IPv4
	// address, or an IPv6 /64, keyed as for MaxTLSHandshakesPerAddress.
	// Without it one client could take every connection the listeners'
	// MaxConns and the open-file budget allow. A connection past it is
	// closed at accept, unanswered, before any protocol work
	// (CloseConnsPerAddress). Clients behind one NAT share an address.
	// Default DefaultMaxConnsPerAddress; negative: no bound per address.
	MaxConnsPerAddress int
	// PingInterval: a session silent this long gets a WebSocket or
	// RawSocket ping. Default 30s; negative disables keepalive.
	PingInterval time.Duration
	// PingTimeout: a ping unanswered this long (no traffic at all) closes
	// the connection. Default 10s.
	PingTimeout time.Duration
	// RawSocketPings: ping every silent RawSocket peer, not only one that
	// has sent a PING or a PONG itself (rawkeepalive.go). For deployments
	// without Autobahn|Python RawSocket clients (which drop their
	// connection at a PING): a frozen client with nothing waiting for it
	// is then found as on WebSocket. Default off.
	RawSocketPings bool
	// IdleTimeout, when positive, closes a connection with no inbound
	// traffic at all for this long, pings notwithstanding. Default off.
	IdleTimeout time.Duration
	// HighWater is the outbound backlog (bytes queued for a connection)
	// above which EVENTs to it are dropped and INVOCATIONs refused.
	// Default 256 KiB.
	HighWater int
	// MaxOutboundTotal bounds the output queued router-wide (in gnet's
	// buffers, for peers that read slower than they are sent to). While
	// the total is over it, the per-connection marks tighten: past
	// squeezedHighWater (16 KiB) events are dropped and invocations
	// refused, and past HighWater a connection is closed as a slow
	// consumer. Default: a quarter of RAM, within [64 MiB, 4 GiB].
	MaxOutboundTotal int64
	// HardLimit is the backlog above which the connection is closed as a
	// slow consumer. Default 4 MiB.
	HardLimit int
	// Flush is when a loop writes the output its callbacks produced:
	// FlushAdaptive (default), FlushRound or FlushTraffic.
	Flush FlushPolicy
	// IOUring is the send path: IOUringAuto (default: io_uring where the
	// system has it, else write(2)), IOUringOn (Start fails without it) or
	// IOUringOff (write(2)). See sendring.go.
	IOUring IOUringMode
	// Park makes an idle loop wait in Go's netpoller instead of in
	// epoll_wait, so that the process's other goroutines (the mesh's NATS
	// connection, the gateway) run at once instead of waiting for sysmon
	// to take the loop's processor back (park.go).
	Park bool
	// Lane serves the HTTPLane listeners (lane.go).
	Lane LaneConfig
	// CheckOrigin, when set, vets the Origin header of WebSocket upgrades.
	CheckOrigin func(origin []byte) bool
	// Logger receives connection logs: one line per closed connection,
	// info level when a limit was hit or the peer misbehaved, debug level
	// otherwise, at most 20 lines a second (close.go). Default
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock of the connection deadlines (handshake, keepalive,
	// idle, closing handshake, waiting pongs): read once per tick (every
	// 100 ms) and compared with once a second. Pass the same function as
	// route.Config.Now; tests inject a fake to drive the deadlines without
	// waiting. TLS handshakes are bounded by the same clock. Its readings
	// are compared with Time.Sub, so the monotonic clock of time.Now's
	// readings times the deadlines, and a step of the system clock moves
	// none of them. Default time.Now.
	Now func() time.Time

	// headerScanned, when set (tests), counts the request header bytes
	// the HTTP parser scans for the header's end (http.go).
	headerScanned *atomic.Int64
}

func (o *Options) setDefaults() error {
	var errs []error
	if len(o.Listeners) == 0 {
		errs = append(errs, errors.New("loop: no listeners configured"))
	}
	ports := map[string]bool{}
	for i := range o.Listeners {
		l := &o.Listeners[i]
		if l.Transport == "" {
			l.Transport = Both
		}
		switch l.Transport {
		case Both, WebSocketOnly, RawSocketOnly:
		case HTTPLane:
			if o.Lane.Lane == nil {
				errs = append(errs, fmt.Errorf("loop: listener %s: transport http needs Options.Lane", l.Addr))
			}
			if l.TLS != nil {
				errs = append(errs, fmt.Errorf("loop: listener %s: transport http is plaintext only", l.Addr))
			}
		default:
			errs = append(errs, fmt.Errorf("loop: listener %s: unknown transport %q (want both, websocket or rawsocket)", l.Addr, l.Transport))
		}
		if l.MaxConns < 0 {
			l.MaxConns = 0
		}
		host, port, err := net.SplitHostPort(l.Addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("loop: listener address %q: %w", l.Addr, err))
			continue
		}
		if _, err := strconv.Atoi(port); err != nil {
			errs = append(errs, fmt.Errorf("loop: listener address %q: bad port", l.Addr))
		}
		if port != "0" && ports[port] {
			errs = append(errs, fmt.Errorf("loop: two listeners on port %s", port))
		}
		ports[port] = true
		_ = host
	}
	if o.WSPath == "" {
		o.WSPath = "/ws"
	}
	if o.HealthPath == "" {
		o.HealthPath = "/healthz"
	}
	if o.MaxInboundTotal <= 0 {
		o.MaxInboundTotal = defaultBudget()
	}
	if o.MaxMessage <= 0 || o.MaxMessage > 16<<20 {
		o.MaxMessage = 16 << 20
	}
	if o.MaxHandshake <= 0 {
		o.MaxHandshake = 8 << 10
	}
	if o.MaxHandshake > MaxHandshakeMax {
		errs = append(errs, fmt.Errorf("loop: MaxHandshake %d is above %d bytes", o.MaxHandshake, MaxHandshakeMax))
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.MaxTLSHandshakes <= 0 {
		o.MaxTLSHandshakes = 256
	}
	if o.MaxTLSHandshakesPerAddress == 0 {
		o.MaxTLSHandshakesPerAddress = 16
	}
	if o.MaxConnsPerAddress == 0 {
		o.MaxConnsPerAddress = DefaultMaxConnsPerAddress
	}
	if o.PingInterval == 0 {
		o.PingInterval = 30 * time.Second
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = 10 * time.Second
	}
	if o.MaxOutboundTotal <= 0 {
		o.MaxOutboundTotal = defaultBudget()
	}
	if o.HighWater <= 0 {
		o.HighWater = defaultHighWater
	}
	if o.HardLimit <= 0 {
		o.HardLimit = 4 << 20
	}
	if o.HardLimit < o.HighWater {
		errs = append(errs, fmt.Errorf("loop: hard limit %d is below the high-water mark %d", o.HardLimit, o.HighWater))
	}
	if o.IOUring > IOUringOff {
		errs = append(errs, fmt.Errorf("loop: unknown io_uring mode %d", o.IOUring))
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return errors.Join(errs...)
}
