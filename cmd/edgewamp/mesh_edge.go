//go:build !nomesh

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/edgewamp/edgewamp/edge"
	"github.com/edgewamp/edgewamp/gateway"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/route"
)

// startMesh joins r to the mesh the configuration describes (it must be
// enabled) and returns the running node. Call it before the transports
// start. It returns mesh.tls's certificate too, when set, for SIGHUP to
// re-read (reloadCerts): the node presents the one in use at each
// handshake, on routes and leaf links, as server and as client.
//
// ctx ends the node's wait for its embedded NATS server (a stop signal
// during the start).
func startMesh(ctx context.Context, c *config, r *route.Router, log *slog.Logger) (meshNode, *loop.CertFile, error) {
	mo, cert, err := c.meshOptionsCert(r, log)
	if err != nil {
		return nil, nil, err
	}
	node, err := edge.New(mo)
	if err != nil {
		return nil, nil, err
	}
	if err := node.StartContext(ctx); err != nil {
		return nil, nil, c.meshStartErr(err)
	}
	return node, cert, nil
}

// meshStartErr names the key (or the flag, or the file's line) of a mesh
// listener the embedded NATS server could not bind, as the WAMP
// listeners' errors name their address. Before, the router stopped with
// "edge: the NATS server did not start: Error listening on router port:
// 17989 - ...", naming neither -cluster-listen nor mesh.cluster.listen.
func (c *config) meshStartErr(err error) error {
	msg := err.Error()
	for _, l := range [...]struct {
		nats, key, addr string
		path            []any
	}{
		{"Error listening on router port", "mesh.cluster.listen", c.Mesh.Cluster.Listen, []any{"mesh", "cluster", "listen"}},
		{"Error listening on leafnode port", "mesh.leaf.listen", c.Mesh.Leaf.Listen, []any{"mesh", "leaf", "listen"}},
	} {
		if l.addr == "" || !strings.Contains(msg, l.nats) {
			continue
		}
		why := msg
		if _, after, ok := strings.Cut(msg, " - "); ok {
			why = after // listen tcp 127.0.0.1:17989: bind: address already in use
		}
		var errs []error
		c.errAt(&errs, fmt.Sprintf("%s %q: the mesh cannot listen there: %s", l.key, l.addr, why), l.path...)
		return errs[0]
	}
	return err
}

// checkMesh reports what startMesh would refuse (edge.New's checks, an
// empty token_env, an unreadable nkey seed file or TLS file), so that
// check-config refuses what run would. The mesh must be enabled.
func (c *config) checkMesh() error {
	mo, err := c.meshOptions(nil, nil)
	if err != nil {
		return err
	}
	return mo.Check()
}

// meshMetrics reads the mesh node's figures for GET /metrics, at scrape
// time (atomics, and the peer list's published view); nil when the router
// runs alone.
func meshMetrics(node meshNode, r *route.Router) *gateway.MeshStats {
	n, ok := node.(*edge.Node)
	if !ok || n == nil {
		return nil
	}
	es := n.Stats()
	ms := &gateway.MeshStats{
		Connected:         n.Ready(),
		Peers:             len(n.Peers()),
		PeersIncompatible: int(es.PeersIncompatible.Load()),
		PeersUnheard:      int(es.PeersUnheard.Load()),
		PeersSameName:     int(es.PeersSameName.Load()),
		PeersJoined:       es.PeersJoined.Load(),
		PeersLost:         es.PeersLost.Load(),
		Dropped: map[string]uint64{
			"slow_consumer":    es.SlowConsumer.Load(),
			"publish_error":    es.PublishErrors.Load(),
			"bad_frame":        es.BadFrames.Load(),
			"too_long":         es.TooLong.Load(),
			"too_large":        es.TooLarge.Load(),
			"version_mismatch": es.VersionMismatch.Load(),
			"inbound_full":     es.InboundFull.Load(),
			"control_full":     es.ControlFull.Load(),
			"same_name":        es.SameName.Load(),
			"too_many_peers":   es.PeersRefused.Load(),
		},
		Duplicates:        es.Duplicates.Load(),
		EventsUnheard:     es.EventsUnheard.Load(),
		GathersIncomplete: es.GathersIncomplete.Load(),
		WideRealms:        es.WideRealms.Load(),
		Disconnects:       es.Disconnects.Load(),
		ClaimStoreReady:   n.ClaimsReady(),
		Claims:            map[string]uint64{"refused": es.ClaimsRefused.Load(), "store_full": es.ClaimsStoreFull.Load(), "node_share": es.ClaimsNodeShare.Load(), "session_share": es.ClaimsSessionShare.Load(), "provisional": es.ClaimsProvisional.Load(), "releases_dropped": es.ReleasesDropped.Load(), "reasserted": es.ClaimsReasserted.Load(), "swept": es.ClaimsSwept.Load()},
	}
	if rs := r.MeshStats(); rs != nil {
		// route counts the outbound budget's refusals (edge's EventsDropped
		// are among them) and what it could not decode.
		ms.Dropped["outbound_full"] = rs.SendFailed.Load()
		ms.Dropped["bad_envelope"] = rs.BadEnvelopes.Load()
		ms.Dropped["shard_backlog"] = rs.EventsOverflow.Load()
		ms.Dropped["query_late"] = rs.LateQueries.Load()
		ms.Dropped["gather_full"] = es.GatherAnswersDropped.Load()
		ms.Dropped["paced_answer_full"] = es.PacedRefused.Load()
		ms.Dropped["paced_answer_dropped"] = es.PacedDropped.Load()
		ms.Dropped["retained_answer_full"] = rs.RetainedLeftOut.Load()
		ms.Dropped["meta_answer_too_large"] = rs.AnswersTooLarge.Load()
		ms.Dropped["interrupt_full"] = rs.StopsDropped.Load()
		ms.Dropped["interrupt_repeat_full"] = rs.EchoesDropped.Load()
		ms.InvocationsRefused = rs.Refused.Load()
		ms.CallsRefused = rs.CallsRefused.Load()
		ms.CallsBounced = rs.Bounced.Load()
		ms.InvocationsExpired = rs.InvocationsExpired.Load()
		ms.CalleesRevoked = rs.Revoked.Load()
		ms.PresenceAnnounced = rs.PresenceAnnounced.Load()
		ms.PresenceUntracked = rs.PresenceUntracked.Load()
	}
	return ms
}

// meshStatus is the mesh's part of the status line (systemd STATUS=):
// the peers seen, and the nodes of another release, by name and version.
func meshStatus(node meshNode) string {
	n, ok := node.(*edge.Node)
	if !ok || n == nil {
		return "mesh off"
	}
	var b strings.Builder
	b.WriteString("mesh ")
	if !n.Ready() {
		b.WriteString("disconnected, ")
	}
	b.WriteString(strconv.Itoa(len(n.Peers())))
	b.WriteString(" peers")
	if u := n.Stats().PeersUnheard.Load(); u > 0 {
		b.WriteString(", ")
		b.WriteString(strconv.FormatInt(u, 10))
		b.WriteString(" more known to peers but not heard from (routes incomplete?)")
	}
	if d := n.Stats().PeersSameName.Load(); d > 0 {
		b.WriteString(", ")
		b.WriteString(strconv.FormatInt(d, 10))
		b.WriteString(" other node(s) use this node's name (mesh.node must be unique)")
	}
	if bad := n.IncompatiblePeers(); len(bad) > 0 {
		b.WriteString(", ")
		b.WriteString(strconv.Itoa(len(bad)))
		b.WriteString(" of another release excluded (")
		for i, p := range bad {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(p.Name)
			b.WriteString(" mesh version ")
			if p.Version == 0 {
				b.WriteString("none")
			} else {
				b.WriteString(strconv.FormatUint(p.Version, 10))
			}
			if i == 3 && len(bad) > 4 {
				b.WriteString(", …")
				break
			}
		}
		b.WriteString(")")
	}
	return b.String()
}

// meshStoreDir is the JetStream directory: mesh.store_dir, else
// data_dir/mesh when data_dir is set (so that the mesh's shared state, the
// OAuth2 tokens and keys among it, survives a restart of the node), else
// empty (a temporary directory, removed at shutdown).
func (c *config) meshStoreDir() string {
	if c.Mesh.StoreDir != "" || c.DataDir == "" {
		return c.Mesh.StoreDir
	}
	return filepath.Join(c.DataDir, "mesh")
}

// meshOptions builds the mesh node's options; secrets and certificates
// are read here, so errors name the file or variable.
func (c *config) meshOptions(r *route.Router, log *slog.Logger) (edge.Options, error) {
	o, _, err := c.meshOptionsCert(r, log)
	return o, err
}

// meshOptionsCert is meshOptions that also returns mesh.tls's
// certificate, or nil. The TLS configuration serves it through
// GetCertificate (routes and leaf links accepted) and
// GetClientCertificate (routes and leaf links dialled, nats_url), so a
// Reload of it applies to the next handshake in either direction. The
// embedded NATS server clones the configuration for each connection,
// callbacks included, and reads Certificates only for its monitoring
// port and OCSP stapling, which the mesh does not use. Before, the pair
// was loaded once into Certificates: SIGHUP, whose log line says TLS
// certificates apply, left the mesh presenting the old one until it
// expired and the other nodes refused it.
func (c *config) meshOptionsCert(r *route.Router, log *slog.Logger) (edge.Options, *loop.CertFile, error) {
	m := &c.Mesh
	o := edge.Options{
		Router:        r,
		Name:          m.Node,
		Cluster:       edge.ClusterOptions{Name: m.Cluster.Name, Listen: m.Cluster.Listen, Routes: m.Cluster.Routes, Advertise: m.Cluster.Advertise},
		Leaf:          edge.LeafOptions{Listen: m.Leaf.Listen, Remotes: m.Leaf.Remotes, Advertise: m.Leaf.Advertise},
		NatsURL:       m.NatsURL,
		Token:         m.Credentials.Token,
		NKeySeed:      m.Credentials.NKeySeed,
		PingInterval:  time.Duration(m.PingInterval),
		MaxPingsOut:   m.MaxPingsOut,
		Heartbeat:     time.Duration(m.Heartbeat),
		PeerTimeout:   time.Duration(m.PeerTimeout),
		GatherTimeout: time.Duration(m.GatherTimeout),
		MaxOutbound:   int64(m.MaxOutbound),
		MaxInbound:    int64(m.MaxInbound),
		MaxInterest:   m.MaxInterest,
		StoreDir:      c.meshStoreDir(),
		Logger:        log,
	}
	if e := m.Credentials.TokenEnv; e != "" {
		o.Token = os.Getenv(e)
		if o.Token == "" {
			return o, nil, fmt.Errorf("mesh.credentials.token_env: $%s is empty", e)
		}
	}
	if f := m.Credentials.NKeySeedFile; f != "" {
		b, err := readRegularFile(f, maxKeyFile)
		if err != nil {
			return o, nil, fmt.Errorf("mesh.credentials.nkey_seed_file: %w", err)
		}
		o.NKeySeed = strings.TrimSpace(string(b))
	}
	var cf *loop.CertFile
	if t := m.TLS; t != nil {
		var err error
		if cf, err = loop.LoadCertFile(t.Cert, t.Key); err != nil {
			return o, nil, fmt.Errorf("mesh.tls: %w", err)
		}
		if cf.Expired() && log != nil {
			log.Warn("mesh.tls: the certificate is not valid now; the other nodes will refuse it", "cert", t.Cert,
				"not_before", cf.Certificate().Leaf.NotBefore, "not_after", cf.Certificate().Leaf.NotAfter)
		}
		tc := &tls.Config{
			GetCertificate: cf.GetCertificate,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return cf.Certificate(), nil
			},
			MinVersion: tls.VersionTLS12,
		}
		if t.CA != "" {
			pem, err := readRegularFile(t.CA, maxKeyFile)
			if err != nil {
				return o, nil, fmt.Errorf("mesh.tls.ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return o, nil, errors.New("mesh.tls.ca: no certificate in " + t.CA)
			}
			tc.RootCAs, tc.ClientCAs = pool, pool
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
		o.TLS = tc
	}
	return o, cf, nil
}
