// Package edge links edgewamp routers into a mesh over an embedded NATS
// server (planned; see README's feature table).
package edge
