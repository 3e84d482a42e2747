// Package wsoverhttp implements the wire formats a GRIP proxy speaks to a
// WebSocket backend, as Pushpin does:
//
//   - WebSocket-over-HTTP (WOH) event bodies, the application/websocket-events
//     content type: a sequence of "TYPE <hex length>\r\n<content>\r\n" or
//     "TYPE\r\n" records carrying OPEN, TEXT, BINARY, PING, PONG, CLOSE and
//     DISCONNECT (AppendEvents, ParseEvents);
//   - GRIP control messages, the JSON a backend sends in a "c:" text message
//     (ParseControl);
//   - the "grip" WebSocket extension a backend uses to turn control messages
//     on, and the message prefix ("m:" by default) that marks its ordinary
//     messages (ParseGripExtension, SplitMessage).
//
// The package is a pure codec: it does no I/O, keeps no state and imports
// nothing outside the standard library, so the proxy's session code can be
// read separately from the framing rules.
package wsoverhttp

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ContentType is the media type of a WebSocket-over-HTTP request or response
// body. Pushpin accepts a response only when its Content-Type equals this
// string exactly (no parameters).
const ContentType = "application/websocket-events"

// EventType names one WebSocket-over-HTTP event, so callers switch on a
// constant instead of comparing wire strings.
type EventType uint8

// The event types of the WebSocket-over-HTTP protocol. There is no KEEP-ALIVE
// event: a keep-alive is a request with an empty body.
const (
	Open       EventType = iota + 1 // connection opened (first event of the first exchange)
	Text                            // text message
	Binary                          // binary message
	Ping                            // ping, content optional
	Pong                            // pong, content optional
	Close                           // close; content is a 2-byte big-endian code + UTF-8 reason, or empty
	Disconnect                      // unclean end of the connection
)

var eventNames = [...]string{
	Open:       "OPEN",
	Text:       "TEXT",
	Binary:     "BINARY",
	Ping:       "PING",
	Pong:       "PONG",
	Close:      "CLOSE",
	Disconnect: "DISCONNECT",
}

// String returns the wire name of the event type ("TEXT"), so logs and errors
// show what the backend sees.
func (t EventType) String() string {
	if t.valid() {
		return eventNames[t]
	}
	return "EventType(" + strconv.Itoa(int(t)) + ")"
}

func (t EventType) valid() bool { return t >= Open && t <= Disconnect }

// eventTypeOf maps a wire name to its type; names are case-sensitive, as in
// Pushpin. It returns 0 for an unknown name.
func eventTypeOf(name []byte) EventType {
	// Switch on string(name) does not allocate.
	switch string(name) {
	case "OPEN":
		return Open
	case "TEXT":
		return Text
	case "BINARY":
		return Binary
	case "PING":
		return Ping
	case "PONG":
		return Pong
	case "CLOSE":
		return Close
	case "DISCONNECT":
		return Disconnect
	}
	return 0
}

// Event is one WebSocket-over-HTTP event: a type and its content bytes.
// For Close, Content is the 2-byte big-endian status code followed by the
// UTF-8 reason, or empty when there is no status (see CloseEvent, CloseCode).
type Event struct {
	Type    EventType
	Content []byte
}

// CloseEvent builds the CLOSE event for a status code and reason the way
// Pushpin encodes it. A code outside 0-65535 (use -1) means "no status" and
// yields a CLOSE without content; the reason is then dropped.
func CloseEvent(code int, reason string) Event {
	if code < 0 || code > 0xffff {
		return Event{Type: Close}
	}
	b := make([]byte, 2+len(reason))
	b[0] = byte(code >> 8)
	b[1] = byte(code)
	copy(b[2:], reason)
	return Event{Type: Close, Content: b}
}

// CloseCode decodes a CLOSE event's status code and reason. ok is false when
// e is not a CLOSE or carries fewer than 2 content bytes (no status). Invalid
// UTF-8 in the reason is replaced with U+FFFD, as Pushpin does, so the reason
// can be put in a WebSocket close frame as is.
func (e Event) CloseCode() (code int, reason string, ok bool) {
	if e.Type != Close || len(e.Content) < 2 {
		return 0, "", false
	}
	code = int(e.Content[0])<<8 | int(e.Content[1])
	reason = string(e.Content[2:])
	if !utf8.ValidString(reason) {
		reason = strings.ToValidUTF8(reason, "\uFFFD")
	}
	return code, reason, true
}

// AppendEvents appends the encoding of events to dst and returns the extended
// buffer, so a request body is built in one allocation. It writes what
// Pushpin writes: "TYPE <lowercase hex length>\r\n<content>\r\n" for TEXT and
// BINARY (also when empty) and for any other type with non-empty content, and
// "TYPE\r\n" for any other type without content (OPEN, DISCONNECT, a PING or
// PONG without payload, a CLOSE without status). Events whose Type is not one
// of the defined constants are skipped.
func AppendEvents(dst []byte, events ...Event) []byte {
	for _, e := range events {
		if !e.Type.valid() {
			continue
		}
		dst = append(dst, eventNames[e.Type]...)
		if len(e.Content) == 0 && e.Type != Text && e.Type != Binary {
			dst = append(dst, '\r', '\n')
			continue
		}
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, uint64(len(e.Content)), 16)
		dst = append(dst, '\r', '\n')
		dst = append(dst, e.Content...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}

// ParseError reports why a WebSocket-over-HTTP body could not be decoded and
// where, so a log line points at the offending byte.
type ParseError struct {
	Offset  int    // byte offset in the body where the bad record starts or the problem was found
	Problem string // what is wrong
}

// Error formats the offset and the problem.
func (e *ParseError) Error() string {
	return fmt.Sprintf("websocket-events: offset %d: %s", e.Offset, e.Problem)
}

func parseErr(off int, format string, args ...any) error {
	return &ParseError{Offset: off, Problem: fmt.Sprintf(format, args...)}
}

// ParseEvents decodes a whole WebSocket-over-HTTP body. An empty body yields
// no events and no error. Each record is "TYPE\r\n" or "TYPE <hex>\r\n"
// followed by exactly that many content bytes and "\r\n"; the hex length
// accepts either case but nothing else (no sign, "0x" or spaces). Records of
// an unknown type (type names are case-sensitive) are skipped, content
// included, as Pushpin does. A truncated or malformed record, or a length
// over maxEventSize (when maxEventSize > 0), is a *ParseError naming the
// offset; nothing is returned with it.
//
// The returned Content slices alias body; copy them if body is reused.
func ParseEvents(body []byte, maxEventSize int) ([]Event, error) {
	var events []Event
	if len(body) > 0 {
		events = make([]Event, 0, 4) // typical responses carry a few events
	}
	pos := 0
	for pos < len(body) {
		start := pos
		eol := bytes.Index(body[pos:], crlf)
		if eol < 0 {
			return nil, parseErr(start, "truncated event header %q: no CRLF", clip(body[pos:]))
		}
		line := body[pos : pos+eol]
		pos += eol + 2

		name, hexLen, hasLen := bytes.Cut(line, space)
		t := eventTypeOf(name)
		if !hasLen {
			if t != 0 {
				events = append(events, Event{Type: t})
			}
			continue
		}

		n, err := parseHexLen(hexLen)
		if err != nil {
			return nil, parseErr(start, "event %q: bad content length %q: %s", clip(name), clip(hexLen), err)
		}
		if maxEventSize > 0 && n > maxEventSize {
			return nil, parseErr(start, "event %q: content length %d exceeds the limit of %d bytes", clip(name), n, maxEventSize)
		}
		if have := len(body) - pos; n > have {
			return nil, parseErr(start, "event %q: content truncated: length %d but only %d bytes follow", clip(name), n, have)
		}
		content := body[pos : pos+n : pos+n]
		pos += n
		if len(body)-pos < 2 || body[pos] != '\r' || body[pos+1] != '\n' {
			return nil, parseErr(pos, "event %q: missing CRLF after %d content bytes", clip(name), n)
		}
		pos += 2
		if t != 0 {
			events = append(events, Event{Type: t, Content: content})
		}
	}
	return events, nil
}

var (
	crlf  = []byte("\r\n")
	space = []byte(" ")
)

// maxHexLen bounds a content length so the arithmetic cannot overflow; no
// body this package handles comes near it.
const maxHexLen = 1 << 40

func parseHexLen(s []byte) (int, error) {
	if len(s) == 0 {
		return 0, fmt.Errorf("empty")
	}
	n := 0
	for _, c := range s {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, fmt.Errorf("not a hex digit: %q", c)
		}
		n = n<<4 | int(d)
		if n > maxHexLen {
			return 0, fmt.Errorf("too large")
		}
	}
	return n, nil
}

// clip shortens untrusted bytes quoted in an error message.
func clip(b []byte) []byte {
	const max = 32
	if len(b) > max {
		return b[:max]
	}
	return b
}
