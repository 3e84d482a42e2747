package hub

import (
	"testing"

	"github.com/caddy-grip/grip/formats"
)

func TestSubscribeReportsTheChannelsFirstSubscriber(t *testing.T) {
	h := New(Config{})
	a, b := NewSubscriber(KindStream), NewSubscriber(KindResponse)
	if !h.Subscribe(a, "c") {
		t.Fatal("first subscriber of c not reported as first")
	}
	if h.Subscribe(b, "c") {
		t.Fatal("second subscriber of c reported as first")
	}
	if h.Subscribe(a, "c") {
		t.Fatal("re-subscribing reported as first")
	}
	h.UnsubscribeAll(a)
	h.UnsubscribeAll(b)
	if !h.Subscribe(b, "c") {
		t.Fatal("subscriber of a channel that had emptied not reported as first")
	}
	ended := NewSubscriber(KindStream)
	ended.end(ReasonSlow)
	if h.Subscribe(ended, "fresh") {
		t.Fatal("an ended subscriber reported as first")
	}
}

func TestUpdateHintsHTTPSubscribersOnlyWithoutTouchingIDs(t *testing.T) {
	h := New(Config{})
	resp, stream, ws := NewSubscriber(KindResponse), NewSubscriber(KindStream), NewSubscriber(KindWebSocket)
	other := NewSubscriber(KindStream)
	for _, s := range []*Subscriber{resp, stream, ws} {
		h.Subscribe(s, "c")
	}
	h.Subscribe(other, "d")
	h.Publish([]*formats.Item{item("c", "1", "")})
	for _, s := range []*Subscriber{resp, stream, ws} {
		s.Take(nil)
	}

	h.Update("c")
	h.Update("nobody") // no channel: nothing happens

	for _, tc := range []struct {
		name string
		s    *Subscriber
		want formats.Action
	}{
		{"response", resp, formats.ActionHint},
		{"stream", stream, formats.ActionHint},
	} {
		ds := tc.s.Take(nil)
		if len(ds) != 1 || ds[0].Channel != "c" {
			t.Fatalf("%s: got %d deliveries, want one hint on c", tc.name, len(ds))
		}
		var got formats.Action
		if f := ds[0].Item.HTTPResponse; tc.s.Kind() == KindResponse {
			got = f.Action
		} else {
			got = ds[0].Item.HTTPStream.Action
		}
		if got != tc.want || ds[0].Item.ID != "" {
			t.Errorf("%s: got action %q id %q, want a hint without id", tc.name, got, ds[0].Item.ID)
		}
	}
	if n := len(ws.Take(nil)) + len(other.Take(nil)); n != 0 {
		t.Errorf("WebSocket or other-channel subscribers got %d deliveries", n)
	}
	if id, ok := h.LastPublishedID("c"); !ok || id != "1" {
		t.Errorf("last published id after Update = %q, %v; want 1", id, ok)
	}
	if id, ok := h.LastID("c"); !ok || id != "1" {
		t.Errorf("sequencer last id after Update = %q, %v; want 1", id, ok)
	}
}
