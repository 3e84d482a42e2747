package integration_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/caddy-grip/grip/wsoverhttp"
)

// TestWebSocketEchoOfTheLargestMessageArrivesWhole sends a message of the
// default max_message_size (1 MiB): the origin's echo, with its "m:" prefix
// and event framing, is longer than the message and must still be read.
func TestWebSocketEchoOfTheLargestMessageArrivesWhole(t *testing.T) {
	o := newWSOrigin(t, echo)
	loadCaddyfile(t, gripSite(o.URL, ""))
	c, _ := dialWS(t, "/largest", nil)
	text := strings.Repeat("x", 1<<20)
	sendText(t, c, text)
	expectText(t, c, text)
}

// TestWebSocketInvalidUTF8TextClosesWith1007 sends a text frame that is
// not UTF-8: RFC 6455 section 8.1 fails the connection with 1007, and the
// text never reaches the origin.
func TestWebSocketInvalidUTF8TextClosesWith1007(t *testing.T) {
	o := newWSOrigin(t, echo)
	loadCaddyfile(t, gripSite(o.URL, ""))
	c, _ := dialWS(t, "/utf8", nil)
	sendText(t, c, "fine")
	expectText(t, c, "fine")
	// gorilla checks nothing on write; the frame goes out as given.
	if err := c.WriteMessage(websocket.TextMessage, []byte{'b', 0xff, 'd'}); err != nil {
		t.Fatal(err)
	}
	expectClose(t, c, websocket.CloseInvalidFramePayloadData, anyReason)
	eventually(t, "the origin told of the disconnect", func() bool {
		for _, r := range o.requests() {
			if r.has(wsoverhttp.Disconnect) {
				return true
			}
		}
		return false
	})
	for _, r := range o.requests() {
		for _, e := range r.Events {
			if e.Type == wsoverhttp.Text && bytes.Contains(e.Content, []byte{0xff}) {
				t.Fatal("the invalid text reached the origin")
			}
		}
	}
}

// TestWebSocketSubscribeWithTooManyFiltersClosesWith1011 has the origin
// subscribe with six filters, one more than GRIP allows: Pushpin closes
// the connection with 1011.
func TestWebSocketSubscribeWithTooManyFiltersClosesWith1011(t *testing.T) {
	origin := simpleWSOrigin(t, []string{`{"type":"subscribe","channel":"f","filters":["skip-self","skip-self","skip-self","skip-self","skip-self","skip-self"]}`}, nil)
	loadCaddyfile(t, gripSite(origin.URL, ""))
	c, _ := dialWS(t, "/filters", nil)
	expectClose(t, c, websocket.CloseInternalServerErr, "too many filters")
}

// TestWebSocketSubscribeWithFiveFiltersIsKept is the limit itself.
func TestWebSocketSubscribeWithFiveFiltersIsKept(t *testing.T) {
	origin := simpleWSOrigin(t, []string{`{"type":"subscribe","channel":"f5","filters":["skip-self","skip-self","skip-self","skip-self","skip-self"]}`}, nil)
	loadCaddyfile(t, gripSite(origin.URL, ""))
	c, _ := dialWS(t, "/filters5", nil)
	waitSubscribers(t, 1)
	publish(t, `{"items":[{"channel":"f5","formats":{"ws-message":{"content":"ok"}}}]}`)
	expectText(t, c, "ok")
}
