package integration_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// senderItem publishes one item to channel from sender, in both the
// http-stream and ws-message formats.
func senderItem(channel, sender, content string) string {
	return `{"items":[{"channel":"` + channel + `","meta":{"sender":"` + sender + `"},"formats":{` +
		`"http-stream":{"content":"` + content + `\n"},"ws-message":{"content":"` + content + `"}}}]}`
}

func TestSkipSelfFilterOnStream(t *testing.T) {
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "room; filter=skip-self")
		w.Header().Set("Grip-Set-Meta", `user="alice"`)
		io.WriteString(w, "joined\n")
	})
	loadCaddyfile(t, gripSite(origin.URL, ""))
	s := openStream(t, caddyURL+"/room", nil)
	s.next(t)
	publish(t, senderItem("room", "alice", "from alice"))
	publish(t, senderItem("room", "bob", "from bob"))
	if got := s.next(t); got != "from bob\n" {
		t.Fatalf("got %q: alice's own message was not skipped", got)
	}
}

func TestSkipSelfFilterOnWebSocket(t *testing.T) {
	origin := simpleWSOrigin(t, []string{
		`{"type":"set-meta","name":"user","value":"alice"}`,
		`{"type":"subscribe","channel":"wsroom","filters":["skip-self"]}`,
	}, nil)
	loadCaddyfile(t, gripSite(origin.URL, ""))
	c, _, err := websocket.DefaultDialer.Dial(strings.Replace(caddyURL, "http", "ws", 1)+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitSubscribers(t, 1)
	publish(t, senderItem("wsroom", "alice", "from alice"))
	publish(t, senderItem("wsroom", "bob", "from bob"))
	if _, m, err := c.ReadMessage(); string(m) != "from bob" {
		t.Fatalf("got %q %v: alice's own message was not skipped", m, err)
	}
}
