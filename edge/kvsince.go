package edge

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ListSince and its batched reads.
//
// List asks the stream's leader for one entry per round trip: on loopback
// about 0.2 ms an entry, over an edge node's uplink one round trip of the
// uplink an entry (2,000 entries over 50 ms took 100 s). ListSince reads a
// batch of entries per round trip instead, through an ephemeral consumer
// (in-memory, one replica, no acks) that starts at the first entry after
// the revision asked for and is deleted afterwards: up to listProbes
// round trips reading the leader's next entry under the prefix (when
// there is none, which is what a periodic re-read mostly finds, one round
// trip is all; with a few, no consumer is made), then the consumer's
// creation, one no-wait pull per listBatch entries, and its deletion. nats.go's Fetch is not used: a no-wait Fetch gives up after
// one second without a message and reports no error, so that a slow
// uplink would look like the end of the list.

// listBatch is how many entries one pull asks for; listProbes how many
// are read one a round trip before a consumer is made for the rest.
const (
	listBatch  = 1000
	listProbes = 8
)

// noConsumersFor is how long ListSince reads one entry a round trip after
// it could not make a consumer where it could read the entries.
const noConsumersFor = 5 * time.Minute

// ListSince returns the live entries whose keys start with prefix (as
// List's) and whose revision is greater than rev, in increasing revision
// order. Revisions being the stream's sequence numbers, given in the order
// the writes were committed, a caller that keeps the greatest revision it
// was given and asks again from it gets every entry written since, and
// whatever it was not given yet of the entries before: the result is
// always every live entry of the prefix from rev up to the last one it
// holds (a replica's consumer may answer, which may be behind the leader:
// an entry written just before the call may come only with the next one;
// entries deleted meanwhile may or may not be in it). Deletions are not
// reported: a caller that needs them lists again from 0.
//
// With an error it returns the entries it read before it, under the same
// rule (every live entry from rev up to the last one returned), so that a
// caller whose deadline cuts a long list can go on from there rather than
// list everything again (oauth's revocation sync over a slow uplink).
//
// It costs a few round trips whatever the number of entries (see above),
// and at most KVOptions.Timeout each. Safe for concurrent use.
func (kv *KV) ListSince(ctx context.Context, prefix string, rev uint64) ([]KVEntry, error) {
	filter, ok := kv.filter(prefix)
	if !ok {
		return nil, ErrKVInvalid
	}
	octx, cancel := kv.ctx(ctx)
	last, err := kv.stream.GetMsg(octx, rev+1, jetstream.WithGetMsgSubject(filter))
	cancel()
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, kvErr("list", err)
	}
	var out []KVEntry
	if !isMarker(last.Header) {
		out = append(out, kvEntry(kv.subj, last.Subject, last.Data, last.Sequence))
	}
	// A few entries more one by one: a periodic re-read mostly finds only
	// these, and a consumer's creation and deletion are two changes of
	// the JetStream cluster's metadata (its meta leader's Raft log), which
	// every node of a mesh would otherwise make at each re-read.
	for range listProbes - 1 {
		octx, cancel := kv.ctx(ctx)
		m, err := kv.stream.GetMsg(octx, last.Sequence+1, jetstream.WithGetMsgSubject(filter))
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return out, kvErr("list", err)
		}
		last = m
		if !isMarker(m.Header) {
			out = append(out, kvEntry(kv.subj, m.Subject, m.Data, m.Sequence))
		}
	}
	if int64(time.Since(processStart)) < kv.noConsumers.Load() {
		rest, err := kv.listFrom(ctx, filter, last.Sequence+1)
		return append(out, rest...), err
	}
	octx, cancel = kv.ctx(ctx)
	c, err := kv.stream.CreateConsumer(octx, jetstream.ConsumerConfig{
		FilterSubject: filter,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   last.Sequence + 1,
		AckPolicy:     jetstream.AckNonePolicy,
		MemoryStorage: true,
		Replicas:      1,
		// A consumer whose deletion did not reach the server (an uplink
		// cut) goes by itself.
		InactiveThreshold: max(kv.timeout, 5*time.Second),
	})
	cancel()
	if err != nil {
		// A NATS user that may not make consumers (nats_url, a
		// deployment's restricted permissions: its request goes
		// unanswered until the timeout) reads the rest one entry a round
		// trip, as List does, rather than not at all; and, the store
		// answering those, skips the consumer for noConsumersFor.
		rest, lerr := kv.listFrom(ctx, filter, last.Sequence+1)
		if lerr != nil {
			return append(out, rest...), lerr
		}
		kv.noConsumers.Store(int64(time.Since(processStart) + noConsumersFor))
		return append(out, rest...), nil
	}
	info := c.CachedInfo()
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), kv.timeout)
		kv.stream.DeleteConsumer(dctx, info.Name)
		cancel()
	}()
	if info.NumPending == 0 {
		return out, nil
	}
	next := kv.api + "CONSUMER.MSG.NEXT." + kv.name + "." + info.Name
	var delivered uint64 // the consumer's sequence of the last message
	for {
		n, done, err := kv.pull(ctx, next, &delivered, &out)
		if err != nil {
			return out, err
		}
		if done || n < listBatch {
			return out, nil
		}
	}
}

// pull asks the consumer at subject next for up to listBatch messages
// without waiting for new ones, and appends the entries it gets to out.
// It reports how many messages came and whether the last of them was the
// last pending. A message missing between two that came (the consumer's
// sequence skipping one: NATS delivers at most once, and an uplink that
// reconnects can lose some) fails the call rather than leave a hole below
// the revisions returned.
func (kv *KV) pull(ctx context.Context, next string, delivered *uint64, out *[]KVEntry) (n int, done bool, err error) {
	nc := kv.js.Conn()
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return 0, false, kvErr("list", err)
	}
	defer sub.Unsubscribe()
	sub.SetPendingLimits(listBatch+16, -1) // the batch, a status and heartbeats: never a slow consumer
	req, _ := json.Marshal(struct {
		Batch  int  `json:"batch"`
		NoWait bool `json:"no_wait"`
	}{listBatch, true})
	if err := nc.PublishRequest(next, inbox, req); err != nil {
		return 0, false, kvErr("list", err)
	}
	for n < listBatch {
		octx, cancel := kv.ctx(ctx)
		m, err := sub.NextMsgWithContext(octx)
		cancel()
		if err != nil {
			return n, false, kvErr("list", err)
		}
		if len(m.Data) == 0 && m.Header.Get("Status") != "" {
			switch m.Header.Get("Status") {
			case "404", "408": // no more messages, or the request's end
				return n, true, nil
			case "100": // a heartbeat
				continue
			}
			return n, false, kvErr("list", errors.New("consumer: "+m.Header.Get("Status")+" "+m.Header.Get("Description")))
		}
		md, err := m.Metadata()
		if err != nil {
			return n, false, kvErr("list", err)
		}
		if md.Sequence.Consumer != *delivered+1 {
			return n, false, kvErr("list", errors.New("consumer: a message was lost"))
		}
		*delivered = md.Sequence.Consumer
		n++
		if !isMarker(m.Header) {
			*out = append(*out, kvEntry(kv.subj, m.Subject, m.Data, md.Sequence.Stream))
		}
		if md.NumPending == 0 {
			return n, true, nil
		}
	}
	return n, false, nil
}

// kvEntry makes the entry of a stream message.
func kvEntry(subj, subject string, data []byte, seq uint64) KVEntry {
	if data == nil {
		data = []byte{}
	}
	return KVEntry{Key: strings.TrimPrefix(subject, subj), Value: data, Revision: seq}
}
