package caddygrip

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-grip/grip/formats"
	"github.com/caddy-grip/grip/hub"
)

// adminGet serves one admin request and returns its status and body (the
// status of a returned caddy.APIError, as Caddy's admin server would).
func adminGet(t *testing.T, method, path string) (int, string) {
	t.Helper()
	var a AdminAPI
	w := httptest.NewRecorder()
	err := a.Routes()[0].Handler.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	var ae caddy.APIError
	if errors.As(err, &ae) {
		return ae.HTTPStatus, ae.Err.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	return w.Code, w.Body.String()
}

func TestAdminAPIShowsHubsAndChannels(t *testing.T) {
	var ref hubRef
	name := "admin test/hub"
	if err := ref.acquire(name, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	defer ref.release()
	h := ref.hub
	for i := range 5 {
		h.Subscribe(hub.NewSubscriber(hub.KindStream), "news/a b")
		if i < 2 {
			h.Subscribe(hub.NewSubscriber(hub.KindResponse), "sports")
		}
	}
	h.Subscribe(hub.NewSubscriber(hub.KindWebSocket), "news/other")
	if err := h.Publish([]*formats.Item{{Channel: "news/a b", ID: "v1", HTTPStream: &formats.HTTPStream{Content: []byte("x")}}}); err != nil {
		t.Fatal(err)
	}
	esc := url.PathEscape(name)

	code, body := adminGet(t, "GET", "/grip/hubs")
	var all []hubView
	if err := json.Unmarshal([]byte(body), &all); code != 200 || err != nil {
		t.Fatalf("hubs: %d %v %s", code, err, body)
	}
	var mine *hubView
	for i := range all {
		if all[i].Name == name {
			mine = &all[i]
		}
	}
	if mine == nil || mine.Channels != 3 || mine.Subscribers != 8 || mine.Published != 1 || mine.Bus != "local" {
		t.Fatalf("hub in the list: %+v", mine)
	}

	code, body = adminGet(t, "GET", "/grip/hubs/"+esc+"/channels?prefix=news/&limit=1")
	var list channelList
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil {
		t.Fatalf("channels: %d %v %s", code, err, body)
	}
	if list.Matched != 2 || len(list.Channels) != 1 {
		t.Fatalf("channels: %+v", list)
	}
	if c := list.Channels[0]; c.Name != "news/a b" || c.Subscribers != 5 || c.Transports["stream"] != 5 || c.LastID == nil || *c.LastID != "v1" {
		t.Fatalf("busiest channel: %+v", c)
	}

	code, body = adminGet(t, "GET", "/grip/hubs/"+esc+"/channels/"+url.PathEscape("news/a b"))
	var one channelView
	if err := json.Unmarshal([]byte(body), &one); code != 200 || err != nil || one.Subscribers != 5 {
		t.Fatalf("one channel: %d %v %s", code, err, body)
	}
	code, body = adminGet(t, "GET", "/grip/hubs/"+esc+"/channels/sports")
	if err := json.Unmarshal([]byte(body), &one); code != 200 || err != nil || one.Transports["response"] != 2 || one.LastID != nil {
		t.Fatalf("sports: %d %v %s", code, err, body)
	}

	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/grip/hubs/no-such-hub", 404},
		{"GET", "/grip/hubs/" + esc + "/channels/never", 404},
		{"GET", "/grip/hubs/" + esc + "/channels?limit=0", 400},
		{"GET", "/grip/hubs/" + esc + "/channels?limit=10001", 400},
		{"GET", "/grip/hubs/" + esc + "/nothing", 404},
		{"GET", "/grip/hubsx", 404},
		{"POST", "/grip/hubs", 405},
		{"GET", "/grip/hubs/" + esc, 200},
	} {
		if code, body := adminGet(t, tc.method, tc.path); code != tc.code {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, code, body, tc.code)
		}
	}
}

func BenchmarkAdminChannelsUnder10000Subscribers(b *testing.B) {
	var ref hubRef
	if err := ref.acquire("admin-bench", zap.NewNop()); err != nil {
		b.Fatal(err)
	}
	defer ref.release()
	for i := range 10000 {
		ref.hub.Subscribe(hub.NewSubscriber(hub.KindStream), fmt.Sprint("ch", i%5000))
	}
	var a AdminAPI
	h := a.Routes()[0].Handler
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, httptest.NewRequest("GET", "/grip/hubs/admin-bench/channels?limit=1000", nil)); err != nil || w.Code != http.StatusOK {
			b.Fatal(err, w.Code)
		}
	}
}
