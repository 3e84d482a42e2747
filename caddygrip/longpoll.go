package caddygrip

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddy-grip/grip/formats"
	"github.com/caddy-grip/grip/hub"
	"github.com/caddy-grip/grip/instruct"
	"go.uber.org/zap"
)

// holdResponse waits for the first published http-response, the timeout,
// or the client leaving (long-polling). A client whose prev-id shows it
// missed a publish is sent back to the origin instead, as is a hint.
func (s *session) holdResponse() error {
	s.subscribe(hub.KindResponse)
	defer s.done()
	// Checked after subscribing: a publish from then on is delivered, one
	// from before shows in the channel's last published id.
	if s.canRetry() && s.missedBeforeSubscribing() {
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
				case f.Action == formats.ActionHint:
					if s.canRetry() {
						return s.retry("hint")
					}
				case f.Action != formats.ActionSend:
				case s.clientHas(d):
					// The origin already gave the client this item; its
					// publish reached the hub after the origin answered.
				case s.gap(d):
					return s.recoverResponse("prev-id gap")
				default:
					body, err := s.publishedBody(d)
					if errors.Is(err, errPatchFailed) {
						return s.recoverResponse(err.Error())
					}
					if err != nil {
						continue // filtered out for this client
					}
					s.hold.because(hub.DisconnectAnswered, nil)
					s.hold.sent(1, 0)
					s.respondPublished(f, body)
					return nil
				}
			}
		case <-timer.C:
			s.hold.because(hub.DisconnectTimeout, nil)
			s.respond(s.inst.Status, s.inst.Header, s.inst.Body)
			return nil
		case <-s.sub.Closed():
			s.hold.because(s.sub.Reason().Disconnect(), nil)
			s.respond(s.inst.Status, s.inst.Header, s.inst.Body)
			return nil
		case <-s.r.Context().Done():
			s.hold.because(hub.DisconnectClient, nil)
			s.clientLeft()
			return nil
		}
	}
}

// maxRetries bounds origin re-requests for one client request.
const maxRetries = 5

// missedBeforeSubscribing reports that an item was published on one of
// the channels before the subscription: its last published id is not the
// origin's prev-id, and nothing delivered since could explain the
// difference (a queued item's own prev-id is checked when it is taken).
func (s *session) missedBeforeSubscribing() bool {
	return !s.sub.Pending() && s.staleChannel()
}

// staleChannel reports a channel whose last published id is not the
// prev-id the origin gave: something was published the client lacks.
func (s *session) staleChannel() bool {
	for _, c := range s.inst.Channels {
		if c.PrevID == "" || s.caughtUp[c.Name] {
			continue
		}
		if id, ok := s.g.ref.hub.LastPublishedID(c.Name); ok && id != c.PrevID {
			return true
		}
	}
	return false
}

// clientHas reports a delivered item whose id is the prev-id the origin
// gave for its channel: the client has it already.
func (s *session) clientHas(d hub.Delivery) bool {
	c := s.channelSpec(d.Channel)
	return c != nil && c.PrevID != "" && d.Item.ID == c.PrevID
}

// recoverResponse sends a client that lacks something back to the origin:
// through a re-request, or, once settled, with the held response, so that
// the client asks the origin itself rather than skip a message.
func (s *session) recoverResponse(why string) error {
	if !s.canRetry() {
		s.hold.because(hub.DisconnectAnswered, nil)
		s.respond(s.inst.Status, s.inst.Header, s.inst.Body)
		return nil
	}
	return s.retry(why)
}

// canRetry reports whether the request may still be re-issued: not beyond
// maxRetries, nor with a body (it was consumed). A hold that cannot is
// settled: it keeps its one subscription to the end, since leaving and
// joining again would miss what is published in between.
func (s *session) canRetry() bool {
	return s.retries < maxRetries && s.r.ContentLength == 0
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
// those hold settled (see canRetry).
func (s *session) retry(why string) error {
	s.done()
	s.retries++
	if c := s.g.logger.Check(zap.DebugLevel, "re-requesting from origin"); c != nil {
		c.Write(zap.String("reason", why), zap.String("uri", s.r.RequestURI))
	}
	h := s.r.Header.Clone()
	addGripLast(h, s.inst.Channels)
	res, err := newOriginRequest(s.r, s.next, s.g.MaxInstructSize, s.g.ref.metrics).do(s.r.Context(), originRetry, s.r.Method, h, nil)
	if err != nil {
		return s.fail(err)
	}
	if !instruct.IsGrip(res.header) {
		s.hold.because(hub.DisconnectAnswered, nil)
		s.hold.sent(0, res.body.Len())
		relayCapture(s.w, res)
		return nil
	}
	s.originHeader, s.sub = res.header, nil
	return s.serveBuffered(res.status, res.body.Bytes())
}

// errPatchFailed marks a body-patch that does not apply to the held body.
var errPatchFailed = errors.New("body-patch does not apply to the held body")

// publishedBody is the body a published http-response gives this client:
// its body, or its body-patch applied to the held body, then the channel's
// content filters. A patch that does not apply means the client holds
// something the publisher did not expect: the caller re-requests the
// origin rather than answer with an empty body as Pushpin does.
func (s *session) publishedBody(d hub.Delivery) ([]byte, error) {
	f := d.Item.HTTPResponse
	body := f.Body
	if f.BodyPatch != nil {
		patched, err := formats.ApplyJSONPatch(s.inst.Body, f.BodyPatch)
		if err != nil {
			s.g.logger.Debug("body-patch failed", zap.String("channel", d.Channel), zap.Error(err))
			return nil, fmt.Errorf("%w: %v", errPatchFailed, err)
		}
		body = patched
	}
	out, ok, err := s.render(d, f.ContentFilters, body)
	if !ok {
		s.filtered(d.Channel, err)
		return nil, err
	}
	return out, nil
}

// respondPublished answers a response hold with a published http-response:
// its headers merged over the held response's (already narrowed by
// Grip-Expose-Headers), its own status, and body.
func (s *session) respondPublished(f *formats.HTTPResponse, body []byte) {
	h := s.inst.Header.Clone()
	for i, hd := range f.Headers {
		name := http.CanonicalHeaderKey(hd.Name)
		if instruct.IsGripHeader(name) {
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
	s.respond(code, h, body)
}

// firstOccurrence reports whether headers[i] is the first with its name.
func firstOccurrence(headers []formats.Header, i int) bool {
	for j := range i {
		if strings.EqualFold(headers[j].Name, headers[i].Name) {
			return false
		}
	}
	return true
}
