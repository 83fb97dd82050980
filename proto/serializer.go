package proto

// Serializer identifies a WAMP serializer. The values are the RawSocket
// serializer ids of the WAMP specification, so a RawSocket handshake octet
// maps to a Serializer directly.
type Serializer uint8

// The serializers edgewamp speaks.
const (
	JSON    Serializer = 1
	MsgPack Serializer = 2
	CBOR    Serializer = 3
)

// String returns the serializer's WAMP name ("json", "msgpack", "cbor").
func (s Serializer) String() string {
	switch s {
	case JSON:
		return "json"
	case MsgPack:
		return "msgpack"
	case CBOR:
		return "cbor"
	}
	return "unknown"
}

// Valid reports whether s is one of the serializers edgewamp speaks.
func (s Serializer) Valid() bool { return s >= JSON && s <= CBOR }

// Binary reports whether messages in s travel as binary WebSocket frames.
// JSON travels as text frames.
func (s Serializer) Binary() bool { return s != JSON }

// WebSocket subprotocol names (WAMP §Building Blocks; the batched variants
// are in the Advanced Profile).
const (
	SubprotocolJSON           = "wamp.2.json"
	SubprotocolMsgPack        = "wamp.2.msgpack"
	SubprotocolCBOR           = "wamp.2.cbor"
	SubprotocolJSONBatched    = "wamp.2.json.batched"
	SubprotocolMsgPackBatched = "wamp.2.msgpack.batched"
	SubprotocolCBORBatched    = "wamp.2.cbor.batched"
)

// ParseSubprotocol maps a WebSocket subprotocol name to its serializer and
// whether it is the batched variant. ok is false for a name edgewamp does not
// speak.
func ParseSubprotocol(p string) (s Serializer, batched, ok bool) {
	switch p {
	case SubprotocolJSON:
		return JSON, false, true
	case SubprotocolMsgPack:
		return MsgPack, false, true
	case SubprotocolCBOR:
		return CBOR, false, true
	case SubprotocolJSONBatched:
		return JSON, true, true
	case SubprotocolMsgPackBatched:
		return MsgPack, true, true
	case SubprotocolCBORBatched:
		return CBOR, true, true
	}
	return 0, false, false
}

// Subprotocol returns the WebSocket subprotocol name of s.
func (s Serializer) Subprotocol(batched bool) string {
	switch s {
	case JSON:
		if batched {
			return SubprotocolJSONBatched
		}
		return SubprotocolJSON
	case MsgPack:
		if batched {
			return SubprotocolMsgPackBatched
		}
		return SubprotocolMsgPack
	case CBOR:
		if batched {
			return SubprotocolCBORBatched
		}
		return SubprotocolCBOR
	}
	return ""
}

// Raw is a value still encoded in the serializer it arrived in. B aliases the
// buffer it was decoded from unless the Raw was cloned. The zero Raw means
// "absent".
type Raw struct {
	Ser Serializer
	// Normalize: the value holds something the router converts even for
	// a peer of its own serializer (see Decode), so that Encoder.Append
	// transcodes it to Ser rather than copy it. Decode and CheckArgs set
	// it; a value the router encoded itself never needs it.
	Normalize bool
	B         []byte
}

// Present reports whether r holds a value.
func (r Raw) Present() bool { return r.B != nil }

// Clone returns a copy of r that owns its bytes.
func (r Raw) Clone() Raw {
	if r.B == nil {
		return r
	}
	r.B = append(make([]byte, 0, len(r.B)), r.B...)
	return r
}
