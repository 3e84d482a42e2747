package formats

import (
	"fmt"
	"strings"
	"testing"
)

// wireFault says why an accepted item could not be sent to every subscriber
// as it is, or "" when it can.
func wireFault(it *Item) string {
	switch {
	case len(it.Channel) > DefaultMaxChannelLen:
		return "channel too long"
	case len(it.ID) > DefaultMaxIDLen, len(it.PrevID) > DefaultMaxIDLen:
		return "id too long"
	}
	if f := it.HTTPResponse; f != nil && f.Action == ActionSend {
		if f.Code < 200 || f.Code > 999 {
			return fmt.Sprintf("status %d", f.Code)
		}
		for _, h := range f.Headers {
			if checkHeader(h) != nil {
				return fmt.Sprintf("header %q: %q", h.Name, h.Value)
			}
		}
	}
	if f := it.WSMessage; f != nil {
		if (f.Type == "ping" || f.Type == "pong") && len(f.Content) > 125 {
			return "control payload over 125 bytes"
		}
		if f.Action == ActionClose && (len(f.Reason) > 123 || f.Code != 0 && !wireCloseCode(f.Code)) {
			return fmt.Sprintf("close %d with %d-byte reason", f.Code, len(f.Reason))
		}
	}
	return ""
}

func TestDecodePublishRefusesWhatCannotGoOnTheWire(t *testing.T) {
	const (
		hr = "'http-response' "
		ws = "'ws-message' "
		it = "publish item object "
	)
	long := func(n int) string { return strings.Repeat("a", n) }
	cases := []struct {
		name, item, want string
	}{
		{"ping content 126 bytes", `{"channel":"c","formats":{"ws-message":{"type":"ping","content":"` + long(126) + `"}}}`,
			ws + "contains ping content of 126 bytes, over the 125 a control frame holds"},
		{"pong content-bin 126 bytes", `{"channel":"c","formats":{"ws-message":{"type":"pong","content-bin":"` + strings.Repeat("AAAA", 42) + `"}}}`,
			ws + "contains pong content of 126 bytes, over the 125 a control frame holds"},
		{"close reason 124 bytes", `{"channel":"c","formats":{"ws-message":{"action":"close","code":1000,"reason":"` + long(124) + `"}}}`,
			ws + "contains 'reason' of 124 bytes, over the 123 a close frame holds"},
		{"close code 999", `{"channel":"c","formats":{"ws-message":{"action":"close","code":999}}}`,
			ws + "contains 'code' 999 not allowed in a close frame (RFC 6455 7.4)"},
		{"close code 1004", `{"channel":"c","formats":{"ws-message":{"action":"close","code":1004}}}`,
			ws + "contains 'code' 1004 not allowed in a close frame (RFC 6455 7.4)"},
		{"close code 1005", `{"channel":"c","formats":{"ws-message":{"action":"close","code":1005}}}`,
			ws + "contains 'code' 1005 not allowed in a close frame (RFC 6455 7.4)"},
		{"close code 1006", `{"channel":"c","formats":{"ws-message":{"action":"close","code":1006}}}`,
			ws + "contains 'code' 1006 not allowed in a close frame (RFC 6455 7.4)"},
		{"close code 1015", `{"channel":"c","formats":{"ws-message":{"action":"close","code":1015}}}`,
			ws + "contains 'code' 1015 not allowed in a close frame (RFC 6455 7.4)"},
		{"close code 2999", `{"channel":"c","formats":{"ws-message":{"action":"close","code":2999}}}`,
			ws + "contains 'code' 2999 not allowed in a close frame (RFC 6455 7.4)"},
		{"close code 5000", `{"channel":"c","formats":{"ws-message":{"action":"close","code":5000}}}`,
			ws + "contains 'code' 5000 not allowed in a close frame (RFC 6455 7.4)"},
		{"close code 65535", `{"channel":"c","formats":{"ws-message":{"action":"close","code":65535}}}`,
			ws + "contains 'code' 65535 not allowed in a close frame (RFC 6455 7.4)"},
		{"response code 0", `{"channel":"c","formats":{"http-response":{"code":0,"body":"x"}}}`, hr + "contains 'code' with invalid value"},
		{"response code 1", `{"channel":"c","formats":{"http-response":{"code":1,"body":"x"}}}`, hr + "contains 'code' with invalid value"},
		{"response code 99", `{"channel":"c","formats":{"http-response":{"code":99,"body":"x"}}}`, hr + "contains 'code' with invalid value"},
		{"response code 100", `{"channel":"c","formats":{"http-response":{"code":100,"body":"x"}}}`, hr + "contains 'code' with invalid value"},
		{"response code 199", `{"channel":"c","formats":{"http-response":{"code":199,"body":"x"}}}`, hr + "contains 'code' with invalid value"},
		{"response code 1000", `{"channel":"c","formats":{"http-response":{"code":1000,"body":"x"}}}`, hr + "contains 'code' with invalid value"},
		{"header value NUL", `{"channel":"c","formats":{"http-response":{"headers":{"X-A":"a\u0000b"},"body":"x"}}}`,
			"headers contains 'X-A' with a control byte in its value"},
		{"header value CR LF", `{"channel":"c","formats":{"http-response":{"headers":[["X-A","a\r\nSet-Cookie: x=1"]],"body":"x"}}}`,
			"headers contains 'X-A' with a control byte in its value"},
		{"header value DEL", `{"channel":"c","formats":{"http-response":{"headers":[["X-A","a\u007f"]],"body":"x"}}}`,
			"headers contains 'X-A' with a control byte in its value"},
		{"header name with LF", `{"channel":"c","formats":{"http-response":{"headers":[["X-A\nB","v"]],"body":"x"}}}`,
			`headers contains name "X-A\nB" that is not a valid field name`},
		{"header name with NUL", `{"channel":"c","formats":{"http-response":{"headers":{"X\u0000":"v"},"body":"x"}}}`,
			`headers contains name "X\x00" that is not a valid field name`},
		{"header name with space", `{"channel":"c","formats":{"http-response":{"headers":{"X A":"v"},"body":"x"}}}`,
			`headers contains name "X A" that is not a valid field name`},
		{"header name empty", `{"channel":"c","formats":{"http-response":{"headers":[["","v"]],"body":"x"}}}`,
			"headers contains an empty name"},
		{"channel over 1024 bytes", `{"channel":"` + long(1025) + `","formats":{"http-stream":{"content":"x"}}}`,
			it + "contains 'channel' longer than 1024 bytes"},
		{"id over 1024 bytes", `{"channel":"c","id":"` + long(1025) + `","formats":{"http-stream":{"content":"x"}}}`,
			it + "contains 'id' longer than 1024 bytes"},
		{"prev-id over 1024 bytes", `{"channel":"c","prev-id":"` + long(1025) + `","formats":{"http-stream":{"content":"x"}}}`,
			it + "contains 'prev-id' longer than 1024 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			items, err := DecodePublish([]byte(`{"items":[` + tc.item + `]}`))
			if err == nil {
				t.Fatalf("accepted, items %+v", items[0])
			}
			if want := "Invalid format: item 0: " + tc.want; publishErrText(t, err) != want {
				t.Errorf("error %q\nwant  %q", publishErrText(t, err), want)
			}
		})
	}
}

func TestDecodePublishAcceptsWhatFitsTheWire(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	cases := []struct{ name, item string }{
		{"ping content 125 bytes", `{"channel":"c","formats":{"ws-message":{"type":"ping","content":"` + long(125) + `"}}}`},
		{"close reason 123 bytes", `{"channel":"c","formats":{"ws-message":{"action":"close","code":1000,"reason":"` + long(123) + `"}}}`},
		{"close without code", `{"channel":"c","formats":{"ws-message":{"action":"close"}}}`},
		{"close code 1000", `{"channel":"c","formats":{"ws-message":{"action":"close","code":1000}}}`},
		{"close code 1003", `{"channel":"c","formats":{"ws-message":{"action":"close","code":1003}}}`},
		{"close code 1007", `{"channel":"c","formats":{"ws-message":{"action":"close","code":1007}}}`},
		{"close code 1014", `{"channel":"c","formats":{"ws-message":{"action":"close","code":1014}}}`},
		{"close code 3000", `{"channel":"c","formats":{"ws-message":{"action":"close","code":3000}}}`},
		{"close code 4999", `{"channel":"c","formats":{"ws-message":{"action":"close","code":4999}}}`},
		{"response code 200", `{"channel":"c","formats":{"http-response":{"code":200,"body":"x"}}}`},
		{"response code 999", `{"channel":"c","formats":{"http-response":{"code":999,"body":"x"}}}`},
		{"header value with tab and obs-text", `{"channel":"c","formats":{"http-response":{"headers":{"X-A":"a\tb\u00e9"},"body":"x"}}}`},
		{"channel of 1024 bytes", `{"channel":"` + long(1024) + `","id":"` + long(1024) + `","formats":{"http-stream":{"content":"x"}}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodePublish([]byte(`{"items":[` + tc.item + `]}`)); err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

func TestDecodePublishLimitsAreConfigurable(t *testing.T) {
	body := []byte(`{"items":[{"channel":"abcdef","id":"1234","formats":{"http-stream":{"content":"x"}}}]}`)
	cases := []struct {
		name string
		lim  DecodeLimits
		want string
	}{
		{"defaults", DecodeLimits{}, ""},
		{"channel cap at its length", DecodeLimits{MaxChannel: 6, MaxID: 4}, ""},
		{"channel cap below", DecodeLimits{MaxChannel: 5}, "Invalid format: item 0: publish item object contains 'channel' longer than 5 bytes"},
		{"id cap below", DecodeLimits{MaxID: 3}, "Invalid format: item 0: publish item object contains 'id' longer than 3 bytes"},
		// The cap counts decoded bytes: "\u0061" is one byte.
		{"escaped channel counted decoded", DecodeLimits{MaxChannel: 6}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := body
			if strings.HasPrefix(tc.name, "escaped") {
				b = []byte(`{"items":[{"channel":"\u0061bcdef","formats":{"http-stream":{"content":"x"}}}]}`)
			}
			_, err := DecodePublishLimits(b, tc.lim)
			got := ""
			if err != nil {
				got = publishErrText(t, err)
			}
			if got != tc.want {
				t.Errorf("error %q, want %q", got, tc.want)
			}
		})
	}
}
