package main

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"strconv"
)

// The origin's WebSocket side: WebSocket-over-HTTP for the GRIP proxies
// (https://pushpin.org/docs/protocols/websocket-over-http/), a held raw
// WebSocket for plain Caddy.

// wohMaxBody is the largest WebSocket-over-HTTP request body the origin
// reads (Pushpin batches at most 200,000 bytes of client messages).
const wohMaxBody = 1 << 20

// wohResponse answers one WebSocket-over-HTTP request for channel ch: OPEN
// with OPEN and a subscribe control message (the grip extension on), CLOSE
// with the same CLOSE, anything else (client messages, keep-alives,
// DISCONNECT) with no events.
func wohResponse(out []byte, ch string, body []byte) []byte {
	var events []byte
	switch first, content := firstEvent(body); first {
	case "OPEN":
		ctl := `c:{"type":"subscribe","channel":` + strconv.Quote(ch) + `}`
		events = append(events, "OPEN\r\n"...)
		events = appendEvent(events, "TEXT", ctl)
	case "CLOSE":
		events = appendEvent(events, "CLOSE", string(content))
	}
	out = append(out, "HTTP/1.1 200 OK\r\nContent-Type: application/websocket-events\r\nSec-WebSocket-Extensions: grip\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(events)), 10)
	out = append(out, "\r\n\r\n"...)
	return append(out, events...)
}

// appendEvent appends "<TYPE> <hex length>\r\n<content>\r\n", or
// "<TYPE>\r\n" for empty content.
func appendEvent(dst []byte, typ, content string) []byte {
	dst = append(dst, typ...)
	if content != "" {
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, int64(len(content)), 16)
		dst = append(dst, "\r\n"...)
		dst = append(dst, content...)
	}
	return append(dst, "\r\n"...)
}

// firstEvent returns the type of the first event in a WebSocket-over-HTTP
// body and its content; an OPEN or CLOSE comes first or alone in the
// bench's sessions. A malformed body gives "".
func firstEvent(body []byte) (typ string, content []byte) {
	line, rest, ok := bytes.Cut(body, []byte("\r\n"))
	if !ok {
		return "", nil
	}
	name, size, sized := bytes.Cut(line, []byte(" "))
	if !sized {
		return string(name), nil
	}
	n, err := strconv.ParseInt(string(size), 16, 64)
	if err != nil || n < 0 || n > int64(len(rest)) {
		return "", nil
	}
	return string(name), rest[:n]
}

// appendUpgrade is the 101 answer to a WebSocket handshake with key.
func appendUpgrade(out []byte, key string) []byte {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	out = append(out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	out = append(out, base64.StdEncoding.EncodeToString(sum[:])...)
	return append(out, "\r\n\r\n"...)
}
