package proto

// CBOR tags in payloads. The router reads a tag it does not understand
// through, using the tagged item as it is, and so JSON and MsgPack peers get
// the item without the tag. CBOR peers got the tag as it came, and
// JavaScript's decoders refuse many with an exception: node-cbor
// (Autobahn|JS) any tag from 2^31 up ("Tag must be a positive integer"),
// thrown from the WebSocket's message handler, which ends the peer's Node
// process; cbor-x (wampy) tags it gives meanings of its own (2^32 and up,
// 225 and 28704 to 28711 for packed values, 51 for a packed table, 27 on
// null, 29 without 28, 258 on an integer), which close its session. A
// payload holding a tag that cbTagKept does not keep is marked
// (rd.norm, Raw.Normalize), so that CBOR peers get it transcoded, the tag
// stripped as for the other serializers' peers; what cbTagKept keeps (and
// CBOR's undefined) the transcoder writes for them as it came. Self-described CBOR (tag
// 55799) has no meaning, but node-cbor unwraps it only around a whole
// document: in a payload Autobahn|JS got a Tagged object, not the value
// the other peers get, so it is stripped too.

// cbTagKept reports whether a payload's tag, whose tagged item follows at
// r.i, passes to CBOR peers as it came: the tags the router understands
// and every CBOR decoder reads alike: a bignum (2, 3, read by cbNext), an
// epoch date (1) on a number in the years 1 to 9999 (what wr.time tags:
// cbor2 refuses a datetime beyond them), a date text (0) on a text string.
func (r *rd) cbTagKept(tag uint64) bool {
	switch tag {
	case 2, 3:
		return true
	case 0:
		return r.i < len(r.b) && r.b[r.i]>>5 == 3
	case 1:
		p := rd{b: r.b, i: r.i, ser: CBOR}
		major, info, arg, _, err := p.cbHeadInfo()
		if err != nil {
			return true // cbNext fails on it
		}
		switch major {
		case 0:
			return arg < endRFC3339
		case 1: // -1-arg
			return arg < -minDatetime
		case 7:
			var t tok
			if cbSimple(&t, arg, info, true) != nil || t.k != kFloat {
				return false
			}
			return t.f >= minDatetime && t.f < endRFC3339
		}
	}
	return false
}
