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
