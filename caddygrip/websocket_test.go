package caddygrip

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gorilla/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-grip/grip/wsoverhttp"
)

// newTestGrip is a provisioned Grip on a hub of its own, logging to an
// observer at debug level; the hub is released at test end.
func newTestGrip(t *testing.T) (*Grip, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	g := &Grip{Hub: "ws-test-" + strings.ReplaceAll(t.Name(), "/", "-")}
	if err := g.provisionOptions(caddy.NewReplacer()); err != nil {
		t.Fatal(err)
	}
	g.logger = zap.New(core)
	g.sessions = new(sync.WaitGroup)
	if err := g.ref.acquire(g.Hub, g.logger); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Cleanup() })
	return g, logs
}

// wsHandshake is a client's WebSocket handshake request.
func wsHandshake(target string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	return r
}

// TestWebSocketOpenAnsweredWithoutEventsIsRelayedAndLogged checks an
// origin that answers the OPEN with an ordinary page: the client gets that
// page, and a debug line says the origin did not speak WebSocket-over-HTTP.
func TestWebSocketOpenAnsweredWithoutEventsIsRelayedAndLogged(t *testing.T) {
	g, logs := newTestGrip(t)
	origin := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		_, err := io.WriteString(w, "<p>not an events body</p>")
		return err
	})
	w := httptest.NewRecorder()
	if err := g.ServeHTTP(w, wsHandshake("/chat"), origin); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusOK || w.Body.String() != "<p>not an events body</p>" {
		t.Fatalf("client got %d %q, want the origin's page", w.Code, w.Body)
	}
	lines := logs.FilterMessageSnippet("not WebSocket-over-HTTP events").All()
	if len(lines) != 1 || lines[0].Level != zapcore.DebugLevel {
		t.Fatalf("debug lines %v, want one", logs.All())
	}
	fields := lines[0].ContextMap()
	if fields["status"] != int64(200) || fields["content_type"] != "text/html" || fields["uri"] != "/chat" {
		t.Fatalf("fields %v", fields)
	}
}

// TestWebSocketOpenWithoutGripExtensionIsLogged checks an origin that
// accepts the connection without Sec-WebSocket-Extensions: grip: its c:
// message reaches the client as text, and a debug line says why.
func TestWebSocketOpenWithoutGripExtensionIsLogged(t *testing.T) {
	before := runtime.NumGoroutine()
	g, logs := newTestGrip(t)
	const control = `c:{"type":"subscribe","channel":"room"}`
	origin := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", wsoverhttp.ContentType)
		if events, _ := wsoverhttp.ParseEvents(body, 0); len(events) > 0 && events[0].Type == wsoverhttp.Open {
			_, err := w.Write(wsoverhttp.AppendEvents(nil, wsoverhttp.Event{Type: wsoverhttp.Open},
				wsoverhttp.Event{Type: wsoverhttp.Text, Content: []byte(control)}))
			return err
		}
		return nil
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := g.ServeHTTP(w, r, origin); err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()

	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, msg, err := conn.ReadMessage()
	if err != nil || string(msg) != control {
		t.Fatalf("client got %q, %v; want the control message as text", msg, err)
	}
	lines := logs.FilterMessageSnippet("Sec-WebSocket-Extensions: grip").All()
	if len(lines) != 1 || lines[0].Level != zapcore.DebugLevel || lines[0].ContextMap()["uri"] != "/chat" {
		t.Fatalf("debug lines %v, want one naming the URI", logs.All())
	}
	_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	conn.ReadMessage() // the close answer, after the origin heard the CLOSE
	conn.Close()
	g.sessions.Wait()
	srv.Close()
	eventually(t, "goroutines back to the start", func() bool { return runtime.NumGoroutine() <= before })
}

// eventually polls cond until it holds; the test's own timeout bounds it,
// and a long wait is logged with what it waits for.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	logged := false
	for !cond() {
		if !logged && time.Since(start) > 10*time.Second {
			t.Logf("still waiting: %s", what)
			logged = true
		}
		time.Sleep(time.Millisecond)
	}
}
