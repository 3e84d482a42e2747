package integration_test

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/caddy-grip/grip/wsoverhttp"
)

// bindOrigin is one of two origins a reload switches between. It holds
// streams on channel "bind" with a next link, answers the next link with
// an empty stream chunk, speaks WebSocket-over-HTTP (subscribing to
// "bind", echoing text), and records which key signed each request.
type bindOrigin struct {
	name string
	url  string

	mu   sync.Mutex
	hits []string // "<path> <key that verified Grip-Sig, or none>"
}

func startBindOrigin(t *testing.T, name string, keys ...string) *bindOrigin {
	o := &bindOrigin{name: name}
	srv := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		signer := "none"
		for _, k := range keys {
			if _, err := jwt.Parse(r.Header.Get("Grip-Sig"), func(*jwt.Token) (any, error) { return []byte(k), nil }); err == nil {
				signer = k
			}
		}
		o.mu.Lock()
		o.hits = append(o.hits, r.URL.Path+" "+signer)
		o.mu.Unlock()
		switch r.URL.Path {
		case "/stream":
			w.Header().Set("Grip-Hold", "stream")
			w.Header().Set("Grip-Channel", "bind")
			w.Header().Set("Grip-Link", "</next>; rel=next")
			io.WriteString(w, "open from "+name+"\n")
		case "/next":
			w.Header().Set("Grip-Hold", "stream")
			w.Header().Set("Grip-Channel", "bind")
			io.WriteString(w, "next from "+name+"\n")
		case "/ws":
			body, _ := io.ReadAll(r.Body)
			evs, _ := wsoverhttp.ParseEvents(body, 0)
			var out []wsoverhttp.Event
			for _, e := range evs {
				switch e.Type {
				case wsoverhttp.Open:
					out = append(out, e, wsoverhttp.Event{Type: wsoverhttp.Text, Content: []byte(`c:{"type":"subscribe","channel":"bind"}`)})
				case wsoverhttp.Text:
					out = append(out, wsoverhttp.Event{Type: wsoverhttp.Text, Content: []byte("m:" + name + " got " + string(e.Content))})
				}
			}
			w.Header().Set("Content-Type", wsoverhttp.ContentType)
			w.Header().Set("Sec-WebSocket-Extensions", "grip")
			w.Write(wsoverhttp.AppendEvents(nil, out...))
		default:
			io.WriteString(w, "page from "+name+"\n")
		}
	})
	o.url = srv.URL
	return o
}

func (o *bindOrigin) hit(prefix string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, h := range o.hits {
		if strings.HasPrefix(h, prefix) {
			out = append(out, h)
		}
	}
	return out
}

// bindSite is a grip route to origin, signing with key, with extra
// options. Holds are not updated on first subscription, so that the only
// next-link fetches are those the test's hints cause.
func bindSite(origin *bindOrigin, key, extra string) string {
	return gripSite(origin.url, "sig_key "+key+"\n\t\tupdate_on_first_subscription off\n\t\t"+extra)
}

func TestReloadRebindsLiveSessionsToTheNewRouteAndKey(t *testing.T) {
	a := startBindOrigin(t, "a", "key-one", "key-two")
	b := startBindOrigin(t, "b", "key-one", "key-two")
	loadCaddyfile(t, bindSite(a, "key-one", ""))
	s := openStream(t, caddyURL+"/stream", nil)
	if got := s.next(t); got != "open from a\n" {
		t.Fatalf("stream opened with %q", got)
	}
	c, _ := dialWS(t, "/ws", nil)
	sendText(t, c, "hello")
	expectText(t, c, "a got hello")
	waitSubscribers(t, 2)

	// The new config proxies to b and signs with another key. Its first
	// request rebinds the live sessions.
	loadCaddyfile(t, bindSite(b, "key-two", ""))
	if got := <-getBodyAsync(caddyURL + "/page"); got != "page from b\n" {
		t.Fatalf("the new config served %q", got)
	}

	publish(t, hintItem("bind"))
	if got := s.next(t); got != "next from b\n" {
		t.Fatalf("after the reload the stream's next link was fetched from %q, want b", got)
	}
	if got := b.hit("/next"); len(got) != 1 || got[0] != "/next key-two" {
		t.Fatalf("origin b saw next-link requests %q, want one signed with the new key", got)
	}
	if got := a.hit("/next"); len(got) != 0 {
		t.Fatalf("origin a still got next-link requests: %q", got)
	}
	sendText(t, c, "again")
	expectText(t, c, "b got again")
	if got := b.hit("/ws"); len(got) != 1 || got[0] != "/ws key-two" {
		t.Fatalf("origin b saw WebSocket-over-HTTP requests %q, want one signed with the new key", got)
	}
}

func TestReloadEndsSessionsWhoseRouteIsGone(t *testing.T) {
	a := startBindOrigin(t, "a", "k")
	loadCaddyfile(t, bindSite(a, "k", "id first"))
	s := openStream(t, caddyURL+"/stream", nil)
	s.next(t)
	c, _ := dialWS(t, "/ws", nil)
	sendText(t, c, "hello")
	expectText(t, c, "a got hello")
	waitSubscribers(t, 2)

	// No handler of the new config has the hub and id "first".
	loadCaddyfile(t, bindSite(a, "k", "id second"))
	if rest := s.ended(t); len(rest) != 0 {
		t.Fatalf("the stream got %q before it ended", rest)
	}
	expectClose(t, c, websocket.CloseGoingAway, anyReason)
}

func TestReloadKeepsSessionsWhoseRouteRemains(t *testing.T) {
	a := startBindOrigin(t, "a", "k")
	loadCaddyfile(t, bindSite(a, "k", "id same"))
	s := openStream(t, caddyURL+"/stream", nil)
	s.next(t)
	waitSubscribers(t, 1)
	loadCaddyfile(t, bindSite(a, "k", "id same\n\t\twrite_timeout 7s"))
	publish(t, streamItem("bind", "still here\n"))
	if got := s.next(t); got != "still here\n" {
		t.Fatalf("stream got %q", got)
	}
}
