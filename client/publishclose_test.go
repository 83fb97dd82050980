package client

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// blockedInLockWrite waits until n goroutines wait for a session's write
// lock (lockWrite).
func blockedInLockWrite(t *testing.T, n int) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(wait); ; {
		k := runtime.Stack(buf, true)
		if strings.Count(string(buf[:k]), "client.(*Session).lockWrite(") >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d goroutines wait for the write lock", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// A Publish without acknowledgement racing Close checked only that the
// session had not ended, then waited for the write lock: queued behind
// Close's GOODBYE, its PUBLISH went out after it, and the router, which
// ends the session on the GOODBYE, dropped it, while Publish returned nil
// (written). Once Close has begun, nothing but its GOODBYE (or an ABORT)
// is written: the Publish fails with ErrClosed.
func TestPublishRacingCloseNotWrittenAfterGoodbye(t *testing.T) {
	url := startRouter(t)
	sub := dialRouter(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	got := make(chan *Event, 1)
	_, err := sub.Subscribe(ctx, "com.example.last", func(ev *Event) { got <- ev }, nil)
	noErr(t, "Subscribe", err)
	pub, err := Dial(ctx, Config{URL: url, Realm: "realm1", Serializer: proto.JSON})
	noErr(t, "Dial publisher", err)
	defer pub.Close()

	// Another write holds the lock: Close's GOODBYE waits for it, then
	// the Publish, in that order (a channel's senders are served in turn).
	pub.wlock <- struct{}{}
	closed := goDo(func() (struct{}, error) { return struct{}{}, pub.Close() })
	blockedInLockWrite(t, 1)
	published := goDo(func() (struct{}, error) {
		return struct{}{}, pub.Publish(ctx, "com.example.last", []any{"after close"}, nil, nil)
	})
	blockedInLockWrite(t, 2)
	<-pub.wlock
	_, perr := published.wait(t)
	closed.wait(t)
	if perr == nil {
		select {
		case <-got:
		case <-time.After(time.Second):
			t.Fatal("Publish racing Close returned nil (written), but its event never came: it was written after the GOODBYE")
		}
	} else if !errors.Is(perr, ErrClosed) {
		t.Fatalf("Publish racing Close: %v, want nil (delivered) or ErrClosed", perr)
	}
}
