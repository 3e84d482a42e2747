package caddygrip

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gorilla/websocket"

	"github.com/caddy-grip/grip/wsoverhttp"
)

// wsEcho is a WebSocket-over-HTTP origin: it accepts the OPEN with a
// subscribe to each of channels, answers each TEXT with "echo <text>",
// acknowledges a CLOSE, and answers anything else with no events.
func wsEcho(channels ...string) *stubOrigin {
	return newStubOrigin(func(_ int, c originCall, w http.ResponseWriter) error {
		evs, err := wsoverhttp.ParseEvents(c.body, 0)
		if err != nil {
			return err
		}
		var out []wsoverhttp.Event
		for _, ev := range evs {
			switch ev.Type {
			case wsoverhttp.Open:
				out = append(out, ev)
				for _, ch := range channels {
					out = append(out, control(`{"type":"subscribe","channel":"`+ch+`"}`))
				}
			case wsoverhttp.Text:
				out = append(out, textEvent(wsoverhttp.DefaultMessagePrefix+"echo "+string(ev.Content)))
			case wsoverhttp.Close:
				out = append(out, ev)
			}
		}
		return answerEvents(w, out)
	})
}

// readText reads one message from the client side; it must be text.
func readText(t *testing.T, conn *websocket.Conn) string {
	t.Helper()
	mt, msg, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("client read: %v", err)
	}
	if mt != websocket.TextMessage {
		t.Fatalf("client read message type %d, want text", mt)
	}
	return string(msg)
}

// readClose reads until the session's close frame and returns it.
func readClose(t *testing.T, conn *websocket.Conn) *websocket.CloseError {
	t.Helper()
	for {
		_, msg, err := conn.ReadMessage()
		if err == nil {
			t.Logf("client read %q before the close", msg)
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("client read %v, want a close frame", err)
		}
		return ce
	}
}

// chat runs a session against wsEcho("room") from the client side: a
// message and its echo, a published message, then the client's close
// with code and reason, which the session sends back once the origin
// acknowledged it.
func chat(t *testing.T, conn *websocket.Conn, p *Publish, code int, reason string) {
	t.Helper()
	if err := conn.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if got := readText(t, conn); got != "echo hello" {
		t.Fatalf("client got %q, want the origin's echo", got)
	}
	publishItems(t, p, `{"channel":"room","formats":{"ws-message":{"content":"news"}}}`)
	if got := readText(t, conn); got != "news" {
		t.Fatalf("client got %q, want the published message", got)
	}
	closeWS(t, conn, code, reason)
	if ce := readClose(t, conn); ce.Code != code || ce.Text != reason {
		t.Fatalf("client got close %d %q, want its own close back", ce.Code, ce.Text)
	}
}

// closeWS sends a close frame from the client.
func closeWS(t *testing.T, conn *websocket.Conn, code int, reason string) {
	t.Helper()
	if err := conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second)); err != nil {
		t.Fatalf("client close: %v", err)
	}
}

func wantEvents(t *testing.T, o *stubOrigin, want ...string) {
	t.Helper()
	if got := allEvents(t, o); !slices.Equal(got, want) {
		t.Fatalf("origin got events\n%q\nwant\n%q", got, want)
	}
}

func TestUnitWebSocketRelaysTextSubscribesAndClosesThroughTheOrigin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, p := gripAndPublisher(t)
		origin := wsEcho("room")
		conn := servePipe(t, g, origin).dialWS(t, "/chat?x=1")
		defer conn.Close()
		chat(t, conn, p, 4000, "bye")
		g.sessions.Wait()
		wantEvents(t, origin, "OPEN", "TEXT hello", "CLOSE 4000 bye")

		calls := origin.got()
		id := calls[0].header.Get("Connection-Id")
		for i, c := range calls {
			if c.method != http.MethodPost || c.uri != "/chat?x=1" {
				t.Errorf("request %d: %s %s, want POST to the client's URI", i, c.method, c.uri)
			}
			if c.header.Get("Connection-Id") != id || id == "" {
				t.Errorf("request %d: Connection-Id %q, want %q on every request", i, c.header.Get("Connection-Id"), id)
			}
			if c.header.Get("Content-Type") != wsoverhttp.ContentType || c.header.Get("Sec-WebSocket-Extensions") != wsoverhttp.GripExtension {
				t.Errorf("request %d: headers %v", i, c.header)
			}
			if c.header.Get("Sec-Websocket-Key") != "" || c.header.Get("Upgrade") != "" {
				t.Errorf("request %d carries the client's handshake headers: %v", i, c.header)
			}
		}
	})
}

func TestUnitWebSocketClientThatVanishesIsReportedWithDisconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := unitGrip(t, nil)
		origin := wsEcho("room")
		conn := servePipe(t, g, origin).dialWS(t, "/chat")
		synctest.Wait()
		conn.NetConn().Close() // no close frame
		g.sessions.Wait()
		wantEvents(t, origin, "OPEN", "DISCONNECT")
		if n := g.ref.hub.Stats().Channels; n != 0 {
			t.Fatalf("hub still has %d channels after the session ended", n)
		}
	})
}

func TestUnitWebSocketOriginDisconnectAndCloseEndTheSession(t *testing.T) {
	for _, tc := range []struct {
		name  string
		event wsoverhttp.Event
		code  int
	}{
		{"CLOSE with a code", wsoverhttp.CloseEvent(4001, "kicked"), 4001},
		{"DISCONNECT", wsoverhttp.Event{Type: wsoverhttp.Disconnect}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g, _ := unitGrip(t, nil)
				origin := newStubOrigin(func(n int, c originCall, w http.ResponseWriter) error {
					if n == 0 {
						return answerEvents(w, []wsoverhttp.Event{{Type: wsoverhttp.Open}})
					}
					if evs := c.events(t); len(evs) > 0 && evs[0].Type == wsoverhttp.Text {
						return answerEvents(w, []wsoverhttp.Event{tc.event})
					}
					return answerEvents(w, nil)
				})
				conn := servePipe(t, g, origin).dialWS(t, "/chat")
				defer conn.Close()
				if err := conn.WriteMessage(websocket.TextMessage, []byte("go")); err != nil {
					t.Fatal(err)
				}
				if tc.code > 0 {
					if ce := readClose(t, conn); ce.Code != tc.code || ce.Text != "kicked" {
						t.Fatalf("client got close %d %q", ce.Code, ce.Text)
					}
					// gorilla has answered the close with its code; the
					// session reports the answer to the origin and ends.
					g.sessions.Wait()
					wantEvents(t, origin, "OPEN", "TEXT go", "CLOSE 4001")
					return
				}
				if _, _, err := conn.ReadMessage(); err == nil {
					t.Fatal("client read a message, want the connection ended")
				}
				g.sessions.Wait()
				wantEvents(t, origin, "OPEN", "TEXT go")
			})
		})
	}
}

func TestUnitWebSocketOpenRefusedByOriginIsRelayed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := unitGrip(t, nil)
		origin := always(caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusForbidden)
			_, err := w.Write([]byte("no such room\n"))
			return err
		}))
		_, res, err := servePipe(t, g, origin).dialer.Dial("ws://grip.test/chat", nil)
		if err == nil || res == nil || res.StatusCode != http.StatusForbidden {
			t.Fatalf("handshake %v, %v: want the origin's 403", res, err)
		}
		res.Body.Close()
	})
}

// TestUnitWebSocketReaderEndsWhenTheSessionEndsWithTheOriginBehind is
// defect 3 of the hardening issue: the client sends while the origin is
// slow, so the session stops reading its messages (back-pressure) and its
// reader blocks handing one over; the origin then fails and the session
// ends. The reader must end with it (the bubble fails the test on a
// goroutine left blocked).
func TestUnitWebSocketReaderEndsWhenTheSessionEndsWithTheOriginBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := unitGrip(t, nil)
		release := make(chan struct{})
		origin := newStubOrigin(func(n int, c originCall, w http.ResponseWriter) error {
			if n == 0 {
				return answerEvents(w, []wsoverhttp.Event{{Type: wsoverhttp.Open}})
			}
			if n == 1 {
				<-release // behind
				w.WriteHeader(http.StatusInternalServerError)
				return nil
			}
			return answerEvents(w, nil)
		})
		conn := servePipe(t, g, origin).dialWS(t, "/chat")
		defer conn.Close()
		sent := make(chan int)
		go func() {
			// Past the batch limit, then more than the read-ahead holds.
			msg := []byte(strings.Repeat("x", wohMaxBatch/4))
			n := 0
			for ; n < 12; n++ {
				if conn.WriteMessage(websocket.TextMessage, msg) != nil {
					break
				}
			}
			sent <- n
		}()
		synctest.Wait() // the reader is stuck handing over a message, the client writing
		close(release)
		if ce := readClose(t, conn); ce.Code != websocket.CloseInternalServerErr {
			t.Fatalf("client got close %d, want 1011 for the origin error", ce.Code)
		}
		if n := <-sent; n == 12 {
			t.Fatal("the client sent every message: the session never pushed back")
		}
		g.sessions.Wait()
	})
}

// TestUnitWebSocketSlowClientCutIsReportedToTheOrigin is defect 4 of the
// hardening issue: a client that stops reading is cut off as slow when a
// write to it times out, and the origin must hear DISCONNECT, as it does
// for a client that vanished.
func TestUnitWebSocketSlowClientCutIsReportedToTheOrigin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, p := gripAndPublisher(t)
		origin := wsEcho("room")
		conn := servePipe(t, g, origin).dialWS(t, "/chat")
		defer conn.Close()
		synctest.Wait()
		start := time.Now()
		// The client reads nothing from here on.
		publishItems(t, p, `{"channel":"room","formats":{"ws-message":{"content":"`+strings.Repeat("x", 64<<10)+`"}}}`)
		g.sessions.Wait()
		if waited := time.Since(start); waited != defaultWriteTimeout {
			t.Errorf("cut after %v, want the write timeout %v", waited, defaultWriteTimeout)
		}
		wantEvents(t, origin, "OPEN", "DISCONNECT")
	})
}

// TestUnitWebSocketPingOver125BytesIsDroppedWithoutCuttingTheClient is
// defect 5 of the hardening issue at the session: a ping that var-subst
// makes longer than a control frame holds (the publish was under 125
// bytes, so grip_publish accepted it) is dropped, and every subscriber
// stays connected and gets what follows.
func TestUnitWebSocketPingOver125BytesIsDroppedWithoutCuttingTheClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, p := gripAndPublisher(t)
		pad := strings.Repeat("p", 120)
		origin := newStubOrigin(func(n int, c originCall, w http.ResponseWriter) error {
			if n := c.events(t); len(n) > 0 && n[0].Type == wsoverhttp.Open {
				return answerEvents(w, []wsoverhttp.Event{{Type: wsoverhttp.Open},
					control(`{"type":"set-meta","name":"pad","value":"` + pad + `"}`),
					control(`{"type":"subscribe","channel":"room","filters":["var-subst"]}`)})
			}
			return answerEvents(w, nil)
		})
		ps := servePipe(t, g, origin)
		var conns []*websocket.Conn
		pings := make(chan string, 4)
		for range 2 {
			c := ps.dialWS(t, "/chat")
			defer c.Close()
			c.SetPingHandler(func(s string) error { pings <- s; return nil })
			conns = append(conns, c)
		}
		synctest.Wait()
		publishItems(t, p,
			`{"channel":"room","formats":{"ws-message":{"type":"ping","content":"%(pad)s-and-more"}}}`)
		publishItems(t, p, `{"channel":"room","formats":{"ws-message":{"content":"after %(pad)s"}}}`)
		for i, c := range conns {
			if got := readText(t, c); got != "after "+pad {
				t.Fatalf("client %d got %q, want the message after the ping", i, got)
			}
		}
		if len(pings) != 0 {
			t.Fatalf("a client got a ping of %d bytes", len(<-pings))
		}
		for _, c := range conns {
			closeWS(t, c, websocket.CloseNormalClosure, "")
			readClose(t, c)
		}
		g.sessions.Wait()
		if slow := g.ref.hub.Stats().SlowDisconnects; slow != 0 {
			t.Fatalf("%d subscribers cut as slow", slow)
		}
	})
}

// openWith is an origin that answers the OPEN with open (after the OPEN
// event) and extra headers, and every later request with what then
// answers for its events; then may be nil.
func openWith(open []wsoverhttp.Event, hdr []string, then func(evs []wsoverhttp.Event) []wsoverhttp.Event) *stubOrigin {
	return newStubOrigin(func(n int, c originCall, w http.ResponseWriter) error {
		evs, err := wsoverhttp.ParseEvents(c.body, 0)
		if err != nil {
			return err
		}
		if n == 0 {
			return answerEvents(w, append([]wsoverhttp.Event{{Type: wsoverhttp.Open}}, open...), hdr...)
		}
		if then == nil {
			return answerEvents(w, nil)
		}
		return answerEvents(w, then(evs))
	})
}

func TestUnitWebSocketSendDelayedAndClientKeepAliveRunOnTheirTimers(t *testing.T) {
	controls := []wsoverhttp.Event{
		control(`{"type":"keep-alive","content":"ka","timeout":20}`),
		control(`{"type":"send-delayed","content":"later","timeout":3}`),
	}
	for _, tc := range []struct {
		name string
		open bool // the controls come in the OPEN answer, else in the answer to "go"
	}{
		{name: "in the answer to a message"},
		{name: "in the OPEN answer", open: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g, _ := unitGrip(t, nil)
				var open []wsoverhttp.Event
				if tc.open {
					open = controls
				}
				origin := openWith(open, nil, func(evs []wsoverhttp.Event) []wsoverhttp.Event {
					if !tc.open && len(evs) > 0 && string(evs[0].Content) == "go" {
						return controls
					}
					return nil
				})
				conn := servePipe(t, g, origin).dialWS(t, "/chat")
				defer conn.Close()
				start := time.Now()
				if !tc.open {
					if err := conn.WriteMessage(websocket.TextMessage, []byte("go")); err != nil {
						t.Fatal(err)
					}
				}
				for _, want := range []struct {
					msg string
					at  time.Duration
				}{
					{"later", 3 * time.Second},
					{"ka", 23 * time.Second}, // idle mode: 20s after the last message
					{"ka", 43 * time.Second},
				} {
					if got := readText(t, conn); got != want.msg || time.Since(start) != want.at {
						t.Fatalf("client got %q at %v, want %q at %v", got, time.Since(start), want.msg, want.at)
					}
				}
				closeWS(t, conn, websocket.CloseNormalClosure, "")
				readClose(t, conn)
				g.sessions.Wait()
			})
		})
	}
}

func TestUnitWebSocketOriginKeepAliveIsAnEmptyRequestAfterTheInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := unitGrip(t, nil)
		origin := openWith(nil, []string{"Keep-Alive-Interval", "25"}, nil)
		conn := servePipe(t, g, origin).dialWS(t, "/chat")
		defer conn.Close()
		go func() { _, _, _ = conn.ReadMessage() }() // answers pings
		start := time.Now()
		time.Sleep(51 * time.Second)
		synctest.Wait()
		calls := origin.got()
		if len(calls) != 3 {
			t.Fatalf("origin got %d requests in 51s, want the OPEN and two keep-alives", len(calls))
		}
		for i, c := range calls[1:] {
			if len(c.body) != 0 || c.at.Sub(start) != time.Duration(i+1)*25*time.Second {
				t.Errorf("keep-alive %d: %q at %v, want an empty request every 25s", i, c.body, c.at.Sub(start))
			}
		}
		conn.NetConn().Close()
		g.sessions.Wait()
	})
}

func TestUnitWebSocketUnsubscribeMetaAndDetachFollowTheOrigin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, p := gripAndPublisher(t)
		origin := openWith([]wsoverhttp.Event{
			control(`{"type":"subscribe","channel":"a"}`),
			control(`{"type":"subscribe","channel":"b"}`),
		}, []string{"Set-Meta-User", "alice"}, func(evs []wsoverhttp.Event) []wsoverhttp.Event {
			if len(evs) > 0 && string(evs[0].Content) == "leave a" {
				return []wsoverhttp.Event{control(`{"type":"unsubscribe","channel":"a"}`),
					control(`{"type":"set-meta","name":"Room","value":"b"}`), control(`{"type":"detach"}`)}
			}
			return nil
		})
		conn := servePipe(t, g, origin).dialWS(t, "/chat")
		defer conn.Close()
		if err := conn.WriteMessage(websocket.TextMessage, []byte("leave a")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		publishItems(t, p, `{"channel":"a","formats":{"ws-message":{"content":"to a"}}}`)
		publishItems(t, p, `{"channel":"b","formats":{"ws-message":{"content":"to b"}}}`)
		if got := readText(t, conn); got != "to b" {
			t.Fatalf("client got %q, want only what b had", got)
		}
		// Detached: the origin hears nothing more, not even the end.
		if err := conn.WriteMessage(websocket.TextMessage, []byte("unheard")); err != nil {
			t.Fatal(err)
		}
		conn.NetConn().Close()
		g.sessions.Wait()
		wantEvents(t, origin, "OPEN", "TEXT leave a")
		if got := origin.got()[1].header.Get("Meta-User"); got != "alice" {
			t.Errorf("second request Meta-User %q, want the Set-Meta-User of the OPEN answer", got)
		}
	})
}

func TestUnitWebSocketProtocolErrorsCloseTheConnection(t *testing.T) {
	for _, tc := range []struct {
		name   string
		open   []wsoverhttp.Event
		send   []byte
		code   int
		events []string
	}{
		{"invalid UTF-8 from the client", nil, []byte("bad \xff"), websocket.CloseInvalidFramePayloadData, []string{"OPEN", "DISCONNECT"}},
		{"a subscribe with six filters", []wsoverhttp.Event{control(
			`{"type":"subscribe","channel":"c","filters":["skip-self","skip-self","skip-self","skip-self","skip-self","skip-self"]}`)},
			nil, websocket.CloseInternalServerErr, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g, _ := unitGrip(t, nil)
				origin := openWith(tc.open, nil, nil)
				conn := servePipe(t, g, origin).dialWS(t, "/chat")
				defer conn.Close()
				if tc.send != nil {
					if err := conn.WriteMessage(websocket.TextMessage, tc.send); err != nil {
						t.Fatal(err)
					}
				}
				if ce := readClose(t, conn); ce.Code != tc.code {
					t.Fatalf("client got close %d %q, want %d", ce.Code, ce.Text, tc.code)
				}
				g.sessions.Wait()
				if tc.events != nil {
					wantEvents(t, origin, tc.events...)
				}
			})
		})
	}
}
