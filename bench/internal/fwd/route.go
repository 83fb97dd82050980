package fwd

import (
	"sync"
	"sync/atomic"

	"github.com/edgewamp/edgewamp/proto"
)

// codec is a loop's decoding and encoding state.
type codec struct {
	dec  proto.Decoder
	enc  proto.Encoder
	in   proto.Message
	out  proto.Message
	buf  []byte
	ev   [proto.CBOR + 1][]byte // one publication's EVENT per serializer
	evOK [proto.CBOR + 1]bool
}

// encode encodes c.out in ser into the codec's buffer; the result is valid
// until the next encode.
func (c *codec) encode(ser proto.Serializer) []byte {
	b, err := c.enc.Append(c.buf[:0], ser, &c.out)
	if err != nil {
		return nil
	}
	c.buf = b
	return b
}

var welcomeDetails = func() (d [proto.CBOR + 1]proto.Raw) {
	for _, ser := range []proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		r, err := proto.EncodeValue(ser, map[string]any{
			"roles":      map[string]any{"broker": map[string]any{}, "dealer": map[string]any{}},
			"authid":     "anonymous",
			"authrole":   "anonymous",
			"authmethod": "anonymous",
		})
		if err != nil {
			panic(err) // programmer error: a constant value
		}
		d[ser] = r
	}
	return d
}()

// tables are the realm-wide registrations and subscriptions (one realm:
// the realm named in HELLO is not looked at).
type tables struct {
	mu     sync.RWMutex
	procs  map[string]*registration
	topics map[string]*subscription
}

func (t *tables) init() {
	t.procs = map[string]*registration{}
	t.topics = map[string]*subscription{}
}

type registration struct {
	id      uint64
	uri     string
	callees []*conn // copy on write; guarded by tables.mu
	rr      atomic.Uint64
}

type subscription struct {
	id     uint64
	uri    string
	groups []subGroup // copy on write; guarded by tables.mu
}

// subGroup is a subscription's subscribers on one loop with one serializer.
type subGroup struct {
	ls    *loopState
	ser   proto.Serializer
	conns []*conn
}

// drop removes cn from every registration and subscription.
func (t *tables) drop(cn *conn) {
	if len(cn.regs) == 0 && len(cn.subs) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range cn.regs {
		r.callees = without(r.callees, cn)
		if len(r.callees) == 0 {
			delete(t.procs, r.uri)
		}
	}
	for _, s := range cn.subs {
		var gs []subGroup
		n := 0
		for _, g := range s.groups {
			if g.ls == cn.ls && g.ser == cn.ser {
				g.conns = without(g.conns, cn)
			}
			if len(g.conns) > 0 {
				gs = append(gs, g)
				n += len(g.conns)
			}
		}
		s.groups = gs
		if n == 0 {
			delete(t.topics, s.uri)
		}
	}
	cn.regs, cn.subs = nil, nil
}

// without returns a copy of l without c.
func without(l []*conn, c *conn) []*conn {
	out := make([]*conn, 0, len(l))
	for _, x := range l {
		if x != c {
			out = append(out, x)
		}
	}
	return out
}

// message handles one WAMP message from cn.
func (cn *conn) message(b []byte) {
	ls := cn.ls
	cd := &ls.codec
	m := &cd.in
	if err := cd.dec.Decode(cn.ser, b, m); err != nil {
		cn.die("decode error: " + err.Error())
		return
	}
	if cn.sid == 0 {
		if m.Type != proto.CodeHello {
			cn.die("first message is not HELLO")
			return
		}
		cn.sid = ls.s.nextID.Add(1)
		cd.out = proto.Message{Type: proto.CodeWelcome, ID: cn.sid, Dict: welcomeDetails[cn.ser]}
		cn.sendFramed(cd.encode(cn.ser))
		return
	}
	switch m.Type {
	case proto.CodeCall:
		cn.call(m)
	case proto.CodeYield:
		cn.yield(m)
	case proto.CodePublish:
		cn.publish(m)
	case proto.CodeError:
		if m.ReqType == proto.CodeInvocation {
			cn.yield(m)
		}
	case proto.CodeRegister:
		cn.register(m)
	case proto.CodeSubscribe:
		cn.subscribe(m)
	case proto.CodeGoodbye:
		cd.out = proto.Message{Type: proto.CodeGoodbye, URI: []byte(proto.CloseGoodbyeAndOut)}
		cn.sendFramed(cd.encode(cn.ser))
		cn.die("GOODBYE")
	default:
		// UNREGISTER, UNSUBSCRIBE, CANCEL and the rest: not needed here.
	}
}

func (cn *conn) register(m *proto.Message) {
	s := cn.ls.s
	t := &s.tables
	t.mu.Lock()
	r := t.procs[string(m.URI)]
	if r == nil {
		r = &registration{id: s.nextID.Add(1), uri: string(m.URI)}
		t.procs[r.uri] = r
	}
	r.callees = append(append([]*conn(nil), r.callees...), cn)
	t.mu.Unlock()
	cn.regs = append(cn.regs, r)
	cd := &cn.ls.codec
	cd.out = proto.Message{Type: proto.CodeRegistered, Request: m.Request, ID: r.id}
	cn.sendFramed(cd.encode(cn.ser))
}

func (cn *conn) subscribe(m *proto.Message) {
	s := cn.ls.s
	t := &s.tables
	t.mu.Lock()
	sub := t.topics[string(m.URI)]
	if sub == nil {
		sub = &subscription{id: s.nextID.Add(1), uri: string(m.URI)}
		t.topics[sub.uri] = sub
	}
	gs := make([]subGroup, 0, len(sub.groups)+1)
	found := false
	for _, g := range sub.groups {
		if g.ls == cn.ls && g.ser == cn.ser {
			g.conns = append(append([]*conn(nil), g.conns...), cn)
			found = true
		}
		gs = append(gs, g)
	}
	if !found {
		gs = append(gs, subGroup{ls: cn.ls, ser: cn.ser, conns: []*conn{cn}})
	}
	sub.groups = gs
	t.mu.Unlock()
	cn.subs = append(cn.subs, sub)
	cd := &cn.ls.codec
	cd.out = proto.Message{Type: proto.CodeSubscribed, Request: m.Request, ID: sub.id}
	cn.sendFramed(cd.encode(cn.ser))
}

func (cn *conn) call(m *proto.Message) {
	ls := cn.ls
	s := ls.s
	cd := &ls.codec
	s.stats.calls.Add(1)
	s.tables.mu.RLock()
	r := s.tables.procs[string(m.URI)]
	var callee *conn
	var regID uint64
	if r != nil && len(r.callees) > 0 {
		callee = r.callees[r.rr.Add(1)%uint64(len(r.callees))]
		regID = r.id
	}
	s.tables.mu.RUnlock()
	if callee == nil {
		cd.out = proto.Message{Type: proto.CodeError, ReqType: proto.CodeCall, Request: m.Request, URI: []byte(proto.URINoSuchProcedure)}
		cn.sendFramed(cd.encode(cn.ser))
		return
	}
	inv := s.nextID.Add(1)
	cd.out = proto.Message{Type: proto.CodeInvocation, Request: inv, ID: regID, Args: m.Args, Kwargs: m.Kwargs}
	b := cd.encode(callee.ser)
	if callee.ls == ls {
		if callee.dead {
			ls.failInvocation(cn, m.Request)
			return
		}
		callee.addPending(inv, pending{caller: cn, req: m.Request})
		callee.sendFramed(b)
		return
	}
	callee.ls.post(task{kind: taskInvoke, dst: callee, caller: cn, req: m.Request, inv: inv, msg: append([]byte(nil), b...)})
}

// yield relays a YIELD (or an ERROR for an INVOCATION) to the caller.
func (cn *conn) yield(m *proto.Message) {
	p, ok := cn.pending[m.Request]
	if !ok {
		return
	}
	delete(cn.pending, m.Request)
	ls := cn.ls
	cd := &ls.codec
	ls.s.stats.results.Add(1)
	if m.Type == proto.CodeError {
		cd.out = proto.Message{Type: proto.CodeError, ReqType: proto.CodeCall, Request: p.req, URI: m.URI, Args: m.Args, Kwargs: m.Kwargs}
	} else {
		cd.out = proto.Message{Type: proto.CodeResult, Request: p.req, Args: m.Args, Kwargs: m.Kwargs}
	}
	ls.sendTo(p.caller, cd.encode(p.caller.ser))
}

// sendTo queues msg (already in dst's serializer) for dst on whatever loop
// it lives.
func (ls *loopState) sendTo(dst *conn, msg []byte) {
	if dst.ls == ls {
		dst.sendFramed(msg)
		return
	}
	if dst.gone.Load() {
		return
	}
	dst.ls.post(task{kind: taskSend, dst: dst, msg: append([]byte(nil), msg...)})
}

// failInvocation tells a caller its call is lost (its callee left).
func (ls *loopState) failInvocation(caller *conn, req uint64) {
	if caller.gone.Load() {
		return
	}
	cd := &ls.codec
	cd.out = proto.Message{Type: proto.CodeError, ReqType: proto.CodeCall, Request: req, URI: []byte(proto.URICanceled)}
	ls.sendTo(caller, cd.encode(caller.ser))
}

func (cn *conn) publish(m *proto.Message) {
	ls := cn.ls
	s := ls.s
	cd := &ls.codec
	s.stats.publishes.Add(1)
	pub := s.nextID.Add(1)
	if m.Opt.Bool(proto.KeyAcknowledge, false) {
		cd.out = proto.Message{Type: proto.CodePublished, Request: m.Request, ID: pub}
		cn.sendFramed(cd.encode(cn.ser))
	}
	excludeMe := m.Opt.Bool(proto.KeyExcludeMe, true)
	s.tables.mu.RLock()
	sub := s.tables.topics[string(m.URI)]
	var groups []subGroup
	var subID uint64
	if sub != nil {
		groups, subID = sub.groups, sub.id
	}
	s.tables.mu.RUnlock()
	cd.evOK = [proto.CBOR + 1]bool{}
	for _, g := range groups {
		if !cd.evOK[g.ser] {
			cd.out = proto.Message{Type: proto.CodeEvent, ID: subID, ID2: pub, Args: m.Args, Kwargs: m.Kwargs}
			b, err := cd.enc.Append(cd.ev[g.ser][:0], g.ser, &cd.out)
			if err != nil {
				continue
			}
			cd.ev[g.ser], cd.evOK[g.ser] = b, true
		}
		ev := cd.ev[g.ser]
		if g.ls != ls {
			g.ls.post(task{kind: taskEvent, dsts: g.conns, msg: append([]byte(nil), ev...)})
			continue
		}
		for _, d := range g.conns {
			if d == cn && excludeMe {
				continue
			}
			d.sendEvent(ev)
		}
	}
}
