package oauth

import (
	"context"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
)

// slowUsageStore is a Store bounded in bytes (UsageReporter) whose Usage
// waits until the test lets it answer (a mesh's hub slow to answer its
// stream info), then says the store is nearly empty.
type slowUsageStore struct {
	Store
	asked   chan struct{} // one value per Usage that started
	release chan struct{} // closed: Usage answers
}

func (s *slowUsageStore) Usage(ctx context.Context) (used, limit int64, err error) {
	s.asked <- struct{}{}
	select {
	case <-s.release:
		return 0, 64 << 20, nil
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
}

// TestDeviceAuthorizationNotHeldBySlowUsage: while the store is asked
// how full it is (at most once a second, up to edge.KV's 2 s timeout
// when the hub is slow), other device authorizations go on with the last
// answer (none yet: allowed, as when the store does not say) rather than
// waiting for it. Before, the ask was made under deviceRoom's mutex:
// every device authorization of the node queued behind it, a slow hub's
// 2 s added to each batch, and requests whose clients had gone stayed
// queued (a sync.Mutex does not see a context).
func TestDeviceAuthorizationNotHeldBySlowUsage(t *testing.T) {
	st := &slowUsageStore{asked: make(chan struct{}, 16), release: make(chan struct{})}
	e := startEnv(t, func(o *Options) { st.Store = newMemStore(time.Now); o.Store = st })
	released := false
	defer func() {
		if !released {
			close(st.release)
		}
	}()
	authorize := func() <-chan int {
		ch := make(chan int, 1)
		hc := sourceClient() // a new address each: the per-address limit stays out of it
		go func() {
			resp, err := hc.PostForm(e.url+"/oauth/device_authorization", url.Values{"client_id": {"device"}})
			if err != nil {
				ch <- -1
				return
			}
			resp.Body.Close()
			ch <- resp.StatusCode
		}()
		return ch
	}
	first := authorize()
	select {
	case <-st.asked:
	case <-time.After(10 * time.Second):
		t.Fatal("the first device authorization did not ask the store's usage")
	}
	// The first is held in Usage; a second, from another address, must
	// not wait for it.
	second := authorize()
	select {
	case code := <-second:
		if code != http.StatusOK {
			t.Fatalf("the second device authorization, while the first waited for the store's usage: %d, want 200", code)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the second device authorization waited for the first one's ask of the store's usage (still waiting after 3 s)")
	}
	close(st.release)
	released = true
	if code := <-first; code != http.StatusOK {
		t.Fatalf("the first device authorization: %d, want 200", code)
	}
}

// modalUsageStore is a Store bounded in bytes whose Usage says it is
// half full, or (hang set) waits for its context to end.
type modalUsageStore struct {
	Store
	hang     atomic.Bool
	returned chan error // each Usage's error, once it returns
}

func (s *modalUsageStore) Usage(ctx context.Context) (used, limit int64, err error) {
	defer func() { s.returned <- err }()
	if s.hang.Load() {
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(500 * time.Millisecond): // a slow store that answers
		}
	}
	return 40 << 20, 64 << 20, nil
}

// TestDeviceRoomNotReopenedByAGoneAsker: a device authorization whose
// client goes away while it asks the store how full it is does not turn
// the store's "half full" into "room" for the next second. Before, the
// ask ran on the request's context, and its error (the client gone) was
// read as the store not saying: allowed, for a second and 16 codes,
// after which the next asker could do the same, keeping the half of the
// mesh's bucket meant for signed-in users open to anyone who hangs up.
func TestDeviceRoomNotReopenedByAGoneAsker(t *testing.T) {
	st := &modalUsageStore{returned: make(chan error, 16)}
	e := startEnv(t, func(o *Options) { st.Store = newMemStore(time.Now); o.Store = st })
	authorize := func(timeout time.Duration) int {
		t.Helper()
		hc := sourceClient() // a new address each: the per-address limit stays out of it
		hc.Timeout = timeout
		resp, err := hc.PostForm(e.url+"/oauth/device_authorization", url.Values{"client_id": {"device"}})
		if err != nil {
			return -1
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := authorize(30 * time.Second); code != http.StatusTooManyRequests {
		t.Fatalf("a device authorization with the store half full: %d, want 429", code)
	}
	<-st.returned
	// The next request asks again (as it would a second later), and its
	// client hangs up while the store is slow to answer.
	e.srv.deviceRoom.mu.Lock()
	e.srv.deviceRoom.at = time.Time{}
	e.srv.deviceRoom.mu.Unlock()
	st.hang.Store(true)
	if code := authorize(100 * time.Millisecond); code != -1 {
		t.Fatalf("a device authorization whose client gave up after 100 ms: %d, want none", code)
	}
	select {
	case <-st.returned:
	case <-time.After(10 * time.Second):
		t.Fatal("the ask of the store's usage did not end")
	}
	st.hang.Store(false)
	if code := authorize(30 * time.Second); code != http.StatusTooManyRequests {
		t.Fatalf("a device authorization right after an asker hung up, the store still half full: %d, want 429", code)
	}
}
