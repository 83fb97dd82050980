package proto

import "unicode/utf8"

// rd is a pull reader over one encoded value or message, in any of the three
// serializers. Each method switches on the serializer; the switch costs far
// less than an interface call and keeps rd a plain value that never escapes.
type rd struct {
	b   []byte
	i   int
	ser Serializer
	// dates: the value is a payload (Arguments, ArgumentsKw, a value given
	// to Transcode or AppendValue), whose CBOR epoch dates (tag 1) become
	// MsgPack timestamps when transcoded to MsgPack. Options and Details
	// keep the number: the router reads a tagged number there as the
	// number it is, and so must a MsgPack peer it is passed on to.
	dates bool
	// norm: skip met a value the router converts even for a peer of the
	// input's serializer (see Raw.Normalize): MsgPack's undefined, a CBOR
	// tag that is not passed on as it came (cbTagKept), a tag on a CBOR
	// key, a CBOR indefinite-length string (cbChunked).
	norm bool
	// takeProto: skip takes a dictionary key "__proto__" (see protoKey)
	// rather than refuse it, and sets proto when it met one
	// (Decoder.TakeProtoKey).
	takeProto, proto bool
}

// kind is the kind of the next value in the input.
type kind uint8

const (
	kInvalid kind = iota
	kNull
	kBool
	kInt   // any integer; see tok.neg/tok.u
	kBig   // an integer beyond 64 bits (JSON digits, CBOR bignum)
	kFloat // any float
	kStr   // text string
	kBin   // byte string (JSON: "\u0000"+base64)
	kArr
	kMap
	// kUndef is JavaScript's undefined as JS encoders write it: MsgPack
	// fixext 1 of type 0 (d4 00 xx, msgpackr, msgpack-lite) and CBOR simple
	// value 23 (f7, cbor-x). wampy 8 sends it for options it was not given.
	// In Options and Details it means the key is absent; transcoded, it
	// follows JSON.stringify: a dictionary member is dropped, anything else
	// becomes null.
	kUndef
	// kTime is a MsgPack timestamp (extension type -1), as msgpackr writes a
	// JavaScript Date and msgpack-python a Timestamp: fixext 4 (uint32
	// seconds), fixext 8 (30-bit nanoseconds, 34-bit seconds) or ext 8 of 12
	// bytes (uint32 nanoseconds, int64 seconds); s is the extension's data
	// (see mpTime). Transcoded, it is what the target's clients take for a
	// date: CBOR tag 1 (epoch-based date/time, which cbor-x and cbor2
	// decode as a Date or datetime), or in JSON the RFC 3339 text that
	// JSON.stringify makes of a Date.
	kTime
)

// tok is one scalar or container head read from the input.
//
// Integers use CBOR's convention: a non-negative integer is u; a negative one
// is -1-u (neg set), which covers [-2^64, 2^64-1] without overflow. A bool is
// u != 0. A container's u is its element count, or openLen when the count is
// not known up front (JSON, CBOR indefinite length).
type tok struct {
	k   kind
	neg bool
	// esc: s is not the content as is. For a JSON string, s holds escapes;
	// for a CBOR indefinite-length string, s spans the chunks with their
	// heads. tok.text, appendText and appendBytes resolve it. On a CBOR
	// integer or float (no s), esc marks an epoch date/time (tag 1) for the
	// transcoder (see rd.dates); everything else reads the number.
	esc bool
	u   uint64
	f   float64
	s   []byte // string, binary, bignum or timestamp content (JSON: the raw text between quotes)
}

// openLen is a container token's u when its length is not known up front.
const openLen = ^uint64(0)

// set fills every field of t. Readers fill the caller's tok through this,
// field by field, rather than returning a tok or assigning a composite
// literal: tok has too many fields to live in registers, and copying a
// struct that was just written field by field stalls on store forwarding
// (it was the largest cost of decoding a message head).
func (t *tok) set(k kind, neg, esc bool, u uint64, f float64, s []byte) {
	t.k, t.neg, t.esc, t.u, t.f, t.s = k, neg, esc, u, f, s
}

// seq iterates the elements of an array or the entries of a map.
type seq struct {
	left  int  // definite length: elements left
	open  bool // length not known: JSON, or CBOR indefinite
	first bool
}

// beginArray consumes an array head.
func (r *rd) beginArray() (seq, error) {
	switch r.ser {
	case JSON:
		r.jsonWS()
		if r.i >= len(r.b) {
			return seq{}, ErrTruncated
		}
		if r.b[r.i] != '[' {
			return seq{}, ErrNotArray
		}
		r.i++
		return seq{open: true, first: true}, nil
	case MsgPack:
		n, err := r.mpArrayLen()
		return seq{left: n}, err
	case CBOR:
		n, indef, err := r.cbContainer(4)
		return seq{left: n, open: indef, first: true}, err
	}
	return seq{}, ErrBadSerializer
}

// beginMap consumes a map head.
func (r *rd) beginMap() (seq, error) {
	switch r.ser {
	case JSON:
		r.jsonWS()
		if r.i >= len(r.b) {
			return seq{}, ErrTruncated
		}
		if r.b[r.i] != '{' {
			return seq{}, errNotMap
		}
		r.i++
		return seq{open: true, first: true}, nil
	case MsgPack:
		n, err := r.mpMapLen()
		return seq{left: n}, err
	case CBOR:
		n, indef, err := r.cbContainer(5)
		return seq{left: n, open: indef, first: true}, err
	}
	return seq{}, ErrBadSerializer
}

var errNotMap = errf("expected a dictionary")

// more reports whether another element (or map entry) follows, consuming the
// separator or the closing bracket. close is ']' for arrays and '}' for maps.
func (r *rd) more(s *seq, close byte) (bool, error) {
	if !s.open {
		if s.left == 0 {
			return false, nil
		}
		s.left--
		return true, nil
	}
	if r.ser == CBOR {
		if r.i >= len(r.b) {
			return false, ErrTruncated
		}
		if r.b[r.i] == 0xff {
			r.i++
			return false, nil
		}
		return true, nil
	}
	r.jsonWS()
	if r.i >= len(r.b) {
		return false, ErrTruncated
	}
	c := r.b[r.i]
	if c == close {
		r.i++
		return false, nil
	}
	if s.first {
		s.first = false
		return true, nil
	}
	if c != ',' {
		return false, ErrBadSyntax
	}
	r.i++
	return true, nil
}

// colon consumes the ':' between a JSON key and its value.
func (r *rd) colon() error {
	if r.ser != JSON {
		return nil
	}
	r.jsonWS()
	if r.i >= len(r.b) {
		return ErrTruncated
	}
	if r.b[r.i] != ':' {
		return ErrBadSyntax
	}
	r.i++
	return nil
}

// next reads the next value's head into t: a scalar whole, or a container's
// head (whose elements the caller then walks with more). t's contents are
// unspecified when next returns an error.
func (r *rd) next(t *tok) error {
	switch r.ser {
	case JSON:
		return r.jsonNext(t)
	case MsgPack:
		return r.mpNext(t)
	case CBOR:
		return r.cbNext(t)
	}
	return ErrBadSerializer
}

// skip consumes one whole value, validating it, and returns its encoded
// span. depth is the nesting depth of the value's container.
func (r *rd) skip(depth int) ([]byte, error) {
	if r.ser == JSON {
		r.jsonWS()
	}
	start := r.i
	if err := r.skipValue(depth); err != nil {
		return nil, err
	}
	return r.b[start:r.i:r.i], nil
}

// skipValue consumes one value. depth is the number of containers around
// it; a container at depth MaxDepth (the MaxDepth+1st level) is refused.
func (r *rd) skipValue(depth int) error {
	if r.ser == JSON {
		return r.jsonSkip(depth)
	}
	return r.skipTokens(depth)
}

// skipTokens is skipValue for any serializer, walking the value token by
// token.
func (r *rd) skipTokens(depth int) error {
	var t tok
	err := r.next(&t)
	if err != nil {
		return err
	}
	switch t.k {
	case kStr:
		// Text strings of a MsgPack or CBOR payload are passed through to
		// peers of the same serializer, whose decoders refuse invalid
		// UTF-8 (msgpack-python, cbor2: autobahn then drops the
		// connection). CBOR chunks are checked in cbChunked.
		if !t.esc && !utf8.Valid(t.s) {
			return ErrBadUTF8
		}
	case kUndef:
		// MsgPack's undefined (d4 00 xx) is an extension type that
		// msgpack5 (Autobahn|JS) cannot decode: it throws, and the
		// peer's process exits. MsgPack peers get it converted, as
		// the others do (see kUndef); CBOR's (f7) is CBOR's own.
		if r.ser == MsgPack {
			r.norm = true
		}
	case kArr, kMap:
		if depth >= MaxDepth {
			return ErrTooDeep
		}
		close := byte(']')
		if t.k == kMap {
			close = '}'
		}
		s := seqOf(&t)
		for {
			ok, err := r.more(&s, close)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			if t.k == kMap {
				if err := r.skipKey(); err != nil {
					return err
				}
			}
			if err := r.skipTokens(depth + 1); err != nil {
				return err
			}
		}
	}
	return nil
}

// skipKey consumes a map key and its colon. A key must be a (valid UTF-8)
// string, in every serializer: WAMP's dictionaries have string keys, JSON
// peers could not be sent any other, and MsgPack peers of the same
// serializer refuse them (msgpack-python's strict_map_key, on by default:
// autobahn drops the connection). Nor may it be "__proto__" (see
// isProtoKey).
func (r *rd) skipKey() error {
	if r.ser == CBOR && r.i < len(r.b) && r.b[r.i]>>5 == 6 {
		// A tag on a key is stripped for CBOR peers too, even one
		// cbTagKept keeps on a value (a date text, tag 0): cbor2 reads
		// a tagged key as a datetime, and Autobahn|Python, calling its
		// handler with the ArgumentsKw as keyword arguments, raises
		// TypeError out of its message handler and drops the
		// connection. Every peer gets the key as the text it is.
		r.norm = true
	}
	var t tok
	err := r.next(&t)
	if err == ErrBadBase64 {
		// A JSON binary string as a key: refused as a key whatever its
		// base64, as jsonKey and jsonSkip refuse it (they do not read
		// the base64 of a key).
		return ErrKeyBinary
	}
	if err != nil {
		return err
	}
	if t.k != kStr {
		if t.k == kBin && r.ser == JSON {
			return ErrKeyBinary
		}
		return ErrKeyNotString
	}
	if r.ser != JSON && !t.esc && !utf8.Valid(t.s) {
		return ErrBadUTF8
	}
	if len(t.s) == len(protoKey) && string(t.s) == protoKey || t.esc && isProtoKey(t.s, r.ser) {
		if !r.takeProto {
			return ErrKeyNotString
		}
		r.proto = true
	}
	return r.colon()
}

// protoKey is the dictionary key JavaScript peers cannot take: msgpack5
// (Autobahn|JS's MsgPack) refuses it with an exception (protoAction
// 'error': "Object contains forbidden prototype property"), thrown from
// the WebSocket's message handler, which ends the peer's Node process;
// other decoders drop the member or set the object's prototype with it.
// A payload dictionary holding it is refused as one with a key that is not
// a string, in every serializer.
const protoKey = "__proto__"

// isProtoKey reports whether s, the content of a key string with escapes
// (JSON) or in chunks (CBOR; see tok.esc), is protoKey. It does not
// allocate.
func isProtoKey(s []byte, ser Serializer) bool {
	var buf [6 * len(protoKey)]byte // every byte escaped: \u005f
	if ser == CBOR {
		r, n := rd{b: s, ser: CBOR}, 0
		for r.i < len(r.b) {
			_, arg, _, err := r.cbHead()
			if err != nil || arg > uint64(len(protoKey)-n) {
				return false
			}
			p, _ := r.span(arg)
			n += copy(buf[n:], p)
		}
		return string(buf[:n]) == protoKey
	}
	if len(s) > len(buf) {
		return false
	}
	k, _ := appendUnescaped(buf[:0], s) // no longer than s
	return string(k) == protoKey
}

// undefined consumes the next value and reports true when it is
// JavaScript undefined (see kUndef); otherwise it consumes nothing. It
// looks at the bytes only, so that an option read costs no extra token.
func (r *rd) undefined() bool {
	switch r.ser {
	case MsgPack:
		if len(r.b)-r.i >= 3 && r.b[r.i] == 0xd4 && r.b[r.i+1] == 0 {
			r.i += 3
			return true
		}
	case CBOR:
		if r.i < len(r.b) && r.b[r.i] == 0xf7 {
			r.i++
			return true
		}
		if r.i < len(r.b) && r.b[r.i]>>5 == 6 {
			return r.cbTaggedUndefined()
		}
	}
	return false
}

// cbTaggedUndefined consumes undefined under tags the router strips
// (cbor_norm.go) and reports true, so that it is undefined as the
// untagged one is: a dictionary member holding it was left out untagged,
// and was a member holding null tagged. Under a tag that is kept or
// checked (a bignum, a date, cbor2's), or more than cbNext reads, it is
// not: the value's reader decides (and refuses what it must).
func (r *rd) cbTaggedUndefined() bool {
	p := rd{b: r.b, i: r.i, ser: CBOR}
	for tags := 0; tags <= 8; tags++ {
		major, info, arg, _, err := p.cbHeadInfo()
		switch {
		case err != nil:
			return false
		case major == 7 && info == 23 && tags > 0:
			r.i = p.i
			return true
		case major != 6 || arg == 2 || arg == 3 || cbTagChecked(arg):
			return false
		}
	}
	return false
}

// seqOf turns a container token into its element iterator.
func seqOf(t *tok) seq {
	if t.u == openLen {
		return seq{open: true, first: true}
	}
	return seq{left: int(t.u)}
}

// end checks that nothing but (JSON) whitespace follows the message.
func (r *rd) end() error {
	if r.ser == JSON {
		r.jsonWS()
	}
	if r.i != len(r.b) {
		return ErrTrailing
	}
	return nil
}

// readKey reads a map key, which must be a string, and the colon after it.
// JSON keys with escapes are unescaped into d's scratch.
func (r *rd) readKey(sc *[]byte) ([]byte, error) {
	if r.ser == JSON {
		return r.jsonKey(sc)
	}
	var t tok
	err := r.next(&t)
	if err != nil {
		return nil, err
	}
	if t.k != kStr {
		return nil, ErrKeyNotString
	}
	s, err := t.text(sc, r.ser)
	if err != nil {
		return nil, err
	}
	return s, r.colon()
}

// text returns a string token's content, unescaping JSON escapes (or
// joining CBOR chunks) into scratch when there are any. ser is the
// serializer the token was read from. The result aliases the input or
// scratch.
func (t *tok) text(sc *[]byte, ser Serializer) ([]byte, error) {
	if !t.esc {
		return t.s, nil
	}
	start := len(*sc)
	out := *sc
	if ser == CBOR {
		out = cbJoin(out, t.s)
	} else {
		var err error
		if out, err = appendUnescaped(out, t.s); err != nil {
			return nil, err
		}
	}
	*sc = out
	return out[start:len(out):len(out)], nil
}

// appendText appends a string token's content to dst. ser is the
// serializer the token was read from.
func (t *tok) appendText(dst []byte, ser Serializer) ([]byte, error) {
	switch {
	case !t.esc:
		return append(dst, t.s...), nil
	case ser == CBOR:
		return cbJoin(dst, t.s), nil
	}
	return appendUnescaped(dst, t.s)
}

// appendBytes appends a binary token's bytes to dst. ser is the serializer
// the token was read from (JSON binary strings are base64).
func (t *tok) appendBytes(dst []byte, ser Serializer) ([]byte, error) {
	switch {
	case ser == JSON:
		return jsonBinary(dst, t.s, t.esc)
	case t.esc:
		return cbJoin(dst, t.s), nil
	}
	return append(dst, t.s...), nil
}
