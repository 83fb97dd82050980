package edge

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A small key-value API on the mesh's JetStream, for state that every node
// of a mesh shares (oauth's tokens and signing keys; cmd adapts a KV to
// the interface the consumer declares). Its methods use standard types
// only.
//
// A bucket is a JetStream stream laid out as a NATS KV bucket (stream
// KV_<bucket>, subjects $KV.<bucket>.<key>, one message per key), so that
// `nats kv` can inspect it, but configured and driven for what a shared
// store needs rather than through nats.go's KeyValue:
//
//   - Reads are linearizable: direct gets are off, so every Get is answered
//     by the stream's leader, never by a replica that may lag behind.
//   - Revisions are stream sequence numbers: a write that returns
//     revision r is seen by every Get that starts afterwards, on any node,
//     and a key never gets a revision it had before.
//   - Create, Update and Delete are compare-and-set on the key's last
//     revision (the Nats-Expected-Last-Subject-Sequence header): a Delete
//     writes a marker so (with rev 0, from the revision it reads), then
//     removes it, so that deleted keys cost nothing, and of a Delete and
//     an Update from one revision exactly one succeeds (Delete says why).
//   - TTL: a write with ttl > 0 carries a per-message TTL (Nats-TTL, whole
//     seconds, rounded up): the server forgets the entry after it, never
//     earlier. A server too old for per-message TTLs (nats_url) keeps the
//     entry until it is deleted.
//   - Replicas: as many as the cluster allows, up to three (R1 on a lone
//     hub; R3 on a cluster of three nodes or more), file storage under the
//     node's JetStream directory (mesh.store_dir), so that the state
//     survives a restart when that directory does, and one node's loss
//     when there are three replicas.
//   - Edge nodes reach the hub's JetStream through their leaf link. When a
//     store does not answer (no quorum, an uplink down), an operation
//     fails with ErrKVUnavailable after at most KVOptions.Timeout.

// KV errors. Operations return these (possibly wrapped; use errors.Is).
var (
	// ErrKVNotFound: the key is absent, deleted or expired.
	ErrKVNotFound = errors.New("edge: kv: no such key")
	// ErrKVExists: Create found a live entry.
	ErrKVExists = errors.New("edge: kv: key exists")
	// ErrKVRevision: the key's revision is not the expected one (or the
	// key is absent).
	ErrKVRevision = errors.New("edge: kv: revision mismatch")
	// ErrKVUnavailable: the store did not answer in time (JetStream
	// without quorum or unreachable, the node shut down).
	ErrKVUnavailable = errors.New("edge: kv: the mesh's store is unavailable")
	// ErrKVInvalid: a key, prefix or value the store does not take.
	ErrKVInvalid = errors.New("edge: kv: invalid key or value")
)

// KVOptions configures a bucket. The zero value of every field but Name
// is a sane default.
type KVOptions struct {
	// Name names the bucket (edgewamp_<Name>): letters, digits, '-', '_'.
	Name string
	// MaxBytes bounds the bucket; once full, writes fail (nothing is
	// dropped). Each replica reserves it from its server's JetStream file
	// store (256 MiB on an embedded server). Default 64 MiB.
	MaxBytes int64
	// MaxValue bounds one value. Default 256 KiB.
	MaxValue int32
	// Timeout bounds each operation (a shorter deadline of its context
	// wins). Default 2 s.
	Timeout time.Duration
}

// KVEntry is one key's value and revision.
type KVEntry struct {
	Key      string
	Value    []byte
	Revision uint64
}

// KV is a bucket in the mesh's JetStream. Every method is safe for
// concurrent use, blocks on a NATS round trip (a Raft commit for writes
// on replicated buckets), and honours its context.
type KV struct {
	name    string // stream name, KV_<bucket>
	js      jetstream.JetStream
	stream  jetstream.Stream
	subj    string // "$KV.<bucket>.": the stream's subject prefix
	put     string // the prefix writes are published to (API-prefixed through a domain)
	api     string // the JetStream API's subject prefix ("$JS.API." or through a domain)
	ttl     bool   // the stream takes per-message TTLs
	timeout time.Duration
	maxVal  int
	// noConsumers is when ListSince may try a consumer again (time since
	// processStart, monotonic: a step of the system clock back does not
	// hold it off for the step's length) after one it could not make while
	// the entries could be read one by one: a user that may not make them
	// (kvsince.go).
	noConsumers atomic.Int64
	// afterMarker, when set, is called by Delete between its marker's
	// write and its removal (a test seam).
	afterMarker func()
}

var bucketNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// kvKeyRE is what a key may hold: NATS subject tokens without wildcards.
var kvKeyRE = regexp.MustCompile(`^[-/_=A-Za-z0-9]+(\.[-/_=A-Za-z0-9]+)*$`)

// JetStream API error codes the KV handles.
const (
	codeNoPeers            = 10005 // no suitable peers for placement
	codeInsufficient       = 10023 // insufficient resources
	codeReplicasNotCluster = 10074 // replicas > 1 not supported in non-clustered mode
)

// KV binds the bucket o names, creating it when no node has yet. It
// blocks until the mesh's JetStream answers or ctx ends (a cluster
// electing its leaders, an edge node whose uplink is down: retry later);
// it does not retry by itself. The node must have been started.
func (n *Node) KV(ctx context.Context, o KVOptions) (*KV, error) {
	if !bucketNameRE.MatchString(o.Name) {
		return nil, fmt.Errorf("edge: kv bucket name %q must be 1 to 64 letters, digits, '-' or '_'", o.Name)
	}
	if n.nc == nil || n.stopped.Load() {
		return nil, ErrKVUnavailable
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 64 << 20
	}
	if o.MaxValue <= 0 {
		o.MaxValue = 256 << 10
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	js, err := n.jetStream()
	if err != nil {
		return nil, err
	}
	bucket := "edgewamp_" + o.Name
	kv := &KV{name: "KV_" + bucket, js: js, subj: "$KV." + bucket + ".", timeout: o.Timeout, maxVal: int(o.MaxValue)}
	kv.put, kv.api = kv.subj, "$JS.API."
	if n.opts.NatsURL == "" {
		kv.api = "$JS." + jsDomain + ".API."
		kv.put = kv.api + kv.subj
	}
	st, err := js.Stream(ctx, kv.name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err = n.createBucket(ctx, js, kv, o)
	}
	if err != nil {
		return nil, kvErr("binding bucket "+bucket, err)
	}
	cfg := st.CachedInfo().Config
	if cfg.AllowDirect {
		// Created by something else (nats kv add): reads could come from a
		// lagging replica. Refuse rather than silently lose linearizability.
		return nil, fmt.Errorf("edge: kv bucket %s allows direct gets (reads from replicas); recreate it without", bucket)
	}
	kv.stream, kv.ttl = st, cfg.AllowMsgTTL
	return kv, nil
}

// jetStream returns the JetStream API of the mesh: the domain-qualified
// one (the cluster's or the hub's, which edge nodes reach through their
// leaf link), or with nats_url the deployment's own.
func (n *Node) jetStream() (jetstream.JetStream, error) {
	if n.opts.NatsURL != "" {
		return jetstream.New(n.nc)
	}
	return jetstream.NewWithDomain(n.nc, jsDomain)
}

// createBucket creates the bucket's stream. A node that lists cluster
// routes knows the cluster's size and asks for min(3, nodes) replicas;
// another (an edge node, a cluster node that only accepts routes, a
// nats_url deployment) asks for three and settles for one when JetStream
// cannot place three.
func (n *Node) createBucket(ctx context.Context, js jetstream.JetStream, kv *KV, o KVOptions) (jetstream.Stream, error) {
	replicas := []int{3, 1}
	if n.opts.Cluster.Listen != "" && len(n.opts.Cluster.Routes) > 0 {
		replicas = []int{min(3, 1+len(n.opts.Cluster.Routes))}
	}
	ttl := true
	if ai, err := js.AccountInfo(ctx); err == nil && ai.API.Level < 1 {
		ttl = false // per-message TTLs need nats-server 2.11
	}
	var err error
	for _, r := range replicas {
		cfg := jetstream.StreamConfig{
			Name:              kv.name,
			Subjects:          []string{kv.subj + ">"},
			Storage:           jetstream.FileStorage,
			Replicas:          r,
			MaxMsgsPerSubject: 1,
			MaxBytes:          o.MaxBytes,
			MaxMsgSize:        o.MaxValue + 4096, // headers
			MaxMsgs:           -1,
			MaxConsumers:      -1,
			Discard:           jetstream.DiscardNew,
			AllowRollup:       false,
			DenyDelete:        false,
			DenyPurge:         false,
			AllowDirect:       false,
			AllowMsgTTL:       ttl,
			Duplicates:        2 * time.Minute,
		}
		var st jetstream.Stream
		st, err = js.CreateStream(ctx, cfg)
		if err == nil {
			n.log.Info("mesh: kv bucket created", "bucket", strings.TrimPrefix(kv.name, "KV_"), "replicas", r)
			return st, nil
		}
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return js.Stream(ctx, kv.name) // another node was faster
		}
		var ae *jetstream.APIError
		if !errors.As(err, &ae) || (ae.ErrorCode != codeNoPeers && ae.ErrorCode != codeInsufficient && ae.ErrorCode != codeReplicasNotCluster) {
			return nil, err
		}
	}
	return nil, err
}

// ctx bounds an operation by the bucket's timeout.
func (kv *KV) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, kv.timeout)
}

// kvErr classifies a NATS or JetStream error: timeouts and missing
// responders are ErrKVUnavailable, the rest is wrapped as is.
func kvErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return fmt.Errorf("%w: %s: %v", ErrKVUnavailable, op, err)
	}
	return fmt.Errorf("edge: kv: %s: %w", op, err)
}

func validKey(key string) bool { return len(key) <= 255 && kvKeyRE.MatchString(key) }

// Get returns the current value and revision of key, or ErrKVNotFound.
// The stream's leader answers, so the result reflects every write that
// returned before Get was called.
func (kv *KV) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	if !validKey(key) {
		return nil, 0, ErrKVInvalid
	}
	ctx, cancel := kv.ctx(ctx)
	defer cancel()
	m, err := kv.stream.GetLastMsgForSubject(ctx, kv.subj+key)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0, ErrKVNotFound
	}
	if err != nil {
		return nil, 0, kvErr("get", err)
	}
	if isMarker(m.Header) {
		return nil, 0, ErrKVNotFound // a marker left by nats kv tools
	}
	if m.Data == nil {
		m.Data = []byte{}
	}
	return m.Data, m.Sequence, nil
}

// Create stores value under key if the key holds no entry, and returns
// its revision; ErrKVExists otherwise.
func (kv *KV) Create(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	rev, err := kv.write(ctx, key, value, 0, ttl)
	if errors.Is(err, ErrKVRevision) {
		return 0, ErrKVExists
	}
	return rev, err
}

// Update replaces the value of key if its revision is still rev, and
// returns the new revision; ErrKVRevision otherwise (also for an absent
// key).
func (kv *KV) Update(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	if rev == 0 {
		return 0, ErrKVRevision
	}
	return kv.write(ctx, key, value, rev, ttl)
}

// write publishes a value expecting the key's last revision to be last
// (0: no entry).
func (kv *KV) write(ctx context.Context, key string, value []byte, last uint64, ttl time.Duration) (uint64, error) {
	if !validKey(key) || len(value) > kv.maxVal {
		return 0, ErrKVInvalid
	}
	ctx, cancel := kv.ctx(ctx)
	defer cancel()
	var opts []jetstream.PublishOpt
	if ttl > 0 && kv.ttl {
		opts = append(opts, jetstream.WithMsgTTL(wholeSeconds(ttl)))
	}
	// expect is the stream's last sequence of the key that the write
	// names: last, or for a Create the deletion marker a Delete in
	// progress left (absent as an entry, present in the stream).
	expect := last
	for attempt := 1; ; attempt++ {
		m := &nats.Msg{Subject: kv.put + key, Header: nats.Header{}, Data: value}
		ack, err := kv.js.PublishMsg(ctx, m, append(opts, jetstream.WithExpectLastSequencePerSubject(expect), jetstream.WithRetryAttempts(0))...)
		if err == nil {
			return ack.Sequence, nil
		}
		if !wrongLast(err) {
			return 0, kvErr("write", err)
		}
		// On a clustered stream the leader also refuses while an earlier
		// write of the subject is still in flight (its own state, not the
		// stream's): right after a Create, an Update from the revision it
		// returned could be refused, and of concurrent Updates from one
		// revision none might win. Refused although the key is still at
		// last, the write is tried again; a key that moved on is a real
		// conflict.
		if attempt == maxWriteAttempts {
			return 0, ErrKVRevision
		}
		cur, ok := kv.current(ctx, key)
		switch {
		case !ok:
			return 0, ErrKVRevision
		case cur.seq == last, last == 0 && cur.marker:
			expect = cur.seq
		default:
			return 0, ErrKVRevision
		}
		select {
		case <-ctx.Done():
			return 0, ErrKVRevision
		case <-time.After(time.Duration(attempt) * 5 * time.Millisecond):
		}
	}
}

// wrongLast reports whether err is JetStream's refusal of a write whose
// expected last sequence of the subject is not the subject's.
func wrongLast(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && (ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// maxWriteAttempts bounds the tries of a conditional write refused while
// the key is still at the expected revision.
const maxWriteAttempts = 5

// lastMsg is a key's last message in the stream: its sequence (0: none)
// and whether it is a deletion marker rather than an entry.
type lastMsg struct {
	seq    uint64
	marker bool
}

// current reads key's last message from the stream's leader; false when
// the read failed.
func (kv *KV) current(ctx context.Context, key string) (lastMsg, bool) {
	m, err := kv.stream.GetLastMsgForSubject(ctx, kv.subj+key)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return lastMsg{}, true
	}
	if err != nil {
		return lastMsg{}, false
	}
	return lastMsg{seq: m.Sequence, marker: isMarker(m.Header)}, true
}

// wholeSeconds rounds ttl up to whole seconds (the server's unit): a TTL
// is never shortened.
func wholeSeconds(ttl time.Duration) time.Duration {
	return (ttl + time.Second - 1) / time.Second * time.Second
}

// Delete removes key. With rev 0 it removes whatever the key holds (and
// succeeds on an absent key), trying again while other writes of the key
// get in first, until ctx ends (ErrKVUnavailable); with rev > 0 only the
// entry of that revision, else ErrKVRevision (also for an absent key).
//
// A deletion is a write: a marker (no value, a KV-Operation header, as
// nats kv's) published expecting the key's last revision, as an Update
// is, and then removed by its sequence. JetStream checks an expected
// revision when the stream's leader proposes a write, against the writes
// applied and in flight, but not against deletions in flight: a message
// deletion or a subject purge, proposed and not yet applied, let an
// Update from the revision it removed through too, and the key came back
// with the Update's value (oauth ended a login by deleting its refresh
// token's family while a refresh on another node rotated it: the family
// lived on). As a write, of a Delete and an Update from one revision
// exactly one succeeds. The marker reads as an absent key (Get, List,
// ListSince), a Create over it takes its place; one left behind (the
// node stopping between the two steps) goes with its TTL, a second,
// where the stream takes TTLs. The marker is removed even when ctx ends
// after its write: Delete may then block up to the bucket's Timeout
// past ctx's end.
func (kv *KV) Delete(ctx context.Context, key string, rev uint64) error {
	if !validKey(key) {
		return ErrKVInvalid
	}
	ctx, cancel := kv.ctx(ctx)
	defer cancel()
	expect := rev
	for attempt := 1; ; attempt++ {
		if rev == 0 {
			cur, ok := kv.current(ctx, key)
			switch {
			case !ok:
				return fmt.Errorf("%w: delete: the key's revision could not be read", ErrKVUnavailable)
			case cur.seq == 0 || cur.marker:
				return nil // absent, or being deleted
			}
			expect = cur.seq
		}
		m := &nats.Msg{Subject: kv.put + key, Header: nats.Header{kvOperation: []string{"PURGE"}}}
		opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(expect), jetstream.WithRetryAttempts(0)}
		if kv.ttl {
			opts = append(opts, jetstream.WithMsgTTL(time.Second))
		}
		ack, err := kv.js.PublishMsg(ctx, m, opts...)
		if err == nil {
			if kv.afterMarker != nil {
				kv.afterMarker()
			}
			// The marker has done its work (every write from the
			// revision it replaced is refused, now that it is applied):
			// removed, so that deleted keys cost nothing. A Create that
			// took its place meanwhile is another message: left alone.
			// Removed even when ctx ended meanwhile (a caller gone
			// between the two writes left it: for its TTL, or until a
			// Create, without TTLs), within the bucket's timeout.
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), kv.timeout)
			kv.stream.DeleteMsg(rctx, ack.Sequence)
			rcancel()
			return nil
		}
		var ae *jetstream.APIError
		if errors.As(err, &ae) && !wrongLast(err) {
			// The stream refused to store the marker (a bucket at its
			// MaxBytes refuses every write, DiscardNew): removed
			// directly, as before, where an Update in flight may
			// still undo it, rather than not at all (what frees a
			// full bucket is deletions).
			return kv.remove(ctx, key, rev)
		}
		if !wrongLast(err) {
			return kvErr("delete", err)
		}
		if rev > 0 {
			// Refused although the key is still at rev: an earlier
			// write in flight (write's comment); tried again.
			if attempt == maxWriteAttempts {
				return ErrKVRevision
			}
			if cur, ok := kv.current(ctx, key); !ok || cur.seq != rev {
				return ErrKVRevision
			}
		}
		// With rev 0 the key moved on (or a write of it was in flight)
		// between the read and the marker: read and tried again until
		// ctx ends. Five tries lost to a node updating the key back to
		// back 8 times in 20 (a login refreshed in a loop could not be
		// revoked); the leader takes a write only between that node's
		// writes, which a try hits about once in five.
		select {
		case <-ctx.Done():
			if rev == 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w: delete: the key kept changing", ErrKVUnavailable)
			}
			return kvErr("delete", ctx.Err())
		case <-time.After(deleteBackoff(attempt)):
		}
	}
}

// deleteBackoff is the pause before a Delete's next try: growing to
// 20 ms, with jitter so that a Delete does not keep step with a writer.
func deleteBackoff(attempt int) time.Duration {
	d := time.Duration(min(attempt, 4)) * 5 * time.Millisecond
	return d/2 + rand.N(d/2+1)
}

// remove deletes key's message directly: with rev 0 whatever the key
// holds (a purge of its subject), else the message of sequence rev if it
// is the key's. Not a write: JetStream does not order it with writes in
// flight (Delete's comment), so that it is only Delete's way when the
// stream refuses its marker.
func (kv *KV) remove(ctx context.Context, key string, rev uint64) error {
	if rev == 0 {
		if err := kv.stream.Purge(ctx, jetstream.WithPurgeSubject(kv.subj+key)); err != nil {
			return kvErr("delete", err)
		}
		return nil
	}
	// One message per key: the message of sequence rev exists exactly when
	// it is the key's current entry (an update removes the older one in
	// the same step). Check that it is this key's before removing it.
	m, err := kv.stream.GetMsg(ctx, rev)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return ErrKVRevision
	}
	if err != nil {
		return kvErr("delete", err)
	}
	if m.Subject != kv.subj+key || isMarker(m.Header) {
		return ErrKVRevision
	}
	if err := kv.stream.DeleteMsg(ctx, rev); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) || kv.goneMeanwhile(ctx, err, rev) {
			return ErrKVRevision // updated or deleted meanwhile
		}
		return kvErr("delete", err)
	}
	return nil
}

// goneMeanwhile reports whether err is JetStream's refusal to delete the
// message of sequence rev because another Delete or an Update removed it
// between remove's read of it and its deletion (10043 "sequence not
// found", or 10057 with the store's "no message found"; nats.go passes
// them as text, wrapped in ErrMsgDeleteUnsuccessful): the message is no
// longer there, which the Store contract calls ErrRevision.
func (kv *KV) goneMeanwhile(ctx context.Context, err error, rev uint64) bool {
	if !errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
		return false
	}
	_, gerr := kv.stream.GetMsg(ctx, rev)
	return errors.Is(gerr, jetstream.ErrMsgNotFound)
}

// kvOperation is the header of nats kv's markers, which isMarker looks for.
const kvOperation = "KV-Operation"

// Usage returns the bytes the bucket's entries take and the most it may
// hold (its MaxBytes; once full, writes fail), as the stream's leader
// reports them: one round trip.
func (kv *KV) Usage(ctx context.Context) (used, limit int64, err error) {
	ctx, cancel := kv.ctx(ctx)
	defer cancel()
	info, err := kv.stream.Info(ctx)
	if err != nil {
		return 0, 0, kvErr("usage", err)
	}
	return int64(info.State.Bytes), info.Config.MaxBytes, nil
}

// List returns the live entries whose keys start with prefix, which is
// "" (every key) or a key followed by a dot ("rt."), in any order. The
// stream's leader answers, one entry per round trip (JetStream's
// next-message-by-subject get), so every entry written before List was
// called is in the result; entries written or deleted meanwhile may or
// may not be. It costs one round trip per entry: meant for buckets of
// thousands of entries, not millions, and for a reader that needs every
// entry written before it (ListSince reads in batches, from any replica).
func (kv *KV) List(ctx context.Context, prefix string) ([]KVEntry, error) {
	filter, ok := kv.filter(prefix)
	if !ok {
		return nil, ErrKVInvalid
	}
	es, err := kv.listFrom(ctx, filter, 1)
	if err != nil {
		return nil, err
	}
	return es, nil
}

// listFrom returns the live entries of the stream subject filter from
// the stream sequence seq on, one round trip an entry (List's reads);
// with an error, those read before it.
func (kv *KV) listFrom(ctx context.Context, filter string, seq uint64) ([]KVEntry, error) {
	var out []KVEntry
	for {
		octx, cancel := kv.ctx(ctx)
		m, err := kv.stream.GetMsg(octx, seq, jetstream.WithGetMsgSubject(filter))
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return out, kvErr("list", err)
		}
		seq = m.Sequence + 1
		if isMarker(m.Header) {
			continue
		}
		if m.Data == nil {
			m.Data = []byte{}
		}
		out = append(out, KVEntry{Key: strings.TrimPrefix(m.Subject, kv.subj), Value: m.Data, Revision: m.Sequence})
	}
}

// filter returns the stream subject filter of a List prefix ("" or a key
// followed by a dot), or false.
func (kv *KV) filter(prefix string) (string, bool) {
	if prefix == "" {
		return kv.subj + ">", true
	}
	if !strings.HasSuffix(prefix, ".") || !validKey(prefix[:len(prefix)-1]) {
		return "", false
	}
	return kv.subj + prefix + ">", true
}

// isMarker reports whether a stream message is a marker left by nats kv
// tools (a delete or purge) rather than an entry.
func isMarker(h nats.Header) bool {
	return len(h) > 0 && (h.Get(kvOperation) != "" || h.Get(jetstream.MarkerReasonHeader) != "")
}
