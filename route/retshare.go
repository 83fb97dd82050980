package route

import (
	"net"
	"net/netip"
	"strconv"
)

// Each publisher's share of a realm's retained events.
//
// A realm's retained events are bounded (maxRetained topics,
// Config.MaxRetainedBytes) and outlive their publishers, so one
// anonymous session could fill them (65,536 topics from one connection)
// and every other publisher's retained events were then delivered but
// not kept, for as long as the router ran. Each publisher therefore keeps
// at most Config.MaxRetainedPerPublisher retained events and
// MaxRetainedBytesPerPublisher of their bytes in a realm (a quarter of
// the realm's by default). A publisher is:
//
//   - for an anonymous session, its client address: an IPv4 address or an
//     IPv6 /64, as the brute-force limiter counts them (an anonymous
//     authid is new with every session, so it bounds nothing): devices
//     behind one NAT share it;
//   - for an authenticated session, its authid (its sessions share it,
//     wherever they connect from): the operator gave it its credential
//     and can withdraw it, and devices with credentials of their own
//     behind one NAT do not share;
//   - for the HTTP gateway's requests without credentials (one shared
//     session), the request's client address (ReceiveMessageFrom).
//
// The events of other nodes of a mesh are not counted here (a copy does
// not say who published it): each node bounds what is published through
// it, and shares only what it kept.

// retainOwner returns the publisher whose share ss's retained events
// count in (Realm.retainedBy), "" for none (an in-process session
// without a client address). Owned by shard.
func (ss *Session) retainOwner() string {
	if ss.clientAddr != "" {
		return "address " + clientKey(ss.clientAddr)
	}
	if !ss.ownerSet {
		ss.ownerSet = true
		switch {
		case ss.authMethod != "anonymous":
			// The realm's authid: users are configured per realm, so one
			// realm's "alice" is not another's (the realm quoted: its end
			// is unambiguous whatever the authid).
			ss.owner = "realm " + strconv.Quote(ss.realm.name) + " authid " + ss.authID
		case ss.transport.RemoteAddr != "":
			ss.owner = "address " + clientKey(ss.transport.RemoteAddr)
		}
	}
	return ss.owner
}

// clientKey returns the key of a client address (as
// TransportInfo.RemoteAddr gives it): its IPv4 address (an IPv4-mapped
// IPv6 address as such), or the /64 of an IPv6 one, or the address as
// given when it is not an IP address (a Unix socket).
func clientKey(remote string) string {
	h, _, err := net.SplitHostPort(remote)
	if err != nil {
		h = remote
	}
	ip, err := netip.ParseAddr(h)
	if err != nil {
		return h
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

// retainRefused counts a retained event that rm did not keep, and logs
// the first one of ss refused for each bound: its publisher's share, the
// realm's (it was counted only: a realm whose retained events had stopped
// being kept, each refusal dropping its topic's older one too, left no
// line in the log).
func (s *Shard) retainRefused(ss *Session, rm *Realm, why retainRefusal, topic string) {
	if why != retainPublisherFull {
		s.stats.RetainRefused.Add(1)
		if ss.retainFullLogged {
			return
		}
		ss.retainFullLogged = true
		rm.mu.RLock()
		topics, bytes := len(rm.retained), rm.retainedBytes
		rm.mu.RUnlock()
		s.r.log.Warn("retained event delivered but not kept, and its topic's older retained events dropped: the realm's retained events are at their bound (limits.retained_bytes, or "+strconv.Itoa(maxRetained)+" topics); logged once per session",
			"realm", rm.name, "session", ss.id, "authid", ss.authID, "remote", ss.transport.RemoteAddr, "topic", logCut(topic),
			"topics", topics, "bytes", bytes, "max_bytes", s.r.cfg.MaxRetainedBytes)
		return
	}
	s.stats.RetainRefusedPublisher.Add(1)
	if ss.retainLogged {
		return
	}
	ss.retainLogged = true
	var events int
	var bytes int64
	owner := ss.retainOwner()
	rm.mu.RLock()
	if sh := rm.retainedBy[owner]; sh != nil {
		events, bytes = sh.events, sh.bytes
	}
	rm.mu.RUnlock()
	s.r.log.Warn("retained event delivered but not kept: its publisher's share of the realm's retained events is used up (limits.retained_events_per_publisher, retained_bytes_per_publisher); logged once per session",
		"realm", rm.name, "session", ss.id, "publisher", logCut(owner), "topic", logCut(topic),
		"events", events, "bytes", bytes, "max_events", s.r.cfg.MaxRetainedPerPublisher, "max_bytes", s.r.cfg.MaxRetainedBytesPerPublisher)
}
