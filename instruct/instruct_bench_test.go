package instruct

import (
	"net/http"
	"testing"
)

// plainResponseHeader is a typical non-GRIP origin response of 10 headers.
func plainResponseHeader() http.Header {
	return hdr(
		"Content-Type", "text/html; charset=utf-8",
		"Content-Length", "5120",
		"Cache-Control", "private, max-age=0",
		"Date", "Sat, 22 Nov 2025 02:24:00 GMT",
		"Etag", `"33a64df551425fcc55e4d42a148795d9f25f89d4"`,
		"Last-Modified", "Fri, 21 Nov 2025 11:00:00 GMT",
		"Server", "origin/1.0",
		"Set-Cookie", "session=abc123; Path=/; HttpOnly",
		"Vary", "Accept-Encoding",
		"X-Request-Id", "7f3c9a2e-5b1d-4e8f-9a0c-1d2e3f4a5b6c",
	)
}

// streamInstructHeader is a typical SSE stream instruct.
func streamInstructHeader() http.Header {
	return hdr(
		"Content-Type", "text/event-stream",
		"Cache-Control", "no-cache",
		"Grip-Hold", "stream",
		"Grip-Channel", "news; prev-id=41, sports; prev-id=7",
		"Grip-Keep-Alive", `:\n\n; format=cstring; timeout=20`,
	)
}

func BenchmarkIsGripPlainResponse(b *testing.B) {
	h := plainResponseHeader()
	b.ReportAllocs()
	for b.Loop() {
		if IsGrip(h) {
			b.Fatal("plain response taken for GRIP")
		}
	}
}

func BenchmarkIsGripStreamInstruct(b *testing.B) {
	h := streamInstructHeader()
	b.ReportAllocs()
	for b.Loop() {
		if !IsGrip(h) {
			b.Fatal("GRIP response missed")
		}
	}
}

func BenchmarkParseInstructStream(b *testing.B) {
	h := streamInstructHeader()
	body := []byte("event: hello\ndata: {}\n\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(http.StatusOK, h, body, testReqURL); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseInstructJSON(b *testing.B) {
	h := hdr("Content-Type", jsonType)
	body := []byte(`{"hold":{"mode":"stream","channels":[{"name":"news","prev-id":"41"},{"name":"sports","prev-id":"7"}],` +
		`"keep-alive":{"content":":\n\n","timeout":20}},"response":{"code":200,` +
		`"headers":{"Content-Type":"text/event-stream","Cache-Control":"no-cache"},"body":"event: hello\ndata: {}\n\n"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(http.StatusOK, h, body, testReqURL); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRangeHeaderBaseline is the floor under IsGrip: ranging over the
// same 10-header map and touching each key.
func BenchmarkRangeHeaderBaseline(b *testing.B) {
	h := plainResponseHeader()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for k := range h {
			n += len(k)
		}
	}
	if n == 0 {
		b.Fatal("no headers")
	}
}
