package caddygrip

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// recMode is what the recorder does with the origin's response body, decided
// once when the origin writes its final status.
type recMode uint8

const (
	// modeUndecided: the origin has written nothing yet.
	modeUndecided recMode = iota
	// modePass: not GRIP; status, headers, body, flushes and hijacks go
	// straight to the client, unbuffered.
	modePass
	// modeBuffer: GRIP instructions that need the body (response holds,
	// JSON instructs, no-hold replies); the body is kept up to a limit.
	modeBuffer
	// modeStream: a stream hold from headers alone; the hold has subscribed
	// and written the client's headers, and the initial body goes straight
	// through, however large.
	modeStream
	// modeDiscard: the instructions were rejected; the body is dropped and
	// the handler answers with an error once the origin is done.
	modeDiscard
)

// decideFunc inspects the origin's final status and headers and picks a
// mode. For modeStream it must already have written the client's headers.
type decideFunc func(status int, header http.Header) recMode

// recorder stands between the origin (next) and the client. It shares the
// client's header map, as Caddy's own recorder does, so that trailers and
// 1xx responses work unchanged for ordinary traffic.
type recorder struct {
	http.ResponseWriter
	decide decideFunc
	mode   recMode
	status int
	buf    boundedBuffer // modeBuffer: the body, cut off at the limit
	// streamed counts the initial body bytes written through in modeStream.
	streamed int
}

func newRecorder(w http.ResponseWriter, limit int, decide decideFunc) *recorder {
	return &recorder{ResponseWriter: w, buf: boundedBuffer{limit: limit}, decide: decide}
}

// WriteHeader passes 1xx responses through and makes the one decision for
// the final status.
func (rec *recorder) WriteHeader(status int) {
	if rec.mode != modeUndecided {
		return
	}
	if status >= 100 && status <= 199 {
		rec.ResponseWriter.WriteHeader(status)
		return
	}
	rec.status = status
	rec.mode = rec.decide(status, rec.ResponseWriter.Header())
	if rec.mode == modePass {
		rec.ResponseWriter.WriteHeader(status)
	}
}

// Write routes body bytes by mode. Buffering never returns an error: a
// writer error would make reverse_proxy abort the whole request.
func (rec *recorder) Write(p []byte) (int, error) {
	if rec.mode == modeUndecided {
		rec.WriteHeader(http.StatusOK)
	}
	switch rec.mode {
	case modePass:
		return rec.ResponseWriter.Write(p)
	case modeStream:
		n, err := rec.ResponseWriter.Write(p)
		rec.streamed += n
		return n, err
	case modeBuffer:
		return rec.buf.Write(p)
	}
	return len(p), nil
}

// ReadFrom keeps sendfile and friends on the pass-through path.
func (rec *recorder) ReadFrom(r io.Reader) (int64, error) {
	if rec.mode == modeUndecided {
		rec.WriteHeader(http.StatusOK)
	}
	if rec.mode == modePass {
		if rf, ok := rec.ResponseWriter.(io.ReaderFrom); ok {
			return rf.ReadFrom(r)
		}
	}
	return io.Copy(writerOnly{rec}, r)
}

// FlushError flushes only what is going to the client; a buffered GRIP
// body must not be flushed out early.
func (rec *recorder) FlushError() error {
	if rec.mode == modePass || rec.mode == modeStream {
		return http.NewResponseController(rec.ResponseWriter).Flush()
	}
	return nil
}

// Hijack lets pass-through WebSocket proxying take over the connection.
func (rec *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(rec.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach deadlines and flushing below.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// boundedBuffer keeps at most limit bytes and flags what it cut off. Its
// Write never fails: a writer error would make reverse_proxy abort the
// whole request with a panic.
type boundedBuffer struct {
	bytes.Buffer
	limit    int
	overflow bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.limit - b.Len(); len(p) > room {
		b.overflow = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
	} else {
		b.Buffer.Write(p)
	}
	return len(p), nil
}

// writerOnly hides ReadFrom so io.Copy does not recurse into it.
type writerOnly struct{ io.Writer }
