//go:build nomesh

package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/edgewamp/edgewamp/gateway"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/oauth"
	"github.com/edgewamp/edgewamp/route"
)

// startMesh: this binary was built with -tags nomesh, without the mesh
// (no NATS server linked in, for the smallest edge boxes).
func startMesh(context.Context, *config, *route.Router, *slog.Logger) (meshNode, *loop.CertFile, error) {
	return nil, nil, errors.New("mesh: this edgewamp was built without the mesh (-tags nomesh)")
}

// checkMesh: a mesh configuration cannot start without the mesh.
func (c *config) checkMesh() error {
	return errors.New("mesh: this edgewamp was built without the mesh (-tags nomesh)")
}

// meshOAuthStore is never reached without the mesh (startMesh fails).
func meshOAuthStore(meshNode) func(context.Context) (oauth.Store, error) {
	return func(context.Context) (oauth.Store, error) { return nil, errors.New("no mesh") }
}

// meshMetrics: no mesh, no mesh metrics.
func meshMetrics(meshNode, *route.Router) *gateway.MeshStats { return nil }

// meshStatus: no mesh.
func meshStatus(meshNode) string { return "mesh off" }
