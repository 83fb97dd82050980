package route_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// A REGISTER with force_reregister from a session at its bound of
// registrations (limits.registrations, or of wildcard ones) gets the
// bound's error, wamp.error.unavailable "too many registrations": below
// the bound it would take the procedure over (one more registration for
// the session). Before, it was refused procedure_already_exists, as a
// REGISTER without the option is (the bound's check asks what the
// REGISTER would get below it, and that did not know of the option), so
// the service was told someone else holds its procedure. A REGISTER
// with the option of another authid's procedure still gets
// procedure_already_exists at the bound, as below it.
func TestForceReregisterAtBoundGetsBoundError(t *testing.T) {
	_, dial := startAuthLoopsWith(t, func(c *route.Config) {
		c.MaxRegistrations = 4
		c.MaxWildcardRegistrations = 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	answer := func(context.Context, *client.Invocation) (*client.Result, error) { return &client.Result{}, nil }
	old := dial("a", "svc", 1)
	if _, err := old.Register(ctx, "com.svc.proc", answer, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Register(ctx, "com.svc..pattern", answer, &client.RegisterOptions{Match: "wildcard"}); err != nil {
		t.Fatal(err)
	}
	if _, err := dial("a", "intruder", 1).Register(ctx, "com.other.proc", answer, nil); err != nil {
		t.Fatal(err)
	}
	neu := dial("a", "svc", 0)
	for _, p := range []string{"com.svc.a", "com.svc.b"} {
		if _, err := neu.Register(ctx, p, answer, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := neu.Register(ctx, "com.svc..mine", answer, &client.RegisterOptions{Match: "wildcard"}); err != nil {
		t.Fatal(err)
	}
	force := func(match string) *client.RegisterOptions {
		return &client.RegisterOptions{Match: match, Options: map[string]any{"force_reregister": true}}
	}
	check := func(name, proc, match, want, says string) {
		t.Helper()
		_, err := neu.Register(ctx, proc, answer, force(match))
		var we *client.Error
		if !errors.As(err, &we) || we.URI != want || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: REGISTER with force_reregister answered %v, want ERROR %s %q", name, err, want, says)
		}
	}
	// 3 of 4 registrations, 1 of 1 wildcard one.
	check("at the wildcard bound", "com.svc..pattern", "wildcard", proto.URIUnavailable, "too many wildcard registrations for this session")
	if _, err := neu.Register(ctx, "com.svc.c", answer, nil); err != nil {
		t.Fatal(err)
	}
	// 4 of 4.
	check("at limits.registrations", "com.svc.proc", "", proto.URIUnavailable, "too many registrations for this session")
	check("another authid's", "com.other.proc", "", proto.URIProcedureAlreadyExists, "already registered")
}
