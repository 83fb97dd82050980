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
		{Name: "n", NatsURL: "nats://" + secret + "@127.0.0.1"},
		// Unparsable: url.Parse's error quotes the whole URL.
		{Name: "n", NatsURL: "nats://edge:" + secret + "@127.0.0.1:4222/%zz"},
		{Name: "n", NatsURL: "nats://edge:" + secret + "%zz@127.0.0.1:4222"},
		{Name: "n", NatsURL: "nats://edge:" + secret + "@[::1:4222"},
		{Name: "n", Leaf: LeafOptions{Remotes: []string{"nats://edge:" + secret + "@hub:42x22"}}},
	} {
		err := o.Check()
		if err == nil {
			t.Errorf("%+v taken", o)
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
