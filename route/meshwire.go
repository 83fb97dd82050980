package route

import (
	"encoding/binary"
	"errors"

	"github.com/edgewamp/edgewamp/proto"
)

// Mesh envelopes: what route sends to route on another node. The mesh
// carries them as opaque bytes (the NATS message payload). The format is
// private to route and versioned by its first byte, the kind:
//
//	E event        'E' pubID(8, LE) flags at src seq realm topic [publisher] payload [filter]
//	C call         'C' callID shard flags timeout realm match reguri procedure caller authid authrole payload exclude
//	B bounce       a C envelope sent back undelivered, first byte 'B'
//	K chunk        'K' callID flags payload            (a further progressive-invocation chunk)
//	X interrupt    'X' callID mode reason
//	R result       'R' shard callID flags [callee] uri message payload   (flags: also rsNext, nextBits)
//	Q meta query   'Q' realm proc args kwargs           (args, kwargs: MsgPack)
//
// Integers are uvarints except the event's publication id (fixed, so that
// the mesh can drop duplicates without decoding: MeshEventID) and at (a
// varint). Strings and byte strings are a uvarint length and the bytes. A
// payload is a flags byte (transparent), the arguments and keyword
// arguments each as a uvarint (length+1, 0 = absent), their serializer and
// bytes, and the Payload Passthru keys as a bit mask and byte strings.
// Payload bytes are the publisher's, caller's or callee's own encoding: the
// receiving node transcodes them, once, for peers that speak another
// serializer. A call's exclude is a count and session ids: the callees of
// the receiving node a rerouted call was already offered to (at most
// maxCallTries-1). A result with rsUnavailable (a callee's
// wamp.error.unavailable, which the caller's node may reroute) names the
// callee's session id; for a first or last registration it also says,
// with rsNext, when the node's next untried callee registered (nextBits).
// A call with ccRoleReroute comes from a node that reroutes a callee's
// refusal for its role (mayInvoke) as it does an unavailable: the callee's
// node answers such a refusal with rsUnavailable and the URI
// wamp.error.not_authorized, and a call without it (from a node of the
// previous release, which would take that answer for unavailability and
// end the call no_available_callee) with a plain not_authorized error, as
// that release does.
//
// A node of the previous release (the same mesh version) must read what
// this one sends, and the reverse: the readers refuse trailing bytes, but
// ignore flag bits they do not know. So what a node adds to an envelope
// rides in flag bits above the known ones, as rsNext does, and a reader
// takes their absence for a node of the previous release.
const (
	envEvent     = 'E'
	envCall      = 'C'
	envBounce    = 'B'
	envChunk     = 'K'
	envInterrupt = 'X'
	envResult    = 'R'
	envQuery     = 'Q'
)

// Event flags.
const (
	evDisclose = 1 << iota
	evRetain
	evFilter
)

// Call flags.
const (
	ccDisclose = 1 << iota
	ccRecvProg
	ccProgress
	// ccRoleReroute: the caller's node takes an answer rsUnavailable with
	// wamp.error.not_authorized for a callee refused for its role, which
	// it reroutes (reroute.go). The previous release neither sets nor
	// reads it.
	ccRoleReroute
	// ccFeatureReroute: the caller's node takes an answer rsUnavailable
	// with wamp.error.feature_not_supported for a call no callee of the
	// node can take (a progressive call invocation, or a call in payload
	// passthru mode, and none announced the feature), which it reroutes
	// to another node's callee, and ends feature_not_supported when every
	// callee it tried was refused so. A call without it gets a plain
	// feature_not_supported error, as before.
	ccFeatureReroute
)

// Result flags.
const (
	rsProgress = 1 << iota
	rsError
	rsUnavailable // with rsError: the callee answered wamp.error.unavailable
	// rsNext, with rsUnavailable: the bits above it say when the node's
	// next untried callee for the call registered (nextBits). The
	// previous release neither sets nor reads it.
	rsNext
)

// rsNextShift is rsNext's bit: the value it flags is above it.
const rsNextShift = 3

// nextBits returns the result flags by which a node says, with its
// callee's wamp.error.unavailable for a rerouted call of a first or last
// registration, which of its callees the call would take next: with ok
// unset, none (every one tried); else one that registered at at (unix
// ns). The value above rsNext is 0 for none, else 1 + the time in
// microseconds zigzag-encoded (as a varint): a nanosecond time takes 61
// bits, past the 60 there are; the clocks of two nodes differ by more
// than a microsecond anyway. A result's flags are written as a uvarint:
// up to 10 bytes, on an unavailable answer only.
func nextBits(at int64, ok bool) uint64 {
	if !ok {
		return rsNext
	}
	us := min(max(at/1000, -1<<57), 1<<57-1)
	z := uint64(us<<1) ^ uint64(us>>63)
	return rsNext | (z+1)<<(rsNextShift+1)
}

// calleeNext reads what nextBits wrote, given the result's flags from
// rsNext up (carry.next): said is false when the node said nothing (a
// node of the previous release); else none is set when it has no untried
// callee left, and at is when the next one registered.
func calleeNext(x uint64) (at int64, none, said bool) {
	if x&1 == 0 {
		return 0, false, false
	}
	v := x >> 1
	if v == 0 {
		return 0, true, true
	}
	z := v - 1
	us := int64(z>>1) ^ -int64(z&1)
	return us * 1000, false, true
}

var errEnvelope = errors.New("route: malformed mesh envelope")

// MeshEventID returns the publication id of an event envelope, and false
// for any other envelope. The mesh uses it to drop the copies NATS
// delivers for overlapping subscriptions. It does not allocate.
func MeshEventID(env []byte) (uint64, bool) {
	if len(env) < 9 || env[0] != envEvent {
		return 0, false
	}
	return binary.LittleEndian.Uint64(env[1:9]), true
}

// maxEndEnvelope bounds the envelopes MeshEndEnvelope takes for call
// ends: an error's message may quote a URI of up to 4 KiB.
const maxEndEnvelope = 8 << 10

// MeshEndEnvelope reports whether env, a lone envelope another node sent,
// ends a call a node waits for: an INTERRUPT, or an error result (not a
// progressive one), of at most 8 KiB. The mesh's inbound queue keeps a
// reserve for them (edge), as its outbound queue does for what a node
// sends by MeshEndSender.SendEnd. It reads at most the first few bytes;
// it does not allocate. Safe for concurrent use.
func MeshEndEnvelope(env []byte) bool {
	if len(env) == 0 || len(env) > maxEndEnvelope {
		return false
	}
	switch env[0] {
	case envInterrupt:
		return true
	case envResult:
		r := rbuf{b: env[1:]}
		r.uv() // shard
		r.uv() // call id
		f := r.uv()
		return r.err == nil && f&rsError != 0 && f&rsProgress == 0
	}
	return false
}

// ---------------------------------------------------------------- writing

type wbuf []byte

func (w *wbuf) byte1(b byte)     { *w = append(*w, b) }
func (w *wbuf) uv(v uint64)      { *w = binary.AppendUvarint(*w, v) }
func (w *wbuf) sv(v int64)       { *w = binary.AppendVarint(*w, v) }
func (w *wbuf) str(s string)     { w.uv(uint64(len(s))); *w = append(*w, s...) }
func (w *wbuf) bytes(b []byte)   { w.uv(uint64(len(b))); *w = append(*w, b...) }
func (w *wbuf) fixed64(v uint64) { *w = binary.LittleEndian.AppendUint64(*w, v) }

func (w *wbuf) raw(r proto.Raw) {
	if r.B == nil {
		w.uv(0)
		return
	}
	w.uv(uint64(len(r.B)) + 1)
	w.byte1(byte(r.Ser))
	*w = append(*w, r.B...)
}

func (w *wbuf) payload(c *carry) {
	var f byte
	if c.transparent {
		f = 1
	}
	w.byte1(f)
	w.raw(c.args)
	w.raw(c.kwargs)
	var mask byte
	for i, v := range c.ppt {
		if v != nil {
			mask |= 1 << i
		}
	}
	w.byte1(mask)
	for _, v := range c.ppt {
		if v != nil {
			w.bytes(v)
		}
	}
}

func (w *wbuf) ids(set *idSet) {
	w.uv(uint64(set.len()))
	set.each(w.uv)
}

func (w *wbuf) strs(set *strSet) {
	w.uv(uint64(set.len()))
	set.each(w.bytes)
}

// ---------------------------------------------------------------- reading

// rbuf reads an envelope. Errors stick: after the first one every read
// returns zero values and err is set.
type rbuf struct {
	b   []byte
	err error
}

func (r *rbuf) fail() { r.err = errEnvelope; r.b = nil }

func (r *rbuf) byte1() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *rbuf) uv() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *rbuf) sv() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes returns a sub-slice of the envelope (no copy).
func (r *rbuf) bytes() []byte {
	n := r.uv()
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *rbuf) str() string { return string(r.bytes()) }

// shard reads a shard index (the caller's shard of a call, result or
// bounce): below maxShards, else the envelope is malformed. Read as an int
// unchecked, 2^63 and more became negative, passed the check against the
// number of shards, and indexing the shards with it panicked.
func (r *rbuf) shard() int {
	v := r.uv()
	if v >= maxShards {
		r.fail()
		return 0
	}
	return int(v)
}

func (r *rbuf) fixed64() uint64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *rbuf) raw() proto.Raw {
	n := r.uv()
	if r.err != nil || n == 0 {
		return proto.Raw{}
	}
	n--
	ser := proto.Serializer(r.byte1())
	if r.err != nil || !ser.Valid() || n > uint64(len(r.b)) {
		r.fail()
		return proto.Raw{}
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	if v == nil {
		v = []byte{}
	}
	return proto.Raw{Ser: ser, B: v}
}

// payload reads a payload into a carry that aliases the envelope. The
// arguments are checked as Decode checks a client's (another node's bytes
// go to clients as they are when the serializer matches).
func (r *rbuf) payload(c *carry) {
	c.transparent = r.byte1()&1 != 0
	c.args = r.raw()
	c.kwargs = r.raw()
	mask := r.byte1()
	for i := range c.ppt {
		if mask&(1<<i) != 0 {
			c.ppt[i] = r.bytes()
		}
	}
	if r.err == nil && (c.args.B != nil && !proto.CheckArgs(&c.args, c.transparent) || c.kwargs.B != nil && !proto.CheckKwargs(&c.kwargs)) {
		r.fail()
	}
}

// idSet reads a list of ids into a set. A count is at most the bytes
// left (each entry takes one at least); the sets grow as their entries
// are read, so that a malformed count cannot make the reader allocate
// much. The lists themselves are not bounded here: the publisher's node
// took the PUBLISH (within max_message_size), and an envelope refused for
// a long list would lose the event on every other node (a 70,000-id
// exclude list did).
func (r *rbuf) idSet() idSet {
	var set idSet
	n := r.uv()
	if n > uint64(len(r.b)) {
		r.fail()
		return set
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		if id := r.uv(); r.err == nil {
			set.add(id)
		}
	}
	return set
}

// strSet reads a list of strings into a set (the entries' bytes are
// copied into it).
func (r *rbuf) strSet() strSet {
	var set strSet
	n := r.uv()
	if n > uint64(len(r.b)) {
		r.fail()
		return set
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		if b := r.bytes(); r.err == nil {
			set.add(b)
		}
	}
	return set
}

// ---------------------------------------------------------------- events

// appendEvent encodes p, published in realm, as an event envelope.
func appendEvent(dst []byte, realm string, p *publication) []byte {
	w := wbuf(dst)
	w.byte1(envEvent)
	w.fixed64(p.id)
	var f uint64
	if p.disclose {
		f |= evDisclose
	}
	if p.retained {
		f |= evRetain
	}
	if p.filter != nil {
		f |= evFilter
	}
	w.uv(f)
	w.sv(p.at)
	w.uv(p.src)
	w.uv(uint64(p.seq))
	w.str(realm)
	w.bytes(p.topic)
	if p.disclose {
		id, authid, authrole := p.publisherIdentity()
		w.uv(id)
		w.str(authid)
		w.str(authrole)
	}
	w.payload(p.c)
	if fl := p.filter; fl != nil {
		var b byte
		if fl.hasEligible {
			b |= 1
		}
		if fl.hasEligAuthID {
			b |= 2
		}
		if fl.hasEligAuthRole {
			b |= 4
		}
		w.byte1(b)
		w.ids(&fl.exclude)
		w.ids(&fl.eligible)
		w.strs(&fl.excludeAuthID)
		w.strs(&fl.excludeAuthRole)
		w.strs(&fl.eligibleAuthID)
		w.strs(&fl.eligibleAuthRole)
	}
	return w
}

// decodeEvent decodes an event envelope into a publication that aliases
// env (which the caller must no longer modify).
func decodeEvent(env []byte) (realm string, p *publication, err error) {
	r := rbuf{b: env}
	if r.byte1() != envEvent {
		return "", nil, errEnvelope
	}
	p = &publication{c: &carry{}}
	p.id = r.fixed64()
	f := r.uv()
	p.at = r.sv()
	p.src = r.uv()
	p.seq = uint32(r.uv())
	realm = r.str()
	p.topic = r.bytes()
	p.disclose = f&evDisclose != 0
	p.retained = f&evRetain != 0
	if p.disclose {
		p.remote = &remotePublisher{id: r.uv(), authID: r.str(), authRole: r.str()}
	}
	r.payload(p.c)
	if f&evFilter != 0 {
		b := r.byte1()
		p.filter = &pubFilter{
			hasEligible:     b&1 != 0,
			hasEligAuthID:   b&2 != 0,
			hasEligAuthRole: b&4 != 0,
		}
		p.filter.exclude = r.idSet()
		p.filter.eligible = r.idSet()
		p.filter.excludeAuthID = r.strSet()
		p.filter.excludeAuthRole = r.strSet()
		p.filter.eligibleAuthID = r.strSet()
		p.filter.eligibleAuthRole = r.strSet()
	}
	if r.err != nil || len(r.b) != 0 || len(p.topic) == 0 {
		return "", nil, errEnvelope
	}
	return realm, p, nil
}

// ---------------------------------------------------------------- calls

// meshCall is a decoded call envelope. Its byte slices are in the
// envelope, which the call keeps (meshOrigin.env): strings are made of
// them only where needed, so that a call from another node allocates no
// copy of its realm, URIs or caller's identity.
type meshCall struct {
	callID   uint64
	shard    int
	flags    uint64
	timeout  uint64 // ms, 0 = none
	realm    []byte
	match    proto.Match
	regURI   []byte
	proc     []byte
	callerID uint64
	authID   []byte // the caller's
	authRole []byte
	c        *carry
	exclude  []uint64 // callees already offered the call (rerouted)
}

// callEnv is what a call envelope says besides the caller and payload.
type callEnv struct {
	callID  uint64
	shard   int
	flags   uint64
	timeout uint64 // ms, 0 = none
	reg     *registration
	proc    []byte
}

// appendCall encodes the call ce of ss, payload c, as a call envelope
// whose callees in exclude are not to take it.
func appendCall(dst []byte, ce *callEnv, ss *Session, c *carry, exclude []uint64) []byte {
	w := wbuf(dst)
	w.byte1(envCall)
	w.uv(ce.callID)
	w.uv(uint64(ce.shard))
	w.uv(ce.flags)
	w.uv(ce.timeout)
	w.str(ss.realm.name)
	w.byte1(byte(ce.reg.match))
	w.str(ce.reg.uri)
	w.bytes(ce.proc)
	w.uv(ss.id)
	w.str(ss.authID)
	w.str(ss.authRole)
	w.payload(c)
	w.uv(uint64(len(exclude)))
	for _, id := range exclude {
		w.uv(id)
	}
	return w
}

// withCallTimeout appends to dst the call (or bounce) envelope env with its
// timeout replaced by ms, the rest unchanged.
func withCallTimeout(dst, env []byte, ms uint64) ([]byte, error) {
	r := rbuf{b: env}
	r.byte1()
	r.uv() // call id
	r.uv() // shard
	r.uv() // flags
	head := len(env) - len(r.b)
	r.uv() // timeout
	if r.err != nil {
		return nil, errEnvelope
	}
	w := wbuf(append(dst, env[:head]...))
	w.uv(ms)
	return append(w, r.b...), nil
}

// decodeCall decodes a call or bounce envelope into mc.
func decodeCall(env []byte, mc *meshCall) error {
	r := rbuf{b: env}
	if k := r.byte1(); k != envCall && k != envBounce {
		return errEnvelope
	}
	*mc = meshCall{c: &carry{}}
	mc.callID = r.uv()
	mc.shard = r.shard()
	mc.flags = r.uv()
	mc.timeout = r.uv()
	mc.realm = r.bytes()
	mc.match = proto.Match(r.byte1())
	mc.regURI = r.bytes()
	mc.proc = r.bytes()
	mc.callerID = r.uv()
	mc.authID = r.bytes()
	mc.authRole = r.bytes()
	r.payload(mc.c)
	if n := r.uv(); n >= maxCallTries {
		r.fail()
	} else if n > 0 {
		mc.exclude = make([]uint64, n)
		for i := range mc.exclude {
			mc.exclude[i] = r.uv()
		}
	}
	if r.err != nil || len(r.b) != 0 || mc.match > proto.MatchWildcard {
		return errEnvelope
	}
	return nil
}

// peekCall reads the call id and shard of a call or bounce envelope.
func peekCall(env []byte) (callID uint64, shard int, ok bool) {
	r := rbuf{b: env}
	r.byte1()
	callID = r.uv()
	shard = r.shard()
	return callID, shard, r.err == nil
}

// appendResult encodes a result, progressive result or error for the
// call callID of the caller's shard.
// With rsUnavailable in flags, callee is the session id of the callee
// that answered.
func appendResult(dst []byte, shard int, callID uint64, flags uint64, callee uint64, uri, msg string, c *carry) []byte {
	w := wbuf(dst)
	w.byte1(envResult)
	w.uv(uint64(shard))
	w.uv(callID)
	w.uv(flags)
	if flags&rsUnavailable != 0 {
		w.uv(callee)
	}
	w.str(uri)
	w.str(msg)
	if c == nil {
		c = &carry{}
	}
	w.payload(c)
	return w
}

type meshResult struct {
	shard  int
	callID uint64
	flags  uint64
	c      *carry // uri and msg in c.uri, c.msg
}

func decodeResult(env []byte) (meshResult, error) {
	r := rbuf{b: env}
	if r.byte1() != envResult {
		return meshResult{}, errEnvelope
	}
	mr := meshResult{c: &carry{}}
	mr.shard = r.shard()
	mr.callID = r.uv()
	mr.flags = r.uv()
	if mr.flags&rsUnavailable != 0 {
		mr.c.callee = r.uv()
		mr.c.next = mr.flags >> rsNextShift
	}
	mr.c.uri = r.str()
	mr.c.msg = r.str()
	r.payload(mr.c)
	if r.err != nil || len(r.b) != 0 {
		return meshResult{}, errEnvelope
	}
	return mr, nil
}

func appendChunk(dst []byte, callID uint64, progress bool, c *carry) []byte {
	w := wbuf(dst)
	w.byte1(envChunk)
	w.uv(callID)
	var f uint64
	if progress {
		f = ccProgress
	}
	w.uv(f)
	w.payload(c)
	return w
}

func decodeChunk(env []byte) (callID uint64, progress bool, c *carry, err error) {
	r := rbuf{b: env}
	if r.byte1() != envChunk {
		return 0, false, nil, errEnvelope
	}
	c = &carry{}
	callID = r.uv()
	progress = r.uv()&ccProgress != 0
	r.payload(c)
	if r.err != nil || len(r.b) != 0 {
		return 0, false, nil, errEnvelope
	}
	return callID, progress, c, nil
}

func appendInterrupt(dst []byte, callID uint64, mode proto.CancelMode, reason string) []byte {
	w := wbuf(dst)
	w.byte1(envInterrupt)
	w.uv(callID)
	w.byte1(byte(mode))
	w.str(reason)
	return w
}

func decodeInterrupt(env []byte) (callID uint64, mode proto.CancelMode, reason string, err error) {
	r := rbuf{b: env}
	if r.byte1() != envInterrupt {
		return 0, 0, "", errEnvelope
	}
	callID = r.uv()
	mode = proto.CancelMode(r.byte1())
	reason = r.str()
	if r.err != nil || len(r.b) != 0 {
		return 0, 0, "", errEnvelope
	}
	return callID, mode, reason, nil
}
