package integration_test

import (
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

func TestWebSocketSurvivesReload(t *testing.T) {
	origin := simpleWSOrigin(t, []string{`{"type":"subscribe","channel":"reload-ws"}`}, nil)
	loadCaddyfile(t, gripSite(origin.URL, ""))
	c, _, err := websocket.DefaultDialer.Dial(strings.Replace(caddyURL, "http", "ws", 1)+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitSubscribers(t, 1)

	// A different config, then the same one again: two real reloads.
	loadCaddyfile(t, gripSite(origin.URL, "write_timeout 5s"))
	loadCaddyfile(t, gripSite(origin.URL, ""))

	publish(t, `{"items":[{"channel":"reload-ws","formats":{"ws-message":{"content":"after reload"}}}]}`)
	if _, m, err := c.ReadMessage(); string(m) != "after reload" {
		t.Fatalf("publish after reload: %q %v", m, err)
	}
	// The session still reaches its origin, now through the new config.
	if err := c.WriteMessage(websocket.TextMessage, []byte("still there")); err != nil {
		t.Fatal(err)
	}
	if _, m, err := c.ReadMessage(); string(m) != "echo still there" {
		t.Fatalf("echo after reload: %q %v", m, err)
	}
}
