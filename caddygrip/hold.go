package caddygrip

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-grip/grip/hub"
)

// session is one client request under a grip handler, from the origin's
// answer to the end of the hold.
type session struct {
	g       *Grip
	w       http.ResponseWriter
	r       *http.Request
	next    caddyhttp.Handler
	retries int // origin re-requests for prev-id recovery and hints
	inst    *Instruct
	sub     *hub.Subscriber
	err     error // instructions rejected while deciding

	// remoteAddr is the client's address when r is not kept (hijacked streams).
	remoteAddr string

	// originHeader is the origin's GRIP reply headers, kept aside so they
	// never reach the client as they are.
	originHeader http.Header
}

// decide runs when the origin writes its status: it recognises GRIP
// replies, keeps the origin's headers out of the client's header map, and
// starts a stream hold at once when the headers alone describe it, so that
// the initial body streams through unbuffered.
func (s *session) decide(status int, h http.Header) recMode {
	if !IsGrip(h) {
		return modePass
	}
	origin := h.Clone()
	clear(h)
	if !isHeaderStreamHold(origin) {
		s.originHeader = origin
		return modeBuffer
	}
	inst, err := ParseInstruct(status, origin, nil, s.requestURL())
	if err != nil {
		s.err = err
		return modeDiscard
	}
	s.inst = inst
	s.subscribe(hub.KindStream)
	s.writeHead(inst.Status, inst.Header)
	return modeStream
}

// isHeaderStreamHold reports a stream hold given by headers alone.
func isHeaderStreamHold(h http.Header) bool {
	return h.Get("Grip-Hold") == "stream" && !isGripInstructType(h.Get("Content-Type"))
}

// serveBuffered handles a GRIP reply whose body was buffered.
func (s *session) serveBuffered(status int, body []byte) error {
	inst, err := ParseInstruct(status, s.originHeader, body, s.requestURL())
	if err != nil {
		return s.fail(err)
	}
	s.inst = inst
	switch inst.Hold {
	case HoldResponse:
		return s.holdResponse()
	case HoldStream:
		s.subscribe(hub.KindStream)
		s.writeHead(inst.Status, inst.Header)
		if _, err := s.w.Write(inst.Body); err != nil {
			s.done()
			return nil
		}
		return s.holdStream()
	}
	s.respond(inst.Status, inst.Header, inst.Body)
	return nil
}

// subscribe joins the hub before anything is written to the client, so no
// item published after the origin answered can be missed.
func (s *session) subscribe(kind hub.Kind) {
	s.sub = hub.NewSubscriber(kind)
	if len(s.inst.Meta) > 0 {
		s.sub.SetMeta(s.inst.Meta)
	}
	h := s.g.ref.hub
	for _, c := range s.inst.Channels {
		if len(c.Filters) > 0 {
			s.sub.SetFilters(c.Name, c.Filters)
		}
		h.Subscribe(s.sub, c.Name)
	}
}

// done leaves the hub.
func (s *session) done() {
	if s.sub != nil {
		s.g.ref.hub.UnsubscribeAll(s.sub)
	}
}

// holdResponse waits for the first published http-response, the timeout,
// or the client leaving (long-polling). A client whose prev-id shows it
// missed a publish is sent back to the origin instead, as is a hint.
func (s *session) holdResponse() error {
	s.subscribe(hub.KindResponse)
	defer s.done()
	// Checked after subscribing: a publish from then on is delivered, one
	// from before shows in the channel's last published id.
	if s.staleChannel() && len(s.sub.Ready()) == 0 {
		return s.retry("prev-id behind the channel")
	}
	timer := time.NewTimer(s.inst.Timeout)
	defer timer.Stop()
	var batch []hub.Delivery
	for {
		select {
		case <-s.sub.Ready():
			batch = s.sub.Take(batch[:0])
			for _, d := range batch {
				f := d.Item.HTTPResponse
				switch {
				case f.Action == hub.ActionHint:
					return s.retry("hint")
				case f.Action != hub.ActionSend:
				case s.gap(d):
					return s.retry("prev-id gap")
				default:
					s.respondPublished(f)
					return nil
				}
			}
		case <-timer.C:
			s.respond(s.inst.Status, s.inst.Header, s.inst.Body)
			return nil
		case <-s.sub.Closed():
			s.respond(s.inst.Status, s.inst.Header, s.inst.Body)
			return nil
		case <-s.r.Context().Done():
			return nil
		}
	}
}

// maxRetries bounds origin re-requests for one client request.
const maxRetries = 5

// staleChannel reports a channel whose last published id is not the
// prev-id the origin gave: something was published the client lacks.
func (s *session) staleChannel() bool {
	for _, c := range s.inst.Channels {
		if c.PrevID == "" {
			continue
		}
		if id, ok := s.g.ref.hub.LastPublishedID(c.Name); ok && id != c.PrevID {
			return true
		}
	}
	return false
}

// gap reports a delivered item that does not follow the client's prev-id.
func (s *session) gap(d hub.Delivery) bool {
	if d.Item.PrevID == "" {
		return false
	}
	for _, c := range s.inst.Channels {
		if c.Name == d.Channel && c.PrevID != "" {
			return c.PrevID != d.Item.PrevID
		}
	}
	return false
}

// retry re-issues the client's request to the origin, with Grip-Last for
// each channel's prev-id, and serves whatever it answers. Requests with a
// body are not re-issued (their body was consumed), nor beyond maxRetries:
// those keep holding.
func (s *session) retry(why string) error {
	s.done()
	if s.retries >= maxRetries || s.r.ContentLength != 0 {
		s.inst = s.withoutPrevIDs()
		return s.holdResponse()
	}
	s.retries++
	if c := s.g.logger.Check(zap.DebugLevel, "re-requesting from origin"); c != nil {
		c.Write(zap.String("reason", why), zap.String("uri", s.r.RequestURI))
	}
	h := s.r.Header.Clone()
	for _, c := range s.inst.Channels {
		if c.PrevID != "" {
			h.Add("Grip-Last", c.Name+"; last-id="+c.PrevID)
		}
	}
	res, err := newOriginRequest(s.r, s.next, s.g.MaxInstructSize).do(s.r.Context(), s.r.Method, h, nil)
	if err != nil {
		return s.fail(err)
	}
	if !IsGrip(res.header) {
		relayCapture(s.w, res)
		return nil
	}
	s.originHeader, s.sub = res.header, nil
	return s.serveBuffered(res.status, res.body.Bytes())
}

// withoutPrevIDs is the instruction with prev-ids dropped, for holding
// once re-requests are exhausted.
func (s *session) withoutPrevIDs() *Instruct {
	inst := *s.inst
	inst.Channels = append([]ChannelSpec(nil), inst.Channels...)
	for i := range inst.Channels {
		inst.Channels[i].PrevID = ""
	}
	return &inst
}

// holdStream appends each published http-stream item to the response,
// with keep-alives between, until the stream ends. The headers and initial
// body have been written. HTTP/1.1 streams continue on a hijacked
// connection (hijack.go); others stay on the handler goroutine.
func (s *session) holdStream() error {
	rc := http.NewResponseController(s.w)
	if err := rc.Flush(); err != nil {
		s.done()
		return nil
	}
	if s.hijackStream(rc) {
		return nil
	}
	defer s.done()
	s.streamLoop(&responseSink{w: s.w, rc: rc, timeout: time.Duration(s.g.WriteTimeout), ctx: s.r.Context()})
	return nil
}

// streamSink is where a stream hold's bytes go: the response writer, or a
// hijacked connection.
type streamSink interface {
	add(p []byte)          // queue content for the next flush
	flush() error          // send what is queued, under the write deadline
	finish()               // end the body cleanly
	abort()                // cut the connection, so the client cannot take it for complete
	gone() <-chan struct{} // closed when the client has left
}

// remote is the client's address, for log lines.
func (s *session) remote() string {
	if s.r != nil {
		return s.r.RemoteAddr
	}
	return s.remoteAddr
}

// streamLoop delivers published items and keep-alives to out, coalescing
// whatever queued up into one flush, until the stream ends.
func (s *session) streamLoop(out streamSink) {
	ka := newKeepAliveTimer(s.inst.KeepAlive)
	defer ka.stop()
	var batch []hub.Delivery
	for {
		select {
		case <-s.sub.Ready():
			batch = s.sub.Take(batch[:0])
			closing := false
			for _, d := range batch {
				f := d.Item.HTTPStream
				if f.Action == hub.ActionClose {
					closing = true
					break
				}
				if f.Action == hub.ActionSend {
					out.add(f.Content)
				}
			}
			if !s.flushStream(out) {
				return
			}
			if closing {
				out.finish()
				return
			}
			ka.sent()
		case <-ka.c():
			out.add(s.inst.KeepAlive.Data)
			if !s.flushStream(out) {
				return
			}
			ka.fired()
		case <-s.sub.Closed():
			if s.sub.Reason() == hub.ReasonSlow {
				out.abort() // the DisconnectSlow policy
				return
			}
			out.finish() // drained for exit
			return
		case <-out.gone():
			return
		}
	}
}

// flushStream sends what is queued. A client that cannot take it is a slow
// consumer and is cut off; one that left is no news.
func (s *session) flushStream(out streamSink) bool {
	err := out.flush()
	if err == nil {
		return true
	}
	select {
	case <-out.gone():
		return false
	default:
	}
	s.g.ref.hub.DisconnectSlow(s.sub, fmt.Errorf("writing to %s: %w", s.remote(), err))
	out.abort()
	return false
}

// responseSink writes a stream through the handler's ResponseWriter.
type responseSink struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	ctx     context.Context
	err     error
}

func (o *responseSink) add(p []byte) {
	if o.err != nil || len(p) == 0 {
		return
	}
	_ = o.rc.SetWriteDeadline(time.Now().Add(o.timeout))
	_, o.err = o.w.Write(p)
}

func (o *responseSink) flush() error {
	if o.err != nil {
		return o.err
	}
	_ = o.rc.SetWriteDeadline(time.Now().Add(o.timeout))
	return o.rc.Flush()
}

// finish lets the handler return; net/http ends the body.
func (o *responseSink) finish() {}

// abort makes net/http close the connection without ending the body.
func (o *responseSink) abort() { panic(http.ErrAbortHandler) }

func (o *responseSink) gone() <-chan struct{} { return o.ctx.Done() }

// respondPublished answers a response hold with a published http-response:
// its headers merged over the held response's, its own status and body.
func (s *session) respondPublished(f *hub.HTTPResponse) {
	h := s.inst.Header.Clone()
	for i, hd := range f.Headers {
		name := http.CanonicalHeaderKey(hd.Name)
		if isGripHeader(name) {
			continue
		}
		if firstOccurrence(f.Headers, i) {
			h.Del(name)
		}
		h.Add(name, hd.Value)
	}
	code := f.Code
	if code == 0 {
		code = http.StatusOK
	}
	s.respond(code, h, f.Body)
}

// firstOccurrence reports whether headers[i] is the first with its name.
func firstOccurrence(headers []hub.Header, i int) bool {
	for j := range i {
		if strings.EqualFold(headers[j].Name, headers[i].Name) {
			return false
		}
	}
	return true
}

func isGripHeader(name string) bool {
	return len(name) > 5 && strings.EqualFold(name[:5], "grip-")
}

// respond writes a complete response.
func (s *session) respond(status int, h http.Header, body []byte) {
	s.writeHead(status, h)
	_, _ = s.w.Write(body)
}

// writeHead replaces the client's headers with h and writes the status.
// Content-Length is recomputed: a hold's body is never the origin's.
func (s *session) writeHead(status int, h http.Header) {
	dst := s.w.Header()
	clear(dst)
	for k, v := range h {
		dst[k] = v
	}
	dst.Del("Content-Length")
	if status <= 0 {
		status = http.StatusOK
	}
	s.w.WriteHeader(status)
}

// fail answers 502 for instructions the origin got wrong, and logs it.
func (s *session) fail(err error) error {
	s.g.logger.Error("invalid GRIP instructions from origin",
		zap.Error(err), zap.String("uri", s.r.RequestURI))
	msg := err.Error()
	var ie *InstructError
	if errors.As(err, &ie) && ie.Header != "" && !strings.Contains(msg, ie.Header) {
		msg = ie.Header + ": " + msg
	}
	clear(s.w.Header())
	writeText(s.w, http.StatusBadGateway, "Error while proxying to origin: "+msg+"\n")
	return nil
}

// requestURL is the absolute URL the client asked for; relative Grip-Link
// targets resolve against it.
func (s *session) requestURL() *url.URL {
	u := *s.r.URL
	u.Host = s.r.Host
	u.Scheme = "http"
	if s.r.TLS != nil {
		u.Scheme = "https"
	}
	return &u
}

// keepAliveTimer sends a stream's keep-alive data after a jittered timeout,
// restarted by published sends in idle mode and free-running in interval
// mode, as in Pushpin.
type keepAliveTimer struct {
	ka *KeepAlive
	t  *time.Timer
}

func newKeepAliveTimer(ka *KeepAlive) *keepAliveTimer {
	k := &keepAliveTimer{ka: ka}
	if ka != nil {
		k.t = time.NewTimer(k.next())
	}
	return k
}

// next is the timeout less up to a second of jitter, so that many streams
// set up together do not all wake together.
func (k *keepAliveTimer) next() time.Duration {
	d := k.ka.Timeout - time.Duration(rand.Int64N(int64(time.Second)))
	if d < 100*time.Millisecond {
		d = 100 * time.Millisecond
	}
	return d
}

// c is the channel to select on; nil (never ready) without keep-alives.
func (k *keepAliveTimer) c() <-chan time.Time {
	if k.t == nil {
		return nil
	}
	return k.t.C
}

// sent restarts the timer after published content, in idle mode.
func (k *keepAliveTimer) sent() {
	if k.t != nil && k.ka.Mode == KeepAliveIdle {
		k.t.Reset(k.next())
	}
}

// fired re-arms the timer after a keep-alive went out.
func (k *keepAliveTimer) fired() {
	k.t.Reset(k.next())
}

func (k *keepAliveTimer) stop() {
	if k.t != nil {
		k.t.Stop()
	}
}
