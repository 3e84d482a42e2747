package caddygrip

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/caddy-grip/grip/formats"
	"github.com/caddy-grip/grip/hub"
	"github.com/caddy-grip/grip/instruct"
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
	fetch := s.inst.Next != nil && (s.inst.Hold == instruct.HoldNone || s.missedBeforeSubscribing())
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
		case formats.ActionClose:
			return stepClose, sent
		case formats.ActionHint:
			if s.inst.Next != nil {
				step = stepFetch
			}
			continue
		case formats.ActionSend:
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
func (s *session) channelSpec(channel string) *instruct.Channel {
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
