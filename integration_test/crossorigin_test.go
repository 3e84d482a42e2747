package integration_test

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// auto_cross_origin and JSON-P, end to end: caddy-grip alone first, then
// against Pushpin 1.36 with the route option aco.

// acoOrigin is the origin of these tests: the path picks the behaviour and
// ?ch= the channel.
func acoOrigin(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	ch := r.URL.Query().Get("ch")
	hold := func(mode string) {
		h.Set("Grip-Hold", mode)
		h.Set("Grip-Channel", ch)
	}
	switch r.URL.Path {
	case "/ready":
		io.WriteString(w, originReady)
	case "/plain":
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Plain", "1")
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "{\"hello\": \"world\"}\n")
	case "/multi":
		h.Add("X-Multi", "a")
		h.Add("X-Multi", "b")
		io.WriteString(w, "multi\n")
	case "/cors-set":
		h.Set("Access-Control-Allow-Origin", "https://origin.example")
		h.Set("Access-Control-Max-Age", "60")
		h.Set("X-A", "1")
		io.WriteString(w, "set\n")
	case "/echo":
		// What the origin got, for checking a JSON-P request's rewrite.
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s content-type=%q x-a=%q accept=%q body=%q\n", r.Method, r.URL.RequestURI(),
			r.Header.Get("Content-Type"), r.Header.Values("X-A"), r.Header.Get("Accept"), b)
	case "/longpoll", "/timeout":
		hold("response")
		if r.URL.Path == "/timeout" {
			h.Set("Grip-Timeout", "5") // Pushpin's minimum
		}
		h.Set("Content-Type", "text/plain")
		h.Set("X-Held", "kept")
		io.WriteString(w, "timed out\n")
	case "/stream":
		hold("stream")
		h.Set("Content-Type", "text/plain")
		io.WriteString(w, "open\n")
	case "/sse":
		hold("stream")
		h.Set("Content-Type", "text/event-stream")
		h.Set("X-Stream", "1")
		io.WriteString(w, "event: open\n")
	default:
		http.NotFound(w, r)
	}
}

// acoCaddy loads caddy-grip with auto_cross_origin on two sites of ports
// of this test's own, one per JSON-P mode, both behind one publish
// endpoint.
func acoCaddy(t *testing.T, origin string) (extended, basic proxyUnderTest) {
	t.Helper()
	ports := freePorts(t, 3)
	site := func(port int, mode string) string {
		return fmt.Sprintf(`
http://127.0.0.1:%d {
	bind 127.0.0.1
	grip {
		auto_cross_origin
		jsonp {
			mode %s
		}
	}
	reverse_proxy %s
}
`, port, mode, strings.TrimPrefix(origin, "http://"))
	}
	loadCaddyfile(t, fmt.Sprintf(`
http://127.0.0.1:%d {
	bind 127.0.0.1
	grip_publish
}
`, ports[0])+site(ports[1], "extended")+site(ports[2], "basic"))
	publishURL := fmt.Sprintf("http://127.0.0.1:%d/publish/", ports[0])
	return proxyUnderTest{name: "caddy-grip", clientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[1]), publishURL: publishURL},
		proxyUnderTest{name: "caddy-grip", clientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2]), publishURL: publishURL}
}

// acoFetch does one request, failing the test on a transport error.
func acoFetch(t testing.TB, method, url string, header http.Header) clientView {
	t.Helper()
	o, err := diffFetch(method, url, "", header)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return accepted(t, o)
}

// accepted fails the test when Pushpin's handler did not take a hold: a
// Pushpin just started sometimes answers so, and its side is retried.
func accepted(t testing.TB, o clientView) clientView {
	t.Helper()
	if strings.Contains(o.body, "Accept service unavailable.") {
		t.Fatalf("%s %q", o.status, o.body)
	}
	return o
}

// ownRun makes channel names unique to this run: the hub outlives a test.
func ownRun() string { return fmt.Sprint("own-", time.Now().UnixNano()) }

// fromSite is the Origin header of a cross-origin browser request.
var fromSite = http.Header{"Origin": {"https://site.example"}}

// caddyOnlyHeaders are headers only Caddy adds (its reverse_proxy adds
// Via), so only caddy-grip exposes them.
var caddyOnlyHeaders = []string{"Server", "Via"}

// exposed is Access-Control-Expose-Headers sorted, less caddyOnlyHeaders:
// Pushpin keeps the response's header order.
func exposed(h http.Header) string {
	names := slices.DeleteFunc(strings.Split(h.Get("Access-Control-Expose-Headers"), ", "), func(n string) bool {
		return slices.Contains(caddyOnlyHeaders, n)
	})
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// corsView lists the Access-Control-* headers, sorted, the exposed names
// as exposed gives them.
func corsView(h http.Header) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(h)) {
		if !strings.HasPrefix(k, "Access-Control-") {
			continue
		}
		v := strings.Join(h[k], " | ")
		if k == "Access-Control-Expose-Headers" {
			if v = exposed(h); v == "" {
				continue // it named only caddyOnlyHeaders
			}
		}
		fmt.Fprintf(&b, "%s: %s\n", k, v)
	}
	return b.String()
}

// jsonpCall is an extended JSON-P response's argument.
type jsonpCall struct {
	Code    int               `json:"code"`
	Reason  string            `json:"reason"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// parseJSONP reads /**/<callback>(<argument>);\n.
func parseJSONP(t testing.TB, callback, script string) jsonpCall {
	t.Helper()
	arg, ok := strings.CutPrefix(script, "/**/"+callback+"(")
	if ok {
		arg, ok = strings.CutSuffix(arg, ");\n")
	}
	var c jsonpCall
	if !ok || json.Unmarshal([]byte(arg), &c) != nil {
		t.Fatalf("not an extended JSON-P call of %s: %q", callback, script)
	}
	return c
}

// view is the call as the proxies must agree on it: Pushpin's proxy and
// handler write the same object with different key order and spacing,
// and the headers that say who answered and when, and how, may differ.
func (c jsonpCall) view() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s\n", c.Code, c.Reason)
	for _, k := range slices.Sorted(maps.Keys(c.Headers)) {
		if k != "Date" && k != "Content-Length" && !slices.Contains(caddyOnlyHeaders, k) {
			fmt.Fprintf(&b, "%s: %s\n", k, c.Headers[k])
		}
	}
	return b.String() + "\n" + c.Body
}

// scriptView is a JSON-P response as a client sees it: status, type, no
// CORS headers, and the call, normalised when extended.
func scriptView(t testing.TB, o clientView, extended bool) string {
	t.Helper()
	if o.header.Get("Content-Type") != "application/javascript" {
		t.Errorf("Content-Type %q", o.header.Get("Content-Type"))
	}
	if cors := corsView(o.header); cors != "" {
		t.Errorf("a JSON-P response carries CORS headers:\n%s", cors)
	}
	if !extended {
		return o.status + "\n" + o.body
	}
	return o.status + "\n" + parseJSONP(t, "cb", o.body).view()
}

// jsonpParams is a JSON-P request's query: callback cb, and the method,
// headers and body it asks for. Spaces are %20: JSON-P does not read '+'.
func jsonpParams(method, headers, body string) string {
	esc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	return "callback=cb&_method=" + esc(method) + "&_headers=" + esc(headers) + "&_body=" + esc(body)
}

func TestCrossOriginPassthroughGetsCORSHeaders(t *testing.T) {
	origin := startOrigin(t, acoOrigin)
	p, _ := acoCaddy(t, origin.URL)

	o := acoFetch(t, "GET", p.clientURL+"/plain", fromSite)
	want := "Access-Control-Allow-Credentials: true\n" +
		"Access-Control-Allow-Methods: OPTIONS, HEAD, GET, POST, PUT, DELETE\n" +
		"Access-Control-Allow-Origin: https://site.example\n" +
		"Access-Control-Expose-Headers: Date, X-Plain\n" +
		"Access-Control-Max-Age: 3600\n"
	if o.status != "418 I'm a teapot" || o.body != "{\"hello\": \"world\"}\n" || corsView(o.header) != want {
		t.Errorf("%s %q\n%s", o.status, o.body, corsView(o.header))
	}
	if o.header.Get("Vary") != "Origin" {
		t.Errorf("Vary %q: an echoed Origin must vary on it", o.header.Get("Vary"))
	}

	o = acoFetch(t, "GET", p.clientURL+"/plain", nil)
	if o.header.Get("Access-Control-Allow-Origin") != "*" || o.header.Get("Vary") != "" {
		t.Errorf("without Origin: %v", o.header)
	}
}

func TestCrossOriginOriginSetHeadersWin(t *testing.T) {
	origin := startOrigin(t, acoOrigin)
	p, _ := acoCaddy(t, origin.URL)

	o := acoFetch(t, "GET", p.clientURL+"/cors-set", fromSite)
	if o.header.Get("Access-Control-Allow-Origin") != "https://origin.example" ||
		o.header.Get("Access-Control-Max-Age") != "60" ||
		o.header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("%s", corsView(o.header))
	}
}

func TestCrossOriginPreflightGoesToTheOrigin(t *testing.T) {
	origin := startOrigin(t, acoOrigin)
	p, _ := acoCaddy(t, origin.URL)

	o := acoFetch(t, "OPTIONS", p.clientURL+"/plain", http.Header{
		"Access-Control-Request-Method":  {"PUT"},
		"Access-Control-Request-Headers": {"X-A, x-b", "X-C"},
	})
	if o.status != "418 I'm a teapot" || o.header.Get("Access-Control-Allow-Methods") != "PUT" ||
		o.header.Get("Access-Control-Allow-Headers") != "X-A, x-b, X-C" {
		t.Errorf("%s\n%s", o.status, corsView(o.header))
	}
}

func TestCrossOriginHeldResponsesGetCORSHeaders(t *testing.T) {
	origin := startOrigin(t, acoOrigin)
	p, _ := acoCaddy(t, origin.URL)
	p.run = ownRun()

	o := answeredBy(t, p, p.clientURL+"/longpoll?ch="+p.channel("aco-lp"), responseItemWith(p.channel("aco-lp"), `"code":201,"headers":{"X-Pub":"1"},"body":"pushed\n"`))
	if o.status != "201 Created" || o.body != "pushed\n" ||
		o.header.Get("Access-Control-Allow-Origin") != "*" || exposed(o.header) != "Date, X-Held, X-Pub" {
		t.Errorf("answered by a publish: %s %q\n%s", o.status, o.body, corsView(o.header))
	}

	o = acoFetch(t, "GET", p.clientURL+"/timeout?ch="+p.channel("aco-timeout"), fromSite)
	if o.status != "200 OK" || o.body != "timed out\n" ||
		o.header.Get("Access-Control-Allow-Origin") != "https://site.example" || exposed(o.header) != "Date, X-Held" {
		t.Errorf("timed out: %s %q\n%s", o.status, o.body, corsView(o.header))
	}
}

func TestCrossOriginSSEStreamGetsCORSHeaders(t *testing.T) {
	origin := startOrigin(t, acoOrigin)
	p, _ := acoCaddy(t, origin.URL)
	p.run = ownRun()
	ch := p.channel("aco-sse")

	s := openStream(t, p.clientURL+"/sse?ch="+ch, fromSite)
	if got := s.next(t); got != "event: open\n" {
		t.Fatalf("first line %q", got)
	}
	h := s.resp.Header
	if h.Get("Content-Type") != "text/event-stream" || h.Get("Access-Control-Allow-Origin") != "https://site.example" ||
		exposed(h) != "Date, X-Stream" || h.Get("Access-Control-Max-Age") != "3600" {
		t.Errorf("stream head %v", h)
	}
	syncStream(t, p, s, ch)
	publishTo(t, p, streamItem(ch, "data: hi\n"))
	if got := s.next(t); got != "data: hi\n" {
		t.Errorf("published line %q", got)
	}
	publishTo(t, p, closeItem(ch))
	s.ended(t)
}

// responseItemWith is a publish body with one http-response item whose
// JSON members are given.
func responseItemWith(channel, members string) string {
	return fmt.Sprintf(`{"items":[{"channel":%q,"formats":{"http-response":{%s}}}]}`, channel, members)
}

func TestCrossOriginJSONP(t *testing.T) {
	origin := startOrigin(t, acoOrigin)
	ext, basic := acoCaddy(t, origin.URL)
	ext.run, basic.run = ownRun(), ownRun()

	t.Run("ExtendedPassthrough", func(t *testing.T) {
		o := acoFetch(t, "GET", ext.clientURL+"/plain?callback=cb", fromSite)
		got := scriptView(t, o, true)
		want := "200 OK\n418 I'm a teapot\nCache-Control: no-cache\nContent-Type: application/json\nX-Plain: 1\n\n{\"hello\": \"world\"}\n"
		if got != want {
			t.Errorf("got\n%s\nwant\n%s", got, want)
		}
		if o.header.Get("Cache-Control") != "no-cache" || o.header.Get("X-Plain") != "" {
			t.Errorf("script headers %v", o.header)
		}
	})
	t.Run("ExtendedJoinsRepeatedHeaders", func(t *testing.T) {
		c := parseJSONP(t, "cb", acoFetch(t, "GET", ext.clientURL+"/multi?callback=cb", nil).body)
		if c.Headers["X-Multi"] != "a, b" {
			t.Errorf("X-Multi %q", c.Headers["X-Multi"])
		}
	})
	t.Run("ExtendedLongPoll", func(t *testing.T) {
		ch := ext.channel("aco-jsonp-lp")
		o := answeredBy(t, ext, ext.clientURL+"/longpoll?callback=cb&ch="+ch,
			responseItemWith(ch, `"code":201,"headers":{"X-Pub":"1"},"body":"{\"n\":1}\n"`))
		got := scriptView(t, o, true)
		want := "200 OK\n201 Created\nContent-Type: text/plain\nX-Held: kept\nX-Pub: 1\n\n{\"n\":1}\n"
		if got != want {
			t.Errorf("got\n%s\nwant\n%s", got, want)
		}
	})
	t.Run("BasicPassthrough", func(t *testing.T) {
		o := acoFetch(t, "GET", basic.clientURL+"/plain?callback=cb", nil)
		if got := scriptView(t, o, false); got != "200 OK\n/**/cb({\"hello\": \"world\"});\n" {
			t.Errorf("got %q", got)
		}
	})
	t.Run("BasicLongPoll", func(t *testing.T) {
		ch := basic.channel("aco-jsonp-basic-lp")
		o := answeredBy(t, basic, basic.clientURL+"/longpoll?callback=cb&ch="+ch, responseItemWith(ch, `"body":"[1]\r\n"`))
		if got := scriptView(t, o, false); got != "200 OK\n/**/cb([1]);\n" {
			t.Errorf("got %q", got)
		}
	})
	t.Run("RequestRewrite", func(t *testing.T) {
		q := jsonpParams("PUT", `{"X-A":"1","Accept":"text/html"}`, "hi there")
		c := parseJSONP(t, "cb", acoFetch(t, "GET", ext.clientURL+"/echo?"+q, http.Header{"X-A": {"client"}}).body)
		want := `PUT /echo content-type="" x-a=["1" "client"] accept="*/*" body="hi there"` + "\n"
		if c.Code != 200 || c.Body != want {
			t.Errorf("origin saw %d %q, want %q", c.Code, c.Body, want)
		}
	})
	t.Run("StreamHoldIsWrappedWhenItCloses", func(t *testing.T) {
		ch := ext.channel("aco-jsonp-stream")
		before := subscribers()
		done := make(chan clientView, 1)
		go func() {
			o, err := diffFetch("GET", ext.clientURL+"/stream?callback=cb&ch="+ch, "", nil)
			if err != nil {
				t.Errorf("GET: %v", err)
			}
			done <- o
		}()
		eventually(t, "the stream hold subscribed", func() bool { return subscribers() > before })
		publishTo(t, ext, streamItem(ch, "one\n"))
		publishTo(t, ext, closeItem(ch))
		c := parseJSONP(t, "cb", (<-done).body)
		if c.Code != 200 || c.Body != "open\none\n" || c.Headers["Content-Type"] != "text/plain" {
			t.Errorf("%+v", c)
		}
	})
	t.Run("BadParameters", func(t *testing.T) {
		for _, tt := range []struct{ query, text string }{
			{"callback=cb&_headers=x", "Invalid _headers parameter.\n"},
			{"callback=", "Invalid callback parameter.\n"},
			{"callback=cb&_method=", "Invalid _method parameter.\n"},
		} {
			o := acoFetch(t, "GET", ext.clientURL+"/plain?"+tt.query, fromSite)
			if o.status != "400 Bad Request" || o.body != tt.text || o.header.Get("Content-Type") != "text/plain" ||
				o.header.Get("Access-Control-Allow-Origin") != "https://site.example" {
				t.Errorf("%s: %s %q %v", tt.query, o.status, o.body, o.header)
			}
		}
	})
}

// TestCrossOriginDifferentialAgainstPushpin compares caddy-grip with a
// Pushpin routing with aco (and jsonp_mode=basic). Deliberate differences,
// which the views leave out: caddy-grip sorts Access-Control-Expose-Headers
// and adds Vary: Origin when it echoes Origin; Caddy adds Server and Via,
// which it then exposes; an extended JSON-P call is compared as parsed JSON
// (Pushpin's handler and proxy write it with different key order and
// spacing), less Date and Content-Length; the script response's own
// headers are not compared (Pushpin's handler keeps the held response's);
// and no Grip-Status reason is used, as caddy-grip sends the standard one.
func TestCrossOriginDifferentialAgainstPushpin(t *testing.T) {
	requirePushpin(t)
	origin := startOrigin(t, acoOrigin)
	ext, basic := acoCaddy(t, origin.URL)

	t.Run("Extended", func(t *testing.T) {
		env := newDiffEnv(startPushpinCond(t, origin.URL, ",aco", ""), ext)
		warmUp(t, env, "a stream hold", streamRoundTrip)
		runACOScenarios(t, env, []acoScenario{
			{"LongPollTimeout", diffACOTimeout}, // waits 5 s: first, to overlap
			{"Passthrough", diffACOPassthrough},
			{"OriginSetHeadersWin", diffACOOriginSet},
			{"Preflight", diffACOPreflight},
			{"LongPollAnswered", diffACOLongPoll},
			{"SSEStream", diffACOSSE},
			{"JSONPPassthrough", diffJSONP(true, "/plain?callback=cb")},
			{"JSONPRequestRewrite", diffJSONP(true, "/echo?"+jsonpParams("PUT", `{"X-A":"1","Accept":"text/html"}`, "hi there"))},
			{"JSONPLongPoll", diffJSONPLongPoll(true)},
			{"BadParameters", diffJSONPBadParameters},
		})
	})
	t.Run("Basic", func(t *testing.T) {
		env := newDiffEnv(startPushpinCond(t, origin.URL, ",aco,jsonp_mode=basic", ""), basic)
		warmUp(t, env, "a stream hold", streamRoundTrip)
		runACOScenarios(t, env, []acoScenario{
			{"JSONPPassthrough", diffJSONP(false, "/plain?callback=cb")},
			// Basic mode's default method is POST, on both.
			{"JSONPRequestRewrite", diffJSONP(false, "/echo?callback=cb")},
			{"JSONPLongPoll", diffJSONPLongPoll(false)},
		})
	})
}

type acoScenario struct {
	name string
	run  func(*testing.T, diffEnv)
}

// runACOScenarios runs the scenarios side by side; the caller's Pushpin
// stops once they are all done.
func runACOScenarios(t *testing.T, env diffEnv, scenarios []acoScenario) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			sc.run(t, env)
		})
	}
}

// acoView is a response as the proxies must agree on it under aco: status,
// CORS headers and body.
func acoView(o clientView) string {
	return o.status + "\n" + corsView(o.header) + "\n" + o.body
}

func diffACOPassthrough(t *testing.T, env diffEnv) {
	pp, cg := onBoth(t, env, func(t testing.TB, p proxyUnderTest) clientView {
		return acoFetch(t, "GET", p.clientURL+"/plain", fromSite)
	})
	// caddy-grip adds Vary: Origin to an echoed Origin; Pushpin does not.
	sameView(t, "pass-through response", acoView(pp), acoView(cg))
}

func diffACOOriginSet(t *testing.T, env diffEnv) {
	pp, cg := onBoth(t, env, func(t testing.TB, p proxyUnderTest) clientView {
		return acoFetch(t, "GET", p.clientURL+"/cors-set", fromSite)
	})
	sameView(t, "response with the origin's own CORS headers", acoView(pp), acoView(cg))
}

func diffACOPreflight(t *testing.T, env diffEnv) {
	pp, cg := onBoth(t, env, func(t testing.TB, p proxyUnderTest) clientView {
		return acoFetch(t, "OPTIONS", p.clientURL+"/plain", http.Header{
			"Origin":                         {"https://site.example"},
			"Access-Control-Request-Method":  {"PUT"},
			"Access-Control-Request-Headers": {"X-A, x-b", "X-C"},
		})
	})
	sameView(t, "preflight answered by the origin", acoView(pp), acoView(cg))
}

func diffACOLongPoll(t *testing.T, env diffEnv) {
	pp, cg := onBoth(t, env, func(t testing.TB, p proxyUnderTest) clientView {
		ch := p.channel("aco-lp")
		return accepted(t, answeredBy(t, p, p.clientURL+"/longpoll?ch="+ch,
			responseItemWith(ch, `"code":201,"headers":{"X-Pub":"1"},"body":"pushed\n"`)))
	})
	sameView(t, "long-poll answered by a publish", acoView(pp), acoView(cg))
}

func diffACOTimeout(t *testing.T, env diffEnv) {
	pp, cg := onBoth(t, env, func(t testing.TB, p proxyUnderTest) clientView {
		return acoFetch(t, "GET", p.clientURL+"/timeout?ch="+p.channel("aco-timeout"), fromSite)
	})
	sameView(t, "long-poll timeout", acoView(pp), acoView(cg))
}

func diffACOSSE(t *testing.T, env diffEnv) {
	pp, cg := onBoth(t, env, func(t testing.TB, p proxyUnderTest) string {
		ch := p.channel("aco-sse")
		s := openStream(t, p.clientURL+"/sse?ch="+ch, fromSite)
		first := s.next(t)
		syncStream(t, p, s, ch)
		publishTo(t, p, closeItem(ch))
		s.ended(t)
		return s.resp.Status + "\n" + corsView(s.resp.Header) + "\n" + first
	})
	sameView(t, "SSE stream head", pp, cg)
}

// diffJSONP compares a JSON-P request that the origin answers at once.
func diffJSONP(extended bool, target string) func(*testing.T, diffEnv) {
	return func(t *testing.T, env diffEnv) {
		pp, cg := onBoth(t, env, func(t testing.TB, p proxyUnderTest) string {
			return scriptView(t, acoFetch(t, "GET", p.clientURL+target, http.Header{"X-A": {"client"}}), extended)
		})
		sameView(t, "JSON-P response", pp, cg)
	}
}

// diffJSONPLongPoll compares a JSON-P long-poll answered by a publish.
func diffJSONPLongPoll(extended bool) func(*testing.T, diffEnv) {
	return func(t *testing.T, env diffEnv) {
		pp, cg := onBoth(t, env, func(t testing.TB, p proxyUnderTest) string {
			ch := p.channel("aco-jsonp-lp")
			o := answeredBy(t, p, p.clientURL+"/longpoll?callback=cb&ch="+ch,
				responseItemWith(ch, `"code":201,"headers":{"X-Pub":"1"},"body":"{\"n\":1}\n"`))
			return scriptView(t, accepted(t, o), extended)
		})
		sameView(t, "JSON-P long-poll answered by a publish", pp, cg)
	}
}

func diffJSONPBadParameters(t *testing.T, env diffEnv) {
	pp, cg := onBoth(t, env, func(t testing.TB, p proxyUnderTest) string {
		var b strings.Builder
		for _, q := range []string{"callback=cb&_headers=x", "callback=cb&_headers=%5B%5D", "callback=", "callback=cb&_method=", "callback=cb&_body="} {
			o := acoFetch(t, "GET", p.clientURL+"/plain?"+q, fromSite)
			fmt.Fprintf(&b, "%s: %s %s\n%s%s\n", q, o.status, o.header.Get("Content-Type"), corsView(o.header), o.body)
		}
		return b.String()
	})
	sameView(t, "bad JSON-P parameters", pp, cg)
}
