package proto

import (
	"math"
	"math/bits"
	"unicode/utf8"
)

func trailingZeros(h uint64) int { return bits.TrailingZeros64(h) }

// Decoder decodes WAMP messages. It owns a scratch buffer for the few values
// that cannot alias the input (JSON strings with escapes, CBOR chunked
// strings). The zero Decoder is ready to use; it is not safe for concurrent
// use.
type Decoder struct {
	scratch []byte
	badURI  bool // this message's URI element is not UTF-8 text
	// badTimeout: the message's timeout option is a number msOf refuses
	// (ErrBadTimeout).
	badTimeout bool
	// TakeProtoKey, set, has Decode take a dictionary key "__proto__"
	// where it refuses it otherwise (ErrKeyNotString: in a payload, below
	// a dictionary's top level), telling where it met one (ProtoKey).
	// For a peer that is not JavaScript (the Go client), to which a
	// third-party router may pass the key on: the message is then its
	// receiver's to refuse, where the decode error ended the session. A
	// key that is not a string is refused as ever. The router leaves it
	// unset.
	TakeProtoKey bool
	// protoDict, protoPayload: see ProtoKey.
	protoDict, protoPayload bool
}

// ProtoKey reports where the message last decoded holds a dictionary key
// "__proto__" that TakeProtoKey had Decode take: below the top level of
// its Options, Details or Extra dictionary (dict), in its Arguments or
// ArgumentsKw (payload). One at that dictionary's top level, which Decode
// takes anyway, is not told.
func (d *Decoder) ProtoKey() (dict, payload bool) { return d.protoDict, d.protoPayload }

// Decode decodes one message from b, which is in serializer ser, into m.
// Only the head is parsed: the Arguments and ArgumentsKw are validated and
// kept raw; one holding a value the router converts for every peer (a
// MsgPack undefined, a CBOR tag it does not pass on: see cbTagKept) is
// marked (Raw.Normalize), so that it is transcoded even for a peer of its
// own serializer. m's byte slices alias b and d's scratch until the next
// Decode. It allocates nothing in steady state.
func (d *Decoder) Decode(ser Serializer, b []byte, m *Message) error {
	m.Reset()
	if !ser.Valid() {
		return ErrBadSerializer
	}
	d.Release()
	d.scratch = d.scratch[:0]
	d.badURI, d.badTimeout, d.protoDict, d.protoPayload = false, false, false, false
	r := rd{b: b, ser: ser, takeProto: d.TakeProtoKey}
	s, err := r.beginArray()
	if err != nil {
		return err
	}
	ok, err := r.more(&s, ']')
	if err != nil {
		return err
	}
	if !ok {
		return ErrEmpty
	}
	var t tok
	err = r.next(&t)
	if err != nil {
		return err
	}
	if t.k != kInt || t.neg || t.u > 0xffff {
		return ErrBadType
	}
	m.Type = Code(t.u)
	lay := layoutOf(m.Type)
	if lay == nil {
		return ErrUnknownType
	}
	closed := false // the closing bracket (or CBOR break) has been consumed
	for i, el := range lay.el {
		ok, err := r.more(&s, ']')
		if err != nil {
			return err
		}
		if !ok {
			if i < lay.required {
				return errf(lay.name + " has too few elements")
			}
			closed = true
			break
		}
		if err := d.element(&r, m, lay, el); err != nil {
			return err
		}
	}
	if !closed {
		if ok, err := r.more(&s, ']'); err != nil {
			return err
		} else if ok {
			return errf(lay.name + " has too many elements")
		}
	}
	if err := r.end(); err != nil {
		return err
	}
	if err := m.check(lay); err != nil {
		return err
	}
	if d.badURI {
		return ErrBadURIText
	}
	if d.badTimeout {
		return ErrBadTimeout
	}
	return nil
}

// Release drops d's scratch buffer when it has grown past maxKeptScratch
// (a long string unescaped or joined), so that one large message does not
// leave its size held by a Decoder kept for good (one per event loop).
// The last decoded message's slices may alias the buffer: call it once
// done with the message. Decode calls it first.
func (d *Decoder) Release() {
	if cap(d.scratch) > maxKeptScratch {
		d.scratch = nil
	}
}

// maxKeptScratch bounds the scratch buffer a Decoder or Encoder keeps
// between messages (as the router bounds a shard's other buffers).
const maxKeptScratch = 256 << 10

func (d *Decoder) element(r *rd, m *Message, lay *layout, el element) error {
	switch el {
	case elRequest, elID, elID2:
		var t tok
		err := r.next(&t)
		if err != nil {
			return err
		}
		if t.k == kFloat && t.f >= 0 && t.f <= MaxID && t.f == math.Trunc(t.f) {
			// JavaScript encoders (cbor-x, msgpackr) write a number
			// beyond 32 bits as a float64: wampy's UNSUBSCRIBE of an id
			// the router gave it. Integral, it is that integer.
			t.k, t.neg, t.u = kInt, false, uint64(t.f)
		}
		if t.k != kInt || t.neg || t.u > MaxID {
			return errf(lay.name + " ids must be integers in [0, 2^53]")
		}
		switch el {
		case elRequest:
			m.Request = t.u
		case elID:
			m.ID = t.u
		default:
			m.ID2 = t.u
		}
	case elReqType:
		var t tok
		err := r.next(&t)
		if err != nil {
			return err
		}
		if t.k != kInt || t.neg || t.u > 0xffff {
			return errf("ERROR request type must be an integer")
		}
		m.ReqType = Code(t.u)
	case elDict:
		span, err := d.parseDict(r, &m.Opt, lay)
		if err != nil {
			return err
		}
		m.Dict = Raw{Ser: r.ser, B: span}
		m.HasDict = true
		if r.proto {
			d.protoDict, r.proto = true, false
		}
	case elURI, elString:
		var t tok
		err := r.next(&t)
		if err != nil {
			return err
		}
		if t.k != kStr {
			if el == elString {
				return errf(lay.name + " " + stringName(m.Type) + " must be a string")
			}
			return errf(lay.name + " " + uriName(m.Type) + " must be a URI string")
		}
		if m.URI, err = t.text(&d.scratch, r.ser); err != nil {
			return err
		}
		// JSON text is checked while scanning; MsgPack and CBOR text here,
		// so that no URI the router stores or forwards is invalid UTF-8.
		// A JSON escape of a lone surrogate is refused too: unescaped, it
		// is U+FFFD, and "com.x\ud800" would be "com.x\udc00" (one
		// topic, procedure or realm for two names). Only a string with
		// escapes is looked at again: nothing more for the usual URI.
		if r.ser != JSON && !utf8.Valid(m.URI) || r.ser == JSON && t.esc && jsonLoneSurrogate(t.s) {
			if el == elString {
				return ErrBadUTF8
			}
			// The rest is decoded, so that the router can answer the
			// request (wamp.error.invalid_uri) as for any invalid URI.
			m.URI, d.badURI = nil, true
		}
	case elArgs:
		if r.ser == JSON {
			r.jsonWS()
		}
		save := r.i
		var t tok
		err := r.next(&t)
		if err != nil {
			return err
		}
		switch t.k {
		case kArr:
		case kBin:
			m.Transparent = true
		default:
			return errf(lay.name + " Arguments must be a list (or a binary payload)")
		}
		r.i, r.norm = save, false
		span, err := r.skip(0)
		if err != nil {
			return err
		}
		m.Args = Raw{Ser: r.ser, Normalize: r.norm, B: span}
		if r.proto {
			d.protoPayload = true
		}
	case elKwargs:
		if m.Transparent {
			return errf(lay.name + " with a transparent payload cannot have ArgumentsKw")
		}
		if r.ser == JSON {
			r.jsonWS()
		}
		save := r.i
		var t tok
		err := r.next(&t)
		if err != nil {
			return err
		}
		if t.k != kMap {
			return errf(lay.name + " ArgumentsKw must be a dictionary")
		}
		r.i, r.norm = save, false
		span, err := r.skip(0)
		if err != nil {
			return err
		}
		m.Kwargs = Raw{Ser: r.ser, Normalize: r.norm, B: span}
		if r.proto {
			d.protoPayload = true
		}
	}
	return nil
}

// check applies per-type rules that the layout cannot express.
func (m *Message) check(lay *layout) error {
	switch m.Type {
	case CodeError:
		switch m.ReqType {
		case CodeSubscribe, CodeUnsubscribe, CodePublish, CodeRegister, CodeUnregister, CodeCall, CodeInvocation, CodeCancel:
		default:
			return errf("ERROR request type must be SUBSCRIBE, UNSUBSCRIBE, PUBLISH, REGISTER, UNREGISTER, CALL, INVOCATION or CANCEL")
		}
	case CodeUnsubscribed, CodeUnregistered:
		// The revocation form [.., 0, Details] needs request 0.
		if m.HasDict && m.Request != 0 {
			return errf(lay.name + " with Details must have request id 0 (revocation)")
		}
	}
	return nil
}

func uriName(c Code) string {
	switch c {
	case CodeHello:
		return "Realm"
	case CodeAbort, CodeGoodbye:
		return "Reason"
	case CodeError:
		return "Error"
	case CodePublish, CodeSubscribe:
		return "Topic"
	}
	return "Procedure"
}

func stringName(c Code) string {
	if c == CodeChallenge {
		return "AuthMethod"
	}
	return "Signature"
}

// Decode decodes one message into a new Message. It is a convenience for
// cold paths and tests; the returned message aliases b.
func Decode(ser Serializer, b []byte) (*Message, error) {
	var d Decoder
	m := new(Message)
	if err := d.Decode(ser, b, m); err != nil {
		return nil, err
	}
	return m, nil
}
