package caddygrip

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gorilla/websocket"
)

// holdOrigin answers /poll with a response hold and /s with a stream hold,
// both on channel c, and WebSocket-over-HTTP with a subscribe to c.
func holdOrigin() *stubOrigin {
	ws := wsEcho("c")
	return newStubOrigin(func(n int, c originCall, w http.ResponseWriter) error {
		switch c.uri {
		case "/poll":
			return answerGrip(w, "timeout\n", "Grip-Hold", "response", "Grip-Channel", "c")
		case "/s":
			return answerGrip(w, "", "Grip-Hold", "stream", "Grip-Channel", "c")
		}
		return ws.ServeHTTP(w, httpRequestOf(c))
	})
}

func TestUnitPublishDeliversEachFormatToItsTransport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, p := gripAndPublisher(t)
		origin := holdOrigin()
		poll, polled := longPoll(g, origin, httptest.NewRequest(http.MethodGet, "/poll", nil))
		sw := newStallWriter()
		streamed, _ := stream(g, sw, "/s", origin)
		conn := servePipe(t, g, origin).dialWS(t, "/ws")
		defer conn.Close()
		synctest.Wait()

		req := httptest.NewRequest(http.MethodPost, "/publish", strings.NewReader(`{"items":[{"channel":"c","formats":{`+
			`"http-response":{"body":"resp\n"},"http-stream":{"content":"stream\n"},"ws-message":{"content-bin":"AAE="}}}]}`))
		req.Header.Set("Accept", "application/json")
		w := httptest.NewRecorder()
		if err := p.ServeHTTP(w, req, nil); err != nil {
			t.Fatal(err)
		}
		if w.Code != http.StatusOK || w.Body.String() != `{"message":"Published"}`+"\n" || w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("publish answered %d %q %v", w.Code, w.Body, w.Header())
		}
		wantServed(t, <-polled)
		if poll.Body.String() != "resp\n" {
			t.Errorf("long-poll got %q", poll.Body)
		}
		wantText(t, sw, "stream\n")
		if mt, msg, err := conn.ReadMessage(); err != nil || mt != websocket.BinaryMessage || string(msg) != "\x00\x01" {
			t.Errorf("WebSocket got %d %q, %v; want the binary message", mt, msg, err)
		}
		publishItems(t, p, closeStream)
		wantServed(t, <-streamed)
		conn.NetConn().Close()
		g.sessions.Wait()
	})
}

func TestUnitPublishRefusesBadBodiesWith400AndDeliversNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, p := gripAndPublisher(t)
		sw := newStallWriter()
		done, leave := stream(g, sw, "/s", holdOrigin())
		synctest.Wait()
		for _, tc := range []struct{ body, want string }{
			{`not json`, "Body is not valid JSON.\n"},
			{`{}`, "Invalid format: object does not contain 'items'\n"},
			{`{"items":{}}`, "Invalid format: object contains 'items' with wrong type\n"},
			{`{"items":[{"formats":{"http-stream":{"content":"x"}}}]}`, "Invalid format: item 0: publish item object does not contain 'channel'\n"},
			{`{"items":[{"channel":"c"}]}`, "Invalid format: item 0: no formats specified\n"},
			{`{"items":[{"channel":"c","formats":{"http-stream":{"content":5}}}]}`, "Invalid format: item 0: 'http-stream' contains 'content' with wrong type\n"},
			{`{"items":[{"channel":"c","formats":{"http-stream":{"content-bin":"%%%"}}}]}`, "Invalid format: item 0: 'http-stream' contains 'content-bin' with invalid value\n"},
			// A batch is refused whole: item 0 is not delivered either.
			{`{"items":[{"channel":"c","formats":{"http-stream":{"content":"x"}}},{"channel":"c","formats":{"http-stream":{"action":"explode"}}}]}`,
				"Invalid format: item 1: 'http-stream' contains 'action' with unknown value\n"},
		} {
			if status, body := servePublish(t, p, "", tc.body); status != http.StatusBadRequest || body != tc.want {
				t.Errorf("publish %s answered %d %q, want 400 %q", tc.body, status, body, tc.want)
			}
		}
		wantText(t, sw, "")
		leave()
		wantServed(t, <-done)
	})
}

func TestUnitPublishAnswersByAcceptPathMethodAndSize(t *testing.T) {
	p := &Publish{MaxBodySize: 100}
	if err := provisionPublish(t, p); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, path, accept, body string
		status                           int
		want                             string
	}{
		{"text by default", http.MethodPost, "/publish/", "", okItem, 200, "Published\n"},
		{"JSON when asked", http.MethodPost, "/publish", "text/html, application/json", okItem, 200, `{"message":"Published"}` + "\n"},
		{"no format it knows", http.MethodPost, "/publish", "image/png", okItem, 406, "Not Acceptable. Supported formats are text/plain and application/json.\n"},
		{"another path", http.MethodPost, "/other", "", okItem, 404, "Not Found\n"},
		{"GET", http.MethodGet, "/publish", "", "", 405, "Method not allowed: GET.\n"},
		{"over max_body_size", http.MethodPost, "/publish", "", `{"items":[` + strings.Repeat(" ", 100) + `]}`, 413, "Request body too large (limit 100 bytes).\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.accept != "" {
				r.Header.Set("Accept", tc.accept)
			}
			w := httptest.NewRecorder()
			if err := p.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
				t.Error("grip_publish called the next handler")
				return nil
			})); err != nil {
				t.Fatal(err)
			}
			if w.Code != tc.status || w.Body.String() != tc.want {
				t.Fatalf("answered %d %q, want %d %q", w.Code, w.Body, tc.status, tc.want)
			}
			if tc.status == 405 && w.Header().Get("Allow") != http.MethodPost {
				t.Errorf("405 without Allow: POST: %v", w.Header())
			}
		})
	}
}

// TestUnitPublishRefusesAPingOver125BytesAndKeepsTheSubscribers is defect
// 5 of the hardening issue at publish: a ping a control frame cannot
// carry is refused with 400 instead of being accepted and cutting every
// WebSocket subscriber; one that fits goes out, and the subscribers stay.
func TestUnitPublishRefusesAPingOver125BytesAndKeepsTheSubscribers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, p := gripAndPublisher(t)
		ps := servePipe(t, g, wsEcho("c"))
		pings := make(chan string, 8)
		var conns []*websocket.Conn
		for range 2 {
			c := ps.dialWS(t, "/ws")
			defer c.Close()
			c.SetPingHandler(func(s string) error { pings <- s; return nil })
			conns = append(conns, c)
		}
		synctest.Wait()
		ping := func(n int) string {
			return `{"items":[{"channel":"c","formats":{"ws-message":{"type":"ping","content":"` + strings.Repeat("a", n) + `"}}}]}`
		}
		status, body := servePublish(t, p, "", ping(126))
		if status != http.StatusBadRequest || body != "Invalid format: item 0: 'ws-message' contains ping content of 126 bytes, over the 125 a control frame holds\n" {
			t.Errorf("a 126-byte ping: publish answered %d %q, want 400 naming the limit", status, body)
		}
		time.Sleep(time.Second)
		if status, body := servePublish(t, p, "", ping(125)); status != http.StatusOK {
			t.Fatalf("a 125-byte ping: publish answered %d %q", status, body)
		}
		publishItems(t, p, `{"channel":"c","formats":{"ws-message":{"content":"still here"}}}`)
		for i, c := range conns {
			if got := readText(t, c); got != "still here" {
				t.Fatalf("client %d got %q", i, got)
			}
		}
		if len(pings) != 2 || len(<-pings) != 125 {
			t.Fatalf("%d pings reached the clients, want the 125-byte one at each", len(pings)+1)
		}
		for _, c := range conns {
			c.NetConn().Close()
		}
		g.sessions.Wait()
		if slow := g.ref.hub.Stats().SlowDisconnects; slow != 0 {
			t.Fatalf("%d subscribers cut as slow", slow)
		}
	})
}
