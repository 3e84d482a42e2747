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

	"github.com/caddy-grip/grip/formats"
	"github.com/caddy-grip/grip/hub"
	"github.com/caddy-grip/grip/instruct"
)

// session is one client request under a grip handler, from the origin's
// answer to the end of the hold.
type session struct {
	g       *Grip
	w       http.ResponseWriter
	r       *http.Request
	next    caddyhttp.Handler
	retries int // origin re-requests for prev-id recovery and hints
	inst    *instruct.Instruction
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
	gone     *instruct.Link
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
	if !instruct.IsGrip(h) {
		return modePass
	}
	origin := h.Clone()
	clear(h)
	if !isHeaderStreamHold(origin) {
		s.originHeader = origin
		return modeBuffer
	}
	inst, err := instruct.Parse(status, origin, nil, s.requestURL())
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
	return h.Get("Grip-Hold") == "stream" && !instruct.IsInstructType(h.Get("Content-Type"))
}

// serveBuffered handles a GRIP reply whose body was buffered.
func (s *session) serveBuffered(status int, body []byte) error {
	inst, err := instruct.Parse(status, s.originHeader, body, s.requestURL())
	if err == nil {
		err = checkStreamLinks(inst, s.g.ref.hub)
	}
	if err != nil {
		return s.fail(err)
	}
	s.setInstruct(inst)
	switch inst.Hold {
	case instruct.HoldResponse:
		return s.holdResponse()
	case instruct.HoldStream:
		return s.startStream()
	}
	if inst.Next != nil {
		// A reply without a hold but with a next link: its body starts a
		// stream that each next link's body extends, until a reply has no
		// next link (paging). Channels the pages name are subscribed, so a
		// page may also turn into a stream hold.
		return s.startStream()
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
func hasBuildID(inst *instruct.Instruction) bool {
	for _, c := range inst.Channels {
		if slices.Contains(c.Filters, formats.FilterBuildID) {
			return true
		}
	}
	return false
}

// renderInitial applies build-id to the initial body of a stream; on a
// filter error the client gets a 502 (Pushpin's "filter error") and the
// hold ends. It reports whether the hold goes on.
func (s *session) renderInitial() bool {
	body, err := renderInitialBody(s.sub, s.inst.Body)
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
func (s *session) setInstruct(inst *instruct.Instruction) {
	s.inst = inst
	if s.retries == 0 {
		s.gone = inst.Gone
	}
}

// startStream subscribes the stream's channels, writes the initial body
// (build-id applied) and holds the stream.
func (s *session) startStream() error {
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
func (s *session) resumePoint(c instruct.Channel) string {
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

// render applies the subscription's content filters to one delivery's
// content. build-id sees each channel's last id with this item counted, as
// Pushpin 1.36 renders it: an SSE "id: %I" then names the event itself.
func (s *session) render(d hub.Delivery, itemFilters []string, content []byte) ([]byte, bool, error) {
	s.rendering = d
	defer func() { s.rendering = hub.Delivery{} }()
	if s.lastIDs == nil {
		s.lastIDs = s.lastIDFor
	}
	names, meta := s.sub.ContentFilters(d.Channel)
	return formats.Render(names, meta, itemFilters, content, s.lastIDs)
}

// renderInitialBody applies build-id, if sub's channels name it, to the
// initial body of a stream hold, as formats.RenderInitial does.
func renderInitialBody(sub *hub.Subscriber, body []byte) ([]byte, error) {
	on, meta := sub.InitialBuildID()
	return formats.RenderInitial(on, meta, body)
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
	var ie *instruct.Error
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
