package instruct

import (
	"errors"
	"strings"
)

// This file splits and tokenizes GRIP header values the way Pushpin does
// (core/httpheaders.cpp): a header holds comma-separated entries, and each
// entry is a leading value followed by `;key=value` parameters whose values may
// be double-quoted with backslash escapes, e.g.
//
//	Grip-Channel: a, b; prev-id=3, c; filter=skip-self; filter="x, y"

// headerParam is one `;key=value` parameter. The value is unquoted and
// unescaped; a parameter without '=' has an empty value.
type headerParam struct {
	key, value string
}

// headerEntry is one comma-separated entry of a header value.
type headerEntry struct {
	// first is the text before the first ';', trimmed and taken as is:
	// quotes in it are not special (Pushpin's NoParseFirstParameter mode).
	first  string
	params []headerParam
}

// param returns the value of the first parameter named key (matched
// case-insensitively) and whether there is one.
func (e *headerEntry) param(key string) (string, bool) {
	for _, p := range e.params {
		if strings.EqualFold(p.key, key) {
			return p.value, true
		}
	}
	return "", false
}

var (
	errUnterminatedQuote = errors.New("unterminated quoted string")
	errDanglingEscape    = errors.New("backslash at end of quoted string")
)

// splitHeader splits a header value on the commas that are outside
// double-quoted strings and trims each part. Inside quotes a backslash escapes
// the next character. Empty parts between commas are kept (callers decide what
// an empty entry means), but a trailing empty part, as in "a, b," is dropped.
//
// ok is false when the value ends inside a quoted string or on a dangling
// escape; the last part then holds the whole unterminated remainder, and
// callers drop it (Pushpin drops such entries as well).
func splitHeader(v string) (parts []string, ok bool) {
	start := 0
	inQuote := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case inQuote && c == '\\':
			i++ // skip the escaped character; a dangling escape leaves inQuote set
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == ',':
			parts = append(parts, trimHeaderSpace(v[start:i]))
			start = i + 1
		}
	}
	ok = !inQuote
	if last := trimHeaderSpace(v[start:]); last != "" || !ok {
		parts = append(parts, last)
	}
	return parts, ok
}

// parseHeaderEntry tokenizes one entry (already split off its header). With
// firstIsParam false the text before the first ';' becomes e.first, which is
// how every GRIP header but Grip-Set-Meta reads; with firstIsParam true the
// whole entry is parameters, so "user=alice" yields the parameter user=alice.
//
// A quoted value ends at its closing quote; anything between that quote and
// the next ';' is ignored. Whitespace around keys and unquoted values is
// trimmed. Errors report an unterminated quoted value or a dangling escape.
func parseHeaderEntry(s string, firstIsParam bool) (headerEntry, error) {
	var e headerEntry
	pos := 0
	if !firstIsParam {
		if i := strings.IndexByte(s, ';'); i >= 0 {
			e.first = trimHeaderSpace(s[:i])
			pos = i + 1
		} else {
			e.first = trimHeaderSpace(s)
			pos = len(s)
		}
	}
	for pos < len(s) {
		i := strings.IndexAny(s[pos:], "=;")
		if i < 0 {
			e.params = append(e.params, headerParam{key: trimHeaderSpace(s[pos:])})
			break
		}
		at := pos + i
		key := trimHeaderSpace(s[pos:at])
		if s[at] == ';' {
			e.params = append(e.params, headerParam{key: key})
			pos = at + 1
			continue
		}
		// s[at] == '='; optional whitespace may precede a quoted value.
		vstart := at + 1
		for vstart < len(s) && (s[vstart] == ' ' || s[vstart] == '\t') {
			vstart++
		}
		if vstart < len(s) && s[vstart] == '"' {
			val, end, err := unquoteParam(s, vstart+1)
			if err != nil {
				return headerEntry{}, err
			}
			e.params = append(e.params, headerParam{key: key, value: val})
			if j := strings.IndexByte(s[end:], ';'); j >= 0 {
				pos = end + j + 1
			} else {
				pos = len(s)
			}
			continue
		}
		if j := strings.IndexByte(s[vstart:], ';'); j >= 0 {
			e.params = append(e.params, headerParam{key: key, value: trimHeaderSpace(s[vstart : vstart+j])})
			pos = vstart + j + 1
		} else {
			e.params = append(e.params, headerParam{key: key, value: trimHeaderSpace(s[vstart:])})
			pos = len(s)
		}
	}
	return e, nil
}

// unquoteParam reads a quoted string whose content starts at s[from] (just past
// the opening quote). It returns the unescaped content and the index just past
// the closing quote.
func unquoteParam(s string, from int) (val string, end int, err error) {
	// Fast path: no escapes, the value is a substring.
	for i := from; i < len(s); i++ {
		switch s[i] {
		case '"':
			return s[from:i], i + 1, nil
		case '\\':
			return unquoteParamSlow(s, from)
		}
	}
	return "", 0, errUnterminatedQuote
}

func unquoteParamSlow(s string, from int) (string, int, error) {
	var b strings.Builder
	for i := from; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 >= len(s) {
				return "", 0, errDanglingEscape
			}
			i++
			b.WriteByte(s[i])
		case '"':
			return b.String(), i + 1, nil
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, errUnterminatedQuote
}

// trimHeaderSpace trims ASCII whitespace from both ends, like the Qt
// trimmed() that Pushpin applies to every token.
func trimHeaderSpace(s string) string {
	for len(s) > 0 && isHeaderSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isHeaderSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

func isHeaderSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

// MediaTypeIs reports whether a Content-Type value names the media type
// want, parameters aside, compared case-insensitively.
func MediaTypeIs(ct, want string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(trimHeaderSpace(ct), want)
}
