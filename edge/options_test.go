package edge

import (
	"strings"
	"testing"
)

// TestCheckNatsURLRedacts (found by the review of the command line
// and configuration): a mesh URL refused for its form was quoted whole in
// the error, password or token included, and an unparsable one in
// url.Parse's error too; check-config printed it and run logged it.
func TestCheckNatsURLRedacts(t *testing.T) {
	const secret = "S3CRETPW"
	for _, o := range []Options{
		{Name: "n", Cluster: ClusterOptions{Listen: "127.0.0.1:0", Routes: []string{"nats://edge:" + secret + "@127.0.0.1"}}},
		{Name: "n", Cluster: ClusterOptions{Listen: "127.0.0.1:0", Routes: []string{"http://edge:" + secret + "@127.0.0.1:4222"}}},
		{Name: "n", Leaf: LeafOptions{Remotes: []string{"nats://edge:" + secret + "@hub"}}},
		{Name: "n", Leaf: LeafOptions{Remotes: []string{"nats://edge:" + secret + "@hub:99999"}}},
		{Name: "n", NatsURL: "nats://" + secret + "@127.0.0.1"},
		{Name: "n", NatsURL: "nats://127.0.0.1:4222, nats://" + secret + "@127.0.0.1:"},
		// Unparsable: url.Parse's error quotes the whole URL.
		{Name: "n", NatsURL: "nats://edge:" + secret + "@127.0.0.1:4222/%zz"},
		{Name: "n", NatsURL: "nats://edge:" + secret + "%zz@127.0.0.1:4222"},
		{Name: "n", NatsURL: "nats://edge:" + secret + "@[::1:4222"},
		{Name: "n", Leaf: LeafOptions{Remotes: []string{"nats://edge:" + secret + "@hub:42x22"}}},
	} {
		err := o.Check()
		if err == nil {
			t.Errorf("taken: %q %q %q", o.Cluster.Routes, o.Leaf.Remotes, o.NatsURL)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "RETPW") {
			t.Errorf("the password is in the error: %v", err)
		}
		if !strings.Contains(err.Error(), "xxxxx") {
			t.Errorf("the error does not show the redacted URL: %v", err)
		}
	}
}

// TestCheckNatsURLPort (found by the review of the command line and
// configuration): the mesh's URLs were only split into host and port, so
// nats://127.0.0.1: (no port) and nats://127.0.0.1:99999 in cluster.routes,
// leaf.remotes and nats_url, and a cluster.advertise of 127.0.0.1:99999,
// passed, and the node retried them for ever at INFO, alone.
func TestCheckNatsURLPort(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Name: "n", Cluster: ClusterOptions{Listen: "127.0.0.1:0", Routes: []string{"nats://127.0.0.1:"}}}, "cluster.routes: \"nats://127.0.0.1:\""},
		{Options{Name: "n", Cluster: ClusterOptions{Listen: "127.0.0.1:0", Routes: []string{"nats://127.0.0.1:99999"}}}, "cluster.routes: \"nats://127.0.0.1:99999\": want nats://host:port, the port a number from 1 to 65535"},
		{Options{Name: "n", Cluster: ClusterOptions{Listen: "127.0.0.1:0", Routes: []string{"nats://127.0.0.1:0"}}}, "the port a number from 1 to 65535"},
		{Options{Name: "n", Leaf: LeafOptions{Remotes: []string{"nats://127.0.0.1:"}}}, "leaf.remotes: \"nats://127.0.0.1:\""},
		{Options{Name: "n", Leaf: LeafOptions{Remotes: []string{"tls://hub:+443"}}}, "leaf.remotes"},
		{Options{Name: "n", NatsURL: "nats://127.0.0.1:99999"}, "nats_url: \"nats://127.0.0.1:99999\""},
		{Options{Name: "n", NatsURL: "nats://:4222"}, "nats_url: \"nats://:4222\": want nats://host:port"},
		{Options{Name: "n", Cluster: ClusterOptions{Listen: "127.0.0.1:0", Advertise: "127.0.0.1:99999"}}, "cluster.advertise \"127.0.0.1:99999\": the port must be a number from 1 to 65535"},
		{Options{Name: "n", Leaf: LeafOptions{Listen: "127.0.0.1:0", Advertise: "hub:0"}}, "leaf.advertise \"hub:0\""},
	} {
		err := c.o.Check()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v, want %q", err, c.want)
		}
	}
	for _, o := range []Options{
		{Name: "n", Cluster: ClusterOptions{Listen: "127.0.0.1:0", Advertise: "10.0.0.1:6222", Routes: []string{"nats://edge:pw@10.0.0.2:6222", "tls://[::1]:65535"}}},
		{Name: "n", Leaf: LeafOptions{Remotes: []string{"nats://tok@hub:7422", "tls://hub.example.com:1"}}},
		{Name: "n", NatsURL: "nats://a:4222, nats://b:4222"},
	} {
		if err := o.Check(); err != nil {
			t.Errorf("refused: %v", err)
		}
	}
}
