package wsoverhttp

import (
	"bytes"
	"testing"
)

// Seeds shared by the fuzzers live in testdata/fuzz/<FuzzName>/ as well; these
// in-code seeds keep the interesting shapes next to the property they test.

func FuzzParseEvents(f *testing.F) {
	for _, s := range []string{
		"",
		"OPEN\r\n",
		"TEXT b\r\nhello world\r\n",
		"OPEN\r\nTEXT 5\r\nHello\r\nTEXT 0\r\n\r\nCLOSE\r\nTEXT\r\nCLOSE\r\n",
		"BINARY 3\r\n\x00\r\n\r\n",
		"PING\r\nPONG 1\r\nx\r\nDISCONNECT\r\n",
		"CLOSE 5\r\n\x03\xe8bye\r\n",
		"FOO 3\r\nbar\r\nTEXT A\r\n0123456789\r\n",
		"TEXT 5\r\nHel",
		"TEXT fffffffffffffffff\r\n",
		"\r\n\r\n",
	} {
		f.Add([]byte(s), 0)
	}
	f.Add([]byte("TEXT 6\r\nabcdef\r\n"), 5)

	f.Fuzz(func(t *testing.T, body []byte, max int) {
		events, err := ParseEvents(body, max)
		if err != nil {
			if events != nil {
				t.Fatalf("events %v returned with error %v", events, err)
			}
			return
		}
		for _, e := range events {
			if !e.Type.valid() {
				t.Fatalf("parsed an unknown type %v", e.Type)
			}
			if max > 0 && len(e.Content) > max {
				t.Fatalf("content of %d bytes passed the limit %d", len(e.Content), max)
			}
		}
		again, err := ParseEvents(AppendEvents(nil, events...), max)
		if err != nil {
			t.Fatalf("re-encoded events do not parse: %v", err)
		}
		if !sameEvents(events, again) {
			t.Fatalf("round trip changed the events:\nfirst  %v\nsecond %v", events, again)
		}
		// Encoding is canonical: a second round trip gives the same bytes.
		b1 := AppendEvents(nil, events...)
		b2 := AppendEvents(nil, again...)
		if !bytes.Equal(b1, b2) {
			t.Fatalf("encoding not stable: %q vs %q", b1, b2)
		}
	})
}

func FuzzParseControl(f *testing.F) {
	for _, s := range []string{
		`{"type":"subscribe","channel":"ch","filters":["skip-self"]}`,
		`{"type":"unsubscribe","channel":"ch"}`,
		`{"type":"detach"}`,
		`{"type":"set-meta","name":"user","value":"alice"}`,
		`{"type":"set-meta","name":"user"}`,
		`{"type":"keep-alive","content":"{}","message-type":"text","timeout":30,"mode":"interval"}`,
		`{"type":"keep-alive","content-bin":"AAEC","message-type":"binary"}`,
		`{"type":"send-delayed","message-type":"text","content":"x","timeout":1}`,
		`{"type":"flush-delayed"}`,
		`{"type":"session","id":"abc"}`,
		`{"type":"keep-alive","content":"x","timeout":-1e308}`,
		`[1,2]`,
		`null`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := ParseControl(payload)
		if (c == nil) == (err == nil) {
			t.Fatalf("ParseControl(%q) = %v, %v: want exactly one of control or error", payload, c, err)
		}
		if err != nil {
			return
		}
		if c.Timeout < 0 {
			t.Fatalf("negative timeout %v", c.Timeout)
		}
		if (c.Type == ControlSubscribe || c.Type == ControlUnsubscribe) && c.Channel == "" {
			t.Fatalf("%s without channel accepted", c.Type)
		}
		if c.Type == ControlSetMeta && c.Name == "" {
			t.Fatalf("set-meta without name accepted")
		}
	})
}
