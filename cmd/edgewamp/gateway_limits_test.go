package main

import (
	"io"
	"log/slog"
	"testing"

	"github.com/edgewamp/edgewamp/gateway"
)

// gateway.limits.max_in_flight_per_address reaches the gateway: the
// file's value, else an eighth of max_in_flight_per_identity (128 with the
// embedded default's 1024).
func TestGatewayInFlightPerAddressConfigApplied(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, k := range []struct {
		body        string
		perIdentity int
		perAddress  int
	}{
		{"realms: [{name: a}]\n", 1024, 128},
		{"gateway: {limits: {max_in_flight_per_address: 5}}\n", 1024, 5},
		{"gateway: {limits: {max_in_flight_per_identity: 64}}\n", 64, 8},
	} {
		c, err := parseConfig([]byte(k.body), nil)
		if err != nil {
			t.Fatal(err)
		}
		l := gateway.DefaultedLimits(c.gatewayOptions(log).Limits)
		if l.MaxInFlightPerIdentity != k.perIdentity || l.MaxInFlightPerAddress != k.perAddress {
			t.Errorf("%q: MaxInFlightPerIdentity %d, MaxInFlightPerAddress %d; want %d, %d", k.body, l.MaxInFlightPerIdentity, l.MaxInFlightPerAddress, k.perIdentity, k.perAddress)
		}
	}
}
