package load

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"sync/atomic"

	"github.com/edgewamp/edgewamp/bench/internal/wire"
	"github.com/edgewamp/edgewamp/proto"
)

// endpoint is where sessions connect and what they say first; everything
// is encoded once and shared by all sessions of a process.
type endpoint struct {
	url   string
	ws    bool
	tls   *tls.Config // wss://, rss://: TLS (any certificate: the tool measures loopback routers)
	host  string      // host:port
	path  string
	ser   proto.Serializer
	realm string
	mask  [4]byte // WebSocket masking key shared by this process's sessions
	auth  *authCfg

	upgrade      []byte // HTTP upgrade request
	hello        []byte // HELLO, encoded
	goodbye      []byte // GOODBYE wamp.close.normal
	goodbyeReply []byte // GOODBYE wamp.close.goodbye_and_out
}

type authCfg struct {
	authid, secret string
	tickets        []string      // WAMP-Ticket: the tickets, handed out in turn
	next           atomic.Uint64 // the next ticket's index
	emptyDict      proto.Raw
}

// transportName is "ws", "rs", "wss" or "rss" for reports.
func (ep *endpoint) transportName() string {
	name := "rs"
	if ep.ws {
		name = "ws"
	}
	if ep.tls != nil {
		name = name[:1] + "ss"
	}
	return name
}

// newEndpoint parses ws://host:port/path, rs://host:port or tcp://host:port
// (wss:// and rss:// over TLS) and pre-encodes the join. With authid set,
// HELLO offers wampcra only.
func newEndpoint(rawURL string, ser proto.Serializer, realm, authid, secret string) (*endpoint, error) {
	return newEndpointAuth(rawURL, ser, realm, authid, secret, nil)
}

// newTicketEndpoint is newEndpoint for WAMP-Ticket logins without an
// authid (the tickets are OAuth2 access tokens, which name the principal).
func newTicketEndpoint(rawURL string, ser proto.Serializer, realm string, tickets []string) (*endpoint, error) {
	if len(tickets) == 0 {
		return nil, errors.New("no tickets")
	}
	return newEndpointAuth(rawURL, ser, realm, "", "", tickets)
}

func newEndpointAuth(rawURL string, ser proto.Serializer, realm, authid, secret string, tickets []string) (*endpoint, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("bad url %q: %w", rawURL, err)
	}
	ep := &endpoint{url: rawURL, host: u.Host, path: u.Path, ser: ser, realm: realm, mask: randomMask()}
	switch u.Scheme {
	case "ws", "wss":
		ep.ws = true
		if ep.path == "" {
			ep.path = "/"
		}
	case "rs", "tcp", "rss":
	default:
		return nil, fmt.Errorf("bad url %q: want ws://, wss://, rs://, rss:// or tcp://", rawURL)
	}
	if u.Scheme == "wss" || u.Scheme == "rss" {
		// Full handshakes (no session cache), TLS 1.3 with Go's defaults.
		ep.tls = &tls.Config{InsecureSkipVerify: true, ServerName: u.Hostname()}
	}
	if !ser.Valid() {
		return nil, fmt.Errorf("bad serializer")
	}
	if err := loopbackOnly(u.Hostname()); err != nil {
		return nil, err
	}
	var key [16]byte
	rand.Read(key[:])
	ep.upgrade = wire.AppendUpgradeRequest(nil, ep.host, ep.path, base64.StdEncoding.EncodeToString(key[:]), ser)

	details := map[string]any{
		"roles": map[string]any{
			"caller": map[string]any{}, "callee": map[string]any{},
			"publisher": map[string]any{}, "subscriber": map[string]any{},
		},
		"agent": "wampbench",
	}
	if authid != "" {
		details["authid"] = authid
		details["authmethods"] = []any{"wampcra"}
		empty, err := proto.EncodeValue(ser, map[string]any{})
		if err != nil {
			return nil, err
		}
		ep.auth = &authCfg{authid: authid, secret: secret, emptyDict: empty}
	}
	if tickets != nil {
		details["authmethods"] = []any{"ticket"}
		empty, err := proto.EncodeValue(ser, map[string]any{})
		if err != nil {
			return nil, err
		}
		ep.auth = &authCfg{tickets: tickets, emptyDict: empty}
	}
	d, err := proto.EncodeValue(ser, details)
	if err != nil {
		return nil, err
	}
	if ep.hello, err = proto.Append(nil, ser, &proto.Message{Type: proto.CodeHello, URI: []byte(realm), Dict: d}); err != nil {
		return nil, err
	}
	if ep.goodbye, err = proto.Append(nil, ser, &proto.Message{Type: proto.CodeGoodbye, URI: []byte(proto.CloseNormal)}); err != nil {
		return nil, err
	}
	if ep.goodbyeReply, err = proto.Append(nil, ser, &proto.Message{Type: proto.CodeGoodbye, URI: []byte(proto.CloseGoodbyeAndOut)}); err != nil {
		return nil, err
	}
	return ep, nil
}

// loopbackOnly refuses a router that is not on this machine's loopback:
// the tool generates load, and is meant for loopback measurements only.
func loopbackOnly(host string) error {
	if a, err := netip.ParseAddr(host); err == nil {
		if !a.IsLoopback() {
			return fmt.Errorf("%s is not a loopback address: wampbench only loads routers on loopback", host)
		}
		return nil
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", host, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("%s resolves to %s, not loopback: wampbench only loads routers on loopback", host, ip)
		}
	}
	return nil
}
