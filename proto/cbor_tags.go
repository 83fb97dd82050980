package proto

// CBOR tags. A payload passes through the router to peers of its own
// serializer byte for byte, tags and all, and Autobahn|Python's CBOR
// serializer (cbor2) decodes the tags it knows into Python values: one whose
// content is not what the tag's registration says raises, and
// Autobahn|Python drops the connection (as for invalid UTF-8). So the tags
// below are checked wherever CBOR is read (a payload's validation, options,
// the mesh's ValidArgs), without consuming the tagged item, and one on an
// item of another form is refused with errCBORTagContent. Other tags are read
// through, as before: cbor2 gives them to the application as CBORTag.
//
//	0      date/time text: RFC 3339 as cbor2 parses it, the years 1 to 9999
//	1      epoch date/time: an integer or float within the years 1 to 9999
//	       (datetime's range, the bounds timestamp.go writes tag 1 within)
//	2, 3   bignums: a byte string (cbNext)
//	4, 5   decimal fraction, bigfloat: an array of two integers, the
//	       exponent within ±maxTagExp, the mantissa an integer or a bignum
//	       of at most maxBigBytes (beyond, Python's decimal overflows)
//	24     encoded CBOR data item: a byte string
//	25, 29 string reference, shared value reference: refused. They index
//	       strings and values of the whole message as its sender encoded it
//	       (tags 256 and 28, which may wrap the message itself); the router
//	       builds the message a peer gets anew around the payload, so the
//	       index cannot mean the same there (cbor2: "string reference
//	       outside of namespace", "shared reference 0 not found")
//	30     rational: an array of two integers (or bignums), the
//	       denominator not 0
//	32, 35, 36  URI, regular expression, MIME message: a text string
//	37     UUID: a byte string of 16 bytes
//
// 55799 (self-described CBOR) may stand before any item, the content of a
// checked tag too.

var errCBORTagContent = errf("CBOR tag on an item not of the form its registration gives")

// maxTagExp bounds the exponent of a decimal fraction or bigfloat (tags 4
// and 5). Python's decimal context holds exponents within ±999,999 (a
// bigfloat 2^3,400,000 overflows it, an exponent of 2^63 is refused).
const maxTagExp = 1_000_000

// cbTagChecked reports whether tag n's content is checked (cbCheckTag).
func cbTagChecked(n uint64) bool {
	switch n {
	case 0, 1, 4, 5, 24, 25, 29, 30, 32, 35, 36, 37:
		return true
	}
	return false
}

// cbCheckTag checks the item after the head of tag n, which r is at,
// without consuming it.
func (r *rd) cbCheckTag(n uint64) error {
	p := rd{b: r.b, i: r.i, ser: CBOR}
	major, info, arg, indef, err := p.cbContentHead()
	if err != nil {
		return err
	}
	ok := false
	switch n {
	case 0:
		if major == 3 {
			var s []byte
			if s, err = p.cbStringContent(3, arg, indef); err != nil {
				return err
			}
			ok = rfc3339OK(s)
		}
	case 1:
		ok, err = p.cbEpochOK(major, info, arg)
	case 4, 5, 30:
		if major == 4 && (indef || arg == 2) {
			ok, err = p.cbPairOK(n, indef)
		}
	case 24:
		ok = major == 2
	case 32, 35, 36:
		ok = major == 3
	case 37:
		if major == 2 {
			var s []byte
			if s, err = p.cbStringContent(2, arg, indef); err != nil {
				return err
			}
			ok = len(s) == 16
		}
	}
	if err != nil {
		return err
	}
	if !ok {
		return errCBORTagContent
	}
	return nil
}

// cbContentHead reads the head of a tag's content, through tags 55799.
func (r *rd) cbContentHead() (major, info byte, arg uint64, indef bool, err error) {
	for range 8 {
		major, info, arg, indef, err = r.cbHeadInfo()
		if err != nil || major != 6 || arg != 55799 {
			return
		}
	}
	return 0, 0, 0, false, errCBORTag
}

// cbStringContent returns the content of the byte (major 2) or text
// (major 3) string whose head was just read: the input's bytes, or the
// chunks joined (a copy) when its length is indefinite.
func (r *rd) cbStringContent(major byte, arg uint64, indef bool) ([]byte, error) {
	if !indef {
		return r.span(arg)
	}
	var t tok
	k := kBin
	if major == 3 {
		k = kStr
	}
	if err := r.cbChunked(&t, major, k); err != nil {
		return nil, err
	}
	return cbJoin(nil, t.s), nil
}

// cbEpochOK checks an epoch date/time's content (tag 1), whose head was
// just read: a number within datetime's years 1 to 9999.
func (r *rd) cbEpochOK(major, info byte, arg uint64) (bool, error) {
	switch major {
	case 0:
		return arg < endRFC3339, nil
	case 1: // -1-arg
		return arg <= -1-minDatetime, nil
	case 7:
		var t tok
		if err := cbSimple(&t, arg, info, false); err != nil || t.k != kFloat {
			return false, err
		}
		return t.f >= minDatetime && t.f < endRFC3339, nil
	case 6:
		if arg == 2 || arg == 3 {
			mag, err := r.cbBignum()
			if err != nil || len(mag) > 8 {
				return false, err
			}
			var u uint64
			for _, c := range mag {
				u = u<<8 | uint64(c)
			}
			if arg == 2 {
				return u < endRFC3339, nil
			}
			return u <= -1-minDatetime, nil
		}
	}
	return false, nil
}

// cbBignum reads a bignum's magnitude (the byte string after tag 2 or 3)
// and returns it without its leading zeros.
func (r *rd) cbBignum() ([]byte, error) {
	m, _, arg, indef, err := r.cbHeadInfo()
	if err != nil {
		return nil, err
	}
	if m != 2 {
		return nil, errCBORBignum
	}
	mag, err := r.cbStringContent(2, arg, indef)
	for len(mag) > 0 && mag[0] == 0 {
		mag = mag[1:]
	}
	return mag, err
}

// cbPairOK checks the two elements of a decimal fraction, bigfloat (tags 4,
// 5: exponent, mantissa) or rational (tag 30: numerator, denominator),
// whose array head was just read.
func (r *rd) cbPairOK(n uint64, indef bool) (bool, error) {
	for i := range 2 {
		major, _, arg, _, err := r.cbContentHead()
		if err != nil {
			return false, err
		}
		switch {
		case major == 0 || major == 1:
			if n != 30 && i == 0 && arg >= maxTagExp {
				return false, nil // an exponent
			}
			if n == 30 && i == 1 && major == 0 && arg == 0 {
				return false, nil // a denominator of 0
			}
		case major == 6 && (arg == 2 || arg == 3) && (n == 30 || i == 1):
			mag, err := r.cbBignum()
			if err != nil || len(mag) > maxBigBytes {
				return false, err
			}
			if n == 30 && i == 1 && arg == 2 && len(mag) == 0 {
				return false, nil // a denominator of 0
			}
		default:
			return false, nil
		}
	}
	if indef {
		if r.i >= len(r.b) {
			return false, ErrTruncated
		}
		return r.b[r.i] == 0xff, nil
	}
	return true, nil
}

// rfc3339OK reports whether s is a date/time text that cbor2 decodes (tag
// 0): YYYY-MM-DDTHH:MM:SS, a fraction of one or more digits, then Z or an
// offset ±HH:MM, a valid date of the years 1 to 9999 and time (no leap
// second: Python's datetime has none), an offset within 23:59.
func rfc3339OK(s []byte) bool {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return false
	}
	num := func(i, n int) int {
		v := 0
		for _, c := range s[i : i+n] {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	y, mo, d := num(0, 4), num(5, 2), num(8, 2)
	h, mi, sec := num(11, 2), num(14, 2), num(17, 2)
	if y < 1 || mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59 {
		return false
	}
	i := 19
	if s[i] == '.' {
		i++
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == j {
			return false
		}
	}
	switch {
	case i < len(s) && s[i] == 'Z':
		return i+1 == len(s)
	case i < len(s) && (s[i] == '+' || s[i] == '-'):
		if len(s)-i != 6 || s[i+3] != ':' {
			return false
		}
		oh, om := num(i+1, 2), num(i+4, 2)
		return oh >= 0 && oh <= 23 && om >= 0 && om <= 59
	}
	return false
}

// daysIn is the number of days of month mo (1 to 12) of year y.
func daysIn(y, mo int) int {
	switch mo {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
