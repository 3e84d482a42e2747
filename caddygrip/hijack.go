package caddygrip

import (
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/caddy-grip/grip/instruct"
	"go.uber.org/zap"
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
	sent := brw.Reader.Buffered() // read ahead of the request by net/http
	// The stream keeps only what its loop needs: holding the request or
	// the response writer would keep net/http's connection state, its
	// buffers and Caddy's writer chain alive for the whole hold.
	lite := &session{
		g:   s.g,
		sub: s.sub,
		inst: &instruct.Instruction{Hold: s.inst.Hold, Channels: s.inst.Channels, KeepAlive: s.inst.KeepAlive,
			Next: s.inst.Next},
		remoteAddr: s.r.RemoteAddr,
		who:        s.who,
		caughtUp:   s.caughtUp,
		gone:       s.gone,
		links:      s.links,
		retries:    s.retries,
		hold:       s.hold,
	}
	s.hold = nil // the stream's goroutine ends it
	hs := &hijackedStream{s: lite, conn: conn, timeout: time.Duration(s.g.WriteTimeout), left: make(chan struct{}), sent: sent}
	s.g.sessions.Add(1)
	s.g.binding.track(lite.sub, s.g.ref.hub)
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
	sent    int           // bytes the client sent after its request, before the hijack
}

// run holds the stream until it ends, then closes the connection.
func (hs *hijackedStream) run() {
	s := hs.s
	defer s.g.sessions.Done()
	defer s.endHold() // after the connection is closed and the hub left
	defer hs.conn.Close()
	defer s.g.binding.untrack(s.sub)
	defer s.done()
	go hs.readUntilGone()
	s.streamLoop(hs)
}

// maxBytesAfterRequest is what a held client may send after its request
// before it is cut off: nothing more is expected from it.
const maxBytesAfterRequest = 64 << 10

// streamReadBuffers lend read buffers to held streams only while a read
// runs, so that idle streams hold none.
var streamReadBuffers = sync.Pool{New: func() any { return new([16 << 10]byte) }}

// readUntilGone reads and discards what the client sends, in large reads,
// and closes left when it leaves, the connection is closed here, or it has
// sent more than maxBytesAfterRequest.
func (hs *hijackedStream) readUntilGone() {
	defer close(hs.left)
	wait, parks := newIdleWaiter(hs.conn, nil)
	var small [512]byte // where the wait cannot park, a read blocks on this
	for n := hs.sent; n <= maxBytesAfterRequest; {
		wait()
		buf := small[:]
		var pooled *[16 << 10]byte
		if parks {
			pooled = streamReadBuffers.Get().(*[16 << 10]byte)
			buf = pooled[:]
		}
		m, err := hs.conn.Read(buf)
		if pooled != nil {
			streamReadBuffers.Put(pooled)
		}
		if err != nil {
			return
		}
		n += m
	}
	if ce := hs.s.g.logger.Check(zap.DebugLevel, "cutting a held client that sent too much after its request"); ce != nil {
		ce.Write(zap.String("remote", hs.s.remote()), zap.Int("limit", maxBytesAfterRequest))
	}
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
