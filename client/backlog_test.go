package client

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// queuedChunks returns how many invocations of s run, and how many
// chunks, and bytes of them, they hold for their handlers' Next.
func queuedChunks(s *Session) (invs, n, bytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	invs = len(s.invs)
	for _, st := range s.invs {
		n += len(st.chunks)
		for _, c := range st.chunks {
			bytes += c.size
		}
	}
	return invs, n, bytes
}

// A caller streaming progressive call invocation chunks to a Go callee
// whose handler does not read them (any handler that runs a while and
// does not expect a stream; the client announces the feature for every
// registration): the chunks queued without bound, as fast as the caller
// sent them (78 MiB in 2 s from one anonymous caller, paced so that the
// router's high_water was never reached). Past Config.MaxBacklog the
// invocation is answered wamp.error.payload_size_exceeded, its handler's
// context canceled, and what it held dropped.
func TestProgressiveInvocationChunksBounded(t *testing.T) {
	url := startRouter(t)
	const limit = 1 << 20
	callee, err := Dial(context.Background(), Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack, MaxBacklog: limit})
	noErr(t, "Dial callee", err)
	t.Cleanup(func() { callee.Close() })
	caller := dialRouter(t, url)
	ctx := context.Background()
	causes := make(chan error, 1)
	next := make(chan error, 1)
	_, err = callee.Register(ctx, "com.example.slow", func(ctx context.Context, inv *Invocation) (*Result, error) {
		<-ctx.Done() // a handler that does not read the stream
		causes <- context.Cause(ctx)
		_, err := inv.Next(context.Background())
		next <- err
		return nil, ctx.Err()
	}, nil)
	noErr(t, "Register", err)

	pc, err := caller.CallProgressive(ctx, "com.example.slow", nil)
	noErr(t, "CallProgressive", err)
	chunk := strings.Repeat("x", 64<<10)
	sent, maxQueued := 0, 0
	for sent < 3*limit/len(chunk) {
		if err := pc.Send([]any{chunk}, nil, false); err != nil {
			if !errors.Is(err, ErrCallDone) {
				t.Fatalf("Send: %v", err)
			}
			break
		}
		sent++
		// Wait for the chunk to be with the callee (queued, or the
		// invocation ended), so that the router's own bound on the
		// callee's backlog never comes into play.
		deadline := time.Now().Add(wait)
		ended := false
		for {
			invs, n, b := queuedChunks(callee)
			maxQueued = max(maxQueued, b)
			if invs == 1 && n == sent-1 {
				break
			}
			if invs == 0 && sent > 1 {
				ended = true
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("chunk %d did not reach the callee", sent)
			}
			time.Sleep(time.Millisecond)
		}
		if ended {
			break
		}
	}
	if maxQueued > limit+len(chunk)+1024 {
		t.Fatalf("the callee held %d bytes of chunks its handler did not read (MaxBacklog %d)", maxQueued, limit)
	}
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	_, err = pc.Result(rctx)
	wampErr(t, err, proto.URIPayloadSizeExceeded)
	select {
	case cause := <-causes:
		if !errors.Is(cause, ErrBacklog) {
			t.Fatalf("handler context cause = %v, want ErrBacklog", cause)
		}
	case <-time.After(wait):
		t.Fatal("the handler's context was not canceled")
	}
	select {
	case err := <-next:
		if !errors.Is(err, ErrBacklog) {
			t.Fatalf("Next after the bound = %v, want ErrBacklog", err)
		}
	case <-time.After(wait):
		t.Fatal("Next blocked after the invocation ended")
	}
	if invs, n, _ := queuedChunks(callee); invs != 0 || n != 0 {
		t.Fatalf("%d invocations, %d chunks still held", invs, n)
	}
}

// queuedResults returns the progressive results the pending calls of s
// hold for their OnProgress.
func queuedResults(s *Session) (n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.calls {
		n += len(c.queue)
	}
	return n
}

// A callee streaming progressive results to a Go caller whose OnProgress
// is slower: the results queued without bound for as long as the callee
// streamed (the reader never waits on a caller, and so the router's
// high_water never applies). Past Config.MaxBacklog the call is canceled
// (CANCEL sent, the callee interrupted) and fails with ErrBacklog.
func TestProgressiveResultsBounded(t *testing.T) {
	url := startRouter(t)
	const limit = 1 << 20
	caller, err := Dial(context.Background(), Config{URL: url, Realm: "realm1", Serializer: proto.MsgPack, MaxBacklog: limit})
	noErr(t, "Dial caller", err)
	t.Cleanup(func() { caller.Close() })
	callee := dialRouter(t, url)
	ctx := context.Background()

	var results atomic.Int64 // progressive RESULTs the caller has read
	caller.OnMessage(func(m *proto.Message) {
		if m.Type == proto.CodeResult && m.Opt.Bool(proto.KeyProgress, false) {
			results.Add(1)
		}
	})
	chunk := strings.Repeat("x", 64<<10)
	const n = 3 * limit / (64 << 10)
	handlerEnd := make(chan error, 1)
	_, err = callee.Register(ctx, "com.example.stream", func(ctx context.Context, inv *Invocation) (*Result, error) {
		end := func(err error) (*Result, error) { handlerEnd <- err; return nil, err }
		for i := range n {
			if err := inv.SendProgress([]any{chunk}, nil); err != nil {
				return end(err)
			}
			// Paced by the caller's reads, so that the router's bound on
			// the caller's backlog never comes into play.
			deadline := time.Now().Add(wait)
			for results.Load() < int64(i+1) {
				if ctx.Err() != nil {
					return end(context.Cause(ctx))
				}
				if time.Now().After(deadline) {
					return end(errors.New("the caller did not read a result"))
				}
				time.Sleep(time.Millisecond)
			}
		}
		return end(nil)
	}, nil)
	noErr(t, "Register", err)

	release := make(chan struct{})
	call := goDo(func() (*Result, error) {
		return caller.Call(ctx, "com.example.stream", nil, nil, &CallOptions{OnProgress: func(*Result) { <-release }})
	})
	var handlerErr error
	select {
	case handlerErr = <-handlerEnd:
	case <-time.After(2 * wait):
		t.Fatal("the callee's handler did not end")
	}
	held := queuedResults(caller)
	close(release)
	_, err = call.wait(t)
	if held > limit/len(chunk)+1 || !errors.Is(err, ErrBacklog) {
		t.Fatalf("the caller held %d progressive results of %d bytes (MaxBacklog %d); Call = %v, want ErrBacklog", held, len(chunk), limit, err)
	}
	if !errors.Is(handlerErr, ErrInterrupted) {
		t.Fatalf("the callee's handler ended with %v, want interrupted", handlerErr)
	}
}
