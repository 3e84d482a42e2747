package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// origin is the one GRIP origin every target proxies to, run inside the
// bench process (on the generator's CPU). It speaks HTTP/1.1 by hand so its
// cost per request stays small next to the proxy's. Endpoints:
//
//	GET /pass               100-byte plain answer, no GRIP headers
//	GET /stream/<ch>        Grip-Hold: stream on <ch>, initial body ": ok"
//	GET /sse/<ch>           the origin holds an SSE stream itself (the plain
//	                        reverse_proxy baseline), until the peer closes
//	GET /poll/<ch>?last=<n> long-poll: messages after n at once if the origin
//	                        has them (X-Bench-Direct), else Grip-Hold:
//	                        response with prev-id=<n>
//	POST /ws/<ch>           WebSocket-over-HTTP: OPEN is answered with OPEN
//	                        and a subscribe to <ch>, CLOSE with CLOSE
//	GET /wsraw/<ch>         a WebSocket the origin holds itself (the plain
//	                        reverse_proxy baseline), until the peer closes
type origin struct {
	ln        net.Listener
	lpTimeout int // Grip-Timeout of long-poll holds, seconds
	lp        lpStore
	onHold    atomic.Pointer[func(ch string, last uint64)]
	requests  atomic.Uint64

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// startOrigin listens on addr and serves until close.
func startOrigin(addr string, lpTimeout int) (*origin, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	o := &origin{ln: ln, lpTimeout: lpTimeout, conns: map[net.Conn]struct{}{}}
	o.lp.m = map[string]*lpChan{}
	o.wg.Add(1)
	go o.accept()
	return o, nil
}

// Addr is the origin's host:port.
func (o *origin) Addr() string { return o.ln.Addr().String() }

// setOnHold sets the callback run after a long-poll hold was answered: the
// client of ch now waits for the message after last.
func (o *origin) setOnHold(f func(ch string, last uint64)) {
	if f == nil {
		o.onHold.Store(nil)
		return
	}
	o.onHold.Store(&f)
}

// close stops listening and drops every connection.
func (o *origin) close() {
	o.ln.Close()
	o.mu.Lock()
	for c := range o.conns {
		c.Close()
	}
	o.mu.Unlock()
	o.wg.Wait()
}

func (o *origin) accept() {
	defer o.wg.Done()
	for {
		c, err := o.ln.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return
		}
		o.mu.Lock()
		o.conns[c] = struct{}{}
		o.mu.Unlock()
		o.wg.Add(1)
		go o.serve(c)
	}
}

var (
	passResponse = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n" +
		string(bytes.Repeat([]byte("p"), 99)) + "\n")
	notFound     = []byte("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
	streamInit   = ": ok\n\n"
	lpTimeoutMsg = "timeout\n"
)

func (o *origin) serve(c net.Conn) {
	defer o.wg.Done()
	defer func() {
		o.mu.Lock()
		delete(o.conns, c)
		o.mu.Unlock()
		c.Close()
	}()
	br := bufio.NewReaderSize(c, 4096)
	var out, body []byte
	for {
		line, err := readLine(br)
		if err != nil {
			return
		}
		sp1 := bytes.IndexByte(line, ' ')
		if sp1 < 0 {
			return
		}
		rest := line[sp1+1:]
		sp2 := bytes.IndexByte(rest, ' ')
		if sp2 < 0 {
			return
		}
		method, target := string(line[:sp1]), string(rest[:sp2])
		var contentLength int64
		var wsKey string
		closeAfter := false
		for {
			h, err := readLine(br)
			if err != nil {
				return
			}
			if len(h) == 0 {
				break
			}
			i := bytes.IndexByte(h, ':')
			if i < 0 {
				continue
			}
			name, val := h[:i], bytes.TrimSpace(h[i+1:])
			switch {
			case bytes.EqualFold(name, []byte("Content-Length")):
				contentLength, _ = strconv.ParseInt(string(val), 10, 64)
			case bytes.EqualFold(name, []byte("Connection")):
				closeAfter = bytes.EqualFold(val, []byte("close"))
			case bytes.EqualFold(name, []byte("Sec-WebSocket-Key")):
				wsKey = string(val)
			}
		}
		body = body[:0]
		if contentLength > 0 && method == "POST" && hasPrefix(target, "/ws/") {
			if contentLength > wohMaxBody {
				return
			}
			body = append(body, make([]byte, contentLength)...)
			if _, err := io.ReadFull(br, body); err != nil {
				return
			}
		} else if contentLength > 0 {
			if _, err := br.Discard(int(contentLength)); err != nil {
				return
			}
		}
		o.requests.Add(1)
		out = out[:0]
		switch {
		case target == "/pass":
			out = append(out, passResponse...)
		case hasPrefix(target, "/stream/"):
			out = streamHoldResponse(out, target[len("/stream/"):])
		case hasPrefix(target, "/sse/"):
			// The plain baseline: hold the stream here until the peer goes.
			out = append(out, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"...)
			out = appendChunk(out, streamInit)
			holdUntilGone(c, br, out)
			return
		case hasPrefix(target, "/ws/"):
			out = wohResponse(out, target[len("/ws/"):], body)
		case hasPrefix(target, "/wsraw/") && wsKey != "":
			// The plain baseline: accept the WebSocket and hold it here.
			out = appendUpgrade(out, wsKey)
			holdUntilGone(c, br, out)
			return
		case hasPrefix(target, "/poll/"):
			var held bool
			var ch string
			var last uint64
			out, ch, last, held = o.pollResponse(out, target[len("/poll/"):])
			if _, err := c.Write(out); err != nil {
				return
			}
			if held {
				if f := o.onHold.Load(); f != nil {
					(*f)(ch, last)
				}
			}
			if closeAfter {
				return
			}
			continue
		default:
			out = append(out, notFound...)
		}
		if _, err := c.Write(out); err != nil {
			return
		}
		if closeAfter {
			return
		}
	}
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// streamHoldResponse is the GRIP stream-hold answer for channel ch.
func streamHoldResponse(out []byte, ch string) []byte {
	out = append(out, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nGrip-Hold: stream\r\nGrip-Channel: "...)
	out = append(out, ch...)
	out = append(out, "\r\nGrip-Keep-Alive: :\\n\\n; format=cstring; timeout=55\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(streamInit)), 10)
	out = append(out, "\r\n\r\n"...)
	return append(out, streamInit...)
}

func appendChunk(out []byte, data string) []byte {
	out = strconv.AppendInt(out, int64(len(data)), 16)
	out = append(out, "\r\n"...)
	out = append(out, data...)
	return append(out, "\r\n"...)
}

// pollResponse answers GET /poll/<ch>?last=<n>.
func (o *origin) pollResponse(out []byte, rest string) (_ []byte, ch string, last uint64, held bool) {
	ch = rest
	if i := indexByte(rest, '?'); i >= 0 {
		ch = rest[:i]
		q := rest[i+1:]
		if hasPrefix(q, "last=") {
			last, _ = strconv.ParseUint(q[len("last="):], 10, 64)
		}
	}
	var body []byte
	body = o.lp.after(ch, last, body)
	if len(body) > 0 {
		out = append(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Bench-Direct: 1\r\nContent-Length: "...)
		out = strconv.AppendInt(out, int64(len(body)), 10)
		out = append(out, "\r\n\r\n"...)
		return append(out, body...), ch, last, false
	}
	out = append(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nGrip-Hold: response\r\nGrip-Channel: "...)
	out = append(out, ch...)
	out = append(out, "; prev-id="...)
	out = strconv.AppendUint(out, last, 10)
	out = append(out, "\r\nGrip-Timeout: "...)
	out = strconv.AppendInt(out, int64(o.lpTimeout), 10)
	out = append(out, "\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(lpTimeoutMsg)), 10)
	out = append(out, "\r\n\r\n"...)
	return append(out, lpTimeoutMsg...), ch, last, true
}

func indexByte(s string, b byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return i
		}
	}
	return -1
}

// lpStore is the origin's record of long-poll messages per channel: the
// publisher stores a message here before publishing it, so a client that
// missed the publish gets it from the origin on its next request.
type lpStore struct {
	mu sync.Mutex
	m  map[string]*lpChan
}

type lpChan struct {
	msgs   []lpMsg // ascending seq, those after the client's last ack
	latest uint64
}

type lpMsg struct {
	seq   uint64
	pubNS int64
}

// add records message seq on ch; false if ch already has it (or a later one).
func (s *lpStore) add(ch string, seq uint64, pubNS int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.m[ch]
	if c == nil {
		c = &lpChan{}
		s.m[ch] = c
	}
	if seq <= c.latest {
		return false
	}
	c.latest = seq
	c.msgs = append(c.msgs, lpMsg{seq, pubNS})
	return true
}

// latest is the last seq stored on ch.
func (s *lpStore) latest(ch string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.m[ch]; c != nil {
		return c.latest
	}
	return 0
}

// newest is the last message stored on ch (seq 0 if none).
func (s *lpStore) newest(ch string) lpMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.m[ch]; c != nil && len(c.msgs) > 0 {
		return c.msgs[len(c.msgs)-1]
	}
	return lpMsg{}
}

// after appends every message on ch newer than last, one payload line each,
// and forgets those up to last (the client has them).
func (s *lpStore) after(ch string, last uint64, dst []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.m[ch]
	if c == nil {
		return dst
	}
	i := 0
	for i < len(c.msgs) && c.msgs[i].seq <= last {
		i++
	}
	c.msgs = c.msgs[i:]
	for _, m := range c.msgs {
		dst = appendPayload(dst, "", m.pubNS, m.seq, "\n")
	}
	return dst
}

// payloadSize is the size of every message, framing included (B0.5).
const payloadSize = 100

// appendPayload appends "<prefix><pub_ns> <seq> <pad><suffix>", padded to
// payloadSize bytes in all.
func appendPayload(dst []byte, prefix string, pubNS int64, seq uint64, suffix string) []byte {
	start := len(dst)
	dst = append(dst, prefix...)
	dst = strconv.AppendInt(dst, pubNS, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, ' ')
	for len(dst)-start < payloadSize-len(suffix) {
		dst = append(dst, 'x')
	}
	return append(dst, suffix...)
}

// parsePayload reads pub_ns and seq from a payload line without prefix.
func parsePayload(b []byte) (pubNS int64, seq uint64, ok bool) {
	p, b, ok1 := parseDigits(b)
	q, _, ok2 := parseDigits(b)
	return int64(p), q, ok1 && ok2
}

// parseDigits parses the decimal number at the start of b and skips the
// space after it.
func parseDigits(b []byte) (uint64, []byte, bool) {
	var v uint64
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		v = v*10 + uint64(b[i]-'0')
		i++
	}
	if i == 0 {
		return 0, b, false
	}
	if i < len(b) && b[i] == ' ' {
		i++
	}
	return v, b[i:], true
}

// epoch is the origin of the clock every payload carries. Publisher and
// subscribers run in this one process, so a monotonic clock serves.
var epoch = time.Now()

// nowNS is the time on that clock.
func nowNS() int64 { return int64(time.Since(epoch)) }

// holdUntilGone writes out, then holds the connection, discarding what the
// peer sends, until the peer goes: the plain baselines' idle hold.
func holdUntilGone(c net.Conn, br *bufio.Reader, out []byte) {
	if _, err := c.Write(out); err != nil {
		return
	}
	var sink [512]byte
	for {
		if _, err := br.Read(sink[:]); err != nil {
			return
		}
	}
}
