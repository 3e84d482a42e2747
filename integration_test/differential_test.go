package integration_test

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The differential test drives one origin and the same publishes through a
// private Pushpin and through caddy-grip, and compares what the client sees.
// Pushpin is the reference: a difference is a caddy-grip bug unless a
// comment at the assertion says why it is deliberate.

// proxyUnderTest is one of the two proxies a scenario drives, as one
// attempt of the scenario sees it.
type proxyUnderTest struct {
	name       string
	clientURL  string
	publishURL string
	// run is unique to this test run and attempt: caddy-grip's hub and id
	// cache outlive a test within the process, and Pushpin remembers ids
	// (60 s) and each channel's last id, so a retried attempt must not meet
	// the channels of the one before.
	run string
}

// channel names a channel for this attempt of a scenario.
func (p proxyUnderTest) channel(name string) string { return name + "-" + p.run }

// diffEnv is what every scenario gets: both proxies, the Pushpin behind the
// first, and a suffix unique to this test run, which onBoth extends per
// attempt into each proxyUnderTest's run.
type diffEnv struct {
	proxies [2]proxyUnderTest // Pushpin first
	oracle  *pushpin
	run     string
}

// newDiffEnv pairs a private Pushpin with caddy-grip for one test.
func newDiffEnv(pp *pushpin, caddy proxyUnderTest) diffEnv {
	return diffEnv{
		proxies: [2]proxyUnderTest{{name: "pushpin", clientURL: pp.clientURL, publishURL: pp.publishURL}, caddy},
		oracle:  pp,
		run:     fmt.Sprint(time.Now().UnixNano()),
	}
}

// originReady is the origin's answer on /ready, which tells startPushpin
// that requests get through.
const originReady = "ready\n"

// diffOrigin is the origin both proxies forward to: the path picks the
// behaviour and ?ch= the channel.
func diffOrigin(w http.ResponseWriter, r *http.Request) {
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
		h.Set("Content-Type", "text/plain")
		h.Set("X-Plain", "1")
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "plain\n")
	case "/longpoll", "/timeout":
		hold("response")
		if r.URL.Path == "/timeout" {
			h.Set("Grip-Timeout", "5") // Pushpin's minimum
		}
		h.Set("Content-Type", "text/plain")
		h.Set("X-Held", "kept")
		io.WriteString(w, "timed out\n")
	case "/status":
		hold("response")
		h.Set("Grip-Timeout", "5")
		h.Set("Grip-Status", "404 Nothing Yet")
		h.Set("X-Held", "kept")
		io.WriteString(w, "nothing yet\n")
	case "/nohold-status":
		h.Set("Grip-Channel", ch)
		h.Set("Grip-Status", "202")
		h.Set("X-Keep", "1")
		io.WriteString(w, "plain\n")
	case "/stream":
		hold("stream")
		h.Set("Content-Type", "text/plain")
		h.Set("X-Held", "kept")
		io.WriteString(w, "welcome\n")
	case "/sse":
		hold("stream")
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		io.WriteString(w, ":ok\n\n")
	case "/invalid":
		invalidInstruct(w, r.URL.Query().Get("case"))
	default:
		http.NotFound(w, r)
	}
}

// invalidInstruct answers with an instruction both proxies must reject.
func invalidInstruct(w http.ResponseWriter, which string) {
	h := w.Header()
	h.Set("Grip-Channel", "bad")
	switch which {
	case "hold":
		h.Set("Grip-Hold", "forever")
	case "timeout":
		h.Set("Grip-Hold", "response")
		h.Set("Grip-Timeout", "soon")
	case "status":
		h.Set("Grip-Hold", "response")
		h.Set("Grip-Status", "abc")
	case "keepalive":
		h.Set("Grip-Hold", "stream")
		h.Set("Grip-Keep-Alive", `x\; format=cstring`) // dangling backslash
	case "json":
		h.Set("Content-Type", "application/grip-instruct")
		io.WriteString(w, `{"hold":`)
		return
	case "json-status":
		h.Set("Content-Type", "application/grip-instruct")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"hold":{"mode":"response","channels":[{"name":"bad"}]}}`)
		return
	}
	io.WriteString(w, "x")
}

func TestDifferentialAgainstPushpin(t *testing.T) {
	requirePushpin(t)
	origin := startOrigin(t, diffOrigin)
	pp := startPushpin(t, origin.URL)
	env := newDiffEnv(pp, diffCaddy(t, origin.URL))
	warmUp(t, env, "a stream hold", streamRoundTrip)
	scenarios := []struct {
		name string
		run  func(*testing.T, diffEnv)
	}{
		// The ones that wait on timers first, so that they overlap.
		{"SequencingReordersAndReleases", diffSequencing},
		{"LongPollTimeout", diffLongPollTimeout},
		{"GripStatusOnTimeout", diffGripStatusOnTimeout},
		{"Passthrough", diffPassthrough},
		{"LongPollAnsweredByPublish", diffLongPollAnswered},
		{"GripStatusThenPublish", diffGripStatusThenPublish},
		{"GripStatusWithoutHold", diffGripStatusWithoutHold},
		{"HTTPStream", diffHTTPStream},
		{"SSE", diffSSE},
		{"DuplicateIDDeliveredOnce", diffDedup},
		{"InvalidInstruct", diffInvalidInstruct},
		{"PublishEndpoint", diffPublishEndpoint},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			sc.run(t, env)
		})
	}
}

// diffCaddy loads gripSite's configuration on loopback ports of this test's
// own and returns it as a proxy under test. The harness's fixed ports are shared by
// every test process on the machine, and Caddy binds with SO_REUSEPORT, so a
// concurrent run elsewhere would silently take some of the connections.
// gripOptions go inside the grip block.
func diffCaddy(t *testing.T, origin string, gripOptions ...string) proxyUnderTest {
	ports := freePorts(t, 2)
	loadCaddyfile(t, fmt.Sprintf(`
http://127.0.0.1:%d {
	bind 127.0.0.1
	grip_publish
}
http://127.0.0.1:%d {
	bind 127.0.0.1
	grip {
		%s
	}
	reverse_proxy %s
}
`, ports[0], ports[1], strings.Join(gripOptions, "\n\t\t"), strings.TrimPrefix(origin, "http://")))
	return proxyUnderTest{
		name:       "caddy-grip",
		clientURL:  fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		publishURL: fmt.Sprintf("http://127.0.0.1:%d/publish/", ports[0]),
	}
}

// maxPushpinAttempts bounds how often onBoth runs Pushpin's side of a
// scenario when only that side fails: Pushpin, the oracle, now and then
// drops a stream hold on a loaded machine, and that must neither fail the
// test nor hide a failure of caddy-grip's.
const maxPushpinAttempts = 3

// onBoth runs f against both proxies at the same time and returns what each
// saw, Pushpin's first. When only Pushpin's side failed it runs that side
// again, on fresh channels, up to maxPushpinAttempts in all. It stops the
// test, reporting what each side recorded, if caddy-grip's side failed or
// Pushpin's failed on every attempt.
func onBoth[T any](t *testing.T, env diffEnv, f func(testing.TB, proxyUnderTest) T) (pushpin, caddy T) {
	t.Helper()
	var pp, cg attempt[T]
	var wg sync.WaitGroup
	wg.Go(func() { pp = runAttempt(t, env.proxies[0], env.run, 1, f) })
	wg.Go(func() { cg = runAttempt(t, env.proxies[1], env.run, 1, f) })
	wg.Wait()
	for n := 2; pp.failed() && !cg.failed() && n <= maxPushpinAttempts; n++ {
		t.Logf("%s: attempt %d of %d failed at %s, retrying on fresh channels:\n%s",
			pp.name, n-1, maxPushpinAttempts, pp.end.Format("15:04:05.000"), strings.Join(pp.errs, "\n"))
		if env.oracle != nil {
			env.oracle.flaked()
		}
		pp = runAttempt(t, env.proxies[0], env.run, n, f)
	}
	if pp.failed() || cg.failed() {
		pp.report(t)
		cg.report(t)
		t.FailNow()
	}
	for _, a := range []attempt[T]{pp, cg} {
		if v := fmt.Sprintf("%+v", a.out); strings.Contains(v, a.run) {
			// The two sides' channel names differ after a retry.
			t.Errorf("%s's view names this attempt's channels (%s); normalise it:\n%s", a.name, a.run, v)
		}
	}
	return pp.out, cg.out
}

// warmUp makes roundTrip through the environment's Pushpin succeed once
// before the scenarios run, trying again (on fresh channels) for up to 60 s
// and logging each failure: the first stream holds of a Pushpin just
// started on a loaded machine are the ones that fail.
func warmUp(t *testing.T, env diffEnv, what string, roundTrip func(testing.TB, proxyUnderTest)) {
	t.Helper()
	start := time.Now()
	for n := 1; ; n++ {
		a := runAttempt(t, env.proxies[0], env.run+"-warm-up", n, func(t testing.TB, p proxyUnderTest) struct{} {
			roundTrip(t, p)
			return struct{}{}
		})
		if !a.failed() {
			t.Logf("%s: %s made its round trip on attempt %d, after %v", a.name, what, n, time.Since(start).Round(time.Millisecond))
			return
		}
		t.Logf("%s: warm-up attempt %d (%s) failed at %s:\n%s", a.name, n, what, a.end.Format("15:04:05.000"), strings.Join(a.errs, "\n"))
		if time.Since(start) > 60*time.Second {
			t.Fatalf("%s: %s never made a round trip in 60 s", a.name, what)
		}
	}
}

// streamRoundTrip opens a stream hold on a channel of its own, publishes
// until a message arrives, then closes it with a publish.
func streamRoundTrip(t testing.TB, p proxyUnderTest) {
	ch := p.channel("warm-up")
	s := openStream(t, p.clientURL+"/stream?ch="+ch, nil)
	s.next(t)
	syncStream(t, p, s, ch)
	publishTo(t, p, closeItem(ch))
	s.ended(t)
}

// attempt is how one run of one side of a scenario went.
type attempt[T any] struct {
	name string // the proxy's
	n    int    // 1 for the first attempt
	run  string // the attempt's proxyUnderTest.run
	out  T      // what f returned, if it returned
	errs []string
	end  time.Time
}

// failed reports whether the attempt recorded a failure.
func (a attempt[T]) failed() bool { return len(a.errs) > 0 }

// report fails t with every failure the attempt recorded.
func (a attempt[T]) report(t *testing.T) {
	t.Helper()
	who := a.name
	if a.n > 1 {
		who = fmt.Sprintf("%s (attempt %d of %d)", a.name, a.n, maxPushpinAttempts)
	}
	for _, e := range a.errs {
		t.Errorf("%s: %s", who, e)
	}
}

// runAttempt runs f against p, as attempt n of the test run run, on a
// goroutine of its own with a recordingTB, and returns how it went once the
// attempt's cleanups have run.
func runAttempt[T any](t *testing.T, p proxyUnderTest, run string, n int, f func(testing.TB, proxyUnderTest) T) attempt[T] {
	p.run = fmt.Sprintf("%s-%d", run, n)
	prefix := p.name + ": "
	if n > 1 {
		prefix = fmt.Sprintf("%s (attempt %d): ", p.name, n)
	}
	rec := &recordingTB{TB: t, prefix: prefix}
	a := attempt[T]{name: p.name, n: n, run: p.run}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer rec.runCleanups()
		returned := false
		defer func() {
			if !returned && !rec.Failed() {
				rec.record("ended without a failure reported (runtime.Goexit)")
			}
		}()
		a.out = f(rec, p)
		returned = true
	}()
	<-done
	a.errs = rec.failures()
	a.end = time.Now()
	return a
}

// recordingTB is the testing.TB one side of a differential scenario runs
// with, on a goroutine of its own. It records failures instead of
// reporting them, so that onBoth can decide whether to retry the side;
// Fatal ends just that goroutine (testing allows FailNow only on the
// test's own). Logs pass through, prefixed with the side, and cleanups run
// when the attempt ends, so that a retry starts with the last attempt's
// connections closed.
type recordingTB struct {
	testing.TB // the scenario's test: Name, Context, TempDir and the like
	prefix     string

	mu       sync.Mutex
	errs     []string
	helpers  map[string]bool // functions that called Helper
	cleanups []func()
}

func (r *recordingTB) Error(args ...any) { r.record(fmt.Sprintln(args...)) }
func (r *recordingTB) Errorf(format string, args ...any) {
	r.record(fmt.Sprintf(format, args...))
}
func (r *recordingTB) Fatal(args ...any) { r.record(fmt.Sprintln(args...)); runtime.Goexit() }
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.record(fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (r *recordingTB) Fail()    { r.record("failed") }
func (r *recordingTB) FailNow() { r.record("failed"); runtime.Goexit() }
func (r *recordingTB) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.errs) > 0
}

// Skip and its kin end the attempt as a failure: a side cannot skip the
// scenario on its own.
func (r *recordingTB) Skip(args ...any) {
	r.record("skipped: " + fmt.Sprintln(args...))
	runtime.Goexit()
}
func (r *recordingTB) Skipf(format string, args ...any) {
	r.record("skipped: " + fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (r *recordingTB) SkipNow() { r.record("skipped"); runtime.Goexit() }

func (r *recordingTB) Log(args ...any) {
	r.TB.Helper()
	r.TB.Log(r.prefix + strings.TrimSuffix(fmt.Sprintln(args...), "\n"))
}
func (r *recordingTB) Logf(format string, args ...any) {
	r.TB.Helper()
	r.TB.Logf(r.prefix+format, args...)
}

// Helper marks its caller as a helper, so that a recorded failure names
// the line of the first caller that is not one, as testing does.
func (r *recordingTB) Helper() {
	pc, _, _, ok := runtime.Caller(1)
	if !ok {
		return
	}
	name := runtime.FuncForPC(pc).Name()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.helpers == nil {
		r.helpers = map[string]bool{}
	}
	r.helpers[name] = true
}

// Cleanup registers f to run when the attempt ends.
func (r *recordingTB) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

// runCleanups runs the registered cleanups, the last registered first.
func (r *recordingTB) runCleanups() {
	r.mu.Lock()
	fs := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for _, f := range slices.Backward(fs) {
		f()
	}
}

// record notes a failure with the file and line of the first caller that
// is neither recordingTB nor a helper.
func (r *recordingTB) record(msg string) {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	r.mu.Lock()
	defer r.mu.Unlock()
	loc := "?"
	for {
		fr, more := frames.Next()
		if !strings.Contains(fr.Function, ".(*recordingTB).") && !r.helpers[fr.Function] {
			loc = fmt.Sprintf("%s:%d", filepath.Base(fr.File), fr.Line)
			break
		}
		if !more {
			break
		}
	}
	r.errs = append(r.errs, loc+": "+strings.TrimSuffix(msg, "\n"))
}

// failures returns what was recorded.
func (r *recordingTB) failures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

// sameView fails the test unless both proxies' normalised views are equal.
func sameView(t *testing.T, what, pushpin, caddy string) {
	t.Helper()
	if pushpin != caddy {
		t.Errorf("%s differs\n--- pushpin:\n%s\n--- caddy-grip:\n%s", what, pushpin, caddy)
		return
	}
	t.Logf("%s, the same on both:\n%s", what, pushpin)
}

// clientView is a complete response as a client saw it.
type clientView struct {
	status string // status line without the protocol, e.g. "404 Nothing Yet"
	header http.Header
	body   string
}

// ignoredHeaders legitimately differ between the proxies: who answered
// and when, and how the body is framed (Content-Length or chunked).
var ignoredHeaders = []string{"Date", "Server", "Via", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive"}

// view is the normalised form of a response that the proxies must agree on:
// status line, headers minus ignoredHeaders and X-Forwarded-*, and body.
func (o clientView) view() string {
	return o.status + "\n" + headerView(o.header) + "\n" + o.body
}

// headerView lists the headers that matter, sorted, one per line.
func headerView(h http.Header) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(h)) {
		if slices.Contains(ignoredHeaders, k) || strings.HasPrefix(k, "X-Forwarded-") {
			continue
		}
		for _, v := range h[k] {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	return b.String()
}

// noGripHeaders fails the test if a Grip-* header reached the client.
func noGripHeaders(t testing.TB, h http.Header) {
	t.Helper()
	for k := range h {
		if strings.HasPrefix(k, "Grip-") {
			t.Errorf("%s reached the client", k)
		}
	}
}

// diffClient reads responses as sent (no gzip), on a connection each.
var diffClient = &http.Client{Transport: &http.Transport{DisableCompression: true, DisableKeepAlives: true}}

// diffFetch does one request and reads the whole response.
func diffFetch(method, url, body string, header http.Header) (clientView, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return clientView{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := diffClient.Do(req)
	if err != nil {
		return clientView{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return clientView{}, err
	}
	return clientView{status: resp.Status, header: resp.Header, body: string(b)}, nil
}

// getView fetches url, failing the test on a transport error.
func getView(t testing.TB, url string) clientView {
	t.Helper()
	o, err := diffFetch(http.MethodGet, url, "", nil)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return o
}

// publishTo posts a publish body to a proxy and fails unless it is accepted.
func publishTo(t testing.TB, p proxyUnderTest, body string) {
	t.Helper()
	o, err := diffFetch(http.MethodPost, p.publishURL, body, http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if !strings.HasPrefix(o.status, "200") {
		t.Fatalf("publish: %s %q", o.status, o.body)
	}
}

// answeredBy GETs a response-hold url and publishes item until the held
// request is answered: a publish that comes before the subscription is
// lost on both proxies, and neither says when it has subscribed.
func answeredBy(t testing.TB, p proxyUnderTest, url, item string) clientView {
	t.Helper()
	type result struct {
		o   clientView
		err error
	}
	done := make(chan result, 1)
	go func() {
		o, err := diffFetch(http.MethodGet, url, "", nil)
		done <- result{o, err}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		publishTo(t, p, item)
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatalf("GET %s: %v", url, r.err)
			}
			return r.o
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("held request never answered")
		}
	}
}

// syncStream makes sure the held stream s is subscribed: it publishes
// numbered probe lines until one arrives, then a marker, and reads up to
// the marker. After it the stream holds exactly what the test publishes.
// The probes carry no id, which (on both proxies) leaves the channel with
// no last id.
func syncStream(t testing.TB, p proxyUnderTest, s *stream, channel string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for n := 0; ; n++ {
		publishTo(t, p, streamItem(channel, fmt.Sprintf(":probe %d\n", n)))
		select {
		case line, ok := <-s.lines:
			if !ok {
				t.Fatalf("stream ended while subscribing")
			}
			if !strings.HasPrefix(line, ":probe ") {
				t.Fatalf("got %q while subscribing", line)
			}
			publishTo(t, p, streamItem(channel, ":synced\n"))
			for line := s.next(t); line != ":synced\n"; line = s.next(t) {
				if !strings.HasPrefix(line, ":probe ") {
					t.Fatalf("got %q while subscribing", line)
				}
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream never subscribed")
		}
	}
}

// streamView is a held stream's head and the lines the client read.
func streamView(s *stream, lines []string) string {
	return s.resp.Status + "\n" + headerView(s.resp.Header) + "\n" + fmt.Sprintf("%q", lines)
}

// closeItem ends a held stream.
func closeItem(channel string) string {
	return fmt.Sprintf(`{"items":[{"channel":%q,"formats":{"http-stream":{"action":"close"}}}]}`, channel)
}

// seqItem is an http-stream item with an id and, unless empty, a prev-id.
func seqItem(channel, id, prevID, content string) string {
	prev := ""
	if prevID != "" {
		prev = fmt.Sprintf(`,"prev-id":%q`, prevID)
	}
	return fmt.Sprintf(`{"items":[{"channel":%q,"id":%q%s,"formats":{"http-stream":{"content":%q}}}]}`,
		channel, id, prev, content)
}

func diffPassthrough(t *testing.T, env diffEnv) {
	pp, cg := onBoth(t, env, func(t testing.TB, p proxyUnderTest) clientView {
		return getView(t, p.clientURL+"/plain")
	})
	sameView(t, "plain response", pp.view(), cg.view())
}

func diffLongPollAnswered(t *testing.T, env diffEnv) {
	pp, cg := onBoth(t, env, func(t testing.TB, p proxyUnderTest) clientView {
		ch := p.channel("lp")
		item := fmt.Sprintf(`{"items":[{"channel":%q,"formats":{"http-response":{"code":201,`+
			`"headers":{"X-Pub":"1","Content-Type":"application/json","Grip-Foo":"x"},"body":"{\"n\":1}\n"}}}]}`, ch)
		o := answeredBy(t, p, p.clientURL+"/longpoll?ch="+ch, item)
		noGripHeaders(t, o.header)
		return o
	})
	sameView(t, "long-poll answered by a publish", pp.view(), cg.view())
}

func diffLongPollTimeout(t *testing.T, env diffEnv) {
	pp, cg := onBoth(t, env, func(t testing.TB, p proxyUnderTest) clientView {
		ch := p.channel("lp-timeout")
		o := getView(t, p.clientURL+"/timeout?ch="+ch)
		noGripHeaders(t, o.header)
		return o
	})
	sameView(t, "long-poll timeout", pp.view(), cg.view())
}

func diffGripStatusOnTimeout(t *testing.T, env diffEnv) {
	pp, cg := onBoth(t, env, func(t testing.TB, p proxyUnderTest) clientView {
		ch := p.channel("status-timeout")
		o := getView(t, p.clientURL+"/status?ch="+ch)
		noGripHeaders(t, o.header)
		return o
	})
	// Go's HTTP server writes only the standard reason phrase.
	if pp.status != "404 Nothing Yet" || cg.status != "404 Not Found" {
		t.Errorf("status lines: pushpin %q, caddy-grip %q", pp.status, cg.status)
	}
	cg.status = pp.status
	sameView(t, "timed-out hold with Grip-Status", pp.view(), cg.view())
}

func diffGripStatusThenPublish(t *testing.T, env diffEnv) {
	pp, cg := onBoth(t, env, func(t testing.TB, p proxyUnderTest) clientView {
		ch := p.channel("status-published")
		item := responseItem(ch, "published\n") // no code: the default applies
		return answeredBy(t, p, p.clientURL+"/status?ch="+ch, item)
	})
	sameView(t, "hold with Grip-Status answered by a publish", pp.view(), cg.view())
}

func diffGripStatusWithoutHold(t *testing.T, env diffEnv) {
	pp, cg := onBoth(t, env, func(t testing.TB, p proxyUnderTest) clientView {
		o := getView(t, p.clientURL+"/nohold-status?ch=unused")
		noGripHeaders(t, o.header)
		return o
	})
	sameView(t, "Grip-Status without a hold", pp.view(), cg.view())
}

func diffHTTPStream(t *testing.T, env diffEnv) {
	pp, cg := onBoth(t, env, func(t testing.TB, p proxyUnderTest) string {
		ch := p.channel("stream")
		s := openStream(t, p.clientURL+"/stream?ch="+ch, nil)
		lines := []string{s.next(t)}
		syncStream(t, p, s, ch)
		for i := range 3 {
			publishTo(t, p, streamItem(ch, fmt.Sprintf("msg %d\n", i)))
		}
		for range 3 {
			lines = append(lines, s.next(t))
		}
		publishTo(t, p, closeItem(ch))
		noGripHeaders(t, s.resp.Header)
		return streamView(s, append(lines, s.ended(t)...))
	})
	sameView(t, "HTTP stream", pp, cg)
}

func diffSSE(t *testing.T, env diffEnv) {
	pp, cg := onBoth(t, env, func(t testing.TB, p proxyUnderTest) string {
		ch := p.channel("sse")
		s := openStream(t, p.clientURL+"/sse?ch="+ch, nil)
		lines := []string{s.next(t), s.next(t)}
		syncStream(t, p, s, ch)
		for i := range 3 {
			publishTo(t, p, streamItem(ch, fmt.Sprintf("event: message\ndata: hello %d\n\n", i)))
		}
		for range 9 {
			lines = append(lines, s.next(t))
		}
		publishTo(t, p, closeItem(ch))
		return streamView(s, append(lines, s.ended(t)...))
	})
	sameView(t, "SSE stream", pp, cg)
}

func diffDedup(t *testing.T, env diffEnv) {
	pp, cg := onBoth(t, env, func(t testing.TB, p proxyUnderTest) string {
		ch := p.channel("dedup")
		id := p.channel("d")
		s := openStream(t, p.clientURL+"/stream?ch="+ch, nil)
		lines := []string{s.next(t)}
		syncStream(t, p, s, ch)
		publishTo(t, p, seqItem(ch, id, "", "once\n"))
		publishTo(t, p, seqItem(ch, id, "", "twice\n"))
		publishTo(t, p, streamItem(ch, "after\n"))
		publishTo(t, p, closeItem(ch))
		return streamView(s, append(lines, s.ended(t)...))
	})
	sameView(t, "stream after a duplicate id", pp, cg)
}

func diffSequencing(t *testing.T, env diffEnv) {
	pp, cg := onBoth(t, env, func(t testing.TB, p proxyUnderTest) string {
		ch := p.channel("seq")
		id := func(n string) string { return p.channel("seq" + n) }
		s := openStream(t, p.clientURL+"/stream?ch="+ch, nil)
		lines := []string{s.next(t)}
		syncStream(t, p, s, ch)
		// Last id 0, then 2 (after 1) arrives before 1 (after 0).
		publishTo(t, p, seqItem(ch, id("0"), "", "0\n"))
		publishTo(t, p, seqItem(ch, id("2"), id("1"), "2\n"))
		publishTo(t, p, seqItem(ch, id("1"), id("0"), "1\n"))
		for range 3 {
			lines = append(lines, s.next(t))
		}
		// 4 follows 3, which never comes: it is held, then released.
		start := time.Now()
		publishTo(t, p, seqItem(ch, id("4"), id("3"), "4\n"))
		lines = append(lines, s.next(t))
		t.Logf("released the item whose predecessor never came after %v", time.Since(start).Round(100*time.Millisecond))
		publishTo(t, p, closeItem(ch))
		return streamView(s, append(lines, s.ended(t)...))
	})
	sameView(t, "stream of out-of-order items", pp, cg)
}

func diffInvalidInstruct(t *testing.T, env diffEnv) {
	cases := []struct{ name, header string }{
		{"hold", "Grip-Hold"},
		{"timeout", "Grip-Timeout"},
		{"status", "Grip-Status"},
		{"keepalive", "Grip-Keep-Alive"},
		{"json", "instruct"},
		{"json-status", "instruct"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pp, cg := onBoth(t, env, func(t testing.TB, p proxyUnderTest) clientView {
				return getView(t, p.clientURL+"/invalid?case="+tc.name)
			})
			sameView(t, "status", pp.status, cg.status)
			// Pushpin hides the reason unless debug is on; caddy-grip names
			// it, to spare origin authors a debugging session.
			if pp.body != "Error while proxying to origin.\n" {
				t.Errorf("pushpin body %q", pp.body)
			}
			if !strings.HasPrefix(cg.body, "Error while proxying to origin: ") || !strings.Contains(cg.body, tc.header) {
				t.Errorf("caddy-grip body %q does not name %s", cg.body, tc.header)
			}
			plainText(t, pp, cg)
			sameView(t, "headers", headerView(pp.header), headerView(cg.header))
		})
	}
}

// plainText checks the Content-Type of a response each proxy wrote itself,
// then makes caddy-grip's match Pushpin's: Go's text/plain carries its
// charset, which no client minds.
func plainText(t *testing.T, pp, cg clientView) {
	t.Helper()
	if ct := pp.header.Get("Content-Type"); ct != "text/plain" && ct != "application/json" {
		t.Errorf("pushpin Content-Type %q", ct)
	}
	if ct := cg.header.Get("Content-Type"); ct == "text/plain; charset=utf-8" {
		cg.header.Set("Content-Type", "text/plain")
	}
}

func diffPublishEndpoint(t *testing.T, env diffEnv) {
	const ok = `{"channel":"pub-ok","formats":{"http-stream":{"content":"x"}}}`
	cases := []struct {
		name, method, path, accept, body string
		// When set, each side's known view (see clientView.view): they
		// differ on purpose.
		pushpin, caddy string
	}{
		{name: "GetIs405", method: "GET"},
		{name: "PutIs405", method: "PUT", body: "x"},
		{name: "OtherPathIs404", method: "POST", path: "/other/", body: `{"items":[]}`},
		{name: "NoTrailingSlash", method: "POST", path: "/publish", body: `{"items":[]}`},
		{name: "InvalidJSON", method: "POST", body: "notjson"},
		{name: "NotAnObject", method: "POST", body: "[]"},
		{name: "MissingItems", method: "POST", body: "{}"},
		{name: "ItemsNotAList", method: "POST", body: `{"items":5}`},
		{name: "NoItemsIsPublished", method: "POST", body: `{"items":[]}`},
		// caddy-grip names the rejected item's index in every item error.
		{name: "ItemNotAnObject", method: "POST", body: `{"items":[5]}`,
			pushpin: badRequest("Invalid format: publish item object is not an object"),
			caddy:   badRequest("Invalid format: item 0: publish item object is not an object")},
		{name: "ItemWithoutFormats", method: "POST", body: `{"items":[{"channel":"a"}]}`,
			pushpin: badRequest("Invalid format: no formats specified"),
			caddy:   badRequest("Invalid format: item 0: no formats specified")},
		{name: "ItemWithoutChannel", method: "POST", body: `{"items":[{"formats":{"http-stream":{"content":"x"}}}]}`,
			pushpin: badRequest("Invalid format: publish item object does not contain 'channel'"),
			caddy:   badRequest("Invalid format: item 0: publish item object does not contain 'channel'")},
		{name: "StreamWithoutContent", method: "POST", body: `{"items":[{"channel":"a","formats":{"http-stream":{}}}]}`,
			pushpin: badRequest("Invalid format: 'http-stream' does not contain 'content' or 'content-bin'"),
			caddy:   badRequest("Invalid format: item 0: 'http-stream' does not contain 'content' or 'content-bin'")},
		{name: "SecondItemBad", method: "POST", body: `{"items":[` + ok + `,{"channel":"b"}]}`,
			pushpin: badRequest("Invalid format: no formats specified"),
			caddy:   badRequest("Invalid format: item 1: no formats specified")},
		// Pushpin 1.36 leaves the detail of an unknown action empty.
		{name: "UnknownAction", method: "POST", body: `{"items":[{"channel":"a","formats":{"http-response":{"action":"bogus","body":"x"}}}]}`,
			pushpin: badRequest("Invalid format: "),
			caddy:   badRequest("Invalid format: item 0: 'http-response' contains 'action' with unknown value")},
		// Pushpin 1.36 takes a string code without complaint; caddy-grip
		// checks types.
		{name: "CodeNotANumber", method: "POST", body: `{"items":[{"channel":"a","formats":{"http-response":{"code":"x","body":"x"}}}]}`,
			pushpin: "200 OK\nContent-Type: text/plain\n\nPublished\n",
			caddy:   badRequest("Invalid format: item 0: 'http-response' contains 'code' with wrong type")},
		{name: "AcceptImageIs406", method: "POST", accept: "image/png", body: `{"items":[]}`},
		{name: "AcceptTextHTMLIs406", method: "POST", accept: "text/html", body: `{"items":[]}`},
		{name: "AcceptWinsOverMethod", method: "GET", accept: "image/png"},
		{name: "AcceptJSON", method: "POST", accept: "application/json", body: `{"items":[]}`},
		{name: "AcceptAnyApplication", method: "POST", accept: "application/*", body: `{"items":[]}`},
		{name: "AcceptAnyText", method: "POST", accept: "text/*", body: `{"items":[]}`},
		{name: "AcceptJSONErrorStaysText", method: "POST", accept: "application/json", body: "notjson"},
		// Of two acceptable types Pushpin 1.36 takes the last listed (a
		// loop without a break); caddy-grip takes the first.
		{name: "AcceptTwoTypes", method: "POST", accept: "application/json, text/plain", body: `{"items":[]}`,
			pushpin: "200 OK\nContent-Type: text/plain\n\nPublished\n",
			caddy:   "200 OK\nContent-Type: application/json\n\n{\"message\":\"Published\"}\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pp, cg := onBoth(t, env, func(t testing.TB, p proxyUnderTest) clientView {
				url := p.publishURL
				if tc.path != "" {
					url = strings.TrimSuffix(p.publishURL, "/publish/") + tc.path
				}
				h := http.Header{"Content-Type": {"application/json"}}
				if tc.accept != "" {
					h.Set("Accept", tc.accept)
				}
				o, err := diffFetch(tc.method, url, tc.body, h)
				if err != nil {
					t.Fatalf("%s %s: %v", tc.method, url, err)
				}
				return o
			})
			plainText(t, pp, cg)
			if tc.pushpin == "" {
				sameView(t, "publish reply", pp.view(), cg.view())
				return
			}
			if pp.view() != tc.pushpin {
				t.Errorf("pushpin replied\n%s\nwant\n%s", pp.view(), tc.pushpin)
			}
			if cg.view() != tc.caddy {
				t.Errorf("caddy-grip replied\n%s\nwant\n%s", cg.view(), tc.caddy)
			}
		})
	}
}

// badRequest is the view of a 400 publish reply with the given text.
func badRequest(text string) string {
	return "400 Bad Request\nContent-Type: text/plain\n\n" + text + "\n"
}
