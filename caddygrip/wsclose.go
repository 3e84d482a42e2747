package caddygrip

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// RFC 6455 limits on control frames (section 5.5): 125 payload bytes, of
// which a close frame's status code takes 2.
const (
	maxControlPayload = 125
	maxCloseReason    = maxControlPayload - 2
)

// errInvalidUTF8 ends a session whose client sent a text message that is
// not UTF-8 (RFC 6455 section 8.1).
var errInvalidUTF8 = errors.New("text message is not valid UTF-8")

// wireCloseCode is the status code a close frame carries for code, which
// comes from the origin, a publisher or the client: codes an endpoint may
// send (RFC 6455 section 7.4 and the IANA registry: 1000-1003, 1007-1014,
// 3000-4999) go as they are; none (0 or 1005) becomes 1000; any other
// (1004, 1006, 1015, reserved or out of range) becomes 1011, since what
// asked for the close hit a condition that has no code of its own.
func wireCloseCode(code int) int {
	switch {
	case code <= 0 || code == websocket.CloseNoStatusReceived:
		return websocket.CloseNormalClosure
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
		return code
	}
	return websocket.CloseInternalServerErr
}

// closeReason is reason as a close frame can carry it: valid UTF-8 of at
// most 123 bytes, cut at a character boundary.
func closeReason(reason string) string {
	if !utf8.ValidString(reason) {
		reason = strings.ToValidUTF8(reason, "\uFFFD")
	}
	if len(reason) <= maxCloseReason {
		return reason
	}
	n := maxCloseReason
	for n > 0 && !utf8.RuneStart(reason[n]) {
		n--
	}
	return reason[:n]
}

// closePayload is the payload of a close frame for code and reason that is
// always valid on the wire. A code that had to be replaced keeps its reason.
func closePayload(code int, reason string) []byte {
	if code <= 0 || code == websocket.CloseNoStatusReceived {
		reason = "" // no status was given: a plain normal closure
	}
	return websocket.FormatCloseMessage(wireCloseCode(code), closeReason(reason))
}
