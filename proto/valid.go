package proto

// ValidArgs reports whether r is well-formed Arguments: exactly one value
// in r.Ser, a list (or, when transparent, a binary payload: Payload
// Passthru Mode). ValidKwargs reports whether r is a well-formed
// ArgumentsKw dictionary. They check what Decode checks of a message's
// payload, for payloads that did not come from Decode (another router of a
// mesh). They do not allocate.
func ValidArgs(r Raw, transparent bool) bool { return CheckArgs(&r, transparent) }

// ValidKwargs: see ValidArgs.
func ValidKwargs(r Raw) bool { return CheckKwargs(&r) }

// CheckArgs is ValidArgs that also marks r, as Decode marks a message's
// payload, when it is to be normalized (Raw.Normalize).
func CheckArgs(r *Raw, transparent bool) bool {
	if transparent {
		return validValue(r, kBin)
	}
	return validValue(r, kArr)
}

// CheckKwargs: see CheckArgs.
func CheckKwargs(r *Raw) bool { return validValue(r, kMap) }

func validValue(r *Raw, want kind) bool {
	if !r.Ser.Valid() {
		return false
	}
	d := rd{b: r.B, ser: r.Ser}
	if r.Ser == JSON {
		d.jsonWS()
	}
	save := d.i
	var t tok
	if d.next(&t) != nil || t.k != want {
		return false
	}
	d.i = save
	if _, err := d.skip(0); err != nil {
		return false
	}
	r.Normalize = d.norm
	return d.end() == nil
}

// ListElement returns element i of r, a list, as it is encoded there (B
// aliases r.B), marked Normalize as Decode marks a payload holding what it
// holds. ok is false when r is not a well-formed list or has no element
// i. It lets a value sent inside a list (a meta call's arguments) be kept
// and passed on as its sender encoded it, where decoding it into Go values
// and encoding them again would change what the serializer the router
// picks cannot carry.
func ListElement(r Raw, i int) (Raw, bool) {
	if !r.Ser.Valid() || i < 0 {
		return Raw{}, false
	}
	d := rd{b: r.B, ser: r.Ser}
	var t tok
	if d.next(&t) != nil || t.k != kArr {
		return Raw{}, false
	}
	s := seqOf(&t)
	for j := 0; ; j++ {
		ok, err := d.more(&s, ']')
		if err != nil || !ok {
			return Raw{}, false
		}
		d.norm = false
		span, err := d.skip(1)
		if err != nil {
			return Raw{}, false
		}
		if j == i {
			return Raw{Ser: r.Ser, Normalize: d.norm, B: span}, true
		}
	}
}
