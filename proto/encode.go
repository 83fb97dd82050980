package proto

// Encoder encodes WAMP messages. It owns a scratch buffer used while
// transcoding. The zero Encoder is ready to use; it is not safe for
// concurrent use.
type Encoder struct {
	scratch []byte
	// MaxConverted, when positive, bounds the length of a message whose
	// payload or options Append converts from another serializer: past
	// it Append stops converting and fails with ErrTooLarge. Converting
	// can multiply a payload's length (a CBOR half float is 3 bytes, as
	// JSON up to 24; a control character is 1 byte, as a JSON escape 6),
	// and the message is built whole before any peer can refuse it.
	// Payloads copied in their own serializer are not checked.
	MaxConverted int
}

// Append appends m encoded in ser to dst and returns the extended buffer.
// Raw parts (Dict, Args, Kwargs, raw Fields values) already in ser are
// copied as they are, unless marked Raw.Normalize; others are transcoded.
// When m.Dict is present it is written as is and m.Opt is ignored;
// otherwise m.Opt is written. In steady state (dst with room, no
// transcoding) it allocates nothing.
func (e *Encoder) Append(dst []byte, ser Serializer, m *Message) ([]byte, error) {
	lay := layoutOf(m.Type)
	if lay == nil {
		return dst, ErrUnknownType
	}
	if !ser.Valid() {
		return dst, ErrBadSerializer
	}
	n := lay.required
	switch {
	case m.Kwargs.B != nil:
		n = len(lay.el)
	case m.Args.B != nil:
		n = len(lay.el) - 1
	case (m.Type == CodeUnsubscribed || m.Type == CodeUnregistered) && m.HasDict:
		n = 2
	}
	w := wr{b: dst, ser: ser}
	if e.MaxConverted > 0 {
		w.max = len(dst) + e.MaxConverted
	}
	w.arr(n + 1)
	w.uint(uint64(m.Type))
	for _, el := range lay.el[:n] {
		w.comma()
		if err := e.element(&w, m, el); err != nil {
			e.release()
			return dst, err
		}
	}
	w.endArr()
	e.release()
	return w.b, nil
}

// release drops e's scratch buffer when a long string or byte string
// converted to another serializer grew it past maxKeptScratch: nothing
// Append returns aliases it, and an Encoder is kept for good (one per
// event loop).
func (e *Encoder) release() {
	if cap(e.scratch) > maxKeptScratch {
		e.scratch = nil
	}
}

func (e *Encoder) element(w *wr, m *Message, el element) error {
	switch el {
	case elRequest:
		w.uint(m.Request)
	case elID:
		w.uint(m.ID)
	case elID2:
		w.uint(m.ID2)
	case elReqType:
		w.uint(uint64(m.ReqType))
	case elDict:
		if m.Dict.B != nil {
			return w.raw(m.Dict, &e.scratch)
		}
		return w.writeFields(&m.Opt, &e.scratch)
	case elURI, elString:
		return w.str(m.URI)
	case elArgs:
		if m.Args.B == nil {
			w.arr(0)
			w.endArr()
			return nil
		}
		return w.rawAt(m.Args, 0, true, &e.scratch)
	case elKwargs:
		return w.rawAt(m.Kwargs, 0, true, &e.scratch)
	}
	return nil
}

// raw writes an encoded dictionary or option value, transcoding it when its
// serializer differs.
func (w *wr) raw(r Raw, sc *[]byte) error { return w.rawAt(r, 0, false, sc) }

// rawAt is raw for a value nested in depth containers; dates is set for
// payloads (see rd.dates). A value in w's serializer is copied, unless it
// is marked to be normalized (Raw.Normalize).
func (w *wr) rawAt(r Raw, depth int, dates bool, sc *[]byte) error {
	if r.Ser == w.ser && !r.Normalize {
		w.b = append(w.b, r.B...)
		return nil
	}
	start := len(w.b)
	src := rd{b: r.B, ser: r.Ser, dates: dates}
	if err := transcodeValue(&src, w, depth, sc); err != nil {
		w.b = w.b[:start]
		return err
	}
	if err := src.end(); err != nil {
		w.b = w.b[:start]
		return err
	}
	if w.max > 0 && len(w.b) > w.max {
		w.b = w.b[:start]
		return ErrTooLarge
	}
	return nil
}

// Append encodes m in ser with a temporary Encoder. Convenience for cold
// paths and tests.
func Append(dst []byte, ser Serializer, m *Message) ([]byte, error) {
	var e Encoder
	return e.Append(dst, ser, m)
}
