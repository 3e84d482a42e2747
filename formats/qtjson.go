package formats

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The JSON reader and writer body-patch uses, so that a patched body comes
// out byte for byte as Pushpin writes it (Qt 6's QJsonDocument, compact).

// jnum is a JSON number as Qt 6 holds it: an int64 when the value is whole
// and fits, a float64 otherwise.
type jnum struct {
	i     int64
	f     float64
	isInt bool
}

// parseJSON decodes one JSON value (numbers as jnum); a duplicate key keeps
// its last value, as Qt does.
func parseJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	return toJnum(v)
}

// toJnum replaces every json.Number in v by its jnum.
func toJnum(v any) (any, error) {
	var err error
	switch c := v.(type) {
	case json.Number:
		return parseNumber(string(c))
	case []any:
		for i := range c {
			if c[i], err = toJnum(c[i]); err != nil {
				return nil, err
			}
		}
	case map[string]any:
		for k, e := range c {
			if c[k], err = toJnum(e); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}

// parseNumber reads a JSON number the way Qt 6's JSON parser keeps it.
func parseNumber(s string) (jnum, error) {
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return jnum{i: i, isInt: true}, nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return jnum{}, fmt.Errorf("number %s is out of range", s)
	}
	// Whole values that fit in int64 become integers (Qt's convertDoubleTo).
	if f == math.Trunc(f) && f >= -(1<<63) && f < (1<<63) {
		return jnum{i: int64(f), isInt: true}, nil
	}
	return jnum{f: f}, nil
}

// appendJSON writes v as QJsonDocument::toJson(Compact) would.
func appendJSON(b []byte, v any) []byte {
	switch c := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, c)
	case string:
		return appendQtString(b, c)
	case jnum:
		return appendQtNumber(b, c)
	case []any:
		b = append(b, '[')
		for i, e := range c {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, e)
		}
		return append(b, ']')
	case map[string]any:
		keys := make([]string, 0, len(c))
		for k := range c {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return lessUTF16(keys[i], keys[j]) })
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendQtString(b, k)
			b = append(b, ':')
			b = appendJSON(b, c[k])
		}
		return append(b, '}')
	}
	return append(b, "null"...)
}

// lessUTF16 orders strings by UTF-16 code units, as QString (and so
// QVariantMap) does; it differs from byte order only above U+FFFF.
func lessUTF16(a, b string) bool {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			// Surrogate pairs (runes above U+FFFF) sort before U+E000..U+FFFF.
			if sa, sb := ra > 0xFFFF, rb > 0xFFFF; sa != sb {
				if sa {
					return rb >= 0xE000
				}
				return ra < 0xE000
			}
			return ra < rb
		}
		a, b = a[na:], b[nb:]
	}
	return a == "" && b != ""
}

// appendQtString writes a JSON string escaped as Qt's JSON writer does:
// quote, backslash and controls below 0x20 (\b \f \n \r \t, else \u00xx
// in lower-case hex); everything else, "/" and non-ASCII included, as is.
func appendQtString(b []byte, s string) []byte {
	const hexdig = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexdig[c>>4], hexdig[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// appendQtNumber writes n as Qt 6 does: integers in decimal, other values as
// QByteArray::number(d, 'g', QLocale::FloatingPointShortest), which picks the
// shorter of the decimal and exponent forms (qlocale_tools.cpp resolveFormat).
func appendQtNumber(b []byte, n jnum) []byte {
	if n.isInt {
		return strconv.AppendInt(b, n.i, 10)
	}
	// Shortest round-trip digits and decimal point position, as
	// double-conversion's SHORTEST mode gives them.
	e := strconv.FormatFloat(math.Abs(n.f), 'e', -1, 64) // d.ddde±xx
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	decpt, length := x+1, len(digits)

	bias := 4 // exponent form adds separator, sign and two exponent digits
	if length <= decpt && length > 1 {
		bias++
	} else if length == 1 && decpt <= 0 {
		bias--
	}
	var useDecimal bool
	switch {
	case decpt <= 0:
		useDecimal = 1-decpt <= bias
	case decpt <= length:
		useDecimal = true
	default:
		useDecimal = decpt <= length+bias
	}

	if n.f < 0 {
		b = append(b, '-')
	}
	if !useDecimal {
		b = append(b, digits[0])
		if length > 1 {
			b = append(b, '.')
			b = append(b, digits[1:]...)
		}
		b = append(b, 'e')
		if x < 0 {
			b = append(b, '-')
			x = -x
		} else {
			b = append(b, '+')
		}
		if x < 10 {
			b = append(b, '0')
		}
		return strconv.AppendInt(b, int64(x), 10)
	}
	switch {
	case decpt <= 0:
		b = append(b, '0', '.')
		for ; decpt < 0; decpt++ {
			b = append(b, '0')
		}
		return append(b, digits...)
	case decpt >= length:
		b = append(b, digits...)
		for ; decpt > length; decpt-- {
			b = append(b, '0')
		}
		return b
	default:
		b = append(b, digits[:decpt]...)
		b = append(b, '.')
		return append(b, digits[decpt:]...)
	}
}
