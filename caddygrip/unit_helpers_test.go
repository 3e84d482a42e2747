package caddygrip

import (
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gorilla/websocket"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-grip/grip/wsoverhttp"
)

// The unit layer: the session code (holds, streams, WebSocket sessions,
// publish, the recorder, hijacked streams, origin requests and links)
// driven through Grip.ServeHTTP with a stub origin as next, a hub of the
// test's own and the Publish handler. Tests whose names contain "Unit"
// run in seconds: go test ./caddygrip -run Unit. Most run in a synctest
// bubble, where timeouts, keep-alives and retry back-offs pass in virtual
// time, connections are net.Pipe pairs, and a goroutine left blocked at
// the end fails the test; the few over real TCP call checkNoLeaks.

// unitGrip is newTestGrip with the first-subscription update off (so no
// origin re-request races the test's own steps) and configure applied to
// the options before they are checked again.
func unitGrip(t *testing.T, configure func(g *Grip)) (*Grip, *observer.ObservedLogs) {
	t.Helper()
	g, logs := newTestGrip(t)
	off := false
	g.UpdateOnFirstSubscription = &off
	if configure != nil {
		configure(g)
		if err := g.provisionOptions(caddy.NewReplacer()); err != nil {
			t.Fatal(err)
		}
	}
	return g, logs
}

// gripAndPublisher is unitGrip without options and a grip_publish
// handler on its hub.
func gripAndPublisher(t *testing.T) (*Grip, *Publish) {
	t.Helper()
	g, _ := unitGrip(t, nil)
	return g, unitPublisher(t, g)
}

// unitPublisher is a grip_publish handler on g's hub.
func unitPublisher(t *testing.T, g *Grip) *Publish {
	t.Helper()
	p := &Publish{Hub: g.Hub}
	if err := provisionPublish(t, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// originCall is one request the stub origin got.
type originCall struct {
	method, uri string
	header      http.Header
	body        []byte
	at          time.Time // when it came
}

// events decodes the call's WebSocket-over-HTTP events.
func (c originCall) events(t *testing.T) []wsoverhttp.Event {
	t.Helper()
	evs, err := wsoverhttp.ParseEvents(c.body, 0)
	if err != nil {
		t.Fatalf("origin got events it cannot parse (%v): %q", err, c.body)
	}
	return evs
}

// stubOrigin is the rest of the route behind grip: it records every
// request and answers the n-th (from 0) with answer.
type stubOrigin struct {
	answer func(n int, c originCall, w http.ResponseWriter) error
	mu     sync.Mutex
	calls  []originCall
}

func newStubOrigin(answer func(n int, c originCall, w http.ResponseWriter) error) *stubOrigin {
	return &stubOrigin{answer: answer}
}

// always is an origin giving every request the same answer.
func always(h caddyhttp.Handler) *stubOrigin {
	return newStubOrigin(func(_ int, c originCall, w http.ResponseWriter) error {
		return h.ServeHTTP(w, httpRequestOf(c))
	})
}

// httpRequestOf rebuilds a request from a call, for handlers that want one.
func httpRequestOf(c originCall) *http.Request {
	r, _ := http.NewRequest(c.method, c.uri, bytes.NewReader(c.body))
	r.Header = c.header
	return r
}

func (o *stubOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	c := originCall{method: r.Method, uri: r.RequestURI, header: r.Header.Clone(), body: body, at: time.Now()}
	o.mu.Lock()
	n := len(o.calls)
	o.calls = append(o.calls, c)
	o.mu.Unlock()
	return o.answer(n, c, w)
}

// got is a copy of the requests so far.
func (o *stubOrigin) got() []originCall {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.calls)
}

// uris lists the method and URI of each request so far.
func (o *stubOrigin) uris() []string {
	var out []string
	for _, c := range o.got() {
		out = append(out, c.method+" "+c.uri)
	}
	return out
}

// answerGrip writes a GRIP answer: headers given as name, value pairs, and
// body.
func answerGrip(w http.ResponseWriter, body string, hdr ...string) error {
	for i := 0; i+1 < len(hdr); i += 2 {
		w.Header().Add(hdr[i], hdr[i+1])
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "text/plain")
	}
	_, err := io.WriteString(w, body)
	return err
}

// gripAnswers is an origin giving every request the same GRIP answer:
// body, and headers as name, value pairs.
func gripAnswers(body string, hdr ...string) *stubOrigin {
	return newStubOrigin(func(_ int, _ originCall, w http.ResponseWriter) error {
		return answerGrip(w, body, hdr...)
	})
}

// wantNoSubscribers checks that the sessions left the hub.
func wantNoSubscribers(t *testing.T, g *Grip) {
	t.Helper()
	if n := g.ref.hub.Stats().Subscribers; n != 0 {
		t.Errorf("%d subscribers left in the hub", n)
	}
}

// holdThenGone answers the first request with a GRIP answer (body and
// headers as name, value pairs) and every later one, a gone link's POST,
// with 204.
func holdThenGone(body string, hdr ...string) *stubOrigin {
	return newStubOrigin(func(n int, _ originCall, w http.ResponseWriter) error {
		if n > 0 {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		return answerGrip(w, body, hdr...)
	})
}

// answerEvents writes a WebSocket-over-HTTP answer with the grip extension
// on, and extra headers as name, value pairs.
func answerEvents(w http.ResponseWriter, events []wsoverhttp.Event, hdr ...string) error {
	for i := 0; i+1 < len(hdr); i += 2 {
		w.Header().Add(hdr[i], hdr[i+1])
	}
	w.Header().Set("Content-Type", wsoverhttp.ContentType)
	w.Header().Set("Sec-WebSocket-Extensions", wsoverhttp.GripExtension)
	_, err := w.Write(wsoverhttp.AppendEvents(nil, events...))
	return err
}

// textEvent is a TEXT event; control builds a GRIP control message.
func textEvent(s string) wsoverhttp.Event {
	return wsoverhttp.Event{Type: wsoverhttp.Text, Content: []byte(s)}
}

func control(json string) wsoverhttp.Event { return textEvent(wsoverhttp.ControlPrefix + json) }

// eventTypes names a list of events, for comparisons.
func eventTypes(evs []wsoverhttp.Event) string {
	var names []string
	for _, e := range evs {
		names = append(names, e.Type.String())
	}
	return strings.Join(names, " ")
}

// allEvents is every event the origin got, in order, as "TYPE" or
// "TYPE content".
func allEvents(t *testing.T, o *stubOrigin) []string {
	t.Helper()
	var out []string
	for _, c := range o.got() {
		if c.header.Get("Content-Type") != wsoverhttp.ContentType {
			continue
		}
		for _, e := range c.events(t) {
			s := e.Type.String()
			if e.Type == wsoverhttp.Close {
				if code, reason, ok := e.CloseCode(); ok {
					s += strings.TrimRight(" "+strconv.Itoa(code)+" "+reason, " ")
				}
			} else if len(e.Content) > 0 {
				s += " " + string(e.Content)
			}
			out = append(out, s)
		}
	}
	return out
}

// pipeNet is an in-memory network of net.Pipe connections: a listener for
// an http.Server and a dialer for clients. Inside a synctest bubble its
// reads and writes block durably, so virtual time runs while they wait.
type pipeNet struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeNet() *pipeNet {
	return &pipeNet{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (p *pipeNet) Accept() (net.Conn, error) {
	select {
	case c := <-p.conns:
		return c, nil
	case <-p.done:
		return nil, net.ErrClosed
	}
}

func (p *pipeNet) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}

func (p *pipeNet) Addr() net.Addr { return pipeAddr{} }

// DialContext connects to the listener.
func (p *pipeNet) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case p.conns <- server:
		return client, nil
	case <-p.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// pipeServer is g in front of origin on an http.Server over a pipeNet,
// with an HTTP client and a WebSocket dialer that reach it.
type pipeServer struct {
	client *http.Client
	dialer *websocket.Dialer
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
}

// pipeURL is the base URL of every pipeServer.
const pipeURL = "http://grip.test"

func servePipe(t *testing.T, g *Grip, origin caddyhttp.Handler) *pipeServer {
	t.Helper()
	pn := newPipeNet()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := g.ServeHTTP(w, r, origin); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
		}),
		ErrorLog: log.New(io.Discard, "", 0),
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(pn)
	}()
	// Keep-alive on: a request with Connection: close is not hijacked.
	tr := &http.Transport{DialContext: pn.DialContext}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		_ = srv.Close()
		<-served
	})
	return &pipeServer{
		client: &http.Client{Transport: tr},
		dialer: &websocket.Dialer{NetDialContext: pn.DialContext},
		dial:   pn.DialContext,
	}
}

// dialWS opens a client WebSocket to path.
func (ps *pipeServer) dialWS(t *testing.T, path string) *websocket.Conn {
	t.Helper()
	conn, res, err := ps.dialer.Dial("ws://grip.test"+path, nil)
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("WebSocket handshake: %v (status %d)", err, status)
	}
	return conn
}

// checkNoLeaks fails t if goroutines started during it outlive it, for
// tests over real TCP (a synctest bubble checks this itself). Call it
// first: its check then runs after every other cleanup, polling up to
// five seconds for goroutines that are on their way out.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	before := goroutines()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			var leaked []string
			for id, stack := range goroutines() {
				if _, ok := before[id]; !ok && !frameworkGoroutine(stack) {
					leaked = append(leaked, stack)
				}
			}
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutines outlived the test:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// goroutines is every goroutine's stack, by its "goroutine N" line.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := make(map[string]string)
	for _, g := range strings.Split(string(buf), "\n\n") {
		head, _, _ := strings.Cut(g, " [")
		out[head] = g
	}
	return out
}

// frameworkGoroutine reports a goroutine of the test framework or the
// runtime, which a test does not own.
func frameworkGoroutine(stack string) bool {
	for _, f := range []string{"testing.tRunner", "testing.(*T).Run", "testing.runTests", "runtime.goexit0", "os/signal.signal_recv"} {
		if strings.Contains(stack, f) {
			return true
		}
	}
	return false
}
