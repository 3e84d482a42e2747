package caddygrip

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
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
	// hold counts and logs the hold from its first subscription; nil
	// before, and for responses that are not held.
	hold *holdTrack

	// remoteAddr is the client's address when r is not kept (hijacked streams).
	remoteAddr string
	// who is the client request, for log lines.
	who requestInfo

	// originHeader is the origin's GRIP reply headers, kept aside so they
	// never reach the client as they are.
	originHeader http.Header

	// gone is the first response's gone link, POSTed when the client leaves.
	gone     *Link
	goneSent bool
	// links fetches next and gone links; nil when the hold has neither.
	links   *linker
	linkCtx context.Context // ends with the stream; for next-link fetches
	// rendering is the delivery being rendered, and lastIDs the build-id
	// lookup, made once (see render).
	rendering hub.Delivery
	lastIDs   func(channel string) string
	// sent marks the channels that got content since the next link was
	// last fetched.
	sent map[string]bool
	// caughtUp marks the channels the hub's history caught up at
	// subscription: what the client lacked is queued, so they need no
	// recovery from the origin.
	caughtUp map[string]bool
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
	if err == nil {
		err = checkStreamLinks(inst, s.g.ref.hub)
	}
	if err != nil {
		s.err = err
		return modeDiscard
	}
	if hasBuildID(inst) {
		// The initial body is rendered per client, so it is read whole.
		s.originHeader = origin
		return modeBuffer
	}
	s.setInstruct(inst)
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
	if err == nil {
		err = checkStreamLinks(inst, s.g.ref.hub)
	}
	if err != nil {
		return s.fail(err)
	}
	s.setInstruct(inst)
	switch inst.Hold {
	case HoldResponse:
		return s.holdResponse()
	case HoldStream:
		s.subscribe(hub.KindStream)
		if !s.renderInitial() {
			return nil
		}
		if !s.writeInitial() {
			return nil
		}
		return s.holdStream()
	}
	if inst.Next != nil {
		return s.servePages()
	}
	s.hold.because(hub.DisconnectAnswered, nil) // a re-request answered without a hold
	s.respond(inst.Status, inst.Header, inst.Body)
	return nil
}

// writeInitial writes a stream's status, headers and initial body; it
// reports whether the stream goes on.
func (s *session) writeInitial() bool {
	s.writeHead(s.inst.Status, s.inst.Header)
	n, err := s.w.Write(s.inst.Body)
	s.hold.sent(0, n)
	if err != nil {
		s.hold.because(hub.DisconnectClient, err)
		s.done()
		return false
	}
	return true
}

// hasBuildID reports a channel with the build-id filter, which rewrites
// the initial body too.
func hasBuildID(inst *Instruct) bool {
	for _, c := range inst.Channels {
		if slices.Contains(c.Filters, hub.FilterBuildID) {
			return true
		}
	}
	return false
}

// renderInitial applies build-id to the initial body of a stream; on a
// filter error the client gets a 502 (Pushpin's "filter error") and the
// hold ends. It reports whether the hold goes on.
func (s *session) renderInitial() bool {
	body, err := s.sub.RenderInitial(s.inst.Body)
	if err != nil {
		s.hold.because(hub.DisconnectOriginError, err)
		s.done()
		_ = s.fail(fmt.Errorf("filter error: %w", err))
		return false
	}
	s.inst.Body = body
	return true
}

// setInstruct adopts the origin's instructions; the gone link is the
// first response's only.
func (s *session) setInstruct(inst *Instruct) {
	s.inst = inst
	if s.retries == 0 {
		s.gone = inst.Gone
	}
}

// servePages answers a reply without a hold but with a next link: its
// body starts a stream that each next link's body extends, until a reply
// has no next link (paging). Channels the pages name are subscribed, so
// a page may also turn into a stream hold.
func (s *session) servePages() error {
	s.subscribe(hub.KindStream)
	if !s.renderInitial() {
		return nil
	}
	if !s.writeInitial() {
		return nil
	}
	return s.holdStream()
}

// subscribe joins the hub before anything is written to the client, so no
// item published after the origin answered can be missed.
func (s *session) subscribe(kind hub.Kind) {
	s.sub = hub.NewSubscriber(kind)
	if len(s.inst.Meta) > 0 {
		s.sub.SetMeta(s.inst.Meta)
	}
	for _, c := range s.inst.Channels {
		if len(c.Filters) > 0 {
			s.sub.SetFilters(c.Name, c.Filters)
		}
		prev := c.PrevID
		if kind == hub.KindStream {
			prev = s.resumePoint(c)
		}
		s.join(c.Name, prev)
	}
	s.beginHold(kind)
}

// resumePoint is the id a stream resumes channel c after: the origin's
// prev-id, or, with the history's last_event_id extension on, for a
// stream on one channel whose origin gave none, the client's
// Last-Event-ID header (or lastEventId query parameter), as an SSE client
// sends when it reconnects.
func (s *session) resumePoint(c ChannelSpec) string {
	if c.PrevID != "" || len(s.inst.Channels) != 1 || s.r == nil || !s.g.ref.pooled.resumeLastEventID.Load() {
		return c.PrevID
	}
	if id := s.r.Header.Get("Last-Event-ID"); id != "" {
		return id
	}
	return s.r.URL.Query().Get("lastEventId")
}

// beginHold starts counting the hold at its first subscription; a
// re-request that holds again with the same transport continues it. One
// that turns a long-poll into a stream ends the long-poll as answered.
func (s *session) beginHold(kind hub.Kind) {
	if s.hold != nil && s.hold.kind == kind {
		s.hold.subscribed(len(s.inst.Channels))
		return
	}
	s.hold.finish(hub.DisconnectAnswered)
	s.hold = s.g.startHold(kind, s.who, len(s.inst.Channels))
}

// endHold ends the hold's count and logs it, whatever ended it.
func (s *session) endHold() { s.hold.end() }

// firstSubscriptionDelay is how long after a channel's first subscription
// its holds are updated (Pushpin's SUBSCRIBED_DELAY).
const firstSubscriptionDelay = time.Second

// join subscribes to one channel, caught up from the hub's history when the
// channel keeps one that has prevID: the items published after it are
// queued first, and the channel needs no recovery. When it is the channel's first
// subscription, the channel's holds are updated a moment after the bus
// confirms the follow (response holds re-request the origin, streams fetch
// their next link), so that an item published between the origin's answer
// and the moment other nodes' publishes reach this one is not lost. A hold
// that has already been re-requested does not schedule another, so a lone
// long-poll is updated once rather than every second.
func (s *session) join(channel, prevID string) {
	h := s.g.ref.hub
	first, res := h.SubscribeAfter(s.sub, channel, prevID)
	if res == hub.HistoryRecovered {
		if s.caughtUp == nil {
			s.caughtUp = make(map[string]bool)
		}
		s.caughtUp[channel] = true
	}
	if first && s.retries == 0 && s.g.updateOnFirstSubscription() {
		h.WhenFollowed(func() {
			time.AfterFunc(firstSubscriptionDelay, func() { h.Update(channel) })
		})
	}
}

// done leaves the hub.
func (s *session) done() {
	if s.sub != nil {
		s.g.ref.hub.UnsubscribeAll(s.sub)
	}
}

// clientLeft POSTs the gone link, once, when the client disconnects.
func (s *session) clientLeft() {
	if s.gone == nil || s.goneSent {
		return
	}
	s.goneSent = true
	if s.links == nil {
		s.links = newLinker(s.g, s.r, s.next)
	}
	s.links.gone(s.gone.URL)
}

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
				case f.Action == hub.ActionHint:
					if s.canRetry() {
						return s.retry("hint")
					}
				case f.Action != hub.ActionSend:
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
	if !IsGrip(res.header) {
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
		patched, err := hub.ApplyJSONPatch(s.inst.Body, f.BodyPatch)
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

// render applies the subscription's content filters to one delivery's
// content. build-id sees each channel's last id with this item counted, as
// Pushpin 1.36 renders it: an SSE "id: %I" then names the event itself.
func (s *session) render(d hub.Delivery, itemFilters []string, content []byte) ([]byte, bool, error) {
	s.rendering = d
	defer func() { s.rendering = hub.Delivery{} }()
	if s.lastIDs == nil {
		s.lastIDs = s.lastIDFor
	}
	return s.sub.RenderContent(d.Channel, itemFilters, content, s.lastIDs)
}

// lastIDFor is a channel's last id for build-id, during render.
func (s *session) lastIDFor(channel string) string {
	if d := s.rendering; d.Item != nil && d.Channel == channel && d.Item.ID != "" {
		return d.Item.ID
	}
	if c := s.channelSpec(channel); c != nil {
		return c.PrevID
	}
	return ""
}

// filtered counts and logs an item that content filters kept from this
// client.
func (s *session) filtered(channel string, err error) {
	s.g.ref.hub.CountDrop(hub.DropFiltered, 1)
	if c := s.g.logger.Check(zap.DebugLevel, "item not delivered: content filter"); c != nil {
		c.Write(zap.String("channel", channel), zap.Error(err))
	}
}

// respondPublished answers a response hold with a published http-response:
// its headers merged over the held response's (already narrowed by
// Grip-Expose-Headers), its own status, and body.
func (s *session) respondPublished(f *hub.HTTPResponse, body []byte) {
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
	s.respond(code, h, body)
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
	n, _ := s.w.Write(body)
	s.hold.sent(0, n)
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
	s.hold.because(hub.DisconnectOriginError, err)
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
