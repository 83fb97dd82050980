//go:build !nomesh

package main

import (
	"strings"
	"testing"
)

// mesh.max_interest reaches the mesh node: the embedded default's
// (16,384) and the file's.
func TestMeshMaxInterestConfigApplied(t *testing.T) {
	for _, k := range []struct {
		body string
		want int
	}{
		{"mesh: {node: a, cluster: {listen: 127.0.0.1:0}}\n", 16384},
		{"mesh: {node: a, cluster: {listen: 127.0.0.1:0}, max_interest: 500}\n", 500},
	} {
		c, err := parseConfig([]byte(k.body), nil)
		if err != nil {
			t.Fatal(err)
		}
		o, err := c.meshOptions(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if o.MaxInterest != k.want {
			t.Errorf("%q: MaxInterest %d, want %d", k.body, o.MaxInterest, k.want)
		}
	}
	if _, err := parseConfig([]byte("mesh: {cluster: {listen: 127.0.0.1:0}, max_interest: -1}\n"), nil); err == nil || !strings.Contains(err.Error(), "mesh.max_interest must not be negative") {
		t.Errorf("max_interest -1: %v", err)
	}
}

// mesh.max_inbound reaches the mesh node: the embedded default's (64 MiB)
// and the file's.
func TestMeshMaxInboundConfigApplied(t *testing.T) {
	for _, k := range []struct {
		body string
		want int64
	}{
		{"mesh: {node: a, cluster: {listen: 127.0.0.1:0}}\n", 64 << 20},
		{"mesh: {node: a, cluster: {listen: 127.0.0.1:0}, max_inbound: 8MiB}\n", 8 << 20},
	} {
		c, err := parseConfig([]byte(k.body), nil)
		if err != nil {
			t.Fatal(err)
		}
		o, err := c.meshOptions(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if o.MaxInbound != k.want {
			t.Errorf("%q: MaxInbound %d, want %d", k.body, o.MaxInbound, k.want)
		}
	}
}
