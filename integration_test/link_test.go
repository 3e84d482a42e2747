package integration_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// reliableOrigin is a GRIP origin for a reliable stream: it keeps a log of
// messages (message n has id n) and answers the first request and every
// next link with the messages after the client's last id, a stream hold
// with prev-id at the newest id, and a next link.
type reliableOrigin struct {
	t       *testing.T
	channel string

	mu   sync.Mutex
	log  []string
	lost func() // runs once, after the first answer is decided and before it is sent

	linkDelay  time.Duration // how slowly next links are answered
	links      atomic.Int32
	badLastIDs atomic.Int32 // next links whose Grip-Last disagreed with ?after
}

func (o *reliableOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	after := 0
	if r.URL.Path == "/rs/next" {
		o.links.Add(1)
		after, _ = strconv.Atoi(r.URL.Query().Get("after"))
		if want := fmt.Sprintf("%s; last-id=%d", o.channel, after); after > 0 && r.Header.Get("Grip-Last") != want {
			o.badLastIDs.Add(1)
			o.t.Errorf("next link carried Grip-Last %q, want %q", r.Header.Get("Grip-Last"), want)
		}
		time.Sleep(o.linkDelay)
	}
	o.mu.Lock()
	newest := len(o.log)
	body := strings.Join(o.log[min(after, newest):], "")
	lost := o.lost
	o.lost = nil
	o.mu.Unlock()
	if lost != nil {
		lost()
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Grip-Hold", "stream")
	if newest > 0 {
		w.Header().Set("Grip-Channel", fmt.Sprintf("%s; prev-id=%d", o.channel, newest))
	} else {
		w.Header().Set("Grip-Channel", o.channel)
	}
	w.Header().Set("Grip-Link", fmt.Sprintf("</rs/next?after=%d>; rel=next", newest))
	io.WriteString(w, body)
}

// add logs a message the way a reliable publisher does, then returns the
// publish body: id n, prev-id n-1.
func (o *reliableOrigin) add(msg string) string {
	o.mu.Lock()
	o.log = append(o.log, msg)
	id := len(o.log)
	o.mu.Unlock()
	prev := ""
	if id > 1 {
		prev = fmt.Sprintf(`,"prev-id":"%d"`, id-1)
	}
	return fmt.Sprintf(`{"items":[{"channel":%q,"id":"%d"%s,"formats":{"http-stream":{"content":%q}}}]}`,
		o.channel, id, prev, msg)
}

// A client streams with prev-id and a next link. Message 3 is published
// after the origin decided the first answer and before Caddy subscribed, so
// no subscriber receives it; later messages are published while the origin
// answers next links slowly. The client still gets every message, in order,
// exactly once.
func TestReliableStreamDeliversEveryMessageInOrderExactlyOnce(t *testing.T) {
	o := &reliableOrigin{t: t, channel: "reliable", linkDelay: 300 * time.Millisecond}
	o.lost = func() { publish(t, o.add("m3\n")) }
	origin := startOrigin(t, o.ServeHTTP)
	loadCaddyfile(t, gripSite(origin.URL, ""))
	publish(t, o.add("m1\n")) // before any client: only the origin's log has them
	publish(t, o.add("m2\n"))

	s := openStream(t, caddyURL+"/rs/start", nil)
	const total = 40
	var want []string
	for i := 1; i <= total; i++ {
		want = append(want, fmt.Sprintf("m%d\n", i))
	}
	waitSubscribers(t, 1)
	for i := 4; i <= total; i++ {
		publish(t, o.add(want[i-1]))
		if i%10 == 0 {
			time.Sleep(100 * time.Millisecond) // let some land during a slow next link, some between
		}
	}
	var got []string
	for range total {
		got = append(got, s.next(t))
	}
	// One more, to show nothing extra was queued before it.
	publish(t, o.add("last\n"))
	got = append(got, s.next(t))
	want = append(want, "last\n")
	if strings.Join(got, "") != strings.Join(want, "") {
		t.Fatalf("the client got\n%q\nwant\n%q", got, want)
	}
	if o.links.Load() == 0 {
		t.Fatal("the next link was never fetched: message 3 cannot have been recovered")
	}
	t.Logf("next links fetched: %d", o.links.Load())
}

// A reply without a hold but with a next link is a page: the pages' bodies
// make up one response, which ends with the page that has no next link.
func TestNextLinkPagesMakeOneResponse(t *testing.T) {
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		if page < 3 {
			w.Header().Set("Grip-Link", fmt.Sprintf("</pages?page=%d>; rel=next", page+1))
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Page", strconv.Itoa(page))
		fmt.Fprintf(w, "page %d\n", page)
	})
	loadCaddyfile(t, gripSite(origin.URL, ""))
	resp, body := get(t, caddyURL+"/pages?page=0", nil)
	if resp.StatusCode != 200 || body != "page 0\npage 1\npage 2\npage 3\n" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Page") != "0" || resp.Header.Get("Grip-Link") != "" {
		t.Errorf("headers: X-Page %q, Grip-Link %q; want the first page's, without Grip-*",
			resp.Header.Get("X-Page"), resp.Header.Get("Grip-Link"))
	}
}

var channelSeq atomic.Int64

// uniqueChannel names a channel no other test (or run of this one) uses:
// the hub outlives each test's config, with its last ids and any update
// scheduled by a first subscription.
func uniqueChannel(t testing.TB, name string) string {
	return fmt.Sprintf("%s-%s-%d", t.Name(), name, channelSeq.Add(1))
}

// hintItem is a publish body with one http-stream hint.
func hintItem(channel string) string {
	return fmt.Sprintf(`{"items":[{"channel":%q,"formats":{"http-stream":{"action":"hint"}}}]}`, channel)
}

// holdOn answers a next link with a stream hold on channel and a next link.
func holdOn(w http.ResponseWriter, channel, body string) {
	w.Header().Set("Grip-Hold", "stream")
	w.Header().Set("Grip-Channel", channel)
	w.Header().Set("Grip-Link", "</next>; rel=next")
	io.WriteString(w, body)
}

func TestStreamHintFetchesNextLinkAndAdoptsItsChannels(t *testing.T) {
	chA, chB := uniqueChannel(t, "a"), uniqueChannel(t, "b") // channels unique to the test: a delayed update must not reach another
	var fetched atomic.Int32
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/next" {
			fetched.Add(1)
			holdOn(w, chB, "moved to b\n")
			return
		}
		holdOn(w, chA, "start\n")
	})
	loadCaddyfile(t, gripSite(origin.URL, "update_on_first_subscription off"))
	s := openStream(t, caddyURL+"/start", nil)
	if got := s.next(t); got != "start\n" {
		t.Fatalf("got %q", got)
	}
	waitSubscribers(t, 1)
	publish(t, hintItem(chA))
	if got := s.next(t); got != "moved to b\n" {
		t.Fatalf("after the hint got %q, want the next link's body", got)
	}
	// Channel a was left and b joined: only b's item arrives.
	publish(t, streamItem(chA, "on a\n"))
	publish(t, streamItem(chB, "on b\n"))
	if got := s.next(t); got != "on b\n" {
		t.Fatalf("got %q, want the item on b", got)
	}
	if n := fetched.Load(); n != 1 {
		t.Errorf("next link fetched %d times, want 1", n)
	}
}

func TestStreamHintWithoutNextLinkChangesNothing(t *testing.T) {
	chA := uniqueChannel(t, "a") // channels unique to the test: a delayed update must not reach another
	asked := 0
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		asked++
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", chA)
		io.WriteString(w, "start\n")
	})
	loadCaddyfile(t, gripSite(origin.URL, ""))
	s := openStream(t, caddyURL+"/start", nil)
	s.next(t)
	waitSubscribers(t, 1)
	publish(t, hintItem(chA))
	publish(t, streamItem(chA, "after\n"))
	if got := s.next(t); got != "after\n" || asked != 1 {
		t.Fatalf("got %q, origin asked %d times; want the item and one request", got, asked)
	}
}

func TestNextLinkRetriedWithBackoffUntilItAnswers(t *testing.T) {
	chA := uniqueChannel(t, "a") // channels unique to the test: a delayed update must not reach another
	var fetched atomic.Int32
	var times []time.Time
	var mu sync.Mutex
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/next" {
			mu.Lock()
			times = append(times, time.Now())
			mu.Unlock()
			if fetched.Add(1) < 3 {
				http.Error(w, "not yet", http.StatusServiceUnavailable)
				return
			}
			holdOn(w, chA, "third time\n")
			return
		}
		holdOn(w, chA, "start\n")
	})
	loadCaddyfile(t, gripSite(origin.URL, "update_on_first_subscription off"))
	s := openStream(t, caddyURL+"/start", nil)
	s.next(t)
	waitSubscribers(t, 1)
	publish(t, hintItem(chA))
	if got := s.next(t); got != "third time\n" {
		t.Fatalf("got %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	// Backoff is 1s·2ⁿ plus jitter: the gaps are at least 1s and 2s.
	if len(times) != 3 || times[1].Sub(times[0]) < time.Second || times[2].Sub(times[1]) < 2*time.Second {
		t.Fatalf("attempts at %v; want 3, at least 1s then 2s apart", times)
	}
}

func TestNextLinkAnsweringAResponseHoldEndsTheStream(t *testing.T) {
	chA := uniqueChannel(t, "a") // channels unique to the test: a delayed update must not reach another
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/next" {
			w.Header().Set("Grip-Hold", "response")
			w.Header().Set("Grip-Channel", chA)
			io.WriteString(w, "not allowed\n")
			return
		}
		holdOn(w, chA, "start\n")
	})
	loadCaddyfile(t, gripSite(origin.URL, "update_on_first_subscription off"))
	s := openStream(t, caddyURL+"/start", nil)
	s.next(t)
	waitSubscribers(t, 1)
	publish(t, hintItem(chA))
	if rest := s.ended(t); len(rest) != 0 {
		t.Fatalf("the stream ended with %q, want nothing more", rest)
	}
	waitSubscribers(t, 0)
}

func TestNextLinkRefetchedWhenAChannelStaysSilent(t *testing.T) {
	chA := uniqueChannel(t, "a") // channels unique to the test: a delayed update must not reach another
	var fetched atomic.Int32
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/next" {
			n := fetched.Add(1)
			w.Header().Set("Grip-Hold", "stream")
			w.Header().Set("Grip-Channel", chA)
			w.Header().Set("Grip-Link", "</next>; rel=next; timeout=1")
			fmt.Fprintf(w, "poll %d\n", n)
			return
		}
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", chA)
		w.Header().Set("Grip-Link", "</next>; rel=next; timeout=1")
		io.WriteString(w, "start\n")
	})
	loadCaddyfile(t, gripSite(origin.URL, "update_on_first_subscription off"))
	s := openStream(t, caddyURL+"/start", nil)
	for _, want := range []string{"start\n", "poll 1\n", "poll 2\n"} {
		if got := s.next(t); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

func TestStreamWithPrevIDButNoNextLinkIs502(t *testing.T) {
	chA := uniqueChannel(t, "a") // channels unique to the test: a delayed update must not reach another
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", chA+"; prev-id=1")
		io.WriteString(w, "start\n")
	})
	loadCaddyfile(t, gripSite(origin.URL, ""))
	resp, body := get(t, caddyURL+"/start", nil)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "channel '"+chA+"' specifies prev-id, but no next link found") {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}

// goneOrigin holds /lp as a long-poll and /stream as a stream, both with a
// gone link, and records each gone POST.
func goneOrigin(t *testing.T, gone chan<- string) string {
	srv := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/gone" {
			b, _ := io.ReadAll(r.Body)
			gone <- r.Method + " " + r.URL.RequestURI() + " " + string(b) + " sig=" + strconv.FormatBool(r.Header.Get("Grip-Sig") != "")
			return
		}
		mode := "response"
		if r.URL.Path == "/stream" {
			mode = "stream"
		}
		w.Header().Set("Grip-Hold", mode)
		w.Header().Set("Grip-Channel", "g-"+mode)
		w.Header().Set("Grip-Link", "</gone?who="+mode+">; rel=gone")
		io.WriteString(w, "held\n")
	})
	return srv.URL
}

func TestGoneLinkIsPostedWhenTheClientLeaves(t *testing.T) {
	gone := make(chan string, 10)
	loadCaddyfile(t, gripSite(goneOrigin(t, gone), "sig_key secret\nupdate_on_first_subscription off"))
	for _, path := range []string{"/stream", "/lp"} {
		t.Run(path, func(t *testing.T) {
			// Cancelling the request drops the connection, as a departing
			// client does.
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, caddyURL+path, nil)
			done := make(chan struct{})
			go func() {
				defer close(done)
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
			waitSubscribers(t, 1)
			cancel()
			mode := strings.TrimPrefix(path, "/")
			if mode == "lp" {
				mode = "response"
			}
			select {
			case got := <-gone:
				if want := "POST /gone?who=" + mode + "  sig=true"; got != want {
					t.Fatalf("gone link got %q, want %q", got, want)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("no gone POST after the client left")
			}
			<-done
			waitSubscribers(t, 0)
		})
	}
}

func TestGoneLinkIsNotPostedWhenTheHoldEndsNormally(t *testing.T) {
	gone := make(chan string, 10)
	loadCaddyfile(t, gripSite(goneOrigin(t, gone), "update_on_first_subscription off"))
	done := getBodyAsync(caddyURL + "/lp")
	waitSubscribers(t, 1)
	publish(t, responseItem("g-response", "answered\n"))
	if got := <-done; got != "answered\n" {
		t.Fatalf("got %q", got)
	}
	// A stream closed by a publish ends normally too; after it, a client
	// that leaves triggers a POST, which must be the only one.
	s := openStream(t, caddyURL+"/stream", nil)
	s.next(t)
	waitSubscribers(t, 1)
	publish(t, `{"items":[{"channel":"g-stream","formats":{"http-stream":{"action":"close"}}}]}`)
	s.ended(t)
	waitSubscribers(t, 0)
	select {
	case got := <-gone:
		t.Fatalf("gone link posted after a normal end: %q", got)
	default:
	}
}

// firstSubOrigin holds /lp on a fresh channel for Grip-Timeout 5 and counts
// requests.
func firstSubOrigin(t *testing.T, asked *atomic.Int32) string {
	return startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		n := asked.Add(1)
		w.Header().Set("Grip-Hold", "response")
		w.Header().Set("Grip-Channel", "first-sub")
		w.Header().Set("Grip-Timeout", "5")
		fmt.Fprintf(w, "timed out after request %d\n", n)
	}).URL
}

func TestUpdateOnFirstSubscriptionReRequestsTheHoldOnce(t *testing.T) {
	for _, tc := range []struct {
		option string
		want   string
	}{
		{"", "timed out after request 2\n"},
		{"update_on_first_subscription off", "timed out after request 1\n"},
	} {
		t.Run(fmt.Sprintf("%q", tc.option), func(t *testing.T) {
			var asked atomic.Int32
			loadCaddyfile(t, gripSite(firstSubOrigin(t, &asked), tc.option))
			_, body := get(t, caddyURL+"/lp", nil)
			if body != tc.want {
				t.Fatalf("got %q, want %q", body, tc.want)
			}
		})
	}
}

func TestUpdateOnFirstSubscriptionFetchesAStreamsNextLink(t *testing.T) {
	var fetched atomic.Int32
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/next" {
			fetched.Add(1)
			holdOn(w, "fresh-stream", "from the next link\n")
			return
		}
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "fresh-stream")
		w.Header().Set("Grip-Link", "</next>; rel=next")
		io.WriteString(w, "start\n")
	})
	loadCaddyfile(t, gripSite(origin.URL, ""))
	s := openStream(t, caddyURL+"/start", nil)
	for _, want := range []string{"start\n", "from the next link\n"} {
		if got := s.next(t); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	publish(t, streamItem("fresh-stream", "then published\n"))
	if got := s.next(t); got != "then published\n" || fetched.Load() != 1 {
		t.Fatalf("got %q after %d fetches; want the item after one fetch", got, fetched.Load())
	}
}

func TestGoneLinkIsPostedWhenTheClientLeavesDuringANextLinkFetch(t *testing.T) {
	chA := uniqueChannel(t, "a")
	gone := make(chan string, 1)
	fetching := make(chan struct{})
	release := make(chan struct{})
	origin := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/gone":
			gone <- r.Method
		case "/next":
			close(fetching)
			<-release
			holdOn(w, chA, "too late\n")
		default:
			w.Header().Set("Grip-Hold", "stream")
			w.Header().Set("Grip-Channel", chA)
			w.Header().Set("Grip-Link", "</next>; rel=next, </gone>; rel=gone")
			io.WriteString(w, "start\n")
		}
	})
	defer close(release)
	loadCaddyfile(t, gripSite(origin.URL, "update_on_first_subscription off"))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, caddyURL+"/start", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	waitSubscribers(t, 1)
	publish(t, hintItem(chA))
	<-fetching
	cancel()
	select {
	case m := <-gone:
		if m != http.MethodPost {
			t.Fatalf("gone link got %s", m)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no gone POST after the client left during a next-link fetch")
	}
}
