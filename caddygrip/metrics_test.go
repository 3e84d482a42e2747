package caddygrip

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-grip/grip/hub"
	"github.com/caddy-grip/grip/wsoverhttp"
)

// testConfig is one loaded config as Caddy makes it: a context with its own
// metrics registry, and the modules provisioned in it.
type testConfig struct {
	ctx      caddy.Context
	cancel   context.CancelFunc
	modules  []caddy.CleanerUpper
	unloaded bool
}

// loadRootConfig loads an empty Caddy config once: a grip handler needs a
// config's events app, and each testConfig is a context made from it.
var loadRootConfig = sync.OnceValue(func() error {
	return caddy.Load([]byte(`{"admin":{"disabled":true,"config":{"persist":false}}}`), true)
})

func newTestConfig(t *testing.T) *testConfig {
	t.Helper()
	if err := loadRootConfig(); err != nil {
		t.Fatalf("loading an empty Caddy config: %v", err)
	}
	ctx, cancel := caddy.NewContext(caddy.ActiveContext())
	c := &testConfig{ctx: ctx, cancel: cancel}
	t.Cleanup(c.unload)
	return c
}

// grip provisions g in the config, with update_on_first_subscription off
// unless set, so that no hint races the test's own publishes.
func (c *testConfig) grip(t *testing.T, g *Grip) *Grip {
	t.Helper()
	if g.UpdateOnFirstSubscription == nil {
		off := false
		g.UpdateOnFirstSubscription = &off
	}
	if err := g.Provision(c.ctx); err != nil {
		t.Fatalf("provisioning grip on hub %q: %v", g.Hub, err)
	}
	c.modules = append(c.modules, g)
	return g
}

func (c *testConfig) publish(t *testing.T, hubName string) *Publish {
	t.Helper()
	p := &Publish{Hub: hubName}
	if err := p.Provision(c.ctx); err != nil {
		t.Fatalf("provisioning grip_publish on hub %q: %v", hubName, err)
	}
	c.modules = append(c.modules, p)
	return p
}

// unload cleans the config's modules up, as a reload does to the old one.
func (c *testConfig) unload() {
	if c.unloaded {
		return
	}
	c.unloaded = true
	for _, m := range c.modules {
		_ = m.Cleanup()
	}
	c.cancel()
}

func (c *testConfig) registry() *prometheus.Registry { return c.ctx.GetMetricsRegistry() }

// testHub is a hub name of the test's own.
func testHub(t *testing.T, suffix string) string {
	return "metrics-" + strings.ReplaceAll(t.Name(), "/", "-") + suffix
}

// metric reads one series from reg: a counter's or gauge's value, or a
// histogram's sample count. labels are name, value pairs; a series that is
// not there reads 0.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, labels) {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				case m.Histogram != nil:
					return float64(m.Histogram.GetSampleCount())
				}
			}
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// waitMetric polls until the series reads want; the test's own timeout
// bounds it.
func waitMetric(t *testing.T, reg *prometheus.Registry, want float64, name string, labels ...string) {
	t.Helper()
	for metric(t, reg, name, labels...) != want {
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

func wantMetric(t *testing.T, reg *prometheus.Registry, want float64, name string, labels ...string) {
	t.Helper()
	if got := metric(t, reg, name, labels...); got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// gripOrigin answers every request with GRIP instructions built from hdr.
func gripOrigin(hdr map[string]string, body string) caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		for k, v := range hdr {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "text/plain")
		_, err := io.WriteString(w, body)
		return err
	})
}

// serveGrip runs g in front of origin on a loopback server.
func serveGrip(t *testing.T, g *Grip, origin caddyhttp.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := g.ServeHTTP(w, r, origin); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// observe points g's log at an observer recording every level.
func observe(g *Grip) *observer.ObservedLogs {
	core, logs := observer.New(zapcore.DebugLevel)
	g.logger = zap.New(core)
	return logs
}

func streamItem(channel, id, content string) string {
	return fmt.Sprintf(`{"channel":%q,"id":%q,"formats":{"http-stream":{"content":%q}}}`, channel, id, content)
}

func publishItems(t *testing.T, p *Publish, items ...string) {
	t.Helper()
	if status, body := servePublish(t, p, "", `{"items":[`+strings.Join(items, ",")+`]}`); status != http.StatusOK {
		t.Fatalf("publish answered %d %q", status, body)
	}
}

func TestMetricsCountAStreamHoldItsDeliveriesAndItsEnd(t *testing.T) {
	name := testHub(t, "")
	cfg := newTestConfig(t)
	g := cfg.grip(t, &Grip{Hub: name})
	logs := observe(g)
	p := cfg.publish(t, name)
	reg := cfg.registry()
	srv := serveGrip(t, g, gripOrigin(map[string]string{"Grip-Hold": "stream", "Grip-Channel": "news"}, "hello\n"))

	res, err := http.Get(srv.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	lines := bufio.NewReader(res.Body)
	hubLabel := []string{"hub", name}
	stream := append([]string{"transport", "stream"}, hubLabel...)
	waitMetric(t, reg, 1, "caddy_grip_connections", stream...)
	wantMetric(t, reg, 1, "caddy_grip_connections_total", stream...)
	wantMetric(t, reg, 1, "caddy_grip_channels", hubLabel...)

	publishItems(t, p, streamItem("news", "1", "one\n"), streamItem("news", "2", "two\n"))
	publishItems(t, p, streamItem("news", "1", "again\n")) // a duplicate id: dropped
	for _, want := range []string{"hello\n", "one\n", "two\n"} {
		if line, err := lines.ReadString('\n'); line != want {
			t.Fatalf("read %q (%v), want %q", line, err, want)
		}
	}
	wantMetric(t, reg, 3, "caddy_grip_published_items_total", hubLabel...)
	wantMetric(t, reg, 2, "caddy_grip_deliveries_total", stream...)
	wantMetric(t, reg, 1, "caddy_grip_dropped_items_total", "reason", "duplicate", "hub", name)
	wantMetric(t, reg, 2, "caddy_grip_publish_requests_total", "code", "200", "hub", name)
	wantMetric(t, reg, 2, "caddy_grip_fanout_duration_seconds", hubLabel...)

	publishItems(t, p, `{"channel":"news","formats":{"http-stream":{"action":"close"}}}`)
	if rest, err := io.ReadAll(lines); err != nil || len(rest) != 0 {
		t.Fatalf("after close: %q, %v; want the end of the body", rest, err)
	}
	waitMetric(t, reg, 0, "caddy_grip_connections", stream...)
	wantMetric(t, reg, 1, "caddy_grip_disconnects_total", "transport", "stream", "reason", "publish_close", "hub", name)
	wantMetric(t, reg, 0, "caddy_grip_channels", hubLabel...)
	wantMetric(t, reg, 3, "caddy_grip_deliveries_total", stream...) // the close itself is enqueued

	ended := logs.FilterMessage("hold ended").All()
	if len(ended) != 1 || ended[0].Level != zapcore.InfoLevel {
		t.Fatalf("hold ended lines: %v, want one at info", ended)
	}
	f := ended[0].ContextMap()
	if f["transport"] != "stream" || f["channels"] != int64(1) || f["messages"] != int64(2) ||
		f["bytes"] != int64(len("hello\none\ntwo\n")) || f["reason"] != "publish_close" {
		t.Errorf("hold ended fields %v", f)
	}
	if n := logs.FilterMessage("hold started").Len(); n != 1 {
		t.Errorf("%d hold started lines, want 1", n)
	}
}

func TestMetricsCountALongPollTimeoutAndOneAnsweredByAPublish(t *testing.T) {
	name := testHub(t, "")
	cfg := newTestConfig(t)
	g := cfg.grip(t, &Grip{Hub: name})
	logs := observe(g)
	p := cfg.publish(t, name)
	reg := cfg.registry()
	origin := gripOrigin(map[string]string{"Grip-Hold": "response", "Grip-Channel": "poll", "Grip-Timeout": "5"}, "held\n")
	resp := []string{"transport", "response", "hub", name}

	synctest.Test(t, func(t *testing.T) {
		w := httptest.NewRecorder()
		if err := g.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/poll", nil), origin); err != nil {
			t.Fatal(err)
		}
		if w.Body.String() != "held\n" {
			t.Fatalf("timed-out long-poll answered %q", w.Body)
		}
	})
	wantMetric(t, reg, 1, "caddy_grip_disconnects_total", "transport", "response", "reason", "timeout", "hub", name)
	wantMetric(t, reg, 0, "caddy_grip_connections", resp...)

	done := make(chan string)
	go func() {
		w := httptest.NewRecorder()
		_ = g.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/poll", nil), origin)
		done <- w.Body.String()
	}()
	waitMetric(t, reg, 1, "caddy_grip_connections", resp...)
	publishItems(t, p, `{"channel":"poll","formats":{"http-response":{"body":"news\n"}}}`)
	if body := <-done; body != "news\n" {
		t.Fatalf("answered long-poll got %q", body)
	}
	wantMetric(t, reg, 0, "caddy_grip_connections", resp...)
	wantMetric(t, reg, 2, "caddy_grip_connections_total", resp...)
	wantMetric(t, reg, 1, "caddy_grip_deliveries_total", resp...)
	wantMetric(t, reg, 1, "caddy_grip_disconnects_total", "transport", "response", "reason", "answered", "hub", name)

	ended := logs.FilterMessage("hold ended").All()
	if len(ended) != 2 || ended[0].Level != zapcore.DebugLevel {
		t.Fatalf("hold ended lines %v, want two at debug", ended)
	}
	if f := ended[1].ContextMap(); f["transport"] != "response" || f["messages"] != int64(1) || f["bytes"] != int64(5) || f["reason"] != "answered" {
		t.Errorf("answered long-poll's line: %v", f)
	}
}

func TestMetricsCountARetryAsAnOriginRequest(t *testing.T) {
	name := testHub(t, "")
	cfg := newTestConfig(t)
	g := cfg.grip(t, &Grip{Hub: name})
	p := cfg.publish(t, name)
	reg := cfg.registry()
	var calls atomic.Int32
	origin := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if calls.Add(1) == 1 {
			w.Header().Set("Grip-Hold", "response")
			w.Header().Set("Grip-Channel", "hinted")
			_, err := io.WriteString(w, "held\n")
			return err
		}
		return caddyhttp.Error(http.StatusServiceUnavailable, errors.New("origin down"))
	})
	done := make(chan error)
	go func() {
		done <- g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/poll", nil), origin)
	}()
	waitMetric(t, reg, 1, "caddy_grip_connections", "transport", "response", "hub", name)
	publishItems(t, p, `{"channel":"hinted","formats":{"http-response":{"action":"hint"}}}`)
	<-done
	wantMetric(t, reg, 1, "caddy_grip_origin_requests_total", "kind", "retry", "code_class", "5xx", "hub", name)
	wantMetric(t, reg, 1, "caddy_grip_origin_request_duration_seconds", "kind", "retry", "hub", name)
	wantMetric(t, reg, 1, "caddy_grip_disconnects_total", "transport", "response", "reason", "origin_error", "hub", name)
}

// stallWriter is a client connection whose flushes block while stalled,
// or fail once broken: a client that stopped reading, or went away.
type stallWriter struct {
	header  http.Header
	stalled atomic.Bool
	broken  atomic.Bool
	blocked chan struct{} // a flush is blocked
	release chan struct{}
	mu      sync.Mutex
	body    strings.Builder
}

func newStallWriter() *stallWriter {
	return &stallWriter{header: http.Header{}, blocked: make(chan struct{}, 1), release: make(chan struct{})}
}

func (w *stallWriter) Header() http.Header { return w.header }
func (w *stallWriter) WriteHeader(int)     {}
func (w *stallWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.body.Write(p)
}

func (w *stallWriter) FlushError() error {
	if w.broken.Load() {
		return errors.New("i/o timeout")
	}
	if w.stalled.Load() {
		w.blocked <- struct{}{}
		<-w.release
	}
	return nil
}

// serveStalled runs a stream hold on w; the hold ends by aborting the
// response (panic ErrAbortHandler), which it recovers as net/http would.
func serveStalled(g *Grip, w *stallWriter, origin caddyhttp.Handler) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if v := recover(); v != nil && v != http.ErrAbortHandler {
				panic(v)
			}
		}()
		_ = g.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/s", nil), origin)
	}()
	return done
}

func TestMetricsCountASlowConsumerAndTheItemsItLost(t *testing.T) {
	name := testHub(t, "")
	cfg := newTestConfig(t)
	g := cfg.grip(t, &Grip{Hub: name})
	p := cfg.publish(t, name)
	g.ref.hub.Configure(hub.Config{QueueItems: 2})
	reg := cfg.registry()
	stream := []string{"transport", "stream", "hub", name}
	w := newStallWriter()
	done := serveStalled(g, w, gripOrigin(map[string]string{"Grip-Hold": "stream", "Grip-Channel": "slow"}, ""))
	waitMetric(t, reg, 1, "caddy_grip_connections", stream...)

	w.stalled.Store(true)
	publishItems(t, p, streamItem("slow", "1", "a"))
	<-w.blocked // the holder took item 1 and is stuck writing it
	publishItems(t, p, streamItem("slow", "2", "b"))
	publishItems(t, p, streamItem("slow", "3", "c"))
	publishItems(t, p, streamItem("slow", "4", "d")) // over QueueItems: 2, 3 and 4 are lost
	close(w.release)
	<-done

	wantMetric(t, reg, 1, "caddy_grip_disconnects_total", "transport", "stream", "reason", "slow_consumer", "hub", name)
	wantMetric(t, reg, 3, "caddy_grip_dropped_items_total", "reason", "queue_full", "hub", name)
	wantMetric(t, reg, 3, "caddy_grip_deliveries_total", stream...)
	wantMetric(t, reg, 0, "caddy_grip_connections", stream...)
}

func TestMetricsCountAFailedWriteAsAWriteTimeout(t *testing.T) {
	name := testHub(t, "")
	cfg := newTestConfig(t)
	g := cfg.grip(t, &Grip{Hub: name})
	p := cfg.publish(t, name)
	reg := cfg.registry()
	w := newStallWriter()
	done := serveStalled(g, w, gripOrigin(map[string]string{"Grip-Hold": "stream", "Grip-Channel": "wt"}, ""))
	waitMetric(t, reg, 1, "caddy_grip_connections", "transport", "stream", "hub", name)
	w.broken.Store(true)
	publishItems(t, p, streamItem("wt", "1", "a"))
	<-done
	wantMetric(t, reg, 1, "caddy_grip_disconnects_total", "transport", "stream", "reason", "write_timeout", "hub", name)
	wantMetric(t, reg, 0, "caddy_grip_disconnects_total", "transport", "stream", "reason", "slow_consumer", "hub", name)
}

// wsOrigin speaks WebSocket-over-HTTP: it accepts the OPEN, subscribes the
// connection to channel, and acknowledges a CLOSE.
func wsOrigin(channel string) caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		events, err := wsoverhttp.ParseEvents(body, 0)
		if err != nil {
			return caddyhttp.Error(http.StatusBadRequest, err)
		}
		var out []wsoverhttp.Event
		for _, ev := range events {
			switch ev.Type {
			case wsoverhttp.Open:
				out = append(out, ev, wsoverhttp.Event{Type: wsoverhttp.Text,
					Content: []byte(wsoverhttp.ControlPrefix + `{"type":"subscribe","channel":"` + channel + `"}`)})
			case wsoverhttp.Close:
				out = append(out, ev)
			}
		}
		w.Header().Set("Content-Type", wsoverhttp.ContentType)
		w.Header().Set("Sec-WebSocket-Extensions", wsoverhttp.GripExtension)
		_, err = w.Write(wsoverhttp.AppendEvents(nil, out...))
		return err
	})
}

func TestMetricsCountAWebSocketSessionAndItsOriginRequests(t *testing.T) {
	name := testHub(t, "")
	cfg := newTestConfig(t)
	g := cfg.grip(t, &Grip{Hub: name})
	p := cfg.publish(t, name)
	reg := cfg.registry()
	srv := serveGrip(t, g, wsOrigin("room"))
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ws := []string{"transport", "websocket", "hub", name}
	waitMetric(t, reg, 1, "caddy_grip_connections", ws...)
	waitMetric(t, reg, 1, "caddy_grip_channels", "hub", name)
	publishItems(t, p, `{"channel":"room","formats":{"ws-message":{"content":"hi"}}}`)
	if _, msg, err := conn.ReadMessage(); err != nil || string(msg) != "hi" {
		t.Fatalf("read %q, %v", msg, err)
	}
	wantMetric(t, reg, 1, "caddy_grip_deliveries_total", ws...)
	if err := conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, reg, 0, "caddy_grip_connections", ws...)
	wantMetric(t, reg, 1, "caddy_grip_connections_total", ws...)
	wantMetric(t, reg, 1, "caddy_grip_disconnects_total", "transport", "websocket", "reason", "client", "hub", name)
	// The OPEN, then the CLOSE.
	wantMetric(t, reg, 2, "caddy_grip_origin_requests_total", "kind", "websocket", "code_class", "2xx", "hub", name)
	wantMetric(t, reg, 2, "caddy_grip_origin_request_duration_seconds", "kind", "websocket", "hub", name)
}

func TestMetricsKeepHubsApartInOneRegistry(t *testing.T) {
	a, b := testHub(t, "-a"), testHub(t, "-b")
	cfg := newTestConfig(t)
	// Two handlers on hub a and one on hub b: the second on a finds the
	// collector registered, which must not fail provisioning. Hub b's
	// publisher is in another config, so only its grip handler registers
	// it here.
	ga := cfg.grip(t, &Grip{Hub: a})
	cfg.grip(t, &Grip{Hub: a})
	cfg.grip(t, &Grip{Hub: b})
	pa, pb := cfg.publish(t, a), newTestConfig(t).publish(t, b)
	reg := cfg.registry()
	srv := serveGrip(t, ga, gripOrigin(map[string]string{"Grip-Hold": "stream", "Grip-Channel": "c"}, ""))
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	waitMetric(t, reg, 1, "caddy_grip_connections", "transport", "stream", "hub", a)
	publishItems(t, pa, streamItem("c", "", "x"))
	publishItems(t, pb, streamItem("c", "", "y"), streamItem("c", "", "z"))
	wantMetric(t, reg, 0, "caddy_grip_connections", "transport", "stream", "hub", b)
	wantMetric(t, reg, 1, "caddy_grip_published_items_total", "hub", a)
	wantMetric(t, reg, 2, "caddy_grip_published_items_total", "hub", b)
	wantMetric(t, reg, 1, "caddy_grip_deliveries_total", "transport", "stream", "hub", a)
	wantMetric(t, reg, 0, "caddy_grip_deliveries_total", "transport", "stream", "hub", b)
}

func TestMetricsSurviveAReloadWithAHeldClient(t *testing.T) {
	name := testHub(t, "")
	old := newTestConfig(t)
	g := old.grip(t, &Grip{Hub: name})
	p := old.publish(t, name)
	srv := serveGrip(t, g, gripOrigin(map[string]string{"Grip-Hold": "stream", "Grip-Channel": "c"}, ""))
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	lines := bufio.NewReader(res.Body)
	stream := []string{"transport", "stream", "hub", name}
	waitMetric(t, old.registry(), 1, "caddy_grip_connections", stream...)
	publishItems(t, p, streamItem("c", "1", "before\n"))

	// The reload: the new config is provisioned on the same hub before the
	// old one is cleaned up, and has a registry of its own.
	cur := newTestConfig(t)
	cur.grip(t, &Grip{Hub: name})
	p2 := cur.publish(t, name)
	old.unload()
	reg := cur.registry()
	wantMetric(t, reg, 1, "caddy_grip_connections", stream...)
	wantMetric(t, reg, 1, "caddy_grip_published_items_total", "hub", name)
	wantMetric(t, reg, 1, "caddy_grip_publish_requests_total", "code", "200", "hub", name)

	publishItems(t, p2, streamItem("c", "2", "after\n"))
	for _, want := range []string{"before\n", "after\n"} {
		if line, err := lines.ReadString('\n'); line != want {
			t.Fatalf("read %q (%v), want %q", line, err, want)
		}
	}
	wantMetric(t, reg, 2, "caddy_grip_published_items_total", "hub", name)
	wantMetric(t, reg, 2, "caddy_grip_deliveries_total", stream...)
	wantMetric(t, reg, 2, "caddy_grip_publish_requests_total", "code", "200", "hub", name)
}

func TestMetricsCountPublishRequestsByStatus(t *testing.T) {
	name := testHub(t, "")
	cfg := newTestConfig(t)
	p := cfg.publish(t, name)
	reg := cfg.registry()
	if status, _ := servePublish(t, p, "", `{"items":[{"channel":"c"}]}`); status != http.StatusBadRequest {
		t.Fatalf("an item without formats answered %d", status)
	}
	publishItems(t, p, streamItem("c", "", "x"))
	wantMetric(t, reg, 1, "caddy_grip_publish_requests_total", "code", "400", "hub", name)
	wantMetric(t, reg, 1, "caddy_grip_publish_requests_total", "code", "200", "hub", name)
	wantMetric(t, reg, 1, "caddy_grip_fanout_duration_seconds", "hub", name)
}
