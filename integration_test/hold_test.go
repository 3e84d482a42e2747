package integration_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddy-grip/grip/caddygrip"
)

// subscribers is the number of subscribers the default hub holds.
func subscribers() int {
	h := caddygrip.LookupHub(caddygrip.DefaultHub)
	if h == nil {
		return 0
	}
	return h.Stats().Subscribers
}

// waitSubscribers waits until the default hub holds n subscribers.
func waitSubscribers(t *testing.T, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d subscribers", n), func() bool { return subscribers() == n })
}

func get(t *testing.T, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestPassthroughIsUntouchedAndUnbuffered(t *testing.T) {
	release := make(chan struct{})
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Origin", "yes")
		w.Header().Set("Trailer", "X-Checksum")
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second\n")
		w.Header().Set("X-Checksum", "abc")
	})
	loadCaddyfile(t, gripSite(origin.URL, ""))

	s := openStream(t, caddyURL+"/plain", nil)
	if s.resp.StatusCode != http.StatusTeapot || s.resp.Header.Get("X-Origin") != "yes" {
		t.Fatalf("status %d headers %v", s.resp.StatusCode, s.resp.Header)
	}
	// The first chunk arrives while the origin is still answering.
	if got := s.next(t); got != "first\n" {
		t.Fatalf("first line %q", got)
	}
	close(release)
	if rest := s.ended(t); strings.Join(rest, "") != "second\n" {
		t.Fatalf("rest %q", rest)
	}
	if got := s.resp.Trailer.Get("X-Checksum"); got != "abc" {
		t.Fatalf("trailer %q", got)
	}
}

func TestOriginRequestIsSignedAndClientGripHeadersRemoved(t *testing.T) {
	seen := make(chan http.Header, 1)
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		io.WriteString(w, "ok")
	})
	loadCaddyfile(t, gripSite(origin.URL, "sig_key s3cret\n sig_iss my-proxy"))

	_, body := get(t, caddyURL+"/", http.Header{
		"Grip-Sig":        {"forged"},
		"Grip-Last":       {"a; last-id=1"},
		"Accept-Encoding": {"gzip"},
	})
	if body != "ok" {
		t.Fatalf("body %q", body)
	}
	h := <-seen
	// Accept-Encoding is dropped too, but Go's transport inside
	// reverse_proxy adds its own gzip (and decompresses it), so the origin
	// may see one.
	if h.Get("Grip-Last") != "" {
		t.Fatalf("client headers leaked to origin: %v", h)
	}
	if !strings.Contains(h.Get("Grip-Feature"), "status") {
		t.Fatalf("Grip-Feature %q", h.Get("Grip-Feature"))
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(h.Get("Grip-Sig"), claims, func(*jwt.Token) (any, error) { return []byte("s3cret"), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("Grip-Sig %q: %v", h.Get("Grip-Sig"), err)
	}
	if claims["iss"] != "my-proxy" {
		t.Fatalf("iss %v", claims["iss"])
	}
}

func TestTrustedUpstreamGetsGripResponseUnprocessed(t *testing.T) {
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Grip-Last") == "" {
			t.Errorf("trusted client's Grip-Last was removed")
		}
		w.Header().Set("Grip-Hold", "response")
		w.Header().Set("Grip-Channel", "trusted")
		io.WriteString(w, "held")
	})
	loadCaddyfile(t, gripSite(origin.URL, "upstream_key upkey"))
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "edge", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte("upkey"))
	if err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, caddyURL+"/", http.Header{"Grip-Sig": {tok}, "Grip-Last": {"trusted; last-id=1"}})
	if resp.Header.Get("Grip-Hold") != "response" || body != "held" {
		t.Fatalf("trusted client got %v %q", resp.Header, body)
	}
}

func TestLongPollAnsweredByPublishedResponse(t *testing.T) {
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "response")
		w.Header().Set("Grip-Channel", "lp-a, lp-b")
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Held", "kept")
		w.Header().Set("Content-Length", "9")
		io.WriteString(w, "timed out")
	})
	loadCaddyfile(t, gripSite(origin.URL, ""))

	type result struct {
		resp *http.Response
		body string
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(caddyURL + "/poll")
		if err != nil {
			t.Error(err)
			done <- result{}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{resp, string(b)}
	}()
	waitSubscribers(t, 1)
	publish(t, `{"items":[{"channel":"lp-b","formats":{"http-response":{
		"code":201,"headers":{"X-Pub":"1","Content-Type":"application/json","Grip-Foo":"x"},"body":"{\"n\":1}\n"}}}]}`)
	r := <-done
	if r.resp == nil {
		t.FailNow()
	}
	if r.resp.StatusCode != 201 || r.body != "{\"n\":1}\n" {
		t.Fatalf("got %d %q", r.resp.StatusCode, r.body)
	}
	h := r.resp.Header
	if h.Get("X-Held") != "kept" || h.Get("X-Pub") != "1" || h.Get("Content-Type") != "application/json" {
		t.Fatalf("headers not merged: %v", h)
	}
	for k := range h {
		if strings.HasPrefix(k, "Grip-") {
			t.Fatalf("%s reached the client", k)
		}
	}
	waitSubscribers(t, 0)
}

func TestLongPollTimeoutReturnsHeldResponse(t *testing.T) {
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "response")
		w.Header().Set("Grip-Channel", "lp-timeout")
		w.Header().Set("Grip-Timeout", "1") // Pushpin's floor is 5 s
		w.Header().Set("Grip-Status", "404 Nothing Yet")
		w.Header().Set("X-Held", "kept")
		io.WriteString(w, "nothing new\n")
	})
	loadCaddyfile(t, gripSite(origin.URL, ""))
	start := time.Now()
	resp, body := get(t, caddyURL+"/poll", nil)
	if resp.StatusCode != 404 || body != "nothing new\n" || resp.Header.Get("X-Held") != "kept" {
		t.Fatalf("got %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp.Header.Get("Grip-Status") != "" {
		t.Fatalf("Grip-Status reached the client")
	}
	if waited := time.Since(start); waited < 5*time.Second {
		t.Fatalf("answered after %v; the minimum Grip-Timeout is 5s", waited)
	}
}

func TestStreamHoldDeliversInOrderAndCloses(t *testing.T) {
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "st")
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "8")
		io.WriteString(w, "welcome\n")
	})
	loadCaddyfile(t, gripSite(origin.URL, ""))
	s := openStream(t, caddyURL+"/stream", nil)
	if got := s.next(t); got != "welcome\n" {
		t.Fatalf("initial %q", got)
	}
	if s.resp.Header.Get("Grip-Hold") != "" || s.resp.ContentLength != -1 {
		t.Fatalf("headers %v, length %d", s.resp.Header, s.resp.ContentLength)
	}
	for i := range 3 {
		publish(t, streamItem("st", fmt.Sprintf("msg %d\n", i)))
	}
	for i := range 3 {
		if got := s.next(t); got != fmt.Sprintf("msg %d\n", i) {
			t.Fatalf("line %d: %q", i, got)
		}
	}
	publish(t, `{"items":[{"channel":"st","formats":{"http-stream":{"action":"close"}}}]}`)
	if rest := s.ended(t); len(rest) != 0 {
		t.Fatalf("after close: %q", rest)
	}
	waitSubscribers(t, 0)
}

func TestSSEWithKeepAlive(t *testing.T) {
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "sse")
		w.Header().Set("Grip-Keep-Alive", `:ka\n\n; format=cstring; timeout=1`)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, ":ok\n\n")
	})
	loadCaddyfile(t, gripSite(origin.URL, ""))
	s := openStream(t, caddyURL+"/events", nil)
	if s.resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", s.resp.Header.Get("Content-Type"))
	}
	if s.next(t) != ":ok\n" || s.next(t) != "\n" {
		t.Fatal("initial body")
	}
	publish(t, streamItem("sse", "event: message\ndata: hello\n\n"))
	for _, want := range []string{"event: message\n", "data: hello\n", "\n"} {
		if got := s.next(t); got != want {
			t.Fatalf("got %q want %q", got, want)
		}
	}
	// Nothing is published now: the keep-alive follows within its timeout.
	if got := s.next(t); got != ":ka\n" {
		t.Fatalf("keep-alive %q", got)
	}
}

func TestJSONInstructHoldsStream(t *testing.T) {
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grip-instruct")
		io.WriteString(w, `{"hold":{"mode":"stream","channels":[{"name":"json-st"}]},
			"response":{"code":200,"headers":{"Content-Type":"text/plain","X-J":"1"},"body":"start\n"}}`)
	})
	loadCaddyfile(t, gripSite(origin.URL, ""))
	s := openStream(t, caddyURL+"/j", nil)
	if got := s.next(t); got != "start\n" {
		t.Fatalf("initial %q", got)
	}
	if s.resp.Header.Get("X-J") != "1" || s.resp.Header.Get("Content-Type") != "text/plain" {
		t.Fatalf("headers %v", s.resp.Header)
	}
	publish(t, streamItem("json-st", "more\n"))
	if got := s.next(t); got != "more\n" {
		t.Fatalf("pushed %q", got)
	}
}

func TestNoHoldReplyLosesGripHeaders(t *testing.T) {
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Channel", "unused")
		w.Header().Set("Grip-Status", "202")
		w.Header().Set("X-Keep", "1")
		io.WriteString(w, "plain")
	})
	loadCaddyfile(t, gripSite(origin.URL, ""))
	resp, body := get(t, caddyURL+"/", nil)
	if resp.StatusCode != 202 || body != "plain" || resp.Header.Get("X-Keep") != "1" || resp.Header.Get("Grip-Channel") != "" {
		t.Fatalf("got %d %q %v", resp.StatusCode, body, resp.Header)
	}
}

func TestInvalidInstructIs502NamingHeader(t *testing.T) {
	cases := []struct {
		name, header, value string
		want                string
	}{
		{"hold", "Grip-Hold", "forever", "Grip-Hold"},
		{"timeout", "Grip-Timeout", "soon", "Grip-Timeout"},
		{"keepalive", "Grip-Keep-Alive", `x\q\; format=cstring`, "Grip-Keep-Alive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Grip-Hold", "stream")
				w.Header().Set("Grip-Channel", "bad")
				w.Header().Set(tc.header, tc.value)
				io.WriteString(w, "x")
			})
			loadCaddyfile(t, gripSite(origin.URL, ""))
			resp, body := get(t, caddyURL+"/", nil)
			if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
		})
	}
}

func TestOversizedInstructIs502(t *testing.T) {
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "response")
		w.Header().Set("Grip-Channel", "big")
		io.WriteString(w, strings.Repeat("x", 2000))
	})
	loadCaddyfile(t, gripSite(origin.URL, "max_instruct_size 1000"))
	resp, body := get(t, caddyURL+"/", nil)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "too large") {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}

func TestHeldStreamSurvivesReload(t *testing.T) {
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "reload")
		io.WriteString(w, "hi\n")
	})
	loadCaddyfile(t, gripSite(origin.URL, ""))
	s := openStream(t, caddyURL+"/", nil)
	s.next(t)
	publish(t, streamItem("reload", "before\n"))
	if got := s.next(t); got != "before\n" {
		t.Fatalf("got %q", got)
	}
	// A different config, then the same one again: two real reloads.
	loadCaddyfile(t, gripSite(origin.URL, "write_timeout 5s"))
	loadCaddyfile(t, gripSite(origin.URL, ""))
	publish(t, streamItem("reload", "after\n"))
	if got := s.next(t); got != "after\n" {
		t.Fatalf("got %q", got)
	}
}

func TestClientMayNotSendWebSocketEvents(t *testing.T) {
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("origin reached")
	})
	loadCaddyfile(t, gripSite(origin.URL, ""))
	resp, err := http.Post(caddyURL+"/", "application/websocket-events", strings.NewReader("OPEN\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestLongPollRecoversPublishMissedBeforeSubscribing(t *testing.T) {
	var gripLast []string
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if gl := r.Header.Get("Grip-Last"); gl != "" {
			// The re-request: the origin serves what the client missed.
			gripLast = append(gripLast, gl)
			io.WriteString(w, "message 2\n")
			return
		}
		// Item 2 is published after the origin decided to hold with
		// prev-id 1, and before Caddy subscribes: without recovery it
		// reaches nobody and the client waits for the timeout.
		publish(t, `{"items":[{"channel":"gap","id":"2","prev-id":"1","formats":{"http-response":{"body":"pushed 2\n"}}}]}`)
		w.Header().Set("Grip-Hold", "response")
		w.Header().Set("Grip-Channel", "gap; prev-id=1")
		io.WriteString(w, "timed out\n")
	})
	loadCaddyfile(t, gripSite(origin.URL, ""))
	resp, body := get(t, caddyURL+"/lp", nil)
	if resp.StatusCode != 200 || body != "message 2\n" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if len(gripLast) != 1 || gripLast[0] != "gap; last-id=1" {
		t.Fatalf("origin saw Grip-Last %q", gripLast)
	}
}

// aheadOfHub starts an origin that always holds on channel with prev-id
// "B" while the hub last saw "A" published there: B's publish is still on
// its way, as when a publisher records a message at the origin before it
// publishes it. Caddy re-requests until its retries run out, then holds.
func aheadOfHub(t *testing.T) (channel string, asked *atomic.Int32) {
	channel = uniqueChannel(t, "ahead")
	asked = new(atomic.Int32)
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.Header().Set("Grip-Hold", "response")
		w.Header().Set("Grip-Channel", channel+"; prev-id=B")
		io.WriteString(w, "timed out\n")
	})
	loadCaddyfile(t, gripSite(origin.URL, "update_on_first_subscription off"))
	publish(t, fmt.Sprintf(`{"items":[{"channel":%q,"id":"A","formats":{"http-response":{"body":"pushed A\n"}}}]}`, channel))
	return channel, asked
}

// waitSettled waits until Caddy has asked the origin once and re-requested
// it as often as it will, and holds.
func waitSettled(t *testing.T, asked *atomic.Int32) {
	t.Helper()
	eventually(t, "six origin requests", func() bool { return asked.Load() == 6 })
	waitSubscribers(t, 1)
}

func TestSettledLongPollSkipsTheItemTheClientHas(t *testing.T) {
	channel, asked := aheadOfHub(t)
	done := getBodyAsync(caddyURL + "/lp")
	waitSettled(t, asked)
	// B is what the origin's prev-id says the client has: not again.
	publish(t, fmt.Sprintf(`{"items":[{"channel":%q,"id":"B","prev-id":"A","formats":{"http-response":{"body":"pushed B\n"}}}]}`, channel))
	publish(t, fmt.Sprintf(`{"items":[{"channel":%q,"id":"C","prev-id":"B","formats":{"http-response":{"body":"pushed C\n"}}}]}`, channel))
	if got := <-done; got != "pushed C\n" {
		t.Fatalf("got %q, want the item after B", got)
	}
}

func TestSettledLongPollAnswersAGapWithTheHeldResponse(t *testing.T) {
	channel, asked := aheadOfHub(t)
	done := getBodyAsync(caddyURL + "/lp")
	waitSettled(t, asked)
	// B2 does not follow B: delivering it would skip B for this client.
	publish(t, fmt.Sprintf(`{"items":[{"channel":%q,"id":"B2","prev-id":"A","formats":{"http-response":{"body":"pushed B2\n"}}}]}`, channel))
	if got := <-done; got != "timed out\n" {
		t.Fatalf("got %q, want the held response", got)
	}
	if n := asked.Load(); n != 6 {
		t.Fatalf("origin asked %d times, want 6", n)
	}
}

func TestSettledLongPollKeepsItsSubscriptionThroughAHint(t *testing.T) {
	channel, asked := aheadOfHub(t)
	done := getBodyAsync(caddyURL + "/lp")
	waitSettled(t, asked)
	// One batch: leaving the channel for the hint would drop C with it.
	publish(t, fmt.Sprintf(`{"items":[
		{"channel":%[1]q,"formats":{"http-response":{"action":"hint"}}},
		{"channel":%[1]q,"id":"C","formats":{"http-response":{"body":"pushed C\n"}}}]}`, channel))
	if got := <-done; got != "pushed C\n" {
		t.Fatalf("got %q, want the item published with the hint", got)
	}
	if n := asked.Load(); n != 6 {
		t.Fatalf("origin asked %d times, want 6", n)
	}
}

func TestHintReissuesTheRequest(t *testing.T) {
	asked := 0
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		asked++
		if asked > 1 {
			io.WriteString(w, "fresh from origin\n")
			return
		}
		w.Header().Set("Grip-Hold", "response")
		w.Header().Set("Grip-Channel", "hinted")
		io.WriteString(w, "timed out\n")
	})
	// Off, so that only the hint can cause a second request.
	loadCaddyfile(t, gripSite(origin.URL, "update_on_first_subscription off"))
	done := getBodyAsync(caddyURL + "/lp")
	waitSubscribers(t, 1)
	publish(t, `{"items":[{"channel":"hinted","formats":{"http-response":{"action":"hint"}}}]}`)
	if got := <-done; got != "fresh from origin\n" {
		t.Fatalf("got %q", got)
	}
}

// Behind encode the body is rewritten, so the stream cannot be hijacked
// and stays on the handler goroutine: it must work there too.
func TestStreamHoldThroughEncodeStaysOnHandler(t *testing.T) {
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "gz")
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, ":ok\n\n")
	})
	loadCaddyfile(t, fmt.Sprintf(`
http://127.0.0.1:%d {
	grip_publish
}
http://127.0.0.1:%d {
	encode gzip
	grip
	reverse_proxy %s
}`, publishPort, caddyPort, origin.Listener.Addr()))
	// The default transport asks for gzip and decompresses it.
	resp, err := http.Get(caddyURL + "/gz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if !resp.Uncompressed {
		t.Fatalf("response was not gzip-encoded: %v", resp.Header)
	}
	r := bufio.NewReader(resp.Body)
	if line, _ := r.ReadString('\n'); line != ":ok\n" {
		t.Fatalf("initial %q", line)
	}
	waitSubscribers(t, 1)
	publish(t, streamItem("gz", "data: zipped\n\n"))
	r.ReadString('\n')
	if line, err := r.ReadString('\n'); line != "data: zipped\n" {
		t.Fatalf("pushed %q %v", line, err)
	}
	publish(t, `{"items":[{"channel":"gz","formats":{"http-stream":{"action":"close"}}}]}`)
	if rest, err := io.ReadAll(r); err != nil || string(rest) != "\n" {
		t.Fatalf("after close: %q %v", rest, err)
	}
}

// A pushed response starts from the held response's headers as
// Grip-Expose-Headers narrowed them, adds the item's, and takes the item's
// code rather than Grip-Status (Pushpin removes the exposed headers from a
// pushed response instead: see README).
func TestPushedResponseStartsFromExposedHeldHeaders(t *testing.T) {
	ch := uniqueChannel(t, "expose")
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "response")
		w.Header().Set("Grip-Channel", ch)
		w.Header().Set("Grip-Status", "404")
		w.Header().Set("Grip-Expose-Headers", "X-Shown")
		w.Header().Set("X-Shown", "held")
		w.Header().Set("X-Hidden", "held")
		io.WriteString(w, "nothing yet\n")
	})
	loadCaddyfile(t, gripSite(origin.URL, "update_on_first_subscription off"))
	type result struct {
		status int
		header http.Header
		body   string
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(caddyURL + "/lp")
		if err != nil {
			done <- result{body: err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{resp.StatusCode, resp.Header, string(b)}
	}()
	waitSubscribers(t, 1)
	publish(t, fmt.Sprintf(`{"items":[{"channel":%q,"formats":{"http-response":{"headers":{"X-Pub":"1"},"body":"pushed\n"}}}]}`, ch))
	r := <-done
	if r.status != 200 || r.body != "pushed\n" {
		t.Fatalf("got %d %q, want the item's default 200 and body", r.status, r.body)
	}
	if r.header.Get("X-Shown") != "held" || r.header.Get("X-Hidden") != "" || r.header.Get("X-Pub") != "1" {
		t.Fatalf("headers %v: want X-Shown kept, X-Hidden narrowed away, X-Pub added", r.header)
	}
}
