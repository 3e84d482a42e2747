package instruct

import (
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"
)

// FuzzParseInstructJSON feeds arbitrary application/grip-instruct bodies to
// the instruction parser: it must never panic, must fail only with a complete
// *Error, must give the same result twice, and a success must hold
// within the limits with well-formed headers.
func FuzzParseInstructJSON(f *testing.F) {
	for _, s := range []string{
		`{"hold":{"mode":"stream","channels":[{"name":"a","prev-id":"1","filters":["f"]}],"keep-alive":{"content":"k","timeout":20}},` +
			`"response":{"code":200,"reason":"OK","headers":{"X-A":"1"},"body-bin":"AAEC"}}`,
		`{"hold":{"mode":"response","timeout":30,"channels":[{"name":"c"}],"meta":{"u":"1"}},"response":{"headers":[["X-B","2"]],"body":"x"}}`,
		`{"hold":{"channels":[]}}`, `{"response":{"code":1000}}`, `[]`, `{"hold":null}`, `{"hold":{"keep-alive":{"content-bin":"!!"}}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		h := http.Header{"Content-Type": {jsonType}}
		in, err := Parse(200, h.Clone(), []byte(body), testReqURL)
		in2, err2 := Parse(200, h.Clone(), []byte(body), testReqURL)
		if (err == nil) != (err2 == nil) || err == nil && !reflect.DeepEqual(in, in2) {
			t.Fatalf("not deterministic: %v / %v", err, err2)
		}
		if err != nil {
			var ie *Error
			if !errors.As(err, &ie) || ie.Msg == "" || ie.Header == "" {
				t.Fatalf("error %#v is not a complete *Error", err)
			}
			return
		}
		if len(in.Channels) > MaxChannels || in.Header == nil || in.Status < 200 || in.Status > 999 {
			t.Fatalf("limits broken: %+v", in)
		}
		if in.Hold != HoldNone && in.Timeout < 5*time.Second {
			t.Fatalf("timeout %v below the minimum", in.Timeout)
		}
		for _, c := range in.Channels {
			if c.Name == "" || len(c.Filters) > MaxFilters {
				t.Fatalf("bad channel %+v", c)
			}
		}
		if ka := in.KeepAlive; ka != nil && (len(ka.Data) == 0 || ka.Timeout < time.Second) {
			t.Fatalf("bad keep-alive %+v", ka)
		}
		for k, vs := range in.Header {
			if !httpguts.ValidHeaderFieldName(k) {
				t.Fatalf("invalid header name %q", k)
			}
			for _, v := range vs {
				if !httpguts.ValidHeaderFieldValue(v) {
					t.Fatalf("invalid value %q for header %q", v, k)
				}
			}
		}
	})
}
