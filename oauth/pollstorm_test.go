package oauth

import (
	"context"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countUpdates counts the store's updates of keys under a prefix.
type countUpdates struct {
	Store
	prefix string
	n      atomic.Int64
}

func (s *countUpdates) Update(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	if strings.HasPrefix(key, s.prefix) {
		s.n.Add(1)
	}
	return s.Store.Update(ctx, key, value, rev, ttl)
}

// A device code's holder (a public client: anyone) polling as fast as it
// can got slow_down each time, and each poll wrote the code's record
// again (its last poll, and the interval grown by 5 s): one store write,
// fsynced on data_dir and replicated on a mesh, per request, for as long
// as the code lived, where device authorizations themselves are bounded
// per address and per node so that their writes are. Once the interval
// outlasts what is left of the code, growing it further changes nothing a
// device can do: such a poll is answered slow_down without a write, so a
// code costs at most a write per 5 s of its lifetime and one per poll at
// its interval.
func TestDevicePollStormWritesBounded(t *testing.T) {
	var cs *countUpdates
	e := startEnv(t, func(o *Options) {
		cs = &countUpdates{Store: newMemStore(o.now), prefix: "dc."}
		o.Store = cs
	})
	st, da := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
	if st != 200 {
		t.Fatalf("device authorization: %d %v", st, da)
	}
	dc := da["device_code"].(string)
	const polls = 300
	slow := 0
	for range polls {
		e.clock.Advance(10 * time.Millisecond)
		if _, body := e.devicePoll(dc); body["error"] == "slow_down" {
			slow++
		}
	}
	writes := cs.n.Load()
	most := int64(DefaultDeviceCodeLifetime/(5*time.Second)) + 2
	t.Logf("%d polls 10 ms apart: %d slow_down, %d writes of the code's record", polls, slow, writes)
	if slow != polls-1 {
		t.Errorf("%d of %d polls 10 ms apart got slow_down, want all but the first", slow, polls)
	}
	if writes > most {
		t.Errorf("%d polls 10 ms apart wrote the code's record %d times, want at most %d (one per 5 s of its lifetime)", polls, writes, most)
	}
	// Approved meanwhile, the code is still redeemed.
	b := newBrowser(t)
	if st, page := e.approveDevice(b, da["user_code"].(string), "alice", alicePW, "approve"); st != 200 || !strings.Contains(page, "Device connected") {
		t.Fatalf("approval: %d", st)
	}
	if st, body := e.devicePoll(dc); st != 200 || body["access_token"] == nil {
		t.Fatalf("the poll after the approval: %d %v", st, body)
	}
}
