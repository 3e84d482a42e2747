package caddygrip

import (
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddy-grip/grip/formats"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// enc percent-encodes a parameter value, spaces as %20: JSON-P does not
// read '+' as a space.
func enc(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

func TestJSONPRewritesTheRequest(t *testing.T) {
	tests := []struct {
		name   string
		cfg    JSONP
		method string
		target string
		header http.Header

		notJSONP   bool
		wantErr    string // Pushpin's 400 text
		wantCall   jsonpCall
		wantMethod string
		wantURI    string
		wantHeader http.Header // compared in full
		wantBody   string
	}{
		{
			// Pushpin's passthroughJsonp vector.
			name:       "callback parameter, extended defaults",
			target:     "/jsonp?callback=jpcb",
			wantCall:   jsonpCall{callback: "jpcb", extended: true},
			wantMethod: "GET",
			wantURI:    "/jsonp",
			wantHeader: http.Header{"Accept": {"*/*"}},
		},
		{
			// Pushpin's passthroughJsonpBasic vector (route jsonp_mode=basic,
			// jsonp_body=bparam, jsonp_defcb=jpcb).
			name:       "body parameter with a default callback, basic",
			cfg:        JSONP{Mode: "basic", BodyParam: "bparam", DefaultCallback: "jpcb"},
			target:     "/jsonp-basic?bparam={}",
			wantCall:   jsonpCall{callback: "jpcb"},
			wantMethod: "POST",
			wantURI:    "/jsonp-basic",
			wantHeader: http.Header{"Accept": {"*/*"}, "Content-Type": {"application/json"}, "Content-Length": {"2"}},
			wantBody:   "{}",
		},
		{
			name: "method, headers and body parameters",
			target: "/p?a=1&callback=cb&_method=PUT&_headers=" + enc(`{"X-A":"1","host":"evil","Accept":"x/y","b-z":"2"}`) +
				"&_body=" + enc("hi there") + "&q=a%20b",
			header:     http.Header{"Accept": {"text/html"}, "X-A": {"from-client"}},
			wantCall:   jsonpCall{callback: "cb", extended: true},
			wantMethod: "PUT",
			wantURI:    "/p?a=1&q=a%20b",
			wantHeader: http.Header{
				"Accept": {"*/*"}, "X-A": {"1", "from-client"}, "B-Z": {"2"}, "Content-Length": {"8"},
			},
			wantBody: "hi there",
		},
		{
			name:       "body parameter replaces a Content-Type from _headers",
			cfg:        JSONP{BodyParam: "b"},
			target:     "/p?callback=cb&b=%5B1%5D&_headers=" + enc(`{"Content-Type":"text/plain"}`),
			wantCall:   jsonpCall{callback: "cb", extended: true},
			wantMethod: "GET",
			wantURI:    "/p",
			wantHeader: http.Header{"Accept": {"*/*"}, "Content-Type": {"application/json"}, "Content-Length": {"3"}},
			wantBody:   "[1]",
		},
		{
			name:       "plus is not a space, and every callback item goes",
			target:     "/p?callback=a+b&x=1&callback=c",
			wantCall:   jsonpCall{callback: "a+b", extended: true},
			wantMethod: "GET",
			wantURI:    "/p?x=1",
			wantHeader: http.Header{"Accept": {"*/*"}},
		},
		{
			name:       "custom callback parameter and default method",
			cfg:        JSONP{Callback: "cb", DefaultMethod: "DELETE"},
			target:     "/p?cb=f%2Eg",
			wantCall:   jsonpCall{callback: "f.g", extended: true},
			wantMethod: "DELETE",
			wantURI:    "/p",
			wantHeader: http.Header{"Accept": {"*/*"}},
		},
		{name: "not a GET", method: "POST", target: "/p?callback=cb", notJSONP: true},
		{name: "no callback", target: "/p?cb=x", notJSONP: true},
		{name: "default callback but no body parameter", cfg: JSONP{BodyParam: "b", DefaultCallback: "d"}, target: "/p?x=1", notJSONP: true},
		{name: "_body is not the body parameter when one is set", cfg: JSONP{BodyParam: "b"}, target: "/p?callback=c&_body=x",
			wantCall: jsonpCall{callback: "c", extended: true}, wantMethod: "GET", wantURI: "/p?_body=x", wantHeader: http.Header{"Accept": {"*/*"}}},
		{name: "empty callback", target: "/p?callback=", wantErr: "Invalid callback parameter."},
		{name: "callback without a value", target: "/p?callback", wantErr: "Invalid callback parameter."},
		{name: "bad escape in callback", target: "/p?callback=a%2", wantErr: "Invalid callback parameter."},
		{name: "empty method", target: "/p?callback=c&_method=", wantErr: "Invalid _method parameter."},
		{name: "method with a space", target: "/p?callback=c&_method=GE%20T", wantErr: "Invalid _method parameter."},
		{name: "headers not JSON", target: "/p?callback=c&_headers=x", wantErr: "Invalid _headers parameter."},
		{name: "headers an array", target: "/p?callback=c&_headers=" + enc(`["a"]`), wantErr: "Invalid _headers parameter."},
		{name: "headers null", target: "/p?callback=c&_headers=null", wantErr: "Invalid _headers parameter."},
		{name: "header value not a string", target: "/p?callback=c&_headers=" + enc(`{"X-A":1}`), wantErr: "Invalid _headers parameter."},
		{name: "header name not a token", target: "/p?callback=c&_headers=" + enc(`{"X A":"1"}`), wantErr: "Invalid _headers parameter."},
		{name: "header value with a newline", target: "/p?callback=c&_headers=" + enc(`{"X-A":"1\r\nX-B: 2"}`), wantErr: "Invalid _headers parameter."},
		{name: "empty _body", target: "/p?callback=c&_body=", wantErr: "Invalid _body parameter."},
		{name: "empty body parameter", cfg: JSONP{BodyParam: "b", DefaultCallback: "d"}, target: "/p?b=", wantErr: "Invalid body parameter."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(cmp.Or(tt.method, "GET"), tt.target, nil)
			for k, v := range tt.header {
				r.Header[k] = v
			}
			r2, call, err := tt.cfg.rewrite(r)
			if tt.wantErr != "" {
				var je *JSONPError
				if !errors.As(err, &je) || je.Status != 400 || je.Message != tt.wantErr {
					t.Fatalf("err %v, want 400 %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.notJSONP {
				if call != nil || r2 != nil {
					t.Fatalf("treated as JSON-P: %+v", call)
				}
				return
			}
			if call == nil {
				t.Fatal("not treated as JSON-P")
			}
			if *call != tt.wantCall {
				t.Errorf("call %+v, want %+v", *call, tt.wantCall)
			}
			if r2.Method != tt.wantMethod || r2.RequestURI != tt.wantURI || r2.URL.RequestURI() != tt.wantURI {
				t.Errorf("%s %s (URL %s), want %s %s", r2.Method, r2.RequestURI, r2.URL.RequestURI(), tt.wantMethod, tt.wantURI)
			}
			if !reflect.DeepEqual(r2.Header, tt.wantHeader) {
				t.Errorf("header %v\nwant   %v", r2.Header, tt.wantHeader)
			}
			b, _ := io.ReadAll(r2.Body)
			if string(b) != tt.wantBody || r2.ContentLength != int64(len(tt.wantBody)) {
				t.Errorf("body %q (length %d), want %q", b, r2.ContentLength, tt.wantBody)
			}
			if r.Method != "GET" || r.URL.RawQuery == r2.URL.RawQuery {
				t.Errorf("the client's request was changed")
			}
		})
	}
}

func TestJSONPEncodesBothShapes(t *testing.T) {
	h := http.Header{"Content-Type": {"application/json"}, "Set-Cookie": {"a=1", "b=2"}, "Empty": nil}
	tests := []struct {
		name   string
		call   jsonpCall
		status int
		body   string
		want   string
	}{
		// Pushpin's passthroughJsonpBasic result.
		{"basic", jsonpCall{callback: "jpcb"}, 200, `{"hello": "world"}`, `/**/jpcb({"hello": "world"});` + "\n"},
		{"basic trims one newline", jsonpCall{callback: "f"}, 200, "[1]\n\n", "/**/f([1]\n);\n"},
		{"basic trims one CRLF", jsonpCall{callback: "f"}, 200, "[1]\r\n", "/**/f([1]);\n"},
		{"basic keeps a lone CR", jsonpCall{callback: "f"}, 200, "[1]\r", "/**/f([1]\r);\n"},
		{"basic ignores the status", jsonpCall{callback: "f"}, 404, "{}", "/**/f({});\n"},
		{
			"extended", jsonpCall{callback: "jpcb", extended: true}, 200, `{"hello": "world"}`,
			`/**/jpcb({"code": 200, "reason": "OK", "headers": {"Content-Type":"application/json","Set-Cookie":"a=1, b=2"}, "body": "{\"hello\": \"world\"}"});` + "\n",
		},
		{
			"extended keeps newlines in the body", jsonpCall{callback: "cb", extended: true}, 502, "bad\n",
			`/**/cb({"code": 502, "reason": "Bad Gateway", "headers": {"Content-Type":"application/json","Set-Cookie":"a=1, b=2"}, "body": "bad\n"});` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tt.call.encode(tt.status, h, []byte(tt.body))); got != tt.want {
				t.Errorf("\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestJSONStringEscapesLikeQt(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{`a"b\c/d<e>&`, `"a\"b\\c/d<e>&"`},
		{"\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"\x00\x01\x1f\x7f", `"\u0000\u0001\u001f` + "\x7f" + `"`},
		{"é€😀", `"é€😀"`},
		{"a\u2028b\u2029c", `"a\u2028b\u2029c"`},
		{"a\xffb\xc3", "\"a\ufffdb\ufffd\""},
	}
	for _, tt := range tests {
		if got := string(appendJSONString(nil, tt.in)); got != tt.want {
			t.Errorf("%q: got %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestJSONPValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  JSONP
		ok   bool
	}{
		{"defaults", JSONP{}, true},
		{"everything", JSONP{Mode: "basic", Callback: "cb", BodyParam: "b", DefaultCallback: "d", DefaultMethod: "PATCH"}, true},
		{"unknown mode", JSONP{Mode: "full"}, false},
		{"method not a token", JSONP{DefaultMethod: "GE T"}, false},
		{"default callback without a body parameter", JSONP{DefaultCallback: "d"}, false},
	}
	for _, tt := range tests {
		if err := tt.cfg.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

func TestParseJSONPCaddyfile(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    *JSONP
		wantErr string
	}{
		{"empty block", "jsonp", &JSONP{}, ""},
		{
			"every option",
			"jsonp {\n mode basic\n callback cb\n body_param b\n default_callback d\n default_method PUT\n}",
			&JSONP{Mode: "basic", Callback: "cb", BodyParam: "b", DefaultCallback: "d", DefaultMethod: "PUT"}, "",
		},
		{"argument on the directive", "jsonp basic", nil, "wrong argument count"},
		{"unknown option", "jsonp {\n format basic\n}", nil, "unrecognized jsonp option 'format'"},
		{"missing argument", "jsonp {\n mode\n}", nil, "wrong argument count"},
		{"extra argument", "jsonp {\n mode basic extended\n}", nil, "wrong argument count"},
		{"invalid mode", "jsonp {\n mode full\n}", nil, "mode: want basic or extended"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := caddyfile.NewTestDispenser(tt.input)
			d.Next()
			got, err := parseJSONPCaddyfile(d)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseJSONPCaddyfileInsideABlock(t *testing.T) {
	d := caddyfile.NewTestDispenser("grip {\n jsonp {\n  mode basic\n }\n hub h\n}")
	d.Next()
	var opts []string
	for d.NextBlock(0) {
		opts = append(opts, d.Val())
		if d.Val() != "jsonp" {
			d.RemainingArgs()
			continue
		}
		j, err := parseJSONPCaddyfile(d)
		if err != nil || j.Mode != "basic" {
			t.Fatalf("%+v %v", j, err)
		}
	}
	if !reflect.DeepEqual(opts, []string{"jsonp", "hub"}) {
		t.Errorf("options seen %v: the jsonp block consumed too much or too little", opts)
	}
}

func FuzzJSONPExtendedScriptIsJSON(f *testing.F) {
	f.Add("cb", "X-A", "v", `{"hello": "world"}`+"\n")
	f.Add("f.g", "Content-Type", "text/plain", "\x00\xff\u2028\"\\")
	f.Fuzz(func(t *testing.T, callback, name, value, body string) {
		call := &jsonpCall{callback: callback, extended: true}
		out := string(call.encode(200, http.Header{name: {value}}, []byte(body)))
		arg, ok := strings.CutPrefix(out, "/**/"+callback+"(")
		if ok {
			arg, ok = strings.CutSuffix(arg, ");\n")
		}
		var got struct {
			Code    int               `json:"code"`
			Headers map[string]string `json:"headers"`
			Body    string            `json:"body"`
		}
		if !ok {
			t.Fatalf("not a call: %q", out)
		}
		if err := json.Unmarshal([]byte(arg), &got); err != nil {
			t.Fatalf("argument is not JSON: %v\n%s", err, arg)
		}
		if got.Code != 200 {
			t.Errorf("code %d", got.Code)
		}
		if utf8.ValidString(body) && got.Body != body {
			t.Errorf("body %q, want %q", got.Body, body)
		}
		if utf8.ValidString(name) && utf8.ValidString(value) && got.Headers[name] != value {
			t.Errorf("headers %v", got.Headers)
		}
	})
}

func FuzzJSONPRewrite(f *testing.F) {
	f.Add("callback=cb&_method=PUT&_headers=%7B%22X-A%22%3A%221%22%7D&_body=hi&x=1")
	f.Add("callback=&b=%zz")
	f.Add("b=%7B%7D&cb=x&callback=y&callback=z")
	cfg := &JSONP{BodyParam: "b", DefaultCallback: "d"}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		r := httptest.NewRequest("GET", "/p", nil)
		r.URL.RawQuery = rawQuery
		r2, call, err := cfg.rewrite(r)
		if err != nil || call == nil {
			return
		}
		if call.callback == "" {
			t.Fatalf("empty callback from %q", rawQuery)
		}
		for _, p := range parseQuery(r2.URL.RawQuery) {
			if p.name == "callback" || p.name == "b" || p.name == "_method" || p.name == "_headers" {
				t.Fatalf("%q left in %q", p.name, r2.URL.RawQuery)
			}
		}
		if !formats.IsToken(r2.Method) {
			t.Fatalf("method %q", r2.Method)
		}
	})
}
