package integration_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/gorilla/websocket"
)

// noOriginSite is a client site whose routes have no application behind
// them: streams and long-polls answered by Caddy's own respond with Grip-*
// headers, and chat rooms relayed by grip_relay.
func noOriginSite(relayOptions string) string {
	return fmt.Sprintf(`
http://127.0.0.1:%d {
	grip_publish
}
http://127.0.0.1:%d {
	route /events/* {
		grip {
			update_on_first_subscription off
		}
		header Grip-Hold stream
		header Grip-Channel news-{path.1}
		header Content-Type text/event-stream
		respond <<SSE
			: open

			SSE 200
	}
	route /poll/* {
		grip
		header Grip-Hold response
		header Grip-Channel news-{path.1}
		header Grip-Timeout 600
		respond "nothing yet" 200
	}
	handle /chat/* {
		grip
		grip_relay room-{path.1} {
			%s
		}
	}
}
`, publishPort, caddyPort, relayOptions)
}

func TestStreamsAndLongPollsDecidedByTheConfigAlone(t *testing.T) {
	loadCaddyfile(t, noOriginSite(""))
	s := openStream(t, caddyURL+"/events/sports", nil)
	if got := s.next(t); got != ": open\n" {
		t.Fatalf("stream opened with %q", got)
	}
	poll := getBodyAsync(caddyURL + "/poll/sports")
	waitSubscribers(t, 2)
	publish(t, `{"items":[{"channel":"news-sports","formats":{"http-stream":{"content":"data: goal\n\n"},"http-response":{"body":"goal\n"}}}]}`)
	if got := s.next(t); got != "data: goal\n" {
		t.Fatalf("stream got %q", got)
	}
	if got := <-poll; got != "goal\n" {
		t.Fatalf("long-poll got %q", got)
	}
}

func relayClient(t *testing.T, room string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(wsURL("/chat/"+room), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRelayIsAChatRoomWithNoApplication(t *testing.T) {
	loadCaddyfile(t, noOriginSite("skip_self"))
	alice, bob := relayClient(t, "lobby"), relayClient(t, "lobby")
	elsewhere := relayClient(t, "other")
	waitSubscribers(t, 3)
	sendText(t, alice, "hi from alice")
	expectText(t, bob, "hi from alice")
	sendText(t, bob, "hi from bob")
	// With skip_self, alice's first message is bob's, not her own.
	expectText(t, alice, "hi from bob")
	// A publisher reaches the room too; the other room hears nothing of it.
	publish(t, `{"items":[{"channel":"room-lobby","formats":{"ws-message":{"content":"from the server"}}}]}`)
	expectText(t, alice, "from the server")
	expectText(t, bob, "from the server")
	sendText(t, elsewhere, "only here")
	_ = elsewhere.SetReadDeadline(time.Now().Add(20 * time.Second))
	// The other room's sender has skip_self too: the room is its own.
	publish(t, `{"items":[{"channel":"room-other","formats":{"ws-message":{"content":"other room"}}}]}`)
	expectText(t, elsewhere, "other room")
	if err := bob.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if mt, got := readWS(t, alice); mt != websocket.BinaryMessage || string(got) != "\x00\x01\x02" {
		t.Fatalf("binary relayed as type %d %q", mt, got)
	}
}

func TestRelayWithoutSkipSelfEchoesTheSender(t *testing.T) {
	loadCaddyfile(t, noOriginSite(""))
	alice := relayClient(t, "echo")
	waitSubscribers(t, 1)
	sendText(t, alice, "hello")
	expectText(t, alice, "hello")
}

func TestRelayRefusesPlainRequests(t *testing.T) {
	loadCaddyfile(t, noOriginSite(""))
	resp, err := http.Get(caddyURL + "/chat/lobby")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a plain GET got %d, want 400", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, caddyURL+"/chat/lobby", strings.NewReader("TEXT zz\r\n"))
	req.Header.Set("Content-Type", "application/websocket-events")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("an events body that does not parse was accepted")
	}
}

// TestBroadcastWebSocketAnsweredByTheConfigAlone has a static_response
// answer the WebSocket-over-HTTP OPEN (JSON config: a Caddyfile string
// cannot carry the CRLFs of the event format): the connection is
// subscribed by a control message in that answer and receives what is
// published. The answer is the same to every request, so this suits
// receive-only clients; grip_relay serves clients that talk.
func TestBroadcastWebSocketAnsweredByTheConfigAlone(t *testing.T) {
	control := `c:{"type":"subscribe","channel":"live"}`
	events := fmt.Sprintf("OPEN\r\nTEXT %x\r\n%s\r\n", len(control), control)
	body, _ := json.Marshal(events)
	sites := fmt.Sprintf(`
http://127.0.0.1:%d {
	grip_publish
}
http://127.0.0.1:%d {
	route /live {
		grip
		header Content-Type application/websocket-events
		header Sec-WebSocket-Extensions grip
		respond "EVENTS" 200
	}
}
`, publishPort, caddyPort)
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(globalOptions+sites), nil)
	if err != nil {
		t.Fatal(err)
	}
	patched := strings.Replace(string(cfg), `"body":"EVENTS"`, `"body":`+string(body), 1)
	if patched == string(cfg) {
		t.Fatalf("no respond body to replace in %s", cfg)
	}
	if err := caddy.Load([]byte(patched), true); err != nil {
		t.Fatal(err)
	}
	for _, port := range []int{caddyPort, publishPort} {
		eventually(t, fmt.Sprintf("one listener on port %d", port), func() bool { return listeners(port) <= 1 })
	}
	c, _, err := websocket.DefaultDialer.Dial(wsURL("/live"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitSubscribers(t, 1)
	publish(t, `{"items":[{"channel":"live","formats":{"ws-message":{"content":"2-1"}}}]}`)
	expectText(t, c, "2-1")
}
