package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestParseEventsReadsTheReadmeExchange(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want []event
	}{
		{"open", "OPEN\r\n", []event{{typ: "OPEN"}}},
		{"text", "TEXT 5\r\nhello\r\n", []event{{typ: "TEXT", content: []byte("hello")}}},
		{"upper-case length", "TEXT B\r\nm:hello all\r\n", []event{{typ: "TEXT", content: []byte("m:hello all")}}},
		{"close 1000 bye", "CLOSE 5\r\n\x03\xe8bye\r\n", []event{{typ: "CLOSE", content: []byte("\x03\xe8bye")}}},
		{"a batch", "TEXT 1\r\na\r\nTEXT 2\r\nbc\r\nDISCONNECT\r\n", []event{
			{typ: "TEXT", content: []byte("a")}, {typ: "TEXT", content: []byte("bc")}, {typ: "DISCONNECT"}}},
		{"content with CRLF", "TEXT 4\r\na\r\nb\r\n", []event{{typ: "TEXT", content: []byte("a\r\nb")}}},
		{"empty body", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseEvents([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseEventsRefusesBadBodies(t *testing.T) {
	for _, body := range []string{
		"OPEN",                // no CRLF
		"TEXT 9\r\nhello\r\n", // longer than the body
		"TEXT 2\r\nhello\r\n", // no CRLF after the content
		"TEXT zz\r\nhi\r\n",   // not hexadecimal
		"TEXT -1\r\nhi\r\n",
		"TEXT ffffffffff\r\n",
	} {
		if evs, err := parseEvents([]byte(body)); err == nil {
			t.Errorf("%q parsed as %q", body, evs)
		}
	}
}

func TestWriteEventWritesWhatParseEventsReads(t *testing.T) {
	var b bytes.Buffer
	writeEvent(&b, "OPEN", nil)
	writeEvent(&b, "TEXT", []byte("m:hello all"))
	writeEvent(&b, "CLOSE", []byte("\x03\xe8bye"))
	if want := "OPEN\r\nTEXT b\r\nm:hello all\r\nCLOSE 5\r\n\x03\xe8bye\r\n"; b.String() != want {
		t.Fatalf("wrote %q, want %q", b.String(), want)
	}
}

func TestChatAcceptsOpenWithTheGripExtension(t *testing.T) {
	o := &origin{publishURL: "http://127.0.0.1:1/publish/", client: http.DefaultClient}
	req := httptest.NewRequest(http.MethodPost, "/chat", strings.NewReader("OPEN\r\n"))
	req.Header.Set("Content-Type", "application/websocket-events")
	rec := httptest.NewRecorder()
	o.chat(rec, req)
	if rec.Code != http.StatusOK || rec.Header().Get("Sec-WebSocket-Extensions") != "grip" ||
		rec.Header().Get("Content-Type") != "application/websocket-events" {
		t.Fatalf("answer %d %v", rec.Code, rec.Header())
	}
	want := "OPEN\r\nTEXT 27\r\nc:{\"type\":\"subscribe\",\"channel\":\"room\"}\r\nTEXT 11\r\nm:welcome to room\r\n"
	if got, _ := io.ReadAll(rec.Body); string(got) != want {
		t.Fatalf("body %q, want %q", got, want)
	}
}

func TestChatRefusesWhatIsNotWebSocketOverHTTP(t *testing.T) {
	o := &origin{}
	for _, req := range []*http.Request{
		httptest.NewRequest(http.MethodGet, "/chat", nil),
		func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/chat", strings.NewReader("TEXT 9\r\nhi\r\n"))
			r.Header.Set("Content-Type", "application/websocket-events")
			return r
		}(),
	} {
		rec := httptest.NewRecorder()
		o.chat(rec, req)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s with %q: %d, want 400", req.Method, req.Header.Get("Content-Type"), rec.Code)
		}
	}
}
