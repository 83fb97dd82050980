package edge

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// Exclusive (single) registrations: a claim per (realm, match, URI) in a
// JetStream key-value bucket, taken with Create (compare-and-set on
// absence), so that of two nodes registering the same procedure at the
// same moment exactly one gets REGISTERED.
//
//   - The bucket lives in memory, replicated on up to three nodes of the
//     cluster (the JetStream quorum); a hub alone keeps one replica; edge
//     nodes reach the hub's through their leaf link.
//   - A claim held by this node under an earlier boot (it restarted), by
//     a node the mesh no longer sees (dead), or by an earlier life of a
//     node seen again under the same name (it restarted: the claim's boot
//     is not the one it announces), is taken over. One under this node's
//     name from a boot it hears now is another node's that uses the same
//     name (peers.go, "Two nodes under one name"): refused. One of a life
//     this node has not heard (a node just started or restarted, whose
//     heartbeat has not come yet) is waited for, at most PeerTimeout
//     (claimStore.life).
//   - The bucket is bounded (claimBucketBytes); a claim the store refuses
//     for want of room is refused (wamp.error.unavailable), not accepted
//     provisionally: the store answered, and is not taken for down.
//   - When the store cannot answer within claimTimeout (no quorum, the
//     uplink is down), the claim is accepted provisionally: a partitioned
//     node keeps serving its local clients. Provisional claims are
//     retried every reconcileEvery until the store takes them. If two
//     nodes registered the same single procedure during a partition, the
//     registration directory settles it when they see each other again:
//     the registration made first wins, the other node revokes its own
//     and releases its claim (route/mesh.go).

// jsDomain is the JetStream domain of the mesh's store (the cluster, or
// the hub), which edge nodes reach through their leaf link.
const jsDomain = "edgewamp"

const (
	claimBucket = "edgewamp_claims"
	// claimBucketBytes bounds the claim bucket (its stream's MaxBytes):
	// a claim is about 145 bytes in the store (key, value, headers), so
	// about 115,000 single registrations mesh-wide. Before, it had no
	// bound of its own and filled JetStream's 64 MiB of memory, which the
	// OAuth2 and other KV buckets share (~460,000 single registrations,
	// 8 sessions at limits.registrations from one address, in ~90 s).
	// Once full, a claim is refused (errClaimStoreFull). A bucket made
	// by an earlier release keeps its configuration.
	claimBucketBytes = 16 << 20
	// claimCost is what one claim takes in the bucket (key, value,
	// headers; the key is a hash, whatever the URI): 143 bytes measured
	// (458 claims fill 64 KiB).
	claimCost = 144
	// The claim store's shares. Before, nothing bounded what one session
	// or one node held of the bucket, which is the whole mesh's: one
	// session registering single procedures filled it (two at
	// limits.registrations fill 16 MiB), and every single REGISTER of
	// every node was refused wamp.error.unavailable from then on. A node
	// holds at most 1/claimNodeShare of the bucket (~29,000 claims of
	// 16 MiB), so that no node alone, whatever its sessions do, fills it:
	// a 3-node cluster at its shares leaves a quarter free, and a hub's
	// edge nodes need four to fill it (a share of 1/N of N nodes would
	// give a hub with 1,024 edges about 100 claims a node, where one
	// node commonly serves a site's devices). A session holds at most
	// 1/claimSessionShare of its node's share (~7,200 claims), so that
	// one session (a tenant's callee, a client in a loop) leaves the
	// rest of its node's share to the node's other sessions. Static (no
	// change with the mesh's size): a node's claims past a share are
	// never revoked, only new ones refused.
	claimNodeShare    = 4
	claimSessionShare = 4
	// claimTimeout bounds one store operation; claimWait how long a
	// claim keeps retrying a store that answers with errors (JetStream
	// still electing its leaders, a link being re-established) before it
	// is accepted provisionally.
	claimTimeout   = time.Second
	claimWait      = 3 * time.Second
	reconcileEvery = 2 * time.Second
	maxClaimJobs   = 1024
	maxReleaseJobs = 64 << 10
	// releaseFlush bounds how long a clean shutdown spends giving back
	// the node's claims (claimStore.flush).
	releaseFlush = 2 * time.Second
	// releaseWorkers is how many claims a clean shutdown gives back at a
	// time.
	releaseWorkers = 16
	// maxUnheard bounds claimStore.unheard.
	maxUnheard = 4096
	// unheardRetry is how often a claim parked for a life not heard yet
	// is tried again.
	unheardRetry = 100 * time.Millisecond
)

type claimRec struct {
	rev uint64 // the revision this node wrote; 0 = provisional
	// unwritten: provisional without a write to the store (accepted at
	// once while the store was taken for down), so that there is nothing
	// of it in the store to give back (releaseBy).
	unwritten bool
}

type claimStore struct {
	n *Node
	// The worker's jobs, in order: claims (at most maxClaimJobs waiting;
	// another is refused with errClaimsFull), barriers (refused, run at
	// once, past maxReleaseJobs jobs) and releases (never refused: a
	// release dropped would leave this node holding the key of a
	// registration that is gone, a ghost refusing the procedure
	// mesh-wide). Releases were refused past maxReleaseJobs jobs too, one
	// session's limits.registrations: the leave of sessions holding more
	// single registrations at once (a node's clients cut together) left
	// the rest as ghosts. Their number is bounded by the claims the node
	// holds (each release follows the claim of its key in the queue, and a
	// key is claimed again only after its release ran), about 80 bytes
	// each against the registration's own hundreds. kick wakes the worker.
	qmu    sync.Mutex
	q      []claimJob // guarded by qmu
	maxQ   int        // maxReleaseJobs (tests: Options.testClaimQueue), for barriers and releasing; static
	claims int        // claim jobs in q; guarded by qmu
	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{}

	// Owned by the worker goroutine.
	kv     jetstream.KeyValue
	stream jetstream.Stream // the bucket's stream (nil: releases leave a delete marker)
	js     jetstream.JetStream
	// leader reads claims through the bucket stream's leader (leaderGet),
	// as js reads its state; bound with js.
	leader nats.JetStreamContext
	// streamTried is when bucket last asked for the stream and was not
	// answered: it asks again at most once a second while stream is nil.
	streamTried time.Time
	replicas    int
	held        map[string]claimRec // claims this node holds, by key
	// releasing holds the claims this node gave back that the store did
	// not take (it did not answer: no quorum, the uplink down), by key:
	// the revision this node wrote (0: a provisional claim, given back by
	// its value, giveBack). reconcile gives them back again.
	// Before, such a release was gone, and the store kept the claim of a
	// live node for a registration that no longer existed: the procedure
	// refused mesh-wide (procedure_already_exists) until this node left.
	// At most maxReleaseJobs.
	releasing map[string]uint64
	// unheard holds when this node first found a claim held by a life
	// of a node it had not heard (take, lifeUnheard), by name and boot;
	// at most maxUnheard.
	unheard map[string]time.Time
	// routedFound holds when this node first found a claim held by a
	// live life of a routed peer, its route open (cutOff); at most
	// maxUnheard.
	routedFound map[string]time.Time
	// lostLives holds the lives of the episodes of lost routes in
	// unheard (their keys there, routeLostKey's), which pruneLost ends
	// when it finds their route back or the life ended.
	lostLives map[string][2]string
	// parked holds the claims waiting for a life not heard yet
	// (errUnheard), retried every unheardRetry while the worker serves
	// the other jobs (still counted in claims); retry is armed while
	// there are some. Before, the worker slept through each such wait,
	// one after the other: claims of k lives never heard held every
	// other claim of the node k times PeerTimeout.
	parked []parkedClaim
	retry  *time.Timer
	// roundAt is when retryParked's last round began (or the first
	// claim was parked).
	roundAt time.Time
	// credited is how much of Node.stallCredit creditStalls applied,
	// and creditedAt when it last did.
	credited   int64
	creditedAt time.Time
	// lastUnheard is the life (name and boot) of take's last errUnheard.
	lastUnheard [2]string
	// twinLogged is when twinRuns last logged a node under this node's
	// name that answered.
	twinLogged time.Time
	// twinGone are boots of this node's name twinRuns found not running
	// (at most maxGoneBoots). Worker goroutine.
	twinGone map[uint64]struct{}
	// noWait makes take wait for no life (wait, cutOff): set while
	// retryParked tries a claim parked for maxParked.
	noWait bool
	// down: a claim found the store unreachable. While it is set, claims
	// are accepted provisionally at once: the claims go through this one
	// worker, and each waiting claimWait would make the REGISTERs queued
	// behind it wait that long once per claim ahead of them. reconcile
	// clears it.
	down bool
	// full: the store last refused a claim for want of room (logged
	// once per such episode). Worker goroutine.
	full bool
	// overShareLogged is when a claim refused at the node's share was
	// last logged (at most once a minute: a session at its node's share
	// that unregisters one and registers two, in a loop, made an episode
	// each). Worker goroutine.
	overShareLogged time.Time
	// reconciling is set while reconcile's round of the keys in round
	// (releases first, then provisional claims) is under way; the worker
	// goes on with it after each job (reconcile).
	reconciling bool
	round       []reconcileKey
	mu          sync.Mutex // guards closed
	closed      bool
	// flushBy is set by close before it stops the worker (which reads it
	// after stop is closed): the deadline of the flush.
	flushBy time.Time
	bound   atomic.Bool // the bucket is bound: the store answers
	// recheck is set (recheckHeld) when a node joins: one that took this
	// one for dead, or that this one took for dead, may have taken over
	// this node's claims while they did not hear each other; a store
	// node that restarted may have lost them.
	// checking holds the keys the worker still has to check (checkHeld),
	// owned by the worker.
	recheck  atomic.Bool
	checking []string
	// checkReads counts the store round trips checkHeld made, and
	// checksSettled the recheckHeld requests it settled (a pass of every
	// claim ended, or none needed): for tests.
	checkReads    atomic.Uint64
	checksSettled atomic.Uint64
	// passMark is the store's state when the pass under way began,
	// checkedMark when the last complete one began (storeMark): a join
	// that finds the store as checkedMark needs no pass. again: a join
	// came during the pass under way (passing). Owned by the worker.
	passMark, checkedMark storeMark
	passing, again        bool
	// sweeping is set while a sweep (of the claims of nodes seen dead)
	// runs; sweeps counts the running one, which the worker waits for
	// when it stops.
	sweeping atomic.Bool
	sweeps   sync.WaitGroup
	// testHookNext, set by tests only, runs on the worker before each
	// job: a test stalls the worker with it (a slow store).
	testHookNext atomic.Pointer[func()]
	// testHookStore, set by tests only, sees the result of each claim's
	// Create and each release's purge or delete, which it may replace:
	// a test makes the store answer too late (the write done, its answer
	// lost) with it.
	testHookStore atomic.Pointer[func(op string, err error) error]
}

// hooked passes err, the result of the store operation op, through
// testHookStore.
func (c *claimStore) hooked(op string, err error) error {
	if h := c.testHookStore.Load(); h != nil {
		return (*h)(op, err)
	}
	return err
}

func newClaimStore(n *Node) *claimStore {
	c := &claimStore{n: n, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), held: map[string]claimRec{}, releasing: map[string]uint64{}, unheard: map[string]time.Time{}, routedFound: map[string]time.Time{}, lostLives: map[string][2]string{}}
	c.maxQ = maxReleaseJobs
	if n.opts.testClaimQueue > 0 {
		c.maxQ = n.opts.testClaimQueue
	}
	c.retry = time.NewTimer(time.Hour)
	c.retry.Stop()
	c.replicas = 1
	if n.opts.Cluster.Listen != "" {
		c.replicas = min(3, 1+len(n.opts.Cluster.Routes))
	}
	go c.run()
	return c
}

func (c *claimStore) run() {
	defer close(c.done)
	defer c.flush()
	defer c.abandon()
	t := time.NewTicker(c.n.reconcileEvery())
	defer t.Stop()
	every := claimSweepEvery
	if c.n.opts.testClaimSweep > 0 {
		every = c.n.opts.testClaimSweep
	}
	sweep := time.NewTicker(every)
	defer sweep.Stop()
	defer c.sweeps.Wait() // before done: a sweep uses the NATS connection
	// Bind the bucket early, so that the first claims do not wait for it
	// (JetStream needs a moment to elect its leaders in a new cluster).
	for c.kv == nil {
		ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
		c.bucket(ctx)
		cancel()
		if c.kv != nil {
			break
		}
		select {
		case <-c.stop:
			return
		case <-c.kick:
			c.next()
		case <-time.After(250 * time.Millisecond):
		}
	}
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
			c.next()
			c.checkHeld()
			if c.reconciling {
				c.reconcile()
			}
		case <-t.C:
			c.reconcile()
			c.checkHeld()
		case <-c.retry.C:
			c.retryParked()
		case <-sweep.C:
			if c.kv != nil && c.stream != nil && c.n.opts.Leaf.Remotes == nil && c.sweeping.CompareAndSwap(false, true) {
				c.sweeps.Add(1)
				go c.sweep(c.kv, c.stream)
			}
		}
	}
}

// parkedClaim is a claim job waiting for the life that holds its key
// (name and boot) to be heard.
type parkedClaim struct {
	j          claimJob
	name, boot string
	since      time.Time // first parked
	reread     time.Time // when to ask the store again while it waits
}

// park sets aside claim job j, held by the life take last found unheard,
// to be tried again (retryParked) while the worker serves the other jobs.
// Worker goroutine.
func (c *claimStore) park(j claimJob) {
	c.qmu.Lock()
	c.claims++ // still waiting: counted against maxClaimJobs
	c.qmu.Unlock()
	now := time.Now()
	c.parked = append(c.parked, parkedClaim{j, c.lastUnheard[0], c.lastUnheard[1], now, now.Add(parkedReread)})
	if len(c.parked) == 1 {
		c.roundAt = now
		c.retry.Reset(unheardRetry)
	}
}

// retryParked tries the parked claims again once their life is heard
// (alive or seen to end) or has stayed unheard for PeerTimeout, or
// their route-lost wait ended; the others stay parked, asking the store
// again every parkedReread. Worker goroutine.
func (c *claimStore) retryParked() {
	if now := time.Now(); now.Sub(c.roundAt) > unheardRetry+2*c.n.opts.Heartbeat || c.n.sparing.Load() {
		// This round comes over two heartbeats late: this process has
		// just run again after a stall, which the control dispatcher
		// may not have credited yet (creditStalls); or a peer is
		// spared after a second stall (Node.creditStall). One round
		// later.
		c.roundAt = now
		c.retry.Reset(unheardRetry)
		return
	}
	c.roundAt = time.Now()
	c.creditStalls()
	jobs := c.parked
	c.parked = nil
	var routeLost map[string]bool
	c.pruneLost(&routeLost)
	rereads := 0
	for i, p := range jobs {
		select {
		case <-c.stop: // abandon answers them
			c.parked = append(c.parked, jobs[i:]...)
			return
		default:
		}
		capped := time.Since(p.since) >= c.maxParked()
		// While it waits, a parked claim asks the store again every
		// parkedReread (at most maxRereads of them a round): a release
		// made meanwhile (the key taken over and given back by a node
		// that took the holder for dead first) is then seen at once.
		// Before, only when the wait ended or the holder was taken for
		// dead here (up to 2 x PeerTimeout).
		if !capped && !time.Now().Before(p.reread) && rereads < maxRereads {
			rereads++
		} else {
			switch c.life(p.name, p.boot) {
			case lifeUnheard:
				if since, ok := c.unheard[p.name+"\n"+p.boot]; ok && time.Since(since) < c.n.opts.PeerTimeout && !capped {
					c.parked = append(c.parked, p)
					continue
				}
			case lifeAlive:
				// cutOff's wait for a peer whose route closed: its
				// routes walked once a round, not per parked claim.
				lost, ok := routeLost[p.name]
				if !ok {
					lost = c.n.routeLost(p.name)
					if routeLost == nil {
						routeLost = map[string]bool{}
					}
					routeLost[p.name] = lost
				}
				if since, ok := c.unheard[routeLostKey+p.name+"\n"+p.boot]; lost && ok && time.Since(since) < 2*c.n.opts.PeerTimeout && !capped {
					c.parked = append(c.parked, p)
					continue
				}
			}
		}
		// A claim parked for maxParked is not parked again: a life not
		// heard is taken for dead, a live one refuses it (take,
		// noWait). The waits restart with each episode of a lost route
		// (cutOff): a route that closes and forms again, over and over,
		// kept it parked for as long.
		c.noWait = capped
		err := c.claim(p.j.key)
		c.noWait = false
		if errors.Is(err, errUnheard) {
			c.parked = append(c.parked, parkedClaim{p.j, c.lastUnheard[0], c.lastUnheard[1], p.since, time.Now().Add(parkedReread)})
			continue
		}
		c.qmu.Lock()
		c.claims--
		c.qmu.Unlock()
		p.j.done(err)
	}
	if len(c.parked) > 0 || len(c.lostLives) > 0 {
		c.retry.Reset(unheardRetry)
	}
}

// pruneLost ends the episodes of lost routes whose route is back, or
// whose life ended (cutOff, wait), whether or not a claim finds it: a
// flap that no claim saw end, followed within PeerTimeout of its wait's
// end by the peer's kill, left the kill without the wait. It walks each
// peer's links once a round (routeLost, shared with retryParked), while
// there are such episodes only. Worker goroutine.
func (c *claimStore) pruneLost(routeLost *map[string]bool) {
	for key, l := range c.lostLives {
		if c.life(l[0], l[1]) == lifeAlive {
			lost, ok := (*routeLost)[l[0]]
			if !ok {
				lost = c.n.routeLost(l[0])
				if *routeLost == nil {
					*routeLost = map[string]bool{}
				}
				(*routeLost)[l[0]] = lost
			}
			if lost && !c.reachedOtherwise(l[0], l[1]) {
				continue
			}
		}
		delete(c.lostLives, key)
		delete(c.unheard, key)
	}
}

// reachedOtherwise reports whether life (name, boot), whose link at its
// join is gone (routeLost), has sent a heartbeat since this episode of
// the loss began (routes.go, sentSince): it reaches this node some other
// way (a leaf link moved to another hub node), and is no longer judged
// by that link (unRoute), its claims refused as a live node's. Before, a
// claim waited 2 x PeerTimeout for it as for a killed node. Worker
// goroutine.
func (c *claimStore) reachedOtherwise(name, boot string) bool {
	since, ok := c.unheard[routeLostKey+name+"\n"+boot]
	if !ok || !c.n.sentSince(name, boot, since) {
		return false
	}
	c.n.unRoute(name)
	// Heard since: the grace of a link that may be about to close
	// (cutOff's routeCloseGrace) is over for this life too.
	if len(c.routedFound) >= maxUnheard {
		clear(c.routedFound)
	}
	c.routedFound[name+"\n"+boot] = time.Now().Add(-routeCloseGrace)
	return true
}

// claimJob is a claim of key (done set), a barrier (barrier set: it runs
// once the jobs queued before it have) or a release of key.
type claimJob struct {
	key     string
	done    func(error)
	barrier func()
}

// next runs the oldest job, and kicks the worker again if more wait (one
// job per wake-up keeps stop and the reconcile ticks answered between
// jobs). Worker goroutine.
func (c *claimStore) next() {
	if h := c.testHookNext.Load(); h != nil { // tests only
		(*h)()
	}
	c.qmu.Lock()
	if len(c.q) == 0 {
		c.qmu.Unlock()
		return
	}
	j := c.q[0]
	c.q[0] = claimJob{}
	c.q = c.q[1:]
	if j.done != nil {
		c.claims--
	}
	more := len(c.q) > 0
	c.qmu.Unlock()
	if more {
		c.wake()
	}
	switch {
	case j.done != nil && c.pastShare(j.key):
		j.done(errClaimNodeShare)
	case j.done != nil:
		if err := c.claim(j.key); errors.Is(err, errUnheard) {
			c.park(j)
		} else {
			j.done(err)
		}
	case j.barrier != nil:
		j.barrier()
	default:
		c.release(j.key)
	}
}

// abandon answers the claims still waiting when the worker stops.
func (c *claimStore) abandon() {
	c.qmu.Lock()
	q := c.q
	for _, p := range c.parked {
		q = append(q, p.j)
	}
	c.q, c.claims, c.parked = nil, 0, nil
	c.qmu.Unlock()
	for _, j := range q {
		switch {
		case j.done != nil:
			j.done(ErrClosed)
		case j.barrier != nil:
			j.barrier()
		}
	}
}

func (c *claimStore) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *claimStore) submit(j claimJob) bool {
	c.mu.Lock() // held while queueing: close, then abandon, come after
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.qmu.Lock()
	if j.done != nil && c.claims >= maxClaimJobs || j.barrier != nil && len(c.q) >= c.maxQ {
		c.qmu.Unlock()
		return false
	}
	c.q = append(c.q, j)
	if j.done != nil {
		c.claims++
	}
	c.qmu.Unlock()
	c.wake()
	return true
}

// close stops the worker: claims waiting are answered ErrClosed, and the
// claims this node holds are given back (flush) until flushBy; pass a
// zero time to give none back. Call it while the NATS connection is open.
func (c *claimStore) close(flushBy time.Time) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.flushBy = flushBy
	c.mu.Unlock()
	close(c.stop)
	<-c.done
}

// flush gives back, when the node shuts down cleanly, every claim it
// holds, before it leaves: the releases its sessions' unregistrations
// queued (dropped with the queue before), and those of registrations
// still standing (the node leaves: they go with it). Another node can
// then register the procedures at once, whether or not it has seen this
// one leave, and the store keeps no claim of a node that is gone. Until
// flushBy; a claim left is taken over later like a dead node's. Worker
// goroutine, after stop.
func (c *claimStore) flush() {
	if c.kv == nil || c.flushBy.IsZero() {
		return
	}
	type held struct {
		key string
		rev uint64
	}
	var todo []held
	for key, rec := range c.held {
		delete(c.held, key)
		if rec.rev != 0 { // provisional: not in the store
			todo = append(todo, held{key, rec.rev})
		}
	}
	for key, rev := range c.releasing {
		delete(c.releasing, key)
		todo = append(todo, held{key, rev})
	}
	// Each release is a round trip to the store's leader (a replicated
	// write): one after the other, a loaded machine gave back 38 of 50
	// within releaseFlush. releaseWorkers at a time.
	var done, left atomic.Int64
	jobs := make(chan held)
	var wg sync.WaitGroup
	for range min(releaseWorkers, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := range jobs {
				if !time.Now().Before(c.flushBy) {
					left.Add(1)
					continue
				}
				c.giveBack(h.key, h.rev, c.flushBy)
				done.Add(1)
			}
		}()
	}
	for _, h := range todo {
		jobs <- h
	}
	close(jobs)
	wg.Wait()
	switch {
	case left.Load() > 0:
		c.n.log.Warn("mesh: shutting down, not every claim was given back in time; the others take them over once they see this node gone",
			"released", done.Load(), "left", left.Load())
	case done.Load() > 0:
		c.n.log.Debug("mesh: shutting down, claims given back", "released", done.Load())
	}
}

// peerLost is called when a node is taken for dead; its claims are taken
// over when someone claims them (nothing to do eagerly).
func (c *claimStore) peerLost(string) {}

// Claims taken over behind this node's back. A node that took this one
// for dead (a partition, a stall longer than PeerTimeout) takes its
// claims over when its own sessions register the procedures, while this
// node's callees still stand. Once the two hear each other again the
// directory settles the conflict, the registration made first winning:
// when this node's wins, the other revokes its callee and gives back
// the claim it had taken, and the store then held no claim at all for a
// registration that stands. Before, this node still took its claims for
// its own (it never looked again): any node's REGISTER of the procedure
// was granted by the store, and revoked by the directory a second later
// (a client without registration_revocation killed), for as long as this
// node's callee lived. The same when the store lost them: a lone hub's
// store is in memory, and a hub that restarts comes back with none. So,
// whenever a node joins (a new one, one heard again, one restarted), the
// worker checks every claim it holds against the store, and holds the ones
// the store no longer has as its own provisionally: reconcile claims them
// again (at once when the key is free, once the other node gives it back
// when it holds it, while the directory settles which registration stays).

// checkBatch and checkTurn bound the claims checked in one turn of the
// worker (one store round trip each: at least one, then until either
// bound), so that claims and releases queued meanwhile go on between
// batches, over an uplink of long round trips too.
const (
	checkBatch = 64
	checkTurn  = 20 * time.Millisecond
)

// recheckHeld asks the worker to check the claims this node holds against
// the store (checkHeld). Any goroutine; it does not block.
func (c *claimStore) recheckHeld() {
	c.recheck.Store(true)
	c.wake()
}

// checkHeld checks up to checkBatch of the claims this node holds against
// the store, after recheckHeld: a claim the store holds at another
// revision than the one this node wrote, or under another life's value
// (taken over, or gone), is held
// provisionally, and reconcile claims it again. It stops at a store that
// does not answer, to go on at the next reconcile. Worker goroutine.
//
// A join reads the store's state first (storeMark, one round trip): when
// it is as when the last complete pass began, no entry of the bucket was
// written or removed since, and every claim is still as that pass found
// it: none is read. A join during a pass does not begin it again (keys
// checked before the join are read again after it only if the store
// changed: again). Before, every join began a pass of every claim, one
// store round trip each (~840 reads a flap at 1,000 claims), and an edge
// flapping faster than a pass (over a 50 ms uplink) kept one from ever
// ending (TestClaimRecheckReadsOnlyAfterStoreChanged).
func (c *claimStore) checkHeld() {
	if c.recheck.Swap(false) {
		switch {
		case c.passing:
			c.again = true
		default:
			c.checking = c.checking[:0]
			for key, rec := range c.held {
				if rec.rev != 0 {
					c.checking = append(c.checking, key)
				}
			}
			if len(c.checking) > 0 {
				c.passMark = c.storeMark()
			}
			if len(c.checking) == 0 || c.passMark.same(c.checkedMark) {
				// Nothing to check (no round trip then), or nothing
				// changed since the last complete pass.
				c.checking = c.checking[:0]
				c.checksSettled.Add(1)
				return
			}
			c.passing = true
		}
	}
	if !c.passing || c.kv == nil || c.down {
		return
	}
	if len(c.checking) == 0 {
		c.endPass()
		return
	}
	lost, failed := 0, false
	mine := string(c.value())
	start := time.Now()
	for i := range min(checkBatch, len(c.checking)) {
		if c.stopping() || i > 0 && time.Since(start) >= checkTurn {
			break
		}
		key := c.checking[len(c.checking)-1]
		rec, ok := c.held[key]
		if !ok || rec.rev == 0 { // released or provisional meanwhile
			c.checking = c.checking[:len(c.checking)-1]
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
		m, err := c.leaderGet(ctx, key)
		cancel()
		c.checkReads.Add(1)
		switch {
		case err == nil && m.Sequence == rec.rev && string(m.Data) == mine:
			// This life's, at the revision it wrote. The revision alone
			// does not tell: a store node that restarts (a lone hub's
			// memory store) numbers its revisions from 1 again, and
			// another node's claim of the key in the new store may sit
			// at the revision this node's had in the old one.
		case err == nil, errors.Is(err, jetstream.ErrKeyNotFound):
			c.held[key] = claimRec{}
			lost++
		default:
			failed = true // the rest checked again at the next reconcile
		}
		if failed {
			break
		}
		c.checking = c.checking[:len(c.checking)-1]
	}
	if lost > 0 {
		c.n.stats.ClaimsReasserted.Add(uint64(lost))
		c.n.log.Warn("mesh: the claim store no longer holds claims of this node (taken over while another node took it for dead, or lost by a store node that restarted); claiming them again", "claims", lost)
		c.reconciling = false // a new round, with the claims found lost
		c.reconcile()
	}
	switch {
	case len(c.checking) == 0:
		c.endPass()
	case !failed:
		c.wake()
	}
}

// leaderGet reads the last entry of key (a claim, or a release's marker,
// whose empty value is no life's) through the bucket stream's leader: a
// STREAM.MSG.GET request, which only the leader answers, as it answers
// the stream's state (storeMark). kv.Get makes a direct get (the bucket,
// made by JetStream's KV, allows them), which a replica picked at random
// answers (a queue group of them all): one that had not caught up
// (nats-server lets a follower answer at 90 % of its log applied, and
// keeps it answering when it falls behind; a node back from the minority
// side of a partition has its own among them) answered with a claim taken
// over meanwhile as this node's own, and checkHeld recorded the leader's newer state as checked: every
// later join skipped the check until some other write, and the store
// kept the other node's claim (TestClaimRecheckReadsClaimsThroughStreamLeader).
// One round trip, as kv.Get. Any goroutine once the bucket is bound
// (giveBack's flush runs it on several).
//
// A NATS user that may not publish STREAM.MSG.GET (nats_url, permissions
// granted before this read: the request goes unanswered until ctx ends,
// the refusal only an asynchronous error, which sets noMsgGet) reads by
// direct get, as before, for noConsumersFor: the check of the claims
// stopped at its first at every reconcile and never ended
// (TestClaimCheckWithoutStreamMsgGetPermission). The read refused fails
// (ctx has run out; the caller's deadline holds): the check goes on at
// the next reconcile, a release is tried again, both by direct get.
func (c *claimStore) leaderGet(ctx context.Context, key string) (*nats.RawStreamMsg, error) {
	if int64(time.Since(processStart)) >= c.n.noMsgGet.Load() {
		m, err := c.leader.GetLastMsg("KV_"+claimBucket, "$KV."+claimBucket+"."+key, nats.Context(ctx))
		if errors.Is(err, nats.ErrMsgNotFound) {
			return nil, jetstream.ErrKeyNotFound
		}
		return m, err
	}
	e, err := c.kv.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	return &nats.RawStreamMsg{Subject: "$KV." + claimBucket + "." + key, Sequence: e.Revision(), Data: e.Value()}, nil
}

// endPass ends a pass of checkHeld that checked every claim: the store's
// state when it began is the one the next join compares (checkedMark); a
// join during it has the worker check again. Worker goroutine.
func (c *claimStore) endPass() {
	c.passing, c.checking = false, nil
	c.checkedMark, c.passMark = c.passMark, storeMark{}
	c.checksSettled.Add(1)
	if c.again {
		c.again = false
		c.recheckHeld()
	}
}

// storeMark is the state of the claim bucket's stream: any entry written
// (a claim, a release's marker, a take-over) raises last, any removed (a
// purge, a sweep) lowers msgs or raises first, and a store that lost its
// claims (a lone hub's memory store, restarted) is a stream made anew.
type storeMark struct {
	created           time.Time
	first, last, msgs uint64
	ok                bool
}

// same reports whether m and o are one state of the stream, both read.
func (m storeMark) same(o storeMark) bool {
	return m.ok && o.ok && m.created.Equal(o.created) && m.first == o.first && m.last == o.last && m.msgs == o.msgs
}

// storeMark reads the state of the bucket's stream, one round trip; not
// ok when the stream is not bound or did not answer. Worker goroutine.
func (c *claimStore) storeMark() storeMark {
	if c.stream == nil || c.kv == nil || c.down {
		return storeMark{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
	info, err := c.stream.Info(ctx)
	cancel()
	c.checkReads.Add(1)
	if err != nil {
		return storeMark{}
	}
	return storeMark{created: info.Created, first: info.State.FirstSeq, last: info.State.LastSeq, msgs: info.State.Msgs, ok: true}
}

// Claims of lives seen to end. A node that dies (SIGKILL, power loss, a
// box unplugged) gives nothing back: its claims stayed in the store until
// another node registered the same procedures, for ever for procedures
// nobody registers again (URIs named after a device, a session, a boot),
// in the memory of the store's nodes. Every claimSweepEvery a node that
// keeps the store (one without leaf remotes) reads the bucket once and
// purges the claims of lives it saw end (claimStore.life), of its own
// earlier lives, and of values that name no possible life: what the next
// REGISTER of such a procedure would take over anyway. A claim of a life
// it has not heard (it may be a live node's, cut off) is left alone.

// claimSweepEvery is how often a store node sweeps the claims of dead
// lives.
const claimSweepEvery = 5 * time.Minute

// sweep purges the claims of lives seen to end (see above), on its own
// goroutine (the bucket is read through one ordered consumer, one purge
// per claim of a dead life: not on the worker, whose jobs go on). Each
// purge removes the entry of the revision read and none newer: a claim
// taken over meanwhile stays.
func (c *claimStore) sweep(kv jetstream.KeyValue, st jetstream.Stream) {
	defer c.sweeps.Done()
	defer c.sweeping.Store(false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return
	}
	defer stopWatch(w)
	me, myBoot := c.n.opts.Name, strconv.FormatUint(c.n.boot, 10)
	purged := 0
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return
		case e = <-w.Updates():
		case <-time.After(claimTimeout):
			return // the store stopped answering: the next sweep
		}
		if e == nil {
			break // every entry read
		}
		owner, boot, _ := strings.Cut(string(e.Value()), "\n")
		switch {
		case !possibleLife(owner, boot):
		case owner == me:
			if boot == myBoot || c.n.twinAlive(boot) {
				continue
			}
		case c.life(owner, boot) != lifeDead:
			continue
		}
		pctx, pcancel := context.WithTimeout(ctx, claimTimeout)
		err := st.Purge(pctx, jetstream.WithPurgeSubject("$KV."+claimBucket+"."+e.Key()), jetstream.WithPurgeSequence(e.Revision()+1))
		pcancel()
		if err != nil {
			return
		}
		purged++
	}
	if purged > 0 {
		c.n.stats.ClaimsSwept.Add(uint64(purged))
		c.n.log.Info("mesh: purged the claims of nodes seen dead", "claims", purged)
	}
}

// stopWatch stops a watcher and takes what it still delivers until it
// closes its channel (at most one entry more, once stopped), within
// watchDrain. nats.go's handler blocks until each entry is taken: a
// sweep cut short (the node shutting down, a purge the store did not
// answer) stopped its watcher with entries coming, and the handler's
// goroutine stayed blocked on the full channel for ever, with the
// entries it held, one leaked per sweep cut short.
func stopWatch(w jetstream.KeyWatcher) {
	w.Stop()
	t := time.NewTimer(watchDrain)
	defer t.Stop()
	for {
		select {
		case _, ok := <-w.Updates():
			if !ok {
				return
			}
		case <-t.C:
			return
		}
	}
}

// watchDrain bounds stopWatch's wait for the watcher's channel to close.
const watchDrain = 5 * time.Second

func claimKey(realm string, match proto.Match, uri string) string {
	h := sha256.Sum256([]byte(realm + "\x00" + match.String() + "\x00" + uri))
	return "c." + hex.EncodeToString(h[:16])
}

func (c *claimStore) value() []byte {
	return []byte(c.n.opts.Name + "\n" + strconv.FormatUint(c.n.boot, 10))
}

// bucket binds (or creates) the claim bucket. Worker goroutine.
func (c *claimStore) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	if c.kv != nil {
		if c.stream == nil && c.js != nil && time.Since(c.streamTried) >= time.Second {
			c.bindStream(ctx)
		}
		return c.kv, nil
	}
	// The domain-qualified API: JetStream API traffic does not cross a
	// leaf-node link otherwise. With nats_url, the deployment's own
	// JetStream, as its operator set it up.
	js, err := jetstream.NewWithDomain(c.n.nc, jsDomain)
	if c.n.opts.NatsURL != "" {
		js, err = jetstream.New(c.n.nc)
	}
	if err != nil {
		return nil, err
	}
	// The jetstream package makes every read of a stream that allows
	// direct gets one (leaderGet); the older API asks the leader unless
	// told otherwise. No round trip.
	leader, err := c.n.nc.JetStream(nats.Domain(jsDomain))
	if c.n.opts.NatsURL != "" {
		leader, err = c.n.nc.JetStream()
	}
	if err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, claimBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		// A node that lists cluster routes knows the cluster's size
		// (c.replicas); another (an edge that dials a hub, which may be a
		// cluster; a cluster node that only accepts routes; nats_url) asks
		// for three and settles for one when JetStream cannot place
		// three, as edge.KV's buckets do. Before, it asked for one: an
		// edge that made the bucket before its hub cluster did (a mesh
		// started at once) left every claim on one hub node.
		replicas := []int{3, 1}
		if c.n.opts.Cluster.Listen != "" && len(c.n.opts.Cluster.Routes) > 0 {
			replicas = []int{c.replicas}
		}
		for _, r := range replicas {
			kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: claimBucket, Storage: jetstream.MemoryStorage, History: 1, Replicas: r, MaxBytes: c.maxBytes()})
			var ae *jetstream.APIError
			if err == nil || !errors.As(err, &ae) || (ae.ErrorCode != codeNoPeers && ae.ErrorCode != codeInsufficient && ae.ErrorCode != codeReplicasNotCluster) {
				break
			}
		}
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, claimBucket)
		}
	}
	if err != nil {
		return nil, err
	}
	c.kv = kv
	c.js = js
	c.leader = leader
	c.bindStream(ctx)
	c.bound.Store(true)
	return kv, nil
}

// bindStream looks the bucket's stream up. Before, a lookup that timed out
// (a busy JetStream just after the bucket was bound) was not tried again:
// the stream stayed nil for the node's life, its releases left a delete
// marker each instead of a purge, and the sweep of dead nodes' claims never
// ran. Now bucket asks again, at most once a second, until it is answered.
func (c *claimStore) bindStream(ctx context.Context) {
	st, err := c.js.Stream(ctx, "KV_"+claimBucket)
	if c.n.opts.testStreamFails > 0 {
		c.n.opts.testStreamFails--
		err = context.DeadlineExceeded
	}
	if err != nil {
		c.streamTried = time.Now()
		return
	}
	c.stream = st
	c.boundBytes(ctx, st)
}

// boundBytes sets the bucket's byte bound (maxBytes) on a stream made
// without it, or with another: JetStream keeps a bucket's configuration,
// and a bucket made by a release before the bound (8809c6a) had none, so
// that the claims could still fill the memory JetStream shares with the
// OAuth2 bucket. Lowering it deletes nothing (a KV bucket discards new
// writes): a store already above it refuses claims until releases bring
// it under (logged). One update at the node's first bind, none when the
// bound is right; a refusal (a nats_url user without the permission) is
// logged and left. Worker goroutine.
func (c *claimStore) boundBytes(ctx context.Context, st jetstream.Stream) {
	info := st.CachedInfo()
	want := c.maxBytes()
	if info == nil || info.Config.MaxBytes == want {
		return
	}
	cfg := info.Config
	was := cfg.MaxBytes
	cfg.MaxBytes = want
	if _, err := c.js.UpdateStream(ctx, cfg); err != nil {
		c.n.log.Warn("mesh: the claim store's bucket has another byte bound than this release's, and could not be given it", "max_bytes", was, "want", want, "err", err)
		return
	}
	c.n.log.Info("mesh: the claim store's bucket was given this release's byte bound", "max_bytes", want, "was", was)
	if used := int64(info.State.Bytes); used > want {
		c.n.log.Warn("mesh: the claim store holds more than its bound; single registrations are refused until enough are unregistered", "bytes", used, "max_bytes", want)
	}
}

// Reasons a claim is refused before the store is asked, or by a store
// without room (the REGISTER gets wamp.error.unavailable with the text).
var (
	errClaimsFull     = errors.New("edge: too many claims wait for the claim store; try again")
	errClaimsClosed   = errors.New("edge: the mesh node is shutting down")
	errClaimStoreFull = errors.New("edge: the mesh's claim store is full (too many single registrations in the mesh); try again once some are unregistered")
	errClaimNodeShare = errors.New("edge: this mesh node holds its share of the claim store (too many single registrations on this node); try again once some are unregistered")
)

// nodeShare is how many claims this node may hold: 1/claimNodeShare of
// the bucket's.
func (c *claimStore) nodeShare() int { return c.n.nodeClaimShare() }

// nodeClaimShare is claimStore.nodeShare, without the store (route asks
// for SessionClaims before the store is made).
func (n *Node) nodeClaimShare() int {
	if n.opts.testNoClaimShares {
		return int(^uint(0) >> 1)
	}
	return max(1, int(n.claimBytes()/claimCost/claimNodeShare))
}

// pastShare reports whether a claim of key would take this node past its
// share of the store (nodeShare), counting and logging the refusal (at
// most once a minute). A key it holds already is not refused. Claims
// waiting for an unheard life (parked) are not counted: at most
// maxClaimJobs. Worker goroutine.
func (c *claimStore) pastShare(key string) bool {
	if _, ok := c.held[key]; ok || len(c.held) < c.nodeShare() {
		return false
	}
	c.n.stats.ClaimsNodeShare.Add(1)
	if now := time.Now(); now.Sub(c.overShareLogged) >= time.Minute {
		c.overShareLogged = now
		c.n.log.Warn("mesh: this node holds its share of the claim store; its single registrations are refused (wamp.error.unavailable) until some are unregistered", "claims", len(c.held), "share", c.nodeShare())
	}
	return true
}

// SessionClaims implements route.MeshClaimShare: one session's share of
// the node's (nodeShare/claimSessionShare).
func (n *Node) SessionClaims() int {
	if n.opts.testNoClaimShares {
		return 0
	}
	return max(1, n.nodeClaimShare()/claimSessionShare)
}

// ClaimShareRefused implements route.MeshClaimShare.
func (n *Node) ClaimShareRefused() { n.stats.ClaimsSessionShare.Add(1) }

// maxBytes is the claim bucket's bound: claimBucketBytes, or the test's.
func (c *claimStore) maxBytes() int64 { return c.n.claimBytes() }

// claimBytes is claimStore.maxBytes.
func (n *Node) claimBytes() int64 {
	if n.opts.testClaimBytes > 0 {
		return n.opts.testClaimBytes
	}
	return claimBucketBytes
}

// storeFull reports whether err is the store refusing a write for want
// of room: the bucket at its MaxBytes ("maximum bytes exceeded") or
// JetStream's own resources exhausted. It answered: retrying for
// claimWait, then taking it for down and accepting every claim
// provisionally, held the worker 3 s and gave up exclusivity while the
// store itself was fine.
func storeFull(err error) bool {
	var ae *jetstream.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode {
	case 10002, codeInsufficient, 10028, 10047: // account limits, insufficient (memory, storage) resources
		return true
	}
	return strings.Contains(ae.Description, "maximum bytes exceeded")
}

// Claim implements route.Mesh.
func (n *Node) Claim(realm string, match proto.Match, uri string, done func(error)) {
	if !n.claims.submit(claimJob{key: claimKey(realm, match, uri), done: done}) {
		if n.claims.isClosed() {
			done(errClaimsClosed)
		} else {
			done(errClaimsFull)
		}
	}
}

// Release implements route.Mesh. The worker takes every release (its
// queue refuses none) until the node shuts down, when flush gives back
// every claim it holds.
func (n *Node) Release(realm string, match proto.Match, uri string) {
	n.claims.submit(claimJob{key: claimKey(realm, match, uri)})
}

// Released implements route.Mesh: done runs once the releases queued
// before it have been given to the store (taken, or kept for reconcile
// when the store did not answer), at once when the worker cannot queue
// it (closed, or far behind).
func (n *Node) Released(done func()) {
	if !n.claims.submit(claimJob{barrier: done}) {
		done()
	}
}

func (c *claimStore) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// claim takes key for this node; errUnheard when a life not heard yet
// holds it (for less than PeerTimeout since first found: the caller parks
// the claim); route.ErrMeshProvisional when the store did not answer and
// the claim is held provisionally. Worker goroutine.
func (c *claimStore) claim(key string) error {
	if c.down {
		c.n.stats.ClaimsProvisional.Add(1)
		c.held[key] = claimRec{unwritten: true}
		return route.ErrMeshProvisional
	}
	deadline := time.Now().Add(claimWait)
	err := c.take(key)
	// errUnheard (a life of a node not heard yet holds it, which take
	// takes for dead once it has stayed unheard for PeerTimeout) goes
	// back to the caller, which parks the claim.
	for err != nil && !errors.Is(err, route.ErrMeshClaimed) && !errors.Is(err, errUnheard) && !storeFull(err) && time.Now().Before(deadline) {
		select {
		case <-c.stop:
			return ErrClosed
		case <-time.After(100 * time.Millisecond):
		}
		err = c.take(key)
	}
	switch {
	case err == nil, errors.Is(err, errUnheard):
		if err == nil {
			c.full = false
		}
		return err
	case errors.Is(err, route.ErrMeshClaimed):
		c.n.stats.ClaimsRefused.Add(1)
		return err
	case storeFull(err):
		c.n.stats.ClaimsStoreFull.Add(1)
		if !c.full {
			c.full = true
			c.n.log.Warn("mesh: the claim store is full; single registrations are refused (wamp.error.unavailable) until some are unregistered", "err", err)
		}
		return errClaimStoreFull
	}
	c.full = false
	// The store did not answer: accept provisionally.
	c.n.stats.ClaimsProvisional.Add(1)
	c.n.log.Info("mesh: claim store unreachable; registration accepted provisionally", "err", err)
	c.held[key] = claimRec{}
	c.down = true
	return route.ErrMeshProvisional
}

// errUnheard is take's answer for a claim held by a life of a node that
// this node has not heard (life).
var errUnheard = errors.New("edge: the claim's holder is a node life not heard yet")

// take claims key in the store: nil when this node holds it,
// route.ErrMeshClaimed when a live node does, errUnheard when a life of a
// node this node has not heard does (for less than PeerTimeout since
// this node first found it holding a claim: then it is taken for dead),
// another error when the store did not answer.
func (c *claimStore) take(key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
	defer cancel()
	kv, err := c.bucket(ctx)
	if err != nil {
		return err
	}
	rev, err := kv.Create(ctx, key, c.value())
	err = c.hooked("create", err)
	if err == nil {
		c.held[key] = claimRec{rev: rev}
		delete(c.releasing, key)
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return err
	}
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		rev, err = kv.Create(ctx, key, c.value())
		if err == nil {
			c.held[key] = claimRec{rev: rev}
		}
		return err
	}
	if err != nil {
		return err
	}
	owner, boot, _ := strings.Cut(string(e.Value()), "\n")
	if !possibleLife(owner, boot) {
		// No node's: anything that reaches the store can write any bytes
		// (up to NATS's 1 MB), which were kept as a life not heard and
		// waited for. Taken over as a dead node's.
		owner, boot = "", ""
	} else if owner != c.n.opts.Name {
		switch c.life(owner, boot) {
		case lifeAlive:
			// A peer whose route has just closed (killed, most
			// likely) is waited for as a life not heard: refused if
			// still heard after PeerTimeout (routes.go).
			if c.cutOff(owner, boot) {
				return errUnheard
			}
			return route.ErrMeshClaimed
		case lifeUnheard:
			if c.wait("", owner, boot, c.n.opts.PeerTimeout) {
				return errUnheard
			}
		}
	}
	// Under this node's name but another boot: another node that uses
	// this node's name while it is heard (peers.go, twins), whose claim
	// stays its own (both held the registration before); else this
	// node's earlier life (a restart). One not heard yet is asked
	// (twinRuns): a node started under a live node's name took its claims
	// over until that node's first heartbeat came, and both answered.
	if owner == c.n.opts.Name && boot != strconv.FormatUint(c.n.boot, 10) {
		if c.n.twinAlive(boot) || c.twinRuns(boot) {
			return route.ErrMeshClaimed
		}
	}
	// Ours from an earlier boot or still to be given back, or a dead
	// node's: take it over.
	rev, err = kv.Update(ctx, key, c.value(), e.Revision())
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return route.ErrMeshClaimed // someone else was faster
		}
		return err
	}
	c.held[key] = claimRec{rev: rev}
	delete(c.releasing, key)
	return nil
}

// twinProbeWait bounds twinRuns' wait for a live node's answer. A node
// under this node's name answers within milliseconds (measured: under
// 0.2 ms on loopback, over a leaf link and with nats_url); 500 ms leaves
// room for a slow uplink's round trips, and is the default heartbeat, so
// that a live node of an earlier release (which does not answer) is
// often heard meanwhile. Paid once per earlier life, and only when
// something other than a node listens to the name's subjects (a tap on
// ew.>, a stream capturing them): with nothing, NATS answers "no
// responders" at once.
const twinProbeWait = 500 * time.Millisecond

// maxGoneBoots bounds twinGone, the boots twinRuns found not running.
const maxGoneBoots = 16

// twinRuns reports whether a node under this node's name runs as boot
// (decimal, as a claim holds it). It asks on that name's subjects
// (Node.direct, "l"), which only that life answers, with its boot: this
// node's own subscription to them takes none of its own messages
// (NoEcho), so with no other node under the name NATS answers "no
// responders" at once, and a restart of a crashed node is not delayed.
// Any other answer (a JetStream stream's PubAck for a stream that
// captures the mesh's subjects) is not that life's, and the wait goes on
// for one; silence for twinProbeWait (a passive tap on ew.>, a node of
// an earlier release that does not answer, a dead life whose link is not
// cut yet) is no twin, unless its heartbeat came meanwhile. Before, the
// question was a request, which took a PubAck, as silence, for a life
// that might run and waited peer_timeout for it: a restart with a tap on
// the mesh held its claims 1 s and peer_timeout late. A boot found not
// running is remembered (twinGone): each of its claims is not asked
// again. The store has just answered, so this node's link to the mesh is
// up. Worker goroutine.
func (c *claimStore) twinRuns(boot string) bool {
	b, err := strconv.ParseUint(boot, 10, 64)
	if err != nil {
		return false // no boot: a node of a release before boots
	}
	if _, gone := c.twinGone[b]; gone {
		return false
	}
	runs := c.askTwin(b)
	if !runs && c.n.twinAlive(boot) {
		runs = true // its heartbeat came during the wait
	}
	if !runs {
		if c.twinGone == nil || len(c.twinGone) >= maxGoneBoots {
			c.twinGone = make(map[uint64]struct{})
		}
		c.twinGone[b] = struct{}{}
		return false
	}
	if now := time.Now(); now.Sub(c.twinLogged) >= twinLogEvery {
		c.twinLogged = now
		c.n.log.Error("mesh: another node uses this node's name; node names must be unique (set mesh.node): a single registration it holds is refused here",
			"node", c.n.opts.Name, "boot", c.n.boot, "other_boot", b)
	}
	return true
}

// askTwin sends twinRuns' question for boot on an inbox of its own and
// reports whether an answer of that life came within twinProbeWait.
func (c *claimStore) askTwin(b uint64) bool {
	inbox := c.n.nc.NewInbox()
	sub, err := c.n.nc.SubscribeSync(inbox)
	if err != nil {
		return false // the connection is closing
	}
	defer sub.Unsubscribe()
	m := &nats.Msg{Subject: nodeSubject(c.n.opts.Name, "l"), Reply: inbox, Data: bootBytes(b)}
	if c.n.nc.PublishMsg(m) != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), twinProbeWait)
	defer cancel()
	for {
		a, err := sub.NextMsgWithContext(ctx)
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			return false // nobody else under the name
		case err != nil:
			return false // silence
		case len(a.Data) == 8 && binary.LittleEndian.Uint64(a.Data) == b:
			return true
		}
		// Not that life's answer (a stream's PubAck): wait on.
	}
}

// wait reports whether a claim held by life (name, boot), not heard yet
// or cut off (its times kept under prefix), is still to be waited for:
// for limit from when this
// node first found that life holding a claim. Waited for once per life,
// not per claim: a node that died unheard holding many claims delays one
// claim by PeerTimeout, not each. Worker goroutine.
func (c *claimStore) wait(prefix, name, boot string, limit time.Duration) bool {
	if c.noWait {
		return false
	}
	c.creditStalls()
	life := prefix + name + "\n" + boot
	since, ok := c.unheard[life]
	// A lost route's wait is per episode (cutOff ends one when it finds
	// the route again): one whose wait ended PeerTimeout ago, its peer
	// still heard, is over too, though no claim saw the route come back
	// (a peer without its route is taken for dead within PeerTimeout).
	if !ok || prefix != "" && time.Since(since) >= limit+c.n.opts.PeerTimeout {
		if len(c.unheard) >= maxUnheard {
			clear(c.unheard)
			clear(c.lostLives)
		}
		since = time.Now()
		c.unheard[life] = since
		if prefix == routeLostKey {
			c.lostLives[life] = [2]string{name, boot}
			c.retry.Reset(unheardRetry) // pruneLost
		}
	}
	if time.Since(since) < limit || c.n.since(c.n.tickAt.Load()) > 2*c.n.opts.Heartbeat || c.n.sparing.Load() {
		// Also while the control dispatcher is over a heartbeat
		// behind its ticks: this process has just run again after a
		// stall, which it has not credited yet (creditStalls); and
		// while a peer not credited a second stall is spared
		// (Node.creditStall): a wait credited one stall, as it is,
		// ended before it was judged.
		c.lastUnheard = [2]string{name, boot}
		return true
	}
	return false
}

// creditStalls moves the times the waits for lives began (unheard),
// and those the parked claims' bound (maxParked) counts from, later by the stalls of this process the control dispatcher credited
// to its peers since the last call (Node.stallCredit), up to now: a
// wait for a node to be taken for dead then ends no earlier than the
// peer table's judgement of it. Before, a REGISTER whose claim waited
// for a killed peer (2 x PeerTimeout from its route's loss) was refused
// procedure_already_exists on waking from a stall that ended past the
// wait, the peer, its silence credited, still held alive. A wait is
// credited once, as a peer is credited one stall a silence
// (Node.creditStall): one begun before the last credit (creditedAt) had
// it, so that a control dispatcher late at every tick (a busy or starved
// host) does not stretch it (before, a REGISTER of a claim of a life
// never heard, peer_timeout 1 s, waited 5.1 s beside a dispatcher 500 ms
// late at each 100 ms heartbeat). Worker goroutine.
func (c *claimStore) creditStalls() {
	d := time.Duration(c.n.stallCredit.Load() - c.credited)
	if d <= 0 {
		return
	}
	c.credited += int64(d)
	now, before := time.Now(), c.creditedAt
	c.creditedAt = now
	later := func(t time.Time) time.Time {
		if !t.After(before) {
			return t // credited before
		}
		if t = t.Add(d); t.After(now) {
			return now
		}
		return t
	}
	for k, at := range c.unheard {
		c.unheard[k] = later(at)
	}
	for i := range c.parked {
		c.parked[i].since = later(c.parked[i].since)
	}
}

// cutOff reports whether a claim held by life (name, boot), heard alive,
// is still to be waited for because that peer may have just died
// (routes.go): its direct route has closed (waited for as a life not
// heard, wait), or it is still open but was first found so less than
// routeCloseGrace ago, the time this node's server may take to see a
// killed peer's route close (a client that reconnects at once, as
// Autobahn's Component does to a transport it has not tried, sends its
// REGISTER within milliseconds of the kill). A refusal of a live routed
// peer's claim so comes up to routeCloseGrace later, once a
// PeerTimeout. Worker goroutine.
func (c *claimStore) cutOff(name, boot string) bool {
	if !c.n.wasRouted(name) {
		return false
	}
	if c.noWait {
		return false
	}
	if c.n.routeLost(name) {
		if c.reachedOtherwise(name, boot) {
			// Not by that link: a live node's claim, refused.
			delete(c.unheard, routeLostKey+name+"\n"+boot)
			delete(c.lostLives, routeLostKey+name+"\n"+boot)
			return false
		}
		// Twice PeerTimeout: the peer was last heard up to a heartbeat
		// before its route closed, and is taken for dead on the next
		// check after PeerTimeout of silence; a wait of PeerTimeout from
		// here could end just before and refuse the claim.
		// Under its own key: a life first found unheard long ago
		// (this node started before hearing it) would otherwise have
		// no wait left.
		// Per episode of a lost route, not per life: a route that
		// closed and formed again earlier (a flap) used to leave a
		// later kill without the wait, the REGISTER racing it refused.
		return c.wait(routeLostKey, name, boot, 2*c.n.opts.PeerTimeout)
	}
	// The route is there: an episode of its loss is over.
	delete(c.unheard, routeLostKey+name+"\n"+boot)
	delete(c.lostLives, routeLostKey+name+"\n"+boot)
	life := name + "\n" + boot
	since, ok := c.routedFound[life]
	if !ok || time.Since(since) > c.n.opts.PeerTimeout {
		if len(c.routedFound) >= maxUnheard {
			clear(c.routedFound)
		}
		since = time.Now()
		c.routedFound[life] = since
	}
	if time.Since(since) < routeCloseGrace {
		c.lastUnheard = [2]string{name, boot}
		return true
	}
	return false
}

// routeCloseGrace is how long a claim of a routed peer is waited for
// while its route is still open (cutOff).
const routeCloseGrace = 300 * time.Millisecond

// routeLostKey prefixes the lives in claimStore.unheard whose route was
// found lost (cutOff): the start of that episode's wait.
const routeLostKey = "route-lost\n"

// parkedReread is how often a parked claim asks the store again while
// it waits (retryParked), and maxRereads how many parked claims ask in
// one round (unheardRetry): a failover of 1,024 single procedures asks
// 640 a second, not 10,240 as before 57295b0.
const (
	parkedReread = 500 * time.Millisecond
	maxRereads   = 64
)

// maxParked is the longest a claim stays parked (retryParked): the
// longest wait take makes (a lost route's, 2 x PeerTimeout) and a
// PeerTimeout more.
func (c *claimStore) maxParked() time.Duration { return 3 * c.n.opts.PeerTimeout }

// possibleLife reports whether a claim's value names a life a node can
// have: a node name (Options.Name's form) and its boot, a number (or none,
// as nodes before boots wrote).
func possibleLife(name, boot string) bool {
	if !validName(name) {
		return false
	}
	if boot == "" {
		return true
	}
	_, err := strconv.ParseUint(boot, 10, 64)
	return err == nil
}

// The lives of a claim's holder (claimStore.life).
const (
	lifeDead = iota
	lifeAlive
	lifeUnheard
)

// life tells whether the node that wrote a claim (its name and boot, as
// claimStore.value wrote them) is alive: a node by that name is seen, in
// the same life (while its boot is not known yet, it counts as alive);
// dead: that life was seen to end (the node restarted, was silent for
// PeerTimeout, or left); unheard: a life of a node this node has not
// heard, which may be an older one (dead) or one that has just started
// and whose heartbeat has not reached this node yet (a node restarted
// within a heartbeat, a node that has just joined, or this node has just
// started). Before, an unheard life was taken for dead: a node took over
// the claim of a node that had just restarted or joined, and both held
// the single registration (claim's caller waits for it instead, at most
// PeerTimeout, when a live node is heard).
//
// A node heard speaking another mesh version (peers.go) is alive too,
// though not a peer: a single registration stays exclusive while a mesh
// is upgraded one node at a time.
func (c *claimStore) life(name, boot string) int {
	v := c.n.peers.view.Load()
	b, ok := v.boots[name]
	if !ok {
		if bv := c.n.peers.badView.Load(); bv != nil {
			if b, ok = bv.boots[name]; ok && (b == 0 || boot == "" || strconv.FormatUint(b, 10) == boot) {
				return lifeAlive
			}
		}
	} else if b == 0 || boot == "" || strconv.FormatUint(b, 10) == boot {
		return lifeAlive
	}
	if boot == "" {
		return lifeDead
	}
	for _, d := range (*c.n.peers.deadView.Load())[name] {
		if strconv.FormatUint(d, 10) == boot {
			return lifeDead
		}
	}
	return lifeUnheard
}

// release gives key back. Worker goroutine.
func (c *claimStore) release(key string) { c.releaseBy(key, time.Time{}) }

// releaseBy is release, each store operation bounded by claimTimeout and
// by deadline (unless zero). Worker goroutine.
func (c *claimStore) releaseBy(key string, deadline time.Time) {
	rec, ok := c.held[key]
	if !ok {
		return
	}
	delete(c.held, key)
	if c.kv == nil || rec.unwritten {
		// Nothing of it in the store: a claim accepted while the store was
		// taken for down was never written. Before, its release was kept
		// for reconcile like any other: the sessions of an edge node that
		// left during an outage of its uplink filled the releases kept
		// (maxReleaseJobs) with nothing to give back, the releases of
		// claims written before the outage past them were dropped, and
		// those claims refused their procedures mesh-wide for as long as
		// the node lived; and each kept release cost a store round trip
		// after the outage.
		return
	}
	// A provisional claim (rev 0) is given back too, by its value: the
	// store may have taken the write whose answer did not come in time (a
	// slow store, a leader election), and keep it under this node's
	// name. Before, nothing was given back: the store kept the claim of a
	// live node whose registration was gone, and the procedure was
	// refused mesh-wide (procedure_already_exists) until this node left.
	// While the store is down, each try would hold the worker (and the
	// claims queued behind it) for claimTimeout: kept for reconcile.
	rev := rec.rev
	if rev != 0 && (c.recheck.Load() || len(c.checking) > 0) {
		// Not checked since a node joined (checkHeld): a store node that
		// restarted numbers its entries from 1 again, and giving back by
		// revision purges the key's entries up to it, another node's
		// claim in the new store too. By the store's value until then.
		rev = 0
	}
	if c.down || !c.giveBack(key, rev, deadline) {
		c.keepRelease(key, rev)
		c.down = true
	}
}

// keepRelease keeps a release the store did not take, for reconcile.
// Worker goroutine.
func (c *claimStore) keepRelease(key string, rev uint64) {
	if _, ok := c.releasing[key]; !ok && len(c.releasing) >= c.maxQ {
		c.n.stats.ReleasesDropped.Add(1)
		c.n.log.Warn("mesh: a claim release was dropped (too many wait for the claim store to answer); the procedure may stay refused elsewhere until this node leaves", "key", key)
		return
	}
	c.releasing[key] = rev
}

// giveBack takes the claim key, which this node wrote at revision rev,
// out of the store, by deadline at the latest (and within claimTimeout).
// It reports false when the store did not take it back (did not answer,
// or refused): the claim may still be there. It touches no state of the
// worker's: flush runs it on several goroutines.
func (c *claimStore) giveBack(key string, rev uint64, deadline time.Time) bool {
	if d := time.Now().Add(claimTimeout); deadline.IsZero() || d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if rev == 0 {
		// A provisional claim: this node's life's entry, if the store
		// has one; another node's, or none, is not this node's to give.
		// Read through the stream's leader (leaderGet): a direct get,
		// which a replica that had not caught up may answer, found none
		// of a write the store had taken but answered late (the very
		// case), and left the claim of this live node in the store
		// (TestProvisionalClaimReleaseReadsThroughStreamLeader).
		m, err := c.leaderGet(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			return true
		case err != nil:
			return false
		case string(m.Data) != string(c.value()):
			return true
		}
		rev = m.Sequence
	}
	if c.stream != nil {
		// Purged up to and including the revision this node wrote: gone
		// without a trace, where a Delete would leave a marker per URI
		// for ever (a client registering and unregistering under new URIs
		// would fill the store). A newer claim of another node is kept.
		err := c.stream.Purge(ctx, jetstream.WithPurgeSubject("$KV."+claimBucket+"."+key), jetstream.WithPurgeSequence(rev+1))
		if err = c.hooked("release", err); err == nil {
			return true
		}
		// Not allowed to purge (a nats_url deployment's permissions), or
		// the store did not answer: a Delete at least frees the key.
		c.n.log.Debug("mesh: purging a released claim", "err", err)
	}
	// Gone, or another node's newer claim (ErrKeyExists: not ours to
	// delete) count as given back.
	err := c.hooked("release", c.kv.Delete(ctx, key, jetstream.LastRevision(rev)))
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyExists) {
		c.n.log.Debug("mesh: releasing a claim", "err", err)
		return false
	}
	return true
}

// reconcileEvery is how often the worker reconciles (reconcileEvery,
// Options.testReconcile in tests).
func (n *Node) reconcileEvery() time.Duration {
	if n.opts.testReconcile > 0 {
		return n.opts.testReconcile
	}
	return reconcileEvery
}

// WonHold implements route.MeshWonHold: after this node lost a conflict
// of single registrations (and gave back the claim it had taken while it
// took the winner for dead), the winner claims the procedure again at
// its next reconcile, each try bounded by claimTimeout: two reconcile
// periods and a try (5 s by default).
func (n *Node) WonHold() time.Duration {
	return 2*n.reconcileEvery() + claimTimeout
}

// PeerTimeout implements route.MeshPeerWindow: the router sends the
// interrupt of a call without a timeout again past it.
func (n *Node) PeerTimeout() time.Duration { return n.opts.PeerTimeout }

// CheckClaims implements route.MeshClaimCheck: another node's single
// part of a single registration this node has callees of left the
// directory (a conflict's loser revoked its callees and gave back the
// claim it may have taken over of this node's, after this node's check at
// the join: a node that had not heard this one again yet took its live
// claim for a dead life's). The worker checks the claims this node holds
// (checkHeld: one read of the store's state when nothing changed) and
// claims again those the store no longer holds as its own, within the
// other nodes' hold (WonHold). It does not block.
func (n *Node) CheckClaims() {
	if n.claims != nil {
		n.claims.recheckHeld()
	}
}

// reconcile gives back the releases the store did not take, then
// retries provisional claims, in turns of at most checkBatch of them and
// checkTurn (one store round trip each: at least one), the worker's
// other jobs going on between turns (as checkHeld's): before, it took
// them all in one turn, and every claim and release of the node queued
// meanwhile, of a free procedure too, waited behind the whole backlog an
// outage left (k provisional claims times the store's round trip: an
// edge node's 10,000 over a 20 ms uplink, more than three minutes).
// Each round works on the keys waiting when it began (a claim another
// live node holds stays provisional, and is tried again by the next
// round, not by every turn). It stops at the first operation the store
// does not answer (each would wait claimTimeout), the round abandoned,
// and clears down as soon as the store answers one, so that the claims
// queued between turns go to the store rather than being accepted
// provisionally. Worker goroutine.
func (c *claimStore) reconcile() {
	if !c.reconciling {
		c.round = c.round[:0]
		for key := range c.releasing { // empty while kv is nil (releaseBy)
			c.round = append(c.round, reconcileKey{key: key, release: true})
		}
		for key, rec := range c.held {
			if rec.rev == 0 {
				c.round = append(c.round, reconcileKey{key: key})
			}
		}
		c.reconciling = true
	}
	start := time.Now()
	for i := 0; len(c.round) > 0; i++ {
		if c.stopping() {
			return
		}
		if i >= checkBatch || i > 0 && time.Since(start) >= checkTurn {
			c.wake() // the rest after the jobs queued meanwhile
			return
		}
		r := c.round[0]
		c.round[0] = reconcileKey{}
		c.round = c.round[1:]
		if r.release {
			rev, ok := c.releasing[r.key]
			if !ok { // claimed again meanwhile
				continue
			}
			if !c.giveBack(r.key, rev, time.Time{}) {
				c.abandonRound()
				return
			}
			delete(c.releasing, r.key)
			c.down = false
			continue
		}
		if rec, ok := c.held[r.key]; !ok || rec.rev != 0 { // released, or claimed meanwhile
			continue
		}
		c.held[r.key] = claimRec{} // written from now on, if not answered in time
		err := c.take(r.key)
		switch {
		case err == nil:
		case errors.Is(err, route.ErrMeshClaimed), errors.Is(err, errUnheard):
			// Another live node holds it: the directory settles which
			// registration stays; keep ours provisional until then.
			c.held[r.key] = claimRec{}
		case storeFull(err):
			// The store answered, without room: keep it provisional (the
			// directory settles it) and the store up. Before, this took
			// the store for down every round, and every later claim of
			// the node was accepted provisionally while it stayed full.
			c.held[r.key] = claimRec{}
		default:
			c.abandonRound()
			return
		}
		c.down = false
	}
	c.abandonRound()
	c.down = false
}

// abandonRound ends reconcile's round: the store did not answer (down),
// or every key was tried (the caller clears down). Worker goroutine.
func (c *claimStore) abandonRound() {
	c.reconciling = false
	clear(c.round)
	c.round = c.round[:0]
	c.down = true
}

// reconcileKey is a key of reconcile's round: a release to give back
// again, or a provisional claim to claim in the store.
type reconcileKey struct {
	key     string
	release bool
}

// stopping reports whether the worker is asked to stop (a long reconcile
// after an outage gives way to Shutdown).
func (c *claimStore) stopping() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}
