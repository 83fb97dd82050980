//go:build !nomesh

package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/edgewamp/edgewamp/edge"
	"github.com/edgewamp/edgewamp/route"
)

// startMesh joins r to the mesh the configuration describes (it must be
// enabled) and returns the running node. Call it before the transports
// start.
func startMesh(c *config, r *route.Router, log *slog.Logger) (meshNode, error) {
	mo, err := c.meshOptions(r, log)
	if err != nil {
		return nil, err
	}
	node, err := edge.New(mo)
	if err != nil {
		return nil, err
	}
	if err := node.Start(); err != nil {
		return nil, err
	}
	return node, nil
}

// meshOptions builds the mesh node's options; secrets and certificates
// are read here, so errors name the file or variable.
func (c *config) meshOptions(r *route.Router, log *slog.Logger) (edge.Options, error) {
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
		StoreDir:      m.StoreDir,
		Logger:        log,
	}
	if e := m.Credentials.TokenEnv; e != "" {
		o.Token = os.Getenv(e)
		if o.Token == "" {
			return o, fmt.Errorf("mesh.credentials.token_env: $%s is empty", e)
		}
	}
	if f := m.Credentials.NKeySeedFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return o, fmt.Errorf("mesh.credentials.nkey_seed_file: %w", err)
		}
		o.NKeySeed = strings.TrimSpace(string(b))
	}
	if t := m.TLS; t != nil {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return o, fmt.Errorf("mesh.tls: %w", err)
		}
		tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if t.CA != "" {
			pem, err := os.ReadFile(t.CA)
			if err != nil {
				return o, fmt.Errorf("mesh.tls.ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return o, errors.New("mesh.tls.ca: no certificate in " + t.CA)
			}
			tc.RootCAs, tc.ClientCAs = pool, pool
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
		o.TLS = tc
	}
	return o, nil
}
