package formats

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
)

// The readers of single fields of a publish body: each checks the JSON
// type and range of one value and reports errors with Pushpin's texts.

func decWrongType(pn, field string) error {
	return decErr(pn + " contains '" + field + "' with wrong type")
}

func decInvalid(pn, field string) error {
	return decErr(pn + " contains '" + field + "' with invalid value")
}

func decTooLong(pn, field string, max int) error {
	return decErr(pn + " contains '" + field + "' longer than " + strconv.Itoa(max) + " bytes")
}

func (r *decReader) kind(s decSpan) byte { return r.b[s.off] }

// optString reads an optional string field.
func (r *decReader) optString(s decSpan, pn, field string) (string, error) {
	if !s.ok() {
		return "", nil
	}
	if r.kind(s) != '"' {
		return "", decWrongType(pn, field)
	}
	return string(r.text(s)), nil
}

// whole reads a number field that must be a whole number in [lo, hi].
func (r *decReader) whole(s decSpan, pn, field string, lo, hi int) (int, error) {
	num := r.b[s.off:s.end]
	if c := num[0]; c != '-' && (c < '0' || c > '9') {
		return 0, decWrongType(pn, field)
	}
	n, fast := 0, len(num) <= 9 // the common case: a small unsigned integer
	for _, c := range num {
		if c < '0' || c > '9' {
			fast = false
			break
		}
		n = n*10 + int(c-'0')
	}
	if !fast {
		f, err := strconv.ParseFloat(string(num), 64)
		if err != nil || f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
			return 0, decInvalid(pn, field)
		}
		n = int(f)
	}
	if n < lo || n > hi {
		return 0, decInvalid(pn, field)
	}
	return n, nil
}

// bytes copies a string span's decoded bytes out of the body.
func (r *decReader) bytes(s decSpan) []byte {
	if s.plain {
		return bytes.Clone(r.text(s))
	}
	return r.text(s)
}

// base64 decodes a body-bin / content-bin string, padded or not.
func (r *decReader) base64(s decSpan, pn, field string) ([]byte, error) {
	if r.kind(s) != '"' {
		return nil, decWrongType(pn, field)
	}
	b, err := DecodeBase64(r.text(s))
	if err != nil {
		return nil, decInvalid(pn, field)
	}
	return b, nil
}

// DecodeBase64 reads standard base64, padded or not, as GRIP's -bin fields
// (publish formats, instructions) carry it. Unlike Pushpin, which decodes
// garbage leniently, it rejects anything else.
func DecodeBase64(src []byte) ([]byte, error) {
	dst := make([]byte, base64.RawStdEncoding.DecodedLen(len(src)))
	n, err := base64.StdEncoding.Decode(dst, src)
	if err != nil {
		n, err = base64.RawStdEncoding.Decode(dst, src)
	}
	if err != nil {
		return nil, err
	}
	return dst[:n], nil
}

// content reads "<bin>" (base64) over "<plain>" (text), reporting whether
// either was present.
func (r *decReader) content(fm *decFormat, pn string, bin, plain int) ([]byte, bool, error) {
	if s := fm.f[bin]; s.ok() {
		b, err := r.base64(s, pn, decFormatKeys[bin])
		return b, true, err
	}
	if s := fm.f[plain]; s.ok() {
		if r.kind(s) != '"' {
			return nil, true, decWrongType(pn, decFormatKeys[plain])
		}
		return r.bytes(s), true, nil
	}
	return nil, false, nil
}

func (r *decReader) action(fm *decFormat, pn string, ws bool) (Action, error) {
	s := fm.f[decFAction]
	if !s.ok() {
		return ActionSend, nil
	}
	if r.kind(s) != '"' {
		return "", decWrongType(pn, "action")
	}
	switch string(r.text(s)) {
	case "send":
		return ActionSend, nil
	case "hint":
		return ActionHint, nil
	case "close":
		return ActionClose, nil
	case "refresh":
		if ws {
			return ActionRefresh, nil
		}
	}
	return "", decErr(pn + " contains 'action' with unknown value")
}

// filters reads content-filters: nil when absent, non-nil when present.
func (r *decReader) filters(fm *decFormat, pn string) ([]string, error) {
	s := fm.f[decFContentFilters]
	if !s.ok() {
		return nil, nil
	}
	if r.kind(s) != '[' {
		return nil, decWrongType(pn, "content-filters")
	}
	out := []string{}
	err := r.each(s, func(_ []byte, v decSpan) error {
		if r.kind(v) != '"' {
			return decErr("content-filters contains element with wrong type")
		}
		out = append(out, string(r.text(v)))
		return nil
	})
	return out, err
}

// decHeader copies a header's name and value out in one allocation.
func decHeader(name, value []byte) Header {
	s := string(name) + string(value)
	return Header{Name: s[:len(name)], Value: s[len(name):]}
}

func (r *decReader) headers(s decSpan, pn string) ([]Header, error) {
	var out []Header
	switch r.kind(s) {
	case '{':
		err := r.each(s, func(k []byte, v decSpan) error {
			if r.kind(v) != '"' {
				return decErr("headers contains '" + string(k) + "' with wrong type")
			}
			h := decHeader(k, r.text(v))
			if err := checkHeader(h); err != nil {
				return err
			}
			out = append(out, h)
			return nil
		})
		return out, err
	case '[':
		err := r.each(s, func(_ []byte, v decSpan) error {
			if r.kind(v) != '[' {
				return decErr("headers contains element with wrong type")
			}
			var pair [2]decSpan
			n := 0
			_ = r.each(v, func(_ []byte, e decSpan) error { // a checked span: cannot fail
				if n < 2 {
					pair[n] = e
				}
				n++
				return nil
			})
			switch {
			case n != 2:
				return decErr("headers contains list with wrong number of elements")
			case r.kind(pair[0]) != '"':
				return decErr("header contains name element with wrong type")
			case r.kind(pair[1]) != '"':
				return decErr("header contains value element with wrong type")
			}
			h := decHeader(r.text(pair[0]), r.text(pair[1]))
			if err := checkHeader(h); err != nil {
				return err
			}
			out = append(out, h)
			return nil
		})
		return out, err
	}
	return nil, decWrongType(pn, "headers")
}

// bodyPatch keeps a JSON Patch as raw JSON after checking its shape.
func (r *decReader) bodyPatch(s decSpan, pn string) (json.RawMessage, error) {
	if r.kind(s) != '[' {
		return nil, decWrongType(pn, "body-patch")
	}
	err := r.each(s, func(_ []byte, v decSpan) error {
		if r.kind(v) != '{' {
			return decErr("body-patch contains element with wrong type")
		}
		op := false
		_ = r.each(v, func(k []byte, f decSpan) error { // a checked span: cannot fail
			if string(k) == "op" {
				op = r.kind(f) == '"'
			}
			return nil
		})
		if !op {
			return decErr("body-patch contains element without 'op'")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	patch := bytes.Clone(r.b[s.off:s.end])
	// Pushpin accepts a patch that can never apply (an unknown op, a
	// missing path); refusing it here tells the publisher at once.
	if err := ValidateJSONPatch(patch); err != nil {
		return nil, decErr(err.Error())
	}
	return patch, nil
}
