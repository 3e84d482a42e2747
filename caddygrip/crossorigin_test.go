package caddygrip

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// corsHeaders is the Access-Control-* and Vary part of h.
func corsHeaders(h http.Header) http.Header {
	out := http.Header{}
	for k, v := range h {
		if strings.HasPrefix(k, "Access-Control-") || k == "Vary" {
			out[k] = v
		}
	}
	return out
}

func TestCORSHeadersAddOnlyWhatTheResponseLacks(t *testing.T) {
	defaults := http.Header{
		"Access-Control-Allow-Methods":     {"OPTIONS, HEAD, GET, POST, PUT, DELETE"},
		"Access-Control-Allow-Credentials": {"true"},
		"Access-Control-Allow-Origin":      {"*"},
		"Access-Control-Max-Age":           {"3600"},
	}
	with := func(extra http.Header) http.Header {
		h := defaults.Clone()
		for k, v := range extra {
			if v == nil {
				delete(h, k)
				continue
			}
			h[k] = v
		}
		return h
	}
	tests := []struct {
		name          string
		request, resp http.Header
		want          http.Header // Access-Control-* and Vary afterwards
	}{
		{
			name: "no request headers, simple response",
			resp: http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"3"}},
			want: defaults,
		},
		{
			name: "non-simple response headers are exposed, sorted, less Grip-* and Access-Control-*",
			resp: http.Header{
				"X-B": {"1"}, "X-A": {"2", "3"}, "Etag": {`"x"`}, "Grip-Hold": {"stream"},
				"Cache-Control": {"no-cache"}, "Content-Language": {"en"}, "Expires": {"0"},
				"Last-Modified": {"x"}, "Pragma": {"no-cache"}, "Access-Control-Foo": {"y"},
			},
			want: with(http.Header{"Access-Control-Expose-Headers": {"Etag, X-A, X-B"}, "Access-Control-Foo": {"y"}}),
		},
		{
			name:    "request method, headers and origin are reflected",
			request: http.Header{"Access-Control-Request-Method": {"PUT"}, "Access-Control-Request-Headers": {"X-One, ,x-two", "X-Three"}, "Origin": {"https://a.example"}},
			want: with(http.Header{
				"Access-Control-Allow-Methods": {"PUT"},
				"Access-Control-Allow-Headers": {"X-One, x-two, X-Three"},
				"Access-Control-Allow-Origin":  {"https://a.example"},
				"Vary":                         {"Origin"},
			}),
		},
		{
			name:    "origin-set headers win, even empty ones",
			request: http.Header{"Origin": {"https://a.example"}, "Access-Control-Request-Headers": {"X-One"}},
			resp: http.Header{
				"Access-Control-Allow-Origin":   {"https://b.example"},
				"Access-Control-Max-Age":        {"10"},
				"Access-Control-Allow-Headers":  {""},
				"Access-Control-Expose-Headers": {"X-Only"},
				"X-Other":                       {"1"},
			},
			want: with(http.Header{
				"Access-Control-Allow-Origin":   {"https://b.example"},
				"Access-Control-Max-Age":        {"10"},
				"Access-Control-Allow-Headers":  {""},
				"Access-Control-Expose-Headers": {"X-Only"},
			}),
		},
		{
			name:    "an echoed origin joins an existing Vary once",
			request: http.Header{"Origin": {"https://a.example"}},
			resp:    http.Header{"Vary": {"Accept-Encoding"}},
			want: with(http.Header{
				"Access-Control-Allow-Origin":   {"https://a.example"},
				"Access-Control-Expose-Headers": {"Vary"},
				"Vary":                          {"Accept-Encoding", "Origin"},
			}),
		},
		{
			name:    "Vary that already names origin is left alone",
			request: http.Header{"Origin": {"https://a.example"}},
			resp:    http.Header{"Vary": {"origin"}},
			want: with(http.Header{
				"Access-Control-Allow-Origin":   {"https://a.example"},
				"Access-Control-Expose-Headers": {"Vary"},
				"Vary":                          {"origin"},
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.resp.Clone()
			if h == nil {
				h = http.Header{}
			}
			newCORSRequest(tt.request).apply(h)
			if got := corsHeaders(h); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

// fakeWriter records what reaches the client's writer, and can be flushed,
// hijacked and given deadlines.
type fakeWriter struct {
	header   http.Header
	statuses []int
	body     strings.Builder
	flushes  int
	hijacked bool
	deadline time.Time
	readFrom bool
	// headersAt is a copy of the header map at each WriteHeader.
	headersAt []http.Header
}

func newFakeWriter() *fakeWriter { return &fakeWriter{header: http.Header{}} }

func (f *fakeWriter) Header() http.Header { return f.header }
func (f *fakeWriter) WriteHeader(s int) {
	f.statuses = append(f.statuses, s)
	f.headersAt = append(f.headersAt, f.header.Clone())
}
func (f *fakeWriter) Write(p []byte) (int, error) { return f.body.Write(p) }
func (f *fakeWriter) FlushError() error           { f.flushes++; return nil }
func (f *fakeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	f.hijacked = true
	return nil, nil, nil
}
func (f *fakeWriter) SetWriteDeadline(t time.Time) error { f.deadline = t; return nil }
func (f *fakeWriter) ReadFrom(r io.Reader) (int64, error) {
	f.readFrom = true
	return io.Copy(&f.body, r)
}

func TestCORSWriterAddsHeadersWithTheFinalStatus(t *testing.T) {
	fw := newFakeWriter()
	cw := &corsWriter{ResponseWriter: fw, cors: newCORSRequest(http.Header{"Origin": {"https://a.example"}})}
	cw.WriteHeader(http.StatusEarlyHints)
	cw.Header().Set("X-Late", "1")
	cw.WriteHeader(http.StatusTeapot)
	if got := fw.statuses; !reflect.DeepEqual(got, []int{103, 418}) {
		t.Fatalf("statuses %v", got)
	}
	if got := fw.headersAt[0].Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("1xx response got CORS headers: %q", got)
	}
	at := fw.headersAt[1]
	if at.Get("Access-Control-Allow-Origin") != "https://a.example" || at.Get("Access-Control-Expose-Headers") != "X-Late" {
		t.Errorf("final status headers %v", at)
	}
	if err := cw.finish(); err != nil || len(fw.statuses) != 2 {
		t.Errorf("finish after the status: %v, statuses %v", err, fw.statuses)
	}
}

func TestCORSWriterImplicitStatusGetsHeaders(t *testing.T) {
	tests := []struct {
		name string
		do   func(*corsWriter)
	}{
		{"Write", func(cw *corsWriter) { cw.Write([]byte("x")) }},
		{"ReadFrom", func(cw *corsWriter) { cw.ReadFrom(strings.NewReader("x")) }},
		{"Flush", func(cw *corsWriter) { http.NewResponseController(cw).Flush() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fw := newFakeWriter()
			cw := &corsWriter{ResponseWriter: fw, cors: newCORSRequest(nil)}
			tt.do(cw)
			if len(fw.statuses) != 1 || fw.statuses[0] != 200 || fw.headersAt[0].Get("Access-Control-Max-Age") != "3600" {
				t.Errorf("statuses %v headers %v", fw.statuses, fw.headersAt)
			}
		})
	}
}

func TestCORSWriterPassesControlThrough(t *testing.T) {
	fw := newFakeWriter()
	cw := &corsWriter{ResponseWriter: fw, cors: newCORSRequest(nil)}
	rc := http.NewResponseController(cw)
	cw.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil || fw.flushes != 1 {
		t.Errorf("flush: %v, %d flushes", err, fw.flushes)
	}
	if _, _, err := rc.Hijack(); err != nil || !fw.hijacked {
		t.Errorf("hijack: %v, hijacked %v", err, fw.hijacked)
	}
	d := time.Unix(1, 0)
	if err := rc.SetWriteDeadline(d); err != nil || !fw.deadline.Equal(d) {
		t.Errorf("deadline: %v, %v", err, fw.deadline)
	}
	cw.ReadFrom(strings.NewReader("body"))
	if !fw.readFrom || fw.body.String() != "body" {
		t.Errorf("ReadFrom did not reach the client's writer")
	}
}

func TestCORSWriterFinishLeavesHeadersForAnUnwrittenResponse(t *testing.T) {
	rec := httptest.NewRecorder()
	cw := &corsWriter{ResponseWriter: rec, cors: newCORSRequest(nil)}
	cw.finish()
	if rec.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("headers %v", rec.Header())
	}
}

func TestCrossOriginPicksTheWriter(t *testing.T) {
	wsHeader := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}
	tests := []struct {
		name       string
		method     string
		target     string
		header     http.Header
		jsonp      *JSONP
		wantJSONP  bool
		wantStatus int // of a refusal
	}{
		{name: "plain GET", method: "GET", target: "/p?x=1"},
		{name: "POST naming a callback", method: "POST", target: "/p?callback=cb"},
		{name: "GET naming a callback", method: "GET", target: "/p?callback=cb", wantJSONP: true},
		{name: "custom callback parameter", method: "GET", target: "/p?cb=f", jsonp: &JSONP{Callback: "cb"}, wantJSONP: true},
		{name: "WebSocket handshake naming a callback", method: "GET", target: "/p?callback=cb", header: wsHeader},
		{name: "bad parameter", method: "GET", target: "/p?callback=", wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, nil)
			for k, v := range tt.header {
				r.Header[k] = v
			}
			rec := httptest.NewRecorder()
			w, r2, finish, err := crossOrigin(rec, r, tt.jsonp)
			var je *JSONPError
			switch {
			case tt.wantStatus != 0:
				if !errors.As(err, &je) || je.Status != tt.wantStatus {
					t.Fatalf("err %v", err)
				}
				je.respond(w)
				finish()
				if rec.Code != 400 || rec.Body.String() != "Invalid callback parameter.\n" ||
					rec.Header().Get("Content-Type") != "text/plain" || rec.Header().Get("Access-Control-Allow-Origin") != "*" {
					t.Errorf("refusal %d %v %q", rec.Code, rec.Header(), rec.Body.String())
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			_, isJSONP := w.(*jsonpWriter)
			if isJSONP != tt.wantJSONP {
				t.Errorf("JSON-P writer %v, want %v", isJSONP, tt.wantJSONP)
			}
			if !tt.wantJSONP && r2 != r {
				t.Errorf("request rewritten")
			}
		})
	}
}

func TestJSONPWriterBuffersAndRefusesHijack(t *testing.T) {
	fw := newFakeWriter()
	fw.header.Set("Server", "Caddy")
	jw := newJSONPWriter(fw, &jsonpCall{callback: "cb", extended: true})
	rc := http.NewResponseController(jw)
	jw.Header().Set("Content-Type", "text/plain")
	jw.Header().Set("Cache-Control", "no-cache")
	jw.Header().Set("X-A", "1")
	jw.WriteHeader(http.StatusEarlyHints)
	jw.WriteHeader(http.StatusNotFound)
	jw.Write([]byte("held\n"))
	if err := rc.Flush(); err != nil {
		t.Errorf("flush: %v", err)
	}
	if _, _, err := rc.Hijack(); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("hijack: %v", err)
	}
	if len(fw.statuses) != 0 || fw.body.Len() != 0 || fw.flushes != 0 || fw.hijacked {
		t.Fatalf("reached the client before finish: %v %q", fw.statuses, fw.body.String())
	}
	if err := jw.finish(); err != nil {
		t.Fatal(err)
	}
	want := `/**/cb({"code": 404, "reason": "Not Found", "headers": {"Cache-Control":"no-cache","Content-Type":"text/plain","Server":"Caddy","X-A":"1"}, "body": "held\n"});` + "\n"
	if fw.body.String() != want {
		t.Errorf("body\n got %s\nwant %s", fw.body.String(), want)
	}
	h := fw.headersAt[0]
	wantHeader := http.Header{
		"Server":         {"Caddy"},
		"Cache-Control":  {"no-cache"},
		"Content-Type":   {"application/javascript"},
		"Content-Length": {strconv.Itoa(len(want))},
	}
	if !reflect.DeepEqual(fw.statuses, []int{200}) || !reflect.DeepEqual(h, wantHeader) {
		t.Errorf("status %v header %v", fw.statuses, h)
	}
}

func TestJSONPWriterSendsNothingWhenNothingWasWritten(t *testing.T) {
	fw := newFakeWriter()
	jw := newJSONPWriter(fw, &jsonpCall{callback: "cb"})
	jw.finish()
	if len(fw.statuses) != 0 || fw.body.Len() != 0 {
		t.Errorf("wrote %v %q", fw.statuses, fw.body.String())
	}
}

func TestJSONPWriterAnswers500PastTheLimit(t *testing.T) {
	rec := httptest.NewRecorder()
	jw := newJSONPWriter(rec, &jsonpCall{callback: "cb"})
	chunk := make([]byte, 64<<10)
	for range maxJSONPBody/len(chunk) + 1 {
		if n, err := jw.Write(chunk); n != len(chunk) || err != nil {
			t.Fatalf("write: %d %v", n, err)
		}
	}
	jw.finish()
	if rec.Code != 500 || rec.Body.String() != "Upstream response could not be JSON-P encoded.\n" {
		t.Errorf("%d %q", rec.Code, rec.Body.String())
	}
}
