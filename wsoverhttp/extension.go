package wsoverhttp

import (
	"bytes"
	"strings"
)

// DefaultMessagePrefix marks a backend's ordinary messages when the grip
// extension is on and names no message-prefix.
const DefaultMessagePrefix = "m:"

// GripExtension is the Sec-WebSocket-Extensions value the proxy sends to a
// backend to offer GRIP control messages.
const GripExtension = "grip"

// ParseGripExtension reads a backend's Sec-WebSocket-Extensions response
// header values (all of them, in order) and reports whether the backend
// enabled the "grip" extension and which message prefix it chose: the
// message-prefix parameter, quoted or not, which may be "" (message-prefix="")
// or DefaultMessagePrefix when absent. Each value may list several
// comma-separated extensions; the first "grip" one counts. A grip entry whose
// parameters cannot be parsed (an unterminated quote) counts as absent, as in
// Pushpin. The extension and parameter names match case-insensitively.
func ParseGripExtension(headerValues []string) (enabled bool, prefix string) {
	for _, hv := range headerValues {
		for _, ext := range splitHeaderList(hv) {
			name, params, hasParams := strings.Cut(ext, ";")
			if !strings.EqualFold(strings.TrimSpace(name), GripExtension) {
				continue
			}
			if !hasParams {
				return true, DefaultMessagePrefix
			}
			p, ok := parseParams(params)
			if !ok {
				return false, ""
			}
			if v, ok := p["message-prefix"]; ok {
				return true, v
			}
			return true, DefaultMessagePrefix
		}
	}
	return false, ""
}

// splitHeaderList splits a header value on the commas that are not inside a
// quoted string, trimming each part. An unterminated quote makes the rest of
// the value one part.
func splitHeaderList(s string) []string {
	var parts []string
	start, inQuote := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == ',':
			parts = append(parts, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	if start < len(s) {
		parts = append(parts, strings.TrimSpace(s[start:]))
	}
	return parts
}

// parseParams parses "; k=v; k2="quoted \" value"; flag" (without the leading
// extension name) into lower-cased keys; the last duplicate wins. A value may
// be a quoted string with backslash escapes, or a bare token up to the next
// ';' (trimmed, possibly empty). ok is false for an unterminated quoted
// string or a dangling escape.
func parseParams(s string) (params map[string]string, ok bool) {
	params = make(map[string]string)
	pos := 0
	for pos < len(s) {
		at := strings.IndexAny(s[pos:], "=;")
		if at < 0 {
			params[strings.ToLower(strings.TrimSpace(s[pos:]))] = ""
			break
		}
		at += pos
		key := strings.ToLower(strings.TrimSpace(s[pos:at]))
		if s[at] == ';' {
			params[key] = ""
			pos = at + 1
			continue
		}
		at++ // skip '='
		if at < len(s) && s[at] == '"' {
			var val strings.Builder
			closed := false
			for at++; at < len(s); at++ {
				c := s[at]
				if c == '\\' {
					if at+1 >= len(s) {
						return nil, false
					}
					at++
					val.WriteByte(s[at])
				} else if c == '"' {
					closed = true
					at++
					break
				} else {
					val.WriteByte(c)
				}
			}
			if !closed {
				return nil, false
			}
			params[key] = val.String()
			// Anything between the closing quote and the next ';' is ignored.
			if next := strings.IndexByte(s[at:], ';'); next >= 0 {
				pos = at + next + 1
			} else {
				pos = len(s)
			}
			continue
		}
		end := len(s)
		if next := strings.IndexByte(s[at:], ';'); next >= 0 {
			end = at + next
		}
		params[key] = strings.TrimSpace(s[at:end])
		pos = end + 1
	}
	return params, true
}

// MessageKind says what to do with a backend message when the grip extension
// is on.
type MessageKind uint8

// The outcomes of SplitMessage.
const (
	MessageData    MessageKind = iota + 1 // relay the payload to the client
	MessageControl                        // parse the payload with ParseControl
	MessageDrop                           // drop silently: content without the message prefix
)

// String names the kind for logs and test failures.
func (k MessageKind) String() string {
	switch k {
	case MessageData:
		return "data"
	case MessageControl:
		return "control"
	case MessageDrop:
		return "drop"
	}
	return "MessageKind(?)"
}

// SplitMessage classifies one complete backend message of type t when the
// grip extension is on, with the prefix from ParseGripExtension:
//
//   - a Text message starting with "c:" is a control message (also when the
//     prefix is empty); payload is the JSON after "c:";
//   - a Text or Binary message starting with prefix is data; payload is the
//     message without the prefix;
//   - any other Text or Binary message is dropped silently, as Pushpin does;
//   - other types (Ping, Pong, Close, ...) are relayed as they are.
//
// Only Text messages can be control messages: a Binary message starting with
// "c:" is data or dropped by the prefix rule. payload aliases data.
func SplitMessage(t EventType, data []byte, prefix string) (kind MessageKind, payload []byte) {
	switch t {
	case Text:
		if bytes.HasPrefix(data, []byte(ControlPrefix)) {
			return MessageControl, data[len(ControlPrefix):]
		}
	case Binary:
	default:
		return MessageData, data
	}
	if len(data) >= len(prefix) && string(data[:len(prefix)]) == prefix {
		return MessageData, data[len(prefix):]
	}
	return MessageDrop, nil
}
