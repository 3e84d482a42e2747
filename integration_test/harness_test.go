// Package integration_test runs caddy-grip inside a real Caddy, in this
// process, with real clients and origins. Caddy is one instance per
// process, so these tests never run in parallel; every loadCaddyfile is a
// real config reload.
package integration_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-grip/grip/caddygrip"
	"github.com/caddy-grip/grip/internal/freeport"
	"github.com/caddy-grip/grip/wsoverhttp"
)

// Ports of the in-process Caddy: a site for clients and one for publishing.
// They are picked free at start-up, because Caddy listens with SO_REUSEPORT:
// two test processes on fixed ports would silently share connections.
var (
	caddyPort, publishPort int
	caddyURL, publishURL   string
)

// globalOptions keep the test Caddy local: no admin endpoint, no TLS, no
// saved config.
const globalOptions = `{
	admin off
	auto_https off
	persist_config off
	grace_period 3s
	log {
		level ERROR
	}
}
`

func TestMain(m *testing.M) {
	caddyPort, publishPort = freePort(), freePort()
	caddyURL = fmt.Sprintf("http://127.0.0.1:%d", caddyPort)
	publishURL = fmt.Sprintf("http://127.0.0.1:%d/publish/", publishPort)
	code := m.Run()
	_ = caddy.Stop()
	os.Exit(code)
}

// freePort returns a TCP port that was free a moment ago, drawn where no
// outgoing connection takes it (freeport.Ports).
func freePort() int {
	ports, err := freeport.Ports(1)
	if err != nil {
		panic(err)
	}
	return ports[0]
}

// loadCaddyfile adapts a Caddyfile (after the global options) and loads it,
// replacing whatever config ran before.
func loadCaddyfile(t testing.TB, caddyfile string) {
	t.Helper()
	adapter := caddyconfig.GetAdapter("caddyfile")
	cfg, _, err := adapter.Adapt([]byte(globalOptions+caddyfile), nil)
	if err != nil {
		t.Fatalf("adapting Caddyfile: %v\n%s", err, caddyfile)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("loading config: %v", err)
	}
	// Caddy opens the new config's listeners beside the old ones
	// (SO_REUSEPORT) and closes the old ones in the background; a
	// connection the kernel queued on an old one is dropped. Wait until
	// each port is down to one listener, and forget pooled connections.
	for _, port := range []int{caddyPort, publishPort} {
		eventually(t, fmt.Sprintf("one listener on port %d", port), func() bool { return listeners(port) <= 1 })
	}
	http.DefaultClient.CloseIdleConnections()
}

// listeners counts the listening TCP sockets on a local port (Linux).
func listeners(port int) int {
	want := fmt.Sprintf(":%04X", port)
	n := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) > 3 && strings.HasSuffix(fields[1], want) && fields[3] == "0A" {
				n++
			}
		}
	}
	return n
}

// gripSite is the usual set-up: a publish listener and a client site whose
// route is grip in front of reverse_proxy to origin.
func gripSite(origin string, gripOptions string) string {
	return fmt.Sprintf(`
http://127.0.0.1:%d {
	grip_publish
}
http://127.0.0.1:%d {
	grip {
		%s
	}
	reverse_proxy %s
}
`, publishPort, caddyPort, gripOptions, strings.TrimPrefix(origin, "http://"))
}

// startOrigin runs an origin for the test.
func startOrigin(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// publisher opens a connection per publish: a reload closes idle
// connections, and a POST on one that just closed is not retried.
var publisher = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// publish posts a publish body and fails the test unless it is accepted.
func publish(t testing.TB, body string) {
	t.Helper()
	status, text := publishRaw(t, body, nil)
	if status != http.StatusOK {
		t.Fatalf("publish: %d %q", status, text)
	}
}

// publishRaw posts to the publish endpoint and returns the status and body.
func publishRaw(t testing.TB, body string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, publishURL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := publisher.Do(req)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// streamItem is a publish body with one http-stream item.
func streamItem(channel, content string) string {
	return fmt.Sprintf(`{"items":[{"channel":%q,"formats":{"http-stream":{"content":%q}}}]}`, channel, content)
}

// responseItem is a publish body with one http-response item.
func responseItem(channel, body string) string {
	return fmt.Sprintf(`{"items":[{"channel":%q,"formats":{"http-response":{"body":%q}}}]}`, channel, body)
}

// getBodyAsync GETs url on another goroutine, for requests the test answers
// by publishing; the body (or the error) arrives on the channel.
func getBodyAsync(url string) <-chan string {
	done := make(chan string, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- string(b)
	}()
	return done
}

// eventually polls cond until it holds, failing the test if it never does
// within a generous bound (a hang guard, not a performance assertion).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stream is a client reading a held response body as it arrives.
type stream struct {
	resp  *http.Response
	lines chan string
	done  chan struct{}
	buf   bytes.Buffer
	end   string // "clean end" or the read error; set before lines closes
}

// openStream GETs url and reads its body line by line in the background.
func openStream(t testing.TB, url string, header http.Header) *stream {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	s := &stream{resp: resp, lines: make(chan string, 10000), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(s.lines)
		r := bufio.NewReader(resp.Body)
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				s.lines <- line
			}
			if err != nil {
				s.end = "clean end"
				if err != io.EOF {
					s.end = err.Error()
				}
				return
			}
		}
	}()
	t.Cleanup(func() { resp.Body.Close() })
	return s
}

// next returns the next line, failing the test if the stream ends first.
func (s *stream) next(t testing.TB) string {
	t.Helper()
	line, err := s.nextLine()
	if err != nil {
		t.Fatal(err)
	}
	return line
}

// nextLine is next for goroutines other than the test's.
func (s *stream) nextLine() (string, error) {
	select {
	case line, ok := <-s.lines:
		if !ok {
			return "", fmt.Errorf("stream ended early")
		}
		return line, nil
	case <-time.After(20 * time.Second):
		return "", fmt.Errorf("no line arrived")
	}
}

// ended waits for the body to end and returns what remained unread.
func (s *stream) ended(t testing.TB) []string {
	t.Helper()
	var rest []string
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				return rest
			}
			rest = append(rest, line)
		case <-time.After(20 * time.Second):
			t.Fatalf("stream did not end")
		}
	}
}

// simpleWSOrigin is a WebSocket-over-HTTP origin with the grip extension:
// it answers OPEN with OPEN and the given control messages (JSON after
// "c:"), echoes each TEXT as "echo <text>", and hands every event it gets
// to onEvent, if set.
func simpleWSOrigin(t testing.TB, controls []string, onEvent func(wsoverhttp.Event)) *httptest.Server {
	return startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		evs, err := wsoverhttp.ParseEvents(body, 0)
		if err != nil {
			t.Errorf("origin got bad events: %v", err)
		}
		var out []wsoverhttp.Event
		for _, e := range evs {
			if onEvent != nil {
				onEvent(e)
			}
			switch e.Type {
			case wsoverhttp.Open:
				out = append(out, e)
				for _, c := range controls {
					out = append(out, wsoverhttp.Event{Type: wsoverhttp.Text, Content: []byte("c:" + c)})
				}
			case wsoverhttp.Text:
				out = append(out, wsoverhttp.Event{Type: wsoverhttp.Text, Content: append([]byte("m:echo "), e.Content...)})
			}
		}
		w.Header().Set("Content-Type", wsoverhttp.ContentType)
		w.Header().Set("Sec-WebSocket-Extensions", "grip")
		w.Write(wsoverhttp.AppendEvents(nil, out...))
	})
}
