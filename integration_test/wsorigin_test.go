package integration_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/caddy-grip/grip/caddygrip"
	"github.com/caddy-grip/grip/wsoverhttp"
)

// wsRequest is one WebSocket-over-HTTP request the test origin received,
// recorded before it is answered.
type wsRequest struct {
	Method     string
	RequestURI string
	Header     http.Header
	Body       []byte
	Events     []wsoverhttp.Event
	ParseErr   error
}

// connID is the request's Connection-Id.
func (r *wsRequest) connID() string { return r.Header.Get("Connection-Id") }

// has reports whether the request carries an event of type t.
func (r *wsRequest) has(t wsoverhttp.EventType) bool {
	for _, e := range r.Events {
		if e.Type == t {
			return true
		}
	}
	return false
}

// hasText reports whether the request carries the TEXT event s.
func (r *wsRequest) hasText(s string) bool {
	for _, e := range r.Events {
		if e.Type == wsoverhttp.Text && string(e.Content) == s {
			return true
		}
	}
	return false
}

// wsReply is the test origin's answer to one request. The origin fills in
// the default answer (200, the events content type, OPEN and the grip
// extension for an OPEN, CLOSE for a CLOSE); a script edits it.
type wsReply struct {
	Status int
	Header http.Header
	Events []wsoverhttp.Event
	Body   []byte // when non-nil, sent instead of the encoded Events
}

// wsScript decides the origin's answer to a request; it may block (until
// the test releases it) to hold the request in flight.
type wsScript func(req *wsRequest, reply *wsReply)

// wsOrigin is a WebSocket-over-HTTP origin that records every request and
// answers as the test's script says.
type wsOrigin struct {
	URL    string
	script wsScript

	mu       sync.Mutex
	reqs     []*wsRequest
	inFlight map[string]int // per Connection-Id
	overlaps []string       // connection ids that had two requests in flight
}

// newWSOrigin starts a test origin; a nil script answers with the defaults
// only. At the end of the test it fails the test if a connection ever had
// two requests in flight at once.
func newWSOrigin(t *testing.T, script wsScript) *wsOrigin {
	t.Helper()
	o := &wsOrigin{script: script, inFlight: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(o.serve))
	o.URL = srv.URL
	t.Cleanup(func() {
		srv.Close()
		o.mu.Lock()
		defer o.mu.Unlock()
		if len(o.overlaps) > 0 {
			t.Errorf("origin had two requests in flight at once on connection(s) %v", o.overlaps)
		}
	})
	return o
}

func (o *wsOrigin) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := &wsRequest{Method: r.Method, RequestURI: r.RequestURI, Header: r.Header.Clone(), Body: body}
	req.Events, req.ParseErr = wsoverhttp.ParseEvents(body, 0)
	id := req.connID()
	o.mu.Lock()
	o.reqs = append(o.reqs, req)
	o.inFlight[id]++
	if o.inFlight[id] > 1 {
		o.overlaps = append(o.overlaps, id)
	}
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.inFlight[id]--
		o.mu.Unlock()
	}()

	reply := &wsReply{Status: http.StatusOK, Header: http.Header{"Content-Type": {wsoverhttp.ContentType}}}
	if req.has(wsoverhttp.Open) {
		reply.Header.Set("Sec-WebSocket-Extensions", "grip")
		reply.Events = append(reply.Events, wsoverhttp.Event{Type: wsoverhttp.Open})
	}
	for _, e := range req.Events {
		if e.Type == wsoverhttp.Close {
			reply.Events = append(reply.Events, e) // acknowledge the close
		}
	}
	if o.script != nil {
		o.script(req, reply)
	}
	out := reply.Body
	if out == nil {
		out = wsoverhttp.AppendEvents(nil, reply.Events...)
	}
	for k, v := range reply.Header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(out)))
	w.WriteHeader(reply.Status)
	w.Write(out)
}

// requests returns every request received so far.
func (o *wsOrigin) requests() []*wsRequest {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*wsRequest(nil), o.reqs...)
}

// connRequests returns the requests of one connection, in arrival order.
func (o *wsOrigin) connRequests(id string) []*wsRequest {
	var out []*wsRequest
	for _, r := range o.requests() {
		if r.connID() == id {
			out = append(out, r)
		}
	}
	return out
}

// connEvents returns every event one connection's requests carried, in
// order.
func (o *wsOrigin) connEvents(id string) []wsoverhttp.Event {
	var out []wsoverhttp.Event
	for _, r := range o.connRequests(id) {
		out = append(out, r.Events...)
	}
	return out
}

// waitRequest waits for a request matching match and returns the first.
// Giving up, it lists every request the origin got.
func (o *wsOrigin) waitRequest(t *testing.T, what string, match func(*wsRequest) bool) *wsRequest {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		reqs := o.requests()
		for _, r := range reqs {
			if match(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, r := range reqs {
				fmt.Fprintf(&b, "\n\t%s %s Connection-Id %s: %s", r.Method, r.RequestURI, r.connID(), eventTypes(r.Events))
			}
			t.Fatalf("gave up waiting for origin request: %s; the origin got:%s", what, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitOpen waits for the first OPEN request and returns it.
func (o *wsOrigin) waitOpen(t *testing.T) *wsRequest {
	t.Helper()
	return o.waitRequest(t, "OPEN", func(r *wsRequest) bool { return r.has(wsoverhttp.Open) })
}

// Event builders for scripts.

// msg is a TEXT event with the grip message prefix, which the proxy strips.
func msg(s string) wsoverhttp.Event {
	return wsoverhttp.Event{Type: wsoverhttp.Text, Content: []byte("m:" + s)}
}

// rawText is a TEXT event sent as is.
func rawText(s string) wsoverhttp.Event {
	return wsoverhttp.Event{Type: wsoverhttp.Text, Content: []byte(s)}
}

// control is a GRIP control message (a "c:" TEXT event) with JSON body j.
func control(j string) wsoverhttp.Event {
	return wsoverhttp.Event{Type: wsoverhttp.Text, Content: []byte("c:" + j)}
}

// subscribe is the control message subscribing to channel.
func subscribe(channel string) wsoverhttp.Event {
	return control(fmt.Sprintf(`{"type":"subscribe","channel":%q}`, channel))
}

// echo appends to reply every TEXT and BINARY event of req, prefixed with
// "m:" so they pass the grip extension.
func echo(req *wsRequest, reply *wsReply) {
	for _, e := range req.Events {
		if e.Type == wsoverhttp.Text || e.Type == wsoverhttp.Binary {
			c := append([]byte("m:"), e.Content...)
			reply.Events = append(reply.Events, wsoverhttp.Event{Type: e.Type, Content: c})
		}
	}
}

// Clients.

// wsURL is the WebSocket URL of path on the test Caddy.
func wsURL(path string) string { return "ws" + strings.TrimPrefix(caddyURL, "http") + path }

// dialer opens client WebSockets; the handshake timeout is a hang guard.
var dialer = &websocket.Dialer{HandshakeTimeout: 20 * time.Second}

// dialWS opens a client WebSocket to path on the test Caddy, failing the
// test if the handshake fails; the connection is closed at the end of the
// test.
func dialWS(t *testing.T, path string, header http.Header) (*websocket.Conn, *http.Response) {
	t.Helper()
	c, resp, err := dialer.Dial(wsURL(path), header)
	if err != nil {
		status, body := "no response", ""
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			status, body = resp.Status, string(b)
		}
		t.Fatalf("dial %s: %v (%s %q)", path, err, status, body)
	}
	t.Cleanup(func() { c.Close() })
	return c, resp
}

// readWS reads the next data message, failing the test on an error or
// close. The read deadline is a hang guard only.
func readWS(t *testing.T, c *websocket.Conn) (int, []byte) {
	t.Helper()
	typ, b, err := readWSErr(c)
	if err != nil {
		t.Fatalf("reading WebSocket message: %v", err)
	}
	return typ, b
}

// readWSErr is readWS for goroutines other than the test's.
func readWSErr(c *websocket.Conn) (int, []byte, error) {
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	return c.ReadMessage()
}

// readText reads the next message and fails unless it is text.
func readText(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	typ, b := readWS(t, c)
	if typ != websocket.TextMessage {
		t.Fatalf("got message type %d %q, want text", typ, b)
	}
	return string(b)
}

// expectText reads the next message and fails unless it is the text want.
func expectText(t *testing.T, c *websocket.Conn, want string) {
	t.Helper()
	if got := readText(t, c); got != want {
		t.Fatalf("client got %q, want %q", got, want)
	}
}

// sendText writes a text message from the client.
func sendText(t *testing.T, c *websocket.Conn, s string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		t.Fatalf("client write: %v", err)
	}
}

// anyReason makes expectClose check the close code only.
const anyReason = "\x00any"

// expectClose reads until the connection ends and fails unless the server
// closed it with a close frame carrying code and reason (or any reason).
func expectClose(t *testing.T, c *websocket.Conn, code int, reason string) {
	t.Helper()
	typ, b, err := readWSErr(c)
	if err == nil {
		t.Fatalf("got message type %d %q, want close %d %q", typ, b, code, reason)
	}
	ce, ok := err.(*websocket.CloseError)
	if !ok {
		t.Fatalf("connection ended with %v, want close %d %q", err, code, reason)
	}
	if ce.Code != code || (ce.Text != reason && reason != anyReason) {
		t.Fatalf("closed with %d %q, want %d %q", ce.Code, ce.Text, code, reason)
	}
}

// hubChannels is the number of channels with subscribers in the default hub.
func hubChannels() int {
	h := caddygrip.LookupHub(caddygrip.DefaultHub)
	if h == nil {
		return 0
	}
	return h.Stats().Channels
}

// wsMessageItem is a publish body with one ws-message item whose format
// object is format (JSON).
func wsMessageItem(channel, format string) string {
	return fmt.Sprintf(`{"items":[{"channel":%q,"formats":{"ws-message":%s}}]}`, channel, format)
}

// wsText is a publish body with one ws-message text item.
func wsText(channel, content string) string {
	return wsMessageItem(channel, fmt.Sprintf(`{"content":%q}`, content))
}

// waitLong is eventually with a longer bound, for the one test that waits
// on a 20 s timer of the proxy.
func waitLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventTypes lists the types of events, for failure messages.
func eventTypes(events []wsoverhttp.Event) string {
	var b bytes.Buffer
	for i, e := range events {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s(%q)", e.Type, e.Content)
	}
	return b.String()
}
