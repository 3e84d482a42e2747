package caddygrip

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-grip/grip/hub"
)

// withRequestID prepares r as Caddy's server does, so that
// {http.request.uuid} has a value.
func withRequestID(r *http.Request, w http.ResponseWriter) *http.Request {
	return caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil)
}

func TestASlowConsumerCutIsOneWarningWithTheRequest(t *testing.T) {
	name := testHub(t, "")
	cfg := newTestConfig(t)
	g := cfg.grip(t, &Grip{Hub: name})
	p := cfg.publish(t, name)
	g.ref.hub.Configure(hub.Config{QueueItems: 1})
	core, logs := observer.New(zapcore.DebugLevel)
	g.logger = zap.New(core)
	g.warnLog = hub.RateLimited(g.logger)
	g.ref.hub.SetLogger(g.logger)

	w := newStallWriter()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if v := recover(); v != nil && v != http.ErrAbortHandler {
				panic(v)
			}
		}()
		r := httptest.NewRequest(http.MethodGet, "http://news.example/s", nil)
		r.RemoteAddr = "192.0.2.7:4321"
		_ = g.ServeHTTP(w, withRequestID(r, w), gripOrigin(map[string]string{"Grip-Hold": "stream", "Grip-Channel": "slowwarn"}, ""))
	}()
	waitMetric(t, cfg.registry(), 1, "caddy_grip_connections", "transport", "stream", "hub", name)
	w.stalled.Store(true)
	publishItems(t, p, streamItem("slowwarn", "1", "a"))
	<-w.blocked
	publishItems(t, p, streamItem("slowwarn", "2", "b"))
	publishItems(t, p, streamItem("slowwarn", "3", "c"))
	close(w.release)
	<-done

	warns := logs.FilterLevelExact(zapcore.WarnLevel).All()
	if len(warns) != 1 || warns[0].Message != "hold ended" {
		t.Fatalf("warnings %+v, want one hold ended line", warns)
	}
	f := warns[0].ContextMap()
	if f["reason"] != "slow_consumer" || f["remote"] != "192.0.2.7:4321" || f["host"] != "news.example" {
		t.Fatalf("warning fields %v", f)
	}
	if id, _ := f["request_id"].(string); len(id) < 32 {
		t.Fatalf("warning fields %v lack the request id", f)
	}
}

func TestRefusedPublishesWarnWithTheRequestRateLimited(t *testing.T) {
	p := &Publish{Key: "right"}
	if err := provisionPublish(t, p); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	p.warnLog = hub.RateLimited(zap.New(core))
	const tries = 1000
	for range tries {
		w := httptest.NewRecorder()
		r := withRequestID(httptest.NewRequest(http.MethodPost, "http://pub.example/publish/", strings.NewReader(okItem)), w)
		r.Header.Set("Authorization", "Bearer wrong")
		if err := p.ServeHTTP(w, r, nil); err != nil || w.Code != http.StatusUnauthorized {
			t.Fatalf("refused publish: %d %v", w.Code, err)
		}
	}
	warns := logs.FilterMessage("publish rejected").All()
	// At most 10 lines a second get through: a thousand refusals in a
	// few seconds leave most unwritten.
	if len(warns) < 1 || len(warns) > tries/10 {
		t.Fatalf("%d warnings for %d refused publishes", len(warns), tries)
	}
	f := warns[0].ContextMap()
	if f["host"] != "pub.example" || f["remote"] == "" || f["request_id"] == "" || f["request_id"] == nil {
		t.Fatalf("warning fields %v", f)
	}
}
