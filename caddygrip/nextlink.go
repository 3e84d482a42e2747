package caddygrip

import (
	"errors"
	"fmt"
	"time"

	"github.com/caddy-grip/grip/hub"
	"github.com/caddy-grip/grip/instruct"
	"go.uber.org/zap"
)

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
		var inst *instruct.Instruction
		if instruct.IsGrip(res.header) {
			inst, err = instruct.Parse(res.status, res.header, body, next)
			if err == nil {
				err = checkStreamLinks(inst, s.g.ref.hub)
			}
			if err == nil && inst.Hold == instruct.HoldResponse {
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
		if body, err = renderInitialBody(s.sub, body); err != nil {
			s.g.logger.Error("filter error on a next link's body; ending the stream",
				zap.String("link", next.String()), zap.Error(err))
			s.hold.because(hub.DisconnectOriginError, err)
			out.finish()
			return false
		}
		out.add(body)
		s.hold.sent(0, len(body))
		if inst == nil || (inst.Hold == instruct.HoldNone && inst.Next == nil) {
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
		if inst.Hold == instruct.HoldStream {
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

// adopt makes inst, a next link's answer, the stream's instructions: the
// channels it no longer names are left, new ones joined, and its meta,
// keep-alive and next link replace the old. The gone link stays the first
// response's, as in Pushpin.
func (s *session) adopt(inst *instruct.Instruction) {
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
	s.inst = &instruct.Instruction{Hold: inst.Hold, Channels: inst.Channels, KeepAlive: inst.KeepAlive, Meta: inst.Meta, Next: inst.Next}
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

func hasChannel(list []instruct.Channel, name string) bool {
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
func checkStreamLinks(inst *instruct.Instruction, h *hub.Hub) error {
	if inst.Hold != instruct.HoldStream || inst.Next != nil {
		return nil
	}
	for _, c := range inst.Channels {
		if c.PrevID != "" && !h.HasHistory(c.Name) {
			return &instruct.Error{Header: "Grip-Channel", Msg: fmt.Sprintf("channel '%s' specifies prev-id, but no next link found", c.Name)}
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
func (p *linkPoll) arm(inst *instruct.Instruction) {
	if p.armed || inst.Next == nil || inst.Hold != instruct.HoldStream {
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
