package edge

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/edgewamp/edgewamp/proto"
)

// A node joined to a NATS deployment whose user was granted what README
// asked before the claims were read through the stream's leader (f76d191,
// 03299df), and so may not publish to $JS.API.STREAM.MSG.GET: each such
// read went unanswered until its timeout (a publish refused by
// permissions is only an asynchronous -ERR), the check of the node's
// claims stopped at its first claim at every reconcile and never ended,
// and a claim taken over behind the node's back was never claimed again.
// Refused, the node reads the claims by direct get, as before, and tries
// the leader again after noConsumersFor.
func TestClaimCheckWithoutStreamMsgGetPermission(t *testing.T) {
	t.Parallel()
	const claims = 5
	url := jsServerWith(t, func(o *server.Options) {
		o.Users = []*server.User{{Username: "edge", Password: "edge-password",
			Permissions: &server.Permissions{Publish: &server.SubjectPermission{
				Allow: []string{">"},
				Deny:  []string{"$JS.API.STREAM.MSG.GET.>"},
			}}}}
	})
	url = strings.Replace(url, "nats://", "nats://edge:edge-password@", 1)
	a := startNode(t, "a", func(o *Options) { o.NatsURL = url })
	waitClaims(t, 30*time.Second, a)
	registerMany(t, a.dial(a.ws(), proto.JSON), "com.perm.", claims, 24)
	if r := recheckSettled(t, a); r < claims {
		t.Fatalf("the first check read %d claims, want %d", r, claims)
	}

	uri := "com.perm.3."
	key := claimKey("realm1", proto.MatchExact, uri+strings.Repeat("x", 24-len(uri)))
	ctx := ctxT(t, 20*time.Second)
	if _, err := a.n.claims.kv.Put(ctx, key, []byte("someone-else")); err != nil {
		t.Fatal(err)
	}
	was := a.n.Stats().ClaimsReasserted.Load()
	start := time.Now()
	if r := recheckSettled(t, a); r < claims {
		t.Fatalf("a check after the store changed read %d claims, want %d", r, claims)
	}
	t.Logf("the second check took %v", time.Since(start))
	if a.n.Stats().ClaimsReasserted.Load() == was {
		t.Fatalf("the claim of %s taken over was not found at the check", key)
	}
}
