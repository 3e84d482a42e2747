package integration_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests run examples/livecounter as run.sh does: Varnish from the
// example's counter.vcl, the origin (which purges Varnish and publishes) and
// Caddy from the example's Caddyfile, each in its own process, on free
// ports. The origin logs each request and each purge+publish round; the
// tests count those lines.

const liveCounterDir = "../examples/livecounter"

// varnishdBinary finds varnishd, skipping without it unless
// GRIP_REQUIRE_EXTERNAL=1 (as in CI) makes that a failure.
func varnishdBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("varnishd"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/varnishd", "/usr/local/sbin/varnishd"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	missingTool(t, "varnishd is needed for the Live Counter example's tests and is not on PATH (apt-get install varnish)")
	return ""
}

// chainOptions are the ways the tests vary the example.
type chainOptions struct {
	history bool // keep the Caddyfile's hub history (else it is taken out)
	purge   bool // the origin purges Varnish before each publish
}

// liveCounter is the running example.
type liveCounter struct {
	site      exampleSite
	varnish   string // http://127.0.0.1:<port>
	originLog *lockedBuffer
	origin    *exec.Cmd
	originEnd chan struct{}
}

// startProcessGroup runs cmd in its own process group until the test ends
// (the whole group is killed), with its output in out.
func startProcessGroup(t *testing.T, cmd *exec.Cmd, out *lockedBuffer) chan struct{} {
	t.Helper()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), out.String())
		}
	})
	return exited
}

// startLiveCounter builds and runs the example: Varnish, the origin, Caddy.
func startLiveCounter(t *testing.T, opt chainOptions) *liveCounter {
	t.Helper()
	varnishd := varnishdBinary(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "livecounter")
	if out, err := exec.Command("go", "build", "-o", bin, liveCounterDir).CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", liveCounterDir, err, out)
	}
	clientPort, publishPort, varnishPort, originPort := freePort(), freePort(), freePort(), freePort()
	lc := &liveCounter{varnish: fmt.Sprintf("http://127.0.0.1:%d", varnishPort), originLog: &lockedBuffer{}}

	// Varnish, with the VCL's backend port set to the origin's.
	vcl, err := os.ReadFile(filepath.Join(liveCounterDir, "counter.vcl"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(vcl, []byte(`.port = "8503";`)) {
		t.Fatal("counter.vcl does not name the origin's port 8503")
	}
	vcl = bytes.Replace(vcl, []byte(`.port = "8503";`), []byte(fmt.Sprintf(`.port = "%d";`, originPort)), 1)
	vclPath := filepath.Join(dir, "counter.vcl")
	if err := os.WriteFile(vclPath, vcl, 0o644); err != nil {
		t.Fatal(err)
	}
	startProcessGroup(t, exec.Command(varnishd, "-F", "-j", "none", "-n", filepath.Join(dir, "varnish"),
		"-a", fmt.Sprintf("127.0.0.1:%d", varnishPort), "-T", "127.0.0.1:0", "-f", vclPath,
		"-s", "malloc,32m", "-p", "thread_pools=1", "-p", "thread_pool_min=10",
		// No grace unless the VCL gives it, so that the tests see the VCL's.
		"-p", "default_grace=0"), &lockedBuffer{})

	purge := ""
	if opt.purge {
		purge = lc.varnish
	}
	lc.origin = exec.Command(bin, "-listen", fmt.Sprintf("127.0.0.1:%d", originPort),
		"-purge", purge, "-publish", fmt.Sprintf("http://127.0.0.1:%d/publish/", publishPort))
	lc.originEnd = startProcessGroup(t, lc.origin, lc.originLog)

	cfg := exampleCaddyfile(t, liveCounterDir, map[int]int{8500: clientPort, 8501: publishPort, 8502: varnishPort})
	if !opt.history {
		if !strings.Contains(cfg, "\t\thistory 100\n") {
			t.Fatal("the Caddyfile does not set history 100")
		}
		cfg = strings.Replace(cfg, "\t\thistory 100\n", "", 1)
	}
	lc.site = exampleSite{
		base:       fmt.Sprintf("http://127.0.0.1:%d", clientPort),
		publishURL: fmt.Sprintf("http://127.0.0.1:%d/publish/", publishPort),
	}
	startCaddyProcess(t, cfg, fmt.Sprintf("127.0.0.1:%d", clientPort))
	// Through Caddy and Varnish: Varnish answers once its probe finds the
	// origin healthy.
	eventually(t, "the page through Caddy and Varnish", func() bool {
		code, body := exampleGet(lc.site.base + "/")
		return code == http.StatusOK && strings.Contains(body, "new EventSource(")
	})
	return lc
}

// originRequests counts the origin's logged SSE GETs of counter id, those
// with a Grip-Last header and those without.
func (lc *liveCounter) originRequests(id string) (plain, gripLast int) {
	re := regexp.MustCompile(`GET /counters/` + regexp.QuoteMeta(id) + `/ sse=true grip-last="([^"]*)"`)
	for _, m := range re.FindAllStringSubmatch(lc.originLog.String(), -1) {
		if m[1] == "" {
			plain++
		} else {
			gripLast++
		}
	}
	return plain, gripLast
}

// rounds counts the origin's purge+publish rounds for counter id.
func (lc *liveCounter) rounds(id string) int {
	return strings.Count(lc.originLog.String(), "sent counter "+id+":")
}

// increment POSTs one increment through Caddy and Varnish.
func (lc *liveCounter) increment(t *testing.T, id string) {
	t.Helper()
	resp, err := jsClient.Post(lc.site.base+"/counters/"+id+"/", "text/plain", nil)
	if err != nil {
		t.Fatalf("increment: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("increment: %s", resp.Status)
	}
}

// counterClient is an SSE client of a counter, recording every value.
type counterClient struct {
	s      *stream
	mu     sync.Mutex
	values []int
}

// connect opens an SSE client; it fails the test unless the answer is a
// 200 event stream.
func (lc *liveCounter) connect(t *testing.T, id string) *counterClient {
	t.Helper()
	c, err := lc.tryConnect(t, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tryConnect is connect that returns a non-200 answer as an error.
func (lc *liveCounter) tryConnect(t *testing.T, id string) (*counterClient, error) {
	// Caddy forwards a browser's cookies; the VCL drops them on counter
	// URLs, so that they do not make every request a cache pass.
	s := openStream(t, lc.site.base+"/counters/"+id+"/", http.Header{
		"Accept": {"text/event-stream"},
		"Cookie": {"session=" + strconv.Itoa(time.Now().Nanosecond())},
	})
	if s.resp.StatusCode != http.StatusOK {
		s.resp.Body.Close()
		return nil, fmt.Errorf("GET /counters/%s/: %s", id, s.resp.Status)
	}
	c := &counterClient{s: s}
	go func() {
		for line := range s.lines {
			if v, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "data: "); ok {
				n, _ := strconv.Atoi(v)
				c.mu.Lock()
				c.values = append(c.values, n)
				c.mu.Unlock()
			}
		}
	}()
	return c, nil
}

// got returns the values received so far.
func (c *counterClient) got() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.values...)
}

// last is the value the client shows: its latest, or -1 before any.
func (c *counterClient) last() int {
	v := c.got()
	if len(v) == 0 {
		return -1
	}
	return v[len(v)-1]
}

// waitAll waits until every client shows want.
func waitAll(t *testing.T, clients []*counterClient, want int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d clients on value %d", len(clients), want), func() bool {
		for _, c := range clients {
			if c.last() != want {
				return false
			}
		}
		return true
	})
}

func TestLiveCounterCachedInstructionServesHundredClients(t *testing.T) {
	lc := startLiveCounter(t, chainOptions{history: true, purge: true})
	// The text variant first: Vary: Accept keeps it apart from the stream.
	if code, body := exampleGet(lc.site.base + "/counters/1/"); code != http.StatusOK || body != "0\n" {
		t.Fatalf("GET /counters/1/ as text: %d %q", code, body)
	}
	const n = 100
	clients := make([]*counterClient, n)
	for i := range clients {
		clients[i] = lc.connect(t, "1")
	}
	waitAll(t, clients, 0)
	if plain, last := lc.originRequests("1"); plain != 1 || last != 0 {
		t.Fatalf("the origin saw %d SSE requests (%d with Grip-Last) for %d clients, want 1 (0): the rest from the cache", plain+last, last, n)
	}
	for v := 1; v <= 3; v++ {
		lc.increment(t, "1")
		waitAll(t, clients, v)
		// The publish came after the purge: a new client gets the new
		// value, from the origin once, then from the cache.
		for range 2 {
			fresh := lc.connect(t, "1")
			eventually(t, fmt.Sprintf("a new client on value %d", v), func() bool { return fresh.last() == v })
			if got := fresh.got(); got[0] != v {
				t.Fatalf("a client connecting after publish %d got %v first", v, got)
			}
			fresh.s.resp.Body.Close()
		}
		if plain, last := lc.originRequests("1"); plain != 1+v || last != 0 {
			t.Fatalf("after %d purges the origin saw %d plain and %d Grip-Last SSE requests, want %d and 0", v, plain, last, 1+v)
		}
	}
	for i, c := range clients {
		if got := fmt.Sprint(c.got()); got != "[0 1 2 3]" {
			t.Fatalf("client %d got %s, want [0 1 2 3]", i, got)
		}
	}
	if r := lc.rounds("1"); r != 3 {
		t.Fatalf("%d purge+publish rounds for 3 spaced increments", r)
	}
}

func TestLiveCounterBurstCoalescesToOneSendPerSecond(t *testing.T) {
	lc := startLiveCounter(t, chainOptions{history: true, purge: true})
	clients := make([]*counterClient, 10)
	for i := range clients {
		clients[i] = lc.connect(t, "burst")
	}
	waitAll(t, clients, 0)

	const total, workers = 200, 8
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += workers {
				resp, err := jsClient.Post(lc.site.base+"/counters/burst/", "text/plain", nil)
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("increment: %s", resp.Status)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitAll(t, clients, total)
	// The round's log line follows its publish.
	eventually(t, "the round that published the final value", func() bool {
		return strings.Contains(lc.originLog.String(), fmt.Sprintf("sent counter burst: purged true, published value %d ", total))
	})
	rounds := lc.rounds("burst")
	// The first increment is sent at once, the rest at the end of each
	// one-second window that saw a change: two rounds when the burst fits
	// in a second (the machine may be slower, so the bound follows the
	// burst's length).
	limit := 1 + int((elapsed+time.Second-1)/time.Second)
	t.Logf("%d increments in %v: %d purge+publish rounds (limit %d)", total, elapsed.Round(time.Millisecond), rounds, limit)
	if rounds > limit {
		t.Fatalf("%d rounds for %d increments in %v, want at most %d", rounds, total, elapsed, limit)
	}
	for i, c := range clients {
		got := c.got()
		if len(got) > rounds+1 {
			t.Fatalf("client %d got %d values for %d rounds: %v", i, len(got), rounds, got)
		}
	}
}

func TestLiveCounterStreamsStartFromGraceWhenOriginIsDown(t *testing.T) {
	lc := startLiveCounter(t, chainOptions{history: true, purge: true})
	lc.increment(t, "1") // published 1, which the hub's history keeps
	eventually(t, "the first purge+publish round", func() bool { return lc.rounds("1") == 1 })
	early := lc.connect(t, "1") // cached: value 1, prev-id=1
	waitAll(t, []*counterClient{early}, 1)
	lc.increment(t, "1") // purges (soft: kept for grace) and publishes 2
	waitAll(t, []*counterClient{early}, 2)
	eventually(t, "the second purge+publish round", func() bool { return lc.rounds("1") == 2 })

	if err := lc.origin.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-lc.originEnd
	// Until Varnish's probe marks the origin sick a request that misses
	// fails; then the purged answer is served from grace.
	var late *counterClient
	eventually(t, "a stream from Varnish's grace with the origin down", func() bool {
		c, err := lc.tryConnect(t, "1")
		if err != nil {
			return false
		}
		late = c
		return true
	})
	// The cached answer is the one from before the last publish (value 1
	// with prev-id=1): the hub's history catches it up.
	waitAll(t, []*counterClient{late}, 2)
	if got := late.got(); got[0] != 1 {
		t.Fatalf("the client started on %v, want the cached 1 first", got)
	}
	// Another publisher (the origin's is down with it) goes on publishing.
	examplePublish(t, lc.site, `{"items":[{"channel":"counter-1","id":"3","prev-id":"2","formats":{"http-stream":{"content":"data: 3\n\n"}}}]}`)
	waitAll(t, []*counterClient{early, late}, 3)
	if got := fmt.Sprint(late.got()); got != "[1 2 3]" {
		t.Fatalf("the client started from grace got %s, want [1 2 3]", got)
	}
}

func TestLiveCounterStaleCachedAnswerIsCaughtUp(t *testing.T) {
	for _, tc := range []struct {
		name    string
		history bool
	}{{"HubHistory", true}, {"GripLastRequest", false}} {
		t.Run(tc.name, func(t *testing.T) {
			// The origin does not purge: the cache keeps the answer from
			// before the last publish, as when a cache fetch that began
			// before the purge is stored after it.
			lc := startLiveCounter(t, chainOptions{history: tc.history, purge: false})
			lc.increment(t, "1")
			eventually(t, "the first publish", func() bool { return lc.rounds("1") == 1 })
			first := lc.connect(t, "1") // cached: value 1, prev-id=1
			waitAll(t, []*counterClient{first}, 1)
			lc.increment(t, "1")
			waitAll(t, []*counterClient{first}, 2)

			stale := lc.connect(t, "1")
			waitAll(t, []*counterClient{stale}, 2)
			if got := stale.got(); got[0] != 1 {
				t.Fatalf("the client got %v: want the cached 1 first, or this test shows nothing", got)
			}
			plain, last := lc.originRequests("1")
			if plain != 1 {
				t.Fatalf("the origin saw %d plain SSE requests, want 1 (the rest cached)", plain)
			}
			if tc.history && last != 0 {
				t.Fatalf("the origin saw %d Grip-Last requests: the hub's history should have caught the client up", last)
			}
			if !tc.history && last != 1 {
				t.Fatalf("the origin saw %d Grip-Last requests, want 1 (the next link, passed by Varnish)", last)
			}
			eventually(t, "the second publish's window to close", func() bool { return lc.rounds("1") == 2 })
			lc.increment(t, "1")
			waitAll(t, []*counterClient{first, stale}, 3)
			if got := fmt.Sprint(stale.got()); got != "[1 2 3]" {
				t.Fatalf("the stale client got %s, want [1 2 3]", got)
			}
		})
	}
}

func TestLiveCounterBanByChannelDropsOnlyThatChannelsAnswers(t *testing.T) {
	lc := startLiveCounter(t, chainOptions{history: true, purge: true})
	for _, id := range []string{"1", "10"} {
		c := lc.connect(t, id)
		waitAll(t, []*counterClient{c}, 0)
	}
	ban := func(channel string) int {
		req, err := http.NewRequest("BAN", lc.varnish+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Grip-Channel", channel)
		resp, err := jsClient.Do(req)
		if err != nil {
			t.Fatalf("BAN: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := ban("counter-1"); code != http.StatusOK {
		t.Fatalf("BAN counter-1: %d", code)
	}
	if code := ban("counter.*"); code != http.StatusBadRequest {
		t.Fatalf("BAN with a pattern: %d, want 400", code)
	}
	for _, id := range []string{"1", "10"} {
		c := lc.connect(t, id)
		waitAll(t, []*counterClient{c}, 0)
	}
	// counter-1's cached stream answer was banned and fetched again;
	// counter-10's, whose name starts the same, was not.
	if plain, _ := lc.originRequests("1"); plain != 2 {
		t.Fatalf("the origin saw %d requests for counter 1, want 2 (one after the ban)", plain)
	}
	if plain, _ := lc.originRequests("10"); plain != 1 {
		t.Fatalf("the origin saw %d requests for counter 10, want 1 (not banned)", plain)
	}
}

// call sends a DevTools command and returns its result.
func (p *cdpPage) call(t *testing.T, method string, params map[string]any) json.RawMessage {
	t.Helper()
	p.id++
	if err := p.conn.WriteJSON(map[string]any{"id": p.id, "method": method, "params": params}); err != nil {
		t.Fatalf("devtools: %v", err)
	}
	_ = p.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		var resp struct {
			ID     int                       `json:"id"`
			Result json.RawMessage           `json:"result"`
			Error  *struct{ Message string } `json:"error"`
		}
		if err := p.conn.ReadJSON(&resp); err != nil {
			t.Fatalf("devtools: %v", err)
		}
		if resp.ID != p.id {
			continue // an event
		}
		if resp.Error != nil {
			t.Fatalf("devtools: %s: %s", method, resp.Error.Message)
		}
		return resp.Result
	}
}

func TestLiveCounterPageInChromium(t *testing.T) {
	chromiumBinary(t) // skip before starting anything
	lc := startLiveCounter(t, chainOptions{history: true, purge: true})
	page := startChromium(t, lc.site.base+"/")
	const shown = `document.getElementById('status').textContent + '|' + document.getElementById('value').textContent`
	var got string
	defer func() {
		if t.Failed() {
			t.Logf("the page shows %q", got)
		}
	}()
	eventually(t, "the page to show the live value 0", func() bool {
		got = page.text(t, shown)
		return got == "live|0"
	})
	page.text(t, `document.getElementById('add').click(), 'clicked'`)
	eventually(t, "the page to show 1 after the click", func() bool {
		got = page.text(t, shown)
		return got == "live|1"
	})
	var shot struct{ Data string }
	if err := json.Unmarshal(page.call(t, "Page.captureScreenshot", map[string]any{"format": "png"}), &shot); err != nil {
		t.Fatal(err)
	}
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.ArtifactDir(), "livecounter.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}
