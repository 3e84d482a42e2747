package integration_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// These tests run the examples under examples/ as a user would: each
// example's origin in its own process and Caddy from the example's own
// Caddyfile (its fixed ports rewritten to free ones), then real clients
// for the SSE stream, the long-poll and the WebSocket chat.

// exampleCaddyfile reads an example's Caddyfile and replaces each fixed
// port (as ":<port>") with a free one from ports, all in one pass. A port
// the file does not name fails the test: the example and its test would
// have drifted apart.
func exampleCaddyfile(t *testing.T, dir string, ports map[int]int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	var alt []string
	for old := range ports {
		if !regexp.MustCompile(fmt.Sprintf(`:%d\b`, old)).Match(b) {
			t.Fatalf("%s/Caddyfile does not name port %d", dir, old)
		}
		alt = append(alt, strconv.Itoa(old))
	}
	re := regexp.MustCompile(`:(` + strings.Join(alt, "|") + `)\b`)
	return re.ReplaceAllStringFunc(string(b), func(m string) string {
		old, _ := strconv.Atoi(m[1:])
		return ":" + strconv.Itoa(ports[old])
	})
}

// exampleSite is a running example: Caddy's client and publish addresses.
type exampleSite struct {
	base       string // http://127.0.0.1:<client port>
	publishURL string // http://127.0.0.1:<publish port>/publish/
}

// startExampleProcess runs an example's origin (cmd) until the test ends,
// logging its output if the test failed.
func startExampleProcess(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), out.Bytes())
		}
	})
}

// startExampleCaddy runs Caddy from the example's Caddyfile with its client
// port, publish port and origin port (the fixed ones the file names)
// replaced by clientPort, publishPort and originPort, and waits until the
// origin answers the chat page through it.
func startExampleCaddy(t *testing.T, dir string, fixed [3]int, clientPort, publishPort, originPort int) exampleSite {
	t.Helper()
	cfg := exampleCaddyfile(t, dir, map[int]int{fixed[0]: clientPort, fixed[1]: publishPort, fixed[2]: originPort})
	site := exampleSite{
		base:       fmt.Sprintf("http://127.0.0.1:%d", clientPort),
		publishURL: fmt.Sprintf("http://127.0.0.1:%d/publish/", publishPort),
	}
	startCaddyProcess(t, cfg, fmt.Sprintf("127.0.0.1:%d", clientPort))
	eventually(t, "the chat page through Caddy", func() bool {
		code, body := exampleGet(site.base + "/")
		return code == http.StatusOK && strings.Contains(body, "new WebSocket(")
	})
	return site
}

// exampleGet GETs url on a fresh connection; 0 when it failed.
func exampleGet(url string) (int, string) {
	resp, err := jsClient.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// startGoExample builds examples/go-origin and runs it behind Caddy.
func startGoExample(t *testing.T) exampleSite {
	t.Helper()
	const dir = "../examples/go-origin"
	bin := filepath.Join(t.TempDir(), "go-origin")
	if out, err := exec.Command("go", "build", "-o", bin, dir).CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", dir, err, out)
	}
	clientPort, publishPort, originPort := freePort(), freePort(), freePort()
	startExampleProcess(t, exec.Command(bin,
		"-listen", fmt.Sprintf("127.0.0.1:%d", originPort),
		"-publish", fmt.Sprintf("http://127.0.0.1:%d/publish/", publishPort)))
	return startExampleCaddy(t, dir, [3]int{8300, 8301, 3000}, clientPort, publishPort, originPort)
}

// startNodeExample installs a copy of examples/node-origin (npm ci) and runs
// it behind Caddy, with a fresh GRIP_SIG_KEY for both. Without node or npm
// it skips, unless GRIP_REQUIRE_EXTERNAL=1 (as in CI) makes that a failure.
func startNodeExample(t *testing.T) exampleSite {
	t.Helper()
	const src = "../examples/node-origin"
	node, npm := nodeAndNpm(t, "the Node example's test")
	dir := npmProject(t, npm, src)

	key := make([]byte, 16)
	rand.Read(key)
	t.Setenv("GRIP_SIG_KEY", hex.EncodeToString(key)) // for Caddy's {env.GRIP_SIG_KEY} and the origin
	clientPort, publishPort, originPort := freePort(), freePort(), freePort()
	origin := exec.Command(node, "server.mjs")
	origin.Dir = dir
	origin.Env = append(os.Environ(),
		"PORT="+strconv.Itoa(originPort),
		fmt.Sprintf("GRIP_CONTROL_URI=http://127.0.0.1:%d/", publishPort))
	startExampleProcess(t, origin)
	return startExampleCaddy(t, dir, [3]int{8400, 8401, 3001}, clientPort, publishPort, originPort)
}

// examplePublish posts a publish body to the example's endpoint.
func examplePublish(t *testing.T, site exampleSite, body string) {
	t.Helper()
	resp, err := jsClient.Post(site.publishURL, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish: %d %q", resp.StatusCode, b)
	}
}

// checkExampleSSE opens /events/<channel>, publishes one event to it and
// waits for it on the stream.
func checkExampleSSE(t *testing.T, site exampleSite) {
	s := openStream(t, site.base+"/events/news", nil)
	if ct := s.resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type %q, want text/event-stream", ct)
	}
	// The stream is subscribed before its first bytes are written.
	if line := s.next(t); line != ": subscribed to news\n" {
		t.Fatalf("first line %q", line)
	}
	examplePublish(t, site, streamItem("news", "data: hello sse\n\n"))
	for {
		if line := s.next(t); line == "data: hello sse\n" {
			return
		}
	}
}

// checkExampleLongPoll holds a GET /poll/<channel> and publishes until it is
// answered: nothing tells the test when the hold is subscribed, so every
// 20 ms another publish goes out until one answers it.
func checkExampleLongPoll(t *testing.T, site exampleSite) {
	got := getBodyAsync(site.base + "/poll/updates")
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	giveUp := time.After(20 * time.Second)
	for {
		examplePublish(t, site, responseItem("updates", "answered by a publish\n"))
		select {
		case body := <-got:
			if body != "answered by a publish\n" {
				t.Fatalf("long-poll got %q", body)
			}
			return
		case <-tick.C:
		case <-giveUp:
			t.Fatal("long-poll was not answered by a publish")
		}
	}
}

// readUntil reads WebSocket messages until want arrives, returning those
// before it.
func readUntil(t *testing.T, c *websocket.Conn, who, want string) []string {
	t.Helper()
	var before []string
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("%s waiting for %q (after %q): %v", who, want, before, err)
		}
		if string(msg) == want {
			return before
		}
		before = append(before, string(msg))
	}
}

// dialChat connects a chat client and waits for its welcome, after which
// it is in the room (the subscribe comes before the welcome in the
// origin's answer).
func dialChat(t *testing.T, site exampleSite, who string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(site.base, "http")+"/chat", nil)
	if err != nil {
		t.Fatalf("%s dialing the chat: %v", who, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "welcome to room" {
		t.Fatalf("%s got %q, %v; want the welcome first", who, msg, err)
	}
	return c
}

// checkExampleChat connects two chat clients and checks that each one's
// message reaches both.
func checkExampleChat(t *testing.T, site exampleSite) {
	alice, bob := dialChat(t, site, "alice"), dialChat(t, site, "bob")
	for _, m := range []struct {
		from *websocket.Conn
		text string
	}{{alice, "alice: hello"}, {bob, "bob: hi alice"}} {
		if err := m.from.WriteMessage(websocket.TextMessage, []byte(m.text)); err != nil {
			t.Fatal(err)
		}
		readUntil(t, alice, "alice", m.text)
		readUntil(t, bob, "bob", m.text)
	}
	if err := alice.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")); err != nil {
		t.Fatal(err)
	}
	_ = alice.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		if _, _, err := alice.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				t.Fatalf("alice's close: %v, want 1000 back", err)
			}
			return
		}
	}
}

// checkExample runs every client check against a running example.
func checkExample(t *testing.T, site exampleSite) {
	t.Run("SSE", func(t *testing.T) { checkExampleSSE(t, site) })
	t.Run("LongPoll", func(t *testing.T) { checkExampleLongPoll(t, site) })
	t.Run("Chat", func(t *testing.T) { checkExampleChat(t, site) })
}

func TestGoExampleServesSSELongPollAndChat(t *testing.T) {
	checkExample(t, startGoExample(t))
}

func TestNodeExampleServesSSELongPollAndChat(t *testing.T) {
	checkExample(t, startNodeExample(t))
}

func TestExamplesShareOneChatPage(t *testing.T) {
	goPage, err := os.ReadFile("../examples/go-origin/chat.html")
	if err != nil {
		t.Fatal(err)
	}
	nodePage, err := os.ReadFile("../examples/node-origin/chat.html")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(goPage, nodePage) {
		t.Fatal("examples/node-origin/chat.html differs from examples/go-origin/chat.html: copy one over the other")
	}
}

// chromiumBinary finds Chromium, skipping without it unless
// GRIP_REQUIRE_EXTERNAL=1 (as in CI) makes that a failure.
func chromiumBinary(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	missingTool(t, "chromium is needed for the chat page's browser test and is not on PATH (apt-get install chromium)")
	return ""
}

// cdpPage is a Chrome DevTools Protocol connection to one page.
type cdpPage struct {
	conn *websocket.Conn
	id   int
}

// startChromium runs headless Chromium on url with remote debugging on a
// port of its choosing and connects to the page. Chromium and its child
// processes (one process group) are killed when the test ends.
func startChromium(t *testing.T, url string) *cdpPage {
	t.Helper()
	bin := chromiumBinary(t)
	profile := t.TempDir()
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--user-data-dir="+profile,
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", url)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("chromium output:\n%s", out.Bytes())
		}
	})

	// Chromium writes the port it chose to DevToolsActivePort in the profile.
	var port int
	eventually(t, "chromium's DevToolsActivePort", func() bool {
		b, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort"))
		if err != nil {
			return false
		}
		first, _, _ := strings.Cut(string(b), "\n")
		port, err = strconv.Atoi(strings.TrimSpace(first))
		return err == nil && port > 0
	})
	var wsURL string
	eventually(t, "chromium's page for "+url, func() bool {
		code, body := exampleGet(fmt.Sprintf("http://127.0.0.1:%d/json/list", port))
		if code != http.StatusOK {
			return false
		}
		var targets []struct {
			Type, URL            string
			WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
		}
		if json.Unmarshal([]byte(body), &targets) != nil {
			return false
		}
		for _, tg := range targets {
			if tg.Type == "page" && tg.URL == url {
				wsURL = tg.WebSocketDebuggerURL
				return true
			}
		}
		return false
	})
	conn, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err != nil {
		t.Fatalf("connecting to chromium's page: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &cdpPage{conn: conn}
}

// text evaluates a JavaScript expression in the page and returns its value
// as a string.
func (p *cdpPage) text(t *testing.T, expr string) string {
	t.Helper()
	p.id++
	req := map[string]any{"id": p.id, "method": "Runtime.evaluate",
		"params": map[string]any{"expression": expr, "returnByValue": true}}
	if err := p.conn.WriteJSON(req); err != nil {
		t.Fatalf("devtools: %v", err)
	}
	_ = p.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		var resp struct {
			ID     int `json:"id"`
			Result struct {
				Result struct {
					Value any `json:"value"`
				} `json:"result"`
			} `json:"result"`
			Error *struct{ Message string } `json:"error"`
		}
		if err := p.conn.ReadJSON(&resp); err != nil {
			t.Fatalf("devtools: %v", err)
		}
		if resp.ID != p.id {
			continue // an event
		}
		if resp.Error != nil {
			t.Fatalf("devtools: evaluating %s: %s", expr, resp.Error.Message)
		}
		return fmt.Sprint(resp.Result.Result.Value)
	}
}

func TestGoExampleChatPageInChromium(t *testing.T) {
	chromiumBinary(t) // skip before starting anything
	site := startGoExample(t)
	peer := dialChat(t, site, "the Go client")

	// The page sends ?say= once connected: the Go client in the room gets it.
	page := startChromium(t, site.base+"/?say=chromium%3A+hello")
	readUntil(t, peer, "the Go client", "chromium: hello")
	if err := peer.WriteMessage(websocket.TextMessage, []byte("go: hi chromium")); err != nil {
		t.Fatal(err)
	}
	const logText = `document.getElementById('status').textContent + '|' +
		[...document.querySelectorAll('#log li')].map((li) => li.textContent).join('|')`
	want := "connected|welcome to room|chromium: hello|go: hi chromium"
	var got string
	defer func() {
		if t.Failed() {
			t.Logf("the page shows %q", got)
		}
	}()
	eventually(t, "the page to show "+want, func() bool {
		got = page.text(t, logText)
		return got == want
	})
}
