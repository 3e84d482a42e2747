package integration_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// These tests prove that @fanoutio/grip, the GRIP library Fastly publishes
// for JavaScript, works against caddy-grip unchanged: its Publisher pushes
// to grip_publish (no auth, bearer key, JWT), and an origin built with its
// validateGripSig and GripInstruct holds clients through grip. The node
// side lives in testdata/jsgrip; its dependencies are installed by the test
// into a temporary copy, so nothing is cached in the repository.

// jsgripSrc holds the node scripts and the pinned package-lock.json.
const jsgripSrc = "testdata/jsgrip"

// jsgrip is an installed copy of testdata/jsgrip.
type jsgrip struct {
	node string // path of the node binary
	dir  string // the copy, with node_modules
}

// setupJSGrip copies testdata/jsgrip to a temporary directory and runs
// npm ci there. Without node or npm it skips, unless GRIP_REQUIRE_EXTERNAL=1
// (as in CI) makes that a failure.
func setupJSGrip(t *testing.T) *jsgrip {
	t.Helper()
	node, npm := nodeAndNpm(t, "the @fanoutio/grip interop tests")
	dir := npmProject(t, npm, jsgripSrc)
	return &jsgrip{node: node, dir: dir}
}

// jsPublishResult is what publish.mjs reports.
type jsPublishResult struct {
	OK            bool   `json:"ok"`
	StatusCode    int    `json:"statusCode"`
	Message       string `json:"message"`
	Authorization string `json:"authorization"`
}

// jsFormat is one format for publish.mjs: {"stream": ...}, {"response": ...}, ...
type jsFormat map[string]any

// publish runs publish.mjs: one item of formats to channel, through a
// Publisher built from config (control_uri is added). It returns the
// library's outcome; only a crash of the script fails the test here.
func (j *jsgrip) publish(t *testing.T, config map[string]any, channel string, formats ...jsFormat) jsPublishResult {
	t.Helper()
	cfg := map[string]any{"control_uri": strings.TrimSuffix(publishURL, "publish/")}
	for k, v := range config {
		cfg[k] = v
	}
	arg, err := json.Marshal(map[string]any{"config": cfg, "channel": channel, "formats": formats})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), j.node, "publish.mjs", string(arg))
	cmd.Dir = j.dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("publish.mjs %s: %v\n%s", arg, err, stderr.Bytes())
	}
	var res jsPublishResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("publish.mjs output %q: %v", out, err)
	}
	return res
}

// mustPublish is publish that fails the test unless the library reports
// success.
func (j *jsgrip) mustPublish(t *testing.T, config map[string]any, channel string, formats ...jsFormat) jsPublishResult {
	t.Helper()
	res := j.publish(t, config, channel, formats...)
	if !res.OK {
		t.Fatalf("@fanoutio/grip publish to %q failed: %d %s", channel, res.StatusCode, res.Message)
	}
	return res
}

// startJSOrigin runs origin.mjs with the given Grip-Sig key and issuer and
// returns its URL. It stops when the test ends.
func (j *jsgrip) startJSOrigin(t *testing.T, sigKey, sigIss string) string {
	t.Helper()
	return j.runNodeOrigin(t, "origin.mjs", "SIG_KEY="+sigKey, "SIG_ISS="+sigIss)
}

// runNodeOrigin runs a node origin script from the installed testdata with
// extra environment, waits for the port it reports on its first line of
// output, and returns its URL. The script exits when its stdin closes, at
// the end of the test.
func (j *jsgrip) runNodeOrigin(t *testing.T, script string, env ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), j.node, script)
	cmd.Dir = j.dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", script, err)
	}
	t.Cleanup(func() {
		stdin.Close()
		err := cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("%s (%v) stderr:\n%s", script, err, stderr.Bytes())
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	var ready struct {
		Port int `json:"port"`
	}
	if err != nil || json.Unmarshal([]byte(line), &ready) != nil || ready.Port == 0 {
		t.Fatalf("%s did not report its port: %q %v", script, line, err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", ready.Port)
}

// jsgripSites is gripSite with options for grip_publish as well.
func jsgripSites(origin, publishOptions, gripOptions string) string {
	return fmt.Sprintf(`
http://127.0.0.1:%d {
	grip_publish {
		%s
	}
}
http://127.0.0.1:%d {
	grip {
		%s
	}
	reverse_proxy %s
}
`, publishPort, publishOptions, caddyPort, gripOptions, strings.TrimPrefix(origin, "http://"))
}

// jsClient opens a connection per request: every subtest reloads Caddy,
// and a reload closes idle connections under a reused one.
var jsClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// asyncReply is the answer to a getAsync.
type asyncReply struct {
	resp *http.Response
	body string
	err  error
}

// getAsync GETs url in the background (a long-poll waits there); the
// answer arrives on the channel.
func getAsync(url string, header http.Header) <-chan asyncReply {
	done := make(chan asyncReply, 1)
	go func() {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			done <- asyncReply{err: err}
			return
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := jsClient.Do(req)
		if err != nil {
			done <- asyncReply{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- asyncReply{resp: resp, body: string(b), err: err}
	}()
	return done
}

// answer waits for a getAsync answer, failing the test on an error (the
// wait is a hang guard, not a performance assertion).
func answer(t *testing.T, done <-chan asyncReply) asyncReply {
	t.Helper()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("GET: %v", r.err)
		}
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("GET got no answer")
	}
	return asyncReply{}
}

// holdingOrigin is a plain Go origin: /stream holds a stream and /poll a
// long-poll, both on the channel named by ?ch=.
func holdingOrigin(t *testing.T) string {
	t.Helper()
	return startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Channel", r.URL.Query().Get("ch"))
		w.Header().Set("Content-Type", "text/plain")
		switch r.URL.Path {
		case "/stream":
			w.Header().Set("Grip-Hold", "stream")
			io.WriteString(w, "welcome\n")
		case "/poll":
			w.Header().Set("Grip-Hold", "response")
			w.Header().Set("X-Held", "kept")
			io.WriteString(w, "timed out\n")
		default:
			http.NotFound(w, r)
		}
	}).URL
}

func TestJSGrip(t *testing.T) {
	js := setupJSGrip(t)
	t.Run("Publisher", func(t *testing.T) { testJSPublisher(t, js) })
	t.Run("PublisherWrongKeyIs401", func(t *testing.T) { testJSPublisherWrongKey(t, js) })
	t.Run("Origin", func(t *testing.T) { testJSOrigin(t, js) })
}

const jsPublishKey = "js-publish-secret"

// checkAuthorization checks that the library sent the authorization the
// config asks for: "none", "key" (the key as a bearer token) or "jwt" (an
// HS256 JWT with iss js-publisher, signed with the key).
func checkAuthorization(t *testing.T, want, header string) {
	t.Helper()
	tok, bearer := strings.CutPrefix(header, "Bearer ")
	ok := false
	switch want {
	case "none":
		ok = header == ""
	case "key":
		ok = bearer && tok == jsPublishKey
	case "jwt":
		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return []byte(jsPublishKey), nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
		ok = bearer && err == nil && claims["iss"] == "js-publisher"
	}
	if !ok {
		t.Fatalf("Authorization %q, want %s", header, want)
	}
}

// testJSPublisher publishes every http format the library has, with each
// of its authorization modes, to a held stream and held long-polls.
func testJSPublisher(t *testing.T, js *jsgrip) {
	origin := holdingOrigin(t)
	cases := []struct {
		name       string
		publishKey string         // grip_publish's key, "" for none
		config     map[string]any // the Publisher's config beside control_uri
		auth       string         // what checkAuthorization wants
	}{
		{"no key", "", nil, "none"},
		{"key as bearer token", jsPublishKey, map[string]any{"key": jsPublishKey}, "key"},
		{"control_iss and key as JWT", jsPublishKey,
			map[string]any{"control_iss": "js-publisher", "key": jsPublishKey}, "jwt"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			publishOptions := ""
			if tc.publishKey != "" {
				publishOptions = "key " + tc.publishKey
			}
			loadCaddyfile(t, jsgripSites(origin, publishOptions, ""))
			ch := fmt.Sprintf("js-pub-%d", i)

			s := openStream(t, caddyURL+"/stream?ch="+ch, nil)
			if got := s.next(t); got != "welcome\n" {
				t.Fatalf("initial %q", got)
			}
			waitSubscribers(t, 1)

			// HttpStreamFormat with text, then with bytes (content-bin).
			res := js.mustPublish(t, tc.config, ch, jsFormat{"stream": "hello from js\n"})
			checkAuthorization(t, tc.auth, res.Authorization)
			if got := s.next(t); got != "hello from js\n" {
				t.Fatalf("stream got %q", got)
			}
			bin := "bin \x00\xff\n"
			js.mustPublish(t, tc.config, ch, jsFormat{"streamBase64": base64.StdEncoding.EncodeToString([]byte(bin))})
			if got := s.next(t); got != bin {
				t.Fatalf("binary stream got %q", got)
			}

			// HttpResponseFormat with every field, to a long-poll.
			poll := getAsync(caddyURL+"/poll?ch="+ch+"-lp", nil)
			waitSubscribers(t, 2)
			js.mustPublish(t, tc.config, ch+"-lp", jsFormat{"response": map[string]any{
				"code": 201, "reason": "Created By JS",
				"headers": map[string]string{"X-Pub": "js", "Content-Type": "application/json"},
				"body":    "{\"n\":1}\n",
			}})
			r := answer(t, poll)
			// The code arrives; the reason phrase cannot: Go's net/http
			// server always writes the standard one ("201 Created").
			if r.resp.StatusCode != http.StatusCreated || r.body != "{\"n\":1}\n" {
				t.Fatalf("long-poll got %q %q", r.resp.Status, r.body)
			}
			if h := r.resp.Header; h.Get("X-Pub") != "js" || h.Get("X-Held") != "kept" || h.Get("Content-Type") != "application/json" {
				t.Fatalf("long-poll headers %v", h)
			}
			waitSubscribers(t, 1)

			// One item with both formats (and a binary body): the stream
			// and a long-poll on the same channel each take theirs.
			poll = getAsync(caddyURL+"/poll?ch="+ch, nil)
			waitSubscribers(t, 2)
			js.mustPublish(t, tc.config, ch,
				jsFormat{"stream": "both\n"},
				jsFormat{"responseBase64": map[string]any{"body": base64.StdEncoding.EncodeToString([]byte("both \x01\n"))}})
			if got := s.next(t); got != "both\n" {
				t.Fatalf("stream got %q", got)
			}
			r = answer(t, poll)
			if r.resp.StatusCode != http.StatusOK || r.body != "both \x01\n" {
				t.Fatalf("long-poll got %d %q", r.resp.StatusCode, r.body)
			}

			// HttpStreamFormat's close.
			js.mustPublish(t, tc.config, ch, jsFormat{"streamClose": true})
			if rest := s.ended(t); len(rest) != 0 {
				t.Fatalf("after close: %q", rest)
			}
			waitSubscribers(t, 0)
		})
	}
}

// testJSPublisherWrongKey checks that a keyed grip_publish refuses the
// library's publishes without the right key, that the library reports
// 401, and that nothing refused reaches a client.
func testJSPublisherWrongKey(t *testing.T, js *jsgrip) {
	loadCaddyfile(t, jsgripSites(holdingOrigin(t), "key "+jsPublishKey, ""))
	const ch = "js-wrong-key"
	s := openStream(t, caddyURL+"/stream?ch="+ch, nil)
	if got := s.next(t); got != "welcome\n" {
		t.Fatalf("initial %q", got)
	}
	waitSubscribers(t, 1)
	cases := []struct {
		name   string
		config map[string]any
	}{
		{"no key", nil},
		{"wrong bearer key", map[string]any{"key": "not-the-key"}},
		{"JWT signed with wrong key", map[string]any{"control_iss": "js-publisher", "key": "not-the-key"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := js.publish(t, tc.config, ch, jsFormat{"stream": "refused\n"})
			if res.OK || res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("library reported %+v, want a 401 failure", res)
			}
		})
	}
	js.mustPublish(t, map[string]any{"key": jsPublishKey}, ch, jsFormat{"stream": "accepted\n"})
	if got := s.next(t); got != "accepted\n" {
		t.Fatalf("stream got %q, want only the accepted publish", got)
	}
}

// The Grip-Sig key and issuer the node origin expects.
const (
	jsSigKey = "js-origin-secret"
	jsSigIss = "caddy-edge"
)

// testJSOrigin puts grip in front of origin.mjs, which validates Grip-Sig
// with the library and answers with GripInstruct's headers.
func testJSOrigin(t *testing.T, js *jsgrip) {
	origin := js.startJSOrigin(t, jsSigKey, jsSigIss)
	signed := fmt.Sprintf("sig_key %s\n\t\tsig_iss %s", jsSigKey, jsSigIss)

	t.Run("stream hold with valid Grip-Sig", func(t *testing.T) {
		loadCaddyfile(t, jsgripSites(origin, "", signed))
		s := openStream(t, caddyURL+"/stream?ch=js-origin-a&ch=js-origin-b", nil)
		if s.resp.StatusCode != http.StatusOK || s.resp.Header.Get("X-Grip-Sig-Valid") != "true" {
			t.Fatalf("status %d headers %v", s.resp.StatusCode, s.resp.Header)
		}
		for k := range s.resp.Header {
			if strings.HasPrefix(k, "Grip-") {
				t.Fatalf("%s reached the client", k)
			}
		}
		if got := s.next(t); got != "welcome\n" {
			t.Fatalf("initial %q", got)
		}
		waitSubscribers(t, 1)
		publish(t, streamItem("js-origin-b", "via go\n"))
		if got := s.next(t); got != "via go\n" {
			t.Fatalf("got %q", got)
		}
		js.mustPublish(t, nil, "js-origin-a", jsFormat{"stream": "via js\n"})
		if got := s.next(t); got != "via js\n" {
			t.Fatalf("got %q", got)
		}
		js.mustPublish(t, nil, "js-origin-a", jsFormat{"streamClose": true})
		if rest := s.ended(t); len(rest) != 0 {
			t.Fatalf("after close: %q", rest)
		}
		waitSubscribers(t, 0)
	})

	t.Run("keep-alive from GripInstruct", func(t *testing.T) {
		loadCaddyfile(t, jsgripSites(origin, "", signed))
		s := openStream(t, caddyURL+"/stream?ch=js-origin-ka&ka=1", nil)
		if got := s.next(t); got != "welcome\n" {
			t.Fatalf("initial %q", got)
		}
		// Nothing is published: the library's Grip-Keep-Alive data follows.
		if got := s.next(t); got != ":ka\n" {
			t.Fatalf("keep-alive %q", got)
		}
	})

	t.Run("long-poll with prev-id answered by js publish", func(t *testing.T) {
		loadCaddyfile(t, jsgripSites(origin, "", signed))
		poll := getAsync(caddyURL+"/poll?ch=js-lp-a&ch=js-lp-b&prev=item-0", nil)
		waitSubscribers(t, 1)
		js.mustPublish(t, nil, "js-lp-b", jsFormat{"response": map[string]any{"body": "news\n"}})
		r := answer(t, poll)
		if r.resp.StatusCode != http.StatusOK || r.body != "news\n" || r.resp.Header.Get("X-Grip-Sig-Valid") != "true" {
			t.Fatalf("got %d %q %v", r.resp.StatusCode, r.body, r.resp.Header)
		}
		waitSubscribers(t, 0)
	})

	// The origin refuses anything the library does not accept as signed
	// by its key and issuer; grip passes the refusal on and holds nothing.
	forged, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": jsSigIss, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(jsSigKey))
	if err != nil {
		t.Fatal(err)
	}
	refused := []struct {
		name        string
		gripOptions string
		header      http.Header
	}{
		{"no sig_key", "", nil},
		{"wrong sig_key", fmt.Sprintf("sig_key wrong-secret\n\t\tsig_iss %s", jsSigIss), nil},
		{"wrong sig_iss", fmt.Sprintf("sig_key %s\n\t\tsig_iss someone-else", jsSigKey), nil},
		{"client's own Grip-Sig is not forwarded", "", http.Header{"Grip-Sig": {forged}}},
	}
	for _, tc := range refused {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			loadCaddyfile(t, jsgripSites(origin, "", tc.gripOptions))
			r := answer(t, getAsync(caddyURL+"/stream?ch=js-refused", tc.header))
			if r.resp.StatusCode != http.StatusForbidden || r.resp.Header.Get("X-Grip-Sig-Valid") != "false" || r.body != "invalid Grip-Sig\n" {
				t.Fatalf("got %d %q %v", r.resp.StatusCode, r.body, r.resp.Header)
			}
			if n := subscribers(); n != 0 {
				t.Fatalf("%d subscribers after a refusal", n)
			}
		})
	}
}
