package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A Handler that answers a progressive call invocation before its final
// chunk (an early error on the first chunk, say) while a goroutine of its
// own reads the chunks with Invocation.Next: once the answer is sent no
// chunk is given to Next any more (late ones are dropped), but a Next
// with a context other than the handler's waited on until the session
// ended (days, for a callee), and its goroutine with it. It returns
// ErrInvocationDone once the invocation was answered.
func TestNextReturnsOnceInvocationAnswered(t *testing.T) {
	s, c := setup(t, "rs", proto.JSON)
	nextErr := make(chan error, 1)
	h := func(ctx context.Context, inv *Invocation) (*Result, error) {
		go func() {
			for {
				if _, err := inv.Next(context.Background()); err != nil {
					nextErr <- err
					return
				}
			}
		}()
		return nil, &Error{URI: "com.example.refused"}
	}
	register(t, s, c, "com.example.stream", 10, h, nil)
	invoke(c, 60, 10, []any{1}, map[string]any{"progress": true})
	e := c.expect(proto.CodeError)
	eq(t, "error", string(e.URI), "com.example.refused")
	invoke(c, 60, 10, []any{2}, map[string]any{"progress": true}) // a late chunk: dropped
	select {
	case err := <-nextErr:
		if !errors.Is(err, ErrInvocationDone) {
			t.Fatalf("Next after the invocation was answered = %v, want ErrInvocationDone", err)
		}
	case <-time.After(2 * time.Second):
		c.conn.Close() // the session's end frees it
		<-nextErr
		t.Fatal("Next still waits 2 s after its invocation was answered (no chunk can come)")
	}
}
