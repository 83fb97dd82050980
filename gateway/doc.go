// Package gateway is edgewamp's embedded HTTP server: REST → WAMP gateway,
// health and metrics (planned; see README's feature table).
package gateway
