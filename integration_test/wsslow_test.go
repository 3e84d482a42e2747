package integration_test

import (
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/caddy-grip/grip/caddygrip"
	"github.com/caddy-grip/grip/wsoverhttp"
)

// TestWebSocketCutAsSlowSendsDisconnect checks that a WebSocket client
// that stops reading, and so is cut off as slow, is reported to the origin
// with DISCONNECT, as a client that vanishes is.
func TestWebSocketCutAsSlowSendsDisconnect(t *testing.T) {
	o := newWSOrigin(t, func(req *wsRequest, reply *wsReply) {
		if req.has(wsoverhttp.Open) {
			reply.Events = append(reply.Events, subscribe("ws-slow"))
		}
	})
	loadCaddyfile(t, gripSite(o.URL, "write_timeout 1s"))
	h := caddygrip.LookupHub(caddygrip.DefaultHub)
	slowBefore := h.Stats().SlowDisconnects
	c, _ := dialWS(t, "/slow", nil) // never read from again
	id := o.waitOpen(t).connID()
	waitSubscribers(t, 1)

	// 20 MB in 2,000 messages: far beyond the socket buffers and the 1 MiB
	// queue of a client that does not read.
	pad := strings.Repeat("x", 10000)
	for b := 0; b < 40 && subscribers() > 0; b++ {
		var items []string
		for i := range 50 {
			items = append(items, fmt.Sprintf(`{"channel":"ws-slow","formats":{"ws-message":{"content":"%d %s"}}}`, b*50+i, pad))
		}
		publish(t, `{"items":[`+strings.Join(items, ",")+`]}`)
	}
	waitSubscribers(t, 0)
	if h.Stats().SlowDisconnects == slowBefore {
		t.Fatal("the client was not cut off as slow")
	}
	req := o.waitRequest(t, "DISCONNECT", func(r *wsRequest) bool { return r.has(wsoverhttp.Disconnect) })
	if req.connID() != id {
		t.Fatalf("DISCONNECT for connection %q, want %q", req.connID(), id)
	}
	c.NetConn().Close()
}

// TestWebSocketReaderEndsWithASessionTheOriginEnded checks that a session
// that stopped reading its client (the origin was behind) and then ended
// on an origin error frees its reader goroutine.
func TestWebSocketReaderEndsWithASessionTheOriginEnded(t *testing.T) {
	release := make(chan struct{})
	o := newWSOrigin(t, func(req *wsRequest, reply *wsReply) {
		if req.hasText("first") {
			<-release
			reply.Status = http.StatusInternalServerError
		}
	})
	loadCaddyfile(t, gripSite(o.URL, ""))
	before := readLoops()
	c, _ := dialWS(t, "/leak", nil)
	o.waitOpen(t)
	sendText(t, c, "first")
	o.waitRequest(t, "TEXT first", func(r *wsRequest) bool { return r.hasText("first") })
	// Past the batch the session holds for the origin, plus the reader's
	// read-ahead: the reader is now blocked handing a message over.
	big := strings.Repeat("y", 50000)
	for range 12 {
		sendText(t, c, big)
	}
	close(release)
	eventually(t, "the session's reader to end", func() bool { return readLoops() <= before })
	c.NetConn().Close()
}

// readLoops counts goroutines running a WebSocket session's reader.
func readLoops() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "(*wsSession).readLoop")
}
