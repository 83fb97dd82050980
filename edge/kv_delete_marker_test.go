package edge

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestKVDeleteMarkerRemovedWhenCancelled: a Delete whose context is
// cancelled between its two steps (its marker written, not yet removed:
// an HTTP request of oauth's ended by its client) still removes the
// marker. Before, the removal used the cancelled context, failed at once
// and was ignored: the marker stayed, a message of the bucket for one
// second where the stream takes TTLs, and until a Create replaced it
// where it does not (a nats_url server older than 2.11). A Delete from
// oauth's endpoints left one a cancelled revocation.
func TestKVDeleteMarkerRemovedWhenCancelled(t *testing.T) {
	t.Parallel()
	ns := cluster(t, "a", "b", "c")
	kv := bindKV(t, ns[1], "delcancel")
	ctx := ctxT(t, 60*time.Second)
	for _, ttl := range []bool{false, true} {
		kv.ttl = ttl // false: as on a server without per-message TTLs
		key := "rt.cancel"
		if ttl {
			key += "ttl"
		}
		if _, err := kv.Create(ctx, key, []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
		dctx, cancel := context.WithCancel(ctx)
		kv.afterMarker = cancel // the caller goes between the two writes
		err := kv.Delete(dctx, key, 0)
		kv.afterMarker = nil
		cancel()
		if err != nil {
			t.Fatalf("ttl %v: Delete: %v", ttl, err)
		}
		if _, _, err := kv.Get(ctx, key); !errors.Is(err, ErrKVNotFound) {
			t.Fatalf("ttl %v: Get after the Delete: %v", ttl, err)
		}
		if m, err := kv.stream.GetLastMsgForSubject(ctx, kv.subj+key); !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Errorf("ttl %v: the key's last message after a Delete cancelled between its two writes: %+v %v, want none (the marker removed)", ttl, m, err)
		}
	}
}
