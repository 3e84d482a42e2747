package formats

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// The JSON scanner behind DecodePublish: syntax checks and string
// decoding, nothing publish-specific.

// object parses the object at the cursor, calling field with each key and
// the cursor on its value; field must consume the value.
func (r *decReader) object(field func(k []byte) error) error {
	if r.depth++; r.depth > decMaxDepth {
		return errDecSyntax
	}
	r.i++
	for n := 0; ; n++ {
		more, err := r.next('}', n)
		if err != nil || !more {
			return err
		}
		if r.peek() != '"' {
			return errDecSyntax
		}
		ks, err := r.value()
		if err != nil {
			return err
		}
		if r.peek() != ':' {
			return errDecSyntax
		}
		r.i++
		if err := field(r.text(ks)); err != nil {
			return err
		}
	}
}

// next moves to the n-th element of the open container: false at its end.
func (r *decReader) next(end byte, n int) (bool, error) {
	c := r.peek()
	if c == end {
		r.i++
		r.depth--
		return false, nil
	}
	if n > 0 {
		if c != ',' {
			return false, errDecSyntax
		}
		r.i++
	}
	return true, nil
}

// value checks the syntax of the value at the cursor and returns its span.
func (r *decReader) value() (decSpan, error) {
	c := r.peek()
	s := decSpan{off: r.i}
	var err error
	switch {
	case c == '"':
		s.plain, err = r.str()
	case c == '{':
		err = r.object(func([]byte) error { _, err := r.value(); return err })
	case c == '[':
		err = r.array(func() error { _, err := r.value(); return err })
	case c == '-' || c >= '0' && c <= '9':
		err = r.number()
	case c == 't':
		err = r.literal("true")
	case c == 'f':
		err = r.literal("false")
	case c == 'n':
		err = r.literal("null")
	default:
		err = errDecSyntax
	}
	s.end = r.i
	return s, err
}

// array parses the array at the cursor, calling elem with the cursor on
// each element; elem must consume it.
func (r *decReader) array(elem func() error) error {
	if r.depth++; r.depth > decMaxDepth {
		return errDecSyntax
	}
	r.i++
	for n := 0; ; n++ {
		more, err := r.next(']', n)
		if err != nil || !more {
			return err
		}
		if err := elem(); err != nil {
			return err
		}
	}
}

func (r *decReader) literal(word string) error {
	if !bytes.HasPrefix(r.b[r.i:], []byte(word)) {
		return errDecSyntax
	}
	r.i += len(word)
	return nil
}

func (r *decReader) number() error {
	b, i := r.b, r.i
	if b[i] == '-' {
		i++
	}
	digits := func() bool {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > start
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		return errDecSyntax
	}
	if i < len(b) && b[i] == '.' {
		if i++; !digits() {
			return errDecSyntax
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return errDecSyntax
		}
	}
	r.i = i
	return nil
}

// decPlain marks the bytes a string may hold as they are: printable ASCII
// other than '"' and '\\'.
var decPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str skips the string at the cursor, checking escapes and UTF-8 (Qt rejects
// invalid UTF-8 as invalid JSON); plain reports that it holds no escapes.
func (r *decReader) str() (plain bool, err error) {
	b := r.b
	plain = true
	for i := r.i + 1; i < len(b); {
		c := b[i]
		if decPlain[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			r.i = i + 1
			return plain, nil
		case c == '\\':
			plain = false
			if i+1 >= len(b) {
				return false, errDecSyntax
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if _, ok := decHex4(b[i+2:]); !ok {
					return false, errDecSyntax
				}
				i += 6
			default:
				return false, errDecSyntax
			}
		case c < 0x20:
			return false, errDecSyntax
		default:
			rn, size := utf8.DecodeRune(b[i:])
			if rn == utf8.RuneError && size == 1 {
				return false, errDecSyntax
			}
			i += size
		}
	}
	return false, errDecSyntax
}

func decHex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// text returns the decoded bytes of a checked string span. A plain string
// aliases the body; an escaped one is decoded into a new slice, with lone
// surrogates turned into U+FFFD as encoding/json does.
func (r *decReader) text(s decSpan) []byte {
	in := r.b[s.off+1 : s.end-1]
	if s.plain {
		return in
	}
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); {
		j := bytes.IndexByte(in[i:], '\\')
		if j < 0 {
			return append(out, in[i:]...)
		}
		out = append(out, in[i:i+j]...)
		i += j
		c := in[i+1]
		switch c {
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		case 'u':
			rn, _ := decHex4(in[i+2:])
			i += 6
			if utf16.IsSurrogate(rn) {
				rn2, ok := rune(0), false
				if i+1 < len(in) && in[i] == '\\' && in[i+1] == 'u' {
					rn2, ok = decHex4(in[i+2:])
				}
				if pair := utf16.DecodeRune(rn, rn2); ok && pair != utf8.RuneError {
					rn = pair
					i += 6
				} else {
					rn = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, rn)
			continue
		}
		out = append(out, c)
		i += 2
	}
	return out
}

// each calls fn with every member (k is nil in an array) of the checked
// container at s, stopping at fn's first error.
func (r *decReader) each(s decSpan, fn func(k []byte, v decSpan) error) error {
	sub := decReader{b: r.b, i: s.off}
	if r.b[s.off] == '{' {
		return sub.object(func(k []byte) error {
			v, err := sub.value()
			if err != nil {
				return err
			}
			return fn(k, v)
		})
	}
	if r.b[s.off] != '[' {
		return errDecSyntax
	}
	return sub.array(func() error {
		v, err := sub.value()
		if err != nil {
			return err
		}
		return fn(nil, v)
	})
}
