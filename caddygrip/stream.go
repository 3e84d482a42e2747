package caddygrip

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-grip/grip/hub"
)

// holdStream appends each published http-stream item to the response,
// with keep-alives between, until the stream ends. The headers and initial
// body have been written. HTTP/1.1 streams continue on a hijacked
// connection (hijack.go); others stay on the handler goroutine.
func (s *session) holdStream() error {
	if s.links == nil && (s.inst.Next != nil || s.gone != nil) {
		s.links = newLinker(s.g, s.r, s.next)
	}
	rc := http.NewResponseController(s.w)
	if err := rc.Flush(); err != nil {
		s.hold.because(hub.DisconnectClient, err)
		s.clientLeft()
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

// streamStep says what a batch of deliveries asks of the stream.
type streamStep uint8

const (
	stepHold  streamStep = iota // keep holding
	stepFetch                   // fetch the next link (a hint, or a gap in the ids)
	stepClose                   // end the stream
)

// maxStaleFetches bounds next-link fetches in a row made because a
// channel's last published id is still ahead of the stream's.
const maxStaleFetches = 5

// streamLoop delivers published items and keep-alives to out, coalescing
// whatever queued up into one flush, until the stream ends. With a next
// link it also fetches that link on hints, on gaps in the ids, when a
// channel is behind its last published id, and when a channel stayed
// silent for the link's timeout.
func (s *session) streamLoop(out streamSink) {
	ka := newKeepAliveTimer(s.inst.KeepAlive)
	defer func() { ka.stop() }()
	var poll linkPoll
	defer poll.stop()
	if s.links != nil {
		ctx, cancel := context.WithCancel(s.links.context())
		defer cancel()
		go func() {
			select {
			case <-out.gone():
				cancel()
			case <-ctx.Done():
			}
		}()
		s.linkCtx = ctx
	}
	// A page (no hold) goes straight on to the next one.
	fetch := s.inst.Next != nil && (s.inst.Hold == HoldNone || s.missedBeforeSubscribing())
	stale := 0
	var batch []hub.Delivery
	for {
		if fetch {
			if !s.followNext(out) {
				return
			}
			ka.stop()
			ka = newKeepAliveTimer(s.inst.KeepAlive)
			poll.stop()
			stale++
			fetch = s.inst.Next != nil && stale < maxStaleFetches && s.missedBeforeSubscribing()
			continue
		}
		poll.arm(s.inst)
		select {
		case <-s.sub.Ready():
			batch = s.sub.Take(batch[:0])
			step, sent := s.deliverStream(out, batch)
			if !s.flushStream(out) {
				return
			}
			if step == stepClose {
				s.hold.because(hub.DisconnectPublishClose, nil)
				out.finish()
				return
			}
			if sent {
				ka.sent()
				stale = 0
			}
			fetch = step == stepFetch
		case <-ka.c():
			out.add(s.inst.KeepAlive.Data)
			s.hold.sent(0, len(s.inst.KeepAlive.Data))
			if !s.flushStream(out) {
				return
			}
			ka.fired()
		case <-poll.c():
			poll.fired()
			fetch = !s.everyChannelSent()
			clear(s.sent)
		case <-s.sub.Closed():
			s.hold.because(s.sub.Reason().Disconnect(), nil)
			if s.sub.Reason() == hub.ReasonSlow {
				s.clientLeft()
				out.abort() // the DisconnectSlow policy
				return
			}
			out.finish() // drained for exit
			return
		case <-out.gone():
			s.hold.because(hub.DisconnectClient, nil)
			s.clientLeft()
			return
		}
	}
}

// deliverStream queues a batch's content on out and says what comes next.
// An item whose prev-id is not the stream's last id on its channel means
// something was missed: with a next link the queue is dropped and the link
// fetched, as Pushpin does; an item the stream already has (its id is the
// last id, e.g. fetched from the link meanwhile) is skipped.
func (s *session) deliverStream(out streamSink, batch []hub.Delivery) (step streamStep, sent bool) {
	for _, d := range batch {
		f := d.Item.HTTPStream
		switch f.Action {
		case hub.ActionClose:
			return stepClose, sent
		case hub.ActionHint:
			if s.inst.Next != nil {
				step = stepFetch
			}
			continue
		case hub.ActionSend:
		default:
			continue
		}
		c := s.channelSpec(d.Channel)
		if c != nil && c.PrevID != "" && d.Item.PrevID != "" && d.Item.PrevID != c.PrevID {
			if d.Item.ID == c.PrevID {
				continue
			}
			if s.inst.Next != nil {
				s.sub.Take(nil) // Pushpin clears the queue: the link brings it all
				return stepFetch, sent
			}
		}
		content, ok, err := s.render(d, f.ContentFilters, f.Content)
		if !ok {
			s.filtered(d.Channel, err)
			continue
		}
		out.add(content)
		s.hold.sent(1, len(content))
		sent = true
		if c != nil {
			if d.Item.ID != "" {
				c.PrevID = d.Item.ID
			}
			if s.sent == nil {
				s.sent = make(map[string]bool)
			}
			s.sent[d.Channel] = true
		}
	}
	return step, sent
}

// channelSpec is the hold's entry for channel, or nil.
func (s *session) channelSpec(channel string) *ChannelSpec {
	for i := range s.inst.Channels {
		if s.inst.Channels[i].Name == channel {
			return &s.inst.Channels[i]
		}
	}
	return nil
}

// everyChannelSent reports whether every channel got content since the
// next link was last fetched, in which case the timed re-fetch is skipped.
func (s *session) everyChannelSent() bool {
	for _, c := range s.inst.Channels {
		if !s.sent[c.Name] {
			return false
		}
	}
	return true
}

// errNonStreamHold is Pushpin's text for a next link answering with a
// response hold.
var errNonStreamHold = errors.New("Next link returned non-stream hold.")

// followNext fetches the next link, appends its body to the stream and
// adopts its instructions: a stream hold continues with the new channels,
// keep-alive and next link; a reply without a hold and with a next link is
// a page, and the following one is fetched at once; a reply without a hold
// or a next link ends the stream. It reports whether the stream goes on.
func (s *session) followNext(out streamSink) bool {
	for {
		next := s.inst.Next.URL
		res, err := s.links.fetchNext(s.linkCtx, next, s.inst.Channels, s.waitFn(out))
		if err != nil {
			s.endAfterFailedLink(out, next.String(), err)
			return false
		}
		body := res.body.Bytes()
		var inst *Instruct
		if IsGrip(res.header) {
			inst, err = ParseInstruct(res.status, res.header, body, next)
			if err == nil {
				err = checkStreamLinks(inst, s.g.ref.hub)
			}
			if err == nil && inst.Hold == HoldResponse {
				err = errNonStreamHold
			}
			if err != nil {
				s.g.logger.Error("invalid GRIP instructions from next link; ending the stream",
					zap.String("link", next.String()), zap.Error(err))
				s.hold.because(hub.DisconnectOriginError, err)
				out.finish()
				return false
			}
			body = inst.Body
		}
		if body, err = s.sub.RenderInitial(body); err != nil {
			s.g.logger.Error("filter error on a next link's body; ending the stream",
				zap.String("link", next.String()), zap.Error(err))
			s.hold.because(hub.DisconnectOriginError, err)
			out.finish()
			return false
		}
		out.add(body)
		s.hold.sent(0, len(body))
		if inst == nil || (inst.Hold == HoldNone && inst.Next == nil) {
			if s.flushStream(out) {
				s.hold.because(hub.DisconnectOriginClose, nil)
				out.finish()
			}
			return false
		}
		// The channels change before the client sees the body: an item
		// published once it has is for the new channels only.
		s.adopt(inst)
		if !s.flushStream(out) {
			return false
		}
		if inst.Hold == HoldStream {
			return true
		}
	}
}

// endAfterFailedLink ends a stream whose next link could not be fetched:
// because the client left (the gone link is posted), because the hub ended
// the subscriber meanwhile (as streamLoop would), or because the link kept
// failing (logged; the body ends cleanly, as Pushpin ends it).
func (s *session) endAfterFailedLink(out streamSink, link string, err error) {
	select {
	case <-out.gone():
		s.hold.because(hub.DisconnectClient, nil)
		s.clientLeft()
		return
	case <-s.sub.Closed():
		s.hold.because(s.sub.Reason().Disconnect(), nil)
		if s.sub.Reason() == hub.ReasonSlow {
			s.clientLeft()
			out.abort()
			return
		}
		out.finish()
		return
	default:
	}
	s.g.logger.Error("next link failed; ending the stream", zap.String("link", link), zap.Error(err))
	s.hold.because(hub.DisconnectOriginError, err)
	out.finish()
}

// waitFn sleeps between next-link attempts, unless the stream ends first.
func (s *session) waitFn(out streamSink) func(time.Duration) bool {
	return func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-out.gone():
		case <-s.sub.Closed():
		}
		return false
	}
}

// adopt makes inst, a next link's answer, the stream's instructions: the
// channels it no longer names are left, new ones joined, and its meta,
// keep-alive and next link replace the old. The gone link stays the first
// response's, as in Pushpin.
func (s *session) adopt(inst *Instruct) {
	h := s.g.ref.hub
	for _, old := range s.inst.Channels {
		if !hasChannel(inst.Channels, old.Name) {
			h.Unsubscribe(s.sub, old.Name)
			s.sub.SetFilters(old.Name, nil)
		}
	}
	if inst.Meta != nil {
		s.sub.SetMeta(inst.Meta)
	}
	oldChannels := s.inst.Channels
	s.inst = &Instruct{Hold: inst.Hold, Channels: inst.Channels, KeepAlive: inst.KeepAlive, Meta: inst.Meta, Next: inst.Next}
	clear(s.caughtUp) // the link's prev-ids are the ones that count now
	for _, c := range inst.Channels {
		s.sub.SetFilters(c.Name, c.Filters)
		if !hasChannel(oldChannels, c.Name) {
			s.join(c.Name, c.PrevID)
		}
	}
	s.hold.subscribed(len(inst.Channels))
	clear(s.sent)
}

func hasChannel(list []ChannelSpec, name string) bool {
	for _, c := range list {
		if c.Name == name {
			return true
		}
	}
	return false
}

// checkStreamLinks rejects a stream hold that names a prev-id without a
// next link: nothing could recover a gap (Pushpin's rule and text). A
// channel that keeps history is the exception: the hub catches the stream
// up itself.
func checkStreamLinks(inst *Instruct, h *hub.Hub) error {
	if inst.Hold != HoldStream || inst.Next != nil {
		return nil
	}
	for _, c := range inst.Channels {
		if c.PrevID != "" && !h.HasHistory(c.Name) {
			return &InstructError{Header: "Grip-Channel", Msg: fmt.Sprintf("channel '%s' specifies prev-id, but no next link found", c.Name)}
		}
	}
	return nil
}

// linkPoll re-fetches a stream's next link every timeout, unless every
// channel saw content meanwhile (see streamLoop).
type linkPoll struct {
	t     *time.Timer
	armed bool
}

// arm starts the timer for inst's next link unless it is running.
func (p *linkPoll) arm(inst *Instruct) {
	if p.armed || inst.Next == nil || inst.Hold != HoldStream {
		return
	}
	if p.t == nil {
		p.t = time.NewTimer(inst.Next.Timeout)
	} else {
		p.t.Reset(inst.Next.Timeout)
	}
	p.armed = true
}

// c is the channel to select on; nil (never ready) when not armed.
func (p *linkPoll) c() <-chan time.Time {
	if !p.armed {
		return nil
	}
	return p.t.C
}

// fired notes that the timer went off; the next arm restarts it.
func (p *linkPoll) fired() { p.armed = false }

func (p *linkPoll) stop() {
	if p.t != nil {
		p.t.Stop()
	}
	p.armed = false
}

// flushStream sends what is queued. A client that cannot take it is a slow
// consumer and is cut off; one that left is no news.
func (s *session) flushStream(out streamSink) bool {
	err := out.flush()
	if err == nil {
		return true
	}
	s.clientLeft()
	select {
	case <-out.gone():
		s.hold.because(hub.DisconnectClient, err)
		return false
	default:
	}
	s.hold.because(hub.DisconnectWriteTimeout, err)
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
