package client

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// An INVOCATION with the request id of an invocation whose handler still
// runs, and which is not a further chunk of it (its final chunk came
// already, or it names another registration), is a protocol violation by
// the router: the session ends with ABORT wamp.error.protocol_violation.
// It was taken for a chunk of the running invocation: handed to a
// handler that never asks for one (or to another registration's), its
// call never answered, and a final chunk's end of input undone.
func TestInvocationReusingRunningID(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reg     uint64 // the second INVOCATION's registration
		details map[string]any
		want    string
	}{
		{"another registration", 11, map[string]any{}, "registration 11"},
		{"chunk after the final", 10, map[string]any{"progress": true}, "after its final chunk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c := setup(t, "rs", proto.JSON)
			started := make(chan struct{})
			block := func(ctx context.Context, inv *Invocation) (*Result, error) {
				close(started)
				<-ctx.Done()
				return nil, ctx.Err()
			}
			ran := make(chan struct{}, 1)
			other := func(ctx context.Context, inv *Invocation) (*Result, error) {
				ran <- struct{}{}
				return &Result{Args: []any{"b"}}, nil
			}
			register(t, s, c, "com.example.a", 10, block, nil)
			register(t, s, c, "com.example.b", 11, other, nil)
			invoke(c, 70, 10, []any{1}, map[string]any{})
			select {
			case <-started:
			case <-time.After(wait):
				t.Fatal("the first invocation's handler did not start")
			}
			invoke(c, 70, tc.reg, []any{2}, tc.details)
			select {
			case <-s.Done():
			case <-ran:
				t.Fatal("the second registration's handler ran for a request id held by a running invocation")
			case <-time.After(500 * time.Millisecond):
				t.Fatal("the session goes on after an INVOCATION reusing the request id of a running one: the second was taken for a chunk of the first, and nobody answers it")
			}
			m := c.expect(proto.CodeAbort)
			eq(t, "abort reason", string(m.URI), proto.URIProtocolViolation)
			if msg := m.Opt.String(proto.KeyMessage); !strings.Contains(msg, tc.want) {
				t.Errorf("ABORT message %q does not say %q", msg, tc.want)
			}
		})
	}
}
