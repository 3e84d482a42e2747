package integration_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"
	natstest "github.com/nats-io/nats-server/v2/test"

	"github.com/caddy-grip/grip/wsoverhttp"
)

// cluster is one NATS server (in the test process) and Caddy nodes, each in
// its own process, joined by the `grip { nats ... }` global option.
type cluster struct {
	t        *testing.T
	natsPort int
	nats     *natsserver.Server
	origin   *clusterOrigin
	nodes    []*clusterNode
	grip     string // more of the grip global option, after nats
}

// clusterNode is one Caddy process of a cluster.
type clusterNode struct {
	name, addr, admin string
	proc              *caddyProcess
}

// clusterOrigin is the origin every node proxies to. By path:
// /stream/<ch> and /sse/<ch> hold a stream, /poll/<ch>?prev=<id> holds a
// response (answered "recovered" when grip re-requests it with Grip-Last),
// and /ws is a WebSocket-over-HTTP session subscribed to the channel named
// by its ?ch= query, echoing each text message as "echo <text>".
type clusterOrigin struct {
	srv *http.Server
	url string

	mu          sync.Mutex
	lastHeaders []string // the Grip-Last headers received, in order
	polls       map[string]int
}

func startClusterOrigin(t *testing.T) *clusterOrigin {
	o := &clusterOrigin{polls: make(map[string]int)}
	srv := startOrigin(t, o.serve)
	o.url = srv.URL
	return o
}

func (o *clusterOrigin) serve(w http.ResponseWriter, r *http.Request) {
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)
	kind, ch := parts[0], ""
	if len(parts) == 2 {
		ch = parts[1]
	}
	switch kind {
	case "stream", "sse":
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", ch)
		if kind == "sse" {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, ": open\n")
			return
		}
		io.WriteString(w, "open\n")
	case "poll":
		o.mu.Lock()
		o.polls[ch]++
		if l := r.Header.Get("Grip-Last"); l != "" {
			o.lastHeaders = append(o.lastHeaders, l)
			o.mu.Unlock()
			io.WriteString(w, "recovered\n")
			return
		}
		o.mu.Unlock()
		w.Header().Set("Grip-Hold", "response")
		spec := ch
		if prev := r.URL.Query().Get("prev"); prev != "" {
			spec += "; prev-id=" + prev
		}
		w.Header().Set("Grip-Channel", spec)
		timeout := r.URL.Query().Get("timeout")
		if timeout == "" {
			timeout = "600"
		}
		w.Header().Set("Grip-Timeout", timeout)
		io.WriteString(w, "timeout\n")
	case "ws":
		body, _ := io.ReadAll(r.Body)
		evs, _ := wsoverhttp.ParseEvents(body, 0)
		var out []wsoverhttp.Event
		for _, e := range evs {
			switch e.Type {
			case wsoverhttp.Open:
				out = append(out, e, wsoverhttp.Event{Type: wsoverhttp.Text,
					Content: []byte(fmt.Sprintf(`c:{"type":"subscribe","channel":%q}`, r.URL.Query().Get("ch")))})
			case wsoverhttp.Text:
				out = append(out, wsoverhttp.Event{Type: wsoverhttp.Text, Content: append([]byte("m:echo "), e.Content...)})
			}
		}
		w.Header().Set("Content-Type", wsoverhttp.ContentType)
		w.Header().Set("Sec-WebSocket-Extensions", "grip")
		w.Write(wsoverhttp.AppendEvents(nil, out...))
	default:
		http.NotFound(w, r)
	}
}

func (o *clusterOrigin) pollCount(ch string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.polls[ch]
}

// startNATS runs a NATS server on port (-1: any).
func startNATS(t *testing.T, port int) *natsserver.Server {
	t.Helper()
	opts := natstest.DefaultTestOptions
	opts.Port = port
	return natstest.RunServer(&opts)
}

// startCluster runs a NATS server and n Caddy nodes joined to it.
func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	c := &cluster{t: t, natsPort: freePort(), origin: startClusterOrigin(t)}
	c.nats = startNATS(t, c.natsPort)
	c.startNodes(n)
	return c
}

// startNodes runs n Caddy nodes joined to c's NATS server, which it shuts
// down when the test ends.
func (c *cluster) startNodes(n int) {
	t := c.t
	t.Helper()
	t.Cleanup(func() {
		if c.nats != nil {
			c.nats.Shutdown()
		}
	})
	for i := range n {
		node := &clusterNode{
			name:  fmt.Sprintf("node-%c", 'a'+i),
			addr:  fmt.Sprintf("127.0.0.1:%d", freePort()),
			admin: fmt.Sprintf("127.0.0.1:%d", freePort()),
		}
		node.proc = startCaddyProcess(t, c.caddyfile(node, ""), node.addr)
		c.nodes = append(c.nodes, node)
	}
}

// caddyfile is a node's config; natsExtra goes inside the nats block.
func (c *cluster) caddyfile(n *clusterNode, natsExtra string) string {
	return fmt.Sprintf(`{
	admin %s
	persist_config off
	grace_period 3s
	grip {
		nats nats://127.0.0.1:%d {
			name %s
			linger 2s
			%s
		}
		%s
	}
}
http://%s {
	handle /publish/* {
		grip_publish
	}
	handle /nofirst/* {
		uri strip_prefix /nofirst
		grip {
			update_on_first_subscription off
		}
		reverse_proxy %s
	}
	handle {
		grip
		reverse_proxy %s
	}
}
`, n.admin, c.natsPort, n.name, natsExtra, c.grip, n.addr, strings.TrimPrefix(c.origin.url, "http://"), strings.TrimPrefix(c.origin.url, "http://"))
}

// reload replaces node n's config through its admin endpoint.
func (c *cluster) reload(n *clusterNode, caddyfile string) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+n.admin+"/load", strings.NewReader(caddyfile))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := publisher.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("reload %s: %d %s", n.name, resp.StatusCode, b)
	}
}

// subject is the NATS subject of a channel of the default hub.
func subject(channel string) string {
	return "grip.default.ch." + base64.RawURLEncoding.EncodeToString([]byte(channel))
}

// waitFollowers waits until n nodes follow channel on NATS.
func (c *cluster) waitFollowers(channel string, n int) {
	c.t.Helper()
	eventually(c.t, fmt.Sprintf("%d nodes following %q", n, channel), func() bool {
		return c.nats.GlobalAccount().Interest(subject(channel)) >= n
	})
}

// metric returns the value of one series on node n's /metrics, or -1 when
// the series is absent.
func (c *cluster) metric(n *clusterNode, series string) float64 {
	c.t.Helper()
	resp, err := publisher.Get("http://" + n.admin + "/metrics")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				c.t.Fatalf("%s: %q", series, line)
			}
			return f
		}
	}
	return -1
}

// publishToNode posts body to node n's publish endpoint.
func publishToNode(t testing.TB, n *clusterNode, body string) (int, http.Header, string) {
	t.Helper()
	resp, err := publisher.Post("http://"+n.addr+"/publish/", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("publish to %s: %v", n.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// await is the body a getBodyAsync request got, failing the test if none
// comes (a hang guard).
func await(t testing.TB, body <-chan string) string {
	t.Helper()
	select {
	case b := <-body:
		return b
	case <-time.After(30 * time.Second):
		t.Fatal("no response arrived")
		return ""
	}
}

// nextText is the stream's next line without its line ending.
func nextText(t testing.TB, s *stream) string {
	t.Helper()
	return strings.TrimRight(s.next(t), "\r\n")
}

func mustPublishTo(t testing.TB, n *clusterNode, body string) {
	t.Helper()
	if code, _, text := publishToNode(t, n, body); code != http.StatusOK {
		t.Fatalf("publish to %s: %d %q", n.name, code, text)
	}
}

func TestClusterPublishOnOneNodeReachesEveryTransportOnTheOthers(t *testing.T) {
	c := startCluster(t, 3)
	const ch = "everywhere"
	type clients struct {
		stream, sse *stream
		poll        <-chan string
		ws          *websocket.Conn
	}
	var held []clients
	for _, n := range c.nodes[1:] {
		var cl clients
		// The long-poll goes first: by the time the other clients are set
		// up, its hold has long subscribed (nothing outside the node shows
		// that moment). Its route does not update on first subscription,
		// so the origin's answer is held as it is.
		cl.poll = getBodyAsync("http://" + n.addr + "/nofirst/poll/" + ch)
		eventually(t, "the long-poll asked the origin", func() bool { return c.origin.pollCount(ch) >= len(held)+1 })
		cl.stream = openStream(t, "http://"+n.addr+"/stream/"+ch, nil)
		nextText(t, cl.stream)
		cl.sse = openStream(t, "http://"+n.addr+"/sse/"+ch, nil)
		nextText(t, cl.sse)
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+n.addr+"/ws?ch="+ch, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		// The echo comes back through the origin after the OPEN answer,
		// and so after the subscription it carried.
		if err := ws.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
			t.Fatal(err)
		}
		if _, m, err := ws.ReadMessage(); err != nil || string(m) != "echo hi" {
			t.Fatalf("echo: %q %v", m, err)
		}
		cl.ws = ws
		held = append(held, cl)
	}
	c.waitFollowers(ch, 2)

	mustPublishTo(t, c.nodes[0], fmt.Sprintf(`{"items":[{"channel":%q,"formats":{
		"http-stream":{"content":"pushed\n"},
		"http-response":{"body":"answered\n"},
		"ws-message":{"content":"over ws"}}}]}`, ch))
	for i, cl := range held {
		if got := nextText(t, cl.stream); got != "pushed" {
			t.Fatalf("node %d stream got %q", i+1, got)
		}
		if got := nextText(t, cl.sse); got != "pushed" {
			t.Fatalf("node %d SSE got %q", i+1, got)
		}
		if got := await(t, cl.poll); got != "answered\n" {
			t.Fatalf("node %d long-poll got %q", i+1, got)
		}
		if _, m, err := cl.ws.ReadMessage(); err != nil || string(m) != "over ws" {
			t.Fatalf("node %d WebSocket got %q %v", i+1, m, err)
		}
	}
}

func TestClusterDeliversAThousandItemsInOrderOnEveryNode(t *testing.T) {
	c := startCluster(t, 3)
	const ch = "ordered"
	var streams []*stream
	for _, n := range c.nodes {
		s := openStream(t, "http://"+n.addr+"/stream/"+ch, nil)
		nextText(t, s)
		streams = append(streams, s)
	}
	c.waitFollowers(ch, 3)
	const total, perPublish = 1000, 50
	for i := 0; i < total; i += perPublish {
		var items []string
		for j := i; j < i+perPublish; j++ {
			items = append(items, fmt.Sprintf(`{"channel":%q,"id":"%d","formats":{"http-stream":{"content":"%d\n"}}}`, ch, j, j))
		}
		mustPublishTo(t, c.nodes[0], `{"items":[`+strings.Join(items, ",")+`]}`)
	}
	for k, s := range streams {
		for i := range total {
			if got := nextText(t, s); got != strconv.Itoa(i) {
				t.Fatalf("%s: item %d is %q", c.nodes[k].name, i, got)
			}
		}
	}
}

func TestClusterDeliversTheSameIDFromTwoNodesOnce(t *testing.T) {
	c := startCluster(t, 3)
	const ch = "redundant"
	s := openStream(t, "http://"+c.nodes[2].addr+"/stream/"+ch, nil)
	nextText(t, s)
	c.waitFollowers(ch, 1)
	item := func(id string) string {
		return fmt.Sprintf(`{"items":[{"channel":%q,"id":%q,"formats":{"http-stream":{"content":"%s\n"}}}]}`, ch, id, id)
	}
	mustPublishTo(t, c.nodes[0], item("one"))
	mustPublishTo(t, c.nodes[1], item("one"))
	mustPublishTo(t, c.nodes[1], item("two"))
	if got := []string{nextText(t, s), nextText(t, s)}; got[0] != "one" || got[1] != "two" {
		t.Fatalf("stream got %q, want one then two", got)
	}
}

func TestClusterPrevIDRecoverySeesIDsPublishedOnOtherNodes(t *testing.T) {
	c := startCluster(t, 3)
	const ch = "recover"
	// Nobody follows the channel anywhere when v1 and v2 are published.
	mustPublishTo(t, c.nodes[0], fmt.Sprintf(`{"items":[{"channel":%q,"id":"v1","formats":{"http-response":{"body":"v1\n"}}}]}`, ch))
	mustPublishTo(t, c.nodes[0], fmt.Sprintf(`{"items":[{"channel":%q,"id":"v2","formats":{"http-response":{"body":"v2\n"}}}]}`, ch))
	// A client on node C that last saw v1 must be sent back to the origin
	// (which answers "recovered") rather than wait for v3. Without the
	// first-subscription update only the prev-id check can do that; each
	// try is held at most one second, until C has heard of v2.
	eventually(t, "node C re-requests a stale long-poll", func() bool {
		return await(t, getBodyAsync("http://"+c.nodes[2].addr+"/nofirst/poll/"+ch+"?prev=v1&timeout=1")) == "recovered\n"
	})
	c.origin.mu.Lock()
	last := c.origin.lastHeaders[len(c.origin.lastHeaders)-1]
	c.origin.mu.Unlock()
	if last != ch+"; last-id=v1" {
		t.Fatalf("Grip-Last %q, want the client's prev-id", last)
	}
}

func TestClusterSurvivesANATSRestart(t *testing.T) {
	c := startCluster(t, 2)
	const ch = "outage"
	a, b := c.nodes[0], c.nodes[1]
	s := openStream(t, "http://"+b.addr+"/stream/"+ch, nil)
	nextText(t, s)
	poll := getBodyAsync("http://" + b.addr + "/nofirst/poll/" + ch)
	c.waitFollowers(ch, 1)
	eventually(t, "the long-poll is held", func() bool { return c.origin.pollCount(ch) >= 1 })
	mustPublishTo(t, a, streamItem(ch, "before\n"))
	if got := nextText(t, s); got != "before" {
		t.Fatalf("stream got %q", got)
	}

	if got := c.metric(a, `caddy_grip_bus_connected{hub="default"}`); got != 1 {
		t.Fatalf("bus_connected %v before the outage, want 1", got)
	}
	if got := c.metric(a, `caddy_grip_bus_messages_total{direction="out",hub="default"}`); got < 1 {
		t.Fatalf("bus messages out %v, want at least the one published", got)
	}
	c.nats.Shutdown()
	c.nats.WaitForShutdown()
	c.nats = nil
	eventually(t, "bus_connected 0 during the outage", func() bool {
		return c.metric(b, `caddy_grip_bus_connected{hub="default"}`) == 0
	})
	// While NATS is down, a publish is refused with Retry-After, never
	// answered 200.
	var accepted []string
	eventually(t, "publish refused while NATS is down", func() bool {
		code, h, body := publishToNode(t, a, streamItem(ch, "during\n"))
		if code == http.StatusOK {
			accepted = append(accepted, body)
			return false
		}
		if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
			t.Fatalf("publish while down: %d %q, Retry-After %q", code, body, h.Get("Retry-After"))
		}
		return true
	})

	c.nats = startNATS(t, c.natsPort)
	// The held long-poll may have missed items: it is updated, so grip
	// asks the origin again.
	eventually(t, "the held long-poll is re-requested after the reconnect", func() bool { return c.origin.pollCount(ch) >= 2 })
	eventually(t, "bus_reconnects_total counts the reconnect", func() bool {
		return c.metric(b, `caddy_grip_bus_reconnects_total{hub="default"}`) >= 1
	})
	// Everything answered 200 reaches the stream: the "during" items
	// accepted before the outage was noticed, then an "after" once both
	// nodes are back (published until one arrives: an item published
	// before node B has resubscribed is what the update above is for).
	got := make(chan string, 1)
	go func() {
		for {
			line, err := s.nextLine()
			if err != nil {
				close(got)
				return
			}
			got <- strings.TrimRight(line, "\n")
		}
	}()
	during := 0
	for arrived := false; !arrived; {
		if code, _, _ := publishToNode(t, a, streamItem(ch, "after\n")); code != http.StatusOK {
			continue
		}
		for more := true; more; {
			select {
			case line, ok := <-got:
				switch {
				case !ok:
					t.Fatal("stream ended")
				case line == "after":
					arrived, more = true, false
				case line == "during" && !arrived:
					during++
				default:
					t.Fatalf("stream got %q", line)
				}
			case <-time.After(50 * time.Millisecond):
				more = false
			}
		}
	}
	if during != len(accepted) {
		t.Fatalf("%d publishes were answered 200 during the outage, %d arrived", len(accepted), during)
	}
	mustPublishTo(t, a, responseItem(ch, "done\n"))
	// The re-requested long-poll is held again (the origin answered with a
	// hold), so the publish answers it.
	if got := await(t, poll); got != "done\n" {
		t.Fatalf("long-poll got %q", got)
	}
}

func TestClusterNodeKilledLeavesTheOthersWorking(t *testing.T) {
	c := startCluster(t, 3)
	const ch = "survivor"
	a, b, victim := c.nodes[0], c.nodes[1], c.nodes[2]
	s := openStream(t, "http://"+b.addr+"/stream/"+ch, nil)
	nextText(t, s)
	gone := openStream(t, "http://"+victim.addr+"/stream/"+ch, nil)
	nextText(t, gone)
	c.waitFollowers(ch, 2)
	<-victim.proc.signal(t, syscall.SIGKILL)
	eventually(t, "NATS drops the killed node's interest", func() bool {
		return c.nats.GlobalAccount().Interest(subject(ch)) == 1
	})
	mustPublishTo(t, a, streamItem(ch, "still here\n"))
	if got := nextText(t, s); got != "still here" {
		t.Fatalf("stream got %q", got)
	}
}

func TestClusterReloadKeepsHeldClientsAndAnUnchangedConnection(t *testing.T) {
	c := startCluster(t, 2)
	const ch = "reloaded"
	a, b := c.nodes[0], c.nodes[1]
	s := openStream(t, "http://"+b.addr+"/stream/"+ch, nil)
	nextText(t, s)
	c.waitFollowers(ch, 1)
	connOf := func(name string) uint64 {
		cz, err := c.nats.Connz(&natsserver.ConnzOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ci := range cz.Conns {
			if ci.Name == name {
				return ci.Cid
			}
		}
		return 0
	}
	before := connOf(b.name)
	if before == 0 {
		t.Fatal("node B has no NATS connection")
	}

	// A reload that leaves the option alone keeps the connection.
	changed := strings.Replace(c.caddyfile(b, ""), "grace_period 3s", "grace_period 4s", 1)
	c.reload(b, changed)
	mustPublishTo(t, a, streamItem(ch, "unchanged\n"))
	if got := nextText(t, s); got != "unchanged" {
		t.Fatalf("after an unchanged reload the stream got %q", got)
	}
	if got := connOf(b.name); got != before {
		t.Fatalf("an unchanged option reconnected: connection %d, was %d", got, before)
	}

	// A changed option swaps the bus and keeps the held stream.
	c.reload(b, c.caddyfile(b, "linger 3s"))
	mustPublishTo(t, a, streamItem(ch, "swapped\n"))
	if got := nextText(t, s); got != "swapped" {
		t.Fatalf("after a changed reload the stream got %q", got)
	}
	eventually(t, "the old connection closed", func() bool {
		cz, _ := c.nats.Connz(&natsserver.ConnzOptions{})
		n := 0
		for _, ci := range cz.Conns {
			if ci.Name == b.name {
				n++
			}
		}
		return n == 1 && connOf(b.name) != before
	})
}

func TestClusterOptionIsCheckedWhenTheConfigLoads(t *testing.T) {
	bin := caddyBinary(t)
	dir := t.TempDir()
	for name, tc := range map[string]struct{ nats, want string }{
		"unset variable":    {"nats {env.GRIP_TEST_UNSET_NATS_URL}", "empty after replacing placeholders"},
		"bad scheme":        {"nats http://127.0.0.1:4222", "want a nats://"},
		"wildcard prefix":   {"nats nats://127.0.0.1:4222 {\n\t\t\tsubject_prefix grip.*\n\t\t}", "subject_prefix"},
		"user, no password": {"nats nats://127.0.0.1:4222 {\n\t\t\tuser me\n\t\t}", "user and password"},
		"missing creds":     {"nats nats://127.0.0.1:4222 {\n\t\t\tcredentials " + filepath.Join(dir, "none.creds") + "\n\t\t}", "credentials"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "Caddyfile")
			body := fmt.Sprintf("{\n\tadmin off\n\tgrip {\n\t\t%s\n\t}\n}\nhttp://127.0.0.1:%d {\n\tgrip\n\trespond ok\n}\n", tc.nats, freePort())
			if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			cmd := exec.Command(bin, "validate", "--config", cfg, "--adapter", "caddyfile")
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if err == nil || !strings.Contains(out.String(), tc.want) {
				t.Fatalf("validate: %v, want an error with %q:\n%s", err, tc.want, out.String())
			}
		})
	}
}
