//go:build !nomesh

package main

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/edge"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/oauth"
	"github.com/edgewamp/edgewamp/oauth/storetest"
	"github.com/edgewamp/edgewamp/route"
)

// oauth's Store contract (oauth/storetest) against cmd's adapter over the
// mesh's shared bucket (edge.KV), on real embedded NATS servers: a lone
// hub (R1), and a three-node cluster (R3) with each operation sent to the
// next node in turn, so that every check also checks that a write on one
// node is seen by the next read on another.

// startKVNodes starts mesh nodes in process (routers without transports:
// only the store is used), as a cluster when there are several.
func startKVNodes(t *testing.T, names ...string) []*edge.Node {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	addrs := make([]string, len(names))
	for i := range names {
		addrs[i] = edgetest.FreeAddr(t)
	}
	var nodes []*edge.Node
	for i, name := range names {
		r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}, Shards: 1, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		o := edge.Options{Router: r, Name: name, Logger: log}
		if len(names) == 1 {
			o.Leaf.Listen = "127.0.0.1:0" // a lone hub runs JetStream
		} else {
			o.Cluster.Listen = addrs[i]
			for j, a := range addrs {
				if j != i {
					o.Cluster.Routes = append(o.Cluster.Routes, "nats://"+a)
				}
			}
		}
		n, err := edge.New(o)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			n.Shutdown(ctx)
			r.Close()
		})
		nodes = append(nodes, n)
	}
	return nodes
}

var bucketSeq atomic.Int64

// kvStores binds a new bucket on every node (retrying while JetStream
// elects its leaders) and returns the adapter over each node's handle.
func kvStores(t *testing.T, nodes []*edge.Node) []oauth.Store {
	t.Helper()
	name := "conf" + strconv.FormatInt(bucketSeq.Add(1), 10)
	var out []oauth.Store
	for _, n := range nodes {
		deadline := time.Now().Add(30 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			kv, err := n.KV(ctx, edge.KVOptions{Name: name, MaxBytes: 1 << 20}) // each bucket reserves its MaxBytes of the node's JetStream store
			cancel()
			if err == nil {
				out = append(out, kvStore{kv})
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("binding bucket %s: %v", name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return out
}

func TestMeshStoreConformanceHub(t *testing.T) {
	t.Parallel()
	nodes := startKVNodes(t, "hub")
	storetest.Run(t, func(t *testing.T) oauth.Store { return kvStores(t, nodes)[0] })
}

func TestMeshStoreConformanceCluster(t *testing.T) {
	t.Parallel()
	nodes := startKVNodes(t, "a", "b", "c")
	storetest.RunShared(t, func(t *testing.T) []oauth.Store { return kvStores(t, nodes) })
}
