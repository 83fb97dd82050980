package edge

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// claimsHeldBy reports how many of keys the claim store (read through
// n's embedded server) holds under holder's value (its name and boot),
// and how many it holds at all.
func claimsHeldBy(ctx context.Context, n, holder *tnode, keys []string) (mine, all int, err error) {
	var opts []nats.Option
	if p := n.n.localPass; p != "" {
		opts = append(opts, nats.UserInfo(localUser, p))
	}
	nc, err := nats.Connect("", append(opts, nats.InProcessServer(n.n.srv))...)
	if err != nil {
		return 0, 0, err
	}
	defer nc.Close()
	js, err := jetstream.NewWithDomain(nc, jsDomain)
	if err != nil {
		return 0, 0, err
	}
	kv, err := js.KeyValue(ctx, claimBucket)
	if err != nil {
		return 0, 0, err
	}
	want := string(holder.n.claims.value())
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			continue
		case err != nil:
			return 0, 0, fmt.Errorf("reading claim %s: %w", k, err)
		}
		all++
		if string(e.Value()) == want {
			mine++
		}
	}
	return mine, all, nil
}
