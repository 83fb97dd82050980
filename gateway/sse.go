package gateway

import (
	"bytes"
	"errors"
	"math"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Server-Sent Events: GET /wamp/{realm}/events/{topic} turns a WAMP
// subscription into a text/event-stream, one SSE event per WAMP EVENT:
//
//	id: 4418373849153540
//	data: {"topic":"com.example.news","publication":4418373849153540,"args":["hello"],"kwargs":{}}
//
// The id is the publication id, so that a reconnecting EventSource sends
// it back as Last-Event-ID; the gateway then asks for the topic's retained
// event and delivers it unless it is the one the client already had.
//
// Streams of one principal share its sessions, and streams of one session
// on one topic share one WAMP subscription: the gateway fans an EVENT out
// to them on the shard's goroutine, where each stream takes a reference to
// one immutable frame. Each stream's queue of live events is bounded
// (Limits.SSEBuffer bytes; Limits.SSEQueue frames preallocated, the
// others in stream.over; the retained events it asked for by the SSE
// total only); a client that reads
// more slowly than events arrive is cut (its stream ends), never buffered
// without limit, and
// a write that makes no progress for Limits.WriteTimeout ends the stream
// too.

// eventFrame is one EVENT ready to go: the SSE frame, whose data line is
// the JSON document webhooks post. Immutable once built; shared by every
// sink of the event.
type eventFrame struct {
	pub      uint64
	retained bool
	sse      []byte       // "id: N\ndata: {...}\n\n"
	json     []byte       // sub-slice of sse: the {...}
	queues   atomic.Int32 // SSE streams' queues holding it (sseBudget)
}

// sink receives the events of a subscription. Its methods run on the
// shard's goroutine and never block.
type sink interface {
	push(f *eventFrame)
	gone(why *problem) // the router ended the subscription or the session; why says so, for an SSE client
}

// subEntry is one WAMP subscription of a session and its sinks. Owned by
// shard.
type subEntry struct {
	uri   string
	sinks []sink
	// awaiting are the sinks whose get_retained SUBSCRIBE's retained
	// events have not all come, oldest first: the router sends each
	// SUBSCRIBE's, in order, possibly after SUBSCRIBED (a walk budget, a
	// mesh's gather), and says where they end (RetainedSent). Retained
	// events go to the first only.
	awaiting []sink
}

// buildEvent renders an EVENT. Owned by shard (m is the decoded message).
func buildEvent(m *proto.Message, topic []byte) *eventFrame {
	id := strconv.AppendUint(nil, m.ID2, 10)
	n := 32 + 2*len(id) + len(topic) + len(m.Args.B) + len(m.Kwargs.B)
	b := make([]byte, 0, n+96)
	b = append(b, "id: "...)
	b = append(b, id...)
	b = append(b, "\ndata: "...)
	start := len(b)
	b = append(b, `{"topic":`...)
	b = appendJSONString(b, string(topic))
	b = append(b, `,"publication":`...)
	b = append(b, id...)
	b = append(b, ',')
	b = appendPayload(b, m.Args.B, m.Kwargs.B)
	if pub := m.Opt.Uint(proto.KeyPublisher); pub != 0 {
		b = append(b, `,"publisher":`...)
		b = strconv.AppendUint(b, pub, 10)
		b = append(b, `,"publisher_authid":`...)
		b = appendJSONString(b, m.Opt.String(proto.KeyPublisherAuthID))
		b = append(b, `,"publisher_authrole":`...)
		b = appendJSONString(b, m.Opt.String(proto.KeyPublisherAuthRole))
	}
	for _, k := range pptKeys {
		// Payload passthru mode (or Autobahn's E2EE): the router sends
		// such an EVENT to every subscriber, the gateway's sessions
		// included, which do not announce the feature. Its args are the
		// passthru payload (ppt_serializer's bytes, maybe encrypted),
		// not the publication's arguments: the document says so with
		// the keys, as the EVENT's Details do, so that a client can
		// decode it or tell it apart.
		if v := m.Opt.Str(k); v != nil {
			b = append(b, ',')
			b = appendJSONString(b, k.Name())
			b = append(b, ':')
			b = appendJSONString(b, string(v))
		}
	}
	retained := m.Opt.Bool(proto.KeyRetained, false)
	if retained {
		b = append(b, `,"retained":true`...)
	}
	b = append(b, '}')
	end := len(b)
	b = append(b, "\n\n"...)
	return &eventFrame{pub: m.ID2, retained: retained, sse: b, json: b[start:end]}
}

// pptKeys are the EVENT Details that say its payload is in payload
// passthru mode, copied into the event's document (buildEvent).
var pptKeys = [...]proto.Key{proto.KeyPPTScheme, proto.KeyPPTSerializer, proto.KeyPPTCipher, proto.KeyPPTKeyID, proto.KeyEncAlgo, proto.KeyEncSerializer}

// appendPayload appends "args":[...],"kwargs":{...} (empty ones when
// absent). Raw CR and LF bytes can only be JSON whitespace (a JSON
// publisher's payload passes through as it was sent); they are dropped so
// that the document stays on one SSE data line.
func appendPayload(b, args, kwargs []byte) []byte {
	b = append(b, `"args":`...)
	if len(args) > 0 {
		b = appendOneLine(b, args)
	} else {
		b = append(b, "[]"...)
	}
	b = append(b, `,"kwargs":`...)
	if len(kwargs) > 0 {
		b = appendOneLine(b, kwargs)
	} else {
		b = append(b, "{}"...)
	}
	return b
}

func appendOneLine(b, v []byte) []byte {
	if bytes.IndexByte(v, '\n') < 0 && bytes.IndexByte(v, '\r') < 0 {
		return append(b, v...)
	}
	for _, c := range v {
		if c != '\n' && c != '\r' {
			b = append(b, c)
		}
	}
	return b
}

// event handles an EVENT. Owned by shard.
func (s *sess) event(m *proto.Message) {
	e := s.subs[m.ID]
	if e == nil {
		return
	}
	f := s.frame
	if f == nil || f.pub != m.ID2 || f.retained != m.Opt.Bool(proto.KeyRetained, false) {
		topic := m.Opt.Str(proto.KeyTopic)
		if topic == nil {
			topic = []byte(e.uri)
		}
		f = buildEvent(m, topic)
		s.keepFrame(f)
	}
	if f.retained {
		// Retained events are replayed to a new subscriber after its
		// SUBSCRIBE: only the sink that asked gets them.
		if len(e.awaiting) > 0 && e.awaiting[0] != nil {
			e.awaiting[0].push(f)
		}
		return
	}
	for _, k := range e.sinks {
		k.push(f)
	}
}

// keepFrame remembers f as the session's last frame. The router sends a
// publication to each of the session's subscriptions that match it, one
// EVENT after the other, and they render to the same frame (the
// subscription id is not in it): the session's streams share one frame
// whatever their patterns, so that a client whose many streams all match
// one topic does not make the gateway copy each publication once per
// stream, on the event loop. A large frame is let go once the publication's
// deliveries are over (the job runs after them), so that an idle session
// holds no large payload. Owned by shard.
func (s *sess) keepFrame(f *eventFrame) {
	s.frame = f
	if len(f.sse) >= keptFrameMax {
		s.q.post(func() {
			if s.frame == f {
				s.frame = nil
			}
		})
	}
}

// keptFrameMax: a frame at least this large is not kept past its
// publication's deliveries.
const keptFrameMax = 16 << 10

// revoked handles a router-initiated UNSUBSCRIBED. Owned by shard.
func (s *sess) revoked(m *proto.Message) {
	id, reason := revocationOf(m)
	if e := s.subs[id]; e != nil {
		delete(s.subs, id)
		if reason == "" {
			reason = proto.URIUnavailable
		}
		why := s.g.wampProblem(reason, nil, nil, nil)
		why.detail = "the router took the subscription away (" + reason + ")"
		for _, k := range e.sinks {
			k.gone(why)
		}
	}
	if s.onRevoke != nil {
		s.onRevoke(s, reason)
	}
}

// revocationOf reads a router-initiated UNSUBSCRIBED or UNREGISTERED:
// [UNSUBSCRIBED, 0, {"subscription": id, "reason": uri}] (or
// "registration"), WAMP Advanced Profile, Subscription and Registration
// Revocation.
func revocationOf(m *proto.Message) (id uint64, reason string) {
	d, _ := proto.DecodeValue(m.Dict)
	dm, _ := d.(map[string]any)
	n, ok := dm["subscription"].(int64)
	if !ok {
		n, _ = dm["registration"].(int64)
	}
	reason, _ = dm["reason"].(string)
	return uint64(n), reason
}

// RetainedSent implements route.RetainedPeer: the retained events of the
// oldest get_retained SUBSCRIBE of subscription id have all come. Owned by
// shard.
func (s *sess) RetainedSent(id uint64) {
	if e := s.subs[id]; e != nil && len(e.awaiting) > 0 {
		e.awaiting[0] = nil
		e.awaiting = e.awaiting[1:]
	}
}

// subscribe attaches k to a subscription of uri (sharing the session's
// existing one) and returns the router's answer. client is the HTTP
// client's address (http.Request.RemoteAddr) of an event stream, "" for
// a webhook: a wildcard pattern it makes counts in that address's share
// of the realm's wildcard walk (route.Shard.ReceiveMessageFrom), so that
// one client's streams, over whichever pooled sessions and principals,
// cannot shut every other client out of patterns of their length, as
// when the gateway's sessions all counted as one. Owned by shard.
func (s *sess) subscribe(k sink, uri string, match proto.Match, retained bool, client string) (*syncReply, uint64) {
	if s.closed {
		return &syncReply{done: true, typ: proto.CodeError, err: proto.URIUnavailable, detail: "the gateway's WAMP session closed"}, 0
	}
	m := &s.out
	m.Reset()
	m.Type = proto.CodeSubscribe
	m.Request = s.nextReq()
	m.URI = []byte(uri)
	if match != proto.MatchExact {
		m.Opt.SetString(proto.KeyMatch, match.String())
	}
	if retained {
		m.Opt.SetBool(proto.KeyGetRetained, true)
	}
	var subID uint64
	r := s.requestFrom(m, func(id uint64) {
		subID = id
		if s.subs == nil {
			s.subs = map[uint64]*subEntry{}
		}
		e := s.subs[id]
		if e == nil {
			e = &subEntry{uri: uri}
			s.subs[id] = e
		}
		e.sinks = append(e.sinks, k)
		if retained {
			e.awaiting = append(e.awaiting, k)
		}
	}, false, client, nil)
	return r, subID
}

// unsubscribe detaches k; the WAMP subscription goes with its last sink.
// Owned by shard.
func (s *sess) unsubscribe(k sink, id uint64) {
	e := s.subs[id]
	if e == nil {
		return
	}
	for i, x := range e.sinks {
		if x == k {
			e.sinks = append(e.sinks[:i], e.sinks[i+1:]...)
			break
		}
	}
	for i, x := range e.awaiting {
		if x == k {
			e.awaiting[i] = nil // its retained events are still to come: dropped
			break
		}
	}
	if len(e.sinks) > 0 || s.closed {
		return
	}
	delete(s.subs, id)
	m := &s.out
	m.Reset()
	m.Type = proto.CodeUnsubscribe
	m.Request = s.nextReq()
	m.ID = id
	s.request(m, nil, false)
}

// sseBudget bounds the bytes queued to all SSE clients
// (Limits.SSEBufferTotal): the events of event streams and the progressive
// results of calls streamed as SSE, queued or being written (a streamed
// call's final event too, while it is written). Streams share frames, so a frame
// counts once, while any queue holds it: a publication fanned out to
// thousands of streams that keep up costs its size, not thousands of times
// it. Past the bound, the queues whose clients stopped reading are cut
// (reap), until the total is back under three quarters of it: each
// queue's own bound (Limits.SSEBuffer) times Limits.MaxStreams would
// otherwise let a client whose thousand streams read a trickle each hold a
// gigabyte.
type sseBudget struct {
	bytes   atomic.Int64
	small   atomic.Int64 // of bytes: plain answers under writeChunk being written, which the reaper does not see (countSmall)
	reaping atomic.Bool
	lastRun atomic.Int64 // when the last reap began (nanos: Server.nanos)
	pending atomic.Bool  // a reap is scheduled by scheduleReap
	mu      sync.Mutex
	queues  map[sseQueue]struct{} // open event streams and streamed calls; guarded by mu
	cuts    atomic.Uint64         // queues cut for the total
}

// sseQueue is what the reaper sees of an SSE client's queue: an event
// stream or a call streaming progressive results.
type sseQueue interface {
	// held: the bytes queued or being written, the entries waiting, and
	// when the handler's current write or flush began (nanos:
	// Server.nanos; 0 between them).
	held() (n int64, waiting int, writeSince int64)
	// cutForTotal cuts the client: its queue let go at once, a blocked
	// write ended; false if it was cut before.
	cutForTotal() bool
}

func (g *Server) addQueue(q sseQueue) {
	g.sse.mu.Lock()
	if g.sse.queues == nil {
		g.sse.queues = map[sseQueue]struct{}{}
	}
	g.sse.queues[q] = struct{}{}
	g.sse.mu.Unlock()
}

func (g *Server) removeQueue(q sseQueue) {
	g.sse.mu.Lock()
	delete(g.sse.queues, q)
	g.sse.mu.Unlock()
}

// addSSEBytes counts n more bytes queued to an SSE client and has the
// reaper run when the total passes its bound (scheduleReap); it returns
// the total.
func (g *Server) addSSEBytes(n int64) int64 {
	t := g.sse.bytes.Add(n)
	if t > g.opts.Limits.SSEBufferTotal {
		g.scheduleReap()
	}
	return t
}

// scheduleReap starts a reaper now, or reapEvery after the last one
// began (one timer at a time). Before, a push past the bound within
// reapEvery of a run started none: when that run had found the total
// under the bound (and so scheduled no next one), nothing reaped until
// another push, and a client that stopped reading held what it had until
// Limits.WriteTimeout, past the bound.
func (g *Server) scheduleReap() {
	wait := reapEvery - time.Duration(g.nanos()-g.sse.lastRun.Load())
	if wait <= 0 {
		g.startReap()
		return
	}
	if g.sse.pending.CompareAndSwap(false, true) {
		time.AfterFunc(wait, func() {
			g.sse.pending.Store(false)
			g.startReap()
		})
	}
}

// reapEvery spaces the reaper's runs: a push past the bound starts one at
// most this often (each walks every open SSE client; a push sooner
// schedules one), and a run that
// leaves the total past the bound runs again after it by itself, for
// clients that become stuck while nothing is pushed.
const reapEvery = 20 * time.Millisecond

func (g *Server) startReap() {
	if g.sse.reaping.CompareAndSwap(false, true) {
		go g.reapQueues()
	}
}

// hold counts f as queued once more; the first queue to hold it adds its
// bytes.
func (g *Server) holdFrame(f *eventFrame) {
	if f.queues.Add(1) == 1 {
		g.addSSEBytes(int64(len(f.sse)))
	}
}

// releaseFrame undoes holdFrame; the last queue to let f go takes its
// bytes out.
func (g *Server) releaseFrame(f *eventFrame) {
	if f.queues.Add(-1) == 0 {
		g.sse.bytes.Add(-int64(len(f.sse)))
	}
}

// reapQueues cuts SSE clients until the total is under three quarters of
// the bound. One runs at a time.
func (g *Server) reapQueues() {
	g.sse.lastRun.Store(g.nanos())
	limit := g.opts.Limits.SSEBufferTotal
	defer func() {
		g.sse.reaping.Store(false)
		if g.sse.bytes.Load() > limit {
			time.AfterFunc(reapEvery, g.startReap)
		}
	}()
	if g.sse.bytes.Load() <= limit {
		return
	}
	// Candidates: first the clients that stopped taking bytes (a write or
	// flush blocked for stuckAfter or more; the longest first), then, when
	// the total is past the bound by a quarter more (the stuck ones have
	// not been seen yet, or the clients read but too slowly), those with two
	// entries or more waiting (the most bytes first). A client that keeps
	// up (its writes return, at most one entry waiting) is never cut for
	// the total, which it passes by one entry at most.
	pressed := g.sse.bytes.Load() > limit+limit/4
	type held struct {
		q     sseQueue
		n     int64
		since int64 // when its blocked write began; MaxInt64 when not stuck
	}
	now := g.nanos()
	g.sse.mu.Lock()
	list := make([]held, 0, len(g.sse.queues))
	for q := range g.sse.queues {
		n, waiting, since := q.held()
		if n <= 0 {
			continue
		}
		if since == 0 || now-since < int64(stuckAfter) {
			if waiting < 2 || !pressed {
				continue
			}
			since = math.MaxInt64
		}
		list = append(list, held{q, n, since})
	}
	g.sse.mu.Unlock()
	sort.Slice(list, func(i, j int) bool {
		if list[i].since != list[j].since {
			return list[i].since < list[j].since
		}
		return list[i].n > list[j].n
	})
	excess := g.sse.bytes.Load() - limit*3/4
	cut := 0
	for _, h := range list {
		if excess <= 0 {
			break
		}
		if h.q.cutForTotal() {
			g.sse.cuts.Add(1)
			cut++
		}
		excess -= h.n
	}
	if cut > 0 {
		g.log.Warn("gateway: SSE clients cut: the bytes queued to all of them passed gateway.limits.sse_buffer_total",
			"cut", cut, "queued", g.sse.bytes.Load(), "limit", limit)
	}
}

// held counts the frame its handler is writing with those queued: with
// nothing queued (a frame larger than Limits.SSEBuffer, taken into the
// empty queue, or the last before a cut as a slow reader) a write blocked
// on a client that takes nothing holds it until Limits.WriteTimeout, and
// the reaper has to see it to end that write.
func (st *stream) held() (int64, int, int64) {
	return st.queued.Load() + st.writing.Load(), len(st.ch) + int(st.overN.Load()), st.writeSince.Load()
}

func (st *stream) cutForTotal() bool {
	st.mu.Lock()
	first := st.cutSlow()
	st.dropLocked()
	st.mu.Unlock()
	// Its handler may be blocked in a write to a client that takes
	// nothing: end that write now, so that the frame goes too.
	if wg := st.gate.Load(); wg != nil {
		wg.end()
	}
	return first
}

// errCutForTotal ends the handler of an SSE client cut for the SSE total.
var errCutForTotal = errors.New("gateway: cut for gateway.limits.sse_buffer_total")

// stuckAfter: a stream whose write or flush has been blocked this long is
// taken for one whose client stopped reading, when the total is past its
// bound.
const stuckAfter = 100 * time.Millisecond

// stream is one SSE client: a sink with a bounded queue that an HTTP
// goroutine drains.
type stream struct {
	g      *Server
	ch     chan *eventFrame
	queued atomic.Int64 // bytes in ch
	max    int64        // static: Limits.SSEBuffer
	lastID uint64       // static: Last-Event-ID, skipped when replayed as retained
	once   sync.Once
	cut    chan struct{} // closed when the stream must end
	slow   atomic.Bool   // it ended because the client was slow
	// lost: why the router ended its subscription or session (gone), for
	// its last event.
	lost atomic.Pointer[problem]
	// writeSince: when the handler's current write or flush began
	// (nanos: Server.nanos), 0 between them; the reaper cuts the streams
	// blocked longest first.
	writeSince atomic.Int64
	writing    atomic.Int64              // bytes of the frame the handler is writing, 0 between writes
	gate       atomic.Pointer[writeGate] // the handler's, once it writes
	mu         sync.Mutex                // orders push with close
	closed     bool                      // guarded by mu: no more frames (close)
	// over holds, in order after those in ch, the frames that did not
	// fit ch (guarded by mu; overN is its length, for held): a burst of
	// live events, held to Limits.SSEBuffer bytes (not counting the
	// replay's: retBytes), and the retained events the client asked for,
	// held to the SSE total only. The router delivers a read's worth of
	// PUBLISHes, and a subscription's retained events, in one turn of its
	// event loop, faster than any client is written to: a burst of more
	// than SSEQueue small events from one publisher (2,000 of them, 60 KB
	// in one write) cut every stream of its topic as a slow reader,
	// however promptly it read, and a prefix with more retained topics
	// than SSEQueue every stream that asked for them, again at each
	// reconnect (Last-Event-ID asks for them). Each entry costs the SSE
	// total overCost (the frames are counted once for every stream that
	// shares them); a retained frame goes to the one stream that asked,
	// so the total counts the replay as the stream does, and its reaper
	// cuts the clients that do not read; one stream's replay is at most
	// that total.
	over     []*eventFrame
	overN    atomic.Int32
	more     chan struct{} // capacity 1: over has frames for the handler
	retBytes atomic.Int64
}

func newStream(g *Server, lastID uint64) *stream {
	st := &stream{g: g, ch: make(chan *eventFrame, g.opts.Limits.SSEQueue), max: int64(g.opts.Limits.SSEBuffer), lastID: lastID, cut: make(chan struct{}), more: make(chan struct{}, 1)}
	g.addQueue(st)
	return st
}

// close ends the stream's queue when its handler returns.
func (st *stream) close() {
	st.g.removeQueue(st)
	st.stop()
}

// stop ends the stream at once (its grant's stop, and close): nothing
// more is queued to it, and its handler ends it.
func (st *stream) stop() {
	st.mu.Lock()
	st.dropLocked()
	st.mu.Unlock()
	st.end()
}

// dropLocked lets the frames still queued go, and makes a later push queue
// nothing: the stream ended or is cut (the frame its handler is writing,
// if any, goes when the write returns). st.mu is held.
func (st *stream) dropLocked() {
	st.closed = true
	for {
		select {
		case f := <-st.ch:
			st.taken(f)
			st.g.releaseFrame(f)
			continue
		default:
		}
		break
	}
	for i, f := range st.over {
		st.taken(f)
		st.g.releaseFrame(f)
		st.g.sse.bytes.Add(-overCost)
		st.over[i] = nil
	}
	st.over = nil
	st.overN.Store(0)
}

// taken counts f out of the stream's queue (ch or over): the handler took
// it to write it, or the queue let it go.
func (st *stream) taken(f *eventFrame) {
	n := int64(len(f.sse))
	st.queued.Add(-n)
	if f.retained {
		st.retBytes.Add(-n)
	}
}

// overCost is what an entry of a stream's over costs the SSE total, on
// top of its frame's bytes, which the total counts once for all the
// streams that share it: the entry's pointer and the slice's room to
// grow. Without it, streams that do not read, sharing small frames,
// would hold their entries (up to Limits.SSEBuffer of frames each) at no
// cost to the total.
const overCost = 16

// next returns the next queued frame, nil when none waits: ch's first,
// then over's (a frame goes to over only while over holds some or ch is
// full, so ch's are the older ones).
func (st *stream) next() *eventFrame {
	select {
	case f := <-st.ch:
		return f
	default:
	}
	if st.overN.Load() == 0 {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	select {
	case f := <-st.ch:
		return f
	default:
	}
	if len(st.over) == 0 {
		return nil
	}
	f := st.over[0]
	st.over[0] = nil
	st.over = st.over[1:]
	if len(st.over) == 0 {
		st.over = nil
	}
	st.overN.Store(int32(len(st.over)))
	st.g.sse.bytes.Add(-overCost)
	return f
}

// overflow queues f in over, after every frame in ch, and wakes the
// handler. st.mu is held.
func (st *stream) overflow(f *eventFrame) {
	st.over = append(st.over, f)
	st.overN.Store(int32(len(st.over)))
	st.g.addSSEBytes(overCost)
	select {
	case st.more <- struct{}{}:
	default:
	}
}

func (st *stream) push(f *eventFrame) {
	if f.retained && f.pub == st.lastID {
		return // the client has it
	}
	n := int64(len(f.sse))
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return
	}
	if f.retained {
		// The replay the client asked for: bounded by the SSE total, not
		// by the stream's own bounds (see over).
		if q := st.queued.Load(); q > 0 && q+n > st.g.opts.Limits.SSEBufferTotal {
			if st.cutSlow() {
				st.g.sse.cuts.Add(1)
			}
			st.dropLocked()
			return
		}
		st.queued.Add(n)
		st.retBytes.Add(n)
		st.enqueue(f)
		return
	}
	// Bounded in bytes (Limits.SSEBuffer), but one frame always fits an
	// empty queue, as a streamed call's progressive result and a
	// webhook's event do: an event larger than the bound (a WAMP message
	// may be up to 16 MiB) would otherwise cut every stream of its topic
	// as a slow reader, however promptly it reads, and, retained, every
	// reconnect (Last-Event-ID) again. The SSE total bounds what such
	// frames hold gateway-wide (held, reapQueues).
	if q := st.queued.Add(n) - st.retBytes.Load(); q > st.max && q != n {
		st.queued.Add(-n)
		st.cutSlow()
		st.dropLocked()
		return
	}
	st.enqueue(f)
}

// enqueue holds f and queues it in ch, or in over behind what waits there
// already: ch is full (a burst: the router delivers a read's worth of
// PUBLISHes, or a replay, in one turn of its event loop, faster than any
// client is written to) or over has frames, which must go first. st.mu
// is held; push has counted f against the stream's bounds.
func (st *stream) enqueue(f *eventFrame) {
	st.g.holdFrame(f)
	if len(st.over) == 0 {
		select {
		case st.ch <- f:
			return
		default:
		}
	}
	st.overflow(f)
}

// cutSlow ends the stream for a client that reads too slowly; false if it
// was cut so before.
func (st *stream) cutSlow() bool {
	first := st.slow.CompareAndSwap(false, true)
	if first {
		st.g.metrics.sseCut.Add(1)
	}
	st.end()
	return first
}

func (st *stream) gone(why *problem) {
	st.lost.CompareAndSwap(nil, why)
	st.end()
}

// endedBy returns the problem that says why the stream ended, for its
// last event, once it is cut (gr is its grant): its credential no longer
// authorizes it, its client read too slowly, or the router ended its
// subscription or session. Nil when its handler ends it for another
// reason (its client left, the gateway drains).
func (st *stream) endedBy(gr *grant) *problem {
	if p := gr.ended(); p != nil {
		return p
	}
	if st.slow.Load() {
		return newProblem(http.StatusServiceUnavailable, URISlowReader, "events arrived faster than the client read them; the stream was cut")
	}
	return st.lost.Load()
}

func (st *stream) end() { st.once.Do(func() { close(st.cut) }) }

// writeQueued writes f and whatever else is queued (up to a batch), then
// flushes once: a stream that fell behind catches up with one write per
// batch instead of one per event.
func (st *stream) writeQueued(sw *sseWriter, f *eventFrame) error {
	sw.gate.set(sw.deadline())
	for n := 0; ; n++ {
		select {
		case <-st.cut:
			// Cut meanwhile: nothing more is written to it.
			st.taken(f)
			st.g.releaseFrame(f)
			return errCutForTotal
		default:
		}
		st.taken(f)
		st.writing.Store(int64(len(f.sse)))
		st.writeSince.Store(st.g.nanos())
		_, err := sw.w.Write(f.sse)
		st.writeSince.Store(0)
		st.writing.Store(0)
		st.g.releaseFrame(f)
		if err != nil {
			return err
		}
		if n == 63 {
			break
		}
		if f = st.next(); f != nil {
			continue
		}
		break
	}
	if st.overN.Load() > 0 {
		// More of over for the next batch: the handler's select takes it.
		select {
		case st.more <- struct{}{}:
		default:
		}
	}
	return sw.flush()
}

// sseWriter writes SSE frames with a deadline per write.
type sseWriter struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	gate *writeGate // the response's write deadline, which a cut ends for good
	d    time.Duration
	// since is its stream's or call's writeSince (sseQueue.held), set
	// while a write or a flush is in progress (0 between them): a client
	// that stopped reading blocks a flush as well as a write (an event
	// that went into net/http's buffer, a keepalive), and its queue, empty
	// then, takes one event larger than Limits.SSEBuffer, which the SSE
	// total's reaper has to see as held by a stuck client.
	since *atomic.Int64
	nanos func() int64 // the clock of since: Server.nanos
	// draining is the gateway's Server.draining for an event stream's
	// writer (nil for a streamed call's, which the drain waits for):
	// once it is closed, a write has drainEventTimeout (deadline).
	draining <-chan struct{}
}

// deadline returns the write deadline of a write beginning now: sw.d
// from now, at most drainEventTimeout once an event stream's gateway
// drains (Drain ends the writes in progress then: endStreamWrites).
func (sw *sseWriter) deadline() time.Time {
	select {
	case <-sw.draining:
		return time.Now().Add(min(sw.d, drainEventTimeout))
	default:
		return time.Now().Add(sw.d)
	}
}

// setSSEHeaders sets an event stream's header fields (its HEAD's too).
func setSSEHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
}

// headStream answers the HEAD of an event stream, or of a call streamed
// as one, with status and the stream's header fields.
func headStream(w http.ResponseWriter, status int) {
	setSSEHeaders(w.Header())
	w.WriteHeader(status)
}

func newSSEWriter(g *Server, w http.ResponseWriter, d time.Duration, since *atomic.Int64) *sseWriter {
	setSSEHeaders(w.Header())
	rc := http.NewResponseController(w)
	// The request is read: no read deadline from here on (net/http would
	// otherwise cancel the request's context when it passes).
	rc.SetReadDeadline(time.Time{})
	return &sseWriter{w: w, rc: rc, gate: gateOf(w), d: d, since: since, nanos: g.nanos}
}

// write sends b and flushes it; an error means the client is gone or does
// not read.
func (sw *sseWriter) write(b ...[]byte) error {
	sw.since.Store(sw.nanos())
	defer sw.since.Store(0)
	sw.gate.set(sw.deadline())
	for _, p := range b {
		if _, err := sw.w.Write(p); err != nil {
			return err
		}
	}
	return sw.send()
}

// flush sends what was written (stream.writeQueued's frames), as write
// does.
func (sw *sseWriter) flush() error {
	sw.since.Store(sw.nanos())
	defer sw.since.Store(0)
	return sw.send()
}

// send flushes, then clears the write deadline: it bounds a write in
// progress, not the time between frames (HTTP/2 resets a stream whose
// write deadline passes even while nothing is written).
func (sw *sseWriter) send() error {
	if err := sw.rc.Flush(); err != nil {
		return err
	}
	sw.gate.set(time.Time{})
	return nil
}

// writeEvent sends one named SSE event whose data is a JSON document on
// one line.
func (sw *sseWriter) writeEvent(name string, data []byte) error {
	return sw.write([]byte("event: "+name+"\ndata: "), data, []byte("\n\n"))
}
