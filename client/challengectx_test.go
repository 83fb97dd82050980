package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Dial promises that its ctx and Config.DialTimeout bound the whole join,
// but Config.OnChallenge ran on Dial's goroutine and was waited for
// whatever the time: an OnChallenge that does not return (a token fetched
// over a network without a timeout, a hardware key waiting for a touch)
// held Dial past its deadline, and under Connect held Client.Close from
// any other goroutine (a service stopping on SIGTERM) for as long. Dial
// now returns when its ctx ends (the connection closed, as for a router
// that does not answer);
// OnChallenge finishes on its own goroutine and its answer is dropped.
func TestDialBoundedWhileOnChallengeRuns(t *testing.T) {
	p := newPeer(t)
	release := make(chan struct{})
	defer close(release)
	called := make(chan struct{}, 1)
	cfg := Config{URL: p.url("rs"), Realm: "realm1", AuthMethods: []string{"ticket"}, DialTimeout: 300 * time.Millisecond,
		OnChallenge: func(string, map[string]any) (string, map[string]any, error) {
			called <- struct{}{}
			<-release
			return "secret", nil, nil
		}}
	a := goDo(func() (*Session, error) { return Dial(context.Background(), cfg) })
	c := p.accept()
	c.expect(proto.CodeHello)
	c.send(&proto.Message{Type: proto.CodeChallenge, URI: []byte("ticket"), Dict: c.raw(map[string]any{})})
	<-called
	start := time.Now()
	if a.pending(2 * time.Second) {
		release <- struct{}{}
		a.wait(t)
		t.Fatalf("Dial (DialTimeout 300 ms) still waits for OnChallenge %v after it was called", time.Since(start).Round(time.Millisecond))
	}
	_, err := a.wait(t)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial = %v, want the deadline's error", err)
	}
	c.expectEOF()

	// Under Connect, a Connect whose ctx ends (its Close, from another
	// goroutine than the Client's) returns.
	cfg.DialTimeout = wait
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	ca := goDo(func() (*Client, error) { return Connect(ctx, cfg, ReconnectConfig{}) })
	c = p.accept()
	c.expect(proto.CodeHello)
	c.send(&proto.Message{Type: proto.CodeChallenge, URI: []byte("ticket"), Dict: c.raw(map[string]any{})})
	<-called
	if ca.pending(2 * time.Second) {
		release <- struct{}{}
		ca.wait(t)
		t.Fatal("Connect (ctx 300 ms) still waits for OnChallenge 2 s after it was called")
	}
	if _, err := ca.wait(t); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect = %v, want the deadline's error", err)
	}
}
