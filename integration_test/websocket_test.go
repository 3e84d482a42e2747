package integration_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/caddy-grip/grip/wsoverhttp"
)

func TestWebSocketOpenRequestCarriesWOHHeaders(t *testing.T) {
	o := newWSOrigin(t, echo)
	loadCaddyfile(t, gripSite(o.URL, "sig_key s3cret"))
	d := &websocket.Dialer{HandshakeTimeout: dialer.HandshakeTimeout, EnableCompression: true}
	c, _, err := d.Dial(wsURL("/ws/chat?room=1"), http.Header{
		"Cookie":        {"session=abc"},
		"Authorization": {"Bearer tok"},
		"Connection-Id": {"forged"},
		"Meta-User":     {"mallory"},
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()

	open := o.waitOpen(t)
	h := open.Header
	checks := []struct {
		what      string
		got, want string
	}{
		{"method", open.Method, "POST"},
		{"request URI", open.RequestURI, "/ws/chat?room=1"},
		{"body", string(open.Body), "OPEN\r\n"},
		{"Content-Type", h.Get("Content-Type"), "application/websocket-events"},
		{"Accept", h.Get("Accept"), "application/websocket-events"},
		{"Sec-WebSocket-Extensions (client's never forwarded)", strings.Join(h.Values("Sec-WebSocket-Extensions"), ", "), "grip"},
		{"Cookie", h.Get("Cookie"), "session=abc"},
		{"Authorization", h.Get("Authorization"), "Bearer tok"},
		{"client's Meta-User (must be removed)", h.Get("Meta-User"), ""},
		{"Upgrade (must be removed)", h.Get("Upgrade"), ""},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("OPEN request %s: got %q, want %q", ck.what, ck.got, ck.want)
		}
	}
	id := open.connID()
	if id == "" || id == "forged" {
		t.Errorf("Connection-Id %q: want a fresh id, not the client's", id)
	}
	checkGripSig(t, "OPEN", h.Get("Grip-Sig"))

	sendText(t, c, "hello")
	expectText(t, c, "hello")
	text := o.waitRequest(t, "TEXT hello", func(r *wsRequest) bool { return r.hasText("hello") })
	if text.connID() != id || text.Method != "POST" || text.RequestURI != "/ws/chat?room=1" {
		t.Errorf("TEXT request: Connection-Id %q method %s URI %q, want %q POST /ws/chat?room=1", text.connID(), text.Method, text.RequestURI, id)
	}
	if got := string(text.Body); got != "TEXT 5\r\nhello\r\n" {
		t.Errorf("TEXT request body %q", got)
	}
	if text.Header.Get("Content-Type") != wsoverhttp.ContentType || text.Header.Get("Meta-User") != "" {
		t.Errorf("TEXT request headers %v", text.Header)
	}
	checkGripSig(t, "TEXT", text.Header.Get("Grip-Sig"))
}

// checkGripSig verifies a Grip-Sig signed with the key "s3cret".
func checkGripSig(t *testing.T, what, sig string) {
	t.Helper()
	_, err := jwt.Parse(sig, func(*jwt.Token) (any, error) { return []byte("s3cret"), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil {
		t.Errorf("%s request Grip-Sig %q: %v", what, sig, err)
	}
}

func TestWebSocketEchoThroughOrigin(t *testing.T) {
	o := newWSOrigin(t, func(req *wsRequest, reply *wsReply) {
		if req.has(wsoverhttp.Open) {
			reply.Events = append(reply.Events, msg("welcome"))
		}
		echo(req, reply)
	})
	loadCaddyfile(t, gripSite(o.URL, ""))
	c, _ := dialWS(t, "/echo", nil)
	expectText(t, c, "welcome")
	msgs := []string{"one", "", "two\r\nTEXT 3\r\nabc\r\n", "héllo ✓", strings.Repeat("x", 70000)}
	for _, m := range msgs {
		sendText(t, c, m)
	}
	for _, m := range msgs {
		if got := readText(t, c); got != m {
			t.Fatalf("echo: got %.40q (%d bytes), want %.40q (%d bytes)", got, len(got), m, len(m))
		}
	}
}

func TestWebSocketClientMessagesWaitWhileOriginRequestInFlight(t *testing.T) {
	release := make(chan struct{})
	o := newWSOrigin(t, func(req *wsRequest, reply *wsReply) {
		if req.hasText("first") {
			<-release
		}
		echo(req, reply)
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	loadCaddyfile(t, gripSite(o.URL, ""))
	c, _ := dialWS(t, "/busy", nil)
	sendText(t, c, "first")
	o.waitRequest(t, "TEXT first", func(r *wsRequest) bool { return r.hasText("first") })
	for _, m := range []string{"second", "third", "fourth"} {
		sendText(t, c, m)
	}
	close(release)
	for _, m := range []string{"first", "second", "third", "fourth"} {
		expectText(t, c, m)
	}
	// newWSOrigin's cleanup fails the test if a second request was sent
	// while "first" was held.
	var texts []string
	for _, e := range o.connEvents(o.waitOpen(t).connID()) {
		if e.Type == wsoverhttp.Text {
			texts = append(texts, string(e.Content))
		}
	}
	if got := strings.Join(texts, ","); got != "first,second,third,fourth" {
		t.Fatalf("origin got TEXT events %s", got)
	}
}

func TestWebSocketSubscribeControlThenPublishWSMessage(t *testing.T) {
	o := newWSOrigin(t, func(req *wsRequest, reply *wsReply) {
		if req.hasText("subscribe me") {
			reply.Events = append(reply.Events, subscribe("ws-news"), msg("subscribed"))
		}
	})
	loadCaddyfile(t, gripSite(o.URL, ""))
	c, _ := dialWS(t, "/news", nil)
	sendText(t, c, "subscribe me")
	expectText(t, c, "subscribed")
	waitSubscribers(t, 1)

	publish(t, wsText("ws-news", "hi"))
	expectText(t, c, "hi")
	publish(t, `{"items":[
		{"channel":"ws-news","formats":{"ws-message":{"content":"a"}}},
		{"channel":"ws-news","formats":{"ws-message":{"content":"b"}}},
		{"channel":"ws-other","formats":{"ws-message":{"content":"not mine"}}},
		{"channel":"ws-news","formats":{"ws-message":{"type":"text","content":"c"}}}]}`)
	for _, want := range []string{"a", "b", "c"} {
		expectText(t, c, want)
	}
	c.Close()
	waitSubscribers(t, 0)
}

func TestWebSocketBinaryBothWays(t *testing.T) {
	o := newWSOrigin(t, func(req *wsRequest, reply *wsReply) {
		if req.has(wsoverhttp.Open) {
			reply.Events = append(reply.Events, subscribe("ws-bin"))
		}
		echo(req, reply)
	})
	loadCaddyfile(t, gripSite(o.URL, ""))
	c, _ := dialWS(t, "/bin", nil)
	waitSubscribers(t, 1)

	payload := []byte{0x00, 0xff, '\r', '\n', 'c', ':', 0x80}
	if err := c.WriteMessage(websocket.BinaryMessage, payload); err != nil {
		t.Fatal(err)
	}
	req := o.waitRequest(t, "BINARY", func(r *wsRequest) bool { return r.has(wsoverhttp.Binary) })
	if len(req.Events) != 1 || !bytes.Equal(req.Events[0].Content, payload) {
		t.Errorf("origin got %s, want one BINARY %q", eventTypes(req.Events), payload)
	}
	if typ, b := readWS(t, c); typ != websocket.BinaryMessage || !bytes.Equal(b, payload) {
		t.Fatalf("client got type %d %q, want binary %q", typ, b, payload)
	}

	published := []byte{0, 1, 2, 0xfe, 0xff}
	publish(t, wsMessageItem("ws-bin", fmt.Sprintf(`{"content-bin":%q}`, base64.StdEncoding.EncodeToString(published))))
	if typ, b := readWS(t, c); typ != websocket.BinaryMessage || !bytes.Equal(b, published) {
		t.Fatalf("client got type %d %q, want binary %q", typ, b, published)
	}
	c.Close()
	waitSubscribers(t, 0)
}

func TestWebSocketUnsubscribeStopsDelivery(t *testing.T) {
	o := newWSOrigin(t, func(req *wsRequest, reply *wsReply) {
		if req.has(wsoverhttp.Open) {
			reply.Events = append(reply.Events, subscribe("ws-unsub-a"), subscribe("ws-unsub-b"))
		}
		if req.hasText("unsubscribe a") {
			reply.Events = append(reply.Events, control(`{"type":"unsubscribe","channel":"ws-unsub-a"}`), msg("done"))
		}
	})
	loadCaddyfile(t, gripSite(o.URL, ""))
	c, _ := dialWS(t, "/unsub", nil)
	eventually(t, "2 channels", func() bool { return hubChannels() == 2 })
	publish(t, wsText("ws-unsub-a", "one"))
	expectText(t, c, "one")

	sendText(t, c, "unsubscribe a")
	expectText(t, c, "done")
	eventually(t, "1 channel", func() bool { return hubChannels() == 1 })
	// Both go through the same subscriber queue: had "two" been delivered,
	// it would come first.
	publish(t, wsText("ws-unsub-a", "two"))
	publish(t, wsText("ws-unsub-b", "three"))
	expectText(t, c, "three")
	c.Close()
	waitSubscribers(t, 0)
}

func TestWebSocketSetMetaRoundTrip(t *testing.T) {
	o := newWSOrigin(t, func(req *wsRequest, reply *wsReply) {
		switch {
		case req.has(wsoverhttp.Open):
			reply.Header.Set("Set-Meta-User", "alice")
		case req.hasText("one"):
			reply.Events = append(reply.Events, control(`{"type":"set-meta","name":"role","value":"admin"}`), msg("ok1"))
		case req.hasText("two"):
			reply.Header.Set("Set-Meta-User", "") // an empty value deletes
			reply.Events = append(reply.Events, control(`{"type":"set-meta","name":"role"}`), msg("ok2"))
		case req.hasText("three"):
			reply.Events = append(reply.Events, msg("ok3"))
		}
	})
	loadCaddyfile(t, gripSite(o.URL, ""))
	c, resp := dialWS(t, "/meta", nil)
	if v := resp.Header.Values("Set-Meta-User"); len(v) != 0 {
		t.Errorf("Set-Meta-User reached the client's handshake response: %q", v)
	}
	steps := []struct {
		send, reply string
		user, role  string // Meta-User and Meta-Role the origin must see
	}{
		{"one", "ok1", "alice", ""},
		{"two", "ok2", "alice", "admin"},
		{"three", "ok3", "", ""},
	}
	for _, s := range steps {
		sendText(t, c, s.send)
		expectText(t, c, s.reply)
		req := o.waitRequest(t, "TEXT "+s.send, func(r *wsRequest) bool { return r.hasText(s.send) })
		if got, got2 := req.Header.Values("Meta-User"), req.Header.Values("Meta-Role"); strings.Join(got, ",") != s.user || strings.Join(got2, ",") != s.role {
			t.Errorf("request with %q: Meta-User %q Meta-Role %q, want %q %q", s.send, got, got2, s.user, s.role)
		}
	}
}

func TestWebSocketOriginCloseReachesClientWithCodeAndReason(t *testing.T) {
	o := newWSOrigin(t, func(req *wsRequest, reply *wsReply) {
		if req.hasText("close me") {
			reply.Events = append(reply.Events, msg("bye"), wsoverhttp.CloseEvent(4001, "origin says bye"))
		}
	})
	loadCaddyfile(t, gripSite(o.URL, ""))
	c, _ := dialWS(t, "/close", nil)
	sendText(t, c, "close me")
	expectText(t, c, "bye")
	expectClose(t, c, 4001, "origin says bye")
}

func TestWebSocketClientCloseSeenByOriginAsCloseEvent(t *testing.T) {
	for _, busy := range []bool{false, true} {
		t.Run(fmt.Sprintf("origin request in flight %v", busy), func(t *testing.T) {
			release := make(chan struct{})
			// The default answer acknowledges a CLOSE with CLOSE.
			o := newWSOrigin(t, func(req *wsRequest, reply *wsReply) {
				if req.hasText("hold") {
					<-release
				}
			})
			t.Cleanup(func() {
				select {
				case <-release:
				default:
					close(release)
				}
			})
			loadCaddyfile(t, gripSite(o.URL, ""))
			c, _ := dialWS(t, "/close", nil)
			id := o.waitOpen(t).connID()
			if busy {
				sendText(t, c, "hold")
				o.waitRequest(t, "TEXT hold", func(r *wsRequest) bool { return r.hasText("hold") })
			}
			if err := c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4002, "client done")); err != nil {
				t.Fatal(err)
			}
			if busy {
				close(release)
			}
			req := o.waitRequest(t, "CLOSE", func(r *wsRequest) bool { return r.has(wsoverhttp.Close) })
			if req.connID() != id || len(req.Events) != 1 {
				t.Fatalf("CLOSE request: Connection-Id %q (want %q), events %s", req.connID(), id, eventTypes(req.Events))
			}
			if code, reason, ok := req.Events[0].CloseCode(); !ok || code != 4002 || reason != "client done" {
				t.Fatalf("origin got CLOSE %d %q (ok %v), want 4002 \"client done\"", code, reason, ok)
			}
			expectClose(t, c, 4002, "client done")
		})
	}
}

func TestWebSocketClientVanishingSendsDisconnect(t *testing.T) {
	o := newWSOrigin(t, nil)
	loadCaddyfile(t, gripSite(o.URL, ""))
	c, _ := dialWS(t, "/vanish", nil)
	id := o.waitOpen(t).connID()
	c.NetConn().Close() // no close frame
	req := o.waitRequest(t, "DISCONNECT", func(r *wsRequest) bool { return r.has(wsoverhttp.Disconnect) })
	if req.connID() != id {
		t.Fatalf("DISCONNECT for connection %q, want %q", req.connID(), id)
	}
}

func TestWebSocketRefusedOpenRelaysOriginAnswer(t *testing.T) {
	cases := []struct {
		name        string
		status      int
		contentType string
		body        string
		wantStatus  int // 0: any status but 101
		wantBody    string
	}{
		{"403 with a body", 403, "text/plain", "not allowed here\n", 403, "not allowed here\n"},
		{"200 plain text", 200, "text/plain", "just a page\n", 200, "just a page\n"},
		{"first event not OPEN", 200, wsoverhttp.ContentType, "TEXT 2\r\nhi\r\n", 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := newWSOrigin(t, func(req *wsRequest, reply *wsReply) {
				reply.Status = tc.status
				reply.Header = http.Header{"Content-Type": {tc.contentType}, "X-Why": {"origin said so"}}
				reply.Body = []byte(tc.body)
			})
			loadCaddyfile(t, gripSite(o.URL, ""))
			c, resp, err := dialer.Dial(wsURL("/refused"), nil)
			if err == nil {
				c.Close()
				t.Fatalf("dial succeeded; want the origin's %d relayed", tc.status)
			}
			if resp == nil {
				t.Fatalf("dial failed without a response: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode == http.StatusSwitchingProtocols {
				t.Fatalf("got 101")
			}
			if tc.wantStatus == 0 {
				return
			}
			if resp.StatusCode != tc.wantStatus || string(b) != tc.wantBody || resp.Header.Get("X-Why") != "origin said so" {
				t.Fatalf("got %d %q X-Why %q, want %d %q with the origin's headers", resp.StatusCode, b, resp.Header.Get("X-Why"), tc.wantStatus, tc.wantBody)
			}
		})
	}
}

func TestWebSocketDetachKeepsClientAndDropsItsMessages(t *testing.T) {
	o := newWSOrigin(t, func(req *wsRequest, reply *wsReply) {
		if req.has(wsoverhttp.Open) {
			reply.Events = append(reply.Events, subscribe("ws-detach"))
		}
		if req.hasText("detach") {
			reply.Events = append(reply.Events, msg("detaching"), control(`{"type":"detach"}`))
		}
	})
	loadCaddyfile(t, gripSite(o.URL, ""))
	c, _ := dialWS(t, "/detach", nil)
	waitSubscribers(t, 1)
	sendText(t, c, "detach")
	expectText(t, c, "detaching")
	sendText(t, c, "lost")
	publish(t, wsText("ws-detach", "still here"))
	expectText(t, c, "still here")
	c.Close()
	waitSubscribers(t, 0)
	for _, r := range o.requests() {
		if r.hasText("lost") {
			t.Fatalf("a message sent after detach reached the origin: %s", eventTypes(r.Events))
		}
	}
}

func TestWebSocketKeepAliveIntervalPostsEmptyBody(t *testing.T) {
	o := newWSOrigin(t, func(req *wsRequest, reply *wsReply) {
		if req.has(wsoverhttp.Open) {
			reply.Header.Set("Keep-Alive-Interval", "20")
		}
	})
	loadCaddyfile(t, gripSite(o.URL, ""))
	c, resp := dialWS(t, "/ka", nil)
	if resp.Header.Get("Keep-Alive-Interval") != "" {
		t.Errorf("Keep-Alive-Interval reached the client")
	}
	id := o.waitOpen(t).connID()
	// The one long wait of this file: the interval is at least 20 s.
	waitLong(t, "a keep-alive request", func() bool { return len(o.connRequests(id)) >= 2 })
	ka := o.connRequests(id)[1]
	if ka.Method != "POST" || len(ka.Body) != 0 || ka.Header.Get("Content-Type") != wsoverhttp.ContentType {
		t.Fatalf("keep-alive: %s body %q Content-Type %q, want an empty POST of the events type", ka.Method, ka.Body, ka.Header.Get("Content-Type"))
	}
	sendText(t, c, "still open")
	o.waitRequest(t, "TEXT after keep-alive", func(r *wsRequest) bool { return r.hasText("still open") })
}

func TestWebSocketKeepAliveControlSendsContent(t *testing.T) {
	for _, mode := range []string{"idle", "interval"} {
		t.Run(mode, func(t *testing.T) {
			o := newWSOrigin(t, func(req *wsRequest, reply *wsReply) {
				if req.has(wsoverhttp.Open) {
					reply.Events = append(reply.Events, subscribe("ws-ka-"+mode),
						control(`{"type":"keep-alive","content":"{\"ka\":1}","timeout":1,"mode":"`+mode+`"}`))
				}
			})
			loadCaddyfile(t, gripSite(o.URL, ""))
			c, _ := dialWS(t, "/ka-control", nil)
			expectText(t, c, `{"ka":1}`)
			waitSubscribers(t, 1)
			// A message to the client restarts the idle timer and leaves
			// the interval alone; either way keep-alives go on after it.
			publish(t, wsText("ws-ka-"+mode, "news"))
			for got := readText(t, c); got != "news"; got = readText(t, c) {
				if got != `{"ka":1}` {
					t.Fatalf("client got %q", got)
				}
			}
			expectText(t, c, `{"ka":1}`)
			c.Close()
			waitSubscribers(t, 0)
		})
	}
}

func TestWebSocketSubprotocolChosenByOriginIsEchoed(t *testing.T) {
	o := newWSOrigin(t, func(req *wsRequest, reply *wsReply) {
		if req.has(wsoverhttp.Open) {
			reply.Header.Set("Sec-WebSocket-Protocol", "v1.chat")
			reply.Header.Set("Set-Cookie", "s=1; Path=/")
		}
	})
	loadCaddyfile(t, gripSite(o.URL, ""))
	d := &websocket.Dialer{HandshakeTimeout: dialer.HandshakeTimeout, Subprotocols: []string{"v2.chat", "v1.chat"}}
	c, resp, err := d.Dial(wsURL("/proto"), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if got := strings.Join(o.waitOpen(t).Header.Values("Sec-WebSocket-Protocol"), ", "); got != "v2.chat, v1.chat" {
		t.Errorf("origin got Sec-WebSocket-Protocol %q", got)
	}
	if c.Subprotocol() != "v1.chat" {
		t.Errorf("client subprotocol %q, want v1.chat", c.Subprotocol())
	}
	if resp.Header.Get("Set-Cookie") != "s=1; Path=/" {
		t.Errorf("Set-Cookie %q did not reach the client", resp.Header.Get("Set-Cookie"))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		t.Errorf("client handshake carries Content-Type %q", ct)
	}
}

func TestWebSocketUnprefixedOriginMessagesDroppedWithGripExtension(t *testing.T) {
	bin := func(s string) wsoverhttp.Event { return wsoverhttp.Event{Type: wsoverhttp.Binary, Content: []byte(s)} }
	cases := []struct {
		name      string
		extension string // the origin's Sec-WebSocket-Extensions answer
		send      []wsoverhttp.Event
		want      []string // what the client reads; the last is a sentinel
	}{
		{"grip extension on", "grip",
			[]wsoverhttp.Event{rawText("unprefixed"), bin("raw"), msg("kept"), rawText("x:other"), msg("end")},
			[]string{"kept", "end"}},
		{"custom message prefix", `grip; message-prefix="x:"`,
			[]wsoverhttp.Event{msg("dropped"), rawText("x:kept"), rawText("x:end")},
			[]string{"kept", "end"}},
		{"grip extension off", "",
			[]wsoverhttp.Event{rawText("unprefixed"), msg("kept"), rawText("c:not control"), rawText("end")},
			[]string{"unprefixed", "m:kept", "c:not control", "end"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := newWSOrigin(t, func(req *wsRequest, reply *wsReply) {
				if req.has(wsoverhttp.Open) {
					reply.Header.Del("Sec-WebSocket-Extensions")
					if tc.extension != "" {
						reply.Header.Set("Sec-WebSocket-Extensions", tc.extension)
					}
				}
				if req.hasText("go") {
					reply.Events = append(reply.Events, tc.send...)
				}
			})
			loadCaddyfile(t, gripSite(o.URL, ""))
			c, _ := dialWS(t, "/prefix", nil)
			sendText(t, c, "go")
			for _, want := range tc.want {
				_, b := readWS(t, c)
				if string(b) != want {
					t.Fatalf("client got %q, want %q (expected sequence %q)", b, want, tc.want)
				}
			}
		})
	}
}

func TestWebSocketPassthroughProxiesPlainWebSocket(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	up := websocket.Upgrader{}
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.Header.Get("Upgrade")+" "+r.Header.Get("Content-Type"))
		mu.Unlock()
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			typ, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(typ, b); err != nil {
				return
			}
		}
	})
	loadCaddyfile(t, gripSite(origin.URL, "websocket passthrough"))
	c, _ := dialWS(t, "/plain-ws", nil)
	sendText(t, c, "plain hello")
	expectText(t, c, "plain hello")
	if err := c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if typ, b := readWS(t, c); typ != websocket.BinaryMessage || !bytes.Equal(b, []byte{1, 2, 3}) {
		t.Fatalf("binary echo: type %d %v", typ, b)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != "GET websocket " {
		t.Fatalf("origin saw %q, want one plain WebSocket GET", seen)
	}
}

func TestWebSocketOriginsOptionRefusesOtherOrigins(t *testing.T) {
	cases := []struct {
		name, options, origin string
		allowed               bool
	}{
		{"any origin by default", "", "https://anything.example", true},
		{"listed origin", "origins https://good.example https://*.good.example", "https://good.example", true},
		{"pattern", "origins https://good.example https://*.good.example", "https://app.good.example", true},
		{"other origin", "origins https://good.example https://*.good.example", "https://evil.example", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := newWSOrigin(t, nil)
			loadCaddyfile(t, gripSite(o.URL, tc.options))
			c, resp, err := dialer.Dial(wsURL("/origins"), http.Header{"Origin": {tc.origin}})
			if tc.allowed {
				if err != nil {
					t.Fatalf("dial with Origin %s: %v", tc.origin, err)
				}
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatalf("Origin %s was let through", tc.origin)
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("refused Origin: got %v %v, want 403", resp, err)
			}
			if n := len(o.requests()); n != 0 {
				t.Fatalf("the origin got %d requests for a refused Origin", n)
			}
		})
	}
}

func TestWebSocketMaxMessageSizeClosesWith1009(t *testing.T) {
	o := newWSOrigin(t, echo)
	loadCaddyfile(t, gripSite(o.URL, "max_message_size 1000"))
	c, _ := dialWS(t, "/big", nil)
	fits := strings.Repeat("a", 1000)
	sendText(t, c, fits)
	expectText(t, c, fits)
	sendText(t, c, strings.Repeat("b", 2000))
	expectClose(t, c, websocket.CloseMessageTooBig, anyReason)
	for _, r := range o.requests() {
		for _, e := range r.Events {
			if e.Type == wsoverhttp.Text && len(e.Content) > 1000 {
				t.Fatalf("a %d-byte message reached the origin", len(e.Content))
			}
		}
	}
}

func TestManyWebSocketSubscribersReceiveEveryMessageInOrder(t *testing.T) {
	const subs, msgs = 500, 100
	o := newWSOrigin(t, func(req *wsRequest, reply *wsReply) {
		if req.has(wsoverhttp.Open) {
			reply.Events = append(reply.Events, subscribe("ws-crowd"))
		}
	})
	loadCaddyfile(t, gripSite(o.URL, ""))
	conns := make([]*websocket.Conn, subs)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for i := range conns {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, _, err := dialer.Dial(wsURL("/crowd"), nil)
			if err != nil {
				t.Errorf("dial %d: %v", i, err)
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	waitSubscribers(t, subs)

	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := range msgs {
			if status, body := publishRaw(t, wsText("ws-crowd", fmt.Sprintf("m%d", i)), nil); status != 200 {
				t.Errorf("publish %d: %d %q", i, status, body)
			}
		}
	}()
	for i, c := range conns {
		wg.Go(func() {
			for j := range msgs {
				typ, b, err := readWSErr(c)
				if want := fmt.Sprintf("m%d", j); err != nil || typ != websocket.TextMessage || string(b) != want {
					t.Errorf("subscriber %d message %d: got type %d %q (%v), want %q", i, j, typ, b, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	<-published
	for _, c := range conns {
		c.Close()
	}
	waitSubscribers(t, 0)
}

func TestWebSocketPublishedPingAndCloseReachClient(t *testing.T) {
	o := newWSOrigin(t, func(req *wsRequest, reply *wsReply) {
		if req.has(wsoverhttp.Open) {
			reply.Events = append(reply.Events, subscribe("ws-actions"))
		}
	})
	loadCaddyfile(t, gripSite(o.URL, ""))
	c, _ := dialWS(t, "/actions", nil)
	pings := make(chan string, 10)
	c.SetPingHandler(func(data string) error {
		pings <- data
		return nil
	})
	waitSubscribers(t, 1)
	publish(t, wsMessageItem("ws-actions", `{"type":"ping","content":"p1"}`))
	publish(t, wsText("ws-actions", "after ping"))
	expectText(t, c, "after ping") // the ping frame came first and was handled
	select {
	case p := <-pings:
		if p != "p1" {
			t.Errorf("ping payload %q, want p1", p)
		}
	default:
		t.Errorf("no ping reached the client before the next message")
	}
	publish(t, wsMessageItem("ws-actions", `{"action":"close","code":4000,"reason":"bye"}`))
	expectClose(t, c, 4000, "bye")
	waitSubscribers(t, 0)
}

// Pushpin refuses an OPEN answer whose Content-Type carries parameters;
// caddy-grip accepts it on purpose (README: differences from Pushpin).
func TestWebSocketOpenAnswerTypeMayHaveParameters(t *testing.T) {
	o := newWSOrigin(t, func(req *wsRequest, reply *wsReply) {
		reply.Status = 200
		reply.Header = http.Header{"Content-Type": {"application/websocket-events; charset=utf-8"}}
		reply.Body = []byte("OPEN\r\n")
	})
	loadCaddyfile(t, gripSite(o.URL, ""))
	c, _, err := dialer.Dial(wsURL("/params"), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.Close()
}

// A held WebSocket session runs on goroutines of its own: the handler
// returns after the upgrade, so that an idle session keeps neither Caddy's
// handler stack nor the request and its buffers.
func TestHeldWebSocketsDoNotKeepTheirHandlerGoroutines(t *testing.T) {
	const n = 10
	o := newWSOrigin(t, func(req *wsRequest, reply *wsReply) {
		if req.has(wsoverhttp.Open) {
			reply.Events = append(reply.Events, subscribe("ws-held"))
		}
		echo(req, reply)
	})
	loadCaddyfile(t, gripSite(o.URL, ""))
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i], _ = dialWS(t, fmt.Sprintf("/held/%d", i), nil)
	}
	waitSubscribers(t, n)
	eventually(t, "no WebSocket handler goroutine left", func() bool {
		return goroutinesIn("caddygrip.(*Grip).serveWebSocket") == 0
	})

	// The sessions still work both ways, origin requests included.
	publish(t, wsText("ws-held", "to all"))
	for _, c := range conns {
		expectText(t, c, "to all")
	}
	sendText(t, conns[n-1], "still there")
	expectText(t, conns[n-1], "still there")
}

// goroutinesIn counts the goroutines of this process with fn on their
// stack.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		m := runtime.Stack(buf, true)
		if m < len(buf) {
			buf = buf[:m]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn+"(") {
			n++
		}
	}
	return n
}

// Messages far larger than a connection's read buffer arrive whole, both
// ways.
func TestWebSocketLargeMessagesArriveWhole(t *testing.T) {
	o := newWSOrigin(t, echo)
	loadCaddyfile(t, gripSite(o.URL, ""))
	c, _ := dialWS(t, "/large", nil)
	text := strings.Repeat("0123456789abcdef", 150000/16)
	sendText(t, c, text)
	expectText(t, c, text)
	bin := bytes.Repeat([]byte{0, 1, 2, 0xff}, 64<<10/4)
	if err := c.WriteMessage(websocket.BinaryMessage, bin); err != nil {
		t.Fatal(err)
	}
	if mt, got := readWS(t, c); mt != websocket.BinaryMessage || !bytes.Equal(got, bin) {
		t.Fatalf("binary echo: type %d, %d bytes, want %d", mt, len(got), len(bin))
	}
}
