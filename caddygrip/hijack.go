package caddygrip

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/caddy-grip/grip/hub"
)

// A held HTTP/1.1 stream need not keep its handler goroutine, with Caddy's
// deep stack, net/http's background reader and their buffers, for hours:
// once the headers and initial body are out, the connection is hijacked
// and a small goroutine writes the chunked body itself. This is what makes
// an idle held connection cheap.

// canHijackStream reports whether the stream's framing is known to be
// plain HTTP/1.1 chunked encoding that nothing in front rewrites.
func (s *session) canHijackStream() bool {
	r := s.r
	h := s.w.Header()
	return r.ProtoMajor == 1 && r.ProtoMinor >= 1 && r.Method != http.MethodHead &&
		h.Get("Content-Encoding") == "" && h.Get("Content-Length") == "" &&
		h.Get("Transfer-Encoding") == "" && !r.Close
}

// hijackStream takes the connection over and runs the hold on its own
// goroutine; it reports false when the connection cannot be hijacked, and
// the hold then continues on the handler goroutine.
func (s *session) hijackStream(rc *http.ResponseController) bool {
	if !s.canHijackStream() {
		return false
	}
	conn, brw, err := rc.Hijack()
	if err != nil {
		return false
	}
	if brw.Writer.Buffered() > 0 {
		_ = brw.Writer.Flush()
	}
	hs := &hijackedStream{s: s, conn: conn, ka: s.inst.KeepAlive}
	s.g.sessions.Add(1)
	go hs.run()
	return true
}

// hijackedStream is a stream hold on a hijacked connection.
type hijackedStream struct {
	s    *session
	conn net.Conn
	ka   *KeepAlive
	out  []byte
	gone <-chan struct{} // closed when the client has left
}

// run delivers published items as chunks until the stream ends.
func (hs *hijackedStream) run() {
	s := hs.s
	defer s.g.sessions.Done()
	defer hs.conn.Close()
	defer s.done()

	gone := make(chan struct{})
	hs.gone = gone
	go func() {
		// Nothing more is expected from the client; a read returns only
		// when it leaves (or the connection is closed here).
		var b [1]byte
		for {
			if _, err := hs.conn.Read(b[:]); err != nil {
				close(gone)
				return
			}
		}
	}()

	ka := newKeepAliveTimer(hs.ka)
	defer ka.stop()
	var batch []hub.Delivery
	for {
		select {
		case <-s.sub.Ready():
			batch = s.sub.Take(batch[:0])
			hs.out = hs.out[:0]
			closing := false
			for _, d := range batch {
				f := d.Item.HTTPStream
				if f.Action == hub.ActionClose {
					closing = true
					break
				}
				if f.Action == hub.ActionSend {
					hs.appendChunk(f.Content)
				}
			}
			if closing {
				hs.out = append(hs.out, "0\r\n\r\n"...)
			}
			if !hs.flush() || closing {
				return
			}
			ka.sent()
		case <-ka.c():
			hs.out = hs.out[:0]
			hs.appendChunk(hs.ka.Data)
			if !hs.flush() {
				return
			}
			ka.fired()
		case <-s.sub.Closed():
			if s.sub.Reason() != hub.ReasonSlow {
				// Drain: end the body cleanly; a slow client is cut off.
				hs.out = append(hs.out[:0], "0\r\n\r\n"...)
				hs.flush()
			}
			return
		case <-gone:
			return
		}
	}
}

// appendChunk adds one chunk of content to the pending output.
func (hs *hijackedStream) appendChunk(p []byte) {
	if len(p) == 0 {
		return
	}
	hs.out = strconv.AppendInt(hs.out, int64(len(p)), 16)
	hs.out = append(hs.out, '\r', '\n')
	hs.out = append(hs.out, p...)
	hs.out = append(hs.out, '\r', '\n')
}

// flush writes the pending output in one write under the write deadline;
// a client that cannot take it is a slow consumer.
func (hs *hijackedStream) flush() bool {
	if len(hs.out) == 0 {
		return true
	}
	_ = hs.conn.SetWriteDeadline(time.Now().Add(time.Duration(hs.s.g.WriteTimeout)))
	if _, err := hs.conn.Write(hs.out); err != nil {
		select {
		case <-hs.gone:
			return false // it left; not slow
		default:
		}
		hs.s.g.ref.hub.DisconnectSlow(hs.s.sub, fmt.Errorf("write to %s: %w", hs.s.r.RemoteAddr, err))
		return false
	}
	if cap(hs.out) > 64<<10 {
		hs.out = nil // do not keep a burst's buffer for an idle connection
	}
	return true
}
