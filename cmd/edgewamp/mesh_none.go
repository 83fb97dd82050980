//go:build nomesh

package main

import (
	"errors"
	"log/slog"

	"github.com/edgewamp/edgewamp/route"
)

// startMesh: this binary was built with -tags nomesh, without the mesh
// (no NATS server linked in, for the smallest edge boxes).
func startMesh(*config, *route.Router, *slog.Logger) (meshNode, error) {
	return nil, errors.New("mesh: this edgewamp was built without the mesh (-tags nomesh)")
}
