package caddygrip

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/caddy-grip/grip/formats"
	"github.com/caddy-grip/grip/hub"
	"github.com/caddy-grip/grip/instruct"
	"github.com/caddy-grip/grip/wsoverhttp"
)

// wsSession is one client WebSocket spoken to the origin as
// WebSocket-over-HTTP. Only one goroutine at a time writes to the client:
// the handler's until the session starts, then run's (gorilla allows one
// writer, plus control frames from anywhere).
type wsSession struct {
	g          *Grip
	origin     *originRequest // detached from the client request, which has ended
	remoteAddr string
	who        requestInfo // the client's upgrade request, for log lines
	connID     string
	base       http.Header       // client headers every origin request carries
	meta       map[string]string // sent as Meta-* headers
	conn       *websocket.Conn
	sub        *hub.Subscriber
	hold       *holdTrack // counts and logs the session as a hold

	gripExt  bool   // the origin enabled the grip extension
	prefix   string // its message prefix
	detached bool   // the origin leg is closed; client messages are dropped

	keepAliveInterval time.Duration // empty origin requests after this idle time
	clientKA          *wsoverhttp.Control
	clientKATimer     resettableTimer     // sends clientKA to the client
	delayed           *wsoverhttp.Control // the send-delayed slot

	closing bool // a close frame went to the client

	idleWait func() // parks readLoop until the client sends something

	wsLoop
}

// wsLoop is the state run keeps between events. It lives in the session
// rather than in run's frame: an idle session's goroutine then parks on a
// small stack.
type wsLoop struct {
	inbound chan wsoverhttp.Event // client messages, from readLoop
	readErr chan error            // the error that ended readLoop
	stopped chan struct{}         // closed when run returns: readLoop's way out
	results chan originResult     // the origin request in flight

	pending      []wsoverhttp.Event // for the next origin request
	pendingBytes int
	inFlight     bool // an origin request is in flight
	refresh      bool // an origin request is due even without events

	closeQueued, closePosted bool // a CLOSE event for the origin: queued, then sent
	clientCode               int  // the client's close, for the client once the origin answered
	clientText               string
	clientDone, closeAcked   bool // the client closed; the origin answered the CLOSE

	idle          resettableTimer // origin keep-alive
	delayedTimer  resettableTimer // sends the send-delayed message
	ping          *time.Ticker
	closeDeadline <-chan time.Time // for the client's answer to a close
	batch         []hub.Delivery
}

// originResult is one finished origin request.
type originResult struct {
	res *capture
	err error
}

// post sends events to the origin and returns its answer.
func (s *wsSession) post(ctx context.Context, events []wsoverhttp.Event) (*capture, error) {
	h := s.base.Clone()
	h.Set("Connection-Id", s.connID)
	for k, v := range s.meta {
		h.Set("Meta-"+k, v)
	}
	if signer := s.g.signerNow(); signer != nil {
		tok, err := signer.Token()
		if err != nil {
			return nil, fmt.Errorf("signing Grip-Sig: %w", err)
		}
		h.Set("Grip-Sig", tok)
	}
	ctx, cancel := context.WithTimeout(ctx, originCallTimeout)
	defer cancel()
	return s.origin.do(ctx, originWebSocket, http.MethodPost, h, wsoverhttp.AppendEvents(nil, events...))
}

// applyHeaders takes Set-Meta-* and Keep-Alive-Interval from an answer.
func (s *wsSession) applyHeaders(h http.Header) {
	for k, v := range h {
		if name, ok := strings.CutPrefix(k, "Set-Meta-"); ok {
			if len(v) == 0 || v[0] == "" {
				delete(s.meta, name)
			} else {
				s.meta[name] = v[0]
			}
		}
	}
	if s.sub != nil {
		s.sub.SetMeta(s.meta)
	}
	if v := h.Get("Keep-Alive-Interval"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			s.keepAliveInterval = max(time.Duration(n)*time.Second, minKeepAliveInterval)
		}
	}
}

// open subscribes the session and carries out the origin's answer to
// OPEN; it reports whether the session is already over, in which case it
// has ended it. It runs on the handler goroutine, whose stack is deep
// already, so that the session's goroutines start and stay small.
func (s *wsSession) open(initial []wsoverhttp.Event) (over bool) {
	s.sub = hub.NewSubscriber(hub.KindWebSocket)
	s.sub.SetMeta(s.meta)
	s.g.binding.track(s.sub, s.g.ref.hub)
	s.hold = s.g.startHold(hub.KindWebSocket, s.who, 0)
	if s.applyEvents(initial) {
		s.end()
		return true
	}
	return false
}

// end releases what the session holds; the origin request in flight, if
// any, is canceled by run.
func (s *wsSession) end() {
	s.idle.stop()
	s.clientKATimer.stop()
	s.delayedTimer.stop()
	if s.ping != nil {
		s.ping.Stop()
	}
	s.g.ref.hub.UnsubscribeAll(s.sub)
	s.g.binding.untrack(s.sub)
	s.conn.Close()
	s.hold.end()
}

// run is the session after open: client messages batched to the origin
// one request at a time, origin events and published messages to the
// client. Each event is handled by a method of its own, which keeps run's
// frame, and so the stack an idle session parks on, small.
func (s *wsSession) run() {
	ctx, cancel := context.WithCancel(s.origin.context())
	defer cancel() // the origin request in flight
	defer s.end()
	s.inbound = make(chan wsoverhttp.Event, 4) // a little read-ahead; the origin gets batches anyway
	s.readErr = make(chan error, 1)
	s.stopped = make(chan struct{})
	defer close(s.stopped)
	s.results = make(chan originResult, 1)
	go s.readLoop()
	s.idle.reset(s.keepAliveInterval)
	s.ping = time.NewTicker(wsPingInterval)
	s.afterEvent(ctx) // act on what the OPEN answer set: a send-delayed timer, a close
	for {
		in := s.inbound
		if s.pendingBytes >= wohMaxBatch {
			in = nil // back-pressure: stop reading the client until the origin catches up
		}
		over := false
		select {
		case ev := <-in:
			s.onClientMessage(ev)
		case err := <-s.readErr:
			over = s.onClientEnd(err)
		case r := <-s.results:
			over = s.onOriginAnswer(r)
		case <-s.sub.Ready():
			s.onDeliveries()
		case <-s.sub.Closed():
			over = s.onUnsubscribed()
		case <-s.idle.c():
			s.idle.stop()
			s.refresh = true
		case <-s.clientKATimer.c():
			s.sendClientKeepAlive()
		case <-s.delayedTimer.c():
			s.delayedTimer.stop()
			s.flushDelayed()
		case <-s.ping.C:
			_ = s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Duration(s.g.WriteTimeout)))
		case <-s.closeDeadline:
			over = true
		}
		if over {
			return
		}
		s.afterEvent(ctx)
	}
}

// onClientMessage queues a client message for the origin.
func (s *wsSession) onClientMessage(ev wsoverhttp.Event) {
	if s.detached {
		return
	}
	s.pending = append(s.pending, ev)
	s.pendingBytes += len(ev.Content) + 16
}

// onClientEnd handles the error that ended readLoop: a close frame, or the
// client vanishing. It reports whether the session is over.
func (s *wsSession) onClientEnd(err error) (over bool) {
	if errors.Is(err, errInvalidUTF8) {
		// RFC 6455 section 8.1: the connection fails with 1007.
		s.hold.because(hub.DisconnectClient, err)
		s.writeClose(websocket.CloseInvalidFramePayloadData, "invalid UTF-8 in text message")
		s.disconnectLater()
		return true
	}
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code == websocket.CloseAbnormalClosure || s.detached {
		// The client vanished without a close frame.
		s.hold.because(hub.DisconnectClient, err)
		s.disconnectLater()
		return true
	}
	s.hold.because(hub.DisconnectClient, nil) // unless it answers a close from this side
	s.clientDone, s.closeDeadline = true, nil
	if s.closeQueued { // its answer to a close the origin was told of already
		return s.closeAcked
	}
	// The client's close, or its answer to the origin's: to the origin
	// after the messages read before it.
	for drained := false; !drained; {
		select {
		case ev := <-s.inbound:
			s.pending = append(s.pending, ev)
		default:
			drained = true
		}
	}
	s.pending = append(s.pending, wsoverhttp.CloseEvent(ce.Code, ce.Text))
	s.closeQueued = true
	s.clientCode, s.clientText = ce.Code, ce.Text
	return false
}

// onOriginAnswer carries out the answer to an origin request; it reports
// whether the session is over.
func (s *wsSession) onOriginAnswer(r originResult) (over bool) {
	s.inFlight = false
	if r.err == nil && !isEventsResponse(r.res) {
		r.err = fmt.Errorf("origin answered %d %q", r.res.status, r.res.header.Get("Content-Type"))
	}
	if r.err != nil {
		s.g.logger.Error("WebSocket-over-HTTP request failed", zap.Error(r.err), zap.String("connection_id", s.connID))
		s.hold.because(hub.DisconnectOriginError, r.err)
		s.writeClose(websocket.CloseInternalServerErr, "origin error")
		return true
	}
	s.applyHeaders(r.res.header)
	events, err := wsoverhttp.ParseEvents(r.res.body.Bytes(), 0)
	if err != nil {
		s.g.logger.Error("invalid WebSocket-over-HTTP answer from origin", zap.Error(err), zap.String("connection_id", s.connID))
		s.hold.because(hub.DisconnectOriginError, err)
		s.writeClose(websocket.CloseInternalServerErr, "origin error")
		return true
	}
	if s.applyEvents(events) {
		return true
	}
	if s.closePosted {
		s.closeAcked = true
		s.writeClose(s.clientCode, s.clientText) // unless a close frame went already
		if s.clientDone {
			return true
		}
	}
	s.idle.reset(s.keepAliveInterval)
	return false
}

// onDeliveries writes what was published to the session's channels.
func (s *wsSession) onDeliveries() {
	s.batch = s.sub.Take(s.batch[:0])
	for _, d := range s.batch {
		switch f := d.Item.WSMessage; f.Action {
		case formats.ActionSend:
			names, meta := s.sub.ContentFilters(d.Channel)
			content, ok, err := formats.Render(names, meta, f.ContentFilters, f.Content, nil)
			if !ok {
				s.g.ref.hub.CountDrop(hub.DropFiltered, 1)
				if c := s.g.logger.Check(zap.DebugLevel, "message not delivered: content filter"); c != nil {
					c.Write(zap.String("channel", d.Channel), zap.Error(err))
				}
				continue
			}
			s.write(messageType(f.Type), content)
		case formats.ActionClose:
			// The origin hears of it as a CLOSE without status, as
			// from Pushpin; the client's answer ends the session.
			if !s.closing && !s.closeQueued {
				s.hold.because(hub.DisconnectPublishClose, nil)
				s.writeClose(f.Code, f.Reason)
				s.pending = append(s.pending, wsoverhttp.Event{Type: wsoverhttp.Close})
				s.closeQueued = true
			}
		case formats.ActionRefresh:
			s.refresh = true
		}
	}
	clear(s.batch) // an idle session keeps no published content
	if cap(s.batch) > 64 {
		s.batch = nil
	}
}

// onUnsubscribed ends the session its subscriber was closed under.
func (s *wsSession) onUnsubscribed() (over bool) {
	s.hold.because(s.sub.Reason().Disconnect(), nil)
	if s.sub.Reason() == hub.ReasonSlow {
		// Cut off as a slow consumer: gone for the origin, as a client
		// that vanished is.
		s.disconnectLater()
		return true
	}
	// Shutting down: the process may exit right after, so the origin is
	// told now rather than in the background.
	s.writeClose(websocket.CloseGoingAway, "server shutting down")
	s.disconnect()
	return true
}

// sendClientKeepAlive sends the keep-alive message a control message set.
func (s *wsSession) sendClientKeepAlive() {
	if ka := s.clientKA; ka != nil {
		s.write(messageType(ka.MessageType), ka.Content)
		s.clientKATimer.reset(ka.Timeout) // interval mode, or idle after this send
	}
}

// afterEvent arms the close deadline, starts the next origin request if
// one is due and none is in flight, and arms the send-delayed timer.
func (s *wsSession) afterEvent(ctx context.Context) {
	if s.closing && s.closeDeadline == nil && !s.clientDone {
		s.closeDeadline = time.After(wsCloseWait)
	}
	if !s.inFlight && !s.detached && (len(s.pending) > 0 || s.refresh) {
		events := s.pending
		s.closePosted = s.closeQueued
		s.pending, s.pendingBytes, s.refresh, s.inFlight = nil, 0, false, true
		go func() {
			res, err := s.post(ctx, events)
			s.results <- originResult{res, err}
		}()
	}
	if s.delayed != nil {
		s.delayedTimer.resetIfStopped(s.delayed.Timeout)
	}
}

// readLoop feeds client messages to run; a close frame arrives as the
// *websocket.CloseError that ends it.
func (s *wsSession) readLoop() {
	inbound, done, stopped := s.inbound, s.readErr, s.stopped
	c := s.conn
	c.SetReadLimit(int64(s.g.MaxMessageSize))
	_ = c.SetReadDeadline(time.Now().Add(wsPongWait))
	c.SetPongHandler(func(string) error { return c.SetReadDeadline(time.Now().Add(wsPongWait)) })
	c.SetCloseHandler(func(int, string) error { return nil }) // run answers after the origin
	for {
		s.idleWait()
		mt, data, err := c.ReadMessage()
		if err != nil {
			done <- err
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(wsPongWait))
		t := wsoverhttp.Text
		if mt == websocket.BinaryMessage {
			t = wsoverhttp.Binary
		} else if !utf8.Valid(data) {
			done <- errInvalidUTF8 // gorilla does not check
			return
		}
		select {
		case inbound <- wsoverhttp.Event{Type: t, Content: data}:
		case <-stopped: // the session ended while the origin was behind
			return
		}
	}
}

// applyEvents carries out an origin answer; it reports whether the session
// is over.
func (s *wsSession) applyEvents(events []wsoverhttp.Event) (over bool) {
	for _, ev := range events {
		switch ev.Type {
		case wsoverhttp.Text, wsoverhttp.Binary:
			data := ev.Content
			if s.gripExt {
				kind, payload := wsoverhttp.SplitMessage(ev.Type, ev.Content, s.prefix)
				switch kind {
				case wsoverhttp.MessageControl:
					if s.control(payload) {
						return true
					}
					continue
				case wsoverhttp.MessageDrop:
					continue
				}
				data = payload
			}
			mt := websocket.TextMessage
			if ev.Type == wsoverhttp.Binary {
				mt = websocket.BinaryMessage
			}
			s.write(mt, data)
		case wsoverhttp.Ping:
			_ = s.conn.WriteControl(websocket.PingMessage, ev.Content, time.Now().Add(time.Duration(s.g.WriteTimeout)))
		case wsoverhttp.Pong:
			_ = s.conn.WriteControl(websocket.PongMessage, ev.Content, time.Now().Add(time.Duration(s.g.WriteTimeout)))
		case wsoverhttp.Close:
			code, reason, _ := ev.CloseCode()
			s.hold.because(hub.DisconnectOriginClose, nil)
			s.writeClose(code, reason) // the client's answer goes back as CLOSE
		case wsoverhttp.Open, wsoverhttp.Disconnect:
			// An OPEN after OPEN, or DISCONNECT: the origin drops the client.
			s.hold.because(hub.DisconnectOriginClose, nil)
			return true
		}
	}
	return false
}

// control carries out a GRIP control message; invalid ones are ignored
// with a debug line, as in Pushpin. It reports whether the session is
// over: a subscribe with more than MaxFilters filters closes it with 1011,
// as Pushpin does.
func (s *wsSession) control(payload []byte) (over bool) {
	c, err := wsoverhttp.ParseControl(payload)
	if err != nil {
		if ce := s.g.logger.Check(zap.DebugLevel, "ignoring invalid control message"); ce != nil {
			ce.Write(zap.Error(err), zap.String("connection_id", s.connID))
		}
		return false
	}
	h := s.g.ref.hub
	switch c.Type {
	case wsoverhttp.ControlSubscribe:
		if len(c.Filters) > instruct.MaxFilters {
			err := fmt.Errorf("subscribe to %q with %d filters, more than %d", c.Channel, len(c.Filters), instruct.MaxFilters)
			s.g.logger.Warn("invalid control message from origin", zap.Error(err), zap.String("connection_id", s.connID))
			s.hold.because(hub.DisconnectOriginError, err)
			s.writeClose(websocket.CloseInternalServerErr, "too many filters")
			return true
		}
		if len(s.sub.Channels()) < instruct.MaxChannels {
			s.sub.SetFilters(c.Channel, c.Filters)
			if c.PrevID != "" && s.g.ref.pooled.resumeWebSocket.Load() {
				// The history's websocket extension: what followed prev-id
				// is queued before live messages.
				h.SubscribeAfter(s.sub, c.Channel, c.PrevID)
			} else {
				h.Subscribe(s.sub, c.Channel)
			}
			s.hold.subscribed(len(s.sub.Channels()))
		}
	case wsoverhttp.ControlUnsubscribe:
		h.Unsubscribe(s.sub, c.Channel)
	case wsoverhttp.ControlDetach:
		s.detached = true
	case wsoverhttp.ControlSetMeta:
		if c.HasValue && c.Value != "" {
			s.meta[c.Name] = c.Value
		} else {
			delete(s.meta, c.Name)
		}
		s.sub.SetMeta(s.meta)
	case wsoverhttp.ControlKeepAlive:
		s.clientKA = nil
		s.clientKATimer.reset(0)
		if c.HasContent {
			s.clientKA = c
			s.clientKATimer.reset(c.Timeout)
		}
	case wsoverhttp.ControlSendDelayed:
		s.flushDelayed()
		s.delayed = c
	case wsoverhttp.ControlFlushDelayed:
		s.flushDelayed()
	}
	return false
}

// flushDelayed sends the send-delayed message, if one waits.
func (s *wsSession) flushDelayed() {
	if d := s.delayed; d != nil {
		s.delayed = nil
		s.write(messageType(d.MessageType), d.Content)
	}
}

// write sends one message to the client under the write deadline; a client
// that cannot take it is a slow consumer. A ping or pong over the control
// frame limit is dropped: it is no fault of the client's.
func (s *wsSession) write(mt int, data []byte) {
	if s.closing {
		return
	}
	if (mt == websocket.PingMessage || mt == websocket.PongMessage) && len(data) > maxControlPayload {
		if ce := s.g.logger.Check(zap.DebugLevel, "dropping a ping or pong over 125 bytes"); ce != nil {
			ce.Write(zap.Int("bytes", len(data)), zap.String("connection_id", s.connID))
		}
		return
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(time.Duration(s.g.WriteTimeout)))
	var err error
	if mt == websocket.PingMessage || mt == websocket.PongMessage {
		err = s.conn.WriteControl(mt, data, time.Now().Add(time.Duration(s.g.WriteTimeout)))
	} else {
		err = s.conn.WriteMessage(mt, data)
	}
	if err != nil {
		err = fmt.Errorf("WebSocket write to %s: %w", s.remoteAddr, err)
		s.hold.because(hub.DisconnectWriteTimeout, err)
		s.g.ref.hub.DisconnectSlow(s.sub, err)
		s.closing = true
		return
	}
	s.hold.sent(1, len(data))
	if ka := s.clientKA; ka != nil && ka.Mode != "interval" {
		s.clientKATimer.reset(ka.Timeout) // idle mode: counted from the last message
	}
}

// writeClose sends a close frame once; the session then waits a little for
// the client's answer.
func (s *wsSession) writeClose(code int, reason string) {
	if s.closing {
		return
	}
	s.closing = true
	msg := closePayload(code, reason)
	_ = s.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Duration(s.g.WriteTimeout)))
}

// disconnectLater runs disconnect in the background, unless the origin
// leg is detached; the exit drain waits for it, within wsDrainWait.
func (s *wsSession) disconnectLater() {
	if s.detached {
		return
	}
	s.g.sessions.Add(1)
	go func() {
		defer s.g.sessions.Done()
		s.disconnect()
	}()
}

// disconnect tells the origin the client is gone, best effort, as Pushpin
// does.
func (s *wsSession) disconnect() {
	if _, err := s.post(s.origin.context(), []wsoverhttp.Event{{Type: wsoverhttp.Disconnect}}); err != nil {
		if ce := s.g.logger.Check(zap.DebugLevel, "DISCONNECT to origin failed"); ce != nil {
			ce.Write(zap.Error(err), zap.String("connection_id", s.connID))
		}
	}
}

// messageType maps a GRIP message type name to gorilla's.
func messageType(t string) int {
	switch t {
	case "binary":
		return websocket.BinaryMessage
	case "ping":
		return websocket.PingMessage
	case "pong":
		return websocket.PongMessage
	}
	return websocket.TextMessage
}

// resettableTimer is a timer that may be off (zero duration), as it is
// when zero.
type resettableTimer struct{ t *time.Timer }

// reset re-arms the timer for d, or turns it off when d is zero.
func (rt *resettableTimer) reset(d time.Duration) {
	if d <= 0 {
		rt.stop()
		return
	}
	if rt.t == nil {
		rt.t = time.NewTimer(d)
		return
	}
	rt.t.Reset(d)
}

// resetIfStopped arms the timer only if it is not already running.
func (rt *resettableTimer) resetIfStopped(d time.Duration) {
	if rt.t == nil {
		rt.reset(d)
	}
}

func (rt *resettableTimer) c() <-chan time.Time {
	if rt.t == nil {
		return nil
	}
	return rt.t.C
}

func (rt *resettableTimer) stop() {
	if rt.t != nil {
		rt.t.Stop()
		rt.t = nil
	}
}
