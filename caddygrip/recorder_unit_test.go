package caddygrip

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// serveOnce serves one request through g and origin on this goroutine.
func serveOnce(t *testing.T, g *Grip, w http.ResponseWriter, r *http.Request, origin caddyhttp.Handler) {
	t.Helper()
	if err := g.ServeHTTP(w, r, origin); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
}

func TestUnitRecorderPassesOrdinaryResponsesThroughUnbuffered(t *testing.T) {
	g, _ := unitGrip(t, nil)
	w := newFakeWriter()
	var seenEarly string
	var flushesEarly int
	origin := caddyhttp.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) error {
		rw.Header().Set("Link", "</style.css>; rel=preload")
		rw.WriteHeader(http.StatusEarlyHints)
		rw.Header().Set("Content-Type", "text/plain")
		rw.Header().Set("X-Plain", "1")
		rw.WriteHeader(http.StatusNonAuthoritativeInfo)
		_, _ = io.WriteString(rw, "first ")
		if err := http.NewResponseController(rw).Flush(); err != nil {
			return err
		}
		seenEarly, flushesEarly = w.body.String(), w.flushes
		_, err := rw.(io.ReaderFrom).ReadFrom(strings.NewReader("then the rest")) // sendfile's path
		return err
	})
	serveOnce(t, g, w, httptest.NewRequest(http.MethodGet, "/page", nil), origin)
	if !slices.Equal(w.statuses, []int{http.StatusEarlyHints, http.StatusNonAuthoritativeInfo}) {
		t.Errorf("statuses %v, want the 103 then the 203", w.statuses)
	}
	if seenEarly != "first " || flushesEarly != 1 {
		t.Errorf("before the origin finished the client had %q after %d flushes, want the first write flushed", seenEarly, flushesEarly)
	}
	if w.body.String() != "first then the rest" || !w.readFrom || w.header.Get("X-Plain") != "1" {
		t.Errorf("client got %q (ReadFrom %v) %v", w.body.String(), w.readFrom, w.header)
	}
}

func TestUnitRecorderBuffersAGripAnswerWithoutFlushingIt(t *testing.T) {
	g, _ := unitGrip(t, nil)
	w := newFakeWriter()
	var seen string
	var flushes int
	origin := caddyhttp.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) error {
		rw.Header().Set("Content-Type", "application/grip-instruct")
		_, _ = io.WriteString(rw, `{"response":{"code":200,"headers":{"X-From":"instruct"},`)
		_ = http.NewResponseController(rw).Flush()
		seen, flushes = w.body.String(), w.flushes
		_, err := io.WriteString(rw, `"body":"from the instruct\n"}}`)
		return err
	})
	serveOnce(t, g, w, httptest.NewRequest(http.MethodGet, "/", nil), origin)
	if seen != "" || flushes != 0 {
		t.Errorf("the client had %q after %d flushes while the GRIP body was read", seen, flushes)
	}
	if w.body.String() != "from the instruct\n" || w.header.Get("X-From") != "instruct" || w.header.Get("Content-Type") == "application/grip-instruct" {
		t.Errorf("client got %q %v, want the instruct's response", w.body.String(), w.header)
	}
}

func TestUnitRecorderRefusesBadInstructionsWith502(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		hdr        []string
		body       string
	}{
		{"unknown hold mode", "Grip-Hold", []string{"Grip-Hold", "forever", "Grip-Channel", "c"}, "secret origin body"},
		{"stream prev-id without next link", "channel 'c' specifies prev-id, but no next link found",
			[]string{"Grip-Hold", "stream", "Grip-Channel", "c; prev-id=1"}, "secret origin body"},
		{"bad timeout", "Grip-Timeout", []string{"Grip-Hold", "response", "Grip-Channel", "c", "Grip-Timeout", "soon"}, "secret origin body"},
		{"instruct over max_instruct_size", "GRIP instruct response too large (over 64 bytes)",
			[]string{"Grip-Hold", "response", "Grip-Channel", "c"}, strings.Repeat("b", 65)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, logs := unitGrip(t, func(g *Grip) { g.MaxInstructSize = 64 })
			w := httptest.NewRecorder()
			origin := caddyhttp.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) error {
				return answerGrip(rw, tc.body, tc.hdr...)
			})
			serveOnce(t, g, w, httptest.NewRequest(http.MethodGet, "/", nil), origin)
			body := w.Body.String()
			if w.Code != http.StatusBadGateway || !strings.HasPrefix(body, "Error while proxying to origin: ") ||
				!strings.Contains(body, tc.want) || strings.Contains(body, "secret") {
				t.Fatalf("client got %d %q, want a 502 naming %q", w.Code, body, tc.want)
			}
			wantNoGripHeaders(t, w.Header())
			if logs.FilterMessage("invalid GRIP instructions from origin").Len() != 1 {
				t.Errorf("logs %v, want the error logged", logs.All())
			}
			if n := g.ref.hub.Stats().Subscribers; n != 0 {
				t.Errorf("%d subscribers left", n)
			}
		})
	}
}
