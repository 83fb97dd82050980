package edge

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/edgewamp/edgewamp/route"
)

// Node is one router's membership of the mesh: an embedded NATS server
// (or a connection to an external NATS), the in-process nats.go
// connection, and the goroutines that move messages between NATS and the
// router (see doc.go and route/mesh.go). Create it with New, then Start
// it before the router serves any session.
//
// Goroutines: the sender (the only one that publishes to NATS), the
// control dispatcher (node-to-node messages, heartbeats, the directory,
// gathers), the event dispatcher (events), and a heartbeat ticker inside
// the control dispatcher, and two pumps, which move what NATS delivers
// into the byte-bounded queues the dispatchers drain (in.go). Shutdown
// stops them all.
type Node struct {
	opts Options
	// routed holds the peers that were direct NATS routes of this node's
	// server when they joined, with the server ids of those routes
	// (routes.go). Guarded by routedMu.
	routedMu sync.Mutex
	routed   map[string][]string
	log      *slog.Logger
	r        *route.Router
	boot     uint64 // random per process start: tells a restarted node from the old one
	// now is the clock of the node's intervals (mono): time.Now; tests
	// inject readings of a stepped wall clock. epoch is its reading at
	// New. Static after New.
	now   func() time.Time
	epoch time.Time
	slot  uint16
	// inbox is nodeInbox(Name): the Reply field of what the node sends.
	inbox string
	// meshVer is the mesh version the node speaks (meshVersion; another
	// only through Options.testMeshVersion), evRoot its event subjects'
	// prefix (eventRoot). Static after New.
	meshVer uint64
	evRoot  string

	srv *server.Server // nil with NatsURL
	// acc is the embedded server's account of the mesh's connections
	// (nil with NatsURL): its interest graph says whether any node has
	// a subscription matching an event's subject (Publish). Static after
	// Start.
	acc *server.Account
	// localPass is the password of the embedded server's client port when
	// the mesh has no credential (startServer), "" otherwise.
	localPass string
	nc        *nats.Conn
	// maxPayload is the largest message the NATS server the node is
	// connected to takes (its max_payload; 0 before the connection):
	// set at connect and refreshed by the sender at each batch (a
	// reconnect may reach another server of a deployment). Send and
	// Publish refuse a larger envelope at once (tooLarge).
	maxPayload atomic.Int64
	storeDir   string
	ownStore   bool

	out      *outq
	subjects subjectCache
	evCh     chan *nats.Msg // event subscriptions deliver here; a pump drains it into in
	in       *inq           // the events waiting for the event dispatcher (in.go)
	ctlCh    chan *nats.Msg // node-direct and broadcast subscriptions deliver here; a pump drains it into ctlq
	ctlq     *inq           // the rest waiting for the control dispatcher; in and ctlq share one budget in bytes (in.go)
	ctl      []*nats.Subscription

	imu       sync.Mutex                // guards interests; a leaf lock (route calls in with Realm.mu held)
	interests map[string]*realmInterest // by realm
	iLogAt    time.Time                 // guarded by imu: the last widening or narrowing logged
	iUnlogged int                       // guarded by imu: widenings and narrowings since then, unlogged
	iSummary  *time.Timer               // guarded by imu: logs the unlogged ones, once their wait is over

	// The peer set the heartbeats last listed (its digest), and how
	// many heartbeats since; guarded by dmu (heartbeatData).
	hbDigest uint64
	hbSince  int
	hbSent   bool

	dmu    sync.Mutex // guards the local directory; a leaf lock
	dir    map[dirKey]route.MeshRealmReg
	dirVer uint64
	// snaps are the directory, encoded for paced sync answers, of the
	// versions peers are reading (sendPart); control dispatcher only.
	snaps []*dirSnap

	peers peerTable // owned by the control dispatcher, with an atomic view

	gmu     sync.Mutex // guards gathers and gatherID
	gLogAt  time.Time  // guarded by gmu: the last incomplete gather logged
	gMissed uint64     // guarded by gmu: incomplete gathers since then, unlogged
	gathers map[uint64]*gather
	gseq    uint64
	gBytes  int64     // guarded by gmu: bytes of the answers gathers hold (Options.MaxGathered)
	gFullAt time.Time // guarded by gmu: the last answer dropped for it, logged
	// partAt is when the last part of a paced answer came from each node
	// (paced.go); guarded by gmu.
	partAt map[string]time.Time

	// The answers to other nodes' gathers sent a part at a time
	// (paced.go), by asking node, and their bytes; guarded by pmu, which
	// is taken before outq's lock.
	pmu        sync.Mutex
	paced      map[string]*pacedTo
	pacedRTT   map[string]time.Duration // by asking node: pacedLost's round trips
	pacedBytes int64
	// pacedKept: the bytes of last parts in flight kept to be sent
	// again (inFlight.last), at most maxPacedHeld/4.
	pacedKept  int64
	pacedLogAt time.Time
	// startedAt is when Start succeeded, on mono's clock (zero before):
	// see Gather and unheard.
	startedAt atomic.Int64

	claims *claimStore

	dedup dedupRing // owned by the event dispatcher

	// testHookSend, set by tests only (nil otherwise), runs on the sender
	// before it hands each batch to NATS: a test holds the sender with it.
	testHookSend atomic.Pointer[func(*outBatch)]
	// testHookEvents, set by tests only, runs on the event dispatcher
	// before each batch: a test stalls the dispatcher with it.
	testHookEvents atomic.Pointer[func()]
	// testHookEventPump, set by tests only, runs on the events' pump
	// before it takes the next batch from evCh: a test fills evCh with it.
	testHookEventPump atomic.Pointer[func()]
	// testHookControl, set by tests only, runs on the control dispatcher
	// before each batch, with it.
	testHookControl atomic.Pointer[func([]*nats.Msg)]
	// testHookControlPump, set by tests only, runs on the control
	// queue's pump before it waits for each batch (this node's NATS side
	// not delivering).
	testHookControlPump atomic.Pointer[func()]
	// testHookTick, set by tests only, runs on the control dispatcher
	// when its idle select takes a tick, before anything else (a
	// dispatcher scheduled late).
	testHookTick atomic.Pointer[func()]
	// testHookGather, set by tests only, runs in Gather after the gather
	// is registered and its timers armed, before its query is queued: a
	// test has a timer end it there.
	testHookGather atomic.Pointer[func()]

	stop    chan struct{}
	stopped atomic.Bool
	// tickAt is when the control dispatcher last ticked (mono), and
	// stallCredit the stalls of this process it credited to the peers
	// in all (runControl, creditStall): the claim store's waits for a
	// node to be taken for dead are credited them too (claims.go,
	// creditStalls).
	tickAt      atomic.Int64
	stallCredit atomic.Int64
	// sparing: a peer spared at a stall (creditStall: peer.spareUntil)
	// is not judged yet (checkPeers): the claim store's waits for a
	// node to be taken for dead do not end meanwhile.
	sparing atomic.Bool
	// noMsgGet is when the claim store may read through the stream's
	// leader again (mono; 0: it may): set by the NATS error handler when
	// the user may not publish STREAM.MSG.GET (leaderGet).
	noMsgGet atomic.Int64
	// left holds when nodes said goodbye, for the last leftKeep
	// (noteLeft, linkLost); guarded by lmu.
	lmu   sync.Mutex
	left  map[string]leftRec
	wg    sync.WaitGroup
	ready atomic.Bool

	stats Stats
	// syncLogged is when badSync last logged, peersLogged when peerFor
	// last logged a refused node (control dispatcher).
	syncLogged, peersLogged time.Time
}

// Stats are a node's counters: where a message can be lost, and how
// often it was.
type Stats struct {
	// EventsDropped counts events not sent because the outbound queue was
	// full (route counts them too, in MeshStats.SendFailed).
	EventsDropped atomic.Uint64
	// EventsUnheard counts events not queued because no other node had
	// a subscription matching them (checked while the outbound queue
	// holds more than a sixteenth of its bound; embedded server only).
	EventsUnheard atomic.Uint64
	// SlowConsumer counts messages NATS dropped before this node read
	// them (its subscription queues were full).
	SlowConsumer atomic.Uint64
	// Duplicates counts event copies dropped: a safety net, since a
	// node's event subscriptions are one queue group (NATS hands it each
	// event once, however many of its subjects match).
	Duplicates atomic.Uint64
	// Frames counts the NATS messages sent that packed several route
	// envelopes (frame.go), FramedEnvelopes the envelopes they held;
	// BadFrames the frames received that did not unpack (the envelopes
	// after the fault were dropped), and the directory sync answers
	// dropped as malformed or past maxSyncBytes (badSync).
	Frames          atomic.Uint64
	FramedEnvelopes atomic.Uint64
	BadFrames       atomic.Uint64
	// TooLong counts messages and subscriptions not handed to NATS because
	// their subject (a very long URI or realm) exceeds the server's
	// max_control_line, which would make it close the connection.
	TooLong atomic.Uint64
	// PublishErrors counts messages nats.go refused (disconnected with a
	// full reconnect buffer, payload too large).
	PublishErrors atomic.Uint64
	// TooLarge counts events and route envelopes refused before they
	// were queued because they are larger than the NATS server's
	// max_payload (NatsURL: a deployment's, 1 MiB by default; the
	// embedded server takes 24 MiB, more than a WAMP message can make).
	TooLarge atomic.Uint64
	// Disconnects counts losses of the NATS connection (NatsURL), and of
	// the embedded server's route and leaf links to other servers.
	Disconnects atomic.Uint64
	// PeersLost counts nodes taken for dead; PeersJoined nodes seen.
	PeersLost   atomic.Uint64
	PeersJoined atomic.Uint64
	// PeersRefused counts messages dropped because they came from a node
	// not known while maxPeers were (peerFor).
	PeersRefused atomic.Uint64
	// Unknown counts messages from nodes the directory did not know yet.
	Unknown atomic.Uint64
	// ClaimsProvisional counts single registrations accepted without the
	// claim store (unreachable); ClaimsRefused those it refused.
	ClaimsProvisional atomic.Uint64
	ClaimsRefused     atomic.Uint64
	// ClaimsStoreFull counts the claims the store refused for want of
	// room (its claimBucketBytes, or JetStream's resources): their
	// REGISTERs got wamp.error.unavailable.
	ClaimsStoreFull atomic.Uint64
	// ClaimsNodeShare counts the claims refused because this node held
	// its share of the claim store (claimNodeShare), and
	// ClaimsSessionShare the single REGISTERs route refused because their
	// session held its share of the node's (claimSessionShare): their
	// REGISTERs got wamp.error.unavailable.
	ClaimsNodeShare    atomic.Uint64
	ClaimsSessionShare atomic.Uint64
	// ClaimsReasserted counts claims this node held that the store no
	// longer had as its own when a node joined (one that had taken it for
	// dead, a store node restarted; claims.go, checkHeld): held
	// provisionally, and claimed again.
	ClaimsReasserted atomic.Uint64
	// ClaimsSwept counts claims of lives seen to end purged from the
	// store by this node's sweeps (claims.go, sweep).
	ClaimsSwept atomic.Uint64
	// WideRealms is the number of realms whose distinct subscribed
	// subjects passed Options.MaxInterest on this node: it receives all of
	// their events (realmInterest).
	WideRealms atomic.Int64
	// ReleasesDropped counts claim releases dropped because
	// maxReleaseJobs releases the store had not taken wait to be given
	// back again (logged).
	ReleasesDropped atomic.Uint64
	// VersionMismatch counts messages dropped because they came from a
	// node that speaks another mesh version (its heartbeats, which tell
	// its version, are not counted); PeersIncompatible is the number of
	// such nodes heard now (peers.go, "Mesh versions").
	VersionMismatch   atomic.Uint64
	PeersIncompatible atomic.Int64
	// PeersUnheard is how many nodes its peers' heartbeats name that this
	// node does not hear from (see checkUnheard): non-zero for long means
	// routes between some nodes are missing.
	PeersUnheard atomic.Int64
	// GathersIncomplete counts the gathers (meta queries over the realm,
	// get_retained) that Options.GatherTimeout ended before every node
	// they waited for had answered: their callers got a partial answer (a
	// short count or list, a retained event left out). Logged too, at
	// most once per gatherLogEvery, naming the nodes.
	GathersIncomplete atomic.Uint64
	// GatherAnswersDropped counts the answers to this node's gathers
	// dropped because the answers its gathers held would have passed
	// Options.MaxGathered; the gather counts the node among those that
	// did not answer.
	GatherAnswersDropped atomic.Uint64
	// PacedRefused counts the answers to other nodes' gathers this node
	// did not send because the answers it held to send a part at a time
	// would have passed their bound (paced.go); PacedDropped those it
	// dropped unfinished (their asker stopped acknowledging parts, was
	// taken for dead, or its gather outlived maxPacedWait) or could not
	// queue.
	PacedRefused atomic.Uint64
	PacedDropped atomic.Uint64
	// PacedLost counts the parts it took for lost, they or their
	// acknowledgements (unacknowledged for pacedLost): sent again, or
	// their room given back; each part once, however often it goes
	// again.
	PacedLost atomic.Uint64
	// InboundFull counts the event messages (one event, or a frame of
	// them) from other nodes dropped because what waited for the node's
	// dispatchers held three quarters of Options.MaxInbound (in.go).
	InboundFull atomic.Uint64
	// ControlFull counts the other messages from other nodes dropped
	// because what waited for the node's dispatchers held too many bytes
	// (in.go): calls, results, chunks, cancels and frames of them past
	// Options.MaxInbound; meta queries and answers to this node's gathers
	// past three quarters of it; directory changes and sync answers past
	// an eighth more, heartbeats, goodbyes, sync requests and "forgotten"
	// words past a quarter more (which traffic does not reach).
	ControlFull atomic.Uint64
	// PeersSameName is how many other nodes are heard now using this
	// node's name (mesh.node must be unique; peers.go, "Two nodes under
	// one name"); SameName counts the messages from them dropped (their
	// heartbeats not counted).
	PeersSameName atomic.Int64
	SameName      atomic.Uint64
}

// New validates opts and returns a Node. It starts nothing.
func New(opts Options) (*Node, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	var b [8]byte
	crand.Read(b[:])
	budget := newInbound(opts.MaxInbound)
	n := &Node{
		opts:      opts,
		log:       opts.Logger.With("node", opts.Name),
		r:         opts.Router,
		boot:      binary.LittleEndian.Uint64(b[:]) | 1,
		now:       time.Now,
		epoch:     time.Now(),
		slot:      route.MeshSlot(opts.Name),
		meshVer:   meshVersion,
		inbox:     nodeInbox(opts.Name),
		out:       newOutq(opts.MaxOutbound),
		evCh:      make(chan *nats.Msg, 16384),
		in:        newInq(budget, ""),
		ctlCh:     make(chan *nats.Msg, 16384),
		ctlq:      newInq(budget, nodeInbox(opts.Name)+"."),
		interests: map[string]*realmInterest{},
		dir:       map[dirKey]route.MeshRealmReg{},
		gathers:   map[uint64]*gather{},
		partAt:    map[string]time.Time{},
		paced:     map[string]*pacedTo{},
		pacedRTT:  map[string]time.Duration{},
		stop:      make(chan struct{}),
	}
	switch v := opts.testMeshVersion; {
	case v < 0:
		n.meshVer = 0
	case v > 0:
		n.meshVer = uint64(v)
	}
	n.evRoot = eventRoot(n.meshVer)
	n.peers.init(opts.Name, opts.PeerTimeout+2*opts.Heartbeat)
	return n, nil
}

// Start starts the embedded NATS server (unless NatsURL), connects to it,
// joins the router to the mesh and starts the node's goroutines. It
// returns once the node is connected; other nodes are found
// asynchronously. Call it once, before the router serves any session.
func (n *Node) Start() error { return n.StartContext(context.Background()) }

// StartContext is Start whose wait for the embedded NATS server to be
// ready (up to 30 s: a JetStream store being recovered, a listener's host
// name being resolved) ends when ctx does: the server is then shut down
// (without waiting for it, as a start stuck in its store may not end)
// and the error wraps ctx's. Before, a process stopping during that wait
// (SIGTERM while the router started) waited it out.
func (n *Node) StartContext(ctx context.Context) error {
	if err := n.r.AttachMesh(n, n.opts.Name, n.slot); err != nil {
		return err
	}
	if n.opts.NatsURL == "" {
		if err := n.startServer(ctx); err != nil {
			return err
		}
	}
	if err := n.connect(); err != nil {
		n.shutdownServer()
		return err
	}
	inbox := nodeInbox(n.opts.Name)
	for _, s := range []string{inbox + ".>", subjBroadcast} {
		sub, err := n.nc.ChanSubscribe(s, n.ctlCh)
		if err != nil {
			n.nc.Close()
			n.shutdownServer()
			return fmt.Errorf("edge: subscribing to %s: %w", s, err)
		}
		n.ctl = append(n.ctl, sub)
	}
	if err := n.nc.Flush(); err != nil {
		n.nc.Close()
		n.shutdownServer()
		return fmt.Errorf("edge: %w", err)
	}
	n.claims = newClaimStore(n)
	n.wg.Add(5)
	go n.runSender(n.stop)
	go n.runPump(n.ctlCh, n.ctlq, &n.stats.ControlFull)
	go n.runControl()
	go n.runPump(n.evCh, n.in, &n.stats.InboundFull)
	go n.runEvents()
	n.markStarted()
	n.ready.Store(true)
	if !n.opts.testQuietStart {
		n.heartbeat()
	}
	n.log.Info("mesh: node started", "slot", n.slot, "cluster", n.clusterAddr(), "leaf", n.leafAddr(), "nats_url", redactURLs(n.opts.NatsURL))
	return nil
}

// startServer embeds a NATS server: a client listener on loopback with a
// random port (a clustered server needs one: DontListen stops its route
// listener; the router itself connects in-process), routes and leaf-node
// links as configured, JetStream on nodes that are part of a cluster or a
// hub. With credentials, every port of the server requires them (the
// loopback client port included): a token on each; an nkey signs the leaf
// links and the client connection, and routes present a password derived
// from its seed (routePassword). Without, the mesh is open to whoever
// reaches its ports.
func (n *Node) startServer(ctx context.Context) error {
	o := n.opts
	so := &server.Options{
		ServerName:    o.Name,
		Host:          "127.0.0.1",
		Port:          server.RANDOM_PORT,
		Authorization: o.Token,
		NoSigs:        true,
		NoLog:         true,
		MaxPayload:    o.MaxPayload,
		MaxPending:    int64(o.MaxPayload) * 4,
		PingInterval:  o.PingInterval,
		MaxPingsOut:   o.MaxPingsOut,
		// A subject carries a realm and a URI (each up to proto.MaxURILen,
		// 8/5 longer once escaped): the NATS default (4 KiB) would make
		// the server close the connection, for good, on the SUB or PUB
		// of a long URI.
		MaxControlLine: embeddedMaxControlLine,
	}
	if o.Cluster.Listen != "" {
		host, port, err := splitHostPort(o.Cluster.Listen)
		if err != nil {
			return fmt.Errorf("edge: cluster.listen: %w", err)
		}
		so.Cluster = server.ClusterOpts{Name: o.Cluster.Name, Host: host, Port: port, Advertise: o.Cluster.Advertise,
			PingInterval: o.PingInterval, MaxPingsOut: o.MaxPingsOut, TLSConfig: o.TLS, PoolSize: -1}
		// Routes authenticate with a user and password: the token, or one
		// derived from the nkey seed (NATS has no nkey for routes; without
		// a user, a route port takes any node).
		pass := o.Token
		if pass == "" && o.NKeySeed != "" {
			pass = routePassword(o.NKeySeed)
		}
		if pass != "" {
			so.Cluster.Username, so.Cluster.Password = tokenUser, pass
		}
		routes, err := withCredentials(o.Cluster.Routes, pass)
		if err != nil {
			return err
		}
		so.Routes = routes
	}
	if o.Leaf.Listen != "" {
		host, port, err := splitHostPort(o.Leaf.Listen)
		if err != nil {
			return fmt.Errorf("edge: leaf.listen: %w", err)
		}
		so.LeafNode.Host, so.LeafNode.Port, so.LeafNode.Advertise = host, port, o.Leaf.Advertise
		so.LeafNode.TLSConfig = o.TLS
		switch {
		case o.Token != "":
			so.LeafNode.Username, so.LeafNode.Password = tokenUser, o.Token
		case o.NKeySeed != "":
			so.LeafNode.Nkey = nkeyPublic(o.NKeySeed)
		}
	}
	if o.NKeySeed != "" {
		so.Nkeys = []*server.NkeyUser{{Nkey: nkeyPublic(o.NKeySeed)}}
	}
	if o.Token == "" && o.NKeySeed == "" {
		// Without a credential the client port admits the router's own
		// connection only (a password of this process's, which nothing
		// else knows; tests connect with it too), and a leaf link without credentials is
		// bound to a user that admits leaf links only (NATS takes such a
		// link as a client without credentials): before, any process of
		// the machine, any user, that found the port joined the mesh with
		// a node's every right, where mesh.tls with a ca guarded the
		// route and leaf ports (TestClientPortAdmitsOnlyTheRouter).
		n.localPass = randomHex(32)
		so.Users = []*server.User{
			// jwt.ConnectionTypeInProcess, Standard and Leafnode.
			{Username: localUser, Password: n.localPass, AllowedConnectionTypes: map[string]struct{}{"IN_PROCESS": {}, "STANDARD": {}}},
			{Username: leafUser, AllowedConnectionTypes: map[string]struct{}{"LEAFNODE": {}}},
		}
		so.NoAuthUser = leafUser
	}
	if len(o.Leaf.Remotes) > 0 {
		urls, err := withCredentials(o.Leaf.Remotes, o.Token)
		if err != nil {
			return err
		}
		rem := &server.RemoteLeafOpts{URLs: urls, Nkey: o.NKeySeed}
		if o.TLS != nil {
			rem.TLS, rem.TLSConfig = true, o.TLS
		}
		so.LeafNode.Remotes = []*server.RemoteLeafOpts{rem}
		so.LeafNode.ReconnectInterval = time.Second
	}
	// JetStream (the claim store) runs on the nodes of a cluster and on
	// hubs; an edge node reaches the hub's through its leaf link, and a
	// cluster node that lists no routes (it only accepts them) uses its
	// peers' (NATS needs configured routes for clustered JetStream). A
	// node that dials a hub (leaf.remotes) runs none, whatever else it
	// does: the mesh has one store, at the root of its leaf tree. Before,
	// a node in the middle of the tree (leaf.remotes and leaf.listen) or
	// a cluster of edges ran one of its own in the mesh's one domain,
	// which it and the nodes below it used instead of the hub's: a single
	// procedure was exclusive on each side of that leaf link only, and the
	// shared OAuth2 state was two (TestMidTierLeafUsesTheRootStore).
	if len(o.Leaf.Remotes) == 0 && (len(o.Cluster.Routes) > 0 || o.Leaf.Listen != "" && o.Cluster.Listen == "") {
		dir, own, err := o.storeDir()
		if err != nil {
			return fmt.Errorf("edge: JetStream store: %w", err)
		}
		n.storeDir, n.ownStore = dir, own
		if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
			// MkdirAll does not tighten a directory that exists: the store
			// holds the shared OAuth2 signing keys and the claims.
			n.log.Warn("mesh: the JetStream store directory is readable by others than its owner; make it 0700", "dir", dir, "mode", fi.Mode().Perm().String())
		}
		so.JetStream = true
		so.JetStreamDomain = jsDomain
		so.StoreDir = dir
		so.JetStreamMaxMemory = 64 << 20
		so.JetStreamMaxStore = 256 << 20
	}
	s, err := server.NewServer(so)
	if err != nil {
		n.removeStore()
		return fmt.Errorf("edge: NATS server: %w", err)
	}
	// A listener that cannot bind (a route or leaf port in use) is a
	// Fatalf of the embedded server, which logs and carries on without it:
	// refuse to start instead, at once.
	fatal := make(chan string, 1)
	s.SetLoggerV2(natsLogger{l: n.log, fatal: fatal, lim: &natsLogLimit{}, lost: n.linkLost}, n.log.Enabled(context.Background(), slog.LevelDebug), false, false)
	go s.Start()
	for deadline := time.Now().Add(natsReadyWait); ; {
		if s.ReadyForConnections(50 * time.Millisecond) {
			break
		}
		var why string
		select {
		case why = <-fatal:
		case <-ctx.Done():
			go func() {
				s.Shutdown()
				n.removeStore()
			}()
			return fmt.Errorf("edge: the NATS server's start was abandoned: %w", context.Cause(ctx))
		default:
			if time.Now().Before(deadline) {
				continue
			}
			why = n.notReady(s)
		}
		s.Shutdown()
		n.removeStore()
		return fmt.Errorf("edge: the NATS server did not start: %s", why)
	}
	n.srv = s
	n.acc = s.GlobalAccount()
	return nil
}

// notReady says what is known of an embedded server not ready within
// natsReadyWait. A listen address it cannot bind is reported at once
// (fatal), not here. It reads its JetStream store before it opens any
// listener (the leaf port, then its loopback client port, then the route
// port): with none open, the store's read is what holds it. Before, the
// error asked "a listen address in use?", which pointed the operator
// away from a store on a disk or mount that did not answer.
func (n *Node) notReady(s *server.Server) string {
	o := n.opts
	var listens []string
	if o.Leaf.Listen != "" {
		listens = append(listens, "leaf.listen "+o.Leaf.Listen)
	}
	if o.Cluster.Listen != "" {
		listens = append(listens, "cluster.listen "+o.Cluster.Listen)
	}
	why := fmt.Sprintf("not ready within %v: ", natsReadyWait)
	if s.Addr() == nil {
		why += "it opened none of its listeners"
		if len(listens) > 0 {
			why += " (" + strings.Join(listens, ", ") + ")"
		}
		if n.storeDir != "" {
			why += fmt.Sprintf(", which it opens once it has read its JetStream store: the read of %q did not end (a disk or network mount that does not answer, a file there that blocks a read, such as a FIFO)", n.storeDir)
		}
		return why
	}
	// The client port is open, so the leaf port is too (opened before).
	if o.Cluster.Listen != "" && s.ClusterAddr() == nil {
		return why + "cluster.listen " + o.Cluster.Listen + " is not open (its loopback client port " + s.Addr().String() + " is)"
	}
	return why + "its listeners are open (the loopback client port " + s.Addr().String() + ")"
}

// natsReadyWait bounds the wait for the embedded NATS server to open its
// listeners (a variable for the tests).
var natsReadyWait = 30 * time.Second

// embeddedMaxControlLine is the embedded server's max_control_line; an
// external NATS (NatsURL) is assumed to keep the NATS default.
const (
	embeddedMaxControlLine = 32 << 10
	defaultMaxControlLine  = 4096
)

// maxControlLine is the longest protocol line (PUB/SUB subject, reply and
// numbers) the node's server takes; a longer one would close the
// connection, so the sender drops it instead (Stats.TooLong).
func (n *Node) maxControlLine() int {
	if n.srv != nil {
		return embeddedMaxControlLine
	}
	return defaultMaxControlLine
}

func splitHostPort(a string) (string, int, error) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("bad port %q", port)
	}
	if p == 0 {
		p = server.RANDOM_PORT
	}
	return host, p, nil
}

// connect opens the router's NATS connection: in-process to the embedded
// server, else to NatsURL.
func (n *Node) connect() error {
	o := n.opts
	nopts := []nats.Option{
		nats.Name("edgewamp-" + o.Name),
		nats.NoEcho(), // a node never receives what it sent itself
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(int(o.MaxOutbound)),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				n.stats.SlowConsumer.Add(1)
				return
			}
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), "STREAM.MSG.GET.KV_"+claimBucket) {
				n.noMsgGet.Store(int64(time.Since(processStart) + noConsumersFor))
			}
			n.log.Warn("mesh: NATS error", "err", err)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if n.stopped.Load() {
				return
			}
			n.stats.Disconnects.Add(1)
			n.log.Warn("mesh: NATS connection lost", "err", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) { n.log.Info("mesh: NATS connection restored") }),
	}
	if o.Token != "" {
		nopts = append(nopts, nats.Token(o.Token))
	}
	if n.localPass != "" {
		nopts = append(nopts, nats.UserInfo(localUser, n.localPass))
	}
	if o.NKeySeed != "" {
		kp, _ := nkeys.FromSeed([]byte(o.NKeySeed))
		nopts = append(nopts, nats.Nkey(nkeyPublic(o.NKeySeed), func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) }))
	}
	url := o.NatsURL
	if n.srv != nil {
		url = ""
		// No write deadline on the in-process pipe: nats.go set one
		// before and cleared it after each flush (FlusherTimeout, a
		// minute by default), and net.Pipe makes each a runtime timer,
		// two allocations, with the P's timer heap locked to add and
		// delete it, for every NATS message the sender hands over
		// (BenchmarkMeshSendAcrossNodes). The pipe's reader is this
		// process's own server, which reads until it closes the pipe
		// (then the write fails at once), so a deadline guards
		// nothing there. A NatsURL connection keeps the default.
		nopts = append(nopts, nats.InProcessServer(n.srv), nats.FlusherTimeout(0))
	} else if o.TLS != nil {
		nopts = append(nopts, nats.Secure(o.TLS))
	}
	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		return fmt.Errorf("edge: connecting to NATS: %w", err)
	}
	n.nc = nc
	n.maxPayload.Store(nc.MaxPayload())
	return nil
}

// Ready reports whether the node is connected to its NATS server (for
// /readyz). Other nodes may still be unreachable: a partitioned node keeps
// serving its own clients.
func (n *Node) Ready() bool { return n.ready.Load() && n.nc != nil && n.nc.IsConnected() }

// ClaimsReady reports whether the claim store (JetStream) answers, so
// that single registrations are exclusive at once rather than
// provisionally.
func (n *Node) ClaimsReady() bool { return n.claims != nil && n.claims.bound.Load() }

// Stats returns the node's counters.
func (n *Node) Stats() *Stats { return &n.stats }

// Peers returns the names of the nodes this node currently sees alive.
func (n *Node) Peers() []string { return n.peers.names() }

// ClusterAddr returns the bound route listener address, or nil.
func (n *Node) ClusterAddr() net.Addr {
	if n.srv == nil || n.opts.Cluster.Listen == "" {
		return nil
	}
	if a := n.srv.ClusterAddr(); a != nil {
		return a
	}
	return nil
}

// LeafAddr returns the bound leaf-node listener address, or nil.
func (n *Node) LeafAddr() net.Addr {
	if n.srv == nil || n.opts.Leaf.Listen == "" {
		return nil
	}
	v, err := n.srv.Varz(nil)
	if err != nil || v.LeafNode.Port == 0 {
		return nil
	}
	host := v.LeafNode.Host
	if host == "" {
		host = "127.0.0.1"
	}
	return &net.TCPAddr{IP: net.ParseIP(host), Port: v.LeafNode.Port}
}

func (n *Node) clusterAddr() string {
	if a := n.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

func (n *Node) leafAddr() string {
	if a := n.LeafAddr(); a != nil {
		return a.String()
	}
	return ""
}

// Shutdown leaves the mesh: it tells the other nodes (so they drop this
// one at once rather than after PeerTimeout), sends what is queued, gives
// back the claims of its single registrations (for up to 2 s), closes
// the connection and stops the embedded server. Call it after the
// router's sessions are gone (their registrations withdrawn). It returns
// ctx's error if ctx ends first.
func (n *Node) Shutdown(ctx context.Context) error {
	if n.stopped.Swap(true) {
		return nil
	}
	n.ready.Store(false)
	n.imu.Lock()
	if n.iSummary != nil {
		n.iSummary.Stop()
	}
	n.imu.Unlock()
	if n.nc != nil {
		n.out.push(opPublish, subjBye, nodeInbox(n.opts.Name), bootBytes(n.boot), nil)
	}
	close(n.stop)
	done := make(chan struct{})
	go func() {
		n.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	n.out.mu.Lock()
	n.out.closed = true
	n.out.mu.Unlock()
	if n.claims != nil {
		// The claims of its single registrations are given back before
		// the connection closes, within releaseFlush (or ctx).
		by := time.Now().Add(releaseFlush)
		if d, ok := ctx.Deadline(); ok && d.Before(by) {
			by = d
		}
		if ctx.Err() != nil {
			by = time.Time{}
		}
		n.claims.close(by)
	}
	if n.nc != nil {
		n.flushBy(ctx)
		n.nc.Close()
	}
	n.gmu.Lock()
	for id, g := range n.gathers {
		delete(n.gathers, id)
		n.gBytes -= g.held()
		n.endPaced(g)
		g.finish(append(g.missing(n.peers.view.Load().names), g.dropped...)) // the node stops: its callers' sessions end too
	}
	n.gmu.Unlock()
	n.shutdownServer()
	return err
}

// shutdownFlush bounds Shutdown's last flush when its context has no
// deadline (nats.go's Flush waited that long whatever the context).
const shutdownFlush = 10 * time.Second

// flushBy waits for what is queued on the NATS connection (the goodbye,
// the claims' releases) to reach the server, within ctx's deadline. It
// does not wait while the connection is down (a nats_url server gone,
// reconnecting): no PONG comes then, and Close drops what it holds
// anyway. Before, Flush waited its 10 s there whatever ctx said, and
// edgewamp's stop, which gives the mesh's leave 5 s, took 10 s more.
func (n *Node) flushBy(ctx context.Context) {
	if !n.nc.IsConnected() {
		return
	}
	d := shutdownFlush
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl))
	}
	if d > 0 {
		n.nc.FlushTimeout(d)
	}
}

func (n *Node) shutdownServer() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
	}
	n.removeStore()
}

func (n *Node) removeStore() {
	if n.ownStore && n.storeDir != "" {
		os.RemoveAll(n.storeDir)
	}
}

func nkeyPublic(seed string) string {
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		return ""
	}
	pub, _ := kp.PublicKey()
	return pub
}

// The users of the embedded server without a mesh credential
// (startServer): the router's in-process connection, and leaf links.
const (
	localUser = "edgewamp-router"
	leafUser  = "edgewamp-leaf"
)

func randomHex(n int) string {
	b := make([]byte, n)
	crand.Read(b)
	return hex.EncodeToString(b)
}

func bootBytes(boot uint64) []byte { return binary.LittleEndian.AppendUint64(nil, boot) }

// natsLogger forwards the embedded server's warnings and errors to slog.
type natsLogger struct {
	l     *slog.Logger
	fatal chan<- string // receives the first fatal error while the server starts
	lim   *natsLogLimit // spaces the warnings
	// lost is told of the route and leaf links to other servers that
	// closed (linkClosed), by the other server's name (Node.linkLost).
	lost func(remote string)
}

func (g natsLogger) Noticef(f string, a ...any) {
	msg := fmt.Sprintf(f, a...)
	if g.lost != nil && linkClosed(msg) {
		g.lost(linkRemote(msg))
	}
	g.l.Debug("nats: " + msg)
}

func (g natsLogger) Warnf(f string, a ...any) { g.log(slog.LevelWarn, fmt.Sprintf(f, a...)) }
func (g natsLogger) Fatalf(f string, a ...any) {
	msg := fmt.Sprintf(f, a...)
	g.l.Error("nats: " + msg)
	select {
	case g.fatal <- msg:
	default:
	}
}
func (g natsLogger) Errorf(f string, a ...any) { g.log(slog.LevelWarn, fmt.Sprintf(f, a...)) }
func (g natsLogger) Debugf(f string, a ...any) { g.l.Debug("nats: " + fmt.Sprintf(f, a...)) }
func (g natsLogger) Tracef(f string, a ...any) {}

// linkClosed reports whether a notice of the embedded server says that a
// route or leaf link to another server closed: one that was up (the
// server knew the other's name, which a connection refused before its
// handshake never told), other than a duplicate the servers close as they
// form their links (a route's notice says "Router": matched as "Route"
// before, routes were never counted). What the link carried then is lost (NATS is at most
// once); a link cut and restored before peer_timeout showed nowhere else
// (Stats.Disconnects counted a lost nats_url connection only).
func linkClosed(msg string) bool {
	if !strings.Contains(msg, "Leafnode connection closed: ") && !strings.Contains(msg, "Router connection closed: ") {
		return false
	}
	return strings.Contains(msg, " - Remote: ") && !strings.Contains(msg, "Duplicate") && !strings.Contains(msg, "Server Shutdown")
}

// linkRemote is the other server's name (a node's, ServerName) in a
// notice linkClosed took.
func linkRemote(msg string) string {
	_, r, _ := strings.Cut(msg, " - Remote: ")
	r, _, _ = strings.Cut(r, ",")
	return strings.TrimSpace(r)
}

// linkLeaveGrace is how long a link's close waits, before it is counted
// lost, for the goodbye of the node at its other end (linkLost).
const linkLeaveGrace = 2 * time.Second

// linkLost counts a route or leaf link to remote that closed in
// Stats.Disconnects (edgewamp_mesh_nats_disconnects_total), unless this
// node is stopping or remote said goodbye (Shutdown) within
// linkLeaveGrace of the close: a node that leaves cleanly loses nothing
// on its links, and its neighbours forget it without counting it lost;
// before, each of its links' closes counted on them (a route's pool of
// connections one each), so every rolling restart or edge switched off
// raised the count that says a link was lost with what it carried. The
// goodbye goes before the links close, but it reaches the control
// dispatcher on its own time, so the count waits for it.
func (n *Node) linkLost(remote string) {
	if n.stopped.Load() {
		return
	}
	at := time.Now()
	time.AfterFunc(linkLeaveGrace, func() {
		if n.stopped.Load() || n.leftAround(remote, at) {
			return
		}
		n.stats.Disconnects.Add(1)
	})
}

// leftKeep is how long a node's goodbye stands for its links' closes that
// come after it (linkLost), unless the node is heard again (forgetLeft):
// it goes before them by as long as the node's Shutdown takes (its
// claims' releases, its last flush, its server's stop), over
// linkLeaveGrace on a loaded host, where the neighbour then counted them
// (TestSlowCleanLeaveNotCountedAsDisconnect).
const leftKeep = 30 * time.Second

// noteLeft records that the node name said goodbye, for linkLost. Its
// records last leftKeep. Control dispatcher only (the lock is
// linkLost's timers').
func (n *Node) noteLeft(name string, boot uint64) {
	now := time.Now()
	n.lmu.Lock()
	defer n.lmu.Unlock()
	for k, r := range n.left {
		if now.Sub(r.at) > leftKeep {
			delete(n.left, k)
		}
	}
	if n.left == nil {
		n.left = make(map[string]leftRec)
	}
	n.left[name] = leftRec{at: now, boot: boot}
}

// leftRec is a node's goodbye: when it came, and the life that said it.
type leftRec struct {
	at   time.Time
	boot uint64
	// again is when another life of the node was first heard since
	// (forgetLeft): a link that closes after it is that life's.
	again time.Time
}

// forgetLeft ends the goodbye of the node name for its links closing from
// now when boot, a life of it heard now, is another than the one that
// said it (restarted): those closes count again. A late heartbeat of the
// life that left changes nothing. Control dispatcher.
func (n *Node) forgetLeft(name string, boot uint64) {
	n.lmu.Lock()
	defer n.lmu.Unlock()
	if r, ok := n.left[name]; ok && r.boot != boot && r.again.IsZero() {
		r.again = time.Now()
		n.left[name] = r
	}
}

// leftAround reports whether the node name said goodbye since leftKeep
// before at, and no other life of it was heard before at.
func (n *Node) leftAround(name string, at time.Time) bool {
	n.lmu.Lock()
	defer n.lmu.Unlock()
	r, ok := n.left[name]
	return ok && r.at.After(at.Add(-leftKeep)) && (r.again.IsZero() || r.again.After(at))
}

// routine are the NATS server's warnings that are part of the normal life
// of a mesh (a cluster forming, a peer restarting); they are logged at
// info level.
var routine = []string{
	"Maximum payloads over", // deliberate: a WAMP message may be 16 MiB
	"Waiting for routing to be established",
	"JetStream has not established contact with a meta leader",
	"Metalayer blocking snapshot",
	"Error trying to connect to route",
	"Error trying to connect as leafnode",
	"JetStream cluster no metadata leader",
	"Healthcheck failed",
	// The users of a mesh without a credential (startServer): their
	// passwords live in this process's memory only.
	"Plaintext passwords detected",
}

func (g natsLogger) log(level slog.Level, msg string) {
	for _, r := range routine {
		if strings.Contains(msg, r) {
			level = slog.LevelInfo
			break
		}
	}
	var attrs []any
	if level >= slog.LevelWarn && g.lim != nil {
		ok, withheld := g.lim.allow(msg, time.Now())
		if !ok {
			return
		}
		if withheld > 0 {
			attrs = append(attrs, "withheld", withheld)
		}
	}
	for _, h := range natsHints {
		if strings.Contains(msg, h.text) {
			attrs = append(attrs, "fix", h.fix)
			break
		}
	}
	g.l.Log(context.Background(), level, "nats: "+msg, attrs...)
}

// natsHints name the edgewamp setting behind an embedded server's
// complaint about the configuration, which names NATS's own.
var natsHints = []struct{ text, fix string }{
	// A cluster of edges dialling a hub cluster: NATS refuses a leaf
	// link between two clusters of one name, and retries it every 30 s
	// (TestLeafClusterNameClashSaysWhichKey).
	{"same cluster name", "the cluster this node dials as a leaf has this node's mesh.cluster.name (default edgewamp): give each cluster of the mesh a name of its own"},
	// A node whose credential the node it dials refuses (a leaf link, a
	// route): another token or nkey, none to a node that has one, or one
	// to a node without (which refuses it: README says both or neither).
	// NATS retries the link every second and joins nothing; its line
	// named no setting (TestLeafCredentialRefusedSaysWhichKey).
	{"Error 'Authorization Violation'", "the node this one dials refused its credential: give every node of the mesh the same mesh.credentials (token or nkey seed), or none to all (a node without one refuses a node that presents one)"},
}

// The embedded server's warnings are spaced: each text at most once per
// natsLogEvery, and at most natsLogLines lines per natsLogEvery in all;
// the next line written says how many were withheld (a count left when
// no line follows is lost). The server warns once per connection a peer
// without the mesh's credential makes to a route or leaf port
// ("authentication error", "TLS leafnode handshake error", with the
// peer's address), so whoever reaches those ports wrote a line per
// connection, at the rate it connected (TestNatsWarningsRateLimited:
// 160 connections, 160 lines). A text is compared without the
// connection's address and id, which the server puts first. A text the
// peer varies (the user it names, the bytes of a parser error) is
// bounded by peer: one address (an IPv6 /64) writes at most
// natsLogPerPeer lines per window, and the lines about connections at
// most natsLogLines-natsLogServer in all, so that the server's own lines
// (no connection named) keep natsLogServer of the window. Before, one
// address that varied the user names of its refused CONNECTs took the
// whole window, and every other warning, another peer's refusal or the
// server's own, was withheld for as long as it kept connecting
// (TestNatsWarningsOnePeerCannotSilenceOthers).
const (
	natsLogEvery   = 10 * time.Second
	natsLogLines   = 20
	natsLogPerPeer = 4
	natsLogServer  = 5
)

var natsConnPrefix = regexp.MustCompile(`^(\S+) - [a-z-]+:\d+ - `)

// natsLogKey is a server line without its connection's address and id.
func natsLogKey(msg string) string { return natsConnPrefix.ReplaceAllLiteralString(msg, "") }

// natsLogPeer is the address (an IPv6 address's /64) of the connection a
// server line is about, "" for a line about no connection.
func natsLogPeer(msg string) string {
	m := natsConnPrefix.FindStringSubmatch(msg)
	if m == nil {
		return ""
	}
	ap, err := netip.ParseAddrPort(m[1])
	if err != nil {
		return m[1]
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// natsLogLimit is natsLogger's spacing; the zero value is ready.
type natsLogLimit struct {
	mu        sync.Mutex
	start     time.Time            // the window's start
	lines     int                  // written in the window
	peerLines int                  // of them, about a connection
	last      map[string]time.Time // when each text was last written, within the window
	peers     map[string]int       // lines written per peer (natsLogPeer) in the window
	withheld  int                  // since the last line written
}

// allow reports whether the server line msg may be written at now, and
// how many were withheld since the last one written.
func (l *natsLogLimit) allow(msg string, now time.Time) (bool, int) {
	key, peer := natsLogKey(msg), natsLogPeer(msg)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil || now.Sub(l.start) >= natsLogEvery {
		// A new window: the texts of the last one may be written again
		// (the maps hold at most natsLogLines entries).
		l.start, l.lines, l.peerLines, l.last, l.peers = now, 0, 0, make(map[string]time.Time, natsLogLines), nil
	}
	_, seen := l.last[key]
	if seen || l.lines >= natsLogLines || peer != "" && (l.peerLines >= natsLogLines-natsLogServer || l.peers[peer] >= natsLogPerPeer) {
		l.withheld++
		return false, 0
	}
	if peer != "" {
		if l.peers == nil {
			l.peers = make(map[string]int)
		}
		l.peers[peer]++
		l.peerLines++
	}
	l.last[key] = now
	l.lines++
	w := l.withheld
	l.withheld = 0
	return true, w
}

// redactURLs returns a NATS URL list (comma-separated) for a log line,
// each URL's password (or token: nats://TOKEN@host) replaced by xxxxx.
func redactURLs(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			if _, ok := u.User.Password(); !ok {
				u.User = url.User("xxxxx")
			}
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// markStarted records that Start succeeded (startedAt).
func (n *Node) markStarted() { n.startedAt.Store(n.mono()) }

// mono returns the node's clock for intervals: the nanoseconds since New
// by time.Time.Sub, which takes time.Now's monotonic readings, plus one
// (never 0, which stands for "not yet"). Before, the start (startedAt)
// and the twins' last heartbeats (heardTwin) were time.Now's UnixNano, the
// wall clock: a step of the system clock (NTP's first sync on a board
// without a real-time clock, date -s, a VM resumed) back by more than the
// node's uptime made every gather wait for its GatherTimeout and count as
// incomplete, a node report an unheard node, and a twin be taken for
// alive (its single registrations refused here), for the step's length;
// a step forward ended the start-up waits at once
// (TestStartupJudgementsIgnoreWallClockSteps). Safe for concurrent use.
func (n *Node) mono() int64 { return int64(n.now().Sub(n.epoch)) + 1 }

// since returns the time since at, a reading of mono.
func (n *Node) since(at int64) time.Duration { return time.Duration(n.mono() - at) }
