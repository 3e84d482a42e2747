package integration_test

import (
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/caddy-grip/grip/wsoverhttp"
)

// The WebSocket differential test: one WebSocket-over-HTTP origin (a
// wsOrigin) behind a private Pushpin whose route target has over_http, and
// behind caddy-grip; gorilla clients on both, compared on what the client
// and the origin see. Pushpin is the reference, as in differential_test.go.

func TestDifferentialWebSocketAgainstPushpin(t *testing.T) {
	requirePushpin(t)
	o := newWSOrigin(t, diffWSScript)
	pp := startPushpinRoute(t, o.URL, "over_http")
	d := wsDiff{env: newDiffEnv(pp, diffCaddy(t, o.URL)), origin: o}
	warmUp(t, d.env, "a WebSocket subscription", wsRoundTrip)
	scenarios := []struct {
		name string
		run  func(*testing.T, wsDiff)
	}{
		{"EchoDropsUnprefixed", diffWSEcho},
		{"SubscribePublishUnsubscribeClose", diffWSSubscribe},
		{"OriginClose", diffWSOriginClose},
		{"ClientClose", diffWSClientClose},
		{"RefusedOpen", diffWSRefusedOpen},
		{"Subprotocol", diffWSSubprotocol},
		{"SetMetaRoundTrip", diffWSMeta},
		{"OriginRequestHeaders", diffWSHeaders},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			sc.run(t, d)
		})
	}
}

// wsDiff is what every WebSocket scenario gets: both proxies and the
// origin they share. Each client's URI names its proxy and attempt (see
// viaURI), so that a scenario finds its own requests among the other
// side's and among those of an attempt that failed.
type wsDiff struct {
	env    diffEnv
	origin *wsOrigin
}

// diffWSScript is the origin's behaviour, picked by the request path; the
// query carries the channel (?ch=). GET /ready answers startPushpin's probe.
func diffWSScript(req *wsRequest, reply *wsReply) {
	u, err := url.ParseRequestURI(req.RequestURI)
	if err != nil {
		return
	}
	ch := u.Query().Get("ch")
	open := req.has(wsoverhttp.Open)
	switch u.Path {
	case "/ready":
		reply.Header = http.Header{"Content-Type": {"text/plain"}}
		reply.Body = []byte(originReady)
	case "/echo":
		if open {
			reply.Events = append(reply.Events, msg("welcome"))
		}
		for _, e := range req.Events {
			switch {
			case e.Type == wsoverhttp.Text && string(e.Content) == "drop":
				reply.Events = append(reply.Events, rawText("unprefixed, dropped"))
			case e.Type == wsoverhttp.Text || e.Type == wsoverhttp.Binary:
				reply.Events = append(reply.Events, wsoverhttp.Event{Type: e.Type, Content: append([]byte("m:"), e.Content...)})
			}
		}
	case "/sub":
		if open {
			reply.Events = append(reply.Events, subscribe(ch+"-a"), subscribe(ch+"-b"), msg("subscribed"))
		}
		if req.hasText("unsub") {
			reply.Events = append(reply.Events,
				control(fmt.Sprintf(`{"type":"unsubscribe","channel":%q}`, ch+"-a")), msg("unsubscribed"))
		}
	case "/close":
		if req.hasText("close me") {
			reply.Events = append(reply.Events, wsoverhttp.CloseEvent(4001, "origin bye"))
		}
	case "/clientclose":
		if req.has(wsoverhttp.Close) {
			// Not the client's code: shows whose close frame the client gets.
			reply.Events = []wsoverhttp.Event{wsoverhttp.CloseEvent(4003, "origin ack")}
		}
	case "/refuse":
		reply.Status = http.StatusForbidden
		reply.Header = http.Header{"Content-Type": {"text/plain"}, "X-Refused": {"yes"}}
		reply.Body = []byte("go away\n")
	case "/subprotocol":
		if open {
			reply.Header.Set("Sec-WebSocket-Protocol", "bar")
			reply.Header.Set("X-Open", "1")
		}
	case "/meta":
		switch {
		case open:
			reply.Header.Set("Set-Meta-User", "alice")
			reply.Header.Set("Set-Meta-Room", "r1")
		case req.hasText("one"):
			reply.Header.Set("Set-Meta-Room", "") // deletes Room
			reply.Header.Set("Set-Meta-Color", "blue")
		case req.hasText("two"):
			reply.Events = append(reply.Events, control(`{"type":"set-meta","name":"ctl","value":"x"}`))
		}
		echo(req, reply)
	case "/headers":
		echo(req, reply)
	}
}

// wsClient is a gorilla client whose messages a goroutine reads into a
// channel, so that a scenario can publish until something arrives.
type wsClient struct {
	c    *websocket.Conn
	resp *http.Response
	in   chan string // one line per message, see describeRead
}

// dialDiff opens a WebSocket to uri on p, failing on a refused handshake.
func dialDiff(t testing.TB, p proxyUnderTest, uri string, h http.Header) *wsClient {
	t.Helper()
	c, resp, err := dialer.Dial("ws"+strings.TrimPrefix(p.clientURL, "http")+uri, h)
	if err != nil {
		t.Fatalf("dial %s: %v (%s)", uri, err, refusal(resp))
	}
	t.Cleanup(func() { c.Close() })
	w := &wsClient{c: c, resp: resp, in: make(chan string, 1000)}
	go func() {
		defer close(w.in)
		for {
			typ, b, err := c.ReadMessage()
			w.in <- describeRead(typ, b, err)
			if err != nil {
				return
			}
		}
	}()
	return w
}

// describeRead is one message, or how the connection ended, as a line.
func describeRead(typ int, b []byte, err error) string {
	if err != nil {
		if ce, ok := err.(*websocket.CloseError); ok {
			return fmt.Sprintf("close %d %q", ce.Code, ce.Text)
		}
		return "ended without a close frame"
	}
	if typ == websocket.BinaryMessage {
		return "binary " + hex.EncodeToString(b)
	}
	return fmt.Sprintf("text %q", b)
}

// next returns the next message line; the bound is a hang guard.
func (w *wsClient) next(t testing.TB) string {
	t.Helper()
	select {
	case s, ok := <-w.in:
		if !ok {
			t.Fatalf("connection already ended")
		}
		return s
	case <-time.After(20 * time.Second):
		t.Fatalf("no message arrived")
	}
	return ""
}

// send writes a client message.
func (w *wsClient) send(t testing.TB, typ int, b []byte) {
	t.Helper()
	if err := w.c.WriteMessage(typ, b); err != nil {
		t.Fatalf("client write: %v", err)
	}
}

// refusal describes a failed handshake's response.
func refusal(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%s %q", resp.Status, b)
}

// viaURI is path on behalf of proxy p in this attempt, with extra query
// parameters. No view shows it: the sides' runs differ after a retry.
func viaURI(p proxyUnderTest, path, query string) string {
	if query != "" {
		query = "&" + query
	}
	return path + "?via=" + p.name + "&run=" + p.run + query
}

// wsRoundTrip opens a WebSocket whose origin subscribes it to a channel of
// its own, and publishes until a message arrives; the connection closes
// when the attempt ends.
func wsRoundTrip(t testing.TB, p proxyUnderTest) {
	ch := p.channel("warm-up")
	c := dialDiff(t, p, viaURI(p, "/sub", "ch="+ch), nil)
	if got := c.next(t); got != `text "subscribed"` {
		t.Fatalf("got %s, want the origin's greeting", got)
	}
	syncWS(t, p, c, ch+"-a")
}

// originWait is originAwait failing the test when nothing comes (it is
// wsOrigin.waitRequest for onBoth's goroutines).
func originWait(t testing.TB, o *wsOrigin, what string, match func(*wsRequest) bool) *wsRequest {
	t.Helper()
	r := originAwait(o, match)
	if r == nil {
		t.Fatalf("gave up waiting for origin request: %s", what)
	}
	return r
}

// originAwait polls for a request matching match and returns it, or nil if
// none came within a hang guard's bound: for what one proxy may never send,
// so that the views show the difference.
func originAwait(o *wsOrigin, match func(*wsRequest) bool) *wsRequest {
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, r := range o.requests() {
			if match(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// uriRequests are the origin's requests for uri, in arrival order.
func uriRequests(o *wsOrigin, uri string) []*wsRequest {
	var out []*wsRequest
	for _, r := range o.requests() {
		if r.RequestURI == uri {
			out = append(out, r)
		}
	}
	return out
}

// originEvents lists, one per line, the events the origin got for uri.
func originEvents(o *wsOrigin, uri string) string {
	var b strings.Builder
	for _, r := range uriRequests(o, uri) {
		b.WriteString(originEventsOf(r))
	}
	return b.String()
}

// describeEvent is an event as a line: type, then text, hex or close code.
func describeEvent(e wsoverhttp.Event) string {
	switch e.Type {
	case wsoverhttp.Text:
		return fmt.Sprintf("TEXT %q", e.Content)
	case wsoverhttp.Close:
		if code, reason, ok := e.CloseCode(); ok {
			return fmt.Sprintf("CLOSE %d %q", code, reason)
		}
	}
	if len(e.Content) > 0 {
		return e.Type.String() + " " + hex.EncodeToString(e.Content)
	}
	return e.Type.String()
}

func diffWSEcho(t *testing.T, d wsDiff) {
	pp, cg := onBoth(t, d.env, func(t testing.TB, p proxyUnderTest) string {
		uri := viaURI(p, "/echo", "")
		c := dialDiff(t, p, uri, nil)
		c.send(t, websocket.TextMessage, []byte("hello"))
		c.send(t, websocket.TextMessage, []byte("drop"))
		c.send(t, websocket.BinaryMessage, []byte{0, 1, 2, 0xff})
		c.send(t, websocket.TextMessage, []byte("last"))
		var got []string
		for range 4 {
			got = append(got, c.next(t))
		}
		originWait(t, d.origin, "TEXT last", func(r *wsRequest) bool { return r.RequestURI == uri && r.hasText("last") })
		return "client got:\n" + strings.Join(got, "\n") + "\norigin got:\n" + originEvents(d.origin, uri)
	})
	sameView(t, "echo with the grip extension", pp, cg)
}

// syncWS makes sure c's connection is subscribed to channel: it publishes
// probes until one arrives, then a marker, and reads up to the marker.
func syncWS(t testing.TB, p proxyUnderTest, c *wsClient, channel string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for n := 0; ; n++ {
		publishTo(t, p, wsText(channel, fmt.Sprintf(":probe %d", n)))
		select {
		case line := <-c.in:
			if !strings.HasPrefix(line, `text ":probe `) {
				t.Fatalf("got %s while subscribing", line)
			}
			publishTo(t, p, wsText(channel, ":synced"))
			for line := c.next(t); line != `text ":synced"`; line = c.next(t) {
				if !strings.HasPrefix(line, `text ":probe `) {
					t.Fatalf("got %s while subscribing", line)
				}
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("never subscribed to %s", channel)
		}
	}
}

// syncUnsubscribed publishes to gone (unsubscribed) then to kept until a
// marker on kept arrives with nothing from gone before it: the control
// message has then taken effect.
func syncUnsubscribed(t testing.TB, p proxyUnderTest, c *wsClient, gone, kept string) {
	t.Helper()
	for n := 0; n < 400; n++ {
		publishTo(t, p, wsText(gone, fmt.Sprintf(":lost %d", n)))
		publishTo(t, p, wsText(kept, fmt.Sprintf(":mark %d", n)))
		leaked := false
		for line := c.next(t); line != fmt.Sprintf(`text ":mark %d"`, n); line = c.next(t) {
			leaked = true
		}
		if !leaked {
			return
		}
	}
	t.Fatalf("messages to %s kept arriving after unsubscribe", gone)
}

func diffWSSubscribe(t *testing.T, d wsDiff) {
	pp, cg := onBoth(t, d.env, func(t testing.TB, p proxyUnderTest) string {
		ch := p.channel("ws-sub")
		uri := viaURI(p, "/sub", "ch="+ch)
		c := dialDiff(t, p, uri, nil)
		got := []string{c.next(t)}
		syncWS(t, p, c, ch+"-a")
		syncWS(t, p, c, ch+"-b")
		publishTo(t, p, wsText(ch+"-a", "hello"))
		publishTo(t, p, wsMessageItem(ch+"-a", `{"content-bin":"AAEC/w=="}`))
		got = append(got, c.next(t), c.next(t))
		c.send(t, websocket.TextMessage, []byte("unsub"))
		got = append(got, c.next(t))
		syncUnsubscribed(t, p, c, ch+"-a", ch+"-b")
		publishTo(t, p, wsText(ch+"-a", "after unsubscribe"))
		publishTo(t, p, wsText(ch+"-b", "still subscribed"))
		publishTo(t, p, wsMessageItem(ch+"-b", `{"action":"close","code":4000,"reason":"bye"}`))
		got = append(got, c.next(t), c.next(t))
		// Pushpin closes the origin leg with a status-less CLOSE as it closes the client.
		originWait(t, d.origin, "CLOSE or DISCONNECT", func(r *wsRequest) bool {
			return r.RequestURI == uri && (r.has(wsoverhttp.Close) || r.has(wsoverhttp.Disconnect))
		})
		return "client got:\n" + strings.Join(got, "\n") + "\norigin got:\n" + originEvents(d.origin, uri)
	})
	sameView(t, "subscribe, publish, unsubscribe, close action", pp, cg)
}

func diffWSOriginClose(t *testing.T, d wsDiff) {
	pp, cg := onBoth(t, d.env, func(t testing.TB, p proxyUnderTest) string {
		uri := viaURI(p, "/close", "")
		c := dialDiff(t, p, uri, nil)
		c.send(t, websocket.TextMessage, []byte("close me"))
		got := c.next(t)
		// Pushpin relays the client's answering close frame as a CLOSE.
		originAwait(d.origin, func(r *wsRequest) bool { return r.RequestURI == uri && r.has(wsoverhttp.Close) })
		return "client got:\n" + got + "\norigin got:\n" + originEvents(d.origin, uri)
	})
	sameView(t, "origin CLOSE", pp, cg)
}

func diffWSClientClose(t *testing.T, d wsDiff) {
	pp, cg := onBoth(t, d.env, func(t testing.TB, p proxyUnderTest) string {
		uri := viaURI(p, "/clientclose", "")
		c := dialDiff(t, p, uri, nil)
		err := c.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4002, "client bye"), time.Now().Add(5*time.Second))
		if err != nil {
			t.Fatalf("writing close: %v", err)
		}
		got := c.next(t)
		originWait(t, d.origin, "CLOSE", func(r *wsRequest) bool { return r.RequestURI == uri && r.has(wsoverhttp.Close) })
		return "client got:\n" + got + "\norigin got:\n" + originEvents(d.origin, uri)
	})
	sameView(t, "client close", pp, cg)
}

func diffWSRefusedOpen(t *testing.T, d wsDiff) {
	pp, cg := onBoth(t, d.env, func(t testing.TB, p proxyUnderTest) clientView {
		c, resp, err := dialer.Dial("ws"+strings.TrimPrefix(p.clientURL, "http")+viaURI(p, "/refuse", ""), nil)
		if err == nil {
			c.Close()
			t.Fatalf("handshake accepted, want it refused")
		}
		if resp == nil {
			t.Fatalf("dial: %v, with no response", err)
		}
		b, _ := io.ReadAll(resp.Body)
		return clientView{status: resp.Status, header: resp.Header, body: string(b)}
	})
	sameView(t, "refused OPEN", pp.view(), cg.view())
}

func diffWSSubprotocol(t *testing.T, d wsDiff) {
	pp, cg := onBoth(t, d.env, func(t testing.TB, p proxyUnderTest) string {
		uri := viaURI(p, "/subprotocol", "")
		c := dialDiff(t, p, uri, http.Header{"Sec-WebSocket-Protocol": {"foo, bar"}})
		open := originWait(t, d.origin, "OPEN", func(r *wsRequest) bool { return r.RequestURI == uri && r.has(wsoverhttp.Open) })
		h := c.resp.Header.Clone()
		h.Del("Sec-WebSocket-Accept") // answers the client's random key
		return fmt.Sprintf("client subprotocol %q\nhandshake: %s\n%s\norigin got Sec-WebSocket-Protocol %q",
			c.c.Subprotocol(), c.resp.Status, headerView(h), open.Header.Values("Sec-WebSocket-Protocol"))
	})
	sameView(t, "subprotocol", pp, cg)
}

// metaView lists a request's Meta-* headers, sorted, but Meta-Ctl (see
// diffWSMeta).
func metaView(r *wsRequest) string {
	var out []string
	for k, v := range r.Header {
		if strings.HasPrefix(k, "Meta-") && k != "Meta-Ctl" {
			out = append(out, fmt.Sprintf("%s=%q", k, v))
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// metaSeen is what the origin saw of metadata: the Meta-* view per request,
// and the Meta-Ctl values the set-meta control message led to.
type metaSeen struct {
	view string
	ctl  []string
}

func diffWSMeta(t *testing.T, d wsDiff) {
	pp, cg := onBoth(t, d.env, func(t testing.TB, p proxyUnderTest) metaSeen {
		uri := viaURI(p, "/meta", "")
		c := dialDiff(t, p, uri, http.Header{"Meta-User": {"mallory"}})
		for _, m := range []string{"one", "two", "three"} {
			c.send(t, websocket.TextMessage, []byte(m))
			if got := c.next(t); got != fmt.Sprintf("text %q", m) {
				t.Fatalf("echo of %q: got %s", m, got)
			}
		}
		var seen metaSeen
		for _, r := range uriRequests(d.origin, uri) {
			seen.view += fmt.Sprintf("%s: %s\n", strings.TrimSpace(strings.ReplaceAll(originEventsOf(r), "\n", " ")), metaView(r))
			seen.ctl = append(seen.ctl, r.Header.Values("Meta-Ctl")...)
		}
		return seen
	})
	sameView(t, "Meta-* the origin saw", pp.view, cg.view)
	// caddy-grip also sends set-meta control values as Meta-* (README); Pushpin keeps them for filters only.
	if len(pp.ctl) != 0 || !slices.Equal(cg.ctl, []string{"x"}) {
		t.Errorf("Meta-Ctl after the set-meta control message: pushpin %q (want none), caddy-grip %q (want [x])", pp.ctl, cg.ctl)
	}
}

// originEventsOf lists one request's events, one per line.
func originEventsOf(r *wsRequest) string {
	var b strings.Builder
	for _, e := range r.Events {
		b.WriteString(describeEvent(e) + "\n")
	}
	return b.String()
}

// legitHeaderDiff reports origin request headers whose presence differs by
// design or set-up; diffWSHeaders asserts each on both sides.
func legitHeaderDiff(name string) bool {
	switch name {
	case "Grip-Sig", "Via", "Sec-Websocket-Key", "Sec-Websocket-Version":
		return true
	}
	return strings.HasPrefix(name, "X-Forwarded-")
}

// headerNames lists a request's header names minus legitHeaderDiff ones.
func headerNames(h http.Header) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(h)) {
		if !legitHeaderDiff(k) {
			out = append(out, k)
		}
	}
	return strings.Join(out, " ")
}

// sameValueHeaders are origin request headers whose values must agree.
var sameValueHeaders = []string{"Accept", "Content-Type", "Content-Length", "Sec-Websocket-Extensions",
	"Sec-Websocket-Protocol", "Cookie", "Authorization", "User-Agent", "X-Custom", "Meta-User", "Upgrade"}

// headersSeen is what the origin saw of one proxy's requests: the view the
// proxies must agree on, and the OPEN request's headers for the checks of
// deliberate differences.
type headersSeen struct {
	view string
	open http.Header
}

func diffWSHeaders(t *testing.T, d wsDiff) {
	client := http.Header{
		"Cookie":        {"session=abc"},
		"Authorization": {"Bearer tok"},
		"User-Agent":    {"diff-test"},
		"X-Custom":      {"1"},
		"Connection-Id": {"forged"},
		"Grip-Sig":      {"forged"},
		"Meta-User":     {"mallory"},
	}
	pp, cg := onBoth(t, d.env, func(t testing.TB, p proxyUnderTest) headersSeen {
		var seen headersSeen
		ids := map[string]bool{}
		for n := range 2 {
			uri := viaURI(p, "/headers", fmt.Sprint("n=", n))
			c := dialDiff(t, p, uri, client)
			c.send(t, websocket.TextMessage, []byte("hi"))
			if got := c.next(t); got != `text "hi"` {
				t.Fatalf("echo: got %s", got)
			}
			reqs := uriRequests(d.origin, uri)
			// Connection-Id: fresh per connection, the same on each of its
			// requests (the formats differ: Pushpin's is a UUID).
			id := reqs[0].connID()
			for _, r := range reqs {
				if r.connID() != id {
					t.Errorf("connection %d: Connection-Id %q then %q", n, id, r.connID())
				}
			}
			if id == "" || id == "forged" || ids[id] {
				t.Errorf("connection %d: Connection-Id %q, want a fresh one", n, id)
			}
			ids[id] = true
			if n > 0 {
				continue
			}
			seen.open = reqs[0].Header
			for _, r := range reqs {
				seen.view += fmt.Sprintf("%s: %s\n", strings.TrimSpace(originEventsOf(r)), headerNames(r.Header))
				for _, k := range sameValueHeaders {
					seen.view += fmt.Sprintf("\t%s: %q\n", k, r.Header.Values(k))
				}
			}
		}
		return seen
	})
	sameView(t, "origin request headers", pp.view, cg.view)
	checks := []struct {
		what           string
		pushpin, caddy bool
	}{
		// Pushpin's conf signs (sig_key=changeme); diffCaddy configures no sig_key.
		{"Grip-Sig", pp.open.Get("Grip-Sig") != "", cg.open.Get("Grip-Sig") == ""},
		// Caddy's reverse_proxy adds Via and X-Forwarded-*; Pushpin adds neither here.
		{"Via", pp.open.Get("Via") == "", cg.open.Get("Via") == "1.1 Caddy"},
		{"X-Forwarded-For", pp.open.Get("X-Forwarded-For") == "", cg.open.Get("X-Forwarded-For") == "127.0.0.1"},
		// caddy-grip drops the client's handshake headers (wohBaseHeader); Pushpin forwards them.
		{"Sec-WebSocket-Key", pp.open.Get("Sec-WebSocket-Key") != "", cg.open.Get("Sec-WebSocket-Key") == ""},
		{"Sec-WebSocket-Version", pp.open.Get("Sec-WebSocket-Version") == "13", cg.open.Get("Sec-WebSocket-Version") == ""},
		// Each proxy's HTTP client asks for its own encodings: zurl (curl) several, Go's transport gzip.
		{"Accept-Encoding", strings.Contains(pp.open.Get("Accept-Encoding"), "gzip"), cg.open.Get("Accept-Encoding") == "gzip"},
		// caddy-grip advertises only the features it implements (gripFeatures).
		{"Grip-Feature", strings.HasPrefix(pp.open.Get("Grip-Feature"), "status, "), cg.open.Get("Grip-Feature") == "status, link:next, link:gone, filter:skip-self, filter:skip-users, filter:require-sub, filter:build-id, filter:var-subst"},
	}
	for _, ck := range checks {
		if !ck.pushpin || !ck.caddy {
			t.Errorf("%s on the OPEN request: pushpin %q (as expected: %v), caddy-grip %q (as expected: %v)",
				ck.what, pp.open.Values(ck.what), ck.pushpin, cg.open.Values(ck.what), ck.caddy)
		}
	}
}
