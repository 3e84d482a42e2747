package caddygrip

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gorilla/websocket"

	"github.com/caddy-grip/grip/hub"
)

// text is what the client has received so far.
func (w *stallWriter) text() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.body.String()
}

// stream serves a GET of target through g to w, a writer that cannot be
// hijacked, so the stream stays on the handler goroutine; cancel makes the
// client leave.
func stream(g *Grip, w *stallWriter, target string, origin caddyhttp.Handler) (done <-chan holdResult, cancel context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	return serveHold(g, w, httptest.NewRequestWithContext(ctx, http.MethodGet, target, nil), origin), cancel
}

// settle lets the hub's wake pacing run out and every goroutine of the
// bubble block: a publish right after another is delivered one wake
// interval later.
func settle() {
	time.Sleep(hub.DefaultWakeInterval)
	synctest.Wait()
}

func wantText(t *testing.T, w *stallWriter, want string) {
	t.Helper()
	settle()
	if got := w.text(); got != want {
		t.Fatalf("client has\n%q\nwant\n%q", got, want)
	}
}

const closeStream = `{"channel":"c","formats":{"http-stream":{"action":"close"}}}`

func TestUnitStreamDeliversPublishedContentAndIdleKeepAlives(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, p := gripAndPublisher(t)
		origin := always(caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
			w.Header().Set("Content-Type", "text/event-stream")
			return answerGrip(w, "event: start\n\n", "Grip-Hold", "stream", "Grip-Channel", "c",
				"Grip-Keep-Alive", `:ka\n\n; format=cstring; timeout=20`)
		}))
		w := newStallWriter()
		done, _ := stream(g, w, "/sse", origin)
		wantText(t, w, "event: start\n\n")
		if ct := w.Header().Get("Content-Type"); ct != "text/event-stream" {
			t.Errorf("Content-Type %q", ct)
		}
		wantNoGripHeaders(t, w.Header())

		publishItems(t, p, streamItem("c", "1", "data: one\n\n"))
		wantText(t, w, "event: start\n\ndata: one\n\n")
		time.Sleep(15 * time.Second)
		wantText(t, w, "event: start\n\ndata: one\n\n")
		publishItems(t, p, streamItem("c", "2", "data: two\n\n")) // restarts the idle timer
		time.Sleep(10 * time.Second)
		wantText(t, w, "event: start\n\ndata: one\n\ndata: two\n\n")
		time.Sleep(10 * time.Second) // 20s idle, less up to a second of jitter
		wantText(t, w, "event: start\n\ndata: one\n\ndata: two\n\n:ka\n\n")
		time.Sleep(18 * time.Second)
		wantText(t, w, "event: start\n\ndata: one\n\ndata: two\n\n:ka\n\n")
		time.Sleep(2 * time.Second)
		wantText(t, w, "event: start\n\ndata: one\n\ndata: two\n\n:ka\n\n:ka\n\n")

		publishItems(t, p, closeStream)
		wantServed(t, <-done)
		wantNoSubscribers(t, g)
	})
}

func TestUnitStreamIntervalKeepAlivesRunThroughSends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, p := gripAndPublisher(t)
		origin := gripAnswers("", "Grip-Hold", "stream", "Grip-Channel", "c", "Grip-Keep-Alive", "k; timeout=10; mode=interval")
		w := newStallWriter()
		done, _ := stream(g, w, "/s", origin)
		synctest.Wait()
		for range 3 {
			time.Sleep(5 * time.Second)
			publishItems(t, p, streamItem("c", "", "x"))
		}
		time.Sleep(15*time.Second + time.Millisecond) // 30s in all: at least two in 10s periods less jitter
		synctest.Wait()
		if got := w.text(); strings.Count(got, "k") < 2 || strings.Count(got, "x") != 3 {
			t.Fatalf("client has %q, want keep-alives every ~10s whatever was sent", got)
		}
		publishItems(t, p, closeStream)
		wantServed(t, <-done)
	})
}

func TestUnitStreamHeaderHoldSendsTheInitialBodyUnbuffered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, p := gripAndPublisher(t)
		more := make(chan struct{})
		origin := always(caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
			w.Header().Set("Grip-Hold", "stream")
			w.Header().Set("Grip-Channel", "c")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("part one\n"))
			_ = http.NewResponseController(w).Flush()
			<-more
			_, err := w.Write([]byte("part two\n"))
			return err
		}))
		w := newStallWriter()
		done, _ := stream(g, w, "/s", origin)
		wantText(t, w, "part one\n") // before the origin finished
		// Subscribed before the client saw anything: this is not lost.
		publishItems(t, p, streamItem("c", "", "published\n"))
		close(more)
		wantText(t, w, "part one\npart two\npublished\n")
		publishItems(t, p, closeStream)
		wantServed(t, <-done)
	})
}

func TestUnitStreamSlowClientIsCutAndTheGoneLinkPosted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, p := gripAndPublisher(t)
		origin := holdThenGone("", "Grip-Hold", "stream", "Grip-Channel", "c", "Grip-Link", "</gone>; rel=gone")
		w := newStallWriter()
		done, _ := stream(g, w, "/s", origin)
		synctest.Wait()
		w.broken.Store(true)
		publishItems(t, p, streamItem("c", "", "x"))
		if res := <-done; !res.aborted {
			t.Fatalf("ServeHTTP ended with %v, want the response aborted, so that the client cannot take it for complete", res.err)
		}
		g.sessions.Wait()
		if got := origin.uris(); !slices.Equal(got, []string{"GET /s", "POST /gone"}) {
			t.Fatalf("origin got %q, want the gone link posted", got)
		}
		if st := g.ref.hub.Stats(); st.SlowDisconnects != 1 || st.Subscribers != 0 {
			t.Fatalf("hub stats %+v, want one slow disconnect and no subscriber left", st)
		}
	})
}

func TestUnitStreamClientLeavingPostsTheGoneLinkOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := unitGrip(t, nil)
		origin := holdThenGone("hi\n", "Grip-Hold", "stream", "Grip-Channel", "c", "Grip-Link", "</gone?id=1>; rel=gone")
		w := newStallWriter()
		done, leave := stream(g, w, "/s", origin)
		synctest.Wait()
		leave()
		wantServed(t, <-done)
		g.sessions.Wait()
		if got := origin.uris(); !slices.Equal(got, []string{"GET /s", "POST /gone?id=1"}) {
			t.Fatalf("origin got %q, want the gone link posted once", got)
		}
	})
}

func TestUnitStreamFollowsNextLinksOnHintsAndGaps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, p := gripAndPublisher(t)
		origin := newStubOrigin(func(n int, c originCall, w http.ResponseWriter) error {
			switch c.uri {
			case "/s":
				return answerGrip(w, "one\n", "Grip-Hold", "stream", "Grip-Channel", "c; prev-id=1",
					"Grip-Link", "</next?after=1>; rel=next")
			case "/next?after=1":
				return answerGrip(w, "two\n", "Grip-Hold", "stream", "Grip-Channel", "c; prev-id=2",
					"Grip-Link", "</next?after=3>; rel=next")
			case "/next?after=3":
				return answerGrip(w, "four\nend\n") // no hold, no next link: the end
			}
			w.WriteHeader(http.StatusNotFound)
			return nil
		})
		w := newStallWriter()
		done, _ := stream(g, w, "/s", origin)
		wantText(t, w, "one\n")
		publishItems(t, p, `{"channel":"c","formats":{"http-stream":{"action":"hint"}}}`)
		wantText(t, w, "one\ntwo\n")
		publishItems(t, p, `{"channel":"c","id":"3","prev-id":"2","formats":{"http-stream":{"content":"three\n"}}}`)
		wantText(t, w, "one\ntwo\nthree\n")
		// 5 does not follow 3: once the hub's sequencer has waited for 4
		// (seconds, of virtual time), the next link brings what is missing.
		publishItems(t, p, `{"channel":"c","id":"5","prev-id":"4","formats":{"http-stream":{"content":"five\n"}}}`)
		wantServed(t, <-done)
		if got := w.text(); got != "one\ntwo\nthree\nfour\nend\n" {
			t.Fatalf("client got %q", got)
		}
		calls := origin.got()
		if got := origin.uris(); !slices.Equal(got, []string{"GET /s", "GET /next?after=1", "GET /next?after=3"}) {
			t.Fatalf("origin got %q", got)
		}
		for i, want := range []string{"", "c; last-id=1", "c; last-id=3"} {
			if got := calls[i].header.Get("Grip-Last"); got != want {
				t.Errorf("request %d: Grip-Last %q, want %q", i, got, want)
			}
		}
	})
}

func TestUnitStreamNextLinkIsRetriedWithBackOff(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fails int
		body  string
	}{
		{"answered on the third try", 2, "start\nnext\n"},
		{"failing five times ends the stream", 5, "start\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g, logs := unitGrip(t, nil)
				p := unitPublisher(t, g)
				origin := newStubOrigin(func(n int, c originCall, w http.ResponseWriter) error {
					switch {
					case n == 0:
						return answerGrip(w, "start\n", "Grip-Hold", "stream", "Grip-Channel", "c",
							"Grip-Link", "</next>; rel=next")
					case n <= tc.fails:
						w.WriteHeader(http.StatusServiceUnavailable)
						return nil
					}
					return answerGrip(w, "next\n")
				})
				w := newStallWriter()
				done, _ := stream(g, w, "/s", origin)
				synctest.Wait()
				start := time.Now()
				publishItems(t, p, `{"channel":"c","formats":{"http-stream":{"action":"hint"}}}`)
				wantServed(t, <-done)
				waited := time.Since(start)
				// 1s, 2s, 4s, 8s between tries, each with up to a second of
				// jitter, as in Pushpin.
				var lo time.Duration
				for _, d := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}[:min(tc.fails, 4)] {
					lo += d
				}
				hi := lo + time.Duration(min(tc.fails, 4))*time.Second
				if waited < lo || waited >= hi {
					t.Errorf("the tries took %v, want between %v and %v", waited, lo, hi)
				}
				if n := len(origin.got()); n != 1+min(tc.fails+1, 5) { // five tries in all
					t.Errorf("origin got %d requests", n)
				}
				if got := w.text(); got != tc.body {
					t.Errorf("client got %q, want %q", got, tc.body)
				}
				failed := logs.FilterMessage("next link failed; ending the stream").Len()
				if want := tc.fails == 5; (failed == 1) != want {
					t.Errorf("%d lines say the link failed", failed)
				}
			})
		})
	}
}

func TestUnitStreamPagesFollowNextLinksWithoutAHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := unitGrip(t, nil)
		origin := newStubOrigin(func(_ int, c originCall, w http.ResponseWriter) error {
			switch c.uri {
			case "/pages":
				return answerGrip(w, "page 1\n", "Grip-Link", "</pages?n=2>; rel=next")
			case "/pages?n=2":
				return answerGrip(w, "page 2\n", "Grip-Link", "</pages?n=3>; rel=next")
			}
			return answerGrip(w, "page 3\n")
		})
		w := newStallWriter()
		done, _ := stream(g, w, "/pages", origin)
		wantServed(t, <-done)
		if got := w.text(); got != "page 1\npage 2\npage 3\n" {
			t.Fatalf("client got %q, want the pages one after the other", got)
		}
		wantNoSubscribers(t, g)
	})
}

func TestUnitStreamFromAJSONInstructStartsWithItsBody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, p := gripAndPublisher(t)
		origin := gripAnswers(`{"hold":{"mode":"stream","channels":[{"name":"c"}]},"response":{"headers":{"Content-Type":"text/plain"},"body":"json start\n"}}`,
			"Content-Type", "application/grip-instruct")
		w := newStallWriter()
		done, _ := stream(g, w, "/s", origin)
		wantText(t, w, "json start\n")
		publishItems(t, p, streamItem("c", "", "more\n"))
		wantText(t, w, "json start\nmore\n")
		if ct := w.Header().Get("Content-Type"); ct != "text/plain" {
			t.Errorf("Content-Type %q, want the instruct's", ct)
		}
		publishItems(t, p, closeStream)
		wantServed(t, <-done)
	})
}

func TestUnitExitDrainEndsEveryHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := unitGrip(t, nil)
		origin := holdOrigin()
		poll, polled := longPoll(g, origin, httptest.NewRequest(http.MethodGet, "/poll", nil))
		sw := newStallWriter()
		streamed, _ := stream(g, sw, "/s", origin)
		conn := servePipe(t, g, origin).dialWS(t, "/ws")
		defer conn.Close()
		// The client reads, as a kernel's socket buffer would take the close.
		read := make(chan error, 1)
		go func() {
			_, _, err := conn.ReadMessage()
			read <- err
		}()
		synctest.Wait()
		start := time.Now()
		g.drain()
		if waited := time.Since(start); waited != 0 {
			t.Errorf("drain took %v", waited)
		}
		wantServed(t, <-polled)
		if poll.Body.String() != "timeout\n" {
			t.Errorf("long-poll got %q, want its held response at once", poll.Body)
		}
		if res := <-streamed; res.aborted || res.err != nil {
			t.Errorf("stream ended with %v (aborted %v), want a clean end", res.err, res.aborted)
		}
		if err := <-read; !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Errorf("WebSocket read %v, want close 1001", err)
		}
		g.sessions.Wait()
		wantEvents(t, origin, "OPEN", "DISCONNECT")
	})
}

func TestUnitLongPollIsUpdatedASecondAfterTheChannelsFirstSubscription(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := newTestGrip(t) // update_on_first_subscription on, as by default
		origin := newStubOrigin(func(n int, _ originCall, w http.ResponseWriter) error {
			if n == 0 {
				return answerGrip(w, "", "Grip-Hold", "response", "Grip-Channel", "c")
			}
			return answerGrip(w, "what was published meanwhile\n")
		})
		start := time.Now()
		w, done := longPoll(g, origin, httptest.NewRequest(http.MethodGet, "/poll", nil))
		wantServed(t, <-done)
		calls := origin.got()
		if len(calls) != 2 || calls[1].at.Sub(start) != firstSubscriptionDelay || w.Body.String() != "what was published meanwhile\n" {
			t.Fatalf("origin got %q, the second after %v; client %q: want a re-request a second after subscribing",
				origin.uris(), calls[len(calls)-1].at.Sub(start), w.Body)
		}
	})
}
