package edge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// Credentials and TLS on the mesh's links: nodes with the mesh's secret
// join, a node without it does not.

func TestClusterToken(t *testing.T) {
	t.Parallel()
	addrA, addrB, addrX := edgetest.FreeAddr(t), edgetest.FreeAddr(t), edgetest.FreeAddr(t)
	routes := []string{"nats://" + addrA, "nats://" + addrB}
	a := startNode(t, "a", func(o *Options) { o.Cluster.Listen, o.Cluster.Routes, o.Token = addrA, routes, "s3cret" })
	b := startNode(t, "b", func(o *Options) { o.Cluster.Listen, o.Cluster.Routes, o.Token = addrB, routes, "s3cret" })
	waitMesh(t, a, b)
	x := startNode(t, "x", func(o *Options) { o.Cluster.Listen, o.Cluster.Routes, o.Token = addrX, routes, "wrong" })
	time.Sleep(2 * time.Second)
	if len(x.n.Peers()) != 0 || len(a.n.Peers()) != 1 || len(b.n.Peers()) != 1 {
		t.Fatalf("a node with the wrong token joined: x sees %v, a %v, b %v", x.n.Peers(), a.n.Peers(), b.n.Peers())
	}
	rpcWorks(t, a, b)
}

func TestLeafNKey(t *testing.T) {
	t.Parallel()
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	hub := startNode(t, "hub", func(o *Options) { o.Leaf.Listen, o.NKeySeed = "127.0.0.1:0", string(seed) })
	remote := []string{"nats://" + hub.n.LeafAddr().String()}
	edge := startNode(t, "edge1", func(o *Options) { o.Leaf.Remotes, o.NKeySeed = remote, string(seed) })
	waitMesh(t, hub, edge)
	intruder := startNode(t, "edge2", func(o *Options) { o.Leaf.Remotes, o.NKeySeed = remote, string(otherSeed) })
	time.Sleep(2 * time.Second)
	if len(intruder.n.Peers()) != 0 || len(hub.n.Peers()) != 1 {
		t.Fatalf("an edge with another nkey joined: it sees %v, the hub %v", intruder.n.Peers(), hub.n.Peers())
	}
	rpcWorks(t, edge, hub)
}

// With an nkey as the mesh's only credential (mesh.credentials.nkey_seed,
// the one seed every node of the mesh is given), the nodes of a cluster
// route to each other, and a node without the seed (none at all, or
// another one) is refused on their route ports. Before, the nkey guarded
// the client port and leaf links only: routes had credentials only with a
// token, and NATS accepts any route when the cluster has no user. x
// routed in, joined the mesh, and called a's procedures. The route
// password derived from the seed (routePassword) is not logged, nor is
// the seed, at debug level either.
func TestClusterNKey(t *testing.T) {
	t.Parallel()
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	logs := &lockedBuf{}
	addrA, addrB, addrX, addrY := edgetest.FreeAddr(t), edgetest.FreeAddr(t), edgetest.FreeAddr(t), edgetest.FreeAddr(t)
	routes := []string{"nats://" + addrA, "nats://" + addrB}
	a := startNode(t, "a", func(o *Options) {
		o.Cluster.Listen, o.Cluster.Routes, o.NKeySeed = addrA, routes, string(seed)
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	b := startNode(t, "b", func(o *Options) { o.Cluster.Listen, o.Cluster.Routes, o.NKeySeed = addrB, routes, string(seed) })
	waitMesh(t, a, b)
	// x has no credentials at all, y another nkey.
	x := startNode(t, "x", func(o *Options) { o.Cluster.Listen, o.Cluster.Routes = addrX, routes })
	y := startNode(t, "y", func(o *Options) { o.Cluster.Listen, o.Cluster.Routes, o.NKeySeed = addrY, routes, string(otherSeed) })
	time.Sleep(3 * time.Second)
	if len(x.n.Peers()) != 0 || len(y.n.Peers()) != 0 || len(a.n.Peers()) != 1 || len(b.n.Peers()) != 1 {
		// Show what a stranger can do: call a procedure registered on a.
		s := a.dial(a.ws(), proto.JSON)
		if _, err := s.Register(ctxT(t, 10*time.Second), "com.secret", func(context.Context, *client.Invocation) (*client.Result, error) {
			return &client.Result{Args: []any{"secret"}}, nil
		}, nil); err != nil {
			t.Fatal(err)
		}
		c := x.dial(x.ws(), proto.JSON)
		var got any
		for i := 0; i < 30; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			res, err := c.Call(ctx, "com.secret", nil, nil, nil)
			cancel()
			if got = err; err == nil {
				got = res.Args
			}
			if wampErr(err) != proto.URINoSuchProcedure {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("a node without the mesh's nkey joined the cluster: x sees %v, y %v, a %v, b %v; x's call of a's procedure: %v",
			x.n.Peers(), y.n.Peers(), a.n.Peers(), b.n.Peers(), got)
	}
	rpcWorks(t, a, b)
	if l := logs.String(); strings.Contains(l, routePassword(string(seed))) || strings.Contains(l, string(seed)) {
		t.Fatalf("the nkey seed or the route password derived from it is in a's log:\n%s", l)
	}
}

func TestClusterTLS(t *testing.T) {
	t.Parallel()
	serverCfg, otherCfg := testTLS(t)
	addrA, addrB, addrX := edgetest.FreeAddr(t), edgetest.FreeAddr(t), edgetest.FreeAddr(t)
	routes := []string{"nats://" + addrA, "nats://" + addrB}
	a := startNode(t, "a", func(o *Options) { o.Cluster.Listen, o.Cluster.Routes, o.TLS = addrA, routes, serverCfg })
	b := startNode(t, "b", func(o *Options) { o.Cluster.Listen, o.Cluster.Routes, o.TLS = addrB, routes, serverCfg })
	waitMesh(t, a, b)
	// A node whose certificate the mesh's CA did not sign stays out, as
	// does one without TLS: mutual TLS (mesh.tls.ca) guards the route
	// ports without a token or an nkey.
	x := startNode(t, "x", func(o *Options) { o.Cluster.Listen, o.Cluster.Routes, o.TLS = addrX, routes, otherCfg })
	addrZ := edgetest.FreeAddr(t)
	z := startNode(t, "z", func(o *Options) { o.Cluster.Listen, o.Cluster.Routes = addrZ, routes })
	time.Sleep(2 * time.Second)
	if len(x.n.Peers()) != 0 || len(z.n.Peers()) != 0 || len(a.n.Peers()) != 1 {
		t.Fatalf("a node with a foreign certificate or none joined: x sees %v, z %v, a %v", x.n.Peers(), z.n.Peers(), a.n.Peers())
	}
	rpcWorks(t, a, b)
}

// rpcWorks registers on callee's node and calls from caller's.
func rpcWorks(t *testing.T, caller, callee *tnode) {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	s := callee.dial(callee.ws(), proto.JSON)
	if _, err := s.Register(ctx, "com.sec", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{"ok"}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	c := caller.dial(caller.ws(), proto.MsgPack)
	if res := callUntil(t, c, "com.sec", nil); res.Args[0] != "ok" {
		t.Fatalf("result %v", res.Args)
	}
}

// testTLS returns a configuration with a certificate signed by a test CA
// (trusting that CA, requiring client certificates), and one with a
// certificate of another CA.
func testTLS(t *testing.T) (mesh, foreign *tls.Config) {
	t.Helper()
	mk := func() *tls.Config {
		caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
			KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
		caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		ca, _ := x509.ParseCertificate(caDER)
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "node"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
			RootCAs: pool, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	}
	return mk(), mk()
}

// With nats_url, routers join a NATS deployment run by someone else (here
// a standalone server with JetStream), and route through it.
func TestNatsURL(t *testing.T) {
	t.Parallel()
	url := jsServerWith(t, func(o *server.Options) { o.Authorization = "ext-token" })
	a := startNode(t, "a", func(o *Options) { o.NatsURL, o.Token = url, "ext-token" })
	b := startNode(t, "b", func(o *Options) { o.NatsURL, o.Token = url, "ext-token" })
	waitMesh(t, a, b)
	rpcWorks(t, a, b)
	eventually(t, 10*time.Second, func() error {
		if !a.n.ClaimsReady() {
			return errors.New("the claim store of the external deployment is not reachable")
		}
		return nil
	})
}
