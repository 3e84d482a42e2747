package caddygrip

import (
	"net"
	"net/http"
	"strconv"
	"time"
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
	// The stream keeps only what its loop needs: holding the request or
	// the response writer would keep net/http's connection state, its
	// buffers and Caddy's writer chain alive for the whole hold.
	lite := &session{
		g:   s.g,
		sub: s.sub,
		inst: &Instruct{Hold: s.inst.Hold, Channels: s.inst.Channels, KeepAlive: s.inst.KeepAlive,
			Next: s.inst.Next},
		remoteAddr: s.r.RemoteAddr,
		gone:       s.gone,
		links:      s.links,
		retries:    s.retries,
	}
	hs := &hijackedStream{s: lite, conn: conn, timeout: time.Duration(s.g.WriteTimeout), left: make(chan struct{})}
	s.g.sessions.Add(1)
	go hs.run()
	return true
}

// hijackedStream is a stream hold on a hijacked connection: it writes the
// chunked encoding itself, one write per flush.
type hijackedStream struct {
	s       *session
	conn    net.Conn
	timeout time.Duration
	out     []byte
	left    chan struct{} // closed when the client has left
}

// run holds the stream until it ends, then closes the connection.
func (hs *hijackedStream) run() {
	s := hs.s
	defer s.g.sessions.Done()
	defer hs.conn.Close()
	defer s.done()
	go func() {
		// Nothing more is expected from the client; a read returns only
		// when it leaves (or the connection is closed here).
		var b [1]byte
		for {
			if _, err := hs.conn.Read(b[:]); err != nil {
				close(hs.left)
				return
			}
		}
	}()
	s.streamLoop(hs)
}

// add queues one chunk.
func (hs *hijackedStream) add(p []byte) {
	if len(p) == 0 {
		return
	}
	hs.out = strconv.AppendInt(hs.out, int64(len(p)), 16)
	hs.out = append(hs.out, '\r', '\n')
	hs.out = append(hs.out, p...)
	hs.out = append(hs.out, '\r', '\n')
}

// flush writes the queued chunks in one write under the write deadline.
func (hs *hijackedStream) flush() error {
	if len(hs.out) == 0 {
		return nil
	}
	_ = hs.conn.SetWriteDeadline(time.Now().Add(hs.timeout))
	_, err := hs.conn.Write(hs.out)
	hs.out = hs.out[:0]
	if cap(hs.out) > 64<<10 {
		hs.out = nil // do not keep a burst's buffer for an idle connection
	}
	return err
}

// finish writes the last chunk; run then closes the connection.
func (hs *hijackedStream) finish() {
	hs.out = append(hs.out[:0], "0\r\n\r\n"...)
	_ = hs.flush()
}

// abort leaves the body unfinished; run closes the connection.
func (hs *hijackedStream) abort() {}

func (hs *hijackedStream) gone() <-chan struct{} { return hs.left }
