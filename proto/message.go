package proto

// Code is a WAMP message type code.
type Code uint16

// Message type codes (WAMP Basic and Advanced Profile). The wire form of each
// message is given in WAMP notation; [Message] documents which field holds
// which element.
const (
	// [HELLO, Realm|uri, Details|dict]
	CodeHello Code = 1
	// [WELCOME, Session|id, Details|dict]
	CodeWelcome Code = 2
	// [ABORT, Details|dict, Reason|uri]
	CodeAbort Code = 3
	// [CHALLENGE, AuthMethod|string, Extra|dict]
	CodeChallenge Code = 4
	// [AUTHENTICATE, Signature|string, Extra|dict]
	CodeAuthenticate Code = 5
	// [GOODBYE, Details|dict, Reason|uri]
	CodeGoodbye Code = 6
	// [ERROR, REQUEST.Type|int, REQUEST.Request|id, Details|dict, Error|uri, Arguments|list, ArgumentsKw|dict]
	CodeError Code = 8
	// [PUBLISH, Request|id, Options|dict, Topic|uri, Arguments|list, ArgumentsKw|dict]
	CodePublish Code = 16
	// [PUBLISHED, PUBLISH.Request|id, Publication|id]
	CodePublished Code = 17
	// [SUBSCRIBE, Request|id, Options|dict, Topic|uri]
	CodeSubscribe Code = 32
	// [SUBSCRIBED, SUBSCRIBE.Request|id, Subscription|id]
	CodeSubscribed Code = 33
	// [UNSUBSCRIBE, Request|id, SUBSCRIBED.Subscription|id]
	CodeUnsubscribe Code = 34
	// [UNSUBSCRIBED, UNSUBSCRIBE.Request|id] or, for a revocation, [UNSUBSCRIBED, 0, Details|dict]
	CodeUnsubscribed Code = 35
	// [EVENT, SUBSCRIBED.Subscription|id, PUBLISHED.Publication|id, Details|dict, Arguments|list, ArgumentsKw|dict]
	CodeEvent Code = 36
	// [CALL, Request|id, Options|dict, Procedure|uri, Arguments|list, ArgumentsKw|dict]
	CodeCall Code = 48
	// [CANCEL, CALL.Request|id, Options|dict]
	CodeCancel Code = 49
	// [RESULT, CALL.Request|id, Details|dict, Arguments|list, ArgumentsKw|dict]
	CodeResult Code = 50
	// [REGISTER, Request|id, Options|dict, Procedure|uri]
	CodeRegister Code = 64
	// [REGISTERED, REGISTER.Request|id, Registration|id]
	CodeRegistered Code = 65
	// [UNREGISTER, Request|id, REGISTERED.Registration|id]
	CodeUnregister Code = 66
	// [UNREGISTERED, UNREGISTER.Request|id] or, for a revocation, [UNREGISTERED, 0, Details|dict]
	CodeUnregistered Code = 67
	// [INVOCATION, Request|id, REGISTERED.Registration|id, Details|dict, Arguments|list, ArgumentsKw|dict]
	CodeInvocation Code = 68
	// [INTERRUPT, INVOCATION.Request|id, Options|dict]
	CodeInterrupt Code = 69
	// [YIELD, INVOCATION.Request|id, Options|dict, Arguments|list, ArgumentsKw|dict]
	CodeYield Code = 70
	// [EVENT_RECEIVED, EVENT.Publication|id] — not in the RFC; autobahn-python
	// and the specification's test suite use it for acknowledged delivery.
	// Decoded for conformance; the router does not act on it.
	CodeEventReceived Code = 337
)

// String returns the message type's WAMP name, e.g. "CALL".
func (c Code) String() string {
	if l := layoutOf(c); l != nil {
		return l.name
	}
	return "UNKNOWN"
}

// Known reports whether c is a message type edgewamp knows.
func (c Code) Known() bool { return layoutOf(c) != nil }

// element is one position in a message's wire array after the type code.
type element uint8

const (
	elRequest element = iota + 1 // Request|id          → Message.Request
	elID                         // second id           → Message.ID
	elID2                        // third id            → Message.ID2
	elReqType                    // REQUEST.Type|int    → Message.ReqType
	elDict                       // Options/Details/Extra|dict → Message.Dict, Message.Opt
	elURI                        // Realm/Topic/Procedure/Error/Reason|uri → Message.URI
	elString                     // AuthMethod/Signature|string → Message.URI
	elArgs                       // Arguments|list (or a transparent binary payload)
	elKwargs                     // ArgumentsKw|dict
)

// layout describes a message type's wire array. Elements from index
// required on are optional (args, kwargs and the revocation details).
type layout struct {
	name     string
	dictName string // "Options", "Details" or "Extra", for error texts
	el       []element
	required int
	payload  bool // has Arguments/ArgumentsKw (and so may carry a transparent payload)
}

var (
	layHello        = layout{"HELLO", "Details", []element{elURI, elDict}, 2, false}
	layWelcome      = layout{"WELCOME", "Details", []element{elID, elDict}, 2, false}
	layAbort        = layout{"ABORT", "Details", []element{elDict, elURI}, 2, false}
	layChallenge    = layout{"CHALLENGE", "Extra", []element{elString, elDict}, 2, false}
	layAuthenticate = layout{"AUTHENTICATE", "Extra", []element{elString, elDict}, 2, false}
	layGoodbye      = layout{"GOODBYE", "Details", []element{elDict, elURI}, 2, false}
	layError        = layout{"ERROR", "Details", []element{elReqType, elRequest, elDict, elURI, elArgs, elKwargs}, 4, true}
	layPublish      = layout{"PUBLISH", "Options", []element{elRequest, elDict, elURI, elArgs, elKwargs}, 3, true}
	layPublished    = layout{"PUBLISHED", "", []element{elRequest, elID}, 2, false}
	laySubscribe    = layout{"SUBSCRIBE", "Options", []element{elRequest, elDict, elURI}, 3, false}
	laySubscribed   = layout{"SUBSCRIBED", "", []element{elRequest, elID}, 2, false}
	layUnsubscribe  = layout{"UNSUBSCRIBE", "", []element{elRequest, elID}, 2, false}
	layUnsubscribed = layout{"UNSUBSCRIBED", "Details", []element{elRequest, elDict}, 1, false}
	layEvent        = layout{"EVENT", "Details", []element{elID, elID2, elDict, elArgs, elKwargs}, 3, true}
	layCall         = layout{"CALL", "Options", []element{elRequest, elDict, elURI, elArgs, elKwargs}, 3, true}
	layCancel       = layout{"CANCEL", "Options", []element{elRequest, elDict}, 2, false}
	layResult       = layout{"RESULT", "Details", []element{elRequest, elDict, elArgs, elKwargs}, 2, true}
	layRegister     = layout{"REGISTER", "Options", []element{elRequest, elDict, elURI}, 3, false}
	layRegistered   = layout{"REGISTERED", "", []element{elRequest, elID}, 2, false}
	layUnregister   = layout{"UNREGISTER", "", []element{elRequest, elID}, 2, false}
	layUnregistered = layout{"UNREGISTERED", "Details", []element{elRequest, elDict}, 1, false}
	layInvocation   = layout{"INVOCATION", "Details", []element{elRequest, elID, elDict, elArgs, elKwargs}, 3, true}
	layInterrupt    = layout{"INTERRUPT", "Options", []element{elRequest, elDict}, 2, false}
	layYield        = layout{"YIELD", "Options", []element{elRequest, elDict, elArgs, elKwargs}, 2, true}
	layEventRecv    = layout{"EVENT_RECEIVED", "", []element{elID2}, 1, false}
)

// layoutOf returns the wire layout of c, or nil for an unknown code.
func layoutOf(c Code) *layout {
	switch c {
	case CodeHello:
		return &layHello
	case CodeWelcome:
		return &layWelcome
	case CodeAbort:
		return &layAbort
	case CodeChallenge:
		return &layChallenge
	case CodeAuthenticate:
		return &layAuthenticate
	case CodeGoodbye:
		return &layGoodbye
	case CodeError:
		return &layError
	case CodePublish:
		return &layPublish
	case CodePublished:
		return &layPublished
	case CodeSubscribe:
		return &laySubscribe
	case CodeSubscribed:
		return &laySubscribed
	case CodeUnsubscribe:
		return &layUnsubscribe
	case CodeUnsubscribed:
		return &layUnsubscribed
	case CodeEvent:
		return &layEvent
	case CodeCall:
		return &layCall
	case CodeCancel:
		return &layCancel
	case CodeResult:
		return &layResult
	case CodeRegister:
		return &layRegister
	case CodeRegistered:
		return &layRegistered
	case CodeUnregister:
		return &layUnregister
	case CodeUnregistered:
		return &layUnregistered
	case CodeInvocation:
		return &layInvocation
	case CodeInterrupt:
		return &layInterrupt
	case CodeYield:
		return &layYield
	case CodeEventReceived:
		return &layEventRecv
	}
	return nil
}

// Message is one WAMP message of any type. It is a flat struct rather than a
// type per message so that a single value can be reused for every decode
// without allocation. Which fields a type uses follows its wire form:
//
//	Request  Request|id of requests; the answered request's id in replies
//	         (PUBLISHED, SUBSCRIBED, RESULT, ERROR, ...); INVOCATION's own id
//	ID       WELCOME Session; SUBSCRIBED/UNSUBSCRIBE/EVENT Subscription;
//	         PUBLISHED Publication; REGISTERED/UNREGISTER/INVOCATION Registration
//	ID2      EVENT and EVENT_RECEIVED Publication
//	ReqType  ERROR's REQUEST.Type
//	URI      HELLO Realm; ABORT/GOODBYE Reason; ERROR Error; PUBLISH/SUBSCRIBE
//	         Topic; CALL/REGISTER Procedure; CHALLENGE AuthMethod;
//	         AUTHENTICATE Signature
//	Dict     the Options, Details or Extra dict as received (zero when built)
//	Opt      the typed keys of that dict (see [Key])
//	Args     Arguments|list, raw; or the transparent binary payload when
//	         Transparent is set (Payload Passthru Mode / E2EE)
//	Kwargs   ArgumentsKw|dict, raw
//
// HasDict reports whether the optional dict of UNSUBSCRIBED and UNREGISTERED
// (router-initiated revocation) is present.
type Message struct {
	Type        Code
	ReqType     Code
	Transparent bool
	HasDict     bool
	Request     uint64
	ID          uint64
	ID2         uint64
	URI         []byte
	Dict        Raw
	Opt         Fields
	Args        Raw
	Kwargs      Raw
}

// Reset clears m for reuse, keeping nothing that points into old buffers.
func (m *Message) Reset() {
	m.Opt.Reset()
	m.Type, m.ReqType, m.Transparent, m.HasDict = 0, 0, false, false
	m.Request, m.ID, m.ID2 = 0, 0, 0
	m.URI, m.Dict, m.Args, m.Kwargs = nil, Raw{}, Raw{}, Raw{}
}

// Clone returns a deep copy of m that owns all its bytes.
func (m *Message) Clone() *Message {
	c := *m
	c.URI = cloneBytes(m.URI)
	c.Dict = m.Dict.Clone()
	c.Args = m.Args.Clone()
	c.Kwargs = m.Kwargs.Clone()
	c.Opt = m.Opt.clone()
	return &c
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// MaxID is the largest WAMP id: ids are integers in [1, 2^53] so that they
// survive every serializer, JavaScript included (WAMP §Identifiers).
const MaxID = 1 << 53

// MaxDepth bounds the nesting of arrays and maps in any decoded, transcoded
// or encoded value: a value (Arguments, ArgumentsKw, a dictionary) may hold
// containers MaxDepth levels deep, the value itself being the first level.
// Deeper input is refused with [ErrTooDeep]. With the message's own list a
// message is then at most 100 levels deep, as deep as msgpack5 (Autobahn|JS's
// MsgPack) decodes: it throws on a deeper one, from the WebSocket's message
// handler, and the peer's process exits.
const MaxDepth = 99
