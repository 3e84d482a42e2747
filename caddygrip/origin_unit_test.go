package caddygrip

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/caddy-grip/grip/wsoverhttp"
)

const unitSigKey = "s3cret"

// wantSigned checks that every request the origin got carries a Grip-Sig
// that verified with unitSigKey when it came, was not forged by the client, and
// that the client's other Grip-* headers were dropped.
func wantSigned(t *testing.T, calls []originCall) {
	t.Helper()
	for i, c := range calls {
		tok := c.header.Get("Grip-Sig")
		_, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte(unitSigKey), nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(defaultSigIss), jwt.WithExpirationRequired(),
			jwt.WithTimeFunc(func() time.Time { return c.at }))
		if err != nil {
			t.Errorf("request %d (%s %s): Grip-Sig %q does not verify: %v", i, c.method, c.uri, tok, err)
		}
		if c.header.Get("Grip-Hold") != "" || c.header.Get("Grip-Last") == "forged" {
			t.Errorf("request %d carries the client's Grip-* headers: %v", i, c.header)
		}
	}
}

// forgeGrip adds what a client must not get through to the origin.
func forgeGrip(h http.Header) {
	h.Set("Grip-Sig", "forged")
	h.Set("Grip-Hold", "stream")
	h.Set("Grip-Last", "forged")
}

func TestUnitOriginRequestsOfAStreamAreSignedAndStripped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := unitGrip(t, func(g *Grip) { g.SigKey = unitSigKey })
		p := unitPublisher(t, g)
		origin := newStubOrigin(func(_ int, c originCall, w http.ResponseWriter) error {
			switch c.uri {
			case "/s":
				return answerGrip(w, "", "Grip-Hold", "stream", "Grip-Channel", "c",
					"Grip-Link", "</next>; rel=next", "Grip-Link", "</gone>; rel=gone")
			case "/next":
				return answerGrip(w, "", "Grip-Hold", "stream", "Grip-Channel", "c")
			}
			return nil
		})
		ctx, leave := context.WithCancel(context.Background())
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/s", nil)
		forgeGrip(r.Header)
		r.Header.Set("Accept-Encoding", "gzip")
		done := serveHold(g, newStallWriter(), r, origin)
		synctest.Wait()
		// Hours later, past any one token's life, each request is signed anew.
		time.Sleep(3 * time.Hour)
		publishItems(t, p, `{"channel":"c","formats":{"http-stream":{"action":"hint"}}}`)
		synctest.Wait()
		time.Sleep(3 * time.Hour)
		leave()
		wantServed(t, <-done)
		g.sessions.Wait()
		calls := origin.got()
		if got := origin.uris(); !slices.Equal(got, []string{"GET /s", "GET /next", "POST /gone"}) {
			t.Fatalf("origin got %q", got)
		}
		wantSigned(t, calls)
		first := calls[0].header
		if first.Get("Accept-Encoding") != "" || first.Get("Grip-Feature") != gripFeatures {
			t.Errorf("first request headers %v: want no Accept-Encoding and our Grip-Feature", first)
		}
	})
}

func TestUnitOriginRequestsOfAWebSocketAreSigned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := unitGrip(t, func(g *Grip) { g.SigKey = unitSigKey })
		origin := wsEcho()
		ps := servePipe(t, g, origin)
		h := http.Header{}
		forgeGrip(h)
		conn, _, err := ps.dialer.Dial("ws://grip.test/chat", h)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// A reader answers the session's pings, which keep it open for hours.
		got := make(chan string, 1)
		go func() {
			defer close(got)
			for {
				_, msg, err := conn.ReadMessage()
				if err != nil {
					return
				}
				got <- string(msg)
			}
		}()
		time.Sleep(2 * time.Hour)
		if err := conn.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		if msg := <-got; msg != "echo hi" {
			t.Fatalf("client got %q", msg)
		}
		time.Sleep(2 * time.Hour)
		conn.NetConn().Close()
		<-got
		g.sessions.Wait()
		wantEvents(t, origin, "OPEN", "TEXT hi", "DISCONNECT")
		wantSigned(t, origin.got())
	})
}

func TestUnitOriginReRequestThatAbortsOrPanicsIs502(t *testing.T) {
	for _, tc := range []struct {
		name  string
		panic any
		want  string
	}{
		{"abort", http.ErrAbortHandler, "origin request aborted"},
		{"panic", "boom", "origin request panicked: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g, p := gripAndPublisher(t)
				origin := newStubOrigin(func(n int, _ originCall, w http.ResponseWriter) error {
					if n > 0 {
						panic(tc.panic) // as reverse_proxy aborts a broken upstream
					}
					return answerGrip(w, "", "Grip-Hold", "response", "Grip-Channel", "c")
				})
				w, done := longPoll(g, origin, httptest.NewRequest(http.MethodGet, "/poll", nil))
				synctest.Wait()
				publishItems(t, p, `{"channel":"c","formats":{"http-response":{"action":"hint"}}}`)
				wantServed(t, <-done)
				if w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), tc.want) {
					t.Fatalf("client got %d %q, want a 502 saying %q", w.Code, w.Body, tc.want)
				}
			})
		})
	}
}

func TestUnitOriginOpenFailureIs502(t *testing.T) {
	g, _ := unitGrip(t, nil)
	origin := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		return errors.New("upstream down")
	})
	err := g.ServeHTTP(httptest.NewRecorder(), wsHandshake("/chat"), origin)
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != http.StatusBadGateway {
		t.Fatalf("ServeHTTP returned %v, want a 502 handler error for handle_errors", err)
	}
}

func TestUnitTrustedUpstreamGetsGripAnswersUnprocessed(t *testing.T) {
	g, _ := unitGrip(t, func(g *Grip) { g.UpstreamKey = "up" })
	tok := craft(t, jwt.SigningMethodHS256, []byte("up"), jwt.MapClaims{"iss": "front", "exp": time.Now().Add(time.Hour).Unix()})
	origin := gripAnswers("instructions", "Grip-Hold", "response", "Grip-Channel", "c")
	for _, tc := range []struct {
		name, sig string
		trusted   bool
	}{
		{"signed by the upstream key", tok, true},
		{"forged", "forged", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/poll", nil)
			r.Header.Set("Grip-Sig", tc.sig)
			r.Header.Set("Grip-Last", "c; last-id=1")
			w := httptest.NewRecorder()
			if !tc.trusted {
				// Held until the timeout; the request's end settles it.
				ctx, cancel := context.WithCancel(context.Background())
				r = r.WithContext(ctx)
				cancel()
			}
			serveOnce(t, g, w, r, origin)
			last := origin.got()[len(origin.got())-1]
			if tc.trusted {
				if w.Header().Get("Grip-Hold") != "response" || w.Body.String() != "instructions" ||
					last.header.Get("Grip-Last") != "c; last-id=1" {
					t.Fatalf("trusted client got %v %q; origin got %v: want everything passed through", w.Header(), w.Body, last.header)
				}
				return
			}
			if w.Header().Get("Grip-Hold") != "" || last.header.Get("Grip-Last") != "" || last.header.Get("Grip-Sig") == "forged" {
				t.Fatalf("untrusted client got %v; origin got %v", w.Header(), last.header)
			}
		})
	}
}

func TestUnitClientSendingWebSocketEventsIsRefused(t *testing.T) {
	g, _ := unitGrip(t, nil)
	origin := always(caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		return answerEvents(w, []wsoverhttp.Event{{Type: wsoverhttp.Open}})
	}))
	r := httptest.NewRequest(http.MethodPost, "/chat", strings.NewReader("OPEN\r\n"))
	r.Header.Set("Content-Type", wsoverhttp.ContentType)
	w := httptest.NewRecorder()
	serveOnce(t, g, w, r, origin)
	if w.Code != http.StatusForbidden || len(origin.got()) != 0 {
		t.Fatalf("client got %d %q, origin %d requests: want 403 and nothing forwarded", w.Code, w.Body, len(origin.got()))
	}
}
