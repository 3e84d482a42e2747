package integration_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// These tests prove that a WebSocket-over-HTTP origin written with
// @fanoutio/grip's WebSocketContext works behind caddy-grip: the library
// decodes the events grip posts, and grip acts on what the library encodes
// (OPEN, messages with the m: prefix, subscribe controls, Set-Meta-*
// headers, CLOSE with a code). The library's Publisher publishes
// WebSocketMessageFormat to the connections. The node side is
// testdata/jsgrip/wsorigin.mjs, installed by setupJSGrip.

// jsWSOrigin is a running wsorigin.mjs.
type jsWSOrigin struct {
	url string
}

// startJSWSOrigin runs wsorigin.mjs with the given Grip-Sig key and issuer,
// publishing to the test Caddy's grip_publish. It stops when the test ends.
func startJSWSOrigin(t *testing.T, js *jsgrip, sigKey, sigIss string) *jsWSOrigin {
	t.Helper()
	return &jsWSOrigin{url: js.runNodeOrigin(t, "wsorigin.mjs", "SIG_KEY="+sigKey, "SIG_ISS="+sigIss,
		"CONTROL_URI="+strings.TrimSuffix(publishURL, "publish/"))}
}

// jsWSLogEntry is what wsorigin.mjs recorded of one request grip sent it.
type jsWSLogEntry struct {
	ID         string            `json:"id"`         // Connection-Id, as the library read it
	SigValid   bool              `json:"sigValid"`   // the library accepted Grip-Sig
	WSOverHTTP bool              `json:"wsOverHttp"` // isNodeReqWsOverHttp
	Events     []string          `json:"events"`     // types, as decodeWebSocketEvents found them
	Meta       map[string]string `json:"meta"`       // from Meta-* headers
	CloseCode  *int              `json:"closeCode"`  // of a CLOSE, as the library read it
}

// log returns every request the origin has seen.
func (o *jsWSOrigin) log(t *testing.T) []jsWSLogEntry {
	t.Helper()
	resp, err := jsClient.Get(o.url + "/_test/log")
	if err != nil {
		t.Fatalf("wsorigin.mjs log: %v", err)
	}
	defer resp.Body.Close()
	var entries []jsWSLogEntry
	if err := json.NewDecoder(resp.Body).Decode(&entries); err != nil {
		t.Fatalf("wsorigin.mjs log: %v", err)
	}
	return entries
}

// connLog returns the origin's log entries of one Connection-Id.
func (o *jsWSOrigin) connLog(t *testing.T, id string) []jsWSLogEntry {
	t.Helper()
	var out []jsWSLogEntry
	for _, e := range o.log(t) {
		if e.ID == id {
			out = append(out, e)
		}
	}
	return out
}

// lastOpen returns the newest OPEN request the origin saw: that of the
// connection the test opened last.
func (o *jsWSOrigin) lastOpen(t *testing.T) jsWSLogEntry {
	t.Helper()
	entries := o.log(t)
	for i := len(entries) - 1; i >= 0; i-- {
		if len(entries[i].Events) > 0 && entries[i].Events[0] == "OPEN" {
			return entries[i]
		}
	}
	t.Fatal("the origin saw no OPEN")
	return jsWSLogEntry{}
}

// mustPublish has the origin publish one WebSocketMessageFormat with the
// library's Publisher, failing the test unless the library reports success.
// req is {"channel": ..., and "text", "binaryBase64" or "close"/"code"}.
func (o *jsWSOrigin) mustPublish(t *testing.T, req map[string]any) {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := jsClient.Post(o.url+"/_test/publish", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("wsorigin.mjs publish: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var res jsPublishResult
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &res) != nil {
		t.Fatalf("wsorigin.mjs publish %s: %d %q", b, resp.StatusCode, body)
	}
	if !res.OK {
		t.Fatalf("@fanoutio/grip WebSocketMessageFormat publish %s failed: %d %s", b, res.StatusCode, res.Message)
	}
}

func TestJSGripWebSocket(t *testing.T) {
	js := setupJSGrip(t)
	o := startJSWSOrigin(t, js, jsSigKey, jsSigIss)
	signed := fmt.Sprintf("sig_key %s\n\t\tsig_iss %s", jsSigKey, jsSigIss)
	t.Run("Session", func(t *testing.T) { testJSWSSession(t, o, signed) })
	t.Run("ClientCloseReachesLibrary", func(t *testing.T) { testJSWSClientClose(t, o, signed) })
	t.Run("PublishedCloseWithCode", func(t *testing.T) { testJSWSPublishedClose(t, o, signed) })
	t.Run("RefusedOpen", func(t *testing.T) { testJSWSRefusedOpen(t, o) })
}

// testJSWSSession runs one connection through everything the library's
// WebSocketContext does: accept, subscribe, send, meta, sendBinary, close.
func testJSWSSession(t *testing.T, o *jsWSOrigin, signed string) {
	loadCaddyfile(t, jsgripSites(o.url, "", signed))
	c, resp := dialWS(t, "/ws?ch=js-ws-a&ch=js-ws-b&user=alice", http.Header{"Meta-User": {"mallory"}})

	// The 101 carries the OPEN answer's headers, minus the WOH ones.
	if resp.Header.Get("X-Grip-Sig-Valid") != "true" {
		t.Errorf("101 headers %v: want X-Grip-Sig-Valid: true from the origin's OPEN answer", resp.Header)
	}
	for k := range resp.Header {
		if strings.HasPrefix(k, "Set-Meta-") || k == "Content-Type" || strings.HasPrefix(k, "Grip-") {
			t.Errorf("%s of the origin's OPEN answer reached the client", k)
		}
	}

	// OPEN: accept, subscribe to both channels, send the welcome.
	expectText(t, c, "welcome alice")
	waitSubscribers(t, 1)
	eventually(t, "2 subscribed channels", func() bool { return hubChannels() == 2 })

	// Echo of text (ASCII and UTF-8) and of binary via sendBinary.
	for _, m := range []string{"hello", "héllo ✓", "TEXT 3\r\nabc\r\n"} {
		sendText(t, c, m)
		expectText(t, c, m)
	}
	bin := []byte("bin \x00\xff\r\n")
	if err := c.WriteMessage(websocket.BinaryMessage, bin); err != nil {
		t.Fatalf("client write: %v", err)
	}
	if typ, got := readWS(t, c); typ != websocket.BinaryMessage || !bytes.Equal(got, bin) {
		t.Fatalf("binary echo: type %d %q, want binary %q", typ, got, bin)
	}

	// Meta: OPEN set user through Set-Meta-user; later requests carry it
	// back as Meta-User; deleting it sends an empty Set-Meta-user.
	sendText(t, c, "whoami")
	expectText(t, c, "you are alice")
	sendText(t, c, "forget")
	expectText(t, c, "forgotten")
	sendText(t, c, "whoami")
	expectText(t, c, "you are nobody")

	// Publishes reach the connection on either channel, from Go and from
	// the library's Publisher (text, then binary as content-bin).
	publish(t, wsText("js-ws-b", "via go"))
	expectText(t, c, "via go")
	o.mustPublish(t, map[string]any{"channel": "js-ws-a", "text": "via js"})
	expectText(t, c, "via js")
	pubBin := []byte("js bin \x00\x01\xfe")
	o.mustPublish(t, map[string]any{"channel": "js-ws-b", "binaryBase64": base64.StdEncoding.EncodeToString(pubBin)})
	if typ, got := readWS(t, c); typ != websocket.BinaryMessage || !bytes.Equal(got, pubBin) {
		t.Fatalf("published binary: type %d %q, want binary %q", typ, got, pubBin)
	}

	// The origin closes with code 4002 (a CLOSE event without reason).
	sendText(t, c, "close")
	expectClose(t, c, 4002, "")
	waitSubscribers(t, 0)

	// What the library saw: one Connection-Id, every request signed and
	// recognised as WebSocket-over-HTTP, OPEN first and alone, the client's
	// Meta-User never forwarded, and user stored by grip until deleted.
	open := o.lastOpen(t)
	reqs := o.connLog(t, open.ID)
	if open.ID == "" || len(reqs) < 2 {
		t.Fatalf("origin log for connection %q: %+v", open.ID, reqs)
	}
	for i, r := range reqs {
		if !r.SigValid || !r.WSOverHTTP {
			t.Errorf("request %d %+v: the library did not accept Grip-Sig or did not see WebSocket-over-HTTP", i, r)
		}
		if (i == 0) != (len(r.Events) > 0 && r.Events[0] == "OPEN") || (i == 0 && len(r.Events) != 1) {
			t.Errorf("request %d events %v: want OPEN alone in the first request only", i, r.Events)
		}
		if u, ok := r.Meta["user"]; len(r.Meta) > 1 || (ok && u != "alice") || (i == 0 && ok) {
			t.Errorf("request %d meta %v: want none on OPEN, then only user alice as the origin set it", i, r.Meta)
		}
	}
	if got := reqs[1].Meta["user"]; got != "alice" {
		t.Errorf("second request meta %v, want user alice (stored from Set-Meta-user)", reqs[1].Meta)
	}
}

// testJSWSClientClose checks that a client's close frame reaches the
// library as a CLOSE event whose code it can read.
func testJSWSClientClose(t *testing.T, o *jsWSOrigin, signed string) {
	loadCaddyfile(t, jsgripSites(o.url, "", signed))
	c, _ := dialWS(t, "/ws?ch=js-ws-c&user=bob", nil)
	expectText(t, c, "welcome bob")
	open := o.lastOpen(t)
	// The library reads a code only from a CLOSE without reason.
	msg := websocket.FormatCloseMessage(4005, "")
	if err := c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(20*time.Second)); err != nil {
		t.Fatalf("client close: %v", err)
	}
	_, _, err := readWSErr(c)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("after the client's close: %v, want a close frame", err)
	}
	var closed jsWSLogEntry
	eventually(t, "the origin's CLOSE request", func() bool {
		for _, r := range o.connLog(t, open.ID) {
			if len(r.Events) > 0 && r.Events[len(r.Events)-1] == "CLOSE" {
				closed = r
				return true
			}
		}
		return false
	})
	if closed.CloseCode == nil || *closed.CloseCode != 4005 || !closed.SigValid {
		t.Fatalf("CLOSE request %+v: want close code 4005 read by the library, signed", closed)
	}
	waitSubscribers(t, 0)
}

// testJSWSPublishedClose checks WebSocketMessageFormat's close with a code.
func testJSWSPublishedClose(t *testing.T, o *jsWSOrigin, signed string) {
	loadCaddyfile(t, jsgripSites(o.url, "", signed))
	c, _ := dialWS(t, "/ws?ch=js-ws-d&user=carol", nil)
	expectText(t, c, "welcome carol")
	waitSubscribers(t, 1)
	o.mustPublish(t, map[string]any{"channel": "js-ws-d", "close": true, "code": 4003})
	expectClose(t, c, 4003, "")
	waitSubscribers(t, 0)
}

// testJSWSRefusedOpen checks that an OPEN the library does not accept as
// signed is refused, and that the client gets the origin's refusal.
func testJSWSRefusedOpen(t *testing.T, o *jsWSOrigin) {
	cases := []struct {
		name        string
		gripOptions string
	}{
		{"no sig_key", ""},
		{"wrong sig_key", fmt.Sprintf("sig_key wrong-secret\n\t\tsig_iss %s", jsSigIss)},
		{"wrong sig_iss", fmt.Sprintf("sig_key %s\n\t\tsig_iss someone-else", jsSigKey)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			loadCaddyfile(t, jsgripSites(o.url, "", tc.gripOptions))
			c, resp, err := dialer.Dial(wsURL("/ws?ch=js-ws-refused"), nil)
			if err == nil {
				c.Close()
				t.Fatal("handshake succeeded, want the origin's 403")
			}
			if resp == nil {
				t.Fatalf("dial: %v, want the origin's 403", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Grip-Sig-Valid") != "false" || string(body) != "invalid Grip-Sig\n" {
				t.Fatalf("got %d %q %v", resp.StatusCode, body, resp.Header)
			}
			if n := subscribers(); n != 0 {
				t.Fatalf("%d subscribers after a refusal", n)
			}
		})
	}
}
