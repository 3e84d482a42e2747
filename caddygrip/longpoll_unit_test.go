package caddygrip

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-grip/grip/instruct"
)

// holdResult is how a request served through grip ended.
type holdResult struct {
	err     error
	aborted bool // the handler aborted the response (panic ErrAbortHandler)
}

// serveHold serves r through g in front of origin on its own goroutine,
// writing to w, and reports how ServeHTTP ended. An abort is recovered as
// net/http recovers it.
func serveHold(g *Grip, w http.ResponseWriter, r *http.Request, origin caddyhttp.Handler) <-chan holdResult {
	out := make(chan holdResult, 1)
	go func() {
		var res holdResult
		defer func() {
			if v := recover(); v != nil {
				if v != http.ErrAbortHandler {
					panic(v)
				}
				res.aborted = true
			}
			out <- res
		}()
		res.err = g.ServeHTTP(w, r, origin)
	}()
	return out
}

// longPoll serves a GET of target and returns the recorder, to read once
// the channel says the handler returned.
func longPoll(g *Grip, origin caddyhttp.Handler, r *http.Request) (*httptest.ResponseRecorder, <-chan holdResult) {
	w := httptest.NewRecorder()
	return w, serveHold(g, w, r, origin)
}

func wantServed(t *testing.T, res holdResult) {
	t.Helper()
	if res.err != nil || res.aborted {
		t.Fatalf("ServeHTTP ended with %v (aborted %v), want a response", res.err, res.aborted)
	}
}

func wantNoGripHeaders(t *testing.T, h http.Header) {
	t.Helper()
	for k := range h {
		if instruct.IsGripHeader(k) {
			t.Errorf("client got origin header %s: %q", k, h[k])
		}
	}
}

func TestUnitLongPollIsAnsweredByAPublishedResponse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, p := gripAndPublisher(t)
		origin := always(caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
			w.Header().Set("Content-Length", "9")
			return answerGrip(w, "timed out", "Grip-Hold", "response", "Grip-Channel", "c", "X-Origin", "kept")
		}))
		w, done := longPoll(g, origin, httptest.NewRequest(http.MethodGet, "/poll", nil))
		synctest.Wait() // held
		if len(done) != 0 {
			t.Fatal("the long-poll answered before anything was published")
		}
		publishItems(t, p, `{"channel":"c","formats":{"http-response":{"code":201,"headers":{"X-Pub":"yes"},"body":"published\n"}}}`)
		wantServed(t, <-done)
		if w.Code != http.StatusCreated || w.Body.String() != "published\n" {
			t.Fatalf("client got %d %q, want the published 201", w.Code, w.Body)
		}
		if w.Header().Get("X-Pub") != "yes" || w.Header().Get("X-Origin") != "kept" {
			t.Errorf("headers %v: want the published ones over the held ones", w.Header())
		}
		if cl := w.Header().Get("Content-Length"); cl != "" {
			t.Errorf("client got the origin's Content-Length %s for another body", cl)
		}
		wantNoGripHeaders(t, w.Header())
		if n := len(origin.got()); n != 1 {
			t.Errorf("origin got %d requests, want 1", n)
		}
	})
}

func TestUnitLongPollTimeoutAnswersWithTheHeldResponse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := unitGrip(t, nil)
		origin := gripAnswers("nothing new\n", "Grip-Hold", "response", "Grip-Channel", "c", "Grip-Timeout", "7", "Grip-Status", "202 Waited")
		start := time.Now()
		w, done := longPoll(g, origin, httptest.NewRequest(http.MethodGet, "/poll", nil))
		wantServed(t, <-done)
		if waited := time.Since(start); waited != 7*time.Second {
			t.Errorf("answered after %v, want the 7s Grip-Timeout", waited)
		}
		if w.Code != http.StatusAccepted || w.Body.String() != "nothing new\n" {
			t.Fatalf("client got %d %q, want the held 202 body", w.Code, w.Body)
		}
		wantNoGripHeaders(t, w.Header())
		wantNoSubscribers(t, g)
	})
}

func TestUnitLongPollHintReRequestsTheOriginWithGripLast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, p := gripAndPublisher(t)
		origin := newStubOrigin(func(n int, _ originCall, w http.ResponseWriter) error {
			if n == 0 {
				return answerGrip(w, "old\n", "Grip-Hold", "response", "Grip-Channel", "c; prev-id=5")
			}
			return answerGrip(w, "fresh\n")
		})
		r := httptest.NewRequest(http.MethodGet, "/poll?since=5", nil)
		r.Header.Set("X-Client", "1")
		r.Header.Set("Grip-Last", "forged; last-id=x") // from the client: never reaches the origin
		w, done := longPoll(g, origin, r)
		synctest.Wait()
		publishItems(t, p, `{"channel":"c","formats":{"http-response":{"action":"hint"}}}`)
		wantServed(t, <-done)
		if w.Code != http.StatusOK || w.Body.String() != "fresh\n" {
			t.Fatalf("client got %d %q, want the re-request's answer", w.Code, w.Body)
		}
		calls := origin.got()
		if len(calls) != 2 {
			t.Fatalf("origin got %q, want the request and one re-request", origin.uris())
		}
		if got := calls[0].header.Values("Grip-Last"); len(got) != 0 {
			t.Errorf("first request carries Grip-Last %q", got)
		}
		re := calls[1]
		if re.uri != "/poll?since=5" || re.header.Get("X-Client") != "1" {
			t.Errorf("re-request %s %v, want the client's request again", re.uri, re.header)
		}
		if got := re.header.Values("Grip-Last"); !slices.Equal(got, []string{"c; last-id=5"}) {
			t.Errorf("re-request Grip-Last %q, want the channel's prev-id", got)
		}
	})
}

func TestUnitLongPollBehindTheChannelOrAfterAGapIsReRequested(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, p := gripAndPublisher(t)
		publishItems(t, p, `{"channel":"c","id":"6","prev-id":"5","formats":{"http-response":{"body":"six\n"}}}`)
		origin := newStubOrigin(func(n int, _ originCall, w http.ResponseWriter) error {
			switch n {
			case 0:
				return answerGrip(w, "", "Grip-Hold", "response", "Grip-Channel", "c; prev-id=5")
			case 1:
				return answerGrip(w, "", "Grip-Hold", "response", "Grip-Channel", "c; prev-id=6")
			}
			return answerGrip(w, "seven and eight\n")
		})
		w, done := longPoll(g, origin, httptest.NewRequest(http.MethodGet, "/poll", nil))
		synctest.Wait()
		if n := len(origin.got()); n != 2 {
			t.Fatalf("origin got %d requests, want a re-request for the missed item 6", n)
		}
		// 8 does not follow 6: the client lacks 7, so back to the origin.
		publishItems(t, p, `{"channel":"c","id":"8","prev-id":"7","formats":{"http-response":{"body":"eight\n"}}}`)
		wantServed(t, <-done)
		calls := origin.got()
		if len(calls) != 3 || w.Body.String() != "seven and eight\n" {
			t.Fatalf("origin got %d requests, client %q: want a re-request for the gap before 8", len(calls), w.Body)
		}
		if got := calls[2].header.Get("Grip-Last"); got != "c; last-id=6" {
			t.Errorf("gap re-request Grip-Last %q, want the last id the client has", got)
		}
	})
}

func TestUnitLongPollClientLeavingPostsTheGoneLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := unitGrip(t, nil)
		origin := holdThenGone("", "Grip-Hold", "response", "Grip-Channel", "c", "Grip-Link", "</left?who=me>; rel=gone")
		ctx, leave := context.WithCancel(context.Background())
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/poll", nil)
		_, done := longPoll(g, origin, r)
		synctest.Wait()
		leave()
		wantServed(t, <-done)
		g.sessions.Wait() // the gone POST runs in the background
		if got := origin.uris(); !slices.Equal(got, []string{"GET /poll", "POST /left?who=me"}) {
			t.Fatalf("origin got %q, want the gone link posted once", got)
		}
		wantNoSubscribers(t, g)
	})
}

func TestUnitLongPollReRequestsStopAfterFiveAndHoldSettled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, p := gripAndPublisher(t)
		origin := gripAnswers("held\n", "Grip-Hold", "response", "Grip-Channel", "c", "Grip-Timeout", "30")
		start := time.Now()
		w, done := longPoll(g, origin, httptest.NewRequest(http.MethodGet, "/poll", nil))
		for range maxRetries + 2 {
			synctest.Wait()
			publishItems(t, p, `{"channel":"c","formats":{"http-response":{"action":"hint"}}}`)
		}
		wantServed(t, <-done)
		if n := len(origin.got()); n != 1+maxRetries {
			t.Errorf("origin got %d requests, want 1 and %d re-requests", n, maxRetries)
		}
		if waited := time.Since(start); waited != 30*time.Second || w.Body.String() != "held\n" {
			t.Errorf("answered %q after %v, want the held body at the timeout", w.Body, waited)
		}
	})
}
