package wsoverhttp

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func ev(t EventType, content string) Event {
	if content == "" {
		return Event{Type: t}
	}
	return Event{Type: t, Content: []byte(content)}
}

// sameEvents compares events by type and content bytes; nil and empty
// content are the same.
func sameEvents(a, b []Event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || !bytes.Equal(a[i].Content, b[i].Content) {
			return false
		}
	}
	return true
}

func TestEventTypeStringIsWireName(t *testing.T) {
	want := map[EventType]string{
		Open: "OPEN", Text: "TEXT", Binary: "BINARY", Ping: "PING",
		Pong: "PONG", Close: "CLOSE", Disconnect: "DISCONNECT",
		0: "EventType(0)", 8: "EventType(8)",
	}
	for typ, name := range want {
		if got := typ.String(); got != name {
			t.Errorf("EventType(%d).String() = %q, want %q", typ, got, name)
		}
	}
}

func TestAppendEventsEncodesLikePushpin(t *testing.T) {
	tests := []struct {
		name   string
		events []Event
		want   string
	}{
		{"text", []Event{ev(Text, "hello world")}, "TEXT b\r\nhello world\r\n"},
		{"empty text keeps its length", []Event{ev(Text, "")}, "TEXT 0\r\n\r\n"},
		{"empty binary keeps its length", []Event{{Type: Binary, Content: []byte{}}}, "BINARY 0\r\n\r\n"},
		{"binary", []Event{{Type: Binary, Content: []byte{0, 1, 0xff}}}, "BINARY 3\r\n\x00\x01\xff\r\n"},
		{"open has no content", []Event{ev(Open, "")}, "OPEN\r\n"},
		{"disconnect has no content", []Event{ev(Disconnect, "")}, "DISCONNECT\r\n"},
		{"ping without payload", []Event{ev(Ping, "")}, "PING\r\n"},
		{"ping with payload", []Event{ev(Ping, "p")}, "PING 1\r\np\r\n"},
		{"pong without payload", []Event{{Type: Pong, Content: []byte{}}}, "PONG\r\n"},
		{"pong with payload", []Event{ev(Pong, "xy")}, "PONG 2\r\nxy\r\n"},
		{"close with code and reason", []Event{CloseEvent(1000, "bye")}, "CLOSE 5\r\n\x03\xe8bye\r\n"},
		{"close with code only", []Event{CloseEvent(1001, "")}, "CLOSE 2\r\n\x03\xe9\r\n"},
		{"close without status", []Event{CloseEvent(-1, "ignored")}, "CLOSE\r\n"},
		{"lowercase hex without padding", []Event{ev(Text, strings.Repeat("x", 0xab))}, "TEXT ab\r\n" + strings.Repeat("x", 0xab) + "\r\n"},
		{"unknown type skipped", []Event{{Type: 0, Content: []byte("x")}, {Type: 99}, ev(Open, "")}, "OPEN\r\n"},
		{"batch", []Event{ev(Text, "a"), ev(Binary, "bc"), ev(Ping, ""), CloseEvent(1000, "")},
			"TEXT 1\r\na\r\nBINARY 2\r\nbc\r\nPING\r\nCLOSE 2\r\n\x03\xe8\r\n"},
		{"nothing", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendEvents(nil, tt.events...))
			if got != tt.want {
				t.Errorf("AppendEvents = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAppendEventsAppendsToDst(t *testing.T) {
	got := AppendEvents([]byte("OPEN\r\n"), ev(Text, "hi"))
	if string(got) != "OPEN\r\nTEXT 2\r\nhi\r\n" {
		t.Errorf("got %q", got)
	}
}

func TestEventsRoundTripEveryType(t *testing.T) {
	events := []Event{
		ev(Open, ""),
		ev(Text, "hello"),
		ev(Text, ""),
		{Type: Binary, Content: []byte{0, '\r', '\n', 0xff}},
		ev(Binary, ""),
		ev(Ping, ""),
		ev(Ping, "ping-data"),
		ev(Pong, ""),
		ev(Pong, "pong-data"),
		CloseEvent(1000, "normal"),
		CloseEvent(4000, ""),
		CloseEvent(-1, ""),
		ev(Disconnect, ""),
		ev(Text, "TEXT 5\r\nfake\r\n"), // content that looks like framing
	}
	body := AppendEvents(nil, events...)
	got, err := ParseEvents(body, 0)
	if err != nil {
		t.Fatalf("ParseEvents(%q): %v", body, err)
	}
	if !sameEvents(got, events) {
		t.Errorf("round trip:\n got %v\nwant %v", got, events)
	}
}

func TestParseEventsVectors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []Event
	}{
		{"empty body", "", nil},
		{"open", "OPEN\r\n", []Event{ev(Open, "")}},
		{"text", "TEXT 5\r\nHello\r\n", []Event{ev(Text, "Hello")}},
		// Vector of the GRIP client libraries' decoders.
		{"mixed batch", "OPEN\r\nTEXT 5\r\nHello\r\nTEXT 0\r\n\r\nCLOSE\r\nTEXT\r\nCLOSE\r\n",
			[]Event{ev(Open, ""), ev(Text, "Hello"), ev(Text, ""), ev(Close, ""), ev(Text, ""), ev(Close, "")}},
		{"lowercase hex", "TEXT b\r\nhello world\r\n", []Event{ev(Text, "hello world")}},
		{"uppercase hex", "TEXT B\r\nhello world\r\n", []Event{ev(Text, "hello world")}},
		{"mixed-case hex with leading zeros", "BINARY 00Aa\r\n" + strings.Repeat("z", 0xaa) + "\r\n",
			[]Event{ev(Binary, strings.Repeat("z", 0xaa))}},
		{"content holding CRLF", "TEXT 4\r\n\r\n\r\n\r\n", []Event{ev(Text, "\r\n\r\n")}},
		{"close with code and reason", "CLOSE 5\r\n\x03\xe8bye\r\n", []Event{CloseEvent(1000, "bye")}},
		{"ping and pong with and without content", "PING\r\nPONG 1\r\nx\r\nPING 2\r\nab\r\nPONG\r\n",
			[]Event{ev(Ping, ""), ev(Pong, "x"), ev(Ping, "ab"), ev(Pong, "")}},
		{"disconnect", "DISCONNECT\r\n", []Event{ev(Disconnect, "")}},
		{"unknown type skipped", "OPEN\r\nKEEP-ALIVE\r\nTEXT 1\r\na\r\n", []Event{ev(Open, ""), ev(Text, "a")}},
		{"unknown type with content skipped", "FOO 3\r\nbar\r\nTEXT 1\r\na\r\n", []Event{ev(Text, "a")}},
		{"type names are case-sensitive", "text 1\r\na\r\nOPEN\r\n", []Event{ev(Open, "")}},
		{"blank line is an unknown type", "OPEN\r\n\r\n", []Event{ev(Open, "")}},
		{"only unknown types", "NOPE\r\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEvents([]byte(tt.body), 0)
			if err != nil {
				t.Fatalf("ParseEvents(%q): %v", tt.body, err)
			}
			if !sameEvents(got, tt.want) {
				t.Errorf("ParseEvents(%q)\n got %v\nwant %v", tt.body, got, tt.want)
			}
		})
	}
}

func TestParseEventsRejectsMalformedBodies(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		max     int
		offset  int
		problem string
	}{
		{"truncated header", "TEXT 5", 0, 0, "no CRLF"},
		{"truncated second header", "OPEN\r\nTEXT", 0, 6, "no CRLF"},
		{"header ends with CR only", "OPEN\r", 0, 0, "no CRLF"},
		{"LF-only line endings", "OPEN\nTEXT 1\na\n", 0, 0, "no CRLF"},
		{"short content", "TEXT 5\r\nHel", 0, 0, "content truncated"},
		{"length larger than body", "TEXT ffff\r\nHello\r\n", 0, 0, "content truncated"},
		{"missing CRLF after content", "TEXT 5\r\nHello", 0, 13, "missing CRLF"},
		{"half CRLF after content", "TEXT 5\r\nHello\r", 0, 13, "missing CRLF"},
		{"wrong bytes after content", "TEXT 5\r\nHelloXX", 0, 13, "missing CRLF"},
		{"length too small", "TEXT 3\r\nHello\r\n", 0, 11, "missing CRLF"},
		{"second event truncated", "OPEN\r\nTEXT 2\r\na", 0, 6, "content truncated"},
		{"empty length", "TEXT \r\n\r\n", 0, 0, "bad content length"},
		{"non-hex length", "TEXT xyz\r\nabc\r\n", 0, 0, "bad content length"},
		{"0x prefix", "TEXT 0x5\r\nHello\r\n", 0, 0, "bad content length"},
		{"negative length", "TEXT -1\r\n\r\n", 0, 0, "bad content length"},
		{"plus sign", "TEXT +5\r\nHello\r\n", 0, 0, "bad content length"},
		{"two spaces", "TEXT  5\r\nHello\r\n", 0, 0, "bad content length"},
		{"trailing space", "TEXT 5 \r\nHello\r\n", 0, 0, "bad content length"},
		{"huge length", "TEXT fffffffffffffffffffff\r\n", 0, 0, "too large"},
		{"garbage", "\x00\x01garbage", 0, 0, "no CRLF"},
		{"garbage with space", "hello world\r\n", 0, 0, "bad content length"},
		{"oversize", "TEXT 6\r\nabcdef\r\n", 5, 0, "exceeds the limit of 5"},
		{"oversize second event", "TEXT 1\r\na\r\nBINARY 100000\r\n", 65536, 11, "exceeds the limit"},
		{"oversize unknown type", "FOO 10\r\n0123456789abcdef\r\n", 8, 0, "exceeds the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEvents([]byte(tt.body), tt.max)
			if err == nil {
				t.Fatalf("ParseEvents(%q) = %v, want error", tt.body, got)
			}
			if got != nil {
				t.Errorf("events returned with error: %v", got)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is %T, want *ParseError", err, err)
			}
			if pe.Offset != tt.offset {
				t.Errorf("offset = %d, want %d (%v)", pe.Offset, tt.offset, err)
			}
			if !strings.Contains(err.Error(), tt.problem) {
				t.Errorf("error %q does not mention %q", err, tt.problem)
			}
		})
	}
}

func TestParseEventsAcceptsContentAtTheLimit(t *testing.T) {
	body := AppendEvents(nil, ev(Text, "abcde"))
	if _, err := ParseEvents(body, 5); err != nil {
		t.Errorf("5-byte event with limit 5: %v", err)
	}
}

func TestParseEventsContentAliasesBodyWithoutCapacity(t *testing.T) {
	body := []byte("TEXT 2\r\nab\r\nTEXT 2\r\ncd\r\n")
	got, err := ParseEvents(body, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Appending to one event's content must not overwrite the next record.
	_ = append(got[0].Content, 'X')
	if string(got[1].Content) != "cd" || string(body) != "TEXT 2\r\nab\r\nTEXT 2\r\ncd\r\n" {
		t.Errorf("append to content clobbered the body: %q", body)
	}
}

func TestCloseEventAndCloseCode(t *testing.T) {
	tests := []struct {
		name       string
		event      Event
		wantCode   int
		wantReason string
		wantOK     bool
	}{
		{"code and reason", CloseEvent(1000, "bye"), 1000, "bye", true},
		{"code only", CloseEvent(1011, ""), 1011, "", true},
		{"max code", CloseEvent(0xffff, "x"), 0xffff, "x", true},
		{"utf-8 reason", CloseEvent(4001, "au revoir, été"), 4001, "au revoir, été", true},
		{"no status", CloseEvent(-1, "dropped"), 0, "", false},
		{"code out of range", CloseEvent(70000, ""), 0, "", false},
		{"one content byte", Event{Type: Close, Content: []byte{3}}, 0, "", false},
		{"not a close", ev(Text, "\x03\xe8"), 0, "", false},
		{"invalid utf-8 reason replaced", Event{Type: Close, Content: []byte{3, 0xe8, 'a', 0xff, 'b'}}, 1000, "a\uFFFDb", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, reason, ok := tt.event.CloseCode()
			if code != tt.wantCode || reason != tt.wantReason || ok != tt.wantOK {
				t.Errorf("CloseCode() = (%d, %q, %v), want (%d, %q, %v)",
					code, reason, ok, tt.wantCode, tt.wantReason, tt.wantOK)
			}
		})
	}
}

func TestCloseRoundTripWithAndWithoutReason(t *testing.T) {
	for _, in := range []Event{CloseEvent(1000, "going away now"), CloseEvent(1000, ""), CloseEvent(-1, "")} {
		got, err := ParseEvents(AppendEvents(nil, in), 0)
		if err != nil || len(got) != 1 {
			t.Fatalf("parse: %v %v", got, err)
		}
		c1, r1, ok1 := in.CloseCode()
		c2, r2, ok2 := got[0].CloseCode()
		if c1 != c2 || r1 != r2 || ok1 != ok2 {
			t.Errorf("close %v: got (%d,%q,%v) want (%d,%q,%v)", in, c2, r2, ok2, c1, r1, ok1)
		}
	}
}

func threeEventBatch() []Event {
	return []Event{
		ev(Text, `{"type":"message","text":"hello, world"}`),
		{Type: Binary, Content: bytes.Repeat([]byte{0xab}, 256)},
		CloseEvent(1000, "done"),
	}
}

func BenchmarkAppendEvents(b *testing.B) {
	events := threeEventBatch()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEvents(buf[:0], events...)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkParseEvents(b *testing.B) {
	body := AppendEvents(nil, threeEventBatch()...)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEvents(body, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}
