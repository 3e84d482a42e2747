package instruct

import (
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

var testReqURL = mustURL("http://example.com/a/b/c?x=1")

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// hdr builds a header from name/value pairs, in order, with Add.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func mustParse(t *testing.T, status int, h http.Header, body string) *Instruction {
	t.Helper()
	in, err := Parse(status, h, []byte(body), testReqURL)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return in
}

func chans(specs ...Channel) []Channel { return specs }

func wantChannels(t *testing.T, in *Instruction, want []Channel) {
	t.Helper()
	if !reflect.DeepEqual(in.Channels, want) {
		t.Errorf("Channels = %+v; want %+v", in.Channels, want)
	}
}

const jsonType = "application/grip-instruct"

// The vectors of Pushpin's handler/instructtest.cpp, one test per function there.

func TestPushpinNoHold(t *testing.T) {
	h := hdr("Content-Type", "text/plain", "Grip-Channel", "test")
	in := mustParse(t, 200, h, "hello world")
	if in.Hold != HoldNone || in.Status != 200 || in.Reason != "" {
		t.Errorf("Hold, Status, Reason = %v, %d, %q; want HoldNone, 200, \"\"", in.Hold, in.Status, in.Reason)
	}
	if in.Header.Get("Content-Type") != "text/plain" || in.Header.Get("Grip-Channel") != "" {
		t.Errorf("Header = %v; want Content-Type kept and Grip-Channel stripped", in.Header)
	}
	if string(in.Body) != "hello world" {
		t.Errorf("Body = %q", in.Body)
	}

	h.Set("Grip-Status", "404")
	in = mustParse(t, 200, h, "hello world")
	if in.Hold != HoldNone || in.Status != 404 || in.Reason != "" {
		t.Errorf("with Grip-Status 404: %v %d %q", in.Hold, in.Status, in.Reason)
	}
	h.Set("Grip-Status", "404 Nothing To See Here")
	in = mustParse(t, 200, h, "hello world")
	if in.Status != 404 || in.Reason != "Nothing To See Here" {
		t.Errorf("with a reason: %d %q", in.Status, in.Reason)
	}

	in = mustParse(t, 200, hdr("Content-Type", jsonType),
		`{"response":{"code": 200,"headers":{"Content-Type":"text/plain"},"body":"hello world"}}`)
	if in.Hold != HoldNone || in.Status != 200 || in.Header.Get("Content-Type") != "text/plain" ||
		string(in.Body) != "hello world" {
		t.Errorf("JSON no hold: %+v", in)
	}
}

func TestPushpinResponseHold(t *testing.T) {
	h := hdr("Content-Type", "text/plain", "Grip-Hold", "response", "Grip-Channel", "apple",
		"Grip-Channel", "banana, cherry", "Grip-Timeout", "120", "Grip-Set-Meta", "foo=bar, bar=baz")
	in := mustParse(t, 200, h, "hello world")
	if in.Hold != HoldResponse || in.Timeout != 120*time.Second {
		t.Errorf("Hold, Timeout = %v, %v", in.Hold, in.Timeout)
	}
	wantChannels(t, in, chans(Channel{Name: "apple"}, Channel{Name: "banana"}, Channel{Name: "cherry"}))
	if want := map[string]string{"foo": "bar", "bar": "baz"}; !reflect.DeepEqual(in.Meta, want) {
		t.Errorf("Meta = %v; want %v", in.Meta, want)
	}
	if in.Header.Get("Content-Type") != "text/plain" || len(in.Header) != 1 || string(in.Body) != "hello world" {
		t.Errorf("response = %v %q", in.Header, in.Body)
	}

	in = mustParse(t, 200, hdr("Content-Type", jsonType),
		`{"hold":{"mode":"response","channels":[{"name":"test"}],"timeout":120,"meta":{"foo":"bar","bar":"baz"}},`+
			`"response":{"code": 200,"headers":{"Content-Type":"text/plain"},"body":"hello world"}}`)
	if in.Hold != HoldResponse || in.Timeout != 120*time.Second || in.Status != 200 {
		t.Errorf("JSON: Hold, Timeout, Status = %v, %v, %d", in.Hold, in.Timeout, in.Status)
	}
	wantChannels(t, in, chans(Channel{Name: "test"}))
	if want := map[string]string{"foo": "bar", "bar": "baz"}; !reflect.DeepEqual(in.Meta, want) {
		t.Errorf("JSON Meta = %v; want %v", in.Meta, want)
	}
	if in.Header.Get("Content-Type") != "text/plain" || string(in.Body) != "hello world" {
		t.Errorf("JSON response = %v %q", in.Header, in.Body)
	}
}

func TestPushpinResponseHoldChannelParams(t *testing.T) {
	want := chans(
		Channel{Name: "apple", PrevID: "item1", Filters: []string{"f1"}},
		Channel{Name: "banana", Filters: []string{"f2"}},
		Channel{Name: "cherry", Filters: []string{"f1", "f2"}},
	)
	h := hdr("Content-Type", "text/plain", "Grip-Hold", "response",
		"Grip-Channel", "apple; prev-id=item1; filter=f1",
		"Grip-Channel", "banana; filter=f2, cherry; filter=f1; filter=f2")
	in := mustParse(t, 200, h, "hello world")
	if in.Hold != HoldResponse {
		t.Errorf("Hold = %v", in.Hold)
	}
	wantChannels(t, in, want)
	if in.Header.Get("Grip-Channel") != "" || string(in.Body) != "hello world" {
		t.Errorf("response = %v %q", in.Header, in.Body)
	}

	in = mustParse(t, 200, hdr("Content-Type", jsonType),
		`{"hold":{"mode":"response","channels":[{"name":"apple","prev-id":"item1","filters":["f1"]},`+
			`{"name":"banana","filters":["f2"]},{"name":"cherry","filters":["f1","f2"]}]},`+
			`"response":{"code": 200,"headers":{"Content-Type":"text/plain"},"body":"hello world"}}`)
	wantChannels(t, in, want)
}

func TestPushpinStreamHold(t *testing.T) {
	h := hdr("Content-Type", "text/plain", "Grip-Hold", "stream", "Grip-Channel", "apple",
		"Grip-Channel", "banana, cherry")
	in := mustParse(t, 200, h, "hello world")
	if in.Hold != HoldStream || in.KeepAlive != nil {
		t.Errorf("Hold, KeepAlive = %v, %v", in.Hold, in.KeepAlive)
	}
	wantChannels(t, in, chans(Channel{Name: "apple"}, Channel{Name: "banana"}, Channel{Name: "cherry"}))

	in = mustParse(t, 200, hdr("Content-Type", jsonType),
		`{"hold":{"mode":"stream","channels":[{"name":"test"}]},"response":{"code": 200,`+
			`"headers":{"Content-Type":"text/plain"},"body":"hello world"}}`)
	if in.Hold != HoldStream || string(in.Body) != "hello world" {
		t.Errorf("JSON: %v %q", in.Hold, in.Body)
	}
	wantChannels(t, in, chans(Channel{Name: "test"}))
}

func TestPushpinStreamHoldKeepAlive(t *testing.T) {
	tests := []struct {
		value string
		want  KeepAlive
	}{
		{`ping1\n; timeout=10`, KeepAlive{Data: []byte(`ping1\n`), Timeout: 10 * time.Second, Mode: KeepAliveIdle}},
		{`ping2\n; format=cstring`, KeepAlive{Data: []byte("ping2\n"), Timeout: 55 * time.Second}},
		{`cGluZzMK; format=base64`, KeepAlive{Data: []byte("ping3\n"), Timeout: 55 * time.Second}},
		{`ping4\n; mode=interval`, KeepAlive{Data: []byte(`ping4\n`), Timeout: 55 * time.Second, Mode: KeepAliveInterval}},
	}
	for _, tt := range tests {
		h := hdr("Content-Type", "text/plain", "Grip-Hold", "stream", "Grip-Channel", "test",
			"Grip-Keep-Alive", tt.value)
		in := mustParse(t, 200, h, "hello world")
		if in.Hold != HoldStream || in.KeepAlive == nil || !reflect.DeepEqual(*in.KeepAlive, tt.want) {
			t.Errorf("Grip-Keep-Alive %q: %v %+v; want %+v", tt.value, in.Hold, in.KeepAlive, tt.want)
		}
	}
}

// Every rule of the reference, table by table.

func TestParseInstructErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		h      http.Header
		body   string
		header string // Error.Header
		msg    string
	}{
		{"unknown hold", 200, hdr("Grip-Hold", "Stream"), "", "Grip-Hold",
			"Grip-Hold must be set to either 'response' or 'stream'"},
		{"empty hold", 200, hdr("Grip-Hold", ""), "", "Grip-Hold",
			"Grip-Hold must be set to either 'response' or 'stream'"},
		{"six filters", 200, hdr("Grip-Channel", "x; filter=1; filter=2; filter=3; filter=4; filter=5; filter=6"),
			"", "Grip-Channel", "too many filters for channel 'x'"},
		{"timeout not a number", 200, hdr("Grip-Timeout", "abc"), "", "Grip-Timeout", "failed to parse Grip-Timeout"},
		{"timeout fraction", 200, hdr("Grip-Timeout", "1.5"), "", "Grip-Timeout", "failed to parse Grip-Timeout"},
		{"timeout overflow", 200, hdr("Grip-Timeout", "99999999999"), "", "Grip-Timeout", "failed to parse Grip-Timeout"},
		{"timeout negative", 200, hdr("Grip-Timeout", "-1"), "", "Grip-Timeout", "Grip-Timeout has invalid value"},
		{"keep-alive empty data", 200, hdr("Grip-Keep-Alive", "; timeout=5"), "", "Grip-Keep-Alive",
			"Grip-Keep-Alive cannot be empty"},
		{"keep-alive cstring decodes to nothing", 200, hdr("Grip-Keep-Alive", `\q; format=cstring`), "",
			"Grip-Keep-Alive", "Grip-Keep-Alive cannot be empty"},
		{"keep-alive dangling backslash", 200, hdr("Grip-Keep-Alive", `abc\; format=cstring`), "",
			"Grip-Keep-Alive", "failed to parse Grip-Keep-Alive cstring format"},
		{"keep-alive short hex", 200, hdr("Grip-Keep-Alive", `a\x4; format=cstring`), "",
			"Grip-Keep-Alive", "failed to parse Grip-Keep-Alive cstring format"},
		{"keep-alive bad hex", 200, hdr("Grip-Keep-Alive", `\xZZ; format=cstring`), "",
			"Grip-Keep-Alive", "failed to parse Grip-Keep-Alive cstring format"},
		{"keep-alive bad base64", 200, hdr("Grip-Keep-Alive", `!!!!; format=base64`), "",
			"Grip-Keep-Alive", "failed to parse Grip-Keep-Alive base64 format"},
		{"keep-alive unknown format", 200, hdr("Grip-Keep-Alive", `x; format=hex`), "",
			"Grip-Keep-Alive", "no such Grip-Keep-Alive format 'hex'"},
		{"keep-alive unknown mode", 200, hdr("Grip-Keep-Alive", `x; mode=Idle`), "",
			"Grip-Keep-Alive", "no such Grip-Keep-Alive mode 'Idle'"},
		{"keep-alive timeout not a number", 200, hdr("Grip-Keep-Alive", `x; timeout=soon`), "",
			"Grip-Keep-Alive", "failed to parse Grip-Keep-Alive timeout value"},
		{"keep-alive timeout negative", 200, hdr("Grip-Keep-Alive", `x; timeout=-2`), "",
			"Grip-Keep-Alive", "Grip-Keep-Alive timeout has invalid value"},
		{"keep-alive unterminated quote", 200, hdr("Grip-Keep-Alive", `x; format="raw`), "",
			"Grip-Keep-Alive", "failed to parse Grip-Keep-Alive: unterminated quoted string"},
		{"meta empty item", 200, hdr("Grip-Set-Meta", "a=b,,c=d"), "", "Grip-Set-Meta", "Grip-Set-Meta cannot be empty"},
		{"meta empty key", 200, hdr("Grip-Set-Meta", "=x"), "", "Grip-Set-Meta", "Grip-Set-Meta cannot be empty"},
		{"status not a number", 200, hdr("Grip-Status", "abc"), "", "Grip-Status", "Grip-Status contains invalid status code"},
		{"status too big", 200, hdr("Grip-Status", "1000 Big"), "", "Grip-Status", "Grip-Status contains invalid status code"},
		{"status negative", 200, hdr("Grip-Status", "-1"), "", "Grip-Status", "Grip-Status contains invalid status code"},
		{"status informational", 200, hdr("Grip-Status", "100"), "", "Grip-Status", "Grip-Status contains invalid status code"},
		{"link without brackets", 200, hdr("Grip-Link", "/x; rel=next"), "", "Grip-Link", "failed to parse Grip-Link value"},
		{"link empty brackets", 200, hdr("Grip-Link", "<>; rel=next"), "", "Grip-Link", "failed to parse Grip-Link value"},
		{"link bad URL", 200, hdr("Grip-Link", "<http://[::1>; rel=next"), "", "Grip-Link", "Grip-Link contains invalid link"},
		{"link bad escape", 200, hdr("Grip-Link", "</a%zz>; rel=next"), "", "Grip-Link", "Grip-Link contains invalid link"},
		{"link not http", 200, hdr("Grip-Link", "<ftp://h/x>; rel=next"), "", "Grip-Link", "Grip-Link contains invalid link"},
		{"link opaque", 200, hdr("Grip-Link", "<mailto:a@b>; rel=gone"), "", "Grip-Link", "Grip-Link contains invalid link"},
		{"link invalid even with unknown rel", 200, hdr("Grip-Link", "<http://[::1>; rel=prev"), "", "Grip-Link",
			"Grip-Link contains invalid link"},
		{"link timeout not a number", 200, hdr("Grip-Link", "</n>; rel=next; timeout=x"), "", "Grip-Link",
			"failed to parse Grip-Link timeout value"},
		{"link timeout negative", 200, hdr("Grip-Link", "</n>; rel=next; timeout=-1"), "", "Grip-Link",
			"Grip-Link timeout has invalid value"},
		{"errors come in Pushpin's order", 200, hdr("Grip-Link", "<>; rel=next", "Grip-Timeout", "x"), "",
			"Grip-Timeout", "failed to parse Grip-Timeout"},

		{"json status not 200", 201, hdr("Content-Type", jsonType), `{}`, "body",
			"response code for application/grip-instruct content must be 200"},
		{"json status not 200 even with Grip-Status", 404, hdr("Content-Type", jsonType, "Grip-Status", "200"), `{}`,
			"body", "response code for application/grip-instruct content must be 200"},
		{"json invalid", 200, hdr("Content-Type", jsonType), `{"hold":`, "body",
			"failed to parse application/grip-instruct content as JSON"},
		{"json empty body", 200, hdr("Content-Type", jsonType), ``, "body",
			"failed to parse application/grip-instruct content as JSON"},
		{"json not an object", 200, hdr("Content-Type", jsonType), `[]`, "body", "instruct must be an object"},
		{"json null", 200, hdr("Content-Type", jsonType), `null`, "body", "instruct must be an object"},
	}
	jsonErrs := []struct{ name, body, msg string }{
		{"hold wrong type", `{"hold":5}`, "instruct contains 'hold' with wrong type"},
		{"mode wrong type", `{"hold":{"mode":1,"channels":[]}}`, "hold contains 'mode' with wrong type"},
		{"mode unknown", `{"hold":{"mode":"poll","channels":[]}}`, "hold 'mode' must be set to either 'response' or 'stream'"},
		{"channels missing", `{"hold":{"mode":"stream"}}`, "hold does not contain 'channels'"},
		{"channels wrong type", `{"hold":{"channels":{}}}`, "hold contains 'channels' with wrong type"},
		{"channel not an object", `{"hold":{"channels":["a"]}}`, "channel is not an object"},
		{"channel without name", `{"hold":{"channels":[{}]}}`, "channel does not contain 'name'"},
		{"channel name wrong type", `{"hold":{"channels":[{"name":1}]}}`, "channel contains 'name' with wrong type"},
		{"prev-id wrong type", `{"hold":{"channels":[{"name":"a","prev-id":1}]}}`, "channel contains 'prev-id' with wrong type"},
		{"filters wrong type", `{"hold":{"channels":[{"name":"a","filters":"f"}]}}`, "channel contains 'filters' with wrong type"},
		{"filter wrong type", `{"hold":{"channels":[{"name":"a","filters":[1]}]}}`, "filters contains value with wrong type"},
		{"six filters", `{"hold":{"channels":[{"name":"a","filters":["1","2","3","4","5","6"]}]}}`,
			"too many filters for channel 'a'"},
		{"timeout wrong type", `{"hold":{"channels":[],"timeout":"55"}}`, "hold contains 'timeout' with wrong type"},
		{"timeout negative", `{"hold":{"channels":[],"timeout":-1}}`, "hold contains 'timeout' with invalid value"},
		{"timeout huge", `{"hold":{"channels":[],"timeout":1e300}}`, "hold contains 'timeout' with invalid value"},
		{"keep-alive wrong type", `{"hold":{"channels":[],"keep-alive":"x"}}`, "hold contains 'keep-alive' with wrong type"},
		{"keep-alive content wrong type", `{"hold":{"channels":[],"keep-alive":{"content":1}}}`,
			"keep-alive contains 'content' with wrong type"},
		{"keep-alive content-bin wrong type", `{"hold":{"channels":[],"keep-alive":{"content-bin":1}}}`,
			"keep-alive contains 'content-bin' with wrong type"},
		{"keep-alive content-bin invalid", `{"hold":{"channels":[],"keep-alive":{"content-bin":"!!"}}}`,
			"keep-alive contains 'content-bin' with invalid value"},
		{"keep-alive timeout wrong type", `{"hold":{"channels":[],"keep-alive":{"content":"x","timeout":true}}}`,
			"keep-alive contains 'timeout' with wrong type"},
		{"keep-alive timeout negative", `{"hold":{"channels":[],"keep-alive":{"content":"x","timeout":-1}}}`,
			"keep-alive contains 'timeout' with invalid value"},
		{"meta wrong type", `{"hold":{"channels":[],"meta":[]}}`, "hold contains 'meta' with wrong type"},
		{"meta value wrong type", `{"hold":{"channels":[],"meta":{"k":1}}}`, "'meta' contains 'k' with wrong type"},
		{"response wrong type", `{"response":"x"}`, "instruct contains 'response' with wrong type"},
		{"code wrong type", `{"response":{"code":"200"}}`, "response contains 'code' with wrong type"},
		{"code too big", `{"response":{"code":1000}}`, "response contains 'code' with invalid value"},
		{"code zero", `{"response":{"code":0}}`, "response contains 'code' with invalid value"},
		{"reason wrong type", `{"response":{"reason":1}}`, "response contains 'reason' with wrong type"},
		{"reason with newline", `{"response":{"reason":"a\nb"}}`, "response contains 'reason' with invalid value"},
		{"headers wrong type", `{"response":{"headers":"x"}}`, "response contains 'headers' with wrong type"},
		{"headers element wrong type", `{"response":{"headers":["x"]}}`, "headers contains element with wrong type"},
		{"headers pair too long", `{"response":{"headers":[["a","b","c"]]}}`,
			"headers contains list with wrong number of elements"},
		{"headers name wrong type", `{"response":{"headers":[[1,"b"]]}}`, "header contains name element with wrong type"},
		{"headers value wrong type", `{"response":{"headers":[["a",1]]}}`, "header contains value element with wrong type"},
		{"headers object value wrong type", `{"response":{"headers":{"X-A":1}}}`, "headers contains 'X-A' with wrong type"},
		{"headers invalid name", `{"response":{"headers":{"X A":"1"}}}`, "headers contains invalid name 'X A'"},
		{"headers value with CRLF", `{"response":{"headers":[["X-A","1\r\nX-B: 2"]]}}`,
			"headers contains 'X-A' with invalid value"},
		{"body wrong type", `{"response":{"body":{}}}`, "response contains 'body' with wrong type"},
		{"body-bin wrong type", `{"response":{"body-bin":1}}`, "response contains 'body-bin' with wrong type"},
		{"body-bin invalid", `{"response":{"body-bin":"@@@"}}`, "response contains 'body-bin' with invalid value"},
	}
	for _, j := range jsonErrs {
		tests = append(tests, struct {
			name   string
			status int
			h      http.Header
			body   string
			header string
			msg    string
		}{"json " + j.name, 200, hdr("Content-Type", jsonType), j.body, "body", j.msg})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := Parse(tt.status, tt.h, []byte(tt.body), testReqURL)
			var ie *Error
			if !errors.As(err, &ie) {
				t.Fatalf("Parse = %+v, %v; want an *Error", in, err)
			}
			if in != nil {
				t.Errorf("Parse returned an Instruction with its error")
			}
			if ie.Header != tt.header || ie.Msg != tt.msg || err.Error() != tt.msg {
				t.Errorf("error = {%q %q}; want {%q %q}", ie.Header, ie.Msg, tt.header, tt.msg)
			}
		})
	}
}

func TestGripHoldModes(t *testing.T) {
	tests := []struct {
		h    http.Header
		want HoldMode
	}{
		{hdr(), HoldNone},
		{hdr("Grip-Hold", "response"), HoldResponse},
		{hdr("Grip-Hold", "stream"), HoldStream},
		{hdr("Grip-Hold", "stream", "Grip-Hold", "bogus"), HoldStream}, // only the first counts
		{http.Header{"grip-hold": {"stream"}}, HoldStream},             // names are case-insensitive
	}
	for _, tt := range tests {
		if in := mustParse(t, 200, tt.h, ""); in.Hold != tt.want {
			t.Errorf("%v: Hold = %v; want %v", tt.h, in.Hold, tt.want)
		}
	}
}

func TestGripChannelRules(t *testing.T) {
	many := make([]string, 25)
	var want20 []Channel
	for i := range many {
		many[i] = "c" + string(rune('a'+i))
		if i < MaxChannels {
			want20 = append(want20, Channel{Name: many[i]})
		}
	}
	tests := []struct {
		name  string
		value []string
		want  []Channel
	}{
		{"comma list across headers", []string{"a, b", "c"},
			chans(Channel{Name: "a"}, Channel{Name: "b"}, Channel{Name: "c"})},
		{"five filters allowed", []string{"x; filter=1; filter=2; filter=3; filter=4; filter=5"},
			chans(Channel{Name: "x", Filters: []string{"1", "2", "3", "4", "5"}})},
		{"param names are case-insensitive", []string{"x; Prev-Id=7; FILTER=skip-self"},
			chans(Channel{Name: "x", PrevID: "7", Filters: []string{"skip-self"}})},
		{"quoted values", []string{`x; prev-id="a,b;c"; filter="f\"1"`},
			chans(Channel{Name: "x", PrevID: "a,b;c", Filters: []string{`f"1`}})},
		{"unknown params ignored", []string{"x; color=red"}, chans(Channel{Name: "x"})},
		{"empty filter ignored", []string{"x; filter="}, chans(Channel{Name: "x"})},
		// Pushpin's httpheaderstest vector applied to channels.
		{"entry with a bad quote dropped", []string{`apple; type=gala, banana; type="yellow, cherry`},
			chans(Channel{Name: "apple"})},
		{"bad quote in the only entry", []string{`a; filter="x`}, nil},
		{"bad quote in one header only", []string{`a; filter="x`, "b"}, chans(Channel{Name: "b"})},
		{"empty entries skipped", []string{",a,, b,", ""}, chans(Channel{Name: "a"}, Channel{Name: "b"})},
		{"entry without a name skipped", []string{"; prev-id=3, a"}, chans(Channel{Name: "a"})},
		{"repeat updates the first entry", []string{"a; prev-id=1; filter=f, b", "a; prev-id=2"},
			chans(Channel{Name: "a", PrevID: "2"}, Channel{Name: "b"})},
		{"more than MaxChannels truncated", []string{strings.Join(many, ", ")}, want20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Grip-Channel": tt.value}
			wantChannels(t, mustParse(t, 200, h, ""), tt.want)
		})
	}
}

func TestGripTimeoutRules(t *testing.T) {
	tests := []struct {
		value []string
		want  time.Duration
	}{
		{nil, 55 * time.Second},
		{[]string{"120"}, 120 * time.Second},
		{[]string{"5"}, 5 * time.Second},
		{[]string{"3"}, 5 * time.Second},
		{[]string{"0"}, 5 * time.Second},
		{[]string{"30", "x"}, 30 * time.Second}, // only the first counts
	}
	for _, tt := range tests {
		h := http.Header{"Grip-Hold": {"response"}}
		if tt.value != nil {
			h["Grip-Timeout"] = tt.value
		}
		if in := mustParse(t, 200, h, ""); in.Timeout != tt.want {
			t.Errorf("Grip-Timeout %q: Timeout = %v; want %v", tt.value, in.Timeout, tt.want)
		}
	}
}

func TestGripKeepAliveRules(t *testing.T) {
	tests := []struct {
		name  string
		value []string
		want  *KeepAlive
	}{
		{"absent", nil, nil},
		{"empty header is no keep-alive", []string{""}, nil},
		{"raw data trimmed, default timeout", []string{"  ping  ; format=raw"},
			&KeepAlive{Data: []byte("ping"), Timeout: 55 * time.Second}},
		{"data ends at the first ;", []string{"a;b; timeout=3"},
			&KeepAlive{Data: []byte("a"), Timeout: 3 * time.Second}},
		{"not comma-split", []string{"a, b; timeout=3"},
			&KeepAlive{Data: []byte("a, b"), Timeout: 3 * time.Second}},
		{"only the first header", []string{"x; timeout=5", "y; timeout=9"},
			&KeepAlive{Data: []byte("x"), Timeout: 5 * time.Second}},
		{"cstring escapes", []string{`\\\r\n\x41\x7e\t; format=cstring`},
			&KeepAlive{Data: []byte("\\\r\nA~\t"), Timeout: 55 * time.Second}},
		{"cstring drops unknown escapes", []string{`a\qb\"c; format=cstring`},
			&KeepAlive{Data: []byte("abc"), Timeout: 55 * time.Second}},
		{"sse comment", []string{`:\n\n; format=cstring; timeout=20`},
			&KeepAlive{Data: []byte(":\n\n"), Timeout: 20 * time.Second}},
		{"base64 unpadded", []string{"cGluZzM; format=base64"},
			&KeepAlive{Data: []byte("ping3"), Timeout: 55 * time.Second}},
		{"quoted param values", []string{`x; format="raw"; mode="interval"`},
			&KeepAlive{Data: []byte("x"), Timeout: 55 * time.Second, Mode: KeepAliveInterval}},
		{"timeout zero becomes 1s", []string{"x; timeout=0"}, &KeepAlive{Data: []byte("x"), Timeout: time.Second}},
		{"explicit idle", []string{"x; mode=idle"}, &KeepAlive{Data: []byte("x"), Timeout: 55 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Grip-Hold": {"stream"}}
			if tt.value != nil {
				h["Grip-Keep-Alive"] = tt.value
			}
			in := mustParse(t, 200, h, "")
			if !reflect.DeepEqual(in.KeepAlive, tt.want) {
				t.Errorf("KeepAlive = %+v; want %+v", in.KeepAlive, tt.want)
			}
		})
	}
}

func TestGripSetMetaRules(t *testing.T) {
	tests := []struct {
		name  string
		value []string
		want  map[string]string
	}{
		{"absent", nil, nil},
		{"quoted and bare", []string{`user="alice", id_format="%(s1)s", n=1`},
			map[string]string{"user": "alice", "id_format": "%(s1)s", "n": "1"}},
		{"comma inside quotes", []string{`a="x, y", b=z`}, map[string]string{"a": "x, y", "b": "z"}},
		{"several headers, last wins", []string{"a=1, b=2", "a=3"}, map[string]string{"a": "3", "b": "2"}},
		{"key without value", []string{"flag"}, map[string]string{"flag": ""}},
		{"trailing comma", []string{"a=b,"}, map[string]string{"a": "b"}},
		{"entry with a bad quote dropped", []string{`a=b, c="d`}, map[string]string{"a": "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.value != nil {
				h["Grip-Set-Meta"] = tt.value
			}
			in := mustParse(t, 200, h, "")
			if !reflect.DeepEqual(in.Meta, tt.want) {
				t.Errorf("Meta = %v; want %v", in.Meta, tt.want)
			}
		})
	}
}

func TestGripStatusRules(t *testing.T) {
	tests := []struct {
		value      string
		status     int
		wantStatus int
		wantReason string
	}{
		{"", 200, 200, ""},
		{"404", 200, 404, ""},
		{"404 Not Found", 200, 404, "Not Found"},
		{"299 Fine Thank You", 500, 299, "Fine Thank You"},
		{"999", 200, 999, ""},
	}
	for _, tt := range tests {
		h := hdr("Grip-Hold", "response")
		if tt.value != "" {
			h.Set("Grip-Status", tt.value)
		}
		in := mustParse(t, tt.status, h, "")
		if in.Status != tt.wantStatus || in.Reason != tt.wantReason {
			t.Errorf("Grip-Status %q: %d %q; want %d %q", tt.value, in.Status, in.Reason, tt.wantStatus, tt.wantReason)
		}
	}
}

func TestGripLinkRules(t *testing.T) {
	type link struct {
		url     string
		timeout time.Duration
	}
	tests := []struct {
		name       string
		value      []string
		next, gone *link
	}{
		{"absent", nil, nil, nil},
		{"relative next, default timeout", []string{"</items?after=3>; rel=next"},
			&link{"http://example.com/items?after=3", 120 * time.Second}, nil},
		{"relative path", []string{"<../x>; rel=next; timeout=30"},
			&link{"http://example.com/a/x", 30 * time.Second}, nil},
		{"absolute", []string{"<https://other.example/n>; rel=next"},
			&link{"https://other.example/n", 120 * time.Second}, nil},
		{"timeout 0 becomes 1s", []string{"</n>; rel=next; timeout=0"},
			&link{"http://example.com/n", time.Second}, nil},
		{"gone", []string{"</gone/42>; rel=gone"}, nil, &link{"http://example.com/gone/42", 0}},
		{"both in one header", []string{"</n>; rel=next; timeout=5, </g>; rel=gone"},
			&link{"http://example.com/n", 5 * time.Second}, &link{"http://example.com/g", 0}},
		{"both in two headers", []string{"</g>; rel=gone", "</n>; rel=next"},
			&link{"http://example.com/n", 120 * time.Second}, &link{"http://example.com/g", 0}},
		{"last of a rel wins", []string{"</n1>; rel=next, </n2>; rel=next"},
			&link{"http://example.com/n2", 120 * time.Second}, nil},
		{"no params: skipped", []string{"</n>", "garbage"}, nil, nil},
		{"unknown rel ignored", []string{"</p>; rel=prev"}, nil, nil},
		{"rel is case-insensitive", []string{"</n>; REL=Next"}, &link{"http://example.com/n", 120 * time.Second}, nil},
		{"quoted rel", []string{`</n>; rel="next"`}, &link{"http://example.com/n", 120 * time.Second}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Grip-Hold": {"stream"}}
			if tt.value != nil {
				h["Grip-Link"] = tt.value
			}
			in := mustParse(t, 200, h, "")
			check := func(what string, got *Link, want *link) {
				switch {
				case want == nil && got != nil:
					t.Errorf("%s = %v; want nil", what, got.URL)
				case want != nil && got == nil:
					t.Errorf("%s = nil; want %s", what, want.url)
				case want != nil && (got.URL.String() != want.url || got.Timeout != want.timeout):
					t.Errorf("%s = %s %v; want %s %v", what, got.URL, got.Timeout, want.url, want.timeout)
				}
			}
			check("Next", in.Next, tt.next)
			check("Gone", in.Gone, tt.gone)
		})
	}
}

func TestGripLinkStaysRelativeWithoutRequestURL(t *testing.T) {
	in, err := Parse(200, hdr("Grip-Link", "</n?a=1>; rel=next"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if in.Next == nil || in.Next.URL.String() != "/n?a=1" {
		t.Errorf("Next = %+v; want /n?a=1", in.Next)
	}
}

func TestResponseHeaderStripsGripAndContentLength(t *testing.T) {
	h := hdr("Content-Type", "text/plain", "Content-Length", "11", "Grip-Hold", "response",
		"Grip-Whatever", "x", "X-A", "1", "X-A", "2")
	h["grip-lower"] = []string{"y"}
	in := mustParse(t, 200, h, "hello world")
	want := http.Header{"Content-Type": {"text/plain"}, "X-A": {"1", "2"}}
	if !reflect.DeepEqual(in.Header, want) {
		t.Errorf("Header = %v; want %v", in.Header, want)
	}
	if in.ExposeHeaders != nil {
		t.Errorf("ExposeHeaders = %q; want nil", in.ExposeHeaders)
	}
}

func TestGripExposeHeadersFiltersOriginHeaders(t *testing.T) {
	h := hdr("Content-Type", "text/plain", "X-A", "1", "X-B", "2", "X-C", "3", "Content-Length", "0",
		"Grip-Expose-Headers", "X-A, x-b", "Grip-Expose-Headers", "Content-Length")
	in := mustParse(t, 200, h, "")
	want := http.Header{"X-A": {"1"}, "X-B": {"2"}}
	if !reflect.DeepEqual(in.Header, want) {
		t.Errorf("Header = %v; want %v", in.Header, want)
	}
	if want := []string{"X-A", "x-b", "Content-Length"}; !reflect.DeepEqual(in.ExposeHeaders, want) {
		t.Errorf("ExposeHeaders = %q; want %q", in.ExposeHeaders, want)
	}

	in = mustParse(t, 200, hdr("X-A", "1", "Grip-Expose-Headers", ""), "")
	if in.ExposeHeaders != nil || in.Header.Get("X-A") != "1" {
		t.Errorf("empty Grip-Expose-Headers: %q %v; want no filtering", in.ExposeHeaders, in.Header)
	}
}

func TestResponseHeaderIsACopy(t *testing.T) {
	vals := make([]string, 1, 4)
	vals[0] = "1"
	h := http.Header{"X-A": vals, "Grip-Hold": {"response"}}
	in := mustParse(t, 200, h, "")
	in.Header.Add("X-A", "2")
	in.Header.Set("X-B", "3")
	if got := vals[:2]; got[1] != "" || len(h) != 2 {
		t.Errorf("origin header changed: %v %v", got, h)
	}
}

func TestJSONInstruct(t *testing.T) {
	tests := []struct {
		name  string
		h     http.Header
		body  string
		check func(t *testing.T, in *Instruction)
	}{
		{"mode defaults to response", nil, `{"hold":{"channels":[{"name":"a"}]}}`, func(t *testing.T, in *Instruction) {
			if in.Hold != HoldResponse || in.Timeout != 55*time.Second {
				t.Errorf("Hold, Timeout = %v, %v", in.Hold, in.Timeout)
			}
		}},
		{"timeout minimum", nil, `{"hold":{"channels":[],"timeout":1}}`, func(t *testing.T, in *Instruction) {
			if in.Timeout != 5*time.Second {
				t.Errorf("Timeout = %v", in.Timeout)
			}
		}},
		{"JSON hold overrides Grip-Hold", hdr("Grip-Hold", "response", "Grip-Timeout", "10"),
			`{"hold":{"mode":"stream","channels":[],"timeout":20}}`, func(t *testing.T, in *Instruction) {
				if in.Hold != HoldStream || in.Timeout != 20*time.Second {
					t.Errorf("Hold, Timeout = %v, %v", in.Hold, in.Timeout)
				}
			}},
		{"no JSON hold keeps Grip-Hold", hdr("Grip-Hold", "stream", "Grip-Channel", "h"), `{}`,
			func(t *testing.T, in *Instruction) {
				if in.Hold != HoldStream {
					t.Errorf("Hold = %v", in.Hold)
				}
				wantChannels(t, in, chans(Channel{Name: "h"}))
			}},
		{"channels and meta add to the headers'", hdr("Grip-Channel", "h", "Grip-Set-Meta", "a=1, b=2"),
			`{"hold":{"channels":[{"name":"j"}],"meta":{"b":"3"}}}`, func(t *testing.T, in *Instruction) {
				wantChannels(t, in, chans(Channel{Name: "h"}, Channel{Name: "j"}))
				if want := map[string]string{"a": "1", "b": "3"}; !reflect.DeepEqual(in.Meta, want) {
					t.Errorf("Meta = %v; want %v", in.Meta, want)
				}
			}},
		{"keep-alive content is interval", nil, `{"hold":{"mode":"stream","channels":[],"keep-alive":{"content":"ka"}}}`,
			func(t *testing.T, in *Instruction) {
				want := &KeepAlive{Data: []byte("ka"), Timeout: 55 * time.Second, Mode: KeepAliveInterval}
				if !reflect.DeepEqual(in.KeepAlive, want) {
					t.Errorf("KeepAlive = %+v; want %+v", in.KeepAlive, want)
				}
			}},
		{"keep-alive content-bin wins, timeout 0 is 1s", nil,
			`{"hold":{"channels":[],"keep-alive":{"content":"x","content-bin":"cGluZzMK","timeout":0}}}`,
			func(t *testing.T, in *Instruction) {
				want := &KeepAlive{Data: []byte("ping3\n"), Timeout: time.Second, Mode: KeepAliveInterval}
				if !reflect.DeepEqual(in.KeepAlive, want) {
					t.Errorf("KeepAlive = %+v; want %+v", in.KeepAlive, want)
				}
			}},
		{"keep-alive without content keeps the header's data and mode", hdr("Grip-Keep-Alive", "hk; timeout=9"),
			`{"hold":{"channels":[],"keep-alive":{"timeout":30}}}`, func(t *testing.T, in *Instruction) {
				want := &KeepAlive{Data: []byte("hk"), Timeout: 30 * time.Second, Mode: KeepAliveIdle}
				if !reflect.DeepEqual(in.KeepAlive, want) {
					t.Errorf("KeepAlive = %+v; want %+v", in.KeepAlive, want)
				}
			}},
		{"keep-alive without any content is none", nil, `{"hold":{"channels":[],"keep-alive":{"content":""}}}`,
			func(t *testing.T, in *Instruction) {
				if in.KeepAlive != nil {
					t.Errorf("KeepAlive = %+v; want nil", in.KeepAlive)
				}
			}},
		{"origin headers and body replaced", hdr("X-Origin", "1"), `{"hold":{"channels":[]}}`,
			func(t *testing.T, in *Instruction) {
				if len(in.Header) != 0 || in.Header == nil || in.Body != nil || in.Status != 200 {
					t.Errorf("Header, Body, Status = %v, %q, %d", in.Header, in.Body, in.Status)
				}
			}},
		{"Grip-Status applies without response.code", hdr("Grip-Status", "404 Gone Fishing"),
			`{"response":{"body":"x"}}`, func(t *testing.T, in *Instruction) {
				if in.Status != 404 || in.Reason != "Gone Fishing" {
					t.Errorf("Status, Reason = %d %q", in.Status, in.Reason)
				}
			}},
		{"response.code clears the Grip-Status reason", hdr("Grip-Status", "404 Gone Fishing"),
			`{"response":{"code":410}}`, func(t *testing.T, in *Instruction) {
				if in.Status != 410 || in.Reason != "" {
					t.Errorf("Status, Reason = %d %q", in.Status, in.Reason)
				}
			}},
		{"response code and reason", nil, `{"response":{"code":403,"reason":"Nope"}}`,
			func(t *testing.T, in *Instruction) {
				if in.Status != 403 || in.Reason != "Nope" {
					t.Errorf("Status, Reason = %d %q", in.Status, in.Reason)
				}
			}},
		{"headers as pairs keep order; Grip-* and Content-Length dropped", nil,
			`{"response":{"headers":[["X-A","1"],["Content-Length","9"],["x-a","2"],["Grip-Hold","stream"]]}}`,
			func(t *testing.T, in *Instruction) {
				if want := (http.Header{"X-A": {"1", "2"}}); !reflect.DeepEqual(in.Header, want) {
					t.Errorf("Header = %v; want %v", in.Header, want)
				}
			}},
		{"headers as an object keep order", nil, `{"response":{"headers":{"x-a":"1","X-A":"2","B":"3"}}}`,
			func(t *testing.T, in *Instruction) {
				if want := (http.Header{"X-A": {"1", "2"}, "B": {"3"}}); !reflect.DeepEqual(in.Header, want) {
					t.Errorf("Header = %v; want %v", in.Header, want)
				}
			}},
		{"JSON headers are not filtered by Grip-Expose-Headers", hdr("Grip-Expose-Headers", "X-A"),
			`{"response":{"headers":{"X-B":"1"}}}`, func(t *testing.T, in *Instruction) {
				if in.Header.Get("X-B") != "1" {
					t.Errorf("Header = %v", in.Header)
				}
			}},
		{"body-bin wins over body", nil, `{"response":{"body":"text","body-bin":"AAEC"}}`,
			func(t *testing.T, in *Instruction) {
				if string(in.Body) != "\x00\x01\x02" {
					t.Errorf("Body = %q", in.Body)
				}
			}},
		{"Grip-Link still applies", hdr("Grip-Link", "</n>; rel=next"), `{"hold":{"mode":"stream","channels":[]}}`,
			func(t *testing.T, in *Instruction) {
				if in.Next == nil || in.Next.URL.String() != "http://example.com/n" {
					t.Errorf("Next = %+v", in.Next)
				}
			}},
		{"null members are absent", nil,
			`{"hold":{"mode":null,"channels":[{"name":"a","prev-id":null,"filters":null}],"timeout":null,"keep-alive":null,"meta":null},"response":null}`,
			func(t *testing.T, in *Instruction) {
				if in.Hold != HoldResponse || in.KeepAlive != nil || in.Meta != nil {
					t.Errorf("%+v", in)
				}
				wantChannels(t, in, chans(Channel{Name: "a"}))
			}},
		{"content type with parameters and any case", hdr("Content-Type", "Application/GRIP-Instruct; charset=utf-8"),
			`{"hold":{"mode":"stream","channels":[]}}`, func(t *testing.T, in *Instruction) {
				if in.Hold != HoldStream {
					t.Errorf("Hold = %v", in.Hold)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.h
			if h == nil {
				h = http.Header{}
			}
			if h.Get("Content-Type") == "" {
				h.Set("Content-Type", jsonType)
			}
			tt.check(t, mustParse(t, 200, h, tt.body))
		})
	}
}

func TestIsGrip(t *testing.T) {
	tests := []struct {
		name string
		h    http.Header
		want bool
	}{
		{"nil", nil, false},
		{"plain", hdr("Content-Type", "text/html", "Cache-Control", "no-cache"), false},
		{"Grip-Hold", hdr("Grip-Hold", "stream"), true},
		{"any Grip- header", hdr("Grip-Channel", "a"), true},
		{"lower-case name", http.Header{"grip-status": {"404"}}, true},
		{"prefix needs the dash", hdr("Gripper", "x"), false},
		{"JSON instruct", hdr("Content-Type", "application/grip-instruct"), true},
		{"JSON instruct with params", hdr("Content-Type", "application/grip-instruct; charset=utf-8"), true},
		{"lower-case content-type name", http.Header{"content-type": {"application/grip-instruct"}}, true},
		{"only the first Content-Type", hdr("Content-Type", "text/plain", "Content-Type", "application/grip-instruct"), false},
		{"other type", hdr("Content-Type", "application/grip-instructions"), false},
	}
	for _, tt := range tests {
		if got := IsGrip(tt.h); got != tt.want {
			t.Errorf("%s: IsGrip(%v) = %v; want %v", tt.name, tt.h, got, tt.want)
		}
	}
}

func TestIsGripDoesNotAllocate(t *testing.T) {
	h := plainResponseHeader()
	if n := testing.AllocsPerRun(100, func() { IsGrip(h) }); n != 0 {
		t.Errorf("IsGrip allocates %v times per call; want 0", n)
	}
}

func FuzzParseInstruct(f *testing.F) {
	f.Add("stream", "a, b; prev-id=1; filter=x", "30", `:\n; format=cstring; timeout=5`, "u=1", "404 No",
		"</n>; rel=next", "X-A", "text/plain", "")
	f.Add("", "", "", "", "", "", "", "", jsonType,
		`{"hold":{"mode":"stream","channels":[{"name":"a","filters":["f"]}],"keep-alive":{"content":"k"}},`+
			`"response":{"code":200,"headers":[["X-A","1"]],"body-bin":"AAEC"}}`)
	f.Fuzz(func(t *testing.T, hold, channel, timeout, keepAlive, meta, status, link, expose, ctype, body string) {
		h := http.Header{}
		for k, v := range map[string]string{"Grip-Hold": hold, "Grip-Channel": channel, "Grip-Timeout": timeout,
			"Grip-Keep-Alive": keepAlive, "Grip-Set-Meta": meta, "Grip-Status": status, "Grip-Link": link,
			"Grip-Expose-Headers": expose, "Content-Type": ctype} {
			if v != "" {
				h.Set(k, v)
			}
		}
		in, err := Parse(200, h, []byte(body), testReqURL)
		if err != nil {
			var ie *Error
			if !errors.As(err, &ie) || ie.Msg == "" || ie.Header == "" {
				t.Fatalf("error %#v is not a complete *Error", err)
			}
			return
		}
		if len(in.Channels) > MaxChannels || in.Timeout < 5*time.Second || in.Header == nil {
			t.Fatalf("limits broken: %+v", in)
		}
		for _, c := range in.Channels {
			if c.Name == "" || len(c.Filters) > MaxFilters {
				t.Fatalf("bad channel %+v", c)
			}
		}
		if ka := in.KeepAlive; ka != nil && (len(ka.Data) == 0 || ka.Timeout < time.Second) {
			t.Fatalf("bad keep-alive %+v", ka)
		}
		if in.Status < 200 || in.Status > 999 {
			t.Fatalf("bad status %d", in.Status)
		}
		for k := range in.Header {
			if IsGripHeader(k) || strings.EqualFold(k, "Content-Length") {
				t.Fatalf("header %q kept", k)
			}
		}
		for _, l := range []*Link{in.Next, in.Gone} {
			if l != nil && l.URL.Scheme != "http" && l.URL.Scheme != "https" {
				t.Fatalf("link %v is not http(s)", l.URL)
			}
		}
	})
}
