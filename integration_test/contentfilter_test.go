package integration_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"
)

func TestVarSubstFilterRendersEachSubscribersMeta(t *testing.T) {
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "greet; filter=var-subst")
		w.Header().Set("Grip-Set-Meta", fmt.Sprintf("user=%q", r.URL.Query().Get("user")))
		io.WriteString(w, "joined\n")
	})
	loadCaddyfile(t, gripSite(origin.URL, "update_on_first_subscription off"))
	alice := openStream(t, caddyURL+"/s?user=alice", nil)
	bob := openStream(t, caddyURL+"/s?user=bob", nil)
	alice.next(t)
	bob.next(t)
	waitSubscribers(t, 2)
	publish(t, streamItem("greet", "hello %(user)s, 100%%\n"))
	if got := alice.next(t); got != "hello alice, 100%\n" {
		t.Errorf("alice got %q", got)
	}
	if got := bob.next(t); got != "hello bob, 100%\n" {
		t.Errorf("bob got %q", got)
	}
	// An unknown variable is a filter error: that item is not delivered.
	publish(t, streamItem("greet", "hello %(nobody)s\n"))
	publish(t, streamItem("greet", "next\n"))
	if got := alice.next(t); got != "next\n" {
		t.Errorf("after an unknown variable alice got %q, want the next item", got)
	}
}

func TestBuildIDFilterRendersInitialBodyAndItems(t *testing.T) {
	ch := uniqueChannel(t, "ids")
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", ch+"; prev-id=7; filter=build-id")
		w.Header().Set("Grip-Link", "</next>; rel=next")
		w.Header().Set("Grip-Set-Meta", fmt.Sprintf(`id_format="ids:%%(%s)s"`, ch))
		io.WriteString(w, "start %(literal)I\n")
	})
	loadCaddyfile(t, gripSite(origin.URL, "update_on_first_subscription off"))
	s := openStream(t, caddyURL+"/s", nil)
	if got := s.next(t); got != "start literal\n" {
		t.Fatalf("initial body %q, want %%(literal)I rendered", got)
	}
	waitSubscribers(t, 1)
	publish(t, fmt.Sprintf(`{"items":[{"channel":%q,"id":"8","prev-id":"7","formats":{"http-stream":{"content":"after %%I\n"}}}]}`, ch))
	if got := s.next(t); got != "after ids:8\n" {
		t.Fatalf("got %q, want the id rendered from the item's own id", got)
	}
}

func TestContentFiltersMustMatchTheSubscriptions(t *testing.T) {
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "cf; filter=var-subst")
		w.Header().Set("Grip-Set-Meta", `user="carol"`)
		io.WriteString(w, "joined\n")
	})
	loadCaddyfile(t, gripSite(origin.URL, "update_on_first_subscription off"))
	s := openStream(t, caddyURL+"/s", nil)
	s.next(t)
	waitSubscribers(t, 1)
	item := func(filters, content string) string {
		return fmt.Sprintf(`{"items":[{"channel":"cf","formats":{"http-stream":{"content":%q,"content-filters":%s}}}]}`, content, filters)
	}
	publish(t, item(`["build-id"]`, "mismatch %(user)s\n"))
	publish(t, item(`["var-subst"]`, "match %(user)s\n"))
	if got := s.next(t); got != "match carol\n" {
		t.Fatalf("got %q, want only the item whose content-filters match", got)
	}
}

func TestVarSubstFilterOnWebSocket(t *testing.T) {
	origin := simpleWSOrigin(t, []string{
		`{"type":"set-meta","name":"user","value":"dave"}`,
		`{"type":"subscribe","channel":"wsgreet","filters":["var-subst"]}`,
	}, nil)
	loadCaddyfile(t, gripSite(origin.URL, ""))
	c, _, err := websocket.DefaultDialer.Dial(strings.Replace(caddyURL, "http", "ws", 1)+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitSubscribers(t, 1)
	publish(t, `{"items":[{"channel":"wsgreet","formats":{"ws-message":{"content":"hi %(user)s"}}}]}`)
	if _, m, err := c.ReadMessage(); string(m) != "hi dave" {
		t.Fatalf("got %q %v", m, err)
	}
}

// longPollOn holds /lp on channel with a JSON body and answers requests
// carrying ?fresh with a plain body; it counts requests.
func longPollOn(t *testing.T, channel string, asked *atomic.Int32) string {
	return startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if asked.Add(1) > 1 {
			io.WriteString(w, "fresh from origin\n")
			return
		}
		w.Header().Set("Grip-Hold", "response")
		w.Header().Set("Grip-Channel", channel)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"count":1,"items":["a"],"z":null}`+"\n")
	}).URL
}

func TestBodyPatchIsAppliedToTheHeldBody(t *testing.T) {
	var asked atomic.Int32
	loadCaddyfile(t, gripSite(longPollOn(t, "patched", &asked), "update_on_first_subscription off"))
	done := make(chan string, 1)
	go func() {
		resp, body := get(t, caddyURL+"/lp", nil)
		done <- resp.Header.Get("Content-Type") + " " + body
	}()
	waitSubscribers(t, 1)
	publish(t, `{"items":[{"channel":"patched","formats":{"http-response":{"body-patch":[`+
		`{"op":"replace","path":"/count","value":2},{"op":"add","path":"/items/-","value":"b"},{"op":"remove","path":"/z"}]}}}]}`)
	// Written compact with sorted keys, the held body's newline kept.
	if got, want := <-done, "application/json "+`{"count":2,"items":["a","b"]}`+"\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// Pushpin answers a patch that does not apply with an empty body; the
// client is better served by the origin's current state.
func TestBodyPatchThatDoesNotApplyReRequestsTheOrigin(t *testing.T) {
	var asked atomic.Int32
	loadCaddyfile(t, gripSite(longPollOn(t, "unpatchable", &asked), "update_on_first_subscription off"))
	done := make(chan string, 1)
	go func() {
		_, body := get(t, caddyURL+"/lp", nil)
		done <- body
	}()
	waitSubscribers(t, 1)
	publish(t, `{"items":[{"channel":"unpatchable","formats":{"http-response":{"body-patch":[{"op":"remove","path":"/missing"}]}}}]}`)
	if got := <-done; got != "fresh from origin\n" || asked.Load() != 2 {
		t.Fatalf("got %q after %d origin requests", got, asked.Load())
	}
}

func TestMalformedBodyPatchIsRefusedAtPublish(t *testing.T) {
	loadCaddyfile(t, gripSite("http://127.0.0.1:1", ""))
	status, body := publishRaw(t, `{"items":[{"channel":"x","formats":{"http-response":{"body-patch":[{"op":"add","path":"/a"}]}}}]}`, nil)
	if status != http.StatusBadRequest || !strings.Contains(body, "missing 'value'") {
		t.Fatalf("got %d %q", status, body)
	}
}
