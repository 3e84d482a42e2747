package integration_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// restartableOrigin is an origin on a fixed loopback port that can be
// stopped and started again on the same port.
type restartableOrigin struct {
	addr    string
	handler http.Handler
	mu      sync.Mutex
	srv     *http.Server
}

func (o *restartableOrigin) start(t *testing.T) {
	t.Helper()
	var l net.Listener
	eventually(t, "the origin's port", func() bool {
		var err error
		l, err = net.Listen("tcp", o.addr)
		return err == nil
	})
	o.mu.Lock()
	o.srv = &http.Server{Handler: o.handler}
	srv := o.srv
	o.mu.Unlock()
	go srv.Serve(l)
}

func (o *restartableOrigin) stop() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.srv != nil {
		o.srv.Close()
		o.srv = nil
	}
}

// chaosClient is one held SSE stream read line by line.
type chaosClient struct {
	conn net.Conn
	mu   sync.Mutex
	got  []string
	err  error
}

func (c *chaosClient) read() {
	r := bufio.NewReader(c.conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		if m, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "data: m"); ok {
			c.mu.Lock()
			c.got = append(c.got, m)
			c.mu.Unlock()
		}
	}
}

// TestChaosHeldStreamsSurviveOriginRestartAndReloads holds 5,000 SSE
// streams on a Caddy process while the origin is killed and restarted and
// the config is reloaded five times, publishing all along: no held client
// is dropped, none misses a message, and once they leave, the process is
// back to the goroutines and open files it had before.
func TestChaosHeldStreamsSurviveOriginRestartAndReloads(t *testing.T) {
	if testing.Short() {
		t.Skip("5,000 connections")
	}
	origin := &restartableOrigin{addr: fmt.Sprintf("127.0.0.1:%d", freePort())}
	origin.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grip-Hold", "stream")
		w.Header().Set("Grip-Channel", "chaos")
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, ": open\n\n")
	})
	origin.start(t)
	t.Cleanup(origin.stop)

	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	admin := fmt.Sprintf("127.0.0.1:%d", freePort())
	config := func(writeTimeout int) string {
		return fmt.Sprintf(`{
	admin %s
	persist_config off
	grace_period 3s
}
http://%s {
	handle /publish/* {
		grip_publish
	}
	handle {
		grip {
			write_timeout %ds
			update_on_first_subscription off
		}
		reverse_proxy %s
	}
}`, admin, addr, writeTimeout, origin.addr)
	}
	proc := startCaddyProcess(t, config(10), addr)
	pid := proc.cmd.Process.Pid
	reload := func(writeTimeout int) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+admin+"/load", strings.NewReader(config(writeTimeout)))
		req.Header.Set("Content-Type", "text/caddyfile")
		resp, err := publisher.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("reload: %d %s", resp.StatusCode, b)
		}
	}
	held := func() int {
		resp, err := publisher.Get("http://" + admin + "/grip/hubs/default")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v struct{ Subscribers int }
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v.Subscribers
	}
	goroutines := func() int {
		resp, err := publisher.Get("http://" + admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
		t.Fatal("no go_goroutines on /metrics")
		return 0
	}
	fds := func() int {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	var sent atomic.Int64
	publishNext := func() {
		t.Helper()
		n := sent.Add(1)
		mustPublishTo(t, &clusterNode{addr: addr, name: "chaos"}, fmt.Sprintf(
			`{"items":[{"channel":"chaos","formats":{"http-stream":{"content":"data: m%d\n\n"}}}]}`, n))
	}

	// The baseline: after one reload, with nobody held.
	reload(11)
	baseGoroutines, baseFDs := goroutines(), fds()

	const n = 5000
	clients := make([]*chaosClient, n)
	for i := range clients {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		fmt.Fprintf(c, "GET /events HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		clients[i] = &chaosClient{conn: c}
		go clients[i].read()
	}
	t.Cleanup(func() {
		for _, c := range clients {
			c.conn.Close()
		}
	})
	eventually(t, "5,000 held streams", func() bool { return held() == n })

	publishNext()
	for round := range 5 {
		if round == 1 {
			origin.stop()
		}
		reload(12 + round)
		publishNext()
		if round == 3 {
			origin.start(t)
		}
		publishNext()
	}
	if got := held(); got != n {
		t.Fatalf("%d streams held after the chaos, want %d", got, n)
	}
	total := int(sent.Load())
	want := make([]string, total)
	for i := range want {
		want[i] = strconv.Itoa(i + 1)
	}
	eventually(t, "every client has every message", func() bool {
		for _, c := range clients {
			c.mu.Lock()
			done := len(c.got) >= total || c.err != nil
			c.mu.Unlock()
			if !done {
				return false
			}
		}
		return true
	})
	for i, c := range clients {
		c.mu.Lock()
		got, err := strings.Join(c.got, ","), c.err
		c.mu.Unlock()
		if got != strings.Join(want, ",") {
			t.Fatalf("client %d got %q (read error %v), want %q", i, got, err, strings.Join(want, ","))
		}
	}

	for _, c := range clients {
		c.conn.Close()
	}
	eventually(t, "the streams leave", func() bool { return held() == 0 })
	// Nothing per client stays behind: goroutines and open files come back
	// to about the baseline (a few are the origin's pooled connections and
	// the admin requests of this test).
	var g, f int
	eventually(t, "goroutines and files back to the baseline", func() bool {
		g, f = goroutines(), fds()
		return g <= baseGoroutines+20 && f <= baseFDs+20
	})
	t.Logf("%d streams, %d messages, 5 reloads, origin restarted: goroutines %d -> %d, fds %d -> %d",
		n, total, baseGoroutines, g, baseFDs, f)
}
