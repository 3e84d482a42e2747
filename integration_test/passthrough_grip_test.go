package integration_test

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// gripWSOrigin is a WebSocket origin that speaks GRIP over a plain
// WebSocket: it accepts with Sec-WebSocket-Extensions: grip (which gorilla
// refuses to send, hence the hand-written handshake) and at once sends the
// control message subscribing the connection to channel, then "m:hello".
func gripWSOrigin(t *testing.T, channel string) string {
	srv := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			io.WriteString(w, originReady) // Pushpin's readiness probe
			return
		}
		h := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Extensions: grip\r\n\r\n", base64.StdEncoding.EncodeToString(h[:]))
		for _, m := range []string{fmt.Sprintf(`c:{"type":"subscribe","channel":%q}`, channel), "m:hello"} {
			brw.Write([]byte{0x81, byte(len(m))}) // one unmasked text frame, under 126 bytes
			brw.WriteString(m)
		}
		brw.Flush()
		// Hold the connection until the client goes.
		_, _ = bufio.NewReader(conn).ReadByte()
	})
	return srv.Listener.Addr().String()
}

// textPump reads c's messages into a channel (gorilla's connection is
// unusable after a read times out, so waits are on the channel instead).
func textPump(c *websocket.Conn) <-chan string {
	ch := make(chan string, 16)
	go func() {
		defer close(ch)
		for {
			_, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			ch <- string(m)
		}
	}()
	return ch
}

// readTexts takes up to n messages, waiting at most a second for each.
func readTexts(ch <-chan string, n int) []string {
	var got []string
	for len(got) < n {
		select {
		case m, ok := <-ch:
			if !ok {
				return got
			}
			got = append(got, m)
		case <-time.After(time.Second):
			return got
		}
	}
	return got
}

// TestPassthroughWebSocketWithGripOriginDifferential records what Pushpin
// 1.36 and caddy-grip do with a passed-through client WebSocket whose
// origin accepts with the grip extension and sends control messages.
func TestPassthroughWebSocketWithGripOriginDifferential(t *testing.T) {
	const channel = "pt-diff"
	origin := gripWSOrigin(t, channel)

	pp := startPushpin(t, origin)
	ppc, _, err := websocket.DefaultDialer.Dial(strings.Replace(pp.clientURL, "http", "ws", 1)+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ppc.Close()
	ppIn := textPump(ppc)
	first := readTexts(ppIn, 1)
	// Give Pushpin's subscription a moment to reach its publish side, as
	// the other Pushpin tests do by publishing until delivery.
	var ppGot []string
	for range 20 {
		resp, err := publisher.Post(pp.publishURL, "application/json", strings.NewReader(fmt.Sprintf(`{"items":[{"channel":%q,"formats":{"ws-message":{"content":"published"}}}]}`, channel)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("Pushpin publish: %d", resp.StatusCode)
		}
		if ppGot = readTexts(ppIn, 1); len(ppGot) > 0 {
			break
		}
	}
	ppView := fmt.Sprintf("first %q, after publishing %q", first, ppGot)

	loadCaddyfile(t, gripSite("http://"+origin, "websocket passthrough"))
	cgc, _, err := websocket.DefaultDialer.Dial(wsURL("/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cgc.Close()
	cgIn := textPump(cgc)
	cgFirst := readTexts(cgIn, 2)
	publish(t, fmt.Sprintf(`{"items":[{"channel":%q,"formats":{"ws-message":{"content":"published"}}}]}`, channel))
	cgView := fmt.Sprintf("first %q, after publishing %q", cgFirst, readTexts(cgIn, 1))

	// Pushpin reads the origin's control message, strips the "m:" prefix
	// and delivers the publish; caddy-grip's passthrough is plain
	// WebSocket proxying and passes the frames as they are.
	knownDifference(t, "passthrough WebSocket to a GRIP origin",
		ppView, `first ["hello"], after publishing ["published"]`,
		cgView, `first ["c:{\"type\":\"subscribe\",\"channel\":\"pt-diff\"}" "m:hello"], after publishing []`)
}
