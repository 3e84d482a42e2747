package integration_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// loadWithGlobal is loadCaddyfile with more global options (inside the
// global block, after the usual ones).
func loadWithGlobal(t *testing.T, global, sites string) {
	t.Helper()
	opts := strings.Replace(globalOptions, "\n}\n", "\n"+global+"\n}\n", 1)
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(opts+sites), nil)
	if err != nil {
		t.Fatalf("adapting Caddyfile: %v\n%s", err, opts+sites)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("loading config: %v", err)
	}
	for _, port := range []int{caddyPort, publishPort} {
		eventually(t, fmt.Sprintf("one listener on port %d", port), func() bool { return listeners(port) <= 1 })
	}
	http.DefaultClient.CloseIdleConnections()
}

// historyOrigin holds /stream/<ch>?prev=<id> and /poll/<ch>?prev=<id> with
// that prev-id and no next link, and answers "recovered" to any request
// carrying Grip-Last. It counts every request.
type historyOrigin struct {
	mu       sync.Mutex
	requests []string // "<path> <Grip-Last>"
}

func (o *historyOrigin) serve(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.requests = append(o.requests, r.URL.Path+" "+r.Header.Get("Grip-Last"))
	o.mu.Unlock()
	if r.Header.Get("Grip-Last") != "" {
		io.WriteString(w, "recovered\n")
		return
	}
	kind, ch, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if prev := r.URL.Query().Get("prev"); prev != "" {
		w.Header().Set("Grip-Channel", ch+"; prev-id="+prev)
	} else {
		w.Header().Set("Grip-Channel", ch)
	}
	if kind == "stream" {
		w.Header().Set("Grip-Hold", "stream")
		io.WriteString(w, "open\n")
		return
	}
	w.Header().Set("Grip-Hold", "response")
	w.Header().Set("Grip-Timeout", "600")
	io.WriteString(w, "timeout\n")
}

func (o *historyOrigin) seen() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.requests...)
}

func startHistorySite(t *testing.T, history string) *historyOrigin {
	o := &historyOrigin{}
	srv := startOrigin(t, o.serve)
	loadWithGlobal(t, "\tgrip {\n\t\t"+history+"\n\t}", gripSite(srv.URL, "update_on_first_subscription off"))
	return o
}

func publishSeries(t *testing.T, ch string, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		publish(t, fmt.Sprintf(`{"items":[{"channel":%q,"id":"%d","formats":{"http-stream":{"content":"m%d\n"},"http-response":{"body":"r%d\n"}}}]}`, ch, i, i, i))
	}
}

func TestHistoryCatchesUpAStreamWithoutItsOrigin(t *testing.T) {
	o := startHistorySite(t, "history 100")
	publishSeries(t, "hs", 1, 5) // nobody is subscribed yet
	s := openStream(t, caddyURL+"/stream/hs?prev=2", nil)
	for _, want := range []string{"open\n", "m3\n", "m4\n", "m5\n"} {
		if got := s.next(t); got != want {
			t.Fatalf("stream got %q, want %q", got, want)
		}
	}
	publishSeries(t, "hs", 6, 6)
	if got := s.next(t); got != "m6\n" {
		t.Fatalf("live after the catch-up: %q", got)
	}
	// A stream with a prev-id and no next link is accepted on a channel
	// that keeps history, and the origin was asked once, without Grip-Last.
	if got := o.seen(); len(got) != 1 || got[0] != "/stream/hs " {
		t.Fatalf("origin requests %q, want the one stream request", got)
	}
}

func TestHistoryAnswersALongPollAtOnce(t *testing.T) {
	o := startHistorySite(t, "history {\n\t\t\tchannels hp*\n\t\t\tsize 10\n\t\t\tttl 10m\n\t\t\tmax_bytes 1MiB\n\t\t}")
	publishSeries(t, "hp", 1, 3)
	if got := <-getBodyAsync(caddyURL + "/poll/hp?prev=1"); got != "r2\n" {
		t.Fatalf("long-poll got %q, want the item after its prev-id", got)
	}
	if got := o.seen(); len(got) != 1 || got[0] != "/poll/hp " {
		t.Fatalf("origin requests %q, want the one long-poll request", got)
	}
}

func TestHistoryMissFallsBackToTheOrigin(t *testing.T) {
	o := startHistorySite(t, "history 2")
	publishSeries(t, "hm", 1, 5) // 1 to 3 are pushed out
	if got := <-getBodyAsync(caddyURL + "/poll/hm?prev=1"); got != "recovered\n" {
		t.Fatalf("long-poll got %q, want the origin's recovery answer", got)
	}
	if got := o.seen(); len(got) != 2 || got[1] != "/poll/hm hm; last-id=1" {
		t.Fatalf("origin requests %q, want the long-poll then its re-request with Grip-Last", got)
	}
	// A channel outside the history's patterns behaves as in Pushpin: a
	// stream with a prev-id needs a next link.
	startHistorySite(t, "history {\n\t\t\tchannels only-this\n\t\t\tsize 10\n\t\t}")
	resp, err := http.Get(caddyURL + "/stream/other?prev=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), "no next link") {
		t.Fatalf("stream with a prev-id outside the history: %d %q", resp.StatusCode, b)
	}
}

func TestHistoryResumesAnSSEClientFromItsLastEventIDWhenAsked(t *testing.T) {
	startHistorySite(t, "history {\n\t\t\tsize 10\n\t\t\tresume last_event_id websocket\n\t\t}")
	for i := 1; i <= 3; i++ {
		publish(t, fmt.Sprintf(`{"items":[{"channel":"hl","id":"%d","formats":{"http-stream":{"content":"id: %d\n"}}}]}`, i, i))
	}
	// The origin gives no prev-id; the client's Last-Event-ID stands in.
	s := openStream(t, caddyURL+"/stream/hl", http.Header{"Last-Event-Id": {"1"}})
	for _, want := range []string{"open\n", "id: 2\n", "id: 3\n"} {
		if got := s.next(t); got != want {
			t.Fatalf("stream got %q, want %q", got, want)
		}
	}
	q := openStream(t, caddyURL+"/stream/hl?lastEventId=2", nil)
	for _, want := range []string{"open\n", "id: 3\n"} {
		if got := q.next(t); got != want {
			t.Fatalf("stream with ?lastEventId got %q, want %q", got, want)
		}
	}
}

func TestHistoryIgnoresLastEventIDUnlessAsked(t *testing.T) {
	startHistorySite(t, "history 10")
	publish(t, `{"items":[{"channel":"hn","id":"1","formats":{"http-stream":{"content":"one\n"}}}]}`)
	publish(t, `{"items":[{"channel":"hn","id":"2","formats":{"http-stream":{"content":"two\n"}}}]}`)
	s := openStream(t, caddyURL+"/stream/hn", http.Header{"Last-Event-Id": {"1"}})
	if got := s.next(t); got != "open\n" {
		t.Fatalf("stream got %q", got)
	}
	waitSubscribers(t, 1)
	publish(t, `{"items":[{"channel":"hn","id":"3","formats":{"http-stream":{"content":"three\n"}}}]}`)
	if got := s.next(t); got != "three\n" {
		t.Fatalf("without resume the stream got %q, want only the live item", got)
	}
}

func TestHistoryReplaysToAWebSocketSubscribeWithAPrevID(t *testing.T) {
	origin := simpleWSOrigin(t, []string{`{"type":"subscribe","channel":"hw","prev-id":"1"}`}, nil)
	loadWithGlobal(t, "\tgrip {\n\t\thistory {\n\t\t\tsize 10\n\t\t\tresume websocket\n\t\t}\n\t}", gripSite(origin.URL, ""))
	for i := 1; i <= 3; i++ {
		publish(t, fmt.Sprintf(`{"items":[{"channel":"hw","id":"%d","formats":{"ws-message":{"content":"w%d"}}}]}`, i, i))
	}
	c, _ := dialWS(t, "/ws", nil)
	expectText(t, c, "w2")
	expectText(t, c, "w3")
	waitSubscribers(t, 1)
	publish(t, `{"items":[{"channel":"hw","id":"4","formats":{"ws-message":{"content":"w4"}}}]}`)
	expectText(t, c, "w4")
}
