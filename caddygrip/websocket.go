package caddygrip

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/caddy-grip/grip/instruct"
	"github.com/caddy-grip/grip/wsoverhttp"
)

// WebSocket-over-HTTP limits and timers, Pushpin's where it has them.
const (
	defaultMaxMessageSize = 1 << 20
	wohMinResponse        = 1000000 // the smallest origin response body limit, Pushpin's
	wohMaxBatch           = 200000  // client bytes batched into one request
	minKeepAliveInterval  = 20 * time.Second
	wsPingInterval        = 30 * time.Second
	wsPongWait            = 2*wsPingInterval + 10*time.Second
	wsCloseWait           = 5 * time.Second  // for the other side's close frame
	wsDrainWait           = 5 * time.Second  // on exit, for sessions to tell their origin
	originCallTimeout     = 60 * time.Second // one WebSocket-over-HTTP request
)

// wohResponseLimit is the largest origin response body: at least
// Pushpin's, and enough for the origin to echo the largest batch a session
// posts (up to wohMaxBatch bytes, then a message of up to maxMessage),
// with each event's header.
func wohResponseLimit(maxMessage int) int {
	return max(wohMinResponse, wohMaxBatch+maxMessage+wohEventOverhead)
}

// wohEventOverhead is more than one event's framing: "BINARY", a space, a
// hexadecimal length and two CRLFs.
const wohEventOverhead = 64

// isWebSocketUpgrade reports an HTTP/1.1 WebSocket handshake request.
func isWebSocketUpgrade(r *http.Request) bool {
	return r.Method == http.MethodGet && r.ProtoMajor == 1 &&
		headerHasToken(r.Header, "Connection", "upgrade") &&
		strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// originAllowed applies the origins option to the client's Origin header.
// Clients that send none (non-browsers) are allowed, as gorilla does.
func (g *Grip) originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if len(g.Origins) == 0 || o == "" {
		return true
	}
	for _, p := range g.Origins {
		if ok, _ := path.Match(p, o); ok || p == "*" {
			return true
		}
	}
	return false
}

// serveWebSocket runs a client WebSocket as WebSocket-over-HTTP toward the
// origin: the origin sees short POSTs of events through the same route.
// After the upgrade the session runs on its own goroutines and the handler
// returns, so that an idle session keeps neither Caddy's deep handler
// stack nor the request, its writers and net/http's buffers.
func (g *Grip) serveWebSocket(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if !g.originAllowed(r) {
		g.logger.Info("refused WebSocket origin", zap.String("origin", r.Header.Get("Origin")))
		writeText(w, http.StatusForbidden, "Origin not allowed.\n")
		return nil
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" || r.Header.Get("Sec-WebSocket-Key") == "" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		writeText(w, http.StatusBadRequest, "Bad WebSocket handshake.\n")
		return nil
	}
	s := &wsSession{
		g:          g,
		origin:     newDetachedOriginRequest(r, next, wohResponseLimit(g.MaxMessageSize), g.ref.metrics, g.binding),
		remoteAddr: r.RemoteAddr,
		who:        newRequestInfo(r),
		connID:     newConnectionID(),
		base:       wohBaseHeader(r.Header),
		meta:       map[string]string{},
		prefix:     wsoverhttp.DefaultMessagePrefix,
	}
	// Every origin request sets its own headers: the template needs none.
	s.origin.orig.Header = nil

	// The OPEN is the client request's: it ends if the client leaves.
	res, err := s.post(r.Context(), []wsoverhttp.Event{{Type: wsoverhttp.Open}})
	if err != nil {
		g.logger.Error("WebSocket OPEN to origin failed", zap.Error(err), zap.String("uri", r.RequestURI))
		return caddyhttp.Error(http.StatusBadGateway, err)
	}
	if !isEventsResponse(res) {
		// The origin refused the connection, or does not speak
		// WebSocket-over-HTTP at all (a plain page, a 404).
		if ce := g.logger.Check(zap.DebugLevel, "origin answered the WebSocket OPEN with an HTTP response, not WebSocket-over-HTTP events: relaying it to the client"); ce != nil {
			ce.Write(zap.Int("status", res.status), zap.String("content_type", res.header.Get("Content-Type")),
				zap.String("want", "200 "+wsoverhttp.ContentType), zap.String("uri", r.RequestURI))
		}
		relayCapture(w, res)
		return nil
	}
	events, err := wsoverhttp.ParseEvents(res.body.Bytes(), 0)
	if err != nil || len(events) == 0 || events[0].Type != wsoverhttp.Open {
		if err == nil {
			err = errors.New("first event is not OPEN")
		}
		return g.failHandshake(w, r, err)
	}
	s.gripExt, s.prefix = wsoverhttp.ParseGripExtension(res.header.Values("Sec-WebSocket-Extensions"))
	if !s.gripExt {
		if ce := g.logger.Check(zap.DebugLevel, "origin did not answer the WebSocket OPEN with Sec-WebSocket-Extensions: grip: its messages go to the client as they are, c: control messages included"); ce != nil {
			ce.Write(zap.String("connection_id", s.connID), zap.String("uri", r.RequestURI))
		}
	}
	s.applyHeaders(res.header)

	// The read buffer is the hijacker's, which gorilla takes over when
	// ReadBufferSize is 0: the session can then see whether it is empty.
	up := websocket.Upgrader{
		CheckOrigin:     func(*http.Request) bool { return true }, // checked above
		WriteBufferPool: wsWriteBufferPool,
	}
	if p := res.header.Get("Sec-WebSocket-Protocol"); p != "" {
		up.Subprotocols = []string{p}
	}
	hj := &hijacker{ResponseWriter: w}
	conn, err := up.Upgrade(hj, r, clientHandshakeHeader(res.header))
	if err != nil {
		g.logger.Info("WebSocket upgrade failed", zap.Error(err))
		s.disconnectLater()
		return nil // gorilla has answered the client
	}
	s.conn = conn
	s.idleWait = func() {}
	if hj.br != nil {
		s.idleWait, _ = newIdleWaiter(conn.NetConn(), hj.br)
	}
	if s.open(events[1:]) {
		return nil
	}
	g.sessions.Add(1)
	go func() {
		defer g.sessions.Done()
		s.run()
	}()
	return nil
}

// hijacker reaches Hijack through Caddy's writer wrappers, which do not
// implement http.Hijacker themselves. It hands gorilla a small read buffer
// of its own instead of net/http's.
type hijacker struct {
	http.ResponseWriter
	br *bufio.Reader // the connection's read buffer, once hijacked
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil || brw.Reader.Buffered() > 0 {
		return conn, brw, err // gorilla refuses data sent before the handshake's end
	}
	h.br = bufio.NewReaderSize(conn, wsReadBufferSize)
	return conn, bufio.NewReadWriter(h.br, brw.Writer), nil
}

// wsWriteBufferPool lends write buffers to connections only while they
// write, so that idle connections hold none.
var wsWriteBufferPool = new(sync.Pool)

// wsReadBufferSize is each connection's read buffer, which it keeps for
// its lifetime. Messages of any size up to MaxMessageSize still arrive
// whole: gorilla assembles them independently of the buffer.
const wsReadBufferSize = 512

// newConnectionID is a random Connection-Id for the origin.
func newConnectionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// wohBaseHeader is what every origin request of a session carries from the
// client: its headers without the handshake and hop-by-hop ones. Grip-*
// headers were already removed from untrusted clients.
func wohBaseHeader(client http.Header) http.Header {
	h := client.Clone()
	for _, k := range []string{"Upgrade", "Connection", "Accept", "Connection-Id", "Content-Length",
		"Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions", "Grip-Sig"} {
		h.Del(k)
	}
	for k := range h {
		if strings.HasPrefix(k, "Meta-") {
			delete(h, k)
		}
	}
	h.Set("Accept", wsoverhttp.ContentType)
	h.Set("Content-Type", wsoverhttp.ContentType)
	h.Set("Sec-WebSocket-Extensions", wsoverhttp.GripExtension)
	return h
}

// isEventsResponse reports an origin accepting WebSocket-over-HTTP.
func isEventsResponse(res *capture) bool {
	return res.status == http.StatusOK && isEventsType(res.header.Get("Content-Type"))
}

// isEventsType reports a Content-Type of WebSocket-over-HTTP events,
// parameters aside.
func isEventsType(ct string) bool { return instruct.MediaTypeIs(ct, wsoverhttp.ContentType) }

// relayCapture answers the client with an origin response as it is.
func relayCapture(w http.ResponseWriter, res *capture) {
	h := w.Header()
	for k, v := range res.header {
		if !instruct.IsGripHeader(k) {
			h[k] = v
		}
	}
	h.Set("Content-Length", strconv.Itoa(res.body.Len()))
	status := res.status
	if status == 0 {
		status = http.StatusBadGateway
	}
	w.WriteHeader(status)
	_, _ = w.Write(res.body.Bytes())
}

// clientHandshakeHeader is what of the origin's OPEN answer the client's
// 101 response carries (cookies and the like).
func clientHandshakeHeader(origin http.Header) http.Header {
	h := http.Header{}
	for k, v := range origin {
		switch {
		case k == "Content-Length", k == "Content-Type", k == "Keep-Alive-Interval",
			k == "Sec-Websocket-Extensions", k == "Sec-Websocket-Protocol",
			k == "Connection", k == "Upgrade", k == "Transfer-Encoding",
			strings.HasPrefix(k, "Set-Meta-"), instruct.IsGripHeader(k):
		default:
			h[k] = v
		}
	}
	return h
}

// failHandshake ends a handshake whose origin answer could not be used.
func (g *Grip) failHandshake(w http.ResponseWriter, r *http.Request, err error) error {
	g.logger.Error("invalid WebSocket-over-HTTP answer from origin", zap.Error(err), zap.String("uri", r.RequestURI))
	writeText(w, http.StatusBadGateway, fmt.Sprintf("Error while proxying to origin: %v\n", err))
	return nil
}

// Interface guards
var _ http.Hijacker = (*hijacker)(nil)
